"""The ``privpkg`` command line (the ``privpkg`` script, ``python -m privpkg``).

One module per command group (:mod:`.connection`, :mod:`.workspace`, :mod:`.wheel`,
:mod:`.env`, :mod:`.resolve`, :mod:`.doctor`, :mod:`.setup`, :mod:`.demo`), each adding its parser and
holding its small command functions; :mod:`.output` holds the shared options and output helpers.
This module builds the parser and runs one command.

Every command exits 0 on success, 1 when something was not found or a check failed, and 2 on a
usage error. User mistakes print one line, ``privpkg: error: ...``, never a traceback. Secrets
are read from stdin (when it is not a terminal) or a hidden prompt, never from argv.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from privpkg import __version__
from privpkg.cli.output import Parser, error, os_error
from privpkg.errors import PrivpkgError
from privpkg.interrupts import Terminated, terminate_as_interrupt

__all__ = ["GROUPS", "build_parser", "main", "parser_for"]

#: The command groups, each a module of this package adding the command of its name, in the
#: order of ``privpkg --help``.
GROUPS = ("auth", "connection", "workspace", "wheel", "env", "resolve", "doctor", "setup", "demo")


def parser_for(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser ``argv`` needs: of its command group and action alone when it names them
    (``privpkg GROUP ACTION ...``), else of every command. It parses, prints help and fails the
    same as the whole parser, without importing the other groups and building the parsers of
    their actions (a third of a cache hit of ``env build``)."""
    if not argv or argv[0] not in GROUPS:
        return build_parser()
    if len(argv) < 2 or argv[1].startswith("-"):
        return build_parser(argv[0])
    parser = build_parser(argv[0], argv[1])
    return parser if getattr(parser, "found_action", False) else build_parser(argv[0])


#: Commands whose words after ``--`` are a command they run (``privpkg env run NAME -- CMD``).
_RUNS_A_COMMAND = {("env", "run")}


def build_parser(only: str | None = None, action: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of the command group ``only`` alone, or of its
    ``action`` alone (the group's other actions are not built: :class:`.output.OneAction`;
    ``found_action`` on the parser tells whether the group has ``action``)."""
    import importlib

    p = Parser(
        prog="privpkg",
        description="Private Python packages with plain pip install: stored feed PATs served through keyring.",
        # No file names: an installed wheel has no README.md beside it; the help is the manual.
        epilog="Run `privpkg demo` for a self-contained walk-through, and `privpkg COMMAND --help` for each "
        "command's options and examples (`privpkg doctor` explains what stands between pip and a feed).",
    )
    p.add_argument("--version", action="version", version=f"privpkg {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    # The order of `privpkg --help`.
    sub.only_action = action if only is not None else None  # type: ignore[attr-defined]  # read by output.add_group
    for group in GROUPS if only is None else (only,):
        importlib.import_module(f"privpkg.cli.{group}").add_parser(sub)
    if only is not None and action is not None:
        # The group's OneAction is the subparsers action its parser holds.
        group_parser = sub.choices[only]
        inner = [a for a in group_parser._actions if isinstance(a, argparse._SubParsersAction)]
        p.found_action = bool(inner) and action in inner[0].choices  # type: ignore[attr-defined]
    return p


class _Stdout:
    """Stands in for ``sys.stdout`` while a command runs and remembers a failed write or flush,
    so :func:`main` can tell "the output cannot be written" (a closed pipe, /dev/full) from any
    other OSError. Everything else is delegated to the real stream."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.failed: OSError | None = None

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            self.failed = exc
            raise

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            self.failed = exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _ClosedStdout:
    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "stdout is closed")

    def flush(self) -> None:
        pass


def _silence_stdout(stream: Any) -> None:
    """Point fd 1 at /dev/null, so the interpreter's flush of what is left in ``sys.stdout`` at
    exit cannot fail again and print "Exception ignored ... BrokenPipeError" (the fix the
    Python docs give for SIGPIPE)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # not a real file (e.g. captured in a test): nothing will flush it at exit


def _unwritable_hint(message: str, err: int | None) -> str:
    from privpkg import paths

    return paths.unwritable_hint(message, err)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Every failure is one ``privpkg: error:`` line and an exit code, never a
    traceback: user mistakes (PrivpkgError's exit code), Ctrl-C (130), SIGTERM (143, unwinding
    as Ctrl-C does), an OSError (1), a stdout
    that cannot be written (1), and a reader that closed the pipe (0: it stopped reading on
    purpose, as ``| head -1`` does; the command's work is done)."""
    real = sys.stdout
    # Started with fd 1 closed (`>&-`), Python gives sys.stdout None: a write is then a failed
    # write of the output (one line, exit 1), not an AttributeError's traceback.
    out = _Stdout(real if real is not None else _ClosedStdout())
    if out is not None:
        sys.stdout = out
    try:
        try:
            with terminate_as_interrupt():
                code = _run(argv)
        except SystemExit:
            # argparse swallows a failed write of --help/--version text; report it like any other.
            if out is None or out.failed is None:
                raise
            code = 0
        if out is not None and out.failed is not None:  # a write failed and its error was swallowed
            return _output_failed(out.failed, real)
        return code
    except PrivpkgError as exc:
        from privpkg.fileio import FileWriteError

        # Only a write that failed: a file privpkg could not read (a key left root's by sudo) is
        # not fixed by moving the folder, which would only start a new key beside the old store.
        hint = _unwritable_hint(str(exc), exc.errno) if isinstance(exc, FileWriteError) else ""
        return error(str(exc) + hint, exc.exit_code)
    except KeyboardInterrupt as exc:
        # SIGTERM (a cancelled CI job) unwinds as Ctrl-C does, so the same cleanups run.
        terminated = isinstance(exc, Terminated)
        try:
            sys.stderr.write("privpkg: terminated\n" if terminated else "privpkg: interrupted\n")
        except (OSError, ValueError):
            pass
        return 143 if terminated else 130
    except OSError as exc:
        if out is not None and out.failed is not None:
            return _output_failed(out.failed, real)
        message = os_error(exc)
        # EROFS refuses writes only; EACCES and EPERM a write when the file they name is not
        # there yet (a folder or file privpkg was creating), else possibly a read.
        created = exc.errno == errno.EROFS or (isinstance(exc.filename, str) and not os.path.lexists(exc.filename))
        return error(message + (_unwritable_hint(message, exc.errno) if created else ""), 1)
    except RuntimeError:
        # pathlib's and platformdirs' "could not determine the home directory": a CI container
        # run as a uid with no passwd entry and no $HOME (docker run --user 1001).
        from privpkg import paths

        if not paths.home_unknown():
            raise
        return error(paths.NO_HOME, 1)
    finally:
        if out is not None and sys.stdout is out:
            sys.stdout = real


def _unrecognized(parser: argparse.ArgumentParser, args: argparse.Namespace, extras: list[str]) -> None:
    """What ``parse_args`` does with arguments nothing took, but said by the parser of the
    command they were given to (its usage and ``--help``, not the top level's), with a "did you
    mean" for a mistyped option of that command."""
    import difflib

    inner = parser
    while True:
        subs = [a for a in inner._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, subs[0].dest, None) if subs and subs[0].dest else None
        if not subs or chosen not in subs[0].choices:
            break
        inner = subs[0].choices[chosen]
    hint = ""
    for extra in extras:
        if extra.startswith("--"):
            close = difflib.get_close_matches(extra.partition("=")[0], [o for o in inner._option_string_actions if o.startswith("--")], n=1)
            if close:
                hint = f"; did you mean {close[0]!r}?"
                break
    inner.error(f"unrecognized arguments: {' '.join(extras)}{hint}")


def _output_failed(exc: OSError, stream: Any) -> int:
    _silence_stdout(stream)
    if isinstance(exc, BrokenPipeError):
        return 0  # the reader closed the pipe: it has read all it wanted
    return error(f"cannot write the output: {os_error(exc)}", 1)


def _run(argv: Sequence[str] | None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = parser_for(argv)
    tail: list[str] | None = None
    if tuple(argv[:2]) in _RUNS_A_COMMAND and "--" in argv:
        # The words after the first `--` are a command to run, handed on untouched: argparse's
        # remainder drops or keeps that `--` (differently across Python versions) and would
        # take the command's own options for privpkg's.
        cut = list(argv).index("--")
        argv, tail = argv[:cut], list(argv[cut + 1 :])
    try:
        args, extras = parser.parse_known_args(argv)
        if extras:
            _unrecognized(parser, args, extras)
        args.after_dashes = tail
    except SystemExit:
        # --help, --version: their text is still buffered; flush it here so a closed pipe is
        # handled by main() and not by the interpreter's shutdown ("Exception ignored ...").
        sys.stdout.flush()
        raise
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    code = func(args)
    sys.stdout.flush()  # same reason: a failed write is reported by main()
    return code

