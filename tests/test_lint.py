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


#: privpkg's environment variables as users spell them (README documents each). This is the one
#: place outside privpkg.envvars that spells them: it pins their public names, so renaming a
#: value in envvars fails here instead of silently changing what users must set.
PUBLIC_ENV_NAMES = {
    "HOME": "PRIVPKG_HOME",
    "CONNECTIONS": "PRIVPKG_CONNECTIONS",
    "AZURE_ENDPOINTS": ("ARTIFACTS_CREDENTIALPROVIDER_EXTERNAL_FEED_ENDPOINTS", "VSS_NUGET_EXTERNAL_FEED_ENDPOINTS"),
    "MASTER_KEY": "PRIVPKG_MASTER_KEY",
    "TTL": "PRIVPKG_TTL",
    "LOCK_TIMEOUT": "PRIVPKG_LOCK_TIMEOUT",
    "TRUSTED_PROJECTS": "PRIVPKG_TRUSTED_PROJECTS",
    "TRUSTED_ENDPOINTS": "PRIVPKG_TRUSTED_ENDPOINTS",
}


def test_environment_variables_keep_their_public_names() -> None:
    from privpkg import envvars

    assert {k: getattr(envvars, k) for k in PUBLIC_ENV_NAMES} == PUBLIC_ENV_NAMES
    names = [n for v in PUBLIC_ENV_NAMES.values() for n in ((v,) if isinstance(v, str) else v)]
    assert sorted(names) == sorted(envvars.ALL), "a variable in envvars.ALL has no pinned public name"
    readme = (REPO / "README.md").read_text()
    assert [n for n in names if n not in readme] == []


def test_environment_variables_are_named_once() -> None:
    """src, tests and bench name privpkg's environment variables only through privpkg.envvars:
    no string literal of a name or of a name's prefix, no ``NAME=`` keyword or f-string. Allowed:
    the pip shim, which is copied into environments without privpkg, spells PRIVPKG_TTL and PRIVPKG_BROKER itself;
    this file's PUBLIC_ENV_NAMES pins the public names; tests/support/env.py defines the tests'
    own PRIVPKG_TESTS_SKIP_MISSING_TOOLS once, tests/support/conda.py PRIVPKG_TEST_CONDA. Prose and the expected text of messages
    (``"$PRIVPKG_CONNECTIONS give ..."``) may spell them."""
    import re

    from privpkg import envvars

    spelled = re.compile(r"""(?:["']|[(,]\s*)((?:PRIVPKG|ARTIFACTS_CREDENTIALPROVIDER|VSS_NUGET)_[A-Z_]*)["'=]""")
    allowed = {("src/privpkg/envvars.py", None), ("tests/test_lint.py", None),
               ("tests/support/env.py", "PRIVPKG_TESTS_SKIP_MISSING_TOOLS"), ("tests/support/conda.py", "PRIVPKG_TEST_CONDA")}
    allowed |= {(p.relative_to(REPO).as_posix(), name) for p in (REPO / "src" / "privpkg" / "pip_shim").rglob("*.py")
                for name in (envvars.TTL, envvars.BROKER)}
    found = []
    for top in ("src/privpkg", "tests", "bench"):
        for path in sorted((REPO / top).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            for m in spelled.finditer(path.read_text()):
                if (rel, None) not in allowed and (rel, m.group(1)) not in allowed:
                    found.append(f"{rel}: {m.group(1)}")
    assert not found, found


@pytest.mark.integration  # runs a program
def test_imports_point_one_way() -> None:
    """import-linter's contracts in pyproject.toml: the layers of README's Layout, privpkg.testing
    kept out of the runtime, and conda imported only by the conda plugin."""
    r = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"], capture_output=True, text=True, cwd=REPO, timeout=600, check=False
    )
    assert r.returncode == 0 and "0 broken" in r.stdout, r.stdout + r.stderr
