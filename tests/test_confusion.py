"""Dependency confusion with real pip and uv, and ``privpkg doctor``'s warnings about it.

The risk itself, measured: a private feed (the loopback PAT feed, pkg-a 1.0) named with
``--extra-index-url`` beside a "public" index (a local PEP 503 index holding pkg-a 9.0): pip
installs the public 9.0, and so it does with the feed as ``--index-url`` and the public index as an
extra one; with the feed as the only index it installs 1.0; uv, with the feed as
an extra index (uv tries extra indexes first) and its default ``first-index`` strategy, installs
1.0. Then ``doctor`` names every place that uses a private feed as an extra index: pip's config
file and ``$PIP_EXTRA_INDEX_URL``, a requirements file (found in the current directory) and the
file it includes, an environment.yml's ``pip:`` section; one line each, no secret.
"""

from __future__ import annotations

import sys
from pathlib import Path

from support.builds import Venv
from support.cli import assert_one_error_line
from support.feeds import FeedServer

from privpkg.testing import make_wheel


def _public_index(root: Path) -> str:
    """A PEP 503 index on disk with pkg-a 9.0: what PyPI would serve if someone took the name."""
    wheel = make_wheel(root / "files", "pkg-a", "9.0")
    page = root / "simple" / "pkg-a" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text(f'<!DOCTYPE html><html><body><a href="{wheel.as_uri()}">{wheel.name}</a></body></html>\n')
    return (root / "simple").as_uri() + "/"


def _installed(target: Path) -> str:
    return (target / "pkg_a.py").read_text()


def test_extra_index_url_lets_a_public_package_win(
    feed: FeedServer, venv_bare_pip: Venv, venv_privpkg: Venv, uv_bin: Path, make_env, checked_cli, tmp_path: Path
) -> None:
    cli = checked_cli(*feed.secrets)
    cli.ok("connection", "set", "orgA", "--target", f"{feed.base}/orgA", stdin=feed.secret_a)
    public = _public_index(tmp_path / "public")
    env = make_env(path_prefix=[venv_privpkg.bin], PIP_KEYRING_PROVIDER="subprocess", UV_KEYRING_PROVIDER="subprocess")
    pip = [*venv_bare_pip.pip, "install", "--no-cache-dir", "--retries", "0"]

    r = cli.tool([*pip, "--target", tmp_path / "extra", "--index-url", public, "--extra-index-url", feed.index_a, "pkg-a"], env=env)
    assert r.returncode == 0 and _installed(tmp_path / "extra") == 'VERSION = "9.0"\n', r.describe()  # the public one won
    r = cli.tool([*pip, "--target", tmp_path / "reverse", "--index-url", feed.index_a, "--extra-index-url", public, "pkg-a"], env=env)
    assert r.returncode == 0 and _installed(tmp_path / "reverse") == 'VERSION = "9.0"\n', r.describe()  # the same the other way round
    r = cli.tool([*pip, "--target", tmp_path / "index", "--index-url", feed.index_a, "pkg-a"], env=env)
    assert r.returncode == 0 and _installed(tmp_path / "index") == 'VERSION = "1.0"\n', r.describe()
    with_user = feed.index_a.replace("http://", "http://__token__@", 1)  # uv asks keyring only with a username
    r = cli.tool([uv_bin, "pip", "install", "--no-cache", "--python", venv_bare_pip.python, "--target", tmp_path / "uv",
                  "--index-url", public, "--extra-index-url", with_user, "pkg-a"], env=env)
    assert r.returncode == 0 and _installed(tmp_path / "uv") == 'VERSION = "1.0"\n', r.describe()

    # doctor names each place that does what the first install did.
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    with_pat = feed.index_a.replace("http://", f"http://__token__:{feed.secret_a}@", 1)
    (work / "requirements.txt").write_text(f"--index-url {public}\n--extra-index-url {with_pat}\n-r sub/more.txt\npkg-a\n")
    (work / "sub" / "more.txt").write_text(f"--extra-index-url={feed.base}/orgA/other/simple/\n--extra-index-url {feed.base}/orgB/simple/\n")
    (work / "environment.yml").write_text(f"name: e\ndependencies:\n  - pip\n  - pip:\n    - --extra-index-url {feed.index_a}\n    - pkg-a\n")
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nindex-url = {public}\nextra-index-url = {feed.index_a}\n")
    out = cli.ok("doctor", "--pip", sys.executable, cwd=work, env={"PIP_CONFIG_FILE": str(conf), "PIP_EXTRA_INDEX_URL": f"{feed.base}/orgA/env/"})
    warned = [line for line in out.splitlines() if "used as an extra index" in line]
    masked = feed.index_a.replace("http://", "http://***@", 1)
    assert [w.split(": private feed ")[0] for w in warned] == [
        f"warn  {conf} [global] extra-index-url",
        "warn  $PIP_EXTRA_INDEX_URL",
        "warn  requirements.txt, line 2",
        "warn  sub/more.txt, line 1",
        "warn  environment.yml, line 5 (pip:)",
    ], out
    assert f"private feed {masked} (connection 'orgA')" in warned[2] and f"safe: --index-url {masked} with the feed's upstream" in warned[2]
    assert f"safe: index-url = {feed.index_a} " in warned[0] and f"safe: PIP_INDEX_URL={feed.base}/orgA/env/ " in warned[1]
    # Named files instead of the current directory's; a public extra index beside the private index.
    (work / "reverse.txt").write_text(f"--index-url {feed.index_a}\n--extra-index-url {public}\n")
    out = cli.ok("doctor", "--pip", sys.executable, "--json", "-r", work / "sub" / "more.txt", "-r", work / "reverse.txt", "--env-file", work / "environment.yml")
    assert out.count('"dependency-confusion"') == 3
    # -f/--file, conda env create's spelling, names the same file.
    short = cli.ok("doctor", "--pip", sys.executable, "--json", "-r", work / "reverse.txt", "-f", work / "environment.yml")
    assert short.count('"dependency-confusion"') == 2 and "environment.yml, line 5 (pip:)" in short, short
    assert f"reverse.txt, line 2: extra index {public} is searched beside the private feed {feed.index_a}" in out
    line = assert_one_error_line(cli("doctor", "-r", work / "missing.txt"), 2)
    assert "cannot read" in line and "missing.txt" in line
    # Found in the current directory, the same broken file is a warning; the other files are still read.
    (work / "requirements.txt").write_text("-r missing.txt\n")
    out = cli.ok("doctor", "--pip", sys.executable, cwd=work)
    assert "warn  extra-index-url check skipped: requirements.txt, line 1: cannot read missing.txt" in out, out
    assert "environment.yml, line 5 (pip:): private feed" in out
