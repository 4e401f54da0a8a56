"""conda's pip step with privpkg's plugin.

Without conda (these run in CI): conda's ``pip_subprocess`` is replaced by a plain function that
does what conda 26.7's does (FACTS): run ``PREFIX/bin/python -m pip install -U -r FILE
--exists-action=b`` with conda's environment and the new environment's ``bin`` first on PATH
(activation; base's ``bin``, which holds the real keyring CLI, is not on it), capture the output
and raise after a failure. privpkg's pre-command edits that environment and wraps the function,
as the plugin does inside conda. Everything else is real: pip, the loopback PAT feed, the keyring
CLI through privpkg's launcher, the pip shim and a local workspace. stdin is a pipe that never
closes, so a pip that prompted would hang (and fail the timeout) rather than read EOF.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.builds import Venv
from support.cli import PrivpkgCLI
from support.env import assert_no_secret
from support.feeds import FEED_A_PATH, FeedServer

from privpkg import envvars
from privpkg.conda import pipstep
from privpkg.testing import make_wheel

#: How long a pip step that fails "at once" may take (pip's own retries included).
FAST = 30.0


class PipFailed(Exception):
    """Raised as conda raises CondaEnvException("Pip failed")."""


class CondaLike:
    """conda's pip step without conda: :meth:`pip_subprocess` has conda 26.7's signature and
    behaviour; ``env`` is conda's environment (which privpkg's pre-command edits)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.outputs: list[str] = []

    def pip_subprocess(self, args: list[str], prefix: str, cwd: str | None) -> tuple[str, str]:
        run_env = {**self.env, "PATH": os.pathsep.join([str(Path(prefix) / "bin"), self.env["PATH"]]), "CONDA_PREFIX": prefix}
        read_end, write_end = os.pipe()  # stdin that never ends: a prompt would hang
        try:
            r = subprocess.run([str(Path(prefix) / "bin" / "python"), "-m", "pip", *args], stdin=read_end, capture_output=True,
                               text=True, env=run_env, cwd=cwd, timeout=120, check=False)
        finally:
            os.close(read_end)
            os.close(write_end)
        self.outputs.append(r.stdout + r.stderr)
        if r.returncode != 0:
            raise PipFailed("Pip failed")
        return r.stdout, r.stderr


def pip_step(conda: CondaLike, prefix: Path, lines: list[str], folder: Path) -> tuple[float, PipFailed | None]:
    """conda's pre-command, then the pip section ``lines`` as conda runs it (a temporary
    requirements file beside the environment file). Returns the time pip took and its failure."""
    installer = type("Installer", (), {"pip_subprocess": staticmethod(conda.pip_subprocess)})
    pipstep.pre_command("create", lambda: installer, conda.env)
    req = folder / "condaenv.test.requirements.txt"
    folder.mkdir(parents=True, exist_ok=True)
    req.write_text("\n".join(lines))
    start = time.monotonic()
    try:
        installer.pip_subprocess(["install", "-U", "-r", str(req), "--exists-action=b"], str(prefix), cwd=str(folder))
    except PipFailed as exc:
        return time.monotonic() - start, exc
    finally:
        req.unlink()
    return time.monotonic() - start, None


@pytest.fixture
def conda_env(make_env: Callable[..., dict[str, str]], privpkg_home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """conda's own environment: this test's clean environment (no keyring CLI on PATH, no venv
    bin), and the same PRIVPKG_HOME in this process, where the pre-command and wrapper run."""
    env = make_env()
    for k in envvars.ALL:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv(envvars.HOME, env[envvars.HOME])
    return env


def installed(venv: Venv, name: str) -> dict[str, Any] | None:
    infos = list(venv.path.glob(f"lib/python*/site-packages/{name}-*.dist-info"))
    if not infos:
        return None
    direct = infos[0] / "direct_url.json"
    return json.loads(direct.read_text()) if direct.exists() else {}


def test_feed_pat_through_the_launcher(conda_env: dict[str, str], feed: FeedServer, store_connection: Callable[..., Any],
                                       owned_venv: Callable[..., Venv], tmp_path: Path) -> None:
    """A pip section with --index-url and --extra-index-url of feeds that demand a PAT installs
    with no credential in the file, the command line or the environment, and no keyring CLI on
    PATH but privpkg's launcher (base's bin is not on PATH)."""
    store_connection("feed-a", feed.index_a, feed.secret_a)
    store_connection("feed-b", feed.index_b, feed.secret_b)
    venv = owned_venv("test_conda_pipstep_feed", "pip>=26.2", privpkg=False)
    conda = CondaLike(conda_env)
    before = dict(conda_env)
    _took, failed = pip_step(conda, venv.path, [f"--index-url {feed.index_a}", f"--extra-index-url {feed.index_b}", "pkg-a==1.0", "pkg-b==2.0"],
                            tmp_path / "proj")
    assert failed is None, conda.outputs
    assert installed(venv, "pkg_a") is not None and installed(venv, "pkg_b") is not None
    feed.assert_challenged_then_authorized(FEED_A_PATH, "pkg_a-1.0-py3-none-any.whl")
    changed = {k for k in conda_env if conda_env.get(k) != before.get(k)}
    assert changed == {"PIP_KEYRING_PROVIDER", "PIP_NO_INPUT", "PATH"}
    assert conda_env["PATH"].split(os.pathsep)[0] == str(pipstep.launcher_dir())
    assert str(Path(sys.executable).parent) not in conda_env["PATH"].split(os.pathsep)
    for text in [*conda.outputs, json.dumps(conda_env), *(p.read_text() for p in pipstep.launcher_dir().iterdir())]:
        assert_no_secret(text, *feed.secrets)


def test_no_connection_fails_at_once_with_the_reason(conda_env: dict[str, str], feed: FeedServer, store_connection: Callable[..., Any],
                                                     venv_bare_pip: Venv, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No connection answers the feed: pip does not prompt (stdin stays open), the step fails at
    once, and privpkg's line says why and what to run."""
    store_connection("other", "https://pkgs.example/org/_packaging/other/pypi/simple/", "unit-PAT-0b9e1d2c3a")
    conda = CondaLike(conda_env)
    took, failed = pip_step(conda, venv_bare_pip.path, [f"--index-url {feed.index_a}", "pkg-a==1.0"], tmp_path / "proj")
    assert failed is not None and took < FAST, (took, conda.outputs)
    feed.assert_never_authorized()
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("privpkg:")]
    assert lines == [
        (f"privpkg: warning: pip's keyring lookup for {feed.index_a} during this pip step: nothing: no connection matches it; "
        f"add one with: privpkg auth login {feed.index_a} (privpkg doctor --last lists every lookup)")
    ], err
    assert installed(venv_bare_pip, "pkg_a") is None


def test_old_pip_gets_the_username_line_and_token_works(conda_env: dict[str, str], feed: FeedServer, store_connection: Callable[..., Any],
                                                        venv_pip231: Venv, owned_venv: Callable[..., Venv], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """pip 23.1 never asks keyring for an index URL without a username: the step fails at once
    and privpkg's line says what to write; with ``__token__@`` the same pip installs."""
    store_connection("feed-a", feed.index_a, feed.secret_a)
    conda = CondaLike(conda_env)
    took, failed = pip_step(conda, venv_pip231.path, [f"--index-url {feed.index_a}", "pkg-a==1.0"], tmp_path / "proj")
    assert failed is not None and took < FAST, (took, conda.outputs)
    token_url = feed.index_a.replace("://", "://__token__@")
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("privpkg:")]
    assert lines == [
        (f"privpkg: warning: the pip in {venv_pip231.path} is 23.1: before 26.2 pip asks keyring only for an index URL with a username; "
        f"write {token_url} in the pip section, or add pip>=26.2 to the environment's dependencies")
    ]

    venv = owned_venv("test_conda_pipstep_old_pip", "pip==23.1", privpkg=False)
    took, failed = pip_step(conda, venv.path, [f"--index-url {token_url}", "pkg-a==1.0"], tmp_path / "proj")
    assert failed is None and installed(venv, "pkg_a") is not None, conda.outputs
    for text in conda.outputs:
        assert_no_secret(text, *feed.secrets)


def test_privpkg_wheel_places_the_shim_only_when_needed(conda_env: dict[str, str], privpkg_cli: PrivpkgCLI,
                                                        owned_venv: Callable[..., Venv], tmp_path: Path) -> None:
    """A pip section without privpkg:// leaves the environment alone; one with it gets the pip
    shim before pip runs, installs the workspace wheel (direct_url.json and pip freeze keep the
    privpkg:// URL), ``privpkg doctor`` lists the environment, and ``setup pip --python ... --undo``
    removes the shim."""
    cli = privpkg_cli
    cli.ok("workspace", "add", "loc", "--local", tmp_path / "ws")
    wheel = make_wheel(tmp_path / "dist", "alpha-pkg", "1.0")
    url = cli.ok("wheel", "add", wheel, "--workspace", "loc").strip().splitlines()[-1]
    venv = owned_venv("test_conda_pipstep_shim", "pip>=26.2", privpkg=False)
    (venv.path / "conda-meta").mkdir(exist_ok=True)  # a conda environment, listed where conda lists them
    (Path(cli.env["HOME"]) / ".conda").mkdir(parents=True, exist_ok=True)
    (Path(cli.env["HOME"]) / ".conda" / "environments.txt").write_text(f"{venv.path}\n")
    site = next(venv.path.glob("lib/python*/site-packages"))

    make_wheel(tmp_path / "public", "beta-pkg", "2.0")
    conda = CondaLike(conda_env)
    _took, failed = pip_step(conda, venv.path, ["--no-index", f"--find-links {tmp_path / 'public'}", "beta-pkg==2.0"], tmp_path / "proj")
    assert failed is None and installed(venv, "beta_pkg") is not None, conda.outputs
    assert not (site / "_privpkg_pip_shim.pth").exists()  # not needed: not placed

    _took, failed = pip_step(conda, venv.path, ["--no-index", f"alpha-pkg @ {url}"], tmp_path / "proj")
    assert failed is None, conda.outputs
    assert (site / "_privpkg_pip_shim.pth").is_file()
    direct = installed(venv, "alpha_pkg")
    assert direct is not None and direct["url"] == url, direct
    freeze = cli.tool([*venv.pip, "freeze"])
    assert f"alpha-pkg @ {url}" in freeze.output, freeze.output
    assert str(tmp_path / "ws") not in "".join(conda.outputs)  # the signed (file) URL is never shown

    doctor = cli(*["doctor"])
    assert f"conda environment {venv.path} carries the pip shim (signing through {sys.executable})" in doctor.stdout, doctor.stdout
    out = cli.ok("setup", "pip", "--python", venv.python, "--undo")
    assert f"removed the pip shim from {site}" in out
    assert not (site / "_privpkg_pip_shim.pth").exists()
    assert f"conda environment {venv.path}" not in cli("doctor").stdout
    cli.outputs.check()
