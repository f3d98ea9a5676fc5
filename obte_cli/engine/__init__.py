"""The computing core of obte, in layers: each subpackage imports only from the ones before it.

    core → bio → tokenizers → model → {pretraining, finetuning, embedding} → {affinity, contacts} → bench

Nothing in this package prints or depends on Typer; errors a user can cause are raised as
:class:`obte_cli.engine.core.errors.ObteError` subclasses with a one-line message, which the CLI turns into
``error: ...`` on stderr and exit code 1. ``tests/test_architecture.py`` checks the order.
"""
