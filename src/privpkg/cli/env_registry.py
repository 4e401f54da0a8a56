"""``privpkg env create|register|list|show|label``: environment definitions and the workspace's
registry of them (issue 10, :mod:`privpkg.environments`).

``create`` writes a definition directory (azureml's ``save_to_directory``) from a conda file, a
requirements file, a conda environment or a virtualenv; ``register`` stores a directory in a
workspace as a new version, or finds it unchanged; ``list``, ``show`` and ``label`` read and
label what is there.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from privpkg.cli.output import add_json_option, add_workspace_option, out, print_json, table, warn


def _screen(env: Any, where: Callable[[str], str]) -> None:
    """Refuse a definition holding a secret before it is written anywhere, naming the user's
    file as ``where`` calls it (given a version's file name: ``spec/NAME``, ``definition.json``,
    a lock), and the line of a spec file, which is where the user fixes it."""
    from privpkg.environments.api import screen_definition

    screen_definition(env.spec, env.locks, where)


@contextmanager
def _variable_warnings() -> Iterator[None]:
    """The API's :class:`SecretLikeVariableWarning` (one per variable name that looks like a
    secret's, issued once the work succeeded) and :class:`UnindexedPackagesWarning` printed as
    ``privpkg: warning:`` lines, after the command's work, so a failure stays one line; any
    other warning is shown as Python would."""
    import warnings

    from privpkg.environments.screen import SecretLikeVariableWarning
    from privpkg.environments.sources import UnindexedPackagesWarning

    ours = (SecretLikeVariableWarning, UnindexedPackagesWarning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    warn(str(w.message) for w in caught if issubclass(w.category, ours))
    for w in caught:
        if not issubclass(w.category, ours):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _known_workspace(name: str) -> str:
    """``name`` once it is a workspace (an unknown one is a usage error here: nothing is read
    from it yet, the name is only written into a hint)."""
    from privpkg.errors import NotFoundError, UsageError
    from privpkg.workspace import get_workspace

    try:
        return get_workspace(name).name
    except NotFoundError as exc:
        raise UsageError(str(exc)) from None


def cmd_env_create(args: argparse.Namespace) -> int:
    from privpkg.environments.api import Environment
    from privpkg.environments.locking import check_platforms
    from privpkg.errors import UsageError

    given = [(k, v) for k, v in (("file", args.file), ("requirements", args.requirements), ("conda_env", args.conda_env),
                                 ("venv", args.venv)) if v]
    if len(given) != 1:
        raise UsageError("give exactly one of --file ENVIRONMENT.yml, -r/--requirement FILE, --conda-env NAME, --venv PATH")
    kind, values = given[0]
    if kind != "requirements" and len(values) > 1:
        # Repeated -r files merge, as in pip; two environment files or environments cannot.
        flag = {"file": "--file", "conda_env": "--conda-env", "venv": "--venv"}[kind]
        raise UsageError(f"{flag} given {len(values)} times; an environment is made from one (only -r files merge, as in pip)")
    workspace = None if args.workspace is None else _known_workspace(args.workspace)
    make = {"file": Environment.from_conda_specification, "requirements": Environment.from_pip_requirements,
            "conda_env": Environment.from_existing_conda_environment, "venv": Environment.from_existing_virtualenv}[kind]
    with _variable_warnings():
        env = make(args.name, values if kind == "requirements" else values[0], platforms=args.platform)
        check_platforms(env.spec.definition())  # what register would refuse, refused before anything is written
        by_name = {Path(v).name: str(v) for v in values} if kind in ("file", "requirements") else {}

        def where(key: str) -> str:
            if key.startswith("spec/"):  # a file given (by its path) or one it includes (by its name)
                return by_name.get(key[5:], key[5:])
            return f"the definition made from {', '.join(map(str, values))}"

        _screen(env, where)
        dest = env.save_to_directory(args.output, overwrite=args.force)
    out(f"wrote the definition of {env.name} to {dest}; register it with: privpkg env register {dest} --workspace "
        f"{workspace or 'W'}")
    return 0


def cmd_env_register(args: argparse.Namespace) -> int:
    from privpkg.environments.api import Environment
    from privpkg.workspace import get_workspace

    env = Environment.load_from_directory(args.directory)
    _screen(env, lambda key: str(Path(args.directory) / key))
    ws = get_workspace(args.workspace)
    before = env.locks
    with _variable_warnings():
        env.register(ws)
        note = "" if before else " (locked now)"
        out(f"registered {env.name}:{env.version} in workspace {ws.name!r}{note}" if env.created else
            f"{env.name}:{env.version} is unchanged in workspace {ws.name!r}; nothing was written")
    return 0


def cmd_env_list(args: argparse.Namespace) -> int:
    from privpkg.environments import registry
    from privpkg.environments.api import open_registry

    ws, store = open_registry(args.workspace)
    found = registry.list_with_labels(store)
    if args.json:
        print_json([{"name": n, "version": v.version, "digest": v.digest, "labels": labels} for n, (v, labels) in sorted(found.items())])
        return 0
    if not found:
        out(f"no environments in workspace {ws.name!r} (make one with: privpkg env create, then privpkg env register)")
        return 0
    # Each label with the version it points at (NAME@LABEL resolves to it), or - for none.
    table([["NAME", "LATEST", "DIGEST", "LABELS"]] + [
        [n, str(v.version), v.digest[:16], ", ".join(f"{lb}={ver}" for lb, ver in labels.items()) or "-"]
        for n, (v, labels) in sorted(found.items())])
    return 0


def _save_version(rec: Any, workspace: str, output: str, force: bool) -> int:
    """``env show REF -o DIR``: the version as a definition directory (azureml's
    ``az ml environment download``), made as ``env create`` makes one."""
    from privpkg.environments.api import Environment

    env = Environment(rec.spec, rec.locks, rec.version, rec.digest)
    with _variable_warnings():
        dest = env.save_to_directory(output, overwrite=force)
    out(f"wrote {env.name}:{rec.version} of workspace {workspace!r} to {dest} ({', '.join(sorted(rec.locks)) or 'no lock'}); "
        f"privpkg env register {dest} --workspace {workspace} stores a change as the next version")
    return 0


def _masked_definition(definition: Any, what: str) -> Any:
    """``definition`` with what the screen refuses (a connection's secret, a password in user
    info, a signature) shown as ``***``, and one warning when something was: a version registered
    before its secret became a connection's still holds it, and ``env show`` output goes to logs."""
    from privpkg.environments import screen

    try:
        known = screen.known_secrets()
    except Exception:  # noqa: BLE001 - a store that cannot be read: the patterns still mask
        known = {}
    changed = False

    def walk(value: Any) -> Any:
        nonlocal changed
        if isinstance(value, str):
            shown_value = screen.masked(value, known)
            changed = changed or shown_value != value
            return shown_value
        if isinstance(value, dict):
            return {walk(k): walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    out_definition = walk(definition)
    if changed:
        warn([f"{what} holds a secret (shown as ***): register a version without it, and rotate the secret"])
    return out_definition


def cmd_env_show(args: argparse.Namespace) -> int:
    from privpkg.environments import registry
    from privpkg.environments.api import open_registry
    from privpkg.environments.spec import parse_target
    from privpkg.errors import UsageError

    name, version, label = parse_target(args.ref)
    ws, store = open_registry(args.workspace)
    rec = registry.get(store, name, version, label)
    if args.output is not None:
        if args.json:
            raise UsageError("give -o DIR or --json, not both")
        return _save_version(rec, ws.name, args.output, args.force)
    if args.force:
        raise UsageError("--force goes with -o DIR")
    labels = sorted(lb for lb, v in registry.labels(store, name).items() if v == rec.version)
    definition = _masked_definition(rec.spec.definition(), f"{name}:{rec.version}")
    files = {p: {"sha256": f["sha256"], "size": f["size"]} for p, f in sorted(rec.files.items())}
    if args.json:
        print_json({"name": name, "version": rec.version, "digest": rec.digest, "labels": labels, "definition": definition,
                    "files": files})
        return 0
    out(f"{name}:{rec.version}  digest {rec.digest[:16]}{'  labels: ' + ', '.join(labels) if labels else ''}")
    if definition["python"]:
        out(f"python: {definition['python']}")
    for title, lines in (("channels", definition["conda"]["channels"]), ("conda", definition["conda"]["dependencies"]),
                         ("pip", definition["pip"]), ("constraints", definition["constraints"]),
                         ("variables", [f"{k}={v}" for k, v in definition["variables"].items()])):
        if lines:
            out(f"{title}:")
            for line in lines:
                out(f"  {line}")
    out("files:")
    table([[f"  {p}", str(f["size"]), f["sha256"][:16]] for p, f in files.items()])
    return 0


def cmd_env_label(args: argparse.Namespace) -> int:
    from privpkg.environments import registry
    from privpkg.environments.api import open_registry
    from privpkg.environments.spec import parse_ref
    from privpkg.errors import UsageError

    name, version = parse_ref(args.ref)
    if version is None and not args.remove:
        raise UsageError(f"name the version the label points at: privpkg env label {name}:VERSION {args.label}")
    _, store = open_registry(args.workspace)
    changed = registry.set_label(store, name, args.label, None if args.remove else version)
    if args.remove:
        out(f"removed label {args.label!r} of {name}")
    elif not changed:
        out(f"label {args.label!r} of {name} already points at {name}:{version}; unchanged, nothing was written")
    else:
        out(f"label {args.label!r} of {name} now points at {name}:{version}")
    return 0


def add_parsers(actions: Any) -> None:
    """Add create, register, list, show and label to ``privpkg env``'s subparsers."""
    s = actions.add_parser("create", help="write an environment definition directory",
                           description="Write an environment definition (definition.json and the spec files as given) "
                           "into a new directory, from a conda environment file, a requirements file, an existing conda "
                           "environment or a virtualenv. Register it with: privpkg env register DIR.")
    s.add_argument("name", metavar="NAME", help="the environment's name")
    # Each appends, so a repeated option is seen (merged for -r, refused for the others), never
    # silently replaced by the last one.
    s.add_argument("--file", "-f", metavar="ENVIRONMENT_YML", action="append", help="a conda environment file")
    # --requirement too: pip's, resolve's and doctor's spelling of it.
    s.add_argument("-r", "--requirement", "--requirements", dest="requirements", metavar="FILE", action="append",
                   help="a pip requirements file (repeatable: the files are merged in order, as pip does)")
    s.add_argument("--conda-env", metavar="NAME_OR_PREFIX", action="append", help="an existing conda environment")
    s.add_argument("--venv", metavar="PATH", action="append", help="an existing virtualenv")
    s.add_argument("--output", "-o", required=True, metavar="DIR", help="the directory to write (new)")
    s.add_argument("--force", action="store_true", help="replace DIR if it holds an environment definition")
    s.add_argument("--platform", action="append", default=[], metavar="P",
                   help="also lock the conda part for conda platform P (osx-arm64, win-64...; repeatable; stored in the "
                   "definition's platforms, besides an environment.yml's own platforms:); a pip part cannot be")
    # Not add_workspace_option: no workspace is used, so none is the default. One given is
    # checked and named in the register hint; none given, none is named.
    s.add_argument("--workspace", "-w", default=None, help="the workspace to name in the register hint (checked; default: none)")
    s.set_defaults(func=cmd_env_create)
    s = actions.add_parser("register", help="store a definition directory in a workspace as a version",
                           description="Register the environment in DIR: the latest version when its content is unchanged "
                           "(nothing is written), else the next version. Locks in DIR are held to the rules of the locks privpkg makes and stored "
                           "in canonical form; without them the spec is locked first.")
    s.add_argument("directory", metavar="DIR")
    add_workspace_option(s)
    s.set_defaults(func=cmd_env_register)
    s = actions.add_parser("list", help="list environments and their latest versions",
                           description="List the workspace's environments with their latest complete versions.")
    add_workspace_option(s)
    add_json_option(s)
    s.set_defaults(func=cmd_env_list)
    s = actions.add_parser("show", help="show a registered version",
                           description="Show a registered version: NAME (the latest), NAME:VERSION or NAME@LABEL.")
    s.add_argument("ref", metavar="NAME[:VERSION|@LABEL]")
    s.add_argument("-o", "--output", metavar="DIR",
                   help="write the version as a definition directory (definition.json, spec/, its locks), as env create "
                   "writes one: edit it and env register it for the next version")
    s.add_argument("--force", action="store_true", help="with -o: replace DIR if it is an environment directory")
    add_workspace_option(s)
    add_json_option(s)
    s.set_defaults(func=cmd_env_show)
    s = actions.add_parser("label", help="point a label at a version, or remove it",
                           description="Point LABEL at NAME:VERSION (labels are the only mutable state; 'latest' is implicit).")
    s.add_argument("ref", metavar="NAME:VERSION")
    s.add_argument("label", metavar="LABEL")
    s.add_argument("--remove", action="store_true", help="remove the label")
    add_workspace_option(s)
    s.set_defaults(func=cmd_env_label)
