"""pip's configuration as ``pip install`` reads it: the one reader of pip's config files, for the
CA bundle (:func:`privpkg.http.pip_cert`) and the indexes (:mod:`privpkg.confusion`).

pip's rules (pip 23 to 26: ``configuration.py`` and ``cli/parser.py``), followed here:

- files in pip's order, global, user, site, then ``$PIP_CONFIG_FILE`` (:func:`files`); a later
  file wins; ``PIP_CONFIG_FILE`` set to the null device means no file at all;
- for ``pip install`` only ``[global]`` and ``[install]`` count (section names as written:
  ``[Global]`` is not pip's), ``[install]`` of any file over ``[global]`` of all, and a ``PIP_*``
  variable over both; ``[download]``, ``[freeze]``... belong to other commands;
- a key is matched as pip normalizes it: lower case, ``_`` as ``-``, a leading ``--`` dropped
  (``extra_index_url``, ``--extra-index-url`` and ``EXTRA-INDEX-URL`` are one key); per section
  the last file's value wins, and only then is an empty value ignored (so ``cert =`` in a later
  file erases an earlier one's, as in pip);
- a file is decoded with the locale's encoding, strictly; one pip cannot read (bad encoding, not
  INI, duplicate key) is skipped here, where pip stops with an error and so says so itself.

Imports nothing of privpkg: both http (low) and confusion (high) stand on it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

#: The sections ``pip install`` reads, lowest priority first.
INSTALL_SECTIONS = ("global", "install")


class Setting(NamedTuple):
    """One setting ``pip install`` reads: ``name`` normalized (``index-url``), ``key`` as written
    (``index_url``, or the variable, ``PIP_INDEX_URL``), ``path`` None for a variable."""

    name: str
    value: str
    key: str
    path: Path | None
    section: str

    def where(self) -> str:
        """``FILE [SECTION] KEY`` or ``$VARIABLE``, for messages."""
        return f"${self.key}" if self.path is None else f"{self.path} [{self.section}] {self.key}"


def normalize(name: str) -> str:
    """pip's ``_normalize_name``.

    >>> normalize("--Extra_Index_URL")
    'extra-index-url'
    """
    name = name.lower().replace("_", "-")
    return name.removeprefix("--")


def files(environ: Mapping[str, str] | None = None, prefix: str | None = None) -> list[Path]:
    """The config files pip reads, lowest priority first (existing or not), as pip 23 to 26
    list them: global (``$XDG_CONFIG_DIRS``/pip/pip.conf..., /etc/pip.conf), user
    (~/.pip/pip.conf, then ``$XDG_CONFIG_HOME``/pip/pip.conf; skipped when ``PIP_CONFIG_FILE``
    names an existing file), site (``prefix``, default ``sys.prefix``, /pip.conf), then
    ``PIP_CONFIG_FILE``. Empty when ``PIP_CONFIG_FILE`` is the null device (pip then reads no file).

    >>> files({"PIP_CONFIG_FILE": os.devnull})
    []
    """
    env = os.environ if environ is None else environ
    name = "pip.ini" if sys.platform == "win32" else "pip.conf"
    env_file = env.get("PIP_CONFIG_FILE")
    if env_file == os.devnull:
        return []
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    if sys.platform == "win32":
        global_dirs = [Path(env.get("ALLUSERSPROFILE", r"C:\ProgramData"), "pip")]
        user_dir = Path(env.get("APPDATA") or home / "AppData" / "Roaming", "pip")
    elif sys.platform == "darwin":
        global_dirs = [Path("/Library/Application Support/pip")]
        user_dir = home / "Library" / "Application Support" / "pip"
        if not user_dir.is_dir():
            user_dir = home / ".config" / "pip"
    else:
        xdg_dirs = [d for d in (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep) if d]
        global_dirs = [Path(d, "pip") for d in xdg_dirs] + [Path("/etc")]
        user_dir = Path(env.get("XDG_CONFIG_HOME") or home / ".config", "pip")
    found = [d / name for d in global_dirs]
    if not (env_file and os.path.exists(env_file)):
        found += [home / ("pip" if sys.platform == "win32" else ".pip") / name, user_dir / name]
    found.append(Path(prefix if prefix is not None else sys.prefix, name))
    if env_file:
        found.append(Path(env_file))
    return found


def _read(path: Path) -> dict[str, list[tuple[str, str]]] | None:
    """(key as written, value) per section of one file; None for a file pip could not read."""
    import configparser
    import locale

    parser = configparser.RawConfigParser()  # pip's parser: no interpolation, strict
    try:
        with open(path, encoding=locale.getpreferredencoding(False)) as fh:
            parser.read_file(fh)
    except (OSError, UnicodeDecodeError, configparser.Error):
        return None
    return {section: parser.items(section) for section in parser.sections()}


def install_settings(names: Collection[str], environ: Mapping[str, str] | None = None, prefix: str | None = None,
                     config_files: Sequence[Path] | None = None) -> list[Setting]:
    """The settings of the options ``names`` (normalized: ``cert``, ``index-url``) that ``pip
    install`` reads, lowest priority first: ``[global]``, then ``[install]``, then the ``PIP_*``
    variables, each the value of the last file (:func:`files` order, or ``config_files``) that
    sets it. Per name, the last one is the value pip uses.

    As in pip, the files are merged before empty values are dropped: ``cert =`` in a later file
    erases an earlier file's ``cert`` in that section (measured with pip 23.2.1 and 26.x)."""
    env = os.environ if environ is None else environ
    wanted = {normalize(n) for n in names}
    merged: dict[tuple[str, str], Setting] = {}  # (section, name): pip's Configuration keeps one value per section.key
    for path in files(env, prefix) if config_files is None else config_files:
        for section, items in (_read(path) or {}).items():
            for key, value in items:
                if section in INSTALL_SECTIONS and normalize(key) in wanted:
                    merged[section, normalize(key)] = Setting(normalize(key), value, key, path, section)
    # pip: every PIP_ variable, the rest of its name lower-cased and normalized like a key.
    for var, value in env.items():
        if var.startswith("PIP_") and normalize(var[4:]) in wanted:
            merged["", normalize(var[4:])] = Setting(normalize(var[4:]), value, var, None, "")
    order = {section: i for i, section in enumerate((*INSTALL_SECTIONS, ""))}
    return [s for s in sorted(merged.values(), key=lambda s: order[s.section]) if s.value]  # stable: file order kept


def install_value(name: str, environ: Mapping[str, str] | None = None, prefix: str | None = None) -> Setting | None:
    """The setting of ``name`` that ``pip install`` uses, or None."""
    found = install_settings((name,), environ, prefix)
    return found[-1] if found else None
