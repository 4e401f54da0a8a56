"""What a connection is: :class:`Connection` and the validators every field passes through.

A connection is a named target (a feed base URL, a blob container URL or an ``s3://`` bucket)
with the secret that unlocks it. This module checks values; it reads no source and no store
(:mod:`privpkg.connections.sources`, :mod:`privpkg.connections.store`).
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

from privpkg import urls
from privpkg.errors import CONTROL, UsageError

CATEGORIES = ("PythonFeed", "CondaChannel", "AzureBlob", "S3")
#: The categories whose secret is sent as HTTP Basic (what keyring serves).
HTTP_AUTH_CATEGORIES = frozenset({"PythonFeed", "CondaChannel"})
#: How the secret is sent: ``PAT`` as the HTTP Basic password (with ``username``); for CondaChannel
#: connections only (conda's requests get them through privpkg's conda auth handler), ``Bearer``
#: as ``Authorization: Bearer SECRET`` (``token SECRET`` on anaconda.org, as conda-auth sends it),
#: and ``ApiKey`` as quetz's ``X-API-Key: SECRET`` header.
AUTH_TYPES = ("PAT", "Bearer", "ApiKey")
BEARER = "Bearer"
API_KEY = "ApiKey"
#: The auth types that are not HTTP Basic: only privpkg's conda auth handler sends them.
CHANNEL_ONLY = frozenset({BEARER, API_KEY})
DEFAULT_USERNAME = "__token__"
MAX_NAME = 200
#: A PAT is well under 1 KiB and an account key under 100 bytes; 64 KiB leaves room for a
#: certificate-sized token while catching a file piped in by mistake.
MAX_SECRET = 64 * 1024
MAX_USERNAME = 256
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@/:+~-]{0,199}$")
#: The ``source`` of a connection from the encrypted store (others name their variable).
STORE = "store"


class Connection:
    """One connection. The secret is kept out of ``repr`` and :meth:`public`.

    A plain slotted class rather than a dataclass, to keep the keyring lookup's import cheap."""

    FIELDS = ("name", "category", "target", "auth_type", "username", "secret", "expires", "source", "host_wide", "endpoint")
    __slots__ = FIELDS

    def __init__(
        self,
        name: str,
        category: str,
        target: str,
        auth_type: str,
        username: str,
        secret: str,
        expires: str | None = None,
        source: str = STORE,
        host_wide: bool = False,
        endpoint: str | None = None,
    ) -> None:
        self.name, self.category, self.target, self.auth_type = name, category, target, auth_type
        self.username, self.secret, self.expires, self.source = username, secret, expires, source
        #: Opt-in: also answer bare ``host[:port]`` lookups, which carry no scheme and no path.
        self.host_wide = host_wide
        #: S3 only: the endpoint these credentials belong to (None = AWS).
        self.endpoint = endpoint

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Connection) and all(getattr(self, f) == getattr(other, f) for f in self.FIELDS)

    def __hash__(self) -> int:
        return hash((self.name, self.source, self.target))

    def __repr__(self) -> str:
        return (
            f"Connection(name={self.name!r}, category={self.category!r}, target={self.target!r}, "
            f"auth_type={self.auth_type!r}, username={self.username!r}, secret='***', "
            f"expires={self.expires!r}, source={self.source!r}, host_wide={self.host_wide!r}, "
            f"endpoint={self.endpoint!r})"
        )

    @classmethod
    def from_record(cls, name: str, record: dict[str, Any], source: str = STORE) -> Connection:
        """The connection a store record (what :meth:`with_secret` gave, as the store keeps it)
        describes; fields written before they existed take their defaults."""
        return cls(
            name=name,
            category=record.get("category", "PythonFeed"),
            target=record["target"],
            auth_type=record.get("auth_type", "PAT"),
            username=record.get("username") or DEFAULT_USERNAME,
            secret=record["secret"],
            expires=record.get("expires"),
            source=source,
            host_wide=record.get("host_wide") is True,
            endpoint=record.get("endpoint") or None,
        )

    def with_secret(self) -> dict[str, Any]:
        """All fields, the secret included: what the store keeps. Never print it; see :meth:`public`."""
        return {f: getattr(self, f) for f in self.FIELDS}

    @property
    def norm(self) -> urls.NormURL:
        return urls.normalize(self.target)

    def days_left(self, today: _dt.date | None = None) -> int | None:
        if not self.expires:
            return None
        return (_dt.date.fromisoformat(self.expires[:10]) - (today or _dt.date.today())).days

    @property
    def expired(self) -> bool:
        left = self.days_left()
        return left is not None and left < 0

    def public(self) -> dict[str, Any]:
        """Everything but the secret, for listings and JSON output (``endpoint`` only for S3)."""
        d = self.with_secret()
        del d["secret"]
        if self.category != "S3":
            del d["endpoint"]
        return d


def is_anaconda_org(host: str) -> bool:
    """anaconda.org and its subdomains (conda.anaconda.org) take a token as ``Authorization:
    token SECRET``, as conda-auth sends it there, not ``Bearer``.

    >>> is_anaconda_org("conda.anaconda.org"), is_anaconda_org("evilanaconda.org")
    (True, False)
    """
    host = host.lower()
    return host == "anaconda.org" or host.endswith(".anaconda.org")


def auth_headers(conn: Connection, host: str) -> dict[str, str]:
    """The header that sends ``conn``'s secret to ``host``: HTTP Basic for a PAT, ``Bearer
    SECRET`` for a Bearer connection (``token SECRET`` on anaconda.org), ``X-API-Key`` for an
    ApiKey connection."""
    if conn.auth_type == BEARER:
        return {"Authorization": f"{'token' if is_anaconda_org(host) else 'Bearer'} {conn.secret}"}
    if conn.auth_type == API_KEY:
        return {"X-API-Key": conn.secret}
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{conn.username}:{conn.secret}".encode()).decode()}


def sent_as(auth_type: str) -> str:
    """How a person reads an auth type on the wire, for messages.

    >>> sent_as("PAT"), sent_as("Bearer"), sent_as("ApiKey")
    ('a PAT as HTTP Basic', 'a Bearer token', 'an X-API-Key header')
    """
    return {BEARER: "a Bearer token", API_KEY: "an X-API-Key header"}.get(auth_type, "a PAT as HTTP Basic")


def validate_connection_name(name: str) -> str:
    """A connection name: 1-200 of letters, digits and ``. _ - @ / : + ~``, starting with a letter or digit."""
    if isinstance(name, str) and len(name) > MAX_NAME:
        raise UsageError(f"the connection name is too long ({len(name)} characters; at most {MAX_NAME})")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise UsageError(
            f"invalid connection name {name!r}: use 1-200 letters, digits and . _ - @ / : + ~, "
            "starting with a letter or digit"
        )
    return name


def validate_category(category: str) -> str:
    for c in CATEGORIES:
        if isinstance(category, str) and c.lower() == category.lower():
            return c
    raise UsageError(f"unknown category {category!r}; choose one of {', '.join(CATEGORIES)}")


def validate_auth_type(auth_type: str) -> str:
    for a in AUTH_TYPES:
        if isinstance(auth_type, str) and a.lower() == auth_type.lower():
            return a
    raise UsageError(f"unknown auth type {auth_type!r}; supported: {', '.join(AUTH_TYPES)}")


def validate_auth_for(category: str, auth_type: str) -> str:
    """``auth_type`` for a connection of ``category``: Bearer only for CondaChannel (pip, uv and
    the keyring API send a username and password, never a bearer token)."""
    auth_type = validate_auth_type(auth_type)
    if auth_type in CHANNEL_ONLY and category != "CondaChannel":
        raise UsageError(f"auth type {auth_type} is for CondaChannel connections; a {category} connection sends its secret as PAT")
    return auth_type


def validate_secret(secret: str) -> str:
    if not isinstance(secret, str) or secret == "":
        raise UsageError("the secret is empty")
    if len(secret) > MAX_SECRET or len(secret.encode("utf-8", "surrogatepass")) > MAX_SECRET:
        raise UsageError("the secret is larger than 64 KiB; a PAT or key is much shorter (was a file piped in by mistake?)")
    if CONTROL.search(secret):
        raise UsageError("the secret contains a control character (a newline, tab or similar)")
    return secret


def validate_username(username: str | None) -> str:
    if username is None or username == "":
        return DEFAULT_USERNAME
    if not isinstance(username, str) or CONTROL.search(username) or ":" in username:
        raise UsageError("the username must not contain ':' or control characters")
    if len(username) > MAX_USERNAME:
        raise UsageError(f"the username is too long ({len(username)} characters; at most {MAX_USERNAME})")
    return username


def validate_expires(expires: str | _dt.date | None) -> str | None:
    if expires is None or expires == "":
        return None
    if isinstance(expires, _dt.datetime):
        return expires.date().isoformat()
    if isinstance(expires, _dt.date):
        return expires.isoformat()
    text = str(expires).strip()
    try:
        return _dt.date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    try:
        return _dt.datetime.fromisoformat(text).date().isoformat()
    except ValueError:
        raise UsageError(f"invalid expiry date {expires!r}: use YYYY-MM-DD") from None


#: How ``keyring set`` (which has no --allow-http) stores a plain-http target all the same.
HTTP_BY_CONNECTION_SET = "`privpkg connection set NAME --target URL --allow-http`"


def validate_target(target: str, category: str = "PythonFeed", *, allow_http: bool = False, http_hint: str = HTTP_BY_CONNECTION_SET) -> str:
    """Normalize a connection target; refuse what could leak its secret. ``http_hint``: how the
    calling command consents to a plain-http target (its own ``--allow-http`` where it has one)."""
    norm = urls.normalize(target, for_target=True)
    if category == "S3":
        # The bucket is the target; where it lives is the connection's endpoint, bound separately
        # (workspaces name buckets as s3://, so an http(s) target could never serve one).
        if norm.scheme != "s3":
            raise UsageError(
                f"an S3 target is s3://BUCKET[/PREFIX], not {urls.redact(target)}; "
                "give a non-AWS endpoint with --endpoint URL"
            )
        return norm.url
    if norm.scheme not in ("https", "http"):
        raise UsageError(f"unsupported URL scheme {norm.scheme!r} for a {category} target; use https://")
    _refuse_plain_http(norm, allow_http, "target", "the secret would travel unencrypted", http_hint)
    return norm.url


def _refuse_plain_http(norm: urls.NormURL, allow_http: bool, what: str, why: str, how: str) -> None:
    """Plain http only on loopback or with ``--allow-http``: what travels there is readable."""
    if norm.scheme == "http" and not (allow_http or urls.is_loopback(norm.host)):
        raise UsageError(f"refusing plain-http {what} {norm.url}: {why}; use https, or {how} if you really mean it")


def validate_endpoint(endpoint: str | None, *, allow_http: bool = False) -> str | None:
    """Normalize an S3 endpoint URL (None or "" = AWS). Plain http only on loopback or with
    ``allow_http``, as for targets: the request signature travels with every request."""
    if endpoint is None or endpoint == "":
        return None
    if not isinstance(endpoint, str):
        raise UsageError("the S3 endpoint must be a URL string")
    norm = urls.normalize(endpoint, for_target=True)
    if norm.scheme not in ("https", "http"):
        raise UsageError(f"unsupported S3 endpoint scheme {norm.scheme!r}; use https://")
    _refuse_plain_http(norm, allow_http, "S3 endpoint", "requests would travel unencrypted", "pass --allow-http")
    key = urls.s3_endpoint_key(norm.url)
    return None if key == "aws" and norm.host == "s3.amazonaws.com" else norm.url.rstrip("/")


def validate_flag(value: Any, what: str) -> bool:
    """A JSON boolean (or absent): anything else is a mistake, not a truthy opt-in."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise UsageError(f"{what} must be true or false")
    return value


def validate_endpoint_for(category: str, endpoint: Any, allow_http: bool) -> str | None:
    """A connection's endpoint: only S3 connections have one (None = AWS)."""
    if endpoint is None or endpoint == "":
        return None
    if category != "S3":
        raise UsageError("an endpoint is only for S3 connections")
    return validate_endpoint(endpoint, allow_http=allow_http)
