"""Inputs that once ended in a traceback (issue #20 item 9) are one ``error:`` line and exit 1, and
``--on-unknown`` is offered, and suggested, by every command that encodes the user's sequences."""

import numpy as np
import pytest
import typer
from conftest import DATA, REPO, obte, one_error_line

from obte_cli.app import app
from obte_cli.commands.options import ON_UNKNOWN_HINT

EXAMPLES = REPO / "share" / "examples"


# ---- tokenize ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content", [b"\xff\xfe\x00\x01 not text", b"record_id\ttoken_ids\n\xff\xfe\t4 5\n"], ids=["binary", "binary-row"]
)
def test_decode_of_a_binary_file_is_one_line(tmp_path, content):
    path = tmp_path / "tokens.tsv"
    path.write_bytes(content)
    one_error_line(obte("tokenize", "decode", path), f"{path}: binary data", "not a text sequence file")


def test_decode_of_latin1_text_says_which_byte_and_what_to_do(tmp_path):
    path = tmp_path / "tokens.tsv"
    path.write_bytes("record_id\ttoken_ids\ncaf\u00e9\t4 5\n".encode("latin-1"))
    one_error_line(obte("tokenize", "decode", path), f"{path}: ", "byte 0xe9 is not UTF-8", "save it as UTF-8")


def test_stdin_given_twice_is_one_line():
    result = obte("tokenize", "encode", "-", "-", input=">a\nMKV\n")
    one_error_line(result, "'-' (standard input) is given more than once")
    assert result.stdout == ""


# ---- output directories filled in place ------------------------------------------------------------
def test_saturation_pointing_at_a_file_fails_before_any_work(tmp_path):
    target = tmp_path / "sat.txt"
    target.write_text("keep")
    motif, protein = EXAMPLES / "MA0139.1.jaspar", EXAMPLES / "ctcf.fa"
    result = obte("scan-jaspar", motif, "--protein", protein, "--saturation", target, "-o", "-")
    one_error_line(result, f"{target}: not a directory (--saturation names a directory")
    assert result.stdout == "" and target.read_text() == "keep"


@pytest.mark.parametrize(
    "args",
    [
        ["bench", "prep", DATA / "chloroplast_rna.gb", "--repeats", "1"],
        ["bench", "embed", DATA / "pronab_ligands.fa", "--repeats", "1", "--no-hf"],
    ],
    ids=["bench-prep", "bench-embed"],
)
def test_a_report_directory_that_is_a_file_fails_before_the_measurements(tmp_path, args):
    target = tmp_path / "report"
    target.write_text("keep")
    one_error_line(obte(*args, "-o", target), f"{target}: not a directory")
    assert target.read_text() == "keep"


# ---- contacts ---------------------------------------------------------------------------------------
def test_contacts_labels_with_a_missing_file_fails_instead_of_skipping_it(tmp_path):
    result = obte("contacts", "labels", EXAMPLES / "1AZP.pdb.gz", tmp_path / "missing.pdb", "-o", tmp_path / "l.tsv")
    one_error_line(result, f"{tmp_path / 'missing.pdb'}: no such file")
    assert not (tmp_path / "l.tsv").exists()


def test_contacts_predict_says_a_directory_is_one(tmp_path):
    one_error_line(obte("contacts", "predict", "--structure", tmp_path), f"{tmp_path}: is a directory")


@pytest.mark.parametrize("where", ["adir", "missing/o.cif"])
def test_a_bad_cif_out_fails_before_the_table_is_written(tmp_path, where):
    (tmp_path / "adir").mkdir()
    result = obte("contacts", "predict", "--structure", EXAMPLES / "1AZP.pdb.gz", "--cif-out", tmp_path / where)
    one_error_line(result, f"{tmp_path / where}: ")
    assert result.stdout == ""


def _labels(tmp_path, aa_of_third_row="V", na_types="DNA"):
    header = "pdb_id\tchain\tresnum\ticode\taa\tmodified\tmin_distance\tcontact_4\tcontact_6\tcontact_8"
    rows = [header + "\tna_chains\tna_types\tna_sequences"]
    for site in range(2):
        for i, aa in enumerate("MKVLAGHKR"):
            aa = aa_of_third_row if (site, i) == (1, 2) else aa
            rows.append(f"P{site}\tA\t{i + 1}\t\t{aa}\t0\t3.0\t{i % 2}\t{i % 2}\t1\tB\t{na_types}\tACGTACGT")
    path = tmp_path / "labels.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize(
    "aa, na_types, message",
    [
        ("MET", "DNA", "line 13 (site P1:A): aa must be one amino-acid letter (got 'MET')"),
        ("", "DNA", "line 13 (site P1:A): aa must be one amino-acid letter (got '')"),
        ("V", "DNA,DNA", "site P0:A: na_sequences and na_types must list the same number"),
    ],
)
def test_a_bad_aa_column_in_contact_labels_is_one_line(tmp_path, aa, na_types, message):
    """A three-letter or empty aa once made a protein whose length disagreed with its labels (IndexError)."""
    from obte_cli.engine.contacts.sites import read_contact_labels
    from obte_cli.engine.core.errors import InputError

    labels = _labels(tmp_path, aa, na_types)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_contact_labels(labels)
    result = obte("finetune", "contacts", "-l", labels, "-m", tmp_path / "no-model", "-o", tmp_path / "out")
    one_error_line(result, f"{labels}: ", message)


def test_finetune_contacts_reads_x_as_unk_unless_told_otherwise(tmp_path):
    labels = _labels(tmp_path, "X")
    result = obte("finetune", "contacts", "-l", labels, "-o", tmp_path / "out", "--on-unknown", "error")
    one_error_line(result, f"{labels}: record 'P1:A': non-standard protein letter 'X' at position 3", ON_UNKNOWN_HINT)


def test_predict_reads_a_protein_longer_than_the_context_in_windows(tmp_path):
    from obte_cli.engine.contacts.prediction import protein_windows
    from obte_cli.engine.contacts.predictor import load_contact_predictor
    from obte_cli.engine.contacts.sites import ContactSite
    from obte_cli.engine.core.resources import default_contacts_model_dir

    rng = np.random.default_rng(0)
    protein = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), 1100))
    (tmp_path / "p.fa").write_text(f">long\n{protein}\n")
    (tmp_path / "na.fa").write_text(">d\nACGTACGTAC\n")
    result = obte("contacts", "predict", "--protein", tmp_path / "p.fa", "--na", tmp_path / "na.fa", "--device", "cpu")
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()[1:]]
    assert [r[1] for r in rows] == [str(i) for i in range(1, 1101)] and all(r[3] != "NA" for r in rows)
    assert "1 protein(s) longer than the model's context" in result.stderr and "long" in result.stderr
    # the residues only the first window holds are predicted as that window alone predicts them
    predictor = load_contact_predictor(default_contacts_model_dir())
    window, starts = protein_windows(predictor, ContactSite("long", protein, ["ACGTACGTAC"], ["DNA"], []))
    assert len(starts) > 1 and starts[0] == 0 and starts[-1] + window == 1100
    (tmp_path / "first.fa").write_text(f">first\n{protein[:window]}\n")
    first_window = tmp_path / "first.fa"
    alone = obte("contacts", "predict", "--protein", first_window, "--na", tmp_path / "na.fa", "--device", "cpu")
    first = [line.split("\t") for line in alone.stdout.strip().splitlines()[1:]]
    assert [r[3:6] for r in first[: starts[1]]] == [r[3:6] for r in rows[: starts[1]]]


def test_predict_from_fasta_reads_unknown_letters_as_unk_unless_told_otherwise(tmp_path):
    (tmp_path / "p.fa").write_text(">x\nMKVXLAAGKRR\n")
    (tmp_path / "na.fa").write_text(">d\nACGTNACGTAC\n")
    args = ["contacts", "predict", "--protein", tmp_path / "p.fa", "--na", tmp_path / "na.fa", "--device", "cpu"]
    strict = obte(*args, "--on-unknown", "error")
    one_error_line(strict, "na.fa: record 1 ('d'): 'N' at position 5 is not a nucleotide", ON_UNKNOWN_HINT)
    result = obte(*args)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 1 + 11 and "\tNA" not in result.stdout
    assert "2 non-standard letters read as <unk>: X ×1, N ×1" in result.stderr


# ---- --on-unknown --------------------------------------------------------------------------------------
def _leaves(group, path=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _leaves(command, (*path, name))
        else:
            yield (*path, name), command


ENCODING_COMMANDS = [
    ("tokenize", "encode"),
    ("embed", "sequences"),
    ("score",),
    ("finetune", "classify"),
    ("finetune", "residue"),
    ("finetune", "affinity"),
    ("finetune", "contacts"),
    ("affinity",),
    ("contacts", "predict"),
    ("scan-jaspar",),
    ("predict",),
]


def test_every_command_that_encodes_user_sequences_has_on_unknown_and_suggests_it():
    with_option = {
        path: command
        for path, command in _leaves(typer.main.get_command(app))
        if any("--on-unknown" in p.opts for p in command.params)
    }
    assert sorted(with_option) == sorted(ENCODING_COMMANDS)
    for path, command in with_option.items():
        assert getattr(command.callback, "suggests_on_unknown", False), (
            f"{path}: not decorated with suggests_on_unknown"
        )


def test_the_hint_appears_only_where_the_option_exists(tmp_path):
    fasta = tmp_path / "x.fa"
    fasta.write_text(">p1\nMKVLA\n>p2\nMKBZL\n")
    one_error_line(
        obte("tokenize", "encode", fasta), f"{fasta}: record 'p2': non-standard protein letter 'B'", ON_UNKNOWN_HINT
    )
    no_option = one_error_line(obte("bench", "embed", fasta, "--repeats", "1", "--no-hf"), "letter 'B' at position 3")
    assert "--on-unknown" not in no_option


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    path = tmp_path_factory.mktemp("unk") / "micro"
    assert obte("model", "init", "--preset", "micro", "--context", "128", "-o", path, "--seed", "1").exit_code == 0
    return path


def test_gue_dna_with_n_trains_with_unk_and_the_model_reads_n_again(tmp_path, micro):
    """GUE DNA holds N: refused with a hint, trained with --on-unknown unk, and the trained model embeds and
    scores such sequences (its tokenizer's <unk> id is inside its embedding table)."""
    rng = np.random.default_rng(0)
    splits = {}
    for name, n in (("train", 16), ("dev", 6), ("test", 6)):
        lines = ["sequence,label"]
        for i in range(n):
            seq = "".join(rng.choice(list("ACGT"), 30))
            lines.append(f"{seq[:7] + 'N' + seq[8:] if i % 3 == 0 else seq},{i % 2}")
        splits[name] = tmp_path / f"{name}.csv"
        splits[name].write_text("\n".join(lines) + "\n")
    args = ["finetune", "classify", "--train", splits["train"], "--dev", splits["dev"], "--test", splits["test"]]
    args += ["-m", micro, "-o", tmp_path / "run", "--epochs", "1", "--device", "cpu"]
    one_error_line(
        obte(*args), f"{splits['train']}: record 'train1': non-standard DNA letter 'N' at position 8", ON_UNKNOWN_HINT
    )
    trained = obte(*args, "--on-unknown", "unk")
    assert trained.exit_code == 0, trained.output
    fasta = tmp_path / "n.fa"
    fasta.write_text(">d\nACGTNNACGTTA\n>p\nMKVXLLAW\n")
    model = tmp_path / "run" / "model"
    strict = obte("embed", fasta, "-m", model, "-o", "-", "--device", "cpu", "--on-unknown", "error")
    one_error_line(strict, "letter 'N' at position 5", ON_UNKNOWN_HINT)
    out = tmp_path / "e.safetensors"
    embedded = obte(
        "embed", fasta, "-m", model, "-o", out, "--pool", "per-token", "--on-unknown", "unk", "--device", "cpu"
    )
    assert embedded.exit_code == 0, embedded.output
    from obte_cli.engine.embedding.io import read_embeddings

    ids, vectors, offsets = read_embeddings(out)
    assert ids == ["d", "p"] and offsets.tolist() == [0, 12, 20] and np.isfinite(vectors).all()
    scored = obte("score", fasta, "-m", model, "--on-unknown", "unk", "--device", "cpu")
    assert scored.exit_code == 0, scored.output
    assert [line.split("\t")[2] for line in scored.stdout.strip().splitlines()[1:]] == ["12", "8"]


def test_finetune_affinity_keeps_nonstandard_rows_with_unk(tmp_path, micro):
    pairs = tmp_path / "pairs.tsv"
    rows = ["protein\tnucleic_acid\tdG", "MKXVLAGG\tACGTACGT\t-9", "MKVLAGGR\tACNGTACG\t-8", "MRRKLAGG\tACGTTT\t-7"]
    pairs.write_text("\n".join(rows) + "\n")
    args = ["finetune", "affinity", "-d", pairs, "-m", micro, "--folds", "0", "--epochs", "1", "--device", "cpu"]
    default = obte(*args, "-o", tmp_path / "a")
    assert default.exit_code == 0, default.output
    assert "1 complexes of 1 proteins (dropped: nonstandard_protein 1, nonstandard_nucleic_acid 1)" in default.stderr
    kept = obte(*args, "-o", tmp_path / "b", "--on-unknown", "unk")
    assert kept.exit_code == 0, kept.output
    assert "3 complexes of 3 proteins (dropped: none)" in kept.stderr


# ---- tables: one reader, one kind of error (a review found tracebacks and a bare "Aborted.") ---------------
@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "not a readable TSV"), (b"matrix_id\tuniprot\nMA0139.1\tP49711\xe9\n", "not a readable TSV")],
    ids=["empty", "latin-1"],
)
def test_a_bad_accessions_table_is_one_line(tmp_path, content, message):
    accessions = tmp_path / "matrices.tsv"
    accessions.write_bytes(content)
    args = ("scan-jaspar", EXAMPLES / "MA0139.1.jaspar", "--protein", EXAMPLES / "ctcf.fa", "--accessions", accessions)
    one_error_line(obte(*args), f"{accessions}: {message}")


def test_a_truncated_gzip_table_is_one_line_not_aborted(tmp_path):
    import gzip

    complexes = tmp_path / "complexes.tsv.gz"
    complexes.write_bytes(gzip.compress(b"protein\tnucleic_acid\n" + b"MKVLAAGIVALLA\tACGTACGTAC\n" * 200)[:60])
    one_error_line(obte("affinity", "--complexes", complexes), f"{complexes}: corrupt or truncated compressed file")


def test_a_directory_as_affinity_data_is_named_a_directory(tmp_path):
    one_error_line(obte("bench", "pronab", "--data", tmp_path, "--out", tmp_path / "b"), "is a directory")


def test_bench_prep_says_a_directory_is_one(tmp_path):
    one_error_line(obte("bench", "prep", tmp_path), f"{tmp_path}: is a directory")


def test_tokenize_encode_error_in_the_first_record_leaves_stdout_empty(tmp_path):
    fasta = tmp_path / "stop.fa"
    fasta.write_text(">p1\nMKVLAAGG*\n")
    result = obte("tokenize", "encode", fasta)
    one_error_line(result, f"{fasta}: record 'p1'")
    assert result.stdout == ""
