"""``privpkg setup pip``: the real pip reads what it wrote, a flagless ``pip install`` then
authenticates, and ``--undo`` restores the user's file byte for byte."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.builds import Venv
from support.cli import Outputs, PrivpkgCLI
from support.env import Result, assert_no_secret, run
from support.feeds import FEED_A_PATH, FeedServer


def _pip_env(make_env: Callable[..., dict[str, str]], **kw: object) -> dict[str, str]:
    env = make_env(**kw)
    del env["PIP_CONFIG_FILE"]  # this test is about the user's config file, so pip must read it
    return env


def test_setup_pip_then_flagless_install_then_undo(
    make_env: Callable[..., dict[str, str]], test_home: Path, feed: FeedServer, venv_bare_pip: Venv, owned_venv: Callable[..., Venv],
    store_connection: Callable[..., object], tmp_path: Path,
) -> None:
    # privpkg from a venv of its own, as installed by a person: setup also writes that venv's pip.conf.
    home = owned_venv("setup-pip-flagless", "pip>=26.2")
    env = _pip_env(make_env, path_prefix=[home.bin])
    outputs: list[str] = []

    def privpkg(*args: str) -> Result:
        res = run([home.bin / "privpkg", *args], env)
        outputs.append(res.output)
        return res

    conf = test_home / "home/.config/pip/pip.conf"
    env_conf = home.path / "pip.conf"
    assert not conf.exists() and not env_conf.exists()

    res = privpkg("setup", "pip")
    assert res.returncode == 0 and res.output.splitlines() == [
        f"set keyring-provider = subprocess in {conf}",
        f"set keyring-provider = import in {env_conf} (pip from privpkg's own environment skips the keyring CLI next to it)",
    ], res.describe()
    seen = run([*venv_bare_pip.pip, "config", "list"], env)
    assert "global.keyring-provider='subprocess'" in seen.output, seen.describe()
    seen = run([*home.pip, "config", "list"], env)
    assert "global.keyring-provider='import'" in seen.output, seen.describe()  # the venv's file is read last and wins
    again = privpkg("setup", "pip")
    assert again.returncode == 0 and "already subprocess" in again.output and "already import" in again.output

    store_connection("a", feed.base + "/orgA/", feed.secret_a)
    target = tmp_path / "target"
    res_install = run([*venv_bare_pip.pip, "install", "--no-cache-dir", "--target", target, "--index-url", feed.index_a, "pkg-a"], env)
    assert res_install.returncode == 0, res_install.describe()
    assert (target / "pkg_a.py").exists()
    feed.assert_challenged_then_authorized(FEED_A_PATH, "pkg_a-1.0-py3-none-any.whl")
    assert_no_secret(res_install.output + "".join(outputs), feed.secret_a)

    res = privpkg("setup", "pip", "--undo")
    assert res.returncode == 0 and res.output.splitlines() == [
        f"removed {env_conf} (privpkg had created it)", f"removed {conf} (privpkg had created it)"], res.describe()
    assert not conf.exists() and not env_conf.exists(), "privpkg created the files, so undo removes them"
    res = privpkg("setup", "pip", "--undo")
    assert res.returncode == 1 and res.output.startswith("privpkg: error: nothing to undo") and res.output.count("\n") == 1


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


def _externally_managed_python(root: Path) -> tuple[Path, Path]:
    """A real CPython (the tests' own base interpreter) that is not in a venv and whose stdlib
    folder holds PEP 668's EXTERNALLY-MANAGED marker, without touching the real installation:
    PYTHONHOME points it at ``root``, whose lib/pythonX.Y links every stdlib entry of the real
    one. Returns (the ``python`` wrapper script that sets PYTHONHOME, its purelib)."""
    import os
    import sys
    import sysconfig

    base = Path(getattr(sys, "_base_executable", sys.executable))
    stdlib = root / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    stdlib.mkdir(parents=True)
    real = Path(sysconfig.get_path("stdlib"))
    for entry in real.iterdir():
        if entry.name != "site-packages":
            (stdlib / entry.name).symlink_to(entry)
    (stdlib / "EXTERNALLY-MANAGED").write_text("[externally-managed]\nError=use a venv\n")
    (stdlib / "site-packages").mkdir()
    python = root / "python"
    python.write_text(f'#!/bin/sh\nPYTHONHOME="{root}" exec "{base}" "$@"\n')
    os.chmod(python, 0o755)
    return python, stdlib / "site-packages"


def test_shim_into_externally_managed_python_needs_explicit_consent(make_env: Callable[..., dict[str, str]], tmp_path: Path) -> None:
    """`setup pip --python` into a system Python (PEP 668) used to write into it without a word;
    now it is one line naming the marker, unless --break-system-packages (pip's own option)."""
    privpkg = PrivpkgCLI(make_env(), Outputs())
    python, site = _externally_managed_python(tmp_path / "system")
    marker = site.parent / "EXTERNALLY-MANAGED"
    privpkg.fails(2, "setup", "pip", "--python", python,
                  match=f"privpkg: error: {python} is externally managed ({marker}, PEP 668): give a venv's python instead, "
                  "or pass --break-system-packages")
    assert list(site.iterdir()) == [], "nothing may be written into an externally managed environment"
    res = privpkg("setup", "pip", "--python", str(python), "--break-system-packages")
    assert res.returncode == 0 and res.stdout.startswith(f"installed the pip shim into {site} "), res.stderr
    loaded = run([python, "-c", "import sys; print('_privpkg_pip_shim' in sys.modules or __import__('_privpkg_pip_shim').__name__)"], make_env())
    assert loaded.returncode == 0, loaded.describe()
    assert privpkg("setup", "pip", "--python", str(python), "--undo").returncode == 0
    assert sorted(p.name for p in site.iterdir()) == []


@pytest.mark.parametrize(("args", "match"), [
    (["--python", "PY", "--provider", "import"], "--python and --provider do not go together"),
    (["--python", "PY", "--config", "pip.conf"], "--python and --config do not go together"),
    (["--break-system-packages"], "--break-system-packages goes with --python"),
    (["--undo", "--provider", "import"], "--undo and --provider do not go together"),
])
def test_setup_pip_options_that_do_not_go_together(make_env: Callable[..., dict[str, str]], tmp_path: Path, args: list[str], match: str) -> None:
    """Before, --provider with --python was silently ignored."""
    privpkg = PrivpkgCLI(make_env(), Outputs())
    venv_python = tmp_path / "nothing-runs-this"
    privpkg.fails(2, "setup", "pip", *[str(venv_python) if a == "PY" else a for a in args], match=match)


def test_config_that_is_a_directory_is_a_usage_error(make_env: Callable[..., dict[str, str]], tmp_path: Path) -> None:
    """Before: exit 1 and `cannot read pip config DIR: [Errno 21] Is a directory: 'DIR'`."""
    privpkg = PrivpkgCLI(make_env(), Outputs())
    privpkg.fails(2, "setup", "pip", "--config", tmp_path, match=f"privpkg: error: {tmp_path} is a directory, not a pip config file")


def test_an_unreadable_environment_config_is_a_warning_on_stderr(
    make_env: Callable[..., dict[str, str]], test_home: Path, owned_venv: Callable[..., Venv]
) -> None:
    """The user's file is what most pips read: when privpkg's own environment's pip.conf cannot be
    used (here a folder of that name), the user's is still set, and the other is one warning line
    on stderr (it was printed on stdout, without privpkg's prefix)."""
    home = owned_venv("setup-pip-env-conf-warning", "pip>=26.2")
    env = _pip_env(make_env, path_prefix=[home.bin])
    (home.path / "pip.conf").mkdir()
    import subprocess

    res = subprocess.run([home.bin / "privpkg", "setup", "pip"], env=env, capture_output=True, text=True, timeout=120, check=False)
    conf = test_home / "home/.config/pip/pip.conf"
    assert res.returncode == 0, res
    assert res.stdout.splitlines() == [f"set keyring-provider = subprocess in {conf}"], res
    assert res.stderr.splitlines() == [
        (f"privpkg: warning: {home.path / 'pip.conf'} is a directory, not a pip config file; "
        "pip from privpkg's own environment then needs --keyring-provider import")], res
