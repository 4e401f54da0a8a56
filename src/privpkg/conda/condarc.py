"""``privpkg setup conda``: route conda's requests to each CondaChannel connection's channels to
privpkg's auth handler, through ``channel_settings`` in the user's condarc; keep those entries in
step with the connections; and ``--undo``.

One entry per CondaChannel target, a URL pattern (conda matches ``channel_settings`` by the exact
channel name, or by ``fnmatch`` on host and path with the same scheme)::

    channel_settings:
      - channel: https://conda.example.com/api/conda/private/*
        auth: privpkg

No secret is ever written: the handler looks the secret up per request (:mod:`.channelauth`).

Which file: ``$CONDARC`` when it is set to a name conda reads (``condarc``, ``.condarc`` or a
``.yml``/``.yaml`` file: conda ignores any other), else ``~/.condarc``, the file ``conda config``
and conda-auth write (conda 26.7's ``user_rc_path``; conda reads ``$CONDARC`` last, so an entry
there wins over one in ``~/.condarc``).

Later changes: the connection verbs (``connection set/delete``, ``auth login/logout``) call
:func:`sync` after changing a connection. Once ``setup conda`` has run (its record exists) the
entries follow the connections: an entry for each new target, and the entries privpkg added for
targets that are gone are removed; entries the user wrote are never touched. Before that, they
say once that ``privpkg setup conda`` routes conda to a new CondaChannel connection.

The edit goes through ruamel.yaml's round-trip mode (comments, order and quoting kept; the
sequence indentation is the file's own, else ``conda config``'s), and a file that is not a YAML
mapping is refused, never overwritten. As for ``setup uv``, only the changed span is recorded
(``setup-conda.json`` in privpkg's config folder), so ``--undo`` puts back exactly the original
bytes (no file if there was none) while the file holds what privpkg last wrote. If it was edited
since (``conda config --add channels ...``), ``--undo`` removes only privpkg's entries and keeps
the edits; an entry the user changed is left alone, with one line saying so. Every change holds
``setup-conda.lock`` and is written atomically (:mod:`privpkg.fileio`).

ruamel.yaml is imported only here, when a condarc is edited (``pip install 'privpkg[conda]'``;
conda's base always has it).
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

from privpkg import paths
from privpkg.errors import PrivpkgError, UsageError, shown
from privpkg.fileio import file_lock, write_atomic
from privpkg.undorecord import changed_part, read_optional, rebuild, sha256

#: The handler name privpkg's plugin registers with ``conda_auth_handlers``.
HANDLER = "privpkg"
KEY = "channel_settings"
CATEGORY = "CondaChannel"
#: What conda reads from ``$CONDARC`` (conda/common/configuration.py: CONDARC_FILENAMES and
#: YAML_EXTENSIONS).
_CONDARC_NAMES = ("condarc", ".condarc")
_YAML_SUFFIXES = (".yml", ".yaml")


def condarc_path() -> tuple[Path, str | None]:
    """The user's condarc that setup edits, and a note when ``$CONDARC`` was passed over."""
    env = os.environ.get("CONDARC", "")
    if env:
        given = Path(env).expanduser()
        if given.name in _CONDARC_NAMES or given.suffix in _YAML_SUFFIXES:
            return given, None
        note = (f"note: conda ignores $CONDARC={env} (it reads only a file named condarc or .condarc, or ending in .yml or "
                ".yaml), so ~/.condarc was used")
        return Path("~/.condarc").expanduser(), note
    return Path("~/.condarc").expanduser(), None


def pattern(target: str) -> str:
    """The ``channel_settings`` pattern for a target: every URL under it, the target's own
    characters taken literally by fnmatch.

    >>> pattern("https://h.example/org/")
    'https://h.example/org/*'
    >>> pattern("http://[::1]:8/a?b/")
    'http://[[]::1]:8/a[?]b/*'
    """
    return re.sub(r"([\[\]?*])", lambda m: "[[]" if m.group(1) == "[" else ("]" if m.group(1) == "]" else f"[{m.group(1)}]"),
                  target) + "*"


def _record_path() -> Path:
    return paths.config_dir() / "setup-conda.json"


def _lock_path() -> Path:
    return paths.config_dir() / "setup-conda.lock"


def _read(path: Path) -> bytes | None:
    return read_optional(path, "condarc")


def _yaml(text: str) -> Any:
    try:
        from ruamel.yaml import YAML
    except ImportError:
        raise PrivpkgError("privpkg setup conda needs ruamel.yaml: pip install 'privpkg[conda]' (conda's base has it)") from None
    yaml = YAML()  # round-trip: comments, order and quoting survive
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line
    # The file's own sequence style ("- x" under its key, or indented), else conda config's.
    if re.search(r"^- ", text, re.MULTILINE) and not re.search(r"^ +- ", text, re.MULTILINE):
        yaml.indent(mapping=2, sequence=2, offset=0)
    else:
        yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _load(path: Path, data: bytes) -> tuple[Any, Any]:
    """(the YAML handler, the document: a mapping, or None for an empty file). A file conda would
    refuse is refused in one line and left as it is."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PrivpkgError(f"condarc {path} is not UTF-8 text; fix it, then run privpkg setup conda again") from None
    yaml = _yaml(text)
    try:
        doc = yaml.load(text)
    except Exception as exc:  # noqa: BLE001 - ruamel raises many YAMLError subclasses and ValueErrors
        raise PrivpkgError(f"condarc {path} is not valid YAML ({shown(str(exc).splitlines()[0] if str(exc) else exc, limit=160)}); "
                           "fix it, then run privpkg setup conda again") from None
    if doc is not None and not hasattr(doc, "keys"):
        raise PrivpkgError(f"condarc {path} is not a YAML mapping; fix it, then run privpkg setup conda again")
    settings = doc.get(KEY) if doc is not None else None
    if settings is not None and not isinstance(settings, list):
        raise PrivpkgError(f"{KEY} in {path} is not a list; fix it, then run privpkg setup conda again")
    return yaml, doc


def _dump(yaml: Any, doc: Any) -> bytes:
    buf = io.StringIO()
    yaml.dump(doc, buf)
    return buf.getvalue().encode("utf-8")


def _entries(doc: Any) -> list[Any]:
    settings = doc.get(KEY) if doc is not None else None
    return list(settings) if isinstance(settings, list) else []


def _routed(doc: Any) -> dict[str, str]:
    """pattern -> the auth handler of each ``channel_settings`` entry (the last one wins, as in conda)."""
    out: dict[str, str] = {}
    for entry in _entries(doc):
        if hasattr(entry, "get") and isinstance(entry.get("channel"), str):
            out[entry["channel"]] = str(entry.get("auth", "")).strip()
    return out


def routing(path: Path) -> dict[str, str] | None:
    """``path``'s channel_settings as pattern -> auth handler, None when there is no file.
    Raises PrivpkgError (one line) for a file that cannot be read or parsed."""
    data = _read(path)
    return None if data is None else _routed(_load(path, data)[1])


def wanted(conns: list[Any] | None = None) -> dict[str, str]:
    """pattern -> connection name, for every CondaChannel connection (store and environment)."""
    if conns is None:
        from privpkg.connections import list_connections

        conns = list_connections(category=CATEGORY, errors=[])
    out: dict[str, str] = {}
    for c in conns:
        if c.category == CATEGORY:
            out.setdefault(pattern(c.target), c.name)
    return out


def _apply(doc: Any, add: list[str], remove: set[str]) -> Any:
    """``doc`` (a new mapping when None) with an entry per pattern of ``add`` appended and the
    privpkg entries of ``remove`` taken out."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if doc is None:
        doc = CommentedMap()
    settings = doc.get(KEY)
    if settings is None:
        settings = doc[KEY] = CommentedSeq()
    for i in reversed(range(len(settings))):
        entry = settings[i]
        if hasattr(entry, "get") and entry.get("channel") in remove and str(entry.get("auth", "")).strip() == HANDLER:
            del settings[i]
    for p in add:
        item = CommentedMap()
        item["channel"] = p
        item["auth"] = HANDLER
        settings.append(item)
    return doc


def _load_record(record_path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(record_path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        raise PrivpkgError(f"cannot read {record_path}; fix or delete it") from None
    if not isinstance(record, dict) or not isinstance(record.get("path"), str) or not isinstance(record.get("entries"), list):
        raise PrivpkgError(f"cannot read {record_path}; fix or delete it")
    return record


def _write(path: Path, data: bytes, existed: bool) -> None:
    mode = path.stat().st_mode & 0o777 if existed else 0o644
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PrivpkgError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
    write_atomic(path, data, mode)
    os.chmod(path, mode)  # write_atomic's temp file was made under the umask


def _update(path: Path, record: dict[str, Any] | None, want: dict[str, str]) -> tuple[list[str], list[str], list[str], dict[str, Any]]:
    """Bring ``path`` in step with ``want``; return (added, removed, left-alone lines, the new
    record). Called under the lock; ``record`` is None for a first setup."""
    now = _read(path)
    yaml, doc = _load(path, now or b"")
    routed = _routed(doc)
    owned = set(record["entries"]) if record else set()
    add = [p for p in want if p not in routed]
    remove = {p for p in owned if p not in want and routed.get(p) == HANDLER}
    others = [f"  left alone: {p} is routed to {routed[p]!r} in {path}, not to privpkg (connection {want[p]!r})"
              for p in want if p in routed and routed[p] != HANDLER]
    new_owned = sorted((owned - remove - {p for p in owned if p not in routed}) | set(add))
    if record is None:
        base: dict[str, Any] = {"path": str(path), "had_key": doc is not None and KEY in doc}
    else:
        base = dict(record)
    if not add and not remove:
        base["entries"] = new_owned
        if record is None:
            base["written_sha256"] = sha256(now) if now is not None else None
            base["original"] = None if now is None else changed_part(now, now)
        return [], [], others, base
    written = _dump(yaml, _apply(doc, add, remove))
    # The original bytes, to keep the record able to restore them: while the file is what privpkg
    # last wrote, the original is rebuilt and re-diffed against the new text; after a user's edit
    # it cannot be, and undo will remove privpkg's entries only.
    if record is None:
        original: Any = None if now is None else changed_part(now, written)
    elif record.get("original") is not None and now is not None and sha256(now) == record.get("written_sha256"):
        original = changed_part(rebuild(record["original"], now, _record_path()), written)
    elif record.get("original") is None and record.get("written_sha256") is not None and now is not None \
            and sha256(now) == record.get("written_sha256"):
        original = None  # still the file privpkg created
    else:
        original = "edited"
    base.update({"original": original, "written_sha256": sha256(written), "entries": new_owned})
    if record is None and now is None:
        base["created"] = True
    _write(path, written, now is not None)
    return add, sorted(remove), others, base


def setup_conda(config: str | None = None) -> str:
    """Write a ``channel_settings`` entry per CondaChannel target into the user's condarc (or
    ``config``); again later, bring them in step. Returns what was written, one line each."""
    record_path = _record_path()
    with file_lock(_lock_path()):
        record = _load_record(record_path)
        note = None
        if config:
            path = Path(config).expanduser()
        elif record is not None:
            path = Path(record["path"])
        else:
            path, note = condarc_path()
        path = path.resolve()  # a dotfiles symlink stays a symlink: its target is edited
        if record is not None and Path(record["path"]) != path:
            raise UsageError(f"privpkg setup conda already changed {record['path']}; run `privpkg setup conda --undo` first")
        want = wanted()
        if record is None and not want:
            raise UsageError(f"no CondaChannel connection to route; add one with: privpkg connection set NAME "
                             f"--category {CATEGORY} --target CHANNEL_URL, then run privpkg setup conda again")
        added, removed, others, new = _update(path, record, want)
        write_atomic(record_path, json.dumps(new, indent=2).encode())
    lines = [note] if note else []
    for p in added:
        lines.append(f"routed {p} to privpkg (connection {want[p]!r}) in {path}")
    for p in removed:
        lines.append(f"removed {p} from {path} (no connection has that target any more)")
    lines += others
    if not added and not removed:
        lines.append(f"{KEY} in {path} already routes every CondaChannel connection to privpkg; nothing changed")
    return "\n".join(lines)


def set_up() -> bool:
    """Whether ``setup conda`` has run (its record exists): the connection verbs then sync."""
    return _record_path().exists()


def sync(conns: list[Any] | None = None) -> list[str]:
    """After a connection verb: once ``setup conda`` has run, bring condarc in step with the
    connections and return what changed (nothing: []). Before that, return one line that says
    how to route conda to the CondaChannel connections, if there are any not routed. Raises
    PrivpkgError (the verb turns it into a warning: its own change is done)."""
    record_path = _record_path()
    with file_lock(_lock_path()):
        record = _load_record(record_path)
        want = wanted(conns)
        if record is None:
            if not want:
                return []
            path, _ = condarc_path()
            try:
                routed = _routed(_load(path, _read(path) or b"")[1])
            except PrivpkgError:
                routed = {}
            if all(routed.get(p) == HANDLER for p in want):
                return []
            return ["conda: run `privpkg setup conda` to route conda's requests to CondaChannel connections through privpkg"]
        path = Path(record["path"])
        added, removed, _others, new = _update(path, record, want)
        write_atomic(record_path, json.dumps(new, indent=2).encode())
    return [f"conda: routed {p} to privpkg in {path}" for p in added] + [f"conda: removed {p} from {path}" for p in removed]


def undo_setup_conda(config: str | None = None) -> str:
    """Revert :func:`setup_conda`: the original bytes while the file holds what privpkg last
    wrote, else only privpkg's entries (the user's later edits kept)."""
    record_path = _record_path()
    with file_lock(_lock_path()):
        record = _load_record(record_path)
        if record is None:
            raise PrivpkgError("nothing to undo: privpkg setup conda has not changed any condarc")
        path = Path(record["path"])
        if config and Path(config).expanduser().resolve() != path:
            raise UsageError(f"privpkg setup conda changed {path}, not {config}")
        now = _read(path)
        if now is None:
            record_path.unlink()
            return f"{path} no longer exists; nothing to undo"
        original = record.get("original")
        if sha256(now) == record.get("written_sha256") and original != "edited":
            if original is None:
                path.unlink()
                msg = f"removed {path} (privpkg had created it)"
            else:
                _write(path, rebuild(original, now, record_path), True)
                msg = f"restored {path} as it was before privpkg setup conda"
            record_path.unlink()
            return msg
        yaml, doc = _load(path, now)
        routed = _routed(doc)
        ours = set(record["entries"])
        changed = sorted(p for p in ours if p in routed and routed[p] != HANDLER)
        doc = _apply(doc, [], ours)
        if not doc[KEY] and not record.get("had_key"):
            del doc[KEY]
        rest = _dump(yaml, doc)
        # A file privpkg created goes only if nothing of the user's is left: no key, no comment.
        if record.get("created") and not doc and not any(ln.lstrip().startswith(b"#") for ln in rest.splitlines()):
            path.unlink()
            msg = f"removed {path} (privpkg had created it)"
        else:
            _write(path, rest, True)
            msg = f"removed privpkg's {KEY} entries from {path}; your other changes since were kept"
        record_path.unlink()
    if changed:
        msg += f"\nleft alone (you changed their auth since): {', '.join(changed)}"
    return msg

