"""Azure Blob Storage (and Azurite): a container URL and one of three credentials (resolved
above): an account key, from an ``AzureBlob`` connection, signs read-only SAS URLs for single
blobs; a SAS token in such a connection (``sv=...&sig=...``) is used as it is, appended to the
blob URL; ``DefaultAzureCredential`` (``privpkg[azure-identity]``) gets a user delegation key
and signs user-delegation SAS URLs with it.

    privpkg connection set team-blob --category AzureBlob \\
        --target https://acct.blob.core.windows.net/wheels      # account key, connection string or SAS on stdin

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
from typing import TYPE_CHECKING, Any

from privpkg import urls
from privpkg.errors import NotFoundError, PrivpkgError
from privpkg.storage.base import AlreadyExists, BlobInfo, Credential, OwnSAS, Progress, bounded, missing_extra

if TYPE_CHECKING:
    from privpkg.http import CABundle

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


def sas_token(secret: str) -> str | None:
    """The SAS token in ``secret`` (without a leading ``?``), or None for an account key or a
    key connection string. A SAS is a query string holding both ``sv=`` and ``sig=``, as the
    portal, ``az storage container generate-sas`` and the SDK print it (with or without ``?``),
    or a connection string's ``SharedAccessSignature=`` part. An account key is base64, which
    has no ``&``, so the two cannot be confused."""
    from urllib.parse import parse_qs

    text = secret.strip()
    if "SharedAccessSignature=" in text and "AccountKey=" not in text:
        parts = dict(p.split("=", 1) for p in text.split(";") if "=" in p)
        text = parts["SharedAccessSignature"]
    text = text.removeprefix("?")
    keys = parse_qs(text, keep_blank_values=True)
    return text if "sv" in keys and "sig" in keys else None


def sas_permissions(sas: str) -> str | None:
    """The ``sp=`` permissions of a SAS token (``rl``, ``racwdl``...), or None when it has none
    (a SAS bound to a stored access policy carries them on the service)."""
    from urllib.parse import parse_qs

    return parse_qs(sas).get("sp", [None])[0]


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
    def __init__(self, container_url: str, credential: Credential, timeout: float | None = None) -> None:
        norm = urls.normalize(container_url)
        self.container_url = container_url.rstrip("/")
        self.emulator = urls.is_loopback(norm.host)
        self.container = norm.segments[-1]
        self.account = container_account(container_url)
        self.account_url = self.container_url.rsplit("/", 1)[0]
        self._kind = credential.kind
        # The account key (a connection string was split above), or the SAS token; "" for ambient.
        self._key = credential.secret
        self._conn_name = credential.name
        self._timeout = timeout
        self._client: Any = None
        self._delegation: Any = None  # the user delegation key, fetched once per storage

    def __repr__(self) -> str:
        return f"AzureStorage({self.container_url!r})"

    def _options(self) -> dict[str, Any]:
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
        if self.emulator:
            kw["api_version"] = EMULATOR_API_VERSION
        from privpkg import http

        verify = http.sdk_verify()  # the CA bundle open_client also passes (SAS and token clients too)
        if verify is not None:
            kw["connection_verify"] = verify
        return kw

    def _identity(self) -> Any:
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError:
            raise missing_extra("azure-identity", "azure-identity") from None
        import logging

        # Its own WARNING ("failed to retrieve a token", a dozen lines) would reach stderr beside
        # privpkg's one line, which says the same; a level the user set is kept.
        quiet = logging.getLogger("azure.identity")
        if quiet.level == logging.NOTSET:
            quiet.setLevel(logging.ERROR)
        # process_timeout bounds the az/azd/PowerShell token commands (10 s by default); under a
        # caller's deadline (storage.base.bounded) a second more, so the deadline's line wins.
        timeout = int(self._timeout) + 1 if self._timeout is not None else 10
        return DefaultAzureCredential(process_timeout=timeout)

    def _container(self) -> Any:
        if self._client is None:
            if self._kind == "key":
                kw = self._options()
                kw.pop("api_version", None)  # open_client sets it for an emulator
                self._client = open_client(self.account_url, self.account, self._key, self.container, emulator=self.emulator, **kw)
            else:
                # A SAS string is the SDK's SAS credential: appended to every request's URL.
                credential = self._key if self._kind == "sas" else self._identity()
                self._client = sdk().ContainerClient(self.account_url, self.container, credential=credential, **self._options())
        return self._client

    def _call(self, what: str, fn: Any, *args: Any, **kw: Any) -> Any:
        sdk()  # a missing SDK is reported as the extra to install
        from azure.core import exceptions as az

        from privpkg.log import sdk_records_withheld

        try:
            with sdk_records_withheld():  # urllib3's DEBUG lines hold a SAS connection's token
                return fn(*args, **kw)
        except (az.ResourceNotFoundError, az.ResourceExistsError) as exc:
            if "ContainerNotFound" in str(getattr(exc, "error_code", "")):
                raise PrivpkgError(f"container {self.container_url} does not exist; create it first") from None
            raise
        except az.ClientAuthenticationError as exc:
            if self._kind == "ambient" and getattr(exc, "status_code", None) is None:  # no token, not a refusal
                raise PrivpkgError(
                    f"your DefaultAzureCredential got no token for {self.container_url} while trying to {what} "
                    f"({type(exc).__name__}); sign in (az login) or set its environment (AZURE_CLIENT_ID, ...)"
                ) from None
            raise self._refused(what, str(getattr(exc, "error_code", "") or "")) from None
        except (az.ServiceRequestError, az.ServiceResponseError) as exc:  # refused, reset, timed out
            raise PrivpkgError(f"cannot reach {self.account_url} to {what}: {type(exc).__name__}") from None
        except az.HttpResponseError as exc:
            code = str(getattr(exc, "error_code", "") or "")
            if exc.status_code == 403 and ("AuthenticationFailed" in code or "AuthorizationFailure" in code or "AUTHORIZATION_FAILURE" in code.upper()
                                           or "PermissionMismatch" in code):
                raise self._refused(what, code) from None
            raise PrivpkgError(f"{self.container_url}: HTTP {exc.status_code} while trying to {what} ({getattr(exc, 'error_code', '')})") from None

    def _refused(self, what: str, code: str) -> PrivpkgError:
        """The one line for a 403: what to change depends on the credential."""
        if self._kind == "sas" and "PermissionMismatch" in code:  # the SAS is valid but lacks c/w (or r, l)
            if what != "upload":
                return PrivpkgError(f"the SAS token of connection {self._conn_name!r} does not permit to {what} in "
                                    f"{self.container_url} ({code}); update it with: privpkg connection set {self._conn_name} --update")
            return self._needs_write()
        if self._kind == "sas":
            return PrivpkgError(f"{self.container_url} refused the SAS token of connection {self._conn_name!r} while trying to "
                                f"{what} ({code or 403}; expired, or missing a permission); update it with: "
                                f"privpkg connection set {self._conn_name} --update")
        if self._kind == "ambient":
            return PrivpkgError(f"{self.container_url} refused your DefaultAzureCredential while trying to {what} ({code or 403}); "
                                "reading needs the Storage Blob Data Reader role, publishing Storage Blob Data Contributor")
        return PrivpkgError(f"{self.container_url} refused the account key while trying to {what}; update it with: "
                            f"privpkg connection set {self._conn_name} --update")

    def _needs_write(self) -> PrivpkgError:
        sp = sas_permissions(self._key)
        return PrivpkgError(f"the SAS token of connection {self._conn_name!r} cannot write to {self.container_url}"
                            f"{f' (sp={sp})' if sp else ''}: wheel add needs a SAS with create or write permission (c or w); "
                            "a read-only one (r, or rl) is enough to install")

    def head(self, key: str) -> BlobInfo | None:
        client = self._container().get_blob_client(key)  # first: it reports a missing SDK
        from azure.core.exceptions import ResourceNotFoundError

        try:
            props = self._call("read blob properties", client.get_blob_properties)
        except ResourceNotFoundError:
            return None
        return BlobInfo(key, props.size, (props.metadata or {}).get("sha256"))

    def put(self, key: str, path: Path, sha256: str, progress: Progress | None = None) -> None:
        if self._kind == "sas":
            sp = sas_permissions(self._key)
            if sp is not None and not set(sp) & set("cw"):  # checked before a byte is sent
                raise self._needs_write()
        client = self._container().get_blob_client(key)
        from azure.core.exceptions import ResourceExistsError

        from privpkg.log import sdk_debug_enabled  # the SDK's upload threads log out of sdk_records_withheld's reach

        last = [0]

        def hook(current: int, total: int | None) -> None:
            if progress:
                progress(current - last[0])
                last[0] = current

        with open(path, "rb") as fh:
            try:
                self._call(
                    "upload", client.upload_blob, fh, overwrite=False, metadata={"sha256": sha256},
                    length=path.stat().st_size, max_concurrency=1 if sdk_debug_enabled() else 2, progress_hook=hook,
                )
            except ResourceExistsError:
                raise AlreadyExists(f"{key} already exists in {self.container_url}") from None

    def put_bytes(self, key: str, data: bytes) -> None:
        # One Put Blob (the data is far below max_single_put_size) with If-None-Match: *, which
        # the service evaluates atomically: of concurrent writers exactly one gets 201.
        client = self._container().get_blob_client(key)
        from azure.core.exceptions import ResourceExistsError

        try:
            self._call("upload", client.upload_blob, data, overwrite=False, length=len(data))
        except ResourceExistsError:
            raise AlreadyExists(f"{key} already exists in {self.container_url}") from None

    def read_bytes(self, key: str) -> bytes:
        client = self._container().get_blob_client(key)
        from azure.core.exceptions import ResourceNotFoundError

        try:
            data: bytes = self._call("read", lambda: client.download_blob().readall())
        except ResourceNotFoundError:
            raise NotFoundError(f"{key} is not in {self.container_url}") from None
        return data

    def list_keys(self, prefix: str) -> list[BlobInfo]:
        blobs = self._call("list blobs", lambda: list(self._container().list_blobs(name_starts_with=prefix)))
        # A blob's ETag changes on every write, so it tells a blob recreated under its old
        # name (a container deleted and made again) from the one a reader copied.
        return sorted((BlobInfo(b.name, b.size, None, str(b.etag)) for b in blobs), key=lambda b: b.key)

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

    def ca_bundle(self) -> CABundle | None:
        from privpkg import http

        return http.ca_bundle()  # what _options passes as connection_verify (http.sdk_verify)

    def own_sas(self) -> OwnSAS | None:
        if self._kind != "sas":
            return None
        from urllib.parse import parse_qs

        fields = parse_qs(self._key)
        return OwnSAS(self._conn_name, sas_permissions(self._key), fields.get("se", [None])[0], "ss" in fields or "srt" in fields)

    def signed_url(self, key: str, ttl: int) -> str:
        from urllib.parse import quote

        url = f"{self.container_url}/{quote(key)}"
        if self._kind == "sas":
            return f"{url}?{self._key}"  # the connection's own SAS: nothing to derive
        blob = sdk()
        now = _dt.datetime.now(_dt.UTC)
        start, expiry = now - _dt.timedelta(minutes=5), now + _dt.timedelta(seconds=ttl)  # clock skew
        signer: dict[str, Any] = {"account_key": self._key}
        if self._kind == "ambient":
            signer = {"user_delegation_key": bounded(self._timeout, f"getting a user delegation key for {self.container_url}",
                                                     lambda: self._delegation_key(start, expiry))}
        sas = blob.generate_blob_sas(
            account_name=self.account,
            container_name=self.container,
            blob_name=key,
            permission=blob.BlobSasPermissions(read=True),
            start=start,
            expiry=expiry,
            protocol="https,http" if self.emulator else "https",
            **signer,
        )
        return f"{url}?{sas}"

    def _delegation_key(self, start: _dt.datetime, expiry: _dt.datetime) -> Any:
        """A user delegation key covering ``start``..``expiry`` (a network call: a token from
        DefaultAzureCredential, then Get User Delegation Key), reused while it covers them."""
        if self._delegation is None or self._delegation[1] < expiry:
            # A key lives up to 7 days; ask for an hour past this URL's expiry, so the next
            # signatures of this process reuse it.
            until = expiry + _dt.timedelta(hours=1)
            service = sdk().BlobServiceClient(self.account_url, credential=self._container().credential, **self._options())
            udk = self._call("get a user delegation key", service.get_user_delegation_key, start, until)
            self._delegation = (udk, until)
        return self._delegation[0]
