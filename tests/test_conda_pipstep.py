"""conda's pip step with privpkg's plugin (issue 9, items 2 and 3).

Without conda (the tests up to the real-conda ones run in CI): conda's ``pip_subprocess`` is replaced by a plain function that
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
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.builds import Venv
from support.cli import PrivpkgCLI, signature_values
from support.conda import Conda, CondaRun
from support.env import assert_no_secret
from support.feeds import FEED_A_PATH, FeedServer
from support.storage import Azurite, MotoServer

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
def conda_environ(make_env: Callable[..., dict[str, str]], privpkg_home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
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


def test_feed_pat_through_the_launcher(conda_environ: dict[str, str], feed: FeedServer, store_connection: Callable[..., Any],
                                       owned_venv: Callable[..., Venv], tmp_path: Path) -> None:
    """A pip section with --index-url and --extra-index-url of feeds that demand a PAT installs
    with no credential in the file, the command line or the environment, and no keyring CLI on
    PATH but privpkg's launcher (base's bin is not on PATH)."""
    store_connection("feed-a", feed.index_a, feed.secret_a)
    store_connection("feed-b", feed.index_b, feed.secret_b)
    venv = owned_venv("test_conda_pipstep_feed", "pip>=26.2", privpkg=False)
    conda = CondaLike(conda_environ)
    before = dict(conda_environ)
    _took, failed = pip_step(conda, venv.path, [f"--index-url {feed.index_a}", f"--extra-index-url {feed.index_b}", "pkg-a==1.0", "pkg-b==2.0"],
                            tmp_path / "proj")
    assert failed is None, conda.outputs
    assert installed(venv, "pkg_a") is not None and installed(venv, "pkg_b") is not None
    feed.assert_challenged_then_authorized(FEED_A_PATH, "pkg_a-1.0-py3-none-any.whl")
    changed = {k for k in conda_environ if conda_environ.get(k) != before.get(k)}
    assert changed == {"PIP_KEYRING_PROVIDER", "PIP_NO_INPUT", "PATH"}
    assert conda_environ["PATH"].split(os.pathsep)[0] == str(pipstep.launcher_dir())
    assert str(Path(sys.executable).parent) not in conda_environ["PATH"].split(os.pathsep)
    for text in [*conda.outputs, json.dumps(conda_environ), *(p.read_text() for p in pipstep.launcher_dir().iterdir())]:
        assert_no_secret(text, *feed.secrets)


def test_no_connection_fails_at_once_with_the_reason(conda_environ: dict[str, str], feed: FeedServer, store_connection: Callable[..., Any],
                                                     venv_bare_pip: Venv, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No connection answers the feed: pip does not prompt (stdin stays open), the step fails at
    once, and privpkg's line says why and what to run."""
    store_connection("other", "https://pkgs.example/org/_packaging/other/pypi/simple/", "unit-PAT-0b9e1d2c3a")
    conda = CondaLike(conda_environ)
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


def test_old_pip_gets_the_username_line_and_token_works(conda_environ: dict[str, str], feed: FeedServer, store_connection: Callable[..., Any],
                                                        venv_pip231: Venv, owned_venv: Callable[..., Venv], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """pip 23.1 never asks keyring for an index URL without a username: the step fails at once
    and privpkg's line says what to write; with ``__token__@`` the same pip installs."""
    store_connection("feed-a", feed.index_a, feed.secret_a)
    conda = CondaLike(conda_environ)
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


def test_privpkg_wheel_places_the_shim_only_when_needed(conda_environ: dict[str, str], privpkg_cli: PrivpkgCLI,
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
    conda = CondaLike(conda_environ)
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


# --- real conda (support.conda): skipped with "conda is not installed" only where there is none ---


def conda_open_stdin(conda: Conda, *args: str | Path, env: dict[str, str], cwd: Path | None = None, timeout: float = 600) -> CondaRun:
    """``conda ARGS`` with a stdin that never ends (a terminal the user does not type into): a
    pip that prompted would hang until ``timeout`` instead of failing on EOF."""
    argv = [str(conda.exe), *map(str, args)]
    read_end, write_end = os.pipe()
    start = time.monotonic()
    try:
        proc = subprocess.run(argv, env=env, cwd=cwd or conda.root, stdin=read_end, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"timed out after {timeout}s (a prompt?): {' '.join(argv)}") from exc
    finally:
        os.close(read_end)
        os.close(write_end)
    return CondaRun(argv, proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"),
                    time.monotonic() - start)


def no_leak(text: str, *secrets_: str) -> None:
    """No secret and no signature of a signed URL (Azure ``sig=``, S3 ``X-Amz-Signature``, or the
    64 hex digits botocore logs as ``Signature:``) in ``text``."""
    if secrets_:
        assert_no_secret(text, *secrets_)
    assert signature_values(text) == set() and "sig=" not in text and "X-Amz-Signature" not in text, text
    assert re.search(r"Signature[=:]\s*[0-9a-f]{64}", text) is None, text


def env_file(tmp_path: Path) -> Path:
    """Where the test's environment.yml goes (a project folder: conda writes its temporary
    requirements file beside it, and pip runs there)."""
    (tmp_path / "proj").mkdir(exist_ok=True)
    return tmp_path / "proj" / "environment.yml"


def conda_listed(conda: Conda, prefix: Path, env: dict[str, str]) -> str:
    return conda.ok("list", "-p", prefix, env=env).stdout


@pytest.mark.conda
@pytest.mark.parametrize(("command", "shell"), [("env-create", "base-activated"), ("env-create", "plain"), ("create-file", "base-activated"),
                                              ("install-file", "base-activated"), ("env-update", "base-activated")])
def test_conda_pip_section_from_pat_feeds(conda: Conda, feed: FeedServer, store_connection: Callable[..., Any], tmp_path: Path,
                                          command: str, shell: str) -> None:
    """``conda env create -f`` / ``conda create --file`` / ``conda install --file`` of an environment.yml whose pip section
    uses two feeds that demand a PAT (--index-url, --extra-index-url) installs with no credential in
    the file, on the command line or in any variable; with base activated, the keyring in base's
    bin is off PATH in the pip step, and privpkg's launcher stands in."""
    store_connection("feed-a", feed.index_a, feed.secret_a)
    store_connection("feed-b", feed.index_b, feed.secret_b)
    env = conda.activated_env() if shell == "base-activated" else conda.env
    yml = conda.write_env_file(env_file(tmp_path), name="feeds",
                               pip=[f"--index-url {feed.index_a}", f"--extra-index-url {feed.index_b}", "pkg-a==1.0", "pkg-b==2.0"])
    if command in ("install-file", "env-update"):  # into an existing env (nothing new to link for env update)
        conda.ok("create", "-n", "feeds", "python", "pip")
    args = {"env-create": ["env", "create", "-f", yml], "create-file": ["create", "-n", "feeds", "--file", yml],
            "install-file": ["install", "-n", "feeds", "--file", yml], "env-update": ["env", "update", "-n", "feeds", "-f", yml]}[command]
    r = conda_open_stdin(conda, *args, env=env)
    assert r.returncode == 0, r.describe()
    site = conda.site_packages(conda.prefix("feeds"))
    assert (site / "pkg_a.py").exists() and (site / "pkg_b.py").exists(), r.describe()
    feed.assert_challenged_then_authorized(FEED_A_PATH, "pkg_a-1.0-py3-none-any.whl")
    assert not (site / "_privpkg_pip_shim.pth").exists()  # no privpkg:// line: the environment is left alone
    for text in (r.output, json.dumps(env), yml.read_text(), " ".join(r.argv)):
        no_leak(text, *feed.secrets)
    # conda's process answered the launcher (privpkg.conda.broker): the environment conda's
    # activation gives the pip step counts as conda's own.
    read = subprocess.run([str(conda.base / "bin" / "python"), "-c", "import json; from privpkg import lookuplog; print(json.dumps(lookuplog.read_last(20)))"],
                          env=conda.env, capture_output=True, text=True, timeout=120, check=False)
    served = [rec for rec in json.loads(read.stdout) if rec.get("served") and rec.get("service") == feed.index_a]
    assert served and all(rec.get("via") == "broker" and rec.get("program") == "keyring" for rec in served), read.stdout + read.stderr


@pytest.mark.conda
def test_conda_pip_step_with_no_connection_fails_at_once_with_the_reason(conda: Conda, feed: FeedServer, store_connection: Callable[..., Any],
                                                                         tmp_path: Path) -> None:
    store_connection("other", "https://pkgs.example/org/_packaging/other/pypi/simple/", "conda-test-PAT-5d2e7a9b1c")
    yml = conda.write_env_file(env_file(tmp_path), name="nofeed", pip=[f"--index-url {feed.index_a}", "pkg-a==1.0"])
    r = conda_open_stdin(conda, "env", "create", "-f", yml, env=conda.activated_env(), timeout=300)
    assert r.returncode != 0, r.describe()
    feed.assert_never_authorized()
    line = (f"privpkg: warning: pip's keyring lookup for {feed.index_a} during this pip step: nothing: no connection matches it; "
            f"add one with: privpkg auth login {feed.index_a} (privpkg doctor --last lists every lookup)")
    assert line in r.stderr.splitlines(), r.describe()
    assert "Traceback" not in r.output
    last = subprocess.run([str(conda.base / "bin" / "privpkg"), "doctor", "--last", "2"], env=conda.env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert last.returncode == 0 and "no connection matches it" in last.stdout and feed.index_a in last.stdout, last.stdout + last.stderr


@pytest.mark.conda
def test_conda_env_update_places_the_shim_with_nothing_to_link(conda: Conda, privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    """``conda env update -f`` of an existing environment, nothing new to link (no transaction
    runs): the pip section names a privpkg:// wheel of a local workspace, the shim is placed before
    pip runs, and direct_url.json, pip freeze and conda list keep privpkg://; ``privpkg doctor``
    lists the environment, ``conda doctor`` shows privpkg's checks, ``setup pip --python ... --undo``
    removes the shim."""
    cli = privpkg_cli
    cli.ok("workspace", "add", "loc", "--local", tmp_path / "ws")
    wheel = make_wheel(tmp_path / "dist", "alpha-pkg", "1.0")
    url = cli.ok("wheel", "add", wheel, "--workspace", "loc").strip().splitlines()[-1]
    yml = conda.write_env_file(env_file(tmp_path), name="upd", dependencies=["python", "pip"])
    conda.ok("env", "create", "-f", yml)
    prefix = conda.prefix("upd")
    site = conda.site_packages(prefix)
    assert not (site / "_privpkg_pip_shim.pth").exists()
    asked = subprocess.run([str(prefix / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                           env=conda.env, capture_output=True, text=True, timeout=120, check=True).stdout.strip()
    # The shim goes where conda's python record says, without starting the interpreter: the same folder it names.
    assert pipstep.env_purelib(str(prefix)) == Path(asked) == site

    conda.write_env_file(yml, name="upd", dependencies=["python", "pip"], pip=["--no-index", f"alpha-pkg @ {url}"])
    r = conda_open_stdin(conda, "env", "update", "-f", yml, env=conda.activated_env())
    assert r.returncode == 0, r.describe()
    assert (site / "_privpkg_pip_shim.pth").is_file(), r.describe()
    direct = json.loads((site / "alpha_pkg-1.0.dist-info" / "direct_url.json").read_text())
    assert direct["url"] == url
    freeze = subprocess.run([str(prefix / "bin" / "python"), "-m", "pip", "freeze"], env=conda.env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert f"alpha-pkg @ {url}" in freeze.stdout, freeze.stdout + freeze.stderr
    # conda list shows the URL as the channel (privpkg's prefix-data loader); conda env export
    # writes a bare pin (conda's exporter hard-codes name==version).
    listed = conda_listed(conda, prefix, conda.env)
    assert re.search(rf"^alpha-pkg\s+1\.0\s+pypi_0\s+{re.escape(url)}$", listed, re.MULTILINE), listed
    exported = conda.ok("env", "export", "-p", prefix).stdout
    assert "    - alpha-pkg==1.0" in exported and "privpkg://" not in exported, exported
    assert str(tmp_path / "ws") not in r.output  # the signed (file) URL is never shown

    doctor = cli("doctor")
    assert f"conda environment {prefix} carries the pip shim (signing through {conda.base / 'bin' / 'python'})" in doctor.stdout, doctor.stdout
    health = conda.ok("doctor", "-p", prefix)
    assert f"privpkg's pip shim is in this environment, signing through {conda.base / 'bin' / 'python'}" in health.stdout, health.describe()
    assert "privpkg's keyring launcher for pip sections is in place" in health.stdout
    out = cli.ok("setup", "pip", "--python", prefix / "bin" / "python", "--undo")
    assert f"removed the pip shim from {site}" in out and not (site / "_privpkg_pip_shim.pth").exists()
    assert f"conda environment {prefix}" not in cli("doctor").stdout
    cli.outputs.check()


@pytest.mark.conda
@pytest.mark.parametrize("verbosity", ["-v", "-vvv"])
def test_conda_privpkg_wheels_from_azure_and_s3_show_no_signature(conda: Conda, privpkg_cli: PrivpkgCLI, azurite: Azurite,
                                                                 moto_server: MotoServer, tmp_path: Path, verbosity: str) -> None:
    """privpkg:// wheels of an Azure (Azurite) and an S3 (moto) workspace in one pip section:
    installed through the shim, with conda at -v and -vvv and pip at PIP_VERBOSE=3 printing no signature."""
    cli = privpkg_cli
    cli.outputs.add_secret(azurite.key)
    cli.outputs.add_secret(moto_server.secret_key)
    container = azurite.create_container()
    cli.ok("workspace", "add", "az", "--azure", container)
    cli.ok("connection", "set", "az-blob", "--category", "AzureBlob", "--target", container, stdin=azurite.key + "\n")
    bucket = moto_server.create_bucket()
    cli.ok("workspace", "add", "s3ws", "--s3", f"s3://{bucket}/wheels", "--endpoint-url", moto_server.endpoint)
    cli.ok("connection", "set", "s3conn", "--category", "S3", "--target", f"s3://{bucket}", "--username", moto_server.access_key,
           "--endpoint", moto_server.endpoint, stdin=moto_server.secret_key + "\n")
    az_url = cli.ok("wheel", "add", make_wheel(tmp_path / "a", "az-pkg", "1.0"), "--workspace", "az").strip().splitlines()[-1]
    s3_url = cli.ok("wheel", "add", make_wheel(tmp_path / "s", "s3-pkg", "1.5"), "--workspace", "s3ws").strip().splitlines()[-1]

    yml = conda.write_env_file(env_file(tmp_path), name="cloud", pip=["--no-index", f"az-pkg @ {az_url}", f"s3-pkg @ {s3_url}"])
    r = conda_open_stdin(conda, "env", "create", verbosity, "-f", yml, env=conda.activated_env() | {"PIP_VERBOSE": "3"})
    assert r.returncode == 0, r.describe()
    site = conda.site_packages(conda.prefix("cloud"))
    for dist, url in (("az_pkg-1.0", az_url), ("s3_pkg-1.5", s3_url)):
        assert json.loads((site / f"{dist}.dist-info" / "direct_url.json").read_text())["url"] == url
    # pip's verbose lines (conda prints pip's output after it exits): the download requests were shown.
    assert "Successfully installed az-pkg-1.0 s3-pkg-1.5" in r.output and '"GET privpkg://s3ws/wheels/' in r.output, r.describe()
    no_leak(r.output, azurite.key, moto_server.secret_key)
    listed = conda_listed(conda, conda.prefix("cloud"), conda.env)
    assert az_url in listed and s3_url in listed, listed  # the privpkg:// URLs, never a signed one
    no_leak(listed, azurite.key, moto_server.secret_key)
    # What conda and pip recorded: the installed distributions' metadata and conda-meta.
    for p in [*site.glob("az_pkg-*.dist-info/*"), *site.glob("s3_pkg-*.dist-info/*"), *(conda.prefix("cloud") / "conda-meta").rglob("*")]:
        if p.is_file():
            no_leak(p.read_text(errors="replace"))
    cli.outputs.add("conda env create -v", r.output)
    cli.outputs.check()


@pytest.mark.conda
def test_conda_plugin_hooks_match_conda(conda: Conda) -> None:
    """plugin.py spells the pre-command's commands itself (registering the hook imports nothing of
    privpkg): they equal pipstep's; and the real conda's pip_subprocess has the signature the
    wrapper expects, so the guard wraps it."""
    code = (
        "import conda.env.installers.pip as m\n"
        "from privpkg.conda import pipstep, plugin\n"
        "assert plugin.PIP_COMMANDS == pipstep.PIP_COMMANDS, plugin.PIP_COMMANDS\n"
        "assert pipstep.wrap_pip_subprocess(m) is None\n"
        "print(getattr(m.pip_subprocess, '__privpkg_wrapped__').__module__)\n"
    )
    r = subprocess.run([str(conda.python), "-c", code], env=conda.env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0 and r.stdout.strip() == "conda.env.pip_util", r.stdout + r.stderr


@pytest.mark.conda
def test_conda_doctor_shows_privpkg_checks_with_a_broken_store(conda: Conda, privpkg_home: Path) -> None:
    """``conda doctor`` lists privpkg's check and runs it; a store that cannot be read is one
    failing line of privpkg's, and conda doctor itself goes on."""
    listed = conda.ok("doctor", "--list")
    assert "  privpkg: its store, the keyring launcher for pip sections, the pip shim and pip in the environment" in listed.stdout, listed.describe()
    (privpkg_home / "connections.store").write_bytes(b"not a store at all")
    r = conda.ok("doctor", "-p", conda.base)
    lines = [ln for ln in r.stdout.splitlines() if "privpkg" in ln]
    assert any(ln.startswith("❌ privpkg's store: ") for ln in lines), r.describe()
    assert any(ln.startswith("✅ privpkg 0.") for ln in lines) and "Traceback" not in r.output, r.describe()


@pytest.mark.conda
def test_conda_list_shows_the_privpkg_url(conda: Conda, privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    """``conda list`` of an environment whose pip section installed a privpkg:// wheel shows that
    URL as the wheel's channel (privpkg's prefix-data loader, run after conda's ``pypi`` one), and
    ``--json`` as its ``base_url``; a wheel from an index stays ``pypi``. Only the channel changes:
    ``--export``/``--explicit`` and ``conda env export`` (a bare ``name==version``: conda's exporter
    hard-codes it) write what they wrote before, and with ``pip_interop_enabled`` conda's solver
    (``conda install``) and ``conda remove`` of the wheel work. ``conda export --format
    privpkg-yaml`` writes ``alpha-pkg @ privpkg://...``, and ``conda env create`` of that file
    installs the same wheel."""
    cli = privpkg_cli
    cli.ok("workspace", "add", "loc", "--local", tmp_path / "ws")
    url = cli.ok("wheel", "add", make_wheel(tmp_path / "dist", "alpha-pkg", "1.0"), "--workspace", "loc").strip().splitlines()[-1]
    make_wheel(tmp_path / "public", "beta-pkg", "2.0")
    yml = conda.write_env_file(env_file(tmp_path), name="listed",
                               pip=["--no-index", f"--find-links {tmp_path / 'public'}", "beta-pkg==2.0", f"alpha-pkg @ {url}"])
    conda.ok("env", "create", "-f", yml)
    prefix = conda.prefix("listed")

    order = ("from conda.base.context import context\n"
             "from privpkg.conda import plugin, pypirecords\n"
             "assert plugin.PREFIX_DATA_LOADER == pypirecords.LOADER_NAME\n"
             "print(' '.join(p.name for p in context.plugin_manager.get_hook_results('prefix_data_loaders')))\n")
    r = subprocess.run([str(conda.python), "-c", order], env=conda.env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0 and r.stdout.split() == ["pypi", "pypi-privpkg"], r.stdout + r.stderr

    listed = conda_listed(conda, prefix, conda.env)
    assert re.search(rf"^alpha-pkg\s+1\.0\s+pypi_0\s+{re.escape(url)}$", listed, re.MULTILINE), listed
    assert re.search(r"^beta-pkg\s+2\.0\s+pypi_0\s+pypi$", listed, re.MULTILINE), listed
    assert url in conda.ok("list", "-p", prefix, "--show-channel-urls").stdout
    as_json = {p["name"]: p for p in json.loads(conda.ok("list", "-p", prefix, "--json").stdout)}
    assert as_json["alpha-pkg"]["base_url"] == url and as_json["alpha-pkg"]["platform"] == "pypi", as_json["alpha-pkg"]
    assert as_json["alpha-pkg"]["build_string"] == "pypi_0" and as_json["beta-pkg"]["channel"] == "pypi", as_json
    assert "alpha-pkg=1.0=pypi_0" in conda.ok("list", "-p", prefix, "--export").stdout

    interop = conda.env | {"CONDA_PIP_INTEROP_ENABLED": "true"}
    explicit = conda.ok("list", "-p", prefix, "--explicit", env=interop).stdout
    assert "# no URL for: alpha_pkg-1.0.dist-info" in explicit and "privpkg://" not in explicit, explicit  # never a package URL
    exported = conda.ok("env", "export", "-p", prefix).stdout
    assert "    - alpha-pkg==1.0" in exported and "privpkg://" not in exported, exported
    # privpkg's export format writes the URL; an environment made from that file gets the same wheel.
    ours = conda.ok("export", "-p", prefix, "--format", "privpkg-yaml").stdout
    assert f"      - alpha-pkg @ {url}\n" in ours and "      - beta-pkg==2.0\n" in ours, ours
    copy_yml = tmp_path / "proj" / "exported.yml"
    copy_yml.write_text(ours)
    conda.ok("env", "create", "-f", copy_yml, "-n", "copied",
             env=conda.env | {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path / "public")})
    copied = conda.site_packages(conda.prefix("copied"))
    assert json.loads((copied / "alpha_pkg-1.0.dist-info" / "direct_url.json").read_text())["url"] == url

    solved = conda.ok("install", "-p", prefix, "pip", env=interop)
    assert "All requested packages already installed" in solved.stdout, solved.describe()
    removed = conda.ok("remove", "-p", prefix, "alpha-pkg", env=interop)
    assert "alpha-pkg-1.0-pypi_0" in removed.stdout, removed.describe()
    assert not list(conda.site_packages(prefix).glob("alpha_pkg-*")) and "alpha-pkg" not in conda_listed(conda, prefix, conda.env)
    for text in (listed, explicit, exported, ours, solved.output, removed.output):
        no_leak(text)
    cli.outputs.check()


@pytest.mark.conda
def test_conda_old_pip_in_the_new_env_gets_the_username_line(conda: Conda, feed: FeedServer, store_connection: Callable[..., Any],
                                                               tmp_path: Path) -> None:
    """Real conda, an environment whose pip is 23.2.1 (from a channel that holds it beside the
    newest): an index URL without a username fails at once with privpkg's line saying to write
    ``__token__@`` or to ask for pip>=26.2; with ``__token__@`` the same environment installs."""
    from support.conda_channel import build_channel

    store_connection("feed-a", feed.index_a, feed.secret_a)
    old = build_channel([], separately=[["pip==23.2.1"]]).url
    yml = conda.write_env_file(env_file(tmp_path), name="oldpip", dependencies=["python", "pip=23.2.1"],
                               pip=[f"--index-url {feed.index_a}", "pkg-a==1.0"])
    yml.write_text(f"channels: [{old}]\n" + yml.read_text())  # `conda env create` takes no -c
    r = conda_open_stdin(conda, "env", "create", "-f", yml, env=conda.activated_env(), timeout=300)
    assert r.returncode != 0, r.describe()
    token_url = feed.index_a.replace("://", "://__token__@")
    prefix = conda.prefix("oldpip")
    line = (f"privpkg: warning: the pip in {prefix} is 23.2.1: before 26.2 pip asks keyring only for an index URL with a username; "
            f"write {token_url} in the pip section, or add pip>=26.2 to the environment's dependencies")
    assert line in r.stderr.splitlines(), r.describe()
    feed.assert_never_authorized()
    conda.write_env_file(yml, name="oldpip", dependencies=["python", "pip=23.2.1"], pip=[f"--index-url {token_url}", "pkg-a==1.0"])
    yml.write_text(f"channels: [{old}]\n" + yml.read_text())
    r2 = conda_open_stdin(conda, "env", "update", "-f", yml, env=conda.activated_env(), timeout=300)
    assert r2.returncode == 0 and (conda.site_packages(prefix) / "pkg_a.py").exists(), r2.describe()
    for text in (r.output, r2.output):
        no_leak(text, *feed.secrets)
