"""PEP 751 ``pylock.toml``, the pip part of an environment's lock: read (:func:`load`), write
(:func:`dump`) and pick what one interpreter installs (:meth:`Lock.select`).

A lock is stored in a workspace and copied into builds and images, so it may hold no secret.
:func:`load` refuses, with one line, a lock holding a signature or a password/token in a URL's
user info (:func:`privpkg.environments.screen.find_secret`), a ``file://`` URL or a local
``path`` (a lock names artifacts every machine can fetch: ``privpkg://`` workspace wheels and
feed URLs), a VCS or directory source, or an artifact without a sha256. A username without a
password (``https://__token__@feed/...``, which pip and uv need in some index URLs) is no secret
but names an account: it is stripped from the URL.

What is kept (:func:`dump` writes it back in a canonical order, so two locks of the same
resolution compare equal as text): the header's ``lock-version``, ``created-by``,
``requires-python``, ``environments``; each package's name, version, marker, requires-python,
index and artifacts (``archive``, ``sdist``, ``wheels``: name, url, size, upload-time, sha256).
``dependencies``, ``attestation-identities`` and ``[tool]`` tables are dropped: installing from
a lock never needs them (PEP 751: tools must not let ``[tool]`` affect installation).

    >>> lock = load('''lock-version = "1.0"
    ... created-by = "pip"
    ... [[packages]]
    ... name = "demo-pkg"
    ... [packages.archive]
    ... url = "privpkg://team/wheels/demo_pkg-1.0-py3-none-any.whl"
    ... hashes = {sha256 = "%s"}
    ... ''' % ("ab" * 32))
    >>> [(a.name, a.version, a.kind, a.filename) for a in lock.select()]
    [('demo-pkg', '1.0', 'wheel', 'demo_pkg-1.0-py3-none-any.whl')]
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit, urlunsplit

from privpkg import urls
from privpkg.errors import UsageError, shown

#: The lock-version this module writes; it reads any 1.x (PEP 751: a newer minor is readable).
LOCK_VERSION = "1.0"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: The URL schemes a lock may name: feeds and public indexes, and workspace wheels.
SCHEMES = ("https", "http", "privpkg")


class Artifact(NamedTuple):
    """One file a lock names: ``url`` as locked (``privpkg://...``, ``https://...`` or a conda
    URL), ``kind`` ``"wheel" | "sdist" | "conda"``."""

    name: str  # canonical project (or conda package) name
    version: str
    url: str
    filename: str
    sha256: str
    kind: str


class Target(NamedTuple):
    """What :meth:`Lock.select` chooses for: an interpreter's wheel tags (most preferred first,
    as ``str(packaging.tags.Tag)``) and its marker environment."""

    tags: tuple[str, ...]
    environment: Mapping[str, str]

    @classmethod
    def current(cls) -> Target:
        """The running interpreter."""
        return cls(cls.current_tags(), cls.current_environment())

    @staticmethod
    def current_tags() -> tuple[str, ...]:
        from packaging.tags import sys_tags

        return tuple(str(t) for t in sys_tags())

    @staticmethod
    def current_environment() -> dict[str, str]:
        from packaging.markers import default_environment

        return {k: str(v) for k, v in default_environment().items()}


class Package(NamedTuple):
    name: str
    version: str | None
    marker: str | None = None
    requires_python: str | None = None
    index_url: str | None = None  # the table's "index" (a NamedTuple field cannot be called index)
    archive: Mapping[str, Any] | None = None
    sdist: Mapping[str, Any] | None = None
    wheels: tuple[Mapping[str, Any], ...] = ()


class Lock(NamedTuple):
    """A screened ``pylock.toml`` (see the module docstring)."""

    packages: tuple[Package, ...]
    created_by: str = "privpkg"
    requires_python: str | None = None
    environments: tuple[str, ...] = ()

    def versions(self) -> dict[str, str]:
        """``{canonical name: version}`` of the packages locked from an index (those a
        constraint ``name==version`` can hold in place; a ``privpkg://`` or other direct URL is
        pinned by the spec itself)."""
        return {p.name: p.version for p in self.packages if p.version and p.archive is None}

    def artifacts(self) -> list[Artifact]:
        """Every file the lock names, whatever interpreter it is for (wheels, sdists, archives)."""
        return [_artifact(p, entry, kind) for p in self.packages
                for entry, kind in [*((w, "wheel") for w in p.wheels),
                                    *((e, "wheel" if _filename(e).endswith(".whl") else "sdist") for e in (p.sdist, p.archive) if e is not None)]]

    def select(self, target: Target | None = None, *, what: str = "this interpreter",
               current_tags: Callable[[], tuple[str, ...]] | None = None) -> list[Artifact]:
        """The artifacts ``target`` (default: the running interpreter) installs: each package
        whose marker holds, with its best wheel for the target's tags, else its sdist. One-line
        UsageError (``what`` names the target there) naming every package with no artifact for
        the target, or when two entries of one name both apply. ``current_tags`` gives the
        running interpreter's tags when they are needed (default :meth:`Target.current_tags`;
        a build passes the cache's remembered copy)."""
        # The running interpreter's tags and markers cost packaging's imports and ~8 ms of
        # sys_tags(): asked for only when a package needs them (a marker, a requires-python, a
        # choice between wheels or a wheel that is not py3-none-any), which a lock of pure-Python
        # wheels never does (the build's miss path).
        facts = _Facts(target, current_tags or Target.current_tags)
        if self.requires_python and not _python_ok(self.requires_python, facts.python()):
            raise UsageError(f"the lock requires Python {self.requires_python}; {what} is {facts.python()}")
        chosen: dict[str, Artifact] = {}
        missing: list[str] = []
        for pkg in self.packages:
            if pkg.marker and not _marker_holds(pkg.marker, facts.environment()):
                continue
            if pkg.requires_python and not _python_ok(pkg.requires_python, facts.python()):
                raise UsageError(f"{pkg.name} {pkg.version or ''} in the lock requires Python {pkg.requires_python}; {what} is {facts.python()}")
            art = _choose(pkg, facts)
            if art is None:
                missing.append(f"{pkg.name} {pkg.version or ''}".strip())
                continue
            if pkg.name in chosen:
                raise UsageError(f"two entries for {pkg.name} in the lock apply to {what} (their markers overlap)")
            chosen[pkg.name] = art
        if missing:
            # All of them at once: a user fixing the lock (or the target) sees the whole list.
            raise UsageError(f"no artifact of {', '.join(missing)} in the lock fits {what} (no wheel matches its tags and no sdist)")
        return list(chosen.values())


class _Facts:
    """A target's tags (as a rank) and marker environment, computed on first use; for the
    running interpreter (``target`` None) from packaging then."""

    def __init__(self, target: Target | None, current_tags: Callable[[], tuple[str, ...]]) -> None:
        self.target = target
        self.current_tags = current_tags
        self._rank: dict[str, int] | None = None
        self._env: dict[str, str] | None = None

    def rank(self) -> dict[str, int]:
        if self._rank is None:
            tags = self.target.tags if self.target is not None else self.current_tags()
            self._rank = {tag: i for i, tag in enumerate(tags)}
        return self._rank

    def environment(self) -> dict[str, str]:
        if self._env is None:
            self._env = dict(self.target.environment if self.target is not None else Target.current_environment())
        return self._env

    def python(self) -> str:
        if self.target is None and self._env is None:
            import platform

            return platform.python_version()  # what default_environment()'s python_full_version is
        return self.environment().get("python_full_version", "")

    def universal_fits(self) -> bool:
        """Whether ``py3-none-any`` is among the tags, without computing them for the running
        interpreter (every Python 3 has it)."""
        if self.target is None:
            return True  # privpkg runs on Python 3
        return UNIVERSAL in self.rank()


#: The tag a pure-Python wheel carries, which every Python 3 interpreter installs.
UNIVERSAL = "py3-none-any"


def _python_ok(spec: str, version: str) -> bool:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        return SpecifierSet(spec).contains(version, prereleases=True)
    except InvalidSpecifier:
        raise UsageError(f"invalid requires-python in the lock: {shown(spec, 60)!r}") from None


def _marker_holds(marker: str, env: dict[str, str]) -> bool:
    from packaging.markers import InvalidMarker, Marker

    try:
        m = Marker(marker)
    except InvalidMarker:
        raise UsageError(f"pylock.toml: {shown(marker, 80)!r} is not a marker") from None
    try:
        # packaging 25+: the lock-file context knows `extras` and `dependency_groups` (none here).
        return m.evaluate(env, "lock_file")  # type: ignore[call-arg,arg-type,unused-ignore]
    except TypeError:
        return m.evaluate(env)


_WHEEL_NAME = re.compile(r"[^\s/-]+-[^\s/-]+(?:-\d[^\s/-]*)?-([^\s/-]+)-([^\s/-]+)-([^\s/-]+)\.whl")


def _wheel_tags(filename: str) -> frozenset[str]:
    """The tags a wheel file name carries (its compressed sets expanded), as packaging's
    ``parse_wheel_filename`` gives them, without importing packaging: a build of pure-Python
    wheels then never loads it."""
    m = _WHEEL_NAME.fullmatch(filename)
    if m is None:
        raise UsageError(f"not a wheel file name in the lock: {shown(filename, 80)!r}")
    pys, abis, plats = (part.lower().split(".") for part in m.groups())
    return frozenset(f"{py}-{abi}-{plat}" for py in pys for abi in abis for plat in plats)


def _artifact(pkg: Package, entry: Mapping[str, Any], kind: str) -> Artifact:
    url = str(entry["url"])
    filename = str(entry.get("name") or unquote(urlsplit(url).path.rsplit("/", 1)[-1]))
    version = pkg.version or _version_from(filename) or ""
    return Artifact(pkg.name, version, url, filename, str(entry["hashes"]["sha256"]), kind)


def _version_from(filename: str) -> str | None:
    from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename

    try:
        if filename.endswith(".whl"):
            return str(parse_wheel_filename(filename)[1])
        return str(parse_sdist_filename(filename)[1])
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None


def _choose(pkg: Package, facts: _Facts) -> Artifact | None:
    if len(pkg.wheels) == 1 and UNIVERSAL in _wheel_tags(_artifact(pkg, pkg.wheels[0], "wheel").filename) and facts.universal_fits():
        return _artifact(pkg, pkg.wheels[0], "wheel")  # the only wheel, and one every Python 3 takes
    if not pkg.wheels and pkg.archive is not None and _filename(pkg.archive).endswith(".whl"):
        art = _artifact(pkg, pkg.archive, "wheel")
        if UNIVERSAL in _wheel_tags(art.filename) and facts.universal_fits():
            return art
    rank = facts.rank() if pkg.wheels or pkg.archive is not None else {}
    best: tuple[int, Mapping[str, Any]] | None = None
    for wheel in pkg.wheels:
        art = _artifact(pkg, wheel, "wheel")
        fits = [rank[t] for t in _wheel_tags(art.filename) if t in rank]
        if fits and (best is None or min(fits) < best[0]):
            best = (min(fits), wheel)
    if best is not None:
        return _artifact(pkg, best[1], "wheel")
    if pkg.sdist is not None:
        return _artifact(pkg, pkg.sdist, "sdist")
    if pkg.archive is not None:
        art = _artifact(pkg, pkg.archive, "wheel" if _filename(pkg.archive).endswith(".whl") else "sdist")
        if art.kind == "sdist" or any(t in rank for t in _wheel_tags(art.filename)):
            return art
    return None


def _filename(entry: Mapping[str, Any]) -> str:
    return str(entry.get("name") or unquote(urlsplit(str(entry.get("url", ""))).path.rsplit("/", 1)[-1]))


# ------------------------------------------------------------------------------ screening


def screen_url(url: str, where: str) -> str:
    """``url`` as a lock may hold it (a username without a password stripped), or a one-line
    UsageError naming ``where`` for a scheme other than :data:`SCHEMES` (``file://`` above all),
    a password in user info or a signature."""
    from privpkg.environments.screen import find_secret, masked

    # Known secrets: load() searched the whole text for them once (reading the store once, not
    # once per URL); here the patterns only.
    found = find_secret(url, secrets={})
    if found:
        raise UsageError(f"{where}: the lock would hold {found} ({masked(urls.redact(url), secrets={})}); locks are stored and "
                         "shared, so they hold no secret")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise UsageError(f"{where}: not a URL: {shown(url, 80)!r}") from None
    scheme = parts.scheme.lower()
    if scheme == "file" or not scheme:
        raise UsageError(f"{where}: the lock would hold a local file ({shown(urls.redact(url), 120)}): a file:// requirement, or a "
                         f"--find-links folder in the spec or pip's config; publish it (privpkg wheel add) and name its privpkg:// URL")
    if scheme not in SCHEMES:
        raise UsageError(f"{where}: a lock holds {', '.join(SCHEMES)} URLs only, not {shown(scheme, 20)}:")
    if "@" in parts.netloc:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        if ":" in userinfo:  # find_secret caught the usual shapes; an empty password too is refused
            raise UsageError(f"{where}: the lock would hold a password in user info ({urls.redact(url)})")
        parts = parts._replace(netloc=hostport)  # a username alone (__token__) names, never proves
    return urlunsplit(parts)


def _screen_entry(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: expected a table")
    if "path" in raw:
        raise UsageError(f"{where}: the lock would hold a local path ({shown(str(raw['path']), 80)}); "
                         f"a lock names artifacts every machine can fetch (privpkg:// wheels, feed URLs)")
    if not isinstance(raw.get("url"), str):
        raise UsageError(f"{where}: an artifact without a url")
    hashes = raw.get("hashes")
    sha = hashes.get("sha256") if isinstance(hashes, dict) else None
    if not isinstance(sha, str) or not _SHA256.match(sha.lower()):
        raise UsageError(f"{where}: an artifact without a sha256 ({urls.redact(raw['url'])}); privpkg checks every download against it")
    out: dict[str, Any] = {"url": screen_url(raw["url"], where), "hashes": {"sha256": sha.lower()}}
    for key in ("name", "size", "upload-time"):
        if key in raw:
            out[key] = raw[key]
    return out


_PROJECT_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
#: A version as a lock writes it: PEP 440's characters only (no space, no ';', no newline).
_VERSION_TEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+!_-]*")


#: A version of PEP 440's usual shape (release, then a, b or rc, .post, .dev; no epoch or local
#: part; leading zeros allowed, as PEP 440 does): valid without asking packaging, whose import
#: costs a build of real wheels ~2 ms. Anything else is asked of packaging.
_PLAIN_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)*(?:(?:a|b|rc)[0-9]+)?(?:\.post[0-9]+)?(?:\.dev[0-9]+)?")


def _canonical(name: str) -> str:
    """PEP 503's normalized name (packaging's ``canonicalize_name``, without its import)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _package(raw: Any, i: int) -> Package:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise UsageError(f"pylock.toml: packages[{i}] has no name")
    # Names, versions and markers reach installers' requirement files: anything but the forms
    # PEP 508 and 440 allow could add a line there (-r FILE, --find-links URL, a false marker).
    if not _PROJECT_NAME.fullmatch(raw["name"]):
        raise UsageError(f"pylock.toml: packages[{i}]: {shown(raw['name'], 60)!r} is not a project name")
    name = _canonical(raw["name"])
    where = f"pylock.toml: package {shown(name, 60)}"
    if "version" in raw and not (isinstance(raw["version"], str) and _PLAIN_VERSION.fullmatch(raw["version"])):
        from packaging.version import InvalidVersion, Version  # a plain release never needs it

        version = raw["version"]
        try:
            if not isinstance(version, str) or not _VERSION_TEXT.fullmatch(version):
                raise InvalidVersion(str(version))
            Version(version)
        except InvalidVersion:
            raise UsageError(f"{where}: {shown(str(version), 60)!r} is not a version") from None
    if "marker" in raw and ("\n" in str(raw["marker"]) or "\r" in str(raw["marker"])):
        # Parsed when a selection needs it (packaging's markers cost ~20 ms to import): here only
        # what could never be one.
        raise UsageError(f"{where}: {shown(str(raw['marker']), 80)!r} is not a marker")
    for key in ("vcs", "directory"):
        if key in raw:
            raise UsageError(f"{where}: a {key} source cannot be locked by privpkg; publish it as a wheel (privpkg wheel add)")
    wheels = raw.get("wheels", [])
    if not isinstance(wheels, list):
        raise UsageError(f"{where}: wheels must be an array of tables")
    pkg = Package(
        name=name,
        version=str(raw["version"]) if "version" in raw else None,
        marker=str(raw["marker"]) if "marker" in raw else None,
        requires_python=str(raw["requires-python"]) if "requires-python" in raw else None,
        index_url=screen_url(str(raw["index"]), where) if "index" in raw else None,
        archive=_screen_entry(raw["archive"], f"{where} (archive)") if "archive" in raw else None,
        sdist=_screen_entry(raw["sdist"], f"{where} (sdist)") if "sdist" in raw else None,
        wheels=tuple(_screen_entry(w, f"{where} (wheel)") for w in wheels),
    )
    if pkg.archive is None and pkg.sdist is None and not pkg.wheels:
        raise UsageError(f"{where}: no artifact (archive, sdist or wheels)")
    return pkg


def load(text: str, *, known_secrets: bool = True) -> Lock:
    """The screened lock in ``text`` (see the module docstring); one-line UsageError for a
    malformed lock or one holding what no lock may. ``known_secrets=False`` skips the search for
    the connections' own secrets (it reads the store): a build, which stores and prints nothing
    of the lock, uses it; every lock that is made, brought or registered is searched."""
    import tomllib

    from privpkg.environments.screen import find_secret

    found = find_secret(text, None if known_secrets else {})
    if found:
        raise UsageError(f"pylock.toml: the lock would hold {found}; locks are stored and shared, so they hold no secret")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"pylock.toml is not valid TOML: {shown(str(exc), 120)}") from None
    version = str(data.get("lock-version", ""))
    if version.split(".")[0] != "1":
        raise UsageError(f"pylock.toml: lock-version {shown(version, 20) or '(missing)'} is not 1.x")
    raw_packages = data.get("packages", [])
    if not isinstance(raw_packages, list):
        raise UsageError("pylock.toml: packages must be an array of tables")
    packages = tuple(_package(p, i) for i, p in enumerate(raw_packages))
    envs = data.get("environments", [])
    return Lock(
        packages=tuple(sorted(packages, key=_order)),
        created_by=str(data.get("created-by", "")),
        requires_python=str(data["requires-python"]) if "requires-python" in data else None,
        environments=tuple(str(e) for e in envs) if isinstance(envs, list) else (),
    )


def _order(p: Package) -> tuple[str, str, str]:
    return (p.name, p.version or "", p.marker or "")


# ------------------------------------------------------------------------------ writing


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, _dt.datetime | _dt.date):
        return v.isoformat()
    if isinstance(v, Sequence) and not isinstance(v, str):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    # A JSON string is a valid TOML basic string (same escapes, \uXXXX for controls). Imported
    # here: only writing a lock needs it, and a build reads one.
    import json

    return json.dumps(str(v), ensure_ascii=False)


def _entry_lines(entry: Mapping[str, Any]) -> list[str]:
    lines = [f"{k} = {_value(entry[k])}" for k in ("name", "url", "size", "upload-time") if k in entry]
    return [*lines, f"hashes = {{sha256 = {_value(entry['hashes']['sha256'])}}}"]


def dump(lock: Lock) -> str:
    """``lock`` as ``pylock.toml`` text, in one canonical order."""
    out = [f"lock-version = {_value(LOCK_VERSION)}", f"created-by = {_value(lock.created_by or 'privpkg')}"]
    if lock.requires_python:
        out.append(f"requires-python = {_value(lock.requires_python)}")
    if lock.environments:
        out.append(f"environments = {_value(list(lock.environments))}")
    for p in sorted(lock.packages, key=_order):
        out += ["", "[[packages]]", f"name = {_value(p.name)}"]
        for key, val in (("version", p.version), ("marker", p.marker), ("requires-python", p.requires_python), ("index", p.index_url)):
            if val is not None:
                out.append(f"{key} = {_value(val)}")
        if p.archive is not None:
            out += ["", "[packages.archive]", *_entry_lines(p.archive)]
        if p.sdist is not None:
            out += ["", "[packages.sdist]", *_entry_lines(p.sdist)]
        for w in p.wheels:
            out += ["", "[[packages.wheels]]", *_entry_lines(w)]
    return "\n".join(out) + "\n"
