"""``obte prep``: GenBank / FASTA / UniRef archives → clean shards for pretraining."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from obte_cli.cli_common import log, open_output


def _parse_shard(text: str) -> tuple[int, int]:
    from obte_cli.engine.errors import InputError

    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise InputError(f"--shard must look like I/N, e.g. 0/4 (got {text!r})") from None
    return index, count


def prep(
    inputs: list[Path] = typer.Argument(..., help="GenBank (.gb/.gbff/.seq) or FASTA (.fa/.fasta/.fna/.faa) files, optionally .gz."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory: shards/ and manifest.json."),
    molecule_type: str = typer.Option(
        "auto", "--molecule-type", "-m",
        help="Type of FASTA records (protein, DNA, RNA, mRNA, ...); 'auto': nucleic if only A/C/G/T/U/N, else protein.",
    ),
    min_length: int = typer.Option(1, "--min-length", help="Drop sequences shorter than this."),
    max_length: int = typer.Option(0, "--max-length", help="Drop sequences longer than this (0: no limit)."),
    dedup: bool = typer.Option(False, "--dedup", help="Drop exact repeats (same type and sequence) within each file."),
    workers: int = typer.Option(1, "--workers", "-j", help="Processes, one input file each at a time."),
    shard: str = typer.Option("0/1", "--shard", help="Take the I-th of every N input files (sorted): split an archive over N machines."),
) -> None:
    """Filter sequence archives into training shards, with counts of everything kept and dropped.

    Keeps only the sequence and its molecule type (GenBank LOCUS type: DNA, mRNA, tRNA, rRNA, cRNA,
    ss-RNA, ...). Records with non-standard letters are dropped and counted. Re-running skips inputs whose
    shard is complete. Prints kept records and residues per molecule type (TSV).

    Example: [bold]obte prep gbvrl*.seq.gz uniref100.fasta.gz -o corpus/ --workers 8[/bold]
    """
    from obte_cli.engine.errors import InputError
    from obte_cli.engine.molecules import molecule_type as lookup_type
    from obte_cli.engine.prep import PrepSettings, run_prep

    if molecule_type != "auto":
        try:
            lookup_type(molecule_type)
        except KeyError as exc:
            raise InputError(f"--molecule-type: {exc.args[0]}") from None
    if min_length < 1 or max_length < 0 or (max_length and max_length < min_length):
        raise InputError("--min-length must be ≥ 1 and --max-length 0 or ≥ --min-length")
    if workers < 1:
        raise InputError("--workers must be at least 1")
    settings = PrepSettings(molecule_type=molecule_type, min_length=min_length, max_length=max_length, dedup=dedup)
    started = time.perf_counter()

    def on_file(stats, skipped: bool) -> None:
        if skipped:
            log.info("%s: already done (%d records kept), skipped", stats.input, stats.records_kept)
            return
        elapsed = max(time.perf_counter() - started, 1e-9)
        dropped = ", ".join(f"{k} {v}" for k, v in stats.dropped.items()) or "none"
        log.info("%s: %d of %d records kept (dropped: %s); %.1f MB in %.1f s since start",
                 stats.input, stats.records_kept, stats.records_read, dropped, stats.input_bytes / 1e6, elapsed)

    manifest = run_prep(inputs, out, settings, _parse_shard(shard), workers, on_file)
    with open_output("-") as handle:
        handle.write("molecule_type\trecords\tresidues\n")
        for mol, counts in manifest["kept_by_type"].items():
            handle.write(f"{mol}\t{counts['records']}\t{counts['residues']}\n")
    dropped = ", ".join(f"{k} {v}" for k, v in manifest["dropped"].items()) or "none"
    log.info("kept %d of %d records (dropped: %s); wrote %s", manifest["records_kept"], manifest["records_read"], dropped, out)
