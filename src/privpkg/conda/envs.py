"""Which conda environments carry privpkg's pip shim, found without importing conda.

The conda plugin puts the shim (``_privpkg_pip_shim`` and its ``.pth``, as ``privpkg setup pip
--python`` does) into an environment whose pip section names a ``privpkg://`` or workspace
container URL; ``privpkg doctor`` lists those environments, and ``privpkg setup pip --python
PREFIX/bin/python --undo`` removes the shim from one.

Where conda keeps environments (conda/core/envs_manager.py, conda/base/context.py): every
environment conda created is listed in ``~/.conda/environments.txt``; besides, the envs dirs:
``$CONDA_ENVS_DIRS`` (or the older ``$CONDA_ENVS_PATH``), ``ROOT/envs`` of the conda that runs
(``$CONDA_ROOT``, or two levels above ``$CONDA_EXE``) and ``~/.conda/envs``; the root prefix
itself is ``base``. ``envs_dirs`` set in a condarc is not read (privpkg has no YAML reader):
environments created there are in ``environments.txt`` all the same. An environment is a folder
with ``conda-meta/``. Nothing here starts an interpreter: the shim is found by its ``.pth`` in
``lib/python3.*/site-packages`` (``Lib/site-packages`` on Windows).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from privpkg.setup_pip import SHIM_PACKAGE, SHIM_PTH

if TYPE_CHECKING:
    from privpkg.doctor import Check


def _lines(path: Path) -> list[str]:
    try:
        return [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return []


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir())
    except OSError:
        return []


def known_prefixes(environ: Mapping[str, str] | None = None, home: Path | None = None) -> list[Path]:
    """Every conda environment this user's conda knows (see the module docstring), each once,
    in the order found: environments.txt first, then the envs dirs, then the root prefix."""
    env = os.environ if environ is None else environ
    home = home or Path(env.get("HOME") or Path.home())
    found: list[Path] = [Path(p) for p in _lines(home / ".conda" / "environments.txt")]
    dirs = [Path(d) for var in ("CONDA_ENVS_DIRS", "CONDA_ENVS_PATH") for d in env.get(var, "").split(os.pathsep) if d]
    roots = [Path(env["CONDA_ROOT"])] if env.get("CONDA_ROOT") else []
    if env.get("CONDA_EXE"):
        roots.append(Path(env["CONDA_EXE"]).parent.parent)
    dirs += [r / "envs" for r in roots] + [home / ".conda" / "envs"]
    for d in dirs:
        found += _children(d)
    found += roots
    out: list[Path] = []
    for p in found:
        if p not in out and (p / "conda-meta").is_dir():
            out.append(p)
    return out


def shim_site(prefix: Path) -> Path | None:
    """The site-packages of ``prefix`` that holds the pip shim's ``.pth``, or None."""
    for site in [*sorted(prefix.glob("lib/python3*/site-packages")), prefix / "Lib" / "site-packages"]:
        if (site / SHIM_PTH).is_file():
            return site
    return None


def signing_python(site: Path) -> str | None:
    """The interpreter the shim in ``site`` signs through (its ``config.json``), or None."""
    try:
        value = json.loads((site / SHIM_PACKAGE / "config.json").read_text()).get("python")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def shim_envs(environ: Mapping[str, str] | None = None, home: Path | None = None) -> list[tuple[Path, Path]]:
    """(prefix, site-packages) of each known conda environment that carries the pip shim."""
    out = []
    for prefix in known_prefixes(environ, home):
        site = shim_site(prefix)
        if site is not None:
            out.append((prefix, site))
    return out


def doctor_checks(environ: Mapping[str, str] | None = None, home: Path | None = None) -> list[Check]:
    """``privpkg doctor``'s lines for the conda environments that carry the pip shim: one each,
    with the command that removes it; a warning when the interpreter it signs through is gone.
    No line when there is none."""
    from privpkg.doctor import Check

    checks = []
    for prefix, site in shim_envs(environ, home):
        python = prefix / ("python.exe" if os.name == "nt" else "bin/python")
        undo = f"privpkg setup pip --python {python} --undo"
        signer = signing_python(site)
        if signer is None or not Path(signer).exists():
            checks.append(Check("conda-shim", "warn", f"conda environment {prefix} carries the pip shim, but the interpreter it signs "
                                f"through ({signer or 'unknown'}) is gone: privpkg:// installs there fail; remove it: {undo}"))
        else:
            checks.append(Check("conda-shim", "ok", f"conda environment {prefix} carries the pip shim (signing through {signer}); "
                                f"remove it: {undo}"))
    return checks
