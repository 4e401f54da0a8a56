"""py-rattler's async calls (solve, index + solve + install), run in a child process.

py-rattler 0.28 hands each async result back from one of its tokio threads through
``loop.call_soon_threadsafe``, whose self-pipe write releases the GIL inside that thread's
``with_gil`` block. The waiting event loop then finishes first; if the interpreter exits before
the tokio thread takes the GIL back, CPython ends that thread (``PyThread_exit_thread``) and the
forced unwinding drops Python objects without the GIL: SIGSEGV or SIGABRT *after* the command
has done its work (measured: 13 runs in 300 of one lock; seen once in CI as ``env lock`` exit
-11). It is a race in py-rattler and pyo3-async-runtimes, not in what privpkg asks of them, and
no py-rattler release avoids it. So privpkg's own process (the CLI, or the user's Python through
:mod:`privpkg.environments.api`) never runs py-rattler's threads: this module's ``__main__``
does the call in a child, writes one JSON answer, and leaves with :func:`os._exit`, skipping
the finalization that races (measured: 0 in 300).

Nothing secret crosses: channel URLs are screened plain URLs and the rest are local paths.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from privpkg.errors import PrivpkgError, UsageError, shown

#: Fields of each solved record sent back to the parent, in the child's order.
_FIELDS = ("name", "version", "build", "subdir", "url", "sha256", "file_name")


class Solved(NamedTuple):
    """One package of a solution: what a lock line needs."""

    name: str
    version: str
    build: str
    subdir: str
    url: str
    sha256: str  # hex, "" when the channel gives none
    file_name: str


def available() -> bool:
    """Whether py-rattler is importable here (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("rattler") is not None


def solve(sources: Sequence[tuple[str, str, str]], specs: Sequence[str], platform: str,
          keep: Sequence[tuple[str, str]] = ()) -> list[Solved]:
    """The packages to install on ``platform``, dependencies first. ``sources``: (channel URL,
    subdir, local repodata.json path); ``keep``: (name, URL) of packages the solver prefers
    while the specs allow them. A spec that cannot be solved is a :class:`UsageError`."""
    answer = _call({"op": "solve", "sources": [list(s) for s in sources], "specs": list(specs),
                    "platform": platform, "keep": [list(k) for k in keep]}, f"solving the conda dependencies for {platform}")
    if answer.get("error") == "solver":
        raise UsageError(f"the conda dependencies cannot be solved for {platform}: {shown(answer.get('message', ''), 200)}")
    if "error" in answer:
        raise UsageError(f"solving the conda dependencies for {platform} failed: {shown(answer.get('message', ''), 200)}")
    return [Solved(**{k: str(r[k]) for k in _FIELDS}) for r in answer["records"]]


def install(channel: str, specs: Sequence[str], prefix: str, cache_dir: str, *,
            env: Mapping[str, str] | None = None, pass_fds: Sequence[int] = ()) -> None:
    """Index the local channel folder ``channel`` (packages already in their subdir folders),
    solve ``specs`` from it alone and install them into ``prefix``, linking from ``cache_dir``.
    ``env`` and ``pass_fds``: the child's environment and inherited descriptors, as the build
    gives every installer (no secret variable; the build's lock)."""
    answer = _call({"op": "install", "channel": channel, "specs": list(specs), "prefix": prefix, "cache_dir": cache_dir},
                   "installing the conda packages", env=env, pass_fds=pass_fds)
    if "error" in answer:
        raise PrivpkgError(f"installing the conda packages failed: {shown(answer.get('message', ''), 300)}")


def _call(request: dict[str, Any], doing: str, *, env: Mapping[str, str] | None = None,
          pass_fds: Sequence[int] = ()) -> dict[str, Any]:
    import json
    import subprocess

    # -P: the child does not put the working folder first on sys.path (a project's rattler.py or
    # json.py is not run); not -I, which would lose a user-site or PYTHONPATH install of privpkg.
    # This process's own path goes after the child's: privpkg or py-rattler put on sys.path by
    # hand (a notebook, a vendored copy) is found there too, and never before an installed module.
    path = [os.path.abspath(p) for p in sys.path]
    boot = f"import sys; sys.path += [p for p in {path!r} if p not in sys.path]; from {__name__} import _child_main; _child_main()"
    try:
        proc = subprocess.run([sys.executable, "-P", "-c", boot], input=json.dumps(request), capture_output=True, text=True,
                              encoding="utf-8", errors="replace", check=False, env=env, pass_fds=tuple(pass_fds))
    except OSError as exc:  # no interpreter to run (embedded Python: sys.executable is ""): one line, privpkg's class
        raise PrivpkgError(f"cannot start py-rattler's process with this Python ({shown(sys.executable or 'sys.executable is empty', 120)}) "
                           f"while {doing}: {exc.strerror or type(exc).__name__}") from None
    try:
        answer = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else None
    except ValueError:
        answer = None
    if proc.returncode != 0 or not isinstance(answer, dict):
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no message"
        raise PrivpkgError(f"py-rattler stopped ({how}) while {doing}: {shown(last, 200)}")
    return answer


# --- the child -------------------------------------------------------------------------------

def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _child_solve(request: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    import rattler
    from rattler.exceptions import SolverError

    platform = request["platform"]
    sources = [rattler.SparseRepoData(rattler.Channel(channel), subdir, path) for channel, subdir, path in request["sources"]]
    wanted = {url for _, url in request["keep"]}
    names = sorted({name for name, _ in request["keep"]})
    locked = [r for src in sources for name in names for r in src.load_records(name) if str(r.url) in wanted]
    virtual = rattler.VirtualPackage.detect() if platform == str(rattler.Subdir.current()) else []
    try:
        records = asyncio.run(rattler.solve(sources, list(request["specs"]), platforms=[rattler.Subdir(platform), rattler.Subdir("noarch")],
                                            virtual_packages=virtual, locked_packages=locked))
    except SolverError as exc:
        return {"error": "solver", "message": _first_line(exc)}
    # Dependencies first (CEP 23: an explicit list is installed in order, without a solver).
    by_id = {(r.name.normalized, str(r.version), r.build, r.subdir): r for r in records}
    out = []
    for r in rattler.PackageRecord.sort_topologically(list(records)):
        r = by_id[(r.name.normalized, str(r.version), r.build, r.subdir)]
        out.append({"name": r.name.normalized, "version": str(r.version), "build": str(r.build), "subdir": str(r.subdir),
                    "url": str(r.url), "sha256": r.sha256.hex() if r.sha256 else "", "file_name": str(r.file_name)})
    return {"records": out}


def _child_install(request: dict[str, Any]) -> dict[str, Any]:
    import asyncio
    from pathlib import Path

    import rattler
    from rattler.index import index_fs

    channel = Path(request["channel"])
    for subdir in ("noarch", str(rattler.Subdir.current())):  # a channel has both, even empty
        (channel / subdir).mkdir(parents=True, exist_ok=True)
    asyncio.run(index_fs(channel_directory=channel, write_shards=False, write_zst=False, force=True))
    records = asyncio.run(rattler.solve(sources=[channel.as_uri()], specs=request["specs"], timestamp_policy="allow-missing"))
    asyncio.run(rattler.install(records, target_prefix=request["prefix"], cache_dir=request["cache_dir"], show_progress=False))
    return {"ok": True}


def _child_main() -> None:
    import json

    try:
        request = json.loads(sys.stdin.read())
        run = {"solve": _child_solve, "install": _child_install}[request["op"]]
        try:
            answer = run(request)
        except Exception as exc:  # noqa: BLE001 - py-rattler raises its own exception types per failure
            answer = {"error": "failed", "message": _first_line(exc)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    except KeyboardInterrupt:  # the parent got the same Ctrl-C and reports it
        os._exit(130)
    except BaseException as exc:  # noqa: BLE001 - a broken request: the parent reports the line
        sys.stderr.write(f"{type(exc).__name__}: {_first_line(exc)}\n")
        sys.stderr.flush()
        os._exit(1)
    os._exit(0)  # no finalization: see the module docstring


if __name__ == "__main__":
    _child_main()
