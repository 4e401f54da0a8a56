"""Turn stable wheel URLs into short-lived signed ones.

Two kinds of URL are signed:

- ``privpkg://WORKSPACE/wheels/FILE.whl``, the URL ``privpkg wheel add`` prints;
- a plain ``https://`` URL of a blob inside a registered Azure workspace's container (what azureml
  users pasted as "the full URL to the package in blob storage").

    >>> resolve_url("privpkg://default/wheels/x-1.0-py3-none-any.whl")     # doctest: +SKIP
    'file:///home/me/.local/share/privpkg/workspaces/default/wheels/x-1.0-py3-none-any.whl'

:func:`resolve_requirements` writes a pip constraints file with ``name @ <signed URL>`` for every
such requirement, for uv and other tools that cannot use the pip shim.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from privpkg import urls
from privpkg.errors import NotFoundError, UsageError
from privpkg.workspace import Workspace, all_workspaces, get_workspace

DEFAULT_TTL = 600
MAX_TTL = 7 * 24 * 3600
SCHEME = "privpkg"


def check_ttl(ttl: int) -> int:
    if not isinstance(ttl, int) or ttl < 1 or ttl > MAX_TTL:
        raise UsageError(f"--ttl must be between 1 and {MAX_TTL} seconds (7 days), got {ttl}")
    return ttl


def parse_privpkg_url(url: str) -> tuple[str, str]:
    """(workspace, file name) from ``privpkg://WORKSPACE/wheels/FILE.whl``."""
    from privpkg.wheels import check_filename
    from privpkg.workspace import validate_name

    parts = urlsplit(url)
    if parts.scheme.lower() != SCHEME:
        raise UsageError(f"not a privpkg:// URL: {urls.redact(url)}")
    if parts.query or "@" in parts.netloc:
        raise UsageError(f"a privpkg:// URL has no query or user part: {urls.redact(url)}")
    path = unquote(parts.path)
    if not path.startswith("/wheels/") or path.count("/") != 2:
        raise UsageError(f"expected privpkg://WORKSPACE/wheels/FILE.whl, got {urls.redact(url)}")
    filename = path[len("/wheels/") :]
    check_filename(filename, strict=False)
    return validate_name(parts.netloc), filename


#: Hosts of Azure Blob Storage endpoints (public cloud, China, US government, DNS-zone
#: endpoints). Only these, and loopback emulators such as Azurite, are ever signed for or
#: intercepted by the pip shim, whatever a workspace definition says (defense in depth: the
#: workspace validator refuses other hosts too).
_AZURE_BLOB_HOST = re.compile(
    r"^[a-z0-9-]+\.(?:z[0-9]+\.)?blob\.(?:core\.windows\.net|core\.chinacloudapi\.cn|core\.usgovcloudapi\.net|storage\.azure\.net)$"
)


def _azure_container(ws: Workspace) -> urls.NormURL | None:
    """The normalized container URL of an Azure workspace, or None when its URL is not an Azure
    blob container (https on an Azure blob host) or a loopback emulator's (http or https)."""
    if ws.storage != "azure":
        return None
    try:
        norm = urls.normalize(ws.location)
    except (UsageError, AttributeError, TypeError):
        return None
    if urls.is_loopback(norm.host):
        ok = norm.scheme in ("http", "https") and len(norm.segments) == 2
    else:
        ok = norm.scheme == "https" and bool(_AZURE_BLOB_HOST.match(norm.host)) and len(norm.segments) == 1
    return norm if ok and all(norm.segments) else None


def _azure_match(url: str) -> tuple[Workspace, str] | None:
    """The Azure workspace whose container holds the blob at ``url``, and the blob name."""
    try:
        norm = urls.normalize(url)
    except UsageError:
        return None
    for ws in all_workspaces().values():
        container = _azure_container(ws)
        if container is not None and urls.covers(container, norm) and norm.path != container.path:
            return ws, unquote(norm.path[len(container.path) :].rstrip("/"))
    return None


def azure_prefixes() -> list[str]:
    """Container URL prefixes the pip shim mounts itself on (plain blob URLs). Never raises: a
    broken workspace file must not break pip, so it means no prefixes. Only Azure blob hosts and
    loopback emulators qualify; the shim decides on the first request to a prefix whether an
    AzureBlob connection covers it (:func:`azure_covered`)."""
    try:
        found = all_workspaces().values()
    except Exception:  # noqa: BLE001 - any broken definition: intercept nothing
        return []
    out = []
    for ws in found:
        container = _azure_container(ws)
        if container is not None:
            out.append(container.url)  # normalized, ends with "/"
    return out


def azure_covered(prefix: str) -> bool:
    """Whether an AzureBlob connection (from any source, the environment included) covers the
    container at ``prefix``. Reads (and so decrypts) the store: the pip shim calls it only on the
    first request to such a container. PrivpkgError if the store cannot be read."""
    from privpkg.connections import CredentialLookup

    return CredentialLookup(categories={"AzureBlob"}).find(prefix) is not None


def resolve_url(url: str, ttl: int = DEFAULT_TTL, *, check: bool = True) -> str:
    """A signed URL for ``url``; one-line PrivpkgError naming the fix for anything missing.

    With ``check`` (the ``privpkg resolve`` command) the object is looked up first, so a missing
    wheel is a NotFoundError before anything is downloaded. The pip shim passes ``check=False``:
    signing is offline (a SAS or a SigV4 presigned URL is computed locally), so no network I/O
    happens outside pip's own download, which pip's ``--timeout`` and ``--retries`` bound; the
    shim turns a 404 from the storage into the same "no wheel" line."""
    from privpkg.storage import open_storage

    check_ttl(ttl)
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == SCHEME:
        name, filename = parse_privpkg_url(url)
        ws = get_workspace(name)
        key = "wheels/" + filename
    elif scheme in ("https", "http"):
        hit = _azure_match(url)
        if hit is None:
            raise UsageError(f"{urls.redact(url)} is not in any registered Azure workspace (see: privpkg workspace list)")
        ws, key = hit
    else:
        raise UsageError(f"cannot sign {scheme or 'this'} URLs; expected privpkg://WORKSPACE/wheels/FILE.whl")
    storage = open_storage(ws)
    # A local workspace's check is a stat, offline like its signing: always done.
    if (check or ws.storage == "local") and storage.head(key) is None:
        raise NotFoundError(not_found_message(ws.name, key))
    return storage.signed_url(key, ttl)


def not_found_message(workspace: str, key: str) -> str:
    return f"no wheel {key.rsplit('/', 1)[-1]} in workspace {workspace!r} (see: privpkg wheel list --workspace {workspace})"


def local_path(url: str) -> str | None:
    """The file behind ``privpkg://W/wheels/F`` when W is a local workspace and F exists."""
    from privpkg.storage.local import LocalStorage

    name, filename = parse_privpkg_url(url)
    ws = get_workspace(name)
    if ws.storage != "local":
        return None
    path = LocalStorage(Path(ws.location))._path("wheels/" + filename)
    return str(path) if path.is_file() else None


def is_signable(url: str) -> bool:
    return url.lower().startswith(SCHEME + "://") or _azure_match(url) is not None


_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")
_OPTION = re.compile(r"^(-r|--requirement|-c|--constraint)(?:\s*=?\s*)(\S+)$")


def _logical_lines(text: str) -> list[str]:
    out: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw[:-1] if raw.endswith("\\") else raw
        buf += line
        if raw.endswith("\\"):
            continue
        buf = re.sub(r"(^|\s+)#.*$", "", buf).strip()
        if buf:
            out.append(_ENV_VAR.sub(lambda m: os.environ.get(m.group(1), m.group(0)), buf))
        buf = ""
    return out


def collect(path: Path, seen: set[Path] | None = None) -> list[tuple[str, str, str]]:
    """(name, url, marker) of every signable ``name @ URL`` in a requirements file, following
    nested ``-r`` and ``-c`` files relative to the file that names them."""
    from packaging.requirements import InvalidRequirement, Requirement

    seen = seen if seen is not None else set()
    path = path.resolve()
    if path in seen:
        return []
    seen.add(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    found: list[tuple[str, str, str]] = []
    for line in _logical_lines(text):
        opt = _OPTION.match(line)
        if opt:
            found += collect(path.parent / opt.group(2), seen)
            continue
        if line.startswith("-") or "@" not in line:
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.url and is_signable(req.url):
            found.append((req.name, req.url, str(req.marker) if req.marker else ""))
    return found


def resolve_requirements(path: Path, out: Path, ttl: int = DEFAULT_TTL) -> int:
    """Write a constraints file (mode 0600) pinning every signable requirement to a signed URL.
    Returns how many lines were written."""
    from privpkg.vault import _write_atomic

    lines = []
    for name, url, marker in collect(path):
        signed = resolve_url(url, ttl)
        lines.append(f"{name} @ {signed}" + (f" ; {marker}" if marker else ""))
    header = "# written by privpkg resolve: short-lived signed URLs, do not commit\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(out, (header + "".join(line + "\n" for line in lines)).encode(), 0o600)
    os.chmod(out, 0o600)
    return len(lines)
