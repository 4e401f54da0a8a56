"""Helpers shared by the scripts in bench/ (shim_install, azure_upload, startup, keyring_cli, lookup).

Not a benchmark itself. Stdlib plus :mod:`privpkg.testing` (the free-port helper and process
starter the tests use too): throwaway venvs through ``python -m uv`` (the dev environment has
it), a privpkg wheel built from this checkout, per-child wall/CPU/peak-RSS timing through
``os.wait4``, small statistics, and an Azurite started on a free loopback port and stopped by its
PID.
"""

from __future__ import annotations

import json
import os
import random
import runpy
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privpkg.testing import start_on_free_port, stop_process

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS_DIR = HERE / "results"

AZURITE_VERSION = "3.35.0"
AZURITE_NPM_DIR = REPO / ".cache" / "azurite-npm"
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published development key (public; never a real secret).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_API_VERSION = "2025-11-05"

# The variables privpkg reads, from the one module that names them (it imports nothing, so it is
# read by path: these scripts stay stdlib-only and need no privpkg in the running interpreter).
PRIVPKG_ENV: tuple[str, ...] = tuple(runpy.run_path(str(REPO / "src" / "privpkg" / "envvars.py"))["ALL"])
# Anything in the environment that would change what privpkg, pip or Python do in a child.
STRIP_ENV = (
    *PRIVPKG_ENV,
    "PYTHON_KEYRING_BACKEND",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONHOME",
    "PYTHONPROFILEIMPORTTIME",
    "VIRTUAL_ENV",
)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(cmd: list[Any], **kw: Any) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False, **kw)
    if res.returncode != 0:
        raise SystemExit(
            f"command failed (exit {res.returncode}): {' '.join(map(str, cmd))}\n{res.stdout}{res.stderr}"
        )
    return res


def clean_env(*, strip_pip: bool = True) -> dict[str, str]:
    """os.environ without privpkg/Python overrides, and without every PIP_* variable (pip then
    reads no config file either: PIP_CONFIG_FILE=os.devnull)."""
    env = {k: v for k, v in os.environ.items() if k not in STRIP_ENV and not (strip_pip and k.startswith("PIP_"))}
    if strip_pip:
        env["PIP_CONFIG_FILE"] = os.devnull
    return env


# --------------------------------------------------------------------------- statistics


def pct(data: list[float], p: float) -> float:
    s = sorted(data)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def bootstrap_diff_ci(a: list[float], b: list[float], seed: int = 1, n: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval of median(b) - median(a)."""
    rng = random.Random(seed)
    diffs = sorted(
        statistics.median(rng.choices(b, k=len(b))) - statistics.median(rng.choices(a, k=len(a)))
        for _ in range(n)
    )
    return diffs[int(0.025 * n)], diffs[int(0.975 * n) - 1]


def bootstrap_ratio_ci(a: list[float], b: list[float], seed: int = 1, n: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval of median(b) / median(a)."""
    rng = random.Random(seed)
    r = sorted(
        statistics.median(rng.choices(b, k=len(b))) / statistics.median(rng.choices(a, k=len(a)))
        for _ in range(n)
    )
    return r[int(0.025 * n)], r[int(0.975 * n) - 1]


def loadavg(ndigits: int | None = 2) -> list[float] | None:
    """The 1-, 5- and 15-minute load averages, rounded to ``ndigits`` (None: as the OS gives them)."""
    try:
        return [x if ndigits is None else round(x, ndigits) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def busy_note(before: list[float] | None, after: list[float] | None, own: float = 1.0) -> str:
    """A sentence when the 1-minute load says something else was running (this benchmark itself
    keeps about ``own`` CPUs busy)."""
    cpus = os.cpu_count() or 1
    if not before:
        return ""
    peak = max(before[0], (after or before)[0])
    if peak - own > 0.25 * cpus:
        return (f"Note: the machine was busy (1-min load {before[0]:.2f} → {(after or before)[0]:.2f} on {cpus} CPUs, "
                f"this benchmark itself ≈ {own:g}); absolute times are inflated, interleaved comparisons less so.")
    return ""


# --------------------------------------------------------------------------- child processes


@dataclass
class Timed:
    wall_s: float
    cpu_s: float  # the child's user + sys
    maxrss_bytes: int  # the child's peak resident set (ru_maxrss)
    returncode: int
    stdout: str
    stderr: str


def timed(cmd: list[Any], env: dict[str, str], cwd: Path | None = None) -> Timed:
    """Run ``cmd`` and return its wall time as the caller waits for it, plus the CPU time and
    peak RSS of that one child (os.wait4: no mixing with other children)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter_ns()
        proc = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = (time.perf_counter_ns() - t0) / 1e9
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        rss = ru.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
        return Timed(wall, ru.ru_utime + ru.ru_stime, rss, proc.returncode,
                     out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def proc_cpu_s(pid: int) -> float | None:
    """user+sys CPU seconds of a running process (Linux /proc), e.g. Azurite's."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- venvs


def venv_bin(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / (name + (".exe" if os.name == "nt" else ""))


def uv(*args: Any, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "uv", *args], env=env)


def build_privpkg_wheel(out_dir: Path, env: dict[str, str]) -> Path:
    """A normal (non-editable) wheel of this checkout, so the venv gets privpkg_pip_shim.pth."""
    uv("build", "--quiet", "--wheel", "--out-dir", out_dir, REPO, env=env)
    wheels = sorted(out_dir.glob("privpkg-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one privpkg wheel in {out_dir}, got {wheels}")
    return wheels[0]


def make_venv(venv: Path, packages: list[Any], env: dict[str, str], *, installer: str = "uv",
              constraints: Path | None = None, reinstall: tuple[str, ...] = ()) -> None:
    """A venv from this interpreter with ``packages`` installed: with ``python -m uv`` (default)
    or ``python -m venv`` + pip (``installer="pip"``); ``constraints``: a ``-c`` file;
    ``reinstall`` (uv only): ``--reinstall-package`` names."""
    py = venv_bin(venv, "python")
    if installer == "uv":
        # --compile-bytecode: like pip, so no timed call pays for compiling (PYTHONDONTWRITEBYTECODE
        # may be set in this environment). --reinstall-package: uv's cache keys a local project on
        # pyproject.toml only, so without it an edited src/ could be served from a stale cached wheel.
        uv("venv", "--quiet", "--python", sys.executable, venv, env=env)
        cmd: list[Any] = [sys.executable, "-m", "uv", "pip", "install", "--quiet", "--python", py, "--compile-bytecode"]
        for name in reinstall:
            cmd += ["--reinstall-package", name]
    elif installer == "pip":
        run([sys.executable, "-m", "venv", venv], env=env)
        cmd = [py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]  # compiles .pyc
    else:
        raise ValueError(f"unknown installer {installer!r}")
    if constraints is not None:
        cmd += ["-c", constraints]
    run([*cmd, *packages], env=env)


def freeze(venv: Path, env: dict[str, str]) -> dict[str, str]:
    import json

    code = ("import json, importlib.metadata as m;"
            "print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))")
    return json.loads(run([venv_bin(venv, "python"), "-c", code], env=env).stdout)


def site_packages(venv: Path, env: dict[str, str]) -> Path:
    return Path(run([venv_bin(venv, "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    env=env).stdout.strip())


def source_revision(src: Path = REPO / "src") -> str | None:
    """The commit of the git checkout holding the directory ``src`` (default: this checkout's
    src/), flagged when anything below ``src`` has uncommitted changes; None when ``src`` is not a
    directory in a git checkout (e.g. a wheel, or an installed site-packages)."""
    if not Path(src).is_dir():
        return None

    def git(*a: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(src), *a], capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    head = git("rev-parse", "--short", "HEAD")
    if not head:
        return None
    return head + ("+uncommitted src changes" if git("status", "--porcelain", "--", ".") else "")


# --------------------------------------------------------------------------- Azurite


def azurite_binary() -> Path:
    """``azurite-blob`` from .cache/azurite-npm, installed there with npm if it is missing."""
    binary = AZURITE_NPM_DIR / "node_modules" / ".bin" / "azurite-blob"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        raise SystemExit("Azurite needs Node.js (node and npm on PATH)")
    AZURITE_NPM_DIR.mkdir(parents=True, exist_ok=True)
    pkg = AZURITE_NPM_DIR / "package.json"
    if not pkg.exists():  # pins npm's install prefix here (npm would otherwise walk up)
        pkg.write_text('{"name": "privpkg-test-azurite", "private": true}\n')
    log(f"installing azurite@{AZURITE_VERSION} into {AZURITE_NPM_DIR} (npm)")
    run([npm, "install", "--no-audit", "--no-fund", "--prefix", AZURITE_NPM_DIR, f"azurite@{AZURITE_VERSION}"],
        cwd=AZURITE_NPM_DIR, env={**os.environ, "npm_config_update_notifier": "false"}, timeout=900)
    if not binary.exists():
        raise SystemExit(f"npm install azurite@{AZURITE_VERSION} did not create {binary}")
    return binary


class Azurite:
    """One ``azurite-blob`` on 127.0.0.1 with its data in ``location``; stop() by its PID."""

    def __init__(self, binary: Path, location: Path) -> None:
        node = shutil.which("node")
        if not node:
            raise SystemExit("node is not on PATH")
        location.mkdir(parents=True, exist_ok=True)

        def argv(port: int) -> list[str]:
            return [node, str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(location),
                    "--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"]

        try:
            self.proc, self.port = start_on_free_port(argv, location.parent / "azurite.log", "Azurite")
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None
        self.location = location

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"

    def stop(self) -> None:
        stop_process(self.proc, timeout=10)


def write_result(path: Path, result: dict[str, Any]) -> None:
    """Write a benchmark's JSON result and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nJSON: {path}")
