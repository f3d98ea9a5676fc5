"""`obte tokenize train` / `obte tokenize corpus`, token files and context packing, on real sequences."""

import gzip

import numpy as np
import pytest
from conftest import DATA, obte
from hypothesis import given, settings
from hypothesis import strategies as st

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.pretraining.prep import read_shard
from obte_cli.engine.pretraining.token_files import (
    corpus_sequences,
    open_corpus,
    pack_stream,
)
from obte_cli.engine.tokenizers.base import Segment
from obte_cli.engine.tokenizers.loading import load_tokenizer


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory, protein_fasta):
    out = tmp_path_factory.mktemp("corpus") / "prep"
    result = obte("prep", DATA / "chloroplast_rna.gb", DATA / "pronab_ligands.fa", protein_fasta, "-o", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def trained(corpus_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "bpe"
    result = obte("tokenize", "train", corpus_dir, "-o", out, "--vocab-size", "256", "--seed", "1")
    assert result.exit_code == 0, result.output
    return out


def test_trained_tokenizer_has_disjoint_ranges_and_round_trips(trained, corpus_dir):
    tok = load_tokenizer(trained)
    assert tok.vocab_size == 512 and not tok.shares_ids_across_modalities
    assert set(tok.residue_ids("nucleic").tolist()) <= set(range(256))
    assert set(tok.residue_ids("protein").tolist()) <= set(range(256, 512))
    records = [(m, s) for shard in sorted((corpus_dir / "shards").glob("*.tsv.gz")) for m, s in read_shard(shard)]
    assert {m for m, _ in records} >= {"protein", "tRNA", "rRNA", "RNA", "DNA"}
    for mol, seq in records[:80]:
        enc = tok.encode_one([Segment(seq, mol)])
        assert len(enc) < len(seq) + 2 or len(seq) < 4  # BPE merges real sequences
        [decoded] = tok.decode(enc.ids)
        assert decoded.sequence.replace("U", "T") == seq and decoded.molecule == mol


def test_training_is_reproducible(corpus_dir, trained, tmp_path):
    again = tmp_path / "again"
    assert obte("tokenize", "train", corpus_dir, "-o", again, "--vocab-size", "256", "--seed", "1").exit_code == 0
    for name in ("nucleic_bpe.model", "protein_bpe.model"):
        assert (again / name).read_bytes() == (trained / name).read_bytes()


def test_too_large_vocabulary_for_the_sample_is_a_one_line_error(corpus_dir, tmp_path):
    result = obte("tokenize", "train", corpus_dir, "-o", tmp_path / "x", "--vocab-size", "4096")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: nucleic tokenizer: Vocabulary size too high")


def test_corpus_token_files_memory_map_and_decode_to_the_shards(corpus_dir, trained, tmp_path):
    out = tmp_path / "tokens"
    result = obte("tokenize", "corpus", corpus_dir, "-t", trained, "-o", out)
    assert result.exit_code == 0, result.output
    corpus = open_corpus(out)
    tok = corpus.tokenizer
    assert corpus.manifest["dtype"] == "<u2"
    assert isinstance(corpus.shards[0].ids, np.memmap)
    shards = sorted((corpus_dir / "shards").glob("*.tsv.gz"))
    assert [s.name for s in corpus.shards] == [p.name.removesuffix(".tsv.gz") for p in shards]
    for shard, path in zip(corpus.shards, shards):
        expected = list(read_shard(path))
        assert len(shard) == len(expected)
        for i, (mol, seq) in enumerate(expected):
            [decoded] = tok.decode(shard.sequence(i))
            assert decoded.sequence.replace("U", "T") == seq and corpus.molecule_type(shard, i) == mol
    total = sum(int(s.offsets[-1]) for s in corpus.shards)
    assert (
        total
        == corpus.manifest["tokens"]
        == int(result.stdout.split()[-1])
        + sum(int(line.split("\t")[2]) for line in result.stdout.strip().splitlines()[1:-1])
    )


def test_truncated_token_file_is_detected(corpus_dir, trained, tmp_path):
    out = tmp_path / "tokens"
    assert obte("tokenize", "corpus", corpus_dir, "-t", "residue", "-o", out).exit_code == 0
    victim = sorted(out.glob("*.ids.bin"))[0]
    victim.write_bytes(victim.read_bytes()[:-4])
    with pytest.raises(Exception, match="disagree with tokens.json"):
        open_corpus(out)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=30), st.integers(1, 32))
def test_packing_splits_only_at_marked_boundaries(lengths, context):
    sequences = []
    next_id = 10
    for n in lengths:
        sequences.append(np.arange(next_id, next_id + n))
        next_id += n
    rows = list(pack_stream(sequences, context, pad_id=0))
    assert all(len(r.ids) == context for r in rows)
    assert all((r.doc_ids >= 0).all() for r in rows[:-1])  # only the last row may be padded
    flat = np.concatenate([r.ids[r.doc_ids >= 0] for r in rows])
    assert np.array_equal(flat, np.concatenate(sequences))  # nothing lost, reordered or duplicated
    owner = np.repeat(np.arange(len(sequences)), lengths)
    cursor = 0
    for r in rows:
        docs = r.doc_ids[r.doc_ids >= 0]
        assert (np.diff(docs) >= 0).all()
        seq_of_token = owner[cursor : cursor + len(docs)]
        # a doc id change wherever the sequence changes: no two sequences share a piece
        for d in np.unique(docs):
            assert len(np.unique(seq_of_token[docs == d])) == 1
        cursor += len(docs)


def test_ranks_split_sequences_disjointly(corpus_dir, tmp_path):
    out = tmp_path / "tokens"
    assert obte("tokenize", "corpus", corpus_dir, "-o", out).exit_code == 0
    corpus = open_corpus(out)
    whole = [tuple(s) for s in corpus_sequences(corpus)]
    parts = [[tuple(s) for s in corpus_sequences(corpus, r, 2)] for r in (0, 1)]
    assert sorted(parts[0] + parts[1]) == sorted(whole) and abs(len(parts[0]) - len(parts[1])) <= 1


# ---- shards that `obte prep` did not write: one line naming shard and line, never a traceback ----------
_GOOD_SHARD = gzip.compress(b"protein\tMKVLAAGG\nDNA\tACGTACGT\n" * 200)


@pytest.mark.parametrize(
    "content, message",
    [
        (_GOOD_SHARD[: len(_GOOD_SHARD) // 2], "corrupt or truncated gzip stream"),  # printed only "Aborted."
        (gzip.compress(b"protein\tMKV\n\xff\xfe\n"), "binary data"),
        (gzip.compress(b"protein\tMKV\nplasmid\tACGT\n"), "line 2: unknown molecule type 'plasmid'"),
        (gzip.compress(b"protein\tMKV\nno tab here\n"), "line 2: no tab between molecule type and sequence"),
        (gzip.compress(b"DNA\t\n"), "line 1: empty sequence"),
        (gzip.compress(b"DNA\tacgu\n"), "line 1: letters outside the canonical alphabet"),
    ],
    ids=["truncated", "binary", "type", "no-tab", "empty", "letters"],
)
@pytest.mark.parametrize("command", [["train", "--vocab-size", "64"], ["corpus"]], ids=["train", "corpus"])
def test_a_malformed_shard_is_one_line_error(tmp_path, content, message, command):
    shard = tmp_path / "bad.tsv.gz"
    shard.write_bytes(content)
    with pytest.raises(InputError, match=message):
        list(read_shard(shard))
    result = obte("tokenize", command[0], shard, "-o", tmp_path / "out", *command[1:])
    assert result.exit_code == 1 and "Traceback" not in result.output and "Aborted" not in result.output
    assert result.stderr.startswith(f"error: {shard}: ") and message in result.stderr
    assert result.stderr.strip().count("\n") == 0 and not (tmp_path / "out").exists()
