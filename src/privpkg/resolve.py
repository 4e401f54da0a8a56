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
from privpkg.errors import NotFoundError, PrivpkgError, UsageError
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


def _azure_match(url: str) -> tuple[Workspace, str] | None:
    """The Azure workspace whose container holds the blob at ``url``, and the blob name."""
    try:
        norm = urls.normalize(url)
    except UsageError:
        return None
    for ws in all_workspaces().values():
        if ws.storage != "azure":
            continue
        container = urls.normalize(ws.location)
        if urls.covers(container, norm) and norm.path != container.path:
            return ws, unquote(norm.path[len(container.path) :].rstrip("/"))
    return None


def azure_prefixes() -> list[str]:
    """Container URL prefixes the pip shim mounts itself on (plain blob URLs, item 9)."""
    try:
        return [ws.location + "/" for ws in all_workspaces().values() if ws.storage == "azure"]
    except PrivpkgError:
        return []


def resolve_url(url: str, ttl: int = DEFAULT_TTL) -> str:
    """A signed URL for ``url``; one-line PrivpkgError naming the fix for anything missing."""
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
    if storage.head(key) is None:
        raise NotFoundError(f"no wheel {key.rsplit('/', 1)[-1]} in workspace {ws.name!r} (see: privpkg wheel list --workspace {ws.name})")
    return storage.signed_url(key, ttl)


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
