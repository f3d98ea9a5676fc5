"""Reading the JSON files of model and tokenizer directories with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from obte_cli.engine.core.errors import ModelFormatError
from obte_cli.engine.core.inputs import refuse_special_file


def read_json_file(path: Path, missing: str) -> dict:
    """Parse ``path`` as a JSON object; ``missing`` is the message when the file does not exist."""
    refuse_special_file(path, ModelFormatError)
    if not path.is_file():
        raise ModelFormatError(missing)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelFormatError(f"{path}: expected a JSON object")
    return data
