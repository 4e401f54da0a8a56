"""The encrypted store: format, key handling, damage detection, permissions, atomic locked writes."""

from __future__ import annotations

import base64
import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from privpkg import connections, envvars
from privpkg.errors import NotFoundError, StoreError, UsageError
from privpkg.vault import MAGIC, Vault

PAT = "vault-test-PAT-0123456789"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(envvars.HOME, str(tmp_path / "home"))
    monkeypatch.delenv(envvars.MASTER_KEY, raising=False)
    monkeypatch.delenv(envvars.CONNECTIONS, raising=False)
    return tmp_path / "home"


def _store_one(name: str = "feed", secret: str = PAT) -> None:
    connections.set_connection(name, "PythonFeed", f"https://h.example/{name}", "PAT", value=secret)


def test_store_is_encrypted_and_private(home: Path) -> None:
    _store_one()
    store = home / "connections.store"
    key = home / "master.key"
    blob = store.read_bytes()
    assert blob.startswith(MAGIC)
    assert PAT.encode() not in blob and b"h.example" not in blob
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(base64.urlsafe_b64decode(key.read_text().strip())) == 32
    assert connections.get_connection("feed").secret == PAT


def test_no_store_means_empty_and_no_key_created(home: Path) -> None:
    assert Vault().load() == {}
    assert connections.list_connections() == []
    assert not (home / "master.key").exists()


def test_backup_is_the_last_verified_version(home: Path) -> None:
    """The backup is the version just written and read back, not the one before it (which would
    keep a deleted or rotated secret, see test_files.py); it restores a damaged store."""
    _store_one("a")
    _store_one("b", "other-secret-xyz")
    store, bak = home / "connections.store", home / "connections.store.bak"
    assert bak.read_bytes() == store.read_bytes()
    assert stat.S_IMODE(bak.stat().st_mode) == 0o600
    store.write_bytes(store.read_bytes()[:-3])  # damage the store; the backup restores it
    with pytest.raises(StoreError, match="cannot decrypt"):
        connections.list_connections()
    bak.replace(store)
    assert {c.name for c in connections.list_connections()} == {"a", "b"}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[: len(MAGIC) + 5], "truncated"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "cannot decrypt"),
        (lambda b: b[:40] + bytes([b[40] ^ 0x80]) + b[41:], "cannot decrypt"),
        (lambda b: b"PK\x03\x04 this is a zip file, not a store", "not a privpkg store"),
        (lambda b: b"", "not a privpkg store"),
    ],
)
def test_damaged_store_is_refused_and_never_overwritten(home: Path, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    _store_one()
    store = home / "connections.store"
    bad = damage(store.read_bytes())
    store.write_bytes(bad)
    with pytest.raises(StoreError, match=message) as exc:
        connections.list_connections()
    assert PAT not in str(exc.value)
    with pytest.raises(StoreError):
        _store_one("second")
    assert store.read_bytes() == bad, "a store that could not be read was overwritten"


def test_wrong_master_key_from_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(envvars.MASTER_KEY, base64.b64encode(os.urandom(32)).decode())
    _store_one()
    before = (home / "connections.store").read_bytes()
    monkeypatch.setenv(envvars.MASTER_KEY, os.urandom(32).hex())
    with pytest.raises(StoreError, match=r"cannot decrypt .* \$PRIVPKG_MASTER_KEY"):
        connections.get_connection("feed")
    with pytest.raises(StoreError):
        _store_one("x")
    assert (home / "connections.store").read_bytes() == before
    assert not (home / "master.key").exists(), "an env key must not create a key file"


@pytest.mark.parametrize("bad", ["short", "zz" * 32, base64.b64encode(b"x" * 31).decode()])
def test_malformed_master_key(home: Path, monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv(envvars.MASTER_KEY, bad)
    with pytest.raises(StoreError, match="not a 32-byte key"):
        _store_one()


def test_missing_key_file_with_existing_store(home: Path) -> None:
    _store_one()
    (home / "master.key").unlink()
    with pytest.raises(StoreError, match="key file .* is missing"):
        connections.list_connections()
    with pytest.raises(StoreError):
        _store_one("again")
    assert not (home / "master.key").exists(), "a new key was made for an existing store"


def test_loose_permissions_are_tightened_with_warning(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _store_one()
    os.chmod(home / "connections.store", 0o644)
    os.chmod(home / "master.key", 0o640)
    assert connections.get_connection("feed").secret == PAT
    err = capsys.readouterr().err
    assert "had permissions 0644; tightened to 0600" in err
    assert "had permissions 0640; tightened to 0600" in err
    assert stat.S_IMODE((home / "connections.store").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "master.key").stat().st_mode) == 0o600


def test_failed_update_writes_nothing(home: Path) -> None:
    _store_one()
    before = (home / "connections.store").read_bytes()

    def boom(data: dict) -> None:  # type: ignore[type-arg]
        data["connections"].clear()
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        Vault().update(boom)
    assert (home / "connections.store").read_bytes() == before
    assert [p.name for p in home.iterdir() if p.name.endswith(".tmp")] == []


def _writer(home: str, i: int) -> None:
    os.environ[envvars.HOME] = home
    for j in range(10):
        connections.set_connection(f"w{i}-{j}", "PythonFeed", f"https://h.example/w{i}/{j}", "PAT", value=f"pat-{i}-{j}")


@pytest.mark.integration  # runs a program
def test_concurrent_writers_lose_nothing(home: Path) -> None:
    _store_one()  # create the key first so every writer shares it
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(home), i)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    names = {c.name for c in connections.list_connections()}
    assert names == {"feed"} | {f"w{i}-{j}" for i in range(4) for j in range(10)}


def test_update_connection_merges_under_the_lock(home: Path) -> None:
    """`connection set --update`'s rules, through the API: fields not given and the secret are
    kept, a plain-http target keeps its consent while it stays, a new name needs a target, and
    a refused change writes nothing."""
    connections.set_connection("lan", "PythonFeed", "http://feed.lan/org", "PAT", value=PAT, username="me", allow_http=True)
    created = Vault().load()["connections"]["lan"]["created"]
    conn = connections.update_connection("lan", expires="2099-01-02", host_wide=True)
    assert (conn.target, conn.username, conn.secret, conn.expires, conn.host_wide) == ("http://feed.lan/org/", "me", PAT, "2099-01-02", True)
    assert Vault().load()["connections"]["lan"]["created"] == created
    assert connections.update_connection("lan", PAT + "-2").secret == PAT + "-2"
    before = (home / "connections.store").read_bytes()
    with pytest.raises(UsageError, match="refusing plain-http target"):
        connections.update_connection("lan", target="http://other.lan/org")
    with pytest.raises(UsageError, match="already exists; pass --update"):
        connections.update_connection("lan", PAT, exist_ok=False)
    with pytest.raises(NotFoundError, match="no connection named 'new'"):
        connections.update_connection("new", PAT, target="https://h.example/new")
    with pytest.raises(UsageError, match="--target URL is required"):
        connections.update_connection("new", PAT, create=True, exist_ok=False)
    with pytest.raises(NotFoundError, match=r"^no connection named 'new' \(drop --update to create it\)$"):
        connections.update_connection("new", PAT, create=True)
    with pytest.raises(UsageError, match="--keep-secret goes with --update"):
        connections.check_update("new", keep_secret=True, target="https://h.example/new")
    assert (home / "connections.store").read_bytes() == before
    assert connections.check_update("lan") is True
    assert connections.update_connection("new", PAT, target="https://h.example/new", create=True).auth_type == "PAT"


def test_an_interrupt_between_store_and_backup_leaves_no_deleted_secret(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM (now raised as an interrupt, privpkg.interrupts) or Ctrl-C landing while the
    backup is written, after the store was replaced: the store has the change, and no backup
    still holds the secret just deleted (the old backup stayed, with it)."""
    from privpkg import vault
    from privpkg.interrupts import Terminated

    _store_one("a")
    _store_one("b", "deleted-secret-xyz")
    real = vault.write_atomic

    def interrupted_at_the_backup(path: Path, *args: object, **kw: object) -> None:
        if path.name.endswith(".bak"):
            raise Terminated
        real(path, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(vault, "write_atomic", interrupted_at_the_backup)
    with pytest.raises(Terminated):
        connections.delete_connection("b")
    monkeypatch.undo()
    monkeypatch.setenv(envvars.HOME, str(home))
    assert {c.name for c in connections.list_connections()} == {"a"}
    bak = home / "connections.store.bak"
    assert not bak.exists() or "b" not in Vault(path=bak).load().get("connections", {}), "the backup kept the deleted secret"
