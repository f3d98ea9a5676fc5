"""Model directories: how an obte model lives on disk.

A model is a directory::

    my-model/
      config.json          format, obte version, architecture, tokenizer, task head, provenance
      model.safetensors    weights (backbone, readout, and the task head under ``head.``)
      tokenizer.json       the tokenizer (plus its sentencepiece ``.model`` files for BPE)

:func:`save_model` writes into a staged sibling directory (:func:`staged_directory`) and renames it into
place, so a reader never sees a half-written model. :func:`load_model` checks that the parts agree — the
format version, the architecture, the tokenizer's vocabulary against the embedding table, every weight's
name and shape — and raises :class:`ModelFormatError` with one line saying what is wrong. Weights are read
with safetensors only: nothing on disk is ever unpickled.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from obte_cli import __version__
from obte_cli.engine.core.errors import ModelFormatError
from obte_cli.engine.core.jsonfiles import read_json_file
from obte_cli.engine.core.outputs import new_file_mode, staged_directory
from obte_cli.engine.model.encoder import ObteConfig, ObteModel
from obte_cli.engine.tokenizers.base import Tokenizer
from obte_cli.engine.tokenizers.loading import load_tokenizer

FORMAT_NAME = "obte-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class LoadedModel:
    model: ObteModel
    tokenizer: Tokenizer
    head: dict | None = None  # the task head's description from config.json, if any
    head_state: dict[str, torch.Tensor] = field(default_factory=dict)  # its weights, "head." stripped
    metadata: dict = field(default_factory=dict)  # provenance: preset, training recipe, metrics ...
    path: Path | None = None


def save_model(
    directory: str | Path,
    model: ObteModel,
    tokenizer: Tokenizer,
    *,
    head: dict | None = None,
    head_state: dict[str, torch.Tensor] | None = None,
    metadata: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a model directory atomically. ``head``/``head_state`` describe an optional task head."""
    directory = Path(directory)
    if directory.exists() and not overwrite:
        raise FileExistsError(f"{directory} already exists (pass overwrite=True to replace it)")
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ValueError("tokenizer has more ids than the model's embedding table")
    with staged_directory(directory) as tmp:
        tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
        for name, t in (head_state or {}).items():
            tensors[f"head.{name}"] = t.detach().to("cpu").contiguous()
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT_NAME})
        os.chmod(tmp / WEIGHTS_FILE, new_file_mode())  # safetensors makes its files 0600
        tokenizer_files = tokenizer.save(tmp)
        config = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "obte_version": __version__,
            "architecture": model.config.to_dict(),
            "tokenizer": {"kind": tokenizer.kind, "vocab_size": tokenizer.vocab_size, "files": tokenizer_files},
            "head": head,
            "metadata": metadata or {},
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return directory


def read_config(directory: str | Path) -> dict:
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelFormatError(f"{directory}: no such model directory")
    path = directory / CONFIG_FILE
    config = read_json_file(path, f"{directory}: no {CONFIG_FILE} (not an obte model directory)")
    if config.get("format") != FORMAT_NAME:
        raise ModelFormatError(f"{path}: not an obte model (format {config.get('format')!r})")
    version = config.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelFormatError(f"{path}: format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{path}: model format version {version!r} is newer than this obte understands "
            f"({FORMAT_VERSION}); upgrade obte"
        )
    return config


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load and validate a model directory (see module docstring)."""
    directory = Path(directory)
    config = read_config(directory)
    try:
        arch = ObteConfig.from_dict(config["architecture"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(f"{directory / CONFIG_FILE}: bad architecture ({exc})") from None
    tokenizer = load_tokenizer(directory)
    if tokenizer.vocab_size > arch.vocab_size:
        raise ModelFormatError(
            f"{directory}: tokenizer has {tokenizer.vocab_size} ids but the model embeds only {arch.vocab_size}"
        )
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise ModelFormatError(f"{directory}: {WEIGHTS_FILE} is missing")
    try:
        tensors = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ModelFormatError(f"{weights_path}: unreadable weights ({exc})") from None
    head_state = {k[len("head.") :]: v for k, v in tensors.items() if k.startswith("head.")}
    backbone = {k: v for k, v in tensors.items() if not k.startswith("head.")}
    with torch.device("meta"):
        model = ObteModel(arch)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(backbone))
    unexpected = sorted(set(backbone) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
        raise ModelFormatError(f"{weights_path}: weights do not match config.json ({'; '.join(parts)})")
    for name, tensor in backbone.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ModelFormatError(
                f"{weights_path}: {name} has shape {tuple(tensor.shape)}, config.json implies "
                f"{tuple(expected[name].shape)}"
            )
    # The meta-device model allocated nothing; assign=True adopts the loaded tensors as parameters
    # (no random initialisation of billions of weights just to overwrite them).
    model.load_state_dict(backbone, strict=True, assign=True)
    model.to(device)
    model.eval()
    if config.get("head") and not head_state:
        raise ModelFormatError(f"{directory}: config.json describes a task head but {WEIGHTS_FILE} has no head weights")
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        head=config.get("head"),
        head_state=head_state,
        metadata=config.get("metadata", {}),
        path=directory,
    )
