"""`obte contacts labels`: contact labels from real structures (tests/data/structures), checked by brute force."""

import gzip

import numpy as np
import pandas as pd
import pytest
from conftest import DATA, obte

from obte_cli.engine.core.resources import example_file

STRUCTURES = DATA / "structures"


def _atoms_from_pdb(path):
    """Heavy atoms of MODEL 1 from PDB ATOM records, parsed by column, with no structure library."""
    atoms = []
    for line in gzip.decompress(path.read_bytes()).decode().splitlines():
        if line.startswith("ENDMDL"):
            break
        if line.startswith("ATOM") and line[76:78].strip() != "H" and not line[12:16].strip().startswith("H"):
            atoms.append(
                (
                    line[21],
                    int(line[22:26]),
                    line[17:20].strip(),
                    np.array([float(line[30:38]), float(line[38:46]), float(line[46:54])]),
                )
            )
    return atoms


def test_1lcd_labels_match_a_brute_force_distance_computation(tmp_path):

    cif = STRUCTURES / "1LCD.cif.gz"
    pdb = STRUCTURES / "1LCD.pdb.gz"
    result = obte("contacts", "labels", cif, "-o", tmp_path / "labels.tsv")
    assert result.exit_code == 0, result.output
    labels = pd.read_csv(tmp_path / "labels.tsv", sep="\t", keep_default_na=False)
    assert set(labels["chain"]) == {"A"} and labels["na_sequences"].iloc[0] == "AATTGTGAGCG,CGCTCACAATT"
    assert "".join(labels["aa"]) == "MKPVTLYDVAEYAGVSYQTVSRVVNQASHVSAKTREKVEAAMAELNYIPNR"
    atoms = _atoms_from_pdb(pdb)
    protein = [a for a in atoms if a[0] == "A"]
    nucleic = np.array([a[3] for a in atoms if a[0] in "BC"])
    by_residue = {}
    for _, resnum, _, xyz in protein:
        distance = np.sqrt(((nucleic - xyz) ** 2).sum(axis=1)).min()
        by_residue[resnum] = min(by_residue.get(resnum, np.inf), distance)
    for row in labels.itertuples():
        expected = by_residue[row.resnum]
        for cutoff in (4, 6, 8):
            assert getattr(row, f"contact_{cutoff}") == int(expected <= cutoff), (row.resnum, cutoff)
        if expected <= 8:
            assert abs(float(row.min_distance) - expected) < 0.01
        else:
            assert row.min_distance == "NA"
    assert 0 < labels["contact_4"].sum() < labels["contact_8"].sum() < len(labels)


def test_selection_rule_per_chain_and_skips(tmp_path):

    dimer = STRUCTURES / "1W0T.pdb.gz"  # TRF1 Myb domains: two identical protein chains, two DNA strands
    single = example_file("1AZP.pdb.gz")
    strict = obte("contacts", "labels", dimer, single)
    assert strict.exit_code == 0
    assert "skipped" in strict.stderr and "2 protein and 2 nucleic-acid chains" in strict.stderr
    assert set(line.split("\t")[0] for line in strict.stdout.splitlines()[1:]) == {"1AZP"}
    both = obte("contacts", "labels", dimer, "--per-chain")
    chains = {tuple(line.split("\t")[:2]) for line in both.stdout.splitlines()[1:]}
    assert len(chains) == 2


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty file"),
        (b"hello, this is not a structure\n", "skipped"),
    ],
)
def test_bad_structures_are_skipped_with_a_reason_and_nothing_left_is_an_error(tmp_path, content, reason):

    bad = tmp_path / "bad.pdb"
    bad.write_bytes(content)
    alone = obte("contacts", "labels", bad)
    assert alone.exit_code == 1 and alone.stderr.strip().splitlines()[-1].startswith("error: no structure gave")
    assert reason in alone.stderr
    with_good = obte("contacts", "labels", bad, STRUCTURES / "1LCD.cif.gz")
    assert with_good.exit_code == 0 and "skipped" in with_good.stderr


def test_protein_only_structure_is_skipped(tmp_path):

    lines = [
        line
        for line in gzip.decompress((STRUCTURES / "1LCD.pdb.gz").read_bytes()).decode().splitlines()
        if not (line.startswith(("ATOM", "HETATM", "TER")) and line[21] in "BC")
    ]
    protein_only = tmp_path / "protein.pdb.gz"
    protein_only.write_bytes(gzip.compress("\n".join(lines).encode()))
    result = obte("contacts", "labels", protein_only)
    assert result.exit_code == 1 and "no nucleic-acid chain" in result.stderr


def test_protein_rna_complex_is_labelled_with_its_rna_strand():
    """3PF4 (PRDB v3 protein–RNA benchmark): a cold-shock protein, chain B (66 residues), on the RNA CUUU."""
    result = obte("contacts", "labels", STRUCTURES / "3PF4.pdb.gz")
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    labels = pd.DataFrame(rows[1:], columns=rows[0])
    assert len(labels) == 66 and set(labels["chain"]) == {"B"}
    assert set(zip(labels["na_chains"], labels["na_types"], labels["na_sequences"])) == {("R", "RNA", "CUUU")}
    contacts = {c: labels[f"contact_{c}"].astype(int).sum() for c in (4, 6, 8)}
    assert 0 < contacts[4] <= contacts[6] <= contacts[8] < len(labels)
