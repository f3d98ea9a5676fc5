"""Cross-validation of contact predictors: folds grouped by protein sequence, and the per-amino-acid baseline."""

import numpy as np
import pytest
from conftest import contact_site

from obte_cli.engine.contacts.cv import propensity_probabilities, site_folds


def test_propensity_counts_training_residues():
    train = [contact_site("KKAA", labels=np.array([[1] * 3, [1] * 3, [0] * 3, [0] * 3]))]
    k, a, w = propensity_probabilities(train, [contact_site("KAW")])[0][:, 0]
    assert k > 0.6 and a < 0.4 and w == pytest.approx(0.5)  # unseen residue: the overall rate


def test_folds_keep_identical_chains_together():
    sites = [contact_site(p, name=f"s{i}:A") for i, p in enumerate(["MKA", "MKA", "WWW", "RRR", "RRR", "LLL", "AAA"])]
    folds = site_folds(sites, 3, seed=0)
    assert folds[0] == folds[1] and folds[3] == folds[4] and set(folds) == {0, 1, 2}
