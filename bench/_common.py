"""What the scripts in bench/ share: the test suite's helpers (one import point: the children's
clean environment, throwaway venvs with privpkg built from this checkout, the wheel maker, the
process starter, Azurite), whole-process timings through hyperfine in alternating rounds, a
bootstrap interval, and the JSON result.

Not a benchmark itself. In-process timings use pyperf directly (lookup.py); only what neither
tool measures (the upload's peak RSS, in azure_upload.py) is timed by hand.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS_DIR = HERE / "results"
sys.path.insert(0, str(REPO / "tests"))

# The ONE import point of what bench shares with the tests and the demo (tests/support imports
# pytest: the bench extra has it): the wheel maker, the process starter, Azurite's set-up, the
# clean environment (support.env.clean_env: HOME, XDG dirs and PRIVPKG_HOME in a throwaway dir,
# no variable privpkg, pip, uv or keyring reads), uv venvs and the privpkg wheel.
from support.builds import Venv, build_privpkg_wheel, find_uv, make_venv
from support.conda import conda_env, find_conda, make_base  # noqa: F401 (re-exported: real conda, conda_env.py)
from support.conda_channel import build_channel  # noqa: F401 (re-exported)
from support.env import clean_env  # noqa: F401 (re-exported)
from support.storage import (  # noqa: F401 (re-exported)
    AZURITE_ACCOUNT,
    AZURITE_API_VERSION,
    AZURITE_KEY,
    AZURITE_VERSION,
    install_azurite,
    start_azurite,
)

from privpkg.testing import make_wheel, start_server, stop_process  # noqa: F401 (re-exported)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(cmd: list[Any], **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` and stop the benchmark if it fails. Unlike the tests' ``support.env.run``
    (stdout and stderr merged, stdin closed, the exit code for the test to judge), a benchmark
    reads stdout and stderr apart (JSON on stdout, ``-X importtime`` on stderr), may feed stdin
    and has nothing to do after a failed step."""
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False, **kw)
    if res.returncode != 0:
        raise SystemExit(f"command failed (exit {res.returncode}): {' '.join(map(str, cmd))}\n{res.stdout}{res.stderr}")
    return res


def uv_cache() -> Path:
    """The user's uv cache (not the throwaway HOME's), so repeated benchmark runs build quickly."""
    return Path(run([find_uv(), "cache", "dir"]).stdout.strip())


def privpkg_venv(dest: Path, packages: list[Any], env: dict[str, str], constraints: Path | None = None) -> dict[str, str]:
    """A venv of this interpreter with ``packages`` (bytecode compiled, so no timed call compiles
    it); returns {distribution: version} of what is installed."""
    make_venv(find_uv(), uv_cache(), env, dest, packages, constraints=constraints, compile_bytecode=True)
    return Venv(dest).distributions(env)


def privpkg_wheel(out_dir: Path, env: dict[str, str]) -> Path:
    """A wheel of this checkout (so a venv gets privpkg_pip_shim.pth)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return build_privpkg_wheel(find_uv(), uv_cache(), env, out_dir)


def source_revision() -> str | None:
    """The commit of this checkout, flagged when src/ has uncommitted changes (None outside git)."""
    def git(*a: str) -> str | None:
        r = subprocess.run(["git", "-C", str(REPO / "src"), *a], capture_output=True, text=True, check=False)
        return r.stdout.strip() if r.returncode == 0 else None

    head = git("rev-parse", "--short", "HEAD")
    return head and head + ("+uncommitted src changes" if git("status", "--porcelain", "--", ".") else "")


# --------------------------------------------------------------------------- whole-process timings


def hyperfine(commands: dict[str, list[Any]], env: dict[str, str], *, runs: int, rounds: int, warmup: int,
              prepare: dict[str, list[Any]] | None = None, ignore_failure: bool = False) -> dict[str, Any]:
    """Time each named command (no shell, stdout piped) with hyperfine. hyperfine runs one
    command's runs back to back, so the ``runs`` are split over ``rounds`` hyperfine calls, each
    with its own ``warmup`` and the commands' order rotated by one: every command is measured all
    through the run, first as often as last, and drift on a shared machine hits all alike.
    Returns per name: the pooled wall times (ms), every exit code, the CPU mean (ms) and each
    round's median."""
    if not shutil.which("hyperfine"):
        raise SystemExit("hyperfine is not on PATH: install it with your package manager (Debian: apt install hyperfine; "
                         "the PyPI package named hyperfine is something else)")
    out: dict[str, Any] = {k: {"ms": [], "exit_codes": [], "cpu_ms": [], "round_medians": []} for k in commands}
    per_round = [runs // rounds + (i < runs % rounds) for i in range(rounds)]
    with tempfile.TemporaryDirectory(prefix="privpkg-bench-hf-") as tmp:
        for i, n in enumerate(r for r in per_round if r):
            names = list(commands)[i % len(commands):] + list(commands)[:i % len(commands)]
            export = Path(tmp) / f"round{i}.json"
            argv = ["hyperfine", "-N", "--style", "none", "--output", "pipe", "--warmup", warmup, "--runs", n,
                    "--export-json", export, *(["-i"] if ignore_failure else [])]
            for name in names:
                argv += ["--prepare", shlex.join(map(str, prepare[name]))] if prepare else []
                argv += ["-n", name, shlex.join(map(str, commands[name]))]
            log(f"  hyperfine round {i + 1}/{len(per_round)}: {n} runs each, order {', '.join(names)}")
            run(argv, env=env)
            for res in json.loads(export.read_text())["results"]:
                o = out[res["command"]]
                o["ms"] += [t * 1e3 for t in res["times"]]
                o["exit_codes"] += res["exit_codes"]
                o["cpu_ms"] += [(res["user"] + res["system"]) * 1e3] * len(res["times"])
                o["round_medians"].append(res["median"] * 1e3)
    for o in out.values():
        o["median_ms"] = statistics.median(o["ms"])
        o["cpu_mean_ms"] = statistics.fmean(o.pop("cpu_ms"))
    return out


def interleaved(commands: dict[str, tuple[list[Any], dict[str, str]]], *, runs: int, warmup: int,
                seed: int = 1) -> dict[str, Any]:
    """Time each named ``(argv, env)`` once per iteration, in a fresh shuffled order every
    iteration (stdin from /dev/null, stdout piped and stderr discarded, as pip runs keyring).

    hyperfine runs one command's runs back to back, so drift on a shared machine (a noisy
    neighbour, frequency changes) lands on whichever command is running at the time; here every
    iteration runs every command within a second or so, and ``paired`` (each iteration's time
    minus the first command's) cancels that drift. Wall time from ``perf_counter_ns`` around
    ``subprocess.run`` (the spawn costs every command the same); CPU from the children's rusage.
    Returns per name: ``ms``, ``exit_codes``, ``cpu_mean_ms``, ``median_ms`` and, for all but
    the first name, ``paired`` (ms, in iteration order)."""
    import resource

    names = list(commands)
    rng = random.Random(seed)
    out: dict[str, Any] = {k: {"ms": [], "exit_codes": [], "cpu_ms": []} for k in names}
    for i in range(warmup + runs):
        order = names[:]
        rng.shuffle(order)
        for name in order:
            argv, env = commands[name]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter_ns()
            res = subprocess.run([str(a) for a in argv], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, check=False)
            wall = (time.perf_counter_ns() - t0) / 1e6
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if i >= warmup:
                o = out[name]
                o["ms"].append(wall)
                o["exit_codes"].append(res.returncode)
                o["cpu_ms"].append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1e3)
        if i >= warmup and (i - warmup + 1) % max(1, runs // 5) == 0:
            log(f"  {i - warmup + 1}/{runs} iterations")
    for name in names:
        o = out[name]
        o["median_ms"] = statistics.median(o["ms"])
        o["cpu_mean_ms"] = statistics.fmean(o.pop("cpu_ms"))
        if name != names[0]:
            o["paired"] = [a - b for a, b in zip(o["ms"], out[names[0]]["ms"])]
    return out


def median_ci(values: list[float], *, seed: int = 1, n: int = 2000) -> tuple[float, float, float]:
    """The median of ``values`` and its 95% bootstrap interval."""
    rng = random.Random(seed)
    boot = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(n))
    return statistics.median(values), boot[int(0.025 * n)], boot[int(0.975 * n) - 1]


def compare(base: list[float], other: list[float], *, ratio: bool = False, seed: int = 1, n: int = 2000) -> tuple[float, float, float]:
    """median(other) − median(base) (or their ratio) and its 95% bootstrap interval."""
    op: Callable[[float, float], float] = (lambda b, o: o / b) if ratio else (lambda b, o: o - b)
    rng = random.Random(seed)
    boot = sorted(op(statistics.median(rng.choices(base, k=len(base))), statistics.median(rng.choices(other, k=len(other))))
                  for _ in range(n))
    return op(statistics.median(base), statistics.median(other)), boot[int(0.025 * n)], boot[int(0.975 * n) - 1]


def verdict(value: float, lo: float, hi: float, target: float, *, at_least: bool = False) -> tuple[bool, bool, str]:
    """(met, resolved, sentence): whether ``value`` meets the target and whether the whole
    interval ``lo … hi`` lies on one side of it (if not, more runs narrow it, about 1/sqrt(runs))."""
    met = value >= target if at_least else value <= target
    resolved = not (lo <= target <= hi)
    text = "met" if met else "**MISSED**"
    return met, resolved, text + ("" if resolved else f", not resolved: {lo:.3g} … {hi:.3g} spans {target:g}")


def busy_note(load_before: float, own: float = 1.0) -> str:
    """A sentence when the 1-minute load says other work shared the machine."""
    load, cpus = max(load_before, os.getloadavg()[0]), os.cpu_count() or 1
    if load - own > 0.25 * cpus:
        return f"\nNote: the machine was busy (1-min load up to {load:.2f} on {cpus} CPUs); absolute times are inflated."
    return ""


# --------------------------------------------------------------------------- results


def write_result(name: str, result: dict[str, Any], path: Path | None = None) -> None:
    """Write a benchmark's JSON result (with where and what it ran on) and say where."""
    path = path or RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"benchmark": name, "when": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "source_revision": source_revision(), "python": platform.python_version(),
            "platform": platform.platform(), "cpus": os.cpu_count(), "loadavg": os.getloadavg()}
    path.write_text(json.dumps({**meta, **result}, indent=2) + "\n")
    print(f"\nJSON: {path}")
