"""``privpkg connection test`` verdicts: probe.VERDICTS is the one list of words; README's table
explains each and the probe's messages start with one of them."""

from __future__ import annotations

import re
from pathlib import Path

from privpkg import probe

REPO = Path(__file__).resolve().parents[2]


def test_readme_table_explains_every_verdict() -> None:
    text = (REPO / "README.md").read_text()
    lines = text[text.index("| verdict | meaning |"):].splitlines()[2:]
    # The verdict table only: it ends at its first line that is not a row (later tables have
    # rows starting with a code span too).
    table = lines[:next((i for i, line in enumerate(lines) if not line.startswith("|")), len(lines))]
    rows = [line.split("|")[1] for line in table if line.startswith("| `")]
    assert sorted(m for row in rows for m in re.findall(r"`([A-Z][A-Z -]*)`", row)) == sorted(probe.VERDICTS)


def test_every_message_starts_with_a_verdict() -> None:
    source = Path(probe.__file__).read_text()
    used = set(re.findall(r"""Verdict\((?:True|False), f?"([A-Z][A-Z -]*[A-Z]):""", source))
    used |= set(re.findall(r"""return (?:True|False), f?"([A-Z][A-Z -]*[A-Z]):""", source))
    assert used == set(probe.VERDICTS), sorted(used ^ set(probe.VERDICTS))
