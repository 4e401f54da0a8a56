"""Local-folder storage: ``DIR/<key>`` with the sha256 in ``DIR/<key>.sha256``.

A put copies to a hidden temp file in the same folder, fsyncs it, then hard-links it into place,
which fails if the name is taken, so a wheel is never overwritten or seen half-written. The
"signed" URL is a plain file URL: the folder's permissions are the access control.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from privpkg.errors import NotFoundError, PrivpkgError
from privpkg.storage import AlreadyExists, BlobInfo, Progress

CHUNK = 1 << 20


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def head(self, key: str) -> BlobInfo | None:
        path = self._path(key)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        try:
            sha = path.with_name(path.name + ".sha256").read_text().strip()
        except FileNotFoundError:
            sha = None
        return BlobInfo(key, size, sha)

    def put(self, key: str, path: Path, sha256: str, progress: Progress | None = None) -> None:
        dest = self._path(key)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PrivpkgError(f"cannot create {dest.parent}: {exc.strerror}") from None
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as src, open(tmp, "wb") as out:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    if progress:
                        progress(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != sha256:
                raise PrivpkgError(f"{path} changed while it was being uploaded; try again")
            try:
                os.link(tmp, dest)  # claims the name atomically, or fails if it is taken
            except FileExistsError:
                raise AlreadyExists(f"{key} already exists in {self.root}") from None
            except OSError:  # a file system without hard links: fall back to an exclusive create
                try:
                    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    raise AlreadyExists(f"{key} already exists in {self.root}") from None
                os.close(fd)
                os.replace(tmp, dest)
            side = dest.with_name(dest.name + ".sha256")
            side_tmp = side.with_name(f".{side.name}.{os.getpid()}.part")
            side_tmp.write_text(sha256 + "\n")
            os.replace(side_tmp, side)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            raise NotFoundError(f"{key} is not in {self.root}") from None
        path.with_name(path.name + ".sha256").unlink(missing_ok=True)

    def list(self, prefix: str) -> list[BlobInfo]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        out = []
        for p in sorted(base.iterdir()):
            if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".sha256"):
                info = self.head(f"{prefix.rstrip('/')}/{p.name}")
                if info:
                    out.append(info)
        return out

    def signed_url(self, key: str, ttl: int) -> str:
        path = self._path(key)
        if not path.exists():
            raise NotFoundError(f"{key} is not in {self.root}")
        return path.resolve().as_uri()

