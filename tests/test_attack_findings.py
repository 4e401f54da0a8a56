"""Red-team findings against the issue 6 fixes (branch i6-attack). Every test here reproduces an
attack that still works on the merged main: each one FAILS on the code it was written against.
Nothing is marked xfail on purpose; see /work/wt/notes/attack.md for severity, root cause and
suggested fixes. F2-F5 are fixed and their reproductions live with the code they test:
tests/test_s3_endpoint.py (F2), tests/test_project_config.py (F3, F4), tests/test_urls.py (F5).
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import FEED_A_PATH, assert_no_secret, run

from privpkg.feedserver import Feed, _Handler, make_wheel

# ---------------------------------------------------------------------------------------------
# helpers: an https feed and a plain-http listener on the SAME host (ports 443 and 80)
# ---------------------------------------------------------------------------------------------

#: A loopback address nothing else on this machine uses, so ports 443/80 are free on it.
HOST = "127.0.0.77"


def _self_signed(dirpath: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = _dt.datetime.now(_dt.timezone.utc)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = dirpath / "cert.pem", dirpath / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class _TLSFeed(ThreadingHTTPServer):
    """privpkg's own feed handler, on https://HOST:443."""

    daemon_threads = True

    def __init__(self, feeds: list[Feed], log_path: Path, cert: Path, key: Path) -> None:
        super().__init__((HOST, 443), _Handler)
        self.feeds = feeds
        self.log_path = str(log_path)
        self.lock = threading.Lock()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.socket = ctx.wrap_socket(self.socket, server_side=True)


class _Sniffer(BaseHTTPRequestHandler):
    """Plain http://HOST:80: what an on-path observer would read. Records the Authorization
    header of every request and answers 404."""

    seen: list[tuple[str, str]] = []

    def log_message(self, *a: Any) -> None:
        pass

    def do_GET(self) -> None:
        _Sniffer.seen.append((self.path, self.headers.get("Authorization", "")))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def https_and_http(tmp_path: Path):
    cert, key = _self_signed(tmp_path)
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "pkg-a", "1.0")
    pat = "pat-" + os.urandom(12).hex()
    tls = _TLSFeed([Feed(FEED_A_PATH, pat, wheels)], tmp_path / "tls.log", cert, key)
    plain = ThreadingHTTPServer((HOST, 80), _Sniffer)
    plain.daemon_threads = True
    _Sniffer.seen = []
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (tls, plain)]
    for t in threads:
        t.start()
    try:
        yield pat, cert
    finally:
        for s in (tls, plain):
            s.shutdown()
            s.server_close()


# ---------------------------------------------------------------------------------------------
# F1: pip reuses the PAT privpkg answered for https://HOST/orgA/ on http://HOST/ (same netloc)
# ---------------------------------------------------------------------------------------------


def test_f1_https_pat_sent_in_clear_by_pip_netloc_cache(https_and_http, venv_privpkg, make_env, store_connection, tmp_path):
    """README: "by default an https PAT is never sent over plain http, by pip or by uv". pip keeps
    the credential keyring gave for https://HOST/orgA/... under the netloc "HOST" and sends it
    with every later request whose netloc is "HOST": http://HOST/ (port 80) included. A
    requirements file from a cloned repository only has to add an --extra-index-url (or a
    direct URL, or --find-links) on the same host name over http."""
    pat, cert = https_and_http
    store_connection("orgA", f"https://{HOST}/orgA/", pat)
    env = make_env()
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(f"--extra-index-url http://{HOST}/mirror/simple/\npkg-a\n")
    r = run([*venv_privpkg.pip, "install", "--no-cache-dir", "--no-color", "--retries", "0", "--no-input",
             "--keyring-provider", "import", "--trusted-host", HOST, "--target", str(tmp_path / "t"),
             "--index-url", f"https://{HOST}{FEED_A_PATH}", "-r", str(reqs)], env)
    assert r.returncode == 0, r.describe()  # the https feed served pkg-a with the PAT
    leaked = [path for path, auth in _Sniffer.seen if auth]
    assert not leaked, f"the https PAT went over plain http to http://{HOST}{leaked[0]} (Authorization: Basic ...)"
    assert_no_secret(r.output, pat)
