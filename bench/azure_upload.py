#!/usr/bin/env python
"""Benchmark: uploading a 1 GiB wheel to Azurite with privpkg versus azure-storage-blob itself.

Targets: ``privpkg wheel add`` of a 1 GiB wheel to Azurite peaks at most 100 MB of resident
memory, and its throughput is at least 0.9x that of azure-storage-blob's own ``upload_blob`` of
the same file, measured in the same run.

    python bench/azure_upload.py                # the README's numbers: 1 GiB, 1 warm-up + 3 rounds
    python bench/azure_upload.py --size-mib 32 --runs 1 --warmup 0      # a smoke test

Timed by hand: hyperfine and pyperf give no peak RSS of one process, and every upload needs a
fresh container made before it. Run it with the dev venv (privpkg[azure]); it needs node and
npm (Azurite is npm-installed into .cache/azurite-npm when missing). It writes one valid wheel
(a ZIP_STORED, ZIP64 data file of random bytes), starts Azurite on a free loopback port with
its data in a temp dir, stores one AzureBlob connection (the well-known development key) in a
throwaway PRIVPKG_HOME, and runs, each in its own process and into a fresh container, with the
order alternating every round:

    privpkg wheel add   ``python -m privpkg wheel add BIG.whl --workspace az-N``: what the user
                        waits for, validation and the sha256 of the whole file included
    SDK upload_blob     ``BlobClient(...).upload_blob(open(f, "rb"), overwrite=True)`` with the
                        SDK's defaults (Azurite needs api_version="2025-11-05"): the reference

Per process: wall time as the caller waits (throughput = file size / wall), and peak RSS and
CPU from ``os.wait4``; the SDK's upload call alone is timed in-process too. Every upload is
checked (blob size; privpkg's recorded sha256). MB = 10^6 bytes. Linux or macOS (os.wait4).
"""

from __future__ import annotations

import argparse
import hashlib
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    AZURITE_ACCOUNT,
    AZURITE_API_VERSION,
    AZURITE_KEY,
    AZURITE_VERSION,
    busy_note,
    clean_env,
    install_azurite,
    log,
    make_wheel,
    run,
    start_azurite,
    write_result,
)

from privpkg import refs

TARGET_RSS_MB = 100.0
TARGET_RATIO = 0.9
MB = 1e6

_SDK_UPLOAD = r"""
import json, sys, time
from azure.storage.blob import BlobClient
endpoint, container, blob, path, account, key, api = sys.argv[1:8]
client = BlobClient(endpoint, container, blob, credential={"account_name": account, "account_key": key}, api_version=api)
t = time.perf_counter()
with open(path, "rb") as fh:
    client.upload_blob(fh, overwrite=True)
print(json.dumps({"upload_s": time.perf_counter() - t}))
"""


def write_big_wheel(directory: Path, size: int) -> tuple[Path, str]:
    """The shared wheel maker's ``benchbig-1.0`` with ``size`` random bytes; returns it and its sha256."""
    path = make_wheel(directory, "benchbig", "1.0", payload_size=size)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return path, digest.hexdigest()


def timed(cmd: list[Any], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Run ``cmd``; its wall time as the caller waits, and that one child's CPU time and peak RSS."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        code, stdout, stderr = os.waitstatus_to_exitcode(status), out.read().decode(), err.read().decode(errors="replace")
    if code != 0:
        raise SystemExit(f"exit {code}: {cmd[:4]}…\n{stdout}{stderr[-3000:]}")
    rss = ru.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_bytes": rss, "stdout": stdout}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024, help="size of the data file in the wheel (default 1024)")
    ap.add_argument("--runs", type=int, default=3, help="timed rounds (default 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    ap.add_argument("--workdir", type=Path, default=None, help="where the file and Azurite's data go (default: the temp dir)")
    args = ap.parse_args(argv)
    try:
        from azure.storage.blob import BlobServiceClient
    except ImportError as exc:
        raise SystemExit(f"run this with an interpreter that has privpkg[azure]: {exc}") from None
    from importlib.metadata import version

    versions = {d: version(d) for d in ("privpkg", "azure-storage-blob", "azure-core")}
    size_data = args.size_mib << 20
    base = Path(args.workdir or tempfile.gettempdir())
    need = size_data * (2 * (args.runs + args.warmup) + 1) + (2 << 30)  # the file, every upload until Azurite's GC, margin
    if shutil.disk_usage(base).free < need:
        raise SystemExit(f"not enough disk space in {base}: need {need / 2**30:.1f} GiB (Azurite frees deleted blobs only "
                         "on its periodic GC); fewer --runs, a smaller --size-mib or another --workdir")

    samples: dict[str, list[dict[str, Any]]] = {"cli": [], "sdk": []}
    with tempfile.TemporaryDirectory(prefix="privpkg-bench-azure-", dir=base) as tmp:
        work = Path(tmp)
        env = clean_env(work)  # HOME, XDG dirs and PRIVPKG_HOME in work
        log(f"writing a {args.size_mib} MiB wheel")
        big, sha = write_big_wheel(work, size_data)
        size = big.stat().st_size
        azurite = start_azurite(install_azurite(), work / "azurite")
        endpoint = azurite.endpoint
        try:
            svc = BlobServiceClient(endpoint, credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY},
                                    api_version=AZURITE_API_VERSION)
            py = sys.executable
            run([py, "-m", "privpkg", "connection", "set", "bench-azurite", "--category", "AzureBlob", "--target", endpoint],
                input=AZURITE_KEY + "\n", env=env, cwd=work)
            load = os.getloadavg()[0]
            key = refs.key_for(refs.WHEELS, big.name)
            for i in range(args.warmup + args.runs):
                for v in ("cli", "sdk") if i % 2 == 0 else ("sdk", "cli"):
                    container = f"bench-{i}-{v}-{secrets.token_hex(3)}"
                    svc.create_container(container)
                    if v == "cli":
                        run([py, "-m", "privpkg", "workspace", "add", f"az-{container}", "--azure", f"{endpoint}/{container}"],
                            env=env, cwd=work)
                        cmd: list[Any] = [py, "-m", "privpkg", "wheel", "add", big, "--workspace", f"az-{container}"]
                    else:
                        cmd = [py, "-c", _SDK_UPLOAD, endpoint, container, key, big, AZURITE_ACCOUNT, AZURITE_KEY,
                               AZURITE_API_VERSION]
                    r = timed(cmd, env, work)
                    last = r.pop("stdout").strip().splitlines()[-1]
                    if v == "cli" and last != refs.url_for(f"az-{container}", refs.WHEELS, big.name):
                        raise SystemExit(f"wheel add printed {last!r}")
                    if v == "sdk":
                        r.update(json.loads(last))
                    props = svc.get_blob_client(container, key).get_blob_properties()
                    if props.size != size or (v == "cli" and (props.metadata or {}).get("sha256") != sha):
                        raise SystemExit(f"{v}: the blob has {props.size} bytes (file {size}), metadata {props.metadata}")
                    svc.delete_container(container)
                    log(f"  round {i + 1}{' (warm-up)' if i < args.warmup else ''} {v}: {r['wall_s']:.1f} s, "
                        f"{size / MB / r['wall_s']:.0f} MB/s, peak RSS {r['peak_rss_bytes'] / MB:.0f} MB")
                    if i >= args.warmup:
                        samples[v].append(r)
        finally:
            azurite.stop()

    stats: dict[str, dict[str, float]] = {}
    for v, rows in samples.items():
        wall = statistics.median(r["wall_s"] for r in rows)
        stats[v] = {"wall_median_s": wall, "throughput_mb_s": size / MB / wall, "cpu_median_s": statistics.median(r["cpu_s"] for r in rows),
                    "peak_rss_mb_max": max(r["peak_rss_bytes"] for r in rows) / MB}
    stats["sdk"]["upload_call_median_s"] = statistics.median(r["upload_s"] for r in samples["sdk"])
    cli, sdk = stats["cli"], stats["sdk"]
    ratio = cli["throughput_mb_s"] / sdk["throughput_mb_s"]
    paired = sorted(s["wall_s"] / c["wall_s"] for c, s in zip(samples["cli"], samples["sdk"]))
    rss_ok, tput_ok = cli["peak_rss_mb_max"] <= TARGET_RSS_MB, ratio >= TARGET_RATIO
    resolved = min(paired) >= TARGET_RATIO or max(paired) < TARGET_RATIO

    print(f"\n### Uploading a {size / 2**30:.2f} GiB wheel to Azurite: privpkg vs azure-storage-blob\n")
    print(f"privpkg {versions['privpkg']}, azure-storage-blob {versions['azure-storage-blob']}, azure-core "
          f"{versions['azure-core']}, Azurite {AZURITE_VERSION}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
          f"{args.runs} rounds after {args.warmup} warm-up, order alternating, each upload its own process and a fresh "
          "container. Wall: the whole process as the caller waits; peak RSS: ru_maxrss of that process. MB = 10^6 bytes.\n")
    print("| variant | wall (median) | MB/s | peak RSS (max) | CPU |\n|---|---:|---:|---:|---:|")
    for v, label in (("cli", "`privpkg wheel add` (validate + sha256 + upload)"), ("sdk", "SDK `upload_blob`, defaults")):
        st = stats[v]
        print(f"| {label} | {st['wall_median_s']:.2f} s | {st['throughput_mb_s']:.0f} | {st['peak_rss_mb_max']:.0f} MB | "
              f"{st['cpu_median_s']:.1f} s |")
    print(f"\nThe SDK's upload call alone (in-process): {sdk['upload_call_median_s']:.2f} s, "
          f"{size / MB / sdk['upload_call_median_s']:.0f} MB/s.")
    print(f"\nTargets: peak RSS of `privpkg wheel add` ≤ {TARGET_RSS_MB:g} MB: {'met' if rss_ok else '**MISSED**'} "
          f"({cli['peak_rss_mb_max']:.0f} MB); throughput ≥ {TARGET_RATIO}x the SDK's: {'met' if tput_ok else '**MISSED**'} "
          f"({ratio:.2f}x; per round {paired[0]:.2f} … {paired[-1]:.2f}"
          + ("" if resolved else ", not resolved: the rounds fall on both sides of the target") + ").")
    print(busy_note(load, own=2.0))
    write_result("azure_upload", {
        "versions": {**versions, "azurite": AZURITE_VERSION}, "file_bytes": size, "runs": args.runs, "warmup": args.warmup,
        "targets": {"peak_rss_mb": TARGET_RSS_MB, "throughput_ratio": TARGET_RATIO},
        "met": {"peak_rss": rss_ok, "throughput": tput_ok}, "resolved": resolved, "throughput_ratio": ratio,
        "throughput_ratio_per_round": paired, "variants": stats, "samples": samples})
    return 0


if __name__ == "__main__":
    sys.exit(main())
