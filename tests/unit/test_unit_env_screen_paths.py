"""Tokens carried in a URL's path or as its user name (issue 10, item 2; the registry audit's
"Gemfury-style tokens"): refused in a definition or lock and masked in error lines, with no false
positive on the index URLs teams really use, whatever secrets are known.
"""

from __future__ import annotations

import pytest

from privpkg.environments import screen

#: Gemfury-shaped: 20 mixed-case letters and digits. Never a known secret below (as a user's
#: other token, or a deploy token, would not be one).
FURY = "Xq7Lm2Pz9RtB4kWd8NvC"
#: A known connection's secret, shaped like an Azure DevOps PAT (52 lowercase letters and digits).
ADO_PAT = "7kq2m5xz3v9w1pbr4tyd8hnc6jfg0sle2aq5wz9x3cv7bn1mk4pl"
#: Another token of that shape (rotated, or another user's): not known, same shape.
ADO_OTHER = "m3x9q2w7v5k1z8r4p6t0y2d9h3n5c7j1f8g4s6l0a2e9b3u5i7o1"
GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
#: The secrets the screen knows (a plain password-like one too, and base64 keys with / and +).
KNOWN = {ADO_PAT: "connection 'ado''s secret", "hunter2-but-longer-value": "connection 'x''s secret",
         "0f8fad5b-d9cb-469f-a165-70867728950e": "connection 'guid''s secret",  # a GUID-shaped token
         "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==": "connection 'blob''s secret"}

ORDINARY = [
    "https://pypi.org/simple/",
    "https://files.pythonhosted.org/packages/8b/0d/4c2f1ae8f2e3e1b2c9d6a/requests-2.32.3-py3-none-any.whl",
    "https://pypi.fury.io/acme/",  # Gemfury without a token
    "https://pypi.fury.io/acme/-/ver_1p2D3q/acme_tools-1.0-py3-none-any.whl",  # a public Gemfury file
    "https://pkgs.dev.azure.com/contoso/_packaging/team-feed/pypi/simple/",
    "https://pkgs.dev.azure.com/contoso/b5a3c2e1-7f4d-4c2b-9a8e-1d2f3c4b5a69/_packaging/feed/pypi/simple/",
    "https://contoso.pkgs.visualstudio.com/_packaging/team-feed/pypi/simple/",
    "https://contoso.pkgs.visualstudio.com/b5a3c2e1-7f4d-4c2b-9a8e-1d2f3c4b5a69/_packaging/feed/pypi/simple/",
    "https://gitlab.com/api/v4/projects/48213577/packages/pypi/simple",
    "https://gitlab.example.com/api/v4/groups/my-group/-/packages/pypi/simple",
    "https://npm.pkg.github.com/octo-org",
    "https://maven.pkg.github.com/octo-org/hello-world",
    "https://company.jfrog.io/artifactory/api/pypi/pypi-remote/simple",
    "https://artifactory.example.com/artifactory/api/pypi/pypi-virtual/simple",
    "https://acme-111122223333.d.codeartifact.eu-west-1.amazonaws.com/pypi/team-repo/simple/",
    "https://__token__@gitlab.example.com/api/v4/projects/17/packages/pypi/simple",
    "https://${FURY_TOKEN}:@pypi.fury.io/acme/",
    "https://pypi.fury.io/${FURY_TOKEN}/acme/",
    "https://conda.anaconda.org/conda-forge/linux-64/python-3.11.7-h0_0.conda",
    "privpkg://team/acme-tools/acme_tools-1.0-py3-none-any.whl",
]


@pytest.mark.parametrize("url", ORDINARY)
def test_ordinary_index_urls_pass(url: str) -> None:
    assert screen.find_secret(f"--extra-index-url {url}", KNOWN) is None
    assert screen.masked(url, {}) == url


@pytest.mark.parametrize(("url", "token", "what"), [
    (f"https://{FURY}@pypi.fury.io/acme/", FURY, "a token as the user name in user info"),
    (f"https://{FURY}:@pypi.fury.io/acme/", FURY, "a token as the user name in user info"),
    (f"https://pypi.fury.io/{FURY}/acme/", FURY, "a token in the URL's path"),
    (f"https://npm-proxy.fury.io/{FURY}/acme/", FURY, "a token in the URL's path"),
    (f"https://pypi.fury.io/{FURY}/acme/-/ver_1p2D3q/acme_tools-1.0-py3-none-any.whl", FURY, "a token in the URL's path"),
    (f"https://pkgs.example.com/{ADO_OTHER}/simple/", ADO_OTHER, "a token in the URL's path"),
    (f"https://{ADO_OTHER}@pkgs.example.com/simple/", ADO_OTHER, "a token as the user name in user info"),
    (f"https://git.example.com/{GITHUB}/simple/", GITHUB, "a token in the URL's path"),
])
def test_a_token_in_a_path_or_as_the_user_is_refused_and_masked(url: str, token: str, what: str) -> None:
    assert screen.find_secret(f"--index-url {url}", KNOWN) == what
    encoded = url.replace(token, "".join(f"%{ord(c):02X}" for c in token))
    assert screen.find_secret(encoded, KNOWN) == what
    line = screen.masked(f"cannot read {url}: HTTP 404", KNOWN)
    assert token not in line and "***" in line


def test_the_shape_rule_needs_a_known_secret_of_that_shape() -> None:
    """Without the Azure DevOps secret known, a segment of its shape on another host is a path."""
    url = f"https://pkgs.example.com/{ADO_OTHER}/simple/"
    assert screen.find_secret(url, {}) is None
    assert screen.find_secret(url, {ADO_PAT: "connection 'ado''s secret"}) == "a token in the URL's path"


def test_refuse_names_the_kind_never_the_token() -> None:
    with pytest.raises(screen.UsageError) as info:
        screen.refuse(f"https://pypi.fury.io/{FURY}/acme/", "spec/requirements.txt", {})
    assert "a token in the URL's path" in str(info.value) and FURY not in str(info.value)


def test_a_user_name_no_person_has_is_refused_without_any_known_secret() -> None:
    """A user name of 32 or more letters and digits (an Azure DevOps PAT as its feeds take it)
    is refused even when no connection holds it; names people have, and ``__token__``, pass."""
    pat = "k2j4h5g6f7d8s9a0q1w2e3r4t5y6u7i8o9p0l1k2j3h4g5f6d7s8"
    assert screen.find_secret(f"--index-url https://{pat}@pkgs.dev.azure.com/org/_packaging/f/pypi/simple/", {}) == \
        "a token as the user name in user info"
    for user in ("__token__", "alice", "firstname.lastname", "a-very-long-service-account-name-without-digits",
                 "b5a3c2e1-7f4d-4c2b-9a8e-1d2f3c4b5a69"):
        assert screen.find_secret(f"--index-url https://{user}@pkgs.example.com/simple/", {}) is None, user
