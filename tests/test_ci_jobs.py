"""privpkg in CI jobs. Secrets as CI systems hand them over: spliced into ``$PRIVPKG_CONNECTIONS``
by a shell step, often with a trailing newline or spaces; every command that then finds no
connection says why (the variable it ignored), and a secret with spaces at an end is served but
warned about. A container run as a uid with no passwd entry and no $HOME. Real CLI, real
loopback PAT feed."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path

import pytest
from support.cli import PrivpkgCLI, assert_one_error_line
from support.env import REPO, read_only
from support.feeds import FeedServer

from privpkg import envvars

NEWLINE_HINT = "invalid control character at line 1, column"


def _spliced(feed: FeedServer, secret: str) -> str:
    """What `export PRIVPKG_CONNECTIONS='[{..., "secret": "'"$PAT"'"}]'` makes of ``secret``."""
    return '[{"name": "feed", "target": "' + feed.base + '/orgA/", "secret": "' + secret + '"}]'


def test_a_pat_with_a_newline_is_named_by_connection_test_and_show(feed: FeedServer, checked_cli: Callable[..., PrivpkgCLI]) -> None:
    """`connection test feed` and `connection show feed` said only "no connection named 'feed'",
    dropping the warning that `connection list` gives (and it read "at at")."""
    cli = checked_cli(feed.secret_a)
    env = {envvars.CONNECTIONS: _spliced(feed, feed.secret_a + "\n")}
    for args in (["connection", "test", "feed", "--url", feed.index_a], ["connection", "show", "feed"]):
        res = cli(*args, env=env)
        lines = res.stderr.splitlines()
        assert res.returncode == 1 and len(lines) == 2, res.stderr
        assert lines[0].startswith(f"privpkg: warning: ignoring ${envvars.CONNECTIONS}: it is not valid JSON ({NEWLINE_HINT} "), lines
        assert lines[0].endswith("; a newline or tab in a secret?)"), lines
        assert lines[1] == "privpkg: error: no connection named 'feed' (see: privpkg connection list)", lines


UNEXPANDED = "is a variable's name that was never expanded ($PAT in single quotes, or an undefined Azure Pipelines $(PAT))"


@pytest.mark.parametrize(("secret", "why"), [
    ("{pat}  ", "begins or ends with a space, which is sent as part of it"),
    (" {pat}", "begins or ends with a space, which is sent as part of it"),
    ("$FEED_PAT", UNEXPANDED),  # export PRIVPKG_CONNECTIONS='[{..., "secret": "$FEED_PAT"}]'
    ("$(FEED_PAT)", UNEXPANDED),  # Azure Pipelines leaves $(NAME) of an undefined variable as is
])
def test_a_secret_a_feed_must_reject_is_served_with_a_warning(
    feed: FeedServer, checked_cli: Callable[..., PrivpkgCLI], secret: str, why: str,
) -> None:
    """A feed rejects it; the verdict alone (wrong, expired or revoked) sent people to renew a
    PAT that was fine."""
    cli = checked_cli(feed.secret_a)
    env = {envvars.CONNECTIONS: _spliced(feed, secret.format(pat=feed.secret_a))}
    res = cli("connection", "test", "feed", "--url", feed.index_a, env=env)
    assert res.returncode == 1 and res.stdout.startswith("REJECTED: "), res.stdout + res.stderr
    assert res.stderr.splitlines() == [f"privpkg: warning: ${envvars.CONNECTIONS}: the secret of 'feed' {why}"], res.stderr
    clean = cli("connection", "list", env={envvars.CONNECTIONS: _spliced(feed, "a$b" + feed.secret_a)})
    assert clean.returncode == 0 and clean.stderr == "", clean.stderr


def test_env_build_names_the_variable_it_ignored(feed: FeedServer, checked_cli: Callable[..., PrivpkgCLI], tmp_path: Path) -> None:
    """A feed file that got 401 because $PRIVPKG_CONNECTIONS was ignored: the one error line
    says why, instead of pointing a CI job to `privpkg connection set`."""
    cli = checked_cli(feed.secret_a)
    wheel = tmp_path / "feed" / "a" / "pkg_a-1.0-py3-none-any.whl"
    lock = tmp_path / "pylock.toml"
    lock.write_text(
        f'lock-version = "1.0"\ncreated-by = "test"\n[[packages]]\nname = "pkg-a"\nversion = "1.0"\n[[packages.wheels]]\n'
        f'name = "{wheel.name}"\nurl = "{feed.index_a}pkg-a/{wheel.name}"\n'
        f'hashes = {{sha256 = "{hashlib.sha256(wheel.read_bytes()).hexdigest()}"}}\n')
    res = cli("env", "build", "--lock", lock, env={envvars.CONNECTIONS: _spliced(feed, feed.secret_a + "\n")})
    line = assert_one_error_line(res, 1)
    assert f"HTTP 401 from 127.0.0.1 (ignoring ${envvars.CONNECTIONS}: it is not valid JSON ({NEWLINE_HINT}" in line, line
    assert "connection set" not in line, line
    ok = cli("env", "build", "--lock", lock, env={envvars.CONNECTIONS: json.dumps(json.loads(_spliced(feed, feed.secret_a)))})
    assert ok.returncode == 0, ok.stderr


def _uid_without_passwd_entry() -> int:
    uid = 4242
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


def _system_python() -> str | None:
    """A Python of this interpreter's version that another uid can run (the tests' own venv
    python may sit under root's 0700 home)."""
    want = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for cand in (f"/usr/bin/{want}", f"/usr/local/bin/{want}"):
        if os.access(cand, os.X_OK) and os.stat(cand).st_mode & 0o001:
            return cand
    return None


@pytest.mark.integration  # runs a program as another uid
def test_no_home_and_no_passwd_entry_is_one_line() -> None:
    """`docker run --user 1001` with no $HOME: every command died with a RuntimeError traceback
    from pathlib or platformdirs ("could not determine the home directory")."""
    python, setpriv = _system_python(), shutil.which("setpriv")
    if os.geteuid() != 0 or python is None or setpriv is None:
        pytest.skip("needs root, setpriv and a system python of this version")
    uid = _uid_without_passwd_entry()
    path = os.pathsep.join([str(REPO / "src"), sysconfig.get_paths()["purelib"]])
    for args in (["auth", "status"], ["setup", "uv"], ["env", "prune"]):
        res = subprocess.run(
            [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "env", "-i", "PATH=/usr/bin:/bin", f"PYTHONPATH={path}",
             python, "-m", "privpkg", *args],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd="/", timeout=60, check=False)
        line = assert_one_error_line(res, 1)
        assert line == "privpkg: error: cannot tell where your files go: $HOME is unset and this user has no home directory; " \
                       "set HOME (keyring needs it too)", line


def test_a_read_only_home_names_the_variable_that_moves_each_folder(tmp_path: Path) -> None:
    """A CI job whose $HOME cannot be written (a read-only bind mount, or another user's home):
    the one error line names the folder privpkg needed and the variables that move it, the
    XDG one for that folder alone; following that advice works. With $PRIVPKG_HOME set the user
    chose the folder, and the line adds nothing."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != envvars.HOME and not k.startswith(("XDG_", envvars.HOME.partition("_")[0] + "_"))}
    env["HOME"] = str(home)
    lock = tmp_path / "pylock.toml"
    lock.write_text('lock-version = "1.0"\ncreated-by = "test"\n')

    def privpkg(*args: str | Path, stdin: str = "", **more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(PrivpkgCLI.argv(*args), input=stdin, capture_output=True, text=True, env={**env, **more},
                              timeout=120, check=False, cwd=tmp_path)

    with read_only(home):
        runs = {
            ".config": privpkg("workspace", "add", "team", "--local", tmp_path / "ws"),
            ".cache": privpkg("env", "build", "--lock", lock),
            ".local/share": privpkg("connection", "set", "feed", "--target", "https://example.com/feed/", stdin="s3cret\n"),
        }
        for folder, variable in ((".config", "XDG_CONFIG_HOME"), (".cache", "XDG_CACHE_HOME"), (".local/share", "XDG_DATA_HOME")):
            line = assert_one_error_line(runs[folder], 1)
            assert line.endswith(f"; {home / folder / 'privpkg'} is not writable here: set {variable} (this folder only) "
                                 f"or {envvars.HOME} (all of privpkg's files) to a writable folder"), line
        chosen = privpkg("workspace", "add", "team", "--local", tmp_path / "ws", **{envvars.HOME: str(home / "p")})
        line = assert_one_error_line(chosen, 1)
        assert str(home / "p") in line and "not writable here" not in line, line
        built = privpkg("env", "build", "--lock", lock, XDG_CACHE_HOME=str(tmp_path / "cache"))
        assert built.returncode == 0 and built.stdout.startswith(str(tmp_path / "cache" / "privpkg")), built


def test_an_expired_environment_connection_is_renewed_in_its_variable(feed: FeedServer, checked_cli: Callable[..., PrivpkgCLI]) -> None:
    """An expired connection from $PRIVPKG_CONNECTIONS was told to run `privpkg connection set feed
    --update`, which refuses environment connections: the variable is what to change."""
    cli = checked_cli(feed.secret_a)
    conns = json.dumps([{"name": "feed", "target": f"{feed.base}/orgA/", "secret": feed.secret_a, "expires": "2020-01-01"}])
    env = {**cli.env, envvars.CONNECTIONS: conns}
    fix = f'in ${envvars.CONNECTIONS}'
    # pip's subprocess call (its stdout is the secret: not recorded with the outputs checked)
    got = subprocess.run([sys.executable, "-m", "keyring", "--mode=creds", "--output=json", "get", feed.index_a], env=env,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, check=False)
    assert got.returncode == 0 and json.loads(got.stdout)["password"] == feed.secret_a, got.stderr
    cli.outputs.add("keyring get (stderr)", got.stderr)
    assert f"connection 'feed' expired on 2020-01-01; renew it {fix} (its secret and \"expires\")" in got.stderr, got.stderr
    last = cli.ok("doctor", "--last", "1", env=env)
    assert f'hint: renew the PAT, then update its secret and "expires" {fix}' in last, last
    doctor = cli("doctor", env=env)
    assert f"FAIL  connection 'feed' expired on 2020-01-01 (lookups still serve it); renew its secret and \"expires\" {fix}" in doctor.stdout, doctor.stdout
    for text in (got.stderr, last, doctor.stdout):
        assert "connection set" not in text, text


def test_a_piped_secret_with_spaces_at_an_end_is_stored_with_a_warning(checked_cli: Callable[..., PrivpkgCLI]) -> None:
    """`echo "$PAT " | privpkg auth login URL`: stored as given, and said, since a feed will then
    answer 401 while the PAT itself is fine."""
    cli = checked_cli("ci-secret-0123456789")
    warning = "privpkg: warning: the secret begins or ends with a space, which is stored as part of it"
    res = cli("auth", "login", "https://h.example/feed/", stdin="ci-secret-0123456789  \n")
    assert res.returncode == 0 and res.stderr.splitlines() == [warning], res.stderr
    res = cli("connection", "set", "other", "--target", "https://h2.example/", stdin=" ci-secret-0123456789\n")
    assert res.returncode == 0 and res.stderr.splitlines() == [warning], res.stderr
    res = cli("connection", "set", "third", "--target", "https://h3.example/", stdin="ci-secret-0123456789\n")
    assert res.returncode == 0 and res.stderr == "", res.stderr
