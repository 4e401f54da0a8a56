"""The keyring backend that serves privpkg connections to pip, uv and anything else using keyring.

Installed through the ``keyring.backends`` entry point, so once privpkg is in the environment::

    $ keyring set https://pkgs.dev.azure.com/org/ me      # PAT read from stdin or a prompt
    $ keyring --mode=creds --output=json get https://pkgs.dev.azure.com/org/_packaging/f/pypi/simple/
    {"username": "me", "password": "..."}
    $ keyring get pkgs.dev.azure.com me                    # pip's bare host:port lookup

URL services (``http://`` and ``https://``) are answered from the connections (longest
path-segment prefix wins, see :mod:`privpkg.connections`); a bare ``host[:port]`` service only by
connections that opted in with ``--host-wide`` (it carries no scheme and no path).

Other programs' entries stay theirs: set/delete of a URL service is handled only when the user
asked for it, i.e. from keyring's own command line (``keyring set URL USER``, the ``keyring``
script or ``python -m keyring``: keyring's ``CommandLineTool`` is on the call stack). A program
calling ``keyring.set_password(URL, ...)`` as a library, and any non-URL service, gets
NotImplementedError, so keyring falls through to the next backend; unless
``KEYRING_PROPERTY_STORE_ALL=1`` makes this backend keep every service in its store.

The getters never raise: pip turns keyring off for the whole run after one exception, so an
error is logged as one line on stderr and the lookup answers None. Messages go through the
``privpkg`` logger (:mod:`privpkg.log`), so inside pip its verbosity decides which ones show.

This module is imported by every keyring start-up; it imports nothing beyond keyring's own base
class until a lookup needs it.
"""

from __future__ import annotations

import sys
from typing import Any

from keyring.backend import KeyringBackend
from keyring.compat import properties
from keyring.errors import PasswordDeleteError, PasswordSetError

_TRUE = {"1", "true", "yes", "on"}
_NOT_OURS = (
    "privpkg stores http(s) URL services only from `keyring set` on the command line or "
    "`privpkg connection set` (or every service with KEYRING_PROPERTY_STORE_ALL=1)"
)


def _is_url(service: str) -> bool:
    head = service[:8].lower()
    return head.startswith(("http://", "https://"))


def _log(msg: str) -> None:
    # Through the "privpkg" logger (imported here: keyring imports this module at every start-up):
    # inside pip, pip's -q/-qq decide whether the line shows; see privpkg.log.
    from privpkg import log

    log.info(msg)


def _warn(msg: str) -> None:
    from privpkg.keyring_lookup import warn

    warn(msg)


def _from_keyring_cli() -> bool:
    """True when keyring's command line (``CommandLineTool.do_set``/``do_del``) is on the call
    stack: the ``keyring`` script and ``python -m keyring`` both run it; a library call does
    not. Read from keyring 25's keyring/cli.py."""
    cli = sys.modules.get("keyring.cli")
    tool = getattr(cli, "CommandLineTool", None)
    if tool is None:
        return False
    frame = sys._getframe(1)
    while frame is not None:
        if (
            frame.f_code.co_name in ("do_set", "do_del")
            and frame.f_globals.get("__name__") == "keyring.cli"
            and isinstance(frame.f_locals.get("self"), tool)
        ):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _record(
    service: str, username: str | None, api: str, reason: str, conn: Any = None, detail: str | None = None, errors: Any = ()
) -> None:
    from privpkg.keyring_lookup import record

    record(service, username, api, reason, conn, detail, errors)


def _only_backend(backend: KeyringBackend) -> bool:
    """True when keyring uses ``backend`` alone (no chain): a NotImplementedError from it then
    falls through to nothing, and keyring's CLI would print it as a traceback."""
    core = sys.modules.get("keyring.core")
    return core is not None and getattr(core, "_keyring_backend", None) is backend


def _not_ours(backend: KeyringBackend, service: str, verb: str, example: str) -> Exception:
    """The error for a service privpkg does not keep: NotImplementedError, so keyring's chain
    asks its next backend; from keyring's CLI with privpkg as the only backend, one line instead."""
    if _from_keyring_cli() and _only_backend(backend):
        from privpkg.errors import shown

        return _refuse(NotImplementedError, (
            f"privpkg {verb} http(s) URL services only, and {shown(service, limit=80)!r} is not one: name the feed's URL, "
            f"e.g. `{example}` (KEYRING_PROPERTY_STORE_ALL=1 keeps any service)"))
    return NotImplementedError(_NOT_OURS)


def _refuse(exc_type: type[Exception], msg: str) -> Exception:
    """The error for a refused set/delete. The keyring CLI prints a traceback for any backend
    error, so when we run inside it we print one line and exit 2 instead."""
    if _from_keyring_cli():
        from privpkg import log

        log.error(msg)
        raise SystemExit(2)
    return exc_type(msg)


def _import_lazy_modules_before_pip_installs() -> None:
    """Inside pip (keyring-provider ``import``), name importlib_metadata's deferred imports in
    ``pip._EAGER_IMPORTS``, pip's hook for exactly this. keyring loads the importlib_metadata
    backport before Python 3.12, and the backport then answers pip's own metadata queries with
    lazy bindings (``_adapters``...) that resolve on first use; pip 26.3 blocks every import once
    installing starts, so an uninstall with no conflict check before it (``--force-reinstall --no-deps``)
    failed with
    "Blocked import of 'importlib_metadata._adapters'". Outside pip this does nothing."""
    eager = getattr(sys.modules.get("pip"), "_EAGER_IMPORTS", None)
    lazy = getattr(sys.modules.get("importlib_metadata"), "__lazy_modules__", None)
    if isinstance(eager, set) and isinstance(lazy, (set, frozenset)):
        eager.update(name for name in lazy if isinstance(name, str))


_import_lazy_modules_before_pip_installs()


class PrivpkgKeyring(KeyringBackend):
    """Serves privpkg connections; see the module docstring for usage."""

    #: Set by ``KEYRING_PROPERTY_STORE_ALL=1`` (keyring applies it when the backend is made).
    store_all: Any = False

    @properties.classproperty
    def priority(cls) -> float:
        # Above artifacts-keyring / keyrings.codeartifact (9.9) and Google's backend (9): a PAT
        # the user stored on purpose should win over an ambient or interactive provider, and
        # since we answer None for URLs we hold nothing for, those providers still serve theirs.
        # Below ChainerBackend (10), so with other backends present keyring chains them.
        return 9.95

    def _store_all(self) -> bool:
        return str(self.store_all).strip().lower() in _TRUE

    def _lookup(self, service: str, username: str | None, api: str) -> Any:
        """The matching Connection, or None; the lookup log gets the answer and why. Never raises."""
        errors: list[str] = []
        conn, reason, detail = self._answer(service, username, errors)
        if reason is not None:
            _record(service, username, api, reason, conn, detail, errors)
        return conn

    def _answer(self, service: str, username: str | None, errors: list[str]) -> tuple[Any, str | None, str | None]:
        """(Connection or None, the reason to record or None for a service that is not ours to
        log, a detail): :func:`privpkg.keyring_lookup.answer`, whose rules the conda pip step's
        fast launcher shares. Never raises."""
        from privpkg.keyring_lookup import answer

        return answer(service, username, errors)

    def _generic_get(self, service: str, username: str | None, api: str) -> tuple[str, str] | None:
        if not self._store_all():
            return None
        try:
            from privpkg.connections import get_secret

            hit = get_secret(service, username)
            if hit is not None:
                _record(service, username, api, "generic")
            return hit
        except Exception as exc:  # noqa: BLE001 - a getter never raises: pip disables keyring after one exception
            _warn(f"lookup skipped: {exc}")
            return None

    def get_password(self, service: str, username: str) -> str | None:
        hit = self._generic_get(service, username, "password")
        if hit is not None:
            return hit[1]
        conn = self._lookup(service, username, "password")
        return None if conn is None else conn.secret

    def get_credential(self, service: str, username: str | None) -> Any:
        from keyring.credentials import SimpleCredential

        hit = self._generic_get(service, username, "creds")
        if hit is not None:
            return SimpleCredential(*hit)
        conn = self._lookup(service, username, "creds")
        return None if conn is None else SimpleCredential(conn.username, conn.secret)

    def set_password(self, service: str, username: str, password: str) -> None:
        from privpkg.errors import PrivpkgError

        try:
            if _is_url(service) and (self._store_all() or _from_keyring_cli()):
                from privpkg.connections import upsert_for_url

                conn = upsert_for_url(service, username, password)
                _log(f"stored connection {conn.name!r} for {conn.target}")
                return
            if not self._store_all():
                raise _not_ours(self, service, "stores", "keyring set https://pkgs.dev.azure.com/ORG/ USER")
            from privpkg.connections import set_secret

            set_secret(service, username, password)
        except PrivpkgError as exc:
            raise _refuse(PasswordSetError, str(exc)) from None

    def delete_password(self, service: str, username: str) -> None:
        from privpkg.errors import PrivpkgError

        try:
            if _is_url(service) and (self._store_all() or _from_keyring_cli()):
                from privpkg.connections import delete_for_url

                if not delete_for_url(service, username):
                    raise _refuse(PasswordDeleteError, f"no connection for {service} with username {username!r}")
                return
            if not self._store_all():
                raise _not_ours(self, service, "deletes", "keyring del https://pkgs.dev.azure.com/ORG/ USER")
            from privpkg.connections import delete_secret

            if not delete_secret(service, username):
                raise PasswordDeleteError("password not found")
        except PrivpkgError as exc:
            raise _refuse(PasswordDeleteError, str(exc)) from None
