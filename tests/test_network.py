"""privpkg's own HTTP behind a proxy and a private CA (issue 8, item 11): ``connection test``,
``auth login --verify``, the storage SDKs and ``resolve --wheelhouse``'s downloads go through
``HTTPS_PROXY``/``HTTP_PROXY``, honour ``NO_PROXY``, and trust a private CA given by
``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, ``PIP_CERT``, pip's config files or ``SSL_CERT_FILE``,
in the order pip itself applies them (a download from S3 also ``AWS_CA_BUNDLE``, as boto3 does).

Real pieces: a forward proxy and an https feed in threads of this process on free loopback ports
(tests/support/netproxy.py: the proxy records what went through it, every byte included), a CA
made with ``cryptography`` in the test's temp dir, the CLI as a subprocess, real pip for pip's
config-file order, Azurite and moto (over plain http, and over https with the private CA's
certificate). The feed's host name, ``feed.privpkg.test``, is resolved by the proxy alone, so an
OK for it proves the request went through the proxy.

Loopback and proxies: urllib, requests and botocore on Linux all send a request for 127.0.0.1 to
the proxy unless ``NO_PROXY`` names it (measured here), so the storage SDKs reach the emulators on
127.0.0.1 through the proxy with no trick (the tests check the proxy saw them); privpkg's own
HTTP sends loopback direct, so its proxy tests use the proxy-only name.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.cli import PrivpkgCLI, assert_one_error_line
from support.env import secret_forms
from support.feeds import FeedServer
from support.netproxy import PROXIED_HOST, ForwardProxy, PrivateCA, TLSFeed
from support.storage import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, MotoServer

from privpkg import http, pipconfig
from privpkg.testing import start_server, stop_process

PAT = "net-PAT-" + secrets.token_urlsafe(18)
#: Ambient variables that would change the route or the trust of these tests' requests.
AMBIENT = (*http.CA_VARIABLES, "SSL_CERT_DIR", "AWS_CA_BUNDLE", "AWS_CONFIG_FILE", "REQUEST_METHOD")


def _scrub(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in AMBIENT and not k.lower().endswith("_proxy")}


@pytest.fixture
def ca(tmp_path: Path) -> PrivateCA:
    return PrivateCA(tmp_path / "ca")


@pytest.fixture
def tls_feed(ca: PrivateCA) -> Iterator[TLSFeed]:
    feed = TLSFeed(ca, PAT)
    try:
        yield feed
    finally:
        feed.stop()


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    p = ForwardProxy({PROXIED_HOST: "127.0.0.1"})
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture
def cli(checked_cli: Callable[..., PrivpkgCLI]) -> PrivpkgCLI:
    c = checked_cli(PAT, AZURITE_KEY)
    c.env = _scrub(c.env)
    return c


def _one_verdict(cli: PrivpkgCLI, name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    res = cli("connection", "test", name, env=env)
    assert res.stderr == "" and len(res.stdout.splitlines()) == 1, res.stdout + res.stderr
    return res


def _assert_pat_hidden_from(proxy: ForwardProxy) -> None:
    raw = proxy.raw_text()
    assert raw, "the proxy saw nothing"
    for form in secret_forms(PAT):
        assert form not in raw, "the PAT crossed the proxy in clear"


def _pip_user_conf(cli: PrivpkgCLI, body: str) -> dict[str, str]:
    """Variables that make pip (and privpkg) read a user pip.conf with ``body`` (clean_env's
    PIP_CONFIG_FILE=/dev/null would make both read no file)."""
    conf = Path(cli.env["XDG_CONFIG_HOME"]) / "pip" / "pip.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(body)
    cli.env.pop("PIP_CONFIG_FILE", None)
    return {}


#: Each supported way to name the bundle: a function of (cli, bundle path) -> variables to add.
SOURCES: dict[str, Callable[[PrivpkgCLI, str], dict[str, str]]] = {
    "REQUESTS_CA_BUNDLE": lambda cli, p: {"REQUESTS_CA_BUNDLE": p},
    "CURL_CA_BUNDLE": lambda cli, p: {"CURL_CA_BUNDLE": p},
    "PIP_CERT": lambda cli, p: {"PIP_CERT": p},
    "pip.conf [global]": lambda cli, p: _pip_user_conf(cli, f"[global]\ncert = {p}\n"),
    "pip.conf [install]": lambda cli, p: _pip_user_conf(cli, f"[global]\ntimeout = 30\n[install]\ncert = {p}\n"),
    "SSL_CERT_FILE": lambda cli, p: {"SSL_CERT_FILE": p},
}


@pytest.mark.parametrize("source", list(SOURCES))
def test_connection_test_through_https_proxy_with_private_ca(cli: PrivpkgCLI, ca: PrivateCA, tls_feed: TLSFeed,
                                                            proxy: ForwardProxy, source: str) -> None:
    """OK through the proxy only with the private CA's bundle; with another CA's bundle, one
    FAILED line naming certificate verification and where the bundle came from. The proxy saw
    CONNECT only, and never the PAT in any form."""
    url = tls_feed.url(PROXIED_HOST)
    cli.ok("connection", "set", "feed", "--target", url, stdin=PAT)
    via = {"HTTPS_PROXY": proxy.url}

    wrong = SOURCES[source](cli, str(ca.other_ca_pem))
    res = _one_verdict(cli, "feed", {**via, **wrong})
    assert res.returncode == 1 and res.stdout.startswith(f"FAILED: {url}: certificate verification failed"), res.stdout
    named = "cert in" if source.startswith("pip.conf") else source
    assert f"only the CA bundle {named}" in res.stdout and str(ca.other_ca_pem) in res.stdout, res.stdout

    right = SOURCES[source](cli, str(ca.ca_pem))
    res = _one_verdict(cli, "feed", {**via, **right})
    assert res.returncode == 0 and res.stdout.startswith(f"OK: {url} accepted"), res.stdout
    assert set(proxy.methods()) == {"CONNECT"} and {s.target for s in proxy.seen} == {f"{PROXIED_HOST}:{tls_feed.port}"}
    assert (("/feed/", True)) in tls_feed.log
    _assert_pat_hidden_from(proxy)


def test_no_bundle_is_one_clear_line(cli: PrivpkgCLI, tls_feed: TLSFeed, proxy: ForwardProxy) -> None:
    """No bundle anywhere: the system's certificates do not know the private CA; the line says
    so and names the variables that would fix it. The credential never reached the feed."""
    url = tls_feed.url(PROXIED_HOST)
    cli.ok("connection", "set", "feed", "--target", url, stdin=PAT)
    res = _one_verdict(cli, "feed", {"HTTPS_PROXY": proxy.url})
    assert res.returncode == 1, res.stdout
    assert "certificate verification failed" in res.stdout and "REQUESTS_CA_BUNDLE, SSL_CERT_FILE or pip's cert" in res.stdout
    assert tls_feed.log == []


@pytest.mark.parametrize("source", list(SOURCES))
def test_auth_login_verify_through_proxy(cli: PrivpkgCLI, ca: PrivateCA, tls_feed: TLSFeed, proxy: ForwardProxy, source: str) -> None:
    """``auth login --verify`` checks through the proxy and stores only with the private CA's
    bundle, given each supported way; with another CA's, one error line naming certificate
    verification, and nothing stored."""
    url = tls_feed.url(PROXIED_HOST)
    via = {"HTTPS_PROXY": proxy.url}
    wrong = SOURCES[source](cli, str(ca.other_ca_pem))
    line = assert_one_error_line(cli("auth", "login", url, "--verify", stdin=PAT + "\n", env={**via, **wrong}), 1)
    assert "nothing stored" in line and "certificate verification failed" in line, line
    assert PROXIED_HOST not in cli.ok("auth", "status")
    right = SOURCES[source](cli, str(ca.ca_pem))
    out = cli.ok("auth", "login", url, "--verify", stdin=PAT + "\n", env={**via, **right})
    assert "stored connection" in out and "OK:" in out, out
    assert PROXIED_HOST in cli.ok("auth", "status")
    assert set(proxy.methods()) == {"CONNECT"}
    _assert_pat_hidden_from(proxy)


def test_precedence_is_pips(cli: PrivpkgCLI, ca: PrivateCA, tls_feed: TLSFeed, proxy: ForwardProxy) -> None:
    """REQUESTS_CA_BUNDLE beats PIP_CERT (as in pip 23.2.1 and 26.3, measured: requests lets the
    variable win over the session's cert); PIP_CERT beats SSL_CERT_FILE."""
    url = tls_feed.url(PROXIED_HOST)
    cli.ok("connection", "set", "feed", "--target", url, stdin=PAT)
    good, other = str(ca.ca_pem), str(ca.other_ca_pem)
    via = {"HTTPS_PROXY": proxy.url}
    assert _one_verdict(cli, "feed", {**via, "REQUESTS_CA_BUNDLE": other, "PIP_CERT": good}).returncode == 1
    assert _one_verdict(cli, "feed", {**via, "REQUESTS_CA_BUNDLE": good, "PIP_CERT": other}).returncode == 0
    assert _one_verdict(cli, "feed", {**via, "PIP_CERT": good, "SSL_CERT_FILE": other}).returncode == 0
    assert _one_verdict(cli, "feed", {**via, "PIP_CERT": other, "SSL_CERT_FILE": good}).returncode == 1


@pytest.mark.parametrize("var", ["REQUESTS_CA_BUNDLE", "PIP_CERT", "SSL_CERT_FILE"])
@pytest.mark.parametrize("kind", ["missing", "not PEM"])
def test_unusable_bundle_is_one_error_line(cli: PrivpkgCLI, tls_feed: TLSFeed, tmp_path: Path, var: str, kind: str) -> None:
    """A bundle that does not exist or holds no certificate: one error line naming the variable,
    for ``connection test`` and ``auth login --verify``, before any request."""
    bad = tmp_path / "nope.pem"
    if kind == "not PEM":
        bad.write_text("not a certificate\n")
    url = tls_feed.url()
    cli.ok("connection", "set", "feed", "--target", url, stdin=PAT)
    words = [f"{var}={bad}", "no such file" if kind == "missing" else "holds no PEM certificate"]
    cli.fails(1, "connection", "test", "feed", env={var: str(bad)}, match=words)
    # stdin is empty: the bundle is checked before the PAT is read (else: an error about the PAT).
    cli.fails(1, "auth", "login", url + "x/", "--verify", stdin="", env={var: str(bad)}, match=words)
    assert tls_feed.log == []


def test_bad_pip_conf_cert_names_the_file(cli: PrivpkgCLI, tls_feed: TLSFeed, tmp_path: Path) -> None:
    _pip_user_conf(cli, f"[global]\ncert = {tmp_path / 'gone.pem'}\n")
    cli.ok("connection", "set", "feed", "--target", tls_feed.url(), stdin=PAT)
    conf = Path(cli.env["XDG_CONFIG_HOME"]) / "pip" / "pip.conf"
    cli.fails(1, "connection", "test", "feed", match=[f"cert in {conf} [global]=", "no such file"])


@pytest.mark.parametrize("no_proxy", ["NO_PROXY=feed.privpkg.test", "no_proxy=.privpkg.test", "NO_PROXY=example.com, privpkg.test",
                                      "NO_PROXY=*"])
def test_no_proxy_bypasses(cli: PrivpkgCLI, ca: PrivateCA, tls_feed: TLSFeed, proxy: ForwardProxy, no_proxy: str) -> None:
    """NO_PROXY (either case; a host, a suffix with or without its dot, or ``*``) sends the
    request direct: for a name only the proxy resolves that is UNREACHABLE, and the proxy saw
    nothing. (CIDR entries: test_proxy_bypass_rules.)"""
    url = tls_feed.url(PROXIED_HOST)
    cli.ok("connection", "set", "feed", "--target", url, stdin=PAT)
    trust = {"REQUESTS_CA_BUNDLE": str(ca.ca_pem), "HTTPS_PROXY": proxy.url}
    name, _, value = no_proxy.partition("=")
    res = _one_verdict(cli, "feed", {**trust, name: value})
    assert res.returncode == 1 and res.stdout.startswith("UNREACHABLE: ") and "through the proxy" not in res.stdout, res.stdout
    assert proxy.seen == [] and tls_feed.log == []
    assert _one_verdict(cli, "feed", trust).returncode == 0
    assert [s.target for s in proxy.seen] == [f"{PROXIED_HOST}:{tls_feed.port}"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_goes_direct(cli: PrivpkgCLI, ca: PrivateCA, tls_feed: TLSFeed, proxy: ForwardProxy, host: str) -> None:
    """A loopback target never goes through the proxy (which would reach the proxy's own
    loopback), though urllib, requests and botocore would send it there."""
    cli.ok("connection", "set", "feed", "--target", tls_feed.url(host), stdin=PAT)
    res = _one_verdict(cli, "feed", {"REQUESTS_CA_BUNDLE": str(ca.ca_pem), "HTTPS_PROXY": proxy.url})
    assert res.returncode == 0, res.stdout
    assert proxy.seen == []


def test_plain_http_loopback_pat_never_reaches_the_proxy(cli: PrivpkgCLI, feed: FeedServer, proxy: ForwardProxy) -> None:
    """A PAT for an http loopback feed (allowed without --allow-http because it never leaves
    this machine) would cross an HTTP_PROXY in clear; privpkg goes direct."""
    cli.outputs.add_secret(feed.secret_a)
    cli.ok("connection", "set", "feed", "--target", feed.index_a, stdin=feed.secret_a)
    res = _one_verdict(cli, "feed", {"HTTP_PROXY": proxy.url, "http_proxy": proxy.url})
    assert res.returncode == 0, res.stdout
    assert proxy.seen == [] and proxy.raw_text() == ""


def test_proxy_bypass_rules() -> None:
    """no_proxy as requests (so pip) reads it, on top of urllib: IPv4 addresses and CIDR ranges;
    suffixes on a label boundary only (requests' plain ``endswith`` would also exempt
    ``evilcorp.example`` for ``corp.example``)."""
    assert http.proxy_bypassed("10.1.2.3:443", "10.0.0.0/8") and http.proxy_bypassed("10.1.2.3", " 192.168.0.0/16 ,10.1.2.3")
    assert not http.proxy_bypassed("11.1.2.3", "10.0.0.0/8")
    assert http.proxy_bypassed("[fd00::1]:443", "fd00::/8")
    assert http.proxy_bypassed("pkgs.corp.example:443", "corp.example") and not http.proxy_bypassed("evilcorp.example", "corp.example")
    assert http.proxy_bypassed("anything", "*") and not http.proxy_bypassed("anything", "")
    assert http.direct("127.0.0.2:1", "") and http.direct("LOCALHOST", "") and not http.direct("feed.example", "")


def test_lower_case_proxy_wins(cli: PrivpkgCLI, ca: PrivateCA, tls_feed: TLSFeed, proxy: ForwardProxy) -> None:
    """https_proxy beats HTTPS_PROXY (urllib, requests and curl agree); a dead proxy is named."""
    from privpkg.testing import free_port

    url = tls_feed.url(PROXIED_HOST)
    cli.ok("connection", "set", "feed", "--target", url, stdin=PAT)
    dead = f"http://127.0.0.1:{free_port()}"
    env = {"REQUESTS_CA_BUNDLE": str(ca.ca_pem), "https_proxy": proxy.url, "HTTPS_PROXY": dead}
    assert _one_verdict(cli, "feed", env).returncode == 0
    res = _one_verdict(cli, "feed", {"REQUESTS_CA_BUNDLE": str(ca.ca_pem), "https_proxy": dead})
    assert res.returncode == 1 and res.stdout.startswith("UNREACHABLE: ") and f"through the proxy {dead[7:]}" in res.stdout, res.stdout


# --- pip's config files, as pip reads them ---------------------------------------------------


#: What ``pip install`` would use as its cert, asked of pip itself (its internal option parser:
#: test-only; ``pip config list`` is no oracle, pip 26 lists every file's value, not the merge).
PIP_INSTALL_CERT = "from pip._internal.commands import create_command; print(create_command('install').parse_args([])[0].cert)"


@pytest.mark.parametrize("which", ["this interpreter's pip", "newest pip"])
def test_pip_config_files_and_cert_match_real_pip(tmp_path: Path, request: pytest.FixtureRequest, which: str) -> None:
    """privpkg lists the files pip lists (``pip config debug``: the dev venv's pip, 23.2.1 here,
    and the newest) in pip's order, and picks the cert ``pip install`` would: ``[install]`` of
    any file over ``[global]`` of all, a later file over an earlier one, PIP_CERT over all."""
    python = sys.executable if which == "this interpreter's pip" else str(request.getfixturevalue("venv_bare_pip").python)
    xdg_dirs = tmp_path / "xdg"
    home = tmp_path / "home"
    env_file = tmp_path / "env-pip.conf"
    user_file = home / ".config" / "pip" / "pip.conf"
    (xdg_dirs / "pip").mkdir(parents=True)
    user_file.parent.mkdir(parents=True)
    (xdg_dirs / "pip" / "pip.conf").write_text("[global]\ncert = /global.pem\n[install]\ncert = /global-install.pem\n")
    user_file.write_text("[global]\ncert = /user.pem\n")
    env_file.write_text("[install]\ncert = /env-install.pem\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "VIRTUAL_ENV"}
    env.update(HOME=str(home), XDG_CONFIG_DIRS=str(xdg_dirs), XDG_CONFIG_HOME=str(home / ".config"))

    def run(*args: str, extra: dict[str, str]) -> str:
        return subprocess.run([python, *args], env={**env, **extra}, capture_output=True, text=True, check=True).stdout

    prefix = run("-c", "import sys; print(sys.prefix)", extra={}).strip()
    scenarios: list[tuple[dict[str, str], str | None, str]] = [
        ({}, None, "/global-install.pem"),  # [install] of the global file beats [global] of the user file
        ({}, "[download]\ncert = /download.pem\n[Install]\ncert = /cased.pem\n", "/global-install.pem"),  # not pip install's
        ({}, "[global]\ncert = /user.pem\n[install]\ncert =\n", "/user.pem"),  # an empty value erases the earlier file's
        ({}, "[install]\n--CERT = /dashes.pem\n", "/dashes.pem"),  # keys as pip normalizes them
        ({}, "[install]\ncert = /user-install.pem\n", "/user-install.pem"),  # a later file wins
        ({"PIP_CONFIG_FILE": str(env_file)}, None, "/env-install.pem"),  # and the user file is skipped
        ({"PIP_CERT": "/var.pem"}, None, "/var.pem"),
    ]
    for extra, user_text, expected in scenarios:
        if user_text:
            user_file.write_text(user_text)
        variants: dict[str, list[str]] = {}
        for line in run("-m", "pip", "config", "debug", extra=extra).splitlines():
            if not line.startswith(" "):
                kind = variants.setdefault(line.rstrip(":"), [])
            elif ", exists:" in line:
                kind.append(line.strip().split(", exists:")[0])
        # `config debug` prints the variants in its own order; pip applies them in this one.
        listed = [f for v in ("global", "user", "site", "env") for f in variants.get(v, [])]
        assert [str(p) for p in pipconfig.files({**env, **extra}, prefix)] == listed
        assert run("-c", PIP_INSTALL_CERT, extra=extra).strip() == expected
        got = http.pip_cert({**env, **extra}, prefix)
        assert got is not None and got.path == expected, (extra, got)
    assert pipconfig.files({**env, "PIP_CONFIG_FILE": os.devnull}) == []


def test_precedence_unit(tmp_path: Path) -> None:
    """The whole order in one place (in-process; files must exist to be chosen)."""
    pem = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"
    paths = {}
    for name in ("req", "curl", "pip", "ssl"):
        paths[name] = tmp_path / f"{name}.pem"
        paths[name].write_text(pem)
    full = {"REQUESTS_CA_BUNDLE": str(paths["req"]), "CURL_CA_BUNDLE": str(paths["curl"]), "PIP_CERT": str(paths["pip"]),
            "SSL_CERT_FILE": str(paths["ssl"]), "PIP_CONFIG_FILE": os.devnull}
    order = list(http.CA_VARIABLES)
    for i, var in enumerate(order):
        env = {k: v for k, v in full.items() if k not in order[:i]}
        env.update({k: "" for k in order[:i]})  # an empty variable counts as unset, as in requests
        bundle = http.ca_bundle(env)
        assert bundle is not None and bundle.source == var
    assert http.ca_bundle({"PIP_CONFIG_FILE": os.devnull}) is None


# --- the storage SDKs ------------------------------------------------------------------------


def test_azurite_through_http_proxy(cli: PrivpkgCLI, azurite: Azurite, proxy: ForwardProxy) -> None:
    """azure-core's requests transport takes HTTP_PROXY: connection test and a wheel upload to
    Azurite (127.0.0.1) go through the proxy."""
    from privpkg.testing import make_wheel

    url = azurite.create_container()
    cli.ok("connection", "set", "blob", "--category", "AzureBlob", "--target", url, stdin=azurite.key)
    via = {"HTTP_PROXY": proxy.url}
    assert _one_verdict(cli, "blob", via).returncode == 0
    assert any(s.target.startswith(f"http://127.0.0.1:{azurite.port}/{AZURITE_ACCOUNT}/") for s in proxy.seen), proxy.seen
    cli.ok("workspace", "add", "az", "--azure", url)
    wheel = make_wheel(Path(cli.env["HOME"]) / "w", "net-pkg", "1.0")
    n = len(proxy.seen)
    cli.ok("wheel", "add", wheel, "--workspace", "az", env=via)
    assert any(s.method == "PUT" for s in proxy.seen[n:]), proxy.seen[n:]


def test_moto_through_http_proxy(cli: PrivpkgCLI, moto_server: MotoServer, proxy: ForwardProxy) -> None:
    """botocore takes HTTP_PROXY: connection test of an S3 connection at moto goes through it."""
    cli.outputs.add_secret(moto_server.secret_key)
    bucket = moto_server.create_bucket()
    cli.ok("connection", "set", "s3", "--category", "S3", "--target", f"s3://{bucket}", "--endpoint", moto_server.endpoint,
           "--username", moto_server.access_key, stdin=moto_server.secret_key)
    assert _one_verdict(cli, "s3", {"HTTP_PROXY": proxy.url}).returncode == 0
    assert any(s.method == "GET" and s.target.startswith(f"http://127.0.0.1:{moto_server.port}/{bucket}") for s in proxy.seen), proxy.seen


@pytest.fixture
def tls_azurite(azurite_bin: Path, ca: PrivateCA, tmp_path: Path) -> Iterator[int]:
    """A second Azurite on https with the private CA's certificate; yields its port."""
    node = shutil.which("node")
    assert node is not None
    loc = tmp_path / "azurite-tls"
    loc.mkdir()
    proc, port = start_server(lambda p: [node, str(azurite_bin), "--blobHost", "127.0.0.1", "--blobPort", str(p), "--location", str(loc),
                                         "--cert", str(ca.cert_pem), "--key", str(ca.key_pem), "--skipApiVersionCheck", "--loose",
                                         "--silent", "--disableTelemetry"], loc / "azurite.log", "Azurite (https)")
    try:
        yield port
    finally:
        stop_process(proc)


@pytest.fixture
def tls_moto(ca: PrivateCA, tmp_path: Path) -> Iterator[int]:
    """moto's S3 server on https with the private CA's certificate; yields its port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["S3_IGNORE_SUBDOMAIN_BUCKETNAME"] = "1"  # path-style buckets also under PROXIED_HOST (moto guesses from the host)
    proc, port = start_server(lambda p: [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(p), "-c", str(ca.cert_pem),
                                         "-k", str(ca.key_pem)], tmp_path / "moto-tls.log", "moto (https)", env=env)
    try:
        yield port
    finally:
        stop_process(proc)


@pytest.mark.s3
def test_storage_sdks_trust_the_chosen_bundle_through_https_proxy(cli: PrivpkgCLI, ca: PrivateCA, proxy: ForwardProxy,
                                                                  tls_azurite: int, tls_moto: int) -> None:
    """Azurite and moto on https with the private CA, through HTTPS_PROXY (CONNECT only). Given
    as PIP_CERT, which neither azure-core nor botocore reads: OK only because privpkg passes it
    (``connection_verify=``, ``verify=``); without it, FAILED naming certificate verification."""
    import boto3

    az = f"https://127.0.0.1:{tls_azurite}/{AZURITE_ACCOUNT}"
    from azure.storage.blob import BlobServiceClient

    BlobServiceClient(az, credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY}, api_version="2025-11-05",
                      connection_verify=str(ca.ca_pem)).create_container("wheels")
    s3 = f"https://127.0.0.1:{tls_moto}"
    boto3.client("s3", endpoint_url=s3, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s",
                 verify=str(ca.ca_pem)).create_bucket(Bucket="wheels")
    moto_secret = "moto-" + secrets.token_urlsafe(16)
    cli.outputs.add_secret(moto_secret)
    cli.ok("connection", "set", "blob", "--category", "AzureBlob", "--target", az + "/wheels", stdin=AZURITE_KEY)
    cli.ok("connection", "set", "s3", "--category", "S3", "--target", "s3://wheels", "--endpoint", s3, "--username", "AKID",
           stdin=moto_secret)
    via = {"HTTPS_PROXY": proxy.url}
    for name in ("blob", "s3"):
        res = _one_verdict(cli, name, via)
        assert res.returncode == 1 and "certificate verification failed" in res.stdout, res.stdout
        res = _one_verdict(cli, name, {**via, "PIP_CERT": str(ca.ca_pem)})
        assert res.returncode == 0 and res.stdout.startswith("OK: "), res.stdout
    assert set(proxy.methods()) == {"CONNECT"}
    assert {s.target for s in proxy.seen} == {f"127.0.0.1:{tls_azurite}", f"127.0.0.1:{tls_moto}"}
    raw = proxy.raw_text()
    assert AZURITE_KEY not in raw and moto_secret not in raw


@pytest.mark.s3
def test_aws_ca_bundle_wins_for_s3(cli: PrivpkgCLI, ca: PrivateCA, tls_moto: int, tmp_path: Path) -> None:
    """boto3's own AWS_CA_BUNDLE or ``ca_bundle`` in the AWS config is the more specific setting:
    with either set (to the wrong CA), privpkg's PIP_CERT is not passed to boto3."""
    import boto3

    s3 = f"https://127.0.0.1:{tls_moto}"
    boto3.client("s3", endpoint_url=s3, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s",
                 verify=str(ca.ca_pem)).create_bucket(Bucket="wheels")
    cli.ok("connection", "set", "s3", "--category", "S3", "--target", "s3://wheels", "--endpoint", s3, "--username", "AKID",
           stdin="moto-" + secrets.token_urlsafe(16))
    good = {"PIP_CERT": str(ca.ca_pem)}
    assert _one_verdict(cli, "s3", good).returncode == 0
    res = _one_verdict(cli, "s3", {**good, "AWS_CA_BUNDLE": str(ca.other_ca_pem)})
    assert res.returncode == 1 and "certificate verification failed" in res.stdout, res.stdout
    config = tmp_path / "aws-config"
    config.write_text(f"[default]\nca_bundle = {ca.other_ca_pem}\n")
    res = _one_verdict(cli, "s3", {**good, "AWS_CONFIG_FILE": str(config)})
    assert res.returncode == 1 and "certificate verification failed" in res.stdout, res.stdout


#: How the private CA is given to ``resolve --wheelhouse`` from S3: as privpkg's own bundle (boto3
#: gets it as ``verify=``), or only as boto3's own ``AWS_CA_BUNDLE``.
WHEELHOUSE_CA = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE")


@pytest.mark.s3
@pytest.mark.parametrize("var", WHEELHOUSE_CA)
def test_wheelhouse_from_s3_through_https_proxy_with_private_ca(cli: PrivpkgCLI, ca: PrivateCA, proxy: ForwardProxy, tls_moto: int,
                                                                tmp_path: Path, var: str) -> None:
    """``resolve --wheelhouse`` from an S3 workspace on moto over https (the private CA's
    certificate) at the proxy-only name, through HTTPS_PROXY: boto3's HEAD and privpkg's own
    download of the presigned URL both reach it, so both went through the proxy, CONNECT only,
    and both trusted the CA however it was given. Before the download used the storage's CA,
    AWS_CA_BUNDLE (which boto3 honours) passed ``connection test`` and failed the download.
    With another CA: one error line, nothing in DIR. The wheel is checked against its sha256:
    a stored object swapped behind the workspace's back is refused."""
    import hashlib

    import boto3

    from privpkg.testing import make_wheel

    direct = boto3.client("s3", endpoint_url=f"https://127.0.0.1:{tls_moto}", region_name="us-east-1", aws_access_key_id="k",
                          aws_secret_access_key="s", verify=str(ca.ca_pem))
    direct.create_bucket(Bucket="wheels")
    endpoint = f"https://{PROXIED_HOST}:{tls_moto}"
    secret = "moto-" + secrets.token_urlsafe(16)
    cli.outputs.add_secret(secret)
    cli.ok("connection", "set", "s3", "--category", "S3", "--target", "s3://wheels", "--endpoint", endpoint, "--username", "AKID",
           stdin=secret)
    cli.ok("workspace", "add", "team", "--s3", "s3://wheels/pkgs", "--endpoint-url", endpoint)
    wheel = make_wheel(tmp_path / "dist", "net-pkg", "1.0")
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    good = {"HTTPS_PROXY": proxy.url, var: str(ca.ca_pem)}
    url = cli.ok("wheel", "add", wheel, "--workspace", "team", env=good).strip().splitlines()[-1]
    req = tmp_path / "requirements.txt"
    req.write_text(f"net-pkg @ {url}\n")
    house, out = tmp_path / "house", tmp_path / "out.txt"

    cli.fails(1, "resolve", "-r", req, "--wheelhouse", house, "-o", out, env={**good, var: str(ca.other_ca_pem)},
              match="certificate verification failed")
    assert not out.exists() and not any(house.glob("*.whl"))
    n = len(proxy.seen)
    cli.ok("resolve", "-r", req, "--wheelhouse", house, "-o", out, env=good)
    got = house / wheel.name
    assert hashlib.sha256(got.read_bytes()).hexdigest() == sha
    assert f"net-pkg @ {got.resolve().as_uri()}#sha256={sha}" in out.read_text().splitlines()
    assert len(proxy.seen) - n >= 2, proxy.seen[n:]  # boto3's HEAD and the download: two tunnels at least
    assert set(proxy.methods()) == {"CONNECT"} and {s.target for s in proxy.seen} == {f"{PROXIED_HOST}:{tls_moto}"}
    assert secret not in proxy.raw_text()

    got.unlink()
    direct.put_object(Bucket="wheels", Key=f"pkgs/wheels/{wheel.name}", Body=b"not the wheel", Metadata={"sha256": sha})
    cli.fails(1, "resolve", "-r", req, "--wheelhouse", house, "-o", tmp_path / "out2.txt", env=good,
              match=["does not match the sha256 recorded"])
    assert not got.exists()
