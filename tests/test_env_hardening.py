"""Issue 10's registry under stress, on the real backends (Azurite, moto's S3 server, a folder):
a cloud registry's local copies never outlive the objects they copied (a container or bucket
deleted and made again under the same name), labels moved by racing writers keep one clean
sequence, eight registrations from separate processes make one version, and a spec file that
is not UTF-8 is refused in one line (it would otherwise be screened after a lossy decode).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.cli import PrivpkgCLI
from support.storage import AZURITE_KEY, Azurite, MotoServer
from test_env_registry import store as store  # noqa: PLC0414 - the fixture (each backend), re-exported for pytest

from privpkg.environments import registry
from privpkg.environments.spec import Spec
from privpkg.storage.base import Credential, Storage


def _lock(version: str) -> str:
    """A canonical one-package lock; ``version`` of one length keeps every file's size."""
    from privpkg.environments import pylock

    return pylock.dump(pylock.load(
        f'lock-version = "1.0"\ncreated-by = "test"\n[[packages]]\nname = "requests"\nversion = "{version}"\n[[packages.wheels]]\n'
        f'url = "https://files.example/requests-{version}-py3-none-any.whl"\nhashes = {{sha256 = "{"0" * 64}"}}\n'))


def spec(*pip: str, name: str = "train") -> Spec:
    return Spec(name, python="3.11", pip=pip or ("requests>=2",), sources=(("requirements.txt", "\n".join(pip).encode()),))


CLOUD = [
    pytest.param("azure", marks=[pytest.mark.azure, pytest.mark.integration]),
    pytest.param("s3", marks=[pytest.mark.s3, pytest.mark.integration]),
]
BACKENDS = ["local", *CLOUD]


def cloud_workspace(kind: str, request: pytest.FixtureRequest) -> Callable[[], None]:
    """A workspace ``ws`` on a fresh container or bucket, with its connection; returns what
    deletes that container or bucket and makes it again, empty, under the same name."""
    import privpkg
    from privpkg.workspace import Workspace, add_workspace

    if kind == "azure":
        azurite: Azurite = request.getfixturevalue("azurite")
        url = azurite.create_container()
        name = url.rsplit("/", 1)[1]
        add_workspace(Workspace("ws", "azure", url))
        privpkg.set_connection("ws-blob", "AzureBlob", url, value=azurite.key)

        def recreate_container() -> None:
            azurite.service().delete_container(name)
            azurite.create_container(name)

        return recreate_container
    moto: MotoServer = request.getfixturevalue("moto_server")
    bucket = moto.create_bucket()
    add_workspace(Workspace("ws", "s3", f"s3://{bucket}/team", endpoint_url=moto.endpoint))
    privpkg.set_connection("s3conn", "S3", f"s3://{bucket}", value=moto.secret_key, username=moto.access_key, endpoint=moto.endpoint)

    def recreate_bucket() -> None:
        client = moto.client()
        for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
        client.delete_bucket(Bucket=bucket)
        moto.create_bucket(bucket)

    return recreate_bucket


@pytest.mark.parametrize("kind", CLOUD)
def test_a_recreated_container_or_bucket_is_read_anew(kind: str, request: pytest.FixtureRequest, isolated_privpkg: Path) -> None:
    """The copies ``CachedReads`` keeps are checked against the tag (ETag) of the listing every
    read makes anyway: after the container or bucket is deleted and made again with other
    versions under the same keys (every file of the same size, so a size check could not tell),
    the next read sees the new content, and a read again is served from the new copies."""
    from privpkg.environments.api import open_registry

    recreate = cloud_workspace(kind, request)
    _, store = open_registry("ws")
    assert isinstance(store, registry.CachedReads)
    registry.register(store, spec("requests>=2"), {"pylock.toml": _lock("2.0")}, secrets={})
    old = registry.get(store, "train")
    assert registry.get(store, "train").locks == old.locks == {"pylock.toml": _lock("2.0")}  # copies

    recreate()
    _, store = open_registry("ws")  # as the next process opens it
    new = registry.register(store, spec("requests>=3"), {"pylock.toml": _lock("3.0")}, secrets={})
    assert (new.version, new.created) == (1, True)
    assert {p: f["size"] for p, f in new.files.items()} == {p: f["size"] for p, f in old.files.items()}
    for opened in (store, open_registry("ws")[1]):
        got = registry.get(opened, "train")
        assert got.version == 1 and got.digest == new.digest
        assert got.locks == {"pylock.toml": _lock("3.0")} and got.spec.pip == ("requests>=3",)


def test_eight_racing_label_writers_make_one_clean_sequence(store: Storage) -> None:
    """Eight ``set_label`` calls on one label at once, each to its own version: the records are
    SEQ 1..8 with no gap and no duplicate, each writer's value is in exactly one of them (none
    lost), and the label's value is the last record's, one of the writers'."""
    versions = [registry.register(store, spec(f"requests>={i}"), {"pylock.toml": _lock("2.0")}, secrets={}).version
                for i in range(1, 9)]
    assert versions == list(range(1, 9))
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def one(version: int) -> None:
        try:
            barrier.wait()
            registry.set_label(store, "train", "prod", version)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    prefix = "environments/train/labels/prod/"
    records = {int(b.key[len(prefix) : -len(".json")]): json.loads(store.read_bytes(b.key))["version"]
               for b in store.list_keys(prefix)}
    assert sorted(records) == list(range(1, 9)), "one clean sequence: no gap, no duplicate"
    assert sorted(records.values()) == versions, "every writer's record, once"
    assert registry.labels(store, "train") == {"prod": records[8]}
    assert registry.get(store, "train", label="prod").version == records[8]


def _forked_registrations(n: int, make_store: Callable[[], Storage], changed: Spec, lock: str,
                          tmp_path: Path) -> list[tuple[int, bool]]:
    """``n`` registrations of ``changed``, each in its own process (forked: the SDKs are already
    imported, so a child costs no interpreter start), each with its own storage client made
    after the fork, released together once all are ready; (version, created) of each."""
    go = tmp_path / "go"
    children = []
    for i in range(n):
        ready, result = tmp_path / f"ready-{i}", tmp_path / f"result-{i}"
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                store = make_store()
                ready.write_text("")
                deadline = time.monotonic() + 60
                while not go.exists() and time.monotonic() < deadline:
                    time.sleep(0.002)
                v = registry.register(store, changed, {"pylock.toml": lock}, secrets={})
                result.write_text(json.dumps([v.version, v.created]))
                code = 0
            except BaseException as exc:  # noqa: BLE001 - reported to the parent through the file
                result.write_text(json.dumps(["error", f"{type(exc).__name__}: {exc}"]))
            finally:
                os._exit(code)
        children.append((pid, ready, result))
    try:
        deadline = time.monotonic() + 60
        while not all(ready.exists() or result.exists() for _, ready, result in children):
            assert time.monotonic() < deadline, "the children never got ready"
            time.sleep(0.01)
        go.write_text("")
        for pid, _, _ in children:
            os.waitpid(pid, 0)
    finally:
        for pid, _, _ in children:
            try:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    return [tuple(json.loads(result.read_text())) for _, _, result in children]


@pytest.mark.parametrize("kind", CLOUD)
def test_eight_registrations_in_separate_processes_make_one_version(kind: str, request: pytest.FixtureRequest,
                                                                   tmp_path: Path, isolated_privpkg: Path) -> None:
    """The concurrency rule with real processes (no shared interpreter, client or lock): eight
    registrations of one changed spec, released together, make exactly one new version; the
    service's conditional create decides."""
    make_store: Callable[[], Storage]
    if kind == "azure":
        from privpkg.storage.azure import AzureStorage

        url = request.getfixturevalue("azurite").create_container()
        make_store = lambda: AzureStorage(url, Credential("blob", AZURITE_KEY))
    else:
        from privpkg.storage.s3 import S3Storage

        moto: MotoServer = request.getfixturevalue("moto_server")
        location = f"s3://{moto.create_bucket()}/team"
        make_store = lambda: S3Storage(location, Credential("s3", moto.secret_key, moto.access_key),
                                       endpoint_url=moto.endpoint)
    store = make_store()
    registry.register(store, spec("requests>=2"), {"pylock.toml": _lock("2.0")}, secrets={})
    changed = spec("requests>=2", "attrs")
    results = _forked_registrations(8, make_store, changed, _lock("2.0"), tmp_path)
    assert sorted(results) == [(2, False)] * 7 + [(2, True)], results
    assert sorted({b.key.split("/")[2] for b in store.list_keys("environments/")}) == ["1", "2"]
    assert set(registry.get(store, "train").spec.pip) == {"requests>=2", "attrs"}


def test_a_spec_file_that_is_not_utf8_is_refused(isolated_privpkg: Path, tmp_path: Path) -> None:
    """Refused, naming the file and never its bytes, wherever it enters: ``register`` and
    ``save_to_directory`` (a Spec made in Python) and ``load_from_directory`` (a definition
    directory). UTF-16 is the case a lossy UTF-8 decode let through: every ASCII byte of the
    secret split by a NUL, the screen saw no secret and the file was stored."""
    import privpkg
    from privpkg.environments.api import Environment
    from privpkg.errors import UsageError
    from privpkg.storage.local import LocalStorage

    secret = "feed-pat-0123456789abcdef"
    store = LocalStorage(tmp_path / "ws")
    known = {secret: "connection 'feed''s secret"}
    for data in (f"--index-url https://u:{secret}@pkgs.example/simple/\nrequests\n".encode("utf-16"),
                 "requests  # caf\xe9 p\xe4ss\n".encode("latin-1")):
        bad = Spec("train", pip=("requests",), sources=(("requirements.txt", data),))
        with pytest.raises(UsageError) as info:
            registry.register(store, bad, {"pylock.toml": _lock("2.0")}, secrets=known)
        line = str(info.value)
        assert line.startswith("spec/requirements.txt is not UTF-8 text") and "\n" not in line, line
        assert store.list_keys("environments/") == [], "nothing is written"
        with pytest.raises(UsageError, match="spec/requirements.txt is not UTF-8 text"):
            Environment(bad, {}).save_to_directory(tmp_path / "saved")
        assert not (tmp_path / "saved").exists()

    good = Environment(Spec("train", pip=("requests",), sources=(("requirements.txt", b"requests\n"),)), {})
    folder = good.save_to_directory(tmp_path / "def")
    (folder / "spec" / "requirements.txt").write_bytes("requests  # caf\xe9\n".encode("latin-1"))
    with pytest.raises(privpkg.PrivpkgError, match="requirements.txt is not UTF-8 text"):
        Environment.load_from_directory(folder)


def test_env_register_of_a_directory_with_a_latin1_spec_file_is_one_line(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    """The CLI's one line names the file, never its bytes."""
    from privpkg.environments.api import Environment

    good = Environment(Spec("train", pip=("requests",), sources=(("requirements.txt", b"requests\n"),)), {})
    folder = good.save_to_directory(tmp_path / "def")
    (folder / "spec" / "requirements.txt").write_bytes("requests  # p\xe4ss-w\xf6rd\n".encode("latin-1"))
    line = privpkg_cli.fails(2, "env", "register", folder, "--workspace", "default", match=["requirements.txt", "is not UTF-8 text"])
    assert "\ufffd" not in line and "\xf6" not in line and "ss-w" not in line
