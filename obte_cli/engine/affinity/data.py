"""Binding-affinity data: ProNAB JSON (as curated by the OmniBioTE authors) or a generic pairs TSV.

Both load into one table, one row per measurement:

=============  ==================================================================
protein_id     UniProt accession (JSON key) or the TSV's ``protein_id`` column
protein        protein sequence (upper case)
nucleic_acid   the nucleic-acid strand (upper case, U written as T)
complement     the complementary strand for double-stranded complexes, else ""
na_type        ``DNA`` or ``RNA``
dG             binding free energy ΔG in kcal/mol
=============  ==================================================================

Filters (the paper's, §4.3.1), each counted in the returned report:

* ``missing_value`` — ΔG or Kd recorded as 0 (ProNAB's missing values), as null, or as NaN or ±infinity;
* ``other_type`` — molecule type neither DNA nor RNA (ProNAB "Other");
* ``empty_protein`` / ``empty_nucleic_acid`` — no sequence (empty, or null in the JSON);
* ``nonstandard_protein`` / ``nonstandard_nucleic_acid`` — letters outside the 20 amino acids or A/C/G/T/U
  (unless ``keep_nonstandard``: then such rows stay, for a tokenizer to read the letters as ``<unk>``);
* ``duplicate`` — exact repeats of (protein, nucleic acid, complement, type, ΔG) are kept once: ProNAB
  lists many measurements several times, and repeats would only re-weight the loss.

Pairs TSV format (header required; ``protein_id``, ``complement`` and ``na_type`` optional)::

    protein_id  protein  nucleic_acid  complement  na_type  dG

A pairs TSV has no missing values: a ΔG that is not a finite number (``NaN``, ``inf``, empty) is an
error naming file, line and column. In ProNAB JSON a sequence or strand that is neither a string nor null
is an error naming the entry and row.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pandas as pd

from obte_cli.engine.bio.molecules import AMINO_ACIDS, MOLECULE_TYPES, NUCLEOTIDES
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.tokenizers.base import canonical_sequence

COLUMNS = ["protein_id", "protein", "nucleic_acid", "complement", "na_type", "dG"]
_PROTEIN = frozenset(AMINO_ACIDS)
_NUCLEIC = frozenset(NUCLEOTIDES)
_DNA = MOLECULE_TYPES["DNA"]  # canonical form of either strand type: upper case, U written as T


def _clean_rows(raw: list[dict], source: str, keep_nonstandard: bool = False) -> tuple[pd.DataFrame, dict[str, int]]:
    dropped: Counter[str] = Counter()
    kept = []
    seen = set()
    for row in raw:
        na_type = row["na_type"]
        protein = canonical_sequence(row["protein"], MOLECULE_TYPES["protein"])
        na = canonical_sequence(row["nucleic_acid"], _DNA)
        complement = canonical_sequence(row["complement"] or "", _DNA)
        if any(value == 0 or not math.isfinite(value) for value in (row["dG"], row.get("Kd", 1.0))):
            dropped["missing_value"] += 1
        elif na_type not in ("DNA", "RNA"):
            dropped["other_type"] += 1
        elif not protein:
            dropped["empty_protein"] += 1
        elif not na:
            dropped["empty_nucleic_acid"] += 1
        elif not keep_nonstandard and not set(protein) <= _PROTEIN:
            dropped["nonstandard_protein"] += 1
        elif not keep_nonstandard and not set(na + complement) <= _NUCLEIC:
            dropped["nonstandard_nucleic_acid"] += 1
        else:
            key = (protein, na, complement, na_type, row["dG"])
            if key in seen:
                dropped["duplicate"] += 1
                continue
            seen.add(key)
            kept.append(
                {
                    "protein_id": row["protein_id"],
                    "protein": protein,
                    "nucleic_acid": na,
                    "complement": complement,
                    "na_type": na_type,
                    "dG": float(row["dG"]),
                }
            )
    if not kept:
        raise InputError(f"{source}: no usable rows after filtering ({dict(dropped)})")
    return pd.DataFrame(kept, columns=COLUMNS), dict(dropped)


def _text(value, what: str) -> str:
    """A sequence field of the JSON: a string, or null for none; anything else is no sequence at all."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"{what} must be a string or null (got {type(value).__name__} {str(value)[:20]!r})")
    return value


def _number(value) -> float:
    """Kd or ΔG: null is a missing value (NaN, dropped as ``missing_value``); a non-number raises ValueError."""
    if isinstance(value, bool) or (value is not None and not isinstance(value, (int, float, str))):
        raise ValueError(value)
    return math.nan if value is None else float(value)


def load_pronab_json(path: str | Path, keep_nonstandard: bool = False) -> tuple[pd.DataFrame, dict[str, int]]:
    """Read ProNAB as curated by the OmniBioTE authors (dict keyed by UniProt accession)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object keyed by protein accession")
    raw = []
    for accession, entry in data.items():
        try:
            sequence = entry["Sequence"]
            rows = entry["binding data"]
        except (KeyError, TypeError):
            raise InputError(f"{path}: entry '{accession}' lacks 'Sequence' or 'binding data'") from None
        sequence = _text(sequence, f"{path}: entry '{accession}': 'Sequence'")
        if not isinstance(rows, list):
            raise InputError(f"{path}: entry '{accession}': 'binding data' must be a list of rows")
        for number, row in enumerate(rows, start=1):
            where = f"{path}: entry '{accession}' row {number}"
            try:
                na, na_type, kd, dg, complement = row
                raw.append(
                    {
                        "protein_id": accession,
                        "protein": sequence,
                        "nucleic_acid": _text(na, f"{where}: the nucleic acid"),
                        "complement": _text(complement, f"{where}: the complement"),
                        "na_type": na_type,
                        "Kd": _number(kd),
                        "dG": _number(dg),
                    }
                )
            except (TypeError, ValueError):
                raise InputError(f"{where}: expected [nucleic_acid, type, Kd, dG, complement]") from None
    return _clean_rows(raw, str(path), keep_nonstandard)


def load_pairs_tsv(path: str | Path, keep_nonstandard: bool = False) -> tuple[pd.DataFrame, dict[str, int]]:
    """Read a pairs TSV (see module docstring); ``na_type`` defaults to RNA if the strand has U, else DNA."""
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable TSV ({str(exc).splitlines()[0]})") from None
    missing = [c for c in ("protein", "nucleic_acid", "dG") if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (need protein, nucleic_acid, dG)")
    raw = []
    for number, row in enumerate(table.to_dict("records"), start=2):
        try:
            dg = float(row["dG"])
        except ValueError:
            raise InputError(f"{path}: line {number}: dG {row['dG']!r} is not a number") from None
        if not math.isfinite(dg):
            raise InputError(f"{path}: line {number}: dG {row['dG']!r} is not a finite number")
        na = row["nucleic_acid"]
        na_type = (row.get("na_type") or ("RNA" if "U" in na.upper() else "DNA")).strip()
        if na_type.upper() in ("DNA", "RNA"):
            na_type = na_type.upper()
        raw.append(
            {
                "protein_id": row.get("protein_id") or f"protein{number}",
                "protein": row["protein"],
                "nucleic_acid": na,
                "complement": row.get("complement", ""),
                "na_type": na_type,
                "dG": dg,
            }
        )
    return _clean_rows(raw, str(path), keep_nonstandard)


def load_affinity_data(path: str | Path, keep_nonstandard: bool = False) -> tuple[pd.DataFrame, dict[str, int]]:
    """Dispatch on content: a JSON object is ProNAB, anything else a pairs TSV."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with open(path, "rb") as handle:
        first = handle.read(64).lstrip()
    if first.startswith(b"{"):
        return load_pronab_json(path, keep_nonstandard)
    return load_pairs_tsv(path, keep_nonstandard)
