"""Points the scripts of a ``uv pip install --prefix`` at the environment's own python.

A build installs into its new directory with ``uv pip install --prefix DEST --python BASE``, and
not ``--python DEST/bin/python``: uv knows BASE from its cache, while every build's directory is
new, so uv would run the new environment's python once to learn it (about 45 ms, a third of a
small build). uv installs into DEST with a virtual environment's layout either way, but writes
the scripts' shebangs for BASE (its documentation of ``--prefix`` says so). This module rewrites
exactly those shebangs to DEST's python, in the form uv gives them, and the scripts' RECORD lines,
so the environment is what ``uv pip install --python DEST/bin/python`` makes (the tests compare
the two trees file by file).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from privpkg.errors import PrivpkgError
from privpkg.fileio import FileWriteError

#: uv's form of a shebang too long for the kernel (127 bytes) or holding a space.
_SH_HEAD = b"#!/bin/sh\n'''exec' "
_SH_TAIL = b' "$0" "$@"\n\' \'\'\''


#: How uv quotes a ``'`` in the trampoline: uv 0.13 as ``'"'"'``, earlier ones as ``'\''``.
_QUOTES = ("'\"'\"'", "'\\''")


def shebang(executable: str, quote: str = _QUOTES[0]) -> bytes:
    """The first line(s) uv writes in a script for ``executable`` (its ``format_shebang`` on
    POSIX): ``#!EXE``, or a ``/bin/sh`` trampoline when that line would be over 127 bytes or
    ``EXE`` holds a space (a ``'`` in it written as ``quote``)."""
    if len(executable.encode()) + 3 > 127 or " " in executable:
        quoted = "'" + executable.replace("'", quote) + "'"
        return _SH_HEAD + quoted.encode() + _SH_TAIL
    return b"#!" + executable.encode()


def replace_file(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path``, in a build not yet published, with ``data``: a new file (random name,
    ``O_EXCL``, no symlink followed) renamed over it, because uv may have hard-linked the old one
    from its cache, which must stay as it is. Not fsynced, as uv's own files are not: nothing
    points at the build until it is published, and a build that did not finish is discarded."""
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, 0o600)
    except OSError as exc:
        raise FileWriteError(f"cannot write {path}: {exc.strerror or exc}", exc.errno) from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, FileWriteError):
            raise FileWriteError(f"cannot write {path}: {exc.strerror or exc}", exc.errno) from None
        raise


def retarget_scripts(dest: Path, installer_python: str, site: Path) -> int:
    """Rewrite every script in ``dest``'s ``bin`` that starts with the line(s) uv writes for
    ``installer_python`` (byte for byte: a script of a wheel naming some python itself is left as
    uv leaves it) to name ``dest/bin/python``, and its line in the ``RECORD`` of ``site`` that
    lists it; returns how many were rewritten. Then every console and GUI entry point of the
    installed distributions must name ``dest/bin/python``: one that does not (uv wrote another
    spelling of the interpreter) is a PrivpkgError, and the build is discarded, never
    published with scripts that would run outside it."""
    from privpkg.environments.digests import record_hash

    bindir = dest / "bin"
    # (what uv wrote, what it would have written for dest) in each of uv's ways of quoting; when
    # the installer's path holds no quote they are one, and dest's is quoted as uv 0.13 does.
    heads: dict[bytes, bytes] = {}
    for q in _QUOTES:
        heads.setdefault(shebang(installer_python, q) + b"\n", shebang(str(bindir / "python"), q) + b"\n")
    longest = max(len(old) for old in heads)
    changed: dict[str, tuple[str, int]] = {}  # RECORD path -> (hash, size)
    try:
        entries = list(os.scandir(bindir))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.is_file(follow_symlinks=False):
            continue
        path = Path(entry.path)
        try:
            with open(path, "rb") as f:
                start = f.read(longest)  # the head only: bin/ may hold large binaries
                old = next((h for h in heads if start.startswith(h)), None)
                if old is None:
                    continue
                data = heads[old] + start[len(old):] + f.read()
            replace_file(path, data, os.stat(path).st_mode & 0o7777)
        except FileWriteError:
            raise  # names the file already
        except OSError as exc:
            raise FileWriteError(f"cannot rewrite {path}: {exc.strerror or exc}", exc.errno) from None
        changed[os.path.relpath(path, site).replace(os.sep, "/")] = (record_hash(data), len(data))
    if changed:
        _rewrite_records(site, changed)
    _check_entry_points(bindir, site, set(heads.values()))
    return len(changed)


def _check_entry_points(bindir: Path, site: Path, heads: set[bytes]) -> None:
    longest = max(len(h) for h in heads)
    for name in _entry_point_scripts(site):
        try:
            with open(bindir / name, "rb") as f:
                first = f.read(longest)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise FileWriteError(f"cannot read {bindir / name}: {exc.strerror or exc}", exc.errno) from None
        if not any(first.startswith(h) for h in heads):
            if name in _VENV_FILES:
                # uv venv (run beside the install) and the entry point both wrote it.
                raise PrivpkgError(f"a package's entry point {name!r} has the name of a file of the virtual environment itself; "
                                   "build with --installer pip (it installs after the venv is made)")
            raise PrivpkgError(f"uv wrote the script {name} for another interpreter than the build's; the build was discarded "
                               "(build with --installer pip, and report this)")


#: What ``uv venv`` writes in ``bin/`` (an entry point of one of these names races with it).
_VENV_FILES = frozenset({"python", "python3", "activate", "activate.bat", "activate.csh", "activate.fish", "activate.nu",
                         "activate.ps1", "activate.xsh", "activate_this.py", "deactivate.bat", "pydoc.bat"})


def _entry_point_scripts(site: Path) -> set[str]:
    """The console and GUI script names the distributions in ``site`` declare."""
    names: set[str] = set()
    for info in site.glob("*.dist-info"):
        try:
            text = (info / "entry_points.txt").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        section = ""
        for raw in text.splitlines():
            line = raw.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].strip()
            elif section in ("console_scripts", "gui_scripts") and "=" in line and not line.startswith(("#", ";")):
                name = line.split("=", 1)[0].strip()
                if name and "/" not in name and os.sep not in name and name not in (".", ".."):
                    names.add(name)
    return names


def _rewrite_records(site: Path, changed: dict[str, tuple[str, int]]) -> None:
    import csv
    import io

    left = dict(changed)
    for info in site.glob("*.dist-info"):
        record = info / "RECORD"
        try:
            text = record.read_text(encoding="utf-8")
        except OSError:
            continue
        if "bin/" not in text:  # most distributions have no script: no line to look at
            continue
        lines = text.splitlines(keepends=True)
        touched = False
        for i, line in enumerate(lines):
            if "bin/" not in line:
                continue
            row = next(csv.reader([line]), [])
            if row and row[0] in left:
                out = io.StringIO()
                csv.writer(out, lineterminator="\n").writerow([row[0], *map(str, left.pop(row[0]))])
                lines[i] = out.getvalue()
                touched = True
        if touched:
            replace_file(record, "".join(lines).encode("utf-8"), os.stat(record).st_mode & 0o7777)
        if not left:
            return
