"""privpkg.confusion in-process: the environment.yml ``pip:`` reader, pip's config file order,
and which ``--extra-index-url`` URLs count as private (the lookup's own matching rules)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from privpkg import confusion, envvars, pipconfig
from privpkg.connections import CredentialLookup
from privpkg.errors import UsageError

PAT = "cf-PAT-5b7f3a9c1e"


def _lookup() -> CredentialLookup:
    conns = [{"name": "feed", "target": "https://h.example/org", "secret": PAT}]
    return CredentialLookup(document={}, environ={envvars.CONNECTIONS: json.dumps(conns)})


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("dependencies:\n  - pip\n  - pip:\n    - a\n    - 'b==1'  # c\n  - numpy\n", ["a", "b==1"]),
        ("dependencies:\n- pip:\n  - \"--extra-index-url https://x/ \"\n- numpy\n", ["--extra-index-url https://x/ "]),
        ("dependencies:\n  - pip: [a, 'b']  # flow\n  - c\n", ["a", "b"]),
        ("name: e\npip:\n  - not-deps\ndependencies:\n  - pip\n", []),  # only under dependencies
        ("dependencies:\n  - pip:\n      - a\n\n      # comment\n      - 'it''s'\nvariables:\n  - x\n", ["a", "it's"]),
        ("dependencies:\n  - pip:\n    - a\nchannels:\n  - pip:\n    - b\n", ["a"]),
    ],
)
def test_pip_section_reader(text: str, items: list[str]) -> None:
    assert [v for _, v in confusion.pip_section(text)] == items


def test_only_urls_a_connection_answers_are_private(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    nested = tmp_path / "sub" / "more.txt"
    nested.parent.mkdir()
    req.write_text(
        f"--extra-index-url https://__token__:{PAT}@h.example/org/_packaging/f/pypi/simple/\n"
        "--extra-index-url=https://h.example/org-evil/simple/\n"  # not on a segment boundary
        "--extra-index-url http://h.example/org/simple/\n"  # another scheme
        "-r sub/more.txt\n-r requirements.txt\n"
    )
    nested.write_text("--extra-index-url \\\n  https://h.example/org/x/  # continued\n")
    found = confusion.scan_requirements(_lookup(), req)
    assert [(f.where, f.url, f.connection) for f in found] == [
        (f"{req}, line 1", "https://***@h.example/org/_packaging/f/pypi/simple/", "feed"),
        (f"{nested}, line 1", "https://h.example/org/x/", "feed"),
    ]
    line = found[0].line()
    assert PAT not in line and "safe: --index-url https://***@h.example/org/_packaging/f/pypi/simple/" in line
    with pytest.raises(UsageError, match="line 1: cannot read"):
        confusion.scan_requirements(_lookup(), _write(tmp_path / "bad.txt", "-r missing.txt\n"))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_env_file_pip_section_and_its_nested_file(tmp_path: Path) -> None:
    env = _write(tmp_path / "environment.yml", "dependencies:\n  - pip:\n    - --extra-index-url https://h.example/org/y/\n    - -r reqs.txt\n")
    _write(tmp_path / "reqs.txt", "--extra-index-url https://h.example/org/z/\n")
    found = confusion.scan_env_file(_lookup(), env)
    assert [(f.where, f.url) for f in found] == [(f"{env}, line 3 (pip:)", "https://h.example/org/y/"), (f"{tmp_path / 'reqs.txt'}, line 1", "https://h.example/org/z/")]


def test_pip_config_is_read_from_pips_files_in_pips_order(tmp_path: Path) -> None:
    """The files are pipconfig.files' (checked against pip itself in test_network): the
    one $PIP_CONFIG_FILE names is read last, none when it is the null device; and an [install]
    index-url beats a [global] one of a later file, as in pip."""
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_CONFIG_DIRS": str(tmp_path / "etc")}
    user = _write(_mkdir(tmp_path / "cfg" / "pip") / "pip.conf", "[install]\nindex-url = https://h.example/org/simple/\n")
    own = _write(tmp_path / "own.conf", "[global]\nindex-url = https://pypi.org/simple\nextra-index-url = https://mirror.example/\n")
    assert pipconfig.files(env)[-2:] == [user, Path(sys.prefix) / "pip.conf"]
    found = confusion.scan(_lookup(), environ={**env, "PIP_CONFIG_FILE": str(own)})
    assert found == [], "PIP_CONFIG_FILE names an existing file: pip skips the user files"
    _write(own, "[global]\nextra-index-url = https://mirror.example/\n")
    env["PIP_CONFIG_FILE"] = str(tmp_path / "absent.conf")
    _write(_mkdir(tmp_path / "etc" / "pip") / "pip.conf", "[global]\nindex-url = https://pypi.org/simple\nextra-index-url = https://mirror.example/\n")
    [beside] = confusion.scan(_lookup(), environ=env)  # the user file's [install] index-url wins over /etc's [global]
    assert beside.url == "https://mirror.example/" and beside.beside == f"https://h.example/org/simple/ ({user} [install] index-url)"
    assert confusion.scan(_lookup(), environ={**env, "PIP_CONFIG_FILE": os.devnull}) == []


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_pip_config_and_environment(tmp_path: Path) -> None:
    conf = _write(tmp_path / "pip.conf", "[global]\nextra-index-url =\n    https://pypi.org/simple\n    https://h.example/org/a/\n"
                  "[install]\nextra_index_url = https://h.example/org/b/\nindex-url = https://h.example/org/c/\n")
    found = confusion.scan_pip_config(_lookup(), {"PIP_EXTRA_INDEX_URL": "https://h.example/org/d/ https://other/"}, [conf])
    assert [(f.where, f.url, f.safe) for f in found[:3]] == [
        (f"{conf} [global] extra-index-url", "https://h.example/org/a/", "index-url = https://h.example/org/a/"),
        (f"{conf} [install] extra_index_url", "https://h.example/org/b/", "index-url = https://h.example/org/b/"),
        ("$PIP_EXTRA_INDEX_URL", "https://h.example/org/d/", "PIP_INDEX_URL=https://h.example/org/d/"),
    ]
    # The index that wins is private (index-url in [install]): the public extra indexes are named too.
    assert [(f.where, f.url, f.beside) for f in found[3:]] == [
        (f"{conf} [global] extra-index-url", "https://pypi.org/simple", f"https://h.example/org/c/ ({conf} [install] index-url)"),
        ("$PIP_EXTRA_INDEX_URL", "https://other/", f"https://h.example/org/c/ ({conf} [install] index-url)"),
    ]
    assert "extra index https://pypi.org/simple is searched beside the private feed https://h.example/org/c/" in found[3].line()


def test_public_extra_index_beside_a_private_index(tmp_path: Path) -> None:
    """The other half of the risk: the private feed is the index, PyPI an extra one. A file's
    own --index-url wins over pip's config (pip's rule), so a public index there clears it."""
    req = _write(tmp_path / "r.txt", "--index-url https://h.example/org/simple/\n--extra-index-url https://pypi.org/simple\n")
    found = confusion.scan_requirements(_lookup(), req)
    assert [(f.where, f.url, f.connection) for f in found] == [(f"{req}, line 2", "https://pypi.org/simple", "feed")]
    ambient = confusion._config_uses({"PIP_INDEX_URL": "https://h.example/org/simple/"}, [])
    only_extra = _write(tmp_path / "e.txt", "--extra-index-url https://pypi.org/simple\n")
    assert [f.where for f in confusion.scan_requirements(_lookup(), only_extra, ambient)] == [f"{only_extra}, line 1"]
    public = _write(tmp_path / "p.txt", "-i https://pypi.org/simple\n--extra-index-url https://mirror.example/simple\n")
    assert confusion.scan_requirements(_lookup(), public, ambient) == []
