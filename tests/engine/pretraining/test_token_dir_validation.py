"""Broken token directories (`obte tokenize corpus`): one ModelFormatError naming the file or shard."""

import shutil

import numpy as np
import pytest
from conftest import DATA, edit_json, obte, refused

from obte_cli.engine.pretraining.token_files import MANIFEST, open_corpus


@pytest.fixture(scope="module")
def token_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokens")
    assert obte("prep", DATA / "pronab_ligands.fa", "-o", root / "prep").exit_code == 0
    result = obte("tokenize", "corpus", root / "prep", "-o", root / "tokens")
    assert result.exit_code == 0, result.output
    return root / "tokens"


@pytest.fixture
def tokens(token_dir, tmp_path):
    path = tmp_path / "tokens"
    shutil.copytree(token_dir, path)
    return path


def ids_file(path):
    [file] = path.glob("*.ids.bin")
    return file


def test_a_good_directory_opens(tokens):
    corpus = open_corpus(tokens)
    assert sum(len(s) for s in corpus.shards) == 6


@pytest.mark.parametrize("bad_id", [49, 60, 65535])
def test_an_id_outside_the_vocabulary_names_the_shard_and_token(tokens, bad_id):
    ids = np.fromfile(ids_file(tokens), dtype="<u2")
    ids[7] = bad_id
    ids.tofile(ids_file(tokens))
    line = refused(open_corpus, tokens, rf"token 7 has id {bad_id}, outside the tokenizer's 49 ids")
    assert line.startswith(str(ids_file(tokens)))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m.__setitem__("dtype", "<i8"), r"dtype must be one of <u2, <u4 \(got '<i8'\)"),
        (lambda m: m.__setitem__("dtype", 2), r"dtype must be one of <u2, <u4 \(got 2\)"),
        (lambda m: m.__setitem__("vocab_size", 4096), r"vocab_size is 4096 but the directory's tokenizer has 49 ids"),
        (lambda m: m.__setitem__("vocab_size", "49"), r"vocab_size must be a positive integer"),
        (lambda m: m.__setitem__("shards", {}), r"shards must be a list \(got an object\)"),
        (lambda m: m["shards"][0].__setitem__("name", "../x"), r"shards\[0\]\.name must be a plain file name"),
        (lambda m: m["shards"][0].__setitem__("name", "gone"), r"gone\.ids\.bin: missing \(shard gone of"),
        (lambda m: m["shards"][0].__setitem__("sequences", -1), r"shards\[0\]\.sequences must be a non-negative"),
        (lambda m: m["shards"][0].__setitem__("sequences", 5), r"files of shard .* disagree with tokens\.json"),
        (lambda m: m.__setitem__("molecule_types", ["protein", "XNA"]), r"molecule_types\[1\] must be one of"),
        (lambda m: m.__setitem__("molecule_types", ["protein"]), r"molecule type index outside tokens\.json"),
    ],
)
def test_bad_manifest_fields_are_named(tokens, change, message):
    edit_json(tokens / MANIFEST, change)
    refused(open_corpus, tokens, message)


def test_a_manifest_that_is_not_json(tokens):
    (tokens / MANIFEST).write_text("{not json")
    refused(open_corpus, tokens, r"tokens\.json: invalid JSON")


def test_offsets_that_go_backwards(tokens):
    [file] = tokens.glob("*.offsets.bin")
    offsets = np.fromfile(file, dtype="<i8")
    offsets[2], offsets[3] = offsets[3], offsets[2]
    offsets.tofile(file)
    refused(open_corpus, tokens, r"disagree with tokens\.json")


def test_an_ids_file_cut_mid_id(tokens):
    ids_file(tokens).write_bytes(ids_file(tokens).read_bytes()[:-1])
    refused(open_corpus, tokens, r"disagree with tokens\.json")
