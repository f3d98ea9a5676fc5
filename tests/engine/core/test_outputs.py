"""Output directories appear whole or not at all, never replace an input, and respect the umask."""

import os

import pytest
from conftest import DATA, obte

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.outputs import refuse_input_as_output, staged_directory


def _hidden(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_success_replaces_the_previous_directory(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("previous")
    with staged_directory(out) as staging:
        assert staging.parent == tmp_path and staging != out
        (staging / "new.txt").write_text("result")
        assert (out / "old.txt").exists()  # nothing is touched until the work is done
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert _hidden(tmp_path) == []


@pytest.mark.parametrize("error", [RuntimeError("training failed"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_run_leaves_the_previous_result(tmp_path, error):
    out = tmp_path / "run"
    out.mkdir()
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
