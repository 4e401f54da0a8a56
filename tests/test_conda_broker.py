"""The conda pip step's broker (privpkg.conda.broker, clients in privpkg.pip_shim.broker), without
conda: the broker runs where conda's process would (here: this test process, or ``python -m
privpkg.conda.broker -- CMD``), the clients are the real programs pip runs.

- The keyring launcher's client (``python -I -S broker.py``) answers pip's calls exactly as
  keyring's CLI with privpkg's backend does (output, exit code, lookup log record), importing
  neither privpkg nor cryptography; with no broker, a dead socket, a socket in a folder others
  can enter, a foreign answer or other keyring settings, it hands over to privpkg's keyring
  command, so the answer never changes.
- The copied pip shim signs through the broker: proven with a shim whose signing interpreter
  does not exist (the subprocess path then fails with its own line).
- A peer of another user gets nothing (SO_PEERCRED; the other user is simulated by changing
  what the broker takes for its own uid, the one thing here that cannot be real without a second
  account), and the socket's folder is private and gone after the block.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.builds import Venv, make_venv
from support.cli import PrivpkgCLI
from support.env import assert_no_secret
from test_conda_keyringcli import CALLS, HOST_PAT, KEYRING, OLD_PAT, PAT, _run
from test_conda_keyringcli import store as store  # noqa: PLC0414 - the fixture, re-exported for pytest
from test_pip_shim import local_workspace, pip_install

from privpkg import envvars
from privpkg.conda import broker
from privpkg.pip_shim import broker as client
from privpkg.setup_pip import install_shim

CLIENT = [sys.executable, "-I", "-S", client.__file__]


@pytest.fixture
def serving(store: Path) -> Iterator[Path]:
    with broker.serving() as path:
        assert path is not None, "this platform has SO_PEERCRED: a broker must start"
        yield path


@pytest.mark.integration  # runs programs
@pytest.mark.parametrize("case", list(CALLS))
def test_the_launchers_client_answers_as_the_keyring_cli(serving: Path, case: str) -> None:
    args = CALLS[case]
    mine = _run(CLIENT, args)
    theirs = _run(KEYRING, args, {k: v for k, v in os.environ.items() if k != client.ENV})
    served = [r.pop("via") for r in mine[3] if "via" in r]
    assert mine == theirs, f"{case}: broker client {mine!r} != keyring CLI {theirs!r}"
    assert served == (["broker"] if mine[0] == 0 else []), "a hit is the broker's, and recorded as such"
    assert_no_secret(mine[2], PAT, OLD_PAT, HOST_PAT)


@pytest.mark.integration  # runs a program
def test_a_hit_through_the_broker_imports_no_privpkg(serving: Path) -> None:
    res = subprocess.run([sys.executable, "-X", "importtime", "-I", "-S", client.__file__, *CALLS["hit"]],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0 and json.loads(res.stdout) == {"username": "me", "password": PAT}, res.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert "socket" in imported, "the probe sees imports"
    assert not {m for m in imported if m.split(".")[0] in ("privpkg", "cryptography", "keyring")}, sorted(imported)


@pytest.mark.integration  # runs programs
def test_the_broker_answers_while_it_serves_only(store: Path) -> None:
    env_before = os.environ.get(client.ENV)
    with broker.serving() as path:
        assert path is not None and os.environ[client.ENV] == str(path)
        folder = path.parent
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and folder.stat().st_uid == os.getuid()
        assert client.ask({"op": "keyring", "argv": CALLS["hit"]}) is not None
    assert os.environ.get(client.ENV) == env_before
    assert not folder.exists(), "the socket's folder goes with the block"


def _fallbacks(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    base = {k: v for k, v in os.environ.items() if k != client.ENV}
    yield "no broker", base
    yield "a dead socket", {**base, client.ENV: str(tmp_path / "gone" / "s")}
    open_folder = tmp_path / "open"
    open_folder.mkdir(mode=0o755)
    open_folder.chmod(0o755)
    yield "a folder others can enter", {**base, client.ENV: str(open_folder / "s")}


@pytest.mark.integration  # runs programs
def test_without_a_usable_broker_the_client_hands_over(store: Path, tmp_path: Path) -> None:
    with broker.serving() as path:
        assert path is not None
        cases = list(_fallbacks(tmp_path))
        # The open folder holds a live socket answering a forged credential: never to be asked.
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(cases[2][1][client.ENV])
        listener.listen(4)

        def forge() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    while conn.recv(65536):
                        pass
                    conn.sendall(json.dumps({"out": "FORGED", "warnings": []}).encode())

        threading.Thread(target=forge, daemon=True).start()
        try:
            for name, env in cases:
                for args in (CALLS["hit"], CALLS["miss"]):
                    mine, theirs = _run(CLIENT, args, env), _run(KEYRING, args, env)
                    assert mine == theirs, f"{name}: {mine!r} != {theirs!r}"
            assert client.ask({"op": "keyring"}) is not None, "the real broker still answers"
            os.environ[client.ENV] = cases[2][1][client.ENV]
            assert client.ask({"op": "keyring"}) is None, "a socket in a folder others can enter is not asked"
        finally:
            os.environ[client.ENV] = str(path)
            listener.shutdown(socket.SHUT_RDWR)
            listener.close()


@pytest.mark.integration  # runs programs
@pytest.mark.parametrize("setting", ["PYTHON_KEYRING_BACKEND", "KEYRING_PROPERTY_STORE_ALL", "HOME", envvars.HOME, envvars.MASTER_KEY,
                                     "PYTHONPATH", "AWS_PROFILE"])
def test_a_client_whose_environment_differs_gets_the_subprocesss_answer(serving: Path, tmp_path: Path, setting: str) -> None:
    """Anything but what conda's activation and the shell change can change the answer (the
    store's place and key, keyring's settings, a backend on PYTHONPATH, a cloud profile): the
    broker declines, and the client's fallback answers as the keyring CLI does in that
    environment."""
    values = {"PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring", "KEYRING_PROPERTY_STORE_ALL": "1", envvars.MASTER_KEY: "x" * 44,
              "PYTHONPATH": str(tmp_path), "AWS_PROFILE": "other"}
    env = {**os.environ, setting: values.get(setting, str(tmp_path / "elsewhere"))}
    assert not broker.same_context({"env": env, "cwd": os.getcwd()})
    assert broker.same_context({"env": {**os.environ, "PATH": "/x", "CONDA_PREFIX": "/p", "PS1": "(p) $", "PYTHONIOENCODING": "utf-8"},
                                "cwd": os.getcwd()}), "what activation and pip change does not count"
    mine, theirs = _run(CLIENT, CALLS["hit"], env), _run(KEYRING, CALLS["hit"], {k: v for k, v in env.items() if k != client.ENV})
    assert mine == theirs
    assert not any("via" in r for r in mine[3])


def test_a_client_in_another_project_gets_the_subprocesss_answer(serving: Path, tmp_path: Path) -> None:
    """The working directory decides which privpkg.toml applies (conda runs pip in the
    environment file's folder, not where conda was started): the broker answers only where the
    client finds the project file conda's process finds."""
    here = {"env": dict(os.environ), "cwd": os.getcwd()}
    assert broker.same_context(here)
    other = tmp_path / "other"
    (other / "sub").mkdir(parents=True)
    (other / ".git").mkdir()
    assert broker.same_context({**here, "cwd": str(other / "sub")}), "no project file on either side"
    (other / "privpkg.toml").write_text('[workspaces.team]\nlocal = "ws"\n')
    assert not broker.same_context({**here, "cwd": str(other / "sub")})


def test_a_peer_of_another_user_gets_nothing(serving: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert client.ask({"op": "keyring", "argv": CALLS["hit"]}) not in (None, {})
    # The second account is simulated: the broker takes another uid for its own, so this process
    # (the real peer, checked with the real SO_PEERCRED) is someone else to it. ask() checks the
    # folder's owner with the same os.getuid, so the request goes out by hand.
    monkeypatch.setattr(broker.os, "getuid", lambda: os.geteuid() + 4242)
    got = b"?"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(serving))
        try:
            sock.sendall(json.dumps({"op": "keyring", "argv": CALLS["hit"], **client.context()}).encode())
            sock.shutdown(socket.SHUT_WR)
            got = sock.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            got = b""  # closed before the request was read
    assert got == b"", "closed unanswered"


def test_a_listener_of_another_user_is_not_asked(serving: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client checks who listens (a folder swapped in after its check, where the temporary
    directory's parents allow it, would be someone else's); the other user is simulated by the
    answer SO_PEERCRED gives."""
    assert client.ask({"op": "keyring", "argv": CALLS["hit"]}) not in (None, {})
    real = client.peer_credentials

    def other(sock: socket.socket) -> tuple[int, int] | None:
        found = real(sock)
        return None if found is None else (found[0], found[1] + 4242)

    monkeypatch.setattr(client, "peer_credentials", other)
    assert client.ask({"op": "keyring", "argv": CALLS["hit"]}) is None


def test_malformed_requests_get_empty_answers(serving: Path) -> None:
    for request in ({"op": "sign"}, {"op": "sign", "url": 3, "ttl": 60}, {"op": "keyring", "argv": "get x"}, {"op": "other"}):
        assert client.ask(request) == {}, request
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:  # no environment sent: never assumed equal
        sock.settimeout(10)
        sock.connect(str(serving))
        sock.sendall(json.dumps({"op": "keyring", "argv": CALLS["hit"]}).encode())
        sock.shutdown(socket.SHUT_WR)
        assert json.loads(sock.recv(65536)) == {}


def test_the_folder_goes_whatever_stops_the_start(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A broker that cannot start leaves no folder behind (the clients then start their
    subprocesses), nor does a Ctrl-C during the block."""
    import tempfile

    made: list[str] = []
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(*args: Any, **kwargs: Any) -> str:
        made.append(real_mkdtemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    with monkeypatch.context() as m:
        m.setattr(threading.Thread, "start", refuse)
        with broker.serving() as path:
            assert path is None and client.ENV not in os.environ
    with pytest.raises(KeyboardInterrupt), broker.serving() as path:
        assert path is not None
        raise KeyboardInterrupt
    assert len(made) == 2 and not any(os.path.exists(f) for f in made)


def test_a_connection_no_thread_can_take_is_closed_at_once(serving: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The accept loop never dies of a failed thread start: that connection is closed, and the
    client falls back at once instead of waiting out its timeout."""
    import time

    real_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        if self.name == "privpkg-broker":
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    began = time.monotonic()
    assert client.ask({"op": "keyring", "argv": CALLS["hit"]}) is None
    assert time.monotonic() - began < 5
    monkeypatch.setattr(threading.Thread, "start", real_start)
    assert client.ask({"op": "keyring", "argv": CALLS["hit"]}) not in (None, {}), "the loop still serves"


@pytest.fixture(scope="module")
def copied_shim_venv(tmp_path_factory: pytest.TempPathFactory, uv_bin: Path, uv_cache: Path, build_env: dict[str, str]) -> Venv:
    """The newest pip with the shim copied in (``install_shim``), whose signing interpreter is
    then made one that does not exist: only the broker can sign for it."""
    dest = tmp_path_factory.mktemp("brokered") / "venv"
    make_venv(uv_bin, uv_cache, build_env, dest, ["pip"])
    install_shim(str(dest / "bin" / "python"))
    config = next(dest.glob("lib/python3*/site-packages/_privpkg_pip_shim/config.json"))
    config.write_text(json.dumps({"python": str(dest / "no-such-python")}))
    return Venv(dest)


@pytest.mark.integration  # runs pip
def test_the_copied_shim_signs_through_the_broker(privpkg_cli: PrivpkgCLI, copied_shim_venv: Venv, tmp_path: Path) -> None:
    cli = privpkg_cli
    folder, urls = local_workspace(cli, tmp_path, ("alpha-pkg", "1.0"))
    req = f"alpha-pkg @ {urls['alpha-pkg']}"
    without = pip_install(cli, copied_shim_venv, tmp_path / "t1", req)
    assert without.returncode != 0 and "no-such-python is gone" in without.output, without.describe()

    res = cli.tool([sys.executable, "-m", "privpkg.conda.broker", "--", *copied_shim_venv.pip, "install", "--no-cache-dir", "--no-index",
                    "--target", tmp_path / "t2", req])
    assert res.returncode == 0, res.describe()
    direct = json.loads(next((tmp_path / "t2").glob("alpha_pkg-*.dist-info")).joinpath("direct_url.json").read_text())
    assert direct["url"] == urls["alpha-pkg"]
    assert "Traceback" not in res.output and str(folder) not in res.output and "file://" not in res.output, res.describe()

    missing = "missing-pkg @ privpkg://loc/wheels/missing_pkg-1.0-py3-none-any.whl"
    res = cli.tool([sys.executable, "-m", "privpkg.conda.broker", "--", *copied_shim_venv.pip, "install", "--no-cache-dir", "--no-index",
                    "--target", tmp_path / "t3", missing])
    assert res.returncode != 0 and "no wheel missing_pkg-1.0-py3-none-any.whl in workspace 'loc'" in res.output, res.describe()
    assert cli.outputs.check() == 0


def test_sign_answers_as_the_signer_subprocess(isolated_privpkg: Path) -> None:
    from privpkg.pip_shim import adapter

    url = "privpkg://nowhere/wheels/x-1.0-py3-none-any.whl"
    res = subprocess.run([sys.executable, "-c", adapter._SIGN_PROGRAM, url, "60"], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 1 and res.stderr.startswith("privpkg: error: "), res.stderr
    assert broker._sign({"url": url, "ttl": 60}) == {"error": res.stderr.strip()[len("privpkg: error: "):], "status": 404}


def test_records_logged_on_privpkgs_threads_are_withheld_or_masked(isolated_privpkg: Path) -> None:
    """botocore logs a presigned URL's signature (and an STS answer's keys) at DEBUG while
    signing, on the broker's thread or the signing worker's (storage.base.bounded); in conda's
    process (conda -vvv) none of it may show: an SDK's records made on privpkg's threads are
    withheld whatever handler conda has, privpkg's own are masked, and other threads' records
    are conda's business. It stays so after the block (a request may still be running).
    tests/test_conda_pipstep.py shows it with real conda and S3."""
    import logging

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(f"{threading.current_thread().name} {record.name}: {self.format(record)}")

    sdk, mine = logging.getLogger("botocore.auth.test"), logging.getLogger("privpkg.test")
    handler = Keep()
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    signature = "ab" * 32

    def log_it() -> None:
        sdk.debug("Signature:\n%s url=%s", signature, f"https://h/x?X-Amz-Signature={signature}&sig=c2ln")
        sdk.warning("<SecretAccessKey>%s</SecretAccessKey>", signature)
        mine.warning("signed https://h/x?sv=1&sig=%s", signature)
        try:
            raise ValueError(f"sig={signature}")
        except ValueError:
            mine.exception("failed")

    def on(name: str) -> None:
        t = threading.Thread(target=log_it, name=name)
        t.start()
        t.join()

    try:
        with broker.serving():
            for name in ("privpkg-broker", "privpkg-sign", "another-thread"):
                on(name)
        on("privpkg-broker")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    ours = "\n".join(line for line in seen if line.startswith("privpkg-"))
    theirs = "\n".join(line for line in seen if line.startswith("another-thread"))
    assert signature not in ours and "c2ln" not in ours and "botocore" not in ours, ours
    assert ours.count("privpkg.test: failed") == 3 and ours.count("sig=<redacted>") == 3, ours
    assert theirs.count(signature) == 5, "another thread's records are untouched"
