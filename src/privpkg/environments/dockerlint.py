"""What a Dockerfile (and the context files it copies) may never hold: the lint behind
``privpkg env dockerfile --check``, also run on every Dockerfile :mod:`.docker` writes.

Refused, each finding one line naming the Dockerfile line and never the value found:

- ``ARG``/``ENV`` that pass a secret: a name that looks like one (TOKEN, PASSWORD, SECRET, PAT,
  API key, credentials, SAS, ...) or a value holding a secret (below); build args and ENV land in
  the image's config or history;
- anywhere in an instruction: user info in a URL (``https://user:pw@``, ``https://tok@``), a
  signature parameter (``sig=`` of an Azure SAS, ``X-Amz-Signature``/``X-Amz-Credential``,
  ``X-Goog-Signature``, ``Signature=``), or a known secret (the connections'; what
  :mod:`privpkg.environments.screen` finds, plus user info without a password);
- ``COPY``/``ADD`` of a file holding a secret: a credential file by name (``.netrc``, ``_netrc``,
  ``.pypirc``, ``.git-credentials``) or, when the context is given, a copied file whose bytes hold
  user info, a signature or a known secret;
- a ``RUN`` that names a secret file (``/run/secrets/...`` or a secret mount's ``target``) other
  than as a variable assignment (``NETRC=/run/secrets/x pip ...``): ``cat``, ``cp``, ``>`` or any
  other use could write it into the layer.

Parsed with PyPI's ``dockerfile`` (BuildKit's own Go parser, so continuation lines, heredocs,
``# escape=`` and ``--mount`` flags are read exactly as the builder reads them), imported only
when a Dockerfile is checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from privpkg.errors import UsageError

_SECRET_NAME = re.compile(
    r"(TOKEN|PASSW(OR)?D|PASSWD|SECRET|(^|_)PAT\d*($|_)|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|STORAGE_?KEY|ACCOUNT_?KEY|"
    r"CONNECTION_?STRING|BEARER|CREDENTIAL|(^|_)AUTH($|_)|(^|_)SAS($|_)|NETRC|(^|_)PWD($|_))",
    re.IGNORECASE)
_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s@?#'\"]+@")
_SIGNATURE = re.compile(r"([?&;]sig=|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|X-Goog-Signature|[?&]Signature=)", re.IGNORECASE)
_CREDENTIAL_FILES = frozenset({".netrc", "_netrc", ".pypirc", ".git-credentials"})
_SECRETS_DIR = "/run/secrets/"
#: A token of a RUN command that hands a path to a program as a variable, ``NAME=PATH``.
_ASSIGNMENT = re.compile(r"(?:(?<=\s)|^)[A-Za-z_][A-Za-z0-9_]*=(\S+)")
#: Context files bigger than this are read only this far (wheels, archives: their bytes are
#: compressed, so a secret inside would not show anyway).
_MAX_SCAN = 16 * 1024 * 1024


def find_secret(text: str, secrets: Mapping[str, str]) -> str | None:
    """What ``text`` holds that an image may not, described without the value; None if clean:
    what the environments' screen finds (a known secret, a password in user info, a signature),
    and also user info without a password (``https://TOKEN@host`` is how some hosts take a
    token) and the signature parameters only URLs carry (``X-Amz-Credential``...)."""
    from privpkg.environments.screen import find_secret as screened

    found = screened(text, secrets)
    if found is not None:
        return found
    if _USERINFO.search(text):
        return "user info in a URL"
    m = _SIGNATURE.search(text)
    if m:
        return f"a signature ({m.group(1).lstrip('?&;')})"
    return None


def _secret_targets(flags: Iterable[str]) -> list[str]:
    targets: list[str] = []
    for flag in flags:
        if not flag.startswith("--mount="):
            continue
        fields = dict(f.partition("=")[::2] for f in flag[len("--mount="):].split(","))
        if fields.get("type") == "secret":
            sid = fields.get("id") or Path(fields.get("target") or fields.get("dst") or "").name
            targets.append(fields.get("target") or fields.get("dst") or fields.get("destination") or _SECRETS_DIR + sid)
    return targets


def _names_secret_file(command: str, targets: list[str]) -> bool:
    """Whether ``command`` uses a secret file's path other than as ``NAME=PATH``."""
    paths = [*targets, _SECRETS_DIR]
    rest = _ASSIGNMENT.sub(lambda m: "" if any(m.group(1).startswith(p) for p in paths) else m.group(0), command)
    return any(p in rest for p in paths)


def _secret_variables(command: str, flags: Iterable[str], targets: list[str]) -> set[str]:
    """The variables that hold a secret or a secret file's path in a RUN: a secret mount's
    ``env=NAME``, and ``NAME=PATH`` of a secret file."""
    names: set[str] = set()
    for flag in flags:
        if flag.startswith("--mount="):
            fields = dict(f.partition("=")[::2] for f in flag[len("--mount="):].split(","))
            if fields.get("type") == "secret" and fields.get("env"):
                names.add(fields["env"])
    paths = [*targets, _SECRETS_DIR]
    for m in re.finditer(r"(?:^|[\s;&|(])([A-Za-z_][A-Za-z0-9_]*)=(\S+)", command):
        if any(m.group(2).strip("'\"").startswith(p) for p in paths):
            names.add(m.group(1))
    return names


def _expands(command: str, names: set[str]) -> str | None:
    """The first of ``names`` the shell expands in ``command`` (``$NAME``, ``${NAME}``): there its
    value (a secret, or a path to one) can be written into the layer."""
    for name in sorted(names):
        if re.search(r"\$\{?" + re.escape(name) + r"\b", command):
            return name
    return None


def _copy_sources(values: tuple[str, ...], flags: tuple[str, ...]) -> list[str]:
    if any(f.startswith("--from=") for f in flags):
        return []  # from another stage or image, not from the context
    return list(values[:-1])


def _glob_patterns(rel: str) -> list[str]:
    """pathlib patterns covering what the COPY source ``rel`` may match, the same on every Python.
    A ``**`` inside a name (``a**b``) is a ValueError for pathlib before 3.13 and ``*`` from 3.13
    on, while BuildKit may let it cross directories: scan both readings (more files read, never
    fewer)."""
    parts = rel.split("/")
    if all(p == "**" or "**" not in p for p in parts):
        return [rel]
    within = "/".join(p if p == "**" else re.sub(r"\*{2,}", "*", p) for p in parts)
    across = "/".join(p if p == "**" else re.sub(r"\*{2,}", "*/**/*", p) for p in parts)
    return [within, across]


def _context_files(context: Path, source: str) -> list[Path]:
    base = context.resolve()
    rel = source.lstrip("/")
    hits = sorted({h for pattern in _glob_patterns(rel) for h in base.glob(pattern)}) if any(c in rel for c in "*?[") else [base / rel]
    # A dict as an ordered set: a pattern's hits nest (``sub/**`` gives sub, sub/deep and, from
    # Python 3.13 on, their files too), and each file is one finding however often it is named.
    files: dict[Path, None] = {}
    for hit in hits:
        if hit.is_dir() and not hit.is_symlink():
            files.update(dict.fromkeys(p for p in sorted(hit.rglob("*")) if p.is_file() and not p.is_symlink()))
        elif hit.is_file() and not hit.is_symlink():
            files[hit] = None
    return list(files)


def _scan_file(path: Path, secrets: Mapping[str, str]) -> str | None:
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_SCAN)
    except OSError:
        return None
    return find_secret(data.decode("latin-1"), secrets)


def _parser_problem() -> str | None:
    """Why BuildKit's parser (PyPI's ``dockerfile``, extra ``privpkg[docker]``) cannot be used,
    or None. Imported, not only found: a build for another platform raises ImportError, and a
    ``dockerfile.py`` in the working directory (``python -m privpkg``) is no parser."""
    try:
        import dockerfile
    except ModuleNotFoundError as exc:
        if exc.name == "dockerfile":
            return ""
        return f" (dockerfile does not import here: {type(exc).__name__})"
    except ImportError as exc:
        return f" (dockerfile does not import here: {type(exc).__name__})"
    if not (hasattr(dockerfile, "parse_string") and hasattr(dockerfile, "GoParseError")):
        return f" ({getattr(dockerfile, '__file__', None) or 'the dockerfile module found'} is not it)"
    return None


def parser_available() -> bool:
    """Whether BuildKit's parser imports (:func:`_parser_problem`)."""
    return _parser_problem() is None


def require_parser() -> None:
    """One line (exit 1, as for a storage extra) when the parser is not installed or not usable."""
    problem = _parser_problem()
    if problem is not None:
        from privpkg.errors import PrivpkgError

        raise PrivpkgError(f"the Dockerfile lint (--check) needs BuildKit's parser: pip install 'privpkg[docker]'{problem}")


def check(text: str, *, context: Path | None = None, secrets: Mapping[str, str] | None = None) -> list[str]:
    """The findings for the Dockerfile ``text`` (empty: it passes). ``context``: the build
    context, whose files a COPY/ADD names are scanned too. ``secrets``: value -> what to call it
    (default: every connection's, :func:`privpkg.environments.screen.known_secrets`)."""
    require_parser()
    import dockerfile

    if secrets is None:
        from privpkg.environments.screen import known_secrets

        secrets = known_secrets()
    known = secrets
    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError as exc:
        raise UsageError(f"cannot parse the Dockerfile: {str(exc).splitlines()[0] if str(exc) else 'parse error'}") from None
    findings: list[str] = []
    for c in commands:
        where = f"line {c.start_line}"
        body = c.original + "".join(h.content for h in getattr(c, "heredocs", ()) or ())
        # BuildKit reads instructions in any case (`arg`, `Env`), and ONBUILD's runs in a child
        # image: each is judged as the instruction it stands for.
        cmd = (c.sub_cmd if c.cmd.upper() == "ONBUILD" and c.sub_cmd else c.cmd).upper()
        if cmd in ("ARG", "ENV"):
            pairs = [(v.partition("=")[0], v.partition("=")[2]) for v in c.value] if cmd == "ARG" else list(zip(c.value[::2], c.value[1::2]))
            for name, _ in pairs:
                if _SECRET_NAME.search(name):
                    findings.append(f"{where}: {cmd} {name} looks like a secret; build args and ENV are kept in the image "
                                    f"(mount it as a secret for one RUN instead)")
        found = find_secret(body, known)
        if found:
            findings.append(f"{where}: {cmd} holds {found}; an image keeps its instructions in its history")
        if cmd in ("COPY", "ADD"):
            before = len(findings)
            for source in _copy_sources(c.value, c.flags):
                name = source.rstrip("/").rsplit("/", 1)[-1]
                if name in _CREDENTIAL_FILES:
                    findings.append(f"{where}: {cmd} {name} copies a credential file into the image")
                    continue
                if context is None or "://" in source:
                    continue
                for path in _context_files(context, source):
                    what = path.name in _CREDENTIAL_FILES and "credentials" or _scan_file(path, known)
                    if what:
                        shown_as = path.relative_to(context.resolve()) if path.is_relative_to(context.resolve()) else path.name
                        findings.append(f"{where}: {cmd} copies {shown_as}, which holds {what}")
            dest = c.value[-1].rstrip("/").rsplit("/", 1)[-1] if c.value else ""
            if len(findings) == before and dest in _CREDENTIAL_FILES:  # a heredoc, or any file, written as one
                findings.append(f"{where}: {cmd} writes {dest}, a credential file, into the image")
        if cmd == "RUN":
            command = " ".join(c.value) + "".join(h.content for h in getattr(c, "heredocs", ()) or ())
            targets = _secret_targets(c.flags)
            if _names_secret_file(command, targets):
                findings.append(f"{where}: RUN uses a secret file's path where it could be copied into the layer; "
                                f"hand it to the program as a variable only (NETRC=/run/secrets/ID pip ...)")
            else:
                expanded = _expands(command, _secret_variables(command, c.flags, targets))
                if expanded:
                    findings.append(f"{where}: RUN expands ${expanded}, which holds a secret or a secret file's path, in the "
                                    f"shell, where it can be written into the layer; let the program read the variable itself")
    return findings
