"""Training the paper's tokenizer: two sentencepiece BPE models, 2^11 nucleic pieces + 2^11 protein pieces.

The training text is a sample of the prepared shards (:mod:`obte_cli.engine.pretraining.prep`), drawn per modality
by reservoir sampling over *chunks* of at most ``chunk_length`` residues (sentencepiece limits sentence
length, and a genome is one record): each chunk is kept with equal probability whatever file it is in,
so the sample is uniform over the corpus in one pass and constant memory, and ``seed`` fixes it.

Each model's pieces: ``<unk> <s> </s>`` (sentencepiece's own; ``<s>`` and ``</s>`` serve as padding and
mask, as in the reference models), then ``<EOS>`` and one tag per molecule type of its modality, then the
learned merges. No dummy ``▁`` prefix (sequences have no words). The nucleic model takes ids
[0, n) and the protein model [n, n + m): the reference v2 layout, where protein ids are offset past the
nucleic ones, so protein ``A`` and adenine ``A`` never share an id.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterable
from pathlib import Path

from obte_cli.engine.bio.molecules import (
    AMINO_ACIDS,
    MOLECULE_TYPES,
    NUCLEIC,
    NUCLEOTIDES,
    PROTEIN,
    molecule_type,
)
from obte_cli.engine.bio.seqio import expand_inputs
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.pretraining.prep import SHARD_SUFFIX, read_shard
from obte_cli.engine.tokenizers.sentencepiece import SentencePieceTokenizer

MODEL_FILES = {NUCLEIC: "nucleic_bpe.model", PROTEIN: "protein_bpe.model"}
_REQUIRED = {NUCLEIC: NUCLEOTIDES, PROTEIN: AMINO_ACIDS}


def shard_files(sources: Iterable[Path]) -> list[Path]:
    """Shard files from prep output directories (their ``shards/``) or shard files given directly."""

    def in_directory(source: Path) -> list[Path]:
        folder = source / "shards" if (source / "shards").is_dir() else source
        return list(folder.glob(f"*{SHARD_SUFFIX}"))

    return expand_inputs(sources, in_directory, f"no {SHARD_SUFFIX} shards (run `obte prep` first)")


def sample_chunks(shards: list[Path], max_residues: int, chunk_length: int, seed: int) -> dict[str, list[str]]:
    """Per modality, a uniform random sample of sequence chunks totalling about ``max_residues``."""
    capacity = max(1, max_residues // chunk_length)
    rng = random.Random(seed)
    reservoirs: dict[str, list[str]] = {NUCLEIC: [], PROTEIN: []}
    seen = {NUCLEIC: 0, PROTEIN: 0}
    for shard in shards:
        for type_name, sequence in read_shard(shard):
            modality = molecule_type(type_name).modality
            reservoir = reservoirs[modality]
            for start in range(0, len(sequence), chunk_length):
                seen[modality] += 1
                if len(reservoir) < capacity:
                    reservoir.append(sequence[start : start + chunk_length])
                else:
                    slot = rng.randrange(seen[modality])
                    if slot < capacity:
                        reservoir[slot] = sequence[start : start + chunk_length]
    return reservoirs


def modality_tags(modality: str) -> list[str]:
    return [f"<{m.name}>" for m in MOLECULE_TYPES.values() if m.modality == modality]


def train_bpe(chunks: list[str], modality: str, vocab_size: int, threads: int = 1) -> bytes:
    """One sentencepiece BPE model (serialized) trained on ``chunks`` of one modality."""
    import sentencepiece as spm

    if not chunks:
        raise InputError(f"no {modality} sequences in the shards: cannot train its tokenizer")
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(chunks),
            model_writer=model,
            model_type="bpe",
            vocab_size=vocab_size,
            character_coverage=1.0,
            required_chars=_REQUIRED[modality],
            user_defined_symbols=["<EOS>", *modality_tags(modality)],
            add_dummy_prefix=False,
            max_sentence_length=1 << 20,
            max_sentencepiece_length=16,
            input_sentence_size=0,
            shuffle_input_sentence=False,
            num_threads=threads,
            minloglevel=2,
        )
    except RuntimeError as exc:
        # e.g. "Vocabulary size too high (2048). Please set it to a value <= 517." for a tiny sample
        message = str(exc).splitlines()[-1].strip()
        message = message.split("] ", 1)[-1]  # drop sentencepiece's "INTERNAL: file(line) [check]" prefix
        raise InputError(f"{modality} tokenizer: {message} (lower --vocab-size or give more data)") from None
    return model.getvalue()


def train_tokenizer(
    sources: Iterable[Path],
    out_dir: Path,
    vocab_size: int = 2048,
    max_residues: int = 20_000_000,
    chunk_length: int = 2048,
    seed: int = 0,
    threads: int = 1,
) -> tuple[SentencePieceTokenizer, dict[str, int]]:
    """Train both models and write a tokenizer directory; returns it and the chunks used per modality."""
    shards = shard_files(sources)
    chunks = sample_chunks(shards, max_residues, chunk_length, seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for modality in (NUCLEIC, PROTEIN):
        path = out_dir / MODEL_FILES[modality]
        path.write_bytes(train_bpe(chunks[modality], modality, vocab_size, threads))
        files[str(path)] = [modality]
    tokenizer = SentencePieceTokenizer.from_model_files(files)
    tokenizer.save(out_dir)
    return tokenizer, {m: len(c) for m, c in chunks.items()}
