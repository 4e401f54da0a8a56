"""A Dockerfile and build context that build a locked environment into an image with no
credential or signature in any layer, config or history (issue 10, item 7).

Two ways to get the private artifacts into the image:

- the default: every artifact is fetched on the host (privpkg:// wheels signed in this process,
  feed files through the connection that answers their URL) and checked against the lock's
  sha256 into ``wheels/`` in the context; the image installs offline from it
  (``pip install --no-index --find-links --no-deps --require-hashes``), and the context is
  bind-mounted for that one ``RUN``, so the wheelhouse is not even a layer;
- ``secret_mount=True``: the feed artifacts are downloaded in the build, in one ``RUN`` that
  mounts a netrc as a BuildKit secret (``--mount=type=secret``) and hands pip its path as a
  variable of that command only (never ``ARG``/``ENV``). Only wheels (``--only-binary :all:``),
  so no sdist build runs while the secret is mounted. privpkg:// wheels are still fetched on the
  host: a signed URL never enters the build.

The image is labelled with the lock's cache key (:func:`cache_key`) and its base image is written
as given: pinned when the user gives ``NAME@sha256:...``. What the generated Dockerfile may hold is
checked by :mod:`privpkg.environments.dockerlint` before it is written.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from privpkg.errors import PrivpkgError, UsageError, shown

if TYPE_CHECKING:
    from privpkg.environments.pylock import Artifact

#: The image label that carries the lock's cache key (azureml named its images ``azureml_<hash>``).
LABEL_KEY = "org.privpkg.environment.cache-key"
#: The BuildKit secret id of the netrc in ``secret_mount`` mode, and where the RUN mounts it.
SECRET_ID = "privpkg-netrc"
SECRET_TARGET = f"/run/secrets/{SECRET_ID}"
WHEELS = "wheels"
REQUIREMENTS = "requirements.txt"
#: Where the context is bind-mounted for the install RUN (never copied into a layer).
CONTEXT_MOUNT = "/tmp/privpkg-context"
ENV_DIR = "/opt/privpkg-env"
#: The Dockerfile's first words: a context holding it may be rewritten by a later run.
HEADER = "# Written by privpkg env dockerfile"
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Context(NamedTuple):
    dockerfile: Path
    cache_key: str
    fetched: int  # artifacts fetched on the host into the context's wheelhouse
    pinned: bool  # the base image is pinned by digest
    build_command: str  # how to build it (buildah; docker build takes the same arguments)


def cache_key(artifacts: Iterable[Artifact]) -> str:
    """The lock's key: the sorted (name, version, file, sha256) of what it installs, never the
    environment's name or version. The one call to replace with the build cache's key function
    (privpkg.environments.cache) when it lands, so an image and a local build share a key."""
    lines = sorted(f"{a.name}\t{a.version}\t{a.filename}\t{a.sha256}" for a in artifacts)
    return "privpkg_" + hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]


def fetch_into(artifacts: Sequence[Artifact], dest: Path, *, timeout: float = 60) -> list[Path]:
    """Every artifact into ``dest``, checked against its sha256
    (:func:`privpkg.environments.fetch.fetch_artifacts`)."""
    from privpkg.environments.fetch import fetch_artifacts

    return fetch_artifacts(artifacts, dest, timeout=timeout)


def _check_artifacts(artifacts: Sequence[Artifact]) -> None:
    if not artifacts:
        raise UsageError("the lock selects no artifact to install; nothing to put in an image")
    seen: dict[str, str] = {}
    for a in artifacts:
        # Names, versions and files end up in a requirements file and a shell command line.
        if not (_NAME.match(a.name) and _VERSION.match(a.version) and _NAME.match(a.filename)):
            raise UsageError(f"the lock names an artifact this cannot write safely: {shown(a.name, 60)} {shown(a.version, 40)} {shown(a.filename, 80)}")
        if not _SHA256.match(a.sha256):
            raise UsageError(f"the lock gives {a.filename} no sha256; every artifact of an image is hash-checked")
        if seen.get(a.filename, a.sha256) != a.sha256:
            raise UsageError(f"the lock names {a.filename} twice with different sha256")
        seen[a.filename] = a.sha256


def _host_side(a: Artifact, secret_mount: bool) -> bool:
    """Whether ``a`` is fetched on the host (always, but for feed wheels in secret-mount mode)."""
    return not secret_mount or a.url.startswith("privpkg:")


def netrc_text(artifacts: Sequence[Artifact]) -> str:
    """The netrc that ``secret_mount`` mode's build needs (``--secret id=privpkg-netrc,src=FILE``):
    one ``machine`` line per feed host the build downloads from. Returned, never written here: it
    holds the connections' secrets. netrc is keyed by host alone (no scheme, port or path), so two
    connections with different secrets on one host cannot share it: that is refused."""
    from privpkg.connections.lookup import CredentialLookup

    lookup = CredentialLookup()
    by_host: dict[str, tuple[str, str, str]] = {}
    for a in artifacts:
        if _host_side(a, True):
            continue
        conn = lookup.find(a.url)
        if conn is None:
            continue  # a public file: downloaded anonymously
        if conn.auth_type != "PAT":
            raise UsageError(f"connection {conn.name!r} sends a {conn.auth_type} header, which a netrc cannot; "
                             f"build without --secret-mount (the host fetches {a.filename})")
        host = urllib.parse.urlsplit(a.url).hostname or ""
        prior = by_host.get(host)
        if prior is not None and prior[0] != conn.name:
            raise UsageError(f"connections {prior[0]!r} and {conn.name!r} both serve host {host}, and a netrc holds one secret "
                             f"per host; build without --secret-mount")
        by_host[host] = (conn.name, conn.username or "__token__", conn.secret)
    return "".join(f"machine {h} login {u} password {s}\n" for h, (_, u, s) in sorted(by_host.items()))


def render(artifacts: Sequence[Artifact], *, base_image: str, key: str, secret_mount: bool = False) -> tuple[str, str]:
    """The Dockerfile and its requirements file. Host-side artifacts are named ``name==version``
    and found in the bind-mounted wheelhouse; in secret-mount mode the feed wheels are named by
    URL (``name @ URL``). Every line carries its ``--hash``."""
    reqs: list[str] = []
    for a in sorted(artifacts, key=lambda x: (x.name, x.filename)):
        if _host_side(a, secret_mount):
            reqs.append(f"{a.name}=={a.version} --hash=sha256:{a.sha256}")
        else:
            from privpkg.environments.fetch import check_url

            check_url(a)  # pip in the build sends the netrc's secret: the host-side fetch's rules
            reqs.append(f"{a.name} @ {a.url} --hash=sha256:{a.sha256}")
    pip = [f"{ENV_DIR}/bin/python", "-m", "pip", "install", "--no-input", "--no-cache-dir", "--disable-pip-version-check",
           "--no-deps", "--require-hashes", "--no-index", "--find-links", f"{CONTEXT_MOUNT}/{WHEELS}",
           "-r", f"{CONTEXT_MOUNT}/{REQUIREMENTS}"]
    mounts = [f"--mount=type=bind,source=.,target={CONTEXT_MOUNT}"]
    if secret_mount:
        pip[4:4] = ["--only-binary", ":all:"]
        mounts.append(f"--mount=type=secret,id={SECRET_ID},target={SECRET_TARGET}")
        # The path only, as a variable of this one command: pip's requests reads NETRC.
        pip.insert(0, f"NETRC={SECRET_TARGET}")
    lines = [
        HEADER + ": the environment installed offline from this context",
        "# (every artifact hash-checked); no credential or signature is in this file or the context.",
        f"FROM {base_image}",
        f"RUN {' '.join(mounts)} \\",
        f"    python3 -m venv {ENV_DIR} && \\",
        f"    {' '.join(pip)}",
        f'ENV PATH="{ENV_DIR}/bin:$PATH" VIRTUAL_ENV="{ENV_DIR}"',
        f'LABEL {LABEL_KEY}="{key}"',
    ]
    return "\n".join(lines) + "\n", "".join(r + "\n" for r in reqs)


def _claim(out_dir: Path) -> bool:
    """Make ``out_dir`` the context, or reuse one this module wrote (its Dockerfile starts with
    HEADER: True, its files are replaced and ``wheels/`` pruned) or began (only ``wheels/``: a
    run that failed while fetching; nothing in it is removed). Any other folder is refused
    rather than overwritten."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot use {out_dir} as the build context: {exc.strerror or exc}") from None
    if not out_dir.is_dir():
        raise UsageError(f"cannot use {out_dir} as the build context: it is not a directory")
    entries = {p.name for p in out_dir.iterdir()}
    wheels_dir = (out_dir / WHEELS).is_dir() and not (out_dir / WHEELS).is_symlink()
    if not entries or (entries == {WHEELS} and wheels_dir):
        return False
    try:
        with open(out_dir / "Dockerfile", "rb") as fh:
            ours = fh.read(len(HEADER)) == HEADER.encode()
    except OSError:
        ours = False
    if not ours or (out_dir / WHEELS).is_symlink():
        raise UsageError(f"{out_dir} is not empty and holds no Dockerfile written by privpkg env dockerfile; give a new or empty directory")
    return True


def dockerfile(artifacts: Sequence[Artifact], out_dir: Path, *, base_image: str, secret_mount: bool = False,
               timeout: float = 60) -> Context:
    """Write the Dockerfile, requirements file and (host-side artifacts) wheelhouse into
    ``out_dir``. The Dockerfile is linted before it is written; a lint finding here is a bug."""
    from privpkg.environments import dockerlint
    from privpkg.fileio import shared_mode, write_atomic

    if not base_image or any(c.isspace() for c in base_image) or "://" in base_image or "@" in base_image.partition("@")[2]:
        raise UsageError(f"not an image reference: {shown(base_image, 80)}")
    if "@" in base_image and not _DIGEST.search(base_image):
        raise UsageError(f"--base-image {shown(base_image, 80)}: a digest is written NAME@sha256:<64 hex digits>")
    _check_artifacts(artifacts)
    if secret_mount:
        sdists = [a.filename for a in artifacts if not _host_side(a, True) and a.kind != "wheel"]
        if sdists:
            raise UsageError(f"--secret-mount installs wheels only (no sdist build may see the secret), but the lock has {sdists[0]}; "
                             f"build without --secret-mount")
    key = cache_key(artifacts)
    text, reqs = render(artifacts, base_image=base_image, key=key, secret_mount=secret_mount)
    findings = dockerlint.check(text, secrets={})  # its structure: pylock.load screened the lock's values
    if findings:
        raise PrivpkgError(f"the generated Dockerfile fails its own lint: {findings[0]}")
    prune = _claim(out_dir)
    host = [a for a in artifacts if _host_side(a, secret_mount)]
    wheels = out_dir / WHEELS
    wheels.mkdir(exist_ok=True)
    fetch_into(host, wheels, timeout=timeout)
    keep = {a.filename for a in host}
    for stale in wheels.iterdir() if prune else ():
        # A context reused for another lock must not offer pip a file this lock does not name.
        if stale.name not in keep and stale.is_file() and not stale.is_symlink():
            os.unlink(stale)
    write_atomic(out_dir / REQUIREMENTS, reqs.encode(), shared_mode())
    write_atomic(out_dir / "Dockerfile", text.encode(), shared_mode())
    write_atomic(out_dir / ".dockerignore", b"# the context is the Dockerfile, requirements.txt and wheels/ only\n*\n!requirements.txt\n!wheels\n", shared_mode())
    secret = f" --secret id={SECRET_ID},src=NETRC_FILE" if secret_mount else ""
    command = f"buildah build{secret} -t IMAGE {out_dir}"
    return Context(out_dir / "Dockerfile", key, len(host), bool(_DIGEST.search(base_image)), command)
