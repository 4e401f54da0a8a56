"""Where workspace wheels live: one small module per backend behind one interface::

    store = open_storage(workspace)
    store.put("wheels/x-1.0-py3-none-any.whl", path, sha256)
    store.signed_url("wheels/x-1.0-py3-none-any.whl", ttl=600)

Backends: :mod:`.local` (a folder; signed URL = file URL), :mod:`.azure` (Blob Storage; SAS),
:mod:`.s3` (S3 or compatible; presigned GET). Cloud SDKs are imported only by their backend.
Every ``put`` is all-or-nothing (a half-uploaded object is never visible) and never overwrites.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

from privpkg.errors import PrivpkgError

if TYPE_CHECKING:
    from privpkg.workspace import Workspace

Progress = Callable[[int], None]


class AlreadyExists(PrivpkgError):
    """The object exists; published wheels are immutable."""


class BlobInfo(NamedTuple):
    key: str
    size: int
    sha256: str | None


class Storage(Protocol):
    def head(self, key: str) -> BlobInfo | None:
        """The object's size and recorded sha256, or None if absent."""

    def put(self, key: str, path: Path, sha256: str, progress: Progress | None = None) -> None:
        """Upload ``path`` as ``key`` with its sha256 recorded; :class:`AlreadyExists` if taken."""

    def delete(self, key: str) -> None:
        """Remove ``key``; NotFoundError if absent."""

    def list(self, prefix: str) -> list[BlobInfo]:
        """Objects under ``prefix``, sorted by key."""

    def signed_url(self, key: str, ttl: int) -> str:
        """A URL that reads ``key`` for ``ttl`` seconds and nothing else."""


def open_storage(ws: Workspace) -> Storage:
    if ws.storage == "local":
        from privpkg.storage.local import LocalStorage
        from privpkg.workspace import default_workspace

        # The built-in default workspace lives in privpkg's own data dir: private to the user.
        # Any other folder is shared by whoever set it up, and keeps the modes they chose.
        private = ws.name == "default" and Path(ws.location) == Path(default_workspace().location)
        return LocalStorage(Path(ws.location), private=private)
    if ws.storage == "azure":
        from privpkg.storage.azure import AzureStorage

        return AzureStorage(ws.location)
    if ws.storage == "s3":
        from privpkg.storage.s3 import S3Storage

        return S3Storage(ws.location, endpoint_url=ws.endpoint_url, region=ws.region)
    raise PrivpkgError(f"workspace {ws.name!r} has unknown storage {ws.storage!r}")


def missing_extra(extra: str, module: str) -> PrivpkgError:
    return PrivpkgError(f"this workspace needs {module}: pip install 'privpkg[{extra}]'")
