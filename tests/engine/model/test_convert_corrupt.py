"""`obte convert` on damaged and crafted checkpoints (issue #20 item 8): every case is one line naming the
file and the problem, exit 1, never a traceback, and never more memory than a small multiple of the file.

Checkpoints are built here two ways: ``torch.save`` of a state dict or of a module tree pickled under the
reference's module name ``model`` (what the released files are), and :func:`write_archive`, which writes
the torch zip layout itself so that a pickle can declare whatever sizes, offsets and strides a test needs.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import struct
import subprocess
import sys
import types
import zipfile
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import obte
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from obte_cli.engine.core.errors import InputError, ModelFormatError
from obte_cli.engine.model.omnibiote_convert import convert, extract, read_checkpoint

WIDTH, LAYERS, VOCAB, CONTEXT, HEADS = 16, 2, 49, 8, 2


def reference_weights(width=WIDTH, layers=LAYERS, vocab=VOCAB, context=CONTEXT, heads=HEADS) -> OrderedDict:
    """A v2 (SwiGLU, alpha/gamma LayerNorm, complex RoPE buffer) OmniBioTE state dict."""
    g = torch.Generator().manual_seed(0)

    def r(*shape):
        return 0.1 * torch.randn(*shape, generator=g)

    hd = width // heads
    angles = torch.outer(torch.arange(context).float(), 1.0 / 10000 ** (torch.arange(0, hd, 2).float() / hd))
    w = OrderedDict({"transformer.wte.weight": r(vocab, width)})
    for i in range(layers):
        p = f"transformer.h.{i}."
        w[p + "ln_1.alpha"], w[p + "ln_1.gamma"] = 1 + r(width), r(width)
        w[p + "attn.c_attn.weight"], w[p + "attn.c_proj.weight"] = r(3 * width, width), r(width, width)
        w[p + "attn.freqs_cis"] = torch.polar(torch.ones_like(angles), angles)
        w[p + "ln_2.alpha"], w[p + "ln_2.gamma"] = 1 + r(width), r(width)
        w[p + "mlp.c_fc.weight"], w[p + "mlp.c_proj.weight"] = r(4 * width, width), r(width, 2 * width)
    w["transformer.ln_f.alpha"], w["transformer.ln_f.gamma"] = 1 + r(width), r(width)
    w["lm_head.weight"] = r(vocab, width)
    return w


# ---- torch.save of a module tree, classes named model.* as in the released files ----
class _Node:
    def __init__(self):
        self._parameters, self._buffers, self._modules = OrderedDict(), OrderedDict(), OrderedDict()


_reference = types.ModuleType("model")
for _name in ("OmniBindER", "OmniBioTA", "Module", "GPTConfig"):
    _cls = type(_name, (_Node,), {"__module__": "model", "__qualname__": _name})
    setattr(_reference, _name, _cls)


@contextmanager
def _reference_importable():
    sys.modules["model"] = _reference  # only pickling needs it; reading must never import it
    try:
        yield
    finally:
        sys.modules.pop("model", None)


def _tree(flat: dict, root: _Node) -> _Node:
    for name, tensor in flat.items():
        *path, leaf = name.split(".")
        node = root
        for part in path:
            node = node._modules.setdefault(part, _reference.Module())
        if leaf == "freqs_cis":
            node._buffers[leaf] = tensor
        else:
            node._parameters[leaf] = torch.nn.Parameter(tensor, requires_grad=False)
    return root


def save_dg_module(path: Path, stats=(-9.8, 2.3), weights: dict | None = None) -> Path:
    """An OmniBindER-like pickled module: omnibiota (with a recorded config) + proj_head + numpy stats."""
    omnibiota = _tree(weights or reference_weights(), _reference.OmniBioTA())
    config = _reference.GPTConfig()
    config.__dict__.update(n_embd=WIDTH, n_head=HEADS, n_layer=LAYERS, block_size=CONTEXT, vocab_size=VOCAB)
    omnibiota.config = config
    root = _tree(
        {"proj_head.weight": 0.3 * torch.ones(1, WIDTH), "proj_head.bias": torch.zeros(1)}, _reference.OmniBindER()
    )
    root._modules["omnibiota"] = omnibiota
    root.stats = stats if isinstance(stats, np.ndarray) else np.asarray(stats, dtype=np.float64)
    with _reference_importable():
        torch.save(root, path)
    return path


# ---- torch zip archives written by hand, so that the pickle can declare anything ----
_STORAGE_TYPES = {torch.float32: torch.FloatStorage, torch.complex64: torch.ComplexFloatStorage}


class PickledStorage:
    def __init__(self, key: str, dtype: torch.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel


class PickledTensor:
    """Pickles as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``, as torch.save does."""

    def __init__(self, storage: PickledStorage, offset: int, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def __reduce__(self):
        args = (self.storage, self.offset, self.size, self.stride, False, OrderedDict())
        return (torch._utils._rebuild_tensor_v2, args)


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, PickledStorage):
            return ("storage", _STORAGE_TYPES[obj.dtype], obj.key, "cpu", obj.numel)
        return None


def write_archive(path: Path, root, storages: dict[str, bytes], compression=zipfile.ZIP_STORED) -> Path:
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(root)
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("archive/data.pkl", buf.getvalue())
        archive.writestr("archive/byteorder", "little")
        for key, data in storages.items():
            archive.writestr(f"archive/data/{key}", data)
    return path


def crafted(weights: dict | None = None) -> tuple[OrderedDict, dict[str, bytes]]:
    """(root, storages) of a state-dict checkpoint, one storage per tensor, for a test to edit."""
    root, storages = OrderedDict(), {}
    for i, (name, tensor) in enumerate((weights or reference_weights()).items()):
        tensor = tensor.contiguous()
        storages[str(i)] = tensor.view(torch.uint8).numpy().tobytes()
        root[name] = PickledTensor(
            PickledStorage(str(i), tensor.dtype, tensor.numel()), 0, tensor.shape, tensor.stride()
        )
    return root, storages


def rezip(src: Path, dst: Path, edit) -> Path:
    """``src`` rewritten entry by entry: ``edit(name, data)`` gives the new data, or None to drop the entry."""
    with zipfile.ZipFile(src) as archive:
        entries = [(info.filename, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as out:
        for name, data in entries:
            data = edit(name, data)
            if data is not None:
                out.writestr(name, data)
    return dst


def _entry_data_span(path: Path, suffix: str) -> tuple[int, int]:
    """Where the data of the entry whose name ends with ``suffix`` lies in the file."""
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(suffix))
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    return start, start + info.compress_size


def _flip_byte_in(path: Path, dst: Path, suffix: str) -> Path:
    raw = bytearray(path.read_bytes())
    start, end = _entry_data_span(path, suffix)
    raw[(start + end) // 2] ^= 0xFF
    dst.write_bytes(raw)
    return dst


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _valid(tmp_path: Path) -> Path:
    torch.save(reference_weights(), tmp_path / "valid.pt")
    return tmp_path / "valid.pt"


def _edited(tmp_path: Path, edit, weights: dict | None = None) -> Path:
    root, storages = crafted(weights)
    edit(root, storages)
    return write_archive(tmp_path / "crafted.pt", root, storages)


def _retensor(root, name, **changes):
    old = root[name]
    root[name] = PickledTensor(
        changes.get("storage", old.storage),
        changes.get("offset", old.offset),
        changes.get("size", old.size),
        changes.get("stride", old.stride),
    )


def _aliased(tmp_path: Path) -> Path:
    """64 layers whose every tensor is a view of one 64 KB storage: 10 MB of model from a 120 KB file."""
    width, layers = 64, 64
    shared = PickledStorage("0", torch.float32, 4 * width * width)
    storages = {"0": torch.randn(4 * width * width).numpy().tobytes()}
    shapes = {
        "ln_1.alpha": (width,),
        "ln_1.gamma": (width,),
        "attn.c_attn.weight": (3 * width, width),
        "attn.c_proj.weight": (width, width),
        "ln_2.alpha": (width,),
        "ln_2.gamma": (width,),
        "mlp.c_fc.weight": (4 * width, width),
        "mlp.c_proj.weight": (width, 2 * width),
    }
    root = OrderedDict()
    for name, size in [
        ("transformer.wte.weight", (VOCAB, width)),
        *[(f"transformer.h.{i}.{k}", s) for i in range(layers) for k, s in shapes.items()],
        ("transformer.ln_f.alpha", (width,)),
        ("transformer.ln_f.gamma", (width,)),
        ("lm_head.weight", (VOCAB, width)),
    ]:
        root[name] = PickledTensor(shared, 0, size, torch.empty(size).stride())
    freqs = PickledStorage("freqs", torch.complex64, CONTEXT * 8)  # [context, head_dim / 2]: 4 heads of 16
    root["transformer.h.0.attn.freqs_cis"] = PickledTensor(freqs, 0, (CONTEXT, 8), (8, 1))
    storages["freqs"] = torch.ones(CONTEXT * 8, dtype=torch.complex64).view(torch.uint8).numpy().tobytes()
    return write_archive(tmp_path / "aliased.pt", root, storages, compression=zipfile.ZIP_STORED)


def _deflate_bomb(tmp_path: Path) -> Path:
    """A deflated 32 MB storage of zeros in a ~60 KB file; the pickle's declared size matches it."""
    root, storages = crafted()
    numel = 8 << 20
    root["lm_head.weight"] = PickledTensor(PickledStorage("big", torch.float32, numel), 0, (VOCAB, WIDTH), (WIDTH, 1))
    storages["big"] = bytes(4 * numel)
    return write_archive(tmp_path / "bomb.pt", root, storages, compression=zipfile.ZIP_DEFLATED)


def _pickle_with(tmp_path: Path, payload: bytes) -> Path:
    with zipfile.ZipFile(tmp_path / "raw.pt", "w") as archive:
        archive.writestr("archive/data.pkl", payload)
    return tmp_path / "raw.pt"


def _big_endian(tmp_path: Path) -> Path:
    return rezip(_valid(tmp_path), tmp_path / "big.pt", lambda n, d: b"big" if n.endswith("/byteorder") else d)


# name → (build(tmp_path) → file, what the one-line error must say)
CASES = {
    "bad CRC in a storage": (
        lambda p: _flip_byte_in(_valid(p), p / "crc.pt", "/data/0"),
        "data/0 is damaged (BadZipFile: Bad CRC-32",
    ),
    "bad CRC in data.pkl": (
        lambda p: _flip_byte_in(_valid(p), p / "crc.pt", "data.pkl"),
        "data.pkl is damaged (BadZipFile: Bad CRC-32",
    ),
    "truncated file": (
        lambda p: _write(p / "cut.pt", _valid(p).read_bytes()[:20000]),
        "not a torch checkpoint (zip) file",
    ),
    "storage shorter than declared": (
        lambda p: rezip(_valid(p), p / "short.pt", lambda n, d: d[: len(d) // 2] if n.endswith("/data/0") else d),
        "storage data/0 declares 784 float32 elements (3,136 bytes) but the archive holds 1,568 bytes",
    ),
    "storage one byte short": (
        lambda p: rezip(_valid(p), p / "short.pt", lambda n, d: d[:-1] if n.endswith("/data/0") else d),
        "but the archive holds 3,135 bytes",
    ),
    "10^12 elements declared for a tiny entry": (
        lambda p: _edited(p, lambda root, _: setattr(root["lm_head.weight"].storage, "numel", 10**12)),
        "declares 1,000,000,000,000 float32 elements (4,000,000,000,000 bytes) but the archive holds 3,136",
    ),
    "view past the end of its storage": (
        lambda p: _edited(p, lambda root, _: _retensor(root, "lm_head.weight", offset=5)),
        "a [49, 16] tensor at offset 5 reaches element 789 of a storage of 784",
    ),
    "stride-0 view of 10^12 elements": (
        lambda p: _edited(p, lambda root, _: _retensor(root, "lm_head.weight", size=(10**6, 10**6), stride=(0, 0))),
        "tensor of 1,000,000,000,000 elements repeats the 784 of its storage",
    ),
    "negative offset": (
        lambda p: _edited(p, lambda root, _: _retensor(root, "lm_head.weight", offset=-3)),
        "a tensor's offset, size and stride are malformed",
    ),
    "missing data/N entry": (
        lambda p: rezip(_valid(p), p / "gap.pt", lambda n, d: None if n.endswith("/data/3") else d),
        "storage data/3 is missing from the archive",
    ),
    "missing key": (
        lambda p: _edited(p, lambda root, _: root.pop("transformer.h.1.mlp.c_fc.weight")),
        "no transformer.h.1.mlp.c_fc.weight in the checkpoint",
    ),
    "missing layer": (
        lambda p: _edited(
            p,
            lambda root, _: [root.pop(k) for k in list(root) if k.startswith("transformer.h.1.")],
            reference_weights(layers=3),
        ),
        "transformer.h lacks layer 1",
    ),
    "wrong shape": (
        lambda p: _edited(
            p, lambda root, _: _retensor(root, "transformer.h.0.attn.c_proj.weight", size=(8, 32), stride=(32, 1))
        ),
        "transformer.h.0.attn.c_proj.weight is [8, 32] but the detected layout",
    ),
    "embedding that is not a matrix": (
        lambda p: _edited(p, lambda root, _: _retensor(root, "transformer.wte.weight", size=(784,), stride=(1,))),
        "transformer.wte.weight is [784], not a 2-dimensional tensor",
    ),
    "tensors aliasing one storage": (_aliased, "tensors reuse the same storage far beyond weight tying"),
    "deflate bomb": (_deflate_bomb, "would expand to 33,554,432 bytes"),
    "not a zip": (lambda p: _write(p / "text.pt", b"hello\n" * 50), "not a torch checkpoint"),
    "empty file": (lambda p: _write(p / "empty.pt", b""), "not a torch checkpoint"),
    "zip without data.pkl": (
        lambda p: rezip(_valid(p), p / "nopkl.pt", lambda n, d: None if n.endswith("data.pkl") else d),
        "no data.pkl inside",
    ),
    "directory": (lambda p: (p / "dir.pt").mkdir() or p / "dir.pt", "is a directory, not a checkpoint file"),
    "big-endian archive": (_big_endian, "saved with 'big' byte order"),
    "object-dtype numpy stats": (
        lambda p: save_dg_module(p / "obj.pt", stats=np.array([1.0, None], dtype=object)),
        "numpy type 'O8' is not a plain number type",
    ),
    "non-finite ΔG stats": (
        lambda p: save_dg_module(p / "nan.pt", stats=(float("nan"), 1.0)),
        "the ΔG target statistics (stats) are not finite",
    ),
    "numpy.ndarray called directly": (
        # GLOBAL numpy.ndarray, ((100000, 100000),), REDUCE: would allocate 80 GB if ndarray were callable
        lambda p: _pickle_with(p, b"\x80\x02cnumpy\nndarray\nJ\xa0\x86\x01\x00J\xa0\x86\x01\x00\x86\x85R."),
        "unreadable checkpoint (TypeError",
    ),
    "pickle memo slot 2^31": (
        # EMPTY_LIST, LONG_BINPUT 2^31 - 1: CPython's unpickler zero-fills a 16 GB memo table for it
        lambda p: _pickle_with(p, b"\x80\x02]r\xff\xff\xff\x7f."),
        "data.pkl names memo slot 2,147,483,647",
    ),
    "pickle declaring a 2^62-byte string": (
        lambda p: _pickle_with(p, b"\x80\x04\x8e" + (1 << 62).to_bytes(8, "little") + b"abc."),
        "unreadable checkpoint",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_or_crafted_checkpoint_is_one_line_and_exit_1(tmp_path, case):
    build, message = CASES[case]
    path = build(tmp_path)
    result = obte("convert", path, "-o", tmp_path / "out")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), result.stderr
    assert message in lines[0], lines[0]
    assert not (tmp_path / "out").exists()


def test_the_builders_make_checkpoints_that_convert(tmp_path):
    """The valid files the cases above start from convert, so each case fails for its one defect."""
    for path in (
        _valid(tmp_path),
        save_dg_module(tmp_path / "dg.pt"),
        write_archive(tmp_path / "crafted.pt", *crafted()),
    ):
        result = obte("convert", path, "-o", tmp_path / path.stem)
        assert result.exit_code == 0, result.output
    converted = convert(extract(read_checkpoint(tmp_path / "dg.pt")), [], "dg.pt")
    assert converted.head["dg_mean"] == -9.8 and converted.model.config.n_heads == HEADS


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_checkpoint(tmp_path / "absent.pt")
    assert obte("convert", tmp_path / "absent.pt", "-o", tmp_path / "out").stderr.strip().endswith("no such file")


def test_a_huge_declared_storage_is_refused_before_it_is_read_or_allocated(tmp_path, monkeypatch):
    path = CASES["10^12 elements declared for a tiny entry"][0](tmp_path)
    huge_key = f"archive/data/{list(crafted()[0]).index('lm_head.weight')}"
    opened, allocations = [], []
    real_open, real_frombuffer, real_empty = zipfile.ZipFile.open, torch.frombuffer, torch.empty

    def spy_open(self, name, *args, **kwargs):
        opened.append(name if isinstance(name, str) else name.filename)
        return real_open(self, name, *args, **kwargs)

    def spy_frombuffer(buffer, *args, **kwargs):
        allocations.append(kwargs.get("count", 0))
        return real_frombuffer(buffer, *args, **kwargs)

    def spy_empty(*args, **kwargs):
        allocations.append(args[0] if args and isinstance(args[0], int) else 0)
        return real_empty(*args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy_open)
    monkeypatch.setattr(torch, "frombuffer", spy_frombuffer)
    monkeypatch.setattr(torch, "empty", spy_empty)
    with pytest.raises(ModelFormatError, match="declares 1,000,000,000,000 float32 elements"):
        read_checkpoint(path)
    assert huge_key not in opened and "archive/data.pkl" in opened
    assert max(allocations) < 10**4


_MEMORY_PROBE = """
import resource, sys
from obte_cli.engine.core.errors import ObteError
from obte_cli.engine.model.omnibiote_convert import convert, extract, read_checkpoint

def run(path):
    try:
        convert(extract(read_checkpoint(path), path), [], path)
        return "converted"
    except ObteError as exc:
        return f"refused: {exc}"

print(run(sys.argv[1]), flush=True)  # warm up: imports, allocator, one real conversion
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for path in sys.argv[2:]:
    print(run(path), flush=True)
print("grew", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_crafted_sizes_never_cost_memory(tmp_path):
    """Each file is under 200 KB; the reader used to materialise the stride-0 one (1.6 GB) and to unpickle
    the memo one (21 GB), and the aliased and deflated ones would build models of tens of MB. Peak memory
    may not grow by 64 MB over all of them."""
    for sub in "abcdefg":
        (tmp_path / sub).mkdir()
    bombs = [
        CASES["10^12 elements declared for a tiny entry"][0](tmp_path / "a"),
        _edited(
            tmp_path / "b",
            lambda root, _: _retensor(root, "lm_head.weight", size=(20000, 20000), stride=(0, 0)),
        ),
        _aliased(tmp_path / "c"),
        _deflate_bomb(tmp_path / "d"),
        CASES["numpy.ndarray called directly"][0](tmp_path / "e"),
        CASES["pickle declaring a 2^62-byte string"][0](tmp_path / "f"),
        CASES["pickle memo slot 2^31"][0](tmp_path / "g"),
    ]
    for path in bombs:
        assert path.stat().st_size < 200_000
    result = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(_valid(tmp_path)), *map(str, bombs)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "converted" and all(line.startswith("refused: ") for line in lines[1:-1]), lines
    assert int(lines[-1].split()[1]) < 64 * 1024, lines  # KiB


# ---- property: random damage either converts or is a ModelFormatError/InputError, nothing else ----
@pytest.fixture(scope="module")
def dg_checkpoint(tmp_path_factory) -> bytes:
    weights = reference_weights(layers=1)
    return save_dg_module(tmp_path_factory.mktemp("dg") / "dg.pt", weights=weights).read_bytes()


def _convert_or_refuse(data: bytes, directory: Path) -> None:
    path = directory / "mutated.pt"
    path.write_bytes(data)
    try:
        convert(extract(read_checkpoint(path), str(path)), [], str(path))
    except (ModelFormatError, InputError) as exc:
        message = str(exc)
        assert message.startswith(f"{path}: ") and "\n" not in message and len(message) < 1000, message


_mutation = st.tuples(
    st.sampled_from(["set", "delete", "insert", "truncate"]), st.floats(0, 1), st.binary(min_size=1, max_size=8)
)


def _mutate(data: bytes, span: tuple[int, int], mutations) -> bytes:
    out = bytearray(data)
    for kind, where, payload in mutations:
        start, end = span[0], min(span[1], len(out))
        at = start + int(where * max(end - start - 1, 0))
        if kind == "set":
            out[at : at + len(payload)] = payload
        elif kind == "delete":
            del out[at : at + len(payload)]
        elif kind == "insert":
            out[at:at] = payload
        else:
            del out[at:]
    return bytes(out)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(region=st.sampled_from(["anywhere", "data.pkl", "tail"]), mutations=st.lists(_mutation, min_size=1, max_size=4))
def test_random_damage_to_the_file_converts_or_is_a_format_error(dg_checkpoint, tmp_path_factory, region, mutations):
    """Byte damage anywhere in the file: zip headers, the central directory, data.pkl, storages (CRCs catch most)."""
    path = tmp_path_factory.getbasetemp() / "dg.pt"
    path.write_bytes(dg_checkpoint)
    if region == "data.pkl":
        span = _entry_data_span(path, "data.pkl")
    elif region == "tail":  # the last entry and the central directory
        with zipfile.ZipFile(path) as archive:
            span = (min(i.header_offset for i in archive.infolist()[-1:]), len(dg_checkpoint))
    else:
        span = (0, len(dg_checkpoint))
    _convert_or_refuse(_mutate(dg_checkpoint, span, mutations), tmp_path_factory.getbasetemp())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(_mutation.filter(lambda m: m[0] != "truncate"), min_size=1, max_size=4))
# found by CI: the byte deleted there drops the BUILD after a NEWOBJ, leaving a recorded module without state
@example(mutations=[("delete", 0.17360052946818752, b"\x00")])
def test_random_damage_to_the_pickle_converts_or_is_a_format_error(dg_checkpoint, tmp_path_factory, mutations):
    """data.pkl damaged and the archive re-zipped with correct CRCs: the damage reaches the unpickler, the
    size checks and the converter."""
    path = tmp_path_factory.getbasetemp() / "dg.pt"
    path.write_bytes(dg_checkpoint)
    with zipfile.ZipFile(path) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    pkl = next(name for name in entries if name.endswith("data.pkl"))
    entries[pkl] = _mutate(entries[pkl], (0, len(entries[pkl])), mutations)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as out:
        for name, data in entries.items():
            out.writestr(name, data)
    _convert_or_refuse(buf.getvalue(), tmp_path_factory.getbasetemp())


_INTERESTING_INTS = [0, 1, 2, 7, 8, 16, 17, 48, 49, 784, 65535, 2**31 - 1, -1, -(2**31)]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_changed_numbers_and_names_in_the_pickle_convert_or_are_a_format_error(dg_checkpoint, tmp_path_factory, data):
    """data.pkl kept well-formed but its integers (sizes, strides, offsets, storage keys, memo indices) and
    strings (tensor names, storage keys, class names) changed: the damage gets past the unpickler."""
    path = tmp_path_factory.getbasetemp() / "dg.pt"
    path.write_bytes(dg_checkpoint)
    with zipfile.ZipFile(path) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    name = next(n for n in entries if n.endswith("data.pkl"))
    pkl = bytearray(entries[name])
    ops = [(op.name, arg, pos) for op, arg, pos in pickletools.genops(bytes(pkl))]
    strings = [arg for _, arg, _ in ops if isinstance(arg, str)]
    targets = [
        op for op in ops if op[0] in ("BININT1", "BININT2", "BININT", "BINGET", "BINUNICODE", "SHORT_BINUNICODE")
    ]
    for _ in range(data.draw(st.integers(1, 3))):
        kind, arg, pos = data.draw(st.sampled_from(targets))
        if kind in ("BININT1", "BINGET"):
            pkl[pos + 1] = data.draw(st.integers(0, 255))
        elif kind == "BININT2":
            pkl[pos + 1 : pos + 3] = struct.pack("<H", data.draw(st.integers(0, 65535)))
        elif kind == "BININT":
            value = data.draw(st.one_of(st.sampled_from(_INTERESTING_INTS), st.integers(-(2**31), 2**31 - 1)))
            pkl[pos + 1 : pos + 5] = struct.pack("<i", value)
        else:
            size = len(arg.encode())
            same = [s for s in strings if len(s.encode()) == size and s != arg]
            new = data.draw(st.sampled_from(same)) if same and data.draw(st.booleans()) else None
            new = new.encode() if new else data.draw(st.binary(min_size=size, max_size=size).filter(_ascii))
            start = pos + (5 if kind == "BINUNICODE" else 2)
            pkl[start : start + size] = new
    entries[name] = bytes(pkl)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as out:
        for entry, content in entries.items():
            out.writestr(entry, content)
    _convert_or_refuse(buf.getvalue(), tmp_path_factory.getbasetemp())


def _ascii(raw: bytes) -> bool:
    return all(32 <= b < 127 for b in raw)
