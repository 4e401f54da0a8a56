"""``privpkg demo`` end to end: it must succeed on this machine and leave nothing running."""

from __future__ import annotations

import re
from pathlib import Path

from support.cli import PrivpkgCLI

from privpkg.testing import port_accepts


def test_demo_runs_and_cleans_up(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    res = privpkg_cli("demo", env={"TMPDIR": str(tmp_path)}, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "without a PAT it answers HTTP 401" in out
    assert "stored its PAT as connection 'demo-feed'" in out
    assert "Successfully installed privpkg-demo-hello-1.0" in out
    assert "the venv imports it: hello from a private feed" in out
    assert "the PAT appeared in pip's output: no" in out
    assert "demo succeeded" in out and "Traceback" not in out
    port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", out).group(1))  # type: ignore[union-attr]
    assert not port_accepts(port), "the demo feed is still running"
    assert not list(tmp_path.glob("privpkg-demo-*")), "the demo left its temp dir behind"
