"""The Python API (obte_cli.api, exported by obte_cli): its results are what the commands write, on real inputs
with the bundled backbone and ΔG model; ids keep their order; mistakes raise ObteError subclasses in one line;
the README's example and the docstrings' examples run as written; importing obte_cli imports no torch."""

from __future__ import annotations

import contextlib
import doctest
import io
import math
import re
import subprocess
import sys
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, obte

import obte_cli
from obte_cli.engine.core import resources
from obte_cli.engine.embedding.io import read_embeddings

EXAMPLES = REPO / "share" / "examples"
LIGANDS = REPO / "tests" / "data" / "pronab_ligands.fa"  # three RNA ligands written with U, two DNA


@pytest.fixture(scope="module")
def model():
    if resources.default_backbone_dir() is None:
        pytest.skip("this checkout has no bundled backbone")
    return obte_cli.load_model(device="cpu")


@pytest.fixture(scope="module")
def mixed_fasta(tmp_path_factory):
    """Real proteins, one longer than the backbone's context (CTCF, 727 residues: windows), DNA and RNA."""
    path = tmp_path_factory.mktemp("api") / "mixed.fa"
    path.write_text("".join(p.read_text() for p in (EXAMPLES / "proteins.fa", EXAMPLES / "ctcf.fa", LIGANDS)))
    return path


def fasta_pairs(path) -> list[tuple[str, str]]:
    from obte_cli.engine.bio.seqio import read_fasta

    return [(record.id, record.sequence) for record in read_fasta(path)]


def agrees(printed: str, value: float) -> bool:
    """``value`` is what the command printed as ``printed``, to the digits it printed (NA: not a number)."""
    if printed == "NA":
        return math.isnan(value)
    half_ulp = Decimal(5) * Decimal(10) ** (Decimal(printed).as_tuple().exponent - 1)
    return abs(Decimal(printed) - Decimal(float(value))) <= half_ulp


def test_the_printed_precision_check_can_fail():
    assert agrees("1.234", 1.2344) and agrees("1.234", 1.2335) and agrees("8.331e-08", 8.3314e-08)
    assert not agrees("1.234", 1.2346) and not agrees("8.331e-08", 8.3316e-08) and not agrees("NA", 1.0)
    assert agrees("NA", float("nan"))


def test_import_obte_cli_imports_no_torch_numpy_or_pandas():
    code = "import sys, obte_cli; print(sorted(m for m in ('torch', 'numpy', 'pandas') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert set(obte_cli.__all__) >= {"load_model", "embed", "score", "predict_affinity", "ObteError", "__version__"}
    assert all(hasattr(obte_cli, name) for name in obte_cli.__all__)


def test_load_model_by_default_name_and_path(model):
    assert model.path == resources.default_backbone_dir()
    assert (model.width, model.n_layers, model.context) == (288, 6, 512) and str(model.device) == "cpu"
    assert model.tokenizer.kind == "residue" and not model.module.training
    by_name = obte_cli.load_model(resources.DEFAULT_BACKBONE, device="cpu")
    by_path = obte_cli.load_model(str(model.path), device="cpu")
    assert by_name.path == by_path.path == model.path
    assert "width=288" in repr(model)


@pytest.mark.slow
def test_embed_equals_the_npy_of_obte_embed(model, mixed_fasta, tmp_path):
    out = tmp_path / "cli.npy"
    result = obte("embed", mixed_fasta, "-o", out)
    assert result.exit_code == 0, result.output
    assert "1 records longer than the context were embedded in overlapping windows" in result.stderr
    ids, array, offsets = read_embeddings(out)
    assert ids == [record_id for record_id, _ in fasta_pairs(mixed_fasta)] and offsets is None
    for records in (mixed_fasta, fasta_pairs(mixed_fasta)):  # a FASTA path, and its records in memory
        emb = obte_cli.embed(model, records)
        assert emb.ids == ids and emb.array.dtype == np.float32 and emb.array.shape == (len(ids), 288)
        np.testing.assert_array_equal(emb.array, array)
    assert ids[5] == "sp|P49711|CTCF_HUMAN"  # 727 residues: windows
    np.testing.assert_array_equal(emb["sp|P49711|CTCF_HUMAN"], array[5])
    np.testing.assert_array_equal(emb[-1], array[-1])


@pytest.mark.slow
def test_per_token_layers_and_windows_equal_the_safetensors_of_obte_embed(model, mixed_fasta, tmp_path):
    out = tmp_path / "cli.safetensors"
    args = ["--pool", "per-token", "--layers", "0,-1", "--window", "200", "--stride", "150"]
    result = obte("embed", mixed_fasta, *args, "-o", out)
    assert result.exit_code == 0, result.output
    emb = obte_cli.embed(model, mixed_fasta, pool="per-token", layers=[0, -1], window=200, stride=150)
    ids, array, offsets = read_embeddings(out)
    assert emb.ids == ids and emb.layers == (0, -1)
    np.testing.assert_array_equal(emb.offsets, offsets)
    np.testing.assert_array_equal(emb.array, array)
    lengths = [len(sequence) for _, sequence in fasta_pairs(mixed_fasta)]
    assert [len(emb[i]) for i in range(len(emb))] == lengths and emb[ids[-1]].shape == (lengths[-1], 2, 288)


@pytest.mark.slow
def test_to_frame_is_the_tsv_of_obte_embed(model, tmp_path):
    out = tmp_path / "cli.tsv"
    result = obte("embed", LIGANDS, "--pool", "first", "--layers", "2,-1", "-o", out)
    assert result.exit_code == 0, result.output
    frame = obte_cli.embed(model, LIGANDS, pool="first", layers=(2, -1)).to_frame()
    cli = pd.read_csv(out, sep="\t", index_col="id")
    assert list(frame.columns) == list(cli.columns) and list(frame.index) == list(cli.index)
    np.testing.assert_allclose(frame.to_numpy(), cli.to_numpy(), rtol=1e-5, atol=1e-6)  # TSV: 6 digits


@pytest.mark.slow
def test_ids_keep_their_order_and_a_record_does_not_depend_on_the_others(model, mixed_fasta):
    pairs = fasta_pairs(mixed_fasta)
    forward = obte_cli.embed(model, pairs)
    backward = obte_cli.embed(model, dict(reversed(pairs)))
    assert backward.ids == [record_id for record_id, _ in reversed(pairs)]
    np.testing.assert_allclose(backward.array, forward.array[::-1], atol=1e-4)


@pytest.mark.slow
def test_score_equals_the_tsvs_of_obte_score(model, mixed_fasta, tmp_path):
    per_residue = tmp_path / "residues.tsv"
    result = obte("score", mixed_fasta, "--per-residue", per_residue, "--seed", "3")
    assert result.exit_code == 0, result.output
    assert "1 records longer than the context were scored in consecutive windows" in result.stderr
    scores, residues = obte_cli.score(model, mixed_fasta, per_residue=True, seed=3)
    cli = list(csv_rows(result.stdout))
    assert list(scores.columns) == cli[0] and len(scores) == len(cli) - 1
    for row, printed in zip(scores.itertuples(index=False), cli[1:]):
        assert [row.id, row.molecule_type, str(row.length)] == printed[:3]
        assert all(agrees(text, value) for text, value in zip(printed[3:], row[3:])), (printed, row)
    assert set(scores["molecule_type"]) == {"protein", "DNA", "RNA"}
    cli_residues = pd.read_csv(per_residue, sep="\t", keep_default_na=False, na_values=["NA"])  # 4 decimals
    assert list(residues.columns) == list(cli_residues.columns) and len(residues) == len(cli_residues)
    pd.testing.assert_frame_equal(residues.iloc[:, :3], cli_residues.iloc[:, :3])
    ours, theirs = residues.iloc[:, 3:].to_numpy(np.float64), cli_residues.iloc[:, 3:].to_numpy(np.float64)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    assert np.nanmax(np.abs(ours - theirs)) <= 0.5e-4 + 1e-9
    last = obte_cli.score(model, fasta_pairs(mixed_fasta)[5:], seed=3)  # CTCF and the ligands, in memory
    pd.testing.assert_frame_equal(last, scores.iloc[5:].reset_index(drop=True))


def csv_rows(text: str):
    for line in text.splitlines():
        yield line.split("\t")


@pytest.mark.parametrize("zipped", [False, True], ids=["all-pairs", "zip-revcomp-rna"])
def test_predict_affinity_equals_the_tsv_of_obte_affinity(zipped, tmp_path):
    proteins, acids = EXAMPLES / "dna_binding_proteins.fa", EXAMPLES / "dna.fa"
    args, options = [], {}
    if zipped:
        acids = tmp_path / "four.fa"  # zip: as many nucleic acids as proteins
        acids.write_text("".join(f">{i}\n{s}\n" for i, s in fasta_pairs(EXAMPLES / "dna.fa")[:4]))
        args = ["--pairs", "zip", "--complement", "revcomp", "--na-type", "RNA"]
        options = {"pairs": "zip", "complement": "revcomp", "na_type": "RNA"}
    result = obte("affinity", proteins, acids, *args, "--device", "cpu")
    assert result.exit_code == 0, result.output
    cli = list(csv_rows(result.stdout))
    for records in ((proteins, acids), (fasta_pairs(proteins), dict(fasta_pairs(acids)))):
        table = obte_cli.predict_affinity(*records, device="cpu", **options)
        assert list(table.columns) == cli[0] and len(table) == len(cli) - 1
        for row, printed in zip(table.itertuples(index=False), cli[1:]):
            numbers = {2: row.dG_kcal_mol, 3: row.dG_sd, 4: row.Kd_M}
            texts = [row.protein_id, row.na_id, row.na_type, row.complement, row.protein_truncated]
            assert texts == [printed[i] for i in (0, 1, 5, 6, 7)]
            assert all(agrees(printed[i], value) for i, value in numbers.items()), (printed, row)
    assert set(table["complement"]) == ({"revcomp"} if zipped else {"no"})
    assert set(table["na_type"]) == ({"RNA"} if zipped else {"DNA (assumed)"}) and len(table) == (4 if zipped else 20)


def test_errors_are_obte_errors_in_one_line(model, tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    mistakes = [
        (lambda: obte_cli.embed(model, {"x1": "MKTAYIAKQRB"}, on_unknown="error"), "'B' at position 11"),
        (lambda: obte_cli.embed(model, {"x1": "  "}), "record 1 ('x1') has no sequence"),
        (lambda: obte_cli.embed(model, [("", "MKV")]), "the id must be a non-empty string"),
        (lambda: obte_cli.embed(model, [("a", "MKV", 3)]), "expected an (id, sequence) pair"),
        (lambda: obte_cli.embed(model, 42), "records are a FASTA path"),
        (lambda: obte_cli.embed(model, "MKTAYIAKQR"), "MKTAYIAKQR: no such file"),
        (lambda: obte_cli.embed(model, {}), "no records to embed"),
        (lambda: obte_cli.embed(model, {"a": "MKV"}, pool="cls"), "'first' is the molecule tag token"),
        (lambda: obte_cli.embed(model, {"a": "MKV"}, layers=7), "7 is not a layer of this model"),
        (lambda: obte_cli.embed(model, {"a": "MKV"}, layers="0,-1"), "layers must be a layer number"),
        (lambda: obte_cli.embed(model, {"a": "MKV"}, window=600), "--window 600 does not fit the model's context"),
        (lambda: obte_cli.embed(model, {"a": "MKV"}, window=100, stride=200), "windows must overlap or touch"),
        (lambda: obte_cli.embed(model, {"a": "MKV"}, stride=20), "--stride needs --window"),
        (lambda: obte_cli.embed(model, {"a": "MKV"}, truncate=True, no_window=True), "--no-window cannot be"),
        (lambda: obte_cli.embed(model, {"a": "MKV"}, molecule_type="XNA"), "unknown molecule type 'XNA'"),
        (lambda: obte_cli.embed(model, {"a": "MKV"}, on_unknown="skip"), "on_unknown must be one of unk, error"),
        (lambda: obte_cli.embed(model, {"a": "MKV"}, max_tokens=0), "max_tokens must be an integer ≥ 1"),
        (lambda: obte_cli.embed(object(), {"a": "MKV"}), "model must be a Model"),
        (lambda: obte_cli.score(model, {"a": "MKV"}, mask_fraction=0), "mask_fraction must be between"),
        (lambda: obte_cli.score(model, {}), "no records to score"),
        (lambda: obte_cli.load_model(tmp_path / "missing"), "no such model directory, nor a bundled model"),
        (lambda: obte_cli.load_model(device="tpu"), "--device must be one of"),
        (lambda: obte_cli.predict_affinity(LIGANDS, EXAMPLES / "dna.fa"), "looks like a nucleic acid"),
        (lambda: obte_cli.predict_affinity({"p": "MKV"}, {"n": "MKVLLWWEE"}), "looks like a protein"),
        (lambda: obte_cli.predict_affinity({"p": "MKV"}, {"n": "ACGT"}, pairs="cross"), "--pairs must be one of"),
        (lambda: obte_cli.predict_affinity({"p": "MKV"}, {"n": "ACGT"}, na_type="XNA"), "na_type must be one of"),
        (lambda: obte_cli.predict_affinity({"p": "MKV"}, {"n": "ACGT"}, model=model), "ΔG model directory or None"),
        (lambda: obte_cli.predict_affinity({}, {"n": "ACGT"}), "no complexes to predict"),
    ]
    for call, message in mistakes:
        with pytest.raises(obte_cli.InputError) as info:
            call()
        assert message in str(info.value) and "\n" not in str(info.value), (message, str(info.value))
    with pytest.raises(obte_cli.ModelFormatError) as info:
        obte_cli.load_model(empty)
    assert isinstance(info.value, obte_cli.ObteError) and "\n" not in str(info.value)
    with pytest.raises(obte_cli.InputError, match="per-token embeddings have one row per residue"):
        obte_cli.embed(model, {"a": "MKV"}, pool="per-token").to_frame()


def test_biopython_records_are_records(model):
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    records = [SeqRecord(Seq("MEEPQSDPSVEPPLSQETFSDLWKLL"), id="p53_tad"), SeqRecord(Seq("GAGGTTAAGTGG"), id="site")]
    emb = obte_cli.embed(model, records)
    assert emb.ids == ["p53_tad", "site"]
    np.testing.assert_array_equal(emb.array, obte_cli.embed(model, [(r.id, str(r.seq)) for r in records]).array)


@pytest.mark.slow
def test_the_readme_example_runs_as_written(model, monkeypatch):
    readme = (REPO / "README.md").read_text()
    found = re.search(r"\n## Python API\n.*?```python\n(.*?)```", readme, re.S)
    assert found, "README.md has no Python API example"
    monkeypatch.chdir(REPO)  # it names share/examples/... from the repository root
    printed = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(printed):
        exec(compile(found.group(1), "README.md (Python API)", "exec"), namespace)
    # what its comments say it prints
    for claim in re.findall(r"print\(.*\)  # ([^:\n]+)", found.group(1)):
        assert claim.strip() in printed.getvalue(), (claim, printed.getvalue())
    assert namespace["table"].shape == (5, 288) and len(namespace["scores"]) == 5 and len(namespace["dg"]) == 20


@pytest.mark.slow
def test_the_docstring_examples_run(model):
    import obte_cli.api

    for module in (obte_cli, obte_cli.api):
        result = doctest.testmod(module, extraglobs={"obte_cli": obte_cli, "model": model}, verbose=False)
        assert result.attempted > 0 and result.failed == 0, module.__name__
