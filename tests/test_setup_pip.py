"""``privpkg setup pip``: the real pip reads what it wrote, a flagless ``pip install`` then
authenticates, and ``--undo`` restores the user's file byte for byte."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from support.builds import Venv
from support.cli import Outputs, PrivpkgCLI, assert_one_error_line
from support.env import assert_no_secret, run
from support.feeds import FEED_A_PATH, FeedServer


def _pip_env(make_env: Callable[..., dict[str, str]], **kw: object) -> dict[str, str]:
    env = make_env(**kw)
    del env["PIP_CONFIG_FILE"]  # this test is about the user's config file, so pip must read it
    return env


def test_setup_pip_then_flagless_install_then_undo(
    make_env: Callable[..., dict[str, str]], test_home: Path, feed: FeedServer, venv_bare_pip: Venv, venv_privpkg: Venv,
    store_connection: Callable[..., object], tmp_path: Path,
) -> None:
    env = _pip_env(make_env, path_prefix=[venv_privpkg.bin])
    privpkg = PrivpkgCLI(env, Outputs())
    conf = test_home / "home/.config/pip/pip.conf"
    assert not conf.exists()

    res = privpkg("setup", "pip")
    assert res.returncode == 0 and f"set keyring-provider = subprocess in {conf}" in res.stdout, res.stderr
    seen = run([*venv_bare_pip.pip, "config", "list"], env)
    assert "global.keyring-provider='subprocess'" in seen.output, seen.describe()
    again = privpkg("setup", "pip")
    assert again.returncode == 0 and "already subprocess" in again.stdout

    store_connection("a", feed.base + "/orgA/", feed.secret_a)
    target = tmp_path / "target"
    res_install = run([*venv_bare_pip.pip, "install", "--no-cache-dir", "--target", target, "--index-url", feed.index_a, "pkg-a"], env)
    assert res_install.returncode == 0, res_install.describe()
    assert (target / "pkg_a.py").exists()
    feed.assert_challenged_then_authorized(FEED_A_PATH, "pkg_a-1.0-py3-none-any.whl")
    assert_no_secret(res_install.output, feed.secret_a)

    res = privpkg("setup", "pip", "--undo")
    assert res.returncode == 0 and "removed" in res.stdout, res.stderr
    assert not conf.exists(), "privpkg created the file, so undo removes it"
    res = privpkg("setup", "pip", "--undo")
    assert res.returncode == 1 and assert_one_error_line(res).startswith("privpkg: error: nothing to undo")


def test_undo_restores_existing_file_exactly(make_env: Callable[..., dict[str, str]], tmp_path: Path) -> None:
    env = _pip_env(make_env)
    privpkg = PrivpkgCLI(env, Outputs())
    conf = tmp_path / "pip.conf"
    original = "# team settings\n[global]\ntimeout = 30\nkeyring_provider = import   \n\n[install]\n# keep me\nno-compile = true\n"
    conf.write_text(original)
    res = privpkg("setup", "pip", "--config", str(conf))
    assert res.returncode == 0 and "(was import)" in res.stdout
    text = conf.read_text()
    assert "keyring-provider = subprocess\n" in text and "# keep me" in text and "timeout = 30" in text
    assert privpkg("setup", "pip", "--undo").returncode == 0
    assert conf.read_text() == original

    # A file without [global]: the section is added and removed again.
    conf.write_text("[install]\nno-compile = true")
    assert privpkg("setup", "pip", "--config", str(conf)).returncode == 0
    assert "[global]\nkeyring-provider = subprocess\n" in conf.read_text()
    assert privpkg("setup", "pip", "--undo").returncode == 0
    assert conf.read_text() == "[install]\nno-compile = true"


def test_undo_refuses_when_user_changed_value(make_env: Callable[..., dict[str, str]], tmp_path: Path) -> None:
    env = _pip_env(make_env)
    privpkg = PrivpkgCLI(env, Outputs())
    conf = tmp_path / "pip.conf"
    assert privpkg("setup", "pip", "--config", str(conf), "--provider", "import").returncode == 0
    conf.write_text(conf.read_text().replace("import", "disabled"))
    res = privpkg("setup", "pip", "--undo")
    assert res.returncode == 1 and "was changed since privpkg set it" in res.stderr
    assert "disabled" in conf.read_text()
