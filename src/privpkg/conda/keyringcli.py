"""The ``keyring`` command conda's pip step runs: pip's credential lookup answered from
privpkg's store without keyring's start-up, everything else handed to keyring's own CLI.

conda's pip step runs ``keyring`` (pip's ``subprocess`` provider) through the launcher
:mod:`privpkg.conda.pipstep` puts first on PATH. keyring's CLI spends most of a lookup starting
up (``import keyring`` pulls in urllib.request and email; loading the backends scans every
distribution's entry points, runs ctypes ``find_library`` for the macOS backend and probes
D-Bus). This module answers the two calls pip makes::

    keyring --mode=creds --output=json get URL     # pip 26.2+
    keyring get SERVICE USER                        # older pip (and uv): password, plain

with :func:`privpkg.keyring_lookup.answer`, the rules :class:`privpkg.keyring_backend.PrivpkgKeyring`
uses (same matching, trust rules, "expired is still served" warning, lookup log record), and
prints what keyring's CLI prints for that answer. It answers only when keyring's CLI would ask
privpkg's backend first: no ``PYTHON_KEYRING_BACKEND``, no ``KEYRING_PROPERTY_*`` setting, no
keyring config file, and no keyring backend installed besides keyring's own and privpkg's
(read from the distributions' ``entry_points.txt``; another backend could outrank privpkg's).
Any other call, any of those, and every miss, ``exec``\\s keyring's CLI with the same arguments
(``python -P -m keyring``), so other backends answer as before and a miss is looked up (and
logged) once, by keyring. Imports: the standard library, and privpkg only for a lookup.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

#: keyring's own backends are entry points of the ``keyring`` distribution under this package.
KEYRING_OWN = "keyring.backends."
#: privpkg's backend's entry point (pyproject's ``keyring.backends`` group).
PRIVPKG_BACKEND = "privpkg.keyring_backend"
_MODES = {"--mode=creds": "creds", "--mode=password": "password"}
_OUTPUTS = {"--output=json": "json", "--output=plain": "plain"}


def parse(argv: Sequence[str]) -> tuple[str, str, str, str | None] | None:
    """``(mode, output, service, username)`` for a ``get`` this module answers, else None.
    Only the exact spellings pip uses (``--mode=X``, ``--output=X`` before ``get``): keyring's
    argparse also takes abbreviations and separate values, which go to keyring's CLI."""
    mode, output = "password", "plain"
    args = list(argv)
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in _MODES:
            mode = _MODES[flag]
        elif flag in _OUTPUTS:
            output = _OUTPUTS[flag]
        else:
            return None
    if not args or args[0] != "get" or len(args) not in (2, 3) or any(a.startswith("-") for a in args[1:]):
        return None
    service, username = args[1], (args[2] if len(args) == 3 else None)
    if username is None and mode != "creds":
        return None  # keyring's CLI prints its usage error
    return mode, output, service, username


def _entry_point_values(text: str, group: str) -> list[str]:
    """The values of ``group``'s entries in an ``entry_points.txt`` (an ini file)."""
    values: list[str] = []
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            inside = line == f"[{group}]"
        elif inside and "=" in line and not line.startswith(("#", ";")):
            values.append(line.split("=", 1)[1].strip())
    return values


def foreign_backends(path: Sequence[str] | None = None) -> list[str]:
    """The ``keyring.backends`` entry points on ``path`` (default ``sys.path``) other than
    keyring's own and privpkg's, read from each distribution's ``entry_points.txt`` as
    importlib.metadata finds them (``*.dist-info``/``*.egg-info`` folders in each path entry)
    without importing it."""
    found: list[str] = []
    for entry in sys.path if path is None else path:
        try:
            with os.scandir(entry or ".") as it:
                dists = [e.name for e in it if e.name.endswith((".dist-info", ".egg-info"))]
        except OSError:
            continue  # a zip file or a missing folder holds no distribution here
        for dist in dists:
            try:
                with open(os.path.join(entry or ".", dist, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except FileNotFoundError:
                continue
            except (OSError, ValueError):
                found.append(dist)  # unreadable: it may declare a backend, so count it as one
                continue
            is_keyring = dist.lower().startswith("keyring-")
            for value in _entry_point_values(text, "keyring.backends"):
                module = value.split(":", 1)[0].strip()
                if module == PRIVPKG_BACKEND or (is_keyring and module.startswith(KEYRING_OWN)):
                    continue
                found.append(value)
    return found


def keyring_config_file() -> str:
    """keyring's config file (keyring 25's ``core._config_path()``: ``platform_.config_root()``,
    which is the XDG path on every POSIX system)."""
    root = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(root, "python_keyring", "keyringrc.cfg")


def privpkg_answers_first() -> bool:
    """Whether keyring's CLI, here, would ask privpkg's backend before any other: keyring's
    default choice (no backend named in the environment or a config file, no backend property
    set, which could switch privpkg's backend to store-everything mode) and no other backend
    installed that might outrank it."""
    if os.environ.get("PYTHON_KEYRING_BACKEND"):
        return False
    if any(k.startswith("KEYRING_PROPERTY_") for k in os.environ):
        return False
    if os.path.lexists(keyring_config_file()):
        return False
    return not foreign_backends()


def keyring_cli(argv: Sequence[str]) -> None:
    """Replace this process with keyring's CLI (this interpreter, ``-P`` as the launcher runs)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-P", "-m", "keyring", *argv])


def lookup(mode: str, output: str, service: str, username: str | None, *, warn: Callable[[str], None] | None = None,
           asker: tuple[str, str | None, int] | None = None) -> str | None:
    """What keyring's CLI prints for a hit from privpkg's backend (without the final newline),
    or None for a miss. The warnings of a hit go to ``warn`` (default: printed) and its lookup
    is recorded as the backend does (``asker``: who asked, when not this process); a miss
    prints and records nothing (keyring's CLI, run next, does both)."""
    from privpkg import keyring_lookup

    warnings: list[str] = []
    errors: list[str] = []
    conn, reason, detail = keyring_lookup.answer(service, username, errors, warn=warnings.append)
    if conn is None:
        return None
    for line in warnings:
        (warn or keyring_lookup.warn)(line)
    if reason is not None:
        keyring_lookup.record(service, username, mode, reason, conn, detail, errors, asker=asker)
    values = {"username": conn.username, "password": conn.secret} if mode == "creds" else {"password": conn.secret}
    if output == "json":
        import json

        return json.dumps(values)
    return "\n".join(str(v) for v in values.values())


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    call = parse(args)
    text = None
    try:
        if call is not None and privpkg_answers_first():
            # The lookup log names the program from sys.argv[0]: this is the `keyring` command
            # pip ran, logged as keyring's CLI is ("keyring, run by pip").
            sys.argv[0] = "keyring"
            text = lookup(*call)
    except Exception:  # noqa: BLE001 - never a traceback: keyring's CLI answers instead
        text = None
    if text is not None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return 0
    keyring_cli(args)
    return 1  # not reached: execv replaced this process


if __name__ == "__main__":
    sys.exit(main())
