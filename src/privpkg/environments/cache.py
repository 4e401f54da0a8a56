"""The build cache: keys, the interpreter's identity, build directories, pointers and pruning.

A build's **key** is a sha256 over the sorted ``(name, version, filename, sha256)`` of the
artifacts the lock selects for an interpreter, plus that interpreter's identity
(implementation, full version, platform, ABI, real path of the base interpreter); never the
environment's name or version, so the same lock made by pip or by uv gives the same key.

Layout under :func:`root` (the platformdirs user cache dir's ``envs``, or
``$PRIVPKG_HOME/cache/envs``)::

    builds/<key16>-<random>/   a venv or prefix, built where it stays (it embeds its path)
    keys/<key>                 the pointer: the name of the complete build, one line
    memo/<sha256>              lock text + interpreter -> key, so a hit skips reading the lock
    locks/                     flock files: one per key (one builder at a time), one per build
    wheels/<sha256>/<file>     the fetched artifacts, content-addressed (uv caches them by path)
    tags/<sha256>.json         the running interpreter's wheel tags (:func:`current_tags`)

A build's pointer is written (atomically, :func:`privpkg.fileio.write_atomic`) only after the
build is complete, so a killed build is never a hit: its directory is unreferenced and
:func:`prune` removes it. A build in progress holds its own lock file, which prune respects.
An interrupted build (Ctrl-C) is kept if its pointer was already renamed into place, else
renamed aside and removed (:func:`_discard`).
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from privpkg.errors import PrivpkgError, UsageError, shown

if TYPE_CHECKING:
    from privpkg.environments.pylock import Artifact

#: The pointer format's version: a change here makes every old pointer a miss.
FORMAT = "1"


class Interpreter(NamedTuple):
    """What a build depends on in its interpreter; ``executable`` is what ``uv venv`` gets."""

    implementation: str
    version: str  # sys.version, in full (a rebuilt 3.12.3 differs from another 3.12.3)
    platform: str  # sysconfig.get_platform()
    soabi: str
    base: str  # the real path of the base interpreter (a venv's python names its base)
    executable: str
    platlibdir: str = "lib"  # sys.platlibdir: "lib64" on Fedora's and SUSE's own Pythons (not identity: the layout)

    def identity(self) -> list[str]:
        return [self.implementation, self.version, self.platform, self.soabi, self.base]


#: Run in another interpreter (``--python``) to read its identity: standard library only.
_IDENTITY = (
    "import json, os, sys, sysconfig; "
    "print(json.dumps([sys.implementation.name, sys.version, sysconfig.get_platform(), "
    "sysconfig.get_config_var('SOABI') or '', os.path.realpath(getattr(sys, '_base_executable', None) or sys.executable), "
    "sys.executable, getattr(sys, 'platlibdir', 'lib')]))"
)


def interpreter(python: str | None = None) -> Interpreter:
    """The identity of ``python`` (a path or a command on PATH; asked in a subprocess), or of the
    interpreter privpkg runs on (its base interpreter, read in-process). One-line PrivpkgError
    for one that cannot be run."""
    if python is None:
        import sysconfig

        base = getattr(sys, "_base_executable", None) or sys.executable
        real = os.path.realpath(base)
        return Interpreter(sys.implementation.name, sys.version, sysconfig.get_platform(),
                           sysconfig.get_config_var("SOABI") or "", real, real, sys.platlibdir)
    import json
    import shutil
    import subprocess

    exe = python if os.sep in python else shutil.which(python)
    if not exe or not os.path.isfile(exe):
        raise UsageError(f"--python {shown(python)}: no such interpreter")
    try:
        res = subprocess.run([exe, "-I", "-S", "-c", _IDENTITY], capture_output=True, text=True, timeout=60, check=False)
        values = json.loads(res.stdout) if res.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        values = None
    if not isinstance(values, list) or len(values) != 7 or not all(isinstance(v, str) for v in values):
        raise UsageError(f"--python {shown(python)}: cannot run it as a Python interpreter")
    found = Interpreter(*values)
    release = found.version.split(None, 1)[0] if found.version else ""
    if found.implementation == "cpython" and _older_than(release, (3, 9)):
        # packaging, which reads a build's wheel tags in the interpreter itself, needs 3.9.
        raise UsageError(f"--python {shown(python)} is Python {shown(release, 20)}; environments are built for Python 3.9 or newer")
    return found


def _older_than(release: str, minimum: tuple[int, int]) -> bool:
    parts = release.split(".")
    try:
        return (int(parts[0]), int(parts[1])) < minimum
    except (IndexError, ValueError):
        return False


def root() -> Path:
    from privpkg import paths

    return paths.cache_dir() / "envs"


def _digest(*parts: str) -> str:
    from privpkg.environments.digests import sha256

    h = sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()


def key(artifacts: Sequence[Artifact], python: Interpreter) -> str:
    """The build's key (module docstring): the same for any lock selecting the same files."""
    rows = sorted((a.name, a.version, a.filename, a.sha256) for a in artifacts)
    return _digest(FORMAT, *python.identity(), *("\t".join(r) for r in rows))


def memo_id(lock_text: str, python: Interpreter) -> str:
    """Names the memo of ``lock_text``'s key for ``python``: lets a hit skip parsing the lock.
    It holds this machine's facts that wheel tags depend on (:func:`machine_facts`): a cache
    shared by machines with another C library never hands one the other's selection."""
    return _digest(FORMAT, "memo", *python.identity(), *machine_facts(), lock_text)


def machine_facts() -> list[str]:
    """What a Python's wheel tags depend on besides the interpreter: the OS, the machine and the
    GNU C library's version ("" where there is none); and, but on Linux (where packaging reads
    the C library, not the kernel), the OS release (macOS's version names its wheels)."""
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        libc = ""
    if not hasattr(os, "uname"):
        return [sys.platform, libc]
    uname = os.uname()
    return [uname.sysname, "" if uname.sysname == "Linux" else uname.release, uname.machine, libc]


def current_tags() -> tuple[str, ...]:
    """The running interpreter's wheel tags (:meth:`pylock.Target.current_tags`, packaging's
    ``sys_tags``: about 25 ms with its imports, a third of a build's own work), remembered under
    ``tags/`` by what they are made of: the interpreter's identity, :func:`machine_facts` and
    packaging's version. A copy that cannot be read is computed again; one that cannot be
    written is not kept. Never kept where packaging asks more than these: on Linux without GNU
    libc (musl's version is read from its loader), or with a ``_manylinux`` module on the path
    (PEP 600's override, whose answer may change at any time)."""
    import json

    import packaging  # its __init__ alone: the version

    from privpkg.environments.pylock import Target

    facts = machine_facts()
    if sys.platform.startswith("linux") and (not facts[-1] or _has_manylinux_override()):
        return Target.current_tags()
    path = root() / "tags" / f"{_digest(FORMAT, 'tags', *interpreter(None).identity(), *facts, packaging.__version__)[:32]}.json"
    try:
        known = json.loads(path.read_bytes())
        if isinstance(known, list) and known and all(isinstance(t, str) for t in known):
            return tuple(known)
    except (OSError, ValueError):
        pass
    tags = Target.current_tags()
    try:
        from privpkg.fileio import write_atomic

        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(list(tags)).encode(), 0o644)
    except (OSError, PrivpkgError):
        pass
    return tags


def _has_manylinux_override() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("_manylinux") is not None
    except (ImportError, ValueError):
        return True


def _read_small(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read(200).strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise PrivpkgError(f"cannot read the build cache's {path}: {getattr(exc, 'strerror', None) or exc}") from None


def _hex(value: str | None) -> str | None:
    return value if value is not None and len(value) == 64 and all(c in "0123456789abcdef" for c in value) else None


def memo_get(memo: str) -> str | None:
    return _hex(_read_small(root() / "memo" / memo))


def memo_put(memo: str, build_key: str) -> None:
    """Remember ``build_key`` for ``memo``. Only a shortcut: a memo that cannot be written (a
    full disk, a read-only cache) costs the next hit a parse of the lock, never the build."""
    from privpkg.errors import PrivpkgError
    from privpkg.fileio import write_atomic

    folder = root() / "memo"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / memo, (build_key + "\n").encode())
    except (OSError, PrivpkgError):
        pass


def lookup(build_key: str) -> Path | None:
    """The complete build of ``build_key``, or None. Reads only the pointer (and stats the
    build); marks the pointer used (its mtime) for ``prune --older-than``."""
    top = root()
    pointer = top / "keys" / build_key
    name = _read_small(pointer)
    if not name or "/" in name or os.sep in name or name.startswith("."):
        return None
    build = top / "builds" / name
    if not build.is_dir():
        return None
    try:
        os.utime(pointer)
    except OSError:
        pass  # a read-only cache still serves hits
    return build


@contextmanager
def key_lock(build_key: str) -> Iterator[None]:
    """One builder per key at a time (a second one then finds the first one's build)."""
    from privpkg.fileio import file_lock

    with file_lock(root() / "locks" / f"key-{build_key}.lock", timeout=3600):
        # A key lock taken after `env prune --caches` listed the locks is not among those it holds:
        # wait here until it has moved the caches aside, so this build writes into new folders.
        with file_lock(root() / "locks" / CACHES_LOCK, timeout=3600):
            pass
        yield


#: The lock descriptor of each build (and scratch folder) this process is making (:func:`build_lock_fd`).
_BUILDING: dict[Path, int] = {}


def build_lock_fd(dest: Path) -> int | None:
    """The descriptor of the lock :func:`new_build` holds for ``dest`` (None when not building
    it): installers inherit it, so a build whose builder was killed (SIGKILL, SIGTERM) stays
    locked, and :func:`prune` leaves it alone, until its installers have ended too."""
    return _BUILDING.get(dest)


@contextmanager
def new_build(build_key: str) -> Iterator[Path]:
    """A fresh, unique directory name for a build of ``build_key`` (not created: the install
    creates it), locked for as long as the block runs so :func:`prune` leaves it alone.
    An exception (Ctrl-C's KeyboardInterrupt included) removes what was built, unless the
    build was published: :func:`_discard`."""
    from privpkg.fileio import file_lock

    top = root()
    (top / "builds").mkdir(parents=True, exist_ok=True)
    name = f"{build_key[:16]}-{os.urandom(6).hex()}"  # what secrets.token_hex does, without its imports
    with file_lock(top / "locks" / f"build-{name}.lock", timeout=0) as fd:
        dest = top / "builds" / name
        _BUILDING[dest] = fd
        try:
            yield dest
        except BaseException:
            _discard(build_key, dest)
            raise
        finally:
            del _BUILDING[dest]
            # Its name is this build's alone: removed while still held, so no one can take it
            # between (a failed build's lock goes too).
            with contextlib.suppress(OSError):
                os.unlink(top / "locks" / f"build-{name}.lock")


def _discard(build_key: str, build: Path) -> None:
    """Remove ``build`` after its builder failed or was interrupted, in an order where a second
    interrupt at any point leaves only states the cache already handles:

    - a Ctrl-C can land in :func:`publish` after the pointer's rename (during the folder's
      fsync): the build is published then, and complete, so it is kept;
    - otherwise the build is renamed aside first (one atomic rename to ``.removing-NAME``,
      which :func:`prune` finishes removing), so no half-removed tree ever keeps a build's name;
    - an interrupt before the rename leaves an unreferenced build, which :func:`prune` removes."""
    import shutil

    try:
        if _read_small(root() / "keys" / build_key) == build.name:
            return
    except PrivpkgError:
        return  # a pointer that cannot be read: the build stays for prune to judge
    aside = build.with_name(f".removing-{build.name}")
    try:
        os.replace(build, aside)
    except OSError:
        return  # never made (the installer failed before creating it), or already gone
    shutil.rmtree(aside, ignore_errors=True)


def publish(build_key: str, build: Path) -> None:
    """Point ``build_key`` at the complete ``build``: one atomic rename, after everything else."""
    from privpkg.fileio import write_atomic

    folder = root() / "keys"
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / build_key, (build.name + "\n").encode(), 0o644)


def wheels_dir() -> Path:
    return root() / "wheels"


class Pruned(NamedTuple):
    pointers: int
    builds: list[str]
    freed: int | None = None  # bytes the emptied caches held alone (None: not emptied)
    links: tuple[str, ...] = ()  # CACHE_FOLDERS left because they are symbolic links


#: The caches builds are made from, emptied whole by ``prune(caches=True)``: the fetched files,
#: the builds' uv cache and py-rattler's package cache. Builds keep working without them (their
#: files are copies or hard links); the next build fetches and unpacks again.
CACHE_FOLDERS = ("wheels", "uv", "conda-pkgs")

#: Held by ``prune(caches=True)`` from before it lists the locks until the caches are moved; a
#: builder takes it once it holds its key lock (:func:`key_lock`). Not a ``*.lock``: prune skips it.
CACHES_LOCK = "caches.flock"


#: The prefix of scratch folders in the cache root (:func:`scratch_dir`), and their locks'.
SCRATCH_LOCK = "scratch-"


@contextmanager
def scratch_dir(kind: str) -> Iterator[Path]:
    """A fresh private folder ``KIND-RANDOM`` in the cache root for the duration of the block,
    removed after; its lock is held from before it exists until it is gone, so :func:`prune`
    removes only the folders a killed build left (a SIGKILL runs no clean-up)."""
    import secrets
    import shutil

    from privpkg.fileio import file_lock

    top = root()
    name = f"{kind}-{secrets.token_hex(6)}"  # _SCRATCH_NAME's form
    with file_lock(top / "locks" / f"{SCRATCH_LOCK}{name}.lock") as fd:
        folder = top / name
        folder.mkdir(mode=0o700)
        _BUILDING[folder] = fd  # a program working in it inherits the lock (build_lock_fd)
        try:
            yield folder
        finally:
            del _BUILDING[folder]
            shutil.rmtree(folder, ignore_errors=True)
    (top / "locks" / f"{SCRATCH_LOCK}{name}.lock").unlink(missing_ok=True)


#: A scratch folder's name (:func:`scratch_dir`): KIND-RANDOM, 12 hex digits. Not ``conda-*``,
#: which is also py-rattler's package cache (``conda-pkgs``), used without a scratch lock.
_SCRATCH_NAME = r"conda-[0-9a-f]{12}"


def _prune_scratch(top: Path) -> None:
    """Remove scratch folders (:func:`scratch_dir`) whose lock nobody holds: killed builds'."""
    import re
    import shutil

    from privpkg.fileio import LockTimeout, file_lock

    for folder in sorted(f for f in top.glob("conda-*") if re.fullmatch(_SCRATCH_NAME, f.name)):
        lock = top / "locks" / f"{SCRATCH_LOCK}{folder.name}.lock"
        try:
            with file_lock(lock, timeout=0):
                shutil.rmtree(folder, ignore_errors=True)
            lock.unlink(missing_ok=True)
        except (LockTimeout, OSError):
            continue  # in use


def prune(older_than_days: float | None = None, caches: bool = False) -> Pruned:
    """Forget pointers not used for ``older_than_days`` (none when None), then remove every
    build no pointer names, except builds in progress, the memos of keys no pointer names, and
    the remembered tags (the next build works out its own again). A removed build is renamed aside first, so no half-removed tree
    keeps a build's name. ``caches``: then empty :data:`CACHE_FOLDERS` too (:func:`_empty_caches`)."""
    import shutil
    import time

    from privpkg.fileio import LockTimeout, file_lock

    top = root()
    pointers = 0
    referenced: set[str] = set()
    now = time.time()
    for pointer in sorted((top / "keys").glob("*")) if (top / "keys").is_dir() else []:
        try:
            st = pointer.stat()
        except OSError:
            continue
        if older_than_days is not None and now - st.st_mtime > older_than_days * 86400:
            pointer.unlink(missing_ok=True)  # a builder of this key would only write a new one
            pointers += 1
            continue
        name = _read_small(pointer)
        if name:
            referenced.add(name)
    removed: list[str] = []
    builds = top / "builds"
    for entry in sorted(builds.iterdir()) if builds.is_dir() else []:
        if entry.name in referenced or entry.name.startswith("."):
            continue
        lock = top / "locks" / f"build-{entry.name}.lock"
        try:
            with file_lock(lock, timeout=0):
                # A builder may have published this build and let go of its lock since the
                # pointers were read: read them again, under the lock, before removing it.
                if any(_read_small(p) == entry.name for p in (top / "keys").glob("*")):
                    continue
                aside = builds / f".removing-{entry.name}"
                os.replace(entry, aside)
                shutil.rmtree(aside, ignore_errors=True)
            lock.unlink(missing_ok=True)
        except LockTimeout:
            continue  # a build in progress
        except OSError:
            continue
        removed.append(entry.name)
    for leftover in builds.glob(".removing-*") if builds.is_dir() else []:
        shutil.rmtree(leftover, ignore_errors=True)
    _prune_scratch(top)
    # Memos of keys no pointer names: a hit through them would select the lock again anyway.
    for memo in (top / "memo").iterdir() if (top / "memo").is_dir() else []:
        try:
            known = _hex(_read_small(memo)) if memo.is_file() else None
            if known is None or not (top / "keys" / known).exists():
                memo.unlink(missing_ok=True)
        except (OSError, PrivpkgError):
            continue
    # Remembered tags of interpreters, kernels or C libraries long gone: cheap to work out again.
    for kept in (top / "tags").glob("*.json") if (top / "tags").is_dir() else []:
        kept.unlink(missing_ok=True)
    for leftover in top.glob(".removing-*"):  # caches an interrupted prune renamed aside
        shutil.rmtree(leftover, ignore_errors=True)
    freed, links = _empty_caches(top) if caches else (None, ())
    return Pruned(pointers, removed, freed, links)


def _empty_caches(top: Path) -> tuple[int, tuple[str, ...]]:
    """Empty :data:`CACHE_FOLDERS`, each renamed aside whole and then removed; the bytes they
    held alone (files no build hard-links), and those left because they are symbolic links
    (what one points to may be anything: never emptied). Refused, changing nothing, while any
    build, key or scratch lock is held (a build is running). :data:`CACHES_LOCK` is held until the
    folders are moved, so a build that starts meanwhile waits at it (:func:`key_lock`), then writes
    into new folders; a build past it holds its key lock, which the check below finds held."""
    import shutil

    from privpkg.fileio import LockTimeout, file_lock

    freed, aside, links = 0, [], []
    with contextlib.ExitStack() as gate:
        try:
            gate.enter_context(file_lock(top / "locks" / CACHES_LOCK, timeout=0))
        except LockTimeout:
            raise PrivpkgError("another env prune --caches is running: run it again once it has finished") from None
        # One lock at a time, let go at once: one per key ever built stays in locks/, and holding
        # them all at once ran out of file descriptors (ulimit -n) after about a thousand keys.
        for lock in sorted((top / "locks").glob("*.lock")) if (top / "locks").is_dir() else []:
            try:
                with file_lock(lock, timeout=0):
                    pass
            except LockTimeout:
                raise PrivpkgError(f"a build is running (it holds {lock}): run env prune --caches once it has finished") from None
        for name in CACHE_FOLDERS:
            folder = top / name
            if folder.is_symlink():
                links.append(name)
            elif folder.is_dir():
                freed += _bytes_held_alone(folder)
                aside.append(top / f".removing-{name}-{os.urandom(4).hex()}")
                os.replace(folder, aside[-1])
    for folder in aside:
        shutil.rmtree(folder, ignore_errors=True)
    return freed, tuple(links)


def _bytes_held_alone(folder: Path) -> int:
    """The size of the regular files under ``folder`` that have no other hard link (what
    removing it frees; a build's copy of a uv cache file keeps its blocks)."""
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if st.st_nlink == 1 and stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total
