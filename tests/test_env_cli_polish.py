"""The environment and resolve commands as a first-time user meets them (session 18's review,
findings 2, 4, 5, 7, 8, 12, 19, 20, 21 and 25), through the real CLI:

- repeated ``-r`` is merged in order, as pip does (``env create``, ``resolve``; the pinned copy
  installs with real pip); options that cannot merge refuse a repeat in one line;
- ``env run NAME -w W`` reads options up to ``--`` or CMD; a missing environment is named with
  its workspace, the closest name and the ``env list`` that shows it;
- ``env create --venv`` (a real venv, real pip): a ``privpkg://`` install is kept by its URL, a
  ``file://`` one refused, the rest warned about (no index recorded);
- errors name the user's file and line, never an fd or ``''s``; missing and wrong-kind inputs are
  exit 2, unwritable targets exit 1;
- ``env create`` checks ``--workspace`` and ``--platform``; ``env label`` to where it already
  points writes nothing; ``env lock --package`` is checked; ``env lock DIR`` leaves no lock file;
  NAME with ``--lock`` and ``--lock`` twice in ``env dockerfile`` are refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.builds import Venv
from support.cli import PrivpkgCLI
from test_pip_shim import local_workspace, pip_install, versions_in

from privpkg.environments import pylock

LOCK = pylock.dump(pylock.load(
    'lock-version = "1.0"\ncreated-by = "test"\n[[packages]]\nname = "requests"\nversion = "2.0"\n[[packages.wheels]]\n'
    f'url = "https://files.example/requests-2.0-py3-none-any.whl"\nhashes = {{sha256 = "{"0" * 64}"}}\n'))


def _registered(cli: PrivpkgCLI, tmp_path: Path, workspace: str = "team", name: str = "train") -> Path:
    """``name``:1 registered in a local ``workspace`` with a lock brought along (no network)."""
    cli.ok("workspace", "add", workspace, "--local", tmp_path / f"ws-{workspace}")
    (tmp_path / "requirements.txt").write_text("requests>=2\n")
    folder = tmp_path / f"{name}-env"
    cli.ok("env", "create", name, "-r", tmp_path / "requirements.txt", "-o", folder)
    (folder / "pylock.toml").write_text(LOCK)
    assert f"registered {name}:1" in cli.ok("env", "register", folder, "-w", workspace)
    return folder


def test_env_create_merges_repeated_requirements_in_order(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    cli = privpkg_cli
    (tmp_path / "requirements.txt").write_text("--index-url https://pkgs.example/simple/\nrequests>=2\n")
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "req-priv.txt").write_text("attrs\n-c pins.txt\n")
    (tmp_path / "extra" / "pins.txt").write_text("attrs==23.1\n")
    out = cli.ok("env", "create", "m1", "-r", tmp_path / "requirements.txt", "-r", tmp_path / "extra" / "req-priv.txt",
                 "-o", tmp_path / "m1")
    definition = json.loads((tmp_path / "m1" / "definition.json").read_text())
    assert definition["pip"] == ["--index-url https://pkgs.example/simple/", "attrs", "requests>=2"], definition
    assert definition["constraints"] == ["attrs==23.1"]
    assert sorted(p.name for p in (tmp_path / "m1" / "spec").iterdir()) == ["pins.txt", "req-priv.txt", "requirements.txt"]
    # No --workspace given: the hint names none (nor 'default', which may not be where it goes).
    assert out.strip().endswith("register it with: privpkg env register " + str(tmp_path / "m1") + " --workspace W"), out
    # An existing target: --force named; a file is never replaced.
    cli.fails(2, "env", "create", "m1", "-r", tmp_path / "requirements.txt", "-o", tmp_path / "m1", match="--force")
    cli.fails(2, "env", "create", "m1", "-r", tmp_path / "requirements.txt", "-o", tmp_path / "requirements.txt", "--force",
              match="is a file, not an environment directory")
    # What cannot merge is refused, never the last one silently taken.
    (tmp_path / "a.yml").write_text("dependencies:\n  - pip:\n    - attrs\n")
    cli.fails(2, "env", "create", "m2", "-f", tmp_path / "a.yml", "-f", tmp_path / "a.yml", "-o", tmp_path / "m2",
              match="--file given 2 times")
    assert not (tmp_path / "m2").exists()
    cli.outputs.check()


def test_resolve_merges_repeated_requirements_and_pip_installs_both(
    privpkg_cli: PrivpkgCLI, venv_bare_pip: Venv, tmp_path: Path
) -> None:
    cli = privpkg_cli
    _, urls = local_workspace(cli, tmp_path, ("alpha-pkg", "1.0"), ("beta-pkg", "2.0"))
    # A folder whose name needs quoting (a space, non-ASCII) is read as any other.
    first, second = tmp_path / "requirements.txt", tmp_path / "more dir é" / "requirements2.txt"
    second.parent.mkdir()
    first.write_text(f"alpha-pkg @ {urls['alpha-pkg']}\n")
    second.write_text(f"beta-pkg @ {urls['beta-pkg']}\n")
    pinned = tmp_path / "p2.txt"
    res = cli("resolve", "-r", first, "-r", second, "--wheelhouse", tmp_path / "wh", "-o", pinned)
    assert res.returncode == 0, res.stderr
    assert "pinned 2 wheels" in res.stderr, res.stderr
    r = pip_install(cli, venv_bare_pip, tmp_path / "t", "-r", pinned)
    assert r.returncode == 0, r.describe()
    assert versions_in(venv_bare_pip, tmp_path / "t", cli.env, "alpha_pkg", "beta_pkg") == ["1.0", "2.0"]
    # Signed constraints: both files' lines, in order.
    res = cli("resolve", "-r", first, "-r", second, "-o", tmp_path / "c.txt")
    assert res.returncode == 0 and "wrote 2 signed constraints" in res.stderr, res.stderr
    names = [ln.split(" @ ")[0] for ln in (tmp_path / "c.txt").read_text().splitlines() if not ln.startswith("#")]
    assert names == ["alpha-pkg", "beta-pkg"]
    cli.fails(2, "resolve", "-r", first, "-r", tmp_path / "nope.txt", "--wheelhouse", tmp_path / "wh", "-o", tmp_path / "p3.txt",
              match="nope.txt")
    cli.fails(2, "resolve", "-r", first, "-r", pinned, "--wheelhouse", tmp_path / "wh", "-o", pinned, match="is the requirements file")
    cli.fails(2, "resolve", "-r", second, "-r", first, "-o", first, match="is the requirements file itself; write the constraints")
    assert first.read_text() == f"alpha-pkg @ {urls['alpha-pkg']}\n"
    cli.outputs.check()


def test_env_run_options_before_the_command_and_workspace_named(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    cli = privpkg_cli
    _registered(cli, tmp_path)
    # Options after NAME are env run's, up to `--` or CMD's first word: the workspace is 'team'.
    for argv in (["--workspace", "team", "--", "python"], ["-w", "team", "python", "-c", "1"], ["-wteam", "--", "python"],
                 ["--workspace=team", "--", "python"]):
        cli.fails(1, "env", "run", "trian", *argv,
                  match="no environment 'trian' in workspace 'team'; did you mean 'train'? (see: privpkg env list --workspace team)")
    cli.fails(2, "env", "run", "train", "-w", "team", "--bogus", "x", "--", "python", match="unrecognized arguments: --bogus")
    cli.fails(2, "env", "run", "train", "--workspace", "team", match="no command to run")  # found in 'team', nothing built
    cli.fails(1, "env", "show", "trian", "-w", "team", match="did you mean 'train'? (see: privpkg env list --workspace team)")
    cli.fails(1, "env", "show", "train", match="no environment 'train' in workspace 'default' (see: privpkg env list)")
    cli.fails(1, "env", "build", "train:2", "-w", "team", match="has no version 2 in workspace 'team'")
    cli.fails(1, "env", "show", "train@prod", "-w", "team", match="has no label 'prod' in workspace 'team'")
    cli.outputs.check()


def test_env_create_from_a_real_virtualenv(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    """``env create --venv`` on a venv made by ``python -m venv``, filled by its own pip: a wheel
    installed from its ``privpkg://`` URL (through the shim ``setup pip`` copies in) is kept by
    that URL; one installed from a ``file://`` URL is refused; the one from an index is pinned,
    with one warning line that its index is not recorded; pip itself is left out."""
    from privpkg.testing import make_wheel

    cli = privpkg_cli
    _, urls = local_workspace(cli, tmp_path, ("ws-pkg", "0.3"))
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "feed-pkg", "1.2")
    local = make_wheel(wheels, "other-pkg", "0.1")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, capture_output=True)
    cli.ok("setup", "pip", "--python", venv / "bin" / "python")
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels]
    assert cli.tool([*pip, "feed-pkg"]).returncode == 0
    r = cli.tool([*pip, f"ws-pkg @ {urls['ws-pkg']}"])
    assert r.returncode == 0, r.describe()
    res = cli("env", "create", "train", "--venv", venv, "-o", tmp_path / "d")
    assert res.returncode == 0, res.stderr
    definition = json.loads((tmp_path / "d" / "definition.json").read_text())
    # What `python -m venv` put there besides pip (setuptools on some Pythons) is pinned too.
    by_name = [line for line in definition["pip"] if " @ " not in line]
    assert "feed-pkg==1.2" in by_name and f"ws-pkg @ {urls['ws-pkg']}" in definition["pip"], definition
    assert not any(line.startswith("pip==") for line in definition["pip"])
    warning = res.stderr.splitlines()
    assert len(warning) == 1, res.stderr
    assert warning[0].startswith(f"privpkg: warning: the definition names {len(by_name)} package(s) without their index")
    assert "--index-url" in warning[0] and "privpkg env create -r" in warning[0]
    assert definition["python"] == ".".join(map(str, sys.version_info[:3]))
    assert cli.tool([*pip, local.as_uri()]).returncode == 0
    cli.fails(2, "env", "create", "t2", "--venv", venv, "-o", tmp_path / "d2",
              match=["other-pkg 0.1 was installed from a local file (file://", "privpkg:// URL"])
    assert not (tmp_path / "d2").exists()
    assert cli.tool([venv / "bin" / "python", "-m", "pip", "uninstall", "-q", "-y", "other-pkg"]).returncode == 0
    # What pip records for a git install and for an archive URL (written here: no git server or
    # build backend is reachable offline), and a malformed record: each one line, nothing written.
    record = next(venv.glob("lib/python*/site-packages/feed_pkg-1.2.dist-info")) / "direct_url.json"
    for direct, match in [({"url": "git+https://u:SECRET@git.example/org/feed.git", "vcs_info": {"vcs": "git", "commit_id": "0" * 40}},
                           "feed-pkg 1.2 was installed from a direct URL (git+https://***@git.example/org/feed.git)"),
                          ({"url": "https://files.example/feed_pkg-1.2-py3-none-any.whl", "archive_info": {}}, "`NAME @ URL`"),
                          ({"url": "file:///tmp/pkgdir", "dir_info": [1]}, "was installed from a local file")]:
        record.write_text(json.dumps(direct))
        line = cli.fails(2, "env", "create", "t4", "--venv", venv, "-o", tmp_path / "d4", match=match)
        assert "SECRET" not in line
    assert not (tmp_path / "d4").exists()
    cli.fails(2, "env", "create", "t3", "--venv", tmp_path / "nosuch", "-o", tmp_path / "d3", match="no such virtualenv")
    cli.outputs.check()


def test_errors_name_the_users_file_and_line(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    cli = privpkg_cli
    secret = "feed-pat-" + "7" * 20
    cli.outputs.add_secret(secret)
    cli.ok("connection", "set", "feed", "--target", "https://pkgs.example.com/org/", stdin=secret + "\n")
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("requests>=2\n")
    # --lock X that is not TOML names X (and what --lock takes), in build and dockerfile alike.
    for argv in (["env", "build"], ["env", "dockerfile", "-o", tmp_path / "ctx"]):
        line = cli.fails(2, *argv, "--lock", reqs, match=f"{reqs} is not valid TOML")
        assert "pylock.toml is not" not in line and "--lock takes a pylock.toml" in line
    # A directory where a file belongs: one line naming it, never an fd number.
    for flag in ("-r", "-f"):
        line = cli.fails(2, "env", "create", "t", flag, tmp_path, "-o", tmp_path / "x", match=f"{tmp_path} is a directory")
        assert ": 3" not in line
    # A bad requirement: file and line, packaging's first line only (no \n, no caret drawing).
    bad = tmp_path / "b.txt"
    bad.write_text("attrs\n\nrequests>=2,<\n")
    line = cli.fails(2, "env", "create", "e", "-r", bad, "-o", tmp_path / "e", match=f"{bad}, line 3: not a requirement: 'requests>=2,<'")
    assert "\\n" not in line and "~" not in line
    # A missing include: the including file and line.
    inc = tmp_path / "inc.txt"
    inc.write_text("attrs\n-r nope-inc.txt\n")
    cli.fails(2, "env", "create", "e", "-r", inc, "-o", tmp_path / "e", match=f"{inc}, line 2: no such file: {tmp_path / 'nope-inc.txt'}")
    # The secret screen names the user's file and line, and the connection without a repr's ''s.
    (tmp_path / "sub").mkdir()
    leak = tmp_path / "sub" / "leak2.txt"
    leak.write_text(f"# a comment\n--extra-index-url https://u:{secret}@pkgs.example.com/org/simple/\n")
    line = cli.fails(2, "env", "create", "l", "-r", leak, "-o", tmp_path / "l", match=f"{leak}, line 2 holds the secret of connection 'feed'")
    assert "''s" not in line and "definition.json" not in line and "spec/" not in line
    env_yml = tmp_path / "environment.yml"
    env_yml.write_text(f"dependencies:\n  - pip:\n    - --extra-index-url https://u:{secret}@pkgs.example.com/org/simple/\n")
    cli.fails(2, "env", "create", "l", "-f", env_yml, "-o", tmp_path / "l", match=f"{env_yml}, line 3 holds the secret of connection 'feed'")
    assert not (tmp_path / "l").exists()
    cli.outputs.check()


def _team_and_requirements(cli: PrivpkgCLI, tmp_path: Path) -> Path:
    """A local workspace ``team`` and a one-line requirements file (its path)."""
    cli.ok("workspace", "add", "team", "--local", tmp_path / "ws")
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("requests>=2\n")
    return reqs


def test_exit_codes_missing_inputs_2_unwritable_targets_1(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    cli = privpkg_cli
    reqs = _team_and_requirements(cli, tmp_path)
    lock = tmp_path / "pylock.toml"
    lock.write_text(LOCK)
    nope, folder = tmp_path / "nope.txt", tmp_path / "folder"
    folder.mkdir()
    for bad in (nope, folder):  # missing, or a directory where a file belongs: usage, exit 2
        cli.fails(2, "env", "create", "t", "-r", bad, "-o", tmp_path / "o", match=str(bad))
        cli.fails(2, "env", "create", "t", "-f", bad, "-o", tmp_path / "o", match=str(bad))
        cli.fails(2, "env", "build", "--lock", bad, match=str(bad))
        cli.fails(2, "env", "dockerfile", "--lock", bad, "-o", tmp_path / "ctx", match=str(bad))
        cli.fails(2, "resolve", "-r", bad, "--wheelhouse", tmp_path / "wh", "-o", tmp_path / "p.txt", match=str(bad))
    cli.fails(2, "env", "create", "t", "--venv", folder, "-o", tmp_path / "o", match="not a virtualenv")
    cli.fails(2, "env", "register", tmp_path / "nope-dir", "-w", "team", match="no such definition directory")
    cli.fails(2, "env", "register", folder, "-w", "team", match="has no definition.json")
    # A target that cannot be written (a file in the way; root writes through modes): exit 1.
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    cli.fails(1, "env", "create", "t", "-r", reqs, "-o", blocker / "env", match=f"cannot write {blocker / 'env'}")
    cli.fails(1, "env", "dockerfile", "--lock", lock, "-o", blocker / "ctx", match=f"cannot use {blocker / 'ctx'} as the build context")
    cli.fails(1, "resolve", "-r", reqs, "--wheelhouse", blocker / "wh", "-o", tmp_path / "p.txt", match="as the wheelhouse")
    cli.fails(1, "resolve", "-r", reqs, "-o", blocker / "c.txt", match=f"cannot write {blocker / 'c.txt'}")
    cli.outputs.check()


def test_create_checks_workspace_and_platform(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    cli = privpkg_cli
    reqs = _team_and_requirements(cli, tmp_path)
    cli.fails(2, "env", "create", "p", "-r", reqs, "-o", tmp_path / "p", "--workspace", "tema",
              match="no workspace named 'tema'; did you mean 'team'?")
    assert "--workspace team" in cli.ok("env", "create", "p", "-r", reqs, "-o", tmp_path / "p", "--workspace", "team")
    # A pip spec is locked for this machine only: the line register would give, at create.
    cli.fails(2, "env", "create", "p1", "-r", reqs, "--platform", "osx-arm64", "-o", tmp_path / "p1",
              match="a pip spec is locked for this machine's platform")
    assert not (tmp_path / "p1").exists()
    cli.outputs.check()


def test_label_unchanged_and_lock_package_checked(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    cli = privpkg_cli
    folder = _registered(cli, tmp_path)
    labels = tmp_path / "ws-team" / "environments" / "train" / "labels" / "prod"
    assert "now points at train:1" in cli.ok("env", "label", "train:1", "prod", "-w", "team")
    before = sorted(p.name for p in labels.iterdir())
    out = cli.ok("env", "label", "train:1", "prod", "-w", "team")
    assert "already points at train:1; unchanged, nothing was written" in out
    assert sorted(p.name for p in labels.iterdir()) == before == ["1.json"]
    for ref in ("train", str(folder)):  # a registered environment, and a definition directory
        cli.fails(2, "env", "lock", ref, "-w", "team", "--package", "bad name!", match="--package 'bad name!' is not a project name")
        cli.fails(2, "env", "lock", ref, "-w", "team", "--package", "reqests",
                  match=["--package reqests:", "neither requires nor locks it; did you mean 'requests'?"])
    # The directory's lock file is not left behind (a definition directory is often committed).
    assert not (folder / ".privpkg-env-lock").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["definition.json", "pylock.toml", "spec"]
    cli.outputs.check()


def test_name_with_lock_and_two_locks_are_refused(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    cli = privpkg_cli
    _registered(cli, tmp_path)
    lock = tmp_path / "pylock.toml"
    lock.write_text(LOCK)
    for argv in (["env", "build"], ["env", "path"], ["env", "dockerfile", "-o", tmp_path / "ctx"]):
        cli.fails(2, *argv, "train", "-w", "team", "--lock", lock, match="give NAME[:VERSION] or --lock FILE, not both")
    cli.fails(2, "env", "run", "train", "-w", "team", "--lock", lock, "--", "python", match="not both")
    cli.fails(2, "env", "dockerfile", "--lock", lock, "--lock", lock, "-o", tmp_path / "ctx", match="--lock given 2 times")
    assert not (tmp_path / "ctx").exists()
    cli.outputs.check()


@pytest.mark.parametrize("argv", [["--lock", "L", "--", "sh", "-c", "exit 3"], ["--lock", "L", "sh", "-c", "exit 3"]])
def test_run_with_lock_keeps_the_commands_own_options(privpkg_cli: PrivpkgCLI, tmp_path: Path, argv: list[str]) -> None:
    """``env run --lock F -- CMD -c ...``: CMD's options stay CMD's (the lock names no artifact
    this machine can fetch, so the run stops at the build, past the option parsing)."""
    lock = tmp_path / "pylock.toml"
    lock.write_text(LOCK)
    res = privpkg_cli("env", "run", *[str(lock) if a == "L" else a for a in argv])
    assert "unrecognized arguments" not in res.stderr and "not both" not in res.stderr, res.stderr
    privpkg_cli.outputs.check()


def test_env_lock_dir_lock_excludes_and_is_removed(tmp_path: Path) -> None:
    """The lock ``env lock DIR`` holds is removed when released, yet still excludes: eight
    holders at once (each its own descriptor, as separate processes would have), one at a time,
    including a waiter that opened the file its predecessor removed."""
    import threading
    import time

    from privpkg.cli.env_lock import exclusive

    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "definition.json").write_text("{}")
    inside: list[int] = []
    overlaps: list[int] = []
    start = threading.Barrier(8)

    def hold(n: int) -> None:
        start.wait()
        for _ in range(5):
            with exclusive("default", str(folder)):
                if inside:
                    overlaps.append(n)
                inside.append(n)
                time.sleep(0.002)
                inside.remove(n)

    threads = [threading.Thread(target=hold, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not overlaps, overlaps
    assert sorted(p.name for p in folder.iterdir()) == ["definition.json"]
    # A file of that name with something in it is not the lock's: used, never removed.
    (folder / ".privpkg-env-lock").write_text("keep")
    with exclusive("default", str(folder)):
        pass
    assert (folder / ".privpkg-env-lock").read_text() == "keep"


def test_env_run_hands_on_what_follows_dashes_untouched(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    """Everything after the first ``--`` is the command, its own options and its own ``--``
    included, on every Python (argparse's remainder drops or keeps that ``--`` by version); before
    it, NAME and env run's options; ``--lock F WORD -- CMD`` names an environment too: refused."""
    cli = privpkg_cli
    empty = 'lock-version = "1.0"\ncreated-by = "test"\n'
    cli.ok("workspace", "add", "team", "--local", tmp_path / "ws")
    (tmp_path / "requirements.txt").write_text("# nothing: the environment is the interpreter alone\n")
    cli.ok("env", "create", "e", "-r", tmp_path / "requirements.txt", "-o", tmp_path / "e")
    (tmp_path / "e" / "pylock.toml").write_text(empty)
    cli.ok("env", "register", tmp_path / "e", "-w", "team")
    lock = tmp_path / "pylock.toml"
    lock.write_text(empty)
    show = ["python", "-c", "import sys; print(sys.argv[1:])"]
    cases = [
        (["e", "-w", "team", "--", *show, "-x", "--workspace", "y"], "['-x', '--workspace', 'y']"),
        (["e", "--workspace", "team", "--", *show, "--", "-w", "z"], "['--', '-w', 'z']"),
        (["e", "-w", "team", *show, "-w", "--", "z"], "['-w', '--', 'z']"),  # the command's own `--`
        (["--lock", lock, "--", *show, "-x"], "['-x']"),
        (["--lock", lock, *show, "--", "-x"], "['--', '-x']"),
        (["e", "--work", "team", "--", *show, "-x"], "['-x']"),  # an abbreviation, as argparse takes it before NAME
    ]
    for argv, printed in cases:
        assert cli.ok("env", "run", *argv).strip().splitlines()[-1] == printed, argv
    cli.fails(2, "env", "run", "--lock", lock, "echo", "--", *show, match="not both")
    for flag in ("-h", "--help"):  # after NAME too
        assert cli.ok("env", "run", "e", "-w", "team", flag).startswith("usage: privpkg env run")
    cli.fails(2, "env", "run", "-w", "team", "e", "--", "-x", match="-x: no such command")  # after `--`: the command's
    cli.outputs.check()


def test_env_show_output_writes_the_version_as_a_definition_directory(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    """``env show REF -o DIR`` (azureml's `az ml environment download`): the version as env create
    writes a definition, which registers as the same version; DIR is never replaced without
    --force, and --force is only for -o."""
    cli = privpkg_cli
    folder = _registered(cli, tmp_path)
    dest = tmp_path / "from-workspace"
    said = cli.ok("env", "show", "train:1", "-w", "team", "-o", dest)
    assert said.startswith(f"wrote train:1 of workspace 'team' to {dest} (pylock.toml)"), said
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    assert (dest / "pylock.toml").read_text() == LOCK and (dest / "definition.json").read_bytes() == (folder / "definition.json").read_bytes()
    assert "train:1 is unchanged in workspace 'team'; nothing was written" in cli.ok("env", "register", dest, "-w", "team")
    cli.fails(2, "env", "show", "train", "-w", "team", "-o", dest, match="exists")
    assert "wrote train:1" in cli.ok("env", "show", "train", "-w", "team", "-o", dest, "--force")
    (tmp_path / "afile").write_text("x")
    cli.fails(2, "env", "show", "train", "-w", "team", "-o", tmp_path / "afile", "--force", match="is a file")
    assert (tmp_path / "afile").read_text() == "x"
    cli.fails(2, "env", "show", "train", "-w", "team", "-o", tmp_path / "j", "--json", match="not both")
    cli.fails(2, "env", "show", "train", "-w", "team", "--force", match="--force goes with -o")
    cli.outputs.check()


def test_env_show_output_never_replaces_a_registered_version_or_a_broken_link(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    """A local workspace's ``environments/NAME/N/`` holds a definition.json as a definition directory
    does: ``-o`` there with --force would have replaced version N by another's files, without its
    record (the version gone from env show). A dangling symlink is something there too: never
    replaced without --force."""
    cli = privpkg_cli
    folder = _registered(cli, tmp_path)
    (folder / "requirements.txt").write_text("requests>=2.1\n")
    cli.ok("env", "create", "train", "-r", folder / "requirements.txt", "-o", folder, "--force")
    (folder / "pylock.toml").write_text(LOCK)
    assert "registered train:2" in cli.ok("env", "register", folder, "-w", "team")
    stored = tmp_path / "ws-team" / "environments" / "train" / "1"
    before = {p: p.read_bytes() for p in stored.rglob("*") if p.is_file()}
    cli.fails(2, "env", "show", "train:2", "-w", "team", "-o", stored, "--force", match="is a registered version in a workspace's storage")
    assert {p: p.read_bytes() for p in stored.rglob("*") if p.is_file()} == before
    assert cli.ok("env", "show", "train:1", "-w", "team").startswith("train:1")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    cli.fails(2, "env", "show", "train", "-w", "team", "-o", link, match="exists")
    cli.fails(2, "env", "show", "train", "-w", "team", "-o", link, "--force", match="is a broken symbolic link")
    assert link.is_symlink()
    cli.outputs.check()


def test_env_show_masks_a_secret_the_version_holds(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    """A version registered before its token became a connection's secret still holds it: env
    show (text and --json, which go to CI logs) prints *** instead, and says so once."""
    cli = privpkg_cli
    token = "Gf7tokenValueQ2x9"  # a Gemfury-style token in the path: no screen rule knew it then
    cli.ok("workspace", "add", "team", "--local", tmp_path / "ws")
    (tmp_path / "requirements.txt").write_text(f"mylib @ https://files.example/{token}/mylib-1.0-py3-none-any.whl\n")
    cli.ok("env", "create", "train", "-r", tmp_path / "requirements.txt", "-o", tmp_path / "train")
    (tmp_path / "train" / "pylock.toml").write_text(LOCK)
    cli.ok("env", "register", tmp_path / "train", "-w", "team")
    assert token in cli.ok("env", "show", "train", "-w", "team")  # not a secret privpkg knows yet
    cli.ok("connection", "set", "gemfury", "--category", "PythonFeed", "--target", "https://files.example/", stdin=token)
    for extra in ([], ["--json"]):
        res = cli("env", "show", "train", "-w", "team", *extra)
        assert res.returncode == 0 and token not in res.stdout + res.stderr and "***" in res.stdout, res
        assert res.stderr == "privpkg: warning: train:1 holds a secret (shown as ***): register a version without it, and rotate the secret\n"
