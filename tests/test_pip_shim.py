"""The pip shim with local workspaces (fast): real pip 26.3 (privpkg installed, in-process
signing) and pip 23.1 (shim copied in by ``privpkg setup pip --python``, signing through this
checkout's interpreter); one-line errors inside pip; a shim that stays out of non-pip programs;
``--undo``; and ``privpkg resolve -r`` constraints for uv and shim-less pip."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support.builds import Venv, make_venv
from support.cli import PrivpkgCLI
from support.env import Result, run

from privpkg.testing import make_wheel

WS = "loc"
PIPS = ["venv_privpkg", "venv_pip231_shim"]  # pip 26.3 + privpkg, pip 23.1 + copied shim


@pytest.fixture(params=PIPS)
def shim_venv(request: pytest.FixtureRequest) -> Venv:
    return request.getfixturevalue(request.param)


def local_workspace(cli: PrivpkgCLI, tmp_path: Path, *specs: tuple[str, str]) -> tuple[Path, dict[str, str]]:
    """Workspace WS in ``tmp_path/ws`` holding a wheel per (name, version); returns the
    folder and {name: privpkg URL}."""
    folder = tmp_path / "ws"
    cli.ok("workspace", "add", WS, "--local", folder)
    urls = {}
    for name, version in specs:
        wheel = make_wheel(tmp_path / "dist", name, version)
        urls[name] = cli.ok("wheel", "add", wheel, "--workspace", WS).strip().splitlines()[-1]
        assert urls[name] == f"privpkg://{WS}/wheels/{wheel.name}"
    return folder, urls


def versions_in(venv: Venv, target: Path, env: dict[str, str], *modules: str) -> list[str]:
    code = "; ".join(f"import {m}" for m in modules) + "; print(" + ", ".join(f"{m}.VERSION" for m in modules) + ")"
    r = run([venv.python, "-c", code], {**env, "PYTHONPATH": str(target)})
    assert r.returncode == 0, r.describe()
    return r.output.split()


def pip_install(cli: PrivpkgCLI, venv: Venv, target: Path, *args: str | Path, env: dict[str, str] | None = None) -> Result:
    return cli.tool([*venv.pip, "install", "--no-cache-dir", "--no-index", "--target", target, *args], env=env)


def test_requirements_file_with_nested_r(privpkg_cli: PrivpkgCLI, shim_venv: Venv, tmp_path: Path) -> None:
    cli = privpkg_cli
    folder, urls = local_workspace(cli, tmp_path, ("alpha-pkg", "1.0"), ("beta-pkg", "2.0"))
    req = tmp_path / "req" / "requirements.txt"
    (req.parent / "nested").mkdir(parents=True)
    req.write_text(f"# two private wheels\n-r nested/more.txt\nalpha-pkg @ {urls['alpha-pkg']}\n")
    (req.parent / "nested" / "more.txt").write_text(f"beta-pkg @ {urls['beta-pkg']}  # from the workspace\n")

    target = tmp_path / "target"
    r = pip_install(cli, shim_venv, target, "-r", req)
    assert r.returncode == 0, r.describe()
    assert versions_in(shim_venv, target, cli.env, "alpha_pkg", "beta_pkg") == ["1.0", "2.0"]
    for name, url in urls.items():
        assert url in r.output
        dist = name.replace("-", "_")
        direct = json.loads(next(target.glob(f"{dist}-*.dist-info")).joinpath("direct_url.json").read_text())
        assert direct["url"] == url
    # The signed URL of a local workspace is a file URL into its folder: never shown.
    assert str(folder) not in r.output and "file://" not in r.output, r.output
    freeze = cli.tool([*shim_venv.pip, "freeze", "--path", target])
    assert freeze.returncode == 0, freeze.describe()
    assert sorted(ln.split("#", 1)[0] for ln in freeze.output.splitlines() if " @ " in ln) == sorted(
        f"{name} @ {url}" for name, url in urls.items()
    ), freeze.output


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"privpkg://{WS}/wheels/missing_pkg-1.0-py3-none-any.whl", f"privpkg: no wheel missing_pkg-1.0-py3-none-any.whl in workspace '{WS}'"),
        ("privpkg://nows/wheels/missing_pkg-1.0-py3-none-any.whl", "privpkg: no workspace named 'nows'"),
    ],
    ids=["missing-wheel", "unknown-workspace"],
)
def test_errors_reach_pip_as_one_line(privpkg_cli: PrivpkgCLI, shim_venv: Venv, tmp_path: Path, url: str, message: str) -> None:
    cli = privpkg_cli
    local_workspace(cli, tmp_path, ("alpha-pkg", "1.0"))
    r = pip_install(cli, shim_venv, tmp_path / "target", f"missing-pkg @ {url}")
    assert r.returncode != 0, r.describe()
    assert "Traceback" not in r.output, r.output
    assert message in r.output, r.output
    assert not (tmp_path / "target").exists() or not any((tmp_path / "target").glob("missing_pkg*"))


_PROBE = """
import json, sys, urllib.request, http.client, email.parser, sqlite3
print(json.dumps({
    "finders": [type(f).__module__ + "." + type(f).__name__ for f in sys.meta_path],
    "loaded": sorted(m for m in sys.modules if "privpkg" in m or m.startswith("pip")),
}))
"""

_PIP_PROBE = """
import json, sys
import pip._internal.network.session as s
print(json.dumps({"patched": getattr(s.PipSession, "_privpkg_patched", False),
                  "loaded": sorted(m for m in sys.modules if "privpkg" in m)}))
"""


@pytest.mark.parametrize(("venv_name", "package"), [("venv_privpkg", "privpkg.pip_shim"), ("venv_pip231_shim", "_privpkg_pip_shim")])
def test_shim_stays_out_of_other_programs(
    request: pytest.FixtureRequest, make_env: Callable[..., dict[str, str]], venv_bare_pip: Venv, venv_name: str, package: str
) -> None:
    venv: Venv = request.getfixturevalue(venv_name)
    env = make_env()
    baseline = run([venv_bare_pip.python, "-c", _PROBE], env)
    assert baseline.returncode == 0, baseline.describe()
    r = run([venv.python, "-c", _PROBE], env)
    assert r.returncode == 0, r.describe()
    probe = json.loads(r.output)
    # Exactly one meta-path finder more than in a venv without the shim: the shim's.
    extra = list(probe["finders"])
    for name in json.loads(baseline.output)["finders"]:
        extra.remove(name)
    assert len(extra) == 1 and ("shim" in extra[0].lower() or "privpkg" in extra[0].lower()), probe
    # A program that imports json, urllib, http.client, ... loads neither pip nor the adapter.
    assert f"{package}.adapter" not in probe["loaded"], probe
    assert not any(m.startswith("pip") for m in probe["loaded"]), probe
    allowed = {"privpkg", "privpkg.pip_shim"} if package == "privpkg.pip_shim" else {package}
    assert set(probe["loaded"]) <= allowed, probe

    # Positive control: importing pip's session module is what wakes the shim up.
    r = run([venv.python, "-c", _PIP_PROBE], env)
    assert r.returncode == 0, r.describe()
    probe = json.loads(r.output)
    assert probe["patched"] is True and f"{package}.adapter" in probe["loaded"], probe


def test_setup_pip_python_installs_and_undoes_the_shim(
    privpkg_cli: PrivpkgCLI, uv_bin: Path, uv_cache: Path, build_env: dict[str, str], venv_privpkg: Venv, tmp_path: Path
) -> None:
    cli = privpkg_cli
    _, urls = local_workspace(cli, tmp_path, ("alpha-pkg", "1.0"))
    venv = Venv(tmp_path / "venv")
    make_venv(uv_bin, uv_cache, build_env, venv.path, ["pip==23.1"])
    site = Path(run([venv.python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cli.env).output.strip())
    req = f"alpha-pkg @ {urls['alpha-pkg']}"

    before = pip_install(cli, venv, tmp_path / "t0", req)
    assert before.returncode != 0 and "No connection adapters" in before.output, before.describe()

    out = cli.ok("setup", "pip", "--python", venv.python)
    assert f"installed the pip shim into {site} (signing through {sys.executable})" in out
    assert (site / "_privpkg_pip_shim.pth").is_file()
    assert json.loads((site / "_privpkg_pip_shim" / "config.json").read_text()) == {"python": sys.executable}
    r = pip_install(cli, venv, tmp_path / "t1", req)
    assert r.returncode == 0, r.describe()
    assert versions_in(venv, tmp_path / "t1", cli.env, "alpha_pkg") == ["1.0"]

    # Where privpkg itself is installed, its own .pth already does it: nothing is copied.
    out = cli.ok("setup", "pip", "--python", venv_privpkg.python)
    assert "already has the pip shim" in out and "nothing changed" in out
    assert not list(venv_privpkg.path.glob("lib/python*/site-packages/_privpkg_pip_shim*"))

    out = cli.ok("setup", "pip", "--python", venv.python, "--undo")
    assert f"removed the pip shim from {site}" in out
    assert not (site / "_privpkg_pip_shim.pth").exists() and not (site / "_privpkg_pip_shim").exists()
    after = pip_install(cli, venv, tmp_path / "t2", req)
    assert after.returncode != 0 and "No connection adapters" in after.output, after.describe()
    cli.fails(1, "setup", "pip", "--python", venv.python, "--undo", match="nothing to undo")


def test_resolve_requirements_for_uv_and_pip_without_the_shim(
    privpkg_cli: PrivpkgCLI, uv_bin: Path, venv_bare_pip: Venv, venv_pip231: Venv, tmp_path: Path
) -> None:
    cli = privpkg_cli
    folder, urls = local_workspace(cli, tmp_path, ("alpha-pkg", "1.0"), ("beta-pkg", "2.0"), ("gamma-pkg", "3.0"))
    req = tmp_path / "req" / "requirements.txt"
    (req.parent / "nested").mkdir(parents=True)
    (req.parent / "pins").mkdir()
    req.write_text(
        "-r nested/more.txt\n--constraint pins/cons.txt\n"
        f"alpha-pkg @ {urls['alpha-pkg']}\n"
        "other-public @ https://example.com/other_public-1.0-py3-none-any.whl\n"
        "packaging>=23\n"
    )
    (req.parent / "nested" / "more.txt").write_text(f'beta-pkg @ {urls["beta-pkg"]} ; python_version >= "3"\n')
    (req.parent / "pins" / "cons.txt").write_text(f"gamma-pkg @ {urls['gamma-pkg']}\n")
    out = tmp_path / "out" / "constraints.txt"

    res = cli("resolve", "-r", req, "-o", out)
    assert res.returncode == 0, res.stderr
    assert f"wrote 3 signed constraints to {out} (mode 0600" in res.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    wheel_uri = {n: (folder / "wheels" / u.rsplit("/", 1)[1]).resolve().as_uri() for n, u in urls.items()}
    lines = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    assert sorted(lines) == sorted([
        f"alpha-pkg @ {wheel_uri['alpha-pkg']}",
        f'beta-pkg @ {wheel_uri["beta-pkg"]} ; python_version >= "3"',
        f"gamma-pkg @ {wheel_uri['gamma-pkg']}",
    ]), out.read_text()

    names = tmp_path / "names.txt"
    names.write_text("alpha-pkg\nbeta-pkg\ngamma-pkg\n")
    # uv: names plus the constraints file, no index, no shim.
    t_uv = tmp_path / "t-uv"
    r = cli.tool([uv_bin, "pip", "install", "--no-config", "--no-cache", "--no-index", "--python", venv_bare_pip.python,
                  "--target", t_uv, "-r", names, "-c", out])
    assert r.returncode == 0, r.describe()
    assert versions_in(venv_bare_pip, t_uv, cli.env, "alpha_pkg", "beta_pkg", "gamma_pkg") == ["1.0", "2.0", "3.0"]
    # pip 26.3 without the shim, constraints through PIP_CONSTRAINT.
    t_env = tmp_path / "t-env"
    r = pip_install(cli, venv_bare_pip, t_env, "alpha-pkg", "beta-pkg", "gamma-pkg", env={**cli.env, "PIP_CONSTRAINT": str(out)})
    assert r.returncode == 0, r.describe()
    assert versions_in(venv_bare_pip, t_env, cli.env, "alpha_pkg", "beta_pkg", "gamma_pkg") == ["1.0", "2.0", "3.0"]
    # pip 23.1 without the shim, constraints through -c.
    t_c = tmp_path / "t-c"
    r = pip_install(cli, venv_pip231, t_c, "-r", names, "-c", out)
    assert r.returncode == 0, r.describe()
    assert versions_in(venv_pip231, t_c, cli.env, "alpha_pkg", "beta_pkg", "gamma_pkg") == ["1.0", "2.0", "3.0"]
