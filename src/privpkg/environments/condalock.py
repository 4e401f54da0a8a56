"""The conda part of an environment's lock: a CEP 23 explicit list (``@EXPLICIT``, one
``URL#sha256:HEX`` line per package, dependencies first) per platform, solved by py-rattler.

privpkg downloads each channel's ``repodata.json`` itself (through :mod:`privpkg.http`, with the
header of the ``CondaChannel`` connection that answers the URL, never sent on after a redirect)
and py-rattler only solves (``rattler.solve`` over ``SparseRepoData``): so a private channel needs
no credential in rattler's own store, and the solve is offline once the repodata is here.

No secret in a lock: a channel URL with a token path (``/t/TOKEN/``, anaconda.org's and
quetz's) or a password in user info is refused with one line naming ``privpkg connection set``
(stripping the token would lock a different URL); a username without a password is stripped; a
``file://`` channel or a local path is refused (a lock names what every machine can fetch).
A channel given by name (``conda-forge``) means ``https://conda.anaconda.org/NAME/``.

Virtual packages (``__glibc``, ``__cuda``...) are detected for the running platform; another
platform is solved with none, so a package that needs one fails to solve there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from privpkg import urls
from privpkg.environments import rattlerproc
from privpkg.environments.pylock import Artifact
from privpkg.errors import PrivpkgError, UsageError, shown

#: Where a channel given by name lives (conda's default channel_alias).
CHANNEL_ALIAS = "https://conda.anaconda.org/"
_TOKEN_PATH = re.compile(r"/t/[^/]+(/|$)")
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
_PLATFORM = re.compile(r"^(noarch|[a-z0-9]+-[a-z0-9_]+)$")
_LINE = re.compile(r"^(?P<url>\S+/(?P<fn>[^/#]+(?:\.tar\.bz2|\.conda)))#(?:sha256:)?(?P<sha>[0-9a-f]{64})$")
MAX_REPODATA_BYTES = 512 * 1024 * 1024
TIMEOUT = 60


def file_name(platform: str) -> str:
    """The lock file of ``platform`` in a version's files: ``conda-linux-64.txt``."""
    return f"conda-{platform}.txt"


def screen_channel(channel: str) -> str:
    """``channel`` as a lock may name it: a URL ending in ``/`` (a name expanded with
    :data:`CHANNEL_ALIAS`, a username alone stripped), or a one-line UsageError (see the
    module docstring).

    >>> screen_channel("conda-forge"), screen_channel("https://__token__@h.example/c")
    ('https://conda.anaconda.org/conda-forge/', 'https://h.example/c/')
    """
    from privpkg.environments.screen import find_secret

    if _CHANNEL_NAME.match(channel) and "://" not in channel:
        return CHANNEL_ALIAS + channel.strip("/") + "/"
    # No part of a secret in the message: user info redacted, a /t/TOKEN/ path masked.
    shown_url = _TOKEN_PATH.sub("/t/***/", urls.redact(channel))
    found = find_secret(channel)
    if found:
        raise UsageError(f"conda channel {shown_url}: the lock would hold {found}; store the credential as a connection instead "
                         f"(privpkg connection set NAME --category CondaChannel --target URL)")
    parts = urlsplit(channel)
    if parts.scheme.lower() not in ("https", "http"):
        raise UsageError(f"conda channel {shown(shown_url, 120)}: a lock names https:// channels (http on loopback), not a local "
                         f"{'file' if parts.scheme in ('file', '') else parts.scheme + ' URL'}")
    if _TOKEN_PATH.search(parts.path):
        raise UsageError(f"conda channel {parts.scheme}://{parts.netloc.rpartition('@')[2]}/t/***/...: a token in the channel URL would "
                         f"be stored in the lock; store it as a connection instead (privpkg connection set NAME --category CondaChannel --target URL)")
    if "@" in parts.netloc:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        if ":" in userinfo:
            raise UsageError(f"conda channel {shown_url}: the lock would hold a password in user info; store it as a connection instead")
        parts = parts._replace(netloc=hostport)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/", query="", fragment=""))


def _download(url: str, dest: Path) -> bool:
    """``url`` into ``dest``, authenticated by the connection that answers it; False on 404
    (a channel without that subdir). One-line PrivpkgError otherwise."""
    import urllib.error
    import urllib.request

    from privpkg import http
    from privpkg.conda.channelauth import explain_status, headers_for

    req = urllib.request.Request(url)
    for name, value in headers_for(url).items():
        # Unredirected: urllib copies ordinary headers onto a redirect to any host.
        req.add_unredirected_header(name, value)
    try:
        with http.build_opener().open(req, timeout=TIMEOUT) as resp:
            data = resp.read(MAX_REPODATA_BYTES + 1)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 404:
            return False
        why = explain_status(url, exc.code, once=False) if exc.code in (401, 403) else None
        raise PrivpkgError(why or f"reading {urls.redact(url)} failed: HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        why = exc.reason if isinstance(exc.reason, str) else getattr(exc.reason, "strerror", None) or type(exc.reason).__name__
        raise PrivpkgError(f"cannot reach {urlsplit(url).netloc.rpartition('@')[2]} to read {urls.redact(url)}: {why}") from None
    except (TimeoutError, OSError) as exc:
        raise PrivpkgError(f"reading {urls.redact(url)} failed: {getattr(exc, 'strerror', None) or type(exc).__name__}") from None
    if len(data) > MAX_REPODATA_BYTES:
        raise PrivpkgError(f"{urls.redact(url)} is larger than {MAX_REPODATA_BYTES >> 20} MiB")
    dest.write_bytes(data)
    return True


def _solve(channels: Sequence[str], specs: Sequence[str], platform: str, work: Path, keep: Sequence[Artifact] = ()) -> list[rattlerproc.Solved]:
    """The records to install on ``platform``, dependencies first. ``keep``: the previous
    lock's packages, which the solver prefers to any other version (rattler's
    ``locked_packages``) while the specs allow them. py-rattler runs in a child process
    (:mod:`.rattlerproc` says why)."""
    if not rattlerproc.available():
        raise PrivpkgError("conda locks need py-rattler: pip install 'py-rattler>=0.28,<0.29'")
    sources = []
    for i, channel in enumerate(channels):
        for subdir in (platform, "noarch"):
            path = work / f"{i}-{subdir}.json"
            if not _download(f"{channel}{subdir}/repodata.json", path):
                path.write_text('{"packages": {}, "packages.conda": {}}')
            sources.append((channel, subdir, str(path.absolute())))
    return rattlerproc.solve(sources, specs, platform, [(a.name, a.url) for a in keep])


def lock_conda(channels: Sequence[str], specs: Sequence[str], platforms: Sequence[str] = (), *,
               previous: Mapping[str, str] | None = None, upgrade: bool | Sequence[str] = False) -> dict[str, str]:
    """``{"conda-PLATFORM.txt": explicit list}`` for each platform (default: the running one).
    Packages of the ``previous`` lock files (same names) stay at their locked builds while the
    specs allow them, unless ``upgrade`` (True: all; a list of names: those)."""
    import tempfile

    if not specs:
        return {}
    screened = [screen_channel(c) for c in channels]
    if not screened:
        raise UsageError("the conda dependencies name no channel; add one under channels:")
    if not platforms:
        platforms = [current_platform()]
    out: dict[str, str] = {}
    for platform in platforms:
        if not _PLATFORM.match(platform) or platform == "noarch":
            raise UsageError(f"not a conda platform: {shown(platform, 40)!r} (e.g. linux-64, osx-arm64, win-64)")
        before = (previous or {}).get(file_name(platform))
        moved = set() if isinstance(upgrade, bool) else set(upgrade)
        keep = [] if upgrade is True or not before else [a for a in load_explicit(before) if a.name not in moved]
        with tempfile.TemporaryDirectory(prefix="privpkg-condalock-") as tmp:
            records = _solve(screened, specs, platform, Path(tmp), keep)
        lines = [f"# platform: {platform}", "# made by privpkg env lock (py-rattler); install with: conda create --file THIS", "@EXPLICIT"]
        for r in records:
            sha = r.sha256
            if not sha:
                raise UsageError(f"conda package {r.file_name} has no sha256 in its channel's repodata; a lock needs one")
            url = r.url
            if urlsplit(url).scheme not in ("https", "http") or "@" in urlsplit(url).netloc:
                raise UsageError(f"conda package {r.file_name}: its URL {urls.redact(url)} cannot go in a lock")
            lines.append(f"{url}#sha256:{sha}")
        out[file_name(platform)] = "\n".join(lines) + "\n"
    return out


def current_platform() -> str:
    """The running machine's conda platform (``linux-64``), without importing py-rattler."""
    import platform
    import sys

    machine = platform.machine().lower()
    arch = {"x86_64": "64", "amd64": "64", "aarch64": "aarch64", "arm64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x"}.get(machine, machine)
    os_name = {"linux": "linux", "darwin": "osx", "win32": "win"}.get(sys.platform, sys.platform)
    if os_name == "linux" and arch == "arm64":
        arch = "aarch64"
    if os_name == "osx" and arch == "aarch64":
        arch = "arm64"
    return f"{os_name}-{arch}"


def prefix_python(prefix: Path) -> Path:
    """The interpreter of a conda prefix (``bin/python``; ``python.exe`` at the top on Windows)."""
    import os

    return prefix / ("python.exe" if os.name == "nt" else "bin/python")


def load_explicit(text: str) -> list[Artifact]:
    """The artifacts of a CEP 23 explicit list made by :func:`lock_conda` (every line
    ``URL#sha256:HEX``); one-line UsageError for anything else.

    >>> load_explicit("@EXPLICIT\\nhttps://h/c/noarch/pip-26.3-py_0.conda#sha256:" + "0" * 64)[0][:2]
    ('pip', '26.3')
    """
    from privpkg.environments.screen import find_secret, masked

    out: list[Artifact] = []
    explicit = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line == "@EXPLICIT":
            explicit = True
            continue
        m = _LINE.match(line)
        if not explicit or not m:
            raise UsageError(f"conda lock, line {number}: expected URL#sha256:HEX after @EXPLICIT, got {shown(urls.redact(line), 80)!r}")
        parts = urlsplit(m.group("url"))
        if parts.scheme not in ("https", "http") or "@" in parts.netloc or find_secret(line):
            raise UsageError(f"conda lock, line {number}: {masked(urls.redact(m.group('url')))} cannot be in a lock (a local "
                             "file, user info, a token or a signature)")
        stem = m.group("fn").removesuffix(".conda").removesuffix(".tar.bz2")
        if stem.count("-") < 2:
            raise UsageError(f"conda lock, line {number}: {shown(m.group('fn'), 80)!r} is not a conda package file (NAME-VERSION-BUILD)")
        name, version, _build = stem.rsplit("-", 2)
        out.append(Artifact(name, version, m.group("url"), m.group("fn"), m.group("sha"), "conda"))
    return out
