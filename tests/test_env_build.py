"""``privpkg env build|path|run|prune`` (issue 10, items 4 and 5): a venv from a ``pylock.toml``
holding a PAT-feed wheel and a ``privpkg://`` wheel of a local workspace, with real uv and real
pip (``--installer pip``) and the loopback PAT feed.

Shown here: the private artifacts are fetched by privpkg (the feed file with its connection's
secret, the workspace wheel through the workspace) and installed offline; the workspace wheel's
``direct_url.json`` names its ``privpkg://`` URL (listed in RECORD with its hash) and the feed
wheel gets none; a second build is a cache hit (same path, no request to the feed), also for a
lock written differently that selects the same files; ``--link``, ``env path`` and ``env run``
(exit code passed through); a build killed with SIGKILL mid-install is never a hit and ``env
prune`` removes it; bad input is one error line; no output and no file of the cache, the build
or uv's cache holds the feed's secret.

Until the registry lands, the builds name their lock with ``--lock``. The locks are written here
the way ``pip lock`` writes them (a workspace wheel as ``[packages.archive]``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from support.builds import pyenv_python
from support.cli import PrivpkgCLI
from support.env import assert_caches_clean, assert_no_secret
from support.feeds import FeedServer

from privpkg import envvars
from privpkg.testing import make_wheel

pytestmark = pytest.mark.integration

WS = "team"


def lock_text(wheels: Sequence[tuple[str, str, str, str]], archives: Sequence[tuple[str, str, str, str]] = (), *, reverse: bool = False,
              extra: str = "") -> str:
    """A pylock.toml: ``wheels`` as ``[[packages.wheels]]``, ``archives`` as pip lock records a
    workspace wheel (``[packages.archive]``); each (name, version, url, sha256)."""
    blocks = [f'[[packages]]\nname = "{n}"\nversion = "{v}"\n\n[[packages.wheels]]\nurl = "{u}"\nhashes = {{ sha256 = "{s}" }}\n'
              for n, v, u, s in wheels]
    blocks += [f'[[packages]]\nname = "{n}"\nversion = "{v}"\n\n[packages.archive]\nurl = "{u}"\nhashes = {{ sha256 = "{s}" }}\n'
               for n, v, u, s in archives]
    if reverse:
        blocks.reverse()
    return 'lock-version = "1.0"\ncreated-by = "test"\n\n' + "\n".join(blocks) + extra


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Setup:
    def __init__(self, cli: PrivpkgCLI, tmp_path: Path, payload: int = 0) -> None:
        self.cli = cli
        self.home = Path(cli.env[envvars.HOME])
        self.cache = self.home / "cache" / "envs"
        cli.ok("workspace", "add", WS, "--local", tmp_path / "ws")
        self.team = make_wheel(tmp_path / "dist", "team-lib", "1.0", payload_size=payload)
        self.team_url = cli.ok("wheel", "add", self.team, "--workspace", WS).strip().splitlines()[-1]
        assert self.team_url.startswith("privpkg://")

    def keys(self) -> list[str]:
        return sorted(p.name for p in (self.cache / "keys").glob("*"))

    def builds(self) -> list[str]:
        return sorted(p.name for p in (self.cache / "builds").glob("*"))


@pytest.fixture
def setup(checked_cli: Callable[..., PrivpkgCLI], feed: FeedServer, store_connection: Callable[..., Any], tmp_path: Path) -> Setup:
    store_connection("feed-a", feed.index_a, feed.secret_a)
    return Setup(checked_cli(feed.secret_a, feed.secret_b), tmp_path)


def register(setup: Setup, name: str, pylock: str) -> None:
    """Register ``name`` with this lock in the workspace WS (through the registry's API, in this
    process: ``env register`` would lock again with pip) and label version 1 ``prod``."""
    from privpkg.environments import registry
    from privpkg.environments.api import open_registry
    from privpkg.environments.spec import Spec

    with pytest.MonkeyPatch.context() as m:
        m.setenv(envvars.HOME, str(setup.home))
        _, store = open_registry(WS)
        rec = registry.register(store, Spec(name, pip=("pkg-a", "team-lib")), {"pylock.toml": pylock})
        registry.set_label(store, name, "prod", rec.version)


def feed_wheel(feed: FeedServer, tmp_path: Path) -> tuple[str, str, str, str]:
    whl = tmp_path / "feed" / "a" / "pkg_a-1.0-py3-none-any.whl"
    return ("pkg-a", "1.0", f"{feed.index_a}pkg-a/{whl.name}", sha(whl))


def site_packages(env: Path) -> Path:
    (found,) = env.glob("lib/python*/site-packages")
    return found


def grep_tree(root: Path, *secrets_: str) -> int:
    """Every file under ``root`` checked for ``secrets_``; returns how many were read."""
    n = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert_no_secret(path.read_bytes().decode("latin-1"), *secrets_)
            n += 1
    return n


def test_build_hit_link_path_run_and_no_secret(setup: Setup, feed: FeedServer, tmp_path: Path) -> None:
    cli = setup.cli
    lock = tmp_path / "pylock.toml"
    lock.write_text(lock_text([feed_wheel(feed, tmp_path)], [("team-lib", "1.0", setup.team_url, sha(setup.team))]))
    link = tmp_path / "env"
    env = Path(cli.ok("env", "build", "--lock", lock, "--link", link).strip())
    assert env.parent == setup.cache / "builds" and os.readlink(link) == str(env)
    # privpkg sends the connection's secret with the first request: one authorized download.
    assert [(e.path.rsplit("/", 1)[-1], e.status, e.auth) for e in feed.log()] == [("pkg_a-1.0-py3-none-any.whl", 200, True)]
    out = cli.tool([env / "bin" / "python", "-c", "import pkg_a, team_lib; print(pkg_a.VERSION, team_lib.VERSION)"])
    assert out.returncode == 0 and out.output.split() == ["1.0", "1.0"], out.describe()

    # The workspace wheel's direct_url.json names its privpkg:// URL, and RECORD lists it.
    site = site_packages(env)
    info = site / "team_lib-1.0.dist-info"
    data = (info / "direct_url.json").read_bytes()
    assert json.loads(data) == {"url": setup.team_url, "archive_info": {"hash": f"sha256={sha(setup.team)}",
                                                                         "hashes": {"sha256": sha(setup.team)}}}
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    assert f"team_lib-1.0.dist-info/direct_url.json,sha256={digest},{len(data)}" in (info / "RECORD").read_text().splitlines()
    assert not (site / "pkg_a-1.0.dist-info" / "direct_url.json").exists()  # installed as from an index: no URL kept

    # A hit: the same build, nothing fetched; a lock written otherwise that selects the same files too.
    requests = len(feed.log())
    assert cli.ok("env", "build", "--lock", lock).strip() == str(env)
    other = tmp_path / "pylock.other.toml"
    other.write_text(lock_text([feed_wheel(feed, tmp_path)], [("team-lib", "1.0", setup.team_url, sha(setup.team))], reverse=True,
                               extra='\n[tool.someone]\nnote = "ignored"\n'))
    assert cli.ok("env", "build", "--lock", other).strip() == str(env)
    assert cli.ok("env", "path", "--lock", lock).strip() == str(env)
    assert len(feed.log()) == requests, feed.log_text()
    assert len(setup.keys()) == 1 and setup.builds() == [env.name]

    # A registered environment whose lock selects the same files: the same build (the key is
    # the files and the interpreter, never a name or version), by NAME, NAME:N and NAME@LABEL.
    register(setup, "train", lock.read_text())
    assert cli.ok("env", "build", "train", "--workspace", WS).strip() == str(env)
    assert cli.ok("env", "path", "train@prod", "--workspace", WS).strip() == str(env)
    cli.fails(1, "env", "build", "train:2", "--workspace", WS, match="has no version 2")
    # The Python API's build_local is the same build.
    import sys

    res = cli.tool([sys.executable, "-c", f"import privpkg; print(privpkg.Environment.get({WS!r}, 'train').build_local())"])
    assert res.returncode == 0 and res.output.strip().splitlines()[-1] == str(env), res.describe()

    # env run: in the environment, its exit code passed through.
    res = cli("env", "run", "train", "--workspace", WS, "--", "python", "-c",
              "import os, sys, team_lib; print(sys.prefix); print(os.environ['VIRTUAL_ENV']); sys.exit(7)")
    assert res.returncode == 7, res.stderr
    assert res.stdout.split() == [str(env), str(env)]

    # No file of the cache, the build or uv's cache (inside privpkg's) holds the secret (outputs: checked_cli).
    assert grep_tree(setup.home / "cache", feed.secret_a) > 10
    assert grep_tree(setup.cache / "uv", feed.secret_a) > 0
    grep_tree(Path(cli.env["XDG_CACHE_HOME"]), feed.secret_a)


def test_pip_installer_and_bad_input(setup: Setup, feed: FeedServer, tmp_path: Path) -> None:
    cli = setup.cli
    good = feed_wheel(feed, tmp_path)
    lock = tmp_path / "pylock.toml"
    lock.write_text(lock_text([good], [("team-lib", "1.0", setup.team_url, sha(setup.team))]))
    env = Path(cli.ok("env", "build", "--lock", lock, "--installer", "pip").strip())
    info = site_packages(env) / "team_lib-1.0.dist-info"
    assert (info / "INSTALLER").read_text().strip() == "pip"
    assert json.loads((info / "direct_url.json").read_text())["url"] == setup.team_url
    assert not (site_packages(env) / "pkg_a-1.0.dist-info" / "direct_url.json").exists()

    cli.fails(2, "env", "build", "--lock", tmp_path / "missing.toml", match="no such lock file")
    cli.fails(2, "env", "build", match="--lock")
    # A file that does not match the lock's sha256 is refused and not kept; nothing is published.
    keys, wheels = setup.keys(), sorted((setup.cache / "wheels").rglob("*.whl"))
    bad = tmp_path / "pylock.bad.toml"
    bad.write_text(lock_text([(*good[:3], "0" * 64)]))
    cli.fails(1, "env", "build", "--lock", bad, match=["pkg_a-1.0-py3-none-any.whl", "does not match the lock's sha256"])
    # No connection answers feed B: one line, and no credential was sent there.
    whl_b = tmp_path / "feed" / "b" / "pkg_b-2.0-py3-none-any.whl"
    nob = tmp_path / "pylock.b.toml"
    nob.write_text(lock_text([("pkg-b", "2.0", f"{feed.index_b}pkg-b/{whl_b.name}", sha(whl_b))]))
    cli.fails(1, "env", "build", "--lock", nob, match=["HTTP 401", "no connection answers"])
    assert not any(e.auth for e in feed.log() if e.path.startswith("/orgB/")), feed.log_text()
    assert setup.keys() == keys and sorted((setup.cache / "wheels").rglob("*.whl")) == wheels
    cli.fails(1, "env", "path", "--lock", nob, match="not built yet")
    # Another interpreter (--python): its own key and build, its tags read in that interpreter
    # (3.12, or 3.11 when privpkg itself runs on 3.12).
    minor = "3.12" if sys.version_info[:2] != (3, 12) else "3.11"
    another = pyenv_python(minor)
    other = Path(cli.ok("env", "build", "--lock", lock, "--python", another).strip())
    assert other != env and (other / "lib" / f"python{minor}" / "site-packages" / "team_lib-1.0.dist-info").is_dir()
    assert cli.ok("env", "path", "--lock", lock, "--python", another).strip() == str(other)
    assert cli.ok("env", "path", "--lock", lock).strip() == str(env)
    # The oldest Python a build is for (packaging reads its tags in it), and an older one: one line.
    assert (Path(cli.ok("env", "build", "--lock", lock, "--python", pyenv_python("3.9")).strip()) / "lib" / "python3.9").is_dir()
    cli.fails(2, "env", "build", "--lock", lock, "--python", pyenv_python("3.8"), match="built for Python 3.9 or newer")
    userinfo = tmp_path / "pylock.userinfo.toml"
    userinfo.write_text(lock_text([(good[0], good[1], good[2].replace("http://", f"http://__token__:{feed.secret_a}@"), good[3])]))
    cli.fails(2, "env", "build", "--lock", userinfo, match="hold no secret")
    (tmp_path / "taken").mkdir()
    cli.fails(2, "env", "build", "--lock", lock, "--link", tmp_path / "taken", match="not a symbolic link")


#: What a build's miss never imports (each a tenth of its own import time or more): OpenSSL's
#: hashlib (sha256 of small data: .digests), tempfile, shutil and base64, and the CLI modules of
#: the other env actions.
NOT_IMPORTED = {"_hashlib", "tempfile", "shutil", "base64", "privpkg.cli.env_lock", "privpkg.cli.env_registry", "privpkg.cli.env_docker"}


def test_a_miss_imports_only_what_it_needs(setup: Setup, feed: FeedServer, tmp_path: Path) -> None:
    """A miss through the CLI with a warm wheelhouse (the feed wheel and the workspace wheel
    fetched by an earlier build, whose keys, memo and build are gone: the benchmark's miss)
    loads none of :data:`NOT_IMPORTED`, and leaves no requirements file in the build (uv read
    it from there)."""
    import shutil

    cli = setup.cli
    lock = tmp_path / "pylock.toml"
    lock.write_text(lock_text([feed_wheel(feed, tmp_path)], [("team-lib", "1.0", setup.team_url, sha(setup.team))]))
    first = Path(cli.ok("env", "build", "--lock", lock).strip())
    for folder in ("keys", "memo", "builds"):
        shutil.rmtree(setup.cache / folder)
    listing = tmp_path / "modules.txt"
    code = ("import sys; from privpkg.cli import main; code = main()\n"
            f"open({str(listing)!r}, 'w').write('\\n'.join(sorted(sys.modules))); raise SystemExit(code)")
    r = cli.tool([sys.executable, "-c", code, "env", "build", "--lock", lock])
    assert r.returncode == 0, r.describe()
    built = Path(r.output.strip().splitlines()[-1])
    loaded = set(listing.read_text().splitlines())
    assert {"privpkg.environments.build", "privpkg.environments.fetch", "tomllib"} <= loaded  # it did build
    assert not loaded & NOT_IMPORTED, sorted(loaded & NOT_IMPORTED)
    assert built != first and not (built / ".privpkg-requirements.txt").exists()
    out = cli.tool([built / "bin" / "python", "-c", "import pkg_a, team_lib; print(pkg_a.VERSION, team_lib.VERSION)"])
    assert out.returncode == 0 and out.output.split() == ["1.0", "1.0"], out.describe()

    # A hit of the lock file needs no json either (only --json output, a workspace wheel's
    # direct_url.json and the registry's records do).
    r = cli.tool([sys.executable, "-c", code, "env", "build", "--lock", lock])
    assert r.returncode == 0 and r.output.strip().splitlines()[-1] == str(built), r.describe()
    loaded = set(listing.read_text().splitlines())
    assert not loaded & {*NOT_IMPORTED, "json"}, sorted(loaded & {*NOT_IMPORTED, "json"})

    # A hit by NAME reads the registered version and screens nothing (the screen is a
    # registration's): neither the screen's patterns nor OpenSSL are loaded.
    register(setup, "train", lock.read_text())
    cli.ok("env", "build", "train", "--workspace", WS)  # the stored text (canonical) memoized
    r = cli.tool([sys.executable, "-c", code, "env", "build", "train", "--workspace", WS])
    assert r.returncode == 0 and r.output.strip().splitlines()[-1] == str(built), r.describe()
    loaded = set(listing.read_text().splitlines())
    assert {"privpkg.environments.registry", "privpkg.environments.spec"} <= loaded
    assert not loaded & {*NOT_IMPORTED, "privpkg.environments.screen"}, sorted(loaded & {*NOT_IMPORTED, "privpkg.environments.screen"})


def test_without_uv_pip_builds_it(setup: Setup, feed: FeedServer, tmp_path: Path) -> None:
    """No uv on PATH and no ``uv`` package importable (privpkg's ``find_uv()`` finds none; the
    ``uv`` module is hidden in the CLI's process, the one stand-in here, as uv is installed in
    the test venv): ``env build`` falls back to ``python -m venv`` and pip, offline, and the
    result is the same environment (the workspace wheel's direct_url.json included)."""
    cli = setup.cli
    lock = tmp_path / "pylock.toml"
    lock.write_text(lock_text([feed_wheel(feed, tmp_path)], [("team-lib", "1.0", setup.team_url, sha(setup.team))]))
    path = os.pathsep.join(d for d in cli.env["PATH"].split(os.pathsep) if d and not os.access(Path(d) / "uv", os.X_OK))
    env = {**cli.env, "PATH": path}
    # No uv package: its module hidden, and its binary not in this interpreter's scripts folder
    # (where find_uv looks first without importing the package).
    no_package = ("import sys, sysconfig; sys.modules['uv'] = None; real = sysconfig.get_path\n"
                  "sysconfig.get_path = lambda name, *a, **k: '/nonexistent' if name == 'scripts' else real(name, *a, **k)\n")
    hide_uv = no_package + "from privpkg.cli import main; raise SystemExit(main())"
    check = "from privpkg.environments.build import find_uv; print(find_uv())"
    assert cli.tool([sys.executable, "-c", check], env=env).output.strip() == str(Path(sysconfig.get_path("scripts")) / "uv")
    assert cli.tool([sys.executable, "-c", no_package + check], env=env).output.strip() == "None"
    r = cli.tool([sys.executable, "-c", hide_uv, "env", "build", "--lock", lock], env=env)
    assert r.returncode == 0, r.describe()
    built = Path(r.output.strip().splitlines()[-1])
    assert not (built / ".privpkg-requirements.txt").exists()  # pip read it from there, then it went
    cfg = (built / "pyvenv.cfg").read_text()
    assert "uv =" not in cfg, cfg  # uv venv writes its version there; python -m venv does not
    assert list(site_packages(built).glob("pip-*.dist-info")), "python -m venv installs pip; uv venv does not"
    out = cli.tool([built / "bin" / "python", "-c", "import pkg_a, team_lib; print(pkg_a.VERSION, team_lib.VERSION)"])
    assert out.returncode == 0 and out.output.split() == ["1.0", "1.0"], out.describe()
    (direct,) = site_packages(built).glob("team_lib-1.0.dist-info/direct_url.json")
    assert json.loads(direct.read_text())["url"] == setup.team_url
    assert grep_tree(built, feed.secret_a, feed.secret_b) > 0


def test_an_empty_path_runs_no_uv_of_the_working_directory(setup: Setup, tmp_path: Path) -> None:
    """``PATH=""`` names no folder (``shutil.which`` finds nothing in it; ``PATH=":"`` would name
    the current one): a ``uv`` in the working directory, which may be anyone's checkout, is
    never run; the build takes the uv beside privpkg's interpreter, as with shutil."""
    cli = setup.cli
    lock = tmp_path / "pylock.toml"
    lock.write_text(lock_text([], [("team-lib", "1.0", setup.team_url, sha(setup.team))]))
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    ran = tmp_path / "planted-uv-ran"
    planted = checkout / "uv"
    planted.write_text(f"#!{sys.executable}\nopen({str(ran)!r}, 'w').close()\nraise SystemExit(3)\n")
    planted.chmod(0o755)
    env = {**cli.env, "PATH": ""}
    check = "from privpkg.environments.build import find_uv; print(find_uv())"
    found = cli.tool([sys.executable, "-c", check], env=env, cwd=checkout).output.strip()
    assert found == str(Path(sysconfig.get_path("scripts")) / "uv"), found
    r = cli.tool([sys.executable, "-m", "privpkg", "env", "build", "--lock", lock], env=env, cwd=checkout)
    assert r.returncode == 0, r.describe()
    assert not ran.exists(), "the working directory's uv ran"
    built = Path(r.output.strip().splitlines()[-1])
    out = cli.tool([built / "bin" / "python", "-c", "import team_lib; print(team_lib.VERSION)"])
    assert out.returncode == 0 and out.output.split() == ["1.0"], out.describe()


def test_installers_get_no_credential_from_the_environment(setup: Setup, tmp_path: Path) -> None:
    """uv installs what privpkg fetched and checked, offline: it gets none of the credentials in
    privpkg's environment (nor would conda, where a package's link script runs): the secrets of
    the ambient chains privpkg reads, a CI's tokens, an index URL with a password. The uv first
    on PATH records the environment it was started with, then runs the real one."""
    cli = setup.cli
    lock = tmp_path / "pylock.toml"
    lock.write_text(lock_text([], [("team-lib", "1.0", setup.team_url, sha(setup.team))]))
    secrets = {
        "AZURE_CLIENT_SECRET": "azure-client-secret-1234", "AZURE_CLIENT_CERTIFICATE_PASSWORD": "azure-cert-password-1234",
        "AZURE_PASSWORD": "azure-password-1234", "AWS_SECURITY_TOKEN": "aws-legacy-session-token-1234",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "aws-container-token-1234", "SYSTEM_ACCESSTOKEN": "azure-pipelines-job-token-1234",
        "GITHUB_TOKEN": "github-token-1234", "UV_INDEX_INTERNAL_PASSWORD": "uv-index-password-1234",
        "PIP_INDEX_URL": "https://ci:index-url-password-1234@feed.example/simple/",
    }
    log = tmp_path / "uv-environ.log"
    recorder = tmp_path / "recorder"
    recorder.mkdir()
    (recorder / "uv").write_text(f'#!/bin/sh\nenv >> "{log}"\nexec "{Path(sysconfig.get_path("scripts")) / "uv"}" "$@"\n')
    (recorder / "uv").chmod(0o755)
    env = {**cli.env, **secrets, "PATH": f"{recorder}{os.pathsep}{cli.env['PATH']}", "KEPT_BY_THE_BUILD": "1"}
    r = cli.tool([sys.executable, "-m", "privpkg", "env", "build", "--lock", lock], env=env)
    assert r.returncode == 0, r.describe()
    got = log.read_text()
    assert got.count("KEPT_BY_THE_BUILD=1") == 2, got  # uv venv and uv pip install, with the rest of the environment
    assert_no_secret(got, *(v for k, v in secrets.items() if k != "PIP_INDEX_URL"), "index-url-password-1234")


@pytest.mark.parametrize("name,value", [
    ("AZURE_DEVOPS_EXT_PAT", "azure-devops-cli-pat-1234"),  # az devops's PAT: the very secret privpkg stores
    ("OPENAI_API_KEY", "openai-api-key-1234"),
    ("ARM_ACCESS_KEY", "terraform-storage-key-1234"),
    ("PIP_EXTRA_INDEX_URL", "https://public.example/simple https://ci:second-url-password-1234@feed.example/simple"),
    ("UV_INDEX_URL", "https://ghp_tokenasusername1234@feed.example/simple"),
    ("https_proxy", "ci:proxy-password-1234@proxy.invalid:3128"),
    ("PIP_FIND_LINKS", "https://acct.blob.core.windows.net/wheels/?sv=2024-08-04&sp=rl&sig=sas-signature-1234"),
    ("NGROK_AUTHTOKEN", "ngrok-auth-token-1234"),  # one word: AUTHTOKEN
    ("BUS", "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=bus-key-1234"),
    ("CI_JOB_JWT_V2", "gitlab-oidc-jwt-1234"),  # GitLab's job token, which cloud roles accept
    ("GPG_PASSPHRASE", "gpg-passphrase-1234"),
], ids=["pat", "api-key", "access-key", "second-url", "token-user", "bare-proxy", "signed-url", "authtoken", "connection-string", "jwt",
        "passphrase"])  # an id holding the value is in PYTEST_CURRENT_TEST
def test_installers_get_no_secret_named_or_written_otherwise(setup: Setup, tmp_path: Path, name: str, value: str) -> None:
    """What test_installers_get_no_credential_from_the_environment checks, for secrets named
    with the words the environments' screen knows (PAT, KEY: screen.suspicious_variables), a
    password in the second URL of a list, a token as a URL's user name, a proxy's password
    written without a scheme (pip, uv and curl read it so), a signed URL (a SAS), a name whose
    word only holds TOKEN, and a connection string's key under a plain name."""
    cli = setup.cli
    lock = tmp_path / "pylock.toml"
    lock.write_text(lock_text([], [("team-lib", "1.0", setup.team_url, sha(setup.team))]))
    log = tmp_path / "uv-environ.log"
    recorder = tmp_path / "recorder"
    recorder.mkdir()
    (recorder / "uv").write_text(f'#!/bin/sh\nenv >> "{log}"\nexec "{Path(sysconfig.get_path("scripts")) / "uv"}" "$@"\n')
    (recorder / "uv").chmod(0o755)
    secret = value.rpartition("=")[2] if "=" in value else value.split("@")[0].rsplit(":", 1)[-1].rsplit("/", 1)[-1]
    env = {**cli.env, name: value, "PATH": f"{recorder}{os.pathsep}{cli.env['PATH']}", "KEPT_BY_THE_BUILD": "1",
           "SSL_CERT_FILE": "/kept/ca.pem", "PWD": str(tmp_path)}
    r = cli.tool([sys.executable, "-m", "privpkg", "env", "build", "--lock", lock], env=env)
    assert r.returncode == 0, r.describe()
    got = log.read_text()
    assert got.count("KEPT_BY_THE_BUILD=1") == 2 and got.count("SSL_CERT_FILE=/kept/ca.pem") == 2, got
    assert_no_secret(got, secret)


def test_private_files_stay_in_the_private_cache(setup: Setup, tmp_path: Path) -> None:
    """uv keeps what it installs in its cache, unpacked, and hardlinks from there. For a build
    that is privpkg's cache (0700: it holds private wheels), not the user's uv cache, which a
    umask of 022 leaves readable by every user."""
    cli = setup.cli
    lock = tmp_path / "pylock.toml"
    lock.write_text(lock_text([], [("team-lib", "1.0", setup.team_url, sha(setup.team))]))
    user_cache = Path(cli.env["XDG_CACHE_HOME"])
    built = Path(cli.ok("env", "build", "--lock", lock).strip())
    assert (site_packages(built) / "team_lib.py").is_file()
    assert list((setup.cache / "uv").rglob("team_lib.py")), "uv kept the files elsewhere: the check below would prove nothing"
    assert not list(user_cache.rglob("team_lib*")), sorted(map(str, user_cache.rglob("team_lib*")))
    assert (setup.cache.parent.stat().st_mode & 0o777) == 0o700


def test_a_users_uv_no_cache_does_not_move_private_files_to_a_temporary_cache(setup: Setup, tmp_path: Path) -> None:
    """With the user's ``UV_NO_CACHE=1`` uv ignores ``UV_CACHE_DIR`` and unpacks each wheel into
    a temporary cache under ``TMPDIR``, whose folders the umask leaves readable by every user
    (Rust's tempfile makes them 0777 & ~umask) until uv exits: a build's uv uses privpkg's
    private cache all the same."""
    cli = setup.cli
    lock = tmp_path / "pylock.toml"
    lock.write_text(lock_text([], [("team-lib", "1.0", setup.team_url, sha(setup.team))]))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    r = cli.tool([sys.executable, "-m", "privpkg", "env", "build", "--lock", lock], env={**cli.env, "UV_NO_CACHE": "1", "TMPDIR": str(tmp)})
    assert r.returncode == 0, r.describe()
    assert (site_packages(Path(r.output.strip().splitlines()[-1])) / "team_lib.py").is_file(), r.describe()
    assert list((setup.cache / "uv").rglob("team_lib.py")), "uv unpacked the private wheel in a temporary cache"


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_wheel_file_named_as_the_requirements_file_is_kept(setup: Setup, tmp_path: Path, installer: str) -> None:
    """The installers read their requirements file from the new build's root, where a wheel's
    data files go too: a wheel installing one of that name (pip and uv put it in place of
    privpkg's) keeps it in the build, as its RECORD lists it; privpkg's own is gone."""
    cli = setup.cli
    data = "data_lib-1.0.data/data/.privpkg-requirements.txt"
    whl = make_wheel(tmp_path / "data", "data-lib", "1.0", extra={data: "the wheel's own\n"})
    url = cli.ok("wheel", "add", whl, "--workspace", WS).strip().splitlines()[-1]
    lock = tmp_path / "pylock.toml"
    lock.write_text(lock_text([], [("data-lib", "1.0", url, sha(whl)), ("team-lib", "1.0", setup.team_url, sha(setup.team))]))
    built = Path(cli.ok("env", "build", "--lock", lock, "--installer", installer).strip())
    assert (built / ".privpkg-requirements.txt").read_text() == "the wheel's own\n"
    record = (site_packages(built) / "data_lib-1.0.dist-info" / "RECORD").read_text()
    assert ".privpkg-requirements.txt," in record, record
    assert (site_packages(built) / "team_lib.py").exists()


def test_killed_build_is_never_a_hit(checked_cli: Callable[..., PrivpkgCLI], tmp_path: Path) -> None:
    # A 48 MB incompressible payload: uv takes a while to unpack it, and the build is killed then.
    setup = Setup(checked_cli(), tmp_path, payload=48 * 1024 * 1024)
    cli = setup.cli
    lock = tmp_path / "pylock.toml"
    lock.write_text(lock_text([], [("team-lib", "1.0", setup.team_url, sha(setup.team))]))
    proc = subprocess.Popen(cli.argv("env", "build", "--lock", lock), env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    killed = None
    while time.monotonic() < deadline and proc.poll() is None:
        venvs = list((setup.cache / "builds").glob("*/pyvenv.cfg")) if (setup.cache / "builds").is_dir() else []
        if venvs:  # uv venv is done: the install has begun
            os.killpg(proc.pid, signal.SIGKILL)
            killed = venvs[0].parent
            break
        time.sleep(0.002)
    proc.wait(timeout=30)
    proc.stdout.close()  # type: ignore[union-attr]
    proc.stderr.close()  # type: ignore[union-attr]
    assert killed is not None, "the build finished before it could be killed"
    assert setup.keys() == [], "a killed build was published"
    env = Path(cli.ok("env", "build", "--lock", lock).strip())
    assert env != killed and env.parent == killed.parent
    assert sorted(setup.builds()) == sorted([env.name, killed.name])
    # --workspace, as every env verb takes it: only checked (the cache is per machine), so an
    # unknown one is one line and removes nothing; a known one prunes the machine's cache.
    cli.fails(1, "env", "prune", "--workspace", "no-such-ws", match="no workspace named")
    assert sorted(setup.builds()) == sorted([env.name, killed.name])
    assert cli.ok("env", "prune", "--workspace", WS).strip() == "removed 1 unreferenced build"
    assert setup.builds() == [env.name]
    assert cli.ok("env", "build", "--lock", lock).strip() == str(env)
    assert cli.ok("env", "prune", "--older-than", "0").strip() == "removed 1 unreferenced build and forgot 1 unused key"
    assert setup.builds() == [] and setup.keys() == []


def test_prune_caches_empties_what_builds_are_made_from(setup: Setup, feed: FeedServer, tmp_path: Path) -> None:
    """``env prune --caches``: the fetched files and the builds' uv cache are emptied, the
    builds kept still run (their files are hard links or copies), and the next build fetches
    again; while a build runs (it holds its lock) it is one line and removes nothing."""
    import re
    import shutil

    from privpkg.fileio import file_lock

    cli = setup.cli
    lock = tmp_path / "pylock.toml"
    lock.write_text(lock_text([feed_wheel(feed, tmp_path)], [("team-lib", "1.0", setup.team_url, sha(setup.team))]))
    env = Path(cli.ok("env", "build", "--lock", lock).strip())
    wheels = sorted(p.name for p in (setup.cache / "wheels").rglob("*.whl"))
    assert len(wheels) == 2 and any((setup.cache / "uv").iterdir())
    with file_lock(setup.cache / "locks" / "build-running.lock"):
        line = cli.fails(1, "env", "prune", "--caches", match=["a build is running", "build-running.lock"])
        assert "removed" not in line
    assert sorted(p.name for p in (setup.cache / "wheels").rglob("*.whl")) == wheels
    out = cli.ok("env", "prune", "--caches").strip()
    assert re.fullmatch(r"removed 0 unreferenced builds; emptied the fetched files and the uv and py-rattler caches "
                        r"\((\d+\.\d [kMG]B|\d+ bytes) freed\)", out), out
    assert not (setup.cache / "wheels").exists() and not (setup.cache / "uv").exists()
    assert [p.name for p in setup.cache.iterdir() if p.name.startswith(".removing")] == []
    ran = cli.tool([env / "bin" / "python", "-c", "import pkg_a, team_lib; print(pkg_a.VERSION, team_lib.VERSION)"])
    assert ran.returncode == 0 and ran.output.split() == ["1.0", "1.0"], ran.describe()
    assert cli.ok("env", "build", "--lock", lock).strip() == str(env)  # still a hit
    for folder in ("keys", "memo"):
        shutil.rmtree(setup.cache / folder)
    again = Path(cli.ok("env", "build", "--lock", lock).strip())  # a miss: fetched and unpacked again
    assert again != env and sorted(p.name for p in (setup.cache / "wheels").rglob("*.whl")) == wheels


def test_prune_caches_never_moves_the_caches_under_a_build_that_starts_meanwhile(
        setup: Setup, feed: FeedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build whose key lock is new (taken after ``env prune --caches`` listed the locks) is not
    among the locks prune holds: it fetched and installed while prune weighed the caches, which
    prune then moved aside and removed under it (the build failed, its wheels gone). It now waits
    for prune to have moved them, then fetches into new folders. Prune runs in this process, so
    the build is started while it weighs the caches (in its first :func:`_bytes_held_alone`)."""
    from privpkg.environments import cache

    cli = setup.cli
    lock = tmp_path / "pylock.toml"
    lock.write_text(lock_text([feed_wheel(feed, tmp_path)], [("team-lib", "1.0", setup.team_url, sha(setup.team))]))
    cli.ok("env", "build", "--lock", lock)
    other = tmp_path / "other.toml"  # another key, whose lock file prune does not find
    other.write_text(lock_text([feed_wheel(feed, tmp_path)], []))
    weigh, started = cache._bytes_held_alone, []

    def weigh_while_a_build_starts(folder: Path) -> int:
        if not started:
            locks = setup.cache / "locks"
            before = set(locks.glob("build-*.lock"))
            started.append(subprocess.Popen(cli.argv("env", "build", "--lock", other), env=cli.env, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True))
            deadline = time.monotonic() + 5  # until it has fetched and starts installing (on main), or 5 s (it waits)
            while set(locks.glob("build-*.lock")) == before and started[0].poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
        return weigh(folder)

    monkeypatch.setenv(envvars.HOME, str(setup.home))
    monkeypatch.setattr(cache, "_bytes_held_alone", weigh_while_a_build_starts)
    cache.prune(caches=True)
    out, err = started[0].communicate(timeout=120)
    assert started[0].returncode == 0, err
    env = Path(out.strip())
    ran = cli.tool([env / "bin" / "python", "-c", "import pkg_a; print(pkg_a.VERSION)"])
    assert ran.returncode == 0 and ran.output.split() == ["1.0"], ran.describe()


def test_prune_caches_checks_more_locks_than_it_may_open(checked_cli: Callable[..., PrivpkgCLI], tmp_path: Path) -> None:
    """Every key ever built leaves its lock file in ``locks/``: ``env prune --caches`` held them
    all open at once, and past ``ulimit -n`` of them it failed at every run ("Too many open
    files"). It now checks them one at a time (here 300 locks under a limit of 128)."""
    cli = checked_cli()
    locks = Path(cli.env[envvars.HOME]) / "cache" / "envs" / "locks"
    locks.mkdir(parents=True)
    for n in range(300):
        (locks / f"key-{n:064x}.lock").touch()
    ran = cli.tool(["sh", "-c", 'ulimit -n 128 && exec "$@"', "sh", *cli.argv("env", "prune", "--caches")])
    assert ran.returncode == 0 and "emptied" in ran.output and "Too many" not in ran.output, ran.describe()


def test_a_second_prune_caches_says_another_prune_runs(checked_cli: Callable[..., PrivpkgCLI]) -> None:
    """Two ``env prune --caches`` at once: the second said "a build is running", naming one of
    the locks the first held. It now says another prune runs, and removes nothing."""
    from privpkg.environments import cache
    from privpkg.fileio import file_lock

    cli = checked_cli()
    top = Path(cli.env[envvars.HOME]) / "cache" / "envs"
    (top / "wheels").mkdir(parents=True)
    with file_lock(top / "locks" / cache.CACHES_LOCK):  # what a first prune holds
        line = cli.fails(1, "env", "prune", "--caches", match="another env prune --caches is running")
        assert "build" not in line and (top / "wheels").is_dir()


def test_prune_caches_names_a_lock_that_is_a_directory(checked_cli: Callable[..., PrivpkgCLI]) -> None:
    """``env prune --caches`` opens every lock in ``locks/``: one that is a directory refuses
    it at every run, so the line says what to do ("Is a directory" alone did not)."""
    cli = checked_cli()
    odd = Path(cli.env[envvars.HOME]) / "cache" / "envs" / "locks" / "key-odd.lock"
    odd.mkdir(parents=True)
    cli.fails(1, "env", "prune", "--caches", match=[f"the lock file {odd} is a directory; remove it if you did not create it"])
    odd.rmdir()
    assert "emptied" in cli.ok("env", "prune", "--caches")


def test_prune_caches_says_it_left_a_linked_cache(checked_cli: Callable[..., PrivpkgCLI], tmp_path: Path) -> None:
    """A cache folder that is a symbolic link (``uv`` moved to a bigger disk, or planted to point
    at the home folder) is never emptied: what it points to may be anyone's. Prune said it had
    emptied the uv cache all the same; it now says it left it."""
    cli = checked_cli()
    top = Path(cli.env[envvars.HOME]) / "cache" / "envs"
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "sub" / "keep.txt").write_text("mine")
    top.mkdir(parents=True)
    (top / "uv").symlink_to(mine)
    (top / "wheels").mkdir()
    (top / "wheels" / "x.whl").write_bytes(b"x" * 2000)
    (top / ".removing-planted").symlink_to(mine)  # a leftover name is never followed either
    out = cli.ok("env", "prune", "--caches").strip()
    assert out == "removed 0 unreferenced builds; emptied the fetched files and the uv and py-rattler caches (2.0 kB freed); left uv, a symbolic link", out
    assert (mine / "sub" / "keep.txt").read_text() == "mine" and (top / "uv").is_symlink() and not (top / "wheels").exists()


def test_azure_workspace_wheel_leaves_no_signature(checked_cli: Callable[..., PrivpkgCLI], azurite: Any, tmp_path: Path) -> None:
    """A ``privpkg://`` wheel of an Azurite workspace: fetched through a SAS made in the build's
    process only. No output, no file of the cache, the build or uv's cache holds a signature
    (``sig=``) or the account key, and ``direct_url.json`` names the ``privpkg://`` URL."""
    cli = checked_cli(azurite.key)
    container = azurite.create_container()
    cli.ok("workspace", "add", WS, "--azure", container)
    cli.ok("connection", "set", "team-blob", "--category", "AzureBlob", "--target", container, stdin=azurite.key + "\n")
    whl = make_wheel(tmp_path / "dist", "cloud-lib", "2.0")
    url = cli.ok("wheel", "add", whl, "--workspace", WS).strip().splitlines()[-1]
    lock = tmp_path / "pylock.toml"
    lock.write_text(lock_text([], [("cloud-lib", "2.0", url, sha(whl))]))
    env = Path(cli.ok("env", "build", "--lock", lock).strip())
    info = site_packages(env) / "cloud_lib-2.0.dist-info"
    assert json.loads((info / "direct_url.json").read_text())["url"] == url
    assert cli.ok("env", "build", "--lock", lock).strip() == str(env)
    assert_caches_clean(cli.env, azurite.key)
    assert "sig=" not in cli.outputs.text()


def test_fetch_sends_the_secret_only_to_the_connection_never_on_a_redirect(isolated_privpkg: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """fetch_artifacts in-process with two loopback servers: the feed answers a file with a
    redirect to another host (port); the secret goes with the first request only."""
    from http.server import BaseHTTPRequestHandler

    from support.feeds import ServedHTTP

    from privpkg.environments.fetch import fetch_artifacts
    from privpkg.environments.pylock import Artifact

    whl = make_wheel(tmp_path / "files", "moved-pkg", "1.0")
    seen: list[tuple[str, str, bool]] = []  # (port, path, whether an Authorization came): never its value

    def handler(label: str, body: bytes | None, location: str | None) -> type[BaseHTTPRequestHandler]:
        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:
                seen.append((label, self.path, "Authorization" in self.headers))
                self.send_response(302 if location else 200)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

        return H

    other = ServedHTTP(handler("other", whl.read_bytes(), None))
    feed = ServedHTTP(handler("feed", None, f"{other.base}/files/{whl.name}"))
    try:
        secret = "redirect-PAT-" + "7" * 20
        monkeypatch.setenv(envvars.CONNECTIONS, json.dumps([{"name": "f", "target": f"{feed.base}/feed/", "secret": secret}]))
        a = Artifact("moved-pkg", "1.0", f"{feed.base}/feed/{whl.name}", whl.name, sha(whl), "wheel")
        (got,) = fetch_artifacts([a], tmp_path / "wh")
        assert got.read_bytes() == whl.read_bytes()
    finally:
        feed.stop()
        other.stop()
    assert [(port, auth) for port, _, auth in seen] == [("feed", True), ("other", False)], seen


def test_conda_explicit_list_with_py_rattler(checked_cli: Callable[..., PrivpkgCLI], channel_server: Any, tmp_path: Path) -> None:
    """A CEP 23 explicit list of a private channel demanding a Bearer token: the packages are
    fetched with the CondaChannel connection's token, checked, and installed into a prefix with
    py-rattler (no conda); conda-meta names the list's URLs; the second build is a hit; the token
    is nowhere in the outputs, the cache or the prefix."""
    secret = channel_server.secrets["bearer"]
    cli = checked_cli(secret)
    base = channel_server.url("bearer")
    cli.ok("connection", "set", "chan", "--category", "CondaChannel", "--auth-type", "Bearer", "--target", base, stdin=secret + "\n")
    lines = ["# platform: linux-64", "@EXPLICIT"]
    for fn in ("privtool-1.1-0.tar.bz2", "privdata-2.0-0.tar.bz2"):
        lines.append(f"{base}noarch/{fn}#sha256:{sha(channel_server.dir / 'noarch' / fn)}")
    lock = tmp_path / "conda-linux-64.txt"
    lock.write_text("\n".join(lines) + "\n")
    prefix = Path(cli.ok("env", "build", "--lock", lock).strip())
    assert (prefix / "share" / "privtool" / "privtool.txt").read_text() == "privtool 1.1\n"
    meta = json.loads((prefix / "conda-meta" / "privtool-1.1-0.json").read_text())
    assert meta["url"] == f"{base}noarch/privtool-1.1-0.tar.bz2"
    assert sorted(e.scheme for e in channel_server.log() if e.path.endswith(".tar.bz2")) == ["bearer", "bearer"], channel_server.log_text()
    requests = len(channel_server.log())
    assert cli.ok("env", "build", "--lock", lock).strip() == str(prefix)
    assert cli.ok("env", "path", "--lock", lock).strip() == str(prefix)
    assert len(channel_server.log()) == requests
    res = cli("env", "run", "--lock", lock, "--", "sh", "-c", 'test "$CONDA_PREFIX" = "$0" && cat "$0/share/privdata/privdata.txt"', str(prefix))
    assert res.returncode == 0 and res.stdout == "privdata 2.0\n", res.stdout + res.stderr
    assert "installed" not in res.stderr  # a hit makes no prefix
    # `env run` that makes the prefix says what installed it, as `env build` does, on stderr.
    assert "removed 1 unreferenced build" in cli.ok("env", "prune", "--older-than", "0")
    res = cli("env", "run", "--lock", lock, "--", "sh", "-c", 'cat "$CONDA_PREFIX/share/privdata/privdata.txt"')
    assert res.returncode == 0 and res.stdout == "privdata 2.0\n", res.stdout + res.stderr
    assert "privpkg: installed 2 conda package(s) with py-rattler" in res.stderr, res.stderr
    assert grep_tree(Path(cli.env[envvars.HOME]) / "cache", secret) > 4
    bad = tmp_path / "conda-md5.txt"
    bad.write_text(f"@EXPLICIT\n{base}noarch/privtool-1.1-0.tar.bz2#{'0' * 32}\n")
    cli.fails(2, "env", "build", "--lock", bad, match="expected URL#sha256:HEX")
