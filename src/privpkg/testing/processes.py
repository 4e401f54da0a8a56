"""Free loopback ports and the servers tests start on them: one way to find a port, one
starter (:func:`start_server`: on a free port it is given, or on one it picks and prints), and
stopping that process by its PID.

Stdlib only, so the demo, the tests and the benchmarks share it without extra dependencies.
"""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    """A loopback port that was free a moment ago (a caller that binds later retries if another
    process took it meanwhile; :func:`start_server` does).

    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_accepts(port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on the loopback ``port`` now.

    >>> port_accepts(free_port())
    False
    """
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 5) -> None:
    """Stop one process we started, by its PID: SIGTERM, then SIGKILL; close its stdout pipe."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    if proc.stdout is not None:
        proc.stdout.close()


def _tail(path: Path, limit: int = 3000) -> str:
    return path.read_text(errors="replace")[-limit:] if path.exists() else ""


def start_server(
    argv: Callable[[int], Sequence[str]] | Sequence[str],
    log_path: Path,
    what: str,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 30,
    attempts: int = 3,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start a server process on a loopback port; return the process and the port. The one
    starter, with two ways to learn the port:

    - ``argv`` is a function of the port (``make_argv(port)``): the server is told a free port
      and is up once that port accepts connections. Its stdout and stderr are appended to
      ``log_path``. A server that exits first (e.g. another process took the port meanwhile) is
      tried again on a new port, ``attempts`` times in all.
    - ``argv`` is a command line: the server binds port 0 itself and prints the port as its
      first stdout line (as ``python -m privpkg.testing.feedserver`` does), so no other process
      can take the port between choosing and binding it. Its stderr goes to ``log_path``.

    A server that is not up within ``timeout`` seconds is stopped, and the error names ``what``
    and quotes the end of its log."""
    if callable(argv):
        return _start_on_free_port(argv, log_path, what, env=env, timeout=timeout, attempts=attempts)
    return _start_printing_port(argv, log_path, what, env=env, timeout=timeout)


def _start_on_free_port(
    make_argv: Callable[[int], Sequence[str]], log_path: Path, what: str, *, env: dict[str, str] | None, timeout: float, attempts: int
) -> tuple[subprocess.Popen[bytes], int]:
    failures: list[str] = []
    for _ in range(attempts):
        port = free_port()
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(list(make_argv(port)), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if port_accepts(port):
                return proc, port
            time.sleep(0.05)
        stop_process(proc)
        failures.append(f"port {port}: exit {proc.returncode}")
    raise RuntimeError(f"{what} did not start ({'; '.join(failures)}):\n{_tail(log_path)}")


def _start_printing_port(
    argv: Sequence[str], stderr_path: Path, what: str, *, env: dict[str, str] | None, timeout: float
) -> tuple[subprocess.Popen[bytes], int]:
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(list(argv), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    assert proc.stdout is not None
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or (proc.poll() is not None and not sel.select(0)):
                break
            if sel.select(left):
                chunk = os.read(proc.stdout.fileno(), 64)
                if not chunk:
                    break
                buf += chunk
    line = buf.split(b"\n", 1)[0].strip()
    if not line.isdigit():
        stop_process(proc)
        raise RuntimeError(f"{what} did not print its port (stdout {buf!r}, exit {proc.returncode}):\n{_tail(stderr_path)}")
    return proc, int(line)
