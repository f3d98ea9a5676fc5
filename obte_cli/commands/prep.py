"""``obte prep``: GenBank / FASTA / UniRef archives → clean shards for pretraining."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Annotated

import typer

from obte_cli.commands.common import log, open_output, stderr_console
from obte_cli.commands.options import (
    MAX_LENGTH,
    MAX_WORKERS,
    count_option,
    molecule_option,
    old_short_options,
    out_option,
    parse_shard,
    shard_check,
    usage_error,
)


@contextlib.contextmanager
def prep_progress(inputs: list[Path], shard_index: int, shard_count: int):
    """``on_file(stats, skipped)`` callback: a rich bar over input bytes (MB/s, records/s) on a terminal,
    one log line per file otherwise."""
    from obte_cli.engine.pretraining.prep import select_inputs

    selected = select_inputs([p for p in inputs if p.is_file()], shard_index, shard_count)
    total = sum(p.stat().st_size for p in selected)
    started = time.perf_counter()
    records = 0

    def describe(stats, skipped: bool, rate: str = "") -> str:
        if skipped:
            return f"{stats.input}: already done ({stats.records_kept} records kept), skipped"
        dropped = ", ".join(f"{k} {v}" for k, v in stats.dropped.items()) or "none"
        line = f"{stats.input}: {stats.records_kept} of {stats.records_read} records kept (dropped: {dropped}){rate}"
        # malformed records: the first of each kind, so that it can be found in the file
        return "".join([line, *(f"\n  {reason}, first: {message}" for reason, message in stats.examples.items())])

    if not (stderr_console.is_terminal and log.isEnabledFor(logging.INFO)):

        def on_file(stats, skipped: bool) -> None:
            nonlocal records
            records += 0 if skipped else stats.records_read
            elapsed = max(time.perf_counter() - started, 1e-9)
            log.info("%s", describe(stats, skipped, f"; {records / elapsed:.0f} records/s"))

        yield on_file
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("prep"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[rate]} records/s"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr_console) as progress:
        task = progress.add_task("prep", total=total, rate="-")

        def on_file(stats, skipped: bool) -> None:
            nonlocal records
            records += 0 if skipped else stats.records_read
            elapsed = max(time.perf_counter() - started, 1e-9)
            progress.update(task, advance=stats.input_bytes, rate=f"{records / elapsed:,.0f}")
            progress.console.log(describe(stats, skipped))

        yield on_file


@old_short_options({"-m": "--molecule-type"})
def prep(
    inputs: list[Path] = typer.Argument(
        ..., help="GenBank (.gb/.gbff/.seq) or FASTA (.fa/.fasta/.fna/.faa) files, optionally .gz."
    ),
    out: Annotated[Path, out_option("Output directory: shards/ and manifest.json.")] = ...,
    molecule_type: Annotated[
        str,
        molecule_option(
            "Type of FASTA records (protein, DNA, RNA, mRNA, ...); 'auto': nucleic if only A/C/G/T/U/N, else protein."
        ),
    ] = "auto",
    min_length: int = count_option(1, "--min-length", low=1, high=MAX_LENGTH, help="Drop sequences shorter than this."),
    max_length: int = count_option(
        0,
        "--max-length",
        low=0,
        high=MAX_LENGTH,
        show_default="no limit",
        help="Drop sequences longer than this (0: no limit).",
    ),
    dedup: bool = typer.Option(False, "--dedup", help="Drop exact repeats (same type and sequence) within each file."),
    workers: int = count_option(
        1, "--workers", "-j", low=1, high=MAX_WORKERS, help="Processes, one input file each at a time."
    ),
    shard: str = typer.Option(
        "0/1",
        "--shard",
        callback=shard_check,
        help="Take the I-th of every N input files (sorted): split an archive over N machines.",
    ),
) -> None:
    """Filter sequence archives into training shards, with counts of everything kept and dropped.

    Keeps only the sequence and its molecule type (GenBank LOCUS type: DNA, mRNA, tRNA, rRNA, cRNA,
    ss-RNA, ...). Records with non-standard letters are dropped and counted, and so are empty and malformed
    records (no sequence, no ORIGIN, a length that disagrees with LOCUS, a truncated record, binary data):
    one bad record does not stop a run; only a file that is not sequence data at all does. Re-running skips
    inputs whose shard is complete. Prints kept records and residues per molecule type (TSV).

    Example: [bold]obte prep gbvrl*.seq.gz uniref100.fasta.gz -o corpus/ --workers 8[/bold]
    """
    from obte_cli.engine.pretraining.prep import PrepSettings, run_prep

    if max_length and max_length < min_length:
        raise usage_error(f"must be 0 (no limit) or ≥ --min-length {min_length} (got {max_length})", "--max-length")
    settings = PrepSettings(molecule_type=molecule_type, min_length=min_length, max_length=max_length, dedup=dedup)
    shard_index, shard_count = parse_shard(shard)
    with prep_progress(inputs, shard_index, shard_count) as on_file:
        manifest = run_prep(inputs, out, settings, (shard_index, shard_count), workers, on_file)
    with open_output("-") as handle:
        handle.write("molecule_type\trecords\tresidues\n")
        for mol, counts in manifest["kept_by_type"].items():
            handle.write(f"{mol}\t{counts['records']}\t{counts['residues']}\n")
    dropped = ", ".join(f"{k} {v}" for k, v in manifest["dropped"].items()) or "none"
    log.info(
        "kept %d of %d records (dropped: %s); wrote %s",
        manifest["records_kept"],
        manifest["records_read"],
        dropped,
        out,
    )
