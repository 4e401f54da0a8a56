"""``setup pip``'s second file, in-process: privpkg's own environment's ``pip.conf`` (where it is,
and which interpreter, are monkeypatched to temp paths; the real files are covered by
tests/test_pip_matrix.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from privpkg import paths, setup_pip
from privpkg.fileio import FileWriteError


@pytest.fixture
def confs(isolated_privpkg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    user, env = tmp_path / "user" / "pip.conf", tmp_path / "venv" / "pip.conf"
    env.parent.mkdir()
    monkeypatch.setattr(setup_pip, "pip_user_config", lambda: user)
    monkeypatch.setattr(setup_pip, "pip_env_config", lambda: env)
    return user, env


def test_a_setup_from_before_gets_the_environment_file_added(confs: tuple[Path, Path]) -> None:
    """The record an older privpkg wrote (one edit, unwrapped) is kept and added to, so the next
    `setup pip` writes only the environment's file and one --undo takes both back."""
    user, env = confs
    user.parent.mkdir()
    user.write_text("[global]\nkeyring-provider = subprocess\n")
    legacy = {"path": str(user.resolve()), "value": "subprocess", "previous": None, "previous_line": None,
              "created_file": True, "created_section": True, "added_eol": False}
    (paths.config_dir() / "setup-pip.json").write_text(json.dumps(legacy))
    assert setup_pip.setup_pip().splitlines() == [
        f"keyring-provider is already subprocess in {user}; nothing changed",
        f"set keyring-provider = import in {env} (pip from privpkg's own environment skips the keyring CLI next to it)",
    ]
    assert env.read_text() == "[global]\nkeyring-provider = import\n"
    assert setup_pip.undo_setup_pip().splitlines() == [f"removed {env} (privpkg had created it)", f"removed {user} (privpkg had created it)"]
    assert not env.exists() and not user.exists()


def test_undo_touches_neither_file_when_one_was_changed(confs: tuple[Path, Path]) -> None:
    user, env = confs
    env.write_bytes(b"[global]\r\nkeyring_provider = subprocess\r\n")
    setup_pip.setup_pip()
    assert env.read_bytes() == b"[global]\r\nkeyring-provider = import\r\n"
    user.write_text(user.read_text().replace("subprocess", "disabled"))
    before = user.read_bytes(), env.read_bytes()
    with pytest.raises(setup_pip.PrivpkgError, match=f"keyring-provider in {user} was changed since privpkg set it"):
        setup_pip.undo_setup_pip()
    assert (user.read_bytes(), env.read_bytes()) == before


def test_an_environment_file_that_cannot_be_written_is_a_warning(confs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A system Python's prefix the user cannot write: the user's file is still set (and undone).
    The failure is injected into privpkg's writer, because these tests run as root, for whom a
    read-only folder is writable."""
    user, env = confs
    real = setup_pip.write_atomic

    def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
        if Path(path) == env:
            raise FileWriteError(f"cannot write {path}: permission denied; it was left as it was")
        real(path, data, mode)

    monkeypatch.setattr(setup_pip, "write_atomic", write_atomic)
    lines = setup_pip.setup_pip().splitlines()
    assert lines == [f"set keyring-provider = subprocess in {user}",
                     (f"warning: cannot write {env}: permission denied; it was left as it was; "
                     "pip from privpkg's own environment then needs --keyring-provider import")]
    assert not env.exists()
    monkeypatch.setattr(setup_pip, "write_atomic", real)
    assert setup_pip.undo_setup_pip() == f"removed {user} (privpkg had created it)"
    assert not user.exists()


@pytest.mark.parametrize("original", [
    b"# site settings\r\n[global]\r\ntimeout = 30\r\nkeyring-provider = subprocess",  # CRLF, no final newline, a value
    b"[install]\nno-compile = true\n",  # no [global] section yet
    b"[install]\r\nno-compile = true",  # no [global] section and no final newline
])
def test_undo_restores_an_existing_environment_file_byte_for_byte(confs: tuple[Path, Path], original: bytes) -> None:
    """A venv's pip.conf that existed before setup (an admin's settings) comes back exactly:
    comments, line endings, the missing final newline, the value setup replaced."""
    user, env = confs
    env.write_bytes(original)
    setup_pip.setup_pip()
    assert env.read_bytes() != original and b"keyring-provider = import" in env.read_bytes()
    setup_pip.undo_setup_pip()
    assert env.read_bytes() == original
    assert not user.exists()
