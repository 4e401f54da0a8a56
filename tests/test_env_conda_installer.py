"""``privpkg env build`` of a conda explicit list with real conda (issue 10 item 4: "a conda
prefix, conda when present, else py-rattler").

The list names a private loopback channel demanding a Bearer token. privpkg fetches and checks the
packages itself (the connection's token), then conda installs them offline from ``file://``
copies in a scratch folder, with a scratch HOME, condarc and package cache. Shown: the build says
conda made it; the prefix works and ``conda list`` reads it; its ``conda-meta`` records and
history name the lock's URLs, no local path of the build and no token; the same lock built
where no conda is found (py-rattler) gives the same packages and files.

conda is on no registry here: these tests skip only when conda is absent (tests/support/conda.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import test_env_conda_pip
from support.cli import PrivpkgCLI
from support.conda import Conda
from support.env import assert_caches_clean
from support.feeds import FeedServer
from test_env_build import feed_wheel, grep_tree, lock_text

from privpkg import envvars

#: The fixture (a loopback channel whose only package is a python), shared with test_env_conda_pip.
other_python_channel = test_env_conda_pip.other_python_channel

PACKAGES = ("privtool-1.1-0.tar.bz2", "privdata-2.0-0.tar.bz2")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def records(prefix: Path) -> dict[str, dict[str, Any]]:
    """The prefix's conda-meta records by file name."""
    return {p.name: json.loads(p.read_text()) for p in (prefix / "conda-meta").glob("*.json")}


def installed_files(prefix: Path) -> set[str]:
    return {str(p.relative_to(prefix)) for p in prefix.rglob("*") if p.is_file() and "conda-meta" not in p.parts}


def test_conda_builds_the_prefix_when_present_and_py_rattler_gives_the_same(
        conda: Conda, checked_cli: Callable[..., PrivpkgCLI], channel_server: Any, tmp_path: Path) -> None:
    secret = channel_server.secrets["bearer"]
    cli = checked_cli(secret)
    base = channel_server.url("bearer")
    cli.ok("connection", "set", "chan", "--category", "CondaChannel", "--auth-type", "Bearer", "--target", base, stdin=secret + "\n")
    lines = ["# platform: linux-64", "@EXPLICIT"]
    lines += [f"{base}noarch/{fn}#sha256:{sha(channel_server.dir / 'noarch' / fn)}" for fn in PACKAGES]
    lock = tmp_path / "conda-linux-64.txt"
    lock.write_text("\n".join(lines) + "\n")
    cache = Path(cli.env[envvars.HOME]) / "cache"

    # conda present as an activated conda names it: $CONDA_EXE (PATH has no conda).
    with_conda = {"CONDA_EXE": str(conda.exe)}
    res = cli("env", "build", "--lock", lock, env=with_conda)
    assert res.returncode == 0, res.stdout + res.stderr
    prefix = Path(res.stdout.strip())
    assert f"installed 2 conda package(s) with conda ({conda.exe})" in res.stderr, res.stderr
    assert (prefix / "share" / "privtool" / "privtool.txt").read_text() == "privtool 1.1\n"
    by_conda = records(prefix)
    assert sorted(by_conda) == ["privdata-2.0-0.json", "privtool-1.1-0.json"], sorted(by_conda)
    for fn in PACKAGES:
        meta = by_conda[fn.removesuffix(".tar.bz2") + ".json"]
        assert meta["url"] == f"{base}noarch/{fn}" and meta["channel"] == base.rstrip("/"), meta
    history = (prefix / "conda-meta" / "history").read_text()
    assert f"+{base}noarch::privtool-1.1-0" in history and f"'{base}noarch::privdata==2.0=0'" in history, history
    assert by_conda["privtool-1.1-0.json"]["requested_spec"] == f"{base}noarch::privtool==1.1=0"
    # No local path of the build (the scratch list, package cache or home) and no token in the
    # prefix's metadata; the scratch folder is gone.
    meta_text = "\n".join(p.read_text() for p in (prefix / "conda-meta").iterdir())
    assert "file:" not in meta_text and str(tmp_path) not in meta_text and "conda-pkgs" not in meta_text, meta_text
    assert not list((cache / "envs").glob("conda-*")), list((cache / "envs").iterdir())
    assert grep_tree(prefix, secret) > 4
    # conda reads the prefix it made (the records are still conda's own).
    listed = json.loads(conda.ok("list", "--prefix", prefix, "--json").stdout)
    assert sorted((p["name"], p["version"], p["build_string"]) for p in listed) == [("privdata", "2.0", "0"), ("privtool", "1.1", "0")]
    # The second build is a hit, with or without conda.
    requests = len(channel_server.log())
    assert cli.ok("env", "build", "--lock", lock, env=with_conda).strip() == str(prefix)
    assert cli.ok("env", "build", "--lock", lock).strip() == str(prefix)
    assert len(channel_server.log()) == requests

    # The same lock where no conda is found: py-rattler, the same packages and files.
    files = installed_files(prefix)
    assert "removed 1 unreferenced build" in cli.ok("env", "prune", "--older-than", "0")
    assert shutil.which("conda", path=cli.env["PATH"]) is None and "CONDA_EXE" not in cli.env
    res = cli("env", "build", "--lock", lock)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "with py-rattler" in res.stderr, res.stderr
    other = Path(res.stdout.strip())
    assert other != prefix and not prefix.exists()
    by_rattler = records(other)
    assert sorted(by_rattler) == sorted(by_conda)
    for name, meta in by_rattler.items():
        keys = ("name", "version", "build", "url", "channel", "sha256", "fn")
        assert {k: meta.get(k) for k in keys} == {k: by_conda[name].get(k) for k in keys}, name
        assert sorted(meta["files"]) == sorted(by_conda[name]["files"]), name
    # py-rattler also marks the prefix with a CACHEDIR.TAG (backup tools skip it); conda does not.
    assert installed_files(other) - {"CACHEDIR.TAG"} == files, installed_files(other) ^ files
    assert grep_tree(cache, secret) > 4


def test_a_conda_and_pip_version_is_built_with_conda_too(
        conda: Conda, other_python_channel: str, feed: FeedServer, checked_cli: Callable[..., PrivpkgCLI],
        store_connection: Callable[..., Any], tmp_path: Path) -> None:
    """Both parts (``--lock`` twice): conda makes the prefix with its python, then the pip part's
    PAT-feed wheel goes in offline, as without conda; no secret anywhere."""
    store_connection("feed-a", feed.index_a, feed.secret_a)
    cli = checked_cli(*feed.secrets)
    with urllib.request.urlopen(f"{other_python_channel}linux-64/repodata.json", timeout=30) as r:  # loopback
        repodata = json.load(r)
    ((fn, rec),) = {**repodata.get("packages", {}), **repodata.get("packages.conda", {})}.items()
    conda_lock = tmp_path / "conda-linux-64.txt"
    conda_lock.write_text(f"@EXPLICIT\n{other_python_channel}linux-64/{fn}#sha256:{rec['sha256']}\n")
    pip_lock = tmp_path / "pylock.toml"
    pip_lock.write_text(lock_text([feed_wheel(feed, tmp_path)]))
    res = cli("env", "build", "--lock", conda_lock, "--lock", pip_lock, env={"CONDA_EXE": str(conda.exe)})
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"installed 1 conda package(s) with conda ({conda.exe})" in res.stderr, res.stderr
    env = Path(res.stdout.strip())
    run = cli.tool([env / "bin" / "python", "-c", "import sys, pkg_a; print(sys.prefix)"])
    assert run.returncode == 0 and run.output.strip() == str(env), run.describe()
    meta = records(env)[fn.removesuffix(".tar.bz2").removesuffix(".conda") + ".json"]
    assert meta["url"] == f"{other_python_channel}linux-64/{fn}", meta
    assert "file:" not in "".join(p.read_text() for p in (env / "conda-meta").iterdir())
    assert grep_tree(env, *feed.secrets) > 10
    assert_caches_clean(cli.env, *feed.secrets)
