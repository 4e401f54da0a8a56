"""``privpkg connection test``: OK only when the target itself answered 2xx to a request that
carried the credential; every way a sign-in page, proxy or redirect can fake success gets its own
verdict and exit 1; ``--timeout`` bounds the whole exchange; storage connections are tested with
their storage API (real Azurite, real moto in its authenticating mode). Every output is grepped
for every secret the test handled.

The feed-side servers here are small real HTTP servers on loopback ports (in this process,
stopped in teardown); the CLI runs as a subprocess against them.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.cli import PrivpkgCLI
from support.feeds import ServedHTTP
from support.storage import Azurite

from privpkg.testing import free_port, start_server, stop_process

PAT = "conn-test-PAT-" + secrets.token_urlsafe(18)
WRONG = "conn-test-WRONG-" + secrets.token_urlsafe(18)
#: A password a malicious redirect puts into its Location; it must never be echoed.
LOCATION_PW = "loc-pw-" + secrets.token_urlsafe(12)
TRICKLE_DELAY = 0.3  # seconds between bytes of the slow server's answer
TRICKLE = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nok"  # ~20 s in all


class Feed:
    """A loopback feed under /feed/ that checks HTTP Basic with PAT, plus the tricks a proxy or
    sign-in front end plays. ``log`` records (path, whether the right credential came)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, bool]] = []
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _authed(self) -> bool:
                want = "Basic " + base64.b64encode(f"__token__:{PAT}".encode()).decode()
                return self.headers.get("Authorization") == want

            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path, authed = self.path, self._authed()
                feed.log.append((path, authed))
                other_host = f"http://localhost:{feed.port}"  # another host name for the same server
                if path == "/feed/simple":  # in the target: the credential is sent again
                    return self._send(301, headers={"Location": "/feed/simple/"})
                if path == "/feed/simple/":
                    return self._send(200, b"<a href='x'>x</a>") if authed else self._send(401, headers={"WWW-Authenticate": "Basic"})
                if path == "/feed/interstitial/":  # Azure DevOps-style sign-in page for a bad PAT
                    return self._send(203, b"<html>Sign in</html>")
                if path == "/feed/sso/":
                    return self._send(302, headers={"Location": f"{other_host}/login?next=/feed/"})
                if path == "/feed/sso-userinfo/":
                    return self._send(302, headers={"Location": f"http://admin:{LOCATION_PW}@localhost:{feed.port}/login"})
                if path == "/feed/to-login/":  # same host, outside the target
                    return self._send(302, headers={"Location": "/login?next=/feed/"})
                if path.startswith("/login"):
                    return self._send(200, b"<html>Please sign in</html>")
                if path == "/feed/loop/":
                    return self._send(302, headers={"Location": "/feed/loop/"})
                if path == "/feed/forbidden/":
                    return self._send(403)
                if path == "/feed/slow/":
                    try:
                        for i in range(len(TRICKLE)):
                            self.wfile.write(TRICKLE[i : i + 1])
                            self.wfile.flush()
                            time.sleep(TRICKLE_DELAY)
                    except OSError:
                        pass  # the client gave up, as it should
                    return None
                return self._send(404)

        class Server(ThreadingHTTPServer):
            block_on_close = False  # the slow handler may still be trickling at teardown

        served = ServedHTTP(Server(("127.0.0.1", 0), Handler))
        self.port, self.base, self.stop = served.port, served.base, served.stop


@pytest.fixture
def tricky_feed() -> Iterator[Feed]:
    feed = Feed()
    try:
        yield feed
    finally:
        feed.stop()


@pytest.fixture
def cli(checked_cli: Callable[..., PrivpkgCLI]) -> PrivpkgCLI:
    return checked_cli(PAT, WRONG, LOCATION_PW)


def _test(cli: PrivpkgCLI, *args: str) -> subprocess.CompletedProcess[str]:
    res = cli("connection", "test", *args)
    assert res.stderr == "", res.stderr
    assert len(res.stdout.splitlines()) == 1, res.stdout
    return res


def test_ok_only_when_the_target_answered_with_the_credential(cli: PrivpkgCLI, tricky_feed: Feed) -> None:
    cli.ok("connection", "set", "feed", "--target", tricky_feed.base + "/feed/", stdin=PAT)
    # A redirect inside the target (/simple -> /simple/) is followed with the credential sent again,
    # as pip does on the same host; the old probe dropped it there and reported REJECTED.
    res = _test(cli, "feed", "--url", tricky_feed.base + "/feed/simple")
    assert res.returncode == 0 and res.stdout.startswith("OK: ") and "HTTP 200" in res.stdout and "after 1 redirect" in res.stdout
    assert tricky_feed.log[-2:] == [("/feed/simple", True), ("/feed/simple/", True)]

    cli.ok("connection", "set", "bad", "--target", tricky_feed.base + "/feed/", "--username", "someone", stdin=WRONG)
    res = _test(cli, "bad", "--url", tricky_feed.base + "/feed/simple/")
    assert res.returncode == 1 and res.stdout.startswith("REJECTED: ") and "401" in res.stdout


@pytest.mark.parametrize(
    ("path", "verdict", "words"),
    [
        ("/feed/interstitial/", "NOT AUTHORITATIVE: ", ["203", "not verified"]),
        ("/feed/sso/", "SIGN-IN REDIRECT: ", ["HTTP 302", "http://localhost:", "another host", "not sent there"]),
        ("/feed/sso-userinfo/", "SIGN-IN REDIRECT: ", ["http://***@localhost:"]),
        ("/feed/to-login/", "CREDENTIAL DROPPED: ", ["HTTP 302", "/login?***", "outside the connection's target", "not verified"]),
        ("/feed/loop/", "TOO MANY REDIRECTS: ", ["more than 5"]),
        ("/feed/forbidden/", "FORBIDDEN: ", ["403"]),
        ("/feed/missing/", "NOT FOUND: ", ["404"]),
    ],
    ids=["203", "other-host", "other-host-userinfo", "same-host-login", "loop", "403", "404"],
)
def test_fake_success_gets_its_own_verdict(cli: PrivpkgCLI, tricky_feed: Feed, path: str, verdict: str, words: list[str]) -> None:
    """A sign-in page reached by a redirect, or a 203 from a proxy, answers 2xx; the old probe
    (urllib following redirects) said OK for each. None of them proves the PAT works."""
    cli.ok("connection", "set", "feed", "--target", tricky_feed.base + "/feed/", stdin=PAT)
    res = _test(cli, "feed", "--url", tricky_feed.base + path)
    assert res.returncode == 1, res.stdout
    assert res.stdout.startswith(verdict), res.stdout
    for w in words:
        assert w in res.stdout, (w, res.stdout)
    # The credential never left the target: nothing outside /feed/ was even asked.
    assert all(p.startswith("/feed/") for p, _ in tricky_feed.log), tricky_feed.log
    assert LOCATION_PW not in res.stdout


def test_timeout_is_a_total_deadline(cli: PrivpkgCLI, tricky_feed: Feed) -> None:
    """A server that trickles one byte every 0.3 s never trips a per-read timeout; --timeout 2
    must still end the whole exchange after about 2 s (the old probe waited ~20 s, then said OK)."""
    cli.ok("connection", "set", "feed", "--target", tricky_feed.base + "/feed/", stdin=PAT)
    start = time.monotonic()
    res = _test(cli, "feed", "--url", tricky_feed.base + "/feed/slow/", "--timeout", "2")
    elapsed = time.monotonic() - start
    assert res.returncode == 1 and res.stdout.startswith("TIMED OUT: "), res.stdout
    assert "within 2 s" in res.stdout
    assert elapsed < 2 + 4, f"took {elapsed:.1f} s"  # 2 s deadline plus interpreter start-up
    assert len(TRICKLE) * TRICKLE_DELAY > 3 * 2  # the server alone would take far longer


def test_timeout_and_url_checks(cli: PrivpkgCLI, tricky_feed: Feed) -> None:
    cli.ok("connection", "set", "feed", "--target", tricky_feed.base + "/feed/", stdin=PAT)
    for bad in ("0", "-1", "inf", "nan"):
        cli.fails(2, "connection", "test", "feed", "--timeout", bad, match="--timeout must be a positive number")
    cli.fails(2, "connection", "test", "feed", "--url", tricky_feed.base + "/other/", match="not under the connection's target")
    cli.fails(2, "connection", "test", "feed", "--url", f"http://u:{LOCATION_PW}@127.0.0.1:{tricky_feed.port}/other/",
              match="http://***@127.0.0.1")
    port = free_port()
    cli.ok("connection", "set", "down", "--target", f"http://127.0.0.1:{port}/x", stdin=PAT)
    res = _test(cli, "down")
    assert res.returncode == 1 and res.stdout.startswith("UNREACHABLE: ")


# --- storage connections: their own API, not HTTP Basic --------------------------------------


def test_azure_blob_is_tested_with_the_blob_api(cli: PrivpkgCLI, azurite: Azurite) -> None:
    """Right key: OK (List Blobs succeeded). Wrong key: REJECTED. Missing container: NOT FOUND.
    The old probe sent the key as an HTTP Basic password to the container URL."""
    cli.outputs.add_secret(azurite.key)
    url = azurite.create_container()
    cli.ok("connection", "set", "blob", "--category", "AzureBlob", "--target", url, stdin=azurite.key)
    res = _test(cli, "blob")
    assert res.returncode == 0 and res.stdout.startswith("OK: ") and "list blobs" in res.stdout, res.stdout

    wrong = base64.b64encode(secrets.token_bytes(64)).decode()
    cli.outputs.add_secret(wrong)
    cli.ok("connection", "set", "blob", "--update", stdin=wrong)
    res = _test(cli, "blob")
    # Azure answers AuthenticationFailed, Azurite AuthorizationFailure: both mean a wrong key.
    assert res.returncode == 1 and res.stdout.startswith("REJECTED: "), res.stdout
    assert "AuthenticationFailed" in res.stdout or "AuthorizationFailure" in res.stdout, res.stdout

    cli.ok("connection", "set", "gone", "--category", "AzureBlob", "--target", azurite.container_url("no-such-container"), stdin=azurite.key)
    res = _test(cli, "gone")
    assert res.returncode == 1 and res.stdout.startswith("NOT FOUND: ") and "ContainerNotFound" in res.stdout, res.stdout

    # An account-level target lists containers instead.
    cli.ok("connection", "set", "account", "--category", "AzureBlob", "--target", azurite.endpoint, stdin=azurite.key)
    res = _test(cli, "account")
    assert res.returncode == 0 and "list containers" in res.stdout, res.stdout
    cli.fails(2, "connection", "test", "blob", "--url", url, match="--url is for feed connections")


def test_s3_target_must_name_a_bucket_with_s3_scheme(cli: PrivpkgCLI) -> None:
    """An S3 target is s3://BUCKET; the endpoint is bound with --endpoint, never in the target."""
    cli.fails(2, "connection", "set", "s3", "--category", "S3", "--target", f"http://127.0.0.1:{free_port()}/bucket",
              "--username", "AKID", match=["an S3 target is s3://BUCKET", "--endpoint URL"], stdin=PAT)


class AuthMoto:
    """moto's S3 server in its authenticating mode: after the first INITIAL_NO_AUTH_ACTION_COUNT
    requests (used here to create IAM users), every request must be signed by a known key with
    the right secret. (moto's default mode accepts any secret; see FACTS.md.)"""

    def __init__(self, tmp: Path) -> None:
        import boto3

        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "5"  # the five IAM calls below
        self.proc, self.port = start_server(
            lambda p: [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(p)], tmp / "moto.log", "moto (auth)", env=env
        )
        self.endpoint = f"http://127.0.0.1:{self.port}"
        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name="us-east-1",
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="reader")
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        iam.put_user_policy(UserName="reader", PolicyName="s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        iam.create_user(UserName="nobody")  # a valid key with no permission at all
        nobody = iam.create_access_key(UserName="nobody")["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        self.nobody_key, self.nobody_secret = nobody["AccessKeyId"], nobody["SecretAccessKey"]
        self.bucket = f"wheels-{secrets.token_hex(5)}"
        boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=self.access_key,
                     aws_secret_access_key=self.secret_key).create_bucket(Bucket=self.bucket)


@pytest.fixture
def auth_moto(tmp_path: Path) -> Iterator[AuthMoto]:
    server = AuthMoto(tmp_path)
    try:
        yield server
    finally:
        stop_process(server.proc)


def test_s3_is_tested_with_list_objects(cli: PrivpkgCLI, auth_moto: AuthMoto) -> None:
    """Right secret: OK (ListObjectsV2). Wrong secret for the same key id: REJECTED
    (SignatureDoesNotMatch), which moto checks only in its authenticating mode. A key without
    permission: FORBIDDEN. A missing bucket: NOT FOUND. The old probe sent an HTTP Basic GET."""
    wrong = ("x" if auth_moto.secret_key[0] != "x" else "y") + auth_moto.secret_key[1:]  # never the right one
    for s in (auth_moto.secret_key, auth_moto.nobody_secret, wrong):
        cli.outputs.add_secret(s)
    target = f"s3://{auth_moto.bucket}"
    at = ("--endpoint", auth_moto.endpoint)
    cli.ok("connection", "set", "s3", "--category", "S3", "--target", target, *at, "--username", auth_moto.access_key, stdin=auth_moto.secret_key)
    res = _test(cli, "s3")
    assert res.returncode == 0 and res.stdout.startswith("OK: ") and "ListObjectsV2" in res.stdout, res.stdout
    assert f"at {auth_moto.endpoint}" in res.stdout, res.stdout

    cli.ok("connection", "set", "s3", "--update", stdin=wrong)
    res = _test(cli, "s3")
    assert res.returncode == 1 and res.stdout.startswith("REJECTED: ") and "SignatureDoesNotMatch" in res.stdout, res.stdout

    cli.ok("connection", "set", "nobody", "--category", "S3", "--target", target, *at, "--username", auth_moto.nobody_key, stdin=auth_moto.nobody_secret)
    res = _test(cli, "nobody")
    assert res.returncode == 1 and res.stdout.startswith("FORBIDDEN: "), res.stdout

    cli.ok("connection", "set", "nobucket", "--category", "S3", "--target", f"s3://no-such-bucket-{secrets.token_hex(3)}", *at,
           "--username", auth_moto.access_key, stdin=auth_moto.secret_key)
    res = _test(cli, "nobucket")
    assert res.returncode == 1 and res.stdout.startswith("NOT FOUND: "), res.stdout


def test_storage_timeout_is_a_total_deadline(cli: PrivpkgCLI, tmp_path: Path) -> None:
    """A storage endpoint that accepts the connection and never answers: TIMED OUT after --timeout."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    try:
        cli.ok("connection", "set", "s3", "--category", "S3", "--target", "s3://bucket", "--endpoint", f"http://127.0.0.1:{port}",
               "--username", "AKID", stdin=PAT)
        cli.ok("connection", "set", "blob", "--category", "AzureBlob", "--target", f"http://127.0.0.1:{port}/acct/c",
               stdin=base64.b64encode(b"k" * 64).decode())
        for name in ("s3", "blob"):
            start = time.monotonic()
            res = _test(cli, name, "--timeout", "1.5")
            assert res.returncode == 1 and res.stdout.startswith("TIMED OUT: "), res.stdout
            assert time.monotonic() - start < 1.5 + 6
    finally:
        listener.close()


def test_old_moto_mode_would_not_notice(moto_server: object) -> None:
    """Why the S3 test above uses the authenticating mode: the default moto accepts a wrong
    secret (FACTS.md). If this ever fails, moto started checking, and the note can go."""
    import boto3
    from support.storage import MotoServer

    assert isinstance(moto_server, MotoServer)
    bucket = moto_server.create_bucket()
    client = boto3.client("s3", endpoint_url=moto_server.endpoint, region_name="us-east-1",
                          aws_access_key_id=moto_server.access_key, aws_secret_access_key="not-the-secret")
    assert client.list_objects_v2(Bucket=bucket, MaxKeys=1)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_help_names_every_verdict(cli: PrivpkgCLI) -> None:
    from privpkg.probe import VERDICTS

    text = " ".join(cli.ok("connection", "test", "--help").split())
    for word in VERDICTS:
        assert word in text, word
