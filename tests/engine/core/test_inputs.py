"""existing_file: a path a user names is a regular file, or one InputError says what it is instead."""

import os

import pytest

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.inputs import existing_file


def test_a_file_comes_back_as_a_path(tmp_path):
    (tmp_path / "a.fa").write_text(">a\nMKV\n")
    assert existing_file(str(tmp_path / "a.fa")) == tmp_path / "a.fa"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a directory, expected a file"),
        (lambda p: os.mkfifo(p), "not a regular file"),  # a named pipe: no size or checksum to record
    ],
    ids=["missing", "directory", "fifo"],
)
def test_anything_else_is_named(tmp_path, make, message):
    path = tmp_path / "input"
    make(path)
    with pytest.raises(InputError, match=f"^{path}: {message}$"):
        existing_file(path)
