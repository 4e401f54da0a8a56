"""The encrypted file that holds connections: AES-256-GCM, atomic locked writes, one backup.

File layout: ``MAGIC | 12-byte nonce | ciphertext+tag``, with ``MAGIC`` as associated data, so a
foreign, truncated or bit-flipped file fails authentication instead of being misread. The
plaintext is JSON. The 32-byte key comes from ``PRIVPKG_MASTER_KEY`` (base64 or hex, for CI) or
from a 0600 key file created on first write::

    >>> import tempfile
    >>> tmp = Path(tempfile.mkdtemp())
    >>> v = Vault(tmp / "s.store", tmp / "k.key")
    >>> v.update(lambda data: data.setdefault("connections", {}))
    {}
    >>> v.load()
    {'connections': {}}
    >>> sorted(p.name for p in tmp.iterdir())
    ['k.key', 's.store', 's.store.bak', 's.store.lock']
    >>> import shutil; shutil.rmtree(tmp)

Rules this module keeps: a store that cannot be decrypted is never overwritten (every write
decrypts the current file first, under the lock, see :func:`privpkg.fileio.file_lock`); writes
go to a fresh temp file (:func:`privpkg.fileio.write_atomic`) that is fsynced, read back and
decrypted before it is renamed over the store; the same verified bytes are then kept as
``<store>.bak`` (so no file privpkg keeps holds a deleted or rotated secret); the key file is
created whole or not at all; loose permissions are tightened with a warning. ``cryptography``
is imported only when a store file exists.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from privpkg import envvars, paths
from privpkg.errors import StoreError
from privpkg.fileio import FileWriteError, create_exclusive, file_lock, write_atomic

MAGIC = b"PRIVPKG-STORE-1\n"
NONCE_LEN = 12
TAG_LEN = 16
T = TypeVar("T")


def _warn(msg: str) -> None:
    # The store is opened inside pip and keyring too: their verbosity governs the line.
    from privpkg import log

    log.warning(msg)


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
        return f"${envvars.MASTER_KEY}" if os.environ.get(envvars.MASTER_KEY) else str(self.key_file)

    def _key(self, create: bool) -> bytes | None:
        env = os.environ.get(envvars.MASTER_KEY)
        if env:
            return decode_key(env, f"${envvars.MASTER_KEY}")
        try:
            _tighten(self.key_file)
            return decode_key(self.key_file.read_text("ascii"), f"key file {self.key_file}")
        except FileNotFoundError:
            if not create:
                return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StoreError(f"cannot read key file {self.key_file}: {exc}") from None
        try:
            self.key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            text = new_key_text()
            # Written to a temp file and linked into place: a full disk leaves no empty key, and
            # a key another process created first is kept (then used).
            if not create_exclusive(self.key_file, (text + "\n").encode("ascii"), 0o600):
                return self._key(create=False)
        except OSError as exc:
            raise StoreError(f"cannot create the key file {self.key_file}: {_reason(exc)}; nothing was written") from None
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
                f"restore it or set {envvars.MASTER_KEY}"
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

    def _encrypt(self, key: bytes, data: dict[str, Any]) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(NONCE_LEN)
        plain = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
        return MAGIC + nonce + AESGCM(key).encrypt(nonce, plain, MAGIC)

    def _verify(self, blob: bytes) -> Callable[[Path], None]:
        def check(written: Path) -> None:
            """What is on disk must read back as exactly ``blob`` and decrypt."""
            try:
                on_disk = written.read_bytes()
            except OSError as exc:
                raise StoreError(f"cannot read back the new store: {exc.strerror}; the store was left untouched") from None
            if on_disk != blob:
                raise StoreError("the new store did not read back as written (disk error?); the store was left untouched")
            self._decrypt(on_disk)

        return check

    def update(self, fn: Callable[[dict[str, Any]], T]) -> T:
        """Locked read-modify-write. Nothing is written if reading fails or ``fn`` raises.

        The new store goes to a temp file beside the old one, is read back and decrypted, and
        only then renamed over it; the same verified bytes then become ``<store>.bak``. So the
        backup is the last verified version (a damaged store can be restored from it), never an
        older one that still holds a secret the user deleted or rotated."""
        with file_lock(self.lock_path):
            _, data = self._read()
            result = fn(data)
            key = self._key(create=True)
            assert key is not None
            blob = self._encrypt(key, data)
            check = self._verify(blob)
            try:
                write_atomic(self.path, blob, 0o600, check)
            except FileWriteError as exc:
                raise StoreError(f"cannot write the store {self.path}: {_reason(exc)}; it was left untouched") from None
            try:
                write_atomic(self.backup_path, blob, 0o600, check)
            except (FileWriteError, StoreError) as exc:
                # A stale backup would still hold what this write removed: drop it instead.
                try:
                    self.backup_path.unlink()
                except FileNotFoundError:
                    pass
                except OSError:
                    raise StoreError(
                        f"the store {self.path} was written, but its backup {self.backup_path} could "
                        f"neither be updated ({_reason(exc)}) nor removed; delete it by hand"
                    ) from None
                _warn(f"the store was written, but its backup could not be ({_reason(exc)}); removed the old backup {self.backup_path}")
            except BaseException:
                # Ctrl-C or SIGTERM after the store was replaced: the old backup would still hold
                # what this write removed (a deleted or rotated secret), so it goes too.
                with contextlib.suppress(OSError):
                    self.backup_path.unlink()
                raise
            return result


def _reason(exc: Exception) -> str:
    err = getattr(exc, "errno", None)
    return os.strerror(err) if isinstance(err, int) else str(exc)
