"""privpkg.conda.pipstep in-process, without conda: the pre-command's environment edits and the
``keyring`` launcher (private folder, atomic, rewritten only when wrong), the guard around
conda's private ``pip_subprocess`` (fake installer modules: plain objects), the requirements
scan that decides the pip shim, the failure lines (lookup-log reasons, old pip), and that the
pre-command loads neither keyring, cryptography nor the store."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from privpkg import envvars, lookuplog
from privpkg.conda import pipstep
from privpkg.errors import PrivpkgError
from privpkg.workspace import Workspace, add_workspace

ARGS = ["install", "-U", "-r", "REQ", "--exists-action=b"]


def test_prepare_environ_sets_defaults_and_puts_the_launcher_first(isolated_privpkg: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/h"}
    folder = pipstep.prepare_environ(env, python="/opt/base/bin/python3.11")
    assert folder == isolated_privpkg / "conda-bin"
    assert env == {"PATH": f"{folder}:/usr/bin:/bin", "HOME": "/h", "PIP_KEYRING_PROVIDER": "subprocess", "PIP_NO_INPUT": "1"}
    assert sorted(os.listdir(folder)) == ["keyring"]  # the folder holds the launcher only
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    launcher = folder / "keyring"
    assert stat.S_IMODE(launcher.stat().st_mode) == 0o700
    assert launcher.read_text().splitlines()[-1] == "exec /opt/base/bin/python3.11 -P -m privpkg.conda.keyringcli \"$@\""

    # A second command: the user's own choices stay, the folder is not added twice.
    env2 = {"PATH": f"/x:{folder}:/usr/bin", "PIP_KEYRING_PROVIDER": "import", "PIP_NO_INPUT": "0"}
    pipstep.prepare_environ(env2, python="/opt/base/bin/python3.11")
    assert env2 == {"PATH": f"{folder}:/x:/usr/bin", "PIP_KEYRING_PROVIDER": "import", "PIP_NO_INPUT": "0"}


def test_launcher_is_rewritten_only_when_wrong(isolated_privpkg: Path) -> None:
    folder = pipstep.ensure_launcher("/opt/a/python")
    launcher = folder / "keyring"
    before = launcher.stat()
    assert pipstep.ensure_launcher("/opt/a/python") == folder
    assert launcher.stat().st_ino == before.st_ino  # right already: not written again
    assert pipstep.launcher_current("/opt/a/python") and not pipstep.launcher_current("/opt/b/python")

    pipstep.ensure_launcher("/opt/b/python")  # base moved: rewritten, by a new file
    assert "/opt/b/python" in launcher.read_text() and launcher.stat().st_ino != before.st_ino

    os.chmod(launcher, 0o755)  # a wrong mode is wrong too
    pipstep.ensure_launcher("/opt/b/python")
    assert stat.S_IMODE(launcher.stat().st_mode) == 0o700

    # A symlink planted at the launcher's name is replaced, never written through.
    victim = isolated_privpkg / "victim"
    victim.write_text("keep")
    launcher.unlink()
    launcher.symlink_to(victim)
    pipstep.ensure_launcher("/opt/b/python")
    assert not launcher.is_symlink() and victim.read_text() == "keep"


def test_launcher_folder_must_be_ours(isolated_privpkg: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (isolated_privpkg / "conda-bin").symlink_to(elsewhere)
    with pytest.raises(PrivpkgError, match="not a folder of this user's"):
        pipstep.ensure_launcher("/opt/a/python")
    assert list(elsewhere.iterdir()) == []
    # The pre-command turns it into one line; conda goes on, the environment variables are set.
    env: dict[str, str] = {"PATH": "/usr/bin"}
    pipstep.pre_command("create", lambda: types.SimpleNamespace(), env)
    assert env["PIP_NO_INPUT"] == "1" and env["PATH"] == "/usr/bin"


def test_launcher_folder_mode_is_tightened(isolated_privpkg: Path) -> None:
    folder = isolated_privpkg / "conda-bin"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    pipstep.ensure_launcher("/opt/a/python")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def fake_pip_subprocess(args: list[str], prefix: str, cwd: str | None) -> tuple[str, str]:
    """conda 26.7's signature, doing nothing."""
    return "Successfully installed nothing", ""


def test_wrap_guard(isolated_privpkg: Path) -> None:
    module = types.SimpleNamespace(pip_subprocess=fake_pip_subprocess, __name__="conda.env.installers.pip")
    assert pipstep.wrap_pip_subprocess(module) is None
    wrapped = module.pip_subprocess
    assert wrapped is not fake_pip_subprocess
    assert pipstep.wrap_pip_subprocess(module) is None and module.pip_subprocess is wrapped  # once only

    gone = types.SimpleNamespace(__name__="conda.env.installers.pip")
    assert "pip_subprocess is gone" in (pipstep.wrap_pip_subprocess(gone) or "")

    def changed(args: list[str], prefix: str, cwd: str | None, env: dict[str, str]) -> None:
        raise AssertionError("never called")

    other = types.SimpleNamespace(pip_subprocess=changed)
    line = pipstep.wrap_pip_subprocess(other)
    assert line is not None and "takes (args, prefix, cwd, env)" in line and other.pip_subprocess is changed


def test_pre_command_says_one_line_when_the_installer_is_gone(isolated_privpkg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def installer() -> Any:
        raise ImportError("No module named 'conda.env.installers'")

    env = {"PATH": "/usr/bin"}
    pipstep.pre_command("env_update", installer, env)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach conda's pip installer: ImportError" in err
    assert env["PIP_KEYRING_PROVIDER"] == "subprocess"

    untouched = {"PATH": "/usr/bin"}
    pipstep.pre_command("info", installer, untouched)  # not a command with a pip section
    assert untouched == {"PATH": "/usr/bin"} and capsys.readouterr().err == ""


def test_requirements_file_argument(tmp_path: Path) -> None:
    assert pipstep.requirements_file(["install", "-U", "-r", "req.txt"], str(tmp_path)) == tmp_path / "req.txt"
    assert pipstep.requirements_file(["install", "--requirement=/abs/r.txt"], "/cwd") == Path("/abs/r.txt")
    assert pipstep.requirements_file(["install", "-r/abs/r.txt"], None) == Path("/abs/r.txt")
    assert pipstep.requirements_file(["install", "-U", "x"], "/cwd") is None


def test_scan_requirements(isolated_privpkg: Path, tmp_path: Path) -> None:
    add_workspace(Workspace("team", "azure", "https://acct1.blob.core.windows.net/wheels"))
    req = tmp_path / "condaenv.abc.requirements.txt"

    req.write_text("--index-url https://pkgs.example/feed/simple/\n--extra-index-url=https://other.example/simple/\nrequests==2.0\n")
    assert pipstep.scan_requirements(req) == pipstep.Scan(False, ("https://pkgs.example/feed/simple/", "https://other.example/simple/"))

    req.write_text("alpha @ privpkg://loc/wheels/alpha-1.0-py3-none-any.whl\n")
    assert pipstep.scan_requirements(req).needs_shim

    req.write_text("beta @ https://acct1.blob.core.windows.net/wheels/beta-1.0-py3-none-any.whl\n")
    assert pipstep.scan_requirements(req).needs_shim  # a registered Azure workspace's container
    req.write_text("beta @ https://acct2.blob.core.windows.net/wheels/beta-1.0-py3-none-any.whl\n")
    assert not pipstep.scan_requirements(req).needs_shim  # not a workspace of ours

    nested = tmp_path / "more.txt"
    nested.write_text("gamma @ privpkg://loc/wheels/gamma-1.0-py3-none-any.whl\n")
    req.write_text("-r more.txt\n")
    assert pipstep.scan_requirements(req).needs_shim
    assert pipstep.scan_requirements(tmp_path / "missing.txt") == pipstep.Scan(False, ())


def test_env_pip_version(tmp_path: Path) -> None:
    assert pipstep.env_pip_version(str(tmp_path)) is None
    (tmp_path / "lib/python3.11/site-packages/pip-23.1.dist-info").mkdir(parents=True)
    assert pipstep.env_pip_version(str(tmp_path)) == (23, 1)


FEED = "https://pkgs.example/org/_packaging/feed/pypi/simple/"


def record(service: str, reason: str, conn: Any = None) -> dict[str, Any]:
    return lookuplog.entry(service, None, api="get_credential", reason=reason, conn=conn)


def test_failure_lines_from_the_lookup_log() -> None:
    recs = [record("pkgs.example", "bare-host-not-opted-in"), record(FEED, "no-match"), record("pkgs.example", "bare-host-not-opted-in")]
    lines = pipstep.failure_lines(recs, "/envs/x", (FEED,), (26, 3))
    assert len(lines) == 1
    assert lines[0].startswith(f"pip's keyring lookup for {FEED} during this pip step: nothing: no connection matches it; ")
    assert f"privpkg auth login {FEED}" in lines[0] and "privpkg doctor --last" in lines[0]

    served = types.SimpleNamespace(name="feed", source="store", target=FEED, expired=False, expires=None, username="__token__")
    (line,) = pipstep.failure_lines([record(FEED, "match", served)], "/envs/x", (FEED,), (26, 3))
    assert "served by connection 'feed'" in line and "the PAT is wrong or revoked" in line

    (line,) = pipstep.failure_lines([record(FEED, "store-unreadable")], "/envs/x", (), None)
    assert "the store could not be read" in line


def test_failure_lines_for_an_old_pip() -> None:
    with_user = "https://__token__@pkgs.example/b/simple/"
    lines = pipstep.failure_lines([], "/envs/x", (FEED, with_user, "./local-dir"), (23, 1))
    assert lines == [
        ("the pip in /envs/x is 23.1: before 26.2 pip asks keyring only for an index URL with a username; write "
        "https://__token__@pkgs.example/org/_packaging/feed/pypi/simple/ in the pip section, or add pip>=26.2 to the "
        "environment's dependencies")
    ]
    assert pipstep.failure_lines([], "/envs/x", (with_user,), (23, 1)) == [
        ("pip asked privpkg for no credential during this pip step; privpkg doctor --pip /envs/x/bin/python checks what stands "
        "between that pip and privpkg")
    ]
    assert pipstep.failure_lines([], "/envs/x", (), (26, 3)) == []


def test_failure_lines_never_show_a_password_in_a_url() -> None:
    lines = pipstep.failure_lines([], "/envs/x", ("https://pkgs.example/org/feed/simple/?sig=abcdef0123456789",), (23, 1))
    assert "abcdef0123456789" not in lines[0]


class PipFailed(Exception):
    """Stands in for conda's CondaEnvException("Pip failed")."""


def test_wrapper_adds_the_reason_after_a_failure_and_reraises(isolated_privpkg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    req = tmp_path / "condaenv.x.requirements.txt"
    req.write_text(f"--index-url {FEED}\npkg-a==1.0\n")
    old = lookuplog.entry("https://old.example/simple/", None, api="get_credential", reason="no-match", now=0)
    lookuplog.append(lookuplog.log_path(), (json.dumps(old) + "\n").encode())
    calls: list[tuple[list[str], str, str | None]] = []

    def failing(args: list[str], prefix: str, cwd: str | None) -> tuple[str, str]:
        calls.append((args, prefix, cwd))
        # What the keyring CLI writes; a bare-host record, so an older URL record would win if
        # the wrapper read records from before the step.
        lookuplog.record("pkgs.example", None, api="get_credential", reason="bare-host-not-opted-in")
        raise PipFailed("Pip failed")

    wrapped = pipstep.wrap(failing)
    args = ["install", "-U", "-r", req.name, "--exists-action=b"]
    with pytest.raises(PipFailed, match="Pip failed"):
        wrapped(args, str(tmp_path / "env"), cwd=str(tmp_path))
    assert calls == [(args, str(tmp_path / "env"), str(tmp_path))]
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("privpkg: warning: pip's keyring lookup for pkgs.example during this pip step: nothing")
    assert "old.example" not in err[0]  # only what was recorded during this step

    def ok(args: list[str], prefix: str, cwd: str | None) -> tuple[str, str]:
        return "Successfully installed pkg-a-1.0", ""

    assert pipstep.wrap(ok)(args, str(tmp_path / "env"), str(tmp_path)) == ("Successfully installed pkg-a-1.0", "")
    assert capsys.readouterr().err == ""


def test_pre_command_loads_no_keyring_cryptography_or_store(tmp_path: Path) -> None:
    """The pre-command runs in every ``conda create``: it must not pay for keyring or decrypt
    anything (conda info and conda create work with a broken store)."""
    home = tmp_path / "privpkg"
    home.mkdir()
    (home / "connections.store").write_bytes(b"not a store")
    code = (
        "import sys, types\n"
        "from privpkg.conda import pipstep\n"
        "env = {'PATH': '/usr/bin'}\n"
        "pipstep.pre_command('create', lambda: types.SimpleNamespace(pip_subprocess=lambda args, prefix, cwd: None), env)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('keyring', 'cryptography') or m.startswith(('privpkg.connections', 'privpkg.vault')))\n"
        "print(bad, env['PIP_NO_INPUT'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in envvars.ALL and not k.startswith("PIP_")}
    env[envvars.HOME] = str(home)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=False)
    assert r.returncode == 0 and r.stdout.strip() == "[] 1" and r.stderr == "", r.stdout + r.stderr


def _python_record(prefix: Path, name: str, record: dict[str, Any]) -> None:
    (prefix / "conda-meta").mkdir(parents=True, exist_ok=True)
    (prefix / "conda-meta" / name).write_text(json.dumps(record))


def test_env_purelib_from_condas_python_record(tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    assert pipstep.env_purelib(str(prefix)) is None  # no conda-meta: ask the interpreter
    _python_record(prefix, "python-dateutil-2.9.0-pyhd8ed1ab_0.json", {"name": "python-dateutil", "version": "2.9.0"})
    (prefix / "lib/python2.9/site-packages").mkdir(parents=True)
    assert pipstep.env_purelib(str(prefix)) is None, "python-dateutil is not python"
    _python_record(prefix, "python-3.11.9-h1234_0_cpython.json", {"name": "python", "version": "3.11.9"})
    assert pipstep.env_purelib(str(prefix)) is None, "no such folder: ask the interpreter"
    (prefix / "lib/python3.11/site-packages").mkdir(parents=True)
    assert pipstep.env_purelib(str(prefix)) == prefix / "lib/python3.11/site-packages"
    # CEP 17: the record names the folder (a free-threaded build's python3.13t).
    _python_record(prefix, "python-3.11.9-h1234_0_cpython.json",
                   {"name": "python", "version": "3.13.1", "python_site_packages_path": "lib/python3.13t/site-packages"})
    (prefix / "lib/python3.13t/site-packages").mkdir(parents=True)
    assert pipstep.env_purelib(str(prefix)) == prefix / "lib/python3.13t/site-packages"
    for bad in ("/usr/lib/python3/dist-packages", "../../elsewhere"):
        _python_record(prefix, "python-3.11.9-h1234_0_cpython.json", {"name": "python", "version": "3.11.9", "python_site_packages_path": bad})
        assert pipstep.env_purelib(str(prefix)) is None, bad
    _python_record(prefix, "python-3.11.9-h1234_0_cpython.json", {"name": "python", "version": "3.11.9"})
    _python_record(prefix, "python-3.12.1-h1234_0_cpython.json", {"name": "python", "version": "3.12.1"})
    assert pipstep.env_purelib(str(prefix)) is None, "two python records: ask the interpreter"


def test_the_shim_is_placed_without_starting_the_environments_python(isolated_privpkg: Path, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """With conda's python record the shim goes into its site-packages and the environment's
    interpreter is never run (here it cannot run: asking it fails, as the second half shows)."""
    from privpkg.setup_pip import SHIM_PTH

    prefix = tmp_path / "env"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "python").write_text("#!/bin/sh\nexit 3\n")
    (prefix / "bin" / "python").chmod(0o755)
    req = tmp_path / "condaenv.x.requirements.txt"
    req.write_text("ws-pkg @ privpkg://default/wheels/ws_pkg-1.0-py3-none-any.whl\n")
    args = ["install", "-U", "-r", str(req), "--exists-action=b"]
    _python_record(prefix, "python-3.11.9-h1234_0_cpython.json", {"name": "python", "version": "3.11.9"})
    site = prefix / "lib/python3.11/site-packages"
    site.mkdir(parents=True)
    assert pipstep.before_pip(args, str(prefix), str(tmp_path)).needs_shim
    assert (site / SHIM_PTH).is_file()
    assert "warning" not in capsys.readouterr().err
    (site / SHIM_PTH).unlink()
    (prefix / "conda-meta" / "python-3.11.9-h1234_0_cpython.json").unlink()
    pipstep.before_pip(args, str(prefix), str(tmp_path))
    assert "is not a working Python interpreter" in capsys.readouterr().err and not (site / SHIM_PTH).exists()


def test_installer_warning_only_where_an_environment_file_runs(isolated_privpkg: Path, capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A conda without pip_subprocess: the line on `conda install --file env.yml`, not on every
    `conda install numpy` (the audit found it printed on each)."""
    def installer() -> Any:
        raise ImportError("No module named 'conda.env.installers'")

    monkeypatch.setattr(sys, "argv", ["conda", "install", "numpy"])
    pipstep.pre_command("install", installer, {"PATH": "/usr/bin"})
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys, "argv", ["conda", "install", "-n", "x", "--file", "environment.yml"])
    pipstep.pre_command("install", installer, {"PATH": "/usr/bin"})
    assert "cannot reach conda's pip installer" in capsys.readouterr().err


def test_launcher_folder_holds_only_the_launcher(isolated_privpkg: Path) -> None:
    """The folder is first on PATH for all of conda's children: anything planted beside the
    launcher (a `bash`, a `python`, a folder, a symlink) is removed before conda runs them."""
    folder = pipstep.launcher_dir()
    pipstep.ensure_launcher()
    for name in ("bash", "python"):
        (folder / name).write_text("#!/bin/sh\necho planted\n")
        (folder / name).chmod(0o755)
    (folder / "sub").mkdir()
    (folder / "uname").symlink_to("/bin/false")
    pipstep.ensure_launcher()
    assert sorted(p.name for p in folder.iterdir()) == ["keyring"]
