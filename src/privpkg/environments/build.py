"""Build a local environment from a lock, once: :func:`build` returns the cached build's path.

A hit reads the lock's bytes, the interpreter's identity and two small files of the cache
(:mod:`.cache`: the memo naming the key, the key's pointer); it parses no TOML and evaluates no
marker. A miss selects the lock's artifacts for the interpreter (:mod:`.pylock`), fetches them
(:mod:`.fetch`, private ones signed or with their connection's secret, each checked against the
lock's sha256) into the cache's content-addressed wheelhouse, makes a venv in the build's final,
unique directory and installs into it offline with no dependency resolution: ``uv venv`` + ``uv
pip install --offline --no-index --no-deps --find-links ...`` (uv hardlinks from its cache, which
holds the wheelhouse's files by path), or ``python -m venv`` + pip where uv is not installed or
``installer="pip"``. Only then is the key's pointer published.

The files install as from an index (``name==version`` with the lock's hash), so no
``direct_url.json`` names the wheelhouse; a ``privpkg://`` wheel then gets the
``direct_url.json`` pip writes for it through the shim (``{"url": "privpkg://...",
"archive_info": {"hash": ...}}``), recorded in its ``RECORD``. No file names a signed URL or a
secret: none ever reaches an installer.

A conda explicit list builds a prefix (:func:`build_conda`): with conda when it is present
(:func:`find_conda`), offline from the fetched files, else with py-rattler; the same packages
either way, and the same key.

A version with both parts (:class:`Parts`: a conda list and the ``pylock.toml`` locked for that
list's python, :mod:`.locking`) builds one prefix: the conda packages as :func:`build_conda`
installs them, then the pip part's wheels selected for the prefix's own python, fetched and
checked the same way and installed into it offline (``uv pip install --python PREFIX/bin/python``,
or privpkg's pip with ``--python``: the prefix needs no pip). Its key is made of the conda
artifacts and every artifact of the pylock (the conda list pins the python, so it identifies
the interpreter too); it is published only when both parts are in.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from privpkg import envvars
from privpkg.environments import cache
from privpkg.errors import PrivpkgError, UsageError, shown

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Mapping, Sequence

    from privpkg.environments.pylock import Artifact, Target
    from privpkg.environments.spec import Spec

INSTALLERS = ("uv", "pip")


class Parts(NamedTuple):
    """The locks of a version with conda and pip parts: this platform's conda explicit list and
    the ``pylock.toml`` made for the python it installs."""

    conda: str
    pip: str


def _target_script(packaging_parent: str) -> str:
    return (
        "import json, sys; sys.path.insert(0, " + repr(packaging_parent) + "); "
        "from packaging import markers, tags; "
        "print(json.dumps([markers.default_environment(), [str(t) for t in tags.sys_tags()]]))"
    )


def target(python: cache.Interpreter, current: bool) -> Target:
    """The wheel tags and marker environment of ``python``: packaging's own answer, in-process
    for privpkg's interpreter, else in ``python`` itself with this packaging on its path."""
    from privpkg.environments.pylock import Target

    if current:
        return Target.current()
    import json
    import subprocess

    import packaging

    parent = str(Path(packaging.__file__).resolve().parent.parent)
    res = subprocess.run([python.executable, "-I", "-S", "-c", _target_script(parent)], capture_output=True, text=True,
                         timeout=60, check=False)
    try:
        env, found = json.loads(res.stdout)
    except ValueError:
        last = [line.strip() for line in res.stderr.splitlines() if line.strip()][-1:]
        why = f": {shown(last[0], 200)}" if last else ""
        raise PrivpkgError(f"cannot read the wheel tags of {shown(python.executable)} (exit {res.returncode}){why}") from None
    return Target(tuple(found), env)


def find_uv() -> str | None:
    """uv on PATH, else the one the ``uv`` package installed beside privpkg."""
    found = _on_path("uv")
    if found:
        return found
    import sysconfig  # loaded already for the interpreter's identity

    # The uv package's first place (uv.find_uv_bin): this interpreter's scripts folder, where
    # `pip install uv` beside privpkg puts it; looked at first without importing the package,
    # which works out all its other places before looking (a fortieth of a build's own time).
    beside = os.path.join(sysconfig.get_path("scripts"), "uv" + (sysconfig.get_config_var("EXE") or ""))
    if os.path.isfile(beside):
        return beside
    try:
        import uv  # type: ignore[import-not-found,unused-ignore]

        path = str(uv.find_uv_bin())
        return path if os.path.isfile(path) else None
    except Exception:  # noqa: BLE001 - absent or broken: pip does the install
        return None


def _on_path(name: str) -> str | None:
    """``shutil.which(name)`` on POSIX, without importing shutil (with the compression modules
    it imports, a tenth of a build's own imports); shutil elsewhere (PATHEXT)."""
    if os.name != "posix":
        import shutil

        return shutil.which(name)
    folders = os.environ.get("PATH")
    if folders is None:  # unset: the system's default, as shutil.which reads it
        try:
            folders = os.confstr("CS_PATH")
        except (AttributeError, ValueError):
            folders = os.defpath
    # An empty PATH names no folder (shutil.which finds nothing; only ":" names the current
    # one): never the working directory's uv, which may be anyone's checkout.
    if not folders:
        return None
    for folder in folders.split(os.pathsep):
        path = os.path.join(folder or os.curdir, name)
        if os.access(path, os.F_OK | os.X_OK) and not os.path.isdir(path):
            return path
    return None


#: Variables that carry secrets the installers never need (everything they install was fetched
#: and checked by privpkg already, and they run offline): left out of their environment. Named:
#: privpkg's connection sources and key, the storage keys, the secrets of the ambient chains
#: privpkg uses (azure-identity's EnvironmentCredential, botocore's environment and container
#: providers) and Azure Pipelines' job token; besides these, :func:`_secret` drops any variable
#: named like a secret or whose value holds a URL's password (a CI's GITHUB_TOKEN, a
#: PIP_INDEX_URL or proxy with user:password@): a conda package's link script runs in this
#: environment too.
_SECRET_VARIABLES = (*envvars.LOOKUP_INPUTS, "AZURE_STORAGE_KEY", "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_SAS_TOKEN",
                     "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_PASSWORD",
                     "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                     "SYSTEM_ACCESSTOKEN")
#: Words of a variable's name (split at ``_``) that mark it as a secret's: those the environments'
#: screen warns about (``AZURE_DEVOPS_EXT_PAT``, ``OPENAI_API_KEY``, ``ARM_ACCESS_KEY``...).
_SECRET_WORDS = frozenset({"SECRET", "SECRETS", "PASSWORD", "PASSWD", "PWD", "TOKEN", "PAT", "KEY", "APIKEY", "CREDENTIAL",
                           "CREDENTIALS", "AUTH", "SAS", "SIG", "SIGNATURE"})
#: The shell's working directories: named with PWD, and no secret.
_NOT_SECRET = frozenset({"PWD", "OLDPWD"})
# The patterns below are compiled at the first build that runs an installer (re caches them),
# not at import: a hit imports this module too.
#: What marks a name as a secret's inside a word too (``NGROK_AUTHTOKEN``, ``SYSTEM_ACCESSTOKEN``), or
#: a secret's word the list above lacks (``CI_JOB_JWT``, ``GPG_PASSPHRASE``).
_SECRET_IN_NAME = (r"TOKEN|PASSW(?:OR)?D|PASSPHRASE|SECRET|CREDENTIAL|BEARER|JWT|CONNECTION_?STRING|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|"
                   r"ACCOUNT_?KEY")
#: A value that holds a secret whatever its variable's name: user info in any URL of it (a list of
#: index URLs too: a password, or a token as the user name, ``https://TOKEN@host``), a signed
#: URL's signature or credential (a SAS in PIP_FIND_LINKS), a connection string's key or password.
_SECRET_IN_VALUE = (r"://[^/?#\s@]*@|[?&;](?:sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token)="
                    r"|(?:^|;)\s*(?:AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd)\s*=")
#: A proxy's user info written without a scheme (``user:pw@proxy:3128``), which pip, uv and curl read.
_BARE_USERINFO = r"[^/?#\s@]*@"


def _secret(name: str, value: str) -> bool:
    """Whether the variable ``name=value`` may carry a secret an offline installer never needs."""
    upper = name.upper()
    if name in _SECRET_VARIABLES or (upper not in _NOT_SECRET and not _SECRET_WORDS.isdisjoint(upper.split("_"))):
        return True
    return bool(re.search(_SECRET_IN_NAME, upper) or re.search(_SECRET_IN_VALUE, value, re.IGNORECASE)
                or (upper.endswith("PROXY") and re.match(_BARE_USERINFO, value)))


def installer_environ() -> dict[str, str]:
    """privpkg's environment without the variables :func:`_secret` names, for the installers."""
    return {k: v for k, v in os.environ.items() if not _secret(k, v)}


def _start(argv: list[str], dest: Path | None = None) -> subprocess.Popen[str]:
    """An installer started with no secret variables, its output kept for :func:`_finish`; one
    writing into the build ``dest`` inherits the build's lock (:func:`cache.build_lock_fd`)."""
    import subprocess

    env = installer_environ()
    # uv keeps every file it installs in its cache (and hardlinks from there): for private wheels
    # that is the private cache, not the user's uv cache, whose modes follow the umask.
    env["UV_CACHE_DIR"] = str(cache.root() / "uv")
    # Without a cache uv unpacks into a temporary one under TMPDIR, whose folders the umask opens.
    env.pop("UV_NO_CACHE", None)
    fd = cache.build_lock_fd(dest) if dest is not None and os.name == "posix" else None
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
                            pass_fds=() if fd is None else (fd,))


def _finish(proc: subprocess.Popen[str], what: str) -> None:
    """Wait for ``proc``; one line naming ``what`` and its last output line when it failed.
    Interrupted, it is killed first (no installer writes on after its build was discarded)."""
    try:
        out, err = proc.communicate()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        from privpkg.environments.screen import masked

        lines = [line.strip() for line in (err + out).splitlines() if line.strip()]
        why = shown(masked(lines[-1]), 300) if lines else "no output"
        raise PrivpkgError(f"{what} failed (exit {proc.returncode}): {why}")


def _run(argv: list[str], what: str, dest: Path | None = None) -> None:
    _finish(_start(argv, dest), what)


def _requirements(artifacts: list[Artifact], paths: list[Path], folder: Path) -> tuple[Path, list[str]]:
    """A requirements file of ``name==version --hash=sha256:...`` lines (so installers take
    the files as from an index and record no URL), and the find-links folders. Made in
    ``folder`` exclusively (never through a link someone put there)."""
    reqs = folder / REQUIREMENTS
    # O_BINARY: on Windows a descriptor is in text mode otherwise, and the CRT would turn the
    # wrapper's \r\n into \r\r\n (tempfile and write_text open with it too).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(reqs, flags, 0o600)
    with open(fd, "w", encoding="utf-8") as fh:
        fh.write(_requirement_lines(artifacts))
    return reqs, sorted({str(p.parent) for p in paths})


def _requirement_lines(artifacts: list[Artifact]) -> str:
    return "".join(f"{a.name}=={a.version} --hash=sha256:{a.sha256}\n" for a in artifacts)


def _remove_requirements(reqs: Path, artifacts: list[Artifact]) -> None:
    """Remove the requirements file :func:`_requirements` made in the build, once the
    installers are done with it; not when a wheel installed a file of that name there (a data
    file at the environment's root, which pip and uv put in place of ours): the build keeps
    what the wheel's ``RECORD`` lists, as it did when the file was made elsewhere."""
    try:
        fd = os.open(reqs, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return
    text = _requirement_lines(artifacts)
    with open(fd, encoding="utf-8", errors="replace") as fh:
        ours = fh.read(len(text) + 1) == text
    if ours:
        os.unlink(reqs)


#: The installers' requirements file, made in the new build's directory (which privpkg made and
#: no one else writes) and removed once they are done: no temporary folder elsewhere, nor the
#: tempfile module's imports (a tenth of a build's own).
REQUIREMENTS = ".privpkg-requirements.txt"


def _venv_python(dest: Path) -> Path:
    return dest / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _install(dest: Path, python: cache.Interpreter, artifacts: list[Artifact], paths: list[Path], installer: str) -> None:
    uv = find_uv() if installer == "uv" else None
    if installer == "uv" and uv is None:
        raise UsageError("uv is not installed (pip install uv); or build with --installer pip")
    if uv is not None:
        dest.mkdir(mode=0o777)  # as uv venv makes it: the umask decides
    else:
        _run([python.executable, "-m", "venv", str(dest)], "python -m venv", dest)
    if not artifacts:
        if uv is not None:
            _install_uv(uv, dest, python, [], None)
        return
    reqs, links = _requirements(artifacts, paths, dest)
    find_links = [arg for link in links for arg in ("--find-links", link)]
    try:
        if uv is not None:
            _install_uv(uv, dest, python, find_links, reqs)
        else:
            _run([str(_venv_python(dest)), "-m", "pip", "install", "--quiet", "--isolated", "--disable-pip-version-check",
                  "--no-input", "--no-index", "--no-deps", *find_links, "-r", str(reqs)], "pip install", dest)
    finally:
        _remove_requirements(reqs, artifacts)


def _install_uv(uv: str, dest: Path, python: cache.Interpreter, find_links: list[str], reqs: Path | None) -> None:
    """``uv venv`` and ``uv pip install --prefix``, side by side, into the new directory.

    The install runs with the base interpreter and ``--prefix``, not the new environment's
    python, which uv would run once to learn it (the directory is new every time); its scripts
    are then pointed at the environment's python (:mod:`.relocate`). ``--allow-existing`` lets
    ``uv venv`` write beside the install into ``dest``, which the caller made first,
    exclusively (with the requirements file ``reqs`` in it).
    ``--no-config``: a uv.toml in a parent folder (even another user's) must not steer the build.

    Not side by side where the layout depends on which runs first: on Windows (uv's ``.exe``
    launchers name their interpreter, and no rewrite of a first line fixes them) the install
    runs with the environment's python, after ``uv venv``; where ``sys.platlibdir`` is not
    ``lib`` (Fedora's and SUSE's Pythons: ``lib64``), after ``uv venv`` has made ``lib64`` the
    link to ``lib`` that the install's binary wheels go through.
    """
    venv_argv = [uv, "venv", "--no-config", "--quiet", "--allow-existing", "--python", python.executable, str(dest)]
    if reqs is None:
        _run(venv_argv, "uv venv", dest)
        return
    common = ["--offline", "--no-index", "--no-deps", *find_links, "-r", str(reqs)]
    if os.name == "nt":
        _run(venv_argv, "uv venv", dest)
        _run([uv, "pip", "install", "--no-config", "--quiet", "--python", str(_venv_python(dest)), *common], "uv pip install", dest)
        return
    install_argv = [uv, "pip", "install", "--no-config", "--quiet", "--python", python.executable, "--prefix", str(dest), *common]
    if python.platlibdir != "lib":
        _run(venv_argv, "uv venv", dest)
        _run(install_argv, "uv pip install", dest)
    else:
        install = _start(install_argv, dest)  # the longer of the two: started first
        try:
            venv = _start(venv_argv, dest)
        except BaseException:
            install.kill()
            install.wait()
            raise
        try:
            _finish(install, "uv pip install")
        finally:
            _finish(venv, "uv venv")
    from privpkg.environments.relocate import retarget_scripts

    retarget_scripts(dest, python.executable, _site_packages(dest))


def _site_packages(dest: Path) -> Path:
    found = sorted(dest.glob("lib/python*/site-packages")) or sorted(dest.glob("Lib/site-packages"))
    if not found:
        raise PrivpkgError(f"the new environment {dest} has no site-packages")
    return found[0]


def _dist_info(site: Path, a: Artifact) -> Path:
    import re

    # packaging's canonicalize_name, without importing packaging (a fifth of a small build).
    for entry in site.glob("*.dist-info"):
        name, _, version = entry.name[: -len(".dist-info")].rpartition("-")
        if re.sub(r"[-_.]+", "-", name).lower() == a.name and version == a.version:
            return entry
    raise PrivpkgError(f"{a.filename} was installed but its .dist-info is missing")


def record_direct_urls(dest: Path, artifacts: list[Artifact]) -> int:
    """Give each ``privpkg://`` wheel the ``direct_url.json`` naming its stable URL (as pip
    records it through the shim), listed in ``RECORD``; returns how many were written."""
    mine = [a for a in artifacts if a.url.lower().startswith("privpkg:")]
    if not mine:
        return 0
    import json

    from privpkg.environments.digests import record_hash
    from privpkg.environments.relocate import replace_file

    site = _site_packages(dest)
    for a in mine:
        info = _dist_info(site, a)
        data = json.dumps({"url": a.url.partition("#")[0], "archive_info": {"hash": f"sha256={a.sha256}", "hashes": {"sha256": a.sha256}}},
                          sort_keys=True).encode()
        replace_file(info / "direct_url.json", data, 0o644)  # what pip gives it: the environment's files are readable
        line = f"{info.name}/direct_url.json,{record_hash(data)},{len(data)}\n"
        record = info / "RECORD"
        old = record.read_text(encoding="utf-8").splitlines(keepends=True) if record.exists() else []
        kept = [x for x in old if not x.startswith(f"{info.name}/direct_url.json,")]
        if kept and not kept[-1].endswith("\n"):
            kept[-1] += "\n"
        replace_file(record, "".join([*kept, line]).encode(), 0o644)
    return len(mine)


def lock_for(spec: Spec, locks: Mapping[str, str], where: str) -> str | Parts:
    """Which of a version's locks a local build uses: the ``conda-PLATFORM.txt`` of this
    platform when the spec has conda dependencies (with ``pylock.toml``, as :class:`Parts`,
    when it has a pip part too), else ``pylock.toml``; one line when one is missing."""
    from privpkg.environments.condalock import current_platform

    if spec.conda:
        conda = locks.get(f"conda-{current_platform()}.txt")
        if conda is None:
            raise UsageError(f"{where} has no conda lock for {current_platform()} (lock it with privpkg env lock)")
        if spec.pip:
            pip = locks.get("pylock.toml")
            if pip is None:
                raise UsageError(f"{where} has no pylock.toml for its pip part (lock it with privpkg env lock)")
            return Parts(conda, pip)
        return conda
    pip = locks.get("pylock.toml")
    if pip is None:
        raise UsageError(f"{where} has no pylock.toml (lock it with privpkg env lock)")
    return pip


def lock_of_version(store: Any, name: str, version: int | None, label: str | None) -> str | Parts:
    """The lock a local build of a registered version uses, as :func:`lock_for` chooses it, read
    alone: which part a version has shows in its record's files (a version carries a conda list
    exactly when its spec has conda dependencies, a ``pylock.toml`` when it has a pip part), so a
    hit by NAME reads one listing, a record and one file (both, as :class:`Parts`, for a version
    with both parts), and parses no definition."""
    from privpkg.environments import registry

    rec = registry.find(store, name, version, label)
    where = f"{rec.name}:{rec.version}"
    conda = [p for p in rec.files if p.startswith("conda-")]
    if conda:
        from privpkg.environments.condalock import current_platform

        wanted = f"conda-{current_platform()}.txt"
        if wanted not in rec.files:
            raise UsageError(f"{where} has no conda lock for {current_platform()} (lock it with privpkg env lock)")
        text = _text(registry.read_file(store, rec, wanted), f"{where}'s {wanted}")
        if registry.PYLOCK in rec.files:
            return Parts(text, _text(registry.read_file(store, rec, registry.PYLOCK), f"{where}'s {registry.PYLOCK}"))
        return text
    if registry.PYLOCK not in rec.files:
        raise UsageError(f"{where} has no pylock.toml (lock it with privpkg env lock)")
    return _text(registry.read_file(store, rec, registry.PYLOCK), f"{where}'s {registry.PYLOCK}")


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{what} is not UTF-8 text; privpkg writes no such lock (register the environment again)") from None


def _read_lock(lock: str | Path) -> str:
    if isinstance(lock, str):
        return lock
    try:
        return lock.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{shown(lock)}: no such lock file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {shown(lock)}: {getattr(exc, 'strerror', None) or exc}") from None


def link_to(build: Path, link: Path) -> None:
    """Make ``link`` a symlink to ``build``, replacing a symlink there (atomically: a new link
    renamed over it) and never anything else."""
    import secrets

    if os.path.lexists(link) and not os.path.islink(link):
        raise UsageError(f"--link {shown(link)}: it exists and is not a symbolic link; privpkg replaces only its own links")
    tmp = link.with_name(f".{link.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        os.symlink(build, tmp, target_is_directory=True)
        os.replace(tmp, link)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise PrivpkgError(f"cannot link {shown(link)} to the build: {exc.strerror or exc}") from None


def build(lock: str | Path | Parts, *, python: str | None = None, link: Path | None = None, installer: str | None = None,
          timeout: float = 60, report: Callable[[str], None] | None = None) -> Path:
    """The path of the environment ``lock`` (its text, or a ``pylock.toml`` path, or both parts'
    texts) describes for ``python`` (default: the interpreter privpkg runs on; a conda prefix
    brings its own), built now unless the cache has it; ``link`` becomes a symlink to it.
    ``report`` gets one line when a conda prefix is made, naming what installed it. See the
    module docstring."""
    if installer is not None and installer not in INSTALLERS:
        raise UsageError(f"--installer must be one of {', '.join(INSTALLERS)}, got {shown(installer)}")
    found: Path | None
    if isinstance(lock, Parts):
        found = build_both(lock, installer=installer, timeout=timeout, report=report)
        if link is not None:
            link_to(found, link)
        return found
    text = _read_lock(lock)
    if is_explicit(text):
        found = build_conda(text, timeout=timeout, report=report)
    else:
        interp = cache.interpreter(python)
        memo = cache.memo_id(text, interp)
        known = cache.memo_get(memo)
        found = cache.lookup(known) if known else None
        if found is None:
            found = _build_miss(text, interp, memo, python is None, installer, timeout)
    if link is not None:
        link_to(found, link)
    return found


def _select(text: str, interp: cache.Interpreter, current: bool) -> list[Artifact]:
    """What ``interp`` installs from the pylock ``text``. The lock was searched for the
    connections' secrets when it was made or registered, and a build stores and prints none of
    it: the store is not read here (the patterns are still applied, by :func:`pylock.load`)."""
    from privpkg.environments import pylock

    if current:
        return pylock.load(text, known_secrets=False).select(current_tags=cache.current_tags)
    return pylock.load(text, known_secrets=False).select(target(interp, False))


def find(lock: str | Path | Parts, *, python: str | None = None) -> Path | None:
    """The cached build of ``lock`` for ``python``, or None; builds nothing."""
    if isinstance(lock, Parts):
        ident = _conda_identity()
        known = cache.memo_get(cache.memo_id(_both_text(lock), ident))
        found = cache.lookup(known) if known else None
        return found if found is not None else cache.lookup(_both_key(lock, ident))
    text = _read_lock(lock)
    interp = _conda_identity() if is_explicit(text) else cache.interpreter(python)
    memo = cache.memo_id(text, interp)
    known = cache.memo_get(memo)
    found = cache.lookup(known) if known else None
    if found is None:
        selected = explicit_artifacts(text) if is_explicit(text) else _select(text, interp, python is None)
        build_key = cache.key(selected, interp)
        found = cache.lookup(build_key)
        if found is not None:
            cache.memo_put(memo, build_key)
    return found


def _build_miss(text: str, interp: cache.Interpreter, memo: str, current: bool, installer: str | None, timeout: float) -> Path:
    chosen = installer or ("uv" if find_uv() else "pip")
    artifacts = _select(text, interp, current)
    for a in artifacts:
        if a.kind != "wheel":
            raise UsageError(f"{a.filename}: a build installs wheels only (this lock selects a {a.kind} of {a.name})")
    build_key = cache.key(artifacts, interp)

    def install(dest: Path, paths: list[Path]) -> None:
        _install(dest, interp, artifacts, paths, chosen)
        record_direct_urls(dest, artifacts)

    found = cache.lookup(build_key) or _build_once(build_key, artifacts, install, timeout)
    cache.memo_put(memo, build_key)
    return found


def _build_once(build_key: str, artifacts: list[Artifact], install: Callable[[Path, list[Path]], None], timeout: float) -> Path:
    """The build of ``build_key``: another builder's, finished while this one waited for the
    key's lock, or made now: ``artifacts`` fetched and checked, ``install(dest, paths)`` into a
    fresh build directory, and the key published only once it returns (a killed or failed build
    is never a hit)."""
    from privpkg.environments import fetch

    with cache.key_lock(build_key):
        found = cache.lookup(build_key)
        if found is None:
            paths = fetch.fetch_artifacts(artifacts, cache.wheels_dir(), timeout=timeout, by_hash=True)
            with cache.new_build(build_key) as dest:
                install(dest, paths)
                cache.publish(build_key, dest)
            found = dest
    return found


def run_in(build: Path, argv: list[str]) -> int:
    """Run ``argv`` in the environment (its bin first on PATH, VIRTUAL_ENV set, PYTHONHOME
    unset, as ``activate`` does); returns its exit code (128+N when signal N ended it). Signals
    are passed on as ``uv run`` passes them (:mod:`privpkg.interrupts`)."""
    import shutil

    from privpkg.interrupts import wait_passing_signals

    if not argv:
        raise UsageError("no command to run: privpkg env run NAME -- CMD [ARGS...]")
    bindir = build / ("Scripts" if os.name == "nt" else "bin")
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    # A conda prefix is named by CONDA_PREFIX (as `conda activate` does), a venv by VIRTUAL_ENV.
    env["CONDA_PREFIX" if (build / "conda-meta").is_dir() else "VIRTUAL_ENV"] = str(build)
    env["PATH"] = os.pathsep.join([str(bindir), env.get("PATH", "")])
    exe = shutil.which(argv[0], path=env["PATH"])
    if exe is None:
        raise UsageError(f"{shown(argv[0])}: no such command in the environment or on PATH")
    sys.stdout.flush()
    return wait_passing_signals([exe, *argv[1:]], env=env)


# ---------------------------------------------------------------------------- conda prefixes


def is_explicit(text: str) -> bool:
    """Whether ``text`` is a conda explicit list (CEP 23: an ``@EXPLICIT`` line, then URLs)."""
    return any(line.strip() == "@EXPLICIT" for line in text.splitlines()[:50])


def explicit_artifacts(text: str) -> list[Artifact]:
    """The packages of a CEP 23 explicit list (:func:`.condalock.load_explicit`: every line
    ``URL#sha256:HEX``, no secret); one-line UsageError for an empty one."""
    from privpkg.environments.condalock import load_explicit

    out = load_explicit(text)
    if not out:
        raise UsageError("the explicit list names no package")
    return out


def _conda_identity() -> cache.Interpreter:
    import sysconfig

    # A prefix depends on the platform only; "conda" keeps its keys apart from venvs'.
    return cache.Interpreter("conda-prefix", "", sysconfig.get_platform(), "", "", "")


def build_conda(text: str, *, timeout: float = 60, report: Callable[[str], None] | None = None) -> Path:
    """The conda prefix of an explicit list, from the cache or built now (:func:`_install_conda`:
    with conda when it is present, else py-rattler) from the packages fetched and checked by
    :mod:`.fetch`, offline; each ``conda-meta`` record then names the list's URL, not the local
    copy. ``report`` gets one line naming the installer when a prefix is made."""
    ident = _conda_identity()
    memo = cache.memo_id(text, ident)
    known = cache.memo_get(memo)
    found = cache.lookup(known) if known else None
    if found is not None:
        return found
    artifacts = explicit_artifacts(text)
    build_key = cache.key(artifacts, ident)
    found = _build_once(build_key, artifacts, lambda dest, paths: _install_conda(dest, artifacts, paths, report), timeout)
    cache.memo_put(memo, build_key)
    return found


def parts_of(files: Sequence[Path]) -> Parts:
    """:class:`Parts` from two lock files (``--lock`` twice): one conda explicit list and one
    ``pylock.toml``, in either order; one line otherwise."""
    texts = [_read_lock(f) for f in files]
    conda = [t for t in texts if is_explicit(t)]
    if len(texts) != 2 or len(conda) != 1:
        raise UsageError("--lock twice: give one conda explicit list and the pylock.toml locked for its python")
    return Parts(conda[0], next(t for t in texts if not is_explicit(t)))


def _both_text(lock: Parts) -> str:
    return lock.conda + "\0pylock.toml\0" + lock.pip


def _both_key(lock: Parts, ident: cache.Interpreter) -> str:
    """Every artifact of both parts: the pip part's selection needs the prefix's python, which
    exists only once the conda part is in; the conda list pins that python, so the pylock's
    files (pip lock records the ones for it) identify the build as well as a selection would."""
    from privpkg.environments import pylock

    return cache.key([*explicit_artifacts(lock.conda), *pylock.load(lock.pip).artifacts()], ident)


def build_both(lock: Parts, *, installer: str | None = None, timeout: float = 60, report: Callable[[str], None] | None = None) -> Path:
    """The prefix of a version with conda and pip parts (module docstring), from the cache or
    built now: the conda packages, then the pip part's wheels selected for the prefix's python,
    installed offline; published only when both are in."""
    ident = _conda_identity()
    memo = cache.memo_id(_both_text(lock), ident)
    known = cache.memo_get(memo)
    found = cache.lookup(known) if known else None
    if found is not None:
        return found
    chosen = installer or ("uv" if find_uv() else "pip")
    if chosen == "uv" and find_uv() is None:
        raise UsageError("uv is not installed (pip install uv); or build with --installer pip")
    conda = explicit_artifacts(lock.conda)
    build_key = _both_key(lock, ident)

    def install(dest: Path, paths: list[Path]) -> None:
        _install_conda(dest, conda, paths, report)
        _install_pip_part(dest, lock.pip, chosen, timeout)

    found = _build_once(build_key, conda, install, timeout)
    cache.memo_put(memo, build_key)
    return found


def _install_pip_part(dest: Path, pip_lock: str, installer: str, timeout: float) -> None:
    """The pylock's wheels for the prefix's python, fetched, checked and installed into it."""
    import tempfile

    from privpkg.environments import fetch
    from privpkg.environments.condalock import prefix_python

    python = prefix_python(dest)
    if not python.is_file():
        raise UsageError("the conda part installs no python, so its pip part has no interpreter (add python to its dependencies)")
    artifacts = _select(pip_lock, cache.interpreter(str(python)), False)
    for a in artifacts:
        if a.kind != "wheel":
            raise UsageError(f"{a.filename}: a build installs wheels only (this lock selects a {a.kind} of {a.name})")
    if not artifacts:
        return
    paths = fetch.fetch_artifacts(artifacts, cache.wheels_dir(), timeout=timeout, by_hash=True)
    with tempfile.TemporaryDirectory(prefix="privpkg-build-") as tmp:
        reqs, links = _requirements(artifacts, paths, Path(tmp))
        find_links = [arg for link in links for arg in ("--find-links", link)]
        if installer == "uv":
            uv = find_uv()
            assert uv is not None  # build_both checked
            _run([uv, "pip", "install", "--no-config", "--quiet", "--python", str(python), "--offline", "--no-index", "--no-deps",
                  *find_links, "-r", str(reqs)], "uv pip install", dest)
        else:
            # privpkg's own pip, run under the prefix's python (pip --python): the prefix needs no pip.
            _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--isolated", "--disable-pip-version-check",
                  "--no-input", "--no-index", "--no-deps", *find_links, "-r", str(reqs)], "pip install", dest)
    record_direct_urls(dest, artifacts)


def find_conda() -> str | None:
    """The conda privpkg's conda plugin would run in: ``$CONDA_EXE`` (set by an activated
    conda) when it names an executable file, else ``conda`` on PATH; None when there is none."""
    import shutil

    exe = os.environ.get("CONDA_EXE", "")
    if exe and os.path.isfile(exe) and os.access(exe, os.X_OK):
        return exe
    return shutil.which("conda")


def _install_conda(dest: Path, artifacts: list[Artifact], paths: list[Path], report: Callable[[str], None] | None = None) -> None:
    """The conda packages (fetched and checked: ``paths``) installed offline into the new
    prefix ``dest``: by conda when it is present (:func:`find_conda`), else by py-rattler. Both
    give the same prefix and ``conda-meta`` records naming the lock's URLs."""
    conda = find_conda()
    final = _final_conda_settings(conda) if conda is not None else []
    if conda is not None and not final:
        _install_with_conda(conda, dest, artifacts, paths)
        what = f"conda ({conda})"
    else:
        _install_with_rattler(dest, artifacts, paths)
        what = ("py-rattler (no conda found: neither $CONDA_EXE nor conda on PATH)" if conda is None else
                f"py-rattler (conda's configuration marks settings #!final, which privpkg's cannot override: {final[0]})")
    _name_lock_urls(dest, artifacts)
    if report is not None:
        report(f"installed {len(artifacts)} conda package(s) with {what}")


def conda_config_files(conda: str) -> list[Path]:
    """The configuration files conda reads that privpkg's scratch HOME and CONDARC do not
    replace: the system's (``/etc/conda``, ``/var/lib/conda``) and its root prefix's (the folder
    above the one holding ``conda``: ``bin/`` or ``condabin/``)."""
    root = Path(conda).resolve().parent.parent
    found: list[Path] = []
    for folder in (Path("/etc/conda"), Path("/var/lib/conda"), root):
        found += [folder / name for name in (".condarc", "condarc") if (folder / name).is_file()]
        drop_in = folder / "condarc.d"
        if drop_in.is_dir():
            found += sorted(p for p in drop_in.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())
    return found


def _final_conda_settings(conda: str) -> list[Path]:
    """Those of :func:`conda_config_files` that mark a setting ``#!final``: conda then keeps
    their value over privpkg's variables (a ``pkgs_dirs`` would take the build's packages and
    scratch paths, a ``no_plugins: false`` would run plugins), so py-rattler builds instead."""
    out = []
    for path in conda_config_files(conda):
        try:
            if "#!final" in path.read_text(encoding="utf-8", errors="replace"):
                out.append(path)
        except OSError:
            out.append(path)  # unreadable: it may hold anything
    return out


def check_links_inside(dest: Path) -> None:
    """PrivpkgError (one line) when a symbolic link in the prefix ``dest`` leads outside it: a
    setting such as ``always_softlink`` in a configuration conda reads would have linked the
    prefix into the scratch package cache, which is gone when the build is published."""
    root = os.path.realpath(dest)
    for folder, dirs, files in os.walk(dest):
        for name in (*dirs, *files):
            path = os.path.join(folder, name)
            if os.path.islink(path):
                target = os.path.realpath(path)
                if os.path.commonpath([root, target]) != root:
                    raise PrivpkgError(f"conda linked {os.path.relpath(path, dest)} outside the prefix (a setting such as "
                                       "always_softlink in conda's configuration?); the build is discarded")


def explicit_file_list(artifacts: Sequence[Artifact], paths: Sequence[Path], folder: Path) -> Path:
    """A CEP 23 explicit list of ``file://`` URLs of the fetched files (each with the lock's
    sha256, which conda checks again), linked under ``folder/files/SUBDIR/FILENAME``: conda
    reads a package's name, version, build and subdir from its URL, and the fetched copies are
    named by their hash. conda never sees a URL of the lock, so it has nothing to download and
    no credential to need."""
    files = folder / "files"
    lines = ["# Written by privpkg env build: the lock's packages, fetched and checked", "@EXPLICIT"]
    for a, path in zip(artifacts, paths, strict=True):
        subdir = a.url.partition("#")[0].rstrip("/").rsplit("/", 2)[-2]
        target = files / subdir / a.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(path, target)
        lines.append(f"{target.as_uri()}#sha256:{a.sha256}")
    listing = folder / "explicit.txt"
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return listing


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        import shutil

        shutil.copyfile(src, dst)


#: conda's settings for a build, as variables (they win over every condarc conda reads, the
#: system's and the root prefix's included, but for a setting marked ``#!final`` there, which
#: :func:`_final_conda_settings` leaves to py-rattler): offline, no prompt, no plugin hooks of
#: the user's base (privpkg's own included: nothing here needs a credential; conda still
#: imports the plugins' modules, the user's own code), links or copies but never soft links
#: (they would lead into the scratch package cache), no error report, no shortcut, no entry in
#: ~/.conda/environments.txt for a cache directory.
_CONDA_SETTINGS = {"CONDA_OFFLINE": "true", "CONDA_ALWAYS_YES": "true", "CONDA_NO_PLUGINS": "true", "CONDA_ALWAYS_SOFTLINK": "false",
                   "CONDA_REPORT_ERRORS": "false",
                   "CONDA_SHORTCUTS": "false", "CONDA_REGISTER_ENVS": "false", "CONDA_AUTO_UPDATE_CONDA": "false",
                   "CONDA_NOTIFY_OUTDATED_CONDA": "false", "CONDA_QUIET": "true"}


def conda_environ(scratch: Path) -> dict[str, str]:
    """The environment conda builds in: privpkg's without the secrets the installers never
    need, without any ``CONDA*`` variable of the user's shell (an activation's, or settings
    such as ``CONDA_PKGS_DIRS`` or ``CONDA_CHANNELS``), with ``HOME``, ``CONDARC`` and the
    package cache in ``scratch`` (so the user's own condarc and package cache can neither steer
    the build nor receive its local paths) and :data:`_CONDA_SETTINGS`."""
    env = {k: v for k, v in installer_environ().items() if not k.upper().startswith(("CONDA", "_CE_", "_CONDA", "XDG_CONFIG"))}
    home = scratch / "home"
    pkgs = scratch / "pkgs"
    home.mkdir(exist_ok=True)
    pkgs.mkdir(exist_ok=True)
    condarc = home / ".condarc"  # conda reads $CONDARC only when it is named condarc, .condarc or *.yml
    condarc.write_text("# privpkg env build: scratch configuration\n", encoding="utf-8")
    env.update(HOME=str(home), CONDARC=str(condarc), CONDA_PKGS_DIRS=str(pkgs), **_CONDA_SETTINGS)
    return env


def _install_with_conda(conda: str, dest: Path, artifacts: list[Artifact], paths: list[Path]) -> None:
    import subprocess

    from privpkg.environments.screen import masked

    # The scratch folder sits in the cache, beside the builds: conda hardlinks from its package
    # cache into the prefix when both are on one file system, and the links outlive the folder.
    # It is locked before it exists, so `env prune` removes only a killed build's (cache.prune).
    with cache.scratch_dir("conda") as scratch:
        listing = explicit_file_list(artifacts, paths, scratch)
        argv = [conda, "create", "--prefix", str(dest), "--file", str(listing), "--offline", "--yes", "--quiet"]
        # conda holds the build's and the scratch folder's locks while it lives (a killed builder's
        # conda goes on writing: prune must wait for it).
        held = tuple(fd for fd in (cache.build_lock_fd(dest), cache.build_lock_fd(scratch)) if fd is not None) if os.name == "posix" else ()
        res = subprocess.run(argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, env=conda_environ(scratch),
                             cwd=scratch, pass_fds=held)
        if res.returncode != 0:
            lines = [line.strip() for line in (res.stderr + res.stdout).splitlines() if line.strip()]
            why = shown(masked(lines[-1]), 300) if lines else "no output"
            raise PrivpkgError(f"conda create failed (exit {res.returncode}): {why}")
        check_links_inside(dest)
        _scrub_conda_meta(dest, artifacts)


def _lock_channels(text: str, artifacts: list[Artifact]) -> str:
    """``text`` with each scratch channel conda names (``file:///.../files/SUBDIR::NAME...``)
    replaced by the lock's (``https://.../SUBDIR::NAME...``). Matched by its tail, not by the
    scratch folder's path: conda reads a ``/t/WORD/`` in a path as a token and drops it."""
    import re

    for a in artifacts:
        url = a.url.partition("#")[0].rstrip("/")
        channel_subdir = url.rsplit("/", 1)[0]
        subdir = channel_subdir.rsplit("/", 1)[-1]
        pattern = rf"file://[^\s'\",]*/files/{re.escape(subdir)}::{re.escape(a.name)}(?=[-=\s'\",]|$)"
        text = re.sub(pattern, f"{channel_subdir}::{a.name}".replace("\\", "\\\\"), text)  # taken literally
    return text


def _scrub_conda_meta(dest: Path, artifacts: list[Artifact]) -> None:
    """No local path of the build in what conda leaves in ``conda-meta``: the records' package
    cache paths and link source (a scratch folder, gone) are dropped, their requested specs and the history's
    package lines name the lock's channels (:func:`_lock_channels`), the history's command
    line becomes ``privpkg env build``, and a history line still naming a ``file://`` URL is
    left out."""
    import json

    from privpkg.fileio import write_atomic

    meta = dest / "conda-meta"
    for record in meta.glob("*.json"):
        data = json.loads(record.read_text(encoding="utf-8"))
        # Optional in conda's PrefixRecord; "link" only as a whole (its "source" is required).
        for field in ("extracted_package_dir", "package_tarball_full_path", "link"):
            data.pop(field, None)
        for field in ("requested_spec", "requested_specs"):
            if field in data:
                data[field] = json.loads(_lock_channels(json.dumps(data[field]), artifacts))
        write_atomic(record, json.dumps(data, indent=2, sort_keys=True).encode(), 0o644)
    history = meta / "history"
    try:
        text = history.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    out = []
    for line in _lock_channels(text, artifacts).splitlines():
        if line.startswith("# cmd:"):
            line = "# cmd: privpkg env build (conda create --offline from the lock's fetched packages)"
        if "file:" not in line:
            out.append(line)
    write_atomic(history, ("\n".join(out) + "\n").encode(), 0o644)


def _install_with_rattler(dest: Path, artifacts: list[Artifact], paths: list[Path]) -> None:
    import tempfile

    from privpkg.environments import rattlerproc

    if not rattlerproc.available():
        raise UsageError("building a conda environment needs py-rattler (pip install py-rattler), or conda on PATH")
    with tempfile.TemporaryDirectory(prefix="privpkg-channel-") as tmp:
        channel = Path(tmp) / "channel"
        for a, path in zip(artifacts, paths, strict=True):
            subdir = a.url.rstrip("/").rsplit("/", 2)[-2]
            (channel / subdir).mkdir(parents=True, exist_ok=True)
            _link_or_copy(path, channel / subdir / a.filename)
        specs = [f"{a.name} =={a.version} {a.filename.removesuffix('.conda').removesuffix('.tar.bz2').rsplit('-', 1)[1]}"
                 for a in artifacts]
        # rattler's package cache (extracted packages, hardlinked into prefixes) stays with the
        # build cache: conda-meta records name it, and the next build of the same files links from it.
        # An installer as uv and conda are: no secret variable, and the build's lock held (a
        # builder killed leaves it locked, so prune waits for the child).
        fd = cache.build_lock_fd(dest) if os.name == "posix" else None
        rattlerproc.install(str(channel), specs, str(dest.absolute()), str(cache.root() / "conda-pkgs"),
                            env=installer_environ(), pass_fds=() if fd is None else (fd,))


def _name_lock_urls(dest: Path, artifacts: list[Artifact]) -> None:
    """Each ``conda-meta`` record names the lock's URL and channel, not the local copy it was
    installed from."""
    import json

    from privpkg.fileio import write_atomic

    urls = {a.filename: a.url.partition("#")[0] for a in artifacts}
    for record in (dest / "conda-meta").glob("*.json"):
        data = json.loads(record.read_text(encoding="utf-8"))
        if data.get("fn") in urls:
            # The local channel was a temp folder: name where the package came from instead.
            data["url"] = urls[data["fn"]]
            data["channel"] = urls[data["fn"]].rsplit("/", 2)[0]
            write_atomic(record, json.dumps(data, indent=2, sort_keys=True).encode(), 0o644)
