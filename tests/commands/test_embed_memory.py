"""#31 §3: `obte embed` memory stays flat with the number of records (the README promises it for files of
millions of records). It grew by ~14-19 KiB per record: oneDNN cached a compiled kernel for every new batch
shape and kept its memory. Prediction commands now run with that cache off (obte_cli/app.py)."""

import random
import subprocess
import sys

import pytest
from conftest import REPO


def _fasta(path, n, seed=0):
    rng = random.Random(seed)
    with open(path, "w") as handle:
        for i in range(n):
            length = rng.randint(30, 120)
            handle.write(f">r{i}\n{''.join(rng.choice('ACDEFGHIKLMNPQRSTVWY') for _ in range(length))}\n")


def _peak_rss_mib(args, env=None) -> int:
    """Peak resident memory of one `obte` run, measured in a fresh wrapper process (RUSAGE_CHILDREN of a
    process that ran only this child is the child's own peak)."""
    wrapper = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)"
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper, sys.executable, "-m", "obte_cli", "-q", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


@pytest.mark.slow
def test_embed_peak_memory_does_not_grow_with_the_record_count(tmp_path):
    model = tmp_path / "micro"
    init = subprocess.run(
        [sys.executable, "-m", "obte_cli", "-q", "model", "init", "--preset", "micro", "-o", str(model)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert init.returncode == 0, init.stderr
    few, many = tmp_path / "few.fa", tmp_path / "many.fa"
    _fasta(few, 1_000)
    _fasta(many, 16_000)
    small = _peak_rss_mib(["embed", few, "-m", model, "-o", tmp_path / "few.npy"])
    large = _peak_rss_mib(["embed", many, "-m", model, "-o", tmp_path / "many.npy"])
    # 15,000 more records: ~15 KiB each, over 200 MiB, with the kernel cache on (measured); flat within the
    # noise of peak RSS (±40 MiB between identical runs here) with it off
    assert large - small < 80, f"peak RSS {small} MiB for 1,000 records, {large} MiB for 16,000"
