"""privpkg.pipconfig in-process: the one reader of pip's config files, for ``cert`` (privpkg.http)
and the indexes (privpkg.confusion), with pip's rule for ``pip install``. The file order and the
cert against real pip: tests/test_network.py (test_pip_config_files_and_cert_match_real_pip)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from privpkg import confusion, envvars, http, pipconfig
from privpkg.connections import CredentialLookup

FEED = "https://h.example/org/simple/"


def _lookup() -> CredentialLookup:
    conns = [{"name": "feed", "target": "https://h.example/org", "secret": "pc-PAT-0d9e8f7a6b"}]
    return CredentialLookup(document={}, environ={envvars.CONNECTIONS: json.dumps(conns)})


@pytest.fixture
def conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The only config file both readers see (this machine's /etc/pip.conf left out: which files
    pip reads is test_network's check against real pip)."""
    path = tmp_path / "pip.conf"
    monkeypatch.setattr(pipconfig, "files", lambda environ=None, prefix=None: [path])
    return path


def test_download_section_does_not_count_for_install(conf: Path) -> None:
    """[download] (and [freeze], [Install] as cased) belong to other commands: neither the cert
    nor the extra index there is pip install's, for either reader."""
    conf.write_text(f"[global]\ncert = /global.pem\n[download]\ncert = /download.pem\nextra-index-url = {FEED}\n"
                    f"[freeze]\nextra-index-url = {FEED}\n[Install]\nextra-index-url = {FEED}\n")
    env: dict[str, str] = {}
    cert = http.pip_cert(env)
    assert cert is not None and (cert.path, cert.source) == ("/global.pem", f"cert in {conf} [global]")
    assert confusion.scan(_lookup(), environ=env) == []
    conf.write_text(conf.read_text() + f"[install]\ncert = /install.pem\nextra-index-url = {FEED}\n")
    cert = http.pip_cert(env)
    assert cert is not None and cert.path == "/install.pem"
    assert [f.where for f in confusion.scan(_lookup(), environ=env)] == [f"{conf} [install] extra-index-url"]


def test_keys_variables_and_order(tmp_path: Path) -> None:
    """Keys with ``--``, ``_`` or capitals are one key; [install] beats [global] of a later file;
    a PIP_ variable beats both; an empty value in a later file erases the earlier file's value
    of that section (pip merges the files first, then drops empty values)."""
    early, late = tmp_path / "early.conf", tmp_path / "late.conf"
    early.write_text("[install]\n--Index_URL = https://early.example/simple/\n")
    late.write_text("[global]\nindex-url = https://late.example/simple/\n")
    found = pipconfig.install_settings(["index-url"], {}, config_files=[early, late])
    assert [(s.value, s.where()) for s in found] == [
        ("https://late.example/simple/", f"{late} [global] index-url"),
        ("https://early.example/simple/", f"{early} [install] --index_url"),
    ]
    found = pipconfig.install_settings(["index-url"], {"PIP_INDEX_URL": "https://var.example/"}, config_files=[early, late])
    assert (found[-1].value, found[-1].where()) == ("https://var.example/", "$PIP_INDEX_URL")
    late.write_text(late.read_text() + "[install]\nindex_url =\n")
    found = pipconfig.install_settings(["index-url"], {"PIP_INDEX_URL": ""}, config_files=[early, late])
    assert [s.value for s in found] == ["https://late.example/simple/"]


def test_a_file_pip_cannot_read_is_skipped_by_both(conf: Path) -> None:
    """Not UTF-8 (the locale's encoding here), or a duplicate key: pip stops on such a file; both
    readers skip it alike (the cert reader used to decode it with replacement characters)."""
    conf.write_bytes(b"[global]\ncert = /caf\xe9.pem\nextra-index-url = " + FEED.encode() + b"\n")
    assert http.pip_cert({}) is None and confusion.scan(_lookup(), environ={}) == []
    conf.write_text(f"[global]\ncert = /a.pem\ncert = /b.pem\nextra-index-url = {FEED}\n")
    assert http.pip_cert({}) is None and confusion.scan(_lookup(), environ={}) == []
    conf.write_text(f"[global]\ncert = /a.pem\nextra-index-url = {FEED}\n")  # the same file, readable: both see it
    assert http.pip_cert({}) is not None and len(confusion.scan(_lookup(), environ={})) == 1
