"""`obte prep`: sequence archives (GenBank, FASTA, UniRef) → clean training shards + a manifest.

Each input file becomes one shard, so the work splits over processes (``workers``) and machines
(``shard = (i, n)``: the i-th of every n input files, in sorted order — disjoint, and together the whole)
with no coordination, and a re-run skips every input whose shard is already complete.

Shard format: ``shards/<input name>.<8 hex of its path>.tsv.gz``, gzip-compressed text, one sequence per
line as ``molecule_type<TAB>sequence``. Why: it streams in constant memory on both ends, gzip needs no
extra dependency and compresses sequences ~3.5–4× (level 1 costs little CPU), a line per sequence lets
``zcat | grep | wc -l`` answer questions without obte, and ``obte tokenize`` reads it sequentially,
which is all training needs. Sequences are canonical: upper case, nucleic acids with U written as T
(the type says RNA). Next to each shard ``<shard>.json`` holds its statistics; it is written last, so its
presence means the shard is complete (both are written to temporary names and renamed).

Filters, each counted per reason: ``unknown_molecule_type`` (blank or unknown GenBank type field),
``nonstandard_protein`` / ``nonstandard_nucleic_acid`` (letters outside the 20 amino acids or A/C/G/T/U;
the paper's filter), ``too_short`` / ``too_long`` (optional limits), ``duplicate`` (optional, exact
sequence and type repeats within a file, remembered as 16-byte digests).

A run over a 100 GB archive does not stop at one bad record: empty and malformed records (a FASTA header
without sequence, a GenBank record without ORIGIN, a length that disagrees with LOCUS, a truncated last
record, bytes that are not text; see :func:`~obte_cli.engine.bio.seqio.scan_fasta` and
:func:`~obte_cli.engine.bio.genbank.scan_genbank` for the reasons) are dropped and counted like the filters,
and each file's statistics keep the first message per reason (``examples``), naming file and record. Only an
input that is not sequence data at all (no records, binary data or text before the first one, a corrupt
compressed stream) is an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from obte_cli import __version__
from obte_cli.engine.bio.genbank import scan_genbank
from obte_cli.engine.bio.molecules import (
    AMINO_ACIDS,
    MOLECULE_TYPES,
    NUCLEIC,
    PROTEIN,
    detect_molecule_type,
    molecule_type,
)
from obte_cli.engine.bio.seqio import Malformed, _lines, display_name, is_binary, open_text, scan_fasta
from obte_cli.engine.core.directories import locked_output_directory, output_directory
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.inputs import existing_file
from obte_cli.engine.core.locks import hold_partial, remove_stale_partials

GENBANK_SUFFIXES = (".gb", ".gbk", ".gbff", ".seq", ".genbank")
FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".faa", ".ffn", ".fas")
SHARD_SUFFIX = ".tsv.gz"
MANIFEST_FORMAT = "obte-prep"
_PROTEIN_LETTERS = frozenset(AMINO_ACIDS)
_NUCLEIC_LETTERS = frozenset("ACGTU")
_SHARD_LETTERS = {PROTEIN: _PROTEIN_LETTERS, NUCLEIC: frozenset("ACGT")}  # what a shard holds: canonical letters


@dataclass(frozen=True)
class PrepSettings:
    molecule_type: str = "auto"  # for FASTA records: a type name, or auto-detect per record
    min_length: int = 1
    max_length: int = 0  # 0: no limit
    dedup: bool = False
    compression_level: int = 1


@dataclass
class ShardStats:
    input: str
    input_bytes: int
    input_sha256: str
    input_mtime_ns: int
    format: str
    shard: str
    records_read: int = 0
    records_kept: int = 0
    residues_kept: int = 0
    kept_by_type: dict[str, dict[str, int]] = field(default_factory=dict)  # type → {records, residues}
    dropped: dict[str, int] = field(default_factory=dict)  # reason → records
    settings: dict = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)  # malformed-record reason → its first message


def input_format(path: Path) -> str:
    """``genbank`` or ``fasta`` from the name (ignoring ``.gz``), else from the first non-blank line."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(GENBANK_SUFFIXES):
        return "genbank"
    if name.endswith(FASTA_SUFFIXES):
        return "fasta"
    shown = display_name(path)
    with open_text(path, errors="surrogateescape") as handle:
        for line in _lines(handle, shown, lambda: "the start of the file", nul_is_error=False):
            if is_binary(line):
                raise InputError(f"{shown}: binary data near the start of the file, not a text sequence file")
            if line.strip():
                if line.startswith(">"):
                    return "fasta"
                if line.startswith("LOCUS") or "Genetic Sequence Data Bank" in line:
                    return "genbank"
                break
    raise InputError(f"{shown}: neither FASTA nor GenBank (name it .fa/.fasta/.gb/.gbff/.seq, optionally .gz)")


def shard_name(path: Path) -> str:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
    return f"{path.name.removesuffix('.gz')}.{digest}{SHARD_SUFFIX}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _records(path: Path, fmt: str, settings: PrepSettings) -> Iterator[tuple[str, str] | Malformed]:
    """(molecule type name or "", sequence as written) per record, or a malformed record to drop."""
    if fmt == "genbank":
        for record in scan_genbank(path):
            yield record if isinstance(record, Malformed) else (record.molecule_type, record.sequence)
        return
    fixed = None if settings.molecule_type == "auto" else molecule_type(settings.molecule_type).name
    for record in scan_fasta(path):
        if isinstance(record, Malformed):
            yield record
        else:
            yield fixed or detect_molecule_type(record.sequence).name, record.sequence


def clean_record(type_name: str, sequence: str, settings: PrepSettings) -> tuple[str, str] | str:
    """(canonical type, canonical sequence), or the reason the record is dropped."""
    if not type_name:
        return "unknown_molecule_type"
    try:
        mol = molecule_type(type_name)
    except KeyError:
        return "unknown_molecule_type"
    text = sequence.upper()
    if mol.modality == NUCLEIC:
        if not _NUCLEIC_LETTERS.issuperset(text):
            return "nonstandard_nucleic_acid"
        text = text.replace("U", "T")
    elif not _PROTEIN_LETTERS.issuperset(text):
        return "nonstandard_protein"
    if len(text) < settings.min_length:
        return "too_short"
    if settings.max_length and len(text) > settings.max_length:
        return "too_long"
    return mol.name, text


def _stats_path(shard: Path) -> Path:
    return shard.with_name(shard.name + ".json")


def completed_stats(path: Path, shards_dir: Path, settings: PrepSettings) -> ShardStats | None:
    """The stats of an already complete shard for this input and these settings, else None."""
    stats_path = _stats_path(shards_dir / shard_name(path))
    if not stats_path.is_file() or not (shards_dir / shard_name(path)).is_file():
        return None
    try:
        stats = ShardStats(**json.loads(stats_path.read_text()))
    except (ValueError, TypeError):
        return None
    source = path.stat()
    if (
        stats.input_bytes != source.st_size
        or stats.input_mtime_ns != source.st_mtime_ns
        or stats.settings != asdict(settings)
    ):
        return None
    return stats


def prep_file(path: Path, shards_dir: Path, settings: PrepSettings) -> ShardStats:
    """Filter one input file into its shard (atomically) and return its statistics."""
    path = Path(path)
    fmt = input_format(path)
    source = path.stat()
    shard = shards_dir / shard_name(path)
    stats = ShardStats(
        str(path), source.st_size, file_sha256(path), source.st_mtime_ns, fmt, shard.name, settings=asdict(settings)
    )
    kept: Counter = Counter()
    residues: Counter = Counter()
    dropped: Counter = Counter()
    seen: set[bytes] = set()
    while True:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{shard.name}.", suffix=".tmp", dir=shards_dir)
        if hold_partial(fd):  # held while written: another run does not take it for a stale partial
            break
        os.close(fd)
    try:
        with os.fdopen(fd, "wb") as raw, _GzipLines(raw, settings.compression_level) as out:
            for item in _records(path, fmt, settings):
                stats.records_read += 1
                if isinstance(item, Malformed):
                    dropped[item.reason] += 1
                    stats.examples.setdefault(item.reason, item.message)
                    continue
                result = clean_record(*item, settings)
                if isinstance(result, str):
                    dropped[result] += 1
                    continue
                mol, text = result
                if settings.dedup:
                    key = hashlib.blake2b(f"{mol}\t{text}".encode(), digest_size=16).digest()
                    if key in seen:
                        dropped["duplicate"] += 1
                        continue
                    seen.add(key)
                out.write(f"{mol}\t{text}\n")
                kept[mol] += 1
                residues[mol] += len(text)
        os.replace(tmp_name, shard)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    stats.records_kept = sum(kept.values())
    stats.residues_kept = sum(residues.values())
    stats.kept_by_type = {m: {"records": kept[m], "residues": residues[m]} for m in sorted(kept)}
    stats.dropped = dict(sorted(dropped.items()))
    _write_json(_stats_path(shard), asdict(stats))
    return stats


class _GzipLines:
    """Text lines → gzip stream, compressed in 1 MiB batches (far fewer calls than a GzipFile per line)."""

    def __init__(self, raw, level: int):
        self._raw = raw
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: gzip container
        self._buffer: list[str] = []
        self._size = 0

    def write(self, text: str) -> None:
        self._buffer.append(text)
        self._size += len(text)
        if self._size >= 1 << 20:
            self._flush()

    def _flush(self) -> None:
        self._raw.write(self._compressor.compress("".join(self._buffer).encode("ascii")))
        self._buffer, self._size = [], 0

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            self._flush()
            self._raw.write(self._compressor.flush())


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def select_inputs(inputs: list[Path], shard_index: int, shard_count: int) -> list[Path]:
    """This machine's inputs: the ``shard_index``-th of every ``shard_count`` files in sorted order."""
    if shard_count < 1 or not 0 <= shard_index < shard_count:
        raise InputError(f"--shard must be I/N with 0 ≤ I < N (got {shard_index}/{shard_count})")
    unique = sorted({Path(p) for p in inputs}, key=lambda p: str(p))
    return unique[shard_index::shard_count]


def _prep_job(args: tuple[Path, Path, PrepSettings]) -> ShardStats:
    return prep_file(*args)


def _check_input(path: Path) -> None:
    """Inputs are regular files: a shard records its input's size and checksum, to skip it on a re-run."""
    if str(path) == "-":
        raise InputError("prep reads files, not standard input ('-'): give the sequence files by name")
    existing_file(path)


def run_prep(
    inputs: list[Path],
    out_dir: Path,
    settings: PrepSettings,
    shard: tuple[int, int] = (0, 1),
    workers: int = 1,
    on_file: Callable[[ShardStats, bool], None] | None = None,
) -> dict:
    """Prepare this machine's share of ``inputs`` into ``out_dir``; returns (and writes) the manifest.

    ``on_file(stats, skipped)`` is called as each file finishes (``skipped``: it was already complete).
    The directory is locked for the run (a second run into it is refused until this one ends); partial
    shards of killed runs are removed first, and the manifest also lists the inputs of earlier runs into
    the same directory whose shards are still there (see :func:`merge_manifest`).
    """
    for path in inputs:
        _check_input(Path(path))
    with locked_output_directory(out_dir, "--out"):
        shards_dir = output_directory(Path(out_dir) / "shards", "--out")
        remove_stale_partials(shards_dir, _PARTIAL_SHARDS)
        remove_stale_partials(out_dir, _PARTIAL_MANIFESTS)
        return _run_prep(inputs, Path(out_dir), shards_dir, settings, shard, workers, on_file)


# What prep_file and _write_json write before renaming: .<shard>.XXXXXXXX.tmp, .<shard>.json.tmp-<pid>
# and .<manifest>.tmp-<pid>
_PARTIAL_SHARDS = re.compile(r"\..+\.tsv\.gz\.(?:\w{8}\.tmp|json\.tmp-\d+)")
_PARTIAL_MANIFESTS = re.compile(r"\.manifest(?:-\d+-of-\d+)?\.json\.tmp-\d+")


def _run_prep(
    inputs: list[Path],
    out_dir: Path,
    shards_dir: Path,
    settings: PrepSettings,
    shard: tuple[int, int],
    workers: int,
    on_file: Callable[[ShardStats, bool], None] | None,
) -> dict:
    selected = select_inputs(inputs, *shard)
    results: dict[Path, ShardStats] = {}
    todo = []
    for path in selected:
        done = completed_stats(path, shards_dir, settings)
        if done is not None:
            results[path] = done
            if on_file:
                on_file(done, True)
        else:
            todo.append(path)
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(todo))) as pool:
            for path, stats in zip(todo, pool.map(_prep_job, [(p, shards_dir, settings) for p in todo])):
                results[path] = stats
                if on_file:
                    on_file(stats, False)
    else:
        for path in todo:
            results[path] = prep_file(path, shards_dir, settings)
            if on_file:
                on_file(results[path], False)
    name = "manifest.json" if shard[1] == 1 else f"manifest-{shard[0]}-of-{shard[1]}.json"
    stats = merge_manifest(out_dir / name, shards_dir, [results[p] for p in selected])
    manifest = build_manifest(stats, settings, shard)
    _write_json(out_dir / name, manifest)
    return manifest


def merge_manifest(previous: Path, shards_dir: Path, stats: list[ShardStats]) -> list[ShardStats]:
    """This run's shard statistics, after those of the inputs an earlier run into the same directory listed
    in ``previous`` (its manifest) whose shard and statistics are still there and that this run did not
    redo: two runs into one corpus, with different inputs, give one manifest listing both. Each input of
    the manifest carries the settings its shard was made with."""
    try:
        earlier = json.loads(previous.read_text())
        listed = [entry["shard"] for entry in earlier["inputs"]] if earlier.get("format") == MANIFEST_FORMAT else []
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return stats  # no manifest yet, or not one prep wrote: this run's alone
    redone = {s.shard for s in stats}
    kept = []
    for name in dict.fromkeys(n for n in listed if isinstance(n, str) and n not in redone):
        shard = shards_dir / name
        if Path(name).name != name or not shard.is_file():
            continue
        try:
            kept.append(ShardStats(**json.loads(_stats_path(shard).read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return kept + stats


def build_manifest(stats: list[ShardStats], settings: PrepSettings, shard: tuple[int, int]) -> dict:
    by_type: dict[str, dict[str, int]] = {}
    dropped: Counter = Counter()
    for s in stats:
        for mol, counts in s.kept_by_type.items():
            entry = by_type.setdefault(mol, {"records": 0, "residues": 0})
            entry["records"] += counts["records"]
            entry["residues"] += counts["residues"]
        dropped.update(s.dropped)
    return {
        "format": MANIFEST_FORMAT,
        "obte_version": __version__,
        "shard": f"{shard[0]}/{shard[1]}",
        "settings": asdict(settings),
        "records_read": sum(s.records_read for s in stats),
        "records_kept": sum(s.records_kept for s in stats),
        "residues_kept": sum(s.residues_kept for s in stats),
        "kept_by_type": dict(sorted(by_type.items())),
        "dropped": dict(sorted(dropped.items())),
        "inputs": [
            {
                "path": s.input,
                "format": s.format,
                "bytes": s.input_bytes,
                "sha256": s.input_sha256,
                "shard": s.shard,
                "records_read": s.records_read,
                "records_kept": s.records_kept,
                "settings": s.settings,
            }
            for s in stats
        ],
    }


def read_shard(path: Path) -> Iterator[tuple[str, str]]:
    """(molecule type, sequence) per line of a shard. Anything that `obte prep` does not write (a line
    without a tab, an unknown type, an empty or non-canonical sequence, binary data, a truncated gzip
    stream) is an :class:`InputError` naming the shard and line."""
    name = display_name(path)
    line_no = 0

    def hint() -> str:
        return f"line {line_no + 1}"

    with open_text(path) as handle:
        for line in _lines(handle, name, hint):
            line_no += 1
            mol, tab, sequence = line.rstrip("\n").partition("\t")
            problem = None
            if not tab:
                problem = "no tab between molecule type and sequence"
            elif mol not in MOLECULE_TYPES:
                problem = f"unknown molecule type {mol[:40]!r}"
            elif not sequence:
                problem = "empty sequence"
            elif not _SHARD_LETTERS[MOLECULE_TYPES[mol].modality].issuperset(sequence):
                problem = "letters outside the canonical alphabet (upper-case amino acids, or A/C/G/T)"
            if problem:
                raise InputError(f"{name}: line {line_no}: {problem} (not an obte prep shard?)")
            yield mol, sequence
