"""``privpkg env dockerfile`` (issue 10, item 7): a real image built from the generated context
with buildah (Debian's package, as root, vfs storage, chroot isolation; no daemon, no registry),
offline, on a base image the tests make once (support.images: debootstrap'd Debian with python3).

The lock holds a ``privpkg://`` wheel of an Azure workspace (Azurite: signed with the storage
key) and a wheel of the loopback PAT feed; the environment is registered in that workspace with
it and made into an image by name (``train:1``); both wheels are fetched and hash-checked on the
host. The
image is pushed to an OCI layout and every layer blob, the config (labels, env, history) and the
index are searched for the PATs, the storage key and any signature. A second test plants leaks
(an ENV holding a PAT; a file holding another one copied into a layer) and shows the scan finds
each, so a clean scan means something.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from support.cli import Outputs, PrivpkgCLI, assert_one_error_line
from support.env import assert_no_secret
from support.feeds import FeedServer
from support.images import Buildah, layer_members, push_oci, scan_oci
from support.storage import Azurite

from privpkg.environments.docker import LABEL_KEY
from privpkg.testing import make_wheel

WS = "team"


def _pylock(entries: list[tuple[str, str, str, Path]]) -> str:
    """A PEP 751 lock of one wheel per package: (name, version, url, wheel file)."""
    out = ['lock-version = "1.0"', 'created-by = "tests"', ""]
    for name, version, url, wheel in entries:
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        out += ["[[packages]]", f'name = "{name}"', f'version = "{version}"', "[[packages.wheels]]",
                f'name = "{wheel.name}"', f'url = "{url}"', f'hashes = {{sha256 = "{sha}"}}', ""]
    return "\n".join(out)


def test_image_from_the_context_holds_no_secret(
    azurite: Azurite, feed: FeedServer, buildah: Buildah, base_image: str, make_env: Callable[..., dict[str, str]],
    store_connection: Callable[..., object], tmp_path: Path,
) -> None:
    cli = PrivpkgCLI(make_env(), Outputs(*feed.secrets, azurite.key))
    container = azurite.create_container()
    cli.ok("workspace", "add", WS, "--azure", container)
    cli.ok("connection", "set", "team-blob", "--category", "AzureBlob", "--target", container, stdin=azurite.key + "\n")
    ours = make_wheel(tmp_path / "dist", "alpha-pkg", "1.0")
    ref = cli.ok("wheel", "add", ours, "--workspace", WS).strip().splitlines()[-1]
    assert ref.startswith("privpkg://")
    store_connection("orgA", feed.base + "/orgA/", feed.secret_a)
    feed_wheel = tmp_path / "feed" / "a" / "pkg_a-1.0-py3-none-any.whl"
    lock = tmp_path / "pylock.toml"
    lock.write_text(_pylock([("alpha-pkg", "1.0", ref, ours), ("pkg-a", "1.0", feed.index_a + "pkg-a/" + feed_wheel.name, feed_wheel)]))
    # Registered in the workspace (in Azurite) with that lock, and made into an image by name.
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(f"alpha-pkg @ {ref}\npkg-a\n")
    cli.ok("env", "create", "train", "-r", reqs, "-o", tmp_path / "train")
    (tmp_path / "train" / "pylock.toml").write_text(lock.read_text())
    cli.ok("env", "register", tmp_path / "train", "--workspace", WS)
    ctx = tmp_path / "ctx"

    printed = cli.ok("env", "dockerfile", "train:1", "--workspace", WS, "-o", ctx, "--base-image", base_image, "--check")
    key = next(line.split(": ", 1)[1] for line in printed.splitlines() if line.startswith("cache key: "))
    assert sorted(p.name for p in (ctx / "wheels").iterdir()) == sorted([ours.name, feed_wheel.name])
    assert any(e.path.endswith("/" + feed_wheel.name) and e.status == 200 and e.auth for e in feed.log()), feed.log_text()
    for f in ctx.rglob("*"):
        if f.is_file():
            assert_no_secret(f.read_bytes().decode("latin-1"), *feed.secrets, azurite.key)
    assert f"FROM {base_image}\n" in (ctx / "Dockerfile").read_text()

    with buildah.build(ctx) as (image, built):
        cli.outputs.add("buildah build", built.output)
        assert built.returncode == 0, built.describe()
        assert "Successfully installed alpha-pkg-1.0 pkg-a-1.0" in built.output, built.describe()
        config = json.loads(buildah.ok("inspect", "--type", "image", image))
        assert config["OCIv1"]["config"]["Labels"][LABEL_KEY] == key
        layout = push_oci(buildah, image, tmp_path / "oci")
    assert scan_oci(layout, [*feed.secrets, azurite.key]) == []
    installed = layer_members(layout)
    site = "opt/privpkg-env/lib/python3.11/site-packages/"
    assert {site + "alpha_pkg.py", site + "pkg_a.py"} <= installed
    assert not any(m.startswith(("tmp/privpkg-context", "run/secrets")) and m.rstrip("/") not in ("tmp/privpkg-context", "run/secrets")
                   for m in installed), "the bind-mounted context or a secret was committed"
    cli.outputs.check()


def test_scan_finds_a_planted_leak(buildah: Buildah, feed: FeedServer, tmp_path: Path) -> None:
    """An ENV holding one PAT (the config and its history) and a copied file holding the other
    (a layer only) are each found, in different blobs. FROM scratch: what is scanned is the same
    OCI layout, and the build takes a second instead of copying the base image's tree."""
    ctx = tmp_path / "leaky"
    ctx.mkdir()
    (ctx / "token.txt").write_text(feed.secret_b + "\n")
    (ctx / "Dockerfile").write_text(f"FROM scratch\nENV FEED_CONFIG={feed.secret_a}\nCOPY token.txt /etc/feed-token\n")
    with buildah.build(ctx) as (image, built):
        assert built.returncode == 0, built.describe()
        layout = push_oci(buildah, image, tmp_path / "oci")
    found = scan_oci(layout, [feed.secret_a, feed.secret_b])
    a = {f.split(":")[0] for f in found if feed.secret_a[:4] in f}
    b = {f.split(":")[0] for f in found if feed.secret_b[:4] in f}
    assert a and b and not (a & b), found


def test_secret_mount_build_downloads_the_feed_wheel_in_the_build(
    feed: FeedServer, buildah: Buildah, base_image: str, make_env: Callable[..., dict[str, str]],
    store_connection: Callable[..., object], privpkg_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--secret-mount: the feed wheel is downloaded by pip inside the one RUN that mounts the
    netrc (chroot isolation shares the host's loopback, where the feed listens); a privpkg://
    wheel of a local workspace still comes from the host-side wheelhouse. The netrc reaches
    buildah as a variable of its process (``--secret id=...,env=...``), never a file, and is in
    no blob of the image."""
    cli = PrivpkgCLI(make_env(), Outputs(*feed.secrets))
    cli.ok("workspace", "add", WS, "--local", tmp_path / "ws")
    ours = make_wheel(tmp_path / "dist", "alpha-pkg", "1.0")
    ref = cli.ok("wheel", "add", ours, "--workspace", WS).strip().splitlines()[-1]
    store_connection("orgA", feed.base + "/orgA/", feed.secret_a)
    feed_wheel = tmp_path / "feed" / "a" / "pkg_a-1.0-py3-none-any.whl"
    lock = tmp_path / "pylock.toml"
    lock.write_text(_pylock([("alpha-pkg", "1.0", ref, ours), ("pkg-a", "1.0", feed.index_a + "pkg-a/" + feed_wheel.name, feed_wheel)]))
    ctx = tmp_path / "ctx"
    cli.ok("env", "dockerfile", "--lock", lock, "-o", ctx, "--base-image", base_image, "--secret-mount", "--check")
    assert sorted(p.name for p in (ctx / "wheels").iterdir()) == [ours.name]
    assert not feed.log(), "the host fetched the feed wheel itself"

    from privpkg import envvars
    from privpkg.cli.env_docker import _select
    from privpkg.environments.docker import SECRET_ID, netrc_text

    monkeypatch.setenv(envvars.HOME, str(privpkg_home))
    netrc = netrc_text(_select(lock.read_text()))
    assert netrc == f"machine 127.0.0.1 login __token__ password {feed.secret_a}\n"
    buildah.env["NETRC_FOR_THE_BUILD"] = netrc
    try:
        with buildah.build(ctx, "--secret", f"id={SECRET_ID},env=NETRC_FOR_THE_BUILD") as (image, built):
            assert built.returncode == 0, built.describe()
            layout = push_oci(buildah, image, tmp_path / "oci")
    finally:
        del buildah.env["NETRC_FOR_THE_BUILD"]
    assert "Successfully installed alpha-pkg-1.0 pkg-a-1.0" in built.output, built.describe()
    assert_no_secret(built.output, *feed.secrets)
    assert any(e.path.endswith("/" + feed_wheel.name) and e.status == 200 and e.auth for e in feed.log()), feed.log_text()
    assert scan_oci(layout, [*feed.secrets]) == []
    assert not any(m.startswith("run/secrets/") for m in layer_members(layout))
    cli.outputs.check()


def test_errors_are_one_line_and_name_no_secret(
    feed: FeedServer, make_env: Callable[..., dict[str, str]], store_connection: Callable[..., object], tmp_path: Path,
) -> None:
    cli = PrivpkgCLI(make_env(), Outputs(*feed.secrets))
    store_connection("orgA", feed.base + "/orgA/", feed.secret_a)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM scratch\nARG FEED_TOKEN\nENV OPTS=--pw={feed.secret_a}\nCOPY .netrc /root/\n")
    res = cli("env", "dockerfile", "-o", ctx, "--check")
    assert assert_one_error_line(res, 2) == f"privpkg: error: {ctx / 'Dockerfile'}: 3 problem(s) that would put a secret into the image (listed above)"
    assert [line.split(": ", 2)[1] for line in res.stdout.splitlines()] == ["line 2", "line 3", "line 4"], res.stdout
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY a /a\n")
    assert "no secret, user info or signature found" in cli.ok("env", "dockerfile", "-o", ctx, "--check")

    feed_wheel = tmp_path / "feed" / "a" / "pkg_a-1.0-py3-none-any.whl"
    url = feed.index_a + "pkg-a/" + feed_wheel.name
    lock = tmp_path / "pylock.toml"
    out = tmp_path / "out"
    cli.fails(2, "env", "dockerfile", "-o", out, match="give NAME[:VERSION] or NAME@LABEL (or --lock FILE)")
    cli.ok("workspace", "add", WS, "--local", tmp_path / "ws")
    cli.fails(2, "env", "dockerfile", "bad/name", "-w", WS, "-o", out, match="bad/name")
    cli.fails(1, "env", "dockerfile", "myenv:3", "-w", WS, "-o", out, match="no environment named 'myenv'")
    cli.fails(2, "env", "dockerfile", "--lock", lock, "-o", out, match="cannot read")
    lock.write_text(_pylock([("pkg-a", "1.0", url, feed_wheel)]))
    cli.fails(2, "env", "dockerfile", "--lock", lock, "-o", out, "--base-image", "python@sha256:abc", match="a digest is written NAME@sha256:")
    lock.write_text(_pylock([("pkg-a", "1.0", url.replace("http://", f"http://__token__:{feed.secret_a}@"), feed_wheel)]))
    cli.fails(2, "env", "dockerfile", "--lock", lock, "-o", out, match="the lock would hold")
    assert not feed.log(), "a URL with user info was requested"
    other = make_wheel(tmp_path / "other", "pkg-a", "1.0", body="VERSION = 'other'")
    lock.write_text(_pylock([("pkg-a", "1.0", url, other)]))  # the lock's sha256 is not the feed's file
    cli.fails(1, "env", "dockerfile", "--lock", lock, "-o", out, match=["pkg_a-1.0-py3-none-any.whl does not match the lock's sha256", "not kept"])
    assert list((out / "wheels").iterdir()) == [], "a file that failed its check was left in the wheelhouse"
    assert not (out / "Dockerfile").exists()
    cli.outputs.check()
