"""obte score: every residue masked once, packing-invariant numbers, bits per residue, per-residue log-probs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from obte_cli.app import app
from obte_cli.engine.embedding.scoring import ScoreSettings, mask_groups, score_segments, window_key
from obte_cli.engine.model.directory import load_model, save_model
from obte_cli.engine.model.encoder import ObteModel, padded_vocab_size, preset_config
from obte_cli.engine.tokenizers.base import Segment
from obte_cli.engine.tokenizers.loading import load_tokenizer

runner = CliRunner()
# Real sequences: Sac7d (P61991, from 1AZP) and the lac repressor headpiece; a ProNAB DNA ligand; a tRNA-like RNA
PROTEINS = {
    "sac7d": "MVKVKFKYKGEEKEVDTSKIKKVWRVGKMVSFTYDDNGKTGRGAVSEKDAPKELLDMLARAEREKK",
    "lacI_hp": "MKPVTLYDVAEYAGVSYQTVSRVVNQASHVSAKTREKVEAAMAELNYIPNRVAQQLAGKQSL",
}
NUCLEIC = {"ligand": "GCGATCGCATTCGCGAATTCGCGAATGCGATCGC", "rna": "GCGGAUUUAGCUCAGUUGGGAGAGCGCCAGACUGAAGAUCUGGAGG"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A micro model with random (not zero) readout, so scores depend on the input."""
    tokenizer = load_tokenizer("residue")
    torch.manual_seed(3)
    model = ObteModel(preset_config("micro", padded_vocab_size(tokenizer.vocab_size), max_positions=48))
    with torch.no_grad():
        model.readout.weight.normal_(std=0.5)
    path = tmp_path_factory.mktemp("score") / "model"
    save_model(path, model, tokenizer)
    return path


def segments():
    return [Segment(s, "protein", n) for n, s in PROTEINS.items()] + [
        Segment(NUCLEIC["ligand"], "DNA", "ligand"),
        Segment(NUCLEIC["rna"], "RNA", "rna"),
    ]


@given(st.integers(1, 400), st.sampled_from([0.1, 0.15, 0.3, 0.5]), st.integers(0, 5))
@settings(max_examples=100, deadline=None)
def test_every_token_is_masked_exactly_once(n, fraction, seed):
    groups = mask_groups(n, fraction, seed, 0)
    assert groups.shape == (n,)
    n_groups = int(groups.max()) + 1
    assert n_groups == max(1, min(n, round(1 / fraction)))
    sizes = np.bincount(groups)
    assert sizes.max() - sizes.min() <= 1  # dealt round-robin: groups of ~fraction each
    assert (mask_groups(n, fraction, seed, 0) == groups).all()


def test_scores_equal_a_direct_computation_one_group_at_a_time(model_dir):
    """Packing many masked copies per row changes nothing: recompute each record's bits unpacked."""
    loaded = load_model(model_dir)
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    results = list(score_segments(model, tokenizer, segments(), ScoreSettings(seed=1), torch.device("cpu")))
    assert [r.id for r in results] == ["sac7d", "lacI_hp", "ligand", "rna"]
    for segment, result in zip(segments(), results):
        if len(segment.sequence) + 2 > 48:
            continue  # windows: covered by the next test
        encoding = tokenizer.encode_one([segment])
        positions = np.flatnonzero(encoding.is_residue)
        groups = mask_groups(len(positions), 0.15, 1, window_key(np.asarray(encoding.ids)))
        bits = 0.0
        with torch.no_grad():
            for g in range(groups.max() + 1):
                ids = torch.as_tensor(encoding.ids).clone()
                masked = positions[groups == g]
                ids[masked] = tokenizer.mask_id
                logits = model.logits(model(ids[None]).hidden[0, masked])[:, : tokenizer.vocab_size]
                bits -= float(
                    torch.log_softmax(logits, -1).gather(1, torch.as_tensor(encoding.ids[masked])[:, None]).sum()
                )
        assert result.tokens == len(segment.sequence)
        assert result.bits_per_residue == pytest.approx(bits / math.log(2) / len(segment.sequence), rel=1e-4)


def test_long_records_are_scored_in_windows_covering_every_residue(model_dir):
    loaded = load_model(model_dir)
    (result,) = score_segments(
        loaded.model.eval(),
        loaded.tokenizer,
        [Segment(PROTEINS["sac7d"], "protein", "s")],
        ScoreSettings(per_residue=True),
        torch.device("cpu"),
    )
    assert len(PROTEINS["sac7d"]) > 46  # longer than the context of 48 tokens
    assert result.tokens == result.length == len(PROTEINS["sac7d"])
    assert result.per_residue.shape == (len(PROTEINS["sac7d"]), 20)
    assert (result.per_residue < 0).all()  # every row was filled with log-probabilities
    assert np.log(np.exp(result.per_residue).sum(1)).max() <= 1e-5
    assert result.windows == -(-len(PROTEINS["sac7d"]) // 46)  # consecutive windows of 46 residues


def test_fresh_model_scores_the_uniform_distribution(tmp_path):
    tokenizer = load_tokenizer("residue")
    model = ObteModel(preset_config("micro", padded_vocab_size(tokenizer.vocab_size), max_positions=128)).eval()
    (result,) = score_segments(
        model, tokenizer, [Segment(PROTEINS["lacI_hp"], "protein", "x")], ScoreSettings(), torch.device("cpu")
    )
    assert result.bits_per_residue == pytest.approx(math.log2(tokenizer.vocab_size), rel=1e-6)  # zero readout
    assert result.perplexity == pytest.approx(tokenizer.vocab_size, rel=1e-6)


def test_per_residue_needs_a_residue_tokenizer(tmp_path):
    result = runner.invoke(
        app,
        ["model", "init", "--preset", "micro", "-t", "omnibiote-mixed", "--context", "64", "-o", str(tmp_path / "bpe")],
    )
    assert result.exit_code == 0, result.output
    fasta = tmp_path / "p.fa"
    fasta.write_text(f">a\n{PROTEINS['sac7d']}\n")
    result = runner.invoke(
        app, ["score", str(fasta), "-m", str(tmp_path / "bpe"), "--per-residue", str(tmp_path / "r.tsv")]
    )
    assert result.exit_code == 1
    assert "one-token-per-residue" in result.output


def test_cli_writes_one_row_per_record_and_per_residue(model_dir, tmp_path):
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">{s.name}\n{s.sequence}\n" for s in segments()))
    out, residues = tmp_path / "scores.tsv", tmp_path / "residues.tsv"
    result = runner.invoke(
        app, ["score", str(fasta), "-m", str(model_dir), "-o", str(out), "--per-residue", str(residues)]
    )
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert rows[0] == ["id", "molecule_type", "length", "bits_per_residue", "perplexity", "masked_accuracy"]
    assert [r[:3] for r in rows[1:]] == [
        ["sac7d", "protein", "66"],
        ["lacI_hp", "protein", "62"],
        ["ligand", "DNA", "34"],
        ["rna", "RNA", "46"],
    ]
    for r in rows[1:]:
        assert float(r[4]) == pytest.approx(2 ** float(r[3]), rel=1e-3) and 0 <= float(r[5]) <= 1
    lines = residues.read_text().splitlines()
    assert len(lines) == 1 + sum(len(s.sequence) for s in segments())
    header = lines[0].split("\t")
    first_dna = next(line.split("\t") for line in lines if line.startswith("ligand\t"))
    assert first_dna[header.index("logp_A")] == "NA" and first_dna[header.index("logp_nt_G")] != "NA"
    # deterministic: the same command gives the same numbers
    again = runner.invoke(app, ["score", str(fasta), "-m", str(model_dir)])
    assert again.exit_code == 0 and again.stdout == out.read_text()


def test_a_records_score_does_not_depend_on_its_place_in_the_input(model_dir):
    """The mask groups are seeded by the sequence: alone, last, or after others, a record scores the same."""
    loaded = load_model(model_dir)
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    every = list(score_segments(model, tokenizer, segments(), ScoreSettings(seed=3), torch.device("cpu")))
    reordered = list(score_segments(model, tokenizer, segments()[::-1], ScoreSettings(seed=3), torch.device("cpu")))
    alone = list(score_segments(model, tokenizer, segments()[-1:], ScoreSettings(seed=3), torch.device("cpu")))
    for a, b in zip(every, reordered[::-1]):
        assert a.id == b.id and a.bits_per_residue == pytest.approx(b.bits_per_residue, abs=1e-5)
    assert alone[0].bits_per_residue == pytest.approx(every[-1].bits_per_residue, abs=1e-5)


def test_errors_about_a_record_name_its_file(model_dir, tmp_path):
    good, ambiguous = tmp_path / "good.fa", tmp_path / "ambig.fa"
    good.write_text(f">sac7d\n{PROTEINS['sac7d']}\n")
    ambiguous.write_text(">p1\nMKVLXAGG\n")  # X: an unidentified amino acid
    result = runner.invoke(app, ["score", str(good), str(ambiguous), "-m", str(model_dir), "--on-unknown", "error"])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"error: {ambiguous}: record 'p1': non-standard protein letter 'X'")


def test_an_error_in_the_first_record_leaves_stdout_empty(model_dir, tmp_path):
    ambiguous, table = tmp_path / "ambig.fa", tmp_path / "residues.tsv"
    ambiguous.write_text(">p1\nMKVLXAGG\n")
    result = runner.invoke(
        app, ["score", str(ambiguous), "-m", str(model_dir), "--per-residue", str(table), "--on-unknown", "error"]
    )
    assert result.exit_code == 1, result.output
    assert result.stdout == "" and not table.exists()  # `obte score x.fa > out.tsv` leaves no header-only table


def test_unknown_letters_are_scored_as_unk_by_default_and_counted(model_dir, tmp_path):
    ambiguous = tmp_path / "ambig.fa"
    ambiguous.write_text(">p1\nMKVLXAGGZ\n>d1\nACGTNNACGT\n")
    result = runner.invoke(app, ["score", str(ambiguous), "-m", str(model_dir)])
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()[1:]]
    assert [row[0] for row in rows] == ["p1", "d1"] and [row[2] for row in rows] == ["9", "10"]
    assert "4 non-standard letters read as <unk>: N ×2, X ×1, Z ×1" in result.stderr
    assert "scored in consecutive windows" not in result.stderr  # both fit the context
