"""Dependency confusion: find private feeds used through ``--extra-index-url``.

pip gathers candidates from the index and every extra index alike and installs the highest
version, whichever index it came from: a package name that lives on a private feed named by
``--extra-index-url`` can be taken by anyone who publishes a higher version of that name on
PyPI. The safe forms are ``--index-url`` pointing at the private feed (public packages come
through the feed's upstream sources, as Azure Artifacts offers), or uv, whose default
``index-strategy = "first-index"`` takes a name only from the first index that has it.

:func:`scan` looks where pip reads ``index-url`` and ``extra-index-url`` from, and reports every
extra index that is a URL a connection answers (the keyring lookup's own rules:
:meth:`~privpkg.connections.CredentialLookup.find`), and, when the index that wins (pip's order:
config files, then ``$PIP_INDEX_URL``, then a requirements file's own ``--index-url``) is such a URL,
every extra index that is not: the same race, the other way round. It looks in:

- pip's configuration files and ``$PIP_INDEX_URL``/``$PIP_EXTRA_INDEX_URL``, as ``pip install``
  reads them (:mod:`privpkg.pipconfig`, also the reader of pip's ``cert``: files in pip's order,
  ``[global]`` and ``[install]`` only, keys as pip normalizes them);
- requirements files (``--extra-index-url`` lines, nested ``-r``/``-c`` followed by
  :func:`privpkg.resolve.walk`, the walker ``privpkg resolve`` uses, with pip's line rules);
- conda's ``environment.yml``: the items of its ``pip:`` list, which conda writes verbatim into a
  requirements file beside the yml (so a ``-r`` there is relative to the yml's folder).

``environment.yml`` is read with a small line reader rather than a YAML library (privpkg has no
YAML dependency): it finds the ``- pip:`` item of ``dependencies:`` and takes the block-list items
indented under it (or a one-line ``[a, b]`` flow list), quotes and comments removed. That is the
shape ``conda env export`` writes and conda's docs show.

Each finding is one line naming the file (and line) and the safe form; a URL is shown with any
``user:password@`` and query masked.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from privpkg import pipconfig, urls
from privpkg.errors import PrivpkgError, UsageError

if TYPE_CHECKING:
    from privpkg.resolve import Line

_EXTRA = re.compile(r"^--extra-index-url(?:\s*=\s*|\s+)(\S+)")
_INDEX = re.compile(r"^(?:-i|--index-url)(?:\s*=\s*|\s+)(\S+)")
#: The files ``doctor`` reads when none is named: in the current directory.
DEFAULT_REQUIREMENTS = ("requirements.txt",)
DEFAULT_ENV_FILES = ("environment.yml", "environment.yaml")


class Finding(NamedTuple):
    """A private feed used as an extra index: where (file and line, or variable), the URL as it
    may be shown, the connection that answers it, and the safe form for that place."""

    where: str
    url: str
    connection: str
    safe: str
    #: Set for a public extra index beside a private index: that index and where it is set.
    beside: str = ""

    def line(self) -> str:
        if self.beside:
            return (
                f"{self.where}: extra index {self.url} is searched beside the private feed {self.beside}, connection "
                f"{self.connection!r}: a package of the same name there can win (pip takes the highest version across "
                f"indexes); safe: {self.safe}"
            )
        return (
            f"{self.where}: private feed {self.url} (connection {self.connection!r}) used as an extra index: a public package "
            f"of the same name can win (pip takes the highest version across indexes); safe: {self.safe} with the feed's "
            "upstream sources for public packages, or uv (its default index-strategy is \"first-index\")"
        )


def _private(lookup: Any, url: str) -> str | None:
    """The name of the connection that answers ``url``, or None (also for what is not a URL)."""
    if "://" not in url:
        return None
    try:
        conn = lookup.find(url)
    except PrivpkgError:
        return None
    return None if conn is None else str(conn.name)


def _shown(url: str) -> str:
    return urls.redact(url)


class _Use(NamedTuple):
    """One index URL where pip reads it: ``kind`` is ``index`` or ``extra``; ``safe`` is that
    place's safe spelling of a private feed."""

    where: str
    kind: str
    url: str
    safe: str


def _config_uses(environ: Mapping[str, str], files: Sequence[Path] | None = None) -> list[_Use]:
    """The indexes ``pip install`` takes from its config files (``files``, default pip's own)
    and environment, in pip's order (:mod:`privpkg.pipconfig`; the last index-url wins). Every
    extra index set where pip install reads it is kept, also one a later setting overrides now:
    it counts again when that setting goes (a variable unset, another shell)."""
    uses: list[_Use] = []
    for s in pipconfig.install_settings(("index-url", "extra-index-url"), environ, config_files=files):
        kind = "index" if s.name == "index-url" else "extra"
        spelling = "index-url = " if s.path is not None else "PIP_INDEX_URL="  # the safe form, in a file or a variable
        uses += [_Use(s.where(), kind, url, spelling + _shown(url)) for url in s.value.split()]
    return uses


def _judge(lookup: Any, uses: Sequence[_Use], found: list[Finding]) -> None:
    """Private feeds used as extra indexes; and, when the index that wins is a private feed,
    every extra index that is not one (a package of the private name there can win too)."""
    for u in uses:
        name = _private(lookup, u.url) if u.kind == "extra" else None
        if name:
            found.append(Finding(u.where, _shown(u.url), name, u.safe))
    index = next((u for u in reversed(uses) if u.kind == "index"), None)
    name = _private(lookup, index.url) if index else None
    if index and name:
        for u in uses:
            if u.kind == "extra" and not _private(lookup, u.url):
                found.append(Finding(u.where, _shown(u.url), name, "no extra index; let the feed's upstream sources serve public packages",
                                     f"{_shown(index.url)} ({index.where})"))


def scan_pip_config(lookup: Any, environ: Mapping[str, str] | None = None, files: Sequence[Path] | None = None) -> list[Finding]:
    env = os.environ if environ is None else environ
    found: list[Finding] = []
    _judge(lookup, _config_uses(env, files), found)
    return found


def _line_uses(lines: Iterable[Line], uses: list[_Use]) -> None:
    for where, line in lines:
        m = _EXTRA.match(line) or _INDEX.match(line)
        if m:
            kind = "extra" if line.startswith("--extra") else "index"
            uses.append(_Use(where, kind, m.group(1), f"--index-url {_shown(m.group(1))}"))


def _file_uses(path: Path, uses: list[_Use], seen: set[Path], named_at: str = "") -> None:
    """A requirements file and the files it includes (:func:`privpkg.resolve.walk`, leniently: a
    nested URL is not followed, a cycle is read once)."""
    from privpkg.resolve import walk

    _line_uses(walk(path, named_at, lenient=True, seen=seen), uses)


def scan_requirements(lookup: Any, path: Path, ambient: Sequence[_Use] = ()) -> list[Finding]:
    """Findings in a requirements file and the files it includes, read after pip's config and
    environment (``ambient``: their index may be the private one). Raises UsageError for a file
    that cannot be read (naming the line that included it)."""
    uses: list[_Use] = []
    _file_uses(path, uses, set())
    found: list[Finding] = []
    _judge(lookup, [*ambient, *uses], found)
    return found


_ITEM = re.compile(r"^(?P<indent>\s*)-(?:\s+(?P<value>.*))?$")
_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w.-]*)\s*:(?P<rest>.*)$")


def _scalar(text: str) -> str:
    """A plain or quoted YAML scalar on one line, with a trailing comment removed."""
    text = text.strip()
    if text[:1] in ("'", '"'):
        q = text[0]
        end = text.find(q, 1)
        while q == "'" and end != -1 and text[end + 1 : end + 2] == "'":
            end = text.find(q, end + 2)  # '' is an escaped quote in single-quoted YAML
        body = text[1:end] if end != -1 else text[1:]
        return body.replace("''", "'") if q == "'" else body.replace('\\"', '"')
    return re.sub(r"\s+#.*$", "", text).strip()


def pip_section(text: str) -> list[tuple[int, str]]:
    """(line number, item) of the ``pip:`` list under ``dependencies:`` in an environment.yml.

        >>> pip_section("dependencies:\\n  - python=3.11\\n  - pip:\\n    - --extra-index-url https://h/x/  # feed\\n    - 'pkg==1'\\n  - numpy\\n")
        [(4, '--extra-index-url https://h/x/'), (5, 'pkg==1')]
    """
    lines = text.splitlines()
    out: list[tuple[int, str]] = []
    in_deps = False
    pip_indent: int | None = None
    for number, raw in enumerate(lines, start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        key = _KEY.match(raw)
        if key and not key.group("indent"):
            in_deps, pip_indent = key.group("key") == "dependencies", None
            continue
        if not in_deps:
            continue
        item = _ITEM.match(raw)
        indent = len(raw) - len(raw.lstrip())
        if pip_indent is not None and indent > pip_indent and item:
            out.append((number, _scalar(item.group("value") or "")))
            continue
        if pip_indent is not None and indent <= pip_indent:
            pip_indent = None
        if item and item.group("value"):
            head = re.match(r"^pip\s*:(?P<rest>.*)$", item.group("value").strip())
            if head:
                pip_indent = len(item.group("indent"))
                rest = re.sub(r"\s+#.*$", "", head.group("rest")).strip()
                if rest.startswith("[") and rest.endswith("]"):  # a one-line flow list
                    out += [(number, _scalar(v)) for v in rest[1:-1].split(",") if v.strip()]
                    pip_indent = None
    return [(n, v) for n, v in out if v]


def scan_env_file(lookup: Any, path: Path, ambient: Sequence[_Use] = ()) -> list[Finding]:
    """Findings in an environment.yml's ``pip:`` section and the requirements files it names
    (relative to the yml's folder, where conda writes the section as a requirements file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    from privpkg.resolve import OPTION, Line, option_target

    uses: list[_Use] = []
    seen: set[Path] = set()
    for number, item in pip_section(text):
        where = f"{path}, line {number} (pip:)"
        nested = OPTION.match(item)
        if nested is None:
            _line_uses([Line(where, item)], uses)
        elif "://" not in option_target(nested):
            _file_uses(path.parent / option_target(nested), uses, seen, where)
    found: list[Finding] = []
    _judge(lookup, [*ambient, *uses], found)
    return found


def scan(
    lookup: Any,
    *,
    requirements: Sequence[Path] = (),
    env_files: Sequence[Path] = (),
    environ: Mapping[str, str] | None = None,
    pip_files: Sequence[Path] | None = None,
    errors: list[str] | None = None,
) -> list[Finding]:
    """Every finding: pip's configuration (``pip_files``, default :func:`privpkg.pipconfig.files`) and
    environment, then each requirements file, then each environment.yml. A file that cannot be
    read raises UsageError, or, when ``errors`` is given, is one message there and the scan goes on."""
    env = os.environ if environ is None else environ
    ambient = _config_uses(env, pip_files)
    found: list[Finding] = []
    _judge(lookup, ambient, found)
    for path, reader in [*((r, scan_requirements) for r in requirements), *((e, scan_env_file) for e in env_files)]:
        try:
            found += reader(lookup, path, ambient)
        except UsageError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
    return list(dict.fromkeys(found))  # a file included from two places is one finding
