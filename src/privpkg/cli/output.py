"""What every ``privpkg`` command shares: the argument parser class, the common options
(``--json``, ``--workspace``) and the output helpers (one-line errors and warnings, JSON, tables).

Commands write results to stdout and diagnostics to stderr, one line each; nothing here ever
prints a secret (callers pass public fields only).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import Any, NoReturn


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'X'?"`` for the closest of ``choices`` to a mistyped ``value`` (difflib's
    default cutoff, as argparse's own suggestion uses), or ``""`` when none is close."""
    import difflib

    close = difflib.get_close_matches(value, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _help_width() -> int:
    """The width argparse gives help (``shutil.get_terminal_size().columns - 2``: ``$COLUMNS``,
    else the terminal's, else 80), without importing shutil, which argparse imports for it in
    every parser and option (with the compression modules shutil imports: a tenth of a build's
    own imports)."""
    import os

    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return (columns or 80) - 2


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, its width found without shutil (:func:`_help_width`)."""

    def __init__(self, prog: str, *args: Any, **kwargs: Any) -> None:
        if len(args) < 3 and kwargs.get("width") is None:
            kwargs["width"] = _help_width()
        super().__init__(prog, *args, **kwargs)


class Parser(argparse.ArgumentParser):
    """argparse with the usage error as one line plus a pointer to ``--help`` (exit 2), and a
    "did you mean" for a mistyped command or choice."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n(see: {self.prog} --help)\n")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # Python 3.11-3.13 suggest nothing; 3.14 suggests only with suggest_on_error=True (the
        # default from 3.15 on), in its own words. One message on every version: ours.
        choices = action.choices
        if choices is None or value in choices:
            return
        names = [str(c) for c in choices]
        hint = did_you_mean(value, names) if isinstance(value, str) else ""
        listed = ", ".join(repr(n) for n in names)
        raise argparse.ArgumentError(action, f"invalid choice: {value!r}{hint} (choose from {listed})")


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def add_workspace_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", "-w", default="default", help="workspace name (default: default)")


def need_subcommand(parser: argparse.ArgumentParser) -> int:
    """A command group run without its action: its help on stderr, exit 2."""
    parser.print_help(sys.stderr)
    return 2


def add_group(sub: Any, name: str, *, help: str, description: str, metavar: str = "ACTION") -> Any:
    """Add the command group ``name`` (``privpkg NAME ACTION ...``) to the subparsers ``sub`` and
    return the subparsers its actions go into; the group alone prints its help and exits 2.
    When the command line names one action (``sub.only_action``, set by the CLI), only that
    action's parser is built (see :class:`OneAction`)."""
    group = sub.add_parser(name, help=help, description=description)
    actions = group.add_subparsers(dest=metavar.lower(), metavar=metavar, parser_class=Parser)
    group.set_defaults(func=lambda a: need_subcommand(group))
    only = getattr(sub, "only_action", None)
    return OneAction(actions, only) if only is not None else actions


class OneAction:
    """A group's subparsers that build the parser of one action, ``wanted``, and give every
    other action a :class:`_Sink`: a command line naming ``wanted`` parses, prints help and fails
    the same with it, without the cost of building the others. ``found`` tells whether the group
    has ``wanted`` at all (if not, the CLI builds the whole parser, for its error)."""

    def __init__(self, actions: Any, wanted: str) -> None:
        self._actions = actions
        self._wanted = wanted
        self.found = False

    @property
    def wanted(self) -> str:
        return self._wanted

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if name == self._wanted or self._wanted in kwargs.get("aliases", ()):
            self.found = True
            return self._actions.add_parser(name, **kwargs)
        return _Sink()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._actions, name)


class _Sink:
    """Takes an unbuilt action's ``add_argument``, ``set_defaults``, groups... and keeps nothing."""

    def __getattr__(self, name: str) -> Any:
        return self._take

    def _take(self, *args: Any, **kwargs: Any) -> _Sink:
        return self


def counted(n: int, unit: str, plural: str | None = None) -> str:
    """``1 wheel``, ``2 wheels``: a count with its unit in the right number (``plural`` when it
    is not the unit plus "s")."""
    return f"{n} {unit}" if n == 1 else f"{n} {plural or unit + 's'}"


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def print_json(value: Any) -> None:
    import json  # only --json output needs it: every other command starts without it

    out(json.dumps(value, indent=2))


def table(rows: list[list[str]]) -> None:
    """Left-aligned columns, two spaces apart; the first row is the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def warn(lines: Iterable[str]) -> None:
    """``privpkg: warning: LINE`` on stderr for each line (problems that did not stop the command)."""
    for line in lines:
        sys.stderr.write(f"privpkg: warning: {line}\n")


def error(message: str, code: int) -> int:
    """``privpkg: error: MESSAGE`` on stderr; returns ``code`` for the caller to exit with."""
    try:
        sys.stderr.write(f"privpkg: error: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # stderr itself is gone: the exit code is all that is left
    return code


def os_error(exc: OSError) -> str:
    """An OSError in words: strerror and the file name only (``str(exc)`` of some OSErrors
    embeds a whole request or URL)."""
    what = exc.strerror or type(exc).__name__
    return f"{what}: {exc.filename}" if exc.filename else what
