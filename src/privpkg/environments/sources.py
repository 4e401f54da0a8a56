"""A :class:`~privpkg.environments.spec.Spec` from what users already have.

- :func:`from_conda_specification`: a conda environment file (``environment.yml``): ``channels``,
  ``dependencies`` with an optional ``pip:`` section, ``variables``. Parsed with ruamel.yaml's
  safe loader (``privpkg[env]``; conda itself depends on it and ``privpkg setup conda`` already
  uses it), imported only here.
- :func:`from_pip_requirements`: a requirements file. ``-r FILE`` includes are read in place
  (relative to the including file, each kept under ``spec/``); ``-c FILE`` constraints become
  the spec's constraints; other options (``--index-url``, ``--extra-index-url``,
  ``--find-links``, ``--pre``, ``--only-binary``...) are kept in order. ``-e`` and local paths
  are refused: nothing else could rebuild them.
- :func:`from_existing_conda_environment`: an environment's ``conda-meta/*.json`` records
  (``name==version=build`` from their channels, tokens stripped) and what pip installed into it;
  the name is found as conda finds it (``CONDA_ENVS_DIRS``/``CONDA_ENVS_PATH``, ``envs_dirs`` in a
  condarc, ``ROOT/envs``, ``~/.conda/envs``; ``base`` is the root), or given as a path.
- :func:`from_existing_virtualenv`: a virtualenv's installed distributions, pinned; a wheel
  installed from a workspace keeps its ``privpkg://`` URL from ``direct_url.json``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from privpkg.environments.screen import masked
from privpkg.environments.spec import Spec, normalize_pip_line
from privpkg.errors import NotFoundError, PrivpkgError, UsageError, shown

#: Spec files are small text files; a larger one is refused before it is parsed.
MAX_FILE = 1 << 20
_INCLUDE = re.compile(r"^(-r|--requirement|-c|--constraint)(?:\s+|=)(\S.*)$")
#: Lines that make a spec depend on this machine's files.
_LOCAL = re.compile(r"^(-e|--editable)(\s|=|$)|^(\.{0,2}/|file:)|\s@\s*file:", re.IGNORECASE)


def read_file(path: Path, *, follow: bool = True) -> bytes:
    """A spec file's bytes (at most :data:`MAX_FILE`); one line for a missing or unreadable one.
    A missing file or one of the wrong kind (a directory) is a usage error (exit 2), as README's
    exit codes say of an input file the user named. ``follow=False`` (the files of a definition
    directory, which may be someone else's commit): a symbolic link or anything but a regular
    file is refused, so a link to ``/proc/self/environ`` or ``~/.netrc`` is never read and stored."""
    import stat

    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | (0 if follow else os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise UsageError(f"no such file: {shown(masked(str(path)))}") from None
    except OSError as exc:
        if not follow and os.path.islink(path):
            raise UsageError(f"{shown(path)} is a symbolic link; a definition directory holds plain files") from None
        raise PrivpkgError(f"cannot read {shown(masked(str(path)))}: {exc.strerror or type(exc).__name__}") from None
    # Checked on the descriptor before it becomes a file object: fdopen of a directory raises
    # an IsADirectoryError whose "file name" is the descriptor's number.
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise UsageError(f"{shown(masked(str(path)))} is {kind}; give a file")
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(MAX_FILE + 1)
        except OSError as exc:
            raise PrivpkgError(f"cannot read {shown(masked(str(path)))}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_FILE:
        raise UsageError(f"{shown(path)} is larger than {MAX_FILE >> 20} MiB; a spec file is much smaller")
    return data


def decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{shown(path)} is not UTF-8 text") from None


def _numbered_lines(raw: list[str], where: str, unit: str = "line") -> list[tuple[int, str]]:
    """(number of the first physical line, text) of each requirement or option line: comments,
    blank lines and line continuations handled as pip reads them; local paths and editables
    refused, naming ``where`` and the line."""
    out = []
    parts: list[str] = []
    first = 0
    for number, line in enumerate([*raw, ""], start=1):
        if not parts:
            first = number
        if line.endswith("\\") and number <= len(raw):
            parts.append(line[:-1])
            continue
        text = re.sub(r"(^|\s)#.*$", "", " ".join([*parts, line])).strip()
        parts = []
        if not text:
            continue
        if _LOCAL.search(text):
            raise UsageError(f"{where}, {unit} {first}: {shown(masked(text), 80)!r} names a local path or an editable install, "
                             "which no other machine can rebuild; publish it (privpkg wheel add) and name its privpkg:// URL")
        out.append((first, text))
    return out


def _pip_lines(raw: list[str], where: str) -> list[str]:
    """The lines of an environment.yml's ``pip:`` list (numbered as items, not file lines)."""
    return [text for _, text in _numbered_lines(raw, where, "item")]


def _checked(line: str, where: str) -> str:
    """``line`` as read, once it is known to be a pip line a definition can hold (its error
    names ``where``: the file and line it came from, rather than the definition)."""
    try:
        normalize_pip_line(line)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    return line


class _Requirements:
    def __init__(self) -> None:
        self.pip: list[str] = []
        self.constraints: list[str] = []
        self.files: dict[str, bytes] = {}
        self.seen: set[Path] = set()

    def read(self, path: Path, constraints: bool = False, named_at: str = "") -> None:
        """Read ``path`` (``named_at``: the file and line that include it, for its errors)."""
        prefix = f"{named_at}: " if named_at else ""
        real = path.resolve()
        if real in self.seen:
            raise UsageError(f"{prefix}{shown(path)} is included twice (a -r/-c loop?)")
        self.seen.add(real)
        try:
            data = read_file(path)
        except PrivpkgError as exc:
            if not named_at:
                raise
            # An include: the line that names it is what to fix (usage, as the top file is).
            raise UsageError(f"{prefix}{exc}") from None
        if path.name in self.files:
            raise UsageError(f"{prefix}two spec files are called {shown(path.name)}; rename one")
        self.files[path.name] = data
        for number, line in _numbered_lines(decode(path, data).splitlines(), shown(path)):
            here = f"{shown(path)}, line {number}"
            m = _INCLUDE.match(line)
            if m and "://" in m.group(2):
                raise UsageError(f"{here}: {shown(masked(line), 80)!r}: an included file must be a local file beside it")
            if m:
                self.read(path.parent / m.group(2).strip(), constraints or m.group(1) in ("-c", "--constraint"), here)
            elif constraints:
                if not line.startswith("-"):
                    self.constraints.append(_checked(line, here))
            else:
                self.pip.append(_checked(line, here))


def from_pip_requirements(name: str, path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> Spec:
    """The spec of a requirements file, or of several merged in order (as pip merges repeated
    ``-r`` options)."""
    reqs = _Requirements()
    for one in [path] if isinstance(path, (str, os.PathLike)) else path:
        reqs.read(Path(one))
    return Spec(name, pip=tuple(reqs.pip), constraints=tuple(reqs.constraints), sources=tuple(reqs.files.items()))


def _no_aliases(node: Any, path: Path) -> None:
    """Refuse YAML aliases (``*NAME``): an environment file has no use for them, and nested ones
    expand a small file into gigabytes (the "billion laughs")."""
    seen: set[int] = set()
    stack = [node] if node is not None else []
    while stack:
        n = stack.pop()
        if id(n) in seen:
            raise UsageError(f"{shown(path)} uses YAML aliases (*NAME); write the values out")
        seen.add(id(n))
        value = getattr(n, "value", None)
        if isinstance(value, list):
            for item in value:
                stack.extend(item if isinstance(item, tuple) else (item,))


def load_yaml(path: Path, data: bytes) -> Any:
    try:
        from ruamel.yaml import YAML
        from ruamel.yaml.error import YAMLError
    except ImportError:
        raise PrivpkgError("reading a conda environment file needs ruamel.yaml: pip install 'privpkg[env]'") from None
    try:
        yaml = YAML(typ="safe", pure=True)
        text = decode(path, data)
        _no_aliases(yaml.compose(text), path)
        return yaml.load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UsageError(f"{shown(path)} is not valid YAML{where}") from None


def from_conda_specification(name: str, path: str | os.PathLike[str]) -> Spec:
    file = Path(path)
    data = read_file(file)
    doc = load_yaml(file, data)
    if not isinstance(doc, Mapping):
        raise UsageError(f"{shown(file)} is not a conda environment file (a mapping with dependencies)")
    deps = doc.get("dependencies") or []
    channels = doc.get("channels") or []
    variables = doc.get("variables") or {}
    if not isinstance(deps, list) or not isinstance(channels, list) or not isinstance(variables, Mapping):
        raise UsageError(f"{shown(file)}: dependencies and channels must be lists, variables a mapping")
    platforms = doc.get("platforms") or []  # conda-lock's key: the platforms to lock for
    if not isinstance(platforms, list) or not all(isinstance(p, str) for p in platforms):
        raise UsageError(f"{shown(file)}: platforms must be a list of conda platforms (linux-64, osx-arm64...)")
    conda: list[str] = []
    pip: list[str] = []
    for dep in deps:
        if isinstance(dep, Mapping) and set(dep) == {"pip"} and isinstance(dep["pip"], list):
            pip += _pip_lines([str(x) for x in dep["pip"]], f"{shown(file)} (pip section)")
        elif isinstance(dep, str):
            conda.append(dep)
        else:
            raise UsageError(f"{shown(file)}: a dependency must be a conda spec or a pip: list, not {shown(masked(str(dep)), 60)}")
    for line in pip:
        if _INCLUDE.match(line):
            raise UsageError(f"{shown(file)}: {shown(masked(str(line)), 60)!r} in the pip section: list the requirements themselves")
    pip = [_checked(line, f"{shown(file)} (pip section)") for line in pip]
    return Spec(name, pip=tuple(pip), channels=tuple(str(c) for c in channels), conda=tuple(conda),
                variables=tuple((str(k), str(v)) for k, v in variables.items()), sources=((file.name, data),),
                platforms=tuple(platforms))


# --- existing environments ------------------------------------------------------------------


def _condarc_envs_dirs(environ: Mapping[str, str], home: Path) -> list[Path]:
    """``envs_dirs`` of the condarc files conda reads (the user's and the root's), in order."""
    files = [home / ".condarc", home / ".conda" / "condarc", home / ".config" / "conda" / "condarc"]
    if environ.get("CONDARC"):
        files.append(Path(environ["CONDARC"]))
    out: list[Path] = []
    for f in files:
        if not f.is_file():
            continue
        doc = load_yaml(f, read_file(f))
        dirs = doc.get("envs_dirs") if isinstance(doc, Mapping) else None
        for d in dirs if isinstance(dirs, list) else []:
            out.append(Path(os.path.expandvars(os.path.expanduser(str(d)))))
    return out


def conda_roots(environ: Mapping[str, str]) -> list[Path]:
    roots = [Path(environ["CONDA_ROOT"])] if environ.get("CONDA_ROOT") else []
    if environ.get("CONDA_EXE"):
        roots.append(Path(environ["CONDA_EXE"]).parent.parent)
    return roots


def find_conda_prefix(env_name: str, environ: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """The prefix of the conda environment ``env_name`` (a name, ``base``, or a path), found in
    the order conda searches its envs dirs; NotFoundError naming where it looked."""
    env = os.environ if environ is None else environ
    home = home or Path(env.get("HOME") or Path.home())
    if os.sep in env_name or "/" in env_name or env_name.startswith("."):
        prefix = Path(env_name).expanduser()
        if not (prefix / "conda-meta").is_dir():
            raise NotFoundError(f"{shown(prefix)} is not a conda environment (it has no conda-meta folder)")
        return prefix
    roots = conda_roots(env)
    if env_name == "base":
        for root in roots:
            if (root / "conda-meta").is_dir():
                return root
        raise NotFoundError("no conda base environment found (CONDA_ROOT and CONDA_EXE are not set)")
    dirs = [Path(d) for var in ("CONDA_ENVS_DIRS", "CONDA_ENVS_PATH") for d in env.get(var, "").split(os.pathsep) if d]
    dirs += _condarc_envs_dirs(env, home) + [r / "envs" for r in roots] + [home / ".conda" / "envs"]
    for d in dirs:
        if (d / env_name / "conda-meta").is_dir():
            return d / env_name
    raise NotFoundError(f"no conda environment named {shown(env_name)!r} in {', '.join(shown(d) for d in dict.fromkeys(dirs))}")


def _clean_channel(url: str) -> str:
    """A channel without an anaconda.org token (``/t/TOKEN/``) or user info."""
    from urllib.parse import urlsplit, urlunsplit

    url = re.sub(r"/t/[^/]+/", "/", url)
    if "://" not in url:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def _records(prefix: Path) -> list[dict[str, Any]]:
    out = []
    for f in sorted((prefix / "conda-meta").glob("*.json")):
        try:
            rec = json.loads(read_file(f))
        except ValueError:
            raise UsageError(f"{shown(f)} is not a conda package record (not JSON)") from None
        if not isinstance(rec, dict) or not all(isinstance(rec.get(k), str) for k in ("name", "version", "build")):
            raise UsageError(f"{shown(f)} is not a conda package record (no name, version and build)")
        out.append(rec)
    return out


def _dist_lines(site: Path, skip: set[str], owned: set[str] | None = None) -> list[str]:
    """``name==version`` (or ``name @ privpkg://...``) for each distribution in ``site``,
    canonical names in ``skip`` left out; ``owned``: dist-info folders conda installed."""
    from importlib.metadata import distributions

    from packaging.utils import canonicalize_name

    from privpkg.conda.pypirecords import privpkg_url

    lines: dict[str, str] = {}
    for dist in distributions(path=[str(site)]):
        folder = Path(str(getattr(dist, "_path", "")))
        name = canonicalize_name(dist.metadata["Name"] or "")
        if not name or name in skip or (owned is not None and folder.name in owned):
            continue
        if (folder / "INSTALLER").is_file() and (folder / "INSTALLER").read_text().strip() == "conda":
            continue
        url = privpkg_url(folder)
        if url is None and (folder / "direct_url.json").is_file():
            try:
                direct = json.loads((folder / "direct_url.json").read_text())
            except ValueError:
                direct = {}
            if not isinstance(direct, dict):
                direct = {}
            info = direct.get("dir_info")
            if isinstance(info, dict) and info.get("editable"):
                raise UsageError(f"{name} is an editable install, which no other machine can rebuild; publish it "
                                 "(privpkg wheel add) and install its privpkg:// URL")
            origin = direct.get("url")
            if isinstance(origin, str) and origin.strip().lower().startswith("file:"):
                # A local file (a wheelhouse's, a dist/ folder's): pinning it by version would
                # let the lock find that name on whatever index it asks, e.g. a public one.
                raise UsageError(f"{name} {dist.version} was installed from a local file ({shown(masked(origin.split('#', 1)[0]), 100)}), "
                                 "which no other machine can rebuild; install it from its privpkg:// URL with pip (the shim "
                                 "records that URL), or write a requirements file naming it and use privpkg env create -r")
            if origin is not None:
                # A git checkout or an archive URL: the same, and its URL is the user's to write.
                from privpkg import urls

                raise UsageError(f"{name} {dist.version} was installed from a direct URL "
                                 f"({shown(urls.redact(str(origin).strip()), 100)}), not from an index, so its version alone "
                                 "would be looked up on whatever index the lock asks; write a requirements file naming it "
                                 "(`NAME @ URL`) and use privpkg env create -r")
        lines[name] = f"{name} @ {url}" if url else f"{name}=={dist.version}"
    return [lines[k] for k in sorted(lines)]


def from_existing_conda_environment(name: str, conda_env_name: str, *, environ: Mapping[str, str] | None = None,
                                    home: Path | None = None) -> Spec:
    prefix = find_conda_prefix(conda_env_name, environ, home)
    records = _records(prefix)
    if not records:
        raise UsageError(f"conda environment {shown(conda_env_name)!r} has no packages")
    channels: list[str] = []
    conda: list[str] = []
    python = None
    owned: set[str] = set()
    for rec in records:
        channel = _clean_channel(str(rec.get("channel") or ""))
        subdir = str(rec.get("subdir") or "")
        if subdir and channel.endswith("/" + subdir):  # conda records the channel's platform folder
            channel = channel[: -len(subdir) - 1]
        if channel and channel not in channels and channel != "pypi":
            channels.append(channel)
        conda.append(f"{rec['name']}=={rec['version']}={rec['build']}")
        if rec["name"] == "python":
            python = rec
        for f in rec.get("files") or []:
            parts = str(f).split("/")
            owned.update(p for p in parts if p.endswith(".dist-info"))
    pip: list[str] = []
    if python is not None:
        from types import SimpleNamespace

        from privpkg.conda.pypirecords import site_packages_dir

        site = site_packages_dir(SimpleNamespace(version=python["version"],
                                                 python_site_packages_path=python.get("python_site_packages_path")))
        if site and (prefix / site).is_dir():
            pip = _dist_lines(prefix / site, set(), owned)
    return Spec(name, python=python["version"] if python else None, pip=tuple(pip), channels=tuple(channels), conda=tuple(conda))


def from_existing_virtualenv(name: str, path: str | os.PathLike[str]) -> Spec:
    """The distributions installed in the virtualenv at ``path``, pinned (``pip`` itself left
    out: a build brings its own installer)."""
    root = Path(path)
    cfg = root / "pyvenv.cfg"
    if not root.exists():
        raise UsageError(f"no such virtualenv: {shown(root)}")
    if not cfg.is_file():
        raise UsageError(f"{shown(root)} is not a virtualenv (it has no pyvenv.cfg)")
    version = None
    for line in decode(cfg, read_file(cfg)).splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version_info", "version"):
            version = value.strip()
    sites = sorted(root.glob("lib/python3*/site-packages")) + sorted(root.glob("Lib/site-packages"))
    if not sites:
        raise NotFoundError(f"{shown(root)} has no site-packages")
    pip = _dist_lines(sites[0], {"pip"})
    if version:
        version = ".".join(version.split(".")[:3])
    spec = Spec(name, python=version, pip=tuple(normalize_pip_line(x) for x in pip))
    by_name = [x for x in pip if " @ " not in x]
    if by_name:
        import warnings

        # pip's metadata does not say which index a distribution came from: a feed's package
        # and a public one of the same name look alike here.
        warnings.warn(UnindexedPackagesWarning(
            f"the definition names {len(by_name)} package(s) without their index (a virtualenv does not record where a "
            "package came from); the lock resolves them through the definition's index settings, and it has none, so pip's "
            "configured index (PyPI by default) answers: for a private feed, list them with its --index-url in a "
            "requirements file (pip freeze) and use privpkg env create -r"), stacklevel=2)
    return spec


class UnindexedPackagesWarning(UserWarning):
    """A definition made from an existing environment names packages by name and version only:
    where they came from is not recorded, so the lock resolves them through the definition's
    index settings. ``privpkg env create`` prints it as one ``privpkg: warning:`` line."""
