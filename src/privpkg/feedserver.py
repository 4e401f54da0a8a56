"""A small private PEP 503 feed on loopback that demands a PAT, for ``privpkg demo`` and the tests.

It is a real HTTP server: a request without the right Basic-auth password gets 401 with
``WWW-Authenticate``, which is what makes pip ask keyring. Run it as a process::

    python -m privpkg.feedserver CONFIG.json      # prints the port, then serves until killed

``CONFIG.json`` (keep it 0600, it holds the PATs)::

    {"feeds": [{"path": "/org/_packaging/feed/pypi/simple/", "secret": "...", "dir": "wheels/"}],
     "log": "requests.log"}

A feed with ``"status": 403`` answers every authorized request with that status.

Each feed serves the wheels in its ``dir``: the index at ``path``, a project page at
``path/<name>/`` and the files under the project page. The request log records method, path,
status and whether an Authorization header came, never its value.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import sys
import threading
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def make_wheel(directory: Path, name: str, version: str, *, body: str | None = None) -> Path:
    """Write a minimal, valid pure-Python wheel ``name-version-py3-none-any.whl`` to
    ``directory``; it installs a module ``name`` (underscored) with ``VERSION``."""
    dist = re.sub(r"[-_.]+", "_", name)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}.py": body if body is not None else f'VERSION = "{version}"\n',
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: privpkg\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for fname, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{fname},sha256={digest},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for fname, text in files.items():
            zf.writestr(fname, text)
    return path


@dataclass
class Feed:
    path: str
    secret: str
    dir: Path
    status: int | None = None  # answer authorized requests with this status (e.g. 403)

    def __repr__(self) -> str:
        return f"Feed(path={self.path!r}, dir={str(self.dir)!r})"

    def wheels(self) -> dict[str, list[Path]]:
        out: dict[str, list[Path]] = {}
        for whl in sorted(self.dir.glob("*.whl")):
            out.setdefault(canonical(whl.name.split("-")[0]), []).append(whl)
        return out


class _Handler(BaseHTTPRequestHandler):
    server: _Server

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
        feed = next((f for f in self.server.feeds if path.startswith(f.path)), None)
        if feed is None:
            self._send(404, b"not found\n", "text/plain")
            return
        if not self._authorized(feed):
            self._send(401, b"authentication required\n", "text/plain", {"WWW-Authenticate": 'Basic realm="privpkg"'})
            return
        if feed.status:
            self._send(feed.status, b"forced status\n", "text/plain")
            return
        rest = path[len(feed.path) :].strip("/").split("/") if path != feed.path else []
        wheels = feed.wheels()
        if not rest:
            links = "".join(f'<a href="{p}/">{p}</a>\n' for p in wheels)
            self._send(200, f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode())
        elif len(rest) == 1 and rest[0] in wheels:
            links = "".join(
                f'<a href="{html.escape(w.name)}#sha256={hashlib.sha256(w.read_bytes()).hexdigest()}">{html.escape(w.name)}</a>\n'
                for w in wheels[rest[0]]
            )
            self._send(200, f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode())
        elif len(rest) == 2 and rest[0] in wheels and any(w.name == rest[1] for w in wheels[rest[0]]):
            self._send(200, (feed.dir / rest[1]).read_bytes(), "application/octet-stream")
        else:
            self._send(404, b"not found\n", "text/plain")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, feeds: list[Feed], log_path: str | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.feeds = sorted(feeds, key=lambda f: len(f.path), reverse=True)
        self.log_path = log_path
        self.lock = threading.Lock()


def serve(config: dict[str, Any]) -> _Server:
    feeds = [Feed(f["path"], f["secret"], Path(f["dir"]), f.get("status")) for f in config["feeds"]]
    return _Server(feeds, config.get("log"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write("usage: python -m privpkg.feedserver CONFIG.json\n")
        return 2
    server = serve(json.loads(Path(argv[0]).read_text()))
    sys.stdout.write(f"{server.server_address[1]}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
