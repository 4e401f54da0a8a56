"""The README's "Use it" section, run as written.

Every ``sh`` block between "## Use it" and "## Reference" is run line by line in a fresh
``python -m venv`` (the pip it bundles, as a new user gets it), with one fixed substitution table
(:data:`SUBSTITUTIONS`): the checkout's wheel for ``privpkg``, the loopback feed that demands a PAT
for the Azure DevOps URLs, Azurite for the blob container, a built wheel for ``dist/mylib...``.
Nothing else is changed: if a README command stops working, or the README gains a command the
table cannot place, this test fails.

The harness adds only what a reader's machine already has: ``$PAT`` and ``$ACCOUNT_KEY`` in the
environment, the PAT typed where the README says to paste it (on stdin for ``keyring set`` and
``auth login``, which read it there when stdin is not a terminal; every other command gets an
empty stdin), and ``pip uninstall`` of the feed's package before each install, so every
install asks the feed again instead of finding it already installed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support.builds import Venv, check_ok
from support.cli import signature_values
from support.env import REPO, assert_no_secret, clean_env, run
from support.feeds import FEED_A_PATH, FeedServer
from support.storage import Azurite

from privpkg.testing import make_wheel

README = REPO / "README.md"
FEED_PACKAGE = "pkg-a"  # what the loopback feed at FEED_A_PATH serves


def use_it_blocks() -> list[str]:
    text = README.read_text()
    # The Environments section, between the two, has its own runner (tests/test_env_registry.py).
    section = text.split("\n## Use it\n", 1)[1].split("\n## Environments\n", 1)[0].split("\n## Reference\n", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, re.DOTALL)


def commands(block: str) -> list[str]:
    """The block's commands: comment lines and trailing comments (the README aligns them after two
    or more spaces) dropped, backslash continuations joined."""
    out: list[str] = []
    pending = ""
    for raw in block.splitlines():
        line = pending + raw
        pending = ""
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1] + " "
            continue
        line = re.sub(r"\s{2,}#.*$", "", line).strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def substitutions(feed: FeedServer, container_url: str, wheel: Path) -> list[tuple[str, str | Callable[[re.Match[str]], str]]]:
    """The fixed table: README text (regex) -> what it stands for on this machine."""
    org_a = FEED_A_PATH.split("/_packaging/")[0]  # /orgA
    feed_a = FEED_A_PATH.removesuffix("pypi/simple/")  # /orgA/_packaging/feedA/

    def feed_url(m: re.Match[str]) -> str:
        user, rest = m.group("user") or "", m.group("rest") or ""
        path = feed_a + rest if m.group("feed") else org_a + "/" + rest
        return f"http://{user}{feed.netloc}{path}"

    return [
        (r"\bpip install privpkg\b", f"pip install {wheel}"),
        (r"\bpip install \"privpkg\[(?P<x>[a-z0-9,]+)\]\"", lambda m: f'pip install "privpkg[{m.group("x")}] @ {wheel.as_uri()}"'),
        (r"(?:https://)?(?P<user>__token__@)?pkgs\.dev\.azure\.com/myorg/(?P<feed>_packaging/feed/)?(?P<rest>[\w./-]*)", feed_url),
        (r"https://acct\.blob\.core\.windows\.net/wheels", container_url),
        (r"\bmypkg\b", FEED_PACKAGE),
    ]


def asks_secret(line: str) -> bool:
    """The commands that read a secret from stdin when it is not a terminal (and are not given one
    through a pipe on the line): only these get the PAT on stdin, the others an empty stdin."""
    return "|" not in line and re.search(r"\b(keyring set|auth login)\b", line) is not None


def substitute(cmd: str, table: list[tuple[str, str | Callable[[re.Match[str]], str]]]) -> str:
    for pattern, repl in table:
        cmd = re.sub(pattern, repl if callable(repl) else repl.replace("\\", "\\\\"), cmd)
    return cmd


def test_readme_use_it_sections_parse() -> None:
    """The table covers every placeholder the section uses (a new one needs a new row)."""
    blocks = use_it_blocks()
    assert len(blocks) >= 4, blocks
    text = "\n".join(blocks)
    for placeholder in ("pip install privpkg", "keyring set", "privpkg setup pip", "pkgs.dev.azure.com/myorg", "privpkg wheel add"):
        assert placeholder in text, placeholder
    leftovers = {"acct.blob", "pkgs.dev.azure.com"}
    fake = FeedServer("http://127.0.0.1:1", 1, "a", "b", Path("/nonexistent"), None)  # type: ignore[arg-type]
    table = substitutions(fake, "http://127.0.0.1:2/devstoreaccount1/c", Path("/w/privpkg-0-py3-none-any.whl"))
    for block in blocks:
        for cmd in commands(block):
            done = substitute(cmd, table)
            assert not any(s in done for s in leftovers), (cmd, done)


@pytest.mark.integration
def test_readme_use_it_as_written(
    tmp_path: Path, feed: FeedServer, azurite: Azurite, privpkg_wheel: Path, uv_bin: Path, pytestconfig: pytest.Config,
) -> None:
    home = tmp_path / "user"
    work = tmp_path / "project"
    work.mkdir()
    make_wheel(work / "dist", "mylib", "1.0")
    container = azurite.create_container()
    # A fresh venv the way the README's reader makes one: its bundled pip (23.2.1 on Python 3.11).
    venv = Venv(tmp_path / "venv")
    base = clean_env(home)
    check_ok(run([sys.executable, "-m", "venv", venv.path], base), "python -m venv")
    env = clean_env(home, path_prefix=[venv.bin, uv_bin.parent], PAT=feed.secret_a, ACCOUNT_KEY=azurite.key)
    del env["PIP_CONFIG_FILE"]  # the README's `setup pip` writes the user's pip config: pip must read it
    env["VIRTUAL_ENV"] = str(venv.path)  # an activated venv, as the reader has
    # getattr: -p no:cacheprovider leaves no `cache` attribute at all.
    cache_plugin = getattr(pytestconfig, "cache", None)
    cache = Path(cache_plugin.mkdir("privpkg-readme-pip-cache")) if cache_plugin else tmp_path / "pip-cache"
    env["PIP_CACHE_DIR"] = str(cache)  # speed only: PyPI downloads of privpkg's dependencies

    table = substitutions(feed, container, privpkg_wheel)
    transcript: list[str] = []
    ran: list[str] = []
    feed_installs: list[str] = []
    for block in use_it_blocks():
        exports = ""
        for cmd in commands(block):
            line = substitute(cmd, table)
            if line.startswith("export "):
                exports += line + "\n"
                continue
            installs_feed_package = re.match(r"^(\w+=\S+ )*(pip|uv pip) install\b", line) is not None and FEED_PACKAGE in line
            if installs_feed_package:
                run([venv.python, "-m", "pip", "uninstall", "-y", "-q", FEED_PACKAGE], env)
            seen = len(feed.log())
            proc = subprocess.run(
                ["bash", "-c", exports + line], input=feed.secret_a + "\n" if asks_secret(line) else "", env=env, cwd=work,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, check=False,
            )
            transcript.append(f"$ {cmd}\n[exit {proc.returncode}]\n{proc.stdout}")
            assert proc.returncode == 0, "\n".join(transcript)
            if installs_feed_package:
                # This install really fetched the package from the feed, with the PAT.
                new = feed.log()[seen:]
                assert any(e.path.endswith(".whl") and e.status == 200 and e.auth for e in new), (cmd, feed.log_text())
                feed_installs.append(cmd)
            ran.append(cmd)
    text = "\n".join(transcript)
    assert_no_secret(text, feed.secret_a, azurite.key)
    assert not signature_values(text) and "sig=" not in text, text
    # pip (the laptop and CI recipes) and uv each installed mypkg from the feed with the PAT.
    assert len(feed_installs) >= 3 and any(c.startswith("uv ") for c in feed_installs), ran
    # The workspace wheel is installed, and recorded without a signature.
    r = check_ok(run([venv.python, "-m", "pip", "freeze"], env), "pip freeze")
    # pip (the shim) records the stable URL; the README's uv recipe then reinstalls it from the
    # wheelhouse, recorded by its file URL and sha256 (test_wheelhouse.py checks both apart).
    assert re.search(r"^mylib @ file://\S+/wheels/mylib-1\.0-py3-none-any\.whl#sha256=[0-9a-f]{64}$", r.output, re.MULTILINE), r.output
    assert_no_secret(r.output, azurite.key)
    assert "sig=" not in r.output
