"""The Dockerfile and context writer (privpkg.environments.docker) on fake artifacts: what it
refuses before fetching anything, the secret-mount netrc and its limits, and the cache key (the
artifacts, never the environment's name). The real builds are in tests/test_env_docker.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from privpkg import envvars
from privpkg.environments import docker
from privpkg.environments.pylock import Artifact
from privpkg.errors import UsageError

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
    assert docker.netrc_text(arts) == f"machine feed.example login __token__ password {PAT_A}\n"


@pytest.mark.parametrize("second, match", [
    (art("b", "https://feed.example/other/"), "both serve host feed.example"),
    (art("c", "https://bearer.example/"), "a netrc cannot"),
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
])
def test_refused_before_anything_is_fetched(arts: list[Art], kw: dict[str, object], match: str, tmp_path: Path) -> None:
    kw = {"base_image": "python:3.12-slim", **kw}
    with pytest.raises(UsageError, match=match):
        docker.dockerfile(arts, tmp_path / "ctx", **kw)  # type: ignore[arg-type]
    assert not (tmp_path / "ctx").exists()


def test_sdists_are_fine_when_fetched_on_the_host() -> None:
    text, reqs = docker.render([art("a", kind="sdist")], base_image="b", key="k")
    assert "--only-binary" not in text and reqs == f"a==1.0 --hash=sha256:{'a' * 64}\n"


def test_the_cache_key_is_the_artifacts_not_their_order_or_name() -> None:
    one, two = art("a"), art("b", sha="b" * 64)
    assert docker.cache_key([one, two]) == docker.cache_key([two, one]) != docker.cache_key([one, two._replace(sha256="c" * 64)])
    assert docker.cache_key([one]).startswith("privpkg_")


def test_a_folder_of_the_users_own_is_never_overwritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker, "fetch_into", lambda arts, dest, timeout: [])  # a fake fetcher: nothing to download here
    mine = tmp_path / "mine"
    (mine / "wheels").mkdir(parents=True)
    (mine / "Dockerfile").write_text("FROM scratch\n")
    (mine / "wheels" / "kept.whl").write_text("x")
    with pytest.raises(UsageError, match="holds no Dockerfile written by privpkg"):
        docker.dockerfile([art("a")], mine, base_image="b")
    assert (mine / "Dockerfile").read_text() == "FROM scratch\n" and (mine / "wheels" / "kept.whl").exists()
    ours = tmp_path / "ours"
    docker.dockerfile([art("a")], ours, base_image="b")
    (ours / "wheels" / "stale.whl").write_text("x")
    docker.dockerfile([art("b")], ours, base_image="b")  # ours again: rewritten, the stale file pruned
    assert "b==1.0" in (ours / "requirements.txt").read_text() and not (ours / "wheels" / "stale.whl").exists()
    begun = tmp_path / "begun"  # a run that failed while fetching left wheels/ only: a retry may use it, pruning nothing
    (begun / "wheels").mkdir(parents=True)
    (begun / "wheels" / "kept.whl").write_text("x")
    docker.dockerfile([art("a")], begun, base_image="b")
    assert (begun / "Dockerfile").exists() and (begun / "wheels" / "kept.whl").exists()



def test_the_help_names_the_secret_id() -> None:
    """The CLI spells the id itself (building its parser imports nothing); it must stay this one."""
    import inspect

    from privpkg.cli import env_docker

    assert f"'{docker.SECRET_ID}'" in inspect.getsource(env_docker.add_parsers)
