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
  host: a signed URL never enters the build. A netrc is keyed by host alone, so during that RUN
  the secret could reach any URL of its host; what bounds it is that pip there fetches only the
  requirements file's URLs (each checked as the host-side fetch checks them), with
  ``--no-index``, ``--no-deps`` and every hash required.

The artifacts are selected for the image's interpreter, not privpkg's: an :class:`ImageTarget`
(CPython ``X.Y`` on a manylinux/musllinux platform tag) made into the wheel tags and marker
environment of a :class:`~privpkg.environments.pylock.Target` without running it
(:func:`resolve_target` defaults it from a ``python:X.Y...`` base image's tag, else from this
host). The image is labelled with :func:`image_key`, the key of what it installs (the selected
files and that target), plus the environment's name and version when it is a registered one.
Its base image is written as given: pinned when the user gives ``NAME@sha256:...``. What the
generated Dockerfile may hold is checked by :mod:`privpkg.environments.dockerlint` before it is
written.

In secret-mount mode the netrc is written by :func:`write_netrc` from the context's own
requirements file (the URLs the build's pip will fetch, nothing else), never into the context.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from privpkg.errors import PrivpkgError, UsageError, shown

if TYPE_CHECKING:
    from privpkg.environments.pylock import Artifact, Target

#: The image labels: the key of what the image installs (:func:`image_key`; azureml named its
#: images ``azureml_<hash>``), its target, and the registered environment it was made from.
LABEL_KEY = "org.privpkg.env.key"
LABEL_NAME = "org.privpkg.env.name"
LABEL_VERSION = "org.privpkg.env.version"
LABEL_PYTHON = "org.privpkg.env.python"
LABEL_PLATFORM = "org.privpkg.env.platform"
#: The image key's format: a change here gives every image a new key.
KEY_FORMAT = "1"
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
    image_key: str
    fetched: int  # artifacts fetched on the host into the context's wheelhouse
    pinned: bool  # the base image is pinned by digest
    build_command: str  # how to build it (buildah; docker build takes the same arguments)


# ------------------------------------------------------------------------------ the image's target

#: What ``--platform`` takes: a manylinux (glibc) or musllinux (musl) platform tag, in PEP 600 /
#: 656 form or as a legacy manylinux alias.
_PLATFORM = re.compile(r"^(?:(?P<libc>manylinux|musllinux)_(?P<major>[0-9]+)_(?P<minor>[0-9]+)|manylinux(?P<legacy>1|2010|2014))_"
                       r"(?P<arch>x86_64|i686|aarch64|armv7l|ppc64le|s390x|riscv64)$")
_LEGACY = {"1": 5, "2010": 12, "2014": 17}  # manylinux1/2010/2014 are glibc 2.5, 2.12, 2.17
_LEGACY_ARCHS = {"1": ("x86_64", "i686"), "2010": ("x86_64", "i686"), "2014": ("x86_64", "i686", "aarch64", "armv7l", "ppc64le", "s390x")}
_PYTHON = re.compile(r"^3\.(?P<minor>[0-9]{1,2})(?:\.[0-9]{1,3})?$")
#: Official python images by their repository names (Docker Hub's library).
_PYTHON_REPOS = frozenset({"python", "library/python", "docker.io/python", "docker.io/library/python", "index.docker.io/library/python"})
_IMAGE_TAG_PYTHON = re.compile(r"^(?P<minor>3\.[0-9]{1,2})(?P<patch>\.[0-9]{1,3})?(?P<rest>.*)$")
#: The glibc of the Debian releases python images are built on (their tags name the release).
_DEBIAN_GLIBC = {"buster": 28, "bullseye": 31, "bookworm": 36, "trixie": 41}


class ImageTarget(NamedTuple):
    """The interpreter an image installs into: CPython ``python`` (``X.Y`` or ``X.Y.Z``) on
    ``platform`` (a manylinux/musllinux tag, e.g. ``manylinux_2_36_x86_64``)."""

    python: str
    platform: str

    @property
    def minor(self) -> str:
        """``X.Y``."""
        return ".".join(self.python.split(".")[:2])

    def describe(self) -> str:
        return f"CPython {self.python} on {self.platform}"


def _platform_parts(platform: str) -> tuple[str, int, int, str]:
    """(libc, major, minor, arch) of a platform tag; one-line UsageError for anything else."""
    m = _PLATFORM.match(platform)
    if m is None:
        raise UsageError(f"--platform {shown(platform, 60)}: give a manylinux or musllinux tag, such as "
                         f"manylinux_2_36_x86_64 (glibc 2.36) or musllinux_1_2_x86_64")
    arch = m["arch"]
    if m["legacy"]:
        if arch not in _LEGACY_ARCHS[m["legacy"]]:
            raise UsageError(f"--platform {platform}: manylinux{m['legacy']} has no {arch} wheels")
        return "manylinux", 2, _LEGACY[m["legacy"]], arch
    libc, major, minor = m["libc"], int(m["major"]), int(m["minor"])
    oldest = 5 if arch in ("x86_64", "i686") else 17  # manylinux began at glibc 2.5 (x86), 2.17 (others)
    if libc == "manylinux" and (major != 2 or minor < oldest):
        raise UsageError(f"--platform {platform}: glibc {major}.{minor} has no manylinux tag for {arch} (the oldest is 2.{oldest})")
    if libc == "musllinux" and major != 1:
        raise UsageError(f"--platform {platform}: musl versions are 1.x")
    return libc, major, minor, arch


def platform_tags(platform: str) -> list[str]:
    """The platform tags an interpreter on ``platform`` takes, most preferred first, in the
    order :mod:`packaging.tags` (pip's) gives its own: ``linux_ARCH``, then the libc's tags from
    the given version down (manylinux's legacy aliases beside their glibc)."""
    libc, major, minor, arch = _platform_parts(platform)
    tags = [f"linux_{arch}"]
    if libc == "musllinux":
        return tags + [f"musllinux_{major}_{m}_{arch}" for m in range(minor, -1, -1)]
    legacy = {glibc: name for name, glibc in _LEGACY.items() if arch in _LEGACY_ARCHS[name]}
    for m in range(minor, (5 if arch in ("x86_64", "i686") else 17) - 1, -1):
        tags.append(f"manylinux_2_{m}_{arch}")
        if m in legacy:
            tags.append(f"manylinux{legacy[m]}_{arch}")
    return tags


def check_python(python: str) -> str:
    """``python`` if it is ``3.Y`` or ``3.Y.Z`` (Y >= 7), else a one-line UsageError."""
    m = _PYTHON.match(python)
    if m is None or int(m["minor"]) < 7:
        raise UsageError(f"--python {shown(python, 20)}: give the image's CPython version as X.Y or X.Y.Z (3.7 or newer), such as 3.12")
    return python


def pylock_target(target: ImageTarget) -> Target:
    """The wheel tags and marker environment of ``target``, as :mod:`packaging` gives them for
    CPython there, worked out here (the image's interpreter is not run). ``X.Y`` counts as
    ``X.Y.0`` where a marker compares the full version."""
    from packaging.tags import compatible_tags, cpython_tags

    from privpkg.environments.pylock import Target

    check_python(target.python)
    plats = platform_tags(target.platform)
    arch = _platform_parts(target.platform)[3]
    major, minor = (int(x) for x in target.minor.split("."))
    interp = f"cp{major}{minor}"
    # The abi list explicitly: packaging's default reads the *running* interpreter's build
    # (debug, pymalloc) for it.
    tags = [*cpython_tags((major, minor), [interp], plats), *compatible_tags((major, minor), interp, plats)]
    full = target.python if target.python.count(".") == 2 else target.python + ".0"
    env = {"implementation_name": "cpython", "implementation_version": full, "os_name": "posix", "platform_machine": arch,
           "platform_python_implementation": "CPython", "platform_release": "", "platform_system": "Linux", "platform_version": "",
           "python_full_version": full, "python_version": target.minor, "sys_platform": "linux"}
    return Target(tuple(str(t) for t in tags), env)


def _image_tag(base_image: str) -> tuple[str, str] | None:
    """(repository, tag) of an image reference, the digest dropped; None without a tag."""
    ref = base_image.partition("@")[0]
    repo, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:  # "host:5000/img": the colon was a port's
        return None
    return repo.lower(), tag.lower()


def image_python(base_image: str) -> str | None:
    """The CPython version an official ``python:X.Y...`` image's tag names, else None."""
    parsed = _image_tag(base_image)
    if parsed is None or parsed[0] not in _PYTHON_REPOS:
        return None
    m = _IMAGE_TAG_PYTHON.match(parsed[1])
    if m is None or m["rest"][:1] not in ("", "-") and not m["rest"][:1].isalpha():
        return None
    # A pre-release (3.13.0rc1) names its X.Y only: its full version is not a release's.
    return m["minor"] + (m["patch"] or "") if m["rest"][:1] in ("", "-") else m["minor"]


def image_libc(base_image: str) -> tuple[str, int, int] | None:
    """(libc, major, minor) that an official python image's tag names (``-alpine``: musl 1.2;
    ``-bookworm``...: that Debian's glibc), else None."""
    parsed = _image_tag(base_image)
    if parsed is None or parsed[0] not in _PYTHON_REPOS:
        return None
    words = set(re.split(r"[-.0-9]+", parsed[1]))
    if any(w.startswith("alpine") for w in words):
        return ("musllinux", 1, 2)
    for release, glibc in _DEBIAN_GLIBC.items():
        if release in words:
            return ("manylinux", 2, glibc)
    return None


def host_platform() -> str | None:
    """This host's own manylinux/musllinux tag (its libc's version and its architecture), or
    None on a host that is not Linux."""
    from packaging.tags import platform_tags as host_tags

    return next((t for t in host_tags() if t.startswith(("manylinux_", "musllinux_"))), None)


def resolve_target(base_image: str, python: str | None, platform: str | None) -> tuple[ImageTarget, list[str]]:
    """The image's target and what it was taken from (for one line of output each): ``--python``
    given, else the version a ``python:X.Y...`` base image's tag names, else this interpreter's
    (a note says so); ``--platform`` given, else this host's architecture with the libc a python
    image's tag names, else this host's libc. One-line UsageError when the two disagree."""
    notes: list[str] = []
    from_image = image_python(base_image)
    if python is not None:
        check_python(python)
        if from_image is not None and from_image.split(".")[:2] != python.split(".")[:2]:
            raise UsageError(f"--python {python}, but the base image {shown(base_image, 80)} has Python {from_image}")
    elif from_image is not None:
        python = from_image
        notes.append(f"Python {python} from the base image's tag")
    else:
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        notes.append(f"Python {python} is privpkg's own (the base image's is unknown): give --python X.Y if {shown(base_image, 200)} has another")
    libc = image_libc(base_image)
    if platform is not None:
        given = _platform_parts(platform)
        if libc is not None and libc[0] != given[0]:
            raise UsageError(f"--platform {platform}, but the base image {shown(base_image, 80)} uses "
                             f"{'musl' if libc[0] == 'musllinux' else 'glibc'}")
    else:
        host = host_platform()
        if host is None:
            raise UsageError("this host is not Linux: give the image's --platform (such as manylinux_2_36_x86_64)")
        arch = _platform_parts(host)[3]
        if libc is not None:
            platform = f"{libc[0]}_{libc[1]}_{libc[2]}_{arch}"
            notes.append(f"{platform}: the base image's libc on this host's architecture")
        else:
            platform = host
            notes.append(f"{platform}: this host's platform (give --platform for another)")
    return ImageTarget(python, platform), notes


# ------------------------------------------------------------------------------ the Dockerfile


def image_key(artifacts: Iterable[Artifact], target: ImageTarget) -> str:
    """The key of what the image installs: the sorted (name, version, file, sha256) of the
    selected artifacts, as the local build cache hashes them (:func:`privpkg.environments.cache.key`),
    plus the image's interpreter (CPython ``X.Y``) and platform tag where the local key has the
    host interpreter's identity; never the environment's name or version, nor the base image."""
    h = hashlib.sha256()
    rows = sorted(f"{a.name}\t{a.version}\t{a.filename}\t{a.sha256}" for a in artifacts)
    for part in ("privpkg-image", KEY_FORMAT, "cpython", target.minor, target.platform, *rows):
        h.update(part.encode())
        h.update(b"\0")
    return "privpkg_" + h.hexdigest()[:32]


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


def render(artifacts: Sequence[Artifact], *, base_image: str, labels: Mapping[str, str], secret_mount: bool = False) -> tuple[str, str]:
    """The Dockerfile and its requirements file. Host-side artifacts are named ``name==version``
    and found in the bind-mounted wheelhouse; in secret-mount mode the feed wheels are named by
    URL (``name @ URL``). Every line carries its ``--hash``. ``labels`` go into one LABEL
    instruction (their values are checked by :func:`image_labels`)."""
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
        "LABEL " + " ".join(f'{k}="{v}"' for k, v in labels.items()),
    ]
    return "\n".join(lines) + "\n", "".join(r + "\n" for r in reqs)


def _claim(out_dir: Path) -> bool:
    """Make ``out_dir`` the context, or reuse one this module wrote (its Dockerfile starts with
    HEADER: True, its files are replaced and ``wheels/`` pruned) or began (only ``wheels/``: a
    run that failed while fetching; nothing in it is removed). Any other folder is refused
    rather than overwritten."""
    from privpkg.fileio import FileWriteError

    if out_dir.exists() and not out_dir.is_dir():  # the wrong kind of target: a usage error
        raise UsageError(f"cannot use {out_dir} as the build context: it is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a target that cannot be written: exit 1, as every other write's
        raise FileWriteError(f"cannot use {out_dir} as the build context: {exc.strerror or exc}", exc.errno) from None
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


def image_labels(key: str, target: ImageTarget, name: str | None = None, version: str | None = None) -> dict[str, str]:
    """The image's labels: its key and target, and the registered environment's name and
    version when it was made from one. Each value is checked to be plain (it goes between
    double quotes in the Dockerfile)."""
    out = {LABEL_KEY: key, LABEL_PYTHON: target.python, LABEL_PLATFORM: target.platform}
    if name is not None:
        out[LABEL_NAME] = name
    if version is not None:
        out[LABEL_VERSION] = version
    for k, v in out.items():
        if not _NAME.match(v):
            raise UsageError(f"cannot write label {k}: {shown(v, 60)!r}")
    return out


def dockerfile(artifacts: Sequence[Artifact], out_dir: Path, *, base_image: str, target: ImageTarget | None = None,
               secret_mount: bool = False, name: str | None = None, version: str | None = None, timeout: float = 60) -> Context:
    """Write the Dockerfile, requirements file and (host-side artifacts) wheelhouse into
    ``out_dir``, for ``artifacts`` as selected for ``target`` (:func:`pylock_target`; default:
    :func:`resolve_target`'s for ``base_image``, for the labels and key).
    ``name``/``version``: the registered environment they come from, for the labels. The
    Dockerfile is linted before it is written; a lint finding here is a bug."""
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
    target = target or resolve_target(base_image, None, None)[0]
    key = image_key(artifacts, target)
    text, reqs = render(artifacts, base_image=base_image, labels=image_labels(key, target, name, version), secret_mount=secret_mount)
    # Its structure (pylock.load screened the lock's values), where the parser is installed:
    # writing a context needs no extra, only --check does.
    findings = dockerlint.check(text, secrets={}) if dockerlint.parser_available() else []
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
    command = f"buildah build{secret} -t IMAGE {_quote(out_dir)}"
    return Context(out_dir / "Dockerfile", key, len(host), bool(_DIGEST.search(base_image)), command)


def _quote(path: Path | str) -> str:
    import shlex

    return shlex.quote(str(path))


# ------------------------------------------------------------------------------ secret-mount's netrc

#: A requirements line of the build's own download (secret-mount mode), as :func:`render` writes it.
_URL_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*) @ (?P<url>\S+) --hash=sha256:(?P<sha>[0-9a-f]{64})$")
_HOST_LINE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9][A-Za-z0-9.+!_-]* --hash=sha256:[0-9a-f]{64}$")
#: What a netrc token may not hold: it is split on whitespace, and quotes/backslashes/'#' are
#: read specially by some parsers (Python's netrc among them).
_NETRC_UNSAFE = re.compile(r"[\s\"'\\#]")


def build_downloads(context: Path) -> list[Artifact]:
    """The files a secret-mount context's build downloads itself: the ``name @ URL`` lines of
    the requirements file :func:`dockerfile` wrote into ``context``. One-line UsageError for a
    folder that is not such a context, or a line :func:`render` would not write."""
    from privpkg.environments.pylock import Artifact

    dockerfile_text = _read_own(context / "Dockerfile")
    if dockerfile_text is None or not dockerfile_text.startswith(HEADER):
        raise UsageError(f"{context} holds no Dockerfile written by privpkg env dockerfile")
    if f"id={SECRET_ID}," not in dockerfile_text:
        raise UsageError(f"{context} was written without --secret-mount: its build downloads nothing and needs no netrc")
    text = _read_own(context / REQUIREMENTS)
    if text is None:
        raise UsageError(f"cannot read {context / REQUIREMENTS} as a file privpkg env dockerfile wrote")
    out: list[Artifact] = []
    for n, line in enumerate(text.splitlines(), start=1):
        m = _URL_LINE.match(line)
        if m is None:
            if _HOST_LINE.match(line):
                continue  # installed from the context's wheelhouse: no download
            # The line number only: whatever the file holds is not echoed.
            raise UsageError(f"{context / REQUIREMENTS}: line {n} is not one privpkg env dockerfile writes")
        url = m["url"]
        filename = url.partition("#")[0].rsplit("/", 1)[-1]
        out.append(Artifact(m["name"], "", url, filename, m["sha"], "wheel"))
    return out


def _read_own(path: Path, limit: int = 1 << 20) -> str | None:
    """The text of ``path`` if it is a regular file (a symlink is not followed) of at most
    ``limit`` bytes in UTF-8, else None: a context's files are read as privpkg wrote them."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8") if len(data) <= limit else None
    except UnicodeDecodeError:
        return None


def netrc_text(artifacts: Sequence[Artifact]) -> tuple[str, list[tuple[str, str]]]:
    """The netrc that ``secret_mount`` mode's build needs (``--secret id=privpkg-netrc,src=FILE``)
    and its (host, connection name) pairs: one ``machine`` line per feed host the build
    downloads from. Returned, never written here: it holds the connections' secrets. A URL is
    checked by the host-side fetch's rules first (:func:`privpkg.environments.fetch.check_url`)
    and gets a line only from the connection that answers it. netrc is keyed by host alone (no
    scheme, port or path), so two connections that would need different credentials on one host
    cannot share it: that is refused."""
    from privpkg.connections.lookup import CredentialLookup
    from privpkg.environments.fetch import check_url

    lookup = CredentialLookup()
    by_host: dict[str, tuple[str, str, str]] = {}
    for a in artifacts:
        if _host_side(a, True):
            continue
        check_url(a)
        conn = lookup.find(a.url)
        if conn is None:
            continue  # a public file: downloaded anonymously
        if conn.auth_type != "PAT":
            raise UsageError(f"connection {conn.name!r} sends a {conn.auth_type} header, which a netrc cannot; "
                             f"build without --secret-mount (the host fetches {a.filename})")
        user = conn.username or "__token__"
        if _NETRC_UNSAFE.search(user) or _NETRC_UNSAFE.search(conn.secret) or not conn.secret:
            raise UsageError(f"connection {conn.name!r}: its username or secret holds a space, quote, '#' or backslash, which a "
                             f"netrc cannot hold; build without --secret-mount")
        host = (urllib.parse.urlsplit(a.url).hostname or "").lower()
        prior = by_host.get(host)
        if prior is not None and (prior[1], prior[2]) != (user, conn.secret):
            raise UsageError(f"connections {prior[0]!r} and {conn.name!r} both serve host {host} with different credentials, and a "
                             f"netrc holds one per host; build without --secret-mount")
        by_host.setdefault(host, (conn.name, user, conn.secret))
    text = "".join(f"machine {h} login {u} password {s}\n" for h, (_, u, s) in sorted(by_host.items()))
    return text, [(h, c) for h, (c, _, _) in sorted(by_host.items())]


def write_netrc(context: Path, dest: Path) -> list[tuple[str, str]]:
    """Write the netrc for the build of ``context`` (:func:`build_downloads`, :func:`netrc_text`)
    to ``dest``: a new file, 0600, created with ``O_EXCL`` and never through a symlink
    (:func:`privpkg.fileio.create_exclusive`), outside the context. Returns its (host,
    connection) pairs; one-line UsageError if there is nothing to write or ``dest`` exists."""
    from privpkg.fileio import create_exclusive

    ctx = context.resolve()
    parent = dest.parent.resolve()
    if parent == ctx or ctx in parent.parents:
        raise UsageError(f"{dest} is inside the build context {context}: write the netrc outside it")
    text, hosts = netrc_text(build_downloads(context))
    if not hosts:
        raise UsageError(f"no connection answers the URLs {context}'s build downloads: it needs no netrc")
    if not parent.is_dir():
        raise UsageError(f"cannot write {dest}: {dest.parent} is not a directory")
    if not create_exclusive(dest, text.encode(), 0o600):
        raise UsageError(f"{dest} exists: the netrc is written only to a new file (remove the old one after its build)")
    return hosts
