#!/usr/bin/env python
"""Benchmark: pip installing private wheels through the shim versus by file path.

Target: ``pip install -r`` of 20 private wheels through the shim from a local workspace takes
at most 1.05 times as long (ratio of the medians) as the same 20 wheels by file path.

    python bench/shim_install.py --runs 31      # the README's numbers
    python bench/shim_install.py --runs 2 --rounds 2 --warmup 0 --wheels 3      # a smoke test

Two throwaway venvs: ``privpkg`` (pip 26.3 + a non-editable wheel of this checkout, so the
shim's .pth is installed) and ``bare`` (pip 26.3 only). N small wheels from the shared wheel
maker are published with ``privpkg wheel add`` into the ``default`` (local) workspace of a
throwaway PRIVPKG_HOME, and ``privpkg resolve -r`` gives the file URLs of the very same stored
files:

    reqs_shim.txt   NAME @ privpkg://default/wheels/FILE          (signed by the shim inside pip)
    reqs_file.txt   NAME @ file:///…/workspaces/default/wheels/FILE

hyperfine times ``python -m pip install --no-cache-dir --no-deps --no-index --target T -r REQS``
in alternating rounds (see _common.hyperfine), its --prepare emptying T before every run:

    shim              privpkg venv, reqs_shim.txt
    file              privpkg venv, reqs_file.txt: the target's baseline
    file, no privpkg  bare venv, reqs_file.txt: the same install where privpkg is not installed

Each variant is run and checked once first (N dist-infos, direct_url.json records privpkg:// or
file://, no privpkg message) and its last timed install is checked again. pip runs with no
PIP_* variable and no config file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    Venv,
    busy_note,
    clean_env,
    compare,
    hyperfine,
    log,
    make_wheel,
    privpkg_venv,
    privpkg_wheel,
    run,
    verdict,
    write_result,
)

from privpkg import envvars, refs

TARGET_RATIO = 1.05
PIP_SPEC = "pip==26.3"


def check_target(target: Path, n: int, url_prefix: str, what: str) -> None:
    infos = sorted(target.glob("*.dist-info"))
    if len(infos) != n:
        raise SystemExit(f"{what}: expected {n} dist-infos in {target}, found {len(infos)}")
    url = json.loads((infos[0] / "direct_url.json").read_text()).get("url", "")
    if not url.startswith(url_prefix):
        raise SystemExit(f"{what}: direct_url.json records {url!r}, expected {url_prefix}…")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheels", type=int, default=20, help="private wheels per install (default 20)")
    ap.add_argument("--runs", type=int, default=10, help="timed runs per variant (default 10)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating hyperfine rounds the runs are split over (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="hyperfine warm-up runs per variant and round (default 1)")
    args = ap.parse_args(argv)
    n = args.wheels

    with tempfile.TemporaryDirectory(prefix="privpkg-bench-shim-") as tmp:
        work = Path(tmp)
        env = clean_env(work)  # HOME, XDG dirs and PRIVPKG_HOME in work
        home = Path(env[envvars.HOME])
        log(f"building the privpkg wheel and two venvs ({PIP_SPEC} with and without it)")
        v_priv, v_bare = work / "venv-privpkg", work / "venv-bare"
        frozen = privpkg_venv(v_priv, [PIP_SPEC, privpkg_wheel(work / "dist", env)], env)
        privpkg_venv(v_bare, [PIP_SPEC], env)
        if not (Venv(v_priv).site_packages(env) / "privpkg_pip_shim.pth").is_file():
            raise SystemExit("privpkg_pip_shim.pth is not installed in the privpkg venv")
        if (Venv(v_bare).site_packages(env) / "privpkg_pip_shim.pth").exists():
            raise SystemExit("the shim leaked into the bare venv")

        log(f"publishing {n} wheels with `privpkg wheel add` into the default workspace")
        privpkg = Venv(v_priv).bin / "privpkg"
        names = [f"bench-pkg-{i:02d}" for i in range(n)]
        shim_lines = []
        for name in names:
            whl = make_wheel(work / "wheels", name, "1.0")
            url = run([privpkg, "wheel", "add", whl], env=env, cwd=work).stdout.strip().splitlines()[-1]
            if url != refs.url_for("default", refs.WHEELS, whl.name):
                raise SystemExit(f"wheel add printed {url!r}")
            shim_lines.append(f"{name} @ {url}\n")
        reqs_shim, reqs_file = work / "reqs_shim.txt", work / "reqs_file.txt"
        reqs_shim.write_text("".join(shim_lines))
        run([privpkg, "resolve", "-r", reqs_shim, "-o", reqs_file], env=env, cwd=work)
        wheels_dir = home / "workspaces" / "default" / refs.prefix(refs.WHEELS)  # the default workspace's wheel keys
        stored = wheels_dir.resolve().as_uri() + "/"
        file_lines = [ln for ln in reqs_file.read_text().splitlines() if ln and not ln.startswith("#")]
        if [ln.partition(" @ ")[0] for ln in file_lines] != names or not all(stored in ln for ln in file_lines):
            raise SystemExit(f"privpkg resolve wrote unexpected lines: {file_lines[:2]}")
        wheel_kib = sum(p.stat().st_size for p in wheels_dir.glob("*.whl")) / n / 1024

        # name: (label, venv, requirements, what direct_url.json must record)
        variants: dict[str, tuple[str, Path, Path, str]] = {
            "shim": ("shim: `NAME @ privpkg://default/wheels/F`", v_priv, reqs_shim, "privpkg://"),
            "file": ("file path: `NAME @ file:///…/F` (same venv)", v_priv, reqs_file, "file://"),
            "file_bare": ("file path, venv without privpkg", v_bare, reqs_file, "file://"),
        }

        def pip(key: str) -> list[Any]:
            return [Venv(variants[key][1]).python, "-m", "pip", "install", "--no-cache-dir", "--no-deps", "--no-index",
                    "--target", work / f"t-{key}", "-r", variants[key][2]]

        for key, (_, _, _, prefix) in variants.items():
            r = run(pip(key), env=env, cwd=work)
            if "privpkg" in r.stderr:  # e.g. "privpkg: pip shim not active: ..."
                raise SystemExit(f"{key}: unexpected privpkg message:\n{r.stderr}")
            check_target(work / f"t-{key}", n, prefix, key)
        load = os.getloadavg()[0]
        log(f"timing {len(variants)} variants x {args.runs} runs with hyperfine in {args.rounds} rounds")
        res = hyperfine({k: pip(k) for k in variants}, env, prepare={k: ["rm", "-rf", work / f"t-{k}"] for k in variants},
                        runs=args.runs, rounds=args.rounds, warmup=args.warmup)
        for key, (_, _, _, prefix) in variants.items():
            check_target(work / f"t-{key}", n, prefix, key + " (last timed run)")

    shim = res["shim"]
    print(f"\n### pip install of {n} private wheels: shim vs file path\n")
    print(f"pip {frozen['pip']}, privpkg {frozen['privpkg']}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
          f"{n} wheels, {wheel_kib:.1f} KiB each; `pip install --no-cache-dir --no-deps --no-index --target T -r REQS`, "
          f"T emptied before every run; hyperfine, {args.runs} runs per variant in {args.rounds} alternating rounds "
          f"({args.warmup} warm-ups per round). Ratio: of the medians, with its 95% bootstrap interval.\n")
    print("| variant | median | CPU mean | ratio shim / this (95% CI) | per round | shim's extra time per wheel |")
    print("|---|---:|---:|---:|---:|---:|")
    for key, (label, *_r) in variants.items():
        r = res[key]
        if key == "shim":
            print(f"| {label} | {r['median_ms']:.0f} ms | {r['cpu_mean_ms']:.0f} ms | — | — | — |")
            continue
        r["ratio"] = compare(r["ms"], shim["ms"], ratio=True)
        rounds = sorted(s / b for s, b in zip(shim["round_medians"], r["round_medians"]))
        r["ratio_per_round_median"] = rounds[len(rounds) // 2]
        print(f"| {label} | {r['median_ms']:.0f} ms | {r['cpu_mean_ms']:.0f} ms | {r['ratio'][0]:.3f} ({r['ratio'][1]:.3f} … "
              f"{r['ratio'][2]:.3f}) | {r['ratio_per_round_median']:.3f} | {(shim['median_ms'] - r['median_ms']) / n:+.1f} ms |")
    ratio, lo, hi = res["file"]["ratio"]
    met, resolved, text = verdict(ratio, lo, hi, TARGET_RATIO)
    print(f"\nTarget: shim / file path ≤ {TARGET_RATIO} (same venv): {text} ({ratio:.3f}). "
          f"Against pip in a venv without privpkg: {res['file_bare']['ratio'][0]:.3f}.")
    print(busy_note(load))
    write_result("shim_install", {
        "versions": frozen, "wheels": n, "wheel_kib_each": wheel_kib, "target_ratio": TARGET_RATIO, "met": met,
        "resolved": resolved, "runs": args.runs, "rounds": args.rounds, "warmup": args.warmup,
        "command": ["VENV/bin/python", "-m", "pip", "install", "--no-cache-dir", "--no-deps", "--no-index", "--target", "T", "-r", "REQS"],
        "variants": res})
    return 0


if __name__ == "__main__":
    sys.exit(main())
