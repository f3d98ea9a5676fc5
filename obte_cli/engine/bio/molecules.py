"""Molecule types: the vocabulary of sequence kinds obte knows, and how to recognise them.

A *molecule type* is the GenBank-style kind of a sequence (``DNA``, ``mRNA``, ``tRNA``, ``ss-RNA``,
``protein`` ...). Each belongs to one *modality* — ``protein`` or ``nucleic`` — and each nucleic type is
either DNA-like or RNA-like. Tokenizers put a tag token such as ``<mRNA>`` in front of every sequence;
types without a tag of their own in a given tokenizer fall back to their parent (``snRNA`` → ``RNA``).

Alphabets (the paper's filter): the 20 standard amino acids for proteins, A/C/G/T for DNA and A/C/G/U
for RNA. Nucleic acids are stored and tokenized with T for both T and U (one token: the tag says
whether the molecule is RNA), so RNA written with T — as in ProNAB — and RNA written with U give the
same tokens; decoding writes U back for RNA types.
"""

from __future__ import annotations

from dataclasses import dataclass

PROTEIN = "protein"
NUCLEIC = "nucleic"

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
NUCLEOTIDES = "ACGT"  # canonical storage alphabet; U is read as T


@dataclass(frozen=True)
class MoleculeType:
    name: str  # canonical spelling, also the tag text: <name>
    modality: str  # PROTEIN or NUCLEIC
    is_rna: bool = False
    parent: str | None = None  # tag to use when a tokenizer has no tag of this type's own


def _types() -> dict[str, MoleculeType]:
    rows = [
        MoleculeType("protein", PROTEIN),
        MoleculeType("antibody", PROTEIN, parent="protein"),
        MoleculeType("DNA", NUCLEIC),
        MoleculeType("ss-DNA", NUCLEIC, parent="DNA"),
        MoleculeType("ds-DNA", NUCLEIC, parent="DNA"),
        MoleculeType("ms-DNA", NUCLEIC, parent="DNA"),
        MoleculeType("RNA", NUCLEIC, is_rna=True),
        MoleculeType("mRNA", NUCLEIC, is_rna=True, parent="RNA"),
        MoleculeType("rRNA", NUCLEIC, is_rna=True, parent="RNA"),
        MoleculeType("tRNA", NUCLEIC, is_rna=True, parent="RNA"),
        MoleculeType("cRNA", NUCLEIC, is_rna=True, parent="RNA"),
        MoleculeType("ss-RNA", NUCLEIC, is_rna=True, parent="RNA"),
        MoleculeType("ds-RNA", NUCLEIC, is_rna=True, parent="RNA"),
        MoleculeType("ms-RNA", NUCLEIC, is_rna=True, parent="RNA"),
        MoleculeType("ds-mRNA", NUCLEIC, is_rna=True, parent="mRNA"),
        MoleculeType("ds-rRNA", NUCLEIC, is_rna=True, parent="rRNA"),
        MoleculeType("ds-cRNA", NUCLEIC, is_rna=True, parent="cRNA"),
        MoleculeType("uRNA", NUCLEIC, is_rna=True, parent="RNA"),
        MoleculeType("snRNA", NUCLEIC, is_rna=True, parent="RNA"),
        MoleculeType("snoRNA", NUCLEIC, is_rna=True, parent="RNA"),
        MoleculeType("scRNA", NUCLEIC, is_rna=True, parent="RNA"),
        # Types added after the default residue layout was fixed (see RESIDUE_LAYOUT_TYPES): a tokenizer
        # without their tag falls back to the parent's.
        MoleculeType("ncRNA", NUCLEIC, is_rna=True, parent="RNA"),
        MoleculeType("miRNA", NUCLEIC, is_rna=True, parent="ncRNA"),  # mature microRNA (miRBase mature.fa)
        MoleculeType("pre-miRNA", NUCLEIC, is_rna=True, parent="ncRNA"),  # stem-loop precursor (hairpin.fa)
    ]
    return {m.name: m for m in rows}


MOLECULE_TYPES: dict[str, MoleculeType] = _types()
# The types that have a tag in the default per-residue vocabulary, in id order. Frozen: adding a type
# here would shift every id after it and silently break residue models already on disk.
RESIDUE_LAYOUT_TYPES: tuple[str, ...] = tuple(MOLECULE_TYPES)[: tuple(MOLECULE_TYPES).index("scRNA") + 1]
_BY_LOWER = {name.lower(): mol for name, mol in MOLECULE_TYPES.items()}
# GenBank /mol_type qualifier values (INSDC controlled vocabulary) that are not type names themselves.
_ALIASES = {
    "genomic dna": "DNA",
    "other dna": "DNA",
    "unassigned dna": "DNA",
    "genomic rna": "RNA",
    "other rna": "RNA",
    "unassigned rna": "RNA",
    "transcribed rna": "RNA",
    "viral crna": "cRNA",
    "pre_mirna": "pre-miRNA",
    "precursor rna": "pre-miRNA",
    "aa": "protein",
    "prot": "protein",
    "peptide": "protein",
    "na": "DNA",
}


def molecule_type(name: str) -> MoleculeType:
    """Look up a molecule type by name, case-insensitively (``dna``, ``mRNA``, ``genomic DNA`` ...)."""
    key = name.strip().lower()
    if key in _BY_LOWER:
        return _BY_LOWER[key]
    if key in _ALIASES:
        return MOLECULE_TYPES[_ALIASES[key]]
    known = ", ".join(MOLECULE_TYPES)
    raise KeyError(f"unknown molecule type {name!r} (known: {known})")


def molecule_type_option(value: str) -> MoleculeType | None:
    """A ``--molecule-type`` value: None for ``auto`` (detect per record), else the type; unknown names
    are a user error (InputError) listing the known ones."""
    from obte_cli.engine.core.errors import InputError

    if value == "auto":
        return None
    try:
        return molecule_type(value)
    except KeyError as exc:
        raise InputError(f"--molecule-type: {exc.args[0]}") from None


def tag_chain(mol: MoleculeType) -> list[str]:
    """Tag names to try for ``mol``, most specific first (``ds-mRNA`` → mRNA → RNA)."""
    chain = [mol.name]
    while mol.parent is not None:
        mol = MOLECULE_TYPES[mol.parent]
        chain.append(mol.name)
    return chain


_NUCLEIC_LETTERS = frozenset("ACGTUN")


def detect_molecule_type(sequence: str) -> MoleculeType:
    """Guess the molecule type of one sequence.

    Rule: a sequence made only of A, C, G, T, U and N (any case) with at least one A/C/G/T/U is
    nucleic — RNA if it has a U and no T, otherwise DNA; anything else is protein. A short protein made
    only of those letters (e.g. ``ACGT``) is therefore read as DNA: pass the molecule type explicitly
    when that matters.
    """
    letters = set(sequence.upper())
    if letters and letters <= _NUCLEIC_LETTERS and letters != {"N"}:
        if "U" in letters and "T" not in letters:
            return MOLECULE_TYPES["RNA"]
        return MOLECULE_TYPES["DNA"]
    return MOLECULE_TYPES["protein"]
