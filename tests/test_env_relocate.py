"""A build's uv install makes the environment uv's usual two commands make (issue 10, item 6).

A build runs ``uv pip install --prefix DEST --python BASE`` beside ``uv venv --allow-existing
DEST`` (uv knows BASE from its cache; it would run a new DEST's python once to learn it), then
points the scripts uv wrote for BASE at DEST's python (:mod:`privpkg.environments.relocate`).
Shown here with real uv: the result equals ``uv venv DEST`` + ``uv pip install --python
DEST/bin/python`` file by file (contents, modes, links, RECORD lines), for console and GUI
scripts, ``.data`` scripts with ``#!python`` and with another interpreter, headers and data; in a
short directory, one whose path is too long for a shebang line (uv's ``/bin/sh`` form) and one
with a space and a quote; with the base interpreter and with a venv's python (a symlink) as the
installing one. The scripts then run in DEST.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from privpkg.environments import build, cache, relocate
from privpkg.errors import PrivpkgError
from privpkg.fileio import FileWriteError
from privpkg.testing import make_wheel

INFO = "tooly-1.0.dist-info"
DATA = "tooly-1.0.data"
EXTRA = {
    f"{INFO}/entry_points.txt": "[console_scripts]\ntooly = tooly:main\n\n[gui_scripts]\ntooly-gui = tooly:main\n",
    f"{DATA}/scripts/tooly-py": "#!python\nimport sys\nprint('py', sys.prefix)\n",
    f"{DATA}/scripts/tooly-sh": "#!/bin/sh\necho sh\n",
    f"{DATA}/headers/tooly.h": "#define TOOLY 1\n",
    f"{DATA}/data/share/tooly/readme.txt": "data\n",
}
BODY = "import sys\n\ndef main():\n    print('tool', sys.prefix)\n"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    make_wheel(folder, "tooly", "1.0", body=BODY, extra=EXTRA)
    make_wheel(folder, "plain-pkg", "2.0", purelib=False)  # into platlib, as a binary wheel
    return folder


def _tree(root: Path) -> dict[str, tuple[str, int, bytes]]:
    out: dict[str, tuple[str, int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if os.path.islink(path):
                out[rel] = ("link", 0, os.readlink(path).encode())
            elif os.path.isdir(path):
                out[rel] = ("dir", st.st_mode & 0o7777, b"")
            else:
                out[rel] = ("file", st.st_mode & 0o7777, Path(path).read_bytes())
    return out


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "UV_CACHE_DIR": str(tmp_path / "uv-cache")}


@pytest.mark.parametrize("where", ["short", "long", "space and 'quote'"])
@pytest.mark.parametrize("installer", ["base", "venv python", "lib64 python"])
def test_build_install_equals_uv_venv_and_install(tmp_path: Path, wheels: Path, uv_bin: Path, where: str, installer: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env(tmp_path)
    monkeypatch.setenv("UV_CACHE_DIR", env["UV_CACHE_DIR"])
    if installer == "base":
        interp = cache.interpreter(None)
    else:
        other = tmp_path / "other-venv"
        subprocess.run([uv_bin, "venv", "-q", "--no-config", "--python", sys.executable, other], env=env, check=True)
        interp = cache.interpreter(str(other / "bin" / "python"))
        assert interp.executable == str(other / "bin" / "python")
        if installer == "lib64 python":
            # Fedora's and SUSE's Pythons are built with platlibdir "lib64"; none is installed
            # here, so a sitecustomize gives a venv's python that value (uv's query runs site,
            # privpkg's identity query does not: it is given here). uv venv is made slow (a
            # wrapper of the real uv), so an install that did not wait for it would find no
            # lib64 link yet and make lib64 a directory.
            (next((other / "lib").glob("python*/site-packages")) / "sitecustomize.py").write_text('import sys\nsys.platlibdir = "lib64"\n')
            interp = interp._replace(platlibdir="lib64")
            slow = tmp_path / "slow-uv"
            slow.write_text(f'#!/bin/sh\n[ "$1" = venv ] && sleep 0.5\nexec {uv_bin} "$@"\n')
            slow.chmod(0o755)
            uv_bin = slow
    parent = tmp_path / {"short": "b", "long": "x" * 120, "space and 'quote'": "a dir's name"}[where]
    dest = parent / "env"
    assert (len(str(dest / "bin" / "python")) + 3 > 127) == (where == "long")
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("tooly==1.0\nplain-pkg==2.0\n")
    common = ["--no-config", "--quiet", "--offline", "--no-index", "--no-deps", "--find-links", str(wheels), "-r", str(reqs)]

    # uv's usual way, in the same directory (a venv's files embed its path), moved aside.
    subprocess.run([uv_bin, "venv", "-q", "--no-config", "--python", interp.executable, dest], env=env, check=True)
    subprocess.run([uv_bin, "pip", "install", "--python", dest / "bin" / "python", *common], env=env, check=True)
    expected = _tree(dest)
    shutil.rmtree(dest)
    parent.mkdir(exist_ok=True)

    build._install_uv(str(uv_bin), dest, interp, ["--find-links", str(wheels)], reqs)
    got = _tree(dest)
    if installer == "lib64 python":
        assert got["lib64"][0] == "link" and any(k.startswith("lib/") and "plain_pkg-2.0.dist-info/RECORD" in k for k in got), sorted(got)
    # uv's lock file of the environment is taken by whichever command ran last: only its presence counts.
    assert got.keys() == expected.keys()
    for rel in sorted(expected):
        assert got[rel] == expected[rel], rel
    scripts = {"tooly", "tooly-gui", "tooly-py"}
    for name in scripts:
        head = (dest / "bin" / name).read_bytes()
        assert head.startswith(relocate.shebang(str(dest / "bin" / "python"))), name
        assert interp.executable.encode() not in head
    if where != "short":
        assert (dest / "bin" / "tooly").read_bytes().startswith(b"#!/bin/sh\n")
    for name in ("tooly", "tooly-py"):
        r = subprocess.run([dest / "bin" / name], capture_output=True, text=True, check=True)
        assert r.stdout.split(None, 1)[1].strip() == str(dest), r.stdout
    assert (dest / "bin" / "tooly-sh").read_text() == "#!/bin/sh\necho sh\n"


def test_shebang_forms() -> None:
    """uv's two forms (the tree comparison above checks them against uv itself)."""
    assert relocate.shebang("/usr/bin/python3") == b"#!/usr/bin/python3"
    assert relocate.shebang("/a b/python") == b"#!/bin/sh\n'''exec' '/a b/python' \"$0\" \"$@\"\n' '''"
    assert relocate.shebang("/" + "x" * 130).startswith(b"#!/bin/sh\n")
    assert relocate.shebang("/it's/p y").split(b"\n")[1] == b"'''exec' '/it'\"'\"'s/p y' \"$0\" \"$@\""


def _layout(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    dest = tmp_path / "env"
    site = dest / "lib" / "python3.99" / "site-packages"
    info = site / "p-1.0.dist-info"
    info.mkdir(parents=True)
    (dest / "bin").mkdir()
    base = tmp_path / "base-python"
    base.write_text("")
    return dest, site, info, base


def test_only_the_lines_uv_wrote_for_the_installing_interpreter_are_rewritten(tmp_path: Path) -> None:
    """A script naming another interpreter, or the installing one by another spelling (a
    symlink: uv leaves what a wheel ships), a symlink, and a file RECORD does not list stay as
    they are; the rewritten script's RECORD line gets its new hash and size."""
    dest, site, info, base = _layout(tmp_path)
    alias = tmp_path / "alias-python"
    alias.symlink_to(base)
    (dest / "bin" / "mine").write_bytes(relocate.shebang(str(base)) + b"\nimport x\n")
    (dest / "bin" / "other").write_bytes(b"#!/usr/bin/python3\nimport x\n")
    (dest / "bin" / "spelled").write_bytes(b"#!" + str(alias).encode() + b"\nimport x\n")
    (dest / "bin" / "prefix").write_bytes(relocate.shebang(str(base)) + b"3\nimport x\n")  # base-python3: another file
    (dest / "bin" / "link").symlink_to("mine")
    (dest / "bin" / "unlisted").write_bytes(b"#!/usr/bin/python3\n")
    (info / "RECORD").write_text("p.py,sha256=abc,3\n../../../bin/mine,sha256=old,27\n../../../bin/other,sha256=old,27\n")
    assert relocate.retarget_scripts(dest, str(base), site) == 1
    new = (dest / "bin" / "mine").read_bytes()
    assert new == relocate.shebang(str(dest / "bin" / "python")) + b"\nimport x\n"
    assert (dest / "bin" / "other").read_bytes() == b"#!/usr/bin/python3\nimport x\n"
    assert (dest / "bin" / "spelled").read_bytes().startswith(b"#!" + str(alias).encode() + b"\n")
    assert (dest / "bin" / "prefix").read_bytes().startswith(relocate.shebang(str(base)) + b"3\n")
    assert (dest / "bin" / "link").is_symlink()
    lines = (info / "RECORD").read_text().splitlines()
    assert lines[0] == "p.py,sha256=abc,3" and lines[2] == "../../../bin/other,sha256=old,27"
    digest = base64.urlsafe_b64encode(hashlib.sha256(new).digest()).rstrip(b"=").decode()
    assert lines[1] == f"../../../bin/mine,sha256={digest},{len(new)}"


def test_an_entry_point_left_for_another_interpreter_fails_the_build(tmp_path: Path) -> None:
    """The net under the byte-for-byte match: if uv spelled the interpreter otherwise, a console
    script would run outside the environment; the build fails instead of being published."""
    dest, site, info, base = _layout(tmp_path)
    (info / "entry_points.txt").write_text("[console_scripts]\ntool = p:main\n\n[other]\nnot-a-script = p:x\n")
    (dest / "bin" / "tool").write_bytes(b"#!/somewhere/else/python\nimport p\n")
    (dest / "bin" / "not-a-script").write_bytes(b"#!/somewhere/else/python\n")
    with pytest.raises(PrivpkgError, match="uv wrote the script tool for another interpreter"):
        relocate.retarget_scripts(dest, str(base), site)
    (dest / "bin" / "tool").write_bytes(relocate.shebang(str(base)) + b"\nimport p\n")
    assert relocate.retarget_scripts(dest, str(base), site) == 1


def test_a_large_binary_in_bin_is_not_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest, site, _info, base = _layout(tmp_path)
    (dest / "bin" / "big").write_bytes(b"\x7fELF" + b"\0" * (8 << 20))
    reads: list[int] = []
    real_open = open

    def counting_open(path: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        f = real_open(path, mode, *args, **kwargs)  # type: ignore[call-overload]
        if str(path).endswith("/big"):
            real_read = f.read
            f.read = lambda n=-1: reads.append(n) or real_read(n)  # type: ignore[method-assign]
        return f

    monkeypatch.setattr("builtins.open", counting_open)
    assert relocate.retarget_scripts(dest, str(base), site) == 0
    assert reads and all(0 < n < 4096 for n in reads), reads


def test_a_file_that_cannot_be_written_names_itself(tmp_path: Path) -> None:
    with pytest.raises(FileWriteError, match="cannot write .*/missing/f"):
        relocate.replace_file(tmp_path / "missing" / "f", b"y", 0o644)


def test_installers_outliving_a_killed_builder_keep_its_build_locked(tmp_path: Path, wheels: Path, uv_bin: Path) -> None:
    """SIGKILL reaches privpkg, not its uv children: they inherit the build's lock, so ``env
    prune`` leaves the build alone while they still write into it, and removes it after.
    The directory is made first, as ``_install`` makes it before ``_install_uv`` (else it
    exists only once ``uv venv`` got to it, which a loaded machine delays past the kill)."""
    import signal
    import time

    from privpkg import envvars

    slow = tmp_path / "bin" / "uv"
    slow.parent.mkdir()
    slow.write_text(f'#!/bin/sh\n[ "$1" = pip ] && sleep 2\nexec {uv_bin} "$@"\n')
    slow.chmod(0o755)
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("tooly==1.0\n")
    script = ("import sys\nfrom pathlib import Path\nfrom privpkg.environments import build, cache\n"
              "with cache.new_build('k' * 64) as dest:\n    dest.mkdir()\n    print(dest, flush=True)\n"
              "    build._install_uv(sys.argv[1], dest, cache.interpreter(None), ['--find-links', sys.argv[2]], Path(sys.argv[3]))\n")
    env = {**_env(tmp_path), envvars.HOME: str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-c", script, str(slow), str(wheels), str(reqs)], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    dest = Path(proc.stdout.readline().strip())
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    prune = [sys.executable, "-c", "from privpkg.environments import cache; print(cache.prune().builds)"]
    first = subprocess.run(prune, env=env, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "[]"
    assert dest.is_dir()
    deadline = time.monotonic() + 30
    while dest.exists() and time.monotonic() < deadline:
        time.sleep(0.3)
        subprocess.run(prune, env=env, capture_output=True, text=True, check=True)
    assert not dest.exists()


def test_an_older_uvs_quoting_is_kept(tmp_path: Path) -> None:
    """uv before 0.13 wrote a ``'`` in the trampoline as ``'\\''``: such a script is rewritten
    in the same quoting (what that uv writes for the environment's python)."""
    parent = tmp_path / "it's here"
    dest, site, _info, base = _layout(parent)
    old_quote = "'\\''"
    (dest / "bin" / "tool").write_bytes(relocate.shebang(str(base), old_quote) + b"\nimport p\n")
    (site / "p-1.0.dist-info" / "entry_points.txt").write_text("[console_scripts]\ntool = p:main\n")
    assert relocate.retarget_scripts(dest, str(base), site) == 1
    assert (dest / "bin" / "tool").read_bytes() == relocate.shebang(str(dest / "bin" / "python"), old_quote) + b"\nimport p\n"


def test_an_entry_point_named_like_a_venv_file_is_one_clear_line(tmp_path: Path) -> None:
    """uv venv runs beside the install: a package's entry point called ``activate`` races with
    the venv's own file; when the venv's wins, the line says so and how to build it."""
    dest, site, info, base = _layout(tmp_path)
    (info / "entry_points.txt").write_text("[console_scripts]\nactivate = p:main\n")
    (dest / "bin" / "activate").write_text("# This file must be used with \"source bin/activate\"\n")
    with pytest.raises(PrivpkgError, match="entry point 'activate' has the name of a file of the virtual environment.*--installer pip"):
        relocate.retarget_scripts(dest, str(base), site)


def test_a_failed_build_leaves_no_lock_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from privpkg import envvars

    monkeypatch.setenv(envvars.HOME, str(tmp_path))
    with pytest.raises(RuntimeError), cache.new_build("d" * 64) as dest:
        assert cache.build_lock_fd(dest) is not None
        raise RuntimeError("the install failed")
    assert cache.build_lock_fd(dest) is None
    assert not list((cache.root() / "locks").glob("build-*.lock"))
    with cache.new_build("d" * 64) as dest:
        pass
    assert not list((cache.root() / "locks").glob("build-*.lock"))
