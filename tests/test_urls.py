"""URL normalization and the path-segment prefix rule, including a property test that throws
generated look-alike URLs at the matcher."""

from __future__ import annotations

import json
import re
import string
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from privpkg import envvars, urls
from privpkg.connections import CredentialLookup, validate_target
from privpkg.errors import UsageError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTPS://Pkgs.Example.COM/org", "https://pkgs.example.com/org/"),
        ("https://h:443/a/", "https://h/a/"),
        ("http://h:80/a", "http://h/a/"),
        ("http://h:8080/a", "http://h:8080/a/"),
        ("https://h/a/./b/../c", "https://h/a/c/"),
        ("https://h/a/%7Euser/%41", "https://h/a/~user/A/"),
        ("https://h/a%2fb", "https://h/a%2Fb/"),
        ("https://h", "https://h/"),
        ("https://user:pw@h/a?x=1#f", "https://h/a/"),
        ("https://bücher.example/a", "https://xn--bcher-kva.example/a/"),
        ("https://[::1]:8443/x", "https://[::1]:8443/x/"),
        ("https://H.example./x", "https://h.example/x/"),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert urls.normalize(raw).url == expected


@pytest.mark.parametrize(
    "bad",
    ["", "not a url", "https://", "/just/a/path", "https://h/a b", "https://h\\evil/", "https://h:99999/", "https://h\n/x", "https://[zz::1]/"],
)
def test_normalize_rejects_malformed(bad: str) -> None:
    with pytest.raises(UsageError):
        urls.normalize(bad)


def test_prefixes_longest_first() -> None:
    assert urls.normalize("https://h/a/b/").prefixes() == ["https://h/a/b/", "https://h/a/", "https://h/"]


@pytest.mark.parametrize(
    ("url", "served"),
    [
        ("https://h/org/_packaging/f/pypi/simple/", True),
        ("https://h/org", True),
        ("https://H:443/org/./x/", True),
        ("https://h/org-evil/", False),
        ("https://h/orgx/", False),
        ("https://h.evil.com/org/", False),
        ("https://evil.com/h/org/", False),
        ("http://h/org/", False),
        ("https://h:8443/org/", False),
        ("https://h/Org/", False),
        ("https://h/org%2Fx/", False),
        ("https://h/other/../org/x", True),
        ("https://h@evil.com/org/", False),
    ],
)
def test_segment_prefix_match(url: str, served: bool) -> None:
    lookup = CredentialLookup(document={}, environ={envvars.CONNECTIONS: '[{"name":"c","target":"https://h/org","secret":"S"}]'})
    assert (lookup.find(url) is not None) is served


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("http://pkgs.example.com/org", "refusing plain-http"),
        ("https://me:pw@h/org", "user:password"),
        ("https://h/org?x=1", "query"),
        ("https://h/org#frag", "fragment"),
        ("ftp://h/org", "unsupported URL scheme"),
        ("h/org", "not an absolute URL"),
    ],
)
def test_validate_target_refuses(target: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        validate_target(target)


def test_validate_target_allows_loopback_http_and_opt_in() -> None:
    assert validate_target("http://127.0.0.1:8080/org") == "http://127.0.0.1:8080/org/"
    assert validate_target("http://localhost/org") == "http://localhost/org/"
    assert validate_target("http://[::1]:81/org") == "http://[::1]:81/org/"
    assert validate_target("http://intranet/org", allow_http=True) == "http://intranet/org/"


# --- red team F5: "*.localhost" names are not loopback -----------------------------------------


@pytest.mark.parametrize("host", ["feed.localhost", "x.y.localhost", "localhost.example", "127.0.0.1.nip.io"])
def test_dot_localhost_names_are_not_loopback(host: str) -> None:
    """RFC 6761 asks resolvers to map ``*.localhost`` to loopback, but glibc with nsswitch
    ``files dns`` and no nss-myhostname (this machine, most containers) asks DNS, where an
    on-path spoofer picks the address. Plain http is allowed on loopback without --allow-http,
    so only names that surely are loopback count: before the fix, ``feed.localhost`` was
    accepted and pip/uv sent the PAT in clear to whatever DNS answered."""
    assert not urls.is_loopback(host)
    with pytest.raises(UsageError, match="refusing plain-http"):
        validate_target(f"http://{host}/org/")
    assert validate_target(f"http://{host}/org/", allow_http=True) == f"http://{host}/org/"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.8.9.10", "::1"])
def test_literal_loopback_and_localhost_still_are(host: str) -> None:
    assert urls.is_loopback(host)


def test_azure_workspace_on_dot_localhost_is_not_an_emulator() -> None:
    """The same rule for Azure workspaces: plain http (the SAS in clear) only for an emulator on
    a literal loopback address or ``localhost``."""
    from privpkg.workspace import validate_location

    with pytest.raises(UsageError, match="must be https"):
        validate_location("azure", "http://blob.localhost:10000/devstoreaccount1/c")
    assert validate_location("azure", "http://localhost:10000/devstoreaccount1/c") == "http://localhost:10000/devstoreaccount1/c"


# --- issue 6 B8: IDNA 2008 / UTS 46 non-transitional hosts -----------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://straße.example/", "https://xn--strae-oqa.example/"),
        ("https://STRASSE.example/", "https://strasse.example/"),
        ("https://Bücher.example/a", "https://xn--bcher-kva.example/a/"),
        ("https://faß.de/", "https://xn--fa-hia.de/"),
        ("https://ｅｘａｍｐｌｅ．com/x", "https://example.com/x/"),  # full-width letters and dot (UTS 46 mapping)
        ("https://%C3%9F.example/", "https://xn--zca.example/"),  # percent-escaped UTF-8 "ß"
    ],
)
def test_idna2008_uts46_nontransitional(raw: str, expected: str) -> None:
    assert urls.normalize(raw).url == expected


@pytest.mark.parametrize("bad", ["https://a\u200db.example/", "https://\U0001f4a9.example/", "https://xn--a.example\u00df\u0301x/"])
def test_invalid_idna_is_one_clear_error(bad: str) -> None:
    bad = bad.encode().decode("unicode_escape")
    with pytest.raises(UsageError, match="not a valid internationalized domain name"):
        urls.normalize(bad)


@pytest.mark.parametrize(
    ("stored", "asked"),
    [("https://straße.example/feed", "https://strasse.example/feed/simple/"), ("https://strasse.example/feed", "https://straße.example/feed/simple/")],
)
def test_sharp_s_never_serves_ss(stored: str, asked: str) -> None:
    """IDNA 2003 (Python's ``idna`` codec, and privpkg before this fix) maps ß to ss, so a PAT for
    straße.example went to strasse.example, a different registrable domain. Both directions."""
    env = {envvars.CONNECTIONS: json.dumps([{"name": "s", "target": stored, "secret": "idna-secret", "host_wide": True}])}
    lookup = CredentialLookup(document={}, environ=env)
    assert lookup.errors == []
    assert lookup.find(asked) is None
    assert lookup.find(urls.normalize(asked).netloc) is None, "nor through the bare-host lookup"
    assert lookup.find(stored + "/simple/").name == "s", "control: the stored spelling is served"


@pytest.mark.integration  # runs a program
def test_idna_is_imported_only_for_non_ascii_hosts() -> None:
    probe = (
        "import sys\n"
        "from privpkg import urls\n"
        "urls.normalize('https://pkgs.example.com/org/'); urls.normalize_netloc('pkgs.example.com:443')\n"
        "print('idna' in sys.modules)\n"
        "urls.normalize('https://straße.example/')\n"
        "print('idna' in sys.modules)\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "True"]


# --- issue 6 A3 / D13: S3 endpoints and URL length ------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "key"),
    [
        (None, "aws"),
        ("https://s3.amazonaws.com", "aws"),
        ("https://S3.eu-central-1.amazonaws.com/", "aws"),
        ("https://s3-us-west-2.amazonaws.com", "aws"),
        ("https://s3.amazonaws.com:443", "aws"),
        ("http://s3.amazonaws.com", "http://s3.amazonaws.com"),
        ("https://s3.amazonaws.com:8443", "https://s3.amazonaws.com:8443"),
        ("https://s3.amazonaws.com.evil.io", "https://s3.amazonaws.com.evil.io"),
        ("https://evil-s3.amazonaws.com", "https://evil-s3.amazonaws.com"),
        ("https://s3.amazonaws.com/evil", "https://s3.amazonaws.com/evil"),
        ("HTTP://127.0.0.1:9000/", "http://127.0.0.1:9000"),
        ("https://minio.example.com", "https://minio.example.com"),
    ],
)
def test_s3_endpoint_key(endpoint: str | None, key: str) -> None:
    assert urls.s3_endpoint_key(endpoint) == key


def test_url_length_limit() -> None:
    ok = "https://h.example/" + "a" * (urls.MAX_URL - len("https://h.example/"))
    assert urls.normalize(ok).host == "h.example"
    with pytest.raises(UsageError, match=r"^the URL is longer than 2048 characters \(2049\)$"):
        urls.normalize(ok + "b")
    with pytest.raises(UsageError, match="longer than 2048"):
        urls.normalize_netloc("h" * 3000)


def test_redact_masks_userinfo_and_query() -> None:
    assert urls.redact("https://u:SECRET@h/x?sig=SECRET") == "https://***@h/x?***"
    # What is not a URL is shown as given (it used to become `://notaurl`), userinfo still masked.
    assert [urls.redact(u) for u in ("notaurl", "host.example/org", "u:SECRET@host/x", "s3:bucket", "https:///x")] == [
        "notaurl", "host.example/org", "***@host/x", "s3:bucket", "https:///x"]


# --- property test: no secret for a URL the target does not cover -------------------------

TARGET_SCHEME, TARGET_HOST, TARGET_PORT, TARGET_SEGS = "https", "pkgs.example.com", None, ("org", "team")
SECRET = "S3CRET-for-org-team"

UNRESERVED = string.ascii_letters + string.digits + "-._~"
seg_alphabet = string.ascii_letters + string.digits + "-._~%"
lookalike_segments = st.sampled_from(["org", "team", "org-evil", "orgx", "Org", "team2", "tea", "", "..", ".", "%6Frg", "org%2Fteam", "te%61m", "%2e%2e", "%2E", "%2f"])
segments = st.lists(st.one_of(lookalike_segments, st.text(seg_alphabet, min_size=0, max_size=6)), max_size=5)
hosts = st.sampled_from(
    ["pkgs.example.com", "PKGS.example.COM", "pkgs.example.com.", "pkgs.example.com.evil.io", "evil.io", "pkgs-example.com",
     "xn--pkgs-example.com", "example.com", "pkgs.example.co", "127.0.0.1", "[::1]"]
)
ports = st.sampled_from([None, 443, 80, 8443, 0])
schemes = st.sampled_from(["https", "http", "HTTPS", "ftp", "s3"])
userinfo = st.sampled_from(["", "me@", "me:pw@", "pkgs.example.com@", "pkgs.example.com:443@"])
tails = st.sampled_from(["", "/", "?x=1", "#frag", "?next=/org/team/"])


def _expected(scheme: str, host: str, port: int | None, segs: list[str]) -> bool:
    """Independent oracle: resolve dot segments and unreserved escapes on the generated parts."""
    if scheme.lower() != TARGET_SCHEME:
        return False
    if host.lower().rstrip(".") != TARGET_HOST:
        return False
    if port not in (None, 443):
        return False
    resolved: list[str] = []
    for s in segs:
        s = re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)) if chr(int(m.group(1), 16)) in UNRESERVED else m.group(0).upper(), s)
        if s == "..":
            if resolved:
                resolved.pop()
        elif s != ".":
            resolved.append(s)
    return tuple(resolved[: len(TARGET_SEGS)]) == TARGET_SEGS


def _lookup() -> CredentialLookup:
    env = {envvars.CONNECTIONS: f'[{{"name": "t", "target": "https://pkgs.example.com/org/team", "secret": "{SECRET}"}}]'}
    return CredentialLookup(document={}, environ=env)


LOOKUP = _lookup()


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schemes, userinfo, hosts, ports, segments, tails)
@example("https", "", "pkgs.example.com", None, ["org", "team", "simple"], "/")
@example("https", "", "pkgs.example.com", None, ["org", "team-evil"], "/")
@example("https", "pkgs.example.com@", "evil.io", None, ["org", "team"], "/")
def test_no_secret_for_lookalikes(scheme: str, user: str, host: str, port: int | None, segs: list[str], tail: str) -> None:
    netloc = host + (f":{port}" if port is not None else "")
    path = "/" + "/".join(segs)
    if tail in ("/",) and not path.endswith("/"):
        path += "/"
    elif tail not in ("", "/"):
        path += tail
    url = f"{scheme}://{user}{netloc}{path}"
    try:
        conn = LOOKUP.find(url)
    except UsageError:
        conn = None
    # A query or fragment never changes which path is matched; the oracle sees only the path.
    expected = _expected(scheme, host, port, segs) and port != 0
    if conn is not None:
        assert expected, f"secret handed to {url!r}"
    else:
        assert not expected, f"no secret for covered URL {url!r}"


@settings(max_examples=3000, deadline=None)
@given(st.text(min_size=0, max_size=60))
@example("https://pkgs.example.com/org/team/")
@example("pkgs.example.com")
def test_arbitrary_text_never_crashes_or_leaks(text: str) -> None:
    try:
        conn = LOOKUP.find(text)
    except UsageError:
        return
    if conn is None:
        return
    if "://" in text:
        norm = urls.normalize(text)
        assert norm.scheme == "https" and norm.host == TARGET_HOST and norm.path.startswith("/org/team/")
    else:
        raise AssertionError(f"a bare host {text!r} was answered by a connection that did not opt in (--host-wide)")


def test_redact_drops_fragments_and_keeps_refs() -> None:
    """The fragment is always dropped (it may hold anything); an ``@`` in a path or a git ref is
    not user info; an authority cut short by a ``?`` or a bad port hides what it held."""
    cases = {
        "https://h/p#x@SECRET": "https://h/p",
        "https://h/p#@tok=SECRET": "https://h/p",
        "git+https://github.com/org/repo.git@v1.0": "git+https://github.com/org/repo.git@v1.0",
        "https://u:SECRET?x@h/p": "https://***?***",
        "https://u@h:SECRET/": "https://***@***/",
        "u:SECRET@host/x?sig=SECRET#f": "***@host/x?***",
        "https://[::1]:8080/p": "https://[::1]:8080/p",
    }
    assert {u: urls.redact(u) for u in cases} == cases
