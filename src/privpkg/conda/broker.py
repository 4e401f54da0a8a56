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

Trust: the socket lives in a fresh folder made by :func:`tempfile.mkdtemp` (random name, 0700)
and exists only while the pip step runs; each connection's peer must run as this user
(``SO_PEERCRED``; where the platform lacks it, no broker starts). A lookup is answered only when
the client's keyring-related variables equal conda's (they decide, for keyring's CLI, whether
privpkg's backend answers first). Requests and answers are single JSON documents; nothing is
logged but the lookup record the launcher would have written, naming ``keyring`` and the process
that ran it.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from privpkg.pip_shim.broker import ENV, KEYRING_VARIABLES, read_document

#: The longest AF_UNIX path Linux takes (108 bytes with the terminating NUL).
_MAX_SOCKET_PATH = 107
#: The name of the broker's threads (their log records are masked, see _masked_records).
_THREAD = "privpkg-broker"


def _folder_base() -> str | None:
    """Where the socket's folder is made: the temporary folder, or ``/tmp`` when that path is too
    long for a socket; None when neither fits."""
    import tempfile

    for base in (tempfile.gettempdir(), "/tmp"):  # mkdtemp makes a random 0700 folder there
        if len(base) + 40 < _MAX_SOCKET_PATH and os.path.isdir(base):
            return base
    return None


def _peer(conn: socket.socket) -> tuple[int, int] | None:
    """(pid, uid) of the connected peer, or None where the platform cannot say."""
    so = getattr(socket, "SO_PEERCRED", None)
    if so is None:
        return None
    try:
        pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, so, struct.calcsize("3i")))
    except OSError:
        return None
    return pid, uid


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


def _same_keyring_environment(theirs: Any) -> bool:
    ours = {k: v for k, v in os.environ.items() if k in KEYRING_VARIABLES or k.startswith("KEYRING_PROPERTY_")}
    return isinstance(theirs, dict) and theirs == ours


def _keyring(request: dict[str, Any], pid: int) -> dict[str, Any]:
    """What :mod:`privpkg.conda.keyringcli` prints for a hit, as an answer; ``{}`` (the client
    then runs keyringcli itself, which hands over to keyring's CLI) for everything else."""
    from privpkg.conda import keyringcli
    from privpkg.lookuplog import program_of

    argv = request.get("argv")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        return {}
    call = keyringcli.parse(argv)
    if call is None or not _same_keyring_environment(request.get("env")) or not keyringcli.privpkg_answers_first():
        return {}
    warnings: list[str] = []
    out = keyringcli.lookup(*call, warn=warnings.append, program=program_of(pid, "keyring"))
    return {} if out is None else {"out": out, "warnings": warnings}


def _handle(conn: socket.socket) -> None:
    with conn:
        try:
            peer = _peer(conn)
            if peer is None or peer[1] != os.getuid():
                return  # not this user's: closed unanswered
            conn.settimeout(10)
            request = read_document(conn)
            if request is None:
                return
            op = request.get("op")
            answer = _sign(request) if op == "sign" else _keyring(request, peer[0]) if op == "keyring" else {}
            conn.settimeout(None)
            conn.sendall(json.dumps(answer).encode("utf-8"))
        except Exception:  # noqa: BLE001, S110 - the client falls back to its subprocess
            pass


def _serve(listener: socket.socket) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return  # closed by serving()'s exit
        threading.Thread(target=_handle, args=(conn,), name=_THREAD, daemon=True).start()


@contextmanager
def _masked_records() -> Iterator[None]:
    """Log records made on the broker's threads get their signatures masked and lose their
    tracebacks: botocore logs a presigned URL's signature at DEBUG while signing, and in conda's
    process (``conda -vvv``) that would print, where the signer subprocess's stderr never
    showed. A record factory sees every record whichever handler conda adds later."""
    import logging

    from privpkg.pip_shim.adapter import redact_signatures

    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if threading.current_thread().name.startswith(_THREAD):
            try:
                text = record.getMessage()
            except Exception:  # noqa: BLE001 - a malformed record: its bare message, masked
                text = str(record.msg)
            record.msg, record.args = redact_signatures(text), None
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return record

    logging.setLogRecordFactory(factory)
    try:
        yield
    finally:
        if logging.getLogRecordFactory() is factory:
            logging.setLogRecordFactory(previous)


@contextmanager
def serving(environ: dict[str, str] | None = None) -> Iterator[Path | None]:
    """Serve for the duration of the block, with ``PRIVPKG_BROKER`` set in ``environ`` (default
    ``os.environ``, which conda's pip step inherits) and restored after. Yields the socket's
    path, or None where no broker can run (no ``SO_PEERCRED``, no short enough folder, any
    error): the clients then start their subprocesses as before."""
    import shutil
    import tempfile

    env = os.environ if environ is None else environ
    base = _folder_base() if hasattr(socket, "SO_PEERCRED") and hasattr(socket, "AF_UNIX") else None
    folder = listener = None
    try:
        if base is not None:
            folder = Path(tempfile.mkdtemp(prefix="privpkg-broker-", dir=base))
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(str(folder / "s"))
            listener.listen(16)
            threading.Thread(target=_serve, args=(listener,), name=f"{_THREAD}-accept", daemon=True).start()
    except OSError:
        if listener is not None:
            listener.close()
        listener = None
    previous = env.get(ENV)
    if listener is not None and folder is not None:
        env[ENV] = str(folder / "s")
    else:
        env.pop(ENV, None)
    try:
        with _masked_records():
            yield None if listener is None or folder is None else folder / "s"
    finally:
        if previous is None:
            env.pop(ENV, None)
        else:
            env[ENV] = previous
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
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
