"""PEP 751 ``pylock.toml``: read a lock and select the artifacts one interpreter installs.

A minimal reader written by the builds part (issue 10) to the brief's interface, so builds can
run before the locks part lands; that part's module replaces this one (``dump``, the lock-only
screening rules). What it reads: ``[[packages]]`` with ``name``, ``version``, ``marker`` and
``wheels`` / ``sdist`` / ``archive`` (``url`` or ``path``, ``name``, ``hashes.sha256``).

:meth:`Lock.select` keeps the packages whose marker holds for the target and, for each, the
wheel whose tags rank best among the target's, else the archive (pip records a workspace wheel
as ``[packages.archive] url = "privpkg://..."``), else the sdist.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from privpkg.errors import UsageError, shown

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: Tags every Python 3 interpreter installs (``packaging.tags.sys_tags`` always yields them).
_UNIVERSAL = frozenset({"py3-none-any"})


class Artifact(NamedTuple):
    name: str  # canonical (PEP 503)
    version: str
    url: str  # as locked: privpkg://..., https://..., or a conda URL
    filename: str
    sha256: str
    kind: str  # "wheel" | "sdist" | "conda"


class Target(NamedTuple):
    """What selection needs to know of an interpreter: its marker environment and its wheel
    tags (``py3-none-any``...), best first."""

    markers: Mapping[str, str]
    tags: Sequence[str]


class _Package(NamedTuple):
    name: str
    version: str
    marker: str | None
    wheels: tuple[tuple[str, str, str], ...]  # (url, filename, sha256)
    archive: tuple[str, str, str] | None
    sdist: tuple[str, str, str] | None


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _file(entry: Any, where: str) -> tuple[str, str, str]:
    if not isinstance(entry, dict):
        raise UsageError(f"pylock.toml: {where} is not a table")
    url = entry.get("url") or entry.get("path")
    if not isinstance(url, str) or not url:
        raise UsageError(f"pylock.toml: {where} has no url")
    sha = (entry.get("hashes") or {}).get("sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha.lower()):
        raise UsageError(f"pylock.toml: {where} has no sha256 hash (a lock must pin every file)")
    from urllib.parse import unquote, urlsplit

    if ":" in urlsplit(url).netloc.rpartition("@")[0] or re.search(r"[?&](sig|x-amz-signature)=", url, re.IGNORECASE):
        # What the locks part refuses when it writes a lock; a lock from elsewhere is refused here.
        raise UsageError(f"pylock.toml: {where}'s URL holds a password in user info or a signature; a lock never does")
    filename = entry.get("name") or url.partition("#")[0].rstrip("/").rsplit("/", 1)[-1]
    return url, unquote(str(filename)), sha.lower()


class Lock:
    def __init__(self, packages: list[_Package]) -> None:
        self.packages = packages

    def select(self, target: Target) -> list[Artifact]:
        """The artifacts ``target`` installs (see the module docstring); a one-line UsageError
        for a package with no file that fits."""
        rank: dict[str, int] | None = None
        out: list[Artifact] = []
        for pkg in self.packages:
            if pkg.marker:
                from packaging.markers import Marker

                if not Marker(pkg.marker).evaluate(dict(target.markers)):
                    continue
            best: tuple[int, tuple[str, str, str]] | None = None
            if len(pkg.wheels) == 1 and _UNIVERSAL & set(_wheel_tags(pkg.wheels[0][1])):
                best = (0, pkg.wheels[0])  # the only wheel, and every Python 3 takes it: no ranking needed
            for wheel in pkg.wheels if best is None else ():
                if rank is None:
                    rank = {t: i for i, t in enumerate(target.tags)}
                score = min((rank[t] for t in _wheel_tags(wheel[1]) if t in rank), default=None)
                if score is not None and (best is None or score < best[0]):
                    best = (score, wheel)
            if best is not None:
                url, filename, sha = best[1]
                out.append(Artifact(pkg.name, pkg.version, url, filename, sha, "wheel"))
            elif pkg.archive is not None:
                url, filename, sha = pkg.archive
                out.append(Artifact(pkg.name, pkg.version, url, filename, sha, "wheel" if filename.endswith(".whl") else "sdist"))
            elif pkg.sdist is not None:
                url, filename, sha = pkg.sdist
                out.append(Artifact(pkg.name, pkg.version, url, filename, sha, "sdist"))
            else:
                raise UsageError(f"pylock.toml: no file of {pkg.name} {pkg.version} fits this interpreter")
        return out


def _wheel_tags(filename: str) -> list[str]:
    parts = filename[: -len(".whl")].split("-") if filename.endswith(".whl") else []
    if len(parts) < 5:
        return []
    pys, abis, plats = parts[-3].split("."), parts[-2].split("."), parts[-1].split(".")
    return [f"{p}-{a}-{pl}" for p in pys for a in abis for pl in plats]


def load(text: str) -> Lock:
    """Read a ``pylock.toml``; a one-line UsageError for one that is not valid TOML or lacks
    what a build needs."""
    import tomllib

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"pylock.toml is not valid TOML: {shown(exc, 200)}") from None
    packages = doc.get("packages")
    if not isinstance(packages, list):
        raise UsageError("pylock.toml has no [[packages]]")
    out: list[_Package] = []
    for i, p in enumerate(packages):
        if not isinstance(p, dict) or not isinstance(p.get("name"), str) or not isinstance(p.get("version"), str):
            raise UsageError(f"pylock.toml: package {i + 1} has no name and version")
        where = f"{p['name']} {p['version']}"
        wheels = tuple(_file(w, f"{where}'s wheel") for w in p.get("wheels") or ())
        archive = _file(p["archive"], f"{where}'s archive") if "archive" in p else None
        sdist = _file(p["sdist"], f"{where}'s sdist") if "sdist" in p else None
        marker = p.get("marker")
        out.append(_Package(canonical(p["name"]), p["version"], marker if isinstance(marker, str) else None, wheels, archive, sdist))
    return Lock(out)
