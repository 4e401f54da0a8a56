"""A lock's artifacts fetched on the host into a wheelhouse, each checked against its sha256
before it gets its name there: the small stand-in :mod:`privpkg.environments.docker` uses until
:mod:`privpkg.environments.fetch` (``fetch_artifacts``) lands; then this module goes.

privpkg:// wheels go through :func:`privpkg.wheelhouse.fetch` (signed in this process, checked
against the workspace's record) and then against the lock; http(s) files through privpkg.http,
with the secret of the connection that answers their full URL (longest target, same scheme, host
and port) as an unredirected header, so a redirect elsewhere never carries it. Plain http only on
loopback; a URL with user info or a query (a signature) is refused, never sent. Errors name the
file, never a signed URL or a secret.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from privpkg import urls
from privpkg.errors import PrivpkgError, UsageError
from privpkg.fileio import FileWriteError, shared_mode, temp_file, write_all

CHUNK = 1024 * 1024


class ArtifactLike(Protocol):
    """What this module reads of a lock's artifact."""

    @property
    def url(self) -> str: ...
    @property
    def filename(self) -> str: ...
    @property
    def sha256(self) -> str: ...


def _sha256_of(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def _mismatch(a: ArtifactLike, got: str) -> PrivpkgError:
    return PrivpkgError(f"{a.filename} does not match the lock's sha256 (locked {a.sha256[:16]}..., got {got[:16]}...); not kept")


def _check_url(a: ArtifactLike) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(a.url)
    if parts.username is not None or parts.password is not None:
        raise UsageError(f"the lock's URL for {a.filename} holds user info; a lock names files without credentials")
    if parts.query:
        raise UsageError(f"the lock's URL for {a.filename} has a query (a signature?); a lock names files by stable URLs")
    host = parts.hostname or ""
    if parts.scheme != "https" and not (parts.scheme == "http" and urls.is_loopback(host)):
        raise UsageError(f"cannot fetch {a.filename} from {parts.scheme or 'a relative'} URL {urls.redact(a.url)}: https only (plain http on loopback)")
    return parts


def _download(a: ArtifactLike, dest: Path, timeout: float) -> None:
    import urllib.request

    from privpkg import http
    from privpkg.connections.lookup import CredentialLookup
    from privpkg.connections.model import auth_headers

    parts = _check_url(a)
    req = urllib.request.Request(a.url)
    conn = CredentialLookup().find(a.url)
    if conn is not None:
        for k, v in auth_headers(conn, parts.hostname or "").items():
            req.add_unredirected_header(k, v)  # not copied onto a redirect to another URL
    target = dest / a.filename
    digest = hashlib.sha256()
    label = f"{a.filename} from {parts.hostname}"
    with temp_file(target, shared_mode()) as (fd, tmp):
        try:
            with http.build_opener(ca=http.ca_bundle()).open(req, timeout=timeout) as resp:
                while chunk := resp.read(CHUNK):
                    digest.update(chunk)
                    write_all(fd, chunk)
        except urllib.error.HTTPError as exc:
            exc.close()
            who = f" (connection {conn.name!r})" if conn is not None else " (no connection answers its URL)"
            raise PrivpkgError(f"downloading {label} failed: HTTP {exc.code}{who}") from None
        except urllib.error.URLError as exc:
            why = exc.reason if isinstance(exc.reason, str) else getattr(exc.reason, "strerror", None) or type(exc.reason).__name__
            raise PrivpkgError(f"cannot download {label}: {why}") from None
        except TimeoutError:
            raise PrivpkgError(f"downloading {label} timed out after {timeout:g} s") from None
        except OSError as exc:
            if isinstance(exc, FileWriteError):
                raise
            raise PrivpkgError(f"downloading {label} failed: {exc.strerror or type(exc).__name__}") from None
        got = digest.hexdigest()
        if got != a.sha256:
            raise _mismatch(a, got)
        try:
            os.fsync(fd)
            os.replace(tmp, target)
        except OSError as exc:
            raise FileWriteError(f"cannot write {target}: {exc.strerror or exc}", exc.errno) from None


def fetch_artifacts(artifacts: Sequence[ArtifactLike], dest: Path, *, timeout: float = 60) -> list[Path]:
    """Each artifact at ``dest/filename`` with the lock's sha256 (one already there is kept)."""
    from privpkg.wheelhouse import fetch

    dest.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for a in artifacts:
        target = dest / a.filename
        if target.is_symlink() or _sha256_of(target) != a.sha256:
            if a.url.startswith("privpkg:"):
                got = fetch(a.url, dest)
                if got.path.name != a.filename:
                    raise UsageError(f"the lock names {a.filename} at {a.url}, a wheel with another file name")
                if got.sha256 != a.sha256:
                    os.unlink(got.path)
                    raise _mismatch(a, got.sha256)
            else:
                _download(a, dest, timeout)
        paths.append(target)
    return paths
