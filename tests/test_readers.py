"""Issue 8 item 6: readers without the account key or an IAM user's secret.

- S3 workspaces fall back to AWS's default credential chain (here: a shared profile in a temp
  dir, with a session token) when no S3 connection matches; moto serves the bucket. moto checks
  no signature, so the presigned URL is checked with botocore's own signer and the profile's
  secret (test_storage_s3.presigned_signature_ok).
- Ambient credentials serve only the user's own workspaces on AWS / Azure Blob endpoints or ones
  the user lists; moto and Azurite run on loopback, so the tests list them as a user would. A
  refused workspace makes no request: the "endpoint" is a loopback socket that records every
  connection it accepts.
- Signing with ambient credentials is bounded by pip's --timeout: botocore's container-credentials
  endpoint (allowed on loopback) is a socket that accepts and never answers.
- An AzureBlob connection may hold a container SAS token (Azurite, SAS made with its well-known
  key); a read-only one installs, and wheel add says it needs c or w.
- DefaultAzureCredential: Azurite 3.35 rejects user-delegation SAS from the SDK (FACTS.md) and no
  Entra ID is reachable here, so only the selection and the refusals are tested, in-process and
  through the CLI; the token request itself is not.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.builds import Venv
from support.cli import PrivpkgCLI
from support.env import Result
from support.storage import AZURITE_KEY, Azurite, MotoServer
from test_storage_s3 import presigned_signature_ok

from privpkg import envvars
from privpkg.testing import make_wheel

AKID = "ASIAPRIVPKGREADER001"
SECRET = "reader-secret-0123456789abcdefghijklmnopqrstu"
TOKEN = "reader-session-token-" + "Zm9vYmFy" * 8


class Listener:
    """A loopback TCP socket that records every connection it accepts and never answers (a
    stalled endpoint, and proof of "no request" when it records none)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)  # held open, never answered

    def close(self) -> None:
        self.sock.close()
        for c in self.accepted:
            c.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    try:
        yield lst
    finally:
        lst.close()


def aws_profile(tmp_path: Path) -> dict[str, str]:
    """A shared credentials file with a session token, as `aws sso login` or `aws configure`
    leave one, selected by AWS_PROFILE; no other AWS source (the metadata service is off)."""
    aws = tmp_path / "aws"
    aws.mkdir()
    (aws / "credentials").write_text(f"[reader]\naws_access_key_id = {AKID}\naws_secret_access_key = {SECRET}\naws_session_token = {TOKEN}\n")
    (aws / "config").write_text("[profile reader]\nregion = us-east-1\n")
    return {"AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"), "AWS_CONFIG_FILE": str(aws / "config"),
            "AWS_PROFILE": "reader", "AWS_EC2_METADATA_DISABLED": "true"}


def trust(cli: PrivpkgCLI, *endpoints: str) -> None:
    """List ``endpoints`` in the user's workspaces.toml, as a user with a private S3/Azure endpoint would."""
    user = Path(cli.env[envvars.HOME]) / "workspaces.toml"
    old = user.read_text() if user.exists() else ""
    user.write_text(f"trusted_endpoints = {list(endpoints)!r}\n".replace("'", '"') + old)


def test_s3_profile_with_session_token_publishes_resolves_and_installs(
    privpkg_cli: PrivpkgCLI, moto_server: MotoServer, venv_privpkg_cloud: Venv, tmp_path: Path
) -> None:
    cli = privpkg_cli
    cli.env.update(aws_profile(tmp_path))
    cli.outputs.add_secret(SECRET)
    bucket = moto_server.create_bucket()
    cli.ok("workspace", "add", "team", "--s3", f"s3://{bucket}/p", "--endpoint-url", moto_server.endpoint)
    # moto is on loopback: without the user's listing, the chain is not used and nothing is sent.
    wheel = make_wheel(tmp_path / "w", "reader-pkg", "1.0")
    cli.fails(1, "wheel", "add", wheel, "--workspace", "team",
              match=["no S3 credentials", "not using your AWS default credentials", "is not an AWS endpoint", "trusted_endpoints"])
    trust(cli, moto_server.endpoint)
    url = cli.ok("wheel", "add", wheel, "--workspace", "team").strip().splitlines()[-1]
    assert url == f"privpkg://team/wheels/{wheel.name}"

    signed = cli.ok("resolve", url).strip()
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(signed).query))
    assert q["X-Amz-Credential"].startswith(AKID + "/"), "signed with the profile's key"
    assert q["X-Amz-Security-Token"] == TOKEN, "the profile's session token rides along"
    assert presigned_signature_ok(signed, AKID, SECRET) is None
    assert presigned_signature_ok(signed, AKID, "another-secret") == "SignatureDoesNotMatch"

    r = cli.tool([*venv_privpkg_cloud.pip, "install", "--no-cache-dir", "--no-index", "--target", tmp_path / "t", f"reader-pkg @ {url}"])
    assert r.returncode == 0 and "Successfully installed reader-pkg-1.0" in r.output, r.describe()
    assert TOKEN not in r.output and "X-Amz-" not in r.output, r.describe()
    for label, text, _ in cli.outputs.items:
        if not label.startswith("privpkg resolve"):
            assert TOKEN not in text, label
    assert cli.outputs.check() >= 1


def test_ambient_credentials_never_serve_a_project_file_or_a_foreign_endpoint(
    privpkg_cli: PrivpkgCLI, venv_privpkg_cloud: Venv, listener: Listener, tmp_path: Path
) -> None:
    cli = privpkg_cli
    cli.env.update(aws_profile(tmp_path))
    cli.outputs.add_secret(SECRET)
    cli.outputs.add_secret(TOKEN)
    whl = "x-1.0-py3-none-any.whl"

    # The user's own workspace at an endpoint the user did not list.
    cli.ok("workspace", "add", "mine", "--s3", "s3://bkt", "--endpoint-url", listener.endpoint)
    for args in (["resolve", f"privpkg://mine/wheels/{whl}"], ["wheel", "list", "--workspace", "mine"]):
        cli.fails(1, *args, match=[f"no S3 credentials for {listener.endpoint}/b", f"{listener.endpoint} is not an AWS endpoint",
                                   "trusted_endpoints", envvars.TRUSTED_ENDPOINTS])

    # A cloned project's workspaces: never, even at an endpoint the user listed, even on AWS.
    clone = tmp_path / "clone"
    (clone / ".git").mkdir(parents=True)
    cli.ok("workspace", "add", "evil", "--s3", "s3://bkt", "--endpoint-url", listener.endpoint, "--project", cwd=clone)
    cli.ok("workspace", "add", "evil-aws", "--s3", "s3://bkt", "--project", cwd=clone)
    # A project file cannot list endpoints: the key is ignored with a warning.
    project_file = clone / "privpkg.toml"
    committed = project_file.read_text()
    project_file.write_text(f'trusted_endpoints = ["{listener.endpoint}"]\n' + committed)
    res = cli("resolve", f"privpkg://mine/wheels/{whl}", cwd=clone)
    assert res.returncode == 1 and "trusted_endpoints: only read from the user config" in res.stderr, res.stderr
    assert f"{listener.endpoint} is not an AWS endpoint" in res.stderr.splitlines()[-1], res.stderr
    project_file.write_text(committed)
    trust(cli, listener.endpoint)
    for ws in ("evil", "evil-aws"):
        cli.fails(1, "resolve", f"privpkg://{ws}/wheels/{whl}", cwd=clone,
                  match=["no S3 credentials", "not using your AWS default credentials: a project file cannot give them",
                         f"workspace {ws!r}", str(clone / "privpkg.toml")])
    r = cli.tool([*venv_privpkg_cloud.pip, "install", "--no-cache-dir", "--no-index", "--target", tmp_path / "t",
                  f"x @ privpkg://evil/wheels/{whl}"], cwd=clone)
    said = [ln for ln in r.output.splitlines() if "a project file cannot give them" in ln]
    assert r.returncode != 0 and len(said) == 1 and "Traceback" not in r.output, r.describe()
    assert listener.accepted == [], "a refused workspace's endpoint was contacted"

    # Control: the listed endpoint in the user's own workspace does get a request (the socket
    # never answers, so the command is stopped once it connected).
    proc = subprocess.Popen(cli.argv("wheel", "list", "--workspace", "mine"), env=cli.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not listener.accepted and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    assert listener.accepted, "the control request never came"
    cli.outputs.check()


def _timed_against_baseline(cli: PrivpkgCLI, pip: list[Any], baseline_ws: str, ws: str) -> tuple[Result, Result, float, float]:
    """pip installing a wheel of ``baseline_ws`` (refused before any network: the baseline) and
    then one of ``ws``; both results and how long each took, so a test compares the difference
    whatever the machine's load."""
    runs: list[tuple[Result, float]] = []
    for name in (baseline_ws, ws):
        started = time.monotonic()
        res = cli.tool([*pip, f"x @ privpkg://{name}/wheels/x-1.0-py3-none-any.whl"])
        runs.append((res, time.monotonic() - started))
    (base, baseline), (r, took) = runs
    return base, r, took, baseline


@pytest.mark.parametrize("pip_env", ["venv_privpkg_cloud", "venv_pip231_shim"])
def test_signing_with_ambient_credentials_is_bounded_by_pips_timeout(
    privpkg_cli: PrivpkgCLI, pip_env: str, listener: Listener, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The chain's container-credentials fetch goes to a loopback socket that never answers
    (botocore allows loopback for AWS_CONTAINER_CREDENTIALS_FULL_URI). botocore alone tries 3
    times with 2 s each; pip's --timeout 1 stops signing after about 1 s, in pip's process (the
    newest pip with privpkg) and in privpkg's own interpreter (pip 23.1 with a `setup pip
    --python` copy of the shim, which passes the timeout along)."""
    venv_privpkg_cloud: Venv = request.getfixturevalue(pip_env)
    cli = privpkg_cli
    cli.env.update({"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{listener.endpoint}/creds", "AWS_EC2_METADATA_DISABLED": "true",
                    "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none")})
    cli.ok("workspace", "add", "aws", "--s3", "s3://some-bucket")  # AWS itself: the chain is allowed
    # Baseline: the same pip run failing without any network (an endpoint the chain may not use),
    # so the difference below is what signing took, whatever the machine's load.
    cli.ok("workspace", "add", "near", "--s3", "s3://some-bucket", "--endpoint-url", "http://127.0.0.1:9")
    pip = [*venv_privpkg_cloud.pip, "install", "--no-cache-dir", "--no-index", "--retries", "0", "--target", tmp_path / "t", "--timeout", "1"]
    base, r, took, baseline = _timed_against_baseline(cli, pip, "near", "aws")
    assert base.returncode != 0 and "is not an AWS endpoint" in base.output, base.describe()
    assert r.returncode != 0 and "Traceback" not in r.output, r.describe()
    said = [ln for ln in r.output.splitlines() if "getting AWS default credentials for s3://some-bucket did not finish within 1 s" in ln]
    assert len(said) == 1, r.describe()
    assert listener.accepted, "the chain did not reach the container endpoint"
    # botocore alone: 3 tries of 2 s and two 1 s pauses (about 9 s measured).
    assert took - baseline < 4, f"pip took {took:.1f} s, {baseline:.1f} s without signing"
    cli.outputs.check()


def test_user_delegation_key_fetch_is_bounded_by_pips_timeout(privpkg_cli: PrivpkgCLI, venv_pip231_shim: Venv, tmp_path: Path) -> None:
    """DefaultAzureCredential's token command (`az account get-access-token`, a stand-in that
    hangs) is cut off at pip's --timeout. The shim copy signs in this checkout's interpreter,
    which has azure-identity; nothing reaches Azure (no token was ever returned)."""
    cli = privpkg_cli
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "az").write_text("#!/bin/sh\nsleep 30\n")
    (bin_dir / "az").chmod(0o755)
    cli.env.update({"PATH": f"{bin_dir}:{cli.env['PATH']}", "AZURE_TOKEN_CREDENTIALS": "AzureCliCredential"})
    cli.ok("workspace", "add", "team", "--azure", "https://acct.blob.core.windows.net/wheels")
    cli.ok("workspace", "add", "near", "--azure", "http://127.0.0.1:9/devstoreaccount1/wheels")  # refused: the baseline
    pip = [*venv_pip231_shim.pip, "install", "--no-cache-dir", "--no-index", "--retries", "0", "--target", tmp_path / "t", "--timeout", "1"]
    base, r, took, baseline = _timed_against_baseline(cli, pip, "near", "team")
    assert base.returncode != 0 and "is not an Azure Blob host" in base.output, base.describe()
    want = "getting a user delegation key for https://acct.blob.core.windows.net/wheels did not finish within 1 s"
    assert r.returncode != 0 and len([ln for ln in r.output.splitlines() if want in ln]) == 1, r.describe()
    assert "Traceback" not in r.output, r.describe()
    assert took - baseline < 4, f"pip took {took:.1f} s, {baseline:.1f} s without signing"
    cli.outputs.check()


def container_sas(azurite: Azurite, container: str, permission: str, ttl: int = 3600) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    now = dt.datetime.now(dt.UTC)
    return generate_container_sas(azurite.account, container, account_key=AZURITE_KEY,
                                  permission=ContainerSasPermissions.from_string(permission),
                                  start=now - dt.timedelta(minutes=5), expiry=now + dt.timedelta(seconds=ttl), protocol="https,http")


def test_resolve_prints_no_account_sas(privpkg_cli: PrivpkgCLI, azurite: Azurite, tmp_path: Path) -> None:
    """A read-only (sp=rl) account SAS stored as an AzureBlob connection: the URL resolve would
    print reads every container of the account (srt=co), not the workspace's alone, as its
    warning said; the URL is refused as a SAS that can write is (the shim still signs with it)."""
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    cli = privpkg_cli
    url = azurite.create_container()
    other = azurite.create_container().rsplit("/", 1)[1]
    azurite.container(other).upload_blob("private.txt", b"another team's data")
    now = dt.datetime.now(dt.UTC)
    sas = generate_account_sas(azurite.account, AZURITE_KEY, ResourceTypes(container=True, object=True),
                               AccountSasPermissions(read=True, list=True), expiry=now + dt.timedelta(hours=1),
                               start=now - dt.timedelta(minutes=5), protocol="https,http")
    assert urllib.parse.parse_qs(sas)["sp"] == ["rl"], sas
    cli.outputs.add_secret(urllib.parse.parse_qs(sas)["sig"][0])
    cli.ok("workspace", "add", "az", "--azure", url)
    cli.ok("connection", "set", "azsas", "--category", "AzureBlob", "--target", url, stdin=sas + "\n")
    wheel = make_wheel(tmp_path / "w", "sas-pkg", "1.0")
    azurite.container(url.rsplit("/", 1)[1]).upload_blob(f"wheels/{wheel.name}", wheel.read_bytes(), metadata={"sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()})
    # What the printed URL's query would read: the other container's blob (the refusal is not vacuous).
    from azure.storage.blob import BlobClient

    blob = BlobClient(url.rsplit("/", 1)[0], other, "private.txt", credential=sas)
    assert blob.download_blob().readall() == b"another team's data"
    cli.fails(1, "resolve", f"privpkg://az/wheels/{wheel.name}",
              match=["connection 'azsas' holds an account SAS", "every container of the account", "(sp=rl)"])
    cli.outputs.check()


def test_resolve_r_warns_once_about_a_read_only_container_sas(privpkg_cli: PrivpkgCLI, azurite: Azurite, tmp_path: Path) -> None:
    """Every pin of ``resolve -r`` carries the same connection's SAS: one warning says so, not
    one per line, and neither the summary nor the file's header calls the URLs valid for
    ``--ttl`` seconds alone."""
    cli = privpkg_cli
    url = azurite.create_container()
    container = url.rsplit("/", 1)[1]
    read = container_sas(azurite, container, "rl")
    cli.outputs.add_secret(urllib.parse.parse_qs(read)["sig"][0])
    cli.ok("workspace", "add", "az", "--azure", url)
    cli.ok("connection", "set", "azsas", "--category", "AzureBlob", "--target", url, stdin=read + "\n")
    reqs = tmp_path / "reqs.txt"
    lines = []
    for name in ("one-pkg", "two-pkg", "three-pkg"):
        wheel = make_wheel(tmp_path / name, name, "1.0")
        azurite.container(container).upload_blob(f"wheels/{wheel.name}", wheel.read_bytes(),
                                                 metadata={"sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()})
        lines.append(f"{name} @ privpkg://az/wheels/{wheel.name}\n")
    reqs.write_text("".join(lines))
    r = cli("resolve", "-r", reqs, "-o", tmp_path / "constraints.txt")
    assert r.returncode == 0 and len((tmp_path / "constraints.txt").read_text().splitlines()) == 4, r.stdout + r.stderr
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("privpkg: warning: ")]
    assert len(warnings) == 1 and "connection 'azsas''s own SAS" in warnings[0], r.stderr
    se = urllib.parse.parse_qs(read)["se"][0]
    validity = f"valid 600 s, those with connection 'azsas''s own SAS until {se}"
    assert r.stderr.splitlines()[-1] == f"wrote 3 signed constraints to {tmp_path / 'constraints.txt'} (mode 0600, {validity})", r.stderr
    assert (tmp_path / "constraints.txt").read_text().splitlines()[0] == f"# written by privpkg resolve: signed URLs ({validity}), do not commit"


def test_azure_container_sas_reads_and_writes_as_permitted(
    privpkg_cli: PrivpkgCLI, azurite: Azurite, venv_privpkg_cloud: Venv, tmp_path: Path
) -> None:
    cli = privpkg_cli
    url = azurite.create_container()
    container = url.rsplit("/", 1)[1]
    write, read = container_sas(azurite, container, "racwl"), container_sas(azurite, container, "rl")
    cli.outputs.add_secret(write)
    cli.outputs.add_secret(urllib.parse.parse_qs(write)["sig"][0])
    cli.ok("workspace", "add", "az", "--azure", url)
    cli.ok("connection", "set", "azsas", "--category", "AzureBlob", "--target", url, stdin="?" + write + "\n")
    wheel = make_wheel(tmp_path / "w", "sas-pkg", "1.0")
    wurl = cli.ok("wheel", "add", wheel, "--workspace", "az").strip().splitlines()[-1]
    assert container and [b.name for b in azurite.container(container).list_blobs()] == [f"wheels/{wheel.name}"]

    # A signed URL would carry the connection's own SAS, which can write and covers the whole
    # container: resolve prints none and writes no constraints file (a CI log or a shipped file
    # would keep it); inside pip it stays out of sight.
    refusal = ["connection 'azsas' holds a container SAS", "allows more than reading (sp=racwl)", f"pip install {wurl}", "(sp=rl)"]
    cli.fails(1, "resolve", wurl, match=refusal)
    (tmp_path / "reqs.txt").write_text(f"sas-pkg @ {wurl}\n")
    cli.fails(1, "resolve", "-r", tmp_path / "reqs.txt", "-o", tmp_path / "constraints.txt", match=[f"{tmp_path / 'reqs.txt'}, line 1: ", *refusal])
    assert not (tmp_path / "constraints.txt").exists()
    r = cli.tool([*venv_privpkg_cloud.pip, "install", "--no-cache-dir", "--no-index", "--target", tmp_path / "t0", f"sas-pkg @ {wurl}"])
    assert r.returncode == 0 and "Successfully installed sas-pkg-1.0" in r.output, r.describe()

    # A read-only SAS (as a reader gets it): wheel add says what it needs, before any upload.
    cli.ok("connection", "set", "azsas", "--update", stdin=read + "\n")
    second = make_wheel(tmp_path / "w2", "sas-pkg", "2.0")
    cli.fails(1, "wheel", "add", second, "--workspace", "az",
              match=["the SAS token of connection 'azsas' cannot write", "(sp=rl)", "create or write permission (c or w)"])
    assert len(list(azurite.container(container).list_blobs())) == 1
    verdict = cli.ok("connection", "test", "azsas")  # connection test lists with the SAS as it is
    assert verdict.startswith("OK: ") and "list blobs" in verdict, verdict
    listing = cli.ok("wheel", "list", "--workspace", "az")
    assert wheel.name in listing
    # A read-only one is printed as it is, with a warning that it reads the whole container
    # until its own expiry.
    res = cli("resolve", wurl)
    signed = res.stdout.strip()
    assert res.returncode == 0 and signed.startswith(f"{url}/wheels/{wheel.name}?") and signed.endswith(read), "the SAS is used as it is"
    se = urllib.parse.parse_qs(read)["se"][0]
    assert res.stderr == (f"privpkg: warning: this URL carries connection 'azsas''s own SAS: it reads every blob of the container "
                          f"until {se}, whatever --ttl says; keep it out of logs\n"), res.stderr

    r = cli.tool([*venv_privpkg_cloud.pip, "install", "--no-cache-dir", "--no-index", "--target", tmp_path / "t", f"sas-pkg @ {wurl}"])
    assert r.returncode == 0 and "Successfully installed sas-pkg-1.0" in r.output, r.describe()

    # A SAS whose permissions live in a stored access policy has no sp=: Azurite's 403 on the
    # upload becomes the same line.
    from azure.storage.blob import AccessPolicy, ContainerSasPermissions, generate_container_sas

    now = dt.datetime.now(dt.UTC)
    azurite.container(container).set_container_access_policy(
        {"readers": AccessPolicy(permission=ContainerSasPermissions(read=True, list=True), start=now - dt.timedelta(minutes=5),
                                 expiry=now + dt.timedelta(hours=1))})
    policy = generate_container_sas(azurite.account, container, account_key=AZURITE_KEY, policy_id="readers", protocol="https,http")
    assert "sp=" not in policy
    cli.outputs.add_secret(policy)
    cli.ok("connection", "set", "azsas", "--update", stdin=policy + "\n")
    cli.fails(1, "wheel", "add", second, "--workspace", "az", match=["the SAS token of connection 'azsas' cannot write", "(c or w)"])
    assert len(list(azurite.container(container).list_blobs())) == 1
    cli.fails(1, "resolve", wurl, match=["connection 'azsas' holds a container SAS", "has its permissions in a stored access policy"])
    shown = cli.ok("connection", "show", "azsas") + cli.ok("connection", "list", "--json")
    assert "sig=" not in shown
    # The read SAS is in the URL `privpkg resolve` prints (that is its job), and nowhere else.
    assert [label for label, text, _ in cli.outputs.items if read in text] == [f"privpkg resolve {wurl}"]
    assert cli.outputs.check() >= 1


def test_credential_reprs_hold_no_secret() -> None:
    from privpkg.storage.base import Credential

    c = Credential("conn", "sv=2026-10-06&sp=rl&sig=SECRETSIG", None, "sas")
    assert "SECRETSIG" not in repr(c) and "SECRETSIG" not in str(c)


def _workspace(name: str, location: str, source: str = "user") -> Any:
    from privpkg.workspace import Workspace

    return Workspace(name, "azure", location, source=source)


def test_default_azure_credential_only_for_the_users_workspace_on_a_blob_host(
    isolated_privpkg: Path, monkeypatch: pytest.MonkeyPatch, listener: Listener
) -> None:
    """Selection only (no request): constructing the client and DefaultAzureCredential sends
    nothing; the token and user delegation key requests are not testable here (see module doc)."""
    from azure.identity import DefaultAzureCredential

    from privpkg.access import open_workspace_storage
    from privpkg.errors import PrivpkgError
    from privpkg.storage.azure import AzureStorage

    st = open_workspace_storage(_workspace("team", "https://acct.blob.core.windows.net/wheels"))
    assert isinstance(st, AzureStorage) and st._kind == "ambient"
    assert isinstance(st._container().credential, DefaultAzureCredential)
    for host in ("acct.blob.core.chinacloudapi.cn", "acct.blob.core.usgovcloudapi.net"):
        st = open_workspace_storage(_workspace("team", f"https://{host}/wheels"))
        assert isinstance(st, AzureStorage) and st._kind == "ambient"

    project = str(isolated_privpkg.parent / "project" / "privpkg.toml")
    with pytest.raises(PrivpkgError, match="a project file cannot give them to workspace 'evil'") as exc:
        open_workspace_storage(_workspace("evil", "https://acct.blob.core.windows.net/wheels", f"project {project}"))
    assert "no AzureBlob credentials for https://acct.blob.core.windows.net/wheels" in str(exc.value)

    foreign = f"{listener.endpoint}/devstoreaccount1/wheels"
    with pytest.raises(PrivpkgError, match=f"{listener.endpoint}/devstoreaccount1/wheels is not an Azure Blob host"):
        open_workspace_storage(_workspace("emu", foreign))
    monkeypatch.setenv(envvars.TRUSTED_ENDPOINTS, f"https://other.example {listener.endpoint}")
    st = open_workspace_storage(_workspace("emu", foreign))
    assert isinstance(st, AzureStorage) and st._kind == "ambient", "listed by the user"
    with pytest.raises(PrivpkgError, match="a project file cannot give them"):
        open_workspace_storage(_workspace("emu", foreign, f"project {project}"))
    assert listener.accepted == []


def test_default_azure_credential_refusals_through_the_cli(privpkg_cli: PrivpkgCLI, listener: Listener, tmp_path: Path) -> None:
    cli = privpkg_cli
    foreign = f"{listener.endpoint}/devstoreaccount1/wheels"
    cli.ok("workspace", "add", "emu", "--azure", foreign)
    clone = tmp_path / "clone"
    (clone / ".git").mkdir(parents=True)
    cli.ok("workspace", "add", "evil", "--azure", "https://acct.blob.core.windows.net/wheels", "--project", cwd=clone)
    whl = "x-1.0-py3-none-any.whl"
    cli.fails(1, "resolve", f"privpkg://emu/wheels/{whl}", match=["no AzureBlob credentials", "is not an Azure Blob host",
                                                                   "trusted_endpoints"])
    cli.fails(1, "resolve", f"privpkg://evil/wheels/{whl}", cwd=clone,
              match=["no AzureBlob credentials", "not using your DefaultAzureCredential: a project file cannot give them"])
    assert listener.accepted == []
    cli.outputs.check()


# --------------------------------------------------------------------------------------------
# DefaultAzureCredential against Azurite's basic OAuth (https, a self-signed certificate)
# --------------------------------------------------------------------------------------------

def _self_signed(dest: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (Azurite's --oauth needs https)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = dest / "cert.pem", dest / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _fake_token() -> str:
    """A JWT as Entra ID issues them for storage; Azurite's basic OAuth checks issuer, audience
    and times, not the signature."""
    import base64
    import json

    def b64(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    now, tenant = int(time.time()), "ab1f708d-50f6-404c-a006-d71b2ac7a606"
    claims = {"aud": "https://storage.azure.com", "iss": f"https://sts.windows.net/{tenant}/", "iat": now - 60, "nbf": now - 60,
              "exp": now + 3600, "oid": "00000000-0000-0000-0000-0000000000aa", "tid": tenant}
    return b64({"alg": "RS256", "typ": "JWT"}) + "." + b64(claims) + ".c2lnbmF0dXJl"


def test_default_azure_credential_gets_a_user_delegation_key_from_azurite(
    privpkg_cli: PrivpkgCLI, azurite_bin: Path, tmp_path: Path
) -> None:
    """The whole DefaultAzureCredential path up to the signed URL: a token (from `az account
    get-access-token`, which DefaultAzureCredential runs; a stand-in script here, since neither
    the Azure CLI's sign-in nor Entra ID is reachable), Azurite's OAuth accepting it, a user
    delegation key from Azurite, a user-delegation SAS for one blob. Azurite 3.35 then refuses
    that SAS (403): its string-to-sign lacks two fields the SDK signs since service version
    2026 (FACTS.md); the test asserts the 403 so it says when Azurite catches up."""
    import json
    import shutil
    import ssl
    import urllib.error
    import urllib.request

    from azure.storage.blob import BlobServiceClient

    from privpkg.testing import start_server, stop_process

    node = shutil.which("node")
    assert node is not None
    cert, key = _self_signed(tmp_path)
    data = tmp_path / "azurite"
    data.mkdir()

    def argv(port: int) -> list[str]:
        return [node, str(azurite_bin), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(data),
                "--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry", "--oauth", "basic",
                "--cert", str(cert), "--key", str(key)]

    proc, port = start_server(argv, data / "azurite.log", "Azurite (https, OAuth)")
    try:
        account_url = f"https://127.0.0.1:{port}/devstoreaccount1"
        token = _fake_token()
        service = BlobServiceClient(account_url, credential={"account_name": "devstoreaccount1", "account_key": AZURITE_KEY},
                                    connection_verify=str(cert), api_version="2025-11-05")
        service.create_container("wheels")
        wheel = make_wheel(tmp_path / "w", "udk-pkg", "1.0")
        service.get_container_client("wheels").upload_blob(f"wheels/{wheel.name}", wheel.read_bytes(), metadata={"sha256": "0" * 64})

        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        az = bin_dir / "az"
        answer = json.dumps({"accessToken": token, "expires_on": int(time.time()) + 3600, "tokenType": "Bearer",
                             "tenant": "ab1f708d-50f6-404c-a006-d71b2ac7a606"})
        az.write_text(f"#!/bin/sh\ncat <<'JSON'\n{answer}\nJSON\n")
        az.chmod(0o755)
        cli = privpkg_cli
        cli.outputs.add_secret(token)
        cli.env.update({"PATH": f"{bin_dir}:{cli.env['PATH']}", "REQUESTS_CA_BUNDLE": str(cert),
                        "AZURE_TOKEN_CREDENTIALS": "AzureCliCredential"})
        cli.ok("workspace", "add", "udk", "--azure", f"{account_url}/wheels")
        url = f"privpkg://udk/wheels/{wheel.name}"
        cli.fails(1, "resolve", url, match=["no AzureBlob credentials", "is not an Azure Blob host"])
        trust(cli, f"https://127.0.0.1:{port}")
        signed = cli.ok("resolve", url).strip()  # resolve looks the blob up first: with the token
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(signed).query))
        assert signed.startswith(f"{account_url}/wheels/wheels/{wheel.name}?")
        assert q["skoid"] == "00000000-0000-0000-0000-0000000000aa" and q["sp"] == "r" and q["sr"] == "b", q
        ctx = ssl.create_default_context(cafile=str(cert))
        try:
            with urllib.request.urlopen(signed, context=ctx, timeout=30) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status == 403, "Azurite now accepts the SDK's user-delegation SAS: assert 200 and install through pip here"
        assert cli.outputs.check() >= 1
    finally:
        stop_process(proc)
