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
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from collections.abc import Iterable
from typing import Any

from privpkg import urls
from privpkg.errors import NotFoundError, PrivpkgError, UsageError
from privpkg.vault import Vault

CATEGORIES = ("PythonFeed", "CondaChannel", "AzureBlob", "S3")
HTTP_AUTH_CATEGORIES = frozenset({"PythonFeed", "CondaChannel"})
AUTH_TYPES = ("PAT",)
DEFAULT_USERNAME = "__token__"
ENV_CONNECTIONS = "PRIVPKG_CONNECTIONS"
ENV_ENDPOINTS = (
    "ARTIFACTS_CREDENTIALPROVIDER_EXTERNAL_FEED_ENDPOINTS",
    "VSS_NUGET_EXTERNAL_FEED_ENDPOINTS",
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@/:+~-]{0,199}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Connection:
    """One connection. The secret is kept out of ``repr`` and :meth:`public`.

    A plain slotted class rather than a dataclass, to keep the keyring lookup's import cheap."""

    FIELDS = ("name", "category", "target", "auth_type", "username", "secret", "expires", "source")
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
    ) -> None:
        self.name, self.category, self.target, self.auth_type = name, category, target, auth_type
        self.username, self.secret, self.expires, self.source = username, secret, expires, source

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Connection) and all(getattr(self, f) == getattr(other, f) for f in self.FIELDS)

    def __hash__(self) -> int:
        return hash((self.name, self.source, self.target))

    def __repr__(self) -> str:
        return (
            f"Connection(name={self.name!r}, category={self.category!r}, target={self.target!r}, "
            f"auth_type={self.auth_type!r}, username={self.username!r}, secret='***', "
            f"expires={self.expires!r}, source={self.source!r})"
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
        """Everything but the secret, for listings and JSON output."""
        d = self.as_dict()
        del d["secret"]
        return d


def validate_name(name: str) -> str:
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
    if _CONTROL.search(secret):
        raise UsageError("the secret contains a control character (a newline, tab or similar)")
    return secret


def validate_username(username: str | None) -> str:
    if username is None or username == "":
        return DEFAULT_USERNAME
    if not isinstance(username, str) or _CONTROL.search(username) or ":" in username:
        raise UsageError("the username must not contain ':' or control characters")
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
    allowed = ("https", "http", "s3") if category == "S3" else ("https", "http")
    if norm.scheme not in allowed:
        raise UsageError(f"unsupported URL scheme {norm.scheme!r} for a {category} target; use https://")
    if norm.scheme == "http" and not (allow_http or urls.is_loopback(norm.host)):
        raise UsageError(
            f"refusing plain-http target {norm.url}: the secret would travel unencrypted; "
            "use https, or `privpkg connection set NAME --target URL --allow-http` if you really mean it"
        )
    return norm.url


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
                items = [{"name": k, **v} for k, v in items.items()]
            if not isinstance(items, list):
                raise UsageError("expected a JSON list of connections")
            seen: set[str] = set()
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    raise UsageError(f"entry {i} is not an object")
                name = validate_name(str(item.get("name") or f"env-{i + 1}"))
                if name in seen:
                    raise UsageError(f"duplicate connection name {name!r}")
                seen.add(name)
                category = validate_category(item.get("category", "PythonFeed"))
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
                        target=validate_target(target, category, allow_http=bool(item.get("allow_http"))),
                        auth_type=validate_auth_type(item.get("auth_type", "PAT")),
                        username=validate_username(item.get("username")),
                        secret=validate_secret(secret),
                        expires=validate_expires(item.get("expires")),
                        source=f"env:{ENV_CONNECTIONS}",
                    )
                )
        except (ValueError, PrivpkgError) as exc:
            # json.JSONDecodeError messages quote positions, never the document.
            errors.append(f"ignoring ${ENV_CONNECTIONS}: {exc}")
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
        out.extend(found)
    return out


class CredentialLookup:
    """Owns the whole credential lookup for one snapshot of all sources.

    Order of sources, spelled out once: (1) ``$PRIVPKG_CONNECTIONS``, (2) the Azure Artifacts
    endpoint variables, (3) the encrypted store. A lookup takes the longest target that covers
    the URL on a path-segment boundary; among equal targets the earlier source wins. A requested
    username is preferred over length: the longest covering target with that username wins, and
    only when none has it does the longest target overall.

        >>> lk = CredentialLookup(store={}, environ={"PRIVPKG_CONNECTIONS":
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
        for conn in _env_connections(environ, self.errors):
            if wanted is None or conn.category in wanted:
                self._add(conn.target, conn.name, conn, conn.source)
        for name, raw in (store.get("connections") or {}).items():
            if wanted is None or raw.get("category", "PythonFeed") in wanted:
                self._add(raw["target"], name, raw, "store")

    def _add(self, target: str, name: str, item: Any, source: str) -> None:
        bucket = self._by_target.get(target)
        if bucket is None:
            self._by_target[target] = bucket = []
            netloc = target.split("/", 3)[2]
            self._by_netloc.setdefault(netloc, []).append(target)
        bucket.append((name, item, source))

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

    def _find_host(self, service: str, username: str | None) -> Connection | None:
        host, port = urls.normalize_netloc(service)
        key = f"[{host}]" if ":" in host else host
        # Targets are stored normalized, so a bare host without a port only meets targets on
        # their scheme's default port, and "host:port" only targets with that explicit port.
        targets = list(self._by_netloc.get(key if port is None else f"{key}:{port}", ()))
        if port in (80, 443):  # an explicit default port names the scheme too
            scheme = "https://" if port == 443 else "http://"
            targets += [t for t in self._by_netloc.get(key, ()) if t.startswith(scheme)]
        entries = [e for t in targets for e in self._by_target[t]]
        if username:
            mine = [e for e in entries if self._field(e, "username") == username]
            if mine and len({self._field(e, "secret") for e in mine}) == 1:
                return self._conn(mine[0])
        if entries and len({self._field(e, "secret") for e in entries}) == 1:
            return self._conn(entries[0])
        return None

    @staticmethod
    def _field(entry: tuple[str, Any, str], name: str) -> Any:
        item = entry[1]
        if isinstance(item, Connection):
            return getattr(item, name)
        return item.get(name) or (DEFAULT_USERNAME if name == "username" else None)

    def all(self) -> list[Connection]:
        return [self._conn(e) for bucket in self._by_target.values() for e in bucket]


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
    vault: Vault | None = None,
) -> Connection:
    """Add or update connection ``name`` in the encrypted store and return it.

    ``replace=False`` refuses to overwrite an existing name. Two connections may not serve the
    same target for the same username: that would make lookups ambiguous.
    """
    name = validate_name(name)
    category = validate_category(category)
    target = validate_target(target, category, allow_http=allow_http)
    conn = Connection(
        name=name,
        category=category,
        target=target,
        auth_type=validate_auth_type(auth_type),
        username=validate_username(username),
        secret=validate_secret(value),  # type: ignore[arg-type]
        expires=validate_expires(expires),
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
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        record = {k: v for k, v in conn.as_dict().items() if k not in ("name", "source")}
        record["created"] = conns.get(name, {}).get("created", now)
        record["updated"] = now
        conns[name] = record

    (vault or Vault()).update(apply)
    return conn


def list_connections(
    category: str | None = None, target: str | None = None, *, vault: Vault | None = None
) -> list[Connection]:
    """All connections (store and environment), optionally only one category and only those
    whose target covers ``target``. Sorted by name; always a list."""
    cat = validate_category(category) if category else None
    lookup = CredentialLookup(vault=vault, categories=None)
    conns = lookup.all()
    if cat:
        conns = [c for c in conns if c.category == cat]
    if target:
        norm = urls.normalize(target)
        conns = [c for c in conns if urls.covers(c.norm, norm)]
    return sorted(conns, key=lambda c: (c.name, c.source))


def get_connection(name: str, *, vault: Vault | None = None) -> Connection:
    """The connection called ``name``; :class:`NotFoundError` if there is none."""
    for conn in CredentialLookup(vault=vault, categories=None).all():
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
    norm = urls.normalize(target)
    base = f"{norm.netloc}{norm.path.rstrip('/')}"

    def apply(data: dict[str, Any]) -> Connection:
        conns = _store_connections(data)
        for name, raw in conns.items():
            if raw["target"] == target and raw.get("username") == username:
                raw["secret"] = secret
                raw["updated"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
                return _from_raw(name, raw)
        candidates = [base, f"{username}@{base}"] + [f"{base}~{i}" for i in range(2, 1000)]
        name = next(c for c in candidates if c not in conns and _NAME.match(c))
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
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
