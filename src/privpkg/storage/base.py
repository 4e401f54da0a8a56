"""What every storage backend shares: the :class:`Storage` protocol and its types.

A backend is opened from a plain :class:`StorageSpec` (kind, location, endpoint, region) and a
:class:`Credential` that the layer above resolved (:mod:`privpkg.access` finds it among the
connections); nothing in :mod:`privpkg.storage` knows about connections or workspaces.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeVar

from privpkg.errors import PrivpkgError

if TYPE_CHECKING:
    from privpkg.http import CABundle

Progress = Callable[[int], None]
T = TypeVar("T")
#: The storage kinds, as a workspace definition names them (``storage = "s3"``).
KINDS = ("local", "azure", "s3")


class AlreadyExists(PrivpkgError):
    """The object exists; published objects are immutable."""


class BlobInfo(NamedTuple):
    """An object as a listing or a HEAD shows it. ``tag``: what changes whenever an object is
    written under ``key`` again (its ETag on the services; locally its inode, size and mtime),
    None where the call gives none: how a copy of an object is checked against a listing that
    was made anyway, with no request of its own."""

    key: str
    size: int
    sha256: str | None
    tag: str | None = None


class StorageSpec(NamedTuple):
    """Where the objects live: ``kind`` (one of :data:`KINDS`) and ``location`` (a folder, a
    container URL, ``s3://bucket[/prefix]``); ``endpoint_url`` and ``region`` for S3 only.
    ``private`` (local only): the folder is the user's own, so new folders are 0700 and files
    0600, and existing folders are tightened; a shared folder keeps its owner's modes."""

    kind: str
    location: str
    endpoint_url: str | None = None
    region: str | None = None
    private: bool = False


class Credential(NamedTuple):
    """A resolved credential for one storage. ``kind``:

    - ``"key"``: the Azure account key, or the S3 secret access key with its access key id in
      ``key_id``;
    - ``"sas"``: an Azure SAS token (container or account SAS) in ``secret``, used as it is;
    - ``"ambient"``: no secret; the SDK's own chain (AWS's default credentials,
      DefaultAzureCredential) signs, as :mod:`privpkg.ambient` allowed.

    ``name`` is the connection it came from, named in "update it with: privpkg connection set
    NAME --update" when the service refuses it (for ``ambient``: how messages name the chain)."""

    name: str
    secret: str
    key_id: str | None = None
    kind: str = "key"

    def __repr__(self) -> str:  # never the secret, in a traceback or a debug print
        return f"Credential(name={self.name!r}, kind={self.kind!r})"


def bounded(seconds: float | None, what: str, fn: Callable[[], T]) -> T:
    """``fn()``, but at most ``seconds`` (None: unbounded): signing with ambient credentials
    may fetch a role session, an SSO token or a user delegation key, and some of the SDKs'
    fetchers have fixed timeouts and retries of their own (botocore's container-credentials
    fetcher: 3 tries of 2 s). The pip shim passes pip's ``--timeout``, so nothing signing does
    outlasts it; a fetch still running then is left to finish in a daemon thread, unseen."""
    if seconds is None:
        return fn()
    import threading

    box: list[tuple[bool, object]] = []

    def run() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box.append((False, exc))

    worker = threading.Thread(target=run, name="privpkg-sign", daemon=True)
    worker.start()
    worker.join(seconds)
    if not box:
        raise PrivpkgError(f"{what} did not finish within {seconds:g} s (pip's --timeout)")
    ok, value = box[0]
    if not ok:
        assert isinstance(value, BaseException)
        raise value
    return value  # type: ignore[return-value]  # fn's result


class OwnSAS(NamedTuple):
    """A connection's own SAS, which signed URLs then carry: it covers the whole container, with
    its own permissions and expiry, whatever ``ttl`` was asked. Never the token itself."""

    connection: str
    permissions: str | None  # sp=, None when a stored access policy holds them
    expiry: str | None  # se=, None when a stored access policy holds it
    account: bool = False  # an account SAS (ss=, srt=): every container of the account, not this one alone


class Storage(Protocol):
    def head(self, key: str) -> BlobInfo | None:
        """The object's size and recorded sha256, or None if absent."""

    def put(self, key: str, path: Path, sha256: str, progress: Progress | None = None) -> None:
        """Upload ``path`` as ``key`` with its sha256 recorded; :class:`AlreadyExists` if taken."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Create the small object ``key`` holding ``data``, all at once, only if ``key`` is
        free (a conditional create on the service: O_EXCL, If-None-Match: *, S3's IfNoneMatch);
        :class:`AlreadyExists` if it is taken, whoever wins a race."""

    def read_bytes(self, key: str) -> bytes:
        """The content of ``key``; NotFoundError if absent."""

    def list_keys(self, prefix: str) -> list[BlobInfo]:
        """Every object under ``prefix`` (recursively), sorted by key, with its size and no
        sha256: one request per page of keys, never one per object."""

    def delete(self, key: str) -> None:
        """Remove ``key``; NotFoundError if absent."""

    def list(self, prefix: str) -> list[BlobInfo]:
        """Objects under ``prefix``, sorted by key."""

    def signed_url(self, key: str, ttl: int) -> str:
        """A URL that reads ``key`` for ``ttl`` seconds and nothing else (but see
        :meth:`own_sas`)."""

    def own_sas(self) -> OwnSAS | None:
        """When :meth:`signed_url` carries the connection's own SAS as it is (an AzureBlob
        connection holding a container SAS: nothing narrower can be derived from it), what that
        SAS allows; None when signed URLs are derived per key and ``ttl``."""

    def ca_bundle(self) -> CABundle | None:
        """The CA bundle a download of :meth:`signed_url` trusts: the one this backend's SDK
        client trusts, so what ``connection test`` reaches, a download reaches; None for the
        system's certificates. PrivpkgError (one line) for a bundle that is not usable."""


def missing_extra(extra: str, module: str) -> PrivpkgError:
    return PrivpkgError(f"this workspace needs {module}: pip install 'privpkg[{extra}]'")
