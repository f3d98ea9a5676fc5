"""obte's version, in a module of its own: the engine records it in what it writes (model directories, token
files, corpus manifests) and imports it from here, so that no engine module imports the package root, which
imports the Python API (:mod:`obte_cli.api`), which imports the engine."""

__version__ = "0.1.0"
