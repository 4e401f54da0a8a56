r"""The exceptions privpkg raises for things a user can fix. Their message is one line and never
holds a secret; the CLI prints it as ``privpkg: error: MESSAGE`` and exits with ``exit_code``.

A value quoted in such a line goes through :func:`shown`, so a control character in it (a
newline, an escape sequence) cannot break the line or forge another one::

    >>> shown("a\nb\x1b[31m")
    'a\\nb\\x1b[31m'
    >>> shown("x" * 12, limit=5)
    'xxxxx... (12 characters)'

:data:`CONTROL` is the one set of characters privpkg calls control characters, for messages and
for the inputs that refuse them.
"""

from __future__ import annotations

import re

#: C0 controls, DEL and C1 controls: what no name, URL, path or message line may hold.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown(value: object, limit: int | None = None) -> str:
    r"""``value`` fit for a one-line message: control characters escaped as Python writes them
    (``\n``, ``\x1b``), and, with ``limit``, cut after that many characters."""
    text = str(value)
    clean = CONTROL.sub(lambda m: repr(m.group(0))[1:-1], text)
    if limit is None or len(clean) <= limit:
        return clean
    return f"{clean[:limit]}... ({len(text)} characters)"


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
