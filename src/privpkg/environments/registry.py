"""Registered environments in a workspace's storage: immutable versions and mutable labels.

Layout (every object written once, with a conditional create, :meth:`Storage.put_bytes`)::

    environments/NAME/N/version.json        the claim and commit record, written FIRST
    environments/NAME/N/definition.json     the canonical definition (privpkg.environments.spec)
    environments/NAME/N/spec/FILE           the files the spec was read from, as given
    environments/NAME/N/pylock.toml         the pip lock (PEP 751)
    environments/NAME/N/conda-PLATFORM.txt  a conda lock per platform (CEP 23 @EXPLICIT)
    environments/NAME/labels/LABEL/SEQ.json {"version": N} or {"removed": true}; the highest SEQ wins

``version.json`` names every file of the version with its sha256 and size, the digest of the
spec part (definition and spec files) and the content digest (all of them). Claiming version N
is creating its ``version.json``: of concurrent registrations exactly one wins (O_EXCL locally,
``If-None-Match: *`` on Azure, ``IfNoneMatch`` on S3: the service decides, not a read before the
write); a loser with the same content returns N, one with other content tries N+1. The files
follow; a version whose files do not all match its record is *incomplete* (its writer died):
reading it is one clear error, and registering the same content again completes it. ``latest`` is
the highest complete version.

Registering the content of the latest version writes nothing and costs two requests: one listing
of ``environments/NAME/`` and one read of the latest ``version.json``.
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from privpkg.environments.digests import sha256
from privpkg.environments.spec import RESERVED_FILES, Spec, canonical_json, load_definition, validate_label, validate_name
from privpkg.errors import NotFoundError, PrivpkgError, UsageError, shown
from privpkg.refs import ENVIRONMENTS
from privpkg.storage.base import AlreadyExists, Storage

if TYPE_CHECKING:
    from privpkg.workspace import Workspace

RECORD = "version.json"
DEFINITION = "definition.json"
PYLOCK = "pylock.toml"
RECORD_FORMAT = 1
#: A lock file's name: the pip lock, or a conda explicit list for one platform.
_LOCK = re.compile(r"pylock\.toml|conda-[a-z0-9]+-?[a-z0-9_]*\.txt")
#: How many versions a registration tries past the one it first saw taken (each taken by a
#: concurrent writer with other content) before it gives up.
MAX_TRIES = 64


class IncompleteVersion(PrivpkgError):
    """A version whose files do not match its record: its writer died before it finished."""


class CachedReads:
    """A registry's storage whose reads come from a local copy once read: every object the
    registry writes is created once and never rewritten (a version's record and files, a label's
    numbered record). Listings (how new versions and labels are found) always go to the storage,
    and a copy is used only when the latest listing of this process showed its key with the
    same tag (:attr:`BlobInfo.tag`: the ETag, or the inode and mtime) as when it was copied: a
    container or bucket deleted and made again under the same name holds other objects under the
    same keys, and those are read anew. A key no listing showed is read from the storage. A
    version's files are still checked against its record's sha256 when read (``get``). For a
    cloud workspace: an ``env build NAME`` cache hit costs one listing, nothing else.

    A copy is one file per key (named by a digest of the key): the digest of the tag it was
    read under, a newline, the object's bytes."""

    def __init__(self, store: Storage, folder: Any) -> None:
        self.store, self.folder = store, folder
        self._tags: dict[str, str] = {}

    def _path(self, key: str) -> Any:
        return self.folder / sha256(key.encode()).hexdigest()[:32]

    def list_keys(self, prefix: str) -> list[Any]:
        found = self.store.list_keys(prefix)
        for info in found:
            if info.tag is not None:
                self._tags[info.key] = info.tag
        return found

    def read_bytes(self, key: str) -> bytes:
        tag = self._tags.get(key)
        if tag is None:
            return self.store.read_bytes(key)  # nothing to check a copy against: not copied either
        stamp = sha256(tag.encode()).hexdigest().encode() + b"\n"
        path = self._path(key)
        try:
            with open(path, "rb") as fh:
                copy = fh.read()
            if copy.startswith(stamp):
                return copy[len(stamp) :]
        except OSError:
            pass
        # Read after the listing: if the object changed in between, the copy holds the newer
        # bytes under the older tag, and the next listing's tag makes it a miss again.
        data = self.store.read_bytes(key)
        try:
            from privpkg.fileio import shared_mode, write_atomic

            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(path, stamp + data, shared_mode())
        except (OSError, PrivpkgError):
            pass  # a cache that cannot be written only costs the next read a request
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


class UnreadableRecord(PrivpkgError):
    """A ``version.json`` privpkg cannot read (another tool's, or damaged): skipped when looking
    for the latest version, never overwritten; the next version goes past it."""


class Version(NamedTuple):
    """One registered version: its record, and its files when read with :func:`get`."""

    name: str
    version: int
    digest: str
    spec_digest: str
    files: dict[str, dict[str, Any]]  # path -> {"sha256", "size"}
    created: bool = False  # by this call (register)
    content: dict[str, bytes] | None = None  # path -> bytes, from get()

    def _content(self) -> dict[str, bytes]:
        if self.content is None:
            raise PrivpkgError(f"environment {self.name}:{self.version}: its files were not read")
        return self.content

    @property
    def spec(self) -> Spec:
        content = self._content()
        sources = tuple((p[len("spec/") :], d) for p, d in sorted(content.items()) if p.startswith("spec/"))
        return Spec.from_definition(json.loads(content[DEFINITION]), sources)

    @property
    def locks(self) -> dict[str, str]:
        try:
            return {p: d.decode() for p, d in sorted(self._content().items()) if _LOCK.fullmatch(p)}
        except UnicodeDecodeError:
            raise PrivpkgError(f"environment {self.name}:{self.version} has a lock that is not UTF-8 text; privpkg writes "
                               "no such lock (register the environment again)") from None


def is_lock_name(name: str) -> bool:
    return bool(_LOCK.fullmatch(name))


def env_prefix(name: str) -> str:
    return f"{ENVIRONMENTS}/{validate_name(name)}/"


def _sha(data: bytes) -> str:
    return sha256(data).hexdigest()


def _digest(files: Mapping[str, Mapping[str, Any]], spec_only: bool = False) -> str:
    chosen = {p: f["sha256"] for p, f in files.items() if not spec_only or p == DEFINITION or p.startswith("spec/")}
    return _sha(canonical_json(dict(sorted(chosen.items()))))


def version_files(spec: Spec, locks: Mapping[str, str]) -> dict[str, bytes]:
    """The files of a version of ``spec`` with ``locks`` (file name -> text), by path."""
    files = {DEFINITION: spec.definition_bytes()}
    files.update({f"spec/{name}": data for name, data in spec.sources})
    for name, text in locks.items():
        if not _LOCK.fullmatch(name):
            raise UsageError(f"invalid lock file name {shown(name, 60)!r}: pylock.toml or conda-PLATFORM.txt")
        files[name] = text.encode()
    return files


def check_locks(spec: Spec, locks: Mapping[str, str]) -> None:
    """Every version carries its locks: ``pylock.toml`` for a pip part, a ``conda-PLATFORM.txt``
    for conda dependencies (UsageError, one line, naming what is missing)."""
    conda = [n for n in locks if n.startswith("conda-")]
    if (spec.pip or not spec.conda) and PYLOCK not in locks:
        raise UsageError(f"environment {spec.name} needs its pip lock ({PYLOCK}) to be registered")
    if spec.conda and not conda:
        raise UsageError(f"environment {spec.name} needs a conda lock (conda-PLATFORM.txt) to be registered")
    if PYLOCK in locks:
        from privpkg.environments import pylock

        pylock.load(locks[PYLOCK])  # a lock from anywhere obeys the rules of the ones privpkg makes


def spec_digest(spec: Spec) -> str:
    """The digest a version of ``spec`` records for its spec part, whatever its locks."""
    files = version_files(spec, {})
    return _digest({p: {"sha256": _sha(d)} for p, d in files.items()})


def screen_files(files: Mapping[str, bytes], secrets: Mapping[str, str] | None = None) -> None:
    """Refuse (one line) a file that holds a secret or a signature, or that is not UTF-8 text;
    secrets read once.

    Not UTF-8 is refused rather than screened after a lossy decode: the screen matches text,
    and which text a reader sees in other bytes depends on its decoding (pip falls back to the
    locale's; in UTF-16 every ASCII byte of a token is split by a NUL), so no screen of the bytes
    could vouch for what pip or conda would read. Spec files privpkg reads from paths are
    UTF-8 already (:func:`privpkg.environments.sources.decode`)."""
    from privpkg.environments import screen  # a registration's: a build by NAME reads, screens nothing

    known = screen.known_secrets() if secrets is None else secrets
    for path, data in sorted(files.items()):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"{shown(path)} is not UTF-8 text; convert it to UTF-8 (privpkg checks spec files for "
                             "secrets as text)") from None
        screen.refuse(text, path, known)


def _record(name: str, version: int, files: Mapping[str, bytes]) -> dict[str, Any]:
    entries = {p: {"sha256": _sha(d), "size": len(d)} for p, d in sorted(files.items())}
    return {"format": RECORD_FORMAT, "name": name, "version": version, "digest": _digest(entries),
            "spec_digest": _digest(entries, spec_only=True), "files": entries}


def _parse_record(data: bytes, where: str) -> Version:
    try:
        doc = json.loads(data)
        files = doc["files"]
        if doc.get("format") != RECORD_FORMAT or not isinstance(files, dict):
            raise ValueError
        for p, f in files.items():
            if not isinstance(f, dict) or not isinstance(f.get("sha256"), str) or not isinstance(f.get("size"), int):
                raise TypeError
            if p in RESERVED_FILES[:1] or ".." in p.split("/"):
                raise ValueError
        return Version(doc["name"], int(doc["version"]), doc["digest"], doc["spec_digest"], files)
    except (ValueError, KeyError, TypeError):
        raise UnreadableRecord(f"{where} is not a version record privpkg can read") from None


class _Listing:
    """One listing of ``environments/NAME/``: the versions claimed and the objects present."""

    def __init__(self, store: Storage, name: str) -> None:
        self.prefix = env_prefix(name)
        self.objects: dict[str, int] = {b.key[len(self.prefix) :]: b.size for b in store.list_keys(self.prefix)}
        claimed = []
        for key in self.objects:
            head, _, rest = key.partition("/")
            if rest == RECORD and head.isdigit():
                claimed.append(int(head))
        self.versions = sorted(claimed)

    def complete(self, rec: Version) -> bool:
        return all(self.objects.get(f"{rec.version}/{p}") == f["size"] for p, f in rec.files.items())

    def labels(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for key in self.objects:
            parts = key.split("/")
            if len(parts) == 3 and parts[0] == "labels" and parts[2].endswith(".json") and parts[2][:-5].isdigit():
                out.setdefault(parts[1], []).append(int(parts[2][:-5]))
        return {k: sorted(v) for k, v in out.items()}


def _read_record(store: Storage, name: str, version: int) -> Version:
    key = f"{env_prefix(name)}{version}/{RECORD}"
    rec = _parse_record(store.read_bytes(key), key)
    if rec.name != name or rec.version != version:
        raise PrivpkgError(f"{key} names {shown(rec.name)}:{rec.version}, not {name}:{version}")
    return rec


def _fill(store: Storage, rec: Version, files: Mapping[str, bytes], present: Mapping[str, int] | None = None) -> None:
    """Write the files of ``rec`` that are missing (conditional creates; a file another writer
    put there first must have the recorded content)."""
    prefix = f"{env_prefix(rec.name)}{rec.version}/"
    for path, data in sorted(files.items()):
        if present is not None and present.get(f"{rec.version}/{path}") == len(data):
            continue
        try:
            store.put_bytes(prefix + path, data)
        except AlreadyExists:
            if _sha(store.read_bytes(prefix + path)) != rec.files[path]["sha256"]:
                raise PrivpkgError(f"{prefix}{path} does not match its version record; the workspace was changed "
                                   "outside privpkg") from None


def find_unchanged(store: Storage, spec: Spec) -> Version | None:
    """The latest version when its spec part is ``spec`` and it is complete (two requests),
    else None: what ``register`` returns without locking again."""
    listing = _Listing(store, spec.name)
    if not listing.versions:
        return None
    try:
        rec = _read_record(store, spec.name, listing.versions[-1])
    except UnreadableRecord:
        return None
    return rec if rec.spec_digest == spec_digest(spec) and listing.complete(rec) else None


def register(store: Storage, spec: Spec, locks: Mapping[str, str], *, version: int | None = None,
             secrets: Mapping[str, str] | None = None) -> Version:
    """Register ``spec`` with ``locks`` (file name -> text: ``pylock.toml``,
    ``conda-PLATFORM.txt``). The content of the latest version: that version, nothing written;
    else version N+1. ``version``: the caller asserts that version; it must hold this content
    (or be the next one), never a silent reuse. Refuses (UsageError, one line) any file holding
    a secret or a signature."""
    if PYLOCK in locks:  # stored canonical: what pylock.load strips (a username alone) is never stored
        from privpkg.environments import pylock

        locks = {**locks, PYLOCK: pylock.dump(pylock.load(locks[PYLOCK]))}
    files = version_files(spec, locks)
    screen_files(files, secrets)  # first: a secret is the line to see, whatever else is wrong
    check_locks(spec, locks)
    name = spec.name
    listing = _Listing(store, name)
    latest = listing.versions[-1] if listing.versions else 0
    if version is not None:
        if version in listing.versions:
            rec = _read_record(store, name, version)
            if rec.digest != _record(name, version, files)["digest"]:
                raise UsageError(f"environment {name}:{version} exists with other content; register without a version "
                                 f"to make {name}:{latest + 1}")
            _fill(store, rec, files, listing.objects)
            return rec
        if version != latest + 1:
            raise UsageError(f"environment {name} has no version {version}; the next one is {latest + 1}")
    elif latest:
        try:
            rec = _read_record(store, name, latest)
        except UnreadableRecord:
            rec = None  # not ours to read, nor to overwrite: the next version goes past it
        if rec is not None and rec.digest == _record(name, latest, files)["digest"]:
            if not listing.complete(rec):
                _fill(store, rec, files, listing.objects)
            return rec
    n = version or latest + 1
    for _ in range(MAX_TRIES):
        record = _record(name, n, files)
        try:
            store.put_bytes(f"{env_prefix(name)}{n}/{RECORD}", canonical_json(record))
        except AlreadyExists:
            try:
                rec = _read_record(store, name, n)
            except UnreadableRecord:
                if version is not None:
                    raise
                n += 1
                continue
            if rec.digest == record["digest"]:
                _fill(store, rec, files)  # the winner may still be writing: help it finish
                return rec
            if version is not None:
                raise UsageError(f"environment {name}:{version} was just registered with other content") from None
            n += 1
            continue
        rec = _parse_record(canonical_json(record), RECORD)._replace(created=True)
        _fill(store, rec, files)
        return rec
    raise PrivpkgError(f"environment {name}: {MAX_TRIES} versions were registered concurrently; try again")


def _read_version(store: Storage, rec: Version) -> Version:
    prefix = f"{env_prefix(rec.name)}{rec.version}/"
    content = {}
    for path, f in sorted(rec.files.items()):
        try:
            data = store.read_bytes(prefix + path)
        except NotFoundError:
            data = None
        if data is None or _sha(data) != f["sha256"]:
            raise IncompleteVersion(f"environment {rec.name}:{rec.version} is incomplete ({path} is "
                                    f"{'missing' if data is None else 'not what its record says'}); register the same "
                                    "spec again to complete it")
        content[path] = data
    rec = rec._replace(content=content)
    load_definition(content[DEFINITION])
    return rec


def read_definition(store: Storage, rec: Version) -> Spec:
    """The definition of ``rec`` alone (one request), checked against its record."""
    key = f"{env_prefix(rec.name)}{rec.version}/{DEFINITION}"
    data = store.read_bytes(key)
    if _sha(data) != rec.files[DEFINITION]["sha256"]:
        raise IncompleteVersion(f"environment {rec.name}:{rec.version}: {DEFINITION} is not what its record says")
    return load_definition(data)


def _label_value(store: Storage, name: str, label: str, seqs: list[int]) -> int | None:
    if not seqs:
        return None
    key = f"{env_prefix(name)}labels/{label}/{seqs[-1]}.json"
    try:
        doc = json.loads(store.read_bytes(key))
    except ValueError:
        raise PrivpkgError(f"{key} is not a label record") from None
    if isinstance(doc, dict) and doc.get("removed") is True:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("version"), int):
        raise PrivpkgError(f"{key} is not a label record")
    return int(doc["version"])


#: The workspace each storage :func:`open_registry` opened belongs to, for messages that name it
#: (a storage object does not know the name it was registered under; weak: never kept alive).
_WORKSPACES: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _where(store: Storage) -> str:
    name = _WORKSPACES.get(store)
    return "this workspace" if name is None else f"workspace {shown(name)!r}"


def _missing(store: Storage, name: str) -> str:
    """``no environment 'NAME' in workspace 'W'``, the closest registered name (difflib, as a
    mistyped workspace gets), and the command that lists them, naming a workspace other than
    the default (on this error path only: one more listing)."""
    import difflib

    ws = _WORKSPACES.get(store)
    try:  # the names alone: one listing, no record read
        close = difflib.get_close_matches(name, _names(store), n=1)
    except PrivpkgError:
        close = []
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listing = "privpkg env list" + (f" --workspace {shown(ws)}" if ws not in (None, "default") else "")
    return f"no environment {name!r} in {_where(store)}{hint} (see: {listing})"


def find(store: Storage, name: str, version: int | None = None, label: str | None = None) -> Version:
    """The record (not the files) of ``version``, of the version ``label`` points at, or of the
    latest complete one: one listing and the records it takes."""
    listing = _Listing(store, name)
    if label is not None:
        validate_label(label)
        version = _label_value(store, name, label, listing.labels().get(label, []))
        if version is None:
            if not listing.versions:
                raise NotFoundError(_missing(store, name))
            raise NotFoundError(f"environment {name} has no label {label!r} in {_where(store)}")
    if not listing.versions:
        raise NotFoundError(_missing(store, name))
    if version is not None:
        if version not in listing.versions:
            raise NotFoundError(f"environment {name} has no version {version} in {_where(store)} (latest: {listing.versions[-1]})")
        return _read_record(store, name, version)
    for n in reversed(listing.versions):
        try:
            found = _read_record(store, name, n)
        except UnreadableRecord:
            continue  # skipped, as an incomplete version is
        if listing.complete(found):
            return found
    raise IncompleteVersion(f"environment {name} has no complete version; register its spec again")


def read_file(store: Storage, rec: Version, path: str) -> bytes:
    """One file of ``rec``, checked against its record (IncompleteVersion when it is not what the
    record says)."""
    if path not in rec.files:
        raise NotFoundError(f"environment {rec.name}:{rec.version} has no {path}")
    try:
        data = store.read_bytes(f"{env_prefix(rec.name)}{rec.version}/{path}")
    except NotFoundError:
        data = None
    if data is None or _sha(data) != rec.files[path]["sha256"]:
        raise IncompleteVersion(f"environment {rec.name}:{rec.version} is incomplete ({path} is "
                                f"{'missing' if data is None else 'not what its record says'}); register the same spec again")
    return data


def get(store: Storage, name: str, version: int | None = None, label: str | None = None, *,
        digest: str | None = None) -> Version:
    """A registered version with its files, each checked against its record: ``version``, the
    version ``label`` points at, or the latest complete one. ``digest``: the content the caller
    expects (an error if the version holds other content)."""
    rec = _read_version(store, find(store, name, version, label))
    if digest is not None and rec.digest != digest:
        raise UsageError(f"environment {name}:{rec.version} holds other content than expected (digest {rec.digest[:12]}, "
                         f"expected {digest[:12]})")
    return rec


def list_environments(store: Storage) -> dict[str, Version]:
    """Each environment's latest complete version (records only), by name."""
    return {name: rec for name, (rec, _) in list_with_labels(store, with_labels=False).items()}


def list_with_labels(store: Storage, *, with_labels: bool = True) -> dict[str, tuple[Version, dict[str, int]]]:
    """:func:`list_environments` with each environment's labels (:func:`labels`: label ->
    version), from the one listing per environment it makes anyway (``with_labels=False``: none read)."""
    out: dict[str, tuple[Version, dict[str, int]]] = {}
    for name in _names(store):
        listing = _Listing(store, name)
        for n in reversed(listing.versions):
            try:
                rec = _read_record(store, name, n)
            except UnreadableRecord:
                continue
            if listing.complete(rec):
                out[name] = (rec, _labels_of(store, name, listing) if with_labels else {})
                break
    return out


def _names(store: Storage) -> list[str]:
    """The names of the environments with a key in ``store`` (one listing; stray keys, not
    environments privpkg registered, left out)."""
    names = sorted({b.key.split("/")[1] for b in store.list_keys(f"{ENVIRONMENTS}/") if b.key.count("/") >= 3})
    out = []
    for name in names:
        try:
            out.append(validate_name(name))
        except UsageError:
            continue
    return out


def labels(store: Storage, name: str) -> dict[str, int]:
    """The labels of ``name`` and the versions they point at (removed ones left out)."""
    return _labels_of(store, name, _Listing(store, name))


def _labels_of(store: Storage, name: str, listing: _Listing) -> dict[str, int]:
    out = {}
    for label, seqs in sorted(listing.labels().items()):
        value = _label_value(store, name, label, seqs)
        if value is not None:
            out[label] = value
    return out


def set_label(store: Storage, name: str, label: str, version: int | None) -> bool:
    """Point ``label`` at ``version`` (None: remove it). Each change is a new record with the
    next sequence number, created conditionally; the later of two racing writers wins. A label
    already where it is asked to point is left as it is: nothing written, False returned."""
    validate_label(label)
    listing = _Listing(store, name)
    if not listing.versions:
        raise NotFoundError(_missing(store, name))
    if version is not None:
        if version not in listing.versions:
            raise NotFoundError(f"environment {name} has no version {version} in {_where(store)} (latest: {listing.versions[-1]})")
        if not listing.complete(_read_record(store, name, version)):
            raise IncompleteVersion(f"environment {name}:{version} is incomplete; register its spec again first")
    seqs = listing.labels().get(label, [])
    current = _label_value(store, name, label, seqs)
    if version is None and current is None:
        raise NotFoundError(f"environment {name} has no label {label!r} in {_where(store)}")
    if version is not None and current == version:
        return False
    seq = (seqs[-1] if seqs else 0) + 1
    body = canonical_json({"removed": True} if version is None else {"version": version})
    for _ in range(MAX_TRIES):
        try:
            store.put_bytes(f"{env_prefix(name)}labels/{label}/{seq}.json", body)
            return True
        except AlreadyExists:
            seq += 1
    raise PrivpkgError(f"label {label!r} of {name} is being changed concurrently; try again")


def open_registry(workspace: str | Workspace) -> tuple[Workspace, Storage]:
    """The workspace (a name or a Workspace) and its storage, where the registry lives."""
    from privpkg.access import open_workspace_storage
    from privpkg.workspace import get_workspace

    ws = get_workspace(workspace) if isinstance(workspace, str) else workspace
    store = open_workspace_storage(ws)
    if ws.storage == "local":
        _WORKSPACES[store] = ws.name
        return ws, store
    # A cloud registry's immutable objects are read once per machine (registry.CachedReads),
    # in a folder named by where they live.

    from privpkg.paths import cache_dir

    where = sha256("\0".join((ws.storage, ws.location, ws.endpoint_url or "")).encode()).hexdigest()[:16]
    cached = CachedReads(store, cache_dir() / "registry" / where)
    _WORKSPACES[cached] = ws.name
    return ws, cached
