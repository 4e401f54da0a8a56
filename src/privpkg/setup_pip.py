"""``privpkg setup pip``: write ``keyring-provider`` into pip's configuration, and undo it.

Two files, because two kinds of pip run (FACTS: pip skips a ``keyring`` CLI in its own
environment's ``bin/``, and reads the environment's ``sys.prefix/pip.conf`` after the user's):

- the user's pip config gets ``keyring-provider = subprocess``: pip from any other environment
  runs the ``keyring`` CLI on PATH (privpkg's), with or without ``--no-input``;
- privpkg's own environment's ``pip.conf`` gets ``keyring-provider = import``: the pip in there
  skips the ``keyring`` next to it, so it must import keyring (and privpkg's backend) instead.
  Only written when this environment's scripts folder holds a ``keyring`` (what pip skips).

The edit is textual (one line in ``[global]``, the file's own line endings), so comments and
layout survive, and what was there before is recorded so ``--undo`` restores both files byte for
byte (a file setup created is removed)::

    $ privpkg setup pip
    set keyring-provider = subprocess in /home/me/.config/pip/pip.conf
    set keyring-provider = import in /home/me/.venvs/privpkg/pip.conf (pip from privpkg's own environment)
    $ privpkg setup pip --undo
    removed /home/me/.venvs/privpkg/pip.conf (privpkg had created it)
    removed /home/me/.config/pip/pip.conf (privpkg had created it)
"""

from __future__ import annotations

import json
import os
import re
import sys
import sysconfig
from pathlib import Path
from typing import Any

from privpkg import paths
from privpkg.errors import PrivpkgError, UsageError
from privpkg.fileio import file_lock, replace_dir, write_atomic

_KEY = re.compile(r"^\s*keyring[-_]provider\s*[=:]\s*(?P<value>.*?)\s*$", re.IGNORECASE)
_SECTION = re.compile(r"^\s*\[(?P<name>[^\]]+)\]\s*$")
_CONF_NAME = "pip.ini" if sys.platform == "win32" else "pip.conf"


def pip_user_config() -> Path:
    """The file ``pip config --user`` edits (pip's own rule, see pip/_internal/utils/appdirs)."""
    import platformdirs

    if sys.platform == "darwin":
        app_support = Path(platformdirs.user_data_dir("pip", appauthor=False))
        if app_support.is_dir():
            return app_support / _CONF_NAME
        return Path("~/.config/pip").expanduser() / _CONF_NAME
    return Path(platformdirs.user_config_dir("pip", appauthor=False, roaming=True)) / _CONF_NAME


def pip_env_config() -> Path | None:
    """This environment's own pip config (pip's "site" file, read after the user's), when the pip
    here needs one: only if this environment's scripts folder has a ``keyring``, the CLI that
    pip skips for its subprocess provider. None otherwise (privpkg installed with ``--user``: its
    ``keyring`` is in ``~/.local/bin``, which pip does not skip)."""
    scripts = Path(sysconfig.get_path("scripts"))
    if not any((scripts / name).exists() for name in ("keyring", "keyring.exe")):
        return None
    return Path(sys.prefix) / _CONF_NAME


def _record_path() -> Path:
    return paths.config_dir() / "setup-pip.json"


def _lock_path() -> Path:
    """The lock every ``setup pip`` change holds: the pip config edits and their undo, and the
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


def _read(path: Path) -> str | None:
    """The file's text with its own line endings (no newline translation, so a CRLF file is
    written back as CRLF), or None if there is no file."""
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a pip config file") from None
    except OSError as exc:
        raise PrivpkgError(f"cannot read pip config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise PrivpkgError(f"pip config {path} is not UTF-8 text (byte {exc.start})") from None


def _current(path: Path) -> str | None:
    text = _read(path)
    return None if text is None else _find(text.splitlines(keepends=True))[2]


def _edit(path: Path, provider: str) -> dict[str, Any]:
    """Write ``keyring-provider = provider`` into ``path``; return the record that undoes it."""
    text = _read(path)
    created_file = text is None
    lines = (text or "").splitlines(keepends=True)
    eol = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    glob, idx, current = _find(lines)
    line = f"keyring-provider = {provider}{eol}"
    created_section = False
    added_eol = False
    previous_line = lines[idx] if idx is not None else None
    if idx is not None:
        # Keep the line's own ending (a last line may have none).
        lines[idx] = line if lines[idx].endswith(("\n", "\r")) else line.rstrip("\r\n")
    elif glob is not None:
        lines.insert(glob + 1, line)
    else:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += eol
            added_eol = True
        lines += ([eol] if lines else []) + [f"[global]{eol}", line]
        created_section = True
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = path.stat().st_mode & 0o777 if not created_file else 0o644
    except OSError as exc:
        raise PrivpkgError(f"cannot write pip config {path}: {exc.strerror or exc}") from None
    write_atomic(path, "".join(lines).encode(), mode)
    os.chmod(path, mode)
    return {
        "path": str(path.resolve()),
        "value": provider,
        "previous": current,
        "previous_line": previous_line,
        "created_file": created_file,
        "created_section": created_section,
        "added_eol": added_eol,
    }


def setup_pip(provider: str = "subprocess", config: str | None = None) -> str:
    """Set ``keyring-provider``: ``provider`` in ``config`` (default: the user's pip config), and,
    with the default provider and file, ``import`` in this environment's own pip config
    (:func:`pip_env_config`). Returns one line per file: what was written, or that it already was."""
    plan: list[tuple[Path, str, str]] = [(Path(config) if config else pip_user_config(), provider, "")]
    env_conf = pip_env_config() if provider == "subprocess" and not config else None
    if env_conf is not None:
        plan.append((env_conf, "import", " (pip from privpkg's own environment skips the keyring CLI next to it)"))
    record_path = _record_path()
    lines: list[str] = []
    with file_lock(_lock_path()):
        todo = []
        for path, value, why in plan:
            try:
                current = _current(path)
            except PrivpkgError as exc:
                if path != env_conf:
                    raise
                lines.append(f"warning: {exc}; pip from privpkg's own environment then needs --keyring-provider import")
                continue
            if current == value:
                lines.append(f"keyring-provider is already {value} in {path}; nothing changed")
            else:
                todo.append((path, value, why, current))
        if not todo:
            return "\n".join(lines)
        # An earlier setup (one from before the environment's file was written, say) is kept and
        # added to, so one --undo takes everything back; a file it already changed is not redone.
        edits = _recorded_edits(record_path) if record_path.exists() else []
        done = {Path(e["path"]) for e in edits}
        for path, *_ in todo:
            if path.resolve() in done:
                raise UsageError(f"privpkg setup pip already changed {path}; run `privpkg setup pip --undo` first")
        try:
            for path, value, why, current in todo:
                try:
                    edits.append(_edit(path, value))
                except PrivpkgError as exc:
                    if path != env_conf:
                        raise
                    # The user's file is what most pips read; a read-only environment only costs
                    # its own pip, so say what that pip then needs and keep the rest.
                    lines.append(f"warning: {exc}; pip from privpkg's own environment then needs --keyring-provider import")
                    continue
                was = f" (was {current})" if current is not None else ""
                lines.append(f"set keyring-provider = {value} in {path}{was}{why}")
        finally:
            # Recorded even when a later file failed, so --undo can take back what was written.
            if edits:
                write_atomic(record_path, json.dumps({"edits": edits}, indent=2).encode())
    return "\n".join(lines)


def _undo(record: dict[str, Any], lines: list[str]) -> str:
    """Take one edit back (``lines`` is the file now, checked by the caller); return what was done."""
    path = Path(record["path"])
    glob, idx, _ = _find(lines)
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
            if record.get("added_eol") and lines:
                lines[-1] = lines[-1].rstrip("\r\n")
    if record["created_file"] and not any(ln.strip() for ln in lines):
        path.unlink()
        return f"removed {path} (privpkg had created it)"
    mode = path.stat().st_mode & 0o777
    write_atomic(path, "".join(lines).encode(), mode)
    os.chmod(path, mode)
    return msg


def _recorded_edits(record_path: Path) -> list[dict[str, Any]]:
    try:
        record = json.loads(record_path.read_text())
    except FileNotFoundError:
        raise PrivpkgError("nothing to undo: privpkg setup pip has not changed any pip config") from None
    except ValueError:
        raise PrivpkgError(f"cannot read {record_path}; fix or delete it") from None
    # A record from before the environment's file was set up holds one edit, unwrapped.
    edits = record.get("edits", [record]) if isinstance(record, dict) else None
    if not isinstance(edits, list) or not all(isinstance(e, dict) and "path" in e for e in edits):
        raise PrivpkgError(f"cannot read {record_path}; fix or delete it")
    return edits


def undo_setup_pip(config: str | None = None) -> str:
    """Restore every file the last ``setup_pip`` changed, or none of them: if a value was changed
    since, nothing is touched and the error says which file."""
    record_path = _record_path()
    with file_lock(_lock_path()):
        edits = _recorded_edits(record_path)
        changed = [Path(e["path"]) for e in edits]
        if config and Path(config).resolve() not in changed:
            raise UsageError(f"privpkg setup pip changed {', '.join(map(str, changed))}, not {config}")
        now: list[list[str] | None] = []
        for e, path in zip(edits, changed):
            text = _read(path)
            lines = None if text is None else text.splitlines(keepends=True)
            current = None if lines is None else _find(lines)[2]
            if lines is not None and current != e["value"]:
                raise PrivpkgError(
                    f"keyring-provider in {path} was changed since privpkg set it (now {current!r}); left it as it is. "
                    f"Delete {record_path} to forget the setup."
                )
            now.append(lines)
        msgs = []
        for e, path, lines in reversed(list(zip(edits, changed, now))):
            msgs.append(f"{path} no longer exists; nothing to undo there" if lines is None else _undo(e, lines))
        record_path.unlink()
    return "\n".join(msgs)


SHIM_PACKAGE = "_privpkg_pip_shim"
SHIM_PTH = "_privpkg_pip_shim.pth"


# Run by the target interpreter (Python 3.8 syntax, stdlib only): its purelib, and PEP 668's
# marker as pip reads it (pip's check_externally_managed: none inside a virtual environment, else
# EXTERNALLY-MANAGED in the stdlib folder).
_INTERPRETER_PROBE = """
import json, os, sys, sysconfig
in_venv = sys.prefix != getattr(sys, "base_prefix", sys.prefix) or hasattr(sys, "real_prefix")
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
print(json.dumps({"purelib": sysconfig.get_path("purelib"), "marker": None if in_venv or not os.path.isfile(marker) else marker}))
"""


def _interpreter(python: str) -> tuple[Path, str | None]:
    """(purelib, PEP 668 marker path or None) of the interpreter ``python``."""
    import subprocess

    try:
        # From the file system's root: `-c` puts the working directory first on sys.path, and a
        # json.py or sysconfig.py in a project folder must not run (the folder is untrusted).
        exe = os.path.abspath(python) if os.sep in python or (os.altsep and os.altsep in python) else python
        res = subprocess.run([exe, "-c", _INTERPRETER_PROBE], capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL, check=False, cwd=os.path.abspath(os.sep))
    except OSError as exc:
        raise UsageError(f"cannot run {python}: {exc.strerror}") from None
    try:
        info = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 and res.stdout.strip() else None
    except ValueError:
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("purelib"), str) or not info["purelib"]:
        raise UsageError(f"{python} is not a working Python interpreter")
    marker = info.get("marker")
    return Path(info["purelib"]), marker if isinstance(marker, str) else None


def _purelib(python: str) -> Path:
    return _interpreter(python)[0]


def install_shim(python: str, purelib: Path | None = None, *, break_system_packages: bool = False) -> str:
    """Copy the pip shim into the environment of ``python``; signing then runs through this
    privpkg's interpreter, so that environment needs no privpkg install of its own.
    ``purelib``: that environment's purelib where the caller knows it without starting
    ``python`` (conda's record of the environment's python package); else ``python`` is asked,
    and an externally managed interpreter (PEP 668) is refused unless ``break_system_packages``,
    as pip refuses to install there: its packages belong to the system's package manager.

    The copy replaces any previous one whole (:func:`privpkg.fileio.replace_dir`: built in a
    fresh random folder inside site-packages, then renamed into place), so pip never sees half
    a package; concurrent setups wait for each other on the setup lock."""
    import shutil

    from privpkg import pip_shim

    if purelib is None:
        site, marker = _interpreter(python)
        if marker is not None and not break_system_packages:
            raise UsageError(f"{python} is externally managed ({marker}, PEP 668): give a venv's python instead, "
                             "or pass --break-system-packages")
    else:
        site = purelib
    if (site / "privpkg_pip_shim.pth").exists():
        return f"{python} already has the pip shim (privpkg is installed there); nothing changed"
    src = Path(pip_shim.__file__).parent

    def fill(folder: Path) -> None:
        for name in ("__init__.py", "adapter.py", "broker.py"):
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
