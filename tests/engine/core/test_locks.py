"""Output locks and stale partials (#31 §1): a lock held by another process refuses a run in one line naming
it, a lock whose holder died (SIGKILL) is taken at once, and only partials that no live process holds are
removed. The other processes are real ones: flock(2) locks belong to open files, not to threads."""

import os

import pytest
from conftest import OtherProcess, locked_by_another_run

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.locks import hold_partial, lock_output, partial_pattern, remove_stale_partials


@pytest.mark.parametrize("inside", [False, True], ids=["beside", "inside"])
def test_a_held_lock_refuses_in_one_line_and_a_dead_holders_lock_is_taken(tmp_path, inside):
    out = tmp_path / "out"
    out.mkdir()
    with locked_by_another_run(out, inside) as holder:
        with pytest.raises(InputError) as refused:
            lock_output(out, inside=inside)
        assert str(refused.value) == (
            f"{out}: in use by another obte run (pid {holder.pid}); wait for it to end or choose another --out"
        )
        holder.kill()  # SIGKILL: nothing released it, the kernel did
        with lock_output(out, inside=inside) as lock:
            assert lock.lock_file.read_text() == f"{os.getpid()}\n"
    assert not lock.lock_file.exists()  # released: removed
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out"]


def test_the_same_process_may_take_its_own_lock_again(tmp_path):
    first = lock_output(tmp_path / "m", inside=False)
    second = lock_output(tmp_path / "m", inside=False)
    assert second is first and first.lock_file == tmp_path / ".m.obte-lock"
    second.release()
    assert first.lock_file.exists()  # one hold left
    first.release()
    assert not first.lock_file.exists()


def test_a_lock_file_left_by_a_killed_run_is_taken_and_names_the_new_holder(tmp_path):
    (tmp_path / ".m.obte-lock").write_text("999999\n")  # its process is gone: nothing holds it
    with lock_output(tmp_path / "m", inside=False) as lock:
        assert lock.lock_file.read_text() == f"{os.getpid()}\n"


HOLD_PARTIALS = """
import os
from pathlib import Path
from obte_cli.engine.core.locks import hold_partial
fd = os.open(Path(path) / ".x.tsv.obte-partial-held0001", os.O_RDWR | os.O_CREAT)
assert hold_partial(fd)
os.mkdir(Path(path) / ".m.partial-held0002")
dfd = os.open(Path(path) / ".m.partial-held0002", os.O_RDONLY)
assert hold_partial(dfd)
"""


def test_only_partials_that_nobody_holds_are_removed(tmp_path):
    (tmp_path / ".x.tsv.obte-partial-dead0001").write_text("killed run")
    (tmp_path / ".m.partial-dead0002").mkdir()
    (tmp_path / ".m.partial-dead0002" / "model.safetensors").write_text("half")
    (tmp_path / ".x.tsv.obte-partial-link0003").symlink_to(tmp_path / "x.tsv")  # not a file obte makes
    os.mkfifo(tmp_path / ".x.tsv.obte-partial-fifo0004")
    (tmp_path / ".y.tsv.obte-partial-other005").write_text("another target's")
    pattern = partial_pattern([".x.tsv.obte-partial-", ".m.partial-"])
    with OtherProcess(HOLD_PARTIALS, tmp_path):
        removed = remove_stale_partials(tmp_path, pattern)
        assert sorted(p.name for p in removed) == [".m.partial-dead0002", ".x.tsv.obte-partial-dead0001"]
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            ".m.partial-held0002",
            ".x.tsv.obte-partial-fifo0004",
            ".x.tsv.obte-partial-held0001",
            ".x.tsv.obte-partial-link0003",
            ".y.tsv.obte-partial-other005",
        ]
    # the holder was killed: its partials are stale now
    assert sorted(p.name for p in remove_stale_partials(tmp_path, pattern)) == [
        ".m.partial-held0002",
        ".x.tsv.obte-partial-held0001",
    ]


def test_a_partial_removed_before_it_was_held_is_reported(tmp_path):
    path = tmp_path / ".x.tsv.obte-partial-race0001"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        assert remove_stale_partials(tmp_path, partial_pattern([".x.tsv.obte-partial-"])) == [path]
        assert not hold_partial(fd)  # the writer sees it lost the file, and makes another
    finally:
        os.close(fd)
