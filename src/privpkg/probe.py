"""``privpkg connection test``: one authenticated request, its outcome put in words."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request

from privpkg import urls
from privpkg.connections import Connection
from privpkg.errors import UsageError


def probe(conn: Connection, url: str, timeout: float = 10.0) -> tuple[bool, str]:
    """Request ``url`` with ``conn``'s credential. Returns (ok, one-line message without secrets)."""
    norm = urls.normalize(url)
    if not urls.covers(urls.normalize(conn.target), norm):
        raise UsageError(f"{urls.redact(url)} is not under the connection's target {conn.target}; its secret is not sent there")
    token = base64.b64encode(f"{conn.username}:{conn.secret}".encode()).decode()
    req = urllib.request.Request(norm.url, method="GET")
    # An unredirected header is dropped if the server redirects, so the PAT never follows a
    # redirect to another host.
    req.add_unredirected_header("Authorization", f"Basic {token}")
    req.add_header("User-Agent", "privpkg-connection-test")
    shown = norm.url
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return True, f"OK: {shown} accepted the credential of {conn.name!r} (HTTP {resp.status})"
    except urllib.error.HTTPError as exc:
        code = exc.code
        if code == 401:
            return False, f"REJECTED: {shown} answered 401 Unauthorized: the PAT of {conn.name!r} is wrong, expired or revoked"
        if code == 403:
            return False, f"FORBIDDEN: {shown} answered 403 Forbidden: the PAT of {conn.name!r} is valid but lacks permission (check its scopes, e.g. Packaging: Read)"
        if code == 404:
            return False, f"NOT FOUND: {shown} answered 404; the server is reachable but nothing is there (try --url with the feed's simple index URL)"
        return False, f"FAILED: {shown} answered HTTP {code} {exc.reason}"
    except urllib.error.URLError as exc:
        reason = getattr(exc.reason, "strerror", None) or str(exc.reason)
        return False, f"UNREACHABLE: {shown}: {reason}"
    except (TimeoutError, OSError) as exc:
        return False, f"UNREACHABLE: {shown}: {exc.strerror or type(exc).__name__}"
