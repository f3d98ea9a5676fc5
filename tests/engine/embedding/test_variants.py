"""Variant-effect scores: the parser, each strategy against a direct computation, shared passes, windows."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import obte_cli.engine.embedding.variants as variants_module
from obte_cli.engine.bio.molecules import AMINO_ACIDS, MOLECULE_TYPES
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.embedding.scoring import ScoreSettings, score_segments
from obte_cli.engine.embedding.variants import (
    Substitution,
    Variant,
    format_mutations,
    parse_mutations,
    read_variants,
    score_variants,
)
from obte_cli.engine.model.encoder import ObteModel, padded_vocab_size, preset_config
from obte_cli.engine.tokenizers.base import Segment
from obte_cli.engine.tokenizers.loading import load_tokenizer

PROTEIN = MOLECULE_TYPES["protein"]
DNA = MOLECULE_TYPES["DNA"]
# Sac7d (P61991) and a ProNAB DNA ligand
SAC7D = "MVKVKFKYKGEEKEVDTSKIKKVWRVGKMVSFTYDDNGKTGRGAVSEKDAPKELLDMLARAEREKK"
LIGAND = "GCGATCGCATTCGCGAATTCGCGAATGCGATCGC"


@pytest.fixture(scope="module")
def micro():
    tokenizer = load_tokenizer("residue")
    torch.manual_seed(5)
    model = ObteModel(preset_config("micro", padded_vocab_size(tokenizer.vocab_size), max_positions=80))
    with torch.no_grad():
        model.readout.weight.normal_(std=0.5)
    return model.eval(), tokenizer


def _log_probs(model, tokenizer, sequence, mol, masked=()):
    """(length, vocab) log-probabilities read directly from one unpacked forward pass."""
    encoding = tokenizer.encode_one([Segment(sequence, mol.name)])
    ids = torch.as_tensor(encoding.ids).clone()
    ids[[m + 1 for m in masked]] = tokenizer.mask_id  # after the tag
    with torch.no_grad():
        logits = model.logits(model(ids[None]).hidden[0])[:, : tokenizer.vocab_size]
    return torch.log_softmax(logits.float(), -1)[1 : 1 + len(sequence)].numpy()


def _delta(lp, site, wt, mt, tokenizer, modality="protein"):
    return lp[site, tokenizer.letters[modality][mt]] - lp[site, tokenizer.letters[modality][wt]]


@st.composite
def reference_and_variants(draw):
    reference = draw(st.text(AMINO_ACIDS, min_size=1, max_size=60))
    found = []
    for _ in range(draw(st.integers(1, 5))):
        sites = draw(st.lists(st.integers(1, len(reference)), min_size=1, max_size=4, unique=True))
        found.append(
            Variant(tuple(Substitution(reference[p - 1], p, draw(st.sampled_from(AMINO_ACIDS))) for p in sites))
        )
    return reference, found


@given(reference_and_variants())
@settings(max_examples=80, deadline=None)
def test_formatting_then_parsing_round_trips(case):
    reference, found = case
    assert parse_mutations(format_mutations(found), reference, PROTEIN) == found


@given(st.text(AMINO_ACIDS, min_size=1, max_size=40), st.data())
@settings(max_examples=60, deadline=None)
def test_a_wrong_reference_letter_is_an_error_naming_the_variant(reference, data):
    position = data.draw(st.integers(1, len(reference)))
    wrong = data.draw(st.sampled_from([c for c in AMINO_ACIDS if c != reference[position - 1]]))
    text = f"{wrong}{position}A"
    with pytest.raises(InputError, match=f"'{text}'"):
        parse_mutations(f"{reference[0]}1A,{text}", reference, PROTEIN)


@pytest.mark.parametrize(
    "text, message",
    [
        ("M1", "not a substitution"),
        ("M0A", "outside the reference"),
        ("K999A", "outside the reference"),
        ("M1B", "not a protein letter"),
        ("V2A:V2C", "substituted twice"),
        (",", "no variant"),
    ],
)
def test_malformed_variants_are_refused(text, message):
    with pytest.raises(InputError, match=message):
        parse_mutations(text, SAC7D, PROTEIN)


def test_nucleic_variants_read_u_as_t():
    assert parse_mutations("G1U,C2a", LIGAND, DNA) == [
        Variant((Substitution("G", 1, "T"),)),
        Variant((Substitution("C", 2, "A"),)),
    ]


def test_a_variant_table_keeps_its_columns(tmp_path):
    path = tmp_path / "dms.csv"
    path.write_text("mutant,DMS_score,note\nV2A,0.5,x\nK3R:V4L,-1,\n")
    table, found = read_variants(path, SAC7D, PROTEIN)
    assert list(table.columns) == ["mutant", "DMS_score", "note"] and [str(v) for v in found] == ["V2A", "K3R:V4L"]
    with pytest.raises(InputError, match="no 'variant' column"):
        read_variants(path, SAC7D, PROTEIN, column="variant")
    path.write_text("mutant\nV2A\nA3R\n")
    with pytest.raises(InputError, match="line 3: variant 'A3R'"):
        read_variants(path, SAC7D, PROTEIN)


def test_marginal_strategies_equal_a_direct_computation(micro):
    model, tokenizer = micro
    found = parse_mutations("V2A,K3R:V4L,K3E", SAC7D, PROTEIN)
    result = score_variants(model, tokenizer, SAC7D, PROTEIN, found, ["wt-marginals", "masked-marginals"])
    wild = _log_probs(model, tokenizer, SAC7D, PROTEIN)
    masked = {s: _log_probs(model, tokenizer, SAC7D, PROTEIN, masked=[s]) for s in (1, 2, 3)}
    expected_wt, expected_masked, expected_mutant = [], [], []
    for v in found:
        expected_wt.append(sum(_delta(wild, s.position - 1, s.wild_type, s.mutant, tokenizer) for s in v.substitutions))
        expected_masked.append(
            sum(
                _delta(masked[s.position - 1], s.position - 1, s.wild_type, s.mutant, tokenizer)
                for s in v.substitutions
            )
        )
        mutant = _log_probs(model, tokenizer, v.apply(SAC7D), PROTEIN)
        expected_mutant.append(
            sum(_delta(mutant, s.position - 1, s.wild_type, s.mutant, tokenizer) for s in v.substitutions)
        )
    np.testing.assert_allclose(result.scores["wt-marginals"], expected_wt, atol=1e-4)
    np.testing.assert_allclose(result.scores["masked-marginals"], expected_masked, atol=1e-4)
    mutant_only = score_variants(model, tokenizer, SAC7D, PROTEIN, found, ["mutant-marginals"])
    np.testing.assert_allclose(mutant_only.scores["mutant-marginals"], expected_mutant, atol=1e-4)
    assert list(mutant_only.scores) == ["mutant-marginals"]
    assert len(set(np.round(expected_wt, 4)) | set(np.round(expected_masked, 4))) == 6  # the scores differ


def test_pseudo_ppl_is_the_difference_of_obte_scores(micro):
    model, tokenizer = micro
    found = parse_mutations("G1A:C2G,A4G", LIGAND, DNA)
    result = score_variants(model, tokenizer, LIGAND, DNA, found, ["pseudo-ppl"], seed=2)
    sequences = [LIGAND, *(v.apply(LIGAND) for v in found)]
    scored = score_segments(
        model, tokenizer, [Segment(s, "DNA", str(i)) for i, s in enumerate(sequences)], ScoreSettings(seed=2), "cpu"
    )
    pll = [-r.nll_bits * math.log(2) for r in scored]
    np.testing.assert_allclose(result.scores["pseudo-ppl"], [pll[1] - pll[0], pll[2] - pll[0]], atol=1e-4)
    assert result.passes["pseudo-ppl"] == 3 * 7


def test_variants_sharing_a_masked_position_share_its_pass(micro, monkeypatch):
    model, tokenizer = micro
    sent = []
    real = variants_module.packed_forward

    def counting(model, sequences, *args, **kwargs):
        sent.extend(sequences)
        yield from real(model, sequences, *args, **kwargs)

    monkeypatch.setattr(variants_module, "packed_forward", counting)
    found = parse_mutations("K3R,K3E,K3R:V4L,V4A,V2A", SAC7D, PROTEIN)
    result = score_variants(model, tokenizer, SAC7D, PROTEIN, found, ["masked-marginals"])
    assert len(sent) == 3 and result.passes == {"masked-marginals": 3}  # sites 2, 3 and 4
    sent.clear()
    result = score_variants(model, tokenizer, SAC7D, PROTEIN, found, ["wt-marginals", "mutant-marginals"])
    assert len(sent) == 1 + 5 and result.passes == {"wt-marginals": 1, "mutant-marginals": 5}


def test_a_long_reference_is_read_in_a_window_centred_on_the_sites(micro):
    model, tokenizer = micro
    reference = SAC7D * 3  # 198 residues, a context of 80 tokens: windows of 78
    found = parse_mutations("E130A:K135R,M1A,E196K", reference, PROTEIN)
    result = score_variants(model, tokenizer, reference, PROTEIN, found, ["masked-marginals", "wt-marginals"])
    assert result.windowed == 3
    for v, start, got in zip(found, [132 - 39, 0, 198 - 78], result.scores["masked-marginals"]):
        window = reference[start : start + 78]
        expected = sum(
            _delta(
                _log_probs(model, tokenizer, window, PROTEIN, [s.position - 1 - start]),
                s.position - 1 - start,
                s.wild_type,
                s.mutant,
                tokenizer,
            )
            for s in v.substitutions
        )
        assert got == pytest.approx(expected, abs=1e-4)
    with pytest.raises(InputError, match="'M1A:E130A'.*span"):
        score_variants(model, tokenizer, reference, PROTEIN, parse_mutations("M1A:E130A", reference, PROTEIN))


def test_bpe_and_unknown_strategies_are_refused(micro):
    model, tokenizer = micro
    found = parse_mutations("V2A", SAC7D, PROTEIN)
    with pytest.raises(InputError, match="one-token-per-residue"):
        score_variants(model, SimpleNamespace(kind="sentencepiece"), SAC7D, PROTEIN, found)
    with pytest.raises(InputError, match="unknown strategy"):
        score_variants(model, tokenizer, SAC7D, PROTEIN, found, ["wt"])
