"""``privpkg resolve``: print a short-lived signed URL for a ``privpkg://`` URL; for a
requirements file, download its private wheels into a wheelhouse and write a copy pinned to them
(``--wheelhouse``, for uv and other tools without the pip shim), or write a pip constraints file
of signed URLs (``-o`` alone)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from privpkg.cli.output import counted, out
from privpkg.errors import UsageError


def _ttl(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None


def cmd_resolve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from privpkg.resolve import check_ttl, merged, resolve_requirements, resolve_url

    check_ttl(args.ttl)
    files = [Path(f) for f in args.requirement or ()]
    named = ", ".join(map(str, files))
    if files and args.output:
        out_path = Path(args.output)
        for f in files:  # checked here: with several files, what follows sees only the merged one
            if out_path.absolute() == f.absolute() or (out_path.exists() and f.exists() and out_path.samefile(f)):
                what = "the pinned copy" if args.wheelhouse is not None else "the constraints"
                raise UsageError(f"-o {out_path} is the requirements file itself; write {what} elsewhere")
    if args.wheelhouse is not None:
        if args.url or not files or not args.output:
            raise UsageError("use: privpkg resolve -r requirements.txt --wheelhouse DIR -o pinned.txt")
        from privpkg.wheelhouse import build

        with merged(files) as top:
            done = build(top, Path(args.wheelhouse), Path(args.output), args.ttl)
        if done.pinned == 0:
            copy = "a copy of it" if len(files) == 1 else "-r lines including them, in order"
            sys.stderr.write(f"note: {named} {'names' if len(files) == 1 else 'name'} no privpkg:// wheel; {args.output} is {copy}\n")
        else:
            sys.stderr.write(f"pinned {counted(done.pinned, 'wheel')} to {args.wheelhouse} ({done.downloaded} downloaded, "
                             f"{done.pinned - done.downloaded} already there, sha256 checked) in {args.output}\n")
        return 0
    if files:
        if args.url or not args.output:
            raise UsageError("use: privpkg resolve -r requirements.txt --wheelhouse DIR -o pinned.txt (or -o constraints.txt alone)")
        with merged(files) as top:
            written = resolve_requirements(top, Path(args.output), args.ttl)
        sys.stderr.write(f"wrote {counted(written.lines, 'signed constraint')} to {args.output} (mode 0600, {written.validity(args.ttl)})\n")
        return 0
    if not args.url:
        raise UsageError("give a URL, or -r requirements.txt --wheelhouse DIR -o pinned.txt")
    out(resolve_url(args.url, args.ttl, for_output=True))
    return 0


def add_parser(sub: Any) -> None:
    """Add ``resolve`` to the top-level subparsers ``sub``."""
    s = sub.add_parser("resolve", help="print a short-lived signed URL, or pin a requirements file's private wheels to local files",
                       description="Sign a privpkg:// URL (or a blob URL in an Azure workspace): an Azure SAS, an S3 presigned "
                       "GET or a file URL. With -r, --wheelhouse and -o: download every such wheel of a requirements file "
                       "(nested -r/-c followed) into DIR, check it against the sha256 its workspace recorded, and write the "
                       "requirements pinned to `name @ file:///DIR/F.whl#sha256=...` (for uv and other tools without the "
                       "pip shim). With -r and -o alone: write a pip constraints file (mode 0600) of `name @ <signed URL>`.")
    s.add_argument("url", nargs="?", metavar="URL", help="a privpkg:// URL (privpkg://WORKSPACE/wheels/FILE, as wheel add prints) "
                   "or a blob URL of an Azure workspace, to sign")
    s.add_argument("--ttl", type=_ttl, default=600, help="seconds the signature is valid (default 600, max 604800)")
    s.add_argument("-r", "--requirement", metavar="FILE", action="append",
                   help="requirements file to read (repeatable: read in order, as pip reads repeated -r)")
    s.add_argument("--wheelhouse", metavar="DIR", help="download the private wheels here and pin them to these files")
    s.add_argument("-o", "--output", metavar="FILE", help="file to write: the pinned requirements (with --wheelhouse) or signed constraints")
    s.set_defaults(func=cmd_resolve)
