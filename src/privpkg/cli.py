"""The ``privpkg`` command line: argument parsing and the small command functions.

Every command exits 0 on success, 1 when something was not found or a check failed, and 2 on a
usage error. User mistakes print one line, ``privpkg: error: ...``, never a traceback. Secrets
are read from stdin (when it is not a terminal) or a hidden prompt, never from argv.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from privpkg import __version__
from privpkg.errors import PrivpkgError, UsageError

EPILOG_CONNECTION_SET = """\
The secret (PAT) is read from stdin when stdin is not a terminal, otherwise from a hidden
prompt. It is never accepted as an argument, so it stays out of shell history and `ps`.

examples:
  privpkg connection set myfeed --target https://pkgs.dev.azure.com/org/
  echo "$PAT" | privpkg connection set myfeed --target https://gitlab.example.com/api/v4/ --username ci
  privpkg connection set myfeed --update --expires 2027-01-31     # rotate the PAT
  privpkg connection set myfeed --update --keep-secret --host-wide  # answer pip's bare-host lookup
  echo "$AWS_SECRET_ACCESS_KEY" | privpkg connection set minio --category S3 --target s3://bucket \
      --username "$AWS_ACCESS_KEY_ID" --endpoint https://minio.example.com:9000

--host-wide: pip's second keyring lookup (the bare host:port) and uv's host lookup carry no
scheme and no path, so by default no connection answers them; index URLs work without it. With
--host-wide this connection answers them, which makes an https connection reachable from
http:// URLs on the same host.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n(see: {self.prog} --help)\n")


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def read_secret(prompt: str) -> str:
    """Read a secret from a hidden prompt on a terminal, else from stdin (one trailing newline
    stripped, as ``keyring set`` does).

    Ctrl-D at the prompt is "no secret" (a usage error, nothing stored); Ctrl-C propagates as
    KeyboardInterrupt, which :func:`main` turns into one line and exit 130."""
    from privpkg.connections import MAX_SECRET, validate_secret

    if sys.stdin is None:
        raise UsageError("no secret given: pipe it on stdin")
    if sys.stdin.isatty():
        import getpass

        try:
            value = getpass.getpass(prompt)
        except (EOFError, KeyboardInterrupt) as exc:
            # getpass leaves the cursor after the prompt; end that line before ours.
            if sys.stderr.isatty():
                sys.stderr.write("\n")
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise UsageError("no secret entered (end of input at the prompt); nothing was stored") from None
    else:
        # Read no more than a too-large secret needs to be recognized as one.
        value = sys.stdin.read(MAX_SECRET + 3)
        if value.endswith("\r\n"):
            value = value[:-2]
        elif value.endswith("\n"):
            value = value[:-1]
    return validate_secret(value)


# --- connection ---------------------------------------------------------------------------


def cmd_connection_set(args: argparse.Namespace) -> int:
    from privpkg import connections

    changes: dict[str, Any] = {
        "target": args.target, "category": args.category, "auth_type": args.auth_type,
        "username": args.username, "expires": args.expires or None, "allow_http": args.allow_http,
        "host_wide": args.host_wide, "endpoint": args.endpoint,
    }
    # Everything is checked before the secret is asked for, so a typo costs no paste.
    existing = connections.check_update(args.name, update=args.update, keep_secret=args.keep_secret, **changes)
    secret = None if args.keep_secret else read_secret(f"PAT for {args.name}: ")
    conn = connections.update_connection(args.name, secret, create=True, update=args.update, **changes)
    verb = "updated" if existing else "stored"
    extra = ""
    if conn.host_wide:
        extra = "; answers bare-host lookups (--host-wide)"
    if conn.category == "S3":
        from privpkg import urls

        extra = f"; endpoint {urls.s3_endpoint_label(conn.endpoint)}"
    _out(f"{verb} connection {conn.name!r}: {conn.category} {conn.target} (username {conn.username}){extra}")
    return 0


def _warn_sources(errors: list[str]) -> None:
    for err in errors:
        sys.stderr.write(f"privpkg: warning: {err}\n")


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        _out("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def cmd_connection_list(args: argparse.Namespace) -> int:
    from privpkg.connections import list_connections

    errors: list[str] = []
    conns = list_connections(category=args.category, target=args.target, errors=errors)
    _warn_sources(errors)
    if args.json:
        _out(json.dumps([c.public() for c in conns], indent=2))
        return 0
    if not conns:
        _out("no connections (add one with: privpkg connection set NAME --target URL)")
        return 0
    rows = [["NAME", "CATEGORY", "TARGET", "USERNAME", "EXPIRES", "SOURCE"]]
    rows += [[c.name, c.category, c.target, c.username, c.expires or "-", c.source] for c in conns]
    _table(rows)
    return 0


def cmd_connection_show(args: argparse.Namespace) -> int:
    from privpkg.connections import get_connection

    errors: list[str] = []
    conn = get_connection(args.name, errors=errors)
    _warn_sources(errors)
    info = conn.public()
    if args.json:
        _out(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if key == "endpoint" and value is None:
            value = "AWS (none stored)"
        _out(f"{key + ':':<10} {value if value is not None else '-'}")
    _out(f"{'secret:':<10} ******** (stored, {len(conn.secret)} characters)")
    left = conn.days_left()
    if left is not None and left < 0:
        _out(f"warning: this connection expired {-left} day(s) ago")
    return 0


def cmd_connection_delete(args: argparse.Namespace) -> int:
    from privpkg.connections import delete_connection

    delete_connection(args.name)
    _out(f"deleted connection {args.name!r}")
    return 0


def cmd_connection_test(args: argparse.Namespace) -> int:
    from privpkg.connections import get_connection
    from privpkg.probe import check_connection

    conn = get_connection(args.name)
    ok, message = check_connection(conn, args.url, timeout=args.timeout)
    _out(message)
    return 0 if ok else 1


# --- workspaces, wheels, signing ------------------------------------------------------------


def cmd_workspace_add(args: argparse.Namespace) -> int:
    from privpkg.workspace import Workspace, add_workspace, validate_location

    chosen = [k for k in ("local", "azure", "s3") if getattr(args, k)]
    if len(chosen) != 1:
        raise UsageError("give exactly one of --local DIR, --azure CONTAINER_URL, --s3 s3://BUCKET[/PREFIX]")
    storage = chosen[0]
    if args.endpoint_url and storage != "s3":
        raise UsageError("--endpoint-url goes with --s3")
    location = validate_location(storage, getattr(args, storage), args.endpoint_url)
    ws = Workspace(args.name, storage, location, args.endpoint_url, args.region)
    path = add_workspace(ws, project=args.project)
    _out(f"added workspace {ws.name!r}: {storage} {location} (in {path})")
    return 0


def cmd_workspace_list(args: argparse.Namespace) -> int:
    from privpkg.workspace import all_workspaces

    spaces = sorted(all_workspaces().values(), key=lambda w: w.name)
    if args.json:
        _out(json.dumps([{**w.toml_table(), "name": w.name, "source": w.source} for w in spaces], indent=2))
        return 0
    rows = [["NAME", "STORAGE", "LOCATION", "SOURCE"]]
    rows += [[w.name, w.storage, w.location + (f" ({w.endpoint_url})" if w.endpoint_url else ""), w.source] for w in spaces]
    _table(rows)
    return 0


def cmd_workspace_show(args: argparse.Namespace) -> int:
    from privpkg.workspace import get_workspace

    ws = get_workspace(args.name)
    info = {"name": ws.name, **ws.toml_table(), "source": ws.source}
    if args.json:
        _out(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            _out(f"{k + ':':<13} {v}")
    return 0


def cmd_workspace_remove(args: argparse.Namespace) -> int:
    from privpkg.workspace import remove_workspace

    path = remove_workspace(args.name, project=args.project)
    _out(f"removed workspace {args.name!r} from {path} (its stored wheels were not touched)")
    return 0


def cmd_wheel_add(args: argparse.Namespace) -> int:
    from pathlib import Path

    from privpkg.wheels import add_private_wheel
    from privpkg.workspace import get_workspace

    url = add_private_wheel(get_workspace(args.workspace), Path(args.file), exist_ok=args.exist_ok)
    _out(url)
    return 0


def cmd_wheel_list(args: argparse.Namespace) -> int:
    from privpkg.wheels import list_wheels
    from privpkg.workspace import get_workspace

    ws = get_workspace(args.workspace)
    wheels = list_wheels(ws)
    if args.json:
        _out(json.dumps([{"file": b.key.rsplit("/", 1)[-1], "url": ws.url_for(b.key.rsplit("/", 1)[-1]), "size": b.size, "sha256": b.sha256} for b in wheels], indent=2))
        return 0
    if not wheels:
        _out(f"no wheels in workspace {ws.name!r} (add one with: privpkg wheel add FILE --workspace {ws.name})")
        return 0
    rows = [["URL", "SIZE", "SHA256"]]
    rows += [[ws.url_for(b.key.rsplit("/", 1)[-1]), str(b.size), (b.sha256 or "-")[:16]] for b in wheels]
    _table(rows)
    return 0


def cmd_wheel_remove(args: argparse.Namespace) -> int:
    from privpkg.wheels import remove_wheel
    from privpkg.workspace import get_workspace

    remove_wheel(get_workspace(args.workspace), args.file)
    _out(f"removed {args.file} from workspace {args.workspace!r}")
    return 0


def cmd_wheel_url(args: argparse.Namespace) -> int:
    import os.path

    from privpkg.wheels import check_filename
    from privpkg.workspace import get_workspace

    filename = os.path.basename(args.file)
    check_filename(filename)
    _out(get_workspace(args.workspace).url_for(filename))
    return 0


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
    _out(resolve_url(args.url, args.ttl))
    return 0


# --- other commands -----------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    from privpkg.doctor import run_doctor

    return run_doctor(url=args.url, days=args.days)


def cmd_setup_pip(args: argparse.Namespace) -> int:
    from privpkg.setup_pip import install_shim, setup_pip, undo_setup_pip, uninstall_shim

    if args.python:
        if args.config:
            raise UsageError("--python and --config do not go together")
        _out(uninstall_shim(args.python) if args.undo else install_shim(args.python))
        return 0
    if args.undo:
        _out(undo_setup_pip(config=args.config))
    else:
        _out(setup_pip(provider=args.provider, config=args.config))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from privpkg.demo import run_demo

    return run_demo(keep=args.keep)


# --- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="privpkg",
        description="Private Python packages with plain pip install: stored feed PATs served through keyring.",
        epilog="Run `privpkg demo` for a self-contained walk-through. Docs: README.md",
    )
    p.add_argument("--version", action="version", version=f"privpkg {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    conn = sub.add_parser("connection", help="store, list, show, test and delete feed credentials",
                          description="Connections map a feed base URL to a PAT, kept in an encrypted store.")
    csub = conn.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    conn.set_defaults(func=lambda a: _need_sub(conn))

    s = csub.add_parser("set", help="add a connection, or --update one",
                        description="Add a connection (or --update an existing one).",
                        epilog=EPILOG_CONNECTION_SET, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("name", help="a short name, e.g. myfeed")
    s.add_argument("--target", help="feed base URL; it serves every URL below it (path-segment prefix)")
    s.add_argument("--category", help="PythonFeed (default), CondaChannel, AzureBlob or S3")
    s.add_argument("--username", help="username sent with the PAT (default: __token__)")
    s.add_argument("--expires", metavar="DATE", help="expiry date of the PAT, YYYY-MM-DD (doctor warns 14 days ahead)")
    s.add_argument("--auth-type", help="how the secret is sent: PAT (HTTP Basic password, the default)")
    s.add_argument("--allow-http", action="store_true", help="allow a plain-http target that is not loopback")
    s.add_argument("--update", action="store_true", help="replace an existing connection's secret and given settings")
    s.add_argument("--keep-secret", action="store_true", help="with --update: change only the given settings, keep the stored secret")
    s.add_argument("--host-wide", dest="host_wide", action="store_true", default=None,
                   help="also answer pip's/uv's bare host[:port] lookup (no scheme, no path): the secret can then go to "
                        "any URL on this host, http:// included")
    s.add_argument("--no-host-wide", dest="host_wide", action="store_false", help="answer only URLs under the target (the default)")
    s.add_argument("--endpoint", metavar="URL",
                   help="S3: the endpoint these credentials belong to (MinIO, R2, ...; default AWS). "
                        "A workspace at another endpoint never gets them")
    s.set_defaults(func=cmd_connection_set)

    s = csub.add_parser("list", help="list connections (store and environment)", description="List connections; secrets are never shown.")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--category", help="only this category")
    s.add_argument("--target", metavar="URL", help="only connections that serve this URL")
    s.set_defaults(func=cmd_connection_list)

    s = csub.add_parser("show", help="show one connection (without its secret)", description="Show one connection; the secret is never shown.")
    s.add_argument("name")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_connection_show)

    s = csub.add_parser("delete", help="delete a connection", description="Delete a connection from the store.")
    s.add_argument("name")
    s.set_defaults(func=cmd_connection_delete)

    s = csub.add_parser("test", help="check a connection's credential against its target",
                        description="Read the target with the stored credential: feeds with an HTTP GET (HTTP Basic), "
                        "AzureBlob connections with List Blobs, S3 connections with ListObjectsV2. Prints one line "
                        "starting with a verdict: OK, REJECTED, FORBIDDEN, NOT FOUND, NOT AUTHORITATIVE (203), "
                        "SIGN-IN REDIRECT, CREDENTIAL DROPPED, TOO MANY REDIRECTS, FAILED, UNREACHABLE or TIMED OUT. "
                        "Exit 0 only for OK: the target itself answered 2xx to a request that carried the credential.")
    s.add_argument("name")
    s.add_argument("--url", help="feed URL under the target to request instead (e.g. the feed's simple index)")
    s.add_argument("--timeout", type=float, default=10.0, help="seconds for the whole exchange, redirects included (default 10)")
    s.set_defaults(func=cmd_connection_test)

    ws = sub.add_parser("workspace", help="define where private wheels are stored",
                        description="Workspaces name a wheel store: a local folder, an Azure Blob container or an S3 bucket. "
                        "Definitions hold no secret; storage credentials are connections (category AzureBlob or S3).")
    wsub = ws.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    ws.set_defaults(func=lambda a: _need_sub(ws))
    s = wsub.add_parser("add", help="define a workspace", description="Define a workspace in your user config, or with --project in ./privpkg.toml.")
    s.add_argument("name")
    s.add_argument("--local", metavar="DIR", help="a folder")
    s.add_argument("--azure", metavar="CONTAINER_URL", help="https://ACCOUNT.blob.core.windows.net/CONTAINER (Azurite: http://127.0.0.1:PORT/ACCOUNT/CONTAINER)")
    s.add_argument("--s3", metavar="S3_URL", help="s3://BUCKET[/PREFIX]")
    s.add_argument("--endpoint-url", help="S3-compatible endpoint (MinIO, R2, ...)")
    s.add_argument("--region", help="S3 region (default us-east-1)")
    s.add_argument("--project", action="store_true", help="write to the nearest privpkg.toml (or ./privpkg.toml), for committing; "
                   "a --local folder inside the project is written relative to that file")
    s.set_defaults(func=cmd_workspace_add)
    s = wsub.add_parser("list", help="list workspaces", description="List workspaces from the built-in default, the user config and the nearest trusted privpkg.toml "
                         "(which may add workspaces but not redefine default or the user's). Problems in those files are "
                         "warnings, one line each.")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_workspace_list)
    s = wsub.add_parser("show", help="show one workspace", description="Show one workspace.")
    s.add_argument("name")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_workspace_show)
    s = wsub.add_parser("remove", help="forget a workspace definition", description="Remove a workspace definition (stored wheels stay).")
    s.add_argument("name")
    s.add_argument("--project", action="store_true", help="remove it from the project's privpkg.toml")
    s.set_defaults(func=cmd_workspace_remove)

    wh = sub.add_parser("wheel", help="publish and manage private wheels in a workspace",
                        description="Publish wheels to a workspace and get stable privpkg:// URLs for requirements files.")
    whsub = wh.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    wh.set_defaults(func=lambda a: _need_sub(wh))
    s = whsub.add_parser("add", help="validate and upload a wheel; prints its privpkg:// URL",
                         description="Validate a wheel (PEP 427 name, zip, METADATA) and upload it. The privpkg:// URL is the "
                         "last line of stdout. Published wheels are immutable.")
    s.add_argument("file")
    s.add_argument("--workspace", "-w", default="default", help="workspace name (default: default)")
    s.add_argument("--exist-ok", action="store_true", help="succeed if the same wheel with the same content is already there")
    s.set_defaults(func=cmd_wheel_add)
    s = whsub.add_parser("list", help="list wheels in a workspace", description="List wheels in a workspace.")
    s.add_argument("--workspace", "-w", default="default")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_wheel_list)
    s = whsub.add_parser("remove", help="delete a wheel from a workspace", description="Delete a wheel (environments pinned to it will fail to install).")
    s.add_argument("file", help="the wheel file name")
    s.add_argument("--workspace", "-w", default="default")
    s.set_defaults(func=cmd_wheel_remove)
    s = whsub.add_parser("url", help="print the privpkg:// URL of a wheel file name", description="Print the privpkg:// URL for a wheel file name.")
    s.add_argument("file")
    s.add_argument("--workspace", "-w", default="default")
    s.set_defaults(func=cmd_wheel_url)

    s = sub.add_parser("resolve", help="print a short-lived signed URL, or write signed constraints",
                       description="Sign a privpkg:// URL (or a blob URL in an Azure workspace): an Azure SAS, an S3 presigned "
                       "GET or a file URL. With -r/-o, write a pip constraints file (mode 0600) with `name @ <signed URL>` "
                       "for every such requirement, following nested -r/-c, for uv and other tools.")
    s.add_argument("url", nargs="?")
    s.add_argument("--ttl", type=_ttl, default=600, help="seconds the signature is valid (default 600, max 604800)")
    s.add_argument("-r", "--requirement", metavar="FILE", help="requirements file to read")
    s.add_argument("-o", "--output", metavar="FILE", help="constraints file to write")
    s.set_defaults(func=cmd_resolve)

    s = sub.add_parser("doctor", help="explain how credentials reach pip and what is wrong",
                       description="Check the store, the key, keyring's backend choice, pip's keyring-provider "
                       "setting and connection expiry. Exit 1 if a check fails.")
    s.add_argument("--url", help="also show which keyring backend answers this URL, and why")
    s.add_argument("--days", type=int, default=14, help="warn about connections expiring within DAYS (default 14)")
    s.set_defaults(func=cmd_doctor)

    setup = sub.add_parser("setup", help="configure tools to use privpkg", description="Configure tools to use privpkg.")
    ssub = setup.add_subparsers(dest="tool", metavar="TOOL", parser_class=_Parser)
    setup.set_defaults(func=lambda a: _need_sub(setup))
    s = ssub.add_parser("pip", help="write keyring-provider into your pip config",
                        description="Write `keyring-provider` into the user's pip configuration so plain "
                        "`pip install --index-url FEED` finds stored PATs without flags. --undo reverts exactly that change. "
                        "With --python PATH, install the pip shim for privpkg:// URLs into that interpreter's environment instead.")
    s.add_argument("--provider", choices=["subprocess", "import", "auto"], default="subprocess",
                   help="subprocess (default) works from any venv through the keyring CLI on PATH, even with --no-input")
    s.add_argument("--undo", action="store_true", help="revert what an earlier `privpkg setup pip` wrote")
    s.add_argument("--config", metavar="FILE", help="pip config file to edit (default: pip's user config file)")
    s.add_argument("--python", metavar="PATH", help="instead: install the pip shim (privpkg:// URLs) into the environment of this interpreter")
    s.set_defaults(func=cmd_setup_pip)

    s = sub.add_parser("demo", help="run a self-contained demo: a private feed, a stored PAT, a real pip install",
                       description="Start a private PEP 503 feed on 127.0.0.1 that demands a PAT, store the PAT as a "
                       "connection in a throwaway store, and run a real pip install from it in a throwaway venv "
                       "with no credentials on the command line. Everything it starts is cleaned up.")
    s.add_argument("--keep", action="store_true", help="keep the temporary directory (it is printed)")
    s.set_defaults(func=cmd_demo)
    return p


def _need_sub(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


class _Stdout:
    """Stands in for ``sys.stdout`` while a command runs and remembers a failed write or flush,
    so :func:`main` can tell "the output cannot be written" (a closed pipe, /dev/full) from any
    other OSError. Everything else is delegated to the real stream."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.failed: OSError | None = None

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            self.failed = exc
            raise

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            self.failed = exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _silence_stdout(stream: Any) -> None:
    """Point fd 1 at /dev/null, so the interpreter's flush of what is left in ``sys.stdout`` at
    exit cannot fail again and print "Exception ignored ... BrokenPipeError" (the fix the
    Python docs give for SIGPIPE)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # not a real file (e.g. captured in a test): nothing will flush it at exit


def _error(message: str, code: int) -> int:
    try:
        sys.stderr.write(f"privpkg: error: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # stderr itself is gone: the exit code is all that is left
    return code


def _os_error(exc: OSError) -> str:
    # strerror and the file name only: str(exc) of some OSErrors embeds a whole request or URL.
    what = exc.strerror or type(exc).__name__
    return f"{what}: {exc.filename}" if exc.filename else what


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Every failure is one ``privpkg: error:`` line and an exit code, never a
    traceback: user mistakes (PrivpkgError's exit code), Ctrl-C (130), an OSError (1), a stdout
    that cannot be written (1), and a reader that closed the pipe (0: it stopped reading on
    purpose, as ``| head -1`` does; the command's work is done)."""
    real = sys.stdout
    out = _Stdout(real) if real is not None else None
    if out is not None:
        sys.stdout = out
    try:
        try:
            code = _run(argv)
        except SystemExit:
            # argparse swallows a failed write of --help/--version text; report it like any other.
            if out is None or out.failed is None:
                raise
            code = 0
        if out is not None and out.failed is not None:  # a write failed and its error was swallowed
            return _output_failed(out.failed, real)
        return code
    except PrivpkgError as exc:
        return _error(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        try:
            sys.stderr.write("privpkg: interrupted\n")
        except (OSError, ValueError):
            pass
        return 130
    except OSError as exc:
        if out is not None and out.failed is not None:
            return _output_failed(out.failed, real)
        return _error(_os_error(exc), 1)
    finally:
        if out is not None and sys.stdout is out:
            sys.stdout = real


def _output_failed(exc: OSError, stream: Any) -> int:
    _silence_stdout(stream)
    if isinstance(exc, BrokenPipeError):
        return 0  # the reader closed the pipe: it has read all it wanted
    return _error(f"cannot write the output: {_os_error(exc)}", 1)


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        # --help, --version: their text is still buffered; flush it here so a closed pipe is
        # handled by main() and not by the interpreter's shutdown ("Exception ignored ...").
        sys.stdout.flush()
        raise
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    code = func(args)
    sys.stdout.flush()  # same reason: a failed write is reported by main()
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
