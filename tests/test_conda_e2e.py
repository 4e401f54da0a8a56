"""privpkg against real conda (support.conda): the harness itself, and the plugin's import cost
and robustness (issue 9, item 1). Skipped, with the reason "conda is not installed", only where
no conda is found."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.conda import Conda

from privpkg.testing import make_wheel

pytestmark = pytest.mark.conda


def test_create_from_the_local_channel(conda: Conda, tmp_path: Path) -> None:
    """The harness: ``conda create -p X python pip`` from the local channel, in scratch dirs only."""
    prefix = tmp_path / "x"
    r = conda.ok("create", "-p", prefix, "python", "pip")
    assert (prefix / "conda-meta").is_dir(), r.describe()
    assert (prefix / "bin" / "pip").exists(), r.describe()
    assert list(conda.pkgs_dir.glob("pip-*")), "the package cache is the test's own"
    assert conda.site_packages(prefix).is_dir()


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
