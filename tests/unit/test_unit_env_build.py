"""The build cache's rules in-process (privpkg.environments.cache and build's pieces): the key is
made of the selected files and the interpreter only; prune spares a build in progress;
``--link`` replaces only a symlink."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from privpkg.environments import build, cache, pylock
from privpkg.errors import UsageError

PY = cache.Interpreter("cpython", "3.12.1 (main)", "linux-x86_64", "cpython-312-x86_64-linux-gnu", "/usr/bin/python3.12", "/usr/bin/python3.12")
A = pylock.Artifact("a", "1.0", "https://h/a-1.0-py3-none-any.whl", "a-1.0-py3-none-any.whl", "1" * 64, "wheel")
B = pylock.Artifact("b", "2.0", "privpkg://team/wheels/b-2.0-py3-none-any.whl", "b-2.0-py3-none-any.whl", "2" * 64, "wheel")


def test_key_is_the_selected_files_and_the_interpreter() -> None:
    assert cache.key([A, B], PY) == cache.key([B, A], PY)
    # The URL a file was locked from (pip's or uv's lock, a mirror) does not change the build.
    assert cache.key([A._replace(url="https://mirror/a.whl"), B], PY) == cache.key([A, B], PY)
    assert cache.key([A._replace(sha256="3" * 64), B], PY) != cache.key([A, B], PY)
    assert cache.key([A, B], PY._replace(version="3.12.2 (main)")) != cache.key([A, B], PY)
    assert cache.key([A, B], PY._replace(base="/opt/python3.12")) != cache.key([A, B], PY)
    assert cache.key([A], PY) != cache.key([A, B], PY)


def test_prune_spares_a_build_in_progress_and_removes_unreferenced_ones(isolated_privpkg: Path) -> None:
    key = "f" * 64
    with cache.new_build(key) as dest:
        dest.mkdir()
        dead = dest.parent / f"{key[:16]}-dead"
        dead.mkdir()  # a killed build: no lock held, no pointer
        assert cache.prune().builds == [dead.name]
        assert dest.is_dir()  # in progress: its lock is held
        cache.publish(key, dest)
    assert cache.lookup(key) == dest
    assert cache.prune().builds == [] and dest.is_dir()
    assert cache.prune(older_than_days=0).pointers == 1
    assert cache.lookup(key) is None and not dest.exists()


def test_link_replaces_only_a_symlink(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    link = tmp_path / "env"
    build.link_to(one, link)
    build.link_to(two, link)
    assert os.readlink(link) == str(two)
    real = tmp_path / "real"
    real.mkdir()
    with pytest.raises(UsageError, match="not a symbolic link"):
        build.link_to(one, real)
    assert real.is_dir() and not real.is_symlink()


def test_lock_for_picks_the_part_a_build_uses() -> None:
    from privpkg.environments.condalock import current_platform
    from privpkg.environments.spec import Spec

    conda_file = f"conda-{current_platform()}.txt"
    locks = {"pylock.toml": "P", conda_file: "C"}
    assert build.lock_for(Spec("t", pip=("a",)), locks, "t:1") == "P"
    assert build.lock_for(Spec("t", conda=("python",)), locks, "t:1") == "C"
    assert build.lock_for(Spec("t", conda=("python",), pip=("a",)), locks, "t:1") == build.Parts("C", "P")
    with pytest.raises(UsageError, match="t:1 has no pylock.toml for its pip part"):
        build.lock_for(Spec("t", conda=("python",), pip=("a",)), {conda_file: "C"}, "t:1")
    with pytest.raises(UsageError, match=f"no conda lock for {current_platform()}"):
        build.lock_for(Spec("t", conda=("python",)), {"pylock.toml": "P"}, "t:1")
    with pytest.raises(UsageError, match="no pylock.toml"):
        build.lock_for(Spec("t", pip=("a",)), {}, "t:1")


@pytest.mark.parametrize(("url", "why"), [
    ("http://pkgs.example/x-1.0-py3-none-any.whl", "https only"),
    ("https://pkgs.example/x-1.0-py3-none-any.whl?sv=1&sig=abc", "has a query"),
    ("file:///tmp/x-1.0-py3-none-any.whl", "only privpkg:// and http(s) URLs are fetched"),
])
def test_fetch_refuses_before_any_request(isolated_privpkg: Path, tmp_path: Path, url: str, why: str) -> None:
    from privpkg.environments.fetch import fetch_artifacts

    a = pylock.Artifact("x", "1.0", url, "x-1.0-py3-none-any.whl", "1" * 64, "wheel")
    with pytest.raises(UsageError, match=re.escape(why)) as err:
        fetch_artifacts([a], tmp_path / "wh")
    assert "sig=abc" not in str(err.value)
    assert list((tmp_path / "wh").iterdir()) == []


def test_prune_removes_only_a_killed_builds_scratch_folder(isolated_privpkg: Path) -> None:
    """A conda build's scratch folder (a full package cache) is locked from before it exists
    until it is gone: prune removes the one a SIGKILL left, never one in use, nor py-rattler's
    package cache beside them (``conda-pkgs``, which a running install uses with no scratch
    lock: prune emptied it every time)."""
    import subprocess
    import sys

    probe = ("import os, sys\nfrom privpkg.environments import cache\n"
             "with cache.scratch_dir('conda') as d:\n    (d / 'pkgs').mkdir()\n    print(d, flush=True)\n    os.kill(os.getpid(), 9)\n")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    left = Path(res.stdout.strip())
    assert res.returncode == -9 and left.is_dir(), res.stderr
    kept = cache.root() / "conda-pkgs" / "pkg-1.0-0" / "info"
    kept.mkdir(parents=True)
    with cache.scratch_dir("conda") as busy:
        cache.prune()
        assert busy.is_dir(), "a build's scratch in use stays"
        assert not left.exists(), "the killed build's scratch is removed"
        assert kept.is_dir(), "py-rattler's package cache stays"
    assert not busy.exists()
