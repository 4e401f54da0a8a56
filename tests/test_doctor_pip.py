"""``privpkg doctor`` checks the pip that will run (``--pip``, default ``pip`` on PATH) with real
pips and real keyring CLIs, and fails, in one line that says what to change, over each set-up
that cannot reach privpkg; the pip shim says the same for pip < 26.2 without a username.

Where a finding claims pip cannot authenticate, the test also runs that pip against the PAT feed
to show the claim is true.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support.builds import Venv
from support.env import Result, assert_no_secret, run
from support.feeds import FEED_A_PATH, FeedServer


def doctor(env: dict[str, str], *args: str | Path) -> Result:
    return run([sys.executable, "-m", "privpkg", "doctor", *args], env)


def fails(res: Result, line: str) -> None:
    """doctor exited 1 and printed ``line`` as its only failing check."""
    lines = res.output.splitlines()
    assert res.returncode == 1 and [ln for ln in lines if ln.startswith("FAIL")] == [f"FAIL  {line}", "FAIL  some checks failed"], res.describe()


def install(venv: Venv, env: dict[str, str], target: Path, index: str, *flags: str) -> Result:
    return run([venv.bin / "pip", "install", "--no-cache-dir", "--target", target, "--index-url", index, *flags, "pkg-a"], env)


def test_default_pip_on_path_that_reaches_no_keyring(venv_bare_pip: Venv, make_env: Callable[..., dict[str, str]]) -> None:
    """Before, doctor said "all checks passed" here; the pip a person runs reaches no keyring."""
    env = make_env(path_prefix=[venv_bare_pip.bin])
    res = doctor(env)
    fails(res, "pip finds no keyring CLI on PATH (it skips the one in its own environment): "
          "put the bin/ folder of the environment where privpkg is installed on PATH")
    assert f"ok    pip {venv_bare_pip.pip_version(env)} ({venv_bare_pip.bin / 'pip'}, environment {venv_bare_pip.path})" in res.output
    checks = json.loads(doctor(env, "--json").output)
    by_name = {c["name"]: c["status"] for c in checks}
    assert (by_name["pip"], by_name["pip-provider"], by_name["pip-keyring"]) == ("ok", "warn", "fail"), checks


@pytest.mark.parametrize(("variables", "line"), [
    ({"PIP_KEYRING_PROVIDER": "disabled"},
     "pip keyring-provider = disabled (from $PIP_KEYRING_PROVIDER): pip never asks keyring; remove that setting and run `privpkg setup pip`"),
    ({"PIP_NO_INPUT": "1"},
     ("pip keyring-provider is auto and no-input is set (from $PIP_NO_INPUT): pip then never asks keyring; "
     "run `privpkg setup pip` (keyring-provider = subprocess)")),
    ({"PIP_KEYRING_PROVIDER": "import"},
     ("pip keyring-provider = import, but keyring does not import in {prefix}: set keyring-provider = subprocess for this pip "
     "(`privpkg setup pip` writes it in your pip config)")),
])
def test_provider_settings_that_cannot_work(
    venv_bare_pip: Venv, venv_privpkg: Venv, make_env: Callable[..., dict[str, str]], variables: dict[str, str], line: str,
) -> None:
    env = make_env(path_prefix=[venv_privpkg.bin], **variables)  # privpkg's keyring CLI is reachable
    fails(doctor(env, "--pip", venv_bare_pip.bin / "pip"), line.format(prefix=venv_bare_pip.path))


def test_pip_in_privpkg_venv_with_only_the_user_setting(
    venv_privpkg: Venv, make_env: Callable[..., dict[str, str]], test_home: Path, feed: FeedServer,
    store_connection: Callable[..., object], tmp_path: Path,
) -> None:
    """What the old `privpkg setup pip` left: subprocess in the user's config, and pip from
    privpkg's own venv, which skips the keyring CLI next to it. The install really fails."""
    conf = test_home / "home/.config/pip/pip.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("[global]\nkeyring-provider = subprocess\n")
    env = make_env(path_prefix=[venv_privpkg.bin])
    del env["PIP_CONFIG_FILE"]
    store_connection("feed", feed.base + "/orgA/", feed.secret_a)
    res = doctor(env, "--url", feed.index_a)
    fails(res, f"pip skips the keyring CLI in its own {venv_privpkg.bin} and finds no other on PATH: set keyring-provider = import in "
          f"{venv_privpkg.path}/pip.conf (`privpkg setup pip` run from this environment writes it)")
    got = install(venv_privpkg, env, tmp_path / "t", feed.index_a, "--no-input")
    assert got.returncode != 0 and not any(e.auth for e in feed.log()), got.describe()
    # The same, set by the environment variable: the fix names the variable.
    env.update(PIP_KEYRING_PROVIDER="subprocess")
    fails(doctor(env), f"pip skips the keyring CLI in its own {venv_privpkg.bin} and finds no other on PATH: set $PIP_KEYRING_PROVIDER=import for this pip")
    assert_no_secret(res.output + got.output, feed.secret_a)


def test_keyring_without_privpkg(
    owned_venv: Callable[..., Venv], venv_bare_pip: Venv, venv_privpkg: Venv, make_env: Callable[..., dict[str, str]],
) -> None:
    """A keyring installed for something else: as pip's CLI (subprocess), or importable in pip's
    own venv, where the default provider imports it and never runs privpkg's CLI."""
    other = owned_venv("keyring-without-privpkg", "pip>=26.2", privpkg=False, extra=["keyring>=25.2.1"])
    env = make_env(path_prefix=[other.bin], PIP_KEYRING_PROVIDER="subprocess")
    res = doctor(env, "--pip", venv_bare_pip.bin / "pip")
    assert res.returncode == 1 and f"FAIL  pip runs the keyring CLI {other.bin / 'keyring'}, where privpkg's backend is not active (" in res.output, res.describe()
    assert res.output.splitlines()[-2].endswith("): put the bin/ folder of privpkg's environment before it on PATH"), res.describe()

    env = make_env(path_prefix=[venv_privpkg.bin])
    res = doctor(env, "--pip", other.python)  # an interpreter names its `-m pip`
    assert res.returncode == 1 and f"FAIL  pip imports keyring from {other.path}, where privpkg's backend is not active (" in res.output, res.describe()
    assert f"set keyring-provider = subprocess for this pip ({other.path}/pip.conf) so it runs privpkg's keyring CLI" in res.output


def test_a_pip_that_does_not_exist(make_env: Callable[..., dict[str, str]], tmp_path: Path) -> None:
    fails(doctor(make_env(), "--pip", tmp_path / "nope"), f"{tmp_path / 'nope'} is not an executable pip or Python: name the pip you use with --pip PATH")


def test_shim_says_what_to_change_for_old_pip_without_username(
    venv_pip231_shim: Venv, venv_privpkg: Venv, make_env: Callable[..., dict[str, str]], feed: FeedServer,
    store_connection: Callable[..., object], tmp_path: Path,
) -> None:
    """pip 23.1 with the shim copied in: without a username it never asks keyring, and the shim
    (loaded in pip) says the one change, once, before pip gives up; with __token__@ it works."""
    store_connection("feed", feed.base + "/orgA/", feed.secret_a)
    env = make_env(path_prefix=[venv_privpkg.bin], PIP_KEYRING_PROVIDER="subprocess")
    token_url = feed.index_a.replace("http://", "http://__token__@", 1)
    hint = (f"privpkg: warning: pip 23.1 asks the keyring CLI only for index URLs with a username, and {feed.index_a} has none: "
            f"use {token_url} or upgrade pip to 26.2 or newer")
    res = install(venv_pip231_shim, env, tmp_path / "a", feed.index_a, "--no-input")
    assert res.returncode != 0 and "No matching distribution found" in res.output, res.describe()
    assert res.output.splitlines().count(hint) == 1, res.describe()
    ok = install(venv_pip231_shim, env, tmp_path / "b", token_url, "--no-input")
    assert ok.returncode == 0 and (tmp_path / "b/pkg_a.py").is_file() and "privpkg: warning" not in ok.output, ok.describe()
    feed.assert_challenged_then_authorized(FEED_A_PATH, "pkg_a-1.0-py3-none-any.whl", anonymous=False)
    assert_no_secret(res.output + ok.output, feed.secret_a)


# pip 23.0.1's vendored pkg_resources uses pkgutil.ImpImporter, gone from Python 3.12 on: there
# that pip fails every install, so no user has it (pip 23.1, the oldest the shim serves, runs).
@pytest.mark.skipif(sys.version_info >= (3, 12), reason="pip 23.0.1 does not run on Python 3.12+ (pkgutil.ImpImporter removed)")
def test_pip_before_23_1_has_no_provider_setting(
    owned_venv: Callable[..., Venv], venv_privpkg: Venv, make_env: Callable[..., dict[str, str]], feed: FeedServer,
    store_connection: Callable[..., object], test_home: Path, tmp_path: Path,
) -> None:
    """pip 23.0.1 (what `python3 -m venv` gives on Debian 12's Python 3.11.2) has no
    --keyring-provider and ignores the config key: in privpkg's venv it imports keyring and needs
    no username; elsewhere it runs the keyring CLI on PATH only with a username; with --no-input
    it never asks. Each finding is shown true by a real install."""
    store_connection("feed", feed.base + "/orgA/", feed.secret_a)
    conf = test_home / "home/.config/pip/pip.conf"  # what `privpkg setup pip` writes: pip 23.0 ignores it
    conf.parent.mkdir(parents=True)
    conf.write_text("[global]\nkeyring-provider = subprocess\n")
    home = owned_venv("pip-23.0.1-privpkg", "pip==23.0.1")
    bare = owned_venv("pip-23.0.1-bare", "pip==23.0.1", privpkg=False)
    token_url = feed.index_a.replace("http://", "http://__token__@", 1)
    upgrade = "-m pip install -U 'pip>=26.2'"
    env = make_env(path_prefix=[home.bin])
    del env["PIP_CONFIG_FILE"]
    outputs: list[Result] = []

    res = doctor(env, "--pip", home.bin / "pip", "--url", feed.index_a)
    outputs.append(res)
    assert res.returncode == 0, res.describe()
    assert (f"warn  pip 23.0.1 has no keyring-provider setting (it ignores keyring-provider = subprocess from {conf} [global]), "
            f"so it never asks keyring with --no-input (pipx and build pass it): upgrade pip ({home.python} {upgrade})") in res.output, res.describe()
    assert "ok    pip imports keyring" in res.output and "__token__@" not in res.output, res.describe()
    outputs.append(install(home, env, tmp_path / "a", feed.index_a))
    assert outputs[-1].returncode == 0, outputs[-1].describe()
    outputs.append(run([home.bin / "privpkg", "setup", "pip", "--config", tmp_path / "pip.conf"], env))  # says what that pip ignores
    assert outputs[-1].returncode == 0 and outputs[-1].output.splitlines()[-1] == (
        f"note: the pip in this environment (23.0.1) predates keyring-provider (pip 23.1) and ignores it; upgrade it: "
        f"{home.python} -m pip install -U pip"), outputs[-1].describe()

    res = doctor(env, "--pip", bare.bin / "pip", "--url", feed.index_a)
    outputs.append(res)
    fails(res, f"pip 23.0.1 asks the keyring CLI only for index URLs with a username, and {feed.index_a} has none: "
          f"use {token_url} or upgrade pip ({bare.python} {upgrade})")
    assert f"ok    pip runs the keyring CLI {home.bin / 'keyring'} (keyring " in res.output, res.describe()
    outputs += [install(bare, env, tmp_path / "b", feed.index_a), install(bare, env, tmp_path / "c", token_url)]
    assert outputs[-2].returncode != 0 and outputs[-1].returncode == 0, outputs[-2].describe() + outputs[-1].describe()

    env_no_input = {**env, "PIP_NO_INPUT": "1"}
    res = doctor(env_no_input, "--pip", bare.bin / "pip", "--url", token_url)
    outputs.append(res)
    fails(res, "pip 23.0.1 never asks keyring with no-input set (from $PIP_NO_INPUT), and has no keyring-provider setting "
          f"(pip 23.1 added it): upgrade pip ({bare.python} {upgrade})")
    outputs.append(install(bare, env_no_input, tmp_path / "d", token_url))
    assert outputs[-1].returncode != 0, outputs[-1].describe()

    no_cli = make_env()  # privpkg's bin/ is not on PATH
    del no_cli["PIP_CONFIG_FILE"]
    res = doctor(no_cli, "--pip", bare.bin / "pip", "--url", token_url)
    outputs.append(res)
    fails(res, f"pip 23.0.1 cannot import keyring in {bare.path} and finds no keyring CLI on PATH: put the bin/ folder of the "
          f"environment where privpkg is installed on PATH, or upgrade pip ({bare.python} {upgrade})")
    assert_no_secret("".join(r.output for r in outputs), feed.secret_a)
