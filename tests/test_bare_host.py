"""Issue 6 B6: the bare-host lookup. pip's second keyring lookup (``host:port``) and uv's ``host``
lookup carry neither scheme nor path, so a connection answering them would hand its PAT to any
URL on that host, plain http included. By default none does; a connection answers them only
when its owner opted in (``--host-wide``).

The attack: a PAT stored for ``https://127.0.0.1:PORT/orgC/`` while pip or uv is pointed at
``http://127.0.0.1:PORT/orgA/...`` on the same host and port, which answers 401 (our loopback feed
forges the challenge; no TLS server is needed, because the PAT must never leave in the first
place). Before the fix, the bare-host lookup answered with the https PAT and pip/uv sent it in
clear over http. The feed logs whether each request carried an Authorization header.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.builds import Venv
from support.env import Result, assert_no_secret, run
from support.feeds import FeedServer, ServedHTTP

from privpkg import envvars
from privpkg.connections import set_connection
from privpkg.testing import feedserver


def https_orgC(feed: FeedServer) -> str:
    return f"https://127.0.0.1:{feed.port}/orgC/"


@pytest.fixture
def store(privpkg_home: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``store(name, target, secret, **kw)``: ``set_connection`` into this test's PRIVPKG_HOME."""

    def store(name: str, target: str, secret: str, **kw: Any) -> Any:
        with monkeypatch.context() as m:
            for k in list(os.environ):
                if k in envvars.ALL:
                    m.delenv(k)
            m.setenv(envvars.HOME, str(privpkg_home))
            return set_connection(name, "PythonFeed", target, "PAT", value=secret, **kw)

    return store


def sh(cmd: list[Any], env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run with stdout and stderr apart (``support.env.run`` merges them and closes stdin)."""
    return subprocess.run([str(c) for c in cmd], input=stdin or "", capture_output=True, text=True, env=env, timeout=120, check=False)


def pip_install(venv: Venv, env: dict[str, str], target: Path, *args: str) -> Result:
    cmd = [*venv.pip, "install", "-v", "--no-cache-dir", "--no-color", "--retries", "0", "--no-input", "--target", str(target), *args]
    return run(cmd, env)


def assert_pat_never_sent(feed: FeedServer, target: Path, r: Result) -> None:
    """The install failed, every request was refused, none carried an Authorization header, and
    no output shows the PAT."""
    assert r.returncode != 0, f"install unexpectedly succeeded\n{r.describe()}"
    assert not (target / "pkg_a.py").exists()
    feed.assert_never_authorized()
    assert_no_secret(r.output, *feed.secrets)


def test_pip_import_provider_never_sends_https_pat_over_http(feed, venv_privpkg, make_env, store, tmp_path):
    store("orgC", https_orgC(feed), feed.secret_a)  # feed A's real PAT: if sent, the feed would accept it
    env = make_env()
    target = tmp_path / "target"
    r = pip_install(venv_privpkg, env, target, "--keyring-provider", "import", "--index-url", feed.index_a, "pkg-a")
    assert_pat_never_sent(feed, target, r)


def test_pip_subprocess_provider_never_sends_https_pat_over_http(feed, venv_privpkg, venv_bare_pip, make_env, store, tmp_path):
    store("orgC", https_orgC(feed), feed.secret_a)
    env = make_env(path_prefix=[venv_privpkg.bin])
    assert not venv_bare_pip.can_import("keyring", env)
    target = tmp_path / "target"
    r = pip_install(venv_bare_pip, env, target, "--keyring-provider", "subprocess", "--index-url", feed.index_a, "pkg-a")
    assert_pat_never_sent(feed, target, r)


def test_uv_never_sends_https_pat_over_http(feed, venv_privpkg, venv_bare_pip, make_env, store, uv_bin, tmp_path):
    """uv asks ``keyring get URL USER``, then ``host:port``, then ``http://host:port``: none of
    them may answer with the https connection's PAT."""
    store("orgC", https_orgC(feed), feed.secret_a)  # username __token__, as in the index URL below
    env = make_env(path_prefix=[venv_privpkg.bin])
    index = feed.index_a.replace("http://", "http://__token__@", 1)
    target = tmp_path / "target"
    cmd = [uv_bin, "pip", "install", "-v", "--no-config", "--no-cache", "--keyring-provider", "subprocess",
           "--index-url", index, "--python", str(venv_bare_pip.python), "--target", str(target), "pkg-a"]
    r = run(cmd, env)
    assert r.returncode != 0, r.describe()
    assert not (target / "pkg_a.py").exists()
    log = feed.log()
    assert log and all(e.status == 401 for e in log), feed.log_text()
    # uv sends "__token__:" (username, no password) by itself; what matters is that the PAT
    # never arrived: a request with the PAT would have been answered 200 by the feed.
    assert not any(e.status == 200 for e in log), feed.log_text()
    assert_no_secret(r.output, *feed.secrets)


def test_every_keyring_lookup_pip_and_uv_make_is_refused(feed, venv_privpkg, make_env, store):
    """The lookups themselves, through the real keyring CLI in both of pip's modes and uv's."""
    store("orgC", https_orgC(feed), feed.secret_a)
    env = make_env()
    keyring = venv_privpkg.bin / "keyring"
    services = [feed.index_a, feed.netloc, "127.0.0.1", f"http://{feed.netloc}", f"https://{feed.netloc}"]
    for service in services:
        creds = sh([keyring, "--mode=creds", "--output=json", "get", service], env)
        pw = sh([keyring, "get", service, "__token__"], env)
        # (The message names exit codes only: a served PAT must not land in the test report.)
        assert creds.returncode == 1 and pw.returncode == 1, f"{service} was answered: exit {creds.returncode}/{pw.returncode}"
        assert_no_secret(creds.stdout + creds.stderr + pw.stdout + pw.stderr, feed.secret_a)
    # Control: the connection itself is served for URLs under its target.
    hit = sh([keyring, "--mode=creds", "--output=json", "get", https_orgC(feed) + "simple/"], env)
    assert json.loads(hit.stdout)["password"] == feed.secret_a


def test_host_wide_opt_in_answers_the_bare_host(feed, venv_privpkg, make_env, store, privpkg_home):
    """With the opt-in, the bare-host lookup answers (this is what --host-wide documents: the
    https secret then also reaches http URLs on that host), and `connection show`, `list --json`
    and `doctor` say so."""
    store("orgC", https_orgC(feed), feed.secret_a, host_wide=True)
    env = make_env()
    keyring = venv_privpkg.bin / "keyring"
    got = sh([keyring, "--mode=creds", "--output=json", "get", feed.netloc], env)
    assert got.returncode == 0 and json.loads(got.stdout)["password"] == feed.secret_a
    privpkg = venv_privpkg.bin / "privpkg"
    shown = sh([privpkg, "connection", "show", "orgC", "--json"], env)
    assert json.loads(shown.stdout)["host_wide"] is True, shown
    listed = sh([privpkg, "connection", "list", "--json"], env)
    assert [c["host_wide"] for c in json.loads(listed.stdout)] == [True]
    doc = run([privpkg, "doctor"], env)
    assert f"connection 'orgC' answers bare-host lookups for {feed.netloc} (--host-wide)" in doc.output, doc.describe()
    assert f"also reaches http://{feed.netloc}/ URLs" in doc.output
    assert_no_secret(got.stderr + shown.stdout + shown.stderr + listed.stdout + listed.stderr + doc.output, feed.secret_a)


def test_doctor_explains_a_refused_bare_host_lookup(feed, venv_privpkg, make_env, store):
    store("orgC", https_orgC(feed), feed.secret_a)
    env = make_env()
    doc = run([venv_privpkg.bin / "privpkg", "doctor", "--url", feed.netloc], env)
    assert f"privpkg refuses the bare-host lookup {feed.netloc}: connection 'orgC' did not opt in" in doc.output, doc.describe()
    assert "privpkg connection set orgC --update --keep-secret --host-wide" in doc.output
    assert f"no keyring backend has a credential for {feed.netloc}" in doc.output
    assert_no_secret(doc.output, *feed.secrets)


def test_cli_host_wide_flags_round_trip(venv_privpkg, make_env, feed):
    """`connection set --host-wide`, then `--update --keep-secret --no-host-wide` (no new
    secret needed), through the real CLI."""
    env = make_env()
    privpkg = venv_privpkg.bin / "privpkg"
    keyring = venv_privpkg.bin / "keyring"
    r = sh([privpkg, "connection", "set", "c", "--target", https_orgC(feed), "--host-wide"], env, stdin=feed.secret_a + "\n")
    assert r.returncode == 0 and "answers bare-host lookups (--host-wide)" in r.stdout, r
    assert sh([keyring, "get", feed.netloc, "__token__"], env).stdout.strip() == feed.secret_a
    r2 = sh([privpkg, "connection", "set", "c", "--update", "--keep-secret", "--no-host-wide"], env)
    assert r2.returncode == 0, r2
    assert sh([keyring, "get", feed.netloc, "__token__"], env).returncode == 1
    assert sh([keyring, "get", https_orgC(feed), "__token__"], env).stdout.strip() == feed.secret_a, "secret kept"
    assert_no_secret(r.stdout + r.stderr + r2.stdout + r2.stderr, feed.secret_a)



# --------------------------------------------------------------------------------------------
# Index URLs need no opt-in, and pip reuses the index's credential for that host's files
# --------------------------------------------------------------------------------------------
# The `feed` fixture serves files under the feed's own path, so the URL lookup answers them
# anyway. Real feeds (Azure Artifacts, Artifactory, GitLab) often link files at another path on
# the same host. This small server does that: the index is at /org/_packaging/feed/pypi/simple/
# and its project page links /_files/<sha>/<wheel>, outside the connection's target
# http://127.0.0.1:PORT/org/_packaging/feed/. /other/<wheel> is a direct-URL location. Every
# path demands the same PAT (401 with WWW-Authenticate otherwise); the log keeps method, path,
# status and whether an Authorization header came, never its value.

SPLIT_INDEX = "/org/_packaging/feed/pypi/simple/"
SPLIT_TARGET = "/org/_packaging/feed/"


class SplitFeed:
    """privpkg.testing.feedserver in a thread: a PAT feed whose project page links its file
    outside the index's path (``/_files/<sha>/FILE``), that serves the same file at
    ``/other/FILE`` too (a direct URL), and whose request log the test reads as
    ``(method, path, status, sent Authorization)``."""

    def __init__(self, wheel: Path, secret: str, root: Path) -> None:
        import hashlib

        self.wheel = wheel
        self.secret = secret
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        self.file_path = f"/_files/{sha[:16]}/{wheel.name}"
        self.log_path = root / "requests.log"
        feeds = [
            {"path": SPLIT_INDEX, "secret": secret, "dir": str(wheel.parent), "files": "/_files/"},
            {"path": "/other/", "secret": secret, "dir": str(wheel.parent), "files": "/other/"},
        ]
        self.served = ServedHTTP(feedserver.serve({"feeds": feeds, "log": str(self.log_path)}))
        self.port, self.base = self.served.port, self.served.base

    @property
    def log(self) -> list[tuple[str, str, int, bool]]:
        lines = self.log_path.read_text().splitlines() if self.log_path.exists() else []
        return [(m, p.split("?", 1)[0], int(s), a == "auth") for m, p, s, a in (line.split(" ") for line in lines)]

    def clear_log(self) -> None:
        self.log_path.write_text("")

    def text(self) -> str:
        return "\n".join(f"{m} {p} {s} {'auth' if a else 'noauth'}" for m, p, s, a in self.log) or "<no requests>"

    def close(self) -> None:
        self.served.stop()


@pytest.fixture
def split_feed(tmp_path: Path) -> Any:
    import secrets

    from privpkg.testing import make_wheel

    feed = SplitFeed(make_wheel(tmp_path / "split-wheels", "pkg-a", "1.0"), "split-" + secrets.token_urlsafe(24), tmp_path)
    try:
        yield feed
    finally:
        feed.close()


@pytest.mark.parametrize("provider", ["import", "subprocess"])
def test_index_credential_is_reused_for_files_outside_the_target(split_feed, venv_privpkg, venv_bare_pip, make_env, store, tmp_path, provider):
    """No --host-wide: pip asks keyring with the index URL (answered: it is under the target),
    caches the credential for the host:port, and sends it with the file download at /_files/...,
    which privpkg itself would not answer (shown with the real keyring CLI)."""
    feed = split_feed
    conn = store("split", feed.base + SPLIT_TARGET, feed.secret)
    assert conn.host_wide is False
    file_url = feed.base + feed.file_path
    assert not feed.file_path.startswith(SPLIT_TARGET)
    env = make_env(path_prefix=[venv_privpkg.bin])
    # privpkg does not answer the file URL, nor the bare host: any credential on the file
    # request below is pip's reuse of the index's.
    for service in (file_url, feed.base.removeprefix("http://")):
        got = sh([venv_privpkg.bin / "keyring", "--mode=creds", "--output=json", "get", service], env)
        # (the message leaves stdout out: it would hold the secret)
        assert got.returncode == 1 and got.stdout == "", f"privpkg answered {service} (exit {got.returncode})"
        assert_no_secret(got.stdout + got.stderr, feed.secret)
    venv = venv_privpkg if provider == "import" else venv_bare_pip
    if provider == "subprocess":
        assert not venv_bare_pip.can_import("keyring", env)
    target = tmp_path / "target"
    r = pip_install(venv, env, target, "--keyring-provider", provider, "--index-url", feed.base + SPLIT_INDEX, "pkg-a")
    assert r.returncode == 0 and (target / "pkg_a.py").is_file(), f"{r.describe()}\n{feed.text()}"
    log = feed.log
    first_401 = next(i for i, e in enumerate(log) if e[2] == 401 and not e[3])
    assert log[first_401][1].startswith(SPLIT_INDEX), feed.text()  # the challenge came from the index
    files = [e for e in log if e[1] == feed.file_path]
    assert files and all(e[3] and e[2] == 200 for e in files), feed.text()
    assert_no_secret(r.output, feed.secret)


def test_host_wide_makes_a_direct_url_install_work(split_feed, venv_privpkg, make_env, store, tmp_path):
    """A direct URL gets only pip's bare-host lookup: refused by default (no credential ever
    sent), answered after --host-wide, and the install then works end to end."""
    feed = split_feed
    env = make_env()
    direct = f"pkg-a @ {feed.base}/other/{feed.wheel.name}"
    store("split", feed.base + SPLIT_TARGET, feed.secret)
    r = pip_install(venv_privpkg, env, tmp_path / "t1", "--keyring-provider", "import", direct)
    assert r.returncode != 0 and not (tmp_path / "t1" / "pkg_a.py").exists(), r.describe()
    assert feed.log and not any(e[3] for e in feed.log), feed.text()
    assert_no_secret(r.output, feed.secret)

    feed.clear_log()
    store("split", feed.base + SPLIT_TARGET, feed.secret, host_wide=True)
    r = pip_install(venv_privpkg, env, tmp_path / "t2", "--keyring-provider", "import", direct)
    assert r.returncode == 0 and (tmp_path / "t2" / "pkg_a.py").is_file(), f"{r.describe()}\n{feed.text()}"
    assert any(e[1] == f"/other/{feed.wheel.name}" and e[2] == 200 and e[3] for e in feed.log), feed.text()
    assert_no_secret(r.output, feed.secret)
