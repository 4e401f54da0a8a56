"""A loopback conda channel that demands a PAT: static files of a channel folder (``noarch/``,
``linux-64/``: repodata.json and packages) served under a path prefix, for the private-channel
tests (``tests/test_conda_channels.py``, the real-conda tests of helpers A and D).

The server is a process (``python tests/support/channelserver.py CONFIG.json`` prints its port,
then serves until stopped), started by the :func:`channel_server` fixture on a free port and
stopped by its PID. Each channel in the config demands one credential scheme:

- ``basic``: HTTP Basic with the channel's secret as the password (any username);
- ``bearer``: ``Authorization: Bearer SECRET`` (Artifactory, Nexus, prefix.dev, quetz);
- ``token``: ``Authorization: token SECRET`` (anaconda.org's scheme, which conda-auth sends there);
- ``apikey``: ``X-API-Key: SECRET`` (quetz's API keys).

A request without it gets 401 (with ``WWW-Authenticate``), a wrong one 403 when the config says
``"wrong": 403`` (Artifactory answers a bad token so), else 401. The request log records method,
path, status and the scheme of the credential that came (``basic``, ``bearer``, ``token`` from
the Authorization header, ``apikey`` for an X-API-Key header, ``other`` or ``none``), never its value. Any userinfo or ``/t/TOKEN/`` segment is the
client's business: the server never accepts a secret in the URL, so a test sees a leak as a 401.

:func:`make_channel` writes a channel folder with tiny ``noarch: generic`` packages (one text file
each), indexed the way conda reads it; no conda or rattler is needed to build it.
"""

from __future__ import annotations

import base64
import bz2
import hashlib
import io
import json
import os
import secrets
import sys
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from privpkg.testing.feedserver import FeedRequestHandler, serve_printing_port

SCHEMES = ("basic", "bearer", "token", "apikey")
CHANNEL_PATH = "/api/conda/private/"  # where the fixture's channel lives (Artifactory-like)


# ---------------------------------------------------------------------------- the channel folder


def _tar_bz2(files: dict[str, bytes]) -> bytes:
    """A ``.tar.bz2`` conda package holding ``files`` (name -> bytes), with fixed mtimes so the
    same package is the same bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mtime = 1_700_000_000
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    return bz2.compress(raw.getvalue())


def make_package(name: str, version: str, depends: list[str] | None = None) -> tuple[str, bytes, dict[str, Any]]:
    """A ``noarch: generic`` package that installs ``share/<name>/<name>.txt``: its file name,
    bytes and index record (what ``info/index.json`` holds)."""
    payload = f"{name} {version}\n".encode()
    rel = f"share/{name}/{name}.txt"
    index = {"name": name, "version": version, "build": "0", "build_number": 0, "depends": depends or [],
             "noarch": "generic", "subdir": "noarch", "license": "MIT", "timestamp": 1_700_000_000_000}
    paths = {"paths": [{"_path": rel, "path_type": "hardlink", "sha256": hashlib.sha256(payload).hexdigest(),
                        "size_in_bytes": len(payload)}], "paths_version": 1}
    files = {
        rel: payload,
        "info/index.json": json.dumps(index, indent=2).encode(),
        "info/paths.json": json.dumps(paths, indent=2).encode(),
        "info/files": (rel + "\n").encode(),
    }
    return f"{name}-{version}-0.tar.bz2", _tar_bz2(files), index


def make_channel(root: Path, packages: list[tuple[str, str]]) -> Path:
    """Write a channel folder at ``root``: ``noarch/`` with a package per ``(name, version)`` and
    its repodata.json, and an empty ``linux-64/repodata.json`` (conda reads both subdirs)."""
    noarch = root / "noarch"
    noarch.mkdir(parents=True, exist_ok=True)
    records: dict[str, Any] = {}
    for name, version in packages:
        fn, data, index = make_package(name, version)
        (noarch / fn).write_bytes(data)
        records[fn] = {**index, "md5": hashlib.md5(data).hexdigest(),  # repodata.json carries md5 too
                       "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (noarch / "repodata.json").write_text(json.dumps({"info": {"subdir": "noarch"}, "packages": records, "packages.conda": {},
                                                      "repodata_version": 1}, indent=1))
    linux = root / "linux-64"
    linux.mkdir(exist_ok=True)
    (linux / "repodata.json").write_text(json.dumps({"info": {"subdir": "linux-64"}, "packages": {}, "packages.conda": {},
                                                     "repodata_version": 1}))
    return root


# ---------------------------------------------------------------------------- the server


@dataclass
class Channel:
    """One channel: the path prefix it is served under, the folder it serves, its secret and the
    scheme that secret must come in."""

    path: str
    dir: Path
    secret: str
    scheme: str = "basic"
    wrong: int = 401  # the status for a credential that came but is not the secret

    def __repr__(self) -> str:
        return f"Channel(path={self.path!r}, scheme={self.scheme!r})"


def header_scheme(header: str, api_key: str = "") -> str:
    """The scheme of the credential a request carried, as the log records it (never its value).

    >>> header_scheme("Bearer abc"), header_scheme(""), header_scheme("Digest x"), header_scheme("", "k")
    ('bearer', 'none', 'other', 'apikey')
    """
    if api_key and not header:
        return "apikey"
    word = header.split(" ", 1)[0].lower()
    return word if word in SCHEMES else ("none" if not header else "other")


def credential_ok(channel: Channel, header: str, api_key: str = "") -> bool:
    """Whether the request's Authorization header (or X-API-Key) carries ``channel``'s secret in
    ``channel``'s scheme."""
    if channel.scheme == "apikey":
        return secrets.compare_digest(api_key.encode(), channel.secret.encode())
    scheme, _, value = header.partition(" ")
    if scheme.lower() != channel.scheme:
        return False
    if channel.scheme == "basic":
        try:
            _, _, value = base64.b64decode(value, validate=True).decode().partition(":")
        except ValueError:
            return False
    return secrets.compare_digest(value.strip().encode(), channel.secret.encode())


class ChannelRequestHandler(FeedRequestHandler):
    """The feed server's handler (its answering and logging order), serving channel files and
    logging which auth scheme each request carried, never its value."""

    server: ChannelHTTPServer  # type: ignore[assignment]

    def _log(self, status: int) -> None:
        if self.server.log_path:
            with self.server.lock, open(self.server.log_path, "a") as fh:
                scheme = header_scheme(self.headers.get("Authorization", ""), self.headers.get("X-API-Key", ""))
                fh.write(f"{self.command} {self.path} {status} {scheme}\n")

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        channel = next((c for c in self.server.channels if path.startswith(c.path)), None)
        if channel is None:
            self._send(404, b"no channel here\n")
            return
        header, api_key = self.headers.get("Authorization", ""), self.headers.get("X-API-Key", "")
        if not credential_ok(channel, header, api_key):
            status = channel.wrong if header or api_key else 401
            realm = "Basic" if channel.scheme == "basic" else channel.scheme.capitalize()
            self._send(status, b"authentication required\n", extra={"WWW-Authenticate": f'{realm} realm="channel"'})
            return
        rel = path[len(channel.path):]
        target = (channel.dir / rel).resolve()
        if not rel or ".." in rel.split("/") or not target.is_relative_to(channel.dir.resolve()) or not target.is_file():
            self._send(404, b"not found\n")
            return
        ctype = "application/json" if target.suffix == ".json" else "application/octet-stream"
        self._send(200, target.read_bytes(), ctype)


class ChannelHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, channels: list[Channel], log_path: str | None) -> None:
        super().__init__(("127.0.0.1", 0), ChannelRequestHandler)
        self.channels = sorted(channels, key=lambda c: len(c.path), reverse=True)
        self.log_path = log_path
        self.lock = threading.Lock()


def write_config(path: Path, channels: list[Channel], log: Path) -> Path:
    """The server's config (mode 0600 from the start: it holds the secrets)."""
    doc = {"channels": [{"path": c.path, "dir": str(c.dir), "secret": c.secret, "scheme": c.scheme, "wrong": c.wrong}
                        for c in channels], "log": str(log)}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh)
    return path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write("usage: python channelserver.py CONFIG.json\n")
        return 2
    doc = json.loads(Path(argv[0]).read_text())
    channels = [Channel(c["path"], Path(c["dir"]), c["secret"], c["scheme"], c.get("wrong", 401)) for c in doc["channels"]]
    return serve_printing_port(ChannelHTTPServer(channels, doc.get("log")))


# ---------------------------------------------------------------------------- the fixture


@dataclass(frozen=True)
class ChannelLogLine:
    method: str
    path: str
    status: int
    scheme: str  # the Authorization header's scheme, or "none"


@dataclass
class ChannelServer:
    """The running server: one channel per scheme (:data:`SCHEMES`), each under its own path with
    its own secret.

    ``url(scheme)`` is that channel's URL (``http://127.0.0.1:PORT/api/conda/private/<scheme>/``);
    ``secrets[scheme]`` its secret; ``dir`` the one channel folder they all serve."""

    port: int
    secrets: dict[str, str]
    dir: Path
    log_path: Path
    proc: Any = field(repr=False)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, scheme: str = "basic") -> str:
        return f"{self.base}{CHANNEL_PATH}{scheme}/"

    def log(self) -> list[ChannelLogLine]:
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text().splitlines():
            method, path, status, scheme = line.split(" ")
            out.append(ChannelLogLine(method, path, int(status), scheme))
        return out

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else "<no requests logged>"

    def clear_log(self) -> None:
        self.log_path.unlink(missing_ok=True)


#: The packages in the fixture's channel.
PACKAGES = [("privtool", "1.0"), ("privtool", "1.1"), ("privdata", "2.0")]


def start_channel_server(root: Path, *, wrong: int = 401) -> ChannelServer:
    """Make the channel folder under ``root`` and start the server with one channel per scheme
    (fresh random secrets); the caller stops it with ``stop_process(server.proc)``."""
    from privpkg.testing.processes import start_server

    channel_dir = make_channel(root / "channel", PACKAGES)
    keys = {s: secrets.token_urlsafe(24) for s in SCHEMES}
    channels = [Channel(f"{CHANNEL_PATH}{s}/", channel_dir, keys[s], s, wrong) for s in SCHEMES]
    log = root / "requests.log"
    config = write_config(root / "channelserver.json", channels, log)
    proc, port = start_server([sys.executable, str(Path(__file__).resolve()), str(config)], root / "channelserver.stderr",
                              "the conda channel server")
    return ChannelServer(port, keys, channel_dir, log, proc)


try:
    import pytest
except ImportError:  # run as a script: the server needs no pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def channel_server(tmp_path: Path) -> Iterator[ChannelServer]:
        """A loopback conda channel server (process, stopped by PID) with a channel of the same
        packages per scheme: ``url("basic")``, ``url("bearer")``, ``url("token")``,
        ``url("apikey")``, each demanding its ``secrets[scheme]`` in that scheme."""
        from privpkg.testing.processes import stop_process

        server = start_channel_server(tmp_path / "channelserver")
        try:
            yield server
        finally:
            stop_process(server.proc)


if __name__ == "__main__":
    raise SystemExit(main())
