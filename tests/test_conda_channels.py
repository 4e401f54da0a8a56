"""Private conda channels without conda: the auth handler's logic (:mod:`privpkg.conda.channelauth`)
called directly, and through a real ``requests`` session against the loopback channel server
(conda's handler is a requests ``AuthBase``; :class:`HandlerAuth` below is that class minus
conda's base, which only adds a ``channel_name`` attribute). The Bearer auth type's rules, and
the keyring backend's refusal to serve a Bearer connection to pip."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import requests
from support.channelserver import PACKAGES, ChannelServer, header_scheme
from support.env import assert_no_secret

from privpkg import connections, envvars
from privpkg.conda import channelauth
from privpkg.errors import PrivpkgError, UsageError
from privpkg.keyring_backend import PrivpkgKeyring

PAT = "chan-PAT-5c1d9e7a3b"
TOKEN = "chan-TOKEN-8e2f4a6c0d"
FEED_PAT = "feed-PAT-1a2b3c4d5e"
HOST = "https://conda.example.com"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(envvars.HOME, str(tmp_path / "home"))
    for var in (envvars.MASTER_KEY, envvars.CONNECTIONS, *envvars.AZURE_ENDPOINTS):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(channelauth, "_snapshot", None)
    monkeypatch.setattr(channelauth, "_explained", set())
    return tmp_path / "home"


def _channel(name: str, target: str, secret: str, auth: str = "PAT", **kw: Any) -> connections.Connection:
    return connections.set_connection(name, "CondaChannel", target, auth, value=secret, **kw)


def _basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


@pytest.fixture
def channels(home: Path) -> None:
    """An outer PAT channel target, a Bearer target inside it, and a PythonFeed inside both."""
    _channel("outer", f"{HOST}/org/", PAT, username="me")
    _channel("inner", f"{HOST}/org/private/", TOKEN, "Bearer")
    connections.set_connection("feed", "PythonFeed", f"{HOST}/org/pypi/", "PAT", value=FEED_PAT)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"{HOST}/org/private/linux-64/repodata.json", f"Bearer {TOKEN}"),  # the longest target wins
        (f"{HOST}/org/private/noarch/x-1-0.tar.bz2?x=1", f"Bearer {TOKEN}"),
        (f"{HOST}/org/public/noarch/repodata.json", _basic("me", PAT)),
        (f"{HOST}/org/pypi/noarch/repodata.json", _basic("me", PAT)),  # a PythonFeed is never a channel's
        (f"{HOST}/org/privateer/noarch/repodata.json", _basic("me", PAT)),  # path-segment boundary
        ("HTTPS://CONDA.example.com:443/org/x/noarch/repodata.json", _basic("me", PAT)),  # normalized
        (f"{HOST}/org-evil/noarch/repodata.json", None),
        (f"{HOST}/noarch/repodata.json", None),
        ("http://conda.example.com/org/private/noarch/repodata.json", None),  # https only
        ("https://conda.example.com:8443/org/noarch/repodata.json", None),  # another port
        ("https://other.example.com/org/noarch/repodata.json", None),  # another host
        ("ftp://conda.example.com/org/noarch/repodata.json", None),
        ("not a url", None),
    ],
)
def test_headers_for_matches_like_the_keyring_backend(channels: None, url: str, expected: str | None) -> None:
    assert channelauth.headers_for(url) == ({"Authorization": expected} if expected else {})


def test_plain_http_only_on_loopback(home: Path) -> None:
    _channel("local", "http://127.0.0.1:8123/chan/", PAT)
    _channel("far", "http://conda.example.com/chan/", PAT, allow_http=True)
    assert channelauth.headers_for("http://127.0.0.1:8123/chan/noarch/repodata.json") == {"Authorization": _basic("__token__", PAT)}
    # Stored with --allow-http, yet the handler still sends nothing there (conda-auth refuses too).
    assert channelauth.headers_for("http://conda.example.com/chan/noarch/repodata.json") == {}
    line = channelauth.explain_status("http://conda.example.com/chan/noarch/repodata.json", 401)
    assert line is not None and "only https URLs" in line


def test_api_key_goes_in_quetz_header(home: Path) -> None:
    _channel("quetz", "https://quetz.example.com/get/private/", TOKEN, "ApiKey")
    assert channelauth.headers_for("https://quetz.example.com/get/private/noarch/repodata.json") == {"X-API-Key": TOKEN}
    line = channelauth.explain_status("https://quetz.example.com/get/private/noarch/repodata.json", 401)
    assert line is not None and "(an X-API-Key header, HTTP 401)" in line and "--auth-type" not in line


def test_bearer_on_anaconda_org_is_sent_as_token(home: Path) -> None:
    """conda-auth's rule: anaconda.org takes ``Authorization: token``, every other server Bearer."""
    _channel("ana", "https://conda.anaconda.org/myorg/", TOKEN, "Bearer")
    _channel("ana-basic", "https://conda.anaconda.org/other/", PAT)
    assert channelauth.headers_for("https://conda.anaconda.org/myorg/noarch/repodata.json") == {"Authorization": f"token {TOKEN}"}
    assert channelauth.headers_for("https://conda.anaconda.org/other/noarch/repodata.json") == {"Authorization": _basic("__token__", PAT)}


def test_no_store_needs_no_key_and_serves_nothing(home: Path) -> None:
    assert not home.exists()
    assert channelauth.headers_for(f"{HOST}/org/noarch/repodata.json") == {}
    assert not home.exists(), "a lookup created the store or its key"


def test_lookup_is_cached_per_process_until_the_store_changes(home: Path) -> None:
    _channel("outer", f"{HOST}/org/", PAT)
    url = f"{HOST}/org/noarch/repodata.json"
    channelauth.headers_for(url)
    first = channelauth._snapshot
    channelauth.headers_for(url)
    assert channelauth._snapshot is first, "the decrypted lookup was rebuilt for an unchanged store"
    connections.update_connection("outer", TOKEN, auth_type="Bearer")
    assert channelauth.headers_for(url) == {"Authorization": f"Bearer {TOKEN}"}
    assert channelauth._snapshot is not first


def test_environment_connections_serve_channels(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(envvars.CONNECTIONS, f'[{{"name": "ci", "category": "CondaChannel", "auth_type": "Bearer", '
                                            f'"target": "{HOST}/ci/", "secret": "{TOKEN}"}}]')
    assert channelauth.headers_for(f"{HOST}/ci/noarch/repodata.json") == {"Authorization": f"Bearer {TOKEN}"}
    line = channelauth.explain_status(f"{HOST}/ci/noarch/repodata.json", 401)
    assert line is not None and "'ci'" in line and "$PRIVPKG_CONNECTIONS" in line
    assert TOKEN not in line


def test_unreadable_store_raises_one_line(home: Path) -> None:
    _channel("outer", f"{HOST}/org/", PAT)
    store = home / "connections.store"
    store.write_bytes(store.read_bytes()[:-3])
    with pytest.raises(PrivpkgError) as exc:
        channelauth.headers_for(f"{HOST}/org/noarch/repodata.json")
    assert "\n" not in str(exc.value) and PAT not in str(exc.value)
    line = channelauth.explain_status(f"{HOST}/org/noarch/repodata.json", 401)
    assert line is not None and "could not read its connections" in line and "\n" not in line


def test_explain_status_names_the_connection_to_fix(channels: None) -> None:
    url = f"{HOST}/org/private/linux-64/repodata.json"
    assert channelauth.explain_status(url, 200) is None
    assert channelauth.explain_status(url, 404) is None
    line = channelauth.explain_status(url, 401)
    assert line == (
        f"{HOST}/org/private/ refused connection 'inner' (a Bearer token, HTTP 401): the secret is wrong or revoked; renew it "
        "with: privpkg connection set inner --update (or, if the server takes HTTP Basic: --keep-secret --auth-type PAT)"
    )
    # conda tries several files of the channel before it gives up: the line comes once per process.
    assert channelauth.explain_status(f"{HOST}/org/private/noarch/repodata.json.zst", 401) is None
    assert channelauth.explain_status(f"{HOST}/org/private/notices.json", 401, once=False) == line
    line = channelauth.explain_status(f"{HOST}/org/public/noarch/repodata.json", 403)
    assert line is not None and line.startswith(f"{HOST}/org/public/ forbade connection 'outer' (a PAT as HTTP Basic, HTTP 403)")
    missing = channelauth.explain_status(f"{HOST}/elsewhere/chan/osx-arm64/repodata.json", 401)
    assert missing == (
        f"no connection answers {HOST}/elsewhere/chan/ (HTTP 401): privpkg auth login {HOST}/elsewhere/chan/ --category "
        "CondaChannel (add --auth-type Bearer or ApiKey for a token server)"
    )
    for text in (line, missing):
        assert_no_secret(text, PAT, TOKEN, FEED_PAT)


def test_explain_status_names_a_feed_connection_of_the_wrong_category(home: Path) -> None:
    connections.set_connection("feed", "PythonFeed", f"{HOST}/org/", "PAT", value=FEED_PAT)
    line = channelauth.explain_status(f"{HOST}/org/chan/noarch/repodata.json", 401)
    assert line is not None and "connection 'feed' covers it but is a PythonFeed" in line
    assert "privpkg connection set feed --update --keep-secret --category CondaChannel" in line


def test_explain_status_says_expired(home: Path) -> None:
    _channel("old", f"{HOST}/org/", PAT, expires="2020-01-01")
    line = channelauth.explain_status(f"{HOST}/org/noarch/repodata.json", 401)
    assert line is not None and "it expired on 2020-01-01" in line


def test_bearer_is_for_channels_only(home: Path) -> None:
    with pytest.raises(UsageError, match="Bearer is for CondaChannel"):
        connections.set_connection("f", "PythonFeed", f"{HOST}/f/", "Bearer", value=TOKEN)
    _channel("c", f"{HOST}/c/", TOKEN, "Bearer")
    with pytest.raises(UsageError, match="Bearer is for CondaChannel"):
        connections.update_connection("c", None, category="PythonFeed")
    with pytest.raises(UsageError, match="ApiKey is for CondaChannel"):
        connections.set_connection("k", "PythonFeed", f"{HOST}/k/", "apikey", value=TOKEN)
    assert connections.get_connection("c").auth_type == "Bearer"
    with pytest.raises(UsageError, match="unknown auth type"):
        connections.set_connection("x", "CondaChannel", f"{HOST}/x/", "Digest", value=TOKEN)


def test_keyring_never_serves_a_bearer_connection(home: Path) -> None:
    """pip and uv would send the token as a Basic password, which a token server refuses: the
    keyring backend answers None, and the lookup log says why."""
    _channel("tok", f"{HOST}/org/", TOKEN, "Bearer")
    _channel("pat", f"{HOST}/pat/", PAT)
    backend = PrivpkgKeyring()
    assert backend.get_credential(f"{HOST}/org/noarch/repodata.json", None) is None
    assert backend.get_password(f"{HOST}/org/noarch/repodata.json", "__token__") is None
    cred = backend.get_credential(f"{HOST}/pat/noarch/repodata.json", None)
    assert cred is not None and cred.password == PAT
    from privpkg import lookuplog

    rec = lookuplog.read_last(3)[0]
    assert rec["reason"] == lookuplog.BEARER_ONLY
    outcome, hint = lookuplog.explain(rec)
    assert "'tok'" in outcome and "Bearer" in outcome and hint is not None


# ---------------------------------------------------------------------------- a real requests session


class HandlerAuth(requests.auth.AuthBase):
    """What privpkg.conda.plugin's handler does on each request, minus conda's base class."""

    def __init__(self, channel_name: str) -> None:
        self.channel_name = channel_name

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers.update(channelauth.headers_for(str(r.url)))
        return r


def _get(url: str) -> requests.Response:
    with requests.Session() as s:
        s.auth = HandlerAuth("chan")
        s.trust_env = False  # no proxy from the environment for a loopback server
        return s.get(url, timeout=10)


@pytest.mark.parametrize(("scheme", "auth"), [("basic", "PAT"), ("bearer", "Bearer"), ("apikey", "ApiKey")])
def test_requests_session_fetches_a_private_channel(home: Path, channel_server: ChannelServer, scheme: str, auth: str) -> None:
    _channel("chan", channel_server.url(scheme), channel_server.secrets[scheme], auth)
    repodata = _get(channel_server.url(scheme) + "noarch/repodata.json")
    assert repodata.status_code == 200, channel_server.log_text()
    files = sorted(repodata.json()["packages"])
    assert len(files) == len(PACKAGES)
    pkg = _get(channel_server.url(scheme) + "noarch/" + files[0])
    assert pkg.status_code == 200 and pkg.content[:3] == b"BZh"
    log = channel_server.log()
    assert [e.status for e in log] == [200, 200] and {e.scheme for e in log} == {scheme}, channel_server.log_text()
    # The other channels on the same server get nothing: their paths match no target.
    other = "bearer" if scheme == "basic" else "basic"
    channel_server.clear_log()
    assert _get(channel_server.url(other) + "noarch/repodata.json").status_code == 401
    assert [e.scheme for e in channel_server.log()] == ["none"]


def test_wrong_secret_or_scheme_is_one_line_naming_the_connection(home: Path, channel_server: ChannelServer) -> None:
    _channel("wrongpat", channel_server.url("basic"), "not-the-secret-123")
    _channel("wrongscheme", channel_server.url("bearer"), channel_server.secrets["bearer"])  # PAT where Bearer is wanted
    for scheme, name in (("basic", "wrongpat"), ("bearer", "wrongscheme")):
        url = channel_server.url(scheme) + "noarch/repodata.json"
        res = _get(url)
        assert res.status_code == 401
        line = channelauth.explain_status(url, res.status_code)
        assert line is not None and f"connection {name!r}" in line and "\n" not in line
        assert_no_secret(line, *channel_server.secrets.values(), "not-the-secret-123")
    assert [e.scheme for e in channel_server.log()] == ["basic", "basic"]
    missing = channel_server.url("token") + "noarch/repodata.json"
    assert _get(missing).status_code == 401
    line = channelauth.explain_status(missing, 401)
    assert line is not None and line.startswith(f"no connection answers {channel_server.url('token')} (HTTP 401)")


@pytest.mark.parametrize(("scheme", "auth"), [("basic", "PAT"), ("bearer", "Bearer"), ("apikey", "ApiKey")])
def test_auth_login_checks_a_channel_before_storing_it(channel_server: ChannelServer, checked_cli: Any, scheme: str, auth: str) -> None:
    """``auth login URL --category CondaChannel``: the check reads the channel's
    noarch/repodata.json with the secret sent as the auth type says; a wrong one stores nothing."""
    secret = channel_server.secrets[scheme]
    cli = checked_cli(secret)
    url = channel_server.url(scheme)
    cli.fails(1, "auth", "login", url, "--category", "CondaChannel", "--auth-type", auth, "--verify",
              match="nothing stored: REJECTED", stdin="wrong-secret-0123456789")
    out = cli.ok("auth", "login", url, "--category", "CondaChannel", "--auth-type", auth, "--verify", stdin=secret)
    assert out.startswith(f"stored connection '127.0.0.1:{channel_server.port}/api/conda/private/{scheme}': {url}") and "OK" in out, out
    assert "conda: run `privpkg setup conda`" in out
    assert [(e.path.rsplit("/", 2)[-2:], e.status, e.scheme) for e in channel_server.log()] == [
        (["noarch", "repodata.json"], 401, scheme), (["noarch", "repodata.json"], 200, scheme)], channel_server.log_text()
    conn = json.loads(cli.ok("connection", "list", "--json"))[0]
    assert (conn["category"], conn["auth_type"]) == ("CondaChannel", auth)
    cli.fails(2, "auth", "login", url, "--category", "S3", match="auth login stores feeds and channels")
    cli.fails(2, "auth", "login", url + "feed/", "--auth-type", "Bearer", match="Bearer is for CondaChannel")  # a new PythonFeed


def test_channel_server_logs_the_scheme_never_the_value() -> None:
    assert header_scheme("Basic abc") == "basic" and header_scheme("token x") == "token" and header_scheme("Negotiate y") == "other"
    assert header_scheme("", "key") == "apikey"


# ---------------------------------------------------------------------------- real conda (support.conda)


def _conda_secret_files(conda: Any, prefix: Path) -> list[Path]:
    """Where conda keeps channel URLs (FACTS: a userinfo or /t/TOKEN/ URL leaves its secret in
    all of them): condarc, pkgs/urls.txt, the package cache's json files, the prefix's history
    and conda-meta records."""
    files = [conda.condarc, conda.pkgs_dir / "urls.txt", prefix / "conda-meta" / "history"]
    files += list(conda.pkgs_dir.glob("cache/*.json")) + list(conda.pkgs_dir.glob("*/info/repodata_record.json"))
    files += list((prefix / "conda-meta").glob("*.json"))
    return files


@pytest.mark.conda
@pytest.mark.parametrize(("scheme", "auth"), [("basic", "PAT"), ("bearer", "Bearer"), ("apikey", "ApiKey")])
def test_conda_create_from_a_private_channel(conda: Any, channel_server: ChannelServer, checked_cli: Any, tmp_path: Path,
                                             scheme: str, auth: str) -> None:
    """``conda create`` from a loopback channel that demands a PAT (Basic) or a token (Bearer),
    through privpkg's auth handler and ``privpkg setup conda``'s condarc entry: no secret in any
    file conda keeps, the channel URL in them as the user gave it."""
    secret = channel_server.secrets[scheme]
    cli = checked_cli(secret)
    url = channel_server.url(scheme)
    cli.ok("connection", "set", "chan", "--category", "CondaChannel", "--auth-type", auth, "--target", url, stdin=secret)
    assert cli.ok("setup", "conda").strip() == f"routed {url}* to privpkg (connection 'chan') in {conda.condarc}"
    prefix = tmp_path / "env"
    r = conda.ok("create", "-p", prefix, "--override-channels", "-c", url, "privtool=1.1")
    assert (prefix / "share" / "privtool" / "privtool.txt").read_text() == "privtool 1.1\n", r.describe()
    log = channel_server.log()
    assert any(e.path.endswith(".tar.bz2") and e.status == 200 for e in log), channel_server.log_text()
    assert all(e.scheme == scheme for e in log), channel_server.log_text()  # every request carried it, in its scheme
    assert not [e for e in log if e.status in (401, 403)], channel_server.log_text()
    kept = _conda_secret_files(conda, prefix)
    assert any(url in p.read_text() for p in kept if p.name == "urls.txt"), "pkgs/urls.txt does not name the channel"
    for p in kept:
        assert_no_secret(p.read_text(errors="replace"), secret)
    assert_no_secret(r.output, secret)


@pytest.mark.conda
def test_conda_wrong_or_missing_secret_is_one_line_naming_the_connection(conda: Any, channel_server: ChannelServer, checked_cli: Any,
                                                                         tmp_path: Path) -> None:
    cli = checked_cli(*channel_server.secrets.values())
    url = channel_server.url("basic")
    cli.ok("connection", "set", "stale", "--category", "CondaChannel", "--target", url, stdin="revoked-PAT-0123456789")
    cli.ok("setup", "conda")
    r = conda("create", "-p", tmp_path / "env", "--override-channels", "-c", url, "privtool")
    assert r.returncode != 0, r.describe()
    ours = [ln for ln in r.output.splitlines() if "privpkg" in ln]
    assert ours == [(f"privpkg: warning: {url} refused connection 'stale' (a PAT as HTTP Basic, HTTP 401): the secret is wrong or "
                     "revoked; renew it with: privpkg connection set stale --update (or, if the server takes a Bearer token: "
                     "--keep-secret --auth-type Bearer)")], r.describe()
    assert_no_secret(r.output, "revoked-PAT-0123456789", *channel_server.secrets.values())
    # A channel routed to privpkg that no connection answers: the line says how to add one.
    token_url = channel_server.url("token")
    conda.condarc.write_text(conda.condarc.read_text() + f"  - channel: {channel_server.base}/*\n    auth: privpkg\n")
    r = conda("create", "-p", tmp_path / "env2", "--override-channels", "-c", token_url, "privtool")
    assert r.returncode != 0, r.describe()
    ours = [ln for ln in r.output.splitlines() if "privpkg" in ln]
    assert len(ours) == 1 and ours[0].startswith(f"privpkg: warning: no connection answers {token_url} (HTTP 401)"), r.describe()
    assert f"privpkg auth login {token_url} --category CondaChannel" in ours[0]


@pytest.mark.conda
def test_doctor_finds_the_plugin_in_the_conda_that_would_run(conda: Any, channel_server: ChannelServer, checked_cli: Any) -> None:
    """``privpkg doctor`` with conda's ``condabin`` on PATH (as ``conda init`` leaves it): the
    plugin's entry point is registered in base, condarc routes the channel, --url names the
    connection."""
    secret = channel_server.secrets["bearer"]
    cli = checked_cli(secret)
    url = channel_server.url("bearer")
    cli.ok("connection", "set", "chan", "--category", "CondaChannel", "--auth-type", "Bearer", "--target", url, stdin=secret)
    cli.ok("setup", "conda")
    res = cli("doctor", "--json", "--url", url + "noarch/repodata.json", env={"PATH": conda.env["PATH"]})
    checks = {c["name"]: c for c in json.loads(res.stdout) if c["name"].startswith("conda-") and not c["sub"]}
    plugin = checks["conda-plugin"]
    assert plugin["status"] == "ok", plugin
    assert f"{conda.base / 'condabin' / 'conda'} (from PATH; conda 26." in plugin["detail"]
    assert "privpkg = privpkg.conda.plugin (privpkg " in plugin["detail"]
    assert checks["conda-url"] == {"name": "conda-url", "status": "ok", "sub": False, "detail": (
        f"conda: connection 'chan' (store, target {url}) answers {url}noarch/repodata.json with a Bearer token; "
        "condarc routes it to privpkg")}


@pytest.mark.conda
def test_conda_env_create_with_the_channel_in_environment_yml(conda: Any, channel_server: ChannelServer, checked_cli: Any,
                                                             tmp_path: Path) -> None:
    """The channel named in environment.yml's ``channels:`` (the Azure ML v1 shape), a token
    server: ``conda env create`` and ``conda list`` show the channel URL, never the token."""
    secret = channel_server.secrets["bearer"]
    cli = checked_cli(secret)
    url = channel_server.url("bearer")
    cli.ok("connection", "set", "chan", "--category", "CondaChannel", "--auth-type", "Bearer", "--target", url, stdin=secret)
    cli.ok("setup", "conda")
    yml = tmp_path / "environment.yml"
    yml.write_text(f"name: private\nchannels:\n  - {url}\ndependencies:\n  - privdata=2.0\n")
    r = conda.ok("env", "create", "-f", yml)
    prefix = conda.prefix("private")
    assert (prefix / "share" / "privdata" / "privdata.txt").exists(), r.describe()
    listed = conda.ok("list", "-p", prefix, "--show-channel-urls")
    assert "privdata" in listed.output and url.rstrip("/") in listed.output, listed.describe()
    for p in _conda_secret_files(conda, prefix):
        assert_no_secret(p.read_text(errors="replace"), secret)
    assert_no_secret(r.output + listed.output, secret)


@pytest.mark.conda
@pytest.mark.parametrize(("scheme", "auth"), [("basic", "PAT"), ("bearer", "Bearer"), ("apikey", "ApiKey")])
def test_conda_output_at_vvv_hides_the_secret(conda: Any, channel_server: ChannelServer, checked_cli: Any, tmp_path: Path,
                                              scheme: str, auth: str) -> None:
    """conda logs each response's request headers at -vv and above (conda.gateways.repodata.zstd):
    the handler gives conda a copy with privpkg's header hidden, after the real one went out."""
    secret = channel_server.secrets[scheme]
    cli = checked_cli(secret)
    url = channel_server.url(scheme)
    cli.ok("connection", "set", "chan", "--category", "CondaChannel", "--auth-type", auth, "--target", url, stdin=secret)
    cli.ok("setup", "conda")
    r = conda.ok("create", "-vvv", "-p", tmp_path / "env", "--override-channels", "-c", url, "privtool=1.1")
    assert channelauth.HIDDEN in r.output, r.describe()  # conda did print the headers: the test looks where it leaked
    assert all(e.scheme == scheme for e in channel_server.log()), channel_server.log_text()  # the server still got it
    assert_no_secret(r.output, secret)


@pytest.mark.conda
def test_conda_json_error_details_hide_a_wrong_pat(conda: Any, channel_server: ChannelServer, checked_cli: Any, tmp_path: Path) -> None:
    """A 401/403's CondaHTTPError carries the request's headers in ``response_details`` (printed by
    ``--json``); a wrong PAT may still be a live one without access to this channel."""
    wrong = "revoked-PAT-0123456789"
    cli = checked_cli(wrong, *channel_server.secrets.values())
    url = channel_server.url("basic")
    cli.ok("connection", "set", "stale", "--category", "CondaChannel", "--target", url, stdin=wrong)
    cli.ok("setup", "conda")
    r = conda("create", "--json", "-p", tmp_path / "env", "--override-channels", "-c", url, "privtool")
    assert r.returncode != 0 and "response_details" in r.output, r.describe()
    assert_no_secret(r.output, wrong)


_REDIRECT_PROBE = r"""
import http.server, json, sys, threading
import requests
from privpkg.conda.plugin import PrivpkgChannelAuth
seen = []
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        seen.append([self.server.server_address[0], self.path, sorted(k.lower() for k in self.headers)])
        here = self.server.server_address[0]
        if self.path.startswith("/chan/same/"):
            self.send_response(302); self.send_header("Location", "/chan/noarch/repodata.json"); self.end_headers()
        elif here == "127.0.0.1" and self.path.startswith("/chan/away/"):
            self.send_response(302); self.send_header("Location", sys.argv[1]); self.end_headers()
        else:
            self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *a): pass
a, b = int(sys.argv[2]), int(sys.argv[3])
servers = [http.server.ThreadingHTTPServer(("127.0.0.1", a), H), http.server.ThreadingHTTPServer(("127.0.0.2", b), H)]
for s in servers: threading.Thread(target=s.serve_forever, daemon=True).start()
sys.argv[1] = f"http://127.0.0.2:{b}/steal/noarch/repodata.json"
s = requests.Session(); s.trust_env = False; s.auth = PrivpkgChannelAuth("chan")
out = {}
for case in ("same", "away"):
    seen.clear()
    r = s.get(f"http://127.0.0.1:{a}/chan/{case}/noarch/repodata.json", timeout=10)
    out[case] = {"status": r.status_code, "seen": list(seen), "shown": {k: v for k, v in r.history[0].request.headers.items()}}
print(json.dumps(out))
"""


@pytest.mark.conda
@pytest.mark.parametrize("auth", ["PAT", "Bearer", "ApiKey"])
def test_redirect_to_another_host_carries_no_secret(conda: Any, home: Path, auth: str) -> None:
    """quetz redirects package downloads to signed storage URLs: requests drops only
    ``Authorization`` on a hop to another host, so the handler takes its own header off; a redirect
    within the channel's origin keeps it. Run with conda's interpreter (the plugin imports conda)."""
    import subprocess

    from privpkg.testing import free_port

    secret = "channel-SECRET-0123456789"
    a, b = free_port(), free_port()
    connections.set_connection("chan", "CondaChannel", f"http://127.0.0.1:{a}/chan/", auth, value=secret, username="me")
    probe = subprocess.run([str(conda.python), "-c", _REDIRECT_PROBE, "x", str(a), str(b)], capture_output=True, text=True, timeout=60,
                           env={**conda.env, envvars.HOME: str(home)}, check=False)
    assert probe.returncode == 0, probe.stderr[-2000:]
    out = json.loads(probe.stdout)
    header = {"PAT": "authorization", "Bearer": "authorization", "ApiKey": "x-api-key"}[auth]
    for case in ("same", "away"):
        first, *rest = out[case]["seen"]
        assert out[case]["status"] == 200 and rest, out
        assert header in first[2], out  # the channel itself got the secret
    # What conda may print: the value hidden (same origin), or the header gone (taken off for the hop).
    assert channelauth.HIDDEN in out["same"]["shown"].values(), out
    assert header not in {k.lower() for k in out["away"]["shown"]}, out
    assert header in out["same"]["seen"][1][2], out  # same origin: kept for the next hop
    assert out["away"]["seen"][1][0] == "127.0.0.2" and header not in out["away"]["seen"][1][2], out
    assert_no_secret(probe.stdout + probe.stderr, secret)


def test_auth_login_404_names_what_to_log_in_with(channel_server: ChannelServer, checked_cli: Any) -> None:
    """A 404 from `auth login --verify` used to end `(try --url with the feed's simple index URL)`:
    auth login has no --url, and a conda channel is not a feed."""
    secret = channel_server.secrets["basic"]
    cli = checked_cli(secret)
    line = cli.fails(1, "auth", "login", channel_server.url("basic") + "nosuch/", "--category", "CondaChannel", "--verify",
                     stdin=secret, match="privpkg: error: nothing stored: NOT FOUND: ")
    assert line.endswith("(log in with the channel's URL, where noarch/repodata.json is)") and "--url" not in line, line
