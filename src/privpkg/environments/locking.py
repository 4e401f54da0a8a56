"""Making an environment's locks: :func:`lock_spec` turns a spec into its lock files
(``pylock.toml`` for the pip part, ``conda-PLATFORM.txt`` per conda platform).

The pip part is locked by ``pip lock`` (PEP 751; experimental in pip, so privpkg pins it: pip
:data:`MIN_PIP` or newer, tested with 25.1 and 26.3) run by privpkg's own interpreter, where the
pip shim and the keyring backend are loaded: pip fetches ``name @ privpkg://...`` wheels through
the shim and records them as ``privpkg://`` URLs with their sha256, and a feed answers with the
PAT of the connection that covers it (``--keyring-provider import``), so feed files are recorded
as their plain URLs. uv's ``uv pip compile --format pylock.toml`` is not used: uv refuses the
``privpkg://`` scheme, so its lock would need the wheels pinned to local files and rewritten,
and the rewrite is where a path or a signed URL would slip in. pip's lock is for the running
interpreter and platform only (``pip lock`` 25.1 and 26.3 have no ``--platform`` or
``--python-version``). uv's ``--python-platform``/``--python-version`` do lock a feed-only spec
for another platform, and :func:`privpkg.environments.pylock.load` reads uv's lock to the same
artifacts as pip's (tests/test_env_locks.py); a spec with ``privpkg://`` wheels cannot go that way
yet.

Unpinned requirements stay where the previous lock put them: every package the previous lock
took from an index is passed to pip as a constraint ``name==version``, except with ``upgrade``
(``True``: none; a list of names: all but those) or when the spec itself now excludes that
version. The conda part is :func:`privpkg.environments.condalock.lock_conda`, which keeps the
previous lock's builds the same way (the solver's preferred records).

A spec with both parts (an environment.yml with ``- pip:`` items) has its pip part locked for the
interpreter its conda part installs, not privpkg's: the conda part is locked first, its prefix
for this platform is built (the caller's ``conda_prefix``: :func:`privpkg.environments.build.build_conda`,
the cached build, used read-only), and privpkg's own pip runs ``pip lock`` under that prefix's
python, as ``pip --python`` would (pip's ``__pip-runner__.py``: the prefix needs no pip). The
shim and keyring are not in that interpreter, so, as for conda's pip step (issue 9), the shim is
copied (:func:`privpkg.setup_pip.install_shim`) into a temporary site folder that the runner
adds with ``site.addsitedir`` (nothing is written into the prefix; signing goes back to
privpkg's interpreter), and pip asks privpkg's ``keyring`` launcher
(:func:`privpkg.conda.pipstep.prepare_environ`, ``--keyring-provider subprocess``). pip lock has
no ``--platform``, so such a spec is locked for this machine's platform only: asking for
another platform is one line (:func:`lock_spec`).

Every lock goes through :func:`privpkg.environments.pylock.load` before it is returned, so a
signature, a password in user info, a ``file://`` URL or a local path is refused with one line.

The spec, until helper A's :mod:`.spec` lands, is a mapping (the canonical definition's fields
this module reads): ``pip`` (requirement lines, as in a requirements file: options such as
``--index-url`` included), ``conda`` (``{"channels": [...], "dependencies": [...]}``, where a
``{"pip": [...]}`` item adds to the pip part, as in environment.yml) and ``platforms`` (conda
platforms locked besides the running one, which a build here needs).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from privpkg import envvars, urls
from privpkg.environments import condalock, pylock
from privpkg.errors import PrivpkgError, UsageError, shown

PYLOCK = "pylock.toml"
#: pip lock appeared in pip 25.1 (experimental); 25.1 and 26.3 are tested (tests/test_env_locks.py).
MIN_PIP = (25, 1)
#: A resolution that reaches feeds can take a while; a hung feed must not hang the command.
TIMEOUT = 900
_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)


def _pip_version(python: str) -> tuple[int, ...] | None:
    if python == sys.executable:
        # privpkg's own interpreter: its metadata answers without a 0.5 s `pip --version`.
        from importlib.metadata import PackageNotFoundError, version

        try:
            m = re.match(r"(\d+)\.(\d+)", version("pip"))
        except PackageNotFoundError:
            return None
        return (int(m.group(1)), int(m.group(2))) if m else None
    try:
        r = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True, timeout=120, check=False,
                           env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.match(r"pip (\d+)\.(\d+)", r.stdout)
    return (int(m.group(1)), int(m.group(2))) if r.returncode == 0 and m else None


def _hide_urls(text: str) -> str:
    return _URL.sub(lambda m: urls.redact(m.group(0)), text)


def _unanswered_lookup(tag: str) -> str:
    """For a failed ``pip lock``: the first index URL pip asked privpkg for and got nothing, with
    why and what to do. pip says only "from versions: none" when a feed answered 401 to a
    request without credentials, so this is the line that names the cause. Only lookups with
    ``tag`` (this pip's, and its children's: :data:`privpkg.envvars.LOOKUP_TAG`) count: another
    program's lookup recorded meanwhile is not this pip's cause."""
    from privpkg import lookuplog

    try:
        recs = [r for r in lookuplog.read_last(200) if r.get("tag") == tag]
    except Exception:  # noqa: BLE001 - an error line is being made: never a second error
        return ""
    for rec in recs:
        if not rec.get("served") and "://" in str(rec.get("service", "")):
            outcome, hint = lookuplog.explain(rec)
            return f" (pip asked privpkg for {rec['service']} and got {outcome}{'; ' + hint if hint else ''})"
    return ""


def pip_lines(spec: Mapping[str, Any]) -> list[str]:
    """The pip part of ``spec``: its ``pip`` lines, then the ``pip:`` items of its conda
    dependencies."""
    lines = [str(x) for x in spec.get("pip") or []]
    for dep in (spec.get("conda") or {}).get("dependencies") or []:
        if isinstance(dep, Mapping):
            lines += [str(x) for x in dep.get("pip") or []]
    return lines


def constraints(lines: Sequence[str], previous: str | None, upgrade: bool | Sequence[str]) -> list[str]:
    """``name==version`` for each package the previous lock took from an index, unless it is
    upgraded or the spec's own requirement for it now excludes that version.

    >>> prev = 'lock-version = "1.0"\\n[[packages]]\\nname = "a"\\nversion = "1.0"\\n' \\
    ...        '[[packages.wheels]]\\nurl = "https://h/a-1.0-py3-none-any.whl"\\nhashes = {sha256 = "%s"}\\n' % ("0" * 64)
    >>> constraints(["a"], prev, False), constraints(["a>=2"], prev, False), constraints(["a"], prev, ["A"])
    (['a==1.0'], [], [])
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    if not previous or upgrade is True:
        return []
    held = pylock.load(previous).versions()
    if upgrade:
        for name in upgrade:
            held.pop(canonicalize_name(name), None)
    for line in lines:
        text = line.split(" #", 1)[0].strip()
        if not text or text.startswith("-"):
            continue
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue  # pip judges it
        name = canonicalize_name(req.name)
        if name in held and (req.url or not req.specifier.contains(held[name], prereleases=True)):
            del held[name]
    return [f"{name}=={version}" for name, version in sorted(held.items())]


def _check_direct_names(lines: Sequence[str]) -> None:
    """``name @ privpkg://.../FILE.whl`` whose FILE is another project's wheel: one line here
    (pip itself stops on an AssertionError with a traceback)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

    for line in lines:
        try:
            req = Requirement(line.split(" #", 1)[0].strip())
        except InvalidRequirement:
            continue
        if not (req.url and req.url.lower().startswith("privpkg:")):
            continue
        filename = req.url.split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        try:
            project = parse_wheel_filename(filename)[0]
        except InvalidWheelFilename:
            raise UsageError(f"{shown(req.url, 120)} does not name a wheel file") from None
        if project != canonicalize_name(req.name):
            raise UsageError(f"{shown(req.name, 60)} @ {shown(req.url, 120)}: that wheel is {project}'s, not {canonicalize_name(req.name)}'s")


#: Run by the target interpreter (``-I``): add the folder holding the shim's copy as a site
#: folder (its ``.pth`` runs), then hand over to pip's runner, which imports privpkg's pip.
_RUNNER = ("import runpy, site, sys; site.addsitedir(sys.argv.pop(1)); del sys.argv[0]; "
           "runpy.run_path(sys.argv[0], run_name='__main__')")


def _pip_runner() -> str:
    """pip's ``__pip-runner__.py`` (what ``pip --python`` runs), without importing pip."""
    from importlib.util import find_spec

    spec = find_spec("pip")
    runner = Path(spec.origin).parent / "__pip-runner__.py" if spec is not None and spec.origin else None
    if runner is None or not runner.is_file():
        raise PrivpkgError("locking for a conda environment's python needs pip's __pip-runner__.py (pip >= 22.3) beside privpkg")
    return str(runner)


def _for_interpreter(target: str, tmp: str, pip_args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run privpkg's pip with ``pip_args`` under ``target``
    (module docstring): the shim copied into a folder of ``tmp``, the keyring launcher first on
    PATH."""
    from privpkg.conda.pipstep import prepare_environ
    from privpkg.setup_pip import install_shim

    site_dir = Path(tmp, "site")
    site_dir.mkdir()
    install_shim(target, purelib=site_dir)
    env = dict(os.environ)
    prepare_environ(env, sys.executable)
    return [target, "-I", "-c", _RUNNER, str(site_dir), _pip_runner(), *pip_args, "--keyring-provider", "subprocess"], env


def lock_pip(lines: Sequence[str], *, previous: str | None = None, upgrade: bool | Sequence[str] = False,
             python: str | None = None, constraints_lines: Sequence[str] = (), target: str | None = None) -> str:
    """The ``pylock.toml`` text of the requirement ``lines`` (under the spec's own
    ``constraints_lines``), made by ``pip lock`` in ``python`` (default: privpkg's own
    interpreter), screened and canonical. With ``target`` (a conda prefix's python), privpkg's
    pip locks for that interpreter instead (module docstring)."""
    import tempfile

    _check_direct_names(lines)
    python = sys.executable if target else python or sys.executable
    found = _pip_version(python)
    if found is None or found < MIN_PIP:
        have = "no pip" if found is None else "pip " + ".".join(map(str, found))
        raise PrivpkgError(f"locking the pip part needs pip >= {'.'.join(map(str, MIN_PIP))} (pip lock) beside privpkg, "
                           f"found {have}: {python} -m pip install 'pip>={'.'.join(map(str, MIN_PIP))}'")
    pins = constraints(lines, previous, upgrade)
    with tempfile.TemporaryDirectory(prefix="privpkg-lock-") as tmp:
        req, cons, out = Path(tmp, "requirements.txt"), Path(tmp, "constraints.txt"), Path(tmp, PYLOCK)
        req.write_text("".join(line + "\n" for line in lines))
        cons.write_text("".join(line + "\n" for line in [*constraints_lines, *pins]))
        args = ["lock", "--no-input", "--disable-pip-version-check", "-r", str(req), "-c", str(cons), "-o", str(out)]
        if target:
            cmd, env = _for_interpreter(target, tmp, args)
        else:
            cmd, env = [python, "-m", "pip", *args, "--keyring-provider", "import"], dict(os.environ)
        tag = env[envvars.LOOKUP_TAG] = os.urandom(8).hex()  # secrets.token_hex, without its imports
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, check=False, cwd=tmp, stdin=subprocess.DEVNULL, env=env)
        except subprocess.TimeoutExpired:
            raise PrivpkgError(f"pip lock did not finish within {TIMEOUT} s") from None
        except OSError as exc:
            raise PrivpkgError(f"cannot run pip lock: {exc.strerror or type(exc).__name__}") from None
        if r.returncode != 0:
            text = r.stderr + r.stdout
            errors = [ln.strip() for ln in text.splitlines() if ln.startswith("ERROR:")]
            why = errors[0].removeprefix("ERROR:").strip() if errors else f"exit {r.returncode}"
            if why == "Exception:":  # pip crashed: its traceback's last line says what
                why = next((ln.strip() for ln in reversed(text.splitlines()) if ln.strip()), why)
            raise PrivpkgError(f"pip lock failed: {shown(_hide_urls(why), 300)}{_unanswered_lookup(tag)}")
        try:
            text = out.read_text()
        except OSError as exc:
            raise PrivpkgError(f"pip lock wrote no {PYLOCK}: {exc.strerror or exc}") from None
    return pylock.dump(pylock.load(text))


def check_platforms(spec: Mapping[str, Any]) -> list[str]:
    """The conda platforms ``spec`` is locked for (this machine's and its ``platforms``), or
    the one line that says it can never be: pip lock has no ``--platform``, so a spec with a pip
    part is locked for this machine's platform only. ``env create`` asks this too, so a
    definition no one could register here is refused when it is written, in the same words."""
    conda = spec.get("conda") or {}
    specs = [str(d) for d in conda.get("dependencies") or [] if not isinstance(d, Mapping)]
    has_pip = any(line.strip() and not line.strip().startswith("#") for line in pip_lines(spec))
    here = condalock.current_platform()
    # A definition's platforms are locked besides this machine's, whose lock a build here needs.
    platforms = sorted({here, *(str(p) for p in spec.get("platforms") or [])})
    others = [p for p in platforms if p != here]
    if has_pip and others and not specs:
        raise UsageError(f"conda platform {', '.join(others)}: a pip spec is locked for this machine's platform ({here}) only, "
                         "since pip lock has no --platform; lock it on that platform, or drop --platform")
    if specs and has_pip and others:
        # pip lock has no --platform: a pylock.toml made here would be wrong there, silently.
        raise UsageError(f"conda platform {', '.join(others)}: a spec with a pip part is locked for this machine's platform "
                         f"({here}) only, since pip lock has no --platform; lock it on that platform, or drop the pip part")
    return platforms


def lock_spec(spec: Mapping[str, Any], *, previous: Mapping[str, str] | None = None, upgrade: bool | Sequence[str] = False,
              python: str | None = None, conda_prefix: Callable[[str], Path] | None = None) -> dict[str, str]:
    """``{file name: text}``: ``pylock.toml`` for the pip part (when there is one) and
    ``conda-PLATFORM.txt`` for each platform of the conda part (when there is one).
    ``previous`` holds the previous version's lock files (same names); ``upgrade`` is True
    (move every unpinned requirement) or the names of the packages to move. ``conda_prefix``
    (needed for a spec with both parts) gives the prefix of this platform's conda lock, whose
    python the pip part is locked for (module docstring)."""
    if not isinstance(upgrade, bool):
        upgrade = [str(u) for u in upgrade]
    files: dict[str, str] = {}
    conda = spec.get("conda") or {}
    specs = [str(d) for d in conda.get("dependencies") or [] if not isinstance(d, Mapping)]
    lines = pip_lines(spec)
    has_pip = any(line.strip() and not line.strip().startswith("#") for line in lines)
    target = None
    platforms = check_platforms(spec)
    if specs:
        files.update(condalock.lock_conda([str(c) for c in conda.get("channels") or []], specs, platforms,
                                          previous=previous, upgrade=upgrade))
        if has_pip:
            if conda_prefix is None:
                raise PrivpkgError("lock_spec: a spec with conda and pip parts needs conda_prefix")
            python_path = condalock.prefix_python(conda_prefix(files[condalock.file_name(condalock.current_platform())]))
            if not python_path.is_file():
                raise UsageError("the conda part installs no python, so its pip part has no interpreter to be locked for "
                                 "(add python to the conda dependencies)")
            target = str(python_path)
    if has_pip:
        files[PYLOCK] = lock_pip(lines, previous=(previous or {}).get(PYLOCK), upgrade=upgrade, python=python,
                                 constraints_lines=[str(c) for c in spec.get("constraints") or []], target=target)
    if not files:
        raise UsageError("the spec has no pip requirement and no conda dependency: nothing to lock")
    return files
