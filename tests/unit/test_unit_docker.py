"""The Dockerfile and context writer (privpkg.environments.docker) on fake artifacts: what it
refuses before fetching anything, the secret-mount netrc (what it holds, its limits, and how
``write_netrc`` writes it), and the labels. The image's target and key are in
test_unit_docker_target.py; the real builds are in tests/test_env_docker.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from privpkg import envvars
from privpkg.environments import docker
from privpkg.environments.pylock import Artifact
from privpkg.errors import UsageError

T311 = docker.ImageTarget("3.11", "manylinux_2_36_x86_64")

PAT_A, PAT_B = "pat-a-Zq8vX2mN5rT1wY7u", "pat-b-Hh3kL9pQ2sW8eR4t"
FEED = "https://feed.example/org/_packaging/f/pypi/simple/"


Art = Artifact  # the lock's own artifact type, as pylock.select returns it


def art(name: str, url: str = FEED, kind: str = "wheel", sha: str = "a" * 64) -> Art:
    filename = f"{name.replace('-', '_')}-1.0-py3-none-any.whl" if kind == "wheel" else f"{name}-1.0.tar.gz"
    return Art(name, "1.0", url + filename, filename, sha, kind)


@pytest.fixture
def conns(isolated_privpkg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(envvars.CONNECTIONS, json.dumps([
        {"name": "feed-a", "target": "https://feed.example/org/", "secret": PAT_A},
        {"name": "feed-b", "target": "https://feed.example/other/", "secret": PAT_B},
        {"name": "bearer", "target": "https://bearer.example/", "secret": PAT_B, "auth_type": "Bearer", "category": "CondaChannel"},
    ]))


def test_netrc_has_one_line_per_host(conns: None) -> None:
    arts = [art("a"), art("b"), art("ours", "privpkg://team/wheels/"), art("public", "https://files.example/")]
    assert docker.netrc_text(arts) == (f"machine feed.example login __token__ password {PAT_A}\n", [("feed.example", "feed-a")])


def test_two_connections_with_one_credential_share_a_host(isolated_privpkg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only credentials a netrc cannot tell apart are refused: the same PAT under two targets is one line."""
    monkeypatch.setenv(envvars.CONNECTIONS, json.dumps([
        {"name": "feed-a", "target": "https://feed.example/org/", "secret": PAT_A},
        {"name": "feed-a2", "target": "https://feed.example/other/", "secret": PAT_A},
    ]))
    text, hosts = docker.netrc_text([art("a"), art("b", "https://feed.example/other/")])
    assert text == f"machine feed.example login __token__ password {PAT_A}\n" and hosts == [("feed.example", "feed-a")]


@pytest.mark.parametrize("second, match", [
    (art("b", "https://feed.example/other/"), "both serve host feed.example with different credentials"),
    (art("c", "https://bearer.example/"), "a netrc cannot"),
    (art("d", "http://feed.example/org/"), "https only"),  # the host-side fetch's URL rules apply
    (art("e", "https://feed.example/org/x/..%2F..%2Fother/"), "resolve elsewhere"),
])
def test_netrc_refuses_what_it_cannot_scope(conns: None, second: Art, match: str) -> None:
    with pytest.raises(UsageError) as err:
        docker.netrc_text([art("a"), second])
    assert match in str(err.value) and PAT_A not in str(err.value) and PAT_B not in str(err.value)


@pytest.mark.parametrize("arts, kw, match", [
    ([], {}, "selects no artifact"),
    ([art("a", sha="xyz")], {}, "no sha256"),
    ([art("a"), art("a", sha="b" * 64)], {}, "twice with different sha256"),
    ([Art("a;rm -rf /", "1", FEED + "a.whl", "a.whl", "a" * 64, "wheel")], {}, "cannot write safely"),
    ([art("a", kind="sdist")], {"secret_mount": True}, "wheels only"),
    ([art("a")], {"base_image": "python@sha256:abc"}, "a digest is written"),
    ([art("a")], {"base_image": "https://u:p@registry/img"}, "not an image reference"),
    ([art("a")], {"base_image": "img latest"}, "not an image reference"),
    ([art("a")], {"name": "a b"}, "cannot write label"),
])
def test_refused_before_anything_is_fetched(arts: list[Art], kw: dict[str, object], match: str, tmp_path: Path) -> None:
    kw = {"base_image": "python:3.12-slim", "target": T311, **kw}
    with pytest.raises(UsageError, match=match):
        docker.dockerfile(arts, tmp_path / "ctx", **kw)  # type: ignore[arg-type]
    assert not (tmp_path / "ctx").exists()


def test_sdists_are_fine_when_fetched_on_the_host() -> None:
    text, reqs = docker.render([art("a", kind="sdist")], base_image="b", labels={"k": "v"})
    assert "--only-binary" not in text and reqs == f"a==1.0 --hash=sha256:{'a' * 64}\n"


def test_the_labels_name_the_key_the_target_and_a_registered_version() -> None:
    key = docker.image_key([art("a")], T311)
    assert docker.image_labels(key, T311) == {docker.LABEL_KEY: key, docker.LABEL_PYTHON: "3.11", docker.LABEL_PLATFORM: T311.platform}
    named = docker.image_labels(key, T311, "train", "3")
    assert named[docker.LABEL_NAME] == "train" and named[docker.LABEL_VERSION] == "3"
    text, _ = docker.render([art("a")], base_image="b", labels=named)
    label = next(line for line in text.splitlines() if line.startswith("LABEL "))
    assert label == (f'LABEL {docker.LABEL_KEY}="{key}" {docker.LABEL_PYTHON}="3.11" {docker.LABEL_PLATFORM}="{T311.platform}" '
                     f'{docker.LABEL_NAME}="train" {docker.LABEL_VERSION}="3"')


def test_a_folder_of_the_users_own_is_never_overwritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker, "fetch_into", lambda arts, dest, timeout: [])  # a fake fetcher: nothing to download here
    mine = tmp_path / "mine"
    (mine / "wheels").mkdir(parents=True)
    (mine / "Dockerfile").write_text("FROM scratch\n")
    (mine / "wheels" / "kept.whl").write_text("x")
    with pytest.raises(UsageError, match="holds no Dockerfile written by privpkg"):
        docker.dockerfile([art("a")], mine, base_image="b", target=T311)
    assert (mine / "Dockerfile").read_text() == "FROM scratch\n" and (mine / "wheels" / "kept.whl").exists()
    ours = tmp_path / "ours"
    docker.dockerfile([art("a")], ours, base_image="b", target=T311)
    (ours / "wheels" / "stale.whl").write_text("x")
    docker.dockerfile([art("b")], ours, base_image="b", target=T311)  # ours again: rewritten, the stale file pruned
    assert "b==1.0" in (ours / "requirements.txt").read_text() and not (ours / "wheels" / "stale.whl").exists()
    begun = tmp_path / "begun"  # a run that failed while fetching left wheels/ only: a retry may use it, pruning nothing
    (begun / "wheels").mkdir(parents=True)
    (begun / "wheels" / "kept.whl").write_text("x")
    docker.dockerfile([art("a")], begun, base_image="b", target=T311)
    assert (begun / "Dockerfile").exists() and (begun / "wheels" / "kept.whl").exists()



def test_the_help_names_the_secret_id() -> None:
    """The CLI spells the id itself (building its parser imports nothing); it must stay this one."""
    import inspect

    from privpkg.cli import env_docker

    assert f"'{docker.SECRET_ID}'" in inspect.getsource(env_docker.add_parsers)


def _secret_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arts: list[Art]) -> Path:
    monkeypatch.setattr(docker, "fetch_into", lambda arts, dest, timeout: [])  # a fake fetcher: nothing to download here
    ctx = tmp_path / "ctx"
    docker.dockerfile(arts, ctx, base_image="b", target=T311, secret_mount=True)
    return ctx


def test_write_netrc_makes_a_new_private_file_for_the_contexts_downloads(conns: None, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import stat

    ctx = _secret_context(tmp_path, monkeypatch, [art("a"), art("ours", "privpkg://team/wheels/"), art("public", "https://files.example/")])
    dest = tmp_path / "netrc"
    assert docker.write_netrc(ctx, dest) == [("feed.example", "feed-a")]
    assert dest.read_text() == f"machine feed.example login __token__ password {PAT_A}\n"
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert PAT_A not in "".join(p.read_text(errors="replace") for p in ctx.rglob("*") if p.is_file())

    with pytest.raises(UsageError, match="exists"):  # never replaced: a second build writes its own file
        docker.write_netrc(ctx, dest)
    link = tmp_path / "planted"
    victim = tmp_path / "victim"
    victim.write_text("kept\n")
    link.symlink_to(victim)
    with pytest.raises(UsageError, match="exists"):  # never written through a symlink
        docker.write_netrc(ctx, link)
    assert victim.read_text() == "kept\n"
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(UsageError, match="exists"):
        docker.write_netrc(ctx, dangling)
    assert not (tmp_path / "nowhere").exists()
    for inside in (ctx / "netrc", ctx / "wheels" / "netrc"):
        with pytest.raises(UsageError, match="inside the build context"):
            docker.write_netrc(ctx, inside)
        assert not inside.exists()


def test_write_netrc_reads_only_a_secret_mount_context_of_its_own(conns: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker, "fetch_into", lambda arts, dest, timeout: [])
    plain = tmp_path / "plain"
    docker.dockerfile([art("a")], plain, base_image="b", target=T311)
    with pytest.raises(UsageError, match="written without --secret-mount"):
        docker.write_netrc(plain, tmp_path / "n1")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(UsageError, match="holds no Dockerfile written by privpkg"):
        docker.write_netrc(mine, tmp_path / "n2")
    ctx = _secret_context(tmp_path, monkeypatch, [art("a")])
    reqs = ctx / docker.REQUIREMENTS
    good = reqs.read_text()
    reqs.write_text(good + "-r /root/.netrc\n")  # a line render never writes: named by number, never echoed
    with pytest.raises(UsageError, match="line 2 is not one privpkg env dockerfile writes") as err:
        docker.write_netrc(ctx, tmp_path / "n3")
    assert "/root" not in str(err.value)
    reqs.unlink()
    secret = tmp_path / "secret.txt"
    secret.write_text(f"machine x login y password {PAT_B}\n")
    reqs.symlink_to(secret)  # a planted symlink is not followed, so its target is never echoed
    with pytest.raises(UsageError, match="cannot read") as err:
        docker.write_netrc(ctx, tmp_path / "n3")
    assert PAT_B not in str(err.value)
    reqs.unlink()
    reqs.write_text(f"evil @ https://evil.example/x.whl --hash=sha256:{'a' * 64}\n")  # no connection answers it
    with pytest.raises(UsageError, match="no connection answers"):
        docker.write_netrc(ctx, tmp_path / "n4")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("n")], "a netrc was written"


@pytest.mark.parametrize("secret", ["two words machine evil.example", 'a"quote', "a#hash", "back\\slash"])
def test_a_secret_a_netrc_cannot_hold_is_refused(secret: str, isolated_privpkg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """netrc tokens are split on whitespace (a space would add a `machine` of the secret's
    choosing); quotes, '#' and backslashes are read specially by some parsers. Control
    characters never get this far (the connection sources refuse them)."""
    monkeypatch.setenv(envvars.CONNECTIONS, json.dumps([{"name": "feed-a", "target": "https://feed.example/org/", "secret": secret}]))
    with pytest.raises(UsageError, match="which a netrc cannot hold") as err:
        docker.netrc_text([art("a")])
    assert secret not in str(err.value) and "evil" not in str(err.value)
