#!/usr/bin/env python
"""Benchmark: Python start-up with and without privpkg's pip shim installed.

Requirement: "`python -c pass` with and without the shim installed: report the difference."
Target used here: the shim adds at most 2 ms (median).

    python bench/startup.py                      # 200 interleaved runs per variant
    python bench/startup.py --runs 500
    python bench/startup.py --venv PATH          # an existing venv with privpkg installed (non-editable)

It builds a throwaway venv with uv (pip 26.3 + a non-editable privpkg wheel built from this
checkout, so ``site-packages/privpkg_pip_shim.pth`` is present), then times
``VENV/bin/python -c pass`` interleaved in a shuffled order each round:

    with shim       the .pth in place (as installed)
    without shim    the same venv with the .pth renamed away for that run (restored at once, and
                    in a ``finally`` / on SIGTERM)

Every run is checked: with the shim its finder is on ``sys.meta_path``, without it it is not.
Also:

- ``python -X importtime -c pass`` with the shim: no ``privpkg`` module may appear, and the set
  of modules in ``sys.modules`` at start-up must be the same with and without the shim;
- in-process: ``site.addpackage()`` of that one .pth (exactly what site.py does for it at every
  start) timed in fresh ``python -S`` processes.

Prints a Markdown table and writes ``bench/results/startup.json``. Stdlib only.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import random
import shutil
import signal
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    RESULTS_DIR,
    bootstrap_diff_ci,
    build_privpkg_wheel,
    busy_note,
    clean_env,
    freeze,
    loadavg,
    log,
    make_venv,
    pct,
    run,
    site_packages,
    source_revision,
    timed,
    venv_bin,
    write_result,
)

RESULTS = RESULTS_DIR / "startup.json"
TARGET_MS = 2.0
PTH = "privpkg_pip_shim.pth"
FINDER = "PrivpkgPipShimFinder"

_STATE = "import sys, json; print(json.dumps({'meta_path': [type(f).__name__ for f in sys.meta_path], 'modules': sorted(sys.modules)}))"

_ADDPACKAGE_PROBE = r"""
import json, site, sys, time
sp, name = sys.argv[1], sys.argv[2]
t0 = time.perf_counter_ns()
site.addpackage(sp, name, set())
dt = time.perf_counter_ns() - t0
ok = any(type(f).__name__ == "PrivpkgPipShimFinder" for f in sys.meta_path)
print(json.dumps({"us": dt / 1e3, "finder": ok, "privpkg_modules": [m for m in sys.modules if "privpkg" in m]}))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=200, help="timed runs per variant (default 200)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed runs per variant first (default 10)")
    ap.add_argument("--probe-runs", type=int, default=50, help="fresh processes for the in-process .pth timing")
    ap.add_argument("--venv", type=Path, default=None, help="use this venv (privpkg installed, non-editable) instead of building one")
    ap.add_argument("--workdir", type=Path, default=None, help="where to build the venv (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the venv afterwards")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=RESULTS, help=f"result file (default {RESULTS})")
    args = ap.parse_args(argv)

    rev = source_revision() if args.venv is None else None
    env = clean_env()
    work = Path(tempfile.mkdtemp(prefix="privpkg-bench-startup-", dir=args.workdir))
    env["PRIVPKG_HOME"] = str(work / "home")
    pth: Path | None = None
    off: Path | None = None

    def restore() -> None:
        if off is not None and off.exists() and pth is not None and not pth.exists():
            os.replace(off, pth)

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    old_term = signal.signal(signal.SIGTERM, on_term)
    try:
        if args.venv is None:
            log("building the privpkg wheel from this checkout")
            wheel = build_privpkg_wheel(work / "dist", env)
            venv = work / "venv-privpkg"
            log(f"building {venv.name}: pip==26.3 + {wheel.name}")
            make_venv(venv, ["pip==26.3", wheel], env)
        else:
            venv = args.venv.resolve()
        py = venv_bin(venv, "python")
        frozen = freeze(venv, env)
        sp = site_packages(venv, env)
        pth, off = sp / PTH, sp / (PTH + ".bench-off")
        if off.exists() and not pth.exists():  # left over from an interrupted run
            os.replace(off, pth)
        if not pth.is_file():
            raise SystemExit(f"{pth} is missing: is privpkg installed (non-editable) in {venv}?")
        pth_text = pth.read_text()
        other_pth = sorted(p.name for p in sp.glob("*.pth") if p.name != PTH)

        def set_shim(on: bool) -> None:
            if on and not pth.exists():
                os.replace(off, pth)
            elif not on and pth.exists():
                os.replace(pth, off)

        # Sanity: what start-up looks like either way.
        states = {}
        for on in (True, False):
            set_shim(on)
            states[on] = json.loads(run([py, "-c", _STATE], env=env).stdout)
        set_shim(True)
        if FINDER not in states[True]["meta_path"] or FINDER in states[False]["meta_path"]:
            raise SystemExit(f"unexpected sys.meta_path: with {states[True]['meta_path']}, without {states[False]['meta_path']}")
        extra_modules = sorted(set(states[True]["modules"]) - set(states[False]["modules"]))
        missing_modules = sorted(set(states[False]["modules"]) - set(states[True]["modules"]))
        it = run([py, "-X", "importtime", "-c", "pass"], env=env).stderr
        imported = [ln.split("|")[-1].strip() for ln in it.splitlines() if ln.startswith("import time:") and "|" in ln]
        imported = [m for m in imported if m and m != "imported package"]
        privpkg_imported = [m for m in imported if "privpkg" in m]

        # Timed, interleaved.
        samples: dict[bool, list[float]] = {True: [], False: []}
        cpu: dict[bool, list[float]] = {True: [], False: []}
        rng = random.Random(args.seed)
        load_before = loadavg()
        log(f"timing: {args.warmup} warm-up + {args.runs} runs x 2 variants of `{py} -c pass`, interleaved")
        order = [True, False]
        for i in range(args.warmup + args.runs):
            rng.shuffle(order)
            for on in order:
                set_shim(on)
                r = timed([py, "-c", "pass"], env)
                if r.returncode != 0 or r.stdout or r.stderr:
                    raise SystemExit(f"python -c pass failed: exit {r.returncode} {r.stdout}{r.stderr}")
                if i >= args.warmup:
                    samples[on].append(r.wall_s * 1e3)
                    cpu[on].append(r.cpu_s * 1e3)
        set_shim(True)
        load_after = loadavg()

        probe: list[float] = []
        if args.probe_runs > 0:
            log(f"in-process: site.addpackage() of {PTH}, {args.probe_runs} fresh `python -S` processes")
            for j in range(args.probe_runs + 1):
                info = json.loads(run([py, "-S", "-c", _ADDPACKAGE_PROBE, sp, PTH], env=env).stdout)
                if not info["finder"] or info["privpkg_modules"]:
                    raise SystemExit(f"addpackage probe: {info}")
                if j:
                    probe.append(info["us"])
    finally:
        restore()
        signal.signal(signal.SIGTERM, old_term)
        if args.keep:
            log(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    # ----------------------------------------------------------------------- report
    def st(on: bool) -> dict[str, Any]:
        s = samples[on]
        return {"n": len(s), "median_ms": statistics.median(s), "p90_ms": pct(s, 90), "min_ms": min(s),
                "mean_ms": statistics.fmean(s), "cpu_median_ms": statistics.median(cpu[on])}

    with_, without = st(True), st(False)
    diff = with_["median_ms"] - without["median_ms"]
    ci = bootstrap_diff_ci(samples[False], samples[True], seed=args.seed + 1)
    paired = statistics.median(a - b for a, b in zip(samples[True], samples[False]))
    cpu_diff = with_["cpu_median_ms"] - without["cpu_median_ms"]
    met = diff <= TARGET_MS
    resolved = ci[1] <= TARGET_MS or ci[0] > TARGET_MS
    no_imports = not privpkg_imported and not extra_modules

    print()
    print("### `python -c pass` with and without privpkg's pip shim (.pth)")
    print()
    print(f"privpkg {frozen.get('privpkg')}" + (f" ({rev})" if rev else "") + f", pip {frozen.get('pip')}, "
          f"Python {platform.python_version()}; {platform.machine()} x{os.cpu_count()}; {args.runs} runs per variant "
          f"after {args.warmup} warm-ups, interleaved in shuffled pairs. Wall: as the caller waits; CPU: the child's "
          f"user+sys. Other .pth files in the venv (both variants): {', '.join(other_pth) or 'none'}. "
          f"Load average (1/5/15 min) before {load_before}, after {load_after}.")
    print()
    print("| variant | median | p90 | min | mean | CPU median |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, s in (("with shim (`privpkg_pip_shim.pth`)", with_), ("without shim (.pth renamed away)", without)):
        print(f"| {label} | {s['median_ms']:.2f} ms | {s['p90_ms']:.2f} ms | {s['min_ms']:.2f} ms | "
              f"{s['mean_ms']:.2f} ms | {s['cpu_median_ms']:.2f} ms |")
    print(f"| **difference** | **{diff:+.2f} ms** (95% CI {ci[0]:+.2f} … {ci[1]:+.2f}) | "
          f"{with_['p90_ms'] - without['p90_ms']:+.2f} ms | {with_['min_ms'] - without['min_ms']:+.2f} ms | "
          f"{with_['mean_ms'] - without['mean_ms']:+.2f} ms | {cpu_diff:+.2f} ms |")
    print()
    if probe:
        print(f"In-process cost of the shim at start-up: `site.addpackage()` of its .pth (read the file, exec the "
              f"one line, put the finder on sys.meta_path): median {statistics.median(probe):.0f} µs, "
              f"p90 {pct(probe, 90):.0f} µs ({args.probe_runs} fresh `python -S` processes). Median paired "
              f"difference of the whole-process timings: {paired:+.2f} ms.")
        print()
    print(f"`-X importtime -c pass` with the shim: {len(imported)} modules, privpkg modules: "
          f"{', '.join(privpkg_imported) or 'none'}; modules present at start-up only with the shim: "
          f"{', '.join(extra_modules) or 'none'}" + (f"; only without it: {', '.join(missing_modules)}" if missing_modules else "")
          + ".")
    print()
    print(f"Target: the shim adds at most {TARGET_MS:g} ms to `python -c pass` (median): "
          f"{'met' if met else '**MISSED**'} ({diff:+.2f} ms)"
          + ("" if resolved else f", not resolved at this noise level (95% CI {ci[0]:+.2f} … {ci[1]:+.2f} ms)")
          + f"; no privpkg import at start-up: {'yes' if no_imports else '**NO**'}.")
    note = busy_note(load_before, load_after)
    if note:
        print()
        print(note)

    result = {
        "benchmark": "startup",
        "when": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "source_revision": rev,
        "versions": frozen,
        "command": ["VENV/bin/python", "-c", "pass"],
        "pth_line": pth_text,
        "other_pth": other_pth,
        "runs": args.runs,
        "warmup": args.warmup,
        "target_ms": TARGET_MS,
        "met": met,
        "resolved": resolved,
        "no_privpkg_import_at_startup": no_imports,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "with_shim": with_,
        "without_shim": without,
        "diff_median_ms": diff,
        "diff_median_ci95_ms": ci,
        "median_paired_diff_ms": paired,
        "cpu_diff_median_ms": cpu_diff,
        "addpackage_us": {"median": statistics.median(probe), "p90": pct(probe, 90), "n": len(probe)} if probe else None,
        "importtime_modules": imported,
        "privpkg_modules_imported": privpkg_imported,
        "modules_only_with_shim": extra_modules,
        "samples_ms": {"with_shim": [round(x, 3) for x in samples[True]], "without_shim": [round(x, 3) for x in samples[False]]},
    }
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
