"""S3 workspaces against moto's S3 server: the privpkg CLI flow, presigned URLs, one-line
errors, and real pip installs through the pip shim.

moto does NOT check signatures or expiry (a wrong secret, a tampered or an expired URL still
gets 200, see FACTS.md). So every test here talks to moto through :class:`SigV4Checker`, a
loopback proxy that recomputes the SigV4 signature of every request (presigned query or
Authorization header) with botocore's own signer and the known secret, and answers 403
``SignatureDoesNotMatch`` (or ``AccessDenied`` for an expired URL) as S3 would, before moto sees
it. A wrong secret in the connection therefore fails these tests (test_wrong_secret_is_refused
shows it), including the presigned GETs that pip makes through the pip shim.

Every test ends with ``outputs.check()``: the secret access key appears in no output, and no
X-Amz-Signature appears anywhere but in the ``privpkg resolve`` stdout that printed it.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import http.client
import http.server
import json
import re
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support.builds import Venv
from support.cli import PrivpkgCLI, check_publish_rules, check_removal_rules
from support.env import Result, run
from support.feeds import ServedHTTP
from support.storage import MotoServer

from privpkg.testing import make_wheel

WS = "s3w"
PREFIX = "team/pkgs"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with _OPENER.open(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# --------------------------------------------------------------------------------------------
# SigV4 checks, independent of moto
# --------------------------------------------------------------------------------------------

_AUTH_PARAMS = {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"}


def presigned_signature_ok(url: str, access_key: str, secret_key: str, now: float | None = None) -> str | None:
    """None if ``url`` is a presigned GET validly signed with ``secret_key`` and not expired;
    otherwise why not. The signature is recomputed with botocore's S3SigV4QueryAuth (the signer
    that made it) over the URL without its signature, at the URL's own X-Amz-Date."""
    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    parts = urllib.parse.urlsplit(url)
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    q = dict(pairs)
    if not _AUTH_PARAMS <= set(q) or q["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
        return "not a SigV4 presigned URL"
    akid, date, region, service, term = q["X-Amz-Credential"].split("/")
    if akid != access_key or term != "aws4_request" or date != q["X-Amz-Date"][:8]:
        return "InvalidAccessKeyId or malformed credential scope"
    signed_at = calendar.timegm(time.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
    if (now if now is not None else time.time()) > signed_at + int(q["X-Amz-Expires"]):
        return "expired"
    rest = urllib.parse.urlencode([(k, v) for k, v in pairs if k not in _AUTH_PARAMS])
    request = AWSRequest(method="GET", url=urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, rest, "")))
    request.context["timestamp"] = q["X-Amz-Date"]
    signer = S3SigV4QueryAuth(Credentials(access_key, secret_key), service, region, expires=int(q["X-Amz-Expires"]))
    signer._modify_request_before_signing(request)  # adds the X-Amz-* params botocore signs
    if q["X-Amz-SignedHeaders"] != "host":
        return f"unexpected SignedHeaders {q['X-Amz-SignedHeaders']!r}"
    want = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return None if hmac.compare_digest(want, q["X-Amz-Signature"]) else "SignatureDoesNotMatch"


def header_signature_ok(method: str, url: str, headers: dict[str, str], access_key: str, secret_key: str) -> str | None:
    """The same for an ``Authorization: AWS4-HMAC-SHA256 ...`` request (boto3's own calls), with
    botocore's S3SigV4Auth over the headers the request says it signed."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    lower = {k.lower(): v for k, v in headers.items()}
    m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^,]+), ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})", lower.get("authorization", ""))
    if not m:
        return "no SigV4 Authorization header"
    akid, _date, region, service, _ = m.group(1).split("/")
    if akid != access_key:
        return "InvalidAccessKeyId"
    signed = m.group(2).split(";")
    request = AWSRequest(method=method, url=url, headers={h: lower.get(h, "") for h in signed})
    request.context["timestamp"] = lower.get("x-amz-date", "")
    signer = S3SigV4Auth(Credentials(access_key, secret_key), service, region)
    want = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return None if hmac.compare_digest(want, m.group(3)) else "SignatureDoesNotMatch"


@dataclass
class SigV4Checker:
    """A loopback proxy in front of moto that refuses what S3 would refuse: a request whose SigV4
    signature does not match the known secret (403 SignatureDoesNotMatch), or an expired
    presigned URL (403 AccessDenied). Same interface as :class:`MotoServer`."""

    moto: MotoServer
    server: http.server.ThreadingHTTPServer = field(init=False, repr=False)
    served: ServedHTTP = field(init=False, repr=False)
    verified: list[str] = field(default_factory=list)  # "presigned"/"header" per accepted request
    refused: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        checker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                url = f"http://{self.headers['Host']}{self.path}"
                if "X-Amz-Signature=" in self.path:
                    kind, why = "presigned", presigned_signature_ok(url, checker.moto.access_key, checker.moto.secret_key)
                else:
                    kind, why = "header", header_signature_ok(self.command, url, dict(self.headers), checker.moto.access_key, checker.moto.secret_key)
                if why is not None:
                    checker.refused.append(f"{kind} {self.command}: {why}")
                    code = "AccessDenied" if why == "expired" else "SignatureDoesNotMatch"
                    err = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{why}</Message></Error>".encode()
                    self.send_response(403)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(err)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(err)
                    return
                checker.verified.append(kind)
                conn = http.client.HTTPConnection("127.0.0.1", checker.moto.port, timeout=60)
                try:
                    hop = {"connection", "keep-alive", "transfer-encoding", "proxy-connection"}
                    conn.request(self.command, self.path, body=body or None, headers={k: v for k, v in self.headers.items() if k.lower() not in hop})
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in hop | {"content-length", "server", "date"}:
                            self.send_header(k, v)
                    length = resp.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
                    self.send_header("Content-Length", length or "0")
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _handle

        self.served = ServedHTTP(Handler)
        self.server = self.served.server

    # the MotoServer interface, pointed at this proxy
    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def access_key(self) -> str:
        return self.moto.access_key

    @property
    def secret_key(self) -> str:
        return self.moto.secret_key

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"wheels-{secrets.token_hex(5)}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="module")
def moto_server(moto_server: MotoServer) -> Iterator[SigV4Checker]:
    """The session's moto server (support.storage) behind the SigV4 checker: this module's tests see only the checker."""
    checker = SigV4Checker(moto_server)
    try:
        yield checker
    finally:
        checker.served.stop()


@pytest.fixture(autouse=True)
def _fresh_checker_log(moto_server: SigV4Checker) -> None:
    moto_server.verified.clear()
    moto_server.refused.clear()


def setup_workspace(cli: PrivpkgCLI, moto: MotoServer, *, connection: bool = True, bucket: str | None = None) -> str:
    """A fresh bucket (unless ``bucket`` is given) as workspace WS under PREFIX; returns the bucket."""
    cli.outputs.add_secret(moto.secret_key)
    bucket = bucket or moto.create_bucket()
    out = cli.ok("workspace", "add", WS, "--s3", f"s3://{bucket}/{PREFIX}", "--endpoint-url", moto.endpoint)
    assert f"added workspace {WS!r}: s3 s3://{bucket}/{PREFIX}" in out
    if connection:
        # Bound to moto's endpoint: S3 credentials serve only the endpoint they were stored for.
        cli.ok("connection", "set", "s3conn", "--category", "S3", "--target", f"s3://{bucket}",
               "--username", moto.access_key, "--endpoint", moto.endpoint, stdin=moto.secret_key + "\n")
    return bucket


def test_wheel_add_exist_ok_immutability_and_presigned_url(privpkg_cli: PrivpkgCLI, moto_server: MotoServer, tmp_path: Path) -> None:
    cli = privpkg_cli
    bucket = setup_workspace(cli, moto_server)
    s3 = moto_server.client()
    wheel = make_wheel(tmp_path / "v1", "demo-pkg", "1.0")
    original = wheel.read_bytes()
    sha = hashlib.sha256(original).hexdigest()
    url = f"privpkg://{WS}/wheels/{wheel.name}"
    key = f"{PREFIX}/wheels/{wheel.name}"

    assert cli.ok("wheel", "add", wheel, "--workspace", WS).strip().splitlines()[-1] == url
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(original) and head["Metadata"]["sha256"] == sha
    listing = cli.ok("wheel", "list", "--workspace", WS)
    assert any(line.split()[:2] == [url, str(len(original))] for line in listing.splitlines()), listing
    [entry] = json.loads(cli.ok("wheel", "list", "--workspace", WS, "--json"))
    assert (entry["file"], entry["url"], entry["size"]) == (wheel.name, url, len(original))

    check_publish_rules(cli, wheel, WS, url, sha, tmp_path)
    assert s3.head_object(Bucket=bucket, Key=key)["ETag"] == head["ETag"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])] == [key]

    # The presigned GET: SigV4 with the requested lifetime, for exactly this object.
    out = cli.ok("resolve", url, "--ttl", "321").strip().splitlines()
    assert len(out) == 1
    signed = out[0]
    parts = urllib.parse.urlsplit(signed)
    q = {k: v[0] for k, v in urllib.parse.parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}" == moto_server.endpoint
    assert parts.path == f"/{bucket}/{key}"
    assert q["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert q["X-Amz-Expires"] == "321"
    assert q["X-Amz-Credential"].startswith(moto_server.access_key + "/")
    assert re.fullmatch(r"[0-9a-f]{64}", q["X-Amz-Signature"])
    assert presigned_signature_ok(signed, moto_server.access_key, moto_server.secret_key) is None
    assert presigned_signature_ok(signed, moto_server.access_key, moto_server.secret_key, now=time.time() + 322) == "expired"
    assert http_get(signed) == (200, original)
    assert moto_server.verified.count("presigned") == 1 and "header" in moto_server.verified
    # What S3 refuses, the checker refuses (moto alone would answer 200 to each).
    tampered = signed.replace(q["X-Amz-Signature"], q["X-Amz-Signature"][::-1])
    other_key = signed.replace(urllib.parse.quote(key), urllib.parse.quote(f"{PREFIX}/wheels/other-1.0-py3-none-any.whl"))
    for bad in (tampered, other_key):
        status, body = http_get(bad)
        assert status == 403 and b"SignatureDoesNotMatch" in body
    assert len(moto_server.refused) == 2
    check_removal_rules(cli, wheel, WS, url, tmp_path,
                        lambda: [o["Key"].removeprefix(PREFIX + "/") for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])])
    assert cli.outputs.check() == 1


def test_wrong_secret_is_refused(privpkg_cli: PrivpkgCLI, moto_server: SigV4Checker, tmp_path: Path) -> None:
    """F19: a wrong secret access key in the connection fails, as on AWS. moto alone accepts it
    (shown below against moto directly), so the check is the SigV4Checker's and
    presigned_signature_ok's, both independent of privpkg and of moto."""
    cli = privpkg_cli
    wrong = "wrong-secret-" + secrets.token_urlsafe(24)
    cli.outputs.add_secret(wrong)
    bucket = setup_workspace(cli, moto_server)
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0")
    url = cli.ok("wheel", "add", wheel, "--workspace", WS).strip().splitlines()[-1]
    assert moto_server.refused == []
    cli.ok("connection", "set", "s3conn", "--update", stdin=wrong + "\n")

    refused = ["refused the credentials", "privpkg connection set s3conn --update"]  # a HEAD: 403, no body, as on AWS
    cli.fails(1, "resolve", url, match=refused)
    cli.fails(1, "wheel", "add", make_wheel(tmp_path / "2", "demo-pkg", "2.0"), "--workspace", WS, match=refused)
    assert moto_server.refused and all("SignatureDoesNotMatch" in r for r in moto_server.refused)

    # The same workspace pointed at moto itself: moto signs nothing off, the URL "works" there,
    # and only the independent check catches the wrong secret.
    cli.ok("workspace", "add", "direct", "--s3", f"s3://{bucket}/{PREFIX}", "--endpoint-url", moto_server.moto.endpoint)
    # The connection is bound to the checker's endpoint (A3), so first rebind it to moto's own.
    cli.fails(1, "resolve", f"privpkg://direct/wheels/{wheel.name}", match="no S3 credentials for")
    cli.ok("connection", "set", "s3conn", "--update", "--keep-secret", "--endpoint", moto_server.moto.endpoint)
    signed = cli.ok("resolve", f"privpkg://direct/wheels/{wheel.name}").strip()
    assert http_get(signed)[0] == 200, "moto now checks signatures: the checker may be simplified"
    assert presigned_signature_ok(signed, moto_server.access_key, moto_server.secret_key) == "SignatureDoesNotMatch"
    assert presigned_signature_ok(signed, moto_server.access_key, wrong) is None
    cli.outputs.check()


def test_wheel_list_shows_sha256(privpkg_cli: PrivpkgCLI, moto_server: MotoServer, tmp_path: Path) -> None:
    """`wheel list` shows each wheel's sha256 (as it does for local and Azure workspaces); the
    sha256 is stored as object metadata, so it is known."""
    cli = privpkg_cli
    setup_workspace(cli, moto_server)
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0")
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    cli.ok("wheel", "add", wheel, "--workspace", WS)
    [entry] = json.loads(cli.ok("wheel", "list", "--workspace", WS, "--json"))
    assert entry["sha256"] == sha
    assert sha[:16] in cli.ok("wheel", "list", "--workspace", WS)
    cli.outputs.check()


def test_missing_s3_credentials(privpkg_cli: PrivpkgCLI, moto_server: MotoServer, tmp_path: Path) -> None:
    cli = privpkg_cli
    bucket = setup_workspace(cli, moto_server, connection=False)
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0")
    want = ["no S3 credentials", f"privpkg connection set NAME --category S3 --target s3://{bucket} --username ACCESS_KEY_ID"]
    cli.fails(1, "wheel", "add", wheel, "--workspace", WS, match=want)
    cli.fails(1, "resolve", f"privpkg://{WS}/wheels/{wheel.name}", match=want)
    cli.fails(1, "wheel", "list", "--workspace", WS, match=want)
    assert "Contents" not in moto_server.client().list_objects_v2(Bucket=bucket)
    cli.outputs.check()


def test_missing_bucket_is_one_line(privpkg_cli: PrivpkgCLI, moto_server: MotoServer, tmp_path: Path) -> None:
    cli = privpkg_cli
    bucket = "no-such-bucket-" + secrets.token_hex(4)
    setup_workspace(cli, moto_server, bucket=bucket)
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0")
    cli.fails(1, "wheel", "list", "--workspace", WS, match=f"bucket {bucket!r} does not exist")
    cli.fails(1, "wheel", "add", wheel, "--workspace", WS, match=f"bucket {bucket!r} does not exist")
    cli.outputs.check()


def _pip_install(cli: PrivpkgCLI, venv: Venv, target: Path, req: str, *flags: str) -> Result:
    r = cli.tool([*venv.pip, "install", "--no-cache-dir", *flags, "--target", target, req])
    assert r.returncode == 0, r.describe()
    return r


def test_pip_installs_privpkg_url_without_showing_the_presigned_url(
    privpkg_cli: PrivpkgCLI, moto_server: MotoServer, venv_privpkg_cloud: Venv, tmp_path: Path
) -> None:
    cli = privpkg_cli
    setup_workspace(cli, moto_server)
    wheel = make_wheel(tmp_path / "w", "s3-pkg", "1.5")
    url = cli.ok("wheel", "add", wheel, "--workspace", WS).strip().splitlines()[-1]
    target = tmp_path / "target"

    r = _pip_install(cli, venv_privpkg_cloud, target, f"s3-pkg @ {url}", "-v")
    assert f"s3-pkg @ {url}" in r.output and "Successfully installed s3-pkg-1.5" in r.output
    assert "X-Amz-" not in r.output, r.output
    imp = run([venv_privpkg_cloud.python, "-c", "import s3_pkg; print(s3_pkg.VERSION, s3_pkg.__file__)"], {**cli.env, "PYTHONPATH": str(target)})
    assert imp.returncode == 0 and imp.output.split() == ["1.5", str(target / "s3_pkg.py")], imp.describe()

    direct = json.loads((target / "s3_pkg-1.5.dist-info" / "direct_url.json").read_text())
    assert direct["url"] == url
    freeze = cli.tool([*venv_privpkg_cloud.pip, "freeze", "--path", target])
    assert freeze.returncode == 0 and f"s3-pkg @ {url}#sha256=" in freeze.output, freeze.describe()
    for p in target.rglob("*"):
        if p.is_file():
            assert "X-Amz-" not in p.read_text(errors="replace"), p
    # pip's download went through the checker with a valid signature.
    assert moto_server.verified.count("presigned") >= 1 and moto_server.refused == []
    cli.outputs.check()


def test_pip_debug_output_shows_no_s3_signature(
    privpkg_cli: PrivpkgCLI, moto_server: MotoServer, venv_privpkg_cloud: Venv, tmp_path: Path
) -> None:
    """At -vv pip logs at DEBUG, and botocore's signer logs the presigned URL's signature
    ("Signature:" followed by 64 hex digits); together with the logged query and the access key
    id that is a working download URL. No 64-hex signature may appear in pip's output."""
    cli = privpkg_cli
    setup_workspace(cli, moto_server)
    wheel = make_wheel(tmp_path / "w", "s3-pkg", "1.5")
    url = cli.ok("wheel", "add", wheel, "--workspace", WS).strip().splitlines()[-1]
    r = _pip_install(cli, venv_privpkg_cloud, tmp_path / "target", f"s3-pkg @ {url}", "-vv")
    assert re.search(r"X-Amz-Signature=(?!<redacted>)", r.output) is None, r.output
    assert moto_server.verified.count("presigned") >= 1 and moto_server.refused == []
    leaked = re.findall(r"Signature[=:]\s*([0-9a-f]{64})", r.output)
    assert not leaked, f"pip -vv printed {len(leaked)} SigV4 signature(s), e.g. after: " + r.output[
        max(0, r.output.find(leaked[0]) - 300) : r.output.find(leaked[0])
    ]
    cli.outputs.check()
