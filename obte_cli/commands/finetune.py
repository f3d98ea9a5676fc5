"""``obte finetune``: fine-tune a backbone on a task: ΔG regression (``affinity``), sequence classification or
regression (``classify``), per-residue tagging (``residue``) and protein–nucleic-acid contacts (``contacts``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from obte_cli.commands.common import affinity_cv_report, log, new_app, training_progress
from obte_cli.commands.options import (
    BACKBONE_DEFAULT_HELP,
    MAX_BATCH,
    MAX_BATCH_TOKENS,
    MAX_EPOCHS,
    MAX_FOLDS,
    MAX_WORKERS,
    AffinityMethod,
    Device,
    DeviceOption,
    ForceOption,
    OnUnknown,
    OnUnknownOption,
    Probe,
    Readout,
    SequenceReadout,
    Task,
    backbone_context_option,
    backbone_or_default,
    count_option,
    finetune_settings,
    folds_check,
    guard_new_output,
    model_option,
    molecule_option,
    number_in,
    old_short_options,
    on_unknown_option,
    out_option,
    readout_option,
    seed_option,
    suggests_on_unknown,
    usage_error,
)
from obte_cli.commands.progress import work_progress

app = new_app("Fine-tune an obte model on a downstream task.")

DATA_HELP = (
    "ProNAB JSON (the OmniBioTE curation) or a pairs TSV with columns "
    "protein_id (optional), protein, nucleic_acid, complement (optional), na_type (optional: RNA if the strand "
    "has a U, else DNA), dG (kcal/mol); `obte affinity --complexes` predicts for the same file."
)
BACKBONE_HELP = f"Backbone model directory {BACKBONE_DEFAULT_HELP}."
TASK_OUT_HELP = "Output directory: model/, metrics.tsv, test_predictions.tsv, learning_curve.png."
LEARNING_RATE = number_in(0)  # 0 freezes that group; a negative rate is never meant
WARMUP = number_in(0, 1, high_open=True)


@app.command("affinity")
@suggests_on_unknown
def affinity(
    data: Path = typer.Option(..., "--data", "-d", help=DATA_HELP),
    model: Annotated[
        Path | None,
        model_option(f"Backbone model directory (`obte model init` makes a fresh one) {BACKBONE_DEFAULT_HELP}."),
    ] = None,
    out: Annotated[Path, out_option("Output directory (fold models, ensemble.json, tables, plot).")] = ...,
    folds: int = count_option(
        10,
        "--folds",
        "-k",
        low=0,
        high=MAX_FOLDS,
        callback=folds_check,
        help="Cross-validation folds grouped by protein; 0 trains one model on all rows.",
    ),
    homology_threshold: float = typer.Option(
        0.3,
        "--homology-threshold",
        callback=number_in(),
        help="Proteins whose BLOSUM62 homology to another protein reaches this are train-only.",
    ),
    no_homology_guard: bool = typer.Option(
        False, "--no-homology-guard", help="Test every protein (the paper's protocol; leaks homologs)."
    ),
    epochs: int = count_option(
        3, "--epochs", low=1, high=MAX_EPOCHS, help="Passes over the training rows (paper: 64)."
    ),
    batch_size: int = count_option(
        32, "--batch-size", low=1, high=MAX_BATCH, help="Complexes per optimizer step (paper: 256)."
    ),
    max_tokens: int = count_option(
        16384,
        "--max-tokens",
        low=1,
        high=MAX_BATCH_TOKENS,
        help="Tokens per micro-batch (memory bound; no effect on results).",
    ),
    lr_head: float = typer.Option(1e-2, "--lr-head", callback=LEARNING_RATE, help="Peak LR of the ΔG head."),
    lr_embedding: float = typer.Option(
        1e-3, "--lr-embedding", callback=LEARNING_RATE, help="Peak LR of the token embeddings."
    ),
    lr_body: float = typer.Option(
        1e-4, "--lr-body", callback=LEARNING_RATE, help="Peak LR of other weights at width 1024 (scaled by 1024/width)."
    ),
    warmup: float = typer.Option(
        0.05, "--warmup", callback=WARMUP, help="Fraction of steps spent warming up (OneCycleLR)."
    ),
    truncate: bool = typer.Option(
        False, "--truncate", help="Cut proteins at the C-terminus to fit the context instead of failing."
    ),
    on_unknown: Annotated[
        OnUnknown,
        on_unknown_option(
            "Rows with letters outside the standard alphabets (20 amino acids; A, C, G, T/U): 'error' drops and "
            "counts them (the paper's filter); 'unk' keeps them, each such letter read as the <unk> token."
        ),
    ] = OnUnknown.error,
    readout: Annotated[Readout, readout_option()] = Readout.first,
    method: AffinityMethod = typer.Option(
        AffinityMethod.transformer,
        "--method",
        help="'transformer': fine-tune the backbone; 'composition': the mean of a ridge regression and gradient "
        "boosting on sequence composition (no backbone: --model and the training options other than --seed are "
        "not used; minutes on a CPU).",
    ),
    seed: Annotated[int, seed_option("Seed for folds, shuffling and initialisation of the head.")] = 0,
    device: DeviceOption = Device.auto,
    workers: int = count_option(
        0,
        "--workers",
        low=0,
        high=MAX_WORKERS,
        show_default="all cores",
        help="Processes for the homology alignments (0: all cores).",
    ),
    force: ForceOption = False,
) -> None:
    """Fine-tune a ΔG (kcal/mol) regressor with cross-validation grouped by protein.

    Writes to --out: fold-NN/ model directories and ensemble.json (use the directory as
    `obte affinity --model`), folds.tsv, predictions.tsv (out-of-fold), metrics.tsv (per fold, mean, sem)
    and scatter.png.

    Example: [bold]obte finetune affinity --data pronab.json --model backbone/ --out dg-model/[/bold]
    """
    from obte_cli.engine.affinity.report import summarise_folds
    from obte_cli.engine.affinity.training import AffinityCV, train_affinity_cv
    from obte_cli.engine.bio.homology import homology_cache_dir
    from obte_cli.engine.core.devices import resolve_device

    if method is AffinityMethod.composition and model is not None:
        raise usage_error("a composition model reads no backbone (leave out --model or --method)", "--model")
    settings = finetune_settings(epochs, batch_size, max_tokens, lr_head, lr_embedding, lr_body, warmup, seed)
    guard_new_output(out, force, inputs=(data, model))
    threshold = None if no_homology_guard else homology_threshold
    if method is not AffinityMethod.composition:
        model = backbone_or_default(model)
    cv = AffinityCV(
        backbone=model,
        settings=settings,
        folds=folds,
        homology_threshold=threshold,
        truncate=truncate,
        device=resolve_device(device),
        workers=workers or None,
        homology_cache=homology_cache_dir(),
        on_unknown=on_unknown.value,
        readout=readout.value,
        method=method.value,
    )
    report = affinity_cv_report(data, folds, threshold)
    report.work_progress = work_progress
    run = train_affinity_cv(data, out, cv, report)
    if run.result is None:
        log.info("wrote %s", out / "all-data")
        return
    log.info("%s", summarise_folds(run.result.fold_metrics))
    log.info("wrote %s (use it as: obte affinity --model %s)", out, out)


def _run_task(
    spec, files: dict[str, Path], model: Path | None, out: Path, settings, molecule: str, run_options: dict
) -> None:
    """Fine-tune a `classify` or `residue` task and write its outputs (see FineTuneTask). ``run_options``:
    long (what a record longer than the context becomes: cut, window, error), on_unknown, device, force."""
    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.core.outputs import staged_directory
    from obte_cli.engine.finetuning.tasks import encode_task_splits, read_task_splits, run_finetune_task, save_task_run
    from obte_cli.engine.model.directory import load_model

    inputs = (*files.values(), model)
    guard_new_output(out, run_options["force"], inputs=inputs)
    splits, classes = read_task_splits(spec, files)
    model = backbone_or_default(model)
    loaded = load_model(model)
    encodings = encode_task_splits(
        spec, splits, files, loaded, molecule, run_options["long"], run_options["on_unknown"]
    )
    counts = " / ".join(str(len(splits[name].ids)) for name in ("train", "dev", "test"))
    log.info("%s %s: %s; %s records%s", spec.kind, spec.task, model, counts,
             f"; classes {', '.join(classes)}" if classes else "")  # fmt: skip
    _log_long_records(encodings, loaded.model.config.max_positions)
    steps = settings.epochs * math.ceil(len(encodings["train"]) / settings.batch_size)
    with training_progress(steps, f"finetune {spec.kind}") as on_step:
        device = resolve_device(run_options["device"])
        run = run_finetune_task(spec, splits, classes, encodings, loaded, settings, device, on_step)
    with staged_directory(out, inputs=[*files.values(), model]) as staging:
        save_task_run(staging, spec, run, loaded, settings, files["train"])
    test = run.result.test
    main = "mcc" if spec.task == "classification" else "spearman"
    log.info("best dev epoch %d; test %s", run.result.best_epoch, ", ".join(f"{k} {v:.3f}" for k, v in test.items()))
    log.info("wrote %s (test %s %.3f); predict with: obte predict %s FASTA", out, main, test[main], out / "model")


def _log_long_records(encodings: dict, context: int) -> None:
    """Per split, how many records were longer than the context: cut, or split into windows."""
    for name in ("train", "dev", "test"):
        split = encodings[name]
        if split.cut:
            log.info("%d of %d %s records cut to the context of %d tokens", split.cut, split.n_records, name, context)
        if split.windowed:
            log.info(
                "%d of %d %s records longer than the context of %d tokens split into overlapping windows "
                "(%d examples; a residue's prediction is the mean over its windows)",
                split.windowed, split.n_records, name, context, len(split),
            )  # fmt: skip


TASK_HELP = "classification (MCC, F1, accuracy) or regression (Spearman, Pearson)."


@app.command("classify")
@suggests_on_unknown
@old_short_options({"-t": "--molecule-type"})
def classify(
    train: Path = typer.Option(..., "--train", help="Training CSV with header: sequence,label (GUE layout)."),
    dev: Path = typer.Option(..., "--dev", help="Dev CSV (selects the best epoch)."),
    test: Path = typer.Option(..., "--test", help="Test CSV (scored once, with the best epoch)."),
    model: Annotated[Path | None, model_option(BACKBONE_HELP)] = None,
    out: Annotated[Path, out_option(TASK_OUT_HELP)] = ...,
    task: Task = typer.Option(Task.classification, "--task", help=TASK_HELP),
    molecule_type: Annotated[str, molecule_option("Molecule type of the sequences, or auto.")] = "auto",
    epochs: int = count_option(
        5, "--epochs", low=1, high=MAX_EPOCHS, help="Passes over the training rows (the best on dev is scored)."
    ),
    batch_size: int = count_option(32, "--batch-size", low=1, high=MAX_BATCH, help="Sequences per optimizer step."),
    max_tokens: int = count_option(
        16384,
        "--max-tokens",
        low=1,
        high=MAX_BATCH_TOKENS,
        help="Tokens per micro-batch (memory bound; no effect on results).",
    ),
    lr_head: float = typer.Option(1e-2, "--lr-head", callback=LEARNING_RATE, help="Peak LR of the task head."),
    lr_embedding: float = typer.Option(
        1e-3, "--lr-embedding", callback=LEARNING_RATE, help="Peak LR of the token embeddings."
    ),
    lr_body: float = typer.Option(
        1e-4, "--lr-body", callback=LEARNING_RATE, help="Peak LR of other weights at width 1024 (scaled by 1024/width)."
    ),
    warmup: float = typer.Option(
        0.05, "--warmup", callback=WARMUP, help="Fraction of steps spent warming up (OneCycleLR)."
    ),
    truncate: bool = typer.Option(
        True,
        "--truncate/--no-truncate",
        help="A sequence longer than the model's context is cut to its first residues (counted on stderr per "
        "split); --no-truncate makes it an error naming file and record.",
    ),
    on_unknown: OnUnknownOption = OnUnknown.error,
    readout: SequenceReadout = typer.Option(
        SequenceReadout.first,
        "--readout",
        help="What the head reads: the first token's final state (the reference's choice) or the mean of all tokens.",
    ),
    seed: Annotated[int, seed_option("Seed for shuffling and initialisation of the head.")] = 0,
    device: DeviceOption = Device.auto,
    force: ForceOption = False,
) -> None:
    """Fine-tune a sequence classifier (or regressor) on GUE-style CSVs; keep the best dev epoch, score test.

    Example: [bold]obte finetune classify --train train.csv --dev dev.csv --test test.csv -m backbone -o run/[/bold]
    """
    from obte_cli.engine.finetuning.tasks import FineTuneTask

    settings = finetune_settings(epochs, batch_size, max_tokens, lr_head, lr_embedding, lr_body, warmup, seed)
    files = {"train": train, "dev": dev, "test": test}
    long = "cut" if truncate else "error"
    options = {"long": long, "on_unknown": on_unknown.value, "device": device, "force": force}
    _run_task(FineTuneTask("classify", task.value, readout.value), files, model, out, settings, molecule_type, options)


@app.command("residue")
@suggests_on_unknown
@old_short_options({"-t": "--molecule-type"})
def residue(
    train: Path = typer.Option(
        ..., "--train", help="Training TSV with header: id, sequence, labels (one per residue)."
    ),
    dev: Path = typer.Option(..., "--dev", help="Dev TSV (selects the best epoch)."),
    test: Path = typer.Option(..., "--test", help="Test TSV (scored once, per residue)."),
    model: Annotated[Path | None, model_option(BACKBONE_HELP)] = None,
    out: Annotated[Path, out_option(TASK_OUT_HELP)] = ...,
    task: Task = typer.Option(Task.classification, "--task", help=TASK_HELP),
    molecule_type: Annotated[str, molecule_option("Molecule type of the sequences, or auto.")] = "auto",
    epochs: int = count_option(
        5, "--epochs", low=1, high=MAX_EPOCHS, help="Passes over the training windows (the best on dev is scored)."
    ),
    batch_size: int = count_option(16, "--batch-size", low=1, high=MAX_BATCH, help="Windows per optimizer step."),
    max_tokens: int = count_option(
        16384,
        "--max-tokens",
        low=1,
        high=MAX_BATCH_TOKENS,
        help="Tokens per micro-batch (memory bound; no effect on results).",
    ),
    lr_head: float = typer.Option(1e-2, "--lr-head", callback=LEARNING_RATE, help="Peak LR of the task head."),
    lr_embedding: float = typer.Option(
        1e-3, "--lr-embedding", callback=LEARNING_RATE, help="Peak LR of the token embeddings."
    ),
    lr_body: float = typer.Option(
        1e-4, "--lr-body", callback=LEARNING_RATE, help="Peak LR of other weights at width 1024 (scaled by 1024/width)."
    ),
    warmup: float = typer.Option(
        0.05, "--warmup", callback=WARMUP, help="Fraction of steps spent warming up (OneCycleLR)."
    ),
    truncate: bool = typer.Option(
        False,
        "--truncate",
        help="Cut sequences longer than the context to their first residues instead of windows (their tail is "
        "neither trained on nor scored).",
    ),
    no_window: bool = typer.Option(
        False, "--no-window", help="Refuse a record longer than the context (an error) instead of windowing it."
    ),
    on_unknown: OnUnknownOption = OnUnknown.error,
    seed: Annotated[int, seed_option("Seed for shuffling and initialisation of the head.")] = 0,
    device: DeviceOption = Device.auto,
    force: ForceOption = False,
) -> None:
    """Fine-tune a per-residue tagger (secondary structure, accessibility ...); metrics are per residue.

    A record longer than the model's context is split into overlapping windows (the context less 2 residues,
    every half window, as `obte embed` and `obte predict` place them): each window is a training example, and
    on dev and test each residue's prediction is the mean over the windows holding it, as `obte predict` gives.

    Example: [bold]obte finetune residue --train ss-train.tsv --dev ss-dev.tsv --test ss-test.tsv -o ss/[/bold]
    """
    from obte_cli.engine.finetuning.tasks import FineTuneTask

    settings = finetune_settings(epochs, batch_size, max_tokens, lr_head, lr_embedding, lr_body, warmup, seed)
    files = {"train": train, "dev": dev, "test": test}
    if no_window and truncate:
        raise typer.BadParameter("cannot be combined with --truncate", param_hint="'--no-window'")
    long = "error" if no_window else "cut" if truncate else "window"
    options = {"long": long, "on_unknown": on_unknown.value, "device": device, "force": force}
    _run_task(FineTuneTask("residue", task.value), files, model, out, settings, molecule_type, options)


@app.command("contacts")
@suggests_on_unknown
def contacts(
    labels: Path = typer.Option(..., "--labels", "-l", help="Per-residue labels from `obte contacts labels`."),
    model: Annotated[
        Path | None,
        model_option(f"Backbone model directory: pretrained, ΔG-tuned, or `obte model init` {BACKBONE_DEFAULT_HELP}."),
    ] = None,
    out: Annotated[
        Path, out_option("Output directory: model/ (for `obte contacts predict`) and, with --folds, the CV tables.")
    ] = ...,
    probe: Probe = typer.Option(
        Probe.head,
        "--probe",
        help=(
            "head: fine-tune backbone + per-residue logistic head; attention: the paper's probe on the frozen "
            "model's attention maps."
        ),
    ),
    folds: int = count_option(
        5,
        "--folds",
        "-k",
        low=0,
        high=MAX_FOLDS,
        callback=folds_check,
        help="Cross-validation folds grouped by protein sequence before the final fit; 0: only the final fit.",
    ),
    context: Annotated[int | None, backbone_context_option()] = None,
    epochs: int = count_option(4, "--epochs", low=1, high=MAX_EPOCHS, help="Passes over the training sites."),
    batch_size: int = count_option(8, "--batch-size", low=1, high=MAX_BATCH, help="Sites per optimizer step (head)."),
    max_tokens: int = count_option(
        16384,
        "--max-tokens",
        low=1,
        high=MAX_BATCH_TOKENS,
        help="Tokens per micro-batch (memory bound; no effect on results).",
    ),
    lr_head: float = typer.Option(
        1e-2, "--lr-head", callback=LEARNING_RATE, help="Peak LR of the contact head (or the probe's AdamW LR ÷ 10)."
    ),
    lr_embedding: float = typer.Option(
        1e-3, "--lr-embedding", callback=LEARNING_RATE, help="Peak LR of the token embeddings."
    ),
    lr_body: float = typer.Option(
        1e-4, "--lr-body", callback=LEARNING_RATE, help="Peak LR of other weights at width 1024 (scaled by 1024/width)."
    ),
    warmup: float = typer.Option(
        0.05, "--warmup", callback=WARMUP, help="Fraction of steps spent warming up (OneCycleLR)."
    ),
    on_unknown: Annotated[
        OnUnknown,
        on_unknown_option(
            "Letters outside the standard alphabets: 'unk' reads each as the <unk> token (labels from structures "
            "write unknown and unmapped modified residues as X, nucleotides as N); 'error' refuses them, naming "
            "the site and position."
        ),
    ] = OnUnknown.unk,
    seed: Annotated[int, seed_option("Seed for folds, shuffling and initialisation.")] = 0,
    device: DeviceOption = Device.auto,
    force: ForceOption = False,
) -> None:
    """Train a per-residue contact predictor (P(residue within 4/6/8 Å of the nucleic acid)).

    The input is the joint protein + nucleic-acid sequence; the loss is binary cross-entropy on protein
    residues only, all cutoffs of the labels at once. With --folds K, sites are first cross-validated
    (grouped by protein sequence: a homodimer's chains share a fold) and --out gets predictions.tsv
    (out-of-fold), metrics.tsv (F1 / precision / recall per cutoff beside the random-guess F1) and
    folds.tsv. model/ is then fitted on every site, with F1-maximising thresholds from its training sites.

    Example: [bold]obte finetune contacts --labels labels.tsv --model backbone/ -o contacts-model/[/bold]
    """
    from obte_cli.engine.contacts.training import ContactReport, ContactTraining, train_contact_model
    from obte_cli.engine.core.devices import resolve_device

    guard_new_output(out, force, inputs=(labels, model))
    training = ContactTraining(
        backbone=backbone_or_default(model),
        settings=finetune_settings(epochs, batch_size, max_tokens, lr_head, lr_embedding, lr_body, warmup, seed),
        method=probe.value,
        folds=folds,
        context=context,
        device=resolve_device(device),
        on_unknown=on_unknown.value,
    )
    report = ContactReport(
        loaded=lambda sites, cutoffs: log.info(
            "%s: %d sites (%d distinct proteins, %d residues), cutoffs %s Å",
            labels,
            len(sites),
            len({s.protein for s in sites}),
            sum(len(s.protein) for s in sites),
            "/".join(f"{c:g}" for c in cutoffs),
        ),
        progress=training_progress,
        fold_started=lambda f, n: log.info("fold %d/%d", f + 1, n),
        cv_done=_log_contact_metrics,
        cut=_log_contact_sites_cut,
    )
    train_contact_model(labels, out, training, report)
    log.info("wrote %s (use it as: obte contacts predict --model %s)", out, out / "model")


def _log_contact_sites_cut(cut: int, sites: int, context: int) -> None:
    if cut:
        log.info(
            "%d of %d sites had their protein cut at its C-terminus to the context of %d tokens (the cut residues "
            "are neither trained on nor scored; --context reads longer inputs)",
            cut,
            sites,
            context,
        )


def _log_contact_metrics(metrics) -> None:
    for row in metrics.itertuples():
        log.info(
            "%g Å: F1 %.3f ± %.3f (random guess %.3f; positive rate %.3f), ROC AUC %.3f",
            row.cutoff,
            row.f1,
            row.f1_sem,
            row.random_f1,
            row.positive_rate,
            row.roc_auc,
        )
