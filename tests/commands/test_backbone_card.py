"""The bundled pretrained backbone reproduces the figures of its model card.

``scripts/backbone-card.py`` scored every record of the Debian corpus' held-out split with ``obte score``
and wrote ``heldout-records.tsv``, aggregated into ``heldout.tsv``, which the card's README quotes. These
tests re-score a sample of those records (``tests/data/debian-heldout`` is that split) with the shipped
weights, and check each link of the chain: records → aggregate → README.
"""

import csv
import gzip
import re

import pytest
from conftest import DATA, obte

from obte_cli.engine.core.resources import default_backbone_dir

BACKBONE = default_backbone_dir()
pytestmark = pytest.mark.skipif(BACKBONE is None, reason="this installation ships no pretrained backbone")
HELDOUT = DATA / "debian-heldout"


def _table(path):
    with open(path) as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _first_records(molecule_type: str, per_file: int) -> str:
    fasta = []
    for path in sorted((HELDOUT / molecule_type).glob("*.fa.gz")):
        text = gzip.open(path, "rt").read()
        fasta.extend(">" + record for record in text.split(">")[1 : per_file + 1])
    return "".join(fasta)


@pytest.mark.parametrize("molecule_type,per_file", [("protein", 3), ("DNA", 1), ("pre-miRNA", 4), ("miRNA", 6)])
def test_shipped_weights_reproduce_the_cards_per_record_scores(tmp_path, molecule_type, per_file):
    card = {row["id"]: row for row in _table(BACKBONE / "heldout-records.tsv")}
    fasta = tmp_path / "sample.fa"
    fasta.write_text(_first_records(molecule_type, per_file))
    result = obte("score", fasta, "--molecule-type", molecule_type)  # no --model: the bundled backbone
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(result.stdout.splitlines(), delimiter="\t"))
    assert len(rows) >= 4
    for row in rows:
        expected = card[row["id"]]
        assert row["molecule_type"] == expected["molecule_type"] == molecule_type
        assert row["length"] == expected["length"]
        assert float(row["bits_per_residue"]) == pytest.approx(float(expected["bits_per_residue"]), abs=2e-4)
        # a near-tie between two letters may flip with the row layout (other records packed beside it)
        one_residue = 1.0 / int(row["length"])
        assert float(row["masked_accuracy"]) == pytest.approx(
            float(expected["masked_accuracy"]), abs=one_residue + 2e-4
        )


def test_the_cards_aggregates_are_residue_weighted_means_of_its_records():
    records = _table(BACKBONE / "heldout-records.tsv")
    summary = {row["molecule_type"]: row for row in _table(BACKBONE / "heldout.tsv")}
    groups = {name: [r for r in records if r["molecule_type"] == name] for name in summary if " " not in name}
    groups["all protein"] = groups["protein"]
    groups["all nucleic"] = [r for r in records if r["molecule_type"] != "protein"]
    for name, rows in groups.items():
        residues = sum(int(r["length"]) for r in rows)
        bits = sum(float(r["bits_per_residue"]) * int(r["length"]) for r in rows) / residues
        assert int(summary[name]["records"]) == len(rows)
        assert int(summary[name]["residues"]) == residues
        assert float(summary[name]["bits_per_residue"]) == pytest.approx(bits, abs=1e-4)


def test_the_readme_quotes_the_measured_figures():
    readme = (BACKBONE / "README.md").read_text()
    summary = {row["molecule_type"]: row for row in _table(BACKBONE / "heldout.tsv")}
    for name in ("all protein", "all nucleic"):
        row = summary[name]
        line = next(line for line in readme.splitlines() if line.startswith(f"| {name} |"))
        numbers = re.findall(r"\d+\.\d+", line)
        assert f"{float(row['bits_per_residue']):.3f}" in numbers, line
        assert f"{float(row['unigram_bits']):.3f}" in numbers, line
        assert f"{float(row['masked_accuracy']):.3f}" in numbers, line
