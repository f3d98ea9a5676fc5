"""``obte embed``: FASTA → embedding vectors, fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from obte_cli.commands.common import (
    DefaultCommandGroup,
    UnknownLetters,
    count_records,
    fasta_or_regions,
    log,
    new_app,
    open_output,
    read_segments,
)
from obte_cli.commands.options import (
    BACKBONE_DEFAULT_HELP,
    MAX_BATCH_TOKENS,
    MAX_RANK,
    MAX_STEPS,
    MAX_WINDOW,
    UNK_BY_DEFAULT_HELP,
    Device,
    DeviceOption,
    GenomeOption,
    OnUnknown,
    Pool,
    RegionsOption,
    backbone_or_default,
    count_option,
    layers_check,
    model_option,
    molecule_option,
    number_in,
    old_short_options,
    on_unknown_option,
    out_option,
    parse_layers,
    seed_option,
    suggests_on_unknown,
    usage_error,
)
from obte_cli.commands.progress import work_progress

app = new_app(
    "Embed sequences (obte embed FASTA... -m MODEL -o OUT; see `obte embed sequences --help`), or run the "
    "gene↔protein joint-representation probe (obte embed probe-joint).",
    cls=DefaultCommandGroup,
)


def _check_output(out: str, pool: str) -> None:
    """What ``--out`` can hold: a format by its extension, and per-token vectors (a matrix per record) only in
    .safetensors."""
    from obte_cli.engine.embedding.io import FORMATS

    suffix = ".tsv" if out == "-" else Path(out).suffix.lower()
    if suffix not in FORMATS:
        raise usage_error(f"must end in {', '.join(FORMATS)}, or be '-' for TSV on stdout (got {out!r})", "--out")
    if pool == "per-token" and suffix != ".safetensors":
        raise usage_error(
            f"per-token gives a matrix per record: write it to a .safetensors --out (got {out!r})", "--pool"
        )


def _check_layers(layers: tuple[int, ...], n_layers: int) -> None:
    for layer in layers:
        if not -(n_layers + 1) <= layer <= n_layers:
            raise usage_error(
                f"{layer} is not a layer of this model (0..{n_layers}, or negative from the end)", "--layers"
            )


def _check_stride(window: int, stride: int) -> None:
    """A stride longer than the window would leave the residues between windows without a vector, and a
    stride without a window would be ignored without a word."""
    if stride and not window:
        raise typer.BadParameter("needs --window (windows are what it steps between)", param_hint="'--stride'")
    if window and stride > window:
        raise typer.BadParameter(
            f"{stride} is more than --window {window}: windows must overlap or touch, so that every residue "
            "is embedded",
            param_hint="'--stride'",
        )


@app.command("sequences")
@suggests_on_unknown
@old_short_options({"-t": "--molecule-type"})
def embed(
    inputs: list[str] = typer.Argument(
        None, metavar="FASTA...", help="FASTA file(s), plain or .gz; '-' reads stdin (or --regions/--genome)."
    ),
    model: Annotated[
        Path | None, model_option(f"Model directory: a pretrained backbone, or any obte model {BACKBONE_DEFAULT_HELP}.")
    ] = None,
    pool: Pool = typer.Option(
        Pool.mean, "--pool", help="mean, max, first (the molecule tag token) or per-token (one vector per residue)."
    ),
    layers: str = typer.Option(
        "-1",
        "--layers",
        callback=layers_check,
        help="Layers to return: 0 = embeddings, n = final; negative from the end; e.g. 0,2,-1.",
    ),
    molecule_type: Annotated[
        str, molecule_option("Molecule type of every record, or 'auto' (see `obte tokenize encode`).")
    ] = "auto",
    max_tokens: int = count_option(
        16384,
        "--max-tokens",
        low=1,
        high=MAX_BATCH_TOKENS,
        help="Tokens per forward pass (memory bound; no effect on the numbers).",
    ),
    truncate: bool = typer.Option(
        False, "--truncate", help="Cut records longer than the context to their first residues (instead of windows)."
    ),
    window: int = count_option(
        0,
        "--window",
        low=0,
        high=MAX_WINDOW,
        show_default="auto",
        help="Residues per window for records longer than the context (default: the context less 2, the most "
        "that fits); residue vectors are averaged where windows overlap, pooled vectors come from them.",
    ),
    stride: int = count_option(
        0,
        "--stride",
        low=0,
        high=MAX_WINDOW,
        show_default="half a window",
        help="Residues between window starts, with --window (default: half a window).",
    ),
    no_window: bool = typer.Option(
        False, "--no-window", help="Refuse a record longer than the context (an error) instead of windowing it."
    ),
    on_unknown: Annotated[OnUnknown, on_unknown_option(UNK_BY_DEFAULT_HELP)] = OnUnknown.unk,
    regions: RegionsOption = None,
    genome: GenomeOption = None,
    device: DeviceOption = Device.auto,
    out: Annotated[
        str, out_option("Output: .safetensors (ids in its metadata), .npy (+ .ids.txt), .tsv, or '-' (TSV on stdout).")
    ] = ...,
) -> None:
    """Embed sequences with an obte model; records keep their input order.

    Example: [bold]obte embed proteins.fa --model my-model --pool mean -o proteins.safetensors[/bold]

    Example: [bold]obte embed --regions promoters.bed --genome hg38.fa -o promoters.safetensors[/bold]
    """
    import sys

    from obte_cli.engine.bio.molecules import molecule_type_option
    from obte_cli.engine.bio.seqio import stdin_once
    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.core.errors import InputError
    from obte_cli.engine.core.outputs import refuse_same_file
    from obte_cli.engine.embedding.embed import check_windowing
    from obte_cli.engine.embedding.run import embed_to_file
    from obte_cli.engine.model.directory import load_model
    from obte_cli.engine.pretraining.distributed import init_distributed, shutdown

    inputs = fasta_or_regions(inputs, regions, genome)
    ids_file = str(Path(out).with_suffix(".ids.txt")) if out.endswith(".npy") else None  # beside a .npy
    refuse_same_file([("--out", out), ("--out", ids_file)], [*inputs, model])
    if no_window and (window or truncate):
        raise typer.BadParameter("cannot be combined with --window or --truncate", param_hint="'--no-window'")
    _check_stride(window, stride)
    _check_output(out, pool.value)
    stdin_once(inputs)
    fixed = molecule_type_option(molecule_type)
    settings = _settings(pool.value, layers, max_tokens, truncate, window, stride, no_window, on_unknown.value)
    torch_device = resolve_device(device)
    model = backbone_or_default(model)
    loaded = load_model(model, torch_device)
    _check_layers(settings.layers, loaded.model.config.n_layers)
    try:
        check_windowing(settings, loaded.model.config.max_positions)  # by now, only: does --window fit?
    except InputError as exc:
        raise usage_error(str(exc).removeprefix(f"--window {window} "), "--window") from None
    processes = init_distributed(torch_device)
    loaded.model.to(processes.device)
    unknown = UnknownLetters(on_unknown.value)
    segments = read_segments(inputs, fixed, unknown, processes.rank, processes.world_size)
    metadata = {"pool": settings.pool, "layers": ",".join(map(str, settings.layers)), "model": str(model)}
    try:
        with _embed_progress(inputs, processes) as advance:
            run = embed_to_file(loaded, segments, settings, out, metadata, processes, sys.stdout, advance)
    finally:
        shutdown(processes)
    log.info(
        "embedded %d sequences, %d residues in %.1f s (%.3g sequences/s, %.0f residues/s) → %s",
        run.records, run.residues, run.seconds, run.records / run.seconds, run.residues / run.seconds, out,
    )  # fmt: skip
    if run.windowed:
        log.info("%d records longer than the context were embedded in overlapping windows", run.windowed)
    unknown.report()


def _settings(pool, layers, max_tokens, truncate, window, stride, no_window, on_unknown):
    from obte_cli.engine.embedding.embed import EmbeddingSettings

    if truncate and window:
        raise usage_error("cannot be combined with --window", "--truncate")
    return EmbeddingSettings(
        pool=pool,
        layers=parse_layers(layers),
        max_tokens=max_tokens,
        truncate=truncate,
        window=window,
        stride=stride,
        windows=not no_window,
        on_unknown=on_unknown,
    )


def _embed_progress(inputs: list[str], processes):
    """Progress of the records this process embeds (the first rank's, under torchrun; the others are quiet)."""
    from obte_cli.engine.core.progress import no_progress

    if not processes.is_main:
        return no_progress()
    total = count_records(inputs)  # FASTA records, or --regions
    if total is not None and processes.active:  # every world_size-th record, from this rank's
        total = len(range(processes.rank, total, processes.world_size))
    return work_progress(total, "embed", "sequences")


@app.command("probe-joint")
def probe_joint(
    pairs: Path = typer.Option(
        ..., "--pairs", help="GenBank file (CDS with /translation) or TSV with id, gene_seq, protein_seq."
    ),
    model: Annotated[
        Path | None, model_option(f"One model that embeds genes and proteins {BACKBONE_DEFAULT_HELP}.")
    ] = None,
    model_gene: Path = typer.Option(None, "--model-gene", help="Single-omic control: the model for genes..."),
    model_protein: Path = typer.Option(
        None, "--model-protein", help="...and the model for proteins (two separate maps)."
    ),
    rank: int = count_option(16, "--rank", low=1, high=MAX_RANK, help="Rank of the learned linear map."),
    train_frac: float = typer.Option(
        0.05,
        "--train-frac",
        callback=number_in(0, 1, low_open=True, high_open=True),
        help="Fraction of pairs the map is trained on; the rest is evaluated.",
    ),
    steps: int = count_option(
        10_000, "--steps", low=1, high=MAX_STEPS, help="CLIP training steps (AdamW, lr 0.01 decaying linearly)."
    ),
    window: int = count_option(
        0,
        "--window",
        low=0,
        high=MAX_WINDOW,
        show_default="auto",
        help="Long genes/proteins are embedded in windows of this many residues (0: the context − 2).",
    ),
    seed: Annotated[int, seed_option("Seed of the split, the map and the random-init control.")] = 0,
    no_control: bool = typer.Option(False, "--no-control", help="Skip the random-initialised model of the same shape."),
    out: Annotated[Path | None, out_option("Directory for probe.tsv and probe.png (box plot).")] = None,
) -> None:
    """Gene↔protein probe (paper §4.5.2): learn a rank-k map with the CLIP loss on 5% of pairs and
    measure, on the other 95%, matched vs unmatched cosine similarity and top-1/top-10 retrieval.

    Example: [bold]obte embed probe-joint --pairs NC_000932.gb --model my-model -o probe/[/bold]
    """
    from obte_cli.engine.embedding.joint_probe import JointProbe, probe_table, run_joint_probe

    if (model_gene is None) != (model_protein is None):
        raise usage_error("give both, or neither (then --model embeds both)", "--model-gene", "--model-protein")
    if model_gene is not None and model is not None:
        raise usage_error("give --model, or --model-gene with --model-protein, not both", "--model")
    if model_gene is None and model_protein is None:
        model = backbone_or_default(model)
    probe = JointProbe(model, model_gene, model_protein, rank, train_frac, steps, window, seed, not no_control)
    rows = run_joint_probe(
        pairs,
        probe,
        out,
        loaded=lambda n: log.info("%s: %d gene–protein pairs", pairs, n),
        scored=lambda row: log.info(
            "%s: matched cos %.3f vs unmatched %.3f; top-1 %.3f, top-10 %.3f on %d held-out pairs",
            row.model,
            row.result.matched.mean(),
            row.result.unmatched.mean(),
            row.result.top1,
            row.result.top10,
            row.result.test_pairs,
        ),
        progress=lambda total, label: work_progress(total, f"probe-joint {label}"),
    )
    with open_output("-") as handle:
        handle.write(probe_table(rows))
    if out is not None:
        log.info("wrote %s", out)
