"""Container images for the tests, built with buildah (Debian's package; no daemon, no registry).

buildah runs as root with ``--storage-driver vfs --isolation chroot``, its storage kept outside
the repository under ``~/.cache/privpkg-tests/images``,
so the base image is made once per machine: a minimal Debian bookworm with python3 and
python3-venv, made by debootstrap from Debian's packages (the machine's apt mirror), docs and apt
lists removed, imported into buildah as ``localhost/privpkg-test-base``. No registry is
reachable here, so every build uses ``--pull-never``.

:func:`scan_oci` is the leak check: ``buildah push IMG oci:DIR`` writes every layer blob (gzip
or plain tar), the config (labels, environment, history) and the manifests; each is searched,
decompressed, for the given secrets in every spelling :func:`support.env.secret_forms` knows,
and for signature parameters with a value.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.builds import locked
from support.env import Result, clean_env, missing_tool, run, secret_forms

BASE = "localhost/privpkg-test-base"
SUITE = "bookworm"
#: Signature parameters with a value long enough to be a real one (the base image's own files
#: name ``sig=`` in code, never with such a value).
#: A config's JSON (Go's encoder) writes ``&`` as ``\u0026``: a SAS in an ENV or a history line reads so.
SIGNATURE = re.compile(rb"((?:[?&]|\\u0026)sig=[A-Za-z0-9%/+]{16,}|X-Amz-Signature=[0-9a-f]{16,}|X-Amz-Credential=[A-Za-z0-9%/_-]{8,})")
#: Literal parts of SIGNATURE: found with bytes.find (fast), then the pattern is tried there
#: (a regex over a 130 MB layer takes seconds; these finds take milliseconds).
_ANCHORS = (b"sig=", b"X-Amz-Signature=", b"X-Amz-Credential=")


def find_signature(data: bytes) -> bytes | None:
    for anchor in _ANCHORS:
        at = data.find(anchor)
        while at != -1:
            m = (SIGNATURE.match(data, max(0, at - 1), at + 200) or SIGNATURE.match(data, max(0, at - 6), at + 200)
                 or SIGNATURE.match(data, at, at + 200))
            if m:
                return m.group(1)
            at = data.find(anchor, at + 1)
    return None


def cache_dir() -> Path:
    return Path.home() / ".cache" / "privpkg-tests" / "images"


@dataclass
class Buildah:
    exe: str
    root: Path  # containers/storage root (vfs)
    env: dict[str, str]

    def __call__(self, *args: str | Path, timeout: float = 300) -> Result:
        return run([self.exe, "--root", self.root / "storage", "--runroot", self.root / "run", "--storage-driver", "vfs", *args],
                   self.env, timeout=timeout)

    def ok(self, *args: str | Path, timeout: float = 300) -> str:
        r = self(*args, timeout=timeout)
        assert r.returncode == 0, r.describe()
        return r.output

    @contextlib.contextmanager
    def build(self, context: Path, *extra: str) -> Iterator[tuple[str, Result]]:
        """Build ``context`` as a fresh tag; yields (tag, result). The image is removed
        afterwards: with vfs every image is a full copy of its tree (about 150 MB here)."""
        tag = f"localhost/privpkg-test-{secrets.token_hex(4)}"
        try:
            yield tag, self("build", "--isolation", "chroot", "--pull-never", "--layers=false", "-t", tag, *extra, context)
        finally:
            self("rmi", "-f", tag)

    def digest(self, image: str) -> str | None:
        r = self("images", "--no-trunc", "--format", "{{.Digest}}", image)
        out = r.output.strip().splitlines()
        return out[0] if r.returncode == 0 and out and out[0].startswith("sha256:") else None


def _need_buildah() -> str:
    exe = shutil.which("buildah")
    if exe is None:
        missing_tool("buildah is not installed (Debian: apt-get install buildah; .ci/run installs it)")
    if os.geteuid() != 0:
        missing_tool("buildah builds here as root (vfs storage, chroot isolation); run the tests as root")
    return exe


def _make_base(b: Buildah, work: Path) -> float:
    """debootstrap a minimal Debian with python3 into ``work`` and commit it as BASE; seconds."""
    deboot = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    if not Path(deboot).exists():
        missing_tool("debootstrap is not installed (Debian: apt-get install debootstrap; .ci/run installs it)")
    start = time.monotonic()
    rootfs = work / "rootfs"
    r = run([deboot, "--variant=minbase", "--include=python3,python3-venv", SUITE, rootfs, "http://deb.debian.org/debian"], b.env, timeout=900)
    assert r.returncode == 0, r.describe()[-4000:]
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"):
        shutil.rmtree(rootfs / junk, ignore_errors=True)
    ctr = b.ok("from", "scratch").strip().splitlines()[-1]
    try:
        b.ok("copy", ctr, f"{rootfs}/", "/")
        b.ok("config", "--cmd", "/usr/bin/python3", ctr)
        b.ok("commit", "-q", ctr, BASE)
    finally:
        b("rm", ctr)
    return time.monotonic() - start


@pytest.fixture(scope="session")
def buildah(tmp_path_factory: pytest.TempPathFactory) -> Buildah:
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    env = clean_env(tmp_path_factory.mktemp("buildah-home"))
    return Buildah(_need_buildah(), root, env)


@pytest.fixture(scope="session")
def base_image(buildah: Buildah) -> str:
    """``localhost/privpkg-test-base@sha256:...``, made once per machine (see the module docstring)."""
    with locked(buildah.root / "base.lock"):
        digest = buildah.digest(BASE)
        if digest is None:
            with tempfile.TemporaryDirectory(dir=buildah.root) as work:
                _make_base(buildah, Path(work))
            digest = buildah.digest(BASE)
    assert digest, "the base image has no digest"
    return f"{BASE}@{digest}"


@functools.lru_cache(maxsize=1)  # the scan and the listing of one layout decompress it once
def oci_blobs(layout: Path) -> tuple[tuple[str, bytes], ...]:
    """Every blob of an OCI layout, decompressed: (digest, bytes)."""
    out = []
    for blob in sorted((layout / "blobs" / "sha256").iterdir()):
        data = blob.read_bytes()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        out.append((blob.name, data))
    return tuple(out)


def scan_oci(layout: Path, secrets: Sequence[str]) -> list[str]:
    """What leaked into the image at ``layout`` (``buildah push IMG oci:DIR``): one line per
    blob and finding, the value never shown. Empty: clean."""
    needles = [(s[:4] + "...", form.encode()) for s in secrets for form in secret_forms(s)]
    found: list[str] = []
    for digest, data in oci_blobs(layout):
        for label, needle in needles:
            if needle in data:
                found.append(f"blob {digest[:12]}: secret {label}")
        sig = find_signature(data)
        if sig:
            found.append(f"blob {digest[:12]}: a signature ({sig[:12].decode(errors='replace')}...)")
    index = (layout / "index.json").read_text()
    for label, needle in needles:
        if needle.decode() in index:
            found.append(f"index.json: secret {label}")
    return found


def layer_members(layout: Path) -> set[str]:
    """The paths of every layer tar of an OCI layout (the config and manifests are not tars)."""
    import io
    import tarfile

    names: set[str] = set()
    for _, data in oci_blobs(layout):
        try:
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                names.update(m.name.removeprefix("./") for m in tar.getmembers())
        except tarfile.TarError:
            continue
    return names


def push_oci(b: Buildah, image: str, dest: Path) -> Path:
    oci_blobs.cache_clear()  # an earlier layout's blobs are not kept in memory
    b.ok("push", image, f"oci:{dest}")
    return dest
