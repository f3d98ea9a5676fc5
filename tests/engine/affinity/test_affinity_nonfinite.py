"""NaN and infinite ΔG: dropped and counted in ProNAB JSON (a format with missing values), an error
naming file, line and column in a pairs TSV (which has none)."""

import json

import pytest

from obte_cli.engine.affinity.data import load_affinity_data, load_pairs_tsv, load_pronab_json
from obte_cli.engine.core.errors import InputError

PROTEIN = "MKVLAAGIVWHDE"


def pronab(rows):
    return {"P12345": {"Sequence": PROTEIN, "binding data": rows}}


def test_pronab_drops_and_counts_non_finite_values(tmp_path):
    path = tmp_path / "pronab.json"
    rows = [
        ["ACGTACGT", "DNA", 1e-9, -9.1, ""],
        ["ACGTACGA", "DNA", 1e-9, float("nan"), ""],  # written as NaN: Python's JSON reads it
        ["ACGTACGC", "DNA", 1e-9, float("inf"), ""],
        ["ACGTACGG", "DNA", 1e-9, float("-inf"), ""],
        ["ACGTACCA", "DNA", "nan", -8.0, ""],  # a Kd of NaN, as a string
        ["ACGTACCC", "DNA", 1e-9, "Infinity", ""],
        ["ACGTACCG", "DNA", 0, -7.0, ""],  # ProNAB's own missing value
    ]
    path.write_text(json.dumps(pronab(rows)))
    for load in (load_pronab_json, load_affinity_data):
        table, dropped = load(path)
        assert table["dG"].tolist() == [-9.1]
        assert dropped == {"missing_value": 6}


def test_pronab_with_only_non_finite_values_is_an_error(tmp_path):
    path = tmp_path / "pronab.json"
    path.write_text(json.dumps(pronab([["ACGT", "DNA", 1e-9, float("nan"), ""]])))
    with pytest.raises(InputError, match=r"no usable rows after filtering \(\{'missing_value': 1\}\)"):
        load_pronab_json(path)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-Infinity", "1e400"])
def test_pairs_tsv_with_a_non_finite_dg_names_file_line_and_column(tmp_path, value):
    path = tmp_path / "pairs.tsv"
    path.write_text(f"protein\tnucleic_acid\tdG\n{PROTEIN}\tACGT\t-9.1\n{PROTEIN}\tACGA\t{value}\n")
    for load in (load_pairs_tsv, load_affinity_data):
        with pytest.raises(InputError, match=rf"^{path}: line 3: dG '{value}' is not a finite number$"):
            load(path)


def test_pairs_tsv_with_an_empty_dg(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text(f"protein\tnucleic_acid\tdG\n{PROTEIN}\tACGT\t\n")
    with pytest.raises(InputError, match=r"line 2: dG '' is not a number"):
        load_pairs_tsv(path)
