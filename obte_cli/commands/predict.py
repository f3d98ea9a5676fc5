"""``obte predict``: use a model fine-tuned by `obte finetune classify` or `obte finetune residue` on FASTA."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from obte_cli.commands.common import UnknownLetters, fasta_or_regions, log, open_output, read_segments
from obte_cli.commands.options import (
    UNK_BY_DEFAULT_HELP,
    Device,
    DeviceOption,
    GenomeOption,
    OnUnknown,
    RegionsOption,
    TsvOutOption,
    molecule_option,
    on_unknown_option,
    suggests_on_unknown,
    usage_error,
)


@suggests_on_unknown
def predict(
    model: Path = typer.Argument(
        ..., metavar="MODEL", help="A model directory written by `obte finetune classify` or `residue`."
    ),
    inputs: list[str] = typer.Argument(
        None, metavar="FASTA", help="FASTA file(s), plain or compressed; '-' reads stdin (or --regions/--genome)."
    ),
    molecule_type: Annotated[
        str, molecule_option("Molecule type of every record, or 'auto' (see `obte tokenize encode`).")
    ] = "auto",
    max_tokens: int = typer.Option(
        16384,
        "--max-tokens",
        min=64,
        max=1 << 24,
        help="Tokens per forward pass (memory bound; no effect on the numbers).",
    ),
    window: int = typer.Option(
        0,
        "--window",
        min=0,
        max=1 << 20,
        show_default="auto",
        help="Residues per window for records longer than the context (default: the context less 2, the most that "
        "fits); windows overlap by --stride and their predictions are averaged.",
    ),
    stride: int = typer.Option(
        0,
        "--stride",
        min=0,
        max=1 << 20,
        show_default="half a window",
        help="Residues between window starts (default: half a window).",
    ),
    on_unknown: Annotated[OnUnknown, on_unknown_option(UNK_BY_DEFAULT_HELP)] = OnUnknown.unk,
    regions: RegionsOption = None,
    genome: GenomeOption = None,
    device: DeviceOption = Device.auto,
    out: TsvOutOption = "-",
) -> None:
    """Predict with a fine-tuned classifier, regressor or per-residue tagger; records keep their input order.

    A sequence task writes one row per record (id, length, windows, predicted, and p_CLASS per class); a
    residue task one row per residue (id, position, residue, predicted, p_CLASS ...). Records longer than the
    context are predicted in overlapping windows, averaged.

    Example: [bold]obte predict run/model promoters.fa -o predictions.tsv[/bold]

    Example: [bold]obte predict run/model --regions peaks.bed --genome genome.fa -o predictions.tsv[/bold]
    """
    from obte_cli.engine.bio.molecules import molecule_type_option
    from obte_cli.engine.bio.seqio import stdin_once
    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.core.errors import InputError
    from obte_cli.engine.core.outputs import refuse_input_as_output
    from obte_cli.engine.embedding.predict import FineTunedTask, PredictSettings, predict_records
    from obte_cli.engine.model.directory import load_model

    inputs = fasta_or_regions(inputs, regions, genome)
    stdin_once(inputs)
    fixed = molecule_type_option(molecule_type)
    if stride and window and stride > window:
        raise typer.BadParameter(f"{stride} is more than --window {window}", param_hint="'--stride'")
    if out != "-":
        refuse_input_as_output(out, [model, *(p for p in inputs if p != "-")])
    _refuse_affinity_model(model)
    torch_device = resolve_device(device)
    loaded = load_model(model, torch_device)
    task = FineTunedTask.of(loaded)
    context = loaded.model.config.max_positions
    if window and window + 2 > context:
        raise usage_error(f"{window} does not fit the model's context of {context}", "--window")
    settings = PredictSettings(max_tokens=max_tokens, window=window, stride=stride, on_unknown=on_unknown.value)
    unknown = UnknownLetters(on_unknown.value)

    records = windowed = 0
    segments = read_segments(inputs, fixed, unknown)
    with open_output(out) as handle:
        for result in predict_records(loaded, task, segments, settings, loaded.model.embed.weight.device):
            if records == 0:  # the header goes out with the first row: an error in record 1 leaves stdout empty
                handle.write("\t".join(_columns(task)) + "\n")
            records += 1
            windowed += result.windows > 1
            handle.writelines(_rows(task, result))
    if records == 0:
        raise InputError("no records to predict")
    log.info("predicted %d records%s", records, f"; {windowed} longer than the context, in windows" if windowed else "")
    unknown.report()


def _refuse_affinity_model(model: Path) -> None:
    """A ΔG ensemble or composition model is not a model directory `predict` reads: say which command does."""
    from obte_cli.engine.affinity.composition_model import is_composition_model
    from obte_cli.engine.affinity.ensemble import ENSEMBLE_FILE
    from obte_cli.engine.core.errors import ModelFormatError

    if (model / ENSEMBLE_FILE).is_file() or is_composition_model(model):
        raise ModelFormatError(f"{model}: a ΔG model: predict with `obte affinity --model {model}`")


def _class_column(name: str) -> str:
    return "p_" + "_".join(str(name).split())


def _columns(task) -> list[str]:
    first = ["id", "position", "residue"] if task.per_residue else ["id", "length", "windows"]
    return [*first, "predicted", *(_class_column(c) for c in task.classes or ())]


def _rows(task, result):
    """TSV lines of one record's prediction."""
    from obte_cli.engine.embedding.predict import predicted_label

    def fields(values) -> str:
        shown = [predicted_label(task, values)]
        if task.classification:
            shown += ["NA" if v != v else f"{v:.4f}" for v in values]
        return "\t".join(shown)

    if not task.per_residue:
        yield f"{result.id}\t{len(result.sequence)}\t{result.windows}\t{fields(result.values)}\n"
        return
    for position, (letter, values) in enumerate(zip(result.sequence.upper(), result.values), start=1):
        yield f"{result.id}\t{position}\t{letter}\t{fields(values)}\n"
