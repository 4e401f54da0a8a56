"""``privpkg demo`` end to end: it must succeed on this machine and leave nothing running."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.version import Version
from support.builds import build_once, make_venv
from support.cli import PrivpkgCLI
from support.env import missing_tool, run

from privpkg.demo import pip_flags
from privpkg.errors import PrivpkgError
from privpkg.testing import port_accepts


def test_demo_runs_and_cleans_up(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    res = privpkg_cli("demo", env={"TMPDIR": str(tmp_path)}, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "without a PAT it answers HTTP 401" in out
    assert "stored its PAT as connection 'demo-feed'" in out
    assert "Successfully installed privpkg-demo-hello-1.0" in out
    assert "the venv imports it: hello from a private feed" in out
    assert "the PAT appeared in pip's output: no" in out
    assert "demo succeeded" in out and "Traceback" not in out
    port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", out).group(1))  # type: ignore[union-attr]
    assert not port_accepts(port), "the demo feed is still running"
    assert not list(tmp_path.glob("privpkg-demo-*")), "the demo left its temp dir behind"


#: Where a stock Debian/Ubuntu python3 lives; its `python3 -m venv` gives the distribution's pip
#: wheel (pip 23.0.1 on Debian 12's Python 3.11.2), older than pip 23.1's --keyring-provider.
_SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/bin/python3.11", "/usr/bin/python3.12")


def _python_with_old_ensurepip() -> Path:
    """A Python privpkg runs on (3.11+) whose ``venv`` module installs a pip older than 23.1."""
    code = "import sys, ensurepip; print(sys.version_info >= (3, 11), ensurepip.version())"
    for exe in _SYSTEM_PYTHONS:
        if not Path(exe).exists():
            continue
        res = subprocess.run([exe, "-c", code], capture_output=True, text=True, check=False)
        ok, _, version = res.stdout.strip().partition(" ")
        if res.returncode == 0 and ok == "True" and Version(version) < Version("23.1"):
            return Path(exe)
    missing_tool(f"no Python 3.11+ whose `python -m venv` gives pip < 23.1 (looked at {', '.join(_SYSTEM_PYTHONS)})")


def test_demo_with_the_pip_of_a_stock_debian_python(
    shared_dir: Path, uv_bin: Path, uv_cache: Path, build_env: dict[str, str], privpkg_wheel: Path,
    make_env: Callable[..., dict[str, str]], tmp_path: Path,
) -> None:
    """The Quickstart on a stock Debian python3 (issue: `no such option: --keyring-provider`): its
    venv gets pip 23.0.1, which has no --keyring-provider but runs the keyring CLI on PATH with a
    username. The demo must work there, with privpkg installed into a venv of that Python."""
    python = _python_with_old_ensurepip()
    venv = build_once(shared_dir, "venv-system-python-privpkg",
                      lambda d: make_venv(uv_bin, uv_cache, build_env, d, [privpkg_wheel], python=python))
    res = run([venv / "bin" / "privpkg", "demo"], make_env(TMPDIR=str(tmp_path)), timeout=600)
    out = res.output
    assert res.returncode == 0, res.describe()
    assert re.search(r"pip 23\.0\.\d+ has no --keyring-provider", out), out
    assert "--keyring-provider" not in out.split("4. running", 1)[1].splitlines()[1], out
    assert "Successfully installed privpkg-demo-hello-1.0" in out and "demo succeeded" in out and "Traceback" not in out
    assert "the PAT appeared in pip's output: no" in out


@pytest.mark.parametrize(("version", "flags", "user"), [
    ((22, 3), None, None),
    ((23, 0), [], "has no --keyring-provider"),
    ((23, 1), ["--keyring-provider", "subprocess"], "keyring get URL USER"),
    ((26, 2), ["--keyring-provider", "subprocess"], None),
])
def test_demo_pip_flags(version: tuple[int, int], flags: list[str] | None, user: str | None) -> None:
    """Which flags the demo gives each pip; a pip that cannot run the keyring CLI is one error."""
    shown = ".".join(map(str, version))
    if flags is None:
        with pytest.raises(PrivpkgError, match=r"^the demo's venv got pip 22\.3 from this Python's ensurepip, .*pip 23\.0 or newer"):
            pip_flags(version, shown)
        return
    got, why = pip_flags(version, shown)
    assert got == flags
    assert (why is None) if user is None else (user in (why or ""))
