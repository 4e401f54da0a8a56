"""``privpkg demo``: a self-contained walk-through (a private feed, a stored PAT, a real pip
install), everything it starts cleaned up."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_demo(args: argparse.Namespace) -> int:
    from privpkg.demo import run_demo

    return run_demo(keep=args.keep)


def add_parser(sub: Any) -> None:
    """Add ``demo`` to the top-level subparsers ``sub``."""
    s = sub.add_parser("demo", help="run a self-contained demo: a private feed, a stored PAT, a real pip install",
                       description="Start a private PEP 503 feed on 127.0.0.1 that demands a PAT, store the PAT as a "
                       "connection in a throwaway store, and run a real pip install from it in a throwaway venv "
                       "with no credentials on the command line. Everything it starts is cleaned up.")
    s.add_argument("--keep", action="store_true", help="keep the temporary directory (it is printed)")
    s.set_defaults(func=cmd_demo)
