"""Project configuration (``privpkg.toml``) is untrusted input (issue 6, A1/A2/A4/A5).

Each test reproduces an attack or a corruption through the real CLI (and, where it matters, a real
pip with the shim): a file planted in a shared parent directory, a project file that redefines
``default``, a walk past the repository root or the home directory, directories others can write,
a workspace name or value that breaks the file, a broken definition that takes every command
down, and an "azure" workspace aimed at a host that is not Azure Blob storage.

The tests that ``os.chown`` a file to another uid (65534, ``nobody``), as a second user on a shared
machine would own it, need root (this machine's CI runs as root); they ask for it through the
``as_root`` fixture or :func:`need_root`, which follow the suite's missing-tool policy (support.env): under
``CI=true``/``CI=1`` a non-root run FAILS them (it must not go green without the ownership checks),
and outside CI they fail too unless PRIVPKG_TESTS_SKIP_MISSING_TOOLS=1. Every other test here
runs as any user.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from support.builds import Venv
from support.cli import PrivpkgCLI
from support.env import missing_tool, run

from privpkg import envvars
from privpkg.testing import make_wheel

OTHER = 65534  # nobody / nogroup
TRUST_VAR = envvars.TRUSTED_PROJECTS


def need_root() -> None:
    """Fail (or, outside CI and opted in, skip) a test that must chown to another uid."""
    if os.geteuid() != 0:
        missing_tool(f"this test needs root to chown files to uid {OTHER} (another user); run the tests as root, as CI does")


@pytest.fixture
def as_root() -> None:
    need_root()


def listed(cli: PrivpkgCLI, cwd: Path) -> tuple[dict[str, dict[str, str]], list[str]]:
    """``workspace list --json`` from ``cwd``: ({name: entry}, warning lines). Never fails."""
    res = cli("workspace", "list", "--json", cwd=cwd)
    assert res.returncode == 0, res.stderr
    warnings = res.stderr.strip().splitlines()
    assert all(w.startswith("privpkg: warning: ") for w in warnings), res.stderr
    return {w["name"]: w for w in json.loads(res.stdout)}, warnings


def project(d: Path, body: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    f = d / "privpkg.toml"
    f.write_text(body)
    f.chmod(0o644)
    return f


def with_env(cli: PrivpkgCLI, **extra: str) -> PrivpkgCLI:
    return PrivpkgCLI({**cli.env, **extra}, cli.outputs)


def local_def(name: str, path: Path | str) -> str:
    return f'[workspaces.{name}]\nstorage = "local"\npath = "{path}"\n'


# --------------------------------------------------------------------------------------------
# A1: a planted file in a shared parent, a project redefining default: real pip installs
# --------------------------------------------------------------------------------------------


def _installed_body(venv: Venv, target: Path, env: dict[str, str]) -> str:
    r = run([venv.python, "-c", "import sharedlib; print(sharedlib.WHO)"], {**env, "PYTHONPATH": str(target)})
    assert r.returncode == 0, r.describe()
    return r.output.strip()


@pytest.mark.parametrize("venv_name", ["venv_privpkg", "venv_pip231_shim"])
def test_planted_file_in_shared_parent_does_not_change_what_pip_installs(
    as_root: None, request: pytest.FixtureRequest, privpkg_cli: PrivpkgCLI, tmp_path: Path, venv_name: str
) -> None:
    """Another user writes ``privpkg.toml`` into a sticky world-writable directory (like /tmp)
    that redefines ``default`` to a folder holding their wheel under the same file name. A user
    working in a scratch folder below it installs ``x @ privpkg://default/...``: pip must get the
    user's own wheel, and one warning line names the file, the rule and the opt-in. Both with
    privpkg in pip's environment (pip 26.3) and with the copied shim (pip 23.1), which signs
    through ``privpkg resolve`` in a subprocess (that path shows pip no warning, only errors)."""
    cli = privpkg_cli
    venv: Venv = request.getfixturevalue(venv_name)
    good = make_wheel(tmp_path / "dist-good", "sharedlib", "1.0", body='WHO = "the user"\n')
    url = cli.ok("wheel", "add", good, cwd=tmp_path).strip().splitlines()[-1]
    assert url == f"privpkg://default/wheels/{good.name}"

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    evil_store = shared / "evil-store"
    (evil_store / "wheels").mkdir(parents=True)
    evil = make_wheel(tmp_path / "dist-evil", "sharedlib", "1.0", body='WHO = "the attacker"\n')
    assert evil.name == good.name
    shutil.copy(evil, evil_store / "wheels" / evil.name)
    planted = project(shared, local_def("default", evil_store) + local_def("extra", evil_store))
    for p in (planted, evil_store, evil_store / "wheels", evil_store / "wheels" / evil.name):
        os.chown(p, OTHER, OTHER)
    victim = shared / "victim-scratch"
    victim.mkdir()

    target = tmp_path / "target"
    r = cli.tool([*venv.pip, "install", "--no-cache-dir", "--no-index", "--target", target, f"sharedlib @ {url}"], cwd=victim)
    assert r.returncode == 0, r.describe()
    assert _installed_body(venv, target, cli.env) == "the user"
    if venv_name == "venv_privpkg":
        warn = [ln for ln in r.output.splitlines() if ln.startswith("privpkg: warning:")]
        assert len(warn) == 1, r.output
        assert str(planted) in warn[0] and f"owned by uid {OTHER}" in warn[0] and f"{TRUST_VAR}={shared}" in warn[0], warn
    # The planted file's extra workspace is not served either.
    names, warnings = listed(cli, victim)
    assert set(names) == {"default"} and names["default"]["source"] == "built-in"
    assert len(warnings) == 1 and str(planted) in warnings[0]
    r = cli.tool([*venv.pip, "install", "--no-cache-dir", "--no-index", "--target", tmp_path / "t2",
                  f"sharedlib @ privpkg://extra/wheels/{good.name}"], cwd=victim)
    assert r.returncode != 0 and "Traceback" not in r.output, r.describe()
    assert "no workspace named 'extra'" in r.output and f"{TRUST_VAR}={shared}" in r.output, r.output


def test_project_cannot_redefine_default_or_a_user_workspace(
    privpkg_cli: PrivpkgCLI, venv_privpkg: Venv, tmp_path: Path, privpkg_home: Path
) -> None:
    """A trusted project file (the user's own checkout) may add workspaces but not take over
    ``default`` or one the user defined: its entry is ignored with one line naming both files."""
    cli = privpkg_cli
    good = make_wheel(tmp_path / "dist-good", "sharedlib", "1.0", body='WHO = "the user"\n')
    url = cli.ok("wheel", "add", good, cwd=tmp_path).strip().splitlines()[-1]
    cli.ok("workspace", "add", "team", "--local", tmp_path / "team-store", cwd=tmp_path)

    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    other = repo / "vendored-store"
    (other / "wheels").mkdir(parents=True)
    shutil.copy(make_wheel(tmp_path / "dist-evil", "sharedlib", "1.0", body='WHO = "the project"\n'), other / "wheels" / good.name)
    proj = project(repo, local_def("default", "vendored-store") + local_def("team", "vendored-store") + local_def("added", "vendored-store"))

    names, warnings = listed(cli, repo)
    assert names["default"]["source"] == "built-in" and names["team"]["source"] == "user"
    assert names["team"]["path"] == str((tmp_path / "team-store").resolve())
    assert names["added"]["source"] == f"project {proj}" and names["added"]["path"] == str(other)
    assert len(warnings) == 2, warnings
    w_default = next(w for w in warnings if "'default'" in w)
    w_team = next(w for w in warnings if "'team'" in w)
    assert str(proj) in w_default and "built-in" in w_default
    assert str(proj) in w_team and str(privpkg_home / "workspaces.toml") in w_team

    target = tmp_path / "target"
    r = cli.tool([*venv_privpkg.pip, "install", "--no-cache-dir", "--no-index", "--target", target, f"sharedlib @ {url}"], cwd=repo)
    assert r.returncode == 0, r.describe()
    assert _installed_body(venv_privpkg, target, cli.env) == "the user"


# --------------------------------------------------------------------------------------------
# A1: where the walk stops
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("marker", [".git", ".hg", "git-file"])
def test_discovery_stops_at_the_repository_root(privpkg_cli: PrivpkgCLI, tmp_path: Path, marker: str) -> None:
    cli = privpkg_cli
    outer = tmp_path / "outer"
    project(outer, local_def("above", tmp_path / "s1"))
    repo = outer / "repo"
    if marker == "git-file":  # a worktree or submodule: .git is a file
        repo.mkdir(parents=True)
        (repo / ".git").write_text("gitdir: /elsewhere\n")
    else:
        (repo / marker).mkdir(parents=True)
    sub = repo / "src" / "pkg"
    sub.mkdir(parents=True)
    names, warnings = listed(cli, sub)
    assert set(names) == {"default"} and warnings == []
    project(repo, local_def("inside", tmp_path / "s2"))
    names, _ = listed(cli, sub)
    assert set(names) == {"default", "inside"}


def test_discovery_stops_at_the_home_directory(privpkg_cli: PrivpkgCLI, tmp_path: Path, test_home: Path) -> None:
    cli = privpkg_cli
    home = Path(cli.env["HOME"])
    project(home.parent, local_def("above_home", tmp_path / "s1"))
    work = home / "work" / "scratch"
    work.mkdir(parents=True)
    names, _ = listed(cli, work)
    assert set(names) == {"default"}
    project(home, local_def("in_home", tmp_path / "s2"))
    names, _ = listed(cli, work)
    assert set(names) == {"default", "in_home"}


# --------------------------------------------------------------------------------------------
# A1: ownership and modes, and the opt-in
# --------------------------------------------------------------------------------------------


def _untrusted(kind: str, tmp_path: Path) -> tuple[Path, Path, str]:
    """(the project dir, the file, a phrase of the rule the warning must name)."""
    base = tmp_path / "b"
    proj = base / "proj"
    if kind in NEEDS_CHOWN:
        need_root()
    f = project(proj, local_def("proj_ws", tmp_path / "s"))
    (proj / ".git").mkdir()
    if kind == "file-owner":
        os.chown(f, OTHER, OTHER)
        return proj, f, f"owned by uid {OTHER}"
    if kind == "file-writable":
        f.chmod(0o666)
        return proj, f, "writable by others"
    if kind == "dir-world-writable":
        proj.chmod(0o777)
        return proj, f, f"{proj} is writable by others"
    if kind == "dir-shared-group":
        os.chown(proj, -1, OTHER)
        proj.chmod(0o775)
        return proj, f, f"{proj} is writable by others"
    if kind == "ancestor-world-writable":
        base.chmod(0o777)
        return proj, f, f"{base} is writable by others"
    if kind == "dir-owner":
        os.chown(proj, OTHER, OTHER)
        return proj, f, f"{proj} is owned by uid {OTHER}"
    if kind == "symlink-owner":
        real = project(tmp_path / "mine", local_def("proj_ws", tmp_path / "s"))
        f.unlink()
        f.symlink_to(real)
        os.lchown(f, OTHER, OTHER)
        return proj, f, f"owned by uid {OTHER}"
    if kind == "file-acl-user":
        set_acl(f, user=OTHER)
        return proj, f, f"writable by others: uid {OTHER} (ACL)"
    if kind == "file-acl-group":
        set_acl(f, group=OTHER)
        return proj, f, f"writable by others: gid {OTHER} (ACL)"
    if kind == "dir-acl-user":
        set_acl(proj, user=OTHER)
        return proj, f, f"{proj} is writable by others: uid {OTHER} (ACL)"
    raise AssertionError(kind)


#: The kinds that chown to another uid (root only); the others are modes and ACLs any user can set.
NEEDS_CHOWN = {"file-owner", "dir-shared-group", "dir-owner", "symlink-owner"}
UNTRUSTED = ["file-owner", "file-writable", "dir-world-writable", "dir-shared-group", "ancestor-world-writable", "dir-owner",
             "symlink-owner", "file-acl-user", "file-acl-group", "dir-acl-user"]


def set_acl(path: Path, *, user: int | None = None, group: int | None = None, perm: int = 6, mask: int | None = None) -> None:
    """What ``setfacl -m u:UID:rw`` (or ``g:GID:rw``) does, without setfacl (not installed here):
    write the ``system.posix_acl_access`` xattr (header u32 version 2, then u16 tag, u16 perm,
    u32 id entries). The kernel then shows the mask as the mode's group bits (g+w) while the
    owning group keeps r-x; root's group 0 is a user private group here, which excused g+w."""
    import struct

    x = 1 if path.is_dir() else 0
    entries = [(0x01, 6 | x, 0xFFFFFFFF)]
    if user is not None:
        entries.append((0x02, perm | x, user))
    entries.append((0x04, 4 | x, 0xFFFFFFFF))
    if group is not None:
        entries.append((0x08, perm | x, group))
    if mask is None:  # as setfacl computes it: the union of the group class's permissions
        mask = (perm | 4) | x
    entries += [(0x10, mask, 0xFFFFFFFF), (0x20, 4 | x, 0xFFFFFFFF)]
    os.setxattr(path, "system.posix_acl_access", struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries))


@pytest.mark.parametrize("kind", UNTRUSTED)
def test_untrusted_project_file_is_skipped_with_one_line(privpkg_cli: PrivpkgCLI, tmp_path: Path, kind: str) -> None:
    cli = privpkg_cli
    proj, f, rule = _untrusted(kind, tmp_path)
    names, warnings = listed(cli, proj)
    assert set(names) == {"default"}, names
    assert len(warnings) == 1, warnings
    assert str(f) in warnings[0] and rule in warnings[0] and f"{TRUST_VAR}={proj}" in warnings[0], warnings
    # Using its workspace says why it is not there, in one line.
    cli.fails(1, "workspace", "show", "proj_ws", cwd=proj, match=["no workspace named 'proj_ws'", str(f), TRUST_VAR])
    # The exact opt-in the line names lifts it, for that directory only.
    for value in (str(proj), os.pathsep.join(["/nonexistent", str(proj)]), "*"):
        names, warnings = listed(with_env(cli, **{TRUST_VAR: value}), proj)
        assert "proj_ws" in names and warnings == [], (value, warnings)
    names, warnings = listed(with_env(cli, **{TRUST_VAR: str(proj / "sub")}), proj)
    assert "proj_ws" not in names and len(warnings) == 1


@pytest.mark.integration  # runs a program
def test_acl_writer_really_can_rewrite_the_project_file(as_root: None) -> None:
    """Red team F3: the ACL entry is not theoretical. Another user (``nobody``, through setpriv)
    rewrites a root-owned 0644 file whose ACL grants it rw, and the trust check, which read only
    the mode bits (0664, owning group root's private group 0), trusted the rewritten file."""
    import subprocess
    import tempfile

    from privpkg import workspace

    base = Path(tempfile.mkdtemp(prefix="privpkg-acl-", dir="/tmp"))  # /tmp is 1777: nobody can reach it
    try:
        base.chmod(0o755)
        proj = base / "repo"
        (proj / ".git").mkdir(parents=True)
        proj.chmod(0o755)
        f = project(proj, local_def("team", "wheels"))
        set_acl(f, user=OTHER)
        assert f.stat().st_mode & 0o777 == 0o664
        r = subprocess.run(["setpriv", f"--reuid={OTHER}", f"--regid={OTHER}", "--clear-groups", "sh", "-c",
                            f"printf '%s' '{local_def('team', '/tmp/attacker-wheels')}' > {f}"],
                           capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr
        assert "attacker-wheels" in f.read_text()
        assert workspace.untrusted_reason(f) == f"it is writable by others: uid {OTHER} (ACL)"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize(
    "acl",
    [
        {"user": OTHER, "perm": 4},  # another user may read only
        {"user": OTHER, "mask": 5},  # write granted, but the mask takes it away (mode shows g-w)
        {"user": 0},  # a named entry for yourself
        {"group": OTHER, "perm": 4},
    ],
)
def test_harmless_acls_are_trusted(privpkg_cli: PrivpkgCLI, tmp_path: Path, acl: dict[str, int]) -> None:
    cli = privpkg_cli
    proj = tmp_path / "proj"
    project(proj, local_def("proj_ws", tmp_path / "s"))
    (proj / ".git").mkdir()
    set_acl(proj / "privpkg.toml", **acl)
    set_acl(proj, **acl)
    names, warnings = listed(cli, proj)
    assert "proj_ws" in names and warnings == [], warnings


def test_sudo_uid_owns_its_checkout(as_root: None, privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    """Root under sudo reads the invoking user's checkout, as git does; no other uid's."""
    cli = privpkg_cli
    proj, _, _ = _untrusted("file-owner", tmp_path)
    names, warnings = listed(with_env(cli, SUDO_UID=str(OTHER)), proj)
    assert "proj_ws" in names and warnings == []
    names, warnings = listed(with_env(cli, SUDO_UID="1234"), proj)
    assert "proj_ws" not in names and len(warnings) == 1


def test_trusted_projects_in_the_user_config(as_root: None, privpkg_cli: PrivpkgCLI, tmp_path: Path, privpkg_home: Path) -> None:
    """The root-in-a-container case: a checkout owned by another uid, opted in through the user
    config list, which ``workspace add``/``remove`` keep when they rewrite the file."""
    cli = privpkg_cli
    proj, _, _ = _untrusted("file-owner", tmp_path)
    names, warnings = listed(cli, proj)
    assert "proj_ws" not in names
    assert f"trusted_projects in {privpkg_home / 'workspaces.toml'}" in warnings[0], warnings
    user = privpkg_home / "workspaces.toml"
    user.write_text(f"# my settings\ntrusted_projects = [{json.dumps(str(proj))}]\n")
    names, warnings = listed(cli, proj)
    assert "proj_ws" in names and warnings == []
    cli.ok("workspace", "add", "mine", "--local", tmp_path / "m", cwd=tmp_path)
    cli.ok("workspace", "remove", "mine", cwd=tmp_path)
    assert user.read_text().startswith(f"# my settings\ntrusted_projects = [{json.dumps(str(proj))}]\n")
    names, _ = listed(cli, proj)
    assert "proj_ws" in names


def test_sticky_world_writable_dir_is_trusted(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    """A file of the user's in a sticky world-writable dir (like /tmp) is read."""
    cli = privpkg_cli
    sticky = tmp_path / "sticky"
    project(sticky, local_def("sticky_ws", tmp_path / "s"))
    sticky.chmod(0o1777)
    names, warnings = listed(cli, sticky)
    assert "sticky_ws" in names and warnings == []


def test_user_private_group_writable_dir_is_trusted(as_root: None, privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    """A directory that is group-writable by the user's private group (umask 002 with user
    private groups) is read."""
    cli = privpkg_cli
    upg = tmp_path / "upg"
    project(upg, local_def("upg_ws", tmp_path / "s"))
    # root's primary group 0 has no other member here (checked, so the test cannot pass by accident).
    import grp
    import pwd

    assert [p.pw_name for p in pwd.getpwall() if p.pw_gid == 0] == ["root"] and grp.getgrgid(0).gr_mem == []
    os.chown(upg, -1, 0)
    upg.chmod(0o775)
    names, warnings = listed(cli, upg)
    assert "upg_ws" in names and warnings == []


# --------------------------------------------------------------------------------------------
# A2: relative paths
# --------------------------------------------------------------------------------------------


def test_relative_local_path_in_a_committed_project_file(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    cli = privpkg_cli
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "src").mkdir()
    cli.ok("workspace", "add", "vendored", "--local", "wheels/private", "--project", cwd=repo)
    cli.ok("workspace", "add", "outside", "--local", tmp_path / "elsewhere", "--project", cwd=repo / "src")
    text = (repo / "privpkg.toml").read_text()
    assert 'path = "wheels/private"' in text and f'path = "{tmp_path / "elsewhere"}"' in text, text
    wheel = make_wheel(tmp_path / "dist", "vend-pkg", "1.0")
    url = cli.ok("wheel", "add", wheel, "--workspace", "vendored", cwd=repo).strip().splitlines()[-1]
    assert (repo / "wheels/private/wheels" / wheel.name).is_file()

    clone = tmp_path / "clone"
    shutil.copytree(repo, clone)
    shutil.rmtree(repo)
    names, _ = listed(cli, clone / "src")
    assert names["vendored"]["path"] == str(clone / "wheels/private")
    assert cli.ok("resolve", url, cwd=clone / "src").strip() == (clone / "wheels/private/wheels" / wheel.name).as_uri()


# --------------------------------------------------------------------------------------------
# A5: names and values never corrupt the file; a real TOML writer keeps the user's layout
# --------------------------------------------------------------------------------------------


def test_dotted_workspace_names_round_trip(privpkg_cli: PrivpkgCLI, tmp_path: Path, privpkg_home: Path) -> None:
    import tomllib

    cli = privpkg_cli
    cli.ok("workspace", "add", "team.ml", "--local", tmp_path / "dotted", cwd=tmp_path)
    cli.ok("workspace", "add", "team", "--local", tmp_path / "plain", cwd=tmp_path)
    doc = tomllib.loads((privpkg_home / "workspaces.toml").read_text())
    assert set(doc["workspaces"]) == {"team.ml", "team"}
    names, warnings = listed(cli, tmp_path)
    assert names["team.ml"]["path"] == str(tmp_path / "dotted") and warnings == []
    wheel = make_wheel(tmp_path / "dist", "dot-pkg", "1.0")
    url = cli.ok("wheel", "add", wheel, "--workspace", "team.ml", cwd=tmp_path).strip().splitlines()[-1]
    assert url == f"privpkg://team.ml/wheels/{wheel.name}"
    assert cli.ok("resolve", url, cwd=tmp_path).strip() == (tmp_path / "dotted/wheels" / wheel.name).as_uri()
    cli.ok("workspace", "remove", "team.ml", cwd=tmp_path)
    names, _ = listed(cli, tmp_path)
    assert set(names) == {"default", "team"}


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--local", "/tmp/a\n[workspaces.default]\nstorage = \"local\"\npath = \"/evil\""], "control character"),
        (["--local", "/tmp/a\x01b"], "control character"),
        (["--s3", "s3://bucket", "--region", "eu\"\nx = \"y"], "control character"),
        (["--s3", "s3://bucket", "--region", "eu\"west"], "invalid region"),
    ],
    ids=["newline-path", "ctrl-path", "newline-region", "quote-region"],
)
def test_values_cannot_corrupt_the_file(privpkg_cli: PrivpkgCLI, tmp_path: Path, privpkg_home: Path, args: list[str], match: str) -> None:
    cli = privpkg_cli
    cli.ok("workspace", "add", "keep", "--local", tmp_path / "keep", cwd=tmp_path)
    before = (privpkg_home / "workspaces.toml").read_bytes()
    cli.fails(2, "workspace", "add", "evil", *args, cwd=tmp_path, match=match)
    assert (privpkg_home / "workspaces.toml").read_bytes() == before
    names, warnings = listed(cli, tmp_path)
    assert set(names) == {"default", "keep"} and warnings == []


def test_quotes_and_backslashes_round_trip_and_comments_stay(privpkg_cli: PrivpkgCLI, tmp_path: Path, privpkg_home: Path) -> None:
    cli = privpkg_cli
    user = privpkg_home / "workspaces.toml"
    user.write_text("# my workspaces\n\n[workspaces.first]   # the first one\nstorage = \"local\"\npath = \"/srv/first\"  # keep me\n")
    weird = tmp_path / 'we"ird\\dir #1'
    cli.ok("workspace", "add", "weird", "--local", weird, cwd=tmp_path)
    names, _ = listed(cli, tmp_path)
    assert names["weird"]["path"] == str(weird) and names["first"]["path"] == "/srv/first"
    text = user.read_text()
    assert text.startswith("# my workspaces\n\n[workspaces.first]   # the first one\n") and "# keep me" in text
    cli.ok("workspace", "remove", "weird", cwd=tmp_path)
    assert user.read_text().rstrip("\n") == "# my workspaces\n\n[workspaces.first]   # the first one\nstorage = \"local\"\npath = \"/srv/first\"  # keep me"


# --------------------------------------------------------------------------------------------
# A4: a broken definition never crashes anything; azure urls must be Azure Blob hosts
# --------------------------------------------------------------------------------------------

BROKEN = {
    "raw-nul": (b'[workspaces.bad]\nstorage = "local"\npath = "/x\x00y"\n', "invalid TOML"),
    "escaped-nul": (b'[workspaces.bad]\nstorage = "local"\npath = "/x\\u0000y"\n', "workspaces.bad.path"),
    "ctrl-url": (b'[workspaces.bad]\nstorage = "azure"\nurl = "https://a.blob.core.windows.net/c\\u001b[2J"\n', "workspaces.bad.url"),
    "invalid-toml": (b'[workspaces.bad]\nstorage = "local"\npath = \n', "invalid TOML"),
    "not-utf8": (b'[workspaces.bad]\nstorage = "local"\npath = "/\xff"\n', "not UTF-8"),
    "missing-key": (b'[workspaces.bad]\nstorage = "local"\n', "workspaces.bad.path"),
    "missing-storage": (b'[workspaces.bad]\npath = "/x"\n', "workspaces.bad.storage"),
    "storage-type": (b'[workspaces.bad]\nstorage = 5\npath = "/x"\n', "workspaces.bad.storage"),
    "path-type": (b'[workspaces.bad]\nstorage = "local"\npath = ["/x"]\n', "workspaces.bad.path"),
    "endpoint-type": (b'[workspaces.bad]\nstorage = "s3"\nurl = "s3://bkt"\nendpoint_url = 9\n', "workspaces.bad.endpoint_url"),
    "table-type": (b'[workspaces]\nbad = "local"\n', "workspaces.bad"),
    "workspaces-type": (b'workspaces = 3\n', "workspaces"),
    "unquoted-dotted": (b'[workspaces.bad.name]\nstorage = "local"\npath = "/x"\n', "workspaces.bad"),
    "bad-name": (b'[workspaces."b/ad"]\nstorage = "local"\npath = "/x"\n', "workspaces"),
    "unknown-storage": (b'[workspaces.bad]\nstorage = "ftp"\nurl = "ftp://x"\n', "unknown storage 'ftp'"),
    "not-azure": (b'[workspaces.bad]\nstorage = "azure"\nurl = "https://pypi.org/simple"\n', "not an Azure Blob container URL"),
    "trusted-type": (b'trusted_projects = "/x"\n', "trusted_projects"),
}

#: BROKEN cases that make the whole file unusable (not one bad entry): no workspace of it can
#: be read, a `workspaces` that is not a table included.
UNPARSABLE = ("raw-nul", "invalid-toml", "not-utf8", "workspaces-type")


@pytest.mark.parametrize("where", ["user", "project"])
@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_definition_is_one_line_and_others_keep_working(
    privpkg_cli: PrivpkgCLI, tmp_path: Path, privpkg_home: Path, where: str, case: str
) -> None:
    cli = privpkg_cli
    data, key = BROKEN[case]
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    good_wheel = make_wheel(tmp_path / "dist", "good-pkg", "1.0")
    url = cli.ok("wheel", "add", good_wheel, cwd=tmp_path).strip().splitlines()[-1]
    broken = (privpkg_home / "workspaces.toml") if where == "user" else (repo / "privpkg.toml")
    if where == "project":
        cli.ok("workspace", "add", "good", "--local", tmp_path / "good", cwd=tmp_path)
    else:
        project(repo, local_def("good", tmp_path / "good"))
    broken.write_bytes(data)
    broken.chmod(0o644)

    names, warnings = listed(cli, repo)
    unparsable_user = where == "user" and case in UNPARSABLE
    if unparsable_user:
        # Red team F4: while the user file cannot be parsed, the project's workspaces are ignored
        # (one more line naming both files); see test_unreadable_user_file_ignores_project_workspaces.
        assert "good" not in names and "default" in names, names
        assert len(warnings) == 2 and str(broken) in warnings[0] and key in warnings[0], warnings
        assert str(repo / "privpkg.toml") in warnings[1] and str(broken) in warnings[1], warnings
    else:
        assert "good" in names and "default" in names, names
        assert len(warnings) == 1 and str(broken) in warnings[0] and key in warnings[0], warnings
    # Installs from other workspaces are unaffected.
    assert cli.ok("resolve", url, cwd=repo).strip().startswith("file://")
    if not unparsable_user:
        cli.ok("workspace", "show", "good", cwd=repo)
    if case not in ("workspaces-type", "bad-name", "trusted-type"):
        cli.fails(1, "resolve", "privpkg://bad/wheels/bad-1.0-py3-none-any.whl", cwd=repo, match=[str(broken), key])
    if case in UNPARSABLE:
        # Never overwrite a file that could not be parsed.
        project_flag = ["--project"] if where == "project" else []
        cli.fails(1, "workspace", "add", "new", "--local", tmp_path / "n", *project_flag, cwd=repo, match=[str(broken), "not changed"])
        cli.fails(1, "workspace", "remove", "bad", *project_flag, cwd=repo, match=[str(broken), "not changed"])
        assert broken.read_bytes() == data


@pytest.mark.parametrize("how", ["invalid-toml", "not-utf8", "too-large", "unreadable"])
def test_unreadable_user_file_ignores_project_workspaces(
    privpkg_cli: PrivpkgCLI, venv_privpkg: Venv, tmp_path: Path, privpkg_home: Path, how: str
) -> None:
    """Red team F4 (issue 6 A1): a project never takes over a workspace the user defined. When
    the user's workspaces.toml cannot be read or parsed (one stray edit), privpkg cannot know
    which names are the user's, so it ignores the project's workspaces entirely, with one line
    naming both files. Before the fix, a trusted checkout's ``team`` served
    ``privpkg://team/...`` from the repository's own folder: real pip installed its wheel."""
    cli = privpkg_cli
    good = make_wheel(tmp_path / "dist-good", "sharedlib", "1.0", body='WHO = "the user"\n')
    cli.ok("workspace", "add", "team", "--local", tmp_path / "team-store", cwd=tmp_path)
    cli.ok("wheel", "add", good, "--workspace", "team", cwd=tmp_path)
    user = privpkg_home / "workspaces.toml"
    if how == "invalid-toml":
        user.write_text(user.read_text() + "\noops = [\n")
    elif how == "not-utf8":
        user.write_bytes(user.read_bytes() + b"# \xff\n")
    elif how == "too-large":
        user.write_text(user.read_text() + "#" * (1 << 20) + "\n")
    else:  # root reads any mode: a directory in the file's place fails to read the same way
        user.unlink()
        user.mkdir()

    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    evil = repo / "evil-store" / "wheels"
    evil.mkdir(parents=True)
    shutil.copy(make_wheel(tmp_path / "dist-evil", "sharedlib", "1.0", body='WHO = "the project"\n'), evil / good.name)
    proj = project(repo, local_def("team", "evil-store") + local_def("added", "evil-store"))

    names, warnings = listed(cli, repo)
    assert set(names) == {"default"}, names
    assert len(warnings) == 2, warnings
    assert str(user) in warnings[0] and str(proj) not in warnings[0], warnings
    assert str(proj) in warnings[1] and str(user) in warnings[1] and "ignoring the workspaces" in warnings[1], warnings

    url = f"privpkg://team/wheels/{good.name}"
    cli.fails(1, "resolve", url, cwd=repo, match=[str(user)])
    target = tmp_path / "target"
    r = cli.tool([*venv_privpkg.pip, "install", "--no-cache-dir", "--no-index", "--target", target, f"sharedlib @ {url}"], cwd=repo)
    assert r.returncode != 0 and "Traceback" not in r.output, r.describe()
    assert not (target / "sharedlib.py").exists() and "the project" not in r.output, r.describe()


def test_broken_definition_never_crashes_pip(privpkg_cli: PrivpkgCLI, venv_privpkg: Venv, tmp_path: Path, privpkg_home: Path) -> None:
    cli = privpkg_cli
    wheel = make_wheel(tmp_path / "dist", "good-pkg", "1.0")
    url = cli.ok("wheel", "add", wheel, cwd=tmp_path).strip().splitlines()[-1]
    user = privpkg_home / "workspaces.toml"
    user.write_bytes(b'[workspaces.bad]\nstorage = "local"\npath = "/x\\u0000y"\n[workspaces.az]\nstorage = "azure"\nurl = "https://pypi.org/simple"\n')
    target = tmp_path / "target"
    r = cli.tool([*venv_privpkg.pip, "install", "--no-cache-dir", "--no-index", "--target", target, f"good-pkg @ {url}"], cwd=tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.output, r.describe()
    assert (target / "good_pkg.py").is_file()
    r = cli.tool([*venv_privpkg.pip, "install", "--no-cache-dir", "--no-index", "--target", target, "bad-pkg @ privpkg://bad/wheels/bad_pkg-1.0-py3-none-any.whl"], cwd=tmp_path)
    assert r.returncode != 0 and "Traceback" not in r.output, r.describe()
    # The error pip shows carries privpkg's line naming the file and the key (besides one
    # warning for the other broken entry, `az`, which this install did not use).
    errors = [ln for ln in r.output.splitlines() if "privpkg: " in ln and "privpkg: warning: " not in ln]
    assert len(errors) == 1 and f"{user}: workspaces.bad.path" in errors[0], r.output


@pytest.mark.parametrize(
    "url",
    [
        "https://pypi.org/simple",
        "https://files.pythonhosted.org/packages",
        "https://acct.blob.core.windows.net.evil.example/c",
        "https://evil.example/acct/c",
        "https://acct.file.core.windows.net/c",
        "https://a.b.blob.core.windows.net/c",
        "https://acct.blob.core.windows.net:8443/c",
        "https://10.0.0.5/acct/c",
    ],
)
def test_azure_workspace_must_be_an_azure_blob_container(privpkg_cli: PrivpkgCLI, tmp_path: Path, privpkg_home: Path, url: str) -> None:
    cli = privpkg_cli
    cli.fails(2, "workspace", "add", "az", "--azure", url, cwd=tmp_path, match="not an Azure Blob container URL")
    assert not (privpkg_home / "workspaces.toml").exists()
    # Hand-written into the user config: one warning, no interception prefix.
    (privpkg_home / "workspaces.toml").write_text(f'[workspaces.az]\nstorage = "azure"\nurl = "{url}"\n')
    names, warnings = listed(cli, tmp_path)
    assert "az" not in names and len(warnings) == 1 and "workspaces.az.url" in warnings[0]


def test_azure_prefixes_never_include_another_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the pip shim mounts itself on: only Azure Blob containers (in-process, the function
    the shim calls)."""
    from privpkg import resolve

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv(envvars.HOME, str(home))
    monkeypatch.chdir(tmp_path)
    (home / "workspaces.toml").write_text(
        '[workspaces.pypi]\nstorage = "azure"\nurl = "https://pypi.org/simple"\n'
        '[workspaces.ok]\nstorage = "azure"\nurl = "https://acct.blob.core.windows.net/wheels"\n'
    )
    assert resolve.azure_prefixes() == ["https://acct.blob.core.windows.net/wheels/"]


@pytest.mark.parametrize(
    "url",
    [
        "https://acct.blob.core.windows.net/wheels",
        "https://acct2.blob.core.chinacloudapi.cn/wheels",
        "https://acct3.blob.core.usgovcloudapi.net/wheels",
        "http://127.0.0.1:10000/devstoreaccount1/wheels",
        "https://localhost:10000/devstoreaccount1/wheels",
    ],
)
def test_azure_blob_hosts_are_accepted(privpkg_cli: PrivpkgCLI, tmp_path: Path, url: str) -> None:
    cli = privpkg_cli
    cli.ok("workspace", "add", "az", "--azure", url, cwd=tmp_path)
    names, warnings = listed(cli, tmp_path)
    assert names["az"]["url"] == url and warnings == []
