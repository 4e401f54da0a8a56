"""Shared fixtures for the real-pip integration tests.

Nothing here touches the user's real pip/uv/keyring configuration: every subprocess gets an
environment from :func:`clean_env` (no ``PIP_*``, ``UV_*``, ``KEYRING_*`` variables,
``PIP_CONFIG_FILE=os.devnull``, ``HOME``/``XDG_*`` and ``PRIVPKG_HOME`` in a per-test tmp dir,
and a ``PATH`` with no ``keyring`` executable and no virtualenv on it).

Session fixtures that build things (the privpkg wheel, three virtualenvs) work under
``pytest-xdist``: they build into the run's shared base temp dir under an ``fcntl.flock`` so all
workers share one copy. A failed build is recorded next to the lock, so other workers fail fast
with the same message instead of retrying.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
import selectors
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Variables that configure pip, uv, keyring or privpkg itself; none may leak into a subprocess.
_DROP_PREFIXES = (
    "PIP_",
    "UV_",
    "KEYRING_",
    "PYTHON_KEYRING_",
    "PRIVPKG_",
    "ARTIFACTS_CREDENTIALPROVIDER_",
    "VSS_NUGET_",
)
_DROP_NAMES = {
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "DBUS_SESSION_BUS_ADDRESS",
    "NETRC",
    "XDG_CONFIG_DIRS",
    "XDG_DATA_DIRS",
}


# --------------------------------------------------------------------------------------------
# environment and command helpers
# --------------------------------------------------------------------------------------------


def clean_path(path: str | None = None) -> str:
    """``PATH`` without virtualenv bins and without any dir that holds a ``keyring`` executable,
    so the only keyring CLI a test can reach is one it puts on ``PATH`` on purpose."""
    keep: list[str] = []
    for entry in (path if path is not None else os.environ.get("PATH", "")).split(os.pathsep):
        if not entry or entry in keep:
            continue
        p = Path(entry)
        if (p.parent / "pyvenv.cfg").exists():
            continue  # a virtualenv's bin (e.g. the dev venv, which has privpkg + keyring)
        if (p / "keyring").exists():
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
        PRIVPKG_HOME=str(home / "privpkg"),
        PIP_CONFIG_FILE=os.devnull,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONIOENCODING="utf-8",
    )
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


# --------------------------------------------------------------------------------------------
# shared, lock-protected builds
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dir per test run, shared by all xdist workers (the workers' common base temp)."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "privpkg-shared"
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def _locked(lock: Path) -> Iterator[None]:
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_once(root: Path, name: str, build: Callable[[Path], None]) -> Path:
    """Build ``root/name`` once for all workers. ``build(dest)`` fills ``dest`` or raises.

    ``name.done`` marks success; ``name.failed`` holds the first failure's message so the other
    workers report it instead of rebuilding."""
    dest, done, failed = root / name, root / f"{name}.done", root / f"{name}.failed"
    with _locked(root / f"{name}.lock"):
        if done.exists():
            return dest
        if failed.exists():
            pytest.fail(f"building {name} failed in another worker:\n{failed.read_text()}", pytrace=False)
        if dest.exists():
            shutil.rmtree(dest)  # a half-built leftover
        dest.mkdir(parents=True)
        start = time.monotonic()
        try:
            build(dest)
        except BaseException as exc:
            failed.write_text(str(exc))
            raise
        done.write_text(f"{time.monotonic() - start:.1f}s\n")
    return dest


def _check(result: Result, what: str) -> Result:
    if result.returncode != 0:
        pytest.fail(f"{what} failed:\n{result.describe()}", pytrace=False)
    return result


@pytest.fixture(scope="session")
def uv_bin() -> Path:
    """The uv executable: the one shipped with the ``uv`` Python package, else uv on PATH."""
    candidates: list[str | None] = []
    with suppress(Exception):  # the uv package is absent or broken: fall back to PATH
        import uv  # type: ignore[import-not-found]

        candidates.append(uv.find_uv_bin())
    candidates += [shutil.which("uv", path=str(Path(sys.executable).parent)), shutil.which("uv")]
    for c in candidates:
        if c and Path(c).exists():
            return Path(c)
    pytest.skip("uv is not installed (pip install uv, or the project's [test] extra)")


@pytest.fixture(scope="session")
def uv_cache(pytestconfig: pytest.Config, shared_dir: Path) -> Path:
    """A uv cache that survives between runs (in .pytest_cache), so venv builds are quick."""
    try:
        return Path(pytestconfig.cache.mkdir("privpkg-uv-cache"))  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - cache plugin disabled (-p no:cacheprovider)
        return shared_dir / "uv-cache"


@pytest.fixture(scope="session")
def build_env(shared_dir: Path) -> dict[str, str]:
    """Environment for building wheels and venvs (reaches PyPI; no user config)."""
    return clean_env(shared_dir / "build-home")


@pytest.fixture(scope="session")
def privpkg_wheel(shared_dir: Path, uv_bin: Path, uv_cache: Path, build_env: dict[str, str]) -> Path:
    """The project wheel, built once per run from the repo root."""

    def build(dest: Path) -> None:
        r = run(
            [uv_bin, "build", "--wheel", "--no-config", "--cache-dir", uv_cache, "--out-dir", dest, REPO],
            build_env,
            cwd=REPO,
        )
        if r.returncode != 0:  # fall back to pip's PEP 517 build
            r2 = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", dest, REPO], build_env, cwd=REPO)
            if r2.returncode != 0:
                raise RuntimeError(f"uv build failed:\n{r.describe()}\n\npip wheel failed:\n{r2.describe()}")

    dest = build_once(shared_dir, "dist", build)
    wheels = sorted(dest.glob("privpkg-*.whl"))
    assert len(wheels) == 1, f"expected one privpkg wheel in {dest}, found {wheels}"
    return wheels[0]


@dataclass(frozen=True)
class Venv:
    path: Path

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    @property
    def pip(self) -> list[str]:
        return [str(self.python), "-m", "pip"]

    def pip_version(self, env: dict[str, str]) -> str:
        r = run([self.python, "-c", "import pip; print(pip.__version__)"], env)
        assert r.returncode == 0, r.describe()
        return r.output.strip()

    def can_import(self, module: str, env: dict[str, str]) -> bool:
        return run([self.python, "-c", f"import {module}"], env).returncode == 0


def _make_venv(uv_bin: Path, uv_cache: Path, env: dict[str, str], dest: Path, packages: Sequence[str | Path]) -> None:
    _check(run([uv_bin, "venv", "--no-config", "--python", sys.executable, dest], env), f"uv venv {dest}")
    _check(
        run(
            [uv_bin, "pip", "install", "--no-config", "--cache-dir", uv_cache, "--python", dest / "bin" / "python", *packages],
            env,
        ),
        f"uv pip install {' '.join(map(str, packages))} into {dest}",
    )


@pytest.fixture(scope="session")
def venv_privpkg(shared_dir: Path, uv_bin: Path, uv_cache: Path, build_env: dict[str, str], privpkg_wheel: Path) -> Venv:
    """Latest pip + the privpkg wheel (and so keyring). Its bin/keyring is the keyring CLI with
    privpkg's backend."""

    def build(dest: Path) -> None:
        _make_venv(uv_bin, uv_cache, build_env, dest, ["pip>=26.2", privpkg_wheel])
        r = _check(run([dest / "bin" / "keyring", "--list-backends"], build_env), "keyring --list-backends")
        if "PrivpkgKeyring" not in r.output:
            raise RuntimeError(f"privpkg's keyring backend is not registered:\n{r.describe()}")

    return Venv(build_once(shared_dir, "venv-privpkg", build))


@pytest.fixture(scope="session")
def venv_bare_pip(shared_dir: Path, uv_bin: Path, uv_cache: Path, build_env: dict[str, str]) -> Venv:
    """Latest pip only; keyring is not importable here."""
    return Venv(build_once(shared_dir, "venv-bare-pip", lambda d: _make_venv(uv_bin, uv_cache, build_env, d, ["pip>=26.2"])))


@pytest.fixture(scope="session")
def venv_pip231(shared_dir: Path, uv_bin: Path, uv_cache: Path, build_env: dict[str, str]) -> Venv:
    """pip 23.1 (the first with --keyring-provider), no keyring."""
    return Venv(build_once(shared_dir, "venv-pip231", lambda d: _make_venv(uv_bin, uv_cache, build_env, d, ["pip==23.1"])))


# --------------------------------------------------------------------------------------------
# per-test environment and connections
# --------------------------------------------------------------------------------------------


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
                if k.startswith(("PRIVPKG_", "ARTIFACTS_CREDENTIALPROVIDER_", "VSS_NUGET_")):
                    m.delenv(k)
            m.setenv("PRIVPKG_HOME", str(privpkg_home))
            return set_connection(name, "PythonFeed", target, "PAT", value=secret, username=username)

    return store


# --------------------------------------------------------------------------------------------
# the loopback feed server
# --------------------------------------------------------------------------------------------

FEED_A_PATH = "/orgA/_packaging/feedA/pypi/simple/"
FEED_B_PATH = "/orgB/_packaging/feedB/pypi/simple/"


@dataclass(frozen=True)
class LogLine:
    method: str
    path: str
    status: int
    auth: bool


@dataclass
class FeedServer:
    base: str  # http://127.0.0.1:PORT
    port: int
    secret_a: str
    secret_b: str
    log_path: Path
    proc: subprocess.Popen[bytes] = field(repr=False)

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def index_a(self) -> str:
        return self.base + FEED_A_PATH

    @property
    def index_b(self) -> str:
        return self.base + FEED_B_PATH

    @property
    def secrets(self) -> tuple[str, str]:
        return (self.secret_a, self.secret_b)

    def log(self) -> list[LogLine]:
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text().splitlines():
            method, path, status, auth = line.split(" ")
            out.append(LogLine(method, path, int(status), auth == "auth"))
        return out

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else "<no requests logged>"

    def assert_challenged_then_authorized(self, feed_path: str, wheel: str, *, anonymous: bool = True) -> None:
        """The feed at ``feed_path`` answered an anonymous request with 401 (any 401 when
        ``anonymous`` is False, e.g. pip trying another feed's cached PAT first), later served
        an authorized 200, and an authorized 200 for the wheel file ``wheel``."""
        log = [e for e in self.log() if e.path.startswith(feed_path)]
        first_401 = next((i for i, e in enumerate(log) if e.status == 401 and not (anonymous and e.auth)), None)
        assert first_401 is not None, f"no {'anonymous ' if anonymous else ''}401 for {feed_path}:\n{self.log_text()}"
        ok = [e for e in log[first_401 + 1 :] if e.status == 200 and e.auth]
        assert ok, f"no authorized 200 after the 401 for {feed_path}:\n{self.log_text()}"
        assert any(e.path.endswith("/" + wheel) for e in ok), f"{wheel} was not downloaded with auth:\n{self.log_text()}"

    def assert_never_authorized(self) -> None:
        """Every request was refused, and none carried an Authorization header (no secret of any
        kind was sent)."""
        log = self.log()
        assert log, "the feed saw no request at all"
        assert all(e.status == 401 for e in log), f"a request got through:\n{self.log_text()}"
        assert not any(e.auth for e in log), f"a credential was sent to the feed:\n{self.log_text()}"


def _read_port(proc: subprocess.Popen[bytes], stderr_path: Path, timeout: float = 15) -> int:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None and not sel.select(0):
            break
        if sel.select(left):
            chunk = os.read(proc.stdout.fileno(), 64)
            if not chunk:
                break
            buf += chunk
    sel.close()
    line = buf.split(b"\n", 1)[0].strip()
    if not line.isdigit():
        proc.kill()
        proc.wait(timeout=5)
        raise RuntimeError(
            f"feed server did not print its port (stdout {buf!r}, exit {proc.returncode}):\n"
            f"{stderr_path.read_text(errors='replace')}"
        )
    return int(line)


@pytest.fixture
def feed(tmp_path: Path) -> Iterator[FeedServer]:
    """A running ``python -m privpkg.feedserver`` with two PAT-protected feeds on one server:
    pkg-a 1.0 at FEED_A_PATH (secret_a) and pkg-b 2.0 at FEED_B_PATH (secret_b)."""
    from privpkg.feedserver import make_wheel

    root = tmp_path / "feed"
    make_wheel(root / "a", "pkg-a", "1.0")
    make_wheel(root / "b", "pkg-b", "2.0")
    secret_a, secret_b = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    log_path = root / "requests.log"
    config = root / "config.json"
    config.write_text(
        json.dumps(
            {
                "feeds": [
                    {"path": FEED_A_PATH, "secret": secret_a, "dir": str(root / "a")},
                    {"path": FEED_B_PATH, "secret": secret_b, "dir": str(root / "b")},
                ],
                "log": str(log_path),
            }
        )
    )
    config.chmod(0o600)
    env = clean_env(tmp_path / "feed-home")
    env["PYTHONPATH"] = str(REPO / "src")  # the server under test, even without an install
    stderr_path = root / "server.stderr"
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "privpkg.feedserver", str(config)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    try:
        port = _read_port(proc, stderr_path)
        yield FeedServer(f"http://127.0.0.1:{port}", port, secret_a, secret_b, log_path, proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
