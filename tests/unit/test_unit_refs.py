"""privpkg.refs by name: ``parse``, ``url_for`` and ``key_for`` agree on the
``privpkg://WORKSPACE/KIND/NAME`` grammar, and a malformed URL is one UsageError line."""

from __future__ import annotations

import pytest

from privpkg import refs
from privpkg.errors import UsageError

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
