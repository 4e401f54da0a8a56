"""The lookup log: one line per keyring lookup privpkg answered or refused, for ``privpkg doctor --last``.

pip turns a missing credential into "401 Credentials not correct", pip 26.2+ swallows the keyring
CLI's stderr, and conda prints pip's output only after it has failed: the warning privpkg gives
at lookup time often reaches nobody. So the keyring backend records each lookup here (what was
asked, which connection answered, or why none did, as :class:`~privpkg.connections.CredentialLookup`
and the backend decided it), and ``doctor --last`` explains it after the fact::

    $ privpkg doctor --last 2
    2026-11-22 05:40:01Z  keyring (from pip, pid 4242)  https://pkgs.dev.azure.com/org/_packaging/f/pypi/simple/
          nothing: no connection matches it; add one with: privpkg auth login https://pkgs.dev.azure.com/org/...

``privpkg doctor --url`` asks the backend itself and records nothing (:class:`paused`): its
question is not one pip or uv asked.

What a line holds: UTC time, pid, the program and its parent (names only, from ``/proc`` where there is one),
the service, the username asked for, the connection's name, source and target, or the reason code
and its detail, the lookup's warnings, and the tag of a pip privpkg runs (``$PRIVPKG_LOOKUP_TAG``,
hex, so that a failed ``pip lock`` names its own pip's lookup, not another program's). Never a
secret, although the service and the username are the caller's and may carry one
(``https://TOKEN@host/``, Gemfury's ``https://host/TOKEN/``):

- the service keeps no ``user:password@``, query or fragment (:func:`privpkg.urls.redact`), and a
  path segment that looks like a token (:func:`looks_like_token`: 20 or more of ``[A-Za-z0-9_-]``
  with letters and digits) becomes ``***``. A long feed name with digits is masked too: the safe
  side of the guess;
- the username is kept only when it names no one: a conventional placeholder
  (:data:`PLACEHOLDER_USERNAMES`, ``__token__``, ``oauth2``, ...) or the username of the
  connection that answered (``privpkg connection list`` shows it anyway); any other is ``<given>``;
- warnings are the lookup's own one-line messages (``ignoring $PRIVPKG_CONNECTIONS: ...``), which
  never quote a value; a token-like word in them is masked as well, in case one slips through;
- a connection's name, source and target are the user's labels, never its secret or username;
  a target's token-like path segments are masked as the service's are (and then the same
  segments of its name, which ``keyring set URL USER`` makes from the URL).

The file (``lookups.log`` in :func:`privpkg.paths.state_dir`, mode 0600, JSON lines) is:

- **private and never followed**: opened with ``O_NOFOLLOW`` (a planted symlink fails the open),
  used only if it is a regular single-link file we own; a looser mode is tightened to 0600;
- **small**: when a line would take it past :data:`MAX_BYTES` (64 KiB, a few hundred lookups) it is
  renamed to ``lookups.log.1`` (replacing the previous one) and a new file starts, so the two hold
  at most about 128 KiB. Where the rename is impossible (a read-only folder) it is truncated;
- **safe for concurrent writers**: several pip/uv/keyring processes append at once. Each line is
  one ``write()`` of at most :data:`MAX_LINE` bytes to a file opened with ``O_APPEND``: the kernel
  moves to the end and writes under the inode's lock, so lines never interleave on a local file
  system (not promised over NFS). Rotation takes ``flock`` on the old file and renames it only if
  the name still points to it, so two writers over the cap rotate once;
- **never in the way**: a read-only or full home, a missing state dir that cannot be made, any
  ``OSError`` (or anything else) loses the line silently; :func:`record` never raises.

Cost per lookup: one ``json.dumps``, one ``open``/``fstat``/``write``/``close`` (tens of
microseconds); this module imports only the standard library, :mod:`privpkg.paths` and :mod:`privpkg.envvars`, and
compiles no regular expression on the way (the token test is plain string methods).
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

from privpkg import envvars, paths

LOG_NAME = "lookups.log"
#: A log file is rotated when a line would take it past this size.
MAX_BYTES = 64 * 1024
#: A line is at most this long (one write; every field is cut to MAX_FIELD characters first).
MAX_LINE = 2048
MAX_FIELD = 300

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted under the name must not block a lookup

# Reasons the keyring backend decides before or around the lookup; the lookup's own reasons are
# privpkg.connections.lookup.REASONS (match, host-wide, no-match, bare-host-not-opted-in,
# bare-host-ambiguous).
NO_CONNECTIONS = "no-connections"  # no store file and no environment source
STORE_UNREADABLE = "store-unreadable"  # the store or its key could not be read or decrypted
GENERIC = "generic"  # a generic secret (KEYRING_PROPERTY_STORE_ALL=1) answered
FAILED = "error"  # an unexpected exception (its type only)
BEARER_ONLY = "bearer-only"  # the connection that matched sends a Bearer token or API key (conda only), never Basic

_SERVED = ("match", "host-wide", GENERIC)

#: Usernames that name no one, recorded as they are: the placeholders feeds and tools document
#: for "the password is a token" (PyPI/Azure ``__token__``, GitLab ``oauth2`` and
#: ``gitlab-ci-token``, GitHub ``x-access-token``, Bitbucket ``x-token-auth``, AWS CodeArtifact
#: ``aws``, Google Artifact Registry ``oauth2accesstoken``/``_json_key``/``_json_key_base64``,
#: artifacts-keyring ``VssSessionToken``, and the generic ``token``/``PAT``). A person's name
#: (``me``, an e-mail) is personal and may be a token in disguise, so it is not on the list.
PLACEHOLDER_USERNAMES = frozenset(
    {
        "__token__",
        "token",
        "TOKEN",
        "oauth2",
        "gitlab-ci-token",
        "x-access-token",
        "x-token-auth",
        "aws",
        "oauth2accesstoken",
        "_json_key",
        "_json_key_base64",
        "VssSessionToken",
        "PAT",
        "pat",
    }
)
#: How a username off that list is recorded.
GIVEN = "<given>"
#: A path segment (or a word in a warning) this long, of token characters only, with letters and
#: digits, is taken for a token (GitHub ``ghp_...`` 40, GitLab ``glpat-...`` 26, Azure PATs 52,
#: Gemfury tokens 20).
TOKEN_MIN = 20
_TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_DIGITS = "0123456789"
_TOKEN_WORD = rf"[A-Za-z0-9_-]{{{TOKEN_MIN},}}"  # a pattern string; compiled only by mask_words
#: Warnings kept per record (each cut to MAX_FIELD), so a line stays within MAX_LINE.
MAX_ERRORS = 3


def log_path() -> Path:
    return paths.state_dir() / LOG_NAME


def looks_like_token(word: str) -> bool:
    """Whether ``word`` may be a token: :data:`TOKEN_MIN` or more characters, all of
    ``[A-Za-z0-9_-]``, with at least one letter and one digit. Plain string methods: this runs
    on every path segment of every lookup."""
    # The cheap tests first: most segments are short or hold a "." or "%".
    return (
        len(word) >= TOKEN_MIN
        and word.isascii()
        and not word.strip(_TOKEN_CHARS)
        and any(c in _DIGITS for c in word)
        and any(c.isalpha() for c in word)
    )


def mask_path_tokens(url: str) -> str:
    """``url`` (already redacted) with every path segment that :func:`looks_like_token` as ``***``."""
    head, sep, rest = url.partition("://")
    if not sep or "/" not in rest:
        return url
    netloc, path = rest.split("/", 1)
    segments = path.split("/")
    if not any(looks_like_token(seg) for seg in segments):
        return url
    return f"{head}://{netloc}/" + "/".join("***" if looks_like_token(seg) else seg for seg in segments)


def redact_service(service: str) -> str:
    """The service as it may be written down: ``user:password@``, the query and token-like path
    segments masked (URLs and bare ``user@host`` alike), cut to :data:`MAX_FIELD` characters."""
    if "://" in service:
        from privpkg.urls import redact

        shown = mask_path_tokens(redact(service))
    else:
        shown = "***@" + service.rsplit("@", 1)[1] if "@" in service else service
    return _cut(shown)


def safe_username(username: str | None, conn: Any = None) -> str | None:
    """The username as it may be written down (see the module docstring): None when none was
    given, the name for a placeholder or the answering connection's own username, else :data:`GIVEN`."""
    if not username:
        return None
    if username in PLACEHOLDER_USERNAMES or (conn is not None and username == conn.username):
        return _cut(username)
    return GIVEN


def mask_words(text: str) -> str:
    """``text`` with every token-like word (:func:`looks_like_token`, between quotes, spaces,
    slashes and the like) as ``***``. Only for warnings and a detail, which are rare: the pattern
    is compiled (and cached by :mod:`re`) at the first one, never on a plain lookup."""
    import re

    return re.sub(_TOKEN_WORD, lambda m: "***" if looks_like_token(m[0]) else m[0], text)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_FIELD else text[: MAX_FIELD - 3] + "..."


def _name_of(argv: list[str]) -> str:
    """A program's name from its argv, never its arguments (they may hold a URL with a PAT):
    ``keyring``, ``pip``; ``python [-opts] -m X`` gives X, ``python script.py`` the script's name."""
    if not argv or not argv[0]:
        return "?"
    name = os.path.basename(argv[0])
    if name.startswith("python") or name == "__main__.py":
        if name == "__main__.py":  # our own sys.argv under python -m X
            return os.path.basename(os.path.dirname(argv[0])) or name
        rest = iter(argv[1:])
        for arg in rest:
            if arg == "-m":
                return next(rest, name).split(".")[0]
            if arg == "-c":
                return name
            if not arg.startswith("-"):
                return os.path.basename(arg)
    return name


def _program() -> tuple[str, str | None]:
    """This program's name and its parent's (from Linux ``/proc``: one small read), so a line
    says "keyring, run by pip"."""
    name = _name_of(sys.argv if sys.argv and sys.argv[0] else [sys.executable])
    parent = None
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as fh:
            argv = fh.read(4096).decode("utf-8", "replace").split("\0")
        parent = _cut(_name_of(argv)) or None
    except OSError:
        pass
    return _cut(name), parent


#: Who asked for a lookup answered in another process: (program name, parent's name, pid).
Asker = tuple[str, "str | None", int]


def program_of(pid: int, name: str | None = None) -> Asker:
    """Process ``pid``'s name (``name`` when given), its parent's (from Linux ``/proc``; names
    only, as :func:`_program` gives them) and ``pid``."""
    def cmdline(p: int) -> str | None:
        try:
            with open(f"/proc/{p}/cmdline", "rb") as fh:
                return _cut(_name_of(fh.read(4096).decode("utf-8", "replace").split("\0"))) or None
        except OSError:
            return None

    parent = None
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            # "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so split after the last ")".
            ppid = int(fh.read(4096).rsplit(b")", 1)[1].split()[1])
        parent = cmdline(ppid)
    except (OSError, ValueError, IndexError):
        pass
    return _cut(name) if name else (cmdline(pid) or "?"), parent, pid


def entry(
    service: str,
    username: str | None,
    *,
    api: str,
    reason: str,
    conn: Any = None,
    detail: str | None = None,
    errors: list[str] | tuple[str, ...] = (),
    now: float | None = None,
    asker: Asker | None = None,
) -> dict[str, Any]:
    """The record of one lookup (see the module docstring); ``conn`` is the Connection that
    answered, if any: only its name, source, target and expiry are kept; ``errors`` are the
    lookup's warnings (``CredentialLookup.errors``); ``asker``: the process that asked when it
    is not this one (conda's pip step broker answers for the launcher, :func:`program_of`), then
    recorded with ``"via": "broker"``."""
    prog, parent = (asker[0], asker[1]) if asker else _program()
    rec: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "pid": asker[2] if asker else os.getpid(),
        "program": prog,
        "parent": parent,
        "api": api,
        "service": redact_service(service),
        "username": safe_username(username, conn),
        "served": conn is not None or reason == GENERIC,
        "reason": reason,
    }
    if asker:
        rec["via"] = "broker"
    # This process's tag (a broker answers for another process, whose tag it cannot know); hex
    # only, as privpkg sets it: never a value someone else put there.
    tag = "" if asker else os.environ.get(envvars.LOOKUP_TAG, "")
    if 0 < len(tag) <= 32 and not tag.strip("0123456789abcdef"):
        rec["tag"] = tag
    if conn is not None:
        target = mask_path_tokens(conn.target)
        name = conn.name
        if target != conn.target:
            # A target with a token in its path (Gemfury's https://host/TOKEN/): a name made by
            # `keyring set URL USER` is that URL's host/path, token included.
            name = "/".join("***" if looks_like_token(seg) else seg for seg in name.split("/"))
        rec["connection"] = _cut(name)
        rec["source"] = _cut(conn.source)
        rec["target"] = _cut(target)
        if conn.expired:
            rec["expired"] = conn.expires
    if detail:
        rec["detail"] = _cut(mask_words(detail))
    if errors:
        kept = [_cut(mask_words(e)) for e in errors[:MAX_ERRORS]]
        if len(errors) > MAX_ERRORS:
            kept.append(f"and {len(errors) - MAX_ERRORS} more (privpkg doctor lists them)")
        rec["errors"] = kept
    return rec


class paused:  # lower case: used as a function, ``with lookuplog.paused():``
    """Record nothing in this process while the block runs: ``privpkg doctor --url`` asks the
    backends itself, and its own question is not a lookup pip or uv made, so it must not show up
    in ``doctor --last``. A class, not contextlib (not imported on a lookup's path)."""

    active = False
    _before = False

    def __enter__(self) -> None:
        self._before, paused.active = paused.active, True

    def __exit__(self, *exc: object) -> None:
        paused.active = self._before


def record(service: str, username: str | None, **kw: Any) -> None:
    """Append the :func:`entry` of one lookup to the log. Never raises: a read-only or full home,
    or anything else, only loses the line (the lookup it records must not fail for it)."""
    if paused.active:
        return
    try:
        rec = entry(service, username, **kw)
        data = (json.dumps(rec, separators=(",", ":")) + "\n").encode("ascii")
        if len(data) > MAX_LINE and rec.get("errors"):
            # Long warnings must not cost the record: keep their count instead.
            n = len(kw["errors"])
            rec["errors"] = [f"{n} {'warning' if n == 1 else 'warnings'} too long to record; privpkg doctor lists them"]
            data = (json.dumps(rec, separators=(",", ":")) + "\n").encode("ascii")
        if len(data) <= MAX_LINE:
            append(log_path(), data)
    except Exception:  # noqa: BLE001, S110 - the log must never make a lookup fail
        pass


def _open_append(path: Path) -> int:
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK
    try:
        return os.open(path, flags, 0o600)
    except FileNotFoundError:
        # The state dir does not exist yet: make it private (0700), as the store's folder is.
        os.makedirs(path.parent, mode=0o700, exist_ok=True)
        return os.open(path, flags, 0o600)


def append(path: Path, data: bytes, max_bytes: int = MAX_BYTES) -> None:
    """Append ``data`` (one line) to ``path`` with one ``O_APPEND`` write, rotating to
    ``path.1`` first when the file would pass ``max_bytes``. Raises OSError; :func:`record`
    swallows it."""
    fd = _open_append(path)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or (hasattr(os, "geteuid") and st.st_uid != os.geteuid()):
            return  # not a file we made: write nothing through it
        if st.st_mode & 0o077:
            os.fchmod(fd, 0o600)
        if st.st_size and st.st_size + len(data) > max_bytes:
            fd = _rotate(path, fd, st)
        os.write(fd, data)
    finally:
        os.close(fd)


def _rotate(path: Path, fd: int, st: os.stat_result) -> int:
    """Move the full log aside and return an fd of the fresh one (``fd`` is closed, or returned
    when another writer is rotating right now: one line more in the old file is harmless)."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; rotate unlocked (a rare lost line at worst)
        fcntl = None  # type: ignore[assignment]
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return fd
    try:
        now = os.stat(path, follow_symlinks=False)
        if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):
            pass  # another writer rotated since we opened: just reopen the new file
        else:
            try:
                os.replace(path, f"{path}.1")
            except OSError:
                # A read-only folder: the name cannot move, so empty the file to keep the cap.
                os.ftruncate(fd, 0)
                return fd
    except OSError:
        return fd
    os.close(fd)  # releases the flock
    return _open_append(path)


def _read(path: Path) -> list[str]:
    try:
        fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK)
    except OSError:
        return []
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return []
        data = fh.read(4 * MAX_BYTES)
    return data.decode("utf-8", "replace").splitlines()


def read_last(n: int, path: Path | None = None) -> list[dict[str, Any]]:
    """The last ``n`` records, oldest first (the previous file, then the current one). A line
    that is not a whole record (a writer killed mid-line) is skipped."""
    path = path or log_path()
    out: list[dict[str, Any]] = []
    for line in [*_read(Path(f"{path}.1")), *_read(path)]:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("reason"), str) and isinstance(rec.get("service"), str):
            out.append(rec)
    return out[-n:] if n > 0 else []


def _is_url(service: str) -> bool:
    return "://" in service


def explain(rec: dict[str, Any]) -> tuple[str, str | None]:
    """What a record means for a person: (the outcome, a hint of what to do or None)."""
    service, reason = str(rec.get("service")), rec.get("reason")
    name = rec.get("connection")
    if rec.get("served"):
        if reason == GENERIC:
            return "served a generic secret (KEYRING_PROPERTY_STORE_ALL)", None
        how = "opted in to bare-host lookups (--host-wide)" if reason == "host-wide" else f"target {rec.get('target')}"
        source = str(rec.get("source"))
        outcome = f"served by connection {name!r} ({source}, {how})"
        if rec.get("expired"):
            return (
                f"{outcome}, which EXPIRED on {rec['expired']} (still served)",
                f"renew the PAT, then update its secret and \"expires\" in ${source[4:]}" if source.startswith("env:")
                else f"renew the PAT, then: privpkg connection set {name} --update --expires DATE",
            )
        # The URL asked for, when it is whole (a masked one would be no URL to test).
        url = service.replace("://***@", "://").removesuffix("?***")
        url = url if _is_url(url) and "***" not in url else "URL"
        return outcome, f"if the feed still answered 401, the PAT is wrong or revoked: privpkg connection test {name} --url {url}"
    if reason == "no-match":
        if _is_url(service):
            login = service.replace("://***@", "://").removesuffix("?***")
            fix = f"privpkg auth login {login}"
            if "/***" in login:
                # The masked segment may be a token: typed into a command line it would sit in
                # ps and the shell's history. A target above it covers the URL without it.
                fix = (f"privpkg connection set NAME --target {login.split('/***', 1)[0]}/ (a target covers every URL below it; "
                       "never put the masked segment, maybe a token, on a command line)")
            if rec.get("errors"):
                return "nothing: no connection matches it", (
                    f"privpkg ignored what the warnings name (a connection may be there): fix it, or add one with: {fix}"
                )
            return "nothing: no connection matches it", f"add one with: {fix}"
        return "nothing: no connection has a target on this host and port", "privpkg answers index URLs; check the URL pip was given"
    if reason == "bare-host-not-opted-in":
        return (
            "nothing: a bare host carries no scheme or path, and the connections on it did not opt in",
            (
                "index URLs under a target need nothing; for direct URLs or --find-links on that host: "
                f"privpkg doctor --url {service} names the connection to set --host-wide"
            ),
        )
    if reason == "bare-host-ambiguous":
        return (
            "nothing: several --host-wide connections on this host hold different secrets",
            f"keep --host-wide on one of them (privpkg doctor --url {service})",
        )
    if reason == BEARER_ONLY:
        return (
            f"nothing: connection {rec.get('detail')!r} matches, but it holds a Bearer token or API key, which only conda's requests get",
            "for pip, store the feed's PAT in a PythonFeed connection (auth type PAT)",
        )
    if reason == NO_CONNECTIONS:
        return "nothing: privpkg holds no connection (no store, no $PRIVPKG_CONNECTIONS)", "add one with: privpkg auth login URL"
    if reason == STORE_UNREADABLE:
        return f"nothing: the store could not be read: {rec.get('detail')}", "privpkg doctor checks the store and its key"
    if reason == FAILED:
        return f"nothing: the lookup failed ({rec.get('detail')})", f"privpkg doctor --url {service}"
    return f"nothing ({reason})", None


def format_record(rec: dict[str, Any]) -> list[str]:
    """Two or three lines for ``doctor --last``: when, who and what was asked; the outcome; a hint."""
    when = str(rec.get("time", "?")).replace("T", " ")
    who = str(rec.get("program", "?"))
    if rec.get("parent"):
        who += f" (from {rec['parent']}, pid {rec.get('pid')})"
    else:
        who += f" (pid {rec.get('pid')})"
    asked = str(rec.get("service"))
    if rec.get("username") == GIVEN:
        asked += " with a username (not recorded: it may be a token)"
    elif rec.get("username"):
        asked += f" as {rec['username']!r}"
    outcome, hint = explain(rec)
    lines = [f"{when}  {who}  {asked}", f"      {outcome}"]
    errors = rec.get("errors")
    if isinstance(errors, list):
        lines += [f"      warning: {e}" for e in errors]
    if hint:
        lines.append(f"      hint: {hint}")
    return lines
