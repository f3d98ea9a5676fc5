"""Nothing lost (#31 §1): --force replaces only what obte wrote, `-o .` is one line, an output that is an input is
refused before any work, an output directory is locked for the length of a run (and free again when its holder
dies), two prep runs into one corpus give one manifest of both, and partials of killed runs are cleaned up."""

import json
import os
import subprocess
import sys

import pytest
from conftest import DATA, REPO, locked_by_another_run, obte, one_error_line


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    path = tmp_path_factory.mktemp("bb") / "bb"
    assert obte("model", "init", "--preset", "micro", "--context", "256", "-o", path).exit_code == 0
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus"
    assert obte("prep", DATA / "pronab_ligands.fa", "-o", path).exit_code == 0
    return path


@pytest.fixture
def precious(tmp_path):
    path = tmp_path / "precious"
    path.mkdir()
    (path / "keep.txt").write_text("keep\n")
    return path


def _force_commands(backbone, corpus):
    return {
        "finetune affinity (transformer)": [
            *("finetune", "affinity", "--data", DATA / "pronab_sample.tsv", "--model", backbone),
            *"--folds 0 --epochs 1 --device cpu".split(),
        ],
        "finetune affinity (composition)": [
            *("finetune", "affinity", "--data", DATA / "pronab_sample.tsv"),
            *"--method composition --folds 0".split(),
        ],
        "model init": ["model", "init", "--preset", "micro", "--context", "128"],
        "tokenize corpus": ["tokenize", "corpus", corpus],
    }


@pytest.mark.parametrize(
    "name",
    ["finetune affinity (transformer)", "finetune affinity (composition)", "model init", "tokenize corpus"],
)
def test_force_never_deletes_a_directory_obte_did_not_write(backbone, corpus, precious, name):
    """The issue's example: `finetune affinity ... --out precious --force` deleted precious/keep.txt."""
    command = _force_commands(backbone, corpus)[name]
    result = obte(*command, "--out", precious, "--force")
    one_error_line(result, f"{precious}: not an obte output (it holds keep.txt)", "--force replaces only")
    assert sorted(p.name for p in precious.iterdir()) == ["keep.txt"]
    assert (precious / "keep.txt").read_text() == "keep\n"
    assert [p.name for p in precious.parent.iterdir() if p.name.startswith(".")] == []


def test_force_replaces_what_obte_wrote(tmp_path):
    out = tmp_path / "m"
    assert obte("model", "init", "--preset", "micro", "--context", "128", "-o", out).exit_code == 0
    first = (out / "model.safetensors").read_bytes()
    again = obte("model", "init", "--preset", "micro", "--context", "128", "--seed", "1", "-o", out, "--force")
    assert again.exit_code == 0, again.output
    assert (out / "model.safetensors").read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["", "--force"])
@pytest.mark.parametrize("name", ["finetune affinity (composition)", "model init", "tokenize corpus"])
def test_out_dot_is_one_line_not_a_traceback(backbone, corpus, tmp_path, monkeypatch, name, force):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("keep\n")
    result = obte(*_force_commands(backbone, corpus)[name], "-o", ".", *force)
    one_error_line(result, ".: --out is the current directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


# ---- an output that is an input ---------------------------------------------------------------------------


FASTA = ">p1 protein\nMKVLAAGIVGLLLAQ\n>p2\nMSTNPKPQRKTKRNTNRR\n"


def _same_file_cases(tmp_path, backbone):
    """(name, arguments, the input the output names): each writes its result over one of its inputs."""
    fasta = tmp_path / "x.fa"
    fasta.write_text(FASTA)
    dna = tmp_path / "dna.fa"
    dna.write_text(">d1\nACGTACGGTACCA\n")
    tokens = tmp_path / "t.tsv"
    tokens.write_text("record_id\ttoken_ids\nr1\t4 20 21 2\n")
    structure = tmp_path / "1W0T.pdb.gz"
    structure.write_bytes((DATA / "structures" / "1W0T.pdb.gz").read_bytes())
    motif = tmp_path / "MA0139.1.jaspar"
    motif.write_bytes((DATA / "motifs" / "MA0139.1.jaspar").read_bytes())
    (tmp_path / "link.tsv").symlink_to(fasta)  # a name embed can write, the file it reads
    os.link(fasta, tmp_path / "hard.fa")
    return [
        ("tokenize encode", ["tokenize", "encode", fasta, "-o", fasta], fasta),
        ("tokenize decode", ["tokenize", "decode", tokens, "-o", tokens], tokens),
        ("affinity", ["affinity", fasta, dna, "-o", fasta], fasta),
        ("affinity (hard link)", ["affinity", fasta, dna, "-o", tmp_path / "hard.fa"], fasta),
        ("embed (symlink)", ["embed", fasta, "-m", backbone, "-o", tmp_path / "link.tsv"], fasta),
        ("score -o", ["score", fasta, "-m", backbone, "-o", fasta], fasta),
        ("score --per-residue", ["score", fasta, "-m", backbone, "--per-residue", fasta], fasta),
        ("contacts labels", ["contacts", "labels", structure, "-o", structure], structure),
        (
            "contacts predict --cif-out",
            ["contacts", "predict", "--structure", structure, "--cif-out", structure],
            structure,
        ),
        ("scan-jaspar", ["scan-jaspar", motif, "--protein", fasta, "--truncate", "-o", fasta], fasta),
        ("model info", ["model", "info", backbone, "-o", backbone / "config.json"], backbone / "config.json"),
    ]


CASE_NAMES = [  # the names _same_file_cases gives (its files are made per test)
    "tokenize encode",
    "tokenize decode",
    "affinity",
    "affinity (hard link)",
    "embed (symlink)",
    "score -o",
    "score --per-residue",
    "contacts labels",
    "contacts predict --cif-out",
    "scan-jaspar",
    "model info",
]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_an_output_that_is_an_input_is_refused_before_any_work(tmp_path, backbone, name):
    """`tokenize encode x.fa -o x.fa` and the like replaced the user's file with their result."""
    cases = {case[0]: case for case in _same_file_cases(tmp_path, backbone)}
    _, args, source = cases[name]
    before = source.read_bytes()
    line = one_error_line(obte(*args), "which it would replace; write to another file")
    assert "is one of the inputs" in line or "is the same file as the input" in line
    assert source.read_bytes() == before


# ---- one run at a time in an output directory -------------------------------------------------------------


def _locked_commands(backbone, corpus, tmp_path):
    """(command, output, lock inside the output?) for each command that takes the lock."""
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"not a checkpoint")  # refused by the lock before it is read
    return [
        (["model", "init", "--preset", "micro", "--context", "128", "-o"], tmp_path / "m", False),
        (["tokenize", "corpus", corpus, "-o"], tmp_path / "tokens", False),
        (["convert", checkpoint, "-o"], tmp_path / "converted", False),
        (
            ["finetune", "affinity", "--data", DATA / "pronab_sample.tsv", "--method", "composition", "-o"],
            tmp_path / "dg",
            False,
        ),
        (["prep", DATA / "pronab_ligands.fa", "-o"], tmp_path / "corpus", True),
        (["pretrain", "--tokens", tmp_path / "no-tokens", "-o"], tmp_path / "run", True),
    ]


def test_a_second_run_into_a_locked_output_is_refused_in_one_line(backbone, corpus, tmp_path):
    """While another run holds an output, every command that writes there is refused, naming its pid; nothing
    is written (two `model init` runs into one directory both exited 0, the first model silently replaced)."""
    for command, out, inside in _locked_commands(backbone, corpus, tmp_path):
        if inside:
            out.mkdir()
        with locked_by_another_run(out, inside) as holder:
            result = obte(*command, out)
            one_error_line(result, f"{out}: in use by another obte run (pid {holder.pid})")
            assert not out.exists() or [p.name for p in out.iterdir()] == [".obte-lock"], command


def test_the_lock_of_a_killed_run_is_taken_at_once(tmp_path):
    out = tmp_path / "m"
    with locked_by_another_run(out) as holder:
        assert obte("model", "init", "--preset", "micro", "--context", "128", "-o", out).exit_code == 1
        holder.kill()  # SIGKILL: its lock file stays behind, but nothing holds it
        assert (tmp_path / ".m.obte-lock").exists()
        result = obte("model", "init", "--preset", "micro", "--context", "128", "-o", out)
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # the lock is gone with the run


def test_concurrent_model_inits_into_one_directory_leave_exactly_one_winner(tmp_path):
    """Without --force, of three runs started together exactly one writes the model; the others are refused
    (in use, or already exists) and its model is not replaced."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "m"
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "obte_cli", *"model init --preset micro --context 128 --seed".split(), str(seed)]
            + ["-o", str(out)],
            **dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO),
        )
        for seed in range(3)
    ]
    results = [(run.wait(timeout=300), run.communicate()[1]) for run in runs]
    winners = [seed for seed, (code, _) in enumerate(results) if code == 0]
    assert len(winners) == 1, results
    for code, stderr in results:
        if code != 0:
            assert code == 1 and ("in use by another obte run" in stderr or "already exists" in stderr), stderr
    config = json.loads((out / "config.json").read_text())
    assert config["metadata"]["seed"] == winners[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_two_prep_runs_into_one_corpus_give_one_manifest_of_both(tmp_path):
    """The second run's manifest listed only its own input; now it lists both, with totals over both."""
    out = tmp_path / "corpus"
    first, second = DATA / "pronab_ligands.fa", DATA / "chloroplast_rna.gb"
    assert obte("prep", first, "-o", out).exit_code == 0
    alone = json.loads((out / "manifest.json").read_text())
    assert obte("prep", second, "-o", out).exit_code == 0
    both = json.loads((out / "manifest.json").read_text())
    assert [entry["path"] for entry in both["inputs"]] == [str(first), str(second)]
    assert both["records_kept"] == alone["records_kept"] + both["inputs"][1]["records_kept"]
    assert both["records_read"] == sum(entry["records_read"] for entry in both["inputs"])
    again = obte("prep", first, "-o", out)  # a re-run of one of them keeps the other listed
    assert again.exit_code == 0 and "already done" in again.stderr
    assert json.loads((out / "manifest.json").read_text())["inputs"] == both["inputs"][::-1]
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "shards"]  # no lock left behind


def test_prep_cleans_the_stale_partial_shards_of_a_killed_run(tmp_path):
    out = tmp_path / "corpus"
    assert obte("prep", DATA / "pronab_ligands.fa", "-o", out).exit_code == 0
    shard = next((out / "shards").glob("*.tsv.gz")).name
    stale = [out / "shards" / f".{shard}.k1ll3d00.tmp", out / "shards" / f".{shard}.json.tmp-4242"]
    for path in stale:
        path.write_text("half")
    (out / ".manifest.json.tmp-4242").write_text("half")
    (out / "shards" / ".notes.txt").write_text("not obte's")
    again = obte("prep", DATA / "pronab_ligands.fa", "-o", out)  # nothing to redo, and yet: cleaned
    assert again.exit_code == 0 and "already done" in again.stderr
    assert sorted(p.name for p in (out / "shards").iterdir() if p.name.startswith(".")) == [".notes.txt"]
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "shards"]
