"""The pip shim across pip and Python versions (issue 6, E15).

- privpkg installed in pip's own environment (its ``.pth`` signs in-process) and the shim copied
  into an environment without privpkg by ``privpkg setup pip --python`` (signing through this
  checkout's interpreter), each with pip 23.1 (the oldest the shim supports), pip 23.2.1 (what
  ``python3 -m venv`` gives on Python 3.11) and the newest pip;
- the copied shim in venvs of CPython 3.8 to 3.13 (pyenv), each with the newest pip that
  supports that Python;
- the shim package linted for Python 3.8 (vermin, an AST check for what vermin cannot see, and
  a compile by the real 3.8 interpreter).

Every install is real pip against a local workspace; nothing is mocked.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support.builds import SHIM_PYTHONS, Venv, pyenv_python
from support.cli import PrivpkgCLI
from support.env import REPO, SKIP_MISSING_TOOLS_ENV, run
from test_pip_shim import local_workspace, pip_install, versions_in

from privpkg import envvars

SHIM_SRC = REPO / "src" / "privpkg" / "pip_shim"

_PIP_PROBE = """
import json, sys
import pip
import pip._internal.network.session as s
print(json.dumps({"pip": pip.__version__, "python": "%d.%d" % sys.version_info[:2],
                  "patched": getattr(s.PipSession, "_privpkg_patched", False),
                  "loaded": sorted(m for m in sys.modules if "privpkg" in m)}))
"""


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:3] if p.isdigit())


def _check_install(cli: PrivpkgCLI, venv: Venv, tmp_path: Path, *pip_args: str) -> None:
    """A privpkg:// wheel from a local workspace installs with plain pip; a missing one fails
    with privpkg's one line; neither prints a traceback, a file:// URL or the folder."""
    folder, urls = local_workspace(cli, tmp_path, ("alpha-pkg", "1.0"))
    target = tmp_path / "target"
    r = pip_install(cli, venv, target, *pip_args, f"alpha-pkg @ {urls['alpha-pkg']}")
    assert r.returncode == 0, r.describe()
    for bad in ("Traceback", "AssertionError", "pip shim not active", "--- Logging error ---"):
        assert bad not in r.output, r.describe()
    assert versions_in(venv, target, cli.env, "alpha_pkg") == ["1.0"]
    direct = json.loads(next(target.glob("alpha_pkg-*.dist-info")).joinpath("direct_url.json").read_text())
    assert direct["url"] == urls["alpha-pkg"]
    assert str(folder) not in r.output and "file://" not in r.output, r.describe()

    missing = "privpkg://loc/wheels/missing_pkg-1.0-py3-none-any.whl"
    r = pip_install(cli, venv, tmp_path / "target-missing", *pip_args, f"missing-pkg @ {missing}")
    assert r.returncode != 0, r.describe()
    assert "Traceback" not in r.output and "--- Logging error ---" not in r.output, r.describe()
    assert "privpkg: no wheel missing_pkg-1.0-py3-none-any.whl in workspace 'loc'" in r.output, r.describe()


# pip 23.1 is the first pip with --keyring-provider (the shim's floor); 23.2.1 is what
# `python3 -m venv` gives on 3.11 and, like every pip < 25, asserts that log records' args are
# a tuple; "pip" is the newest release. The log filter rewrites records only in-env (where local
# paths are known), so one -v run is added there, for the pip that crashed.
CASES = [
    (pip, expected, how, [])
    for pip, expected in [("pip==23.1", "23.1"), ("pip==23.2.1", "23.2.1"), ("pip", None)]
    for how in ("in-env", "setup")
] + [("pip==23.2.1", "23.2.1", "in-env", ["-v"])]


@pytest.mark.parametrize(
    ("pip", "expected", "how", "verbosity"), CASES,
    ids=[f"{(e and 'pip' + e) or 'pip-newest'}-{h}{'-v' if v else ''}" for _, e, h, v in CASES],
)
def test_pip_versions_both_ways(
    request: pytest.FixtureRequest, compat_venv: Callable[..., Venv], privpkg_cli: PrivpkgCLI, tmp_path: Path,
    pip: str, expected: str | None, how: str, verbosity: list[str],
) -> None:
    # Two of these venvs already exist as shared fixtures: reuse them rather than build twins.
    shared = {("pip==23.1", "setup"): "venv_pip231_shim", ("pip", "in-env"): "venv_privpkg"}.get((pip, how))
    venv = request.getfixturevalue(shared) if shared else compat_venv(pip, None, how)
    version = venv.pip_version(privpkg_cli.env)
    if expected:
        assert version == expected
    else:
        assert _version(version) >= (26, 2), f"the newest pip should be at least 26.2, got {version}"
    probe = run([venv.python, "-c", _PIP_PROBE], privpkg_cli.env)
    assert probe.returncode == 0, probe.describe()
    info = json.loads(probe.output.strip().splitlines()[-1])
    package = "privpkg.pip_shim" if how == "in-env" else "_privpkg_pip_shim"
    assert info["patched"] is True and f"{package}.adapter" in info["loaded"], info
    _check_install(privpkg_cli, venv, tmp_path, *verbosity)
    assert privpkg_cli.outputs.check() == 0  # local workspaces sign nothing


@pytest.mark.parametrize("python", SHIM_PYTHONS)
def test_setup_pip_copy_runs_on_older_pythons(
    compat_venv: Callable[..., Venv], privpkg_cli: PrivpkgCLI, tmp_path: Path, python: str
) -> None:
    venv = compat_venv("pip", python, "setup")
    probe = run([venv.python, "-c", _PIP_PROBE], privpkg_cli.env)
    assert probe.returncode == 0, probe.describe()
    info = json.loads(probe.output.strip().splitlines()[-1])
    assert info["python"] == python, info
    assert _version(info["pip"]) >= (23, 1), info
    assert info["patched"] is True and "_privpkg_pip_shim.adapter" in info["loaded"], info
    _check_install(privpkg_cli, venv, tmp_path)


# Names added to builtin types after 3.8 that vermin cannot attribute to a type when the
# receiver is a variable (it reports `msg.removeprefix(...)` as fine for 3.7).
_POST_38_METHODS = {"removeprefix", "removesuffix", "is_relative_to", "with_stem", "readlink", "bit_count", "cache", "zip_strict"}


@pytest.mark.parametrize(
    ("ci", "opt_in", "outcome"),
    [("true", None, "failed"), ("1", None, "failed"), ("true", "1", "failed"), (None, None, "failed"), (None, "1", "skipped")],
    ids=["CI=true", "CI=1", "CI=true-opt-in-ignored", "local", "local-opt-in"],
)
def test_missing_interpreter_fails_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ci: str | None, opt_in: str | None, outcome: str) -> None:
    """No pyenv CPython 3.8: the suite's one missing_tool policy (support.env), as for node and uv
    (test_cli.py::test_missing_node_fails_the_run): fail under CI=true/1 whatever the opt-in
    says, fail locally too, and skip only when the developer set
    PRIVPKG_TESTS_SKIP_MISSING_TOOLS=1 outside CI."""
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))  # `pyenv root` prints it; it holds no versions
    for name, value in (("CI", ci), (SKIP_MISSING_TOOLS_ENV, opt_in)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    expected = pytest.skip.Exception if outcome == "skipped" else pytest.fail.Exception
    # Catch both outcomes: a skip where a failure is due must fail THIS test, not skip it.
    with pytest.raises((pytest.skip.Exception, pytest.fail.Exception), match="CPython 3.8 is not installed under pyenv") as info:
        pyenv_python("3.8")
    assert isinstance(info.value, expected), f"expected {outcome}, got {type(info.value).__name__}: {info.value}"
    message = str(info.value)
    if outcome == "failed" and not ci:
        assert f"set {SKIP_MISSING_TOOLS_ENV}=1" in message, message  # the local failure names the opt-out
    if ci:
        assert SKIP_MISSING_TOOLS_ENV not in message, message  # under CI there is no way out to suggest
    assert pyenv_python.__module__ == "support.builds"


def _vermin(*paths: Path) -> subprocess.CompletedProcess[str]:
    try:
        import vermin  # noqa: F401 - the [test] extra's linter; it has no __main__ module
    except ImportError:
        pytest.fail("vermin is missing: install the project's [test] extra", pytrace=False)
    return subprocess.run(
        [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())", "--target=3.8-", "--no-tips", "--violations",
         "--no-parse-comments", *map(str, paths)],
        capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.integration  # runs a program
def test_shim_package_is_python38_clean(tmp_path: Path) -> None:
    files = sorted(SHIM_SRC.glob("*.py"))
    assert [f.name for f in files] == ["__init__.py", "adapter.py", "broker.py"]

    res = _vermin(SHIM_SRC)
    assert res.returncode == 0, res.stdout + res.stderr
    # Positive control: the same command fails on 3.9+ code.
    newer = tmp_path / "newer.py"
    newer.write_text("import zoneinfo\nprint(zoneinfo.ZoneInfo('UTC'))\n")
    res = _vermin(newer)
    assert res.returncode != 0 and "zoneinfo" in res.stdout, res.stdout + res.stderr

    for f in files:
        tree = ast.parse(f.read_text(), str(f))
        used = sorted({
            f"{f.name}:{node.lineno}: .{node.attr}" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr in _POST_38_METHODS
        })
        assert not used, f"the copied shim must run on Python 3.8: {used}"

    py38 = pyenv_python("3.8")
    code = "import sys\nfor f in sys.argv[1:]:\n    compile(open(f).read(), f, 'exec')\nprint('ok')"
    r = run([py38, "-c", code, *map(str, files)], {"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and r.output.strip() == "ok", r.describe()


@pytest.mark.integration  # runs a program
def test_setup_pip_python_builds_the_copy_in_a_fresh_random_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``install_shim`` used to build in ``site/._privpkg_pip_shim.<pid>``: a predictable name
    that another writer of site-packages could plant (here a symlink to a folder of theirs),
    which made the install fail with a traceback. The copy now goes through ``mkdtemp``."""
    import os
    import stat

    from privpkg.setup_pip import SHIM_PACKAGE, SHIM_PTH, install_shim

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine\n")
    planted = site / f".{SHIM_PACKAGE}.{os.getpid()}"
    planted.symlink_to(victim, target_is_directory=True)
    monkeypatch.setenv(envvars.HOME, str(tmp_path / "privpkg"))
    old_umask = os.umask(0o022)
    try:
        for _ in range(2):  # a fresh install, then a reinstall over the previous copy
            assert install_shim(str(python)).startswith(f"installed the pip shim into {site}")
    finally:
        os.umask(old_umask)
    dest = site / SHIM_PACKAGE
    assert sorted(p.name for p in dest.iterdir()) == ["__init__.py", "adapter.py", "broker.py", "config.json"]
    assert (dest / "adapter.py").read_bytes() == (SHIM_SRC / "adapter.py").read_bytes()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in dest.iterdir()} == {0o644}
    assert (site / SHIM_PTH).is_file()
    # The planted entry and what it points to are untouched; no temporary folder is left.
    assert planted.is_symlink() and (victim / "keep.txt").read_text() == "mine\n" and sorted(victim.iterdir()) == [victim / "keep.txt"]
    assert sorted(p.name for p in site.iterdir() if p.name.startswith(f".{SHIM_PACKAGE}")) == [planted.name]
    r = run([python, "-c", "import _privpkg_pip_shim.adapter, json; print('ok')"], {"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0 and r.output.strip() == "ok", r.describe()


@pytest.mark.parametrize("venv_name", ["venv_privpkg", "venv_pip231_shim"])
def test_pip_gets_one_line_for_an_over_long_file_name(
    request: pytest.FixtureRequest, privpkg_cli: PrivpkgCLI, tmp_path: Path, venv_name: str
) -> None:
    """Before, an over-long wheel file name reached the file system (OSError: File name too
    long) and pip printed privpkg's traceback. (A NUL in the name never gets this far: pip
    refuses the requirement itself, "Invalid project name".)"""
    venv: Venv = request.getfixturevalue(venv_name)
    local_workspace(privpkg_cli, tmp_path, ("alpha-pkg", "1.0"))
    name = "a" * 300
    r = pip_install(privpkg_cli, venv, tmp_path / "target", f"{name} @ privpkg://loc/wheels/{name}-1.0-py3-none-any.whl")
    assert r.returncode != 0, r.describe()
    assert "Traceback" not in r.output and "privpkg: wheel file name too long (321 bytes" in r.output, r.describe()
