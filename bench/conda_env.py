#!/usr/bin/env python
"""Benchmark: ``conda env create`` whose pip section installs private wheels through privpkg,
versus the same environment from a local folder without auth; and what privpkg's conda plugin
adds to conda's start.

Target: ``conda env create -f environment.yml`` whose ``pip:`` section installs one wheel from
the loopback PAT feed (``--index-url``, PAT from privpkg's store through the plugin's keyring
launcher) and one ``privpkg://`` wheel (local workspace, through the pip shim the plugin puts into
the new env) takes at most 1.05 times as long (ratio of the medians) as the same environment
whose two wheels come from a local folder (``--no-index --find-links``).

    PRIVPKG_TEST_CONDA=/path/to/conda-python python bench/conda_env.py --runs 20   # the README's numbers
    PRIVPKG_TEST_CONDA=/path/to/conda-python python bench/conda_env.py --runs 2 --warmup 0 --start-runs 4   # a smoke test

conda is found as the tests find it (``conda`` on PATH, or ``PRIVPKG_TEST_CONDA``: see
tests/support/conda.py) and is not changed: two throwaway base prefixes are made from it (a venv
of conda's interpreter reaching conda's code, with ``conda-meta/history``), ``privpkg`` with a
wheel of this checkout installed (so its plugin is registered) and ``bare`` without privpkg. The
channel is the tests' local one (python from this machine's interpreter, pip 26.3). One throwaway
HOME, PRIVPKG_HOME, condarc and package cache serve all runs; the package cache is warm after the
first create, as on a user's machine.

Variants, each ``conda env create -f YML -p PREFIX`` with PREFIX removed before every run (not
timed), ``PIP_NO_CACHE_DIR=1`` so every run downloads its wheels:

    privpkg        privpkg base, ``--index-url FEED`` + ``feed-pkg`` and ``ws-pkg @ privpkg://default/wheels/F``
    local          privpkg base, ``--no-index --find-links DIR`` + ``feed-pkg`` and ``ws-pkg``: the baseline
    local, bare    bare base, the same local environment: the plugin's cost where nothing needs it
    feed, workspace  (--breakdown) one private source each, the other wheel from the folder or a file URL

Each variant is run and checked once first (both packages installed; ``ws-pkg``'s
``direct_url.json`` records ``privpkg://``; no secret in conda's output), then timed in shuffled
order every iteration (paired per iteration). Then (``--launcher-runs``) the ``keyring`` call pip
makes in the pip step, ``--mode=creds --output=json get FEED``, through the launcher the plugin
writes (``python -P -m privpkg.conda.keyringcli``) versus the launcher it wrote before
2026-11-22 (``python -P -m keyring``: keyring's CLI), hit and miss, interleaved, and in-process
timers (fresh processes) of each one's steps, and where the pip shim's folder comes from: conda's
python record (now) versus asking the new environment's python (before). Then conda's start with and without privpkg:
``conda --version`` (which in conda 26.7 loads no plugin) and ``conda info`` (which loads every
plugin and collects their hooks), privpkg base versus bare base, interleaved the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from random import Random
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    build_channel,
    busy_note,
    clean_env,
    compare,
    conda_env,
    find_conda,
    find_uv,
    interleaved,
    log,
    make_base,
    make_wheel,
    median_ci,
    privpkg_wheel,
    run,
    uv_cache,
    verdict,
    write_result,
)

from privpkg.testing import start_feed_server, write_config

TARGET_RATIO = 1.05
FEED_PATH = "/org/_packaging/feed/pypi/simple/"


def env_yml(path: Path, pip_lines: list[str]) -> Path:
    path.write_text("name: bench\ndependencies:\n  - python\n  - pip:\n" + "".join(f"    - {ln}\n" for ln in pip_lines))
    return path


def check_env(prefix: Path, workspace_url: str | None, what: str) -> None:
    """Both wheels are installed in ``prefix``; ``ws-pkg`` records ``workspace_url`` (or a file URL)."""
    site = next(prefix.glob("lib/python3*/site-packages"))
    for module in ("feed_pkg.py", "ws_pkg.py"):
        if not (site / module).is_file():
            raise SystemExit(f"{what}: {module} is not installed in {site}")
    if workspace_url is None:
        return
    url = json.loads(next(site.glob("ws_pkg-*.dist-info/direct_url.json")).read_text())["url"]
    if url != workspace_url:
        raise SystemExit(f"{what}: ws-pkg's direct_url.json records {url!r}, expected {workspace_url}")


def timed_creates(variants: dict[str, tuple[list[Any], dict[str, str], Path]], *, runs: int, warmup: int,
                  seed: int = 1) -> dict[str, Any]:
    """Each ``(argv, env, prefix)`` once per iteration in a fresh shuffled order, ``prefix``
    removed first (untimed); like _common.interleaved, which has no per-run preparation. Returns
    per name ``ms``, ``exit_codes``, ``median_ms`` and, for all but the first name, ``paired``."""
    names = list(variants)
    rng = Random(seed)
    out: dict[str, Any] = {k: {"ms": [], "exit_codes": []} for k in names}
    for i in range(warmup + runs):
        order = names[:]
        rng.shuffle(order)
        for name in order:
            argv, env, prefix = variants[name]
            shutil.rmtree(prefix, ignore_errors=True)
            t0 = time.perf_counter_ns()
            res = subprocess.run([str(a) for a in argv], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, check=False)
            wall = (time.perf_counter_ns() - t0) / 1e6
            if res.returncode != 0:
                raise SystemExit(f"{name}: exit {res.returncode} in a timed run")
            if i >= warmup:
                out[name]["ms"].append(wall)
                out[name]["exit_codes"].append(res.returncode)
        if i >= warmup:
            log(f"  {i - warmup + 1}/{runs} iterations")
    for name in names:
        o = out[name]
        o["median_ms"] = statistics.median(o["ms"])
        if name != names[0]:
            o["paired"] = [a - b for a, b in zip(o["ms"], out[names[0]]["ms"])]
    return out


OLD_LAUNCHER = '#!/bin/sh\nexec {python} -P -m keyring "$@"\n'
#: In-process steps, in a fresh process each: keyring's CLI path (import, backend loading and the
#: lookup) and the launcher's (import, the fall-through checks, the lookup).
STEPS_PROBE = """
import sys, time, json
t0 = time.perf_counter()
mode, url = sys.argv[1], sys.argv[2]
if mode == "keyring":
    import keyring.cli
    t1 = time.perf_counter()
    kr = keyring.get_keyring()
    t2 = time.perf_counter()
    hit = kr.get_credential(url, None)
    t3 = time.perf_counter()
    steps = {"import keyring.cli": t1 - t0, "load backends": t2 - t1, "lookup": t3 - t2}
else:
    from privpkg.conda import keyringcli
    t1 = time.perf_counter()
    first = keyringcli.privpkg_answers_first()
    t2 = time.perf_counter()
    hit = keyringcli.lookup("creds", "json", url, None)
    t3 = time.perf_counter()
    assert first
    steps = {"import keyringcli": t1 - t0, "fall-through checks": t2 - t1, "lookup": t3 - t2}
assert hit is not None
print(json.dumps({k: v * 1000 for k, v in steps.items()}))
"""


#: Where the pip shim goes in a conda environment: read from conda's python record (what the
#: pip step does) versus asking the environment's interpreter (what it did before 2026-11-22).
PURELIB_PROBE = """
import sys, time, json
from privpkg import setup_pip
from privpkg.conda import pipstep
prefix = sys.argv[1]
t0 = time.perf_counter()
known = pipstep.env_purelib(prefix)
t1 = time.perf_counter()
asked = setup_pip._purelib(str(pipstep.env_python(prefix)))
t2 = time.perf_counter()
assert known == asked, (known, asked)
print(json.dumps({"conda-meta": (t1 - t0) * 1000, "ask python": (t2 - t1) * 1000}))
"""


def launcher_timing(python: Path, launcher: Path, old_launcher: Path, index: str, env: dict[str, str], runs: int) -> dict[str, Any]:
    """pip's call through the new and the old launcher (hit: the feed URL; miss: a URL no
    connection covers), interleaved; then the in-process steps of each, ``runs // 5`` fresh
    processes each, alternating."""
    call = ["--mode=creds", "--output=json", "get"]
    miss = index.replace("/org/", "/other-org/")
    commands = {
        "keyring CLI (before), hit": ([old_launcher, *call, index], env),
        "launcher (after), hit": ([launcher, *call, index], env),
        "keyring CLI (before), miss": ([old_launcher, *call, miss], env),
        "launcher (after), miss": ([launcher, *call, miss], env),
    }
    for name, (argv, e) in commands.items():
        r = subprocess.run([str(a) for a in argv], env=e, capture_output=True, text=True, check=False)
        if (r.returncode == 0) != name.endswith("hit"):
            raise SystemExit(f"{name}: exit {r.returncode}")
    whole = interleaved(commands, runs=runs, warmup=3)
    steps: dict[str, list[dict[str, float]]] = {"keyring": [], "launcher": []}
    for _ in range(max(3, runs // 5)):
        for mode, samples in steps.items():
            samples.append(json.loads(run([python, "-P", "-c", STEPS_PROBE, mode, index], env=env).stdout))
    return {"whole": whole, "steps": {m: {k: statistics.median(d[k] for d in v) for k in v[0]} for m, v in steps.items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="timed env creates per variant (default 10)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed iterations first (default 1)")
    ap.add_argument("--start-runs", type=int, default=100, help="timed `conda --version` / `conda info` per base (default 100)")
    ap.add_argument("--breakdown", action="store_true", help="also time the feed wheel and the privpkg:// wheel each on its own")
    ap.add_argument("--launcher-runs", type=int, default=100, help="timed keyring calls per launcher variant (default 100; 0: skip)")
    args = ap.parse_args(argv)

    try:
        conda = find_conda()
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    if conda is None:
        raise SystemExit("conda is not installed: put conda on PATH, or name a Python whose `-m conda` works in the "
                         "variable tests/support/conda.py reads (README, Dependencies)")

    with tempfile.TemporaryDirectory(prefix="privpkg-bench-conda-") as tmp:
        work = Path(tmp)
        build = clean_env(work / "build")
        log(f"conda {conda.version} ({conda.found_by}); building the privpkg wheel, two base prefixes and the channel")
        wheel = privpkg_wheel(work / "dist", build)
        bases = {"privpkg": work / "base-privpkg", "bare": work / "base-bare"}
        make_base(conda, bases["privpkg"], [f"privpkg @ {wheel.as_uri()}"], find_uv(), uv_cache(), build)
        make_base(conda, bases["bare"], [], find_uv(), uv_cache(), build)
        channel = build_channel([]).url
        env = conda_env(bases["privpkg"], channel, work / "run") | {"PIP_NO_CACHE_DIR": "1"}
        bare_env = env | {"PATH": env["PATH"].replace(str(bases["privpkg"]), str(bases["bare"]))}
        privpkg = bases["privpkg"] / "bin" / "privpkg"

        log("starting the loopback PAT feed, storing its PAT, publishing the workspace wheel")
        wheels = work / "local-wheels"
        feed_whl, ws_whl = make_wheel(wheels, "feed-pkg", "1.0"), make_wheel(wheels, "ws-pkg", "1.0")
        feed_dir = work / "feed"
        feed_dir.mkdir()
        shutil.copy(feed_whl, feed_dir)
        secret = secrets.token_urlsafe(24)
        feed_env = clean_env(work / "feed-home")
        server = start_feed_server(write_config(work / "feed.json", [{"path": FEED_PATH, "secret": secret, "dir": feed_dir}]),
                                   env=feed_env)
        try:
            index = server.base + FEED_PATH
            run([privpkg, "connection", "set", "feed", "--target", server.base + "/org/"], input=secret + "\n", env=env)
            ws_url = run([privpkg, "wheel", "add", ws_whl], env=env, cwd=work).stdout.strip().splitlines()[-1]
            ymls = {
                "privpkg": env_yml(work / "privpkg.yml", [f"--index-url {index}", "feed-pkg", f"ws-pkg @ {ws_url}"]),
                "local": env_yml(work / "local.yml", ["--no-index", f"--find-links {wheels}", "feed-pkg", "ws-pkg"]),
            }
            # name: (label, yml, base, env)
            variants = {
                "local": ("local folder, no auth (`--no-index --find-links`)", ymls["local"], bases["privpkg"], env),
                "privpkg": ("PAT feed + `privpkg://` wheel", ymls["privpkg"], bases["privpkg"], env),
                "local_bare": ("local folder, base without privpkg", ymls["local"], bases["bare"], bare_env),
            }
            if args.breakdown:  # each private source alone, the other wheel by file
                feed_only = [f"--index-url {index}", "feed-pkg", f"ws-pkg @ {ws_whl.as_uri()}"]
                ws_only = ["--no-index", f"--find-links {wheels}", "feed-pkg", f"ws-pkg @ {ws_url}"]
                variants["feed"] = ("PAT feed only (`privpkg://` wheel by file URL)", env_yml(work / "feed.yml", feed_only),
                                    bases["privpkg"], env)
                variants["workspace"] = ("`privpkg://` wheel only (feed wheel from the folder)", env_yml(work / "ws.yml", ws_only),
                                         bases["privpkg"], env)

            def create(key: str) -> list[Any]:
                return [variants[key][2] / "bin" / "conda", "env", "create", "-q", "-f", variants[key][1], "-p", work / f"env-{key}"]

            for key, (_, _, _, e) in variants.items():
                shutil.rmtree(work / f"env-{key}", ignore_errors=True)
                r = run(create(key), env=e, cwd=work)
                if secret in r.stdout + r.stderr:
                    raise SystemExit(f"{key}: the PAT appears in conda's output")
                check_env(work / f"env-{key}", ws_url if key in ("privpkg", "workspace") else None, key)
            load = os.getloadavg()[0]
            log(f"timing {len(variants)} variants x {args.runs} env creates, interleaved")
            res = timed_creates({k: (create(k), variants[k][3], work / f"env-{k}") for k in variants}, runs=args.runs,
                                warmup=args.warmup)
            check_env(work / "env-privpkg", ws_url, "privpkg (last timed run)")
            launcher_res = None
            if args.launcher_runs:
                base_py = bases["privpkg"] / "bin" / "python"
                folder = run([base_py, "-c", "from privpkg.conda import pipstep; print(pipstep.launcher_dir())"], env=env).stdout.strip()
                old = work / "old-launcher" / "keyring"
                old.parent.mkdir()
                old.write_text(OLD_LAUNCHER.format(python=base_py))
                old.chmod(0o700)
                log(f"timing pip's keyring call through the launcher, before and after: {args.launcher_runs} runs each")
                launcher_res = launcher_timing(base_py, Path(folder) / "keyring", old, index, env, args.launcher_runs)
                samples = [json.loads(run([base_py, "-P", "-c", PURELIB_PROBE, work / "env-privpkg"], env=env).stdout)
                           for _ in range(max(3, args.launcher_runs // 5))]
                launcher_res["purelib"] = {k: statistics.median(d[k] for d in samples) for k in samples[0]}
        finally:
            server.stop()

        log(f"timing conda's start with and without privpkg: {args.start_runs} runs each")
        starts = {}
        for cmd in (["--version"], ["info"]):
            starts[" ".join(cmd)] = interleaved({
                "bare": ([bases["bare"] / "bin" / "conda", *cmd], bare_env),
                "privpkg": ([bases["privpkg"] / "bin" / "conda", *cmd], env),
            }, runs=args.start_runs, warmup=3)
        imports = run([bases["privpkg"] / "bin" / "python", "-X", "importtime", "-c", "import conda.plugins; import privpkg.conda.plugin"],
                      env=env).stderr
        plugin_us = sum(int(ln.split("|")[0].split(":")[1]) for ln in imports.splitlines()
                        if ln.startswith("import time:") and "privpkg" in ln.split("|")[-1])

    base = res["local"]
    print("\n### conda env create: pip section through privpkg vs a local folder\n")
    print(f"conda {conda.version}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; `conda env create -q -f YML -p PREFIX` "
          f"(python + pip from a local channel, warm package cache; two 1-file wheels in the pip section; PIP_NO_CACHE_DIR=1), "
          f"PREFIX removed before every run; {args.runs} runs per variant, interleaved in shuffled order "
          f"({args.warmup} warm-up iterations). Ratio of the medians with its 95% bootstrap interval; paired: the median of "
          f"each iteration's difference.\n")
    print("| variant | median | ratio to local (95% CI) | paired difference (95% CI) |")
    print("|---|---:|---:|---:|")
    for key, (label, *_r) in variants.items():
        r = res[key]
        if key == "local":
            print(f"| {label} | {r['median_ms']:.0f} ms | — | — |")
            continue
        r["ratio"] = compare(base["ms"], r["ms"], ratio=True)
        r["paired_ci"] = median_ci(r["paired"])
        print(f"| {label} | {r['median_ms']:.0f} ms | {r['ratio'][0]:.3f} ({r['ratio'][1]:.3f} … {r['ratio'][2]:.3f}) | "
              f"{r['paired_ci'][0]:+.0f} ms ({r['paired_ci'][1]:+.0f} … {r['paired_ci'][2]:+.0f}) |")
    ratio, lo, hi = res["privpkg"]["ratio"]
    met, resolved, text = verdict(ratio, lo, hi, TARGET_RATIO)
    print(f"\nTarget: privpkg / local ≤ {TARGET_RATIO}: {text} ({ratio:.3f}).")
    if launcher_res is not None:
        whole = launcher_res["whole"]
        print(f"\n### pip's keyring call in the pip step (`keyring --mode=creds --output=json get FEED`), {args.launcher_runs} "
              "runs each, interleaved\n")
        print("| launcher | median | paired difference to keyring's CLI, hit (95% CI) |")
        print("|---|---:|---:|")
        for name, r in whole.items():
            if "paired" in r:
                r["paired_ci"] = median_ci(r["paired"])
                d, dlo, dhi = r["paired_ci"]
                print(f"| {name} | {r['median_ms']:.0f} ms | {d:+.0f} ms ({dlo:+.0f} … {dhi:+.0f}) |")
            else:
                print(f"| {name} | {r['median_ms']:.0f} ms | — |")
        for mode, st in launcher_res["steps"].items():
            print(f"\nIn-process ({mode}, medians): " + ", ".join(f"{k} {v:.1f} ms" for k, v in st.items()) + ".")
        pl = launcher_res["purelib"]
        print(f"\nThe pip shim's folder in the new environment (medians, in-process): from conda's python record "
              f"{pl['conda-meta']:.2f} ms, asking the environment's python {pl['ask python']:.1f} ms (the same folder).")
    print(f"\n### conda's start, base with privpkg vs without ({args.start_runs} runs each, interleaved)\n")
    print("| command | without privpkg | with privpkg | paired difference (95% CI) |")
    print("|---|---:|---:|---:|")
    for cmd, r in starts.items():
        r["privpkg"]["paired_ci"] = median_ci(r["privpkg"]["paired"])
        d, dlo, dhi = r["privpkg"]["paired_ci"]
        print(f"| `conda {cmd}` | {r['bare']['median_ms']:.0f} ms | {r['privpkg']['median_ms']:.0f} ms | "
              f"{d:+.1f} ms ({dlo:+.1f} … {dhi:+.1f}) |")
    print(f"\n`-X importtime` of `import privpkg.conda.plugin` after `conda.plugins`: {plugin_us / 1000:.2f} ms (privpkg's modules, "
          f"self time).")
    print(busy_note(load))
    write_result("conda_env", {
        "conda": conda.version, "target_ratio": TARGET_RATIO, "met": met, "resolved": resolved, "runs": args.runs,
        "warmup": args.warmup, "start_runs": args.start_runs, "variants": res, "starts": starts, "plugin_import_us": plugin_us,
        "launcher": launcher_res})
    return 0


if __name__ == "__main__":
    sys.exit(main())
