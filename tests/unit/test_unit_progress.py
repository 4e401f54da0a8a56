"""The upload progress bar (privpkg.publishing): called from the Azure SDK's upload threads, and
sometimes told about a retried block twice, it counts under a lock and never overshoots."""

from __future__ import annotations

import re
import threading

import pytest

from privpkg.publishing import _Bar


def test_bar_is_thread_safe_and_never_overshoots(capsys: pytest.CaptureFixture[str]) -> None:
    total = 8 * 1000 * 64
    bar = _Bar("w.whl", total)
    bar.enabled = True  # capsys' stderr is no terminal; the drawing is what is under test
    start = threading.Barrier(8)

    def upload() -> None:
        start.wait()
        for _ in range(1000):
            bar(64)
        for _ in range(100):
            bar(64)  # a retried block, reported again: more than the file has in all
        bar(-5)  # a hook that went backwards never counts down

    threads = [threading.Thread(target=upload) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bar.close()
    assert bar.done == total
    drawn = re.findall(r"(\d+)% ([\d.]+)/([\d.]+) MB", capsys.readouterr().err)
    assert drawn and drawn[-1][0] == "100"
    assert all(int(pct) <= 100 and float(done) <= float(size) for pct, done, size in drawn)
