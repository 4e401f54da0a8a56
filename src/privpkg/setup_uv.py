"""``privpkg setup uv``: write ``keyring-provider = "subprocess"`` into the user's uv.toml, and undo it.

uv asks keyring only when ``keyring-provider`` is ``subprocess`` (its default is ``disabled``),
and then runs the ``keyring`` CLI on PATH, which serves privpkg's connections::

    $ privpkg setup uv
    set keyring-provider = "subprocess" in /home/me/.config/uv/uv.toml
    $ privpkg setup uv --undo
    removed /home/me/.config/uv/uv.toml (privpkg had created it)

The edit goes through tomlkit, so the user's comments and layout survive, and a file that is not
valid TOML is refused, never overwritten. What privpkg replaced is recorded (``setup-uv.json`` in
privpkg's config folder, mode 0600: the changed span only, never a copy of the file, which may hold
index credentials), so ``--undo`` puts back exactly the original bytes while the file still holds
what privpkg wrote. If the user edited it since, ``--undo`` reverts only the key and
keeps their edits; if they changed the key itself, it is left alone with one line saying so.
Every change holds ``setup-uv.lock`` and is written atomically (:mod:`privpkg.fileio`), as
``setup pip`` does for pip's config.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import Item

from privpkg import paths
from privpkg.errors import PrivpkgError, UsageError, shown
from privpkg.fileio import file_lock, write_atomic
from privpkg.undorecord import changed_part, read_optional, rebuild, sha256

KEY = "keyring-provider"
VALUE = "subprocess"


def uv_user_config() -> Path:
    """The user-level uv.toml uv reads: ``$XDG_CONFIG_HOME/uv/uv.toml`` or ``~/.config/uv/uv.toml``
    (macOS included), ``%APPDATA%\\uv\\uv.toml`` on Windows (uv's ``user_config_dir``)."""
    if sys.platform == "win32":
        base = os.environ.get("APPDATA") or str(Path("~/AppData/Roaming").expanduser())
        return Path(base) / "uv" / "uv.toml"
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    # uv (like the XDG spec) ignores a relative XDG_CONFIG_HOME.
    base_dir = Path(xdg) if xdg and os.path.isabs(xdg) else Path("~/.config").expanduser()
    return base_dir / "uv" / "uv.toml"


def _record_path() -> Path:
    return paths.config_dir() / "setup-uv.json"


def _lock_path() -> Path:
    """The lock every ``setup uv`` change holds: the uv.toml edit, its record and its undo."""
    return paths.config_dir() / "setup-uv.lock"


def _read(path: Path) -> bytes | None:
    return read_optional(path, "uv config")


def _parse(path: Path, data: bytes) -> tomlkit.TOMLDocument:
    """``data`` as a TOML document; a file uv itself would reject is refused in one line, and left
    as it is."""
    try:
        return tomlkit.parse(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise PrivpkgError(f"uv config {path} is not UTF-8 text; fix it, then run privpkg setup uv again") from None
    except TOMLKitError as exc:
        raise PrivpkgError(f"uv config {path} is not valid TOML ({shown(exc, limit=200)}); fix it, then run privpkg setup uv again") from None


def _plain(value: object) -> Any:
    """A tomlkit item as the plain Python value it holds (a table as a dict)."""
    return value.unwrap() if isinstance(value, Item) else value


def _value(doc: tomlkit.TOMLDocument) -> Any:
    return _plain(doc.get(KEY))


def _quoted(value: Any) -> str:
    """A value as TOML-ish text fit for one message line (strings in double quotes)."""
    return shown(json.dumps(value, default=str), limit=60)


def _write(path: Path, data: bytes, mode: int) -> None:
    write_atomic(path, data, mode)
    os.chmod(path, mode)  # write_atomic's temp file was made under the umask


def setup_uv(config: str | None = None) -> str:
    """Set ``keyring-provider = "subprocess"`` in ``config`` (default: :func:`uv_user_config`)."""
    given = Path(config) if config else uv_user_config()
    # A dotfiles symlink stays a symlink: the file it points to is the one edited.
    path = given.resolve()
    if path.is_dir():
        raise UsageError(f"{given} is a directory, not a uv.toml file")
    record_path = _record_path()
    with file_lock(_lock_path()):
        original = _read(path)
        doc = _parse(given, original or b"")
        current = _value(doc)
        if current is not None and not isinstance(current, str):
            raise PrivpkgError(f"{KEY} in {given} is not a string (uv would refuse the file); fix it, then run privpkg setup uv again")
        if current == VALUE:
            return f'{KEY} is already "{VALUE}" in {given}; nothing changed' + _pip_table_note(doc, given)
        if record_path.exists():
            raise UsageError(f"privpkg setup uv already changed {given}; run `privpkg setup uv --undo` first")
        doc[KEY] = VALUE
        written = doc.as_string().encode("utf-8")
        mode = path.stat().st_mode & 0o777 if original is not None else 0o644
        record: dict[str, Any] = {
            "path": str(path),
            "value": VALUE,
            "previous": current,
            # Only the bytes privpkg changed (None: privpkg created the file), so undo restores the
            # file byte for byte (tomlkit's inverse edit does not always give back the same
            # whitespace) without keeping a copy of a uv.toml that may hold index credentials.
            "original": changed_part(original, written) if original is not None else None,
            "written_sha256": sha256(written),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PrivpkgError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
        # The record first: if the uv.toml write then fails, undo still knows the original.
        write_atomic(record_path, json.dumps(record, indent=2).encode())
        try:
            _write(path, written, mode)
        except BaseException:
            record_path.unlink(missing_ok=True)
            raise
    was = f" (was {_quoted(current)})" if current is not None else ""
    return f'set {KEY} = "{VALUE}" in {given}{was}' + _pip_table_note(doc, given)


def _pip_table_note(doc: tomlkit.TOMLDocument, path: Path) -> str:
    """A second line when ``[pip]`` sets its own provider: it wins over the top-level key for
    ``uv pip`` commands, and privpkg leaves the user's explicit choice there alone."""
    pip = _plain(doc.get("pip"))
    value = pip.get(KEY) if isinstance(pip, dict) else None
    if value is None or value == VALUE:
        return ""
    return f"\nnote: [pip] {KEY} = {_quoted(value)} in {path} still wins for `uv pip` commands; remove it to use keyring there"


def undo_setup_uv(config: str | None = None) -> str:
    """Revert what :func:`setup_uv` wrote: the original bytes while the file is unchanged since,
    else only the key (the user's later edits are kept), else nothing and one line why."""
    record_path = _record_path()
    with file_lock(_lock_path()):
        try:
            record = json.loads(record_path.read_text())
            path = Path(record["path"])
            original = record["original"]
        except FileNotFoundError:
            raise PrivpkgError("nothing to undo: privpkg setup uv has not changed any uv config") from None
        except (ValueError, KeyError, TypeError):
            raise PrivpkgError(f"cannot read {record_path}; fix or delete it") from None
        if config and Path(config).resolve() != path:
            raise UsageError(f"privpkg setup uv changed {path}, not {config}")
        now = _read(path)
        if now is None:
            record_path.unlink()
            return f"{path} no longer exists; nothing to undo"
        mode = path.stat().st_mode & 0o777
        if sha256(now) == record["written_sha256"]:
            if original is None:
                path.unlink()
                msg = f"removed {path} (privpkg had created it)"
            else:
                _write(path, _rebuild(original, now, record_path), mode)
                msg = _restored(record, path)
            record_path.unlink()
            return msg
        # Edited since: revert the key only, if it still holds what privpkg wrote.
        doc = _parse(path, now)
        current = _value(doc)
        if current != record["value"]:
            raise PrivpkgError(
                f"{KEY} in {path} was changed since privpkg set it (now {_quoted(current)}); "
                f"left it as it is. Delete {record_path} to forget the setup."
            )
        if record["previous"] is None:
            del doc[KEY]
        else:
            doc[KEY] = record["previous"]
        text = doc.as_string()
        if original is None and not text.strip():
            path.unlink()
            msg = f"removed {path} (privpkg had created it)"
        else:
            _write(path, text.encode("utf-8"), mode)
            msg = _restored(record, path) + "; your other changes since were kept"
        record_path.unlink()
    return msg


def _rebuild(original: Any, written: bytes, record_path: Path) -> bytes:
    """The original bytes from the record (or the whole text an older privpkg recorded)."""
    if isinstance(original, str):  # an older record: the file's whole text
        return original.encode("utf-8")
    return rebuild(original, written, record_path)


def _restored(record: dict[str, Any], path: Path) -> str:
    if record["previous"] is None:
        return f"removed {KEY} from {path}"
    return f"restored {KEY} = {_quoted(record['previous'])} in {path}"
