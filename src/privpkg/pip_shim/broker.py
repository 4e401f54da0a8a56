"""The client half of the conda pip step's broker (the server is :mod:`privpkg.conda.broker`).

While conda's pip step runs, conda's own process (base's interpreter, where privpkg lives)
answers on a Unix socket, named by ``PRIVPKG_BROKER``, the two questions the pip step would
otherwise start privpkg's interpreter for: the pip shim's "sign this ``privpkg://`` URL" and the
keyring launcher's "credentials for this index URL". :func:`ask` is the whole protocol: one JSON
request (carrying the asking process's environment and working directory, which the broker must
share for its answer to be the subprocess's), one JSON answer, then the connection closes.

Nothing here is trusted more than the subprocess it replaces: :func:`ask` returns None (the
caller then starts privpkg's interpreter as before) when the variable is unset, when the socket's
folder is not a private (0700) folder of this user's, when the process listening is not this
user's (``SO_PEERCRED``), when nothing listens, or on any error or malformed answer. The broker
in turn serves only peers running as its own user.

Run as a script (``python -I -S broker.py ARGS``: the keyring launcher does so while a broker is
up), it is pip's ``keyring`` command: the broker's answer, else privpkg's keyring command
(:mod:`privpkg.conda.keyringcli`) with the same arguments. This file is also copied into other
environments with the pip shim, so it uses only the standard library and Python 3.7 syntax.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
import sys

ENV = "PRIVPKG_BROKER"
#: A request or an answer larger than this is not the other side's.
MAX_ANSWER = 1 << 20
#: Signing waits at most for the store's lock (30 s) and pip's timeout: the subprocess it
#: replaces had 120 s.
TIMEOUT = 120.0
#: A lookup reads the store only (at most the store lock's 30 s).
LOOKUP_TIMEOUT = 40.0


def _private_folder(path: str) -> bool:
    try:
        st = os.lstat(os.path.dirname(path))
    except (OSError, ValueError):
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not stat.S_IMODE(st.st_mode) & 0o077


def peer_credentials(sock: socket.socket) -> tuple[int, int] | None:
    """(pid, uid) of the process at the other end of a connected AF_UNIX socket, or None where
    the platform cannot say (no broker is used there)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    try:
        pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    except OSError:
        return None
    return int(pid), int(uid)


def context() -> dict[str, object]:
    """What the answer depends on besides the request: this process's environment and working
    directory (the broker answers only when it shares them, see privpkg.conda.broker)."""
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = ""
    return {"env": dict(os.environ), "cwd": cwd}


def ask(request: dict[str, object], timeout: float | None = None) -> dict[str, object] | None:
    """The broker's answer (a dict) to ``request`` (a dict; :func:`context` is added), or None:
    no broker, not a private socket, not this user's, no answer in time, or anything
    malformed."""
    path = os.environ.get(ENV)
    if not path or not hasattr(socket, "AF_UNIX") or not hasattr(os, "getuid") or not _private_folder(path):
        return None
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout if timeout else TIMEOUT)
            sock.connect(path)
            # The folder was ours when looked at; the listener must be ours now (a folder
            # swapped in between, where the temporary directory's parents allow it, is not).
            peer = peer_credentials(sock)
            if peer is None or peer[1] != os.getuid():
                return None
            sock.sendall(json.dumps(dict(request, **context())).encode("utf-8"))
            sock.shutdown(socket.SHUT_WR)
            answer = read_document(sock)
        finally:
            sock.close()
    except OSError:
        return None
    return answer


def read_document(sock: socket.socket) -> dict[str, object] | None:
    """The JSON object the peer sends before it shuts its side, or None when it is larger
    than :data:`MAX_ANSWER` or not one (both sides read this way)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_ANSWER:
            return None
        chunks.append(chunk)
    try:
        document = json.loads(b"".join(chunks).decode("utf-8"))
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def keyring_main(argv: list[str]) -> int:
    """pip's ``keyring`` command: the broker's answer, printed as keyring's CLI prints it, or
    privpkg's keyring command with the same arguments (which hands anything it does not answer
    to keyring's CLI)."""
    answer = ask({"op": "keyring", "argv": list(argv)}, LOOKUP_TIMEOUT)
    out = answer.get("out") if answer is not None else None
    if isinstance(out, str):
        warnings = answer.get("warnings") if answer is not None else None
        # UTF-8 whatever the locale, as keyringcli writes it under pip's PYTHONIOENCODING=utf-8
        # (which -I ignores here).
        sys.stderr.flush()
        for line in warnings if isinstance(warnings, list) else []:
            sys.stderr.buffer.write(("privpkg: warning: " + str(line) + "\n").encode("utf-8", "replace"))
        sys.stderr.buffer.flush()
        sys.stdout.flush()
        sys.stdout.buffer.write((out + "\n").encode("utf-8", "replace"))
        sys.stdout.buffer.flush()
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-P", "-m", "privpkg.conda.keyringcli"] + list(argv))
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(keyring_main(sys.argv[1:]))
