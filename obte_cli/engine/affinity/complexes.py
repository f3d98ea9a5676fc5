"""ΔG of protein–nucleic-acid binding: inputs, target scaling, metrics and Kd.

Input layout (the reference's): the protein, then the nucleic-acid strand, then its complementary
strand when the complex is double-stranded, each as ``<tag> residues <EOS>``::

    <protein> M K ... <EOS> <DNA> A C G ... <EOS> <DNA> C G T ... <EOS>

Inputs longer than the model's context are an error, or with ``truncate=True`` the *protein* is cut
at its C-terminal end until the whole input fits: the nucleic acid, the other half of the complex, is
always kept whole (the reference cut the token list at 1,024, which could drop the nucleic acid).

Units: ΔG in kcal/mol; Kd in mol/L from ΔG = RT ln Kd at 298.15 K.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.tokenizers.base import Encoding, Segment, Tokenizer, encode_prefix_to_fit

GAS_CONSTANT_KCAL = 1.987204259e-3  # kcal / (mol·K)
TEMPERATURE_K = 298.15
RT_KCAL = GAS_CONSTANT_KCAL * TEMPERATURE_K  # 0.5925 kcal/mol
# A ΔG further from 0 than this is not a binding free energy (ProNAB's lie between −20.01 and 0 kcal/mol): data
# beyond it are refused, and so is a stored model number beyond it. Kd = exp(ΔG / RT) stays a finite float64.
DG_LIMIT_KCAL = 100.0


def kd_from_dg(dg_kcal_mol: np.ndarray | float) -> np.ndarray | float:
    """Dissociation constant (M) from ΔG (kcal/mol): Kd = exp(ΔG / RT)."""
    return np.exp(np.asarray(dg_kcal_mol, dtype=np.float64) / RT_KCAL)


def complex_segments(
    protein: str, nucleic_acid: str, complement: str = "", na_type: str = "DNA", name: str = ""
) -> list[Segment]:
    segments = [Segment(protein, "protein", name), Segment(nucleic_acid, na_type, name)]
    if complement:
        segments.append(Segment(complement, na_type, f"{name} (complement)" if name else "complement"))
    return segments


def row_name(table, row: int) -> str:
    """How errors name row ``row`` (0-based) of a ΔG table: its protein and its 1-based row number."""
    return f"{table['protein_id'].iat[row]} (row {row + 1})"


def encode_complex(
    tokenizer: Tokenizer, segments: list[Segment], context: int, truncate: bool = False, on_unknown: str = "error"
) -> tuple[Encoding, int]:
    """Encode one complex; returns the encoding and the number of protein residues cut (0 if none)."""
    encoding = tokenizer.encode_one(segments, on_unknown=on_unknown)
    if len(encoding) <= context:
        return encoding, 0
    name = segments[0].name or "input"
    if not truncate:
        raise InputError(
            f"record '{name}': {len(encoding)} tokens exceed the model's context of {context} (use --truncate to "
            "cut the protein)"
        )
    encoding = encode_prefix_to_fit(
        tokenizer,
        segments,
        context,
        f"record '{name}': the nucleic acids alone exceed the model's context of {context}",
        on_unknown=on_unknown,
    )
    kept = int(encoding.end[encoding.segment == 0].max())  # residues of the protein still encoded
    return encoding, len(segments[0].sequence) - kept


@dataclass
class TargetScaler:
    """Standardises ΔG for training (z = (ΔG − mean) / sd) and maps predictions back to kcal/mol."""

    mean: float
    sd: float

    @classmethod
    def fit(cls, values: np.ndarray) -> TargetScaler:
        values = np.asarray(values, dtype=np.float64)
        sd = float(values.std())
        return cls(float(values.mean()), sd if sd > 0 else 1.0)

    def transform(self, values: np.ndarray) -> np.ndarray:
        return ((np.asarray(values, dtype=np.float64) - self.mean) / self.sd).astype(np.float32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, dtype=np.float64) * self.sd + self.mean

    def to_dict(self) -> dict:
        return {"mean": self.mean, "sd": self.sd}
