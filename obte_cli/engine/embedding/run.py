"""One `obte embed` run: records in, one embedding file out, in one process or split over torchrun ranks.

Each rank embeds its share of the records (every ``world_size``-th, from its ``rank``: the caller's record
stream already holds only those) into its own part file; rank 0 then interleaves the parts back into input
order (:func:`~obte_cli.engine.embedding.io.merge_interleaved_parts`) and removes them. In one process the
output is written directly. A failed run leaves no output: the writer is aborted.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.progress import Advance
from obte_cli.engine.embedding.embed import EmbeddingSettings, embed_segments
from obte_cli.engine.embedding.io import EmbeddingWriter, merge_interleaved_parts
from obte_cli.engine.model.directory import LoadedModel
from obte_cli.engine.pretraining.distributed import barrier
from obte_cli.engine.tokenizers.base import Segment


@dataclass
class EmbedRun:
    """What a run embedded (this rank's share under torchrun)."""

    records: int = 0
    residues: int = 0
    windowed: int = 0  # records longer than the context, embedded in windows
    seconds: float = 0.0


def part_path(out: str, processes) -> Path:
    return Path(f"{out}.part-{processes.rank}-of-{processes.world_size}.safetensors")


def embed_to_file(
    loaded: LoadedModel,
    segments: Iterable[Segment],
    settings: EmbeddingSettings,
    out: str,
    metadata: dict,
    processes,
    stdout: TextIO | None = None,
    advance: Advance | None = None,
) -> EmbedRun:
    """Embed ``segments`` into ``out`` (see :class:`EmbeddingWriter` for the formats; ``-`` is ``stdout``);
    ``processes`` is :func:`~obte_cli.engine.pretraining.distributed.init_distributed`'s answer.
    ``advance(n)`` hears the records embedded as each forward pass ends (see :func:`embed_segments`)."""
    if processes.active and out == "-":
        raise InputError("under torchrun, write to a file (-o out.safetensors), not stdout")
    target = part_path(out, processes) if processes.active else out
    writer = EmbeddingWriter(target, settings.pool, settings.layers, metadata, stdout=stdout)
    run = EmbedRun()
    started = time.perf_counter()
    try:
        for item in embed_segments(loaded.model, loaded.tokenizer, segments, settings, processes.device, advance):
            writer.add(item)
            run.records += 1
            run.residues += item.n_residues
            run.windowed += item.windows > 1
        writer.close()
        if processes.active:
            merge_parts(out, settings, metadata, processes)
    except BaseException:
        writer.abort()
        raise
    run.seconds = max(time.perf_counter() - started, 1e-9)
    return run


def merge_parts(out: str, settings: EmbeddingSettings, metadata: dict, processes) -> None:
    """Rank 0 interleaves every rank's part back into input order, then removes the parts."""
    barrier(processes)
    if processes.is_main:
        parts = [Path(f"{out}.part-{r}-of-{processes.world_size}.safetensors") for r in range(processes.world_size)]
        writer = EmbeddingWriter(out, settings.pool, settings.layers, metadata)
        try:
            merge_interleaved_parts(parts, writer, len(settings.layers))
            writer.close()
        except BaseException:
            writer.abort()
            raise
        for p in parts:
            p.unlink(missing_ok=True)
    barrier(processes)
