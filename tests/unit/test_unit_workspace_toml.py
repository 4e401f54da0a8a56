"""Workspace definitions in TOML, in-process: written with the user's comments kept, read back,
and a malformed file refused with a message naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from privpkg.errors import PrivpkgError
from privpkg.workspace import Workspace, add_workspace, get_workspace, user_file


def test_add_keeps_comments_and_reads_back(isolated_privpkg: Path, tmp_path: Path) -> None:
    f = user_file()
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text("# my workspaces\n[workspaces.old]\nstorage = \"local\"\npath = \"" + str(tmp_path / "old") + "\"\n")
    add_workspace(Workspace("team", "s3", "s3://bucket/prefix", endpoint_url="https://s3.example.com", region="eu-west-1"))
    text = f.read_text()
    assert text.startswith("# my workspaces\n") and "[workspaces.team]" in text
    team = get_workspace("team")
    assert (team.storage, team.location, team.endpoint_url, team.region) == ("s3", "s3://bucket/prefix", "https://s3.example.com", "eu-west-1")
    assert get_workspace("old").location == str(tmp_path / "old")


def test_malformed_toml_names_the_file(isolated_privpkg: Path) -> None:
    f = user_file()
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text("[workspaces.x\nstorage = 1\n")
    with pytest.raises(PrivpkgError, match=str(f.name)):
        get_workspace("x")
