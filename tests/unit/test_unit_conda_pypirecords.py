"""privpkg.conda.pypirecords in-process, without conda: the prefix-data loader that gives pip's
records of workspace wheels their ``privpkg://`` URL as channel, on a site-packages laid out as
pip lays it out (``NAME-VERSION.dist-info/direct_url.json``) and records shaped like those of
conda's pypi loader (``subdir`` "pypi", ``fn`` the dist-info folder's name, build "pypi_0")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import UserDict
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from privpkg.conda import pypirecords

SITE = "lib/python3.11/site-packages"
URL = "privpkg://loc/wheels/alpha_pkg-1.0-py3-none-any.whl"


@dataclass(frozen=True)
class Rec:
    """The fields of conda's PrefixRecord that the loader reads (conda's are Entities)."""

    name: str
    version: str
    subdir: str
    fn: str
    build: str = "pypi_0"
    channel: str = "pypi"
    python_site_packages_path: str | None = None


def relabel(rec: Rec, url: str) -> Rec:
    """What plugin.py's factory does with conda's types: a copy with only the channel changed."""
    return replace(rec, channel=url)


def dist(site: Path, name: str, version: str, direct_url: object | None = None, raw: bytes | None = None) -> Rec:
    """A distribution pip installed (its dist-info folder) and conda's pypi record for it."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    if raw is not None:
        (info / "direct_url.json").write_bytes(raw)
    elif direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))
    return Rec(name, version, "pypi", info.name)


def pip_direct_url(url: str) -> dict[str, object]:
    """direct_url.json as pip 26 writes it for ``name @ URL`` (the hash goes into archive_info)."""
    return {"archive_info": {"hash": "sha256=" + "ab" * 32, "hashes": {"sha256": "ab" * 32}}, "url": url}


@pytest.fixture
def prefix(tmp_path: Path) -> Path:
    return tmp_path / "envs" / "wl"


def conda_records(prefix: Path, *pip_recs: Rec) -> dict[str, Rec]:
    python = Rec("python", "3.11.7", "linux-64", "python-3.11.7-h608417e7_0.conda", build="h608417e7_0", channel="file:///chan")
    pip = Rec("pip", "26.3", "noarch", "pip-26.3-pyh8751d1db_0.conda", build="pyh8751d1db_0", channel="file:///chan")
    return {"python": python, "pip": pip, **{r.name: r for r in pip_recs}}


def test_privpkg_wheels_get_their_url_and_nothing_else_changes(prefix: Path) -> None:
    site = prefix / SITE
    alpha = dist(site, "alpha-pkg", "1.0", pip_direct_url(URL))
    beta = dist(site, "beta-pkg", "2.0")  # from an index: no direct_url.json
    gamma = dist(site, "gamma-pkg", "3.0", pip_direct_url("https://files.example/gamma_pkg-3.0-py3-none-any.whl"))
    local = dist(site, "delta-pkg", "4.0", {"url": "file:///tmp/delta", "dir_info": {"editable": True}})
    records = conda_records(prefix, alpha, beta, gamma, local)
    before = dict(records)

    replaced = pypirecords.show_privpkg_urls(prefix, records, relabel)

    assert replaced == {"alpha-pkg": replace(alpha, channel=URL)}
    assert records["alpha-pkg"].channel == URL
    # name, version, build, subdir, fn: conda's solver and env export read these; they stay.
    assert replace(records["alpha-pkg"], channel="pypi") == alpha
    assert {k: v for k, v in records.items() if k != "alpha-pkg"} == {k: v for k, v in before.items() if k != "alpha-pkg"}


def test_fragment_dropped(prefix: Path) -> None:
    """pip's ``#sha256=`` (when the pip section pinned one) is no part of the reference."""
    alpha = dist(prefix / SITE, "alpha-pkg", "1.0", pip_direct_url(URL + "#sha256=" + "ab" * 32))
    records = conda_records(prefix, alpha)
    assert pypirecords.show_privpkg_urls(prefix, records, relabel) == {"alpha-pkg": replace(alpha, channel=URL)}


def test_conda_mapping_type_and_str_prefix(prefix: Path) -> None:
    """conda passes a UserDict (PrefixRecordDict) and a Path; a str prefix works too."""
    alpha = dist(prefix / SITE, "alpha-pkg", "1.0", pip_direct_url(URL))
    records: UserDict[str, Rec] = UserDict(conda_records(prefix, alpha))
    assert list(pypirecords.show_privpkg_urls(str(prefix), records, relabel)) == ["alpha-pkg"]
    assert records["alpha-pkg"].channel == URL


@pytest.mark.parametrize("url", [
    "privpkg://user:secret@loc/wheels/alpha_pkg-1.0-py3-none-any.whl",  # userinfo: never shown
    "privpkg://token@loc/wheels/alpha_pkg-1.0-py3-none-any.whl",
    "privpkg://loc/wheels/alpha_pkg-1.0-py3-none-any.whl?sig=abc123",  # a query could be a signature
    "privpkg://loc/wheels/sub/alpha_pkg-1.0-py3-none-any.whl",  # not the grammar (privpkg.refs)
    "privpkg://loc/environments/train",
    "privpkg://loc/wheels/alpha_pkg-1.0-py3-none-any.whl%0a",
    "privpkg://loc/wheels/alpha pkg.whl",
    "privpkg://loc/wheels/alpha.whl\nX",
    "privpkg://loc",
    "privpkg:///wheels/alpha.whl",
    "PRIVPKG-LIKE://loc/x.whl",
    "https://loc.blob.core.windows.net/c/alpha_pkg-1.0-py3-none-any.whl?sv=2026-10-06&sig=abc",
])
def test_urls_that_are_not_shown(prefix: Path, url: str) -> None:
    alpha = dist(prefix / SITE, "alpha-pkg", "1.0", pip_direct_url(url))
    records = conda_records(prefix, alpha)
    assert pypirecords.show_privpkg_urls(prefix, records, relabel) == {}
    assert records["alpha-pkg"] is alpha


@pytest.mark.parametrize("raw", [
    b"not json",
    b"[\"privpkg://loc/wheels/a.whl\"]",
    b"{\"url\": 42}",
    b"\xff\xfe",
    json.dumps({"url": URL, "pad": "x" * pypirecords.MAX_DIRECT_URL_BYTES}).encode(),
])
def test_direct_url_files_that_are_not_pips(prefix: Path, raw: bytes) -> None:
    alpha = dist(prefix / SITE, "alpha-pkg", "1.0", raw=raw)
    records = conda_records(prefix, alpha)
    assert pypirecords.show_privpkg_urls(prefix, records, relabel) == {}
    assert records["alpha-pkg"] is alpha


def test_only_pip_records_of_conda_are_read(prefix: Path) -> None:
    """A conda package's record (subdir linux-64/noarch) is never relabelled, even beside a
    dist-info with a privpkg URL; an fn that is not a plain dist-info name is not followed."""
    site = prefix / SITE
    alpha = dist(site, "alpha-pkg", "1.0", pip_direct_url(URL))
    as_conda = replace(alpha, subdir="noarch", build="pyh_0", channel="file:///chan")
    outside = prefix / "elsewhere.dist-info"
    outside.mkdir(parents=True)
    (outside / "direct_url.json").write_text(json.dumps(pip_direct_url(URL)))
    climbing = Rec("climb", "1.0", "pypi", "../../../elsewhere.dist-info")
    egg = Rec("egg-pkg", "1.0", "pypi", "egg_pkg-1.0-py3.11.egg-info")
    records = conda_records(prefix, as_conda, climbing, egg)
    assert pypirecords.show_privpkg_urls(prefix, records, relabel) == {}


def test_no_python_no_site_packages(prefix: Path) -> None:
    """conda's pypi loader finds nothing without a python record: nor does privpkg's, and it
    touches no record (conda keeps unread conda-meta records unconverted)."""

    class Untouchable(UserDict[str, Rec]):
        def __iter__(self):  # type: ignore[no-untyped-def]
            raise AssertionError("iterated")

    alpha = dist(prefix / SITE, "alpha-pkg", "1.0", pip_direct_url(URL))
    assert pypirecords.show_privpkg_urls(prefix, Untouchable({"alpha-pkg": alpha}), relabel) == {}
    no_version = {"python": Rec("python", "", "linux-64", "python.conda"), "alpha-pkg": alpha}
    assert pypirecords.show_privpkg_urls(prefix, no_version, relabel) == {}


def test_site_packages_from_the_python_record(prefix: Path) -> None:
    """CEP 17's python_site_packages_path wins (a free-threading python's lib/python3.13t)."""
    alpha = dist(prefix / "lib/python3.13t/site-packages", "alpha-pkg", "1.0", pip_direct_url(URL))
    records = conda_records(prefix, alpha)
    records["python"] = replace(records["python"], version="3.13.1", python_site_packages_path="lib/python3.13t/site-packages")
    assert list(pypirecords.show_privpkg_urls(prefix, records, relabel)) == ["alpha-pkg"]
    assert pypirecords.site_packages_dir(Rec("python", "3.12.0", "linux-64", "p")) == (
        "Lib/site-packages" if os.name == "nt" else "lib/python3.12/site-packages")
    assert pypirecords.site_packages_dir(Rec("python", "3", "linux-64", "p")) is None


def test_exported_pip_lines() -> None:
    """``conda export --format privpkg-yaml``: conda's NAME==VERSION lines, workspace wheels as
    NAME @ URL (names as conda's records spell them); anything else as conda wrote it."""
    urls = {"alpha-pkg": URL}
    lines = ["alpha-pkg==1.0", "beta-pkg==2.0", "--no-index", {"odd": 1}, "alpha-pkg-extra==1.0"]
    assert pypirecords.pip_lines_with_urls(lines, urls) == [f"alpha-pkg @ {URL}", "beta-pkg==2.0", "--no-index", {"odd": 1},
                                                            "alpha-pkg-extra==1.0"]
    assert pypirecords.is_shown_url(URL) and not pypirecords.is_shown_url("pypi")
    assert not pypirecords.is_shown_url("https://conda.anaconda.org/pypi")


def test_loader_runs_after_condas_pypi_loader() -> None:
    """conda 26.7 sorts prefix-data loaders by name (PluginManager.get_hook_results), whatever
    their tryfirst: privpkg's must come after "pypi" to see its records."""
    assert sorted([pypirecords.LOADER_NAME, "pypi"]) == ["pypi", pypirecords.LOADER_NAME]
    assert pypirecords.LOADER_NAME == pypirecords.LOADER_NAME.lower().strip()


def test_import_is_light() -> None:
    """conda imports it on every conda list: the standard library only, no store, no keyring."""
    code = "import sys, privpkg.conda.pypirecords; print(' '.join(sorted(m for m in sys.modules if m.startswith(('privpkg', 'keyring', 'cryptography')))))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert r.stdout.split() == ["privpkg", "privpkg.conda", "privpkg.conda.pypirecords", "privpkg.errors", "privpkg.refs"], r.stdout
