"""Contacts predicted on new inputs, the protocol of `obte contacts predict`: the sites (the chains of a
structure, or FASTA proteins each with the same nucleic acids), P(contact) per residue from a trained
:class:`~obte_cli.engine.contacts.predictor.ContactPredictor`, where each residue sits in the structure
(:func:`~obte_cli.engine.contacts.io.place_on_structure`), and the table of it all.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from obte_cli.engine.bio.complex_inputs import read_nucleic_acids, read_proteins
from obte_cli.engine.contacts.io import (
    ChainMapping,
    Placement,
    bfactor_values,
    place_on_structure,
    sites_from_structure,
)
from obte_cli.engine.contacts.predictor import ContactPredictor
from obte_cli.engine.contacts.sites import ContactSite
from obte_cli.engine.core.errors import InputError


def fasta_sites(protein: str | Path, nucleic_acid: str | Path, na_type: str, on_unknown: str) -> list[ContactSite]:
    """One site per protein record of ``protein``, each with the one or two strands of ``nucleic_acid``;
    residues are numbered from 1."""
    acids = read_nucleic_acids(nucleic_acid, na_type, on_unknown)
    if not 1 <= len(acids) <= 2:
        raise InputError(f"{nucleic_acid}: {len(acids)} records; give the one or two strands bound by the protein")
    return [
        ContactSite(
            p.id,
            p.sequence,
            [a.sequence for a in acids],
            [a.na_type for a in acids],
            [str(i + 1) for i in range(len(p.sequence))],
        )
        for p in read_proteins(protein, on_unknown)
    ]


@dataclass
class ContactPrediction:
    predictor: ContactPredictor
    sites: list[ContactSite]
    probabilities: list[np.ndarray]  # (n_residues, n_cutoffs) per site; NaN beyond the context
    placements: list[Placement]  # where each site's residues sit in the structure (empty without one)
    mappings: list[ChainMapping | None]  # the chain each FASTA protein was aligned to
    observed: bool  # the sites are the structure's chains, with their observed contacts
    aligned: bool  # FASTA proteins aligned to the structure's chains (the table shows the chain residue)

    def cut(self) -> Iterator[tuple[ContactSite, np.ndarray]]:
        """(site, indices of its residues without a prediction) for each protein cut to fit the context
        (the nucleic acids are kept whole)."""
        for site, p in zip(self.sites, self.probabilities):
            missing = np.flatnonzero(np.isnan(p[:, 0]))
            if missing.size:
                yield site, missing

    def columns(self) -> list[str]:
        cutoffs = self.predictor.cutoffs
        columns = ["site", "residue", "aa"] + (["chain_residue"] if self.aligned else [])
        columns += [f"p_{c:g}" for c in cutoffs] + [f"call_{c:g}" for c in cutoffs]
        return columns + ([f"contact_{c:g}" for c in cutoffs] if self.observed else [])

    def rows(self) -> Iterator[list[str]]:
        """One row of :meth:`columns` per residue: probabilities to 4 decimals, calls at the predictor's
        thresholds, NA where the residue got no prediction."""
        thresholds = self.predictor.thresholds
        for site, p, placement in zip(self.sites, self.probabilities, self.placements):
            for r, (residue, aa) in enumerate(zip(site.residue_ids, site.protein)):
                row = [site.name, residue, aa] + ([placement.get(r, ("", "NA"))[1]] if self.aligned else [])
                row += ["NA" if math.isnan(v) else f"{v:.4f}" for v in p[r]]
                row += ["NA" if math.isnan(v) else str(int(v >= t)) for v, t in zip(p[r], thresholds)]
                row += [str(int(v)) for v in site.labels[r]] if self.observed else []
                yield row

    def bfactors(self, cutoff: float) -> dict[str, dict[str, float]]:
        """{chain: {residue: 100 × P(contact within ``cutoff``)}} of the placed residues."""
        return bfactor_values(self.placements, self.probabilities, self.predictor.cutoffs.index(cutoff))


def predict_contacts(
    predictor: ContactPredictor,
    structure: str | Path | None = None,
    protein: str | Path | None = None,
    nucleic_acid: str | Path | None = None,
    na_type: str = "auto",
    on_unknown: str = "error",
    device="cpu",
) -> ContactPrediction:
    """P(contact) of the chains of ``structure``, or of the FASTA ``protein`` records with the
    ``nucleic_acid`` strands (aligned to ``structure``'s chains when it is given too)."""
    if (protein is None) != (nucleic_acid is None) or (protein is None and structure is None):
        raise ValueError("give a structure, or a protein and a nucleic-acid FASTA (and optionally a structure)")
    chain_sites = sites_from_structure(structure, predictor.cutoffs) if structure is not None else []
    sites = chain_sites if protein is None else fasta_sites(protein, nucleic_acid, na_type, on_unknown)
    probabilities = predictor.predict(sites, device=device)
    observed = protein is None  # sites read from the structure carry their observed contacts
    placements, mappings = place_on_structure(sites, chain_sites, observed)
    return ContactPrediction(
        predictor, sites, probabilities, placements, mappings, observed, not observed and bool(chain_sites)
    )
