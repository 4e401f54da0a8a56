"""``privpkg resolve --wheelhouse`` in-process: what OUT keeps as written and what it pins, with a
local workspace (the storage kinds and the installers are in tests/test_wheelhouse.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from privpkg.resolve import logical_blocks
from privpkg.testing import make_wheel
from privpkg.wheelhouse import build
from privpkg.wheels import add_private_wheel
from privpkg.workspace import Workspace, add_workspace, get_workspace


def test_logical_blocks_keep_the_physical_lines() -> None:
    text = "a \\\n  b  # c\n# only a comment \\\nx==1 --hash=sha256:00 \\\n# ends it\n\nlast \\"
    blocks = logical_blocks(text)
    assert [(b.number, b.raw, b.text) for b in blocks] == [
        (1, ("a \\", "  b  # c"), "a   b"),
        (3, ("# only a comment \\",), ""),
        (4, ("x==1 --hash=sha256:00 \\", "# ends it"), "x==1 --hash=sha256:00"),
        (6, ("",), ""),
        (7, ("last \\",), "last"),
    ]


def test_only_privpkg_lines_change(isolated_privpkg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add_workspace(Workspace("team", "local", str(tmp_path / "ws")))
    wheel = make_wheel(tmp_path / "dist", "my-lib", "1.0")
    url = add_private_wheel(get_workspace("team"), wheel)
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    monkeypatch.setenv("TEAM", "team")
    req = tmp_path / "requirements.txt"
    kept = [
        "# top comment",
        "--index-url https://${FEED_USER}@feed.example/simple/   # expanded by pip, not by privpkg",
        "requests==2.32.0 \\",
        "    --hash=sha256:" + "a" * 64,
        "-e ./local/pkg",
        "",
    ]
    req.write_text("\n".join([*kept[:4], f"my-lib @ privpkg://${{TEAM}}/wheels/{wheel.name} \\", f"  --hash=sha256:{sha}", *kept[4:]]))
    house, out = tmp_path / "house", tmp_path / "out.txt"
    done = build(req, house, out)
    assert (done.pinned, done.downloaded) == (1, 1)
    lines = out.read_text().splitlines()
    assert lines[0].startswith("# written by privpkg resolve --wheelhouse")
    pinned = f"my-lib @ {(house.resolve() / wheel.name).as_uri()}#sha256={sha} --hash=sha256:{sha}"
    assert lines[1:] == [*kept[:4], pinned, kept[4]]
    assert url == f"privpkg://team/wheels/{wheel.name}"
    # Again: nothing to download, the same OUT.
    before = out.read_bytes()
    assert build(req, house, out).downloaded == 0 and out.read_bytes() == before
