"""``obte affinity``: binding free energy ΔG of protein–nucleic-acid complexes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from obte_cli.commands.common import log, open_output
from obte_cli.commands.options import (
    Device,
    DeviceOption,
    NaType,
    OnUnknown,
    OnUnknownOption,
    Pairing,
    TsvOutOption,
    model_option,
    suggests_on_unknown,
)

COLUMNS = ["protein_id", "na_id", "dG_kcal_mol", "dG_sd", "Kd_M"]


def _format(value: float, spec: str) -> str:
    return "NA" if math.isnan(value) else format(value, spec)


@suggests_on_unknown
def affinity(
    proteins: str = typer.Argument(..., help="Protein FASTA (plain or .gz; '-' for stdin)."),
    nucleic_acids: str = typer.Argument(..., help="DNA/RNA FASTA (plain or .gz; '-' for stdin)."),
    model: Annotated[Path | None, model_option("ΔG model or ensemble directory (default: the bundled model).")] = None,
    pairs: Pairing = typer.Option(
        Pairing.all, "--pairs", help="'all': every protein with every nucleic acid; 'zip': i-th with i-th."
    ),
    complement: str = typer.Option(
        "auto",
        "--complement",
        help="'auto': reverse complement for DNA, none for RNA; 'none'; or a FASTA of complements (same order).",
    ),
    na_type: NaType = typer.Option(NaType.auto, "--na-type", help="DNA, RNA, or 'auto' (RNA if U and no T)."),
    truncate: bool = typer.Option(
        False, "--truncate", help="Cut long proteins at the C-terminus to fit the model's context."
    ),
    on_unknown: OnUnknownOption = OnUnknown.error,
    device: DeviceOption = Device.auto,
    out: TsvOutOption = "-",
) -> None:
    """Predict the binding free energy ΔG (kcal/mol) and Kd of protein–nucleic-acid pairs.

    Output TSV: protein_id, na_id, dG_kcal_mol (ensemble mean), dG_sd (spread of the ensemble's fold
    models; NA for a single model) and Kd_M (from ΔG = RT ln Kd at 298.15 K).

    Example: [bold]obte affinity proteins.fa dna.fa -o affinity.tsv[/bold]
    """
    from obte_cli.engine.affinity.ensemble import (
        load_affinity_model,
        predict_affinities,
    )
    from obte_cli.engine.bio.complex_inputs import (
        complements_for,
        pair_complexes,
        read_nucleic_acids,
        read_proteins,
    )
    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.core.errors import InputError
    from obte_cli.engine.core.resources import default_affinity_model_dir

    if proteins == "-" and nucleic_acids == "-":
        raise InputError("only one of the two FASTA inputs can be '-' (stdin)")
    torch_device = resolve_device(device)
    protein_records = read_proteins(proteins, on_unknown.value)
    acid_records = read_nucleic_acids(nucleic_acids, na_type.value, on_unknown.value)
    complements = complements_for(acid_records, complement, on_unknown.value)
    complexes = pair_complexes(protein_records, acid_records, complements, pairs.value)
    ensemble = load_affinity_model(model or default_affinity_model_dir(), torch_device)
    log.info("model %s: %d member(s), context %d", ensemble.path, len(ensemble.members), ensemble.context)
    n = truncated = 0
    with open_output(out) as handle:
        # The header goes out with the first predictions, so an input error in the first chunk
        # (say, a complex too long for the context) leaves stdout empty rather than half-written.
        for p in predict_affinities(ensemble, complexes, truncate, torch_device, on_unknown=on_unknown.value):
            if n == 0:
                handle.write("\t".join(COLUMNS) + "\n")
            row = [
                p.complex.protein.id,
                p.complex.nucleic_acid.id,
                _format(p.dg, ".3f"),
                _format(p.dg_sd, ".3f"),
                _format(p.kd, ".3e"),
            ]
            handle.write("\t".join(row) + "\n")
            n += 1
            truncated += p.residues_cut > 0
    if truncated:
        log.warning(
            "%d of %d complexes had their protein truncated to fit the context of %d", truncated, n, ensemble.context
        )
    log.info("predicted %d complexes", n)
