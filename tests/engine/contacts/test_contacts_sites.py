"""Contact sites as model inputs: per-token targets on protein tokens only, truncation, and BPE tokens trained on the
fraction of their residues in contact."""

import numpy as np
import pytest
from conftest import contact_site

from obte_cli.engine.contacts.sites import encode_site, protein_token_targets
from obte_cli.engine.tokenizers.loading import load_tokenizer
from obte_cli.engine.tokenizers.residues import token_values_to_residues


def test_targets_cover_protein_tokens_only_and_truncation_leaves_nan():
    tokenizer = load_tokenizer("residue")
    labels = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0], [1, 1, 1]])
    site = contact_site("MKXLA", ("ACNT", "AGGT"), labels)  # X and N (modified) become <unk>
    encoding = encode_site(tokenizer, site, 64)
    targets = protein_token_targets(encoding, labels)
    protein_tokens = np.flatnonzero((encoding.segment == 0) & encoding.is_residue)
    assert np.array_equal(targets[protein_tokens], labels.astype(np.float32))
    assert np.isnan(np.delete(targets, protein_tokens, axis=0)).all()  # tags, <EOS>, nucleic acids
    short = encode_site(tokenizer, site, 2 + 3 + 6 + 6)  # room for 3 protein residues and both strands
    values = token_values_to_residues(short, np.arange(len(short))[:, None].repeat(3, 1).astype(float), 5)
    assert np.isnan(values[3:]).all() and not np.isnan(values[:3]).any()
    with pytest.raises(Exception, match="nucleic acids alone exceed"):
        encode_site(tokenizer, site, 12)


def test_bpe_tokens_are_trained_on_the_fraction_of_their_residues_and_expanded_back():
    tokenizer = load_tokenizer("omnibiote-mixed")
    protein = "MKPVTLYDVAEYAGVSYQTVSRVVNQASHVSAKTREKVEAAMAELNYIPNR"
    labels = (np.arange(len(protein))[:, None] % np.array([[2, 3, 5]]) == 0).astype(int)
    site = contact_site(protein, ("AATTGTGAGCG", "CGCTCACAATT"), labels)
    encoding = encode_site(tokenizer, site, 512)
    protein_tokens = np.flatnonzero((encoding.segment == 0) & encoding.is_residue)
    assert len(protein_tokens) < len(protein)  # BPE: some tokens cover several residues
    targets = protein_token_targets(encoding, labels)
    for t in protein_tokens:
        assert np.allclose(targets[t], labels[encoding.start[t] : encoding.end[t]].mean(axis=0))
    expanded = token_values_to_residues(encoding, targets, len(protein))
    covering = encoding.residue_to_token(0)
    assert np.allclose(expanded, targets[covering]) and len(covering) == len(protein)
