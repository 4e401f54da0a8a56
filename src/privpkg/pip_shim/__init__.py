"""The pip shim's start-up half: a meta-path finder that waits for pip.

The ``.pth`` line (:func:`pth_line`) runs at every interpreter start, so it defines a three-line
finder inline and imports no module at all: no file-system lookup happens at start-up. The
finder does nothing until something imports ``pip._internal.network.session``; then it calls
:func:`find`, which lets that module load and hands it to :mod:`.adapter`, which teaches pip's
session the ``privpkg://`` scheme. Programs that never import pip never load anything else.

This package uses only relative imports, so ``privpkg setup pip --python PATH`` can copy it
into another environment as ``_privpkg_pip_shim``. For the same reason it keeps its own copy of
:mod:`privpkg.log`'s handler (:func:`warn`): the shim's lines go through the ``privpkg`` logger,
so pip's ``-q``/``-qq`` decide whether they show, and look as privpkg's other lines do.
"""

TARGET = "pip._internal.network.session"


def pth_line(package: str = "privpkg.pip_shim") -> str:
    """The one line of the ``.pth`` file; ``package`` is where :func:`find` lives.

    The finder imports ``package`` only when pip's session module is imported. If that fails
    (privpkg removed by hand while its ``.pth`` stayed, an editable checkout moved away, a
    broken copy), the finder takes itself off ``sys.meta_path`` and pip imports as if the shim
    were not there: an orphaned ``.pth`` does nothing."""
    body = (
        "class PrivpkgPipShimFinder:\\n"
        " def find_spec(self, name, path=None, target=None):\\n"
        f"  if name != {TARGET!r}: return None\\n"
        "  try:\\n"
        f"   from {package} import find\\n"
        "   return find(name, path)\\n"
        "  except Exception:\\n"
        "   if self in sys.meta_path: sys.meta_path.remove(self)\\n"
        "   return None\\n"
        "if not any(type(f).__name__ == 'PrivpkgPipShimFinder' for f in sys.meta_path):\\n"
        " sys.meta_path.insert(0, PrivpkgPipShimFinder())"
    )
    return f'import sys; exec("{body}")\n'


def find(fullname, path=None):  # type: ignore[no-untyped-def]
    """The spec of pip's session module, with a loader that patches it right after it runs."""
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec(fullname, path)
    loader = getattr(spec, "loader", None)
    if spec is None or loader is None or not hasattr(loader, "exec_module"):
        return spec
    exec_module = loader.exec_module

    def exec_and_patch(module):  # type: ignore[no-untyped-def]
        exec_module(module)
        try:
            from .adapter import patch_session_module

            patch_session_module(module)
        except Exception as exc:  # noqa: BLE001 - never break pip itself
            warn(f"pip shim not active: {type(exc).__name__}: {exc}")

    loader.exec_module = exec_and_patch
    return spec



def warn(message):  # type: ignore[no-untyped-def]
    """``privpkg: warning: MESSAGE`` through the ``privpkg`` logger, as :func:`privpkg.log.warning`
    does: shown unless pip's verbosity (``-qq``) hides warnings."""
    import logging

    log = logging.getLogger("privpkg")
    if not log.handlers:  # privpkg.log's handler, a host's, or this one: one handler at most
        _add_line_handler(log)
    log.warning("%s", message)


def _add_line_handler(log):  # type: ignore[no-untyped-def]
    """A copy of :class:`privpkg.log.LineHandler` and its installation, kept in step with it
    (this package must not import privpkg: ``setup pip --python`` copies it without privpkg)."""
    import logging
    import sys

    class LineHandler(logging.Handler):
        def filter(self, record):  # type: ignore[no-untyped-def]
            root = logging.getLogger()
            threshold = logging.INFO
            if root.handlers:
                consoles = [h.level for h in root.handlers if not isinstance(h, logging.FileHandler)]
                threshold = max(root.level, min(consoles)) if consoles else root.level
            return record.levelno >= threshold and logging.Handler.filter(self, record)

        def emit(self, record):  # type: ignore[no-untyped-def]
            try:
                kind = "error: " if record.levelno >= logging.ERROR else "warning: " if record.levelno >= logging.WARNING else ""
                sys.stderr.write("privpkg: " + kind + record.getMessage() + "\n")
                sys.stderr.flush()
            except Exception:  # noqa: BLE001, S110 - no or closed stderr: never break pip
                pass

    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(LineHandler())
