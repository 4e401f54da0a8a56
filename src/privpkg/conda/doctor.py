"""``privpkg doctor``'s conda section (:func:`conda_checks`): whether privpkg's plugin is registered
in the conda that would run, what the condarc files route to privpkg's auth handler (and which
CondaChannel connections nothing routes), and with ``--url`` which connection answers a channel
URL for conda.

The conda that would run is ``$CONDA_EXE`` (set by conda's shell hook), else ``conda`` on PATH.
Its interpreter (the script's ``#!`` line, or ``$CONDA_PYTHON_EXE``) is asked for the ``conda``
entry points through ``importlib.metadata``: conda itself is never imported, here or there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from privpkg.conda import channelauth, condarc
from privpkg.doctor import Check
from privpkg.errors import PrivpkgError

ENTRY_POINT = "privpkg.conda.plugin"
#: Run in conda's interpreter: its ``conda`` entry points and conda's version, read from the
#: installed metadata (no conda import, so a broken plugin cannot break the probe).
_PROBE = (
    "import json, sys\n"
    "from importlib import metadata as m\n"
    "eps = [{'name': e.name, 'value': e.value, 'dist': getattr(e.dist, 'name', None), "
    "'version': getattr(e.dist, 'version', None)} for e in m.entry_points(group='conda')]\n"
    "try:\n    v = m.version('conda')\nexcept m.PackageNotFoundError:\n    v = None\n"
    "json.dump({'python': sys.executable, 'conda': v, 'entry_points': eps}, sys.stdout)\n"
)


def find_conda() -> tuple[str | None, str]:
    """The conda that would run (path or None) and how it was found."""
    exe = os.environ.get("CONDA_EXE")
    if exe and os.path.isfile(exe):
        return exe, "$CONDA_EXE"
    found = shutil.which("conda")
    return (found, "PATH") if found else (None, "")


def interpreter(conda_exe: str) -> str | None:
    """The Python that runs ``conda_exe``: its ``#!`` line (pip's ``/bin/sh`` launcher for long
    paths included), else ``$CONDA_PYTHON_EXE``, else None."""
    try:
        with open(conda_exe, "rb") as fh:
            head = fh.read(1024).decode("utf-8", "replace").splitlines()
    except OSError:
        head = []
    if head and head[0].startswith("#!"):
        words = head[0][2:].strip().split()
        if words and words[0].endswith("/sh") and len(head) > 1 and head[1].startswith("'''exec' "):
            # pip's launcher when the interpreter path is too long for #!: '''exec' "PY" "$0" "$@"
            return head[1].split('"')[1] if head[1].count('"') >= 2 else None
        if words and os.path.basename(words[0]) == "env" and len(words) > 1:
            return shutil.which(words[-1])
        if words and "python" in os.path.basename(words[0]):
            return words[0]
    env_python = os.environ.get("CONDA_PYTHON_EXE")
    return env_python if env_python and os.path.isfile(env_python) else None


def probe(python: str, timeout: float = 30) -> dict[str, Any]:
    """conda's version and ``conda`` entry points as ``python`` sees them. Raises PrivpkgError."""
    try:
        # Not -I: conda runs with the user's environment (PYTHONPATH included), so the probe does
        # too; cwd "/" keeps a stray module in the current folder off its sys.path.
        res = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=timeout, check=False,
                             stdin=subprocess.DEVNULL, cwd=os.path.abspath(os.sep))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PrivpkgError(f"could not run {python}: {type(exc).__name__}") from None
    try:
        found: dict[str, Any] = json.loads(res.stdout)
    except ValueError:
        last = (res.stderr.strip().splitlines() or [f"exit {res.returncode}"])[-1]
        raise PrivpkgError(f"{python} could not list its entry points ({last[:160]})") from None
    return found


def _plugin_checks(out: list[Check], routed_to_us: bool, relevant: bool) -> None:
    """The plugin's registration in the conda that would run. Without a conda, one line only when
    conda matters here (``relevant``: CondaChannel connections, condarc routing, ``--url``)."""
    exe, how = find_conda()
    if exe is None:
        if relevant:
            out.append(Check("conda", "warn" if routed_to_us else "ok",
                             "conda: none found ($CONDA_EXE unset, no conda on PATH); privpkg's conda plugin is checked where conda runs"))
        return
    python = interpreter(exe)
    if python is None:
        out.append(Check("conda", "warn", f"conda: {exe} (from {how}) is not a Python script privpkg can read; set $CONDA_PYTHON_EXE"))
        return
    try:
        info = probe(python)
    except PrivpkgError as exc:
        out.append(Check("conda", "warn", f"conda: {exe} (from {how}): {exc}"))
        return
    version = info.get("conda") or "not installed there"
    ours = [e for e in info.get("entry_points") or [] if e.get("value") == ENTRY_POINT or e.get("name") == "privpkg"]
    where = f"{exe} (from {how}; conda {version}, Python {info.get('python') or python})"
    if ours:
        e = ours[0]
        out.append(Check("conda-plugin", "ok", f"conda: privpkg's plugin is registered in {where}: {e['name']} = {e['value']} "
                                               f"({e.get('dist') or '?'} {e.get('version') or ''})".rstrip()))
    else:
        out.append(Check("conda-plugin", "fail" if routed_to_us else "warn",
                         f"conda: privpkg's plugin is not registered in {where}"
                         + ("; condarc routes channels to it, so conda sends their requests without credentials" if routed_to_us else "")
                         + f"; install privpkg where conda runs: {info.get('python') or python} -m pip install /path/to/privpkg"))


def plugin_check(routed_to_us: bool = True) -> Check | None:
    """The plugin's registration in the conda that would run (None when no conda is found), for
    ``setup conda`` to add a note when conda would not call the handler it routes to."""
    found: list[Check] = []
    _plugin_checks(found, routed_to_us, relevant=False)
    return found[0] if found else None


def _files() -> list[Path]:
    """The condarc files whose channel_settings privpkg reads: the one setup edits, and
    ``~/.condarc`` (which conda also reads) when that is another."""
    path, _ = condarc.condarc_path()
    files = [path]
    home = Path("~/.condarc").expanduser()
    if home != path:
        files.append(home)
    return files


def _routing(out: list[Check]) -> dict[str, str]:
    """pattern -> handler from every file of :func:`_files` (a later entry wins, as in conda);
    one check per file."""
    routed: dict[str, str] = {}
    for path in _files():
        try:
            here = condarc.routing(path)
        except PrivpkgError as exc:
            out.append(Check("conda-channels", "warn", str(exc)))
            continue
        if here is None:
            continue
        ours = [p for p, h in here.items() if h == condarc.HANDLER]
        out.append(Check("conda-channels", "ok", f"condarc {path}: {len(ours)} channel_settings entr{'y' if len(ours) == 1 else 'ies'} "
                                                 "route to privpkg"))
        for p in ours:
            out.append(Check("conda-channels", "ok", f"{p} -> privpkg", sub=True))
        routed.update(here)
    return routed


def conda_checks(url: str | None = None) -> list[Check]:
    """The conda section of ``privpkg doctor``; see the module docstring."""
    out: list[Check] = []
    files: list[Check] = []
    routed = _routing(files)
    try:
        want = condarc.wanted()
    except PrivpkgError as exc:
        files.append(Check("conda-channels", "warn", f"CondaChannel connections not checked: {exc}"))
        want = {}
    routed_to_us = any(h == condarc.HANDLER for h in routed.values())
    _plugin_checks(out, routed_to_us, bool(want or routed_to_us or url))
    out += files
    synced = " (privpkg setup conda ran: the connection verbs keep the entries in step)" if condarc.set_up() else ""
    for p, name in want.items():
        if routed.get(p) == condarc.HANDLER:
            continue
        if p in routed:
            out.append(Check("conda-channels", "warn", f"connection {name!r}: condarc routes {p} to {routed[p]!r}, not privpkg"))
        else:
            out.append(Check("conda-channels", "warn", f"connection {name!r}: no channel_settings entry routes {p} to privpkg, so conda "
                                                       "sends those requests without credentials; run: privpkg setup conda"))
    if want and synced:
        out.append(Check("conda-channels", "ok", f"{len(want)} CondaChannel connection(s){synced}"))
    for p, h in routed.items():
        if h == condarc.HANDLER and p not in want:
            out.append(Check("conda-channels", "warn", f"condarc routes {p} to privpkg but no CondaChannel connection has that target"))
    if url:
        out.append(_url_check(url, routed))
    return out


def _url_check(url: str, routed: dict[str, str]) -> Check:
    from fnmatch import fnmatch
    from urllib.parse import urlparse

    from privpkg import urls

    shown = urls.redact(url) if "://" in url else url
    if channelauth.allowed(url) is None:
        return Check("conda-url", "ok", f"conda: {shown} gets no credential from privpkg (only https URLs, and http on loopback)")
    try:
        conn = channelauth.connection_for(url)
    except PrivpkgError as exc:
        return Check("conda-url", "fail", f"conda: connections not readable: {exc}")
    if conn is None:
        return Check("conda-url", "ok", f"conda: no CondaChannel connection answers {shown}")
    pu = urlparse(url)
    handler = None
    for p, h in routed.items():  # conda's rule: fnmatch on netloc+path, same scheme, last match wins
        pp = urlparse(p)
        if pp.scheme == pu.scheme and fnmatch(pu.netloc + pu.path, pp.netloc + pp.path):
            handler = h
    from privpkg.connections.model import sent_as

    sent = sent_as(conn.auth_type)
    what = f"conda: connection {conn.name!r} ({conn.source}, target {conn.target}) answers {shown} with {sent}"
    if handler == condarc.HANDLER:
        return Check("conda-url", "ok", f"{what}; condarc routes it to privpkg")
    if handler:
        return Check("conda-url", "warn", f"{what}, but condarc routes it to {handler!r}")
    return Check("conda-url", "warn", f"{what}, but no channel_settings entry routes it to privpkg: run privpkg setup conda")
