"""Contact sites: a protein chain with the nucleic acids it binds and its per-residue contact labels, read
from an `obte contacts labels` table, and encoded as one joint input (the affinity layout)::

    <protein> M K ... <EOS> <DNA> A C G ... <EOS> <DNA> C G T ... <EOS>

The head (:mod:`obte_cli.engine.contacts.head`) and the attention probe (:mod:`obte_cli.engine.contacts.probe`)
train on these encodings, the predictor (:mod:`obte_cli.engine.contacts.predictor`) wraps either.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.tables import read_table
from obte_cli.engine.tokenizers.base import Encoding, Segment, Tokenizer, encode_prefix_to_fit
from obte_cli.engine.tokenizers.residues import residue_labels_to_tokens

REQUIRED_COLUMNS = ("pdb_id", "chain", "resnum", "aa", "na_types", "na_sequences")


@dataclass
class ContactSite:
    """One protein chain with the nucleic acids it binds, and (for training) its contact labels."""

    name: str  # pdb_id:chain
    protein: str
    na_sequences: list[str]
    na_types: list[str]
    residue_ids: list[str]  # resnum + insertion code, for output
    labels: np.ndarray | None = None  # (n_residues, n_cutoffs) of 0/1

    def segments(self) -> list[Segment]:
        return [Segment(self.protein, "protein", self.name)] + [
            Segment(seq, kind, f"{self.name} nucleic acid {i + 1}")
            for i, (seq, kind) in enumerate(zip(self.na_sequences, self.na_types))
        ]


def cutoff_columns(columns) -> dict[float, str]:
    """``contact_4``, ``contact_6.5`` ... → {4.0: "contact_4", 6.5: "contact_6.5"}."""
    found = {}
    for column in columns:
        if column.startswith("contact_"):
            try:
                found[float(column[len("contact_") :])] = column
            except ValueError:
                continue
    return dict(sorted(found.items()))


def read_contact_labels(path: str | Path) -> tuple[list[ContactSite], tuple[float, ...]]:
    """Sites of an `obte contacts labels` TSV (rows grouped by pdb_id and chain, in file order)."""
    # `contacts labels` never quotes a field: a '"' is a character, and no field holds a line break
    table = read_table(path, dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    if not isinstance(table.index, pd.RangeIndex):  # pandas took the extra first field of every row as an index
        raise InputError(f"{path}: the rows have more fields than the header")
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    cutoffs = cutoff_columns(table.columns)
    if missing or not cutoffs:
        need = ", ".join(missing + ([] if cutoffs else ["contact_<Å> columns"]))
        raise InputError(f"{path}: not an `obte contacts labels` table (missing {need})")
    if table.empty:
        raise InputError(f"{path}: no residues")
    sites = []
    for (pdb_id, chain), rows in table.groupby(["pdb_id", "chain"], sort=False):
        name = f"{pdb_id}:{chain}"
        try:
            labels = rows[list(cutoffs.values())].astype(int).to_numpy()
        except (ValueError, OverflowError):
            raise InputError(f"{path}: site {name}: contact columns must be 0 or 1") from None
        if not set(np.unique(labels)) <= {0, 1}:
            raise InputError(f"{path}: site {name}: contact columns must be 0 or 1")
        # one letter per row, or the residues and their labels drift apart (a wrong-length protein)
        bad = next(((i, a) for i, a in zip(rows.index, rows["aa"]) if len(a) != 1 or not a.isalpha()), None)
        if bad is not None:
            raise InputError(
                f"{path}: line {bad[0] + 2} (site {name}): aa must be one amino-acid letter (got {bad[1][:10]!r})"
            )
        na_sequences = rows["na_sequences"].iat[0].split(",")
        na_types = rows["na_types"].iat[0].split(",")
        if len(na_sequences) != len(na_types) or not all(na_sequences):
            raise InputError(
                f"{path}: site {name}: na_sequences and na_types must list the same number of non-empty entries "
                f"(got {len(na_sequences)} and {len(na_types)})"
            )
        _check_nucleic_acids(f"{path}: site {name}", na_sequences, na_types)
        icode = rows["icode"] if "icode" in rows.columns else [""] * len(rows)
        sites.append(
            ContactSite(
                name,
                "".join(rows["aa"]),
                na_sequences,
                na_types,
                [f"{r}{i}" for r, i in zip(rows["resnum"], icode)],
                labels,
            )
        )
    return sites, tuple(cutoffs)


_NUCLEIC_LETTERS = frozenset("ACGTUN")  # N: a nucleotide `contacts labels` could not name (modified, unknown)


def _check_nucleic_acids(where: str, sequences: list[str], types: list[str]) -> None:
    """InputError naming ``where`` unless every strand is DNA or RNA written in A, C, G, T, U and N (what
    `contacts labels` writes): a strand of other letters (X, Q, ...) is not a nucleic acid to train on."""
    for number, (sequence, kind) in enumerate(zip(sequences, types), start=1):
        if kind not in ("DNA", "RNA"):
            raise InputError(f"{where}: nucleic acid {number} has type {kind!r}, not DNA or RNA")
        bad = next((i for i, letter in enumerate(sequence.upper()) if letter not in _NUCLEIC_LETTERS), None)
        if bad is not None:
            raise InputError(
                f"{where}: nucleic acid {number}: {sequence[bad]!r} at position {bad + 1} is not a nucleotide "
                "(A, C, G, T, U, or N for one `contacts labels` could not name)"
            )


# ------------------------------------------------------------------------------------------------ encoding
def encode_site(tokenizer: Tokenizer, site: ContactSite, context: int, truncate: bool = True) -> Encoding:
    """Encode a site; unknown residues (X, modified nucleotides written N) become ``<unk>`` (a caller that
    wants them refused checks the sites first, :func:`~obte_cli.engine.tokenizers.base.check_standard`). Too
    long: an error, or the protein is cut at its C-terminal end (its cut residues get no prediction)."""
    segments = site.segments()
    encoding = tokenizer.encode_one(segments, on_unknown="unk")
    if len(encoding) <= context:
        return encoding
    if not truncate:
        raise InputError(f"site '{site.name}': {len(encoding)} tokens exceed the model's context of {context}")
    return encode_prefix_to_fit(
        tokenizer,
        segments,
        context,
        f"site '{site.name}': the nucleic acids alone exceed the model's context of {context}",
        on_unknown="unk",
    )


def sites_cut(tokenizer: Tokenizer, sites: list[ContactSite], context: int) -> int:
    """How many of ``sites`` are longer than ``context`` tokens, so that :func:`encode_site` cuts their protein."""
    return sum(len(tokenizer.encode_one(site.segments(), on_unknown="unk")) > context for site in sites)


def protein_token_targets(encoding: Encoding, labels: np.ndarray) -> np.ndarray:
    """(T, n_cutoffs) targets: the fraction of each protein token's residues in contact; NaN elsewhere."""
    return residue_labels_to_tokens(encoding, labels, lambda rows: rows.mean(axis=0), np.nan, np.float32)
