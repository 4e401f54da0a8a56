"""The connections API over the encrypted store: set, update, list, get and delete connections,
and what ``keyring set``/``keyring del`` of a URL do (:func:`upsert_for_url`,
:func:`delete_for_url`). Every write is one locked read-modify-write of the store
(:meth:`privpkg.vault.Vault.update`), so the checks it makes hold for what it writes. Usage:
see :mod:`privpkg.connections`.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from typing import Any

from privpkg import urls
from privpkg.connections.lookup import CredentialLookup
from privpkg.connections.model import (
    MAX_NAME,
    NAME_PATTERN,
    Connection,
    validate_auth_type,
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
from privpkg.errors import NotFoundError, UsageError
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
        auth_type=validate_auth_type(auth_type),
        username=validate_username(username),
        secret=validate_secret(value),  # type: ignore[arg-type]
        expires=validate_expires(expires),
        host_wide=validate_flag(host_wide, "host_wide"),
        endpoint=validate_endpoint_for(category, endpoint, allow_http),
    )


def _put(data: dict[str, Any], conn: Connection, replace: bool) -> None:
    """Write ``conn`` into the store document ``data``, keeping its creation time."""
    conns = _store_connections(data)
    if conn.name in conns and not replace:
        raise UsageError(f"connection {conn.name!r} already exists; pass --update to replace it")
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
    replace: bool = True,
    host_wide: bool = False,
    endpoint: str | None = None,
    vault: Vault | None = None,
) -> Connection:
    """Add connection ``name`` to the encrypted store, or replace it whole, and return it (to
    change some fields and keep the others, see :func:`update_connection`).

    ``replace=False`` refuses to overwrite an existing name. Two connections may not serve the
    same target for the same username: that would make lookups ambiguous.

    ``host_wide=True`` lets the connection answer bare ``host[:port]`` lookups (pip's second
    lookup, uv's host lookup); those carry no scheme, so an https connection that opts in is
    reachable from ``http://`` URLs on its host. ``endpoint`` (S3 only) binds the credentials
    to an S3-compatible endpoint; None means AWS.
    """
    conn = _new_connection(
        name, category, target, auth_type, value, username=username, expires=expires,
        allow_http=allow_http, host_wide=host_wide, endpoint=endpoint,
    )
    (vault or Vault()).update(lambda data: _put(data, conn, replace))
    return conn


def _merge(
    name: str,
    old: dict[str, Any] | None,
    *,
    update: bool,
    keep_secret: bool,
    target: str | None,
    category: str | None,
    auth_type: str | None,
    username: str | None,
    expires: str | _dt.date | None,
    allow_http: bool,
    host_wide: bool | None,
    endpoint: str | None,
) -> dict[str, Any]:
    """The rules of ``privpkg connection set [--update]``: the stored record ``old`` (None for a
    new name) with what was given laid over it. Returns :func:`set_connection`'s arguments but
    the secret; raises UsageError for what cannot be stored."""
    if old and not update:
        raise UsageError(f"connection {name!r} already exists; pass --update to replace its secret or settings")
    if not old and not target:
        raise UsageError("--target URL is required for a new connection")
    if keep_secret and not old:
        raise UsageError("--keep-secret goes with --update of an existing connection")
    base = old or {}
    target = target or base["target"]
    category = validate_category(category or base.get("category", "PythonFeed"))
    # A target stored earlier with --allow-http keeps that consent when only the secret changes.
    target_http = allow_http or bool(old and target == base.get("target"))
    validate_target(target, category, allow_http=target_http)
    expires = validate_expires(expires) if expires else base.get("expires")
    host_wide = host_wide if host_wide is not None else base.get("host_wide") is True
    if endpoint is not None and category != "S3":
        raise UsageError("--endpoint is for S3 connections (--category S3)")
    endpoint = endpoint if endpoint is not None else base.get("endpoint")
    if endpoint:
        # A stored http endpoint keeps its consent, as a stored http target does.
        endpoint = validate_endpoint(endpoint, allow_http=allow_http or endpoint == base.get("endpoint"))
    return {
        "category": category,
        "target": target,
        "auth_type": auth_type or base.get("auth_type", "PAT"),
        "username": username or base.get("username"),
        "expires": expires,
        "allow_http": target_http,
        "host_wide": host_wide,
        "endpoint": endpoint,
    }


def check_update(
    name: str,
    *,
    keep_secret: bool = False,
    update: bool = True,
    vault: Vault | None = None,
    **changes: Any,
) -> bool:
    """Check an :func:`update_connection` against the store as it is now, before the secret is
    asked for (so a typo costs no paste). Raises what it would raise; returns whether ``name``
    exists. The write itself checks again, under the store lock."""
    validate_connection_name(name)
    old = ((vault or Vault()).load().get("connections") or {}).get(name)
    _merge(name, old, update=update, keep_secret=keep_secret, **_changes(**changes))
    return bool(old)


def _changes(
    target: str | None = None,
    category: str | None = None,
    auth_type: str | None = None,
    username: str | None = None,
    expires: str | _dt.date | None = None,
    allow_http: bool = False,
    host_wide: bool | None = None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """The fields :func:`update_connection` may change (None: keep what is stored); a name it
    does not know is a TypeError, as for a call to it."""
    return {
        "target": target, "category": category, "auth_type": auth_type, "username": username,
        "expires": expires, "allow_http": allow_http, "host_wide": host_wide, "endpoint": endpoint,
    }


def update_connection(
    name: str,
    value: str | None = None,
    *,
    target: str | None = None,
    category: str | None = None,
    auth_type: str | None = None,
    username: str | None = None,
    expires: str | _dt.date | None = None,
    allow_http: bool = False,
    host_wide: bool | None = None,
    endpoint: str | None = None,
    create: bool = False,
    update: bool = True,
    vault: Vault | None = None,
) -> Connection:
    """Change connection ``name``, keeping every field not given (None); ``value=None`` keeps
    the stored secret. What ``privpkg connection set NAME --update`` does.

    ``create=True`` also makes a missing connection (``target`` and ``value`` required then);
    ``update=False`` refuses to change an existing one. A stored plain-http target or endpoint
    keeps its ``allow_http`` consent while it stays the same. The merge happens under the store
    lock, on the record as it is then."""
    changes = _changes(target, category, auth_type, username, expires, allow_http, host_wide, endpoint)
    validate_connection_name(name)

    def apply(data: dict[str, Any]) -> Connection:
        old = (data.get("connections") or {}).get(name)
        if old is None and not create:
            raise NotFoundError(f"no connection named {name!r} in the store (see: privpkg connection list)")
        fields = _merge(name, old, update=update, keep_secret=value is None, **changes)
        secret = value
        if secret is None:
            assert old is not None  # _merge refuses to keep the secret of a new connection
            secret = old["secret"]
        conn = _new_connection(name, value=secret, **fields)
        _put(data, conn, replace=True)
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


def delete_connection(name: str, *, vault: Vault | None = None) -> None:
    """Remove ``name`` from the store. Environment connections cannot be deleted here."""

    def apply(data: dict[str, Any]) -> None:
        conns = data.get("connections") or {}
        if name not in conns:
            for conn in environment_connections(os.environ, []):
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
    base = _name_for_url(urls.normalize(target))

    def apply(data: dict[str, Any]) -> Connection:
        conns = _store_connections(data)
        for name, raw in conns.items():
            if raw["target"] == target and raw.get("username") == username:
                raw["secret"] = secret
                raw["updated"] = _now()
                return Connection.from_record(name, raw)
        candidates = [base, f"{username}@{base}"] + [f"{base}~{i}" for i in range(2, 10000)]
        found = next((c for c in candidates if c not in conns and NAME_PATTERN.match(c)), None)
        if found is None:
            raise UsageError(f"too many connections for {target}; name one with: privpkg connection set NAME --target URL")
        name = found
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
