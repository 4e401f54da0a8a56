"""Where published objects live: one small module per backend behind one interface
(:mod:`privpkg.storage.base`), opened by :func:`open_storage` from a spec and a credential::

    store = open_storage(StorageSpec("s3", "s3://bucket/prefix"), Credential("conn", secret, key_id))
    store.put(key, path, sha256)
    store.signed_url(key, ttl=600)

Backends: :mod:`.local` (a folder; signed URL = file URL), :mod:`.azure` (Blob Storage; SAS),
:mod:`.s3` (S3 or compatible; presigned GET). Cloud SDKs are imported only by their backend.
Every ``put`` is all-or-nothing (a half-uploaded object is never visible) and never overwrites.
"""

from __future__ import annotations

from pathlib import Path

from privpkg.errors import PrivpkgError
from privpkg.storage.base import KINDS, Credential, Storage, StorageSpec


def open_storage(spec: StorageSpec, credential: Credential | None, timeout: float | None = None) -> Storage:
    """The backend for ``spec``; a cloud backend needs the ``credential`` resolved for it.
    ``timeout`` (the pip shim passes pip's) bounds what signing may fetch over the network."""
    if spec.kind not in KINDS:
        raise PrivpkgError(f"unknown storage {spec.kind!r}")
    if spec.kind == "local":
        from privpkg.storage.local import LocalStorage

        return LocalStorage(Path(spec.location), private=spec.private)
    if credential is None:
        raise PrivpkgError(f"{spec.location} needs a credential")
    if spec.kind == "azure":
        from privpkg.storage.azure import AzureStorage

        return AzureStorage(spec.location, credential, timeout=timeout)
    from privpkg.storage.s3 import S3Storage

    return S3Storage(spec.location, credential, endpoint_url=spec.endpoint_url, region=spec.region, timeout=timeout)
