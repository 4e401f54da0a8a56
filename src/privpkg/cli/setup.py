"""``privpkg setup pip``: point pip's user configuration at keyring, or install the pip shim
(``privpkg://`` URLs) into another interpreter's environment; ``privpkg setup uv``: turn on uv's
keyring lookups in the user's uv.toml; ``privpkg setup conda``: route conda's requests to private
channels to privpkg's auth handler in the user's condarc. ``--undo`` reverts each."""

from __future__ import annotations

import argparse
from typing import Any

from privpkg.cli.output import add_group, out, warn
from privpkg.errors import UsageError


def cmd_setup_pip(args: argparse.Namespace) -> int:
    from privpkg.setup_pip import install_shim, setup_pip, undo_setup_pip, uninstall_shim

    if args.python:
        # Each option of the pip-config form is refused here rather than ignored.
        for given, option in ((args.config, "--config"), (args.provider, "--provider")):
            if given:
                raise UsageError(f"--python and {option} do not go together (--python installs the pip shim; {option} is for the pip config)")
        out(uninstall_shim(args.python) if args.undo else install_shim(args.python, break_system_packages=args.break_system_packages))
        return 0
    if args.break_system_packages:
        raise UsageError("--break-system-packages goes with --python")
    if args.undo:
        if args.provider:
            raise UsageError("--undo and --provider do not go together (--undo restores what setup pip wrote)")
        out(undo_setup_pip(config=args.config))
    else:
        for line in setup_pip(provider=args.provider or "subprocess", config=args.config).splitlines():
            if line.startswith("warning: "):  # a file it could not write: on stderr, as every warning
                warn([line[len("warning: "):]])
            else:
                out(line)
        note = _old_pip_note()
        if note:
            out(note)
    return 0


def _old_pip_note() -> str | None:
    """A note when the pip beside privpkg predates ``keyring-provider`` (pip 23.1), which it then
    ignores: `python3 -m venv` on Debian 12 gives pip 23.0.1. Other pips: `privpkg doctor --pip`."""
    import sys
    from importlib.metadata import PackageNotFoundError, version

    try:
        pip_version = version("pip")
    except PackageNotFoundError:
        return None
    parts = pip_version.split(".")
    try:
        if (int(parts[0]), int(parts[1]) if len(parts) > 1 else 0) >= (23, 1):
            return None
    except ValueError:
        return None
    return (f"note: the pip in this environment ({pip_version}) predates keyring-provider (pip 23.1) and ignores it; "
            f"upgrade it: {sys.executable} -m pip install -U pip")


def cmd_setup_uv(args: argparse.Namespace) -> int:
    from privpkg.setup_uv import setup_uv, undo_setup_uv

    out(undo_setup_uv(config=args.config) if args.undo else setup_uv(config=args.config))
    return 0


def cmd_setup_conda(args: argparse.Namespace) -> int:
    from privpkg.conda.condarc import setup_conda, undo_setup_conda

    if args.undo:
        out(undo_setup_conda(config=args.file))
        return 0
    out(setup_conda(config=args.file))
    from privpkg.conda.doctor import plugin_check

    # The entries route to a handler only privpkg's plugin provides: say so if conda lacks it.
    check = plugin_check()
    if check is not None and check.status != "ok":
        out(f"note: {check.detail}")
    return 0


def add_parser(sub: Any) -> None:
    """Add ``setup`` and its tools to the top-level subparsers ``sub``."""
    ssub = add_group(sub, "setup", help="configure tools to use privpkg",
                     description="Configure tools to use privpkg.", metavar="TOOL")
    s = ssub.add_parser("pip", help="write keyring-provider into your pip config",
                        description="Write `keyring-provider` into the user's pip configuration so plain "
                        "`pip install --index-url FEED` finds stored PATs without flags. --undo reverts exactly that change. "
                        "With --python PATH, install the pip shim for privpkg:// URLs into that interpreter's environment instead.")
    s.add_argument("--provider", choices=["subprocess", "import", "auto"],
                   help="subprocess (default) works from any venv through the keyring CLI on PATH, even with --no-input")
    s.add_argument("--undo", action="store_true", help="revert what an earlier `privpkg setup pip` wrote")
    s.add_argument("--config", metavar="FILE", help="pip config file to edit (default: pip's user config file)")
    s.add_argument("--python", metavar="PATH", help="instead: install the pip shim (privpkg:// URLs) into the environment of this interpreter")
    s.add_argument("--break-system-packages", action="store_true",
                   help="with --python: install into an externally managed interpreter (PEP 668) all the same, as pip's option does")
    s.set_defaults(func=cmd_setup_pip)
    u = ssub.add_parser("uv", help="turn on keyring lookups in your uv.toml",
                        description='Write `keyring-provider = "subprocess"` into the user\'s uv.toml, so uv asks the `keyring` '
                        "CLI on PATH (with privpkg's backend) for index URLs that carry a username (https://__token__@host/...) and for "
                        'indexes with authenticate = "always". '
                        "Comments are kept; --undo restores the file exactly.")
    u.add_argument("--undo", action="store_true", help="revert what an earlier `privpkg setup uv` wrote")
    u.add_argument("--config", metavar="FILE", help="uv.toml to edit (default: $XDG_CONFIG_HOME/uv/uv.toml or ~/.config/uv/uv.toml)")
    u.set_defaults(func=cmd_setup_uv)
    c = ssub.add_parser("conda", help="route conda's requests to your CondaChannel connections through privpkg",
                        description="Write one channel_settings entry per CondaChannel connection target into the user's condarc "
                        "($CONDARC when conda reads it, else ~/.condarc), routing conda's requests there to privpkg's auth handler "
                        "(auth: privpkg); no secret is written. Afterwards `privpkg connection set/delete` and `auth login/logout` "
                        "keep the entries in step. Comments are kept; --undo restores the file exactly.")
    c.add_argument("--undo", action="store_true", help="revert what `privpkg setup conda` wrote")
    # --config too: setup pip's and setup uv's name for the file to edit.
    c.add_argument("--file", "--config", dest="file", metavar="FILE", help="condarc to edit (default: $CONDARC if conda reads it, else ~/.condarc)")
    c.set_defaults(func=cmd_setup_conda)
