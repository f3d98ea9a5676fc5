"""Model directories: how an obte model lives on disk.

A model is a directory::

    my-model/
      config.json          format, obte version, architecture, tokenizer, task head, provenance
      model.safetensors    weights (backbone, readout, and the task head under ``head.``)
      tokenizer.json       the tokenizer (plus its sentencepiece ``.model`` files for BPE)

:func:`save_model` writes into a staged sibling directory (:func:`staged_directory`) and renames it into
place, so a reader never sees a half-written model. :func:`load_model` checks every field of config.json
— the format version; each architecture field's type and range (:class:`ObteConfig`); the tokenizer
section against tokenizer.json; the task head's fields (:func:`obte_cli.engine.model.heads.check_head`)
— and that the parts agree: the tokenizer's vocabulary against the embedding table, every weight's name,
shape and (floating-point) dtype against the config, and every weight's values (finite: no NaN or
infinity). What is wrong is one line of :class:`ModelFormatError` naming the file and field
(``m/config.json: architecture.n_heads must be a positive integer (got 0)``). Weights are read with
safetensors only: nothing on disk is ever unpickled.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from obte_cli._version import __version__
from obte_cli.engine.core import schema
from obte_cli.engine.core.errors import ModelFormatError
from obte_cli.engine.core.inputs import refuse_special_file
from obte_cli.engine.core.jsonfiles import read_json_file
from obte_cli.engine.core.outputs import new_file_mode, staged_directory
from obte_cli.engine.core.safetensors_files import safetensors_write_errors
from obte_cli.engine.core.schema import SchemaError
from obte_cli.engine.model.encoder import ObteConfig, ObteModel, weight_count, weight_names, weight_shape
from obte_cli.engine.model.heads import check_head, head_weight_shapes
from obte_cli.engine.tokenizers.base import TOKENIZER_FILE, Tokenizer
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
        with safetensors_write_errors(directory / WEIGHTS_FILE):
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


def _format_error(path: Path, section: str, exc: SchemaError) -> ModelFormatError:
    """``path: section.field problem``, or ``path: problem`` for a message about a whole section."""
    exc = exc.within(section) if section else exc
    return ModelFormatError(f"{path}: {exc}")


def read_config(directory: str | Path) -> dict:
    """Read and check ``config.json``: its format and version, and the type of every top-level field
    (the sections themselves are checked by :func:`load_model`, against the tokenizer and weights)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelFormatError(f"{directory}: no such model directory")
    path = directory / CONFIG_FILE
    config = read_json_file(path, f"{directory}: no {CONFIG_FILE} (not an obte model directory)")
    if config.get("format") != FORMAT_NAME:
        raise ModelFormatError(f"{path}: not an obte model (format {schema.shown(config.get('format'))})")
    version = config.get("format_version")
    if not schema.is_integer(version) or version < 1:
        raise ModelFormatError(f"{path}: format_version must be a positive integer (got {schema.shown(version)})")
    if version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{path}: model format version {version!r} is newer than this obte understands "
            f"({FORMAT_VERSION}); upgrade obte"
        )
    try:
        if "obte_version" in config:
            schema.text(config["obte_version"], "obte_version")
        schema.mapping(schema.required(config, "architecture"), "architecture")
        schema.mapping(schema.required(config, "tokenizer"), "tokenizer")
        if config.get("head") is not None:
            schema.mapping(config["head"], "head")
        schema.mapping(config.get("metadata", {}), "metadata")
    except SchemaError as exc:
        raise _format_error(path, "", exc) from None
    return config


def _check_tokenizer_section(directory: Path, section: dict, tokenizer: Tokenizer) -> None:
    """config.json's ``tokenizer`` must describe the tokenizer that tokenizer.json holds."""
    kind = schema.text(schema.required(section, "kind"), "kind")
    if kind != tokenizer.kind:
        raise SchemaError("kind", f"is {kind!r} but {TOKENIZER_FILE} holds a {tokenizer.kind} tokenizer")
    vocab_size = schema.integer(schema.required(section, "vocab_size"), "vocab_size")
    if vocab_size != tokenizer.vocab_size:
        raise SchemaError("vocab_size", f"is {vocab_size} but {TOKENIZER_FILE} has {tokenizer.vocab_size} ids")
    files = schema.sequence(schema.required(section, "files"), "files")
    for i, name in enumerate(files):
        schema.plain_file_name(name, f"files[{i}]")
        if not (directory / name).is_file():
            raise SchemaError(f"files[{i}]", f"names {name}, which is missing from the model directory")


def _name_list(names: list[str]) -> str:
    return ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")


def _check_weights(
    weights_path: Path, tensors: dict[str, torch.Tensor], shape_of, count: int, names, what: str, prefix: str = ""
) -> dict[str, torch.Tensor]:
    """Check ``tensors`` against the weights a config implies — ``shape_of(name)`` (None: no such
    weight), ``count`` of them, ``names()`` listing them lazily — and return them as float32. ``what``
    says what the config describes and ``prefix`` what the names have in front in the file (for messages)."""
    unexpected = sorted(name for name in tensors if shape_of(name) is None)
    missing = []
    if len(tensors) - len(unexpected) < count:
        for name in names():
            if name not in tensors:
                missing.append(name)
                if len(missing) > 5:
                    break
    if missing or unexpected:
        parts = [f"missing {_name_list([prefix + n for n in missing])}"] if missing else []
        parts += [f"unexpected {_name_list([prefix + n for n in unexpected])}"] if unexpected else []
        raise ModelFormatError(f"{weights_path}: weights do not match {what} ({'; '.join(parts)})")
    converted = {}
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != shape_of(name):
            raise ModelFormatError(
                f"{weights_path}: {prefix}{name} has shape {tuple(tensor.shape)}, {what} implies {shape_of(name)}"
            )
        if not tensor.dtype.is_floating_point:
            raise ModelFormatError(
                f"{weights_path}: {prefix}{name} holds {str(tensor.dtype).removeprefix('torch.')} values; "
                "weights must be floating-point"
            )
        converted[name] = tensor if tensor.dtype == torch.float32 else tensor.float()
    return converted


def _check_finite(weights_path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """ModelFormatError naming the first tensor (by name, the file's order) holding NaN or infinity. Run on
    the device the model was moved to: milliseconds on a GPU, about a second per 200M weights on a 2-core CPU."""
    for name in sorted(tensors):
        if not bool(torch.isfinite(tensors[name]).all()):
            raise ModelFormatError(
                f"{weights_path}: {name} holds non-finite values (NaN or infinity): the weights are broken"
            )


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load and validate a model directory (see module docstring). Every field of config.json is checked
    (type, range, and agreement with the tokenizer and the weights) before anything is built; weights
    must be floating-point and are loaded as float32."""
    directory = Path(directory)
    config = read_config(directory)
    config_path = directory / CONFIG_FILE
    try:
        arch = ObteConfig.from_dict(config["architecture"])
    except SchemaError as exc:
        raise _format_error(config_path, "architecture", exc) from None
    tokenizer = load_tokenizer(directory)
    try:
        _check_tokenizer_section(directory, config["tokenizer"], tokenizer)
    except SchemaError as exc:
        raise _format_error(config_path, "tokenizer", exc) from None
    if tokenizer.vocab_size > arch.vocab_size:
        raise ModelFormatError(
            f"{directory}: tokenizer has {tokenizer.vocab_size} ids but the model embeds only {arch.vocab_size}"
        )
    head = config.get("head")
    if head is not None:
        try:
            check_head(head, arch)
        except SchemaError as exc:
            raise _format_error(config_path, "head", exc) from None
    weights_path = directory / WEIGHTS_FILE
    refuse_special_file(weights_path, ModelFormatError)
    if not weights_path.is_file():
        raise ModelFormatError(f"{directory}: {WEIGHTS_FILE} is missing")
    try:
        tensors = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ModelFormatError(f"{weights_path}: unreadable weights ({exc})") from None
    head_state = {k[len("head.") :]: v for k, v in tensors.items() if k.startswith("head.")}
    backbone = {k: v for k, v in tensors.items() if not k.startswith("head.")}
    backbone = _check_weights(
        weights_path,
        backbone,
        lambda name: weight_shape(arch, name),
        weight_count(arch),
        lambda: weight_names(arch),
        "config.json",
    )
    if head is None and head_state:
        raise ModelFormatError(
            f"{weights_path}: has head weights ({_name_list(['head.' + n for n in sorted(head_state)])}) but "
            "config.json describes no head"
        )
    if head is not None:
        if not head_state:
            raise ModelFormatError(
                f"{directory}: config.json describes a task head but {WEIGHTS_FILE} has no head weights"
            )
        shapes = head_weight_shapes(head, arch.width)
        head_state = _check_weights(
            weights_path, head_state, shapes.get, len(shapes), lambda: iter(shapes), "config.json's head", "head."
        )
    # The shapes match the config, so this builds nothing larger than the file. The meta-device model
    # allocates nothing; assign=True adopts the loaded tensors as parameters (no random initialisation
    # of billions of weights just to overwrite them).
    with torch.device("meta"):
        model = ObteModel(arch)
    model.load_state_dict(backbone, strict=True, assign=True)
    model.source = directory
    model.to(device)
    _check_finite(weights_path, {**model.state_dict(), **{f"head.{k}": v for k, v in head_state.items()}})
    model.eval()
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        head=head,
        head_state=head_state,
        metadata=config.get("metadata", {}),
        path=directory,
    )
