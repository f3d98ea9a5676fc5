"""Checkpoints are read without running code from them: hostile and corrupt checkpoint directories."""

import json
import os
import pickle
import warnings

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.api import CheckpointException

from obte_cli.engine.core.errors import ObteError
from obte_cli.engine.pretraining.distributed import DistributedContext
from obte_cli.engine.pretraining.safe_checkpoint import (
    SafeCheckpointReader,
    SafeLoadPlanner,
    UnsafeCheckpointError,
    read_metadata_safely,
)
from obte_cli.engine.pretraining.train_state import checkpoint_name, load_checkpoint, save_checkpoint


class _RunsCode:
    """Unpickling this runs a shell command that leaves a marker file: the attack being tested."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _module_and_optimizer(seed=0):
    torch.manual_seed(seed)
    module = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 3))
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3, betas=(0.9, 0.95))
    module(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    return module, optimizer


@pytest.fixture
def checkpoint(tmp_path):
    module, optimizer = _module_and_optimizer()
    trainer = {"tokens": 4096, "scheduler": {"last_epoch": 1}, "settings": {"lr": 1e-3}}
    save_checkpoint(tmp_path / "checkpoints", 1, module, optimizer, trainer, DistributedContext())
    return tmp_path / "checkpoints" / checkpoint_name(1), module


def test_a_real_checkpoint_round_trips_through_the_safe_reader(checkpoint):
    path, saved = checkpoint
    module, optimizer = _module_and_optimizer(seed=1)  # other weights, to be overwritten
    state = load_checkpoint(path, module, optimizer, DistributedContext())
    assert state["step"] == 1 and state["tokens"] == 4096
    for a, b in zip(saved.state_dict().values(), module.state_dict().values()):
        assert torch.equal(a, b)
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.95)  # a non-tensor value, read as plain data


def test_a_hostile_metadata_file_is_refused_and_never_run(checkpoint, tmp_path):
    path, _ = checkpoint
    marker = tmp_path / "ran"
    (path / ".metadata").write_bytes(pickle.dumps(_RunsCode(marker)))
    module, optimizer = _module_and_optimizer()
    with pytest.raises(UnsafeCheckpointError, match=r"\.metadata: refused to load: it names posix\.system"):
        load_checkpoint(path, module, optimizer, DistributedContext())
    assert not marker.exists()


def test_a_hostile_value_inside_the_checkpoint_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.save({"w": torch.ones(3), "lr": _RunsCode(marker)}, checkpoint_id=str(tmp_path / "ck"), no_dist=True)
        assert not marker.exists()
        state = {"w": torch.zeros(3), "lr": 0.0}
        with pytest.raises(CheckpointException) as raised:
            dcp.load(
                state, storage_reader=SafeCheckpointReader(tmp_path / "ck"), planner=SafeLoadPlanner(), no_dist=True
            )
    assert "refused to load the checkpoint value 'lr'" in str(raised.value)
    assert "posix.system" in str(raised.value)
    assert not marker.exists()


def test_corrupt_and_foreign_index_files_are_clear_errors(checkpoint):
    path, _ = checkpoint
    (path / ".metadata").write_bytes(b"\x80\x04not a pickle at all")
    with pytest.raises(ObteError, match="corrupt checkpoint index"):
        read_metadata_safely(path / ".metadata")
    (path / ".metadata").write_bytes(pickle.dumps({"a": [1, 2.0, "x"]}))  # harmless, but not an index
    with pytest.raises(ObteError, match="not a checkpoint index"):
        read_metadata_safely(path / ".metadata")
    module, optimizer = _module_and_optimizer()
    with pytest.raises(ObteError, match="not a checkpoint index"):
        load_checkpoint(path, module, optimizer, DistributedContext())


def test_missing_shards_and_broken_trainer_state_are_clear_errors(checkpoint):
    path, _ = checkpoint
    module, optimizer = _module_and_optimizer()
    (path / "trainer.json").write_text('{"step": 1, "tokens": "many"')
    with pytest.raises(ObteError, match="trainer.json: unreadable checkpoint file"):
        load_checkpoint(path, module, optimizer, DistributedContext())
    (path / "trainer.json").write_text(json.dumps({"step": 1, "tokens": 5, "settings": {}}))
    with pytest.raises(ObteError, match="'scheduler' is missing"):
        load_checkpoint(path, module, optimizer, DistributedContext())
    for shard in path.glob("*.distcp"):
        shard.unlink()
    with pytest.raises(ObteError, match="cannot load the checkpoint"):
        load_checkpoint(path, module, optimizer, DistributedContext())


def _point_storage_at(checkpoint_dir, relative_path):
    """Rewrite the index so that every tensor is read from ``relative_path`` (as a crafted index would)."""
    metadata = read_metadata_safely(checkpoint_dir / ".metadata")
    for info in metadata.storage_data.values():
        info.relative_path = relative_path
    (checkpoint_dir / ".metadata").write_bytes(pickle.dumps(metadata))


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink"])
def test_storage_paths_outside_the_checkpoint_are_refused(checkpoint, tmp_path, where):
    """#31 §2: an index whose storage path leaves the checkpoint directory (../, absolute, or a symlink
    inside it that points out) is refused in one line naming the path; nothing is read into the weights."""
    path, _ = checkpoint
    shard = next(path.glob("*.distcp"))
    outside = tmp_path / "outside.distcp"  # a valid shard (another module's weights would do as well)
    outside.write_bytes(shard.read_bytes())
    relative = {
        "parent": os.path.relpath(outside, path),
        "absolute": str(outside),
        "symlink": "linked.distcp",
    }[where]
    if where == "symlink":
        (path / "linked.distcp").symlink_to(outside)
    _point_storage_at(path, relative)
    module, optimizer = _module_and_optimizer(seed=1)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with pytest.raises(UnsafeCheckpointError, match="refused: the storage path") as raised:
        load_checkpoint(path, module, optimizer, DistributedContext())
    message = str(raised.value)
    assert "\n" not in message and repr(relative) in message and str(path / ".metadata") in message
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())


def test_storage_paths_inside_the_checkpoint_are_read(checkpoint):
    """A path with ``./`` or a subdirectory that stays inside is not refused."""
    path, saved = checkpoint
    shard = next(path.glob("*.distcp"))
    (path / "sub").mkdir()
    os.replace(shard, path / "sub" / shard.name)
    _point_storage_at(path, f"./sub/../sub/{shard.name}")
    module, optimizer = _module_and_optimizer(seed=1)
    load_checkpoint(path, module, optimizer, DistributedContext())
    assert all(torch.equal(a, b) for a, b in zip(saved.state_dict().values(), module.state_dict().values()))
