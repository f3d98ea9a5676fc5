"""NaN and infinite ΔG or Kd: an error naming file, row and column, in ProNAB JSON (whose missing values are 0
or null, dropped and counted) as in a pairs TSV (which has none); likewise a ΔG beyond ±100 kcal/mol, an
entry without a protein sequence and an empty protein or nucleic-acid cell (issue #31 §4)."""

import json
import re

import pytest

from obte_cli.engine.affinity.data import load_affinity_data, load_pairs_tsv, load_pronab_json
from obte_cli.engine.core.errors import InputError

PROTEIN = "MKVLAAGIVWHDE"


def pronab(rows, sequence=PROTEIN):
    return {"P12345": {"Sequence": sequence, "binding data": rows}}


def test_pronab_drops_and_counts_missing_values(tmp_path):
    path = tmp_path / "pronab.json"
    rows = [
        ["ACGTACGT", "DNA", 1e-9, -9.1, ""],
        ["ACGTACCG", "DNA", 0, -7.0, ""],  # ProNAB's own missing value
        ["ACGTACCA", "DNA", 1e-9, 0, ""],
        ["ACGTACCC", "DNA", None, -7.0, ""],  # null
        ["ACGTACCT", "DNA", 1e-9, None, ""],
        ["", "DNA", 1e-9, -8.0, "ACGT"],  # only the complement given, as two real ProNAB rows
    ]
    path.write_text(json.dumps(pronab(rows)))
    for load in (load_pronab_json, load_affinity_data):
        table, dropped = load(path)
        assert table["dG"].tolist() == [-9.1]
        assert dropped == {"missing_value": 4, "empty_nucleic_acid": 1}


@pytest.mark.parametrize(
    "kd, dg, column, shown",
    [
        (1e-9, float("nan"), "dG", "nan"),  # written as NaN: Python's JSON reads it
        (1e-9, float("inf"), "dG", "inf"),
        (1e-9, float("-inf"), "dG", "-inf"),
        (1e-9, "Infinity", "dG", "'Infinity'"),
        ("nan", -8.0, "Kd", "'nan'"),  # a Kd of NaN, as a string
        (10**400, -8.0, "Kd", "an integer too large for a float"),  # too large for a float
    ],
)
def test_pronab_with_a_non_finite_value_names_entry_row_and_column(tmp_path, kd, dg, column, shown):
    path = tmp_path / "pronab.json"
    path.write_text(json.dumps(pronab([["ACGTACGT", "DNA", 1e-9, -9.1, ""], ["ACGTACGA", "DNA", kd, dg, ""]])))
    for load in (load_pronab_json, load_affinity_data):
        message = f"{path}: entry 'P12345' row 2: {column} {shown} is not a finite number"
        with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
            load(path)


@pytest.mark.parametrize("sequence, what", [(None, "null"), ("", "empty")])
def test_pronab_entry_without_a_protein_sequence_is_an_error(tmp_path, sequence, what):
    path = tmp_path / "pronab.json"
    path.write_text(json.dumps(pronab([["ACGTACGT", "DNA", 1e-9, -9.1, ""]], sequence)))
    with pytest.raises(InputError, match=f"^{re.escape(str(path))}: entry 'P12345': 'Sequence' is {what}"):
        load_pronab_json(path)


@pytest.mark.parametrize("dg", [1e308, -150.0, 101.0])
def test_a_dg_beyond_100_kcal_per_mol_is_an_error_in_either_format(tmp_path, dg):
    """Not a binding free energy; a huge one ended in a scikit-learn traceback (`--method composition`)."""
    path = tmp_path / "pronab.json"
    path.write_text(json.dumps(pronab([["ACGTACGT", "DNA", 1e-9, -9.1, ""], ["ACGTACGA", "DNA", 1e-9, dg, ""]])))
    with pytest.raises(InputError, match="^" + re.escape(f"{path}: entry 'P12345' row 2: dG {dg:g} is beyond ±100")):
        load_pronab_json(path)
    path = tmp_path / "pairs.tsv"
    path.write_text(f"protein\tnucleic_acid\tdG\n{PROTEIN}\tACGT\t-9.1\n{PROTEIN}\tACGA\t{dg!r}\n")
    with pytest.raises(InputError, match="^" + re.escape(f"{path}: line 3: dG {dg:g} is beyond ±100 kcal/mol")):
        load_pairs_tsv(path)


@pytest.mark.parametrize("column", ["protein", "nucleic_acid"])
def test_pairs_tsv_with_an_empty_sequence_names_file_line_and_column(tmp_path, column):
    path = tmp_path / "pairs.tsv"
    cells = {"protein": PROTEIN, "nucleic_acid": "ACGA", column: ""}
    path.write_text(
        f"protein\tnucleic_acid\tdG\n{PROTEIN}\tACGT\t-9.1\n{cells['protein']}\t{cells['nucleic_acid']}\t-8\n"
    )
    for load in (load_pairs_tsv, load_affinity_data):
        with pytest.raises(InputError, match=f"^{re.escape(str(path))}: line 3: {column} is empty$"):
            load(path)


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
