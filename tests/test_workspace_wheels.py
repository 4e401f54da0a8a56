"""Workspaces and wheels on local storage through the real CLI: definitions, validation,
immutability, signing, and bad input that gets one line and loses nothing."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from support.cli import PrivpkgCLI, check_publish_rules, check_removal_rules

from privpkg import envvars
from privpkg.testing import make_wheel


@pytest.fixture
def cli(checked_cli: Callable[..., PrivpkgCLI], tmp_path: Path) -> PrivpkgCLI:
    work = tmp_path / "project"
    work.mkdir()
    return checked_cli(cwd=work)


def test_default_workspace_and_wheel_lifecycle(cli: PrivpkgCLI, tmp_path: Path, privpkg_home: Path) -> None:
    wheel = make_wheel(tmp_path / "dist", "demo-pkg", "1.0")
    res = cli("workspace", "list")
    assert res.returncode == 0 and "default" in res.stdout and "built-in" in res.stdout
    res = cli("wheel", "add", str(wheel))
    assert res.returncode == 0, res.stderr
    url = res.stdout.strip().splitlines()[-1]
    assert url == "privpkg://default/wheels/demo_pkg-1.0-py3-none-any.whl"
    root = privpkg_home / "workspaces/default"
    stored = root / "wheels" / wheel.name
    assert stored.read_bytes() == wheel.read_bytes()

    listed = json.loads(cli("wheel", "list", "--json").stdout)
    assert listed[0]["url"] == url and len(listed[0]["sha256"]) == 64
    assert cli("wheel", "url", str(wheel)).stdout.strip() == url

    signed = cli("resolve", url).stdout.strip()
    assert signed == stored.resolve().as_uri()

    # The rules every backend keeps (Azure and S3 run the same checks).
    check_publish_rules(cli, wheel, "default", url, hashlib.sha256(wheel.read_bytes()).hexdigest(), tmp_path)
    assert stored.read_bytes() == wheel.read_bytes()

    def files() -> list[str]:
        return [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]

    check_removal_rules(cli, wheel, "default", url, tmp_path, lambda: [f for f in files() if not f.endswith(".sha256")])
    assert files() == [], "a sha256 sidecar outlived its wheel or marker"


def _bad_wheels(d: Path) -> dict[str, Path]:
    d.mkdir(parents=True, exist_ok=True)
    notzip = d / "notzip-1.0-py3-none-any.whl"
    notzip.write_text("hello")
    badname = d / "not-a-wheel.whl"
    badname.write_bytes(make_wheel(d / "x", "ok", "1.0").read_bytes())
    mismatch = d / "alpha-2.0-py3-none-any.whl"
    mismatch.write_bytes(make_wheel(d / "y", "alpha", "1.0").read_bytes())
    other_name = d / "beta-1.0-py3-none-any.whl"
    other_name.write_bytes(make_wheel(d / "z", "gamma", "1.0").read_bytes())
    no_meta = d / "empty-1.0-py3-none-any.whl"
    with zipfile.ZipFile(no_meta, "w") as zf:
        zf.writestr("empty.py", "")
    return {"notzip": notzip, "badname": badname, "mismatch": mismatch, "other_name": other_name, "no_meta": no_meta}


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("missing", "no such file"),
        ("notzip", "is not a zip file"),
        ("badname", "not a valid wheel file name"),
        ("mismatch", "METADATA says Version: 1.0, the file name says 2.0"),
        ("other_name", "METADATA says Name: gamma"),
        ("no_meta", "0 .dist-info/METADATA"),
    ],
)
def test_wheel_add_rejects_bad_wheels(cli: PrivpkgCLI, tmp_path: Path, privpkg_home: Path, case: str, match: str) -> None:
    good = make_wheel(tmp_path / "good", "keep", "1.0")
    assert cli("wheel", "add", str(good)).returncode == 0
    bad = _bad_wheels(tmp_path / "bad")
    path = str(tmp_path / "nope-1.0-py3-none-any.whl") if case == "missing" else str(bad[case])
    cli.fails(2, "wheel", "add", path, match=match)
    names = sorted(p.name for p in (privpkg_home / "workspaces/default/wheels").iterdir())
    assert names == ["keep-1.0-py3-none-any.whl", "keep-1.0-py3-none-any.whl.sha256"]


@pytest.mark.parametrize(
    ("args", "code", "match"),
    [
        # A path names its file, as for `wheel url`: nothing outside the workspace is reachable.
        (["wheel", "remove", "../evil-1.0-py3-none-any.whl"], 1, "no wheel evil-1.0-py3-none-any.whl in workspace 'default'"),
        (["wheel", "remove", "privpkg://default/wheels/../x.whl"], 2, "expected privpkg://WORKSPACE/wheels/FILE.whl"),
        (["wheel", "remove", "..-1.0-py3-none-any.whl"], 2, "no path separators"),
        (["wheel", "add", "x.whl", "--workspace", "nope"], 1, "no workspace named 'nope'"),
        (["resolve", "privpkg://nope/wheels/a-1.0-py3-none-any.whl"], 1, "no workspace named 'nope'"),
        (["resolve", "privpkg://default/wheels/a-1.0-py3-none-any.whl"], 1, "no wheel a-1.0-py3-none-any.whl in workspace 'default'"),
        (["resolve", "privpkg://default/other/a-1.0-py3-none-any.whl"], 2, "expected privpkg://WORKSPACE/wheels/FILE.whl"),
        (["resolve", "privpkg://default/wheels/..%2F..%2Fetc-1.0-py3-none-any.whl"], 2, "expected privpkg://WORKSPACE/wheels/FILE.whl"),
        (["resolve", "ftp://h/x.whl"], 2, "cannot sign ftp URLs"),
        (["resolve", "https://example.com/x.whl"], 2, "not in any registered Azure workspace"),
        (["resolve", "privpkg://default/wheels/a-1.0-py3-none-any.whl", "--ttl", "0"], 2, "--ttl must be between 1 and 604800"),
        (["resolve", "privpkg://default/wheels/a-1.0-py3-none-any.whl", "--ttl", "604801"], 2, "--ttl must be between"),
        (["resolve", "privpkg://default/wheels/a-1.0-py3-none-any.whl", "--ttl", "soon"], 2, "not a number of seconds"),
        (["resolve"], 2, "give a URL"),
        (["workspace", "add", "x"], 2, "give exactly one of"),
        (["workspace", "add", "x", "--local", "/tmp", "--s3", "s3://bkt"], 2, "give exactly one of"),
        (["workspace", "add", "bad/name", "--local", "/tmp"], 2, "invalid workspace name"),
        (["workspace", "add", "default", "--local", "/tmp"], 2, "'default' is built in"),
        (["workspace", "add", "az", "--azure", "http://blob.example.com/c"], 2, "must be https://"),
        (["workspace", "add", "az", "--azure", "https://acct.blob.core.windows.net/"], 2, "is not a container URL"),
        (["workspace", "add", "az", "--azure", "https://k@acct.blob.core.windows.net/c"], 2, "user:password"),
        (["workspace", "add", "s", "--s3", "https://bucket/x"], 2, "expected s3://BUCKET"),
        (["workspace", "add", "s", "--local", "/tmp", "--endpoint-url", "http://x"], 2, "--endpoint-url goes with --s3"),
        # Before: rewritten to s3://bad_bucket, accepted, accepted, accepted, echoed as ://bucket.
        (["workspace", "add", "s", "--s3", "s3://Bad_Bucket"], 2, "invalid S3 bucket name 'Bad_Bucket': S3 allows 3-63 lowercase"),
        (["workspace", "add", "s", "--local", "/tmp", "--region", "eu-west-1"], 2, "--region goes with --s3"),
        (["workspace", "add", "s", "--local", "/etc/passwd"], 2, "/etc/passwd is not a folder; --local names the folder"),
        (["workspace", "add", "s", "--s3", "s3://okbucket", "--endpoint-url", "http://minio.example.com"], 2,
         ("refusing plain-http endpoint http://minio.example.com/: requests and their signatures would travel unencrypted; "
          "use https, or pass --allow-http")),
        (["workspace", "add", "s", "--s3", "bucket"], 2, "expected scheme://host/...): bucket"),
        # `localhost.` goes to DNS, not to the hosts file: not loopback.
        (["workspace", "add", "s", "--s3", "s3://okbucket", "--endpoint-url", "http://localhost.:9000"], 2, "refusing plain-http endpoint"),
        (["workspace", "show", "nope"], 1, "no workspace named 'nope'"),
        (["workspace", "remove", "nope"], 1, "no workspace named 'nope'"),
    ],
)
def test_bad_input_one_line(cli: PrivpkgCLI, args: list[str], code: int, match: str) -> None:
    cli.fails(code, *args, match=match)


def test_wheel_remove_takes_what_wheel_list_prints(cli: PrivpkgCLI, tmp_path: Path) -> None:
    """`wheel remove` used to refuse the privpkg:// URL `wheel list` prints and a path
    (`invalid wheel file name ...: no path separators or '..'`)."""
    cli.ok("workspace", "add", "team", "--local", str(tmp_path / "ws"))
    a, b = (make_wheel(tmp_path / "dist", n, "1.0") for n in ("ra", "rb"))
    url_a = cli.ok("wheel", "add", a, "-w", "team").strip()
    cli.ok("wheel", "add", b, "-w", "team")
    assert url_a in cli.ok("wheel", "list", "-w", "team")
    cli.fails(2, "wheel", "remove", url_a, "-w", "default",
              match=f"privpkg: error: {url_a} is in workspace 'team', not 'default'; drop --workspace or make them agree")
    # A malformed URL (no `//`) is not taken for a path into the default workspace.
    cli.ok("wheel", "add", a)
    cli.fails(2, "wheel", "remove", f"privpkg:team/wheels/{a.name}", match="is not a privpkg://WORKSPACE/wheels/FILE URL")
    assert a.name in cli.ok("wheel", "list")
    assert cli.ok("wheel", "remove", url_a).startswith(f"removed {a.name} from workspace 'team'; its name stays reserved")
    assert cli.ok("wheel", "remove", b, "-w", "team").startswith(f"removed {b.name} from workspace 'team'")
    assert cli.ok("wheel", "list", "-w", "team").startswith("no wheels in workspace 'team'")


def test_plain_http_endpoint_with_consent(cli: PrivpkgCLI) -> None:
    """The same rule as a connection's endpoint: --allow-http is the consent; loopback needs none."""
    cli.ok("workspace", "add", "minio", "--s3", "s3://okbucket", "--endpoint-url", "http://minio.example.com", "--allow-http")
    cli.ok("workspace", "add", "local-minio", "--s3", "s3://okbucket", "--endpoint-url", "http://127.0.0.1:9000")


def test_wheel_add_several_files(cli: PrivpkgCLI, tmp_path: Path, privpkg_home: Path) -> None:
    """Every file is validated before anything is uploaded; then one line per file, going on
    past a failure, and a last line naming the ones that failed (exit non-zero)."""
    a, b, c = (make_wheel(tmp_path / "d", n, "1.0") for n in ("pa", "pb", "pc"))
    bad = _bad_wheels(tmp_path / "bad")["notzip"]
    wheels_dir = privpkg_home / "workspaces/default/wheels"

    res = cli("wheel", "add", a, bad, b)
    assert res.returncode == 2 and res.stdout == "", res
    assert res.stderr.splitlines() == [
        f"privpkg: error: {bad.name} is not a zip file, so not a wheel",  # the file named once
        f"privpkg: error: nothing was uploaded: 1 of 3 files failed validation: {bad}",
    ]
    assert not wheels_dir.exists() or list(wheels_dir.iterdir()) == []
    twice = make_wheel(tmp_path / "again", "pa", "1.0")
    res = cli("wheel", "add", a, twice)
    assert res.returncode == 2 and f"{a.name} is given twice ({a} and {twice})" in res.stderr, res.stderr

    urls = cli.ok("wheel", "add", a, b).splitlines()
    assert urls == [f"privpkg://default/wheels/{w.name}" for w in (a, b)]
    res = cli("wheel", "add", a, c, b)
    assert res.returncode == 1, res  # conflicts with the workspace: 1, as a reserved name is
    assert res.stdout.splitlines() == [f"privpkg://default/wheels/{c.name}"]
    lines = res.stderr.splitlines()
    assert len(lines) == 3 and all(ln.startswith("privpkg: error: ") for ln in lines), lines
    assert lines[0].startswith(f"privpkg: error: {a.name} is already in ") and "--exist-ok" in lines[0], lines
    assert lines[1].startswith(f"privpkg: error: {b.name} ") and lines[1].count(b.name) == 1, lines
    assert lines[2] == f"privpkg: error: not published: 2 of 3 wheels: {a.name}, {b.name}"
    assert cli.ok("wheel", "add", a, b, c, "--exist-ok").splitlines() == [f"privpkg://default/wheels/{w.name}" for w in (a, b, c)]


def test_unknown_workspace_suggests_and_never_invites_the_typo(cli: PrivpkgCLI, tmp_path: Path, privpkg_home: Path) -> None:
    cli.ok("workspace", "add", "team", "--local", str(tmp_path / "team"))
    wheel = make_wheel(tmp_path / "d", "pa", "1.0")
    for args in (["wheel", "add", wheel, "--workspace", "tema"], ["wheel", "list", "-w", "tema"],
                 ["resolve", f"privpkg://tema/wheels/{wheel.name}"], ["workspace", "show", "tema"]):
        line = cli.fails(1, *args, match="no workspace named 'tema'; did you mean 'team'? (see: privpkg workspace list)")
        assert "workspace add" not in line, line
    line = cli.fails(1, "workspace", "show", "defualt", match="did you mean 'default'?")
    line = cli.fails(1, "workspace", "show", "zzzz", match="no workspace named 'zzzz' (see: privpkg workspace list)")
    assert "did you mean" not in line and "workspace add" not in line, line
    cli.fails(1, "workspace", "remove", "tema", match=f"no workspace named 'tema' in {privpkg_home / 'workspaces.toml'}; did you mean 'team'?")


def test_workspace_definitions_user_and_project(cli: PrivpkgCLI, tmp_path: Path, privpkg_home: Path) -> None:
    res = cli("workspace", "add", "team", "--local", str(tmp_path / "user-store"))
    assert res.returncode == 0 and "added workspace 'team'" in res.stdout
    user_file = privpkg_home / "workspaces.toml"
    assert 'storage = "local"' in user_file.read_text()
    cli.fails(2, "workspace", "add", "team", "--local", str(tmp_path / "again"), match="already exists")

    # A project file, found from a subdirectory, adds workspaces but cannot take over the user's.
    sub = cli.cwd / "src" / "deep"
    sub.mkdir(parents=True)
    assert cli("workspace", "add", "team", "--s3", "s3://team-bucket/wheels", "--endpoint-url", "http://127.0.0.1:9", "--project").returncode == 0
    assert cli("workspace", "add", "ml", "--s3", "s3://ml-bucket/wheels", "--project").returncode == 0
    proj = cli.cwd / "privpkg.toml"
    assert proj.exists() and "s3://team-bucket/wheels" in proj.read_text()
    assert "secret" not in proj.read_text().lower()
    res = cli("workspace", "show", "team", "--json", cwd=sub)
    shown = json.loads(res.stdout)
    assert shown["storage"] == "local" and shown["source"] == "user"
    assert f"ignoring workspace 'team' in {proj}" in res.stderr and str(user_file) in res.stderr
    shown = json.loads(cli("workspace", "show", "ml", "--json", cwd=sub).stdout)
    assert shown["storage"] == "s3" and shown["source"] == f"project {proj}"
    listed = {w["name"]: w for w in json.loads(cli("workspace", "list", "--json", cwd=sub).stdout)}
    assert set(listed) == {"default", "team", "ml"}

    assert cli("workspace", "remove", "team", "--project").returncode == 0
    assert "team" not in proj.read_text()
    assert cli("workspace", "remove", "team").returncode == 0
    assert json.loads(cli("workspace", "show", "default", "--json").stdout)["storage"] == "local"


def test_broken_project_file_is_one_line(cli: PrivpkgCLI) -> None:
    """A broken definition is one warning line naming the file; the other workspaces keep
    working and using the broken one is that line as the error."""
    (cli.cwd / "privpkg.toml").write_text("[workspaces.x]\nstorage = 'local'\npath = \n")
    res = cli("workspace", "list")
    assert res.returncode == 0 and "default" in res.stdout
    assert res.stderr.startswith("privpkg: warning: ") and "privpkg.toml: invalid TOML" in res.stderr and len(res.stderr.splitlines()) == 1
    cli.fails(1, "workspace", "show", "x", match="privpkg.toml: invalid TOML")
    (cli.cwd / "privpkg.toml").write_text('[workspaces.x]\nstorage = "ftp"\nurl = "ftp://x"\n')
    cli.fails(1, "workspace", "show", "x", match="workspaces.x.storage: unknown storage 'ftp'")


def test_python_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from privpkg.wheels import add_private_wheel
    from privpkg.workspace import get_workspace

    monkeypatch.setenv(envvars.HOME, str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    wheel = make_wheel(tmp_path / "d", "api-pkg", "0.3")
    ws = get_workspace()
    url = add_private_wheel(ws, wheel)
    assert url == "privpkg://default/wheels/api_pkg-0.3-py3-none-any.whl"
    assert add_private_wheel(ws, wheel, exist_ok=True) == url


def test_interrupted_local_upload_leaves_nothing_visible(cli: PrivpkgCLI, tmp_path: Path, privpkg_home: Path) -> None:
    """A half-written temp file (what a killed upload leaves) is never listed or resolvable,
    and the next upload of that name succeeds."""
    wheel = make_wheel(tmp_path / "d", "half", "1.0")
    wheels_dir = privpkg_home / "workspaces/default/wheels"
    wheels_dir.mkdir(parents=True)
    (wheels_dir / f".{wheel.name}.12345.part").write_bytes(wheel.read_bytes()[:100])
    assert json.loads(cli("wheel", "list", "--json").stdout) == []
    cli.fails(1, "resolve", f"privpkg://default/wheels/{wheel.name}", match="no wheel")
    assert cli("wheel", "add", str(wheel)).returncode == 0


def test_resolve_requirements_writes_private_constraints(cli: PrivpkgCLI, tmp_path: Path) -> None:
    a = make_wheel(tmp_path / "d", "pa", "1.0")
    b = make_wheel(tmp_path / "d", "pb", "2.0")
    ua = cli("wheel", "add", str(a)).stdout.strip()
    ub = cli("wheel", "add", str(b)).stdout.strip()
    (cli.cwd / "base.txt").write_text(f"pb @ {ub} ; python_version >= '3'\n")
    (cli.cwd / "req.txt").write_text(f"# comment\n-r base.txt\npa[extra] @ {ua}  # trailing\nrequests>=2\n-c base.txt\n")
    res = cli("resolve", "-r", "req.txt", "-o", "out/constraints.txt")
    assert res.returncode == 0 and "wrote 2 signed constraints" in res.stderr
    out = cli.cwd / "out/constraints.txt"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    lines = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    assert len(lines) == 2, lines
    assert lines[0].startswith("pb @ file://") and lines[0].endswith('; python_version >= "3"')
    assert lines[1].startswith("pa @ file://") and "[extra]" not in lines[1]
    cli.fails(2, "resolve", "-r", "req.txt", match="use: privpkg resolve -r requirements.txt --wheelhouse DIR -o pinned.txt (or -o constraints.txt alone)")
    cli.fails(2, "resolve", "-r", "missing.txt", "-o", "c.txt", match="cannot read")


def test_missing_cloud_extra_names_the_install(venv_privpkg, make_env: Callable[..., dict[str, str]], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """venv_privpkg has privpkg without extras: using an Azure or S3 workspace says exactly what
    to pip install, in one line."""
    env = make_env()
    privpkg = str(venv_privpkg.bin / "privpkg")
    for extra, args in (("azure", ["--azure", "https://acct.blob.core.windows.net/wheels"]), ("s3", ["--s3", "s3://bucket"])):
        assert subprocess.run([privpkg, "workspace", "add", f"w-{extra}", *args], env=env, capture_output=True, text=True, check=False).returncode == 0
        conn = ["--category", "AzureBlob", "--target", "https://acct.blob.core.windows.net/wheels"] if extra == "azure" else \
            ["--category", "S3", "--target", "s3://bucket", "--username", "AKID"]
        assert subprocess.run([privpkg, "connection", "set", f"c-{extra}", *conn], input="k3y", env=env, capture_output=True, text=True, check=False).returncode == 0
        res = subprocess.run([privpkg, "resolve", f"privpkg://w-{extra}/wheels/a-1.0-py3-none-any.whl"], env=env, capture_output=True, text=True, check=False)
        assert res.returncode == 1, res.stderr
        assert res.stderr.strip() == f"privpkg: error: this workspace needs {'azure-storage-blob' if extra == 'azure' else 'boto3'}: pip install 'privpkg[{extra}]'"


def test_a_legacy_bucket_name_already_defined_keeps_working(cli: PrivpkgCLI, privpkg_home: Path) -> None:
    """``workspace add`` checks a bucket name against today's S3 rules, but a workspace defined
    before (legacy us-east-1 buckets may hold ``_``; older privpkg stored it) still loads."""
    (privpkg_home / "workspaces.toml").write_text('[workspaces.old]\nstorage = "s3"\nurl = "s3://my_bucket/wheels"\n')
    res = cli("workspace", "list")
    assert res.returncode == 0 and "old" in res.stdout and "s3://my_bucket/wheels" in res.stdout, res.stdout + res.stderr
    assert "warning" not in res.stderr, res.stderr
