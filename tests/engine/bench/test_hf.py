"""`bench embed` and `bench throughput` without Hugging Face `transformers` installed (#33 §4): one `error:` line
naming the extra to install (`obte[bench]`) instead of a traceback; `--no-hf` still runs."""

import sys

import pytest
from conftest import DATA, obte, one_error_line

from obte_cli.engine.bench.hf import require_transformers
from obte_cli.engine.core.errors import MissingDependencyError

LIGANDS = DATA / "pronab_ligands.fa"


@pytest.fixture
def no_transformers(monkeypatch):
    """`import transformers` fails as it does where the package is not installed."""
    monkeypatch.setitem(sys.modules, "transformers", None)


def test_require_transformers_names_the_extra(no_transformers):
    with pytest.raises(MissingDependencyError, match=r"pip install 'obte\[bench\]'") as info:
        require_transformers()
    assert "--no-hf" in str(info.value) and "\n" not in str(info.value)


def test_a_transformers_that_does_not_import_is_named_too(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def broken(name, *args, **kwargs):
        if name == "transformers":
            raise ImportError("cannot import name 'is_torch_greater' from 'torch'", name="torch_utils")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "transformers", raising=False)
    monkeypatch.setattr(builtins, "__import__", broken)
    with pytest.raises(MissingDependencyError, match="does not import here .cannot import name 'is_torch_greater'"):
        require_transformers()


@pytest.mark.parametrize(
    "args",
    [
        ["bench", "embed", LIGANDS, "--preset", "micro", "--repeats", "1"],
        ["bench", "throughput", "--shapes", "micro", "--steps", "1", "--device", "cpu"],
    ],
    ids=["embed", "throughput"],
)
def test_the_bench_says_which_extra_to_install(no_transformers, args, tmp_path):
    result = obte(*args, "-o", tmp_path / "bench")
    one_error_line(result, "needs transformers, which is not installed: pip install 'obte[bench]'", "--no-hf")
    assert not (tmp_path / "bench").exists()  # refused before any work


def test_no_hf_runs_without_transformers(no_transformers):
    result = obte("bench", "embed", LIGANDS, "--preset", "micro", "--repeats", "1", "--no-hf")
    assert result.exit_code == 0, result.output
    from obte_cli.engine.bench.embed import OBTE_NAME

    assert [line.split("\t")[0] for line in result.stdout.strip().splitlines()[1:]] == [OBTE_NAME]
