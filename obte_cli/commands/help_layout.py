"""``--help`` that reads at any terminal width.

Typer's rich layout keeps the line breaks of a command's docstring, so at a terminal narrower than the source
lines every sentence breaks twice; and below about 110 columns its option table (name, short name, type and
range, help) leaves the help column a few words wide, cutting long option names and paths with "…". So:

* every paragraph of a command's help is reflowed (its single line breaks become spaces), for either layout;
* below :data:`PLAIN_HELP_BELOW` columns the help is click's plain layout (each option on its line, its help
  wrapped beside it), with the rich markup (``[bold]``) of the examples taken out, paragraphs wrapped at spaces
  only (click would break ``--strategy masked-marginals`` at its hyphen, and an example no longer pastes), and an
  option whose name and choices are wider than the terminal shown by name (its help lists the choices).

:func:`readable_help` is applied to each command as the command line is resolved
(:class:`obte_cli.commands.common.ObteGroup`).
"""

from __future__ import annotations

import re
import shutil

PLAIN_HELP_BELOW = 110  # terminal columns (at 100, a path in the help column of `bench variants` is cut)
_MARKUP = re.compile(r"\[/?bold\]")
PLAIN_TEXT_WIDTH = 76  # click's plain help is 78 columns wide at most (its max_width 80, less 2), text indented 2
PLAIN_OPTION_WIDTH = 72  # an option's names and value wider than this leave no room for the 80 columns


def terminal_columns() -> int:
    """The width help is laid out for: ``COLUMNS`` if set, else the terminal's, else 80 (as rich and click)."""
    return shutil.get_terminal_size((80, 24)).columns


def reflowed(text: str | None) -> str | None:
    """``text`` with the single line breaks inside each paragraph made spaces (paragraphs stay apart; a
    paragraph that starts with click's ``\\b`` keeps its lines)."""
    if not text:
        return text
    paragraphs = re.split(r"\n\s*\n", text.strip("\n"))
    return "\n\n".join(
        p if p.lstrip().startswith("\b") else " ".join(line.strip() for line in p.splitlines()) for p in paragraphs
    )


def readable_help(command) -> None:
    """Reflow ``command``'s help; below :data:`PLAIN_HELP_BELOW` columns, switch it to the plain layout.
    Idempotent: a command resolved twice is changed once."""
    if getattr(command, "_obte_help_done", False):
        return
    command._obte_help_done = True
    import inspect

    command.help = reflowed(inspect.cleandoc(command.help)) if command.help else command.help
    if terminal_columns() < PLAIN_HELP_BELOW and getattr(command, "rich_markup_mode", None) is not None:
        command.rich_markup_mode = None
        if command.help:
            command.help = _plain_paragraphs(_MARKUP.sub("", command.help))
        for param in command.params:
            _narrow_option(param)


def _plain_paragraphs(text: str) -> str:
    """Each paragraph wrapped at spaces only and marked (``\\b``) for click to keep as it is."""
    import textwrap

    return "\n\n".join(
        "\b\n" + "\n".join(textwrap.wrap(p, PLAIN_TEXT_WIDTH, break_on_hyphens=False, break_long_words=False))
        for p in text.split("\n\n")
    )


def _narrow_option(param) -> None:
    """An option whose names and choices (``--strategy <list[wt-marginals|masked-marginals|...]>``) would run
    past the terminal is shown by name (``<strategy>``); its help gets the choices unless it names them all."""
    described = getattr(param, "type_descriptor", None)  # Typer ≥ 0.2x; older Typers keep click's param.type
    found = described.choices if described is not None and described.is_choice else None
    found = found or getattr(getattr(param, "type", None), "choices", None) or ()
    choices = [str(getattr(c, "value", c)) for c in found]
    if param.param_type_name != "option" or getattr(param, "metavar", None) is not None or not choices:
        return
    shown = len(", ".join(param.opts)) + len("|".join(choices)) + len(" <list[]>")
    if shown <= PLAIN_OPTION_WIDTH:
        return
    param.metavar = f"<{param.opts[-1].lstrip('-')}>"
    if not all(c in (param.help or "") for c in choices):
        param.help = f"{param.help or ''} One of: {', '.join(choices)}.".strip()
