"""The read-only-home hint of the CLI's error line (``paths.unwritable_hint``): given for a write
that failed under one of privpkg's folders, never for a file privpkg could not read, where moving
the folder would only start a new key beside the old store. In process: the errors are raised
by a stand-in command, since root (the test runner) reads every file whatever its mode."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from privpkg import cli, envvars
from privpkg.errors import PrivpkgError
from privpkg.fileio import FileWriteError

HINT = "is not writable here: set XDG_CONFIG_HOME (this folder only) or PRIVPKG_HOME (all of privpkg's files) to a writable folder"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in (envvars.HOME, "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".config" / "privpkg").mkdir(parents=True)
    (tmp_path / ".config" / "privpkg" / "master.key").write_bytes(b"k" * 32)
    return tmp_path


def _line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], exc: BaseException) -> str:
    def command(argv: object) -> int:
        raise exc

    monkeypatch.setattr(cli, "_run", command)
    assert cli.main(["doctor"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    return line


def test_a_folder_that_could_not_be_created_gets_the_hint(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    folder = home / ".config" / "privpkg" / "setup"
    line = _line(monkeypatch, capsys, PermissionError(errno.EACCES, "Permission denied", str(folder)))
    assert line.endswith(f"; {home / '.config' / 'privpkg'} {HINT}"), line
    line = _line(monkeypatch, capsys, FileWriteError(f"cannot write {folder}: Permission denied", errno.EACCES))
    assert line.endswith(f"; {home / '.config' / 'privpkg'} {HINT}"), line


def test_a_file_that_could_not_be_read_gets_no_hint(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    key = home / ".config" / "privpkg" / "master.key"
    line = _line(monkeypatch, capsys, PermissionError(errno.EACCES, "Permission denied", str(key)))
    assert line == f"privpkg: error: Permission denied: {key}", line
    read = PrivpkgError(f"cannot read the key file {key}: Permission denied")
    read.errno = errno.EACCES  # type: ignore[attr-defined]  # a read error that carries an errno
    assert _line(monkeypatch, capsys, read) == f"privpkg: error: cannot read the key file {key}: Permission denied"
