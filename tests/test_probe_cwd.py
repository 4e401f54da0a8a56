"""privpkg asks other interpreters about themselves (``setup pip --python``, ``doctor --pip``)
with ``python -c``, which puts the working directory first on ``sys.path``. The folder a user
runs privpkg in is untrusted (a cloned project): a ``json.py`` there must never run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.builds import Venv
from support.cli import PrivpkgCLI

HOSTILE = "import pathlib\npathlib.Path(__file__).with_name('RAN').write_text('ran')\nraise SystemExit('hostile module ran')\n"
#: privpkg as users run it: its console script (``python -m privpkg`` would itself put the
#: working folder on sys.path, as ``python -m pip`` does).
PRIVPKG = str(Path(sys.executable).with_name("privpkg"))


def _privpkg(cli: PrivpkgCLI, folder: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([PRIVPKG, *map(str, args)], env=cli.env, cwd=folder, capture_output=True, text=True, timeout=120, check=False)
    cli.outputs.add(f"privpkg {' '.join(map(str, args))}", res.stdout + res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    return res


def _hostile_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    for module in ("json.py", "sysconfig.py"):
        (folder / module).write_text(HOSTILE)
    return folder


def test_setup_pip_python_probe_ignores_the_working_folder(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    cli = privpkg_cli
    folder = _hostile_folder(tmp_path)
    venv = tmp_path / "target"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # A relative --python is still found from the folder the user is in.
    res = _privpkg(cli, folder, "setup", "pip", "--python", Path("..") / "target" / "bin" / "python")
    said = res.stdout + res.stderr
    assert res.returncode == 0 and "installed the pip shim" in said, said
    assert list(venv.glob("lib/python*/site-packages/_privpkg_pip_shim.pth")), said
    assert not (folder / "RAN").exists()
    cli.outputs.check()


def test_doctor_pip_probe_ignores_the_working_folder(privpkg_cli: PrivpkgCLI, venv_bare_pip: Venv, tmp_path: Path) -> None:
    cli = privpkg_cli
    folder = _hostile_folder(tmp_path)
    res = _privpkg(cli, folder, "doctor", "--pip", venv_bare_pip.bin / "pip")
    assert "pip 26" in res.stdout + res.stderr, res.stdout + res.stderr  # the probe ran and read the version
    assert not (folder / "RAN").exists()
    cli.outputs.check()
