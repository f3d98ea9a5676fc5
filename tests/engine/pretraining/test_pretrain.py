"""`obte pretrain`: batches, masking, μP training, DDP/FSDP2 equivalence and exact resume, on real sequences."""

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import DATA, REPO, obte

from obte_cli.engine.core.errors import ObteError
from obte_cli.engine.model.encoder import ObteModel, padded_vocab_size, preset_config
from obte_cli.engine.pretraining.batches import BatchSource, RowPlan, mask_row
from obte_cli.engine.pretraining.distributed import DistributedContext
from obte_cli.engine.pretraining.loop import (
    PretrainSettings,
    make_optimizer,
    make_scheduler,
    masked_accuracy_baseline,
    pretrain,
    resume_budget_change,
    unigram_baselines,
)
from obte_cli.engine.pretraining.token_files import open_corpus


@pytest.fixture(scope="module")
def tokens(tmp_path_factory, protein_fasta):
    """Real proteins (tests/data/debian-heldout), chloroplast tRNA/rRNA genes and ProNAB ligands, residue-tokenized."""
    root = tmp_path_factory.mktemp("pretrain")
    assert (
        obte(
            "prep", protein_fasta, DATA / "chloroplast_rna.gb", DATA / "pronab_ligands.fa", "-o", root / "prep"
        ).exit_code
        == 0
    )
    assert obte("tokenize", "corpus", root / "prep", "-o", root / "tokens").exit_code == 0
    return root / "tokens"


def _settings(**overrides):
    base = dict(
        context=128,
        batch_tokens=1024,
        micro_batch_rows=3,
        total_tokens=1024 * 8,
        warmup_tokens=1024,
        lr=0.01,
        checkpoint_every=3,
        seed=5,
    )
    return PretrainSettings(**{**base, **overrides})


def _model(corpus, context=128):
    torch.manual_seed(0)
    return ObteModel(preset_config("micro", padded_vocab_size(corpus.tokenizer.vocab_size), max_positions=context))


def test_rows_cover_every_token_once_per_epoch(tokens):
    corpus = open_corpus(tokens)
    plan = RowPlan(corpus, context=128, seed=3)
    seen = {}
    for g in range(plan.rows_per_epoch()):
        for piece in plan.row(g):
            seen.setdefault(piece.sequence, []).append((piece.start, piece.stop))
    for seq, spans in seen.items():
        spans.sort()
        assert spans[0][0] == 0 and spans[-1][1] == plan.lengths[seq]
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # contiguous, no overlap, no gap
    assert len(seen) == len(plan.lengths)
    protein_only = RowPlan(corpus, context=128, modality="protein")
    assert protein_only.tokens_per_epoch < plan.tokens_per_epoch


def _spans(plan):
    return {(p.sequence, p.start, p.stop) for r in range(plan.rows_per_epoch()) for p in plan.row(r)}


def test_holdout_chunks_are_never_trained_on(tokens):
    corpus = open_corpus(tokens)
    whole = RowPlan(corpus, context=128)
    train = RowPlan(corpus, context=128, seed=3, holdout=0.1, part="train")
    held = RowPlan(corpus, context=128, seed=3, holdout=0.1, part="holdout")
    assert train.tokens_per_epoch + held.tokens_per_epoch == whole.tokens_per_epoch
    assert 0.05 < held.tokens_per_epoch / whole.tokens_per_epoch < 0.15
    # pieces are cut from chunks; no held-out token is inside any training piece
    held_tokens = {(s, t) for s, a, b in _spans(held) for t in range(a, b)}
    assert held_tokens and not any((s, t) in held_tokens for s, a, b in _spans(train) for t in range(a, b))
    assert _spans(RowPlan(corpus, context=128, seed=3, holdout=0.1, part="holdout")) == _spans(held)  # seeded


def test_masking_hits_only_residues_at_the_rate(tokens):
    corpus = open_corpus(tokens)
    tok = corpus.tokenizer
    maskable = np.zeros(tok.vocab_size, dtype=bool)
    maskable[tok.residue_ids("protein")] = maskable[tok.residue_ids("nucleic")] = True
    plan = RowPlan(corpus, context=512)
    ids, _ = plan.read(plan.row(0), tok.pad_id)
    rates = []
    for g in range(40):
        inputs, targets = mask_row(ids, maskable, tok.mask_id, 0.15, seed=1, global_row=g)
        chosen = targets != -100
        assert (inputs[chosen] == tok.mask_id).all() and (targets[chosen] == ids[chosen]).all()
        assert maskable[ids[chosen]].all() and (inputs[~chosen] == ids[~chosen]).all()
        rates.append(chosen.sum() / maskable[ids].sum())
    assert abs(np.mean(rates) - 0.15) < 0.01
    again, _ = mask_row(ids, maskable, tok.mask_id, 0.15, seed=1, global_row=7)
    assert np.array_equal(again, mask_row(ids, maskable, tok.mask_id, 0.15, seed=1, global_row=7)[0])


def test_ranks_split_each_step_disjointly(tokens):
    corpus = open_corpus(tokens)
    plan = RowPlan(corpus, context=128)
    tok = corpus.tokenizer
    maskable = np.ones(tok.vocab_size, dtype=bool)
    whole = BatchSource(plan, 8, 3, maskable, tok.mask_id, tok.pad_id)
    halves = [BatchSource(plan, 8, 3, maskable, tok.mask_id, tok.pad_id, rank=r, world_size=2) for r in (0, 1)]
    rows = lambda source: sorted(tuple(r) for mb in source.step(4) for r in mb.inputs.tolist())  # noqa: E731
    assert rows(whole) == sorted(rows(halves[0]) + rows(halves[1]))


def test_pretraining_loss_falls_and_metrics_are_logged(tokens, tmp_path):
    corpus = open_corpus(tokens)
    settings = _settings(total_tokens=1024 * 60, batch_tokens=2048, warmup_tokens=4096, micro_batch_rows=8)
    result = pretrain(_model(corpus), corpus, settings, tmp_path, DistributedContext())
    losses = [r["loss"] for r in result.history]
    assert np.mean(losses[-5:]) < losses[0] - 1.0  # from ln(vocab) towards the residue entropy
    assert 0.0 < masked_accuracy_baseline(corpus) < 0.5
    for record in result.history:
        # tokens/s counts the real (unpadded) tokens of the step: at most a full batch
        assert 0 < record["tokens_per_s"] * record["seconds"] <= settings.rows_per_step * settings.context + 1e-6
        parts = [record[k] for k in ("protein_accuracy", "nucleic_accuracy") if record[k] is not None]
        assert parts and all(0.0 <= v <= 1.0 for v in parts)
        assert min(parts) - 1e-9 <= record["masked_accuracy"] <= max(parts) + 1e-9  # a mixture of the two
    baselines = unigram_baselines(corpus)
    assert baselines["all"] == masked_accuracy_baseline(corpus)
    assert 0.05 < baselines["protein"] < 0.2 and 0.25 <= baselines["nucleic"] < 0.5  # real residue frequencies
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(1, settings.total_steps + 1))


def test_held_out_rows_are_scored_at_checkpoints(tokens, tmp_path):
    corpus = open_corpus(tokens)
    settings = _settings(holdout=0.1, eval_rows=8)
    result = pretrain(_model(corpus), corpus, settings, tmp_path, DistributedContext())
    scored = [r for r in result.history if "heldout_loss" in r]
    assert [r["step"] for r in scored] == [
        s for s in range(1, settings.total_steps + 1) if s % settings.checkpoint_every == 0 or s == settings.total_steps
    ]
    for record in scored:
        assert np.isfinite(record["heldout_loss"]) and 0 <= record["heldout_masked_accuracy"] <= 1
    # the score is a function of the weights: rescoring the final model gives the same numbers
    from obte_cli.engine.pretraining.loop import (
        MaskedLMObjective,
        _evaluate,
        residue_counts,
    )

    tok = corpus.tokenizer
    maskable = np.zeros(result.model.config.vocab_size, dtype=bool)
    maskable[tok.residue_ids("protein")] = maskable[tok.residue_ids("nucleic")] = True
    protein = np.zeros_like(maskable)
    protein[tok.residue_ids("protein")] = True
    held = RowPlan(corpus, settings.context, seed=settings.seed, holdout=0.1, part="holdout")
    rows = min(held.rows_per_epoch(), 8)
    source = BatchSource(held, rows, settings.micro_batch_rows, maskable, tok.mask_id, tok.pad_id, seed=settings.seed)
    again = _evaluate(
        MaskedLMObjective(result.model, torch.from_numpy(protein)),
        source,
        protein,
        residue_counts(tok),
        DistributedContext(),
    )
    assert again["heldout_loss"] == pytest.approx(scored[-1]["heldout_loss"], rel=1e-5)
    # one token per residue: the loss in bits is the masked-token-weighted mean of the two modalities' bits/residue
    bits = [
        b
        for b in (again["heldout_protein_bits_per_residue"], again["heldout_nucleic_bits_per_residue"])
        if b is not None
    ]
    assert bits and all(b > 0 for b in bits)
    # (the loss is summed in float32, the bits per residue in float64: equal to ~1e-7 relative when one modality)
    loss_bits = again["heldout_loss"] / np.log(2)
    assert min(bits) * (1 - 1e-6) <= loss_bits <= max(bits) * (1 + 1e-6)


def test_eval_tokens_are_scored_at_checkpoints(tokens, tmp_path):
    corpus = open_corpus(tokens)
    settings = _settings(eval_rows=4, eval_tokens=str(tokens))
    result = pretrain(_model(corpus), corpus, settings, tmp_path, DistributedContext(), eval_corpus=corpus)
    scored = [r for r in result.history if "heldout_protein_bits_per_residue" in r]
    assert scored and scored[-1]["step"] == settings.total_steps
    assert all(np.isfinite(r["heldout_loss"]) for r in scored)


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_resume_after_interruption_reproduces_the_run_exactly(tokens, tmp_path, optimizer):
    """Also with Muon: its momenta are checkpointed beside AdamW's moments and the run resumes bit for bit."""
    corpus = open_corpus(tokens)
    settings = _settings(optimizer=optimizer)
    straight = pretrain(_model(corpus), corpus, settings, tmp_path / "a", DistributedContext())

    def crash(record):
        if record["step"] == 5:  # checkpoints at 3 and 6: steps 4-5 are lost, as in a kill
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(_model(corpus), corpus, settings, tmp_path / "b", DistributedContext(), on_step=crash)
    resumed = pretrain(_model(corpus), corpus, settings, tmp_path / "b", DistributedContext(), resume=True)
    assert resumed.steps_run == 5
    expected = [r["loss"] for r in straight.history]
    got = [json.loads(line)["loss"] for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert got == expected  # bit-for-bit
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_refuses_other_settings(tokens, tmp_path):
    corpus = open_corpus(tokens)
    pretrain(_model(corpus), corpus, _settings(total_tokens=1024 * 3), tmp_path, DistributedContext())
    # the message names the setting that differs, with both values
    with pytest.raises(Exception, match=r"other settings \(lr was 0.01, now 0.02\)"):
        pretrain(
            _model(corpus),
            corpus,
            _settings(total_tokens=1024 * 3, lr=0.02),
            tmp_path,
            DistributedContext(),
            resume=True,
        )


def test_resume_with_a_new_budget_retargets_the_schedule_and_keeps_the_data(tokens, tmp_path):
    """--total-tokens may change on resume: the steps already run are untouched, the next steps see the
    same batches, and their LR follows the new one-cycle schedule from the resumed step on."""
    corpus = open_corpus(tokens)
    short, longer = _settings(total_tokens=1024 * 6), _settings(total_tokens=1024 * 12)
    pretrain(_model(corpus), corpus, short, tmp_path, DistributedContext())
    assert resume_budget_change(tmp_path, longer) == (6, 1024 * 6, 1024 * 12)
    assert resume_budget_change(tmp_path, short) is None
    resumed = pretrain(_model(corpus), corpus, longer, tmp_path, DistributedContext(), resume=True)
    assert resumed.steps_run == 6 and resumed.final_step == 12
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 13))
    # the LR logged at each resumed step is the new schedule's, not the old one's (which had ended)
    optimizer = make_optimizer(_model(corpus), longer)
    schedule = make_scheduler(optimizer, longer)
    hidden = next(i for i, g in enumerate(optimizer.param_groups) if g["role"] == "hidden")
    expected = [schedule.base_lrs[hidden] * schedule.lr_lambdas[hidden](step) for step in range(6, 12)]
    assert [r["lr"] for r in records[6:]] == pytest.approx(expected, rel=1e-9)
    # the data order does not depend on the budget: resumed steps see what an uninterrupted 12-step run sees
    straight = pretrain(_model(corpus), corpus, longer, tmp_path / "straight", DistributedContext())
    assert [r["tokens"] for r in records] == [r["tokens"] for r in straight.history]
    with pytest.raises(ObteError, match="already past"):
        pretrain(_model(corpus), corpus, _settings(total_tokens=1024 * 4), tmp_path, DistributedContext(), resume=True)


def _cli_args(tokens, out, *extra):
    return [
        "pretrain",
        "--tokens",
        str(tokens),
        "-o",
        str(out),
        "--preset",
        "micro",
        "--context",
        "128",
        "--batch-tokens",
        "1024",
        "--micro-batch-rows",
        "2",
        "--total-tokens",
        "6144",
        "--checkpoint-every",
        "2",
        "--seed",
        "2",
        "--device",
        "cpu",
        *extra,
    ]


def _torchrun(nproc, args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "obte_cli",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=REPO)


def _losses(out):
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.distributed
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["ddp", "fsdp", "ddp-muon"])
def test_two_processes_match_one_with_the_same_global_batch(tokens, tmp_path, mode):
    # the default (auto) is Muon on one process or DDP and AdamW under FSDP: both sides name the optimizer
    optimizer = ["--optimizer", "muon" if mode.endswith("muon") else "adamw"]
    single = obte(*_cli_args(tokens, tmp_path / "one", *optimizer))
    assert single.exit_code == 0, single.output
    extra = ["--fsdp"] if mode == "fsdp" else []
    two = _torchrun(2, _cli_args(tokens, tmp_path / "two", *extra, *optimizer))
    assert two.returncode == 0, two.stderr[-3000:]
    one_losses, two_losses = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(one_losses) == len(two_losses) == 6
    # same rows, same masks, same global-token mean: equal up to float summation order
    np.testing.assert_allclose(two_losses, one_losses, rtol=2e-5)
    w1 = tmp_path / "one" / "model" / "model.safetensors"
    w2 = tmp_path / "two" / "model" / "model.safetensors"
    from safetensors.torch import load_file

    a, b = load_file(str(w1)), load_file(str(w2))
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4


@pytest.mark.slow
def test_killed_run_resumes_exactly(tokens, tmp_path):
    # Every run in its own process with one thread: float results depend on the thread count.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "obte_cli"]
    straight = subprocess.run(
        [*cli, *_cli_args(tokens, tmp_path / "straight", "--total-tokens", "40960")],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert straight.returncode == 0, straight.stderr[-2000:]
    out = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "obte_cli", *_cli_args(tokens, out, "--total-tokens", "40960")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=REPO,
    )
    latest = out / "checkpoints" / "latest"
    deadline = time.time() + 120
    while time.time() < deadline and not (latest.is_file() and latest.read_text().strip() >= "step-0000004"):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    resumed = subprocess.run(
        [*cli, *_cli_args(tokens, out, "--total-tokens", "40960", "--resume")],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _losses(out) == _losses(tmp_path / "straight")


def test_cli_refuses_to_overwrite_a_run_and_bad_options(tokens, tmp_path):
    assert obte(*_cli_args(tokens, tmp_path / "r", "--total-tokens", "2048")).exit_code == 0
    again = obte(*_cli_args(tokens, tmp_path / "r", "--total-tokens", "2048"))
    assert again.exit_code == 1 and "--resume" in again.stderr
    bad = obte(*_cli_args(tokens, tmp_path / "s", "--modality", "rna"))
    assert bad.exit_code == 2 and all(f"'{m}'" in bad.stderr for m in ("omni", "protein", "nucleic"))  # a usage error
    count = obte(*_cli_args(tokens, tmp_path / "t", "--total-tokens", "lots"))
    assert count.exit_code == 2 and "'--total-tokens': 'lots' is not a count" in count.stderr
    assert (tmp_path / "r" / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_refuses_a_hostile_checkpoint_without_running_it(tokens, tmp_path):
    """A crafted ``.metadata`` in the latest checkpoint: exit 1, one line naming the file, nothing run."""
    out, marker = tmp_path / "r", tmp_path / "ran"
    assert obte(*_cli_args(tokens, out, "--total-tokens", "4096")).exit_code == 0
    latest = out / "checkpoints" / (out / "checkpoints" / "latest").read_text().strip()

    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (latest / ".metadata").write_bytes(pickle.dumps(RunsCode()))
    resumed = obte(*_cli_args(tokens, out, "--total-tokens", "8192", "--resume"))
    assert resumed.exit_code == 1, resumed.stderr
    assert "refused to load" in resumed.stderr and ".metadata" in resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert not marker.exists()


def test_resume_refuses_a_checkpoint_that_reads_outside_its_directory(tokens, tmp_path):
    """#31 §2: a ``.metadata`` whose storage path is ``../../../outside.distcp`` made --resume read that file
    into the weights, exit 0 and publish them in model/. Now: exit 1, one line naming the path, model/ kept."""
    from obte_cli.engine.pretraining.safe_checkpoint import read_metadata_safely

    out, other = tmp_path / "r", tmp_path / "other"
    budget = ("--total-tokens", "4096", "--warmup-tokens", "1024")
    assert obte(*_cli_args(tokens, out, *budget)).exit_code == 0
    assert obte(*_cli_args(tokens, other, *budget, "--seed", "1")).exit_code == 0
    latest = out / "checkpoints" / (out / "checkpoints" / "latest").read_text().strip()
    foreign = sorted((other / "checkpoints").glob("step-*/*.distcp"))[-1]
    (tmp_path / "outside.distcp").write_bytes(foreign.read_bytes())  # other weights, loadable, outside the run
    metadata = read_metadata_safely(latest / ".metadata")
    for info in metadata.storage_data.values():
        info.relative_path = "../../../outside.distcp"
    (latest / ".metadata").write_bytes(pickle.dumps(metadata))
    published = (out / "model" / "model.safetensors").read_bytes()
    resumed = obte(*_cli_args(tokens, out, "--total-tokens", "8192", "--warmup-tokens", "1024", "--resume"))
    assert resumed.exit_code == 1 and "Traceback" not in resumed.stderr
    errors = [line for line in resumed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(latest / ".metadata") in errors[0], resumed.stderr
    assert "'../../../outside.distcp' leads outside the checkpoint directory" in errors[0]
    assert (out / "model" / "model.safetensors").read_bytes() == published


def test_user_mistakes_in_pretrain_are_one_line_errors(tmp_path):
    """A modality the corpus does not hold, and --fsdp in one process: exit 1 and one line, no traceback."""
    fasta = tmp_path / "dna.fa"
    fasta.write_text(">a\nACGTACGTAAGGCTTAGC\n>b\nACGGGTTTACCAGGTA\n")
    assert obte("prep", fasta, "--molecule-type", "DNA", "-o", tmp_path / "prep").exit_code == 0
    assert obte("tokenize", "corpus", tmp_path / "prep", "-o", tmp_path / "tokens").exit_code == 0
    for extra, message in ((["--modality", "protein"], "no protein sequences"), (["--fsdp"], "torchrun")):
        result = obte(*_cli_args(tmp_path / "tokens", tmp_path / f"run{len(extra)}", *extra))
        assert result.exit_code == 1 and message in result.stderr, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in result.stderr and not isinstance(result.exception, ValueError)


def test_bench_throughput_runs_both_implementations(tmp_path):
    pytest.importorskip("transformers")
    result = obte(
        "bench",
        "throughput",
        "--shapes",
        "micro",
        "--vocab",
        "256",
        "--rows",
        "2",
        "--context",
        "64",
        "--steps",
        "1",
        "--layout",
        "full",
        "-o",
        tmp_path,
    )
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    header = rows[0]
    assert [r[header.index("implementation")] for r in rows[1:]] == ["obte", "hf EsmForMaskedLM"]
    assert all(float(r[header.index("tokens_per_s")]) > 0 and 0 < float(r[header.index("mfu")]) < 1.5 for r in rows[1:])
    assert float(rows[2][header.index("speedup_vs_hf")]) == 1.0
    obte_row = dict(zip(header, rows[1]))
    ratio = float(rows[2][header.index("ms_per_step")]) / float(obte_row["ms_per_step"])
    assert float(obte_row["speedup_vs_hf"]) == pytest.approx(ratio, rel=2e-3)  # one step: the paired ratio
    assert float(obte_row["speedup_q1"]) == float(obte_row["speedup_q3"]) == float(obte_row["speedup_vs_hf"])  # 1 step
    assert float(obte_row["load_avg"]) >= 0
    assert (tmp_path / "bench-throughput.png").is_file()
    bad = obte("bench", "throughput", "--shapes", "w100")
    assert bad.exit_code == 2 and "multiple of 64" in bad.stderr


def test_bench_throughput_packs_real_lengths_for_obte_and_pads_them_for_hf(tmp_path):
    pytest.importorskip("transformers")
    fasta = tmp_path / "lengths.fa"
    fasta.write_text(">a\n" + "M" * 10 + "\n>b\n" + "ACGT" * 20 + "\n>c\nMKV\n")
    args = ("bench", "throughput", "--shapes", "micro", "--vocab", "256", "--rows", "2", "--context", "64")
    result = obte(*args, "--steps", "2", "--layout", "packed", "--lengths", fasta)
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.strip().splitlines()]
    rows = [dict(zip(lines[0], line)) for line in lines[1:]]
    assert [(r["layout"], r["implementation"]) for r in rows] == [("packed", "obte"), ("packed", "hf EsmForMaskedLM")]
    obte_row, hf_row = rows
    assert obte_row["real_tokens"] == hf_row["real_tokens"] == obte_row["computed_tokens"] == "128"
    assert float(hf_row["computed_tokens"]) > 128  # one sequence per padded row
    assert float(obte_row["tokens_per_s"]) > 0 and float(obte_row["speedup_vs_hf"]) > 0
    for content, message in (("length\n5\n", "no 'tokens' column"), ("tokens\n5\nNA\n", "whole numbers (found 'NA')")):
        (tmp_path / "bad.tsv").write_text(content)
        bad = obte(*args, "--layout", "packed", "--lengths", tmp_path / "bad.tsv")
        assert bad.exit_code == 1 and message in bad.stderr and "Traceback" not in bad.stderr
    full_with_lengths = (["--layout", "full", "--lengths", fasta], "'--lengths': is for the packed layout", 2)
    for extra, message, code in ((["--lengths", tmp_path / "none.tsv"], "no such file", 1), full_with_lengths):
        bad = obte(*args, *extra)
        assert bad.exit_code == code and message in bad.stderr and "Traceback" not in bad.stderr


def test_divergence_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tokens, tmp_path):
    from obte_cli.engine.pretraining.loop import TrainingDiverged

    corpus = open_corpus(tokens)
    model = _model(corpus)
    original = model.forward

    def poisoned(ids, doc_ids=None, layers=()):
        out = original(ids, doc_ids, layers)
        if poisoned.calls >= 12:  # after the checkpoint at step 3 (3 micro-batches per step)
            out.hidden.data.fill_(float("nan"))
        poisoned.calls += 1
        return out

    poisoned.calls = 0
    model.forward = poisoned
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 5; the last good checkpoint .* \(step 3\)"):
        pretrain(model, corpus, _settings(), tmp_path, DistributedContext())
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "step-0000003"


@pytest.mark.slow
def test_gpu_training_script_sizes_its_budget_from_the_probe(tokens, tmp_path):
    """scripts/train-backbone-gpu.sh (here on the CPU, at a toy shape): the main run's token budget is the
    probe's measured rate times the time left, its warm-up 5% of it, and it scores the held-out split."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OBTE": f"{sys.executable} -m obte_cli",
        **{"DEVICE": "cpu", "WIDTH": "32", "LAYERS": "1", "HEADS": "1", "ROWS": "2", "CONTEXT": "128"},
        **{"CHECKPOINT": "50", "RESERVE": "0"},
    }
    run = tmp_path / "run"
    script = REPO / "scripts" / "train-backbone-gpu.sh"
    # 40 s of budget: what model init and the probe leave of it, at 85% of the probe's rate (100 steps at least)
    done = subprocess.run(
        ["bash", str(script), str(tokens), str(tokens), str(run), "40"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(line for line in done.stderr.splitlines() if line.startswith("probe: "))
    rate, left, total = (int(x) for x in re.findall(r"\d+", line))
    batch = 2 * 128
    assert left < 40
    assert total == max(int(0.85 * rate * left) // batch, 100) * batch
    probe = [json.loads(x) for x in (run / "probe" / "metrics.jsonl").read_text().splitlines()]
    assert len(probe) == 40 and {r["tokens_per_s"] for r in probe[-20:]} and rate > 0
    main = [json.loads(x) for x in (run / "main" / "metrics.jsonl").read_text().splitlines()]
    assert main[-1]["tokens"] == total and len(main) == total // batch
    assert "heldout_protein_bits_per_residue" in main[49] and "heldout_loss" in main[-1]
    assert "heldout_loss" not in main[48]
    config = json.loads((run / "main" / "model" / "config.json").read_text())
    assert config["architecture"]["width"] == 32 and config["architecture"]["n_layers"] == 1
    assert config["metadata"]["pretraining"]["warmup_tokens"] == total // 20


def test_a_full_disk_while_writing_a_checkpoint_is_one_line(tokens, tmp_path, monkeypatch):
    """#31 §5: DCP hands a write's OSError over wrapped in a CheckpointException (a BaseException): it ended the
    run in a traceback. Now one `error:` line naming the checkpoint, exit 1, and no partial checkpoint left."""
    import errno

    import torch.distributed.checkpoint.filesystem as dcp_files

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(dcp_files, "_write_item", disk_full)
    out = tmp_path / "r"
    result = obte("-q", *_cli_args(tokens, out, "--total-tokens", "4096"))
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.stderr.strip().splitlines() == [
        f"error: {out / 'checkpoints' / 'step-0000002'}: cannot write: No space left on device"
    ]
    assert not list((out / "checkpoints").glob(".step-*"))  # the partial checkpoint is gone


@pytest.mark.parametrize("field", ["step", "tokens"])
def test_a_checkpoint_whose_trainer_step_is_negative_is_one_line(tokens, tmp_path, field):
    out = tmp_path / "r"
    assert obte(*_cli_args(tokens, out, "--total-tokens", "4096")).exit_code == 0
    latest = out / "checkpoints" / (out / "checkpoints" / "latest").read_text().strip()
    trainer = json.loads((latest / "trainer.json").read_text())
    (latest / "trainer.json").write_text(json.dumps({**trainer, field: -3}))
    for budget in ("4096", "8192"):  # the same budget, and a new one (read first to re-target the schedule)
        resumed = obte("-q", *_cli_args(tokens, out, "--total-tokens", budget, "--resume"))
        assert resumed.exit_code == 1 and "Traceback" not in resumed.output, resumed.output
        assert resumed.stderr.strip().splitlines() == [
            f"error: {latest / 'trainer.json'}: '{field}' must not be negative (got -3)"
        ]


def test_resume_on_a_new_budget_keeps_the_auto_warm_up_and_counts_steps_on(tokens, tmp_path):
    """#33 §4: the README's "continue on a new budget" failed ("other settings") because the auto warm-up is
    5% of the budget; a resumed run keeps its own warm-up, and progress counts on from the resumed step."""
    out = tmp_path / "run"
    args = ["--context", "128", "--batch-tokens", "1024", "--micro-batch-rows", "2", "--device", "cpu"]
    first = obte("pretrain", "--tokens", tokens, "-o", out, "--total-tokens", "4096", "--checkpoint-every", "2", *args)
    assert first.exit_code == 0, first.output
    common = ["pretrain", "--tokens", tokens, "-o", out, "--checkpoint-every", "2", *args]
    resumed = obte(*common, "--total-tokens", "9216", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "other settings" not in resumed.stderr
    assert "pretrain: step 5/9" in resumed.stderr and "step 1/9" not in resumed.stderr, resumed.stderr
    saved = json.loads((out / "checkpoints" / "step-0000009" / "trainer.json").read_text())["settings"]
    assert saved["warmup_tokens"] == 4096 // 20  # the first run's warm-up, not 5% of the new budget


def test_muon_and_mask_rate_options(tokens, tmp_path):
    """--optimizer muon trains and records its settings; Muon with --fsdp and a mask rate outside (0, 1) are refused."""
    out = tmp_path / "muon"
    run = obte(*_cli_args(tokens, out, "--optimizer", "muon", "--muon-lr", "0.03", "--mask-rate", "0.3"))
    assert run.exit_code == 0, run.output
    latest = (out / "checkpoints" / "latest").read_text().strip()
    saved = json.loads((out / "checkpoints" / latest / "trainer.json").read_text())["settings"]
    assert (saved["optimizer"], saved["muon_lr"], saved["mask_rate"]) == ("muon", 0.03, 0.3)
    for rate in ("0", "1", "nan"):
        bad = obte(*_cli_args(tokens, tmp_path / f"m{rate}", "--mask-rate", rate))
        assert bad.exit_code == 2 and "--mask-rate" in bad.stderr, bad.output
    corpus = open_corpus(tokens)
    with pytest.raises(ObteError, match="--fsdp"):
        pretrain(_model(corpus), corpus, _settings(optimizer="muon", fsdp=True), tmp_path / "f", DistributedContext())


def test_training_mask_rate_changes_training_masks_but_not_held_out_scoring(tokens, tmp_path):
    corpus = open_corpus(tokens)
    settings = dict(total_tokens=1024 * 3, holdout=0.2, eval_rows=8)
    low = pretrain(_model(corpus), corpus, _settings(mask_rate=0.15, **settings), tmp_path / "a", DistributedContext())
    high = pretrain(_model(corpus), corpus, _settings(mask_rate=0.4, **settings), tmp_path / "b", DistributedContext())
    # the first step's loss is over ~2.7 times as many masked tokens; held-out rows are masked alike
    assert low.history[0]["loss"] != high.history[0]["loss"]
    before = [r for r in low.history if "heldout_loss" in r]
    assert before and all("heldout_loss" in r for r in high.history if r["step"] == before[0]["step"])
