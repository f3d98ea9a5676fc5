"""Files that ship inside the package (``share/``): bundled tokenizers, example inputs, default models.

In a wheel, ``share/`` is installed as ``obte_cli/share``; in a source checkout (editable install or
tests) it is the ``share/`` folder at the repository root. Both are looked up, wheel first.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parents[2]  # obte_cli/


def share_dir() -> Path:
    for candidate in (_PACKAGE_DIR / "share", _PACKAGE_DIR.parent / "share"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("obte's share/ folder is missing: the installation is incomplete")


def bundled_tokenizers() -> list[str]:
    """Names of the tokenizers shipped with obte (usable wherever a tokenizer path is accepted)."""
    root = share_dir() / "tokenizers"
    return sorted(p.name for p in root.iterdir() if (p / "tokenizer.json").is_file())


def bundled_tokenizer_dir(name: str) -> Path | None:
    path = share_dir() / "tokenizers" / name
    return path if (path / "tokenizer.json").is_file() else None


def example_file(name: str) -> Path:
    return share_dir() / "examples" / name


def bench_file(name: str) -> Path:
    """Reference data of ``obte bench`` (``share/bench/``)."""
    return share_dir() / "bench" / name


DEFAULT_AFFINITY_MODEL = "affinity"


def default_affinity_model_dir() -> Path:
    """The ΔG model ``obte affinity`` uses without ``--model`` (see ``share/models/affinity/README.md``)."""
    return share_dir() / "models" / DEFAULT_AFFINITY_MODEL


DEFAULT_CONTACTS_MODEL = "contacts"


def default_contacts_model_dir() -> Path:
    """The model ``obte contacts predict`` uses without ``--model`` (see ``share/models/contacts/README.md``)."""
    return share_dir() / "models" / DEFAULT_CONTACTS_MODEL


# The pretrained backbone every command that fine-tunes, embeds or scores uses without --model. ESM-style
# name: family obte1, omni (protein + nucleic acids), t6 = 6 layers, 6M parameters, DEB12 = trained on the
# Debian 12 corpus (scripts/build-corpus-debian.sh). Its model card is share/models/<name>/README.md.
DEFAULT_BACKBONE = "obte1_omni_t6_6M_DEB12"


def default_backbone_dir() -> Path | None:
    """The bundled pretrained backbone, or None where this installation has none."""
    path = share_dir() / "models" / DEFAULT_BACKBONE
    return path if (path / "config.json").is_file() else None
