"""Builds, the cache and Docker images against the audit of 2026-11-22: each test failed on main
at b159805 (the proof of concept; "FAILS-ON-MAIN" in the docstrings) and states the rule it
expects. What that audit found and is not fixed yet is in the session note, not here."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from privpkg.cli import main
from privpkg.testing import make_wheel

SHA = "a" * 64


def _cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    got = capsys.readouterr()
    return code, got.out, got.err


def _team_wheel(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> tuple[Path, str, str]:
    assert _cli(capsys, "workspace", "add", "team", "--local", tmp_path / "ws")[0] == 0
    whl = make_wheel(tmp_path / "dist", "team-lib", "1.0")
    code, out, err = _cli(capsys, "wheel", "add", whl, "--workspace", "team")
    assert code == 0, err
    return whl, out.strip().splitlines()[-1], hashlib.sha256(whl.read_bytes()).hexdigest()


def _lock(url: str, sha: str, version: str, marker: str = "") -> str:
    return (f'lock-version = "1.0"\ncreated-by = "poc"\n[[packages]]\nname = "team-lib"\nversion = {version}\n{marker}'
            f'[packages.archive]\nurl = "{url}"\nhashes = {{sha256 = "{sha}"}}\n')


# --------------------------------------------------------------------- 1. version injection


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_lock_version_cannot_inject_a_requirements_line(isolated_privpkg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        installer: str) -> None:
    """FAILS-ON-MAIN (pip): a lock's version "1.0\\n-r FILE" makes the installer read FILE as
    requirements; pip's error, which privpkg prints as its one line, quotes FILE's first line
    (a netrc's password here). A registered lock (someone else's) can do this to whoever builds it."""
    _, url, sha = _team_wheel(capsys, tmp_path)
    netrc = tmp_path / "home" / ".netrc"
    netrc.write_text("machine feed.example login __token__ password NETRC-PAT-0123456789\n")
    lock = tmp_path / "pylock.toml"
    lock.write_text(_lock(url, sha, f'"1.0\\n-r {netrc}\\n#"'))
    code, out, err = _cli(capsys, "env", "build", "--lock", lock, "--installer", installer)
    assert "NETRC-PAT-0123456789" not in out + err
    assert code == 2 and "version" in err, err  # refused before any installer runs


def test_lock_version_cannot_drop_a_package_from_the_build(isolated_privpkg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """FAILS-ON-MAIN: version "1.0 ; python_version < '0'" turns the installer's line into one
    whose marker is false: the build 'succeeds' without the package, is published and cached.
    (A privpkg:// wheel is caught by accident: its direct_url.json finds no .dist-info; a feed
    or public wheel, as here on a loopback server, is not.)"""
    import functools
    from http.server import SimpleHTTPRequestHandler

    from support.feeds import ServedHTTP

    whl = make_wheel(tmp_path / "files", "pub-lib", "1.0")
    sha = hashlib.sha256(whl.read_bytes()).hexdigest()
    server = ServedHTTP(functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "files")))
    try:
        lock = tmp_path / "pylock.toml"
        lock.write_text(_lock(f"{server.base}/{whl.name}", sha, "\"1.0 ; python_version < '0'\"").replace("team-lib", "pub-lib"))
        code, out, err = _cli(capsys, "env", "build", "--lock", lock)
    finally:
        server.stop()
    if code == 0:
        env = Path(out.strip())
        assert list(env.glob("lib/python*/site-packages/pub_lib-1.0.dist-info")), "published a build without the lock's package"
    else:
        assert code == 2 and "Traceback" not in err


# --------------------------------------------------------------------- 2. bad input


def test_invalid_marker_is_one_line(isolated_privpkg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """FAILS-ON-MAIN: packaging's InvalidMarker escapes main() (a traceback)."""
    lock = tmp_path / "pylock.toml"
    lock.write_text(_lock("https://h.example/team_lib-1.0-py3-none-any.whl", SHA, '"1.0"', 'marker = "garbage ==="\n'))
    for argv in (("env", "build", "--lock", lock), ("env", "dockerfile", "--lock", lock, "-o", tmp_path / "ctx")):
        code, _, err = _cli(capsys, *argv)  # main() raises on main: the test errors there
        assert code == 2 and len(err.strip().splitlines()) == 1, err


# --------------------------------------------------------------------- 3. Docker lint


@pytest.mark.parametrize("text", [
    "FROM x\narg FEED_TOKEN\n",
    "FROM x\nenv NPM_TOKEN=abc\n",
    "FROM x\nrun --mount=type=secret,id=n cat /run/secrets/n > /f\n",
    "FROM x\ncopy .netrc /root/\n",
    "FROM x\nOnBuild ENV GH_TOKEN=abc\n",
])
def test_lint_is_case_insensitive_as_buildkit_is(text: str) -> None:
    """FAILS-ON-MAIN: BuildKit's instructions are case-insensitive; the lint compares c.cmd with
    upper-case names, so every lower-case ARG/ENV/COPY/RUN passes --check."""
    from privpkg.environments.dockerlint import check

    assert check(text, secrets={}), text


@pytest.mark.parametrize("text", [
    "FROM x\nRUN --mount=type=secret,id=tok,env=TOK sh -c 'echo $TOK > /f'\n",
    "FROM x\nRUN --mount=type=secret,id=n F=/run/secrets/n sh -c 'cat $F > /f'\n",
    "FROM x\nARG AZURE_STORAGE_KEY\n",
    "FROM x\nARG AZURE_STORAGE_CONNECTION_STRING\n",
    "FROM x\nCOPY <<EOF /root/.netrc\nmachine h login u password p\nEOF\n",
])
def test_lint_evasions(text: str) -> None:
    """FAILS-ON-MAIN (each): a secret mount's env= form, a secret path handed over as NAME=PATH
    and then copied, Azure's own secret variable names, a heredoc writing a netrc."""
    from privpkg.environments.dockerlint import check

    assert check(text, secrets={}), text


# --------------------------------------------------------------------- 4. cache


def test_cache_dir_is_private(isolated_privpkg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """FAILS-ON-MAIN: the cache (private wheels in wheels/, venvs in builds/, registry copies)
    is made with the umask's modes (0755/0644): other local users read the private packages."""
    _, url, sha = _team_wheel(capsys, tmp_path)
    lock = tmp_path / "pylock.toml"
    lock.write_text(_lock(url, sha, '"1.0"'))
    old = os.umask(0o022)
    try:
        code, _, err = _cli(capsys, "env", "build", "--lock", lock)
    finally:
        os.umask(old)
    assert code == 0, err
    envs = isolated_privpkg / "cache" / "envs"
    assert stat.S_IMODE(envs.stat().st_mode) & 0o077 == 0 or stat.S_IMODE(envs.parent.stat().st_mode) & 0o077 == 0


@pytest.mark.parametrize("path", ["orgA/..%2forgB/x-1.0-py3-none-any.whl", "orgA/..;/orgB/x-1.0-py3-none-any.whl"])
def test_fetch_refuses_paths_a_server_may_resolve_outside_the_connection(isolated_privpkg: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """FAILS-ON-MAIN (hardening, low): the lookup keeps %2F and ';' inside a segment, so orgA's
    connection answers /orgA/..%2forgB/ and /orgA/..;/orgB/, which nginx (decodes %2F, then
    dot-segments) and Tomcat/Jetty (Artifactory, Nexus: '..;' is '..') resolve under /orgB/.
    A lock needs neither: fetch should refuse such a URL before sending orgA's secret."""
    import json

    from privpkg import envvars
    from privpkg.environments.fetch import fetch_artifacts
    from privpkg.environments.pylock import Artifact
    from privpkg.errors import UsageError

    monkeypatch.setenv(envvars.CONNECTIONS, json.dumps([{"name": "a", "target": "https://127.0.0.1:9/orgA/", "secret": "s3cr3t-PAT-xxxxxxxx"}]))
    a = Artifact("x", "1.0", f"https://127.0.0.1:9/{path}", "x-1.0-py3-none-any.whl", SHA, "wheel")
    with pytest.raises(UsageError):  # on main: a PrivpkgError "cannot reach", after building orgA's header
        fetch_artifacts([a], tmp_path / "wh")


def test_registered_lock_that_is_not_utf8_is_one_line(isolated_privpkg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """FAILS-ON-MAIN (low): lock_of_version/_registered_lock .decode() a lock file written to the
    workspace by something other than privpkg (record and file consistent): UnicodeDecodeError."""
    from privpkg.access import open_workspace_storage
    from privpkg.environments import registry
    from privpkg.environments.spec import Spec, canonical_json
    from privpkg.workspace import get_workspace

    assert main(["workspace", "add", "w2", "--local", str(tmp_path / "ws2")]) == 0
    store = open_workspace_storage(get_workspace("w2"))
    files = {"definition.json": Spec("bin", pip=("x",)).definition_bytes(), "pylock.toml": b"\xff\xfe not text"}
    store.put_bytes("environments/bin/1/version.json", canonical_json(registry._record("bin", 1, files)))
    for p, d in files.items():
        store.put_bytes(f"environments/bin/1/{p}", d)
    code, _, err = _cli(capsys, "env", "build", "bin", "--workspace", "w2")
    assert code in (1, 2) and len(err.strip().splitlines()) == 1, err


def test_secret_mount_refuses_what_the_host_fetch_refuses(isolated_privpkg: Path, tmp_path: Path) -> None:
    """FAILS-ON-MAIN: --secret-mount hands the lock's feed URLs to pip in the build unchecked: a
    plain-http non-loopback URL (the netrc's password in clear) or a URL with a query."""
    from privpkg.environments import docker
    from privpkg.environments.pylock import Artifact
    from privpkg.errors import UsageError

    for url in ("http://feed.example/org/a-1.0-py3-none-any.whl", "https://feed.example/org/a-1.0-py3-none-any.whl?token=x"):
        a = Artifact("a", "1.0", url, "a-1.0-py3-none-any.whl", SHA, "wheel")
        with pytest.raises(UsageError):
            docker.dockerfile([a], tmp_path / "ctx", base_image="python@sha256:" + "c" * 64, secret_mount=True)


def test_prune_never_removes_a_build_published_while_it_runs(isolated_privpkg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FAILS-ON-MAIN: prune reads the pointers first, then removes every build they did not name
    whose lock is free. A build published (and its lock released) in between is removed under
    the pointer that names it, after `env build` printed its path."""
    from privpkg import fileio
    from privpkg.environments import cache

    key = "e" * 64
    dest = cache.root() / "builds" / f"{key[:16]}-justbuilt"
    dest.mkdir(parents=True)  # complete: its builder is about to publish it and release its lock
    real = fileio.file_lock

    def racing_lock(path: Path, timeout: float | None = None):  # type: ignore[no-untyped-def]
        if path.name == f"build-{dest.name}.lock" and cache.lookup(key) is None:
            cache.publish(key, dest)  # the builder publishes between prune's two steps
        return real(path, timeout=timeout)

    monkeypatch.setattr(fileio, "file_lock", racing_lock)
    cache.prune()
    assert cache.lookup(key) == dest, "prune removed a build its pointer names"


def test_prune_older_than_is_a_number_of_days(isolated_privpkg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--older-than nan`` was accepted and pruned nothing: one line, exit 2."""
    code, _, err = _cli(capsys, "env", "prune", "--older-than", "nan")
    assert code == 2 and err.strip() == "privpkg: error: --older-than must be 0 or more days, got nan", err


def test_a_memo_that_cannot_be_written_never_fails_a_build(isolated_privpkg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The memo is a shortcut (it spares a hit the lock's parse): a full disk or a read-only
    cache there must not fail a build, a hit least of all. (A stand-in write_atomic raises the
    OSError a full disk gives: no real full disk can be made here.)"""
    from privpkg import fileio
    from privpkg.environments import cache

    def full(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio, "write_atomic", full)
    cache.memo_put("0" * 64, "1" * 64)
    assert cache.memo_get("0" * 64) is None


def test_installers_run_without_privpkg_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """uv and pip install files privpkg fetched and checked: they get no connection source, no
    store key and no storage secret in their environment (a real child process writes what it
    got)."""
    from privpkg import envvars
    from privpkg.environments import build

    monkeypatch.setenv(envvars.CONNECTIONS, '[{"name": "c", "secret": "conn-secret-1234"}]')
    monkeypatch.setenv(envvars.MASTER_KEY, "master-key-1234")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-1234")
    monkeypatch.setenv("AZURE_STORAGE_KEY", "azure-key-1234")
    out = tmp_path / "env.txt"
    build._run(["sh", "-c", f"env > {out}"], "the installer")
    got = out.read_text()
    assert "PATH=" in got
    assert not any(s in got for s in ("conn-secret-1234", "master-key-1234", "aws-secret-1234", "azure-key-1234")), got
