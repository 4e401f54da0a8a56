"""The conda pip step's broker: for as long as conda's pip subprocess runs, conda's own process
answers the pip shim's signing requests and the keyring launcher's lookups on a Unix socket.

Without it, a pip step whose section names a PAT feed and a ``privpkg://`` wheel starts base's
interpreter twice (the keyring launcher's :mod:`privpkg.conda.keyringcli`, about 50 ms, and the
shim's signer, about 40 ms): conda's process already runs privpkg, so :func:`serving` answers
both from there, with the very functions those subprocesses call (:func:`privpkg.resolve.resolve_url`,
:func:`privpkg.conda.keyringcli.lookup`). The clients are :mod:`privpkg.pip_shim.broker`: the
shim asks it from inside pip, and the launcher runs it as ``python -I -S`` (no site, no
privpkg import) while ``PRIVPKG_BROKER`` is set; every client falls back to its subprocess when
the broker does not answer, so the broker only saves time, never changes an answer.

Same answers: what privpkg answers depends on the asking process's environment (the store's
location and key, connection variables, keyring settings, cloud credential chains, proxies...)
and on its working directory (a project's ``privpkg.toml``). Each request carries both, and the
broker answers only when the environment equals conda's but for the names conda's activation and
the shell change (:data:`IGNORED`) and the working directory finds the same project file;
otherwise the client starts its subprocess, as without a broker.

Trust: the socket lives in a fresh folder made by :func:`tempfile.mkdtemp` (random name, 0700)
inside ``$XDG_RUNTIME_DIR`` or the temporary directory, only where that one cannot be swapped
by another user (ours, or sticky, or writable by nobody else), and exists only while the pip
step runs. Each connection's peer must run as this user (``SO_PEERCRED``; where the platform
lacks it, no broker starts), and the client checks the listener the same way. Log records made
on privpkg's threads in conda's process (the broker's, and the signing worker's) are withheld
when an SDK made them (botocore logs signatures and STS answers at DEBUG, which ``conda -vvv``
would print) and masked when privpkg did; the subprocess's stderr never showed either. Lookups
are recorded in the lookup log as the launcher records them, with the asking process's pid and
``"via": "broker"``.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from privpkg.pip_shim.broker import ENV, peer_credentials, read_document

#: The longest AF_UNIX path Linux takes (108 bytes with the terminating NUL).
_MAX_SOCKET_PATH = 107
#: The prefix of the names of privpkg's threads (their log records: see _install_record_filter).
_THREAD = "privpkg-"
#: Variables whose values may differ between conda's process and the pip step's without the
#: answer changing: what conda's activation and bash set, what pip sets for itself
#: (PIP_BUILD_TRACKER, PIP_REQ_TRACKER before pip 22, PIP_EXISTS_ACTION from conda's
#: ``--exists-action``; PYTHONIOENCODING for its keyring subprocess), and the broker's own name. PATH is among them (the new environment's bin comes
#: first in the pip step's): privpkg finds nothing on PATH while signing or looking up, but an
#: ambient credential helper (``az``, an AWS ``credential_process``) may be found elsewhere.
IGNORED = frozenset({"PATH", "PS1", "SHLVL", "PWD", "OLDPWD", "_", "PYTHONIOENCODING", "PIP_BUILD_TRACKER", "PIP_REQ_TRACKER",
                     "PIP_EXISTS_ACTION", ENV})
IGNORED_PREFIXES = ("CONDA_", "_CONDA_", "_CE_")
_FILTER_INSTALLED = False


def _relevant(env: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in env.items() if k not in IGNORED and not k.startswith(IGNORED_PREFIXES)}


def same_context(request: dict[str, Any]) -> bool:
    """Whether the asking process's environment and working directory (sent with ``request``)
    give the answers conda's process gives (see the module docstring)."""
    env, cwd = request.get("env"), request.get("cwd")
    if not isinstance(env, dict) or not isinstance(cwd, str) or not cwd:
        return False
    if _relevant(env) != _relevant(dict(os.environ)):
        return False
    from privpkg.workspace import find_project_file

    return find_project_file(Path(cwd)) == find_project_file()


def _safe_base(base: str) -> bool:
    """A folder another user cannot replace the socket's folder in: ours, or not writable by
    others, or sticky (as /tmp)."""
    try:
        st = os.stat(base)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return False
    return st.st_uid == os.getuid() or not st.st_mode & 0o022 or bool(st.st_mode & stat.S_ISVTX)


def _folder_base() -> str | None:
    """Where the socket's folder is made: ``$XDG_RUNTIME_DIR`` (the user's own), else the
    temporary folder, else ``/tmp``, the first that is safe and short enough for a socket."""
    import tempfile

    for base in (os.environ.get("XDG_RUNTIME_DIR") or "", tempfile.gettempdir(), "/tmp"):  # mkdtemp makes a random 0700 folder there
        if base and len(base) + 40 < _MAX_SOCKET_PATH and _safe_base(base):
            return base
    return None


def _sign(request: dict[str, Any]) -> dict[str, Any]:
    """What the shim's signer subprocess (``adapter._SIGN_PROGRAM``) prints, as an answer."""
    from privpkg.errors import NotFoundError, PrivpkgError
    from privpkg.resolve import resolve_url

    url, ttl, timeout = request.get("url"), request.get("ttl"), request.get("timeout")
    if not isinstance(url, str) or not isinstance(ttl, int) or not (timeout is None or isinstance(timeout, int | float)):
        return {}
    try:
        return {"url": resolve_url(url, ttl, check=bool(request.get("check")), timeout=timeout)}
    except NotFoundError as exc:
        return {"error": str(exc), "status": 404}
    except PrivpkgError as exc:
        return {"error": str(exc), "status": 403}
    except Exception as exc:  # noqa: BLE001 - as the subprocess: one line, never a traceback
        return {"error": f"cannot sign this URL: {type(exc).__name__}", "status": 403}


def _keyring(request: dict[str, Any], pid: int) -> dict[str, Any]:
    """What :mod:`privpkg.conda.keyringcli` prints for a hit, as an answer; ``{}`` (the client
    then runs keyringcli itself, which hands over to keyring's CLI) for everything else."""
    from privpkg.conda import keyringcli
    from privpkg.lookuplog import program_of

    argv = request.get("argv")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        return {}
    call = keyringcli.parse(argv)
    if call is None or not keyringcli.privpkg_answers_first():
        return {}
    warnings: list[str] = []
    out = keyringcli.lookup(*call, warn=warnings.append, asker=program_of(pid, "keyring"))
    return {} if out is None else {"out": out, "warnings": warnings}


def _handle(conn: socket.socket) -> None:
    with conn:
        try:
            peer = peer_credentials(conn)
            if peer is None or peer[1] != os.getuid():
                return  # not this user's: closed unanswered
            conn.settimeout(10)
            request = read_document(conn)
            if request is None:
                return
            op = request.get("op")
            answer: dict[str, Any] = {}
            if op in ("sign", "keyring") and same_context(request):
                answer = _sign(request) if op == "sign" else _keyring(request, peer[0])
            conn.settimeout(None)
            conn.sendall(json.dumps(answer).encode("utf-8"))
        except Exception:  # noqa: BLE001, S110 - the client falls back to its subprocess
            pass


class _Server:
    def __init__(self, listener: socket.socket, path: Path) -> None:
        self.listener, self.path = listener, path
        self.handlers: list[threading.Thread] = []

    def serve(self) -> None:
        try:
            while True:
                try:
                    conn, _ = self.listener.accept()
                except OSError:
                    return  # closed by serving()'s exit
                try:
                    t = threading.Thread(target=_handle, args=(conn,), name=f"{_THREAD}broker", daemon=True)
                    t.start()
                    self.handlers = [h for h in self.handlers if h.is_alive()] + [t]
                except Exception:  # noqa: BLE001 - no thread: this one connection is closed unanswered
                    conn.close()
        finally:
            # However the loop ends, nothing may sit in the backlog waiting for an answer:
            # clients then fall back at once instead of after their timeout.
            self.close()

    def close(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()


def _install_record_filter() -> None:
    """Once per process: log records made on privpkg's threads are withheld (an SDK's: their
    level is set below every handler's) or have their signatures masked (privpkg's own, which
    never log a secret). The filter stays: it touches no other thread's records, and a request
    still running when the pip step ends must not log unmasked."""
    global _FILTER_INSTALLED
    if _FILTER_INSTALLED:
        return
    import logging

    from privpkg.pip_shim.adapter import redact_signatures

    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if threading.current_thread().name.startswith(_THREAD):
            if record.name == "privpkg" or record.name.startswith("privpkg."):
                try:
                    text = record.getMessage()
                except Exception:  # noqa: BLE001 - a malformed record: its bare message, masked
                    text = str(record.msg)
                record.msg, record.args = redact_signatures(text), None
            else:
                # Below NOTSET: Logger.callHandlers emits a record only to handlers whose level
                # it reaches, and every handler's level is at least 0.
                record.levelno, record.msg, record.args = -1, "", None
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return record

    logging.setLogRecordFactory(factory)
    _FILTER_INSTALLED = True


@contextmanager
def serving(environ: dict[str, str] | None = None) -> Iterator[Path | None]:
    """Serve for the duration of the block, with ``PRIVPKG_BROKER`` set in ``environ`` (default
    ``os.environ``, which conda's pip step inherits) and restored after. Yields the socket's
    path, or None where no broker can run (no ``SO_PEERCRED``, no safe folder short enough, any
    error): the clients then start their subprocesses as before. The folder goes with the block
    however it ends (an exception, Ctrl-C)."""
    import shutil
    import tempfile

    env = os.environ if environ is None else environ
    previous = env.get(ENV)
    folder: Path | None = None
    server: _Server | None = None
    try:
        base = _folder_base() if hasattr(socket, "SO_PEERCRED") and hasattr(socket, "AF_UNIX") else None
        if base is not None:
            try:
                folder = Path(tempfile.mkdtemp(prefix="privpkg-broker-", dir=base))
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    listener.bind(str(folder / "s"))
                    listener.listen(16)
                except BaseException:
                    listener.close()
                    raise
                _install_record_filter()
                server = _Server(listener, folder / "s")
                threading.Thread(target=server.serve, name=f"{_THREAD}broker-accept", daemon=True).start()
            except Exception:  # noqa: BLE001 - no broker: the clients start their subprocesses
                if server is not None:
                    server.close()
                server = None
        if server is not None:
            env[ENV] = str(server.path)
        else:
            env.pop(ENV, None)
        yield None if server is None else server.path
    finally:
        if previous is None:
            env.pop(ENV, None)
        else:
            env[ENV] = previous
        if server is not None:
            server.close()
            for t in server.handlers:
                t.join(timeout=1.0)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    """``python -m privpkg.conda.broker -- CMD...``: run CMD with a broker up (for tests and
    benchmarks of the clients without conda)."""
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        sys.stderr.write("usage: python -m privpkg.conda.broker -- CMD [ARGS...]\n")
        return 2
    import subprocess

    with serving():
        return subprocess.call(argv)


if __name__ == "__main__":
    sys.exit(main())
