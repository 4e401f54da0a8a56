"""``privpkg resolve -r REQS --wheelhouse DIR -o OUT``: private wheels as local files, for uv and
any other installer that cannot fetch ``privpkg://``.

Every signable requirement (``name @ privpkg://...``, or a plain blob URL of a registered Azure
workspace; see :mod:`privpkg.resolve`) in REQS and the files it includes is downloaded into DIR
through a short-lived signed URL that never leaves this process, and checked against the sha256
the workspace recorded when the wheel was published. OUT is REQS with those lines pinned to
``name @ file:///abs/DIR/F.whl#sha256=HEX``: pip and uv check that fragment, and unlike one
``--hash`` line it does not switch the rest of the file into hash-checking mode, so an unpinned
feed requirement beside it still installs. Every other line is copied as written (comments,
``--index-url``, markers, ``${VAR}``).

Nested files keep their meaning (a ``-r`` inside a ``-c`` file holds requirements, as in pip): a
nested file that needs a pin is written beside OUT as ``OUT-N-NAME`` and named by its absolute
path; one that needs none is named by its absolute path, as are relative ``--find-links``
folders, since OUT may live elsewhere than REQS.

A file already in DIR with the recorded sha256 is kept, not downloaded again; a file whose
download does not match is never left in DIR (it is written to a temp file and checked before
it is renamed into place).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from privpkg import refs, urls
from privpkg.errors import NotFoundError, PrivpkgError, UsageError, shown
from privpkg.fileio import FileWriteError, commit_temp, shared_mode, temp_file, write_all, write_atomic
from privpkg.resolve import (
    DEFAULT_TTL,
    OPTION,
    Pin,
    check_ttl,
    collect,
    locate,
    logical_blocks,
    not_found_message,
    option_target,
    read_requirements,
    requirement,
)

if TYPE_CHECKING:
    from privpkg.storage.base import Storage

CHUNK = 1024 * 1024
#: Downloads get this long per read; a storage that stops answering is one error line.
TIMEOUT = 60
_FIND_LINKS = re.compile(r"^(-f|--find-links)(?:\s*=?\s*)(\S+)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Fetched(NamedTuple):
    path: Path
    sha256: str
    downloaded: bool


class Summary(NamedTuple):
    pinned: int  # requirement lines rewritten
    downloaded: int  # files fetched now (the others were already in DIR with the right sha256)
    files: tuple[Path, ...]  # OUT and the nested files written beside it


class HashMismatch(PrivpkgError):
    """A download does not match the sha256 it must have (the one the workspace recorded at
    publish time; for an environment's build, the lock's)."""


def file_sha256(path: Path) -> str | None:
    """The sha256 of the file at ``path``, or None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def _stream(signed: str, label: str, fd: int, digest: hashlib._Hash, workspace: str, key: str, storage: Storage) -> None:
    """Copy the object at the signed URL ``signed`` into ``fd``, hashing it, trusting the CA
    bundle ``storage``'s SDK client trusts (for S3 also ``AWS_CA_BUNDLE``). Errors name ``label``
    (the stable URL), never the signed one."""
    parts = urllib.parse.urlsplit(signed)
    if parts.scheme == "file":
        # A local workspace: its "signed" URL is the file itself, so this is a copy.
        source = urllib.request.url2pathname(parts.path)
        try:
            with open(source, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    digest.update(chunk)
                    write_all(fd, chunk)
        except FileNotFoundError:
            raise NotFoundError(not_found_message(workspace, key)) from None
        return
    from privpkg import http

    def sink(chunk: bytes) -> None:
        digest.update(chunk)
        write_all(fd, chunk)

    http.stream(urllib.request.Request(signed), sink, label=label, host=parts.hostname, timeout=TIMEOUT, ca=storage.ca_bundle(),
                on_http_error=lambda code: NotFoundError(not_found_message(workspace, key)) if code == 404 else None)


def fetch(url: str, wheelhouse: Path, ttl: int = DEFAULT_TTL, placed: dict[str, tuple[str, str]] | None = None) -> Fetched:
    """Put the wheel behind ``url`` (without fragment) in ``wheelhouse`` and check it against the
    sha256 its workspace recorded; one-line PrivpkgError otherwise, and nothing left in DIR.
    ``placed`` (file name -> (URL, sha256)) holds what this run already put there: another wheel
    under a taken name is an error before anything is downloaded over it."""
    from privpkg.access import open_workspace_storage
    from privpkg.publishing import is_removed

    ws, key = locate(url)
    filename = refs.name_of(key)
    label = refs.url_for(ws.name, refs.WHEELS, filename) if refs.is_ref(url) else urls.redact(url)  # a pasted SAS stays hidden
    storage = open_workspace_storage(ws)
    info = storage.head(key)
    if info is None:
        raise NotFoundError(not_found_message(ws.name, key, removed=is_removed(storage, key)))
    recorded = (info.sha256 or "").lower()
    if not _SHA256.match(recorded):
        raise PrivpkgError(f"workspace {ws.name!r} recorded no sha256 for {filename}, so it cannot be checked; "
                           f"publish it again with privpkg wheel add")
    prior = (placed or {}).get(filename)
    if prior is not None and prior[1] != recorded:
        raise UsageError(f"{filename} is also named by {shown(prior[0], 120)} with other contents; a wheelhouse holds one file per name")
    dest = wheelhouse / filename
    if file_sha256(dest) == recorded:
        return Fetched(dest, recorded, False)
    signed = storage.signed_url(key, ttl)
    digest = hashlib.sha256()
    with temp_file(dest, shared_mode()) as (fd, tmp):
        _stream(signed, label, fd, digest, ws.name, key, storage)
        got = digest.hexdigest()
        if got != recorded:
            raise HashMismatch(f"{filename} from workspace {ws.name!r} does not match the sha256 recorded when it was published "
                               f"(recorded {recorded[:16]}..., downloaded {got[:16]}...); not kept in {wheelhouse}")
        commit_temp(fd, tmp, dest)
    return Fetched(dest, recorded, True)


def _prepare(wheelhouse: Path) -> Path:
    try:
        wheelhouse.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FileWriteError(f"cannot use {wheelhouse} as the wheelhouse: it exists and is not a directory") from None
    except OSError as exc:
        raise FileWriteError(f"cannot use {wheelhouse} as the wheelhouse: {exc.strerror or exc}", exc.errno) from None
    if not wheelhouse.is_dir():
        raise FileWriteError(f"cannot use {wheelhouse} as the wheelhouse: it exists and is not a directory")
    if not os.access(wheelhouse, os.W_OK | os.X_OK):
        raise FileWriteError(f"cannot use {wheelhouse} as the wheelhouse: Permission denied")
    return wheelhouse.resolve()


def _pinned_line(pin: Pin, fetched: Fetched) -> str:
    line = f"{pin.name} @ {fetched.path.as_uri()}#sha256={fetched.sha256}"
    return line + (f" ; {pin.marker}" if pin.marker else "") + "".join(" " + o for o in pin.options)


class _Writer:
    """Renders REQS and the nested files that need a pin, OUT first."""

    def __init__(self, out: Path, pins: dict[str, Fetched]) -> None:
        self.out = out
        self.pins = pins
        self.needs: dict[Path, bool] = {}
        self.written: dict[Path, Path] = {}  # source file -> the file rendered for it
        self.texts: dict[Path, str] = {}

    def _children(self, named: Path) -> list[Path]:
        return [named.parent / option_target(m) for b in logical_blocks(read_requirements(named, "")) if (m := OPTION.match(b.text))]

    def needs_pin(self, named: Path) -> bool:
        """Whether ``named`` or a file it includes holds a signable requirement."""
        real = named.resolve()
        if real not in self.needs:
            self.needs[real] = False  # collect() refused cycles; this only stops a diamond twice
            own = any(requirement(b.text, "") for b in logical_blocks(read_requirements(named, "")) if b.text)
            self.needs[real] = own or any(self.needs_pin(c) for c in self._children(named))
        return self.needs[real]

    def render(self, named: Path, dest: Path) -> Path:
        real = named.resolve()
        if real in self.written:
            return self.written[real]
        self.written[real] = dest
        lines: list[str] = []
        for block in logical_blocks(read_requirements(named, "")):
            here = f"{named}, line {block.number}"
            opt = OPTION.match(block.text)
            links = _FIND_LINKS.match(block.text)
            pin = requirement(block.text, here) if block.text and not opt and not links else None
            if opt:
                child = named.parent / option_target(opt)
                target = self.render(child, self._nested_name(child)) if self.needs_pin(child) else child.resolve()
                lines.append(f"{opt.group(1)} {shlex.quote(str(target))}")
            elif links and not os.path.isabs(links.group(2)) and (named.parent / links.group(2)).exists():
                # pip reads a relative --find-links against the requirements file when it exists there.
                lines.append(f"{links.group(1)} {shlex.quote(str((named.parent / links.group(2)).resolve()))}")
            elif pin is not None:
                lines.append(_pinned_line(pin, self.pins[pin.url.partition("#")[0]]))
            else:
                lines.extend(block.raw)
        self.texts[dest] = "".join(line + "\n" for line in lines)
        return dest

    def _nested_name(self, child: Path) -> Path:
        return self.out.with_name(f"{self.out.name}-{len(self.written)}-{child.name}")


def build(requirements: Path, wheelhouse: Path, out: Path, ttl: int = DEFAULT_TTL) -> Summary:
    """Download every signable wheel of ``requirements`` into ``wheelhouse`` and write ``out``
    (see the module docstring). Nothing is written to ``out`` unless every wheel was fetched."""
    check_ttl(ttl)
    if out.absolute() == requirements.absolute() or (out.exists() and requirements.exists() and out.samefile(requirements)):
        raise UsageError(f"-o {out} is the requirements file itself; write the pinned copy elsewhere")
    pins = collect(requirements)  # every line checked before anything is downloaded
    for pin in pins:
        base, _, fragment = pin.url.partition("#")
        if fragment and not fragment.startswith("sha256="):
            raise UsageError(f"{pin.where}: only a #sha256= fragment can be checked against the workspace, got #{shown(fragment, 40)}")
    home = _prepare(wheelhouse)
    fetched: dict[str, Fetched] = {}
    owner: dict[str, tuple[str, str]] = {}  # file name -> (url, sha256): one file per name in DIR
    downloaded = 0
    for pin in pins:
        base, _, fragment = pin.url.partition("#")
        if base not in fetched:
            try:
                got = fetch(base, home, ttl, owner)
            except PrivpkgError as exc:
                raise type(exc)(f"{pin.where}: {exc}") from None
            owner[got.path.name] = (urls.redact(base), got.sha256)
            fetched[base] = got
            downloaded += got.downloaded
        want = fragment.partition("=")[2].lower()
        if want and want != fetched[base].sha256:
            raise HashMismatch(f"{pin.where}: the line pins sha256 {shown(want, 16)}..., but the workspace recorded "
                               f"{fetched[base].sha256[:16]}... for {fetched[base].path.name}")
    writer = _Writer(out.absolute(), fetched)
    writer.render(requirements, out.absolute())
    header = f"# written by privpkg resolve --wheelhouse {home}: private wheels pinned to local files by sha256\n"
    for dest, text in writer.texts.items():
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(dest, (header + text).encode(), shared_mode())
    return Summary(len(pins), downloaded, tuple(writer.texts))
