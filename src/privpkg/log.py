"""privpkg's logger: the one-line messages privpkg prints while running inside another program.

privpkg's code runs inside programs that own the output: pip (the keyring backend under pip's
``import`` provider, the pip shim), keyring's command line, any program that calls keyring. Its
messages there are records on ``logging.getLogger("privpkg")``, so the host's logging settings
decide which ones appear:

- pip: a line shows exactly when pip would show its own line of that level (pip's root level
  and its console handlers' levels): ``-q`` hides INFO, ``-qq`` warnings too (unless ``--log
  FILE``, with which pip's console keeps its warnings). pip's ``subprocess`` keyring provider
  runs keyring's command line as a child that inherits pip's stderr: there pip's flags do not
  reach privpkg;
- nobody configured logging (keyring's command line, a script, privpkg's own CLI): INFO and up
  are shown, as privpkg always printed them.

A line looks the same everywhere: ``privpkg: warning: MESSAGE`` (``privpkg: error: MESSAGE``,
``privpkg: MESSAGE`` for INFO) on the current ``sys.stderr``. For that the logger gets one handler
of its own and does not propagate: pip's formatter would print ``WARNING: privpkg: warning: ...``
and a host's root handlers would print the line a second time. A host that wants the records
itself puts its own handler on the ``privpkg`` logger before privpkg logs; privpkg then adds none.

The pip shim keeps a stdlib-only copy of :class:`LineHandler` (it is copied into environments
that have no privpkg); between them they install one handler at most.
"""

from __future__ import annotations

import logging
import sys
import threading

NAME = "privpkg"
_INSTALL = threading.Lock()


class LineHandler(logging.Handler):
    """Writes a privpkg record as one ``privpkg: ...`` line to the current ``sys.stderr`` when the
    host's settings would show a record of its level (see the module docstring). Never raises:
    a message must not break pip or keyring, and a closed stderr only loses the line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= host_threshold() and super().filter(record)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            kind = "error: " if record.levelno >= logging.ERROR else "warning: " if record.levelno >= logging.WARNING else ""
            stream = sys.stderr
            stream.write(f"privpkg: {kind}{record.getMessage()}\n")
            stream.flush()
        except Exception:  # noqa: BLE001, S110 - no or closed stderr; never "--- Logging error ---"
            pass


def host_threshold() -> int:
    """The lowest level the program privpkg runs in shows on its console: INFO when nobody
    configured logging (no handler on the root logger), else the root logger's level, raised to
    the lowest level of its console (non-file) handlers, as pip's ``-q``/``-v`` set them."""
    root = logging.getLogger()
    if not root.handlers:
        return logging.INFO
    consoles = [h.level for h in root.handlers if not isinstance(h, logging.FileHandler)]
    return max(root.level, min(consoles)) if consoles else root.level


def logger() -> logging.Logger:
    """``logging.getLogger("privpkg")``, with privpkg's :class:`LineHandler` unless a host (or
    the pip shim's copy) already put a handler on it."""
    log = logging.getLogger(NAME)
    if not log.handlers:
        with _INSTALL:
            if not log.handlers:
                # privpkg's least important line is INFO; the handler decides what shows.
                if log.level == logging.NOTSET:
                    log.setLevel(logging.INFO)
                log.propagate = False
                log.addHandler(LineHandler())
    return log


def info(message: str) -> None:
    logger().info("%s", message)


def warning(message: str) -> None:
    logger().warning("%s", message)


def error(message: str) -> None:
    logger().error("%s", message)
