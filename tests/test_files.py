"""Files privpkg writes (issue 6, D11-D13 and E14's full disk): temp files that cannot be
hijacked, leftovers of killed writers, lock files, the backup that forgets deleted secrets, file
modes of private and shared wheel folders, lock timeouts, and a full disk.

The attacks are reproduced as they would happen: a symlink planted at the name the old code
used (``.NAME.<pid>.tmp``, predictable because the pid is), a symlink planted at the lock path,
a writer killed with SIGKILL in the middle of a write. A full disk is a real one: a 64 KiB
tmpfs when this process may mount one (root with CAP_SYS_ADMIN: here and in CI), and in every
run also RLIMIT_FSIZE in the writer's process (writes fail with EFBIG, the same error path).
"""

from __future__ import annotations

import base64
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.cli import Outputs, PrivpkgCLI, assert_one_error_line

from privpkg import connections, envvars
from privpkg.errors import PrivpkgError
from privpkg.fileio import file_lock
from privpkg.fileio import write_atomic as _write_atomic
from privpkg.storage.local import LocalStorage
from privpkg.testing import make_wheel
from privpkg.vault import MAGIC, NONCE_LEN, Vault

PAT_KEEP = "files-test-keep-PAT-0123456789"
PAT_GONE = "files-test-deleted-PAT-9876543210"
PAT_NEW = "files-test-rotated-PAT-5555555555"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for k in list(os.environ):
        if k in envvars.ALL:
            monkeypatch.delenv(k)
    monkeypatch.setenv(envvars.HOME, str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def _set(name: str, secret: str) -> None:
    connections.set_connection(name, "PythonFeed", f"https://h.example/{name}/", "PAT", value=secret)


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".part")))


# --------------------------------------------------------------------------------------------
# D11: planted symlinks
# --------------------------------------------------------------------------------------------


def test_symlink_planted_at_the_old_temp_names_is_not_followed(home: Path, tmp_path: Path) -> None:
    """Another user who can write in the store's folder plants ``.connections.store.<pid>.tmp``
    (and the backup's) pointing at a victim file. The write must not touch the victim."""
    _set("keep", PAT_KEEP)
    victim = tmp_path / "victim.txt"
    victim.write_text("the victim's own content\n")
    victim.chmod(0o644)
    pid = os.getpid()
    for name in ("connections.store", "connections.store.bak"):
        (home / f".{name}.{pid}.tmp").symlink_to(victim)

    _set("second", PAT_GONE)

    assert victim.read_text() == "the victim's own content\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    for name in ("connections.store", "connections.store.bak"):
        assert not (home / name).is_symlink() and (home / name).read_bytes().startswith(MAGIC)
    assert {c.name for c in connections.list_connections()} == {"keep", "second"}


@pytest.mark.parametrize("target", ["workspaces.toml", "constraints.txt", "pip.conf"])
def test_shared_write_helper_never_writes_through_a_planted_symlink(tmp_path: Path, target: str) -> None:
    """workspace.py, resolve.py and setup_pip.py write through ``fileio.write_atomic``."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"victim")
    folder = tmp_path / "dir"
    folder.mkdir()
    (folder / f".{target}.{os.getpid()}.tmp").symlink_to(victim)
    _write_atomic(folder / target, b"new content\n", 0o644)
    assert victim.read_bytes() == b"victim"
    assert (folder / target).read_bytes() == b"new content\n"
    assert stat.S_IMODE((folder / target).stat().st_mode) == 0o644


def test_workspace_file_write_does_not_follow_a_planted_symlink(home: Path, tmp_path: Path) -> None:
    from privpkg import workspace

    victim = tmp_path / "victim"
    victim.write_bytes(b"victim")
    user_file = workspace.user_file()
    user_file.parent.mkdir(parents=True, exist_ok=True)
    (user_file.parent / f".{user_file.name}.{os.getpid()}.tmp").symlink_to(victim)
    workspace.add_workspace(workspace.Workspace("team", "local", str(tmp_path / "wheels")))
    assert victim.read_bytes() == b"victim"
    assert "[workspaces.team]" in user_file.read_text()


@pytest.mark.parametrize("victim_exists", [True, False])
def test_symlink_planted_at_the_lock_path_is_refused(home: Path, tmp_path: Path, victim_exists: bool) -> None:
    """The old lock opened ``connections.store.lock`` with O_CREAT and followed a symlink: as
    root that creates (or locks) any file the planter names. Now: one line, victim untouched."""
    _set("keep", PAT_KEEP)
    before = (home / "connections.store").read_bytes()
    victim = tmp_path / "victim"
    if victim_exists:
        victim.write_bytes(b"victim")
    (home / "connections.store.lock").unlink()
    (home / "connections.store.lock").symlink_to(victim)
    with pytest.raises(PrivpkgError) as exc:
        _set("second", PAT_GONE)
    msg = str(exc.value)
    assert "\n" not in msg and str(home / "connections.store.lock") in msg and "symbolic link" in msg
    assert victim.exists() == victim_exists, "the lock followed the planted symlink"
    if victim_exists:
        assert victim.read_bytes() == b"victim"
    assert (home / "connections.store").read_bytes() == before


def test_fifo_planted_at_the_lock_path_does_not_hang(home: Path) -> None:
    os.mkfifo(home / "connections.store.lock")
    t0 = time.monotonic()
    with pytest.raises(PrivpkgError, match="not a regular file"):
        _set("x", PAT_KEEP)
    assert time.monotonic() - t0 < 5


def test_hard_link_planted_at_the_lock_path_is_refused(home: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"victim")
    os.link(victim, home / "connections.store.lock")
    with pytest.raises(PrivpkgError, match="other hard links"):
        _set("x", PAT_KEEP)
    assert victim.read_bytes() == b"victim" and not (home / "connections.store").exists()


def test_wheel_part_file_does_not_follow_a_planted_symlink(tmp_path: Path) -> None:
    """The old wheel copy went to ``.<wheel>.<pid>.part`` opened with plain ``open(..., "wb")``."""
    wheel = make_wheel(tmp_path / "src", "demo-pkg", "1.0")
    import hashlib

    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    root = tmp_path / "ws"
    (root / "wheels").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_bytes(b"victim")
    pid = os.getpid()
    for name in (f".{wheel.name}.{pid}.part", f".{wheel.name}.{pid}.tmp", f".{wheel.name}.sha256.{pid}.part"):
        (root / "wheels" / name).symlink_to(victim)
    LocalStorage(root).put(f"wheels/{wheel.name}", wheel, sha)
    assert victim.read_bytes() == b"victim"
    assert (root / "wheels" / wheel.name).read_bytes() == wheel.read_bytes()
    assert (root / "wheels" / f"{wheel.name}.sha256").read_text() == sha + "\n"


# The tests above plant the OLD predictable names. These show the new names cannot be predicted
# at all: each is random (two writes of one file never share a name) and created with O_EXCL, so
# a name planted by another user makes the create fail instead of being written through. The
# opens are seen by a Python audit hook (the ``open`` event carries the real os.open flags).

_OPENS: list[tuple[str, int]] | None = None
_HOOKED = False


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "open" and _OPENS is not None and len(args) >= 3 and isinstance(args[2], int) and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENS.append((os.fsdecode(args[0]), args[2]))


@pytest.fixture
def opens() -> Iterator[list[tuple[str, int]]]:
    """Every ``open``/``os.open`` of this process while the test runs: (path, flags)."""
    global _OPENS, _HOOKED
    if not _HOOKED:  # an audit hook cannot be removed: add one, switched on per test
        sys.addaudithook(_audit)
        _HOOKED = True
    _OPENS = []
    try:
        yield _OPENS
    finally:
        _OPENS = None


def _created_temps(seen: list[tuple[str, int]], folder: Path, target: str) -> list[tuple[str, int]]:
    """The temp files for ``target`` in ``folder`` that were created (O_CREAT) during the test."""
    return [(os.path.basename(p), f) for p, f in seen
            if os.path.dirname(p) == str(folder) and os.path.basename(p).startswith(f".{target}.") and f & os.O_CREAT]


def test_temp_names_are_random_and_created_with_o_excl(home: Path, opens: list[tuple[str, int]]) -> None:
    """Store, backup and key temps: ``.NAME.<pid>.<8 random>.tmp``, O_CREAT|O_EXCL (and
    O_NOFOLLOW), a different name on every write, none left behind."""
    import re

    pid = os.getpid()
    _set("first", PAT_KEEP)  # the very first write also creates the key
    _set("second", PAT_GONE)
    _set("third", PAT_NEW)
    names: list[str] = []
    for target, writes in (("master.key", 1), ("connections.store", 3), ("connections.store.bak", 3)):
        created = _created_temps(opens, home, target)
        if target == "connections.store":  # ".connections.store." also prefixes the backup's temps
            created = [(n, f) for n, f in created if not n.startswith(".connections.store.bak.")]
        assert len(created) == writes, (target, created)
        for name, flags in created:
            assert re.fullmatch(rf"\.{re.escape(target)}\.{pid}\.[a-z0-9_]{{8}}\.tmp", name), name
            assert flags & os.O_EXCL, f"{name} was created without O_EXCL (flags {flags:#o})"
            assert flags & getattr(os, "O_NOFOLLOW", 0) == getattr(os, "O_NOFOLLOW", 0), f"{name}: no O_NOFOLLOW"
            assert not (home / name).exists(), f"{name} was left behind"
        names += [n for n, _ in created]
    assert len(set(names)) == len(names), f"a temp name was used twice: {names}"


def test_shared_write_helper_uses_a_new_random_name_each_time(tmp_path: Path, opens: list[tuple[str, int]]) -> None:
    """workspace.py, resolve.py and setup_pip.py's writes (``fileio.write_atomic``): two writes of
    the same file never use the same temp name, and each is created with O_EXCL."""
    folder = tmp_path / "dir"
    folder.mkdir()
    for i in range(3):
        _write_atomic(folder / "constraints.txt", f"write {i}\n".encode(), 0o644)
    created = _created_temps(opens, folder, "constraints.txt")
    assert len(created) == 3 and len({n for n, _ in created}) == 3, created
    assert all(f & os.O_EXCL for _, f in created), created
    assert (folder / "constraints.txt").read_bytes() == b"write 2\n" and sorted(p.name for p in folder.iterdir()) == ["constraints.txt"]


def test_symlink_planted_for_the_first_key_write_is_not_followed(home: Path, tmp_path: Path) -> None:
    """The master key is written to a temp file and linked into place. Another user who can write
    in the folder plants symlinks at every pid-based name the key's temp could take without a
    random part (``.master.key.<pid>.tmp``/``.part``) pointing at a victim: the first write
    creates the key without touching the victim, and the key is a private regular file."""
    victim = tmp_path / "victim.txt"
    victim.write_text("the victim's own content\n")
    victim.chmod(0o644)
    pid = os.getpid()
    planted = [home / f".master.key.{pid}.tmp", home / f".master.key.{pid}.part", home / f".master.key.{pid}"]
    for p in planted:
        p.symlink_to(victim)
    assert not (home / "master.key").exists()

    _set("keep", PAT_KEEP)

    # (compared to a bool, so a failure does not print the key that was written into the victim)
    victim_untouched = victim.read_text() == "the victim's own content\n"
    assert victim_untouched, "the first key write went through a planted symlink into the victim"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    key = home / "master.key"
    assert not key.is_symlink() and key.is_file() and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(base64.urlsafe_b64decode(key.read_text().strip())) == 32
    assert connections.get_connection("keep").secret == PAT_KEEP


# --------------------------------------------------------------------------------------------
# D11: leftovers of killed writers
# --------------------------------------------------------------------------------------------

# A real privpkg write in a child process that stops inside fsync of its temp file (the file is
# written, not yet renamed), says "ready" and waits to be killed.
_BLOCKED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    real_fsync = os.fsync
    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if os.path.basename(name).startswith(".") and (name.endswith(".tmp") or name.endswith(".part")):
            print("ready", flush=True)
            time.sleep(600)
        return real_fsync(fd)
    os.fsync = fsync
    what = sys.argv[1]
    if what == "store":
        from privpkg import connections
        connections.set_connection("killed", "PythonFeed", "https://h.example/killed/", "PAT", value=sys.argv[2])
    else:
        from pathlib import Path
        from privpkg.storage.local import LocalStorage
        import hashlib
        wheel = Path(sys.argv[2])
        LocalStorage(Path(sys.argv[3])).put("wheels/" + wheel.name, wheel, hashlib.sha256(wheel.read_bytes()).hexdigest())
    """
)


@pytest.fixture
def blocked_writer() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str) -> subprocess.Popen[str]:
        p = subprocess.Popen([sys.executable, "-c", _BLOCKED_WRITER, *args], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
        procs.append(p)
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready", "the writer did not reach its fsync"
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


@pytest.mark.integration  # runs a program
def test_killed_store_writer_leftover_is_removed_by_the_next_write(home: Path, blocked_writer: Callable[..., subprocess.Popen[str]]) -> None:
    _set("keep", PAT_KEEP)
    p = blocked_writer("store", PAT_GONE)
    left = _temps(home)
    assert len(left) == 1 and f".{p.pid}." in left[0], left
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert _temps(home) == left, "the killed writer's temp file should still be there"
    _set("next", PAT_NEW)  # the next write, under the same lock
    assert _temps(home) == [], "a killed writer's temp file survived the next write"
    assert {c.name for c in connections.list_connections()} == {"keep", "next"}


@pytest.mark.integration  # runs a program
def test_live_writers_temp_is_kept_and_removed_once_it_is_gone(tmp_path: Path, blocked_writer: Callable[..., subprocess.Popen[str]]) -> None:
    """Wheel folders have no common lock: a write must not remove a temp file whose writer is
    still running (it would lose that upload), only one whose writer is gone."""
    import hashlib

    root = tmp_path / "ws"
    (root / "wheels").mkdir(parents=True)
    slow = make_wheel(tmp_path / "a", "slow-pkg", "1.0")
    p = blocked_writer("wheel", str(slow), str(root))
    [live] = _temps(root / "wheels")
    assert f".{p.pid}." in live

    other = make_wheel(tmp_path / "b", "other-pkg", "1.0")
    LocalStorage(root).put(f"wheels/{other.name}", other, hashlib.sha256(other.read_bytes()).hexdigest())
    assert _temps(root / "wheels") == [live], "a running writer's temp file was removed"

    p.send_signal(signal.SIGKILL)
    p.wait()
    third = make_wheel(tmp_path / "c", "third-pkg", "1.0")
    LocalStorage(root).put(f"wheels/{third.name}", third, hashlib.sha256(third.read_bytes()).hexdigest())
    assert _temps(root / "wheels") == []
    assert not (root / "wheels" / slow.name).exists()


@pytest.mark.integration  # runs a program
def test_only_privpkg_temp_names_of_dead_pids_are_removed(tmp_path: Path) -> None:
    from privpkg import fileio

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    keep = [".notes.txt", f".x.{pid}.tmp", f"x.{pid}.abcdefgh.tmp", f".x.{os.getpid()}.abcdefgh.tmp", ".x.1.abcdefgh.tmp"]
    gone = [f".x.{pid}.abcdefgh.tmp", f".connections.store.{pid}.a_b1c2d3.tmp"]
    for n in keep + gone:
        (tmp_path / n).write_text("x")
    fileio.remove_stale_temps(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)


# --------------------------------------------------------------------------------------------
# D11: a deleted or rotated secret is gone from every file privpkg keeps
# --------------------------------------------------------------------------------------------


def _every_plaintext(home: Path) -> dict[str, bytes]:
    """Every file under ``home``, store-format files decrypted with the key file."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key = base64.urlsafe_b64decode((home / "master.key").read_text().strip())
    out = {}
    for p in home.rglob("*"):
        if p.is_file() and not p.is_symlink():
            blob = p.read_bytes()
            if blob.startswith(MAGIC):
                nonce = blob[len(MAGIC) : len(MAGIC) + NONCE_LEN]
                blob = AESGCM(key).decrypt(nonce, blob[len(MAGIC) + NONCE_LEN :], MAGIC)
            out[str(p.relative_to(home))] = blob
    return out


def test_deleted_secret_is_not_recoverable_with_the_key(home: Path) -> None:
    _set("keep", PAT_KEEP)
    _set("gone", PAT_GONE)
    assert any(PAT_GONE.encode() in b for b in _every_plaintext(home).values())
    connections.delete_connection("gone")
    files = _every_plaintext(home)
    assert {"connections.store", "connections.store.bak", "master.key"} <= set(files)
    for name, plain in files.items():
        assert PAT_GONE.encode() not in plain, f"the deleted secret is still in {name}"
    assert any(PAT_KEEP.encode() in b for b in files.values())


def test_rotated_secret_is_not_recoverable_with_the_key(privpkg_cli: PrivpkgCLI, privpkg_home: Path) -> None:
    cli = privpkg_cli
    cli.ok("connection", "set", "feed", "--target", "https://h.example/feed/", stdin=PAT_GONE + "\n")
    cli.ok("connection", "set", "feed", "--update", stdin=PAT_NEW + "\n")
    for name, plain in _every_plaintext(privpkg_home).items():
        assert PAT_GONE.encode() not in plain, f"the rotated-out secret is still in {name}"
    assert any(PAT_NEW.encode() in b for b in _every_plaintext(privpkg_home).values())
    cli.outputs.add_secret(PAT_GONE)
    cli.outputs.add_secret(PAT_NEW)
    cli.outputs.check()


# --------------------------------------------------------------------------------------------
# D13: lock timeout
# --------------------------------------------------------------------------------------------


def test_lock_wait_is_bounded_and_names_the_lock_file(home: Path) -> None:
    from privpkg import fileio

    lock = home / "connections.store.lock"
    with file_lock(lock):
        t0 = time.monotonic()
        with pytest.raises(fileio.LockTimeout) as exc, file_lock(lock, timeout=0.3):
            pass
        waited = time.monotonic() - t0
    assert 0.3 <= waited < 3
    assert str(lock) in str(exc.value) and "\n" not in str(exc.value)
    with file_lock(lock, timeout=0.3):  # released: taken at once
        pass


class _FakeClock:
    """``time.monotonic`` and ``time.sleep`` for fileio: sleeping only advances the clock, so a
    30 s wait takes no real time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds
        self.slept += seconds


def test_default_lock_wait_is_30_seconds(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With PRIVPKG_LOCK_TIMEOUT unset, a store writer waits 30 s for the lock (not less, not
    more), then fails with one line naming the lock file and the 30 s."""
    from privpkg import fileio

    monkeypatch.delenv(envvars.LOCK_TIMEOUT, raising=False)
    assert fileio._lock_timeout(None) == 30.0
    _set("keep", PAT_KEEP)
    before = (home / "connections.store").read_bytes()
    lock = home / "connections.store.lock"
    clock = _FakeClock()
    with file_lock(lock):  # held by "another process" (another open file: flock excludes it)
        monkeypatch.setattr(fileio, "time", clock)
        with pytest.raises(PrivpkgError) as exc:
            _set("other", PAT_NEW)
        monkeypatch.setattr(fileio, "time", time)
    assert 30.0 <= clock.slept < 30.5, f"waited {clock.slept:.2f} s of fake time for the lock"
    message = str(exc.value)
    assert str(lock) in message and "over 30 s" in message and "\n" not in message, message
    assert (home / "connections.store").read_bytes() == before
    assert PAT_NEW not in message


def test_cli_waits_for_a_held_store_lock_then_one_line(privpkg_cli: PrivpkgCLI, privpkg_home: Path) -> None:
    """Another privpkg (here: this test) holds the store lock; the CLI gives up after
    ``PRIVPKG_LOCK_TIMEOUT`` seconds (default 30) with one line naming the lock file."""
    cli = privpkg_cli
    cli.ok("connection", "set", "feed", "--target", "https://h.example/feed/", stdin=PAT_KEEP + "\n")
    before = (privpkg_home / "connections.store").read_bytes()
    cli.env[envvars.LOCK_TIMEOUT] = "1.5"
    with file_lock(privpkg_home / "connections.store.lock"):
        t0 = time.monotonic()
        line = cli.fails(1, "connection", "set", "other", "--target", "https://h.example/o/", stdin=PAT_NEW + "\n",
                         match=[str(privpkg_home / "connections.store.lock"), "1.5 s"], timeout=60)
        waited = time.monotonic() - t0
    assert 1.5 <= waited < 20, waited
    assert "lock" in line
    assert (privpkg_home / "connections.store").read_bytes() == before
    cli.outputs.add_secret(PAT_KEEP)
    cli.outputs.add_secret(PAT_NEW)
    cli.outputs.check()


# --------------------------------------------------------------------------------------------
# D12: file modes
# --------------------------------------------------------------------------------------------


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_default_workspace_is_private(privpkg_cli: PrivpkgCLI, privpkg_home: Path, tmp_path: Path) -> None:
    cli = privpkg_cli
    # An older privpkg left the default workspace's folders open: they are tightened.
    (privpkg_home / "workspaces" / "default").mkdir(parents=True)
    os.chmod(privpkg_home / "workspaces" / "default", 0o755)
    wheel = make_wheel(tmp_path / "w", "priv-pkg", "1.0")
    cli.ok("wheel", "add", wheel)
    root = privpkg_home / "workspaces" / "default"
    assert _mode(root) == 0o700 and _mode(root / "wheels") == 0o700
    assert _mode(root / "wheels" / wheel.name) == 0o600
    assert _mode(root / "wheels" / f"{wheel.name}.sha256") == 0o600
    cli.outputs.check()


def test_default_workspace_new_folders_are_private(privpkg_cli: PrivpkgCLI, privpkg_home: Path, tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w", "priv-pkg", "1.0")
    privpkg_cli.ok("wheel", "add", wheel)
    for d in ("workspaces", "workspaces/default", "workspaces/default/wheels"):
        assert _mode(privpkg_home / d) == 0o700, d
    privpkg_cli.outputs.check()


def test_shared_folder_keeps_its_owners_modes(tmp_path: Path) -> None:
    """A team folder (setgid, group-writable) keeps its mode; new files get 0666 & ~umask,
    new folders 0777 & ~umask, as ``cp`` and ``mkdir`` would give them."""
    import hashlib

    root = tmp_path / "team"
    root.mkdir()
    os.chmod(root, 0o2775)
    wheel = make_wheel(tmp_path / "w", "team-pkg", "1.0")
    old = os.umask(0o002)
    try:
        LocalStorage(root).put(f"wheels/{wheel.name}", wheel, hashlib.sha256(wheel.read_bytes()).hexdigest())
    finally:
        os.umask(old)
    assert _mode(root) == 0o2775, "an existing shared folder was chmod-ed"
    assert _mode(root / "wheels") & 0o777 == 0o775
    assert _mode(root / "wheels" / wheel.name) == 0o664
    assert _mode(root / "wheels" / f"{wheel.name}.sha256") == 0o664


def test_open_storage_marks_only_the_builtin_default_private(home: Path, tmp_path: Path) -> None:
    from privpkg.access import open_workspace_storage as open_storage
    from privpkg.workspace import Workspace, default_workspace

    assert open_storage(default_workspace()).private is True  # type: ignore[attr-defined]
    assert open_storage(Workspace("team", "local", str(tmp_path))).private is False  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# D13 / E14: a full disk
# --------------------------------------------------------------------------------------------


def _try_mount_tmpfs(where: Path) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(where)], capture_output=True, check=False)
    return r.returncode == 0


def _fill(folder: Path) -> None:
    """Fill the file system under ``folder`` until it reports ENOSPC."""
    with open(folder / "filler", "wb", buffering=0) as fh:
        with pytest.raises(OSError) as exc:
            while True:
                fh.write(b"\0" * 4096)
        assert exc.value.errno == 28, exc.value


class FullDisk:
    """Run the privpkg CLI against a full disk: ``kind`` "tmpfs" (a real ENOSPC) or "rlimit"
    (RLIMIT_FSIZE = 0 in the child, SIGXFSZ ignored: every write of a byte fails with EFBIG)."""

    def __init__(self, kind: str, cli: PrivpkgCLI, home: Path) -> None:
        self.kind, self.cli, self.home = kind, cli, home

    def fill(self) -> None:
        if self.kind == "tmpfs":
            _fill(self.home.parent)

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        def limit() -> None:
            import resource

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

        res = subprocess.run(
            [sys.executable, "-m", "privpkg", *args], input=stdin, capture_output=True, text=True, env=self.cli.env,
            timeout=60, check=False, preexec_fn=limit if self.kind == "rlimit" else None,
        )
        self.cli.outputs.add(f"privpkg {' '.join(args)} (full disk: {self.kind})", res.stdout + res.stderr)
        return res


@pytest.fixture(params=["tmpfs", "rlimit"])
def full_disk(request: pytest.FixtureRequest, make_env: Callable[..., dict[str, str]], tmp_path: Path) -> Iterator[FullDisk]:
    kind = request.param
    mnt = tmp_path / "disk"
    mounted = False
    if kind == "tmpfs":
        mounted = _try_mount_tmpfs(mnt)
        if not mounted:  # no CAP_SYS_ADMIN: same checks with RLIMIT_FSIZE (the other param)
            kind = "rlimit"
            print("full_disk: cannot mount a tmpfs here; using RLIMIT_FSIZE instead")
    home = mnt / "privpkg"
    home.mkdir(parents=True)
    cli = PrivpkgCLI(make_env(**{envvars.HOME: str(home)}), Outputs())
    try:
        yield FullDisk(kind, cli, home)
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_on_the_very_first_write_leaves_no_key(full_disk: FullDisk) -> None:
    home = full_disk.home
    full_disk.fill()
    res = full_disk.run("connection", "set", "feed", "--target", "https://h.example/feed/", stdin=PAT_KEEP + "\n")
    line = assert_one_error_line(res)
    assert ("No space left on device" if full_disk.kind == "tmpfs" else "File too large") in line, line
    assert not (home / "master.key").exists(), "an empty key file was left behind"
    assert not (home / "connections.store").exists()
    assert _temps(home) == []
    full_disk.cli.outputs.add_secret(PAT_KEEP)
    full_disk.cli.outputs.check()


def test_full_disk_leaves_the_store_untouched(full_disk: FullDisk) -> None:
    home = full_disk.home
    cli = full_disk.cli
    cli.ok("connection", "set", "feed", "--target", "https://h.example/feed/", stdin=PAT_KEEP + "\n")
    before = {p.name: p.read_bytes() for p in home.iterdir()}
    full_disk.fill()
    for args in (
        ["connection", "set", "other", "--target", "https://h.example/other/"],
        ["connection", "set", "feed", "--update"],
        ["connection", "delete", "feed"],
    ):
        line = assert_one_error_line(full_disk.run(*args, stdin=PAT_NEW + "\n"))
        assert "left untouched" in line, line
        after = {p.name: p.read_bytes() for p in home.iterdir() if p.name != "filler"}
        assert after == {k: v for k, v in before.items()}, f"{args}: the store's files changed"
    # The workspace file goes through the same helper.
    res = full_disk.run("workspace", "add", "team", "--local", str(home.parent / "team"))
    assert "workspaces.toml" in assert_one_error_line(res)
    assert connections.get_connection("feed", vault=Vault(home / "connections.store", home / "master.key")).secret == PAT_KEEP
    cli.outputs.add_secret(PAT_KEEP)
    cli.outputs.add_secret(PAT_NEW)
    cli.outputs.check()


@pytest.mark.integration  # runs a program
def test_failed_write_is_one_error_naming_the_target(tmp_path: Path) -> None:
    """A write that fails (RLIMIT_FSIZE here) raises one FileWriteError naming the target, which
    is both a PrivpkgError (the CLI prints one line) and an OSError (callers that caught OSError
    still do), leaves the target as it was and removes its temp file."""
    target = tmp_path / "x.txt"
    target.write_bytes(b"old")
    limit_src = textwrap.dedent(
        f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
        from pathlib import Path
        from privpkg.fileio import write_atomic, FileWriteError
        try:
            write_atomic(Path({str(target)!r}), b"new content")
        except FileWriteError as exc:
            print(type(exc).__name__, isinstance(exc, OSError), exc)
        """
    )
    err = subprocess.run([sys.executable, "-c", limit_src], capture_output=True, text=True, check=False)
    assert err.returncode == 0 and err.stdout.startswith("FileWriteError True cannot write " + str(target)), err
    assert target.read_bytes() == b"old"
    assert _temps(tmp_path) == []


def test_full_disk_during_a_builds_download_names_the_file(full_disk: FullDisk, feed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`env build` fetching a feed file into a cache on a full disk (a CI runner's small cache
    volume): one line naming the file it could not write, not a bare "No space left on device",
    and no temp file left in the wheelhouse."""
    import hashlib
    import json

    wheel = tmp_path / "feed" / "a" / "pkg_a-1.0-py3-none-any.whl"
    url = f"{feed.index_a}pkg-a/{wheel.name}"
    lock = tmp_path / "pylock.toml"
    lock.write_text(
        f'lock-version = "1.0"\ncreated-by = "test"\n[[packages]]\nname = "pkg-a"\nversion = "1.0"\n[[packages.wheels]]\n'
        f'name = "{wheel.name}"\nurl = "{url}"\nhashes = {{sha256 = "{hashlib.sha256(wheel.read_bytes()).hexdigest()}"}}\n')
    full_disk.cli.env[envvars.CONNECTIONS] = json.dumps([{"name": "feed", "target": f"{feed.base}/orgA/", "secret": feed.secret_a}])
    full_disk.fill()
    line = assert_one_error_line(full_disk.run("env", "build", "--lock", str(lock)))
    assert f"cannot write {full_disk.home}/cache/envs/wheels/" in line and wheel.name in line, line
    assert ("No space left on device" if full_disk.kind == "tmpfs" else "File too large") in line, line
    assert [p for p in (full_disk.home / "cache" / "envs" / "wheels").rglob("*") if p.is_file()] == []
    full_disk.cli.outputs.add_secret(feed.secret_a)
    full_disk.cli.outputs.check()
