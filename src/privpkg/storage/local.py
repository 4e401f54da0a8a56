"""Local-folder storage: ``DIR/<key>`` with the sha256 in ``DIR/<key>.sha256``.

A put copies to a fresh temp file in the same folder (random name, ``O_EXCL``, see
:mod:`privpkg.fileio`), fsyncs it, then links it into place only if the name is free
(:func:`privpkg.fileio.link_exclusive`), so a wheel is never overwritten or seen half-written. The "signed" URL is a plain file
URL: the folder's permissions are the access control, so:

- a private folder (``StorageSpec.private``: the built-in ``default`` workspace) gets 0700 folders and 0600 files,
  sha256 sidecars included, and its folders are tightened if an older privpkg left them open;
- a shared folder keeps what its owner set up: existing folders are never chmod-ed, new folders
  and files get the usual ``0777``/``0666`` minus the umask, like ``mkdir`` and ``cp`` would.
"""

from __future__ import annotations

import os
from pathlib import Path

from privpkg.errors import NotFoundError, PrivpkgError
from privpkg.fileio import FileWriteError, create_exclusive, link_exclusive, shared_mode, temp_file, write_all, write_atomic
from privpkg.storage.base import AlreadyExists, BlobInfo, Progress

CHUNK = 1 << 20


class LocalStorage:
    def __init__(self, root: Path, private: bool = False) -> None:
        self.root = root
        self.private = private

    def file_path(self, key: str) -> Path:
        """Where ``key`` is (or would be) stored; the pip shim installs a wheel from there."""
        return self.root / key

    def _make_dirs(self, folder: Path) -> None:
        """Create ``folder`` and its missing parents. Private storage: each new folder is 0700
        (``mkdir(parents=True)`` would give the parents the umask's default), and existing
        folders from ``folder`` up to the storage root are tightened to 0700."""
        if not self.private:
            folder.mkdir(parents=True, exist_ok=True)
            return
        missing = []
        d = folder
        while not d.exists():
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            d.mkdir(mode=0o700, exist_ok=True)
        if os.name != "posix":
            return
        chain = [folder, *folder.parents]
        for d in chain[: chain.index(self.root) + 1] if self.root in chain else [folder]:
            if d.stat().st_mode & 0o077:
                os.chmod(d, 0o700)

    def head(self, key: str) -> BlobInfo | None:
        path = self.file_path(key)
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
        dest = self.file_path(key)
        try:
            self._make_dirs(dest.parent)
        except OSError as exc:
            raise PrivpkgError(f"cannot create {dest.parent}: {exc.strerror}") from None
        mode = 0o600 if self.private else shared_mode()
        import hashlib  # here: loading OpenSSL costs ~10 ms, and signing never hashes

        digest = hashlib.sha256()
        try:
            with temp_file(dest, mode) as (fd, tmp), open(path, "rb") as src:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    write_all(fd, chunk)
                    if progress:
                        progress(len(chunk))
                os.fsync(fd)
                if digest.hexdigest() != sha256:
                    raise PrivpkgError(f"{path} changed while it was being uploaded; try again")
                if not link_exclusive(tmp, dest):
                    raise AlreadyExists(f"{key} already exists in {self.root}")
            write_atomic(dest.with_name(dest.name + ".sha256"), (sha256 + "\n").encode(), mode)
        except FileWriteError:
            raise
        except OSError as exc:
            raise PrivpkgError(f"cannot write {dest}: {exc.strerror or exc}") from None

    def put_bytes(self, key: str, data: bytes) -> None:
        dest = self.file_path(key)
        try:
            self._make_dirs(dest.parent)
        except OSError as exc:
            raise PrivpkgError(f"cannot create {dest.parent}: {exc.strerror}") from None
        if not create_exclusive(dest, data, 0o600 if self.private else shared_mode()):
            raise AlreadyExists(f"{key} already exists in {self.root}")

    def read_bytes(self, key: str) -> bytes:
        path = self.file_path(key)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"{key} is not in {self.root}") from None
        except OSError as exc:
            raise PrivpkgError(f"cannot read {path}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def list_keys(self, prefix: str) -> list[BlobInfo]:
        base = self.file_path(prefix)
        folder = base if prefix.endswith("/") or base.is_dir() else base.parent
        out = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                p = Path(dirpath) / name
                key = p.relative_to(self.root).as_posix()
                # dot-names are temp files of writers; NAME.sha256 beside NAME is put()'s sidecar
                if name.startswith(".") or not key.startswith(prefix) or (name.endswith(".sha256") and p.with_suffix("").exists()):
                    continue
                try:
                    st = p.stat()
                    # a file made again gets a new inode or mtime (a put never rewrites one in place)
                    out.append(BlobInfo(key, st.st_size, None, f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"))
                except FileNotFoundError:
                    continue
        return sorted(out, key=lambda b: b.key)

    def delete(self, key: str) -> None:
        path = self.file_path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            raise NotFoundError(f"{key} is not in {self.root}") from None
        path.with_name(path.name + ".sha256").unlink(missing_ok=True)

    def list(self, prefix: str) -> list[BlobInfo]:
        base = self.file_path(prefix)
        if not base.is_dir():
            return []
        out = []
        for p in sorted(base.iterdir()):
            if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".sha256"):
                info = self.head(f"{prefix.rstrip('/')}/{p.name}")
                if info:
                    out.append(info)
        return out

    def own_sas(self) -> None:
        return None  # signed URLs are derived per key and ttl

    def signed_url(self, key: str, ttl: int) -> str:
        path = self.file_path(key)
        if not path.exists():
            raise NotFoundError(f"{key} is not in {self.root}")
        return path.resolve().as_uri()

    def ca_bundle(self) -> None:
        return None  # a file URL: no TLS

