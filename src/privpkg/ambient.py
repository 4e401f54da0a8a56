"""Ambient credentials, and who may get them: the identity a reader already has on the machine
instead of a privpkg connection, namely AWS's default credential chain for S3 (environment,
``AWS_PROFILE`` and the shared files, SSO, an assumed role, container and instance roles) and
``DefaultAzureCredential`` for Azure (``pip install 'privpkg[azure-identity]'``).

They are used only when no connection serves the workspace, and only when both hold:

- the workspace is the user's own (their ``workspaces.toml``, or built in): a project's
  ``privpkg.toml`` is untrusted input, which may add workspaces but must never aim the user's
  cloud identity at anything;
- its endpoint is the cloud's own (S3: no ``endpoint_url``, or ``https://*.amazonaws.com`` /
  ``*.amazonaws.com.cn``; Azure: a public Blob host) or one the user listed
  (``trusted_endpoints`` in ``workspaces.toml``, or ``PRIVPKG_TRUSTED_ENDPOINTS``), since an
  SSO or role session, or an Entra token, is worth as much as an account key to whoever gets it.

:func:`refusal` says why not, as the clause callers append to their "no credentials" line.
"""

from __future__ import annotations

from privpkg import envvars, urls
from privpkg.errors import UsageError, shown
from privpkg.workspace import AZURE_BLOB_SUFFIXES, Workspace, trusted_endpoints, user_file

#: How each kind of workspace names its ambient credentials in messages.
AWS_CHAIN = "AWS default credentials"
AZURE_DEFAULT = "DefaultAzureCredential"
_AWS_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn")


def _cloud_endpoint(ws: Workspace) -> str | None:
    """The URL the credential would be sent to, or None when it is the cloud's own."""
    if ws.storage == "s3":
        if not ws.endpoint_url:
            return None
        norm = urls.normalize(ws.endpoint_url)
        own = norm.scheme == "https" and norm.port is None and norm.host.endswith(_AWS_SUFFIXES)
        return None if own else norm.url.rstrip("/")
    norm = urls.normalize(ws.location)
    own = norm.scheme == "https" and norm.port is None and norm.host.endswith(AZURE_BLOB_SUFFIXES)
    return None if own else norm.url.rstrip("/")


def _listed(endpoint: str) -> bool:
    want = urls.normalize(endpoint + "/")
    for entry in trusted_endpoints():
        try:
            if urls.covers(urls.normalize(entry, for_target=True), want):
                return True
        except UsageError:
            continue  # a malformed entry lists nothing
    return False


def refusal(ws: Workspace) -> str | None:
    """Why ``ws`` must not get ambient credentials (one clause naming the rule and the fix), or
    None when it may. Makes no request."""
    what = AWS_CHAIN if ws.storage == "s3" else AZURE_DEFAULT
    if ws.source not in ("user", "built-in"):
        where = ws.source.removeprefix("project ")
        return (f"not using your {what}: a project file cannot give them to workspace {shown(ws.name)!r} "
                f"(defined in {shown(where)}); only workspaces in {shown(user_file())} get them")
    try:
        endpoint = _cloud_endpoint(ws)
    except UsageError:
        return f"not using your {what}: the workspace's endpoint is not a valid URL"
    if endpoint is None or _listed(endpoint):
        return None
    cloud = "an AWS endpoint" if ws.storage == "s3" else "an Azure Blob host"
    return (f"not using your {what}: {shown(endpoint)} is not {cloud}; if it should get them, add it to "
            f"trusted_endpoints in {shown(user_file())} or to ${envvars.TRUSTED_ENDPOINTS}")
