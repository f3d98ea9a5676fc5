"""ΔG models on disk and their predictions: what `obte affinity` loads.

An affinity model is either

* one transformer model directory whose ``config.json`` head is ``{"kind": "sequence", "task": "affinity",
  ...}``, carrying the target scaling (``dg_mean``, ``dg_sd``) so its output is in kcal/mol;
* one composition model directory (:mod:`obte_cli.engine.affinity.composition_model`); or
* an *ensemble* directory — what `obte finetune affinity` writes — with ``ensemble.json`` naming its
  member model directories (the cross-validation folds). The prediction is the members' mean, and
  ``dG_sd`` their standard deviation: how much models trained on different proteins disagree.

The members of an ensemble are all of one kind; transformer members share one tokenizer and context,
so each complex is encoded once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from obte_cli.engine.affinity.complexes import (
    TargetScaler,
    complex_segments,
    encode_complex,
    kd_from_dg,
    row_name,
)
from obte_cli.engine.affinity.composition_model import (
    CompositionAffinityModel,
    is_composition_model,
    load_composition_model,
)
from obte_cli.engine.bio.complex_inputs import Complex
from obte_cli.engine.core.errors import ModelFormatError, NonFiniteResultError
from obte_cli.engine.core.jsonfiles import read_json_file
from obte_cli.engine.core.outputs import write_text_atomic
from obte_cli.engine.model.directory import CONFIG_FILE, LoadedModel, load_model
from obte_cli.engine.model.heads import LinearHead
from obte_cli.engine.model.inference import Readout, predict_sequence_task
from obte_cli.engine.tokenizers.base import Tokenizer

ENSEMBLE_FILE = "ensemble.json"
ENSEMBLE_FORMAT = "obte-ensemble"
AFFINITY_TASK = "affinity"


def affinity_head_description(head: LinearHead, scaler: TargetScaler, readout: str = "first") -> dict:
    return {
        **head.describe(),
        "readout": readout,
        "task": AFFINITY_TASK,
        "target": "dG_kcal_mol",
        "dg_mean": scaler.mean,
        "dg_sd": scaler.sd,
    }


def affinity_readout(kind: str, tokenizer: Tokenizer) -> Readout:
    """The :class:`Readout` of kind ``kind`` for complexes encoded by ``tokenizer``."""
    return Readout(kind, tokenizer.end_ids() if kind == "parts-mean" else frozenset())


def write_ensemble_manifest(directory: Path, members: list[str], metadata: dict) -> Path:
    path = Path(directory) / ENSEMBLE_FILE
    manifest = {"format": ENSEMBLE_FORMAT, "task": AFFINITY_TASK, "members": members, "metadata": metadata}
    return write_text_atomic(path, json.dumps(manifest, indent=2) + "\n")


@dataclass
class PreparedComplex:
    """One complex as every kind of member reads it: its sequences, and its token ids when the ensemble
    is a transformer's (``None`` for a composition model, which reads no tokens)."""

    protein: str
    nucleic_acid: str
    complement: str  # "" when single-stranded
    na_type: str
    token_ids: np.ndarray | None = None


@dataclass
class TransformerMember:
    """A fine-tuned encoder with its linear ΔG head (what `obte finetune affinity` trains by default)."""

    loaded: LoadedModel
    head: LinearHead
    scaler: TargetScaler
    readout: Readout

    def predict(self, batch: list[PreparedComplex], device: torch.device | str) -> np.ndarray:
        ids = [c.token_ids for c in batch]
        pad_id = self.loaded.tokenizer.pad_id
        z = predict_sequence_task(self.loaded.model, self.head, ids, pad_id, device, readout=self.readout)
        return self.scaler.inverse(z[:, 0])


@dataclass
class CompositionMember:
    """A composition model (`obte finetune affinity --method composition`): no tokens, no context."""

    model: CompositionAffinityModel

    def predict(self, batch: list[PreparedComplex], device: torch.device | str) -> np.ndarray:
        return self.model.predict(
            [c.protein for c in batch],
            [c.nucleic_acid for c in batch],
            [c.complement for c in batch],
            [c.na_type for c in batch],
        )


AffinityMember = TransformerMember | CompositionMember


def _member(directory: Path, device: torch.device | str) -> AffinityMember:
    if is_composition_model(directory):
        return CompositionMember(load_composition_model(directory))
    loaded = load_model(directory, device)
    head_info = loaded.head or {}
    if head_info.get("task") != AFFINITY_TASK:
        raise ModelFormatError(
            f"{directory}: not a ΔG model (no affinity head; train one with `obte finetune affinity`)"
        )
    try:
        readout = affinity_readout(head_info.get("readout", "first"), loaded.tokenizer)
        head = LinearHead(
            readout.input_width(loaded.model.config.width),
            int(head_info["n_outputs"]),
            int(head_info.get("base_width", 32)),
        )
        head.load_state_dict(loaded.head_state, strict=True)
        scaler = TargetScaler(float(head_info["dg_mean"]), float(head_info["dg_sd"]))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFormatError(f"{directory / CONFIG_FILE}: bad affinity head ({str(exc).splitlines()[0]})") from None
    return TransformerMember(loaded, head.to(device).eval(), scaler, readout)


@dataclass
class AffinityEnsemble:
    members: list[AffinityMember]
    path: Path
    metadata: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """ "transformer" or "composition" (an ensemble never mixes the two)."""
        return "composition" if isinstance(self.members[0], CompositionMember) else "transformer"

    @property
    def tokenizer(self) -> Tokenizer | None:
        first = self.members[0]
        return first.loaded.tokenizer if isinstance(first, TransformerMember) else None

    @property
    def context(self) -> int | None:
        first = self.members[0]
        return first.loaded.model.config.max_positions if isinstance(first, TransformerMember) else None

    def prepare(
        self,
        protein: str,
        nucleic_acid: str,
        complement: str = "",
        na_type: str = "DNA",
        name: str = "",
        truncate: bool = False,
        on_unknown: str = "error",
    ) -> tuple[PreparedComplex, int]:
        """One complex ready for :meth:`predict`, and how many protein residues the encoding cut (0 if none)."""
        prepared = PreparedComplex(protein, nucleic_acid, complement, na_type)
        if self.tokenizer is None:
            return prepared, 0
        segments = complex_segments(protein, nucleic_acid, complement, na_type, name)
        encoding, cut = encode_complex(self.tokenizer, segments, self.context, truncate, on_unknown)
        prepared.token_ids = encoding.ids
        return prepared, cut

    def prepare_table(self, table, truncate: bool = False, on_unknown: str = "error") -> list[PreparedComplex]:
        """:meth:`prepare` for every row of a table with ``protein_id, protein, nucleic_acid, complement,
        na_type`` (what :func:`~obte_cli.engine.affinity.data.load_affinity_data` returns)."""
        return [
            self.prepare(
                r.protein, r.nucleic_acid, r.complement, r.na_type, row_name(table, row), truncate, on_unknown
            )[0]
            for row, r in enumerate(table.itertuples(index=False))
        ]

    def predict(
        self, batch: list[PreparedComplex], device: torch.device | str = "cpu"
    ) -> tuple[np.ndarray, np.ndarray]:
        """ΔG (kcal/mol) per complex: the members' mean and standard deviation (NaN for one member)."""
        per_member = np.stack([m.predict(batch, device) for m in self.members])
        sd = per_member.std(axis=0, ddof=1) if len(self.members) > 1 else np.full(per_member.shape[1], np.nan)
        return per_member.mean(axis=0), sd


def load_affinity_model(directory: str | Path, device: torch.device | str = "cpu") -> AffinityEnsemble:
    """Load a ΔG model directory or ensemble directory (see module docstring)."""
    directory = Path(directory)
    manifest_path = directory / ENSEMBLE_FILE
    if not manifest_path.is_file():
        member = _member(directory, device)
        metadata = member.model.metadata if isinstance(member, CompositionMember) else member.loaded.metadata
        return AffinityEnsemble([member], directory, metadata)
    manifest = read_json_file(manifest_path, f"{directory}: cannot read {ENSEMBLE_FILE}")
    names = manifest.get("members")
    if manifest.get("format") != ENSEMBLE_FORMAT or not isinstance(names, list) or not names:
        raise ModelFormatError(f"{manifest_path}: not an obte ensemble manifest (needs format and members)")
    members = []
    for name in names:
        if not isinstance(name, str) or Path(name).is_absolute() or ".." in Path(name).parts:
            raise ModelFormatError(f"{manifest_path}: member {name!r} must be a sub-directory name")
        members.append(_member(directory / name, device))
    first = members[0]
    for name, m in zip(names[1:], members[1:]):
        if type(m) is not type(first):
            raise ModelFormatError(f"{directory / name}: a different kind of model from {names[0]}")
        if isinstance(m, TransformerMember) and (
            m.loaded.tokenizer.to_config() != first.loaded.tokenizer.to_config()
            or m.loaded.model.config.max_positions != first.loaded.model.config.max_positions
        ):
            raise ModelFormatError(f"{directory / name}: tokenizer or context differs from {names[0]}")
    return AffinityEnsemble(members, directory, manifest.get("metadata", {}))


# The columns of `obte affinity`'s TSV and of obte_cli.predict_affinity's table (AffinityPrediction.fields).
PREDICTION_COLUMNS = [
    "protein_id", "na_id", "dG_kcal_mol", "dG_sd", "Kd_M", "na_type", "complement", "protein_truncated",
]  # fmt: skip
ASSUMED = " (assumed)"  # after the na_type of a strand that is DNA only because it has no U


@dataclass
class AffinityPrediction:
    complex: Complex
    dg: float  # kcal/mol, the ensemble mean
    dg_sd: float  # spread across ensemble members (NaN for a single model)
    kd: float  # mol/L at 298.15 K
    residues_cut: int  # protein residues removed by truncation

    def fields(self, source: str) -> dict:
        """One output row (:data:`PREDICTION_COLUMNS`), numbers unrounded; ``source`` names where a complement
        came from (``revcomp`` or ``given``): complement is that, or ``no`` for a single strand."""
        acid = self.complex.nucleic_acid
        return {
            "protein_id": self.complex.protein.id,
            "na_id": acid.id,
            "dG_kcal_mol": self.dg,
            "dG_sd": self.dg_sd,
            "Kd_M": self.kd,
            "na_type": acid.na_type + (ASSUMED if acid.na_type_assumed else ""),
            "complement": source if self.complex.complement else "no",
            "protein_truncated": "yes" if self.residues_cut > 0 else "no",
        }


def predict_affinities(
    ensemble: AffinityEnsemble,
    complexes: Iterable[Complex],
    truncate: bool = False,
    device: torch.device | str = "cpu",
    chunk_size: int = 256,
    on_unknown: str = "error",
) -> Iterator[AffinityPrediction]:
    """Stream predictions, encoding and predicting ``chunk_size`` complexes at a time (bounded memory);
    ``on_unknown`` as for :meth:`~obte_cli.engine.tokenizers.base.Tokenizer.encode_one`."""
    chunk: list[tuple[Complex, PreparedComplex, int]] = []

    def flush() -> Iterator[AffinityPrediction]:
        with np.errstate(all="ignore"):  # a non-finite ΔG or Kd is an error below, not a warning
            dg, sd = ensemble.predict([prepared for _, prepared, _ in chunk], device)
            kd = kd_from_dg(dg)
        for (item, _, cut), g, s, k in zip(chunk, dg, sd, kd):
            name = f"{item.protein.id} + {item.nucleic_acid.id}"
            numbers = [g, k] if len(ensemble.members) == 1 else [g, s, k]  # one member has no spread (NaN)
            NonFiniteResultError.check(numbers, ensemble.path, name, "the predicted ΔG, its spread or its Kd")
            yield AffinityPrediction(item, float(g), float(s), float(k), cut)
        chunk.clear()

    for item in complexes:
        na = item.nucleic_acid
        prepared, cut = ensemble.prepare(
            item.protein.sequence,
            na.sequence,
            item.complement,
            na.na_type,
            f"{item.protein.id} + {na.id}",
            truncate,
            on_unknown,
        )
        chunk.append((item, prepared, cut))
        if len(chunk) >= chunk_size:
            yield from flush()
    if chunk:
        yield from flush()
