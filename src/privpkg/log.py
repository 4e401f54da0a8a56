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


# --- the SDKs' records during privpkg's storage calls ----------------------------------------

#: The loggers of the storage SDKs and of the transport under them. At DEBUG (a user's program
#: with ``logging.basicConfig(level=logging.DEBUG)`` calling privpkg's API) they print what
#: privpkg's storage calls carry: urllib3 every request line, whose URL holds an AzureBlob
#: connection's SAS; botocore the SigV4 canonical request and signature (a presigned GET, rebuilt
#: whole), every request's headers (a session token) and response bodies (an STS answer's keys).
SDK_LOGGERS = ("azure", "botocore", "boto3", "s3transfer", "urllib3", "msal")
_SDK_CALL = threading.local()
#: privpkg's record factory while it is the one logging uses; None before the first storage call.
_FACTORY: object = None


def _from_sdk(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in SDK_LOGGERS)


def _install_sdk_factory() -> None:
    """Records made by :data:`SDK_LOGGERS` on a thread inside :func:`sdk_records_withheld` are
    dropped. A record factory, not a filter: a logger's filters never see its children's records,
    and the host's handlers are the host's. Other threads' records (the host's own SDK calls) are
    untouched. Installed again over whatever factory a host set since (one that does not chain to
    the factory it found would drop privpkg's)."""
    global _FACTORY
    with _INSTALL:
        previous = logging.getLogRecordFactory()
        if previous is _FACTORY:
            return

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if getattr(_SDK_CALL, "depth", 0) and _from_sdk(record.name):
                # Below NOTSET: Logger.callHandlers emits a record only to handlers whose level it
                # reaches (lastResort's included), and every handler's level is at least 0.
                record.levelno, record.msg, record.args = -1, "", None
                record.exc_info, record.exc_text, record.stack_info = None, None, None
            return record

        logging.setLogRecordFactory(factory)
        _FACTORY = factory


class sdk_records_withheld:
    """``with sdk_records_withheld(): client.call(...)``: what the storage SDKs log on this
    thread during the block never reaches a handler (see :data:`SDK_LOGGERS`). Nests."""

    def __enter__(self) -> None:
        if logging.getLogRecordFactory() is not _FACTORY:
            _install_sdk_factory()
        _SDK_CALL.depth = getattr(_SDK_CALL, "depth", 0) + 1

    def __exit__(self, *exc: object) -> None:
        _SDK_CALL.depth -= 1


def sdk_debug_enabled() -> bool:
    """Whether any SDK logger would pass a DEBUG record: the storage backends then upload on the
    calling thread, where :func:`sdk_records_withheld` reaches (the SDKs' upload threads are
    their own). Every SDK logger that exists is asked, not only the top ones: a program may set
    DEBUG on ``urllib3.connectionpool`` or ``botocore.endpoint`` alone, as the SDKs' docs show."""
    if any(logging.getLogger(name).isEnabledFor(logging.DEBUG) for name in SDK_LOGGERS):
        return True
    known = list(logging.Logger.manager.loggerDict.items())  # a copy: other threads add loggers
    return any(isinstance(log, logging.Logger) and _from_sdk(name) and log.isEnabledFor(logging.DEBUG) for name, log in known)
