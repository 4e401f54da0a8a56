"""The Dockerfile lint (privpkg.environments.dockerlint): each refusal rule on a small
Dockerfile, what it must let through (the Dockerfiles privpkg writes, a secret path handed over
as a variable, COPY --from), and that no finding repeats the value it found."""

from __future__ import annotations

from pathlib import Path

import pytest

from privpkg.environments import docker, dockerlint
from privpkg.environments.pylock import Artifact
from privpkg.errors import UsageError

PAT = "pat-Zq8vX2mN5rT1wY7u"
SHA = "a" * 64


Art = Artifact  # the lock's own artifact type, as pylock.select returns it


ARTS = [Art("alpha-pkg", "1.0", "privpkg://team/wheels/alpha_pkg-1.0-py3-none-any.whl", "alpha_pkg-1.0-py3-none-any.whl", SHA, "wheel"),
        Art("pkg-a", "1.0", "https://feed.example/org/_packaging/f/pypi/simple/pkg-a/pkg_a-1.0-py3-none-any.whl",
            "pkg_a-1.0-py3-none-any.whl", "b" * 64, "wheel")]


def findings(text: str, **kw: object) -> list[str]:
    found = dockerlint.check(text, secrets={PAT: "connection 'feed''s secret"}, **kw)  # type: ignore[arg-type]
    for f in found:
        assert PAT not in f and "hunter2" not in f and "0123456789abcdef0123" not in f, f
    return found


@pytest.mark.parametrize("secret_mount", [False, True])
def test_privpkgs_own_dockerfiles_pass(secret_mount: bool) -> None:
    text, reqs = docker.render(ARTS, base_image="python@sha256:" + "c" * 64, labels={docker.LABEL_KEY: "privpkg_k"}, secret_mount=secret_mount)
    assert findings(text) == []
    assert ("--mount=type=secret" in text) is secret_mount and ("--only-binary :all:" in text) is secret_mount
    assert f"NETRC={docker.SECRET_TARGET} " in text if secret_mount else "NETRC" not in text
    assert ("pkg-a @ https://" in reqs) is secret_mount and "alpha-pkg==1.0 --hash=sha256:" + SHA in reqs


@pytest.mark.parametrize("line, what", [
    ("ARG GITHUB_TOKEN", "ARG GITHUB_TOKEN looks like a secret"),
    ("ARG PIP_PASSWORD=x", "ARG PIP_PASSWORD looks like a secret"),
    ("ENV FEED_PAT=abc", "ENV FEED_PAT looks like a secret"),
    ("ENV A=1 AZURE_STORAGE_SAS=2", "ENV AZURE_STORAGE_SAS looks like a secret"),
    ("ENV AWS_SECRET_ACCESS_KEY=x", "ENV AWS_SECRET_ACCESS_KEY looks like a secret"),
    (f"ENV OPTIONS=--x={PAT}", "ENV holds connection 'feed''s secret"),
    (f"ARG MODE={PAT}", "ARG holds connection 'feed''s secret"),
    ("RUN pip install --index-url https://u:hunter2@feed.example/simple pkg", "RUN holds a password in user info"),
    ("RUN pip install --index-url https://hunter2@feed.example/simple pkg", "RUN holds user info in a URL"),
    ("ADD https://acct.blob.core.windows.net/c/w.whl?sv=2022-11-02&sp=r&sig=abc%2Bdef /w.whl", "ADD holds a signature (sig=)"),
    ("RUN curl -o w.whl 'https://b.s3.amazonaws.com/w.whl?X-Amz-Signature=0123456789abcdef0123'", "RUN holds an X-Amz-Signature"),
    ("LABEL src=https://u:hunter2@git.example/repo", "LABEL holds a password in user info"),
    ("RUN curl https://h.example/f?X-Amz-Credential=AKIA123456/x", "RUN holds a signature (X-Amz-Credential)"),
    ("COPY .netrc /root/.netrc", "COPY .netrc copies a credential file"),
    ("COPY --chown=1 conf/.pypirc /root/", ".pypirc copies a credential file"),
    ("RUN --mount=type=secret,id=netrc cat /run/secrets/netrc > /root/.netrc", "RUN uses a secret file's path"),
    ("RUN --mount=type=secret,id=n,target=/etc/n cp /etc/n /opt/n", "RUN uses a secret file's path"),
    ("RUN --mount=type=secret,id=n,target=/etc/n NETRC=/etc/n sh -c 'cat /etc/n'", "RUN uses a secret file's path"),
    ("RUN cp /run/secrets/feed /feed", "RUN uses a secret file's path"),
    ("RUN <<EOF\ncat /run/secrets/n >> /etc/pip.conf\nEOF", "RUN uses a secret file's path"),
])
def test_each_rule_refuses(line: str, what: str) -> None:
    found = findings(f"FROM python@sha256:{'c' * 64}\n{line}\n")
    assert len(found) == 1 and what in found[0] and found[0].startswith("line 2: "), found


@pytest.mark.parametrize("line", [
    "ARG PYTHON_VERSION=3.12",
    "ENV PATH=/opt/env/bin:$PATH PIP_NO_INDEX=1",
    "RUN --mount=type=secret,id=netrc NETRC=/run/secrets/netrc pip install --only-binary :all: pkg",
    "RUN --mount=type=secret,id=n,target=/etc/n PIP_CONFIG_FILE=/etc/n pip install pkg",
    "COPY --from=builder /root/.netrc /tmp/ignored",  # another stage's file, not the context's
    "RUN python -c 'def f(sig=None): pass'",
    "COPY wheels/ /w/",
])
def test_allowed(line: str, tmp_path: Path) -> None:
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "a.whl").write_bytes(b"PK\x03\x04 not a secret")
    assert findings(f"FROM python@sha256:{'c' * 64}\n{line}\n", context=tmp_path) == []


def test_copied_context_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "conf" / "deep").mkdir(parents=True)
    (tmp_path / "conf" / "deep" / "pip.conf").write_text(f"[global]\nindex-url = https://__token__:{PAT}@feed.example/simple\n")
    (tmp_path / "urls.txt").write_text("https://acct.blob.core.windows.net/c/w.whl?se=1&sp=r&sig=abcdefghijklmnop\n")
    (tmp_path / "token").write_text(PAT)
    found = findings("FROM scratch\nCOPY conf /etc/\nCOPY *.txt token /x/\n", context=tmp_path)
    assert [f.split(", which holds ")[0] for f in found] == ["line 2: COPY copies conf/deep/pip.conf", "line 3: COPY copies urls.txt",
                                                            "line 3: COPY copies token"], found
    assert "connection 'feed''s secret" in found[0] and "signature" in found[1]


@pytest.mark.parametrize("line, named", [
    # `**` inside a name: a ValueError (a traceback) from pathlib before Python 3.13, `*` from
    # 3.13 on; BuildKit may let it cross directories, so both readings are scanned.
    ("COPY a**b /x/", ["a/x/b", "abcb"]),
    # Nested hits (sub, sub/deep, and from 3.13 on their files too): each file found once.
    ("COPY sub/** /x/", ["sub/deep/c.txt"]),
    ("COPY ** /x/", ["a/x/b", "abcb", "sub/deep/c.txt"]),
])
def test_double_star_sources_read_each_file_once(line: str, named: list[str], tmp_path: Path) -> None:
    for rel in ("a/x/b", "abcb", "sub/deep/c.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(PAT)
    found = findings(f"FROM scratch\n{line}\n", context=tmp_path)
    assert found == [f"line 2: COPY copies {n}, which holds connection 'feed''s secret" for n in named], found


def test_unparsable_is_one_line() -> None:
    with pytest.raises(UsageError) as err:
        dockerlint.check("FROM scratch\nRUN <<EOF\nnever closed\n")
    assert "\n" not in str(err.value) and str(err.value).startswith("cannot parse the Dockerfile")
