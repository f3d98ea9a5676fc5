"""What `obte model info` says about a model directory: it is loaded (so every check of
:func:`~obte_cli.engine.model.directory.load_model` runs), then described from its architecture and from what
its ``config.json`` metadata and model card (``README.md``) record about how it was made.

A row is ``(key, value)``; a value the directory does not record is ``NA``.
"""

from __future__ import annotations

from pathlib import Path

CARD_FILE = "README.md"


def card_title(directory: str | Path) -> str | None:
    """The first ``# `` heading of the directory's model card, or None without a card."""
    path = Path(directory) / CARD_FILE
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("# "):
                    return line[2:].strip()
    except OSError:
        return None
    return None


def training_record(metadata: dict) -> tuple[str, str]:
    """(trained, how) from a model's metadata: ``true``/``false``/``unknown`` and one phrase saying what made
    the weights (`obte pretrain`, `obte convert`, a fine-tuning, or `obte model init`)."""
    pretraining = metadata.get("pretraining")
    if isinstance(pretraining, dict):
        tokens = pretraining.get("tokens_seen")
        amount = f" on {int(tokens):,} tokens" if isinstance(tokens, (int, float)) else ""
        modality = pretraining.get("modality")
        return "true", f"pretrained by `obte pretrain`{amount}" + (f" ({modality})" if modality else "")
    if metadata.get("converted_from"):
        return "true", f"converted from {metadata['converted_from']} by `obte convert`"
    task = metadata.get("task")
    if task or metadata.get("finetune"):
        backbone = metadata.get("backbone")
        return "true", f"fine-tuned ({task or 'a task head'})" + (f" from {backbone}" if backbone else "")
    if metadata.get("trained") is False:
        return "false", "initialised by `obte model init`, never trained"
    if metadata.get("trained") is True:
        return "true", "NA"
    return "unknown", "the config records no training"


def _preset(metadata: dict) -> str:
    preset = metadata.get("preset")
    return str(preset) if preset else "NA"


def describe_model(directory: str | Path) -> list[tuple[str, object]]:
    """Rows describing the obte model directory ``directory`` (loaded and checked first)."""
    from obte_cli.engine.model.directory import load_model, read_config

    loaded = load_model(directory)
    config = read_config(directory)
    metadata = loaded.metadata or {}
    arch = loaded.model.config
    trained, how = training_record(metadata)
    rows: list[tuple[str, object]] = [
        ("path", str(directory)),
        ("name", Path(directory).resolve().name),
        ("description", card_title(directory) or "NA"),
        ("obte_version", config.get("obte_version", "NA")),
        ("preset", _preset(metadata)),
        ("trained", trained),
        ("training", how),
        ("width", arch.width),
        ("n_layers", arch.n_layers),
        ("n_heads", arch.n_heads),
        ("head_dim", arch.head_dim),
        ("max_positions", arch.max_positions),
        ("vocab_size", arch.vocab_size),
        ("tokenizer", loaded.tokenizer.kind),
        ("tokenizer_vocab_size", loaded.tokenizer.vocab_size),
        ("parameters", loaded.model.num_parameters(non_embedding=False)),
        ("non_embedding_parameters", loaded.model.num_parameters()),
        ("head", (loaded.head or {}).get("task", "none")),
    ]
    pretraining = metadata.get("pretraining")
    if isinstance(pretraining, dict):
        heldout = pretraining.get("heldout") or {}
        for key in ("heldout_protein_bits_per_residue", "heldout_nucleic_bits_per_residue"):
            if isinstance(heldout.get(key), (int, float)):
                rows.append((key, f"{heldout[key]:.3f}"))
        if pretraining.get("device"):
            rows.append(("pretraining_device", pretraining["device"]))
    if "best_epoch" in metadata:
        rows.append(("best_epoch", metadata["best_epoch"]))
    return rows
