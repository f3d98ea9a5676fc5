"""``obte scan-jaspar``: does the ΔG model prefer each TF's consensus site over mutated ones?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from obte_cli.commands.common import log, open_output
from obte_cli.commands.options import (
    MAX_MUTANTS,
    MUTATION_RATE,
    Device,
    DeviceOption,
    OnUnknown,
    OnUnknownOption,
    TsvOutOption,
    count_option,
    model_option,
    old_short_options,
    seed_option,
    suggests_on_unknown,
)


@suggests_on_unknown
@old_short_options({"-p": "--protein"})
def scan_jaspar(
    matrices: list[Path] = typer.Argument(
        ..., help="JASPAR (.jaspar, one or many matrices), .pfm, MEME (.meme) or TRANSFAC files."
    ),
    protein: str = typer.Option(
        ...,
        "--protein",
        help=(
            "Protein FASTA: each matrix is scored with the record named by its matrix id, TF name or UniProt "
            "accession/gene (sp|P14921|ETS1_HUMAN); --all-matrices scores one protein against every matrix."
        ),
    ),
    all_matrices: bool = typer.Option(
        False,
        "--all-matrices",
        help="Score the one protein of --protein against every matrix, whatever the names (a control, or a TF "
        "with no matrix of its own). Without it, a matrix is scored only with the protein named for it.",
    ),
    model: Annotated[Path | None, model_option("ΔG model or ensemble directory (default: the bundled model).")] = None,
    mutants: int = count_option(8, "--mutants", low=1, high=MAX_MUTANTS, help="Mutated consensus sites per matrix."),
    rate: float = typer.Option(
        0.05,
        "--rate",
        callback=MUTATION_RATE,
        help="Per-base substitution probability (at least one substitution per mutant).",
    ),
    accessions: Path = typer.Option(
        None, "--accessions", help="JASPAR matrices.tsv (matrix_id, uniprot) to match proteins by accession."
    ),
    saturation: Path = typer.Option(
        None,
        "--saturation",
        help="Also score every single substitution; write heatmaps and model PFMs to this directory.",
    ),
    seed: Annotated[int, seed_option("Seed of the mutants (per matrix, independent of file order).")] = 0,
    truncate: bool = typer.Option(False, "--truncate", help="Cut long proteins to fit the model's context."),
    on_unknown: OnUnknownOption = OnUnknown.error,
    device: DeviceOption = Device.auto,
    out: TsvOutOption = "-",
) -> None:
    """ΔΔG = ΔG(mutated site) − ΔG(consensus site) for each matrix's TF, with the PFM's own log-odds.

    TSV: matrix_id, tf_name, protein_id, consensus, mutant, n_subs, dG_consensus, dG_mutant, ddG,
    log_odds_change. Summary on stderr: mean ΔΔG ± SEM over TFs, fraction of TFs with ΔΔG > 0, Spearman
    ρ between ΔΔG and the log-odds drop (one matrix: mean ΔΔG ± SEM over its mutants). Each matrix is
    scored with the protein record named for it (matrix id, TF name, UniProt accession or gene; see
    --accessions); matrices without one are reported and skipped. --all-matrices scores a single protein
    against every matrix.

    Example: [bold]obte scan-jaspar MA0139.1.jaspar --protein ctcf.fa --saturation ctcf-sat/[/bold]
    """
    from obte_cli.engine.affinity.ensemble import load_affinity_model
    from obte_cli.engine.affinity.specificity import (
        SCAN_COLUMNS,
        describe_scan,
        format_scan_row,
        scan_matrix,
        summarise_scan,
    )
    from obte_cli.engine.bio.complex_inputs import read_proteins
    from obte_cli.engine.bio.motifs import read_matrices
    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.core.directories import output_directory
    from obte_cli.engine.core.outputs import refuse_same_file
    from obte_cli.engine.core.resources import default_affinity_model_dir

    refuse_same_file([("--out", out)], [*matrices, protein, accessions, model])
    if saturation is not None:
        output_directory(saturation, "--saturation")  # now, not after the scan
    torch_device = resolve_device(device)
    matrices_read = [m for path in matrices for m in read_matrices(path)]
    proteins = read_proteins(protein, on_unknown.value)
    owner, usable, missing = _match(matrices_read, proteins, protein, accessions, all_matrices)
    ensemble = load_affinity_model(model or default_affinity_model_dir(), torch_device)
    rows = []
    with open_output(out) as handle:
        handle.write("\t".join(SCAN_COLUMNS) + "\n")
        for matrix in usable:
            for r in scan_matrix(
                ensemble, matrix, owner[matrix.matrix_id], mutants, rate, seed, torch_device, truncate, on_unknown.value
            ):
                rows.append(r)
                handle.write(format_scan_row(r) + "\n")
    skipped = f" ({len(missing)} matrices skipped without a protein)" if missing else ""
    log.info("%s%s", describe_scan(summarise_scan(rows), rows), skipped)
    if saturation is not None:
        _write_saturation(saturation, usable, owner, ensemble, torch_device, truncate, on_unknown.value)


_LISTED = 10  # matrices named one by one on stderr; beyond, a count (all of them with -v)


def _match(matrices, proteins, source, accessions, all_matrices: bool):
    """(protein of each matrix id, the matrices with one, those without), reported on stderr: by name, or
    the one protein for every matrix with --all-matrices."""
    from obte_cli.engine.affinity.specificity import match_proteins, read_accessions
    from obte_cli.engine.core.errors import InputError

    if all_matrices:
        if len(proteins) != 1:
            raise InputError(
                f"{source}: --all-matrices scores one protein against every matrix, but the file has "
                f"{len(proteins)} records"
            )
        owner = {m.matrix_id: proteins[0] for m in matrices}
    else:
        owner = match_proteins(matrices, proteins, read_accessions(accessions) if accessions else None)
    missing = [m for m in matrices if owner[m.matrix_id] is None]
    usable = [m for m in matrices if owner[m.matrix_id] is not None]
    if not usable:
        ids = ", ".join(p.id for p in proteins[:3]) + (", ..." if len(proteins) > 3 else "")
        raise InputError(
            f"{source}: no protein ({ids}) matches any of the {len(matrices)} matrices by matrix id, TF name "
            "or UniProt accession/gene (--accessions adds a matrices.tsv); --all-matrices scores one protein "
            "against every matrix"
        )
    _report_unmatched(missing, len(matrices), source)
    if not all_matrices:
        log.info(
            "%d of %d matrices matched a protein of %s: %s",
            len(usable),
            len(matrices),
            source,
            ", ".join(f"{m.matrix_id} {m.name} ↔ {owner[m.matrix_id].id}" for m in usable[:_LISTED])
            + (", ..." if len(usable) > _LISTED else ""),
        )
    return owner, usable, missing


def _report_unmatched(missing, total: int, protein) -> None:
    """One warning per matrix without a protein when they are few; otherwise one line with a count and the
    first few (each one at -v)."""
    if len(missing) <= _LISTED:
        for m in missing:
            log.warning("%s (%s): no matching protein in %s, skipped", m.matrix_id, m.name, protein)
        return
    for m in missing:
        log.debug("%s (%s): no matching protein in %s, skipped", m.matrix_id, m.name, protein)
    log.warning(
        "%d of %d matrices have no matching protein in %s and are skipped (%s, ...; -v lists them)",
        len(missing),
        total,
        protein,
        ", ".join(f"{m.matrix_id} {m.name}" for m in missing[:3]),
    )


def _write_saturation(directory: Path, matrices, owner, ensemble, device, truncate: bool, on_unknown: str) -> None:
    import numpy as np

    from obte_cli.engine.affinity.specificity import saturation_scan
    from obte_cli.engine.bio.motifs import BASES
    from obte_cli.engine.core.plots import saturation_figure

    with open_output(directory / "saturation.tsv") as table:
        table.write("matrix_id\ttf_name\tprotein_id\tposition\tconsensus_base\tbase\tddG\tmodel_p\tjaspar_p\n")
        for matrix in matrices:
            sat = saturation_scan(ensemble, matrix, owner[matrix.matrix_id], device, truncate, on_unknown)
            reference = matrix.probabilities
            for i, c in enumerate(sat.consensus):
                for j, b in enumerate(BASES):
                    table.write(
                        f"{matrix.matrix_id}\t{matrix.name}\t{sat.protein_id}\t{i + 1}\t{c}\t{b}\t"
                        f"{sat.ddg[i, j]:.4f}\t{sat.model_pfm[i, j]:.4f}\t{reference[i, j]:.4f}\n"
                    )
            safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in matrix.matrix_id)
            with open_output(directory / f"{safe}.model.jaspar") as pfm:
                pfm.write(
                    f">{matrix.matrix_id}.obte {matrix.name} (model-derived, p ∝ exp(-ddG/RT), 298.15 K, ×1000)\n"
                )
                for j, b in enumerate(BASES):
                    pfm.write(f"{b}  [ " + " ".join(f"{v:6.0f}" for v in np.round(sat.model_pfm[:, j] * 1000)) + " ]\n")
            saturation_figure(
                sat.ddg,
                sat.model_pfm,
                reference,
                sat.consensus,
                f"{matrix.matrix_id} {matrix.name}: saturation ΔΔG; model vs JASPAR column r = "
                f"{sat.mean_column_pearson:.2f}",
                directory / f"{safe}.png",
            )
            log.info("%s: model PFM vs JASPAR, mean column Pearson r = %.3f", matrix.matrix_id, sat.mean_column_pearson)
