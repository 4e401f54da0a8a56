"""privpkg.refs by name: ``parse``, ``url_for`` and ``key_for`` agree on the
``privpkg://WORKSPACE/KIND/NAME`` grammar, a fragment (pip's ``#sha256=...``) is dropped, and a
malformed URL is one UsageError line."""

from __future__ import annotations

from pathlib import Path

import pytest

from privpkg import refs
from privpkg.errors import UsageError
from privpkg.resolve import collect

WHEEL = "demo_pkg-1.0-py3-none-any.whl"


@pytest.mark.parametrize("kind", refs.KINDS)
def test_url_for_and_parse_round_trip(kind: str) -> None:
    url = refs.url_for("team.ml", kind, "thing-1")
    assert url == f"privpkg://team.ml/{kind}/thing-1"
    assert refs.parse(url, kind) == refs.Ref("team.ml", kind, "thing-1")


def test_parse_defaults_to_wheels_and_accepts_any_case_of_the_scheme() -> None:
    assert refs.parse(f"PrivPkg://team/wheels/{WHEEL}") == refs.Ref("team", refs.WHEELS, WHEEL)


def test_key_for_is_the_kind_prefix_and_the_name() -> None:
    assert refs.key_for(refs.WHEELS, WHEEL) == f"wheels/{WHEEL}"
    assert refs.key_for(refs.WHEELS, WHEEL).startswith(refs.prefix(refs.WHEELS))
    assert refs.name_of(refs.key_for(refs.WHEELS, WHEEL)) == WHEEL
    with pytest.raises(ValueError, match="unknown kind"):
        refs.key_for("blobs", WHEEL)


@pytest.mark.parametrize("fragment", ["#sha256=" + "0" * 64, "#egg=demo_pkg", "#", "#a/b?c=d"])
def test_parse_drops_a_fragment(fragment: str) -> None:
    """pip's requirement lines carry ``#sha256=...``; callers hand the URL over as written."""
    assert refs.parse(f"privpkg://team/wheels/{WHEEL}{fragment}") == refs.Ref("team", refs.WHEELS, WHEEL)


def test_requirements_with_a_fragment_are_read_through_refs(tmp_path: Path) -> None:
    """resolve no longer cuts the fragment off by hand before parsing."""
    req = tmp_path / "requirements.txt"
    url = f"privpkg://team/wheels/{WHEEL}#sha256={'0' * 64}"
    req.write_text(f"{url}\ndemo-pkg @ {url}\n")
    assert [(p.name, p.url) for p in collect(req)] == [("demo-pkg", url), ("demo-pkg", url)]


def test_parse_calls_check_name_with_the_name() -> None:
    seen: list[str] = []
    refs.parse(f"privpkg://team/wheels/{WHEEL}", check_name=seen.append)
    assert seen == [WHEEL]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"https://team/wheels/{WHEEL}", "not a privpkg:// URL"),
        (f"privpkg://team/environments/{WHEEL}", "expected privpkg://WORKSPACE/wheels/FILE.whl"),
        (f"privpkg://team/wheels/sub/{WHEEL}", "expected privpkg://WORKSPACE/wheels/FILE.whl"),
        (f"privpkg://team/wheels/{WHEEL}?x=1", "no query or user part"),
        (f"privpkg://u@team/wheels/{WHEEL}", "no query or user part"),
        ("privpkg://team/wheels/a%0ab.whl", "cannot contain control characters"),
        ("privpkg://team/wheels/a%C2%85b.whl", "cannot contain control characters"),  # C1 (NEL), as workspace names refuse
        (f"privpkg://-team/wheels/{WHEEL}", "invalid workspace name"),
        (f"privpkg://{'w' * 64}/wheels/{WHEEL}", "workspace name too long"),
        (f"privpkg://team/wheels/{'a' * 256}", "wheel file name too long"),
        (f"privpkg://team/wheels/{'a' * 3000}", "privpkg:// URL too long"),
    ],
)
def test_parse_refuses_with_one_line(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        refs.parse(url)
    assert "\n" not in str(caught.value)
