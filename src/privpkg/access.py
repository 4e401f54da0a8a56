"""Opening a workspace's storage: the workspace's :class:`~privpkg.storage.base.StorageSpec`,
its credential found among the connections, then :func:`privpkg.storage.open_storage`.

- Azure: the ``AzureBlob`` connection whose target covers the container URL; a connection string
  is split into account and key, and must name the container's account; a SAS token (``?sv=...
  &sig=...``, or a connection string's ``SharedAccessSignature``) is used as it is.
- S3: the ``S3`` connection covering ``s3://bucket[/prefix]`` that is bound to the workspace's
  endpoint. Credentials are bound to the endpoint they were stored for: a workspace definition
  (perhaps from a cloned project) that points a credentialed bucket at another endpoint gets no
  signed request at all.
- With no connection: ambient credentials (AWS's default chain; DefaultAzureCredential with
  ``privpkg[azure-identity]``) where :func:`privpkg.ambient.refusal` allows them; where it does
  not, its clause ends the "no credentials" line and nothing is sent.
- local: no credential; only the built-in ``default`` folder is private to the user.

A missing cloud SDK is reported before a missing credential, as each storage call would.
"""

from __future__ import annotations

from pathlib import Path

from privpkg import ambient, urls
from privpkg.errors import PrivpkgError
from privpkg.storage import open_storage
from privpkg.storage.base import KINDS, Credential, Storage, StorageSpec
from privpkg.workspace import Workspace, default_workspace


def storage_spec(ws: Workspace) -> StorageSpec:
    """Where ``ws`` keeps its objects, as the storage layer takes it."""
    if ws.storage not in KINDS:
        raise PrivpkgError(f"workspace {ws.name!r} has unknown storage {ws.storage!r}")
    # The built-in default workspace lives in privpkg's own data dir: private to the user.
    # Any other folder is shared by whoever set it up, and keeps the modes they chose.
    private = ws.storage == "local" and ws.name == "default" and Path(ws.location) == Path(default_workspace().location)
    return StorageSpec(ws.storage, ws.location, ws.endpoint_url, ws.region, private)


def open_workspace_storage(ws: Workspace, timeout: float | None = None) -> Storage:
    """The storage of ``ws``, with its credential; one-line PrivpkgError naming the fix when the
    SDK or the credential is missing. ``timeout`` (pip's, from the shim) bounds the network
    calls that signing with ambient credentials makes."""
    spec = storage_spec(ws)
    credential = None
    if spec.kind == "azure":
        credential = azure_credential(ws)
    elif spec.kind == "s3":
        credential = s3_credential(ws)
    return open_storage(spec, credential, timeout)


def azure_credential(ws: Workspace) -> Credential:
    """The credential for ``ws``'s container: its AzureBlob connection's account key or SAS
    token, else DefaultAzureCredential where allowed and installed."""
    import importlib.util

    from privpkg.connections import CredentialLookup
    from privpkg.storage import azure

    azure.sdk()  # first: a missing SDK is reported as the extra to install
    container_url = ws.location.rstrip("/")
    account = azure.container_account(container_url)
    conn = CredentialLookup(categories={"AzureBlob"}).find(container_url + "/")
    if conn is None:
        why = ambient.refusal(ws)
        if why is None and importlib.util.find_spec("azure.identity") is not None:
            return Credential(ambient.AZURE_DEFAULT, "", None, "ambient")
        hint = why or f"or pip install 'privpkg[azure-identity]' to use your {ambient.AZURE_DEFAULT}"
        raise PrivpkgError(
            f"no AzureBlob credentials for {container_url}; run: privpkg connection set NAME "
            f"--category AzureBlob --target {container_url} (account key, connection string or SAS token on stdin); {hint}"
        )
    sas = azure.sas_token(conn.secret)
    if sas is not None:
        return Credential(conn.name, sas, None, "sas")
    named, key = azure.parse_account_secret(conn.secret)
    if named and named != account:
        raise PrivpkgError(f"connection {conn.name!r} is for account {named!r}, not {account!r}")
    return Credential(conn.name, key)


def s3_credential(ws: Workspace) -> Credential:
    """The access key pair for ``ws``'s ``s3://bucket[/prefix]`` at its endpoint (None: AWS), from
    the S3 connection bound to that endpoint; else AWS's default chain where allowed."""
    from privpkg.connections import CredentialLookup
    from privpkg.storage import s3

    s3.sdk()  # first: a missing SDK is reported before anything else
    location, endpoint_url = ws.location.rstrip("/"), ws.endpoint_url
    bucket = location[len("s3://") :].strip("/").partition("/")[0]
    try:
        where = urls.s3_endpoint_label(endpoint_url)
    except PrivpkgError as exc:
        raise PrivpkgError(f"workspace endpoint for {location}: {exc}") from None
    conn, other = CredentialLookup(categories={"S3"}).find_s3(location, endpoint_url)
    if conn is None:
        why = ambient.refusal(ws)
        if why is None:
            return Credential(ambient.AWS_CHAIN, "", None, "ambient")
        endpoint_opt = "" if where == "https://s3.amazonaws.com" else f" --endpoint {where}"
        if other:
            bound = ", ".join(f"{c.name!r} ({urls.s3_endpoint_label(c.endpoint)})" for c in other[:3])
            raise PrivpkgError(
                f"no S3 credentials for {where}/{bucket}: connection {bound} is bound to another endpoint; "
                f"if {where} should get them, run: privpkg connection set {other[0].name} --update --keep-secret"
                f"{endpoint_opt or ' --endpoint https://s3.amazonaws.com'}; {why}"
            )
        raise PrivpkgError(
            f"no S3 credentials for {where}/{bucket}; run: privpkg connection set NAME --category S3 "
            f"--target s3://{bucket} --username ACCESS_KEY_ID{endpoint_opt} (secret access key on stdin); {why}"
        )
    return Credential(conn.name, conn.secret, conn.username)
