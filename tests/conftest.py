"""Shared fixtures. Data from ../shared/data is optional: tests that need it skip with a reason."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from typer.testing import CliRunner

# Property tests draw the same examples on every run (derandomized), so the README's test command gives the
# same answer twice and CI cannot turn red by the luck of the draw. To hunt for new failures, draw fresh
# random examples: OBTE_HYPOTHESIS=explore python -m pytest -q (a failure found is then replayed from
# .hypothesis/; keep it as an @example).
hypothesis_settings.register_profile("repeatable", derandomize=True)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("OBTE_HYPOTHESIS", "repeatable"))

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"  # small fixtures that ship with the repository
SHARED_DATA = REPO.parent / "shared" / "data"
_runner = CliRunner()


def obte(*args, input=None):
    """Run ``obte ARGS...`` in-process (Typer's CliRunner); arguments may be paths or numbers.

    A plain function rather than a fixture, because module- and session-scoped fixtures build their
    models and corpora with it too."""
    from obte_cli.app import app

    return _runner.invoke(app, [str(a) for a in args], input=input)


def edit_json(path, change) -> None:
    """Rewrite the JSON file ``path`` (a model's config.json, a tokenizer.json, a token manifest...) after
    ``change`` has edited its parsed content in place."""
    path = Path(path)
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))


def refused(load, path, message: str, error: type[Exception] | None = None) -> str:
    """``load(path)`` is refused with one line of ``error`` (default ModelFormatError) matching the regular
    expression ``message``; returns the line."""
    from obte_cli.engine.core.errors import ModelFormatError

    with pytest.raises(error or ModelFormatError, match=message) as info:
        load(path)
    assert "\n" not in str(info.value)
    return str(info.value)


def refused_in_one_line(exc: Exception, path) -> None:
    """A reader's error is one line that names the file it was reading."""
    message = str(exc)
    assert "\n" not in message and str(path) in message, message


def read_or_refused(read, path, error: type[Exception] | None = None, seconds: float = 10):
    """What ``read()`` returns, or None when it raised ``error`` (default InputError) in one line naming
    ``path``; a read still running after ``seconds`` fails the test (a hang)."""
    from obte_cli.engine.core.errors import InputError

    error = error or InputError
    with within(seconds):
        try:
            return read()
        except error as exc:
            refused_in_one_line(exc, path)
            return None


def one_error_line(result, *fragments: str) -> str:
    """The one ``error:`` line of a command refused with exit 1 (no traceback, nothing else on stderr), checked to
    contain every fragment."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "Aborted" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@contextmanager
def within(seconds: float):
    """Fail the test if the block runs longer than ``seconds``: a reader that hangs on bad input is a bug
    (SIGALRM, so the main thread and Unix only; it fires once control is back in Python)."""

    def hung(signum, frame):
        raise AssertionError(f"still running after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def shared_file(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data {path} is not available")
    return path


@pytest.fixture(scope="session")
def pronab_path() -> Path:
    """72 real ProNAB entries in the ProNAB JSON layout (``tests/data/pronab_sample.json``, see its README)."""
    return DATA / "pronab_sample.json"


@pytest.fixture(scope="session")
def pronab(pronab_path) -> dict:
    return json.loads(pronab_path.read_text())


PROTEIN_FILES = sorted((DATA / "debian-heldout" / "protein").glob("*.fa.gz"))


@pytest.fixture(scope="session")
def protein_fasta(tmp_path_factory) -> Path:
    """The 305 real proteins (UniProt, COG, Ensembl, MMseqs2, MacSyFinder) of ``tests/data/debian-heldout/protein``,
    concatenated in file-name order into one plain FASTA file."""
    path = tmp_path_factory.mktemp("proteins") / "proteins.fa"
    path.write_bytes(b"".join(gzip.decompress(p.read_bytes()) for p in PROTEIN_FILES))
    return path


@pytest.fixture(scope="session")
def mixed_model_file() -> Path:
    """The reference ``mixed_bpe.model`` (OmniBioTE, MIT), as the bundled ``omnibiote-mixed`` tokenizer ships it."""
    from obte_cli.engine.core.resources import bundled_tokenizer_dir

    return bundled_tokenizer_dir("omnibiote-mixed") / "mixed_bpe.model"


@pytest.fixture(scope="session")
def residue_tokenizer():
    from obte_cli.engine.tokenizers.loading import load_tokenizer

    return load_tokenizer("residue")


@pytest.fixture(scope="session")
def mixed_tokenizer():
    from obte_cli.engine.tokenizers.loading import load_tokenizer

    return load_tokenizer("omnibiote-mixed")


def contact_site(protein="MKRLA", na=("ACGT",), labels=None, name="x:A"):
    """A contact site: ``protein`` (residues numbered from 1) with the DNA strands ``na`` and its (n, 3) contact
    labels, none in contact unless given."""
    import numpy as np

    from obte_cli.engine.contacts.sites import ContactSite

    labels = np.zeros((len(protein), 3), dtype=int) if labels is None else labels
    return ContactSite(name, protein, list(na), ["DNA"] * len(na), [str(i + 1) for i in range(len(protein))], labels)


HELDOUT_FILES = sorted((DATA / "debian-heldout").glob("*/*.fa.gz"))


def _standard_chunks(text: str, letters: str, length: int = 2048) -> list[str]:
    """The runs of ``letters`` in ``text`` (upper case), cut into chunks of at most ``length``."""
    runs = re.split(f"[^{letters}]+", text.upper())
    return [r[i : i + length] for r in runs for i in range(0, len(r), length) if r]


@pytest.fixture(scope="session")
def paired_tokenizer(tmp_path_factory):
    """Two small BPE models, one per modality (nucleic ids first, protein ids offset after them: the layout of
    the reference ``nucleotide_bpe.model`` + ``peptide_bpe.model`` and of `obte tokenize train`), trained with
    obte's trainer on the held-out Debian records of ``tests/data/debian-heldout`` (256 + 512 pieces)."""
    from obte_cli.engine.bio.seqio import read_fasta
    from obte_cli.engine.pretraining.train_tokenizer import train_bpe
    from obte_cli.engine.tokenizers.sentencepiece import SentencePieceTokenizer

    chunks = {"nucleic": [], "protein": []}
    for path in HELDOUT_FILES:
        protein = path.parent.name == "protein"
        for record in read_fasta(path):
            if protein:
                chunks["protein"] += _standard_chunks(record.sequence, "ACDEFGHIKLMNPQRSTVWY")
            else:
                chunks["nucleic"] += _standard_chunks(record.sequence.upper().replace("U", "T"), "ACGT")
    folder = tmp_path_factory.mktemp("paired-bpe")
    files = {}
    for modality, size in (("nucleic", 256), ("protein", 512)):
        path = folder / f"{modality}_bpe.model"
        path.write_bytes(train_bpe(chunks[modality], modality, size))
        files[str(path)] = [modality]
    return SentencePieceTokenizer.from_model_files(files)


class OtherProcess:
    """Another Python process that runs ``code`` (with ``path`` bound to a string), then says 'ready' and sleeps
    until :meth:`kill` (SIGKILL) or the end of the ``with`` block: a concurrent obte run holding a lock or a
    partial file. flock(2) locks belong to open files, so the holder must be a process of its own."""

    def __init__(self, code: str, path):
        import subprocess
        import sys
        import textwrap

        script = f"path = {str(path)!r}\n" + textwrap.dedent(code) + "\nprint('ready', flush=True)\n"
        script += "import time\ntime.sleep(300)\n"
        self.process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "ready", "the other process failed to start"
        self.pid = self.process.pid

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.kill()


def locked_by_another_run(path, inside: bool = False) -> OtherProcess:
    """Another process holding the output lock of ``path`` (obte_cli.engine.core.locks), as a running obte would."""
    code = f"from obte_cli.engine.core.locks import lock_output\nheld = lock_output(path, inside={inside})"
    return OtherProcess(code, path)


def unwritable_directory(directory) -> list[str]:
    """Make ``directory`` unwritable (mode 555) for a command run with the returned prefix: none when the tests
    do not run as root; as root, who may write anywhere, ``unshare -U`` (in a user namespace root's files are
    checked by their mode bits). Skips where neither works. The caller restores the mode."""
    import shutil
    import subprocess

    directory = Path(directory)
    directory.chmod(0o555)
    if os.geteuid() != 0:
        return []
    unshare = shutil.which("unshare")
    if unshare is None:
        directory.chmod(0o755)
        pytest.skip("running as root without `unshare`: no way to make a directory unwritable")
    probe = subprocess.run([unshare, "-U", "touch", str(directory / ".probe")], capture_output=True)
    if probe.returncode == 0 or b"Permission denied" not in probe.stderr:
        directory.chmod(0o755)
        (directory / ".probe").unlink(missing_ok=True)
        pytest.skip(f"running as root and `unshare -U` does not stop writes here ({probe.stderr.decode().strip()})")
    return [unshare, "-U"]
