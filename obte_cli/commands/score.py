"""``obte score``: how well a model predicts each sequence (bits per residue, perplexity, masked accuracy)."""

from __future__ import annotations

from collections import deque
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from obte_cli.commands.common import (
    UnknownLetters,
    count_records,
    fasta_or_regions,
    log,
    open_output,
    read_segments,
)
from obte_cli.commands.options import (
    BACKBONE_DEFAULT_HELP,
    MAX_BATCH_TOKENS,
    Device,
    DeviceOption,
    GenomeOption,
    OnUnknown,
    RegionsOption,
    Strategy,
    TsvOutOption,
    backbone_or_default,
    count_option,
    model_option,
    molecule_option,
    mutations_check,
    number_in,
    old_short_options,
    on_unknown_option,
    seed_option,
    suggests_on_unknown,
    usage_error,
)
from obte_cli.commands.progress import work_progress

STRATEGY_HELP = (
    "Variant score (repeatable; default all four), each a sum over the substitutions of log p(mutant letter) − "
    "log p(wild-type letter): 'wt-marginals' reads the unmasked wild type (1 forward pass in all); "
    "'masked-marginals' masks each site in the wild type (1 pass per distinct mutated position); "
    "'mutant-marginals' reads each mutant unmasked (1 pass per variant); 'pseudo-ppl' is the mutant's "
    "pseudo-log-likelihood minus the wild type's, every residue masked once as `obte score` does (about 7 "
    "passes per distinct sequence)."
)


@suggests_on_unknown
@old_short_options({"-t": "--molecule-type", "-s": "--strategy"})
def score(
    inputs: list[str] = typer.Argument(
        None, metavar="FASTA...", help="FASTA file(s), plain or compressed; '-' reads stdin (or --regions/--genome)."
    ),
    model: Annotated[
        Path | None, model_option(f"Model directory: a pretrained backbone {BACKBONE_DEFAULT_HELP}.")
    ] = None,
    molecule_type: Annotated[
        str, molecule_option("Molecule type of every record, or 'auto' (see `obte tokenize encode`).")
    ] = "auto",
    mask_fraction: float = typer.Option(
        0.15,
        "--mask-fraction",
        callback=number_in(0.01, 0.5),
        help="Size of each masked group: every residue is masked once, in round(1/fraction) groups.",
    ),
    seed: Annotated[int, seed_option("Seed of the grouping (the scores are deterministic given it).")] = 0,
    per_residue: Path = typer.Option(
        None,
        "--per-residue",
        help=(
            "Also write, per residue, the masked log-probability (natural log) of every letter "
            "(one-token-per-residue models)."
        ),
    ),
    max_tokens: int = count_option(
        16384,
        "--max-tokens",
        low=64,
        high=MAX_BATCH_TOKENS,
        help="Tokens per forward pass (memory bound; no effect on the numbers).",
    ),
    on_unknown: Annotated[
        OnUnknown,
        on_unknown_option(
            "Letters outside the standard alphabets (20 amino acids; A, C, G, T/U), such as X or N: 'unk' (default) "
            "scores each as the <unk> token and counts them on stderr; 'error' names the record and position."
        ),
    ] = OnUnknown.unk,
    mutations: str = typer.Option(
        None,
        "--mutations",
        callback=mutations_check,
        help=(
            "Score variants of the one reference record instead: e.g. 'A42G,K45R:L50P' (',' separates variants, ':' "
            "joins the substitutions of one multi-mutant; 1-based positions; the wild-type letter is checked)."
        ),
    ),
    variants: Path = typer.Option(
        None,
        "--variants",
        help="Score the variants of a CSV (.csv) or TSV file's --mutation-col against the one reference record; "
        "every column is kept in the output (ProteinGym / ESM --dms-input convention).",
    ),
    mutation_col: str = typer.Option("mutant", "--mutation-col", help="Column of --variants holding the variants."),
    strategies: list[Strategy] = typer.Option(None, "--strategy", help=STRATEGY_HELP),
    regions: RegionsOption = None,
    genome: GenomeOption = None,
    device: DeviceOption = Device.auto,
    out: TsvOutOption = "-",
) -> None:
    """Score sequences with a masked-LM: per record bits per residue, perplexity per residue and masked accuracy.

    Every residue is masked exactly once (seeded groups of ~15%), so scores are deterministic and cover the
    whole sequence; bits per residue compare across tokenizers. A summary per molecule type and modality
    (residue-weighted) goes to stderr.

    With --mutations or --variants, scores variants of one reference record instead (zero-shot variant effects,
    one column per --strategy; a reference longer than the context is read in a window centred on the sites).

    Example: [bold]obte score heldout.fa -m my-model -o scores.tsv[/bold]

    Example: [bold]obte score gb1.fa --mutations V39A,D40G:G41A --strategy masked-marginals[/bold]

    Example: [bold]obte score P61991.fa --variants dms.csv --mutation-col mutant -o scored.tsv[/bold]

    Example: [bold]obte score --regions exons.bed --genome genome.fa.gz -o exons.tsv[/bold]
    """
    from obte_cli.engine.bio.molecules import molecule_type_option
    from obte_cli.engine.bio.seqio import stdin_once
    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.core.errors import InputError
    from obte_cli.engine.core.outputs import refuse_same_file
    from obte_cli.engine.embedding.scoring import SCORE_COLUMNS, ScoreSettings, score_segments
    from obte_cli.engine.model.directory import load_model

    _check_outputs_and_variants(mutations, variants, per_residue, out)
    inputs = fasta_or_regions(inputs, regions, genome)
    refuse_same_file([("--out", out), ("--per-residue", per_residue)], [*inputs, model])
    stdin_once(inputs)
    on_unknown = on_unknown.value
    unknown = UnknownLetters(on_unknown)
    fixed = molecule_type_option(molecule_type)
    torch_device = resolve_device(device)
    model = backbone_or_default(model)
    loaded = load_model(model, torch_device)
    loaded.model.eval()
    if mutations is not None or variants is not None:
        _score_variants(inputs, fixed, loaded, mutations, variants, mutation_col, strategies, seed, max_tokens, out)
        return
    settings = ScoreSettings(
        mask_fraction=mask_fraction, seed=seed, max_tokens=max_tokens, per_residue=per_residue is not None
    )

    scores = []
    with (
        open_output(out) as handle,
        open_output(per_residue) if per_residue else nullcontext() as residues,
        work_progress(count_records(inputs), "score", "sequences") as advance,
    ):
        # The headers go out with the first scores, so an error in the first record leaves stdout empty.
        sequences: deque[str] = deque()  # scores come back in input order
        for result in score_segments(
            loaded.model,
            loaded.tokenizer,
            _remember(read_segments(inputs, fixed, unknown), sequences),
            settings,
            loaded.model.embed.weight.device,
            on_unknown,
            advance,
        ):
            if not scores:
                _write_headers(handle, SCORE_COLUMNS, residues)
            scores.append(result)
            handle.write(
                f"{result.id}\t{result.molecule_type}\t{result.length}\t{result.bits_per_residue:.4f}\t"
                f"{result.perplexity:.3f}\t{result.masked_accuracy:.4f}\n"
            )
            if residues is not None:
                _write_residues(residues, result, sequences.popleft())
            else:
                sequences.popleft()
    if not scores:
        raise InputError("no records to score")
    _log_summary(scores)
    windowed = sum(score.windows > 1 for score in scores)
    if windowed:
        log.info("%d records longer than the context were scored in consecutive windows", windowed)
    unknown.report()


def _check_outputs_and_variants(mutations, variants, per_residue, out) -> None:
    if mutations is not None and variants is not None:
        raise usage_error("give --mutations or --variants, not both", "--mutations", "--variants")
    if per_residue is not None and (mutations is not None or variants is not None):
        raise usage_error("does not apply to --mutations or --variants", "--per-residue")
    if per_residue is not None and str(per_residue) == out and out != "-":
        raise usage_error("names the same file as --out", "--per-residue")


def _score_variants(inputs, fixed, loaded, mutations, variants, column, strategies, seed, max_tokens, out) -> None:
    """`obte score --mutations/--variants`: one row per variant, one column per strategy; a summary on stderr."""
    from obte_cli.engine.bio.molecules import MOLECULE_TYPES
    from obte_cli.engine.core.errors import InputError
    from obte_cli.engine.core.tables import write_tsv
    from obte_cli.engine.embedding import variants as engine
    from obte_cli.engine.tokenizers.base import canonical_sequence

    records = list(read_segments(inputs, fixed, UnknownLetters("error")))  # FASTA, or --regions
    if len(records) != 1:
        raise InputError(f"variant scoring needs one reference record (the inputs hold {len(records)})")
    mol = MOLECULE_TYPES[records[0].molecule]
    reference = canonical_sequence(records[0].sequence, mol)
    if mutations is not None:
        table, found = None, engine.parse_mutations(mutations, reference, mol)
    else:
        table, found = engine.read_variants(variants, reference, mol, column)
    chosen = list(dict.fromkeys(s.value for s in strategies)) if strategies else list(engine.STRATEGIES)
    device = loaded.model.embed.weight.device
    scores = engine.score_variants(
        loaded.model, loaded.tokenizer, reference, mol, found, chosen, device, max_tokens, seed,
        progress=lambda total, label: work_progress(total, f"score {label}"),
    )  # fmt: skip
    with open_output(out) as handle:
        write_tsv(engine.variants_table(table, found, scores), handle)
    log.info("%d variants of %s (%s, %d residues)", len(found), records[0].name, mol.name, len(reference))
    for strategy, values in scores.scores.items():
        log.info(
            "%s: forward passes %d; mean %.3f, min %.3f, max %.3f",
            strategy,
            scores.passes[strategy],
            values.mean(),
            values.min(),
            values.max(),
        )
    if scores.windowed:
        log.info("the reference is longer than the context: each variant was read in a window centred on its sites")


def _log_summary(scores) -> None:
    """Per molecule type and modality (residue-weighted), on stderr."""
    from obte_cli.engine.embedding.scoring import ScoreSummary

    for row in ScoreSummary.of(scores).table():
        log.info(
            "%s: %d records, %d residues: %.3f bits per residue (perplexity %.2f), masked accuracy %.3f",
            row["group"],
            row["records"],
            row["residues"],
            row["bits_per_residue"],
            row["perplexity"],
            row["masked_accuracy"],
        )


def _remember(segments, sequences: deque):
    for segment in segments:
        sequences.append(segment.sequence)
        yield segment


def _write_headers(handle, columns: list[str], residues) -> None:
    from obte_cli.engine.embedding.scoring import PER_RESIDUE_COLUMNS

    handle.write("\t".join(columns) + "\n")
    if residues is not None:
        residues.write("\t".join(PER_RESIDUE_COLUMNS) + "\n")


def _write_residues(handle, result, sequence: str) -> None:
    """One row per residue: protein rows fill the amino-acid columns, nucleic rows the nucleotide ones."""
    from obte_cli.engine.embedding.scoring import per_residue_values

    for position, (letter, values) in enumerate(zip(sequence.upper(), per_residue_values(result)), start=1):
        text = "\t".join("NA" if v != v else f"{v:.4f}" for v in values)  # v != v: NaN, the other modality
        handle.write(f"{result.id}\t{position}\t{letter}\t{text}\n")
