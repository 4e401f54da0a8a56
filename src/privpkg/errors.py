"""The exceptions privpkg raises for things a user can fix. Their message is one line and never
holds a secret; the CLI prints it as ``privpkg: error: MESSAGE`` and exits with ``exit_code``."""

from __future__ import annotations


class PrivpkgError(Exception):
    """A failure the user can act on. ``str(exc)`` is a single line."""

    exit_code = 1


class UsageError(PrivpkgError, ValueError):
    """Bad input: a malformed URL, an invalid name or secret, a bad option combination."""

    exit_code = 2


class NotFoundError(PrivpkgError, LookupError):
    """An unknown connection or other named object."""

    exit_code = 1


class StoreError(PrivpkgError):
    """The encrypted store cannot be read or written; it is left untouched."""

    exit_code = 1
