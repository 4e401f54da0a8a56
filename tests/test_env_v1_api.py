"""``privpkg.Environment`` as an azureml v1 script uses it (issue 10's API, session 19's port):
``add_private_pip_wheel`` and ``Environment.label`` by v1's names, ``get(version="latest")`` as
``NAME:latest`` on the command line, ``build_local()`` of an ``Environment.list`` entry (whose
locks are in the workspace), and v1 habits that privpkg cannot take (``Environment("name")``, a
workspace that is not a name) refused in one line of privpkg's own errors. ``register`` refuses a
secret before locking, naming the file and line as ``env create`` does; a lock that failed
for want of a credential says so. A spec's repr masks a password in a URL.

In-process, on a local workspace; the build is real (uv, offline, from privpkg's wheelhouse).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support.cli import PrivpkgCLI
from support.env import assert_no_secret
from support.feeds import FeedServer

import privpkg
from privpkg import envvars
from privpkg.errors import NotFoundError, PrivpkgError, UsageError
from privpkg.testing import make_wheel

WS = "team"


@pytest.fixture
def team(isolated_privpkg: Path, tmp_path: Path) -> Path:
    """A local workspace named WS; returns a wheel (mylib 1.0) not yet published in it."""
    from privpkg.workspace import Workspace, add_workspace

    add_workspace(Workspace(WS, "local", str(tmp_path / "ws")))
    return make_wheel(tmp_path / "dist", "mylib", "1.0")


def _register_with_lock(name: str, url: str, wheel: Path) -> None:
    """Register ``name`` with a lock of the one workspace wheel, as ``pip lock`` writes it (the
    registry's own call: locking a privpkg:// requirement would run pip)."""
    from privpkg.environments import registry
    from privpkg.environments.spec import Spec

    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    lock = (f'lock-version = "1.0"\ncreated-by = "test"\n\n[[packages]]\nname = "mylib"\nversion = "1.0"\n\n'
            f'[packages.archive]\nurl = "{url}"\nhashes = {{ sha256 = "{sha}" }}\n')
    _, store = registry.open_registry(WS)
    registry.register(store, Spec(name, pip=(f"mylib @ {url}",)), {"pylock.toml": lock})


def test_v1_script_port(team: Path) -> None:
    Environment = privpkg.Environment
    # v1: url = Environment.add_private_pip_wheel(workspace=ws, file_path=..., exist_ok=True)
    url = Environment.add_private_pip_wheel(workspace=WS, file_path=team, exist_ok=True)
    assert url == f"privpkg://{WS}/wheels/{team.name}"
    assert Environment.add_private_pip_wheel(WS, str(team), exist_ok=True) == url
    with pytest.raises(PrivpkgError, match=r"exist_ok=True"):
        Environment.add_private_pip_wheel(WS, team)

    _register_with_lock("train", url, team)
    # v1: Environment.label(workspace, name, version, labels); every label checked before any moves.
    with pytest.raises(UsageError, match="invalid label 'Bad'"):
        Environment.label(WS, "train", "1", ["ok", "Bad"])
    with pytest.raises(NotFoundError, match="no label 'ok'"):
        Environment.get(WS, "train", label="ok")
    assert Environment.labels(WS, "train") == {}
    Environment.label(workspace=WS, name="train", version="1", labels=["prod", "stable"])
    assert Environment.get(WS, "train", label="stable").version == 1
    assert Environment.labels(WS, "train") == {"prod": 1, "stable": 1}  # as env list prints them
    with pytest.raises(NotFoundError, match="no environment 'trian'.*did you mean 'train'"):
        Environment.labels(WS, "trian")
    # "latest", as NAME:latest on the command line.
    assert Environment.get(WS, "train", version="latest").version == 1

    # A listed environment has no locks in hand; build_local() reads them from its workspace.
    listed = Environment.list(WS)["train"]
    assert listed.locks == {} and listed.version == 1
    path = listed.build_local()
    out = subprocess.run([path / "bin" / "python", "-c", "import mylib; print(mylib.VERSION)"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "1.0", out.stderr
    assert Environment.get(WS, "train").build_local() == path
    # Its errors name its keywords, not the command line's options.
    with pytest.raises(UsageError, match=r"^python=/no/such/python: no such interpreter$"):
        listed.build_local(python="/no/such/python")
    (team.parent / "taken").mkdir()
    with pytest.raises(UsageError, match=r"^link=.*taken.*: it exists and is not a symbolic link"):
        listed.build_local(link=team.parent / "taken")
    with pytest.raises(UsageError, match=r"^installer must be one of uv, pip, got conda$"):
        listed.build_local(installer="conda")
    assert listed.build_local(installer="pip") == path  # the key is the files': the same build
    # No uv at all (the one stand-in: uv is installed here), asked for by name: the advice
    # names the keyword.
    from privpkg.environments import build as build_module

    with pytest.MonkeyPatch.context() as m:
        m.setattr(build_module, "find_uv", lambda: None)
        for folder in ("keys", "memo"):
            for f in (Path(os.environ[envvars.HOME]) / "cache" / "envs" / folder).iterdir():
                f.unlink()
        with pytest.raises(UsageError, match=r"uv is not installed \(pip install uv\); or build with installer='pip'$"):
            listed.build_local(installer="uv")

    # v1: env.clone(new_name), registered under that name with the same locks.
    with pytest.raises(UsageError, match="invalid environment name 'Bad Name'"):
        listed.clone("Bad Name")
    gpu = Environment.get(WS, "train").clone("train-gpu")
    assert (gpu.name, gpu.version) == ("train-gpu", None)
    gpu.register(WS)
    assert (gpu.version, gpu.created) == (1, True)
    assert Environment.get(WS, "train-gpu").locks == Environment.get(WS, "train").locks
    assert sorted(Environment.list(WS)) == ["train", "train-gpu"]


def test_v1_habits_refused_in_one_line(team: Path) -> None:
    Environment = privpkg.Environment
    # v1: Environment("train") then python.conda_dependencies; here a spec comes from a file.
    with pytest.raises(UsageError, match=r"Environment\('train'\): .*from_pip_requirements"):
        Environment("train")  # type: ignore[arg-type]
    for bad in (None, object()):
        with pytest.raises(UsageError, match="give a workspace's name"):
            Environment.get(bad, "train")  # type: ignore[arg-type]
        with pytest.raises(UsageError, match="give a workspace's name"):
            Environment.list(bad)  # type: ignore[arg-type]
    unregistered = Environment.from_pip_requirements("train", _write(team.parent / "r.txt", "mylib\n"))
    with pytest.raises(UsageError, match="no lock yet: register it first"):
        unregistered.build_local()


def test_register_refuses_a_secret_before_locking(team: Path, tmp_path: Path) -> None:
    secret = "Zq" + "7" * 30 + "xYw"
    privpkg.set_connection("feed", "PythonFeed", "https://127.0.0.1:9/org/", "PAT", value=secret)
    # Port 9 answers nothing: had register locked first, pip's failure would be the error.
    reqs = _write(tmp_path / "reqs.txt", f"--index-url https://__token__:{secret}@127.0.0.1:9/org/simple/\nmylib\n")
    env = privpkg.Environment.from_pip_requirements("train", reqs)
    with pytest.raises(UsageError) as caught:
        env.register(WS)
    assert str(caught.value).startswith("reqs.txt, line 1 holds the secret of connection 'feed'"), caught.value
    assert_no_secret(str(caught.value), secret)
    with pytest.raises(NotFoundError):
        privpkg.Environment.get(WS, "train")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_help_documents_every_public_method() -> None:
    """``help(privpkg.Environment)`` is what a v1 user reads first: every public method says what it does."""
    env = privpkg.Environment
    missing = [n for n in dir(env) if not n.startswith("_") and callable(getattr(env, n)) and not getattr(env, n).__doc__]
    assert missing == [], missing
    assert sys.modules["privpkg.environments.api"].__doc__


def test_an_azureml_v1_directory_is_named(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    """What v1's ``save_to_directory`` wrote (``azureml_environment.json``, ``conda_dependencies.yml``)
    is named as such, with the way to bring it along, by the API and by ``env register``."""
    v1 = tmp_path / "v1-env"
    v1.mkdir()
    (v1 / "azureml_environment.json").write_text('{"name": "train", "version": "3"}')
    (v1 / "conda_dependencies.yml").write_text("dependencies:\n  - python=3.11\n")
    with pytest.raises(UsageError, match=r"azureml v1 environment directory; .*from_conda_specification"):
        privpkg.Environment.load_from_directory(v1)
    privpkg_cli.ok("workspace", "add", WS, "--local", tmp_path / "ws")
    privpkg_cli.fails(2, "env", "register", v1, "--workspace", WS, match="is an azureml v1 environment directory")
    privpkg_cli.outputs.check()


def test_a_specs_repr_shows_no_password(tmp_path: Path) -> None:
    """A spec is screened when registered or saved; before that, a notebook shows ``env.spec``: a
    password in a URL's user info or a signature is masked in its repr (the file is the user's)."""
    password, sig = "hunter22pass" + "9" * 8, "c2lnbmF0dXJlCg"
    reqs = _write(tmp_path / "reqs.txt", f"--index-url https://__token__:{password}@feed.example/simple/\n"
                  f"mylib @ https://acct.blob.core.windows.net/w/mylib-1.0-py3-none-any.whl?sv=1&sig={sig}\n")
    env = privpkg.Environment.from_pip_requirements("train", reqs)
    shown = repr(env.spec)
    assert "https://__token__:***@feed.example/simple/" in shown and "sig=***" in shown, shown
    assert_no_secret(shown + str(env) + repr(env), password, sig)


def test_a_lock_without_credential_names_the_lookup(checked_cli: Callable[..., PrivpkgCLI], feed: FeedServer, tmp_path: Path) -> None:
    """pip says only "from versions: none" when the feed answered 401 and privpkg had no
    connection for it: the lock's error line adds the URL pip asked for and why it got nothing
    (register through the API and ``env register`` share the lock)."""
    cli = checked_cli(feed.secret_a)
    cli.ok("workspace", "add", WS, "--local", tmp_path / "ws")
    reqs = _write(tmp_path / "requirements.txt", f"--index-url {feed.index_a}\npkg-a\n")
    cli.ok("env", "create", "train", "-r", reqs, "-o", tmp_path / "train-env")
    cli.fails(1, "env", "register", tmp_path / "train-env", "--workspace", WS,
              match=["from versions: none", f"(pip asked privpkg for {feed.index_a} and got nothing: privpkg holds no connection",
                     "privpkg auth login URL"])
    feed.assert_never_authorized()


def test_set_connection_without_a_value_says_which_argument(isolated_privpkg: Path) -> None:
    """v1's ``ws.set_connection(name, category, target, authType, value)``: the secret is ``value``."""
    with pytest.raises(UsageError, match=r"no secret given: set_connection\(\.\.\., value=PAT\)"):
        privpkg.set_connection("feed", "PythonFeed", "https://feed.example/org/", "PAT")
    assert privpkg.list_connections() == []


def test_build_local_and_set_label_refuse_another_workspaces_version_of_the_name(team: Path, tmp_path: Path) -> None:
    """``build_local(WORKSPACE)`` of a listed environment (no locks in hand) reads NAME:N there: in
    another workspace that is another environment, whose lock under this spec would have built
    other packages silently; ``set_label(WORKSPACE, ...)`` would have labelled it."""
    from privpkg.environments import registry
    from privpkg.environments.spec import Spec
    from privpkg.workspace import Workspace, add_workspace

    url = privpkg.Environment.add_private_pip_wheel(WS, team)
    _register_with_lock("train", url, team)
    add_workspace(Workspace("other", "local", str(tmp_path / "other")))
    other = make_wheel(tmp_path / "dist-other", "otherlib", "3.0")
    other_url = privpkg.Environment.add_private_pip_wheel("other", other)
    sha = hashlib.sha256(other.read_bytes()).hexdigest()
    lock = (f'lock-version = "1.0"\ncreated-by = "test"\n\n[[packages]]\nname = "otherlib"\nversion = "3.0"\n\n'
            f'[packages.archive]\nurl = "{other_url}"\nhashes = {{ sha256 = "{sha}" }}\n')
    _, store = registry.open_registry("other")
    registry.register(store, Spec("train", pip=(f"otherlib @ {other_url}",)), {"pylock.toml": lock})
    listed = privpkg.Environment.list(WS)["train"]
    with pytest.raises(PrivpkgError, match=r"train:1 in workspace 'other' is other content than this one .*give the workspace it came from"):
        listed.build_local("other")
    # set_label likewise: other's train:1 is not this environment, so its label stays unset.
    with pytest.raises(PrivpkgError, match=r"train:1 in workspace 'other' is other content than this one"):
        privpkg.Environment.get(WS, "train").set_label("other", "prod")
    assert privpkg.Environment.labels("other", "train") == {}


def test_label_names_the_labels_moved_before_storage_refused_one(team: Path, tmp_path: Path) -> None:
    """Each label is its own object: when the storage refuses the second, the first has moved,
    and the error line says so rather than leaving the caller to think nothing changed."""
    url = privpkg.Environment.add_private_pip_wheel(WS, team)
    _register_with_lock("train", url, team)
    labels = tmp_path / "ws" / "environments" / "train" / "labels"
    labels.mkdir(parents=True)
    (labels / "stable").write_text("in the way")  # a file where the label's folder goes
    with pytest.raises(PrivpkgError, match=r"stable.*\('prod' already points at train:1\)$"):
        privpkg.Environment.label(WS, "train", 1, ["prod", "stable"])
    assert privpkg.Environment.labels(WS, "train") == {"prod": 1}


def test_an_environment_from_one_workspace_registers_in_another(team: Path, tmp_path: Path) -> None:
    """azureml's ``Environment.get(ws1, name).register(ws2)`` copies it: the version it carries is
    ws1's number, not one to assert in ws2 (that was "train has no version 2; the next one is 1").
    A ``list`` entry, without locks in hand, brings those of the workspace it was listed in."""
    from privpkg.environments import registry
    from privpkg.environments.spec import Spec
    from privpkg.workspace import Workspace, add_workspace

    url = privpkg.Environment.add_private_pip_wheel(WS, team)
    _register_with_lock("train", url, team)
    _, store = registry.open_registry(WS)
    v1 = privpkg.Environment.get(WS, "train")
    registry.register(store, Spec("train", pip=(f"mylib @ {url}", "pip>=1")), v1.locks)
    add_workspace(Workspace("other", "local", str(tmp_path / "other")))
    latest = privpkg.Environment.get(WS, "train")
    assert latest.version == 2
    add_workspace(Workspace("third", "local", str(tmp_path / "third")))
    copied = privpkg.Environment.get(WS, "train")
    copied.register("third")
    assert (copied.version, copied.created, copied.locks) == (1, True, v1.locks)
    v1.register("other")
    assert (v1.version, v1.created) == (1, True)
    latest.register("other")
    assert (latest.version, latest.created) == (2, True)
    assert privpkg.Environment.get("other", "train").digest == privpkg.Environment.get(WS, "train").digest
    # A listed entry: registered again where it was listed (unchanged), and in another workspace.
    listed = privpkg.Environment.list(WS)["train"]
    assert listed.locks == {}
    listed.register(WS)
    assert (listed.version, listed.created) == (2, False)
    listed = privpkg.Environment.list(WS)["train"]
    listed.register("other")
    assert (listed.version, listed.created) == (2, False)


def test_a_failed_lock_names_no_lookup_another_process_made(team: Path, tmp_path: Path) -> None:
    """The hint after a failed lock is pip's own lookup, never one that another program (another
    terminal's pip, another lock) recorded while pip ran: the feed here answers 404, so this pip
    asks privpkg nothing, while an unrelated lookup is recorded during its request."""
    import http.server
    import threading

    from privpkg import lookuplog

    class Feed(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            lookuplog.record("https://elsewhere.example/team-feed/simple/", None, api="get_credential", reason="no-match")
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        reqs = _write(tmp_path / "reqs.txt", f"--index-url http://127.0.0.1:{server.server_port}/simple/\nnosuchpkg\n")
        with pytest.raises(PrivpkgError) as caught:
            privpkg.Environment.from_pip_requirements("train", reqs).register(WS)
    finally:
        server.shutdown()
    assert "from versions: none" in str(caught.value), caught.value
    assert "elsewhere.example" not in str(caught.value) and "pip asked privpkg" not in str(caught.value), caught.value
    assert any("elsewhere.example" in str(r.get("service")) for r in lookuplog.read_last(20))  # it was recorded meanwhile
