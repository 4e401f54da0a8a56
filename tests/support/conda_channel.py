"""A local conda channel for the tests, made offline from PyPI wheels and this machine's Python,
and cached between runs.

No conda channel is reachable from this machine or CI, and conda is on no registry, so the conda
tests (the recipe's, and the real-conda ones) solve against a ``file://`` channel that this
module makes:

- ``python`` (linux-64): this machine's interpreter, as a venv-style prefix: a copy of the base
  ``python3.X`` binary (it finds its ``libpython`` through an absolute RUNPATH) and a
  ``pyvenv.cfg`` whose ``home`` is the base interpreter's ``bin``, so the standard library comes
  from there while ``sys.prefix`` (and site-packages) is the conda environment. Version = this
  interpreter's; ``include-system-site-packages = false`` keeps the machine's packages out.
- one package per wheel that ``pip download`` resolves for the requirements: a pure wheel
  becomes a ``noarch: python`` package (files under ``site-packages/``), a binary wheel
  (cryptography, cffi, ...) a linux-64 package (files under ``lib/python3.X/site-packages/``)
  that depends on this Python's minor version. Dependencies come from the wheel's
  ``Requires-Dist`` whose markers hold for this interpreter (extras are left out).
- ``pip`` always: conda adds pip to the solve by itself when an environment has a ``pip:``
  section (and as a dependency of python, ``add_pip_as_python_dependency``).

Packages are assembled with py-rattler-build's ``assemble_package`` (no recipe, no build
environment: a few milliseconds each) and the channel is indexed with py-rattler's
``index_fs``. A console script becomes a small relocatable launcher (the ``#!/bin/sh`` +
``exec "$(dirname "$0")/python"`` trick distlib uses for long shebangs) rather than an
``info/link.json`` entry point: ``assemble_package`` would also list a ``link.json`` among the
files it installs, and two packages would then clash on ``<prefix>/info/link.json``.

The channel is cached under the user's cache dir (``$XDG_CACHE_HOME/privpkg-tests/conda-channels``,
``~/.cache`` by default, as uv and pip keep theirs), in a folder named by a hash of everything
that goes into it (the requirements, the bytes of local wheels, the interpreter, this module's
:data:`CHANNEL_FORMAT`), so a fresh clone of the repo (``.ci/run``) reuses what an earlier run on
the same machine built, and a changed input builds a new folder beside it. The folder is built in
a temp folder and renamed into place (:func:`privpkg.fileio.replace_dir`) under a file lock, so
parallel xdist workers build it once. Requirements that are not pinned are resolved when the
folder is first built and stay as resolved then: remove the cache folder to take newer releases.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from configparser import ConfigParser
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesParser
from pathlib import Path, PurePosixPath

import platformdirs
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename

from privpkg.fileio import file_lock, replace_dir

#: Part of the cache key: bump it whenever the way a package is made changes, so old folders are
#: not reused.
CHANNEL_FORMAT = 1

#: Always in the channel (see the module docstring).
ALWAYS = ("pip",)

#: A cold build downloads wheels; the other workers wait this long for the lock.
BUILD_LOCK_TIMEOUT = 1800.0

#: One fixed timestamp for every package, so a rebuilt channel has the same bytes and conda's
#: solver (which prefers newer timestamps among equal versions) sees no difference.
TIMESTAMP = datetime(2026, 1, 1, tzinfo=UTC)

#: The marker of a finished channel folder, written last inside it; also says what is in it.
MANIFEST = "privpkg-channel.json"

_LAUNCHER = """#!/bin/sh
'''exec' "$(dirname -- "$0")/python" "$0" "$@"
' '''
# A console script that finds the environment's python beside itself, so it needs no prefix
# rewriting (made by privpkg's tests/support/conda_channel.py).
import sys
from {module} import {head}
sys.exit({call}())
"""


@dataclass(frozen=True)
class Channel:
    """A built, indexed local channel."""

    path: Path

    @property
    def url(self) -> str:
        """The ``file://`` URL to give conda or py-rattler as a channel."""
        return self.path.as_uri()

    def manifest(self) -> dict[str, object]:
        """What went in: ``{"key", "groups", "packages": {name: [version, ...]}, "seconds"}``."""
        data: dict[str, object] = json.loads((self.path / MANIFEST).read_text())
        return data

    def packages(self) -> dict[str, list[str]]:
        """``{conda name: [versions]}`` of every package in the channel."""
        pkgs = self.manifest()["packages"]
        assert isinstance(pkgs, dict)
        return {str(k): list(v) for k, v in pkgs.items()}


@dataclass(frozen=True)
class PythonInfo:
    """The interpreter that becomes the channel's ``python`` package."""

    binary: Path  # the real base binary, python3.X
    version: str  # e.g. 3.11.7
    minor: str  # e.g. 3.11

    @classmethod
    def current(cls) -> PythonInfo:
        """The interpreter running the tests, through its base installation (not a venv's link)."""
        minor = f"{sys.version_info.major}.{sys.version_info.minor}"
        binary = Path(os.path.realpath(Path(sys.base_exec_prefix) / "bin" / f"python{minor}"))
        if not binary.is_file():
            raise RuntimeError(f"cannot find the base interpreter python{minor} under {sys.base_exec_prefix}")
        return cls(binary, platform.python_version(), minor)


def cache_root() -> Path:
    """Where channels are cached: the user's cache dir, outside any checkout (see the docstring)."""
    return platformdirs.user_cache_path("privpkg-tests") / "conda-channels"


Group = Sequence[str | Path]


def build_channel(requirements: Group, *, separately: Sequence[Group] = (), root: Path | None = None) -> Channel:
    """The channel holding ``python``, ``pip`` and the wheels that ``pip download`` resolves for
    ``requirements`` (requirement strings, or paths of local ``.whl`` files), plus each group in
    ``separately`` resolved on its own (e.g. ``["pip==23.2.1"]`` beside the latest pip, which one
    resolution could not hold). Built once per distinct input, then reused (``root`` defaults to
    :func:`cache_root`)."""
    python = PythonInfo.current()
    groups = [[*ALWAYS, *requirements], *([*g] for g in separately)]
    key_data = {
        "format": CHANNEL_FORMAT,
        "python": [str(python.binary), python.version, platform.machine()],
        "groups": [[_key_item(item) for item in group] for group in groups],
    }
    key = hashlib.sha256(json.dumps(key_data, sort_keys=True).encode()).hexdigest()[:20]
    base = root or cache_root()
    dest = base / key
    with file_lock(base / f"{key}.lock", timeout=BUILD_LOCK_TIMEOUT):
        if not (dest / MANIFEST).is_file():
            replace_dir(dest, lambda new: _fill(new, python, groups, key))
    return Channel(dest)


def _key_item(item: str | Path) -> object:
    """A requirement string as written; a local wheel by its name and content."""
    if isinstance(item, Path):
        return {"wheel": item.name, "sha256": hashlib.sha256(item.read_bytes()).hexdigest()}
    return str(Requirement(item))


def _fill(folder: Path, python: PythonInfo, groups: list[list[str | Path]], key: str) -> None:
    start = time.monotonic()
    for subdir in ("noarch", "linux-64"):
        (folder / subdir).mkdir()
    with tempfile.TemporaryDirectory(prefix="privpkg-conda-channel-") as tmp:
        work = Path(tmp)
        wheels: dict[str, Path] = {}
        for n, group in enumerate(groups):
            for wheel in download_wheels(group, work / f"wheels-{n}"):
                wheels.setdefault(wheel.name, wheel)  # the same file from two groups: one package
        packages: dict[str, list[str]] = {"python": [python.version]}
        make_python_package(python, folder / "linux-64", work / "python")
        for wheel in sorted(wheels.values()):
            name, version = wheel_to_package(wheel, folder, work / "staging", python)
            packages.setdefault(name, []).append(version)
    asyncio.run(_index(folder))
    manifest = {
        "key": key,
        "groups": [[str(i) for i in g] for g in groups],
        "packages": packages,
        "seconds": round(time.monotonic() - start, 1),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


async def _index(folder: Path) -> None:
    from rattler.index import index_fs

    # Plain repodata.json is all a file:// channel needs; shards and .zst only add files to write.
    await index_fs(channel_directory=folder, write_shards=False, write_zst=False, force=True)


def download_wheels(group: Group, dest: Path) -> list[Path]:
    """``pip download --only-binary=:all:`` of ``group`` for this interpreter: the wheels of the
    whole dependency closure, from the package index pip is configured with (and pip's cache)."""
    dest.mkdir(parents=True)
    # Keep pip's own config files (this machine's index settings) but not a caller's PIP_* or
    # virtualenv variables, which could point pip somewhere else.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_")) and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--only-binary=:all:",
        "--no-input",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(dest),
        *map(str, group),
    ]
    proc = subprocess.run(cmd, check=False, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"pip download for the conda test channel failed ({' '.join(cmd)}):\n{proc.stdout}{proc.stderr}")
    return sorted(dest.glob("*.whl"))


def make_python_package(python: PythonInfo, out: Path, staging: Path) -> None:
    """The linux-64 ``python`` package (see the module docstring)."""
    from rattler_build import assemble_package

    bindir = staging / "bin"
    bindir.mkdir(parents=True)
    shutil.copy2(python.binary, bindir / f"python{python.minor}")
    for alias in ("python3", "python"):
        os.symlink(f"python{python.minor}", bindir / alias)
    (staging / "pyvenv.cfg").write_text(
        f"home = {python.binary.parent}\ninclude-system-site-packages = false\nversion = {python.version}\n"
    )
    assemble_package(
        name="python",
        version=python.version,
        target_platform="linux-64",
        build_string=f"h{_digest(str(python.binary).encode(), python.binary.read_bytes())}_0",
        output_dir=out,
        files_dir=staging,
        summary="This machine's Python interpreter, for privpkg's tests",
        license="PSF-2.0",
        detect_prefix=False,
        compression_level=1,
        timestamp=TIMESTAMP,
    )


def wheel_to_package(wheel: Path, channel: Path, staging_root: Path, python: PythonInfo) -> tuple[str, str]:
    """Repackage ``wheel`` into ``channel`` (noarch for a pure wheel, linux-64 otherwise); returns
    (conda name, version)."""
    from rattler_build import assemble_package

    dist, version, _build, tags = parse_wheel_filename(wheel.name)
    name = canonicalize_name(dist)
    pure = all(t.platform == "any" for t in tags)
    staging = staging_root / wheel.name
    site = staging / ("site-packages" if pure else f"lib/python{python.minor}/site-packages")
    scripts = staging / ("python-scripts" if pure else "bin")
    metadata = _unpack(wheel, staging, site, scripts)
    _write_launchers(metadata.get("entry_points.txt"), scripts)
    requires = _requires(metadata["METADATA"], python)
    digest = _digest(wheel.read_bytes())
    depends = (
        ["python " + (_conda_spec(SpecifierSet(requires.python)) if requires.python else "*")]
        if pure
        else [f"python >={python.minor},<{_next_minor(python.minor)}.0a0"]
    )
    depends += requires.depends
    assemble_package(
        name=name,
        version=str(version),
        target_platform="noarch" if pure else "linux-64",
        build_string=f"pyh{digest}_0" if pure else f"py{python.minor.replace('.', '')}h{digest}_0",
        output_dir=channel / ("noarch" if pure else "linux-64"),
        files_dir=staging,
        noarch="python" if pure else None,
        depends=depends,
        summary=f"{dist} {version} from its wheel {wheel.name}",
        detect_prefix=False,
        compression_level=1,
        timestamp=TIMESTAMP,
    )
    return name, str(version)


def _digest(*parts: bytes) -> str:
    """A build-string hash of what went into a package and :data:`CHANNEL_FORMAT`: a package made
    differently gets a different file name, so no package cache (rattler's, conda's ``pkgs``)
    hands out an older build of the same name-version-build."""
    h = hashlib.sha256(str(CHANNEL_FORMAT).encode())
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:8]


def _next_minor(minor: str) -> str:
    major, m = minor.split(".")
    return f"{major}.{int(m) + 1}"


def _unpack(wheel: Path, staging: Path, site: Path, scripts: Path) -> dict[str, bytes]:
    """Lay ``wheel`` out as an installed package; returns its ``.dist-info`` files by name."""
    dist_info: dict[str, bytes] = {}
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            parts = PurePosixPath(info.filename).parts
            if info.filename.startswith("/") or ".." in parts or not parts:
                raise RuntimeError(f"{wheel.name}: unsafe path {info.filename!r}")
            target = site.joinpath(*parts)
            if parts[0].endswith(".data") and len(parts) > 2:
                kind, rest = parts[1], parts[2:]
                if kind in ("purelib", "platlib"):
                    target = site.joinpath(*rest)
                elif kind == "scripts":
                    target = scripts.joinpath(*rest)
                elif kind == "data":
                    target = staging.joinpath(*rest)
                else:
                    raise RuntimeError(f"{wheel.name}: its .data/{kind} is not supported by the test channel")
            elif parts[0].endswith(".dist-info") and len(parts) == 2:
                dist_info[parts[1]] = zf.read(info)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode | 0o600)
            if target.parent == scripts and target.read_bytes().startswith(b"#!python"):
                # A wheel's own script asks the installer for the environment's python.
                body = target.read_bytes().split(b"\n", 1)[1]
                target.write_bytes(_LAUNCHER.split("# A console", 1)[0].encode() + body)
                target.chmod(0o755)
    info_dir = next(site.glob("*.dist-info"))
    (info_dir / "INSTALLER").write_text("conda\n")  # as conda-forge's packages say
    return dist_info


def _write_launchers(entry_points: bytes | None, scripts: Path) -> None:
    if not entry_points:
        return
    parser = ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment, method-assign]  # script names keep their case
    parser.read_string(entry_points.decode())
    for section in ("console_scripts", "gui_scripts"):
        if not parser.has_section(section):
            continue
        for script, target in parser.items(section):
            module, _, attr = target.split("[")[0].strip().partition(":")
            head = attr.split(".")[0]
            scripts.mkdir(parents=True, exist_ok=True)
            path = scripts / script
            path.write_text(_LAUNCHER.format(module=module.strip(), head=head.strip(), call=attr.strip()))
            path.chmod(0o755)


@dataclass(frozen=True)
class _Requires:
    python: str | None
    depends: list[str]


def _requires(metadata: bytes, python: PythonInfo) -> _Requires:
    """The wheel's ``Requires-Python`` and, as conda specs, its ``Requires-Dist`` that apply to
    ``python`` on this machine without extras."""
    msg = BytesParser().parsebytes(metadata)
    env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    env.update({"python_version": python.minor, "python_full_version": python.version, "extra": ""})
    depends: list[str] = []
    for line in msg.get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        spec = _conda_spec(req.specifier)
        depends.append(f"{canonicalize_name(req.name)} {spec}".strip())
    return _Requires(msg.get("Requires-Python"), depends)


def _conda_spec(spec: SpecifierSet) -> str:
    """A PEP 440 specifier set as a conda version spec (``===`` becomes ``==``; the rest conda
    reads as written: ``>=1,<2``, ``~=1.2``, ``!=1.*``, ``==1.*``)."""
    return ",".join(f"{'==' if s.operator == '===' else s.operator}{s.version}" for s in sorted(spec, key=str))
