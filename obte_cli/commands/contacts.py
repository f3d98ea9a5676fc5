"""``obte contacts``: protein residues that touch nucleic acid, from structures."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from obte_cli.cli_common import log, new_app, open_output

app = new_app("Protein–nucleic-acid contacts: per-residue labels from PDB/mmCIF structures.")

LABEL_COLUMNS = ["pdb_id", "chain", "resnum", "icode", "aa", "modified", "min_distance"]


def _parse_cutoffs(text: str) -> tuple[float, ...]:
    from obte_cli.engine.errors import InputError

    try:
        cutoffs = tuple(sorted({float(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise InputError(f"--cutoff must be comma-separated distances in Å, e.g. 4,6,8 (got {text!r})") from None
    if not cutoffs or min(cutoffs) <= 0:
        raise InputError("--cutoff needs at least one positive distance")
    return cutoffs


def _label(cutoff: float) -> str:
    return f"contact_{cutoff:g}"


@app.command("labels")
def labels(
    structures: list[Path] = typer.Argument(..., help="PDB or mmCIF files (plain or .gz)."),
    cutoff: str = typer.Option("4,6,8", "--cutoff", help="Contact distances in Å (any heavy atom to any nucleotide heavy atom)."),
    per_chain: bool = typer.Option(False, "--per-chain", help="Take every protein chain with the nucleic-acid chains (default: only complexes of 1 protein + 1–2 nucleic-acid chains)."),
    out: str = typer.Option("-", "--out", "-o", help="Output TSV (default: stdout)."),
) -> None:
    """Per-residue contact labels: one row per protein residue, with the nucleic-acid sequences.

    Columns: pdb_id, chain, resnum, icode, aa, modified, min_distance (Å; NA beyond the largest cutoff),
    contact_4, contact_6, contact_8 (0/1), na_chains, na_types, na_sequences. Structures that do not
    qualify are skipped with a reason on stderr.

    Example: [bold]obte contacts labels pdb/*.cif.gz --per-chain -o labels.tsv[/bold]
    """
    from obte_cli.engine.errors import InputError
    from obte_cli.engine.structures import contact_sites

    cutoffs = _parse_cutoffs(cutoff)
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
                    row = [site.structure, site.protein_chain, str(r.resnum), r.icode or "", r.aa, str(int(r.modified)), distance]
                    row += [str(int(r.contacts[c])) for c in cutoffs] + na
                    handle.write("\t".join(row) + "\n")
                written += 1
        if written == 0:
            raise InputError(f"no structure gave a protein–nucleic-acid site ({skipped} skipped; see the lines above)")
    log.info("%d protein chains labelled, %d structures skipped", written, skipped)
