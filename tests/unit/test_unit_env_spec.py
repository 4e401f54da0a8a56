"""privpkg.environments.spec: the canonical definition (what makes two specs the same version),
references, and privpkg.environments.screen: what a definition may never hold."""

from __future__ import annotations

import json
import sys

import pytest

from privpkg import envvars
from privpkg.environments import screen
from privpkg.environments.spec import Spec, load_definition, parse_ref, parse_target
from privpkg.errors import UsageError


def test_definition_is_canonical() -> None:
    a = Spec("train", python="3.11", pip=("Requests >= 2", "--index-url https://a.example/simple/", "attrs",
                                          "--extra-index-url https://b.example/simple/"),
             channels=("conda-forge", "defaults"), conda=("numpy  1.26.*", "python=3.11"), variables=(("B", "2"), ("A", "1")))
    b = Spec("train", python="3.11", pip=("attrs", "--index-url  https://a.example/simple/", "requests>=2",
                                          "--extra-index-url https://b.example/simple/"),
             channels=("conda-forge", "defaults"), conda=("python=3.11", "numpy 1.26.*"), variables=(("A", "1"), ("B", "2")),
             sources=(("environment.yml", b"# comments are not part of the definition\n"),))
    assert a.definition_bytes() == b.definition_bytes() and a.digest() == b.digest()
    doc = json.loads(a.definition_bytes())
    assert doc["pip"] == ["--index-url https://a.example/simple/", "--extra-index-url https://b.example/simple/", "attrs", "requests>=2"]
    raw = a.definition_bytes()
    assert raw.startswith(b'{"conda":{"channels":') and raw.endswith(b"}\n") and b'", "' not in raw and b'": ' not in raw
    # Order that matters changes the digest: channels (priority) and options.
    assert Spec("train", channels=("defaults", "conda-forge")).digest() != Spec("train", channels=("conda-forge", "defaults")).digest()
    assert Spec("train", pip=("x",)).digest() != Spec("train", pip=("x==1",)).digest()
    assert load_definition(a.definition_bytes()).definition() == a.definition()


@pytest.mark.parametrize("bad", ["", "-x", "a/b", "labels", "a" * 64, "a\nb"])
def test_bad_names(bad: str) -> None:
    with pytest.raises(UsageError, match="invalid environment name"):
        Spec(bad)


def test_bad_requirement_is_one_line() -> None:
    with pytest.raises(UsageError, match="not a requirement") as info:
        Spec("x", pip=("requests >>= 2",))
    assert "\n" not in str(info.value)


def test_refs() -> None:
    assert parse_ref("train:12") == ("train", 12)
    assert parse_ref("train:latest") == ("train", None)
    assert parse_target("train@prod") == ("train", None, "prod")
    for bad in ("train:0", "train:01", "train:-1", "train:x", "train@latest", "train@Prod", ":1"):
        with pytest.raises(UsageError):
            parse_target(bad)


SECRET = "pat-0123456789abcdef"


@pytest.mark.parametrize(("text", "found"), [
    (f"--extra-index-url https://u:{SECRET}@pkgs.example/simple/", "connection 'feed''s secret"),
    ("pkg @ https://a.blob.core.windows.net/c/p.whl?sv=2024-05-04&sr=b&sig=abc%2Fdef", "a signature (sig=)"),
    ("pkg @ https://b.s3.amazonaws.com/p.whl?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=0a1b", "an X-Amz-Signature"),
    ("pkg @ https://b.s3.amazonaws.com/p.whl?AWSAccessKeyId=AK&Expires=1&Signature=abc", "a signature (Signature=)"),
    ("https://user:pw-not-known@pkgs.example/simple/", "a password in user info"),
    ("https://conda.anaconda.org/t/tk-0123/team", "a channel token (/t/...)"),
    ("https://user:pw%40x@pkgs.example/simple/", "a password in user info"),
    (f"value {SECRET.upper()} differs in case", None),
    ("https://__token__:${PAT}@pkgs.example/simple/", None),
    ("https://__token__@pkgs.example/simple/", None),
    ("requests>=2 ; python_version >= '3.11'", None),
])
def test_find_secret(text: str, found: str | None) -> None:
    assert screen.find_secret(text, {SECRET: "connection 'feed''s secret"}) == found


def test_known_secrets_come_from_every_connection(isolated_privpkg: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from privpkg.connections import set_connection

    set_connection("blob", "AzureBlob", "https://acct.blob.core.windows.net/c", "PAT",
                   value="DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5LWtleS1rZXk=;EndpointSuffix=core.windows.net")
    monkeypatch.setenv(envvars.CONNECTIONS, json.dumps([{"name": "ci", "target": "https://ci.example/", "secret": "ci-secret-value"}]))
    known = screen.known_secrets()
    assert known["a2V5LWtleS1rZXk="] == "the secret of connection 'blob'" and known["ci-secret-value"] == "the secret of connection 'ci'"
    with pytest.raises(UsageError) as info:
        screen.refuse("MODE=a2V5LWtleS1rZXk=", "definition.json")
    assert "the secret of connection 'blob'" in str(info.value) and "a2V5" not in str(info.value)


def test_token_like_variable_names() -> None:
    names = ["HF_TOKEN", "GITHUB_PAT", "DB_PASSWORD", "API_KEY", "MY_SECRET", "PIP_KEYRING_PROVIDER", "KEYRING", "PATH", "OMP_NUM_THREADS"]
    assert [line.split()[1] for line in screen.suspicious_variables(names)] == ["HF_TOKEN", "GITHUB_PAT", "DB_PASSWORD", "API_KEY", "MY_SECRET"]


def test_import_privpkg_does_not_import_environments() -> None:
    import subprocess

    code = "import sys, privpkg; print(sorted(m for m in sys.modules if m.startswith('privpkg.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "environments" not in out, out
    code = "import sys, privpkg; privpkg.Environment; print('privpkg.environments.api' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "True"


def test_platforms_are_rattlers() -> None:
    """A well-formed but unknown platform (``foo-bar``) is refused in one line before any lock
    asks a channel for it; the list is py-rattler's, without noarch."""
    import rattler

    from privpkg.environments import spec as spec_module
    from privpkg.errors import UsageError

    assert spec_module.PLATFORMS == {str(p) for p in rattler.Platform.all()} - {"noarch"}
    for bad in ("foo-bar", "noarch", "linux-65", "../x"):
        with pytest.raises(UsageError, match="not a conda platform"):
            spec_module.validate_platform(bad)
    assert spec_module.validate_platform("osx-arm64") == "osx-arm64"
