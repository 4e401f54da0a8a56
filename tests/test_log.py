"""privpkg's lines inside a host program (privpkg.log, and the pip shim's copy of its handler):
the same ``privpkg: warning:`` line everywhere, shown exactly when the host shows its own lines
of that level. Each case runs in a fresh interpreter, so the logging set-up is the host's alone
(pytest's own handlers would otherwise be the host)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # each case runs a fresh interpreter

LINES = "from privpkg import log\nlog.info('an info line')\nlog.warning('a warning line')\nlog.error('an error line')\n"
PIP_LOGGING = "import logging.config\nfrom pip._internal.utils.logging import setup_logging\nsetup_logging({verbosity}, True, {log_file!r})\n"


def _stderr(program: str) -> list[str]:
    res = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0 and "Traceback" not in res.stderr and "Logging error" not in res.stderr, res.stderr
    return res.stderr.splitlines()


def test_no_host_logging_prints_the_lines_as_before() -> None:
    """Nobody configured logging (privpkg's CLI, keyring's CLI, a script): INFO and up, one line each."""
    assert _stderr(LINES) == ["privpkg: an info line", "privpkg: warning: a warning line", "privpkg: error: an error line"]


@pytest.mark.parametrize(
    ("verbosity", "log_file", "shown"),
    [
        (1, None, ["info", "warning", "error"]),  # pip -v
        (0, None, ["info", "warning", "error"]),  # pip
        (-1, None, ["warning", "error"]),  # pip -q
        (-2, None, ["error"]),  # pip -qq
        (-2, "LOG", ["warning", "error"]),  # pip -qq --log FILE: pip's console still shows warnings
    ],
    ids=["-v", "default", "-q", "-qq", "-qq --log"],
)
def test_inside_pip_its_verbosity_decides(tmp_path: Path, verbosity: int, log_file: str | None, shown: list[str]) -> None:
    """Under pip's logging set-up privpkg's lines show exactly when pip's own lines of the same
    level do, and keep privpkg's form (pip's formatter would write "WARNING: privpkg: ...")."""
    log = None if log_file is None else str(tmp_path) + "/pip.log"
    pip_own = "import logging\nfor n in ('info', 'warning', 'error'):\n    getattr(logging.getLogger('pip._internal.x'), n)('pip ' + n)\n"
    lines = _stderr(PIP_LOGGING.format(verbosity=verbosity, log_file=log) + pip_own + LINES)
    pip_shown = [ln.rsplit(" ", 1)[-1] for ln in lines if ln.startswith(("pip ", "WARNING: pip ", "ERROR: pip "))]
    ours = [ln for ln in lines if ln.startswith("privpkg: ")]
    expected = {"info": "privpkg: an info line", "warning": "privpkg: warning: a warning line", "error": "privpkg: error: an error line"}
    assert ours == [expected[k] for k in shown], lines
    # pip's INFO goes to stdout (not captured here); its warnings and errors are on stderr.
    assert pip_shown == [k for k in shown if k != "info"], lines


def test_a_host_handler_on_the_privpkg_logger_gets_the_records() -> None:
    """A host that put its own handler on "privpkg" formats the records itself; privpkg adds none."""
    program = (
        "import logging, sys\nh = logging.StreamHandler(sys.stderr)\nh.setFormatter(logging.Formatter('%(levelname)s %(name)s %(message)s'))\n"
        "logging.getLogger('privpkg').addHandler(h)\n" + LINES + "assert logging.getLogger('privpkg').handlers == [h]\n"
    )
    assert _stderr(program) == ["WARNING privpkg a warning line", "ERROR privpkg an error line"]


def test_the_pip_shim_copy_prints_the_same_line_once() -> None:
    """The shim's stdlib-only copy of the handler and privpkg.log share one handler: one line each."""
    program = "from privpkg import pip_shim\npip_shim.warn('from the shim')\n" + LINES + "import logging\nassert len(logging.getLogger('privpkg').handlers) == 1\n"
    assert _stderr(program) == [
        "privpkg: warning: from the shim", "privpkg: an info line", "privpkg: warning: a warning line", "privpkg: error: an error line",
    ]


def test_no_stderr_loses_only_the_line() -> None:
    """A closed or missing stderr: no exception and no "--- Logging error ---"."""
    program = "import sys\nsys.stderr.close()\nfrom privpkg import log, pip_shim\nlog.warning('x')\npip_shim.warn('y')\nsys.stderr = None\nlog.warning('z')\nprint('survived')\n"
    res = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0 and res.stdout == "survived\n", res
