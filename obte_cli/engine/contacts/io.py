"""Inputs and outputs of `obte contacts predict`: sites from FASTA or from a structure, and the
structure written back as mmCIF with P(contact) × 100 in the B-factor column.

A site read from a structure keeps its residue numbering, so predictions can be put back on the atoms.
When the protein comes from FASTA and a structure is given too, each FASTA protein is aligned
(global, Biopython's PairwiseAligner) to the structure's protein chains; the chain with the most
identical aligned residues carries its predictions, residue by residue through the alignment (a
FASTA of the full construct maps onto a chain with unobserved loops).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from obte_cli.engine.bio.seqio import expand_inputs
from obte_cli.engine.bio.structures import (
    DEFAULT_CUTOFFS,
    contact_sites,
    read_structure,
)
from obte_cli.engine.contacts.sites import ContactSite, encode_site
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.outputs import write_text_atomic


def sites_from_structure(path: str | Path, cutoffs: tuple[float, ...] = DEFAULT_CUTOFFS) -> list[ContactSite]:
    """Every protein chain of a structure with all its nucleic-acid chains; ``labels`` are the
    observed contacts (so a prediction on a solved structure can be compared with the truth)."""
    sites, skipped = contact_sites(path, cutoffs, per_chain=True)
    if skipped:
        raise InputError(f"{path}: {skipped[0].reason}")
    return [
        ContactSite(
            f"{s.structure}:{s.protein_chain}",
            s.sequence,
            s.na_sequences,
            s.na_types,
            [f"{r.resnum}{r.icode}" for r in s.residues],
            np.array([[int(r.contacts[c]) for c in cutoffs] for r in s.residues]),
        )
        for s in sites
    ]


@dataclass
class ChainMapping:
    chain: str
    identity: float  # identical aligned residues / residues of the chain
    fasta_index: np.ndarray  # per chain residue, the aligned FASTA position or -1


def align_to_chain(sequence: str, chain_sites: list[ContactSite]) -> ChainMapping:
    """The structure chain that ``sequence`` matches best, with the residue mapping."""
    from Bio import Align

    aligner = Align.PairwiseAligner(
        mode="global", match_score=2, mismatch_score=-1, open_gap_score=-3, extend_gap_score=-0.5
    )
    aligner.end_gap_score = 0  # a longer construct or a shorter observed chain is no penalty
    best = None
    for site in chain_sites:
        alignment = aligner.align(sequence, site.protein)[0]
        index = np.full(len(site.protein), -1, dtype=np.int64)
        identical = 0
        for (a0, a1), (b0, b1) in zip(*alignment.aligned):
            index[b0:b1] = np.arange(a0, a1)
            identical += sum(x == y for x, y in zip(sequence[a0:a1], site.protein[b0:b1]))
        mapping = ChainMapping(site.name.rsplit(":", 1)[1], identical / max(len(site.protein), 1), index)
        if best is None or mapping.identity > best.identity:
            best = mapping
    return best


Placement = dict[int, tuple[str, str]]  # residue index in a site → (structure chain, residue number + icode)


def place_on_structure(
    sites: list[ContactSite], chain_sites: list[ContactSite], from_structure: bool
) -> tuple[list[Placement], list[ChainMapping | None]]:
    """Where each site's residues sit in the structure: its own residues for sites read from it, the
    aligned residues of the best-matching chain for FASTA sites, nothing without a structure."""
    if from_structure:
        return [
            {r: (site.name.rsplit(":", 1)[1], residue) for r, residue in enumerate(site.residue_ids)} for site in sites
        ], [None] * len(sites)
    if not chain_sites:
        return [{} for _ in sites], [None] * len(sites)
    placements, mappings = [], []
    for site in sites:
        mapping = align_to_chain(site.protein, chain_sites)
        chain_site = next(s for s in chain_sites if s.name.rsplit(":", 1)[1] == mapping.chain)
        placements.append(
            {int(f): (mapping.chain, chain_site.residue_ids[r]) for r, f in enumerate(mapping.fasta_index) if f >= 0}
        )
        mappings.append(mapping)
    return placements, mappings


def bfactor_values(
    placements: list[Placement], probabilities: list[np.ndarray], column: int
) -> dict[str, dict[str, float]]:
    """{chain: {residue: 100 × P(contact)}} of the placed residues, for :func:`write_bfactor_structure`."""
    values: dict[str, dict[str, float]] = {}
    for placement, p in zip(placements, probabilities):
        for r, (chain, residue) in placement.items():
            values.setdefault(chain, {})[residue] = 100 * p[r, column]
    return values


def write_bfactor_structure(path: str | Path, values: dict[str, dict[str, float]], out: str | Path) -> int:
    """Write ``path`` as mmCIF with every atom's B-factor replaced: ``values[chain][resnum+icode]``
    for predicted residues, 0 for every other atom (so a colour ramp means the same on all chains).
    Every model of an NMR ensemble gets the same values. Returns the number of residues set."""
    structure = read_structure(path, remove_hydrogens=False)
    set_residues = 0
    for model in structure:
        for chain in model:
            chain_values = values.get(chain.name, {})
            for residue in chain:
                value = chain_values.get(f"{residue.seqid.num}{residue.seqid.icode.strip()}")
                for atom in residue:
                    atom.b_iso = 0.0 if value is None or value != value else float(value)
                set_residues += value is not None and model.num == structure[0].num
    text = structure.make_mmcif_document().as_string()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, text)
    return set_residues


STRUCTURE_SUFFIXES = (".pdb", ".cif", ".ent", ".mmcif")


def structure_files(paths: list[Path]) -> list[Path]:
    """Files given, and the structure files (.pdb/.cif/.ent, optionally .gz) inside directories given."""
    return expand_inputs(
        paths,
        lambda d: [p for p in d.iterdir() if p.name.lower().removesuffix(".gz").endswith(STRUCTURE_SUFFIXES)],
        "no structure files (.pdb, .cif, .ent, optionally .gz)",
    )


def labelled_sites(
    files: list[Path], max_residues: int = 0, cutoffs: tuple[float, ...] = DEFAULT_CUTOFFS
) -> tuple[list[ContactSite], list[tuple[str, str]]]:
    """Labelled sites of every protein chain of ``files``; unusable structures become (file, reason)."""
    sites, skipped = [], []
    for path in files:
        try:
            found = sites_from_structure(path, cutoffs)
        except InputError as exc:
            skipped.append((path.name, str(exc).split(": ", 1)[-1]))
            continue
        for site in found:
            if max_residues and len(site.protein) > max_residues:
                skipped.append((site.name, f"{len(site.protein)} residues > --max-residues {max_residues}"))
            else:
                sites.append(site)
    return sites, skipped


def fitting_sites(sites: list[ContactSite], tokenizer, context: int) -> tuple[list[ContactSite], list[tuple[str, str]]]:
    """Sites that can be encoded in ``context`` tokens (a long protein is cut; nucleic acids that do
    not fit on their own cannot be), and (site, reason) for the others."""
    kept, skipped = [], []
    for site in sites:
        try:
            encode_site(tokenizer, site, context)
        except InputError as exc:
            skipped.append((site.name, str(exc).split(": ", 1)[-1]))
            continue
        kept.append(site)
    return kept, skipped
