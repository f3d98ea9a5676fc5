"""An obte model as a Hugging Face ``transformers`` ESM model (``obte export --format hf``).

The directory written loads with no remote code: ``EsmForMaskedLM`` / ``AutoModelForMaskedLM`` (logits),
``EsmModel`` / ``AutoModel`` (hidden states), ``AutoConfig`` and ``AutoTokenizer`` (an ``EsmTokenizer``)::

    config.json  model.safetensors  vocab.txt  tokenizer_config.json  README.md  obte-export.json

How obte's encoder (:mod:`obte_cli.engine.model.encoder`) becomes ESM's (``transformers/models/esm/modeling_esm.py``):

* Both are pre-LayerNorm encoders with rotary positions and an erf-GELU MLP, with no LayerNorm before the
  first block (``emb_layer_norm_before: false``) and one after the last (obte's ``ln_f`` is ESM's
  ``emb_layer_norm_after``). ESM's linear layers and LayerNorms have biases, obte's have none: they are
  written as zeros, which changes nothing. ``token_dropout`` (ESM-2's rescaling of embeddings by the share
  of ``<mask>`` tokens) is off, as obte has no such step.
* μP attention scale: obte multiplies q·k by ``attn_mult / width``; ESM multiplies the queries by
  ``head_size**-0.5``. The query weights are multiplied by ``attn_mult / width · sqrt(head_size)`` (once,
  in float64, then rounded to float32), which gives the same logits of attention.
* Rotary pairing: obte rotates interleaved pairs (2j, 2j+1) of each head; ESM's ``rotate_half`` rotates
  (j, j + head_size/2). The query and key rows of each head are permuted (even components first, then the
  odd ones): the pairs and their angles are then the same, and q·k is unchanged by permuting both. obte's
  frequencies θ_j are written as ESM's ``inv_freq`` buffer, so cos/sin are bit for bit obte's.
* Readout: obte's logits are ``readout(ln_f(x)) · readout_mult · base_width / width``; the μP multiplier
  is folded into ESM's ``lm_head.decoder`` weights.

What ESM cannot express exactly, the LM head (logits only; hidden states are not concerned): ESM reads
``lm_head.decoder(LayerNorm(gelu(dense(h))))`` where obte reads its last hidden state ``h = ln_f(x)``
directly. The export makes that chain an identity up to one term: ``dense`` divides each column by
obte's ``ln_f`` weight (times :data:`HEAD_GAIN`) and adds a bias that puts every input of GELU above
:data:`GELU_LINEAR_FROM`, where float32 GELU returns its input unchanged (erf rounds to exactly 1); the
head's LayerNorm (weights = obte's ``ln_f`` weights) then re-normalises the recovered, already normalised
vector. That second normalisation cannot be undone: obte's ``ln_f`` output n = (x − μ)/√(σ² + ε) has a
variance σ²/(σ² + ε), not exactly 1, so ESM's head divides it once more, by √(σ²/(σ² + ε) + ε/HEAD_GAIN²).
The logits of a token differ from obte's by a relative ≈ ε / (2σ²) (σ the standard deviation of the
token's final residual stream across its width: 8 to 34 for the bundled backbone, so about 1e-7 relative).
The bias that keeps GELU linear costs the head about log2(√width) bits: float32 logits are fine, half
precision logits are not (hidden states are, as for any ESM model). The model's own numbers are in the
test (tests/engine/model/test_hf_export.py) and the README.

Tokens: obte's per-residue tokenizer gives protein and nucleic-acid letters separate ids, and
``EsmTokenizer`` reads characters of one vocabulary, so nucleotides are written **lower-case**
(``a c g t``; RNA too: ``u`` is written ``t``, obte reads U as T) and amino acids upper-case. Tags and
specials keep obte's names (``<protein>``, ``<DNA>``, ``<RNA>``, ``<eos>``, ``<mask>``, ``<unk>``,
``<pad>``). The tokenizer's ``cls_token`` is ``<protein>``, so ``tokenizer("MKV")`` gives obte's protein
input ``<protein> M K V <eos>``; a nucleic acid is written with its tag,
``tokenizer("<DNA>acgt<eos>", add_special_tokens=False)``. Ids are obte's own (``vocab.txt`` line i is
id i); ``obte-export.json`` lists them. BPE (sentencepiece) tokenizers have no ``EsmTokenizer``
equivalent and are refused, as are the released OmniBioTE variants ESM cannot compute (SwiGLU MLP,
OmniBioTE LayerNorm, cosine-only rotary).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file

from obte_cli import __version__
from obte_cli.engine.bio.molecules import NUCLEIC, PROTEIN
from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.outputs import new_file_mode, staged_directory
from obte_cli.engine.core.safetensors_files import safetensors_write_errors
from obte_cli.engine.model.directory import load_model
from obte_cli.engine.model.encoder import ObteConfig, ObteModel
from obte_cli.engine.tokenizers.base import Tokenizer
from obte_cli.engine.tokenizers.residue import ResidueTokenizer

FORMATS = ("hf",)
EXPORT_FORMAT = "obte-hf-export"  # the marker file's "format": what lets --force replace an earlier export
EXPORT_FILE = "obte-export.json"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
VOCAB_FILE = "vocab.txt"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
CARD_FILE = "README.md"
# The LM head's dense layer multiplies the recovered LayerNorm output by HEAD_GAIN (a power of two): its
# LayerNorm's ε then weighs ε / HEAD_GAIN² against a unit variance (2.4e-9 for ε = 1e-5), and the bias
# that keeps GELU linear stays far below float16's largest number for any width obte builds.
HEAD_GAIN = 64.0
# float32 GELU (x · ½ · (1 + erf(x/√2))) returns x exactly from x ≈ 5.35 up (erf rounds to 1); 16 leaves room
GELU_LINEAR_FROM = 16.0
NUCLEIC_CASE = "lower"  # nucleotides are lower-case tokens, amino acids upper-case

DIFFERENCES = (
    "LM head (logits only): ESM's lm_head applies LayerNorm(gelu(dense(h))) before its decoder, obte reads its "
    "final hidden state h directly. The export makes dense+GELU an identity (dense divides by obte's final "
    "LayerNorm weight; a bias keeps every GELU input in the range where float32 GELU returns its input), but the "
    "head's LayerNorm normalises obte's already normalised hidden state a second time. That cannot be undone: "
    "logits differ from obte's by a relative ~eps/(2*sigma^2), sigma the token's final residual-stream standard "
    "deviation (about 1e-7 for the bundled backbone). Hidden states (EsmModel, output_hidden_states) are not "
    "concerned.",
    "Precision: that GELU bias costs the LM head about log2(sqrt(hidden_size)) bits; load the model in float32 for "
    "logits (hidden states work in any dtype, as for any ESM model).",
    "Rotary frequencies are obte's (written as the inv_freq buffer); the query weights carry obte's muP attention "
    "scale attn_mult/width (ESM's head_size**-0.5 divided out) and their rows, with the keys', are permuted from "
    "obte's interleaved rotary pairs to ESM's rotate_half halves; the decoder carries the muP readout multiplier. "
    "Each folded weight is rounded once to float32.",
    "No pooler and no contact head: EsmModel's pooler (AutoModel) starts untrained, as for facebook/esm2 "
    "checkpoints; load AutoModel.from_pretrained(dir, add_pooling_layer=False) or use last_hidden_state. "
    "contact_head weights are zeros.",
)


@dataclass
class HfExport:
    """What :func:`export_hf` wrote: the directory, the token of each id, and what this model loses beyond
    :data:`DIFFERENCES` (a task head)."""

    path: Path
    vocabulary: list[str]
    notes: list[str] = field(default_factory=list)


def check_exportable(config: ObteConfig, tokenizer: Tokenizer, where: str) -> None:
    """InputError naming what ESM's architecture or tokenizer cannot compute (``where`` names the model)."""
    refusals = {
        "mlp": ("gelu", "ESM's MLP is GELU; this model's is SwiGLU (a converted OmniBioTE v2 model)"),
        "norm": (
            "layernorm",
            "ESM's LayerNorm divides by sqrt(variance + eps); this model's OmniBioTE norm divides by "
            "(unbiased std + eps)",
        ),
        "rope": (
            "rotary",
            "ESM rotates rotary pairs; this model scales them by cos(m*theta) (as the released bf16 OmniBioTE "
            "weights computed)",
        ),
    }
    for name, (supported, why) in refusals.items():
        value = getattr(config, name)
        if value != supported:
            raise InputError(f"{where}: architecture.{name} is {value!r}: {why}; it cannot be exported as ESM")
    if not isinstance(tokenizer, ResidueTokenizer):
        raise InputError(
            f"{where}: its tokenizer is {tokenizer.kind} (BPE pieces); Hugging Face's EsmTokenizer reads single "
            "vocabulary entries and cannot express BPE merges: only models with the per-residue tokenizer export"
        )


def esm_vocabulary(tokenizer: ResidueTokenizer, vocab_size: int) -> list[str]:
    """The token of every id 0..vocab_size-1: obte's specials and tags as ``<name>``, amino acids upper-case,
    nucleotides lower-case, and ``<unused_I>`` for the ids the embedding table pads the vocabulary with."""
    tokens: dict[int, str] = {}
    for name, i in [*tokenizer.specials.items(), *tokenizer.tags.items()]:
        tokens[i] = f"<{name}>"
    for letter, i in tokenizer.letters[PROTEIN].items():
        tokens[i] = letter.upper()
    for letter, i in tokenizer.letters[NUCLEIC].items():
        tokens[i] = letter.lower()
    return [tokens.get(i, f"<unused_{i}>") for i in range(vocab_size)]


def rotary_inv_freq(config: ObteConfig) -> torch.Tensor:
    """The frequencies θ_j obte's :class:`~obte_cli.engine.model.encoder.Rotary` rotates pair j by, float32
    (ESM's ``inv_freq`` buffer): its "obte" table rounds θ^(−2j/d) from float64, "omnibiote" computes in float32."""
    d = config.head_dim
    if config.rope_table == "omnibiote":
        return 1.0 / (config.rope_theta ** (torch.arange(0, d, 2)[: d // 2].float() / d))
    exponents = torch.arange(0, d, 2, dtype=torch.float64) / d
    return (config.rope_theta**-exponents).float()


def rotary_permutation(config: ObteConfig) -> torch.Tensor:
    """Row order of the query/key projections that turns obte's interleaved pairs (2j, 2j+1) of each head
    into ESM's halves (j, j + head_size/2): per head, the even components then the odd ones."""
    hd = config.head_dim
    within = torch.cat([torch.arange(0, hd, 2), torch.arange(1, hd, 2)])
    return (torch.arange(config.n_heads)[:, None] * hd + within[None]).reshape(-1)


def esm_config(config: ObteConfig, tokenizer: ResidueTokenizer) -> dict:
    """config.json of the ESM model (``EsmConfig``'s fields)."""
    return {
        "architectures": ["EsmForMaskedLM"],
        "model_type": "esm",
        "vocab_size": config.vocab_size,
        "hidden_size": config.width,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "intermediate_size": config.mlp_ratio * config.width,
        "hidden_act": "gelu",
        "hidden_dropout_prob": config.dropout,
        "attention_probs_dropout_prob": config.dropout,
        "max_position_embeddings": config.max_positions,
        "position_embedding_type": "rotary",
        "rope_theta": config.rope_theta,
        "layer_norm_eps": config.norm_eps,
        "emb_layer_norm_before": False,
        "token_dropout": False,
        "tie_word_embeddings": False,
        "pad_token_id": tokenizer.pad_id,
        "mask_token_id": tokenizer.mask_id,
        "eos_token_id": tokenizer.eos_id,
        "is_folding_model": False,
        "dtype": "float32",
    }


def _scaled(weight: torch.Tensor, factor: float) -> torch.Tensor:
    """``weight · factor`` computed in float64 and rounded once to float32."""
    return (weight.double() * factor).float()


def esm_state_dict(model: ObteModel, where: str = "the model") -> dict[str, torch.Tensor]:
    """The weights of ``EsmForMaskedLM`` that compute ``model`` (see the module docstring), float32."""
    c = model.config
    d = c.width
    state = {name: tensor.detach().to("cpu", torch.float32) for name, tensor in model.state_dict().items()}

    def zeros(n: int) -> torch.Tensor:
        return torch.zeros(n, dtype=torch.float32)

    rows = rotary_permutation(c)
    query_scale = c.attn_scale * math.sqrt(c.head_dim)  # ESM multiplies queries by head_size**-0.5 itself
    out = {
        "esm.embeddings.word_embeddings.weight": state["embed.weight"],
        "esm.rotary_embeddings.inv_freq": rotary_inv_freq(c),
    }
    for i in range(c.n_layers):
        b, e = f"blocks.{i}.", f"esm.encoder.layer.{i}."
        q, k, v = state[b + "attn.qkv.weight"].split(d)
        hidden = state[b + "mlp.fc.weight"].shape[0]
        out |= {
            e + "attention.LayerNorm.weight": state[b + "ln_1.weight"],
            e + "attention.LayerNorm.bias": zeros(d),
            e + "attention.self.query.weight": _scaled(q[rows], query_scale),
            e + "attention.self.query.bias": zeros(d),
            e + "attention.self.key.weight": k[rows],
            e + "attention.self.key.bias": zeros(d),
            e + "attention.self.value.weight": v,
            e + "attention.self.value.bias": zeros(d),
            e + "attention.output.dense.weight": state[b + "attn.proj.weight"],
            e + "attention.output.dense.bias": zeros(d),
            e + "LayerNorm.weight": state[b + "ln_2.weight"],
            e + "LayerNorm.bias": zeros(d),
            e + "intermediate.dense.weight": state[b + "mlp.fc.weight"],
            e + "intermediate.dense.bias": zeros(hidden),
            e + "output.dense.weight": state[b + "mlp.proj.weight"],
            e + "output.dense.bias": zeros(d),
        }
    final = state["ln_f.weight"]
    divided = (HEAD_GAIN / final.double()).float()
    unusable = ~torch.isfinite(divided)
    if bool(unusable.any()):
        column = int(unusable.nonzero()[0])
        raise InputError(
            f"{where}: its final LayerNorm weight is {float(final[column]):.3g} at column {column}; ESM's LM head "
            "would have to divide by it to recover the normalised hidden state, so it cannot be exported"
        )
    out |= {
        "esm.encoder.emb_layer_norm_after.weight": final,
        "esm.encoder.emb_layer_norm_after.bias": zeros(d),
        "esm.contact_head.regression.weight": torch.zeros(1, c.n_layers * c.n_heads),
        "esm.contact_head.regression.bias": zeros(1),
        # the LM head: dense recovers n = ln_f(x) / weight (× HEAD_GAIN), shifted so that GELU is the identity
        # (|n_i| < sqrt(width) for a normalised vector); the head's LayerNorm removes the shift and puts the
        # weight back; the decoder is obte's readout with its μP multiplier
        "lm_head.dense.weight": torch.diag(divided),
        "lm_head.dense.bias": torch.full((d,), HEAD_GAIN * math.sqrt(d) + GELU_LINEAR_FROM),
        "lm_head.layer_norm.weight": final,
        "lm_head.layer_norm.bias": zeros(d),
        "lm_head.decoder.weight": _scaled(state["readout.weight"], c.readout_scale),
        "lm_head.bias": zeros(c.vocab_size),
    }
    return {name: tensor.clone().contiguous() for name, tensor in out.items()}  # no shared storage


def tokenizer_config(tokenizer: ResidueTokenizer, config: ObteConfig) -> dict:
    return {
        "tokenizer_class": "EsmTokenizer",
        "cls_token": "<protein>",
        "eos_token": "<eos>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
        "unk_token": "<unk>",
        "model_max_length": config.max_positions,
    }


def _tag_table(tokenizer: ResidueTokenizer) -> str:
    return ", ".join(f"`<{name}>` {i}" for name, i in sorted(tokenizer.tags.items(), key=lambda item: item[1]))


def model_card(source: str, config: ObteConfig, tokenizer: ResidueTokenizer, notes: list[str]) -> str:
    """README.md of the export: how to load it, what to feed it, and what differs from obte."""
    protein = " ".join(f"{letter} {i}" for letter, i in sorted(tokenizer.letters[PROTEIN].items()))
    nucleic = " ".join(f"{letter.lower()} {i}" for letter, i in sorted(tokenizer.letters[NUCLEIC].items()))
    specials = ", ".join(f"`<{name}>` {i}" for name, i in tokenizer.specials.items())
    lines = [
        "# obte model exported for Hugging Face transformers (ESM architecture)",
        "",
        f"Exported by `obte export --format hf` (obte {__version__}) from `{source}`: width {config.width}, "
        f"{config.n_layers} layers, {config.n_heads} heads, vocabulary {config.vocab_size}, "
        f"context {config.max_positions} tokens. No remote code:",
        "",
        "```python",
        "from transformers import AutoTokenizer, EsmForMaskedLM, AutoModel",
        "tokenizer = AutoTokenizer.from_pretrained(DIR)",
        "model = EsmForMaskedLM.from_pretrained(DIR).eval()          # logits (float32)",
        "encoder = AutoModel.from_pretrained(DIR, add_pooling_layer=False).eval()  # hidden states",
        'protein = tokenizer("MKTAYIAKQR", return_tensors="pt")               # <protein> M K ... <eos>',
        'dna = tokenizer("<DNA>acgtacgt<eos>", add_special_tokens=False, return_tensors="pt")',
        "hidden = encoder(**protein).last_hidden_state   # = obte embed --pool per-token",
        "```",
        "",
        "## What to feed it",
        "",
        "Every sequence is `<tag> residues <eos>`, as obte encodes it. **Amino acids are upper-case, nucleotides "
        "lower-case** (obte gives them separate ids; `EsmTokenizer` reads characters of one vocabulary):",
        "",
        '- a protein: `tokenizer("MKV")` adds `<protein>` (the tokenizer\'s cls token) and `<eos>`;',
        "- a nucleic acid: write its tag and `<eos>` yourself and pass `add_special_tokens=False`: "
        '`tokenizer("<DNA>acgt<eos>", add_special_tokens=False)`; RNA as `<RNA>acgt<eos>` (write U as `t`: obte '
        "reads U as T, the tag says RNA); upper-case `ACGT` would be read as the amino acids A, C, G, T;",
        "- several molecules in one input (a complex) are concatenated: `<protein>MKV<eos><DNA>acgt<eos>`;",
        "- a letter outside the alphabets (X, N, ...) becomes `<unk>`; write `<unk>` for each one yourself: a run "
        "of unknown letters is read as a single `<unk>`, where obte gives each letter one.",
        "",
        f"Ids (obte's own; `vocab.txt` line i is id i): specials {specials}; amino acids {protein}; "
        f"nucleotides {nucleic}; tags {_tag_table(tokenizer)}. Ids without a token are `<unused_I>` (the "
        "embedding table's padding). `obte-export.json` holds the same table.",
        "",
        "## What differs from obte",
        "",
        *(f"- {note}" for note in notes),
        "",
    ]
    return "\n".join(lines)


def _write_json(path: Path, content: dict) -> None:
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def export_hf(model_dir: str | Path, out: str | Path, source: str | None = None) -> HfExport:
    """Write ``model_dir`` as a Hugging Face ESM model directory ``out`` (built beside it and moved into place;
    an existing ``out`` is replaced only if obte wrote it: the caller decides whether it may be, see
    :func:`obte_cli.engine.core.directories.claim_output`). ``source`` names the model in the card."""
    loaded = load_model(model_dir)
    model, tokenizer = loaded.model, loaded.tokenizer
    where = str(model_dir)
    check_exportable(model.config, tokenizer, where)
    weights = esm_state_dict(model, where)
    vocabulary = esm_vocabulary(tokenizer, model.config.vocab_size)
    notes = []
    if loaded.head is not None:
        notes.append(
            f"The model's task head ({loaded.head.get('task', loaded.head.get('kind', 'head'))}) is not exported: "
            "ESM's classes have heads of other shapes; the backbone and its masked-LM readout are."
        )
    source = source or str(model_dir)
    marker = {
        "format": EXPORT_FORMAT,
        "obte_version": __version__,
        "source": source,
        "architecture": model.config.to_dict(),
        "tokens": {str(i): token for i, token in enumerate(vocabulary)},
        "nucleic_letters": {letter: letter.lower() for letter in sorted(tokenizer.letters[NUCLEIC])},
        "protein_letters": {letter: letter.upper() for letter in sorted(tokenizer.letters[PROTEIN])},
        "cls_token": "<protein>",
        "head_gain": HEAD_GAIN,
        "differences": [*DIFFERENCES, *notes],
    }
    out = Path(out)
    with staged_directory(out, inputs=(model_dir,)) as tmp:
        with safetensors_write_errors(out / WEIGHTS_FILE):
            save_file(weights, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        os.chmod(tmp / WEIGHTS_FILE, new_file_mode())  # safetensors makes its files 0600
        _write_json(tmp / CONFIG_FILE, esm_config(model.config, tokenizer))
        (tmp / VOCAB_FILE).write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
        _write_json(tmp / TOKENIZER_CONFIG_FILE, tokenizer_config(tokenizer, model.config))
        card = model_card(source, model.config, tokenizer, [*DIFFERENCES, *notes])
        (tmp / CARD_FILE).write_text(card, encoding="utf-8")
        _write_json(tmp / EXPORT_FILE, marker)
    return HfExport(path=out, vocabulary=vocabulary, notes=notes)
