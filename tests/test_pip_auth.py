"""Real ``pip install`` (and ``uv pip install``) against a PAT-protected loopback feed, with the
PAT served only by privpkg's keyring backend.

Every test installs into a fresh ``--target`` dir with ``--no-cache-dir``, so the shared venvs stay
untouched, and greps all output for the PATs. The feed log proves the credential came from
keyring: an anonymous request gets 401, and only then does an authorized request get 200.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.version import Version
from support.builds import Venv
from support.env import Result, assert_no_secret, run
from support.feeds import FEED_A_PATH, FEED_B_PATH, FeedServer

from privpkg import envvars

WHEEL_A = "pkg_a-1.0-py3-none-any.whl"
WHEEL_B = "pkg_b-2.0-py3-none-any.whl"


def pip_install(venv: Venv, env: dict[str, str], target: Path, *args: str) -> Result:
    """``pip install -v`` into ``target``, never touching the venv or any cache."""
    cmd = [*venv.pip, "install", "-v", "--no-cache-dir", "--no-color", "--retries", "0", "--target", str(target), *args]
    return run(cmd, env)


def assert_installed(target: Path, module: str, version: str, result: Result) -> None:
    assert result.returncode == 0, result.describe()
    mod = target / f"{module}.py"
    assert mod.is_file(), f"{mod} missing after install\n{result.describe()}"
    assert mod.read_text() == f'VERSION = "{version}"\n'
    assert list(target.glob(f"{module}-{version}.dist-info")), f"no {module} dist-info in {target}"


def assert_failed_unauthorized(feed: FeedServer, target: Path, module: str, result: Result) -> None:
    """The install failed, nothing was installed, and the feed only ever answered 401 to
    requests that carried no credential at all."""
    assert result.returncode != 0, f"install unexpectedly succeeded\n{result.describe()}"
    assert "No matching distribution found" in result.output, result.describe()
    assert not (target / f"{module}.py").exists()
    feed.assert_never_authorized()


def orgA(feed: FeedServer) -> str:
    return f"{feed.base}/orgA"


# --------------------------------------------------------------------------------------------


def test_import_provider(feed, venv_privpkg, make_env, store_connection, tmp_path):
    """pip with keyring importable in its own env (``--keyring-provider import``)."""
    store_connection("orgA", orgA(feed), feed.secret_a)
    env = make_env()
    assert Version(venv_privpkg.pip_version(env)) >= Version("26.2")
    target = tmp_path / "target"
    r = pip_install(venv_privpkg, env, target, "--keyring-provider", "import", "--index-url", feed.index_a, "pkg-a")
    assert_installed(target, "pkg_a", "1.0", r)
    feed.assert_challenged_then_authorized(FEED_A_PATH, WHEEL_A)
    assert_no_secret(r.output, *feed.secrets)


def test_subprocess_provider_keyring_cli_on_path(feed, venv_privpkg, venv_bare_pip, make_env, store_connection, tmp_path):
    """pip without keyring in its env runs the privpkg-enabled ``keyring`` CLI found on PATH."""
    store_connection("orgA", orgA(feed), feed.secret_a)
    env = make_env(path_prefix=[venv_privpkg.bin])
    assert not venv_bare_pip.can_import("keyring", env), "keyring must not be importable in the bare pip venv"
    assert (venv_privpkg.bin / "keyring").exists()
    target = tmp_path / "target"
    r = pip_install(venv_bare_pip, env, target, "--keyring-provider", "subprocess", "--index-url", feed.index_a, "pkg-a")
    assert_installed(target, "pkg_a", "1.0", r)
    feed.assert_challenged_then_authorized(FEED_A_PATH, WHEEL_A)
    assert_no_secret(r.output, *feed.secrets)


def test_no_input_with_env_provider_subprocess(feed, venv_privpkg, venv_bare_pip, make_env, store_connection, tmp_path):
    """``--no-input`` (what pipx and ``build`` pass) still works with PIP_KEYRING_PROVIDER=subprocess."""
    store_connection("orgA", orgA(feed), feed.secret_a)
    env = make_env(path_prefix=[venv_privpkg.bin], PIP_KEYRING_PROVIDER="subprocess")
    target = tmp_path / "target"
    r = pip_install(venv_bare_pip, env, target, "--no-input", "--index-url", feed.index_a, "pkg-a")
    assert_installed(target, "pkg_a", "1.0", r)
    feed.assert_challenged_then_authorized(FEED_A_PATH, WHEEL_A)
    assert_no_secret(r.output, *feed.secrets)


def test_no_input_with_auto_provider_does_not_use_keyring(feed, venv_privpkg, make_env, store_connection, tmp_path):
    """Control: with the auto provider, ``--no-input`` keeps pip away from keyring (documented pip
    behaviour), so the install fails with 401. The same command without ``--no-input`` succeeds,
    which shows the connection itself is fine and the other tests really depend on keyring."""
    store_connection("orgA", orgA(feed), feed.secret_a)
    env = make_env(path_prefix=[venv_privpkg.bin])
    assert venv_privpkg.can_import("keyring", env)

    target = tmp_path / "no-input"
    r = pip_install(venv_privpkg, env, target, "--no-input", "--index-url", feed.index_a, "pkg-a")
    assert_failed_unauthorized(feed, target, "pkg_a", r)
    assert_no_secret(r.output, *feed.secrets)

    target = tmp_path / "auto"
    r = pip_install(venv_privpkg, env, target, "--index-url", feed.index_a, "pkg-a")
    assert_installed(target, "pkg_a", "1.0", r)
    feed.assert_challenged_then_authorized(FEED_A_PATH, WHEEL_A)
    assert_no_secret(r.output, *feed.secrets)


def test_two_feeds_same_host_different_pats_in_one_run(feed, venv_privpkg, make_env, store_connection, tmp_path):
    """Two feeds on one host with different PATs, both used in ONE pip run. pip caches one
    credential per host, so it hits extra 401s, but matching by path still gets both through."""
    store_connection("orgA", orgA(feed), feed.secret_a)
    store_connection("orgB", f"{feed.base}/orgB", feed.secret_b)
    env = make_env()
    target = tmp_path / "target"
    r = pip_install(
        venv_privpkg,
        env,
        target,
        "--keyring-provider",
        "import",
        "--index-url",
        feed.index_a,
        "--extra-index-url",
        feed.index_b,
        "pkg-a",
        "pkg-b",
    )
    assert_installed(target, "pkg_a", "1.0", r)
    assert_installed(target, "pkg_b", "2.0", r)
    feed.assert_challenged_then_authorized(FEED_A_PATH, WHEEL_A)
    # pip first tries feed A's PAT (cached for the host) on feed B, so B's 401 may carry auth.
    feed.assert_challenged_then_authorized(FEED_B_PATH, WHEEL_B, anonymous=False)
    assert_no_secret(r.output, *feed.secrets)


def test_uv_subprocess_provider(feed, venv_privpkg, venv_bare_pip, make_env, store_connection, uv_bin, tmp_path):
    """uv runs ``keyring get URL __token__`` (password mode) with the username from the URL.

    uv asks keyring up front when the URL has a username but no password, so unlike pip there is
    no anonymous 401 first; its 401s come from username-only retries of the wheel URL. The control
    run without ``--keyring-provider`` shows the authorized 200s really came from keyring."""
    store_connection("orgA", orgA(feed), feed.secret_a)  # username defaults to __token__
    env = make_env(path_prefix=[venv_privpkg.bin])
    index = feed.index_a.replace("http://", "http://__token__@", 1)

    def uv_install(target: Path, *args: str) -> Result:
        cmd = [uv_bin, "pip", "install", "-v", "--no-config", "--no-cache", *args]
        cmd += ["--index-url", index, "--python", str(venv_bare_pip.python), "--target", str(target), "pkg-a"]
        return run(cmd, env)

    control = tmp_path / "control"
    r = uv_install(control)  # keyring is off by default in uv
    assert r.returncode != 0, r.describe()
    assert not (control / "pkg_a.py").exists()
    assert not any(e.status == 200 for e in feed.log()), feed.log_text()
    assert any(e.status == 401 for e in feed.log()), feed.log_text()
    assert_no_secret(r.output, *feed.secrets)

    target = tmp_path / "target"
    r = uv_install(target, "--keyring-provider", "subprocess")
    assert_installed(target, "pkg_a", "1.0", r)
    log = [e for e in feed.log() if e.path.startswith(FEED_A_PATH)]
    assert any(e.status == 200 and e.auth and e.path.endswith("/pkg-a/") for e in log), feed.log_text()
    assert any(e.status == 200 and e.auth and e.path.endswith("/" + WHEEL_A) for e in log), feed.log_text()
    assert_no_secret(r.output, *feed.secrets)


def test_old_pip_231_subprocess_provider_with_username(feed, venv_privpkg, venv_pip231, make_env, store_connection, tmp_path):
    """pip 23.1 runs ``keyring get SERVICE USER`` and so needs ``user@`` in the index URL."""
    store_connection("orgA", orgA(feed), feed.secret_a)
    env = make_env(path_prefix=[venv_privpkg.bin])
    assert venv_pip231.pip_version(env) == "23.1"
    assert not venv_pip231.can_import("keyring", env)
    index = feed.index_a.replace("http://", "http://__token__@", 1)
    target = tmp_path / "target"
    r = pip_install(venv_pip231, env, target, "--keyring-provider", "subprocess", "--index-url", index, "pkg-a")
    assert_installed(target, "pkg_a", "1.0", r)
    # The first request already carries "__token__:" (username, empty password), hence not anonymous.
    feed.assert_challenged_then_authorized(FEED_A_PATH, WHEEL_A, anonymous=False)
    assert_no_secret(r.output, *feed.secrets)


@pytest.mark.parametrize("other_host", ["localhost", "127.0.0.2"])
def test_connection_for_other_host_is_not_served(feed, venv_privpkg, make_env, store_connection, tmp_path, other_host):
    """Negative control: a connection for the same path on another host (same port) must not
    hand its PAT to pip, by either of pip's lookups. It carries feed A's real PAT, so if privpkg
    served it the install would succeed."""
    store_connection("other", f"http://{other_host}:{feed.port}{FEED_A_PATH}", feed.secret_a)
    env = make_env()
    keyring = venv_privpkg.bin / "keyring"
    for service in (feed.index_a, feed.netloc):
        got = run([keyring, "--mode=creds", "--output=json", "get", service], env)
        assert feed.secret_a not in got.output, f"`keyring get {service}` served a connection for {other_host}"

    target = tmp_path / "target"
    # --no-input: pip would otherwise prompt; an explicit provider still asks keyring.
    r = pip_install(venv_privpkg, env, target, "--no-input", "--keyring-provider", "import", "--index-url", feed.index_a, "pkg-a")
    assert_failed_unauthorized(feed, target, "pkg_a", r)
    assert_no_secret(r.output, *feed.secrets)


def test_lookalike_paths_on_same_host_are_not_served(feed, venv_privpkg, make_env, store_connection, tmp_path):
    """Two connections on the feed's host whose targets do not cover the index (a look-alike
    prefix and a sibling org), with different PATs: the index-URL lookup matches neither, and the
    bare host:port lookup is answered by no connection that did not opt in with --host-wide (see
    test_bare_host.py), so pip gets nothing."""
    store_connection("evil", f"{feed.base}/orgA-evil/", feed.secret_a)
    store_connection("sibling", f"{feed.base}/orgC/", feed.secret_b)
    env = make_env()
    keyring = venv_privpkg.bin / "keyring"
    for service in (feed.index_a, feed.netloc):
        got = run([keyring, "--mode=creds", "--output=json", "get", service], env)
        assert_no_secret(got.output, *feed.secrets)
        assert got.returncode == 1, got.describe()

    target = tmp_path / "target"
    # --no-input: pip would otherwise prompt; an explicit provider still asks keyring.
    r = pip_install(venv_privpkg, env, target, "--no-input", "--keyring-provider", "import", "--index-url", feed.index_a, "pkg-a")
    assert_failed_unauthorized(feed, target, "pkg_a", r)
    assert_no_secret(r.output, *feed.secrets)


def test_env_only_connections(feed, venv_privpkg, make_env, privpkg_home, tmp_path):
    """No store file at all: PRIVPKG_CONNECTIONS in pip's environment is enough."""
    conns = [{"name": "orgA", "target": orgA(feed), "secret": feed.secret_a, "username": "__token__"}]
    env = make_env(**{envvars.CONNECTIONS: json.dumps(conns)})
    target = tmp_path / "target"
    r = pip_install(venv_privpkg, env, target, "--keyring-provider", "import", "--index-url", feed.index_a, "pkg-a")
    assert_installed(target, "pkg_a", "1.0", r)
    feed.assert_challenged_then_authorized(FEED_A_PATH, WHEEL_A)
    assert_no_secret(r.output, *feed.secrets)
    # Only the lookup log (privpkg doctor --last), which holds no secret: no store or key files.
    assert [p.name for p in privpkg_home.iterdir()] == ["lookups.log"], "an env-only lookup must not create store or key files"
    assert_no_secret((privpkg_home / "lookups.log").read_text(), *feed.secrets)


def test_ci_recipe_reinstall_in_privpkgs_own_venv(feed, owned_venv, make_env, tmp_path):
    """The README's CI recipe ($PRIVPKG_CONNECTIONS, `privpkg setup pip`, pip from privpkg's own
    venv, so keyring-provider `import`), then a --no-deps reinstall from the feed: pip 26.3 blocks imports
    once installing starts, and keyring had loaded the importlib_metadata backport (Python < 3.12),
    whose deferred `_adapters` import the uninstall reached ("Blocked import of
    'importlib_metadata._adapters'")."""
    venv = owned_venv("test_ci_recipe_reinstall_in_privpkgs_own_venv", "pip>=26.3")
    conns = json.dumps([{"name": "feed", "target": orgA(feed), "secret": feed.secret_a}])
    env = make_env(**{envvars.CONNECTIONS: conns})
    del env["PIP_CONFIG_FILE"]  # pip must read the pip.conf that `setup pip` writes
    setup = run([venv.bin / "privpkg", "setup", "pip"], env)
    assert setup.returncode == 0, setup.describe()
    args = ["install", "--no-input", "--no-cache-dir", "--index-url", feed.index_a, "pkg-a"]
    first = run([*venv.pip, *args], env)
    assert first.returncode == 0, first.describe()
    # --no-deps skips pip's conflict check, which would have resolved `_adapters` in time
    again = run([*venv.pip, *args, "--force-reinstall", "--no-deps"], env)
    assert again.returncode == 0 and "Successfully uninstalled pkg-a" in again.output, again.describe()
    assert "Blocked import" not in again.output, again.describe()
    assert_no_secret(first.output + again.output + setup.output, *feed.secrets)
