"""Workspace wheels: validate, publish (immutably), list, remove::

    from privpkg.workspace import get_workspace
    get_workspace("team").add_private_wheel("dist/mylib-1.0-py3-none-any.whl")
    # -> 'privpkg://team/wheels/mylib-1.0-py3-none-any.whl'

A wheel is checked before anything is uploaded: a PEP 427 file name, a readable zip, and a
``.dist-info/METADATA`` whose Name and Version match the file name. A published name is never
replaced: the same content again is fine with ``exist_ok``, different content is always an error.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import NamedTuple

from privpkg.errors import NotFoundError, PrivpkgError, UsageError
from privpkg.storage import AlreadyExists, BlobInfo, open_storage
from privpkg.workspace import Workspace

WHEELS = "wheels/"


class WheelFile(NamedTuple):
    path: Path
    filename: str
    name: str
    version: str
    sha256: str
    size: int


# PEP 427's shape, for the install-time path, which should not import packaging.
_WHEEL_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._]*[A-Za-z0-9])?-[^-\s/\\]+(?:-\d[^-\s/\\]*)?-[^-\s/\\]+-[^-\s/\\]+-[^-\s/\\]+\.whl$")


def check_filename(filename: str, *, strict: bool = True) -> tuple[str, str]:
    """(canonical name, version) of a PEP 427 wheel file name; UsageError otherwise. With
    ``strict=False`` only the shape is checked (and ("", "") returned), without packaging."""
    if "/" in filename or "\\" in filename or ".." in filename or filename.startswith("."):
        raise UsageError(f"invalid wheel file name {filename!r}: no path separators or '..'")
    if not strict:
        if not _WHEEL_NAME.match(filename):
            raise UsageError(f"not a valid wheel file name (PEP 427): {filename!r}")
        return "", ""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    try:
        name, version, _, _ = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise UsageError(f"not a valid wheel file name (PEP 427): {exc}") from None
    return str(name), str(version)


def validate_wheel(path: Path) -> WheelFile:
    import email.parser
    import hashlib
    import zipfile

    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    if not path.exists():
        raise UsageError(f"no such file: {path}")
    if not path.is_file():
        raise UsageError(f"not a file: {path}")
    name, version = check_filename(path.name)
    try:
        with zipfile.ZipFile(path) as zf:
            metas = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if len(metas) != 1:
                raise UsageError(f"{path.name} has {len(metas)} .dist-info/METADATA files; a wheel has exactly one")
            meta = email.parser.BytesParser().parsebytes(zf.read(metas[0]), headersonly=True)
    except zipfile.BadZipFile:
        raise UsageError(f"{path.name} is not a zip file, so not a wheel") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    meta_name, meta_version = meta.get("Name"), meta.get("Version")
    if not meta_name or canonicalize_name(meta_name) != name:
        raise UsageError(f"{path.name}: METADATA says Name: {meta_name}, the file name says {name}")
    try:
        same = meta_version is not None and Version(meta_version) == Version(version)
    except InvalidVersion:
        same = False
    if not same:
        raise UsageError(f"{path.name}: METADATA says Version: {meta_version}, the file name says {version}")
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return WheelFile(path, path.name, name, version, digest.hexdigest(), size)


class _Bar:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, max(total, 1), 0
        self.enabled = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self.last > 0.1 or self.done >= self.total):
            self.last = now
            pct = min(100, self.done * 100 // self.total)
            sys.stderr.write(f"\r  uploading {self.label} {pct:3d}% {self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _compare(ws: Workspace, wheel: WheelFile, info: BlobInfo, exist_ok: bool) -> str:
    url = ws.url_for(wheel.filename)
    if info.sha256 == wheel.sha256:
        if exist_ok:
            return url
        raise UsageError(f"{wheel.filename} is already in workspace {ws.name!r} with the same content; pass --exist-ok to accept that")
    raise PrivpkgError(
        f"a different {wheel.filename} is already in workspace {ws.name!r} "
        f"(sha256 {(info.sha256 or 'unknown')[:12]}..., yours {wheel.sha256[:12]}...); "
        "published wheels are immutable: bump the version"
    )


def add_wheel(ws: Workspace, path: Path, exist_ok: bool = False) -> str:
    wheel = validate_wheel(path)
    storage = open_storage(ws)
    key = WHEELS + wheel.filename
    info = storage.head(key)
    if info is not None:
        return _compare(ws, wheel, info, exist_ok)
    bar = _Bar(wheel.filename, wheel.size)
    try:
        storage.put(key, path, wheel.sha256, bar)
    except AlreadyExists:  # someone published the same name meanwhile
        info = storage.head(key)
        if info is None:
            raise
        return _compare(ws, wheel, info, exist_ok)
    finally:
        bar.close()
    return ws.url_for(wheel.filename)


def list_wheels(ws: Workspace) -> list[BlobInfo]:
    return [b for b in open_storage(ws).list(WHEELS) if b.key.endswith(".whl")]


def remove_wheel(ws: Workspace, filename: str) -> None:
    check_filename(filename)
    try:
        open_storage(ws).delete(WHEELS + filename)
    except NotFoundError:
        raise NotFoundError(f"no wheel {filename} in workspace {ws.name!r} (see: privpkg wheel list --workspace {ws.name})") from None
