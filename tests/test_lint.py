"""Guardrails that run with the README's test command: ruff (lint and import order) over src,
tests and bench, and mypy over src, both configured in pyproject.toml. The pip shim package is
linted for Python 3.8 (ruff's per-file target version; see also test_shim_compat.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=REPO, timeout=600, check=False)


@pytest.mark.integration  # runs a program
def test_ruff_is_clean() -> None:
    r = _run("ruff", "check", "--no-cache", "src", "tests", "bench")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.integration  # runs a program
def test_mypy_is_clean(tmp_path: Path) -> None:
    r = _run("mypy", "--cache-dir", str(tmp_path / "mypy-cache"), "src")
    assert r.returncode == 0 and "Success" in r.stdout, r.stdout + r.stderr


def test_shipped_pth_is_what_pth_line_makes() -> None:
    """The .pth the wheel installs is generated text; a hand edit of one of the two would make
    the installed shim differ from the copy `setup pip --python` writes."""
    from privpkg.pip_shim import pth_line

    assert (REPO / "src" / "privpkg_pip_shim.pth").read_text() == pth_line()


def test_environment_variables_are_named_once() -> None:
    """src names privpkg's environment variables only in privpkg.envvars (the pip shim, which is
    copied into environments without privpkg, spells PRIVPKG_TTL itself)."""
    import re

    from privpkg import envvars

    spelled = re.compile(r"""["'](PRIVPKG_[A-Z_]+|ARTIFACTS_CREDENTIALPROVIDER_[A-Z_]+|VSS_NUGET_[A-Z_]+)["']""")
    found = []
    for path in sorted((REPO / "src" / "privpkg").rglob("*.py")):
        rel = path.relative_to(REPO / "src" / "privpkg").as_posix()
        if rel == "envvars.py":
            continue
        for m in spelled.finditer(path.read_text()):
            if not (rel.startswith("pip_shim/") and m.group(1) == envvars.TTL):
                found.append(f"{rel}: {m.group(1)}")
    assert not found, found
