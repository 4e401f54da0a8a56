#!/usr/bin/env python
"""Benchmark: uploading a 1 GiB wheel to Azurite with privpkg versus azure-storage-blob itself.

Requirement: "Uploading a 1 GiB wheel-sized file to Azurite: peak RSS at most 100 MB, and
throughput at least 0.9x that of azure-storage-blob's own upload_blob of the same file, measured
in the same run."

    python bench/azure_upload.py                    # 1 GiB, 1 warm-up round + 3 interleaved rounds
    python bench/azure_upload.py --runs 5
    python bench/azure_upload.py --size-mib 64 --runs 1 --warmup 0     # a quick smoke test

Run it with an interpreter that has privpkg and azure-storage-blob (the dev venv). It writes one
valid wheel of the requested size (a zip with METADATA, WHEEL, RECORD and one big ZIP_STORED
data file, ZIP64, content: one random 1 MiB block stamped with a counter), starts Azurite
(``.cache/azurite-npm``, installed with npm if missing) on a free loopback port with its data in
a temp dir, stores one ``AzureBlob`` connection (the well-known development key) in a throwaway
``PRIVPKG_HOME``, and then times, each in its own process and each into a fresh container
(deleted afterwards), interleaved in a shuffled order every round:

    privpkg wheel add   ``python -m privpkg wheel add BIG.whl --workspace az-N``: what the user waits
                        for, including validation and the sha256 of the whole file before upload
    SDK upload_blob     ``BlobClient(...).upload_blob(open(f, "rb"), overwrite=True)``, the SDK's
                        defaults (Azurite needs api_version="2025-11-05"): the reference
    SDK, privpkg's settings   the same with privpkg's block size, single-put size, concurrency,
                        length and metadata (context: how much is the settings, how much privpkg)
    privpkg API put     ``open_workspace_storage(ws).put(key, path, sha256)`` after ``validate_wheel``:
                        upload-only, timed in-process (validation timed separately)

For every process: wall time as the caller waits (throughput = file size / wall), peak RSS and
CPU from ``os.wait4``; for the three in-process variants also the upload call alone. Every upload
is checked (blob size; privpkg's recorded sha256). Azurite's CPU time per upload is recorded too.
MB = 10^6 bytes. Prints a Markdown table and writes ``bench/results/azure_upload.json``.
The 1 GiB file and Azurite's data dir are deleted at the end. Linux (os.wait4, /proc).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    AZURITE_ACCOUNT,
    AZURITE_API_VERSION,
    AZURITE_KEY,
    AZURITE_VERSION,
    RESULTS_DIR,
    Azurite,
    azurite_binary,
    busy_note,
    clean_env,
    loadavg,
    log,
    proc_cpu_s,
    run,
    source_revision,
    timed,
    write_result,
)

RESULTS = RESULTS_DIR / "azure_upload.json"
TARGET_RSS_MB = 100.0
TARGET_RATIO = 0.9
MB = 1e6
WHEEL_NAME = "benchbig"
WHEEL_VERSION = "1.0"

# One script, four modes; prints one JSON line. Runs in its own process so RSS is per variant.
_CHILD = r"""
import json, os, sys, time
T = time.perf_counter
mode, endpoint, container, blob_name, path = sys.argv[1:6]
t0 = T()
out = {}
if mode in ("sdk_default", "sdk_tuned"):
    from azure.storage.blob import BlobClient
    account, key, api = sys.argv[6:9]
    cred = {"account_name": account, "account_key": key}
    if mode == "sdk_default":
        client = BlobClient(endpoint, container, blob_name, credential=cred, api_version=api)
        out["import_s"] = T() - t0
        t1 = T()
        with open(path, "rb") as fh:
            client.upload_blob(fh, overwrite=True)
    else:
        sha256, block, conc = sys.argv[9], int(sys.argv[10]), int(sys.argv[11])
        from azure.storage.blob import ContainerClient
        cc = ContainerClient(endpoint, container, credential=cred, api_version=api,
                             max_block_size=block, max_single_put_size=block)
        client = cc.get_blob_client(blob_name)
        out["import_s"] = T() - t0
        t1 = T()
        with open(path, "rb") as fh:
            client.upload_blob(fh, overwrite=False, metadata={"sha256": sha256}, length=os.path.getsize(path),
                               max_concurrency=conc)
    out["upload_s"] = T() - t1
elif mode == "privpkg_put":
    from pathlib import Path
    from privpkg.access import open_workspace_storage
    from privpkg.wheels import validate_wheel
    from privpkg.workspace import Workspace
    out["import_s"] = T() - t0
    t1 = T()
    wheel = validate_wheel(Path(path))
    out["validate_s"] = T() - t1
    t2 = T()
    storage = open_workspace_storage(Workspace("bench", "azure", endpoint + "/" + container))
    storage._container()  # client + account key from the store: not part of the transfer
    out["prepare_s"] = T() - t2
    t3 = T()
    storage.put(blob_name, Path(path), wheel.sha256)
    out["upload_s"] = T() - t3
else:
    raise SystemExit("unknown mode " + mode)
out["total_s"] = T() - t0
print(json.dumps(out))
"""


# --------------------------------------------------------------------------- the big wheel


def write_big_wheel(directory: Path, size: int) -> tuple[Path, str]:
    """A valid wheel ``benchbig-1.0-py3-none-any.whl`` whose one data file is ``size`` bytes,
    stored (not deflated). Returns (path, sha256 of the whole file)."""
    import base64

    dist_info = f"{WHEEL_NAME}-{WHEEL_VERSION}.dist-info"
    path = directory / f"{WHEEL_NAME}-{WHEEL_VERSION}-py3-none-any.whl"
    block = bytearray(os.urandom(1 << 20))
    record = []

    def rec(name: str, data_sha: bytes, n: int) -> None:
        record.append(f"{name},sha256={base64.urlsafe_b64encode(data_sha).rstrip(b'=').decode()},{n}")

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        init = b'"""1 GiB of benchmark data in data.bin."""\n'
        zf.writestr(f"{WHEEL_NAME}/__init__.py", init)
        rec(f"{WHEEL_NAME}/__init__.py", hashlib.sha256(init).digest(), len(init))
        h = hashlib.sha256()
        left, i = size, 0
        with zf.open(f"{WHEEL_NAME}/data.bin", "w", force_zip64=True) as out:
            while left > 0:
                block[:8] = i.to_bytes(8, "little")  # every block differs
                chunk = bytes(block[: min(left, len(block))])
                out.write(chunk)
                h.update(chunk)
                left -= len(chunk)
                i += 1
        rec(f"{WHEEL_NAME}/data.bin", h.digest(), size)
        files = {
            f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {WHEEL_NAME}\nVersion: {WHEEL_VERSION}\n".encode(),
            f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: privpkg-bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        }
        for name, data in files.items():
            zf.writestr(name, data)
            rec(name, hashlib.sha256(data).digest(), len(data))
        record.append(f"{dist_info}/RECORD,,")
        zf.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return path, digest.hexdigest()


# --------------------------------------------------------------------------- variants


class Variant:
    def __init__(self, key: str, label: str, timed_part: str) -> None:
        self.key, self.label, self.timed_part = key, label, timed_part
        self.wall: list[float] = []
        self.upload: list[float] = []
        self.rss: list[int] = []
        self.cpu: list[float] = []
        self.azurite_cpu: list[float] = []
        self.extra: list[dict[str, float]] = []
        self.load: list[float | None] = []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024, help="size of the data file in the wheel (default 1024)")
    ap.add_argument("--runs", type=int, default=3, help="timed rounds (default 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    ap.add_argument("--workdir", type=Path, default=None, help="where the file and Azurite's data go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (wheel, Azurite data) afterwards")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=RESULTS, help=f"result file (default {RESULTS})")
    args = ap.parse_args(argv)

    from importlib.metadata import version

    try:
        from azure.storage.blob import (
            BlobServiceClient,  # the parent creates and checks containers
        )

        from privpkg.storage import azure as privpkg_azure
    except ImportError as exc:
        raise SystemExit(f"run this with an interpreter that has privpkg[azure]: {exc}") from None
    versions = {d: version(d) for d in ("privpkg", "azure-storage-blob", "azure-core")}

    rev = source_revision()
    size_data = args.size_mib << 20
    variants = [
        Variant("cli", "`privpkg wheel add` (validate + sha256 + upload)", "process"),
        Variant("sdk_default", "SDK `upload_blob`, defaults", "process"),
        Variant("sdk_tuned", f"SDK `upload_blob`, privpkg's settings ({privpkg_azure.BLOCK_SIZE >> 20} MiB blocks, "
                             "max_concurrency=2)", "process"),
        Variant("privpkg_put", "privpkg API `AzureStorage.put` (upload only)", "process"),
    ]
    base = Path(args.workdir or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    uploads = len(variants) * (args.runs + args.warmup)
    need = size_data * (uploads + 1) + (2 << 30)  # the file, every upload until Azurite's GC, margin
    free = shutil.disk_usage(base).free
    log(f"disk: {free / 2**30:.1f} GiB free in {base}; this run may need up to {need / 2**30:.1f} GiB "
        f"(Azurite frees deleted blobs only on its periodic GC)")
    if free < need:
        raise SystemExit(f"not enough disk space in {base}: {free / 2**30:.1f} GiB free, need {need / 2**30:.1f} GiB "
                         "(fewer --runs/--warmup, a smaller --size-mib, or another --workdir)")

    env = clean_env()
    work = Path(tempfile.mkdtemp(prefix="privpkg-bench-azure-", dir=base))
    server: Azurite | None = None
    try:
        home = work / "home"
        home.mkdir()
        env["PRIVPKG_HOME"] = str(home)
        binary = azurite_binary()
        t0 = time.monotonic()
        log(f"writing a {args.size_mib} MiB wheel")
        big, sha = write_big_wheel(work, size_data)
        size = big.stat().st_size
        log(f"  {big.name}: {size} bytes in {time.monotonic() - t0:.1f} s")
        server = Azurite(binary, work / "azurite")
        log(f"Azurite {AZURITE_VERSION} on port {server.port} (pid {server.proc.pid})")
        svc = BlobServiceClient(server.endpoint, credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY},
                                api_version=AZURITE_API_VERSION)
        py = sys.executable
        run([py, "-m", "privpkg", "connection", "set", "bench-azurite", "--category", "AzureBlob", "--target",
             server.endpoint], input=AZURITE_KEY + "\n", env=env, cwd=work)
        child = work / "child.py"
        child.write_text(_CHILD)
        key = f"wheels/{big.name}"
        sdk_args = [AZURITE_ACCOUNT, AZURITE_KEY, AZURITE_API_VERSION]

        rng = random.Random(args.seed)
        load_before = loadavg()
        log(f"timing: {args.warmup} warm-up + {args.runs} rounds x {len(variants)} variants, interleaved "
            f"(each upload {size / MB:.0f} MB)")
        order = list(variants)
        n = 0
        for i in range(args.warmup + args.runs):
            rng.shuffle(order)
            for v in order:
                n += 1
                container = f"bench-{n}-{secrets.token_hex(3)}"
                svc.create_container(container)
                url = f"{server.endpoint}/{container}"
                if v.key == "cli":
                    ws = f"az-{n}"
                    run([py, "-m", "privpkg", "workspace", "add", ws, "--azure", url], env=env, cwd=work)
                    cmd = [py, "-m", "privpkg", "wheel", "add", big, "--workspace", ws]
                elif v.key == "sdk_default":
                    cmd = [py, child, "sdk_default", server.endpoint, container, key, big, *sdk_args]
                elif v.key == "sdk_tuned":
                    cmd = [py, child, "sdk_tuned", server.endpoint, container, key, big, *sdk_args, sha,
                           privpkg_azure.BLOCK_SIZE, 2]
                else:
                    cmd = [py, child, "privpkg_put", server.endpoint, container, key, big]
                if shutil.disk_usage(work).free < size + (1 << 30):
                    raise SystemExit("disk is nearly full; stopping (Azurite has not freed deleted blobs yet)")
                az0 = proc_cpu_s(server.proc.pid)
                r = timed(cmd, env, cwd=work)
                az1 = proc_cpu_s(server.proc.pid)
                if r.returncode != 0:
                    raise SystemExit(f"{v.key}: exit {r.returncode}\n{r.stdout}{r.stderr[-3000:]}")
                info: dict[str, float] = {}
                if v.key == "cli":
                    last = r.stdout.strip().splitlines()[-1]
                    if last != f"privpkg://{ws}/wheels/{big.name}":
                        raise SystemExit(f"wheel add printed {last!r}")
                else:
                    info = json.loads(r.stdout.strip().splitlines()[-1])
                props = svc.get_blob_client(container, key).get_blob_properties()
                if props.size != size:
                    raise SystemExit(f"{v.key}: blob has {props.size} bytes, the file {size}")
                if v.key in ("cli", "privpkg_put", "sdk_tuned") and (props.metadata or {}).get("sha256") != sha:
                    raise SystemExit(f"{v.key}: recorded sha256 {props.metadata} != {sha}")
                svc.delete_container(container)
                log(f"  round {i + 1}{' (warm-up)' if i < args.warmup else ''} {v.key}: {r.wall_s:.1f} s, "
                    f"{size / MB / r.wall_s:.0f} MB/s, peak RSS {r.maxrss_bytes / MB:.0f} MB")
                if i >= args.warmup:
                    v.wall.append(r.wall_s)
                    v.cpu.append(r.cpu_s)
                    v.rss.append(r.maxrss_bytes)
                    if az0 is not None and az1 is not None:
                        v.azurite_cpu.append(az1 - az0)
                    if "upload_s" in info:
                        v.upload.append(info["upload_s"])
                    v.extra.append(info)
                    la = loadavg()
                    v.load.append(la[0] if la else None)
        load_after = loadavg()
        listing = [(b.name, b.size) for b in svc.list_containers()]
        if listing:
            log(f"note: containers left on Azurite: {listing}")
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            log(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    # ----------------------------------------------------------------------- report
    stats: dict[str, Any] = {}
    for v in variants:
        wall = statistics.median(v.wall)
        st: dict[str, Any] = {
            "label": v.label,
            "n": len(v.wall),
            "wall_median_s": wall,
            "wall_min_s": min(v.wall),
            "wall_max_s": max(v.wall),
            "throughput_mb_s": size / MB / wall,
            "peak_rss_mb_median": statistics.median(v.rss) / MB,
            "peak_rss_mb_max": max(v.rss) / MB,
            "cpu_median_s": statistics.median(v.cpu),
            "azurite_cpu_median_s": statistics.median(v.azurite_cpu) if v.azurite_cpu else None,
        }
        if v.upload:
            up = statistics.median(v.upload)
            st["upload_median_s"] = up
            st["upload_throughput_mb_s"] = size / MB / up
        for k in ("import_s", "validate_s", "prepare_s"):
            vals = [e[k] for e in v.extra if k in e]
            if vals:
                st[k.replace("_s", "_median_s")] = statistics.median(vals)
        stats[v.key] = st

    cli, sdk, tuned, put = (stats[k] for k in ("cli", "sdk_default", "sdk_tuned", "privpkg_put"))
    ratio_e2e = cli["throughput_mb_s"] / sdk["throughput_mb_s"]
    ratio_up = put["upload_throughput_mb_s"] / sdk["upload_throughput_mb_s"]
    ratio_settings = tuned["upload_throughput_mb_s"] / sdk["upload_throughput_mb_s"]
    paired_e2e = [s / c for c, s in zip(by_key(variants, "cli").wall, by_key(variants, "sdk_default").wall)]
    rss_ok = cli["peak_rss_mb_max"] <= TARGET_RSS_MB
    rss_put_ok = put["peak_rss_mb_max"] <= TARGET_RSS_MB
    tput_ok = ratio_e2e >= TARGET_RATIO
    up_ok = ratio_up >= TARGET_RATIO

    print()
    print(f"### Uploading a {size / 2**30:.2f} GiB wheel to Azurite: privpkg vs azure-storage-blob")
    print()
    print(f"privpkg {versions['privpkg']}" + (f" ({rev})" if rev else "")
          + f", azure-storage-blob {versions['azure-storage-blob']}, azure-core {versions['azure-core']}, "
          f"Azurite {AZURITE_VERSION} (node {run(['node', '--version']).stdout.strip()}), Python {platform.python_version()}; "
          f"{platform.machine()} x{os.cpu_count()}; file {size} bytes; {args.runs} rounds after {args.warmup} warm-up "
          f"round, variants interleaved in shuffled order, each upload its own process and a fresh container. "
          f"MB = 10^6 bytes. Process: wall time of the whole process as the caller waits (start-up and imports "
          f"included); upload: the upload call alone, timed in-process. Peak RSS: ru_maxrss of that process. "
          f"Load average (1/5/15 min) before {load_before}, after {load_after}.")
    print()
    print("| variant | process: median (min–max) | process MB/s | upload call | upload MB/s | peak RSS (max) | "
          "CPU | Azurite CPU |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for v in variants:
        st = stats[v.key]
        up = (f"{st['upload_median_s']:.2f} s | {st['upload_throughput_mb_s']:.0f}" if "upload_median_s" in st else "— | —")
        az = f"{st['azurite_cpu_median_s']:.1f} s" if st["azurite_cpu_median_s"] is not None else "—"
        print(f"| {st['label']} | {st['wall_median_s']:.2f} s ({st['wall_min_s']:.2f}–{st['wall_max_s']:.2f}) | "
              f"{st['throughput_mb_s']:.0f} | {up} | {st['peak_rss_mb_median']:.0f} MB ({st['peak_rss_mb_max']:.0f}) | "
              f"{st['cpu_median_s']:.1f} s | {az} |")
    print()
    print(f"privpkg API put, before the upload: imports {put.get('import_median_s', 0):.2f} s, validate_wheel "
          f"(zip check + sha256 of the file) {put.get('validate_median_s', 0):.2f} s, client + account key "
          f"{put.get('prepare_median_s', 0):.2f} s. SDK defaults: imports {sdk.get('import_median_s', 0):.2f} s.")
    print()
    print("| ratio (privpkg / SDK defaults) | value | target |")
    print("|---|---:|---|")
    print(f"| end to end: `privpkg wheel add` process vs SDK script process (throughput) | {ratio_e2e:.2f} "
          f"(paired median {statistics.median(paired_e2e):.2f}) | ≥ {TARGET_RATIO}: {'met' if tput_ok else '**MISSED**'} |")
    print(f"| upload only: `AzureStorage.put` vs `upload_blob` (in-process) | {ratio_up:.2f} | "
          f"≥ {TARGET_RATIO}: {'met' if up_ok else '**MISSED**'} |")
    print(f"| context: SDK with privpkg's settings vs SDK defaults (upload only) | {ratio_settings:.2f} | — |")
    print()
    print(f"Target: peak RSS of `privpkg wheel add` ≤ {TARGET_RSS_MB:g} MB: {'met' if rss_ok else '**MISSED**'} "
          f"(max {cli['peak_rss_mb_max']:.0f} MB; API put {put['peak_rss_mb_max']:.0f} MB, SDK defaults "
          f"{sdk['peak_rss_mb_max']:.0f} MB). Throughput ≥ {TARGET_RATIO}× the SDK's: "
          f"{'met' if tput_ok else '**MISSED**'} end to end ({ratio_e2e:.2f}), {'met' if up_ok else '**MISSED**'} "
          f"upload only ({ratio_up:.2f}).")
    note = busy_note(load_before, load_after, own=2.0)
    if note:
        print()
        print(note + " Linux counts tasks waiting on disk I/O in the load, and Azurite writes every upload to "
              "disk, so part of that load is this benchmark's own I/O (1-min load after each upload is in the JSON).")

    result = {
        "benchmark": "azure_upload",
        "when": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "source_revision": rev,
        "versions": {**versions, "azurite": AZURITE_VERSION},
        "file_bytes": size,
        "runs": args.runs,
        "warmup": args.warmup,
        "targets": {"peak_rss_mb": TARGET_RSS_MB, "throughput_ratio": TARGET_RATIO},
        "met": {"peak_rss": rss_ok, "throughput_end_to_end": tput_ok, "throughput_upload_only": up_ok,
                "peak_rss_api_put": rss_put_ok},
        "ratios": {"end_to_end": ratio_e2e, "end_to_end_paired_median": statistics.median(paired_e2e),
                   "upload_only": ratio_up, "sdk_privpkg_settings_vs_defaults": ratio_settings},
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "variants": stats,
        "samples": {v.key: {"wall_s": [round(x, 3) for x in v.wall], "upload_s": [round(x, 3) for x in v.upload],
                            "peak_rss_bytes": v.rss, "cpu_s": [round(x, 3) for x in v.cpu],
                            "azurite_cpu_s": [round(x, 2) for x in v.azurite_cpu], "child": v.extra,
                            "loadavg_1min_after": v.load}
                    for v in variants},
    }
    write_result(args.json, result)
    return 0


def by_key(variants: list[Variant], key: str) -> Variant:
    return next(v for v in variants if v.key == key)


if __name__ == "__main__":
    sys.exit(main())
