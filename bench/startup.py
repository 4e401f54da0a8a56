#!/usr/bin/env python
"""Benchmark: Python start-up with and without privpkg's pip shim installed.

Target: the shim's ``.pth`` adds at most 2 ms (median) to ``python -c pass``, and no privpkg
module is imported at start-up.

    python bench/startup.py --runs 300          # the README's numbers
    python bench/startup.py --runs 20 --rounds 2                # a smoke test

A throwaway venv (pip 26.3 + a non-editable wheel of this checkout, so
``site-packages/privpkg_pip_shim.pth`` is there). hyperfine times ``VENV/bin/python -c pass``
in alternating rounds (see _common.hyperfine):

    with shim      hyperfine's --prepare copies the .pth into place before every run
    without shim   its --prepare removes it before every run (the same venv otherwise)

Checked first: with the .pth its finder is on ``sys.meta_path`` and without it is not; the set
of modules at start-up is the same either way; ``-X importtime -c pass`` names no privpkg module.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    Venv,
    busy_note,
    clean_env,
    compare,
    hyperfine,
    log,
    privpkg_venv,
    privpkg_wheel,
    run,
    verdict,
    write_result,
)

TARGET_MS = 2.0
PTH = "privpkg_pip_shim.pth"
FINDER = "PrivpkgPipShimFinder"
_STATE = "import sys, json; print(json.dumps([[type(f).__name__ for f in sys.meta_path], sorted(sys.modules)]))"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=200, help="timed runs per variant (default 200)")
    ap.add_argument("--rounds", type=int, default=10, help="alternating hyperfine rounds the runs are split over (default 10)")
    ap.add_argument("--warmup", type=int, default=3, help="hyperfine warm-up runs per variant and round (default 3)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="privpkg-bench-startup-") as tmp:
        work = Path(tmp)
        env = clean_env(work)  # HOME, XDG dirs and PRIVPKG_HOME in work
        log("building the privpkg wheel and a venv with pip 26.3 and it")
        venv = work / "venv"
        frozen = privpkg_venv(venv, ["pip==26.3", privpkg_wheel(work / "dist", env)], env)
        py, sp = Venv(venv).python, Venv(venv).site_packages(env)
        pth, saved = sp / PTH, work / PTH
        if not pth.is_file():
            raise SystemExit(f"{pth} is missing: the wheel did not install the shim")
        shutil.copy(pth, saved)
        other_pth = sorted(p.name for p in sp.glob("*.pth") if p.name != PTH)

        (with_finders, with_modules) = json.loads(run([py, "-c", _STATE], env=env).stdout)
        importtime = run([py, "-X", "importtime", "-c", "pass"], env=env).stderr
        pth.unlink()
        (without_finders, without_modules) = json.loads(run([py, "-c", _STATE], env=env).stdout)
        if FINDER not in with_finders or FINDER in without_finders:
            raise SystemExit(f"unexpected sys.meta_path: with {with_finders}, without {without_finders}")
        only_with = sorted(set(with_modules) - set(without_modules))
        imported = [ln.rsplit("|", 1)[-1].strip() for ln in importtime.splitlines() if ln.startswith("import time:")][1:]
        privpkg_imported = [m for m in imported if "privpkg" in m]

        load = os.getloadavg()[0]
        log(f"timing `python -c pass` with and without the shim, {args.runs} runs each, {args.rounds} hyperfine rounds")
        res = hyperfine({"with_shim": [py, "-c", "pass"], "without_shim": [py, "-c", "pass"]}, env,
                        prepare={"with_shim": ["cp", saved, pth], "without_shim": ["rm", "-f", pth]},
                        runs=args.runs, rounds=args.rounds, warmup=args.warmup)

    w, wo = res["with_shim"], res["without_shim"]
    diff = compare(wo["ms"], w["ms"])
    per_round = sorted(a - b for a, b in zip(w["round_medians"], wo["round_medians"]))
    met, resolved, text = verdict(*diff, TARGET_MS)
    no_imports = not privpkg_imported and not only_with
    print("\n### `python -c pass` with and without privpkg's pip shim (.pth)\n")
    print(f"privpkg {frozen['privpkg']}, pip {frozen['pip']}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
          f"hyperfine, {args.runs} runs per variant in {args.rounds} alternating rounds ({args.warmup} warm-ups per round). "
          f"Other .pth files in the venv (both variants): {', '.join(other_pth) or 'none'}.\n")
    print("| variant | median | CPU mean |\n|---|---:|---:|")
    print(f"| with shim | {w['median_ms']:.2f} ms | {w['cpu_mean_ms']:.2f} ms |")
    print(f"| without shim | {wo['median_ms']:.2f} ms | {wo['cpu_mean_ms']:.2f} ms |")
    print(f"| **difference** | **{diff[0]:+.2f} ms** (95% CI {diff[1]:+.2f} … {diff[2]:+.2f}; per round median "
          f"{per_round[len(per_round) // 2]:+.2f}) | {w['cpu_mean_ms'] - wo['cpu_mean_ms']:+.2f} ms |")
    print(f"\n`-X importtime -c pass` with the shim: {len(imported)} modules, privpkg modules: "
          f"{', '.join(privpkg_imported) or 'none'}; modules at start-up only with the shim: {', '.join(only_with) or 'none'}.")
    print(f"\nTarget: the shim adds at most {TARGET_MS:g} ms: {text} ({diff[0]:+.2f} ms); "
          f"no privpkg import at start-up: {'yes' if no_imports else '**NO**'}.")
    print(busy_note(load))
    write_result("startup", {
        "versions": frozen, "command": ["VENV/bin/python", "-c", "pass"], "target_ms": TARGET_MS, "met": met,
        "resolved": resolved, "no_privpkg_import_at_startup": no_imports, "runs": args.runs, "rounds": args.rounds,
        "warmup": args.warmup, "diff_median_ms": diff, "diff_per_round_ms": per_round, "other_pth": other_pth,
        "privpkg_modules_imported": privpkg_imported, "modules_only_with_shim": only_with, "variants": res})
    return 0


if __name__ == "__main__":
    sys.exit(main())
