"""``privpkg env``: this module's actions are being written (issue 10, see :mod:`privpkg.cli.env`)."""

from __future__ import annotations

from typing import Any


def add_parsers(actions: Any) -> None:
    """Add this module's actions to ``privpkg env``'s subparsers (none yet)."""
