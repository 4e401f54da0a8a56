"""privpkg against real conda (support.conda): the harness itself, and the plugin as conda loads
it (issue 9, item 1): registered in base, cheap to import (no keyring, cryptography or store), and
harmless to every conda command when privpkg's store cannot be read. Skipped, with the reason
"conda is not installed", only where no conda is found; the first test (how conda is found) runs
everywhere."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.conda import TEST_CONDA_ENV, Conda, CondaRun, find_conda
from support.env import assert_no_secret

from privpkg import envvars
from privpkg.testing import make_wheel

#: Modules that mean privpkg read (or could read) its store: keyring, the cipher, the vault, the
#: connection sources and store.
HEAVY = ("keyring", "cryptography", "privpkg.vault", "privpkg.connections", "privpkg.keyring_backend")

SECRET = "conda-e2e-secret-7f3a9c51"


@pytest.mark.integration  # runs `python -m conda --version`
def test_conda_is_found_only_where_it_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No conda on PATH and no variable: None (the tests skip). A variable naming a Python
    without conda, or nothing at all: a one-line error (the tests fail, never skip)."""
    monkeypatch.delenv(TEST_CONDA_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no conda
    assert find_conda() is None
    for named in (sys.executable, str(tmp_path / "missing" / "python")):
        monkeypatch.setenv(TEST_CONDA_ENV, named)
        with pytest.raises(RuntimeError) as err:
            find_conda()
        assert "-m conda --version" in str(err.value) and "\n" not in str(err.value).strip(), err.value


@pytest.mark.conda
def test_create_from_the_local_channel(conda: Conda, tmp_path: Path) -> None:
    """The harness: ``conda create -p X python pip`` from the local channel, in scratch dirs only."""
    prefix = tmp_path / "x"
    r = conda.ok("create", "-p", prefix, "python", "pip")
    assert (prefix / "conda-meta").is_dir(), r.describe()
    assert (prefix / "bin" / "pip").exists(), r.describe()
    assert list(conda.pkgs_dir.glob("pip-*")), "the package cache is the test's own"
    assert conda.site_packages(prefix).is_dir()


@pytest.mark.conda
def test_env_create_runs_pip_with_base_activated(conda: Conda, tmp_path: Path) -> None:
    """The harness's user shell: with base activated, base's bin (privpkg, keyring) is first on
    PATH; ``conda env create`` then links python and pip from the channel and runs the ``pip:``
    section (here from a local folder, no index) in the new env, whose activation drops base's bin."""
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "conda-smoke", "1.0")
    activated = conda.activated_env()
    assert activated["PATH"].split(":")[0] == str(conda.base / "bin"), activated["PATH"]
    assert activated["CONDA_PREFIX"] == str(conda.base)
    yml = conda.write_env_file(tmp_path / "environment.yml", name="smoke", pip=["--no-index", f"--find-links {wheels}", "conda-smoke"])
    r = conda.ok("env", "create", "-f", yml, env=activated)
    prefix = conda.prefix("smoke")
    assert (conda.site_packages(prefix) / "conda_smoke.py").exists(), r.describe()
    assert "Successfully installed conda-smoke-1.0" in r.output


@pytest.mark.conda
def test_the_plugin_is_registered_in_base(conda: Conda) -> None:
    """privpkg's entry point (group ``conda``) is found by the conda that runs, with its hooks.
    (conda 26.7's ``conda info`` does not list plugins; ``conda plugins list`` does.)"""
    r = conda.ok("plugins", "list")
    rows = [line.split() for line in r.stdout.splitlines() if line.split()[:1] == ["privpkg"]]
    assert len(rows) == 1, r.describe()
    assert rows[0][2] == "active", r.describe()
    hooks = " ".join(rows[0][3:])
    for hook in ("auth_handlers", "health_checks", "pre_commands"):
        assert hook in hooks, r.describe()


def _modules_after(conda: Conda, code: str) -> list[str]:
    """``sys.modules`` after ``code`` in a fresh interpreter of conda's base, printed last on stdout."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    r = subprocess.run([str(conda.python), "-c", script], env=conda.env, cwd=conda.root, capture_output=True, text=True, timeout=300,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    modules: list[str] = json.loads(r.stdout.splitlines()[-1])
    return modules


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


@pytest.mark.conda
def test_importing_the_plugin_loads_no_keyring_cipher_or_store(conda: Conda) -> None:
    """Importing ``privpkg.conda.plugin`` (what conda does at every start) in a fresh interpreter
    of conda's base loads neither keyring, cryptography nor privpkg's store; neither does a whole
    ``conda info`` (conda's own main, in-process, so its sys.modules can be read), which also
    collects privpkg's hooks."""
    assert _heavy(_modules_after(conda, "import privpkg.conda.plugin")) == []
    in_conda = _modules_after(conda, "from conda.cli.main import main\nmain('info')")
    assert "privpkg.conda.plugin" in in_conda, "conda did not load the plugin: the check proves nothing"
    assert _heavy(in_conda) == []


def _store_a_connection(conda: Conda) -> None:
    r = subprocess.run([str(conda.base / "bin" / "privpkg"), "connection", "set", "feed", "--target", "https://feed.example/org/"],
                       input=SECRET + "\n", env=conda.env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert Path(conda.env[envvars.HOME], "connections.store").is_file()


def _works(r: CondaRun) -> None:
    assert r.returncode == 0, r.describe()
    assert "Traceback" not in r.output, r.describe()
    assert_no_secret(r.output, SECRET)


@pytest.mark.conda
@pytest.mark.parametrize("damage", ["corrupt store", "wrong master key"])
def test_conda_works_when_the_store_cannot_be_read(conda: Conda, tmp_path: Path, damage: str) -> None:
    """A corrupt store file, or a ``PRIVPKG_MASTER_KEY`` that is not the store's key: ``conda
    --version``, ``conda info``, ``conda plugins list`` and a ``conda create`` (whose pre-command
    privpkg's plugin runs) all still work, with no traceback and no secret in their output."""
    _store_a_connection(conda)
    env = dict(conda.env)
    if damage == "corrupt store":
        store = Path(env[envvars.HOME], "connections.store")
        store.write_bytes(store.read_bytes()[:20] + b"\0garbage" * 8)
    else:
        env[envvars.MASTER_KEY] = base64.b64encode(os.urandom(32)).decode()
    _works(conda("--version", env=env))
    _works(conda("info", env=env))
    listed = conda("plugins", "list", env=env)
    _works(listed)
    assert "privpkg" in listed.stdout
    _works(conda("create", "-p", tmp_path / "x", "python", env=env))


@pytest.mark.conda
@pytest.mark.parametrize("command", [["--version"], ["info"]])
def test_conda_prints_the_same_with_and_without_the_plugin(conda: Conda, command: list[str]) -> None:
    """``conda --version`` and ``conda info`` print the same with privpkg's plugin and with
    plugins off (``CONDA_NO_PLUGINS``), and nothing on stderr. (conda 26.7's ``--version`` takes a
    fast path that loads no plugin at all; ``info`` loads them and collects every hook.)"""
    with_plugin = conda(*command)
    without = conda(*command, env=conda.env | {"CONDA_NO_PLUGINS": "true"})
    for r in (with_plugin, without):
        assert r.returncode == 0 and r.stderr == "", r.describe()
    assert with_plugin.stdout.startswith("conda ") if command == ["--version"] else "conda version" in with_plugin.stdout
    assert with_plugin.stdout == without.stdout
