"""The ``privpkg://WORKSPACE/KIND/NAME`` grammar (privpkg.refs), in-process: what is built and
parsed back, the fragment pip's requirement lines carry, and the one-line refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from privpkg import refs
from privpkg.errors import UsageError
from privpkg.resolve import collect

WHEEL = "my_lib-1.0-py3-none-any.whl"


def test_url_key_and_name_round_trip() -> None:
    url = refs.url_for("team.ml", refs.WHEELS, WHEEL)
    assert url == f"privpkg://team.ml/wheels/{WHEEL}"
    assert refs.parse(url) == refs.Ref("team.ml", refs.WHEELS, WHEEL)
    key = refs.key_for(refs.WHEELS, WHEEL)
    assert key.startswith(refs.prefix(refs.WHEELS)) and refs.name_of(key) == WHEEL
    with pytest.raises(ValueError, match="unknown kind"):
        refs.url_for("team", "wheel", WHEEL)


@pytest.mark.parametrize("fragment", ["#sha256=" + "0" * 64, "#egg=my_lib", "#", "#a/b?c=d"])
def test_parse_drops_a_fragment(fragment: str) -> None:
    """pip's requirement lines carry ``#sha256=...``; callers hand the URL over as written."""
    assert refs.parse(f"privpkg://team/wheels/{WHEEL}{fragment}") == refs.Ref("team", refs.WHEELS, WHEEL)


def test_requirements_with_a_fragment_are_read_through_refs(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    url = f"privpkg://team/wheels/{WHEEL}#sha256={'0' * 64}"
    req.write_text(f"{url}\nmy-lib @ {url}\n")
    assert [(p.name, p.url) for p in collect(req)] == [("my-lib", url), ("my-lib", url)]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (f"privpkg://team/wheels/{WHEEL}?x=1", "no query or user part"),
        (f"privpkg://u@team/wheels/{WHEEL}", "no query or user part"),
        ("privpkg://team/wheels/a/" + WHEEL, "expected privpkg://WORKSPACE/wheels/FILE.whl"),
        (f"privpkg://team/wheel/{WHEEL}", "expected privpkg://WORKSPACE/wheels/FILE.whl"),
        (f"https://team/wheels/{WHEEL}", "not a privpkg:// URL"),
        (f"privpkg://te%0Aam/wheels/{WHEEL}", "invalid workspace name"),
        ("privpkg://team/wheels/my_lib%00-1.0-py3-none-any.whl", "cannot contain control characters"),
        ("privpkg://team/wheels/my_lib%C2%85-1.0-py3-none-any.whl", "cannot contain control characters"),
        ("privpkg://team/wheels/" + "a" * 256, "too long"),
    ],
)
def test_malformed_urls_are_one_line(url: str, words: str) -> None:
    with pytest.raises(UsageError) as exc:
        refs.parse(url)
    assert words in str(exc.value) and "\n" not in str(exc.value) and "\x85" not in str(exc.value)
