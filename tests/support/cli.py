"""Running the privpkg CLI in tests: :class:`PrivpkgCLI` (``python -m privpkg`` of this checkout
in a test environment) records every output in :class:`Outputs`, which checks at the end that no
secret and no signature from a signed URL leaked anywhere it should not be; and
:func:`assert_one_error_line`, the one rule for a failing command's "one clear error line".
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from privpkg.testing import make_wheel
from support.env import Result, assert_no_secret, run

_SIGNATURE_VALUE = re.compile(r"[?&](?:sig|X-Amz-Signature)=([^&\s\"'#<>]+)", re.IGNORECASE)


def signature_values(text: str) -> set[str]:
    """The (unquoted) values of ``sig=`` / ``X-Amz-Signature=`` in every signed URL in ``text``."""
    return {urllib.parse.unquote(m.group(1)) for m in _SIGNATURE_VALUE.finditer(text)}


class Outputs:
    """Every output a test produced. :meth:`check` fails if a storage secret appears anywhere,
    or a signature from any signed URL the test saw appears anywhere but in the stdout of the
    ``privpkg resolve`` that printed it."""

    def __init__(self, *secrets_: str) -> None:
        self.secrets = list(secrets_)
        self.items: list[tuple[str, str, set[str]]] = []

    def add(self, label: str, text: str, allowed: set[str] | None = None) -> str:
        self.items.append((label, text, allowed or set()))
        return text

    def add_secret(self, secret: str) -> None:
        self.secrets.append(secret)

    def text(self) -> str:
        """Every recorded output, one after the other."""
        return "\n".join(text for _, text, _ in self.items)

    def seen_signatures(self) -> set[str]:
        return set().union(*(signature_values(text) for _, text, _ in self.items)) if self.items else set()

    def check(self) -> int:
        """Run the checks; return how many signatures were checked (callers assert > 0 when
        they saw signed URLs, so the check cannot pass vacuously)."""
        sigs = self.seen_signatures()
        for label, text, allowed in self.items:
            try:
                if self.secrets:
                    assert_no_secret(text, *self.secrets)
                others = sigs - allowed
                if others:
                    assert_no_secret(text, *others)
            except AssertionError as exc:
                raise AssertionError(f"in the output of {label}: {exc}") from None
        return len(sigs)


#: An error line: ``privpkg: error: ...``; argparse names the subcommand (``privpkg resolve: error:``).
_ERROR_LINE = re.compile(r"(privpkg(?: [a-z-]+)*): error: \S.*")


def assert_one_error_line(res: subprocess.CompletedProcess[str], code: int | None = None) -> str:
    """The one rule for a failing privpkg command: a non-zero exit (``code`` when given), no
    traceback, and stderr is exactly one non-empty line, ``privpkg: error: ...``. The one
    exception is argparse's usage error (exit 2): its line may name the subcommand
    (``privpkg resolve: error: ...``) and is followed by ``(see: privpkg resolve --help)``.
    Returns the error line."""
    out = f"exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    assert res.returncode != 0, f"expected a failure: {out}"
    if code is not None:
        assert res.returncode == code, f"expected exit {code}: {out}"
    assert "Traceback" not in res.stdout + res.stderr, out
    lines = res.stderr.splitlines()
    m = _ERROR_LINE.fullmatch(lines[0]) if lines else None
    assert m, f"not one clear error line: {out}"
    if res.returncode == 2 and lines[1:] == [f"(see: {m.group(1)} --help)"]:
        return lines[0]
    assert len(lines) == 1 and m.group(1) == "privpkg", f"not one clear error line: {out}"
    return lines[0]


class PrivpkgCLI:
    """``python -m privpkg`` of this checkout in a test environment; records every output."""

    def __init__(self, env: dict[str, str], outputs: Outputs, cwd: Path | None = None) -> None:
        self.env = env
        self.outputs = outputs
        self.cwd = cwd

    @staticmethod
    def argv(*args: str | Path) -> list[str]:
        """The command line of ``privpkg ARGS``, for the few tests that must run it in a way
        :meth:`__call__` cannot (stdout to /dev/full or a pipe it reads itself, a pseudo-terminal, killed mid-upload)."""
        return [sys.executable, "-m", "privpkg", *map(str, args)]

    def __call__(
        self,
        *args: str | Path,
        stdin: str | None = "",
        timeout: float = 120,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``privpkg ARGS`` (``env``: variables added to this runner's environment)."""
        argv = [str(a) for a in args]
        try:
            res = subprocess.run(
                self.argv(*argv), input=stdin or "", capture_output=True, text=True,
                env={**self.env, **(env or {})}, timeout=timeout, cwd=cwd or self.cwd, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout or ""
            err = exc.stderr or ""
            text = (out.decode(errors="replace") if isinstance(out, bytes) else out) + (err.decode(errors="replace") if isinstance(err, bytes) else err)
            self.outputs.add(f"privpkg {' '.join(argv)}", text)
            raise AssertionError(f"privpkg {' '.join(argv)} did not finish within {timeout}s:\n{text}") from None
        allowed = signature_values(res.stdout) if argv[:1] == ["resolve"] else set()
        self.outputs.add(f"privpkg {' '.join(argv)}", res.stdout + res.stderr, allowed)
        assert "Traceback" not in res.stdout + res.stderr, f"privpkg {' '.join(argv)}:\n{res.stderr}"
        return res

    def ok(self, *args: str | Path, **kw: Any) -> str:
        res = self(*args, **kw)
        assert res.returncode == 0, f"privpkg {' '.join(map(str, args))} -> exit {res.returncode}\n{res.stdout}{res.stderr}"
        return res.stdout

    def fails(self, code: int, *args: str | Path, match: str | Sequence[str], **kw: Any) -> str:
        """Exit ``code`` with one clear error line (:func:`assert_one_error_line`) containing
        every ``match``; returns the line."""
        line = assert_one_error_line(self(*args, **kw), code)
        for m in [match] if isinstance(match, str) else match:
            assert m in line, f"{m!r} not in {line!r}"
        return line

    def tool(self, cmd: Sequence[str | Path], *, env: dict[str, str] | None = None, timeout: float = 180, cwd: Path | None = None) -> Result:
        """Run another program (pip, uv) with this environment; its output is recorded too."""
        r = run(cmd, env or self.env, timeout=timeout, cwd=cwd)
        self.outputs.add(" ".join(r.cmd), r.output)
        return r


@pytest.fixture
def privpkg_cli(make_env: Callable[..., dict[str, str]], privpkg_home: Path) -> PrivpkgCLI:
    """A :class:`PrivpkgCLI` for this test's PRIVPKG_HOME; call ``privpkg_cli.outputs.check()``."""
    return PrivpkgCLI(make_env(), Outputs())


@pytest.fixture
def checked_cli(make_env: Callable[..., dict[str, str]], privpkg_home: Path) -> Iterator[Callable[..., PrivpkgCLI]]:
    """``checked_cli(*secrets, cwd=None)``: a :class:`PrivpkgCLI` for this test's PRIVPKG_HOME
    whose outputs are checked for ``secrets`` (and leaked signatures) when the test ends."""
    made: list[PrivpkgCLI] = []

    def make(*secrets_: str, cwd: Path | None = None) -> PrivpkgCLI:
        made.append(PrivpkgCLI(make_env(), Outputs(*secrets_), cwd))
        return made[-1]

    yield make
    for cli in made:
        cli.outputs.check()


def check_publish_rules(cli: PrivpkgCLI, wheel: Path, workspace: str, url: str, sha: str, tmp_path: Path) -> None:
    """The immutability rules every storage backend must keep: the same wheel again is an error
    naming --exist-ok (exit 1, a conflict as the others are) and a success with it; a different
    wheel under the same name is always an error. The caller then checks that its stored object
    is unchanged."""
    cli.fails(1, "wheel", "add", wheel, "--workspace", workspace, match=["already in workspace", "--exist-ok"])
    assert cli.ok("wheel", "add", wheel, "--workspace", workspace, "--exist-ok").strip().splitlines()[-1] == url
    other = make_wheel(tmp_path / "v1-other", "demo-pkg", "1.0", body='VERSION = "not the published one"\n')
    assert other.name == wheel.name and other.read_bytes() != wheel.read_bytes()
    for extra in ([], ["--exist-ok"]):
        cli.fails(1, "wheel", "add", other, "--workspace", workspace, *extra, match=["a different", "immutable", sha[:12]])


def reap_by(pid: int, deadline: float, what: Callable[[], str], between: Callable[[], None]) -> int:
    """Wait for child ``pid`` until ``deadline`` (``time.monotonic()``), calling ``between``
    while it runs; past the deadline, kill it and fail with ``what()``. Its wait status."""
    import signal
    import time

    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(what())
        between()


def run_in_pty(argv: list[str], env: dict[str, str], keys: bytes, prompt: bytes, timeout: float = 60) -> tuple[int, bytes, str]:
    """Run ``argv`` with a pseudo-terminal as its controlling terminal, stdin and stdout (so
    getpass prompts on it, with echo off, as for a person at a terminal) and stderr on a pipe.
    Once ``prompt`` appears, type ``keys``. Returns (exit code, terminal output, stderr)."""
    import pty
    import select
    import signal
    import termios
    import time

    err_r, err_w = os.pipe()
    pid, master = pty.fork()
    if pid == 0:  # child: stderr to the pipe, then become privpkg
        try:
            os.dup2(err_w, 2)
            os.close(err_r)
            # As a terminal starts a program: Ctrl-C interrupts it. A runner started in the
            # background of a non-interactive shell (`pytest ... &`) ignores SIGINT, and an
            # ignored signal stays ignored across exec: Python would then never see the key.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    os.close(err_w)
    screen, err = b"", b""
    sent: float = 0.0
    deadline = time.monotonic() + timeout
    open_fds = {master, err_r}
    try:
        while open_fds and time.monotonic() < deadline:
            ready, _, _ = select.select(list(open_fds), [], [], 0.2)
            for fd in ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    open_fds.discard(fd)
                elif fd == master:
                    screen += chunk
                else:
                    err += chunk
            if not sent and prompt in screen and not termios.tcgetattr(master)[3] & termios.ECHO:
                time.sleep(0.1)  # getpass has turned echo off: let it reach its read
                os.write(master, keys)
                sent = time.monotonic()
        assert sent, f"no prompt {prompt!r} on the terminal: {screen!r} / {err!r}"
        # Bounded: a keystroke lost on a loaded machine must fail the test, not hang the run.
        status = reap_by(pid, deadline, lambda: f"still running after {timeout}s: {screen!r} / {err!r}", lambda: time.sleep(0.05))
    finally:
        for fd in (master, err_r):
            with contextlib.suppress(OSError):
                os.close(fd)
    return os.waitstatus_to_exitcode(status), screen, err.decode(errors="replace")


def check_removal_rules(cli: PrivpkgCLI, wheel: Path, workspace: str, url: str, tmp_path: Path,
                        stored: Callable[[], list[str]]) -> None:
    """What every storage backend keeps after ``wheel remove`` and forgets after ``--purge``
    (``wheel`` is published as ``url``; ``stored()`` lists the keys in the workspace's storage,
    relative to its root). As on PyPI, a removed name stays reserved: re-adding it, identical
    content or not, ``--exist-ok`` or not, is refused with one line naming ``--purge``; it is
    not listed; signing it says it was removed. ``--purge`` deletes the marker too, so the
    storage holds exactly what it held before the wheel was published."""
    from privpkg import refs

    key = refs.key_for(refs.WHEELS, wheel.name)
    marker = refs.removed_key(key)
    before = set(stored())
    assert key in before and marker not in before, before
    out = cli.ok("wheel", "remove", wheel.name, "--workspace", workspace)
    assert "stays reserved" in out and "--purge" in out, out
    assert set(stored()) == before - {key} | {marker}
    assert wheel.name not in cli.ok("wheel", "list", "--workspace", workspace)
    assert all(e["file"] != wheel.name for e in json.loads(cli.ok("wheel", "list", "--workspace", workspace, "--json")))
    cli.fails(1, "resolve", url, match=[f"wheel {wheel.name} was removed from workspace {workspace!r}"])
    other = make_wheel(tmp_path / "removed-other", "demo-pkg", "1.0", body='VERSION = "after the remove"\n')
    assert other.name == wheel.name
    for again in (wheel, other):
        for extra in ([], ["--exist-ok"]):
            cli.fails(1, "wheel", "add", again, "--workspace", workspace, *extra,
                      match=["was removed", "stays reserved", f"privpkg wheel remove {wheel.name} --purge --workspace {workspace}"])
    cli.fails(1, "wheel", "remove", wheel.name, "--workspace", workspace, match=["already removed", "--purge"])
    assert set(stored()) == before - {key} | {marker}

    assert "freed the name" in cli.ok("wheel", "remove", wheel.name, "--workspace", workspace, "--purge")
    assert set(stored()) == before - {key}
    cli.fails(1, "resolve", url, match=f"no wheel {wheel.name} in workspace")
    assert cli.ok("wheel", "add", other, "--workspace", workspace).strip().splitlines()[-1] == url
    assert set(stored()) == before
    # --purge of a published wheel: gone, and no marker left behind.
    assert "and freed its name" in cli.ok("wheel", "remove", wheel.name, "--workspace", workspace, "--purge")
    assert set(stored()) == before - {key}
    cli.fails(1, "wheel", "remove", wheel.name, "--workspace", workspace, "--purge", match="no wheel")
