"""Real conda for the conda-marked tests: finding it, a private base prefix with this checkout's
privpkg installed, a local channel, and a runner with scratch configuration.

conda is on no registry this machine (or CI) reaches, so these tests skip with the reason
:data:`NOT_INSTALLED` when no conda is found, and only then. conda is found as ``conda`` on
``PATH``, or through :data:`TEST_CONDA_ENV` naming a Python whose ``python -m conda`` works (a
conda built from its source into a venv: see README, Dependencies). A conda that is named but does not
run fails the tests instead of skipping them.

The conda found is never changed. Each test run makes its own base prefix (:func:`make_base`): a
venv of conda's interpreter that reaches conda's code through a ``.pth`` line, with
``conda-meta/history`` (what makes a prefix conda's root), a ``bin/conda`` and ``condabin/conda``
like an installed conda's, and the privpkg wheel of this checkout installed with uv, so the
plugin's entry point is registered there as in a user's base. Each test gets scratch ``HOME``,
``~/.condarc`` (also ``$CONDARC``), package and env dirs (:class:`Conda`), and a ``PATH`` that
holds ``condabin`` but not base's ``bin`` (base not activated);
:meth:`Conda.activated_env` gives the environment of a shell where the user activated base.

The channel (:func:`conda_channel`) is local and offline (:mod:`support.conda_channel`):
``python`` made from the machine's interpreter and ``pip`` from its PyPI wheel (``conda create``
of a ``pip:`` section adds ``pip`` to the solve by itself).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.builds import build_once, check_ok
from support.conda_channel import build_channel
from support.env import clean_env, run

#: A Python whose ``-m conda`` works (for a conda that is not on PATH). Read only by the tests.
TEST_CONDA_ENV = "PRIVPKG_TEST_CONDA"
#: The one reason a conda-marked test may skip.
NOT_INSTALLED = "conda is not installed"

#: Configuration that conda reads from a scratch HOME; :class:`Conda` adds the channel.
_CONDARC = """\
# Written by the tests (tests/support/conda.py): offline, classic solver, no prompts.
solver: classic
channels:
  - {channel}
default_channels: []
channel_priority: strict
auto_update_conda: false
notify_outdated_conda: false
report_errors: false
always_yes: true
"""

#: What an installed conda's ``bin/conda`` does (conda's own entry script, not the PyPI one,
#: which refuses most commands until ``conda init``).
_CONDA_SCRIPT = """\
#!{python}
import sys
# conda's own script: leave the cwd out of sys.path for the internal `conda shell.*` commands.
if len(sys.argv) > 1 and sys.argv[1].startswith("shell.") and sys.path and sys.path[0] == "":
    del sys.path[0]
if __name__ == "__main__":
    from conda.cli import main
    sys.exit(main())
"""


@dataclass(frozen=True)
class CondaInstall:
    """The conda found on this machine: an interpreter whose ``-m conda`` works."""

    python: Path
    version: str
    found_by: str  # how it was found, for messages


def _conda_environ() -> dict[str, str]:
    """os.environ without a conda activation's variables (the tests' shell may have one)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("CONDA", "_CE_", "_CONDA"))}


def _version(python: Path) -> str:
    try:
        r = subprocess.run([str(python), "-m", "conda", "--version"], env=_conda_environ(), capture_output=True, text=True,
                           timeout=120, check=False)
    except OSError as exc:
        raise RuntimeError(f"`{python} -m conda --version` cannot run: {exc}") from None
    if r.returncode != 0 or not r.stdout.startswith("conda "):
        raise RuntimeError(f"`{python} -m conda --version` failed (exit {r.returncode}): {(r.stdout + r.stderr).strip()}")
    return r.stdout.split()[1]


def find_conda() -> CondaInstall | None:
    """The conda to test against: :data:`TEST_CONDA_ENV`'s Python, else ``conda`` on PATH (its
    root prefix's Python). None when there is neither; RuntimeError when one is named but broken."""
    named = os.environ.get(TEST_CONDA_ENV, "").strip()
    if named:
        python = Path(named).expanduser()
        return CondaInstall(python, _version(python), f"{TEST_CONDA_ENV}={named}")
    exe = shutil.which("conda")
    if exe is None:
        return None
    r = subprocess.run([exe, "info", "--json"], env=_conda_environ(), capture_output=True, text=True, timeout=120, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"`{exe} info --json` failed (exit {r.returncode}): {(r.stdout + r.stderr).strip()}")
    python = Path(json.loads(r.stdout)["root_prefix"]) / "bin" / "python"
    return CondaInstall(python, _version(python), f"conda on PATH ({exe})")


@pytest.fixture(scope="session")
def conda_install() -> CondaInstall:
    """The conda found (:func:`find_conda`); skips with :data:`NOT_INSTALLED` only when there is none."""
    try:
        found = find_conda()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    if found is None:
        pytest.skip(NOT_INSTALLED)
    return found


def make_base(conda: CondaInstall, dest: Path, packages: Sequence[str | Path], uv_bin: Path, uv_cache: Path, env: dict[str, str]) -> None:
    """A base prefix at ``dest`` for ``conda`` with ``packages`` installed (see the module's doc).

    A venv of conda's interpreter, so that ``sys.prefix`` (conda's root prefix) is ``dest``;
    conda's own site-packages come after the venv's through a ``.pth`` line, so privpkg and its
    dependencies installed here win over any copy there."""
    check_ok(run([conda.python, "-m", "venv", "--without-pip", dest], env), f"venv of {conda.python}")
    probe = "import json, site, sysconfig; print(json.dumps([site.getsitepackages(), sysconfig.get_paths()['purelib']]))"
    conda_sites, _ = json.loads(check_ok(run([conda.python, "-c", probe], env), "conda's site-packages").output)
    purelib = Path(json.loads(check_ok(run([dest / "bin" / "python", "-c", probe], env), "base's site-packages").output)[1])
    (purelib / "_privpkg_tests_conda.pth").write_text("".join(f"{p}\n" for p in conda_sites))
    (dest / "conda-meta").mkdir()
    (dest / "conda-meta" / "history").write_text("")
    for folder in ("bin", "condabin"):
        (dest / folder).mkdir(exist_ok=True)
        script = dest / folder / "conda"
        script.write_text(_CONDA_SCRIPT.format(python=dest / "bin" / "python"))
        script.chmod(0o755)
    if packages:
        check_ok(
            # Compiled, as pip installs into a user's base: the tests' children write no bytecode
            # (PYTHONDONTWRITEBYTECODE), so every conda start would compile privpkg's dependencies.
            run([uv_bin, "pip", "install", "--no-config", "--compile-bytecode", "--cache-dir", uv_cache, "--python", dest / "bin" / "python",
                 *packages], env),
            f"uv pip install {' '.join(map(str, packages))} into the conda base",
        )


@pytest.fixture(scope="session")
def conda_base(conda_install: CondaInstall, shared_dir: Path, uv_bin: Path, uv_cache: Path, build_env: dict[str, str],
               privpkg_wheel: Path) -> Path:
    """This run's conda base prefix, with this checkout's privpkg (and its azure and s3 extras)."""
    extras = f"privpkg[azure,s3] @ {privpkg_wheel.as_uri()}"
    return build_once(shared_dir, "conda-base", lambda d: make_base(conda_install, d, [extras], uv_bin, uv_cache, build_env))


# --- the local channel ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def conda_channel(conda_install: CondaInstall) -> str:
    """The local channel (``python`` and ``pip``: support.conda_channel, cached between runs), as
    a ``file://`` URL. A test that needs more packages builds its own with
    :func:`support.conda_channel.build_channel` and lists it in its condarc."""
    return build_channel([]).url


# --- running conda ------------------------------------------------------------------------------


@dataclass
class CondaRun:
    """One conda command: exit code and both streams (conda prints pip's output after pip exits)."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def describe(self) -> str:
        return f"$ {' '.join(self.argv)}\n[exit {self.returncode}, {self.seconds:.1f}s]\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@dataclass
class Conda:
    """conda with this test's scratch HOME, ``~/.condarc``, package and env dirs.

    Call it like the CLI: ``conda("env", "create", "-f", yml)``. ``env`` is the environment every
    call gets unless one is passed (add variables with ``conda.env | {...}``)."""

    base: Path
    channel: str
    root: Path  # this test's scratch dir
    env: dict[str, str] = field(repr=False)

    @property
    def exe(self) -> Path:
        return self.base / "bin" / "conda"

    @property
    def python(self) -> Path:
        """base's interpreter (where privpkg and conda are importable)."""
        return self.base / "bin" / "python"

    @property
    def home(self) -> Path:
        return Path(self.env["HOME"])

    @property
    def condarc(self) -> Path:
        """The user's condarc (``~/.condarc``, also ``$CONDARC``): ``setup conda`` edits this one."""
        return Path(self.env["CONDARC"])

    @property
    def pkgs_dir(self) -> Path:
        return Path(self.env["CONDA_PKGS_DIRS"])

    @property
    def envs_dir(self) -> Path:
        return Path(self.env["CONDA_ENVS_DIRS"])

    def prefix(self, name: str) -> Path:
        """Where ``-n name`` (or an environment.yml's ``name:``) puts the env."""
        return self.envs_dir / name

    def __call__(self, *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 600) -> CondaRun:
        argv = [str(self.exe), *map(str, args)]
        start = time.monotonic()
        try:
            proc = subprocess.run(argv, env=self.env if env is None else env, cwd=cwd or self.root, stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode("utf-8", "replace") + (exc.stderr or b"").decode("utf-8", "replace")
            raise AssertionError(f"timed out after {timeout}s: {' '.join(argv)}\n{out}") from None
        return CondaRun(argv, proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"),
                        time.monotonic() - start)

    def ok(self, *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 600) -> CondaRun:
        """Like calling it, but fail the test on a non-zero exit."""
        r = self(*args, env=env, cwd=cwd, timeout=timeout)
        assert r.returncode == 0, r.describe()
        return r

    def activated_env(self, env: dict[str, str] | None = None, name: str = "base") -> dict[str, str]:
        """The environment of a user's shell after ``eval "$(conda shell.posix hook)"`` and
        ``conda activate NAME`` (base: its ``bin/``, with base's keyring and privpkg, goes first on
        PATH), starting from ``env`` (default :attr:`env`)."""
        script = f'eval "$("{self.exe}" shell.posix hook)" && conda activate "{name}" && env -0'
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-c", script], env=self.env if env is None else env, cwd=self.root,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False)
        assert proc.returncode == 0, f"activating {name} failed: {proc.stderr.decode('utf-8', 'replace')}"
        pairs = (item.split("=", 1) for item in proc.stdout.decode("utf-8", "replace").split("\0") if "=" in item)
        return {k: v for k, v in pairs if not k.startswith("BASH_FUNC_") and k not in ("_", "SHLVL", "PWD", "OLDPWD")}

    def write_env_file(self, path: Path, *, name: str, dependencies: Sequence[str] = ("python",), pip: Sequence[str] = ()) -> Path:
        """An environment.yml (``pip`` lines go into a ``pip:`` section, verbatim)."""
        lines = [f"name: {name}", "dependencies:", *(f"  - {d}" for d in dependencies)]
        if pip:
            lines += ["  - pip:", *(f"    - {p}" for p in pip)]
        path.write_text("\n".join(lines) + "\n")
        return path

    def site_packages(self, prefix: Path) -> Path:
        """An env's site-packages (the channel's python is the machine's version)."""
        return prefix / "lib" / f"python{sysconfig.get_python_version()}" / "site-packages"


def conda_env(base: Path, channel: str, root: Path, *, path_prefix: Sequence[Path | str] = ()) -> dict[str, str]:
    """The environment for conda in scratch dirs under ``root``: support.env's clean environment
    (HOME under ``root``, no PIP_/KEYRING_/privpkg variables, no keyring on PATH), no variable of
    a conda activation, ``CONDARC`` = ``~/.condarc``, package and env dirs under ``root``, and
    base's ``condabin`` on PATH as ``conda init`` leaves it when base is not activated."""
    env = {k: v for k, v in clean_env(root, path_prefix=path_prefix).items() if not k.startswith(("CONDA", "_CE_", "_CONDA"))}
    condarc = Path(env["HOME"]) / ".condarc"
    if not condarc.exists():
        condarc.write_text(_CONDARC.format(channel=channel))
    pkgs, envs = root / "conda-pkgs", root / "conda-envs"
    pkgs.mkdir(parents=True, exist_ok=True)
    envs.mkdir(parents=True, exist_ok=True)
    env.update(CONDARC=str(condarc), CONDA_PKGS_DIRS=str(pkgs), CONDA_ENVS_DIRS=str(envs))
    env["PATH"] = os.pathsep.join([str(base / "condabin"), env["PATH"]])
    return env


@pytest.fixture
def conda(conda_base: Path, conda_channel: str, test_home: Path) -> Iterator[Conda]:
    """Real conda for this test (:class:`Conda`): this run's base and channel, scratch dirs under
    the test's home."""
    test_home.mkdir(parents=True, exist_ok=True)
    yield Conda(conda_base, conda_channel, test_home, conda_env(conda_base, conda_channel, test_home))

