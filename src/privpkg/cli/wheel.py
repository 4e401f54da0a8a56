"""``privpkg wheel``: publish wheels to a workspace, list and remove them, and print the stable
``privpkg://`` URLs that requirements files name."""

from __future__ import annotations

import argparse
from typing import Any

from privpkg.cli.output import add_group, add_json_option, add_workspace_option, error, out, print_json, table


def cmd_wheel_add(args: argparse.Namespace) -> int:
    """Validate every file first, so a bad one uploads nothing; then publish each, one line per
    file (the URL on stdout, or its error), going on past a failure and naming them at the end."""
    from pathlib import Path

    from privpkg.access import open_workspace_storage
    from privpkg.errors import PrivpkgError, UsageError
    from privpkg.wheels import WheelFile, publish_wheel, validate_wheel
    from privpkg.workspace import get_workspace

    ws = get_workspace(args.workspace)
    if len(args.file) == 1:  # one file: its error is the command's one error line
        wheel = validate_wheel(Path(args.file[0]))
        out(publish_wheel(ws, open_workspace_storage(ws), wheel, exist_ok=args.exist_ok))
        return 0
    wheels: list[WheelFile] = []
    invalid: list[str] = []
    seen: dict[str, str] = {}
    for file in args.file:
        try:
            wheel = validate_wheel(Path(file))
            if wheel.filename in seen:
                raise UsageError(f"{wheel.filename} is given twice ({seen[wheel.filename]} and {file})")
        except PrivpkgError as exc:
            error(_about(file, exc), exc.exit_code)
            invalid.append(file)
            continue
        seen[wheel.filename] = file
        wheels.append(wheel)
    if invalid:
        raise UsageError(f"nothing was uploaded: {len(invalid)} of {len(args.file)} files failed validation: {', '.join(invalid)}")
    storage = open_workspace_storage(ws)
    failed: list[tuple[str, int]] = []
    for wheel in wheels:
        try:
            out(publish_wheel(ws, storage, wheel, exist_ok=args.exist_ok))
        except PrivpkgError as exc:
            error(_about(wheel.filename, exc), exc.exit_code)
            failed.append((wheel.filename, exc.exit_code))
    if failed:
        names = ", ".join(f for f, _ in failed)
        return error(f"not published: {len(failed)} of {len(wheels)} wheels: {names}", failed[0][1])
    return 0


def _about(file: str, exc: Exception) -> str:
    """``exc``'s line about ``file`` among several: prefixed with the file, unless the message
    names it already (``no such file: F``, ``F.whl: METADATA says ...``)."""
    import os.path

    msg = str(exc)
    return msg if os.path.basename(file) in msg else f"{file}: {msg}"


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


def _wheel_to_remove(given: str, workspace: str | None) -> tuple[str, str]:
    """(workspace name, wheel file name) for ``wheel remove``'s argument: the privpkg:// URL
    `wheel list` prints (its workspace is the one, and must agree with ``--workspace``), a path
    to the wheel (its file name, as `wheel url` takes it) or the file name."""
    import os.path

    from privpkg import refs
    from privpkg.errors import UsageError, shown
    from privpkg.wheels import check_filename

    if refs.is_ref(given):
        ref = refs.parse(given, refs.WHEELS, check_name=check_filename)
        if workspace is not None and workspace != ref.workspace:
            raise UsageError(f"{given} is in workspace {ref.workspace!r}, not {workspace!r}; drop --workspace or make them agree")
        return ref.workspace, ref.name
    if given.lower().startswith("privpkg:"):  # a malformed URL is not a path: never the default workspace's
        raise UsageError(f"{shown(given, 120)} is not a privpkg://WORKSPACE/wheels/FILE URL; give the URL `wheel list` prints, "
                         "or the wheel's file name")
    return workspace or "default", os.path.basename(given)


def cmd_wheel_remove(args: argparse.Namespace) -> int:
    from privpkg.wheels import remove_wheel
    from privpkg.workspace import get_workspace

    workspace, filename = _wheel_to_remove(args.file, args.workspace)
    ws = get_workspace(workspace)
    found = remove_wheel(ws, filename, purge=args.purge)
    if not args.purge:
        out(f"removed {filename} from workspace {ws.name!r}; its name stays reserved (privpkg wheel remove --purge frees it)")
    elif found:
        out(f"removed {filename} from workspace {ws.name!r} and freed its name")
    else:
        out(f"freed the name of the removed {filename} in workspace {ws.name!r}")
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
    whsub = add_group(sub, "wheel", help="publish and manage private wheels in a workspace",
                     description="Publish wheels to a workspace and get stable privpkg:// URLs for requirements files.")
    s = whsub.add_parser("add", help="validate and upload wheels; prints their privpkg:// URLs",
                         description="Validate wheels (PEP 427 name, zip, METADATA) and upload them. Every file is validated "
                         "before anything is uploaded; each URL is one line of stdout, in the order given. Published wheels "
                         "are immutable, and a removed wheel's name stays reserved.")
    s.add_argument("file", nargs="+", metavar="FILE", help="a wheel file (.whl)")
    add_workspace_option(s)
    s.add_argument("--exist-ok", action="store_true", help="succeed if the same wheel with the same content is already there")
    s.set_defaults(func=cmd_wheel_add)
    s = whsub.add_parser("list", help="list wheels in a workspace", description="List wheels in a workspace.")
    add_workspace_option(s)
    add_json_option(s)
    s.set_defaults(func=cmd_wheel_list)
    s = whsub.add_parser("remove", help="delete a wheel from a workspace; its name stays reserved",
                         description="Delete a wheel (requirements pinned to it will fail to install). As on PyPI, its name "
                         "stays reserved: it cannot be published again, with any content, unless --purge forgets it.")
    s.add_argument("file", metavar="WHEEL", help="the wheel's file name, its path, or the privpkg:// URL `wheel list` prints")
    # Its own option (default None, not add_workspace_option's "default"): a URL names the
    # workspace, so only a --workspace the user gave can disagree with it.
    s.add_argument("--workspace", "-w", help="workspace name (default: the URL's, else default)")
    s.add_argument("--purge", action="store_true", help="also forget the name (or only that, for a removed wheel), so it can be published again")
    s.set_defaults(func=cmd_wheel_remove)
    s = whsub.add_parser("url", help="print the privpkg:// URL of a wheel file name", description="Print the privpkg:// URL for a wheel file name.")
    s.add_argument("file", metavar="FILE", help="the wheel's file name (or its path)")
    add_workspace_option(s)
    s.set_defaults(func=cmd_wheel_url)
