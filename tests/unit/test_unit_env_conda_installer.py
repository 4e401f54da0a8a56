"""Which installer makes a conda prefix, and what it is given (no conda needed: CI has none).

conda is "present" as privpkg's conda plugin would run in it: ``$CONDA_EXE`` (an activated conda),
else ``conda`` on PATH; else py-rattler builds. A fake conda (a small real script on PATH, not a
mock) records its command line, environment and explicit list and writes conda-meta the way
conda 26.7 does (tests/test_env_conda_installer.py shows real conda), so the rules are shown
here: offline, ``file://`` copies with the lock's sha256, scratch HOME/condarc/package cache,
no secret or user conda setting in conda's environment, and no local path left in conda-meta.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from privpkg import envvars
from privpkg.environments import build, cache, pylock
from privpkg.errors import PrivpkgError

CHANNEL = "https://conda.example/private"

#: conda 26.7's conda-meta for `conda create --prefix DEST --file LIST` of file:// URLs (the
#: record and history shapes seen with real conda, trimmed).
FAKE_CONDA = r'''#!{python}
import json, os, sys
from pathlib import Path
argv = sys.argv[1:]
log = {"argv": argv, "env": dict(os.environ)}
fds = {}
for fd in os.listdir("/proc/self/fd"):
    try:
        fds[fd] = os.readlink("/proc/self/fd/" + fd)
    except OSError:
        pass
log["fds"] = sorted(fds.values())
listing = Path(argv[argv.index("--file") + 1])
log["list"] = listing.read_text()
Path(os.environ["FAKE_CONDA_LOG"]).write_text(json.dumps(log))
if os.environ.get("FAKE_CONDA_FAIL"):
    print("CondaError: something went wrong", file=sys.stderr)
    sys.exit(1)
dest = Path(argv[argv.index("--prefix") + 1])
(dest / "conda-meta").mkdir(parents=True)
pkgs = Path(os.environ["CONDA_PKGS_DIRS"])
history = ["==> 2026-11-22 14:56:33 <==", "# cmd: conda create --prefix %s --file %s" % (dest, listing), "# conda version: 26.7.2"]
specs = []
for line in log["list"].splitlines():
    if not line.startswith("file:"):
        continue
    url = line.split("#")[0]
    channel, fn = url.rsplit("/", 1)
    dist = fn.removesuffix(".tar.bz2")
    name, version, build_ = dist.rsplit("-", 2)
    (dest / "share" / name).mkdir(parents=True)
    (dest / "share" / name / "x.txt").write_text(dist)
    if os.environ.get("FAKE_CONDA_SOFTLINK"):  # always_softlink: links into the package cache
        (pkgs / dist).mkdir(parents=True, exist_ok=True)
        os.symlink(pkgs / dist / "x.txt", dest / "share" / name / "linked.txt")
    (dest / "share" / name / "inside.txt").symlink_to("x.txt")  # a link inside the prefix is fine
    record = {"name": name, "version": version, "build": build_, "fn": fn, "url": url, "channel": channel.rsplit("/", 1)[0],
              "extracted_package_dir": str(pkgs / dist), "package_tarball_full_path": str(pkgs / fn),
              "link": {"source": str(pkgs / dist), "type": 1}, "requested_spec": f"{channel}::{name}=={version}={build_}",
              "files": [f"share/{name}/x.txt"]}
    (dest / "conda-meta" / f"{dist}.json").write_text(json.dumps(record))
    history.append(f"+{channel}::{dist}")
    specs.append(f"{channel}::{name}=={version}={build_}")
history.append(f"# update specs: {specs}")
(dest / "conda-meta" / "history").write_text("\n".join(history) + "\n")
'''


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def packages(tmp_path: Path) -> tuple[list[pylock.Artifact], list[Path]]:
    """Two fetched packages (named by hash, as the cache stores them) and their artifacts."""
    arts, paths = [], []
    for name, subdir in (("privtool", "noarch"), ("privlib", "linux-64")):
        data = f"{name} package".encode()
        digest = hashlib.sha256(data).hexdigest()
        path = tmp_path / "wheels" / digest
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        fn = f"{name}-1.0-0.tar.bz2"
        arts.append(pylock.Artifact(name, "1.0", f"{CHANNEL}/{subdir}/{fn}", fn, digest, "conda"))
        paths.append(path)
    return arts, paths


@pytest.fixture
def fake_conda(tmp_path: Path, isolated_privpkg: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake conda on PATH (alone there but for the interpreter's folder); its log's path."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    executable(bindir / "conda", FAKE_CONDA.replace("{python}", sys.executable))
    monkeypatch.setenv("PATH", str(bindir))
    monkeypatch.delenv("CONDA_EXE", raising=False)
    log = tmp_path / "conda.log"
    monkeypatch.setenv("FAKE_CONDA_LOG", str(log))
    return log


def test_conda_when_present_else_py_rattler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONDA_EXE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert build.find_conda() is None  # py-rattler builds
    (tmp_path / "p").mkdir()
    on_path = executable(tmp_path / "p" / "conda", "#!/bin/sh\n")
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert build.find_conda() == str(on_path)
    # An activated conda's $CONDA_EXE wins over PATH, and only when it names an executable file.
    activated = executable(tmp_path / "conda-exe", "#!/bin/sh\n")
    monkeypatch.setenv("CONDA_EXE", str(activated))
    assert build.find_conda() == str(activated)
    monkeypatch.setenv("CONDA_EXE", str(tmp_path / "gone"))
    assert build.find_conda() == str(on_path)
    activated.chmod(0o644)
    monkeypatch.setenv("CONDA_EXE", str(activated))
    assert build.find_conda() == str(on_path)


def test_conda_installs_offline_from_the_checked_files_in_scratch_settings(
        fake_conda: Path, packages: tuple[list[pylock.Artifact], list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arts, paths = packages
    secret = "s3cr3t-connection-value"
    monkeypatch.setenv(envvars.CONNECTIONS, json.dumps([{"name": "c", "target": CHANNEL, "secret": secret}]))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    # A user's conda settings and activation: none may steer (or receive) the build.
    monkeypatch.setenv("CONDA_PKGS_DIRS", str(tmp_path / "users-pkgs"))
    monkeypatch.setenv("CONDA_CHANNELS", "https://elsewhere.example/c")
    monkeypatch.setenv("CONDA_PREFIX", str(tmp_path / "users-env"))
    monkeypatch.setenv("CONDARC", str(tmp_path / "users.condarc"))
    dest = tmp_path / "prefix"
    said: list[str] = []
    build._install_conda(dest, arts, paths, said.append)
    assert said == [f"installed 2 conda package(s) with conda ({tmp_path / 'bin' / 'conda'})"]

    log = json.loads(fake_conda.read_text())
    argv, env = log["argv"], log["env"]
    assert argv[:3] == ["create", "--prefix", str(dest)] and "--offline" in argv and "--yes" in argv
    # The list: the fetched files' file:// copies named as the lock names them, with its sha256.
    entries = [line for line in log["list"].splitlines() if not line.startswith("#")]
    assert entries[0] == "@EXPLICIT"
    for line, a, path in zip(entries[1:], arts, paths, strict=True):
        url, _, digest = line.partition("#sha256:")
        local = Path(unquote(urlparse(url).path))
        assert digest == a.sha256 and local.name == a.filename and local.parent.name == a.url.rsplit("/", 2)[-2], line
        assert urlparse(url).scheme == "file"
    scratch = Path(env["HOME"]).parent
    assert local.is_relative_to(scratch) and not scratch.exists(), "the scratch folder is removed"
    assert env["CONDARC"] == str(Path(env["HOME"]) / ".condarc") and env["CONDA_PKGS_DIRS"] == str(scratch / "pkgs")
    assert env["CONDA_OFFLINE"] == "true" and env["CONDA_NO_PLUGINS"] == "true"
    assert "CONDA_CHANNELS" not in env and "CONDA_PREFIX" not in env and envvars.CONNECTIONS not in env
    assert secret not in json.dumps(env)

    # conda-meta names the lock's URLs and channels, and no local path.
    for a in arts:
        record = json.loads((dest / "conda-meta" / f"{a.name}-1.0-0.json").read_text())
        subdir_url = a.url.rsplit("/", 1)[0]
        assert record["url"] == a.url and record["channel"] == CHANNEL, record
        assert record["requested_spec"] == f"{subdir_url}::{a.name}==1.0=0", record
        assert not {"extracted_package_dir", "package_tarball_full_path", "link"} & set(record), record
    history = (dest / "conda-meta" / "history").read_text()
    assert f"+{CHANNEL}/noarch::privtool-1.0-0" in history and f"'{CHANNEL}/linux-64::privlib==1.0=0'" in history, history
    assert "# cmd: privpkg env build" in history
    everything = "".join(p.read_text() for p in (dest / "conda-meta").iterdir())
    assert "file:" not in everything and str(tmp_path) not in everything, everything


def test_a_scratch_path_conda_reads_as_a_token_still_maps_to_the_lock(
        packages: tuple[list[pylock.Artifact], list[Path]]) -> None:
    """conda drops a ``/t/WORD/`` segment of a file:// path (a token, for conda), so the scratch
    channel it writes is matched by its tail, not the folder's path."""
    arts, _ = packages
    text = "+file:///home/u/t/privpkg/cache/envs/conda-x/files/noarch::privtool-1.0-0\n" \
           "# update specs: ['file:///home/u/cache/envs/conda-x/files/linux-64::privlib==1.0=0']\n" \
           "+file:///x/files/noarch::privtoolbox-1.0-0\n"
    assert build._lock_channels(text, arts).splitlines() == [
        f"+{CHANNEL}/noarch::privtool-1.0-0", f"# update specs: ['{CHANNEL}/linux-64::privlib==1.0=0']",
        "+file:///x/files/noarch::privtoolbox-1.0-0"]


def test_a_failing_conda_is_one_line_and_leaves_no_scratch(
        fake_conda: Path, packages: tuple[list[pylock.Artifact], list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arts, paths = packages
    monkeypatch.setenv("FAKE_CONDA_FAIL", "1")
    with pytest.raises(PrivpkgError, match=r"^conda create failed \(exit 1\): CondaError: something went wrong$"):
        build._install_conda(tmp_path / "prefix", arts, paths)
    scratch = Path(json.loads(fake_conda.read_text())["env"]["HOME"]).parent
    assert not scratch.exists() and not os.path.exists(tmp_path / "prefix" / "conda-meta")


def test_links_out_of_the_prefix_discard_the_build(
        fake_conda: Path, packages: tuple[list[pylock.Artifact], list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A configuration conda reads but privpkg cannot replace (always_softlink in the root
    prefix's condarc) would link the prefix into the scratch package cache, gone once the build
    is published: such a build fails in one line instead of becoming a dead cache hit."""
    arts, paths = packages
    monkeypatch.setenv("FAKE_CONDA_SOFTLINK", "1")
    with pytest.raises(PrivpkgError, match=r"^conda linked share/priv\w+/linked.txt outside the prefix"):
        build._install_conda(tmp_path / "prefix", arts, paths)
    env = json.loads(fake_conda.read_text())["env"]
    assert env["CONDA_ALWAYS_SOFTLINK"] == "false"


def test_final_settings_in_condas_own_configuration_leave_the_build_to_py_rattler(
        fake_conda: Path, packages: tuple[list[pylock.Artifact], list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A root prefix's condarc marking pkgs_dirs (or no_plugins) ``#!final`` beats privpkg's
    variables, so conda is not used. py-rattler's install is replaced by a recorder here (the
    packages are not real conda packages; tests/test_env_locks.py builds real ones with it)."""
    arts, paths = packages
    conda = tmp_path / "bin" / "conda"
    (tmp_path / ".condarc").write_text("channels: [conda-forge]\n")
    assert build.conda_config_files(str(conda)) == [tmp_path / ".condarc"] and build._final_conda_settings(str(conda)) == []
    (tmp_path / "condarc.d").mkdir()
    (tmp_path / "condarc.d" / "site.yml").write_text("pkgs_dirs: #!final\n  - /somewhere/users-pkgs\n")
    assert build._final_conda_settings(str(conda)) == [tmp_path / "condarc.d" / "site.yml"]
    installed: list[Path] = []
    monkeypatch.setattr(build, "_install_with_rattler", lambda dest, a, p: installed.append(dest))
    monkeypatch.setattr(build, "_name_lock_urls", lambda dest, a: None)
    said: list[str] = []
    build._install_conda(tmp_path / "prefix", arts, paths, said.append)
    assert installed == [tmp_path / "prefix"] and not fake_conda.exists(), "conda never ran"
    assert said == [(f"installed 2 conda package(s) with py-rattler (conda's configuration marks settings #!final, which privpkg's "
                    f"cannot override: {tmp_path / 'condarc.d' / 'site.yml'})")]


def test_conda_holds_the_builds_and_the_scratch_folders_locks(
        fake_conda: Path, packages: tuple[list[pylock.Artifact], list[Path]]) -> None:
    """A builder killed while conda runs leaves conda writing: conda inherits the build's and
    the scratch folder's locks, so ``env prune`` removes neither under it."""
    arts, paths = packages
    with cache.new_build("c" * 64) as dest:
        build._install_conda(dest, arts, paths, None)
    held = json.loads(fake_conda.read_text())["fds"]
    locks = [Path(p).name for p in held if "/locks/" in p]
    assert any(n == f"build-{dest.name}.lock" for n in locks), held
    assert any(n.startswith(cache.SCRATCH_LOCK) for n in locks), held
