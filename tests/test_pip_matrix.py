"""pip as people have it (issue 8, item 1): the README's commands (``privpkg setup pip``, then a
plain ``pip install --index-url FEED pkg``) with pip 23.1, 23.2.1 (what ``python3 -m venv`` gives on
Python 3.11), 26.1 and the newest, run from privpkg's own venv and from another venv, with and
without ``--no-input``, against the loopback feed that demands a PAT.

Each case owns its venvs (``owned_venv``: ``setup pip`` writes the privpkg venv's ``pip.conf``),
built once per run; HOME/XDG point at the test's temp dir and pip reads its real config files
(``PIP_CONFIG_FILE`` unset), so what ``setup pip`` wrote is what pip uses. privpkg's venv ``bin/``
is on PATH, as after ``source .venv/bin/activate`` or ``pipx install``.

Expected, and measured: every install works, except pip < 26.2 from another venv with no
username in the index URL. That pip never runs the keyring CLI (it calls ``keyring get URL USER``
only with a USER), so privpkg is never asked: it prompts "User for 127.0.0.1:PORT" (EOFError with
stdin closed) or, with ``--no-input``, ends in "No matching distribution found". There
``privpkg doctor --pip PIP --url URL`` prints the one line that says what to change, and the
same install with ``__token__@`` in the URL works.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.version import Version
from support.builds import Venv
from support.env import Result, assert_no_secret, run
from support.feeds import FEED_A_PATH, FeedServer

WHEEL_A = "pkg_a-1.0-py3-none-any.whl"
PIPS = {"23.1": "pip==23.1", "23.2.1": "pip==23.2.1", "26.1": "pip==26.1", "newest": "pip>=26.2"}
#: The user's own pip config before setup: comments, CRLF line endings, no final newline; undo
#: must give these bytes back.
USER_CONF = b"# my settings\r\n[global]\r\ntimeout = 30\r\n\r\n[install]\r\nno-compile = true"


def _with_token(url: str) -> str:
    return url.replace("http://", "http://__token__@", 1)


@pytest.mark.parametrize("where", ["privpkg-venv", "other-venv"])
@pytest.mark.parametrize("pip", list(PIPS))
def test_readme_commands_with_pip_as_people_have_it(
    pip: str, where: str, owned_venv: Callable[..., Venv], feed: FeedServer, make_env: Callable[..., dict[str, str]],
    store_connection: Callable[..., object], test_home: Path, tmp_path: Path,
) -> None:
    home = owned_venv(f"matrix-{pip}-{where}", PIPS[pip])  # where privpkg is installed
    user = owned_venv(f"matrix-{pip}-bare", PIPS[pip], privpkg=False) if where == "other-venv" else home
    env = make_env(path_prefix=[home.bin])
    del env["PIP_CONFIG_FILE"]  # pip reads the user's and the venv's config files, as for a person
    outputs: list[Result] = []

    def sh(*cmd: str | Path) -> Result:
        res = run(cmd, env)
        outputs.append(res)
        return res

    version = Version(user.pip_version(env))
    assert (str(version) == pip) if pip != "newest" else version >= Version("26.2")
    assert user.can_import("privpkg", env) == (where == "privpkg-venv")
    user_conf = test_home / "home/.config/pip/pip.conf"
    if where == "privpkg-venv":
        user_conf.parent.mkdir(parents=True)
        user_conf.write_bytes(USER_CONF)
    env_conf = home.path / "pip.conf"
    assert not env_conf.exists(), f"{env_conf} left over from an earlier run of this case"

    store_connection("feed", feed.base + "/orgA/", feed.secret_a)
    setup = sh(home.bin / "privpkg", "setup", "pip")
    assert setup.returncode == 0, setup.describe()
    assert f"set keyring-provider = subprocess in {user_conf}" in setup.output, setup.describe()
    assert f"set keyring-provider = import in {env_conf}" in setup.output, setup.describe()
    if where == "privpkg-venv":  # the line goes into [global], in the file's own line endings
        assert user_conf.read_bytes() == USER_CONF.replace(b"[global]\r\n", b"[global]\r\nkeyring-provider = subprocess\r\n")

    def install(index: str, *flags: str) -> tuple[Result, Path]:
        target = tmp_path / f"target-{len(outputs)}"
        res = sh(user.bin / "pip", "install", "--no-cache-dir", "--target", target, "--index-url", index, *flags, "pkg-a")
        return res, target

    cannot = where == "other-venv" and version < Version("26.2")
    for flags in ([], ["--no-input"]):
        seen = len(feed.log())
        res, target = install(feed.index_a, *flags)
        if not cannot:
            assert res.returncode == 0 and (target / "pkg_a.py").is_file(), res.describe()
            feed.assert_challenged_then_authorized(FEED_A_PATH, WHEEL_A)
            continue
        # pip never asked keyring: it prompts (EOF on closed stdin) or, with --no-input, gives up.
        assert res.returncode != 0 and not (target / "pkg_a.py").exists(), res.describe()
        assert ("No matching distribution found" if flags else "User for 127.0.0.1") in res.output, res.describe()
        assert not any(e.auth for e in feed.log()[seen:]), feed.log_text()
        res, target = install(_with_token(feed.index_a), *flags)
        assert res.returncode == 0 and (target / "pkg_a.py").is_file(), res.describe()

    doctor = sh(home.bin / "privpkg", "doctor", "--pip", user.bin / "pip", "--url", feed.index_a)
    lines = doctor.output.splitlines()
    if cannot:
        fix = (f"FAIL  pip {version} asks the keyring CLI only for index URLs with a username, and {feed.index_a} has none: "
               f"use {_with_token(feed.index_a)} or upgrade pip ({user.python} -m pip install -U 'pip>=26.2')")
        assert doctor.returncode == 1 and fix in lines, doctor.describe()
        assert [ln for ln in lines if ln.startswith("FAIL")] == [fix, "FAIL  some checks failed"], doctor.describe()
        ok = sh(home.bin / "privpkg", "doctor", "--pip", user.bin / "pip", "--url", _with_token(feed.index_a))
        assert ok.returncode == 0 and ok.output.endswith("ok    all checks passed\n"), ok.describe()
    else:
        assert doctor.returncode == 0 and lines[-1] == "ok    all checks passed", doctor.describe()
        how = "pip imports keyring" if where == "privpkg-venv" else f"pip runs the keyring CLI {home.bin / 'keyring'}"
        assert any(ln.startswith(f"ok    {how}") for ln in lines), doctor.describe()

    undo = sh(home.bin / "privpkg", "setup", "pip", "--undo")
    assert undo.returncode == 0, undo.describe()
    assert not env_conf.exists(), "setup created the venv's pip.conf, so undo removes it"
    if where == "privpkg-venv":
        assert user_conf.read_bytes() == USER_CONF
    else:
        assert not user_conf.exists()
    for res in outputs:
        assert_no_secret(res.output, *feed.secrets)
