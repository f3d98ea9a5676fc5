"""``obte embed``: FASTA → embedding vectors, fast."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from obte_cli.cli_common import log, stderr_console


def _parse_layers(text: str) -> tuple[int, ...]:
    from obte_cli.engine.errors import InputError

    try:
        layers = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InputError(f"--layers must be comma-separated integers, e.g. -1 or 0,2,-1 (got {text!r})") from None
    if not layers:
        raise InputError("--layers is empty")
    return layers


def embed(
    inputs: list[str] = typer.Argument(..., help="FASTA file(s), plain or .gz; '-' reads stdin."),
    model: Path = typer.Option(..., "--model", "-m", help="Model directory (a pretrained backbone, or any obte model)."),
    pool: str = typer.Option("mean", "--pool", help="mean, max, first (the molecule tag token) or per-token (one vector per residue)."),
    layers: str = typer.Option("-1", "--layers", help="Layers to return: 0 = embeddings, n = final; negative from the end; e.g. 0,2,-1."),
    molecule_type: str = typer.Option("auto", "--molecule-type", "-t", help="Molecule type of every record, or 'auto' (see `obte tokenize encode`)."),
    max_tokens: int = typer.Option(16384, "--max-tokens", help="Tokens per forward pass (memory bound; no effect on the numbers)."),
    truncate: bool = typer.Option(False, "--truncate", help="Cut records longer than the context to their first residues."),
    window: int = typer.Option(0, "--window", help="Embed long records in windows of this many residues (averaged where they overlap)."),
    stride: int = typer.Option(0, "--stride", help="Residues between window starts (default: half a window)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    out: str = typer.Option(..., "--out", "-o", help="Output: .safetensors (ids in its metadata), .npy (+ .ids.txt), .tsv, or '-' (TSV on stdout)."),
) -> None:
    """Embed sequences with an obte model; records keep their input order.

    Example: [bold]obte embed proteins.fa --model my-model --pool mean -o proteins.safetensors[/bold]
    """
    import sys

    from obte_cli.engine.checkpoint import load_model
    from obte_cli.engine.devices import resolve_device
    from obte_cli.engine.distributed import init_distributed, shutdown
    from obte_cli.engine.embedding import EmbeddingSettings, embed_segments
    from obte_cli.engine.embedding_io import EmbeddingWriter
    from obte_cli.engine.errors import InputError
    from obte_cli.engine.molecules import detect_molecule_type
    from obte_cli.engine.molecules import molecule_type as lookup_type
    from obte_cli.engine.seqio import read_fasta
    from obte_cli.engine.tokenizers import Segment

    if truncate and window:
        raise InputError("use either --truncate or --window, not both")
    if window < 0 or stride < 0 or max_tokens < 1:
        raise InputError("--window, --stride must be ≥ 0 and --max-tokens ≥ 1")
    fixed = None
    if molecule_type != "auto":
        try:
            fixed = lookup_type(molecule_type)
        except KeyError as exc:
            raise InputError(f"--molecule-type: {exc.args[0]}") from None
    settings = EmbeddingSettings(pool=pool, layers=_parse_layers(layers), max_tokens=max_tokens, truncate=truncate,
                                 window=window, stride=stride)
    torch_device = resolve_device(device)
    loaded = load_model(model, torch_device)
    if window and window + 2 > loaded.model.config.max_positions:
        raise InputError(f"--window {window} does not fit the model's context of {loaded.model.config.max_positions}")

    dist_context = init_distributed(torch_device)
    loaded.model.to(dist_context.device)

    def segments():
        index = 0
        for path in inputs:
            for record in read_fasta(path):
                if index % dist_context.world_size == dist_context.rank:  # under torchrun: this rank's share
                    mol = fixed or detect_molecule_type(record.sequence)
                    yield Segment(record.sequence, mol.name, record.id)
                index += 1

    metadata = {"pool": pool, "layers": ",".join(map(str, settings.layers)), "model": str(model)}
    part = None
    if dist_context.active:
        if out == "-":
            raise InputError("under torchrun, write to a file (-o out.safetensors), not stdout")
        part = Path(f"{out}.part-{dist_context.rank}-of-{dist_context.world_size}.safetensors")
    writer = EmbeddingWriter(part or out, pool, settings.layers, metadata, stdout=sys.stdout)
    started = time.perf_counter()
    residues = 0
    try:
        for item in embed_segments(loaded.model, loaded.tokenizer, segments(), settings, dist_context.device):
            writer.add(item)
            residues += item.n_residues
            if stderr_console.is_terminal and len(writer.ids) % 1000 == 0:
                elapsed = time.perf_counter() - started
                log.info("%d sequences (%.0f/s, %.0f residues/s)", len(writer.ids), len(writer.ids) / elapsed, residues / elapsed)
        writer.close()
        if dist_context.active:
            _merge_parts(out, pool, settings.layers, metadata, dist_context)
    except BaseException:
        writer.abort()
        raise
    finally:
        shutdown(dist_context)
    elapsed = max(time.perf_counter() - started, 1e-9)
    log.info("embedded %d sequences, %d residues in %.1f s (%.0f sequences/s, %.0f residues/s) → %s",
             len(writer.ids), residues, elapsed, len(writer.ids) / elapsed, residues / elapsed, out)


def _merge_parts(out: str, pool: str, layers: tuple[int, ...], metadata: dict, context) -> None:
    """Rank 0 interleaves every rank's part back into input order, then removes the parts."""
    from obte_cli.engine.distributed import barrier
    from obte_cli.engine.embedding_io import EmbeddingWriter, merge_interleaved_parts

    barrier(context)
    if context.is_main:
        parts = [Path(f"{out}.part-{r}-of-{context.world_size}.safetensors") for r in range(context.world_size)]
        writer = EmbeddingWriter(out, pool, layers, metadata)
        try:
            merge_interleaved_parts(parts, writer, len(layers))
            writer.close()
        except BaseException:
            writer.abort()
            raise
        for p in parts:
            p.unlink(missing_ok=True)
    barrier(context)
