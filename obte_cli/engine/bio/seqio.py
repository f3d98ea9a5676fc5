"""Reading sequence files: FASTA, plain, gzip- or xz-compressed, or ``-`` for standard input.

The reader streams (constant memory in the number of records), detects gzip and xz by their magic bytes rather
than the file name, and raises :class:`InputError` naming the file and record for malformed input:
an empty file, text before the first ``>`` header, a record without sequence, a binary file, text that is not
UTF-8 (naming the byte and line) or a truncated gzip stream. A UTF-8 byte-order mark at the start is skipped.

Two levels of trouble are told apart, for readers that must not stop at one bad record in a 100 GB archive
(:func:`scan_fasta`, used by `obte prep`): a *file* that is not sequence data at all (no records, text or
binary data before the first record, a corrupt compressed stream) is always an :class:`InputError`; a
*record* that is malformed (no sequence, an empty header, bytes that are not text) comes back as a
:class:`Malformed` item with a reason and the one-line message :func:`read_fasta` raises for it.
"""

from __future__ import annotations

import gzip
import io
import lzma
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.inputs import COMPRESSED_STREAM_ERRORS

GZIP_MAGIC = b"\x1f\x8b"
XZ_MAGIC = b"\xfd7zXZ\x00"


@dataclass(frozen=True)
class FastaRecord:
    id: str  # first whitespace-delimited word of the header
    description: str  # the whole header line without '>'
    sequence: str  # letters as written (whitespace removed), case kept
    number: int  # 1-based position of the record in its file


@dataclass(frozen=True)
class Malformed:
    """A record that cannot be read: why (``empty_sequence``, ``binary_data`` ...; the key it is counted
    under) and the one-line message, naming file and record, that a strict reader raises for it."""

    reason: str
    message: str
    number: int  # 1-based position of the record in its file


def display_name(path: str | Path) -> str:
    return "<stdin>" if str(path) == "-" else str(path)


def stdin_once(paths) -> None:
    """Standard input can be read once: ``-`` given twice (``obte tokenize encode - -``) is an error."""
    if sum(str(p) == "-" for p in paths) > 1:
        raise InputError("'-' (standard input) is given more than once; it can be read only once")


def open_text(path: str | Path, errors: str = "strict") -> io.TextIOBase:
    """Open a possibly gzip- or xz-compressed text file, or standard input for ``-``. ``errors`` as for
    :class:`io.TextIOWrapper`: ``surrogateescape`` lets a reader see undecodable bytes (see :func:`is_binary`)
    instead of stopping at them."""
    name = display_name(path)
    if str(path) == "-":
        raw = sys.stdin.buffer
        if raw.closed:
            raise InputError(f"{name}: already read (standard input can be read only once)")
    else:
        try:
            raw = open(path, "rb")  # noqa: SIM115 - returned to the caller
        except FileNotFoundError:
            raise InputError(f"{name}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"{name}: is a directory, expected a file") from None
        except PermissionError:
            raise InputError(f"{name}: permission denied") from None
        except OSError as exc:  # a symlink loop (ELOOP), a name too long, an I/O error
            raise InputError(f"{name}: cannot read ({exc.strerror or exc})") from None
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        buffered = gzip.GzipFile(fileobj=buffered, mode="rb")
    elif buffered.peek(6)[:6] == XZ_MAGIC:
        buffered = lzma.LZMAFile(buffered, mode="rb")
    # utf-8-sig drops a byte-order mark at the start, as Windows Notepad writes one
    return io.TextIOWrapper(buffered, encoding="utf-8-sig", errors=errors, newline=None)


def is_binary(line: str) -> bool:
    """A line that is not text: a NUL byte, or bytes that are not UTF-8 (read with ``surrogateescape``).
    Cheap on the usual ASCII line (``str.isascii`` is a flag lookup)."""
    if "\x00" in line:
        return True
    if line.isascii():
        return False
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _undecodable_byte(line: str) -> int | None:
    """The first byte of ``line`` that is not UTF-8 (read with ``surrogateescape``, which keeps byte ``b``
    as the lone surrogate U+DC00 + ``b``), or None."""
    for char in line:
        if "\udc80" <= char <= "\udcff":
            return ord(char) - 0xDC00
    return None


def _not_text(name: str, line: str, line_number: int, record: int, nul_follows: bool = False) -> str:
    """Why ``line`` of ``record`` (0: before the first) cannot be read: binary data (a NUL byte, on the
    line or soon after it), or else text in an encoding other than UTF-8, Latin-1 or Windows-1252 from an
    old editor, with the byte and the line to fix."""
    if "\x00" in line or nul_follows:
        near = f"record {record}" if record else "the start of the file"
        return f"{name}: binary data near {near}, not a text sequence file"
    what = f"record {record} is not UTF-8 text" if record else "not UTF-8 text"
    return f"{name}: {what} (byte 0x{_undecodable_byte(line):02x} at line {line_number})"


def _nul_soon(lines: Iterator[str], limit: int = 8000) -> bool:
    """Whether a NUL byte comes in the next ``limit`` characters or so (git's test for binary data: text in
    any 8-bit encoding has none). A PNG's first line, ``\\x89PNG``, would pass for Latin-1 text on its own."""
    seen = 0
    for line in lines:
        if "\x00" in line:
            return True
        seen += len(line)
        if seen >= limit:
            break
    return False


def _lines(
    handle: io.TextIOBase, name: str, record_hint: Callable[[], str], nul_is_error: bool = True
) -> Iterator[str]:
    """Yield lines, turning decoding and gzip failures into one-line InputErrors (and a NUL byte, unless the
    caller checks :func:`is_binary` itself)."""
    try:
        for line in handle:
            if nul_is_error and "\x00" in line:
                raise InputError(f"{name}: binary data near {record_hint()}, not a text sequence file")
            yield line
    except UnicodeDecodeError as exc:  # the stream cannot go on, so binary data and Latin-1 text look alike here
        byte = exc.object[exc.start]
        raise InputError(
            f"{name}: binary data near {record_hint()}, not a text sequence file (byte 0x{byte:02x} is not UTF-8; "
            "if the file is text, save it as UTF-8)"
        ) from None
    except COMPRESSED_STREAM_ERRORS as exc:
        kind = "xz" if isinstance(getattr(handle, "buffer", None), lzma.LZMAFile) else "gzip"
        raise InputError(f"{name}: corrupt or truncated {kind} stream near {record_hint()} ({exc})") from None


def scan_fasta(path: str | Path) -> Iterator[FastaRecord | Malformed]:
    """Stream the records of a FASTA file (plain, .gz, .xz, or ``-`` for stdin), malformed ones as
    :class:`Malformed` items (see the module docstring); a file that is not FASTA raises :class:`InputError`."""
    name = display_name(path)
    header: str | None = None
    chunks: list[str] = []
    number = 0
    not_text = ""  # why the current record cannot be read: it holds bytes that are not UTF-8 text

    def hint() -> str:
        return f"record {number}" if number else "the start of the file"

    def finish() -> FastaRecord | Malformed:
        if not_text:  # counted as binary data, the one key `obte prep` has for bytes that are not text
            return Malformed("binary_data", not_text, number)
        words = header.split()
        if not words:
            return Malformed("empty_header", f"{name}: record {number} has an empty header", number)
        sequence = "".join(chunks)
        if not sequence:
            return Malformed("empty_sequence", f"{name}: record {number} ('{words[0]}') has no sequence", number)
        return FastaRecord(words[0], header.strip(), sequence, number)

    with open_text(path, errors="surrogateescape") as handle:
        lines = _lines(handle, name, hint, nul_is_error=False)
        for line_number, line in enumerate(lines, start=1):
            if "\x00" in line or (not line.isascii() and is_binary(line)):
                if header is None:  # before any record: not a sequence file at all
                    nul_follows = "\x00" not in line and _nul_soon(lines)
                    raise InputError(_not_text(name, line, line_number, number, nul_follows))
                if line.startswith(">"):  # a header with bytes that are not text still starts a record
                    yield finish()
                    number += 1
                    header, chunks, not_text = "", [], ""
                not_text = not_text or _not_text(name, line, line_number, number)
            elif line.startswith(">"):
                if header is not None:
                    yield finish()
                number += 1
                header = line[1:].rstrip("\r\n")
                chunks = []
                not_text = ""
            elif line.strip():
                if header is None:
                    raise InputError(
                        f"{name}: line {line.strip()[:20]!r} comes before the first '>' header (not FASTA?)"
                    )
                chunks.append("".join(line.split()))
        if header is None:
            raise InputError(f"{name}: no FASTA records (empty file?)")
        yield finish()


def read_fasta(path: str | Path) -> Iterator[FastaRecord]:
    """Stream the records of a FASTA file (plain, .gz, .xz, or ``-`` for stdin); a malformed record is an
    :class:`InputError` naming file and record."""
    for item in scan_fasta(path):
        if isinstance(item, Malformed):
            raise InputError(item.message)
        yield item


def count_fasta_records(paths) -> int | None:
    """How many records the FASTA files ``paths`` hold (lines that start with '>'), for a progress bar; None
    when one of them is not a regular file (standard input, a pipe: they can be read only once)."""
    if not all(str(p) != "-" and Path(p).is_file() for p in paths):
        return None
    count = 0
    for path in paths:
        with open_text(path, errors="surrogateescape") as handle:
            count += sum(line.startswith(">") for line in handle)
    return count


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
