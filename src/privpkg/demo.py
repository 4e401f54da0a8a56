"""``privpkg demo``: the whole credential story in one command, on loopback, cleaned up after.

1. start a private PEP 503 feed on 127.0.0.1 that answers 401 without a PAT;
2. store that PAT as a connection in a throwaway encrypted store;
3. create a throwaway venv and run a real ``pip install`` from the feed with no credentials on
   the command line: pip gets a 401, asks keyring, and privpkg's backend answers;
4. import the installed package, check the PAT never appeared in any output, and clean up.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import urllib.error
import urllib.request
import venv
from pathlib import Path

from privpkg import envvars
from privpkg.errors import PrivpkgError

#: pip 23.0 is the first that runs the ``keyring`` CLI (when keyring does not import in its own
#: environment, as in the demo's venv); pip 23.1 added ``--keyring-provider``; pip 26.2 asks the
#: CLI without a username (read from pip's network/auth.py of each version).
PIP_KEYRING_CLI = (23, 0)
PIP_PROVIDER_OPTION = (23, 1)
PIP_CREDS_MODE = (26, 2)


def _say(step: str) -> None:
    sys.stdout.write(step + "\n")
    sys.stdout.flush()


def _indent(text: str) -> str:
    return "".join(f"      | {line}\n" for line in text.rstrip().splitlines())


def _keyring_dir() -> str:
    scripts = sysconfig.get_path("scripts")
    exe = "keyring.exe" if os.name == "nt" else "keyring"
    if os.path.exists(os.path.join(scripts, exe)):
        return scripts
    found = shutil.which("keyring")
    if not found:
        raise RuntimeError("no keyring command found next to this Python or on PATH")
    return os.path.dirname(found)


def pip_flags(version: tuple[int, int], shown: str) -> tuple[list[str], str | None]:
    """What the throwaway venv's pip ``version`` (``shown`` as its version string) needs to ask
    privpkg through the keyring CLI: its provider flags, and why the index URL carries the
    username ``__token__`` (None: it needs none). A pip that cannot run the keyring CLI at all is
    one error line saying so."""
    if version < PIP_KEYRING_CLI:
        raise PrivpkgError(
            f"the demo's venv got pip {shown} from this Python's ensurepip, and a pip before 23.0 asks keyring only "
            "when keyring is installed in its own environment, so it cannot ask privpkg from there: run the demo "
            "with a Python whose `python -m venv` gives pip 23.0 or newer (see README: pip and uv)"
        )
    if version < PIP_PROVIDER_OPTION:
        return [], (f"pip {shown} has no --keyring-provider; with no keyring in its venv it runs the keyring CLI on PATH, "
                    "as `keyring get URL USER`, so the URL carries the username __token__ (not a secret)")
    if version < PIP_CREDS_MODE:
        return ["--keyring-provider", "subprocess"], (f"pip {shown} runs the keyring CLI as `keyring get URL USER`, so "
                                                      "the URL carries the username __token__ (not a secret)")
    return ["--keyring-provider", "subprocess"], None


def run_demo(keep: bool = False) -> int:
    from privpkg.connections import set_connection
    from privpkg.testing import RunningFeedServer, make_wheel, start_feed_server, write_config

    tmp = Path(tempfile.mkdtemp(prefix="privpkg-demo-"))
    server: RunningFeedServer | None = None
    pat = "demo-" + secrets.token_urlsafe(24)
    outputs: list[str] = []
    old_home = os.environ.get(envvars.HOME)
    try:
        home = tmp / "privpkg-home"
        os.environ[envvars.HOME] = str(home)
        wheel = make_wheel(tmp / "wheels", "privpkg-demo-hello", "1.0", body='def hello():\n    return "hello from a private feed"\n')
        cfg = write_config(tmp / "feed.json", [{"path": "/demo-org/_packaging/demo/pypi/simple/", "secret": pat, "dir": wheel.parent}])
        server = start_feed_server(cfg)
        base = f"{server.base}/demo-org/"
        index = f"{base}_packaging/demo/pypi/simple/"
        _say(f"1. started a private feed at {index}")
        try:
            urllib.request.urlopen(index, timeout=10)
            _say("   (unexpected: the feed answered without a PAT)")
        except urllib.error.HTTPError as exc:
            _say(f"   without a PAT it answers HTTP {exc.code} {exc.reason}")

        conn = set_connection("demo-feed", "PythonFeed", base, "PAT", value=pat)
        _say(f"2. stored its PAT as connection {conn.name!r} for target {conn.target}")
        _say(f"   in an encrypted throwaway store: {home}")

        venv_dir = tmp / "venv"
        _say(f"3. creating a throwaway venv: {venv_dir}")
        venv.EnvBuilder(with_pip=True).create(venv_dir)
        py = venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "KEYRING_", "PYTHON_KEYRING"))}
        env["PIP_CONFIG_FILE"] = os.devnull  # the demo must not depend on the user's pip config
        env["PATH"] = _keyring_dir() + os.pathsep + env.get("PATH", "")
        pip_version = subprocess.run([str(py), "-m", "pip", "--version"], capture_output=True, text=True, env=env, check=False).stdout
        m = re.search(r"pip ((\d+)\.(\d+)\S*)", pip_version)
        if not m:
            raise PrivpkgError(f"the demo's venv has no working pip (`python -m pip --version` printed {pip_version.strip()!r})")
        flags, why_user = pip_flags((int(m.group(2)), int(m.group(3))), m.group(1))
        index_arg = index.replace("http://", "http://__token__@") if why_user else index
        cmd = [str(py), "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check",
               *flags, "--index-url", index_arg, "privpkg-demo-hello"]
        _say("4. running (no credentials on the command line):")
        _say("   " + " ".join(["pip", *cmd[3:]]))
        if why_user:
            _say(f"   ({why_user})")
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
        outputs += [res.stdout, res.stderr]
        _say(_indent(res.stdout + res.stderr))
        if res.returncode != 0:
            _say(f"FAILED: pip exited with {res.returncode}")
            return 1
        check = subprocess.run([str(py), "-c", "import privpkg_demo_hello as m; print(m.hello())"],
                               capture_output=True, text=True, env=env, check=False)
        outputs += [check.stdout, check.stderr]
        _say(f"5. the venv imports it: {check.stdout.strip() or check.stderr.strip()}")
        leaked = any(pat in o for o in outputs)
        _say(f"6. the PAT appeared in pip's output: {'YES (bug!)' if leaked else 'no'}")
        ok = check.returncode == 0 and not leaked
        _say("demo succeeded" if ok else "demo FAILED")
        return 0 if ok else 1
    finally:
        if server is not None:
            server.stop()
        if old_home is None:
            os.environ.pop(envvars.HOME, None)
        else:
            os.environ[envvars.HOME] = old_home
        if keep:
            _say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
            _say("cleaned up: feed stopped, throwaway store and venv removed")
