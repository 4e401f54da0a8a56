#!/usr/bin/env python
"""Benchmark: pip installing private wheels through the shim versus by file path.

Requirement: "Installing 20 private wheels through the shim from a local workspace, against the
same 20 wheels installed by file path: target a ratio of at most 1.05."

    python bench/shim_install.py                  # 20 wheels, 1 warm-up + 7 interleaved rounds
    python bench/shim_install.py --runs 15 --wheels 20

It builds a privpkg wheel from this checkout and two throwaway venvs with uv: ``privpkg``
(pip 26.3 + that wheel, non-editable, so ``privpkg_pip_shim.pth`` is installed) and ``bare``
(pip 26.3 only). It makes N small wheels with ``privpkg.testing.make_wheel`` and publishes
them with ``privpkg wheel add`` into the ``default`` (local) workspace of a throwaway
``PRIVPKG_HOME``. ``privpkg resolve -r`` then gives the file URLs of the stored files, so both
requirement files name the very same files:

    reqs_shim.txt   NAME @ privpkg://default/wheels/FILE          (signed by the shim inside pip)
    reqs_file.txt   NAME @ file:///.../workspaces/default/wheels/FILE

Timed, interleaved in a shuffled order each round, a fresh --target dir for every run:

    shim            privpkg venv: pip install --no-cache-dir --no-deps --no-index --target T -r reqs_shim.txt
    file            privpkg venv, same command with -r reqs_file.txt (the target's baseline)
    file, no privpkg  bare venv, -r reqs_file.txt: what the same install costs where privpkg
                    is not installed at all (the shim's fixed cost at PipSession creation is
                    then absent too)

Every run is checked (exit 0, N dist-infos in T, direct_url.json records privpkg:// or file://).
Environment: os.environ without PIP_* variables and with PIP_CONFIG_FILE=os.devnull. Afterwards an
attribution pass runs the same pip commands in-process with timers around the shim's two hooks
(``_azure_prefixes`` at session creation, ``_resolve`` per wheel), to split the difference into
privpkg's own work and pip's download path (pip uses a ``file:`` wheel in place, but downloads a
``privpkg:`` one through its session into a temp dir).

Prints a Markdown table and writes ``bench/results/shim_install.json``. Stdlib + privpkg only.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    RESULTS_DIR,
    bootstrap_ratio_ci,
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

from privpkg.testing import make_wheel

RESULTS = RESULTS_DIR / "shim_install.json"
TARGET_RATIO = 1.05
PIP_SPEC = "pip==26.3"

# Runs pip in-process exactly as `python -m pip ...`, with timers around the shim's hooks.
_ATTR_PROBE = r"""
import atexit, json, runpy, sys, time
T = time.perf_counter_ns
out = sys.argv[1]
sys.argv = ["pip"] + sys.argv[2:]
acc = {"prefixes_ns": 0, "prefixes_calls": 0, "resolve_ns": [], "shim_loaded": False}
t_start = T()
try:
    import privpkg.pip_shim.adapter as A
except ImportError:
    A = None
if A is not None:
    acc["shim_loaded"] = True
    orig_resolve, orig_prefixes = A._resolve, A._azure_prefixes
    def _resolve(url):
        t = T()
        try:
            return orig_resolve(url)
        finally:
            acc["resolve_ns"].append(T() - t)
    def _azure_prefixes():
        t = T()
        try:
            return orig_prefixes()
        finally:
            acc["prefixes_ns"] += T() - t
            acc["prefixes_calls"] += 1
    A._resolve, A._azure_prefixes = _resolve, _azure_prefixes
import pip._internal.operations.prepare as P  # the shim's finder patches the session module on the way
acc["get_http_url_ns"], acc["get_file_url_ns"] = [], []
for fn in ("get_http_url", "get_file_url"):
    def wrap(orig, key):
        def inner(*a, **kw):
            t = T()
            try:
                return orig(*a, **kw)
            finally:
                acc[key].append(T() - t)
        return inner
    setattr(P, fn, wrap(getattr(P, fn), fn + "_ns"))
def dump():
    acc["total_ns"] = T() - t_start
    with open(out, "w") as fh:
        json.dump(acc, fh)
atexit.register(dump)
runpy.run_module("pip", run_name="__main__", alter_sys=True)
"""


class Variant:
    def __init__(self, key: str, label: str, venv: Path, reqs: Path, url_prefix: str) -> None:
        self.key, self.label, self.venv, self.reqs, self.url_prefix = key, label, venv, reqs, url_prefix
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def cmd(self, target: Path) -> list[Any]:
        return [venv_bin(self.venv, "python"), "-m", "pip", "install", "--no-cache-dir", "--no-deps", "--no-index",
                "--target", target, "-r", self.reqs]


def check_target(target: Path, n: int, url_prefix: str, what: str) -> None:
    infos = sorted(target.glob("*.dist-info"))
    if len(infos) != n:
        raise SystemExit(f"{what}: expected {n} dist-infos in {target}, found {len(infos)}")
    du = json.loads((infos[0] / "direct_url.json").read_text())
    if not du.get("url", "").startswith(url_prefix):
        raise SystemExit(f"{what}: direct_url.json records {du.get('url')!r}, expected {url_prefix}...")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheels", type=int, default=20, help="private wheels per install (default 20)")
    ap.add_argument("--runs", type=int, default=7, help="timed rounds (default 7)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    ap.add_argument("--attribution-runs", type=int, default=5, help="in-process attribution runs per variant (0: skip)")
    ap.add_argument("--workdir", type=Path, default=None, help="where to build the venvs (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the venvs and workspace afterwards")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=RESULTS, help=f"result file (default {RESULTS})")
    args = ap.parse_args(argv)

    rev = source_revision()
    env = clean_env()
    work = Path(tempfile.mkdtemp(prefix="privpkg-bench-shim-", dir=args.workdir))
    try:
        home = work / "home"
        home.mkdir()
        env["PRIVPKG_HOME"] = str(home)
        t0 = time.monotonic()
        log("building the privpkg wheel from this checkout")
        wheel = build_privpkg_wheel(work / "dist", env)
        v_priv, v_bare = work / "venv-privpkg", work / "venv-bare"
        log(f"building {v_priv.name}: {PIP_SPEC} + {wheel.name}")
        make_venv(v_priv, [PIP_SPEC, wheel], env)
        log(f"building {v_bare.name}: {PIP_SPEC}")
        make_venv(v_bare, [PIP_SPEC], env)
        frozen = freeze(v_priv, env)
        sp = site_packages(v_priv, env)
        if not (sp / "privpkg_pip_shim.pth").is_file():
            raise SystemExit(f"privpkg_pip_shim.pth is not in {sp}")
        if (site_packages(v_bare, env) / "privpkg_pip_shim.pth").exists():
            raise SystemExit("the shim leaked into the bare venv")
        if frozen.get("pip") != PIP_SPEC.split("==")[1] or freeze(v_bare, env).get("pip") != PIP_SPEC.split("==")[1]:
            raise SystemExit(f"pip is not {PIP_SPEC} in both venvs")

        # N wheels, published the way a user does it.
        dist = work / "dist-wheels"
        names, urls = [], []
        privpkg = venv_bin(v_priv, "privpkg")
        log(f"publishing {args.wheels} wheels with `privpkg wheel add` into the default workspace")
        for i in range(args.wheels):
            name = f"bench-pkg-{i:02d}"
            whl = make_wheel(dist, name, "1.0")
            url = run([privpkg, "wheel", "add", whl], env=env, cwd=work).stdout.strip().splitlines()[-1]
            if url != f"privpkg://default/wheels/{whl.name}":
                raise SystemExit(f"wheel add printed {url!r}")
            names.append(name)
            urls.append(url)
        reqs_shim = work / "reqs_shim.txt"
        reqs_shim.write_text("".join(f"{n} @ {u}\n" for n, u in zip(names, urls)))
        signed = work / "signed.txt"
        run([privpkg, "resolve", "-r", reqs_shim, "-o", signed], env=env, cwd=work)
        file_lines = [ln for ln in signed.read_text().splitlines() if ln and not ln.startswith("#")]
        stored = home / "workspaces" / "default" / "wheels"
        for ln, n in zip(file_lines, names):
            name, _, url = ln.partition(" @ ")
            if name != n or not url.startswith(stored.resolve().as_uri() + "/"):
                raise SystemExit(f"unexpected resolved line {ln!r}")
        if len(file_lines) != args.wheels:
            raise SystemExit(f"privpkg resolve wrote {len(file_lines)} lines")
        reqs_file = work / "reqs_file.txt"
        reqs_file.write_text("".join(ln + "\n" for ln in file_lines))
        wheel_bytes = sum(p.stat().st_size for p in stored.glob("*.whl"))
        setup_s = time.monotonic() - t0

        variants = [
            Variant("shim", "shim: `NAME @ privpkg://default/wheels/F`", v_priv, reqs_shim, "privpkg://"),
            Variant("file", "file path: `NAME @ file:///…/F` (same venv)", v_priv, reqs_file, "file://"),
            Variant("file_bare", "file path, venv without privpkg", v_bare, reqs_file, "file://"),
        ]
        rng = random.Random(args.seed)
        load_before = loadavg()
        log(f"timing: {args.warmup} warm-up + {args.runs} rounds x {len(variants)} variants, interleaved")
        order = list(variants)
        k = 0
        for i in range(args.warmup + args.runs):
            rng.shuffle(order)
            for v in order:
                k += 1
                target = work / f"t{k}"
                r = timed(v.cmd(target), env, cwd=work)
                if r.returncode != 0:
                    raise SystemExit(f"{v.key}: pip failed (exit {r.returncode}):\n{r.stdout}{r.stderr}")
                if "privpkg" in r.stderr:  # e.g. "privpkg: pip shim not active: ..."
                    raise SystemExit(f"{v.key}: unexpected privpkg message:\n{r.stderr}")
                check_target(target, args.wheels, v.url_prefix, v.key)
                shutil.rmtree(target)
                if i >= args.warmup:
                    v.wall.append(r.wall_s * 1e3)
                    v.cpu.append(r.cpu_s * 1e3)
        load_after = loadavg()

        attr: dict[str, Any] = {}
        if args.attribution_runs > 0:
            log(f"attribution: pip in-process with timers around the shim's hooks, {args.attribution_runs} runs each")
            probe = work / "attr_probe.py"
            probe.write_text(_ATTR_PROBE)
            for v in variants[:2]:
                rows = []
                for j in range(args.attribution_runs + 1):
                    target, out = work / f"a-{v.key}-{j}", work / f"a-{v.key}-{j}.json"
                    cmd = v.cmd(target)
                    run([cmd[0], probe, out, *cmd[3:]], env=env, cwd=work)
                    check_target(target, args.wheels, v.url_prefix, "attribution " + v.key)
                    shutil.rmtree(target)
                    if j:
                        rows.append(json.loads(out.read_text()))
                if not all(r["shim_loaded"] and r["prefixes_calls"] >= 1 for r in rows):
                    raise SystemExit(f"attribution {v.key}: the shim did not run: {rows[0]}")
                attr[v.key] = {
                    "total_ms": statistics.median(r["total_ns"] / 1e6 for r in rows),
                    "prefixes_ms": statistics.median(r["prefixes_ns"] / 1e6 for r in rows),
                    "prefixes_calls": rows[0]["prefixes_calls"],
                    "resolve_calls": len(rows[0]["resolve_ns"]),
                    "resolve_total_ms": statistics.median(sum(r["resolve_ns"]) / 1e6 for r in rows),
                    # pip's unpack_url: get_http_url downloads (privpkg: through the session, the
                    # shim's _resolve included), get_file_url uses a local file in place.
                    "get_http_url_calls": len(rows[0]["get_http_url_ns"]),
                    "get_http_url_total_ms": statistics.median(sum(r["get_http_url_ns"]) / 1e6 for r in rows),
                    "get_file_url_calls": len(rows[0]["get_file_url_ns"]),
                    "get_file_url_total_ms": statistics.median(sum(r["get_file_url_ns"]) / 1e6 for r in rows),
                    "resolve_first_ms": statistics.median(r["resolve_ns"][0] / 1e6 for r in rows) if rows[0]["resolve_ns"] else 0.0,
                    "resolve_rest_each_ms": statistics.median(
                        statistics.median(x / 1e6 for x in r["resolve_ns"][1:]) for r in rows
                    ) if len(rows[0]["resolve_ns"]) > 1 else 0.0,
                }
    finally:
        if args.keep:
            log(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    # ----------------------------------------------------------------------- report
    by = {v.key: v for v in variants}
    stats: dict[str, Any] = {}
    for v in variants:
        stats[v.key] = {
            "label": v.label,
            "n": len(v.wall),
            "median_ms": statistics.median(v.wall),
            "p90_ms": pct(v.wall, 90),
            "min_ms": min(v.wall),
            "max_ms": max(v.wall),
            "cpu_median_ms": statistics.median(v.cpu),
        }
    n = args.wheels
    shim = stats["shim"]

    def compare(base_key: str) -> dict[str, Any]:
        b = stats[base_key]
        ratio = shim["median_ms"] / b["median_ms"]
        paired = [s / f for s, f in zip(by["shim"].wall, by[base_key].wall)]
        return {
            "ratio_of_medians": ratio,
            "ratio_ci95": bootstrap_ratio_ci(by[base_key].wall, by["shim"].wall, seed=args.seed + 1),
            "median_paired_ratio": statistics.median(paired),
            "cpu_ratio": shim["cpu_median_ms"] / b["cpu_median_ms"],
            "diff_ms": shim["median_ms"] - b["median_ms"],
            "per_wheel_ms": (shim["median_ms"] - b["median_ms"]) / n,
            "cpu_per_wheel_ms": (shim["cpu_median_ms"] - b["cpu_median_ms"]) / n,
        }

    vs_file, vs_bare = compare("file"), compare("file_bare")
    met = vs_file["ratio_of_medians"] <= TARGET_RATIO
    met_bare = vs_bare["ratio_of_medians"] <= TARGET_RATIO

    print()
    print(f"### pip install of {n} private wheels: shim vs file path")
    print()
    print(f"pip {frozen['pip']}, privpkg {frozen['privpkg']}" + (f" ({rev})" if rev else "")
          + f", Python {platform.python_version()}; {platform.machine()} x{os.cpu_count()}; {args.runs} rounds after "
          f"{args.warmup} warm-up, variants interleaved in shuffled order; {n} wheels, {wheel_bytes / n / 1024:.1f} KiB each; "
          f"`pip install --no-cache-dir --no-deps --no-index --target T -r REQS`, fresh T per run. Wall: as the caller "
          f"waits; CPU: pip's user+sys. Load average (1/5/15 min) before {load_before}, after {load_after}.")
    print()
    print("| variant | median | p90 | min | CPU median | ratio shim / this (95% CI) | paired ratio | shim overhead per wheel |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for key, cmp_ in (("shim", None), ("file", vs_file), ("file_bare", vs_bare)):
        st = stats[key]
        extra = "— | — | —" if cmp_ is None else (
            f"{cmp_['ratio_of_medians']:.3f} ({cmp_['ratio_ci95'][0]:.3f} … {cmp_['ratio_ci95'][1]:.3f}) | "
            f"{cmp_['median_paired_ratio']:.3f} | {cmp_['per_wheel_ms']:+.1f} ms ({cmp_['cpu_per_wheel_ms']:+.1f} ms CPU)")
        print(f"| {st['label']} | {st['median_ms']:.0f} ms | {st['p90_ms']:.0f} ms | {st['min_ms']:.0f} ms | "
              f"{st['cpu_median_ms']:.0f} ms | {extra} |")
    print()
    lo, hi = vs_file["ratio_ci95"]
    resolved = hi <= TARGET_RATIO or lo > TARGET_RATIO
    print(f"Target: shim / file path ≤ {TARGET_RATIO} (same venv): {'met' if met else '**MISSED**'} "
          f"({vs_file['ratio_of_medians']:.3f}; {vs_file['per_wheel_ms']:+.1f} ms per wheel)"
          + ("" if resolved else f"; not resolved at this noise level (95% CI {lo:.3f} … {hi:.3f} spans the target)")
          + f". Against pip in a venv without privpkg: {vs_bare['ratio_of_medians']:.3f} "
          f"({'met' if met_bare else 'missed'}).")
    if attr:
        a_s, a_f = attr["shim"], attr["file"]
        diff = vs_file["diff_ms"]
        own = a_s["resolve_total_ms"] + a_s["prefixes_ms"] - a_f["prefixes_ms"]
        fetch_s = a_s["get_http_url_total_ms"] + a_s["get_file_url_total_ms"]
        fetch_f = a_f["get_http_url_total_ms"] + a_f["get_file_url_total_ms"]
        pip_dl = fetch_s - a_s["resolve_total_ms"] - fetch_f
        print()
        print(f"Where the difference goes (pip run in-process with timers around the shim's hooks; median of "
              f"{args.attribution_runs} runs each, privpkg venv):")
        print()
        print("| step | shim run | file-path run |")
        print("|---|---:|---:|")
        print(f"| whole pip run, in-process (noisy: {args.attribution_runs} runs) | {a_s['total_ms']:.0f} ms | {a_f['total_ms']:.0f} ms |")
        print(f"| pip fetching the {n} wheels: `get_http_url` ({a_s['get_http_url_calls']}× / {a_f['get_http_url_calls']}×) + "
              f"`get_file_url` ({a_s['get_file_url_calls']}× / {a_f['get_file_url_calls']}×) | {fetch_s:.1f} ms | {fetch_f:.1f} ms |")
        print(f"| `_azure_prefixes()` at PipSession creation ({a_s['prefixes_calls']}×; imports privpkg.resolve, "
              f"reads workspace definitions) | {a_s['prefixes_ms']:.1f} ms | {a_f['prefixes_ms']:.1f} ms |")
        print(f"| `_resolve(url)`, all {a_s['resolve_calls']} wheels | {a_s['resolve_total_ms']:.1f} ms | — |")
        print(f"| … first call (lazy imports) / each later call | {a_s['resolve_first_ms']:.1f} ms / "
              f"{a_s['resolve_rest_each_ms']:.2f} ms | — |")
        print()
        print(f"Of the {diff:+.0f} ms median difference (timed runs), privpkg's own code accounts for about "
              f"{own:.0f} ms ({own / n:.1f} ms per wheel). pip's download path for a non-file URL costs "
              f"{pip_dl:.0f} ms more than its file path ({pip_dl / n:.1f} ms per wheel, in-process, privpkg's "
              f"_resolve excluded): pip uses a `file:` wheel in place, but sends a `privpkg:` one through its "
              f"requests session (proxy/env merging, the file adapter) into a temp dir and hashes it there. "
              f"Unattributed: {diff - own - pip_dl:+.0f} ms (noise, GC, logging). The same-venv baseline already "
              f"includes `_azure_prefixes()` ({a_f['prefixes_ms']:.0f} ms), which a venv without privpkg does not pay.")
        attr["privpkg_own_ms"] = own
        attr["pip_download_path_ms"] = pip_dl
        attr["unattributed_ms"] = diff - own - pip_dl
    note = busy_note(load_before, load_after)
    if note:
        print()
        print(note)

    result = {
        "benchmark": "shim_install",
        "when": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "source_revision": rev,
        "versions": frozen,
        "command": ["VENV/bin/python", "-m", "pip", "install", "--no-cache-dir", "--no-deps", "--no-index",
                    "--target", "T", "-r", "REQS"],
        "wheels": n,
        "wheel_bytes_each": wheel_bytes / n,
        "runs": args.runs,
        "warmup": args.warmup,
        "target_ratio": TARGET_RATIO,
        "met": met,
        "met_vs_venv_without_privpkg": met_bare,
        "resolved": resolved,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "setup_seconds": round(setup_s, 1),
        "variants": stats,
        "shim_vs_file": vs_file,
        "shim_vs_file_without_privpkg": vs_bare,
        "attribution": attr,
        "samples_ms": {v.key: [round(x, 2) for x in v.wall] for v in variants},
        "cpu_samples_ms": {v.key: [round(x, 2) for x in v.cpu] for v in variants},
    }
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
