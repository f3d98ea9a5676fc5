"""Reading the released OmniBioTE checkpoints without executing them, and mapping them to obte models.

The authors released whole pickled modules (``torch.save(model)``: classes ``OmniBioTA`` and, for ΔG,
``OmniBindER``). Unpickling them normally would import and run whatever the pickle names. Here a
restricted unpickler rebuilds only

* tensors, from the zip archive's storage files (``torch._utils._rebuild_tensor_v2``,
  ``_rebuild_parameter``), dtypes and storage types;
* plain containers (``collections.OrderedDict``) and numpy arrays (the ΔG model's ``stats``);
* module and config *objects* of the reference's classes, as inert records of their attributes
  (:class:`Recorded`): the class is never imported and no method of it runs.

Any other global — ``os.system``, ``builtins.eval``, a class outside the reference's modules — is
refused with an error naming it, before anything is built. ``torch.save(state_dict)`` files and
``weights_only`` files go through the same reader.

Layouts (``../shared/notes/omnibiote-reference.md`` §2–4), detected from keys and shapes:

* v2 (released): ``ln_*.alpha/gamma`` (its own LayerNorm), SwiGLU MLP (``c_fc`` [4d, d] = up | gate,
  ``c_proj`` [d, 2d]), logits × 32/d; vocabularies 4,096 (two 2,048-piece BPE models, protein ids
  offset by 2,048) or 49 (single characters);
* v1: weight-only LayerNorm, GELU MLP ×4, ``MuReadout`` logits × 24/d; vocabulary 65,536 (``mixed_bpe.model``);
* both: attention scale 8/d, interleaved RoPE from a per-layer ``freqs_cis`` buffer: complex → true
  rotation; real (a bf16 cast keeps only the real part) → pairs scaled by cos(mθ), reproduced as stored.
"""

from __future__ import annotations

import builtins
import io
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from obte_cli.engine.core.errors import ModelFormatError

# Modules whose classes may appear as *recorded* objects (never imported): the reference code's own
# modules, torch.nn layers, the mup package and torch.compile's wrapper.
RECORDED_MODULE_PREFIXES = (
    "model",
    "src.model",
    "__main__",
    "mup",
    "metrics",
    "torch.nn.modules.",
    "torch._dynamo.eval_frame",
    "omnibiota",
    "OmniBioTE",
)

_STORAGE_DTYPES = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128,
}
_DTYPES = {
    name: getattr(torch, name)
    for name in (
        "float64",
        "float32",
        "float16",
        "bfloat16",
        "int64",
        "int32",
        "int16",
        "int8",
        "uint8",
        "bool",
        "complex64",
        "complex128",
    )
}


class Recorded:
    """An object of a class named in the pickle, kept as data: its qualified name and attributes."""

    qualname = "?"

    def __init__(self, *args, **kwargs):
        self.args = args
        self.state: dict = {}

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):  # (dict, slots)
            state = {**(state[0] or {}), **state[1]}
        self.state = state if isinstance(state, dict) else {"_state": state}

    def __repr__(self) -> str:
        return f"<recorded {self.qualname}>"


def _recorded_class(module: str, name: str) -> type:
    return type(name, (Recorded,), {"qualname": f"{module}.{name}"})


@dataclass
class _StorageType:
    dtype: torch.dtype


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, torch.Tensor):
        raise ModelFormatError("checkpoint: a tensor refers to something that is not a storage")
    return torch.as_strided(storage, tuple(size), tuple(stride), offset).clone()


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    return data


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    if encoding.lower().replace("-", "") not in ("latin1", "iso88591"):
        raise ModelFormatError(f"checkpoint: unexpected byte encoding {encoding!r}")
    return text.encode("latin1")


def _numpy_multiarray():
    """numpy's array/scalar constructors (safe: they only build arrays), under numpy 1 or 2."""
    core = getattr(np, "_core", None) or np.core
    return core.multiarray


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for torch zip checkpoints that never imports or calls anything outside the allow-list."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, source: str):
        super().__init__(io.BytesIO(data))
        self.archive = archive
        self.prefix = prefix
        self.source = source

    def find_class(self, module: str, name: str):
        qualified = f"{module}.{name}"
        if qualified in ("torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor"):
            return _rebuild_tensor
        if qualified in ("torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state"):
            return _rebuild_parameter
        if qualified == "collections.OrderedDict":
            return OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        if qualified == "torch.Size":
            return tuple
        if qualified == "torch.device":
            return str
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in ("_reconstruct", "scalar"):
            return getattr(_numpy_multiarray(), name)
        if qualified in ("numpy.ndarray", "numpy.dtype"):
            return getattr(np, name)
        if qualified == "_codecs.encode":  # how protocol-2 pickles store bytes (numpy arrays): str → bytes only
            return _latin1_bytes
        if module in ("builtins", "__builtin__") and name in ("set", "frozenset", "slice"):
            return getattr(builtins, name)
        if any(
            module == p.rstrip(".") or module.startswith(p if p.endswith(".") else p + ".")
            for p in RECORDED_MODULE_PREFIXES
        ):
            return _recorded_class(module, name)
        raise ModelFormatError(
            f"{self.source}: refused to load: the pickle names {qualified}, which is not a tensor, "
            "container or OmniBioTE module class (nothing was executed)"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise ModelFormatError(f"{self.source}: unknown persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else storage_type
        if not isinstance(dtype, torch.dtype):
            raise ModelFormatError(f"{self.source}: storage of unknown type {storage_type!r}")
        raw = self.archive.read(f"{self.prefix}data/{key}")
        return torch.frombuffer(bytearray(raw), dtype=dtype)[:numel] if raw else torch.empty(0, dtype=dtype)


def read_checkpoint(path: str | Path):
    """The unpickled root object of a torch zip checkpoint, built only from allow-listed pieces."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFormatError(f"{path}: not a torch checkpoint (zip) file ({exc})") from None
    with archive:
        names = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if not names:
            raise ModelFormatError(f"{path}: no data.pkl inside (not a torch.save file)")
        prefix = names[0][: -len("data.pkl")]
        try:
            return RestrictedUnpickler(archive.read(names[0]), archive, prefix, str(path)).load()
        except ModelFormatError:
            raise
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, AttributeError) as exc:
            raise ModelFormatError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from None


@dataclass
class ExtractedCheckpoint:
    tensors: dict[str, torch.Tensor]
    config: dict = field(default_factory=dict)  # the recorded config object's attributes, if any
    stats: np.ndarray | None = None  # OmniBindER's (mean, sd)


def _walk_module(obj: Recorded, prefix: str, out: dict[str, torch.Tensor]) -> None:
    state = obj.state
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if isinstance(value, torch.Tensor):
                out[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        if isinstance(child, Recorded):
            _walk_module(child, f"{prefix}{name}.", out)


def extract(root) -> ExtractedCheckpoint:
    """Flat tensors (``module.`` / ``_orig_mod.`` wrappers removed), config and stats from a checkpoint."""
    tensors: dict[str, torch.Tensor] = {}
    config: dict = {}
    stats = None
    if isinstance(root, Recorded):
        _walk_module(root, "", tensors)
        for holder in (root, *(c for c in (root.state.get("_modules") or {}).values() if isinstance(c, Recorded))):
            cfg = holder.state.get("config")
            if isinstance(cfg, Recorded) and not config:
                config = {k: v for k, v in cfg.state.items() if isinstance(v, (int, float, str, bool))}
            elif isinstance(cfg, dict) and not config:
                config = dict(cfg)
        if root.state.get("stats") is not None:
            stats = np.asarray(root.state["stats"], dtype=np.float64).ravel()
    elif isinstance(root, dict):
        inner = (
            root.get("state_dict", root.get("model", root))
            if isinstance(root.get("state_dict", root.get("model")), dict)
            else root
        )
        tensors = {k: v for k, v in inner.items() if isinstance(v, torch.Tensor)}
    else:
        raise ModelFormatError(f"checkpoint holds a {type(root).__name__}, not a model or a state dict")
    cleaned = {}
    for name, tensor in tensors.items():
        for wrapper in ("_orig_mod.", "module."):
            name = name.replace(wrapper, "")
        cleaned[name] = tensor
    return ExtractedCheckpoint(cleaned, config, stats)


# --------------------------------------------------------------------------------------------------
# Mapping to obte
# --------------------------------------------------------------------------------------------------
REFERENCE_CHAR_TAGS = [
    "DNA",
    "mRNA",
    "RNA",
    "rRNA",
    "tRNA",
    "cRNA",
    "ss-RNA",
    "ss-DNA",
    "ds-mRNA",
    "ds-rRNA",
    "ds-RNA",
    "ms-DNA",
    "ms-RNA",
    "ds-cRNA",
]


def reference_char_vocabulary() -> dict:
    """The reference's 49-symbol single-character layout (notes §4): unk 0, pad 1, mask 2, EOS 3,
    A4 T5 C6 G7 (N8), nucleic tags 9–22, amino acids 23–47 (ARNDCQEGHILKMFPSTWYV…), <protein> 48."""
    return {
        "kind": "residue",
        "specials": {"unk": 0, "pad": 1, "mask": 2, "eos": 3},
        "tags": {**{name: 9 + i for i, name in enumerate(REFERENCE_CHAR_TAGS)}, "protein": 48},
        "nucleic": {"A": 4, "T": 5, "C": 6, "G": 7},
        "protein": {letter: 23 + i for i, letter in enumerate("ARNDCQEGHILKMFPSTWYV")},
    }


@dataclass
class ConvertedModel:
    model: object  # ObteModel
    tokenizer: object  # Tokenizer
    head: dict | None
    head_state: dict[str, torch.Tensor]
    metadata: dict


def convert(
    extracted: ExtractedCheckpoint, tokenizer_files: list[Path], source: str, n_heads: int | None = None
) -> ConvertedModel:
    """Build the obte model equivalent to a reference checkpoint (see module docstring)."""
    from obte_cli.engine.model.encoder import ObteConfig, ObteModel
    from obte_cli.engine.tokenizers.loading import load_tokenizer
    from obte_cli.engine.tokenizers.residue import ResidueTokenizer
    from obte_cli.engine.tokenizers.sentencepiece import SentencePieceTokenizer

    t = dict(extracted.tensors)
    head_state = {}
    if "proj_head.weight" in t:  # OmniBindER: omnibiota.* + proj_head
        head_state = {"proj.weight": t.pop("proj_head.weight").float(), "proj.bias": t.pop("proj_head.bias").float()}
        t = {k.removeprefix("omnibiota."): v for k, v in t.items() if k.startswith("omnibiota.")}
    if "transformer.wte.weight" not in t:
        raise ModelFormatError(f"{source}: no transformer.wte.weight — not an OmniBioTE checkpoint")
    if any(k.startswith("pos_emb") or k.startswith("transformer.pos_emb") for k in t):
        raise ModelFormatError(f"{source}: learned position embeddings (position_encoding='learned') are not supported")
    vocab, width = t["transformer.wte.weight"].shape
    n_layers = len({k.split(".")[2] for k in t if k.startswith("transformer.h.")})
    v2 = "transformer.h.0.ln_1.alpha" in t
    fc = t["transformer.h.0.mlp.c_fc.weight"]
    proj = t["transformer.h.0.mlp.c_proj.weight"]
    swiglu = proj.shape[1] * 2 == fc.shape[0]
    freqs = t.get("transformer.h.0.attn.freqs_cis")
    if n_heads is None:
        n_heads = extracted.config.get("n_head")
    if n_heads is None and freqs is not None:
        n_heads = width // (2 * freqs.shape[-1])  # freqs_cis is [context, head_dim / 2]
    if not n_heads:
        raise ModelFormatError(f"{source}: cannot tell the number of heads (no config, no freqs_cis); pass --n-heads")
    if freqs is None or freqs.is_complex():
        rope = "rotary"
    else:
        rope = "cosine-bf16" if freqs.dtype == torch.bfloat16 else "cosine"
    context = int(freqs.shape[0]) if freqs is not None else int(extracted.config.get("block_size", 1024))
    config = ObteConfig(
        vocab_size=vocab,
        width=width,
        n_layers=n_layers,
        n_heads=int(n_heads),
        mlp_ratio=fc.shape[0] // width,
        max_positions=context,
        attn_mult=8.0,
        base_width=32,
        readout_mult=1.0 if v2 else 24 / 32,
        norm_eps=1e-5,
        mlp="swiglu" if swiglu else "gelu",
        norm="omnibiote" if v2 else "layernorm",
        rope=rope,
    )
    state = {"embed.weight": t["transformer.wte.weight"], "readout.weight": t["lm_head.weight"]}
    for i in range(n_layers):
        src, dst = f"transformer.h.{i}.", f"blocks.{i}."
        state[dst + "attn.qkv.weight"] = t[src + "attn.c_attn.weight"]
        state[dst + "attn.proj.weight"] = t[src + "attn.c_proj.weight"]
        state[dst + "mlp.fc.weight"] = t[src + "mlp.c_fc.weight"]
        state[dst + "mlp.proj.weight"] = t[src + "mlp.c_proj.weight"]
        for norm in ("ln_1", "ln_2"):
            if v2:
                state[dst + f"{norm}.weight"] = t[src + f"{norm}.alpha"]
                state[dst + f"{norm}.bias"] = t[src + f"{norm}.gamma"]
            else:
                state[dst + f"{norm}.weight"] = t[src + f"{norm}.weight"]
    if v2:
        state["ln_f.weight"], state["ln_f.bias"] = t["transformer.ln_f.alpha"], t["transformer.ln_f.gamma"]
    else:
        state["ln_f.weight"] = t["transformer.ln_f.weight"]
    model = ObteModel(config)
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except RuntimeError as exc:
        raise ModelFormatError(
            f"{source}: weights do not fit the detected layout ({str(exc).splitlines()[0]})"
        ) from None

    if tokenizer_files:
        if len(tokenizer_files) == 2:  # v2: nucleic (genbank-2k) first, protein (uniref-2k) offset after it
            tokenizer = SentencePieceTokenizer.from_model_files(
                {str(tokenizer_files[0]): ["nucleic"], str(tokenizer_files[1]): ["protein"]}
            )
        else:
            tokenizer = load_tokenizer(tokenizer_files[0])
    elif vocab == 49:
        tokenizer = ResidueTokenizer(reference_char_vocabulary())
    elif vocab == 65536:
        tokenizer = load_tokenizer("omnibiote-mixed")
    else:
        raise ModelFormatError(
            f"{source}: vocabulary of {vocab} needs its tokenizer: --tokenizer NUCLEIC.model PROTEIN.model "
            "(the released genbank-2k and uniref-2k models)"
        )
    if tokenizer.vocab_size > vocab:
        raise ModelFormatError(f"{source}: the tokenizer has {tokenizer.vocab_size} ids but the model embeds {vocab}")
    head = None
    if head_state:
        if extracted.stats is None or len(extracted.stats) < 2:
            raise ModelFormatError(f"{source}: ΔG model without its target statistics (stats)")
        # OmniBindER: proj_head(emb[:, 0]) · (1024/d) · sd + mean  ==  LinearHead(base_width=1024) then the scaler
        head = {
            "kind": "sequence",
            "n_outputs": 1,
            "base_width": 1024,
            "task": "affinity",
            "target": "dG_kcal_mol",
            "dg_mean": float(extracted.stats[0]),
            "dg_sd": float(extracted.stats[1]),
        }
    metadata = {
        "converted_from": Path(source).name,
        "layout": "omnibiote-v2" if v2 else "omnibiote-v1",
        "rope": rope,
        "reference_config": extracted.config,
    }
    return ConvertedModel(model, tokenizer, head, head_state, metadata)
