"""Task heads that sit on the encoder, and the ``head`` section of a model directory's config.json.

:class:`LinearHead` maps hidden vectors linearly to ``n_outputs`` values: one for ΔG regression, one
per class for classification. Sequence tasks give it one vector per input — the final embedding of its
first token, the modality tag, as the reference does (there is no CLS token); per-residue tasks give it
every token's vector. Its output is multiplied by
``base_width / width`` like the μP readout, so the head's learning rate does not need retuning when the
backbone gets wider, and it starts at zero so fine-tuning begins from the mean prediction.

:class:`AttentionProbe` reads a frozen backbone's attention maps instead (the contact probe of
:mod:`obte_cli.engine.contacts.probe`, which trains it).

Heads are saved inside the model directory: their weights under ``head.`` in ``model.safetensors`` and
their description (``describe()``, plus what the task adds) as ``config.json``'s ``head``.
:func:`check_head` validates such a description against the architecture — every field the task's
loader reads, with its type and range — and :func:`head_weight_shapes` gives the weights it implies,
so :func:`obte_cli.engine.model.directory.load_model` refuses a broken head before anything uses it.
"""

from __future__ import annotations

import torch
from torch import nn

from obte_cli.engine.core import schema
from obte_cli.engine.core.schema import SchemaError
from obte_cli.engine.model.encoder import ObteConfig

SEQUENCE_HEAD = "sequence"  # LinearHead ("sequence" is the format's name for it, kept for compatibility)
PROBE_KIND = "attention-probe"  # AttentionProbe
HEAD_KINDS = (SEQUENCE_HEAD, PROBE_KIND)
AFFINITY_TASK = "affinity"
CONTACTS_TASK = "contacts"
# `obte finetune classify` / `obte finetune residue`: "<command>-<task>"
FINETUNE_TASKS = tuple(
    f"{unit}-{task}" for unit in ("classify", "residue") for task in ("classification", "regression")
)
TASKS = (AFFINITY_TASK, CONTACTS_TASK, *FINETUNE_TASKS)
CONTACT_METHODS = {"head": SEQUENCE_HEAD, "attention": PROBE_KIND}  # contacts' ``method`` → its head kind
DEFAULT_BASE_WIDTH = 32
# what a sequence head reads (obte_cli.engine.model.inference.Readout): the first token's state, the mean
# state of all tokens, or the mean states of a complex's two parts side by side (twice the width)
READOUTS = ("first", "mean", "parts-mean")


def readout_width(width: int, readout: str) -> int:
    """Numbers per sequence a head with ``readout`` reads from a backbone of ``width``."""
    return 2 * width if readout == "parts-mean" else width


class LinearHead(nn.Module):
    def __init__(self, width: int, n_outputs: int = 1, base_width: int = DEFAULT_BASE_WIDTH):
        super().__init__()
        self.proj = nn.Linear(width, n_outputs)
        self.base_width = base_width
        self.scale = base_width / width
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., width) → (..., n_outputs)."""
        return self.proj(hidden) * self.scale

    def describe(self) -> dict:
        return {"kind": SEQUENCE_HEAD, "n_outputs": self.proj.out_features, "base_width": self.base_width}


class AttentionProbe(nn.Module):
    """A 4-layer 3×3 convolutional net (ReLU) from a (channels, T_protein, T_nucleic) stack of attention
    maps to one logit per protein token and output (the maximum over the nucleic-acid tokens)."""

    def __init__(self, in_channels: int, n_outputs: int, channels: int = 64):
        super().__init__()
        self.in_channels, self.n_outputs, self.channels = in_channels, n_outputs, channels
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, n_outputs, 3, padding=1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(C, T_protein, T_nucleic) → (T_protein, n_outputs) logits (max over nucleic-acid tokens)."""
        return self.net(features[None])[0].amax(dim=-1).transpose(0, 1)

    def describe(self) -> dict:
        return {
            "kind": PROBE_KIND,
            "in_channels": self.in_channels,
            "n_outputs": self.n_outputs,
            "channels": self.channels,
        }


def build_head(description: dict, width: int) -> nn.Module:
    """A freshly initialised module for a head description that :func:`check_head` accepted."""
    if description["kind"] == PROBE_KIND:
        return AttentionProbe(description["in_channels"], description["n_outputs"], description["channels"])
    return LinearHead(
        readout_width(width, description.get("readout", "first")),
        description["n_outputs"],
        description.get("base_width", DEFAULT_BASE_WIDTH),
    )


def head_weight_shapes(description: dict, width: int) -> dict[str, tuple[int, ...]]:
    """The weights (names without ``head.``) and shapes of :func:`build_head`'s module, computed from
    the description alone (nothing is allocated, however large its numbers)."""
    n = description["n_outputs"]
    if description["kind"] == SEQUENCE_HEAD:
        return {"proj.weight": (n, readout_width(width, description.get("readout", "first"))), "proj.bias": (n,)}
    c_in, c = description["in_channels"], description["channels"]
    shapes = {}
    for index, (inputs, outputs) in enumerate(((c_in, c), (c, c), (c, c), (c, n))):
        shapes[f"net.{2 * index}.weight"] = (outputs, inputs, 3, 3)
        shapes[f"net.{2 * index}.bias"] = (outputs,)
    return shapes


def _need(head: dict, key: str) -> object:
    return schema.required(head, key)


def _kind_must_be(kind: str, wanted: str, why: str) -> None:
    if kind != wanted:
        raise SchemaError("kind", f"must be {wanted} for {why} (got {schema.shown(kind)})")


def _outputs_must_be(n_outputs: int, wanted: int, why: str) -> None:
    if n_outputs != wanted:
        raise SchemaError("n_outputs", f"must be {wanted} ({why}) (got {n_outputs})")


def check_head(head: object, config: ObteConfig) -> dict:
    """Validate a config.json ``head`` section (a JSON object) for a backbone of ``config``: the head's
    own fields (``kind``, ``n_outputs`` ...) and those of its ``task``. Raises :class:`SchemaError`
    naming the field (relative to ``head``); returns the description."""
    if not isinstance(head, dict):
        raise SchemaError("", f"head must be a JSON object or null (got {schema.json_type(head)})")
    kind = schema.choice(_need(head, "kind"), "kind", HEAD_KINDS)
    n_outputs = schema.integer(_need(head, "n_outputs"), "n_outputs")
    if kind == SEQUENCE_HEAD:
        schema.integer(head.get("base_width", DEFAULT_BASE_WIDTH), "base_width")
        schema.choice(head.get("readout", "first"), "readout", READOUTS)
    else:
        in_channels = schema.integer(_need(head, "in_channels"), "in_channels")
        schema.integer(_need(head, "channels"), "channels")
        maps = 2 * config.n_layers * config.n_heads
        if in_channels != maps:
            raise SchemaError(
                "in_channels", f"must be 2 · n_layers · n_heads = {maps}, one per attention map (got {in_channels})"
            )
    task = schema.choice(_need(head, "task"), "task", TASKS)
    if task == AFFINITY_TASK:
        _kind_must_be(kind, SEQUENCE_HEAD, "an affinity head")
        _outputs_must_be(n_outputs, 1, "one ΔG")
        schema.number(_need(head, "dg_mean"), "dg_mean")
        schema.number(_need(head, "dg_sd"), "dg_sd", positive=True)
    elif task == CONTACTS_TASK:
        _check_contacts(head, kind, n_outputs, config)
    else:
        _check_finetuned(head, task, kind, n_outputs)
    return head


def _check_contacts(head: dict, kind: str, n_outputs: int, config: ObteConfig) -> None:
    method = schema.choice(_need(head, "method"), "method", tuple(CONTACT_METHODS))
    _kind_must_be(kind, CONTACT_METHODS[method], f"contact method {method}")
    cutoffs = schema.sequence(_need(head, "cutoffs"), "cutoffs")
    values = [schema.number(c, f"cutoffs[{i}]", positive=True) for i, c in enumerate(cutoffs)]
    if any(b <= a for a, b in zip(values, values[1:])):
        raise SchemaError("cutoffs", f"must be increasing (got {schema.shown(cutoffs)})")
    _outputs_must_be(n_outputs, len(values), "one per cutoff")
    thresholds = schema.sequence(_need(head, "thresholds"), "thresholds")
    if len(thresholds) != len(values):
        raise SchemaError("thresholds", f"must hold one threshold per cutoff, {len(values)} (got {len(thresholds)})")
    for i, t in enumerate(thresholds):
        schema.fraction(t, f"thresholds[{i}]")
    context = schema.integer(_need(head, "context"), "context")
    if context > config.max_positions:
        raise SchemaError(
            "context", f"must be at most the architecture's max_positions {config.max_positions} (got {context})"
        )


def _check_finetuned(head: dict, task: str, kind: str, n_outputs: int) -> None:
    _kind_must_be(kind, SEQUENCE_HEAD, f"task {task}")
    if head.get("readout", "first") not in ("first", "mean"):
        raise SchemaError("readout", f"must be first or mean for task {task} (got {schema.shown(head['readout'])})")
    per_residue = schema.boolean(_need(head, "per_residue"), "per_residue")
    if per_residue != task.startswith("residue-"):
        raise SchemaError("per_residue", f"must be {str(not per_residue).lower()} for task {task}")
    classes = head.get("classes")
    if task.endswith("-classification"):
        schema.sequence(classes, "classes")
        for i, name in enumerate(classes):
            schema.text(name, f"classes[{i}]")
        if len(set(classes)) != len(classes) or len(classes) < 2:
            raise SchemaError("classes", f"must be two or more distinct class names (got {schema.shown(classes)})")
        _outputs_must_be(n_outputs, len(classes), "one per class")
    else:
        if classes is not None:
            raise SchemaError("classes", f"must be null for task {task} (got {schema.shown(classes)})")
        _outputs_must_be(n_outputs, 1, "one value")
    schema.number(_need(head, "target_mean"), "target_mean")
    schema.number(_need(head, "target_sd"), "target_sd", positive=True)
