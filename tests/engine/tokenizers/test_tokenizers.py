import json

import numpy as np
import pytest
import sentencepiece as spm
from conftest import shared_file
from hypothesis import given, settings
from hypothesis import strategies as st

from obte_cli.engine.bio.molecules import AMINO_ACIDS
from obte_cli.engine.core.errors import (
    InputError,
    ModelFormatError,
    UnknownResidueError,
)
from obte_cli.engine.tokenizers.base import Segment
from obte_cli.engine.tokenizers.loading import load_tokenizer
from obte_cli.engine.tokenizers.residue import ResidueTokenizer

NA_TYPES = ["DNA", "RNA", "mRNA", "tRNA", "rRNA", "ss-DNA", "cRNA"]
proteins = st.text(alphabet=AMINO_ACIDS + AMINO_ACIDS.lower(), min_size=1, max_size=300)
nucleics = st.text(alphabet="ACGTacgt", min_size=1, max_size=300)
segments = st.one_of(
    st.builds(lambda s: Segment(s, "protein", "p"), proteins),
    st.builds(lambda s, t: Segment(s, t, "n"), nucleics, st.sampled_from(NA_TYPES)),
)
records = st.lists(segments, min_size=1, max_size=4)


def canonical(segment: Segment) -> str:
    text = segment.sequence.upper()
    if segment.molecule != "protein":
        text = text.replace("U", "T")
        if "RNA" in segment.molecule:
            text = text.replace("T", "U")
    return text


@pytest.fixture(scope="session", params=["residue", "mixed", "paired"])
def any_tokenizer(request, residue_tokenizer, mixed_tokenizer, paired_tokenizer):
    return {"residue": residue_tokenizer, "mixed": mixed_tokenizer, "paired": paired_tokenizer}[request.param]


# ---- reference layout ---------------------------------------------------------------------------
def test_mixed_bpe_reproduces_reference_layout_on_pronab(pronab, mixed_model_file, mixed_tokenizer):
    """Our segment-wise encoding equals sentencepiece on the reference's whole input string, minus the
    lone dummy-prefix piece the reference drops, on real ProNAB complexes (protein, NA, complement)."""
    sp = spm.SentencePieceProcessor(model_file=str(mixed_model_file))
    dummy = sp.piece_to_id("\u2581")
    checked = 0
    for entry in list(pronab.values())[:120]:
        protein = entry["Sequence"]
        if set(protein) - set(AMINO_ACIDS):
            continue
        na, kind, _, _, complement = entry["binding data"][0]
        if not na or set(na + complement) - set("ACGT"):
            continue
        tag = "<RNA>" if kind == "RNA" else "<DNA>"
        text = f"<protein>{protein}<EOS>{tag}{na}<EOS>" + (f"{tag}{complement}<EOS>" if complement else "")
        reference = [i for i in sp.encode(text) if i != dummy]
        segs = [Segment(protein, "protein", "p"), Segment(na, "RNA" if kind == "RNA" else "DNA", "n")]
        if complement:
            segs.append(Segment(complement, segs[1].molecule, "c"))
        assert mixed_tokenizer.encode_one(segs).ids.tolist() == reference
        checked += 1
    assert checked > 50


@pytest.mark.slow
def test_reference_paired_models_keep_the_modalities_apart():
    """The reference's two 65,536-piece models (../shared), one per modality: nucleic ids [0, 65536), protein
    ids after them, and real sequences read back. The paired_tokenizer fixture (small models trained from
    tests/data) checks the same layout in every property test below, without ../shared."""
    from obte_cli.engine.tokenizers.sentencepiece import SentencePieceTokenizer

    nucleotide = shared_file("omnibiote-ref", "nucleotide_bpe.model")
    peptide = shared_file("omnibiote-ref", "peptide_bpe.model")
    tok = SentencePieceTokenizer.from_model_files({str(nucleotide): ["nucleic"], str(peptide): ["protein"]})
    protein, nucleic = tok.residue_ids("protein"), tok.residue_ids("nucleic")
    assert nucleic.max() < 65536 <= protein.min() and tok.vocab_size == 2 * 65536
    assert not set(tok.special_ids().tolist()) & (set(protein.tolist()) | set(nucleic.tolist()))
    segs = [Segment("MKTAYIAKQRQISFVKSHFSRQ", "protein"), Segment("ACGTTGCAAGGCTTAACGGA", "DNA")]
    assert [d.sequence for d in tok.decode(tok.encode_one(segs).ids)] == [s.sequence for s in segs]


def test_reference_special_ids(mixed_tokenizer):
    enc = mixed_tokenizer.encode_one([Segment("MKV", "protein"), Segment("ACGT", "DNA")])
    assert enc.ids[0] == 18 and enc.ids.tolist().count(3) == 2  # <protein> = 18, <EOS> = 3
    assert (mixed_tokenizer.pad_id, mixed_tokenizer.mask_id, mixed_tokenizer.unk_id) == (1, 2, 0)
    assert mixed_tokenizer.shares_ids_across_modalities


# ---- properties -------------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(records)
def test_round_trip_decode(any_tokenizer, segs):
    decoded = any_tokenizer.decode(any_tokenizer.encode_one(segs).ids)
    assert [d.sequence for d in decoded] == [canonical(s) for s in segs]


@settings(max_examples=60, deadline=None)
@given(records)
def test_spans_cover_each_residue_exactly_once(any_tokenizer, segs):
    enc = any_tokenizer.encode_one(segs)
    for index, seg in enumerate(segs):
        rows = np.flatnonzero((enc.segment == index) & enc.is_residue)
        covered = np.concatenate([np.arange(enc.start[r], enc.end[r]) for r in rows])
        assert covered.tolist() == list(range(len(seg.sequence)))
        assert len(enc.residue_to_token(index)) == len(seg.sequence)
        # each segment is <tag> ... <EOS>
        own = np.flatnonzero(enc.segment == index)
        assert enc.start[own[0]] == -1 and enc.start[own[-1]] == -1


@settings(max_examples=30, deadline=None)
@given(proteins, nucleics)
def test_protein_and_nucleic_ids_never_collide(residue_tokenizer, paired_tokenizer, protein, na):
    for tok in (residue_tokenizer, paired_tokenizer):
        p = tok.encode_one([Segment(protein, "protein")])
        n = tok.encode_one([Segment(na, "DNA")])
        assert not set(p.ids[p.is_residue].tolist()) & set(n.ids[n.is_residue].tolist())


def test_vocabularies_are_disjoint(residue_tokenizer, paired_tokenizer):
    for tok in (residue_tokenizer, paired_tokenizer):
        protein, nucleic = tok.residue_ids("protein"), tok.residue_ids("nucleic")
        assert not set(protein.tolist()) & set(nucleic.tolist())
        assert not set(tok.special_ids().tolist()) & (set(protein.tolist()) | set(nucleic.tolist()))


def test_protein_a_is_not_adenine(residue_tokenizer):
    p = residue_tokenizer.encode_one([Segment("A", "protein")]).ids[1]
    n = residue_tokenizer.encode_one([Segment("A", "DNA")]).ids[1]
    assert p != n


def test_rna_written_with_u_or_t_gives_the_same_tokens(any_tokenizer):
    u = any_tokenizer.encode_one([Segment("ACGUUAGC", "RNA")]).ids
    t = any_tokenizer.encode_one([Segment("ACGTTAGC", "RNA")]).ids
    assert u.tolist() == t.tolist()
    assert any_tokenizer.decode(u)[0].sequence == "ACGUUAGC"


# ---- unknown letters ----------------------------------------------------------------------------
def test_unknown_letter_is_an_error_naming_record_and_position(any_tokenizer):
    with pytest.raises(UnknownResidueError, match=r"record 'sp\|P1': non-standard protein letter 'X' at position 4"):
        any_tokenizer.encode_one([Segment("MKVXL", "protein", "sp|P1")])
    with pytest.raises(UnknownResidueError, match="letter 'N' at position 3"):
        any_tokenizer.encode_one([Segment("ACNGT", "DNA", "d")])


def test_unknown_letters_map_to_unk_one_token_each(any_tokenizer):
    enc = any_tokenizer.encode_one([Segment("MKVXBLLAW", "protein")], on_unknown="unk")
    unk = enc.ids == any_tokenizer.unk_id
    assert unk.sum() == 2
    assert enc.start[unk].tolist() == [3, 4] and enc.end[unk].tolist() == [4, 5]
    assert any_tokenizer.decode(enc.ids)[0].sequence == "MKVXXLLAW"


def test_empty_sequence_and_unknown_type(residue_tokenizer):
    with pytest.raises(InputError, match="empty protein sequence"):
        residue_tokenizer.encode_one([Segment("", "protein", "e")])
    with pytest.raises(InputError, match="unknown molecule type 'plasmid'"):
        residue_tokenizer.encode_one([Segment("ACGT", "plasmid", "x")])


def test_molecule_without_own_tag_falls_back_to_parent(mixed_tokenizer):
    snrna = mixed_tokenizer.encode_one([Segment("ACGU", "snRNA")]).ids
    rna = mixed_tokenizer.encode_one([Segment("ACGU", "RNA")]).ids
    assert snrna.tolist() == rna.tolist()


# ---- persistence --------------------------------------------------------------------------------
def test_save_and_load_round_trip(tmp_path, any_tokenizer):
    any_tokenizer.save(tmp_path)
    again = load_tokenizer(tmp_path)
    segs = [Segment("MKVLAAGIVW", "protein"), Segment("ACGTTGCA", "DNA")]
    assert again.encode_one(segs).ids.tolist() == any_tokenizer.encode_one(segs).ids.tolist()
    assert again.vocab_size == any_tokenizer.vocab_size


def test_replaced_model_file_is_detected(tmp_path, mixed_tokenizer, paired_tokenizer):
    mixed_tokenizer.save(tmp_path)
    (tmp_path / "mixed_bpe.model").write_bytes(paired_tokenizer.components[0].model_bytes)
    with pytest.raises(ModelFormatError, match="checksum differs"):
        load_tokenizer(tmp_path)


def test_residue_vocabulary_is_validated():
    vocab = json.loads(json.dumps(ResidueTokenizer().to_config()))
    vocab["protein"]["W"] = vocab["protein"]["A"]
    with pytest.raises(ModelFormatError, match="share an id"):
        ResidueTokenizer(vocab)
    del vocab["protein"]["W"]
    with pytest.raises(ModelFormatError, match="no protein ids for letters W"):
        ResidueTokenizer(vocab)


def test_unknown_tokenizer_source():
    with pytest.raises(InputError, match="no such tokenizer"):
        load_tokenizer("no-such-tokenizer")


def test_residue_length_counts_the_residues_of_a_token(residue_tokenizer, mixed_tokenizer):
    from obte_cli.engine.pretraining.loop import residue_counts
    from obte_cli.engine.tokenizers.base import Segment

    counts = residue_counts(residue_tokenizer)
    assert set(counts[residue_tokenizer.special_ids()]) == {0}
    assert (counts[residue_tokenizer.residue_ids("protein")] == 1).all()
    # BPE: the residues under a record's tokens add up to its length
    for sequence, mol in (("MKTAYIAKQRQISFVKSHFSRQ", "protein"), ("ACGTTGCAAGGCTTAACGGA", "DNA")):
        encoding = mixed_tokenizer.encode_one([Segment(sequence, mol, "x")])
        assert sum(mixed_tokenizer.residue_length(int(i)) for i in encoding.ids) == len(sequence)


def test_every_tokenizer_has_one_unk_id_that_no_residue_uses(any_tokenizer):
    """What --on-unknown unk relies on: a model fine-tuned on <unk> reads it later as the same id."""
    unk = any_tokenizer.unk_id
    assert 0 <= unk < any_tokenizer.vocab_size and unk in any_tokenizer.special_ids().tolist()
    assert unk not in any_tokenizer.residue_ids("protein").tolist() + any_tokenizer.residue_ids("nucleic").tolist()
    for segment in (Segment("ACNGT", "DNA"), Segment("ACNGU", "RNA"), Segment("MKXV", "protein")):
        assert (any_tokenizer.encode_one([segment], on_unknown="unk").ids == unk).sum() == 1


def test_the_unknown_letter_error_keeps_its_kind_and_takes_a_hint():
    from obte_cli.engine.tokenizers.base import check_standard

    with pytest.raises(UnknownResidueError) as info:
        check_standard([Segment("MKV", "protein", "a"), Segment("ACNGT", "DNA", "b")])
    error = info.value.within("f.fa")
    assert isinstance(error, UnknownResidueError) and (error.letter, error.position) == ("N", 3)
    assert str(error) == "f.fa: record 'b': non-standard DNA letter 'N' at position 3"
    error.hint = "use --on-unknown unk"
    assert str(error).endswith("position 3 (use --on-unknown unk)")
    assert str(InputError("x").within("f.fa")) == "f.fa: x"
