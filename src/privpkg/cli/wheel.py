"""``privpkg wheel``: publish wheels to a workspace, list and remove them, and print the stable
``privpkg://`` URLs that requirements files name."""

from __future__ import annotations

import argparse
from typing import Any

from privpkg.cli.output import Parser, add_json_option, add_workspace_option, need_subcommand, out, print_json, table


def cmd_wheel_add(args: argparse.Namespace) -> int:
    from pathlib import Path

    from privpkg.wheels import add_private_wheel
    from privpkg.workspace import get_workspace

    url = add_private_wheel(get_workspace(args.workspace), Path(args.file), exist_ok=args.exist_ok)
    out(url)
    return 0


def cmd_wheel_list(args: argparse.Namespace) -> int:
    from privpkg.refs import name_of
    from privpkg.wheels import list_wheels
    from privpkg.workspace import get_workspace

    ws = get_workspace(args.workspace)
    wheels = list_wheels(ws)
    if args.json:
        print_json([{"file": name_of(b.key), "url": ws.wheel_url(name_of(b.key)), "size": b.size, "sha256": b.sha256} for b in wheels])
        return 0
    if not wheels:
        out(f"no wheels in workspace {ws.name!r} (add one with: privpkg wheel add FILE --workspace {ws.name})")
        return 0
    rows = [["URL", "SIZE", "SHA256"]]
    rows += [[ws.wheel_url(name_of(b.key)), str(b.size), (b.sha256 or "-")[:16]] for b in wheels]
    table(rows)
    return 0


def cmd_wheel_remove(args: argparse.Namespace) -> int:
    from privpkg.wheels import remove_wheel
    from privpkg.workspace import get_workspace

    remove_wheel(get_workspace(args.workspace), args.file)
    out(f"removed {args.file} from workspace {args.workspace!r}")
    return 0


def cmd_wheel_url(args: argparse.Namespace) -> int:
    import os.path

    from privpkg.wheels import check_filename
    from privpkg.workspace import get_workspace

    filename = os.path.basename(args.file)
    check_filename(filename)
    out(get_workspace(args.workspace).wheel_url(filename))
    return 0


def add_parser(sub: Any) -> None:
    """Add ``wheel`` and its actions to the top-level subparsers ``sub``."""
    wh = sub.add_parser("wheel", help="publish and manage private wheels in a workspace",
                        description="Publish wheels to a workspace and get stable privpkg:// URLs for requirements files.")
    whsub = wh.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    wh.set_defaults(func=lambda a: need_subcommand(wh))
    s = whsub.add_parser("add", help="validate and upload a wheel; prints its privpkg:// URL",
                         description="Validate a wheel (PEP 427 name, zip, METADATA) and upload it. The privpkg:// URL is the "
                         "last line of stdout. Published wheels are immutable.")
    s.add_argument("file")
    add_workspace_option(s)
    s.add_argument("--exist-ok", action="store_true", help="succeed if the same wheel with the same content is already there")
    s.set_defaults(func=cmd_wheel_add)
    s = whsub.add_parser("list", help="list wheels in a workspace", description="List wheels in a workspace.")
    add_workspace_option(s)
    add_json_option(s)
    s.set_defaults(func=cmd_wheel_list)
    s = whsub.add_parser("remove", help="delete a wheel from a workspace", description="Delete a wheel (environments pinned to it will fail to install).")
    s.add_argument("file", help="the wheel file name")
    add_workspace_option(s)
    s.set_defaults(func=cmd_wheel_remove)
    s = whsub.add_parser("url", help="print the privpkg:// URL of a wheel file name", description="Print the privpkg:// URL for a wheel file name.")
    s.add_argument("file")
    add_workspace_option(s)
    s.set_defaults(func=cmd_wheel_url)
