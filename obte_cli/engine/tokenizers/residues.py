"""Residue labels onto tokens, and token predictions back onto residues: the one mapping of every
per-residue task (``obte finetune residue``, contacts).

A BPE token may cover several residues, so a per-residue task is trained per token — each token's
target summarises the labels of the residues it covers — and predicted per token, each residue then
getting its token's prediction. Only the residue tokens of one segment (by default the first: the
protein of a contact site, the only sequence of a residue task) carry targets; tags, ``<EOS>`` and
the other segments are context. Residues cut away by truncation have no token, so they get no target
and no prediction (NaN).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from obte_cli.engine.tokenizers.base import Encoding


def segment_residue_tokens(encoding: Encoding, segment: int = 0) -> np.ndarray:
    """Indices of the tokens that cover residues of ``segment``, in order."""
    return np.flatnonzero((encoding.segment == segment) & encoding.is_residue)


def residue_labels_to_tokens(
    encoding: Encoding,
    labels: Sequence | np.ndarray,
    summarise: Callable,
    fill: float,
    dtype=np.float64,
    segment: int = 0,
) -> np.ndarray:
    """One target per token: ``summarise(labels[start:end])`` of the residues each token of ``segment``
    covers, ``fill`` for every other token. ``labels`` holds one label (or one row of labels) per
    residue; the result is (T,) or (T, n_columns) like a row of ``labels``."""
    columns = np.shape(labels)[1:] if isinstance(labels, np.ndarray) else ()
    out = np.full((len(encoding), *columns), fill, dtype=dtype)
    for t in segment_residue_tokens(encoding, segment):
        out[t] = summarise(labels[int(encoding.start[t]) : int(encoding.end[t])])
    return out


def token_values_to_residues(
    encoding: Encoding, token_values: np.ndarray, n_residues: int, segment: int = 0
) -> np.ndarray:
    """Per-token values (T, ...) → (n_residues, ...) float64: each residue of ``segment`` gets its
    token's value; residues cut by truncation get NaN."""
    out = np.full((n_residues, *token_values.shape[1:]), np.nan, dtype=np.float64)
    covering = encoding.residue_to_token(segment)
    out[: len(covering)] = token_values[covering]
    return out
