"""Broken tokenizer directories: each is one ModelFormatError naming the file (and the field)."""

import shutil

import pytest
from conftest import edit_json, refused

from obte_cli.engine.core.errors import ModelFormatError
from obte_cli.engine.core.resources import bundled_tokenizer_dir
from obte_cli.engine.tokenizers.base import TOKENIZER_FILE
from obte_cli.engine.tokenizers.loading import load_tokenizer

MIXED = "mixed_bpe.model"


@pytest.fixture
def bpe_dir(tmp_path):
    """A copy of the bundled BPE tokenizer (tokenizer.json + mixed_bpe.model)."""
    path = tmp_path / "bpe"
    shutil.copytree(bundled_tokenizer_dir("omnibiote-mixed"), path)
    return path


@pytest.fixture
def residue_dir(tmp_path):
    path = tmp_path / "residue"
    shutil.copytree(bundled_tokenizer_dir("residue"), path)
    return path


def test_the_copies_load(bpe_dir, residue_dir):
    assert load_tokenizer(bpe_dir).vocab_size == 65536 and load_tokenizer(residue_dir).vocab_size == 49


def test_a_listed_file_that_is_missing_is_named(bpe_dir):
    (bpe_dir / MIXED).unlink()
    line = refused(load_tokenizer, bpe_dir, "tokenizer file listed in tokenizer.json is missing")
    assert line.startswith(str(bpe_dir / MIXED))


@pytest.mark.parametrize("keep_checksum", [True, False])
def test_a_corrupt_sentencepiece_model_is_named(bpe_dir, keep_checksum):
    (bpe_dir / MIXED).write_bytes(b"not a protobuf" * 10)
    if not keep_checksum:
        edit_json(bpe_dir / TOKENIZER_FILE, lambda c: c["components"][0].pop("sha256"))
    message = "checksum differs" if keep_checksum else "not a readable sentencepiece model"
    assert refused(load_tokenizer, bpe_dir, message).startswith(str(bpe_dir / MIXED))


def test_a_corrupt_model_file_given_directly_is_named(tmp_path):
    path = tmp_path / "broken.model"
    path.write_bytes(b"\x00\x01garbage")
    with pytest.raises(ModelFormatError, match=rf"{path}: not a readable sentencepiece model"):
        load_tokenizer(path)


def test_a_model_file_replaced_by_one_of_another_size(bpe_dir):
    edit_json(
        bpe_dir / TOKENIZER_FILE,
        lambda c: [c["components"][0].pop("sha256"), c["components"][0].__setitem__("pieces", 4096)],
    )
    refused(load_tokenizer, bpe_dir, r"mixed_bpe\.model: has 65536 pieces, tokenizer\.json says 4096")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["components"][0].pop("file"), r"components\[0\]\.file is missing"),
        (lambda c: c["components"][0].__setitem__("file", 3), r"components\[0\]\.file must be a non-empty string"),
        (lambda c: c["components"][0].__setitem__("file", "../x.model"), r"components\[0\]\.file must be a plain file"),
        (lambda c: c["components"][0].__setitem__("offset", "x"), r"components\[0\]\.offset must be a non-negative"),
        (lambda c: c["components"][0].__setitem__("offset", -5), r"components\[0\]\.offset must be a non-negative"),
        (lambda c: c["components"][0].__setitem__("modalities", ["rna"]), r"modalities\[0\] must be one of protein"),
        (
            lambda c: c["components"][0].__setitem__("modalities", []),
            r"components\[0\]\.modalities must be a non-empty",
        ),
        (lambda c: c["components"][0]["modalities"].append("protein"), r"modalities lists a modality twice"),
        (lambda c: c["components"][0].__setitem__("modalities", ["protein"]), r"no sentencepiece model serves nucleic"),
        (lambda c: c["components"][0].__setitem__("sha256", 5), r"components\[0\]\.sha256 must be a non-empty string"),
        (lambda c: c.__setitem__("components", 5), r"components must be a non-empty list \(got a number\)"),
        (lambda c: c.__setitem__("components", []), r"components must be a non-empty list \(got an empty list\)"),
        (lambda c: c.__setitem__("components", ["x"]), r"components\[0\] must be a JSON object \(got a string\)"),
        (lambda c: c.__setitem__("special_pieces", {"pad": "<s>"}), r"special_pieces\.mask is missing"),
        (lambda c: c["special_pieces"].__setitem__("eos", 7), r"special_pieces\.eos must be a non-empty string"),
        (lambda c: c["special_pieces"].__setitem__("eos", "<nope>"), r"no piece '<nope>' in this sentencepiece model"),
        (lambda c: c.__setitem__("kind", "wordpiece"), r"unknown tokenizer kind 'wordpiece'"),
    ],
)
def test_bad_sentencepiece_fields_are_named(bpe_dir, change, message):
    edit_json(bpe_dir / TOKENIZER_FILE, change)
    line = refused(load_tokenizer, bpe_dir, message)
    assert line.startswith(str(bpe_dir))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["specials"].__setitem__("unk", -1), r"specials\.unk must be a non-negative integer \(got -1\)"),
        (lambda c: c["specials"].__setitem__("pad", "x"), r"specials\.pad must be a non-negative integer \(got 'x'\)"),
        (lambda c: c["protein"].__setitem__("A", True), r"protein\.A must be a non-negative integer \(got True\)"),
        (lambda c: c["protein"].__setitem__("A", 30.5), r"protein\.A must be a non-negative integer \(got 30\.5\)"),
        (lambda c: c["nucleic"].__setitem__("A", None), r"nucleic\.A must be a non-negative integer \(got None\)"),
        (lambda c: c["specials"].pop("eos"), r"specials\.eos is missing"),
        (lambda c: c.__setitem__("specials", [1]), r"specials must be a JSON object \(got a list\)"),
        (lambda c: c.pop("protein"), r"tokenizer\.json: protein is missing"),
        (lambda c: c["protein"].__setitem__("AB", 60), r"protein keys must be single letters \(got 'AB'\)"),
        (lambda c: c["protein"].__setitem__("a", 60), r"protein lists a letter twice"),
        (lambda c: c["tags"].__setitem__("blah", 60), r"tags: unknown molecule type 'blah'"),
        (lambda c: c["protein"].__setitem__("W", 29), r"two entries share an id"),
    ],
)
def test_bad_residue_fields_are_named(residue_dir, change, message):
    edit_json(residue_dir / TOKENIZER_FILE, change)
    assert refused(load_tokenizer, residue_dir, message).startswith(str(residue_dir / TOKENIZER_FILE))
