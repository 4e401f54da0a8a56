#!/usr/bin/env python
"""Benchmark: ``privpkg env build`` from a pylock.toml, a cache hit and a miss, versus ``uv venv
&& uv pip sync --offline`` of the same lock.

Targets (issue 10, item 6): a cache hit of ``privpkg env build`` takes at most 100 ms wall; a
miss with a warm uv cache at most 1.15 times ``uv venv && uv pip sync --offline`` (ratio of the
medians), measured in the same run.

    python bench/env_build.py --runs 40         # the README's numbers
    python bench/env_build.py --runs 3 --warmup 0 --packages 4     # a smoke test
    python bench/env_build.py --runs 30 --modules 2500  # packages with up to 2500 files each, as real ones have
    python bench/env_build.py --runs 30 --real  # 18 real wheels from PyPI (numpy, pandas, requests...) + the 2 private ones
    python bench/env_build.py --runs 30 --real --breakdown 20  # and where a miss's own time goes

The lock holds N packages (default 20) made by the shared wheel maker, each with a random
payload of 0.1 to 4 MB (about 38 MB in all for 20): N-2 public ones served anonymously by a
loopback ``http.server``, one private wheel on the loopback PAT feed (a ``PythonFeed``
connection holds its secret) and one ``privpkg://`` wheel in a local workspace (as ``pip lock``
records it, ``[packages.archive]``). uv cannot read ``privpkg://`` and has no credential for
the feed, so its lock names those two files on the public server: the same files, the same
sha256. With ``--real``, the N-2 public wheels are instead 18 real ones from PyPI (pinned in
``REAL``, for this interpreter and platform; downloaded once with pip into
``~/.cache/privpkg-bench``), served the same way. Nothing is reached beyond loopback; the timed part uses no network at all but the
feed's and the public server's loopback (a miss fetches the two private files again only when
its wheelhouse is emptied, see below).

Timed with ``_common.interleaved`` (every command once per iteration, in a shuffled order):

    hit           privpkg env build --lock pylock.toml     (the build is cached)
    hit by NAME   privpkg env build bench --workspace team (the same lock, registered in a local workspace)
    miss          sh -c 'rm -rf CACHE/{keys,memo,builds} && privpkg env build --lock pylock.toml'
    uv sync       sh -c 'rm -rf V && uv venv -q V && uv pip sync -q --offline --python V/bin/python pylock.uv.toml'
    python start  VENV/bin/python -I -S -c pass             (the floor of any Python program)
    uv sync from python   the uv sync command, started by a Python program that does nothing else
    uv part alone from python   privpkg's own two uv commands (install --prefix, uv venv beside it) on its
                  wheelhouse, started by a Python program that imports nothing (os.posix_spawn)
    uv part, lock read, from python   the same, with the interpreter's site, after reading the lock
                  with tomllib: the floor of a miss for any Python program installing from the lock

Both rebuilding variants remove their previous environment inside the timed command (each
removes one venv of the same files). privpkg's wheelhouse (the fetched files) and the uv
caches (the uv variant's ``UV_CACHE_DIR``; privpkg's own, ``envs/uv``, which its first build warms) stay warm; ``--cold-wheelhouse`` adds a fourth variant that also
empties privpkg's wheelhouse, so the two private files are fetched again and uv unpacks every
file anew (its cache knows the wheelhouse's files by path and mtime). Same interpreter for
both (the base of this one), ``--no-config`` for both. privpkg is this checkout, a wheel
of this checkout in a throwaway venv (bytecode compiled, as pip installs it) with the ``uv``
package beside it, run as ``VENV/bin/privpkg`` (its console script, what users type); the children run with
``PYTHONDONTWRITEBYTECODE=1`` (``support.env.clean_env``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    busy_note,
    clean_env,
    compare,
    find_uv,
    interleaved,
    log,
    make_wheel,
    median_ci,
    privpkg_venv,
    privpkg_wheel,
    run,
    verdict,
    write_result,
)

from privpkg import envvars
from privpkg.environments import pylock
from privpkg.testing import start_feed_server, start_server, stop_process, write_config

#: ``--real``: 18 popular wheels from PyPI (a data-science lock: numpy and pandas with their
#: thousands of files, requests and its four, ...), pinned; downloaded once into the user cache.
REAL = ["numpy==2.1.3", "pandas==2.2.3", "python-dateutil==2.9.0.post0", "pytz==2024.2", "tzdata==2024.2", "six==1.16.0",
        "requests==2.32.3", "urllib3==2.2.3", "idna==3.10", "certifi==2024.8.30", "charset-normalizer==3.4.0",
        "packaging==24.2", "attrs==24.2.0", "click==8.1.7", "jinja2==3.1.4", "markupsafe==3.0.2", "pyyaml==6.0.2",
        "typing-extensions==4.12.2"]
TARGET_HIT_MS = 100.0
TARGET_RATIO = 1.15
FEED_PATH = "/org/_packaging/feed/pypi/simple/"


def lock_text(entries: list[tuple[str, str, str, str, bool]]) -> str:
    """(name, version, url, sha256, as_archive) -> a pylock.toml."""
    blocks = []
    for name, version, url, sha, archive in entries:
        table = "[packages.archive]" if archive else "[[packages.wheels]]"
        blocks.append(f'[[packages]]\nname = "{name}"\nversion = "{version}"\n\n{table}\nurl = "{url}"\nhashes = {{ sha256 = "{sha}" }}\n')
    return 'lock-version = "1.0"\ncreated-by = "privpkg bench"\n\n' + "\n".join(blocks)


#: ``--breakdown``: a miss run through this wrapper times privpkg's phases in its own process
#: (the functions are wrapped, nothing else changes) and prints them as JSON.
BREAKDOWN = r"""
import json, sys, time
T0 = time.perf_counter()
import privpkg.cli as cli
T1 = time.perf_counter()
from privpkg.environments import build, cache, fetch, relocate
T2 = time.perf_counter()
laps = {}
def wrap(mod, name, label):
    f = getattr(mod, name)
    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            laps[label] = laps.get(label, 0.0) + (time.perf_counter() - t) * 1000
    setattr(mod, name, timed)
wrap(cli, "parser_for", "parser")
wrap(build, "_select", "read and select the lock")
wrap(fetch, "fetch_artifacts", "check the wheelhouse")
wrap(build, "_start", "start uv (both)")
wrap(build, "_finish", "wait for uv")
wrap(relocate, "retarget_scripts", "retarget scripts")
wrap(build, "record_direct_urls", "direct_url.json")
wrap(cache, "publish", "publish")
wrap(cache, "memo_put", "memo")
sys.argv = ["privpkg", *sys.argv[1:]]
try:
    cli.main()
finally:
    T3 = time.perf_counter()
    laps = {"import privpkg.cli": (T1 - T0) * 1000, "import the build's modules": (T2 - T1) * 1000, **laps,
            "whole command, in process": (T3 - T0) * 1000}
    sys.stderr.write("BREAKDOWN " + json.dumps(laps) + "\n")
"""


#: The floor of a miss (see "uv part alone from python"): privpkg's two uv commands, side by side,
#: from a Python program that imports nothing (``os.posix_spawn``: ``import subprocess`` alone
#: takes 10 to 14 ms here, with the ``re`` and ``enum`` it pulls in, and was in this floor until
#: session 20). ``--read-lock`` (the "with the lock read" row) first reads the lock with
#: ``tomllib``, as any Python program that installs from a pylock.toml must.
FLOOR = r"""
import os, sys
if sys.argv[1] == "--read-lock":
    import tomllib
    with open(sys.argv[2], "rb") as fh:
        tomllib.load(fh)
    del sys.argv[1:3]
uv, base, dest, reqs, *links = sys.argv[1:]
os.mkdir(dest)
common = ["--offline", "--no-index", "--no-deps", *links, "-r", reqs]
install = os.posix_spawn(uv, [uv, "pip", "install", "--no-config", "--quiet", "--python", base, "--prefix", dest, *common], os.environ)
venv = os.posix_spawn(uv, [uv, "venv", "--no-config", "--quiet", "--allow-existing", "--python", base, dest], os.environ)
codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in (install, venv)]
sys.exit(max(codes))
"""

#: "uv sync from python": the uv sync command, started the same way.
SPAWN = r"""
import os, sys
pid = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ)
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def breakdown(python: Path, lock: Path, cache: Path, env: dict[str, str], runs: int, folder: Path) -> dict[str, float]:
    """Median ms of each phase of ``runs`` misses (and the interpreter's bare start)."""
    import json
    import statistics
    import subprocess
    import time

    script = folder / "breakdown.py"
    script.write_text(BREAKDOWN)
    phases: dict[str, list[float]] = {}
    for _ in range(runs):
        res = subprocess.run(["sh", "-c", f"rm -rf {cache}/keys {cache}/memo {cache}/builds && {python} {script} env build --lock {lock}"],
                             env=env, capture_output=True, text=True, check=True)
        line = next(x for x in res.stderr.splitlines() if x.startswith("BREAKDOWN "))
        for k, v in json.loads(line[len("BREAKDOWN "):]).items():
            phases.setdefault(k, []).append(v)
        t = time.perf_counter()
        subprocess.run([python, "-c", "pass"], env=env, check=True)
        phases.setdefault("interpreter start (python -c pass)", []).append((time.perf_counter() - t) * 1000)
    return {k: statistics.median(v) for k, v in phases.items()}


def real_wheels(public: Path) -> list[tuple[str, Path]]:
    """:data:`REAL`'s wheels for this interpreter, in ``public`` (downloaded once with pip into
    ``~/.cache/privpkg-bench``, then copied from there): [(name, path)]."""
    import re
    import shutil

    store = Path(os.path.expanduser("~/.cache/privpkg-bench")) / f"wheels-cp{sys.version_info[0]}{sys.version_info[1]}"
    def found() -> dict[str, Path]:
        return {re.sub(r"[-_.]+", "-", p.name.split("-")[0]).lower(): p for p in store.glob("*.whl")}
    if len(found()) < len(REAL):
        log(f"downloading {len(REAL)} wheels from PyPI into {store}")
        run([sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:", "--no-deps", "--dest", store, *REAL])
    have = found()
    public.mkdir(parents=True, exist_ok=True)
    out = []
    for spec in REAL:
        name = spec.split("==")[0]
        out.append((name, Path(shutil.copy2(have[name], public / have[name].name))))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--packages", type=int, default=20)
    ap.add_argument("--cold-wheelhouse", action="store_true", help="also time a miss whose wheelhouse is empty")
    ap.add_argument("--modules", type=int, default=0, metavar="N",
                    help="give each package 1 to N small modules besides its payload (real packages have hundreds "
                         "to thousands of files, and an install's cost grows with them); default 0: 4 files each")
    ap.add_argument("--breakdown", type=int, default=0, metavar="N",
                    help="after the timed runs, N more misses timed phase by phase inside privpkg's process")
    ap.add_argument("--real", action="store_true",
                    help=f"besides the two private wheels, {len(REAL)} real wheels from PyPI (numpy, pandas, requests, ...; "
                         "downloaded once) instead of made ones")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    uv = str(find_uv())
    base = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    with tempfile.TemporaryDirectory(prefix="privpkg-bench-env-") as tmp_name:
        tmp = Path(tmp_name)
        env = clean_env(tmp / "t")
        env["UV_CACHE_DIR"] = str(tmp / "uv-cache")
        cache = Path(env[envvars.HOME]) / "cache" / "envs"
        rng = random.Random(1)
        public = tmp / "public"
        feed_dir = tmp / "feed"
        wheels: list[tuple[str, Path]] = []
        for i in range(2 if args.real else args.packages):
            name = f"bench-pkg-{i:02d}"
            folder = feed_dir if i == 0 else public
            modules = rng.randint(1, args.modules) if args.modules else 0
            wheels.append((name, make_wheel(folder, name, "1.0", payload_size=rng.randint(100_000, 4_000_000), modules=modules)))
        if args.real:
            wheels += real_wheels(public)
        versions = {name: ("1.0" if name.startswith("bench-pkg-") else whl.name.split("-")[1]) for name, whl in wheels}
        secret = hashlib.sha256(os.urandom(16)).hexdigest()
        config = write_config(tmp / "feed.json", [{"path": FEED_PATH, "secret": secret, "dir": feed_dir}])
        feed = start_feed_server(config, env={**env, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")})
        server, port = start_server(lambda p: [sys.executable, "-m", "http.server", str(p), "--bind", "127.0.0.1", "--directory", str(public)],
                                    tmp / "http.log", "the public server")
        try:
            # privpkg from a wheel of this checkout, bytecode compiled (nothing timed compiles it), with
            # uv beside it as `pip install uv` puts it: the build finds it there.
            uv_version = run([uv, "--version"]).stdout.split()[1]
            log("building the privpkg venv")
            privpkg_venv(tmp / "venv", [privpkg_wheel(tmp / "dist", env), f"uv=={uv_version}"], env)
            privpkg = [str(tmp / "venv" / "bin" / "privpkg")]
            run([*privpkg, "workspace", "add", "team", "--local", tmp / "ws"], env=env)
            run([*privpkg, "connection", "set", "feed", "--target", f"http://127.0.0.1:{feed.port}{FEED_PATH}"],
                env=env, input=secret + "\n")
            _, ws_wheel = wheels[1]
            ws_url = run([*privpkg, "wheel", "add", ws_wheel, "--workspace", "team"], env=env).stdout.strip().splitlines()[-1]
            mine, theirs = [], []
            for i, (name, whl) in enumerate(wheels):
                sha = hashlib.sha256(whl.read_bytes()).hexdigest()
                public_url = f"http://127.0.0.1:{port}/{whl.name}"
                version = versions[name]
                if i == 0:
                    (public / whl.name).write_bytes(whl.read_bytes())  # uv's copy of the feed file
                    mine.append((name, version, f"http://127.0.0.1:{feed.port}{FEED_PATH}{name}/{whl.name}", sha, False))
                elif i == 1:
                    mine.append((name, version, ws_url, sha, True))
                else:
                    mine.append((name, version, public_url, sha, False))
                theirs.append((name, version, public_url, sha, False))
            lock, uv_lock = tmp / "pylock.toml", tmp / "pylock.uv.toml"
            # Written as privpkg writes locks (pylock.dump: what env lock and the registry store),
            # so the build by --lock and the one by NAME share the memo of the lock's text.
            lock.write_text(pylock.dump(pylock.load(lock_text(mine))))
            uv_lock.write_text(lock_text(theirs))
            venv = tmp / "uv-venv"
            # Warm both: uv's cache (an online sync), privpkg's wheelhouse and build (a first build).
            run([uv, "venv", "-q", "--no-config", "--python", base, venv], env=env)
            run([uv, "pip", "sync", "-q", "--no-config", "--python", venv / "bin/python", uv_lock], env=env)
            built = run([*privpkg, "env", "build", "--lock", lock], env=env).stdout.strip()
            log(f"built {built}")
            # The same lock registered in the local workspace: a hit by NAME reads it from there.
            (tmp / "requirements.txt").write_text("".join(f"{name}\n" for name, _ in wheels))
            run([*privpkg, "env", "create", "bench", "--requirements", tmp / "requirements.txt", "-o", tmp / "bench-def"], env=env)
            (tmp / "bench-def" / "pylock.toml").write_text(lock.read_text())
            run([*privpkg, "env", "register", tmp / "bench-def", "--workspace", "team"], env=env)
            by_name = run([*privpkg, "env", "build", "bench", "--workspace", "team"], env=env).stdout.strip()
            assert by_name == built, (by_name, built)
            q = " ".join
            commands: dict[str, tuple[list[Any], dict[str, str]]] = {
                "uv sync": (["sh", "-c", (f"rm -rf {venv} && {uv} venv -q --no-config --python {base} {venv} && "
                                      f"{uv} pip sync -q --no-config --offline --python {venv}/bin/python {uv_lock}")], env),
                "miss": (["sh", "-c", f"rm -rf {cache}/keys {cache}/memo {cache}/builds && {q(privpkg)} env build --lock {lock}"], env),
                "hit": ([*privpkg, "env", "build", "--lock", lock], env),
                "hit by NAME": ([*privpkg, "env", "build", "bench", "--workspace", "team"], env),
            }
            # The floor of any Python CLI: the interpreter's bare start, and the same uv commands
            # started by a Python program that does nothing else (subprocess, as privpkg starts uv).
            bare = str(tmp / "venv" / "bin" / "python")
            commands["python start"] = ([bare, "-I", "-S", "-c", "pass"], env)
            commands["uv sync from python"] = ([bare, "-I", "-S", "-c", SPAWN, *commands["uv sync"][0]], env)
            # The floor of privpkg's way: its own two uv commands (the install with --prefix, and
            # uv venv beside it), on its wheelhouse, started by a Python program that does nothing
            # else: no lock read, no key, no scripts pointed at the new python, nothing published.
            floor_dest, floor_reqs = tmp / "floor-venv", tmp / "floor-requirements.txt"
            floor_reqs.write_text("".join(f"{name}=={versions[name]} --hash=sha256:{hashlib.sha256(whl.read_bytes()).hexdigest()}\n"
                                          for name, whl in wheels))
            links = [a for name, whl in wheels
                     for a in ("--find-links", str(cache / "wheels" / hashlib.sha256(whl.read_bytes()).hexdigest()))]
            (tmp / "floor.py").write_text(FLOOR)
            commands["uv part alone from python"] = (["sh", "-c", (f"rm -rf {floor_dest} && {bare} -I -S {tmp / 'floor.py'} "
                                                      f"{uv} {base} {floor_dest} {floor_reqs} {' '.join(links)}")], env)
            # The same with the interpreter's site (privpkg's script has it) and the lock read
            # with tomllib first: what any Python program installing from this lock pays.
            commands["uv part, lock read, from python"] = (["sh", "-c", (f"rm -rf {floor_dest} && {bare} {tmp / 'floor.py'} --read-lock {lock} "
                                                            f"{uv} {base} {floor_dest} {floor_reqs} {' '.join(links)}")], env)
            if args.cold_wheelhouse:
                commands["miss, cold wheelhouse"] = (["sh", "-c", f"rm -rf {cache} && {q(privpkg)} env build --lock {lock}"], env)
            res = interleaved(commands, runs=args.runs, warmup=args.warmup)
            for name, r in res.items():
                assert all(c == 0 for c in r["exit_codes"]), f"{name} failed: {r['exit_codes']}"
            phases = breakdown(tmp / "venv" / "bin" / "python", lock, cache, env, args.breakdown, tmp) if args.breakdown else {}
            # The last miss left a complete build; check what it holds.
            out = run([*privpkg, "env", "run", "--lock", lock, "--", "python", "-c",
                       "import importlib.metadata as m; print(len(list(m.distributions())))"], env=env).stdout.strip()
            assert out == str(len(wheels)), (out, len(wheels))
        finally:
            stop_process(server)
            feed.stop()
    hit, hit_lo, hit_hi = median_ci(res["hit"]["ms"])
    by_name, name_lo, name_hi = median_ci(res["hit by NAME"]["ms"])
    ratio, lo, hi = compare(res["uv sync"]["ms"], res["miss"]["ms"], ratio=True)
    print("\n| variant | median ms | CPU mean ms |\n|---|---|---|")
    for name, r in res.items():
        print(f"| {name} | {r['median_ms']:.0f} | {r['cpu_mean_ms']:.0f} |")
    print(f"\nhit: {hit:.0f} ms (95% CI {hit_lo:.0f} … {hit_hi:.0f}), target ≤ {TARGET_HIT_MS:g} ms: "
          f"{verdict(hit, hit_lo, hit_hi, TARGET_HIT_MS)[2]}")
    print(f"hit by NAME (a version registered in a local workspace): {by_name:.0f} ms (95% CI {name_lo:.0f} … {name_hi:.0f}), "
          f"target ≤ {TARGET_HIT_MS:g} ms: {verdict(by_name, name_lo, name_hi, TARGET_HIT_MS)[2]}")
    print(f"miss / uv sync: {ratio:.2f}x (95% CI {lo:.2f} … {hi:.2f}), target ≤ {TARGET_RATIO}x: {verdict(ratio, lo, hi, TARGET_RATIO)[2]}")
    extra, elo, ehi = compare(res["uv sync"]["ms"], res["miss"]["ms"])
    print(f"miss − uv sync: {extra:+.0f} ms (95% CI {elo:+.0f} … {ehi:+.0f})")
    allowance = (TARGET_RATIO - 1) * res["uv sync"]["median_ms"]
    start, start_lo, start_hi = median_ci(res["python start"]["ms"])
    wrapped, wlo, whi = compare(res["uv sync"]["ms"], res["uv sync from python"]["ms"], ratio=True)
    floor, flo, fhi = compare(res["uv sync"]["ms"], res["uv part alone from python"]["ms"], ratio=True)
    rfloor, rflo, rfhi = compare(res["uv sync"]["ms"], res["uv part, lock read, from python"]["ms"], ratio=True)
    rextra = compare(res["uv sync"]["ms"], res["uv part, lock read, from python"]["ms"])[0]
    print(f"floor: the target allows a miss {allowance:.0f} ms beyond uv sync; a bare Python start (python -I -S -c pass) "
          f"takes {start:.0f} ms (95% CI {start_lo:.0f} … {start_hi:.0f}); uv sync started by a Python program that does "
          f"nothing else: {wrapped:.2f}x (95% CI {wlo:.2f} … {whi:.2f}); privpkg's two uv commands alone, side by side, "
          f"from a Python program that does nothing else: {floor:.2f}x (95% CI {flo:.2f} … {fhi:.2f}); the same program "
          f"with site and the lock read by tomllib first: {rfloor:.2f}x (95% CI {rflo:.2f} … {rfhi:.2f}), "
          f"{rextra:+.0f} ms")
    if args.cold_wheelhouse:
        cr, clo, chi = compare(res["uv sync"]["ms"], res["miss, cold wheelhouse"]["ms"], ratio=True)
        print(f"miss with a cold wheelhouse / uv sync: {cr:.2f}x (95% CI {clo:.2f} … {chi:.2f}) (no target)")
    if phases:
        print(f"\nA miss phase by phase (median of {args.breakdown}, ms, in privpkg's process; the interpreter's start apart):")
        for k, v in phases.items():
            print(f"  {k:40s} {v:7.1f}")
    print(busy_note(load_before))
    write_result("env_build", {"runs": args.runs, "packages": len(wheels), "modules": args.modules, "real": args.real, "results": res, "breakdown": phases,
                               "hit_ms": [hit, hit_lo, hit_hi],
                               "allowance_ms": allowance, "python_start_ms": [start, start_lo, start_hi], "uv_from_python_ratio": [wrapped, wlo, whi],
                               "uv_part_alone_ratio": [floor, flo, fhi], "uv_part_lock_read_ratio": [rfloor, rflo, rfhi], "hit_by_name_ms": [by_name, name_lo, name_hi], "miss_ratio": [ratio, lo, hi], "miss_extra_ms": [extra, elo, ehi]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
