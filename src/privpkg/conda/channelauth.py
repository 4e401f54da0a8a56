"""conda's requests to private channels: which ``CondaChannel`` connection answers a request URL
and the header that carries its secret (:func:`headers_for`), and the one line that names the
connection to fix after a 401 or 403 (:func:`explain_status`).

privpkg's conda auth handler (``privpkg.conda.plugin``, a conda ``ChannelAuthBase`` that
``channel_settings: [{channel: ..., auth: privpkg}]`` in condarc routes a channel to) calls them
for every request; this module never imports conda, so CI tests it without one.

Rules, the keyring backend's (:mod:`privpkg.connections.lookup`) restricted to CondaChannel
connections: the longest target that is a path-segment prefix of the request URL, on the same
scheme, host and port; only ``https`` URLs, and ``http`` on loopback, ever get a secret. A
channel that redirects to another scheme, host or port (quetz sends package downloads to signed
storage URLs) gets privpkg's header taken off before requests follows it (:func:`strip_if_cross_origin`:
requests itself drops only ``Authorization`` on such a hop, never ``X-API-Key``), and a request
to that host matches no target.

conda logs a response's request headers at ``-vv`` and puts them in its HTTP errors'
``response_details`` (``--json`` prints them): the handler therefore gives each response a copy
of its request with privpkg's header values replaced by :data:`HIDDEN` (:func:`hide`). A ``PAT`` connection is sent as HTTP Basic (its username and the
PAT), a ``Bearer`` connection as ``Authorization: Bearer TOKEN`` (``token TOKEN`` on anaconda.org,
as conda-auth sends it), an ``ApiKey`` connection as quetz's ``X-API-Key: KEY``.

conda calls the handler for each request, so the decrypted lookup is kept for the process and
rebuilt only when the store file or the lookup's environment variables change (as the keyring
backend does).
"""

from __future__ import annotations

import os
import re
from typing import Any

from privpkg import envvars, paths, urls
from privpkg.connections import CredentialLookup
from privpkg.connections.model import BEARER, Connection, auth_headers, sent_as
from privpkg.errors import PrivpkgError, UsageError

CATEGORY = "CondaChannel"
#: A conda subdir (``noarch``, ``linux-64``, ``osx-arm64``, ``win-64``, ``emscripten-wasm32``...):
#: the segment between a channel's URL and its files.
_SUBDIR = re.compile(r"^(noarch|[a-z0-9]+-[a-z0-9_]+)$")

_snapshot: tuple[tuple[Any, ...], CredentialLookup] | None = None


def _inputs() -> tuple[Any, ...]:
    """What the lookup was built from: the store file's stamp, the lookup's variables, the path."""
    store = str(paths.store_path())
    try:
        st = os.stat(store)
        stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
    except FileNotFoundError:
        stamp = None
    return stamp, tuple(os.environ.get(v) for v in envvars.LOOKUP_INPUTS), store


def _lookup() -> CredentialLookup:
    """The CondaChannel lookup, cached for the process while its inputs are unchanged. Raises
    PrivpkgError (one line) when the store or its key cannot be read."""
    global _snapshot
    inputs = _inputs()
    if _snapshot is not None and _snapshot[0] == inputs:
        return _snapshot[1]
    # No store file: no key is needed (and none asked for) to know it holds nothing.
    lookup = CredentialLookup(document={} if inputs[0] is None else None, categories=(CATEGORY,))
    _snapshot = (inputs, lookup)
    return lookup


def allowed(url: str) -> urls.NormURL | None:
    """``url`` normalized when a secret may go there (https, or http on loopback), else None.

    >>> allowed("http://conda.example.com/c/") is None, allowed("http://127.0.0.1:8/c/").host
    (True, '127.0.0.1')
    """
    try:
        norm = urls.normalize(url)
    except UsageError:
        return None
    if norm.scheme == "https" or (norm.scheme == "http" and urls.is_loopback(norm.host)):
        return norm
    return None


def connection_for(url: str) -> Connection | None:
    """The CondaChannel connection that answers request ``url``, or None (no connection, or a
    scheme that never gets a secret). Raises PrivpkgError for an unreadable store."""
    if allowed(url) is None:
        return None
    try:
        return _lookup().find(url)
    except UsageError:
        return None


def headers_for(url: str) -> dict[str, str]:
    """The headers that authenticate conda's request to ``url``: ``{"Authorization": ...}`` from
    the connection that answers it, or ``{}``. Raises :class:`~privpkg.errors.PrivpkgError`
    with one line when the store cannot be read."""
    conn = connection_for(url)
    if conn is None:
        return {}
    return auth_headers(conn, urls.normalize(url).host)


def channel_url(url: str) -> str:
    """The channel a request URL belongs to: the URL without its file and subdir segments.

    >>> channel_url("https://h/api/conda/chan/linux-64/repodata.json?x=1")
    'https://h/api/conda/chan/'
    """
    shown = urls.redact(url).split("?", 1)[0]
    head, _, _ = shown.rpartition("/")
    base, _, last = head.rpartition("/")
    return (base if _SUBDIR.match(last) and "://" in base else head) + "/"


_explained: set[str] = set()


def explain_status(url: str, status: int, *, once: bool = True) -> str | None:
    """After conda's request to ``url`` got ``status``: for a 401 or 403, the one line that names
    the connection to fix (or the command that adds one); None for any other status, and (with
    ``once``) for a line already given in this process: conda tries several files of a channel
    (notices, repodata.json.zst, repodata.json) before it gives up, and one line is enough.
    Never raises and never shows a secret."""
    if status not in (401, 403):
        return None
    line = _explain(url, status)
    if once:
        if line in _explained:
            return None
        _explained.add(line)
    return line


def _explain(url: str, status: int) -> str:
    channel = channel_url(url)
    if allowed(url) is None:
        return (f"{channel} answered HTTP {status}; privpkg sends no credential to it: only https URLs (and http on "
                "loopback) get one. Use the channel's https URL")
    try:
        conn = connection_for(url)
    except PrivpkgError as exc:
        return f"{channel} answered HTTP {status} and privpkg could not read its connections: {exc}"
    if conn is None:
        return _missing(url, channel, status)
    sent = sent_as(conn.auth_type)
    expired = f"; it expired on {conn.expires}" if conn.expired else ""
    fix = f"privpkg connection set {conn.name} --update" if conn.source == "store" else f"the secret in ${conn.source[4:]}"
    if status == 401:
        why = f"refused connection {conn.name!r} ({sent}, HTTP 401{expired}): the secret is wrong or revoked; renew it with: {fix}"
    else:
        why = (f"forbade connection {conn.name!r} ({sent}, HTTP 403{expired}): its secret lacks access to this channel "
               f"or has expired; renew it with: {fix}")
    if conn.source == "store" and status == 401 and conn.auth_type in ("PAT", BEARER):
        other = "PAT" if conn.auth_type == BEARER else BEARER
        why += f" (or, if the server takes {'HTTP Basic' if other == 'PAT' else 'a Bearer token'}: --keep-secret --auth-type {other})"
    return f"{channel} {why}"


def _missing(url: str, channel: str, status: int) -> str:
    """No CondaChannel connection answers ``url``: name a connection of another category that
    covers it (the likely mistake), else the command that adds one."""
    try:
        other = CredentialLookup(categories=None).find(url)
    except (PrivpkgError, UsageError):
        other = None
    if other is not None and other.category != CATEGORY:
        return (f"{channel} answered HTTP {status}: no CondaChannel connection answers it; connection {other.name!r} covers it "
                f"but is a {other.category}: privpkg connection set {other.name} --update --keep-secret --category {CATEGORY}")
    return (f"no connection answers {channel} (HTTP {status}): privpkg auth login {channel} --category {CATEGORY} "
            "(add --auth-type Bearer or ApiKey for a token server)")


#: What conda's logs and error details show instead of privpkg's header values.
HIDDEN = "<hidden by privpkg>"


def same_origin(url: str, location: str) -> bool:
    """Whether a redirect from ``url`` to ``location`` (absolute or relative) stays on the same
    scheme, host and port (default ports made explicit).

    >>> same_origin("https://c.example/ch/noarch/x", "/ch/noarch/y"), same_origin("https://c.example/x", "https://c.example:443/y")
    (True, True)
    >>> same_origin("https://c.example/x", "https://cdn.example/x"), same_origin("https://c.example/x", "http://c.example/x")
    (False, False)
    """
    from urllib.parse import urljoin, urlsplit

    def origin(u: str) -> tuple[str, str | None, int | None]:
        p = urlsplit(u)
        try:
            port = p.port or {"https": 443, "http": 80}.get(p.scheme)
        except ValueError:  # a port that is not a number: never the same origin
            return ("", None, None)
        return p.scheme.lower(), (p.hostname or "").rstrip(".") or None, port

    return origin(url) == origin(urljoin(url, location))


def strip_if_cross_origin(headers: Any, names: tuple[str, ...], sent_url: str, location: str | None) -> bool:
    """Take privpkg's ``names`` out of ``headers`` (the request requests copies for the next hop)
    when a redirect to ``location`` leaves ``sent_url``'s origin. True if it did.

    >>> h = {"X-API-Key": "k", "Accept": "*/*"}
    >>> strip_if_cross_origin(h, ("X-API-Key",), "https://q.example/ch/x", "/ch/y"), h
    (False, {'X-API-Key': 'k', 'Accept': '*/*'})
    >>> strip_if_cross_origin(h, ("X-API-Key",), "https://q.example/ch/x", "https://bucket.s3.example/x?sig"), h
    (True, {'Accept': '*/*'})
    """
    if location is None or same_origin(sent_url, location):
        return False
    for name in names:
        headers.pop(name, None)
    return True


def hide(headers: Any, names: tuple[str, ...]) -> None:
    """Replace the values of privpkg's ``names`` in ``headers`` (a copy conda may print) by :data:`HIDDEN`.

    >>> h = {"Authorization": "Basic x", "Accept": "*/*"}; hide(h, ("Authorization",)); h
    {'Authorization': '<hidden by privpkg>', 'Accept': '*/*'}
    """
    for name in names:
        if name in headers:
            headers[name] = HIDDEN
