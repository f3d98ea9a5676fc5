import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from obte_cli.engine.affinity.data import (
    load_affinity_data,
    load_pairs_tsv,
    load_pronab_json,
    read_complexes_tsv,
)
from obte_cli.engine.bio.homology import (
    alignment_score,
    homology_matrix,
    normalise,
    raw_score_matrix,
)
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.finetuning.folds import homology_guard, plan_folds


@pytest.fixture(scope="module")
def pronab_table(pronab_path):
    return load_pronab_json(pronab_path)


def test_pronab_filters_are_applied_and_counted(pronab_table, pronab):
    table, dropped = pronab_table
    assert (table["dG"] != 0).all()
    assert set(table["na_type"]) <= {"DNA", "RNA"}
    assert table["protein"].map(lambda s: set(s) <= set("ACDEFGHIKLMNPQRSTVWY")).all()
    assert table["nucleic_acid"].map(lambda s: set(s) <= set("ACGT")).all()
    assert not table.duplicated(["protein", "nucleic_acid", "complement", "na_type", "dG"]).any()
    assert dropped["missing_value"] > 0 and dropped["duplicate"] > 0 and dropped["other_type"] > 0
    assert len(table) + sum(dropped.values()) == sum(len(e["binding data"]) for e in pronab.values())  # all rows
    assert -16 < table["dG"].mean() < -6


def test_pairs_tsv_round_trip(tmp_path, pronab_table):
    table, _ = pronab_table
    path = tmp_path / "pairs.tsv"
    table.head(50).to_csv(path, sep="\t", index=False)
    again, dropped = load_affinity_data(path)
    assert again.equals(table.head(50).reset_index(drop=True)) and not dropped


def test_pairs_tsv_defaults_and_errors(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("protein\tnucleic_acid\tdG\nMKVLA\tACGU\t-9.1\nMKVLA\tACGT\t-8\n")
    table, _ = load_pairs_tsv(path)
    assert table["na_type"].tolist() == ["RNA", "DNA"] and table["nucleic_acid"][0] == "ACGT"
    path.write_text("protein\tdG\nMKV\t-9\n")
    with pytest.raises(InputError, match="missing column"):
        load_pairs_tsv(path)
    path.write_text("protein\tnucleic_acid\tdG\nMKV\tACGT\tstrong\n")
    with pytest.raises(InputError, match="line 2: dG 'strong' is not a number"):
        load_pairs_tsv(path)
    path.write_text("protein\tnucleic_acid\tdG\nMKXV\tACGT\t-9\n")
    with pytest.raises(InputError, match="no usable rows"):
        load_pairs_tsv(path)


def test_complexes_tsv_reads_what_finetune_trains_on_without_filtering(tmp_path, pronab_table):
    table, _ = pronab_table
    path = tmp_path / "pairs.tsv"
    table.head(30).to_csv(path, sep="\t", index=False)
    complexes = read_complexes_tsv(path)
    assert [(c.protein.id, c.protein.sequence) for c in complexes] == list(
        zip(table["protein_id"][:30], table["protein"][:30])
    )
    assert [(c.nucleic_acid.sequence, c.complement, c.nucleic_acid.na_type) for c in complexes] == list(
        zip(table["nucleic_acid"][:30], table["complement"][:30], table["na_type"][:30])
    )
    assert not any(c.nucleic_acid.na_type_assumed for c in complexes)  # the na_type column says
    assert [c.nucleic_acid.id for c in complexes][:2] == ["na2", "na3"]  # no na_id column: by line


def test_complexes_tsv_defaults_types_and_errors(tmp_path):
    path = tmp_path / "c.tsv"
    # no dG (prediction), ids optional, lower case, U written as T, an empty na_type guessed, the same
    # complex twice kept twice (training would keep it once)
    path.write_text(
        "protein_id\tna_id\tprotein\tnucleic_acid\tna_type\tcomplement\n"
        "p1\tapt\tmkvla\tacgu\t\t\n"
        "\t\tMKVLA\tACGT\t\tacgu\n"
        "p3\tx\tMKVLA\tACGT\trna\t\n"
        "p3\tx\tMKVLA\tACGT\trna\t\n"
    )
    complexes = read_complexes_tsv(path)
    assert [(c.protein.id, c.nucleic_acid.id) for c in complexes] == [
        ("p1", "apt"),
        ("protein3", "na3"),
        ("p3", "x"),
        ("p3", "x"),
    ]
    assert [c.protein.sequence for c in complexes] == ["MKVLA"] * 4
    assert [(c.nucleic_acid.sequence, c.nucleic_acid.na_type, c.nucleic_acid.na_type_assumed) for c in complexes] == [
        ("ACGT", "RNA", False),
        ("ACGT", "DNA", True),
        ("ACGT", "RNA", False),
        ("ACGT", "RNA", False),
    ]
    assert [c.complement for c in complexes] == ["", "ACGT", "", ""]
    # --na-type fills the empty cells only
    filled = read_complexes_tsv(path, "RNA")
    assert [c.nucleic_acid.na_type for c in filled] == ["RNA"] * 4
    assert not any(c.nucleic_acid.na_type_assumed for c in filled)
    for text, message in [
        ("protein\tdG\nMKV\t-9\n", "missing column(s) nucleic_acid (need protein, nucleic_acid)"),
        ("protein\tnucleic_acid\tna_type\nMKV\tACGT\tDNA\nMKV\tACGT\tOther\n", "line 3: na_type 'Other' is not"),
        ("protein\tnucleic_acid\nMKV\t\n", "line 2, nucleic_acid: no nucleic-acid sequence"),
        ("protein\tnucleic_acid\nMKXV\tACGT\n", "line 2, protein: non-standard amino acid 'X' at position 3"),
        ("protein\tnucleic_acid\tcomplement\nMKV\tACGT\tACNT\n", "line 2, complement: 'N' at position 3"),
        ("protein\tnucleic_acid\n", "no complexes (only a header)"),
    ]:
        path.write_text(text)
        with pytest.raises(InputError, match=re.escape(message)):
            read_complexes_tsv(path)
    path.write_text("protein\tnucleic_acid\nMKXV\tACNT\n")
    unk = read_complexes_tsv(path, on_unknown="unk")[0]
    assert (unk.protein.sequence, unk.nucleic_acid.sequence) == ("MKXV", "ACNT")


def test_homology_scores_real_proteins(pronab_table):
    table, _ = pronab_table
    proteins = list(dict.fromkeys(table["protein"]))[:12]
    scores = raw_score_matrix(proteins, workers=2)
    assert scores[0, 1] == alignment_score(proteins[0], proteins[1])
    h = normalise(scores)
    assert np.allclose(np.diag(h), 1.0) and np.allclose(h, h.T)
    # a fragment of a protein is fully homologous to it; a shuffled copy is not
    fragment = proteins[0][10:90]
    shuffled = "".join(np.random.default_rng(0).permutation(list(proteins[0])))
    h2 = homology_matrix([proteins[0], fragment, shuffled], workers=1)
    assert h2[0, 1] == pytest.approx(1.0) and h2[0, 2] < 0.2


def test_homology_cache(tmp_path):
    seqs = ["MKVLAAGIVGLLLAW", "MKVLAAGIVG", "WWPPGGHHKK"]
    first = homology_matrix(seqs, workers=1, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("homology-*.npy"))) == 1
    assert np.array_equal(homology_matrix(seqs, workers=1, cache_dir=tmp_path), first)


def test_folds_never_share_a_protein_and_balance_rows(pronab_table):
    table, _ = pronab_table
    plan = plan_folds(table["protein"].tolist(), n_folds=10, seed=3)
    folds = plan.fold_of_rows(table["protein"].tolist())
    for protein, f in zip(table["protein"], folds):
        assert f == plan.fold_of_protein[plan.proteins.index(protein)]
    per_protein = table.assign(fold=folds).groupby("protein")["fold"].nunique()
    assert (per_protein == 1).all()
    sizes = np.bincount(folds, minlength=10)
    assert sizes.min() > 0.8 * sizes.mean()
    assert np.array_equal(plan_folds(table["protein"].tolist(), 10, seed=3).fold_of_protein, plan.fold_of_protein)


def test_homology_guard_keeps_related_proteins_out_of_test_folds():
    base = (
        "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLGQHDFSAGEGLYTHMKALR"
        "PDEDRLSPLHSVYVDQWDWERVMGDGERQFSTLKSTVEAIWAGIKATEAAVSEEFGLAPFLPDQIHFVHSQELLSRYPDLDAKGRERAIAKDLGAVFLVG"
        "IGGKLSDGHRHDVRAPDYDDWSTPSELGHAGLNGDILVWNPVLEDAFELSSMGIRVDADTLKHQLALTGDEDRLELEWHQALLRGEMPQTIGGGIGQSRL"
        "TMLLLQLPHIGQVQAGVWPAACAPEATLLAAGY"
    )
    related = base[:150] + "W" * 10 + base[160:]  # a close variant
    unrelated = ["".join(np.random.default_rng(i).choice(list("ACDEFGHIKLMNPQRSTVWY"), 200)) for i in range(6)]
    proteins = [base, related, *unrelated]
    rows = [p for p in proteins for _ in range(3)]
    h = homology_matrix(proteins, workers=1)
    assert homology_guard(h, 0.5).tolist() == [True, True] + [False] * 6
    plan = plan_folds(rows, n_folds=3, seed=0, homology=h, threshold=0.5)
    assert plan.fold_of_protein[:2].tolist() == [-1, -1]
    assert (plan.fold_of_protein[2:] >= 0).all()
    # #31 §5: more folds than proteins to test was a ValueError traceback; now one line saying how many can be
    with pytest.raises(
        InputError, match=r"^--folds 7: the data have 6 proteins to test \(the homology guard keeps 2 more"
    ):
        plan_folds(rows, n_folds=7, seed=0, homology=h, threshold=0.5)
    with pytest.raises(
        InputError, match=r"^--folds 9: the data have 8 proteins to test, .* at most 8 folds are possible$"
    ):
        plan_folds(rows, n_folds=9, seed=0)


def test_pronab_nulls_are_counted_drops_and_wrong_types_one_line_errors(tmp_path):
    import json

    path = tmp_path / "pronab.json"
    good = ["ACGT", "DNA", 1e-6, -8.0, "ACGT"]
    data = {
        "P2": {
            "Sequence": "MKVLAAGG",
            "binding data": [good, [None, "DNA", 1e-6, -8.0, None], ["ACGT", None, 1e-6, -8.0, None]],
        },
        "P4": {
            "Sequence": "MKVLW",
            "binding data": [["ACGGT", "DNA", None, -7.0, None], ["ACGGT", "DNA", 1e-6, None, None]],
        },
    }
    path.write_text(json.dumps(data))
    table, dropped = load_pronab_json(path)
    assert table["protein_id"].tolist() == ["P2"]
    assert dropped == {"empty_nucleic_acid": 1, "other_type": 1, "missing_value": 2}
    for entry, message in [
        ({"Sequence": None, "binding data": [good]}, "entry 'P5': 'Sequence' is null"),  # once: None.upper()
        ({"Sequence": "", "binding data": [good]}, "entry 'P5': 'Sequence' is empty"),
        ({"Sequence": 5, "binding data": [good]}, "entry 'P5': 'Sequence' must be a string or null (got int '5')"),
        ({"Sequence": "MKV", "binding data": [[7, "DNA", 1, -8, None]]}, "row 1: the nucleic acid must be a string"),
        ({"Sequence": "MKV", "binding data": [["ACGT", "DNA", "x", -8, None]]}, "row 1: expected [nucleic_acid"),
        ({"Sequence": "MKV", "binding data": {"a": 1}}, "'binding data' must be a list of rows"),
    ]:
        path.write_text(json.dumps({"P5": entry}))
        with pytest.raises(InputError) as info:
            load_pronab_json(path)
        assert message in str(info.value) and "\n" not in str(info.value)


def test_nonstandard_rows_are_dropped_unless_kept_for_unk(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("protein\tnucleic_acid\tdG\nMKXV\tACGT\t-9\nMKV\tACNGT\t-8\nMKV\tACGT\t-7\n")
    table, dropped = load_pairs_tsv(path)
    assert len(table) == 1 and dropped == {"nonstandard_protein": 1, "nonstandard_nucleic_acid": 1}
    kept, dropped = load_affinity_data(path, keep_nonstandard=True)
    assert kept["protein"].tolist() == ["MKXV", "MKV", "MKV"] and dropped == {}


def test_pronab_json_reads_the_same_gzipped_and_a_truncated_copy_is_one_error(tmp_path, pronab_path):
    import gzip

    from obte_cli.engine.affinity.data import load_affinity_data

    packed = gzip.compress(Path(pronab_path).read_bytes())
    (tmp_path / "p.json.gz").write_bytes(packed)
    plain, _ = load_affinity_data(pronab_path)
    zipped, _ = load_affinity_data(tmp_path / "p.json.gz")
    pd.testing.assert_frame_equal(plain, zipped)
    (tmp_path / "cut.json.gz").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(InputError, match="corrupt or truncated compressed file"):
        load_affinity_data(tmp_path / "cut.json.gz")


def test_a_json_gz_that_expands_without_bound_is_refused_not_held(tmp_path, monkeypatch):
    """A small .json.gz whose content runs on (here 4 MiB of spaces against a 1 MiB limit; the real limit is
    256 MiB) is refused once the limit is passed, without reading the rest."""
    import gzip

    from obte_cli.engine.affinity import data

    monkeypatch.setattr(data, "MAX_JSON_CHARS", 2**20)
    bomb = tmp_path / "pronab.json.gz"
    with gzip.open(bomb, "wb") as handle:
        handle.write(b"{" + b" " * (4 * 2**20) + b"}")
    assert bomb.stat().st_size < 50_000
    with pytest.raises(InputError, match=r"pronab.json.gz: more than 1 MiB of JSON \(once decompressed\)"):
        data.load_pronab_json(bomb)
    small = tmp_path / "ok.json.gz"
    with gzip.open(small, "wb") as handle:
        handle.write(b"{}")
    with pytest.raises(InputError, match="no usable rows"):  # read and parsed: under the limit
        data.load_pronab_json(small)
