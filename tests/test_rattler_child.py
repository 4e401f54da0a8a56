"""py-rattler runs in a child process (privpkg.environments.rattlerproc): privpkg's own process
never starts rattler's tokio threads, so it cannot crash at exit in the race between them and
interpreter finalization (CI saw `privpkg env lock` exit -11 after printing its result)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from privpkg.environments import rattlerproc
from privpkg.errors import PrivpkgError, UsageError

CHANNEL = "http://127.0.0.1:9/team/"


def _sha(name: str, version: str) -> str:
    return hashlib.sha256(f"{name}-{version}".encode()).hexdigest()


def _channel(tmp_path: Path) -> list[tuple[str, str, str]]:
    """A channel of privtool 1.0 and 2.0 (2.0 needs a missing `ghost`) and helper 1.0, as
    local repodata files."""
    def record(name: str, version: str, depends: list[str]) -> dict[str, object]:
        return {"name": name, "version": version, "build": "0", "build_number": 0, "depends": depends,
                "sha256": _sha(name, version), "md5": "b" * 32, "subdir": "linux-64"}

    packages = {"privtool-1.0-0.tar.bz2": record("privtool", "1.0", ["helper"]),
                "privtool-2.0-0.tar.bz2": record("privtool", "2.0", ["helper"]),
                "helper-1.0-0.tar.bz2": record("helper", "1.0", [])}
    (tmp_path / "linux-64.json").write_text(json.dumps({"info": {"subdir": "linux-64"}, "packages": packages, "packages.conda": {}}))
    (tmp_path / "noarch.json").write_text('{"packages": {}, "packages.conda": {}}')
    return [(CHANNEL, "linux-64", str(tmp_path / "linux-64.json")), (CHANNEL, "noarch", str(tmp_path / "noarch.json"))]


_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from privpkg.environments import rattlerproc
    sources = [tuple(s) for s in json.loads(sys.argv[1])]
    keep = [("privtool", sys.argv[2] + "linux-64/privtool-1.0-0.tar.bz2")]
    solved = rattlerproc.solve(sources, ["privtool"], "linux-64", keep)
    print(json.dumps({"solved": [[s.name, s.version, s.url, s.sha256] for s in solved],
                      "rattler_modules": sorted(m for m in sys.modules if m == "rattler" or m.startswith("rattler.")),
                      "threads": len(os.listdir("/proc/self/task"))}))
""")


def test_solving_leaves_privpkgs_process_without_rattler(tmp_path: Path) -> None:
    """The answer comes back whole (dependencies first, the kept version, URL and sha256), and the
    asking process has imported no rattler module and runs no thread but its own."""
    res = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps(_channel(tmp_path)), CHANNEL],
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["solved"] == [["helper", "1.0", CHANNEL + "linux-64/helper-1.0-0.tar.bz2", _sha("helper", "1.0")],
                             ["privtool", "1.0", CHANNEL + "linux-64/privtool-1.0-0.tar.bz2", _sha("privtool", "1.0")]]
    assert out["rattler_modules"] == [] and out["threads"] == 1, out


def test_thirty_processes_that_solve_all_exit_cleanly(tmp_path: Path) -> None:
    """Before the child process, about 1 exit in 25 of a process that had solved crashed
    (SIGSEGV or SIGABRT, measured 13 in 300): 30 in a row all exit 0 now."""
    sources = json.dumps(_channel(tmp_path))
    codes = [subprocess.run([sys.executable, "-c", _SCRIPT, sources, CHANNEL], capture_output=True, timeout=120, check=False).returncode
             for _ in range(30)]
    assert codes == [0] * 30, codes


def test_an_unsolvable_spec_is_one_usage_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as exc:
        rattlerproc.solve(_channel(tmp_path), ["privtool >=3"], "linux-64")
    message = str(exc.value)
    assert message.startswith("the conda dependencies cannot be solved for linux-64: ") and "\n" not in message, message


def test_a_bad_match_spec_is_one_usage_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as exc:
        rattlerproc.solve(_channel(tmp_path), ["privtool ==="], "linux-64")
    message = str(exc.value)
    assert message.startswith("solving the conda dependencies for linux-64 failed: ") and "\n" not in message, message


def test_a_child_that_dies_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake interpreter (no real py-rattler crash can be had on demand) that kills itself with
    SIGSEGV: the parent names the signal and what it was doing, in one line."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'thread panicked' >&2\nkill -SEGV $$\n")
    fake.chmod(0o755)
    monkeypatch.setattr(rattlerproc.sys, "executable", str(fake))
    with pytest.raises(PrivpkgError) as exc:
        rattlerproc.install(str(tmp_path / "channel"), ["privtool"], str(tmp_path / "prefix"), str(tmp_path / "cache"))
    assert str(exc.value) == "py-rattler stopped (signal 11) while installing the conda packages: thread panicked"


def test_the_child_ignores_a_rattler_module_in_the_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A project's own `rattler.py` in the working folder is not what the child imports."""
    (tmp_path / "rattler.py").write_text("import os\nopen(os.path.join(os.path.dirname(__file__), 'RAN'), 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    solved = rattlerproc.solve(_channel(tmp_path), ["helper"], "linux-64")
    assert [s.name for s in solved] == ["helper"] and not (tmp_path / "RAN").exists()
    assert os.listdir(tmp_path).count("RAN") == 0
