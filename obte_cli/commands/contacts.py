"""``obte contacts``: protein residues that touch nucleic acid, from structures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from obte_cli.commands.common import UnknownLetters, log, new_app, open_output
from obte_cli.commands.options import (
    Device,
    DeviceOption,
    NaType,
    OnUnknown,
    TsvOutOption,
    cutoffs_check,
    model_option,
    number_in,
    old_short_options,
    on_unknown_option,
    suggests_on_unknown,
    usage_error,
)

app = new_app("Protein–nucleic-acid contacts: per-residue labels from PDB/mmCIF structures.")

LABEL_COLUMNS = ["pdb_id", "chain", "resnum", "icode", "aa", "modified", "min_distance"]


def _parse_cutoffs(text: str) -> tuple[float, ...]:
    """The distances of a ``--cutoff`` that :func:`cutoffs_check` has let through, sorted, without repeats."""
    return tuple(sorted({float(part) for part in text.split(",") if part.strip()}))


def _label(cutoff: float) -> str:
    return f"contact_{cutoff:g}"


@app.command("labels")
def labels(
    structures: list[Path] = typer.Argument(..., help="PDB or mmCIF files (plain or .gz), or directories of them."),
    cutoff: str = typer.Option(
        "4,6,8",
        "--cutoff",
        callback=cutoffs_check,
        help=(
            "Contact distances in Å (any heavy atom to any nucleotide heavy atom), each in (0, 20]: contacts are "
            "a few Å (4/6/8 in the paper); beyond 20 Å a residue is merely in the same region."
        ),
    ),
    per_chain: bool = typer.Option(
        False,
        "--per-chain",
        help=(
            "Take every protein chain with the nucleic-acid chains (default: only complexes of 1 protein + 1–2 "
            "nucleic-acid chains)."
        ),
    ),
    out: TsvOutOption = "-",
) -> None:
    """Per-residue contact labels: one row per protein residue, with the nucleic-acid sequences.

    Columns: pdb_id, chain, resnum, icode, aa, modified, min_distance (Å; NA beyond the largest cutoff),
    contact_4, contact_6, contact_8 (0/1), na_chains, na_types, na_sequences. Structures that do not
    qualify are skipped with a reason on stderr; a file that does not exist is an error.

    Example: [bold]obte contacts labels pdb/*.cif.gz --per-chain -o labels.tsv[/bold]
    """
    from obte_cli.engine.bio.structures import contact_sites
    from obte_cli.engine.contacts.io import structure_files
    from obte_cli.engine.core.errors import InputError
    from obte_cli.engine.core.outputs import refuse_same_file

    cutoffs = _parse_cutoffs(cutoff)
    structures = structure_files(structures)  # a missing file is an error, not a skipped structure
    refuse_same_file([("--out", out)], structures)
    columns = LABEL_COLUMNS + [_label(c) for c in cutoffs] + ["na_chains", "na_types", "na_sequences"]
    written = skipped = 0
    with open_output(out) as handle:
        handle.write("\t".join(columns) + "\n")
        for path in structures:
            try:
                sites, skips = contact_sites(path, cutoffs, per_chain)
            except InputError as exc:
                log.warning("skipped %s: %s", path, exc)
                skipped += 1
                continue
            for skip in skips:
                log.warning("skipped %s (%s): %s", path, skip.structure, skip.reason)
                skipped += 1
            for site in sites:
                na = [",".join(site.na_chains), ",".join(site.na_types), ",".join(site.na_sequences)]
                for r in site.residues:
                    distance = "NA" if math.isnan(r.min_distance) else f"{r.min_distance:.2f}"
                    row = [
                        site.structure,
                        site.protein_chain,
                        str(r.resnum),
                        r.icode or "",
                        r.aa,
                        str(int(r.modified)),
                        distance,
                    ]
                    row += [str(int(r.contacts[c])) for c in cutoffs] + na
                    handle.write("\t".join(row) + "\n")
                written += 1
        if written == 0:
            raise InputError(f"no structure gave a protein–nucleic-acid site ({skipped} skipped; see the lines above)")
    log.info("%d protein chains labelled, %d structures skipped", written, skipped)


@app.command("predict")
@suggests_on_unknown
@old_short_options({"-s": "--structure", "-p": "--protein", "-n": "--na"})
def predict(
    structure: Path = typer.Option(
        None,
        "--structure",
        help="PDB/mmCIF (plain or .gz): its chains are the input unless FASTA is given, and --cif-out annotates it.",
    ),
    protein: str = typer.Option(
        None, "--protein", help="Protein FASTA (plain or .gz; '-' for stdin); each record is one site."
    ),
    nucleic_acid: str = typer.Option(
        None, "--na", help="DNA/RNA FASTA: the strand(s) bound by every protein (one or two records)."
    ),
    model: Annotated[
        Path | None, model_option("Contact model from `obte finetune contacts` (default: the bundled model).")
    ] = None,
    cif_out: Path = typer.Option(
        None, "--cif-out", help="Write the --structure as mmCIF with P(contact) × 100 as B-factors (other atoms 0)."
    ),
    bfactor_cutoff: float = typer.Option(
        0.0,
        "--bfactor-cutoff",
        callback=number_in(0),
        show_default="the model's smallest",
        help="Which cutoff's probability goes in the B-factors (default: the model's smallest).",
    ),
    na_type: NaType = typer.Option(NaType.auto, "--na-type", help="DNA, RNA, or 'auto' (RNA if U and no T)."),
    on_unknown: Annotated[
        OnUnknown,
        on_unknown_option(
            "Letters outside the standard alphabets in --protein/--na (20 amino acids; A, C, G, T/U): 'unk' (default) "
            "reads each as the <unk> token (as chains from --structure always are) and counts them on stderr; "
            "'error' names the record and position."
        ),
    ] = OnUnknown.unk,
    device: DeviceOption = Device.auto,
    out: TsvOutOption = "-",
) -> None:
    """Predict which protein residues contact the nucleic acid: P(contact) per residue and cutoff.

    Output TSV, one row per protein residue: site, residue (PDB number + insertion code from a
    structure, 1-based position from FASTA), aa, p_4/p_6/p_8 (probabilities), call_4/call_6/call_8 (1 at
    or above the model's F1-fitted threshold), and from a structure the observed contact_4/6/8. With
    FASTA and --structure, each protein is aligned to its best-matching chain (column chain_residue).
    A protein too long for the model's context beside its nucleic acids is predicted in overlapping windows
    (each with the whole nucleic acids), probabilities averaged where they overlap.

    Example: [bold]obte contacts predict --structure share/examples/1AZP.pdb.gz --cif-out 1AZP.contacts.cif[/bold]
    """
    from obte_cli.engine.contacts.io import write_bfactor_structure
    from obte_cli.engine.contacts.prediction import predict_contacts
    from obte_cli.engine.contacts.predictor import load_contact_predictor
    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.core.outputs import check_output, refuse_same_file
    from obte_cli.engine.core.resources import default_contacts_model_dir

    if (protein is None) != (nucleic_acid is None):
        raise usage_error("give both, or neither (then --structure supplies the chains)", "--protein", "--na")
    if protein is None and structure is None:
        raise usage_error("nothing to predict: give --structure, or --protein and --na", "--structure")
    if cif_out is not None and structure is None:
        raise usage_error("needs --structure (the coordinates to annotate)", "--cif-out")
    if protein == "-" and nucleic_acid == "-":
        raise usage_error("only one of the two FASTA inputs can be '-' (stdin)", "--protein", "--na")
    refuse_same_file([("--out", out), ("--cif-out", cif_out)], [structure, protein, nucleic_acid, model])
    if cif_out is not None:
        check_output(cif_out)  # now: it is written after the table, which would otherwise be out already
    predictor = load_contact_predictor(model or default_contacts_model_dir())
    cutoffs = predictor.cutoffs
    shown = bfactor_cutoff or cutoffs[0]
    if shown not in cutoffs:
        raise usage_error(
            f"{bfactor_cutoff:g}: the model predicts {', '.join(f'{c:g}' for c in cutoffs)} Å", "--bfactor-cutoff"
        )
    prediction = predict_contacts(
        predictor, structure, protein, nucleic_acid, na_type.value, on_unknown.value, resolve_device(device)
    )
    windowed = [site.name for site, n in zip(prediction.sites, prediction.windows) if n > 1]
    if windowed:
        log.info(
            "%d protein(s) longer than the model's context of %d tokens beside the nucleic acids were predicted in "
            "overlapping windows: %s",
            len(windowed),
            predictor.context,
            ", ".join(windowed[:5]) + (" ..." if len(windowed) > 5 else ""),
        )
    _report_unknown_letters(prediction.sites)
    for site, mapping in zip(prediction.sites, prediction.mappings):
        if mapping is not None:
            log.info(
                "%s → chain %s (%.0f%% of its residues identical)", site.name, mapping.chain, 100 * mapping.identity
            )
    with open_output(out) as handle:
        handle.write("\t".join(prediction.columns()) + "\n")
        for row in prediction.rows():
            handle.write("\t".join(row) + "\n")
    if cif_out is not None:
        count = write_bfactor_structure(structure, prediction.bfactors(shown), cif_out)
        log.info("wrote %s: B-factor = 100 × P(contact within %g Å) on %d residues", cif_out, shown, count)
    sites = prediction.sites
    log.info("predicted %d residues of %d sites", sum(len(s.protein) for s in sites), len(sites))


def _report_unknown_letters(sites) -> None:
    """Count, per letter, the non-standard letters read as <unk> (each distinct sequence once)."""
    from obte_cli.engine.tokenizers.base import Segment

    unknown = UnknownLetters("unk")
    seen = set()
    for site in sites:
        for segment in site.segments():
            if (segment.molecule, segment.sequence) not in seen:
                seen.add((segment.molecule, segment.sequence))
                unknown.count(Segment(segment.sequence, segment.molecule, segment.name))
    unknown.report()
