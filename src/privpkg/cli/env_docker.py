"""``privpkg env dockerfile NAME[:V|@LABEL] -o DIR``: a Dockerfile and build context for a
registered environment's pip lock (:mod:`privpkg.environments.docker`); ``--check`` lints it
(:mod:`privpkg.environments.dockerlint`), or alone lints the Dockerfile already in DIR.
``--lock FILE`` takes a pylock.toml instead of a registered version's."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privpkg.cli.output import add_workspace_option, out
from privpkg.errors import UsageError

if TYPE_CHECKING:
    from privpkg.environments.pylock import Artifact


def _registered_lock(workspace: str, ref: str) -> str:
    """The pylock.toml of the registered version ``ref`` names."""
    from privpkg.environments import registry
    from privpkg.environments.api import open_registry
    from privpkg.environments.spec import parse_target

    name, version, label = parse_target(ref)
    _, store = open_registry(workspace)
    rec = registry.get(store, name, version, label)
    locks = rec.locks
    if registry.PYLOCK not in locks:
        conda = ", ".join(sorted(locks)) or "none"
        raise UsageError(f"environment {name}:{rec.version} has no pip lock ({registry.PYLOCK}; its locks: {conda}); "
                         f"images are made from pip locks only for now")
    return locks[registry.PYLOCK]


def _select(text: str) -> list[Artifact]:
    """The artifacts the lock installs for this interpreter (tags and markers): the image's
    interpreter is expected to be the same Python on the same platform."""
    from privpkg.environments import pylock

    return pylock.load(text).select()


def _lint(folder: Path) -> int:
    from privpkg.environments.dockerlint import check

    path = folder / "Dockerfile"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    findings = check(text, context=folder)
    for f in findings:
        out(f"{path}: {f}")
    if findings:
        raise UsageError(f"{path}: {len(findings)} problem(s) that would put a secret into the image (listed above)")
    return 0


def cmd_dockerfile(args: argparse.Namespace) -> int:
    folder = Path(args.output)
    if args.ref is None and args.lock is None:
        if not args.check:
            raise UsageError("give NAME[:VERSION] or NAME@LABEL (or --lock FILE), or --check alone to lint DIR/Dockerfile")
        _lint(folder)
        out(f"{folder / 'Dockerfile'}: no secret, user info or signature found")
        return 0
    if args.lock is not None:
        lock = Path(args.lock)
        try:
            text = lock.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {lock}: {exc.strerror or exc}") from None
    else:
        text = _registered_lock(args.workspace, args.ref)
    from privpkg.environments.docker import dockerfile

    ctx = dockerfile(_select(text), folder, base_image=args.base_image, secret_mount=args.secret_mount)
    if args.check:
        _lint(folder)
    out(f"wrote {ctx.dockerfile} and {ctx.fetched} file(s) in {folder / 'wheels'}, each checked against the lock's sha256")
    out(f"cache key: {ctx.cache_key}")
    if not ctx.pinned:
        sys.stderr.write(f"warning: base image {args.base_image} is not pinned by digest; give --base-image NAME@sha256:...\n")
    out(f"build: {ctx.build_command}")
    return 0


def add_parsers(actions: Any) -> None:
    """Add ``dockerfile`` to ``privpkg env``'s subparsers (importing nothing: every privpkg
    command builds this parser)."""
    p = actions.add_parser(
        "dockerfile", help="write a Dockerfile and build context for an environment",
        description="Write DIR/Dockerfile and a build context that install the environment's lock into an image offline "
        "(every artifact fetched and sha256-checked here, into DIR/wheels), with no credential or signature in any layer. "
        "--secret-mount instead downloads feed wheels in the build through a netrc mounted as secret 'privpkg-netrc' "
        "(wheels only). --check lints the Dockerfile (alone: the one already in DIR).")
    p.add_argument("ref", nargs="?", metavar="NAME[:VERSION]", help="a registered environment (NAME, NAME:N, NAME@LABEL; default: latest)")
    add_workspace_option(p)
    p.add_argument("-o", "--output", metavar="DIR", required=True, help="the build context to write")
    p.add_argument("--base-image", default="python:3.12-slim", metavar="IMAGE",
                   help="the image to build on, with python3 (pin it: NAME@sha256:...; default python:3.12-slim)")
    p.add_argument("--secret-mount", action="store_true", help="download feed wheels in the build via a BuildKit secret")
    p.add_argument("--check", action="store_true", help="lint the Dockerfile for secrets, user info and signed URLs")
    p.add_argument("--lock", metavar="FILE", help="a pylock.toml to use instead of a registered version's")
    p.set_defaults(func=cmd_dockerfile)
