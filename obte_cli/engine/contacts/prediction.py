"""Contacts predicted on new inputs, the protocol of `obte contacts predict`: the sites (the chains of a
structure, or FASTA proteins each with the same nucleic acids), P(contact) per residue from a trained
:class:`~obte_cli.engine.contacts.predictor.ContactPredictor`, where each residue sits in the structure
(:func:`~obte_cli.engine.contacts.io.place_on_structure`), and the table of it all.

A protein too long to fit the model's context beside its nucleic acids is predicted in overlapping windows
(:func:`protein_windows`): each window is the protein's residues ``start .. start + window`` with the whole
nucleic acids, as a short site is, and a residue's probabilities are the mean over the windows that hold it.
Nucleic acids too long to leave :data:`MIN_PROTEIN_WINDOW` tokens for the protein (a gene or a genome region
rather than a bound site) are read in overlapping windows too (:func:`nucleic_windows`, half the context at
most; the second strand of a duplex is cut to the region paired with the first's window): a residue's
P(contact) is then the highest over the nucleic-acid windows — a contact with any part of the nucleic acid
is a contact — of its mean over the protein windows.
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
from obte_cli.engine.embedding.embed import window_starts

MIN_PROTEIN_WINDOW = 32  # residues: fewer leaves a window too little of its protein to say anything


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
    windows: list[int] | None = None  # per site: the windows its protein was predicted in (1: it fit)

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
    probabilities, windows = predict_windowed(predictor, sites, device)
    observed = protein is None  # sites read from the structure carry their observed contacts
    placements, mappings = place_on_structure(sites, chain_sites, observed)
    return ContactPrediction(
        predictor, sites, probabilities, placements, mappings, observed, not observed and bool(chain_sites), windows
    )


def nucleic_windows(predictor: ContactPredictor, site: ContactSite) -> list[list[str]]:
    """The strands of each nucleic-acid window: the site's own strands when they leave the protein at least
    :data:`MIN_PROTEIN_WINDOW` tokens, else windows of at most half the context (module docstring)."""
    tokenizer, context = predictor.tokenizer, predictor.context
    strands = site.na_sequences
    acids = len(tokenizer.encode_one(site.segments()[1:], on_unknown="unk"))
    if acids + 2 + MIN_PROTEIN_WINDOW <= context:
        return [list(strands)]
    window = (context // 2 - 2 * len(strands)) // len(strands)  # residues per strand: each has a tag and <EOS>
    first = strands[0]
    pieces = []
    for start in window_starts(len(first), window):
        piece = [first[start : start + window]]
        for other in strands[1:]:
            if len(other) == len(first):  # the complementary strand: the region paired with this window
                piece.append(other[max(0, len(other) - start - window) : len(other) - start])
            else:
                begin = min(start, max(len(other) - window, 0))
                piece.append(other[begin : begin + window])
        pieces.append(piece)
    return pieces


def protein_windows(predictor: ContactPredictor, site: ContactSite) -> tuple[int, list[int]]:
    """(window, starts): the protein residues per window and where each window starts; one window from 0
    when the whole site fits the context. Windows overlap by half, the last one ends with the protein."""
    tokenizer, context = predictor.tokenizer, predictor.context
    segments = site.segments()
    if len(tokenizer.encode_one(segments, on_unknown="unk")) <= context:
        return len(site.protein), [0]
    acids = len(tokenizer.encode_one(segments[1:], on_unknown="unk"))  # the nucleic acids, tags and <EOS>s
    window = context - acids - 2  # the protein's tag and <EOS>; a residue is never less than one token
    if window < MIN_PROTEIN_WINDOW:
        raise InputError(
            f"site '{site.name}': the nucleic acids take {acids} of the model's {context} tokens, leaving "
            f"{max(window, 0)} for the protein (at least {MIN_PROTEIN_WINDOW} are needed)"
        )
    return window, window_starts(len(site.protein), window)


def predict_windowed(
    predictor: ContactPredictor, sites: list[ContactSite], device="cpu"
) -> tuple[list[np.ndarray], list[int]]:
    """P(contact) (n_residues, n_cutoffs) per site, long proteins and nucleic acids in overlapping windows
    (module docstring), and the number of windows (protein × nucleic acid) of each site."""
    pieces, owners = [], []  # window sites, and (site, nucleic-acid window, first residue) of each
    for i, site in enumerate(sites):
        for j, strands in enumerate(nucleic_windows(predictor, site)):
            part = ContactSite(site.name, site.protein, strands, site.na_types, site.residue_ids, site.labels)
            window, starts = protein_windows(predictor, part)
            for start in starts:
                end = start + window
                labels = site.labels[start:end] if site.labels is not None else None
                residues = site.residue_ids[start:end]
                pieces.append(ContactSite(site.name, site.protein[start:end], strands, site.na_types, residues, labels))
                owners.append((i, j, start))
    predicted = predictor.predict(pieces, device=device) if pieces else []
    n_cutoffs = len(predictor.cutoffs)
    sums: dict[tuple[int, int], np.ndarray] = {}
    counts: dict[tuple[int, int], np.ndarray] = {}
    windows = [0] * len(sites)
    for (i, j, start), p in zip(owners, predicted):
        total = sums.setdefault((i, j), np.zeros((len(sites[i].protein), n_cutoffs)))
        count = counts.setdefault((i, j), np.zeros(len(sites[i].protein)))
        covered = ~np.isnan(p[:, 0])
        where = np.flatnonzero(covered) + start
        total[where] += p[covered]
        count[where] += 1
        windows[i] += 1
    by_site: list[list[np.ndarray]] = [[] for _ in sites]
    with np.errstate(invalid="ignore", divide="ignore"):
        for (i, j), total in sorted(sums.items()):
            by_site[i].append(total / counts[i, j][:, None])
    probabilities = [means[0] if len(means) == 1 else np.fmax.reduce(means) for means in by_site]
    return probabilities, windows
