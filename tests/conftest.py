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
import re as _re
import secrets
import selectors
import shutil
import socket as _socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.parse
import zipfile as _zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn

import pytest

from privpkg import envvars

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
    *envvars.ALL,  # every variable privpkg reads, named once (the prefixes above cover them too)
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
    missing_tool("uv is not installed: pip install uv (it is in the project's [test] extra)")


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


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop one process we started, by its PID: SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


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
        stop_process(proc)
        if proc.stdout is not None:
            proc.stdout.close()


# ============================================================================================
# storage servers
# ============================================================================================
# Azurite (the Azure Blob emulator, from npm) and moto's S3 server, each started on a free
# loopback port and stopped by PID; a cloud-enabled pip venv; a pip 23.1 venv with the pip shim
# copied in; and a privpkg CLI runner that records every output so a test can check, at its end,
# that no storage secret and no signature from a signed URL leaked anywhere it should not be.
# Used by test_storage_azure.py, test_storage_s3.py and test_pip_shim.py.

AZURITE_VERSION = "3.35.0"
AZURITE_ACCOUNT = "devstoreaccount1"
#: Azurite's well-known development account key (public, but still never to be printed).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#: The newest service version Azurite 3.35 knows; the SDK's default is newer.
AZURITE_API_VERSION = "2025-11-05"
#: npm install cache for Azurite, kept between runs (gitignored).
AZURITE_NPM_DIR = REPO / ".cache" / "azurite-npm"


class ServedHTTP:
    """An in-process HTTP server on a free loopback port, served by a daemon thread: the one way
    tests run their small fake servers (feeds, recorders, misbehaving storage). Give it a request
    handler class, or a server already bound to ("127.0.0.1", 0) when it needs its own class."""

    def __init__(self, handler_or_server: Any) -> None:
        if isinstance(handler_or_server, socketserver.BaseServer):
            self.server = handler_or_server
        else:
            self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler_or_server)
        self.server.daemon_threads = True  # type: ignore[attr-defined]
        self.port = int(self.server.server_address[1])
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def free_port() -> int:
    """A loopback port that was free a moment ago (the caller retries if it is taken meanwhile)."""
    with _socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_on_free_port(
    make_argv: Callable[[int], list[str]], log_path: Path, what: str, *, env: dict[str, str] | None = None, timeout: float = 30
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``make_argv(port)`` on a free port and wait until the port accepts connections.
    Retries on a new port if the server exits (e.g. the port was taken meanwhile)."""
    attempts: list[str] = []
    for _ in range(3):
        port = free_port()
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(make_argv(port), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with _socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return proc, port
            except OSError:
                time.sleep(0.05)
        stop_process(proc)
        attempts.append(f"port {port}: exit {proc.returncode}")
    log_text = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
    raise RuntimeError(f"{what} did not start ({'; '.join(attempts)}):\n{log_text}")


@dataclass
class Azurite:
    """One running ``azurite-blob`` on 127.0.0.1."""

    port: int
    location: Path
    proc: subprocess.Popen[bytes] = field(repr=False)
    account: str = AZURITE_ACCOUNT
    key: str = field(default=AZURITE_KEY, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.account}"

    def container_url(self, container: str) -> str:
        return f"{self.endpoint}/{container}"

    def service(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(
            self.endpoint, credential={"account_name": self.account, "account_key": self.key}, api_version=AZURITE_API_VERSION
        )

    def create_container(self, name: str | None = None) -> str:
        """Create a container (a fresh random name by default); return its URL."""
        name = name or f"wheels-{secrets.token_hex(5)}"
        self.service().create_container(name)
        return self.container_url(name)

    def container(self, name: str) -> Any:
        return self.service().get_container_client(name)

    def sas_url(self, container: str, blob: str, ttl: int = 300) -> str:
        """A read SAS made here, independently of privpkg (to look at blobs from outside)."""
        import datetime as dt

        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        now = dt.datetime.now(dt.UTC)
        sas = generate_blob_sas(
            self.account, container, blob, account_key=self.key, permission=BlobSasPermissions(read=True),
            start=now - dt.timedelta(minutes=5), expiry=now + dt.timedelta(seconds=ttl), protocol="https,http",
        )
        return f"{self.container_url(container)}/{urllib.parse.quote(blob)}?{sas}"

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture(scope="session")
def azurite_bin() -> Path:
    """``azurite-blob`` from ``npm install azurite@AZURITE_VERSION`` into ``.cache/azurite-npm``,
    installed once (under a lock, so xdist workers share it) and reused by later runs."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        missing_tool(f"Azurite needs Node.js: {'node' if not node else 'npm'} is not on PATH; install Node.js 18 or later with npm")
    root = AZURITE_NPM_DIR
    root.parent.mkdir(parents=True, exist_ok=True)
    done = root / f".installed-{AZURITE_VERSION}"
    binary = root / "node_modules" / ".bin" / "azurite-blob"
    with _locked(root.parent / "azurite-npm.lock"):
        if not (done.exists() and binary.exists()):
            root.mkdir(parents=True, exist_ok=True)
            # A package.json pins npm's install prefix here (npm would otherwise walk up).
            (root / "package.json").write_text('{"name": "privpkg-test-azurite", "private": true}\n')
            env = {**os.environ, "npm_config_update_notifier": "false"}
            r = run([npm, "install", "--no-audit", "--no-fund", "--prefix", root, f"azurite@{AZURITE_VERSION}"], env, cwd=root, timeout=600)
            _check(r, f"npm install azurite@{AZURITE_VERSION}")
            if not binary.exists():
                pytest.fail(f"npm install azurite@{AZURITE_VERSION} did not create {binary}:\n{r.describe()}", pytrace=False)
            done.write_text(f"{r.seconds:.1f}s\n")
    return binary


def start_azurite(binary: Path, location: Path) -> Azurite:
    """Start Azurite's blob service with its data in ``location``."""
    node = shutil.which("node")
    assert node is not None
    location.mkdir(parents=True, exist_ok=True)

    def argv(port: int) -> list[str]:
        return [
            node, str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(location),
            "--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry",
        ]

    proc, port = start_on_free_port(argv, location / "azurite.log", "Azurite")
    return Azurite(port, location, proc)


@pytest.fixture(scope="session")
def azurite(azurite_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """A running Azurite for this worker's session; each test creates its own container."""
    server = start_azurite(azurite_bin, tmp_path_factory.mktemp("azurite"))
    try:
        yield server
    finally:
        server.stop()


@dataclass
class MotoServer:
    """One running ``moto.server`` (S3) on 127.0.0.1. moto does not check signatures."""

    port: int
    proc: subprocess.Popen[bytes] = field(repr=False)
    access_key: str = "testing-AKID"
    secret_key: str = field(default_factory=lambda: "s3-secret-" + secrets.token_urlsafe(24), repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
        )

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"wheels-{secrets.token_hex(5)}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """``python -m moto.server`` for this worker's session; each test creates its own bucket."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    proc, port = start_on_free_port(lambda p: [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(p)], log, "moto server", env=env)
    try:
        yield MotoServer(port, proc)
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def venv_privpkg_cloud(shared_dir: Path, uv_bin: Path, uv_cache: Path, build_env: dict[str, str], privpkg_wheel: Path) -> Venv:
    """Latest pip + ``privpkg[azure,s3]`` from the wheel: the pip shim (.pth) signs in-process
    with the cloud SDKs. (``venv_privpkg`` has no cloud SDK, so it cannot sign Azure or S3 URLs.)"""

    def build(dest: Path) -> None:
        _make_venv(uv_bin, uv_cache, build_env, dest, ["pip>=26.2", f"privpkg[azure,s3] @ {privpkg_wheel.as_uri()}"])
        if not list(dest.glob("lib/python*/site-packages/privpkg_pip_shim.pth")):
            raise RuntimeError(f"the privpkg wheel did not install privpkg_pip_shim.pth into {dest}")

    return Venv(build_once(shared_dir, "venv-privpkg-cloud", build))


@pytest.fixture(scope="session")
def venv_pip231_shim(shared_dir: Path, uv_bin: Path, uv_cache: Path, build_env: dict[str, str]) -> Venv:
    """pip 23.1 without privpkg, prepared with ``privpkg setup pip --python`` by this checkout's
    privpkg (so the shim signs through ``sys.executable``). Tests must not undo it."""

    def build(dest: Path) -> None:
        _make_venv(uv_bin, uv_cache, build_env, dest, ["pip==23.1"])
        _check(run([sys.executable, "-m", "privpkg", "setup", "pip", "--python", dest / "bin" / "python"], build_env), "privpkg setup pip --python")

    return Venv(build_once(shared_dir, "venv-pip231-shim", build))


def make_big_wheel(directory: Path, name: str, version: str, size: int) -> Path:
    """A valid wheel with ``size`` bytes of random data stored (not deflated), for upload tests."""
    dist = _re.sub(r"[-_.]+", "_", name)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    with _zipfile.ZipFile(path, "w", _zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{dist}.py", f'VERSION = "{version}"\n')
        with zf.open(f"{dist}_data.bin", "w", force_zip64=True) as fh:
            for _ in range(0, size, 1 << 20):
                fh.write(os.urandom(1 << 20))
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: privpkg-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


_SIGNATURE_VALUE = _re.compile(r"[?&](?:sig|X-Amz-Signature)=([^&\s\"'#<>]+)", _re.IGNORECASE)


def signature_values(text: str) -> set[str]:
    """The (unquoted) values of ``sig=`` / ``X-Amz-Signature=`` in every signed URL in ``text``."""
    return {urllib.parse.unquote(m.group(1)) for m in _SIGNATURE_VALUE.finditer(text)}


class Outputs:
    """Every output a test produced. :meth:`check` fails if a storage secret appears anywhere,
    or a signature from any signed URL the test saw appears anywhere but in the stdout of the
    ``privpkg resolve`` that printed it."""

    def __init__(self, *secrets_: str) -> None:
        self.secrets = list(secrets_)
        self.items: list[tuple[str, str, set[str]]] = []

    def add(self, label: str, text: str, allowed: set[str] | None = None) -> str:
        self.items.append((label, text, allowed or set()))
        return text

    def add_secret(self, secret: str) -> None:
        self.secrets.append(secret)

    def seen_signatures(self) -> set[str]:
        return set().union(*(signature_values(text) for _, text, _ in self.items)) if self.items else set()

    def check(self) -> int:
        """Run the checks; return how many signatures were checked (callers assert > 0 when
        they saw signed URLs, so the check cannot pass vacuously)."""
        sigs = self.seen_signatures()
        for label, text, allowed in self.items:
            try:
                if self.secrets:
                    assert_no_secret(text, *self.secrets)
                others = sigs - allowed
                if others:
                    assert_no_secret(text, *others)
            except AssertionError as exc:
                raise AssertionError(f"in the output of {label}: {exc}") from None
        return len(sigs)


class PrivpkgCLI:
    """``python -m privpkg`` of this checkout in a test environment; records every output."""

    def __init__(self, env: dict[str, str], outputs: Outputs) -> None:
        self.env = env
        self.outputs = outputs

    def __call__(self, *args: str | Path, stdin: str = "", timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        argv = [str(a) for a in args]
        try:
            res = subprocess.run(
                [sys.executable, "-m", "privpkg", *argv], input=stdin, capture_output=True, text=True,
                env=self.env, timeout=timeout, cwd=cwd, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout or ""
            err = exc.stderr or ""
            text = (out.decode(errors="replace") if isinstance(out, bytes) else out) + (err.decode(errors="replace") if isinstance(err, bytes) else err)
            self.outputs.add(f"privpkg {' '.join(argv)}", text)
            raise AssertionError(f"privpkg {' '.join(argv)} did not finish within {timeout}s:\n{text}") from None
        allowed = signature_values(res.stdout) if argv[:1] == ["resolve"] else set()
        self.outputs.add(f"privpkg {' '.join(argv)}", res.stdout + res.stderr, allowed)
        assert "Traceback" not in res.stdout + res.stderr, f"privpkg {' '.join(argv)}:\n{res.stderr}"
        return res

    def ok(self, *args: str | Path, **kw: Any) -> str:
        res = self(*args, **kw)
        assert res.returncode == 0, f"privpkg {' '.join(map(str, args))} -> exit {res.returncode}\n{res.stdout}{res.stderr}"
        return res.stdout

    def fails(self, code: int, *args: str | Path, match: str | Sequence[str], **kw: Any) -> str:
        """Exit ``code`` with exactly one ``privpkg: error:`` line on stderr containing ``match``."""
        res = self(*args, **kw)
        assert res.returncode == code, f"privpkg {' '.join(map(str, args))} -> exit {res.returncode}, expected {code}\n{res.stdout}{res.stderr}"
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("privpkg: error: "), res.stderr
        for m in [match] if isinstance(match, str) else match:
            assert m in lines[0], f"{m!r} not in {lines[0]!r}"
        return lines[0]

    def tool(self, cmd: Sequence[str | Path], *, env: dict[str, str] | None = None, timeout: float = 180, cwd: Path | None = None) -> Result:
        """Run another program (pip, uv) with this environment; its output is recorded too."""
        r = run(cmd, env or self.env, timeout=timeout, cwd=cwd)
        self.outputs.add(" ".join(r.cmd), r.output)
        return r


@pytest.fixture
def privpkg_cli(make_env: Callable[..., dict[str, str]], privpkg_home: Path) -> PrivpkgCLI:
    """A :class:`PrivpkgCLI` for this test's PRIVPKG_HOME; call ``privpkg_cli.outputs.check()``."""
    return PrivpkgCLI(make_env(), Outputs())


def check_publish_rules(cli: PrivpkgCLI, wheel: Path, workspace: str, url: str, sha: str, tmp_path: Path) -> None:
    """The immutability rules every storage backend must keep: the same wheel again is an error
    naming --exist-ok and a success with it; a different wheel under the same name is always an
    error. The caller then checks that its stored object is unchanged."""
    from privpkg.feedserver import make_wheel

    cli.fails(2, "wheel", "add", wheel, "--workspace", workspace, match=["already in workspace", "--exist-ok"])
    assert cli.ok("wheel", "add", wheel, "--workspace", workspace, "--exist-ok").strip().splitlines()[-1] == url
    other = make_wheel(tmp_path / "v1-other", "demo-pkg", "1.0", body='VERSION = "not the published one"\n')
    assert other.name == wheel.name and other.read_bytes() != wheel.read_bytes()
    for extra in ([], ["--exist-ok"]):
        cli.fails(1, "wheel", "add", other, "--workspace", workspace, *extra, match=["a different", "immutable", sha[:12]])


# --------------------------------------------------------------------------------------------
# pip / Python compatibility matrix for the pip shim (issue 6, E15)
# --------------------------------------------------------------------------------------------

#: CPython versions a ``privpkg setup pip --python`` copy of the shim must run on.
SHIM_PYTHONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")


def pyenv_python(version: str) -> Path:
    """The newest pyenv CPython ``version`` (e.g. "3.8") as a full path, e.g.
    ``~/.pyenv/versions/3.8.18/bin/python3.8``."""
    roots = []
    with suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30, check=False).stdout.strip()
        if out:
            roots.append(Path(out))
    roots += [Path(os.environ.get("PYENV_ROOT", "~/.pyenv")).expanduser()]
    found: list[tuple[tuple[int, ...], Path]] = []
    for root in roots:
        for d in (root / "versions").glob(f"{version}.*"):
            rest = d.name[len(version) + 1 :]
            exe = d / "bin" / f"python{version}"
            if rest.isdigit() and exe.is_file():
                found.append(((int(rest),), exe))
    if not found:
        missing_tool(f"CPython {version} is not installed under pyenv ({', '.join(map(str, roots))})")
    return max(found)[1]


def make_venv_for(uv_bin: Path, uv_cache: Path, env: dict[str, str], dest: Path, python: Path | str, packages: Sequence[str | Path]) -> None:
    """:func:`_make_venv` for another interpreter than the one running the tests."""
    _check(run([uv_bin, "venv", "--no-config", "--python", python, dest], env), f"uv venv --python {python} {dest}")
    _check(
        run([uv_bin, "pip", "install", "--no-config", "--cache-dir", uv_cache, "--python", dest / "bin" / "python", *packages], env),
        f"uv pip install {' '.join(map(str, packages))} into {dest}",
    )


@pytest.fixture(scope="session")
def compat_venv(shared_dir: Path, uv_bin: Path, uv_cache: Path, build_env: dict[str, str], privpkg_wheel: Path) -> Callable[..., Venv]:
    """``compat_venv(pip, python=None, how="in-env"|"setup")``: a venv (built once per run, shared
    by xdist workers) of ``python`` (a pyenv version such as "3.8"; None = the tests' own
    interpreter) with ``pip`` (a requirement such as "pip==23.2.1", or "pip" for the newest pip
    that supports that Python), and privpkg either installed in it ("in-env") or its shim copied
    in by this checkout's ``privpkg setup pip --python`` ("setup")."""

    def get(pip: str, python: str | None = None, how: str = "setup") -> Venv:
        assert how in ("in-env", "setup")
        exe = pyenv_python(python) if python else Path(sys.executable)
        packages: list[str | Path] = [pip] + ([f"privpkg @ {privpkg_wheel.as_uri()}"] if how == "in-env" else [])
        name = f"compat-{python or 'self'}-{_re.sub(r'[^A-Za-z0-9.]+', '_', pip)}-{how}"

        def build(dest: Path) -> None:
            make_venv_for(uv_bin, uv_cache, build_env, dest, exe, packages)
            if how == "setup":
                _check(run([sys.executable, "-m", "privpkg", "setup", "pip", "--python", dest / "bin" / "python"], build_env),
                       "privpkg setup pip --python")

        return Venv(build_once(shared_dir, name, build))

    return get
