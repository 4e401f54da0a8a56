"""The running interpreter's wheel tags are remembered in the build cache (a build of a lock with
binary wheels skipped packaging's imports and ``sys_tags()``, a quarter of its own work): the
remembered copy equals packaging's, is read instead of computed, is computed again when it cannot
be read, and is kept apart for another packaging version or interpreter identity."""

from __future__ import annotations

from pathlib import Path

import packaging
import pytest

from privpkg import envvars
from privpkg.environments import cache, pylock


def test_tags_are_remembered_per_interpreter_and_packaging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(envvars.HOME, str(tmp_path))
    real = pylock.Target.current_tags()
    assert cache.current_tags() == real
    (kept,) = (cache.root() / "tags").glob("*.json")

    def boom() -> tuple[str, ...]:
        raise AssertionError("computed again")

    monkeypatch.setattr(pylock.Target, "current_tags", staticmethod(boom))
    assert cache.current_tags() == real  # read, not computed

    kept.write_text("{not json")
    monkeypatch.setattr(pylock.Target, "current_tags", staticmethod(lambda: real))
    assert cache.current_tags() == real  # unreadable: computed and written again
    assert kept.read_text().startswith('["')

    monkeypatch.setattr(packaging, "__version__", "0.0.0-other")
    monkeypatch.setattr(pylock.Target, "current_tags", staticmethod(lambda: ("py3-none-any",)))
    assert cache.current_tags() == ("py3-none-any",)
    assert len(list((cache.root() / "tags").glob("*.json"))) == 2

    other = cache.interpreter(None)._replace(version="3.99.0 (other build)")
    monkeypatch.setattr(cache, "interpreter", lambda python=None: other)
    monkeypatch.setattr(pylock.Target, "current_tags", staticmethod(lambda: ("cp399-cp399-linux_x86_64", "py3-none-any")))
    assert cache.current_tags() == ("cp399-cp399-linux_x86_64", "py3-none-any")
    assert len(list((cache.root() / "tags").glob("*.json"))) == 3


def test_a_cache_that_cannot_be_written_still_gives_the_tags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(envvars.HOME, str(tmp_path))
    cache.root().mkdir(parents=True)
    (cache.root() / "tags").write_text("a file where the folder should be")
    assert cache.current_tags() == pylock.Target.current_tags()


def test_select_uses_the_given_tags(tmp_path: Path) -> None:
    """A build's selection asks ``current_tags`` (the cache's copy) for a lock whose wheels need them."""
    text = pylock.dump(pylock.load(
        'lock-version = "1.0"\ncreated-by = "t"\n\n[[packages]]\nname = "p"\nversion = "1.0"\n\n'
        '[[packages.wheels]]\nurl = "https://example.org/p-1.0-cp399-cp399-linux_x86_64.whl"\nhashes = { sha256 = "' + "a" * 64 + '" }\n\n'
        '[[packages.wheels]]\nurl = "https://example.org/p-1.0-py3-none-any.whl"\nhashes = { sha256 = "' + "b" * 64 + '" }\n'))
    lock = pylock.load(text)
    asked = []

    def tags() -> tuple[str, ...]:
        asked.append(1)
        return ("cp399-cp399-linux_x86_64", "py3-none-any")

    (chosen,) = lock.select(current_tags=tags)
    assert asked and chosen.filename == "p-1.0-cp399-cp399-linux_x86_64.whl"
    (chosen,) = lock.select()
    assert chosen.filename == "p-1.0-py3-none-any.whl"  # this interpreter is not cp399


def test_a_build_selects_with_the_caches_tags(monkeypatch: pytest.MonkeyPatch) -> None:
    from privpkg.environments import build

    text = ('lock-version = "1.0"\ncreated-by = "t"\n\n[[packages]]\nname = "p"\nversion = "1.0"\n\n'
            '[[packages.wheels]]\nurl = "https://example.org/p-1.0-cp399-cp399-linux_x86_64.whl"\nhashes = { sha256 = "' + "a" * 64 + '" }\n')
    monkeypatch.setattr(cache, "current_tags", lambda: ("cp399-cp399-linux_x86_64",))
    (chosen,) = build._select(text, cache.interpreter(None), True)
    assert chosen.filename == "p-1.0-cp399-cp399-linux_x86_64.whl"


WHEEL = '\n[[packages.wheels]]\nurl = "https://example.org/p-1-py3-none-any.whl"\nhashes = { sha256 = "' + "c" * 64 + '" }\n'


@pytest.mark.parametrize("version", ["1", "1.0rc", "2.9.0.post0", "2024.8.30", "1.0rc1", "1.0a2.post3.dev4", "1!2.0", "1.0+local", "1.0-post1", "1.0C1"])
def test_versions_pass_with_or_without_packaging(version: str) -> None:
    """Normal-form versions are taken without importing packaging; others are still asked of it."""
    lock = pylock.load(f'lock-version = "1.0"\ncreated-by = "t"\n\n[[packages]]\nname = "p"\nversion = "{version}"\n' + WHEEL)
    assert lock.packages[0].version == version


@pytest.mark.parametrize("version", ["1.0 ", "1.0;x", "v 1", "1..0", "-r x", "1.0-"])
def test_versions_that_are_not_pep_440_are_refused(version: str) -> None:
    with pytest.raises(Exception, match="is not a version"):
        pylock.load(f'lock-version = "1.0"\ncreated-by = "t"\n\n[[packages]]\nname = "p"\nversion = "{version}"\n' + WHEEL)


def test_a_builds_selection_of_binary_wheels_imports_no_packaging_once_tags_are_kept(tmp_path: Path) -> None:
    """The point of keeping the tags: a build's second selection of platform wheels (and a
    post-release version) imports none of packaging's modules but its version string."""
    import os
    import subprocess
    import sys

    tag = pylock.Target.current_tags()[0]
    text = ('lock-version = "1.0"\ncreated-by = "t"\n\n[[packages]]\nname = "p"\nversion = "2.9.0.post0"\n\n'
            f'[[packages.wheels]]\nurl = "https://example.org/p-2.9.0.post0-{tag}.whl"\nhashes = {{ sha256 = "' + "a" * 64 + '" }\n')
    probe = ("import sys\nfrom privpkg.environments import build, cache\n"
             f"arts = build._select({text!r}, cache.interpreter(None), True)\n"
             "print([a.filename for a in arts], sorted(m for m in sys.modules if m.startswith('packaging')))\n")
    env = {**os.environ, envvars.HOME: str(tmp_path)}
    first = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env).stdout
    assert "packaging.tags" in first  # computed once
    second = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env).stdout
    assert second.strip() == f"['p-2.9.0.post0-{tag}.whl'] ['packaging']"


def test_the_memo_holds_the_machine_facts_tags_depend_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache shared by machines (an NFS home) with the same interpreter and another C library:
    the memo (lock -> key) differs, so a hit never skips the other machine's selection."""
    import os

    interp = cache.interpreter(None)
    here = cache.memo_id("lock text", interp)
    assert cache.memo_id("lock text", interp) == here
    monkeypatch.setattr(os, "confstr", lambda name: "glibc 2.17")
    assert cache.memo_id("lock text", interp) != here
    monkeypatch.undo()
    real = os.uname()
    monkeypatch.setattr(os, "uname", lambda: os.uname_result((real.sysname, real.nodename, real.release, real.version, real.machine + "-other")))
    assert cache.memo_id("lock text", interp) != here
    # A new kernel: on Linux packaging reads the C library, not the kernel, so the memo stays.
    monkeypatch.setattr(os, "uname", lambda: os.uname_result((real.sysname, real.nodename, real.release + "-new", real.version + " new", real.machine)))
    assert (cache.memo_id("lock text", interp) == here) == (real.sysname == "Linux")


def test_no_tags_are_kept_where_packaging_asks_more(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On Linux with no GNU libc (musl), or with a PEP 600 ``_manylinux`` module on the path,
    the tags are worked out every time."""
    import os
    import sys

    from packaging import _manylinux

    # packaging 26 remembers the module it found (or that there was none) for the process's life:
    # forgotten before and after, so neither this test nor a later one in the same worker sees
    # the other's answer (a later test's sys_tags() lacked manylinux1).
    forget = getattr(_manylinux, "_get_manylinux_module", None)
    forget = getattr(forget, "cache_clear", lambda: None)
    forget()
    monkeypatch.setenv(envvars.HOME, str(tmp_path))
    monkeypatch.setattr(sys, "platform", "linux")
    (tmp_path / "mod").mkdir()
    (tmp_path / "mod" / "_manylinux.py").write_text("manylinux1_compatible = False\n")
    monkeypatch.syspath_prepend(str(tmp_path / "mod"))
    try:
        assert cache.current_tags() == pylock.Target.current_tags()
    finally:
        sys.path.remove(str(tmp_path / "mod"))
        sys.modules.pop("_manylinux", None)
        forget()
    assert not (cache.root() / "tags").exists()
    monkeypatch.setattr(os, "confstr", lambda name: None)  # musl: no GNU libc version
    assert cache.current_tags() == pylock.Target.current_tags()
    assert not (cache.root() / "tags").exists()
    monkeypatch.undo()
    monkeypatch.setenv(envvars.HOME, str(tmp_path))
    cache.current_tags()
    assert list((cache.root() / "tags").glob("*.json"))


def test_prune_removes_the_kept_tags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(envvars.HOME, str(tmp_path))
    cache.current_tags()
    assert list((cache.root() / "tags").glob("*.json"))
    cache.prune()
    assert not list((cache.root() / "tags").glob("*.json"))


def test_prune_forgets_memos_of_keys_no_pointer_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(envvars.HOME, str(tmp_path))
    live, gone = "a" * 64, "b" * 64
    (cache.root() / "keys").mkdir(parents=True)
    (cache.root() / "keys" / live).write_text("some-build\n")
    cache.memo_put("m1", live)
    cache.memo_put("m2", gone)
    (cache.root() / "memo" / "m3").write_text("not a key\n")
    cache.prune()
    assert sorted(p.name for p in (cache.root() / "memo").iterdir()) == ["m1"]
