"""``privpkg setup uv``: the real uv (the test extra's) reads the uv.toml it wrote and then asks
privpkg's keyring backend, through the ``keyring`` CLI on PATH, for a feed's PAT; ``--undo``
restores the user's file byte for byte; a broken uv.toml is refused in one line, untouched.

uv runs here without ``--no-config`` and without ``--keyring-provider``, from a folder with no
project uv.toml above it, so the user's uv.toml (``$XDG_CONFIG_HOME/uv/uv.toml``, in the test's
home) is what decides.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import tomlkit
from support.builds import Venv
from support.cli import Outputs, PrivpkgCLI, assert_one_error_line
from support.env import Result
from support.feeds import FEED_A_PATH, FeedServer

from privpkg import envvars

WHEEL_A = "pkg_a-1.0-py3-none-any.whl"


def _authorized_wheel_downloads(feed: FeedServer, since: int) -> list[str]:
    """Feed A's wheel, served 200 to a request that carried the PAT, in the log after ``since``."""
    return [e.path for e in feed.log()[since:] if e.status == 200 and e.auth and e.path == f"{FEED_A_PATH}pkg-a/{WHEEL_A}"]


def test_setup_uv_then_uv_pip_install_then_undo(
    make_env: Callable[..., dict[str, str]], test_home: Path, feed: FeedServer, venv_privpkg: Venv, venv_bare_pip: Venv,
    uv_bin: Path, store_connection: Callable[..., object], tmp_path: Path,
) -> None:
    env = make_env(path_prefix=[venv_privpkg.bin])  # the keyring CLI with privpkg's backend, as uv needs it
    cli = PrivpkgCLI(env, Outputs(*feed.secrets))
    conf = test_home / "home/.config/uv/uv.toml"
    store_connection("orgA", feed.base + "/orgA/", feed.secret_a)  # username __token__
    with_user = feed.index_a.replace("http://", "http://__token__@", 1)
    work = tmp_path / "work"
    work.mkdir()

    def uv_install(name: str, index: str) -> tuple[Result, Path, int]:
        target, start = tmp_path / name, len(feed.log())
        r = cli.tool([uv_bin, "pip", "install", "--no-cache", "--index-url", index, "--python", venv_bare_pip.python,
                      "--target", target, "pkg-a"], cwd=work)
        return r, target, start

    r, target, start = uv_install("before", with_user)  # uv's default: keyring disabled
    assert r.returncode != 0 and not (target / "pkg_a.py").exists(), r.describe()
    assert not _authorized_wheel_downloads(feed, start), feed.log_text()

    res = cli("setup", "uv")
    assert res.returncode == 0 and res.stdout == f'set keyring-provider = "subprocess" in {conf}\n', res.stdout + res.stderr
    assert conf.read_text() == 'keyring-provider = "subprocess"\n'
    again = cli("setup", "uv")
    assert again.returncode == 0 and "already" in again.stdout and "nothing changed" in again.stdout

    r, target, start = uv_install("with-user", with_user)
    assert r.returncode == 0 and (target / "pkg_a.py").exists(), r.describe()
    assert _authorized_wheel_downloads(feed, start), feed.log_text()

    # What the README says uv does differently from pip: without a username in the URL, uv never
    # asks keyring (pip >= 26.2 does), so the feed only ever sees anonymous requests.
    r, target, start = uv_install("no-user", feed.index_a)
    assert r.returncode != 0 and not (target / "pkg_a.py").exists(), r.describe()
    assert feed.log()[start:] and not any(e.auth for e in feed.log()[start:]), feed.log_text()

    res = cli("setup", "uv", "--undo")
    assert res.returncode == 0 and res.stdout == f"removed {conf} (privpkg had created it)\n", res.stdout + res.stderr
    assert not conf.exists()
    r, target, start = uv_install("after-undo", with_user)  # keyring is off again: the file was what turned it on
    assert r.returncode != 0 and not _authorized_wheel_downloads(feed, start), r.describe()
    line = assert_one_error_line(cli("setup", "uv", "--undo"), 1)
    assert line == "privpkg: error: nothing to undo: privpkg setup uv has not changed any uv config"
    cli.outputs.check()


def test_uv_project_with_the_feed_as_an_index(
    make_env: Callable[..., dict[str, str]], feed: FeedServer, venv_privpkg: Venv, uv_bin: Path,
    store_connection: Callable[..., object], tmp_path: Path,
) -> None:
    """``uv add`` / ``uv sync`` in a project: ``uv add --index NAME=https://__token__@...`` works
    once, but uv writes the URL into pyproject.toml without the username, so the next ``uv sync``
    gets 401. ``authenticate = "always"`` on the index makes uv ask keyring without a username
    (``keyring get URL --mode creds``), and nothing secret lands in pyproject.toml or uv.lock."""
    python = venv_privpkg.python.resolve()  # a base interpreter for the project's .venv, found without downloads
    env = make_env(path_prefix=[venv_privpkg.bin], UV_PYTHON_DOWNLOADS="never")
    cli = PrivpkgCLI(env, Outputs(*feed.secrets))
    store_connection("orgA", feed.base + "/orgA/", feed.secret_a)
    assert cli("setup", "uv").returncode == 0
    head = '[project]\nname = "app"\nversion = "0.1.0"\nrequires-python = ">=3.11"\ndependencies = []\n'

    def project(name: str, tail: str = "") -> Path:
        (tmp_path / name).mkdir()
        (tmp_path / name / "pyproject.toml").write_text(head + tail)
        return tmp_path / name

    def uv(proj: Path, *args: str | Path, **extra: str) -> Result:
        return cli.tool([uv_bin, *args, "--no-cache", "--python", python], cwd=proj, env={**env, **extra})

    # The username only on the command line: added and installed, then lost.
    first = project("first")
    r = uv(first, "add", "--index", "feed=" + feed.index_a.replace("http://", "http://__token__@", 1), "pkg-a")
    assert r.returncode == 0, r.describe()
    assert f'url = "{feed.index_a}"' in (first / "pyproject.toml").read_text()
    shutil.rmtree(first / ".venv")
    r = uv(first, "sync")
    assert r.returncode != 0 and "401 Unauthorized" in r.output, r.describe()
    r = uv(first, "sync", UV_INDEX_FEED_USERNAME="__token__")  # the username from the environment instead
    assert r.returncode == 0 and "+ pkg-a==1.0" in r.output, r.describe()

    # authenticate = "always": no username anywhere, and a fresh sync downloads with the PAT.
    proj = project("proj", f'\n[[tool.uv.index]]\nname = "feed"\nurl = "{feed.index_a}"\nauthenticate = "always"\n')
    r = uv(proj, "add", "pkg-a")
    assert r.returncode == 0, r.describe()
    shutil.rmtree(proj / ".venv")
    start = len(feed.log())
    r = uv(proj, "sync")
    assert r.returncode == 0 and "+ pkg-a==1.0" in r.output, r.describe()
    assert _authorized_wheel_downloads(feed, start), feed.log_text()
    for name in ("pyproject.toml", "uv.lock"):
        cli.outputs.add(name, (proj / name).read_text())
    assert "__token__" not in (proj / "uv.lock").read_text()
    cli.outputs.check()


ORIGINAL = (
    "# team uv settings\r\n"
    'keyring-provider = "disabled"   # off until the feed is set up\r\n'
    "native-tls = true\r\n"
    "\r\n"
    "[pip]\r\n"
    "# keep me\r\n"
    "no-build = true"  # no final newline
)


def test_undo_restores_the_file_byte_for_byte(make_env: Callable[..., dict[str, str]], tmp_path: Path) -> None:
    cli = PrivpkgCLI(make_env(), Outputs())
    # A dotfiles-style symlink: the file it points to is edited, and the link stays a link.
    (tmp_path / "dotfiles").mkdir()
    real = (tmp_path / "dotfiles").resolve() / "uv.toml"
    real.write_bytes(ORIGINAL.encode())
    real.chmod(0o640)
    conf = tmp_path / "uv.toml"
    conf.symlink_to(real)

    res = cli("setup", "uv", "--config", conf)
    assert res.returncode == 0 and res.stdout == f'set keyring-provider = "subprocess" in {conf} (was "disabled")\n', res.stderr
    assert conf.is_symlink() and oct(real.stat().st_mode & 0o777) == oct(0o640)
    edited = real.read_bytes().decode()
    assert edited == ORIGINAL.replace('"disabled"', '"subprocess"'), "only the value changes; comments, CRLF, layout stay"
    assert tomlkit.parse(edited)["keyring-provider"] == "subprocess"

    res = cli("setup", "uv", "--undo")
    assert res.returncode == 0 and res.stdout == f'restored keyring-provider = "disabled" in {real}\n', res.stderr
    assert real.read_bytes() == ORIGINAL.encode() and conf.is_symlink()

    # [pip] keyring-provider wins over the top-level key for `uv pip`: said, not overwritten.
    real.write_bytes(b'[pip]\nkeyring-provider = "disabled"\n')
    res = cli("setup", "uv", "--config", conf)
    assert res.returncode == 0 and res.stdout.splitlines()[1] == (
        f'note: [pip] keyring-provider = "disabled" in {conf} still wins for `uv pip` commands; remove it to use keyring there'), res.stdout
    assert cli("setup", "uv", "--undo").returncode == 0
    assert real.read_bytes() == b'[pip]\nkeyring-provider = "disabled"\n'

    # A file without the key, whose tomlkit round trip would not give back the same blank lines.
    real.write_bytes(b"[pip]\nno-build = true")
    assert cli("setup", "uv", "--config", conf).returncode == 0
    assert real.read_text() == 'keyring-provider = "subprocess"\n\n[pip]\nno-build = true'
    assert cli("setup", "uv", "--undo").returncode == 0
    assert real.read_bytes() == b"[pip]\nno-build = true"


def test_the_record_keeps_no_copy_of_the_file(make_env: Callable[..., dict[str, str]], tmp_path: Path) -> None:
    """A uv.toml may hold an index URL with a password: the undo record keeps only the span
    privpkg replaced, yet undo still gives back the exact bytes."""
    env = make_env()
    cli = PrivpkgCLI(env, Outputs())
    secret = "uvtoml-" + "s3cr3t" * 4
    original = f'# team\r\n[[index]]\r\nurl = "https://me:{secret}@feed.example/simple/"\r\nkeyring-provider = "disabled"'
    conf = tmp_path / "uv.toml"
    conf.write_bytes(original.encode())
    assert cli("setup", "uv", "--config", conf).returncode == 0
    records = list(Path(env[envvars.HOME]).rglob("setup-uv.json"))
    assert len(records) == 1 and secret not in records[0].read_text() and "# team" not in records[0].read_text(), records
    assert cli("setup", "uv", "--undo").returncode == 0
    assert conf.read_bytes() == original.encode()


def test_undo_after_the_user_edited_the_file(make_env: Callable[..., dict[str, str]], tmp_path: Path) -> None:
    cli = PrivpkgCLI(make_env(), Outputs())
    conf = tmp_path / "uv.toml"
    conf.write_text("# mine\nnative-tls = true\n")
    assert cli("setup", "uv", "--config", conf).returncode == 0

    # Another setting added since: undo takes out only its own key and keeps the user's edit.
    conf.write_text(conf.read_text() + "offline = true\n")
    res = cli("setup", "uv", "--undo")
    assert res.returncode == 0 and "your other changes since were kept" in res.stdout, res.stdout + res.stderr
    assert conf.read_text() == "# mine\nnative-tls = true\noffline = true\n"

    # The key itself changed since: left alone, one line, and the record kept for a later undo.
    assert cli("setup", "uv", "--config", conf).returncode == 0
    conf.write_text(conf.read_text().replace('"subprocess"', '"disabled"'))
    before = conf.read_bytes()
    line = assert_one_error_line(cli("setup", "uv", "--undo"), 1)
    assert "keyring-provider in" in line and 'was changed since privpkg set it (now "disabled")' in line and "left it as it is" in line
    assert conf.read_bytes() == before


def test_broken_uv_toml_is_refused_and_left_alone(make_env: Callable[..., dict[str, str]], test_home: Path) -> None:
    cli = PrivpkgCLI(make_env(), Outputs())
    conf = test_home / "home/.config/uv/uv.toml"
    conf.parent.mkdir(parents=True)
    broken = b'# half edited\n[pip\nkeyring-provider = "disabled"\n'
    conf.write_bytes(broken)
    line = assert_one_error_line(cli("setup", "uv"), 1)
    assert line.startswith(f"privpkg: error: uv config {conf} is not valid TOML (") and "fix it, then run privpkg setup uv again" in line
    assert conf.read_bytes() == broken
    # Nothing was recorded either: there is nothing to undo.
    assert "nothing to undo" in assert_one_error_line(cli("setup", "uv", "--undo"), 1)

    conf.write_bytes(b"keyring-provider = 3\n")  # TOML, but not a value uv accepts: not ours to overwrite
    line = assert_one_error_line(cli("setup", "uv"), 1)
    assert "is not a string" in line and conf.read_bytes() == b"keyring-provider = 3\n"


def test_config_that_is_a_directory_is_a_usage_error(make_env: Callable[..., dict[str, str]], tmp_path: Path) -> None:
    """Before: exit 1 and `cannot read uv config DIR: Is a directory`."""
    privpkg = PrivpkgCLI(make_env(), Outputs())
    privpkg.fails(2, "setup", "uv", "--config", tmp_path, match=f"privpkg: error: {tmp_path} is a directory, not a uv.toml file")
