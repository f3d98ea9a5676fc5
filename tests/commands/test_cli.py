"""End-to-end tests of the command line on real sequences."""

import gzip
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, obte

from obte_cli.app import app
from obte_cli.engine.bio.seqio import read_fasta


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny"
    result = obte("model", "init", "--preset", "tiny", "-o", path, "--seed", "1")
    assert result.exit_code == 0, result.output
    return path


def _leaf_commands(group, path=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _leaf_commands(command, (*path, name))
        else:
            yield (*path, name)


def test_help_lists_working_commands_and_every_command_has_an_example():
    import typer

    result = obte("--help")
    assert result.exit_code == 0
    root = typer.main.get_command(app)
    for name in root.commands:
        assert name in result.stdout
    leaves = list(_leaf_commands(root))
    assert ("affinity",) in leaves and ("finetune", "affinity") in leaves and ("embed", "probe-joint") in leaves
    for command in leaves:
        help_text = obte(*command, "--help").stdout
        assert "Example" in help_text, command


def test_version():
    assert obte("--version").stdout.startswith("obte 0.")


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "obte_cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("obte ")


def test_model_init_and_info(tiny_model):
    result = obte("model", "info", tiny_model)
    assert result.exit_code == 0
    info = dict(line.split("\t") for line in result.stdout.strip().split("\n")[1:])
    assert info["preset"] == "tiny" and info["width"] == "256" and info["tokenizer"] == "residue"
    assert info["non_embedding_parameters"] == "3148032"


def test_model_init_refuses_to_overwrite(tiny_model):
    result = obte("model", "init", "-o", tiny_model)
    assert result.exit_code == 1 and "already exists" in result.stderr


def test_model_init_reshapes_a_preset(tmp_path):
    from obte_cli.engine.model.directory import load_model

    result = obte("model", "init", "--preset", "tiny", "--layers", "6", "--width", "384", "--heads", "12",
                  "--context", "128", "-o", tmp_path / "deep")  # fmt: skip
    assert result.exit_code == 0, result.output
    config = load_model(tmp_path / "deep").model.config
    assert (config.width, config.n_layers, config.n_heads, config.max_positions) == (384, 6, 12, 128)
    assert config.mlp_ratio == 4 and config.attn_mult == 8.0  # the rest is the preset's
    assert "width 384, 6 layers, 12 heads" in result.stderr
    for shape, message in (
        (["--width", "300"], "width 300 is not divisible by 8"),
        (["--heads", "256"], "even head size"),
    ):
        bad = obte("model", "init", "--preset", "tiny", *shape, "-o", tmp_path / "bad")
        assert bad.exit_code == 2 and message in bad.stderr and "Traceback" not in bad.stderr  # a usage error
        assert not (tmp_path / "bad").exists()


def test_bpe_model_init(tmp_path):
    result = obte("model", "init", "-o", tmp_path / "bpe", "-t", "omnibiote-mixed", "--context", "512")
    assert result.exit_code == 0, result.output
    info = obte("model", "info", tmp_path / "bpe").stdout
    assert "vocab_size\t65536" in info and "max_positions\t512" in info


def test_encode_decode_round_trip_on_real_proteins(tmp_path, protein_fasta, tiny_model):
    # the real proteins, plus one with the letters UniProt also uses (selenocysteine U, pyrrolysine O, B, Z, X)
    fasta = tmp_path / "proteins.fa"
    fasta.write_text(Path(protein_fasta).read_text() + ">nonstandard\nMKBZUXOACD\n")
    tokens = tmp_path / "tokens.tsv"
    result = obte("tokenize", "encode", fasta, "-t", tiny_model, "--spans", "--on-unknown", "unk", "-o", tokens)
    assert result.exit_code == 0, result.output
    rows = tokens.read_text().strip().split("\n")
    assert rows[0].split("\t") == ["record_id", "molecule_type", "n_residues", "n_tokens", "token_ids", "token_spans"]
    assert len(rows) == 307
    back = tmp_path / "back.fa"
    assert obte("tokenize", "decode", tokens, "-t", tiny_model, "-o", back).exit_code == 0
    originals = list(read_fasta(fasta))
    decoded = list(read_fasta(back))
    assert [r.id for r in decoded] == [r.id for r in originals]
    standard = set("ACDEFGHIKLMNPQRSTVWY")
    expected = ["".join(c if c in standard else "X" for c in r.sequence.upper()) for r in originals]
    assert [r.sequence for r in decoded] == expected
    assert decoded[-1].sequence == "MKXXXXXACD"


def test_bpe_round_trip_through_stdin(pronab):
    fasta = "".join(
        f">{acc}\n{entry['Sequence']}\n>{acc}_na\n{entry['binding data'][0][0]}\n"
        for acc, entry in list(pronab.items())[:20]
        if set(entry["Sequence"]) <= set("ACDEFGHIKLMNPQRSTVWY") and entry["binding data"][0][0]
    )
    encoded = obte("tokenize", "encode", "-", "-t", "omnibiote-mixed", "--pieces", input=fasta)
    assert encoded.exit_code == 0, encoded.output
    assert "\tDNA\t" in encoded.stdout and "\tprotein\t" in encoded.stdout
    decoded = obte("tokenize", "decode", "-", "-t", "omnibiote-mixed", input=encoded.stdout)
    assert decoded.exit_code == 0
    assert decoded.stdout.replace("\n", "") == fasta.replace("\n", "")


def test_gzip_input(tmp_path, protein_fasta):
    packed = tmp_path / "seqs.fa.gz"
    packed.write_bytes(gzip.compress(protein_fasta.read_bytes()))
    result = obte("tokenize", "encode", packed, "--on-unknown", "unk")
    assert result.exit_code == 0 and len(result.stdout.strip().split("\n")) == 306


@pytest.mark.parametrize(
    "args, content, message",
    [
        ((), b"", "no FASTA records"),
        ((), b">p1\nMKVLA\n>p2\nMKBZL\n", "record 'p2': non-standard protein letter 'B' at position 3"),
        (("-t", "nope"), b">p1\nACGT\n", "no such tokenizer"),
    ],
)
def test_bad_input_is_one_line_exit_1_and_no_output_file(tmp_path, args, content, message):
    path = tmp_path / "in.fa"
    path.write_bytes(content)
    out = tmp_path / "out.tsv"
    result = obte("tokenize", "encode", path, *args, "-o", out)
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.output
    assert not out.exists() and not list(tmp_path.glob(".out.tsv*"))  # nothing half-written


def test_missing_input_file_and_model_dir(tmp_path):
    result = obte("tokenize", "encode", tmp_path / "missing.fa")
    assert result.exit_code == 1 and "missing.fa: no such file" in result.stderr
    result = obte("model", "info", tmp_path)
    assert result.exit_code == 1 and "no config.json" in result.stderr


def test_decode_rejects_malformed_tsv():
    result = obte("tokenize", "decode", "-", input="id\tids\n1\t2\n")
    assert result.exit_code == 1 and "record_id and token_ids" in result.stderr
    result = obte("tokenize", "decode", "-", input="record_id\ttoken_ids\nx\t4 39 zz 2\n")
    assert result.exit_code == 1 and "line 2 ('x'): token_ids must be integers" in result.stderr


def test_usage_errors_exit_2(tmp_path):
    assert obte("model", "init").exit_code == 2  # missing --out
    assert obte("no-such-command").exit_code == 2
    path = tmp_path / "in.fa"
    path.write_text(">p1\nACGT\n")
    result = obte("tokenize", "encode", path, "--on-unknown", "drop", "-o", tmp_path / "out.tsv")
    assert result.exit_code == 2 and "'error'" in result.stderr and "'unk'" in result.stderr
    assert not (tmp_path / "out.tsv").exists()


def test_readme_test_command_is_what_ci_runs():

    repo = REPO
    ci_command = [line for line in (repo / ".ci" / "run").read_text().splitlines() if "pytest" in line][0].strip()
    assert f"\n{ci_command}\n" in (repo / "README.md").read_text()
