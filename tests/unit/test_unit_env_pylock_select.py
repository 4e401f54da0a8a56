"""pylock's selection on the build's miss path: the same answers as packaging gives, without
packaging where a lock of pure-Python wheels needs none, and without reading the store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from privpkg import connections, envvars
from privpkg.environments import build, cache, pylock
from privpkg.errors import PrivpkgError, UsageError

SHA = "ab" * 32


def _lock(*entries: tuple[str, str, list[str]], marker: str | None = None) -> str:
    out = ['lock-version = "1.0"', 'created-by = "test"']
    for name, version, files in entries:
        out += ["", "[[packages]]", f'name = "{name}"', f'version = "{version}"']
        if marker:
            out.append(f'marker = "{marker}"')
        for f in files:
            out += ["", "[[packages.wheels]]", f'url = "https://files.example/{f}"', f'hashes = {{sha256 = "{SHA}"}}']
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("filename", [
    "demo-1.0-py3-none-any.whl",
    "demo-1.0-py2.py3-none-any.whl",
    "demo_pkg-2.0.1-1build-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "Demo.Pkg-1.0rc1-CP312-abi3-Win_AMD64.whl",
    "x-1-cp39.cp310-cp39.cp310-macosx_11_0_arm64.whl",
])
def test_wheel_tags_are_packagings(filename: str) -> None:
    assert pylock._wheel_tags(filename) == frozenset(str(t) for t in parse_wheel_filename(filename)[3])


@pytest.mark.parametrize("filename", ["demo-1.0.whl", "demo-1.0-py3-none.whl", "demo-1.0-py3-none-any.tar.gz", "a/b-1.0-py3-none-any.whl"])
def test_wheel_tags_refuse_what_is_no_wheel_name(filename: str) -> None:
    with pytest.raises(UsageError, match="not a wheel file name"):
        pylock._wheel_tags(filename)


def test_selection_equals_the_full_targets() -> None:
    """Lazily (no target given) and with the running interpreter's full Target: the same files,
    for pure wheels, a choice between wheels, a marker and a requires-python."""
    tags = pylock.Target.current_tags()
    platform_wheel = f"plat-1.0-{tags[0]}.whl"
    text = _lock(("pure", "1.0", ["pure-1.0-py3-none-any.whl"]),
                 ("plat", "1.0", ["plat-1.0-py3-none-any.whl", platform_wheel]),
                 ("never", "1.0", ["never-1.0-py3-none-any.whl"]))
    text = text.replace('name = "never"\nversion = "1.0"', 'name = "never"\nversion = "1.0"\nmarker = "python_version < \'3\'"')
    lock = pylock.load(text, known_secrets=False)
    lazy, full = lock.select(), lock.select(pylock.Target.current())
    assert lazy == full
    assert sorted(a.filename for a in lazy) == sorted(["pure-1.0-py3-none-any.whl", platform_wheel])


def test_a_pure_lock_selects_without_packaging() -> None:
    probe = (
        "import sys\nfrom privpkg.environments import pylock\n"
        f"lock = pylock.load({_lock(('a', '1.0', ['a-1.0-py3-none-any.whl']), ('b-c', '2.0.1', ['b_c-2.0.1-py2.py3-none-any.whl']))!r}, known_secrets=False)\n"
        "print([a.filename for a in lock.select()], sorted(m for m in sys.modules if m.startswith(('packaging', 'privpkg.connections', 'cryptography'))))\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "['a-1.0-py3-none-any.whl', 'b_c-2.0.1-py2.py3-none-any.whl'] []"


def test_the_build_does_not_read_the_store_but_every_other_load_does(isolated_privpkg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "Zq8s3cr3tPATvalue77"
    connections.set_connection("feed", "PythonFeed", "https://h.example/org", "PAT", value=secret)
    text = _lock(("a", "1.0", ["a-1.0-py3-none-any.whl"])).replace("https://files.example/", f"https://files.example/{secret}/")
    with pytest.raises(UsageError, match="the secret of connection 'feed'"):
        pylock.load(text)
    # A store that cannot be read: the build's selection goes on (it never reads it).
    monkeypatch.setenv(envvars.MASTER_KEY, "not-a-key")
    with pytest.raises(PrivpkgError):  # the store was read, and could not be
        pylock.load(_lock(("a", "1.0", ["a-1.0-py3-none-any.whl"])))
    arts = build._select(_lock(("a", "1.0", ["a-1.0-py3-none-any.whl"])), cache.interpreter(None), True)
    assert [a.filename for a in arts] == ["a-1.0-py3-none-any.whl"]
