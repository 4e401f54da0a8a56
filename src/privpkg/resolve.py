"""Turn stable wheel URLs into short-lived signed ones.

Two kinds of URL are signed:

- ``privpkg://WORKSPACE/wheels/FILE.whl``, the URL ``privpkg wheel add`` prints;
- a plain ``https://`` URL of a blob inside a registered Azure workspace's container (what azureml
  users pasted as "the full URL to the package in blob storage")::

    resolve_url("privpkg://default/wheels/x-1.0-py3-none-any.whl")
    # -> 'file:///home/me/.local/share/privpkg/workspaces/default/wheels/x-1.0-py3-none-any.whl'

:func:`resolve_requirements` writes a pip constraints file with ``name @ <signed URL>`` for every
such requirement, for uv and other tools that cannot use the pip shim.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote

from privpkg import refs, urls
from privpkg.errors import NotFoundError, PrivpkgError, UsageError, shown

if TYPE_CHECKING:
    from privpkg.storage.base import OwnSAS
from privpkg.workspace import Workspace, all_workspaces, get_workspace

DEFAULT_TTL = 600
MAX_TTL = 7 * 24 * 3600
SCHEME = refs.SCHEME


def check_ttl(ttl: int) -> int:
    if not isinstance(ttl, int) or ttl < 1 or ttl > MAX_TTL:
        raise UsageError(f"--ttl must be between 1 and {MAX_TTL} seconds (7 days), got {ttl}")
    return ttl


def parse_privpkg_url(url: str) -> tuple[str, str]:
    """(workspace, file name) from ``privpkg://WORKSPACE/wheels/FILE.whl`` (see
    :func:`privpkg.refs.parse`); a one-line UsageError for anything else, a file name that is
    not a wheel's included."""
    from privpkg.wheels import check_filename

    ref = refs.parse(url, refs.WHEELS, check_name=lambda name: check_filename(name, strict=False))
    return ref.workspace, ref.name


#: Hosts of Azure Blob Storage endpoints (public cloud, China, US government, DNS-zone
#: endpoints). Only these, and loopback emulators such as Azurite, are ever signed for or
#: intercepted by the pip shim, whatever a workspace definition says (defense in depth: the
#: workspace validator refuses other hosts too).
_AZURE_BLOB_HOST = re.compile(
    r"^[a-z0-9-]+\.(?:z[0-9]+\.)?blob\.(?:core\.windows\.net|core\.chinacloudapi\.cn|core\.usgovcloudapi\.net|storage\.azure\.net)$"
)


def _azure_container(ws: Workspace) -> urls.NormURL | None:
    """The normalized container URL of an Azure workspace, or None when its URL is not an Azure
    blob container (https on an Azure blob host) or a loopback emulator's (http or https)."""
    if ws.storage != "azure":
        return None
    try:
        norm = urls.normalize(ws.location)
    except (UsageError, AttributeError, TypeError):
        return None
    if urls.is_loopback(norm.host):
        ok = norm.scheme in ("http", "https") and len(norm.segments) == 2
    else:
        ok = norm.scheme == "https" and bool(_AZURE_BLOB_HOST.match(norm.host)) and len(norm.segments) == 1
    return norm if ok and all(norm.segments) else None


def _azure_match(url: str) -> tuple[Workspace, str] | None:
    """The Azure workspace whose container holds the blob at ``url``, and the blob name."""
    try:
        norm = urls.normalize(url)
    except UsageError:
        return None
    for ws in all_workspaces(warn=False).values():
        container = _azure_container(ws)
        if container is not None and urls.covers(container, norm) and norm.path != container.path:
            return ws, unquote(norm.path[len(container.path) :].rstrip("/"))
    return None


def azure_prefixes() -> list[str]:
    """Container URL prefixes the pip shim mounts itself on (plain blob URLs). Never raises: a
    broken workspace file must not break pip, so it means no prefixes. Only Azure blob hosts and
    loopback emulators qualify; the shim decides on the first request to a prefix whether an
    AzureBlob connection covers it (:func:`azure_covered`)."""
    try:
        found = all_workspaces(warn=False).values()
    except Exception:  # noqa: BLE001 - any broken definition: intercept nothing
        return []
    out = []
    for ws in found:
        container = _azure_container(ws)
        if container is not None:
            out.append(container.url)  # normalized, ends with "/"
    return out


def azure_covered(prefix: str) -> bool:
    """Whether an AzureBlob connection (from any source, the environment included) covers the
    container at ``prefix``. Reads (and so decrypts) the store: the pip shim calls it only on the
    first request to such a container. PrivpkgError if the store cannot be read."""
    from privpkg.connections import CredentialLookup

    return CredentialLookup(categories={"AzureBlob"}).find(prefix) is not None


def locate(url: str) -> tuple[Workspace, str]:
    """The workspace and storage key behind a ``privpkg://`` URL or a plain blob URL of a
    registered Azure workspace; one-line PrivpkgError for anything else."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == SCHEME:
        name, filename = parse_privpkg_url(url)
        return get_workspace(name), refs.key_for(refs.WHEELS, filename)
    if scheme in ("https", "http"):
        hit = _azure_match(url)
        if hit is None:
            raise UsageError(f"{urls.redact(url)} is not in any registered Azure workspace (see: privpkg workspace list)")
        return hit
    raise UsageError(f"cannot sign {scheme or 'this'} URLs; expected privpkg://WORKSPACE/wheels/FILE.whl")


def resolve_url(url: str, ttl: int = DEFAULT_TTL, *, check: bool = True, timeout: float | None = None, for_output: bool = False) -> str:
    """A signed URL for ``url``; one-line PrivpkgError naming the fix for anything missing.

    ``for_output``: the URL leaves privpkg (printed, or written for a build elsewhere), where logs
    and files keep it. A connection's own SAS (:meth:`~privpkg.storage.base.Storage.own_sas`)
    is then refused unless it only reads, and a read-only one is warned about: it covers the
    whole container until its own expiry, not one wheel for ``ttl`` seconds. Inside pip (the
    shim) the URL stays out of sight, so any SAS signs there.

    With ``check`` (the ``privpkg resolve`` command) the object is looked up first, so a missing
    wheel is a NotFoundError before anything is downloaded. The pip shim passes ``check=False``:
    signing is offline (a SAS or a SigV4 presigned URL is computed locally), so no network I/O
    happens outside pip's own download, which pip's ``--timeout`` and ``--retries`` bound; the
    shim turns a 404 from the storage into the same "no wheel" line. Ambient credentials are the
    exception: a role or SSO session, or a user delegation key, may be fetched; the shim passes
    pip's timeout as ``timeout``, which bounds that."""
    return _signed(url, ttl, check, timeout, for_output)[0]


def _signed(url: str, ttl: int, check: bool, timeout: float | None, for_output: bool) -> tuple[str, OwnSAS | None]:
    """:func:`resolve_url`'s URL, and the connection's own SAS it carries (None: one derived for
    this key and ``ttl``)."""
    from privpkg.access import open_workspace_storage

    check_ttl(ttl)
    ws, key = locate(url)
    storage = open_workspace_storage(ws, timeout)
    # A local workspace's check is a stat, offline like its signing: always done.
    if (check or ws.storage == "local") and storage.head(key) is None:
        from privpkg.publishing import is_removed

        # Only on this error path: one more look-up says whether the wheel was removed.
        raise NotFoundError(not_found_message(ws.name, key, removed=is_removed(storage, key)))
    own = storage.own_sas()
    if for_output:
        _check_shown(own, url)
    return storage.signed_url(key, ttl), own


#: SAS permissions that only read: read and list (``sp=rl``).
_READ_ONLY = frozenset("rl")
#: The connections whose own SAS this process warned about: once each (``resolve -r`` signs
#: every pin with the same one).
_WARNED: set[OwnSAS] = set()


def _check_shown(own: OwnSAS | None, url: str) -> None:
    """Refuse to put a connection's own SAS where others may read it when it can do more than
    read; warn that a read-only one is wider than a signed URL (see :func:`resolve_url`)."""
    if own is None:
        return
    if own.account or own.permissions is None or not set(own.permissions) <= _READ_ONLY:
        if own.account:  # read-only or not, it reads every container of the account (and other services with ss=)
            held, allows = "an account SAS", f"covers every container of the account (sp={own.permissions})"
        else:
            held = "a container SAS"
            allows = (f"allows more than reading (sp={own.permissions})" if own.permissions else "has its permissions in a stored access policy"
                      ) + " and covers the whole container"
        raise PrivpkgError(
            f"connection {own.connection!r} holds {held}, which signed URLs would carry as it is: it {allows}, so privpkg prints and "
            f"writes no URL with it; install with pip install {shown(url)} (the URL stays inside pip), or privpkg resolve -r FILE "
            "--wheelhouse DIR, or give readers a read-only container SAS (sp=rl)")
    if own in _WARNED:
        return
    _WARNED.add(own)
    from privpkg import log

    until = f"until {own.expiry}" if own.expiry else "until it expires"
    log.warning(f"this URL carries connection {own.connection!r}'s own SAS: it reads every blob of the container {until}, "
                "whatever --ttl says; keep it out of logs")


def not_found_message(workspace: str, key: str, removed: bool = False) -> str:
    if removed:
        return (f"wheel {refs.name_of(key)} was removed from workspace {workspace!r} (privpkg wheel remove); "
                f"pin a published version (see: privpkg wheel list --workspace {workspace})")
    return f"no wheel {refs.name_of(key)} in workspace {workspace!r} (see: privpkg wheel list --workspace {workspace})"


def local_path(url: str) -> str | None:
    """The file behind ``privpkg://W/wheels/F`` when W is a local workspace and F exists."""
    from privpkg.access import open_workspace_storage
    from privpkg.storage.local import LocalStorage

    name, filename = parse_privpkg_url(url)
    ws = get_workspace(name)
    if ws.storage != "local":
        return None
    storage = open_workspace_storage(ws)
    assert isinstance(storage, LocalStorage)
    path = storage.file_path(refs.key_for(refs.WHEELS, filename))
    return str(path) if path.is_file() else None


def is_signable(url: str) -> bool:
    return refs.is_ref(url) or _azure_match(url) is not None


_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")
_COMMENT = re.compile(r"(^|\s+)#.*$")
#: A nested file: ``-r FILE``; FILE one shell word, quoted as pip's own shlex reading allows
#: (``-r 'sub dir/x.txt'``, what :func:`merged` and the wheelhouse write): see :func:`option_target`.
OPTION = re.compile(r"""^(-r|--requirement|-c|--constraint)(?:\s*=?\s*)((?:'[^']*'|"[^"\\]*"|[^\s'"])+)$""")
_NESTED = re.compile(r"^(-r|--requirement|-c|--constraint)(?=[\s=]|$)")


def option_target(match: re.Match[str]) -> str:
    """The file an :data:`OPTION` line names, its shell quoting undone (unquoted, as written:
    a Windows path keeps its backslashes)."""
    value = match.group(2)
    if "'" not in value and '"' not in value:
        return value
    import shlex

    return shlex.split(value)[0]
#: pip's per-requirement options (pip/_internal/req/req_file.py SUPPORTED_OPTIONS_REQ).
_REQ_OPTIONS = ("--hash", "--config-settings", "--global-option")
#: pip accepts only these algorithms (pip/_internal/utils/hashes.py STRONG_HASHES).
_HASH = re.compile(r"^(?:sha256:[0-9a-fA-F]{64}|sha384:[0-9a-fA-F]{96}|sha512:[0-9a-fA-F]{128})$")
_MENTIONS = re.compile(r"privpkg:", re.IGNORECASE)
#: pip has no nesting limit but dies of RecursionError somewhere past 200 levels; uv overflows
#: its stack. A chain this deep is a generated mistake, so it gets one line.
MAX_NESTING = 256
MAX_REQUIREMENTS_BYTES = 16 * 1024 * 1024


class Pin(NamedTuple):
    """One signable requirement: where it was found and what its constraint line keeps."""

    name: str
    url: str  # as written, fragment (e.g. #sha256=...) included
    marker: str
    options: tuple[str, ...]  # per-requirement options, as --name=value
    where: str  # "FILE, line N"


class Block(NamedTuple):
    """One logical line of a requirements file: the number of its first physical line, the
    physical lines it spans (as written, for copying it unchanged) and its text as pip reads it
    (continuations joined, comment removed, ``${VAR}`` expanded when set; "" for a blank or
    comment-only line)."""

    number: int
    raw: tuple[str, ...]
    text: str


def _expand(line: str) -> str:
    return _ENV_VAR.sub(lambda m: os.environ.get(m.group(1), m.group(0)), line)


def logical_blocks(text: str) -> list[Block]:
    """Every line of a requirements file grouped as pip groups them (req_file.join_lines)."""
    out: list[Block] = []
    parts: list[str] = []
    raws: list[str] = []
    first = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.endswith("\\") or _COMMENT.match(raw):
            # pip (req_file.join_lines): a comment line ends a continuation, and a line that
            # ends with a backslash inside a comment does not continue.
            line = "".join([*parts, (" " + raw) if _COMMENT.match(raw) else raw])
            start, lines = (first if parts else number), (*raws, raw)
            parts, raws = [], []
            out.append(Block(start, lines, _expand(_COMMENT.sub("", line).strip())))
        else:
            if not parts:
                first = number
            parts.append(raw.strip("\\"))
            raws.append(raw)
    if parts:
        out.append(Block(first, tuple(raws), _expand(_COMMENT.sub("", "".join(parts)).strip())))
    return out


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(number of the first physical line, text) of each requirement line, as pip reads them."""
    return [(b.number, b.text) for b in logical_blocks(text) if b.text]


def read_requirements(path: Path, where: str) -> str:
    """The text of a requirements file; one-line errors for an unreadable, huge or binary one."""
    prefix = f"{where}: " if where else ""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_REQUIREMENTS_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{prefix}cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_REQUIREMENTS_BYTES:
        raise UsageError(f"{prefix}{path} is larger than {MAX_REQUIREMENTS_BYTES >> 20} MiB: not a requirements file")
    # pip's auto_decode: a BOM names the encoding, else UTF-8 (its locale default here).
    for bom, encoding in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
                          (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            break
    else:
        encoding = "utf-8"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise UsageError(f"{prefix}{path} is not a text requirements file (not {encoding} at byte {exc.start})") from None
    if "\x00" in text:
        raise UsageError(f"{prefix}{path} is a binary file, not a requirements file")
    return text


def _break_args_options(line: str) -> tuple[str, str]:
    """pip's req_file.break_args_options: the requirement, then everything from the first
    token that starts with ``-``."""
    tokens = line.split(" ")
    for i, token in enumerate(tokens):
        if token.startswith("-"):
            return " ".join(tokens[:i]), " ".join(tokens[i:])
    return line, ""


def _options(text: str, where: str) -> tuple[str, ...]:
    """The per-requirement options of a line, validated as pip would, as ``--name=value``."""
    import shlex

    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"{where}: cannot read the options {shown(text, 60)!r}: {exc}") from None
    out: list[str] = []
    i = 0
    while i < len(tokens):
        name, eq, value = tokens[i].partition("=")
        if name not in _REQ_OPTIONS:
            raise UsageError(f"{where}: {shown(name, 40)} is not an option of a requirement line (pip takes {', '.join(_REQ_OPTIONS)})")
        if not eq:
            i += 1
            if i == len(tokens):
                raise UsageError(f"{where}: {name} needs a value")
            value = tokens[i]
        if name == "--hash" and not _HASH.match(value):
            raise UsageError(f"{where}: --hash takes sha256:, sha384: or sha512: and the hex digest, got {shown(value, 60)!r}")
        out.append(f"{name}={shlex.quote(value)}")
        i += 1
    return tuple(out)


def requirement(line: str, where: str) -> Pin | None:
    """The Pin of a requirement line that names a signable URL, None for any other line. A line
    that mentions privpkg: but cannot be signed is an error, never skipped (it would otherwise
    install from wherever else pip finds that name)."""
    from packaging.markers import InvalidMarker, Marker
    from packaging.requirements import InvalidRequirement, Requirement

    from privpkg.wheels import check_filename

    mentions = bool(_MENTIONS.search(line))
    if line.startswith("-"):
        if mentions:
            raise UsageError(f"{where}: privpkg:// URLs are signed only in requirement lines (`name @ privpkg://...`), not after {shown(line.split()[0], 30)}")
        return None
    args, opts = _break_args_options(line)
    try:
        if args.lower().startswith(SCHEME + ":"):
            # A bare URL, as pip allows: the project name comes from the wheel file name.
            url, _, marker_text = args.partition(";")
            url = url.strip()
            name = check_filename(parse_privpkg_url(url)[1])[0]
            marker = str(Marker(marker_text.strip())) if marker_text.strip() else ""
        else:
            try:
                req = Requirement(args)
            except InvalidRequirement as exc:
                if not mentions:
                    return None  # not privpkg's: pip judges it
                raise UsageError(f"not a valid requirement: {shown(str(exc).splitlines()[0], 120)}") from None
            if req.url and req.url.lower().startswith(SCHEME + ":"):
                parse_privpkg_url(req.url)
            elif mentions:
                raise UsageError("privpkg:// must be the URL of the requirement: `name @ privpkg://WORKSPACE/wheels/FILE.whl`")
            elif not (req.url and is_signable(req.url)):
                return None
            name, url, marker = req.name, req.url, str(req.marker) if req.marker else ""
    except InvalidMarker as exc:
        raise UsageError(f"{where}: invalid marker: {shown(str(exc).splitlines()[0], 120)}") from None
    except PrivpkgError as exc:
        raise type(exc)(f"{where}: {exc}") from None
    return Pin(name, url, marker, _options(opts, where), where)


class Line(NamedTuple):
    """One logical line of a requirements file as pip reads it, and where: ``FILE, line N``."""

    where: str
    text: str


def walk(path: Path, named_at: str = "", *, lenient: bool = False, seen: set[Path] | None = None) -> list[Line]:
    """Every logical line of a requirements file and of the files it includes, in pip's order
    (a nested ``-r``/``-c`` file, relative to the file that names it, read where it is named;
    those option lines themselves are not returned). A file included twice is read once (also
    across calls sharing ``seen``). An unreadable file is a UsageError naming the line that
    included it (``named_at`` for ``path``), as is nesting past :data:`MAX_NESTING`.

    A file that includes itself (directly or through others) is a UsageError, as in pip 25+, and
    so is a nested URL (privpkg reads local files only); ``lenient`` (doctor's scan) skips both
    instead: the scan reports what it can read."""
    lines: list[Line] = []
    seen = set() if seen is None else seen

    def visit(named: Path, chain: tuple[Path, ...], where: str) -> None:
        try:
            real = named.resolve()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
            raise UsageError(f"{where + ': ' if where else ''}cannot read {named}: {exc}") from None
        if real in chain and not lenient:
            raise UsageError(f"{where}: {named} includes itself (a cycle of -r/-c files)")
        if real in seen:
            return
        if len(chain) >= MAX_NESTING:
            raise UsageError(f"{where}: requirements files nested more than {MAX_NESTING} deep")
        seen.add(real)
        for number, text in _logical_lines(read_requirements(named, where)):
            here = f"{named}, line {number}"
            opt = OPTION.match(text)
            if not opt and _NESTED.match(text) and not lenient:
                raise UsageError(f"{here}: cannot read {shown(text, 80)}: -r and -c take one file (quote a path with spaces)")
            if not opt:
                lines.append(Line(here, text))
            elif "://" not in option_target(opt):
                visit(named.parent / option_target(opt), (*chain, real), here)
            elif not lenient:
                raise UsageError(f"{here}: privpkg resolve reads local files only; download {shown(urls.redact(option_target(opt)), 80)} first")

    visit(path, (), named_at)
    return lines


def collect(path: Path) -> list[Pin]:
    """Every signable requirement in a requirements file and the files it includes
    (:func:`walk`: a cycle or a nested URL is an error)."""
    return [pin for line in walk(path) if (pin := requirement(line.text, line.where)) is not None]


@contextmanager
def merged(paths: Sequence[Path]) -> Iterator[Path]:
    """One requirements file that reads ``paths`` in order, as pip reads repeated ``-r`` options:
    the file itself when there is one; else a temp file of ``-r ABSOLUTE_PATH`` lines (in a
    private temp folder, removed after), which :func:`walk` and the wheelhouse follow like any
    include, so a pinned copy includes each file, or its pinned copy, in the order given. Each
    file is read once first, so a missing one is named as given."""
    for path in paths:
        read_requirements(path, "")
    if len(paths) == 1:
        yield paths[0]
        return
    import shlex
    import tempfile

    with tempfile.TemporaryDirectory(prefix="privpkg-resolve-") as folder:
        top = Path(folder) / "requirements.txt"
        top.write_text("".join(f"-r {shlex.quote(str(p.absolute()))}\n" for p in paths), encoding="utf-8")
        yield top


class Constraints(NamedTuple):
    """What :func:`resolve_requirements` wrote: how many lines, and the connections' own SAS
    tokens some of them carry (valid until their own expiry, not ``ttl`` seconds)."""

    lines: int
    own_sas: tuple[OwnSAS, ...]

    def validity(self, ttl: int) -> str:
        """How long the written URLs are valid, in words."""
        owns = "; ".join(f"those with connection {o.connection!r}'s own SAS until {o.expiry or 'it expires'}" for o in self.own_sas)
        return f"valid {ttl} s" + (f", {owns}" if owns else "")


def resolve_requirements(path: Path, out: Path, ttl: int = DEFAULT_TTL) -> Constraints:
    """Write a constraints file (mode 0600) pinning every signable requirement to a signed URL,
    keeping its marker, URL fragment and per-requirement options (``--hash``)."""
    from privpkg.fileio import write_atomic

    lines = []
    owns: dict[OwnSAS, None] = {}
    for pin in collect(path):
        base, _, fragment = pin.url.partition("#")
        try:
            signed, own = _signed(base, ttl, True, None, True)
        except PrivpkgError as exc:
            raise type(exc)(f"{pin.where}: {exc}") from None
        if own is not None:
            owns[own] = None
        line = f"{pin.name} @ {signed}" + (f"#{fragment}" if fragment else "")
        line += (f" ; {pin.marker}" if pin.marker else "") + "".join(" " + o for o in pin.options)
        lines.append(line)
    done = Constraints(len(lines), tuple(owns))
    header = f"# written by privpkg resolve: signed URLs ({done.validity(ttl)}), do not commit\n"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a target that cannot be written: exit 1, naming it
        from privpkg.fileio import FileWriteError

        why = "Not a directory" if isinstance(exc, (FileExistsError, NotADirectoryError)) else exc.strerror or type(exc).__name__
        raise FileWriteError(f"cannot write {shown(out)}: {why}", exc.errno) from None
    write_atomic(out, (header + "".join(line + "\n" for line in lines)).encode(), 0o600)
    os.chmod(out, 0o600)
    return done
