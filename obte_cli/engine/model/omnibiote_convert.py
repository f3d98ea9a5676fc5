"""Reading the released OmniBioTE checkpoints without executing them, and mapping them to obte models.

The authors released whole pickled modules (``torch.save(model)``: classes ``OmniBioTA`` and, for ΔG,
``OmniBindER``). Unpickling them normally would import and run whatever the pickle names. Here a
restricted unpickler rebuilds only

* tensors, from the zip archive's storage files (``torch._utils._rebuild_tensor_v2``,
  ``_rebuild_parameter``), dtypes and storage types;
* plain containers (``collections.OrderedDict``) and numpy arrays of numbers (the ΔG model's ``stats``);
* module and config *objects* of the reference's classes, as inert records of their attributes
  (:class:`Recorded`): the class is never imported and no method of it runs;
* the ``torch.compile`` wrapper a ``--compile`` training run saves (``OptimizedModule``, whose pickle also names
  ``torch._dynamo`` classes, ``torch._TorchCompileInductorWrapper``, ``contextlib.nullcontext`` and
  ``getattr``): the same inert records — ``getattr`` looks nothing up, it records (object, name) — and the
  model it wraps (its constructor argument ``_orig_mod``) is what is converted.

Any other global — ``os.system``, ``builtins.eval``, a class outside the reference's modules — is
refused with an error naming it, before anything is built. ``torch.save(state_dict)`` files and
``weights_only`` files go through the same reader.

A damaged or crafted file is a :class:`ModelFormatError` naming the file and the problem, and never costs
more memory than a small multiple of the file's size: every size the pickle declares (a storage's
elements × element size, a tensor's offset + extent) is checked against the archive entry's size before
anything is read or allocated, and the model built from the tensors against the bytes the file stores.

Layouts (``../shared/notes/omnibiote-reference.md`` §2–4), detected from keys and shapes:

* v2 (released): ``ln_*.alpha/gamma`` (its own LayerNorm), SwiGLU MLP (``c_fc`` [4d, d] = up | gate,
  ``c_proj`` [d, 2d]), logits × 32/d; vocabularies 4,096 (two 2,048-piece BPE models, protein ids
  offset by 2,048) or 49 (single characters);
* v1: weight-only LayerNorm, GELU MLP ×4, ``MuReadout`` logits × 24/d; vocabulary 65,536 (``mixed_bpe.model``);
* both: attention scale 8/d, interleaved RoPE from a per-layer ``freqs_cis`` buffer: complex → true
  rotation; real (a bf16 cast keeps only the real part) → pairs scaled by cos(mθ), reproduced as stored.
  The converted model computes the reference's own table (``rope_table="omnibiote"``: θ in float32, cos/sin by
  ``torch.polar``), so its rotation is the stored one bit for bit, not one float32 ulp of θ away.

Head count: from the weights — ``freqs_cis`` holds head_size/2 columns, and each attention module records its
own ``n_head`` — never from the config alone: v1's training script re-uses the model's config object to build
the μP base and delta models, so every v1 file's config says ``n_head=12``, ``n_embd=48`` whatever the model
is. Weights that contradict each other, or ``--n-heads``, are refused naming both values.
"""

from __future__ import annotations

import builtins
import io
import lzma
import math
import pickle
import pickletools
import reprlib
import struct
import sys
import warnings
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from obte_cli.engine.core.errors import InputError, ModelFormatError
from obte_cli.engine.core.schema import SchemaError

# Modules whose classes may appear as *recorded* objects (never imported): the reference code's own
# modules, torch.nn layers, the mup package and torch.compile's wrapper.
RECORDED_MODULE_PREFIXES = (
    "model",
    "src.model",
    "__main__",
    "mup",
    "metrics",
    "torch.nn.modules.",
    "torch._dynamo.",
    "omnibiota",
    "OmniBioTE",
)

# Other classes a torch.compile wrapper's pickle names, recorded the same way (never imported or run).
COMPILE_WRAPPER_CLASSES = (
    "torch._TorchCompileInductorWrapper",
    "torch._TorchCompileWrapper",
    "contextlib.nullcontext",
)
OPTIMIZED_MODULE = "torch._dynamo.eval_frame.OptimizedModule"

# The archive's entries together may expand to at most MAX_EXPANSION × the file's size (+ SIZE_SLACK):
# torch.save stores them uncompressed and weights barely compress, so more is a zip bomb, not a checkpoint.
MAX_EXPANSION = 32
SIZE_SLACK = 1 << 20
# The converted float32 model may take at most MAX_MODEL_GROWTH × the bytes its tensors' storages hold
# (+ SIZE_SLACK): bf16 → float32 doubles them and a tied embedding/readout doubles them again; more means
# the pickle points many tensors at the same storage.
MAX_MODEL_GROWTH = 8

# What zipfile raises for a damaged entry: bad CRC, bad local header, a broken deflate/LZMA stream, data cut
# short, an unknown compression method, an encrypted entry.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    struct.error,
)
_MEMO_OPCODES = ("PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET")
# What a damaged data.pkl makes the unpickler (or the allowed constructors it calls) raise.
_PICKLE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    KeyError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    OverflowError,
    RuntimeError,
    RecursionError,
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


class _Malformed(ValueError):
    """A piece of the pickle that the allowed constructors refuse; :func:`read_checkpoint` names the file."""


def _short(value) -> str:
    """A bounded repr for error messages (a crafted pickle can make any value huge)."""
    return reprlib.repr(value)


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _is_count(value) -> bool:
    """A non-negative int that fits in int64 (larger ones only make arithmetic on them slow)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 63


def _is_counts(value) -> bool:
    return isinstance(value, (tuple, list)) and len(value) <= 64 and all(_is_count(v) for v in value)


class Recorded:
    """An object of a class named in the pickle, kept as data: its qualified name and attributes."""

    qualname = "?"

    def __new__(cls, *args, **kwargs):
        # NEWOBJ builds instances with __new__ alone, and a damaged pickle may lose the BUILD that follows:
        # every instance has its (empty) state from the start
        instance = super().__new__(cls)
        instance.args = args
        instance.state = {}
        return instance

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):  # (dict, slots)
            state = {**(state[0] if isinstance(state[0], dict) else {}), **state[1]}
        self.state = state if isinstance(state, dict) else {"_state": state}

    def __repr__(self) -> str:
        return f"<recorded {self.qualname}>"


def _recorded_class(module: str, name: str) -> type:
    return type(name, (Recorded,), {"qualname": f"{module}.{name}"})


_RecordedAttribute = _recorded_class("builtins", "getattr")


def _recorded_getattr(obj=None, name=None, *default):
    """``getattr(obj, name)`` as a pickle names it (a compile wrapper stores a bound method that way): a
    record of the pair, never the attribute, so nothing a pickle reaches through it can be called."""
    if not isinstance(name, str):
        raise _Malformed(f"getattr of a {type(name).__name__}, not of a name")
    return _RecordedAttribute(obj, name)


class _Constructor:
    """How the unpickler hands out this module's functions and classes: callable (REDUCE), but not a type
    (NEWOBJ fails) and without attributes a pickle's BUILD could overwrite for the rest of the process."""

    __slots__ = ("function",)

    def __init__(self, function):
        self.function = function

    def __call__(self, *args, **kwargs):
        return self.function(*args, **kwargs)

    def __setstate__(self, state):
        raise _Malformed("the pickle tries to modify a constructor")


@dataclass
class _StorageType:
    dtype: torch.dtype


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *state):
    return data


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    if not isinstance(text, str) or not isinstance(encoding, str):
        raise _Malformed("malformed byte string")
    if encoding.lower().replace("-", "") not in ("latin1", "iso88591"):
        raise _Malformed(f"unexpected byte encoding {_short(encoding)}")
    return text.encode("latin1")


# ---- numpy: its own reconstruction is not hardened against crafted state (an object array's state with
# a list shorter than its shape crashes the interpreter), so only plain numeric arrays and scalars are
# rebuilt, from state checked here first.
def _numpy_multiarray():
    """numpy's array/scalar constructors, under numpy 1 or 2."""
    core = getattr(np, "_core", None) or np.core
    return core.multiarray


class _NumpyDtype:
    """``numpy.dtype(name, align, copy)`` from a pickle, limited to plain numbers (bool, int, float, complex)."""

    def __init__(self, name=None, align=False, copy=True):
        dtype = np.dtype(name) if isinstance(name, str) and len(name) <= 8 else None
        if dtype is None or dtype.kind not in "biufc" or dtype.fields or dtype.subdtype:
            raise _Malformed(f"numpy type {_short(name)} is not a plain number type")
        self.dtype = dtype

    def __setstate__(self, state):
        order = state[1] if isinstance(state, tuple) and len(state) > 1 else "="
        if order in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(order)
        elif order not in ("|", "="):
            raise _Malformed(f"numpy byte order {_short(order)}")


class _NdarrayMarker:
    """Stands for ``numpy.ndarray`` in a pickle: only :func:`_reconstruct_array` accepts it; calling it fails."""

    __slots__ = ()


_NDARRAY = _NdarrayMarker()


class _CheckedArray(np.ndarray):
    """A numpy array whose pickled state (shape, dtype, bytes) is checked before numpy sees it."""

    def __setstate__(self, state):
        ok = isinstance(state, tuple) and len(state) in (4, 5)
        if ok:
            shape, spec, fortran, raw = state[-4:]
            ok = (
                isinstance(shape, tuple)
                and len(shape) <= 32
                and all(_is_count(n) for n in shape)
                and isinstance(spec, _NumpyDtype)
                and isinstance(spec.dtype, np.dtype)
                and spec.dtype.kind in "biufc"
                and not spec.dtype.hasobject
                and isinstance(raw, (bytes, bytearray))
                and len(raw) == math.prod(shape) * spec.dtype.itemsize
            )
        if not ok:
            raise _Malformed("a numpy array's shape, type and data disagree")
        super().__setstate__((1, shape, spec.dtype, bool(fortran), bytes(raw)))


def _reconstruct_array(subtype=None, shape=None, code=None):
    if subtype is not _NDARRAY or shape != (0,):
        raise _Malformed("a numpy array is rebuilt in an unexpected way")
    return _numpy_multiarray()._reconstruct(_CheckedArray, (0,), b"b")


def _numpy_scalar(spec=None, data=None):
    if not (
        isinstance(spec, _NumpyDtype) and isinstance(data, (bytes, bytearray)) and len(data) == spec.dtype.itemsize
    ):
        raise _Malformed("a malformed numpy scalar")
    return np.frombuffer(bytes(data), dtype=spec.dtype)[0]


class _Archive:
    """The entries of a torch zip checkpoint: each one's size is checked before it is read, each is read
    (and its CRC checked) once, and all of them together may not expand past MAX_EXPANSION × the file."""

    def __init__(self, archive: zipfile.ZipFile, source: str, file_size: int):
        self.archive = archive
        self.source = source
        self.file_size = file_size
        self.allowance = MAX_EXPANSION * file_size + SIZE_SLACK
        self.storages: dict[str, torch.Tensor] = {}  # entry name → its bytes (uint8), read once

    def entry(self, name: str, what: str) -> zipfile.ZipInfo:
        try:
            return self.archive.getinfo(name)
        except KeyError:
            raise ModelFormatError(f"{self.source}: {what} is missing from the archive (no {name})") from None

    def read(self, info: zipfile.ZipInfo) -> bytes:
        if info.file_size > self.allowance:
            raise ModelFormatError(
                f"{self.source}: {info.filename} would expand to {info.file_size:,} bytes, far more than a "
                f"{self.file_size:,}-byte file holds (a zip bomb, not a checkpoint)"
            )
        self.allowance -= info.file_size
        try:
            data = self.archive.read(info)
        except _ZIP_ERRORS as exc:
            raise ModelFormatError(
                f"{self.source}: {info.filename} is damaged ({type(exc).__name__}: {_clip(str(exc))}); "
                "the file is corrupt or incomplete"
            ) from None
        if len(data) != info.file_size:
            raise ModelFormatError(
                f"{self.source}: {info.filename} holds {len(data):,} bytes but the archive lists {info.file_size:,}; "
                "the file is corrupt or incomplete"
            )
        return data

    def storage(self, info: zipfile.ZipInfo) -> torch.Tensor:
        """The entry's bytes as a uint8 tensor that owns its memory (typed storages are views of it)."""
        if info.filename not in self.storages:
            data = self.read(info)
            storage = torch.empty(len(data), dtype=torch.uint8)
            storage.numpy()[:] = np.frombuffer(data, dtype=np.uint8)
            self.storages[info.filename] = storage
        return self.storages[info.filename]


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for torch zip checkpoints that never imports or calls anything outside the allow-list."""

    def __init__(self, data: bytes, archive: _Archive, prefix: str, source: str):
        super().__init__(io.BytesIO(data))
        self.archive = archive
        self.prefix = prefix
        self.source = source
        self.classes: dict[str, type] = {}

    def find_class(self, module: str, name: str):
        qualified = f"{module}.{name}"
        if qualified in ("torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor"):
            return _Constructor(self.rebuild_tensor)
        if qualified in ("torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state"):
            return _Constructor(_rebuild_parameter)
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
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return _Constructor(_reconstruct_array)
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "scalar":
            return _Constructor(_numpy_scalar)
        if qualified == "numpy.ndarray":
            return _NDARRAY
        if qualified == "numpy.dtype":
            return _Constructor(_NumpyDtype)
        if qualified == "_codecs.encode":  # how protocol-2 pickles store bytes (numpy arrays): str → bytes only
            return _Constructor(_latin1_bytes)
        if module in ("builtins", "__builtin__") and name in ("set", "frozenset", "slice"):
            return getattr(builtins, name)
        if module in ("builtins", "__builtin__") and name == "getattr":
            return _Constructor(_recorded_getattr)
        if qualified in COMPILE_WRAPPER_CLASSES:
            return self._recorded(module, name)
        if any(
            module == p.rstrip(".") or module.startswith(p if p.endswith(".") else p + ".")
            for p in RECORDED_MODULE_PREFIXES
        ):
            return self._recorded(module, name)
        raise ModelFormatError(
            f"{self.source}: refused to load: the pickle names {_clip(qualified)}, which is not a tensor, "
            "container or OmniBioTE module class (nothing was executed)"
        )

    def _recorded(self, module: str, name: str) -> type:
        qualified = f"{module}.{name}"
        if qualified not in self.classes:
            self.classes[qualified] = _recorded_class(module, name)
        return self.classes[qualified]

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise ModelFormatError(f"{self.source}: unknown persistent id {_short(pid)}")
        _, storage_type, key, _location, numel = pid
        dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else storage_type
        if not isinstance(dtype, torch.dtype):
            raise ModelFormatError(f"{self.source}: storage of unknown type {_short(storage_type)}")
        if not (isinstance(key, str) and key and _is_count(numel)):
            raise ModelFormatError(f"{self.source}: malformed storage reference {_short(pid)}")
        info = self.archive.entry(f"{self.prefix}data/{key}", f"storage data/{key}")
        itemsize = torch.empty(0, dtype=dtype).element_size()
        if numel * itemsize > info.file_size:  # checked before anything is read or allocated
            raise ModelFormatError(
                f"{self.source}: storage data/{key} declares {numel:,} {str(dtype).removeprefix('torch.')} "
                f"elements ({numel * itemsize:,} bytes) but the archive holds {info.file_size:,} bytes for it "
                "(truncated or corrupt)"
            )
        if numel == 0:
            return torch.empty(0, dtype=dtype)
        return self.archive.storage(info)[: numel * itemsize].view(dtype)

    def rebuild_tensor(self, storage=None, offset=None, size=None, stride=None, *_):
        """``torch._utils._rebuild_tensor_v2``: a view of ``storage`` (nothing is copied or allocated),
        after checking that it lies inside the storage and does not repeat its elements."""
        if not isinstance(storage, torch.Tensor):
            raise ModelFormatError(f"{self.source}: a tensor refers to {_short(storage)}, not a storage")
        if not (_is_count(offset) and _is_counts(size) and _is_counts(stride) and len(size) == len(stride)):
            raise ModelFormatError(
                f"{self.source}: a tensor's offset, size and stride are malformed ({_short((offset, size, stride))})"
            )
        size, stride, available = tuple(size), tuple(stride), storage.numel()
        numel = math.prod(size)
        if numel == 0:
            if max(size, default=0) >= 1 << 48:
                raise ModelFormatError(f"{self.source}: an empty tensor of size {_short(list(size))} is malformed")
            return storage.new_empty(size)
        end = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
        if end > available:
            raise ModelFormatError(
                f"{self.source}: a {list(size)} tensor at offset {offset:,} reaches element {end:,} of a storage "
                f"of {available:,} (truncated or corrupt)"
            )
        if numel > available:
            raise ModelFormatError(
                f"{self.source}: a {list(size)} tensor of {numel:,} elements repeats the {available:,} of its storage "
                f"(strides {list(stride)})"
            )
        return torch.as_strided(storage, size, stride, offset)


def _check_opcodes(data: bytes, source: str) -> None:
    """Walk data.pkl's opcodes (reading nothing into memory) before the C unpickler runs them: it sizes its
    memo table by the largest index a PUT names (LONG_BINPUT 2^31 fills 16 GB with zeros) and allocates a
    counted string's declared length before finding it cut short."""
    try:
        with warnings.catch_warnings():  # a STRING argument with a bad escape is a DeprecationWarning
            warnings.simplefilter("ignore", DeprecationWarning)
            for opcode, arg, _ in pickletools.genops(data):
                if opcode.name in _MEMO_OPCODES and arg > len(data):
                    raise ModelFormatError(
                        f"{source}: unreadable checkpoint (data.pkl names memo slot {arg:,} in {len(data):,} bytes)"
                    )
    except ValueError as exc:  # an unknown opcode, an argument cut short, no STOP
        raise ModelFormatError(f"{source}: unreadable checkpoint (data.pkl: {_clip(str(exc))})") from None


def read_checkpoint(path: str | Path):
    """The unpickled root object of a torch zip checkpoint, built only from allow-listed pieces.

    A missing file or a directory is an :class:`InputError`; anything wrong inside the file a
    :class:`ModelFormatError` naming it."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise InputError(f"{path}: " + ("not a regular file" if path.exists() else "no such file"))
    try:
        file_size = path.stat().st_size
        archive = zipfile.ZipFile(path)
    except PermissionError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror})") from None
    except (*_ZIP_ERRORS, KeyError, IndexError, OverflowError) as exc:
        raise ModelFormatError(
            f"{path}: not a torch checkpoint (zip) file ({_clip(str(exc)) or type(exc).__name__})"
        ) from None
    with archive:
        names = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
        if not names:
            raise ModelFormatError(f"{path}: no data.pkl inside (not a torch.save file)")
        prefix = names[0][: -len("data.pkl")]
        files = _Archive(archive, str(path), file_size)
        if prefix + "byteorder" in archive.namelist():
            order = files.read(archive.getinfo(prefix + "byteorder")).strip()
            if order not in (sys.byteorder.encode(), b""):
                raise ModelFormatError(f"{path}: saved with {_short(order.decode('latin1'))} byte order, not supported")
        data = files.read(archive.getinfo(names[0]))
        _check_opcodes(data, str(path))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return RestrictedUnpickler(data, files, prefix, str(path)).load()
        except ModelFormatError:
            raise
        except _Malformed as exc:
            raise ModelFormatError(f"{path}: {exc}") from None
        except MemoryError:  # the pickle declared a string or bytes object larger than memory
            raise ModelFormatError(
                f"{path}: unreadable checkpoint (data.pkl declares an impossibly large object)"
            ) from None
        except _PICKLE_ERRORS as exc:
            raise ModelFormatError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {_clip(str(exc))})") from None


@dataclass
class ExtractedCheckpoint:
    tensors: dict[str, torch.Tensor]
    config: dict = field(default_factory=dict)  # the recorded config object's attributes, if any
    stats: np.ndarray | None = None  # OmniBindER's (mean, sd)
    # the ``n_head`` attribute of each recorded module that has one (the reference's attention modules), by name
    module_heads: dict[str, object] = field(default_factory=dict)


def _walk_module(
    obj: Recorded, prefix: str, out: dict[str, torch.Tensor], seen: set[int], heads: dict | None = None
) -> None:
    if id(obj) in seen:  # a pickle can make modules contain themselves
        return
    seen.add(id(obj))
    state = obj.state
    if heads is not None and "n_head" in state:
        heads[prefix.rstrip(".")] = state["n_head"]
    for group in ("_parameters", "_buffers"):
        values = state.get(group)
        for name, value in values.items() if isinstance(values, dict) else ():
            if isinstance(name, str) and isinstance(value, torch.Tensor):
                out[prefix + name] = value
    children = state.get("_modules")
    for name, child in children.items() if isinstance(children, dict) else ():
        if isinstance(name, str) and isinstance(child, Recorded):
            _walk_module(child, f"{prefix}{name}.", out, seen, heads)


def _check_within_storage(tensor: torch.Tensor, name: str, source: str) -> None:
    """Views are checked when built, but a pickle can also re-point a tensor (``Tensor.__setstate__``):
    no tensor may have more elements than its storage, or converting it would allocate more than the file."""
    held = tensor.untyped_storage().nbytes() // tensor.element_size()
    if tensor.numel() > held:
        raise ModelFormatError(
            f"{source}: {_clip(name)} is a {list(tensor.shape)} tensor over a storage of {held:,} elements "
            "(corrupt or crafted)"
        )


def _plain(attributes: dict) -> dict:
    """The attributes of a recorded config that are plain JSON values (they go into the model's metadata)."""
    return {
        k: v
        for k, v in attributes.items()
        if isinstance(k, str)
        and (
            isinstance(v, (bool, str))
            or (isinstance(v, int) and abs(v) < 1 << 53)
            or (isinstance(v, float) and math.isfinite(v))
        )
    }


def _stats(raw, source: str) -> np.ndarray:
    """OmniBindER's (mean, sd): a few numbers, as an array, a tensor or a list (nothing larger is converted)."""
    number = (int, float, np.number)
    few = (
        (isinstance(raw, torch.Tensor) and raw.numel() <= 16)
        or (isinstance(raw, np.ndarray) and raw.size <= 16)
        or (isinstance(raw, (list, tuple)) and len(raw) <= 16 and all(isinstance(v, number) for v in raw))
        or isinstance(raw, number)
    )
    if not few:
        raise ModelFormatError(f"{source}: the model's stats are not a few numbers (a {type(raw).__name__})")
    try:
        return np.asarray(raw, dtype=np.float64).ravel()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ModelFormatError(f"{source}: the model's stats are not numbers ({_clip(str(exc))})") from None


def _unwrap_compiled(root, source: str):
    """The model inside ``torch.compile`` wrappers (``OptimizedModule``): the constructor argument its pickle
    passes (``_orig_mod``), or an ``_orig_mod`` attribute or submodule; other objects are returned as they are."""
    for _ in range(8):  # a wrapper of a wrapper is possible; a pickle that nests them deeper is not a model
        if not (isinstance(root, Recorded) and root.qualname == OPTIMIZED_MODULE):
            return root
        modules = root.state.get("_modules")
        candidates = (
            root.state.get("_orig_mod"),
            modules.get("_orig_mod") if isinstance(modules, dict) else None,
            root.args[0] if root.args else None,
        )
        inner = next((c for c in candidates if isinstance(c, Recorded)), None)
        if inner is None:
            raise ModelFormatError(f"{source}: a torch.compile wrapper (OptimizedModule) without the model it wraps")
        root = inner
    raise ModelFormatError(f"{source}: torch.compile wrappers nested more than 8 deep")


def _clean_name(name: str) -> str:
    for wrapper in ("_orig_mod.", "module."):
        name = name.replace(wrapper, "")
    return name


def extract(root, source: str = "checkpoint") -> ExtractedCheckpoint:
    """Flat tensors (``module.`` / ``_orig_mod.`` wrappers removed), config and stats from a checkpoint."""
    tensors: dict[str, torch.Tensor] = {}
    config: dict = {}
    stats = None
    heads: dict[str, object] = {}
    root = _unwrap_compiled(root, source)
    if isinstance(root, Recorded):
        _walk_module(root, "", tensors, set(), heads)
        children = root.state.get("_modules")
        children = [c for c in children.values() if isinstance(c, Recorded)] if isinstance(children, dict) else []
        for holder in (root, *children):
            cfg = holder.state.get("config")
            if isinstance(cfg, Recorded) and not config:
                config = _plain(cfg.state)
            elif isinstance(cfg, dict) and not config:
                config = _plain(cfg)
        if root.state.get("stats") is not None:
            stats = _stats(root.state["stats"], source)
    elif isinstance(root, dict):
        inner = (
            root.get("state_dict", root.get("model", root))
            if isinstance(root.get("state_dict", root.get("model")), dict)
            else root
        )
        tensors = {k: v for k, v in inner.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    else:
        raise ModelFormatError(f"{source}: checkpoint holds a {type(root).__name__}, not a model or a state dict")
    cleaned = {}
    for name, tensor in tensors.items():
        _check_within_storage(tensor, name, source)
        cleaned[_clean_name(name)] = tensor
    return ExtractedCheckpoint(cleaned, config, stats, {_clean_name(k): v for k, v in heads.items()})


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
    notes: list[str] = field(default_factory=list)  # what the user should know (a config the weights overrule)


def _tensor(t: dict[str, torch.Tensor], name: str, source: str, dims: int | None = None) -> torch.Tensor:
    """``t[name]``, or a ModelFormatError saying it is missing or has the wrong number of dimensions."""
    value = t.get(name)
    if value is None:
        raise ModelFormatError(f"{source}: no {name} in the checkpoint (incomplete or not an OmniBioTE model)")
    if dims is not None and value.dim() != dims:
        raise ModelFormatError(f"{source}: {name} is {list(value.shape)}, not a {dims}-dimensional tensor")
    return value


def _layer_count(t: dict[str, torch.Tensor], source: str) -> int:
    """How many ``transformer.h.N`` blocks there are; their numbers must run 0, 1, … without gaps."""
    numbers = {k.split(".")[2] for k in t if k.startswith("transformer.h.") and k.count(".") >= 3}
    if not all(n.isdigit() and len(n) <= 6 for n in numbers):
        raise ModelFormatError(f"{source}: transformer.h has non-numeric layers {_short(sorted(numbers))}")
    layers = sorted(int(n) for n in numbers)
    if not layers:
        raise ModelFormatError(f"{source}: no transformer.h.N layers in the checkpoint")
    if layers != list(range(len(layers))):
        missing = sorted(set(range(layers[-1] + 1)) - set(layers))
        raise ModelFormatError(
            f"{source}: transformer.h lacks layer {missing[0]} (it has {len(layers)} of 0–{layers[-1]})"
        )
    return len(layers)


def _check_fits(state: dict[str, torch.Tensor], origin: dict[str, str], config, source: str) -> None:
    """Before the model is allocated: every tensor's shape against the one the detected layout needs
    (computed from the config, nothing built), and the model's size against the bytes the file stores."""
    from obte_cli.engine.model.encoder import weight_count, weight_shape

    layout = (
        f"{config.norm} norm, {config.mlp} MLP, width {config.width}, {config.n_layers} layers, "
        f"vocabulary {config.vocab_size}"
    )
    for name, tensor in state.items():
        want = weight_shape(config, name)
        if want is None or tuple(tensor.shape) != want:
            raise ModelFormatError(
                f"{source}: {origin[name]} is {list(tensor.shape)} but the detected layout ({layout}) needs "
                f"{list(want or ())}"
            )
    if len(state) != weight_count(config):
        raise ModelFormatError(f"{source}: the checkpoint's tensors do not make up a {layout} model")
    needed = 4 * sum(v.numel() for v in state.values())  # float32
    storages = {v.untyped_storage().data_ptr(): v.untyped_storage().nbytes() for v in state.values()}
    stored = sum(storages.values())
    if needed > MAX_MODEL_GROWTH * stored + SIZE_SLACK:
        raise ModelFormatError(
            f"{source}: the weights would take {needed:,} bytes but the file stores {stored:,}: its tensors reuse "
            "the same storage far beyond weight tying (corrupt or crafted)"
        )


def _rope_tables(t: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Every layer's ``freqs_cis`` buffer ([context, head_size / 2]); all of the same shape and type."""
    tables = {k: v for k, v in t.items() if k.startswith("transformer.h.") and k.endswith(".attn.freqs_cis")}
    for name, table in tables.items():
        if table.dim() != 2 or 0 in table.shape:
            raise ModelFormatError(
                f"{source}: {_clip(name)} is {list(table.shape)}, not a [context, head_size / 2] table"
            )
    kinds = {(tuple(v.shape), str(v.dtype).removeprefix("torch.")): k for k, v in tables.items()}
    if len(kinds) > 1:
        ((a, dtype_a), name_a), ((b, dtype_b), name_b) = list(kinds.items())[:2]
        raise ModelFormatError(
            f"{source}: {_clip(name_a)} is a {list(a)} {dtype_a} table but {_clip(name_b)} a {list(b)} {dtype_b} one: "
            "the layers disagree"
        )
    return tables


@dataclass
class _Heads:
    count: int
    evidence: str  # where the count comes from
    notes: list[str] = field(default_factory=list)


def _head_count(
    extracted: ExtractedCheckpoint,
    tables: dict[str, torch.Tensor],
    width: int,
    v2: bool,
    override: int | None,
    source: str,
) -> _Heads:
    """The number of attention heads, from the weights (see module docstring): a ``freqs_cis`` table of c
    columns means heads of 2c dimensions, and the attention modules record their ``n_head``; the config only
    when the file has neither (and never a v1 config); ``override`` (--n-heads) must agree with the weights."""
    from_table = None
    if tables:
        name, table = next(iter(tables.items()))
        size = 2 * table.shape[1]
        if width % size:
            raise ModelFormatError(
                f"{source}: {_clip(name)} has {table.shape[1]} columns, i.e. heads of {size}, which do not divide the "
                f"width {width}"
            )
        from_table = width // size
    declared = {k: v for k, v in extracted.module_heads.items() if v is not None}
    for name, value in declared.items():
        if not (isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 20):
            shown = _short(value) if not isinstance(value, int) or abs(value) < 1 << 63 else "beyond 2^63"
            raise ModelFormatError(f"{source}: {_clip(name)} records n_head {shown}, not a plausible head count")
    for name, value in declared.items():
        if from_table is not None and value != from_table:
            raise ModelFormatError(
                f"{source}: {_clip(name)} records n_head {value} but freqs_cis holds heads of {width // from_table}, "
                f"i.e. {from_table} heads at width {width}: the file contradicts itself"
            )
    distinct = {v: k for k, v in declared.items()}
    if len(distinct) > 1:
        (a, name_a), (b, name_b) = list(distinct.items())[:2]
        raise ModelFormatError(
            f"{source}: {_clip(name_a)} records n_head {a} but {_clip(name_b)} n_head {b}: "
            "the attention modules disagree"
        )
    from_modules = next(iter(distinct), None)
    weights = from_table if from_table is not None else from_modules
    evidence = " and ".join(
        e for e, v in (("freqs_cis", from_table), ("the attention modules' n_head", from_modules)) if v is not None
    )
    if override is not None:
        if weights is not None and override != weights:
            raise ModelFormatError(
                f"{source}: --n-heads {override} contradicts the weights: {evidence} give {weights} heads at width "
                f"{width} (leave --n-heads out)"
            )
        return _Heads(override, "--n-heads")
    config_heads, config_width = extracted.config.get("n_head"), extracted.config.get("n_embd")
    if weights is not None:
        notes = []
        if config_heads not in (None, weights) or config_width not in (None, width):
            notes.append(
                f"the file's config says n_head {config_heads}, n_embd {config_width}, but {evidence} give "
                f"{weights} heads at width {width}: converted with {weights} heads"
                + ("" if v2 else " (v1 training saved the μP delta model's config, 12 heads × 48, in every file)")
            )
        return _Heads(weights, evidence, notes)
    if v2 and isinstance(config_heads, int) and config_heads > 0 and config_width == width:
        return _Heads(config_heads, "config")
    why = (
        f"its config's n_head {config_heads} is for width {config_width}, not {width}"
        if v2 and config_heads is not None
        else "v1 files' config describes the μP delta model (12 heads × 48), not the model"
        if config_heads is not None
        else "no config"
    )
    raise ModelFormatError(
        f"{source}: cannot tell the number of heads: no freqs_cis, no attention module's n_head, and {why}; "
        "pass --n-heads"
    )


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
        head_state = {
            "proj.weight": _tensor(t, "proj_head.weight", source, dims=2),
            "proj.bias": _tensor(t, "proj_head.bias", source, dims=1),
        }
        t = {k.removeprefix("omnibiota."): v for k, v in t.items() if k.startswith("omnibiota.")}
    if "transformer.wte.weight" not in t:
        raise ModelFormatError(f"{source}: no transformer.wte.weight — not an OmniBioTE checkpoint")
    if any(k.startswith("pos_emb") or k.startswith("transformer.pos_emb") for k in t):
        raise ModelFormatError(f"{source}: learned position embeddings (position_encoding='learned') are not supported")
    vocab, width = _tensor(t, "transformer.wte.weight", source, dims=2).shape
    if not vocab or not width:
        raise ModelFormatError(f"{source}: transformer.wte.weight is [{vocab}, {width}]: an empty embedding")
    n_layers = _layer_count(t, source)
    v2 = "transformer.h.0.ln_1.alpha" in t
    fc = _tensor(t, "transformer.h.0.mlp.c_fc.weight", source, dims=2)
    proj = _tensor(t, "transformer.h.0.mlp.c_proj.weight", source, dims=2)
    swiglu = proj.shape[1] * 2 == fc.shape[0]
    tables = _rope_tables(t, source)
    heads = _head_count(extracted, tables, width, v2, n_heads, source)
    n_heads = heads.count
    freqs = next(iter(tables.values()), None)  # all of the same shape; the first decides the RoPE kind
    if freqs is None or freqs.is_complex():
        rope = "rotary"
    else:
        rope = "cosine-bf16" if freqs.dtype == torch.bfloat16 else "cosine"
    context = (
        int(freqs.shape[0])
        if freqs is not None
        else extracted.config.get("block_size", extracted.config.get("context_length", 1024))
    )
    try:
        config = ObteConfig(
            vocab_size=vocab,
            width=width,
            n_layers=n_layers,
            n_heads=n_heads,
            mlp_ratio=fc.shape[0] // width,
            max_positions=context,
            attn_mult=8.0,
            base_width=32,
            readout_mult=1.0 if v2 else 24 / 32,
            norm_eps=1e-5,
            mlp="swiglu" if swiglu else "gelu",
            norm="omnibiote" if v2 else "layernorm",
            rope=rope,
            rope_table="omnibiote",
        )
    except SchemaError as exc:
        raise ModelFormatError(f"{source}: the checkpoint's shapes and config give no valid model ({exc})") from None
    origin = {"embed.weight": "transformer.wte.weight", "readout.weight": "lm_head.weight"}
    for i in range(n_layers):
        src, dst = f"transformer.h.{i}.", f"blocks.{i}."
        origin[dst + "attn.qkv.weight"] = src + "attn.c_attn.weight"
        origin[dst + "attn.proj.weight"] = src + "attn.c_proj.weight"
        origin[dst + "mlp.fc.weight"] = src + "mlp.c_fc.weight"
        origin[dst + "mlp.proj.weight"] = src + "mlp.c_proj.weight"
        for norm in ("ln_1", "ln_2"):
            if v2:
                origin[dst + f"{norm}.weight"] = src + f"{norm}.alpha"
                origin[dst + f"{norm}.bias"] = src + f"{norm}.gamma"
            else:
                origin[dst + f"{norm}.weight"] = src + f"{norm}.weight"
    if v2:
        origin["ln_f.weight"], origin["ln_f.bias"] = "transformer.ln_f.alpha", "transformer.ln_f.gamma"
    else:
        origin["ln_f.weight"] = "transformer.ln_f.weight"
    state = {dst: _tensor(t, src, source) for dst, src in origin.items()}
    _check_fits(state, origin, config, source)
    if head_state and (
        list(head_state["proj.weight"].shape) != [1, width] or list(head_state["proj.bias"].shape) != [1]
    ):
        raise ModelFormatError(
            f"{source}: proj_head is {list(head_state['proj.weight'].shape)} + {list(head_state['proj.bias'].shape)}, "
            f"not the ΔG head's [1, {width}] + [1]"
        )
    head_state = {k: v.float() for k, v in head_state.items()}
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
        if not np.isfinite(extracted.stats[:2]).all():
            raise ModelFormatError(f"{source}: the ΔG target statistics (stats) are not finite: {extracted.stats[:2]}")
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
        "n_heads_from": heads.evidence,
        "reference_config": extracted.config,
    }
    return ConvertedModel(model, tokenizer, head, head_state, metadata, heads.notes)
