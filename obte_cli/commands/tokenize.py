"""``obte tokenize``: turn FASTA into token ids (and back) with any obte tokenizer."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from obte_cli.commands.common import log, new_app, open_output
from obte_cli.commands.options import (
    MAX_SAMPLE_RESIDUES,
    MAX_VOCAB,
    MAX_WINDOW,
    MAX_WORKERS,
    ForceOption,
    OnUnknown,
    OnUnknownOption,
    TsvOutOption,
    count_option,
    guard_new_output,
    model_option,
    molecule_option,
    out_option,
    seed_option,
    suggests_on_unknown,
    usage_error,
)

app = new_app("Tokenize sequences with a bundled tokenizer, a tokenizer directory or a model directory.")

TOKENIZER_HELP = (
    "Tokenizer: a bundled name (residue, omnibiote-mixed), a model or tokenizer directory, "
    "or a sentencepiece .model file."
)
MODEL_HELP = "A model directory: its tokenizer (the same as -t DIR)."
ENCODE_COLUMNS = ["record_id", "molecule_type", "n_residues", "n_tokens", "token_ids"]


def _tokenizer_of(tokenizer: str, model: Path | None) -> str:
    """What ``-t/--tokenizer`` or ``-m/--model`` names. ``-m`` was the molecule type of `tokenize encode` in
    obte 0.1: a molecule type given to it, where no such directory exists, is a usage error that says so."""
    from obte_cli.engine.bio.molecules import molecule_type_option
    from obte_cli.engine.core.errors import InputError

    if model is None:
        return tokenizer
    if tokenizer != "residue":
        raise usage_error("give -t TOKENIZER or -m MODEL, not both", "--model")
    if not model.exists():
        with contextlib.suppress(InputError):
            molecule_type_option(str(model))
            raise usage_error(
                f"no model directory {str(model)!r}: -m names a model now; the molecule type is "
                f"--molecule-type {model}",
                "--model",
            )
    return str(model)


@app.command("encode")
@suggests_on_unknown
def encode(
    inputs: list[str] = typer.Argument(..., help="FASTA file(s), plain or .gz; '-' reads stdin."),
    tokenizer: str = typer.Option("residue", "--tokenizer", "-t", help=TOKENIZER_HELP),
    model: Annotated[Path | None, model_option(MODEL_HELP)] = None,
    molecule_type: Annotated[str, molecule_option()] = "auto",
    on_unknown: OnUnknownOption = OnUnknown.error,
    spans: bool = typer.Option(
        False,
        "--spans",
        help="Add a token_spans column: residues start:end covered by each token ('-' for tags and <EOS>).",
    ),
    pieces: bool = typer.Option(False, "--pieces", help="Add a token_pieces column with each token's text."),
    out: TsvOutOption = "-",
) -> None:
    """Encode FASTA records to token ids, one TSV row per record.

    Each record becomes <tag> residues <EOS>, e.g. <protein> M K V ... <EOS>.

    Example: [bold]obte tokenize encode proteins.fa -t omnibiote-mixed --spans -o tokens.tsv[/bold]
    """
    from obte_cli.engine.bio.molecules import detect_molecule_type, molecule_type_option
    from obte_cli.engine.bio.seqio import display_name, read_fasta, stdin_once
    from obte_cli.engine.core.errors import InputError
    from obte_cli.engine.core.outputs import refuse_same_file
    from obte_cli.engine.tokenizers.base import Segment
    from obte_cli.engine.tokenizers.loading import load_tokenizer

    tokenizer = _tokenizer_of(tokenizer, model)
    refuse_same_file([("--out", out)], [*inputs, tokenizer])
    stdin_once(inputs)
    on_unknown = on_unknown.value
    fixed_type = molecule_type_option(molecule_type)
    tok = load_tokenizer(tokenizer)
    columns = ENCODE_COLUMNS + (["token_spans"] if spans else []) + (["token_pieces"] if pieces else [])
    n_records = n_tokens = 0
    with open_output(out) as handle:
        # The header goes out with the first row, so an error in the first record leaves stdout empty.
        for path in inputs:
            for record in read_fasta(path):
                mol = fixed_type or detect_molecule_type(record.sequence)
                try:
                    enc = tok.encode_one([Segment(record.sequence, mol.name, record.id)], on_unknown=on_unknown)
                except InputError as exc:
                    raise exc.within(display_name(path)) from None
                row = [
                    record.id,
                    mol.name,
                    str(len(record.sequence)),
                    str(len(enc)),
                    " ".join(map(str, enc.ids.tolist())),
                ]
                if spans:
                    row.append(
                        " ".join(f"{s}:{e}" if s >= 0 else "-" for s, e in zip(enc.start.tolist(), enc.end.tolist()))
                    )
                if pieces:
                    row.append(" ".join(tok.token_text(i) for i in enc.ids.tolist()))
                if n_records == 0:
                    handle.write("\t".join(columns) + "\n")
                handle.write("\t".join(row) + "\n")
                n_records += 1
                n_tokens += len(enc)
    log.info("encoded %d records into %d tokens (%s tokenizer)", n_records, n_tokens, tok.kind)


@app.command("decode")
def decode(
    tokens: str = typer.Argument(
        ..., help="TSV from `obte tokenize encode` (needs record_id and token_ids columns); '-' reads stdin."
    ),
    tokenizer: str = typer.Option("residue", "--tokenizer", "-t", help=TOKENIZER_HELP),
    model: Annotated[Path | None, model_option(MODEL_HELP)] = None,
    out: Annotated[str, out_option("Output FASTA (default: stdout).")] = "-",
) -> None:
    """Decode token ids back to FASTA (RNA is written with U). A row holding several sequences is
    written as ID_1, ID_2, ...

    Example: [bold]obte tokenize encode seqs.fa | obte tokenize decode -[/bold]
    """
    from obte_cli.engine.bio.seqio import _lines, display_name, open_text, write_fasta
    from obte_cli.engine.core.errors import InputError
    from obte_cli.engine.core.outputs import refuse_same_file
    from obte_cli.engine.tokenizers.loading import load_tokenizer

    tokenizer = _tokenizer_of(tokenizer, model)
    refuse_same_file([("--out", out)], [tokens, tokenizer])
    tok = load_tokenizer(tokenizer)
    name = display_name(tokens)
    records = []
    line_no = 1

    def where() -> str:
        return f"line {line_no}"

    with open_text(tokens) as handle:
        lines = _lines(handle, name, where)  # binary data and broken gzip streams are one-line errors
        header = next(lines, "").rstrip("\n").split("\t")
        if "record_id" not in header or "token_ids" not in header:
            raise InputError(f"{name}: header must have record_id and token_ids columns (got {' '.join(header)[:80]})")
        id_col, ids_col = header.index("record_id"), header.index("token_ids")
        for line_no, line in enumerate(lines, start=2):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != len(header):
                raise InputError(f"{name}: line {line_no} has {len(fields)} columns, header has {len(header)}")
            try:
                ids = [int(x) for x in fields[ids_col].split()]
                segments = tok.decode(ids)
            except ValueError:
                raise InputError(f"{name}: line {line_no} ('{fields[id_col]}'): token_ids must be integers") from None
            except InputError as exc:
                raise InputError(f"{name}: line {line_no} ('{fields[id_col]}'): {exc}") from None
            if len(segments) == 1:
                records.append((fields[id_col], segments[0].sequence))
            else:
                records += [(f"{fields[id_col]}_{k}", s.sequence) for k, s in enumerate(segments, start=1)]
    with open_output(out) as handle:
        write_fasta(iter(records), handle)
    log.info("decoded %d sequences", len(records))


@app.command("train")
def train(
    sources: list[Path] = typer.Argument(..., help="`obte prep` output directories or shard files (.tsv.gz)."),
    out: Annotated[Path, out_option("Tokenizer directory to write (usable as -t / in `obte model init`).")] = ...,
    vocab_size: int = count_option(
        2048,
        "--vocab-size",
        low=64,
        high=MAX_VOCAB,
        help="Pieces per modality (the paper: 2^11 nucleic + 2^11 protein).",
    ),
    sample_residues: int = count_option(
        20_000_000,
        "--sample-residues",
        low=1,
        high=MAX_SAMPLE_RESIDUES,
        help="Residues sampled per modality for training.",
    ),
    chunk_length: int = count_option(
        2048,
        "--chunk-length",
        low=16,
        high=MAX_WINDOW,
        help="Long sequences are cut into chunks of this many residues.",
    ),
    seed: Annotated[int, seed_option("Seed of the sample.")] = 0,
    threads: int = count_option(1, "--threads", low=1, high=MAX_WORKERS, help="sentencepiece training threads."),
    force: ForceOption = False,
) -> None:
    """Train the two-model BPE tokenizer (nucleic ids first, protein ids after them) on prepared shards.

    Example: [bold]obte tokenize train corpus/ -o bpe-4096/ --sample-residues 50000000[/bold]
    """
    from obte_cli.engine.core.outputs import staged_directory
    from obte_cli.engine.pretraining.train_tokenizer import train_tokenizer

    guard_new_output(out, force, inputs=tuple(sources))
    with staged_directory(out, inputs=sources) as staging:
        tok, chunks = train_tokenizer(sources, staging, vocab_size, sample_residues, chunk_length, seed, threads)
    log.info(
        "trained on %d nucleic and %d protein chunks; %d ids in all; wrote %s",
        chunks["nucleic"],
        chunks["protein"],
        tok.vocab_size,
        out,
    )


@app.command("corpus")
def corpus(
    sources: list[Path] = typer.Argument(..., help="`obte prep` output directories or shard files (.tsv.gz)."),
    tokenizer: str = typer.Option("residue", "--tokenizer", "-t", help=TOKENIZER_HELP),
    model: Annotated[Path | None, model_option(MODEL_HELP)] = None,
    out: Annotated[Path, out_option("Token directory to write (memory-mappable arrays + tokens.json).")] = ...,
    force: ForceOption = False,
) -> None:
    """Tokenize prepared shards into flat token files for pretraining.

    Prints tokens and sequences per shard (TSV).

    Example: [bold]obte tokenize corpus corpus/ -t bpe-4096/ -o tokens/[/bold]
    """
    from obte_cli.engine.core.outputs import staged_directory
    from obte_cli.engine.pretraining.token_files import encode_corpus
    from obte_cli.engine.pretraining.train_tokenizer import shard_files
    from obte_cli.engine.tokenizers.loading import load_tokenizer

    tokenizer = _tokenizer_of(tokenizer, model)
    # a bundled tokenizer name (e.g. residue) is not a path on disk, so it cannot be replaced
    inputs = (*sources, *([Path(tokenizer)] if Path(tokenizer).exists() else []))
    guard_new_output(out, force, inputs=inputs)
    tok = load_tokenizer(tokenizer)
    shards = shard_files(sources)
    with staged_directory(out, inputs=inputs) as staging:
        manifest = encode_corpus(tok, shards, staging)
    with open_output("-") as handle:
        handle.write("shard\tsequences\ttokens\n")
        for entry in manifest["shards"]:
            handle.write(f"{entry['name']}\t{entry['sequences']}\t{entry['tokens']}\n")
    log.info(
        "%d sequences, %d tokens (%s); wrote %s", manifest["sequences"], manifest["tokens"], manifest["dtype"], out
    )
