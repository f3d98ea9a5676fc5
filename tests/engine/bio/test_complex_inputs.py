"""Reading protein / nucleic-acid FASTA into complexes for `obte affinity`."""

import gzip

import pytest
from hypothesis import given
from hypothesis import strategies as st

from obte_cli.engine.bio.complex_inputs import (
    complements_for,
    pair_complexes,
    read_fasta_complexes,
    read_nucleic_acids,
    read_proteins,
    reverse_complement,
)
from obte_cli.engine.core.errors import InputError

dna = st.text(alphabet="ACGT", min_size=1, max_size=60)


@given(dna)
def test_reverse_complement_is_an_involution_that_pairs_bases(strand):
    rc = reverse_complement(strand)
    assert reverse_complement(rc) == strand
    pairs = {("A", "T"), ("T", "A"), ("C", "G"), ("G", "C")}
    assert all((a, b) in pairs for a, b in zip(strand, reversed(rc)))


def test_reads_gzip_and_types_strands(tmp_path):
    path = tmp_path / "na.fa.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(">d1 some DNA\nacgt\nAC\n>r1\nACGUU\n>x1\nAAAA\n>m1\nACGUT\n")
    acids = read_nucleic_acids(path)
    assert [(a.id, a.sequence, a.na_type, a.na_type_assumed) for a in acids] == [
        ("d1", "ACGTAC", "DNA", True),  # A/C/G/T only: DNA is a guess (RNA is often written with T)
        ("r1", "ACGTT", "RNA", False),
        ("x1", "AAAA", "DNA", True),
        ("m1", "ACGTT", "RNA", False),  # a U makes it RNA, whatever else it holds
    ]
    assert complements_for(acids, "none") == ["", "", "", ""]
    assert complements_for(acids, "revcomp") == ["GTACGT", "AACGT", "TTTT", "AACGT"]
    as_rna = read_nucleic_acids(path, "RNA")
    assert [(a.na_type, a.na_type_assumed) for a in as_rna] == [("RNA", False)] * 4
    assert [a.sequence for a in as_rna] == [a.sequence for a in acids]


def test_complement_auto_is_refused_saying_what_replaced_it(tmp_path):
    (tmp_path / "n.fa").write_text(">a\nACG\n")
    with pytest.raises(InputError, match="--complement auto is no more: .* use 'revcomp' for double-stranded sites"):
        complements_for(read_nucleic_acids(tmp_path / "n.fa"), "auto")


def test_an_empty_complement_record_leaves_that_strand_single_stranded(tmp_path):
    (tmp_path / "n.fa").write_text(">a\nACG\n>b\nGTT\n>c\nAAC\n")
    (tmp_path / "c.fa").write_text(">ca\ncgu\n>cb\n>cc\nGTT\n")
    acids = read_nucleic_acids(tmp_path / "n.fa")
    assert complements_for(acids, str(tmp_path / "c.fa")) == ["CGT", "", "GTT"]
    (tmp_path / "bad.fa").write_text(">ca\nCGT\n>cb\nCGN\n")
    with pytest.raises(InputError, match=r"bad.fa: record 2 \('cb'\): 'N' at position 3 is not a nucleotide"):
        complements_for(acids[:2], str(tmp_path / "bad.fa"))


def test_pairing_all_and_zip(tmp_path):
    (tmp_path / "p.fa").write_text(">p1\nMKV\n>p2\nMRW\n")
    (tmp_path / "n.fa").write_text(">a\nAC\n>b\nGT\n")
    proteins, acids = read_proteins(tmp_path / "p.fa"), read_nucleic_acids(tmp_path / "n.fa")
    all_pairs = [(c.protein.id, c.nucleic_acid.id) for c in pair_complexes(proteins, acids, ["", ""], "all")]
    assert all_pairs == [("p1", "a"), ("p1", "b"), ("p2", "a"), ("p2", "b")]
    zipped = [(c.protein.id, c.nucleic_acid.id) for c in pair_complexes(proteins, acids, ["", ""], "zip")]
    assert zipped == [("p1", "a"), ("p2", "b")]
    with pytest.raises(InputError, match="--pairs must be one of all, zip"):
        pair_complexes(proteins, acids, ["", ""], "cross")


def test_fasta_complexes_pair_the_strands_with_their_complements_and_count_the_dna_guesses(tmp_path):
    (tmp_path / "p.fa").write_text(">p1\nMKV\n>p2\nMRW\n")
    (tmp_path / "n.fa").write_text(">a\nACGT\n>b\nACGU\n")
    complexes, assumed = read_fasta_complexes(tmp_path / "p.fa", tmp_path / "n.fa", "revcomp")
    rows = [(c.protein.id, c.nucleic_acid.id, c.nucleic_acid.na_type, c.complement) for c in complexes]
    assert rows == [
        ("p1", "a", "DNA", "ACGT"),
        ("p1", "b", "RNA", "ACGT"),  # strands are kept with T: ACGU reads as ACGT, RNA for its U
        ("p2", "a", "DNA", "ACGT"),
        ("p2", "b", "RNA", "ACGT"),
    ]
    assert assumed == 1  # a strand of the input, not of the pairs: only 'a' is DNA for want of a U
    zipped, assumed = read_fasta_complexes(tmp_path / "p.fa", tmp_path / "n.fa", na_type="RNA", pairing="zip")
    assert [(c.protein.id, c.nucleic_acid.id, c.complement) for c in zipped] == [("p1", "a", ""), ("p2", "b", "")]
    assert assumed == 0


def test_complement_file_must_match_the_nucleic_acids(tmp_path):
    (tmp_path / "n.fa").write_text(">a\nACG\n>b\nGTT\n")
    (tmp_path / "c.fa").write_text(">ca\nCGT\n")
    acids = read_nucleic_acids(tmp_path / "n.fa")
    with pytest.raises(
        InputError, match="1 complementary strands for 2 nucleic acids .*an empty record for a single strand"
    ):
        complements_for(acids, str(tmp_path / "c.fa"))


def test_unknown_letters_are_refused_naming_the_record_or_let_through_for_unk(tmp_path):
    from obte_cli.engine.core.errors import UnknownResidueError

    (tmp_path / "p.fa").write_text(">p1\nMKVXLA\n")
    (tmp_path / "n.fa").write_text(">d1\nACNGT\n")
    with pytest.raises(UnknownResidueError, match=r"record 1 \('p1'\): non-standard amino acid 'X' at position 4"):
        read_proteins(tmp_path / "p.fa")
    with pytest.raises(UnknownResidueError, match="'N' at position 3 is not a nucleotide"):
        read_nucleic_acids(tmp_path / "n.fa")
    assert read_proteins(tmp_path / "p.fa", "unk")[0].sequence == "MKVXLA"
    acids = read_nucleic_acids(tmp_path / "n.fa", "auto", "unk")
    assert acids[0].sequence == "ACNGT" and complements_for(acids, "revcomp") == ["ACNGT"]


def test_a_protein_given_as_the_nucleic_acid_is_refused_even_with_unk(tmp_path):
    # Sac7d's first residues: 15 of 21 letters are not A/C/G/T/U/N
    (tmp_path / "n.fa").write_text(">d1\nACGTACGT\n>p1\nMVKVKFKYKGEEKEVDTSKIK\n")
    with pytest.raises(InputError, match=r"n.fa: record 2 \('p1'\): looks like a protein, not a nucleic acid"):
        read_nucleic_acids(tmp_path / "n.fa", "auto", "unk")
    (tmp_path / "iupac.fa").write_text(">d1\nACGTNNRYACGT\n")  # a few ambiguity codes stay accepted
    assert read_nucleic_acids(tmp_path / "iupac.fa", "auto", "unk")[0].sequence == "ACGTNNRYACGT"


@pytest.mark.parametrize("on_unknown", ["error", "unk"])
def test_a_nucleic_acid_given_as_a_protein_is_refused_as_the_reverse_is(tmp_path, on_unknown):
    """Issue #31 §4: one DNA record among proteins was scored as a protein (only an all-DNA file was refused)."""
    from obte_cli.engine.affinity.data import read_complexes_tsv

    (tmp_path / "p.fa").write_text(">p1\nMVKVKFKYKGEEKEVDTSKIK\n>d1\nACGTTGCAAC\n")
    with pytest.raises(InputError, match=r"p.fa: record 2 \('d1'\): looks like a nucleic acid, not a protein"):
        read_proteins(tmp_path / "p.fa", on_unknown)
    (tmp_path / "c.tsv").write_text("protein\tnucleic_acid\nMVKVKFKYKG\tACGT\nacguuagc\tACGT\n")
    with pytest.raises(InputError, match=r"c.tsv: line 3, protein: looks like a nucleic acid, not a protein"):
        read_complexes_tsv(tmp_path / "c.tsv", on_unknown=on_unknown)
    (tmp_path / "silk.fa").write_text(">s\nGAGAGSGAGAGS\n")  # a protein of mostly nucleotide letters stays one
    assert read_proteins(tmp_path / "silk.fa")[0].sequence == "GAGAGSGAGAGS"
