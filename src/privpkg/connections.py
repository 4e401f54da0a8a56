"""Connections: a named feed base URL with the secret that unlocks it, and the lookup that picks
one for a URL.

The Python API mirrors azureml's ``Workspace`` connection verbs::

    import privpkg
    privpkg.set_connection("myfeed", "PythonFeed", "https://pkgs.dev.azure.com/org/",
                           "PAT", value=pat)
    privpkg.list_connections(category="PythonFeed")   # -> [Connection(...)], never a string
    privpkg.get_connection("myfeed").target           # 'https://pkgs.dev.azure.com/org/'
    privpkg.delete_connection("myfeed")

Where connections come from, in the order :class:`CredentialLookup` consults them when two
define the same target (the longest matching target always wins first):

1. ``$PRIVPKG_CONNECTIONS``: a JSON list (or name-keyed object) of connections, read-only;
2. ``$ARTIFACTS_CREDENTIALPROVIDER_EXTERNAL_FEED_ENDPOINTS`` and
   ``$VSS_NUGET_EXTERNAL_FEED_ENDPOINTS``: Azure Artifacts' credential-provider format, read-only;
3. the encrypted store (:mod:`privpkg.vault`), written by ``set_connection`` and ``keyring set``.

Matching rules (see :meth:`CredentialLookup.find`): a URL lookup is answered by the longest target
that is a path-segment prefix of it, on the same scheme, host and port. A bare ``host[:port]``
lookup (pip's second lookup, uv's ``host`` lookup) carries neither scheme nor path, so it is
answered only by connections that opted in with ``host_wide`` (``connection set --host-wide``);
such an https connection is then also reachable from ``http://`` URLs on that host.

An S3 connection is bound to an endpoint (``endpoint``; None means AWS): it serves a workspace only
when both the bucket and the endpoint match (:func:`find_s3`).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from collections.abc import Iterable
from typing import Any

from privpkg import envvars, urls
from privpkg.errors import NotFoundError, PrivpkgError, UsageError
from privpkg.vault import Vault

CATEGORIES = ("PythonFeed", "CondaChannel", "AzureBlob", "S3")
HTTP_AUTH_CATEGORIES = frozenset({"PythonFeed", "CondaChannel"})
AUTH_TYPES = ("PAT",)
DEFAULT_USERNAME = "__token__"
ENV_CONNECTIONS = envvars.CONNECTIONS
ENV_ENDPOINTS = envvars.AZURE_ENDPOINTS
MAX_NAME = 200
#: A PAT is well under 1 KiB and an account key under 100 bytes; 64 KiB leaves room for a
#: certificate-sized token while catching a file piped in by mistake.
MAX_SECRET = 64 * 1024
MAX_USERNAME = 256
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@/:+~-]{0,199}$")
_NAME_BAD = re.compile(r"[^A-Za-z0-9._@/:+~-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
        source: str = "store",
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

    def as_dict(self) -> dict[str, Any]:
        """All fields, the secret included (for the store)."""
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
        d = self.as_dict()
        del d["secret"]
        if self.category != "S3":
            del d["endpoint"]
        return d


def validate_name(name: str) -> str:
    if isinstance(name, str) and len(name) > MAX_NAME:
        raise UsageError(f"the connection name is too long ({len(name)} characters; at most {MAX_NAME})")
    if not isinstance(name, str) or not _NAME.match(name):
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


def validate_secret(secret: str) -> str:
    if not isinstance(secret, str) or secret == "":
        raise UsageError("the secret is empty")
    if len(secret) > MAX_SECRET or len(secret.encode("utf-8", "surrogatepass")) > MAX_SECRET:
        raise UsageError("the secret is larger than 64 KiB; a PAT or key is much shorter (was a file piped in by mistake?)")
    if _CONTROL.search(secret):
        raise UsageError("the secret contains a control character (a newline, tab or similar)")
    return secret


def validate_username(username: str | None) -> str:
    if username is None or username == "":
        return DEFAULT_USERNAME
    if not isinstance(username, str) or _CONTROL.search(username) or ":" in username:
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


def validate_target(target: str, category: str = "PythonFeed", *, allow_http: bool = False) -> str:
    """Normalize a connection target; refuse what could leak its secret."""
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
    _refuse_plain_http(norm, allow_http, "target", "the secret would travel unencrypted",
                       "`privpkg connection set NAME --target URL --allow-http`")
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


def _from_raw(name: str, d: dict[str, Any], source: str = "store") -> Connection:
    return Connection(
        name=name,
        category=d.get("category", "PythonFeed"),
        target=d["target"],
        auth_type=d.get("auth_type", "PAT"),
        username=d.get("username") or DEFAULT_USERNAME,
        secret=d["secret"],
        expires=d.get("expires"),
        source=source,
        host_wide=d.get("host_wide") is True,
        endpoint=d.get("endpoint") or None,
    )


def _env_connections(environ: dict[str, str] | os._Environ[str], errors: list[str]) -> list[Connection]:
    """Parse the read-only environment sources. Problems are appended to ``errors`` (one line
    each, no secrets) and the offending variable is skipped, so a lookup never raises."""
    out: list[Connection] = []
    raw = environ.get(ENV_CONNECTIONS)
    if raw:
        try:
            items = json.loads(raw)
            if isinstance(items, dict):
                for k, v in items.items():
                    if not isinstance(v, dict):
                        raise UsageError(f"entry {k[:80]!r} is not an object")
                items = [{**v, "name": k} for k, v in items.items()]
            if not isinstance(items, list):
                raise UsageError("expected a JSON list of connections (or an object keyed by name)")
            seen: set[str] = set()
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    raise UsageError(f"entry {i} is not an object")
                name = item.get("name") or f"env-{i + 1}"
                if not isinstance(name, str):
                    raise UsageError(f"entry {i} has a name that is not a string")
                name = validate_name(name)
                if name in seen:
                    raise UsageError(f"duplicate connection name {name!r}")
                seen.add(name)
                category = validate_category(item.get("category", "PythonFeed"))
                allow_http = validate_flag(item.get("allow_http"), f"entry {name!r}: allow_http")
                secret = item.get("secret", item.get("value", item.get("password", item.get("pat"))))
                if not isinstance(secret, str):
                    raise UsageError(f"entry {name!r} has no secret (key 'secret')")
                target = item.get("target") or item.get("url")
                if not isinstance(target, str):
                    raise UsageError(f"entry {name!r} has no target URL (key 'target')")
                out.append(
                    Connection(
                        name=name,
                        category=category,
                        target=validate_target(target, category, allow_http=allow_http),
                        auth_type=validate_auth_type(item.get("auth_type", "PAT")),
                        username=validate_username(item.get("username")),
                        secret=validate_secret(secret),
                        expires=validate_expires(item.get("expires")),
                        source=f"env:{ENV_CONNECTIONS}",
                        host_wide=validate_flag(item.get("host_wide"), f"entry {name!r}: host_wide"),
                        endpoint=_endpoint_for(category, item.get("endpoint"), allow_http),
                    )
                )
        except (ValueError, PrivpkgError) as exc:
            # json.JSONDecodeError messages quote positions, never the document.
            errors.append(f"ignoring ${ENV_CONNECTIONS}: {exc}")
            out = []
        except (TypeError, AttributeError, KeyError, RecursionError) as exc:
            # A wrong JSON shape that slipped past the checks above: still one line, no secret.
            errors.append(f"ignoring ${ENV_CONNECTIONS}: unexpected JSON shape ({type(exc).__name__})")
            out = []
    for var in ENV_ENDPOINTS:
        raw = environ.get(var)
        if not raw:
            continue
        found: list[Connection] = []
        try:
            doc = json.loads(raw)
            creds = doc.get("endpointCredentials") if isinstance(doc, dict) else None
            if not isinstance(creds, list):
                raise UsageError("expected {\"endpointCredentials\": [...]}")
            for i, item in enumerate(creds):
                if not isinstance(item, dict) or not isinstance(item.get("endpoint"), str):
                    raise UsageError(f"endpointCredentials[{i}] has no endpoint")
                password = item.get("password")
                if not isinstance(password, str):
                    raise UsageError(f"endpointCredentials[{i}] has no password")
                found.append(
                    Connection(
                        name=f"{var.split('_')[0].lower()}-{i + 1}",
                        category="PythonFeed",
                        target=validate_target(item["endpoint"]),
                        auth_type="PAT",
                        username=validate_username(item.get("username")),
                        secret=validate_secret(password),
                        source=f"env:{var}",
                    )
                )
        except (ValueError, PrivpkgError) as exc:
            errors.append(f"ignoring ${var}: {exc}")
            found = []
        except (TypeError, AttributeError, KeyError, RecursionError) as exc:
            errors.append(f"ignoring ${var}: unexpected JSON shape ({type(exc).__name__})")
            found = []
        out.extend(found)
    return out


def _endpoint_for(category: str, endpoint: Any, allow_http: bool) -> str | None:
    if endpoint is None or endpoint == "":
        return None
    if category != "S3":
        raise UsageError("an endpoint is only for S3 connections")
    return validate_endpoint(endpoint, allow_http=allow_http)


class CredentialLookup:
    """Owns the whole credential lookup for one snapshot of all sources.

    Order of sources, spelled out once: (1) ``$PRIVPKG_CONNECTIONS``, (2) the Azure Artifacts
    endpoint variables, (3) the encrypted store. A lookup takes the longest target that covers
    the URL on a path-segment boundary; among equal targets the earlier source wins. A requested
    username is preferred over length: the longest covering target with that username wins, and
    only when none has it does the longest target overall.

        >>> lk = CredentialLookup(store={}, environ={ENV_CONNECTIONS:   # $PRIVPKG_CONNECTIONS
        ...     '[{"name": "a", "target": "https://h/org", "secret": "s3cr3t"}]'})
        >>> lk.find("https://h/org/feed/simple/").name
        'a'
        >>> lk.find("https://h/org-evil/") is None
        True
    """

    def __init__(
        self,
        store: dict[str, Any] | None = None,
        environ: dict[str, str] | os._Environ[str] | None = None,
        categories: Iterable[str] | None = HTTP_AUTH_CATEGORIES,
        vault: Vault | None = None,
    ) -> None:
        self.errors: list[str] = []
        environ = os.environ if environ is None else environ
        wanted = None if categories is None else frozenset(categories)
        if store is None:
            store = (vault or Vault()).load()
        self._by_target: dict[str, list[tuple[str, Any, str]]] = {}
        self._by_netloc: dict[str, list[str]] = {}
        # netloc -> the entries that opted in to bare-host lookups: pip asks a bare host after
        # every miss, so that answer must not build a Connection for every target on the host.
        self._host_wide: dict[str, list[tuple[str, Any, str]]] = {}
        for conn in _env_connections(environ, self.errors):
            if wanted is None or conn.category in wanted:
                self._add(conn.target, conn.name, conn, conn.source)
        for name, raw in (store.get("connections") or {}).items():
            if wanted is None or raw.get("category", "PythonFeed") in wanted:
                self._add(raw["target"], name, raw, "store")

    def _add(self, target: str, name: str, item: Any, source: str) -> None:
        bucket = self._by_target.get(target)
        netloc = target.split("/", 3)[2]
        if bucket is None:
            self._by_target[target] = bucket = []
            self._by_netloc.setdefault(netloc, []).append(target)
        entry = (name, item, source)
        bucket.append(entry)
        if item.host_wide if isinstance(item, Connection) else item.get("host_wide") is True:
            self._host_wide.setdefault(netloc, []).append(entry)

    @staticmethod
    def _conn(entry: tuple[str, Any, str]) -> Connection:
        name, item, source = entry
        return item if isinstance(item, Connection) else _from_raw(name, item, source)

    def _pick(self, buckets: list[list[tuple[str, Any, str]]], username: str | None) -> Connection | None:
        if username:
            for bucket in buckets:
                for entry in bucket:
                    if self._conn(entry).username == username:
                        return self._conn(entry)
        return self._conn(buckets[0][0]) if buckets else None

    def find(self, service: str, username: str | None = None) -> Connection | None:
        """The connection for ``service``: a URL, or pip's bare ``host[:port]``. None if no
        connection applies or a bare host is ambiguous. Raises UsageError for malformed input."""
        if "://" not in service:
            return self._find_host(service, username)
        norm = urls.normalize(service)
        buckets = [self._by_target[p] for p in norm.prefixes() if p in self._by_target]
        return self._pick(buckets, username)

    @staticmethod
    def _netlocs(service: str) -> tuple[str, str | None]:
        """The netloc keys a bare ``host[:port]`` lookup meets, and the scheme an explicit
        default port names. Targets are stored normalized, so a bare host without a port only
        meets targets on their scheme's default port, and "host:port" only that explicit port."""
        host, port = urls.normalize_netloc(service)
        key = f"[{host}]" if ":" in host else host
        scheme = {443: "https://", 80: "http://"}.get(port) if port is not None else None
        return (key if port is None else f"{key}:{port}"), scheme

    def host_entries(self, service: str) -> list[Connection]:
        """Every connection a bare ``host[:port]`` lookup could mean, opted in or not (for
        ``doctor``). Raises UsageError for a malformed host."""
        netloc, scheme = self._netlocs(service)
        targets = list(self._by_netloc.get(netloc, ()))
        if scheme:  # an explicit default port names the scheme too
            bare = netloc.rsplit(":", 1)[0]
            targets += [t for t in self._by_netloc.get(bare, ()) if t.startswith(scheme)]
        return [self._conn(e) for t in targets for e in self._by_target[t]]

    def _find_host(self, service: str, username: str | None) -> Connection | None:
        # A bare host carries no scheme and no path: pip asks it for http://h/anything after a
        # 401, and uv asks it before sending. Only a connection whose owner opted in answers it;
        # among those, one secret must be unambiguous (a username may pick one).
        netloc, scheme = self._netlocs(service)
        found = list(self._host_wide.get(netloc, ()))
        if scheme:
            bare = netloc.rsplit(":", 1)[0]
            found += [e for e in self._host_wide.get(bare, ()) if self._conn(e).target.startswith(scheme)]
        entries = [self._conn(e) for e in found]
        if username:
            mine = [c for c in entries if c.username == username]
            if mine and len({c.secret for c in mine}) == 1:
                return mine[0]
        if entries and len({c.secret for c in entries}) == 1:
            return entries[0]
        return None

    def all(self) -> list[Connection]:
        return [self._conn(e) for bucket in self._by_target.values() for e in bucket]

    def find_s3(self, location: str, endpoint_url: str | None) -> tuple[Connection | None, list[Connection]]:
        """The S3 connection for ``location`` (``s3://bucket[/prefix]``) at ``endpoint_url``
        (None = AWS): the longest target covering the location whose endpoint is the same
        endpoint. Also returns the connections that cover the bucket but are bound to another
        endpoint, so the caller can say why none served."""
        want = urls.s3_endpoint_key(endpoint_url)
        norm = urls.normalize(location.rstrip("/") + "/")
        other: list[Connection] = []
        for p in norm.prefixes():
            for entry in self._by_target.get(p, ()):
                conn = self._conn(entry)
                if conn.category != "S3":
                    continue
                try:
                    same = urls.s3_endpoint_key(conn.endpoint) == want
                except UsageError:
                    same = False
                if same:
                    return conn, other
                other.append(conn)
        return None, other


def _store_connections(data: dict[str, Any]) -> dict[str, Any]:
    conns = data.get("connections")
    if conns is None:
        data["version"] = 1
        conns = data["connections"] = {}
    return conns


def set_connection(
    name: str,
    category: str,
    target: str,
    auth_type: str = "PAT",
    value: str | None = None,
    *,
    username: str | None = None,
    expires: str | _dt.date | None = None,
    allow_http: bool = False,
    replace: bool = True,
    host_wide: bool = False,
    endpoint: str | None = None,
    vault: Vault | None = None,
) -> Connection:
    """Add or update connection ``name`` in the encrypted store and return it.

    ``replace=False`` refuses to overwrite an existing name. Two connections may not serve the
    same target for the same username: that would make lookups ambiguous.

    ``host_wide=True`` lets the connection answer bare ``host[:port]`` lookups (pip's second
    lookup, uv's host lookup); those carry no scheme, so an https connection that opts in is
    reachable from ``http://`` URLs on its host. ``endpoint`` (S3 only) binds the credentials
    to an S3-compatible endpoint; None means AWS.
    """
    name = validate_name(name)
    category = validate_category(category)
    target = validate_target(target, category, allow_http=allow_http)
    if category == "S3" and host_wide:
        raise UsageError("--host-wide is for feed connections; S3 credentials are never sent as HTTP Basic")
    conn = Connection(
        name=name,
        category=category,
        target=target,
        auth_type=validate_auth_type(auth_type),
        username=validate_username(username),
        secret=validate_secret(value),  # type: ignore[arg-type]
        expires=validate_expires(expires),
        host_wide=validate_flag(host_wide, "host_wide"),
        endpoint=_endpoint_for(category, endpoint, allow_http),
    )

    def apply(data: dict[str, Any]) -> None:
        conns = _store_connections(data)
        if name in conns and not replace:
            raise UsageError(f"connection {name!r} already exists; pass --update to replace it")
        for other, raw in conns.items():
            if other != name and raw["target"] == target and raw.get("username") == conn.username:
                raise UsageError(
                    f"connection {other!r} already serves {target} for username {conn.username!r}; "
                    f"update or delete it instead"
                )
        now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        record = {k: v for k, v in conn.as_dict().items() if k not in ("name", "source")}
        record["created"] = conns.get(name, {}).get("created", now)
        record["updated"] = now
        conns[name] = record

    (vault or Vault()).update(apply)
    return conn


def list_connections(
    category: str | None = None,
    target: str | None = None,
    *,
    vault: Vault | None = None,
    errors: list[str] | None = None,
) -> list[Connection]:
    """All connections (store and environment), optionally only one category and only those
    whose target covers ``target``. Sorted by name; always a list. A broken environment source
    is skipped; its one-line reason is appended to ``errors`` when given."""
    cat = validate_category(category) if category else None
    lookup = CredentialLookup(vault=vault, categories=None)
    if errors is not None:
        errors.extend(lookup.errors)
    conns = lookup.all()
    if cat:
        conns = [c for c in conns if c.category == cat]
    if target:
        norm = urls.normalize(target)
        conns = [c for c in conns if urls.covers(c.norm, norm)]
    return sorted(conns, key=lambda c: (c.name, c.source))


def get_connection(name: str, *, vault: Vault | None = None, errors: list[str] | None = None) -> Connection:
    """The connection called ``name``; :class:`NotFoundError` if there is none."""
    lookup = CredentialLookup(vault=vault, categories=None)
    if errors is not None:
        errors.extend(lookup.errors)
    for conn in lookup.all():
        if conn.name == name:
            return conn
    raise NotFoundError(f"no connection named {name!r} (see: privpkg connection list)")


def delete_connection(name: str, *, vault: Vault | None = None) -> None:
    """Remove ``name`` from the store. Environment connections cannot be deleted here."""

    def apply(data: dict[str, Any]) -> None:
        conns = data.get("connections") or {}
        if name not in conns:
            for conn in _env_connections(os.environ, []):
                if conn.name == name:
                    var = conn.source.split(":", 1)[1]
                    raise UsageError(f"connection {name!r} comes from ${var}; change that variable instead")
            raise NotFoundError(f"no connection named {name!r} (see: privpkg connection list)")
        del conns[name]

    (vault or Vault()).update(apply)


def upsert_for_url(service: str, username: str, secret: str, *, vault: Vault | None = None) -> Connection:
    """What ``keyring set URL USER`` does: update the connection with exactly this target and
    username, or create one named after the URL."""
    target = validate_target(service)
    username = validate_username(username)
    secret = validate_secret(secret)
    base = _name_for(urls.normalize(target))

    def apply(data: dict[str, Any]) -> Connection:
        conns = _store_connections(data)
        for name, raw in conns.items():
            if raw["target"] == target and raw.get("username") == username:
                raw["secret"] = secret
                raw["updated"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
                return _from_raw(name, raw)
        candidates = [base, f"{username}@{base}"] + [f"{base}~{i}" for i in range(2, 10000)]
        found = next((c for c in candidates if c not in conns and _NAME.match(c)), None)
        if found is None:
            raise UsageError(f"too many connections for {target}; name one with: privpkg connection set NAME --target URL")
        name = found
        now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        conns[name] = {
            "category": "PythonFeed",
            "target": target,
            "auth_type": "PAT",
            "username": username,
            "secret": secret,
            "expires": None,
            "created": now,
            "updated": now,
        }
        return _from_raw(name, conns[name])

    return (vault or Vault()).update(apply)


def _name_for(norm: urls.NormURL) -> str:
    """A valid connection name made from a URL: host[:port]/path with the characters a name
    cannot hold replaced, IPv6 literals without brackets, cut to leave room for a suffix."""
    host = f"ipv6-{norm.host}" if ":" in norm.host else norm.host
    port = "" if norm.netloc == norm.host or norm.netloc == f"[{norm.host}]" else f":{norm.port}"
    raw = _NAME_BAD.sub("-", f"{host}{port}{norm.path.rstrip('/')}")
    raw = raw.lstrip("._@/:+~-")[: MAX_NAME - 60].rstrip("._@/:+~-")
    return raw or "feed"


def delete_for_url(service: str, username: str | None, *, vault: Vault | None = None) -> bool:
    """What ``keyring del URL USER`` does. Returns False when nothing matched exactly."""
    target = validate_target(service)
    vault = vault or Vault()
    if not vault.exists():
        return False

    def apply(data: dict[str, Any]) -> bool:
        conns = data.get("connections") or {}
        hits = [n for n, r in conns.items() if r["target"] == target and (username is None or r.get("username") == username)]
        if len(hits) != 1:
            return False
        del conns[hits[0]]
        return True

    return vault.update(apply)
