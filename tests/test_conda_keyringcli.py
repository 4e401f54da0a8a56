"""The conda pip step's ``keyring`` launcher (privpkg.conda.keyringcli) against the real keyring
CLI it stands in for: for pip's two calls (``--mode=creds --output=json get URL``, the older
``get SERVICE USER``) it prints, exits and logs exactly what ``python -P -m keyring`` does with
privpkg's backend (hit, miss, expired, bare host refused, host-wide bare host), answering a hit
without importing keyring; any other call, a miss, a keyring config, a backend named in the
environment or another installed backend go to keyring's CLI, so those still answer as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.env import assert_no_secret

from privpkg import connections, lookuplog
from privpkg.conda import keyringcli

PAT = "kc-PAT-0d9e8f7a6b"
OLD_PAT = "kc-OLD-1c2b3a4d5e"
HOST_PAT = "kc-HOST-9a8b7c6d5e"
LAUNCHER = [sys.executable, "-P", "-m", "privpkg.conda.keyringcli"]
KEYRING = [sys.executable, "-P", "-m", "keyring"]


@pytest.fixture
def store(isolated_privpkg: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)  # keyring's config: none, under HOME
    connections.set_connection("feed", "PythonFeed", "https://h.example/org", "PAT", value=PAT, username="me")
    connections.set_connection("old", "PythonFeed", "https://h.example/old", "PAT", value=OLD_PAT, expires="2020-01-01")
    connections.set_connection("hw", "PythonFeed", "https://wide.example/a", "PAT", value=HOST_PAT, username="hu", host_wide=True)
    return isolated_privpkg


def _run(argv: list[str], args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str, list[dict[str, Any]]]:
    """exit code, stdout, stderr, and the lookup log records the call added (time and pid cut)."""
    before = len(lookuplog.read_last(1000))
    res = subprocess.run([*argv, *args], capture_output=True, text=True, env=env or dict(os.environ), timeout=60, check=False)
    records = [{k: v for k, v in r.items() if k not in ("time", "pid")} for r in lookuplog.read_last(1000)[before:]]
    return res.returncode, res.stdout, res.stderr, records


CALLS = {
    "hit": ["--mode=creds", "--output=json", "get", "https://h.example/org/_packaging/f/pypi/simple/"],
    "old form": ["get", "https://h.example/org/", "me"],
    "expired": ["--mode=creds", "--output=json", "get", "https://h.example/old/simple/"],
    "miss": ["--mode=creds", "--output=json", "get", "https://h.example/org-evil/simple/"],
    "bare host refused": ["get", "h.example", "me"],
    "bare host, host-wide": ["get", "wide.example", "hu"],
    "plain creds": ["--mode=creds", "get", "https://h.example/org/x/"],
}


@pytest.mark.integration  # runs programs
@pytest.mark.parametrize("case", list(CALLS))
def test_answers_equal_the_keyring_cli(store: Path, case: str) -> None:
    args = CALLS[case]
    mine = _run(LAUNCHER, args)
    theirs = _run(KEYRING, args)
    assert mine == theirs, f"{case}: launcher {mine!r} != keyring CLI {theirs!r}"
    rc, out, err, records = mine
    assert len(records) == 1, f"{case}: one lookup, logged once: {records}"
    assert_no_secret(err, PAT, OLD_PAT, HOST_PAT)
    if case in ("miss", "bare host refused"):
        assert (rc, out) == (1, "") and not records[0]["served"]
    else:
        assert rc == 0 and records[0]["served"] and records[0]["program"] == "keyring"
    if case == "hit":
        assert json.loads(out) == {"username": "me", "password": PAT}
    if case == "expired":
        assert "expired on 2020-01-01" in err


@pytest.mark.integration  # runs a program
def test_a_hit_never_imports_keyring(store: Path) -> None:
    probe = (
        "import sys\nfrom privpkg.conda import keyringcli\n"
        f"rc = keyringcli.main({CALLS['hit']!r})\n"
        "print('keyring loaded' if any(m == 'keyring' or m.startswith('keyring.') for m in sys.modules) else 'no keyring', file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    res = subprocess.run([sys.executable, "-P", "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0 and json.loads(res.stdout)["password"] == PAT
    assert res.stderr.strip() == "no keyring"


OTHER_BACKEND = """
from keyring.backend import KeyringBackend
class Other(KeyringBackend):
    priority = 20
    def get_password(self, service, username):
        return "other-backend-answer"
    def set_password(self, service, username, password):
        raise NotImplementedError
    def delete_password(self, service, username):
        raise NotImplementedError
"""


def _other_backend(folder: Path) -> Path:
    """A real keyring backend outranking privpkg's (priority 20), installed as a distribution
    with a ``keyring.backends`` entry point in ``folder`` (put on PYTHONPATH)."""
    folder.mkdir()
    (folder / "otherkr.py").write_text(OTHER_BACKEND)
    info = folder / "otherkr-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: otherkr\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[keyring.backends]\nother = otherkr\n")
    return folder


@pytest.mark.integration  # runs programs
@pytest.mark.parametrize("setting", ["config file", "PYTHON_KEYRING_BACKEND", "another backend", "KEYRING_PROPERTY_STORE_ALL"])
def test_other_keyring_choices_are_keyrings_own(store: Path, tmp_path: Path, setting: str) -> None:
    """Where keyring's CLI would not ask privpkg's backend first, the launcher hands the call to
    it: same answers, for a URL privpkg's store holds too."""
    env = dict(os.environ)
    if setting == "config file":
        cfg = Path(env["HOME"]) / ".config" / "python_keyring"
        cfg.mkdir(parents=True)
        (cfg / "keyringrc.cfg").write_text("[backend]\ndefault-keyring=keyring.backends.null.Keyring\n")
    elif setting == "PYTHON_KEYRING_BACKEND":
        env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
    elif setting == "another backend":
        env["PYTHONPATH"] = str(_other_backend(tmp_path / "other"))
    else:
        env["KEYRING_PROPERTY_STORE_ALL"] = "1"
        # Store-everything mode answers a stored non-URL entry before the connections: a bare
        # host a host-wide connection also answers gets the entry.
        res = subprocess.run(
            [*KEYRING, "set", "wide.example", "hu"],
            input="generic-entry-secret\n",
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert res.returncode == 0, res.stderr
    for args in (CALLS["hit"], CALLS["old form"], CALLS["bare host, host-wide"]):
        mine, theirs = _run(LAUNCHER, args, env), _run(KEYRING, args, env)
        assert mine == theirs, f"{setting} {args}: launcher {mine!r} != keyring CLI {theirs!r}"
        assert_no_secret(mine[2], PAT)
    if setting == "another backend":
        assert _run(LAUNCHER, CALLS["old form"], env)[1] == "other-backend-answer\n"
    elif setting == "KEYRING_PROPERTY_STORE_ALL":
        assert _run(LAUNCHER, CALLS["bare host, host-wide"], env)[1] == "generic-entry-secret\n"
    else:
        assert _run(LAUNCHER, CALLS["hit"], env)[:2] == (1, "")


@pytest.mark.integration  # runs programs
@pytest.mark.parametrize(
    "args", [["--list-backends"], ["--mode", "creds", "get", "https://h.example/org/"], ["get", "https://h.example/org/"], ["diagnose"]]
)
def test_other_calls_are_keyrings_own(store: Path, args: list[str]) -> None:
    mine, theirs = _run(LAUNCHER, args), _run(KEYRING, args)
    if args == ["--list-backends"]:  # keyring lists them in a set's order, which varies per run
        mine, theirs = (mine[0], sorted(mine[1].splitlines()), *mine[2:]), (theirs[0], sorted(theirs[1].splitlines()), *theirs[2:])
    assert mine == theirs


def test_parse_takes_pips_spellings_only() -> None:
    assert keyringcli.parse(["--mode=creds", "--output=json", "get", "https://h/x/"]) == ("creds", "json", "https://h/x/", None)
    assert keyringcli.parse(["get", "h", "u"]) == ("password", "plain", "h", "u")
    for other in (
        ["get", "h"],
        ["--mode", "creds", "get", "h"],
        ["-b", "x", "get", "h", "u"],
        ["set", "h", "u"],
        ["get", "-h", "u"],
        ["get", "h", "u", "v"],
        [],
    ):
        assert keyringcli.parse(other) is None, other


def test_foreign_backends_reads_entry_points(tmp_path: Path) -> None:
    site = tmp_path / "site"
    for dist, text in {
        "keyring-25.7.0.dist-info": "[keyring.backends]\nmacOS = keyring.backends.macOS\n",
        "privpkg-0.1.0.dist-info": "[console_scripts]\nprivpkg = privpkg.cli:main\n[keyring.backends]\nprivpkg = privpkg.keyring_backend\n",
        "thing-1.0.dist-info": "[keyring.backends]\n",
        "evil-1.0.dist-info": "[keyring.backends]\nx = keyring.backends.evil\n",  # not keyring's own: counted
        "alt-1.0.egg-info": "[keyring.backends]\nalt = keyrings.alt.file\n",
    }.items():
        (site / dist).mkdir(parents=True)
        (site / dist / "entry_points.txt").write_text(text)
    (site / "odd-1.0.dist-info" / "entry_points.txt").mkdir(parents=True)  # unreadable: may declare one
    assert sorted(keyringcli.foreign_backends([str(site), str(tmp_path / "missing")])) == [
        "keyring.backends.evil",
        "keyrings.alt.file",
        "odd-1.0.dist-info",
    ]
    assert keyringcli.foreign_backends(sys.path) == [], "this venv: keyring's and privpkg's backends only"
