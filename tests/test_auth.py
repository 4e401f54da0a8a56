"""``privpkg auth login/logout/status`` against the real PAT-protected loopback feed: a login is
stored only when the feed accepted the PAT (checked on a terminal or with ``--verify``), a
``--no-verify`` or piped login stores it unchecked, logout removes only an exact target and
names the connection that answers any other URL, status never shows a secret; then real pip
installs from the feed with the stored login. Every output is grepped for every PAT.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from support.builds import Venv
from support.cli import PrivpkgCLI, run_in_pty
from support.env import assert_no_secret
from support.feeds import FEED_A_PATH, FeedServer

WRONG = "auth-test-WRONG-" + secrets.token_urlsafe(18)
WHEEL_A = "pkg_a-1.0-py3-none-any.whl"


@pytest.fixture
def cli(checked_cli: Callable[..., PrivpkgCLI], feed: FeedServer) -> PrivpkgCLI:
    """The CLI runner for this test's store; no output may hold either feed PAT or WRONG."""
    return checked_cli(*feed.secrets, WRONG)


def target_a(feed: FeedServer) -> str:
    """What a login to feed A's simple index stores: the index root, as uv does."""
    return feed.base + FEED_A_PATH.removesuffix("simple/")


def name_a(feed: FeedServer) -> str:
    return f"127.0.0.1:{feed.port}{FEED_A_PATH.removesuffix('/simple/')}"


def status(cli: PrivpkgCLI) -> list[dict[str, object]]:
    return list(json.loads(cli.ok("auth", "status", "--json")))


def authed_requests(feed: FeedServer) -> list[tuple[str, int]]:
    return [(e.path, e.status) for e in feed.log() if e.auth]


def pip_install(cli: PrivpkgCLI, venv: Venv, target: Path, index: str) -> str:
    """A real ``pip install pkg-a`` from ``index`` into ``target`` (keyring imported in pip's
    env, so the only credential is the stored login)."""
    r = cli.tool([*venv.pip, "install", "--no-cache-dir", "--no-color", "--retries", "0", "--keyring-provider", "import",
                  "--target", target, "--index-url", index, "pkg-a"])
    assert r.returncode == 0, r.describe()
    assert (target / "pkg_a.py").read_text() == 'VERSION = "1.0"\n'
    return r.output


def test_verified_login_stores_and_pip_installs(cli: PrivpkgCLI, feed: FeedServer, venv_privpkg: Venv, tmp_path: Path) -> None:
    """``--verify`` with the right PAT: the feed saw it and said OK, the connection is named
    after the target (the index root), status shows it without the secret, and pip installs
    with it."""
    out = cli.ok("auth", "login", feed.index_a, "--verify", stdin=feed.secret_a + "\n")
    assert f"stored connection {name_a(feed)!r}: {target_a(feed)} (username __token__); OK: {feed.index_a}" in out, out
    assert (FEED_A_PATH, 200) in authed_requests(feed)
    [entry] = status(cli)
    assert entry["name"] == name_a(feed) and entry["target"] == target_a(feed) and entry["source"] == "store"
    assert entry["answers"] == f"URLs under {target_a(feed)}" and entry["expired"] is False
    assert "secret" not in entry
    table = cli.ok("auth", "status")
    assert name_a(feed) in table and "__token__" in table and "store" in table
    pip_install(cli, venv_privpkg, tmp_path / "t", feed.index_a)
    feed.assert_challenged_then_authorized(FEED_A_PATH, WHEEL_A)


def test_wrong_pat_is_not_stored(cli: PrivpkgCLI, feed: FeedServer) -> None:
    """A PAT the feed refuses: one error line with the verdict, exit 1, nothing stored."""
    line = cli.fails(1, "auth", "login", feed.index_a, "--verify", stdin=WRONG,
                     match=["nothing stored: REJECTED", "401"])
    assert name_a(feed) in line
    assert (FEED_A_PATH, 401) in authed_requests(feed), feed.log_text()  # the check did send it
    assert status(cli) == []


@pytest.mark.parametrize("flags", [["--no-verify"], []], ids=["no-verify", "piped-default"])
def test_unverified_login_stores_without_a_request(cli: PrivpkgCLI, feed: FeedServer, flags: list[str]) -> None:
    """``--no-verify``, and a piped PAT without ``--verify``: stored unchecked, the feed never
    contacted."""
    out = cli.ok("auth", "login", feed.index_a, *flags, stdin=WRONG + "\n")
    assert f"stored connection {name_a(feed)!r}" in out and "not verified" in out, out
    assert feed.log() == []
    assert [e["target"] for e in status(cli)] == [target_a(feed)]


def test_terminal_login_verifies_by_default(cli: PrivpkgCLI, feed: FeedServer) -> None:
    """At a terminal (hidden prompt) the PAT is checked without asking: a wrong one is refused
    and not stored, the right one is stored; the secret never shows on the terminal."""

    argv = cli.argv("auth", "login", feed.index_a)
    prompt = f"PAT for {target_a(feed)}: ".encode()
    rc, screen, err = run_in_pty(argv, cli.env, WRONG.encode() + b"\r", prompt)
    assert rc == 1, (screen, err)
    assert len(err.splitlines()) == 1 and err.startswith("privpkg: error: nothing stored: REJECTED"), err
    rc, screen, err2 = run_in_pty(argv, cli.env, feed.secret_a.encode() + b"\r", prompt)
    assert rc == 0, (screen, err2)
    assert b"OK: " in screen and f"stored connection {name_a(feed)!r}".encode() in screen
    assert_no_secret(screen.decode(errors="replace") + err + err2, *feed.secrets, WRONG)
    assert [e["name"] for e in status(cli)] == [name_a(feed)]


def test_second_login_rotates_the_secret(cli: PrivpkgCLI, feed: FeedServer) -> None:
    """Logging in again to the same URL replaces the secret of the same connection."""
    cli.ok("auth", "login", feed.index_a, "--no-verify", stdin=WRONG)
    out = cli.ok("auth", "login", feed.index_a, "--verify", "--expires", "2099-12-31", stdin=feed.secret_a)
    assert f"updated connection {name_a(feed)!r}" in out, out
    [entry] = status(cli)
    assert entry["expires"] == "2099-12-31"
    assert cli.ok("connection", "test", name_a(feed), "--url", feed.index_a).startswith("OK: ")


def test_logout_exact_target(cli: PrivpkgCLI, feed: FeedServer) -> None:
    """Logout with the URL of the login (or the index root) removes that connection."""
    cli.ok("auth", "login", feed.index_a, "--no-verify", stdin=feed.secret_a)
    out = cli.ok("auth", "logout", target_a(feed))
    assert f"deleted connection {name_a(feed)!r}" in out
    assert status(cli) == []
    cli.fails(1, "auth", "logout", feed.index_a, match="none answers")


def test_logout_other_url_names_the_answering_connection(cli: PrivpkgCLI, feed: FeedServer) -> None:
    """A URL that is not a connection's exact target: exit 1, one line naming the connection
    that answers it; nothing is removed."""
    cli.ok("auth", "login", f"{feed.base}/orgA", "--no-verify", stdin=feed.secret_a)
    cli.fails(1, "auth", "logout", feed.index_a,
              match=[f"no connection has the target {target_a(feed)}", f"connection '127.0.0.1:{feed.port}/orgA'",
                     f"privpkg connection delete 127.0.0.1:{feed.port}/orgA"])
    assert [e["target"] for e in status(cli)] == [f"{feed.base}/orgA/"]


def test_overlap_and_past_expiry_warn_once(cli: PrivpkgCLI, feed: FeedServer) -> None:
    """A target below another connection's, and an expiry date in the past, each get one
    warning line, for ``auth login`` and ``connection set`` alike."""
    first = cli("auth", "login", f"{feed.base}/orgA", "--no-verify", stdin=feed.secret_a)
    assert first.returncode == 0 and first.stderr == "", first.stderr
    res = cli("auth", "login", feed.index_a, "--no-verify", stdin=feed.secret_a)
    assert res.returncode == 0, res.stderr
    [line] = res.stderr.splitlines()
    assert line.startswith(f"privpkg: warning: {target_a(feed)} overlaps 1 other connection: '127.0.0.1:{feed.port}/orgA'"), line
    res = cli("connection", "set", "old", "--target", f"{feed.base}/orgB", "--expires", "2001-02-03", stdin=feed.secret_b)
    assert res.returncode == 0, res.stderr
    [line] = res.stderr.splitlines()
    assert line.startswith("privpkg: warning: the expiry date 2001-02-03 of 'old'") and "in the past" in line, line


def test_update_keep_secret_changes_metadata_only(cli: PrivpkgCLI, feed: FeedServer) -> None:
    """``connection set NAME --update --keep-secret`` changes the expiry without asking for the
    secret (empty stdin), and the stored secret still works."""
    cli.ok("auth", "login", feed.index_a, "--verify", stdin=feed.secret_a)
    out = cli.ok("connection", "set", name_a(feed), "--update", "--keep-secret", "--expires", "2099-01-02", stdin="")
    assert f"updated connection {name_a(feed)!r}" in out
    assert status(cli)[0]["expires"] == "2099-01-02"
    assert cli.ok("connection", "test", name_a(feed), "--url", feed.index_a).startswith("OK: ")


@pytest.mark.parametrize(
    ("url", "target"),
    [("pkgs.example.com/org/_packaging/f/pypi/simple", "https://pkgs.example.com/org/_packaging/f/pypi/"),
     ("pkgs.example.com", "https://pkgs.example.com/"),
     ("HTTPS://Pkgs.Example.com:443/devpi/root/+simple/", "https://pkgs.example.com/devpi/root/")],
    ids=["host-path", "bare-host", "devpi"],
)
def test_login_target_normalization(cli: PrivpkgCLI, url: str, target: str) -> None:
    """A bare host or host/path means https; a last /simple (devpi: /+simple) is dropped."""
    out = cli.ok("auth", "login", url, "--no-verify", stdin=WRONG)
    assert f": {target} (username __token__)" in out, out
    cli.fails(2, "auth", "login", "http://pkgs.example.com/org", "--no-verify", stdin=WRONG, match="refusing plain-http")


def test_plain_http_login_names_its_own_option(cli: PrivpkgCLI) -> None:
    """auth login has --allow-http; its refusal used to suggest `privpkg connection set NAME ...`."""
    line = cli.fails(2, "auth", "login", "http://pkgs.example.com/org", "--no-verify", stdin=WRONG, match="refusing plain-http")
    assert line.endswith("use https, or pass --allow-http if you really mean it") and "connection set" not in line, line
    cli.ok("auth", "login", "http://pkgs.example.com/org", "--no-verify", "--allow-http", stdin=WRONG)


def test_terminal_login_prompt_names_a_token(cli: PrivpkgCLI) -> None:
    """A Bearer channel's prompt asks for a token, not a PAT (as `connection set` does)."""
    argv = cli.argv("auth", "login", "prefix.example/my-channel", "--category", "CondaChannel", "--auth-type", "Bearer", "--no-verify")
    rc, screen, err = run_in_pty(argv, cli.env, WRONG.encode() + b"\r", b"token for https://prefix.example/my-channel/: ")
    assert rc == 0 and b"token for https://prefix.example/my-channel/: " in screen, (screen, err)
