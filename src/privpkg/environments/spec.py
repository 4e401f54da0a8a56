"""The environment spec and its canonical definition.

A :class:`Spec` is what a user declared: a name, an optional Python version, pip requirement
lines (global options in the order given, then the requirements), pip constraints, conda
channels (in priority order) and conda dependencies, environment variables, and the files it was
read from, kept as given (``spec/<file>`` in the registry; they are not part of the definition).

Its definition (``definition.json``) is the canonical form: keys sorted, no white space, every
line normalized (requirements through :mod:`packaging`, names canonical; runs of white space
in conda specs and options made one space), requirements and conda dependencies sorted, since
their order changes nothing, while options and channels keep theirs, since it does::

    >>> s = Spec("demo", pip=("Requests >= 2", "--extra-index-url https://pkgs.example/simple/", "attrs"))
    >>> s.definition()["pip"]
    ['--extra-index-url https://pkgs.example/simple/', 'attrs', 'requests>=2']
    >>> s.digest() == Spec("demo", pip=("attrs", "requests>=2", "--extra-index-url  https://pkgs.example/simple/")).digest()
    True

References name a version: ``NAME``, ``NAME:N`` or ``NAME:latest``; labels are ``NAME@LABEL``::

    >>> parse_ref("train:3"), parse_ref("train"), parse_ref("train:latest")
    (('train', 3), ('train', None), ('train', None))
    >>> parse_target("train@prod")
    ('train', None, 'prod')
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from privpkg.environments.digests import sha256
from privpkg.errors import CONTROL, UsageError, shown


def masked(text: str, secrets: Mapping[str, str] | None = None) -> str:
    """:func:`.screen.masked`, imported when an error line or a repr needs it (a build by NAME
    reads a definition and shows none of it: the screen's patterns would cost it a millisecond)."""
    from privpkg.environments.screen import masked as screen_masked

    return screen_masked(text, secrets)


#: The definition's format; a reader refuses a newer one.
FORMAT = 1
#: An environment name: a workspace-name-like token (it is a storage path segment).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
#: A label: lower-case, not a number (``NAME:N`` is a version), never ``latest`` (implicit).
_LABEL = re.compile(r"[a-z][a-z0-9._-]{0,62}")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
#: A spec file's name as stored under ``spec/``: one plain file name.
# Not ``*.sha256``: a local workspace keeps each object's checksum beside it under that name.
#: A conda platform (``linux-64``, ``osx-arm64``, ``win-64``...); ``noarch`` is every platform's, never one to lock for.
_PLATFORM = re.compile(r"[a-z0-9]+-[a-z0-9_]+")
_FILE = re.compile(r"(?![^\n]*\.sha256$)[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
#: Lines a definition may not hold, whatever wrote it (``env create`` refuses them too, with the
#: file they came from): editables and local paths no other machine can rebuild, and includes
#: (a definition lists the requirements themselves; ``create`` reads the included files).
_LOCAL_LINE = re.compile(r"^(-e|--editable)(\s|=|$)|^(\.{0,2}/|~|file:)|\s@\s*file:", re.IGNORECASE)
_INCLUDE_LINE = re.compile(r"^(-r|--requirement|-c|--constraint)(\s|=|$)")
_FIND_LINKS = re.compile(r"^(-f|--find-links)(?:\s*=\s*|\s+)(\S+)$")
_VERSION = re.compile(r"[1-9][0-9]{0,9}")
#: The names privpkg keeps for itself in a version's folder and a definition directory.
RESERVED_FILES = ("version.json", "definition.json", "pylock.toml")
LATEST = "latest"
MAX_VERSION = 10**9


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name == "labels":
        raise UsageError(f"invalid environment name {shown(name, 80)!r}: use 1-63 letters, digits, '.', '_' or '-'")
    return name


#: The conda platforms a lock can be made for: py-rattler 0.28's ``Platform.all()`` but
#: ``noarch`` (kept here so checking a definition never imports rattler; a unit test compares).
PLATFORMS = frozenset({
    "linux-32", "linux-64", "linux-aarch64", "linux-armv6l", "linux-armv7l", "linux-loongarch64", "linux-ppc64le", "linux-ppc64",
    "linux-ppc", "linux-s390x", "linux-riscv32", "linux-riscv64", "freebsd-32", "freebsd-64", "freebsd-arm64", "freebsd-ppc64le",
    "freebsd-ppc64", "osx-64", "osx-arm64", "ios-arm64", "iossimulator-arm64", "iossimulator-64", "android-aarch64", "android-armv7a",
    "android-64", "android-32", "win-32", "win-64", "win-arm64", "emscripten-wasm32", "emscripten-wasm64", "wasi-wasm32", "zos-z",
})


def validate_platform(platform: object) -> str:
    """A conda platform to lock for (UsageError, one line, for anything else)."""
    if not isinstance(platform, str) or not _PLATFORM.fullmatch(platform) or platform not in PLATFORMS:
        raise UsageError(f"not a conda platform: {shown(str(platform), 40)!r} (e.g. linux-64, osx-arm64, win-64)")
    return platform


def validate_label(label: str) -> str:
    if not isinstance(label, str) or not _LABEL.fullmatch(label) or label == LATEST:
        raise UsageError(f"invalid label {shown(label, 80)!r}: use a lower-case letter, then letters, digits, '.', '_' "
                         "or '-' ('latest' is implicit)")
    return label


def validate_version(text: str | int) -> int:
    s = str(text)
    if not _VERSION.fullmatch(s) or int(s) > MAX_VERSION:  # ASCII digits only: str.isdigit takes "١"
        raise UsageError(f"invalid version {shown(s, 40)!r}: a positive whole number")
    return int(s)


def parse_ref(text: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME:latest`` -> (NAME, None); ``NAME:N`` -> (NAME, N)."""
    name, sep, version = text.partition(":")
    validate_name(name)
    if not sep or version == LATEST:
        return name, None
    return name, validate_version(version)


def parse_target(text: str) -> tuple[str, int | None, str | None]:
    """:func:`parse_ref`, or ``NAME@LABEL`` -> (NAME, None, LABEL)."""
    if "@" in text:
        name, _, label = text.partition("@")
        return validate_name(name), None, validate_label(label)
    return (*parse_ref(text), None)


def _one_line(what: str, value: Any) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{what} must be text, not {type(value).__name__}")
    if CONTROL.search(value):
        raise UsageError(f"{what} contains a control character: {shown(masked(value), 80)!r}")
    return " ".join(value.split())


def normalize_pip_line(line: str) -> str:
    """One pip line in canonical form: an option with single spaces, or a requirement as
    :mod:`packaging` writes it with its name canonical. UsageError for what is not either."""
    text = _one_line("a pip line", line)
    if _LOCAL_LINE.search(text):
        raise UsageError(f"{shown(masked(text), 80)!r} names a local path or an editable install, which no other machine "
                         "can rebuild; publish it (privpkg wheel add) and name its privpkg:// URL")
    if _INCLUDE_LINE.match(text):
        raise UsageError(f"{shown(masked(text), 80)!r}: a definition lists the requirements themselves (privpkg env create "
                         "reads -r and -c files)")
    links = _FIND_LINKS.match(text)
    if links and not re.match(r"https?://", links.group(2), re.IGNORECASE):
        raise UsageError(f"{shown(masked(text), 80)!r} names a local folder, which no other machine has; serve it over "
                         "https or publish its wheels (privpkg wheel add)")
    if text.startswith("-"):
        return text
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        # packaging's message goes on to draw the line with a caret under it: its first line only.
        raise UsageError(f"not a requirement: {shown(masked(text), 80)!r} ({shown(masked(str(exc).splitlines()[0]), 120)})") from None
    req.name = canonicalize_name(req.name)
    return str(req)


def _sort_key(line: str) -> tuple[str, str]:
    from packaging.requirements import Requirement

    return Requirement(line).name, line


class Spec:
    """An environment as declared. ``sources``: the files it was read from, as given (name ->
    bytes), stored beside the definition but not part of it. Immutable, compared and hashed by
    every field. A plain class rather than a dataclass: ``env build NAME``'s cache hit imports
    this module, and ``dataclasses`` (with ``inspect``) costs ~8 ms."""

    __slots__ = ("channels", "conda", "constraints", "name", "pip", "platforms", "python", "sources", "variables")
    _FIELDS = ("name", "python", "pip", "constraints", "channels", "conda", "variables", "sources", "platforms")
    name: str
    python: str | None
    pip: tuple[str, ...]
    constraints: tuple[str, ...]
    channels: tuple[str, ...]
    conda: tuple[str, ...]
    variables: tuple[tuple[str, str], ...]
    sources: tuple[tuple[str, bytes], ...]
    #: conda platforms to lock besides the current one (``linux-64``, ``osx-arm64``...)
    platforms: tuple[str, ...]

    def __init__(self, name: str, python: str | None = None, pip: tuple[str, ...] = (), constraints: tuple[str, ...] = (),
                 channels: tuple[str, ...] = (), conda: tuple[str, ...] = (), variables: tuple[tuple[str, str], ...] = (),
                 sources: tuple[tuple[str, bytes], ...] = (), platforms: tuple[str, ...] = ()) -> None:
        values = (name, python, pip, constraints, channels, conda, variables, sources, platforms)
        for f, v in zip(self._FIELDS, values, strict=True):
            object.__setattr__(self, f, v)
        self.__post_init__()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        return type(other) is Spec and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:  # the files as given are left out, as they can be long
        shown_fields = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._FIELDS if f != "sources")
        # A spec is screened only when registered or saved: until then a notebook's repr of one
        # read from a file with a password in a URL must not print it (patterns only: no store read).
        return masked(f"Spec({shown_fields})", secrets={})

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Spec is immutable: cannot set {name}")

    def __post_init__(self) -> None:
        validate_name(self.name)
        if self.python is not None:
            _one_line("python", self.python)
        for n, _ in self.variables:
            if not isinstance(n, str) or not _VARIABLE.fullmatch(n):
                raise UsageError(f"invalid variable name {shown(masked(str(n)), 80)!r}")
        seen = set()
        for n, data in self.sources:
            if not _FILE.fullmatch(n) or n in RESERVED_FILES or n in seen:
                raise UsageError(f"invalid or repeated spec file name {shown(n, 80)!r}")
            if not isinstance(data, bytes):
                raise UsageError(f"spec file {n} must be bytes")
            seen.add(n)
        for p in self.platforms:
            validate_platform(p)
        self.definition()  # every line is checked now, not at the first register

    def definition(self) -> dict[str, Any]:
        lines = [normalize_pip_line(x) for x in self.pip]
        options = [x for x in lines if x.startswith("-")]
        reqs = sorted({x for x in lines if not x.startswith("-")}, key=_sort_key)
        constraints = sorted({normalize_pip_line(x) for x in self.constraints if not x.startswith("-")}, key=_sort_key)
        variables = {n: _one_line(f"variable {n}", v) for n, v in self.variables}
        return {
            "format": FORMAT,
            "name": self.name,
            "python": None if self.python is None else _one_line("python", self.python),
            "pip": options + reqs,
            "constraints": constraints,
            "conda": {
                "channels": list(dict.fromkeys(_one_line("a channel", c) for c in self.channels)),
                "dependencies": sorted({_one_line("a conda dependency", d) for d in self.conda}),
            },
            "variables": dict(sorted(variables.items())),
            # Only when given, so definitions without it keep their digest.
            **({"platforms": sorted({_one_line("a platform", p) for p in self.platforms})} if self.platforms else {}),
        }

    def definition_bytes(self) -> bytes:
        """``definition.json``: canonical JSON (sorted keys, no white space), one trailing newline."""
        return canonical_json(self.definition())

    def digest(self) -> str:
        """sha256 of the definition."""
        return sha256(self.definition_bytes()).hexdigest()

    def with_platforms(self, platforms: Iterable[str]) -> Spec:
        """This spec with ``platforms`` added to the conda platforms it is locked for."""
        added = tuple(validate_platform(p) for p in platforms)
        if set(added) <= set(self.platforms):
            return self
        return Spec.from_definition({**self.definition(), "platforms": sorted({*self.platforms, *added})}, self.sources)

    @property
    def is_conda(self) -> bool:
        return bool(self.conda)

    @classmethod
    def from_definition(cls, data: Mapping[str, Any], sources: Iterable[tuple[str, bytes]] = ()) -> Spec:
        """The spec a ``definition.json`` describes (UsageError, one line, for anything else)."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise UsageError(f"not a privpkg environment definition of format {FORMAT}")
        def field(mapping: Mapping[str, Any], key: str, kind: type, where: str = "") -> Any:
            value = mapping.get(key)
            if value is None:
                return kind()
            if not isinstance(value, kind):
                shape = "a mapping" if kind is dict else "a list"
                raise UsageError(f"malformed environment definition: {where}{key} must be {shape}, not {type(value).__name__}")
            return value

        if not isinstance(data.get("name"), str):
            raise UsageError("malformed environment definition: it has no name")
        conda = field(data, "conda", dict)
        try:
            return cls(
                name=data["name"],
                python=data.get("python"),
                pip=tuple(field(data, "pip", list)),
                constraints=tuple(field(data, "constraints", list)),
                channels=tuple(field(conda, "channels", list, "conda.")),
                conda=tuple(field(conda, "dependencies", list, "conda.")),
                variables=tuple(sorted(field(data, "variables", dict).items())),
                sources=tuple(sources),
                platforms=tuple(field(data, "platforms", list)),
            )
        except (KeyError, TypeError, AttributeError) as exc:  # a shape the checks above let through
            raise UsageError(f"malformed environment definition ({shown(exc, 80)})") from None


def canonical_json(value: Any) -> bytes:
    return (json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def load_definition(data: bytes) -> Spec:
    try:
        doc = json.loads(data)
    except ValueError:
        raise UsageError("definition.json is not JSON") from None
    return Spec.from_definition(doc)
