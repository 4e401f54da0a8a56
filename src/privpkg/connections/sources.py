"""Where connections come from, and in which order: :data:`SOURCES`.

1. ``$PRIVPKG_CONNECTIONS``: a JSON list (or name-keyed object) of connections, read-only;
2. ``$ARTIFACTS_CREDENTIALPROVIDER_EXTERNAL_FEED_ENDPOINTS`` and
   ``$VSS_NUGET_EXTERNAL_FEED_ENDPOINTS``: Azure Artifacts' credential-provider format, read-only;
3. the encrypted store (:mod:`privpkg.vault`), written by :mod:`privpkg.connections.store`.

Each source is a function ``(environ, document, errors) -> [Entry]``, ``document`` being the
decrypted store. A source never raises: a broken variable is skipped and its one-line reason
(no secret) appended to ``errors``, so one bad variable cannot turn a credential lookup off.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from privpkg import envvars
from privpkg.connections.model import (
    Connection,
    validate_auth_type,
    validate_category,
    validate_connection_name,
    validate_endpoint_for,
    validate_expires,
    validate_flag,
    validate_secret,
    validate_target,
    validate_username,
)
from privpkg.errors import PrivpkgError, UsageError

ENV_CONNECTIONS = envvars.CONNECTIONS
ENV_ENDPOINTS = envvars.AZURE_ENDPOINTS

Environ = Mapping[str, str]
#: One connection as its source gives it: ``(target, category, host_wide, name, item, source
#: label)``. ``item`` is a :class:`Connection`, or for the store its raw record: a lookup over
#: thousands of stored connections indexes the first three fields and builds a Connection only
#: for the entry it returns (:func:`entry_connection`).
Entry = tuple[str, str, bool, str, Connection | dict[str, Any], str]
Source = Callable[[Environ, dict[str, Any], list[str]], list[Entry]]
STORE = "store"


def _entry(conn: Connection) -> Entry:
    return (conn.target, conn.category, conn.host_wide, conn.name, conn, conn.source)


def from_connections_variable(environ: Environ, document: dict[str, Any], errors: list[str]) -> list[Entry]:
    """``$PRIVPKG_CONNECTIONS``: a JSON list of connections, or an object keyed by name."""
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
                name = validate_connection_name(name)
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
                        endpoint=validate_endpoint_for(category, item.get("endpoint"), allow_http),
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
    return [_entry(c) for c in out]


def from_azure_variables(environ: Environ, document: dict[str, Any], errors: list[str]) -> list[Entry]:
    """Azure Artifacts' credential-provider variables (``{"endpointCredentials": [...]}``), read
    the way its credential provider reads them."""
    out: list[Connection] = []
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
    return [_entry(c) for c in out]


def from_store(environ: Environ, document: dict[str, Any], errors: list[str]) -> list[Entry]:
    """The encrypted store's connections, as raw records (already validated when written)."""
    return [
        (r["target"], r.get("category", "PythonFeed"), r.get("host_wide") is True, name, r, STORE)
        for name, r in (document.get("connections") or {}).items()
    ]


#: Every source, in precedence order: among connections with the same target the earlier source
#: wins (the longest matching target always wins first, see :mod:`privpkg.connections.lookup`).
SOURCES: tuple[Source, ...] = (from_connections_variable, from_azure_variables, from_store)


def entries(environ: Environ, document: dict[str, Any], errors: list[str]) -> Iterator[Entry]:
    """Every source's entries, in :data:`SOURCES` order."""
    for source in SOURCES:
        yield from source(environ, document, errors)


def entry_connection(entry: Entry) -> Connection:
    _, _, _, name, item, source = entry
    return item if isinstance(item, Connection) else Connection.from_record(name, item, source)


def environment_connections(environ: Environ, errors: list[str]) -> list[Connection]:
    """The read-only connections: every source but the store."""
    return [entry_connection(e) for e in entries(environ, {}, errors)]
