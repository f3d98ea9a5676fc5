"""obte: multi-omic biosequence transformers from the command line.

The command-line layer lives in :mod:`obte_cli.app` and :mod:`obte_cli.commands`; everything that
computes lives in :mod:`obte_cli.engine`, which never prints and never imports Typer.
"""

__version__ = "0.1.0"
