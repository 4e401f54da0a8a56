"""``privpkg auth``: ``login URL``, ``logout URL`` and ``status``, the verbs of ``uv auth``,
conda-auth and ``pixi auth``, as thin wrappers over :mod:`privpkg.connections`.

A login stores (or rotates) the connection whose target is the URL (a bare host or host/path
means https; a last ``/simple`` segment is dropped, as uv does) and names it after that target.
The secret comes from a hidden prompt on a terminal, else from stdin, never argv. It is checked
against the URL first (``connection test``'s probe) when the prompt was interactive or with
``--verify``, and stored only on an OK verdict. A logout removes the connection with exactly
that target; for any other URL it names the connection that answers it and changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from privpkg.cli.connection import expiry_words, read_secret, secret_words, sync_conda, warn_stored
from privpkg.cli.output import add_group, add_json_option, out, print_json, table, warn
from privpkg.errors import NotFoundError, PrivpkgError, UsageError

EPILOG_LOGIN = """\
The PAT is read from a hidden prompt on a terminal, otherwise from stdin; never from argv.
On a terminal (or with --verify) it is first sent to URL, as `privpkg connection test` does,
and stored only if the feed accepts it; --no-verify stores it unchecked (uv and pixi never
check; conda-auth checks with --verify).

examples:
  privpkg auth login pkgs.dev.azure.com/myorg/_packaging/feed/pypi/simple/
  echo "$PAT" | privpkg auth login https://gitlab.example.com/api/v4/projects/7/packages/pypi/simple --verify
  privpkg auth login prefix.dev/my-channel --category CondaChannel --auth-type Bearer
  privpkg auth logout pkgs.dev.azure.com/myorg/_packaging/feed/pypi/simple/
"""


def cmd_auth_login(args: argparse.Namespace) -> int:
    from privpkg import connections
    from privpkg.probe import check_connection

    target, check_url = connections.login_target(args.url, allow_http=args.allow_http)
    category = connections.validate_category(args.category) if args.category else None
    if category not in (None, "PythonFeed", "CondaChannel"):
        raise UsageError(f"auth login stores feeds and channels (--category PythonFeed or CondaChannel), not {category}")
    if category == "CondaChannel" and check_url == target:
        check_url = target + "noarch/repodata.json"  # every conda channel serves it; its root need not answer
    expires = connections.validate_expires(args.expires)
    name, existing = connections.login_name(target, args.username)
    # Checked before the secret is asked for, so a typo costs no paste.
    kinds = {"category": category, "auth_type": args.auth_type}
    connections.check_update(name, target=target, username=args.username, expires=expires, allow_http=args.allow_http, **kinds)
    interactive = sys.stdin is not None and sys.stdin.isatty()
    verify = interactive if args.verify is None else args.verify
    if verify and not 0 < args.timeout < float("inf"):
        raise UsageError(f"--timeout must be a positive number of seconds, not {args.timeout:g}")
    if verify:
        from privpkg import http

        http.ca_bundle()  # an unusable CA bundle: one line before the PAT is asked for
    secret = read_secret(f"{secret_words(category or 'PythonFeed', args.auth_type)} for {target}: ")
    verdict = None
    if verify:
        cat = category or "PythonFeed"
        candidate = connections.Connection(name, cat, target, connections.validate_auth_for(cat, args.auth_type or "PAT"),
                                           connections.validate_username(args.username), secret, expires)
        verdict = check_connection(candidate, check_url, timeout=args.timeout, login=True)
        if not verdict.ok:
            # The verdict's own words (REJECTED, FORBIDDEN, SIGN-IN REDIRECT, ...), exit 1.
            raise PrivpkgError(f"nothing stored: {verdict.message}")
    conn = connections.update_connection(name, secret, create=True, exist_ok=True, target=target,
                                         username=args.username, expires=expires, allow_http=args.allow_http, **kinds)
    if verdict is not None:
        checked = verdict.message
    else:
        checked = "not verified (--no-verify)" if args.verify is False else "not verified (piped PAT; --verify checks it first)"
    out(f"{'updated' if existing else 'stored'} connection {conn.name!r}: {conn.target} (username {conn.username}); {checked}")
    warn_stored(conn)
    sync_conda(conn.category == "CondaChannel")
    return 0


def cmd_auth_logout(args: argparse.Namespace) -> int:
    from privpkg import connections

    target, check_url = connections.login_target(args.url, allow_http=True)  # only names what to remove
    errors: list[str] = []
    conns = connections.list_connections(errors=errors)
    warn(errors)
    exact = [c for c in conns if c.target == target and (args.username is None or c.username == args.username)]
    if len(exact) > 1:
        users = ", ".join(sorted(repr(c.username) for c in exact))
        raise UsageError(f"{len(exact)} connections have the target {target} (usernames {users}); pass --username")
    if exact:
        connections.delete_connection(exact[0].name)
        out(f"deleted connection {exact[0].name!r} ({target})")
        sync_conda(False)
        return 0
    answering = connections.CredentialLookup(categories=None).find(check_url, args.username)
    if answering is not None:
        raise NotFoundError(
            f"no connection has the target {target}; {check_url} is answered by connection {answering.name!r} "
            f"(target {answering.target}, {_source(answering)}); remove that with: privpkg connection delete {answering.name}"
        )
    raise NotFoundError(f"no connection has the target {target}, and none answers {check_url} (see: privpkg auth status)")


def _source(conn: Any) -> str:
    from privpkg.connections import STORE

    return "store" if conn.source == STORE else f"from ${conn.source.split(':', 1)[-1]}"


def _answers(conn: Any) -> str:
    """What a connection answers, in words: the URLs under its target, and bare-host lookups
    when it opted in; an S3 connection its bucket at its endpoint."""
    if conn.category == "S3":
        return f"{conn.target} at {conn.endpoint or 'AWS'}"
    words = f"URLs under {conn.target}"
    if conn.host_wide:
        words += f" and bare-host lookups for {conn.norm.netloc}"
    return words


def cmd_auth_status(args: argparse.Namespace) -> int:
    from privpkg import urls
    from privpkg.connections import list_connections

    # A URL to look up, not a target: user:password@ and a query are dropped (as pip's lookup
    # drops them), never echoed; no scheme means https, as for login.
    where = urls.normalize(args.url if "://" in args.url else "https://" + args.url).url if args.url else None
    errors: list[str] = []
    conns = list_connections(target=where, errors=errors)
    warn(errors)
    if args.json:
        print_json([{**c.public(), "answers": _answers(c), "days_left": c.days_left(), "expired": c.expired} for c in conns])
        return 0
    if not conns:
        out("no connections" + (f" answer {where}" if where else "") + " (log in with: privpkg auth login URL)")
        return 0
    rows = [["NAME", "ANSWERS", "USERNAME", "EXPIRES", "SOURCE"]]
    rows += [[c.name, _answers(c), c.username, expiry_words(c), _source(c)] for c in conns]
    table(rows)
    return 0


def add_parser(sub: Any) -> None:
    """Add ``auth`` and its actions to the top-level subparsers ``sub``."""
    asub = add_group(sub, "auth", help="log in to a feed URL, log out, show stored logins (as uv auth does)",
                     description="Log in to a feed URL (a connection named after it), log out, show what is stored.")

    s = asub.add_parser("login", help="store a PAT for a feed URL (checked first on a terminal)",
                        description="Store a PAT for URL in a connection named after it (a second login to the same "
                        "URL and username replaces its secret).",
                        epilog=EPILOG_LOGIN, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("url", metavar="URL", help="feed URL; a bare host or host/path means https, a last /simple is dropped")
    s.add_argument("--username", help="username sent with the PAT (default: __token__; Azure DevOps accepts any)")
    s.add_argument("--expires", metavar="DATE", help="expiry date of the PAT, YYYY-MM-DD (doctor warns 14 days ahead)")
    s.add_argument("--verify", dest="verify", action="store_true", default=None,
                   help="check the PAT against URL before storing it (the default on a terminal)")
    s.add_argument("--no-verify", dest="verify", action="store_false", help="store the PAT without checking it")
    s.add_argument("--timeout", type=float, default=10.0, help="seconds for the whole check (default 10)")
    s.add_argument("--allow-http", action="store_true", help="allow a plain-http URL that is not loopback")
    s.add_argument("--category", help="PythonFeed (default) or CondaChannel (a conda channel URL; checked by reading its "
                   "noarch/repodata.json)")
    s.add_argument("--auth-type", help="PAT (HTTP Basic, the default); CondaChannel only: Bearer or ApiKey")
    s.set_defaults(func=cmd_auth_login)

    s = asub.add_parser("logout", help="remove the connection whose target is URL",
                        description="Remove the connection whose target is exactly URL (normalized as login does). "
                        "For another URL, name the connection that answers it and exit 1.")
    s.add_argument("url", metavar="URL")
    s.add_argument("--username", help="only the connection with this username")
    s.set_defaults(func=cmd_auth_logout)

    s = asub.add_parser("status", help="list stored logins and what they answer (no secrets)",
                        description="List connections (store and environment), what each answers, its expiry and "
                        "source; secrets are never shown.")
    s.add_argument("url", metavar="URL", nargs="?", help="only the connections that cover this URL")
    add_json_option(s)
    s.set_defaults(func=cmd_auth_status)
