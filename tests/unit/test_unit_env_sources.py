"""privpkg.environments.sources: specs from a conda environment file, a requirements file
(``-r`` includes read in place, ``-c`` constraints kept apart), an existing conda environment
(its ``conda-meta`` records: tests/unit/data/conda-meta holds two that conda 26 wrote, their
machine paths and most of their file lists cut) and an existing virtualenv."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from privpkg.environments import sources
from privpkg.errors import NotFoundError, UsageError

DATA = Path(__file__).parent / "data" / "conda-meta"
WS_URL = "privpkg://team/wheels/ws_pkg-1.0-py3-none-any.whl"


def test_conda_file(tmp_path: Path) -> None:
    f = tmp_path / "environment.yml"
    f.write_text("name: ignored\nchannels:\n  - conda-forge\n  - defaults\ndependencies:\n  - python=3.11\n  - numpy >=1.26\n"
                 "  - pip:\n    - requests>=2  # a comment\n    - --extra-index-url https://__token__:${PAT}@pkgs.example/simple/\n"
                 f"    - ws-pkg @ {WS_URL}\nvariables:\n  OMP_NUM_THREADS: 4\n")
    spec = sources.from_conda_specification("train", f)
    d = spec.definition()
    assert d["conda"] == {"channels": ["conda-forge", "defaults"], "dependencies": ["numpy >=1.26", "python=3.11"]}
    assert d["pip"] == ["--extra-index-url https://__token__:${PAT}@pkgs.example/simple/", "requests>=2", f"ws-pkg @ {WS_URL}"]
    assert d["variables"] == {"OMP_NUM_THREADS": "4"}
    assert spec.sources == (("environment.yml", f.read_bytes()),)


@pytest.mark.parametrize(("text", "match"), [
    ("dependencies: [python, {pip: [-e ./src]}]\n", "editable"),
    ("dependencies: [python, {pip: [-r other.txt]}]\n", "list the requirements themselves"),
    ("dependencies: {python: 3}\n", "must be lists"),
    ("dependencies: [python\n", "not valid YAML"),
    ("- a\n- b\n", "not a conda environment file"),
])
def test_bad_conda_files_are_one_line(tmp_path: Path, text: str, match: str) -> None:
    f = tmp_path / "environment.yml"
    f.write_text(text)
    with pytest.raises(UsageError, match=match) as info:
        sources.from_conda_specification("train", f)
    assert "\n" not in str(info.value)


def test_requirements_with_includes_and_constraints(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "base.txt").write_text("attrs\n-r sub/more.txt\n")
    (tmp_path / "sub" / "more.txt").write_text("idna \\\n  >=3\n-c ../pins.txt\n")
    (tmp_path / "pins.txt").write_text("# pins\nidna==3.7\n")
    req = tmp_path / "req.txt"
    req.write_text("--index-url https://pkgs.example/simple/\nrequests>=2\n-r base.txt\n")
    spec = sources.from_pip_requirements("train", req)
    assert spec.definition()["pip"] == ["--index-url https://pkgs.example/simple/", "attrs", "idna>=3", "requests>=2"]
    assert spec.definition()["constraints"] == ["idna==3.7"]
    assert [n for n, _ in spec.sources] == ["req.txt", "base.txt", "more.txt", "pins.txt"]
    (tmp_path / "pins.txt").write_text("-r req.txt\n")
    with pytest.raises(UsageError, match="included twice"):
        sources.from_pip_requirements("train", req)


@pytest.mark.parametrize("line", ["-e .", "./pkg", "/abs/pkg.whl", "file:///x/pkg.whl", "pkg @ file:///x/pkg.whl"])
def test_local_paths_are_refused(tmp_path: Path, line: str) -> None:
    req = tmp_path / "req.txt"
    req.write_text(f"attrs\n{line}\n")
    with pytest.raises(UsageError, match="local path or an editable"):
        sources.from_pip_requirements("train", req)


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):  # a missing input file: usage (exit 2)
        sources.from_pip_requirements("train", tmp_path / "nope.txt")


def make_dist(site: Path, name: str, version: str, installer: str = "pip", url: str | None = None) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text(installer + "\n")
    if url:
        (info / "direct_url.json").write_text(json.dumps({"url": url + "#sha256=00ff", "archive_info": {}}))


def make_prefix(root: Path) -> Path:
    """A conda prefix: the two real records, pip's dist-info (conda's) and two pip installs."""
    (root / "conda-meta").mkdir(parents=True)
    for f in DATA.glob("*.json"):
        shutil.copy(f, root / "conda-meta" / f.name)
    (root / "conda-meta" / "history").write_text("")
    site = root / "lib" / "python3.11" / "site-packages"
    make_dist(site, "pip", "26.3", installer="conda")  # listed in pip's record
    make_dist(site, "certifi", "2024.2.2", installer="conda")  # its record not there: conda's all the same
    make_dist(site, "feed_pkg", "1.0")
    make_dist(site, "ws_pkg", "1.0", url=WS_URL)
    return root


def test_existing_conda_environment_by_envs_dir(tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_prefix(tmp_path / "envs" / "wl")
    spec = sources.from_existing_conda_environment("train", "wl", environ={"CONDA_ENVS_PATH": str(tmp_path / "envs")}, home=home)
    d = spec.definition()
    assert d["conda"]["dependencies"] == ["pip==26.3=pyh8751d1db_0", "python==3.11.7=h608417e7_0"]
    assert d["conda"]["channels"] == ["https://conda.example.com/team"], "token and platform folder stripped"
    assert d["pip"] == ["feed-pkg==1.0", f"ws-pkg @ {WS_URL}"]
    assert d["python"] == "3.11.7"
    assert "SECRET123" not in spec.definition_bytes().decode()


def test_conda_environment_found_as_conda_finds_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_prefix(home / "elsewhere" / "wl")
    make_prefix(tmp_path / "root")
    (home / ".condarc").parent.mkdir(parents=True, exist_ok=True)
    (home / ".condarc").write_text(f"envs_dirs:\n  - {home / 'elsewhere'}\n")
    environ = {"CONDA_ROOT": str(tmp_path / "root")}
    assert sources.find_conda_prefix("wl", environ, home) == home / "elsewhere" / "wl"
    assert sources.find_conda_prefix("base", environ, home) == tmp_path / "root"
    assert sources.find_conda_prefix(str(home / "elsewhere" / "wl"), environ, home) == home / "elsewhere" / "wl"
    with pytest.raises(NotFoundError, match="no conda environment named 'nope'"):
        sources.find_conda_prefix("nope", environ, home)
    with pytest.raises(NotFoundError, match="no conda-meta"):
        sources.find_conda_prefix(str(tmp_path), environ, home)


def test_existing_virtualenv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\nversion_info = 3.12.4.final.0\n")
    site = venv / "lib" / "python3.12" / "site-packages"
    make_dist(site, "pip", "24.0")
    make_dist(site, "Feed.Pkg", "2.0")
    make_dist(site, "ws_pkg", "1.0", url=WS_URL)
    with pytest.warns(sources.UnindexedPackagesWarning, match="names 1 package"):
        spec = sources.from_existing_virtualenv("train", venv)
    assert spec.definition()["pip"] == ["feed-pkg==2.0", f"ws-pkg @ {WS_URL}"]
    assert spec.python == "3.12.4"
    make_dist(site, "edit_me", "0.1")
    (site / "edit_me-0.1.dist-info" / "direct_url.json").write_text(json.dumps({"url": "file:///src", "dir_info": {"editable": True}}))
    with pytest.raises(UsageError, match="edit-me is an editable install"):
        sources.from_existing_virtualenv("train", venv)
    with pytest.raises(UsageError, match="not a virtualenv"):
        sources.from_existing_virtualenv("train", tmp_path)
