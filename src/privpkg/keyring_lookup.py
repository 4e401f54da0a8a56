"""The keyring backend's lookup rules, without keyring: what a ``get`` for a service answers,
why (the lookup log's reason), and the warnings it prints.

:class:`privpkg.keyring_backend.PrivpkgKeyring` answers through :func:`answer` and
:func:`record`, and so does the conda pip step's fast ``keyring`` launcher
(:mod:`privpkg.conda.keyringcli`), which must not import keyring (keyring's start-up is most of
a ``keyring get``'s time): one set of rules for both. This module imports only the standard
library at import time; the store is read when a lookup needs it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any


class _Snapshot:
    """One decrypted :class:`~privpkg.connections.CredentialLookup`, reused while ``inputs``
    (the store file's inode/mtime/size stamp, the lookup's environment variables and the store
    path) are unchanged. A plain slotted class: a NamedTuple would import more at start-up."""

    __slots__ = ("inputs", "lookup")

    def __init__(self, inputs: tuple[Any, ...], lookup: Any) -> None:
        self.inputs, self.lookup = inputs, lookup


_SNAPSHOT: _Snapshot | None = None


def warn(msg: str) -> None:
    # Through the "privpkg" logger (imported here: keyring imports the backend at every start-up):
    # inside pip, pip's -q/-qq decide whether the line shows; see privpkg.log.
    from privpkg import log

    log.warning(msg)


def record(
    service: str, username: str | None, api: str, reason: str, conn: Any = None, detail: str | None = None, errors: Any = (),
    asker: Any = None,
) -> None:
    """One line in the lookup log (:mod:`privpkg.lookuplog`), which never raises; guarded once
    more because a getter must never raise."""
    try:
        from privpkg import lookuplog

        lookuplog.record(service, username, api=api, reason=reason, conn=conn, detail=detail, errors=errors, asker=asker)
    except Exception:  # noqa: BLE001, S110 - pip disables keyring after one exception
        pass


def answer(service: str, username: str | None, errors: list[str], warn: Callable[[str], None] = warn) -> tuple[Any, str | None, str | None]:
    """(Connection or None, the reason to record or None for a service that is not ours to
    log, a detail); the lookup's warnings are appended to ``errors`` (pip 26.2+ swallows
    stderr, so the log is where they reach someone) and printed through ``warn``. Never raises."""
    if not service:
        return None, None, None
    try:
        # Imported here: keyring imports the backend at every start-up, a lookup is rarer.
        from privpkg import envvars, lookuplog, paths, urls
        from privpkg.errors import PrivpkgError, UsageError

        try:
            # Reject what is not a URL or host before opening the store.
            urls.normalize(service) if "://" in service else urls.normalize_netloc(service)
        except UsageError:
            return None, None, None  # not a URL or host we could ever serve: not ours to log
        env = tuple(os.environ.get(v) for v in envvars.LOOKUP_INPUTS)
        store = str(paths.store_path())
        try:
            st = os.stat(store)
            stamp: tuple[Any, ...] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp is None and not any(os.environ.get(v) for v in (envvars.CONNECTIONS, *envvars.AZURE_ENDPOINTS)):
            # No store and no environment source: skip importing the matcher at all.
            return None, lookuplog.NO_CONNECTIONS, None
        from privpkg.connections import CredentialLookup

        try:
            global _SNAPSHOT
            # pip asks twice per 401 in one process (import provider): reuse the decrypted
            # snapshot while neither the store file nor the environment changed.
            inputs = (stamp, env, store)
            if _SNAPSHOT is not None and _SNAPSHOT.inputs == inputs:
                lookup = _SNAPSHOT.lookup
            else:
                lookup = CredentialLookup()
                for err in lookup.errors:
                    warn(err)
                _SNAPSHOT = _Snapshot(inputs, lookup)
            errors.extend(lookup.errors)  # every lookup's record, a reused snapshot's too
            conn, reason = lookup.explain(service, username)
        except UsageError:
            return None, None, None  # not a URL or host we could ever serve
        except PrivpkgError as exc:
            warn(f"lookup skipped: {exc}")
            return None, lookuplog.STORE_UNREADABLE, str(exc)
        if conn is not None and conn.auth_type != "PAT":
            # A Bearer or ApiKey connection (CondaChannel) is sent only by privpkg's conda auth
            # handler: keyring's callers send a username and password as HTTP Basic, which a
            # token server refuses, so serving it would only put the token on the wire for nothing.
            return None, lookuplog.BEARER_ONLY, conn.name
        if conn is not None and conn.expired:
            # Still served: the feed decides whether the PAT still works (Azure DevOps PATs
            # often outlive the date typed in); the warning and the log say it expired.
            # An environment connection cannot be updated by `connection set`: its variable can.
            fix = (f"in ${conn.source[4:]} (its secret and \"expires\")" if conn.source.startswith("env:")
                   else f"with: privpkg connection set {conn.name} --update")
            warn(f"connection {conn.name!r} expired on {conn.expires}; renew it {fix}")
        return conn, reason, None
    except Exception as exc:  # noqa: BLE001 - pip disables keyring after one exception
        warn(f"lookup failed: {type(exc).__name__}")
        return None, "error", type(exc).__name__
