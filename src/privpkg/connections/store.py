"""The connections API over the encrypted store: set, update, list, get and delete connections,
and what ``keyring set``/``keyring del`` of a URL do (:func:`upsert_for_url`,
:func:`delete_for_url`); the keyring backend's generic secrets for any service
(``KEYRING_PROPERTY_STORE_ALL=1``: :func:`get_secret`, :func:`set_secret`, :func:`delete_secret`);
the store's state for ``doctor`` (:func:`store_status`); and what ``privpkg auth login``
needs on top of them: the target a login URL means (:func:`login_target`), the name a login
stores it under (:func:`login_name`), and the warnings a stored connection earns
(:func:`store_warnings`: a target that overlaps another's, an expiry date in the past). Every write is one locked
read-modify-write of the store (:meth:`privpkg.vault.Vault.update`), so the checks it makes hold
for what it writes. Nothing else reads or writes the store's document. Usage: see
:mod:`privpkg.connections`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

from privpkg import envvars, urls
from privpkg.connections.lookup import CredentialLookup
from privpkg.connections.model import (
    DEFAULT_USERNAME,
    HTTP_AUTH_CATEGORIES,
    MAX_NAME,
    NAME_PATTERN,
    Connection,
    validate_auth_for,
    validate_category,
    validate_connection_name,
    validate_endpoint,
    validate_endpoint_for,
    validate_expires,
    validate_flag,
    validate_secret,
    validate_target,
    validate_username,
)
from privpkg.connections.sources import environment_connections
from privpkg.errors import NotFoundError, PrivpkgError, UsageError
from privpkg.vault import Vault

_NAME_BAD = re.compile(r"[^A-Za-z0-9._@/:+~-]+")


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _store_connections(data: dict[str, Any]) -> dict[str, Any]:
    conns = data.get("connections")
    if conns is None:
        data["version"] = 1
        conns = data["connections"] = {}
    return conns


def _new_connection(
    name: str,
    category: str,
    target: str,
    auth_type: str,
    value: str | None,
    *,
    username: str | None,
    expires: str | _dt.date | None,
    allow_http: bool,
    host_wide: bool,
    endpoint: str | None,
) -> Connection:
    """A validated connection for the store (the checks :func:`set_connection` documents)."""
    name = validate_connection_name(name)
    category = validate_category(category)
    target = validate_target(target, category, allow_http=allow_http)
    if category == "S3" and host_wide:
        raise UsageError("--host-wide is for feed connections; S3 credentials are never sent as HTTP Basic")
    return Connection(
        name=name,
        category=category,
        target=target,
        auth_type=validate_auth_for(category, auth_type),
        username=validate_username(username),
        secret=validate_secret(value),  # type: ignore[arg-type]
        expires=validate_expires(expires),
        host_wide=validate_flag(host_wide, "host_wide"),
        endpoint=validate_endpoint_for(category, endpoint, allow_http),
    )


def _put(data: dict[str, Any], conn: Connection) -> None:
    """Write ``conn`` into the store document ``data``, keeping its creation time."""
    conns = _store_connections(data)
    for other, raw in conns.items():
        if other != conn.name and raw["target"] == conn.target and raw.get("username") == conn.username:
            raise UsageError(
                f"connection {other!r} already serves {conn.target} for username {conn.username!r}; "
                f"update or delete it instead"
            )
    now = _now()
    record = {k: v for k, v in conn.with_secret().items() if k not in ("name", "source")}
    record["created"] = conns.get(conn.name, {}).get("created", now)
    record["updated"] = now
    conns[conn.name] = record


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
    host_wide: bool = False,
    endpoint: str | None = None,
    vault: Vault | None = None,
) -> Connection:
    """Add connection ``name`` to the encrypted store, or replace it whole, and return it (to
    change some fields and keep the others, see :func:`privpkg.connections.update_connection`).

    Two connections may not serve the same target for the same username: that would make
    lookups ambiguous.

    ``host_wide=True`` lets the connection answer bare ``host[:port]`` lookups (pip's second
    lookup, uv's host lookup); those carry no scheme, so an https connection that opts in is
    reachable from ``http://`` URLs on its host. ``endpoint`` (S3 only) binds the credentials
    to an S3-compatible endpoint; None means AWS.
    """
    if value is None:  # azureml's set_connection took it as ``value`` too: say so, not "the secret is empty"
        raise UsageError("no secret given: set_connection(..., value=PAT); to change a connection and keep its secret, "
                         "use privpkg.connections.update_connection")
    conn = _new_connection(
        name, category, target, auth_type, value, username=username, expires=expires,
        allow_http=allow_http, host_wide=host_wide, endpoint=endpoint,
    )
    (vault or Vault()).update(lambda data: _put(data, conn))
    return conn


@dataclasses.dataclass(frozen=True)
class Changes:
    """What an :func:`update_connection` may change: its keyword arguments, each None (False
    for ``allow_http``) to keep what is stored. A name it does not know is a TypeError, as for
    any call."""

    target: str | None = None
    category: str | None = None
    auth_type: str | None = None
    username: str | None = None
    expires: str | _dt.date | None = None
    allow_http: bool = False
    host_wide: bool | None = None
    endpoint: str | None = None


def _merge(name: str, old: dict[str, Any] | None, changes: Changes, *, exist_ok: bool, keep_secret: bool) -> dict[str, Any]:
    """The rules of ``privpkg connection set [--update]``: the stored record ``old`` (None for a
    new name) with ``changes`` laid over it. Returns :func:`set_connection`'s arguments but
    the secret; raises UsageError for what cannot be stored."""
    if old and not exist_ok:
        raise UsageError(f"connection {name!r} already exists; pass --update to replace its secret or settings")
    if not old and exist_ok:
        # --update means "change the existing one": an environment connection is changed where it
        # is defined; a missing name is created by `connection set` without --update.
        _refuse_environment_connection(name)
        if not changes.target:
            raise NotFoundError(f"no connection named {name!r} (drop --update to create it)")
    if not old and not changes.target:
        raise UsageError("--target URL is required for a new connection")
    if keep_secret and not old:
        raise UsageError("--keep-secret goes with --update of an existing connection")
    base = old or {}
    target = changes.target or base["target"]
    category = validate_category(changes.category or base.get("category", "PythonFeed"))
    allow_http = changes.allow_http
    # A target stored earlier with --allow-http keeps that consent when only the secret changes.
    target_http = allow_http or bool(old and target == base.get("target"))
    validate_target(target, category, allow_http=target_http, http_hint="pass --allow-http")
    expires = validate_expires(changes.expires) if changes.expires else base.get("expires")
    host_wide = changes.host_wide if changes.host_wide is not None else base.get("host_wide") is True
    endpoint = changes.endpoint
    if endpoint is not None and category != "S3":
        raise UsageError("--endpoint is for S3 connections (--category S3)")
    endpoint = endpoint if endpoint is not None else base.get("endpoint")
    if endpoint:
        # A stored http endpoint keeps its consent, as a stored http target does.
        endpoint = validate_endpoint(endpoint, allow_http=allow_http or endpoint == base.get("endpoint"))
    auth_type = validate_auth_for(category, changes.auth_type or base.get("auth_type", "PAT"))
    if category == "S3" and not changes.username and base.get("category") != "S3":
        # An S3 secret access key is useless without its access key id: __token__ would be stored.
        raise UsageError("an S3 connection needs --username ACCESS_KEY_ID (its secret is the secret access key)")
    return {
        "category": category,
        "target": target,
        "auth_type": auth_type,
        "username": changes.username or base.get("username"),
        "expires": expires,
        "allow_http": target_http,
        "host_wide": host_wide,
        "endpoint": endpoint,
    }


def check_update(
    name: str,
    *,
    keep_secret: bool = False,
    exist_ok: bool = True,
    vault: Vault | None = None,
    **changes: Any,
) -> bool:
    """Check an :func:`update_connection` against the store as it is now, before the secret is
    asked for (so a typo costs no paste). Raises what it would raise; returns whether ``name``
    exists. The write itself checks again, under the store lock."""
    validate_connection_name(name)
    old = ((vault or Vault()).load().get("connections") or {}).get(name)
    _merge(name, old, Changes(**changes), exist_ok=exist_ok, keep_secret=keep_secret)
    return bool(old)


def update_connection(
    name: str,
    value: str | None = None,
    *,
    create: bool = False,
    exist_ok: bool = True,
    vault: Vault | None = None,
    **changes: Any,
) -> Connection:
    """Change connection ``name``, keeping every field not given (the fields of
    :class:`Changes`: ``target``, ``category``, ``auth_type``, ``username``, ``expires``,
    ``allow_http``, ``host_wide``, ``endpoint``); ``value=None`` keeps the stored secret. What
    ``privpkg connection set NAME --update`` does.

    ``create=True`` also makes a missing connection (``target`` and ``value`` required then);
    ``exist_ok=False`` refuses to change an existing one (``connection set`` without
    ``--update``). A stored plain-http target or endpoint keeps its ``allow_http`` consent
    while it stays the same. The merge happens under the store lock, on the record as it is
    then."""
    fields_given = Changes(**changes)
    validate_connection_name(name)

    def apply(data: dict[str, Any]) -> Connection:
        old = (data.get("connections") or {}).get(name)
        if old is None and not create:
            raise NotFoundError(f"no connection named {name!r} in the store (see: privpkg connection list)")
        fields = _merge(name, old, fields_given, exist_ok=exist_ok, keep_secret=value is None)
        secret = value
        if secret is None:
            assert old is not None  # _merge refuses to keep the secret of a new connection
            secret = old["secret"]
        conn = _new_connection(name, value=secret, **fields)
        _put(data, conn)
        return conn

    return (vault or Vault()).update(apply)


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


def _refuse_environment_connection(name: str) -> None:
    """A UsageError if ``name`` is a connection from the environment (read-only here)."""
    for conn in environment_connections(os.environ, []):
        if conn.name == name:
            var = conn.source.split(":", 1)[1]
            raise UsageError(f"connection {name!r} comes from ${var}; change that variable instead")


def delete_connection(name: str, *, vault: Vault | None = None) -> None:
    """Remove ``name`` from the store. Environment connections cannot be deleted here."""

    def apply(data: dict[str, Any]) -> None:
        conns = data.get("connections") or {}
        if name not in conns:
            _refuse_environment_connection(name)
            raise NotFoundError(f"no connection named {name!r} (see: privpkg connection list)")
        del conns[name]

    (vault or Vault()).update(apply)


def upsert_for_url(service: str, username: str, secret: str, *, vault: Vault | None = None) -> Connection:
    """What ``keyring set URL USER`` does: update the connection with exactly this target and
    username, or create one named after the URL."""
    target = validate_target(service)
    username = validate_username(username)
    secret = validate_secret(secret)
    base = _name_for_url(urls.normalize(target))

    def apply(data: dict[str, Any]) -> Connection:
        conns = _store_connections(data)
        for name, raw in conns.items():
            if raw["target"] == target and raw.get("username") == username:
                raw["secret"] = secret
                raw["updated"] = _now()
                return Connection.from_record(name, raw)
        name = _free_name(base, username, conns, target)
        now = _now()
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
        return Connection.from_record(name, conns[name])

    return (vault or Vault()).update(apply)


def _free_name(base: str, username: str, conns: dict[str, Any], target: str) -> str:
    """The first of ``base``, ``USER@base``, ``base~2``, ... that no stored connection uses."""
    candidates = [base, f"{username}@{base}"] + [f"{base}~{i}" for i in range(2, 10000)]
    found = next((c for c in candidates if c not in conns and NAME_PATTERN.match(c)), None)
    if found is None:
        raise UsageError(f"too many connections for {target}; name one with: privpkg connection set NAME --target URL")
    return found


#: The last path segment of a simple index (``/+simple`` is devpi's). A login URL ending in one
#: stores its parent, as ``uv auth login`` does (uv's ``IndexUrl::root``): the index's other
#: endpoints (uploads, file downloads under the feed) are answered too.
_INDEX_SEGMENTS = frozenset({"simple", "+simple"})


def login_target(url: str, *, allow_http: bool = False) -> tuple[str, str]:
    """``(target, check_url)`` for ``privpkg auth login URL``: a URL without a scheme (a bare
    ``host[:port]`` or ``host/path``) means https, as in ``uv auth login``; a last segment
    ``simple``/``+simple`` is dropped from the target, and ``check_url`` is the URL as given
    (normalized), the one a verification reads. Raises UsageError for what
    :func:`~privpkg.connections.validate_target` refuses (plain http off loopback without
    ``allow_http``, user info, a query)."""
    if not isinstance(url, str) or not url:
        raise UsageError("empty URL")
    if "://" not in url:
        url = "https://" + url
    norm = urls.normalize(url, for_target=True)
    target = norm.url
    segs = norm.segments
    if segs and segs[-1].lower() in _INDEX_SEGMENTS:
        target = target[: -len(segs[-1]) - 1]
    return validate_target(target, allow_http=allow_http, http_hint="pass --allow-http"), norm.url


def login_name(target: str, username: str | None = None, *, vault: Vault | None = None) -> tuple[str, bool]:
    """The store name ``privpkg auth login`` uses for ``target`` and ``username``, and whether it
    exists: the stored connection with exactly that target and username (a second login rotates
    its secret), else a free name made from the normalized target (``host[:port]/path``, then
    ``USER@...`` or ``...~2`` when taken)."""
    target = validate_target(target, allow_http=True)  # only normalizes: the caller checked http
    username = validate_username(username)
    conns = (vault or Vault()).load().get("connections") or {}
    for name, raw in conns.items():
        if raw.get("target") == target and (raw.get("username") or DEFAULT_USERNAME) == username:
            return name, True
    return _free_name(_name_for_url(urls.normalize(target)), username, conns, target), False


def _family(conn: Connection) -> tuple[str, str]:
    """Which lookup could confuse two connections: feeds and conda channels share the HTTP
    lookup; S3 connections only meet at the same endpoint; other categories among themselves."""
    if conn.category in HTTP_AUTH_CATEGORIES:
        return ("http", "")
    if conn.category == "S3":
        try:
            return ("S3", urls.s3_endpoint_key(conn.endpoint))
        except UsageError:
            return ("S3", str(conn.endpoint))
    return (conn.category, "")


def overlaps(conn: Connection, *, vault: Vault | None = None) -> list[tuple[Connection, str]]:
    """The other connections (store and environment) whose target overlaps ``conn``'s, each with
    how: ``"same"`` (the same target, another username), ``"covers"`` (the other's target is
    above ``conn``'s: ``conn`` now answers the URLs under its own), ``"under"`` (the other's
    target is below ``conn``'s and keeps the URLs under it) or ``"host"`` (both answer
    bare-host lookups for one host[:port]). Never raises for a broken environment source."""
    mine = conn.norm
    family = _family(conn)
    found: list[tuple[Connection, str]] = []
    for other in CredentialLookup(vault=vault, categories=None).all():
        if (other.name, other.source) == (conn.name, conn.source) or _family(other) != family:
            continue
        theirs = other.norm
        if theirs == mine:
            found.append((other, "same"))
        elif urls.covers(theirs, mine):
            found.append((other, "covers"))
        elif urls.covers(mine, theirs):
            found.append((other, "under"))
        elif conn.host_wide and other.host_wide and theirs.netloc == mine.netloc:
            found.append((other, "host"))
    return found


def shared_targets(conns: list[Connection]) -> list[list[Connection]]:
    """Groups of two or more of ``conns`` with one target that one lookup could confuse
    (:func:`_family`: feeds and conda channels together, S3 per endpoint), in lookup order
    within a group (the first answers a lookup that asks for no username), groups by target."""
    groups: dict[tuple[tuple[str, str], str], list[Connection]] = {}
    for conn in conns:
        groups.setdefault((_family(conn), conn.norm.url), []).append(conn)
    return [g for _, g in sorted(groups.items(), key=lambda kv: kv[0][1]) if len(g) > 1]


_OVERLAP_WORDS = {
    "same": "{o} has the same target for username {u!r}",
    "covers": "{o} ({t}) is above it: URLs under {mine} now get this connection's secret",
    "under": "{o} ({t}) is below it and keeps the URLs under its target",
    "host": "{o} ({t}) also answers bare-host lookups for {host}",
}


def store_warnings(conn: Connection, *, vault: Vault | None = None) -> list[str]:
    """What a just-stored ``conn`` deserves a warning for, one line each, no secret: a target
    that overlaps other connections' (:func:`overlaps`, all in one line) and an expiry date in
    the past (the PAT is then probably dead; lookups still serve it)."""
    lines: list[str] = []
    found = overlaps(conn, vault=vault)
    if found:
        parts = [
            _OVERLAP_WORDS[how].format(o=repr(o.name) + ("" if o.source == conn.source else f" from {o.source}"),
                                       u=o.username, t=o.target, mine=conn.target, host=conn.norm.netloc)
            for o, how in found[:5]
        ]
        more = f"; and {len(found) - 5} more (see: privpkg auth status)" if len(found) > 5 else ""
        lines.append(f"{conn.target} overlaps {_counted(len(found), 'other connection')}: {'; '.join(parts)}{more}")
    left = conn.days_left()
    if left is not None and left < 0:
        lines.append(f"the expiry date {conn.expires} of {conn.name!r} is {_counted(-left, 'day')} in the past: "
                     "lookups still serve it, and doctor reports it expired")
    return lines


def _counted(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def _name_for_url(norm: urls.NormURL) -> str:
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


def get_secret(service: str, username: str | None, *, vault: Vault | None = None) -> tuple[str, str] | None:
    """The ``(username, secret)`` kept for any ``service`` by :func:`set_secret` (the first
    one when ``username`` is None), or None. These generic secrets are not connections: no
    lookup rule applies, the service is an exact key."""
    users = ((vault or Vault()).load().get("secrets") or {}).get(service) or {}
    if username is None:
        return next(iter(users.items()), None)
    return (username, users[username]) if username in users else None


def set_secret(service: str, username: str, secret: str, *, vault: Vault | None = None) -> None:
    """Keep ``secret`` for ``service`` and ``username`` (what the keyring backend does for any
    service with ``KEYRING_PROPERTY_STORE_ALL=1``)."""

    def apply(data: dict[str, Any]) -> None:
        data.setdefault("secrets", {}).setdefault(service, {})[username] = secret

    (vault or Vault()).update(apply)


def delete_secret(service: str, username: str, *, vault: Vault | None = None) -> bool:
    """Forget the secret of ``service`` and ``username``. Returns False when there was none."""
    vault = vault or Vault()
    if not vault.exists():
        return False

    def apply(data: dict[str, Any]) -> bool:
        users = (data.get("secrets") or {}).get(service) or {}
        if username not in users:
            return False
        del users[username]
        if not users:
            del data["secrets"][service]
        return True

    return vault.update(apply)


class StoreStatus(NamedTuple):
    """The store's state as ``doctor`` reports it (:func:`store_status`)."""

    path: Path
    exists: bool
    key_file: Path
    key_file_exists: bool
    #: Whether the key comes from ``$PRIVPKG_MASTER_KEY`` rather than the key file.
    key_from_env: bool
    #: The decrypted store ({} when missing or unreadable): holds secrets, never print it.
    document: dict[str, Any]
    #: Why the store could not be read (one line, no secret), or None.
    error: str | None


def store_status(*, vault: Vault | None = None) -> StoreStatus:
    """Where the store and its key are, and whether the store reads; never raises a
    :class:`~privpkg.errors.PrivpkgError` (it becomes ``error``)."""
    vault = vault or Vault()
    exists, key_file_exists = vault.exists(), vault.key_file.exists()
    try:
        document, error = vault.load(), None
    except PrivpkgError as exc:
        document, error = {}, str(exc)
    return StoreStatus(
        path=vault.path,
        exists=exists,
        key_file=vault.key_file,
        key_file_exists=key_file_exists,
        key_from_env=bool(os.environ.get(envvars.MASTER_KEY)),
        document=document,
        error=error,
    )
