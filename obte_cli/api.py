"""obte from Python: load a model, embed and score sequences, predict binding free energies.

Each function runs the engine its command runs — the same reading of records, molecule types, windows for
records longer than the context, packing and numbers — and returns arrays and tables instead of files:
:func:`embed` gives what ``obte embed`` writes, :func:`score` what ``obte score`` writes, and
:func:`predict_affinity` what ``obte affinity`` writes (numbers unrounded), ids in input order.

    >>> import obte_cli
    >>> model = obte_cli.load_model()  # the bundled backbone; or a model directory, device="cuda"
    >>> records = {"p53_tad": "MEEPQSDPSVEPPLSQETFSDLWKLL", "site": "GAGGTTAAGTGGATGT"}
    >>> emb = obte_cli.embed(model, records)  # mean-pooled final layer
    >>> emb.ids, emb.array.shape
    (['p53_tad', 'site'], (2, 288))
    >>> list(obte_cli.score(model, records)["molecule_type"])
    ['protein', 'DNA']

**Records** are a FASTA file (a path: plain, gzip or xz), a dict ``{id: sequence}``, or an iterable of
``(id, sequence)`` pairs or Biopython ``SeqRecord``\\ s. The molecule type of each is ``molecule_type``, or
with ``"auto"`` read from its letters as the commands do (only A/C/G/T/U/N: nucleic, RNA if it has U and no T;
anything else protein).

**Errors**: a mistake (a bad record, a model directory whose parts disagree, an option out of range) raises a
subclass of :class:`ObteError` — :class:`InputError`, :class:`ModelFormatError` — with the one-line message
the command would print after ``error:``.

Importing ``obte_cli`` imports neither torch, numpy nor pandas; the functions import them when called. They
run in one process (``torchrun`` is for the command line).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from obte_cli.engine.core.errors import InputError, ModelFormatError, ObteError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import torch

    from obte_cli.engine.model.directory import LoadedModel

__all__ = [
    "Embeddings",
    "InputError",
    "Model",
    "ModelFormatError",
    "ObteError",
    "embed",
    "load_model",
    "predict_affinity",
    "score",
]

ON_UNKNOWN = ("unk", "error")


class Model:
    """A loaded obte model (see :func:`load_model`): the encoder, its tokenizer and where it came from.

    ``path`` is the model directory, ``tokenizer`` its tokenizer, ``module`` the encoder (a ``torch.nn.Module``
    in eval mode) on ``device``; ``context`` is the tokens it reads at once (its molecule tag and ``<EOS>``
    included), ``width`` the size of its vectors and ``n_layers`` its number of layers; ``metadata`` is the
    provenance its config.json records, and ``loaded`` the engine's
    :class:`~obte_cli.engine.model.directory.LoadedModel`.
    """

    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded

    @property
    def path(self) -> Path | None:
        return self.loaded.path

    @property
    def tokenizer(self):
        return self.loaded.tokenizer

    @property
    def module(self):
        return self.loaded.model

    @property
    def device(self) -> torch.device:
        return self.loaded.model.embed.weight.device

    @property
    def context(self) -> int:
        return self.loaded.model.config.max_positions

    @property
    def width(self) -> int:
        return self.loaded.model.config.width

    @property
    def n_layers(self) -> int:
        return self.loaded.model.config.n_layers

    @property
    def metadata(self) -> dict:
        return self.loaded.metadata

    def __repr__(self) -> str:
        kind = getattr(self.tokenizer, "kind", type(self.tokenizer).__name__)
        return (
            f"Model('{self.path}', width={self.width}, n_layers={self.n_layers}, context={self.context}, "
            f"tokenizer={kind}, device={self.device})"
        )


class Embeddings:
    """What :func:`embed` returns: the records' ids in input order and their vectors, laid out as the
    ``.safetensors`` file of ``obte embed`` holds them.

    * pooled (``mean``, ``max``, ``first``): ``array`` is (records, width), or (records, layers, width) when
      several ``layers`` were asked for; row i belongs to ``ids[i]``; ``offsets`` is None.
    * ``per-token``: one vector per residue; ``array`` is (residues of all records, [layers,] width), record i
      being rows ``offsets[i]:offsets[i + 1]``.

    ``emb["id"]`` or ``emb[i]`` is one record's vector(s) (the first record of that id);
    :meth:`to_frame` gives pooled vectors as the table ``obte embed -o out.tsv`` writes.
    """

    def __init__(
        self, ids: list[str], array: np.ndarray, offsets: np.ndarray | None, pool: str, layers: tuple[int, ...]
    ):
        self.ids = ids
        self.array = array
        self.offsets = offsets
        self.pool = pool
        self.layers = layers

    def __repr__(self) -> str:
        return (
            f"Embeddings({len(self.ids)} records, pool={self.pool!r}, layers={self.layers}, array {self.array.shape})"
        )

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, key: str | int) -> np.ndarray:
        if isinstance(key, str):
            if key not in self.ids:
                raise KeyError(key)
            index = self.ids.index(key)
        else:
            index = range(len(self.ids))[key]
        if self.offsets is None:
            return self.array[index]
        return self.array[self.offsets[index] : self.offsets[index + 1]]

    def to_frame(self) -> pd.DataFrame:
        """Pooled vectors as a DataFrame indexed by ``id``, one column per value (``e0``, ``e1``, ...; ``l{layer}_{k}``
        with several layers): the table of ``obte embed -o out.tsv``."""
        import pandas as pd

        from obte_cli.engine.embedding.io import value_columns

        if self.offsets is not None:
            raise InputError("per-token embeddings have one row per residue, not per record: use .array and .offsets")
        width = self.array.shape[-1] if self.array.size else 0
        values = self.array.reshape(len(self.ids), -1)
        return pd.DataFrame(values, index=pd.Index(self.ids, name="id"), columns=value_columns(width, self.layers))


def load_model(path_or_name: str | os.PathLike | None = None, device: str | Any = "auto") -> Model:
    """Load an obte model directory, checked as every command checks it, onto ``device``.

    ``path_or_name``: None for the bundled pretrained backbone (what the commands use without ``--model``),
    a model directory (pretrained, converted, fine-tuned or fresh from ``obte model init``), or the name of a
    model bundled under ``share/models/`` (``obte1_omni_t6_6M_DEB12``). ``device``: ``auto`` (CUDA when
    available), ``cpu``, ``cuda``, ``cuda:1`` or a ``torch.device``.

    >>> model = obte_cli.load_model("obte1_omni_t6_6M_DEB12", device="cpu")
    >>> model.width, model.n_layers, model.context
    (288, 6, 512)
    """
    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.model.directory import load_model as load_directory

    torch_device = resolve_device(str(device))
    return Model(load_directory(_backbone_dir(path_or_name), torch_device))


def embed(
    model: Model | str | os.PathLike | None,
    records,
    pool: str = "mean",
    *,
    layers: int | tuple[int, ...] | list[int] = -1,
    molecule_type: str = "auto",
    window: int = 0,
    stride: int = 0,
    truncate: bool = False,
    no_window: bool = False,
    on_unknown: str = "unk",
    max_tokens: int = 16384,
) -> Embeddings:
    """Embed ``records`` with ``model``, as ``obte embed`` does; returns :class:`Embeddings` (ids in input order).

    ``model``: a :class:`Model` from :func:`load_model`, or what :func:`load_model` takes (None: the bundled
    backbone). ``pool``: ``mean`` or ``max`` over the residues' vectors, ``first`` (the molecule tag token,
    where ESM has ``<cls>``) or ``per-token`` (one vector per *residue*, whatever the tokenizer). ``layers``: one
    layer or several (0 = the embeddings, ``n_layers`` = the final one; negative from the end).

    Records longer than the context are embedded as the command does by default: in overlapping windows of
    ``window`` residues (0: the context less 2) every ``stride`` residues (0: half a window), a residue's vector
    being the mean over the windows holding it; ``truncate=True`` cuts them to their first residues instead and
    ``no_window=True`` refuses them. ``on_unknown``: ``unk`` reads letters outside the standard alphabets as
    ``<unk>``, ``error`` refuses them. ``max_tokens`` bounds a forward pass (memory; the numbers do not change).

    >>> emb = obte_cli.embed(model, [("a", "MKTAYIAKQR"), ("b", "ACGUACGU")], pool="per-token", layers=[0, -1])
    >>> emb.array.shape, emb.offsets.tolist(), emb["b"].shape
    ((18, 2, 288), [0, 10, 18], (8, 2, 288))
    """
    from obte_cli.engine.embedding.embed import POOLS, EmbeddingSettings, check_windowing, embed_segments
    from obte_cli.engine.embedding.io import collect_embeddings

    loaded = _loaded(model)
    if pool not in POOLS:
        hint = " ('first' is the molecule tag token, where ESM has <cls>)" if pool == "cls" else ""
        raise InputError(f"pool must be one of {', '.join(POOLS)} (got {pool!r}){hint}")
    settings = EmbeddingSettings(
        pool=pool,
        layers=_layers(layers),
        max_tokens=_count(max_tokens, "max_tokens", 1),
        truncate=bool(truncate),
        window=_count(window, "window", 0),
        stride=_count(stride, "stride", 0),
        windows=not no_window,
        on_unknown=_choice(on_unknown, ON_UNKNOWN, "on_unknown"),
    )
    check_windowing(settings, loaded.model.config.max_positions)
    segments = _segments(records, molecule_type)
    device = loaded.model.embed.weight.device
    items = embed_segments(loaded.model, loaded.tokenizer, segments, settings, device)
    ids, array, offsets = collect_embeddings(items, settings.pool, settings.layers)
    if not ids:
        raise InputError("no records to embed")
    return Embeddings(ids, array, offsets, settings.pool, settings.layers)


def score(
    model: Model | str | os.PathLike | None,
    records,
    *,
    molecule_type: str = "auto",
    mask_fraction: float = 0.15,
    seed: int = 0,
    per_residue: bool = False,
    on_unknown: str = "unk",
    max_tokens: int = 16384,
):
    """Masked-LM scores of ``records`` under ``model``, as ``obte score`` computes them: a DataFrame with one row
    per record and the columns of its TSV (id, molecule_type, length, bits_per_residue, perplexity,
    masked_accuracy), numbers unrounded, in input order.

    Every residue is masked exactly once, in round(1 / ``mask_fraction``) groups seeded by ``seed`` and the
    sequence, so a record scores the same alone or among others; a record longer than the context is scored in
    consecutive windows. With ``per_residue=True`` (one-token-per-residue models) the answer is a pair
    ``(scores, residues)``: ``residues`` has the columns of ``--per-residue``'s TSV, one row per residue (id,
    position from 1, residue, then the masked natural-log probability of each letter: ``logp_A`` ... ``logp_Y``
    for proteins, ``logp_nt_A`` ... ``logp_nt_T`` for nucleic acids, NaN in the other modality's columns).

    >>> scores, residues = obte_cli.score(model, {"p53_tad": "MEEPQSDPSVEPPLSQETFSDLWKLL"}, per_residue=True)
    >>> int(scores.loc[0, "length"]), residues.shape
    (26, (26, 27))
    """
    from collections import deque

    import pandas as pd

    from obte_cli.engine.embedding.scoring import (
        PER_RESIDUE_COLUMNS,
        SCORE_COLUMNS,
        ScoreSettings,
        per_residue_values,
        score_segments,
    )

    loaded = _loaded(model)
    if not 0.01 <= mask_fraction <= 0.5:
        raise InputError(f"mask_fraction must be between 0.01 and 0.5 (got {mask_fraction})")
    settings = ScoreSettings(
        mask_fraction=float(mask_fraction),
        seed=int(seed),
        max_tokens=_count(max_tokens, "max_tokens", 64),
        per_residue=bool(per_residue),
    )
    on_unknown = _choice(on_unknown, ON_UNKNOWN, "on_unknown")
    sequences: deque[str] = deque()  # scores come back in input order

    def remembered(segments):
        for segment in segments:
            sequences.append(segment.sequence)
            yield segment

    rows, residue_frames = [], []
    segments = remembered(_segments(records, molecule_type))
    device = loaded.model.embed.weight.device
    for result in score_segments(loaded.model, loaded.tokenizer, segments, settings, device, on_unknown):
        rows.append([getattr(result, column) for column in SCORE_COLUMNS])
        sequence = sequences.popleft()
        if per_residue:
            frame = pd.DataFrame(per_residue_values(result), columns=PER_RESIDUE_COLUMNS[3:])
            frame.insert(0, "residue", list(sequence.upper()))
            frame.insert(0, "position", range(1, result.length + 1))
            frame.insert(0, "id", result.id)
            residue_frames.append(frame)
    if not rows:
        raise InputError("no records to score")
    scores = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    if not per_residue:
        return scores
    return scores, pd.concat(residue_frames, ignore_index=True)


def predict_affinity(
    proteins,
    nucleic_acids,
    model: str | os.PathLike | None = None,
    *,
    pairs: str = "all",
    complement: str | os.PathLike = "none",
    na_type: str = "auto",
    truncate: bool = True,
    on_unknown: str = "unk",
    device: str | Any = "auto",
) -> pd.DataFrame:
    """Binding free energy ΔG (kcal/mol) of protein–nucleic-acid complexes, as ``obte affinity`` predicts it: a
    DataFrame with the columns of its TSV (protein_id, na_id, dG_kcal_mol, dG_sd, Kd_M, na_type, complement,
    protein_truncated), numbers unrounded, one row per complex in the command's order.

    ``proteins`` and ``nucleic_acids`` are records (see the module docstring). ``model``: a ΔG model or
    ensemble directory (``obte finetune affinity``), or None for the bundled one. ``pairs``: ``all`` (every
    protein with every nucleic acid) or ``zip`` (the i-th with the i-th). ``complement``: ``none`` (every
    strand single-stranded), ``revcomp`` (add each strand's reverse complement) or a FASTA file of one
    complement per nucleic acid (an empty record: that one single-stranded). ``na_type``: ``DNA``, ``RNA``, or
    ``auto`` (RNA if the strand has a U, else DNA, marked ``DNA (assumed)``). ``truncate``: a protein too
    long for a transformer model's context beside its nucleic acid is cut at its C-terminus
    (``protein_truncated`` says ``yes``); False makes that an error. ``dG_sd`` is NaN for a single model.

    >>> dg = obte_cli.predict_affinity({"p53_tad": "MEEPQSDPSVEPPLSQETFSDLWKLL"}, {"site": "GAGGTTAAGTGGATGT"})
    >>> dg[["protein_id", "na_id", "na_type", "complement", "protein_truncated"]].values.tolist()
    [['p53_tad', 'site', 'DNA (assumed)', 'no', 'no']]
    """
    import pandas as pd

    from obte_cli.engine.affinity.ensemble import PREDICTION_COLUMNS, load_affinity_model, predict_affinities
    from obte_cli.engine.bio import complex_inputs
    from obte_cli.engine.core.devices import resolve_device
    from obte_cli.engine.core.resources import default_affinity_model_dir

    on_unknown = _choice(on_unknown, ON_UNKNOWN, "on_unknown")
    na_type = _choice(na_type, complex_inputs.NA_TYPE_CHOICES, "na_type")
    torch_device = resolve_device(str(device))
    protein_records = _complex_records(proteins, "proteins", on_unknown)
    acids = _complex_records(nucleic_acids, "nucleic_acids", on_unknown, na_type)
    complement = os.fspath(complement)
    strands = complex_inputs.complements_for(acids, complement, on_unknown)
    complexes = complex_inputs.pair_complexes(protein_records, acids, strands, pairs)
    if model is not None and not isinstance(model, str | os.PathLike):
        raise InputError(f"model must be a ΔG model directory or None (got {type(model).__name__})")
    ensemble = load_affinity_model(default_affinity_model_dir() if model is None else _model_dir(model), torch_device)
    source = "revcomp" if complement == "revcomp" else "given"
    predictions = predict_affinities(ensemble, complexes, bool(truncate), torch_device, on_unknown=on_unknown)
    rows = [p.fields(source) for p in predictions]
    if not rows:
        raise InputError("no complexes to predict (no proteins or no nucleic acids)")
    return pd.DataFrame(rows, columns=PREDICTION_COLUMNS)


# -- records and options -------------------------------------------------------------------------------------

RECORDS_ARE = "records are a FASTA path, a dict {id: sequence}, or (id, sequence) pairs"


def _path_or_pairs(records, what: str = "records") -> tuple[str | None, list | None]:
    """(FASTA path, None) or (None, [(id, sequence), ...]) from what a function's ``records`` may be."""
    if isinstance(records, str | os.PathLike):
        path = os.fspath(records)
        if path != "-" and not Path(path).exists():
            raise InputError(f"{path}: no such file ({what}: {RECORDS_ARE})")
        return path, None
    if isinstance(records, Mapping):
        return None, list(records.items())
    if isinstance(records, bytes | bytearray) or not hasattr(records, "__iter__"):
        raise InputError(f"{what}: {RECORDS_ARE}, not {type(records).__name__}")
    pairs = [
        (item.id, str(item.seq)) if hasattr(item, "seq") and hasattr(item, "id") else item for item in records
    ]  # Biopython SeqRecords: their id and sequence
    return None, pairs


def _segments(records, molecule_type: str):
    from obte_cli.engine.bio.molecules import molecule_type_option
    from obte_cli.engine.embedding.records import fasta_segments, pair_segments

    fixed = molecule_type_option(molecule_type)
    path, pairs = _path_or_pairs(records)
    return fasta_segments([path], fixed) if path is not None else pair_segments(pairs, fixed)


def _complex_records(records, what: str, on_unknown: str, na_type: str | None = None) -> list:
    """The proteins (``na_type`` None) or nucleic acids of a complex, read and checked as ``obte affinity`` does."""
    from obte_cli.engine.bio import complex_inputs
    from obte_cli.engine.embedding.records import checked_pairs

    path, pairs = _path_or_pairs(records, what)
    if path is not None:
        if na_type is None:
            return complex_inputs.read_proteins(path, on_unknown)
        return complex_inputs.read_nucleic_acids(path, na_type, on_unknown)
    found = []
    for number, record_id, sequence in checked_pairs(pairs):
        where = f"{what}: record {number} ('{record_id}')"
        if na_type is None:
            found.append(complex_inputs.protein_record(record_id, sequence, where, on_unknown))
        else:
            found.append(complex_inputs.nucleic_acid_record(record_id, sequence, where, na_type, on_unknown))
    return found


def _backbone_dir(path_or_name) -> Path:
    from obte_cli.engine.core import resources

    if path_or_name is None:
        bundled = resources.default_backbone_dir()
        if bundled is None:
            raise InputError(
                f"this installation has no bundled backbone (share/models/{resources.DEFAULT_BACKBONE}): "
                "pass a model directory"
            )
        return bundled
    return _model_dir(path_or_name)


def _model_dir(path_or_name) -> Path:
    """A model directory given by its path or, failing that, by the name of a model bundled in share/models/."""
    from obte_cli.engine.core import resources

    if not isinstance(path_or_name, str | os.PathLike):
        raise InputError(f"a model is a directory or a bundled model's name, not {type(path_or_name).__name__}")
    path = Path(os.fspath(path_or_name))
    if path.exists():
        return path
    models = resources.share_dir() / "models"
    if isinstance(path_or_name, str) and path.name == path_or_name and (models / path_or_name).is_dir():
        return models / path_or_name
    bundled = sorted(p.name for p in models.iterdir() if p.is_dir())
    raise InputError(f"{path_or_name}: no such model directory, nor a bundled model ({', '.join(bundled)})")


def _loaded(model) -> LoadedModel:
    if isinstance(model, Model):
        return model.loaded
    if model is None or isinstance(model, str | os.PathLike):
        return load_model(model).loaded
    kind = type(model).__name__
    raise InputError(f"model must be a Model from obte_cli.load_model, a model directory or None, not {kind}")


def _integer(value) -> bool:
    from numbers import Integral

    return isinstance(value, Integral) and not isinstance(value, bool)


def _layers(layers) -> tuple[int, ...]:
    chosen = (layers,) if _integer(layers) else tuple(layers) if hasattr(layers, "__iter__") else ()
    if not chosen or not all(_integer(x) for x in chosen):
        raise InputError(f"layers must be a layer number or a list of them, e.g. -1 or [0, 2, -1] (got {layers!r})")
    return tuple(int(x) for x in chosen)


def _count(value, name: str, low: int) -> int:
    if not _integer(value) or value < low:
        raise InputError(f"{name} must be an integer ≥ {low} (got {value!r})")
    return int(value)


def _choice(value, choices, name: str) -> str:
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(choices)} (got {value!r})")
    return value
