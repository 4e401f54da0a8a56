"""``privpkg resolve``: print a short-lived signed URL for a ``privpkg://`` URL, or write a pip
constraints file of signed URLs for a requirements file (for uv and other tools without the
pip shim)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from privpkg.cli.output import out
from privpkg.errors import UsageError


def _ttl(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None


def cmd_resolve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from privpkg.resolve import check_ttl, resolve_requirements, resolve_url

    check_ttl(args.ttl)
    if args.requirement:
        if args.url or not args.output:
            raise UsageError("use: privpkg resolve -r requirements.txt -o constraints.txt")
        n = resolve_requirements(Path(args.requirement), Path(args.output), args.ttl)
        sys.stderr.write(f"wrote {n} signed constraint(s) to {args.output} (mode 0600, valid {args.ttl} s)\n")
        return 0
    if not args.url:
        raise UsageError("give a URL, or -r requirements.txt -o constraints.txt")
    out(resolve_url(args.url, args.ttl))
    return 0


def add_parser(sub: Any) -> None:
    """Add ``resolve`` to the top-level subparsers ``sub``."""
    s = sub.add_parser("resolve", help="print a short-lived signed URL, or write signed constraints",
                       description="Sign a privpkg:// URL (or a blob URL in an Azure workspace): an Azure SAS, an S3 presigned "
                       "GET or a file URL. With -r/-o, write a pip constraints file (mode 0600) with `name @ <signed URL>` "
                       "for every such requirement, following nested -r/-c, for uv and other tools.")
    s.add_argument("url", nargs="?")
    s.add_argument("--ttl", type=_ttl, default=600, help="seconds the signature is valid (default 600, max 604800)")
    s.add_argument("-r", "--requirement", metavar="FILE", help="requirements file to read")
    s.add_argument("-o", "--output", metavar="FILE", help="constraints file to write")
    s.set_defaults(func=cmd_resolve)
