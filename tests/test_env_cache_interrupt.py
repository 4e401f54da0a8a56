"""Ctrl-C while a build is being published (issue 10, item 5): a real SIGINT to a child process
that runs the cache's build-and-publish sequence as ``build.py`` does (``new_build`` then
``publish`` inside it), paused at the two moments that matter. The pause is made in the child,
by wrapping ``os.fsync`` / ``os.replace`` there: no hook in privpkg's code.

- paused in the pointer's fsync, before its rename: nothing is published, the build is removed
  (renamed aside first), no temp file is left among the pointers;
- paused after the rename (the folder's fsync): the build is published and complete, so it is
  kept, and the next lookup is a hit;
- a second Ctrl-C while the unpublished build is being removed: what is left is renamed aside
  (``.removing-*``), never half a build under its name, and prune removes it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from privpkg.environments import cache

KEY = "ab" * 32

#: The child: a build with one file, then publish; ``os.fsync`` (before the pointer's rename)
#: or ``os.replace`` (after it) pauses once publish has started, and says so in MARKER;
#: "twice": then ``shutil.rmtree`` pauses too (MARKER-2), for a second Ctrl-C.
CHILD = """
import os, shutil, signal, sys, time
from pathlib import Path
from privpkg.environments import cache

signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, whatever the runner set
moment, marker, key = sys.argv[1], Path(sys.argv[2]), sys.argv[3]

def pause(suffix=""):
    Path(str(marker) + suffix).write_text("paused")
    time.sleep(60)

real_fsync, real_replace = os.fsync, os.replace

def fsync(fd):
    real_fsync(fd)
    if moment in ("before-rename", "twice"):
        pause()

def replace(src, dst):
    real_replace(src, dst)
    if moment == "after-rename":
        pause()

real_rmtree = shutil.rmtree

def rmtree(path, *args, **kw):
    if moment == "twice":
        pause("-2")
    real_rmtree(path, *args, **kw)

shutil.rmtree = rmtree

with cache.new_build(key) as dest:
    (dest / "bin").mkdir(parents=True)
    (dest / "bin" / "python").write_text("complete")
    os.fsync, os.replace = fsync, replace
    try:
        cache.publish(key, dest)
    finally:
        os.fsync, os.replace = real_fsync, real_replace
print(dest.name)
"""


def interrupted(moment: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    marker = tmp_path / f"paused-{moment}"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, moment, str(marker), KEY], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for pause in [marker, *([Path(f"{marker}-2")] if moment == "twice" else [])]:
            deadline = time.monotonic() + 30
            while not pause.exists():
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, f"the child never reached {pause.name}"
                time.sleep(0.02)
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "KeyboardInterrupt" in err, err  # the child stopped there, by the signal
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def builds() -> list[str]:
    folder = cache.root() / "builds"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_ctrl_c_before_the_pointer_is_renamed_publishes_nothing(isolated_privpkg: Path, tmp_path: Path) -> None:
    interrupted("before-rename", tmp_path)
    assert cache.lookup(KEY) is None
    assert sorted(p.name for p in (cache.root() / "keys").iterdir()) == [], "no pointer, no temp pointer"
    assert builds() == [], "the unpublished build is removed"


def test_ctrl_c_after_the_pointer_is_renamed_keeps_the_published_build(isolated_privpkg: Path, tmp_path: Path) -> None:
    interrupted("after-rename", tmp_path)
    found = cache.lookup(KEY)
    assert found is not None and (found / "bin" / "python").read_text() == "complete", builds()
    assert builds() == [found.name]
    assert cache.prune().builds == [], "and it is no stray for prune"
    assert cache.lookup(KEY) == found


def test_a_second_ctrl_c_during_the_removal_leaves_no_half_build_under_its_name(isolated_privpkg: Path, tmp_path: Path) -> None:
    interrupted("twice", tmp_path)
    assert cache.lookup(KEY) is None
    left = builds()
    assert len(left) == 1 and left[0].startswith(".removing-"), left
    assert cache.prune().builds == [] and builds() == [], "prune finishes the removal"
