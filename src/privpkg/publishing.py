"""Publishing one file under one storage key, once: validate → upload → immutability → sha256,
and removing it again while its name stays reserved.

The caller validates the file (a wheel today, an environment spec next) and hashes it with
:func:`file_digest`; :func:`publish` uploads it unless the key is taken. A published key is never
replaced: the same content again is fine with ``exist_ok``, different content is always an error,
also when someone else published the key while this upload ran.

:func:`unpublish` removes the object and leaves a small marker (:func:`privpkg.refs.removed_key`)
in the same storage, so the name stays taken, as PyPI keeps a deleted file's name: publishing
under it again is refused, identical content included, until ``purge`` forgets the name. The
marker is an ordinary object, so this works alike on every backend.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

from privpkg import refs
from privpkg.errors import NotFoundError, PrivpkgError
from privpkg.storage.base import AlreadyExists, BlobInfo, Storage

CHUNK = 1 << 20


class Digest(NamedTuple):
    sha256: str
    size: int


def file_digest(path: Path) -> Digest:
    """The sha256 (recorded with the object, compared on a second publish) and size of ``path``."""
    import hashlib  # here: loading OpenSSL costs ~10 ms, and signing never hashes

    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return Digest(digest.hexdigest(), size)


class _Bar:
    """A one-line progress bar on stderr, only when stderr is a terminal.

    The Azure SDK reports progress from its upload threads and may report a retried block twice,
    so the count is taken under a lock and never passes the file's size: the bar never shows more
    than 100% or more bytes than the file has."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, max(total, 1), 0
        self.enabled = sys.stderr.isatty()
        self.last = 0.0
        self._lock = threading.Lock()

    def __call__(self, n: int) -> None:
        with self._lock:
            self.done = min(self.total, self.done + max(n, 0))
            now = time.monotonic()
            if self.enabled and (now - self.last > 0.1 or self.done >= self.total):
                self.last = now
                pct = self.done * 100 // self.total
                sys.stderr.write(f"\r  uploading {self.label} {pct:3d}% {self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB")
                sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _compare(name: str, where: str, digest: Digest, info: BlobInfo, exist_ok: bool, immutable: str) -> None:
    if info.sha256 == digest.sha256:
        if exist_ok:
            return
        # A conflict with what the workspace holds, as a different content or a reserved name
        # is: exit 1 for all three (2 is for a command given wrong).
        raise PrivpkgError(f"{name} is already in {where} with the same content; pass --exist-ok (exist_ok=True in Python) to accept that")
    raise PrivpkgError(
        f"a different {name} is already in {where} "
        f"(sha256 {(info.sha256 or 'unknown')[:12]}..., yours {digest.sha256[:12]}...); {immutable}"
    )


class Removed(PrivpkgError):
    """The key was published once and removed; its name stays reserved until purged."""


class AlreadyRemoved(NotFoundError):
    """:func:`unpublish` of a key that was removed before (its marker is there)."""


def is_removed(storage: Storage, key: str) -> bool:
    """Whether ``key`` was removed with :func:`unpublish` (and not purged since)."""
    return storage.head(refs.removed_key(key)) is not None


def publish(storage: Storage, key: str, path: Path, digest: Digest, *, name: str, where: str, immutable: str,
            reserved: str, exist_ok: bool = False) -> None:
    """Upload ``path`` (already validated, hashed as ``digest``) as ``key``, unless it is taken.

    ``name`` and ``where`` are how messages call the object and the place (``workspace 'team'``);
    ``immutable`` ends the message for different content (``published wheels are immutable:
    bump the version``), ``reserved`` the one for a removed name (how to purge it). Same content
    under a taken key: PrivpkgError (exit 1), or nothing with ``exist_ok``; different content: PrivpkgError;
    a removed key: :class:`Removed`, whatever the content and ``exist_ok``."""
    # The marker first: a remove that crashed between writing it and deleting the object still
    # counts as removed.
    if is_removed(storage, key):
        raise Removed(f"{name} was removed from {where} and its name stays reserved; {reserved}")
    info = storage.head(key)
    if info is not None:
        _compare(name, where, digest, info, exist_ok, immutable)
        return
    bar = _Bar(name, digest.size)
    try:
        storage.put(key, path, digest.sha256, bar)
    except AlreadyExists:  # someone published the same key meanwhile
        info = storage.head(key)
        if info is None:
            raise
        _compare(name, where, digest, info, exist_ok, immutable)
    finally:
        bar.close()


def unpublish(storage: Storage, key: str, *, name: str, where: str, purge: bool = False) -> bool:
    """Remove ``key``; return whether an object was there. Without ``purge`` a marker keeps the
    name reserved (written before the object is deleted, so no moment exists in which the name
    is free); with ``purge`` the object and any marker are deleted and the name is free again.
    NotFoundError when there is nothing to do: no object (and, for ``purge``, no marker), or an
    object already removed."""
    marker = refs.removed_key(key)
    info = storage.head(key)
    if purge:
        found = _delete(storage, key) if info is not None else False
        forgotten = _delete(storage, marker)
        if not (found or forgotten):
            raise NotFoundError(f"no {name} in {where}, and no removed one either")
        return found
    if info is None:
        if storage.head(marker) is not None:
            raise AlreadyRemoved(f"{name} was already removed from {where}; its name stays reserved")
        raise NotFoundError(f"no {name} in {where}")
    import tempfile  # here: the install path imports this module and never removes

    record = {"removed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sha256": info.sha256, "size": info.size}
    with tempfile.TemporaryDirectory(prefix="privpkg-") as tmp:
        body = Path(tmp) / "removed.json"
        body.write_text(json.dumps(record) + "\n")
        try:
            storage.put(marker, body, file_digest(body).sha256)
        except AlreadyExists:  # an earlier remove stopped after the marker: finish it
            pass
    _delete(storage, key)
    return True


def _delete(storage: Storage, key: str) -> bool:
    """Delete ``key``; False if it was not there (also when someone else deleted it meanwhile)."""
    try:
        storage.delete(key)
    except NotFoundError:
        return False
    return True
