"""``privpkg env dockerfile NAME[:V] -o DIR``: a Dockerfile and build context for a registered
environment (:mod:`privpkg.environments.docker`); ``--check`` lints it
(:mod:`privpkg.environments.dockerlint`), or alone lints the Dockerfile already in DIR.

Until the registry (``privpkg.environments.registry``) and the lock reader
(``privpkg.environments.pylock``) land, ``--lock FILE`` names the pylock.toml to use; the two
stand-ins are :func:`_registered_lock` and :func:`_select`, each one call to replace."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple

from privpkg.cli.output import add_workspace_option, out
from privpkg.errors import UsageError, shown

_REF = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,99})(?::([1-9][0-9]{0,8}))?$")


class _Artifact(NamedTuple):
    """The fields of ``privpkg.environments.pylock.Artifact`` this command needs."""

    name: str
    version: str
    url: str
    filename: str
    sha256: str
    kind: str


def _parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME[:N]``; replaced by ``privpkg.environments.spec.parse_ref`` when it lands."""
    m = _REF.match(ref)
    if not m:
        raise UsageError(f"not an environment reference: {shown(ref, 80)} (expected NAME or NAME:VERSION)")
    return m.group(1), int(m.group(2)) if m.group(2) else None


def _registered_lock(workspace: str, name: str, version: int | None) -> str:
    """The registered version's pylock.toml text: the registry's call, wired when it lands."""
    raise UsageError(f"environment {name!r}: the workspace registry is not available yet; give the lock with --lock FILE")


def _select(text: str, where: str) -> list[_Artifact]:
    """The artifacts a pylock.toml installs. A stand-in for ``pylock.load(text).select(target)``:
    one wheel per package (or the sdist), no marker or tag selection."""
    import tomllib

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where} is not TOML: {exc}") from None
    found: list[_Artifact] = []
    for pkg in doc.get("packages", []):
        name, version = str(pkg.get("name", "")), str(pkg.get("version", ""))
        files = [(w, "wheel") for w in pkg.get("wheels", [])] or ([(pkg["sdist"], "sdist")] if "sdist" in pkg else [])
        if len(files) != 1:
            raise UsageError(f"{where}: package {shown(name, 60)} has {len(files)} files; choosing among wheels needs the lock reader (not here yet)")
        entry, kind = files[0]
        url = str(entry.get("url", ""))
        filename = str(entry.get("name") or url.rsplit("/", 1)[-1])
        found.append(_Artifact(name.lower().replace("_", "-"), version, url, filename, str(entry.get("hashes", {}).get("sha256", "")), kind))
    return found


def _known_secrets() -> list[str]:
    from privpkg.connections.store import list_connections

    return [c.secret for c in list_connections() if c.secret]


def _lint(folder: Path) -> int:
    from privpkg.environments.dockerlint import check

    path = folder / "Dockerfile"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    findings = check(text, context=folder, secrets=_known_secrets())
    for f in findings:
        out(f"{path}: {f}")
    if findings:
        raise UsageError(f"{path}: {len(findings)} problem(s) that would put a secret into the image (listed above)")
    return 0


def cmd_dockerfile(args: argparse.Namespace) -> int:
    folder = Path(args.output)
    if args.ref is None and args.lock is None:
        if not args.check:
            raise UsageError("give NAME[:VERSION] (or --lock FILE), or --check alone to lint DIR/Dockerfile")
        _lint(folder)
        out(f"{folder / 'Dockerfile'}: no secret, user info or signature found")
        return 0
    if args.lock is not None:
        lock = Path(args.lock)
        try:
            text = lock.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {lock}: {exc.strerror or exc}") from None
        where = str(lock)
    else:
        name, version = _parse_ref(args.ref)
        text, where = _registered_lock(args.workspace, name, version), f"environment {name}"
    from privpkg.environments.docker import dockerfile

    ctx = dockerfile(_select(text, where), folder, base_image=args.base_image, secret_mount=args.secret_mount)
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
    p.add_argument("ref", nargs="?", metavar="NAME[:VERSION]")
    add_workspace_option(p)
    p.add_argument("-o", "--output", metavar="DIR", required=True, help="the build context to write")
    p.add_argument("--base-image", default="python:3.12-slim", metavar="IMAGE",
                   help="the image to build on, with python3 (pin it: NAME@sha256:...; default python:3.12-slim)")
    p.add_argument("--secret-mount", action="store_true", help="download feed wheels in the build via a BuildKit secret")
    p.add_argument("--check", action="store_true", help="lint the Dockerfile for secrets, user info and signed URLs")
    p.add_argument("--lock", metavar="FILE", help="a pylock.toml to use instead of the registered version's")
    p.set_defaults(func=cmd_dockerfile)
