"""The Hugging Face ``transformers`` that `obte bench embed` and `bench throughput` compare obte with: an optional
dependency (the ``bench`` extra), so its absence is one line saying what to install, not a traceback."""

from __future__ import annotations

from obte_cli.engine.core.errors import MissingDependencyError

INSTALL_HINT = "pip install 'obte[bench]' (from a source checkout: pip install '.[bench]')"


def require_transformers() -> None:
    """Raise :class:`MissingDependencyError` unless ``transformers`` imports."""
    try:
        import transformers  # noqa: F401
    except ImportError as exc:
        if exc.name == "transformers":
            raise MissingDependencyError(
                f"the Hugging Face comparison needs transformers, which is not installed: {INSTALL_HINT}, "
                "or pass --no-hf"
            ) from None
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MissingDependencyError(
            f"the Hugging Face comparison needs transformers, which does not import here ({first}): reinstall it "
            f"with {INSTALL_HINT}, or pass --no-hf"
        ) from None
