"""Failures on the output side (a full disk, stdout to /dev/full, ``-o`` naming a directory or a missing
or unwritable one) are one ``error:`` line and exit code 1, and leave nothing half-written."""

import errno
import os
import subprocess
import sys
import tempfile

import pytest
from conftest import REPO, obte, one_error_line

NO_SPACE = "No space left on device"


def _run(*args, stdout):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "obte_cli", *map(str, args)],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("args", [("model", "presets"), ("--version",)])
def test_stdout_to_a_full_device_is_one_line_and_exit_1(args):
    with open("/dev/full", "w") as full:
        result = _run(*args, stdout=full)
    assert result.returncode == 1
    assert result.stderr == f"error: cannot write to standard output: {NO_SPACE}\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_an_output_file_on_a_full_device_is_one_line():
    result = _run("model", "presets", "-o", "/dev/full", stdout=subprocess.DEVNULL)
    assert result.returncode == 1 and result.stderr == f"error: /dev/full: cannot write: {NO_SPACE}\n"


@pytest.mark.skipif(not os.path.exists("/dev/stdout"), reason="no /dev/stdout")
def test_dev_stdout_is_written_in_place(tmp_path):
    with open(tmp_path / "captured.tsv", "w") as captured:
        result = _run("model", "presets", "-o", "/dev/stdout", stdout=captured)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "captured.tsv").read_text().startswith("preset\twidth")
    assert os.path.exists("/dev/stdout")


def test_out_naming_a_directory_or_a_missing_one(tmp_path):
    assert one_error_line(obte("model", "presets", "-o", tmp_path)).endswith("is a directory")
    assert one_error_line(obte("model", "presets", "-o", tmp_path / "no" / "x.tsv")).endswith("does not exist")


def test_an_unwritable_directory(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    assert one_error_line(obte("model", "presets", "-o", tmp_path / "x.tsv")).endswith(
        "x.tsv: cannot write: Permission denied"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_keeps_the_previous_file_and_leaves_no_partial(tmp_path, monkeypatch):
    out = tmp_path / "presets.tsv"
    out.write_text("previous\n")

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    assert one_error_line(obte("model", "presets", "-o", out)).endswith(f"presets.tsv: cannot write: {NO_SPACE}")
    assert out.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["presets.tsv"]


def test_a_symlinked_output_writes_its_target(tmp_path):
    (tmp_path / "link.tsv").symlink_to("real.tsv")
    assert obte("model", "presets", "-o", tmp_path / "link.tsv").exit_code == 0
    assert (tmp_path / "link.tsv").is_symlink()
    assert (tmp_path / "real.tsv").read_text().startswith("preset\t")


def test_a_new_model_directory_follows_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        result = obte("model", "init", "--preset", "micro", "--context", "128", "-o", tmp_path / "m")
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m").stat().st_mode & 0o777 == 0o755
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "m").iterdir()} == {0o644}
