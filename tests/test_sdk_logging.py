"""The Azure SDK's HTTP logging stays out of pip's and privpkg's output (issue 8, item 7).

azure-core's ``HttpLoggingPolicy`` logs every request and response (URL, headers) at INFO on
``azure.core.pipeline.policies.http_logging_policy``, and pip's root logger prints INFO at its
default verbosity. Measured here (pip 26.3, azure-core 1.41, azure-storage-blob 12.31, Azurite):

- a real ``pip install "x @ privpkg://..."`` through the shim shows no SDK line at any
  verbosity, because signing is offline: pip's process makes no SDK request at all;
- an SDK request made inside pip's process (what a signer that asks the service, such as a
  user-delegation SAS, would make) would be printed at pip's default verbosity, were it not for
  the shim quieting the ``azure`` logger when pip opens its session: the harness below makes
  such a request under pip's own logging set-up, with and without a pip session;
- ``privpkg wheel add`` (uploads through the SDK) prints only its URL: privpkg's CLI configures
  no root logging, so the SDK's INFO records go nowhere.

No signature appears in any of these outputs, from ``-q`` to ``-vvv``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.builds import Venv
from support.cli import PrivpkgCLI
from support.storage import Azurite
from test_storage_azure import WS, setup_workspace

from privpkg.testing import make_wheel

#: What HttpLoggingPolicy writes (single- and multi-record forms), and request headers it shows.
SDK_LINES = re.compile(r"Request URL:|Response status:|Request headers:|Response headers:|x-ms-client-request-id|azsdk-python")

#: Run in an environment with pip, privpkg and azure-storage-blob: pip's own logging set-up at
#: the given verbosity, a pip session opened (the shim's hook runs) unless told not to, then one
#: SDK request (a HEAD of a blob) in this process.
HARNESS = """
import logging.config, sys
from pip._internal.utils.logging import setup_logging
setup_logging(verbosity=int(sys.argv[1]), no_color=True, user_log_file=None)
if sys.argv[2] == "session":
    from pip._internal.network.session import PipSession
    PipSession()
from privpkg.access import open_workspace_storage
from privpkg.workspace import get_workspace
print("found:", open_workspace_storage(get_workspace(sys.argv[3])).head(sys.argv[4]) is not None)
"""


def _no_signature(text: str) -> None:
    assert re.search(r"sig=(?!<redacted>)", text) is None, text
    assert "se=" not in text and "sp=r" not in text, text


def test_pip_and_wheel_add_show_no_sdk_logging(
    privpkg_cli: PrivpkgCLI, azurite: Azurite, venv_privpkg_cloud: Venv, tmp_path: Path
) -> None:
    cli = privpkg_cli
    setup_workspace(cli, azurite)
    wheel = make_wheel(tmp_path / "w", "demo-pkg", "1.0", payload_size=3 << 20)
    res = cli("wheel", "add", wheel, "--workspace", WS)
    url = f"privpkg://{WS}/wheels/{wheel.name}"
    assert res.returncode == 0 and res.stdout == url + "\n", res.stdout + res.stderr
    assert not SDK_LINES.search(res.stderr) and "azure" not in res.stderr.lower(), res.stderr

    for flags in ([], ["-v"], ["-vv"], ["-vvv"], ["-q"]):
        target = tmp_path / ("t" + "".join(flags))
        r = cli.tool([*venv_privpkg_cloud.pip, "install", "--no-cache-dir", *flags, "--target", target, f"demo-pkg @ {url}"])
        assert r.returncode == 0, r.describe()
        assert not SDK_LINES.search(r.output), r.output
        _no_signature(r.output)
        if len(flags) == 0 or flags == ["-v"]:
            # Nothing but pip's own lines (its progress bar included).
            lines = [ln for ln in r.output.splitlines() if ln.strip() and not ln.strip().startswith("━")]
            assert all(ln.startswith(("Using pip", "Collecting ", "  Downloading ", "Installing ", "Successfully ")) for ln in lines), r.output

    # The error path (the wheel is not there): one privpkg line inside pip's, nothing from the SDK.
    missing = url.replace("1.0", "9.0")
    r = cli.tool([*venv_privpkg_cloud.pip, "install", "--no-cache-dir", "--target", tmp_path / "tm", f"demo-pkg @ {missing}"])
    assert r.returncode != 0 and "privpkg: no wheel demo_pkg-9.0-py3-none-any.whl in workspace 'az'" in r.output, r.describe()
    assert not SDK_LINES.search(r.output), r.output
    assert cli.outputs.check() == 0


@pytest.mark.parametrize("verbosity", [0, 1, 2])
def test_an_sdk_request_inside_pip_is_not_printed(
    privpkg_cli: PrivpkgCLI, azurite: Azurite, venv_privpkg_cloud: Venv, tmp_path: Path, verbosity: int
) -> None:
    cli = privpkg_cli
    setup_workspace(cli, azurite)
    wheel = make_wheel(tmp_path / "w", "demo-pkg", "1.0")
    cli.ok("wheel", "add", wheel, "--workspace", WS)
    key = f"wheels/{wheel.name}"
    # Without a pip session the shim has not run: pip's logging prints the SDK's records, which
    # shows the harness can see a leak.
    bare = cli.tool([venv_privpkg_cloud.python, "-c", HARNESS, str(verbosity), "none", WS, key])
    assert bare.returncode == 0 and "found: True" in bare.output, bare.describe()
    assert SDK_LINES.search(bare.output), bare.output
    # Once pip has opened its session (every pip command does before any download), they are gone.
    r = cli.tool([venv_privpkg_cloud.python, "-c", HARNESS, str(verbosity), "session", WS, key])
    assert r.returncode == 0 and "found: True" in r.output, r.describe()
    assert not SDK_LINES.search(r.output), r.output
    _no_signature(r.output)
    cli.outputs.check()
