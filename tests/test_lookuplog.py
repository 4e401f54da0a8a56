"""The lookup log with real programs: pip's 401 explained after the fact by ``privpkg doctor
--last``, an expired connection served and reported, an unreadable store recorded, a read-only or
full state dir that never costs a lookup, the size cap, no secret anywhere, and concurrent writers
that leave whole lines.

pip runs with ``--keyring-provider subprocess`` and the ``keyring`` CLI of a venv with privpkg
installed (pip's exact call since 26.2: ``keyring --mode=creds --output=json get URL``); the
other lookups call that CLI directly.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from support.builds import Venv
from support.cli import PrivpkgCLI
from support.env import Result, assert_no_secret, read_only, run
from support.feeds import FeedServer

from privpkg import envvars, lookuplog

PAT = "lk-PAT-3e9a1c5b7f"
OTHER_KEY = "11" * 32  # a valid key that is not the store's


def pip_install(venv: Venv, env: dict[str, str], target: Path, *args: str) -> Result:
    cmd = [*venv.pip, "install", "--no-cache-dir", "--no-color", "--retries", "0", "--target", str(target), *args]
    return run(cmd, env)


def keyring_get(venv: Venv, env: dict[str, str], url: str) -> Result:
    """pip's exact subprocess call (26.2+)."""
    return run([venv.bin / "keyring", "--mode=creds", "--output=json", "get", url], env)


def last(cli: PrivpkgCLI, n: int = 20) -> list[dict[str, object]]:
    recs: list[dict[str, object]] = json.loads(cli.ok("doctor", "--last", str(n), "--json"))
    return recs


def test_pip_401_without_a_matching_connection_is_explained(
    feed: FeedServer, venv_bare_pip: Venv, venv_privpkg: Venv, make_env, checked_cli, privpkg_home: Path, tmp_path: Path
) -> None:
    """pip gets 401 from feed B because only feed A has a connection; ``doctor --last`` names the
    URL pip asked for, says no connection matches it, and gives the login that fixes it, which does."""
    cli = checked_cli(*feed.secrets)
    cli.ok("connection", "set", "orgA", "--target", f"{feed.base}/orgA", stdin=feed.secret_a)
    env = make_env(path_prefix=[venv_privpkg.bin], PIP_KEYRING_PROVIDER="subprocess")
    r = pip_install(venv_bare_pip, env, tmp_path / "t1", "--index-url", feed.index_b, "pkg-b")
    cli.outputs.add("pip install (401)", r.output)
    assert r.returncode != 0 and "401" in r.output, r.describe()
    feed.assert_never_authorized()

    text = cli.ok("doctor", "--last")
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.endswith(f"  {feed.index_b}"))
    assert lines[at + 1].strip() == "nothing: no connection matches it", text
    assert lines[at + 2].strip() == f"hint: add one with: privpkg auth login {feed.index_b}", text
    assert "keyring (from pip" in lines[at], "the line names the program and who ran it"
    # pip's second lookup, the bare host:port: orgA is on that host but did not opt in.
    recs = last(cli)
    assert {"service": feed.netloc, "reason": "bare-host-not-opted-in", "served": False}.items() <= recs[-1].items(), recs

    # Following the hint works.
    cli.ok("auth", "login", feed.index_b, "--no-verify", stdin=feed.secret_b)
    r = pip_install(venv_bare_pip, env, tmp_path / "t2", "--index-url", feed.index_b, "pkg-b")
    cli.outputs.add("pip install (after login)", r.output)
    assert r.returncode == 0, r.describe()
    served = [x for x in last(cli) if x["served"]]
    assert served and served[-1]["service"] == feed.index_b and served[-1]["reason"] == "match"
    assert_no_secret((privpkg_home / lookuplog.LOG_NAME).read_text(), *feed.secrets)


def test_expired_connection_is_served_and_reported(
    feed: FeedServer, venv_bare_pip: Venv, venv_privpkg: Venv, make_env, checked_cli, privpkg_home: Path, tmp_path: Path
) -> None:
    cli = checked_cli(*feed.secrets)
    cli("connection", "set", "orgA", "--target", f"{feed.base}/orgA", "--expires", "2020-01-01", stdin=feed.secret_a)
    env = make_env(path_prefix=[venv_privpkg.bin], PIP_KEYRING_PROVIDER="subprocess")
    r = pip_install(venv_bare_pip, env, tmp_path / "t", "--index-url", feed.index_a, "pkg-a")
    cli.outputs.add("pip install", r.output)
    assert r.returncode == 0, r.describe()  # served although expired: the feed decides
    rec = next(x for x in last(cli) if x["served"])
    assert (rec["connection"], rec["expired"], rec["reason"]) == ("orgA", "2020-01-01", "match")
    text = cli.ok("doctor", "--last")
    assert "served by connection 'orgA' (store, target" in text and "which EXPIRED on 2020-01-01 (still served)" in text
    assert "hint: renew the PAT, then: privpkg connection set orgA --update --expires DATE" in text
    res = cli("doctor")
    assert res.returncode == 1 and "connection 'orgA' expired on 2020-01-01 (lookups still serve it)" in res.stdout
    assert_no_secret((privpkg_home / lookuplog.LOG_NAME).read_text(), *feed.secrets)


def test_unreadable_store_is_recorded(venv_privpkg: Venv, make_env, checked_cli, privpkg_home: Path) -> None:
    cli = checked_cli(PAT)
    cli.ok("connection", "set", "feed", "--target", "https://h.example/org", stdin=PAT)
    url = "https://h.example/org/simple/"
    r = keyring_get(venv_privpkg, make_env(**{envvars.MASTER_KEY: OTHER_KEY}), url)
    cli.outputs.add("keyring get (wrong key)", r.output)
    assert r.returncode == 1 and "Traceback" not in r.output
    (privpkg_home / "connections.store").write_bytes(b"not a store")
    r = keyring_get(venv_privpkg, make_env(), url)
    cli.outputs.add("keyring get (corrupt)", r.output)
    assert r.returncode == 1 and "Traceback" not in r.output
    wrong_key, corrupt = last(cli, 2)
    assert wrong_key["reason"] == corrupt["reason"] == lookuplog.STORE_UNREADABLE
    assert "not a privpkg store" in str(corrupt["detail"])
    text = cli.ok("doctor", "--last", "1")
    assert "nothing: the store could not be read: " in text and "hint: privpkg doctor checks the store and its key" in text


def keyring_cli(venv: Venv, env: dict[str, str], *args: str) -> Result:
    return run([venv.bin / "keyring", *args], env)


def test_token_in_username_or_path_never_reaches_the_log(venv_privpkg: Venv, make_env, checked_cli, privpkg_home: Path) -> None:
    """Tokens the caller put in the URL, as the username (GitHub/GitLab style
    ``https://TOKEN@host/``, so pip asks with username TOKEN) or in the path (Gemfury's
    ``https://host/TOKEN/``): the real keyring CLI looks them up, and neither lookups.log nor
    ``doctor --last`` (text or JSON) holds them; the placeholder username and the URL's shape stay."""
    user_token = "ghp_" + "Zq8Xw3Rt6Yu1Io4Pa7Sd0Fg2" + "Hj5Kl9"
    path_token = "7fK2mQ9xL4vB8nR1tW6y"
    cli = checked_cli(PAT, user_token, path_token)
    cli.ok("connection", "set", "feed", "--target", "https://h.example/org", stdin=PAT)
    env = make_env()
    asks = [
        ("get", f"https://{user_token}@h.example/org/simple/", user_token),  # keyring get URL USER: password mode
        ("--mode=creds", "--output=json", "get", f"https://{user_token}@h.example/org/simple/"),
        ("get", f"https://h.example/{path_token}/simple/", "__token__"),
    ]
    for args in asks:
        r = keyring_cli(venv_privpkg, env, *args)
        assert r.returncode in (0, 1) and "Traceback" not in r.output, r.describe()
    text = cli.ok("doctor", "--last", str(len(asks)))
    as_json = cli.ok("doctor", "--last", str(len(asks)), "--json")
    for where, found in (("lookups.log", (privpkg_home / lookuplog.LOG_NAME).read_text()), ("doctor --last", text), ("--json", as_json)):
        for token in (user_token, path_token):
            assert token not in found, f"a token the caller gave is in {where}"
    recs = json.loads(as_json)
    assert [(x["service"], x["username"]) for x in recs] == [
        ("https://***@h.example/org/simple/", lookuplog.GIVEN),
        ("https://***@h.example/org/simple/", None),
        ("https://h.example/***/simple/", "__token__"),
    ], recs
    assert [x["reason"] for x in recs] == ["match", "match", "no-match"]
    assert "https://h.example/***/simple/ as '__token__'" in text and "with a username (not recorded: it may be a token)" in text
    assert_no_secret((privpkg_home / lookuplog.LOG_NAME).read_text(), PAT, user_token, path_token)


def test_lookup_warnings_reach_the_log(venv_privpkg: Venv, make_env, checked_cli, privpkg_home: Path) -> None:
    """A malformed $PRIVPKG_CONNECTIONS and an unreadable Azure variable: pip 26.2+ swallows the
    keyring CLI's stderr, so the record of the lookup carries the warnings and ``doctor --last``
    shows them, with a hint that the missing connection may be in what was ignored."""
    cli = checked_cli(PAT)
    cli.ok("connection", "set", "feed", "--target", "https://h.example/org", stdin=PAT)
    env = make_env(**{
        envvars.CONNECTIONS: json.dumps([{"name": "ci", "target": "https://h.example/ci", "secret": PAT}])[:-2],  # cut short
        envvars.AZURE_ENDPOINTS[0]: json.dumps({"endpointCredentials": {"endpoint": "https://h.example/az", "password": PAT}}),
    })
    r = keyring_get(venv_privpkg, env, "https://h.example/ci/simple/")
    cli.outputs.add("keyring get (bad variables)", r.output)
    assert r.returncode == 1 and "ignoring $PRIVPKG_CONNECTIONS" in r.output, r.describe()
    (rec,) = last(cli, 1)
    assert rec["reason"] == "no-match" and len(rec["errors"]) == 2, rec
    assert str(rec["errors"][0]).startswith(f"ignoring ${envvars.CONNECTIONS}: ")
    assert rec["errors"][1] == f'ignoring ${envvars.AZURE_ENDPOINTS[0]}: expected {{"endpointCredentials": [...]}}'
    text = cli.ok("doctor", "--last", "1")
    assert f"      warning: ignoring ${envvars.CONNECTIONS}: " in text
    assert f"      warning: ignoring ${envvars.AZURE_ENDPOINTS[0]}: " in text
    assert "hint: privpkg ignored what the warnings name (a connection may be there)" in text
    assert_no_secret((privpkg_home / lookuplog.LOG_NAME).read_text(), PAT)


def _fsize_zero() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # every write past byte 0 fails (EFBIG): a full disk


def test_read_only_or_full_state_dir_still_serves(venv_privpkg: Venv, make_env, checked_cli, privpkg_home: Path) -> None:
    cli = checked_cli(PAT)
    cli.ok("connection", "set", "feed", "--target", "https://h.example/org", stdin=PAT)
    url = "https://h.example/org/simple/"
    env = make_env()
    expected = {"username": "__token__", "password": PAT}

    with read_only(privpkg_home) as how:
        r = keyring_get(venv_privpkg, env, url)
        assert (privpkg_home / lookuplog.LOG_NAME).exists() is False, how
    assert r.returncode == 0 and json.loads(r.output) == expected, f"{how}: {r.describe()}"

    # An existing log in a read-only folder: rotation cannot rename, so the file is emptied (cap).
    log = privpkg_home / lookuplog.LOG_NAME
    log.write_bytes(b"x" * (lookuplog.MAX_BYTES - 10) + b"\n")
    log.chmod(0o600)
    with read_only(privpkg_home) as how:
        r = keyring_get(venv_privpkg, env, url)
    assert r.returncode == 0 and json.loads(r.output) == expected, f"{how}: {r.describe()}"
    if how == "chmod 0500":  # the file itself stays writable: emptied, then the new line
        assert [x["reason"] for x in lookuplog.read_last(5, log)] == ["match"]
    assert log.stat().st_size <= lookuplog.MAX_BYTES

    # A full disk: RLIMIT_FSIZE=0 (Python ignores SIGXFSZ, so the write fails with EFBIG).
    log.unlink()
    argv = [str(venv_privpkg.bin / "keyring"), "--mode=creds", "--output=json", "get", url]
    p = subprocess.run(argv, env=env, capture_output=True, text=True, preexec_fn=_fsize_zero, check=False, timeout=120)
    assert p.returncode == 0 and json.loads(p.stdout) == expected and p.stderr == "", p.stderr
    assert log.stat().st_size == 0

    # A symlink planted as the log: never followed, the lookup still served.
    victim = privpkg_home.parent / "victim"
    victim.write_text("keep\n")
    log.unlink()
    log.symlink_to(victim)
    r = keyring_get(venv_privpkg, env, url)
    assert r.returncode == 0 and json.loads(r.output) == expected, r.describe()
    assert victim.read_text() == "keep\n"
    cli.ok("doctor", "--last")  # checked_cli greps every output for the PAT


def test_cap_holds_with_the_keyring_cli(venv_privpkg: Venv, make_env, checked_cli, privpkg_home: Path) -> None:
    """A log at the cap is rotated to lookups.log.1 by the next lookup; doctor --last reads both."""
    cli = checked_cli(PAT)
    cli.ok("connection", "set", "feed", "--target", "https://h.example/org", stdin=PAT)
    log = privpkg_home / lookuplog.LOG_NAME
    old = json.dumps({"time": "2026-01-01T00:00:00Z", "service": "https://old.example/", "reason": "no-match", "served": False})
    log.write_text((old + "\n") * (lookuplog.MAX_BYTES // (len(old) + 1)))
    log.chmod(0o600)
    r = keyring_get(venv_privpkg, make_env(), "https://h.example/org/simple/")
    assert r.returncode == 0, r.describe()
    assert log.stat().st_size < 1000 and Path(f"{log}.1").stat().st_size <= lookuplog.MAX_BYTES
    recs = last(cli, 2)
    assert [x["service"] for x in recs] == ["https://old.example/", "https://h.example/org/simple/"]
    for _ in range(3):
        keyring_get(venv_privpkg, make_env(), "https://h.example/org/simple/")
    total = log.stat().st_size + Path(f"{log}.1").stat().st_size
    assert total <= 2 * lookuplog.MAX_BYTES
    assert_no_secret(log.read_text() + Path(f"{log}.1").read_text(), PAT)


_WRITER = """
import sys
from pathlib import Path
from privpkg import lookuplog
path, me, n, cap = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for i in range(n):
    line = '{"reason":"match","service":"%s-%d","pad":"%s"}\\n' % (me, i, me[-1] * (200 + 37 * (i % 20)))
    lookuplog.append(path, line.encode(), max_bytes=cap)
"""


@pytest.mark.integration
@pytest.mark.parametrize("cap", [10**9, 20_000], ids=["no-rotation", "rotating"])
def test_concurrent_appends_leave_whole_lines(tmp_path: Path, cap: int) -> None:
    """Six processes append at once (lines of 230 to 930 bytes); every line stays whole, and
    without rotation every line is there."""
    path = tmp_path / "state" / "lookups.log"
    writers, n = 6, 300
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), f"w{k}", str(n), str(cap)])
        for k in range(writers)
    ]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    lines = [ln for f in (Path(f"{path}.1"), path) if f.exists() for ln in f.read_text().splitlines()]
    recs = [json.loads(ln) for ln in lines]  # a torn or interleaved line fails here
    assert all(r["pad"] == r["service"].split("-")[0][-1] * len(r["pad"]) for r in recs)
    if cap > 10**8:
        assert len(recs) == writers * n
    else:
        # Writers that opened the file just before a rotation finish their line in it: a few over.
        assert path.stat().st_size <= cap + writers * 1000 and Path(f"{path}.1").stat().st_size <= cap + writers * 1000
