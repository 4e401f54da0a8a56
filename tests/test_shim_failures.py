"""The pip shim when things go wrong: a storage endpoint that resets, fails or never answers, a
broken workspace definition, a corrupt store, an orphaned ``.pth``, and pip 23.2.1.

The storage endpoints here are tiny fakes on 127.0.0.1 (:class:`FakeStorage`, started per test
on a free port, closed in teardown). They misbehave on purpose, which neither Azurite nor moto can
be made to do: reset the connection, answer 500/503/404, or accept and never answer. The Azure
workspace is a container URL on the fake (``http://127.0.0.1:PORT/devstoreaccount1/c``) with an
AzureBlob connection holding Azurite's well-known key; the S3 workspace has ``endpoint_url`` on
the fake. Signing is real (azure-storage-blob, botocore), so the fake receives real signatures:
the test collects them from the requests it received and greps every pip output for them, at
every verbosity, along with the storage secrets.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.builds import Venv, build_once, check_ok, make_venv
from support.cli import PrivpkgCLI, signature_values
from support.env import Result, run
from support.feeds import ServedHTTP
from support.storage import AZURITE_KEY

from privpkg import envvars
from privpkg.testing import make_wheel

WHEEL = "demo_pkg-1.0-py3-none-any.whl"
VERBOSITIES = ["-q", "", "-v", "-vv", "-vvv"]
S3_AKID = "AKIAFAKESTORAGE00001"
S3_SECRET = "fake-s3-secret-Zq9rWm2xLp8vKt4nYc7b"


# --------------------------------------------------------------------------------------------
# fake servers
# --------------------------------------------------------------------------------------------


class FakeStorage:
    """A storage endpoint on 127.0.0.1 that fails every GET in one way (``mode``):

    - ``reset``: reads the request, then resets the connection (RST);
    - ``500`` / ``503`` / ``404``: answers with that status;
    - ``hang``: accepts and reads the request, then never answers (until closed).

    HEAD requests get a 200, as a healthy blob would, so code that checks before downloading
    gets as far as the download. ``requests`` records every request line (with its query)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            conn.close()
            return
        line = data.split(b"\r\n", 1)[0].decode("latin-1")
        self.requests.append(line)
        try:
            if line.startswith("HEAD "):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: application/octet-stream\r\n"
                             b"x-ms-meta-sha256: 00\r\nConnection: close\r\n\r\n")
                conn.close()
            elif self.mode == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            elif self.mode in ("500", "503", "404"):
                body = b"<?xml version=\"1.0\"?><Error><Code>Boom</Code></Error>"
                conn.sendall(b"HTTP/1.1 %s Storage Trouble\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                             % (self.mode.encode(), len(body), body))
                conn.close()
            elif self.mode == "hang":
                self._held.append(conn)  # closed in close()
            else:
                raise AssertionError(f"unknown mode {self.mode}")
        except OSError:
            conn.close()

    def signatures(self) -> set[str]:
        return signature_values("\n".join(self.requests))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def fake_storage() -> Iterator[Callable[[str], FakeStorage]]:
    started: list[FakeStorage] = []

    def start(mode: str) -> FakeStorage:
        server = FakeStorage(mode)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        self.server.seen.append(self.path)  # type: ignore[attr-defined]


@pytest.fixture
def plain_index(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """A public (no auth) find-links page over http on 127.0.0.1 serving ``plain-pkg 1.0`` under
    ``/idx/simple/``; returns (base URL, the wheel, the request paths it saw)."""
    root = tmp_path / "index-root"
    wheel = make_wheel(root / "idx" / "simple", "plain-pkg", "1.0")
    served = ServedHTTP(functools.partial(_QuietHandler, directory=str(root)))
    served.server.seen = []  # type: ignore[attr-defined]
    try:
        yield served.base, wheel, served.server.seen  # type: ignore[attr-defined]
    finally:
        served.stop()


# --------------------------------------------------------------------------------------------
# venvs
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def venv_pip2321_cloud(shared_dir: Path, uv_bin: Path, uv_cache: Path, build_env: dict[str, str], privpkg_wheel: Path) -> Venv:
    """pip 23.2.1 (what ``python3 -m venv`` gives on Python 3.11) with ``privpkg[azure,s3]``."""

    def build(dest: Path) -> None:
        make_venv(uv_bin, uv_cache, build_env, dest, ["pip==23.2.1", f"privpkg[azure,s3] @ {privpkg_wheel.as_uri()}"])

    return Venv(build_once(shared_dir, "venv-pip2321-cloud-shimtest", build))


def _site(venv: Venv, env: dict[str, str]) -> Path:
    r = run([venv.python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], env)
    assert r.returncode == 0, r.describe()
    return Path(r.output.strip())


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def azure_workspace(cli: PrivpkgCLI, server: FakeStorage, name: str = "az", *, store_key: bool = True) -> str:
    container = f"{server.endpoint}/devstoreaccount1/c"
    cli.ok("workspace", "add", name, "--azure", container)
    cli.outputs.add_secret(AZURITE_KEY)
    if store_key:
        cli.ok("connection", "set", f"{name}-blob", "--category", "AzureBlob", "--target", container, stdin=AZURITE_KEY + "\n")
    return container


def s3_workspace(cli: PrivpkgCLI, server: FakeStorage, name: str = "s3ws") -> dict[str, str]:
    """An S3 workspace on the fake endpoint; the credentials come from $PRIVPKG_CONNECTIONS
    (bound to that endpoint, for privpkg versions that bind S3 credentials to endpoints)."""
    cli.ok("workspace", "add", name, "--s3", "s3://wheels-bucket", "--endpoint-url", server.endpoint)
    cli.outputs.add_secret(S3_SECRET)
    conns = [{"name": "s3-fake", "category": "S3", "target": "s3://wheels-bucket", "username": S3_AKID,
              "secret": S3_SECRET, "endpoint": server.endpoint}]
    return {**cli.env, envvars.CONNECTIONS: json.dumps(conns)}


def pip_install(cli: PrivpkgCLI, venv: Venv, target: Path, *args: str | Path, env: dict[str, str] | None = None, timeout: float = 180) -> Result:
    argv = [*venv.pip, "install", "--no-cache-dir", "--no-index", "--disable-pip-version-check", "--target", target, *args]
    return cli.tool([a for a in argv if a != ""], env=env, timeout=timeout)


def _no_signed_url(text: str) -> None:
    for marker in ("sig=", "X-Amz-Signature", "X-Amz-Credential", "se=20", "X-Amz-Date"):
        assert marker not in text, f"{marker!r} in pip's output:\n{text}"


# --------------------------------------------------------------------------------------------
# C9 / C10: failed signed downloads
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["reset", "500", "503", "hang", "404"])
@pytest.mark.parametrize("backend", ["azure", "s3"])
def test_failed_signed_download_never_shows_the_signature(
    privpkg_cli: PrivpkgCLI, venv_privpkg_cloud: Venv, fake_storage: Callable[[str], FakeStorage], tmp_path: Path, backend: str, mode: str
) -> None:
    """pip -q, default, -v, -vv and -vvv against an endpoint that fails the signed GET: no
    signature, no storage secret anywhere (rich errors and tracebacks included), the stable URL
    in the error, no request to the storage before pip's download, and (C10) an endpoint that
    never answers is bounded by --timeout 1 --retries 1."""
    cli = privpkg_cli
    server = fake_storage(mode)
    if backend == "azure":
        azure_workspace(cli, server)
        ws, env = "az", cli.env
    else:
        ws, env = "s3ws", s3_workspace(cli, server)
    url = f"privpkg://{ws}/wheels/{WHEEL}"
    timings = {}
    for verbosity in VERBOSITIES:
        start = time.monotonic()
        # A hanging endpoint waits out pip's --timeout twice: 1 s keeps the five runs short.
        r = pip_install(cli, venv_privpkg_cloud, tmp_path / "t", "--timeout", "1" if mode == "hang" else "2", "--retries", "1", verbosity,
                        f"demo-pkg @ {url}", env=env, timeout=120)
        timings[verbosity] = time.monotonic() - start
        assert r.returncode != 0, r.describe()
        _no_signed_url(r.output)
        assert url in r.output, r.describe()
        assert "Logging error" not in r.output and "AssertionError" not in r.output, r.describe()
        if verbosity in ("-q", ""):
            # From -v on, pip itself prints the traceback of any OSError it stops on.
            assert "Traceback" not in r.output, r.describe()
        if mode == "404":
            assert f"privpkg: no wheel {WHEEL} in workspace '{ws}'" in r.output, r.describe()
        else:
            assert "from the workspace storage (signed URL withheld)" in r.output, r.describe()
        # One line from privpkg per failure. When pip prints a traceback (the OSError of a 5xx
        # from -v on, any failure from -vv on) the exception lines of that traceback
        # ("pip._vendor...RetryError: <the same text>", one per chained exception) carry the
        # message instead of, or besides, pip's error line: those are pip's traceback.
        said = [ln for ln in r.output.splitlines() if "privpkg: " in ln or "signed URL withheld" in ln]
        own = [ln for ln in said if not re.match(r"[\w.]+(Error|Exception): ", ln)]
        assert said and len(own) <= 1, r.describe()
        if verbosity in ("-q", ""):
            assert len(said) == len(own) == 1, r.describe()
        if mode == "hang":
            assert "read timed out while downloading " + url in r.output, r.describe()
            # Two tries of 1 s each plus pip's start-up: measured 2.7-3.2 s at every verbosity
            # (both backends; 5.6-6.2 s with --timeout 2); allow 3x for a loaded machine, never
            # the SDKs' minutes.
            assert timings[verbosity] < 10, (timings, r.describe())
    print(f"{backend} {mode}: pip took " + ", ".join(f"{v or 'default'} {t:.1f}s" for v, t in timings.items()))
    # The shim signed for real and made no request of its own before pip's download; only after
    # a 404 does it look again (a HEAD), to say whether the wheel was removed.
    assert server.requests and server.requests[0].startswith("GET "), server.requests
    allowed = ("GET ", "HEAD ") if mode == "404" else ("GET ",)
    assert all(line.startswith(allowed) for line in server.requests), server.requests
    sigs = server.signatures()
    assert sigs, f"the fake storage saw no signed URL: {server.requests}"
    cli.outputs.add("fake storage request log", "\n".join(server.requests), allowed=sigs)
    assert cli.outputs.check() == len(sigs)


@pytest.mark.parametrize("mode", ["reset", "503"])
def test_pip_2321_failed_download_no_logging_crash(
    privpkg_cli: PrivpkgCLI, venv_pip2321_cloud: Venv, fake_storage: Callable[[str], FakeStorage], tmp_path: Path, mode: str
) -> None:
    """pip 23.2.1 asserts that a log record's args is a tuple: the log filter that masks the
    signature in urllib3's "Retrying" warning must not crash pip's logging."""
    cli = privpkg_cli
    assert venv_pip2321_cloud.pip_version(cli.env) == "23.2.1"
    server = fake_storage(mode)
    azure_workspace(cli, server)
    url = f"privpkg://az/wheels/{WHEEL}"
    for verbosity in VERBOSITIES:
        r = pip_install(cli, venv_pip2321_cloud, tmp_path / "t", "--timeout", "2", "--retries", "1", verbosity, f"demo-pkg @ {url}")
        assert r.returncode == 1, r.describe()
        assert "AssertionError" not in r.output and "Logging error" not in r.output, r.describe()
        _no_signed_url(r.output)
        if verbosity in ("-q", ""):
            assert "Traceback" not in r.output, r.describe()
            assert f"while downloading {url} from the workspace storage (signed URL withheld)" in r.output, r.describe()
    sigs = server.signatures()
    assert sigs
    cli.outputs.add("fake storage request log", "\n".join(server.requests), allowed=sigs)
    assert cli.outputs.check() == len(sigs)


def test_plain_blob_url_signed_with_an_environment_connection(
    privpkg_cli: PrivpkgCLI, venv_privpkg_cloud: Venv, fake_storage: Callable[[str], FakeStorage], tmp_path: Path
) -> None:
    """A plain blob URL of an Azure workspace is signed when the AzureBlob connection comes only
    from $PRIVPKG_CONNECTIONS; its failure names the blob URL without the SAS."""
    cli = privpkg_cli
    server = fake_storage("404")
    container = azure_workspace(cli, server, store_key=False)
    env = {**cli.env, envvars.CONNECTIONS: json.dumps([{"name": "env-blob", "category": "AzureBlob", "target": container, "secret": AZURITE_KEY}])}
    blob = f"{container}/wheels/{WHEEL}"
    r = pip_install(cli, venv_privpkg_cloud, tmp_path / "t", f"demo-pkg @ {blob}", env=env)
    assert r.returncode != 0 and "Traceback" not in r.output, r.describe()
    assert f"privpkg: no blob at {blob}" in r.output, r.describe()
    _no_signed_url(r.output)
    sigs = server.signatures()
    assert sigs and all(line.startswith("GET ") for line in server.requests), server.requests
    cli.outputs.add("fake storage request log", "\n".join(server.requests), allowed=sigs)
    assert cli.outputs.check() == len(sigs)


# --------------------------------------------------------------------------------------------
# A4: what the shim intercepts, and what a broken definition or store does to pip
# --------------------------------------------------------------------------------------------

_AUDIT = """
import os, sys
_log = os.environ.get("SHIMTEST_OPEN_LOG")
if _log:
    def _hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes)):
            name = os.fsdecode(args[0])
            if os.path.basename(name).startswith(("connections.store", "master.key")):
                with open(_log, "a") as fh:
                    fh.write(name + "\\n")
    sys.addaudithook(_hook)
"""


def audited_env(env: dict[str, str], tmp_path: Path) -> tuple[dict[str, str], Path]:
    """``env`` plus a sitecustomize that logs every open of the store or the key file."""
    site = tmp_path / "audit-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_AUDIT)
    log = tmp_path / "opened.log"
    return {**env, "PYTHONPATH": str(site), "SHIMTEST_OPEN_LOG": str(log)}, log


@pytest.mark.parametrize("breakage", ["corrupt-store", "wrong-master-key"])
def test_pip_run_without_privpkg_urls_reads_no_store(
    privpkg_cli: PrivpkgCLI, privpkg_home: Path, venv_privpkg_cloud: Venv, fake_storage: Callable[[str], FakeStorage],
    plain_index: tuple[str, Path, list[str]], tmp_path: Path, breakage: str,
) -> None:
    cli = privpkg_cli
    base, wheel, _ = plain_index
    server = fake_storage("404")
    container = azure_workspace(cli, server)  # mounted by the shim, never used by these installs
    env = dict(cli.env)
    if breakage == "corrupt-store":
        store = next(privpkg_home.rglob("connections.store"))
        store.write_bytes(os.urandom(300))
    else:
        env[envvars.MASTER_KEY] = "ab" * 32
    env, opened = audited_env(env, tmp_path)

    r = pip_install(cli, venv_privpkg_cloud, tmp_path / "t1", "--find-links", f"{base}/idx/simple/", "plain-pkg", env=env)
    assert r.returncode == 0 and "Successfully installed plain-pkg-1.0" in r.output, r.describe()
    r2 = pip_install(cli, venv_privpkg_cloud, tmp_path / "t2", wheel, env=env)
    assert r2.returncode == 0 and "Successfully installed plain-pkg-1.0" in r2.output, r2.describe()
    for res in (r, r2):
        assert "privpkg:" not in res.output and "Traceback" not in res.output, res.describe()
    assert not opened.exists(), f"a pip run without privpkg URLs read the store:\n{opened.read_text()}"

    # Positive control: a blob URL in that Azure workspace reads the store, and the broken
    # store is one line in pip's error, not a traceback.
    r3 = pip_install(cli, venv_privpkg_cloud, tmp_path / "t3", f"demo-pkg @ {container}/wheels/{WHEEL}", env=env)
    assert r3.returncode != 0 and "Traceback" not in r3.output, r3.describe()
    assert "privpkg: " in r3.output and opened.exists(), r3.describe()
    assert server.requests == [], "nothing may be signed with a store that cannot be read"
    cli.outputs.check()


def _write_user_workspaces(privpkg_home: Path, text: str | bytes) -> Path:
    path = next(privpkg_home.rglob("workspaces.toml"), None) or privpkg_home / "workspaces.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


_SESSION_PROBE = """
import json, sys
from pip._internal.network.session import PipSession
s = PipSession()
print(json.dumps({u: type(s.get_adapter(u)).__name__ for u in sys.argv[1:]}))
"""


def test_azure_workspace_cannot_intercept_other_hosts(
    privpkg_cli: PrivpkgCLI, privpkg_home: Path, venv_privpkg_cloud: Venv, plain_index: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    """An "azure" workspace whose URL is PyPI (written straight into the file, as a hostile or
    careless edit would) must not route PyPI through privpkg; one over a loopback index with no
    AzureBlob connection leaves that index to pip."""
    cli = privpkg_cli
    base, _, seen = plain_index
    cli.ok("workspace", "add", "mine", "--local", tmp_path / "ws")  # creates the user file
    _write_user_workspaces(
        privpkg_home,
        '[workspaces.pypi]\nstorage = "azure"\nurl = "https://pypi.org/simple"\n\n'
        '[workspaces.files]\nstorage = "azure"\nurl = "https://files.pythonhosted.org/packages"\n\n'
        f'[workspaces.idx]\nstorage = "azure"\nurl = "{base}/idx/simple"\n',
    )
    urls = ["https://pypi.org/simple/requests/", "https://files.pythonhosted.org/packages/x/requests.whl", f"{base}/idx/simple/"]
    r = run([venv_privpkg_cloud.python, "-c", _SESSION_PROBE, *urls], cli.env)
    assert r.returncode == 0, r.describe()
    adapters = json.loads(r.output.strip().splitlines()[-1])
    assert adapters[urls[0]] != "PrivpkgAdapter" and adapters[urls[1]] != "PrivpkgAdapter", adapters

    # The loopback one is mounted (loopback emulators are allowed), but with no AzureBlob
    # connection covering it, pip's own adapter serves it, untouched.
    r = pip_install(cli, venv_privpkg_cloud, tmp_path / "t", "--find-links", f"{base}/idx/simple/", "plain-pkg")
    assert r.returncode == 0 and "Successfully installed plain-pkg-1.0" in r.output, r.describe()
    # An install that uses no workspace is not affected, not even by a warning.
    assert "privpkg:" not in r.output, r.describe()
    assert seen and not any("sig=" in p for p in seen), seen
    cli.outputs.check()


#: Broken user files, each with what privpkg's one line in pip's output must name besides the
#: file: the key for a definition that parses, the parser's verdict (and position) for one that
#: does not.
BROKEN_FILES = {
    "nul": (b'[workspaces.bad]\nstorage = "azure"\nurl = "https://a.blob.core.windows.net/c\x00"\n', "invalid TOML: Illegal character '\\x00' (at line 3"),
    "control-char": (b'[workspaces.bad]\nstorage = "azure"\nurl = "https://a.blob.core.windows.net/\x1b[31mc"\n', "invalid TOML: Illegal character '\\x1b' (at line 3"),
    "missing-url": (b'[workspaces.bad]\nstorage = "azure"\n', "workspaces.bad.url: missing"),
    "invalid-toml": (b'[workspaces.bad\nstorage = "azure"\n', "invalid TOML"),
    "endpoint-not-a-string": (b'[workspaces.bad]\nstorage = "s3"\nurl = "s3://bucket"\nendpoint_url = 5\n', "workspaces.bad.endpoint_url"),
    "workspaces-not-a-table": (b"workspaces = 5\n", "workspaces: expected a table"),
    "entry-not-a-table": (b'[workspaces]\nbad = "not a table"\n', "workspaces.bad: expected a table"),
    "not-utf8": (b"\xff\xfe not utf-8\n", "not UTF-8"),
}


@pytest.mark.parametrize("case", list(BROKEN_FILES))
def test_broken_workspace_file_never_breaks_pip(
    privpkg_cli: PrivpkgCLI, privpkg_home: Path, venv_privpkg_cloud: Venv, venv_pip2321_cloud: Venv,
    plain_index: tuple[str, Path, list[str]], tmp_path: Path, case: str,
) -> None:
    """pip 26.3 and 23.2.1 with a broken user workspaces file: installs that do not use it work,
    and a ``privpkg://`` URL that needs it fails with exactly one privpkg line naming the file
    and the key (or, for a file that does not parse, the parser's position)."""
    cli = privpkg_cli
    content, key = BROKEN_FILES[case]
    base, wheel, _ = plain_index
    cli.ok("workspace", "add", "mine", "--local", tmp_path / "ws")
    broken = _write_user_workspaces(privpkg_home, content)
    for i, venv in enumerate((venv_privpkg_cloud, venv_pip2321_cloud)):
        r = pip_install(cli, venv, tmp_path / f"t{i}", "--find-links", f"{base}/idx/simple/", "plain-pkg")
        assert r.returncode == 0 and "Successfully installed plain-pkg-1.0" in r.output, r.describe()
        assert "Traceback" not in r.output, r.describe()
        r = pip_install(cli, venv, tmp_path / f"u{i}", wheel)
        assert r.returncode == 0 and "Traceback" not in r.output, r.describe()
        # A privpkg URL that needs the broken file: one line from privpkg, no traceback.
        r = pip_install(cli, venv, tmp_path / f"v{i}", f"demo-pkg @ privpkg://bad/wheels/{WHEEL}")
        assert r.returncode != 0 and "Traceback" not in r.output, r.describe()
        said = [ln for ln in r.output.splitlines() if "privpkg: " in ln]
        errors = [ln for ln in said if "privpkg: warning: " not in ln]
        # pip's error carries privpkg's line; it names the file and the key.
        assert len(errors) == 1, r.describe()
        assert any(str(broken) in ln and key in ln for ln in errors), (str(broken), key, r.describe())
    cli.outputs.check()


@pytest.mark.parametrize("case", ["missing-url", "invalid-toml", "workspaces-not-a-table"])
def test_broken_workspace_file_is_one_privpkg_line_in_pip(
    privpkg_cli: PrivpkgCLI, privpkg_home: Path, venv_privpkg_cloud: Venv, venv_pip2321_cloud: Venv, tmp_path: Path, case: str,
) -> None:
    """Issue 6 A4: ONE line naming the file and the key. Inside pip (26.3 and 23.2.1) a
    privpkg:// URL whose workspace is broken got two privpkg lines (a warning from the shim's
    look at the definitions when pip made its session, then pip's error carrying the same line),
    and with ``workspaces = 5`` the error did not name the file at all."""
    cli = privpkg_cli
    content, key = BROKEN_FILES[case]
    cli.ok("workspace", "add", "mine", "--local", tmp_path / "ws")
    broken = _write_user_workspaces(privpkg_home, content)
    for i, venv in enumerate((venv_privpkg_cloud, venv_pip2321_cloud)):
        r = pip_install(cli, venv, tmp_path / f"v{i}", f"demo-pkg @ privpkg://bad/wheels/{WHEEL}")
        assert r.returncode != 0 and "Traceback" not in r.output, r.describe()
        said = [ln for ln in r.output.splitlines() if "privpkg: " in ln]
        assert len(said) == 1 and str(broken) in said[0] and key in said[0], r.describe()
    cli.outputs.check()


# --------------------------------------------------------------------------------------------
# E16: an orphaned .pth
# --------------------------------------------------------------------------------------------

_FINDERS = "import sys, pip._internal.network.session as s; print([type(f).__name__ for f in sys.meta_path])"


def _fresh_venv(uv_bin: Path, uv_cache: Path, build_env: dict[str, str], dest: Path, *packages: str) -> Venv:
    check_ok(run([uv_bin, "venv", "--no-config", "--python", sys.executable, dest], build_env), "uv venv")
    check_ok(run([uv_bin, "pip", "install", "--no-config", "--no-deps", "--cache-dir", uv_cache, "--python", dest / "bin" / "python", *packages], build_env), "uv pip install")
    return Venv(dest)


def _pip_still_works(cli: PrivpkgCLI, venv: Venv, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "dist", "plain-pkg", "1.0")
    r = run([*venv.pip, "install", "--no-index", "--no-cache-dir", "--target", tmp_path / "t", wheel], cli.env)
    assert r.returncode == 0 and "Successfully installed plain-pkg-1.0" in r.output, r.describe()
    assert "Traceback" not in r.output and "privpkg:" not in r.output, r.describe()
    r = run([venv.python, "-c", _FINDERS], cli.env)
    assert r.returncode == 0, r.describe()
    # The finder took itself off sys.meta_path when it found nothing to load.
    assert "PrivpkgPipShimFinder" not in r.output, r.describe()


def test_orphaned_pth_of_a_removed_privpkg_does_nothing(
    privpkg_cli: PrivpkgCLI, uv_bin: Path, uv_cache: Path, build_env: dict[str, str], privpkg_wheel: Path, tmp_path: Path
) -> None:
    """privpkg deleted by hand from site-packages (or an editable checkout moved away): its
    ``privpkg_pip_shim.pth`` stays, and pip must keep working."""
    venv = _fresh_venv(uv_bin, uv_cache, build_env, tmp_path / "venv", "pip>=26.2", str(privpkg_wheel))
    site = _site(venv, privpkg_cli.env)
    assert (site / "privpkg_pip_shim.pth").is_file()
    r = run([venv.python, "-c", _FINDERS], privpkg_cli.env)
    assert r.returncode == 0 and "PrivpkgPipShimFinder" in r.output, r.describe()  # positive control
    shutil.rmtree(site / "privpkg")
    assert (site / "privpkg_pip_shim.pth").is_file()
    _pip_still_works(privpkg_cli, venv, tmp_path)


def test_orphaned_copied_pth_does_nothing(
    privpkg_cli: PrivpkgCLI, uv_bin: Path, uv_cache: Path, build_env: dict[str, str], tmp_path: Path
) -> None:
    """``privpkg setup pip --python`` copied the shim as ``_privpkg_pip_shim``; that folder is
    deleted by hand and its ``.pth`` stays."""
    venv = _fresh_venv(uv_bin, uv_cache, build_env, tmp_path / "venv", "pip==23.2.1")
    r = run([sys.executable, "-m", "privpkg", "setup", "pip", "--python", venv.python], privpkg_cli.env)
    assert r.returncode == 0, r.describe()
    site = _site(venv, privpkg_cli.env)
    assert (site / "_privpkg_pip_shim.pth").is_file() and (site / "_privpkg_pip_shim").is_dir()
    shutil.rmtree(site / "_privpkg_pip_shim")
    _pip_still_works(privpkg_cli, venv, tmp_path)
