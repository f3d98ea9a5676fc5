"""The token layouts `obte bench throughput` compares: the same real tokens for obte (packed) and HF (padded)."""

from __future__ import annotations

import gzip

import pytest
import torch

from obte_cli.engine.bench.throughput import full_rows, packed_rows, read_lengths
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.resources import bench_file
from obte_cli.engine.model.encoder import positions_from_doc_ids


def test_full_rows_give_both_implementations_the_same_tensors():
    work = full_rows(vocab=50, rows=3, context=16, seed=0)
    assert work.ids.shape == (3, 16) and work.real_tokens == 48 and work.sequences == 3
    assert torch.equal(work.ids, work.hf_ids) and torch.equal(work.labels, work.hf_labels)
    assert bool((work.doc_ids == 0).all()) and bool((work.hf_mask == 1).all())
    masked = work.labels != -100
    assert bool((work.ids[masked] == 1).all()) and bool((work.labels[masked] >= 4).all())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_packed_rows_hold_the_same_real_tokens_packed_and_padded(seed):
    lengths = [3, 40, 7, 100, 1, 25]  # 100 > context: HF gets it in pieces
    work = packed_rows(vocab=60, lengths=lengths, rows=4, context=32, seed=seed)
    assert work.ids.shape == (4, 32) and work.real_tokens == 128
    real = work.hf_mask.bool()
    assert int(real.sum()) == 128 and work.hf_ids.shape[1] <= 32
    # the same tokens in the same order: obte's rows read left to right, HF's rows without padding
    assert torch.equal(work.hf_ids[real], work.ids.flatten())
    assert torch.equal(work.hf_labels[real], work.labels.flatten())
    assert bool((work.hf_labels[~real] == -100).all())
    # every HF row is one sequence, left-aligned; obte's doc ids restart positions where HF rows start
    assert bool((real[:, :-1] >= real[:, 1:]).all())
    starts = torch.zeros(128, dtype=torch.bool)
    starts[torch.cumsum(real.sum(1), 0)[:-1]] = True
    starts[0] = True
    within_row = positions_from_doc_ids(work.doc_ids) == 0
    within_row[:, 0] = False  # obte also cuts a sequence where its row ends
    # every sequence that starts inside one of obte's rows starts an HF row (HF also cuts every `context`)
    assert bool((starts | ~within_row.flatten()).all()) and bool(within_row.any())
    assert work.sequences == int(real.shape[0])


def test_packed_rows_draw_the_given_lengths():
    work = packed_rows(vocab=60, lengths=[8], rows=2, context=32, seed=0)
    assert work.sequences == 8 and bool((work.hf_mask == 1).all()) and work.hf_ids.shape == (8, 8)
    assert work.doc_ids[0].tolist() == [d for d in range(4) for _ in range(8)]


def test_read_lengths_from_tsv_and_fasta(tmp_path):
    bundled = read_lengths(bench_file("pretraining-lengths.tsv"))
    assert len(bundled) == 4096 and min(bundled) >= 1
    fasta = tmp_path / "x.fa.gz"
    with gzip.open(fasta, "wt") as handle:
        handle.write(">a\nMKV\nLL\n>b\nACGT\n")
    assert read_lengths(fasta) == [7, 6]  # residues + tag + <EOS>
    (tmp_path / "bad.tsv").write_text("length\n5\n")
    with pytest.raises(InputError, match="no 'tokens' column"):
        read_lengths(tmp_path / "bad.tsv")
    (tmp_path / "empty.tsv").write_text("tokens\n")
    with pytest.raises(InputError, match="no sequence lengths"):
        read_lengths(tmp_path / "empty.tsv")
