"""privpkg.fileio's placing helpers, in-process: :func:`~privpkg.fileio.link_exclusive` (a new
file takes a name only if it is free, also where hard links are missing) and
:func:`~privpkg.fileio.replace_dir` (a directory swapped whole, the old one kept if the swap
fails), and the pip shim's copy and its removal, which use them under the setup lock."""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from privpkg import envvars, fileio
from privpkg.errors import PrivpkgError


def _no_hard_links(monkeypatch: pytest.MonkeyPatch) -> None:
    """``os.link`` as on a file system without hard links (FAT, some network mounts)."""

    def link(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", link)


def _rival_creates(monkeypatch: pytest.MonkeyPatch, dest: Path, won: list[bool]) -> None:
    """Another writer tries to create ``dest`` exclusively (``O_EXCL``) just before our rename:
    the instant between a "the name is free" check and the rename that a check cannot close."""
    real_replace = os.replace

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if Path(dst) == dest and not won:
            try:
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                won.append(False)
            else:
                os.write(fd, b"theirs\n")
                os.close(fd)
                won.append(True)
        real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def test_link_exclusive_places_a_file_once(tmp_path: Path) -> None:
    dest = tmp_path / "x-1.0-py3-none-any.whl"
    with fileio.temp_file(dest) as (fd, tmp):
        fileio.write_all(fd, b"first\n")
        assert fileio.link_exclusive(tmp, dest)
    with fileio.temp_file(dest) as (fd, tmp):
        fileio.write_all(fd, b"second\n")
        assert not fileio.link_exclusive(tmp, dest)
    assert dest.read_bytes() == b"first\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name]


def test_a_temp_file_beside_a_relative_path_is_named_absolutely(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As mkstemp's: the caller may rename it after a chdir."""
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    with fileio.temp_file(Path("sub") / "f") as (_, tmp):
        assert tmp.is_absolute() and tmp.parent == tmp_path / "sub", tmp


def test_link_exclusive_does_not_write_through_a_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("mine\n")
    dest = tmp_path / "key"
    dest.symlink_to(victim)
    with fileio.temp_file(dest) as (fd, tmp):
        fileio.write_all(fd, b"new\n")
        assert not fileio.link_exclusive(tmp, dest)
    assert dest.is_symlink() and victim.read_text() == "mine\n"


@pytest.mark.parametrize("how", ["link_exclusive", "create_exclusive"])
def test_without_hard_links_a_name_is_still_taken_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """Before, the no-hard-link fallback of create_exclusive checked that the name was free and
    then renamed over it: a file another writer created in between was replaced."""
    dest = tmp_path / "master.key"
    won: list[bool] = []
    _no_hard_links(monkeypatch)
    _rival_creates(monkeypatch, dest, won)
    if how == "create_exclusive":
        ours = fileio.create_exclusive(dest, b"ours\n")
    else:
        with fileio.temp_file(dest) as (fd, tmp):
            fileio.write_all(fd, b"ours\n")
            ours = fileio.link_exclusive(tmp, dest)
    assert won == [False] and ours, "exactly one writer may take the name"
    assert dest.read_bytes() == b"ours\n"
    # And a taken name stays taken.
    assert not fileio.create_exclusive(dest, b"later\n")
    assert dest.read_bytes() == b"ours\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name]


def test_local_storage_reports_a_real_link_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, local storage fell back to another way of placing the file on any error of
    ``link()`` (an I/O error included); only "no hard links here" may take the fallback."""
    from privpkg.publishing import file_digest
    from privpkg.storage.local import LocalStorage

    src = tmp_path / "x-1.0-py3-none-any.whl"
    src.write_bytes(b"wheel bytes")

    def link(a: Any, b: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "link", link)
    store = LocalStorage(tmp_path / "ws")
    with pytest.raises(PrivpkgError) as exc:
        store.put("wheels/" + src.name, src, file_digest(src).sha256)
    assert str(exc.value) == f"cannot create {tmp_path / 'ws' / 'wheels' / src.name}: Input/output error"
    assert sorted(p.name for p in (tmp_path / "ws" / "wheels").iterdir()) == []


def _fill(files: dict[str, str]) -> Callable[[Path], None]:
    def fill(folder: Path) -> None:
        for name, text in files.items():
            (folder / name).write_text(text)

    return fill


def test_replace_dir_swaps_the_whole_directory(tmp_path: Path) -> None:
    dest = tmp_path / "pkg"
    fileio.replace_dir(dest, _fill({"a.py": "1", "b.py": "1"}))
    fileio.replace_dir(dest, _fill({"a.py": "2"}))
    assert {p.name: p.read_text() for p in dest.iterdir()} == {"a.py": "2"}
    assert stat.S_IMODE(dest.stat().st_mode) == 0o777 & ~fileio.current_umask()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]


def test_replace_dir_keeps_the_old_directory_when_fill_fails(tmp_path: Path) -> None:
    dest = tmp_path / "pkg"
    fileio.replace_dir(dest, _fill({"a.py": "1"}))

    def fill(folder: Path) -> None:
        (folder / "a.py").write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(fileio.FileWriteError, match=f"^cannot replace {dest}: No space left on device$"):
        fileio.replace_dir(dest, fill)
    assert {p.name: p.read_text() for p in dest.iterdir()} == {"a.py": "1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]
    # A new directory that cannot be made is "cannot create", not "cannot replace" (-o /proc/x).
    with pytest.raises(fileio.FileWriteError, match=f"^cannot create {tmp_path / 'new'}: No space left on device$"):
        fileio.replace_dir(tmp_path / "new", fill)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]


def test_replace_dir_moves_a_planted_symlink_aside_without_following_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine\n")
    dest = tmp_path / "site" / "pkg"
    dest.parent.mkdir()
    dest.symlink_to(victim, target_is_directory=True)
    fileio.replace_dir(dest, _fill({"a.py": "1"}))
    assert not dest.is_symlink() and [p.name for p in dest.iterdir()] == ["a.py"]
    assert [p.name for p in victim.iterdir()] == ["keep.txt"]
    assert [p.name for p in dest.parent.iterdir()] == ["pkg"]


@pytest.fixture
def site(tmp_path: Path, isolated_privpkg: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site-packages folder that ``install_shim``/``uninstall_shim`` take for the target
    interpreter's (no interpreter is run)."""
    from privpkg import setup_pip

    folder = tmp_path / "site-packages"
    folder.mkdir()
    monkeypatch.setattr(setup_pip, "_interpreter", lambda python: (folder, None))  # not externally managed
    return folder


def test_failed_shim_reinstall_keeps_the_previous_copy(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, the previous copy was renamed aside and deleted even when renaming the new copy
    into place failed: the environment was left with a .pth and no shim."""
    from privpkg.setup_pip import SHIM_PACKAGE, SHIM_PTH, install_shim

    install_shim("python")
    before = {p.name: p.read_bytes() for p in (site / SHIM_PACKAGE).iterdir()}
    real_replace = os.replace

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if Path(dst) == site / SHIM_PACKAGE and Path(src).name.startswith(f".{SHIM_PACKAGE}.") and ".old." not in str(src):
            raise OSError(errno.EACCES, "Permission denied")
        real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(PrivpkgError, match="^cannot install the pip shim into "):
        install_shim("python")
    assert {p.name: p.read_bytes() for p in (site / SHIM_PACKAGE).iterdir()} == before
    assert sorted(p.name for p in site.iterdir()) == sorted([SHIM_PACKAGE, SHIM_PTH])


@pytest.mark.parametrize("action", ["install", "uninstall"])
def test_shim_copy_and_removal_wait_for_the_setup_lock(site: Path, monkeypatch: pytest.MonkeyPatch, action: str) -> None:
    """Before, ``setup pip --python`` and its ``--undo`` took no lock: two at once could remove
    a copy the other was putting in place."""
    from privpkg import paths, setup_pip

    setup_pip.install_shim("python")
    before = sorted(p.name for p in site.iterdir())
    monkeypatch.setenv(envvars.LOCK_TIMEOUT, "0.2")
    with fileio.file_lock(paths.config_dir() / "setup-pip.lock"):  # what `setup pip` (the config edit) holds
        with pytest.raises(fileio.LockTimeout):
            if action == "install":
                setup_pip.install_shim("python")
            else:
                setup_pip.uninstall_shim("python")
        assert sorted(p.name for p in site.iterdir()) == before
    assert setup_pip.uninstall_shim("python") == f"removed the pip shim from {site}"
    assert list(site.iterdir()) == []


def test_temp_files_are_random_private_and_never_follow_a_planted_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """:func:`~privpkg.fileio.temp_file` (without tempfile, a build's import cost): names of the
    form stale-temp cleanup reads, mode 0600, and a name someone planted a symlink at (here the
    first name drawn: ``os.urandom`` made predictable once) is skipped, its target untouched."""
    dest = tmp_path / "data.json"
    with fileio.temp_file(dest) as (fd, tmp):
        m = re.match(fileio._TEMP_RE, tmp.name)
        assert m and m.group("name") == "data.json" and int(m.group("pid")) == os.getpid()
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o600 and tmp.parent == tmp_path
    assert not tmp.exists()

    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    planted = tmp_path / f".data.json.{os.getpid()}.aaaaaaaa.tmp"
    planted.symlink_to(victim)
    real = os.urandom
    draws: list[int] = []

    def urandom(n: int) -> bytes:
        draws.append(n)
        return bytes(n) if len(draws) == 1 else real(n)

    monkeypatch.setattr(os, "urandom", urandom)
    with fileio.temp_file(dest) as (fd, tmp):
        os.write(fd, b"new\n")
        assert tmp != planted and len(draws) == 2
    assert victim.read_text() == "keep\n" and planted.is_symlink()
