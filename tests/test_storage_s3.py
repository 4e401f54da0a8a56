"""S3 workspaces against moto's S3 server: the privpkg CLI flow, presigned URLs, one-line
errors, and real pip installs through the pip shim.

moto does NOT check presigned signatures or their expiry (a tampered or expired URL still gets
200, see FACTS.md), so there are no tamper/expiry tests here; signing is botocore's. What these
tests check is that the URL carries a SigV4 signature and the requested X-Amz-Expires, reaches
the right object, and never shows up where it should not.

Every test ends with ``outputs.check()``: the secret access key appears in no output, and no
X-Amz-Signature appears anywhere but in the ``privpkg resolve`` stdout that printed it.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from conftest import check_publish_rules, MotoServer, PrivpkgCLI, Result, Venv, run

from privpkg.feedserver import make_wheel

WS = "s3w"
PREFIX = "team/pkgs"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with _OPENER.open(url, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


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
    assert http_get(signed) == (200, original)
    assert cli.outputs.check() == 1


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
    leaked = re.findall(r"Signature[=:]\s*([0-9a-f]{64})", r.output)
    assert not leaked, f"pip -vv printed {len(leaked)} SigV4 signature(s), e.g. after: " + r.output[
        max(0, r.output.find(leaked[0]) - 300) : r.output.find(leaked[0])
    ]
    cli.outputs.check()
