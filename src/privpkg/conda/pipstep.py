"""conda's pip step: what the conda plugin's pre-command sets up, and its wrapper around the pip
subprocess conda starts for an environment file's ``pip:`` section.

How conda runs that section (FACTS, conda 26.7): the ``pip:`` lines go verbatim into a temporary
requirements file, and ``conda.env.installers.pip`` calls ``pip_subprocess(args, prefix, cwd)``,
which runs ``bash`` with a script that activates the new environment (so ``PATH`` becomes
``PREFIX/bin:BASE/condabin:...``: base's ``bin``, and a ``keyring`` there, is dropped) and then
``PREFIX/bin/python -m pip install -U -r FILE``. pip's output is captured and printed only after
pip exits, so a password prompt hangs silently. The pre-command (:func:`prepare_environ`, for
the commands in :data:`PIP_COMMANDS`) therefore sets, in conda's own environment, which the pip
step inherits:

- ``PIP_KEYRING_PROVIDER=subprocess`` and ``PIP_NO_INPUT=1`` (only where the user set neither):
  pip asks the ``keyring`` command and never prompts; with no credential it fails at once;
- ``PATH`` starting with a private folder (:func:`launcher_dir`, in privpkg's state dir, 0700)
  that holds only a ``keyring`` launcher running, in base's interpreter (where privpkg's
  backend lives), :mod:`privpkg.conda.keyringcli`: pip's lookup answered by the backend's rules
  without keyring's start-up, anything else by keyring's CLI. No secret goes into the environment.

Then :func:`wrap_pip_subprocess` replaces conda's private ``pip_subprocess`` (guarded: if it is
missing or its signature changed, one line and conda goes on unchanged). The wrapper, before pip
runs, reads the requirements file and, when it names a ``privpkg://`` URL or a URL in a
registered Azure workspace's container, puts the pip shim into that environment
(:func:`privpkg.setup_pip.install_shim`; its site-packages read from conda's record of the
environment's python, :func:`env_purelib`, so no interpreter is started for it). This covers ``conda env create``, ``conda create
--file`` and ``conda env update -f`` alike, also an update with nothing new to link (no
transaction runs then, so a post-transaction action would miss it); that is why the plugin
uses no transaction action. After a failed pip step it prints privpkg's reason
(:func:`failure_lines`): the lookups the keyring backend recorded during the step
(:mod:`privpkg.lookuplog`), and, for a pip older than 26.2 and a feed URL without a username,
that such a pip never asks keyring.

While conda's pip subprocess runs, the wrapper keeps :mod:`privpkg.conda.broker` serving, so the
shim and the launcher ask conda's process instead of starting base's interpreter; the launcher
runs the broker's stdlib client when ``PRIVPKG_BROKER`` is set (see :func:`launcher_text`).

Nothing here reads the store: the pre-command runs for every ``conda create``, and ``conda
info`` must work with a broken store. This module imports only the standard library and
privpkg's lower layers (no keyring, no cryptography).
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import sys
import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from privpkg import log, paths
from privpkg.errors import PrivpkgError
from privpkg.pip_shim.broker import ENV as BROKER_ENV

#: conda's names (``conda.cli.main_*``) of the commands whose environment file may hold a pip
#: section: ``conda env create -f`` and ``conda create --file`` are both ``create``; ``conda
#: install --file`` and ``conda update --file`` take environment files too (conda/cli/install.py).
PIP_COMMANDS = frozenset({"create", "install", "update", "env_update"})
#: The folder (in :func:`privpkg.paths.state_dir`) put first on PATH for the pip step.
LAUNCHER_FOLDER = "conda-bin"
#: What the launcher runs (``python -P -m``): pip's lookup without keyring's start-up.
LAUNCHER_MODULE = "privpkg.conda.keyringcli"
#: conda's ``pip_subprocess(args, prefix, cwd)``, as conda 26.7 defines it.
EXPECTED_PARAMETERS = ("args", "prefix", "cwd")
#: The first pip that asks the keyring CLI without a username (privpkg.pipcheck.PIP_CREDS_MODE).
PIP_CREDS_MODE = (26, 2)
_WRAPPED = "__privpkg_wrapped__"
_INDEX = re.compile(r"^(?:-i|--index-url|--extra-index-url)(?:\s*=\s*|\s+)(\S+)")
_MENTIONS = re.compile(r"privpkg:", re.IGNORECASE)
#: conda's record of an environment's python package: ``python-3.11.9-h1234_0.json`` (not
#: ``python-dateutil-...``: a version starts with a digit).
_PYTHON_RECORD = re.compile(r"^python-\d[^-]*-[^-]+\.json$")


def one_line(exc: BaseException) -> str:
    """An exception as one line, never a traceback: privpkg's own message, else its type and
    first line."""
    if isinstance(exc, PrivpkgError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


# --- the pre-command: environment, launcher ---------------------------------------------------


def launcher_dir() -> Path:
    return paths.state_dir() / LAUNCHER_FOLDER


def launcher_text(python: str) -> bytes:
    """The ``keyring`` launcher: base's interpreter (``python``) running
    :mod:`privpkg.conda.keyringcli`, which answers pip's lookup from privpkg's store without
    keyring's start-up and hands anything else to keyring's CLI. ``-P`` keeps the working
    directory (the environment file's folder, where pip runs) off ``sys.path``, so a
    ``keyring.py`` or ``privpkg`` there cannot stand in for them."""
    client = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pip_shim", "broker.py")
    return (
        "#!/bin/sh\n"
        "# Written by privpkg's conda plugin: pip's keyring provider (subprocess) runs `keyring`,\n"
        "# and conda's activation of the new environment drops base's bin from PATH.\n"
        "# During conda's pip step, conda's process answers (privpkg.conda.broker).\n"
        f'if [ -n "${{{BROKER_ENV}:-}}" ]; then exec {shlex.quote(python)} -I -S {shlex.quote(client)} "$@"; fi\n'
        f'exec {shlex.quote(python)} -P -m {LAUNCHER_MODULE} "$@"\n'
    ).encode()


def _private_dir(folder: Path) -> None:
    """Make ``folder`` (0700) or check the one there: a real directory of ours, tightened to
    0700. A symlink or someone else's folder is refused (PrivpkgError): nobody else may choose
    what runs as ``keyring``."""
    try:
        folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
        st = folder.lstat()
    except OSError as exc:
        raise PrivpkgError(f"cannot make {folder}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode) or (hasattr(os, "geteuid") and st.st_uid != os.geteuid()):
        raise PrivpkgError(f"{folder} is not a folder of this user's; remove it")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(folder, 0o700)


def _read_nofollow(path: Path) -> bytes | None:
    """The file's bytes if it is a regular file (a symlink is not followed), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != 0o700:
            return None
        return os.read(fd, 64 * 1024)
    finally:
        os.close(fd)


def ensure_launcher(python: str | None = None) -> Path:
    """The launcher folder, with a current ``keyring`` launcher for ``python`` (default: this
    interpreter, base's under conda). The launcher is written atomically, and only when it is
    missing or differs (a conda command that finds it right writes nothing)."""
    from privpkg.fileio import write_atomic

    folder = launcher_dir()
    _private_dir(folder)
    _only_the_launcher(folder)
    target = folder / "keyring"
    want = launcher_text(python or sys.executable)
    if _read_nofollow(target) != want:
        write_atomic(target, want, 0o700)
    return folder


def _only_the_launcher(folder: Path) -> None:
    """Remove every entry but ``keyring`` (and a concurrent writer's ``.keyring.*.tmp``): the
    folder is first on PATH for all of conda's children, not only pip, so a ``bash`` or
    ``python`` planted there would run in their place."""
    import shutil

    for entry in os.scandir(folder):
        if entry.name == "keyring" or (entry.name.startswith(".keyring.") and entry.name.endswith(".tmp")):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as exc:
            raise PrivpkgError(f"cannot remove {path} from privpkg's launcher folder: {exc.strerror or exc}") from None


def launcher_current(python: str | None = None) -> bool:
    """Whether the launcher is in place and runs ``python`` (default: this interpreter)."""
    return _read_nofollow(launcher_dir() / "keyring") == launcher_text(python or sys.executable)


def prepare_environ(environ: MutableMapping[str, str] | None = None, python: str | None = None) -> Path | None:
    """Set up ``environ`` (default ``os.environ``: conda's, which its pip step inherits) for an
    authenticated, prompt-free pip step: ``PIP_KEYRING_PROVIDER=subprocess`` and
    ``PIP_NO_INPUT=1`` where unset, and the launcher folder first on PATH. Returns that folder,
    or None where there is no POSIX shell to run the launcher (Windows)."""
    env = os.environ if environ is None else environ
    env.setdefault("PIP_KEYRING_PROVIDER", "subprocess")
    env.setdefault("PIP_NO_INPUT", "1")
    if os.name != "posix":
        return None
    folder = ensure_launcher(python)
    entries = [e for e in env.get("PATH", "").split(os.pathsep) if e and e != str(folder)]
    env["PATH"] = os.pathsep.join([str(folder), *entries])
    return folder


# --- the wrapper around conda's pip_subprocess ------------------------------------------------


class Scan(NamedTuple):
    """What a pip section's requirements file asks for: whether the pip shim is needed (a
    ``privpkg://`` URL or a URL in a registered Azure workspace's container) and the index URLs
    it names (``-i``/``--index-url``/``--extra-index-url``)."""

    needs_shim: bool
    index_urls: tuple[str, ...]


def _urls_in(line: str) -> list[str]:
    """The http(s) URLs of a requirement line (``name @ URL``, a bare URL)."""
    return [t for t in re.split(r"[\s;]+", line) if t.lower().startswith(("http://", "https://"))]


def scan_requirements(path: Path) -> Scan:
    """Read the requirements file conda wrote (and the files it includes, as pip reads them:
    :func:`privpkg.resolve.walk`, leniently). Reads workspace definitions only when a line
    holds an http(s) URL; never the store. An unreadable file scans as empty (pip reports it)."""
    from privpkg import resolve

    try:
        lines = resolve.walk(path, lenient=True)
    except PrivpkgError:
        return Scan(False, ())
    needs = False
    index: list[str] = []
    for line in lines:
        m = _INDEX.match(line.text)
        if m:
            index.append(m.group(1))
            continue
        if line.text.startswith("-"):
            continue
        if _MENTIONS.search(line.text) or any(resolve.is_signable(u) for u in _urls_in(line.text)):
            needs = True
    return Scan(needs, tuple(index))


def requirements_file(args: list[str], cwd: str | None) -> Path | None:
    """The ``-r FILE`` of conda's pip arguments (``install -U -r FILE --exists-action=b``)."""
    for i, a in enumerate(args):
        name = None
        if a in ("-r", "--requirement") and i + 1 < len(args):
            name = args[i + 1]
        elif a.startswith("--requirement="):
            name = a.split("=", 1)[1]
        elif a.startswith("-r") and len(a) > 2:
            name = a[2:]
        if name:
            p = Path(name)
            return p if p.is_absolute() or not cwd else Path(cwd) / p
    return None


def env_python(prefix: str) -> Path:
    return Path(prefix) / ("python.exe" if os.name == "nt" else "bin/python")


def env_purelib(prefix: str) -> Path | None:
    """The purelib of the conda environment at ``prefix`` from conda's record of its python
    package (``conda-meta/python-X.Y.Z-BUILD.json``: ``python_site_packages_path`` (CEP 17), else
    ``lib/pythonX.Y/site-packages``, as conda's own pypi loader reads it:
    :func:`privpkg.conda.pypirecords.site_packages_dir`), without starting the environment's
    interpreter (19 ms here, against 0.9 ms for this). None (ask the interpreter) unless
    exactly one python record names a folder that exists."""
    import json
    import types

    from privpkg.conda.pypirecords import site_packages_dir

    meta = Path(prefix) / "conda-meta"
    try:
        names = [n for n in os.listdir(meta) if _PYTHON_RECORD.match(n)]
    except OSError:
        return None
    if len(names) != 1:
        return None
    try:
        with open(meta / names[0], encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("name") != "python":
        return None
    rel = site_packages_dir(types.SimpleNamespace(version=record.get("version"), python_site_packages_path=record.get("python_site_packages_path")))
    if rel is None or Path(rel).is_absolute() or ".." in Path(rel).parts:
        return None  # CEP 17's path is relative to the prefix; anything else is not conda's record
    site = Path(prefix) / rel
    return site if site.is_dir() else None


def env_pip_version(prefix: str) -> tuple[int, ...] | None:
    """The version of the pip installed in the conda environment at ``prefix``, from its
    ``pip-X.dist-info`` folder (no interpreter started), or None."""
    sites = [*Path(prefix).glob("lib/python3*/site-packages"), Path(prefix) / "Lib" / "site-packages"]
    for site in sites:
        for info in sorted(site.glob("pip-*.dist-info")):
            text = info.name[len("pip-") : -len(".dist-info")]
            parts = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", text)
            if parts:
                return tuple(int(p) for p in parts.groups() if p is not None)
    return None


def _shown_url(url: str) -> str:
    from privpkg.lookuplog import redact_service

    return redact_service(url)


def failure_lines(records: list[dict[str, Any]], prefix: str, index_urls: tuple[str, ...] = (), pip_version: tuple[int, ...] | None = None) -> list[str]:
    """What privpkg adds after a failed pip step in ``prefix``: one line with the reason the
    keyring backend recorded during the step (``records``, oldest first: the last lookup that
    got nothing, preferring one for a URL over a bare host, else the last served one, whose PAT
    the feed refused), and, for a pip older than 26.2, one line per feed URL without a username.
    No line quotes a secret: records hold none, and URLs are shown redacted."""
    from privpkg.lookuplog import explain
    from privpkg.pipcheck import has_username, with_token

    lines: list[str] = []
    refused = [r for r in records if not r.get("served")]
    pick = next((r for r in reversed(refused) if "://" in str(r.get("service"))), None)
    pick = pick or (refused[-1] if refused else (records[-1] if records else None))
    if pick is not None:
        outcome, hint = explain(pick)
        line = f"pip's keyring lookup for {pick.get('service')} during this pip step: {outcome}"
        lines.append(line + (f"; {hint}" if hint else "") + " (privpkg doctor --last lists every lookup)")
    old = pip_version is not None and pip_version < PIP_CREDS_MODE
    if old:
        assert pip_version is not None
        shown_version = ".".join(map(str, pip_version))
        for url in index_urls:
            if url.lower().startswith(("http://", "https://")) and not has_username(url):
                lines.append(
                    f"the pip in {prefix} is {shown_version}: before 26.2 pip asks keyring only for an index URL with a "
                    f"username; write {with_token(_shown_url(url))} in the pip section, or add pip>=26.2 to the "
                    "environment's dependencies"
                )
    if not lines and index_urls:
        lines.append(
            "pip asked privpkg for no credential during this pip step; "
            f"privpkg doctor --pip {env_python(prefix)} checks what stands between that pip and privpkg"
        )
    return lines


def _log_mark() -> tuple[str, list[dict[str, Any]]]:
    """Where the lookup log stands now: this second's timestamp and the records already written
    in it (the log's times have whole seconds)."""
    from privpkg import lookuplog

    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return now, [r for r in lookuplog.read_last(50) if str(r.get("time", "")) >= now]


def _records_since(mark: tuple[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    from privpkg import lookuplog

    since, before = mark
    return [r for r in lookuplog.read_last(200) if str(r.get("time", "")) >= since and r not in before]


def before_pip(args: list[str], prefix: str, cwd: str | None) -> Scan:
    """What the wrapper does before pip runs: scan the requirements file and, when it needs the
    pip shim, put the shim into the environment at ``prefix``. Never raises: a failure is one
    warning line, and pip runs anyway (its own error then names the URL)."""
    path = requirements_file(args, cwd)
    scan = scan_requirements(path) if path is not None else Scan(False, ())
    if scan.needs_shim:
        from privpkg.setup_pip import install_shim

        try:
            log.info(install_shim(str(env_python(prefix)), purelib=env_purelib(prefix)))
        except PrivpkgError as exc:
            log.warning(f"cannot put the pip shim into {prefix}: {one_line(exc)}; privpkg:// lines in its pip section will fail")
    return scan


@contextmanager
def _broker() -> Iterator[None]:
    """:func:`privpkg.conda.broker.serving` for the pip step; a broker that cannot start only
    leaves the shim and the launcher to start their subprocesses, as without it."""
    try:
        from privpkg.conda.broker import serving

        cm = serving()
        cm.__enter__()
    except Exception as exc:  # noqa: BLE001 - privpkg's part must never stop conda's pip step
        log.info(f"no broker for this pip step: {one_line(exc)}")
        yield
        return
    try:
        yield
    finally:
        cm.__exit__(None, None, None)


def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` (conda's ``pip_subprocess(args, prefix, cwd)``) with privpkg's before and
    after: the shim placed when needed, the reason added when pip fails. The result and the
    exception are conda's own, unchanged."""

    def pip_subprocess(args: list[str], prefix: str, cwd: str | None = None) -> Any:
        try:
            scan = before_pip(list(args), prefix, cwd)
            mark = _log_mark()
        except Exception as exc:  # noqa: BLE001 - privpkg's part must never stop conda's pip step
            log.warning(f"privpkg's pip step preparation failed: {one_line(exc)}")
            scan, mark = Scan(False, ()), None
        try:
            with _broker():
                return original(args, prefix, cwd=cwd)
        except Exception:
            try:
                records = _records_since(mark) if mark is not None else []
                for line in failure_lines(records, prefix, scan.index_urls, env_pip_version(prefix)):
                    log.warning(line)
            except Exception as exc:  # noqa: BLE001 - conda's own error must reach the user unchanged
                log.warning(f"privpkg could not explain the failure: {one_line(exc)}")
            raise

    setattr(pip_subprocess, _WRAPPED, original)
    pip_subprocess.__doc__ = original.__doc__
    return pip_subprocess


def wrap_pip_subprocess(module: Any) -> str | None:
    """Replace ``module.pip_subprocess`` (conda's ``conda.env.installers.pip``) with :func:`wrap`
    of it. Returns None when done (or done before), else the one line saying why not: the
    function is private to conda, so a conda that moved or changed it keeps working, without
    privpkg's additions."""
    fn = getattr(module, "pip_subprocess", None)
    if fn is None or not callable(fn):
        return f"conda's {getattr(module, '__name__', 'pip installer')}.pip_subprocess is gone; privpkg does not add its pip step there"
    if getattr(fn, _WRAPPED, None) is not None:
        return None
    import inspect

    try:
        params = tuple(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        params = ()
    if params != EXPECTED_PARAMETERS:
        return (
            f"conda's pip_subprocess takes ({', '.join(params)}), not ({', '.join(EXPECTED_PARAMETERS)}); "
            "privpkg does not add its pip step there"
        )
    module.pip_subprocess = wrap(fn)
    return None


def pre_command(command: str, installer: Callable[[], Any], environ: MutableMapping[str, str] | None = None) -> None:
    """The ``conda_pre_commands`` action: :func:`prepare_environ`, then wrap the pip installer's
    ``pip_subprocess`` (``installer()`` imports and returns conda's module; plugin.py passes it,
    since only plugin.py imports conda). Never raises: each failure is one line, and conda goes
    on."""
    if command not in PIP_COMMANDS:
        return
    try:
        prepare_environ(environ)
    except Exception as exc:  # noqa: BLE001 - a conda command must never fail for privpkg
        log.warning(f"privpkg's keyring launcher for conda's pip step is not set up: {one_line(exc)}")
    try:
        why = wrap_pip_subprocess(installer())
    except Exception as exc:  # noqa: BLE001 - conda's private module moved: carry on without it
        why = f"cannot reach conda's pip installer: {one_line(exc)}"
    if why and (command == "env_update" or _runs_an_environment_file(sys.argv[1:])):
        # A warning, not a debug line: without the wrapper a privpkg:// line in the pip section
        # fails and a failed step gets no reason, so the user should know why. Only where a pip
        # section can run (an environment file), not on every conda install.
        log.warning(why)


def _runs_an_environment_file(args: list[str]) -> bool:
    """Whether conda's arguments name an environment file (``--file``/``-f``), or are ``conda env
    create``/``update``, which read ./environment.yml by default.

    >>> _runs_an_environment_file(["install", "numpy"]), _runs_an_environment_file(["install", "--file=env.yml"])
    (False, True)
    >>> _runs_an_environment_file(["env", "update"]), _runs_an_environment_file(["create", "-n", "x", "-f", "e.yml"])
    (True, True)
    """
    if args[:2] in (["env", "create"], ["env", "update"]):
        return True
    return any(a in ("-f", "--file") or a.startswith("--file=") for a in args)
