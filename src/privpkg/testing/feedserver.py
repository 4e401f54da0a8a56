"""A small private PEP 503 feed on loopback that demands a PAT, for ``privpkg demo`` and the tests.

It is a real HTTP server: a request without the right Basic-auth password gets 401 with
``WWW-Authenticate``, which is what makes pip ask keyring. Run it as a process::

    python -m privpkg.testing.feedserver CONFIG.json   # prints the port, then serves until killed

or from Python with :func:`start_feed_server`, which writes that config, starts the process and
reads its port. (A process, not a thread: pip and keyring run in other processes anyway, and a
test or the demo stops it by its PID.)

``CONFIG.json`` (keep it 0600, it holds the PATs)::

    {"feeds": [{"path": "/org/_packaging/feed/pypi/simple/", "secret": "...", "dir": "wheels/"}],
     "log": "requests.log"}

A feed with ``"status": 403`` answers every authorized request with that status. A feed with
``"files": "/PREFIX/"`` links its files as ``/PREFIX/<sha256[:16]>/<file>``, outside its index's
path (as Azure Artifacts does), and serves a file of its ``dir`` at any path under that prefix
whose last segment is the file's name.

Each feed serves the wheels in its ``dir``: the index at ``path``, a project page at
``path/<name>/`` and the files under the project page. The request log records method, path,
status and whether an Authorization header came, never its value.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from privpkg.testing.processes import HOST, start_server, stop_process


def canonical(name: str) -> str:
    """PEP 503's normalized project name.

    >>> canonical("Pkg_A.b")
    'pkg-a-b'
    """
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Feed:
    """One PAT-protected feed: its index path, the password it accepts, the dir of its wheels."""

    path: str
    secret: str
    dir: Path
    status: int | None = None  # answer authorized requests with this status (e.g. 403)
    files: str | None = None  # serve and link the files under this path prefix, not the project page

    def __repr__(self) -> str:
        return f"Feed(path={self.path!r}, dir={str(self.dir)!r})"

    def wheels(self) -> dict[str, list[Path]]:
        out: dict[str, list[Path]] = {}
        for whl in sorted(self.dir.glob("*.whl")):
            out.setdefault(canonical(whl.name.split("-")[0]), []).append(whl)
        return out


class FeedRequestHandler(BaseHTTPRequestHandler):
    """Answers PEP 503 requests for the feeds of its :class:`FeedHTTPServer`."""

    server: FeedHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        pass

    def _log(self, status: int) -> None:
        if self.server.log_path:
            with self.server.lock, open(self.server.log_path, "a") as fh:
                auth = "auth" if self.headers.get("Authorization") else "noauth"
                fh.write(f"{self.command} {self.path} {status} {auth}\n")

    def _send(self, status: int, body: bytes, ctype: str = "text/html", extra: dict[str, str] | None = None) -> None:
        # Log before answering: a client that has its response may exit at once, and a reader of
        # the log (the tests) must then already see this request.
        self._log(status)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _authorized(self, feed: Feed) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            _, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return password == feed.secret

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        feed = next((f for f in self.server.feeds if path.startswith(f.path) or (f.files and path.startswith(f.files))), None)
        if feed is None:
            self._send(404, b"not found\n", "text/plain")
            return
        if not self._authorized(feed):
            self._send(401, b"authentication required\n", "text/plain", {"WWW-Authenticate": 'Basic realm="privpkg"'})
            return
        if feed.status:
            self._send(feed.status, b"forced status\n", "text/plain")
            return
        wheels = feed.wheels()
        if feed.files and path.startswith(feed.files):
            name = path.rsplit("/", 1)[-1]
            if any(w.name == name for ws in wheels.values() for w in ws):
                self._send(200, (feed.dir / name).read_bytes(), "application/octet-stream")
            else:
                self._send(404, b"not found\n", "text/plain")
            return
        rest = path[len(feed.path) :].strip("/").split("/") if path != feed.path else []
        if not rest:
            links = "".join(f'<a href="{p}/">{p}</a>\n' for p in wheels)
            self._send(200, f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode())
        elif len(rest) == 1 and rest[0] in wheels:
            links = "".join(f'<a href="{html.escape(_file_href(feed, w))}">{html.escape(w.name)}</a>\n' for w in wheels[rest[0]])
            self._send(200, f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode())
        elif len(rest) == 2 and rest[0] in wheels and any(w.name == rest[1] for w in wheels[rest[0]]):
            self._send(200, (feed.dir / rest[1]).read_bytes(), "application/octet-stream")
        else:
            self._send(404, b"not found\n", "text/plain")


def _file_href(feed: Feed, wheel: Path) -> str:
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return f"{feed.files}{sha[:16]}/{wheel.name}#sha256={sha}" if feed.files else f"{wheel.name}#sha256={sha}"


class FeedHTTPServer(ThreadingHTTPServer):
    """The feeds on one loopback port (0: the OS picks one; see ``server_address``)."""

    daemon_threads = True

    def __init__(self, feeds: list[Feed], log_path: str | None) -> None:
        super().__init__((HOST, 0), FeedRequestHandler)
        self.feeds = sorted(feeds, key=lambda f: len(f.path), reverse=True)
        self.log_path = log_path
        self.lock = threading.Lock()


def serve(config: dict[str, Any]) -> FeedHTTPServer:
    """A bound (not yet serving) server for a config as described in the module docstring."""
    feeds = [Feed(f["path"], f["secret"], Path(f["dir"]), f.get("status"), f.get("files")) for f in config["feeds"]]
    return FeedHTTPServer(feeds, config.get("log"))


def write_config(path: Path, feeds: list[dict[str, Any]], log: Path | None = None) -> Path:
    """Write a server config (mode 0600 from the start: it holds the PATs) and return its path.
    ``feeds``: dicts with ``path``, ``secret``, ``dir`` and optionally ``status`` and ``files``."""
    config: dict[str, Any] = {"feeds": [{**f, "dir": str(f["dir"])} for f in feeds]}
    if log is not None:
        config["log"] = str(log)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(config, fh)
    return path


@dataclass
class RunningFeedServer:
    """A ``python -m privpkg.testing.feedserver`` process we started; :meth:`stop` ends it."""

    port: int
    proc: subprocess.Popen[bytes] = field(repr=False)

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT``"""
        return f"http://{HOST}:{self.port}"

    def stop(self) -> None:
        stop_process(self.proc)


def start_feed_server(config: Path, *, stderr_path: Path | None = None, env: dict[str, str] | None = None) -> RunningFeedServer:
    """Start the feed server for the config file ``config`` (see :func:`write_config`) with this
    interpreter, wait for its port, and return it. Its stderr goes to ``stderr_path`` (default:
    next to the config)."""
    argv = [sys.executable, "-m", "privpkg.testing.feedserver", str(config)]
    proc, port = start_server(argv, stderr_path or config.with_suffix(".stderr"), "the feed server", env=env)
    return RunningFeedServer(port, proc)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write("usage: python -m privpkg.testing.feedserver CONFIG.json\n")
        return 2
    return serve_printing_port(serve(json.loads(Path(argv[0]).read_text())))


def serve_printing_port(server: ThreadingHTTPServer) -> int:
    """Print the server's port on stdout (what :func:`privpkg.testing.start_server` reads), then
    serve until interrupted."""
    sys.stdout.write(f"{server.server_address[1]}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
