"""The computing core of obte: tokenizers, model, data, training and I/O.

Nothing in this package prints or depends on Typer; errors a user can cause are raised as
:class:`obte_cli.engine.errors.ObteError` subclasses with a one-line message, which the CLI turns into
``error: ...`` on stderr and exit code 1.
"""
