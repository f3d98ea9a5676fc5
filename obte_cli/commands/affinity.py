"""``obte affinity``: binding free energy ΔG of protein–nucleic-acid complexes."""

from __future__ import annotations

import math
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from obte_cli.commands.common import UnknownLetters, log, open_output
from obte_cli.commands.options import (
    UNK_BY_DEFAULT_HELP,
    Device,
    DeviceOption,
    NaType,
    OnUnknown,
    Pairing,
    TsvOutOption,
    model_option,
    on_unknown_option,
    suggests_on_unknown,
    usage_error,
)


class Precision(str, Enum):
    rounded = "rounded"
    full = "full"


# What the TSV gives by default: ΔG to 0.1 kcal/mol, its spread over the ensemble to 0.01, Kd to 2 significant
# digits. The bundled model's ΔG is off by 1.6 kcal/mol on average on proteins it did not train on (a factor of
# about 15 in Kd): further digits would be noise. --precision full writes every digit of the float.
ROUNDED = {"dG_kcal_mol": ".1f", "dG_sd": ".2f", "Kd_M": ".1e"}
PRECISION_HELP = (
    "rounded: ΔG to 0.1 kcal/mol, dG_sd to 0.01 and Kd to 2 significant digits, what a model with a ΔG error "
    "of about 1.6 kcal/mol supports; full: every digit of the prediction (shortest repr of the float)."
)


def _format(value: float, spec: str | None) -> str:
    """``value`` to ``spec``, or every digit (Python's shortest round-trip repr) when ``spec`` is None."""
    if math.isnan(value):
        return "NA"
    return repr(float(value)) if spec is None else format(value, spec)


@suggests_on_unknown
def affinity(
    proteins: str | None = typer.Argument(
        None,
        metavar="PROTEINS",
        help="Protein FASTA (plain or .gz; '-' for stdin); not with --complexes.",
        show_default=False,
    ),
    nucleic_acids: str | None = typer.Argument(
        None,
        metavar="NUCLEIC_ACIDS",
        help="DNA/RNA FASTA (plain or .gz; '-' for stdin); not with --complexes.",
        show_default=False,
    ),
    complexes_tsv: str | None = typer.Option(
        None,
        "--complexes",
        metavar="TSV",
        help="Instead of the two FASTA files: a TSV with one complex per row, the pairs TSV `obte finetune "
        "affinity` trains on (columns protein, nucleic_acid; optional protein_id, na_id, na_type, complement; "
        "a dG column is ignored). An empty complement cell is a single strand.",
        show_default=False,
    ),
    model: Annotated[Path | None, model_option("ΔG model or ensemble directory (default: the bundled model).")] = None,
    pairs: Pairing | None = typer.Option(
        None,
        "--pairs",
        help="'all' (default): every protein with every nucleic acid; 'zip': i-th with i-th.",
        show_default=False,
    ),
    complement: str = typer.Option(
        "none",
        "--complement",
        metavar="none|revcomp|FILE",
        help="'none': every strand single-stranded; 'revcomp': add each strand's reverse complement "
        "(double-stranded sites); or a FASTA with one complement per nucleic-acid record, in order, an "
        "empty record leaving that one single-stranded. Nothing is added unless asked.",
    ),
    na_type: NaType = typer.Option(
        NaType.auto,
        "--na-type",
        help="DNA, RNA, or 'auto': RNA if the strand has a U, else DNA, marked 'DNA (assumed)' in the output, "
        "as RNA is often written with T (then say --na-type RNA). With --complexes: for empty na_type cells.",
    ),
    truncate: bool = typer.Option(
        True,
        "--truncate/--no-truncate",
        help="A protein too long for the model's context beside its nucleic acid is cut at its C-terminus "
        "(protein_truncated: yes; counted on stderr); --no-truncate makes it an error. The nucleic acid is "
        "always read whole.",
    ),
    on_unknown: Annotated[OnUnknown, on_unknown_option(UNK_BY_DEFAULT_HELP)] = OnUnknown.unk,
    precision: Precision = typer.Option(Precision.rounded, "--precision", help=PRECISION_HELP),
    device: DeviceOption = Device.auto,
    out: TsvOutOption = "-",
) -> None:
    """Predict the binding free energy ΔG (kcal/mol) and Kd of protein–nucleic-acid pairs.

    Output TSV: protein_id, na_id, dG_kcal_mol (ensemble mean), dG_sd (spread of the ensemble's fold
    models; NA for a single model), Kd_M (from ΔG = RT ln Kd at 298.15 K), and what the prediction
    assumed: na_type (DNA, RNA, or 'DNA (assumed)' for a strand of A/C/G/T guessed by --na-type auto),
    complement (no: single-stranded; revcomp; given: from the complement FASTA or TSV column) and
    protein_truncated (yes/no). ΔG is given to 0.1 kcal/mol and Kd to 2 significant digits, what the model's
    accuracy supports (stderr gives its cross-validated MAE); --precision full writes every digit.

    Example: [bold]obte affinity proteins.fa dna.fa -o affinity.tsv[/bold]
    """
    from obte_cli.engine.affinity.ensemble import (
        PREDICTION_COLUMNS,
        load_affinity_model,
        predict_affinities,
    )
    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.core.outputs import refuse_same_file
    from obte_cli.engine.core.resources import default_affinity_model_dir

    _check_inputs(proteins, nucleic_acids, complexes_tsv, pairs, complement)
    refuse_same_file([("--out", out)], [proteins, nucleic_acids, complexes_tsv, complement, model])
    torch_device = resolve_device(device)
    if complexes_tsv is not None:
        from obte_cli.engine.affinity.data import read_complexes_tsv

        complexes = read_complexes_tsv(complexes_tsv, na_type.value, on_unknown.value)
        assumed = sum(c.nucleic_acid.na_type_assumed for c in complexes)
        source, how = "given", "an na_type column or --na-type RNA"
    else:
        from obte_cli.engine.bio.complex_inputs import read_fasta_complexes

        pairing = (pairs or Pairing.all).value
        complexes, assumed = read_fasta_complexes(
            proteins, nucleic_acids, complement, na_type.value, on_unknown.value, pairing
        )
        source, how = "revcomp" if complement == "revcomp" else "given", "--na-type RNA"
    unknown = UnknownLetters(on_unknown.value)
    complexes = _counting_unknown_letters(complexes, unknown)
    if assumed:
        log.warning(
            "%d nucleic acid(s) without U taken as DNA ('DNA (assumed)' in the output); RNA written with T needs %s",
            assumed,
            how,
        )
    ensemble = load_affinity_model(model or default_affinity_model_dir(), torch_device)
    context = f", context {ensemble.context}" if ensemble.context else ""
    log.info("model %s: %s, %d member(s)%s", ensemble.path, ensemble.kind, len(ensemble.members), context)
    _say_precision(ensemble.path, precision)
    n = truncated = 0
    with open_output(out) as handle:
        # The header goes out with the first predictions, so an input error in the first chunk
        # (say, a complex too long for the context) leaves stdout empty rather than half-written.
        for p in predict_affinities(ensemble, complexes, truncate, torch_device, on_unknown=on_unknown.value):
            if n == 0:
                handle.write("\t".join(PREDICTION_COLUMNS) + "\n")
            handle.write("\t".join(_row(p, source, precision)) + "\n")
            n += 1
            truncated += p.residues_cut > 0
    if truncated:
        log.warning(
            "%d of %d complexes had their protein truncated to fit the context of %d", truncated, n, ensemble.context
        )
    log.info("predicted %d complexes", n)
    unknown.report()


def _counting_unknown_letters(complexes, unknown):
    """The complexes, counting the non-standard letters of each distinct input record once (reported at the end)."""
    from obte_cli.engine.tokenizers.base import Segment

    seen = set()
    for c in complexes:
        for record, molecule in ((c.protein, "protein"), (c.nucleic_acid, c.nucleic_acid.na_type or "DNA")):
            if record.source not in seen:
                seen.add(record.source)
                unknown.count(Segment(record.sequence, molecule, record.id))
        yield c


def _check_inputs(proteins, nucleic_acids, complexes_tsv, pairs, complement: str) -> None:
    """Either --complexes TSV (without the options of the FASTA inputs) or the two FASTA files; else a usage
    error."""
    if complexes_tsv is not None:
        if proteins is not None or nucleic_acids is not None:
            raise usage_error("give either --complexes TSV or the two FASTA files, not both", "--complexes")
        if pairs is not None:
            raise usage_error("does not apply to --complexes: each row of the TSV is one complex", "--pairs")
        if complement != "none":
            raise usage_error(
                "does not apply to --complexes: the TSV's complement column gives each row's (empty: single-stranded)",
                "--complement",
            )
    elif proteins is None or nucleic_acids is None:
        raise usage_error("give a protein and a nucleic-acid FASTA, or --complexes TSV", "PROTEINS", "NUCLEIC_ACIDS")
    elif proteins == "-" and nucleic_acids == "-":
        raise usage_error("only one of the two FASTA inputs can be '-' (stdin)", "PROTEINS", "NUCLEIC_ACIDS")


def _say_precision(path, precision: Precision) -> None:
    """On stderr: how the numbers are rounded and the model's cross-validated MAE, which is why."""
    from obte_cli.engine.affinity.description import cross_validated_mae

    mae = cross_validated_mae(path)
    error = f"; this model's cross-validated MAE is {mae:.2f} kcal/mol" if mae is not None else ""
    if precision is Precision.rounded:
        log.info("ΔG to 0.1 kcal/mol and Kd to 2 significant digits%s (--precision full: every digit)", error)
    elif mae is not None:
        log.info("every digit (--precision full)%s: digits beyond 0.1 kcal/mol are not significant", error)


def _row(p, source: str, precision: Precision = Precision.rounded) -> list[str]:
    """One output row (PREDICTION_COLUMNS) of a prediction; ``source`` says where a complement came from."""
    fields = p.fields(source)
    spec = ROUNDED if precision is Precision.rounded else {}
    fields.update({key: _format(value, spec.get(key)) for key, value in zip(ROUNDED, (p.dg, p.dg_sd, p.kd))})
    return list(fields.values())
