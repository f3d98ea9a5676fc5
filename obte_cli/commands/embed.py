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

    def segments():
        for path in inputs:
            for record in read_fasta(path):
                mol = fixed or detect_molecule_type(record.sequence)
                yield Segment(record.sequence, mol.name, record.id)

    writer = EmbeddingWriter(out, pool, settings.layers, {"pool": pool, "layers": ",".join(map(str, settings.layers)),
                                                          "model": str(model)}, stdout=sys.stdout)
    started = time.perf_counter()
    residues = 0
    try:
        for item in embed_segments(loaded.model, loaded.tokenizer, segments(), settings, torch_device):
            writer.add(item)
            residues += item.n_residues
            if stderr_console.is_terminal and len(writer.ids) % 1000 == 0:
                elapsed = time.perf_counter() - started
                log.info("%d sequences (%.0f/s, %.0f residues/s)", len(writer.ids), len(writer.ids) / elapsed, residues / elapsed)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    elapsed = max(time.perf_counter() - started, 1e-9)
    log.info("embedded %d sequences, %d residues in %.1f s (%.0f sequences/s, %.0f residues/s) → %s",
             len(writer.ids), residues, elapsed, len(writer.ids) / elapsed, residues / elapsed, out)
