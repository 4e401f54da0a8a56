"""pip.conf editing in-process: ``setup pip`` changes one line and ``--undo`` restores the file
byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from privpkg.errors import PrivpkgError
from privpkg.setup_pip import setup_pip, undo_setup_pip


@pytest.mark.parametrize(
    "before",
    [
        "",  # no file at all (see below)
        "[install]\nno-binary = :none:",
        "[global]\nindex-url = https://example.com/simple/\n\n[install]\nuser = false\n",
        "[global]\nkeyring_provider = import\n",
    ],
)
def test_setup_then_undo_restores_the_file(isolated_privpkg: Path, tmp_path: Path, before: str) -> None:
    conf = tmp_path / "pip" / "pip.conf"
    if before:
        conf.parent.mkdir()
        conf.write_text(before)
    assert "keyring-provider = subprocess" in setup_pip("subprocess", str(conf))
    text = conf.read_text()
    assert "keyring-provider = subprocess\n" in text and text.count("keyring") == 1
    assert "[global]" in text and all(line in text for line in before.splitlines() if "keyring" not in line)
    assert "already" in setup_pip("subprocess", str(conf))
    undo_setup_pip(str(conf))
    assert (conf.read_text() if before else conf.exists()) == (before or False)
    with pytest.raises(PrivpkgError, match="nothing to undo"):
        undo_setup_pip(str(conf))


def test_undo_leaves_a_value_changed_since(isolated_privpkg: Path, tmp_path: Path) -> None:
    conf = tmp_path / "pip.conf"
    setup_pip("subprocess", str(conf))
    conf.write_text(conf.read_text().replace("subprocess", "import"))
    with pytest.raises(PrivpkgError, match="was changed since privpkg set it"):
        undo_setup_pip(str(conf))
    assert "keyring-provider = import" in conf.read_text()
