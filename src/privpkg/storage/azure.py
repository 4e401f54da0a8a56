"""Azure Blob Storage (and Azurite): a container URL, an account key (resolved above, from an
``AzureBlob`` connection), read-only SAS URLs for single blobs.

    privpkg connection set team-blob --category AzureBlob \\
        --target https://acct.blob.core.windows.net/wheels      # account key or connection string on stdin

Uploads stream the file in blocks; a block blob becomes visible only when its block list is
committed, so an interrupted upload leaves nothing behind that a reader could see.
``azure-storage-blob`` is imported only here (``pip install 'privpkg[azure]'``). Besides the
backend, other layers use :func:`sdk`, :func:`container_account`, :func:`parse_account_secret` and
:func:`open_client`
(``privpkg connection test`` builds its own short-deadline client with them).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from privpkg import urls
from privpkg.errors import NotFoundError, PrivpkgError
from privpkg.storage.base import AlreadyExists, BlobInfo, Credential, Progress, missing_extra

# Azurite accepts only service versions it knows; the SDK signs with its newest one.
EMULATOR_API_VERSION = "2025-11-05"
BLOCK_SIZE = 8 * 1024 * 1024


def sdk() -> Any:
    """The ``azure.storage.blob`` module; PrivpkgError naming the extra when it is missing."""
    try:
        from azure.storage import blob
    except ImportError:
        raise missing_extra("azure", "azure-storage-blob") from None
    return blob


def parse_account_secret(secret: str) -> tuple[str | None, str]:
    """(account name or None, account key) from an account key or a connection string."""
    if "AccountKey=" in secret:
        parts = dict(p.split("=", 1) for p in secret.split(";") if "=" in p)
        return parts.get("AccountName"), parts["AccountKey"]
    return None, secret


def container_account(container_url: str) -> str:
    """The storage account of a container URL: the host's first label, or an emulator's first
    path segment (http://127.0.0.1:10000/ACCOUNT/CONTAINER)."""
    norm = urls.normalize(container_url)
    return norm.segments[0] if urls.is_loopback(norm.host) else norm.host.split(".", 1)[0]


def open_client(account_url: str, account: str, key: str, container: str | None = None, *, emulator: bool,
                **options: Any) -> Any:
    """A ContainerClient for ``container`` (a BlobServiceClient without one) signed with the
    account key; ``options`` are the SDK's client options (retries, timeouts). An emulator
    gets the service version Azurite knows. azure-core's requests transport reads the proxy
    variables and ``REQUESTS_CA_BUNDLE`` itself; the CA bundle privpkg's own HTTP uses
    (:func:`privpkg.http.sdk_verify`: also pip's ``cert`` and ``SSL_CERT_FILE``) is passed as
    ``connection_verify`` when the user chose one, so every path trusts the same CAs."""
    blob = sdk()
    if emulator:
        options["api_version"] = EMULATOR_API_VERSION
    from privpkg import http

    verify = http.sdk_verify()
    if verify is not None:
        options.setdefault("connection_verify", verify)
    credential = {"account_name": account, "account_key": key}
    if container is None:
        return blob.BlobServiceClient(account_url, credential=credential, **options)
    return blob.ContainerClient(account_url, container, credential=credential, **options)


class AzureStorage:
    def __init__(self, container_url: str, credential: Credential) -> None:
        norm = urls.normalize(container_url)
        self.container_url = container_url.rstrip("/")
        self.emulator = urls.is_loopback(norm.host)
        self.container = norm.segments[-1]
        self.account = container_account(container_url)
        self.account_url = self.container_url.rsplit("/", 1)[0]
        self._key = credential.secret  # the account key (a connection string was split above)
        self._conn_name = credential.name
        self._client: Any = None

    def __repr__(self) -> str:
        return f"AzureStorage({self.container_url!r})"

    def _container(self) -> Any:
        if self._client is None:
            kw: dict[str, Any] = {
                "max_block_size": BLOCK_SIZE,
                "max_single_put_size": BLOCK_SIZE,
                # The SDK's default back-off makes a dead endpoint hang for about 85 s, and its
                # default read timeout (60 s per try) makes one that accepts and never answers
                # hang for minutes. Bounded here: 3 tries of at most 10 s + 30 s.
                "retry_total": 2,
                "initial_backoff": 0.5,
                "increment_base": 2,
                "connection_timeout": 10,
                "read_timeout": 30,
            }
            self._client = open_client(self.account_url, self.account, self._key, self.container, emulator=self.emulator, **kw)
        return self._client

    def _call(self, what: str, fn: Any, *args: Any, **kw: Any) -> Any:
        sdk()  # a missing SDK is reported as the extra to install
        from azure.core import exceptions as az

        try:
            return fn(*args, **kw)
        except (az.ResourceNotFoundError, az.ResourceExistsError) as exc:
            if "ContainerNotFound" in str(getattr(exc, "error_code", "")):
                raise PrivpkgError(f"container {self.container_url} does not exist; create it first") from None
            raise
        except az.ClientAuthenticationError:
            raise PrivpkgError(
                f"{self.container_url} refused the account key while trying to {what}; update it with: "
                f"privpkg connection set {self._conn_name} --update"
            ) from None
        except (az.ServiceRequestError, az.ServiceResponseError) as exc:  # refused, reset, timed out
            raise PrivpkgError(f"cannot reach {self.account_url} to {what}: {type(exc).__name__}") from None
        except az.HttpResponseError as exc:
            code = str(getattr(exc, "error_code", "") or "")
            if exc.status_code == 403 and ("AuthenticationFailed" in code or "AuthorizationFailure" in code or "AUTHORIZATION_FAILURE" in code.upper()):
                raise PrivpkgError(
                    f"{self.container_url} refused the account key while trying to {what}; update it with: "
                    f"privpkg connection set {self._conn_name} --update"
                ) from None
            raise PrivpkgError(f"{self.container_url}: HTTP {exc.status_code} while trying to {what} ({getattr(exc, 'error_code', '')})") from None

    def head(self, key: str) -> BlobInfo | None:
        client = self._container().get_blob_client(key)  # first: it reports a missing SDK
        from azure.core.exceptions import ResourceNotFoundError

        try:
            props = self._call("read blob properties", client.get_blob_properties)
        except ResourceNotFoundError:
            return None
        return BlobInfo(key, props.size, (props.metadata or {}).get("sha256"))

    def put(self, key: str, path: Path, sha256: str, progress: Progress | None = None) -> None:
        client = self._container().get_blob_client(key)
        from azure.core.exceptions import ResourceExistsError

        last = [0]

        def hook(current: int, total: int | None) -> None:
            if progress:
                progress(current - last[0])
                last[0] = current

        with open(path, "rb") as fh:
            try:
                self._call(
                    "upload", client.upload_blob, fh, overwrite=False, metadata={"sha256": sha256},
                    length=path.stat().st_size, max_concurrency=2, progress_hook=hook,
                )
            except ResourceExistsError:
                raise AlreadyExists(f"{key} already exists in {self.container_url}") from None

    def delete(self, key: str) -> None:
        client = self._container().get_blob_client(key)
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self._call("delete", client.delete_blob)
        except ResourceNotFoundError:
            raise NotFoundError(f"{key} is not in {self.container_url}") from None

    def list(self, prefix: str) -> list[BlobInfo]:
        blobs = self._call("list blobs", lambda: list(self._container().list_blobs(name_starts_with=prefix, include=["metadata"])))
        return sorted((BlobInfo(b.name, b.size, (b.metadata or {}).get("sha256")) for b in blobs), key=lambda b: b.key)

    def signed_url(self, key: str, ttl: int) -> str:
        blob = sdk()
        now = _dt.datetime.now(_dt.UTC)
        sas = blob.generate_blob_sas(
            account_name=self.account,
            container_name=self.container,
            blob_name=key,
            account_key=self._key,
            permission=blob.BlobSasPermissions(read=True),
            start=now - _dt.timedelta(minutes=5),  # tolerate clock skew between us and the service
            expiry=now + _dt.timedelta(seconds=ttl),
            protocol="https,http" if self.emulator else "https",
        )
        from urllib.parse import quote

        return f"{self.container_url}/{quote(key)}?{sas}"
