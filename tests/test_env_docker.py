"""``privpkg env dockerfile`` (issue 10, item 7): a real image built from the generated context
with buildah (Debian's package, as root, vfs storage, chroot isolation; no daemon, no registry),
offline, on a base image the tests make once (support.images: debootstrap'd Debian with python3).

The lock holds a ``privpkg://`` wheel of an Azure workspace (Azurite: signed with the storage
key), a wheel of the loopback PAT feed and a package with one wheel per CPython (cp311, cp312);
the environment is registered in that workspace with it and made into an image by name
(``train:1``) for the base image's CPython 3.11; the wheels are fetched and hash-checked on the
host. The image is pushed to an OCI layout and every layer blob, the config (labels, env,
history) and the index are searched for the PATs, the storage key and any signature. A second
test plants leaks (an ENV holding a PAT; a file holding another one copied into a layer) and
shows the scan finds each, so a clean scan means something. The secret-mount test builds with
the netrc ``privpkg env netrc`` writes and the command it prints.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from collections.abc import Callable
from pathlib import Path

from support.builds import Venv
from support.cli import Outputs, PrivpkgCLI, assert_one_error_line
from support.env import assert_no_secret
from support.feeds import FeedServer
from support.images import Buildah, layer_members, oci_blobs, push_oci, scan_oci
from support.storage import Azurite

from privpkg.environments.docker import LABEL_KEY, LABEL_NAME, LABEL_PLATFORM, LABEL_PYTHON, LABEL_VERSION
from privpkg.testing import make_wheel

WS = "team"
#: The test base image: Debian bookworm's python3 (support.images), glibc 2.36, this machine's arch.
BASE_PLATFORM = f"manylinux_2_36_{platform.machine()}"
BASE_TARGET = ["--python", "3.11", "--platform", BASE_PLATFORM]


def _pylock(entries: list[tuple[str, str, str, Path | list[Path]]]) -> str:
    """A PEP 751 lock: (name, version, url of the wheel's folder or the wheel itself, wheel
    file or files). Several files are one package's wheels for different tags."""
    out = ['lock-version = "1.0"', 'created-by = "tests"', ""]
    for name, version, url, wheels in entries:
        out += ["[[packages]]", f'name = "{name}"', f'version = "{version}"']
        for wheel in wheels if isinstance(wheels, list) else [wheels]:
            sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
            where = url + wheel.name if url.endswith("/") else url
            out += ["[[packages.wheels]]", f'name = "{wheel.name}"', f'url = "{where}"', f'hashes = {{sha256 = "{sha}"}}']
        out.append("")
    return "\n".join(out)


def _per_python(feed_dir: Path) -> list[Path]:
    """pkg-t 1.0 as wheels in the feed's folder, one per CPython, each saying which it is: cp311 and
    cp312 first, then the running Python's if another (an image target with no Python of its own
    gets privpkg's)."""
    cps = dict.fromkeys(("cp311", "cp312", f"cp{sys.version_info.major}{sys.version_info.minor}"))
    return [make_wheel(feed_dir, "pkg-t", "1.0", tag=f"{cp}-none-any", body=f'BUILT_FOR = "{cp}"\n') for cp in cps]


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
    per_python = _per_python(feed_wheel.parent)
    lock.write_text(_pylock([("alpha-pkg", "1.0", ref, ours), ("pkg-a", "1.0", feed.index_a + "pkg-a/", feed_wheel),
                             ("pkg-t", "1.0", feed.index_a + "pkg-t/", per_python)]))
    # Registered in the workspace (in Azurite) with that lock, and made into an image by name.
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(f"alpha-pkg @ {ref}\npkg-a\npkg-t\n")
    cli.ok("env", "create", "train", "-r", reqs, "-o", tmp_path / "train")
    (tmp_path / "train" / "pylock.toml").write_text(lock.read_text())
    cli.ok("env", "register", tmp_path / "train", "--workspace", WS)
    ctx = tmp_path / "ctx"

    printed = cli.ok("env", "dockerfile", "train:1", "--workspace", WS, "-o", ctx, "--base-image", base_image, *BASE_TARGET, "--check")
    key = next(line.split(": ", 1)[1] for line in printed.splitlines() if line.startswith("image key: "))
    assert f"image target: CPython 3.11 on {BASE_PLATFORM} (as given)" in printed
    assert sorted(p.name for p in (ctx / "wheels").iterdir()) == sorted([ours.name, feed_wheel.name, per_python[0].name])
    assert any(e.path.endswith("/" + feed_wheel.name) and e.status == 200 and e.auth for e in feed.log()), feed.log_text()
    for f in ctx.rglob("*"):
        if f.is_file():
            assert_no_secret(f.read_bytes().decode("latin-1"), *feed.secrets, azurite.key)
    assert f"FROM {base_image}\n" in (ctx / "Dockerfile").read_text()

    with buildah.build(ctx) as (image, built):
        cli.outputs.add("buildah build", built.output)
        assert built.returncode == 0, built.describe()
        assert "Successfully installed alpha-pkg-1.0 pkg-a-1.0 pkg-t-1.0" in built.output, built.describe()
        config = json.loads(buildah.ok("inspect", "--type", "image", image))
        labels = config["OCIv1"]["config"]["Labels"]
        assert {k: labels.get(k) for k in (LABEL_KEY, LABEL_NAME, LABEL_VERSION, LABEL_PYTHON, LABEL_PLATFORM)} == {
            LABEL_KEY: key, LABEL_NAME: "train", LABEL_VERSION: "1", LABEL_PYTHON: "3.11", LABEL_PLATFORM: BASE_PLATFORM}
        layout = push_oci(buildah, image, tmp_path / "oci")
    assert scan_oci(layout, [*feed.secrets, azurite.key]) == []
    installed = layer_members(layout)
    site = "opt/privpkg-env/lib/python3.11/site-packages/"
    assert {site + "alpha_pkg.py", site + "pkg_a.py", site + "pkg_t.py", site + "pkg_t-1.0.dist-info/WHEEL"} <= installed
    built_for = {cp for cp in ("cp311", "cp312") for _, blob in oci_blobs(layout) if f'BUILT_FOR = "{cp}"'.encode() in blob}
    assert built_for == {"cp311"}, "the image got the wheel of another Python"
    assert not any(m.startswith(("tmp/privpkg-context", "run/secrets")) and m.rstrip("/") not in ("tmp/privpkg-context", "run/secrets")
                   for m in installed), "the bind-mounted context or a secret was committed"
    cli.outputs.check()


def test_scan_finds_a_planted_leak(buildah: Buildah, feed: FeedServer, tmp_path: Path) -> None:
    """An ENV holding one PAT (the config and its history) and a copied file holding the other
    (a layer only) are each found, in different blobs. FROM scratch: what is scanned is the same
    OCI layout, and the build takes a second instead of copying the base image's tree."""
    import secrets

    ctx = tmp_path / "leaky"
    ctx.mkdir()
    (ctx / "token.txt").write_text(feed.secret_b + "\n")
    # Signed URLs, no known secret in them: an Azure SAS in the config (an ENV) and an S3
    # presigned URL in a layer of its own; each must be found by its signature parameter alone.
    sas_sig = secrets.token_urlsafe(32).replace("-", "%2B").replace("_", "%2F")
    sas = f"https://acct.blob.core.windows.net/c/x.whl?sv=2024-05-04&se=2030-01-01&sp=r&sig={sas_sig}"
    amz = (f"https://b.s3.amazonaws.com/x.whl?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=600"
           f"&X-Amz-SignedHeaders=host&X-Amz-Signature={secrets.token_hex(32)}")
    (ctx / "presigned.txt").write_text(amz + "\n")
    (ctx / "Dockerfile").write_text(f"FROM scratch\nENV FEED_CONFIG={feed.secret_a}\nENV WHEEL_URL=\"{sas}\"\n"
                                    "COPY token.txt /etc/feed-token\nCOPY presigned.txt /etc/wheel-url\n")
    with buildah.build(ctx) as (image, built):
        assert built.returncode == 0, built.describe()
        layout = push_oci(buildah, image, tmp_path / "oci")
    found = scan_oci(layout, [feed.secret_a, feed.secret_b])
    a = {f.split(":")[0] for f in found if feed.secret_a[:4] in f}
    b = {f.split(":")[0] for f in found if feed.secret_b[:4] in f}
    assert a and b and not (a & b), found
    # The SAS: in the config, where the ENV with the PAT is (its `&` written `\u0026` there).
    sig = {f.split(":")[0] for f in found if "a signature (&sig=" in f or "a signature (\\u0026sig" in f}
    assert sig == a, found
    # The S3 URL: in the layer (with the copied PAT file: buildah commits one layer), by X-Amz-Signature.
    assert {f.split(":")[0] for f in found if "a signature (X-Amz-Signa" in f} == b, found


def test_secret_mount_build_downloads_the_feed_wheel_in_the_build(
    feed: FeedServer, buildah: Buildah, base_image: str, make_env: Callable[..., dict[str, str]],
    store_connection: Callable[..., object], tmp_path: Path,
) -> None:
    """--secret-mount: the feed wheels are downloaded by pip inside the one RUN that mounts the
    netrc (chroot isolation shares the host's loopback, where the feed listens); a privpkg://
    wheel of a local workspace still comes from the host-side wheelhouse. ``privpkg env netrc``
    writes the netrc (a new 0600 file outside the context, for the feed's host only) and prints
    the build command, which is run as printed; the PAT is in no blob of the image."""
    import shlex
    import stat

    cli = PrivpkgCLI(make_env(), Outputs(*feed.secrets))
    cli.ok("workspace", "add", WS, "--local", tmp_path / "ws")
    ours = make_wheel(tmp_path / "dist", "alpha-pkg", "1.0")
    ref = cli.ok("wheel", "add", ours, "--workspace", WS).strip().splitlines()[-1]
    store_connection("orgA", feed.base + "/orgA/", feed.secret_a)
    feed_wheel = tmp_path / "feed" / "a" / "pkg_a-1.0-py3-none-any.whl"
    per_python = _per_python(feed_wheel.parent)
    lock = tmp_path / "pylock.toml"
    lock.write_text(_pylock([("alpha-pkg", "1.0", ref, ours), ("pkg-a", "1.0", feed.index_a + "pkg-a/", feed_wheel),
                             ("pkg-t", "1.0", feed.index_a + "pkg-t/", per_python)]))
    ctx = tmp_path / "ctx"
    printed = cli.ok("env", "dockerfile", "--lock", lock, "-o", ctx, "--base-image", base_image, *BASE_TARGET, "--secret-mount", "--check")
    assert f"netrc: privpkg env netrc {ctx} -o NETRC_FILE" in printed
    assert sorted(p.name for p in (ctx / "wheels").iterdir()) == [ours.name]
    assert not feed.log(), "the host fetched the feed wheels itself"
    assert per_python[0].name in (ctx / "requirements.txt").read_text() and per_python[1].name not in (ctx / "requirements.txt").read_text()

    netrc = tmp_path / "secrets" / "netrc"
    netrc.parent.mkdir()
    printed = cli.ok("env", "netrc", ctx, "-o", netrc)
    assert printed.splitlines()[0] == f"wrote {netrc} (mode 0600) for 127.0.0.1 (connection orgA)"
    assert stat.S_IMODE(netrc.stat().st_mode) == 0o600
    assert netrc.read_text() == f"machine 127.0.0.1 login __token__ password {feed.secret_a}\n"
    command = shlex.split(next(line for line in printed.splitlines() if line.startswith("build: ")).removeprefix("build: "))
    assert command[:2] == ["buildah", "build"] and command[-3:] == ["-t", "IMAGE", str(ctx)], command
    for f in ctx.rglob("*"):  # the context holds no secret: the netrc is beside it, and only until the build is done
        if f.is_file():
            assert_no_secret(f.read_bytes().decode("latin-1"), *feed.secrets)
    try:
        with buildah.build(ctx, *command[2:-3]) as (image, built):  # the printed arguments, as printed
            assert built.returncode == 0, built.describe()
            layout = push_oci(buildah, image, tmp_path / "oci")
    finally:
        netrc.unlink()
    assert "Successfully installed alpha-pkg-1.0 pkg-a-1.0 pkg-t-1.0" in built.output, built.describe()
    assert_no_secret(built.output, *feed.secrets)
    for wheel in (feed_wheel, per_python[0]):
        assert any(e.path.endswith("/" + wheel.name) and e.status == 200 and e.auth for e in feed.log()), feed.log_text()
    assert not any(e.path.endswith("/" + per_python[1].name) for e in feed.log()), feed.log_text()
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
    assert assert_one_error_line(res, 2) == f"privpkg: error: {ctx / 'Dockerfile'}: 3 problems that would put a secret into the image (listed above)"
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
    cli.fails(1, "env", "dockerfile", "myenv:3", "-w", WS, "-o", out, match=f"no environment 'myenv' in workspace {WS!r}")
    cli.fails(2, "env", "dockerfile", "--lock", lock, "-o", out, match="no such lock file")
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


def test_without_the_docker_extra_the_context_is_written_and_check_is_one_line(
    feed: FeedServer, make_env: Callable[..., dict[str, str]], store_connection: Callable[..., object], venv_privpkg: Venv,
    tmp_path: Path,
) -> None:
    """Only ``--check`` needs ``privpkg[docker]`` (BuildKit's parser): privpkg installed without
    it writes a context, and ``--check`` is one line naming the extra, before anything is
    fetched or written (it was a ModuleNotFoundError traceback either way)."""
    cli = PrivpkgCLI(make_env(), Outputs(*feed.secrets))
    store_connection("orgA", feed.base + "/orgA/", feed.secret_a)
    assert not venv_privpkg.can_import("dockerfile", cli.env)
    wheel = tmp_path / "feed" / "a" / "pkg_a-1.0-py3-none-any.whl"
    lock = tmp_path / "pylock.toml"
    lock.write_text(_pylock([("pkg-a", "1.0", feed.index_a + "pkg-a/" + wheel.name, wheel)]))
    ctx = tmp_path / "ctx"
    r = cli.tool([venv_privpkg.bin / "privpkg", "env", "dockerfile", "--lock", lock, "-o", ctx, "--check"])
    want = "privpkg: error: the Dockerfile lint (--check) needs BuildKit's parser: pip install 'privpkg[docker]'"
    assert r.returncode == 1 and r.output.strip() == want, r.describe()
    assert not ctx.exists() and not feed.log()
    r = cli.tool([venv_privpkg.bin / "privpkg", "env", "dockerfile", "--lock", lock, "-o", ctx])
    assert r.returncode == 0 and "Traceback" not in r.output, r.describe()
    assert (ctx / "Dockerfile").is_file() and (ctx / "wheels" / wheel.name).read_bytes() == wheel.read_bytes()
    cli.outputs.check()


def test_a_parser_that_does_not_import_is_one_line(
    feed: FeedServer, make_env: Callable[..., dict[str, str]], store_connection: Callable[..., object], tmp_path: Path,
) -> None:
    """A ``dockerfile`` that is there but does not import (a build for another platform, or the
    project's own ``dockerfile.py`` first on ``sys.path``, as ``python -m privpkg`` puts the
    working directory): ``--check`` is one line naming the extra, and writing a context, which
    needs no parser, still works."""
    cli = PrivpkgCLI(make_env(), Outputs(*feed.secrets))
    store_connection("orgA", feed.base + "/orgA/", feed.secret_a)
    wheel = tmp_path / "feed" / "a" / "pkg_a-1.0-py3-none-any.whl"
    lock = tmp_path / "pylock.toml"
    lock.write_text(_pylock([("pkg-a", "1.0", feed.index_a + "pkg-a/" + wheel.name, wheel)]))
    broken = tmp_path / "site" / "dockerfile"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text('raise ImportError("libdockerfile.so: wrong ELF class")\n')
    project = tmp_path / "project"
    project.mkdir()
    (project / "dockerfile.py").write_text('"""The project\'s script that writes its Dockerfile."""\n')  # imports, with no parser
    for env, cwd in (({"PYTHONPATH": str(broken.parent)}, None), ({}, project)):
        r = cli("env", "dockerfile", "--lock", lock, "-o", tmp_path / "ctx", "--check", env=env, cwd=cwd)
        line = assert_one_error_line(r, 1)
        assert "the Dockerfile lint (--check) needs BuildKit's parser: pip install 'privpkg[docker]'" in line, line
        ctx = tmp_path / f"ctx-{cwd is None}"
        r = cli("env", "dockerfile", "--lock", lock, "-o", ctx, env=env, cwd=cwd)
        assert r.returncode == 0 and (ctx / "Dockerfile").is_file(), r.stdout + r.stderr
    cli.outputs.check()


def test_the_image_target_chooses_the_wheels(
    feed: FeedServer, make_env: Callable[..., dict[str, str]], store_connection: Callable[..., object], tmp_path: Path,
) -> None:
    """The lock is selected for the image's Python, not privpkg's: --python, or the version a
    python:X.Y image's tag names, else privpkg's own with a line saying so. A target no wheel
    fits, or a --python the image's tag contradicts, is one error line. Then ``env netrc``'s
    refusals, each one line, nothing written."""
    cli = PrivpkgCLI(make_env(), Outputs(*feed.secrets))
    store_connection("orgA", feed.base + "/orgA/", feed.secret_a)
    feed_wheel = tmp_path / "feed" / "a" / "pkg_a-1.0-py3-none-any.whl"
    per_python = _per_python(feed_wheel.parent)
    lock = tmp_path / "pylock.toml"
    lock.write_text(_pylock([("pkg-a", "1.0", feed.index_a + "pkg-a/", feed_wheel), ("pkg-t", "1.0", feed.index_a + "pkg-t/", per_python)]))

    def wheels(folder: Path) -> list[str]:
        return sorted(p.name for p in (folder / "wheels").iterdir())

    res = cli("env", "dockerfile", "--lock", lock, "-o", tmp_path / "c312", "--base-image", "python:3.12-slim-bookworm")
    assert res.returncode == 0, res.stdout + res.stderr
    assert (f"image target: CPython 3.12 on {BASE_PLATFORM} (Python 3.12 from the base image's tag; "
            f"{BASE_PLATFORM}: the base image's libc on this host's architecture)") in res.stdout
    assert wheels(tmp_path / "c312") == sorted([feed_wheel.name, per_python[1].name])
    # A warning is a privpkg: warning: line on stderr, as every other one.
    assert res.stderr == ("privpkg: warning: base image python:3.12-slim-bookworm is not pinned by digest; "
                          "give --base-image NAME@sha256:...\n"), res.stderr
    assert f'{LABEL_PYTHON}="3.12"' in (tmp_path / "c312" / "Dockerfile").read_text()

    res = cli("env", "dockerfile", "--lock", lock, "-o", tmp_path / "c311", "--base-image", "localhost/base:1",
              "--platform", f"musllinux_1_1_{platform.machine()}", "--check")
    assert res.returncode == 0, res.stdout + res.stderr
    # --check while writing says the lint's result, in --check alone's words.
    assert f"{tmp_path / 'c311' / 'Dockerfile'}: no secret, user info or signature found" in res.stdout.splitlines(), res.stdout
    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"Python {host} is privpkg's own (the base image's is unknown): give --python X.Y if localhost/base:1 has another" in res.stdout
    own = next(w.name for w in per_python if w.name.split("-")[2] == "cp" + host.replace(".", ""))
    assert wheels(tmp_path / "c311") == sorted([feed_wheel.name, own])

    cli.fails(2, "env", "dockerfile", "--lock", lock, "-o", tmp_path / "c310", "--python", "3.10", "--base-image", "localhost/base:1", match=(
        "no artifact of pkg-t 1.0 in the lock fits the image (CPython 3.10 on "))
    cli.fails(2, "env", "dockerfile", "--lock", lock, "-o", tmp_path / "cx", "--python", "3.11", "--base-image", "python:3.12-slim",
              match="--python 3.11, but the base image python:3.12-slim has Python 3.12")
    cli.fails(2, "env", "dockerfile", "--lock", lock, "-o", tmp_path / "cx", "--platform", "win_amd64", match="give a manylinux or musllinux tag")
    assert not (tmp_path / "c310").exists() and not (tmp_path / "cx").exists()

    cli.fails(2, "env", "netrc", tmp_path / "c312", "-o", tmp_path / "n", match="written without --secret-mount")
    sm = tmp_path / "sm"
    cli.ok("env", "dockerfile", "--lock", lock, "-o", sm, "--secret-mount", "--python", "3.12")
    cli.fails(2, "env", "netrc", sm, "-o", sm / "netrc", match="inside the build context")
    (tmp_path / "n").write_text("mine\n")
    cli.fails(2, "env", "netrc", sm, "-o", tmp_path / "n", match="exists: the netrc is written only to a new file")
    assert (tmp_path / "n").read_text() == "mine\n" and not (sm / "netrc").exists()
    cli.outputs.check()
