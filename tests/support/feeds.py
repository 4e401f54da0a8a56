"""Feed servers for the tests: the PAT-protected feed from :mod:`privpkg.testing` as a fixture
(two feeds on one server, with its request log), and :class:`ServedHTTP`, the one way tests run
their small in-thread fake servers (recorders, misbehaving storage).
"""

from __future__ import annotations

import secrets
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from privpkg.testing import make_wheel, start_feed_server, write_config
from support.env import REPO, clean_env

FEED_A_PATH = "/orgA/_packaging/feedA/pypi/simple/"
FEED_B_PATH = "/orgB/_packaging/feedB/pypi/simple/"


@dataclass(frozen=True)
class LogLine:
    method: str
    path: str
    status: int
    auth: bool


@dataclass
class FeedServer:
    base: str  # http://127.0.0.1:PORT
    port: int
    secret_a: str
    secret_b: str
    log_path: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def index_a(self) -> str:
        return self.base + FEED_A_PATH

    @property
    def index_b(self) -> str:
        return self.base + FEED_B_PATH

    @property
    def secrets(self) -> tuple[str, str]:
        return (self.secret_a, self.secret_b)

    def log(self) -> list[LogLine]:
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text().splitlines():
            method, path, status, auth = line.split(" ")
            out.append(LogLine(method, path, int(status), auth == "auth"))
        return out

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else "<no requests logged>"

    def assert_challenged_then_authorized(self, feed_path: str, wheel: str, *, anonymous: bool = True) -> None:
        """The feed at ``feed_path`` answered an anonymous request with 401 (any 401 when
        ``anonymous`` is False, e.g. pip trying another feed's cached PAT first), later served
        an authorized 200, and an authorized 200 for the wheel file ``wheel``."""
        log = [e for e in self.log() if e.path.startswith(feed_path)]
        first_401 = next((i for i, e in enumerate(log) if e.status == 401 and not (anonymous and e.auth)), None)
        assert first_401 is not None, f"no {'anonymous ' if anonymous else ''}401 for {feed_path}:\n{self.log_text()}"
        ok = [e for e in log[first_401 + 1 :] if e.status == 200 and e.auth]
        assert ok, f"no authorized 200 after the 401 for {feed_path}:\n{self.log_text()}"
        assert any(e.path.endswith("/" + wheel) for e in ok), f"{wheel} was not downloaded with auth:\n{self.log_text()}"

    def assert_never_authorized(self) -> None:
        """Every request was refused, and none carried an Authorization header (no secret of any
        kind was sent)."""
        log = self.log()
        assert log, "the feed saw no request at all"
        assert all(e.status == 401 for e in log), f"a request got through:\n{self.log_text()}"
        assert not any(e.auth for e in log), f"a credential was sent to the feed:\n{self.log_text()}"


@pytest.fixture
def feed(tmp_path: Path) -> Iterator[FeedServer]:
    """A running ``python -m privpkg.testing.feedserver`` with two PAT-protected feeds on one
    server: pkg-a 1.0 at FEED_A_PATH (secret_a) and pkg-b 2.0 at FEED_B_PATH (secret_b)."""
    root = tmp_path / "feed"
    make_wheel(root / "a", "pkg-a", "1.0")
    make_wheel(root / "b", "pkg-b", "2.0")
    secret_a, secret_b = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    log_path = root / "requests.log"
    config = write_config(
        root / "config.json",
        [{"path": FEED_A_PATH, "secret": secret_a, "dir": root / "a"}, {"path": FEED_B_PATH, "secret": secret_b, "dir": root / "b"}],
        log=log_path,
    )
    env = clean_env(tmp_path / "feed-home")
    env["PYTHONPATH"] = str(REPO / "src")  # the server under test, even without an install
    server = start_feed_server(config, stderr_path=root / "server.stderr", env=env)
    try:
        yield FeedServer(server.base, server.port, secret_a, secret_b, log_path, server.proc)
    finally:
        server.stop()


class ServedHTTP:
    """An in-process HTTP server on a free loopback port, served by a daemon thread: the one way
    tests run their small fake servers (feeds, recorders, misbehaving storage). Give it a request
    handler class, or a server already bound to ("127.0.0.1", 0) when it needs its own class."""

    def __init__(self, handler_or_server: Any) -> None:
        if isinstance(handler_or_server, socketserver.BaseServer):
            self.server = handler_or_server
        else:
            self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler_or_server)
        self.server.daemon_threads = True  # type: ignore[attr-defined]
        self.port = int(self.server.server_address[1])
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
