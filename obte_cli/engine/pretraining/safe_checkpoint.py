"""Read torch.distributed.checkpoint (DCP) directories without ever running code from them.

DCP itself unpickles two things with the plain unpickler, so a crafted checkpoint directory could run
arbitrary code on ``obte pretrain --resume``:

* ``.metadata`` (the index of every saved tensor and value) is read with ``pickle.load``;
* non-tensor values (an optimizer's ``lr``, ``betas``, parameter names…) are stored as ``torch.save``
  blobs and read back with ``torch.load(weights_only=False)``.

:class:`SafeCheckpointReader` reads ``.metadata`` with an unpickler that can only build DCP's own
metadata records (and ``torch.Size``, dtypes, layouts, paths), and :class:`SafeLoadPlanner` reads the
values with ``torch.load(weights_only=True)``, which allows plain Python data and tensors only. Tensors
were always read that way by DCP. Anything else in a checkpoint is refused with an error naming it.

DCP also reads each tensor from the file the index names (``relative_path``), joined to the checkpoint
directory as written: ``../../outside.distcp`` or ``/etc/x`` would read a file outside the run into the
weights. :class:`SafeCheckpointReader` refuses an index whose storage paths are absolute or lead out of
the checkpoint directory (symlinks resolved), before anything is read.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path, PurePath
from typing import Any

import torch
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint._traverse import set_element
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta

from obte_cli.engine.core.errors import ObteError
from obte_cli.engine.core.inputs import refuse_special_file

# Everything a DCP ``.metadata`` written by torch 2.x refers to (listed from real DDP and FSDP2 checkpoints).
_METADATA_CLASSES = {
    "torch.distributed.checkpoint.metadata": {
        "Metadata",
        "MetadataIndex",
        "StorageMeta",
        "TensorProperties",
        "TensorStorageMetadata",
        "BytesStorageMetadata",
        "ChunkStorageMetadata",
        "_MEM_FORMAT_ENCODING",
    },
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch": {"Size"},
    "torch.serialization": {"_get_layout"},  # looks a layout up by name among torch's layouts
    "pathlib": {"PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath", "Path"},
    "collections": {"OrderedDict"},
}


class UnsafeCheckpointError(ObteError):
    """A checkpoint file names something that is not part of a checkpoint: it was refused, not run."""


class _MetadataUnpickler(pickle.Unpickler):
    def __init__(self, stream: io.BufferedIOBase, source: str):
        super().__init__(stream)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        allowed = name in _METADATA_CLASSES.get(module, ())
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            allowed = True
        if not allowed:
            raise UnsafeCheckpointError(
                f"{self.source}: refused to load: it names {module}.{name}, which is not part of a checkpoint"
            )
        return super().find_class(module, name)


def read_metadata_safely(path: Path) -> Metadata:
    """Unpickle a DCP ``.metadata`` file with the allow-list above; errors name the file."""
    path = Path(path)
    refuse_special_file(path, ObteError)  # a FIFO in its place would block the read for ever
    try:
        with path.open("rb") as stream:
            metadata = _MetadataUnpickler(stream, str(path)).load()
    except UnsafeCheckpointError:
        raise
    except OSError as exc:
        raise ObteError(f"{path}: cannot read the checkpoint index: {exc.strerror or exc}") from exc
    except Exception as exc:  # any unpickling failure means a corrupt file
        detail = " ".join(str(exc).split())[:200]  # one line: some pickle errors span two
        raise ObteError(f"{path}: corrupt checkpoint index ({type(exc).__name__}: {detail})") from exc
    if not isinstance(metadata, Metadata):
        raise ObteError(f"{path}: not a checkpoint index (holds a {type(metadata).__name__})")
    return metadata


def check_storage_paths(metadata: Metadata, directory: Path, source: str) -> None:
    """Every file the index ``metadata`` (read from ``source``) stores tensors in must lie inside
    ``directory``: a relative path that, resolved with its symlinks, stays there. Otherwise an
    :class:`UnsafeCheckpointError` naming the path."""
    root = Path(os.path.realpath(directory))
    seen = set()
    for info in (getattr(metadata, "storage_data", None) or {}).values():
        relative = getattr(info, "relative_path", None)
        if relative in seen:
            continue
        seen.add(relative)
        if not isinstance(relative, str | PurePath) or not str(relative):
            raise UnsafeCheckpointError(f"{source}: refused: a storage path is not a file name ({relative!r})")
        if os.path.isabs(relative):
            raise UnsafeCheckpointError(f"{source}: refused: the storage path {str(relative)!r} is absolute")
        target = Path(os.path.realpath(root / relative))
        if target == root or root not in target.parents:
            raise UnsafeCheckpointError(
                f"{source}: refused: the storage path {str(relative)!r} leads outside the checkpoint directory"
            )


class SafeCheckpointReader(FileSystemReader):
    """DCP's file-system reader, with ``.metadata`` read by :func:`read_metadata_safely`."""

    def __init__(self, path: Path | str):
        super().__init__(path)
        self.errors: list[ObteError] = []  # DCP folds exceptions into strings; keep ours to re-raise

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        source = Path(self._get_metadata_path(kwargs.get("rank")))
        try:
            metadata = read_metadata_safely(source)
            check_storage_paths(metadata, Path(self.path), str(source))
        except ObteError as exc:
            self.errors.append(exc)
            raise
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class SafeLoadPlanner(DefaultLoadPlanner):
    """DCP's default load planner, with non-tensor values read by ``torch.load(weights_only=True)``."""

    def __init__(self):
        super().__init__()
        self.errors: list[ObteError] = []

    def load_bytes(self, read_item, value: io.BytesIO) -> None:
        try:
            loaded = torch.load(value, weights_only=True)
        except pickle.UnpicklingError as exc:
            # torch's message is a page long; the line naming the refused global is the useful one
            lines = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line or "global" in line]
            reason = lines[0] if lines else "it is not plain data"
            error = UnsafeCheckpointError(
                f"refused to load the checkpoint value {read_item.dest_index.fqn!r}: {reason}"
            )
            self.errors.append(error)
            raise error from exc
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], loaded)
        else:
            self.state_dict[read_item.dest_index.fqn] = loaded


def checkpoint_failure(path: Path, exc: Exception, *parts: SafeCheckpointReader | SafeLoadPlanner) -> ObteError:
    """One clear error for a failed ``dcp.load`` of ``path``. DCP wraps every rank's exception (and
    sometimes only its text) in its own; the first error our reader or planner raised is the real cause."""
    for part in parts:
        if part.errors:
            cause = part.errors[0]
            message = str(cause)
            return type(cause)(message if message.startswith(str(path)) else f"{path}: {message}")
    failures = getattr(exc, "failures", None) or {}
    causes = [failure[0] if isinstance(failure, tuple) else failure for failure in failures.values()]
    cause = causes[0] if causes else exc
    detail = (str(cause).strip().splitlines() or ["no details"])[0]  # an empty shard raises a bare EOFError()
    return ObteError(f"{path}: cannot load the checkpoint ({type(cause).__name__}: {detail})")
