"""The image's target (privpkg.environments.docker): the wheel tags and markers of a CPython
X.Y on a manylinux/musllinux platform, worked out without running it; what a base image's tag
says about them; how a lock is selected for it; and the image key built on it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.tags import sys_tags

from privpkg.environments import docker, pylock
from privpkg.environments.docker import ImageTarget
from privpkg.environments.pylock import Artifact
from privpkg.errors import UsageError

HOST = f"{sys.version_info.major}.{sys.version_info.minor}"
SHA = {name: f"{i:x}" * 64 for i, name in enumerate(["cp311", "cp312", "musl", "many", "old", "pure", "m311"], start=1)}


def test_the_hosts_own_target_gives_packagings_own_answer() -> None:
    """The tests run on CPython on Linux: the target made for this interpreter's version and this
    host's platform must be exactly what packaging (pip's code) says of the running interpreter,
    order included; the marker environment too, but for the kernel's release strings."""
    host = docker.host_platform()
    assert host is not None and sys.implementation.name == "cpython", "these tests run on CPython on Linux"
    full = ".".join(map(str, sys.version_info[:3]))
    target = docker.pylock_target(ImageTarget(full, host))
    assert list(target.tags) == [str(t) for t in sys_tags()]
    here = {k: str(v) for k, v in default_environment().items() if k not in ("platform_release", "platform_version")}
    assert {k: v for k, v in target.environment.items() if k in here} == here


def test_platform_tags() -> None:
    tags = docker.platform_tags("manylinux_2_36_x86_64")
    assert tags[:3] == ["linux_x86_64", "manylinux_2_36_x86_64", "manylinux_2_35_x86_64"]
    assert len(tags) == 1 + (36 - 5 + 1) + 3  # linux_, glibc 2.36 down to 2.5, the three legacy aliases
    assert tags[-2:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64"]
    assert tags.index("manylinux2014_x86_64") == tags.index("manylinux_2_17_x86_64") + 1
    assert docker.platform_tags("manylinux2014_aarch64") == ["linux_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"]
    assert docker.platform_tags("musllinux_1_2_x86_64") == ["linux_x86_64", "musllinux_1_2_x86_64", "musllinux_1_1_x86_64",
                                                            "musllinux_1_0_x86_64"]


@pytest.mark.parametrize("python, platform, match", [
    ("3", "manylinux_2_36_x86_64", "give the image's CPython version as X.Y"),
    ("2.7", "manylinux_2_36_x86_64", "give the image's CPython version as X.Y"),
    ("3.6", "manylinux_2_36_x86_64", "3.7 or newer"),
    ("3.12 ", "manylinux_2_36_x86_64", "give the image's CPython version"),
    ("3.12", "linux_x86_64", "give a manylinux or musllinux tag"),
    ("3.12", "win_amd64", "give a manylinux or musllinux tag"),
    ("3.12", "macosx_14_0_arm64", "give a manylinux or musllinux tag"),
    ("3.12", "manylinux_2_12_aarch64", "the oldest is 2.17"),
    ("3.12", "manylinux_3_1_x86_64", "no manylinux tag"),
    ("3.12", "manylinux1_aarch64", "has no aarch64 wheels"),
    ("3.12", "musllinux_2_0_x86_64", "musl versions are 1.x"),
])
def test_a_target_that_cannot_be_is_one_line(python: str, platform: str, match: str) -> None:
    with pytest.raises(UsageError, match=match) as err:
        docker.pylock_target(ImageTarget(python, platform))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("image, python, libc", [
    ("python:3.12-slim", "3.12", None),
    ("python:3.12", "3.12", None),
    ("python:3.11.9-slim-bookworm", "3.11.9", ("manylinux", 2, 36)),
    ("python:3.10-bullseye", "3.10", ("manylinux", 2, 31)),
    ("python:3.13-slim-trixie", "3.13", ("manylinux", 2, 41)),
    ("python:3.12-alpine3.20", "3.12", ("musllinux", 1, 2)),
    ("docker.io/library/python:3.9-alpine@sha256:" + "a" * 64, "3.9", ("musllinux", 1, 2)),
    ("library/python:3.13.0rc1-slim", "3.13", None),
    ("python:latest", None, None),
    ("python:3-slim", None, None),
    ("python:3.123", None, None),
    ("python:3.12.", None, None),
    ("python@sha256:" + "a" * 64, None, None),
    ("python", None, None),
    ("registry.example:5000/python", None, None),
    ("registry.example:5000/team/python:3.12", None, None),  # not the official image: its tag says nothing sure
    ("localhost/privpkg-test-base@sha256:" + "a" * 64, None, None),
    ("pythonista:3.12", None, None),
])
def test_what_a_base_image_tag_says(image: str, python: str | None, libc: tuple[str, int, int] | None) -> None:
    assert docker.image_python(image) == python
    assert docker.image_libc(image) == libc


def test_resolve_target_defaults_and_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    host = docker.host_platform()
    assert host is not None
    arch = host.split("_", 3)[3]
    assert docker.resolve_target("python:3.12-slim", None, None) == (
        ImageTarget("3.12", host), ["Python 3.12 from the base image's tag", f"{host}: this host's platform (give --platform for another)"])
    target, notes = docker.resolve_target("python:3.11-slim-bookworm", None, None)
    assert target == ImageTarget("3.11", f"manylinux_2_36_{arch}") and "the base image's libc" in notes[1]
    assert docker.resolve_target("python:3.12-alpine", None, None)[0].platform == f"musllinux_1_2_{arch}"
    target, notes = docker.resolve_target("localhost/base@sha256:" + "a" * 64, None, "manylinux_2_28_aarch64")
    assert target == ImageTarget(HOST, "manylinux_2_28_aarch64")
    assert notes == [(f"Python {HOST} is privpkg's own (the base image's is unknown): give --python X.Y if "
                      f"localhost/base@sha256:{'a' * 64} has another")]
    assert docker.resolve_target("localhost/base", "3.10.4", "musllinux_1_1_x86_64") == (ImageTarget("3.10.4", "musllinux_1_1_x86_64"), [])
    assert docker.resolve_target("python:3.12.4-slim", "3.12", None)[0].python == "3.12"
    with pytest.raises(UsageError, match="--python 3.11, but the base image python:3.12-slim has Python 3.12"):
        docker.resolve_target("python:3.12-slim", "3.11", None)
    with pytest.raises(UsageError, match="uses musl"):
        docker.resolve_target("python:3.12-alpine", None, "manylinux_2_17_x86_64")
    monkeypatch.setattr(docker, "host_platform", lambda: None)  # a macOS or Windows host: no Linux platform of its own
    with pytest.raises(UsageError, match="this host is not Linux: give the image's --platform"):
        docker.resolve_target("python:3.12-slim", None, None)
    assert docker.resolve_target("python:3.12-slim", None, "manylinux_2_17_x86_64")[0] == ImageTarget("3.12", "manylinux_2_17_x86_64")


def _lock(pure_tag: str = "py3-none-any") -> pylock.Lock:
    def wheel(name: str, tag: str, key: str) -> str:
        return (f'[[packages.wheels]]\nname = "{name}-1.0-{tag}.whl"\n'
                f'url = "https://feed.example/f/{name}-1.0-{tag}.whl"\nhashes = {{sha256 = "{SHA[key]}"}}\n')

    return pylock.load(
        'lock-version = "1.0"\ncreated-by = "tests"\n'
        '[[packages]]\nname = "native"\nversion = "1.0"\n'
        + wheel("native", "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64", "cp311")
        + wheel("native", "cp312-cp312-manylinux_2_28_x86_64", "cp312")
        + wheel("native", "cp312-cp312-musllinux_1_2_x86_64", "musl")
        + wheel("native", "cp312-cp312-manylinux_2_17_x86_64", "many")
        + wheel("native", "cp312-cp312-manylinux_2_5_i686", "old")
        + '[[packages]]\nname = "pure"\nversion = "1.0"\n' + wheel("pure", pure_tag, "pure")
        + '[[packages]]\nname = "backport"\nversion = "1.0"\nmarker = "python_version < \'3.12\'"\n'
        + wheel("backport", "py3-none-any", "m311")
    )


def _picked(target: ImageTarget) -> dict[str, str]:
    return {a.name: a.sha256 for a in _lock().select(docker.pylock_target(target))}


def test_the_lock_is_selected_for_the_image_not_for_privpkg() -> None:
    assert _picked(ImageTarget("3.11", "manylinux_2_36_x86_64")) == {"native": SHA["cp311"], "pure": SHA["pure"], "backport": SHA["m311"]}
    assert _picked(ImageTarget("3.12", "manylinux_2_36_x86_64")) == {"native": SHA["cp312"], "pure": SHA["pure"]}
    assert _picked(ImageTarget("3.12", "manylinux_2_27_x86_64"))["native"] == SHA["many"]  # 2_28 needs a newer glibc
    assert _picked(ImageTarget("3.12", "musllinux_1_2_x86_64"))["native"] == SHA["musl"]
    assert _picked(ImageTarget("3.12", "manylinux2010_i686"))["native"] == SHA["old"]


def test_a_lock_without_a_wheel_for_the_image_names_every_package() -> None:
    target = ImageTarget("3.10", "manylinux_2_36_aarch64")
    with pytest.raises(UsageError) as err:
        _lock().select(docker.pylock_target(target), what=f"the image ({target.describe()})")
    assert str(err.value) == ("no artifact of native 1.0 in the lock fits the image (CPython 3.10 on manylinux_2_36_aarch64) "
                              "(no wheel matches its tags and no sdist)")
    with pytest.raises(UsageError, match=r"^no artifact of native 1.0, pure 1.0 in the lock fits the image \(no wheel"):
        _lock("cp312-none-any").select(docker.pylock_target(ImageTarget("3.11", "musllinux_1_2_x86_64")), what="the image")


def _art(name: str, sha: str = "a" * 64) -> Artifact:
    return Artifact(name, "1.0", f"https://feed.example/{name}-1.0-py3-none-any.whl", f"{name}-1.0-py3-none-any.whl", sha, "wheel")


def test_the_image_key_is_what_the_image_installs() -> None:
    """The selected files and the image's Python X.Y and platform: not their order, not the
    patch release given, never the environment's name; and not the local build cache's key."""
    from privpkg.environments import cache

    one, two = _art("a"), _art("b", "b" * 64)
    t = ImageTarget("3.11", "manylinux_2_36_x86_64")
    key = docker.image_key([one, two], t)
    assert key.startswith("privpkg_") and len(key) == len("privpkg_") + 32
    assert key == docker.image_key([two, one], t) == docker.image_key([one, two], ImageTarget("3.11.4", t.platform))
    others = {docker.image_key([one], t), docker.image_key([one, two._replace(sha256="c" * 64)], t),
              docker.image_key([one, two], ImageTarget("3.12", t.platform)), docker.image_key([one, two], ImageTarget("3.11", "manylinux_2_28_x86_64"))}
    assert key not in others and len(others) == 4
    # Not the host's: the same key whatever interpreter and platform privpkg itself runs on (the
    # break it guards: the local cache's key, or the host's identity, mixed into the image's).
    import sysconfig

    host = cache.interpreter()
    with pytest.MonkeyPatch.context() as m:
        other = cache.Interpreter("pypy", "3.9.18 (other build)", "macosx-11.0-arm64", "pypy39-pp73", "/opt/pypy/bin/pypy3", "/opt/pypy/bin/pypy3")
        m.setattr(cache, "interpreter", lambda python=None: other)
        m.setattr(sys, "version", other.version)
        m.setattr(sysconfig, "get_platform", lambda: other.platform)
        assert docker.image_key([one, two], t) == key
        assert cache.key([one, two], cache.interpreter()) != cache.key([one, two], host)  # the patch does reach a host-keyed key


def test_the_cli_selects_for_the_image(tmp_path: Path) -> None:
    """env dockerfile's selection goes through the image's target (the break it guards: the
    running interpreter's tags)."""
    from privpkg.cli.env_docker import _select

    text = pylock.dump(_lock())
    picked = {a.name: a.sha256 for a in _select(text, ImageTarget("3.12", "musllinux_1_2_x86_64"))}
    assert picked == {"native": SHA["musl"], "pure": SHA["pure"]}
