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

import os
from pathlib import Path

#: uv's form of a shebang too long for the kernel (127 bytes) or holding a space.
_SH_HEAD = b"#!/bin/sh\n'''exec' "
_SH_TAIL = b' "$0" "$@"\n\' \'\'\''


def shebang(executable: str) -> bytes:
    """The first line(s) uv writes in a script for ``executable`` (its ``format_shebang`` on
    POSIX): ``#!EXE``, or a ``/bin/sh`` trampoline when that line would be over 127 bytes or
    ``EXE`` holds a space."""
    if len(executable.encode()) + 3 > 127 or " " in executable:
        quoted = "'" + executable.replace("'", "'\"'\"'") + "'"
        return _SH_HEAD + quoted.encode() + _SH_TAIL
    return b"#!" + executable.encode()


def _interpreter_of(data: bytes) -> tuple[str, int] | None:
    """The interpreter a script's uv-made shebang names, and the shebang's length; None for
    any other file."""
    if data.startswith(_SH_HEAD):
        end = data.find(_SH_TAIL)
        quoted = data[len(_SH_HEAD):end] if end > 0 else b""
        if len(quoted) < 2 or not (quoted.startswith(b"'") and quoted.endswith(b"'")):
            return None
        # uv 0.13 escapes a quote as '"'"', older ones as '\''.
        inner = quoted[1:-1].replace(b"'\"'\"'", b"'").replace(b"'\\''", b"'")
        return inner.decode("utf-8", "surrogateescape"), end + len(_SH_TAIL)
    if data.startswith(b"#!/"):
        end = data.find(b"\n")
        line = data[2:end] if end > 0 else b""
        if not line or b" " in line:
            return None
        return line.decode("utf-8", "surrogateescape"), end
    return None


def replace_file(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path``, in a build not yet published, with ``data``: a new file (random name,
    ``O_EXCL``, no symlink followed) renamed over it, because uv may have hard-linked the old one
    from its cache, which must stay as it is. Not fsynced, as uv's own files are not: nothing
    points at the build until it is published, and a build that did not finish is discarded."""
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _same_file(a: str, b: str) -> bool:
    try:
        return a == b or os.path.samefile(a, b)
    except OSError:
        return False


def retarget_scripts(dest: Path, installer_python: str, site: Path) -> int:
    """Rewrite every script in ``dest``'s ``bin`` whose shebang names ``installer_python`` (uv's
    form) to name ``dest/bin/python``, and its line in the ``RECORD`` of ``site`` that lists it;
    returns how many scripts were rewritten."""
    import base64
    import hashlib

    bindir = dest / "bin"
    new_head = shebang(str(bindir / "python"))
    changed: dict[str, tuple[str, int]] = {}  # RECORD path -> (hash, size)
    try:
        entries = list(os.scandir(bindir))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.is_file(follow_symlinks=False):
            continue
        with open(entry.path, "rb") as f:
            data = f.read()
        found = _interpreter_of(data)
        if found is None or not _same_file(found[0], installer_python):
            continue
        data = new_head + data[found[1]:]
        replace_file(Path(entry.path), data, os.stat(entry.path).st_mode & 0o7777)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        changed[os.path.relpath(entry.path, site).replace(os.sep, "/")] = (f"sha256={digest}", len(data))
    if changed:
        _rewrite_records(site, changed)
    return len(changed)


def _rewrite_records(site: Path, changed: dict[str, tuple[str, int]]) -> None:
    import csv
    import io

    left = dict(changed)
    for info in site.glob("*.dist-info"):
        record = info / "RECORD"
        try:
            lines = record.read_text(encoding="utf-8").splitlines(keepends=True)
        except OSError:
            continue
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
