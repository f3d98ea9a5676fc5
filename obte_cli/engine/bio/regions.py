"""Genomic regions: the intervals of a BED file, read from an indexed genome FASTA with pyfaidx.

BED (UCSC): one interval per line, tab-separated (whitespace where a line has no tab), ``chrom start end``
then optionally ``name score strand ...``; coordinates are 0-based and half-open, so ``chr1 0 10`` is the
first ten bases. Lines that are empty or start with ``#``, ``track`` or ``browser`` are skipped. A record's
id is the ``name`` column where there is one (and it is not ``.``), else ``chrom:start-end`` with the BED's
own numbers, and ``chrom:start-end(-)`` for an unnamed interval on the minus strand (bedtools getfasta's
names); a ``-`` in the strand column reads the reverse complement (IUPAC codes complemented, case kept).

The genome is never loaded: pyfaidx reads each interval from its offset in the file, found through the
samtools ``.fai`` index (and, for a bgzip-compressed genome, the ``.gzi`` block index). A missing or stale
index is built once, beside the genome, written to a temporary name and renamed, so a reader never sees
half an index; where the genome's directory cannot be written, the index goes to
``$XDG_CACHE_HOME/obte/faidx/`` instead (see :func:`faidx_cache_dir`), and the caller is told through
``on_index``. A genome compressed with plain gzip (or xz, bzip2) cannot be read at an offset: that is an
error saying to compress it with ``bgzip`` or to decompress it.

The whole BED is read and checked against the index before the first region is read, so a mistake on its
last line (an unknown chromosome, an end beyond the chromosome, start after end, a line that is not BED)
stops a run before any work, in one line naming the BED file and line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from obte_cli.engine.bio.seqio import FastaRecord, display_name, open_text
from obte_cli.engine.core.errors import InputError

# IUPAC nucleotide codes and their complements (U pairs with A); other letters are kept as they are.
_COMPLEMENT = str.maketrans("ACGTUNRYKMSWBDHVacgtunrykmswbdhv", "TGCAANYRMKSWVHDBtgcaanyrmkswvhdb")
_SKIPPED_PREFIXES = ("#", "track", "browser")
_STRANDS = ("+", "-", ".")
_BGZF_HEADER = b"\x1f\x8b\x08\x04"  # gzip magic, deflate, FEXTRA: the extra field holds the "BC" block size
_OTHER_COMPRESSION = {b"\x1f\x8b": "gzip", b"\xfd7zXZ": "xz", b"BZh": "bzip2", b"PK\x03\x04": "zip"}


def reverse_complement(sequence: str) -> str:
    """The other strand of ``sequence``, read 5'→3' (IUPAC codes complemented, case kept)."""
    return sequence.translate(_COMPLEMENT)[::-1]


@dataclass(frozen=True)
class Region:
    chrom: str
    start: int  # 0-based, inclusive
    end: int  # 0-based, exclusive
    strand: str  # '+', '-' or '.' (no strand)
    name: str  # the BED name column, "" where there is none
    line: int  # 1-based line of the BED file

    @property
    def id(self) -> str:
        if self.name:
            return self.name
        return f"{self.chrom}:{self.start}-{self.end}" + ("(-)" if self.strand == "-" else "")


def _coordinate(text: str, what: str, where: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise InputError(f"{where}: {what} {text!r} is not a whole number ≥ 0 (BED coordinates are 0-based)")
    return int(text)


def parse_bed(path: str | Path) -> Iterator[Region]:
    """The intervals of a BED file (plain, .gz, .xz, or ``-`` for stdin), checked for form only (see the
    module docstring); a line that is not BED is an :class:`InputError` naming file and line."""
    name = display_name(path)
    with open_text(path) as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip() or line.startswith(_SKIPPED_PREFIXES):
                continue
            where = f"{name}: line {number}"
            fields = [f.strip() for f in line.split("\t")] if "\t" in line else line.split()
            if len(fields) < 3 or not fields[0]:
                raise InputError(f"{where}: not a BED line (chrom, start, end, tab-separated): {line[:80]!r}")
            start = _coordinate(fields[1], "start", where)
            end = _coordinate(fields[2], "end", where)
            if start > end:
                raise InputError(f"{where}: start {start} is after end {end}")
            if start == end:
                raise InputError(f"{where}: the interval {fields[0]}:{start}-{end} is empty (start = end)")
            strand = fields[5] if len(fields) > 5 and fields[5] else "."
            if strand not in _STRANDS:
                raise InputError(f"{where}: strand {strand!r} is not '+', '-' or '.'")
            label = fields[3] if len(fields) > 3 and fields[3] != "." else ""
            yield Region(fields[0], start, end, strand, label, number)


def faidx_cache_dir() -> Path:
    """Where the index of a genome whose directory is not writable is kept: ``$XDG_CACHE_HOME/obte/faidx``
    (``~/.cache/obte/faidx`` when the variable is unset or empty), one subdirectory per genome path."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "obte" / "faidx"


@dataclass(frozen=True)
class GenomeIndex:
    """Where a genome's index files are, and how they came to be there."""

    fai: Path
    gzi: Path | None  # bgzip-compressed genomes only
    built: bool  # (to be) built by this run: it was missing or older than the genome
    elsewhere: bool  # in the cache, as the genome's directory is not writable


def _compression(genome: Path) -> str | None:
    """None for plain text, "bgzf" for bgzip; anything else is an error saying what to do."""
    try:
        with open(genome, "rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise InputError(f"{genome}: cannot read it ({exc.strerror})") from None
    if head.startswith(_BGZF_HEADER) and head[12:14] == b"BC":
        if not genome.name.lower().endswith((".gz", ".bgz")):
            raise InputError(f"{genome}: bgzip-compressed, but not named .gz or .bgz: rename it so it is read as such")
        return "bgzf"
    for magic, kind in _OTHER_COMPRESSION.items():
        if head.startswith(magic):
            raise InputError(
                f"{genome}: compressed with {kind}, which cannot be read at an offset: decompress it, or compress "
                "it with bgzip instead (the genome must be plain or bgzip-compressed FASTA)"
            )
    return None


def _fresh(index: Path, genome: Path) -> bool:
    """``index`` exists and is not older than the genome (pyfaidx's rule for a stale index)."""
    return index.is_file() and index.stat().st_mtime >= genome.stat().st_mtime


@contextlib.contextmanager
def _pyfaidx_errors(genome: Path) -> Iterator[None]:
    """pyfaidx's exceptions about the genome file as one-line :class:`InputError`\\ s naming it."""
    from pyfaidx import FastaIndexingError, UnsupportedCompressionFormat

    try:
        yield
    except (FastaIndexingError, UnsupportedCompressionFormat) as exc:
        raise InputError(f"{genome}: cannot be indexed: {' '.join(str(exc).split())}") from None
    except UnicodeDecodeError:
        raise InputError(f"{genome}: not a text FASTA file (cannot be indexed)") from None
    except ValueError as exc:
        if not str(exc).startswith("Duplicate key"):
            raise
        name = str(exc).removeprefix("Duplicate key ")
        raise InputError(f"{genome}: the sequence name {name} occurs twice; names must be unique") from None


def _scratch(directory: Path) -> Path | None:
    """A new temporary directory in ``directory``, or None where ``directory`` cannot be written."""
    try:
        return Path(tempfile.mkdtemp(dir=directory, prefix=".obte-faidx-"))
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT):
            return None
        raise


def _build(genome: Path, scratch: Path, names: list[str]) -> None:
    """Build the index files ``names`` (.fai, and .gzi for bgzip) of ``genome`` in ``scratch``, then rename
    them into its parent: a reader never sees half an index."""
    from pyfaidx import Faidx

    try:
        built = [scratch / name for name in names]
        gzi = {"gzi_indexname": str(built[1])} if len(built) > 1 else {}
        with _pyfaidx_errors(genome):
            Faidx(str(genome), indexname=str(built[0]), **gzi).close()
        stamp = max(time.time(), genome.stat().st_mtime)  # not older than the genome, even one dated ahead
        for path in built:
            os.utime(path, (stamp, stamp))
            os.replace(path, scratch.parent / path.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def index_genome(
    genome: str | Path, cache_dir: Path | None = None, on_index: Callable[[Path, GenomeIndex], None] | None = None
) -> GenomeIndex:
    """Find or build the index of ``genome`` (see the module docstring): beside it, else in ``cache_dir``
    (default :func:`faidx_cache_dir`). ``on_index(genome, index)`` is told where it is before a build
    starts (a large genome takes minutes), or where it was found when that is not beside the genome."""
    genome = Path(genome)
    if not genome.exists():
        raise InputError(f"{genome}: no such file")
    if not genome.is_file():
        raise InputError(f"{genome}: not a regular file (the genome must be a FASTA file that can be indexed)")
    bgzf = _compression(genome) == "bgzf"
    names = [genome.name + ".fai"] + ([genome.name + ".gzi"] if bgzf else [])
    beside = genome.parent
    key = hashlib.sha256(str(genome.resolve()).encode()).hexdigest()[:16]
    cache = (cache_dir or faidx_cache_dir()) / key
    for directory in (beside, cache):
        elsewhere = directory == cache
        index = GenomeIndex(directory / names[0], directory / names[1] if bgzf else None, False, elsewhere)
        if all(_fresh(directory / name, genome) for name in names):
            if elsewhere and on_index is not None:
                on_index(genome, index)
            return index
        if elsewhere:
            try:
                cache.mkdir(parents=True, exist_ok=True)
            except OSError:
                break
        scratch = _scratch(directory)
        if scratch is None:
            continue
        index = dataclasses.replace(index, built=True)
        if on_index is not None:
            on_index(genome, index)
        _build(genome, scratch, names)
        return index
    raise InputError(
        f"{genome}: cannot write its index beside it (the directory is not writable) nor in {cache}; index it "
        "where you can write (`samtools faidx`) and keep the .fai beside it"
    )


class GenomeRegions:
    """The intervals of a BED file in an indexed genome, checked against it when made; iterating reads
    them, in BED order, as :class:`~obte_cli.engine.bio.seqio.FastaRecord`\\ s (numbered from 1), with
    the genome's letters as written (soft-masked lower case kept). ``on_index``: see :func:`index_genome`."""

    def __init__(
        self,
        bed: str | Path,
        genome: str | Path,
        on_index: Callable[[Path, GenomeIndex], None] | None = None,
        cache_dir: Path | None = None,
    ):
        self.bed = display_name(bed)
        self.genome = Path(genome)
        self.index = index_genome(self.genome, cache_dir, on_index)
        lengths = self.lengths()
        self.regions = list(parse_bed(bed))
        for region in self.regions:
            _check(region, lengths, self.bed, self.genome)
        if not self.regions:
            raise InputError(f"{self.bed}: no intervals (empty BED file?)")

    def _open(self):
        from pyfaidx import Faidx

        gzi = {"gzi_indexname": str(self.index.gzi)} if self.index.gzi is not None else {}
        with _pyfaidx_errors(self.genome):
            return Faidx(
                str(self.genome), indexname=str(self.index.fai), as_raw=True, strict_bounds=True,
                build_index=False, rebuild=False, **gzi,
            )  # fmt: skip

    def lengths(self) -> dict[str, int]:
        """Every sequence of the genome and its length, from the index."""
        faidx = self._open()
        try:
            return {name: record.rlen for name, record in faidx.index.items()}
        finally:
            faidx.close()

    def __len__(self) -> int:
        return len(self.regions)

    def __iter__(self) -> Iterator[FastaRecord]:
        faidx = self._open()
        try:
            for number, region in enumerate(self.regions, start=1):
                sequence = faidx.fetch(region.chrom, region.start + 1, region.end)
                if len(sequence) != region.end - region.start:  # the file changed under the index
                    raise InputError(
                        f"{self.genome}: read {len(sequence)} letters for {region.chrom}:{region.start}-{region.end} "
                        f"(line {region.line} of {self.bed}); the genome and its index {self.index.fai} disagree"
                    )
                if region.strand == "-":
                    sequence = reverse_complement(sequence)
                where = f"{region.chrom}:{region.start}-{region.end}({region.strand})"
                yield FastaRecord(region.id, f"{region.id} {where}", sequence, number)
        finally:
            faidx.close()


def _check(region: Region, lengths: dict[str, int], bed: str, genome: Path) -> None:
    where = f"{bed}: line {region.line}"
    if region.chrom not in lengths:
        names = list(lengths)
        shown = ", ".join(names[:5]) + (f" … ({len(names)} in all)" if len(names) > 5 else "")
        raise InputError(f"{where}: no sequence {region.chrom!r} in {genome} (it has {shown})")
    length = lengths[region.chrom]
    if region.end > length:
        raise InputError(f"{where}: end {region.end} is beyond the end of {region.chrom} ({length:,} bp in {genome})")
