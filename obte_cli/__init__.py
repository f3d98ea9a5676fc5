"""obte: multi-omic biosequence transformers from the command line and from Python.

The Python API (:mod:`obte_cli.api`) is what this package exports: :func:`load_model`, :func:`embed`,
:func:`score` and :func:`predict_affinity`, with the errors they raise. The command-line layer lives in
:mod:`obte_cli.app` and :mod:`obte_cli.commands`; everything that computes lives in :mod:`obte_cli.engine`,
which never prints and never imports Typer. Importing this package is cheap: torch and friends are imported
when a function needs them.

    >>> import obte_cli
    >>> model = obte_cli.load_model()  # the bundled backbone
    >>> obte_cli.embed(model, {"p53_tad": "MEEPQSDPSVEPPLSQETFSDLWKLL"}).array.shape
    (1, 288)
"""

from obte_cli._version import __version__
from obte_cli.api import (
    Embeddings,
    InputError,
    Model,
    ModelFormatError,
    ObteError,
    embed,
    load_model,
    predict_affinity,
    score,
)

__all__ = [
    "Embeddings",
    "InputError",
    "Model",
    "ModelFormatError",
    "ObteError",
    "__version__",
    "embed",
    "load_model",
    "predict_affinity",
    "score",
]
