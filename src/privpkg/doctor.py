"""``privpkg doctor``: explain how a credential reaches pip, and what stands in the way.

Each check prints one line starting with ``ok``, ``warn`` or ``FAIL``; any FAIL makes the exit
code 1. Secrets are never printed, only which connection and source would answer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Any

from privpkg.errors import PrivpkgError


class _Report:
    def __init__(self) -> None:
        self.failed = False

    def line(self, status: str, text: str) -> None:
        if status == "FAIL":
            self.failed = True
        sys.stdout.write(f"{status:<4}  {text}\n")


def _mode(path: Any) -> str:
    try:
        return f"{path.stat().st_mode & 0o777:04o}"
    except OSError:
        return "?"


def _backend_names(kr: Any) -> list[Any]:
    from keyring.backends.chainer import ChainerBackend

    return list(kr.backends) if isinstance(kr, ChainerBackend) else [kr]


def _pip_provider() -> tuple[str | None, str]:
    env = os.environ.get("PIP_KEYRING_PROVIDER")
    if env:
        return env, "$PIP_KEYRING_PROVIDER"
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True, text=True, timeout=60, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None, "pip not runnable"
    if out.returncode != 0:
        return None, "pip not installed in this environment"
    for line in out.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.strip().endswith(("keyring-provider", "keyring_provider")):
            return value.strip().strip("'\""), f"pip config ({key.strip()})"
    return None, "pip config"


def run_doctor(url: str | None = None, days: int = 14) -> int:
    from privpkg import __version__
    from privpkg.connections import CredentialLookup, ENV_CONNECTIONS, ENV_ENDPOINTS
    from privpkg.vault import KEY_ENV, Vault

    r = _Report()
    r.line("ok", f"privpkg {__version__} on Python {sys.version.split()[0]} ({sys.executable})")

    vault = Vault()
    if vault.exists():
        r.line("ok", f"store: {vault.path} (mode {_mode(vault.path)})")
    else:
        r.line("ok", f"store: {vault.path} (not created yet)")
    if os.environ.get(KEY_ENV):
        r.line("ok", f"key: from ${KEY_ENV}")
    elif vault.key_file.exists():
        r.line("ok", f"key: {vault.key_file} (mode {_mode(vault.key_file)})")
    elif vault.exists():
        r.line("FAIL", f"key: {vault.key_file} is missing but the store exists; restore it or set ${KEY_ENV}")
    try:
        store = vault.load()
        r.line("ok", f"store readable: {len(store.get('connections') or {})} connection(s)")
    except PrivpkgError as exc:
        r.line("FAIL", str(exc))
        store = {}

    lookup = CredentialLookup(store=store, categories=None)
    for err in lookup.errors:
        r.line("FAIL", err)
    env_conns = [c for c in lookup.all() if c.source != "store"]
    present = [v for v in (ENV_CONNECTIONS, *ENV_ENDPOINTS) if os.environ.get(v)]
    if present:
        r.line("ok", f"environment: {', '.join('$' + v for v in present)} give {len(env_conns)} read-only connection(s)")
    for c in env_conns:
        r.line("ok", f"  {c.name}: {c.target} ({c.source})")

    for c in lookup.all():
        left = c.days_left()
        if left is None:
            continue
        if left < 0:
            r.line("FAIL", f"connection {c.name!r} expired on {c.expires}; renew: privpkg connection set {c.name} --update --expires DATE")
        elif left <= days:
            r.line("warn", f"connection {c.name!r} expires in {left} day(s) ({c.expires})")

    try:
        import keyring
        from privpkg.keyring_backend import PrivpkgKeyring

        kr = keyring.get_keyring()
        chain = _backend_names(kr)
        ours = [b for b in chain if isinstance(b, PrivpkgKeyring)]
        names = ", ".join(f"{type(b).__module__}.{type(b).__name__} ({b.priority:g})" for b in chain)
        if ours:
            r.line("ok", f"keyring: privpkg's backend is active; lookup order: {names}")
        else:
            r.line("FAIL", f"keyring: privpkg's backend is not active (keyring uses {names}); check PYTHON_KEYRING_BACKEND and keyringrc.cfg")
        if url:
            from privpkg.urls import redact

            shown = redact(url)  # never echo user:password@ or a query (it may hold a signature)
            for b in chain:
                try:
                    cred = b.get_credential(url, None)
                except Exception as exc:  # noqa: BLE001 - a foreign backend's failure is a finding
                    r.line("warn", f"  {type(b).__name__} raised {type(exc).__name__} for {shown}")
                    continue
                if cred is None:
                    r.line("ok", f"  {type(b).__name__}: nothing for {shown}")
                    continue
                if isinstance(b, PrivpkgKeyring):
                    conn = CredentialLookup().find(url)
                    why = f"connection {conn.name!r} ({conn.source}), target {conn.target} is the longest prefix" if conn else "generic secret"
                    r.line("ok", f"  {type(b).__name__} answers {shown}: {why}, username {cred.username!r}")
                else:
                    r.line("ok", f"  {type(b).__name__} answers {shown} (username {cred.username!r})")
                break
            else:
                r.line("FAIL", f"no keyring backend has a credential for {shown}")
    except Exception as exc:  # noqa: BLE001 - doctor reports, it does not crash
        r.line("FAIL", f"keyring could not be loaded: {type(exc).__name__}: {exc}")

    cli = shutil.which("keyring")
    if cli:
        r.line("ok", f"keyring CLI on PATH: {cli}")
    else:
        r.line("warn", "no keyring CLI on PATH: pip's subprocess provider cannot find it")

    provider, where = _pip_provider()
    if provider in ("subprocess", "import"):
        r.line("ok", f"pip keyring-provider = {provider} (from {where})")
    elif provider == "disabled":
        r.line("FAIL", f"pip keyring-provider = disabled (from {where}): pip will never ask keyring")
    else:
        shown = provider or "auto (default)"
        r.line("warn", f"pip keyring-provider = {shown} ({where}): pip asks keyring only if it can import it or find its CLI, "
               "and never with --no-input; run `privpkg setup pip`")
    r.line("ok" if not r.failed else "FAIL", "all checks passed" if not r.failed else "some checks failed")
    return 1 if r.failed else 0



