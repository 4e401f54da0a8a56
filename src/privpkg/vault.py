"""The encrypted file that holds connections: AES-256-GCM, atomic locked writes, one backup.

File layout: ``MAGIC | 12-byte nonce | ciphertext+tag``, with ``MAGIC`` as associated data, so a
foreign, truncated or bit-flipped file fails authentication instead of being misread. The
plaintext is JSON. The 32-byte key comes from ``PRIVPKG_MASTER_KEY`` (base64 or hex, for CI) or
from a 0600 key file created on first write::

    >>> v = Vault(Path(tmp) / "s.store", Path(tmp) / "k.key")       # doctest: +SKIP
    >>> v.update(lambda data: data.setdefault("connections", {}))  # doctest: +SKIP

Rules this module keeps: a store that cannot be decrypted is never overwritten (every write
decrypts the current file first, under the lock); writes go to a temp file that is fsynced and
renamed over the store; the previous good file is kept as ``<store>.bak``; loose permissions are
tightened with a warning. ``cryptography`` is imported only when a store file exists.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from privpkg import paths
from privpkg.errors import StoreError

MAGIC = b"PRIVPKG-STORE-1\n"
NONCE_LEN = 12
TAG_LEN = 16
KEY_ENV = "PRIVPKG_MASTER_KEY"
T = TypeVar("T")


def _warn(msg: str) -> None:
    sys.stderr.write(f"privpkg: warning: {msg}\n")


def _tighten(path: Path) -> None:
    """Warn about and fix group/other access to a secret file (POSIX only)."""
    if os.name != "posix":
        return
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        try:
            os.chmod(path, 0o600)
            _warn(f"{path} had permissions {mode:04o}; tightened to 0600")
        except OSError as exc:
            _warn(f"{path} has permissions {mode:04o} and could not be tightened: {exc.strerror}")


def decode_key(text: str, source: str) -> bytes:
    """Decode a 32-byte key written as 64 hex digits or (url-safe) base64."""
    text = text.strip()
    raw: bytes | None = None
    if len(text) == 64:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None:
        try:
            padded = text + "=" * (-len(text) % 4)
            raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != 32:
        raise StoreError(f"{source} is not a 32-byte key (expected 64 hex digits or base64)")
    return raw


def new_key_text() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def _write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if os.name == "posix":
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock held on ``path`` (created if needed) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.name == "posix":
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        else:  # pragma: no cover - Windows
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class Vault:
    """One encrypted JSON document on disk. ``load()`` reads; ``update(fn)`` is a locked
    read-modify-write in which ``fn`` edits the document in place and its result is returned."""

    def __init__(self, path: Path | None = None, key_file: Path | None = None) -> None:
        self.path = path or paths.store_path()
        self.key_file = key_file or paths.key_path()

    def __repr__(self) -> str:
        return f"Vault(path={str(self.path)!r})"

    @property
    def backup_path(self) -> Path:
        return self.path.with_name(self.path.name + ".bak")

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def key_source(self) -> str:
        return f"${KEY_ENV}" if os.environ.get(KEY_ENV) else str(self.key_file)

    def _key(self, create: bool) -> bytes | None:
        env = os.environ.get(KEY_ENV)
        if env:
            return decode_key(env, f"${KEY_ENV}")
        try:
            _tighten(self.key_file)
            return decode_key(self.key_file.read_text("ascii"), f"key file {self.key_file}")
        except FileNotFoundError:
            if not create:
                return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreError(f"cannot read key file {self.key_file}: {exc}") from None
        self.key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = new_key_text()
        try:
            fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            return self._key(create=False)
        with os.fdopen(fd, "w") as fh:
            fh.write(text + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return decode_key(text, "new key")

    def _decrypt(self, blob: bytes) -> dict[str, Any]:
        where = f"the store {self.path}"
        if not blob.startswith(MAGIC):
            raise StoreError(f"{where} is not a privpkg store (unknown header); it was left untouched")
        if len(blob) < len(MAGIC) + NONCE_LEN + TAG_LEN:
            raise StoreError(f"{where} is truncated; it was left untouched (previous version: {self.backup_path})")
        key = self._key(create=False)
        if key is None:
            raise StoreError(
                f"{where} exists but its key file {self.key_file} is missing; "
                f"restore it or set {KEY_ENV}"
            )
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = blob[len(MAGIC) : len(MAGIC) + NONCE_LEN]
        try:
            plain = AESGCM(key).decrypt(nonce, blob[len(MAGIC) + NONCE_LEN :], MAGIC)
        except InvalidTag:
            raise StoreError(
                f"cannot decrypt {where} with the key from {self.key_source()} "
                "(wrong key, or the file is damaged); it was left untouched"
            ) from None
        try:
            data = json.loads(plain)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise StoreError(f"{where} decrypted but holds no valid document; it was left untouched")
        return data

    def _read(self) -> tuple[bytes | None, dict[str, Any]]:
        try:
            blob = self.path.read_bytes()
        except FileNotFoundError:
            return None, {}
        except OSError as exc:
            raise StoreError(f"cannot read the store {self.path}: {exc.strerror}") from None
        _tighten(self.path)
        return blob, self._decrypt(blob)

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> dict[str, Any]:
        """The decrypted document; ``{}`` when no store exists yet."""
        return self._read()[1]

    def update(self, fn: Callable[[dict[str, Any]], T]) -> T:
        """Locked read-modify-write. Nothing is written if reading fails or ``fn`` raises."""
        with file_lock(self.lock_path):
            old_blob, data = self._read()
            result = fn(data)
            key = self._key(create=True)
            assert key is not None
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            nonce = os.urandom(NONCE_LEN)
            plain = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
            blob = MAGIC + nonce + AESGCM(key).encrypt(nonce, plain, MAGIC)
            if old_blob is not None:
                _write_atomic(self.backup_path, old_blob)
            _write_atomic(self.path, blob)
            return result
