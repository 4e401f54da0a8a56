"""Workspaces: a name and a storage location for wheels. A definition holds no secret, so a team
can commit it in ``privpkg.toml``::

    [workspaces.team]
    storage = "azure"
    url = "https://acct.blob.core.windows.net/wheels"

    [workspaces.ml]
    storage = "s3"
    url = "s3://my-bucket/wheels-prefix"
    endpoint_url = "https://s3.eu-central-1.amazonaws.com"   # optional
    region = "eu-central-1"                                  # optional

    [workspaces.scratch]
    storage = "local"
    path = "/srv/wheels"

Definitions come from, lowest to highest precedence: the built-in ``default`` (local, under the
user data dir), the user's ``workspaces.toml`` in the privpkg config dir, and the nearest
``privpkg.toml`` walking up from the current directory (the project wins).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privpkg import paths, urls
from privpkg.errors import NotFoundError, PrivpkgError, UsageError

PROJECT_FILE = "privpkg.toml"
STORAGES = ("local", "azure", "s3")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class Workspace:
    name: str
    storage: str
    location: str  # a folder for local, the container URL for azure, s3://bucket[/prefix] for s3
    endpoint_url: str | None = None
    region: str | None = None
    source: str = "built-in"

    def url_for(self, filename: str) -> str:
        return f"privpkg://{self.name}/wheels/{filename}"

    def add_private_wheel(self, path: str | os.PathLike[str], exist_ok: bool = False) -> str:
        """Validate and upload a wheel; return its ``privpkg://`` URL (azureml's
        ``Environment.add_private_pip_wheel``, but a different wheel under a taken name is
        always an error)."""
        from privpkg.wheels import add_wheel

        return add_wheel(self, Path(path), exist_ok=exist_ok)

    def table(self) -> dict[str, str]:
        key = "path" if self.storage == "local" else "url"
        d = {"storage": self.storage, key: self.location}
        if self.endpoint_url:
            d["endpoint_url"] = self.endpoint_url
        if self.region:
            d["region"] = self.region
        return d


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError(f"invalid workspace name {name!r}: use 1-63 letters, digits, '.', '_' or '-'")
    return name


def validate_location(storage: str, location: str, endpoint_url: str | None = None) -> str:
    if storage == "local":
        return str(Path(location).expanduser().resolve())
    if storage == "azure":
        norm = urls.normalize(location, for_target=True)
        if norm.scheme != "https" and not (norm.scheme == "http" and urls.is_loopback(norm.host)):
            raise UsageError("an Azure container URL must be https:// (http:// only on loopback, e.g. Azurite)")
        segs = norm.segments
        # Azurite and other emulators put the account in the path: http://127.0.0.1:10000/devstoreaccount1/c
        want = 2 if urls.is_loopback(norm.host) else 1
        if len(segs) != want or not segs[-1]:
            raise UsageError(
                f"{urls.redact(location)} is not a container URL: expected https://ACCOUNT.blob.core.windows.net/CONTAINER"
                + (" (or http://127.0.0.1:PORT/ACCOUNT/CONTAINER)" if want == 2 else "")
            )
        return norm.url.rstrip("/")
    if storage == "s3":
        norm = urls.normalize(location, for_target=True)
        if norm.scheme != "s3" or not norm.host:
            raise UsageError(f"expected s3://BUCKET[/PREFIX], got {urls.redact(location)}")
        if endpoint_url:
            urls.normalize(endpoint_url, for_target=True)
        return norm.url.rstrip("/")
    raise UsageError(f"unknown storage {storage!r}; choose one of {', '.join(STORAGES)}")


def _parse_toml(text: str, where: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PrivpkgError(f"{where}: invalid TOML: {exc}") from None
    return _mini_toml(text, where)


def _mini_toml(text: str, where: str) -> dict[str, Any]:
    """The subset of TOML privpkg writes ([a.b] tables, key = "string"), for Python 3.10."""
    doc: dict[str, Any] = {}
    table = doc
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.strip().startswith(("'", '"')) else raw.strip()
        if not line:
            continue
        m = re.match(r"^\[([A-Za-z0-9_.\-]+)\]$", line)
        if m:
            table = doc
            for part in m.group(1).split("."):
                table = table.setdefault(part, {})
            continue
        m = re.match(r'^([A-Za-z0-9_\-]+)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(#.*)?$', raw.strip())
        if not m:
            raise PrivpkgError(f"{where}:{n}: unsupported TOML on Python 3.10 (use key = \"string\")")
        table[m.group(1)] = m.group(2).replace('\\"', '"').replace("\\\\", "\\")
    return doc


def _read_defs(path: Path, source: str) -> dict[str, Workspace]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise PrivpkgError(f"cannot read {path}: {exc}") from None
    doc = _parse_toml(text, str(path))
    out: dict[str, Workspace] = {}
    for name, t in (doc.get("workspaces") or {}).items():
        where = f"{path}: workspace {name!r}"
        if not isinstance(t, dict):
            raise PrivpkgError(f"{where} is not a table")
        try:
            validate_name(name)
            storage = t.get("storage", "")
            location = t.get("path") if storage == "local" else t.get("url")
            if not isinstance(location, str):
                raise UsageError(f"needs {'path' if storage == 'local' else 'url'} = \"...\"")
            if storage == "local" and not Path(location).expanduser().is_absolute():
                location = str(path.parent / location)
            location = validate_location(storage, location, t.get("endpoint_url"))
        except UsageError as exc:
            raise PrivpkgError(f"{where}: {exc}") from None
        out[name] = Workspace(name, storage, location, t.get("endpoint_url"), t.get("region"), source)
    return out


def user_file() -> Path:
    return paths.config_dir() / "workspaces.toml"


def project_file(start: Path | None = None) -> Path | None:
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        candidate = d / PROJECT_FILE
        if candidate.is_file():
            return candidate
    return None


def default_workspace() -> Workspace:
    return Workspace("default", "local", str(paths.data_dir() / "workspaces" / "default"))


_CACHE: tuple[Any, dict[str, Workspace]] | None = None


def _stamp(path: Path | None) -> Any:
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return (str(path), None)
    return (str(path), st.st_mtime_ns, st.st_size, st.st_ino)


def all_workspaces() -> dict[str, Workspace]:
    """Every workspace by name. Memoized on the files' stat, since the pip shim asks once per
    wheel it downloads."""
    global _CACHE
    proj = project_file()
    key = (os.environ.get("PRIVPKG_HOME"), _stamp(user_file()), _stamp(proj))
    if _CACHE is not None and _CACHE[0] == key:
        return dict(_CACHE[1])
    found = {"default": default_workspace()}
    found.update(_read_defs(user_file(), "user"))
    if proj:
        found.update(_read_defs(proj, f"project {proj}"))
    _CACHE = (key, found)
    return dict(found)


def get_workspace(name: str = "default") -> Workspace:
    ws = all_workspaces().get(name)
    if ws is None:
        raise NotFoundError(f"no workspace named {name!r} (see: privpkg workspace list; add one with: privpkg workspace add {name} --local DIR)")
    return ws


def _render(name: str, table: dict[str, str]) -> str:
    body = "".join(f'{k} = "{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"\n' for k, v in table.items())
    return f"[workspaces.{name}]\n{body}"


def _remove_table(text: str, name: str) -> tuple[str, bool]:
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    skipping = found = False
    for line in lines:
        m = re.match(r"^\s*\[([^\]]+)\]\s*$", line)
        if m:
            skipping = m.group(1).strip() in (f"workspaces.{name}", f'workspaces."{name}"')
            found = found or skipping
        if not skipping:
            out.append(line)
    return "".join(out).rstrip("\n") + ("\n" if out else ""), found


def add_workspace(ws: Workspace, project: bool = False, replace: bool = False) -> Path:
    from privpkg.vault import _write_atomic, file_lock

    validate_name(ws.name)
    if ws.name == "default":
        raise UsageError("'default' is built in; pick another name")
    path = (project_file() or Path.cwd() / PROJECT_FILE) if project else user_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(paths.config_dir() / "workspaces.lock"):
        text = path.read_text() if path.exists() else ""
        existing = _read_defs(path, "check") if text else {}
        if ws.name in existing and not replace:
            raise UsageError(f"workspace {ws.name!r} already exists in {path}; remove it first")
        text, _ = _remove_table(text, ws.name)
        text = (text + "\n" if text else "") + _render(ws.name, ws.table())
        _write_atomic(path, text.encode(), 0o644)
        os.chmod(path, 0o644)
    return path


def remove_workspace(name: str, project: bool = False) -> Path:
    from privpkg.vault import _write_atomic, file_lock

    path = project_file() if project else user_file()
    if path is None or not path.exists():
        raise NotFoundError(f"no workspace named {name!r} in {'a project privpkg.toml' if project else user_file()}")
    with file_lock(paths.config_dir() / "workspaces.lock"):
        text, found = _remove_table(path.read_text(), name)
        if not found:
            raise NotFoundError(f"no workspace named {name!r} in {path}")
        _write_atomic(path, text.encode(), 0o644)
        os.chmod(path, 0o644)
    return path
