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

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from privpkg.environments import build, cache, relocate
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
    make_wheel(folder, "plain-pkg", "2.0")
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
@pytest.mark.parametrize("installer", ["base", "venv python"])
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


def test_shebang_forms_round_trip() -> None:
    """uv's two forms: what :func:`relocate.shebang` writes is what the rewrite reads back."""
    for exe in ["/usr/bin/python3", "/a b/python", "/it's/python", "/" + "x" * 130 + "/python"]:
        head = relocate.shebang(exe) + b"\nrest\n"
        found = relocate._interpreter_of(head)
        assert found is not None and found[0] == exe and head[found[1]:] == b"\nrest\n", exe
    assert relocate.shebang("/usr/bin/python3") == b"#!/usr/bin/python3"
    assert relocate._interpreter_of(b"#!/usr/bin/env python\n") is None
    assert relocate._interpreter_of(b"plain text") is None


def test_only_the_installing_interpreters_scripts_are_rewritten(tmp_path: Path) -> None:
    """A script naming another interpreter, a symlink, and a file RECORD does not list stay as
    they are; the rewritten script's RECORD line gets its new hash and size."""
    dest = tmp_path / "env"
    site = dest / "lib" / "python3.99" / "site-packages"
    info = site / "p-1.0.dist-info"
    info.mkdir(parents=True)
    (dest / "bin").mkdir()
    (dest / "bin" / "other").write_bytes(b"#!/usr/bin/python3\nimport x\n")
    (dest / "bin" / "link").symlink_to("mine")
    (info / "RECORD").write_text("p.py,sha256=abc,3\n../../../bin/mine,sha256=old,27\n../../../bin/other,sha256=old,27\n")
    (dest / "bin" / "unlisted").write_bytes(b"#!/usr/bin/python3\n")
    base = tmp_path / "opt-base-python"
    base.write_text("")
    (dest / "bin" / "mine").write_bytes(b"#!" + str(base).encode() + b"\nimport x\n")
    assert relocate.retarget_scripts(dest, str(base), site) == 1
    new = (dest / "bin" / "mine").read_bytes()
    assert new == relocate.shebang(str(dest / "bin" / "python")) + b"\nimport x\n"
    assert (dest / "bin" / "other").read_bytes() == b"#!/usr/bin/python3\nimport x\n"
    assert (dest / "bin" / "link").is_symlink()
    lines = (info / "RECORD").read_text().splitlines()
    assert lines[0] == "p.py,sha256=abc,3" and lines[2] == "../../../bin/other,sha256=old,27"
    import base64
    import hashlib

    digest = base64.urlsafe_b64encode(hashlib.sha256(new).digest()).rstrip(b"=").decode()
    assert lines[1] == f"../../../bin/mine,sha256={digest},{len(new)}"
