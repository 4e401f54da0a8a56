"""``privpkg doctor``: print the checks :mod:`privpkg.doctor` returns, one line each (or a JSON
list with ``--json``); exit 1 if any failed."""

from __future__ import annotations

import argparse
from typing import Any

from privpkg.cli.output import add_json_option, out, print_json
from privpkg.errors import UsageError

_LABEL = {"ok": "ok", "warn": "warn", "fail": "FAIL"}


def cmd_doctor(args: argparse.Namespace) -> int:
    if args.last is not None:
        return _last(args.last, args.json)
    from privpkg.conda.doctor import conda_checks
    from privpkg.conda.envs import doctor_checks as conda_shim_checks
    from privpkg.doctor import confusion_checks, run_checks, url_to_check

    if args.days < 0:
        raise UsageError(f"--days takes a number of days (0 or more), got {args.days}")
    url = None if args.url is None else url_to_check(args.url)
    checks = (run_checks(url=url, days=args.days, pip=args.pip) + conda_checks(url) + conda_shim_checks()
              + confusion_checks(args.requirement, args.env_file))
    failed = any(c.status == "fail" for c in checks)
    if args.json:
        print_json([c.as_json() for c in checks])
    else:
        for c in checks:
            out(f"{_LABEL[c.status]:<4}  {'  ' if c.sub else ''}{c.detail}")
        out("FAIL  some checks failed" if failed else "ok    all checks passed")
    return 1 if failed else 0


def _last(n: int, as_json: bool) -> int:
    """``doctor --last N``: the last N keyring lookups from the lookup log, newest last."""
    from privpkg import lookuplog

    if n < 1:
        raise UsageError(f"--last takes a number of lookups (1 or more), got {n}")
    recs = lookuplog.read_last(n)
    if as_json:
        print_json([{**r, **dict(zip(("outcome", "hint"), lookuplog.explain(r), strict=True))} for r in recs])
        return 0
    if not recs:
        out(f"no keyring lookup recorded yet in {lookuplog.log_path()}")
    for r in recs:
        for line in lookuplog.format_record(r):
            out(line)
    return 0


def add_parser(sub: Any) -> None:
    """Add ``doctor`` to the top-level subparsers ``sub``."""
    s = sub.add_parser("doctor", help="explain how credentials reach pip and what is wrong",
                       description="Check the store, the key, keyring's backend choice, connection expiry, and the pip that "
                       "will run: its version, its keyring-provider and whether the keyring it uses reaches privpkg; conda: whether privpkg's plugin is "
                       "registered in the conda that would run, and what condarc routes to it. Exit 1 if a check fails.")
    s.add_argument("--url", help="also show which keyring backend answers this URL, and why (and which connection answers it for "
                   "conda); HOST[:PORT] alone checks pip's bare-host lookup, HOST/PATH means https://HOST/PATH")
    s.add_argument("--pip", metavar="PATH", help="the pip to check (a pip executable or a Python interpreter whose -m pip you run; default: pip on PATH)")
    s.add_argument("--days", type=int, default=14, help="warn about connections expiring within DAYS (default 14)")
    s.add_argument("--last", type=int, nargs="?", const=10, metavar="N",
                   help="show only the last N keyring lookups (default 10), newest last: what was asked, "
                   "which connection answered or why none did")
    s.add_argument("-r", "--requirement", action="append", metavar="FILE",
                   help="look for private feeds used through --extra-index-url in this requirements file (and the files it "
                   "includes); repeatable. Default: requirements.txt in the current directory, if any")
    # -f/--file: env create's and conda env create's spelling of the same file.
    s.add_argument("-f", "--file", "--env-file", dest="env_file", action="append", metavar="FILE",
                   help="the same for a conda environment.yml's pip: section; repeatable. Default: environment.yml or "
                   "environment.yaml in the current directory, if any")
    add_json_option(s)
    s.set_defaults(func=cmd_doctor)
