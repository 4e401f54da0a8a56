"""Things built once per test run and shared by all xdist workers: the privpkg wheel of this
checkout and the virtualenvs (uv venvs with a given pip, privpkg installed or its shim copied in).

They build into the run's shared base temp dir under privpkg's own file lock
(:func:`privpkg.fileio.file_lock`, see :func:`build_once`), so all workers share one copy. A
failed build is recorded next to the lock, so other workers fail fast with the same message
instead of retrying.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from privpkg.fileio import file_lock
from support.env import REPO, Result, clean_env, missing_tool, run


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dir per test run, shared by all xdist workers (the workers' common base temp)."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "privpkg-shared"
    root.mkdir(parents=True, exist_ok=True)
    return root


#: A build (a venv with uv, Azurite's npm install) can take minutes; the other workers wait.
BUILD_LOCK_TIMEOUT = 3600.0


def locked(lock: Path) -> AbstractContextManager[None]:
    """``lock`` held exclusively for as long as a build takes."""
    return file_lock(lock, timeout=BUILD_LOCK_TIMEOUT)


def build_once(root: Path, name: str, build: Callable[[Path], None]) -> Path:
    """Build ``root/name`` once for all workers. ``build(dest)`` fills ``dest`` or raises.

    ``name.done`` marks success; ``name.failed`` holds the first failure's message so the other
    workers report it instead of rebuilding."""
    dest, done, failed = root / name, root / f"{name}.done", root / f"{name}.failed"
    with locked(root / f"{name}.lock"):
        if done.exists():
            return dest
        if failed.exists():
            pytest.fail(f"building {name} failed in another worker:\n{failed.read_text()}", pytrace=False)
        if dest.exists():
            shutil.rmtree(dest)  # a half-built leftover
        dest.mkdir(parents=True)
        start = time.monotonic()
        try:
            build(dest)
        except BaseException as exc:
            failed.write_text(str(exc))
            raise
        done.write_text(f"{time.monotonic() - start:.1f}s\n")
    return dest


def check_ok(result: Result, what: str) -> Result:
    if result.returncode != 0:
        pytest.fail(f"{what} failed:\n{result.describe()}", pytrace=False)
    return result

def find_uv() -> Path:
    """The uv executable: the one shipped with the ``uv`` Python package, else uv on PATH."""
    candidates: list[str | None] = []
    with suppress(Exception):  # the uv package is absent or broken: fall back to PATH
        import uv  # type: ignore[import-not-found]

        candidates.append(uv.find_uv_bin())
    candidates += [shutil.which("uv", path=str(Path(sys.executable).parent)), shutil.which("uv")]
    for c in candidates:
        if c and Path(c).exists():
            return Path(c)
    missing_tool("uv is not installed: pip install uv (it is in the project's [test] extra)")


@pytest.fixture(scope="session")
def uv_bin() -> Path:
    """The uv executable (:func:`find_uv`)."""
    return find_uv()


@pytest.fixture(scope="session")
def uv_cache(pytestconfig: pytest.Config, shared_dir: Path) -> Path:
    """A uv cache that survives between runs (in .pytest_cache), so venv builds are quick."""
    try:
        return Path(pytestconfig.cache.mkdir("privpkg-uv-cache"))  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - cache plugin disabled (-p no:cacheprovider)
        return shared_dir / "uv-cache"


@pytest.fixture(scope="session")
def build_env(shared_dir: Path) -> dict[str, str]:
    """Environment for building wheels and venvs (reaches PyPI; no user config)."""
    return clean_env(shared_dir / "build-home")


@pytest.fixture(scope="session")
def privpkg_wheel(shared_dir: Path, uv_bin: Path, uv_cache: Path, build_env: dict[str, str]) -> Path:
    """The project wheel, built once per run from the repo root."""
    dest = build_once(shared_dir, "dist", lambda d: build_privpkg_wheel(uv_bin, uv_cache, build_env, d))
    return build_privpkg_wheel(uv_bin, uv_cache, build_env, dest)  # the wheel built once: found, not rebuilt


def build_privpkg_wheel(uv_bin: Path, uv_cache: Path, env: dict[str, str], dest: Path) -> Path:
    """A normal (non-editable) wheel of this checkout in ``dest`` (so a venv gets
    privpkg_pip_shim.pth); built unless ``dest`` already holds it."""
    if not list(dest.glob("privpkg-*.whl")):
        r = run([uv_bin, "build", "--wheel", "--no-config", "--cache-dir", uv_cache, "--out-dir", dest, REPO], env, cwd=REPO)
        if r.returncode != 0:  # fall back to pip's PEP 517 build
            r2 = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", dest, REPO], env, cwd=REPO)
            if r2.returncode != 0:
                raise RuntimeError(f"uv build failed:\n{r.describe()}\n\npip wheel failed:\n{r2.describe()}")
    wheels = sorted(dest.glob("privpkg-*.whl"))
    assert len(wheels) == 1, f"expected one privpkg wheel in {dest}, found {wheels}"
    return wheels[0]


@dataclass(frozen=True)
class Venv:
    path: Path

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    @property
    def pip(self) -> list[str]:
        return [str(self.python), "-m", "pip"]

    def pip_version(self, env: dict[str, str]) -> str:
        r = run([self.python, "-c", "import pip; print(pip.__version__)"], env)
        assert r.returncode == 0, r.describe()
        return r.output.strip()

    def can_import(self, module: str, env: dict[str, str]) -> bool:
        return run([self.python, "-c", f"import {module}"], env).returncode == 0

    def site_packages(self, env: dict[str, str]) -> Path:
        """Where this venv installs pure-Python packages."""
        r = check_ok(run([self.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env), "purelib")
        return Path(r.output.strip())

    def distributions(self, env: dict[str, str]) -> dict[str, str]:
        """``{distribution: version}`` of everything installed (for a benchmark's record)."""
        code = "import json, importlib.metadata as m; print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))"
        return dict(json.loads(check_ok(run([self.python, "-c", code], env), "list distributions").output))


def make_venv(
    uv_bin: Path, uv_cache: Path, env: dict[str, str], dest: Path, packages: Sequence[str | Path], *, python: Path | str = sys.executable,
    constraints: Path | None = None, compile_bytecode: bool = True,
) -> None:
    """A uv venv of ``python`` (default: the tests' own interpreter) at ``dest`` with ``packages``
    (under ``constraints``), bytecode compiled as pip does: the tests run with
    PYTHONDONTWRITEBYTECODE, so without it every pip run in the venv would compile pip (and the
    cloud SDKs) again, and a benchmark's timed call would compile too."""
    check_ok(run([uv_bin, "venv", "--no-config", "--python", python, dest], env), f"uv venv --python {python} {dest}")
    opts = [*(["-c", constraints] if constraints else []), *(["--compile-bytecode"] if compile_bytecode else [])]
    check_ok(
        run([uv_bin, "pip", "install", "--no-config", "--cache-dir", uv_cache, "--python", dest / "bin" / "python", *opts, *packages], env),
        f"uv pip install {' '.join(map(str, packages))} into {dest}",
    )


@pytest.fixture(scope="session")
def venv_privpkg(shared_dir: Path, uv_bin: Path, uv_cache: Path, build_env: dict[str, str], privpkg_wheel: Path) -> Venv:
    """Latest pip + the privpkg wheel (and so keyring). Its bin/keyring is the keyring CLI with
    privpkg's backend."""

    def build(dest: Path) -> None:
        make_venv(uv_bin, uv_cache, build_env, dest, ["pip>=26.2", privpkg_wheel])
        r = check_ok(run([dest / "bin" / "keyring", "--list-backends"], build_env), "keyring --list-backends")
        if "PrivpkgKeyring" not in r.output:
            raise RuntimeError(f"privpkg's keyring backend is not registered:\n{r.describe()}")

    return Venv(build_once(shared_dir, "venv-privpkg", build))


@pytest.fixture(scope="session")
def venv_bare_pip(shared_dir: Path, uv_bin: Path, uv_cache: Path, build_env: dict[str, str]) -> Venv:
    """Latest pip only; keyring is not importable here."""
    return Venv(build_once(shared_dir, "venv-bare-pip", lambda d: make_venv(uv_bin, uv_cache, build_env, d, ["pip>=26.2"])))


@pytest.fixture(scope="session")
def venv_pip231(shared_dir: Path, uv_bin: Path, uv_cache: Path, build_env: dict[str, str]) -> Venv:
    """pip 23.1 (the first with --keyring-provider), no keyring."""
    return Venv(build_once(shared_dir, "venv-pip231", lambda d: make_venv(uv_bin, uv_cache, build_env, d, ["pip==23.1"])))


@pytest.fixture(scope="session")
def venv_privpkg_cloud(shared_dir: Path, uv_bin: Path, uv_cache: Path, build_env: dict[str, str], privpkg_wheel: Path) -> Venv:
    """Latest pip + ``privpkg[azure,s3]`` from the wheel: the pip shim (.pth) signs in-process
    with the cloud SDKs. (``venv_privpkg`` has no cloud SDK, so it cannot sign Azure or S3 URLs.)"""

    def build(dest: Path) -> None:
        make_venv(uv_bin, uv_cache, build_env, dest, ["pip>=26.2", f"privpkg[azure,s3] @ {privpkg_wheel.as_uri()}"])
        if not list(dest.glob("lib/python*/site-packages/privpkg_pip_shim.pth")):
            raise RuntimeError(f"the privpkg wheel did not install privpkg_pip_shim.pth into {dest}")

    return Venv(build_once(shared_dir, "venv-privpkg-cloud", build))


@pytest.fixture(scope="session")
def venv_pip231_shim(shared_dir: Path, uv_bin: Path, uv_cache: Path, build_env: dict[str, str]) -> Venv:
    """pip 23.1 without privpkg, prepared with ``privpkg setup pip --python`` by this checkout's
    privpkg (so the shim signs through ``sys.executable``). Tests must not undo it."""

    def build(dest: Path) -> None:
        make_venv(uv_bin, uv_cache, build_env, dest, ["pip==23.1"])
        check_ok(run([sys.executable, "-m", "privpkg", "setup", "pip", "--python", dest / "bin" / "python"], build_env), "privpkg setup pip --python")

    return Venv(build_once(shared_dir, "venv-pip231-shim", build))


@pytest.fixture(scope="session")
def owned_venv(shared_dir: Path, uv_bin: Path, uv_cache: Path, build_env: dict[str, str], privpkg_wheel: Path) -> Callable[..., Venv]:
    """``owned_venv(owner, pip, privpkg=True, extra=())``: a venv of the tests' interpreter with
    ``pip`` (a requirement), ``extra`` requirements and, with ``privpkg``, this checkout's wheel,
    built once per run for the ONE test (or parametrized case) named ``owner``, which may change it
    (``privpkg setup pip`` writes its ``pip.conf``). Shared venvs must never be changed; this is
    for the tests that must, or that need an unusual venv of their own."""

    def get(owner: str, pip: str, privpkg: bool = True, extra: Sequence[str] = ()) -> Venv:
        packages: list[str | Path] = [pip, *extra] + ([privpkg_wheel] if privpkg else [])
        name = f"owned-{re.sub(r'[^A-Za-z0-9.]+', '_', owner)}"
        return Venv(build_once(shared_dir, name, lambda d: make_venv(uv_bin, uv_cache, build_env, d, packages)))

    return get


# --------------------------------------------------------------------------------------------
# pip / Python compatibility matrix for the pip shim (issue 6, E15)
# --------------------------------------------------------------------------------------------

#: CPython versions a ``privpkg setup pip --python`` copy of the shim must run on.
SHIM_PYTHONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")


def pyenv_python(version: str) -> Path:
    """The newest pyenv CPython ``version`` (e.g. "3.8") as a full path, e.g.
    ``~/.pyenv/versions/3.8.18/bin/python3.8``."""
    roots = []
    with suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30, check=False).stdout.strip()
        if out:
            roots.append(Path(out))
    roots += [Path(os.environ.get("PYENV_ROOT", "~/.pyenv")).expanduser()]
    found: list[tuple[tuple[int, ...], Path]] = []
    for root in roots:
        for d in (root / "versions").glob(f"{version}.*"):
            rest = d.name[len(version) + 1 :]
            exe = d / "bin" / f"python{version}"
            if rest.isdigit() and exe.is_file():
                found.append(((int(rest),), exe))
    if not found:
        missing_tool(f"CPython {version} is not installed under pyenv ({', '.join(map(str, roots))})")
    return max(found)[1]


@pytest.fixture(scope="session")
def compat_venv(shared_dir: Path, uv_bin: Path, uv_cache: Path, build_env: dict[str, str], privpkg_wheel: Path) -> Callable[..., Venv]:
    """``compat_venv(pip, python=None, how="in-env"|"setup")``: a venv (built once per run, shared
    by xdist workers) of ``python`` (a pyenv version such as "3.8"; None = the tests' own
    interpreter) with ``pip`` (a requirement such as "pip==23.2.1", or "pip" for the newest pip
    that supports that Python), and privpkg either installed in it ("in-env") or its shim copied
    in by this checkout's ``privpkg setup pip --python`` ("setup")."""

    def get(pip: str, python: str | None = None, how: str = "setup") -> Venv:
        assert how in ("in-env", "setup")
        exe = pyenv_python(python) if python else Path(sys.executable)
        packages: list[str | Path] = [pip] + ([f"privpkg @ {privpkg_wheel.as_uri()}"] if how == "in-env" else [])
        name = f"compat-{python or 'self'}-{re.sub(r'[^A-Za-z0-9.]+', '_', pip)}-{how}"

        def build(dest: Path) -> None:
            make_venv(uv_bin, uv_cache, build_env, dest, packages, python=exe)
            if how == "setup":
                check_ok(run([sys.executable, "-m", "privpkg", "setup", "pip", "--python", dest / "bin" / "python"], build_env),
                       "privpkg setup pip --python")

        return Venv(build_once(shared_dir, name, build))

    return get
