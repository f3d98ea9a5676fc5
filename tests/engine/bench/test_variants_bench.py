"""`obte bench variants`: the GB1 landscape read against its wild type, baselines, ρ per method, the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SHARED_DATA, obte

from obte_cli.engine.bench.variants import (
    BLOSUM62,
    KYTE_DOOLITTLE,
    baseline_scores,
    read_landscape,
    spearman,
)
from obte_cli.engine.bio.molecules import MOLECULE_TYPES
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.embedding.variants import parse_mutations
from obte_cli.engine.model.directory import save_model
from obte_cli.engine.model.encoder import ObteModel, padded_vocab_size, preset_config
from obte_cli.engine.tokenizers.loading import load_tokenizer

GB1 = SHARED_DATA / "flip" / "gb1" / "one_vs_rest.csv"
needs_gb1 = pytest.mark.skipif(not GB1.is_file(), reason=f"{GB1} is absent (../shared data)")
AMINO = "ARNDCQEGHILKMFPSTWYV"


def test_blosum62_is_the_symmetric_ncbi_table():
    assert all(BLOSUM62[a, b] == BLOSUM62[b, a] for a in AMINO for b in AMINO)
    assert [BLOSUM62[c, c] for c in "WCAV"] == [11, 9, 4, 4]
    assert (BLOSUM62["W", "D"], BLOSUM62["I", "V"], BLOSUM62["E", "D"]) == (-4, 3, 2)
    assert len(KYTE_DOOLITTLE) == 20 and KYTE_DOOLITTLE["I"] == 4.5 and KYTE_DOOLITTLE["R"] == -4.5


def test_baselines_sum_over_the_substitutions():
    reference = "MVKVKFKYKG"
    found = parse_mutations("V2I,K3E:V4R", reference, MOLECULE_TYPES["protein"])
    scores = baseline_scores(found)
    assert list(scores["blosum62"]) == [3, 1 + -3]
    np.testing.assert_allclose(scores["hydropathy-change"], [-0.3, -(0.4 + 8.7)])


def test_spearman_of_constant_scores_is_nan():
    assert np.isnan(spearman(np.zeros(5), np.arange(5.0)))
    assert spearman(np.arange(5.0), np.arange(5.0) ** 2) == pytest.approx(1.0)


def test_a_landscape_needs_one_wild_type(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("sequence,target\nMKV,0.5\nMKA,2\n")
    with pytest.raises(InputError, match="fitness exactly 1"):
        read_landscape(path)
    path.write_text("sequence,target\nMKV,1\nMRA,2\nMKV,1\nAKV,0\n")
    landscape = read_landscape(path)
    assert landscape.wild_type == "MKV" and [str(v) for v in landscape.variants] == ["K2R:V3A", "M1A"]
    assert list(landscape.fitness) == [2, 0]


@needs_gb1
def test_gb1_variants_are_the_four_sites_against_vdgv():
    landscape = read_landscape(GB1, limit=200, seed=1)
    assert "".join(landscape.wild_type[i - 1] for i in (39, 40, 41, 54)) == "VDGV"
    assert len(landscape.variants) == 200 and landscape.total == 8732
    assert {p for v in landscape.variants for p in (s.position for s in v.substitutions)} <= {39, 40, 41, 54}


@needs_gb1
def test_the_bench_on_a_few_gb1_rows(tmp_path):
    tokenizer = load_tokenizer("residue")
    torch.manual_seed(0)
    model = ObteModel(preset_config("micro", padded_vocab_size(tokenizer.vocab_size), max_positions=300))
    with torch.no_grad():
        model.readout.weight.normal_(std=0.5)
    save_model(tmp_path / "m", model, tokenizer)
    rows = pd.read_csv(GB1, nrows=40)
    rows.to_csv(tmp_path / "gb1.csv", index=False)
    out = tmp_path / "out"
    result = obte(
        "bench", "variants", "--data", tmp_path / "gb1.csv", "-m", tmp_path / "m", "--strategy", "wt-marginals",
        "--strategy", "masked-marginals", "--limit", "12", "-o", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "variants.tsv", sep="\t")
    assert list(zip(table["method"], table["model"])) == [
        ("wt-marginals", "model"),
        ("masked-marginals", "model"),
        ("wt-marginals", "fresh-init"),
        ("masked-marginals", "fresh-init"),
        ("blosum62", "none"),
        ("hydropathy-change", "none"),
    ]
    assert (table["variants"] == 12).all() and (table["of"] == 39).all()
    assert table.loc[table["model"] == "fresh-init", "spearman"].isna().all()  # zero readout: every score 0
    assert table.loc[table["model"] != "fresh-init", "spearman"].between(-1, 1).all()
    scores = pd.read_csv(out / "variant_scores.tsv", sep="\t")
    assert len(scores) == 12 and "12 of 39 variants" in result.stderr and "random subset" in result.stderr
    assert np.isclose(spearman(scores["blosum62"].to_numpy(), scores["fitness"].to_numpy()), table["spearman"][4])
