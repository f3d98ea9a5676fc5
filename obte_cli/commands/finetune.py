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
    finetune_settings,
    folds_check,
    guard_new_output,
    model_option,
    number_in,
    on_unknown_option,
    out_option,
    readout_option,
    seed_option,
    suggests_on_unknown,
)

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
    folds: int = typer.Option(
        10,
        "--folds",
        "-k",
        min=0,
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
    epochs: int = typer.Option(3, "--epochs", min=1, help="Passes over the training rows (paper: 64)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Complexes per optimizer step (paper: 256)."),
    max_tokens: int = typer.Option(
        16384, "--max-tokens", min=1, help="Tokens per micro-batch (memory bound; no effect on results)."
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
    workers: int = typer.Option(0, "--workers", min=0, help="Processes for the homology alignments (0: all cores)."),
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

    settings = finetune_settings(epochs, batch_size, max_tokens, lr_head, lr_embedding, lr_body, warmup, seed)
    guard_new_output(out, force, inputs=(data, model))
    from obte_cli.engine.core.errors import InputError

    threshold = None if no_homology_guard else homology_threshold
    if method is AffinityMethod.composition:
        if model is not None:
            raise InputError("--model: a composition model reads no backbone (leave out --model or --method)")
    else:
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
    run = train_affinity_cv(data, out, cv, affinity_cv_report(data, folds, threshold))
    if run.result is None:
        log.info("wrote %s", out / "all-data")
        return
    log.info("%s", summarise_folds(run.result.fold_metrics))
    log.info("wrote %s (use it as: obte affinity --model %s)", out, out)


def _run_task(
    kind: str,
    train: Path,
    dev: Path,
    test: Path,
    model: Path,
    out: Path,
    task: str,
    molecule_type: str,
    epochs: int,
    batch_size: int,
    max_tokens: int,
    lr_head: float,
    lr_embedding: float,
    lr_body: float,
    warmup: float,
    truncate: bool,
    on_unknown: str,
    seed: int,
    device: Device,
    force: bool,
    readout: str = "first",
) -> None:
    import pandas as pd

    from obte_cli.engine.bio.molecules import molecule_type_option
    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.core.outputs import staged_directory
    from obte_cli.engine.core.plots import learning_curve
    from obte_cli.engine.core.tables import write_tsv
    from obte_cli.engine.finetuning.tasks import (
        class_index,
        encode_split,
        read_residue_split,
        read_sequence_split,
        train_task,
    )
    from obte_cli.engine.model.directory import load_model, save_model

    molecule_type_option(molecule_type)  # validate early: a bad name fails before any training
    guard_new_output(out, force, inputs=(train, dev, test, model))
    settings = finetune_settings(epochs, batch_size, max_tokens, lr_head, lr_embedding, lr_body, warmup, seed)
    per_residue = kind == "residue"
    reader = read_residue_split if per_residue else read_sequence_split
    sources = {"train": str(train), "dev": str(dev), "test": str(test)}
    splits = {name: reader(path, name, task) for name, path in (("train", train), ("dev", dev), ("test", test))}
    classes = (
        class_index(splits["train"], [splits["dev"], splits["test"]], per_residue, sources)
        if task == "classification"
        else None
    )
    model = backbone_or_default(model)
    loaded = load_model(model)
    context = loaded.model.config.max_positions
    encodings = {
        name: encode_split(loaded.tokenizer, split, molecule_type, context, truncate, sources[name], on_unknown)
        for name, split in splits.items()
    }
    log.info(
        "%s %s: %s; %d / %d / %d records%s",
        kind,
        task,
        model,
        *(len(splits[s].ids) for s in ("train", "dev", "test")),
        f"; classes {', '.join(classes)}" if classes else "",
    )
    steps = settings.epochs * math.ceil(len(splits["train"].ids) / settings.batch_size)
    with training_progress(steps, f"finetune {kind}") as on_step:
        result = train_task(
            loaded.model,
            loaded.tokenizer,
            splits,
            encodings,
            task,
            per_residue,
            classes,
            settings,
            resolve_device(device),
            on_step,
            readout,
        )
    with staged_directory(out, inputs=[train, dev, test, model]) as staging:
        head = {
            **result.head.describe(),
            **({} if per_residue else {"readout": readout}),
            "task": f"{kind}-{task}",
            "per_residue": per_residue,
            "classes": classes,
            "target_mean": result.target_mean,
            "target_sd": result.target_sd,
        }
        save_model(
            staging / "model",
            loaded.model,
            loaded.tokenizer,
            head=head,
            head_state=result.head.state_dict(),
            metadata={
                "task": kind,
                "train": str(train),
                "best_epoch": result.best_epoch,
                "test_metrics": result.test,
                "finetune": settings.to_dict(),
            },
        )
        epochs_table = pd.DataFrame(result.epochs)
        test_row = {"epoch": f"test (epoch {result.best_epoch})", **{f"dev_{k}": v for k, v in result.test.items()}}
        write_tsv(
            pd.concat([epochs_table.astype({"epoch": str}), pd.DataFrame([test_row])], ignore_index=True).rename(
                columns=lambda c: c.replace("dev_", "") if c != "train_loss" else c
            ),
            staging / "metrics.tsv",
        )
        with open((staging / "test_predictions.tsv"), "w") as handle:
            handle.write("id\tlabel\tpredicted\n")
            for record, truth, predicted in zip(splits["test"].ids, splits["test"].labels, result.test_predictions):
                if per_residue:
                    shown = [
                        classes[int(v)] if classes and v == v else ("NA" if v != v else f"{v:.4g}") for v in predicted
                    ]
                    handle.write(f"{record}\t{' '.join(map(str, truth))}\t{' '.join(shown)}\n")
                else:
                    handle.write(f"{record}\t{truth}\t{classes[int(predicted)] if classes else f'{predicted:.4g}'}\n")
        learning_curve(result.epochs, staging / "learning_curve.png", f"finetune {kind} ({task}): {Path(train).name}")
    main = "mcc" if task == "classification" else "spearman"
    log.info("best dev epoch %d; test %s", result.best_epoch, ", ".join(f"{k} {v:.3f}" for k, v in result.test.items()))
    log.info("wrote %s (test %s %.3f)", out, main, result.test[main])


TASK_HELP = "classification (MCC, F1, accuracy) or regression (Spearman, Pearson)."


@app.command("classify")
@suggests_on_unknown
def classify(
    train: Path = typer.Option(..., "--train", help="Training CSV with header: sequence,label (GUE layout)."),
    dev: Path = typer.Option(..., "--dev", help="Dev CSV (selects the best epoch)."),
    test: Path = typer.Option(..., "--test", help="Test CSV (scored once, with the best epoch)."),
    model: Annotated[Path | None, model_option(BACKBONE_HELP)] = None,
    out: Annotated[Path, out_option(TASK_OUT_HELP)] = ...,
    task: Task = typer.Option(Task.classification, "--task", help=TASK_HELP),
    molecule_type: str = typer.Option("auto", "--molecule-type", "-t", help="Molecule type of the sequences, or auto."),
    epochs: int = typer.Option(5, "--epochs", min=1),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    max_tokens: int = typer.Option(16384, "--max-tokens", min=1),
    lr_head: float = typer.Option(1e-2, "--lr-head", callback=LEARNING_RATE),
    lr_embedding: float = typer.Option(1e-3, "--lr-embedding", callback=LEARNING_RATE),
    lr_body: float = typer.Option(
        1e-4, "--lr-body", callback=LEARNING_RATE, help="At width 1024; scaled by 1024/width."
    ),
    warmup: float = typer.Option(0.05, "--warmup", callback=WARMUP),
    truncate: bool = typer.Option(False, "--truncate", help="Cut sequences longer than the context."),
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
    _run_task(
        "classify",
        train,
        dev,
        test,
        model,
        out,
        task.value,
        molecule_type,
        epochs,
        batch_size,
        max_tokens,
        lr_head,
        lr_embedding,
        lr_body,
        warmup,
        truncate,
        on_unknown.value,
        seed,
        device,
        force,
        readout=readout.value,
    )


@app.command("residue")
@suggests_on_unknown
def residue(
    train: Path = typer.Option(
        ..., "--train", help="Training TSV with header: id, sequence, labels (one per residue)."
    ),
    dev: Path = typer.Option(..., "--dev", help="Dev TSV (selects the best epoch)."),
    test: Path = typer.Option(..., "--test", help="Test TSV (scored once, per residue)."),
    model: Annotated[Path | None, model_option(BACKBONE_HELP)] = None,
    out: Annotated[Path, out_option(TASK_OUT_HELP)] = ...,
    task: Task = typer.Option(Task.classification, "--task", help=TASK_HELP),
    molecule_type: str = typer.Option("auto", "--molecule-type", "-t", help="Molecule type of the sequences, or auto."),
    epochs: int = typer.Option(5, "--epochs", min=1),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    max_tokens: int = typer.Option(16384, "--max-tokens", min=1),
    lr_head: float = typer.Option(1e-2, "--lr-head", callback=LEARNING_RATE),
    lr_embedding: float = typer.Option(1e-3, "--lr-embedding", callback=LEARNING_RATE),
    lr_body: float = typer.Option(
        1e-4, "--lr-body", callback=LEARNING_RATE, help="At width 1024; scaled by 1024/width."
    ),
    warmup: float = typer.Option(0.05, "--warmup", callback=WARMUP),
    truncate: bool = typer.Option(
        False, "--truncate", help="Cut sequences longer than the context (their tail is not scored)."
    ),
    on_unknown: OnUnknownOption = OnUnknown.error,
    seed: Annotated[int, seed_option("Seed for shuffling and initialisation of the head.")] = 0,
    device: DeviceOption = Device.auto,
    force: ForceOption = False,
) -> None:
    """Fine-tune a per-residue tagger (secondary structure, accessibility ...); metrics are per residue.

    Example: [bold]obte finetune residue --train ss-train.tsv --dev ss-dev.tsv --test ss-test.tsv -o ss/[/bold]
    """
    _run_task(
        "residue",
        train,
        dev,
        test,
        model,
        out,
        task.value,
        molecule_type,
        epochs,
        batch_size,
        max_tokens,
        lr_head,
        lr_embedding,
        lr_body,
        warmup,
        truncate,
        on_unknown.value,
        seed,
        device,
        force,
    )


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
    folds: int = typer.Option(
        5,
        "--folds",
        "-k",
        min=0,
        callback=folds_check,
        help="Cross-validation folds grouped by protein sequence before the final fit; 0: only the final fit.",
    ),
    context: Annotated[int | None, backbone_context_option()] = None,
    epochs: int = typer.Option(4, "--epochs", min=1, help="Passes over the training sites."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Sites per optimizer step (head)."),
    max_tokens: int = typer.Option(
        16384, "--max-tokens", min=1, help="Tokens per micro-batch (memory bound; no effect on results)."
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
    )
    train_contact_model(labels, out, training, report)
    log.info("wrote %s (use it as: obte contacts predict --model %s)", out, out / "model")


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
