"""``obte bench``: measured accuracy, printed as tables and drawn as plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from obte_cli.commands.common import affinity_cv_report, log, new_app, open_output
from obte_cli.commands.options import (
    BACKBONE_DEFAULT_HELP,
    MAX_BATCH,
    MAX_BATCH_TOKENS,
    MAX_BUDGET,
    MAX_CONTEXT,
    MAX_EPOCHS,
    MAX_EXAMPLES,
    MAX_FOLDS,
    MAX_MUTANTS,
    MAX_REPEATS,
    MAX_ROWS,
    MAX_STEPS,
    MAX_VOCAB,
    MAX_WORKERS,
    MUTATION_RATE,
    ContactMethod,
    Device,
    DeviceOption,
    ForceOption,
    Gb1Split,
    Layout,
    Preset,
    Readout,
    Recipe,
    SequenceReadout,
    Strategy,
    Suite,
    backbone_context_option,
    backbone_or_default,
    count_option,
    device_option,
    finetune_settings,
    guard_new_output,
    model_option,
    number_in,
    old_short_options,
    out_option,
    readout_option,
    seed_option,
    shapes_check,
    usage_error,
)
from obte_cli.commands.progress import work_progress

app = new_app("Benchmarks: accuracy suites, each run end to end and reported as TSV (stdout) and plots (--out).")


@app.command("pronab")
def pronab(
    data: Path = typer.Option(..., "--data", "-d", help="ProNAB JSON (e.g. pronab_dev.json) or a pairs TSV."),
    model: Annotated[
        Path | None, model_option(f"Backbone to fine-tune with the full CV protocol {BACKBONE_DEFAULT_HELP}.")
    ] = None,
    from_cv: Path = typer.Option(
        None, "--from-cv", help="Score an existing `obte finetune affinity` output directory instead of training."
    ),
    out: Annotated[Path, out_option("Directory for bench.tsv, bench.png (and the CV run, if trained here).")] = ...,
    folds: int = count_option(
        10, "--folds", "-k", low=2, high=MAX_FOLDS, help="Cross-validation folds grouped by protein."
    ),
    homology_threshold: float = typer.Option(
        0.3, "--homology-threshold", callback=number_in(), help="Homology guard threshold (see finetune affinity)."
    ),
    no_homology_guard: bool = typer.Option(
        False, "--no-homology-guard", help="Test every protein (the paper's protocol)."
    ),
    epochs: int = count_option(3, "--epochs", low=1, high=MAX_EPOCHS, help="Fine-tuning epochs."),
    batch_size: int = count_option(32, "--batch-size", low=1, high=MAX_BATCH, help="Complexes per optimizer step."),
    truncate: bool = typer.Option(True, "--truncate/--no-truncate", help="Cut proteins to the backbone's context."),
    seed: Annotated[int, seed_option("Seed for folds, training and the baseline.")] = 0,
    readout: Annotated[Readout, readout_option()] = Readout.first,
    device: DeviceOption = Device.auto,
    force: ForceOption = False,
) -> None:
    """ΔG on ProNAB: the obte model vs composition features + gradient boosting, on the same folds.

    Prints one TSV row per method: PCC, MAE and RMSE as mean and SEM over folds, and pooled over all
    out-of-fold predictions; within-protein PCC (mean over test proteins with ≥ 5 measurements: does it
    rank one protein's nucleic acids?) and per-protein PCC (of the proteins' mean ΔG).
    Writes bench.tsv and bench.png to --out.

    Example: [bold]obte bench pronab --data pronab_dev.json --model backbone/ --out bench-pronab/[/bold]
    """
    from obte_cli.engine.affinity.training import AffinityCV
    from obte_cli.engine.bench.pronab import run_pronab_bench
    from obte_cli.engine.bio.homology import homology_cache_dir
    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.core.tables import write_tsv

    if model is not None and from_cv is not None:
        raise usage_error("give either --model (train and score) or --from-cv (score an existing run)", "--from-cv")
    if from_cv is None:
        model = backbone_or_default(model)
    guard_new_output(out, force, inputs=(data, model, from_cv))
    threshold = None if no_homology_guard else homology_threshold
    train = None
    if model is not None:
        train = AffinityCV(
            backbone=model,
            settings=finetune_settings(
                epochs,
                batch_size,
                max_tokens=16384,
                lr_head=1e-2,
                lr_embedding=1e-3,
                lr_body=1e-4,
                warmup=0.05,
                seed=seed,
            ),
            folds=folds,
            homology_threshold=threshold,
            truncate=truncate,
            device=resolve_device(device),
            workers=None,
            homology_cache=homology_cache_dir(),
            readout=readout.value,
        )
    report = affinity_cv_report(data, folds, threshold)
    report.work_progress = work_progress
    report.baseline = lambda n: log.info("baseline: composition features + gradient boosting on the same %d folds", n)
    results = run_pronab_bench(data, out, seed, from_cv=from_cv, train=train, report=report)
    with open_output("-") as handle:
        write_tsv(results, handle)
    for r in results.itertuples():
        log.info(
            "%-16s PCC %.3f ± %.3f   MAE %.3f ± %.3f kcal/mol   within-protein PCC %.3f (%d proteins)   "
            "per-protein PCC %.3f",
            r.method,
            r.pcc_mean,
            r.pcc_sem,
            r.mae_mean,
            r.mae_sem,
            r.within_protein_pcc,
            r.within_protein_n,
            r.per_protein_pcc,
        )
    log.info("wrote %s", out)


@app.command("prep")
def prep(
    inputs: list[Path] = typer.Argument(
        ..., help="GenBank or FASTA files (optionally .gz), e.g. a GenBank division file."
    ),
    workers: int = count_option(
        2,
        "--workers",
        "-j",
        low=1,
        high=MAX_WORKERS,
        help="Workers for the scaling row (each gets its own copy of the input).",
    ),
    repeats: int = count_option(3, "--repeats", low=1, high=MAX_REPEATS, help="Runs per timing; the best is reported."),
    out: Annotated[Path | None, out_option("Directory for bench-prep.tsv and bench-prep.png.")] = None,
) -> None:
    """Prep throughput (MB/s of input) vs Biopython SeqIO.parse alone, same files, same run.

    Example: [bold]obte bench prep gbvrl1.seq.gz --workers 2 -o bench/[/bold]
    """
    import pandas as pd

    from obte_cli.engine.bench.prep import bench_prep
    from obte_cli.engine.core.directories import output_directory
    from obte_cli.engine.core.inputs import existing_file
    from obte_cli.engine.core.plots import method_comparison
    from obte_cli.engine.core.tables import write_tsv

    for path in inputs:
        existing_file(path)
    if out is not None:
        output_directory(out)  # now, not after the measurements
    results = pd.DataFrame(bench_prep(inputs, workers, repeats))
    with open_output("-") as handle:
        write_tsv(results, handle, float_format="%.4g")
    if out is not None:
        write_tsv(results, out / "bench-prep.tsv")
        labels = [f"{m}\n×{w}" if w > 1 else m for m, w in zip(results["method"], results["workers"])]
        method_comparison(
            labels,
            [("input MB/s per worker", results["mb_per_s_per_worker"].tolist(), [0.0] * len(results))],
            f"prep throughput, {results['megabytes'][0]:.1f} MB input",
            out / "bench-prep.png",
        )
        log.info("wrote %s", out)


@app.command("throughput")
def throughput(
    presets: str = typer.Option(
        "tiny,w512",
        "--shapes",
        callback=shapes_check,
        help="Comma-separated presets, or wWIDTH for a 4-layer model of that width (heads of 64).",
    ),
    vocab: int = count_option(
        4096, "--vocab", low=1, high=MAX_VOCAB, help="Vocabulary size (4096: the paper's 2 × 2^11 BPE)."
    ),
    rows: int = count_option(8, "--rows", low=1, high=MAX_ROWS, help="Rows per step (full layout: one sequence each)."),
    context: int = typer.Option(512, "--context", min=1, max=MAX_CONTEXT, help="Tokens per row."),
    layout: Layout = typer.Option(
        Layout.both,
        "--layout",
        help="full: one sequence filling each row, for both; packed: real sequence lengths filling rows × "
        "context tokens, packed by obte (as pretraining), one per padded row for Hugging Face; both.",
    ),
    lengths_file: Path | None = typer.Option(
        None,
        "--lengths",
        help="Sequence lengths for the packed layout: a FASTA file (plain or .gz), or a TSV with a 'tokens' "
        "column (default: a seeded sample of the Debian pretraining corpus, share/bench/pretraining-lengths.tsv).",
    ),
    steps: int = count_option(
        10,
        "--steps",
        low=1,
        high=MAX_STEPS,
        help="Timed steps of each implementation, taken in turns (median and paired speed-up reported), "
        "after 3 warm-up steps of each.",
    ),
    no_hf: bool = typer.Option(False, "--no-hf", help="Skip the Hugging Face EsmForMaskedLM comparison."),
    device: Annotated[Device, device_option("auto, cpu or cuda (fp32 on CPU, bf16 autocast on CUDA).")] = Device.cpu,
    out: Annotated[Path | None, out_option("Directory for bench-throughput.tsv and .png.")] = None,
) -> None:
    """Training throughput (real tokens/s) and MFU of obte vs Hugging Face EsmForMaskedLM of the same shape,
    the two taking steps in turns (speed-up: median of the paired per-step ratios, with its quartiles).

    Example: [bold]obte bench throughput --shapes tiny,w512 --context 512 -o bench/[/bold]
    """
    import pandas as pd

    from obte_cli.engine.bench.hf import require_transformers
    from obte_cli.engine.bench.throughput import LAYOUTS, bench_throughput, read_lengths
    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.core.directories import output_directory
    from obte_cli.engine.core.plots import method_comparison
    from obte_cli.engine.core.resources import bench_file
    from obte_cli.engine.core.tables import write_tsv
    from obte_cli.engine.model.encoder import PRESETS, preset_config

    layouts = list(LAYOUTS) if layout == Layout.both else [layout.value]
    if lengths_file is not None and "packed" not in layouts:
        raise usage_error("is for the packed layout (--layout packed or both)", "--lengths")
    lengths = read_lengths(lengths_file or bench_file("pretraining-lengths.tsv")) if "packed" in layouts else None
    shapes = []
    for name in (s.strip() for s in presets.split(",") if s.strip()):
        if name in PRESETS:
            shapes.append((name, preset_config(name, vocab, max_positions=context)))
        else:  # wWIDTH (shapes_check)
            width = int(name[1:])
            shapes.append((name, preset_config("tiny", vocab, width=width, n_heads=width // 64, max_positions=context)))
    if not no_hf:
        require_transformers()  # one line naming the extra to install, before any measurement
    if out is not None:
        output_directory(out)  # now, not after the measurements
    results = pd.DataFrame(
        bench_throughput(
            shapes, rows, context, resolve_device(device), steps, include_hf=not no_hf, layouts=layouts, lengths=lengths
        )
    )
    with open_output("-") as handle:
        write_tsv(results, handle, float_format="%.4g")
    if out is not None:
        write_tsv(results, out / "bench-throughput.tsv")
        labels = [
            f"{s} {lay}\n{i.split()[0]}"
            for s, lay, i in zip(results["shape"], results["layout"], results["implementation"])
        ]
        method_comparison(
            labels,
            [
                ("training tokens/s (real tokens)", results["tokens_per_s"].tolist(), [0.0] * len(results)),
                ("MFU (of measured matmul peak)", results["mfu"].tolist(), [0.0] * len(results)),
            ],
            f"MLM training, {rows} × {context} tokens, vocab {vocab}, {results['peak_gflops'][0]:.0f} GFLOP/s peak",
            out / "bench-throughput.png",
        )
        log.info("wrote %s", out)


@app.command("jaspar")
def jaspar(
    matrices: Path = typer.Option(
        ..., "--jaspar", help="JASPAR file with many matrices (e.g. JASPAR2024_CORE.jaspar)."
    ),
    accessions: Path = typer.Option(..., "--accessions", help="matrices.tsv: matrix_id → UniProt accession(s)."),
    data: Path = typer.Option(..., "--data", "-d", help="ProNAB JSON: the protein sequences, keyed by accession."),
    model: Annotated[Path | None, model_option("Cross-validation ensemble (default: the bundled model).")] = None,
    mutants: int = count_option(8, "--mutants", low=1, high=MAX_MUTANTS, help="Mutated consensus sites per matrix."),
    rate: float = typer.Option(0.05, "--rate", callback=MUTATION_RATE, help="Per-base substitution probability."),
    seed: Annotated[int, seed_option("Seed of the mutants.")] = 0,
    device: DeviceOption = Device.auto,
    out: Annotated[Path, out_option("Directory for bench-jaspar.tsv (per mutant) and bench-jaspar.png.")] = ...,
) -> None:
    """Specificity on JASPAR: each TF scored by the fold model that never saw its protein.

    Only matrices whose protein sequence is known and was *tested* (not trained on) in the ensemble's
    cross-validation are scanned; prints the summary (mean ΔΔG ± SEM, fraction > 0, Spearman ρ).

    Example: [bold]obte bench jaspar --jaspar CORE.jaspar --accessions matrices.tsv --data pronab.json -o bench/[/bold]
    """
    from obte_cli.engine.bench.jaspar import JasparBench, run_jaspar_bench
    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.core.resources import default_affinity_model_dir

    bench = JasparBench(model or default_affinity_model_dir(), mutants, rate, seed, resolve_device(device))
    result = run_jaspar_bench(
        matrices,
        accessions,
        data,
        out,
        bench,
        chosen=lambda n, skipped: log.info(
            "%d matrices scanned by the fold model that tested their protein; skipped: %d without a sequence, "
            "%d whose protein the models trained on",
            n,
            skipped["no_sequence"],
            skipped["in_training"],
        ),
    )
    summary = result.summary
    with open_output("-") as handle:
        handle.write(
            "\t".join(summary)
            + "\n"
            + "\t".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in summary.values())
            + "\n"
        )
    log.info(
        "mean ΔΔG %.3f ± %.3f kcal/mol over %d TFs (one-sided p for > 0: %.3g); %.0f%% > 0; "
        "Spearman ρ(ΔΔG, log-odds drop) %.3f",
        summary["mean_ddG"],
        summary["sem_ddG"],
        summary["matrices"],
        summary["p_mean_ddG_gt_0"],
        100 * summary["fraction_positive"],
        summary["spearman_ddG_vs_logodds_drop"],
    )


@app.command("embed")
def embed(
    fasta: Path = typer.Argument(..., help="FASTA of real sequences (mixed lengths), e.g. ProNAB proteins."),
    preset: Preset = typer.Option(Preset.tiny, "--preset", help="Model shape for both implementations."),
    tokenizer: str = typer.Option("residue", "--tokenizer", "-t", help="Tokenizer (bundled name or directory)."),
    batch_size: int = count_option(
        8, "--batch-size", low=1, high=MAX_BATCH, help="Records per padded Hugging Face batch."
    ),
    max_tokens: int = count_option(
        16384, "--max-tokens", low=1, high=MAX_BATCH_TOKENS, help="obte's token budget per forward pass."
    ),
    repeats: int = count_option(
        5,
        "--repeats",
        low=1,
        high=MAX_REPEATS,
        help="Timed rounds, obte and HF taking turns (median and paired speed-up reported).",
    ),
    no_hf: bool = typer.Option(False, "--no-hf", help="Skip the Hugging Face comparison."),
    out: Annotated[Path | None, out_option("Directory for bench-embed.tsv.")] = None,
) -> None:
    """Embedding throughput (residues/s, mean pooling) of obte vs Hugging Face EsmModel, same shape and threads.

    Example: [bold]obte bench embed pronab_proteins.fa --preset tiny[/bold]
    """
    import pandas as pd

    from obte_cli.engine.bench.embed import bench_embed
    from obte_cli.engine.bench.hf import require_transformers
    from obte_cli.engine.bio.molecules import detect_molecule_type
    from obte_cli.engine.bio.seqio import read_fasta
    from obte_cli.engine.core.directories import output_directory
    from obte_cli.engine.core.errors import InputError
    from obte_cli.engine.core.tables import write_tsv
    from obte_cli.engine.model.encoder import padded_vocab_size, preset_config
    from obte_cli.engine.tokenizers.base import Segment
    from obte_cli.engine.tokenizers.loading import load_tokenizer

    preset = preset.value
    if not no_hf:
        require_transformers()  # one line naming the extra to install, not a traceback
    if out is not None:
        output_directory(out)  # now, not after the measurements
    tok = load_tokenizer(tokenizer)
    segments = [Segment(r.sequence, detect_molecule_type(r.sequence).name, r.id) for r in read_fasta(fasta)]
    longest = max(len(tok.encode_one([s])) for s in segments)
    config = preset_config(preset, padded_vocab_size(tok.vocab_size), max_positions=max(longest, 64))
    if max_tokens < longest:
        raise InputError(f"--max-tokens {max_tokens} is below the longest record ({longest} tokens)")
    results = pd.DataFrame(bench_embed(config, tok, segments, batch_size, max_tokens, repeats, include_hf=not no_hf))
    with open_output("-") as handle:
        write_tsv(results, handle, float_format="%.4g")
    if out is not None:
        write_tsv(results, out / "bench-embed.tsv")


@app.command("contacts")
def contacts(
    structures: list[Path] = typer.Argument(
        ..., help="PDB/mmCIF files or directories of them (e.g. ../shared/data/pdb-protein-dna)."
    ),
    model: Annotated[
        list[Path] | None,
        model_option(
            f"Backbone(s) to compare (repeat the option), e.g. a base and a ΔG-tuned model {BACKBONE_DEFAULT_HELP}."
        ),
    ] = None,
    methods: list[ContactMethod] = typer.Option(
        list(ContactMethod),
        "--methods",
        help=(
            "Predictors to score (repeat the option for several): head (fine-tuned), attention (probe on frozen "
            "maps), propensity (per-amino-acid rates, no model)."
        ),
    ),
    out: Annotated[Path, out_option("Directory for metrics.tsv, folds.tsv and contacts_f1.png.")] = ...,
    folds: int = count_option(
        5, "--folds", "-k", low=2, high=MAX_FOLDS, help="Cross-validation folds grouped by protein sequence."
    ),
    epochs: int = count_option(
        4,
        "--epochs",
        low=1,
        high=MAX_EPOCHS,
        help="Epochs of the head (the probe trains 3× as many over single sites).",
    ),
    max_residues: int = count_option(
        0,
        "--max-residues",
        low=0,
        high=MAX_BUDGET,
        show_default="no limit",
        help="Skip protein chains longer than this (0: keep all; long chains are cut to the context).",
    ),
    context: Annotated[int | None, backbone_context_option()] = None,
    seed: Annotated[int, seed_option("Seed for folds and training.")] = 0,
    device: DeviceOption = Device.auto,
) -> None:
    """Contact prediction F1 at each cutoff vs the random-guess F1, out-of-fold on real structures.

    Labels come from the structures (every protein chain with its nucleic-acid chains, as `obte contacts
    labels --per-chain`); sites are cross-validated in folds grouped by protein sequence, the same folds
    for every predictor. Each fold's F1 uses the threshold fitted on its training folds. Prints
    metrics.tsv (per predictor and cutoff: F1 / precision / recall mean ± SEM over folds, pooled F1,
    ROC AUC, positive rate, random-guess F1 = 2p/(1+p)).

    Example: [bold]obte bench contacts ../shared/data/pdb-protein-dna -m backbone/ -o bench-contacts/[/bold]
    """
    from obte_cli.engine.bench.contacts import ContactBench, ContactBenchReport, run_contacts_bench
    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.core.tables import write_tsv

    bench = ContactBench(
        backbones=model or [backbone_or_default(None)],
        methods=tuple(m.value for m in methods),
        folds=folds,
        epochs=epochs,
        max_residues=max_residues,
        context=context,
        seed=seed,
        device=resolve_device(device),
    )
    report = ContactBenchReport(
        skipped=lambda name, reason: log.warning("skipped %s: %s", name, reason),
        loaded=lambda sites, n_files, n_skipped: log.info(
            "%d sites (%d distinct proteins, %d residues) from %d structures, %d skipped",
            len(sites),
            len({s.protein for s in sites}),
            sum(len(s.protein) for s in sites),
            n_files,
            n_skipped,
        ),
        run_started=lambda label: log.info("%s ...", label),
        run_done=_log_contact_rows,
        progress=lambda total, label: work_progress(total, "bench contacts", label),
    )
    metrics = run_contacts_bench(structures, out, bench, report)
    with open_output("-") as handle:
        write_tsv(metrics, handle, float_format="%.4g")
    log.info("wrote %s", out)


def _log_contact_rows(table) -> None:
    for row in table.itertuples():
        log.info(
            "  %g Å: F1 %.3f ± %.3f (random %.3f), ROC AUC %.3f",
            row.cutoff,
            row.f1,
            row.f1_sem,
            row.random_f1,
            row.roc_auc,
        )


@app.command("tasks")
@old_short_options({"-s": "--suite"})
def tasks(
    data: Path = typer.Option(
        ...,
        "--data",
        "-d",
        help="Data root holding gue/, flip/secondary_structure/, flip/gb1/ and scope/astral_2.07_40.fa, "
        "as the benchmarks ship (e.g. ../shared/data).",
    ),
    models: Annotated[
        list[Path] | None,
        model_option(f"Model directory; repeat for several {BACKBONE_DEFAULT_HELP}."),
    ] = None,
    suites: list[Suite] = typer.Option(
        [Suite.all], "--suite", help="gue, ss3, gb1, homology or all; repeat for several."
    ),
    only: list[str] = typer.Option(
        [], "--task", help="Run only these tasks (names as in the output, e.g. gue/tf/0); repeat for several."
    ),
    gb1_split: Gb1Split = typer.Option(Gb1Split.three_vs_rest, "--gb1-split", help="Which FLIP GB1 split."),
    max_train_tokens: int = count_option(
        100_000,
        "--max-train-tokens",
        low=1,
        high=MAX_BUDGET,
        help="CPU budget: tokens of training examples per epoch, per task.",
    ),
    max_eval_examples: int = count_option(
        1_000,
        "--max-eval-examples",
        low=1,
        high=MAX_EXAMPLES,
        help="CPU budget: dev and test examples per task (seeded subset).",
    ),
    epochs: int = count_option(
        3, "--epochs", low=1, high=MAX_EPOCHS, help="finetune recipe: epochs (the best on dev is scored)."
    ),
    batch_size: int = count_option(32, "--batch-size", low=1, high=MAX_BATCH, help="Examples per optimizer step."),
    no_fresh_control: bool = typer.Option(
        False, "--no-fresh-control", help="Skip the fresh-init control of each model (half the time)."
    ),
    recipe: Recipe = typer.Option(
        Recipe.probe,
        "--recipe",
        help="probe: a linear model on the frozen final states, penalty chosen on dev (fits a CPU); finetune: "
        "the paper's fine-tuning recipe, best dev epoch (needs far more steps than a CPU budget gives).",
    ),
    readout: SequenceReadout = typer.Option(
        SequenceReadout.mean,
        "--readout",
        help="finetune recipe: what a sequence task's head reads, the mean of all tokens or the first token's "
        "state (as the reference, which fine-tunes far longer).",
    ),
    seed: Annotated[int, seed_option("Seed of the subsets, the homology split, the fresh controls and training.")] = 0,
    device: DeviceOption = Device.auto,
    force: ForceOption = False,
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue an interrupted run in OUT: the rows in OUT/tasks.tsv are kept, and those of this run's "
        "tasks and models (by model name) are not run again. They must have the same budget, recipe and seed.",
    ),
    out: Annotated[Path, out_option("Directory for tasks.tsv (one row per task and model) and tasks.png.")] = ...,
) -> None:
    """Single-omic benchmarks: each model on GUE (DNA, MCC), FLIP secondary structure (Q3), FLIP GB1 (Spearman ρ)
    and SCOPe remote homology (fold accuracy, superfamilies held out), each beside a fresh-init control of the
    same shape, with one recipe (a linear probe of the frozen model, or fine-tuning) and a CPU budget (both
    recorded in every row).

    Prints the rows as TSV; tasks.tsv is rewritten after every task, so an interrupted run keeps its results
    (and --resume continues it).

    Example: [bold]obte bench tasks --data ../shared/data --suite gue --suite ss3 -o bench-tasks/[/bold]
    """
    import pandas as pd

    from obte_cli.engine.bench.suites import select_tasks
    from obte_cli.engine.bench.tasks import (
        RESULT_COLUMNS,
        TaskBudget,
        resume_rows,
        run_task_bench,
        write_task_bench_outputs,
    )
    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.core.directories import output_directory
    from obte_cli.engine.core.tables import write_tsv

    chosen_models = models or [backbone_or_default(None)]
    names = _model_names(chosen_models)
    if resume and force:
        raise usage_error("continues OUT and --force replaces it: give one of them", "--resume")
    guard_new_output(out, force or resume, inputs=(data, *chosen_models))
    task_list = select_tasks([s.value for s in suites], data, seed, gb1_split.value, only)
    settings = finetune_settings(epochs, batch_size, 16384, 1e-2, 1e-3, 1e-4, 0.05, seed)
    budget = TaskBudget(max_train_tokens, max_eval_examples)
    earlier, kept = resume_rows(out / "tasks.tsv", resume, task_list, names, not no_fresh_control, budget, settings,
                                recipe.value, readout.value)  # fmt: skip
    if earlier:
        log.info("resuming: %d of the %d rows in %s are this run's", len(earlier) - len(kept), len(earlier),
                 out / "tasks.tsv")  # fmt: skip
    output_directory(out)
    log.info("%d tasks × %d models%s; recipe %s; budget %d training tokens, %d dev/test examples", len(task_list),
             len(names), "" if no_fresh_control else " (each with a fresh-init control)", recipe.value,
             max_train_tokens, max_eval_examples)  # fmt: skip
    written: list[dict] = []

    def save(row: dict) -> None:
        written.append(row)
        log.info("%s  %s (%s): %s %.3f  [%.0f s]", row["task"], row["model"], row["init"], row["metric"],
                 row["score"], row["seconds"])  # fmt: skip
        write_tsv(pd.DataFrame(written + kept, columns=RESULT_COLUMNS), out / "tasks.tsv")

    results = run_task_bench(
        dict(zip(names, chosen_models)), task_list, settings, budget, resolve_device(device),
        fresh_control=not no_fresh_control, readout=readout.value, recipe=recipe.value,
        on_run=lambda task, model, init: log.info("%s: %s on %s (%s)", recipe.value, model, task, init),
        on_result=save, done=earlier, progress=lambda total, label: work_progress(total, "bench tasks", label),
    )  # fmt: skip
    with open_output("-") as handle:
        write_tsv(results, handle)
    for model, (wins, tasks_scored) in write_task_bench_outputs(results, kept, out, budget).items():
        log.info("%s beats its fresh-init control on %d of %d tasks", model, wins, tasks_scored)
    log.info("wrote %s", out)


def _model_names(models: list[Path]) -> list[str]:
    """Short, distinct names for the output: the directory names (a pretraining run's ``RUN/model`` is named
    after its run), with the whole paths where two collide."""
    names = [(Path(m).parent.name if Path(m).name == "model" else Path(m).name) or str(m) for m in models]
    if len(set(names)) < len(names):
        names = [str(m) for m in models]
    return names


@app.command("variants")
@old_short_options({"-s": "--strategy"})
def variants(
    data: Path = typer.Option(
        ..., "--data", help="A FLIP GB1 split CSV (sequence,target,...), e.g. ../shared/data/flip/gb1/one_vs_rest.csv."
    ),
    model: Annotated[Path | None, model_option(f"Backbone to measure {BACKBONE_DEFAULT_HELP}.")] = None,
    strategies: list[Strategy] = typer.Option(
        None,
        "--strategy",
        help="Scores to measure (repeatable; default all four: wt-marginals, masked-marginals, mutant-marginals, "
        "pseudo-ppl; see `obte score --help` for what each costs).",
    ),
    limit: int = count_option(
        0,
        "--limit",
        low=0,
        high=1_000_000,
        show_default="all",
        help="Score a seeded random subset of this many variants (0: all).",
    ),
    seed: Annotated[int, seed_option("Seed of the subset, of the fresh-init control and of pseudo-ppl's groups.")] = 0,
    max_tokens: int = count_option(
        16384, "--max-tokens", low=64, high=MAX_BATCH_TOKENS, help="Tokens per forward pass (memory bound)."
    ),
    device: DeviceOption = Device.auto,
    out: Annotated[Path, out_option("Directory for variants.tsv (ρ per method) and variant_scores.tsv.")] = ...,
) -> None:
    """Zero-shot variant effects on GB1: Spearman ρ of each score against measured fitness, for the model, a
    fresh-init control of its shape, BLOSUM62 and a hydropathy-change baseline.

    Every variant of the file is scored against the wild type (the row of fitness exactly 1). The table goes
    to stdout and DIR/variants.tsv; every variant's scores to DIR/variant_scores.tsv.

    Example: [bold]obte bench variants --data ../shared/data/flip/gb1/one_vs_rest.csv --limit 2000 -o gb1[/bold]
    """
    from obte_cli.engine.bench.variants import read_landscape, run_variant_bench
    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.core.directories import output_directory
    from obte_cli.engine.core.tables import write_tsv
    from obte_cli.engine.embedding.variants import STRATEGIES
    from obte_cli.engine.model.directory import load_model

    output_directory(out)
    landscape = read_landscape(data, limit, seed)
    subset = "" if len(landscape.variants) == landscape.total else " (a seeded random subset)"
    log.info("%d of %d variants of %s%s", len(landscape.variants), landscape.total, data, subset)
    loaded = load_model(backbone_or_default(model), resolve_device(device))
    chosen = list(dict.fromkeys(s.value for s in strategies)) if strategies else list(STRATEGIES)

    def progress(row: dict) -> None:
        log.info("%s (%s): Spearman %.3f", row["method"], row["model"], row["spearman"])

    table, scores = run_variant_bench(
        loaded, landscape, chosen, loaded.model.embed.weight.device, max_tokens, seed, progress
    )
    with open_output("-") as handle:
        write_tsv(table, handle, float_format="%.3f")
    write_tsv(table, out / "variants.tsv", float_format="%.4f")
    write_tsv(scores, out / "variant_scores.tsv")
