"""`obte score --mutations / --variants`: variant-effect scores end to end."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import obte

from obte_cli.engine.bio.molecules import MOLECULE_TYPES
from obte_cli.engine.embedding.variants import STRATEGIES, parse_mutations, score_variants
from obte_cli.engine.model.directory import load_model, save_model
from obte_cli.engine.model.encoder import ObteModel, padded_vocab_size, preset_config
from obte_cli.engine.tokenizers.loading import load_tokenizer

SAC7D = "MVKVKFKYKGEEKEVDTSKIKKVWRVGKMVSFTYDDNGKTGRGAVSEKDAPKELLDMLARAEREKK"  # P61991
TRNA = "GCGGAUUUAGCUCAGUUGGGAGAGCGCCAGACUGAAGAUCUGGAGG"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    tokenizer = load_tokenizer("residue")
    torch.manual_seed(7)
    model = ObteModel(preset_config("micro", padded_vocab_size(tokenizer.vocab_size), max_positions=48))
    with torch.no_grad():
        model.readout.weight.normal_(std=0.5)
    path = tmp_path_factory.mktemp("variants") / "model"
    save_model(path, model, tokenizer)
    return path


@pytest.fixture
def sac7d(tmp_path):
    path = tmp_path / "sac7d.fa"
    path.write_text(f">sac7d\n{SAC7D}\n")
    return path


def test_mutations_end_to_end(model_dir, sac7d):
    result = obte("score", sac7d, "-m", model_dir, "--mutations", "V2A,K3R:V4L")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(io.StringIO(result.stdout), sep="\t")
    assert list(table.columns) == ["mutant", *STRATEGIES] and list(table["mutant"]) == ["V2A", "K3R:V4L"]
    loaded = load_model(model_dir)
    protein = MOLECULE_TYPES["protein"]
    expected = score_variants(
        loaded.model.eval(), loaded.tokenizer, SAC7D, protein, parse_mutations("V2A,K3R:V4L", SAC7D, protein)
    )
    for strategy in STRATEGIES:
        np.testing.assert_allclose(table[strategy], expected.scores[strategy], atol=1e-4)
    assert "masked-marginals: forward passes 3" in result.stderr  # sites 2, 3, 4 (a window: 46 of 66 residues)
    assert "read in a window centred on its sites" in result.stderr


def test_a_variant_table_keeps_its_columns_and_rna_reads_u_as_t(model_dir, tmp_path):
    fasta = tmp_path / "trna.fa"
    fasta.write_text(f">trna\n{TRNA[:40]}\n")
    table = tmp_path / "dms.tsv"
    table.write_text("id\tvariant\tfitness\nv1\tG1A\t0.3\nv2\tU6C:U7G\t-1.2\n")
    out = tmp_path / "scored.tsv"
    result = obte(
        "score",
        fasta,
        "-m",
        model_dir,
        "--variants",
        table,
        "--mutation-col",
        "variant",
        "--strategy",
        "wt-marginals",
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(out, sep="\t")
    assert list(scored.columns) == ["id", "variant", "fitness", "wt-marginals"]
    assert list(scored["id"]) == ["v1", "v2"] and list(scored["fitness"]) == [0.3, -1.2]
    assert np.isfinite(scored["wt-marginals"]).all() and "RNA, 40 residues" in result.stderr


@pytest.mark.parametrize(
    "extra, message, code",
    [
        (["--mutations", "V2A,K8A"], "variant 'K8A': the reference has Y at 8, not K", 1),
        (["--mutations", "V2A", "--variants", "x.csv"], "not both", 2),
        (["--mutations", "V2A", "--per-residue", "r.tsv"], "'--per-residue': does not apply", 2),
        (["--mutations", "V2"], "'--mutations': 'V2' is not a variant like A42G", 2),
    ],
)
def test_variant_mistakes_are_one_line_errors(model_dir, sac7d, extra, message, code):
    result = obte("score", sac7d, "-m", model_dir, *extra)
    assert result.exit_code == code and message in result.stderr and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1


def test_variants_need_one_reference_record(model_dir, tmp_path):
    fasta = tmp_path / "two.fa"
    fasta.write_text(f">a\n{SAC7D}\n>b\n{SAC7D}\n")
    result = obte("score", fasta, "-m", model_dir, "--mutations", "V2A")
    assert result.exit_code == 1 and "one reference record (the inputs hold 2)" in result.stderr


def test_plain_score_is_unchanged(model_dir, sac7d):
    result = obte("score", sac7d, "-m", model_dir)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split("\t")[:3] == ["id", "molecule_type", "length"]
