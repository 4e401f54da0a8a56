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
from typing import Any

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


def test_privpkg_put_on_sys_path_by_hand_is_found_by_the_child(tmp_path: Path) -> None:
    """A Python that has neither privpkg nor py-rattler installed, given both on sys.path by
    hand (a notebook's ``sys.path.insert``, a vendored copy): the child finds them where its
    parent did (it said "No module named 'privpkg'")."""
    import rattler

    import privpkg

    bare = tmp_path / "bare"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)  # type: ignore[attr-defined]
    added = [str(Path(privpkg.__file__).parents[1]), str(Path(rattler.__file__).parents[1])]
    script = f"import sys\nsys.path[:0] = {added!r}\n" + _SCRIPT
    res = subprocess.run([str(bare / "bin" / "python"), "-c", script, json.dumps(_channel(tmp_path)), CHANNEL],
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert [s[0] for s in json.loads(res.stdout)["solved"]] == ["helper", "privtool"]


#: On PYTHONPATH: in the py-rattler child only, writes the names of its environment variables
#: and the files its descriptors name to $RATTLER_CHILD_REPORT.
_SITECUSTOMIZE = """
import json, os
if b"rattlerproc" in open("/proc/self/cmdline", "rb").read():
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds.append(os.readlink("/proc/self/fd/" + fd))
        except OSError:
            pass
    with open(os.environ["RATTLER_CHILD_REPORT"], "a") as f:
        f.write(json.dumps({"env": sorted(os.environ), "fds": fds}) + "\\n")
"""


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc")
def test_the_install_child_is_an_installer_as_uv_and_conda_are(checked_cli: Any, channel_server: Any, tmp_path: Path) -> None:
    """``env build`` of a conda list with py-rattler: the child that installs gets no secret
    variable (here an Azure storage key) and holds the build's lock, as uv,
    pip and conda do (a builder killed then leaves its build locked until the child ends)."""
    from privpkg import envvars

    secret = channel_server.secrets["bearer"]
    storage_key = "STORAGEKEY" + "s" * 30
    cli = checked_cli(secret, storage_key)
    base = channel_server.url("bearer")
    cli.ok("connection", "set", "chan", "--category", "CondaChannel", "--auth-type", "Bearer", "--target", base, stdin=secret + "\n")
    fn = "privtool-1.1-0.tar.bz2"
    digest = hashlib.sha256((channel_server.dir / "noarch" / fn).read_bytes()).hexdigest()
    lock = tmp_path / "conda-linux-64.txt"
    lock.write_text(f"# platform: linux-64\n@EXPLICIT\n{base}noarch/{fn}#sha256:{digest}\n")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    report = tmp_path / "child.jsonl"
    extra = {"PYTHONPATH": str(hook), "RATTLER_CHILD_REPORT": str(report), "AZURE_STORAGE_KEY": storage_key}
    res = cli("env", "build", "--lock", lock, env=extra)
    assert res.returncode == 0 and "with py-rattler" in res.stderr, res.stdout + res.stderr
    (child,) = [json.loads(line) for line in report.read_text().splitlines()]
    assert "AZURE_STORAGE_KEY" not in child["env"] and "RATTLER_CHILD_REPORT" in child["env"], child["env"]
    cache = Path(cli.env[envvars.HOME]) / "cache"
    assert [f for f in child["fds"] if f.startswith(str(cache)) and Path(f).parent.name == "locks" and Path(f).name.startswith("build-")], child["fds"]


@pytest.mark.parametrize("executable", ["", "/nonexistent/python"])
def test_no_interpreter_to_start_is_privpkgs_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executable: str) -> None:
    """An embedded Python (``sys.executable`` empty) or a removed one: the API raises
    privpkg's own error, one line (it was a bare PermissionError or FileNotFoundError)."""
    monkeypatch.setattr(rattlerproc.sys, "executable", executable)
    with pytest.raises(PrivpkgError) as exc:
        rattlerproc.solve(_channel(tmp_path), ["helper"], "linux-64")
    message = str(exc.value)
    assert message.startswith("cannot start py-rattler's process with this Python (") and "\n" not in message, message
    assert message.endswith("while solving the conda dependencies for linux-64: " + ("Permission denied" if not executable else "No such file or directory"))
