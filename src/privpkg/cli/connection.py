"""``privpkg connection``: store, list, show, test and delete the credentials pip and the
workspaces use. Secrets are read from stdin (when it is not a terminal) or a hidden prompt, never
from argv, and never printed."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from privpkg.cli.output import add_group, add_json_option, counted, out, print_json, table, warn
from privpkg.errors import UsageError

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
    value = validate_secret(value)
    if value != value.strip():
        # Stored as given (a space may be part of a secret), but a pasted or `echo "$PAT "`
        # secret with one at an end is the usual reason a feed then answers 401.
        warn(["the secret begins or ends with a space, which is stored as part of it"])
    return value


def secret_words(category: str, auth_type: str | None = None) -> str:
    """What the hidden prompt asks for: the secret as the service calls it."""
    if category == "S3":
        return "secret access key"
    if category == "AzureBlob":
        return "account key or SAS"
    return {"Bearer": "token", "ApiKey": "API key"}.get(auth_type or "", "PAT")


def expiry_words(conn: Any) -> str:
    """A connection's expiry as `auth status` and `connection list` show it: ``2027-03-01 (in 99
    days)``, ``(today)``, ``(expired 2 days ago)``, or ``-`` for none."""
    left = conn.days_left()
    if left is None:
        return "-"
    if left < 0:
        return f"{conn.expires} (expired {counted(-left, 'day')} ago)"
    return f"{conn.expires} (today)" if left == 0 else f"{conn.expires} (in {counted(left, 'day')})"


def warn_stored(conn: Any) -> None:
    """The warnings a just-stored connection earns (``connection set`` and ``auth login``): one
    line for a target that overlaps other connections', one for an expiry date in the past."""
    from privpkg.connections import store_warnings

    warn(store_warnings(conn))


def sync_conda(touched_channel: bool) -> None:
    """After a connection verb: keep condarc's channel_settings in step once ``setup conda`` has
    run, else (for a CondaChannel connection) say how to route conda to it. The verb's own change
    is done, so a failure here is a warning."""
    from privpkg.conda import condarc
    from privpkg.errors import PrivpkgError

    if not (touched_channel or condarc.set_up()):
        return
    try:
        lines = condarc.sync()
    except PrivpkgError as exc:
        warn([f"conda: condarc not updated ({exc}); run: privpkg setup conda"])
        return
    for line in lines:
        out(line)


def cmd_connection_set(args: argparse.Namespace) -> int:
    from privpkg import connections

    changes: dict[str, Any] = {
        "target": args.target, "category": args.category, "auth_type": args.auth_type,
        "username": args.username, "expires": args.expires or None, "allow_http": args.allow_http,
        "host_wide": args.host_wide, "endpoint": args.endpoint,
    }
    # Everything is checked before the secret is asked for, so a typo costs no paste.
    # Without --update an existing name is refused; with it a missing name is still created.
    existing = connections.check_update(args.name, exist_ok=args.update, keep_secret=args.keep_secret, **changes)
    secret = None
    if not args.keep_secret:
        category = args.category or (connections.get_connection(args.name).category if existing else "PythonFeed")
        secret = read_secret(f"{secret_words(connections.validate_category(category), args.auth_type)} for {args.name}: ")
    conn = connections.update_connection(args.name, secret, create=True, exist_ok=args.update, **changes)
    verb = "updated" if existing else "stored"
    extra = ""
    if conn.host_wide:
        extra = "; answers bare-host lookups (--host-wide)"
    if conn.category == "S3":
        from privpkg import urls

        extra = f"; endpoint {urls.s3_endpoint_label(conn.endpoint)}"
    out(f"{verb} connection {conn.name!r}: {conn.category} {conn.target} (username {conn.username}){extra}")
    warn_stored(conn)
    sync_conda(conn.category == "CondaChannel" or (existing and args.category is not None))
    return 0


def cmd_connection_list(args: argparse.Namespace) -> int:
    from privpkg.connections import list_connections
    from privpkg.connections.sources import source_label

    errors: list[str] = []
    conns = list_connections(category=args.category, target=args.target, errors=errors)
    warn(errors)
    if args.json:
        print_json([c.public() for c in conns])
        return 0
    if not conns:
        out("no connections (add one with: privpkg connection set NAME --target URL)")
        return 0
    rows = [["NAME", "CATEGORY", "TARGET", "USERNAME", "EXPIRES", "SOURCE"]]
    rows += [[c.name, c.category, c.target, c.username, expiry_words(c), source_label(c.source)] for c in conns]
    table(rows)
    return 0


def cmd_connection_show(args: argparse.Namespace) -> int:
    from privpkg.connections import get_connection

    errors: list[str] = []
    try:
        conn = get_connection(args.name, errors=errors)
    finally:
        warn(errors)  # before a "no connection named" error too: a malformed variable is often why
    from privpkg.connections.sources import source_label

    info = conn.public()
    if args.json:
        print_json(info)
        return 0
    for key, value in info.items():
        if key == "endpoint" and value is None:
            value = "AWS (none stored)"
        elif key == "source":
            value = source_label(value)  # as `connection list` words it
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        # The labels are the option names (--auth-type, --host-wide); the secret is never
        # described beyond being there (not even its length).
        out(f"{key.replace('_', '-') + ':':<10} {value if value is not None else '-'}")
    out(f"{'secret:':<10} {'stored' if conn.source == 'store' else 'in $' + conn.source.split(':', 1)[-1]}")
    left = conn.days_left()
    if left is not None and left < 0:
        # A diagnostic, on stderr as every warning is: stdout stays the connection's fields.
        renew = f"; renew it with: privpkg connection set {conn.name} --update --expires DATE" if conn.source == "store" else ""
        warn([f"connection {conn.name!r} expired {counted(-left, 'day')} ago ({conn.expires}){renew}"])
    return 0


def cmd_connection_delete(args: argparse.Namespace) -> int:
    from privpkg.connections import delete_connection

    delete_connection(args.name)
    out(f"deleted connection {args.name!r}")
    sync_conda(False)
    return 0


def cmd_connection_test(args: argparse.Namespace) -> int:
    from privpkg.connections import get_connection
    from privpkg.probe import check_connection

    errors: list[str] = []
    try:
        conn = get_connection(args.name, errors=errors)
    finally:
        warn(errors)  # a CI secret with a newline makes $PRIVPKG_CONNECTIONS invalid: say so
    verdict = check_connection(conn, args.url, timeout=args.timeout)
    out(verdict.message)
    return 0 if verdict.ok else 1


def add_parser(sub: Any) -> None:
    """Add ``connection`` and its actions to the top-level subparsers ``sub``."""
    csub = add_group(sub, "connection", help="store, list, show, test and delete feed credentials",
                     description="Connections map a feed base URL to a PAT, kept in an encrypted store.")

    s = csub.add_parser("set", help="add a connection, or --update one",
                        description="Add a connection (or --update an existing one).",
                        epilog=EPILOG_CONNECTION_SET, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("name", metavar="NAME", help="a short name, e.g. myfeed")
    s.add_argument("--target", help="feed base URL; it serves every URL below it (path-segment prefix)")
    s.add_argument("--category", help="PythonFeed (default), CondaChannel, AzureBlob or S3")
    s.add_argument("--username", help="username sent with the PAT (default: __token__)")
    s.add_argument("--expires", metavar="DATE", help="expiry date of the PAT, YYYY-MM-DD (doctor warns 14 days ahead)")
    s.add_argument("--auth-type", help="how the secret is sent: PAT (HTTP Basic password, the default); CondaChannel only: Bearer "
                   "(Authorization: Bearer; token on anaconda.org) or ApiKey (quetz's X-API-Key header)")
    s.add_argument("--allow-http", action="store_true", help="allow a plain-http target that is not loopback")
    s.add_argument("--update", action="store_true", help="replace an existing connection's secret and given settings")
    s.add_argument("--keep-secret", action="store_true", help="with --update: change only the given settings, keep the stored secret")
    s.add_argument("--host-wide", dest="host_wide", action="store_true", default=None,
                   help="also answer pip's/uv's bare host[:port] lookup (no scheme, no path): the secret can then go to "
                        "any URL on this host, http:// included")
    s.add_argument("--no-host-wide", dest="host_wide", action="store_false", help="answer only URLs under the target (the default)")
    # --endpoint-url too: workspace add's (and the AWS CLI's) name for the same thing.
    s.add_argument("--endpoint", "--endpoint-url", dest="endpoint", metavar="URL",
                   help="S3: the endpoint these credentials belong to (MinIO, R2, ...; default AWS). "
                        "A workspace at another endpoint never gets them")
    s.set_defaults(func=cmd_connection_set)

    s = csub.add_parser("list", help="list connections (store and environment)", description="List connections; secrets are never shown.")
    add_json_option(s)
    s.add_argument("--category", help="only this category")
    s.add_argument("--target", metavar="URL", help="only connections that serve this URL")
    s.set_defaults(func=cmd_connection_list)

    s = csub.add_parser("show", help="show one connection (without its secret)", description="Show one connection; the secret is never shown.")
    s.add_argument("name", metavar="NAME")
    add_json_option(s)
    s.set_defaults(func=cmd_connection_show)

    s = csub.add_parser("delete", help="delete a connection", description="Delete a connection from the store.")
    s.add_argument("name", metavar="NAME")
    s.set_defaults(func=cmd_connection_delete)

    s = csub.add_parser("test", help="check a connection's credential against its target",
                        description="Read the target with the stored credential: feeds with an HTTP GET (HTTP Basic), "
                        "AzureBlob connections with List Blobs, S3 connections with ListObjectsV2. Prints one line "
                        "starting with a verdict: OK, REJECTED, FORBIDDEN, NOT FOUND, NOT AUTHORITATIVE (203), "
                        "SIGN-IN REDIRECT, CREDENTIAL DROPPED, TOO MANY REDIRECTS, FAILED, UNREACHABLE or TIMED OUT. "
                        "Exit 0 only for OK: the target itself answered 2xx to a request that carried the credential.")
    s.add_argument("name", metavar="NAME")
    s.add_argument("--url", metavar="URL", help="feed URL under the target to request instead (e.g. the feed's simple index)")
    s.add_argument("--timeout", type=float, default=10.0, help="seconds for the whole exchange, redirects included (default 10)")
    s.set_defaults(func=cmd_connection_test)
