"""``obte embed``: FASTA → embedding vectors, fast."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from obte_cli.commands.common import (
    DefaultCommandGroup,
    UnknownLetters,
    log,
    new_app,
    open_output,
    stderr_console,
)
from obte_cli.commands.options import (
    MAX_BATCH_TOKENS,
    MAX_RANK,
    MAX_STEPS,
    MAX_WINDOW,
    BACKBONE_DEFAULT_HELP,
    UNK_BY_DEFAULT_HELP,
    Device,
    DeviceOption,
    OnUnknown,
    Pool,
    count_option,
    backbone_or_default,
    model_option,
    number_in,
    on_unknown_option,
    out_option,
    seed_option,
    suggests_on_unknown,
)

app = new_app(
    "Embed sequences (obte embed FASTA... -m MODEL -o OUT; see `obte embed sequences --help`), or run the "
    "gene↔protein joint-representation probe (obte embed probe-joint).",
    cls=DefaultCommandGroup,
)


def _parse_layers(text: str) -> tuple[int, ...]:
    from obte_cli.engine.core.errors import InputError

    try:
        layers = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InputError(f"--layers must be comma-separated integers, e.g. -1 or 0,2,-1 (got {text!r})") from None
    if not layers:
        raise InputError("--layers is empty")
    return layers


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
def embed(
    inputs: list[str] = typer.Argument(..., help="FASTA file(s), plain or .gz; '-' reads stdin."),
    model: Annotated[
        Path | None, model_option(f"Model directory: a pretrained backbone, or any obte model {BACKBONE_DEFAULT_HELP}.")
    ] = None,
    pool: Pool = typer.Option(
        Pool.mean, "--pool", help="mean, max, first (the molecule tag token) or per-token (one vector per residue)."
    ),
    layers: str = typer.Option(
        "-1", "--layers", help="Layers to return: 0 = embeddings, n = final; negative from the end; e.g. 0,2,-1."
    ),
    molecule_type: str = typer.Option(
        "auto", "--molecule-type", "-t", help="Molecule type of every record, or 'auto' (see `obte tokenize encode`)."
    ),
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
        help="Residues per window for records longer than the context (default: the context less 2, the most "
        "that fits); residue vectors are averaged where windows overlap, pooled vectors come from them.",
    ),
    stride: int = count_option(
        0,
        "--stride",
        low=0,
        high=MAX_WINDOW,
        help="Residues between window starts, with --window (default: half a window).",
    ),
    no_window: bool = typer.Option(
        False, "--no-window", help="Refuse a record longer than the context (an error) instead of windowing it."
    ),
    on_unknown: Annotated[OnUnknown, on_unknown_option(UNK_BY_DEFAULT_HELP)] = OnUnknown.unk,
    device: DeviceOption = Device.auto,
    out: Annotated[
        str, out_option("Output: .safetensors (ids in its metadata), .npy (+ .ids.txt), .tsv, or '-' (TSV on stdout).")
    ] = ...,
) -> None:
    """Embed sequences with an obte model; records keep their input order.

    Example: [bold]obte embed proteins.fa --model my-model --pool mean -o proteins.safetensors[/bold]
    """
    import sys

    from obte_cli.engine.bio.molecules import detect_molecule_type, molecule_type_option
    from obte_cli.engine.bio.seqio import display_name, read_fasta, stdin_once
    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.core.errors import InputError
    from obte_cli.engine.core.outputs import refuse_same_file
    from obte_cli.engine.embedding.embed import EmbeddingSettings, embed_segments
    from obte_cli.engine.embedding.io import EmbeddingWriter
    from obte_cli.engine.model.directory import load_model
    from obte_cli.engine.pretraining.distributed import init_distributed, shutdown
    from obte_cli.engine.tokenizers.base import Segment

    ids_file = str(Path(out).with_suffix(".ids.txt")) if out.endswith(".npy") else None  # beside a .npy
    refuse_same_file([("--out", out), ("--out", ids_file)], [*inputs, model])
    if truncate and window:
        raise InputError("use either --truncate or --window, not both")
    if no_window and (window or truncate):
        raise typer.BadParameter("cannot be combined with --window or --truncate", param_hint="'--no-window'")
    _check_stride(window, stride)
    stdin_once(inputs)
    pool = pool.value
    fixed = molecule_type_option(molecule_type)
    settings = EmbeddingSettings(
        pool=pool,
        layers=_parse_layers(layers),
        max_tokens=max_tokens,
        truncate=truncate,
        window=window,
        stride=stride,
        windows=not no_window,
        on_unknown=on_unknown.value,
    )
    torch_device = resolve_device(device)
    model = backbone_or_default(model)
    loaded = load_model(model, torch_device)
    if window and window + 2 > loaded.model.config.max_positions:
        raise InputError(f"--window {window} does not fit the model's context of {loaded.model.config.max_positions}")

    processes = init_distributed(torch_device)
    loaded.model.to(processes.device)

    def segments():
        index = 0
        for path in inputs:
            for record in read_fasta(path):
                if index % processes.world_size == processes.rank:  # under torchrun: this rank's share
                    mol = fixed or detect_molecule_type(record.sequence)
                    segment = Segment(record.sequence, mol.name, record.id, display_name(path))
                    unknown.count(segment)
                    yield segment
                index += 1

    metadata = {"pool": pool, "layers": ",".join(map(str, settings.layers)), "model": str(model)}
    part = None
    if processes.active:
        if out == "-":
            raise InputError("under torchrun, write to a file (-o out.safetensors), not stdout")
        part = Path(f"{out}.part-{processes.rank}-of-{processes.world_size}.safetensors")
    writer = EmbeddingWriter(part or out, pool, settings.layers, metadata, stdout=sys.stdout)
    started = time.perf_counter()
    residues = windowed = 0
    unknown = UnknownLetters(on_unknown.value)
    try:
        for item in embed_segments(loaded.model, loaded.tokenizer, segments(), settings, processes.device):
            writer.add(item)
            residues += item.n_residues
            windowed += item.windows > 1
            if stderr_console.is_terminal and len(writer.ids) % 1000 == 0:
                elapsed = time.perf_counter() - started
                log.info(
                    "%d sequences (%.0f/s, %.0f residues/s)",
                    len(writer.ids),
                    len(writer.ids) / elapsed,
                    residues / elapsed,
                )
        writer.close()
        if processes.active:
            _merge_parts(out, pool, settings.layers, metadata, processes)
    except BaseException:
        writer.abort()
        raise
    finally:
        shutdown(processes)
    elapsed = max(time.perf_counter() - started, 1e-9)
    log.info(
        "embedded %d sequences, %d residues in %.1f s (%.0f sequences/s, %.0f residues/s) → %s",
        len(writer.ids),
        residues,
        elapsed,
        len(writer.ids) / elapsed,
        residues / elapsed,
        out,
    )
    if windowed:
        log.info("%d records longer than the context were embedded in overlapping windows", windowed)
    unknown.report()


def _merge_parts(out: str, pool: str, layers: tuple[int, ...], metadata: dict, processes) -> None:
    """Rank 0 interleaves every rank's part back into input order, then removes the parts."""
    from obte_cli.engine.embedding.io import EmbeddingWriter, merge_interleaved_parts
    from obte_cli.engine.pretraining.distributed import barrier

    barrier(processes)
    if processes.is_main:
        parts = [Path(f"{out}.part-{r}-of-{processes.world_size}.safetensors") for r in range(processes.world_size)]
        writer = EmbeddingWriter(out, pool, layers, metadata)
        try:
            merge_interleaved_parts(parts, writer, len(layers))
            writer.close()
        except BaseException:
            writer.abort()
            raise
        for p in parts:
            p.unlink(missing_ok=True)
    barrier(processes)


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
    )
    with open_output("-") as handle:
        handle.write(probe_table(rows))
    if out is not None:
        log.info("wrote %s", out)
