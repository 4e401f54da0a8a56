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

import functools
import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from privpkg import envvars
from privpkg.connections.model import (
    STORE,
    Connection,
    validate_auth_for,
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

__all__ = ["SOURCES", "STORE", "Entry", "Environ", "Source", "entries", "entry_connection", "environment_connections", "never_python",
           "source_label", "unusable_azure_endpoints"]

Environ = Mapping[str, str]


class Entry(NamedTuple):
    """One connection as its source gives it. ``item`` is a :class:`Connection`, or for the
    store its raw record: a lookup over thousands of stored connections indexes ``target``,
    ``category`` and ``host_wide`` and builds a Connection only for the entry it returns
    (:func:`entry_connection`)."""

    target: str
    category: str
    host_wide: bool
    name: str
    item: Connection | dict[str, Any]
    source: str

    def __repr__(self) -> str:
        # A store record holds its secret as stored: shown as a Connection shows it (vars() of a
        # CredentialLookup, a debugger, a traceback that prints locals).
        item = {**self.item, "secret": "***"} if isinstance(self.item, dict) and "secret" in self.item else self.item
        return (f"Entry(target={self.target!r}, category={self.category!r}, host_wide={self.host_wide!r}, name={self.name!r}, "
                f"item={item!r}, source={self.source!r})")


Source = Callable[[Environ, dict[str, Any], list[str]], list[Entry]]
# Entry(...) goes through a Python-level __new__; the store source builds 10,000 of them per
# open, so it calls tuple.__new__ directly (what Entry._make does), about twice as fast.
_new_tuple = tuple.__new__


def _entry(conn: Connection) -> Entry:
    return Entry(conn.target, conn.category, conn.host_wide, conn.name, conn, conn.source)


def _read_variable(var: str, raw: str, errors: list[str], parse: Callable[[str], list[Connection]]) -> list[Connection]:
    """``parse(raw)``, or [] with its one-line reason appended to ``errors``: one bad variable
    must not turn the lookup off, and the reason never quotes the value."""
    try:
        conns = parse(raw)
    except json.JSONDecodeError as exc:
        # Its message and position only, never the document (it may hold a secret). json's
        # "Invalid control character at" ends with its own "at".
        what = exc.msg.lower().removesuffix(" at")
        # A CI secret that ends with a newline, spliced into the JSON, is the usual cause.
        hint = "; a newline or tab in a secret?" if "control character" in what else ""
        errors.append(f"ignoring ${var}: it is not valid JSON ({what} at line {exc.lineno}, column {exc.colno}{hint})")
    except (ValueError, PrivpkgError) as exc:
        errors.append(f"ignoring ${var}: {exc}")
    except (TypeError, AttributeError, KeyError, RecursionError) as exc:
        # A wrong JSON shape that slipped past the parser's checks: still one line, no secret.
        errors.append(f"ignoring ${var}: unexpected JSON shape ({type(exc).__name__})")
    else:
        _warn_unusable(var, conns, errors)
        return conns
    return []


#: A variable reference left as it was: `'..."$PAT"...'` in single quotes, or Azure Pipelines'
#: `$(PAT)` for a variable the pipeline does not define (it leaves the macro in place).
#: Compiled at its first use, not at import: every keyring lookup imports this module.
_UNEXPANDED = r"\$(?:[A-Za-z_]\w*|\{[A-Za-z_]\w*\}|\([A-Za-z_][\w.]*\))"


def _warn_unusable(var: str, conns: list[Connection], errors: list[str]) -> None:
    """Secrets that are served as given but that a feed will surely reject, for reasons only the
    CI step that set the variable can fix (nothing else then says why the feed answered 401)."""
    for conn in conns:
        # A space may be part of a secret, but CI secrets are often pasted with one at an end.
        if conn.secret != conn.secret.strip():
            errors.append(f"${var}: the secret of {conn.name!r} begins or ends with a space, which is sent as part of it")
        elif re.fullmatch(_UNEXPANDED, conn.secret):
            errors.append(f"${var}: the secret of {conn.name!r} is a variable's name that was never expanded "
                          "($PAT in single quotes, or an undefined Azure Pipelines $(PAT))")


def from_connections_variable(environ: Environ, document: dict[str, Any], errors: list[str]) -> list[Entry]:
    """``$PRIVPKG_CONNECTIONS``: a JSON list of connections, or an object keyed by name."""
    raw = environ.get(envvars.CONNECTIONS)
    if not raw:
        return []
    return [_entry(c) for c in _read_variable(envvars.CONNECTIONS, raw, errors, _parse_connections)]


def _parse_connections(raw: str) -> list[Connection]:
    items = json.loads(raw)
    if isinstance(items, dict):
        for k, v in items.items():
            if not isinstance(v, dict):
                raise UsageError(f"entry {k[:80]!r} is not an object")
        items = [{**v, "name": k} for k, v in items.items()]
    if not isinstance(items, list):
        raise UsageError("expected a JSON list of connections (or an object keyed by name)")
    out: list[Connection] = []
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
                auth_type=validate_auth_for(category, item.get("auth_type", "PAT")),
                username=validate_username(item.get("username")),
                secret=validate_secret(secret),
                expires=validate_expires(item.get("expires")),
                source=f"env:{envvars.CONNECTIONS}",
                host_wide=validate_flag(item.get("host_wide"), f"entry {name!r}: host_wide"),
                endpoint=validate_endpoint_for(category, item.get("endpoint"), allow_http),
            )
        )
    return out


def from_azure_variables(environ: Environ, document: dict[str, Any], errors: list[str]) -> list[Entry]:
    """Azure Artifacts' credential-provider variables (``{"endpointCredentials": [...]}``), read
    the way its credential provider reads them."""
    out: list[Connection] = []
    for var in envvars.AZURE_ENDPOINTS:
        raw = environ.get(var)
        if raw:
            out.extend(_read_variable(var, raw, errors, functools.partial(_parse_endpoints, var)))
    return [_entry(c) for c in out]


def never_python(target: str) -> bool:
    """Whether a normalized target can never be a prefix of a Python index URL: a NuGet feed
    (``.../_packaging/FEED/nuget/v3/index.json``, ``.../nuget/v2``), or any target ending in a
    ``.json`` document. The Azure variables are shared with NuGet and often list only those."""
    segments = [seg.lower() for seg in target.rstrip("/").split("/")[3:]]
    return "nuget" in segments or (bool(segments) and segments[-1].endswith(".json"))


def unusable_azure_endpoints(environ: Environ) -> list[str]:
    """One line (no secret) for each endpoint of the Azure variables that privpkg leaves out
    because no Python index is under it (:func:`never_python`), for ``privpkg doctor``."""
    skipped: list[str] = []
    for var in envvars.AZURE_ENDPOINTS:
        raw = environ.get(var)
        if raw:
            _read_variable(var, raw, [], functools.partial(_parse_endpoints, var, skipped=skipped))
    return skipped


def _parse_endpoints(var: str, raw: str, skipped: list[str] | None = None) -> list[Connection]:
    doc = json.loads(raw)
    creds = doc.get("endpointCredentials") if isinstance(doc, dict) else None
    if not isinstance(creds, list):
        raise UsageError("expected {\"endpointCredentials\": [...]}")
    found: list[Connection] = []
    for i, item in enumerate(creds):
        if not isinstance(item, dict) or not isinstance(item.get("endpoint"), str):
            raise UsageError(f"endpointCredentials[{i}] has no endpoint")
        password = item.get("password")
        if not isinstance(password, str):
            raise UsageError(f"endpointCredentials[{i}] has no password")
        target = validate_target(item["endpoint"])
        if never_python(target):
            # Kept, it would only crowd the lookup; doctor names it instead.
            if skipped is not None:
                skipped.append(f"${var}: endpointCredentials[{i}] {target.rstrip('/')} is not a Python index (a NuGet feed?), "
                               "so no pip URL can match it; it is left out (list the feed's .../pypi/simple/ URL for pip)")
            continue
        found.append(
            Connection(
                name=f"{var.split('_')[0].lower()}-{i + 1}",
                category="PythonFeed",
                target=target,
                auth_type="PAT",
                username=validate_username(item.get("username")),
                secret=validate_secret(password),
                source=f"env:{var}",
            )
        )
    return found


def from_store(environ: Environ, document: dict[str, Any], errors: list[str]) -> list[Entry]:
    """The encrypted store's connections, as raw records (already validated when written)."""
    new = _new_tuple
    return [
        new(Entry, (r["target"], r.get("category", "PythonFeed"), r.get("host_wide") is True, name, r, STORE))
        for name, r in (document.get("connections") or {}).items()
    ]


#: Every source, in precedence order: among connections with the same target the earlier source
#: wins (the longest matching target always wins first, see :mod:`privpkg.connections.lookup`).
SOURCES: tuple[Source, ...] = (from_connections_variable, from_azure_variables, from_store)


def entries(environ: Environ, document: dict[str, Any], errors: list[str]) -> Iterator[Entry]:
    """Every source's entries, in :data:`SOURCES` order (each source called when reached)."""
    # chain is C: no generator frame resumed per entry, 10,000 times at every open.
    return itertools.chain.from_iterable(source(environ, document, errors) for source in SOURCES)


def source_label(source: str) -> str:
    """How a person reads a connection's source: ``store``, or ``from $VAR`` for ``env:VAR``."""
    return f"from ${source[4:]}" if source.startswith("env:") else source


def entry_connection(entry: Entry) -> Connection:
    """The :class:`Connection` ``entry`` stands for (built from the raw record for the store)."""
    _, _, _, name, item, source = entry
    return item if isinstance(item, Connection) else Connection.from_record(name, item, source)


def environment_connections(environ: Environ, errors: list[str]) -> list[Connection]:
    """The read-only connections: every source but the store."""
    return [entry_connection(e) for e in entries(environ, {}, errors)]
