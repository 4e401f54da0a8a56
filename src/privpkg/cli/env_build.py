"""``privpkg env build|path|run|prune``: local environments built from a lock, once, and reused
(:mod:`privpkg.environments.build`; the cache is :mod:`privpkg.environments.cache`).

``NAME[:VERSION|@LABEL]`` names a registered environment (its lock is read from the workspace,
:func:`lock_of`); ``--lock FILE`` builds from a ``pylock.toml`` or a conda explicit list directly. Imports stay inside
the command functions: a cache hit of ``env build`` is meant to take well under 100 ms in all.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privpkg.cli.output import add_workspace_option, counted, out
from privpkg.errors import shown

if TYPE_CHECKING:
    from privpkg.environments.build import Parts


def lock_of(args: argparse.Namespace) -> str | Path | Parts:
    """The lock to build: ``--lock FILE``, or the lock of the registered ``NAME[:VERSION|@LABEL]``
    in ``--workspace``: its ``conda-PLATFORM.txt`` for this platform when it has a conda part
    (with its ``pylock.toml`` when it has a pip part too), else its ``pylock.toml``."""
    from privpkg.errors import UsageError

    if args.lock and args.ref:
        raise UsageError(f"give NAME[:VERSION] or --lock FILE, not both (got {shown(args.ref, 60)} and --lock {shown(args.lock[0], 80)})")
    if args.lock:
        if len(args.lock) == 1:
            return Path(args.lock[0])
        from privpkg.environments.build import parts_of

        return parts_of([Path(f) for f in args.lock])
    if not args.ref:
        raise UsageError("name the environment (NAME[:VERSION] or NAME@LABEL) or give --lock FILE")
    from privpkg.environments.build import lock_of_version
    from privpkg.environments.registry import open_registry
    from privpkg.environments.spec import parse_target

    name, version, label = parse_target(args.ref)
    _, store = open_registry(args.workspace)
    return lock_of_version(store, name, version, label)


@contextmanager
def naming_lock(files: list[str] | None) -> Iterator[None]:
    """A lock's errors say ``pylock.toml``, the name it has in an environment: given as
    ``--lock X``, they name X (and, when X is not TOML at all, what --lock takes)."""
    from privpkg.errors import UsageError

    try:
        yield
    except UsageError as exc:
        text = str(exc)
        if not files or len(files) != 1 or files[0] == "pylock.toml" or not text.startswith("pylock.toml"):
            raise
        hint = " (--lock takes a pylock.toml or a conda explicit list)" if "not valid TOML" in text else ""
        raise UsageError(shown(files[0]) + text[len("pylock.toml"):] + hint) from None


def cmd_build(args: argparse.Namespace) -> int:
    from privpkg.environments.build import build

    notes: list[str] = []
    with naming_lock(args.lock):
        found = build(lock_of(args), python=args.python, link=Path(args.link) if args.link else None, installer=args.installer,
                      report=notes.append)
    _tell(notes)
    out(str(found))
    return 0


def _tell(notes: list[str]) -> None:
    """What made a new conda prefix, on stderr once the build succeeded (a failure stays one
    line; stdout stays the path alone, or the command's own)."""
    import sys

    for line in notes:
        sys.stderr.write(f"privpkg: {line}\n")


def cmd_path(args: argparse.Namespace) -> int:
    from privpkg.environments.build import find
    from privpkg.errors import NotFoundError

    with naming_lock(args.lock):
        found = find(lock_of(args), python=args.python)
    if found is None:
        raise NotFoundError("not built yet for this interpreter: run privpkg env build first")
    out(str(found))
    return 0


#: The options of ``env run`` that may come between NAME and the command; each takes a value.
_RUN_OPTIONS = ("--workspace", "-w", "--lock", "--python", "--installer")


def _long_option(name: str) -> str:
    """``name``, or the one option of :data:`_RUN_OPTIONS` (and ``--help``) it abbreviates, as
    argparse accepts ``--work`` for ``--workspace`` before NAME."""
    if not name.startswith("--") or name in _RUN_OPTIONS:
        return name
    found = [o for o in (*_RUN_OPTIONS, "--help") if o.startswith(name) and o.startswith("--")]
    return found[0] if len(found) == 1 else name


def _print_run_help() -> None:
    """``privpkg env run --help``, for ``-h`` given after NAME."""
    import argparse

    from privpkg.cli import build_parser

    parser: argparse.ArgumentParser = build_parser("env", "run")
    for name in ("env", "run"):
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    parser.print_help()


def _split_run(words: list[str]) -> tuple[list[str], list[str]]:
    """argparse's remainder swallows every option given after NAME (``run NAME -w WS -- CMD``,
    or ``run NAME -w WS CMD``): the options up to ``--`` or the first word that is not an option
    (or an option's value) are ``env run``'s own; the command is what follows. An option CMD
    takes (``-c``) comes after CMD's first word, so it stays CMD's."""
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            return words[:i], words[i + 1 :]
        if not word.startswith("-"):
            break
        name = _long_option(word.split("=", 1)[0])
        joined = "=" in word or (name.startswith("-w") and len(name) > 2 and not name.startswith("--"))
        i += 1 if joined or name not in _RUN_OPTIONS else 2
    return words[:i], words[i:]


def cmd_run(args: argparse.Namespace) -> int:
    from privpkg.environments.build import build, run_in

    early_lock = args.lock
    after = getattr(args, "after_dashes", None)  # the words after the first `--`, as typed
    # `env run --lock F CMD ...`: argparse gave CMD's first word to the optional NAME, and the
    # rest of the words are all CMD's (its own options included). But `--lock F WORD -- CMD`
    # names an environment as well: lock_of refuses the two.
    if early_lock and args.ref is not None and (after is None or args.command):
        options: list[str] = []
        command, args.ref = [args.ref, *args.command], None
    else:
        options, command = _split_run(list(args.command))
    if after is not None:
        # Before `--`: NAME and env run's options, or already the command (`NAME CMD -- ...`:
        # that `--` is the command's own).
        command = [*command, "--", *after] if command else after
    if any(_long_option(o) in ("-h", "--help") for o in options):
        _print_run_help()
        return 0
    if options:
        from privpkg.cli.output import Parser

        late = Parser(prog="privpkg env run", add_help=False)
        add_workspace_option(late)
        late.add_argument("--lock", action="append")
        late.add_argument("--python")
        late.add_argument("--installer", choices=("uv", "pip"))
        # Given after NAME, these win over the defaults (an option given twice: the later one).
        late.set_defaults(**{k: getattr(args, k) for k in ("workspace", "lock", "python", "installer")})
        late.parse_args(options, namespace=args)
    if not command:  # before a build that may take minutes
        from privpkg.errors import UsageError

        raise UsageError("no command to run: privpkg env run NAME [--workspace W] -- CMD [ARGS...]")
    notes: list[str] = []
    with naming_lock(args.lock):
        found = build(lock_of(args), python=args.python, installer=args.installer, report=notes.append)
    _tell(notes)
    return run_in(found, command)


def cmd_prune(args: argparse.Namespace) -> int:
    import math

    from privpkg.environments.cache import prune

    if args.older_than is not None and not (math.isfinite(args.older_than) and args.older_than >= 0):
        from privpkg.errors import UsageError

        raise UsageError(f"--older-than must be 0 or more days, got {args.older_than:g}")
    if args.workspace is not None:  # only validated: see add_parsers
        from privpkg.workspace import get_workspace

        get_workspace(args.workspace)
    done = prune(args.older_than, caches=args.caches)
    out(f"removed {counted(len(done.builds), 'unreferenced build')}"
        + (f" and forgot {counted(done.pointers, 'unused key')}" if done.pointers else "")
        + (f"; emptied the fetched files and the uv and py-rattler caches ({_size(done.freed)} freed)" if done.freed is not None else "")
        # Said, not emptied: a link may point anywhere (a folder of the user's, $HOME).
        + "".join(f"; left {name}, a symbolic link" for name in done.links))
    return 0


def _size(n: int) -> str:
    """``n`` bytes in words, as ``du -h`` rounds them (decimal units)."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _common(s: Any, installer: bool = True) -> None:
    s.add_argument("ref", nargs="?", metavar="NAME[:VERSION|@LABEL]", help="a registered environment (NAME, NAME:N or NAME@LABEL; default: latest)")
    add_workspace_option(s)
    s.add_argument("--lock", metavar="FILE", action="append",
                   help="build from this pylock.toml (or conda explicit list; both, given twice) instead of a registered environment")
    s.add_argument("--python", metavar="P", help="the interpreter (a path or a command; default: the one privpkg runs on)")
    if installer:
        s.add_argument("--installer", choices=("uv", "pip"), help="install with uv (the default when uv is installed) or pip")


def add_parsers(actions: Any) -> None:
    """Add build, path, run and prune to ``privpkg env``'s subparsers."""
    s = actions.add_parser("build", help="build an environment from its lock (cached: unchanged locks build once)",
                           description="Build a venv (a conda prefix for a conda spec) from the environment's lock: private artifacts fetched and checked against "
                           "the lock's sha256, installed offline. The build is cached by the artifacts and the interpreter; "
                           "prints its path.")
    _common(s)
    s.add_argument("--link", metavar="DIR", help="also make DIR a symbolic link to the build")
    s.set_defaults(func=cmd_build)
    s = actions.add_parser("path", help="print the path of an environment's cached build", description="Print the path of the cached build (builds nothing).")
    _common(s, installer=False)
    s.set_defaults(func=cmd_path)
    s = actions.add_parser("run", help="run a command in an environment (built first if needed)",
                           description="Run CMD in the environment (its bin first on PATH, VIRTUAL_ENV set); exits with CMD's code.")
    _common(s)
    s.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD", help="the command and its arguments, after --")
    s.set_defaults(func=cmd_run)
    s = actions.add_parser("prune", help="remove builds no key points to", description="Remove builds no key points to (killed builds "
                           "included); with --older-than, first forget keys unused for that many days. The cache is per machine, shared "
                           "by every workspace: --workspace is only checked, and prune removes what no key of any workspace points to.")
    s.add_argument("--older-than", type=float, metavar="DAYS", help="also forget builds not used for DAYS days")
    s.add_argument("--caches", action="store_true",
                   help="also empty the caches builds are made from (fetched files, uv's and py-rattler's): the builds kept still "
                        "work, the next build fetches and unpacks again; refused while a build runs")
    # Accepted as every env verb takes it, and checked (an unknown workspace is an error); the
    # build cache is per machine and shared by all workspaces, so prune never reads W's registry.
    add_workspace_option(s)
    s.set_defaults(func=cmd_prune, workspace=None)  # prune needs no workspace: none given, none checked
