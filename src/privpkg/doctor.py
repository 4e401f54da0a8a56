"""``privpkg doctor``: explain how a credential reaches pip, and what stands in the way.

:func:`run_checks` returns the findings as a list of :class:`Check` (status ``ok``, ``warn`` or
``fail`` and a one-line detail); the CLI prints them (or ``--json``) and exits 1 if any failed.
A detail never holds a secret, only which connection and source would answer.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from typing import Any, Literal

from privpkg.errors import PrivpkgError

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    """One finding. ``name`` says what was checked (``store``, ``keyring``, ``expiry``, ...);
    ``detail`` is one line for a person; ``sub`` marks a detail of the check before it (printed
    indented: the environment's connections, each keyring backend's answer for ``--url``)."""

    name: str
    status: Status
    detail: str
    sub: bool = False

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def counted(n: int, unit: str) -> str:
    """``1 day``, ``2 days``: a count with its unit read right (the units here take an s)."""
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


class _Checks(list[Check]):
    def add(self, name: str, status: Status, detail: str, sub: bool = False) -> None:
        self.append(Check(name, status, detail, sub))


def _mode(path: Any) -> str:
    try:
        return f"{path.stat().st_mode & 0o777:04o}"
    except OSError:
        return "?"


def _backend_names(kr: Any) -> list[Any]:
    from keyring.backends.chainer import ChainerBackend

    return list(kr.backends) if isinstance(kr, ChainerBackend) else [kr]


def _explain_bare_host(r: _Checks, lookup: Any, host: str) -> None:
    """Why privpkg gave nothing for a bare ``host[:port]`` lookup, and the opt-in that changes it."""
    from privpkg.connections import HTTP_AUTH_CATEGORIES

    try:
        entries = [c for c in lookup.host_entries(host) if c.category in HTTP_AUTH_CATEGORIES]
    except PrivpkgError as exc:
        r.add("bare-host", "warn", f"{host!r} is not a host[:port]: {exc}", sub=True)
        return
    if not entries:
        r.add("bare-host", "ok", f"no connection has a target on {host} (a bare host only meets targets on the same host and port)", sub=True)
        return
    wide = [c for c in entries if c.host_wide]
    if not wide:
        names = ", ".join(repr(c.name) for c in entries[:5])
        r.add(
            "bare-host",
            "warn",
            f"privpkg refuses the bare-host lookup {host}: {'connection' if len(entries) == 1 else 'connections'} {names} "
            f"did not opt in. A bare host carries no "
            "scheme and no path, so it could be any URL on the host, http:// included; index URLs under a target work "
            "without it. To let one answer: privpkg connection set "
            f"{entries[0].name} --update --keep-secret --host-wide",
            sub=True,
        )
    elif len({c.secret for c in wide}) > 1:
        names = ", ".join(repr(c.name) for c in wide[:5])
        r.add("bare-host", "warn", f"the bare-host lookup {host} is ambiguous: host-wide connections {names} hold different secrets; "
              "keep --host-wide on one of them (privpkg connection set NAME --update --keep-secret --no-host-wide)", sub=True)


def _s3_endpoint_checks(r: _Checks, conns: list[Any]) -> None:
    """S3 credentials serve only the endpoint they are bound to (None = AWS). Tell the holder of a
    connection stored before endpoints existed which workspaces it no longer serves, and what to run."""
    s3 = [c for c in conns if c.category == "S3"]
    if not s3:
        return
    from privpkg import urls
    from privpkg.connections import STORE

    try:
        from privpkg.workspace import all_workspaces

        spaces = [w for w in all_workspaces().values() if w.storage == "s3"]
    except PrivpkgError as exc:
        r.add("s3-endpoint", "warn", f"S3 endpoint check skipped: {exc}")
        return
    for ws in spaces:
        try:
            want = urls.s3_endpoint_key(ws.endpoint_url)
            where = urls.s3_endpoint_label(ws.endpoint_url)
            loc = urls.normalize(ws.location + "/")
        except PrivpkgError as exc:
            r.add("s3-endpoint", "warn", f"workspace {ws.name!r}: {exc}")
            continue
        covering = [c for c in s3 if urls.covers(c.norm, loc)]
        if not covering or any(urls.s3_endpoint_key(c.endpoint) == want for c in covering):
            continue
        for c in covering:
            if c.endpoint is None and c.source == STORE:
                r.add(
                    "s3-endpoint",
                    "warn",
                    f"S3 connection {c.name!r} has no endpoint stored, so it now serves only AWS, but workspace "
                    f"{ws.name!r} ({ws.source}) uses {where}. If these credentials belong to {where}, run: "
                    f"privpkg connection set {c.name} --update --keep-secret --endpoint {where}",
                )
            else:
                r.add(
                    "s3-endpoint",
                    "warn",
                    f"workspace {ws.name!r} ({ws.source}) points bucket {ws.location} at {where}, but connection "
                    f"{c.name!r} is bound to {urls.s3_endpoint_label(c.endpoint)}: it gets no credentials",
                )


def url_to_check(url: str) -> str:
    """``doctor --url``'s argument as the lookup to check: a URL as given (checked, so a typo is
    one usage line), a bare ``host[:port]`` as is (pip's and uv's bare-host lookup, which
    ``doctor --url HOST`` explains), and ``host/path`` as https, normalized as ``auth status``
    and ``auth login`` take it. Raises UsageError."""
    from privpkg import urls
    from privpkg.errors import UsageError

    try:
        if "://" in url:
            urls.normalize(url)
            return url
        if "@" in url:  # never echoed: what is before the @ may be a token
            raise UsageError(f"***@{url.rsplit('@', 1)[1]} has user info; give HOST[:PORT] or the URL alone (privpkg holds the secret)")
        try:
            urls.normalize_netloc(url)
            return url
        except UsageError:
            if "/" not in url:
                raise
        return urls.normalize("https://" + url).url
    except UsageError as exc:
        raise UsageError(f"--url: {exc}") from None


def _shared_target_checks(r: _Checks, conns: list[Any]) -> None:
    """One warning per target held by several connections: only the first answers a lookup
    that names no username (and with the same username, the others never answer at all)."""
    from privpkg.connections import shared_targets
    from privpkg.connections.sources import source_label

    for group in shared_targets(conns):
        first = group[0]
        named = " and ".join(
            f"{c.name!r} (username {c.username}{'' if c.source == 'store' else ', ' + source_label(c.source)})" for c in group[:5])
        more = f" and {len(group) - 5} more" if len(group) > 5 else ""
        if len({c.username for c in group}) < len(group):
            why = f"only {first.name!r} is used for the username they share"
        else:
            why = f"a lookup that names no username gets {first.name!r}"
        r.add("shared-target", "warn", f"connections {named}{more} have the same target {first.target}: {why}; "
              "remove the one you do not use: privpkg connection delete NAME")


def run_checks(url: str | None = None, days: int = 14, pip: str | None = None) -> list[Check]:
    """Every check, in the order a person reads them: privpkg itself, the store and its key, the
    environment's connections, host-wide and S3 endpoint bindings, expiry (within ``days``),
    keyring's backends (and who answers ``url``, and why), then the pip that will run (``pip``,
    default ``pip`` on PATH: :mod:`privpkg.pipcheck`)."""
    from privpkg import __version__, envvars
    from privpkg.connections import STORE, CredentialLookup, store_status
    from privpkg.connections.sources import source_label, unusable_azure_endpoints

    r = _Checks()
    r.add("version", "ok", f"privpkg {__version__} on Python {sys.version.split()[0]} ({sys.executable})")

    status = store_status()
    if status.exists:
        r.add("store", "ok", f"store: {status.path} (mode {_mode(status.path)})")
    else:
        r.add("store", "ok", f"store: {status.path} (not created yet)")
    if status.key_from_env:
        r.add("key", "ok", f"key: from ${envvars.MASTER_KEY}")
    elif status.key_file_exists:
        r.add("key", "ok", f"key: {status.key_file} (mode {_mode(status.key_file)})")
    elif status.exists:
        r.add("key", "fail", f"key: {status.key_file} is missing but the store exists; restore it or set ${envvars.MASTER_KEY}")
    store = status.document
    if status.error is None:
        r.add("store-readable", "ok", f"store readable: {counted(len(store.get('connections') or {}), 'connection')}")
    else:
        r.add("store-readable", "fail", status.error)

    lookup = CredentialLookup(document=store, categories=None)
    for err in lookup.errors:
        r.add("environment", "fail", err)
    env_conns = [c for c in lookup.all() if c.source != STORE]
    present = [v for v in (envvars.CONNECTIONS, *envvars.AZURE_ENDPOINTS) if os.environ.get(v)]
    if present:
        verb = "gives" if len(present) == 1 else "give"
        r.add("environment", "ok", f"environment: {', '.join('$' + v for v in present)} {verb} {counted(len(env_conns), 'read-only connection')}")
    for c in env_conns:
        r.add("environment", "ok", f"{c.name}: {c.target} ({source_label(c.source)})", sub=True)
    for line in unusable_azure_endpoints(os.environ):
        r.add("environment", "warn", line)

    for c in lookup.all():
        if c.host_wide:
            host = c.norm.netloc
            r.add("host-wide", "ok", f"connection {c.name!r} answers bare-host lookups for {host} (--host-wide)"
                   + (f": its secret also reaches http://{host}/ URLs" if c.norm.scheme == "https" else ""))
    _shared_target_checks(r, lookup.all())
    _s3_endpoint_checks(r, lookup.all())

    for c in lookup.all():
        left = c.days_left()
        if left is None:
            continue
        if left < 0:
            renew = (f"renew its secret and \"expires\" in ${c.source[4:]}" if c.source.startswith("env:")
                     else f"renew: privpkg connection set {c.name} --update --expires DATE")
            r.add("expiry", "fail", f"connection {c.name!r} expired on {c.expires} (lookups still serve it); {renew}")
        elif left <= days:
            when = "today" if left == 0 else f"in {counted(left, 'day')}"
            r.add("expiry", "warn", f"connection {c.name!r} expires {when} ({c.expires})")

    try:
        import keyring

        from privpkg.keyring_backend import PrivpkgKeyring

        kr = keyring.get_keyring()
        chain = _backend_names(kr)
        ours = [b for b in chain if isinstance(b, PrivpkgKeyring)]
        names = ", ".join(f"{type(b).__module__}.{type(b).__name__} ({b.priority:g})" for b in chain)
        if ours:
            r.add("keyring", "ok", f"keyring: privpkg's backend is active; lookup order: {names}")
        else:
            r.add("keyring", "fail", f"keyring: privpkg's backend is not active (keyring uses {names}); check PYTHON_KEYRING_BACKEND and keyringrc.cfg")
        if url:
            from privpkg import lookuplog
            from privpkg.urls import redact

            # Never echo user:password@ or a query (it may hold a signature), bare hosts included.
            shown_url = redact(url) if "://" in url else ("***@" + url.rsplit("@", 1)[1] if "@" in url else url)
            with lookuplog.paused():  # doctor's own question is no lookup of pip's: not for doctor --last
                _keyring_url_checks(r, lookup, chain, url, shown_url)
    except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
        r.add("keyring", "fail", f"keyring could not be loaded: {type(exc).__name__}: {exc}")

    from privpkg.pipcheck import check_pip

    for name, verdict, detail in check_pip(pip, url):
        r.add(name, verdict, detail)
    return list(r)


def _keyring_url_checks(r: _Checks, lookup: Any, chain: list[Any], url: str, shown_url: str) -> None:
    """Which keyring backend answers ``url`` (``doctor --url``), and why; when none does, what to run."""
    from privpkg.connections import CredentialLookup
    from privpkg.keyring_backend import PrivpkgKeyring

    for b in chain:
        try:
            cred = b.get_credential(url, None)
        except Exception as exc:  # noqa: BLE001 - a foreign backend's failure is a finding
            r.add("keyring-url", "warn", f"{type(b).__name__} raised {type(exc).__name__} for {shown_url}", sub=True)
            continue
        if cred is None:
            r.add("keyring-url", "ok", f"{type(b).__name__}: nothing for {shown_url}", sub=True)
            if isinstance(b, PrivpkgKeyring) and "://" not in url:
                _explain_bare_host(r, lookup, url)
            continue
        if isinstance(b, PrivpkgKeyring):
            conn = CredentialLookup().find(url)
            if conn is None:
                why = "generic secret"
            elif "://" in url:
                why = f"connection {conn.name!r} ({conn.source}), target {conn.target} is the longest prefix"
            else:
                why = f"connection {conn.name!r} ({conn.source}) opted in to bare-host lookups (--host-wide)"
            r.add("keyring-url", "ok", f"{type(b).__name__} answers {shown_url}: {why}, username {cred.username!r}", sub=True)
        else:
            r.add("keyring-url", "ok", f"{type(b).__name__} answers {shown_url} (username {cred.username!r})", sub=True)
        break
    else:
        r.add("keyring-url", "fail", f"no keyring backend has a credential for {shown_url} ({_login_hint(url)})")


def _login_hint(url: str) -> str:
    """What to run when nothing answers ``url``: ``auth status``'s hint for a URL (the URL
    normalized: no user:password@, no query); for a bare host, its index URL is what to check."""
    from privpkg import urls

    if "://" not in url:
        host = url.rsplit("@", 1)[-1]
        return (f"a bare host is what pip asks for direct URLs and --find-links; for an index on it, check its URL: "
                f"privpkg doctor --url https://{host}/PATH")
    norm = urls.normalize(url)
    if norm.scheme not in ("http", "https"):
        return f"add a connection for it: privpkg connection set NAME --target {norm.url}"
    return f"log in with: privpkg auth login {norm.url}"


def confusion_checks(requirements: list[str] | None = None, env_files: list[str] | None = None) -> list[Check]:
    """Private feeds used through ``--extra-index-url`` (:mod:`privpkg.confusion`): pip's config
    and environment always; the named requirements files and environment.yml files, or, when
    none is named, ``requirements.txt`` and ``environment.yml``/``.yaml`` in the current directory."""
    from pathlib import Path

    from privpkg import confusion
    from privpkg.connections import CredentialLookup, store_status

    # Files found in the current directory are scanned as far as they can be (a broken one is a
    # warning); a file named on the command line that cannot be read is an error.
    errors: list[str] | None = None
    if not requirements and not env_files:
        requirements = [n for n in confusion.DEFAULT_REQUIREMENTS if os.path.isfile(n)]
        env_files = [n for n in confusion.DEFAULT_ENV_FILES if os.path.isfile(n)]
        errors = []
    lookup = CredentialLookup(document=store_status().document)
    found = confusion.scan(lookup, requirements=[Path(p) for p in requirements or ()], env_files=[Path(p) for p in env_files or ()],
                           errors=errors)
    return [Check("dependency-confusion", "warn", f.line()) for f in found] + [
        Check("dependency-confusion", "warn", f"extra-index-url check skipped: {e}") for e in errors or ()]
