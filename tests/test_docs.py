"""The README's Quickstart is what CI runs, and its commands are real."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quickstart() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(?:sh|bash|console)?\n(.*?)\n```", section, re.DOTALL)


def test_quickstart_is_two_commands() -> None:
    blocks = _quickstart()
    assert len(blocks) == 2, blocks
    assert all(len(b.strip().splitlines()) == 1 for b in blocks), blocks
    assert "privpkg demo" in blocks[0]
    assert "pytest" in blocks[1]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert _quickstart()[1].strip() in ci.splitlines()
