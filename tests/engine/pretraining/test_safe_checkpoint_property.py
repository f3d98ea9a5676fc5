"""Property tests of the checkpoint reader (obte_cli/engine/pretraining/safe_checkpoint.py and the loader of
train_state.py; issue #20): whatever a checkpoint's ``.metadata``, ``trainer.json`` or RNG state holds — random
bytes, a real index garbled, a pickle of plain data, a pickle naming any global — reading it gives a real index
(or restores the run) or is one ObteError line naming the file; never another exception, never a hang, never
code run."""

import json
import os
import pickle
import shutil

import pytest
import torch
from conftest import read_or_refused, refused_in_one_line, within
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.distributed.checkpoint.metadata import Metadata

from obte_cli.engine.core.errors import ObteError
from obte_cli.engine.pretraining.distributed import DistributedContext
from obte_cli.engine.pretraining.safe_checkpoint import _METADATA_CLASSES, UnsafeCheckpointError, read_metadata_safely
from obte_cli.engine.pretraining.train_state import (
    checkpoint_name,
    load_checkpoint,
    read_checkpoint_json,
    save_checkpoint,
)

FAST = settings(max_examples=50, deadline=None)


def _module_and_optimizer():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 3))
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3, betas=(0.9, 0.95))
    module(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    return module, optimizer


@pytest.fixture(scope="module")
def real_checkpoint(tmp_path_factory):
    """A real (tiny) checkpoint directory: .metadata, one shard, trainer.json, rng-rank-0.json."""
    module, optimizer = _module_and_optimizer()
    root = tmp_path_factory.mktemp("checkpoint")
    trainer = {"tokens": 4096, "scheduler": {"last_epoch": 1}, "settings": {"lr": 1e-3}}
    save_checkpoint(root, 1, module, optimizer, trainer, DistributedContext())
    return root / checkpoint_name(1)


def read_or_refuse(path):
    """The index read from ``path`` (a DCP Metadata), or None when refused with one ObteError line naming it."""
    metadata = read_or_refused(lambda: read_metadata_safely(path), path, ObteError)
    if metadata is None:
        return None
    assert isinstance(metadata, Metadata)
    return metadata


def load_or_refuse(path):
    """``load_checkpoint`` of the directory ``path``: the trainer state, or None when refused in one line."""
    module, optimizer = _module_and_optimizer()
    trainer = read_or_refused(
        lambda: load_checkpoint(path, module, optimizer, DistributedContext()), path, ObteError, seconds=20
    )
    if trainer is None:
        return None
    assert isinstance(trainer["step"], int) and isinstance(trainer["tokens"], int)
    return trainer


@st.composite
def garbled(draw, original: bytes):
    """``original`` after one to three edits: a cut, bytes overwritten, inserted or deleted."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["cut", "overwrite", "insert", "delete"]))
        if edit == "cut":
            del data[where:]
        elif edit == "overwrite":
            patch = draw(st.binary(min_size=1, max_size=8))
            data[where : where + len(patch)] = patch
        elif edit == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[where : where + draw(st.integers(1, 16))]
    return bytes(data)


def _fresh_copy(real, tmp_path_factory):
    path = tmp_path_factory.mktemp("garbled") / "step"
    shutil.copytree(real, path)
    return path


# ---- the index, read alone ---------------------------------------------------------------------------
@FAST
@given(st.data())
def test_a_garbled_real_index_is_read_or_refused_in_one_line(real_checkpoint, tmp_path_factory, data):
    content = data.draw(garbled((real_checkpoint / ".metadata").read_bytes()))
    path = tmp_path_factory.mktemp("index") / ".metadata"
    path.write_bytes(content)
    read_or_refuse(path)


@FAST
@given(st.sampled_from([b"", b"\x80\x02", b"\x80\x04", b"\x80\x05\x95", b"c", b"("]), st.binary(max_size=300))
@example(b"\x80\x02", b"NQ.")  # a persistent id: the unpickler's message spans two lines
def test_arbitrary_bytes_are_refused_in_one_line(tmp_path_factory, prefix, content):
    path = tmp_path_factory.mktemp("index") / ".metadata"
    path.write_bytes(prefix + content)
    read_or_refuse(path)


plain_data = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10), st.binary(max_size=10)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
        st.frozensets(st.integers(), max_size=4),
    ),
    max_leaves=25,
)


@FAST
@given(plain_data, st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_a_pickle_of_plain_data_is_not_an_index(tmp_path_factory, value, protocol):
    path = tmp_path_factory.mktemp("index") / ".metadata"
    path.write_bytes(pickle.dumps(value, protocol=protocol))
    assert read_or_refuse(path) is None


ALLOWED = {(module, name) for module, names in _METADATA_CLASSES.items() for name in names}
DANGEROUS = [
    ("os", "system"),
    ("posix", "system"),
    ("subprocess", "Popen"),
    ("subprocess", "check_output"),
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("builtins", "getattr"),
    ("builtins", "__import__"),
    ("torch", "load"),
    ("torch.serialization", "load"),
    ("pickle", "loads"),
    ("shutil", "rmtree"),
    ("pathlib", "Path.unlink"),
    ("torch.distributed.checkpoint.metadata", "__builtins__"),
    ("collections", "OrderedDict.__class__"),
]
identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,20}", fullmatch=True)


def _calls_global(module: str, name: str, protocol: int) -> bytes:
    """A pickle that looks ``module.name`` up and calls it with no arguments."""
    if protocol < 4:
        return b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")R."
    parts = b"".join(b"\x8c" + bytes([len(s.encode())]) + s.encode() for s in (module, name))
    return b"\x80\x04" + parts + b"\x93)R."


@FAST
@given(
    st.one_of(st.sampled_from(DANGEROUS), st.sampled_from(sorted(ALLOWED)), st.tuples(identifiers, identifiers)),
    st.sampled_from([2, 4]),
)
def test_a_pickle_naming_any_global_outside_the_allow_list_is_refused(tmp_path_factory, target, protocol):
    module, name = target
    path = tmp_path_factory.mktemp("index") / ".metadata"
    path.write_bytes(_calls_global(module, name, protocol))
    allowed = target in ALLOWED or (module == "torch" and isinstance(getattr(torch, name, None), torch.dtype))
    if allowed:
        assert read_or_refuse(path) is None  # a class called without arguments is no index
    else:
        with within(10), pytest.raises(UnsafeCheckpointError, match="refused to load: it names") as refused:
            read_metadata_safely(path)
        refused_in_one_line(refused.value, path)


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, pickle.HIGHEST_PROTOCOL), plain_data)
def test_a_hostile_index_never_runs_even_inside_plain_data(tmp_path_factory, protocol, around):
    folder = tmp_path_factory.mktemp("hostile")
    marker = folder / "ran"
    (folder / ".metadata").write_bytes(pickle.dumps([around, _RunsCode(marker)], protocol=protocol))
    with pytest.raises(UnsafeCheckpointError):
        read_metadata_safely(folder / ".metadata")
    assert not marker.exists()


# ---- the whole checkpoint, loaded ----------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(st.data())
def test_loading_a_checkpoint_with_a_garbled_index_restores_it_or_is_refused_in_one_line(
    real_checkpoint, tmp_path_factory, data
):
    path = _fresh_copy(real_checkpoint, tmp_path_factory)
    (path / ".metadata").write_bytes(data.draw(garbled((real_checkpoint / ".metadata").read_bytes())))
    load_or_refuse(path)


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_loading_a_checkpoint_with_a_garbled_shard_restores_it_or_is_refused_in_one_line(
    real_checkpoint, tmp_path_factory, data
):
    path = _fresh_copy(real_checkpoint, tmp_path_factory)
    [shard] = path.glob("*.distcp")
    shard.write_bytes(data.draw(garbled(shard.read_bytes())))
    load_or_refuse(path)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=30,
)


@st.composite
def trainer_states(draw):
    """trainer.json: the right keys with any values, or any JSON value at all."""
    keys = {"step": st.integers(), "tokens": st.integers(), "scheduler": st.just({}), "settings": st.just({})}
    state = {k: draw(st.one_of(v, json_values)) for k, v in keys.items() if draw(st.booleans())}
    return draw(st.one_of(st.just(state), json_values))


@settings(max_examples=40, deadline=None)
@given(
    st.one_of(trainer_states().map(json.dumps), st.text(max_size=60), st.just("[" * 5_000)),
    st.one_of(st.none(), json_values.map(lambda v: json.dumps({"torch": v})), st.text(max_size=30)),
)
def test_a_garbled_trainer_state_or_rng_state_is_read_or_refused_in_one_line(
    real_checkpoint, tmp_path_factory, trainer, rng
):
    path = _fresh_copy(real_checkpoint, tmp_path_factory)
    (path / "trainer.json").write_text(trainer)
    if rng is not None:
        (path / "rng-rank-0.json").write_text(rng)
    with within(10):
        try:
            state = read_checkpoint_json(path / "trainer.json")
            assert isinstance(state, dict)
        except ObteError as exc:
            refused_in_one_line(exc, path / "trainer.json")
    load_or_refuse(path)


def test_a_trainer_state_with_a_number_of_5000_digits_is_refused_in_one_line(real_checkpoint, tmp_path):
    path = tmp_path / "step"
    shutil.copytree(real_checkpoint, path)
    (path / "trainer.json").write_text('{"step": 1' + "0" * 5000 + ', "tokens": 1, "scheduler": {}, "settings": {}}')
    assert load_or_refuse(path) is None
