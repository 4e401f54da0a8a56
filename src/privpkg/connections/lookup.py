"""Which connection answers a lookup: :class:`CredentialLookup`, an index over one snapshot of
every source (:data:`privpkg.connections.sources.SOURCES`).

Matching rules (see :meth:`CredentialLookup.find`): a URL lookup is answered by the longest target
that is a path-segment prefix of it, on the same scheme, host and port. A bare ``host[:port]``
lookup (pip's second lookup, uv's ``host`` lookup) carries neither scheme nor path, so it is
answered only by connections that opted in with ``host_wide`` (``connection set --host-wide``);
such an https connection is then also reachable from ``http://`` URLs on that host.

An S3 connection is bound to an endpoint (``endpoint``; None means AWS): it serves a workspace only
when both the bucket and the endpoint match (:meth:`CredentialLookup.find_s3`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, NamedTuple

from privpkg import envvars, urls  # noqa: F401 - envvars: the class docstring's example uses it
from privpkg.connections.model import HTTP_AUTH_CATEGORIES, Connection
from privpkg.connections.sources import (
    Entry,
    Environ,
    entries,
    entry_connection,
)
from privpkg.errors import UsageError
from privpkg.vault import Vault

#: Why :meth:`CredentialLookup.explain` answered as it did (the lookup log and ``doctor`` show them).
MATCH = "match"  # the longest target that covers the URL
HOST_WIDE = "host-wide"  # a bare host, answered by the one opted-in secret on it
NO_MATCH = "no-match"  # no target covers the URL (or none is on the bare host's host and port)
HOST_NOT_OPTED_IN = "bare-host-not-opted-in"  # connections on that host, none --host-wide
HOST_AMBIGUOUS = "bare-host-ambiguous"  # several --host-wide secrets on that host, no username picks one
REASONS = (MATCH, HOST_WIDE, NO_MATCH, HOST_NOT_OPTED_IN, HOST_AMBIGUOUS)


class Answer(NamedTuple):
    """A lookup's connection (None on a miss) and why: one of :data:`REASONS`."""

    conn: Connection | None
    reason: str


class CredentialLookup:
    """Owns the whole credential lookup for one snapshot of all sources.

    The sources are :data:`privpkg.connections.sources.SOURCES`, in that order. A lookup takes
    the longest target that covers the URL on a path-segment boundary; among equal targets the
    earlier source wins. A requested username is preferred over length: the longest covering
    target with that username wins, and only when none has it does the longest target overall.

        >>> lk = CredentialLookup(document={}, environ={envvars.CONNECTIONS:
        ...     '[{"name": "a", "target": "https://h/org", "secret": "s3cr3t"}]'})
        >>> lk.find("https://h/org/feed/simple/").name
        'a'
        >>> lk.find("https://h/org-evil/") is None
        True
    """

    def __init__(
        self,
        document: dict[str, Any] | None = None,
        environ: Environ | None = None,
        categories: Iterable[str] | None = HTTP_AUTH_CATEGORIES,
        vault: Vault | None = None,
    ) -> None:
        """``document`` is the decrypted store (read from ``vault``, by default the user's, when
        not given); ``environ`` defaults to ``os.environ``; ``categories=None`` keeps all."""
        self.errors: list[str] = []
        environ = os.environ if environ is None else environ
        wanted = None if categories is None else frozenset(categories)
        if document is None:
            document = (vault or Vault()).load()
        self._by_target: dict[str, list[Entry]] = {}
        self._by_netloc: dict[str, list[str]] = {}
        # netloc -> the entries that opted in to bare-host lookups: pip asks a bare host after
        # every miss, so that answer must not build a Connection for every target on the host.
        self._host_wide: dict[str, list[Entry]] = {}
        by_target, by_netloc, host_wide = self._by_target, self._by_netloc, self._host_wide
        # One pass, no per-entry method call: a store of 10,000 connections is indexed at every
        # open (the keyring backend's first lookup in a process).
        for entry in entries(environ, document, self.errors):
            target, category, wide = entry.target, entry.category, entry.host_wide
            if wanted is not None and category not in wanted:
                continue
            bucket = by_target.get(target)
            netloc = target.split("/", 3)[2]
            if bucket is None:
                by_target[target] = bucket = []
                by_netloc.setdefault(netloc, []).append(target)
            bucket.append(entry)
            if wide:
                host_wide.setdefault(netloc, []).append(entry)

    _conn = staticmethod(entry_connection)

    def _pick(self, buckets: list[list[Entry]], username: str | None) -> Connection | None:
        if username:
            for bucket in buckets:
                for entry in bucket:
                    if self._conn(entry).username == username:
                        return self._conn(entry)
        return self._conn(buckets[0][0]) if buckets else None

    def find(self, service: str, username: str | None = None) -> Connection | None:
        """The connection for ``service``: a URL, or pip's bare ``host[:port]``. None if no
        connection applies or a bare host is ambiguous. Raises UsageError for malformed input."""
        return self.explain(service, username).conn

    def explain(self, service: str, username: str | None = None) -> Answer:
        """:meth:`find` with the reason (one of :data:`REASONS`) it answered as it did, for the
        lookup log and ``doctor``. Raises UsageError for malformed input."""
        if "://" not in service:
            return self._find_host(service, username)
        norm = urls.normalize(service)
        buckets = [self._by_target[p] for p in norm.prefixes() if p in self._by_target]
        conn = self._pick(buckets, username)
        return Answer(conn, MATCH if conn is not None else NO_MATCH)

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

    def _find_host(self, service: str, username: str | None) -> Answer:
        # A bare host carries no scheme and no path: pip asks it for http://h/anything after a
        # 401, and uv asks it before sending. Only a connection whose owner opted in answers it;
        # among those, one secret must be unambiguous (a username may pick one).
        netloc, scheme = self._netlocs(service)
        found = list(self._host_wide.get(netloc, ()))
        if scheme:
            bare = netloc.rsplit(":", 1)[0]
            found += [e for e in self._host_wide.get(bare, ()) if e.target.startswith(scheme)]
        conns = [self._conn(e) for e in found]
        if username:
            mine = [c for c in conns if c.username == username]
            if mine and len({c.secret for c in mine}) == 1:
                return Answer(mine[0], HOST_WIDE)
        if conns and len({c.secret for c in conns}) == 1:
            return Answer(conns[0], HOST_WIDE)
        if conns:
            return Answer(None, HOST_AMBIGUOUS)
        # Nothing opted in: tell "a connection on this host did not opt in" from "nothing here"
        # (only on a miss, so a served lookup never pays for it).
        return Answer(None, HOST_NOT_OPTED_IN if self.host_entries(service) else NO_MATCH)

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
