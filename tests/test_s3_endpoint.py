"""Issue 6 A3: S3 credentials are bound to the endpoint they were stored for.

An S3 connection has an optional endpoint (None = AWS; every ``https://s3.amazonaws.com`` and
``https://s3[.-]REGION.amazonaws.com`` counts as AWS). It serves a workspace only when both the
bucket and the endpoint match. The attack: a workspace definition (for example in a cloned
project's ``privpkg.toml``) that points a credentialed bucket at another endpoint. Before the fix
privpkg signed requests for it with the stored access key, so the other endpoint learned the
access key id and got signed requests it could replay against the real bucket.

The "other endpoint" is a small loopback HTTP server in this process that records every
request's Authorization header and query string (X-Amz-Credential). A control test binds a
connection to that recorder and shows it does see the access key when privpkg is meant to send
it, so "it saw nothing" is meaningful. The real endpoint is moto's S3 server.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from support.builds import Venv
from support.cli import PrivpkgCLI, signature_values
from support.feeds import ServedHTTP
from support.storage import MotoServer

from privpkg import envvars
from privpkg.testing import make_wheel


class Recorder:
    """A loopback HTTP server answering 403 to everything, recording what it was sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []  # method, path?query, Authorization
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                recorder.requests.append((self.command, self.path, self.headers.get("Authorization", "")))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                body = b"<Error><Code>AccessDenied</Code></Error>"
                self.send_response(403)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

            def log_message(self, *args: object) -> None:
                pass

        self.served = ServedHTTP(Handler)
        self.endpoint = self.served.base

    def saw(self, access_key: str) -> list[tuple[str, str, str]]:
        """Requests that carried the access key id (header SigV4 or presigned query)."""
        return [r for r in self.requests if access_key in r[1] or access_key in r[2]]

    def close(self) -> None:
        self.served.stop()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    try:
        yield rec
    finally:
        rec.close()


def store_s3(cli: PrivpkgCLI, moto: MotoServer, name: str, bucket: str, *endpoint: str) -> None:
    cli.outputs.add_secret(moto.secret_key)
    cli.ok("connection", "set", name, "--category", "S3", "--target", f"s3://{bucket}", "--username", moto.access_key,
           *endpoint, stdin=moto.secret_key + "\n")


def published_at_own_endpoint(cli: PrivpkgCLI, moto: MotoServer, tmp_path: Path) -> tuple[str, Path]:
    """A bucket with connection ``s3conn`` bound to moto's endpoint, and demo-pkg 1.0 published
    through workspace ``good`` (``s3://BUCKET/p`` at that endpoint). Returns (bucket, wheel)."""
    bucket = moto.create_bucket()
    store_s3(cli, moto, "s3conn", bucket, "--endpoint", moto.endpoint)
    wheel = make_wheel(tmp_path / "w", "demo-pkg", "1.0")
    cli.ok("workspace", "add", "good", "--s3", f"s3://{bucket}/p", "--endpoint-url", moto.endpoint)
    cli.ok("wheel", "add", wheel, "--workspace", "good")
    return bucket, wheel


def test_workspace_at_another_endpoint_gets_no_signed_request(privpkg_cli: PrivpkgCLI, moto_server: MotoServer, recorder: Recorder, tmp_path: Path) -> None:
    cli = privpkg_cli
    # Control: the workspace at the connection's own endpoint works.
    bucket, wheel = published_at_own_endpoint(cli, moto_server, tmp_path)
    assert cli.ok("resolve", f"privpkg://good/wheels/{wheel.name}").startswith(moto_server.endpoint + f"/{bucket}/p/wheels/")

    # The attack: a cloned project's privpkg.toml points the same bucket at another endpoint.
    project = tmp_path / "clone"
    (project / ".git").mkdir(parents=True)
    cli.ok("workspace", "add", "evil", "--s3", f"s3://{bucket}/p", "--endpoint-url", recorder.endpoint, "--project", cwd=project)
    want = f"no S3 credentials for {recorder.endpoint}/{bucket}"
    cli.fails(1, "resolve", f"privpkg://evil/wheels/{wheel.name}", match=[want, "'s3conn'", moto_server.endpoint], cwd=project)
    cli.fails(1, "wheel", "list", "--workspace", "evil", match=want, cwd=project)
    cli.fails(1, "wheel", "add", wheel, "--workspace", "evil", match=want, cwd=project)
    assert recorder.requests == [], f"the other endpoint was contacted: {recorder.requests}"
    # A regional spelling of AWS is not the moto endpoint either.
    cli.ok("workspace", "add", "aws", "--s3", f"s3://{bucket}", "--endpoint-url", "https://s3.eu-west-1.amazonaws.com")
    cli.fails(1, "resolve", f"privpkg://aws/wheels/{wheel.name}", match=f"no S3 credentials for https://s3.amazonaws.com/{bucket}")
    cli.outputs.check()


def test_pip_install_from_a_clone_sends_no_signed_request_to_another_endpoint(
    privpkg_cli: PrivpkgCLI, venv_privpkg_cloud: Venv, moto_server: MotoServer, recorder: Recorder, tmp_path: Path
) -> None:
    """The attack as a user meets it: in a cloned project whose ``privpkg.toml`` points the
    user's credentialed bucket at another endpoint (the recorder), ``pip install "demo-pkg @
    privpkg://evil/wheels/..."`` through the shim fails with one ``no S3 credentials for
    <endpoint>/<bucket>`` line, and the other endpoint gets no request at all (no signed URL, no
    access key id). Control: the same wheel through the user's own workspace installs."""
    cli = privpkg_cli
    bucket, wheel = published_at_own_endpoint(cli, moto_server, tmp_path)
    pip = [*venv_privpkg_cloud.pip, "install", "--no-cache-dir", "--no-index", "--disable-pip-version-check"]

    r = cli.tool([*pip, "--target", tmp_path / "t-good", f"demo-pkg @ privpkg://good/wheels/{wheel.name}"], cwd=tmp_path)
    assert r.returncode == 0 and "Successfully installed demo-pkg-1.0" in r.output, r.describe()

    clone = tmp_path / "clone"
    (clone / ".git").mkdir(parents=True)
    cli.ok("workspace", "add", "evil", "--s3", f"s3://{bucket}/p", "--endpoint-url", recorder.endpoint, "--project", cwd=clone)
    r = cli.tool([*pip, "--target", tmp_path / "t-evil", f"demo-pkg @ privpkg://evil/wheels/{wheel.name}"], cwd=clone)
    assert r.returncode != 0 and "Traceback" not in r.output, r.describe()
    want = f"no S3 credentials for {recorder.endpoint}/{bucket}"
    said = [ln for ln in r.output.splitlines() if want in ln]
    assert len(said) == 1, r.describe()
    # privpkg's part is that one line (pip shows it inside its "Could not install" error); it
    # names the connection and the command that would bind it, which the user must choose to run.
    assert [ln for ln in r.output.splitlines() if "privpkg: " in ln] == said, r.describe()
    assert "connection 's3conn'" in said[0] and moto_server.endpoint in said[0], said
    assert not (tmp_path / "t-evil").exists() or not any((tmp_path / "t-evil").iterdir()), "something was installed"
    assert recorder.requests == [], f"the other endpoint was contacted: {recorder.requests}"
    assert moto_server.access_key not in r.output and "X-Amz-" not in r.output, r.describe()
    cli.outputs.check()


def test_recorder_sees_the_access_key_when_the_connection_is_bound_to_it(privpkg_cli: PrivpkgCLI, moto_server: MotoServer, recorder: Recorder) -> None:
    """Control for the test above: the recorder does catch a signed request carrying the access
    key when a connection is bound to its endpoint (so an empty record means none was sent)."""
    cli = privpkg_cli
    store_s3(cli, moto_server, "rec", "rec-bucket", "--endpoint", recorder.endpoint)
    cli.ok("workspace", "add", "rec", "--s3", "s3://rec-bucket", "--endpoint-url", recorder.endpoint)
    res = cli("wheel", "list", "--workspace", "rec")
    assert res.returncode != 0
    assert recorder.saw(moto_server.access_key), recorder.requests
    cli.outputs.check()


def test_existing_aws_connection_and_doctor_migration(privpkg_cli: PrivpkgCLI, moto_server: MotoServer, tmp_path: Path) -> None:
    """A connection stored before endpoints existed (none stored = AWS) no longer serves a
    workspace at moto; the error and `doctor` both say exactly what to run, and running the
    command doctor printed makes it work."""
    cli = privpkg_cli
    bucket = moto_server.create_bucket()
    store_s3(cli, moto_server, "old", bucket)  # no --endpoint, as every S3 connection before this change
    cli.ok("workspace", "add", "ws", "--s3", f"s3://{bucket}", "--endpoint-url", moto_server.endpoint)
    cli.fails(1, "wheel", "list", "--workspace", "ws",
              match=[f"no S3 credentials for {moto_server.endpoint}/{bucket}", "'old' (https://s3.amazonaws.com)"])
    doctor = cli("doctor")
    fix = f"privpkg connection set old --update --keep-secret --endpoint {moto_server.endpoint}"
    line = next((ln for ln in doctor.stdout.splitlines() if fix in ln), None)
    assert line is not None, doctor.stdout
    assert line.startswith("warn") and "'old' has no endpoint stored" in line and "workspace 'ws'" in line
    cmd = shlex.split(line.split("run: ", 1)[1])
    assert cmd[0] == "privpkg"
    out = cli.ok(*cmd[1:])
    assert f"endpoint {moto_server.endpoint}" in out
    cli.ok("wheel", "list", "--workspace", "ws")  # served now: the empty bucket lists fine
    assert fix not in cli("doctor").stdout, "doctor is satisfied after the fix"
    cli.outputs.check()


def test_connection_set_endpoint_rules(privpkg_cli: PrivpkgCLI) -> None:
    cli = privpkg_cli
    secret = "s3-endpoint-rules-secret-0123456789"
    cli.outputs.add_secret(secret)
    base = ["connection", "set", "c", "--category", "S3", "--target", "s3://b", "--username", "AKID"]
    cli.fails(2, *base, "--endpoint", "http://minio.example.com", stdin=secret, match="refusing plain-http S3 endpoint")
    cli.fails(2, *base, "--endpoint", "ftp://minio.example.com", stdin=secret, match="unsupported S3 endpoint scheme")
    cli.fails(2, "connection", "set", "f", "--target", "https://h.example/", "--endpoint", "https://minio.example.com",
              stdin=secret, match="--endpoint is for S3 connections")
    cli.fails(2, *base, "--host-wide", stdin=secret, match="--host-wide is for feed connections")
    cli.ok(*base, "--endpoint", "http://minio.example.com:9000", "--allow-http", stdin=secret)
    shown = json.loads(cli.ok("connection", "show", "c", "--json"))
    assert shown["endpoint"] == "http://minio.example.com:9000" and shown["host_wide"] is False
    # Rotating the secret keeps the endpoint (and its --allow-http consent).
    cli.ok("connection", "set", "c", "--update", stdin=secret + "-2")
    assert json.loads(cli.ok("connection", "list", "--json"))[0]["endpoint"] == "http://minio.example.com:9000"
    cli.outputs.add_secret(secret + "-2")
    cli.outputs.check()


def test_every_aws_spelling_is_served_by_an_aws_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process (no AWS is reachable here): credential selection only, no request is made."""
    from typing import cast

    import boto3  # noqa: F401 - in the [test] extra: a missing boto3 fails here, never skips

    from privpkg import connections
    from privpkg.access import open_workspace_storage
    from privpkg.errors import PrivpkgError
    from privpkg.storage.s3 import S3Storage
    from privpkg.workspace import Workspace

    def opened(endpoint: str | None) -> S3Storage:  # the backend, with the credential privpkg picks
        return cast(S3Storage, open_workspace_storage(Workspace("w", "s3", "s3://b/prefix", endpoint)))

    monkeypatch.setenv(envvars.HOME, str(tmp_path / "home"))
    for var in (envvars.MASTER_KEY, envvars.CONNECTIONS, *envvars.AZURE_ENDPOINTS):
        monkeypatch.delenv(var, raising=False)
    connections.set_connection("aws", "S3", "s3://b", "PAT", value="aws-secret-key-0123456789", username="AKIAEXAMPLE")
    for endpoint in (None, "https://s3.amazonaws.com", "https://s3.eu-central-1.amazonaws.com", "https://s3-us-west-2.amazonaws.com/"):
        st = opened(endpoint)
        st._s3()
        assert st._conn_name == "aws"
    for endpoint in ("https://s3.amazonaws.com.evil.io", "http://s3.amazonaws.com", "https://minio.example.com"):
        with pytest.raises(PrivpkgError, match="no S3 credentials for"):
            opened(endpoint)._s3()


# --------------------------------------------------------------------------------------------
# Red team F2: the ambient AWS configuration must not move an S3 client to another endpoint
# --------------------------------------------------------------------------------------------

AWS_KEY_ID = "AKIAPRIVPKGTEST00001"


def _signed_in_subprocess(cli: PrivpkgCLI, url: str) -> str:
    """resolve_url(check=False) in a fresh process (boto3's default session caches the config
    file per process): the presigned URL privpkg would hand to pip, made offline."""
    import subprocess
    import sys

    prog = "from privpkg.resolve import resolve_url; import sys; print(resolve_url(sys.argv[1], check=False))"
    r = subprocess.run([sys.executable, "-c", prog, url], env=cli.env, capture_output=True, text=True, timeout=60, check=False)
    cli.outputs.add("resolve_url", r.stdout + r.stderr, signature_values(r.stdout))
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.parametrize("how", ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "aws-config", "aws-config-profile"])
def test_aws_bound_keys_ignore_configured_endpoint_urls(privpkg_cli: PrivpkgCLI, recorder: Recorder, tmp_path: Path, how: str) -> None:
    """A connection with no --endpoint is bound to AWS. botocore >= 1.31 takes the endpoint of a
    client created with endpoint_url=None from AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or
    ``endpoint_url`` in ~/.aws/config (the default profile or the one AWS_PROFILE names), so
    before the fix privpkg signed URLs for that host, uploaded private wheels to it, listed and
    tested the connection there, over plain http with no --allow-http: the recorder (a real
    listener standing in for that host) saw the AWS access key id on every command. Now every
    client privpkg builds goes to AWS only (nothing reaches AWS from here: those commands fail
    with one line, and the recorder sees nothing)."""
    cli = privpkg_cli
    secret = "aws-secret-" + "x" * 30
    cli.outputs.add_secret(secret)
    cli.ok("connection", "set", "aws", "--category", "S3", "--target", "s3://corp-wheels", "--username", AWS_KEY_ID, stdin=secret + "\n")
    cli.ok("workspace", "add", "ml", "--s3", "s3://corp-wheels")
    if how.startswith("aws-config"):
        profile = "default" if how == "aws-config" else "dev"
        aws = tmp_path / "aws-config"
        aws.write_text(f"[{'default' if profile == 'default' else 'profile dev'}]\nendpoint_url = {recorder.endpoint}\n"
                       f"[services s3dev]\ns3 =\n  endpoint_url = {recorder.endpoint}\n")
        extra = {"AWS_CONFIG_FILE": str(aws)} | ({"AWS_PROFILE": "dev"} if profile == "dev" else {})
    else:
        extra = {how: recorder.endpoint}
    cli = PrivpkgCLI({**cli.env, **extra}, cli.outputs)

    signed = _signed_in_subprocess(cli, "privpkg://ml/wheels/x-1.0-py3-none-any.whl")
    assert signed.startswith("https://corp-wheels.s3.amazonaws.com/wheels/x-1.0-py3-none-any.whl?"), signed[:60]
    wheel = make_wheel(tmp_path / "w", "demo-pkg", "1.0")
    for args in (["wheel", "add", wheel, "--workspace", "ml"], ["wheel", "list", "--workspace", "ml"],
                 ["resolve", f"privpkg://ml/wheels/{wheel.name}"]):
        res = cli(*args)
        assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr  # AWS is unreachable here
    res = cli("connection", "test", "aws", "--timeout", "5")
    assert res.returncode != 0 and recorder.endpoint not in res.stdout, res.stdout + res.stderr
    assert recorder.requests == [], f"{recorder.endpoint} got requests signed with the AWS key: {recorder.requests[:2]}"
    cli.outputs.check()


@pytest.mark.parametrize("config", [
    "[default]\ns3 =\n  addressing_style = virtual\n",
    "[default]\nuse_dualstack_endpoint = true\ns3 =\n  addressing_style = virtual\n  use_accelerate_endpoint = true\n",
], ids=["virtual", "accelerate-dualstack-fips"])
def test_explicit_endpoint_keeps_its_host_whatever_the_aws_config_says(privpkg_cli: PrivpkgCLI, tmp_path: Path, config: str) -> None:
    """For a connection bound to an explicit endpoint, ~/.aws/config cannot move the requests to
    another host either: before the fix ``addressing_style = virtual`` signed for
    https://corp-wheels.minio.corp.example/ (another host than the one the key is bound to), and
    accelerate made botocore refuse with a traceback. privpkg fixes path style and turns the
    host-rewriting options off for explicit endpoints."""
    cli = privpkg_cli
    secret = "minio-secret-" + "y" * 30
    cli.outputs.add_secret(secret)
    cli.ok("connection", "set", "minio", "--category", "S3", "--target", "s3://corp-wheels", "--username", AWS_KEY_ID,
           "--endpoint", "https://minio.corp.example", stdin=secret + "\n")
    cli.ok("workspace", "add", "ml", "--s3", "s3://corp-wheels", "--endpoint-url", "https://minio.corp.example")
    aws = tmp_path / "aws-config"
    aws.write_text(config)
    cli = PrivpkgCLI({**cli.env, "AWS_CONFIG_FILE": str(aws), "AWS_USE_FIPS_ENDPOINT": "true"}, cli.outputs)
    signed = _signed_in_subprocess(cli, "privpkg://ml/wheels/x-1.0-py3-none-any.whl")
    assert signed.startswith("https://minio.corp.example/corp-wheels/wheels/x-1.0-py3-none-any.whl?"), signed[:60]
    cli.outputs.check()


def test_missing_aws_profile_is_one_line(privpkg_cli: PrivpkgCLI) -> None:
    """AWS_PROFILE naming a profile that does not exist: botocore refuses to build any client;
    privpkg says so in one line (it used to print botocore's traceback)."""
    cli = privpkg_cli
    cli.outputs.add_secret("aws-secret-" + "z" * 30)
    cli.ok("connection", "set", "aws", "--category", "S3", "--target", "s3://corp-wheels", "--username", AWS_KEY_ID,
           stdin="aws-secret-" + "z" * 30 + "\n")
    cli.ok("workspace", "add", "ml", "--s3", "s3://corp-wheels")
    cli = PrivpkgCLI({**cli.env, "AWS_PROFILE": "no-such-profile"}, cli.outputs)
    cli.fails(1, "resolve", "privpkg://ml/wheels/x-1.0-py3-none-any.whl", match=["ProfileNotFound", "no-such-profile"])
    res = cli("connection", "test", "aws")
    assert res.returncode != 0 and "ProfileNotFound" in res.stdout + res.stderr and "Traceback" not in res.stderr, res.stdout + res.stderr
    cli.outputs.check()
