"""Protein–nucleic-acid contacts from structures (gemmi): the labels of `obte contacts labels`.

A structure (PDB or mmCIF, plain or .gz; the first model of NMR ensembles) is split into polymer chains
by gemmi's polymer typing. The paper's selection keeps complexes with exactly one protein chain and one
or two nucleic-acid chains; with ``per_chain=True`` every protein chain is taken in turn with all the
nucleic-acid chains (most protein–DNA complexes are dimers). Other complexes are skipped with a reason.

Sequences come from the chains' polymer residues: standard residues by their one-letter code, modified
residues by their parent's (gemmi's table writes those in lower case, e.g. MSE → m → M) and flagged,
unknown ones as X. Hydrogens are ignored.

A protein residue is in contact at cutoff c if any of its heavy atoms lies within c Å of any heavy
atom of the nucleic-acid chains; ``min_distance`` is the smallest such distance (NaN beyond the
largest cutoff). Distances come from gemmi's NeighborSearch over the nucleic-acid atoms only — a cell
list, not an all-pairs loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.inputs import COMPRESSED_STREAM_ERRORS, decimal_number, existing_file

DEFAULT_CUTOFFS = (4.0, 6.0, 8.0)


@dataclass
class ResidueContact:
    resnum: int
    icode: str
    aa: str
    modified: bool
    min_distance: float
    contacts: dict[float, bool]


@dataclass
class ProteinSite:
    structure: str
    protein_chain: str
    na_chains: list[str]
    na_types: list[str]  # DNA or RNA per nucleic-acid chain
    na_sequences: list[str]
    residues: list[ResidueContact] = field(default_factory=list)

    @property
    def sequence(self) -> str:
        return "".join(r.aa for r in self.residues)


@dataclass
class Skipped:
    structure: str
    reason: str


def _one_letter(residue, nucleic: bool) -> tuple[str, bool]:
    import gemmi

    info = gemmi.find_tabulated_residue(residue.name)
    code = info.one_letter_code if info is not None else " "
    if code.isupper():
        return code, False
    if code.strip() and code != "?":
        return code.upper(), True  # modified residue, mapped to its parent
    return ("N" if nucleic else "X"), True


def read_structure(path: str | Path, remove_hydrogens: bool = True):
    import gemmi

    path = existing_file(path)
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    try:
        structure = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError, OSError, IndexError) as exc:  # gemmi's C++ errors, mapped by pybind11
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:100]
        raise InputError(f"{path}: not a readable PDB/mmCIF structure ({reason})") from None
    if len(structure) == 0:
        raise InputError(f"{path}: no models (not a structure?)")
    if structure.input_format == gemmi.CoorFormat.Pdb:
        _check_pdb_coordinates(path)
    _check_finite_positions(path, structure[0])
    structure.setup_entities()
    if remove_hydrogens:
        structure.remove_hydrogens()
    return structure


def _check_pdb_coordinates(path: Path) -> None:
    """gemmi reads a PDB coordinate that is not a number (``abc``, blank) as 0: an InputError naming the line
    instead, for every ATOM/HETATM record (x, y, z in columns 31–54)."""
    from obte_cli.engine.bio.seqio import open_text

    try:
        with open_text(path, errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if line.startswith(("ATOM  ", "HETATM")):
                    for axis, start in zip("xyz", (30, 38, 46)):
                        field = line[start : start + 8]
                        try:
                            value = decimal_number(field)
                        except ValueError:
                            value = math.nan
                        if not math.isfinite(value):
                            raise InputError(
                                f"{path}: line {number}: coordinate {axis} {field.strip()!r} is not a number"
                            )
    except COMPRESSED_STREAM_ERRORS as exc:  # gemmi read what it could of a damaged .gz
        raise InputError(f"{path}: corrupt or truncated compressed file ({exc})") from None


def _check_finite_positions(path: Path, model) -> None:
    """gemmi reads an mmCIF coordinate that is not a number as NaN, which no distance would ever reach: an
    InputError naming the atom instead."""
    for chain in model:
        for residue in chain:
            for atom in residue:
                if not all(math.isfinite(v) for v in (atom.pos.x, atom.pos.y, atom.pos.z)):
                    raise InputError(
                        f"{path}: atom {atom.name} of residue {residue.name} {residue.seqid.num} in chain "
                        f"{chain.name}: a coordinate is not a number"
                    )


def _polymer_chains(model):
    import gemmi

    proteins, nucleic = [], []
    for chain in model:
        polymer = chain.get_polymer()
        if len(polymer) == 0:
            continue
        kind = polymer.check_polymer_type()
        if kind in (gemmi.PolymerType.PeptideL, gemmi.PolymerType.PeptideD):
            proteins.append((chain.name, polymer))
        elif kind in (gemmi.PolymerType.Dna, gemmi.PolymerType.Rna, gemmi.PolymerType.DnaRnaHybrid):
            nucleic.append((chain.name, polymer, "RNA" if kind == gemmi.PolymerType.Rna else "DNA"))
    return proteins, nucleic


def contact_sites(
    path: str | Path, cutoffs: tuple[float, ...] = DEFAULT_CUTOFFS, per_chain: bool = False
) -> tuple[list[ProteinSite], list[Skipped]]:
    """Per-residue contact labels for the protein chain(s) of one structure (see module docstring)."""
    import gemmi

    structure = read_structure(path)
    name = structure.name or Path(path).name.split(".")[0]
    model = structure[0]
    proteins, nucleic = _polymer_chains(model)
    if not nucleic:
        return [], [Skipped(name, "no nucleic-acid chain")]
    if not proteins:
        return [], [Skipped(name, "no protein chain")]
    if not per_chain and (len(proteins) != 1 or len(nucleic) > 2):
        return [], [
            Skipped(
                name,
                f"{len(proteins)} protein and {len(nucleic)} nucleic-acid chains "
                "(the paper's rule: exactly 1 and 1–2; use --per-chain to take each protein chain)",
            )
        ]
    # A model holding only the nucleotides (not the waters and ions that share their chain), so every
    # neighbour found is a nucleotide atom.
    na_model = gemmi.Model(model.num)
    for chain_name, polymer, _ in nucleic:
        chain = gemmi.Chain(chain_name)
        for residue in polymer:
            chain.add_residue(residue)
        na_model.add_chain(chain)
    try:
        search = gemmi.NeighborSearch(na_model, structure.cell, 5.0).populate()
    except RuntimeError as exc:  # a NaN or infinite coordinate among the nucleic-acid atoms
        raise InputError(f"{path}: unusable nucleic-acid coordinates ({str(exc).splitlines()[0][:100]})") from None
    radius = max(cutoffs)
    na_sequences = ["".join(_one_letter(r, True)[0] for r in polymer) for _, polymer, _ in nucleic]
    sites = []
    for chain_name, polymer in proteins:
        site = ProteinSite(name, chain_name, [c for c, _, _ in nucleic], [t for _, _, t in nucleic], na_sequences)
        for residue in polymer:
            best = math.inf
            for atom in residue:
                for mark in search.find_atoms(atom.pos, "\0", radius=radius):
                    best = min(best, mark.to_cra(na_model).atom.pos.dist(atom.pos))
            aa, modified = _one_letter(residue, False)
            site.residues.append(
                ResidueContact(
                    residue.seqid.num,
                    residue.seqid.icode.strip(),
                    aa,
                    modified,
                    best if best <= radius else math.nan,
                    {c: best <= c for c in cutoffs},
                )
            )
        sites.append(site)
    return sites, []
