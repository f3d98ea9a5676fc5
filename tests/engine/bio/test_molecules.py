import pytest

from obte_cli.engine.bio.molecules import (
    MOLECULE_TYPES,
    detect_molecule_type,
    molecule_type,
    tag_chain,
)


@pytest.mark.parametrize(
    "name, canonical",
    [
        ("dna", "DNA"),
        ("mRNA", "mRNA"),
        ("MRNA", "mRNA"),
        ("genomic DNA", "DNA"),
        ("viral cRNA", "cRNA"),
        ("ss-RNA", "ss-RNA"),
        ("Protein", "protein"),
        ("other RNA", "RNA"),
    ],
)
def test_lookup_is_case_insensitive_and_knows_genbank_mol_types(name, canonical):
    assert molecule_type(name).name == canonical


def test_unknown_type_names_the_choices():
    with pytest.raises(KeyError, match="known: protein"):
        molecule_type("plasmid")


def test_every_type_falls_back_to_a_root_tag():
    for mol in MOLECULE_TYPES.values():
        assert tag_chain(mol)[-1] in {"protein", "DNA", "RNA"}
    assert tag_chain(MOLECULE_TYPES["ds-mRNA"]) == ["ds-mRNA", "mRNA", "RNA"]


@pytest.mark.parametrize(
    "sequence, expected",
    [
        ("ACGTNNACGT", "DNA"),
        ("acguuacg", "RNA"),
        ("ACGUT", "DNA"),
        ("MKVLAAGIV", "protein"),
        ("NNNN", "protein"),
        ("ACGTX", "protein"),
    ],
)
def test_detection_rule(sequence, expected):
    assert detect_molecule_type(sequence).name == expected
