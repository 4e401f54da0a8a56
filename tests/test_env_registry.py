"""Registered environments (issue 10, items 1-2) on every storage backend: local, Azurite and
moto's S3 server. Versions are immutable and made once (eight concurrent registrations of one
changed spec make exactly one version), an unchanged spec costs two storage requests and writes
nothing, labels move, an incomplete version is one clear error until the same spec completes it,
and a definition holding a secret or a signature is refused with output that never shows it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.cli import PrivpkgCLI
from support.storage import AZURITE_KEY, Azurite, MotoServer

from privpkg.environments import registry
from privpkg.environments.spec import Spec
from privpkg.errors import NotFoundError, UsageError
from privpkg.storage.base import AlreadyExists, BlobInfo, Credential, Storage


def _lock(version: str) -> str:
    """A canonical one-package lock (as pylock.dump writes it; the registry stores locks so)."""
    from privpkg.environments import pylock

    return pylock.dump(pylock.load(
        f'lock-version = "1.0"\ncreated-by = "test"\n[[packages]]\nname = "requests"\nversion = "{version}"\n[[packages.wheels]]\n'
        f'url = "https://files.example/requests-{version}-py3-none-any.whl"\nhashes = {{sha256 = "{"0" * 64}"}}\n'))


LOCK = _lock("2.0")
LOCK_UPGRADED = _lock("2.1")
CONDA_LOCK = f"@EXPLICIT\nhttps://conda.example/conda-forge/linux-64/python-3.11.7-h0_0.conda#sha256:{'0' * 64}\n"


def spec(*pip: str, name: str = "train") -> Spec:
    return Spec(name, python="3.11", pip=pip or ("requests>=2",), variables=(("MODE", "fast"),),
                sources=(("requirements.txt", "\n".join(pip).encode()),))


BACKENDS = [
    "local",
    pytest.param("azure", marks=[pytest.mark.azure, pytest.mark.integration]),
    pytest.param("s3", marks=[pytest.mark.s3, pytest.mark.integration]),
]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, isolated_privpkg: Path) -> Storage:
    """A fresh, empty storage of each kind (a folder, an Azurite container, a moto bucket)."""
    if request.param == "local":
        from privpkg.storage.local import LocalStorage

        return LocalStorage(tmp_path / "ws")
    if request.param == "azure":
        from privpkg.storage.azure import AzureStorage

        azurite: Azurite = request.getfixturevalue("azurite")
        return AzureStorage(azurite.create_container(), Credential("blob", AZURITE_KEY))
    from privpkg.storage.s3 import S3Storage

    moto: MotoServer = request.getfixturevalue("moto_server")
    return S3Storage(f"s3://{moto.create_bucket()}/team", Credential("s3", moto.secret_key, moto.access_key),
                     endpoint_url=moto.endpoint)


class Counting:
    """A Storage that counts the calls made through it (each one request for these small
    objects and listings) and records the keys written."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.calls: list[str] = []
        self.written: list[str] = []

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.inner, name)

        def counted(*args: Any, **kw: Any) -> Any:
            self.calls.append(name)
            if name in ("put", "put_bytes", "delete"):
                self.written.append(str(args[0]))
            return fn(*args, **kw)

        return counted


def keys(store: Storage) -> list[BlobInfo]:
    return store.list_keys("environments/")


def test_conditional_create_and_read(store: Storage) -> None:
    store.put_bytes("environments/x/1/version.json", b"one")
    with pytest.raises(AlreadyExists):
        store.put_bytes("environments/x/1/version.json", b"two")
    assert store.read_bytes("environments/x/1/version.json") == b"one"
    with pytest.raises(NotFoundError):
        store.read_bytes("environments/x/2/version.json")
    assert [(b.key, b.size) for b in store.list_keys("environments/x/")] == [("environments/x/1/version.json", 3)]


def test_s3_wheel_upload_is_conditional_past_its_head_check(moto_server: MotoServer, isolated_privpkg: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """S3Storage.put's HEAD is a shortcut; the guarantee is the conditional write, for a single
    PutObject and for a multipart upload's CompleteMultipartUpload (9 MiB > the 8 MiB threshold)."""
    import hashlib
    import os

    from privpkg.storage.s3 import S3Storage

    store = S3Storage(f"s3://{moto_server.create_bucket()}", Credential("s3", moto_server.secret_key, moto_server.access_key),
                      endpoint_url=moto_server.endpoint)
    for size in (10, 9 << 20):
        f = tmp_path / f"x-{size}.whl"
        f.write_bytes(os.urandom(size))
        sha = hashlib.sha256(f.read_bytes()).hexdigest()
        store.put(f.name, f, sha)
        with monkeypatch.context() as m:
            m.setattr(store, "head", lambda key: None)  # a racing writer: the HEAD saw nothing
            with pytest.raises(AlreadyExists):
                store.put(f.name, f, "0" * 64)
        info = store.head(f.name)
        assert info is not None and info.sha256 == sha, "the first upload stays"


def test_register_version_label_get_list(store: Storage) -> None:
    v1 = registry.register(store, spec("requests>=2"), {"pylock.toml": LOCK})
    assert (v1.version, v1.created) == (1, True)
    before = keys(store)
    assert {b.key for b in before} == {f"environments/train/1/{p}" for p in
                                        ("version.json", "definition.json", "spec/requirements.txt", "pylock.toml")}
    record = json.loads(store.read_bytes("environments/train/1/version.json"))
    assert set(record["files"]) == {"definition.json", "spec/requirements.txt", "pylock.toml"}

    again = registry.register(store, spec("requests>=2"), {"pylock.toml": LOCK})
    assert (again.version, again.created, again.digest) == (1, False, v1.digest)
    assert keys(store) == before  # nothing written
    assert registry.find_unchanged(store, spec("requests>=2")) is not None

    v2 = registry.register(store, spec("requests>=2", "attrs"), {"pylock.toml": LOCK})
    assert (v2.version, v2.created) == (2, True)
    v3 = registry.register(store, spec("requests>=2", "attrs"), {"pylock.toml": LOCK_UPGRADED})
    assert (v3.version, v3.created) == (3, True), "a changed lock makes a version"
    assert registry.find_unchanged(store, spec("requests>=2")) is None

    latest = registry.get(store, "train")
    assert latest.version == 3 and latest.locks == {"pylock.toml": LOCK_UPGRADED}
    assert latest.spec.definition() == spec("requests>=2", "attrs").definition()
    first = registry.get(store, "train", 1)
    assert first.spec.definition()["pip"] == ["requests>=2"] and first.spec.sources == (("requirements.txt", b"requests>=2"),)
    with pytest.raises(UsageError, match="other content"):
        registry.get(store, "train", 1, digest=v2.digest)
    with pytest.raises(UsageError, match="exists with other content"):
        registry.register(store, spec("requests>=3"), {"pylock.toml": LOCK}, version=1)
    assert registry.register(store, spec("requests>=2"), {"pylock.toml": LOCK}, version=1).version == 1
    with pytest.raises(NotFoundError, match="no version 9"):
        registry.get(store, "train", 9)

    registry.set_label(store, "train", "prod", 1)
    assert registry.get(store, "train", label="prod").version == 1
    registry.set_label(store, "train", "prod", 2)
    assert registry.labels(store, "train") == {"prod": 2}
    registry.set_label(store, "train", "prod", None)
    assert registry.labels(store, "train") == {}
    with pytest.raises(NotFoundError, match="no label 'prod'"):
        registry.get(store, "train", label="prod")
    with pytest.raises(UsageError, match="invalid label"):
        registry.set_label(store, "train", "latest", 1)

    with pytest.raises(UsageError, match=r"needs its pip lock \(pylock.toml\)"):
        registry.register(store, spec("numpy", name="other"), {})
    conda_only = Spec("other", conda=("python=3.11",))
    with pytest.raises(UsageError, match="needs a conda lock"):
        registry.register(store, conda_only, {"pylock.toml": LOCK})
    registry.register(store, conda_only, {"conda-linux-64.txt": "@EXPLICIT\n"})
    assert {n: v.version for n, v in registry.list_environments(store).items()} == {"train": 3, "other": 1}


def test_unchanged_spec_costs_two_requests_and_writes_nothing(store: Storage) -> None:
    registry.register(store, spec("requests>=2"), {"pylock.toml": LOCK})
    counted = Counting(store)
    again = registry.register(counted, spec("requests>=2"), {"pylock.toml": LOCK}, secrets={})  # type: ignore[arg-type]
    assert again.version == 1 and not again.created
    assert counted.calls == ["list_keys", "read_bytes"] and counted.written == []
    counted.calls.clear()
    assert registry.find_unchanged(counted, spec("requests>=2")) is not None  # type: ignore[arg-type]
    assert len(counted.calls) == 2


def test_unchanged_spec_on_s3_is_two_http_requests(moto_server: MotoServer, isolated_privpkg: Path) -> None:
    """The same count seen on the wire: botocore's own before-send events."""
    from privpkg.storage.s3 import S3Storage

    store = S3Storage(f"s3://{moto_server.create_bucket()}", Credential("s3", moto_server.secret_key, moto_server.access_key),
                      endpoint_url=moto_server.endpoint)
    registry.register(store, spec("requests>=2"), {"pylock.toml": LOCK})
    sent: list[str] = []
    store._s3().meta.events.register("before-send.s3", lambda request, **_: sent.append(request.method))
    registry.register(store, spec("requests>=2"), {"pylock.toml": LOCK}, secrets={})
    assert sent == ["GET", "GET"], sent  # ListObjectsV2, GetObject


def test_a_cloud_registry_read_again_costs_one_listing(moto_server: MotoServer, isolated_privpkg: Path) -> None:
    """``get`` of a version (what ``env build NAME`` does before its cache hit) through the
    cloud registry that ``open_registry`` gives: the first time a listing and the reads; then
    only the listing (botocore's own before-send events): every registry object is immutable,
    so it is read once per machine. A version registered later is still found."""
    import privpkg
    from privpkg.environments.api import open_registry
    from privpkg.workspace import Workspace, add_workspace

    bucket = moto_server.create_bucket()
    add_workspace(Workspace("s3ws", "s3", f"s3://{bucket}", endpoint_url=moto_server.endpoint))
    privpkg.set_connection("s3conn", "S3", f"s3://{bucket}", value=moto_server.secret_key, username=moto_server.access_key,
                           endpoint=moto_server.endpoint)
    _, store = open_registry("s3ws")
    assert isinstance(store, registry.CachedReads)
    registry.register(store, spec("requests>=2"), {"pylock.toml": LOCK}, secrets={})
    sent: list[str] = []
    store.store._s3().meta.events.register("before-send.s3", lambda request, **_: sent.append(request.method))  # type: ignore[attr-defined]
    first = registry.get(store, "train")  # type: ignore[arg-type]
    assert len(sent) > 1
    sent.clear()
    again = registry.get(store, "train")  # type: ignore[arg-type]
    assert sent == ["GET"] and again.locks == first.locks == {"pylock.toml": LOCK}, sent  # ListObjectsV2 only
    registry.register(store, spec("requests>=2", "attrs"), {"pylock.toml": LOCK_UPGRADED}, secrets={})  # type: ignore[arg-type]
    assert registry.get(store, "train").version == 2  # type: ignore[arg-type]


def test_eight_concurrent_registrations_make_one_version(store: Storage) -> None:
    registry.register(store, spec("requests>=2"), {"pylock.toml": LOCK})
    changed = spec("requests>=2", "attrs")
    barrier = threading.Barrier(8)
    results: list[registry.Version] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait()
            results.append(registry.register(store, changed, {"pylock.toml": LOCK}, secrets={}))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sorted(r.version for r in results) == [2] * 8
    assert sum(r.created for r in results) == 1
    versions = sorted({b.key.split("/")[2] for b in keys(store)})
    assert versions == ["1", "2"]
    assert registry.get(store, "train").version == 2


def test_incomplete_version_is_an_error_until_registered_again(store: Storage) -> None:
    registry.register(store, spec("requests>=2"), {"pylock.toml": LOCK})
    # A writer that died after its claim: version.json of v2 written, its files not.
    files = registry.version_files(spec("attrs"), {"pylock.toml": LOCK})
    record = registry._record("train", 2, files)
    store.put_bytes("environments/train/2/version.json", registry.canonical_json(record))
    with pytest.raises(registry.IncompleteVersion, match="train:2 is incomplete"):
        registry.get(store, "train", 2)
    assert registry.get(store, "train").version == 1, "latest is the highest complete version"
    with pytest.raises(registry.IncompleteVersion):
        registry.set_label(store, "train", "prod", 2)
    done = registry.register(store, spec("attrs"), {"pylock.toml": LOCK})
    assert done.version == 2
    assert registry.get(store, "train", 2).locks == {"pylock.toml": LOCK}


@pytest.mark.parametrize(("where", "value", "what"), [
    ("variable", "Zm9vYmFyLXN0b3JlZC1zZWNyZXQ", "the secret of connection 'feed'"),
    ("pip", "pkg @ https://acct.blob.core.windows.net/c/pkg-1.0-py3-none-any.whl?sv=2024-01-01&sig=c2lnbmF0dXJl", "a signature (sig=)"),
    ("pip", "--extra-index-url https://user:hunter2222@pkgs.example.com/simple/", "a password in user info"),
    ("lock", 'url = "https://b.s3.amazonaws.com/k.whl?X-Amz-Signature=abcdef0123"', "an X-Amz-Signature"),
])
def test_definitions_with_secrets_are_refused(store: Storage, where: str, value: str, what: str) -> None:
    from privpkg.connections import set_connection

    set_connection("feed", "PythonFeed", "https://pkgs.example.com/", "PAT", value="Zm9vYmFyLXN0b3JlZC1zZWNyZXQ")
    bad = Spec("train", variables=(("MODE", value),)) if where == "variable" else spec(value) if where == "pip" else spec()
    locks = {"pylock.toml": LOCK + value + "\n"} if where == "lock" else {}
    with pytest.raises(UsageError) as info:
        registry.register(store, bad, locks)
    line = str(info.value)
    assert what in line and "\n" not in line
    for part in ("Zm9vYmFyLXN0b3JlZC1zZWNyZXQ", "c2lnbmF0dXJl", "hunter2222", "abcdef0123"):
        assert part not in line
    assert keys(store) == [], "nothing is written"


def make_cli_workspace(cli: PrivpkgCLI, kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if kind == "local":
        cli.ok("workspace", "add", "ws", "--local", str(tmp_path / "ws"))
    elif kind == "azure":
        azurite: Azurite = request.getfixturevalue("azurite")
        cli.outputs.add_secret(azurite.key)
        url = azurite.create_container()
        cli.ok("workspace", "add", "ws", "--azure", url)
        cli.ok("connection", "set", "ws-blob", "--category", "AzureBlob", "--target", url, stdin=azurite.key + "\n")
    else:
        moto: MotoServer = request.getfixturevalue("moto_server")
        cli.outputs.add_secret(moto.secret_key)
        bucket = moto.create_bucket()
        cli.ok("workspace", "add", "ws", "--s3", f"s3://{bucket}/team", "--endpoint-url", moto.endpoint)
        cli.ok("connection", "set", "s3conn", "--category", "S3", "--target", f"s3://{bucket}", "--username", moto.access_key,
               "--endpoint", moto.endpoint, stdin=moto.secret_key + "\n")


@pytest.fixture
def cli_on(privpkg_cli: PrivpkgCLI, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], PrivpkgCLI]]:
    def make(kind: str) -> PrivpkgCLI:
        make_cli_workspace(privpkg_cli, kind, request, tmp_path)
        return privpkg_cli

    yield make
    privpkg_cli.outputs.check()


CLI_BACKENDS = [
    "local",
    pytest.param("azure", marks=[pytest.mark.azure, pytest.mark.integration]),
    pytest.param("s3", marks=[pytest.mark.s3, pytest.mark.integration]),
]


@pytest.mark.parametrize("kind", CLI_BACKENDS)
def test_cli_create_register_list_show_label(cli_on: Callable[[str], PrivpkgCLI], kind: str, tmp_path: Path) -> None:
    cli = cli_on(kind)
    feed_secret = "feed-pat-" + "7" * 20
    cli.outputs.add_secret(feed_secret)
    cli.ok("connection", "set", "feed", "--target", "https://pkgs.example.com/org/", stdin=feed_secret + "\n")
    env_file = tmp_path / "environment.yml"
    env_file.write_text("channels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip:\n    - requests>=2\n"
                        "variables:\n  HF_TOKEN: public-model-id\n")
    res = cli("env", "create", "train", "--file", env_file, "-o", tmp_path / "d1", "-w", "ws")
    assert res.returncode == 0, res.stderr
    assert res.stderr == "privpkg: warning: variable HF_TOKEN looks like a secret; its value is stored in the workspace as written\n"
    (tmp_path / "d1" / "pylock.toml").write_text(LOCK)
    cli.fails(2, "env", "register", tmp_path / "d1", "-w", "ws", match="needs a conda lock (conda-PLATFORM.txt)")
    (tmp_path / "d1" / "conda-linux-64.txt").write_text(CONDA_LOCK)
    assert "registered train:1 in workspace 'ws'" in cli.ok("env", "register", tmp_path / "d1", "-w", "ws")
    assert "train:1 is unchanged in workspace 'ws'; nothing was written" in cli.ok("env", "register", tmp_path / "d1", "-w", "ws")
    env_file.write_text(env_file.read_text().replace("requests>=2", "requests>=2.31"))
    cli.ok("env", "create", "train", "--file", env_file, "-o", tmp_path / "d1", "--force")
    (tmp_path / "d1" / "pylock.toml").write_text(LOCK)
    (tmp_path / "d1" / "conda-linux-64.txt").write_text(CONDA_LOCK)
    assert "registered train:2" in cli.ok("env", "register", tmp_path / "d1", "-w", "ws")
    assert json.loads(cli.ok("env", "list", "--json", "-w", "ws"))[0] | {"digest": ""} == {"name": "train", "version": 2, "digest": "",
                                                                                         "labels": {}}
    assert "label 'prod' of train now points at train:1" in cli.ok("env", "label", "train:1", "prod", "-w", "ws")
    # env list: each label and the version it points at, in the table and in --json.
    assert json.loads(cli.ok("env", "list", "--json", "-w", "ws"))[0]["labels"] == {"prod": 1}
    listed = cli.ok("env", "list", "-w", "ws").splitlines()
    assert listed[0].split() == ["NAME", "LATEST", "DIGEST", "LABELS"] and listed[1].split()[-1] == "prod=1", listed
    shown = json.loads(cli.ok("env", "show", "train@prod", "--json", "-w", "ws"))
    assert shown["version"] == 1 and shown["labels"] == ["prod"] and shown["definition"]["pip"] == ["requests>=2"]
    assert set(shown["files"]) == {"definition.json", "spec/environment.yml", "pylock.toml", "conda-linux-64.txt"}
    text = cli.ok("env", "show", "train", "-w", "ws")
    assert text.startswith("train:2  digest ") and "  requests>=2.31" in text
    (tmp_path / "d1" / "pylock.toml").write_text(LOCK + 'url = "https://acct.blob.core.windows.net/c/x.whl?sv=1&sig=c2lnLXZhbHVl"\n')
    cli.fails(2, "env", "register", tmp_path / "d1", "-w", "ws", match="pylock.toml holds a signature (sig=)")
    assert "c2lnLXZhbHVl" not in cli.outputs.text()
    if kind != "local":  # the rest is the same code on every backend; cloud CLI calls cost ~2 s each
        return
    cli.ok("env", "label", "train", "prod", "--remove", "-w", "ws")
    cli.fails(1, "env", "show", "train@prod", "-w", "ws", match="has no label 'prod'")
    cli.fails(2, "env", "show", "train:0", "-w", "ws", match="invalid version")
    cli.fails(1, "env", "show", "nope", "-w", "ws", match="no environment 'nope' in workspace 'ws' (see: privpkg env list --workspace ws)")
    assert [e["version"] for e in json.loads(cli.ok("env", "list", "--json", "-w", "ws"))] == [2]

    # A definition holding the feed's PAT, or a signed URL, is refused before anything is written.
    env_file.write_text(f"dependencies:\n  - pip:\n    - --extra-index-url https://u:{feed_secret}@pkgs.example.com/org/simple/\n")
    cli.fails(2, "env", "create", "bad", "--file", env_file, "-o", tmp_path / "d2",
              match=f"{env_file}, line 3 holds the secret of connection 'feed'")
    assert not (tmp_path / "d2").exists()


def test_python_api(isolated_privpkg: Path, tmp_path: Path) -> None:
    import privpkg
    from privpkg.workspace import Workspace, add_workspace

    add_workspace(Workspace("ws", "local", str(tmp_path / "ws")))
    req = tmp_path / "requirements.txt"
    req.write_text("requests>=2\n")
    env = privpkg.Environment.from_pip_requirements("train", req)
    env.locks = {"pylock.toml": LOCK}  # given: locking itself is tests/test_env_locks.py's
    assert env.register("ws").version == 1 and env.created
    from privpkg.environments import api

    counted: list[Counting] = []
    real = api.open_registry

    def counting(workspace: Any) -> Any:
        ws, store = real(workspace)
        counted.append(Counting(store))
        return ws, counted[-1]

    with pytest.MonkeyPatch.context() as m:
        m.setattr(api, "open_registry", counting)
        again = privpkg.Environment.from_pip_requirements("train", req).register("ws")  # unchanged: no lock needed
    assert (again.version, again.created) == (1, False)
    assert counted[0].calls == ["list_keys", "read_bytes"] and counted[0].written == []
    got = privpkg.Environment.get("ws", "train")
    assert got.version == 1 and got.spec.definition() == env.spec.definition()
    got.set_label("ws", "prod")
    assert privpkg.Environment.get("ws", "train", label="prod").version == 1
    listed = privpkg.Environment.list("ws")
    assert {n: e.version for n, e in listed.items()} == {"train": 1}
    assert listed["train"].spec.definition() == env.spec.definition()
    saved = got.save_to_directory(tmp_path / "dir")
    loaded = privpkg.Environment.load_from_directory(saved)
    assert loaded.spec == got.spec and loaded.locks == got.locks
    # The version a caller holds is asserted: other content under it is an error, never a reuse.
    from privpkg.environments.spec import Spec

    changed = privpkg.Environment(Spec("train", pip=("requests>=3",)), {"pylock.toml": LOCK}, version=1)
    with pytest.raises(privpkg.PrivpkgError, match="exists with other content"):
        changed.register("ws")
    with pytest.raises(privpkg.PrivpkgError, match="has no lock yet"):
        privpkg.Environment(Spec("train", pip=("requests>=3",))).build_local()
    with pytest.raises(privpkg.PrivpkgError, match="exists"):
        got.save_to_directory(tmp_path / "dir")


def test_python_api_warns_about_token_like_variable_names(isolated_privpkg: Path, tmp_path: Path) -> None:
    """``register`` and ``save_to_directory`` warn as the CLI does: a UserWarning subclass, one
    per variable name that looks like a secret's (a name given twice warns once), pointing at
    the caller's line; a harmless name does not warn."""
    import warnings

    import privpkg
    from privpkg.environments.api import SecretLikeVariableWarning
    from privpkg.workspace import Workspace, add_workspace

    add_workspace(Workspace("ws", "local", str(tmp_path / "ws")))
    env = privpkg.Environment(Spec("train", pip=("requests>=2",), variables=(("HF_TOKEN", "public-model"), ("MODE", "fast"),
                                                                                ("DB_PASSWORD", "x"))), {"pylock.toml": LOCK})
    assert issubclass(SecretLikeVariableWarning, UserWarning)
    for call in (lambda: env.register("ws"), lambda: env.register("ws"), lambda: env.save_to_directory(tmp_path / "d", overwrite=True)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        assert sorted((w.category, str(w.message).split()[1], Path(w.filename).name) for w in caught) == [
            (SecretLikeVariableWarning, "DB_PASSWORD", "test_env_registry.py"),
            (SecretLikeVariableWarning, "HF_TOKEN", "test_env_registry.py")]
    twice = privpkg.Environment(Spec("twice", pip=("requests>=2",), variables=(("API_KEY", "a"), ("API_KEY", "b"))), {"pylock.toml": LOCK})
    with pytest.warns(SecretLikeVariableWarning) as caught2:
        twice.register("ws")
    assert [str(w.message).split()[1] for w in caught2] == ["API_KEY"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all for a harmless name
        privpkg.Environment(Spec("calm", pip=("requests>=2",), variables=(("MODE", "fast"),)), {"pylock.toml": LOCK}).register("ws")


def readme_environment_commands() -> list[str]:
    """The commands of the README's Environments block (comment lines and aligned trailing
    comments dropped, as tests/test_readme_use_it.py reads its blocks)."""
    import re

    text = (Path(__file__).parent.parent / "README.md").read_text()
    section = text.split("\n## Environments\n", 1)[1].split("\n## ", 1)[0]
    block = re.findall(r"```sh\n(.*?)\n```", section, re.DOTALL)[0]
    return [c for c in (re.sub(r"\s{2,}#.*$", "", line).strip() for line in block.splitlines()) if c and not c.startswith("#")]


def test_readme_environment_commands_are_real() -> None:
    import shlex

    from privpkg.cli import build_parser

    cmds = readme_environment_commands()
    assert [c.split()[:3] for c in cmds if c.startswith("privpkg env")] == [
        ["privpkg", "env", v] for v in ("create", "register", "register", "label", "show", "show", "list")]
    for cmd in cmds:
        if cmd.startswith("privpkg "):
            args = build_parser().parse_args(shlex.split(cmd)[1:])
            assert callable(args.func), cmd


def test_readme_reference_has_a_row_for_every_env_verb_and_says_locks_are_canonical() -> None:
    """The Reference table names every ``privpkg env`` verb the CLI has (a row's first command or
    one after a ``/``), and neither the README nor ``env register --help`` says brought locks are
    stored "as they are": the registry stores them in canonical form."""
    import re

    from privpkg.cli import build_parser

    parser = build_parser()
    env = next(a for a in parser._subparsers._group_actions[0].choices["env"]._actions  # type: ignore[union-attr]
               if getattr(a, "choices", None))
    text = (Path(__file__).parent.parent / "README.md").read_text()
    reference = text.split("\n## Reference", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ")[0] for line in reference.splitlines() if line.startswith("| `privpkg env ")]
    named = {m for row in rows for m in re.findall(r"(?:`privpkg env |/ `)([a-z]+)", row)}
    assert named >= set(env.choices), sorted(set(env.choices) - named)
    register_help = env.choices["register"].format_help()
    specs = text.split("\n### Specs, versions and labels\n", 1)[1].split("\n### ", 1)[0]
    for where, said in (("README's Specs", specs), ("env register --help", register_help)):
        flat = " ".join(said.split())
        assert "as they are" not in flat and "canonical form" in flat, where


def test_readme_environments_as_written(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    """The README's flow, command by command. Its requirements file names ``requests>=2``; no
    test reaches PyPI, so pip (which ``env register`` runs to lock) finds ``requests`` on a
    loopback find-links page instead (PIP_NO_INDEX and PIP_FIND_LINKS in the environment)."""
    import functools
    import os
    import shlex
    from http.server import SimpleHTTPRequestHandler

    from support.feeds import ServedHTTP

    from privpkg.testing import make_wheel

    cwd = tmp_path / "project"
    cwd.mkdir()
    make_wheel(tmp_path / "links", "requests", "2.99")
    served = ServedHTTP(functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "links")))
    pip_env = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": served.base + "/"}
    try:
        for cmd in readme_environment_commands():
            if cmd.startswith("printf"):
                privpkg_cli.tool(["bash", "-c", cmd], cwd=cwd)
                continue
            res = privpkg_cli(*shlex.split(cmd)[1:], cwd=cwd, env=pip_env)
            assert res.returncode == 0, f"{cmd}\n{res.stdout}{res.stderr}"
    finally:
        served.stop()
    out = privpkg_cli.outputs.text()
    assert "train:1 is unchanged" in out and os.path.isdir(cwd / "team-workspace" / "environments" / "train" / "1")
    lock = (cwd / "team-workspace" / "environments" / "train" / "1" / "pylock.toml").read_text()
    assert 'name = "requests"' in lock and 'version = "2.99"' in lock, lock
    privpkg_cli.outputs.check()


def test_create_from_a_conda_environment_by_name(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    """``env create --conda-env NAME``: found in CONDA_ENVS_PATH as conda finds it; its records
    (conda 26's, tests/unit/data/conda-meta) name a channel with a token, which no output holds."""
    import shutil

    prefix = tmp_path / "envs" / "wl"
    (prefix / "conda-meta").mkdir(parents=True)
    for f in (Path(__file__).parent / "unit" / "data" / "conda-meta").glob("*.json"):
        shutil.copy(f, prefix / "conda-meta" / f.name)
    privpkg_cli.outputs.add_secret("tk-SECRET123")
    out = privpkg_cli.ok("env", "create", "train", "--conda-env", "wl", "-o", tmp_path / "d", env={"CONDA_ENVS_PATH": str(tmp_path / "envs")})
    assert "wrote the definition of train" in out
    text = (tmp_path / "d" / "definition.json").read_text()
    privpkg_cli.outputs.add("definition.json", text)
    assert json.loads(text)["conda"] == {"channels": ["https://conda.example.com/team"],
                                         "dependencies": ["pip==26.3=pyh8751d1db_0", "python==3.11.7=h608417e7_0"]}
    privpkg_cli.fails(1, "env", "create", "x", "--conda-env", "nope", "-o", tmp_path / "e", env={"CONDA_ENVS_PATH": str(tmp_path / "envs")},
                      match="no conda environment named 'nope'")
    privpkg_cli.outputs.check()
