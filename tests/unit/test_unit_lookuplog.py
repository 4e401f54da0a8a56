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
    conn = _conn(expires="2020-01-01", username="u" * 5000)
    rec = lookuplog.entry("https://h.example/" + "x" * 5000, "u" * 5000, api="creds", reason="match", conn=conn)
    assert rec["expired"] == "2020-01-01"
    assert len(rec["service"]) == lookuplog.MAX_FIELD and len(rec["username"]) == lookuplog.MAX_FIELD
    assert len(json.dumps(rec, separators=(",", ":"))) < lookuplog.MAX_LINE


# A GitHub-style PAT and a Gemfury-style token: what pip may pass as the username of
# https://TOKEN@host/... or in the path of https://host/TOKEN/.
GH_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2
FURY_TOKEN = "1a2B3c4D5e6F7g8H9i0J"


def test_username_is_kept_only_when_it_names_no_one() -> None:
    """A token given as the username is recorded as ``<given>``; a placeholder and the answering
    connection's own username are kept; no username stays None."""
    def username(asked: str | None, conn: Connection | None = None) -> object:
        rec = lookuplog.entry(f"https://{asked}@h.example/org/simple/", asked, api="password", reason="no-match", conn=conn)
        assert GH_TOKEN not in json.dumps(rec)
        return rec["username"]

    assert username(GH_TOKEN) == lookuplog.GIVEN
    assert username(GH_TOKEN, _conn()) == lookuplog.GIVEN  # served, but not the connection's username
    assert username("alice") == lookuplog.GIVEN  # a person's name is not on the list either
    assert username("alice", _conn(username="alice")) == "alice"  # `privpkg connection list` shows it anyway
    for placeholder in ("__token__", "oauth2", "x-access-token", "PAT", "aws"):
        assert username(placeholder) == placeholder
    assert lookuplog.entry("https://h.example/", None, api="creds", reason="no-match")["username"] is None
    assert lookuplog.entry("h.example", "", api="password", reason="no-match")["username"] is None
    text = "\n".join(lookuplog.format_record(lookuplog.entry("https://h.example/", GH_TOKEN, api="password", reason="no-match")))
    assert "with a username (not recorded: it may be a token)" in text and GH_TOKEN not in text


@pytest.mark.parametrize(
    ("service", "shown"),
    [
        (f"https://pypi.fury.io/{FURY_TOKEN}/acme/simple/", "https://pypi.fury.io/***/acme/simple/"),
        (f"https://h.example/{GH_TOKEN}/simple/?x=1#frag", "https://h.example/***/simple/?***"),
        (f"https://{GH_TOKEN}:x@h.example/a/{FURY_TOKEN}", "https://***@h.example/a/***"),
        # Kept: no digit, no letter, too short, or a character no token has.
        ("https://pkgs.dev.azure.com/org/_packaging/a-long-feed-name-no-digits/pypi/simple/", None),
        ("https://h.example/12345678901234567890123/simple/", None),
        ("https://h.example/org/feed2024/simple/pkg-1.0.tar.gz", None),
        ("https://h.example/org/simple/some-package-1.2.3-py3-none-any.whl", None),
    ],
)
def test_token_like_path_segments_are_masked(service: str, shown: str | None) -> None:
    rec = lookuplog.entry(service, None, api="creds", reason="no-match")
    assert rec["service"] == (shown or service)
    for token in (GH_TOKEN, FURY_TOKEN):
        assert token not in json.dumps(rec)


def test_a_target_with_a_token_in_its_path_is_masked_with_its_name() -> None:
    """A connection made by ``keyring set https://pypi.fury.io/TOKEN/acme/ USER`` is named after
    its URL: the record masks the token in both; a name on a target without one is kept whole."""
    conn = _conn(name=f"pypi.fury.io/{FURY_TOKEN}/acme", target=f"https://pypi.fury.io/{FURY_TOKEN}/acme/")
    rec = lookuplog.entry(f"https://pypi.fury.io/{FURY_TOKEN}/acme/simple/", None, api="creds", reason="match", conn=conn)
    assert (rec["connection"], rec["target"]) == ("pypi.fury.io/***/acme", "https://pypi.fury.io/***/acme/")
    assert FURY_TOKEN not in json.dumps(rec) and FURY_TOKEN not in "\n".join(lookuplog.format_record(rec))
    kept = lookuplog.entry("https://h.example/org/", None, api="creds", reason="match", conn=_conn(name="team-feed-2024-production"))
    assert kept["connection"] == "team-feed-2024-production"


def test_no_match_hint_never_asks_for_the_masked_token_on_a_command_line() -> None:
    """The masked segment may be a token: the hint names a target above it (which covers the
    URL), never a command to type with the token in it (ps and shell history would keep it)."""
    _, hint = lookuplog.explain({"service": "https://pypi.fury.io/***/acme/simple/", "reason": "no-match", "served": False})
    assert hint == ("add one with: privpkg connection set NAME --target https://pypi.fury.io/ (a target covers every URL below it; "
                    "never put the masked segment, maybe a token, on a command line)")
    _, hint = lookuplog.explain({"service": "https://pypi.fury.io/***/acme/simple/", "reason": "no-match", "served": False,
                                 "errors": ["ignoring $PRIVPKG_CONNECTIONS: ..."]})
    assert hint is not None and "--target https://pypi.fury.io/ " in hint and "***" not in hint.split("(", 1)[0]


def test_served_hint_names_the_url_to_test() -> None:
    """The hint of a served lookup is a command to run: the URL asked (without the masked user
    info), or URL where a token was masked out of it."""
    rec = {"service": "https://***@h.example/org/simple/", "reason": "match", "served": True, "connection": "feed",
           "source": "store", "target": "https://h.example/org/"}
    assert lookuplog.explain(rec)[1] == ("if the feed still answered 401, the PAT is wrong or revoked: "
                                         "privpkg connection test feed --url https://h.example/org/simple/")
    rec["service"] = "https://pypi.fury.io/***/acme/simple/"
    assert str(lookuplog.explain(rec)[1]).endswith("privpkg connection test feed --url URL")


def test_paused_records_nothing(home: Path) -> None:
    """``doctor --url`` asks the backend itself inside lookuplog.paused(): nothing is recorded
    then, and recording resumes after."""
    with lookuplog.paused():
        lookuplog.record("https://h.example/x/", None, api="creds", reason="no-match")
    assert _reasons(home) == []
    lookuplog.record("https://h.example/y/", None, api="creds", reason="no-match")
    assert _reasons(home) == [("https://h.example/y/", "no-match", None)]


def test_warnings_are_recorded_bounded_and_masked(home: Path) -> None:
    """The lookup's warnings land in the record (at most MAX_ERRORS, the rest counted), a
    token-like word in one is masked, doctor --last shows them, and warnings too long for a line
    never cost the record."""
    errors = [f"ignoring $PRIVPKG_CONNECTIONS: entry {FURY_TOKEN!r} is not an object", "b", "c", "d", "e"]
    rec = lookuplog.entry("https://h.example/org/simple/", None, api="creds", reason="no-match", errors=errors)
    assert rec["errors"] == [
        "ignoring $PRIVPKG_CONNECTIONS: entry '***' is not an object", "b", "c", "and 2 more (privpkg doctor lists them)"
    ]
    lines = lookuplog.format_record(rec)
    assert lines[2] == "      warning: ignoring $PRIVPKG_CONNECTIONS: entry '***' is not an object" and lines[5].startswith("      warning: and 2")
    assert lines[-1].startswith("      hint: privpkg ignored what the warnings name (a connection may be there)")
    assert "errors" not in lookuplog.entry("https://h.example/", None, api="creds", reason="no-match", errors=[])

    # Every field at its MAX_FIELD cut: with three long warnings the line would pass MAX_LINE.
    conn = _conn(name="n" * 500, target="https://h.example/" + "t" * 500, source="s" * 500)
    long = ["x " * 2000] * 3
    lookuplog.record("https://h.example/" + "p" * 500, None, api="creds", reason="match", errors=long, conn=conn)
    (last,) = lookuplog.read_last(1, home / "lookups.log")
    assert last["errors"] == ["3 warnings too long to record; privpkg doctor lists them"] and last["connection"] == "n" * 297 + "..."


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


def test_backend_records_the_lookups_warnings(home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed $PRIVPKG_CONNECTIONS and an unreadable Azure variable: every lookup's record
    carries both warnings, a lookup that reuses the decrypted snapshot included; the value's
    secret is in none of them."""
    connections.set_connection("a", "PythonFeed", "https://h.example/org", "PAT", value=PAT)
    monkeypatch.setenv(envvars.CONNECTIONS, json.dumps([{"name": "x", "target": "ftp://h.example/", "secret": PAT}]))
    monkeypatch.setenv(envvars.AZURE_ENDPOINTS[0], '{"endpointCredentials": [{"endpoint": "https://h/", "password": 5}]}')
    kr = PrivpkgKeyring()
    assert kr.get_credential("https://h.example/org/simple/", None).password == PAT
    assert kr.get_credential("https://h.example/other/simple/", None) is None  # the snapshot reused
    recs = lookuplog.read_last(2, home / "lookups.log")
    for rec in recs:
        assert rec["errors"] == [
            f"ignoring ${envvars.CONNECTIONS}: unsupported URL scheme 'ftp' for a PythonFeed target; use https://",
            f"ignoring ${envvars.AZURE_ENDPOINTS[0]}: endpointCredentials[0] has no password",
        ], rec
    assert PAT not in (home / "lookups.log").read_text()
    assert capsys.readouterr().err.count("ignoring $PRIVPKG_CONNECTIONS") == 1  # stderr too, once per process


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
