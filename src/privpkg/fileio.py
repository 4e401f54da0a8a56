"""Safe file writes and locks: every file privpkg writes goes through this module.

- :func:`write_atomic` writes ``data`` to a fresh temp file in the target's own folder, created
  with a random name and ``O_EXCL`` (``tempfile.mkstemp``, which also refuses to follow a planted
  symlink), fsyncs it and renames it over the target, so a reader sees the old file or the new
  one, never half of one, and a name planted by another user is never written through.
- :func:`temp_file` is the same temp file for callers that stream (wheel copies) or that link
  the result into place instead of renaming (the key file, published wheels).
- Temp names are ``.NAME.<pid>.<random>.tmp``. A writer killed mid-write leaves one behind; the
  next write into that folder removes those whose process is gone (:func:`remove_stale_temps`),
  and never one whose writer still runs.
- :func:`file_lock` is an exclusive advisory lock (``flock`` on POSIX, ``msvcrt.locking`` on
  Windows) on a lock file opened with ``O_NOFOLLOW``; a planted symlink is refused, not
  followed. It waits at most ``timeout`` seconds (default 30, or ``$PRIVPKG_LOCK_TIMEOUT``) and
  then fails with one line naming the lock file.

Every failure (a full disk, a read-only folder) is a :class:`FileWriteError`, which is both a
:class:`~privpkg.errors.PrivpkgError` (the CLI prints it as one line) and an :class:`OSError`
(callers that catch OSError keep working). The target is left as it was.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from privpkg import envvars
from privpkg.errors import PrivpkgError

LOCK_TIMEOUT_ENV = envvars.LOCK_TIMEOUT
DEFAULT_LOCK_TIMEOUT = 30.0
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# `.NAME.<pid>.<random>.tmp`: mkstemp's random part is 8 characters of [a-z0-9_].
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[a-z0-9_]{8}\.tmp$")


class FileWriteError(PrivpkgError, OSError):
    """A file could not be written or locked; the target is unchanged. ``str()`` is one line."""

    def __init__(self, message: str, err: int | None = None) -> None:
        PrivpkgError.__init__(self, message)
        self.errno = err  # type: ignore[misc]
        self.message = message

    def __str__(self) -> str:
        return self.message


class LockTimeout(FileWriteError):
    """Another process held the lock for longer than the timeout."""


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # the only portable way to read it: set it and put it back
    os.umask(mask)
    return mask


def shared_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file: 0666 minus the umask."""
    return 0o666 & ~current_umask()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":  # pragma: no cover - no cheap liveness check: keep the file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists and belongs to another user
        return True
    return True


def remove_stale_temps(folder: Path) -> list[Path]:
    """Remove temp files in ``folder`` left by privpkg writers that no longer run; returns them.

    Only names of the form ``.NAME.<pid>.<random>.tmp`` are considered, only regular files (a
    symlink of that name is removed as a link, never followed), and only when no process with
    that pid exists on this machine. Errors are ignored: this is housekeeping."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_RE.match(entry.name)
        if not m or _pid_alive(int(m.group("pid"))):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


@contextmanager
def temp_file(path: Path, mode: int = 0o600) -> Iterator[tuple[int, Path]]:
    """A new, empty temp file beside ``path`` (random name, ``O_EXCL``, no symlink followed),
    with permissions ``mode``. Yields ``(fd, temp_path)``; the fd is closed and the temp file
    removed on exit unless the caller renamed it away. Stale temps of dead writers in the same
    folder are removed first."""
    folder = path.parent
    remove_stale_temps(folder)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise FileWriteError(f"cannot create a file in {folder}: {_why(exc)}", exc.errno) from None
    tmp = Path(name)
    try:
        if mode != 0o600 and os.name == "posix":
            os.fchmod(fd, mode)
        yield fd, tmp
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
        try:
            os.unlink(tmp)  # still there unless the caller renamed it into place
        except OSError:
            pass


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def write_atomic(path: Path, data: bytes, mode: int = 0o600, check: Callable[[Path], None] | None = None) -> None:
    """Replace ``path`` with ``data`` (permissions ``mode``) all at once, or leave it as it was.

    ``check``, if given, is called with the written, fsynced temp file before it replaces
    ``path``; if it raises, ``path`` is untouched and the exception propagates. A failure, a full
    disk included, raises :class:`FileWriteError` naming ``path``."""

    def replace(tmp: Path) -> bool:
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
        return True

    _write_then(Path(path), data, mode, replace, "cannot write {path}: {why}; it was left as it was")


def create_exclusive(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Create ``path`` holding ``data`` only if no file has that name yet; False if one has.

    The data goes to a temp file first and is hard-linked into place (the link fails if the name
    is taken), so a failure, a full disk included, never leaves an empty or partial ``path``."""
    path = Path(path)

    def link(tmp: Path) -> bool:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            # No hard links here (some network or FAT file systems): rename, which can
            # replace a file created between this check and the rename; callers hold a lock.
            if os.path.lexists(path):
                return False
            os.replace(tmp, path)
        return True

    return _write_then(path, data, mode, link, "cannot create {path}: {why}")


def _write_then(path: Path, data: bytes, mode: int, place: Callable[[Path], bool], failure: str) -> bool:
    """Write ``data`` to a fresh temp file beside ``path``, fsync it, and let ``place(tmp)`` put
    it in place (True) or decline (False); an OSError becomes one FileWriteError line."""
    try:
        with temp_file(path, mode) as (fd, tmp):
            write_all(fd, data)
            os.fsync(fd)
            placed = place(tmp)
    except FileWriteError:
        raise
    except OSError as exc:
        raise FileWriteError(failure.format(path=path, why=_why(exc)), exc.errno) from None
    if placed:
        _fsync_dir(path.parent)
    return placed


def _lock_timeout(timeout: float | None) -> float:
    if timeout is not None:
        return timeout
    raw = os.environ.get(LOCK_TIMEOUT_ENV)
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            pass
    return DEFAULT_LOCK_TIMEOUT


def _open_lock(path: Path) -> int:
    flags = os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise FileWriteError(
                f"the lock file {path} is a symbolic link; privpkg does not follow it (remove it if you did not create it)",
                exc.errno,
            ) from None
        raise FileWriteError(f"cannot open the lock file {path}: {_why(exc)}", exc.errno) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device planted at the lock path
        os.close(fd)
        raise FileWriteError(f"the lock file {path} is not a regular file; remove it if you did not create it")
    if st.st_nlink > 1:  # a hard link planted to someone else's file: do not hold it open
        os.close(fd)
        raise FileWriteError(f"the lock file {path} has other hard links; remove it if you did not create it")
    return fd


@contextmanager
def file_lock(path: Path, timeout: float | None = None) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if needed, never through a symlink), held
    for the block. Waits at most ``timeout`` seconds (None: ``$PRIVPKG_LOCK_TIMEOUT`` or 30),
    then raises :class:`LockTimeout` naming the lock file."""
    path = Path(path)
    limit = _lock_timeout(timeout)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise FileWriteError(f"cannot create {path.parent}: {_why(exc)}", exc.errno) from None
    fd = _open_lock(path)
    try:
        deadline = time.monotonic() + limit
        delay = 0.01
        while True:
            if _try_lock(fd, path):
                break
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    f"another privpkg process has held the lock {path} for over {limit:g} s; "
                    "try again when it has finished"
                )
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.25)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _try_lock(fd: int, path: Path) -> bool:
    if os.name == "posix":
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise FileWriteError(f"cannot lock {path}: {_why(exc)}", exc.errno) from None
        return True
    import msvcrt  # pragma: no cover - Windows

    try:  # pragma: no cover
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined,unused-ignore]
    except OSError:  # pragma: no cover
        return False
    return True  # pragma: no cover
