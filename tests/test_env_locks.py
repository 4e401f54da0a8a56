"""Environment locks (issue 10, item 3): ``pylock.toml`` made by real ``pip lock`` (the oldest pip
privpkg accepts, 25.1, and the newest) with the pip shim and the keyring backend, against the PAT
feed and a local workspace's ``privpkg://`` wheel; CEP 23 explicit lists solved by py-rattler from
loopback channels (a plain one, and the channel server demanding a PAT); the refusal rules (no
signature, password, ``file://`` URL or local path in a lock) and the upgrade rules (unpinned
requirements stay where the previous lock put them unless ``--upgrade`` / ``--package``).

Every lock and every output is grepped for the feeds' and channels' secrets.
"""

from __future__ import annotations

import functools
import hashlib
import json
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from support.builds import Venv
from support.cli import PrivpkgCLI, assert_one_error_line
from support.env import assert_no_secret
from support.feeds import FEED_A_PATH, FeedServer, ServedHTTP

from privpkg.environments import condalock, locking, pylock
from privpkg.errors import PrivpkgError, UsageError
from privpkg.testing import make_wheel

SHA = "ab" * 32
PRIVPKG_URL = "privpkg://default/wheels/demo_pkg-1.0-py3-none-any.whl"

# ------------------------------------------------------------------------------ pylock (unit)

LOCK = f'''lock-version = "1.0"
created-by = "test"

[[packages]]
name = "Zeta_Pkg"
version = "2.0"
marker = "sys_platform == 'nonesuch'"
[[packages.wheels]]
url = "https://files.example/zeta_pkg-2.0-py3-none-any.whl"
hashes = {{sha256 = "{SHA}"}}

[[packages]]
name = "native"
version = "1.0"
[packages.sdist]
url = "https://files.example/native-1.0.tar.gz"
hashes = {{sha256 = "{'cd' * 32}"}}
[[packages.wheels]]
url = "https://files.example/native-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
hashes = {{sha256 = "{'01' * 32}"}}
[[packages.wheels]]
url = "https://files.example/native-1.0-py3-none-any.whl"
hashes = {{sha256 = "{'02' * 32}"}}

[[packages]]
name = "demo-pkg"
[packages.archive]
url = "{PRIVPKG_URL}"
hashes = {{sha256 = "{SHA}"}}
'''

LINUX_311 = pylock.Target(("cp311-cp311-manylinux_2_17_x86_64", "py3-none-any"),
                          {"sys_platform": "linux", "python_full_version": "3.11.7", "python_version": "3.11"})


def test_select_picks_the_best_wheel_and_honours_markers() -> None:
    lock = pylock.load(LOCK)
    got = {a.name: a for a in lock.select(LINUX_311)}
    assert sorted(got) == ["demo-pkg", "native"]  # zeta's marker does not hold
    assert got["native"].filename == "native-1.0-cp311-cp311-manylinux_2_17_x86_64.whl" and got["native"].sha256 == "01" * 32
    assert got["demo-pkg"] == pylock.Artifact("demo-pkg", "1.0", PRIVPKG_URL, "demo_pkg-1.0-py3-none-any.whl", SHA, "wheel")
    # Another interpreter: the pure wheel; one with no matching tag at all: the sdist.
    pure = pylock.Target(("py3-none-any",), LINUX_311.environment)
    assert {a.name: a.filename for a in lock.select(pure)}["native"] == "native-1.0-py3-none-any.whl"
    none = pylock.Target(("py2-none-any",), LINUX_311.environment)
    with pytest.raises(UsageError, match="no artifact of demo-pkg"):
        lock.select(none)  # the privpkg:// wheel fits no py2 interpreter, and has no sdist
    assert lock.versions() == {"native": "1.0", "zeta-pkg": "2.0"}  # the privpkg:// one is pinned by the spec


def test_dump_is_canonical_and_round_trips() -> None:
    lock = pylock.load(LOCK)
    text = pylock.dump(lock)
    assert pylock.load(text) == lock and pylock.dump(pylock.load(text)) == text
    assert text.index('name = "demo-pkg"') < text.index('name = "native"') < text.index('name = "zeta-pkg"')
    # The same packages in another order give the same text (a lock "changes" only when its content does).
    blocks = LOCK.split("\n[[packages]]\n")
    shuffled = "\n[[packages]]\n".join([blocks[0], *reversed(blocks[1:])])
    assert pylock.dump(pylock.load(shuffled)) == text


def _with_url(url: str) -> str:
    return LOCK.replace(PRIVPKG_URL, url)


REFUSED = [
    (_with_url("https://acct.blob.core.windows.net/c/x-1.0-py3-none-any.whl?se=2030&sig=SIGVALUE123"), "signature (sig=)", "SIGVALUE123"),
    (_with_url("https://b.s3.amazonaws.com/x-1.0-py3-none-any.whl?X-Amz-Signature=AMZSIG456"), "X-Amz-Signature", "AMZSIG456"),
    (_with_url("https://__token__:PATVALUE789@feed.example/x-1.0-py3-none-any.whl"), "password in user info", "PATVALUE789"),
    (_with_url("https://user:@feed.example/x-1.0-py3-none-any.whl"), "password in user info", None),
    (_with_url("file:///home/me/wheels/x-1.0-py3-none-any.whl"), "a local file", None),
    (_with_url("ftp://files.example/x-1.0-py3-none-any.whl"), "not ftp", None),
    (LOCK.replace(f'url = "{PRIVPKG_URL}"', 'path = "/home/me/wheels/x-1.0-py3-none-any.whl"'), "a local path", None),
    (LOCK.replace("[packages.archive]", "vcs = {type = 'git', url = 'https://g.example/r'}\n[packages.archive]"), "vcs source", None),
    (LOCK.replace(f'hashes = {{sha256 = "{SHA}"}}\n', "", 1), "without a sha256", None),
    (LOCK + '\n[tool.demo]\nmirror = "https://u:TOOLPASS42@mirror.example/"\n', "password in user info", "TOOLPASS42"),
    ('lock-version = "2.0"\n', "is not 1.x", None),
    ("lock-version = \n", "not valid TOML", None),
]


@pytest.mark.parametrize(("text", "why", "secret"), REFUSED, ids=[r[1] for r in REFUSED])
def test_a_lock_holding_a_secret_or_a_local_file_is_refused_with_one_line(text: str, why: str, secret: str | None) -> None:
    with pytest.raises(UsageError) as info:
        pylock.load(text)
    message = str(info.value)
    assert why in message and "\n" not in message, message
    if secret:
        assert secret not in message


def test_a_username_without_a_password_is_stripped() -> None:
    lock = pylock.load(_with_url("https://__token__@feed.example/simple/demo_pkg-1.0-py3-none-any.whl"))
    text = pylock.dump(lock)
    assert "__token__" not in text and "https://feed.example/simple/demo_pkg-1.0-py3-none-any.whl" in text


def test_constraints_hold_the_previous_versions_unless_upgraded() -> None:
    prev = pylock.dump(pylock.load(LOCK))
    assert locking.constraints(["native", "zeta-pkg"], prev, False) == ["native==1.0", "zeta-pkg==2.0"]
    assert locking.constraints(["native"], prev, True) == []
    assert locking.constraints(["native"], prev, ["Zeta.Pkg"]) == ["native==1.0"]  # names compare canonically
    assert locking.constraints(["native>=1.1", "zeta-pkg<3"], prev, False) == ["zeta-pkg==2.0"]  # the spec moved native
    assert locking.constraints(["native @ https://x.example/native-1.0.tar.gz"], prev, False) == ["zeta-pkg==2.0"]
    assert locking.constraints(["native"], None, False) == []


def test_a_workspace_wheel_under_another_name_is_one_line() -> None:
    """pip itself stops on an AssertionError (a traceback) for this; privpkg says it first."""
    with pytest.raises(UsageError, match="that wheel is other-pkg's, not demo-pkg's"):
        locking.lock_pip(["demo-pkg @ privpkg://default/wheels/other_pkg-1.0-py3-none-any.whl"], python="/nonexistent")


# ------------------------------------------------------------------------------ conda (unit)


@pytest.mark.parametrize(("channel", "why", "secret"), [
    ("https://conda.example/t/TOKENVALUE42/private/", "a channel token (/t/...)", "TOKENVALUE42"),
    ("https://u:CHANPASS42@conda.example/private/", "password in user info", "CHANPASS42"),
    ("file:///srv/channel", "not a local file", None),
    ("/srv/channel", "not a local file", None),
    ("https://conda.example/c/?sig=CHANSIG42", "signature (sig=)", "CHANSIG42"),
])
def test_a_channel_with_a_secret_or_a_local_path_is_refused(channel: str, why: str, secret: str | None) -> None:
    with pytest.raises(UsageError) as info:
        condalock.lock_conda([channel], ["python"])
    message = str(info.value)
    assert why in message and "\n" not in message, message
    if secret:
        assert secret not in message


def test_explicit_lists_are_read_back_and_screened() -> None:
    good = f"# platform: linux-64\n@EXPLICIT\nhttps://h.example/c/noarch/pip-26.3-py_0.conda#sha256:{SHA}\n"
    assert condalock.load_explicit(good) == [pylock.Artifact("pip", "26.3", "https://h.example/c/noarch/pip-26.3-py_0.conda",
                                                             "pip-26.3-py_0.conda", SHA, "conda")]
    for bad in (good.replace("https://h.example", "file://"), good.replace("https://", "https://u:p@"),
                good.replace("@EXPLICIT\n", ""), good.replace(f"#sha256:{SHA}", "")):
        with pytest.raises(UsageError, match=r"conda lock, line [23]: "):
            condalock.load_explicit(bad)


# ------------------------------------------------------------------------------ pip lock, for real

WHEEL_A10 = "pkg_a-1.0-py3-none-any.whl"


@pytest.fixture(params=["pip==25.1", "newest"])
def locker(request: pytest.FixtureRequest) -> Venv:
    """privpkg installed beside the oldest pip it accepts (25.1, the first with ``pip lock``) and
    beside the newest (the shared venv_privpkg: pip >= 26.2, 26.3 here)."""
    if request.param == "newest":
        venv: Venv = request.getfixturevalue("venv_privpkg")
    else:
        venv = request.getfixturevalue("compat_venv")(request.param, how="in-env")
    return venv


def _setup(feed: FeedServer, cli: PrivpkgCLI, store_connection: Any, tmp_path: Path, extra: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """The PAT feed's connection, demo-pkg 1.0 published in the local workspace, and a definition
    directory whose pip part needs both (the index URL carries the ``__token__@`` username uv
    needs, which must not reach the lock)."""
    store_connection("orgA", f"{feed.base}/orgA", feed.secret_a)
    wheel = make_wheel(tmp_path / "wheels", "demo-pkg", "1.0")
    assert cli.ok("wheel", "add", wheel).strip() == PRIVPKG_URL
    index = feed.index_a.replace("http://", "http://__token__@")
    definition = tmp_path / "demo"
    definition.mkdir()
    pip = [f"--index-url {index}", "pkg-a", f"demo-pkg @ {PRIVPKG_URL}", *extra]
    (definition / "definition.json").write_text(json.dumps({"format": 1, "name": "demo", "pip": pip}))
    return definition, wheel


def _lock(cli: PrivpkgCLI, venv: Venv, *args: str | Path) -> Any:
    """``privpkg env lock`` run by ``venv``'s interpreter (so its pip locks, with its shim)."""
    return cli.tool([venv.python, "-m", "privpkg", "env", "lock", *args])


def test_pip_lock_records_privpkg_wheels_and_plain_feed_urls(locker, feed, checked_cli, store_connection, tmp_path) -> None:
    cli = checked_cli(*feed.secrets)
    definition, wheel = _setup(feed, cli, store_connection, tmp_path)
    r = _lock(cli, locker, definition)
    assert r.returncode == 0 and "demo: locked pylock.toml (2 packages)" in r.output, r.describe()
    text = (definition / "pylock.toml").read_text()
    cli.outputs.add("pylock.toml", text)
    assert_no_secret(text, *feed.secrets)
    assert "@" not in text and "sig=" not in text and "file:" not in text, text
    arts = {a.name: a for a in pylock.load(text).select()}
    assert arts["demo-pkg"].url == PRIVPKG_URL and arts["demo-pkg"].sha256 == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert arts["pkg-a"].url == f"{feed.index_a}pkg-a/{WHEEL_A10}", arts["pkg-a"]
    # The PAT came from privpkg's keyring backend (the first request carried the bare __token__ username).
    feed.assert_challenged_then_authorized(FEED_A_PATH, WHEEL_A10, anonymous=False)
    # Unchanged: no new version, nothing rewritten.
    before = (definition / "pylock.toml").stat().st_mtime_ns
    r = _lock(cli, locker, definition)
    assert r.returncode == 0 and "the lock is unchanged, no new version" in r.output, r.describe()
    assert (definition / "pylock.toml").stat().st_mtime_ns == before


def test_unpinned_requirements_move_only_when_upgraded(venv_privpkg, feed, checked_cli, store_connection, tmp_path) -> None:
    cli = checked_cli(*feed.secrets)
    definition, _ = _setup(feed, cli, store_connection, tmp_path)
    assert _lock(cli, venv_privpkg, definition).returncode == 0

    def version() -> str:
        return {a.name: a.version for a in pylock.load((definition / "pylock.toml").read_text()).select()}["pkg-a"]

    assert version() == "1.0"
    make_wheel(tmp_path / "feed" / "a", "pkg-a", "1.1")  # the feed fixture serves tmp_path/feed/a
    r = _lock(cli, venv_privpkg, definition)
    assert "unchanged" in r.output and version() == "1.0", r.describe()
    r = _lock(cli, venv_privpkg, definition, "--package", "demo-pkg")
    assert "unchanged" in r.output and version() == "1.0", r.describe()  # another package named: pkg-a stays
    r = _lock(cli, venv_privpkg, definition, "--package", "PKG_A")
    assert r.returncode == 0 and "locked" in r.output and version() == "1.1", r.describe()
    (definition / "pylock.toml").write_text((definition / "pylock.toml").read_text().replace("1.1", "1.0").replace(
        hashlib.sha256((tmp_path / "feed" / "a" / "pkg_a-1.1-py3-none-any.whl").read_bytes()).hexdigest(),
        hashlib.sha256((tmp_path / "feed" / "a" / WHEEL_A10).read_bytes()).hexdigest()))
    assert version() == "1.0"
    r = _lock(cli, venv_privpkg, definition, "--upgrade")
    assert r.returncode == 0 and "locked" in r.output and version() == "1.1", r.describe()
    # The issue's own syntax, `--upgrade --package P`: P only (as `--package P` alone; not all).
    make_wheel(tmp_path / "feed" / "a", "pkg-a", "1.2")
    r = _lock(cli, venv_privpkg, definition, "--upgrade", "--package", "demo-pkg")
    assert "unchanged" in r.output and version() == "1.1", r.describe()
    r = _lock(cli, venv_privpkg, definition, "--upgrade", "--package", "demo-pkg", "--package", "pkg-a")
    assert r.returncode == 0 and "locked" in r.output and version() == "1.2", r.describe()


def test_uv_locks_read_as_pip_locks(venv_privpkg, uv_bin, uv_cache, feed, checked_cli, store_connection, tmp_path) -> None:
    """uv is not privpkg's locker (it refuses privpkg:// URLs), but a pylock.toml uv made from the
    PAT feed (its inline-table form, no file names, ``requires-python``) reads to the same
    artifacts as pip's, for this interpreter and, with ``--python-platform``, for another."""
    cli = checked_cli(*feed.secrets)
    definition, _ = _setup(feed, cli, store_connection, tmp_path)
    assert _lock(cli, venv_privpkg, definition).returncode == 0
    by_pip = {a.name: a for a in pylock.load((definition / "pylock.toml").read_text()).select()}
    (tmp_path / "in.txt").write_text("pkg-a\n")
    env = {**cli.env, "PATH": f"{venv_privpkg.bin}:{cli.env['PATH']}"}  # uv asks privpkg's keyring CLI
    index = feed.index_a.replace("http://", "http://__token__@")
    for extra, target in (([], None), (["--python-platform", "aarch64-apple-darwin", "--python-version", "3.12"],
                                       pylock.Target(("py3-none-any",), {"python_full_version": "3.12.0", "sys_platform": "darwin"}))):
        out = tmp_path / "pylock.uv.toml"
        r = cli.tool([uv_bin, "pip", "compile", "--no-config", "--cache-dir", uv_cache, "--keyring-provider", "subprocess",
                      "--index-url", index, "--format", "pylock.toml", *extra, tmp_path / "in.txt", "-o", out], env=env)
        assert r.returncode == 0, r.describe()
        text = out.read_text()
        cli.outputs.add("uv's pylock.toml", text)
        assert "__token__" not in text
        assert pylock.load(text).select(target) == [by_pip["pkg-a"]]


def test_a_lock_naming_a_local_file_is_refused(venv_privpkg, feed, checked_cli, store_connection, tmp_path) -> None:
    """pip records a ``file://`` requirement (or a --find-links folder) as it is: the lock is
    refused with one line, and nothing is written."""
    cli = checked_cli(*feed.secrets)
    local = make_wheel(tmp_path / "local", "local-pkg", "1.0")
    definition, _ = _setup(feed, cli, store_connection, tmp_path, (f"local-pkg @ {local.as_uri()}",))
    r = _lock(cli, venv_privpkg, definition)
    line = assert_one_error_line(_as_completed(r), 2)
    assert "names a local path or an editable install" in line, line  # refused before pip runs
    assert not (definition / "pylock.toml").exists()


def test_a_lock_pip_makes_from_a_local_find_links_folder_is_refused(venv_privpkg, feed, checked_cli, store_connection, tmp_path) -> None:
    """The spec is clean (``local-pkg``, unpinned), but pip's own configuration
    (``PIP_FIND_LINKS=FOLDER``) makes it find the package on disk, so ``pip lock`` writes a
    ``file://`` URL: the lock is refused with one line after pip ran, and nothing is registered
    (``env register``) or written (``env lock DIR``)."""
    cli = checked_cli(*feed.secrets)
    folder = tmp_path / "local"
    make_wheel(folder, "local-pkg", "1.0")
    definition, _ = _setup(feed, cli, store_connection, tmp_path, ("local-pkg",))
    env = {**cli.env, "PIP_FIND_LINKS": str(folder)}
    for args in (("env", "register", definition), ("env", "lock", definition)):
        r = cli.tool([venv_privpkg.python, "-m", "privpkg", *args], env=env)
        line = assert_one_error_line(_as_completed(r), 2)
        assert "the lock would hold a local file" in line, line
        assert "names a local path or an editable install" not in line, line  # not the spec rule: the lock's
    assert not (definition / "pylock.toml").exists()
    assert json.loads(cli.ok("env", "list", "--json")) == []


def _as_completed(r: Any) -> Any:
    """A support.env.Result as the subprocess.CompletedProcess assert_one_error_line reads
    (stderr only: pip's own output went to the captured pipe, so the command prints one line)."""
    import subprocess

    return subprocess.CompletedProcess(r.cmd, r.returncode, "", r.output)


def test_lock_without_pip_lock_is_one_line(tmp_path: Path) -> None:
    """privpkg's interpreter without pip >= 25.1 (this dev venv has no pip; the test's
    interpreter is asked, as the CLI would be): one line naming the fix."""
    old = tmp_path / "python"
    old.write_text("#!/bin/sh\necho 'pip 24.0 from /x (python 3.11)'\n")
    old.chmod(0o755)
    with pytest.raises(PrivpkgError, match=r"needs pip >= 25.1 \(pip lock\) beside privpkg, found pip 24.0"):
        locking.lock_pip(["pkg-a"], python=str(old))


# ------------------------------------------------------------------------------ conda, for real


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.integration
def test_conda_explicit_lock_from_a_loopback_channel() -> None:
    """The tests' cached channel (this machine's python, pip) over plain loopback http: one line
    per package, URL#sha256 of the very file served, dependencies first."""
    from support.conda_channel import build_channel

    channel = build_channel([])
    server = ServedHTTP(functools.partial(_Quiet, directory=str(channel.path)))
    try:
        files = condalock.lock_conda([server.base], ["pip"])
    finally:
        server.stop()
    name = condalock.file_name(condalock.current_platform())
    assert list(files) == [name]
    lines = files[name].splitlines()
    assert lines[0] == f"# platform: {condalock.current_platform()}" and "@EXPLICIT" in lines
    arts = condalock.load_explicit(files[name])
    assert [a.name for a in arts] == ["python", "pip"], files[name]  # pip depends on python: python first
    for a in arts:
        rel = a.url.removeprefix(server.base + "/")
        assert hashlib.sha256((channel.path / rel).read_bytes()).hexdigest() == a.sha256


def test_conda_lock_of_a_private_channel(channel_server, checked_cli, tmp_path) -> None:
    """A channel demanding a PAT: the CondaChannel connection answers it, the lock holds the
    plain channel URL, the previous build stays until --upgrade, and without the connection the
    command says which connection to add, in one line."""
    secret = channel_server.secrets["basic"]
    cli = checked_cli(*channel_server.secrets.values())
    url = channel_server.url("basic")
    definition = tmp_path / "tools"
    definition.mkdir()

    def write(deps: list[str]) -> None:
        (definition / "definition.json").write_text(json.dumps({"format": 1, "name": "tools", "conda": {"channels": [url], "dependencies": deps}}))

    write(["privtool"])
    lock_file = definition / condalock.file_name(condalock.current_platform())
    res = cli("env", "lock", definition)
    line = assert_one_error_line(res, 1)
    assert "connection" in line and not lock_file.exists(), line
    cli.ok("connection", "set", "chan", "--category", "CondaChannel", "--target", url, stdin=secret)
    write(["privtool==1.0"])
    assert "locked conda-" in cli.ok("env", "lock", definition)
    write(["privtool"])  # unpinned now: stays at 1.0
    assert "unchanged" in cli.ok("env", "lock", definition)
    text = lock_file.read_text()
    cli.outputs.add("conda lock", text)
    assert [(a.name, a.version) for a in condalock.load_explicit(text)] == [("privtool", "1.0")]
    assert text.count(f"{url}noarch/privtool-1.0-0.tar.bz2#sha256:") == 1, text
    assert "locked conda-" in cli.ok("env", "lock", definition, "--upgrade")
    text = lock_file.read_text()
    cli.outputs.add("conda lock", text)
    assert [(a.name, a.version) for a in condalock.load_explicit(text)] == [("privtool", "1.1")]
    assert "@" not in text.replace("@EXPLICIT", "")
    assert_no_secret(text, secret)
    # Another platform on request (noarch packages solve anywhere; no virtual packages there).
    spec = json.loads((definition / "definition.json").read_text())
    (definition / "definition.json").write_text(json.dumps({**spec, "platforms": [condalock.current_platform(), "osx-arm64"]}))
    assert "unchanged" not in cli.ok("env", "lock", definition)
    other = (definition / "conda-osx-arm64.txt").read_text()
    assert other.startswith("# platform: osx-arm64\n") and [a.version for a in condalock.load_explicit(other)] == ["1.1"]
    assert lock_file.read_text() == text  # the first platform's lock did not move


def test_other_conda_platforms_on_request(channel_server, checked_cli, tmp_path) -> None:
    """Other platforms without editing definition.json: environment.yml's ``platforms:``
    (conda-lock's key) and ``env create --platform`` are stored in the definition; ``env lock``
    locks them besides this machine's, and ``env lock --platform P`` adds P (kept in the
    definition, in a directory and as a registered version's). A pip part with another platform
    is one line; so is a name that is no conda platform. The Python API takes ``platforms``."""
    import privpkg

    secret = channel_server.secrets["basic"]
    cli = checked_cli(*channel_server.secrets.values())
    url = channel_server.url("basic")
    cli.ok("connection", "set", "chan", "--category", "CondaChannel", "--target", url, stdin=secret)
    here = condalock.current_platform()
    yml = tmp_path / "environment.yml"
    yml.write_text(f"channels: [{url}]\ndependencies: [privtool]\nplatforms: [osx-arm64]\n")
    d = tmp_path / "tools"
    cli.ok("env", "create", "tools", "--file", yml, "--platform", "win-64", "-o", d)
    assert json.loads((d / "definition.json").read_text())["platforms"] == ["osx-arm64", "win-64"]
    assert "locked conda-" in cli.ok("env", "lock", d)
    locks = sorted(p.name for p in d.glob("conda-*.txt"))
    assert locks == sorted(condalock.file_name(p) for p in {here, "osx-arm64", "win-64"}), locks
    for p in ("osx-arm64", "win-64"):
        text = (d / condalock.file_name(p)).read_text()
        cli.outputs.add("conda lock", text)
        assert text.startswith(f"# platform: {p}\n") and [a.name for a in condalock.load_explicit(text)] == ["privtool"]
    assert "unchanged" in cli.ok("env", "lock", d, "--platform", "win-64")  # already there: nothing moves
    assert "locked conda-" in cli.ok("env", "lock", d, "--platform", "linux-aarch64")
    assert json.loads((d / "definition.json").read_text())["platforms"] == ["linux-aarch64", "osx-arm64", "win-64"]
    assert (d / "conda-linux-aarch64.txt").is_file() and "unchanged" in cli.ok("env", "lock", d)  # kept by later locks
    # A registered version: --platform makes the next version, whose definition names it.
    cli.ok("workspace", "add", "ws", "--local", tmp_path / "ws")
    assert "registered tools:1" in cli.ok("env", "register", d, "-w", "ws")
    assert "registered as tools:2" in cli.ok("env", "lock", "tools", "--platform", "osx-64", "-w", "ws")
    shown_ = json.loads(cli.ok("env", "show", "tools:2", "-w", "ws", "--json"))
    assert shown_["definition"]["platforms"] == ["linux-aarch64", "osx-64", "osx-arm64", "win-64"]
    assert "conda-osx-64.txt" in shown_["files"]
    # A pip part cannot be locked for another platform (pip lock has no --platform): one line.
    (tmp_path / "requirements.txt").write_text("requests\n")
    # Refused when the definition is made, and when a lock is asked for that platform.
    cli.fails(2, "env", "create", "web", "--requirements", tmp_path / "requirements.txt", "--platform", "osx-arm64", "-o",
              tmp_path / "web", match="pip lock has no --platform")
    assert not (tmp_path / "web").exists()
    cli.ok("env", "create", "web", "--requirements", tmp_path / "requirements.txt", "-o", tmp_path / "web")
    cli.fails(2, "env", "lock", tmp_path / "web", "--platform", "osx-arm64", match="pip lock has no --platform")
    assert not (tmp_path / "web" / "pylock.toml").exists()
    cli.fails(2, "env", "create", "bad", "--file", yml, "--platform", "noarch", "-o", tmp_path / "bad", match="not a conda platform")
    cli.fails(2, "env", "lock", d, "--platform", "../x", match="not a conda platform")
    yml.write_text(f"channels: [{url}]\ndependencies: [privtool]\nplatforms: linux-64\n")
    cli.fails(2, "env", "create", "bad", "--file", yml, "-o", tmp_path / "bad", match="platforms must be a list")
    assert not (tmp_path / "bad").exists()
    # The Python API: platforms where it makes specs, added to the file's own.
    (tmp_path / "api.yml").write_text(f"channels: [{url}]\ndependencies: [privtool]\nplatforms: [osx-arm64]\n")
    env = privpkg.Environment.from_conda_specification("api", tmp_path / "api.yml", platforms=["win-64"])
    assert env.spec.platforms == ("osx-arm64", "win-64") and env.spec.definition()["platforms"] == ["osx-arm64", "win-64"]
    assert privpkg.Environment.from_pip_requirements("r", tmp_path / "requirements.txt", platforms=["osx-arm64"]).spec.platforms == ("osx-arm64",)
    with pytest.raises(UsageError, match="not a conda platform"):
        privpkg.Environment.from_pip_requirements("r", tmp_path / "requirements.txt", platforms=["noarch"])


def test_env_lock_bad_input_is_one_line(checked_cli, tmp_path) -> None:
    cli = checked_cli()
    cli.fails(2, "env", "lock", tmp_path / "nope", match="no such definition directory")  # a missing input: usage
    cli.fails(1, "env", "lock", "nope", match="no environment 'nope' in workspace 'default'")  # a name: the registry's
    assert not list(tmp_path.glob("**/.privpkg-env-lock"))
    bad = tmp_path / "bad"
    bad.mkdir()
    cli.fails(2, "env", "lock", bad, match="has no definition.json")
    (bad / "definition.json").write_text("{not json")
    cli.fails(2, "env", "lock", bad, match="is not JSON")
    (bad / "definition.json").write_text('{"format": 1, "name": "bad", "pip": []}')
    cli.fails(2, "env", "lock", bad, match="nothing to lock")
    (bad / "definition.json").write_text('{"format": 1, "name": "bad", "conda": {"channels": ["https://u:CHANPASS-9f8e7d@conda.example/c/"], "dependencies": ["x"]}}')
    line = cli.fails(2, "env", "lock", bad, match="password in user info")
    assert "CHANPASS" not in line
    cli.fails(2, "env", "lock", bad, "--upgrade", "--package", "x", match="password in user info")  # the syntax is accepted
    assert sorted(p.name for p in bad.iterdir() if not p.name.startswith(".")) == ["definition.json"]


def test_env_lock_of_a_registered_environment_makes_a_version_only_when_the_lock_moves(
        venv_privpkg, feed, checked_cli, store_connection, tmp_path) -> None:
    """``env register`` locks a created definition (version 1); ``env lock NAME`` with nothing
    moved makes no version; after a newer pkg-a appears on the feed, ``env lock NAME --upgrade``
    registers version 2, whose lock holds it and no secret."""
    cli = checked_cli(*feed.secrets)
    definition, _ = _setup(feed, cli, store_connection, tmp_path)
    pip = json.loads((definition / "definition.json").read_text())["pip"]
    (tmp_path / "requirements.txt").write_text("".join(line + "\n" for line in pip))

    def privpkg(*args: str | Path) -> Any:  # run by venv_privpkg: its pip >= 25.1 locks, with its shim
        r = cli.tool([venv_privpkg.python, "-m", "privpkg", *args])
        assert r.returncode == 0, r.describe()
        return r.output

    privpkg("env", "create", "demo", "--requirements", tmp_path / "requirements.txt", "-o", tmp_path / "demo-def")
    assert "demo:1" in privpkg("env", "register", tmp_path / "demo-def")
    make_wheel(tmp_path / "feed" / "a", "pkg-a", "1.1")  # the feed fixture serves tmp_path/feed/a
    assert "the lock is unchanged, no new version" in privpkg("env", "lock", "demo")
    out = privpkg("env", "lock", "demo:1", "--upgrade")
    assert "demo:1: locked pylock.toml (2 packages); registered as demo:2" in out, out
    # Read back as another process would, in the CLI's environment (its PRIVPKG_HOME).
    read = ("import json, sys; from privpkg.environments import registry; from privpkg.environments.api import open_registry; "
            "store = open_registry('default')[1]; old, new = registry.get(store, 'demo', 1), registry.get(store, 'demo', 2); "
            "print(json.dumps([old.spec == new.spec, new.locks['pylock.toml']]))")
    same_spec, lock = json.loads(privpkg_python(cli, venv_privpkg, read))
    assert same_spec
    versions = {a.name: a.version for a in pylock.load(lock).select()}
    assert versions["pkg-a"] == "1.1", versions
    cli.outputs.add("demo:2's pylock.toml", lock)


def privpkg_python(cli: PrivpkgCLI, venv: Venv, code: str) -> str:
    r = cli.tool([venv.python, "-c", code])
    assert r.returncode == 0, r.describe()
    return str(r.output).strip().splitlines()[-1]
