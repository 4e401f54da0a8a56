"""Requirements parsing in-process: which lines ``privpkg resolve`` pins, nested files, and the
errors it names a file and line for."""

from __future__ import annotations

from pathlib import Path

import pytest

from privpkg.errors import UsageError
from privpkg.resolve import collect

URL = "privpkg://team/wheels/my_lib-1.0-py3-none-any.whl"


def test_named_and_bare_urls_markers_and_nested_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "more.txt").write_text(f"{URL}#sha256={'0' * 64} ; python_version >= '3.8'\n")
    req = tmp_path / "requirements.txt"
    req.write_text(f"# a comment\nrequests==2.32.0\nmy-lib @ {URL} \\\n    --hash=sha256:{'a' * 64}\n-r sub/more.txt\n-r sub/more.txt\n")
    pins = collect(req)
    assert [(p.name, p.url) for p in pins] == [("my-lib", URL), ("my-lib", f"{URL}#sha256={'0' * 64}")]
    assert pins[0].options == (f"--hash=sha256:{'a' * 64}",) and pins[0].where == f"{req}, line 3"
    assert pins[1].marker == 'python_version >= "3.8"'


def test_a_cycle_and_a_remote_include_are_errors(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("-r b.txt\n")
    b.write_text("-c a.txt\n")
    with pytest.raises(UsageError, match="includes itself"):
        collect(a)
    a.write_text("-r https://example.com/reqs.txt\n")
    with pytest.raises(UsageError, match="reads local files only"):
        collect(a)


def test_privpkg_url_not_as_the_url_of_a_requirement(tmp_path: Path) -> None:
    req = tmp_path / "r.txt"
    req.write_text(f"my-lib == 1.0 ; extra == '{URL}'\n")
    with pytest.raises(UsageError, match="line 1: privpkg:// must be the URL of the requirement"):
        collect(req)
