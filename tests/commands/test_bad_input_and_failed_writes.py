"""Issue #31 §4–§5 at the command line: input that was silently accepted, and failures that ended in a traceback,
are each one `error:` line with exit 1 (a usage error, exit 2, for an option value)."""

import gzip
import os
import re
import resource
import signal
import subprocess
import sys

import pytest
from conftest import DATA, REPO, obte, one_error_line

PROTEIN = "MKVLAAGIVWHDEKRLA"


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "micro"
    assert obte("model", "init", "--preset", "micro", "--context", "128", "-o", path).exit_code == 0
    return path


@pytest.fixture
def loop(tmp_path):
    """A symlink loop: two links naming each other."""
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    return tmp_path / "loop1"


def test_a_symlink_loop_as_input_is_one_line(tmp_path, micro, loop):
    (tmp_path / "p.fa").write_text(f">p\n{PROTEIN}\n")
    for command in (
        ["score", loop, "-m", micro],
        ["embed", loop, "-m", micro, "-o", tmp_path / "e.npy"],
        ["tokenize", "encode", loop],
        ["tokenize", "decode", loop],
        ["affinity", tmp_path / "p.fa", loop],
        ["affinity", "--complexes", loop],
    ):
        result = obte(*command)
        assert one_error_line(result) == f"error: {loop}: cannot read (Too many levels of symbolic links)", command


def test_model_init_on_a_full_disk_is_one_line(tmp_path, monkeypatch):
    """safetensors reports the OS error as a SafetensorError ending in '(os error 28)'; it was a traceback."""
    from safetensors import SafetensorError

    import obte_cli.engine.model.directory as directory

    def disk_full(tensors, filename, metadata=None):
        open(filename, "wb").close()  # what it leaves behind: an empty file, in the staging directory
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(directory, "save_file", disk_full)
    out = tmp_path / "m"
    result = obte("model", "init", "--preset", "micro", "-o", out)
    assert one_error_line(result) == f"error: {out / 'model.safetensors'}: cannot write: No space left on device"
    assert sorted(os.listdir(tmp_path)) == []  # neither the model nor its staging directory


def test_model_init_past_the_file_size_limit_is_one_line(tmp_path):
    """The real thing, in a process of its own: a 64 kB file size limit (SIGXFSZ ignored, as a shell's ulimit -f
    with a trap would) makes safetensors fail with EFBIG."""

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))

    out = tmp_path / "m"
    command = [sys.executable, "-m", "obte_cli", "model", "init", "--preset", "micro", "-o", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, preexec_fn=limited, cwd=REPO, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines() == [f"error: {out / 'model.safetensors'}: cannot write: File too large"]
    assert not out.exists()


@pytest.mark.parametrize("command", [["finetune", "affinity", "--method", "composition"], ["bench", "pronab"]])
def test_more_folds_than_proteins_says_how_many_are_possible(tmp_path, command):
    """It was a ValueError traceback from the fold planner."""
    wide = tmp_path / "wide"  # a context that holds every complex of the sample
    assert obte("model", "init", "--preset", "micro", "--context", "1024", "-o", wide).exit_code == 0
    model = ["--model", wide, "--epochs", "1"] if command[0] == "bench" else []
    data = DATA / "pronab_sample.tsv"
    result = obte("-q", *command, "--data", data, *model, "--folds", "20", "--out", tmp_path / "o")
    assert one_error_line(result) == (
        "error: --folds 20: the data have 12 proteins to test, and each test fold needs one, so at most 12 folds "
        "are possible"
    )


def test_pretrain_context_below_its_minimum_is_a_usage_error(tmp_path):
    """`pretrain --context 1` trained; `model init --context 1` made a model nothing fits in."""
    run = ["pretrain", "--tokens", tmp_path, "-o", tmp_path / "run"]
    for command in (run, ["model", "init", "-o", tmp_path / "m"]):
        for context in ("1", "15"):
            result = obte(*command, "--context", context)
            assert result.exit_code == 2 and "Traceback" not in result.output, result.output
            message = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stderr).split())  # without the box around it
            assert f"'--context': must be 0 (the default) or at least 16 tokens (got {context})" in message
    assert not (tmp_path / "run").exists() and not (tmp_path / "m").exists()


def test_tokenize_corpus_of_empty_shards_is_an_error(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    with gzip.open(shards / "a.tsv.gz", "wt"):
        pass
    (shards / "b.tsv.gz").write_bytes(b"")
    result = obte("tokenize", "corpus", shards / "a.tsv.gz", "-o", tmp_path / "t1")
    assert one_error_line(result) == f"error: {shards / 'a.tsv.gz'}: no sequences in this shard: nothing to tokenize"
    result = obte("tokenize", "corpus", shards, "-o", tmp_path / "t2")
    assert one_error_line(result, "no sequences in this shard nor in the 1 other shard(s)")
    assert not (tmp_path / "t1").exists() and not (tmp_path / "t2").exists()


def test_tokenize_decode_refuses_a_pad_inside_a_sequence(tmp_path):
    """It dropped the <pad> and wrote a shorter sequence; a pad between sequences (row padding) stays fine."""
    (tmp_path / "p.fa").write_text(f">p\n{PROTEIN}\n")
    encoded = obte("tokenize", "encode", tmp_path / "p.fa")
    ids = encoded.stdout.splitlines()[1].split("\t")[-1].split()
    padded = tmp_path / "padded.tsv"
    padded.write_text(f"record_id\ttoken_ids\nr1\t{' '.join(ids)} 0 0\nr2\t{' '.join(ids[:3] + ['0'] + ids[3:])}\n")
    line = one_error_line(obte("tokenize", "decode", padded))
    assert line == f"error: {padded}: line 3 ('r2'): token ids: <pad> (id 0) at position 4, inside a sequence"
    padded.write_text(f"record_id\ttoken_ids\nr1\t{' '.join(ids)} 0 0\n")
    decoded = obte("tokenize", "decode", padded)
    assert decoded.exit_code == 0 and decoded.stdout == f">r1\n{PROTEIN}\n"


def test_a_dna_record_given_as_the_protein_of_affinity_is_refused(tmp_path):
    (tmp_path / "p.fa").write_text(f">p1\n{PROTEIN}\n>d1\nACGTTGCAACGT\n")
    (tmp_path / "n.fa").write_text(">n1\nACGTACGTAC\n")
    line = one_error_line(obte("affinity", tmp_path / "p.fa", tmp_path / "n.fa"))
    assert line.startswith(f"error: {tmp_path / 'p.fa'}: record 2 ('d1'): looks like a nucleic acid, not a protein")


def test_contacts_labels_of_a_pdb_with_a_coordinate_abc_skips_it_naming_the_line(tmp_path):
    """gemmi read it as 0 and labelled contacts at 0.18 Å; `contacts labels` skips a bad structure with its reason."""
    lines = gzip.decompress((DATA / "structures" / "1W0T.pdb.gz").read_bytes()).decode().splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if line.startswith("ATOM"))
    lines[number] = lines[number][:30] + "     abc" + lines[number][38:]
    (tmp_path / "bad.pdb").write_text("".join(lines))
    result = obte("contacts", "labels", tmp_path / "bad.pdb", "-o", tmp_path / "labels.tsv")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"bad.pdb: line {number + 1}: coordinate x 'abc' is not a number" in result.stderr
    assert not (tmp_path / "labels.tsv").exists()
