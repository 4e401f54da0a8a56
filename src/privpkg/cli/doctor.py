"""``privpkg doctor``: print the checks :mod:`privpkg.doctor` returns, one line each (or a JSON
list with ``--json``); exit 1 if any failed."""

from __future__ import annotations

import argparse
from typing import Any

from privpkg.cli.output import add_json_option, out, print_json

_LABEL = {"ok": "ok", "warn": "warn", "fail": "FAIL"}


def cmd_doctor(args: argparse.Namespace) -> int:
    from privpkg.doctor import run_checks

    checks = run_checks(url=args.url, days=args.days, pip=args.pip)
    failed = any(c.status == "fail" for c in checks)
    if args.json:
        print_json([c.as_json() for c in checks])
    else:
        for c in checks:
            out(f"{_LABEL[c.status]:<4}  {'  ' if c.sub else ''}{c.detail}")
        out("FAIL  some checks failed" if failed else "ok    all checks passed")
    return 1 if failed else 0


def add_parser(sub: Any) -> None:
    """Add ``doctor`` to the top-level subparsers ``sub``."""
    s = sub.add_parser("doctor", help="explain how credentials reach pip and what is wrong",
                       description="Check the store, the key, keyring's backend choice, connection expiry, and the pip that "
                       "will run: its version, its keyring-provider and whether the keyring it uses reaches privpkg. Exit 1 if a check fails.")
    s.add_argument("--url", help="also show which keyring backend answers this URL, and why")
    s.add_argument("--pip", metavar="PATH", help="the pip to check (a pip executable or a Python interpreter whose -m pip you run; default: pip on PATH)")
    s.add_argument("--days", type=int, default=14, help="warn about connections expiring within DAYS (default 14)")
    add_json_option(s)
    s.set_defaults(func=cmd_doctor)
