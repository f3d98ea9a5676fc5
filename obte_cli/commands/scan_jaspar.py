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
    seed_option,
    suggests_on_unknown,
)


@suggests_on_unknown
def scan_jaspar(
    matrices: list[Path] = typer.Argument(
        ..., help="JASPAR (.jaspar, one or many matrices), .pfm, MEME (.meme) or TRANSFAC files."
    ),
    protein: str = typer.Option(
        ...,
        "--protein",
        "-p",
        help=(
            "Protein FASTA: one protein for every matrix, or records named by matrix id, TF name or UniProt accession."
        ),
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
    ρ between ΔΔG and the log-odds drop. Matrices without a protein are listed and skipped.

    Example: [bold]obte scan-jaspar MA0139.1.jaspar --protein ctcf.fa --saturation ctcf-sat/[/bold]
    """
    from obte_cli.engine.affinity.ensemble import load_affinity_model
    from obte_cli.engine.affinity.specificity import (
        SCAN_COLUMNS,
        format_scan_row,
        match_proteins,
        read_accessions,
        scan_matrix,
        summarise_scan,
    )
    from obte_cli.engine.bio.complex_inputs import read_proteins
    from obte_cli.engine.bio.motifs import read_matrices
    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.core.directories import output_directory
    from obte_cli.engine.core.errors import InputError
    from obte_cli.engine.core.outputs import refuse_same_file
    from obte_cli.engine.core.resources import default_affinity_model_dir

    refuse_same_file([("--out", out)], [*matrices, protein, accessions, model])
    if saturation is not None:
        output_directory(saturation, "--saturation")  # now, not after the scan
    torch_device = resolve_device(device)
    all_matrices = [m for path in matrices for m in read_matrices(path)]
    proteins = read_proteins(protein, on_unknown.value)
    owner = match_proteins(all_matrices, proteins, read_accessions(accessions) if accessions else None)
    missing = [m for m in all_matrices if owner[m.matrix_id] is None]
    for m in missing:
        log.warning("%s (%s): no matching protein in %s, skipped", m.matrix_id, m.name, protein)
    usable = [m for m in all_matrices if owner[m.matrix_id] is not None]
    if not usable:
        raise InputError(
            f"{protein}: no protein matches any matrix (name records by matrix id, TF name or UniProt accession)"
        )
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
    summary = summarise_scan(rows)
    log.info(
        "%d matrices (%d skipped without a protein), %d mutants: mean ΔΔG %.3f ± %.3f kcal/mol (one-sided p for "
        "> 0: %.3g), %.0f%% of TFs > 0, Spearman ρ(ΔΔG, log-odds drop) = %.3f",
        summary["matrices"],
        len(missing),
        summary["mutants"],
        summary["mean_ddG"],
        summary["sem_ddG"],
        summary["p_mean_ddG_gt_0"],
        100 * summary["fraction_positive"],
        summary["spearman_ddG_vs_logodds_drop"],
    )
    if saturation is not None:
        _write_saturation(saturation, usable, owner, ensemble, torch_device, truncate, on_unknown.value)


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
