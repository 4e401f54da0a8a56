"""privpkg.connections.sources.SOURCES by name: the order of the connection sources, and that
this order decides which of several connections with the same target a lookup answers with."""

from __future__ import annotations

import json

from privpkg import envvars
from privpkg.connections import CredentialLookup
from privpkg.connections import sources as sources_mod

TARGET = "https://pkgs.example.com/org/"


def test_sources_order() -> None:
    assert [s.__name__ for s in sources_mod.SOURCES] == ["from_connections_variable", "from_azure_variables", "from_store"]


def test_an_earlier_source_wins_for_the_same_target() -> None:
    environ = {
        envvars.CONNECTIONS: json.dumps([{"name": "from-env", "target": TARGET, "secret": "secret-from-env"}]),
        envvars.AZURE_ENDPOINTS[0]: json.dumps({"endpointCredentials": [{"endpoint": TARGET, "password": "secret-from-azure"}]}),
    }
    document = {"connections": {"from-store": {"target": TARGET, "secret": "secret-from-store"}}}
    service = TARGET + "simple/pkg/"
    for drop, expected in [(None, "secret-from-env"), (envvars.CONNECTIONS, "secret-from-azure"), (envvars.AZURE_ENDPOINTS[0], "secret-from-store")]:
        environ.pop(drop or "", None)
        found = CredentialLookup(document=document, environ=environ).find(service)
        assert found is not None and found.secret == expected, (drop, found)


def test_entries_follow_sources_order() -> None:
    environ = {envvars.CONNECTIONS: json.dumps([{"name": "e", "target": "https://a.example/x", "secret": "s1"}]),
               envvars.AZURE_ENDPOINTS[1]: json.dumps({"endpointCredentials": [{"endpoint": "https://b.example/y", "password": "s2"}]})}
    document = {"connections": {"s": {"target": "https://c.example/z", "secret": "s3"}}}
    errors: list[str] = []
    got = [sources_mod.entry_connection(e).secret for e in sources_mod.entries(environ, document, errors)]
    assert got == ["s1", "s2", "s3"] and errors == []
