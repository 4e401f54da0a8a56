"""The pip that will run, as that pip sees it: its version, its effective keyring provider, and
whether the keyring it will use is reachable and is privpkg's. ``doctor`` prints the findings.

pip's rules, read from its source (pip/_internal/network/auth.py, configuration.py) and measured
with pip 23.1, 23.2.1, 26.1 and 26.3:

- the provider comes from ``--keyring-provider``, else ``PIP_KEYRING_PROVIDER``, else the config
  files in pip's order (global, user, site: a later file wins, ``[install]`` over ``[global]``);
  ``auto`` (the default) imports keyring if it can, else runs the ``keyring`` CLI, and with
  ``--no-input`` asks nothing at all;
- ``subprocess`` runs the first ``keyring`` on PATH, skipping the one in pip's own scripts folder;
- pip < 26.2 runs ``keyring get URL USER`` only when the index URL carries a username: without one
  it never calls keyring (privpkg is never asked, so only this check can say what to change);
  pip >= 26.2 runs ``keyring --mode=creds --output=json get URL``, which needs keyring >= 25.2.1;
- pip < 23.1 has no provider setting (it ignores ``keyring-provider``) and never asks keyring with
  ``--no-input``: it imports keyring if it can, else pip 23.0 runs the first ``keyring`` on PATH
  (its own scripts folder included), and pip < 23.0 asks no keyring at all (read from pip 22.3.1's
  and 23.0.1's network/auth.py; measured with 23.0.1).

Everything is learnt by running small probes with pip's own interpreter (and the keyring CLI's),
with this process's environment, so the answer is the one pip would get. A finding is a
``(name, status, detail)`` triple; a failing detail is one line that ends in what to change.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from packaging.version import InvalidVersion, Version

#: The first pip that asks the keyring CLI without a username (``--mode=creds``).
PIP_CREDS_MODE = Version("26.2")
#: The first pip with ``--keyring-provider`` (and so one that asks keyring with ``--no-input``).
PIP_PROVIDER_OPTION = Version("23.1")
#: The first pip that runs the keyring CLI when keyring does not import in its environment.
PIP_KEYRING_CLI = Version("23.0")
#: The first keyring whose CLI has ``--mode=creds --output=json``.
KEYRING_CREDS_MODE = Version("25.2.1")
_BACKEND = "privpkg.keyring_backend.PrivpkgKeyring"
_TIMEOUT = 60

Finding = tuple[str, Literal["ok", "warn", "fail"], str]

# Run by keyring's interpreter (pip's for the import provider, the CLI's for subprocess): which
# keyring, and which backends keyring.get_keyring() will ask. Python 3.7 syntax, stdlib only.
_KEYRING_PROBE = r"""
import sys
if sys.path and sys.path[0] == "":
    del sys.path[0]  # `python -c` puts the working directory first; pip's own runs do not
def _keyring_info():
    info = {"importable": False}
    try:
        import keyring
    except ImportError:
        return info
    except Exception as exc:
        info["error"] = "%s: %s" % (type(exc).__name__, exc)
        return info
    info["importable"] = True
    try:
        from importlib.metadata import version
        info["version"] = version("keyring")
    except Exception:
        info["version"] = None
    try:
        kr = keyring.get_keyring()
        chain = list(getattr(kr, "backends", None) or [kr])
        info["backends"] = ["%s.%s" % (type(b).__module__, type(b).__name__) for b in chain]
    except Exception as exc:
        info["error"] = "%s: %s" % (type(exc).__name__, exc)
    return info
"""

_PIP_PROBE = _KEYRING_PROBE + r"""
import json, os, shutil, sys, sysconfig
out = {"executable": sys.executable, "prefix": sys.prefix, "pip": None, "files": []}
try:
    import pip
    out["pip"] = pip.__version__
    out["pip_dir"] = os.path.dirname(os.path.abspath(pip.__file__))
except Exception as exc:
    out["error"] = "%s: %s" % (type(exc).__name__, exc)
    print(json.dumps(out))
    sys.exit(0)
KEYS = ("keyring-provider", "no-input", "index-url", "extra-index-url")
try:
    from pip._internal.configuration import Configuration
    conf = Configuration(isolated=False)
    conf.load()
    for kind, parsers in conf._parsers.items():  # pip's load order: global, user, site, $PIP_CONFIG_FILE
        for fname, parser in parsers:
            for section in ("global", "install"):
                if parser.has_section(section):
                    for key, value in parser.items(section):
                        if key.lower().replace("_", "-") in KEYS:
                            out["files"].append([str(kind), fname, section, key.lower().replace("_", "-"), value])
except Exception as exc:
    out["config_error"] = "%s: %s" % (type(exc).__name__, exc)
# pip's own choice of keyring CLI (get_keyring_provider): the first on PATH, skipping its scripts.
scripts = sysconfig.get_path("scripts")
out["scripts"] = scripts
cli = shutil.which("keyring")
if cli and cli.startswith(scripts):
    keep = []
    for entry in os.environ.get("PATH", os.defpath).split(os.pathsep):
        try:
            if not os.path.samefile(entry, scripts):
                keep.append(entry)
        except OSError:
            pass
    cli = shutil.which("keyring", path=os.pathsep.join(keep))
out["cli"] = cli
out["cli_any"] = shutil.which("keyring")  # pip 23.0's choice: the first on PATH, its own included
out["skipped_own"] = bool(shutil.which("keyring")) and shutil.which("keyring").startswith(scripts)
out["keyring"] = _keyring_info()
print(json.dumps(out))
"""

_CLI_PROBE = _KEYRING_PROBE + "\nimport json\nprint(json.dumps(_keyring_info()))\n"


def _probe(python: str, code: str) -> dict[str, Any] | None:
    try:
        # cwd "/": `-c` puts the working directory first on sys.path, and a stray json.py in a
        # project folder must not run (as conda's doctor probe does).
        exe = os.path.abspath(python) if os.sep in python else python
        res = subprocess.run([exe, "-c", code], capture_output=True, text=True, timeout=_TIMEOUT,
                             stdin=subprocess.DEVNULL, check=False, cwd=os.path.abspath(os.sep))
        data = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 and res.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    return data if isinstance(data, dict) else None


def script_interpreter(exe: Path) -> str | None:
    """The Python that runs ``exe``: ``exe`` itself if it is not a script (a ``python`` binary),
    else the one its ``#!`` line names (pip's ``/bin/sh`` launcher for long paths included).
    None for any other wrapper (a pyenv shim)."""
    try:
        with open(exe, "rb") as f:
            head = f.read(1024)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return str(exe)
    lines = head.decode("utf-8", "replace").splitlines()
    try:
        argv = shlex.split(lines[0][2:])
    except ValueError:
        return None
    if argv and os.path.basename(argv[0]) == "env":
        argv = [a for a in argv[1:] if not a.startswith("-")]
        found = shutil.which(argv[0]) if argv else None
        argv = [found] if found else []
    if argv and os.path.basename(argv[0]) == "sh" and len(lines) > 1:
        m = re.match(r"""'''exec' "?([^"]+?)"? "\$0" """, lines[1])
        argv = [m.group(1)] if m else []
    if argv and "python" in os.path.basename(argv[0]) and Path(argv[0]).exists():
        return argv[0]
    return None


def _interpreter_from_version(pip: str) -> str | None:
    """For a wrapper: ``pip --version`` names pip's folder (``PREFIX/lib/pythonX.Y/site-packages/pip``);
    the interpreter is then ``PREFIX/bin/pythonX.Y``."""
    try:
        res = subprocess.run([pip, "--version"], capture_output=True, text=True, timeout=_TIMEOUT,
                             stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.match(r"pip \S+ from (.+?)[/\\]lib[/\\](python\d+\.\d+)[/\\](?:site|dist)-packages[/\\]pip \(", res.stdout)
    if not m:
        return None
    for name in (m.group(2), "python3", "python"):
        exe = Path(m.group(1)) / "bin" / name
        if exe.exists():
            return str(exe)
    return None


def _version(text: str | None) -> Version | None:
    try:
        return Version(text) if text else None
    except InvalidVersion:
        return None


def has_username(url: str) -> bool:
    try:
        return bool(urlsplit(url).username)
    except ValueError:
        return False


def with_token(url: str) -> str:
    """``url`` as pip < 26.2 needs it: ``__token__@`` before the host (the username privpkg's
    connections answer with by default)."""
    parts = urlsplit(url)
    return parts._replace(netloc="__token__@" + parts.netloc).geturl()


def _setting(files: list[list[str]], key: str, env_var: str) -> tuple[str | None, str]:
    """pip's effective value for ``key`` and where it comes from: the environment variable, else
    the last config file in pip's order, ``[install]`` winning over ``[global]``."""
    if os.environ.get(env_var):
        return os.environ[env_var].strip(), f"${env_var}"
    found: tuple[str | None, str] = (None, "")
    for section in ("global", "install"):
        for _kind, fname, sect, k, value in files:
            if sect == section and k == key:
                found = (value.strip(), f"{fname} [{sect}]")
    return found


def _served_index_urls(files: list[list[str]]) -> list[str]:
    """Index URLs pip is configured with (environment, config files) that a privpkg connection
    answers: the URLs a pip < 26.2 must carry a username in."""
    from privpkg.connections import CredentialLookup

    urls: list[str] = []
    for key, var in (("index-url", "PIP_INDEX_URL"), ("extra-index-url", "PIP_EXTRA_INDEX_URL")):
        value, _ = _setting(files, key, var)
        urls += (value or "").split()
    try:
        lookup = CredentialLookup()
        return [u for u in urls if u.startswith(("http://", "https://")) and lookup.find(u) is not None]
    except Exception:  # noqa: BLE001 - an unreadable store is reported by doctor's own checks
        return []


def check_pip(pip: str | None = None, url: str | None = None) -> list[Finding]:
    """What stands between ``pip`` (a pip executable or a Python interpreter; default: ``pip``
    on PATH) and privpkg's credentials, for an install from ``url`` (default: the index URLs pip
    is configured with). One finding per line doctor prints."""
    from privpkg.urls import redact

    exe = shutil.which(pip or "pip")
    if exe is None:
        if pip:
            return [("pip", "fail", f"{pip} is not an executable pip or Python: name the pip you use with --pip PATH")]
        return [("pip", "warn", "no `pip` on PATH, so the pip you use was not checked: name it with `privpkg doctor --pip PATH`")]
    python = script_interpreter(Path(exe)) or _interpreter_from_version(exe)
    info = _probe(python, _PIP_PROBE) if python else None
    if info is None or not info.get("pip"):
        why = f" ({info['error']})" if info and info.get("error") else ""
        return [("pip", "fail", f"could not run {exe} (or find the Python behind it){why}: name the pip you use with --pip PATH")]

    found: list[Finding] = []
    pip_version = _version(info["pip"])
    prefix = info["prefix"]
    found.append(("pip", "ok", f"pip {info['pip']} ({exe}, environment {prefix})"))
    files: list[list[str]] = info.get("files") or []
    if info.get("config_error"):
        found.append(("pip-provider", "warn", f"could not read pip's configuration with pip's own code ({info['config_error']}); checked the environment only"))
    provider, source = _setting(files, "keyring-provider", "PIP_KEYRING_PROVIDER")
    no_input, no_input_source = _setting(files, "no-input", "PIP_NO_INPUT")
    no_input_on = (no_input or "").lower() in ("1", "true", "yes", "on")
    kr = info.get("keyring") or {}
    privpkg_in_pip = _BACKEND in (kr.get("backends") or [])
    upgrade_pip = f"{info['executable']} -m pip install -U 'pip>=26.2'"

    if pip_version is not None and pip_version < PIP_PROVIDER_OPTION:
        if no_input_on:
            found.append(("pip-provider", "fail", (f"pip {info['pip']} never asks keyring with no-input set (from {no_input_source}), "
                          f"and has no keyring-provider setting (pip 23.1 added it): upgrade pip ({upgrade_pip})")))
            return found
        ignored = f" (it ignores keyring-provider = {provider} from {source})" if provider else ""
        found.append(("pip-provider", "warn", (f"pip {info['pip']} has no keyring-provider setting{ignored}, so it never asks keyring "
                      f"with --no-input (pipx and build pass it): upgrade pip ({upgrade_pip})")))
        if kr.get("importable"):
            effective = "import"
        elif pip_version < PIP_KEYRING_CLI:
            found.append(("pip-keyring", "fail", (f"pip {info['pip']} asks keyring only when keyring imports in its own environment "
                          f"({prefix}), and it does not: upgrade pip ({upgrade_pip})")))
            return found
        else:
            effective = "subprocess"
        cli = info.get("cli_any")  # pip 23.0 runs the first keyring on PATH, its own scripts folder included
    else:
        if provider == "disabled":
            found.append(("pip-provider", "fail", (f"pip keyring-provider = disabled (from {source}): pip never asks keyring; "
                          "remove that setting and run `privpkg setup pip`")))
            return found
        if provider not in ("import", "subprocess"):
            if no_input_on:
                found.append(("pip-provider", "fail", (f"pip keyring-provider is auto and no-input is set (from {no_input_source}): pip then "
                              "never asks keyring; run `privpkg setup pip` (keyring-provider = subprocess)")))
                return found
            found.append(("pip-provider", "warn", (f"pip keyring-provider is auto{f' (from {source})' if source else ' (not set)'}: pip never "
                          "asks keyring with --no-input (pipx and build pass it); run `privpkg setup pip`")))
            effective = "import" if kr.get("importable") else "subprocess"
        else:
            found.append(("pip-provider", "ok", f"pip keyring-provider = {provider} (from {source})"))
            effective = provider
        cli = info.get("cli")

    if effective == "import":
        if privpkg_in_pip:
            found.append(("pip-keyring", "ok", f"pip imports keyring {kr.get('version') or '?'} in {prefix}; privpkg's backend is active there"))
        elif pip_version is not None and pip_version < PIP_PROVIDER_OPTION:
            found.append(("pip-keyring", "fail", (f"pip {info['pip']} imports keyring from {prefix}, where privpkg's backend is not active "
                          f"({kr.get('error') or ', '.join(kr.get('backends') or [])}): install privpkg there, or upgrade pip "
                          f"({upgrade_pip}) and run `privpkg setup pip`")))
        elif kr.get("importable"):
            found.append(("pip-keyring", "fail", (f"pip imports keyring from {prefix}, where privpkg's backend is not active "
                          f"({kr.get('error') or ', '.join(kr.get('backends') or [])}): set keyring-provider = subprocess for this pip "
                          f"({prefix}/pip.conf) so it runs privpkg's keyring CLI")))
        else:
            found.append(("pip-keyring", "fail", (f"pip keyring-provider = import, but keyring does not import in {prefix}: "
                          "set keyring-provider = subprocess for this pip (`privpkg setup pip` writes it in your pip config)")))
        return found

    if not cli:
        if pip_version is not None and pip_version < PIP_PROVIDER_OPTION:
            found.append(("pip-keyring", "fail", (f"pip {info['pip']} cannot import keyring in {prefix} and finds no keyring CLI on PATH: "
                          f"put the bin/ folder of the environment where privpkg is installed on PATH, or upgrade pip ({upgrade_pip})")))
        elif info.get("skipped_own") and privpkg_in_pip:
            fix = (f"set ${source[1:]}=import for this pip" if source.startswith("$") else
                   f"set keyring-provider = import in {prefix}/pip.conf (`privpkg setup pip` run from this environment writes it)")
            found.append(("pip-keyring", "fail", f"pip skips the keyring CLI in its own {info['scripts']} and finds no other on PATH: {fix}"))
        else:
            found.append(("pip-keyring", "fail", ("pip finds no keyring CLI on PATH (it skips the one in its own environment): "
                          "put the bin/ folder of the environment where privpkg is installed on PATH")))
        return found
    cli_python = script_interpreter(Path(cli))
    cli_info = _probe(cli_python, _CLI_PROBE) if cli_python else None
    if cli_info is None:
        found.append(("pip-keyring", "warn", f"pip runs the keyring CLI {cli}, which privpkg could not inspect"))
    elif _BACKEND not in (cli_info.get("backends") or []):
        found.append(("pip-keyring", "fail", (f"pip runs the keyring CLI {cli}, where privpkg's backend is not active "
                      f"({cli_info.get('error') or ', '.join(cli_info.get('backends') or [])}): put the bin/ folder of privpkg's "
                      "environment before it on PATH")))
        return found
    else:
        kv = _version(cli_info.get("version"))
        if pip_version is not None and pip_version >= PIP_CREDS_MODE and kv is not None and kv < KEYRING_CREDS_MODE:
            found.append(("pip-keyring", "fail", (f"pip {info['pip']} runs `{cli} --mode=creds`, which keyring {kv} does not have: "
                          f"upgrade keyring there to {KEYRING_CREDS_MODE} or newer")))
            return found
        found.append(("pip-keyring", "ok", f"pip runs the keyring CLI {cli} (keyring {cli_info.get('version') or '?'}); privpkg's backend is active there"))

    if pip_version is not None and pip_version < PIP_CREDS_MODE:
        urls = [url] if url and "://" in url else _served_index_urls(files)
        bare = [u for u in urls if not has_username(u)]
        if bare:
            found.append(("pip-username", "fail", (f"pip {info['pip']} asks the keyring CLI only for index URLs with a username, and "
                          f"{redact(bare[0])} has none: use {with_token(redact(bare[0]))} or upgrade pip ({upgrade_pip})")))
        elif not urls:
            found.append(("pip-username", "warn", (f"pip {info['pip']} asks the keyring CLI only for index URLs with a username: "
                          f"use https://__token__@HOST/... URLs or upgrade pip ({upgrade_pip}); `privpkg doctor --url URL` checks one")))
        else:
            found.append(("pip-username", "ok", f"pip {info['pip']} passes the username in {redact(urls[0])} to the keyring CLI"))
    return found
