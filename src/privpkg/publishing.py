"""Publishing one file under one storage key, once: validate → upload → immutability → sha256.

The caller validates the file (a wheel today, an environment spec next) and hashes it with
:func:`file_digest`; :func:`publish` uploads it unless the key is taken. A published key is never
replaced: the same content again is fine with ``exist_ok``, different content is always an error,
also when someone else published the key while this upload ran.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import NamedTuple

from privpkg.errors import PrivpkgError, UsageError
from privpkg.storage.base import AlreadyExists, BlobInfo, Storage

CHUNK = 1 << 20


class Digest(NamedTuple):
    sha256: str
    size: int


def file_digest(path: Path) -> Digest:
    """The sha256 (recorded with the object, compared on a second publish) and size of ``path``."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return Digest(digest.hexdigest(), size)


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


def _compare(name: str, where: str, digest: Digest, info: BlobInfo, exist_ok: bool, immutable: str) -> None:
    if info.sha256 == digest.sha256:
        if exist_ok:
            return
        raise UsageError(f"{name} is already in {where} with the same content; pass --exist-ok to accept that")
    raise PrivpkgError(
        f"a different {name} is already in {where} "
        f"(sha256 {(info.sha256 or 'unknown')[:12]}..., yours {digest.sha256[:12]}...); {immutable}"
    )


def publish(storage: Storage, key: str, path: Path, digest: Digest, *, name: str, where: str, immutable: str,
            exist_ok: bool = False) -> None:
    """Upload ``path`` (already validated, hashed as ``digest``) as ``key``, unless it is taken.

    ``name`` and ``where`` are how messages call the object and the place (``workspace 'team'``);
    ``immutable`` ends the message for different content (``published wheels are immutable:
    bump the version``). Same content under a taken key: UsageError, or nothing with
    ``exist_ok``; different content: PrivpkgError."""
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
