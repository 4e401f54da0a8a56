"""The keyring backend: keyring's own conformance suite, lookup rules, never-raise getters, and
the real ``keyring`` CLI (set, get in pip's creds/json mode, del)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from keyring.errors import PasswordDeleteError, PasswordSetError
from keyring.testing.backend import BackendBasicTests
from support.cli import Outputs, PrivpkgCLI, assert_one_error_line
from support.env import assert_no_secret

from privpkg import connections, envvars
from privpkg.errors import UsageError
from privpkg.keyring_backend import PrivpkgKeyring

PAT = "kr-PAT-7f3a9c1e5b"
LIB_SECRET = "lib-secret-123"  # the other program's secret in the library-call tests
KEYRING_CLI = str(Path(sys.executable).with_name("keyring"))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(envvars.HOME, str(tmp_path / "home"))
    for var in (envvars.MASTER_KEY, envvars.CONNECTIONS, *envvars.AZURE_ENDPOINTS):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "home"


class TestConformance(BackendBasicTests):
    """keyring's own suite, with the store-every-service property switched on."""

    @pytest.fixture(autouse=True)
    def _home(self, home: Path) -> None:
        pass

    def init_keyring(self) -> PrivpkgKeyring:
        return PrivpkgKeyring().with_properties(store_all="1")  # type: ignore[return-value]


def test_priority_is_cheap_class_property() -> None:
    assert PrivpkgKeyring.priority == 9.95
    assert 9.9 < PrivpkgKeyring.priority < 10


def test_non_url_services_fall_through(home: Path) -> None:
    kr = PrivpkgKeyring()
    with pytest.raises(NotImplementedError):
        kr.set_password("my-app", "me", "pw")
    with pytest.raises(NotImplementedError):
        kr.delete_password("my-app", "me")
    assert kr.get_password("my-app", "me") is None
    assert not (home / "connections.store").exists()


def test_set_get_delete_url_service(home: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """In store-everything mode a library call stores a URL service as a connection."""
    # pytest configured logging (at WARNING): as in any such host, privpkg's INFO line shows
    # only at INFO (privpkg.log).
    caplog.set_level("INFO")
    kr = PrivpkgKeyring().with_properties(store_all="1")
    kr.set_password("https://pkgs.example.com/org/", "me", PAT)
    assert "stored connection 'pkgs.example.com/org'" in capsys.readouterr().err
    cred = kr.get_credential("https://pkgs.example.com/org/_packaging/f/pypi/simple/", None)
    assert (cred.username, cred.password) == ("me", PAT)
    assert kr.get_password("pkgs.example.com", "me") is None, "no bare-host answer without --host-wide"
    assert kr.get_credential("https://pkgs.example.com/org-evil/", None) is None
    kr.set_password("https://pkgs.example.com/org/", "me", PAT + "-rotated")
    assert [c.secret for c in connections.list_connections()] == [PAT + "-rotated"]
    kr.delete_password("https://pkgs.example.com/org", "me")
    assert connections.list_connections() == []
    with pytest.raises(PasswordDeleteError):
        kr.delete_password("https://pkgs.example.com/org", "me")


def test_set_refuses_plain_http_and_bad_secrets(home: Path) -> None:
    kr = PrivpkgKeyring().with_properties(store_all="1")
    with pytest.raises(PasswordSetError, match="plain-http"):
        kr.set_password("http://pkgs.example.com/org/", "me", PAT)
    with pytest.raises(PasswordSetError, match="control character"):
        kr.set_password("https://pkgs.example.com/org/", "me", "a\nb")
    with pytest.raises(PasswordSetError, match="empty"):
        kr.set_password("https://pkgs.example.com/org/", "me", "")


def test_longest_prefix_and_username_preference(home: Path) -> None:
    connections.set_connection("org", "PythonFeed", "https://h.example/org", "PAT", value="pat-org", username="a")
    connections.set_connection("feed", "PythonFeed", "https://h.example/org/feed", "PAT", value="pat-feed", username="b")
    kr = PrivpkgKeyring()
    assert kr.get_credential("https://h.example/org/feed/simple/", None).password == "pat-feed"
    assert kr.get_credential("https://h.example/org/other/simple/", None).password == "pat-org"
    # uv sends the username from the index URL: that connection is preferred over a longer one.
    assert kr.get_password("https://h.example/org/feed/simple/", "a") == "pat-org"
    assert kr.get_password("https://h.example/org/feed/simple/", "nobody") == "pat-feed"


def test_bare_host_is_answered_only_by_host_wide_connections(home: Path) -> None:
    """Issue 6 B6: a bare host:port carries no scheme and no path, so by default nothing answers
    it; a connection answers only after opting in, and only when that is unambiguous."""
    connections.set_connection("a", "PythonFeed", "https://h.example/a", "PAT", value="pat-a", username="ua")
    kr = PrivpkgKeyring()
    assert kr.get_credential("h.example", None) is None, "no opt-in: the bare host is refused"
    assert kr.get_password("h.example", "ua") is None, "not even with the matching username"
    assert kr.get_credential("https://h.example/a/simple/", None).password == "pat-a", "index URLs need no opt-in"
    connections.set_connection("a", "PythonFeed", "https://h.example/a", "PAT", value="pat-a", username="ua", host_wide=True)
    assert kr.get_credential("h.example", None).password == "pat-a"
    assert kr.get_credential("h.example:8443", None) is None
    connections.set_connection("b", "PythonFeed", "https://h.example/b", "PAT", value="pat-b", username="ub")
    assert kr.get_credential("h.example", None).password == "pat-a", "b did not opt in, so a is still the only answer"
    connections.set_connection("c", "PythonFeed", "https://h.example/c", "PAT", value="pat-c", username="uc", host_wide=True)
    assert kr.get_credential("h.example", None) is None, "different secrets on one host: ambiguous"
    assert kr.get_password("h.example", "uc") == "pat-c", "a username picks one"
    assert kr.get_password("h.example", "ub") is None, "the username of a connection that did not opt in picks nothing"
    connections.set_connection("p", "PythonFeed", "http://127.0.0.1:8080/x", "PAT", value="pat-p", host_wide=True)
    assert kr.get_credential("127.0.0.1:8080", None).password == "pat-p"
    assert kr.get_credential("127.0.0.1", None) is None


def test_host_wide_from_environment_and_bad_flag(home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(envvars.CONNECTIONS, json.dumps([{"name": "e", "target": "https://env.example/o", "secret": "pat-env", "host_wide": True}]))
    assert PrivpkgKeyring().get_password("env.example", "x") == "pat-env"
    monkeypatch.setenv(envvars.CONNECTIONS, json.dumps([{"name": "e", "target": "https://env.example/o", "secret": "pat-env", "host_wide": "yes"}]))
    assert PrivpkgKeyring().get_password("env.example", "x") is None
    err = capsys.readouterr().err
    assert "host_wide must be true or false" in err and "pat-env" not in err


def test_storage_categories_are_never_served_as_basic_auth(home: Path) -> None:
    connections.set_connection("blob", "AzureBlob", "https://acct.blob.core.windows.net/c", "PAT", value="ACCOUNT-KEY")
    kr = PrivpkgKeyring()
    assert kr.get_credential("https://acct.blob.core.windows.net/c/x.whl", None) is None
    assert kr.get_credential("acct.blob.core.windows.net", None) is None


def test_getters_never_raise(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    connections.set_connection("a", "PythonFeed", "https://h.example/a", "PAT", value=PAT)
    (home / "connections.store").write_bytes(b"garbage")
    kr = PrivpkgKeyring()
    assert kr.get_credential("https://h.example/a/simple/", None) is None
    assert kr.get_password("https://h.example/a/simple/", "x") is None
    assert kr.get_credential("::::not a url", None) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "not a privpkg store" in err
    assert_no_secret(err, PAT)


def test_expired_connection_warns_once_per_lookup(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    connections.set_connection("old", "PythonFeed", "https://h.example/a", "PAT", value=PAT, expires="2020-01-01")
    assert PrivpkgKeyring().get_credential("https://h.example/a/", None).password == PAT
    err = capsys.readouterr().err
    assert "expired on 2020-01-01" in err and "privpkg connection set old --update" in err


def test_environment_sources(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        envvars.AZURE_ENDPOINTS[0],
        json.dumps({"endpointCredentials": [{"endpoint": "https://pkgs.dev.azure.com/org/_packaging/f/pypi/simple/", "username": "u", "password": "pat-art"}]}),
    )
    monkeypatch.setenv(envvars.AZURE_ENDPOINTS[1], json.dumps({"endpointCredentials": [{"endpoint": "https://vss.example/x", "password": "pat-vss"}]}))
    monkeypatch.setenv(envvars.CONNECTIONS, json.dumps({"envfeed": {"target": "https://env.example/org", "secret": "pat-env"}}))
    kr = PrivpkgKeyring()
    assert kr.get_credential("https://pkgs.dev.azure.com/org/_packaging/f/pypi/simple/pkg/", None).password == "pat-art"
    assert kr.get_credential("https://pkgs.dev.azure.com/org/_packaging/other/pypi/simple/", None) is None
    assert kr.get_credential("https://vss.example/x/y", None).password == "pat-vss"
    assert kr.get_credential("https://env.example/org/simple/", None).password == "pat-env"
    assert not (home / "connections.store").exists(), "environment sources need no store"
    # The environment wins over the store for the same target.
    connections.set_connection("dup", "PythonFeed", "https://env.example/org", "PAT", value="pat-store")
    assert kr.get_credential("https://env.example/org/simple/", None).password == "pat-env"


def test_bad_environment_json_is_one_line_and_skipped(home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(envvars.CONNECTIONS, '[{"name": "x", "target": "https://h/a", "secret": "pat-bad-json"')
    connections.set_connection("a", "PythonFeed", "https://h.example/a", "PAT", value=PAT)
    assert PrivpkgKeyring().get_credential("https://h.example/a/", None).password == PAT
    err = capsys.readouterr().err
    assert "ignoring $PRIVPKG_CONNECTIONS" in err and "pat-bad-json" not in err and err.count("\n") == 1


def test_repr_hides_secret(home: Path) -> None:
    conn = connections.set_connection("a", "PythonFeed", "https://h.example/a", "PAT", value=PAT)
    assert PAT not in repr(conn) and PAT not in str(conn) and PAT not in repr(connections.list_connections())
    assert PAT not in json.dumps(conn.public())
    # The public CredentialLookup's index (vars(), a debugger, a traceback that shows locals):
    # a store record is shown as a Connection is, its secret as ***.
    lookup = connections.CredentialLookup()
    assert lookup.find("https://h.example/a/x/").secret == PAT
    assert PAT not in repr(vars(lookup)) and "'secret': '***'" in repr(vars(lookup))


# --- the real keyring CLI ------------------------------------------------------------------


def _cli(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYRING_", "PYTHON_KEYRING")) and k not in envvars.ALL}
    env[envvars.HOME] = str(home)
    return subprocess.run([KEYRING_CLI, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.mark.integration  # runs a program
def test_keyring_cli_set_get_del(home: Path) -> None:
    url = "https://pkgs.dev.azure.com/org/"
    res = _cli(home, "set", url, "me", stdin=PAT + "\n")
    assert res.returncode == 0, res.stderr
    res = _cli(home, "--mode=creds", "--output=json", "get", url + "_packaging/feed/pypi/simple/")
    assert res.returncode == 0 and json.loads(res.stdout) == {"username": "me", "password": PAT}
    res_host = _cli(home, "get", "pkgs.dev.azure.com", "me")
    assert res_host.returncode == 1, "bare host without --host-wide"
    assert_no_secret(res_host.stdout + res_host.stderr, PAT)
    miss = _cli(home, "--mode=creds", "--output=json", "get", "https://pkgs.dev.azure.com/org-evil/")
    assert miss.returncode == 1
    assert_no_secret(miss.stdout + miss.stderr, PAT)
    assert "privpkg.keyring_backend.PrivpkgKeyring (priority: 9.95)" in _cli(home, "--list-backends").stdout.splitlines()
    res = _cli(home, "del", url, "me")
    assert res.returncode == 0, res.stderr
    assert _cli(home, "get", url, "me").returncode == 1


@pytest.mark.integration  # runs a program
def test_keyring_cli_refuses_plain_http_without_traceback(home: Path) -> None:
    res = _cli(home, "set", "http://pkgs.example.com/org/", "me", stdin=PAT + "\n")
    assert res.returncode != 0
    assert "refusing plain-http" in res.stderr and "Traceback" not in res.stderr
    assert_no_secret(res.stdout + res.stderr, PAT)


@pytest.mark.integration  # runs a program
@pytest.mark.parametrize(("args", "verb"), [(["set", "notaurl", "me"], "stores"), (["del", "notaurl", "me"], "deletes")])
def test_keyring_cli_non_url_service_is_one_line(home: Path, args: list[str], verb: str) -> None:
    """privpkg as keyring's only backend (a headless box): a non-URL service used to end in a
    NotImplementedError traceback from keyring's CLI."""
    assert "PrivpkgKeyring" in _cli(home, "--list-backends").stdout
    res = _cli(home, *args, stdin=PAT + "\n")
    assert res.returncode == 2 and res.stdout == "", res.stderr
    assert res.stderr == (f"privpkg: error: privpkg {verb} http(s) URL services only, and 'notaurl' is not one: name the feed's URL, "
                          f"e.g. `keyring {args[0]} https://pkgs.dev.azure.com/ORG/ USER` (KEYRING_PROPERTY_STORE_ALL=1 keeps any service)\n")
    assert not (home / "connections.store").exists()


@pytest.mark.integration  # runs a program
def test_store_all_property_from_environment(home: Path) -> None:
    """KEYRING_PROPERTY_STORE_ALL=1, set the way keyring documents it, makes the real CLI keep a
    non-URL service in privpkg's store; without it the service falls through (no store written)."""
    res = subprocess.run([KEYRING_CLI, "set", "my-app", "me"], input="app-secret\n", capture_output=True, text=True,
                         env={**_env(home), "KEYRING_PROPERTY_STORE_ALL": "1"}, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    got = subprocess.run([KEYRING_CLI, "get", "my-app", "me"], capture_output=True, text=True,
                         env={**_env(home), "KEYRING_PROPERTY_STORE_ALL": "1"}, timeout=60, check=False)
    assert got.stdout.strip() == "app-secret"
    assert b"app-secret" not in (home / "connections.store").read_bytes()
    off = subprocess.run([KEYRING_CLI, "get", "my-app", "me"], capture_output=True, text=True, env=_env(home), timeout=60, check=False)
    assert off.returncode == 1 and off.stdout == ""


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYRING_", "PYTHON_KEYRING")) and k not in envvars.ALL}
    env[envvars.HOME] = str(home)
    return env


@pytest.mark.integration  # runs a program
def test_import_and_priority_stay_cheap(home: Path) -> None:
    """What keyring loads at every start-up must not pull in the store, cryptography or
    platformdirs; a lookup with no store file must not load cryptography either."""
    probe = (
        "import sys, keyring.backend\n"
        "before = set(sys.modules)\n"
        "from privpkg.keyring_backend import PrivpkgKeyring as K\n"
        "K.priority\n"
        "print(sorted(m for m in set(sys.modules) - before if not m.startswith('privpkg.keyring_backend')))\n"
        "K().get_credential('https://h.example/org/', None)\n"
        "print('cryptography' in sys.modules, 'platformdirs' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=_env(home), timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    first, second = res.stdout.splitlines()
    assert eval(first) in ([], ["privpkg"]), first
    assert second == "False False", "a miss without a store file loaded cryptography/platformdirs"


def test_snapshot_cache_follows_store_changes(home: Path) -> None:
    kr = PrivpkgKeyring()
    assert kr.get_credential("https://h.example/a/", None) is None
    connections.set_connection("a", "PythonFeed", "https://h.example/a", "PAT", value="first")
    assert kr.get_credential("https://h.example/a/x/", None).password == "first"
    connections.set_connection("a", "PythonFeed", "https://h.example/a", "PAT", value="second")
    assert kr.get_password("https://h.example/a/x/", "u") == "second"
    connections.delete_connection("a")
    assert kr.get_credential("https://h.example/a/x/", None) is None


def test_bare_host_with_explicit_default_port(home: Path) -> None:
    connections.set_connection("s", "PythonFeed", "https://h.example/a", "PAT", value="tls", host_wide=True)
    kr = PrivpkgKeyring()
    assert kr.get_password("h.example:443", "u") == "tls"
    assert kr.get_password("h.example:80", "u") is None, "port 80 means http: an https secret never goes there"


# --- issue 6 B7: other programs' keyring entries stay theirs ----------------------------------

_LIBRARY_CALLER = """
import json, sys, keyring
from keyring.backend import KeyringBackend

class Memory(KeyringBackend):
    '''Another program's backend, below privpkg in the chain.'''
    priority = 1
    data = {}
    def get_password(self, service, username):
        return self.data.get(service + " " + username)
    def set_password(self, service, username, password):
        self.data[service + " " + username] = password
    def delete_password(self, service, username):
        del self.data[service + " " + username]

chain = [type(b).__name__ for b in keyring.get_keyring().backends]
keyring.set_password("https://pkgs.example.com/org/", "me", sys.argv[1])
after_set = dict(Memory.data)
got = keyring.get_password("https://pkgs.example.com/org/", "me")
keyring.delete_password("https://pkgs.example.com/org/", "me")
print(json.dumps({"chain": chain, "after_set": after_set, "got": got, "after_del": Memory.data}))
"""


@pytest.mark.integration  # runs a program
def test_library_set_password_for_a_url_falls_through(home: Path) -> None:
    """A program that calls ``keyring.set_password(URL, ...)`` as a library (here with a second
    backend in the chain, as on a desktop) keeps its entry in its own backend: privpkg raises
    NotImplementedError, keyring's chainer moves on, and privpkg's store is never written."""
    res = subprocess.run([sys.executable, "-c", _LIBRARY_CALLER, LIB_SECRET], capture_output=True, text=True, env=_env(home), timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert_no_secret(res.stderr, LIB_SECRET, PAT)  # (stdout is the probe's own JSON, secret included)
    out = json.loads(res.stdout)
    assert out["chain"][:2] == ["PrivpkgKeyring", "Memory"], out["chain"]
    assert out["after_set"] == {"https://pkgs.example.com/org/ me": LIB_SECRET}
    assert out["got"] == LIB_SECRET, "the other backend answers its own entry"
    assert out["after_del"] == {}
    assert not (home / "connections.store").exists(), "privpkg captured another program's entry"


def test_library_set_password_in_process_raises_not_implemented(home: Path) -> None:
    kr = PrivpkgKeyring()
    with pytest.raises(NotImplementedError, match="keyring set"):
        kr.set_password("https://pkgs.example.com/org/", "me", PAT)
    with pytest.raises(NotImplementedError):
        kr.delete_password("https://pkgs.example.com/org/", "me")
    assert not (home / "connections.store").exists()


@pytest.mark.integration  # runs a program
def test_library_set_password_with_store_all_property(home: Path) -> None:
    """The store-everything property (set the way keyring documents it) is the user's consent."""
    env = {**_env(home), "KEYRING_PROPERTY_STORE_ALL": "1"}
    script = "import sys, keyring; keyring.set_password('https://pkgs.example.com/org/', 'me', sys.argv[1])"
    res = subprocess.run([sys.executable, "-c", script, LIB_SECRET], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert_no_secret(res.stdout + res.stderr, LIB_SECRET)
    got = _cli(home, "get", "https://pkgs.example.com/org/simple/", "me")
    assert got.stdout.strip() == LIB_SECRET
    assert_no_secret(got.stderr, LIB_SECRET)


@pytest.mark.integration  # runs a program
@pytest.mark.parametrize("via", ["script", "python -m keyring"])
def test_keyring_command_line_stores_and_deletes_url_services(home: Path, via: str) -> None:
    """`keyring set URL USER` on the command line is the user asking: both entry points of
    keyring's CLI (the `keyring` script and `python -m keyring`) store and delete."""
    argv0 = [KEYRING_CLI] if via == "script" else [sys.executable, "-m", "keyring"]

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*argv0, *args], input=stdin, capture_output=True, text=True, env=_env(home), timeout=60, check=False)

    url = "https://pkgs.example.com/org/"
    res = cli("set", url, "me", stdin=PAT + "\n")
    assert res.returncode == 0 and "stored connection 'pkgs.example.com/org'" in res.stderr, res.stderr
    assert_no_secret(res.stdout + res.stderr, PAT)
    got = cli("get", url + "simple/", "me")
    assert got.stdout.strip() == PAT
    assert_no_secret(got.stderr, PAT)  # stdout is where `keyring get` answers
    bad = cli("set", "http://pkgs.example.com/org/", "me", stdin=PAT + "\n")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "refusing plain-http" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr
    assert_no_secret(bad.stdout + bad.stderr, PAT)
    res = cli("del", url, "me")
    assert res.returncode == 0, res.stderr
    assert_no_secret(res.stdout + res.stderr, PAT)
    gone = cli("get", url, "me")
    assert gone.returncode == 1
    assert_no_secret(gone.stdout + gone.stderr, PAT)


# --- issue 6 D13 / E14: limits, odd URLs and broken environment sources ----------------------


@pytest.mark.integration  # runs a program
def test_keyring_set_odd_urls_no_traceback(home: Path) -> None:
    """IPv6, percent-escaped and long URLs: stored under a valid name, or one clear line."""
    ok = {
        "https://[::1]:8443/feed/": "https://[::1]:8443/feed/",
        "https://pkgs.example.com/%7Eteam/a%20b/%2F/": "https://pkgs.example.com/~team/a%20b/%2F/",
        "https://%70kgs.example.com/x/": "https://pkgs.example.com/x/",
        "https://pkgs.example.com/" + "seg/" * 400: "https://pkgs.example.com/" + "seg/" * 400,
    }
    for url, target in ok.items():
        res = _cli(home, "set", url, "me", stdin=PAT + "\n")
        assert res.returncode == 0, f"{url[:60]}: {res.stderr}"
        assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1
        assert_no_secret(res.stdout + res.stderr, PAT)
        got = _cli(home, "--mode=creds", "--output=json", "get", target + "simple/")
        assert json.loads(got.stdout)["password"] == PAT, url[:60]
        assert_no_secret(got.stderr, PAT)
    names = [c.name for c in connections.list_connections()]
    assert all(len(n) <= connections.MAX_NAME and connections.validate_connection_name(n) for n in names), names
    assert "ipv6-::1:8443/feed" in names
    bad = {
        "https://pkgs.example.com/" + "x" * 3000: "longer than 2048 characters",
        "https://%FF.example/x/": "not UTF-8",
        "https://[::1/feed/": "malformed URL",
        "https://" + "a" * 300 + ".example/": "longer than 253",
    }
    for url, message in bad.items():
        res = _cli(home, "set", url, "me", stdin=PAT + "\n")
        assert res.returncode == 2, f"{url[:60]}: {res.stderr}"
        assert message in assert_one_error_line(res, 2) and res.stderr.count("\n") == 1, res.stderr
        assert_no_secret(res.stdout + res.stderr, PAT)
        assert len(res.stderr) < 300, "the message must not echo a long URL"


@pytest.mark.integration  # runs a program
def test_limits_on_secret_name_and_username(home: Path) -> None:
    big = "x" * (64 * 1024 + 1)
    res = _cli(home, "set", "https://pkgs.example.com/org/", "me", stdin=big + "\n")
    assert res.returncode == 2 and res.stderr.strip() == (
        "privpkg: error: the secret is larger than 64 KiB; a PAT or key is much shorter (was a file piped in by mistake?)"
    ), res.stderr[:300]
    assert_no_secret(res.stdout + res.stderr, big)
    exact = "y" * (64 * 1024)
    res = _cli(home, "set", "https://pkgs.example.com/org/", "me", stdin=exact + "\n")
    assert res.returncode == 0, "64 KiB itself is fine"
    assert_no_secret(res.stdout + res.stderr, exact)
    with pytest.raises(UsageError, match=r"connection name is too long \(5000 characters; at most 200\)"):
        connections.set_connection("n" * 5000, "PythonFeed", "https://h.example/a", "PAT", value=PAT)
    with pytest.raises(UsageError, match="username is too long"):
        connections.set_connection("n", "PythonFeed", "https://h.example/a", "PAT", value=PAT, username="u" * 300)


@pytest.mark.integration  # runs a program
@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"a": "x"}', "entry 'a' is not an object"),
        ("[1]", "entry 0 is not an object"),
        ('{"a": {"target": 5, "secret": "pat-env-shape"}}', "has no target URL"),
        ('{"a": {"target": "https://e.example/", "secret": 5}}', "has no secret"),
        ('[{"name": 5, "target": "https://e.example/", "secret": "pat-env-shape"}]', "name that is not a string"),
        ('[{"target": "https://e.example/", "secret": "pat-env-shape", "username": 7}]', "username"),
        ('[{"target": "https://e.example/", "secret": "pat-env-shape", "allow_http": "no"}]', "allow_http must be true or false"),
        ('[{"target": "https://e.example/", "secret": "pat-env-shape", "category": ["S3"]}]', "unknown category"),
        ('[{"target": "https://e.example/", "secret": "pat-env-shape", "expires": {}}]', "invalid expiry date"),
        ('"just a string"', "expected a JSON list"),
        ("[" * 20000 + "]" * 20000, "unexpected JSON shape (RecursionError)"),  # deeply nested
    ],
)
def test_environment_of_the_wrong_shape_is_one_line_and_the_store_still_serves(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], raw: str, message: str
) -> None:
    connections.set_connection("a", "PythonFeed", "https://h.example/a", "PAT", value=PAT)
    monkeypatch.setenv(envvars.CONNECTIONS, raw)
    kr = PrivpkgKeyring()
    assert kr.get_credential("https://h.example/a/simple/", None).password == PAT
    assert kr.get_password("https://h.example/a/simple/", "u") == PAT
    err = capsys.readouterr().err
    # One line per process: the second lookup reuses the snapshot (and its verdict).
    assert err.count("\n") == 1 and message in err, err[:500]
    assert err.startswith("privpkg: warning: ignoring $PRIVPKG_CONNECTIONS: ")
    assert_no_secret(err, "pat-env-shape", PAT)
    # doctor and `connection list` keep working too, with the same one line.
    env = {**_env(home), envvars.CONNECTIONS: raw}
    for argv in (["connection", "list"], ["connection", "list", "--json"], ["connection", "show", "a"], ["doctor"]):
        res = PrivpkgCLI(env, Outputs())(*argv, timeout=60)
        both = res.stdout + res.stderr
        assert "Traceback" not in both, argv
        assert_no_secret(both, "pat-env-shape", PAT)
        assert message in both, (argv, both[:500])
        if argv[0] == "connection":
            assert res.returncode == 0 and "h.example/a" in res.stdout, (argv, both[:500])
            assert res.stderr.startswith("privpkg: warning: ignoring $PRIVPKG_CONNECTIONS") and res.stderr.count("\n") == 1


@pytest.mark.integration  # runs a program
def test_privpkg_cli_limits_are_one_line(home: Path) -> None:
    """`privpkg connection set`: a secret over 64 KiB, an over-long name or URL, each one line."""

    privpkg = PrivpkgCLI(_env(home), Outputs())

    cases = [
        (["c", "--target", "https://h.example/a"], "s" * (1 << 20), "the secret is larger than 64 KiB"),
        (["n" * 5000, "--target", "https://h.example/a"], PAT, "the connection name is too long (5000 characters; at most 200)"),
        (["c", "--target", "https://h.example/" + "a" * 5000], PAT, "the URL is longer than 2048 characters (5018)"),
        (["c", "--target", "https://h.example/a", "--username", "u" * 1000], PAT, "the username is too long"),
        (["c", "--target", "https://h.example/a", "--keep-secret"], PAT, "--keep-secret goes with --update"),
    ]
    for args, stdin, message in cases:
        res = privpkg("connection", "set", *args, stdin=stdin, timeout=60)
        assert res.returncode == 2, res.stderr[:300]
        line = assert_one_error_line(res, 2)
        assert res.stderr == f"privpkg: error: {message}\n" or (message in line and res.stderr.count("\n") == 1 and len(res.stderr) < 300), res.stderr[:300]
        assert_no_secret(res.stdout + res.stderr, PAT, *([stdin] if stdin != PAT else []))
    assert not (home / "connections.store").exists()
