"""A conda spec with a pip part (an environment.yml with ``- pip:`` items): its pip part is locked
for the python the conda part installs, not privpkg's, and ``env build`` makes one prefix with
both parts, cached.

The channel (loopback http, plain: the tests' channels are served so) holds one package, a
``python`` of ANOTHER minor version than the tests' interpreter (pyenv's, made as
tests/support/conda_channel.py makes this machine's), so a marker in the pip part shows which
interpreter pip locked for. The pip part needs the PAT feed (the connection answers pip's
keyring lookup through privpkg's launcher) and a ``privpkg://`` wheel of a local workspace
(signed by the shim's copy). One test runs the whole flow: a few seconds, one channel.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from support.builds import pyenv_python
from support.cli import PrivpkgCLI, assert_one_error_line
from support.env import assert_caches_clean
from support.feeds import FeedServer, ServedHTTP
from test_env_build import grep_tree

from privpkg import envvars
from privpkg.environments import condalock, locking, pylock
from privpkg.errors import UsageError
from privpkg.testing import make_wheel

WS = "team"
#: Another minor than the tests' own interpreter, so the lock's interpreter shows in a marker.
MINOR = "3.12" if sys.version_info[:2] != (3, 12) else "3.11"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def other_python_channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A loopback channel whose only package is pyenv's CPython MINOR as ``python`` (linux-64)."""
    from rattler.index import index_fs
    from support.conda_channel import PythonInfo, make_python_package

    exe = pyenv_python(MINOR)
    version = subprocess.run([exe, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True,
                             check=True).stdout.strip()
    root = tmp_path_factory.mktemp("channel")
    for subdir in ("noarch", "linux-64"):
        (root / subdir).mkdir()
    make_python_package(PythonInfo(Path(os.path.realpath(exe)), version, MINOR), root / "linux-64", tmp_path_factory.mktemp("staging"))
    asyncio.run(index_fs(channel_directory=root, write_shards=False, write_zst=False, force=True))
    server = ServedHTTP(functools.partial(_Quiet, directory=str(root)))
    try:
        yield server.base + "/"
    finally:
        server.stop()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_conda_spec_with_a_pip_part_is_locked_for_the_prefix_python_and_built_as_one_prefix(
        other_python_channel: str, feed: FeedServer, checked_cli: Callable[..., PrivpkgCLI], store_connection: Callable[..., Any],
        tmp_path: Path) -> None:
    cli = checked_cli(*feed.secrets)
    home = Path(cli.env[envvars.HOME])
    store_connection("orgA", feed.index_a, feed.secret_a)
    # Only for the prefix's python: in the lock only if pip locked for that interpreter.
    only_there = make_wheel(tmp_path / "feed" / "a", "pkg-c", "1.0")  # the feed fixture serves tmp_path/feed/a
    cli.ok("workspace", "add", WS, "--local", tmp_path / "ws")
    team = make_wheel(tmp_path / "dist", "team-lib", "1.0")
    team_url = cli.ok("wheel", "add", team, "--workspace", WS).strip().splitlines()[-1]
    yml = tmp_path / "environment.yml"
    yml.write_text(f"name: sci\nchannels:\n  - {other_python_channel}\ndependencies:\n  - python\n  - pip:\n"
                   f"    - --index-url {feed.index_a}\n    - pkg-a\n    - pkg-c ; python_version == '{MINOR}'\n"
                   f"    - team-lib @ {team_url}\n")
    definition = tmp_path / "sci"
    cli.ok("env", "create", "sci", "-f", yml, "-o", definition)
    assert "registered sci:1" in cli.ok("env", "register", definition, "--workspace", WS)

    # The lock: the conda list, and a pylock.toml made for the prefix's python (pkg-c's marker held).
    read = ("import json, sys; from privpkg.environments.api import Environment; "
            f"print(json.dumps(Environment.get({WS!r}, 'sci').locks))")
    res = cli.tool([sys.executable, "-c", read])
    assert res.returncode == 0, res.describe()
    locks = json.loads(res.output.strip().splitlines()[-1])
    conda_name = condalock.file_name(condalock.current_platform())
    assert sorted(locks) == sorted([conda_name, "pylock.toml"]), locks
    assert [a.name for a in condalock.load_explicit(locks[conda_name])] == ["python"]
    arts = {a.name: a for a in pylock.load(locks["pylock.toml"]).artifacts()}
    assert sorted(arts) == ["pkg-a", "pkg-c", "team-lib"], locks["pylock.toml"]
    assert arts["team-lib"].url == team_url and arts["team-lib"].sha256 == sha(team)
    assert arts["pkg-c"].url == f"{feed.index_a}pkg-c/{only_there.name}"
    text = "\n".join(locks.values())
    cli.outputs.add("locks", text)
    assert "@" not in text.replace("@EXPLICIT", "") and "sig=" not in text and "file:" not in text, text
    # The lock step used the cached conda prefix read-only: no shim was left in it.
    (prefix,) = (home / "cache" / "envs" / "builds").iterdir()
    assert not list(prefix.glob("lib/python*/site-packages/*privpkg*")), list(prefix.rglob("*privpkg*"))

    # The build: one prefix with the conda python and the pip part's wheels, installed offline.
    link = tmp_path / "env"
    env = Path(cli.ok("env", "build", "sci", "--workspace", WS, "--link", link).strip())
    assert env != prefix and os.readlink(link) == str(env)

    def installed(env: Path) -> Path:
        """The prefix's python is MINOR, its prefix the build, with the pip part importable and
        the privpkg:// wheel's direct_url.json naming its URL; returns site-packages."""
        code = (f"import sys, pkg_a, pkg_c, team_lib; print(sys.version_info[:2] == {tuple(map(int, MINOR.split('.')))}, "
                f"sys.prefix == {str(env)!r}, team_lib.VERSION)")
        run = cli.tool([env / "bin" / "python", "-c", code])
        assert run.returncode == 0 and run.output.split() == ["True", "True", "1.0"], run.describe()
        (site,) = env.glob(f"lib/python{MINOR}/site-packages")
        direct = json.loads((site / "team_lib-1.0.dist-info" / "direct_url.json").read_text())
        assert direct["url"] == team_url, direct
        return site

    site = installed(env)
    assert not (site / "pkg_a-1.0.dist-info" / "direct_url.json").exists()
    assert json.loads((env / "conda-meta" / next(p.name for p in (env / "conda-meta").glob("python-*.json"))).read_text())["url"] \
        .startswith(other_python_channel)
    assert not list(site.glob("*privpkg*")), "the pip shim is not part of a build"

    # A hit: the same prefix, nothing fetched; path and run work on it.
    requests = len(feed.log())
    assert cli.ok("env", "build", "sci", "--workspace", WS).strip() == str(env)
    assert cli.ok("env", "path", "sci", "--workspace", WS).strip() == str(env)
    # An image of the pip part alone would lack the conda packages without a word: refused.
    res = cli("env", "dockerfile", "sci", "--workspace", WS, "-o", tmp_path / "image")
    assert "has conda locks" in assert_one_error_line(res, 2) and not (tmp_path / "image").exists()
    res = cli("env", "run", "sci", "--workspace", WS, "--", "python", "-c", "import os, pkg_c; print(os.environ['CONDA_PREFIX'])")
    assert res.returncode == 0 and res.stdout.strip() == str(env), res.stderr
    # The Python API's build_local is the same build.
    res = cli.tool([sys.executable, "-c", f"import privpkg; print(privpkg.Environment.get({WS!r}, 'sci', 1).build_local())"])
    assert res.returncode == 0 and res.output.strip().splitlines()[-1] == str(env), res.describe()
    # The same two locks as files: the same prefix; two files that are not one of each: one line.
    (tmp_path / conda_name).write_text(locks[conda_name])
    (tmp_path / "pylock.toml").write_text(locks["pylock.toml"])
    assert cli.ok("env", "build", "--lock", tmp_path / "pylock.toml", "--lock", tmp_path / conda_name).strip() == str(env)
    cli.fails(2, "env", "build", "--lock", tmp_path / "pylock.toml", "--lock", tmp_path / "pylock.toml", match="one conda explicit list")
    assert len(feed.log()) == requests, feed.log_text()
    # A build whose pip part fails (a file that does not match the lock) publishes nothing and
    # leaves no prefix: the conda part alone is never a hit for both.
    builds = sorted(p.name for p in (home / "cache" / "envs" / "builds").iterdir())
    keys = sorted(p.name for p in (home / "cache" / "envs" / "keys").iterdir())
    pkg_a_sha = arts["pkg-a"].sha256
    (tmp_path / "bad.toml").write_text(locks["pylock.toml"].replace(pkg_a_sha, "0" * 64))
    cli.fails(1, "env", "build", "--lock", tmp_path / conda_name, "--lock", tmp_path / "bad.toml", match="sha256")
    assert sorted(p.name for p in (home / "cache" / "envs" / "builds").iterdir()) == builds
    assert sorted(p.name for p in (home / "cache" / "envs" / "keys").iterdir()) == keys
    # prune keeps both referenced builds (the conda part's, used by the lock, and this one).
    assert "removed 0 unreferenced builds" in cli.ok("env", "prune")

    # The lock rules still hold: unpinned pkg-a stays at 1.0 until asked to move (the previous
    # lock's pins as constraints), and the new lock is again made for the prefix's python.
    make_wheel(tmp_path / "feed" / "a", "pkg-a", "1.1")
    assert "the lock is unchanged, no new version" in cli.ok("env", "lock", "sci", "--workspace", WS)
    assert "registered as sci:2" in cli.ok("env", "lock", "sci", "--workspace", WS, "--package", "pkg-a")
    res = cli.tool([sys.executable, "-c", read.replace("'sci'", "'sci', 2")])
    assert res.returncode == 0, res.describe()
    pip2 = json.loads(res.output.strip().splitlines()[-1])["pylock.toml"]
    cli.outputs.add("sci:2 pylock.toml", pip2)
    assert sorted((a.name, a.version) for a in pylock.load(pip2).artifacts()) == [("pkg-a", "1.1"), ("pkg-c", "1.0"), ("team-lib", "1.0")]

    # pip instead of uv: privpkg's own pip under the prefix's python (the prefix has no pip).
    assert "removed 2 unreferenced builds" in cli.ok("env", "prune", "--older-than", "0")
    env = Path(cli.ok("env", "build", "--lock", tmp_path / conda_name, "--lock", tmp_path / "pylock.toml", "--installer", "pip").strip())
    assert not list(installed(env).glob("pip-*")), "no pip was installed into the prefix"
    # build_local's report gets the line env build prints when it makes a prefix.
    assert "removed 1 unreferenced build" in cli.ok("env", "prune", "--older-than", "0")
    res = cli.tool([sys.executable, "-c", f"import privpkg; print(privpkg.Environment.get({WS!r}, 'sci', 2).build_local(report=print))"])
    assert res.returncode == 0, res.describe()
    assert "installed" in res.output and "conda package(s) with py-rattler" in res.output, res.describe()

    # No secret or signature in the cache, the prefix or uv's cache (inside privpkg's; outputs: checked_cli).
    assert grep_tree(home / "cache", *feed.secrets) > 10
    assert grep_tree(home / "cache" / "envs" / "uv", *feed.secrets) > 0
    grep_tree(Path(cli.env["XDG_CACHE_HOME"]), *feed.secrets)


def test_an_azure_workspace_wheel_in_the_pip_part_leaves_no_signature(
        other_python_channel: str, checked_cli: Callable[..., PrivpkgCLI], azurite: Any, tmp_path: Path) -> None:
    """A ``privpkg://`` wheel of an Azurite workspace (the registry stays local: the registry's
    backends are test_env_registry's): the lock's pip run signs through the shim's copy
    (privpkg's interpreter, a SAS), the build through fetch. No output, no file of the cache,
    the prefix or uv's cache holds a signature or the key."""
    cli = checked_cli(azurite.key)
    container = azurite.create_container()
    cli.ok("workspace", "add", "cloud", "--azure", container)
    cli.ok("workspace", "add", WS, "--local", tmp_path / "ws")
    cli.ok("connection", "set", "team-blob", "--category", "AzureBlob", "--target", container, stdin=azurite.key + "\n")
    whl = make_wheel(tmp_path / "dist", "cloud-lib", "2.0")
    url = cli.ok("wheel", "add", whl, "--workspace", "cloud").strip().splitlines()[-1]
    yml = tmp_path / "environment.yml"
    yml.write_text(f"name: cloud\nchannels:\n  - {other_python_channel}\ndependencies:\n  - python\n  - pip:\n"
                   f"    - --no-index\n    - cloud-lib @ {url}\n")
    cli.ok("env", "create", "cloud", "-f", yml, "-o", tmp_path / "cloud")
    assert "registered cloud:1" in cli.ok("env", "register", tmp_path / "cloud", "--workspace", WS)
    env = Path(cli.ok("env", "build", "cloud", "--workspace", WS).strip())
    assert_caches_clean(cli.env, azurite.key)
    assert "sig=" not in cli.outputs.text()
    (site,) = env.glob(f"lib/python{MINOR}/site-packages")
    assert json.loads((site / "cloud_lib-2.0.dist-info" / "direct_url.json").read_text())["url"] == url


def test_a_pip_part_for_another_conda_platform_or_without_python_is_one_line(
        other_python_channel: str, checked_cli: Callable[..., PrivpkgCLI], tmp_path: Path) -> None:
    """pip lock has no --platform: a spec with a pip part asking for another conda platform is
    refused before anything is solved or fetched. A conda part whose prefix has no python
    leaves the pip part no interpreter: one line too."""
    empty = tmp_path / "prefix"
    empty.mkdir()
    no_python = {"conda": {"channels": [other_python_channel], "dependencies": ["python"]}, "pip": ["pkg-a"]}
    with pytest.raises(UsageError, match=r"^the conda part installs no python, so its pip part has no interpreter"):
        locking.lock_spec(no_python, conda_prefix=lambda text: empty)
    spec = {"conda": {"channels": ["https://conda.example/c/"], "dependencies": ["python"]}, "pip": ["pkg-a"],
            "platforms": [condalock.current_platform(), "osx-arm64"]}
    with pytest.raises(UsageError, match=r"conda platform osx-arm64: a spec with a pip part is locked for this machine's platform"):
        locking.lock_spec(spec, conda_prefix=lambda text: pytest.fail("nothing is built"))
    definition = tmp_path / "d"
    definition.mkdir()
    (definition / "definition.json").write_text(json.dumps({"format": 1, "name": "d", **spec}))
    res = checked_cli()("env", "lock", definition)
    assert "pip lock has no --platform" in assert_one_error_line(res, 2)


def test_every_file_of_a_lock_makes_the_key_of_a_build_with_both_parts() -> None:
    """``Lock.artifacts``: wheels, sdist and archive of every package whatever its marker (the
    key of a conda+pip build, made before the prefix's python exists to select with)."""
    z = "0" * 64
    text = ('lock-version = "1.0"\ncreated-by = "pip"\n'
            '[[packages]]\nname = "a"\nversion = "1.0"\nmarker = "python_version < \'3\'"\n'
            f'sdist = {{url = "https://h.example/a-1.0.tar.gz", hashes = {{sha256 = "{z}"}}}}\n'
            f'[[packages.wheels]]\nurl = "https://h.example/a-1.0-py3-none-any.whl"\nhashes = {{sha256 = "{z}"}}\n'
            '[[packages]]\nname = "b"\n'
            f'archive = {{url = "privpkg://ws/wheels/b-2.0-py3-none-any.whl", hashes = {{sha256 = "{z}"}}}}\n')
    lock = pylock.load(text)
    assert lock.select() == [a for a in lock.artifacts() if a.name == "b"]
    assert [(a.name, a.version, a.filename, a.kind) for a in lock.artifacts()] == [
        ("a", "1.0", "a-1.0-py3-none-any.whl", "wheel"), ("a", "1.0", "a-1.0.tar.gz", "sdist"),
        ("b", "2.0", "b-2.0-py3-none-any.whl", "wheel")]
