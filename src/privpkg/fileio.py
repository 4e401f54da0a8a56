"""Safe file writes and locks: every file privpkg writes goes through this module.

- :func:`write_atomic` writes ``data`` to a fresh temp file in the target's own folder, created
  with a random name and ``O_EXCL`` (``tempfile.mkstemp``, which also refuses to follow a planted
  symlink), fsyncs it and renames it over the target, so a reader sees the old file or the new
  one, never half of one, and a name planted by another user is never written through.
- :func:`temp_file` is the same temp file for callers that stream (wheel copies);
  :func:`link_exclusive` puts such a file in place only if the name is free (published wheels),
  and :func:`create_exclusive` does both for bytes in memory (the key file).
- :func:`replace_dir` swaps a whole directory for one built beside it (the pip shim's copy in
  another environment), so no reader ever finds half of the new one.
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
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from privpkg import envvars
from privpkg.errors import PrivpkgError

DEFAULT_LOCK_TIMEOUT = 30.0
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# `.NAME.<pid>.<random>.tmp`: mkstemp's random part is 8 characters of [a-z0-9_]. Compiled at
# its first use (a write), not at import: every keyring lookup imports this module (the vault).
_TEMP_RE = r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[a-z0-9_]{8}\.tmp$"


class FileWriteError(PrivpkgError, OSError):
    """A file could not be written or locked; the target is unchanged. ``str()`` is one line."""

    def __init__(self, message: str, err: int | None = None) -> None:
        PrivpkgError.__init__(self, message)
        self.errno = err
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
        m = re.match(_TEMP_RE, entry.name)
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


def commit_temp(fd: int, tmp: Path, dest: Path) -> None:
    """Make ``tmp`` (from :func:`temp_file`, its content written to ``fd`` and checked) ``dest``:
    flushed to disk, then renamed into place; FileWriteError naming ``dest``."""
    try:
        os.fsync(fd)
        os.replace(tmp, dest)
    except OSError as exc:
        raise FileWriteError(f"cannot write {dest}: {exc.strerror or exc}", exc.errno) from None


#: What ``tempfile.mkstemp`` opens with: a new file only, never through a symlink.
_TEMP_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
#: tempfile's name alphabet (:data:`_TEMP_RE` reads these names).
_TEMP_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def _make_temp(folder: Path, prefix: str) -> tuple[int, Path]:
    """``tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)``, its 8 random characters
    from ``os.urandom``, without importing tempfile (with shutil and random: a tenth of a
    build's own imports). Mode 0600; the descriptor is not inherited (PEP 446). The path is
    absolute, as mkstemp's is: a relative one would name another file after a chdir."""
    folder = Path(os.path.abspath(folder))
    for _ in range(100):
        name = "".join(_TEMP_CHARS[b % len(_TEMP_CHARS)] for b in os.urandom(8))
        tmp = folder / f"{prefix}{name}.tmp"
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no free temporary name in {folder}")


@contextmanager
def temp_file(path: Path, mode: int = 0o600) -> Iterator[tuple[int, Path]]:
    """A new, empty temp file beside ``path`` (random name, ``O_EXCL``, no symlink followed),
    with permissions ``mode``. Yields ``(fd, temp_path)``; the fd is closed and the temp file
    removed on exit unless the caller renamed it away. Stale temps of dead writers in the same
    folder are removed first."""
    folder = path.parent
    remove_stale_temps(folder)
    try:
        fd, tmp = _make_temp(folder, f".{path.name}.{os.getpid()}.")
    except OSError as exc:
        raise FileWriteError(f"cannot create a file in {folder}: {_why(exc)}", exc.errno) from None
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
        _fsync_dir(path.parent)
        return True

    _write_then(Path(path), data, mode, replace, "cannot write {path}: {why}; it was left as it was")


#: What ``link()`` fails with on a file system without hard links (FAT, some network and FUSE
#: file systems), and for a file that has too many; any other error is a real failure.
_NO_LINK = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS})


def link_exclusive(tmp: Path, dest: Path) -> bool:
    """Put the finished, fsynced temp file ``tmp`` (from :func:`temp_file`) at ``dest`` only if
    no file has that name yet; False if one has, and ``dest`` is never replaced.

    ``dest`` is a hard link to ``tmp`` (the link fails if the name is taken), so it appears with
    its whole content. Where hard links are not available the name is claimed with an empty
    ``O_EXCL`` file and ``tmp`` renamed over it: still never a second writer's file replaced,
    but for that moment a reader can see ``dest`` empty. Any other failure is a
    :class:`FileWriteError` naming ``dest``."""
    try:
        try:
            os.link(tmp, dest)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
            try:
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o600)
            except FileExistsError:
                return False
            os.close(fd)
            try:
                os.replace(tmp, dest)
            except OSError:
                try:
                    os.unlink(dest)  # the empty file that claimed the name for us
                except OSError:
                    pass
                raise
    except OSError as exc:
        raise FileWriteError(f"cannot create {dest}: {_why(exc)}", exc.errno) from None
    _fsync_dir(Path(dest).parent)
    return True


def create_exclusive(path: Path, data: bytes, mode: int = 0o600) -> bool:
    """Create ``path`` holding ``data`` only if no file has that name yet; False if one has.

    The data goes to a temp file first and is put in place by :func:`link_exclusive`, so a
    failure, a full disk included, leaves no ``path`` behind, never an empty or partial one."""
    path = Path(path)
    return _write_then(path, data, mode, lambda tmp: link_exclusive(tmp, path), "cannot create {path}: {why}")


def _write_then(path: Path, data: bytes, mode: int, place: Callable[[Path], bool], failure: str) -> bool:
    """Write ``data`` to a fresh temp file beside ``path``, fsync it, and let ``place(tmp)`` put
    it in place, folder fsynced (True), or decline (False); an OSError becomes one FileWriteError
    line."""
    try:
        with temp_file(path, mode) as (fd, tmp):
            write_all(fd, data)
            os.fsync(fd)
            return place(tmp)
    except FileWriteError:
        raise
    except OSError as exc:
        raise FileWriteError(failure.format(path=path, why=_why(exc)), exc.errno) from None


def replace_dir(dest: Path, fill: Callable[[Path], None], mode: int | None = None) -> None:
    """Make ``dest`` the directory that ``fill(new)`` fills, in place of whatever was there.

    ``new`` is a fresh folder beside ``dest`` (``tempfile.mkdtemp``: a random name, created
    exclusively, so nothing planted there is followed or reused, and only this process can
    write into it). When ``fill`` returns, it gets ``mode`` (default: what ``mkdir`` gives,
    0777 minus the umask) and is renamed to ``dest``. A previous ``dest`` (a folder, a file or a
    symlink, which is moved, never followed) is renamed aside into another fresh folder first
    and removed once the new one is in place, or put back if that rename fails. So a reader
    finds the old directory, for an instant none, or the whole new one, never half of one.

    An OSError becomes a :class:`FileWriteError` naming ``dest``; anything else ``fill`` raises
    propagates. Either way no temporary folder is left behind."""
    import shutil
    import tempfile

    dest = Path(dest)
    new: str | None = None
    aside: str | None = None
    moved = False
    existed = os.path.lexists(dest)  # for the error's verb: a new DIR is created, not replaced
    try:
        new = tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent)
        fill(Path(new))
        os.chmod(new, 0o777 & ~current_umask() if mode is None else mode)
        if os.path.lexists(dest):
            aside = tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent)
            os.replace(dest, os.path.join(aside, dest.name))
            moved = True
        os.replace(new, dest)
        new, moved = None, False
    except FileWriteError:
        raise
    except OSError as exc:
        raise FileWriteError(f"cannot {'replace' if existed else 'create'} {dest}: {_why(exc)}", exc.errno) from None
    finally:
        if moved and aside is not None:
            try:
                os.replace(os.path.join(aside, dest.name), dest)
            except OSError:
                pass
        for leftover in (new, aside):
            if leftover:
                shutil.rmtree(leftover, ignore_errors=True)
    _fsync_dir(dest.parent)


def _lock_timeout(timeout: float | None) -> float:
    if timeout is not None:
        return timeout
    raw = os.environ.get(envvars.LOCK_TIMEOUT)
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
        if exc.errno == errno.EISDIR:  # planted, or left by hand: every locker would fail on it
            raise FileWriteError(f"the lock file {path} is a directory; remove it if you did not create it", exc.errno) from None
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
def file_lock(path: Path, timeout: float | None = None) -> Iterator[int]:
    """An exclusive advisory lock on ``path`` (created if needed, never through a symlink), held
    for the block. Waits at most ``timeout`` seconds (None: ``$PRIVPKG_LOCK_TIMEOUT`` or 30),
    then raises :class:`LockTimeout` naming the lock file. Yields the locked descriptor: a child
    that inherits it holds the lock (``flock``) as long as it lives."""
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
        yield fd
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
