"""Fetch a lock's artifacts into a local wheelhouse, each checked against the lock's sha256.

pip and uv give a lock's direct URLs only a bare-host keyring lookup, which privpkg's trust rules
refuse by default, so privpkg fetches what a build or an image installs itself:

- ``privpkg://`` wheels (and plain blob URLs of a registered Azure workspace) through
  :func:`privpkg.wheelhouse.fetch`: signed in this process, checked against the sha256 the
  workspace recorded, the signed URL never shown or kept;
- ``http(s)`` URLs (feed files, public files) through :mod:`privpkg.http`, with the secret of the
  connection that answers their full URL (path-prefix match, same scheme and host), sent only
  over https or to loopback and never on a redirect (``add_unredirected_header``); none when no
  connection answers.

Every file is written to a temp file beside its place, hashed while it streams, and renamed in
only when it matches the lock's sha256. Paths, names, logs and errors never hold a secret or a
signature (URLs are shown through :func:`privpkg.urls.redact`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privpkg.errors import PrivpkgError, UsageError, shown

if TYPE_CHECKING:
    from privpkg.environments.pylock import Artifact

CHUNK = 1024 * 1024


def _safe_filename(filename: str) -> str:
    if not filename or filename in (".", "..") or "/" in filename or "\\" in filename or "\0" in filename or filename.startswith("."):
        raise UsageError(f"the lock names a file {shown(filename, 120)}, which is not a plain file name")
    return filename


class _Connections:
    """The credential lookup, opened (the store decrypted) only when an http(s) URL needs it."""

    def __init__(self) -> None:
        self._lookup: Any = None

    def ignored(self) -> list[str]:
        """Why a connection source was ignored (a malformed ``$PRIVPKG_CONNECTIONS``), one line each."""
        return list(self._lookup.errors) if self._lookup is not None else []

    def headers(self, url: str) -> dict[str, str]:
        from privpkg import urls

        if self._lookup is None:
            from privpkg.connections import CredentialLookup

            self._lookup = CredentialLookup()
        conn = self._lookup.find(url)
        if conn is None:
            return {}
        norm = urls.normalize(url)
        if norm.scheme != "https" and not urls.is_loopback(norm.host):
            # The trust rule: a secret travels over https only (loopback aside).
            raise UsageError(f"{urls.redact(url)}: connection {conn.name!r} answers it, but its secret is sent over https only")
        from privpkg.connections.model import auth_headers

        return auth_headers(conn, norm.host)


def _download(url: str, label: str, headers: dict[str, str], fd: int, digest: Any, timeout: float, ignored: Sequence[str] = ()) -> None:
    import urllib.parse
    import urllib.request

    from privpkg import http
    from privpkg.fileio import write_all

    req = urllib.request.Request(url)
    for name, value in headers.items():
        req.add_unredirected_header(name, value)  # a redirect elsewhere gets no credential

    def sink(chunk: bytes) -> None:
        digest.update(chunk)
        write_all(fd, chunk)

    host = urllib.parse.urlsplit(url).hostname
    # A variable that was ignored (a CI secret pasted with a newline...) is the likelier cause.
    hint = f" ({'; '.join(ignored)})" if ignored else " (no connection answers this URL: privpkg connection set ...)"
    http.stream(req, sink, label=label, host=host, timeout=timeout,
                on_http_error=lambda code: PrivpkgError(f"downloading {label} failed: HTTP {code} from {host}{hint}")
                if code in (401, 403) and not headers else None)


def _file_sha256(path: Path) -> str | None:
    # wheelhouse's, imported only here: a warm wheelhouse's miss needs neither it nor the
    # signing code it pulls in (~40 ms).
    from privpkg.wheelhouse import file_sha256

    return file_sha256(path)


def check_url(a: Artifact) -> None:
    """The rules an http(s) artifact's URL obeys before any connection's secret is looked up for
    it, here or in a Docker build's one RUN (``env dockerfile --secret-mount``): https only
    (loopback aside), no query, no path a server could resolve outside a connection's prefix."""
    from urllib.parse import urlsplit

    from privpkg import urls

    split = urlsplit(a.url)
    if "@" in split.netloc:
        raise UsageError(f"the lock's URL for {a.filename} has user info; a lock names files by stable URLs")
    if split.query:
        raise UsageError(f"the lock's URL for {a.filename} has a query (a signature?); a lock names files by stable URLs")
    if split.scheme != "https" and not urls.is_loopback((split.hostname or "").lower()):
        # The sha256 would catch a changed file, but not who watches: https only (loopback aside).
        raise UsageError(f"cannot fetch {a.filename} from {urls.redact(a.url)}: https only (plain http on loopback)")
    # A path a server may resolve outside the connection's prefix (nginx decodes %2F before
    # "..", Tomcat-based feeds strip ";..."): the connection's secret goes to none of them.
    segments = split.path.split("/")
    if any(s.startswith("..") for s in segments) or any(t in split.path.lower() for t in ("%2f", "%5c", ";", "\\")):
        raise UsageError(f"the lock's URL for {a.filename} has a path a server could resolve elsewhere ({urls.redact(a.url)}); "
                         "a lock names files by plain paths")


def _fetch_http(a: Artifact, dest: Path, conns: _Connections, timeout: float) -> None:
    from privpkg import urls
    from privpkg.fileio import commit_temp, shared_mode, temp_file

    label = a.filename
    check_url(a)
    headers = conns.headers(a.url.partition("#")[0])
    import hashlib  # OpenSSL's: fast on large files (see .digests)

    digest = hashlib.sha256()
    with temp_file(dest, shared_mode()) as (fd, tmp):
        try:
            _download(a.url.partition("#")[0], label, headers, fd, digest, timeout, conns.ignored())
        except PrivpkgError:
            raise
        except OSError as exc:
            # The sink's own failure (a full disk): say where, not only "No space left on device".
            from privpkg.fileio import FileWriteError

            raise FileWriteError(f"cannot write {dest}: {exc.strerror or exc}", exc.errno) from None
        got = digest.hexdigest()
        if got != a.sha256:
            from privpkg.wheelhouse import HashMismatch  # here: wheelhouse (and the signing code) only when needed

            raise HashMismatch(f"{label} does not match the lock's sha256 (locked {a.sha256[:16]}..., downloaded {got[:16]}... "
                               f"from {urls.redact(a.url)}); not kept")
        commit_temp(fd, tmp, dest)


def _fetch_signed(a: Artifact, folder: Path) -> Path:
    from privpkg import wheelhouse

    got = wheelhouse.fetch(a.url.partition("#")[0], folder)
    if got.sha256 != a.sha256:
        # The workspace's record and the lock disagree: the lock was made from other contents.
        got.path.unlink(missing_ok=True)
        from privpkg.wheelhouse import HashMismatch

        raise HashMismatch(f"{a.filename}: the workspace recorded sha256 {got.sha256[:16]}..., the lock {a.sha256[:16]}...; "
                           "lock the environment again")
    if got.path.name != a.filename:
        os.replace(got.path, folder / a.filename)
    return folder / a.filename


def fetch_artifacts(artifacts: Sequence[Artifact], dest: Path, *, timeout: float = 60, by_hash: bool = False) -> list[Path]:
    """Put every artifact in ``dest`` (``dest/FILE``; with ``by_hash``, ``dest/SHA256/FILE``, the
    build cache's content-addressed layout) and return their paths, in order. A file already
    there is kept when its sha256 matches (with ``by_hash``, when it exists: it was checked
    before it was renamed there). One-line PrivpkgError for a file that cannot be fetched or does
    not match; nothing that failed its check is left in ``dest``."""
    conns = _Connections()
    out: list[Path] = []
    names: dict[str, str] = {}
    for a in artifacts:
        filename = _safe_filename(a.filename)
        if not by_hash and names.setdefault(filename, a.sha256) != a.sha256:
            raise UsageError(f"two artifacts named {filename} with other contents; a wheelhouse holds one file per name")
        folder = dest / a.sha256 if by_hash else dest
        target = folder / filename
        folder.mkdir(parents=True, exist_ok=True)
        if (by_hash and target.is_file()) or (not by_hash and _file_sha256(target) == a.sha256):
            out.append(target)
            continue
        scheme = a.url.split(":", 1)[0].lower()
        from privpkg.resolve import is_signable  # here: a warm wheelhouse never reads the workspaces

        if is_signable(a.url.partition("#")[0]):
            out.append(_fetch_signed(a, folder))
        elif scheme in ("https", "http"):
            from urllib.parse import urlsplit

            if "@" in urlsplit(a.url).netloc:
                # A lock never holds user info (the locks part strips or refuses it); never send it.
                from privpkg import urls

                raise UsageError(f"{filename}: the lock's URL {urls.redact(a.url)} holds user info; lock it again without")
            _fetch_http(a, target, conns, timeout)
            out.append(target)
        else:
            from privpkg import urls

            raise UsageError(f"{filename}: the lock names it by {shown(urls.redact(a.url), 120)}; only privpkg:// and http(s) URLs are fetched")
    return out
