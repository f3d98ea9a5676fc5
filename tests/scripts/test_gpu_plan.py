"""scripts/gpu-plan.sh end to end on the CPU (DRY_RUN=1), so a GPU loan is never spent on a typo (#34 §3)."""

import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import DATA, REPO


@pytest.mark.slow
def test_gpu_plan_dry_run_writes_a_model_its_checks_and_a_log(tmp_path):
    corpus = tmp_path / "corpus"
    # a few real records of every file and type of the held-out sample, as both splits: the dry run checks
    # plumbing, not what the model learns
    for source in sorted((DATA / "debian-heldout").glob("*/*.fa.gz")):
        records = gzip.decompress(source.read_bytes()).decode().split(">")[1:4]
        # the first 240 letters of each (genome chunks are 8,192 long: scoring them all is minutes on a CPU)
        fasta = "".join(f">{r.splitlines()[0]}\n{''.join(r.splitlines()[1:])[:240]}\n" for r in records)
        for split in ("train", "heldout"):
            target = corpus / "fasta" / split / source.parent.name / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(gzip.compress(fasta.encode()))
    shutil.copy(REPO / "share/models/obte1_omni_t6_6M_DEB12/corpus-manifest.json", corpus / "corpus-manifest.json")
    out = tmp_path / "out"
    bin_dir = Path(sys.executable).parent  # `obte` and the scripts' python3 from this environment
    env = {**os.environ, "DRY_RUN": "1", "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env["OBTE"] = f"{sys.executable} -m obte_cli"
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu-plan.sh"), str(corpus), str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["checks.jsonl", "metrics.jsonl", "model.tar.gz", "plan.log"]
    assert all(p.stat().st_size < 16 * 2**20 for p in out.iterdir())  # a device call returns files of 16 MB at most
    checks = [json.loads(line) for line in (out / "checks.jsonl").read_text().splitlines()]
    env_check, sdpa, mfu, precision = checks
    assert env_check["device"] == "cpu" and env_check["torch"]
    assert sdpa["packed_attention_bf16"]["math"] == "runs"
    assert mfu["steps"] >= 100 and mfu["tokens_per_s"] > 0
    # on a CPU both runs are fp32: the plumbing is checked, the differences are exactly zero
    assert precision["embed_max_abs_diff"] == precision["score_bits_max_abs_diff"] == 0.0
    assert precision["affinity_dG_max_abs_diff_kcal"] == 0.0 and precision["complexes"] > 0
    with tarfile.open(out / "model.tar.gz") as archive:
        names = {Path(name).name for name in archive.getnames()}
        archive.extractall(tmp_path / "model", filter="data")
    assert {"config.json", "model.safetensors", "tokenizer.json", "heldout.tsv", "training.tsv"} <= names
    config = json.loads((tmp_path / "model" / "model" / "config.json").read_text())
    assert config["metadata"]["pretraining"]["optimizer"] == "muon"  # the recipe reached the run
    from safetensors import safe_open

    with safe_open(str(tmp_path / "model" / "model" / "model.safetensors"), "pt") as weights:
        assert {str(weights.get_slice(name).get_dtype()) for name in weights.keys()} == {"BF16"}
    log = (out / "plan.log").read_text()
    assert all(f"{step}/6" in log for step in range(1, 7)) and "done" in log
