"""privpkg as a conda package, with no conda: ``conda_recipe/recipe.yaml`` renders with
py-rattler-build and says what pyproject.toml says (version, runtime dependencies, console
script); it builds offline into a ``.conda`` from the local channel of
:mod:`support.conda_channel` (this machine's python, packages repackaged from PyPI wheels); and
installed with py-rattler into a fresh prefix it works there: ``privpkg --version``, keyring's own
CLI lists privpkg's backend, the pip shim's ``.pth`` sits in site-packages and loads, and the conda
entry point is registered (read with importlib.metadata by the prefix's python).

The package is built and installed once per run for all xdist workers (support.builds.build_once);
the channel is cached between runs (see support.conda_channel).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from support import conda_channel
from support.builds import build_once
from support.conda_channel import Channel, build_channel
from support.env import REPO, clean_env, run

RECIPE = REPO / "conda_recipe" / "recipe.yaml"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SHIM_PTH = REPO / "src" / "privpkg_pip_shim.pth"


def _rendered() -> dict[str, object]:
    """The recipe as py-rattler-build renders it for this machine (one variant: noarch)."""
    from rattler_build import Stage0Recipe

    variants = Stage0Recipe.from_file(RECIPE).render()
    assert len(variants) == 1, variants
    rendered: dict[str, object] = variants[0].recipe.to_dict()
    return rendered


def _conda_specs(specs: list[str]) -> dict[str, SpecifierSet]:
    """``["name >=1,<2", ...]`` (a recipe's requirements) as ``{name: SpecifierSet}``."""
    out: dict[str, SpecifierSet] = {}
    for spec in specs:
        name, _, version = spec.partition(" ")
        out[canonicalize_name(name)] = SpecifierSet(version.replace(" ", ""))
    return out


def _pyproject_runtime() -> dict[str, SpecifierSet]:
    """pyproject's ``requires-python`` and ``dependencies`` as ``{name: SpecifierSet}``."""
    project = PYPROJECT["project"]
    out = {"python": SpecifierSet(project["requires-python"])}
    for line in project["dependencies"]:
        req = Requirement(line)
        assert req.marker is None and not req.extras, f"{line}: a conda recipe has no markers or extras; write it by hand"
        out[canonicalize_name(req.name)] = req.specifier
    return out


def test_recipe_renders_and_matches_pyproject() -> None:
    recipe = _rendered()
    package, build, requirements = recipe["package"], recipe["build"], recipe["requirements"]
    assert isinstance(package, dict) and isinstance(build, dict) and isinstance(requirements, dict)
    assert recipe["schema_version"] == 1
    assert package == {"name": PYPROJECT["project"]["name"], "version": PYPROJECT["project"]["version"]}
    assert build["noarch"] == "python"
    assert _conda_specs(requirements["run"]) == _pyproject_runtime()
    scripts = [f"{name} = {target}" for name, target in PYPROJECT["project"]["scripts"].items()]
    assert build["python"]["entry_points"] == scripts
    # The build backend comes from the recipe's host environment (no build isolation, no index).
    backend = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    host: dict[str, SpecifierSet] = {"python": _pyproject_runtime()["python"], "pip": SpecifierSet()}
    host.update((canonicalize_name(r.name), r.specifier) for r in backend)
    assert _conda_specs(requirements["host"]) == host


def test_conda_specs_compare_specifiers_not_text() -> None:
    """The comparison above is by meaning: a changed bound is a difference, spacing is not."""
    assert _conda_specs(["keyring >=25.2.1"]) == {"keyring": SpecifierSet(">=25.2.1")}
    assert _conda_specs(["keyring >=25.2.1"]) != {"keyring": SpecifierSet(">=25.2")}
    assert _conda_specs(["python >=3.11,<4"]) == {"python": SpecifierSet("<4,>=3.11")}


def _channel_requirements() -> list[str]:
    """What building and running privpkg needs: pyproject's dependencies and build backend."""
    return [*PYPROJECT["project"]["dependencies"], *PYPROJECT["build-system"]["requires"]]


@dataclass(frozen=True)
class Installed:
    channel: Channel
    package: Path  # the .conda file
    prefix: Path  # a fresh environment where py-rattler installed it
    seconds: dict[str, float]

    @property
    def python(self) -> Path:
        return self.prefix / "bin" / "python"

    def site_packages(self) -> Path:
        (sp,) = self.prefix.glob("lib/python3.*/site-packages")
        return sp


@pytest.fixture(scope="session")
def installed(shared_dir: Path) -> Installed:
    """privpkg's conda package built from the recipe and installed into a fresh prefix."""

    def build(dest: Path) -> None:
        import rattler
        from rattler.index import index_fs
        from rattler_build import Stage0Recipe, ToolConfiguration

        seconds: dict[str, float] = {}
        start = time.monotonic()
        channel = build_channel(_channel_requirements())
        seconds["channel"] = time.monotonic() - start
        start = time.monotonic()
        # Only the local channel: the build and the install below reach no network.
        results = Stage0Recipe.from_file(RECIPE).run_build(
            tool_config=ToolConfiguration(test_strategy="skip"), output_dir=dest / "build", channels=[channel.url]
        )
        (package,) = results[0].packages
        seconds["build"] = time.monotonic() - start
        start = time.monotonic()
        local = dest / "local-channel"
        (local / "noarch").mkdir(parents=True)
        shutil.copy2(package, local / "noarch")
        asyncio.run(index_fs(channel_directory=local, write_shards=False, write_zst=False, force=True))
        records = asyncio.run(rattler.solve(sources=[local.as_uri(), channel.url], specs=["privpkg"], platforms=["linux-64", "noarch"]))
        # A package cache of its own, so no earlier run's privpkg build (same file name) is reused.
        asyncio.run(rattler.install(records, target_prefix=dest / "prefix", cache_dir=dest / "pkgs", show_progress=False))
        seconds["install"] = time.monotonic() - start
        (dest / "result.json").write_text(json.dumps({"channel": str(channel.path), "package": str(local / "noarch" / package.name), "seconds": seconds}))

    dest = build_once(shared_dir, "conda-recipe", build)
    result = json.loads((dest / "result.json").read_text())
    return Installed(Channel(Path(result["channel"])), Path(result["package"]), dest / "prefix", result["seconds"])


@pytest.fixture
def prefix_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment (own HOME, no PIP_/KEYRING_ variables) for programs of the prefix."""
    return clean_env(tmp_path / "home")


@pytest.mark.integration
def test_channel_has_the_machines_python_and_repackaged_wheels(installed: Installed) -> None:
    repodata = {sub: json.loads((installed.channel.path / sub / "repodata.json").read_text()) for sub in ("noarch", "linux-64")}
    subdir_of = {rec["name"]: sub for sub, data in repodata.items() for rec in data["packages.conda"].values()}
    # Binary wheels (cryptography, cffi) are linux-64 packages, pure ones noarch, pip always there.
    assert subdir_of["python"] == subdir_of["cryptography"] == subdir_of["cffi"] == "linux-64"
    assert subdir_of["keyring"] == subdir_of["pip"] == subdir_of["hatchling"] == "noarch"
    # The prefix's python is a conda environment (its own sys.prefix) over this machine's stdlib,
    # and the machine's site-packages stay out of it.
    code = "import sys, json; print(json.dumps([sys.prefix, sys.base_prefix, sys.version.split()[0], [p for p in sys.path if 'site-packages' in p]]))"
    r = run([installed.python, "-c", code], clean_env(installed.prefix.parent / "home"))
    assert r.returncode == 0, r.describe()
    prefix, base, version, site = json.loads(r.output)
    assert Path(prefix) == installed.prefix
    assert Path(base) == Path(os.path.realpath(conda_channel.PythonInfo.current().binary)).parents[1]
    assert version == conda_channel.PythonInfo.current().version
    assert site == [str(installed.site_packages())]


@pytest.mark.integration
def test_channel_is_reused_not_rebuilt(installed: Installed, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same inputs find the cached folder (warm: no download, no packaging); other inputs
    (here another pip pinned beside it) get a folder of their own."""

    def no_build(*args: object) -> None:
        raise AssertionError("the cached channel was rebuilt")

    monkeypatch.setattr(conda_channel, "_fill", no_build)
    start = time.monotonic()
    assert build_channel(_channel_requirements()) == installed.channel
    assert time.monotonic() - start < 5
    with pytest.raises(AssertionError, match="rebuilt"):
        build_channel(_channel_requirements(), separately=[["pip==23.2.1"]], root=installed.prefix.parent / "other-cache")


@pytest.mark.integration
def test_privpkg_version_runs_in_the_prefix(installed: Installed, prefix_env: dict[str, str]) -> None:
    r = run([installed.prefix / "bin" / "privpkg", "--version"], prefix_env)
    assert r.returncode == 0, r.describe()
    assert PYPROJECT["project"]["version"] in r.output
    # conda wrote the console script for the prefix's python (link.json), not the build's.
    assert (installed.prefix / "bin" / "privpkg").read_text().startswith(f"#!{installed.python}")


@pytest.mark.integration
def test_keyring_cli_lists_privpkgs_backend(installed: Installed, prefix_env: dict[str, str]) -> None:
    r = run([installed.prefix / "bin" / "keyring", "--list-backends"], prefix_env)
    assert r.returncode == 0, r.describe()
    assert "privpkg.keyring_backend.PrivpkgKeyring" in r.output, r.describe()


@pytest.mark.integration
def test_pip_shim_pth_is_in_site_packages_and_loads(installed: Installed, prefix_env: dict[str, str]) -> None:
    pth = installed.site_packages() / SHIM_PTH.name
    assert pth.read_bytes() == SHIM_PTH.read_bytes()
    r = run([installed.python, "-c", "import sys; print([type(f).__name__ for f in sys.meta_path])"], prefix_env)
    assert r.returncode == 0, r.describe()
    assert "PrivpkgPipShimFinder" in r.output, r.describe()


@pytest.mark.integration
def test_entry_points_are_registered(installed: Installed, prefix_env: dict[str, str]) -> None:
    code = (
        "import json, importlib.metadata as m; d = m.distribution('privpkg'); "
        "print(json.dumps([[e.group, e.name, e.value] for e in d.entry_points] + [d.read_text('direct_url.json')]))"
    )
    r = run([installed.python, "-c", code], prefix_env)
    assert r.returncode == 0, r.describe()
    *entry_points, direct_url = json.loads(r.output)
    declared = PYPROJECT["project"]["entry-points"]
    for group in ("conda", "keyring.backends"):
        assert [group, "privpkg", declared[group]["privpkg"]] in entry_points
    # pip freeze in the environment says privpkg==VERSION, not the build's temp folder.
    assert direct_url is None
