"""``privpkg setup pip``: write ``keyring-provider`` into the user's pip config, and undo it.

The edit is textual (one line in ``[global]``), so comments and layout of the user's file
survive, and what was there before is recorded so ``--undo`` restores exactly that::

    $ privpkg setup pip
    set keyring-provider = subprocess in /home/me/.config/pip/pip.conf
    $ privpkg setup pip --undo
    removed keyring-provider from /home/me/.config/pip/pip.conf
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from privpkg import paths
from privpkg.errors import PrivpkgError, UsageError
from privpkg.fileio import file_lock, replace_dir, write_atomic

_KEY = re.compile(r"^\s*keyring[-_]provider\s*[=:]\s*(?P<value>.*?)\s*$", re.IGNORECASE)
_SECTION = re.compile(r"^\s*\[(?P<name>[^\]]+)\]\s*$")


def pip_user_config() -> Path:
    """The file ``pip config --user`` edits (pip's own rule, see pip/_internal/utils/appdirs)."""
    import platformdirs

    name = "pip.ini" if sys.platform == "win32" else "pip.conf"
    if sys.platform == "darwin":
        app_support = Path(platformdirs.user_data_dir("pip", appauthor=False))
        if app_support.is_dir():
            return app_support / name
        return Path("~/.config/pip").expanduser() / name
    return Path(platformdirs.user_config_dir("pip", appauthor=False, roaming=True)) / name


def _record_path() -> Path:
    return paths.config_dir() / "setup-pip.json"


def _lock_path() -> Path:
    """The lock every ``setup pip`` change holds: the pip config edit and its undo, and the
    shim's copy in another environment."""
    return paths.config_dir() / "setup-pip.lock"


def _find(lines: list[str]) -> tuple[int | None, int | None, str | None]:
    """(index of [global], index of its keyring-provider line, current value)."""
    section = None
    glob = None
    for i, line in enumerate(lines):
        m = _SECTION.match(line)
        if m:
            section = m.group("name").strip().lower()
            if section == "global" and glob is None:
                glob = i
            continue
        if section == "global":
            k = _KEY.match(line)
            if k:
                return glob, i, k.group("value")
    return glob, None, None


def setup_pip(provider: str = "subprocess", config: str | None = None) -> str:
    path = Path(config) if config else pip_user_config()
    record_path = _record_path()
    with file_lock(_lock_path()):
        try:
            text = path.read_text()
            created_file = False
        except FileNotFoundError:
            text = ""
            created_file = True
        except (OSError, UnicodeDecodeError) as exc:
            raise PrivpkgError(f"cannot read pip config {path}: {exc}") from None
        lines = text.splitlines(keepends=True)
        glob, idx, current = _find(lines)
        if current == provider:
            return f"keyring-provider is already {provider} in {path}; nothing changed"
        if record_path.exists():
            raise UsageError(f"privpkg setup pip already changed {path}; run `privpkg setup pip --undo` first")
        line = f"keyring-provider = {provider}\n"
        created_section = False
        added_eol = False
        previous_line = lines[idx] if idx is not None else None
        if idx is not None:
            lines[idx] = line
        elif glob is not None:
            lines.insert(glob + 1, line)
        else:
            if lines and not lines[-1].endswith("\n"):
                lines[-1] += "\n"
                added_eol = True
            lines += (["\n"] if lines else []) + ["[global]\n", line]
            created_section = True
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = path.stat().st_mode & 0o777 if not created_file else 0o644
        record: dict[str, Any] = {
            "path": str(path.resolve()),
            "value": provider,
            "previous": current,
            "previous_line": previous_line,
            "created_file": created_file,
            "created_section": created_section,
            "added_eol": added_eol,
        }
        write_atomic(record_path, json.dumps(record, indent=2).encode())
        write_atomic(path, "".join(lines).encode(), mode)
        os.chmod(path, mode)
    was = f" (was {current})" if current is not None else ""
    return f"set keyring-provider = {provider} in {path}{was}"


def undo_setup_pip(config: str | None = None) -> str:
    record_path = _record_path()
    with file_lock(_lock_path()):
        try:
            record = json.loads(record_path.read_text())
        except FileNotFoundError:
            raise PrivpkgError("nothing to undo: privpkg setup pip has not changed any pip config") from None
        except ValueError:
            raise PrivpkgError(f"cannot read {record_path}; fix or delete it") from None
        path = Path(record["path"])
        if config and Path(config).resolve() != path:
            raise UsageError(f"privpkg setup pip changed {path}, not {config}")
        try:
            lines = path.read_text().splitlines(keepends=True)
        except FileNotFoundError:
            record_path.unlink()
            return f"{path} no longer exists; nothing to undo"
        glob, idx, current = _find(lines)
        if current != record["value"]:
            raise PrivpkgError(
                f"keyring-provider in {path} was changed since privpkg set it (now {current!r}); left it as it is. "
                f"Delete {record_path} to forget the setup."
            )
        assert idx is not None and glob is not None
        if record["previous"] is not None:
            lines[idx] = record.get("previous_line") or f"keyring-provider = {record['previous']}\n"
            msg = f"restored keyring-provider = {record['previous']} in {path}"
        else:
            del lines[idx]
            msg = f"removed keyring-provider from {path}"
            rest = lines[glob + 1 :]
            nxt = next((i for i, ln in enumerate(rest) if _SECTION.match(ln)), len(rest))
            if record["created_section"] and not any(ln.strip() for ln in rest[:nxt]):
                start = glob - 1 if glob > 0 and not lines[glob - 1].strip() else glob
                del lines[start : glob + 1 + nxt]
                if record.get("added_eol") and lines and lines[-1].endswith("\n"):
                    lines[-1] = lines[-1][:-1]
        if record["created_file"] and not any(ln.strip() for ln in lines):
            path.unlink()
            msg = f"removed {path} (privpkg had created it)"
        else:
            mode = path.stat().st_mode & 0o777
            write_atomic(path, "".join(lines).encode(), mode)
            os.chmod(path, mode)
        record_path.unlink()
    return msg


SHIM_PACKAGE = "_privpkg_pip_shim"
SHIM_PTH = "_privpkg_pip_shim.pth"


def _purelib(python: str) -> Path:
    import subprocess

    try:
        res = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False
        )
    except OSError as exc:
        raise UsageError(f"cannot run {python}: {exc.strerror}") from None
    if res.returncode != 0 or not res.stdout.strip():
        raise UsageError(f"{python} is not a working Python interpreter")
    return Path(res.stdout.strip())


def install_shim(python: str) -> str:
    """Copy the pip shim into the environment of ``python``; signing then runs through this
    privpkg's interpreter, so that environment needs no privpkg install of its own.

    The copy replaces any previous one whole (:func:`privpkg.fileio.replace_dir`: built in a
    fresh random folder inside site-packages, then renamed into place), so pip never sees half
    a package; concurrent setups wait for each other on the setup lock."""
    import shutil

    from privpkg import pip_shim

    site = _purelib(python)
    if (site / "privpkg_pip_shim.pth").exists():
        return f"{python} already has the pip shim (privpkg is installed there); nothing changed"
    src = Path(pip_shim.__file__).parent

    def fill(folder: Path) -> None:
        for name in ("__init__.py", "adapter.py"):
            shutil.copyfile(src / name, folder / name)
        # A fresh private folder: nothing can be planted in it, so plain writes are safe here.
        (folder / "config.json").write_text(json.dumps({"python": sys.executable}) + "\n")

    with file_lock(_lock_path()):
        try:
            replace_dir(site / SHIM_PACKAGE, fill)
            write_atomic(site / SHIM_PTH, pip_shim.pth_line(SHIM_PACKAGE).encode(), 0o644)
        except OSError as exc:
            raise PrivpkgError(f"cannot install the pip shim into {site}: {exc.strerror or exc}") from None
    return f"installed the pip shim into {site} (signing through {sys.executable})"


def uninstall_shim(python: str) -> str:
    import shutil

    site = _purelib(python)
    with file_lock(_lock_path()):
        pth = site / SHIM_PTH
        if not pth.exists() and not (site / SHIM_PACKAGE).exists():
            raise PrivpkgError(f"nothing to undo: no privpkg pip shim in {site}")
        # The .pth first: once it is gone no new interpreter imports the folder being removed.
        pth.unlink(missing_ok=True)
        shutil.rmtree(site / SHIM_PACKAGE, ignore_errors=True)
    return f"removed the pip shim from {site}"
