"""``privpkg env lock NAME [--upgrade] [--package P ...]``: lock an environment again, keeping
every unpinned requirement where the previous lock put it unless told to move it, and make a new
version only when the lock changed (:func:`privpkg.environments.locking.lock_spec`).

NAME is a registered environment (``NAME``, ``NAME:N``, ``NAME@LABEL``: the new version, when the
lock changed, is the environment's next one, registered through the registry's conditional
writes), or a definition directory (``privpkg env create``'s output: its ``definition.json``),
whose lock files (``pylock.toml``, ``conda-PLATFORM.txt``) are rewritten in place when they
change, under a file lock.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from privpkg.cli.output import add_workspace_option, out
from privpkg.errors import UsageError, shown

DEFINITION = "definition.json"
LOCK_FILE = ".privpkg-env-lock"
MAX_DEFINITION_BYTES = 4 * 1024 * 1024


class Definition(NamedTuple):
    label: str  # what messages call it
    spec: dict[str, Any]  # the fields locking.lock_spec reads
    previous: dict[str, str]  # the current lock files, by name
    directory: Path | None  # a definition directory, or None for a registered environment
    registered: Any = None  # (storage, Version) of a registered environment
    sources: tuple[tuple[str, bytes], ...] = ()  # the spec files as given


def _read_text(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise UsageError(f"{path} is missing") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise UsageError(f"{path} is larger than {limit >> 20} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None


def _is_directory_ref(ref: str) -> bool:
    """``ref`` names a definition directory (one holding ``definition.json``, or written as a
    path), not a registered environment: a folder that happens to share an environment's name
    does not shadow it."""
    return os.sep in ref or "/" in ref or ref.startswith(".") or (Path(ref) / DEFINITION).is_file()


def load_definition(workspace: str, ref: str) -> Definition:
    """The environment ``ref`` names and its current locks: a definition directory when ``ref``
    is one, else the version ``ref`` names in ``workspace``'s registry."""
    folder = Path(ref)
    if not _is_directory_ref(ref):
        from privpkg.environments import registry
        from privpkg.environments.api import open_registry
        from privpkg.environments.spec import parse_target

        if "/" in ref or ref.startswith("."):
            raise UsageError(f"no definition directory {shown(ref, 120)}")
        name, version, label = parse_target(ref)
        _, store = open_registry(workspace)
        rec = registry.get(store, name, version, label)
        return Definition(f"{rec.name}:{rec.version}", rec.spec.definition(), rec.locks, None, (store, rec), rec.spec.sources)
    from privpkg.environments.api import Environment

    env = Environment.load_from_directory(folder)  # the same checks as a registered definition's
    return Definition(env.name, env.spec.definition(), dict(env.locks), folder, None, env.spec.sources)


def store_locks(defn: Definition, files: dict[str, str], spec: Any = None) -> str:
    """Store changed locks and say where: a registered environment's spec with ``files`` as its
    next version (the registry's conditional create decides between racing writers); a
    definition directory's files replaced (atomically, each; stale lock files of platforms no
    longer locked removed). ``spec``: the spec when ``--platform`` changed it (its new
    ``definition.json`` goes with the locks)."""
    from privpkg.fileio import shared_mode, write_atomic

    if defn.registered is not None:
        from privpkg.environments import registry

        store, rec = defn.registered
        new = registry.register(store, spec or rec.spec, files)
        return f"{new.name}:{new.version}"
    assert defn.directory is not None
    if spec is not None:
        write_atomic(defn.directory / DEFINITION, spec.definition_bytes(), shared_mode())
    for name, text in files.items():
        write_atomic(defn.directory / name, text.encode(), shared_mode())
    for name in set(defn.previous) - set(files):
        (defn.directory / name).unlink(missing_ok=True)
    return str(defn.directory)


def exclusive(workspace: str, ref: str) -> AbstractContextManager[object]:
    """Held while one ``env lock`` reads, locks and stores: nothing for the registry (its
    conditional writes decide between racing writers); a definition directory gets a file lock
    (``.privpkg-env-lock`` inside it, so every process and user that can write the directory
    meets the same lock), held as long as a lock can take, and removed when released (a
    definition directory is often committed: no stray file is left in it)."""
    from contextlib import nullcontext

    folder = Path(ref)
    # Only in a definition directory: never a stray lock file in a folder that is not one.
    return _held_and_removed(folder / LOCK_FILE) if _is_directory_ref(ref) and (folder / DEFINITION).is_file() else nullcontext()


@contextmanager
def _held_and_removed(path: Path) -> Iterator[None]:
    """:func:`privpkg.fileio.file_lock` on ``path``, removing ``path`` while still holding it.
    A waiter may have opened the file just removed: once it gets the lock, it checks that its
    descriptor is still the file at ``path`` (else it locked a removed file, which excludes no
    one) and tries again, so two holders never overlap."""
    from privpkg.environments.locking import TIMEOUT
    from privpkg.fileio import file_lock

    while True:
        with file_lock(path, timeout=TIMEOUT) as fd:
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
            except FileNotFoundError:
                same = False
            if not same:
                continue  # released by the with; locked a removed file: again, on the new one
            try:
                yield
            finally:
                # While held: the next holder makes a new one. Only the empty file a lock makes,
                # still at ``path``: a file of that name with something in it is not ours.
                try:
                    st = os.fstat(fd)
                    if st.st_size == 0 and os.path.samestat(st, os.stat(path, follow_symlinks=False)):
                        path.unlink()
                except FileNotFoundError:
                    pass
            return


def _count(name: str, text: str) -> int:
    if name == "pylock.toml":
        from privpkg.environments import pylock

        return len(pylock.load(text).packages)
    from privpkg.environments import condalock

    return len(condalock.load_explicit(text))


def _check_packages(names: list[str], defn: Definition) -> None:
    """``--package`` names: each a valid project name that the spec or the current lock names
    (one line, exit 2, otherwise: a typo would move nothing and say nothing)."""
    import re

    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    from privpkg.environments.locking import pip_lines

    known: set[str] = set()
    for line in pip_lines(defn.spec):
        if line.strip() and not line.lstrip().startswith("-"):
            try:
                known.add(canonicalize_name(Requirement(line).name))
            except InvalidRequirement:
                pass  # the lock says what is wrong with it
    for dep in (defn.spec.get("conda") or {}).get("dependencies") or []:
        m = re.match(r"\s*(?:[^\s:]+::)?([A-Za-z0-9_.-]+)", dep) if isinstance(dep, str) else None  # [CHANNEL::]NAME...
        if m:
            known.add(canonicalize_name(m.group(1)))
    for name, text in defn.previous.items():
        try:
            if name == "pylock.toml":
                from privpkg.environments import pylock

                known.update(canonicalize_name(p.name) for p in pylock.load(text, known_secrets=False).packages)
            else:
                from privpkg.environments import condalock

                known.update(canonicalize_name(a.name) for a in condalock.load_explicit(text))
        except UsageError:
            pass  # a broken lock is reported by the lock itself
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", name):
            raise UsageError(f"--package {shown(name, 60)!r} is not a project name")
        if canonicalize_name(name) not in known:
            from privpkg.cli.output import did_you_mean

            raise UsageError(f"--package {name}: {defn.label} neither requires nor locks it{did_you_mean(canonicalize_name(name), sorted(known))}")


def cmd_lock(args: argparse.Namespace) -> int:
    from privpkg.environments.build import build_conda
    from privpkg.environments.locking import lock_spec

    # `--upgrade --package P` (the syntax) and `--package P` alone both move P only;
    # `--upgrade` alone moves every unpinned requirement.
    upgrade: bool | list[str] = list(args.package) if args.package else bool(args.upgrade)
    with exclusive(args.workspace, args.name):
        defn = load_definition(args.workspace, args.name)
        _check_packages(list(args.package), defn)
        spec, definition = None, defn.spec
        if args.platform:  # kept in the definition: later locks lock those platforms too
            from privpkg.environments.spec import Spec

            before = Spec.from_definition(defn.spec, defn.sources)
            after = before.with_platforms(args.platform)
            spec, definition = (None, defn.spec) if after is before else (after, after.definition())
        # build_conda: a spec with both parts locks its pip part for its conda prefix's python.
        files = lock_spec(definition, previous=defn.previous, upgrade=upgrade, conda_prefix=build_conda)
        summary = ", ".join(f"{name} ({_count(name, text)} packages)" for name, text in sorted(files.items()))
        if files == defn.previous and spec is None:
            out(f"{defn.label}: the lock is unchanged, no new version: {summary}")
            return 0
        where = store_locks(defn, files, spec)
    out(f"{defn.label}: locked {summary}" + (f"; registered as {where}" if defn.registered is not None else ""))
    return 0


def add_parsers(actions: Any) -> None:
    """Add ``lock`` to ``privpkg env``'s subparsers."""
    p = actions.add_parser(
        "lock", help="lock an environment again (a new version only if the lock changed)",
        description="Lock the environment's pip part (PEP 751 pylock.toml, made by pip lock: privpkg:// wheels with their "
        "sha256, feed files by their plain URL) and its conda part (a CEP 23 explicit list per platform, solved by "
        "py-rattler). Unpinned requirements stay at the previous lock's versions unless --upgrade (all) or --package P (P only, with or without --upgrade; repeatable). "
        "A lock holding a signature, a password in user info or a local file is refused.")
    p.add_argument("name", metavar="NAME", help="a registered environment (NAME, NAME:N, NAME@LABEL) or a definition directory")
    p.add_argument("--upgrade", action="store_true", help="move every unpinned requirement to its newest allowed version")
    p.add_argument("--package", "-P", action="append", default=[], metavar="P", help="move only P (repeatable; with --upgrade too, P only)")
    p.add_argument("--platform", action="append", default=[], metavar="P",
                   help="also lock the conda part for conda platform P (repeatable; added to the definition's platforms, so "
                   "later locks keep it); a pip part cannot be locked for another platform")
    add_workspace_option(p)
    p.set_defaults(func=cmd_lock)
