"""``privpkg resolve -r REQS --wheelhouse DIR -o OUT`` (issue 8, item 5): uv cannot fetch
``privpkg://``, so the private wheels are downloaded into DIR, checked against the sha256 their
workspace recorded, and OUT pins them as ``name @ file:///DIR/F.whl#sha256=...``.

With local, Azurite and moto workspaces: real uv and real pip (26.3 and 23.1, no privpkg in
their environments) install OUT beside an unpinned requirement from the loopback PAT feed (the
``keyring`` CLI with privpkg's backend on PATH, ``__token__@`` in the index URL, as the README's
"With uv" shows); no signature or storage secret appears in any output, in ``direct_url.json``
(which shows the file URL) or in uv's and pip's caches. A wheel corrupted in DIR after OUT was
written is refused by both (the ``#sha256=`` fragment is checked), and a stored object that no
longer matches its recorded sha256 is refused by privpkg, never left in DIR.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from support.builds import Venv
from support.cli import Outputs, PrivpkgCLI, signature_values
from support.env import Result
from support.feeds import FEED_A_PATH, FeedServer
from support.storage import Azurite, MotoServer
from test_pip_shim import versions_in

from privpkg.testing import make_wheel

WS = "team"
S3_PREFIX = "team/pkgs"
SPECS = (("alpha-pkg", "1.0"), ("beta-pkg", "2.0"), ("gamma-pkg", "3.0"))


class Workspace:
    """A workspace of one kind holding the SPECS wheels: their stable URLs (gamma's as a plain
    blob URL for Azure), the stored files, and how to swap a stored object behind its back."""

    def __init__(self, cli: PrivpkgCLI, tmp_path: Path, kind: str, request: pytest.FixtureRequest | None = None) -> None:
        self.kind = kind
        self.wheels = {name: make_wheel(tmp_path / "dist", name, version) for name, version in SPECS}
        if kind == "local":
            self.folder = tmp_path / "ws"
            cli.ok("workspace", "add", WS, "--local", self.folder)
        elif kind == "azure":
            assert request is not None
            self.azurite: Azurite = request.getfixturevalue("azurite")
            cli.outputs.add_secret(self.azurite.key)
            self.container_url = self.azurite.create_container()
            cli.ok("workspace", "add", WS, "--azure", self.container_url)
            cli.ok("connection", "set", "team-blob", "--category", "AzureBlob", "--target", self.container_url, stdin=self.azurite.key + "\n")
        else:
            assert request is not None
            self.moto: MotoServer = request.getfixturevalue("moto_server")
            cli.outputs.add_secret(self.moto.secret_key)
            self.bucket = self.moto.create_bucket()
            cli.ok("workspace", "add", WS, "--s3", f"s3://{self.bucket}/{S3_PREFIX}", "--endpoint-url", self.moto.endpoint)
            cli.ok("connection", "set", "s3conn", "--category", "S3", "--target", f"s3://{self.bucket}", "--username", self.moto.access_key,
                   "--endpoint", self.moto.endpoint, stdin=self.moto.secret_key + "\n")
        self.urls = {}
        for name, wheel in self.wheels.items():
            self.urls[name] = cli.ok("wheel", "add", wheel, "--workspace", WS).strip().splitlines()[-1]
        if kind == "azure":
            self.urls["gamma-pkg"] = f"{self.container_url}/wheels/{self.wheels['gamma-pkg'].name}"
        self.sha = {name: hashlib.sha256(w.read_bytes()).hexdigest() for name, w in self.wheels.items()}

    def secrets(self) -> list[str]:
        return [self.azurite.key] if self.kind == "azure" else [self.moto.secret_key] if self.kind == "s3" else []

    def swap(self, name: str, data: bytes) -> None:
        """Replace the stored object of ``name`` with ``data``, keeping its recorded sha256 (an
        attacker with write access, or a storage fault)."""
        key = f"wheels/{self.wheels[name].name}"
        if self.kind == "local":
            stored = self.folder / key
            os.chmod(stored, 0o600)
            stored.write_bytes(data)
        elif self.kind == "azure":
            container = self.azurite.container(self.container_url.rsplit("/", 1)[1])
            container.upload_blob(key, data, overwrite=True, metadata={"sha256": self.sha[name]})
        else:
            self.moto.client().put_object(Bucket=self.bucket, Key=f"{S3_PREFIX}/{key}", Body=data, Metadata={"sha256": self.sha[name]})


def _pinned(out: Path) -> list[str]:
    return [ln for ln in out.read_text().splitlines() if not ln.startswith("# written by privpkg")]


def _grep_tree(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
            data = p.read_bytes()
            hits += [f"{p}: {n!r}" for n in needles if n in data]
    return hits


@pytest.mark.parametrize("kind", ["local", "azure", "s3"])
def test_wheelhouse_installs_with_uv_and_pip_beside_a_feed(
    kind: str, request: pytest.FixtureRequest, make_env: Callable[..., dict[str, str]], feed: FeedServer, venv_privpkg: Venv,
    venv_bare_pip: Venv, venv_pip231: Venv, uv_bin: Path, store_connection: Callable[..., object], tmp_path: Path,
) -> None:
    env = make_env(path_prefix=[venv_privpkg.bin])  # the keyring CLI with privpkg's backend, as uv and pip's subprocess mode run it
    cli = PrivpkgCLI(env, Outputs(*feed.secrets))
    ws = Workspace(cli, tmp_path, kind, request)
    store_connection("orgA", feed.base + "/orgA/", feed.secret_a)
    index = feed.index_a.replace("http://", "http://__token__@", 1)
    req = tmp_path / "proj" / "requirements.txt"
    (req.parent / "nested").mkdir(parents=True)
    top = [
        "# the feed first, then the private wheels",
        f"--index-url {index}",
        "pkg-a",
        f"alpha-pkg @ {ws.urls['alpha-pkg']}   # ours",
        "-r nested/more.txt",
        "",
    ]
    req.write_text("\n".join(top))
    (req.parent / "nested" / "more.txt").write_text(
        f'beta-pkg @ {ws.urls["beta-pkg"]} ; python_version >= "3"\n'
        f"gamma-pkg @ {ws.urls['gamma-pkg']}#sha256={ws.sha['gamma-pkg']}\n"
    )
    house, out = tmp_path / "house", tmp_path / "out" / "pinned.txt"

    res = cli("resolve", "-r", req, "--wheelhouse", house, "-o", out)
    assert res.returncode == 0, res.stderr
    assert res.stderr == f"pinned 3 wheels to {house} (3 downloaded, 0 already there, sha256 checked) in {out}\n"
    assert signature_values(res.stdout + res.stderr) == set() and res.stdout == ""
    files = {name: house.resolve() / w.name for name, w in ws.wheels.items()}
    for name, path in files.items():
        assert path.read_bytes() == ws.wheels[name].read_bytes()
    assert sorted(p.name for p in house.iterdir()) == sorted(p.name for p in files.values()), "no temp file left behind"
    nested = out.with_name("pinned.txt-1-more.txt")
    uri = {name: f"{p.as_uri()}#sha256={ws.sha[name]}" for name, p in files.items()}
    assert _pinned(out) == [*top[:3], f"alpha-pkg @ {uri['alpha-pkg']}", f"-r {nested}"]
    assert _pinned(nested) == [f'beta-pkg @ {uri["beta-pkg"]} ; python_version >= "3"', f"gamma-pkg @ {uri['gamma-pkg']}"]

    # uv and pip 26.3 without privpkg, each with its own cache, as the README shows them.
    work = tmp_path / "work"
    work.mkdir()
    uv_cache, pip_cache = tmp_path / "uv-cache", tmp_path / "pip-cache"

    def uv(target: Path) -> Result:
        return cli.tool([uv_bin, "pip", "install", "--no-config", "--keyring-provider", "subprocess", "--cache-dir", uv_cache,
                         "--python", venv_bare_pip.python, "--target", target, "-r", out], cwd=work)

    def pip(target: Path, venv: Venv = venv_bare_pip) -> Result:
        return cli.tool([*venv.pip, "install", "--keyring-provider", "subprocess", "--cache-dir", pip_cache,
                         "--target", target, "-r", out], cwd=work)

    def pip231(target: Path) -> Result:
        return pip(target, venv_pip231)

    installers: tuple[tuple[str, Callable[[Path], Result]], ...] = (("uv", uv), ("pip", pip), ("pip231", pip231))
    for label, install in installers:
        start = len(feed.log())
        target = tmp_path / f"t-{label}"
        r = install(target)
        assert r.returncode == 0, r.describe()
        assert versions_in(venv_bare_pip, target, env, "alpha_pkg", "beta_pkg", "gamma_pkg", "pkg_a") == ["1.0", "2.0", "3.0", "1.0"]
        assert [e for e in feed.log()[start:] if e.auth and e.status == 200 and e.path.startswith(FEED_A_PATH + "pkg-a/")], feed.log_text()
        # direct_url.json shows the wheelhouse file, never a signed URL: uv keeps the fragment in
        # the URL (archive_info empty), pip moves it to archive_info's hashes.
        direct = json.loads((target / "alpha_pkg-1.0.dist-info" / "direct_url.json").read_text())
        if label == "uv":
            assert direct == {"url": uri["alpha-pkg"], "archive_info": {}}, direct
        else:
            assert direct["url"] == files["alpha-pkg"].as_uri() and direct["archive_info"]["hashes"] == {"sha256": ws.sha["alpha-pkg"]}, direct
        assert not _grep_tree(target, [b"sig=", b"X-Amz-Signature", *(s.encode() for s in ws.secrets())])
    # uv caches the wheelhouse wheels and the feed's; pip, given no cache headers by the feed
    # and only local files besides, creates no cache at all here (grepped if it did).
    assert any(uv_cache.rglob("*.whl")) or any(uv_cache.rglob("*.dist-info")), "uv cached nothing: the grep below would prove nothing"
    for cache in (uv_cache, pip_cache):
        assert not _grep_tree(cache, [b"sig=", b"X-Amz-Signature", *(s.encode() for s in [*ws.secrets(), *feed.secrets])])

    # A wheel corrupted in DIR after OUT was written: both refuse it (the #sha256= fragment).
    evil = make_wheel(tmp_path / "evil", "alpha-pkg", "1.0", body='VERSION = "evil"\n')
    files["alpha-pkg"].write_bytes(evil.read_bytes())
    for label, install in installers:
        target = tmp_path / f"evil-{label}"
        r = install(target)
        assert r.returncode != 0 and ws.sha["alpha-pkg"] in r.output and "hash" in r.output.lower(), r.describe()
        assert not list(target.glob("alpha_pkg*")), r.describe()

    # Run again: the corrupted file is fetched anew, the good ones are kept.
    res = cli("resolve", "-r", req, "--wheelhouse", house, "-o", out)
    assert res.returncode == 0 and "(1 downloaded, 2 already there" in res.stderr, res.stderr
    assert files["alpha-pkg"].read_bytes() == ws.wheels["alpha-pkg"].read_bytes()

    # The stored object no longer matches what was recorded at publish time: refused, not kept.
    ws.swap("beta-pkg", evil.read_bytes())
    files["beta-pkg"].unlink()
    before = out.read_bytes()
    mismatch = f"{ws.wheels['beta-pkg'].name} from workspace 'team' does not match the sha256 recorded when it was published"
    err = cli.fails(1, "resolve", "-r", req, "--wheelhouse", house, "-o", out,
                    match=[f"{req.parent / 'nested/more.txt'}, line 1: ", mismatch, f"not kept in {house.resolve()}"])
    assert ws.sha["beta-pkg"][:16] in err
    assert not files["beta-pkg"].exists() and sorted(p.name for p in house.iterdir()) == sorted([files["alpha-pkg"].name, files["gamma-pkg"].name])
    assert out.read_bytes() == before, "OUT is written only when every wheel was fetched"
    assert cli.outputs.check() == 0  # no signed URL anywhere, not even in privpkg's own output


def test_errors_are_one_line(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    cli = privpkg_cli
    ws = Workspace(cli, tmp_path, "local")
    req, house, out = tmp_path / "requirements.txt", tmp_path / "house", tmp_path / "pinned.txt"

    def fails(code: int, line: str, *match: str, where: Path = house) -> None:
        req.write_text(f"pkg-a\n{line}\n")
        cli.fails(code, "resolve", "-r", req, "--wheelhouse", where, "-o", out, match=list(match))
        assert not out.exists()

    fails(1, "x @ privpkg://tema/wheels/x-1.0-py3-none-any.whl", f"{req}, line 2: ", "no workspace named 'tema'; did you mean 'team'?")
    fails(1, f"x @ privpkg://{WS}/wheels/x-1.0-py3-none-any.whl", f"{req}, line 2: ", f"no wheel x-1.0-py3-none-any.whl in workspace '{WS}'")
    fails(1, f"alpha-pkg @ {ws.urls['alpha-pkg']}#sha256={'0' * 64}", f"{req}, line 2: ", "the line pins sha256 0000000000000000...",
          f"recorded {ws.sha['alpha-pkg'][:16]}...")
    fails(2, f"alpha-pkg @ {ws.urls['alpha-pkg']}#md5=abc", "only a #sha256= fragment can be checked")
    # DIR not usable: a file in its place (root ignores permission bits, so the test uses a file).
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    fails(1, f"alpha-pkg @ {ws.urls['alpha-pkg']}", f"cannot use {blocker} as the wheelhouse: it exists and is not a directory", where=blocker)
    fails(1, f"alpha-pkg @ {ws.urls['alpha-pkg']}", f"cannot use {blocker / 'sub'} as the wheelhouse: Not a directory", where=blocker / "sub")
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        fails(1, f"alpha-pkg @ {ws.urls['alpha-pkg']}", f"cannot use {locked} as the wheelhouse: Permission denied", where=locked)
    # Two workspaces, two different wheels under one file name: refused before either is replaced.
    cli.ok("workspace", "add", "other", "--local", tmp_path / "ws2")
    evil = make_wheel(tmp_path / "evil", "alpha-pkg", "1.0", body='VERSION = "other"\n')
    cli.ok("wheel", "add", evil, "--workspace", "other")
    fails(2, f"alpha-pkg @ {ws.urls['alpha-pkg']}\nalpha-pkg @ privpkg://other/wheels/{evil.name}", f"{req}, line 3: ",
          f"{evil.name} is also named by {ws.urls['alpha-pkg']} with other contents; a wheelhouse holds one file per name")
    assert (house / evil.name).read_bytes() == ws.wheels["alpha-pkg"].read_bytes()
    # A removed wheel says so.
    cli.ok("wheel", "remove", ws.wheels["alpha-pkg"].name, "--workspace", WS)
    fails(1, f"alpha-pkg @ {ws.urls['alpha-pkg']}", f"wheel {ws.wheels['alpha-pkg'].name} was removed from workspace '{WS}'")
    # Usage: --wheelhouse needs -r and -o; OUT may not be REQS itself.
    cli.fails(2, "resolve", "--wheelhouse", house, "-o", out, match="use: privpkg resolve -r requirements.txt --wheelhouse DIR -o pinned.txt")
    cli.fails(2, "resolve", "-r", req, "--wheelhouse", house, "-o", req, match="is the requirements file itself")

    # No privpkg line at all is fine: OUT is a copy (a pipeline can run this unconditionally).
    req.write_text("# nothing private\npkg-a>=1\n--index-url https://example.invalid/simple/\n")
    res = cli("resolve", "-r", req, "--wheelhouse", house, "-o", out)
    assert res.returncode == 0 and res.stderr == f"note: {req} names no privpkg:// wheel; {out} is a copy of it\n", res.stderr
    assert _pinned(out) == req.read_text().splitlines()
    assert cli.outputs.check() == 0


def test_constraints_files_and_find_links_keep_their_meaning(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    """A nested file is pinned in a copy beside OUT (a -c file stays a constraints file); files
    that need no pin and relative --find-links folders are named by absolute path, since OUT may
    live elsewhere; a diamond of includes is written once."""
    cli = privpkg_cli
    ws = Workspace(cli, tmp_path, "local")
    proj = tmp_path / "proj"
    (proj / "links").mkdir(parents=True)
    (proj / "plain.txt").write_text("pkg-b\n")
    (proj / "cons.txt").write_text(f"gamma-pkg @ {ws.urls['gamma-pkg']}\n-r common.txt\n")
    (proj / "common.txt").write_text(f"beta-pkg @ {ws.urls['beta-pkg']}\n")
    req = proj / "requirements.txt"
    req.write_text("--find-links links\n-r plain.txt\n-c cons.txt\n-r common.txt\n")
    house, out = tmp_path / "house", tmp_path / "out" / "pinned.txt"
    cli.ok("resolve", "-r", req, "--wheelhouse", house, "-o", out)
    cons, common = out.with_name("pinned.txt-1-cons.txt"), out.with_name("pinned.txt-2-common.txt")
    assert _pinned(out) == [f"--find-links {proj / 'links'}", f"-r {proj / 'plain.txt'}", f"-c {cons}", f"-r {common}"]
    sha = ws.sha
    assert _pinned(cons) == [f"gamma-pkg @ {(house.resolve() / ws.wheels['gamma-pkg'].name).as_uri()}#sha256={sha['gamma-pkg']}", f"-r {common}"]
    assert _pinned(common) == [f"beta-pkg @ {(house.resolve() / ws.wheels['beta-pkg'].name).as_uri()}#sha256={sha['beta-pkg']}"]
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([out.name, cons.name, common.name])
    assert not re.search(r"sig=|X-Amz", "".join(p.read_text() for p in out.parent.iterdir()))
