"""privpkg.conda.envs and privpkg.conda.health in-process, without conda: conda's environments
found from environments.txt and the envs dirs (folders laid out as conda lays them out), which
of them carry the pip shim, ``privpkg doctor``'s lines for them, and ``conda doctor``'s checks
(a corrupt store or a wrong master key is one line, never an exception)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from privpkg import envvars
from privpkg.conda import envs, health, pipstep
from privpkg.setup_pip import SHIM_PACKAGE, SHIM_PTH


def conda_env(prefix: Path, shim_python: str | None = None, pip: str = "26.3") -> Path:
    """A folder shaped like a conda environment (conda-meta/, site-packages with pip), with the
    pip shim when ``shim_python`` names the interpreter it signs through."""
    (prefix / "conda-meta").mkdir(parents=True)
    site = prefix / "lib" / "python3.11" / "site-packages"
    (site / f"pip-{pip}.dist-info").mkdir(parents=True)
    if shim_python is not None:
        (site / SHIM_PACKAGE).mkdir()
        (site / SHIM_PACKAGE / "config.json").write_text(json.dumps({"python": shim_python}))
        (site / SHIM_PTH).write_text("import sys\n")
    return prefix


def test_known_prefixes_and_shim_envs(tmp_path: Path) -> None:
    home = tmp_path / "home"
    listed = conda_env(tmp_path / "elsewhere" / "proj-env", shim_python=sys.executable)
    (home / ".conda").mkdir(parents=True)
    (home / ".conda" / "environments.txt").write_text(f"{listed}\n{tmp_path / 'deleted-env'}\n\n")
    root = tmp_path / "miniconda"
    conda_env(root)
    (root / "bin").mkdir()
    in_root = conda_env(root / "envs" / "ml", shim_python="/gone/python")
    in_dirs = conda_env(tmp_path / "envs-dir" / "plain")
    (tmp_path / "envs-dir" / "not-an-env").mkdir()
    user_envs = conda_env(home / ".conda" / "envs" / "mine")
    environ = {"CONDA_EXE": str(root / "bin" / "conda"), "CONDA_ENVS_DIRS": str(tmp_path / "envs-dir")}

    assert envs.known_prefixes(environ, home) == [listed, in_dirs, in_root, user_envs, root]
    assert envs.shim_envs(environ, home) == [
        (listed, listed / "lib/python3.11/site-packages"),
        (in_root, in_root / "lib/python3.11/site-packages"),
    ]
    ok, gone = envs.doctor_checks(environ, home)
    assert ok.status == "ok" and ok.detail == (
        f"conda environment {listed} carries the pip shim (signing through {sys.executable}); "
        f"remove it: privpkg setup pip --python {listed}/bin/python --undo"
    )
    assert gone.status == "warn" and "(/gone/python) is gone" in gone.detail and f"--python {in_root}/bin/python --undo" in gone.detail
    assert envs.doctor_checks({}, tmp_path / "nobody") == []


def test_conda_doctor_checks(isolated_privpkg: Path, tmp_path: Path) -> None:
    plain = conda_env(tmp_path / "plain")
    found = health.checks(str(plain))
    assert [(c.name, c.status) for c in found] == [("privpkg", "ok"), ("store", "ok"), ("launcher", "ok"), ("pip-shim", "ok")]
    assert "written at the next conda create" in found[2].detail and "no privpkg pip shim" in found[3].detail

    pipstep.ensure_launcher()
    old = conda_env(tmp_path / "old", shim_python="/gone/python", pip="23.1")
    found = health.checks(str(old), verbose=True)
    by = {c.name: c for c in found}
    assert "is in place" in by["launcher"].detail and str(pipstep.launcher_dir()) in by["launcher"].detail
    assert by["pip-shim"].status == "fail" and f"privpkg setup pip --python {old}/bin/python" in by["pip-shim"].detail
    assert by["pip"].status == "warn" and "pip 23.1" in by["pip"].detail and "__token__@" in by["pip"].detail


@pytest.mark.parametrize("broken", ["corrupt", "wrong-key"])
def test_conda_doctor_with_a_broken_store_is_one_line(isolated_privpkg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: str) -> None:
    from privpkg.connections import set_connection

    set_connection("feed", "PythonFeed", "https://pkgs.example/feed/simple/", "PAT", value="unit-PAT-4f1c9a7e2b")
    if broken == "corrupt":
        (isolated_privpkg / "connections.store").write_bytes(b"garbage that is no store")
    else:
        monkeypatch.setenv(envvars.MASTER_KEY, "A" * 44)
    (store,) = [c for c in health.checks(str(conda_env(tmp_path / "e"))) if c.name == "store"]
    assert store.status == "fail" and "\n" not in store.detail and "unit-PAT" not in store.detail
