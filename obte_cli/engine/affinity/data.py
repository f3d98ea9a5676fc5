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

* ``missing_value`` — ΔG or Kd recorded as 0 (ProNAB's missing values) or as null;
* ``other_type`` — molecule type neither DNA nor RNA (ProNAB "Other");
* ``empty_nucleic_acid`` — no strand (empty or null in the JSON; ProNAB has rows that give only the
  complementary strand);
* ``nonstandard_protein`` / ``nonstandard_nucleic_acid`` — letters outside the 20 amino acids or A/C/G/T/U
  (unless ``keep_nonstandard``: then such rows stay, for a tokenizer to read the letters as ``<unk>``);
* ``duplicate`` — exact repeats of (protein, nucleic acid, complement, type, ΔG) are kept once: ProNAB
  lists many measurements several times, and repeats would only re-weight the loss.

Pairs TSV format (header required; ``protein_id``, ``complement`` and ``na_type`` optional; an empty
``na_type`` is RNA if the strand has a U, else DNA; an empty ``complement`` is a single strand)::

    protein_id  protein  nucleic_acid  complement  na_type  dG

A pairs TSV has no missing values: a ΔG that is not a finite number (``NaN``, ``inf``, empty), an empty
protein or nucleic_acid cell, is an error naming file, line and column. In ProNAB JSON a ΔG or Kd of NaN
or ±infinity (not a ProNAB missing value: those are 0) is an error naming the entry, row and column, and
so is a sequence or strand that is neither a string nor null, and an entry whose protein ``Sequence`` is
null or empty. In both, a ΔG beyond ±DG_LIMIT_KCAL (100 kcal/mol) is not a binding free energy: an error.

The same pairs TSV, read by the same reader (:func:`read_pairs_rows`), is what `obte affinity --complexes`
predicts for (:func:`read_complexes_tsv`: dG optional and ignored, an optional ``na_id`` column, no filters).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pandas as pd

from obte_cli.engine.affinity.complexes import DG_LIMIT_KCAL
from obte_cli.engine.bio.complex_inputs import Complex, nucleic_acid_record, protein_record
from obte_cli.engine.bio.molecules import AMINO_ACIDS, MOLECULE_TYPES, NUCLEOTIDES
from obte_cli.engine.bio.seqio import display_name, open_text
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.inputs import COMPRESSED_STREAM_ERRORS, decimal_number, existing_file
from obte_cli.engine.core.tables import read_table
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
        if any(value == 0 or math.isnan(value) for value in (row["dG"], row.get("Kd", 1.0))):  # 0 or null
            dropped["missing_value"] += 1
        elif na_type not in ("DNA", "RNA"):
            dropped["other_type"] += 1
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


def _number(value, where: str) -> float:
    """Kd or ΔG: null is a missing value (NaN, dropped as ``missing_value``); a non-number raises ValueError;
    NaN or ±infinity (written so, or an integer too large for a float) is an error naming ``where``."""
    if isinstance(value, bool) or (value is not None and not isinstance(value, (int, float, str))):
        raise ValueError(value)
    if value is None:
        return math.nan
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        shown = repr(value) if isinstance(value, (str, float)) else "an integer too large for a float"
        raise InputError(f"{where} {shown} is not a finite number")
    return number


def check_dg_range(dg: float, where: str) -> None:
    """InputError naming ``where`` unless |ΔG| ≤ DG_LIMIT_KCAL (or ΔG is NaN: a JSON missing value)."""
    if abs(dg) > DG_LIMIT_KCAL:
        raise InputError(
            f"{where} {dg:g} is beyond ±{DG_LIMIT_KCAL:g} kcal/mol: not a binding free energy (ΔG in kcal/mol)"
        )


MAX_JSON_CHARS = 256 * 2**20  # ProNAB is 1.4 MB; a compressed file may not expand beyond this


def load_pronab_json(path: str | Path, keep_nonstandard: bool = False) -> tuple[pd.DataFrame, dict[str, int]]:
    """Read ProNAB as curated by the OmniBioTE authors (dict keyed by UniProt accession). At most
    :data:`MAX_JSON_CHARS` characters are read: a small .gz that expands without bound is refused, not held."""
    try:
        with open_text(path) as handle:  # plain, gzip or xz
            text = handle.read(MAX_JSON_CHARS + 1)
        if len(text) > MAX_JSON_CHARS:
            raise InputError(
                f"{path}: more than {MAX_JSON_CHARS // 2**20} MiB of JSON (once decompressed); "
                "not a ProNAB file obte reads"
            )
        data = json.loads(text)
    except COMPRESSED_STREAM_ERRORS as exc:
        raise InputError(f"{path}: corrupt or truncated compressed file ({exc})") from None
    except OSError as exc:  # an I/O error
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, RecursionError) as exc:  # bad JSON or UTF-8, a number of > 4300 digits, deep nesting
        raise InputError(f"{path}: not valid JSON ({(str(exc).splitlines() or ['?'])[0][:200]})") from None
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
        if not sequence:
            what = "null" if entry["Sequence"] is None else "empty"
            raise InputError(f"{path}: entry '{accession}': 'Sequence' is {what}, no protein to bind")
        if not isinstance(rows, list):
            raise InputError(f"{path}: entry '{accession}': 'binding data' must be a list of rows")
        for number, row in enumerate(rows, start=1):
            where = f"{path}: entry '{accession}' row {number}"
            try:
                na, na_type, kd, dg, complement = row
                dg = _number(dg, f"{where}: dG")
                check_dg_range(dg, f"{where}: dG")
                raw.append(
                    {
                        "protein_id": accession,
                        "protein": sequence,
                        "nucleic_acid": _text(na, f"{where}: the nucleic acid"),
                        "complement": _text(complement, f"{where}: the complement"),
                        "na_type": na_type,
                        "Kd": _number(kd, f"{where}: Kd"),
                        "dG": dg,
                    }
                )
            except (TypeError, ValueError):
                raise InputError(f"{where}: expected [nucleic_acid, type, Kd, dG, complement]") from None
    return _clean_rows(raw, str(path), keep_nonstandard)


def read_pairs_rows(path: str | Path, need_dg: bool = True) -> list[dict]:
    """The rows of a pairs TSV as written, each a dict with its ``line`` number, ``protein_id`` and ``na_id``
    (``protein<line>`` / ``na<line>`` when the column is absent or the cell empty), ``protein``,
    ``nucleic_acid``, ``complement`` and ``na_type`` ("" when not given), and with ``need_dg`` a finite
    ``dG``. Without ``need_dg`` (prediction) the dG column is optional and not read."""
    table = read_table(path, dtype=str, keep_default_na=False)
    required = ["protein", "nucleic_acid", "dG"] if need_dg else ["protein", "nucleic_acid"]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (need {', '.join(required)})")
    rows = []
    for number, row in enumerate(table.to_dict("records"), start=2):
        item = {
            "line": number,
            "protein_id": row.get("protein_id") or f"protein{number}",
            "na_id": row.get("na_id") or f"na{number}",
            "protein": row["protein"],
            "nucleic_acid": row["nucleic_acid"],
            "complement": row.get("complement", ""),
            "na_type": row.get("na_type", "").strip(),
        }
        if need_dg:
            try:
                dg = decimal_number(row["dG"])
            except ValueError:
                raise InputError(f"{path}: line {number}: dG {row['dG']!r} is not a number") from None
            if not math.isfinite(dg):
                raise InputError(f"{path}: line {number}: dG {row['dG']!r} is not a finite number")
            check_dg_range(dg, f"{path}: line {number}: dG")
            item["dG"] = dg
        rows.append(item)
    return rows


def load_pairs_tsv(path: str | Path, keep_nonstandard: bool = False) -> tuple[pd.DataFrame, dict[str, int]]:
    """Read a pairs TSV (see module docstring); ``na_type`` defaults to RNA if the strand has U, else DNA."""
    raw = []
    for row in read_pairs_rows(path):
        for column in ("protein", "nucleic_acid"):
            if not _letters(row[column]):
                raise InputError(f"{path}: line {row['line']}: {column} is empty")
        na_type = row["na_type"] or ("RNA" if "U" in row["nucleic_acid"].upper() else "DNA")
        if na_type.upper() in ("DNA", "RNA"):
            na_type = na_type.upper()
        raw.append({**{c: row[c] for c in COLUMNS}, "na_type": na_type})
    return _clean_rows(raw, str(path), keep_nonstandard)


def read_complexes_tsv(path: str | Path, na_type: str = "auto", on_unknown: str = "error") -> list[Complex]:
    """The complexes of a pairs TSV, one per row, for prediction (`obte affinity --complexes`): the file
    `obte finetune affinity` trains on, read by the same reader, so a user predicts exactly what they
    would train on. The dG column is optional and ignored. No row is filtered: what training would drop
    (an na_type other than DNA or RNA, an empty sequence, letters outside the alphabets unless
    ``on_unknown="unk"``) is an error naming file and line. ``na_type`` (auto, DNA or RNA) applies to rows
    whose na_type cell is empty; an empty complement cell is a single strand."""
    name = display_name(path)
    complexes = []
    for row in read_pairs_rows(path, need_dg=False):
        where = f"{name}: line {row['line']}"
        given = row["na_type"]
        if given and given.upper() not in ("DNA", "RNA"):
            raise InputError(f"{where}: na_type {given!r} is not DNA or RNA (or empty, to guess from the strand)")
        kind = given.upper() if given else na_type
        protein = protein_record(row["protein_id"], _letters(row["protein"]), f"{where}, protein", on_unknown)
        acid = nucleic_acid_record(
            row["na_id"], _letters(row["nucleic_acid"]), f"{where}, nucleic_acid", kind, on_unknown
        )
        complement = _letters(row["complement"])
        if complement:
            complement = nucleic_acid_record(
                row["na_id"], complement, f"{where}, complement", acid.na_type, on_unknown
            ).sequence
        complexes.append(Complex(protein, acid, complement))
    if not complexes:
        raise InputError(f"{name}: no complexes (only a header)")
    return complexes


def _letters(text: str) -> str:
    return "".join(text.split())


def load_affinity_data(path: str | Path, keep_nonstandard: bool = False) -> tuple[pd.DataFrame, dict[str, int]]:
    """Dispatch on content: a JSON object is ProNAB, anything else a pairs TSV."""
    path = existing_file(path)
    try:
        with open_text(path) as handle:  # looks inside a gzip or xz file
            first = handle.read(64).lstrip()
    except (OSError, ValueError, *COMPRESSED_STREAM_ERRORS):
        first = ""  # not text: let the TSV reader say what is wrong with it
    if first.startswith("{"):
        return load_pronab_json(path, keep_nonstandard)
    return load_pairs_tsv(path, keep_nonstandard)
