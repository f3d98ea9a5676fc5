"""Outputs, files and directories, appear whole or not at all, never replace an input, follow symlinks,
write devices and FIFOs in place, respect the umask, and fail in one line."""

import errno
import os
import stat
import tempfile
import threading

import pytest
from conftest import DATA, obte

from obte_cli.engine.core.errors import InputError, ObteError
from obte_cli.engine.core.outputs import (
    OWN_OUTPUTS,
    atomic_file,
    check_replaceable,
    obte_output_kind,
    refuse_input_as_output,
    refuse_same_file,
    staged_directory,
    write_text_atomic,
)


def _hidden(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def _obte_output(directory, *files):
    """A directory obte recognises as its own (a model's config.json), with ``files`` beside it."""
    directory.mkdir(parents=True)
    (directory / "config.json").write_text('{"format": "obte-model", "format_version": 1}')
    for name in files:
        (directory / name).write_text("previous")
    return directory


def test_success_replaces_the_previous_directory(tmp_path):
    out = _obte_output(tmp_path / "run", "old.txt")
    with staged_directory(out) as staging:
        assert staging.parent == tmp_path and staging != out
        (staging / "new.txt").write_text("result")
        assert (out / "old.txt").exists()  # nothing is touched until the work is done
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert _hidden(tmp_path) == []


@pytest.mark.parametrize("error", [RuntimeError("training failed"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_run_leaves_the_previous_result(tmp_path, error):
    out = _obte_output(tmp_path / "run")
    (out / "model.safetensors").write_text("the previous model")
    with pytest.raises(type(error)):
        with staged_directory(out) as staging:
            (staging / "half.bin").write_text("partial")
            raise error
    assert (out / "model.safetensors").read_text() == "the previous model"
    assert _hidden(tmp_path) == []  # the partial staging directory is gone


def test_a_new_directory_follows_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        with staged_directory(tmp_path / "a") as staging:
            (staging / "x").write_text("")
    finally:
        os.umask(previous)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o755


def test_output_may_not_be_or_contain_an_input(tmp_path):
    backbone = tmp_path / "models" / "backbone"
    backbone.mkdir(parents=True)
    for out in (backbone, tmp_path / "models", tmp_path):
        with pytest.raises(InputError, match="would replace the input"):
            refuse_input_as_output(out, [backbone])
    refuse_input_as_output(tmp_path / "elsewhere", [backbone, None])  # fine
    with pytest.raises(InputError):
        with staged_directory(backbone, inputs=[backbone]):
            pass
    assert backbone.is_dir()


def test_finetune_refuses_to_write_over_its_backbone(tmp_path):
    backbone = tmp_path / "backbone"
    assert obte("model", "init", "--preset", "micro", "--context", "128", "-o", backbone).exit_code == 0
    before = {p.name: p.read_bytes() for p in backbone.iterdir()}
    tasks = DATA / "tasks"
    csv = sorted(tasks.glob("*train*.csv"))[0]
    result = obte(
        "finetune", "classify", "--train", csv, "--dev", csv, "--test", csv, "-m", backbone, "-o", backbone, "--force"
    )
    assert result.exit_code == 1 and "would replace the input" in result.stderr
    assert {p.name: p.read_bytes() for p in backbone.iterdir()} == before
    again = obte("tokenize", "corpus", tmp_path / "nothing", "-o", tmp_path, "--force")
    assert again.exit_code == 1 and "would replace the input" in again.stderr and backbone.is_dir()


# ---- files: one atomic writer for every output -------------------------------------------------------


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if ".obte-partial-" in p.name)


def test_a_file_appears_whole_with_the_umask_mode(tmp_path):
    previous = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.tsv", "x\n")
        os.umask(0o077)
        with atomic_file(tmp_path / "b.bin", binary=True) as handle:
            handle.write(b"\0\1")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.tsv").read_text() == "x\n" and (tmp_path / "b.bin").read_bytes() == b"\0\1"
    assert (tmp_path / "a.tsv").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o600
    assert _leftovers(tmp_path) == []


def test_replacing_a_file_keeps_its_mode(tmp_path):
    out = tmp_path / "a.tsv"
    out.write_text("old\n")
    out.chmod(0o640)
    write_text_atomic(out, "new\n")
    assert out.read_text() == "new\n" and out.stat().st_mode & 0o777 == 0o640


def test_the_partial_file_is_hidden_beside_the_output_and_says_what_it_is(tmp_path):
    with atomic_file(tmp_path / "table.tsv") as handle:
        handle.write("x\n")
        assert [name.startswith(".table.tsv.obte-partial-") for name in _leftovers(tmp_path)] == [True]
        assert not (tmp_path / "table.tsv").exists()


@pytest.mark.parametrize("error", [RuntimeError("bug"), KeyboardInterrupt()])
def test_an_exception_in_the_body_leaves_the_old_file_and_no_partial(tmp_path, error):
    out = tmp_path / "a.tsv"
    out.write_text("previous\n")
    with pytest.raises(type(error)):
        with atomic_file(out) as handle:
            handle.write("half")
            raise error
    assert out.read_text() == "previous\n" and _leftovers(tmp_path) == []


def test_a_full_disk_at_fsync_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    out = tmp_path / "a.tsv"
    out.write_text("previous\n")
    monkeypatch.setattr(os, "fsync", _no_space)
    with pytest.raises(ObteError, match=r"a\.tsv: cannot write: No space left on device$"):
        write_text_atomic(out, "new\n")
    assert out.read_text() == "previous\n" and _leftovers(tmp_path) == []


def test_a_full_disk_while_the_body_writes_is_one_line_and_keeps_the_old_file(tmp_path):
    out = tmp_path / "a.bin"
    out.write_bytes(b"previous")
    with pytest.raises(ObteError, match="cannot write: No space left on device"):
        with atomic_file(out, binary=True) as handle:
            handle.write(b"x")
            _no_space()
    assert out.read_bytes() == b"previous" and _leftovers(tmp_path) == []


def test_other_os_errors_in_the_body_are_not_called_write_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        with atomic_file(tmp_path / "a.tsv"):
            open(tmp_path / "missing-input.fa")
    assert not (tmp_path / "a.tsv").exists() and _leftovers(tmp_path) == []


def test_a_symlink_is_followed_and_kept(tmp_path):
    (tmp_path / "real.tsv").write_text("old\n")
    link = tmp_path / "link.tsv"
    link.symlink_to("real.tsv")
    write_text_atomic(link, "new\n")
    assert link.is_symlink() and os.readlink(link) == "real.tsv"
    assert (tmp_path / "real.tsv").read_text() == "new\n"
    dangling = tmp_path / "dangling.tsv"
    dangling.symlink_to("created.tsv")
    write_text_atomic(dangling, "made\n")
    assert dangling.is_symlink() and (tmp_path / "created.tsv").read_text() == "made\n"
    assert _leftovers(tmp_path) == []


def test_a_fifo_is_written_in_place(tmp_path):
    fifo = tmp_path / "pipe.tsv"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    write_text_atomic(fifo, "through the pipe\n")
    reader.join(timeout=10)
    assert received == ["through the pipe\n"]
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and _leftovers(tmp_path) == []


def test_a_device_is_written_in_place():
    write_text_atomic(os.devnull, "discarded\n")  # no partial file in /dev, no rename over /dev/null
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    if os.path.exists("/dev/full"):
        with pytest.raises(ObteError, match="^/dev/full: cannot write: No space left on device$"):
            write_text_atomic("/dev/full", "x" * 100)


def test_a_directory_a_missing_directory_and_an_unwritable_one_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="is a directory$"):
        write_text_atomic(tmp_path, "x")
    with pytest.raises(ObteError, match="directory .*/nowhere does not exist$"):
        write_text_atomic(tmp_path / "nowhere" / "a.tsv", "x")
    (tmp_path / "file").write_text("")
    with pytest.raises(ObteError, match="cannot write: Not a directory$"):
        write_text_atomic(tmp_path / "file" / "a.tsv", "x")

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(ObteError, match="a.tsv: cannot write: Permission denied$"):
        write_text_atomic(tmp_path / "a.tsv", "x")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_a_real_unwritable_directory_and_read_only_file(tmp_path):
    (tmp_path / "ro.tsv").write_text("keep\n")
    (tmp_path / "ro.tsv").chmod(0o444)
    with pytest.raises(ObteError, match="cannot write: Permission denied$"):
        write_text_atomic(tmp_path / "ro.tsv", "x")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ObteError, match="cannot write: Permission denied$"):
            write_text_atomic(locked / "a.tsv", "x")
    finally:
        locked.chmod(0o700)
    assert (tmp_path / "ro.tsv").read_text() == "keep\n"


def test_a_staged_directory_that_cannot_be_made_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    with pytest.raises(ObteError, match="cannot write"):
        with staged_directory(tmp_path / "file" / "run"):
            pass
    with pytest.raises(ObteError, match="run: cannot write: No space left on device$"):
        with staged_directory(tmp_path / "run"):
            _no_space()
    assert not (tmp_path / "run").exists() and _hidden(tmp_path) == []


def test_tables_plots_structures_and_embeddings_go_through_the_atomic_writer(tmp_path, monkeypatch):
    import pandas as pd

    from obte_cli.engine.contacts.io import write_bfactor_structure
    from obte_cli.engine.core.plots import histogram
    from obte_cli.engine.core.resources import example_file
    from obte_cli.engine.core.tables import write_tsv

    def write_all():
        write_tsv(pd.DataFrame({"a": [1.0, None]}), tmp_path / "t.tsv")
        histogram([0.5, -1.0, 2.0], "x", "t", tmp_path / "h.png")
        write_bfactor_structure(example_file("1AZP.pdb.gz"), {"A": {}}, tmp_path / "s.cif")

    write_all()
    assert (tmp_path / "t.tsv").read_text() == "a\n1.0000\nNA\n"
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "s.cif").read_text().startswith("data_")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setattr(os, "fsync", _no_space)
    for name, write in [
        ("t.tsv", lambda: write_tsv(pd.DataFrame({"a": [2.0]}), tmp_path / "t.tsv")),
        ("h.png", lambda: histogram([1.0], "x", "t", tmp_path / "h.png")),
        ("s.cif", lambda: write_bfactor_structure(example_file("1AZP.pdb.gz"), {}, tmp_path / "s.cif")),
    ]:
        with pytest.raises(ObteError, match=f"{name}: cannot write: No space left on device$"):
            write()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("suffix", [".tsv", ".npy", ".safetensors"])
def test_embedding_files_are_atomic_and_leave_no_scratch(tmp_path, monkeypatch, suffix):
    import numpy as np

    from obte_cli.engine.embedding.embed import RecordEmbedding
    from obte_cli.engine.embedding.io import EmbeddingWriter, read_embeddings

    out = tmp_path / f"e{suffix}"

    def write(value):
        writer = EmbeddingWriter(out, "mean", (0,), {"model": "m"})
        try:
            writer.add(RecordEmbedding("r1", 3, np.full((1, 4), value, dtype=np.float32)))
            writer.close()
        except BaseException:
            writer.abort()
            raise

    write(1.0)
    assert read_embeddings(out)[1].tolist() == [[1.0] * 4]
    before = out.read_bytes()
    monkeypatch.setattr(os, "fsync", _no_space)
    with pytest.raises(ObteError, match="cannot write: No space left on device$"):
        write(2.0)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# ---- what --force may replace, what an output may not be (#31 §1) --------------------------------------


def test_obte_recognises_each_of_its_outputs_from_what_its_writers_write(tmp_path):
    """The markers of core/outputs.py agree with the engine's writers: a real model, token directory, prep
    corpus and tokenizer, and each marker with the format the engine names."""
    from obte_cli.engine.affinity.ensemble import ENSEMBLE_FILE, ENSEMBLE_FORMAT
    from obte_cli.engine.bench.pronab import BENCH_COLUMNS
    from obte_cli.engine.bench.tasks import RESULT_COLUMNS
    from obte_cli.engine.model.directory import CONFIG_FILE, FORMAT_NAME
    from obte_cli.engine.model.hf_export import EXPORT_FILE, EXPORT_FORMAT
    from obte_cli.engine.pretraining.debian_corpus import MANIFEST_FORMAT as DEBIAN_FORMAT
    from obte_cli.engine.pretraining.prep import MANIFEST_FORMAT as PREP_FORMAT
    from obte_cli.engine.pretraining.token_files import FORMAT as TOKENS_FORMAT
    from obte_cli.engine.pretraining.token_files import MANIFEST as TOKENS_FILE

    markers = {name: expected for name, expected, _ in OWN_OUTPUTS}
    assert markers[CONFIG_FILE] == markers[f"model/{CONFIG_FILE}"] == FORMAT_NAME
    assert markers[ENSEMBLE_FILE] == markers[f"obte-cv/{ENSEMBLE_FILE}"] == ENSEMBLE_FORMAT
    assert markers[TOKENS_FILE] == TOKENS_FORMAT
    assert markers["manifest.json"] == PREP_FORMAT and markers["corpus-manifest.json"] == DEBIAN_FORMAT
    assert markers["bench.tsv"] == "\t".join(BENCH_COLUMNS[:3])
    assert markers["tasks.tsv"] == "\t".join(RESULT_COLUMNS[:3])
    assert markers[EXPORT_FILE] == EXPORT_FORMAT

    fasta = tmp_path / "x.fa"
    fasta.write_text(">a\nMKVLA\n>b\nACGTACGT\n")
    assert obte("model", "init", "--preset", "micro", "--context", "128", "-o", tmp_path / "model").exit_code == 0
    assert obte("prep", fasta, "-o", tmp_path / "corpus").exit_code == 0
    assert obte("tokenize", "corpus", tmp_path / "corpus", "-o", tmp_path / "tokens").exit_code == 0
    assert obte("prep", fasta, "-o", tmp_path / "part", "--shard", "0/2").exit_code == 0
    kinds = {name: obte_output_kind(tmp_path / name) for name in ("model", "corpus", "tokens", "part")}
    assert kinds == {
        "model": "a model directory",
        "corpus": "a prep corpus",
        "tokens": "a token directory",
        "part": "a prep corpus",
    }
    tokenizer = tmp_path / "tokenizer"
    tokenizer.mkdir()
    (tokenizer / "tokenizer.json").write_bytes((tmp_path / "model" / "tokenizer.json").read_bytes())
    assert obte_output_kind(tokenizer) == "a tokenizer directory"


@pytest.mark.parametrize(
    "name, content",
    [
        ("config.json", '{"format": "not-obte"}'),
        ("config.json", "[1, 2]"),
        ("config.json", "\x00binary"),
        ("ensemble.json", "{}"),
        ("tasks.tsv", "a\tb\tc\n"),
        ("keep.txt", "keep"),
    ],
)
def test_anything_else_is_not_replaceable_and_the_refusal_names_a_file(tmp_path, name, content):
    out = tmp_path / "precious"
    out.mkdir()
    (out / name).write_text(content)
    (out / "sub").mkdir()
    assert obte_output_kind(out) is None
    with pytest.raises(InputError) as refused:
        check_replaceable(out)
    assert str(refused.value).startswith(f"{out}: not an obte output (it holds {name});")


def test_empty_directories_and_obte_outputs_are_replaceable_files_are_not(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".empty.obte-lock").write_text("")  # obte's own leftovers do not count
    check_replaceable(empty)
    check_replaceable(_obte_output(tmp_path / "model", "notes.txt"))
    (tmp_path / "file").write_text("data")
    with pytest.raises(InputError, match="file: is a file, not an obte output directory"):
        check_replaceable(tmp_path / "file")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "model")
    check_replaceable(link)  # the link is replaced, what it points to is obte's anyway


def test_a_marker_behind_a_symlink_does_not_count(tmp_path):
    model = _obte_output(tmp_path / "model")
    out = tmp_path / "precious"
    out.mkdir()
    (out / "config.json").symlink_to(model / "config.json")
    assert obte_output_kind(out) is None


def test_staging_refuses_to_replace_a_foreign_directory_before_the_work(tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "keep.txt").write_text("keep")
    ran = []
    with pytest.raises(InputError, match="not an obte output"):
        with staged_directory(out):
            ran.append(True)
    assert not ran and (out / "keep.txt").read_text() == "keep"


def test_the_current_directory_is_never_an_output_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for out in (".", "..", tmp_path, tmp_path.parent):
        with pytest.raises(InputError, match="is (the current directory|a directory above the current one)"):
            with staged_directory(out):
                pass
    assert list(tmp_path.iterdir()) == []


def test_an_output_that_is_an_input_is_refused_through_symlinks_and_hard_links(tmp_path, monkeypatch):
    data = tmp_path / "x.fa"
    data.write_text(">a\nMKV\n")
    (tmp_path / "link.fa").symlink_to(data)
    os.link(data, tmp_path / "hard.fa")
    for out in (data, tmp_path / "link.fa", tmp_path / "hard.fa"):
        with pytest.raises(InputError, match="--out is (one of the inputs|the same file as the input)"):
            refuse_same_file([("--out", out)], [tmp_path / "other.fa", data])
    with pytest.raises(InputError, match="--per-residue is the same file as the input standard input"):
        with open(data) as stdin:
            monkeypatch.setattr("sys.stdin", stdin)
            refuse_same_file([("--out", "-"), ("--per-residue", tmp_path / "hard.fa")], ["-"])
    model = _obte_output(tmp_path / "model")
    with pytest.raises(InputError, match="config.json: --out is one of the inputs, which it would replace"):
        refuse_same_file([("--out", model / "config.json")], [model])
    refuse_same_file([("--out", tmp_path / "new.tsv"), ("--out", None), ("--out", "-")], [data, None, "-"])
    os.mkfifo(tmp_path / "fifo")
    refuse_same_file([("--out", tmp_path / "fifo")], [tmp_path / "fifo"])  # written in place: not replaced


def test_a_killed_writers_partial_is_removed_by_the_next_write_of_that_file(tmp_path):
    stale = tmp_path / ".x.tsv.obte-partial-k1ll3d00"
    stale.write_text("half a table")
    other = tmp_path / ".y.tsv.obte-partial-k1ll3d00"
    other.write_text("another file's")
    write_text_atomic(tmp_path / "x.tsv", "table\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".y.tsv.obte-partial-k1ll3d00", "x.tsv"]


def test_a_killed_runs_staging_directory_is_removed_by_the_next_run(tmp_path):
    stale = tmp_path / ".run.partial-k1ll3d00"
    stale.mkdir()
    (stale / "model.safetensors").write_text("half")
    (tmp_path / f".run.old-{2**22 + 7}").mkdir()  # swapped out, not yet removed, when the run was killed
    with staged_directory(tmp_path / "run") as staging:
        (staging / "config.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
