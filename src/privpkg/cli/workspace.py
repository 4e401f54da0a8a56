"""``privpkg workspace``: define, list, show and remove the places where private wheels are
stored. Definitions hold no secret; storage credentials are connections."""

from __future__ import annotations

import argparse
from typing import Any

from privpkg.cli.output import add_group, add_json_option, out, print_json, table
from privpkg.errors import UsageError


def cmd_workspace_add(args: argparse.Namespace) -> int:
    from privpkg.workspace import Workspace, add_workspace, validate_location

    chosen = [k for k in ("local", "azure", "s3") if getattr(args, k)]
    if len(chosen) != 1:
        raise UsageError("give exactly one of --local DIR, --azure CONTAINER_URL, --s3 s3://BUCKET[/PREFIX]")
    storage = chosen[0]
    for given, option in ((args.endpoint_url, "--endpoint-url"), (args.region, "--region"), (args.allow_http, "--allow-http")):
        if given and storage != "s3":
            raise UsageError(f"{option} goes with --s3")
    location = validate_location(storage, getattr(args, storage), args.endpoint_url, allow_http=args.allow_http)
    ws = Workspace(args.name, storage, location, args.endpoint_url, args.region)
    path = add_workspace(ws, project=args.project)
    out(f"added workspace {ws.name!r}: {storage} {location} (in {path})")
    return 0


def cmd_workspace_list(args: argparse.Namespace) -> int:
    from privpkg.workspace import all_workspaces

    spaces = sorted(all_workspaces().values(), key=lambda w: w.name)
    if args.json:
        print_json([{**w.toml_table(), "name": w.name, "source": w.source} for w in spaces])
        return 0
    rows = [["NAME", "STORAGE", "LOCATION", "SOURCE"]]
    rows += [[w.name, w.storage, w.location + (f" ({w.endpoint_url})" if w.endpoint_url else ""), w.source] for w in spaces]
    table(rows)
    return 0


def cmd_workspace_show(args: argparse.Namespace) -> int:
    from privpkg.workspace import get_workspace

    ws = get_workspace(args.name)
    info = {"name": ws.name, **ws.toml_table(), "source": ws.source}
    if args.json:
        print_json(info)
    else:
        for k, v in info.items():
            out(f"{k + ':':<13} {v}")
    return 0


def cmd_workspace_remove(args: argparse.Namespace) -> int:
    from privpkg.workspace import remove_workspace

    path = remove_workspace(args.name, project=args.project)
    out(f"removed workspace {args.name!r} from {path} (its stored wheels were not touched)")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``workspace`` and its actions to the top-level subparsers ``sub``."""
    wsub = add_group(sub, "workspace", help="define where private wheels are stored",
                     description="Workspaces name a wheel store: a local folder, an Azure Blob container or an S3 bucket. "
                        "Definitions hold no secret; storage credentials are connections (category AzureBlob or S3).")
    s = wsub.add_parser("add", help="define a workspace", description="Define a workspace in your user config, or with --project in ./privpkg.toml.")
    s.add_argument("name", metavar="NAME")
    s.add_argument("--local", metavar="DIR", help="a folder")
    s.add_argument("--azure", metavar="CONTAINER_URL", help="https://ACCOUNT.blob.core.windows.net/CONTAINER (Azurite: http://127.0.0.1:PORT/ACCOUNT/CONTAINER)")
    s.add_argument("--s3", metavar="S3_URL", help="s3://BUCKET[/PREFIX]")
    # --endpoint too: connection set's name for the same thing.
    s.add_argument("--endpoint-url", "--endpoint", dest="endpoint_url", metavar="URL", help="S3-compatible endpoint (MinIO, R2, ...)")
    s.add_argument("--region", help="S3 region (default us-east-1)")
    s.add_argument("--allow-http", action="store_true", help="allow a plain-http --endpoint-url that is not loopback")
    s.add_argument("--project", action="store_true", help="write to the nearest privpkg.toml (or ./privpkg.toml), for committing; "
                   "a --local folder inside the project is written relative to that file")
    s.set_defaults(func=cmd_workspace_add)
    s = wsub.add_parser("list", help="list workspaces", description="List workspaces from the built-in default, the user config and the nearest trusted privpkg.toml "
                         "(which may add workspaces but not redefine default or the user's). Problems in those files are "
                         "warnings, one line each.")
    add_json_option(s)
    s.set_defaults(func=cmd_workspace_list)
    s = wsub.add_parser("show", help="show one workspace", description="Show one workspace.")
    s.add_argument("name", metavar="NAME")
    add_json_option(s)
    s.set_defaults(func=cmd_workspace_show)
    s = wsub.add_parser("remove", help="forget a workspace definition", description="Remove a workspace definition (stored wheels stay).")
    s.add_argument("name", metavar="NAME")
    s.add_argument("--project", action="store_true", help="remove it from the project's privpkg.toml")
    s.set_defaults(func=cmd_workspace_remove)
