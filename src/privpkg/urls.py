"""URL normalization and the path-segment prefix rule that decides which URLs a secret may reach.

Everything that compares a URL with a connection target goes through :func:`normalize`, so two
spellings of one resource (``HTTPS://H:443/a/./b/%7Euser``, ``https://h/a/b/~user/``) always
compare equal, and look-alikes (``https://h/org-evil``, ``https://h.evil.com/org``) never do.

    >>> normalize("HTTPS://Pkgs.Example.COM:443/Org/./feed/%7Eme").url
    'https://pkgs.example.com/Org/feed/~me/'
    >>> covers(normalize("https://h/org"), normalize("https://h/org/_packaging/f/pypi/simple/"))
    True
    >>> covers(normalize("https://h/org"), normalize("https://h/org-evil/"))
    False

Host names are compared after IDNA 2008 / UTS 46 non-transitional processing (as requests and uv
do; the stdlib ``idna`` codec is IDNA 2003 and maps ``straße`` to ``strasse``), so
``https://straße.example/`` and ``https://strasse.example/`` are two different hosts.

This module is on the keyring lookup path: it imports only the standard library at import time;
the ``idna`` package is loaded only for a non-ASCII host.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from privpkg.errors import UsageError

DEFAULT_PORTS = {"http": 80, "https": 443}
#: Longest URL privpkg accepts, as a target or for a lookup. Old browsers and many servers stop
#: near 2 KB (IE: 2083); a feed base URL is far shorter, so anything longer is a mistake.
MAX_URL = 2048
#: DNS limit for a whole host name (RFC 1035), checked after IDNA encoding.
MAX_HOST = 253
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_HOST_OK = re.compile(r"^[a-z0-9.\-_]+$")
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\]")


class NormURL:
    """A normalized URL: scheme, netloc (host[:port], default port dropped) and a path that ends
    with "/". ``segments`` is the path split on "/" without the trailing empty piece.

    A plain slotted class, not a dataclass: building a dataclass costs about a millisecond at
    import, and this module is imported by every keyring lookup."""

    __slots__ = ("host", "path", "port", "scheme")

    def __init__(self, scheme: str, host: str, port: int | None, path: str) -> None:
        self.scheme, self.host, self.port, self.path = scheme, host, port, path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NormURL) and self.url == other.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __repr__(self) -> str:
        return f"NormURL({self.url!r})"

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port is None or DEFAULT_PORTS.get(self.scheme) == self.port:
            return host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.path}"

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path[1:-1].split("/")) if self.path != "/" else ()

    def prefixes(self) -> list[str]:
        """Every URL that would cover this one, longest first: the candidates for a lookup."""
        segs = self.segments
        base = f"{self.scheme}://{self.netloc}/"
        return [base + "".join(s + "/" for s in segs[:i]) for i in range(len(segs), -1, -1)]


def _fix_escape(m: re.Match[str]) -> str:
    ch = chr(int(m.group(1), 16))
    return ch if ch in _UNRESERVED else "%" + m.group(1).upper()


def _remove_dot_segments(path: str) -> str:
    # RFC 3986 section 5.2.4, on whole segments.
    out: list[str] = []
    segs = path.split("/")
    for i, seg in enumerate(segs):
        last = i == len(segs) - 1
        if seg == ".":
            if last:
                out.append("")
        elif seg == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(seg)
    result = "/".join(out)
    return result if result.startswith("/") else "/" + result


def _idna_encode(host: str) -> str:
    """IDNA 2008 with UTS 46 mapping, non-transitional: ``ß`` stays ``ß`` (``xn--strae-oqa``),
    never ``ss``. The import costs a few ms, so only non-ASCII hosts pay it."""
    import idna

    try:
        return idna.encode(host, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        raise UsageError(f"host {host!r} is not a valid internationalized domain name") from None


def normalize_host(host: str) -> str:
    """Lower-case and IDNA-encode a host name; IPv6 literals keep their brackets off."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:  # IPv6 literal
        import ipaddress

        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            raise UsageError(f"invalid IPv6 address {host!r}") from None
    if len(host) > MAX_URL:
        raise UsageError(f"the host name is too long ({len(host)} characters)")
    try:
        # Percent-escapes in a host are UTF-8 (RFC 3986 section 3.2.2), as browsers decode them.
        host = unquote(host, errors="strict")
    except UnicodeDecodeError:
        raise UsageError("the host contains percent-escapes that are not UTF-8") from None
    host = host.rstrip(".")
    if not host:
        raise UsageError("the URL has no host")
    if not host.isascii():
        host = _idna_encode(host)
    host = host.lower()
    if not _HOST_OK.match(host) or ".." in host:
        raise UsageError(f"host {host[:80]!r} contains characters a host name cannot have")
    if len(host) > MAX_HOST:
        raise UsageError(f"the host name is longer than {MAX_HOST} characters")
    return host


def normalize(url: str, *, for_target: bool = False) -> NormURL:
    """Normalize ``url``. Userinfo, query and fragment are dropped, or refused when ``for_target``.

    Raises :class:`UsageError` with a one-line message for anything that is not an absolute URL.
    """
    if not isinstance(url, str) or not url:
        raise UsageError("empty URL")
    if len(url) > MAX_URL:
        # Never echo it: it could be anything, a pasted secret included.
        raise UsageError(f"the URL is longer than {MAX_URL} characters ({len(url)})")
    if _FORBIDDEN.search(url):
        raise UsageError("URL contains whitespace, a control character or a backslash")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"malformed URL: {exc}") from None
    scheme = parts.scheme.lower()
    if not scheme or not parts.netloc:
        raise UsageError(f"not an absolute URL (expected scheme://host/...): {redact(url)}")
    if for_target:
        if "@" in parts.netloc:
            raise UsageError("a target URL must not contain user:password@; store the secret in the connection instead")
        if parts.query or "?" in url:
            raise UsageError("a target URL must not contain a query string (?...)")
        if parts.fragment or "#" in url:
            raise UsageError("a target URL must not contain a fragment (#...)")
    host = normalize_host(parts.hostname or "")
    if port == DEFAULT_PORTS.get(scheme):
        port = None
    path = _PCT.sub(_fix_escape, parts.path or "/")
    path = _remove_dot_segments(path)
    if not path.endswith("/"):
        path += "/"
    return NormURL(scheme, host, port, path)


def normalize_netloc(service: str) -> tuple[str, int | None]:
    """Parse the bare ``host[:port]`` that pip sends as its second keyring lookup."""
    if len(service) > MAX_URL:
        raise UsageError(f"the host is longer than {MAX_URL} characters")
    if _FORBIDDEN.search(service) or "/" in service or "@" in service:
        raise UsageError(f"not a host[:port]: {service!r}")
    try:
        parts = urlsplit("//" + service)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"malformed host: {exc}") from None
    return normalize_host(parts.hostname or ""), port


def covers(target: NormURL, url: NormURL) -> bool:
    """True when ``target`` is ``url`` or a path-segment prefix of it, on the same scheme and netloc."""
    return (
        target.scheme == url.scheme
        and target.netloc == url.netloc
        and url.path.startswith(target.path)
    )


#: Compiled at its first use (an S3 connection), not at import: every keyring lookup imports this.
_AWS_S3_HOST = r"^s3([.-][a-z0-9-]+)?\.amazonaws\.com$"


def s3_endpoint_key(endpoint: str | None) -> str:
    """The identity of an S3 endpoint, for binding credentials to it: ``"aws"`` for None and for
    every ``https://s3.amazonaws.com`` / ``https://s3[.-]REGION.amazonaws.com`` (one AWS account
    works in every region), else the normalized ``scheme://host[:port][/path]`` with no trailing
    slash. Raises UsageError for a malformed endpoint.

        >>> s3_endpoint_key("https://s3.eu-central-1.amazonaws.com/") == s3_endpoint_key(None)
        True
        >>> s3_endpoint_key("HTTP://127.0.0.1:9000/")
        'http://127.0.0.1:9000'
    """
    if endpoint is None or endpoint == "":
        return "aws"
    norm = normalize(endpoint, for_target=True)
    if norm.scheme == "https" and norm.port is None and norm.path == "/" and re.match(_AWS_S3_HOST, norm.host):
        return "aws"
    return norm.url.rstrip("/")


def s3_endpoint_label(endpoint: str | None) -> str:
    """How messages name an endpoint: its URL, or AWS's global endpoint for None."""
    key = s3_endpoint_key(endpoint)
    return "https://s3.amazonaws.com" if key == "aws" else key


def is_loopback(host: str) -> bool:
    """Whether ``host`` (normalized) surely names this machine: a literal loopback address or
    ``localhost`` itself, which every resolver (the hosts file) maps to loopback. Other
    ``*.localhost`` names are not: RFC 6761 asks resolvers to answer loopback, but glibc without
    nss-myhostname sends them to DNS, where an on-path spoofer picks the address, and plain http
    (a PAT or a SAS in clear) is allowed on loopback without --allow-http."""
    if host == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact(url: str) -> str:
    """``url`` with any user:password@ and query string masked, for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<malformed URL>"
    netloc = parts.netloc
    query = "?***" if parts.query else ""  # the fragment is always dropped: it may hold anything
    if netloc:
        _, at, hostport = netloc.rpartition("@")
        port = hostport.rsplit(":", 1)[1] if ":" in hostport and not hostport.startswith("[") else ""
        if port and not port.isdigit():  # `https://u:SECRET?x@h`: the authority ended early, at a `?`
            hostport = "***"
        netloc = ("***@" if at else "") + hostport
    if not netloc:
        # `user:pass@host/x` (no `//`): all before an `@` in the first segment may be secret.
        first, rest = re.match(r"([^/?#]*)(.*)", url, re.DOTALL).groups()  # type: ignore[union-attr]  # always matches
        if "@" in first:
            path = rest.split("#", 1)[0].split("?", 1)[0] if rest.startswith("/") else ""
            return "***@" + first.rsplit("@", 1)[1] + path + query
    # Only the parts that were there: `notaurl` stays `notaurl`, not `://notaurl`.
    head = f"{parts.scheme}:" if parts.scheme else ""
    if netloc or url[len(head):].startswith("//"):
        head += f"//{netloc}"
    return f"{head}{parts.path}{query}"
