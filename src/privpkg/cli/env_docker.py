"""``privpkg env dockerfile NAME[:V|@LABEL] -o DIR``: a Dockerfile and build context for a
registered environment's pip lock (:mod:`privpkg.environments.docker`), its artifacts selected
for the image's Python and platform (``--python``, ``--platform``); ``--check`` lints it
(:mod:`privpkg.environments.dockerlint`), or alone lints the Dockerfile already in DIR.
``--lock FILE`` takes a pylock.toml instead of a registered version's.

``privpkg env netrc DIR -o FILE``: the netrc a ``--secret-mount`` context's build needs, for
exactly the URLs its requirements file downloads, written to a new 0600 file outside DIR, and the
build command that mounts it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privpkg.cli.output import add_workspace_option, counted, out, warn
from privpkg.errors import UsageError, shown

if TYPE_CHECKING:
    from privpkg.environments.docker import ImageTarget
    from privpkg.environments.pylock import Artifact


def _registered_lock(workspace: str, ref: str) -> tuple[str, str, str]:
    """(name, version, pylock.toml text) of the registered version ``ref`` names."""
    from privpkg.environments import registry
    from privpkg.environments.api import open_registry
    from privpkg.environments.spec import parse_target

    name, version, label = parse_target(ref)
    _, store = open_registry(workspace)
    rec = registry.get(store, name, version, label)
    locks = rec.locks
    conda = sorted(f for f in locks if f.startswith("conda-"))
    if registry.PYLOCK not in locks or conda:
        # An image of a conda spec's pip part alone would lack its conda packages (python
        # included) without a word: refused until images install conda locks.
        have = ", ".join(sorted(locks)) or "none"
        raise UsageError(f"environment {name}:{rec.version} has {'conda locks' if conda else 'no pip lock'} ({have}); "
                         f"images are made from pip-only environments for now")
    return name, str(rec.version), locks[registry.PYLOCK]


def _select(text: str, target: ImageTarget) -> list[Artifact]:
    """The artifacts the lock installs in the image: for its interpreter and platform (wheel
    tags and markers), not privpkg's."""
    from privpkg.environments import pylock
    from privpkg.environments.docker import pylock_target

    return pylock.load(text).select(pylock_target(target), what=f"the image ({target.describe()})")


#: What a clean lint says, with --check alone and while writing.
_LINT_OK = "{path}: no secret, user info or signature found"


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
        raise UsageError(f"{path}: {counted(len(findings), 'problem')} that would put a secret into the image (listed above)")
    return 0


def cmd_dockerfile(args: argparse.Namespace) -> int:
    folder = Path(args.output)
    if args.check:  # before anything is fetched or written: the lint's parser is an extra
        from privpkg.environments.dockerlint import require_parser

        require_parser()
    if args.ref is None and args.lock is None:
        if not args.check:
            raise UsageError("give NAME[:VERSION] or NAME@LABEL (or --lock FILE), or --check alone to lint DIR/Dockerfile")
        _lint(folder)
        out(_LINT_OK.format(path=folder / "Dockerfile"))
        return 0
    name = version = None
    if args.lock is not None:
        if args.ref is not None:
            raise UsageError(f"give NAME[:VERSION] or --lock FILE, not both (got {shown(args.ref, 60)} and --lock {shown(args.lock[0], 80)})")
        if len(args.lock) > 1:
            # env build takes a conda list and a pylock.toml; an image installs one pip lock.
            raise UsageError(f"--lock given {len(args.lock)} times; an image is made from one pylock.toml")
        lock = Path(args.lock[0])
        try:
            text = lock.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(f"{shown(lock)}: no such lock file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {shown(lock)}: {getattr(exc, 'strerror', None) or exc}") from None
    else:
        name, version, text = _registered_lock(args.workspace, args.ref)
    from privpkg.cli.env_build import naming_lock
    from privpkg.environments.docker import SECRET_ID, dockerfile, resolve_target

    target, notes = resolve_target(args.base_image, args.python, args.platform)
    with naming_lock(args.lock):
        ctx = dockerfile(_select(text, target), folder, base_image=args.base_image, target=target, secret_mount=args.secret_mount,
                         name=name, version=version)
    if args.check:
        _lint(folder)
    out(f"image target: {target.describe()} ({'; '.join(notes) or 'as given'})")
    out(f"wrote {ctx.dockerfile} and {counted(ctx.fetched, 'file')} in {folder / 'wheels'}, each checked against the lock's sha256")
    if args.check:
        out(_LINT_OK.format(path=folder / "Dockerfile"))  # the line --check alone prints
    out(f"image key: {ctx.image_key}")
    if not ctx.pinned:
        warn([f"base image {args.base_image} is not pinned by digest; give --base-image NAME@sha256:..."])
    # Each a command as the shell takes it, a comment after it.
    if args.secret_mount:
        out(f"netrc: privpkg env netrc {_quote(folder)} -o NETRC_FILE   # a new file outside {folder}; remove it after the build")
        out(f"build: {ctx.build_command}   # docker build takes the same arguments (secret id {SECRET_ID})")
    else:
        out(f"build: {ctx.build_command}   # docker build takes the same arguments")
    return 0


def _quote(path: Path) -> str:
    import shlex

    return shlex.quote(str(path))


def cmd_netrc(args: argparse.Namespace) -> int:
    from privpkg.environments.docker import SECRET_ID, write_netrc

    folder, dest = Path(args.context), Path(args.output)
    hosts = write_netrc(folder, dest)
    # The path and the hosts only: the file's content is never printed.
    out(f"wrote {dest} (mode 0600) for " + ", ".join(f"{h} (connection {c})" for h, c in hosts))
    secret = f"--secret id={SECRET_ID},src={_quote(dest.absolute())}"
    out(f"build: buildah build {secret} -t IMAGE {_quote(folder)}")
    out(f"   or: docker build {secret} -t IMAGE {_quote(folder)}")
    out(f"then: rm {_quote(dest)}   # it holds the connections' secrets")
    return 0


def add_parsers(actions: Any) -> None:
    """Add ``dockerfile`` and ``netrc`` to ``privpkg env``'s subparsers (importing nothing: every
    privpkg command builds this parser)."""
    p = actions.add_parser(
        "dockerfile", help="write a Dockerfile and build context for an environment",
        description="Write DIR/Dockerfile and a build context that install the environment's lock into an image offline "
        "(every artifact fetched and sha256-checked here, into DIR/wheels), with no credential or signature in any layer. "
        "The lock's files are selected for the image's Python and platform: --python (default: the version a python:X.Y... "
        "base image's tag names, else privpkg's own, said in one line) and --platform (default: this host's). "
        "--secret-mount instead downloads feed wheels in the build through a netrc mounted as secret 'privpkg-netrc' "
        "(wheels only; write the netrc with privpkg env netrc DIR -o FILE). "
        "--check lints the Dockerfile (alone: the one already in DIR).")
    p.add_argument("ref", nargs="?", metavar="NAME[:VERSION|@LABEL]", help="a registered environment (NAME, NAME:N, NAME@LABEL; default: latest)")
    add_workspace_option(p)
    p.add_argument("-o", "--output", metavar="DIR", required=True, help="the build context to write")
    p.add_argument("--base-image", default="python:3.12-slim", metavar="IMAGE",
                   help="the image to build on, with python3 (pin it: NAME@sha256:...; default python:3.12-slim)")
    p.add_argument("--python", metavar="X.Y", help="the base image's CPython version, X.Y or X.Y.Z (default: from a python:X.Y... tag)")
    p.add_argument("--platform", metavar="TAG",
                   help="the image's platform tag: manylinux_2_36_x86_64 (glibc 2.36), musllinux_1_2_aarch64... (default: this host's; "
                   "the libc a python image's -alpine/-bookworm... tag names)")
    p.add_argument("--secret-mount", action="store_true", help="download feed wheels in the build via a BuildKit secret")
    p.add_argument("--check", action="store_true", help="lint the Dockerfile for secrets, user info and signed URLs")
    # Appended, so a second --lock is refused rather than silently replacing the first.
    p.add_argument("--lock", metavar="FILE", action="append", help="a pylock.toml to use instead of a registered version's")
    p.set_defaults(func=cmd_dockerfile)

    n = actions.add_parser(
        "netrc", help="write the netrc a --secret-mount build context needs",
        description="Write FILE, the netrc that the build of DIR (written by privpkg env dockerfile --secret-mount) mounts as "
        "secret 'privpkg-netrc': one line per feed host its requirements file downloads from, with the connection that "
        "answers those URLs. FILE is created new (never replaced, never through a symlink), mode 0600, outside DIR, and "
        "never printed. A netrc is per host: two connections needing different secrets on one host are refused, and "
        "during that one RUN the secret can reach any URL of that host (pip there fetches only the lock's URLs, with "
        "--no-index and every hash required). Remove FILE after the build.")
    n.add_argument("context", metavar="DIR", help="a build context written by privpkg env dockerfile --secret-mount")
    n.add_argument("-o", "--output", metavar="FILE", required=True, help="the netrc to create (a new file outside DIR)")
    n.set_defaults(func=cmd_netrc)
