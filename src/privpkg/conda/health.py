"""privpkg's checks in ``conda doctor`` (the ``conda_health_checks`` hook; plugin.py prints
each :class:`~privpkg.doctor.Check` with conda's marks).

For the environment ``conda doctor`` examines (``-n``/``-p``, else the active one):

- privpkg itself: version and the interpreter the plugin runs in (base's);
- the store: readable or why not (one line; a wrong master key is a finding, not a crash);
- the ``keyring`` launcher the pip step puts first on PATH (:mod:`privpkg.conda.pipstep`): in
  place and current, or written at the next ``conda create``/``env update``;
- the pip shim in this environment: present (and the interpreter it signs through still
  there), or absent, which is right unless the environment's pip section names ``privpkg://``;
- the environment's pip: older than 26.2 asks keyring only for index URLs with a username.

With ``conda doctor -v`` the launcher's path and the shim's folder are named too.
"""

from __future__ import annotations

import sys
from pathlib import Path

from privpkg.doctor import Check


def checks(prefix: str, verbose: bool = False) -> list[Check]:
    """The findings for the conda environment at ``prefix``; never raises (a failing part is
    one ``fail`` line)."""
    from privpkg import __version__
    from privpkg.conda import envs, pipstep

    out = [Check("privpkg", "ok", f"privpkg {__version__} (conda plugin, {sys.executable})")]
    try:
        from privpkg.connections import store_status

        status = store_status()
        if status.error is not None:
            out.append(Check("store", "fail", f"privpkg's store: {status.error}; run privpkg doctor"))
        elif status.exists:
            n = len(status.document.get("connections") or {})
            out.append(Check("store", "ok", f"privpkg's store is readable ({n} connection{'' if n == 1 else 's'})"))
        else:
            out.append(Check("store", "ok", "privpkg's store is not created yet (privpkg auth login URL adds a connection)"))
    except Exception as exc:  # noqa: BLE001 - conda doctor reports, it does not crash
        out.append(Check("store", "fail", f"privpkg's store: {pipstep.one_line(exc)}"))

    launcher = pipstep.launcher_dir() / "keyring"
    where = f" ({launcher})" if verbose else ""
    if pipstep.launcher_current():
        out.append(Check("launcher", "ok", f"privpkg's keyring launcher for pip sections is in place{where}"))
    else:
        out.append(Check("launcher", "ok", f"privpkg's keyring launcher for pip sections is written at the next conda create or env update{where}"))

    site = envs.shim_site(Path(prefix))
    python = pipstep.env_python(prefix)
    if site is None:
        out.append(Check("pip-shim", "ok", "no privpkg pip shim in this environment (placed when a pip section names privpkg://)"))
    else:
        signer = envs.signing_python(site)
        at = f" in {site}" if verbose else ""
        if signer and Path(signer).exists():
            out.append(Check("pip-shim", "ok", f"privpkg's pip shim is in this environment{at}, signing through {signer}"))
        else:
            out.append(Check("pip-shim", "fail", f"privpkg's pip shim{at} signs through {signer or 'an unknown interpreter'}, which "
                             f"is gone: run privpkg setup pip --python {python} (or --undo to remove it)"))

    version = pipstep.env_pip_version(prefix)
    if version is not None and version < pipstep.PIP_CREDS_MODE:
        shown = ".".join(map(str, version))
        out.append(Check("pip", "warn", f"pip {shown} here asks keyring only for index URLs with a username: use "
                         "https://__token__@HOST/... in pip sections, or pip>=26.2"))
    return out
