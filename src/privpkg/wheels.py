"""Workspace wheels: validate, publish (immutably, through :mod:`privpkg.publishing`), list, remove::

    from privpkg.wheels import add_private_wheel
    from privpkg.workspace import get_workspace
    add_private_wheel(get_workspace("team"), "dist/mylib-1.0-py3-none-any.whl")
    # -> 'privpkg://team/wheels/mylib-1.0-py3-none-any.whl'

A wheel is checked before anything is uploaded: a PEP 427 file name, a readable zip, and a
``.dist-info/METADATA`` whose Name and Version match the file name. A published name is never
replaced: the same content again is fine with ``exist_ok``, different content is always an error.
A removed wheel's name stays reserved, as on PyPI, where a deleted file's name can never be
uploaded again (identical content included): re-adding it is refused until ``remove_wheel(...,
purge=True)`` forgets the name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

from privpkg import publishing, refs
from privpkg.access import open_workspace_storage
from privpkg.errors import NotFoundError, UsageError
from privpkg.storage.base import BlobInfo, Storage
from privpkg.workspace import Workspace

#: The last words of the error for a different wheel under a taken name.
IMMUTABLE = "published wheels are immutable: bump the version"


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
    digest = publishing.file_digest(path)
    return WheelFile(path, path.name, name, version, digest.sha256, digest.size)


def reserved_hint(ws: Workspace, filename: str) -> str:
    """How a removed wheel's name is freed, for the messages that refuse it."""
    return f"publish a new version, or forget the name with: privpkg wheel remove {filename} --purge --workspace {ws.name}"


def publish_wheel(ws: Workspace, storage: Storage, wheel: WheelFile, exist_ok: bool = False) -> str:
    """Publish the validated ``wheel`` in ``ws`` (whose storage is ``storage``); its URL."""
    publishing.publish(
        storage, refs.key_for(refs.WHEELS, wheel.filename), wheel.path, publishing.Digest(wheel.sha256, wheel.size),
        name=wheel.filename, where=f"workspace {ws.name!r}", immutable=IMMUTABLE,
        reserved=reserved_hint(ws, wheel.filename), exist_ok=exist_ok,
    )
    return ws.wheel_url(wheel.filename)


def add_private_wheel(ws: Workspace, path: str | os.PathLike[str], exist_ok: bool = False) -> str:
    """Validate the wheel at ``path`` and publish it in ``ws``; return its ``privpkg://`` URL
    (azureml's ``Environment.add_private_pip_wheel``, but a different wheel under a taken name
    is always an error)."""
    wheel = validate_wheel(Path(path))
    return publish_wheel(ws, open_workspace_storage(ws), wheel, exist_ok)


def list_wheels(ws: Workspace) -> list[BlobInfo]:
    return [b for b in open_workspace_storage(ws).list(refs.prefix(refs.WHEELS)) if b.key.endswith(".whl")]


def remove_wheel(ws: Workspace, filename: str, purge: bool = False) -> bool:
    """Remove ``filename`` from ``ws``; its name stays reserved unless ``purge``. Returns whether
    a wheel was there (False: ``purge`` only forgot a removed name)."""
    check_filename(filename)
    where = f"workspace {ws.name!r}"
    try:
        return publishing.unpublish(open_workspace_storage(ws), refs.key_for(refs.WHEELS, filename),
                                    name=f"wheel {filename}", where=where, purge=purge)
    except publishing.AlreadyRemoved as exc:
        raise NotFoundError(f"{exc} (to free it: privpkg wheel remove {filename} --purge --workspace {ws.name})") from None
    except NotFoundError as exc:
        raise NotFoundError(f"{exc} (see: privpkg wheel list --workspace {ws.name})") from None
