"""`obte embed`: order, formats, pooling, windows, and packed == alone, on real sequences."""

import gzip
import re

import numpy as np
import pytest
from conftest import REPO, obte, one_error_line
from safetensors.numpy import load_file

from obte_cli.engine.bio.seqio import read_fasta
from obte_cli.engine.embedding.embed import EmbeddingSettings, embed_segments
from obte_cli.engine.embedding.io import read_embeddings
from obte_cli.engine.model.directory import load_model
from obte_cli.engine.tokenizers.base import Segment


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed")
    made = {}
    for name, tokenizer in (("residue", "residue"), ("bpe", "omnibiote-mixed")):
        result = obte(
            "model", "init", "--preset", "micro", "-t", tokenizer, "--context", "256", "-o", root / name, "--seed", "4"
        )
        assert result.exit_code == 0, result.output
        made[name] = root / name
    return made


@pytest.fixture(scope="module")
def proteins(protein_fasta, tmp_path_factory):
    """40 real proteins (UniProt, COG, Ensembl, ...) of up to 240 residues (standard letters), as FASTA."""
    records = [
        r
        for r in read_fasta(protein_fasta)
        if len(r.sequence) <= 240 and set(r.sequence) <= set("ACDEFGHIKLMNPQRSTVWY")
    ][:40]
    path = tmp_path_factory.mktemp("seqs") / "proteins.fa"
    path.write_text("".join(f">{r.id}\n{r.sequence}\n" for r in records))
    return path, records


@pytest.mark.parametrize("kind", ["residue", "bpe"])
def test_packed_equals_alone(models, proteins, kind):
    loaded = load_model(models[kind])
    _, records = proteins
    segments = [Segment(r.sequence, "protein", r.id) for r in records[:12]]
    for pool in ("mean", "first", "per-token"):
        packed = list(
            embed_segments(loaded.model, loaded.tokenizer, segments, EmbeddingSettings(pool=pool, layers=(2, -1)))
        )
        alone = [
            next(embed_segments(loaded.model, loaded.tokenizer, [s], EmbeddingSettings(pool=pool, layers=(2, -1))))
            for s in segments
        ]
        assert [p.id for p in packed] == [s.name for s in segments]
        for a, b in zip(packed, alone):
            np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ["residue", "bpe"])
def test_per_token_has_one_row_per_residue(models, proteins, tmp_path, kind):
    path, records = proteins
    out = tmp_path / "t.safetensors"
    result = obte("embed", path, "-m", models[kind], "--pool", "per-token", "-o", out)
    assert result.exit_code == 0, result.output
    ids, values, offsets = read_embeddings(out)
    assert ids == [r.id for r in records]
    assert np.diff(offsets).tolist() == [len(r.sequence) for r in records]
    assert values.shape == (sum(len(r.sequence) for r in records), 64)


def test_formats_stdin_gzip_and_order(models, proteins, tmp_path):
    path, records = proteins
    gz = tmp_path / "p.fa.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    outputs = {}
    for suffix in ("safetensors", "npy", "tsv"):
        result = obte("embed", gz, "-m", models["residue"], "--layers", "0,-1", "-o", tmp_path / f"e.{suffix}")
        assert result.exit_code == 0, result.output
        outputs[suffix] = read_embeddings(tmp_path / f"e.{suffix}")
    ids, reference, _ = outputs["safetensors"]
    assert ids == [r.id for r in records] and reference.shape == (len(records), 2, 64)
    assert outputs["npy"][0] == ids and np.array_equal(outputs["npy"][1], reference)
    assert outputs["tsv"][0] == ids and np.allclose(
        outputs["tsv"][1], reference.reshape(len(records), -1), rtol=1e-5, atol=1e-6
    )
    metadata = load_file(str(tmp_path / "e.safetensors"))
    assert set(metadata) == {"embeddings"}
    piped = obte("embed", "-", "-m", models["residue"], "--layers", "0,-1", "-o", "-", input=path.read_text())
    assert piped.exit_code == 0
    lines = piped.stdout.strip().splitlines()
    assert lines[0].startswith("id\tl0_0\t") and [line.split("\t")[0] for line in lines[1:]] == ids


def test_long_records_window_by_default_error_with_no_window_or_truncate(models, proteins, tmp_path):
    _, records = proteins
    long_seq = "".join(r.sequence for r in records[:4])  # real residues, longer than the context of 256
    fasta = tmp_path / "long.fa"
    fasta.write_text(f">long\n{long_seq}\n>short\n{records[5].sequence}\n")
    default = obte("embed", fasta, "-m", models["residue"], "--pool", "per-token", "-o", tmp_path / "d.safetensors")
    assert default.exit_code == 0, default.output
    assert "1 records longer than the context were embedded in overlapping windows" in default.stderr
    explicit = obte(
        "embed", fasta, "-m", models["residue"], "--pool", "per-token", "--window", "254", "--stride", "127",
        "-o", tmp_path / "w.safetensors",
    )  # fmt: skip
    assert explicit.exit_code == 0, explicit.output
    ids, by_default, offsets = read_embeddings(tmp_path / "d.safetensors")
    _, windowed, _ = read_embeddings(tmp_path / "w.safetensors")
    assert ids == ["long", "short"] and np.diff(offsets).tolist() == [len(long_seq), len(records[5].sequence)]
    assert np.array_equal(by_default, windowed)  # the default: windows of context − 2, every half window
    refused = obte("embed", fasta, "-m", models["residue"], "--no-window", "-o", tmp_path / "x.npy")
    assert refused.exit_code == 1 and "record 'long'" in refused.stderr and "--no-window" in refused.stderr
    assert not (tmp_path / "x.npy").exists()
    cut = obte(
        "embed", fasta, "-m", models["residue"], "--truncate", "--pool", "per-token", "-o", tmp_path / "cut.safetensors"
    )
    assert cut.exit_code == 0, cut.output
    _, _, offsets = read_embeddings(tmp_path / "cut.safetensors")
    assert np.diff(offsets).tolist() == [254, len(records[5].sequence)]
    windows = obte(
        "embed",
        fasta,
        "-m",
        models["residue"],
        "--window",
        "200",
        "--stride",
        "100",
        "--pool",
        "per-token",
        "-o",
        tmp_path / "w.safetensors",
    )
    assert windows.exit_code == 0, windows.output
    _, values, offsets = read_embeddings(tmp_path / "w.safetensors")
    assert np.diff(offsets).tolist() == [len(long_seq), len(records[5].sequence)]
    # residues covered by one window only equal that window embedded alone
    loaded = load_model(models["residue"])
    [first_window] = embed_segments(
        loaded.model, loaded.tokenizer, [Segment(long_seq[:200], "protein", "w")], EmbeddingSettings(pool="per-token")
    )
    np.testing.assert_allclose(values[:100], first_window.vectors[:100, 0], atol=1e-4)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--layers", "9"], "'--layers': 9 is not a layer of this model"),
        (["--layers", "x"], "'--layers': must be comma-separated integers"),
        (["--pool", "per-token", "-o", "out.npy"], "'--pool': per-token gives a matrix per record: write it to a "),
        (["-o", "out.csv"], "'--out': must end in .safetensors, .npy, .tsv"),
    ],
)
def test_bad_options_are_one_line_usage_errors(models, proteins, tmp_path, args, message):
    path, _ = proteins
    base = ["embed", path, "-m", models["residue"]]
    if "-o" not in args:
        args = [*args, "-o", tmp_path / "e.npy"]
    result = obte(*base, *args)
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_bad_pool_is_a_usage_error(models, proteins, tmp_path):
    path, _ = proteins
    result = obte("embed", path, "-m", models["residue"], "--pool", "sum", "-o", tmp_path / "e.npy")
    assert result.exit_code == 2
    assert all(f"'{pool}'" in result.stderr for pool in ("mean", "first", "max", "per-token")), result.stderr


def test_a_stride_longer_than_the_window_is_a_usage_error(models, proteins, tmp_path):
    path, _ = proteins
    args = ["embed", path, "-m", models["residue"], "--pool", "per-token", "-o", tmp_path / "w.safetensors"]
    result = obte(*args, "--window", "100", "--stride", "300")
    assert result.exit_code == 2, result.output
    message = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stderr).split())  # without the usage box and wrapping
    assert "'--stride': 300 is more than --window 100: windows must overlap or touch" in message, message
    assert not (tmp_path / "w.safetensors").exists()


def test_a_stride_without_a_window_is_a_usage_error(models, proteins, tmp_path):
    path, _ = proteins
    result = obte("embed", path, "-m", models["residue"], "--stride", "50", "-o", tmp_path / "w.npy")
    assert result.exit_code == 2, result.output
    assert "needs --window" in " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stderr).split())


def test_errors_about_a_record_name_its_file(models, proteins, tmp_path):
    good, records = proteins
    stop = tmp_path / "stop.fa"
    stop.write_text(f">p1\n{records[0].sequence}*\n")  # a translated ORF with its stop codon
    one_error_line(
        obte("embed", good, stop, "-m", models["residue"], "-o", tmp_path / "x.npy", "--on-unknown", "error"),
        f"error: {stop}: record 'p1': non-standard protein letter '*'",
    )
    long = tmp_path / "long.fa"
    long.write_text(">long\n" + "".join(r.sequence for r in records[:4]) + "\n")
    one_error_line(
        obte("embed", long, "-m", models["residue"], "-o", tmp_path / "x.npy", "--no-window"),
        f"error: {long}: record 'long': ",
        "tokens exceed the model's context",
    )


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize("pool", ["mean", "per-token"])
def test_torchrun_ranks_merge_in_input_order(models, proteins, tmp_path, pool):
    import os
    import subprocess
    import sys

    path, records = proteins
    single = obte("embed", path, "-m", models["residue"], "--pool", pool, "-o", tmp_path / "one.safetensors")
    assert single.exit_code == 0, single.output
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            "-m",
            "obte_cli",
            "embed",
            str(path),
            "-m",
            str(models["residue"]),
            "--pool",
            pool,
            "--device",
            "cpu",
            "-o",
            str(tmp_path / "two.safetensors"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=REPO,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = read_embeddings(tmp_path / "one.safetensors"), read_embeddings(tmp_path / "two.safetensors")
    assert a[0] == b[0] == [r.id for r in records]
    np.testing.assert_allclose(a[1], b[1], atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.safetensors", "two.safetensors"]  # parts removed


def test_bench_embed_reports_both_implementations(proteins, tmp_path):
    pytest.importorskip("transformers")
    path, _ = proteins
    result = obte("bench", "embed", path, "--preset", "micro", "--repeats", "1", "-o", tmp_path)
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    header = rows[0]
    assert [r[0] for r in rows[1:]] == ["obte (packed)", "hf EsmModel (padded)"]
    assert rows[1][2] == rows[2][2] and float(rows[2][header.index("speedup_vs_hf")]) == 1.0
    obte_row = dict(zip(header, rows[1]))
    # one round: the paired speed-up is the ratio of the two timings, its quartiles equal to it
    ratio = float(rows[2][header.index("seconds")]) / float(obte_row["seconds"])
    assert float(obte_row["speedup_vs_hf"]) == pytest.approx(ratio, rel=1e-3)
    assert float(obte_row["speedup_q1"]) == pytest.approx(float(obte_row["speedup_q3"]), rel=1e-3)
    assert float(obte_row["load_avg"]) >= 0
    assert (tmp_path / "bench-embed.tsv").is_file()
