"""Reading sequence files: FASTA, plain, gzip- or xz-compressed, or ``-`` for standard input.

The reader streams (constant memory in the number of records), detects gzip and xz by their magic bytes rather
than the file name, and raises :class:`InputError` naming the file and record for malformed input:
an empty file, text before the first ``>`` header, a record without sequence, a binary file or a
truncated gzip stream.
"""

from __future__ import annotations

import gzip
import io
import lzma
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from obte_cli.engine.core.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
XZ_MAGIC = b"\xfd7zXZ\x00"


@dataclass(frozen=True)
class FastaRecord:
    id: str  # first whitespace-delimited word of the header
    description: str  # the whole header line without '>'
    sequence: str  # letters as written (whitespace removed), case kept
    number: int  # 1-based position of the record in its file


def display_name(path: str | Path) -> str:
    return "<stdin>" if str(path) == "-" else str(path)


def open_text(path: str | Path) -> io.TextIOBase:
    """Open a possibly gzip- or xz-compressed text file, or standard input for ``-``."""
    name = display_name(path)
    if str(path) == "-":
        raw = sys.stdin.buffer
    else:
        try:
            raw = open(path, "rb")  # noqa: SIM115 - returned to the caller
        except FileNotFoundError:
            raise InputError(f"{name}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"{name}: is a directory, expected a file") from None
        except PermissionError:
            raise InputError(f"{name}: permission denied") from None
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        buffered = gzip.GzipFile(fileobj=buffered, mode="rb")
    elif buffered.peek(6)[:6] == XZ_MAGIC:
        buffered = lzma.LZMAFile(buffered, mode="rb")
    return io.TextIOWrapper(buffered, encoding="utf-8", errors="strict", newline=None)


def _lines(handle: io.TextIOBase, name: str, record_hint: Callable[[], str]) -> Iterator[str]:
    """Yield lines, turning decoding and gzip failures into one-line InputErrors."""
    try:
        for line in handle:
            if "\x00" in line:
                raise InputError(f"{name}: binary data near {record_hint()}, not a text sequence file")
            yield line
    except UnicodeDecodeError:
        raise InputError(f"{name}: binary data near {record_hint()}, not a text sequence file") from None
    except (EOFError, gzip.BadGzipFile, zlib.error, lzma.LZMAError) as exc:
        kind = "xz" if isinstance(getattr(handle, "buffer", None), lzma.LZMAFile) else "gzip"
        raise InputError(f"{name}: corrupt or truncated {kind} stream near {record_hint()} ({exc})") from None


def read_fasta(path: str | Path) -> Iterator[FastaRecord]:
    """Stream the records of a FASTA file (plain, .gz, or ``-`` for stdin)."""
    name = display_name(path)
    header: str | None = None
    chunks: list[str] = []
    number = 0

    def hint() -> str:
        return f"record {number}" if number else "the start of the file"

    def finish() -> FastaRecord:
        words = header.split()
        if not words:
            raise InputError(f"{name}: record {number} has an empty header")
        sequence = "".join(chunks)
        if not sequence:
            raise InputError(f"{name}: record {number} ('{words[0]}') has no sequence")
        return FastaRecord(words[0], header.strip(), sequence, number)

    with open_text(path) as handle:
        for line in _lines(handle, name, hint):
            if line.startswith(">"):
                if header is not None:
                    yield finish()
                number += 1
                header = line[1:].rstrip("\r\n")
                chunks = []
            elif line.strip():
                if header is None:
                    raise InputError(
                        f"{name}: line {line.strip()[:20]!r} comes before the first '>' header (not FASTA?)"
                    )
                chunks.append("".join(line.split()))
        if header is None:
            raise InputError(f"{name}: no FASTA records (empty file?)")
        yield finish()


def write_fasta(records: Iterator[tuple[str, str]], handle: io.TextIOBase, width: int = 60) -> None:
    """Write (header, sequence) pairs as FASTA with lines of ``width`` letters (0: one line)."""
    for header, sequence in records:
        handle.write(f">{header}\n")
        if width <= 0:
            handle.write(sequence + "\n")
        else:
            for i in range(0, len(sequence), width):
                handle.write(sequence[i : i + width] + "\n")


def expand_inputs(paths, list_directory: Callable[[Path], list[Path]], none_found: str) -> list[Path]:
    """Files given directly, plus the files ``list_directory`` finds in each directory given (sorted);
    a directory with none is an error (``none_found`` says what was looked for), as is a missing path."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(list_directory(path))
            if not found:
                raise InputError(f"{path}: {none_found}")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    return files
