"""Issue 6 B6, found by the red team after the bare-host fix: pip's own credential cache.

pip keeps the credential it got for ``https://h:P/orgA/...`` (from keyring, after a 401) under
the netloc ``h:P``, with no scheme, and sends it with every later request to that netloc. So a
requirements file from a cloned repository only had to name ``--extra-index-url http://h:P/...``
(or a direct URL, or a find-links page) on the same host and port for the PAT to go out in clear,
although privpkg itself answered only the https index URL. The pip shim now files pip's cached
credentials under the scheme they were obtained for.

The server here speaks TLS and plain HTTP on ONE port (it peeks at the first byte of each
connection: 0x16 starts a TLS handshake), so ``https://127.0.0.1:P`` and ``http://127.0.0.1:P``
share pip's netloc without privileged ports. The https side is privpkg's PAT-protected feed; the
http side is the attacker's: it forges a 401 for every request and records whether an
Authorization header arrived.
"""

from __future__ import annotations

import base64
import datetime as _dt
import ipaddress
import secrets
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support.builds import Venv
from support.env import assert_no_secret, run
from support.feeds import FEED_A_PATH, ServedHTTP

from privpkg.testing import Feed, make_wheel
from privpkg.testing.feedserver import FeedRequestHandler

HOST = "127.0.0.1"


def _self_signed(dirpath: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = _dt.datetime.now(_dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(days=1))
        .not_valid_after(now + _dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = dirpath / "cert.pem", dirpath / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


class _Handler2(FeedRequestHandler):
    """privpkg's feed handler over TLS; over plain http, the attacker's forged 401."""

    def do_GET(self) -> None:
        if isinstance(self.connection, ssl.SSLSocket):
            super().do_GET()
            return
        with self.server.lock:  # type: ignore[attr-defined]
            self.server.plain.append((self.path, self.headers.get("Authorization", "")))  # type: ignore[attr-defined]
        body = b"log in"
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="mirror"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _DualServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, feeds: list[Feed], log_path: Path, cert: Path, key: Path) -> None:
        super().__init__((HOST, 0), _Handler2)
        self.feeds = feeds
        self.log_path = str(log_path)
        self.lock = threading.Lock()
        self.plain: list[tuple[str, str]] = []
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = self.socket.accept()
        sock.settimeout(10)
        try:
            first = sock.recv(1, socket.MSG_PEEK)
            if first == b"\x16":
                sock = self.ctx.wrap_socket(sock, server_side=True)
        except (OSError, ssl.SSLError):
            sock.close()
            raise
        return sock, addr


@pytest.fixture
def dual(tmp_path: Path) -> Iterator[tuple[_DualServer, str, Path]]:
    cert, key = _self_signed(tmp_path)
    make_wheel(tmp_path / "wheels", "pkg-a", "1.0")
    pat = "pat-" + secrets.token_urlsafe(24)
    server = _DualServer([Feed(FEED_A_PATH, pat, tmp_path / "wheels")], tmp_path / "feed.log", cert, key)
    served = ServedHTTP(server)
    try:
        yield server, pat, cert
    finally:
        served.stop()


def _leaked(server: _DualServer, pat: str) -> list[str]:
    return [path for path, auth in server.plain if auth and pat in base64.b64decode(auth.split(" ", 1)[-1] + "==").decode(errors="replace")]


@pytest.mark.parametrize("provider", ["import", "subprocess", "pip231-copy"])
def test_pip_never_sends_an_https_pat_over_http_on_the_same_netloc(
    provider: str, dual: tuple[_DualServer, str, Path], venv_privpkg: Venv, venv_pip231_shim: Venv,
    store_connection: Callable[..., Any], make_env: Callable[..., dict[str, str]], tmp_path: Path,
) -> None:
    """The https index gets its PAT (privpkg answers the index URL, no opt-in needed), pkg-a
    installs from it; the http "mirror" on the same host:port, named by a requirements file,
    never receives it (before the fix: every request to the mirror carried the PAT). With pip
    26.3 and privpkg in its environment (import and subprocess providers), and with pip 23.1
    carrying the shim copied by `setup pip --python` (subprocess; pip < 26.2 needs a username)."""
    server, pat, _ = dual
    port = server.server_address[1]
    venv, user = (venv_pip231_shim, "__token__@") if provider == "pip231-copy" else (venv_privpkg, "")
    store_connection("orgA", f"https://{HOST}:{port}/orgA/", pat)
    reqs = tmp_path / "requirements.txt"
    # A cloned repository's requirements: a mirror, a direct URL and a find-links page over http.
    reqs.write_text(
        f"--extra-index-url http://{HOST}:{port}/mirror/simple/\n"
        f"--find-links http://{HOST}:{port}/links/\n"
        "pkg-a\n"
    )
    # pip's subprocess provider skips a keyring CLI in its own environment's bin, so the same
    # CLI is put on PATH from another folder.
    kbin = tmp_path / "kbin"
    kbin.mkdir()
    (kbin / "keyring").symlink_to(venv_privpkg.bin / "keyring")
    env = make_env() if provider == "import" else make_env(path_prefix=[kbin])
    provider = "import" if provider == "import" else "subprocess"
    r = run([*venv.pip, "install", "--no-cache-dir", "--no-color", "--retries", "0", "--no-input",
             "--keyring-provider", provider, "--trusted-host", f"{HOST}:{port}", "--target", tmp_path / "t",
             "--index-url", f"https://{user}{HOST}:{port}{FEED_A_PATH}", "-r", reqs], env)
    assert r.returncode == 0 and "Successfully installed pkg-a-1.0" in r.output, r.describe()
    assert server.plain, "pip never asked the http side: the test proves nothing"
    assert not _leaked(server, pat), f"the https PAT went over plain http: {_leaked(server, pat)}\n{r.describe()}"
    # And the https side did get it (the index credential is still reused for its files).
    log = (tmp_path / "feed.log").read_text()
    assert any(line.endswith(" 200 auth") and ".whl" in line for line in log.splitlines()), log
    assert_no_secret(r.output, pat)

    # A direct URL over http on the same netloc, after the https index was used: no PAT either.
    before = len(server.plain)
    r = run([*venv.pip, "install", "--no-cache-dir", "--no-color", "--retries", "0", "--no-input",
             "--keyring-provider", provider, "--trusted-host", f"{HOST}:{port}", "--target", tmp_path / "t2",
             "--index-url", f"https://{user}{HOST}:{port}{FEED_A_PATH}", "pkg-a",
             f"pkg-b @ http://{HOST}:{port}/files/pkg_b-1.0-py3-none-any.whl"], env)
    assert r.returncode != 0, r.describe()  # the forged 401 stays a 401
    assert len(server.plain) > before, r.describe()
    assert not _leaked(server, pat), f"the https PAT went over plain http: {_leaked(server, pat)}\n{r.describe()}"
    assert_no_secret(r.output, pat)


def test_scheme_bound_cache_keeps_pip_semantics_per_scheme() -> None:
    """The mapping pip sees: per scheme, exactly pip's netloc dict (``in``, ``[]``, ``[]=``,
    ``get``); across schemes, nothing is shared."""
    from privpkg.pip_shim.adapter import _SchemeBoundPasswords

    state = threading.local()
    cache = _SchemeBoundPasswords(state)
    state.scheme = "https"
    cache["h:1"] = ("u", "p")
    assert "h:1" in cache and cache["h:1"] == ("u", "p") and cache.get("h:1") == ("u", "p")
    state.scheme = "http"
    assert "h:1" not in cache and cache.get("h:1") is None
    with pytest.raises(KeyError):
        cache["h:1"]
    cache["h:1"] = ("u", "other")
    state.scheme = "https"
    assert cache["h:1"] == ("u", "p")


def test_uv_never_sends_an_https_pat_over_http_on_the_same_netloc(
    dual: tuple[_DualServer, str, Path], venv_privpkg: Venv, venv_bare_pip: Venv, uv_bin: Path,
    store_connection: Callable[..., Any], make_env: Callable[..., dict[str, str]], tmp_path: Path,
) -> None:
    """The same attack against uv (which has no shim): uv keys its credential cache by realm, so
    the PAT it gets for the https index must stay off the http index on the same host:port. uv
    prefers --extra-index-url: it asks the https feed first (401, keyring, the PAT, then pkg-a
    and a 404 for pkg-zzz) and only then the http "mirror" for pkg-zzz, after the PAT is cached.
    Checked here rather than assumed."""
    server, pat, _ = dual
    port = server.server_address[1]
    store_connection("orgA", f"https://{HOST}:{port}/orgA/", pat)
    env = make_env(path_prefix=[venv_privpkg.bin])
    r = run([uv_bin, "pip", "install", "--no-config", "--no-cache", "--python", venv_bare_pip.python, "--target", tmp_path / "t",
             "--keyring-provider", "subprocess", "--allow-insecure-host", f"{HOST}:{port}",
             "--extra-index-url", f"https://__token__@{HOST}:{port}{FEED_A_PATH}",
             "--index-url", f"http://__token__@{HOST}:{port}/mirror/simple/", "pkg-a", "pkg-zzz"], env)
    log = (tmp_path / "feed.log").read_text() if (tmp_path / "feed.log").exists() else ""
    assert " 200 auth" in log, f"uv never got the PAT for the https index: the test proves nothing\n{log}\n{r.describe()}"
    assert server.plain, f"uv never asked the http side after that: the test proves nothing\n{r.describe()}"
    assert not _leaked(server, pat), f"uv sent the https PAT over plain http: {_leaked(server, pat)}\n{r.describe()}"
    assert_no_secret(r.output, pat)
