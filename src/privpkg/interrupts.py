"""Signals: SIGTERM as an interrupt for the CLI, and signals passed on to a command privpkg
waits for (``privpkg env run``).

A CI runner cancels a job with SIGTERM, whose default action ends the process at once: no
``finally`` runs, so temp folders (``resolve``'s merged ``-r`` files), half-made builds and
lock files stayed behind. :func:`terminate_as_interrupt` makes SIGTERM raise
:class:`Terminated`, a ``KeyboardInterrupt``, so every cleanup Ctrl-C gets runs for it too.

:func:`wait_passing_signals` is how ``env run`` waits for its command, as today's ``uv run``
does: the command may take its time over a Ctrl-C. When privpkg is its terminal's foreground
job, the terminal sends each Ctrl-C (and Ctrl-\\) to the command's process group too, so privpkg
never sends it again: a second copy would reach a REPL as a second KeyboardInterrupt, and a
program that exits fast on its second Ctrl-C would do so on the first it got twice (uv's
issues 13429 and 13919; uv no longer passes on "the second one"). Otherwise (no terminal, a
background job, or a command that left privpkg's process group) SIGINT and SIGQUIT came from
``kill`` and are passed on. SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 are always passed on; and
privpkg exits with the command's code, 128+N when a signal N ended it, as a shell reports it.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess

# Only signal at import: every CLI start imports this module (a cache hit of env build is
# timed), and subprocess and threading cost it about 7 ms.


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so cleanups run as for Ctrl-C."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


class terminate_as_interrupt:  # a class, not @contextmanager: contextlib costs a CLI start 1 ms
    """SIGTERM raises :class:`Terminated` inside the block (main thread only; a SIGTERM that
    the parent set to be ignored stays ignored)."""

    def __enter__(self) -> None:
        self.installed = False
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            try:
                signal.signal(signal.SIGTERM, _raise_terminated)
                self.installed = True
            except ValueError:  # not the main thread: signals are the main thread's
                pass

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


#: Sent by a terminal to its whole foreground process group: passed on only when they cannot
#: have come from it (:func:`_terminal_sent_it`).
_TERMINAL = ("SIGINT", "SIGQUIT")
#: Sent to one process: always passed on.
_DIRECT = ("SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2")


def wait_passing_signals(argv: list[str], **popen: Any) -> int:
    """Run ``argv`` and wait for it, passing signals on (module docstring); its exit code, or
    128+N when signal N ended it."""
    import contextlib
    import os
    import subprocess
    import threading

    if threading.current_thread() is not threading.main_thread():
        return _code(subprocess.run(argv, check=False, **popen).returncode)
    child: list[subprocess.Popen[bytes]] = []
    pending: list[int] = []

    def send(signum: int) -> None:
        proc = child[0]
        if signal.Signals(signum).name in _TERMINAL:
            if not hasattr(os, "getpgid"):
                return  # Windows: the console sends Ctrl-C to every process attached to it (uv run ignores it too)
            with contextlib.suppress(OSError):
                if os.getpgid(proc.pid) == os.getpgrp() and _terminal_sent_it():
                    return  # the terminal sent it to the command too
        with contextlib.suppress(OSError):  # the command has ended already
            proc.send_signal(signum)

    def forward(signum: int, frame: FrameType | None) -> None:
        if child:
            send(signum)
        else:  # arrived before the command existed, so no terminal reached it: sent once it is
            pending.append(signum)

    # Installed before the command starts, so no signal is lost between; a handler does not
    # survive exec, so the command starts with each signal's default, as it would without
    # privpkg. One the parent set to be ignored (nohup's SIGHUP) is left ignored, for both.
    previous: dict[int, Any] = {}
    for name in _TERMINAL + _DIRECT:
        num = getattr(signal, name, None)
        if num is not None and signal.getsignal(num) is not signal.SIG_IGN:
            previous[num] = signal.signal(num, forward)
    try:
        child.append(subprocess.Popen(argv, **popen))
        for signum in pending:
            with contextlib.suppress(OSError):
                child[0].send_signal(signum)
        return _code(child[0].wait())  # waitpid is retried after each handler (PEP 475)
    finally:
        for num, handler in previous.items():
            signal.signal(num, handler)


def _terminal_sent_it() -> bool:
    """Whether privpkg is the foreground job of its controlling terminal, so that a SIGINT or
    SIGQUIT may be a key the terminal sent to the whole group (uv checks that stdin is a
    terminal; ``< FILE`` at a terminal would then double Ctrl-C)."""
    import os

    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:  # no controlling terminal: a SIGINT came from kill
        return False
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(fd)


def _code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode
