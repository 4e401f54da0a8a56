"""privpkg.lookuplog in-process: the record's format (redacted, no secret, bounded), the size cap
and its rotation, the file's safety (0600, no symlink or hard link followed), the reader that skips
broken lines, an explanation for every reason, and the keyring backend's reasons (ambiguous
host, bare host not opted in, unreadable store, expired still served) landing in the log."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from privpkg import connections, envvars, lookuplog
from privpkg.connections import Connection
from privpkg.connections.lookup import REASONS
from privpkg.keyring_backend import PrivpkgKeyring

PAT = "unit-PAT-9c1e5b7f3a"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in envvars.ALL:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(envvars.HOME, str(tmp_path / "home"))
    return tmp_path / "home"


def _conn(**kw: object) -> Connection:
    args: dict[str, object] = {
        "name": "feed", "category": "PythonFeed", "target": "https://h.example/org/", "auth_type": "PAT", "username": "__token__", "secret": PAT
    }
    args.update(kw)
    return Connection(**args)  # type: ignore[arg-type]


def test_entry_masks_userinfo_and_query_and_holds_no_secret() -> None:
    rec = lookuplog.entry(f"https://__token__:{PAT}@h.example/org/simple/?sig={PAT}", "__token__", api="creds", reason="match", conn=_conn())
    line = json.dumps(rec)
    assert PAT not in line
    assert rec["service"] == "https://***@h.example/org/simple/?***"
    assert rec["connection"] == "feed" and rec["target"] == "https://h.example/org/" and rec["served"] is True
    assert "expired" not in rec
    bare = lookuplog.entry(f"me:{PAT}@h.example:8443", None, api="password", reason="no-match")
    assert bare["service"] == "***@h.example:8443" and bare["served"] is False and PAT not in json.dumps(bare)


def test_entry_marks_an_expired_connection_and_cuts_long_fields() -> None:
    rec = lookuplog.entry("https://h.example/" + "x" * 5000, "u" * 5000, api="creds", reason="match", conn=_conn(expires="2020-01-01"))
    assert rec["expired"] == "2020-01-01"
    assert len(rec["service"]) == lookuplog.MAX_FIELD and len(rec["username"]) == lookuplog.MAX_FIELD
    assert len(json.dumps(rec, separators=(",", ":"))) < lookuplog.MAX_LINE


def test_every_reason_has_its_own_explanation() -> None:
    for reason in (*REASONS, lookuplog.NO_CONNECTIONS, lookuplog.STORE_UNREADABLE, lookuplog.GENERIC, lookuplog.FAILED):
        served = reason in ("match", "host-wide", lookuplog.GENERIC)
        outcome, _ = lookuplog.explain({"service": "https://h/x/", "reason": reason, "served": served, "connection": "c"})
        assert f"({reason})" not in outcome, f"no explanation for {reason}"
    outcome, hint = lookuplog.explain({"service": "https://***@h/x/simple/?***", "reason": "no-match", "served": False})
    assert outcome == "nothing: no connection matches it" and hint == "add one with: privpkg auth login https://h/x/simple/"


def test_cap_rotates_to_one_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "lookups.log"
    cap = 1000
    for i in range(100):
        lookuplog.append(path, (json.dumps({"reason": "no-match", "service": f"s{i}", "pad": "x" * 60}) + "\n").encode(), max_bytes=cap)
        assert path.stat().st_size <= cap
    old = Path(f"{path}.1")
    assert old.stat().st_size <= cap
    assert [r["service"] for r in lookuplog.read_last(3, path)] == ["s97", "s98", "s99"]
    assert len(lookuplog.read_last(1000, path)) < 100  # older generations are gone: the cap holds
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_file_is_private_and_never_followed(tmp_path: Path) -> None:
    path = tmp_path / "lookups.log"
    path.write_bytes(b"")
    path.chmod(0o644)
    lookuplog.append(path, b'{"reason":"match","service":"a"}\n')
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "a looser mode is tightened"
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep\n")
    path.unlink()
    path.symlink_to(victim)
    with pytest.raises(OSError):
        lookuplog.append(path, b"planted\n")
    os.link(victim, tmp_path / "hardlink.log")
    lookuplog.append(tmp_path / "hardlink.log", b"planted\n")  # a second link: written nowhere
    assert victim.read_bytes() == b"keep\n"


def test_reader_skips_broken_lines(tmp_path: Path) -> None:
    path = tmp_path / "lookups.log"
    path.write_text('{"reason":"match","service":"a"}\n{"reason":"no-ma\nnot json\n[1]\n{"reason":"no-match","service":"b"}\n')
    assert [r["service"] for r in lookuplog.read_last(10, path)] == ["a", "b"]
    assert lookuplog.read_last(10, tmp_path / "missing.log") == []


def test_record_never_raises(home: Path, tmp_path: Path) -> None:
    home.parent.mkdir(parents=True, exist_ok=True)
    home.write_text("a file where the state dir should be")
    lookuplog.record("https://h.example/x/", None, api="creds", reason="no-match")  # ENOTDIR: swallowed


def _reasons(home: Path) -> list[tuple[str, str, str | None]]:
    return [(r["service"], r["reason"], r.get("connection")) for r in lookuplog.read_last(50, home / "lookups.log")]


def test_backend_records_why_each_lookup_answered(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kr = PrivpkgKeyring()
    assert kr.get_credential("https://h.example/org/simple/", None) is None
    connections.set_connection("a", "PythonFeed", "https://h.example/org", "PAT", value=PAT, host_wide=True)
    connections.set_connection("b", "PythonFeed", "https://h.example/other", "PAT", value=PAT + "-b", host_wide=True)
    connections.set_connection("c", "PythonFeed", "https://c.example/org", "PAT", value=PAT)
    connections.set_connection("old", "PythonFeed", "https://h.example/old", "PAT", value=PAT, expires="2020-01-01")
    assert kr.get_credential("https://h.example/org/simple/", None).password == PAT
    assert kr.get_credential("https://h.example/nope/", None) is None
    assert kr.get_credential("h.example", None) is None  # two host-wide secrets: ambiguous
    assert kr.get_password("c.example", "me") is None  # c did not opt in
    assert kr.get_password("https://h.example/old/simple/", "me") == PAT  # expired, still served
    assert kr.get_password("my-app", "me") is None  # could be a host: recorded
    assert kr.get_password("Some App/Token", "me") is None  # not a URL or host: not ours to record
    assert _reasons(home) == [
        ("https://h.example/org/simple/", lookuplog.NO_CONNECTIONS, None),
        ("https://h.example/org/simple/", "match", "a"),
        ("https://h.example/nope/", "no-match", None),
        ("h.example", "bare-host-ambiguous", None),
        ("c.example", "bare-host-not-opted-in", None),
        ("https://h.example/old/simple/", "match", "old"),
        ("my-app", "no-match", None),
    ]
    assert lookuplog.read_last(2, home / "lookups.log")[0]["expired"] == "2020-01-01"
    (home / "connections.store").write_bytes(b"garbage")
    assert kr.get_credential("https://h.example/org/simple/", None) is None
    last = lookuplog.read_last(1, home / "lookups.log")[0]
    assert last["reason"] == lookuplog.STORE_UNREADABLE and "not a privpkg store" in last["detail"]
    text = (home / "lookups.log").read_text()
    assert PAT not in text
    capsys.readouterr()


def test_program_names_never_keep_arguments() -> None:
    """The parent's command line may carry a PAT in a URL: only a name is kept."""
    from privpkg.lookuplog import _name_of

    assert _name_of(["/v/bin/python3.11", "-I", "-m", "pip", "install", f"https://u:{PAT}@h/"]) == "pip"
    assert _name_of(["/v/bin/pip", "install", "--index-url", f"https://u:{PAT}@h/"]) == "pip"
    assert _name_of(["python3", "/x/y/tool.py", PAT]) == "tool.py"
    assert _name_of(["/v/lib/python3.11/site-packages/keyring/__main__.py", "get"]) == "keyring"
    assert _name_of(["python3", "-c", f"print('{PAT}')"]) == "python3"
    assert _name_of([]) == "?"


def test_state_dir_follows_xdg_without_privpkg_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from privpkg import paths

    monkeypatch.delenv(envvars.HOME, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert lookuplog.log_path() == tmp_path / "state" / "privpkg" / "lookups.log"
    assert paths.state_dir() == tmp_path / "state" / "privpkg"
