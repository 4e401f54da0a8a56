"""The pip shim's start-up half: a meta-path finder that waits for pip.

The ``.pth`` line (:func:`pth_line`) runs at every interpreter start, so it defines a three-line
finder inline and imports no module at all: no file-system lookup happens at start-up. The
finder does nothing until something imports ``pip._internal.network.session``; then it calls
:func:`find`, which lets that module load and hands it to :mod:`.adapter`, which teaches pip's
session the ``privpkg://`` scheme. Programs that never import pip never load anything else.

This package uses only relative imports, so ``privpkg setup pip --python PATH`` can copy it
into another environment as ``_privpkg_pip_shim``.
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
            import sys

            sys.stderr.write(f"privpkg: pip shim not active: {type(exc).__name__}: {exc}\n")

    loader.exec_module = exec_and_patch
    return spec
