"""A loopback forward proxy and a private CA for the proxy and certificate tests.

- :class:`ForwardProxy`: an HTTP proxy in a thread of the test process, on a free loopback port
  (stopped cleanly by :meth:`ForwardProxy.stop`). ``CONNECT host:port`` opens a blind tunnel (what
  clients use for https URLs); an absolute-form request (``GET http://host:port/path``) is
  forwarded as one request per connection (``Connection: close``), which is what clients send
  for http URLs. It records each request line and every byte the clients sent it, so a test can
  show what a proxy operator could read. ``routes`` maps a host name the proxy alone resolves
  (``feed.privpkg.test``) to a loopback address: a request for it can only have gone through the
  proxy.
- :class:`PrivateCA`: a CA and a server certificate (made with ``cryptography`` into a temp
  dir) for ``feed.privpkg.test``, ``localhost`` and 127.0.0.1; :func:`tls_server_context`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import selectors
import socket
import socketserver
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

PROXIED_HOST = "feed.privpkg.test"  # .test never resolves (RFC 6761): only the proxy knows it


@dataclass(frozen=True)
class Seen:
    """One request the proxy got: ``CONNECT`` and ``host:port``, or a method and absolute URL."""

    method: str
    target: str


class ForwardProxy:
    def __init__(self, routes: dict[str, str] | None = None) -> None:
        self.routes = dict(routes or {})
        self.seen: list[Seen] = []
        self.raw = bytearray()  # every byte clients sent, tunnelled TLS included
        self.lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._handle(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="test-forward-proxy", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def raw_text(self) -> str:
        with self.lock:
            return self.raw.decode("latin-1")

    def methods(self) -> list[str]:
        with self.lock:
            return [s.method for s in self.seen]

    def _record(self, data: bytes) -> None:
        with self.lock:
            self.raw += data

    def _upstream(self, hostport: str) -> socket.socket:
        host, _, port = hostport.rpartition(":")
        host = host.strip("[]")
        return socket.create_connection((self.routes.get(host, host), int(port)), timeout=30)

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(30)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk:
                return
            head += chunk
            self._record(chunk)
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        with self.lock:
            self.seen.append(Seen(method, target))
        try:
            if method == "CONNECT":
                upstream = self._upstream(target)
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                scheme, _, after = target.partition("://")
                hostport, slash, path = after.partition("/")
                if scheme != "http":
                    client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    return
                upstream = self._upstream(hostport if ":" in hostport else hostport + ":80")
                keep = [h for h in lines[1:] if h.split(":", 1)[0].strip().lower() not in ("connection", "proxy-connection", "keep-alive")]
                new_head = "\r\n".join([f"{method} {slash}{path} {version}", *keep, "Connection: close"]) + "\r\n\r\n"
                upstream.sendall(new_head.encode("latin-1") + rest)
                rest = b""
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        with upstream:
            if rest:
                upstream.sendall(rest)
            self._relay(client, upstream)

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(client, selectors.EVENT_READ, upstream)
            sel.register(upstream, selectors.EVENT_READ, client)
            while True:
                events = sel.select(timeout=30)
                if not events:
                    return
                for key, _ in events:
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = src.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    if src is client:
                        self._record(data)
                    try:
                        key.data.sendall(data)
                    except OSError:
                        return


class PrivateCA:
    """A throwaway CA in ``root``: ``ca.pem`` (the bundle a client must trust), and a server
    certificate ``server.pem``/``server-key.pem`` for :data:`PROXIED_HOST`, localhost and
    127.0.0.1, signed by it. Also ``other-ca.pem``, a CA that signed nothing here."""

    def __init__(self, root: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        root.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)

        def ca(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
            key = ec.generate_private_key(ec.SECP256R1())
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
            cert = (
                x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=2))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256())
            )
            return cert, key

        ca_cert, ca_key = ca("privpkg test CA")
        other, _ = ca("privpkg other CA")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PROXIED_HOST)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(PROXIED_HOST), x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        self.ca_pem = root / "ca.pem"
        self.other_ca_pem = root / "other-ca.pem"
        self.cert_pem = root / "server.pem"
        self.key_pem = root / "server-key.pem"
        self.ca_pem.write_bytes(ca_cert.public_bytes(pem))
        self.other_ca_pem.write_bytes(other.public_bytes(pem))
        self.cert_pem.write_bytes(cert.public_bytes(pem))
        self.key_pem.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_pem, self.key_pem)
        return ctx


class TLSFeed:
    """A feed on https://127.0.0.1:PORT/feed/ (certificate from :class:`PrivateCA`) that answers
    200 with a PEP 503 page to HTTP Basic with ``secret`` and 401 otherwise; in a thread of the
    test process, stopped by :meth:`stop`. ``log`` records (path, whether the secret came)."""

    def __init__(self, ca: PrivateCA, secret: str) -> None:
        import base64
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.log: list[tuple[str, bool]] = []
        feed = self
        want = "Basic " + base64.b64encode(f"__token__:{secret}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                authed = self.headers.get("Authorization") == want
                feed.log.append((self.path, authed))
                ok = authed and self.path.startswith("/feed/")
                body = b"<a href='pkg/'>pkg</a>" if ok else b"authentication required"
                self.send_response(200 if ok else 401)
                if not ok:
                    self.send_header("WWW-Authenticate", 'Basic realm="feed"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[socket.socket, object]:
                sock, addr = super().get_request()
                sock.settimeout(10)
                return sock, addr

            def finish_request(self, request: object, client_address: object) -> None:
                try:  # the handshake here, in the request's thread: a client that rejects the certificate ends it
                    tls = ctx.wrap_socket(request, server_side=True)  # type: ignore[arg-type]
                except (ssl.SSLError, OSError):
                    return
                super().finish_request(tls, client_address)  # type: ignore[arg-type]

        ctx = ca.server_context()
        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, name="test-tls-feed", daemon=True)
        self.thread.start()

    def url(self, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}/feed/"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
