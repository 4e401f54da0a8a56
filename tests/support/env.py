"""The environment every subprocess of the tests runs in, and how the tests run programs.

Nothing here touches the user's real pip/uv/keyring configuration: every subprocess gets an
environment from :func:`clean_env` (no ``PIP_*``, ``UV_*``, ``KEYRING_*`` variables,
``PIP_CONFIG_FILE=os.devnull``, ``HOME``/``XDG_*`` and ``PRIVPKG_HOME`` in a per-test tmp dir,
and a ``PATH`` with no ``keyring`` executable and no virtualenv on it). Also: the checks that no
secret leaked into an output, and the rule for a tool the tests need but cannot find.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from privpkg import envvars

REPO = Path(__file__).resolve().parents[2]

#: Variables that configure pip, uv, keyring or privpkg itself; none may leak into a subprocess.
_DROP_PREFIXES = (
    "PIP_",
    "UV_",
    "KEYRING_",
    "PYTHON_KEYRING_",
)
_DROP_NAMES = {
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CONDARC",  # privpkg setup conda edits the file it names
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONPROFILEIMPORTTIME",  # would time every child's imports (and change bench's timings)
    "PYTHONUSERBASE",
    "DBUS_SESSION_BUS_ADDRESS",
    "NETRC",
    "XDG_CONFIG_DIRS",
    "XDG_DATA_DIRS",
    *envvars.ALL,  # every variable privpkg reads, named once in privpkg.envvars
}



def clean_path(path: str | None = None) -> str:
    """``PATH`` without virtualenv bins and without any dir that holds a ``keyring`` executable,
    so the only keyring CLI a test can reach is one it puts on ``PATH`` on purpose."""
    keep: list[str] = []
    for entry in (path if path is not None else os.environ.get("PATH", "")).split(os.pathsep):
        if not entry or entry in keep:
            continue
        p = Path(entry)
        try:
            if (p.parent / "pyvenv.cfg").exists():
                continue  # a virtualenv's bin (e.g. the dev venv, which has privpkg + keyring)
            if (p / "keyring").exists():
                continue
        except OSError:  # a dir this user cannot search (root's PATH under sudo -u): unusable
            continue
        keep.append(entry)
    result = os.pathsep.join(keep)
    assert shutil.which("keyring", path=result) is None, f"a keyring CLI is still on PATH={result}"
    return result


def clean_env(home: Path, *, path_prefix: Sequence[Path | str] = (), **extra: str) -> dict[str, str]:
    """A subprocess environment that only sees what the test gives it.

    ``home`` gets ``home/home`` (HOME, XDG dirs) and ``home/privpkg`` (PRIVPKG_HOME).
    ``path_prefix`` dirs go first on PATH. ``extra`` is applied last (e.g. PIP_KEYRING_PROVIDER).
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_DROP_PREFIXES) and k not in _DROP_NAMES
    }
    user_home = home / "home"
    for sub in (".config", ".cache", ".local/share"):
        (user_home / sub).mkdir(parents=True, exist_ok=True)
    (home / "privpkg").mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(user_home),
        XDG_CONFIG_HOME=str(user_home / ".config"),
        XDG_CACHE_HOME=str(user_home / ".cache"),
        XDG_DATA_HOME=str(user_home / ".local/share"),
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONIOENCODING="utf-8",
    )
    env[envvars.HOME] = str(home / "privpkg")
    env["PATH"] = os.pathsep.join([*map(str, path_prefix), clean_path()])
    env.update(extra)
    return env


@dataclass
class Result:
    cmd: list[str]
    returncode: int
    output: str  # stdout and stderr, interleaved
    seconds: float

    def describe(self) -> str:
        return f"$ {' '.join(self.cmd)}\n[exit {self.returncode}, {self.seconds:.1f}s]\n{self.output}"


def run(cmd: Sequence[str | Path], env: dict[str, str], *, timeout: float = 180, cwd: Path | None = None) -> Result:
    """Run ``cmd`` with stdin closed; return exit code and combined stdout+stderr."""
    argv = [str(c) for c in cmd]
    start = time.monotonic()
    try:
        proc = subprocess.run(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.output or b"").decode("utf-8", "replace")
        raise AssertionError(f"timed out after {timeout}s: {' '.join(argv)}\n{out}") from None
    return Result(argv, proc.returncode, proc.stdout.decode("utf-8", "replace"), time.monotonic() - start)


def secret_forms(secret: str) -> list[str]:
    """The spellings a leaked secret could take in output: raw, URL-quoted, and inside a Basic
    Authorization header for the usernames these tests use."""
    forms = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    for user in ("", "__token__", "user"):
        forms.add(base64.b64encode(f"{user}:{secret}".encode()).decode())
    return sorted(forms)


def assert_no_secret(text: str, *secrets_: str) -> None:
    """Fail if any of ``secrets_`` (in any of :func:`secret_forms`) occurs in ``text``."""
    assert secrets_, "assert_no_secret needs at least one secret"
    for s in secrets_:
        assert len(s) >= 8, "refusing to grep for a short secret (false positives)"
        for form in secret_forms(s):
            if form in text:
                i = text.index(form)
                ctx = text[max(0, i - 120) : i].replace(s, "<SECRET>")
                raise AssertionError(f"secret leaked into output (form {form == s and 'raw' or 'encoded'}), after: {ctx!r}")


def assert_caches_clean(env: dict[str, str], *secrets_: str) -> None:
    """Fail if a file under privpkg's cache (``$PRIVPKG_HOME/cache``) or ``$XDG_CACHE_HOME`` (uv's
    and pip's) holds a SAS signature (``sig=``) or any of ``secrets_``."""
    for root in (Path(env[envvars.HOME]) / "cache", Path(env["XDG_CACHE_HOME"])):
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                text = path.read_bytes().decode("latin-1")
                assert "sig=" not in text, path
                assert_no_secret(text, *secrets_)


#: Set to 1 to skip (not fail) tests whose tool (uv, node, npm) is missing, on a machine without
#: it. Ignored under CI: there a missing tool always fails the run.
SKIP_MISSING_TOOLS_ENV = "PRIVPKG_TESTS_SKIP_MISSING_TOOLS"


def in_ci() -> bool:
    """CI=true (GitHub Actions, GitLab, .ci/run environments) or CI=1."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def missing_tool(message: str) -> NoReturn:
    """A tool the tests need is missing: fail, so a run cannot go green by skipping what it did
    not test. Outside CI, the developer may opt into skipping with SKIP_MISSING_TOOLS_ENV=1."""
    if not in_ci() and os.environ.get(SKIP_MISSING_TOOLS_ENV) == "1":
        pytest.skip(f"{message} ({SKIP_MISSING_TOOLS_ENV}=1)")
    hint = "" if in_ci() else f" (to skip these tests on this machine instead, set {SKIP_MISSING_TOOLS_ENV}=1)"
    pytest.fail(f"{message}{hint}", pytrace=False)


@pytest.fixture
def test_home(tmp_path: Path) -> Path:
    """Per-test root for HOME, XDG dirs and PRIVPKG_HOME (``test_home/privpkg``)."""
    return tmp_path / "t"


@pytest.fixture
def make_env(test_home: Path) -> Callable[..., dict[str, str]]:
    """``make_env(path_prefix=[...], **extra)`` -> a :func:`clean_env` for this test."""

    def make(*, path_prefix: Sequence[Path | str] = (), **extra: str) -> dict[str, str]:
        return clean_env(test_home, path_prefix=path_prefix, **extra)

    return make


@pytest.fixture
def privpkg_home(test_home: Path) -> Path:
    """This test's PRIVPKG_HOME (where the encrypted store and its key live)."""
    home = test_home / "privpkg"
    home.mkdir(parents=True, exist_ok=True)
    return home


@pytest.fixture
def store_connection(privpkg_home: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """``store_connection(name, target, secret, username=None)``: ``set_connection`` into this
    test's PRIVPKG_HOME, in-process (same source as the wheel)."""
    from privpkg.connections import set_connection

    def store(name: str, target: str, secret: str, username: str | None = None) -> Any:
        with monkeypatch.context() as m:
            for k in list(os.environ):
                if k in envvars.ALL:
                    m.delenv(k)
            m.setenv(envvars.HOME, str(privpkg_home))
            return set_connection(name, "PythonFeed", target, "PAT", value=secret, username=username)

    return store



@pytest.fixture
def isolated_privpkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """For in-process tests: no variable privpkg reads is set but ``PRIVPKG_HOME``
    (``tmp_path/privpkg``), ``HOME`` is ``tmp_path/home`` and the working directory is
    ``tmp_path/project``, a repository root (its ``.git`` stops the walk for ``privpkg.toml``).
    Returns PRIVPKG_HOME."""
    for k in list(os.environ):
        if k.startswith(_DROP_PREFIXES) or k in envvars.ALL:
            monkeypatch.delenv(k)
    home = tmp_path / "privpkg"
    home.mkdir()
    (tmp_path / "home").mkdir()
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)  # the project-file walk stops here
    monkeypatch.setenv(envvars.HOME, str(home))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(project)
    return home


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[str]:
    """``folder`` made read-only for what runs inside: chmod 0500 for a normal user; root
    ignores modes, so for root a read-only bind mount of the folder onto itself (EROFS)."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        try:
            yield "chmod 0500"
        finally:
            folder.chmod(0o700)
        return
    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, check=False).returncode == 0
    if not mounted or subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True, check=False).returncode:
        if mounted:
            subprocess.run(["umount", str(folder)], check=False)
        pytest.fail("root without CAP_SYS_ADMIN: cannot make a read-only folder here (modes do not bind root)")
    try:
        yield "read-only bind mount"
    finally:
        subprocess.run(["umount", str(folder)], check=True)
