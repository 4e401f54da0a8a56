"""Signals, as a terminal and a CI runner send them: SIGTERM unwinds privpkg as Ctrl-C does (its
cleanups run, exit 143), and `env run` passes signals on to its command as `uv run` does and
waits for it (exit: the command's code, 128+N when signal N ended it)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.cli import PrivpkgCLI, reap_by

EMPTY_LOCK = 'lock-version = "1.0"\ncreated-by = "test"\n'

#: A command that takes its time over a signal: it says it is ready, waits for SIGINT or
#: SIGTERM, spends a second "saving", then prints what it got and exits 3.
CAREFUL = """
import pathlib, signal, sys, time
got = []
for s in (signal.SIGINT, signal.SIGTERM):
    signal.signal(s, lambda n, f: got.append(signal.Signals(n).name))
pathlib.Path(sys.argv[1]).write_text("ready")
while not got:
    time.sleep(0.01)
time.sleep(1.0)
print("saved after", " ".join(got), flush=True)
sys.exit(3)
"""


def _wait_for(check: object, what: str, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


def _run_careful(cli: PrivpkgCLI, tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    """``privpkg env run --lock EMPTY -- python CAREFUL`` in its own process group (as a
    terminal's foreground job is), once the command is ready for signals."""
    lock = tmp_path / "pylock.toml"
    lock.write_text(EMPTY_LOCK)
    ready = tmp_path / "ready"
    proc = subprocess.Popen(cli.argv("env", "run", "--lock", lock, "--", "python", "-c", CAREFUL, ready), env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for(lambda: ready.exists() or proc.poll() is not None, "the command to start")
    assert proc.poll() is None, proc.communicate()
    return proc, ready


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        # The whole group privpkg led (start_new_session), even once privpkg has ended: a
        # command left behind (what this file tests against) must not outlive the test.
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert "Traceback" not in out + err, err
    return proc.returncode, out, err


#: Counts the SIGINTs it gets, as a REPL would meet them; exits 3 once none came for a second.
COUNTING = """
import signal, sys, time
got = []
signal.signal(signal.SIGINT, lambda n, f: got.append(time.monotonic()))
print("ready", flush=True)
while not got or time.monotonic() - got[-1] < 1.0:
    time.sleep(0.01)
print("SIGINTs:", len(got), flush=True)
sys.exit(3)
"""


def _ctrl_c_in_a_terminal(argv: list[str], env: dict[str, str], presses: int) -> tuple[int, str]:
    """Run ``argv`` as a terminal's foreground job (a pseudo-terminal as its controlling
    terminal), press Ctrl-C ``presses`` times once it prints "ready"; (exit code, screen)."""
    import pty
    import select

    pid, master = pty.fork()
    if pid == 0:
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # as a terminal starts a program
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    screen = b""
    deadline = time.monotonic() + 90

    def read(seconds: float) -> None:
        nonlocal screen
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if select.select([master], [], [], 0.05)[0]:
                try:
                    screen += os.read(master, 4096)
                except OSError:  # EIO: the job closed the terminal
                    return

    try:
        while b"ready" not in screen:
            assert time.monotonic() < deadline, screen
            read(0.1)
        for _ in range(presses):
            os.write(master, b"\x03")
            read(0.3)
        status = reap_by(pid, deadline, lambda: f"still running: {screen!r}", lambda: read(0.1))
        read(0.2)  # what it printed last, still buffered
    finally:
        os.close(master)
    return os.waitstatus_to_exitcode(status), screen.decode(errors="replace").replace("\r", "")


def test_ctrl_c_at_a_terminal_reaches_the_command_once_per_press(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    """Each Ctrl-C at a terminal reaches the command once, from the terminal (a REPL gets one
    KeyboardInterrupt per press, not two from the second press on), and privpkg waits for it
    to finish its own way."""
    lock = tmp_path / "pylock.toml"
    lock.write_text(EMPTY_LOCK)
    script = tmp_path / "counting.py"
    script.write_text(COUNTING)
    direct = _ctrl_c_in_a_terminal([sys.executable, str(script)], privpkg_cli.env, 3)
    via = _ctrl_c_in_a_terminal(privpkg_cli.argv("env", "run", "--lock", lock, "--", "python", script), privpkg_cli.env, 3)
    assert (direct[0], "SIGINTs: 3" in direct[1]) == (3, True), direct
    assert (via[0], "SIGINTs: 3" in via[1], "Traceback" in via[1]) == (3, True, False), via


def test_sigint_to_privpkg_with_no_terminal_is_passed_on(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    """``kill -INT PID`` with no terminal (a CI step, a supervisor) reaches the command at once:
    nothing else will send it one."""
    proc, _ = _run_careful(privpkg_cli, tmp_path)
    os.kill(proc.pid, signal.SIGINT)
    code, out, err = _finish(proc)
    assert (code, out.splitlines()[-1:], err) == (3, ["saved after SIGINT"], ""), (code, out, err)


@pytest.mark.parametrize(("sig", "code"), [("TERM", 143), ("KILL", 137), ("INT", 130)])
def test_a_command_ended_by_a_signal_exits_128_plus_n(privpkg_cli: PrivpkgCLI, tmp_path: Path, sig: str, code: int) -> None:
    lock = tmp_path / "pylock.toml"
    lock.write_text(EMPTY_LOCK)
    res = privpkg_cli("env", "run", "--lock", lock, "--", "sh", "-c", f"kill -{sig} $$")
    assert (res.returncode, res.stderr) == (code, ""), res


def test_sigterm_runs_the_cleanups_ctrl_c_runs(privpkg_cli: PrivpkgCLI, tmp_path: Path) -> None:
    """``resolve -r A -r B`` holds a private temp folder while it reads the files; B includes a
    FIFO nobody writes, so it waits there. SIGTERM: the folder is removed, nothing is written,
    one line, exit 143 (128 + 15)."""
    work = tmp_path / "work"
    work.mkdir()
    os.mkfifo(work / "pipe.txt")
    (work / "a.txt").write_text("six\n")
    (work / "b.txt").write_text("-r pipe.txt\n")
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.Popen(privpkg_cli.argv("resolve", "-r", "a.txt", "-r", "b.txt", "-o", "out.txt"), cwd=work,
                            env={**privpkg_cli.env, "TMPDIR": str(temp)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: any(temp.iterdir()) or proc.poll() is not None, "resolve's temp folder")
    assert proc.poll() is None, proc.communicate()
    assert [p.name.startswith("privpkg-resolve-") for p in temp.iterdir()] == [True]
    time.sleep(0.3)  # waiting at the FIFO now
    proc.send_signal(signal.SIGTERM)
    code, out, err = _finish(proc)
    assert (code, out, err) == (143, "", "privpkg: terminated\n")
    assert list(temp.iterdir()) == [] and not (work / "out.txt").exists()


def test_ctrl_c_where_there_are_no_process_groups_is_left_to_the_console(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Windows has no os.getpgid: its console sends Ctrl-C to the command itself, so privpkg
    waits for it (as uv run does) instead of failing in the handler with a traceback
    (AttributeError). Run here by taking os.getpgid away and sending this process SIGINT once
    the command runs."""
    import threading

    from privpkg.interrupts import wait_passing_signals

    ready = tmp_path / "ready"

    def interrupt() -> None:
        end = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < end:
            time.sleep(0.01)
        if ready.exists():
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.delattr(os, "getpgid")
    sender = threading.Thread(target=interrupt, daemon=True)
    sender.start()
    code = wait_passing_signals([sys.executable, "-c", "import pathlib, sys, time; pathlib.Path(sys.argv[1]).touch(); time.sleep(1.5)", str(ready)])
    sender.join()
    assert code == 0
