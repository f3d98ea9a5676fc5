"""The obte encoder: a non-causal pre-LayerNorm transformer over protein and nucleic-acid tokens.

Read top to bottom: :class:`ObteConfig`, rotary embeddings, attention, MLP, block, :class:`ObteModel`.

Architecture (OmniBioTE, v1 layout): token embedding → ``n_layers`` × [x + Attn(LN(x)); x + MLP(LN(x))]
→ final LN → untied linear readout. No biases anywhere, LayerNorm without bias, GELU MLP of 4×width,
rotary position embeddings (θ = 10000, interleaved pairs as in the reference) on queries and keys,
full (bidirectional) attention through ``F.scaled_dot_product_attention``.

Packing: several sequences may share one context row. ``doc_ids`` (B, T) numbers the sequence each
token belongs to (``-1`` for padding); attention is block-diagonal — a token sees only tokens of its own
sequence — and rotary positions restart at 0 for every sequence, so a sequence's output is the same
alone or packed with others. Padding is never attended by real tokens.

μP (maximal update parametrisation, Yang et al. 2021; done natively from config values, no tensor
attributes, so it survives FSDP, ``torch.compile`` and safetensors):

* attention logits are scaled by ``attn_mult / width`` (1/d rather than 1/√d_head; with the default
  ``attn_mult = 8`` and 8 heads this equals the usual 1/d_head at base shape, as in the reference);
* the readout is multiplied by ``readout_mult · base_width / width`` and initialised at zero;
* hidden matrices are initialised with std 1/√fan_in (output projections additionally ÷√(2·n_layers)),
  the query projection at zero, embeddings with std 1;
* learning rates: embeddings, readout and norms keep the base LR; hidden matrices get
  ``LR · base_width / width`` (see :mod:`obte_cli.engine.model.mup`).

``base_width = 32`` reproduces the paper's rule (hidden LR × 32/width, logits × 32/width).

Presets (:data:`PRESETS`; ``micro`` (0.2M) is for CPU fine-tuning from scratch and tests; aspect ratio
width/n_layers = 128 above ``tiny``, heads of 128 dims above ``small``, as the released OmniBioTE models).
Non-embedding parameters with our GELU ×4 MLP are 12·L·d²: tiny 3.1M, small 101M, medium 805M, large
1.57B, xl 2.72B. The paper's 88M/675M/1.3B/2.3B were counted for its released v2 models, whose SwiGLU MLP
has hidden size 2d (10·L·d² non-embedding, plus the 4,096-token embeddings for the 88M): same shapes, ~20%
more MLP weights here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from obte_cli.engine.core import schema
from obte_cli.engine.core.schema import SchemaError

MLP_KINDS = ("gelu", "swiglu")
NORM_KINDS = ("layernorm", "omnibiote")
ROPE_KINDS = ("rotary", "cosine", "cosine-bf16")
ROPE_TABLES = ("obte", "omnibiote")
INTEGER_FIELDS = ("vocab_size", "width", "n_layers", "n_heads", "mlp_ratio", "max_positions", "base_width")
POSITIVE_FIELDS = ("rope_theta", "attn_mult", "readout_mult", "norm_eps")  # finite and > 0
# added after the first models were saved: absent means the default
OPTIONAL_FIELDS = ("mlp", "norm", "rope", "rope_table")


@dataclass
class ObteConfig:
    vocab_size: int
    width: int = 256
    n_layers: int = 4
    n_heads: int = 8
    mlp_ratio: int = 4
    max_positions: int = 2048  # longest packed context the model is meant for (checked at encode time)
    rope_theta: float = 10000.0
    attn_mult: float = 8.0  # attention scale = attn_mult / width
    base_width: int = 32  # μP base width
    readout_mult: float = 1.0
    dropout: float = 0.0
    norm_eps: float = 1e-5
    # Variants, for the released OmniBioTE weights (`obte convert`); obte's own models use the defaults.
    mlp: str = (
        "gelu"  # "gelu": proj(gelu(fc x)); "swiglu": fc → (h | gate), proj(h · silu(gate)), hidden mlp_ratio·width/2
    )
    norm: str = "layernorm"  # "layernorm": weight-only LayerNorm; "omnibiote": w·(x−mean)/(unbiased std + eps) + b
    rope: str = "rotary"  # "rotary"; "cosine": pairs scaled by cos(mθ), not rotated (what a bf16 cast of the
    # reference's complex buffer computes); "cosine-bf16": the same with cos rounded to bf16 as stored
    rope_table: str = "obte"  # how cos/sin(m·θ_j) are computed, see Rotary: "obte"; "omnibiote": the reference's table

    def __post_init__(self):
        """Check every field's type and range (a :class:`SchemaError` names the field); numbers are
        normalised to int / float."""
        for name in INTEGER_FIELDS:
            setattr(self, name, schema.integer(getattr(self, name), name))
        for name in POSITIVE_FIELDS:
            setattr(self, name, schema.number(getattr(self, name), name, positive=True))
        self.dropout = schema.fraction(self.dropout, "dropout", upper_open=True)
        for name, allowed in (
            ("mlp", MLP_KINDS),
            ("norm", NORM_KINDS),
            ("rope", ROPE_KINDS),
            ("rope_table", ROPE_TABLES),
        ):
            schema.choice(getattr(self, name), name, allowed)
        if self.width % self.n_heads:
            raise SchemaError("n_heads", f"must divide width (width {self.width} is not divisible by {self.n_heads})")
        if (self.width // self.n_heads) % 2:
            raise SchemaError(
                "n_heads",
                f"must leave an even head size for rotary embeddings (width {self.width} / n_heads {self.n_heads} "
                f"= {self.width // self.n_heads})",
            )

    @property
    def head_dim(self) -> int:
        return self.width // self.n_heads

    @property
    def attn_scale(self) -> float:
        return self.attn_mult / self.width

    @property
    def readout_scale(self) -> float:
        return self.readout_mult * self.base_width / self.width

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ObteConfig:
        """The config of an ``architecture`` section; a :class:`SchemaError` (a ValueError) names the
        field that is missing, unknown, of the wrong type or out of range."""
        if not isinstance(data, dict):
            raise SchemaError("", f"architecture must be a JSON object (got {schema.json_type(data)})")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise SchemaError("", f"unknown architecture field(s): {', '.join(unknown)}")
        for f in fields(cls):
            if f.name not in OPTIONAL_FIELDS:
                schema.required(data, f.name)
        return cls(**data)


PRESETS: dict[str, dict] = {
    "micro": dict(width=64, n_layers=4, n_heads=4),
    "tiny": dict(width=256, n_layers=4, n_heads=8),
    "small": dict(width=1024, n_layers=8, n_heads=8),
    "medium": dict(width=2048, n_layers=16, n_heads=16),
    "large": dict(width=2560, n_layers=20, n_heads=20),
    "xl": dict(width=3072, n_layers=24, n_heads=24),
}


def set_context(model: ObteModel, context: int) -> None:
    """Let ``model`` read inputs of up to ``context`` tokens (its ``max_positions``).

    Rotary positions have no weights, so only the limit changes and a model pretrained at 512 tokens can be
    fine-tuned on 1,024-token inputs. Positions beyond its pretraining length were never trained, so a longer
    context is for fine-tuning at that length, not for trusting zero-shot."""
    if context < 1:
        raise ValueError(f"context must be a positive number of tokens (got {context})")
    model.config.max_positions = int(context)


def preset_config(name: str, vocab_size: int, **overrides) -> ObteConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    return ObteConfig(vocab_size=vocab_size, **{**PRESETS[name], **overrides})


def padded_vocab_size(tokenizer_vocab: int, multiple: int = 64) -> int:
    """Round the embedding table up so matrix shapes stay friendly to fast kernels."""
    return -(-tokenizer_vocab // multiple) * multiple


# ------------------------------------------------------------------------------------------------
# Packing helpers
# ------------------------------------------------------------------------------------------------
def sequence_starts(doc_ids: torch.Tensor) -> torch.Tensor:
    """(B, T) boolean, True where a sequence (or a padding run) starts: at each row's start and wherever
    the doc id changes. The one rule positions, spans and masks follow."""
    is_start = torch.ones_like(doc_ids, dtype=torch.bool)
    is_start[:, 1:] = doc_ids[:, 1:] != doc_ids[:, :-1]
    return is_start


def positions_from_doc_ids(doc_ids: torch.Tensor) -> torch.Tensor:
    """Position of each token within its own sequence: 0, 1, 2, ... restarting at each new doc id."""
    B, T = doc_ids.shape
    idx = torch.arange(T, device=doc_ids.device).expand(B, T)
    is_start = sequence_starts(doc_ids)
    seq_start = torch.where(is_start, idx, torch.zeros_like(idx)).cummax(dim=1).values
    return idx - seq_start  # (B, T)


def one_sequence_per_row(doc_ids: torch.Tensor) -> bool:
    """True when every row holds a single unpadded sequence: attention needs no mask at all."""
    return bool((doc_ids == doc_ids[:, :1]).all()) and bool((doc_ids >= 0).all())


def block_diagonal_mask(doc_ids: torch.Tensor) -> torch.Tensor | None:
    """(B, 1, T, T) boolean mask, True where query and key belong to the same sequence.

    Padding (-1) attends only to padding, so no row is empty (an empty row would give NaN). Returns
    None when every row holds one unpadded sequence, letting SDPA pick its fastest (flash) kernel.
    """
    return None if one_sequence_per_row(doc_ids) else _same_sequence(doc_ids)


def _same_sequence(doc_ids: torch.Tensor) -> torch.Tensor:
    return (doc_ids[:, :, None] == doc_ids[:, None, :]).unsqueeze(1)


def row_spans(doc_ids: torch.Tensor) -> list[list[tuple[int, int]]]:
    """Per row, the (start, stop) of each sequence and padding run (:func:`sequence_starts`)."""
    B, T = doc_ids.shape
    rows: list[list[int]] = [[] for _ in range(B)]
    for row, column in sequence_starts(doc_ids).nonzero().tolist():
        rows[row].append(column)
    return [list(zip(edges, edges[1:] + [T])) for edges in rows]


class Packing:
    """Which tokens may attend to which, from ``doc_ids`` (B, T), in the form attention needs.

    ``packed`` is False when every row is one unpadded sequence (no mask at all, the flash kernel).
    Otherwise attention is block-diagonal, computed one of two ways with the same result:

    * ``mask`` (B, 1, T, T) for SDPA: one call for the batch, the cross-sequence blocks computed and
      thrown away. Used for training (fewer, larger kernels win once the backward pass is counted) and
      off the CPU.
    * split (:func:`split_attention`), for inference on CPU: one unmasked SDPA call per sequence of each
      row (``spans``). The masked CPU kernel costs as much as a full row and more (a 2,048-token row: 1.35×
      the unmasked call); split, a row of 4 sequences runs attention in about half the masked time.
    """

    def __init__(self, doc_ids: torch.Tensor):
        self.doc_ids = doc_ids
        self.packed = not one_sequence_per_row(doc_ids)

    @functools.cached_property
    def mask(self) -> torch.Tensor | None:
        return _same_sequence(self.doc_ids) if self.packed else None

    @functools.cached_property
    def spans(self) -> list[list[tuple[int, int]]]:
        return row_spans(self.doc_ids)

    def split(self, training: bool) -> bool:
        """Whether attention runs per sequence (:func:`split_attention`) rather than masked: for inference
        (no gradients, not in training mode) on CPU."""
        return self.packed and not training and self.doc_ids.device.type == "cpu" and not torch.is_grad_enabled()


def split_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, spans: list[list[tuple[int, int]]], scale: float
) -> torch.Tensor:
    """Block-diagonal attention of (B, H, T, hd) queries, keys and values: one unmasked SDPA call per
    span of each row (``spans[row]``, :func:`row_spans`). For inference: with the backward pass, the many
    small calls cost more than one masked call (see :class:`Packing`)."""
    out = torch.empty_like(q)
    for row, row_spans_ in enumerate(spans):
        for a, b in row_spans_:
            # 4-D slices: SDPA takes its flash kernel for (1, H, L, hd), its slow math path for (H, L, hd)
            piece = slice(row, row + 1), slice(None), slice(a, b)
            out[piece] = F.scaled_dot_product_attention(q[piece], k[piece], v[piece], scale=scale)
    return out


# ------------------------------------------------------------------------------------------------
# Rotary embeddings (interleaved pairs (2j, 2j+1), as the reference's complex formulation)
# ------------------------------------------------------------------------------------------------
class Rotary(nn.Module):
    """cos/sin of m·θ_j for the positions of a batch. Frequencies are recomputed per call (hd/2
    numbers) instead of kept in a buffer, so a model built on the meta device needs no fix-up.

    ``table="obte"`` (obte's models): θ_j = θ^(−2j/d) in float64, rounded once to float32; cos and sin of
    m·θ_j on the positions' device. ``table="omnibiote"`` (converted OmniBioTE checkpoints): the reference's
    (LLaMA's) ``freqs_cis`` table exactly — θ_j = 1/θ^(2j/d) evaluated in float32 and cos/sin by ``torch.polar``,
    on the CPU as the reference builds it — so a converted model's rotation is the one the checkpoint was trained
    and saved with (at head size 128, 19 of the 64 float32 θ_j differ by one ulp from the float64 ones, which
    moves cos(m·θ_j) at long positions). That table is built once per device for the longest row seen."""

    def __init__(self, head_dim: int, theta: float, table: str = "obte"):
        super().__init__()
        self.head_dim = head_dim
        self.theta = theta
        self.table = table
        self._tables: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}  # device → (cos, sin) [rows, hd/2]

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.table == "omnibiote":
            cos, sin = self._omnibiote_table(positions.shape[-1], positions.device)  # positions < row length
            return cos[positions][:, None], sin[positions][:, None]  # (B, 1, T, hd/2) each
        exponents = torch.arange(0, self.head_dim, 2, device=positions.device, dtype=torch.float64) / self.head_dim
        inv_freq = (self.theta**-exponents).float()  # (hd/2,)
        angles = positions.float()[..., None] * inv_freq  # (B, T, hd/2)
        return angles.cos()[:, None], angles.sin()[:, None]  # (B, 1, T, hd/2) each

    def _omnibiote_table(self, rows: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        cached = self._tables.get(device)
        if cached is None or cached[0].shape[0] < rows:
            d = self.head_dim
            inv_freq = 1.0 / (self.theta ** (torch.arange(0, d, 2)[: d // 2].float() / d))  # float32 throughout
            angles = torch.outer(torch.arange(rows), inv_freq).float()  # (rows, hd/2)
            table = torch.polar(torch.ones_like(angles), angles)  # complex64, on the CPU
            cached = self._tables[device] = (table.real.to(device), table.imag.to(device))
        return cached


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kind: str = "rotary") -> torch.Tensor:
    """Rotate each interleaved pair (x[2j], x[2j+1]) of ``x`` (B, H, T, hd) by angle m·θ_j.

    ``kind="cosine"`` multiplies both members of a pair by cos(m·θ_j) instead: the released OmniBioTE
    models computed this, because casting their complex ``freqs_cis`` buffer to bf16 kept its real part
    only; ``"cosine-bf16"`` also rounds cos to bf16, as that buffer stored it."""
    x_pairs = x.float().unflatten(-1, (-1, 2))  # (B, H, T, hd/2, 2)
    if kind == "rotary":
        # each pair as one complex number times e^{i·m·θ_j}: one kernel forward and backward, where the
        # written-out rotation (4 products, 2 sums, a stack) took 3.5× as long on CPU
        try:
            pairs = torch.view_as_complex(x_pairs)
        except RuntimeError:  # a view whose strides cannot be read as complex numbers
            pairs = torch.view_as_complex(x_pairs.contiguous())
        rotated = torch.view_as_real(pairs * torch.complex(cos, sin))
        return rotated.flatten(-2).type_as(x)
    x0, x1 = x_pairs[..., 0], x_pairs[..., 1]
    c = cos.to(torch.bfloat16).float() if kind == "cosine-bf16" else cos
    return torch.stack((x0 * c, x1 * c), dim=-1).flatten(-2).type_as(x)


# ------------------------------------------------------------------------------------------------
# Transformer block
# ------------------------------------------------------------------------------------------------
class SelfAttention(nn.Module):
    def __init__(self, config: ObteConfig):
        super().__init__()
        self.config = config
        self.qkv = nn.Linear(config.width, 3 * config.width, bias=False)  # rows: q | k | v
        self.proj = nn.Linear(config.width, config.width, bias=False)

    def heads(self, x, cos, sin) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries (rotated), keys (rotated) and values of ``x`` (B, T, D), each (B, H, T, hd)."""
        B, T, D = x.shape
        H, hd = self.config.n_heads, self.config.head_dim
        q, k, v = self.qkv(x).split(D, dim=-1)
        q, k, v = (t.view(B, T, H, hd).transpose(1, 2) for t in (q, k, v))
        q, k = apply_rotary(q, cos, sin, self.config.rope), apply_rotary(k, cos, sin, self.config.rope)
        return q, k, v

    def probabilities(self, x, cos, sin, packing: Packing) -> torch.Tensor:
        """(B, H, T, T) float32 attention probabilities, rows = queries: the weights ``forward`` gives
        the values (SDPA computes them internally and does not return them)."""
        q, k, _ = self.heads(x, cos, sin)
        scores = (q @ k.transpose(-1, -2)).float() * self.config.attn_scale
        if packing.mask is not None:
            scores = scores.masked_fill(~packing.mask, float("-inf"))
        return torch.softmax(scores, dim=-1)

    def forward(self, x, cos, sin, packing: Packing):
        B, T, D = x.shape
        q, k, v = self.heads(x, cos, sin)
        if packing.split(self.training):
            y = split_attention(q, k, v, packing.spans, self.config.attn_scale)
        else:
            y = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=packing.mask,
                dropout_p=self.config.dropout if self.training else 0.0,
                scale=self.config.attn_scale,
            )  # (B, H, T, hd)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))


class MLP(nn.Module):
    """GELU MLP of ``mlp_ratio``·width, or (``mlp="swiglu"``) SwiGLU whose ``fc`` rows are h | gate."""

    def __init__(self, config: ObteConfig):
        super().__init__()
        self.swiglu = config.mlp == "swiglu"
        hidden = config.mlp_ratio * config.width
        self.fc = nn.Linear(config.width, hidden, bias=False)
        self.proj = nn.Linear(hidden // 2 if self.swiglu else hidden, config.width, bias=False)

    def forward(self, x):
        if self.swiglu:
            h, gate = self.fc(x).chunk(2, dim=-1)
            return self.proj(h * F.silu(gate))
        return self.proj(F.gelu(self.fc(x)))


class OmniBioTENorm(nn.Module):
    """The released OmniBioTE (v2) LayerNorm: weight·(x − mean)/(unbiased std + eps) + bias."""

    def __init__(self, width: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)  # unbiased, eps outside the square root, as the reference
        return self.weight * (x - mean) / (std + self.eps) + self.bias


def make_norm(config: ObteConfig) -> nn.Module:
    if config.norm == "omnibiote":
        return OmniBioTENorm(config.width, config.norm_eps)
    return nn.LayerNorm(config.width, eps=config.norm_eps, bias=False)


class Block(nn.Module):
    def __init__(self, config: ObteConfig):
        super().__init__()
        self.ln_1 = make_norm(config)
        self.attn = SelfAttention(config)
        self.ln_2 = make_norm(config)
        self.mlp = MLP(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, cos, sin, packing: Packing):
        x = x + self.dropout(self.attn(self.ln_1(x), cos, sin, packing))
        return x + self.dropout(self.mlp(self.ln_2(x)))


@dataclass
class EncoderOutput:
    hidden: torch.Tensor  # (B, T, width) after the final LayerNorm
    layers: dict[int, torch.Tensor] = field(default_factory=dict)  # requested layers, 0 = embeddings


class ObteModel(nn.Module):
    def __init__(self, config: ObteConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.width)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = make_norm(config)
        self.readout = nn.Linear(config.width, config.vocab_size, bias=False)
        self.rotary = Rotary(config.head_dim, config.rope_theta, config.rope_table)
        self.source = None  # the directory load_model read it from (None: built in memory); named in errors
        self.reset_parameters()

    # -- μP initialisation (see module docstring) --
    @torch.no_grad()
    def reset_parameters(self) -> None:
        c = self.config
        nn.init.normal_(self.embed.weight, std=1.0)
        hidden_std = c.width**-0.5
        out_std = hidden_std / math.sqrt(2 * c.n_layers)
        for block in self.blocks:
            nn.init.normal_(block.attn.qkv.weight, std=hidden_std)
            block.attn.qkv.weight[: c.width].zero_()  # queries start at zero: uniform attention
            nn.init.normal_(block.attn.proj.weight, std=out_std)
            nn.init.normal_(block.mlp.fc.weight, std=hidden_std)
            nn.init.normal_(block.mlp.proj.weight, std=block.mlp.proj.in_features**-0.5 / math.sqrt(2 * c.n_layers))
        for norm in [self.ln_f, *(m for block in self.blocks for m in (block.ln_1, block.ln_2))]:
            norm.weight.fill_(1.0)
            if getattr(norm, "bias", None) is not None:
                norm.bias.zero_()
        self.readout.weight.zero_()

    def num_parameters(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.embed.weight.numel() + self.readout.weight.numel()
        return n

    def _inputs(self, ids: torch.Tensor, doc_ids: torch.Tensor | None):
        """Token embeddings (B, T, D), the rotary cos/sin of each token's position within its own
        sequence, and which tokens attend to which (:class:`Packing`)."""
        if doc_ids is None:
            doc_ids = torch.zeros_like(ids)
        cos, sin = self.rotary(positions_from_doc_ids(doc_ids))
        return self.embed(ids), cos, sin, Packing(doc_ids)

    def forward(
        self,
        ids: torch.Tensor,
        doc_ids: torch.Tensor | None = None,
        layers: tuple[int, ...] | list[int] = (),
    ) -> EncoderOutput:
        """Encode ``ids`` (B, T). ``doc_ids`` (B, T) marks packed sequences (-1 = padding); ``layers``
        asks for intermediate outputs: 0 is the embedding output, i the output of block i, and
        ``n_layers`` the final (normalised) output; negative numbers count from the end."""
        wanted = {layer % (self.config.n_layers + 1) for layer in layers}
        x, cos, sin, packing = self._inputs(ids, doc_ids)
        out: dict[int, torch.Tensor] = {}
        if 0 in wanted:
            out[0] = x
        for i, block in enumerate(self.blocks, start=1):
            x = block(x, cos, sin, packing)
            if i in wanted and i != self.config.n_layers:
                out[i] = x
        x = self.ln_f(x)
        if self.config.n_layers in wanted:
            out[self.config.n_layers] = x
        return EncoderOutput(hidden=x, layers=out)

    def attention_probabilities(self, ids: torch.Tensor, doc_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Every layer's attention probabilities for ``ids`` (B, T): (B, n_layers, n_heads, T, T) float32,
        rows = queries, each from its block's own attention module (:meth:`SelfAttention.probabilities`)
        on the same inputs as :meth:`forward`. Costs one forward pass plus a second query/key projection
        and an explicit (T, T) softmax per layer; wrap it in ``no_grad`` unless gradients are wanted."""
        x, cos, sin, packing = self._inputs(ids, doc_ids)
        maps = []
        for block in self.blocks:
            maps.append(block.attn.probabilities(block.ln_1(x), cos, sin, packing))
            x = block(x, cos, sin, packing)
        return torch.stack(maps, dim=1)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Readout with the μP output multiplier: (..., width) → (..., vocab_size)."""
        return self.readout(hidden) * self.config.readout_scale

    def mlm_loss(
        self, ids: torch.Tensor, targets: torch.Tensor, doc_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked-LM cross-entropy. ``targets`` (B, T) holds the original id at masked positions and
        -100 elsewhere; the readout is computed at masked positions only (N ≪ B·T rows, not B·T·V).
        Returns (mean loss, number of masked tokens)."""
        hidden = self(ids, doc_ids).hidden
        logits, labels = self.masked_logits(hidden, targets)
        n = labels.numel()
        if n == 0:
            return hidden.sum() * 0.0, torch.tensor(0, device=ids.device)
        return F.cross_entropy(logits, labels), torch.tensor(n, device=ids.device)

    def masked_logits(self, hidden: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The masked-LM readout: float32 logits (N, vocab_size) at the N masked positions (``targets``
        != -100) and their true ids (N,). The one place the MLM loss of pretraining, its held-out
        evaluation and :meth:`mlm_loss` read the vocabulary out."""
        selected = targets != -100
        return self.logits(hidden[selected]).float(), targets[selected]


def non_embedding_parameters(config: ObteConfig) -> int:
    """Parameters outside the embedding and readout tables, without building the model."""
    d, L = config.width, config.n_layers
    mlp = config.mlp_ratio * d * d * (1.5 if config.mlp == "swiglu" else 2)  # fc + proj
    norm = 2 * d if config.norm == "omnibiote" else d  # weight (and bias)
    per_block = 4 * d * d + int(mlp) + 2 * norm  # qkv+proj, MLP, two norms
    return L * per_block + norm  # + final norm


def _weight_tables(config: ObteConfig) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """Shapes of the model's own weights and of each block's (names relative to ``blocks.<i>.``)."""
    d, v = config.width, config.vocab_size
    hidden = config.mlp_ratio * d
    norm = ("weight", "bias") if config.norm == "omnibiote" else ("weight",)
    own = {"embed.weight": (v, d), **{f"ln_f.{n}": (d,) for n in norm}, "readout.weight": (v, d)}
    block = {
        **{f"ln_1.{n}": (d,) for n in norm},
        "attn.qkv.weight": (3 * d, d),
        "attn.proj.weight": (d, d),
        **{f"ln_2.{n}": (d,) for n in norm},
        "mlp.fc.weight": (hidden, d),
        "mlp.proj.weight": (d, hidden // 2 if config.mlp == "swiglu" else hidden),
    }
    return own, block


def weight_shape(config: ObteConfig, name: str) -> tuple[int, ...] | None:
    """The shape of weight ``name`` in ``ObteModel(config).state_dict()``, or None if it has no such
    weight. Computed from the config alone: a model directory's weights are checked against it before
    anything is built, however many layers or however wide its config.json says the model is."""
    own, block = _weight_tables(config)
    layer, dot, rest = name.removeprefix("blocks.").partition(".")
    if name.startswith("blocks.") and dot and layer.isdecimal() and len(layer) < 19 and str(int(layer)) == layer:
        return block.get(rest) if int(layer) < config.n_layers else None
    return own.get(name)


def weight_count(config: ObteConfig) -> int:
    own, block = _weight_tables(config)
    return len(own) + config.n_layers * len(block)


def weight_names(config: ObteConfig) -> Iterator[str]:
    """Every weight name of ``ObteModel(config)``, lazily (a config may claim a billion layers)."""
    own, block = _weight_tables(config)
    yield "embed.weight"
    for i in range(config.n_layers):
        yield from (f"blocks.{i}.{name}" for name in block)
    yield from (name for name in own if name != "embed.weight")


def flops_per_token(config: ObteConfig, context: int, training: bool = True) -> float:
    """Model FLOPs per token (PaLM/nanoGPT accounting): 6N + 12·L·d·T to train, 2N + 4·L·d·T forward."""
    n = non_embedding_parameters(config)
    attention = config.n_layers * config.width * context
    return 6 * n + 12 * attention if training else 2 * n + 4 * attention
