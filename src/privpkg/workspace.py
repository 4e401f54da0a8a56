"""Workspaces: a name and a storage location for wheels, and the files that define them.

A :class:`Workspace` is plain data; opening its storage is :mod:`privpkg.access`'s job and
publishing to it :mod:`privpkg.wheels`'.

A definition holds no secret, so a team can commit it in ``privpkg.toml``::

    [workspaces.team]
    storage = "azure"
    url = "https://acct.blob.core.windows.net/wheels"

    [workspaces.ml]
    storage = "s3"
    url = "s3://my-bucket/wheels-prefix"
    endpoint_url = "https://s3.eu-central-1.amazonaws.com"   # optional
    region = "eu-central-1"                                  # optional

    [workspaces.vendored]
    storage = "local"
    path = "wheels"          # relative: against the directory of the file that says it

Definitions come from the built-in ``default`` (local, under the user data dir), the user's
``workspaces.toml`` in the privpkg config dir, and the nearest ``privpkg.toml`` found walking up
from the current directory. This module owns the rules that keep a project file untrusted input:

- the walk stops at the first directory holding ``.git`` or ``.hg``, or at the home directory;
- a project file is read only when the user could have written it and nobody else could have
  (see :func:`untrusted_reason`), unless the user opted in for its directory
  (``PRIVPKG_TRUSTED_PROJECTS`` or ``trusted_projects`` in the user's ``workspaces.toml``);
- a project file adds workspaces; it never redefines ``default`` or one the user defined;
- a broken file or entry never raises: it becomes one problem line naming the file and the key,
  warned once, and the other workspaces keep working.

TOML is read with ``tomllib`` and written with ``tomlkit``, which keeps the user's comments and
layout; add and remove refuse to touch a file they could not parse.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import stat
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from privpkg import envvars, paths, refs, urls
from privpkg.errors import CONTROL, NotFoundError, PrivpkgError, UsageError, shown
from privpkg.refs import validate_workspace_name
from privpkg.storage.base import KINDS

PROJECT_FILE = "privpkg.toml"
_REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
#: The public Azure Blob endpoints (global, China, US Government): https://ACCOUNT<suffix>/CONTAINER.
AZURE_BLOB_SUFFIXES = (".blob.core.windows.net", ".blob.core.chinacloudapi.cn", ".blob.core.usgovcloudapi.net")
_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")
#: S3's bucket naming rules (general purpose buckets; MinIO and R2 follow them): 3-63 characters,
#: lowercase letters, digits, '.' and '-', a letter or digit at both ends, no '..', not an IP.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4 = re.compile(r"\d+\.\d+\.\d+\.\d+")
_MAX_FILE = 1 << 20  # a definitions file is a few hundred bytes; refuse to parse a huge one


class Workspace(NamedTuple):
    """One workspace definition. A NamedTuple (immutable) rather than a dataclass: the pip shim's
    signer imports this module on every ``privpkg://`` download, and ``dataclasses`` costs ~10 ms."""

    name: str
    storage: str
    location: str  # a folder for local, the container URL for azure, s3://bucket[/prefix] for s3
    endpoint_url: str | None = None
    region: str | None = None
    source: str = "built-in"

    def wheel_url(self, filename: str) -> str:
        """The ``privpkg://`` URL of the wheel ``filename`` in this workspace."""
        return refs.url_for(self.name, refs.WHEELS, filename)

    def toml_table(self) -> dict[str, str]:
        """The definition as its ``[workspaces.NAME]`` TOML table (also ``workspace show --json``)."""
        key = "path" if self.storage == "local" else "url"
        d = {"storage": self.storage, key: self.location}
        if self.endpoint_url:
            d["endpoint_url"] = self.endpoint_url
        if self.region:
            d["region"] = self.region
        return d


# --- validation ------------------------------------------------------------------------------


def check_text(what: str, value: str) -> str:
    if CONTROL.search(value):
        raise UsageError(f"{what} contains a control character (newline, tab, NUL, ...): {shown(value)!r}")
    return value


def validate_region(region: str) -> str:
    check_text("region", region)
    if not _REGION.fullmatch(region):
        raise UsageError(f"invalid region {region!r}: use letters, digits and '-' (e.g. eu-central-1)")
    return region


def _azure_container(location: str) -> str:
    norm = urls.normalize(location, for_target=True)
    loopback = urls.is_loopback(norm.host)
    if norm.scheme != "https" and not (norm.scheme == "http" and loopback):
        raise UsageError("an Azure container URL must be https:// (http:// only on loopback, e.g. Azurite)")
    segs = norm.segments
    if loopback:
        # Azurite and other emulators put the account in the path: http://127.0.0.1:10000/devstoreaccount1/c
        if len(segs) != 2 or not all(segs):
            raise UsageError(f"{urls.redact(location)} is not a container URL: expected http://127.0.0.1:PORT/ACCOUNT/CONTAINER")
        return norm.url.rstrip("/")
    # Anything else must be an Azure Blob endpoint: the pip shim mounts itself on these URLs, so
    # a definition must never name another host (e.g. https://pypi.org/simple).
    account, _, rest = norm.host.partition(".")
    if "." + rest not in AZURE_BLOB_SUFFIXES or not _ACCOUNT.fullmatch(account) or norm.port is not None:
        raise UsageError(
            f"{urls.redact(location)} is not an Azure Blob container URL: expected https://ACCOUNT.blob.core.windows.net/CONTAINER"
            " (or .blob.core.chinacloudapi.cn, .blob.core.usgovcloudapi.net; Azurite: http://127.0.0.1:PORT/ACCOUNT/CONTAINER)"
        )
    if len(segs) != 1 or not segs[0]:
        raise UsageError(f"{urls.redact(location)} is not a container URL: expected https://ACCOUNT.blob.core.windows.net/CONTAINER")
    return norm.url.rstrip("/")


def _check_bucket(location: str) -> None:
    """Refuse a bucket name S3 would refuse; normalizing would lowercase it into another bucket."""
    from urllib.parse import urlsplit

    bucket = urlsplit(location).netloc
    if not _BUCKET.fullmatch(bucket) or ".." in bucket or _IPV4.fullmatch(bucket):
        raise UsageError(f"invalid S3 bucket name {shown(bucket, limit=80)!r}: S3 allows 3-63 lowercase letters, digits, '.' and '-', "
                         "starting and ending with a letter or digit")


def validate_location(storage: str, location: str, endpoint_url: str | None = None, *, allow_http: bool = False,
                      new: bool = True) -> str:
    """The normalized location of a ``storage`` workspace. ``endpoint_url`` (S3, from ``workspace
    add``): plain http only on loopback or with ``allow_http``, as for a connection's endpoint.
    ``new`` (``workspace add``): an S3 bucket name must be one S3 accepts today; a workspace
    already defined keeps working (legacy us-east-1 buckets may hold ``_`` or capitals)."""
    check_text("the location", location)
    if endpoint_url is not None:
        check_text("the endpoint URL", endpoint_url)
    if storage == "local":
        try:
            return str(Path(location).expanduser().resolve())
        except (OSError, RuntimeError, ValueError) as exc:
            raise UsageError(f"cannot use folder {shown(location)!r}: {exc}") from None
    if storage == "azure":
        return _azure_container(location)
    if storage == "s3":
        norm = urls.normalize(location, for_target=True)
        if norm.scheme != "s3" or not norm.host:
            raise UsageError(f"expected s3://BUCKET[/PREFIX], got {urls.redact(location)}")
        if new:
            _check_bucket(location)
        if endpoint_url:
            end = urls.normalize(endpoint_url, for_target=True)
            from urllib.parse import urlsplit

            # The host as given is what the SDK will ask DNS for: `localhost.` is not the hosts
            # file's localhost, though it normalizes to it.
            raw_host = urlsplit(endpoint_url.strip()).hostname or ""
            if end.scheme == "http" and not (allow_http or (urls.is_loopback(end.host) and urls.is_loopback(raw_host))):
                raise UsageError(f"refusing plain-http endpoint {end.url}: requests and their signatures would travel "
                                 "unencrypted; use https, or pass --allow-http if you really mean it")
        return norm.url.rstrip("/")
    raise UsageError(f"unknown storage {shown(storage)!r}; choose one of {', '.join(KINDS)}")


# --- reading ---------------------------------------------------------------------------------


def _key(*parts: str) -> str:
    """A TOML dotted key for messages: bare parts as they are, others quoted and escaped."""
    return ".".join(p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else json.dumps(p) for p in parts)


def _parse(data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(document, None) or (None, why it cannot be parsed)."""
    if len(data) > _MAX_FILE:
        return None, f"larger than {_MAX_FILE} bytes"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 (byte {exc.start})"
    try:
        import tomllib  # here: only when a definitions file exists

        return tomllib.loads(text), None
    except Exception as exc:  # noqa: BLE001 - TOMLDecodeError, or RecursionError on absurd nesting
        return None, f"invalid TOML: {shown(exc)}"


def _definition(name: Any, t: Any, path: Path, source: str) -> Workspace:
    """One ``[workspaces.NAME]`` table as a Workspace; UsageError naming the key otherwise."""
    key = _key("workspaces", str(name))
    try:
        validate_workspace_name(name)
    except UsageError as exc:
        raise UsageError(f"{key}: {exc}") from None
    if not isinstance(t, dict):
        raise UsageError(f"{key}: expected a table ([{key}] with storage = \"local\", \"azure\" or \"s3\")")
    storage = t.get("storage")
    if storage is None:
        hint = ""
        if t and all(isinstance(v, dict) for v in t.values()):
            hint = f" (a workspace name with a dot must be quoted: [workspaces.\"{name}.{next(iter(t))}\"])"
        raise UsageError(f"{key}.storage: missing{hint}")
    if not isinstance(storage, str) or storage not in KINDS:
        raise UsageError(f"{key}.storage: unknown storage {shown(storage)!r}; choose one of {', '.join(KINDS)}")
    loc_key = "path" if storage == "local" else "url"
    values: dict[str, str | None] = {}
    for k in (loc_key, "endpoint_url", "region"):
        v = t.get(k)
        if v is not None and not isinstance(v, str):
            raise UsageError(f"{key}.{k}: expected a string, got {type(v).__name__}")
        if v is not None and CONTROL.search(v):
            raise UsageError(f"{key}.{k}: contains a control character")
        values[k] = v
    location = values[loc_key]
    if location is None:
        raise UsageError(f"{key}.{loc_key}: missing")
    if storage == "local" and not location.startswith("~") and not Path(location).is_absolute():
        location = str(path.parent / location)  # relative to the file, so a committed file works on every clone
    try:
        location = validate_location(storage, location, new=False)
    except UsageError as exc:
        raise UsageError(f"{key}.{loc_key}: {exc}") from None
    endpoint, region = (values["endpoint_url"], values["region"]) if storage == "s3" else (None, None)
    try:
        if endpoint:
            urls.normalize(endpoint, for_target=True)
    except UsageError as exc:
        raise UsageError(f"{key}.endpoint_url: {exc}") from None
    try:
        if region:
            validate_region(region)
    except UsageError as exc:
        raise UsageError(f"{key}.region: {exc}") from None
    return Workspace(name, storage, location, endpoint or None, region or None, source)


class _Loaded:
    """What one definitions file gave: good workspaces, broken ones (name -> problem line),
    every problem line, the trusted_projects list (user file only), and why the whole file
    could not be parsed (``fatal``), if so."""

    __slots__ = ("broken", "endpoints", "fatal", "problems", "trusted", "workspaces")

    def __init__(self, fatal: str | None = None) -> None:
        self.workspaces: dict[str, Workspace] = {}
        self.broken: dict[str, str] = {}
        self.problems: list[str] = []
        self.trusted: list[str] = []
        self.endpoints: list[str] = []
        self.fatal = fatal


def _user_only_list(doc: dict[str, Any], key: str, expected: str, user: bool, where: str, problems: list[str]) -> list[str] | None:
    """``doc[key]`` as a list of strings, read only from the user's own config: a project file
    may not widen what the user trusts, so there it is ignored with one problem line."""
    value = doc.get(key)
    if value is None:
        return None
    if not user:
        problems.append(f"{where}: {key}: only read from the user config ({shown(user_file())}); ignored here")
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and not CONTROL.search(v) for v in value):
        problems.append(f"{where}: {key}: expected a list of {expected}")
        return None
    return list(value)


def _load(path: Path, source: str, *, user: bool) -> _Loaded:
    """Never raises: every problem becomes one line ``FILE: KEY: what is wrong``."""
    out = _Loaded()
    where = shown(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return out
    except OSError as exc:
        out.fatal = f"{where}: cannot read it: {shown(exc.strerror or exc)}"
        out.problems.append(out.fatal)
        return out
    doc, why = _parse(data)
    if doc is None:
        out.fatal = f"{where}: {why}"
        out.problems.append(out.fatal)
        return out
    out.trusted = _user_only_list(doc, "trusted_projects", "directories, e.g. [\"/work/repo\"]", user, where, out.problems) or []
    out.endpoints = _user_only_list(doc, "trusted_endpoints", "endpoint URLs, e.g. [\"https://minio.example.com\"]", user, where, out.problems) or []
    spaces = doc.get("workspaces", {})
    if not isinstance(spaces, dict):
        # No workspace of this file can be read: as fatal as a parse error.
        out.fatal = f"{where}: workspaces: expected a table of workspaces ([workspaces.NAME])"
        out.problems.append(out.fatal)
        return out
    for name, t in spaces.items():
        try:
            out.workspaces[name] = _definition(name, t, path, source)
        except UsageError as exc:
            out.broken[name] = f"{where}: {exc}"
            out.problems.append(out.broken[name])
    return out


class _LoadedAt(NamedTuple):
    """One file's :class:`_Loaded`, and the file's stat it was read at."""

    stamp: Any
    loaded: _Loaded


_LOADED: dict[str, _LoadedAt] = {}


def _load_cached(path: Path, source: str, *, user: bool) -> _Loaded:
    stamp = _stamp(path)
    hit = _LOADED.get(str(path))
    if hit is None or hit.stamp != stamp:
        hit = _LoadedAt(stamp, _load(path, source, user=user))
        _LOADED[str(path)] = hit
    return hit.loaded


# --- discovery and trust ---------------------------------------------------------------------


def user_file() -> Path:
    return paths.config_dir() / "workspaces.toml"


def _home() -> str | None:
    home = os.path.expanduser("~")
    return None if home == "~" else os.path.realpath(home)


def find_project_file(start: Path | None = None) -> Path | None:
    """The nearest ``privpkg.toml`` walking up from ``start`` (default: the working directory),
    trusted or not. The walk reads the directory it starts in and its parents up to and
    including the first one that holds ``.git`` or ``.hg`` (a directory, or a file as in a
    worktree or submodule) or is the home directory; nothing above is read. (Plain os.path
    strings: the pip shim walks once per wheel, and pathlib costs several times more.)"""
    try:
        d = os.path.realpath(start if start is not None else os.getcwd())
    except (OSError, ValueError):
        return None
    home = _home()
    lexists, join = os.path.lexists, os.path.join
    while True:
        candidate = join(d, PROJECT_FILE)
        if lexists(candidate):
            return Path(candidate)
        if d == home or lexists(join(d, ".git")) or lexists(join(d, ".hg")):
            return None
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


@functools.lru_cache(maxsize=64)
def _private_group(gid: int, uid: int) -> bool:
    """True when the group's only member is ``uid`` (a user private group, as Debian's OpenSSH
    accepts for group-writable files): with umask 002 every file of such a user is group-writable
    and no other account can use that."""
    try:
        import grp
        import pwd

        group = grp.getgrgid(gid)
        me = pwd.getpwuid(uid).pw_name
        primary = [p.pw_uid for p in pwd.getpwall() if p.pw_gid == gid]
    except (ImportError, KeyError, OSError):
        return False
    if any(u != uid for u in primary) or any(m != me for m in group.gr_mem):
        return False
    return bool(primary or group.gr_mem)


def _writable_by_others(st: os.stat_result) -> bool:
    """World-writable, or group-writable by a group with a member other than the owner."""
    mode = st.st_mode
    return bool(mode & stat.S_IWOTH) or bool(mode & stat.S_IWGRP and not _private_group(st.st_gid, st.st_uid))


_ACL_XATTR = "system.posix_acl_access"
_ACL_USER, _ACL_GROUP, _ACL_MASK = 0x02, 0x08, 0x10
_ACL_WRITE = 0x02
_NO_ACL = {errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP}


def _acl_writers(path: str, st: os.stat_result, yours: set[int]) -> str | None:
    """Who besides the mode bits can write ``path`` through a POSIX ACL (Linux), as a phrase,
    or None. With an extended ACL the mode's group bits show the ACL mask, which a user private
    group would excuse: a named-user entry for another uid, or any named-group entry, with write
    permission under the mask makes the path writable by others. Only read when the group bits
    have write (else the mask forbids every named entry to write), so a normal walk costs no
    extra system call. No xattr support or no ACL means the mode bits tell everything; an ACL
    that cannot be read or parsed counts as writable (fail closed)."""
    getxattr: Callable[..., bytes] | None = getattr(os, "getxattr", None)
    if getxattr is None or not st.st_mode & stat.S_IWGRP:
        return None  # macOS and others: ACLs are not checked (see README)
    try:
        raw = getxattr(path, _ACL_XATTR)
    except OSError as exc:
        if exc.errno in _NO_ACL:
            return None
        raise
    # struct posix_acl_xattr_header {u32 version = 2}, then {u16 tag, u16 perm, u32 id} entries.
    if len(raw) < 4 or (len(raw) - 4) % 8 or struct.unpack_from("<I", raw)[0] != 2:
        return "an ACL privpkg cannot parse"
    entries = [struct.unpack_from("<HHI", raw, off) for off in range(4, len(raw), 8)]
    mask = next((perm for tag, perm, _ in entries if tag == _ACL_MASK), 0x07)
    for tag, perm, ident in entries:
        if not perm & mask & _ACL_WRITE:
            continue
        if tag == _ACL_USER and ident not in yours:
            return f"uid {ident} (ACL)"
        if tag == _ACL_GROUP:  # even a private group: the entry was added to let someone in
            return f"gid {ident} (ACL)"
    return None


def _you() -> tuple[int, set[int]] | None:
    """(effective uid, the uids whose files count as yours), or None where there are no uids.
    Root under sudo also owns what ``SUDO_UID`` owns, as git does for ``safe.directory``: only
    root can set root's environment, so this trusts nobody new."""
    geteuid: Callable[[], int] | None = getattr(os, "geteuid", None)
    if geteuid is None:
        return None
    uid = geteuid()
    yours = {uid}
    if uid == 0 and os.environ.get("SUDO_UID", "").isdigit():
        yours.add(int(os.environ["SUDO_UID"]))
    return uid, yours


def untrusted_reason(file: Path) -> str | None:
    """Why a found project file must not be read, or None. It is read only when nobody but the
    user (and root) could have written what the path names:

    - the file is owned by the user (a symbolic link too, and then the file it points to);
    - the file is not writable by others (group-writable is fine for a user private group), by
      its mode or, on Linux, by a POSIX ACL entry for another user or for a group;
    - every directory from the file's directory up to ``/`` is owned by the user or root and is
      not writable by others unless it has the sticky bit (as /tmp has: there others cannot
      rename or delete the user's entries, and what they create is theirs, caught above).

    Platforms without ``os.geteuid`` (Windows) are not checked."""
    you = _you()
    if you is None:
        return None
    uid, yours = you
    try:
        st = os.lstat(file)
        if st.st_uid not in yours:
            kind = "a symbolic link " if stat.S_ISLNK(st.st_mode) else ""
            return f"it is {kind}owned by uid {st.st_uid}, not by you (uid {uid})"
        real = str(file)
        if stat.S_ISLNK(st.st_mode):
            real = os.path.realpath(file, strict=True)
            st = os.stat(real)
            if st.st_uid not in yours:
                return f"it links to {shown(real)}, owned by uid {st.st_uid}, not by you (uid {uid})"
        if _writable_by_others(st):
            return f"it is writable by others (mode {stat.S_IMODE(st.st_mode):04o})"
        acl = _acl_writers(real, st, yours)
        if acl:
            return f"it is writable by others: {acl}"
        d, parent = os.path.dirname(real), ""
        while d != parent:
            dst = os.stat(d)
            if dst.st_uid not in yours and dst.st_uid != 0:
                return f"directory {shown(d)} is owned by uid {dst.st_uid}"
            if not dst.st_mode & stat.S_ISVTX:
                if _writable_by_others(dst):
                    return f"directory {shown(d)} is writable by others (mode {stat.S_IMODE(dst.st_mode):04o}, no sticky bit)"
                acl = _acl_writers(d, dst, yours)
                if acl:
                    return f"directory {shown(d)} is writable by others: {acl}, no sticky bit"
            d, parent = os.path.dirname(d), d
    except (OSError, RuntimeError) as exc:
        return f"it cannot be checked ({shown(exc)})"
    return None


def _trusted_dirs(user: _Loaded) -> list[str]:
    env = [d for d in os.environ.get(envvars.TRUSTED_PROJECTS, "").split(os.pathsep) if d]
    return env + user.trusted


def trusted_endpoints() -> list[str]:
    """Endpoints the user lists for ambient credentials (see :mod:`privpkg.ambient`): the
    space-separated ``PRIVPKG_TRUSTED_ENDPOINTS``, then ``trusted_endpoints`` in the user's
    ``workspaces.toml`` (never a project file's)."""
    env = os.environ.get(envvars.TRUSTED_ENDPOINTS, "").split()
    return env + _load_cached(user_file(), "user", user=True).endpoints


def _opted_in(directory: Path, trusted: list[str]) -> bool:
    for entry in trusted:
        if entry == "*":
            return True
        try:
            if Path(entry).expanduser().resolve() == directory:
                return True
        except (OSError, RuntimeError, ValueError):
            continue
    return False


def _skip_line(file: Path, reason: str) -> str:
    return (f"ignoring {shown(file)}: {reason}; if you trust it, set {envvars.TRUSTED_PROJECTS}={shown(file.parent)} "
            f"or add that directory to trusted_projects in {shown(user_file())}")


# --- all definitions -------------------------------------------------------------------------


def default_workspace() -> Workspace:
    return Workspace("default", "local", str(paths.data_dir() / "workspaces" / "default"))


class _State(NamedTuple):
    found: dict[str, Workspace]
    broken: dict[str, str]  # name -> the one line that explains it
    notes: list[str]  # file-level lines (skipped or unparsable files) for "no workspace named"
    warnings: list[str]


class _Cached(NamedTuple):
    """The merged definitions, and the key (files' stat, trust inputs) they were computed for."""

    key: Any
    state: _State


_CACHE: _Cached | None = None
_WARNED: set[str] = set()


def _stamp(path: Path | None) -> Any:
    if path is None:
        return None
    try:
        st = path.stat()
    except (OSError, ValueError):
        return (str(path), None)
    return (str(path), st.st_mtime_ns, st.st_size, st.st_ino)


def _warn(lines: list[str]) -> None:
    for line in lines:
        if line in _WARNED:
            continue
        _WARNED.add(line)
        # Through the "privpkg" logger: inside pip (the shim) pip's -qq hides it; elsewhere it is
        # the same "privpkg: warning:" line. A closed stderr loses only the line (it is still in the error).
        from privpkg import log  # here: logging costs ~5 ms on the shim's signing path

        log.warning(line)


def _state() -> _State:
    """Every definition, merged; memoized on the files' stat, since the pip shim asks once per
    wheel it downloads. Never raises."""
    global _CACHE
    ufile = user_file()
    user = _load_cached(ufile, "user", user=True)
    cand = find_project_file()
    trusted = _trusted_dirs(user)
    reason = None
    if cand is not None and not _opted_in(cand.parent, trusted):
        reason = untrusted_reason(cand)
    key = (os.environ.get(envvars.HOME), str(ufile), _stamp(ufile), _stamp(cand), reason, tuple(trusted))
    if _CACHE is not None and _CACHE.key == key:
        return _CACHE.state
    found = {"default": default_workspace()}
    found.update(user.workspaces)  # the user's own config may redefine anything, default too
    broken = dict(user.broken)
    for name in user.broken:
        found.pop(name, None)
    warnings = list(user.problems)
    notes = [user.fatal] if user.fatal else []
    if cand is not None and reason is not None:
        line = _skip_line(cand, reason)
        warnings.append(line)
        notes.append(line)
    elif cand is not None and user.fatal:
        # Unknown user names cannot be protected: fail closed rather than let a cloned project
        # take over a workspace the user defined in the file that could not be read.
        line = (f"ignoring the workspaces in {shown(cand)}: {shown(ufile)} cannot be read, so privpkg cannot tell "
                f"which names a project may define; fix {shown(ufile)} first")
        warnings.append(line)
        notes.append(line)
    elif cand is not None:
        proj = _load_cached(cand, f"project {cand}", user=False)
        overridden = set()
        for name in [*proj.workspaces, *proj.broken]:
            if name == "default" or name in user.workspaces or name in user.broken:
                # A project may add workspaces, never take over one the user relies on.
                overridden.add(name)
                where = shown(ufile) if name != "default" or "default" in user.workspaces else "privpkg (the built-in default)"
                warnings.append(f"ignoring workspace {shown(name)!r} in {shown(cand)}: a project file cannot redefine a "
                                f"workspace defined in {where}; that definition is used")
            elif name in proj.workspaces:
                found[name] = proj.workspaces[name]
            else:
                broken[name] = proj.broken[name]
        hidden = {proj.broken[n] for n in overridden if n in proj.broken}
        warnings += [p for p in proj.problems if p not in hidden]
        notes += [proj.fatal] if proj.fatal else []
    state = _State(found, broken, notes, warnings)
    _CACHE = _Cached(key, state)
    return state


def all_workspaces(*, warn: bool = True) -> dict[str, Workspace]:
    """Every usable workspace by name. Never raises: a broken file or entry is a warning (once
    per process) and the others keep working. ``warn=False`` for the pip shim's look at every
    session: a pip run that uses no workspace shows nothing, and one that uses a broken
    workspace shows its one error line (from :func:`get_workspace`), not that line twice."""
    state = _state()
    if warn:
        _warn(state.warnings)
    return dict(state.found)


def get_workspace(name: str = "default") -> Workspace:
    state = _state()
    ws = state.found.get(name)
    if ws is not None:
        _warn(state.warnings)
        return ws
    # The error line carries the problem that explains it; warn only about the others.
    if name in state.broken:
        _warn([w for w in state.warnings if w != state.broken[name]])
        raise PrivpkgError(state.broken[name])
    _warn([w for w in state.warnings if w not in state.notes])
    hint = _did_you_mean(name, [*state.found, *state.broken])
    if state.notes:
        raise NotFoundError(f"no workspace named {shown(name)!r}: {'; '.join(state.notes)}{hint}")
    # Never "add one with: privpkg workspace add NAME": for a typo that invites a second,
    # misspelled workspace; a closest name or the list is what helps.
    raise NotFoundError(f"no workspace named {shown(name)!r}{hint} (see: privpkg workspace list)")


def _did_you_mean(name: str, known: list[str]) -> str:
    """``"; did you mean 'X'?"`` for the closest known workspace name, or ``""`` (the same
    difflib rule as the command line's suggestion for a mistyped command)."""
    import difflib

    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {shown(close[0])!r}?" if close else ""


# --- writing ---------------------------------------------------------------------------------


def _project_target(existing_only: bool) -> Path | None:
    """The project file ``--project`` edits: the nearest one (it must be trusted), else
    ./privpkg.toml when adding."""
    found = find_project_file()
    if found is None:
        return None if existing_only else Path.cwd().resolve() / PROJECT_FILE
    user = _load_cached(user_file(), "user", user=True)
    if not _opted_in(found.parent, _trusted_dirs(user)):
        reason = untrusted_reason(found)
        if reason is not None:
            raise PrivpkgError(f"not editing {_skip_line(found, reason).removeprefix('ignoring ')}")
    return found


def _edit(path: Path, change: Callable[[Any], None]) -> None:
    """Apply ``change`` to the parsed tomlkit document of ``path`` and write it back atomically,
    under the workspaces lock. A file that cannot be read or parsed is never written."""
    import tomlkit

    from privpkg.fileio import file_lock, write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    paths.config_dir().mkdir(parents=True, exist_ok=True)  # the lock lives there, also for project files
    with file_lock(paths.config_dir() / "workspaces.lock"):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        except OSError as exc:
            raise PrivpkgError(f"{shown(path)}: cannot read it ({shown(exc.strerror or exc)}); it was not changed") from None
        doc, why = _parse(data)
        if doc is None:
            raise PrivpkgError(f"{shown(path)}: {why}; it was not changed (fix or move it first)")
        try:
            tdoc = tomlkit.parse(data.decode("utf-8"))
        except Exception as exc:  # noqa: BLE001 - tomlkit stricter than tomllib somewhere
            raise PrivpkgError(f"{shown(path)}: cannot be edited ({shown(exc)}); it was not changed") from None
        if not isinstance(tdoc.get("workspaces", {}), dict):
            raise PrivpkgError(f"{shown(path)}: workspaces: expected a table of workspaces; it was not changed")
        change(tdoc)
        text = tomlkit.dumps(tdoc)
        import tomllib

        tomllib.loads(text)  # what we write must read back; tomlkit escapes every value
        write_atomic(path, text.encode(), 0o644)
        os.chmod(path, 0o644)


def add_workspace(ws: Workspace, project: bool = False) -> Path:
    import tomlkit

    validate_workspace_name(ws.name)
    if ws.name == "default":
        raise UsageError("'default' is built in; pick another name")
    if ws.storage not in KINDS:
        raise UsageError(f"unknown storage {shown(ws.storage)!r}; choose one of {', '.join(KINDS)}")
    for what, value in (("the location", ws.location), ("the endpoint URL", ws.endpoint_url)):
        if value is not None:
            check_text(what, value)
    if ws.region is not None:
        validate_region(ws.region)
    if ws.storage == "local" and os.path.exists(ws.location) and not os.path.isdir(ws.location):
        raise UsageError(f"{shown(ws.location)} is not a folder; --local names the folder that holds the wheels")
    path = _project_target(existing_only=False) if project else user_file()
    assert path is not None
    table = ws.toml_table()
    if project and ws.storage == "local":
        # Inside the project: relative to the file, so the committed file works on every clone.
        folder, base = Path(ws.location), path.parent.resolve()
        if folder.is_absolute() and folder.is_relative_to(base):
            table["path"] = folder.relative_to(base).as_posix() or "."

    def change(doc: Any) -> None:
        spaces = doc.get("workspaces")
        if spaces is None:
            spaces = tomlkit.table(is_super_table=True)
            doc["workspaces"] = spaces
        if ws.name in spaces:
            raise UsageError(f"workspace {ws.name!r} already exists in {shown(path)}; remove it first")
        t = tomlkit.table()
        for k, v in table.items():
            t[k] = v
        spaces[ws.name] = t

    _edit(path, change)
    return path


def _defined_elsewhere(name: str, project: bool) -> str:
    """Where ``name`` is defined when ``workspace remove`` looked in the other file: the hint
    that names the option to use (read only; ``""`` when it is nowhere else)."""
    if project:
        user = _load_cached(user_file(), "user", user=True)
        if name in user.workspaces or name in user.broken:
            return f" (it is in {shown(user_file())}: drop --project)"
        return ""
    cand = find_project_file()
    if cand is not None:
        proj = _load_cached(cand, f"project {cand}", user=False)
        if name in proj.workspaces or name in proj.broken:
            return f" (it is in {shown(cand)}: privpkg workspace remove {shown(name)} --project)"
    return ""


def remove_workspace(name: str, project: bool = False) -> Path:
    path = _project_target(existing_only=True) if project else user_file()

    def missing(where: str, hint: str = "") -> PrivpkgError:
        if name == "default" and not project:
            # Nothing in the user's file to remove: the one left is privpkg's own (as add says).
            return UsageError("'default' is built in and cannot be removed (a definition of it in "
                              f"{shown(user_file())} could be; there is none)")
        return NotFoundError(f"no workspace named {shown(name)!r} in {where}{hint or _defined_elsewhere(name, project)}")

    if path is None or not os.path.lexists(path):
        raise missing("a project privpkg.toml" if project else shown(user_file()))

    def change(doc: Any) -> None:
        spaces = doc.get("workspaces")
        if spaces is None or name not in spaces:
            raise missing(shown(path), _did_you_mean(name, [str(k) for k in spaces]) if spaces is not None else "")
        del spaces[name]

    _edit(path, change)
    return path
