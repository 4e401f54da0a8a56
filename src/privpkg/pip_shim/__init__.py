"""The pip shim's start-up half: a meta-path finder that waits for pip.

A ``.pth`` line runs :func:`install_finder` at every interpreter start, so this module must
stay tiny: it imports nothing and only puts a finder on ``sys.meta_path``. The finder does
nothing until something imports ``pip._internal.network.session``; then it lets that module
load and hands it to :mod:`.adapter`, which teaches pip's session the ``privpkg://`` scheme.
Programs that never import pip never load anything else.

This package uses only relative imports, so ``privpkg setup pip --python PATH`` can copy it
into another environment as ``_privpkg_pip_shim``.
"""

_TARGET = "pip._internal.network.session"


class _Finder:
    def find_spec(self, fullname, path=None, target=None):  # type: ignore[no-untyped-def]
        if fullname != _TARGET:
            return None
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


def install_finder() -> None:
    import sys

    if not any(type(f).__name__ == "_Finder" and type(f).__module__ == __name__ for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
