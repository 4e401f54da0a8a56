"""Azure workspaces against a real Azurite: the privpkg CLI flow, what the SAS it signs allows
(and refuses), one-line errors for missing or wrong credentials and a stopped endpoint, an
interrupted upload that leaves nothing visible, and real pip installs through the pip shim.

Every test ends with ``outputs.check()``: the account key appears in no output, and no SAS
signature appears anywhere but in the ``privpkg resolve`` stdout that printed it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from support.builds import Venv
from support.cli import PrivpkgCLI, check_publish_rules, check_removal_rules
from support.env import run
from support.storage import AZURITE_KEY, Azurite, start_azurite

from privpkg.testing import make_wheel

WS = "az"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy


def http(url: str, method: str = "GET", data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with _OPENER.open(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def setup_workspace(cli: PrivpkgCLI, azurite: Azurite, *, key: str | None = AZURITE_KEY, name: str = WS) -> tuple[str, str]:
    """A fresh container as workspace ``name``; with an AzureBlob connection unless ``key`` is
    None. Returns (container name, container URL)."""
    cli.outputs.add_secret(azurite.key)
    url = azurite.create_container()
    out = cli.ok("workspace", "add", name, "--azure", url)
    assert f"added workspace {name!r}: azure {url}" in out
    if key is not None:
        cli.ok("connection", "set", f"{name}-blob", "--category", "AzureBlob", "--target", url, stdin=key + "\n")
    return url.rsplit("/", 1)[1], url


def resolve(cli: PrivpkgCLI, url: str, *extra: str) -> str:
    out = cli.ok("resolve", url, *extra)
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    return lines[0]


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).items()}


# --------------------------------------------------------------------------------------------
# 1. the CLI flow
# --------------------------------------------------------------------------------------------


def test_wheel_add_list_exist_ok_and_immutability(privpkg_cli: PrivpkgCLI, azurite: Azurite, tmp_path: Path) -> None:
    cli = privpkg_cli
    container, _ = setup_workspace(cli, azurite)
    wheel = make_wheel(tmp_path / "v1", "demo-pkg", "1.0")
    original = wheel.read_bytes()
    sha = hashlib.sha256(original).hexdigest()
    url = f"privpkg://{WS}/wheels/{wheel.name}"

    out = cli.ok("wheel", "add", wheel, "--workspace", WS)
    assert out.strip().splitlines()[-1] == url

    blob = azurite.container(container).get_blob_client(f"wheels/{wheel.name}")
    props = blob.get_blob_properties()
    assert props.size == len(original) and props.metadata.get("sha256") == sha

    listing = cli.ok("wheel", "list", "--workspace", WS)
    assert any(line.split()[:3] == [url, str(len(original)), sha[:16]] for line in listing.splitlines()), listing
    assert json.loads(cli.ok("wheel", "list", "--workspace", WS, "--json")) == [
        {"file": wheel.name, "url": url, "size": len(original), "sha256": sha}
    ]

    check_publish_rules(cli, wheel, WS, url, sha, tmp_path)
    assert blob.get_blob_properties().etag == props.etag
    status, body = http(resolve(cli, url))
    assert status == 200 and body == original
    assert [b.name for b in azurite.container(container).list_blobs()] == [f"wheels/{wheel.name}"]
    check_removal_rules(cli, wheel, WS, url, tmp_path, lambda: [b.name for b in azurite.container(container).list_blobs()])

    assert cli.outputs.check() >= 1


# --------------------------------------------------------------------------------------------
# 2. what a SAS from privpkg resolve allows
# --------------------------------------------------------------------------------------------


def test_sas_reads_one_blob_only_until_it_expires(privpkg_cli: PrivpkgCLI, azurite: Azurite, tmp_path: Path) -> None:
    cli = privpkg_cli
    container, container_url = setup_workspace(cli, azurite)
    wheel_a = make_wheel(tmp_path / "a", "pkg-a", "1.0")
    wheel_b = make_wheel(tmp_path / "b", "pkg-b", "2.0")
    url_a, url_b = (cli.ok("wheel", "add", w, "--workspace", WS).strip().splitlines()[-1] for w in (wheel_a, wheel_b))

    start = dt.datetime.now(dt.UTC)
    sas_a = resolve(cli, url_a, "--ttl", "120")
    sas_b = resolve(cli, url_b)
    assert sas_a.startswith(f"{container_url}/wheels/{wheel_a.name}?")
    assert http(sas_a) == (200, wheel_a.read_bytes())
    assert http(sas_b) == (200, wheel_b.read_bytes())

    q = query(sas_a)
    assert q["sp"] == "r", "read-only"
    assert q["sr"] == "b", "scoped to one blob"
    # http is allowed only because Azurite is on loopback (see the non-loopback check below).
    assert q["spr"] == "https,http"
    expiry = dt.datetime.fromisoformat(q["se"])
    assert dt.timedelta(seconds=100) <= expiry - start <= dt.timedelta(seconds=140), (q["se"], start)

    # Without a signature, with a tampered one, or on another blob: 403.
    assert http(sas_a.split("?", 1)[0])[0] == 403
    raw = bytearray(base64.b64decode(q["sig"]))
    raw[0] ^= 0xFF
    tampered = re.sub(r"([?&]sig=)[^&]*", lambda m: m.group(1) + urllib.parse.quote(base64.b64encode(bytes(raw)).decode(), safe=""), sas_a)
    assert tampered != sas_a
    assert http(tampered)[0] == 403
    swapped = sas_a.replace(f"/wheels/{wheel_a.name}?", f"/wheels/{wheel_b.name}?")
    assert swapped != sas_a
    assert http(swapped)[0] == 403

    # A write with the read-only SAS: 403, and the blob keeps its bytes.
    status, _ = http(sas_a, "PUT", b"overwritten", {"x-ms-blob-type": "BlockBlob", "Content-Type": "application/octet-stream"})
    assert status == 403
    new_blob = sas_a.replace(f"/wheels/{wheel_a.name}?", "/wheels/evil-1.0-py3-none-any.whl?")
    assert http(new_blob, "PUT", b"x", {"x-ms-blob-type": "BlockBlob"})[0] == 403
    assert http(sas_a) == (200, wheel_a.read_bytes())
    assert sorted(b.name for b in azurite.container(container).list_blobs()) == sorted(f"wheels/{w.name}" for w in (wheel_a, wheel_b))

    # An expired SAS: 403 (se has one-second resolution, so wait until it is clearly past).
    short = resolve(cli, url_a, "--ttl", "1")
    se = dt.datetime.fromisoformat(query(short)["se"])
    time.sleep(max(0.0, (se - dt.datetime.now(dt.UTC)).total_seconds()) + 1.5)
    assert http(short)[0] == 403

    cli.fails(2, "resolve", url_a, "--ttl", "0", match="--ttl")
    cli.fails(2, "resolve", url_a, "--ttl", str(7 * 24 * 3600 + 1), match="--ttl")
    assert cli.outputs.check() >= 3


def test_sas_for_a_real_account_is_https_only() -> None:
    """Off loopback the SAS allows https only (no network needed: signing is local)."""
    from privpkg.storage import open_storage
    from privpkg.storage.base import Credential, StorageSpec

    storage = open_storage(StorageSpec("azure", "https://acct.blob.core.windows.net/wheels"), Credential("c", AZURITE_KEY))
    url = storage.signed_url("wheels/x-1.0-py3-none-any.whl", 60)
    assert url.startswith("https://acct.blob.core.windows.net/wheels/wheels/x-1.0-py3-none-any.whl?")
    q = query(url)
    assert (q["spr"], q["sp"], q["sr"]) == ("https", "r", "b")


# --------------------------------------------------------------------------------------------
# 3. credentials and endpoint problems: one line, no traceback
# --------------------------------------------------------------------------------------------


def test_missing_azure_credentials(privpkg_cli: PrivpkgCLI, azurite: Azurite, tmp_path: Path) -> None:
    cli = privpkg_cli
    container, container_url = setup_workspace(cli, azurite, key=None)
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0")
    want = ["no AzureBlob credentials", f"privpkg connection set NAME --category AzureBlob --target {container_url}"]
    cli.fails(1, "wheel", "add", wheel, "--workspace", WS, match=want)
    cli.fails(1, "resolve", f"privpkg://{WS}/wheels/{wheel.name}", match=want)
    cli.fails(1, "wheel", "list", "--workspace", WS, match=want)
    assert list(azurite.container(container).list_blobs()) == []
    cli.outputs.check()


def test_wrong_account_key_is_one_clear_line(privpkg_cli: PrivpkgCLI, azurite: Azurite, tmp_path: Path) -> None:
    cli = privpkg_cli
    wrong = base64.b64encode(os.urandom(64)).decode()
    cli.outputs.add_secret(wrong)
    container, container_url = setup_workspace(cli, azurite, key=wrong)
    wheel = make_wheel(tmp_path, "demo-pkg", "1.0")
    # The message must say what is wrong (the key) and how to fix it, not just an HTTP status.
    want = [container_url, "account key", f"privpkg connection set {WS}-blob --update"]
    cli.fails(1, "wheel", "add", wheel, "--workspace", WS, match=want)
    cli.fails(1, "resolve", f"privpkg://{WS}/wheels/{wheel.name}", match=want)
    cli.fails(1, "wheel", "list", "--workspace", WS, match=want)
    assert list(azurite.container(container).list_blobs()) == []
    cli.outputs.check()


def test_stopped_endpoint_is_one_line_quickly(privpkg_cli: PrivpkgCLI, azurite_bin: Path, tmp_path: Path) -> None:
    cli = privpkg_cli
    own = start_azurite(azurite_bin, tmp_path / "azurite")  # this test stops it
    try:
        setup_workspace(cli, own)
        wheel = make_wheel(tmp_path / "w", "demo-pkg", "1.0")
        url = cli.ok("wheel", "add", wheel, "--workspace", WS).strip().splitlines()[-1]
        assert http(resolve(cli, url))[0] == 200
    finally:
        own.stop()
    assert not own.running
    # Connection refused is immediate; privpkg must not sit in the SDK's retry back-off for a
    # minute and more (pip would hang just as long), so 20 s is plenty.
    start = time.monotonic()
    cli.fails(1, "resolve", url, match=["cannot reach", own.endpoint], timeout=20)
    assert time.monotonic() - start < 20
    cli.outputs.check()


# --------------------------------------------------------------------------------------------
# 4. an interrupted upload
# --------------------------------------------------------------------------------------------


def test_interrupted_upload_leaves_no_visible_blob(privpkg_cli: PrivpkgCLI, azurite: Azurite, tmp_path: Path) -> None:
    cli = privpkg_cli
    container, _ = setup_workspace(cli, azurite)
    client = azurite.container(container)
    big = make_wheel(tmp_path, "big-pkg", "1.0", payload_size=40 << 20)
    key = f"wheels/{big.name}"

    proc = subprocess.Popen(
        cli.argv("wheel", "add", big, "--workspace", WS),
        env=cli.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    staged = 0
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if any(b.name == key for b in client.list_blobs(name_starts_with=key, include=["uncommittedblobs"])):
                staged = len(client.get_blob_client(key).get_block_list("uncommitted")[1])
                if staged:
                    break
            time.sleep(0.01)
        exited_early = proc.poll()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        out = proc.communicate(timeout=10)[0].decode(errors="replace")
        cli.outputs.add("privpkg wheel add (killed)", out)
    assert exited_early is None, f"the upload finished before it could be interrupted:\n{out}"
    assert proc.returncode == -signal.SIGKILL
    assert staged >= 1, "saw no uncommitted block before the kill"

    # Nothing a reader could see: not listed, 404 for a GET, and privpkg says it is not there.
    assert [b.name for b in client.list_blobs()] == []
    assert "big_pkg" not in cli.ok("wheel", "list", "--workspace", WS)
    assert http(azurite.sas_url(container, key))[0] == 404
    cli.fails(1, "resolve", f"privpkg://{WS}/{key}", match="no wheel big_pkg-1.0-py3-none-any.whl")

    # A normal add then succeeds and stores the whole file.
    url = cli.ok("wheel", "add", big, "--workspace", WS, timeout=120).strip().splitlines()[-1]
    assert url == f"privpkg://{WS}/{key}"
    props = client.get_blob_client(key).get_blob_properties()
    assert props.size == big.stat().st_size
    assert props.metadata["sha256"] == hashlib.sha256(big.read_bytes()).hexdigest()
    cli.outputs.check()


# --------------------------------------------------------------------------------------------
# 5. real pip through the shim
# --------------------------------------------------------------------------------------------


def _import_from(venv: Venv, target: Path, module: str, env: dict[str, str]) -> str:
    r = run([venv.python, "-c", f"import {module}; print({module}.VERSION, {module}.__file__)"], {**env, "PYTHONPATH": str(target)})
    assert r.returncode == 0, r.describe()
    version, path = r.output.split()
    assert Path(path).parent == target
    return version


def _no_signature_on_disk(target: Path) -> None:
    for p in target.rglob("*"):
        if p.is_file() and p.suffix not in (".pyc",):
            text = p.read_text(errors="replace")
            assert "sig=" not in text and "X-Amz-Signature" not in text, p


def test_pip_installs_privpkg_url_without_showing_the_sas(
    privpkg_cli: PrivpkgCLI, azurite: Azurite, venv_privpkg_cloud: Venv, tmp_path: Path
) -> None:
    cli = privpkg_cli
    setup_workspace(cli, azurite)
    wheel = make_wheel(tmp_path / "w", "demo-pkg", "1.0")
    url = cli.ok("wheel", "add", wheel, "--workspace", WS).strip().splitlines()[-1]
    target = tmp_path / "target"

    r = cli.tool([*venv_privpkg_cloud.pip, "install", "--no-cache-dir", "-v", "--target", target, f"demo-pkg @ {url}"])
    assert r.returncode == 0, r.describe()
    assert f"demo-pkg @ {url}" in r.output and "Successfully installed demo-pkg-1.0" in r.output
    assert "sig=" not in r.output and "spr=" not in r.output, r.output
    assert _import_from(venv_privpkg_cloud, target, "demo_pkg", cli.env) == "1.0"

    direct = json.loads((target / "demo_pkg-1.0.dist-info" / "direct_url.json").read_text())
    assert direct["url"] == url
    assert direct["archive_info"]["hashes"]["sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    freeze = cli.tool([*venv_privpkg_cloud.pip, "freeze", "--path", target])
    assert freeze.returncode == 0 and f"demo-pkg @ {url}#sha256=" in freeze.output, freeze.describe()
    inspect = cli.tool([*venv_privpkg_cloud.pip, "inspect", "--path", target])
    assert inspect.returncode == 0, inspect.describe()
    installed = {d["metadata"]["name"]: d for d in json.loads(inspect.output)["installed"]}
    assert installed["demo-pkg"]["direct_url"]["url"] == url
    _no_signature_on_disk(target)
    cli.outputs.check()


def test_pip_without_the_azure_extra_fails_in_one_line(
    privpkg_cli: PrivpkgCLI, azurite: Azurite, venv_privpkg: Venv, tmp_path: Path
) -> None:
    """venv_privpkg has privpkg but not azure-storage-blob: the shim cannot sign, and pip must
    say so in privpkg's one line (naming the extra), not with a traceback."""
    cli = privpkg_cli
    setup_workspace(cli, azurite)
    wheel = make_wheel(tmp_path / "w", "demo-pkg", "1.0")
    url = cli.ok("wheel", "add", wheel, "--workspace", WS).strip().splitlines()[-1]
    assert not venv_privpkg.can_import("azure.storage.blob", cli.env)
    r = cli.tool([*venv_privpkg.pip, "install", "--no-cache-dir", "--target", tmp_path / "t", f"demo-pkg @ {url}"])
    assert r.returncode != 0 and "Traceback" not in r.output, r.describe()
    assert "privpkg: this workspace needs azure-storage-blob: pip install 'privpkg[azure]'" in r.output, r.output
    # That environment's own privpkg command says the same for every storage operation.
    hint = "privpkg: error: this workspace needs azure-storage-blob: pip install 'privpkg[azure]'"
    for args in (["wheel", "list", "--workspace", WS], ["resolve", url], ["wheel", "add", wheel, "--workspace", WS, "--exist-ok"]):
        r = cli.tool([venv_privpkg.bin / "privpkg", *args])
        assert r.returncode == 1 and r.output.strip() == hint, r.describe()
    cli.outputs.check()


def test_pip_signs_a_plain_blob_url_of_a_registered_workspace(
    privpkg_cli: PrivpkgCLI, azurite: Azurite, venv_privpkg_cloud: Venv, venv_bare_pip: Venv, tmp_path: Path
) -> None:
    cli = privpkg_cli
    _, container_url = setup_workspace(cli, azurite)
    wheel = make_wheel(tmp_path / "w", "blob-pkg", "3.0")
    cli.ok("wheel", "add", wheel, "--workspace", WS)
    blob_url = f"{container_url}/wheels/{wheel.name}"

    # Without the shim the blob is private: pip gets a 403.
    r = cli.tool([*venv_bare_pip.pip, "install", "--no-cache-dir", "--target", tmp_path / "t0", f"blob-pkg @ {blob_url}"])
    assert r.returncode != 0 and "403" in r.output, r.describe()

    # With it the URL is signed at install time; even -vvv (urllib3's request lines) shows no signature.
    target = tmp_path / "target"
    r = cli.tool([*venv_privpkg_cloud.pip, "install", "--no-cache-dir", "-vvv", "--target", target, f"blob-pkg @ {blob_url}"])
    assert r.returncode == 0, r.describe()
    assert re.search(r"sig=(?!<redacted>)", r.output) is None, r.output
    # urllib3's debug line for the signed GET shows the stable blob URL in its place.
    assert f'"GET {blob_url} HTTP/1.1" 200' in r.output, r.output
    assert _import_from(venv_privpkg_cloud, target, "blob_pkg", cli.env) == "3.0"
    assert json.loads((target / "blob_pkg-3.0.dist-info" / "direct_url.json").read_text())["url"] == blob_url
    _no_signature_on_disk(target)
    cli.outputs.check()


def test_pip_says_a_removed_wheel_was_removed(
    privpkg_cli: PrivpkgCLI, azurite: Azurite, venv_privpkg_cloud: Venv, venv_pip231_shim: Venv, tmp_path: Path
) -> None:
    """The storage answers 404 for a removed wheel as for one never published; the shim looks
    again on that error path, so pip's line says which (as ``privpkg resolve`` does), in
    privpkg's own environment and through a copied shim (which asks privpkg's interpreter)."""
    cli = privpkg_cli
    setup_workspace(cli, azurite)
    wheel = make_wheel(tmp_path / "w", "demo-pkg", "1.0")
    url = cli.ok("wheel", "add", wheel, "--workspace", WS).strip().splitlines()[-1]
    cli.ok("wheel", "remove", wheel.name, "--workspace", WS)
    never = url.replace("demo_pkg-1.0", "demo_pkg-9.9")
    cases = ((url, f"wheel {wheel.name} was removed from workspace {WS!r}"), (never, "no wheel demo_pkg-9.9-py3-none-any.whl in workspace"))
    for venv in (venv_privpkg_cloud, venv_pip231_shim):
        for req, line in cases:
            r = cli.tool([*venv.pip, "install", "--no-cache-dir", "--target", tmp_path / "t", f"demo-pkg @ {req}"])
            assert r.returncode != 0 and "Traceback" not in r.output, r.describe()
            assert line in r.output, r.output
            assert "sig=" not in r.output, r.output
    cli.outputs.check()
