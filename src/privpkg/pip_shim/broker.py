"""The client half of the conda pip step's broker (the server is :mod:`privpkg.conda.broker`).

While conda's pip step runs, conda's own process (base's interpreter, where privpkg lives)
answers on a Unix socket, named by ``PRIVPKG_BROKER``, the two questions the pip step would
otherwise start privpkg's interpreter for: the pip shim's "sign this ``privpkg://`` URL" and the
keyring launcher's "credentials for this index URL". :func:`ask` is the whole protocol: one JSON
request line, one JSON answer, then the connection closes.

Nothing here is trusted more than the subprocess it replaces: :func:`ask` returns None (the
caller then starts privpkg's interpreter as before) when the variable is unset, when the socket's
folder is not a private (0700) folder of this user's, when nothing listens, or on any error or
malformed answer. The broker in turn serves only peers running as its own user.

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
import sys

ENV = "PRIVPKG_BROKER"
#: An answer larger than this is not the broker's.
MAX_ANSWER = 1 << 20
#: Signing waits at most for the store's lock (30 s) and pip's timeout: the subprocess it
#: replaces had 120 s.
TIMEOUT = 120.0
#: What keyring's CLI and privpkg's backend read from the environment: the broker answers only
#: when its own values are the same (conda's activation of the new environment could set them).
KEYRING_VARIABLES = ("PYTHON_KEYRING_BACKEND", "XDG_CONFIG_HOME", "HOME")


def _private_folder(path: str) -> bool:
    try:
        st = os.lstat(os.path.dirname(path))
    except (OSError, ValueError):
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not stat.S_IMODE(st.st_mode) & 0o077


def ask(request: dict[str, object], timeout: float | None = None) -> dict[str, object] | None:
    """The broker's answer (a dict) to ``request`` (a dict), or None: no broker, not a private
    socket, no answer in time, or anything malformed."""
    path = os.environ.get(ENV)
    if not path or not hasattr(socket, "AF_UNIX") or not hasattr(os, "getuid") or not _private_folder(path):
        return None
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout if timeout else TIMEOUT)
            sock.connect(path)
            sock.sendall(json.dumps(request).encode("utf-8") + b"\n")
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


def keyring_environment() -> dict[str, str]:
    """The variables the broker compares before it answers a lookup for this process."""
    return {k: v for k, v in os.environ.items() if k in KEYRING_VARIABLES or k.startswith("KEYRING_PROPERTY_")}


def keyring_main(argv: list[str]) -> int:
    """pip's ``keyring`` command: the broker's answer, printed as keyring's CLI prints it, or
    privpkg's keyring command with the same arguments (which hands anything it does not answer
    to keyring's CLI)."""
    answer = ask({"op": "keyring", "argv": list(argv), "env": keyring_environment()})
    out = answer.get("out") if answer is not None else None
    if isinstance(out, str):
        warnings = answer.get("warnings") if answer is not None else None
        for line in warnings if isinstance(warnings, list) else []:
            sys.stderr.write("privpkg: warning: " + str(line) + "\n")
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-P", "-m", "privpkg.conda.keyringcli"] + list(argv))
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(keyring_main(sys.argv[1:]))
