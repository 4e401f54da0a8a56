"""``privpkg setup conda``: channel_settings entries in the user's condarc (ruamel.yaml round
trip, comments kept, no secret), kept in step by the connection verbs, and ``--undo`` restoring
the file byte for byte (or, after the user's own edits, removing only privpkg's entries).

Without conda (CI has none): what conda makes of the file is checked by conda's own rule, copied
in :func:`conda_routes` from conda 26.7's ``get_session`` (exact channel name or fnmatch of
netloc+path with the same scheme); the real-conda tests run it for real."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import urlparse

import pytest
from support.cli import PrivpkgCLI
from support.env import assert_no_secret

from privpkg import connections, envvars
from privpkg.conda import condarc
from privpkg.errors import PrivpkgError, UsageError

PAT = "condarc-PAT-3b9d1f7e5a"
TOKEN = "condarc-TOKEN-2c8e0a6f4d"
A = "https://conda.example.com/api/conda/a/"
B = "https://conda.example.com/api/conda/b/"

ORIGINAL = """\
# my conda settings  (a comment that must survive)
channels:
  - conda-forge   # trailing comment
  - defaults
channel_settings:
  - channel: https://other.example.com/*
    auth: conda-auth-basic   # someone else's handler
show_channel_urls: true
envs_dirs: ['~/envs', "/opt/envs"]
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(envvars.HOME, str(tmp_path / "privpkg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    for var in (envvars.MASTER_KEY, envvars.CONNECTIONS, *envvars.AZURE_ENDPOINTS, "CONDARC"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "home"


def conda_routes(rc: Path, url: str) -> str | None:
    """The auth handler conda 26.7 picks for ``url`` from ``rc``'s channel_settings (its rule,
    conda/gateways/connection/session.py ``get_session``: the last matching entry wins)."""
    from ruamel.yaml import YAML

    doc = YAML(typ="safe").load(rc.read_text()) or {}
    found: str | None = None
    for s in doc.get("channel_settings") or []:
        channel = s.get("channel", "")
        pu, ps = urlparse(url), urlparse(channel)
        if ps.scheme == pu.scheme and fnmatch(pu.netloc + pu.path, ps.netloc + ps.path):
            found = s.get("auth")
    return found


def _chan(name: str, target: str, secret: str = PAT, auth: str = "PAT") -> None:
    connections.set_connection(name, "CondaChannel", target, auth, value=secret)


def test_setup_writes_one_entry_per_target_and_undo_restores_bytes(home: Path) -> None:
    rc = home / ".condarc"
    rc.write_text(ORIGINAL)
    _chan("a", A)
    _chan("b", B, TOKEN, "Bearer")
    connections.set_connection("feed", "PythonFeed", "https://conda.example.com/pypi/", "PAT", value=PAT)
    msg = condarc.setup_conda()
    assert msg.splitlines() == [
        f"routed {A}* to privpkg (connection 'a') in {rc}",
        f"routed {B}* to privpkg (connection 'b') in {rc}",
    ]
    text = rc.read_text()
    assert_no_secret(text, PAT, TOKEN)
    assert text.startswith(ORIGINAL.split("show_channel_urls")[0]), text  # comments and layout kept
    assert "show_channel_urls: true\nenvs_dirs: ['~/envs', \"/opt/envs\"]\n" in text
    assert f"  - channel: {A}*\n    auth: privpkg\n" in text
    assert conda_routes(rc, A + "noarch/repodata.json") == "privpkg"
    assert conda_routes(rc, B + "linux-64/pkg-1-0.conda") == "privpkg"
    assert conda_routes(rc, "https://conda.example.com/pypi/simple/") is None  # a PythonFeed is not routed
    assert conda_routes(rc, "http://conda.example.com/api/conda/a/noarch/repodata.json") is None  # same scheme only
    assert conda_routes(rc, "https://other.example.com/x/") == "conda-auth-basic"
    record = (home.parent / "privpkg" / "setup-conda.json").read_text()
    assert "conda-forge" not in record, "the record keeps a copy of the file"
    assert condarc.setup_conda().endswith("already routes every CondaChannel connection to privpkg; nothing changed")
    assert condarc.undo_setup_conda() == f"restored {rc} as it was before privpkg setup conda"
    assert rc.read_text() == ORIGINAL
    with pytest.raises(PrivpkgError, match="nothing to undo"):
        condarc.undo_setup_conda()


def test_setup_creates_the_file_and_undo_removes_it(home: Path) -> None:
    _chan("a", A)
    rc = home / ".condarc"
    condarc.setup_conda()
    assert rc.read_text() == f"channel_settings:\n  - channel: {A}*\n    auth: privpkg\n"
    assert oct(rc.stat().st_mode & 0o777) == "0o644"
    assert condarc.undo_setup_conda() == f"removed {rc} (privpkg had created it)"
    assert not rc.exists()


def test_undo_keeps_the_users_comments_in_a_file_privpkg_created(home: Path) -> None:
    _chan("a", A)
    rc = home / ".condarc"
    condarc.setup_conda()
    rc.write_text("# my notes: keep this\n" + rc.read_text())
    assert condarc.undo_setup_conda().startswith("removed privpkg's channel_settings entries")
    assert "# my notes: keep this" in rc.read_text() and "privpkg" not in rc.read_text()


def test_condarc_variable_names_the_file_when_conda_reads_it(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _chan("a", A)
    mine = tmp_path / "conf" / "my.yml"
    monkeypatch.setenv("CONDARC", str(mine))
    assert str(mine) in condarc.setup_conda()
    assert mine.exists() and not (home / ".condarc").exists()
    condarc.undo_setup_conda()
    monkeypatch.setenv("CONDARC", str(tmp_path / "conf" / "settings.txt"))  # conda ignores this name
    msg = condarc.setup_conda()
    assert msg.splitlines()[0].startswith("note: conda ignores $CONDARC=") and (home / ".condarc").exists()


def test_sequence_style_of_the_file_is_kept(home: Path) -> None:
    rc = home / ".condarc"
    flat = "channels:\n- conda-forge\n- defaults\n"
    rc.write_text(flat)
    _chan("a", A)
    condarc.setup_conda()
    assert rc.read_text() == flat + f"channel_settings:\n- channel: {A}*\n  auth: privpkg\n"


def test_connection_changes_keep_entries_in_sync_after_setup(home: Path) -> None:
    rc = home / ".condarc"
    rc.write_text(ORIGINAL)
    _chan("a", A)
    assert condarc.sync() == ["conda: run `privpkg setup conda` to route conda's requests to CondaChannel connections through privpkg"]
    assert rc.read_text() == ORIGINAL  # before setup, sync only says so
    condarc.setup_conda()
    _chan("b", B)
    assert condarc.sync() == [f"conda: routed {B}* to privpkg in {rc}"]
    connections.delete_connection("a")
    assert condarc.sync() == [f"conda: removed {A}* from {rc}"]
    assert conda_routes(rc, A + "noarch/repodata.json") is None and conda_routes(rc, B + "noarch/x") == "privpkg"
    assert condarc.sync() == []
    # Synced edits keep --undo exact.
    assert condarc.undo_setup_conda().startswith("restored")
    assert rc.read_text() == ORIGINAL


def test_undo_after_the_user_edited_keeps_their_edits(home: Path) -> None:
    rc = home / ".condarc"
    rc.write_text(ORIGINAL)
    _chan("a", A)
    _chan("b", B)
    condarc.setup_conda()
    edited = rc.read_text().replace("show_channel_urls: true", "show_channel_urls: false  # mine")
    edited = edited.replace(f"channel: {B}*\n    auth: privpkg", f"channel: {B}*\n    auth: conda-auth-token")
    rc.write_text(edited)
    _chan("c", "https://conda.example.com/api/conda/c/")
    assert condarc.sync() == [f"conda: routed https://conda.example.com/api/conda/c/* to privpkg in {rc}"]
    msg = condarc.undo_setup_conda()
    assert msg.splitlines() == [f"removed privpkg's channel_settings entries from {rc}; your other changes since were kept",
                                f"left alone (you changed their auth since): {B}*"]
    text = rc.read_text()
    assert "show_channel_urls: false  # mine" in text and "# my conda settings" in text
    assert "auth: privpkg" not in text and "conda-auth-token" in text


def test_entry_the_user_routed_elsewhere_is_left_alone(home: Path) -> None:
    rc = home / ".condarc"
    rc.write_text(f"channel_settings:\n  - channel: {A}*\n    auth: conda-auth-basic\n")
    _chan("a", A)
    msg = condarc.setup_conda()
    assert f"left alone: {A}* is routed to 'conda-auth-basic'" in msg
    assert "auth: privpkg" not in rc.read_text()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("channels: [a\n", "is not valid YAML"),
        ("- just\n- a list\n", "is not a YAML mapping"),
        ("channel_settings: {channel: x}\n", "channel_settings in .* is not a list"),
    ],
)
def test_a_file_conda_would_refuse_is_left_alone(home: Path, content: str, match: str) -> None:
    rc = home / ".condarc"
    rc.write_text(content)
    _chan("a", A)
    with pytest.raises(PrivpkgError, match=match):
        condarc.setup_conda()
    assert rc.read_text() == content
    assert not (home.parent / "privpkg" / "setup-conda.json").exists()


def test_no_channel_connection_is_one_line(home: Path) -> None:
    with pytest.raises(UsageError, match="no CondaChannel connection to route"):
        condarc.setup_conda()
    assert not (home / ".condarc").exists()


# ---------------------------------------------------------------------------- the CLI


def test_cli_setup_sync_and_undo(checked_cli: Callable[..., PrivpkgCLI], test_home: Path) -> None:
    cli = checked_cli(PAT, TOKEN)
    rc = test_home / "home" / ".condarc"
    rc.parent.mkdir(parents=True, exist_ok=True)
    rc.write_text(ORIGINAL)
    out = cli.ok("connection", "set", "a", "--category", "CondaChannel", "--target", A, stdin=PAT)
    assert "conda: run `privpkg setup conda`" in out
    cli.fails(1, "setup", "conda", "--undo", match="nothing to undo")
    assert cli.ok("setup", "conda").strip() == f"routed {A}* to privpkg (connection 'a') in {rc}"
    out = cli.ok("connection", "set", "b", "--category", "CondaChannel", "--auth-type", "Bearer", "--target", B, stdin=TOKEN)
    assert f"conda: routed {B}* to privpkg in {rc}" in out
    cli.ok("connection", "set", "feed", "--target", "https://pypi.example.com/", stdin=PAT)  # not a channel: no change
    assert cli.ok("auth", "logout", B).splitlines()[-1] == f"conda: removed {B}* from {rc}"
    assert cli.ok("connection", "delete", "a").splitlines()[-1] == f"conda: removed {A}* from {rc}"
    assert_no_secret(rc.read_text(), PAT, TOKEN)
    assert cli.ok("setup", "conda", "--undo").strip() == f"restored {rc} as it was before privpkg setup conda"
    assert rc.read_text() == ORIGINAL
    cli.fails(2, "connection", "set", "x", "--auth-type", "Bearer", "--target", A, match="Bearer is for CondaChannel", stdin=PAT)


def test_cli_sync_failure_is_a_warning_not_a_failed_verb(checked_cli: Callable[..., PrivpkgCLI], test_home: Path) -> None:
    cli = checked_cli(PAT)
    rc = test_home / "home" / ".condarc"
    rc.parent.mkdir(parents=True, exist_ok=True)
    cli.ok("connection", "set", "a", "--category", "CondaChannel", "--target", A, stdin=PAT)
    cli.ok("setup", "conda")
    rc.write_text("channels: [broken\n")
    res = cli("connection", "set", "b", "--category", "CondaChannel", "--target", B, stdin=PAT)
    assert res.returncode == 0, res.stderr
    assert res.stderr.startswith("privpkg: warning: conda: condarc not updated (condarc ") and res.stderr.count("\n") == 1
    assert json.loads(cli.ok("connection", "list", "--json"))[-1]["name"] == "b"
    assert os.path.exists(rc)


# ---------------------------------------------------------------------------- privpkg doctor's conda section


def _fake_conda(tmp_path: Path, plugin: bool) -> dict[str, str]:
    """A ``conda`` script run by the interpreter this test venv was made from (privpkg is not
    installed there; the doctor reads the script's ``#!`` line) and, with ``plugin``, a
    distribution on PYTHONPATH declaring privpkg's ``conda`` entry point: the doctor asks that
    interpreter's importlib.metadata, as it asks a real conda's (no conda here)."""
    import sys

    base_python = Path(sys.base_prefix) / "bin" / "python3"
    bin_dir = tmp_path / "fakeconda" / "bin"
    bin_dir.mkdir(parents=True)
    exe = bin_dir / "conda"
    exe.write_text(f"#!{base_python}\nraise SystemExit('not a real conda')\n")
    exe.chmod(0o755)
    env = {"CONDA_EXE": str(exe)}
    if plugin:
        site = tmp_path / "fakeconda" / "site"
        info = site / "privpkg_conda_probe-9.9.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: privpkg-conda-probe\nVersion: 9.9\n")
        (info / "entry_points.txt").write_text("[conda]\nprivpkg = privpkg.conda.plugin\n")
        env["PYTHONPATH"] = str(site)
    return env


def _doctor(cli: PrivpkgCLI, *args: str, env: dict[str, str] | None = None) -> list[dict[str, str]]:
    res = cli("doctor", "--json", *args, env=env)
    return [c for c in json.loads(res.stdout) if c["name"].startswith("conda")]


def test_doctor_without_conda_says_so_in_one_line(checked_cli: Callable[..., PrivpkgCLI]) -> None:
    cli = checked_cli(PAT)
    assert _doctor(cli) == []  # nothing conda-related here: no conda section at all
    cli.ok("connection", "set", "a", "--category", "CondaChannel", "--target", A, stdin=PAT)
    checks = _doctor(cli)
    assert [(c["name"], c["status"]) for c in checks][:1] == [("conda", "ok")]
    assert checks[0]["detail"].startswith("conda: none found ($CONDA_EXE unset, no conda on PATH)")
    assert checks[-1]["detail"].startswith(f"connection 'a': no channel_settings entry routes {A}* to privpkg")


def test_doctor_reports_plugin_routing_and_the_url(checked_cli: Callable[..., PrivpkgCLI], test_home: Path, tmp_path: Path) -> None:
    cli = checked_cli(PAT, TOKEN)
    rc = test_home / "home" / ".condarc"
    cli.ok("connection", "set", "a", "--category", "CondaChannel", "--target", A, stdin=PAT)
    cli.ok("setup", "conda")
    unrouted = f'[{{"name": "ci", "category": "CondaChannel", "auth_type": "Bearer", "target": "{B}", "secret": "{TOKEN}"}}]'
    env = {**_fake_conda(tmp_path, plugin=False), envvars.CONNECTIONS: unrouted}
    checks = _doctor(cli, "--url", A + "noarch/repodata.json", env=env)
    by = [(c["name"], c["status"]) for c in checks]
    assert by[0] == ("conda-plugin", "fail"), checks  # condarc routes to a handler this conda lacks
    assert "privpkg's plugin is not registered in" in checks[0]["detail"] and "-m pip install" in checks[0]["detail"]
    details = [c["detail"] for c in checks]
    assert f"condarc {rc}: 1 channel_settings entry route to privpkg" in details
    assert f"{A}* -> privpkg" in details
    assert any(d.startswith(f"connection 'ci': no channel_settings entry routes {B}* to privpkg") for d in details), details
    assert details[-1] == (f"conda: connection 'a' (store, target {A}) answers {A}noarch/repodata.json with a PAT as HTTP Basic; "
                           "condarc routes it to privpkg")
    ok = _doctor(cli, "--url", B + "noarch/repodata.json", env={**_fake_conda(tmp_path / "2", plugin=True), envvars.CONNECTIONS: unrouted})
    assert ok[0]["status"] == "ok" and "privpkg's plugin is registered in" in ok[0]["detail"], ok
    assert "privpkg = privpkg.conda.plugin (privpkg-conda-probe 9.9)" in ok[0]["detail"]
    assert ok[-1]["status"] == "warn" and "no channel_settings entry routes it to privpkg: run privpkg setup conda" in ok[-1]["detail"]
    res = cli("doctor", env=env)  # the text form: one line each, never a secret
    assert "FAIL  conda: privpkg's plugin is not registered" in res.stdout
    # setup conda says so too, since the entries it writes route to that missing handler.
    out = cli.ok("setup", "conda", env=env)
    assert out.splitlines()[-1].startswith("note: conda: privpkg's plugin is not registered in"), out
    assert "note:" not in cli.ok("setup", "conda", env=_fake_conda(tmp_path / "3", plugin=True))
