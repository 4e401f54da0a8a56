"""Connections: a named target (feed, blob container, S3 bucket) with the secret that unlocks it,
where they come from, and the lookup that picks one for a URL.

- :mod:`~privpkg.connections.model`: :class:`Connection` and the validators of its fields;
- :mod:`~privpkg.connections.sources`: the environment variables and the encrypted store, in the
  precedence order written once in ``SOURCES``;
- :mod:`~privpkg.connections.lookup`: :class:`CredentialLookup`, which connection answers a URL
  or a bare ``host[:port]`` (longest path-segment prefix; bare hosts only for ``host_wide``);
- :mod:`~privpkg.connections.store`: set/update/list/get/delete, ``keyring set``/``del`` of a
  URL and the keyring backend's generic secrets, each under the store lock; the store's state
  for ``doctor``. The only module that reads or writes the store's document.

The Python API mirrors azureml's ``Workspace`` connection verbs::

    import privpkg
    privpkg.set_connection("myfeed", "PythonFeed", "https://pkgs.dev.azure.com/org/",
                           "PAT", value=pat)
    privpkg.list_connections(category="PythonFeed")   # -> [Connection(...)], never a string
    privpkg.get_connection("myfeed").target           # 'https://pkgs.dev.azure.com/org/'
    privpkg.delete_connection("myfeed")
"""

from typing import TYPE_CHECKING

from privpkg.connections.lookup import CredentialLookup
from privpkg.connections.model import (
    AUTH_TYPES,
    CATEGORIES,
    DEFAULT_USERNAME,
    HTTP_AUTH_CATEGORIES,
    MAX_NAME,
    MAX_SECRET,
    MAX_USERNAME,
    STORE,
    Connection,
    validate_auth_for,
    validate_auth_type,
    validate_category,
    validate_connection_name,
    validate_endpoint,
    validate_expires,
    validate_flag,
    validate_secret,
    validate_target,
    validate_username,
)
from privpkg.connections.sources import SOURCES

if TYPE_CHECKING:
    from privpkg.connections.store import (
        Changes,
        StoreStatus,
        check_update,
        delete_connection,
        delete_for_url,
        delete_secret,
        get_connection,
        get_secret,
        list_connections,
        login_name,
        login_target,
        overlaps,
        set_connection,
        set_secret,
        shared_targets,
        store_status,
        store_warnings,
        update_connection,
        upsert_for_url,
    )

__all__ = [
    "AUTH_TYPES",
    "CATEGORIES",
    "DEFAULT_USERNAME",
    "HTTP_AUTH_CATEGORIES",
    "MAX_NAME",
    "MAX_SECRET",
    "MAX_USERNAME",
    "SOURCES",
    "STORE",
    "Changes",
    "Connection",
    "CredentialLookup",
    "StoreStatus",
    "check_update",
    "delete_connection",
    "delete_for_url",
    "delete_secret",
    "get_connection",
    "get_secret",
    "list_connections",
    "login_name",
    "login_target",
    "overlaps",
    "set_connection",
    "set_secret",
    "shared_targets",
    "store_status",
    "store_warnings",
    "update_connection",
    "upsert_for_url",
    "validate_auth_for",
    "validate_auth_type",
    "validate_category",
    "validate_connection_name",
    "validate_endpoint",
    "validate_expires",
    "validate_flag",
    "validate_secret",
    "validate_target",
    "validate_username",
]

_STORE_API = frozenset(
    {"Changes", "StoreStatus", "check_update", "delete_connection", "delete_for_url", "delete_secret",
     "get_connection", "get_secret", "list_connections", "login_name", "login_target", "overlaps",
     "set_connection", "set_secret", "shared_targets", "store_status", "store_warnings", "update_connection", "upsert_for_url"}
)


def __getattr__(name: str) -> object:
    # The store API loads on first use: the keyring backend, started for every pip and uv
    # call, needs only the lookup.
    if name in _STORE_API:
        from privpkg.connections import store

        return getattr(store, name)
    raise AttributeError(f"module 'privpkg.connections' has no attribute {name!r}")
