#!/usr/bin/env python
"""Benchmark: in-process credential lookup with 10,000 stored connections, timed by pyperf.

Targets: opening the store takes at most 50 ms, and one lookup at most 1 ms (every kind).

    python bench/lookup.py                 # the README's numbers (pyperf's defaults: 20 processes)
    python bench/lookup.py --fast          # a smoke test; any pyperf Runner option works (-p, -n, -o …)

A throwaway PRIVPKG_HOME gets one store of N connections, written with one ``Vault.update`` of
a document shaped exactly as ``set_connection`` writes it (checked against three real
``set_connection`` calls). pyperf then times, each in its own worker processes (imports done):

    open               ``Vault().load()`` + ``CredentialLookup(document=…)``: read, decrypt, parse, index
    find hit           ``find(url)``: deep URLs below a target (every 10th target nests in another)
    find miss          known hosts with paths no target covers, and unknown hosts
    find host          pip's second lookup, a bare ``host``: 200 targets on it, 20 opted in host-wide
    find host:port     the same with ``:443``
    get_credential     ``PrivpkgKeyring().get_credential(url, None)`` repeated: the backend reuses its
                       decrypted snapshot while the store file is unchanged

A find value is the mean time per call over pyperf's loops, cycling through about 2,000 URLs of
that kind (every answer checked once first). The result is resolved when every pyperf value
lies on one side of the target. Also writes pyperf's own file, ``bench/results/lookup.pyperf.json``
(``python -m pyperf compare_to OLD NEW``).
"""

from __future__ import annotations

import datetime as _dt
import itertools
import os
import random
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyperf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, verdict, write_result

from privpkg import envvars

OPEN_TARGET_MS = 50.0
LOOKUP_TARGET_MS = 1.0
HOSTS = 50


def target_for(i: int) -> str:
    """Connection i's target, normalized. Every 10th nests two segments below the previous one
    on the same host, so longest-prefix matching is exercised."""
    if i % 10 == 9:
        return f"https://host{(i - 1) % HOSTS}.example.com/org{i - 1}/_packaging/feed{i}/"
    return f"https://host{i % HOSTS}.example.com/org{i}/"


def build_document(n: int) -> dict[str, Any]:
    """The document ``set_connection`` would have written after n calls (one timestamp for all)."""
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    return {"version": 1, "connections": {f"feed-{i:05d}": {
        "category": "PythonFeed", "target": target_for(i), "auth_type": "PAT",
        "username": f"user{i}" if i % 7 == 3 else "__token__",
        "secret": secrets.token_urlsafe(39),  # 52 characters, like an Azure DevOps PAT
        "expires": "2099-12-31" if i % 5 == 0 else None,
        "host_wide": i % 10 == 0,  # so pip's bare-host lookup scans (ambiguous) opted-in targets
        "endpoint": None, "created": now, "updated": now} for i in range(n)}}


def check_record_format(home: Path, doc: dict[str, Any]) -> None:
    """Three records written by the real set_connection have the generated records' fields and values."""
    from privpkg.connections import set_connection
    from privpkg.vault import Vault

    scratch = Vault(home / "scratch.store", home / "scratch.key")
    for name in ("feed-00000", "feed-00003", "feed-00009"):
        raw = doc["connections"][name]
        set_connection(name, "PythonFeed", raw["target"], "PAT", value=raw["secret"],
                       username=None if raw["username"] == "__token__" else raw["username"],
                       expires=raw["expires"], host_wide=raw["host_wide"], vault=scratch)
    for name, rec in scratch.load()["connections"].items():
        gen = doc["connections"][name]
        if sorted(rec) != sorted(gen) or any(rec[k] != gen[k] for k in rec if k not in ("created", "updated")):
            raise SystemExit(f"the generated record {name} differs from what set_connection writes")


def make_queries(n: int, seed: int, per_kind: int = 2000) -> dict[str, list[tuple[str, str | None]]]:
    """Per kind, (URL, the connection name that must answer or None)."""
    rng = random.Random(seed)
    out: dict[str, list[tuple[str, str | None]]] = {"hit": [], "miss": [], "host": [], "host:port": []}
    for k in range(per_kind):
        i = rng.randrange(n)
        host = f"host{i % HOSTS}.example.com"
        out["hit"].append((f"{target_for(i)}pypi/simple/pkg-{k % 97}/", f"feed-{i:05d}"))
        out["miss"].append((f"https://{host}/org{i}-evil/simple/", None) if k % 3 == 0 else
                           (f"https://{host}/nobody{k}/_packaging/f/pypi/simple/", None) if k % 3 == 1 else
                           (f"https://pkgs{k}.elsewhere.example.org/org/simple/", None))
        out["host"].append((host, None))  # ambiguous: many opted-in targets with different secrets
        out["host:port"].append((f"{host}:443", None))
    return out


def main() -> int:
    runner = pyperf.Runner(add_cmdline_args=lambda cmd, a: cmd.extend(["--home", a.home, "--connections", str(a.connections), "--seed", str(a.seed)]))
    runner.argparser.add_argument("--connections", type=int, default=10_000)
    runner.argparser.add_argument("--seed", type=int, default=1)
    runner.argparser.add_argument("--home", help="the store to time (set by the main process for pyperf's workers)")
    args = runner.parse_args()
    master = not args.worker
    if master:
        args.home = tempfile.mkdtemp(prefix="privpkg-bench-lookup-")
    os.environ[envvars.HOME] = args.home  # pyperf's workers get no other PRIVPKG_* variable
    from privpkg.connections import CredentialLookup
    from privpkg.keyring_backend import PrivpkgKeyring
    from privpkg.vault import Vault

    queries = make_queries(args.connections, args.seed)
    try:
        if master:
            doc = build_document(args.connections)
            check_record_format(Path(args.home), doc)
            Vault().update(lambda d: d.update(doc))
            lookup = CredentialLookup(document=Vault().load())
            for kind, qs in queries.items():
                for url, want in qs:
                    got = lookup.find(url)
                    if (got.name if got else None) != want:
                        raise SystemExit(f"{kind}: find({url}) answered {got}, expected {want}")
            store_mb = Vault().path.stat().st_size / 1e6
        lookup = CredentialLookup(document=Vault().load())
        backend = PrivpkgKeyring()

        def cycle(fn: Any, kind: str) -> Any:
            def time_func(loops: int) -> float:
                urls = itertools.islice(itertools.cycle([u for u, _ in queries[kind]]), loops)
                t0 = time.perf_counter()
                for url in urls:
                    fn(url)
                return time.perf_counter() - t0
            return time_func

        def open_store(loops: int) -> float:
            t0 = time.perf_counter()
            for _ in range(loops):
                CredentialLookup(document=Vault().load())
            return time.perf_counter() - t0

        results = {
            "open": runner.bench_time_func("open", open_store),
            **{f"find {k}": runner.bench_time_func(f"find {k}", cycle(lookup.find, k)) for k in queries},
            "get_credential": runner.bench_time_func("get_credential", cycle(lambda u: backend.get_credential(u, None), "hit")),
        }
    finally:
        if master:
            shutil.rmtree(args.home, ignore_errors=True)
    if not master:
        return 0

    ms = {name: [v * 1e3 for v in b.get_values()] for name, b in results.items() if b is not None}
    print(f"\n### In-process lookup, {args.connections:,} stored connections (pyperf)\n")
    print(f"Store {store_mb:.2f} MB. pyperf: {len(ms['open'])} values per benchmark over "
          f"{results['open'].get_nrun()} runs; a find value is the mean per call over its loops.\n")
    print("| benchmark | median | min … max | target | |\n|---|---:|---:|---|---|")
    verdicts: dict[str, tuple[bool, bool, str]] = {}
    for name, values in ms.items():
        target = OPEN_TARGET_MS if name == "open" else LOOKUP_TARGET_MS if name.startswith("find") else None
        med = sorted(values)[len(values) // 2]
        if target is not None:
            verdicts[name] = verdict(med, min(values), max(values), target)
        unit, k = ("µs", 1e3) if med < 0.1 else ("ms", 1.0)
        print(f"| {name} | {med * k:.3g} {unit} | {min(values) * k:.3g} … {max(values) * k:.3g} {unit} | "
              + (f"≤ {target:g} ms | {verdicts[name][2]} |" if target is not None else "— | |"))
    print(f"\nTargets: open ≤ {OPEN_TARGET_MS:g} ms: {verdicts['open'][2]}; every kind of lookup ≤ {LOOKUP_TARGET_MS:g} ms: "
          + ("met" if all(v[0] for k, v in verdicts.items() if k != "open") else "**MISSED**")
          + ("" if all(v[1] for v in verdicts.values()) else " (not every one resolved: see the table)") + ".")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    pyperf.BenchmarkSuite([b for b in results.values() if b is not None]).dump(str(RESULTS_DIR / "lookup.pyperf.json"), replace=True)
    write_result("lookup", {
        "connections": args.connections, "store_mb": round(store_mb, 3),
        "targets_ms": {"open": OPEN_TARGET_MS, "lookup": LOOKUP_TARGET_MS},
        "met": {k: v[0] for k, v in verdicts.items()}, "resolved": {k: v[1] for k, v in verdicts.items()},
        "values_ms": ms, "pyperf_file": str(RESULTS_DIR / "lookup.pyperf.json")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
