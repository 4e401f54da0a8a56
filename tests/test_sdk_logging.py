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

import datetime as dt
import re
import sys
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
storage = open_workspace_storage(get_workspace(sys.argv[3]))
if sys.argv[2] == "direct":  # the SDK called by hand, not through privpkg's storage calls
    print("found:", storage._container().get_blob_client(sys.argv[4]).get_blob_properties() is not None)
else:
    print("found:", storage.head(sys.argv[4]) is not None)
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
    # Without a pip session the shim has not run: pip's logging prints the records of an SDK
    # request made by hand, which shows the harness can see a leak...
    bare = cli.tool([venv_privpkg_cloud.python, "-c", HARNESS, str(verbosity), "direct", WS, key])
    assert bare.returncode == 0 and "found: True" in bare.output, bare.describe()
    assert SDK_LINES.search(bare.output), bare.output
    # ...but not those of privpkg's own storage calls (privpkg.log.sdk_records_withheld).
    r = cli.tool([venv_privpkg_cloud.python, "-c", HARNESS, str(verbosity), "none", WS, key])
    assert r.returncode == 0 and "found: True" in r.output, r.describe()
    assert not SDK_LINES.search(r.output), r.output
    # Once pip has opened its session (every pip command does before any download), they are gone.
    r = cli.tool([venv_privpkg_cloud.python, "-c", HARNESS, str(verbosity), "session", WS, key])
    assert r.returncode == 0 and "found: True" in r.output, r.describe()
    assert not SDK_LINES.search(r.output), r.output
    _no_signature(r.output)
    cli.outputs.check()


#: A program of the user's that logs everything at DEBUG and calls privpkg's Python API: publish
#: a wheel, register an environment naming it, build it (which signs and fetches the wheel).
USER_APP = """
import logging, sys
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s: %(message)s")
import privpkg
ws, wheel, reqs = sys.argv[1:4]
url = privpkg.Environment.add_private_pip_wheel(ws, wheel, exist_ok=True)
with open(reqs, "w") as fh:
    fh.write(f"{wheel.rsplit('/', 1)[-1].split('-')[0]} @ {url}\\n")
env = privpkg.Environment.from_pip_requirements("app", reqs).register(ws)
print("built", env.build_local(ws))
logging.getLogger("urllib3.connectionpool").debug("the program's own SDK record")
"""


def _session_token_workspace(cli: PrivpkgCLI, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, list[str]]:
    """An S3 workspace on moto that AWS's default chain serves (a profile with a session token,
    as in test_readers); its name and the secrets a log must not show."""
    from test_readers import SECRET, TOKEN, aws_profile, trust

    moto = request.getfixturevalue("moto_server")
    cli.env.update(aws_profile(tmp_path))
    cli.ok("workspace", "add", "team", "--s3", f"s3://{moto.create_bucket()}/p", "--endpoint-url", moto.endpoint)
    trust(cli, moto.endpoint)
    return "team", [SECRET, TOKEN]


def _azure_sas_workspace(cli: PrivpkgCLI, azurite: Azurite) -> tuple[str, list[str]]:
    """An Azure workspace on Azurite whose connection holds a container SAS that can write; its
    name and the secrets a log must not show (the SAS, its signature, raw and URL-quoted)."""
    import urllib.parse

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    url = setup_workspace(cli, azurite, key=None)[1]
    now = dt.datetime.now(dt.UTC)
    sas = generate_container_sas(azurite.account, url.rsplit("/", 1)[1], account_key=azurite.key,
                                 permission=ContainerSasPermissions(read=True, write=True, create=True, list=True),
                                 start=now - dt.timedelta(minutes=5), expiry=now + dt.timedelta(hours=1), protocol="https,http")
    cli.ok("connection", "set", "az-sas", "--category", "AzureBlob", "--target", url, stdin=sas + "\n")
    sig = urllib.parse.parse_qs(sas)["sig"][0]
    return WS, [sas, sig, urllib.parse.quote(sig, safe="")]


@pytest.mark.parametrize("kind", ["s3", "s3-session-token", "azure-sas"])
def test_a_users_debug_logging_gets_no_secret_from_privpkgs_storage_calls(
    privpkg_cli: PrivpkgCLI, request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    """Debug logging is on in the user's program: urllib3 logs every request line (the SAS of an
    AzureBlob connection is in each URL) and botocore the SigV4 canonical request, signature and
    headers (a presigned GET rebuilt whole; a session token). None of it while privpkg's storage
    calls run, an S3 multipart upload's (s3transfer's threads) included."""

    cli = privpkg_cli
    if kind == "s3":
        from test_storage_s3 import WS as ws
        from test_storage_s3 import setup_workspace as setup_s3

        moto = request.getfixturevalue("moto_server")
        setup_s3(cli, moto)
        secrets = [moto.secret_key]
        wheel = make_wheel(tmp_path / "w", "app-pkg", "1.0", payload_size=9 << 20)  # past the 8 MiB multipart threshold
    else:
        ws, secrets = (_session_token_workspace(cli, request, tmp_path) if kind == "s3-session-token"
                       else _azure_sas_workspace(cli, request.getfixturevalue("azurite")))
        wheel = make_wheel(tmp_path / "w", "app-pkg", "1.0")
    r = cli.tool([sys.executable, "-c", USER_APP, ws, wheel, tmp_path / "requirements.txt"])
    assert r.returncode == 0 and "built " in r.output, r.describe()
    # Its own records still show (the check is not vacuous, and privpkg silenced no logger).
    assert "urllib3.connectionpool: the program's own SDK record" in r.output, r.output
    leaked = [s for s in secrets if s in r.output]
    assert not leaked, r.output
    for word in ("Signature", "X-Amz-", "Authorization", "sig=", "urllib3.connectionpool: http"):
        assert word not in r.output, r.output
    cli.outputs.check()


#: As USER_APP, but the program turns on DEBUG for one SDK logger below the top ones (as the
#: SDKs' own docs show: ``urllib3.connectionpool``, ``botocore.endpoint``), its root at WARNING.
CHILD_DEBUG_APP = """
import logging, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
logging.getLogger(sys.argv[3]).setLevel(logging.DEBUG)
import privpkg
print("url", privpkg.Environment.add_private_pip_wheel(sys.argv[1], sys.argv[2], exist_ok=True))
logging.getLogger(sys.argv[3]).debug("the program's own SDK record")
"""


@pytest.mark.parametrize("kind", ["s3-session-token", "azure-sas"])
def test_debug_on_an_sdk_child_logger_gets_no_secret_from_an_upload(
    privpkg_cli: PrivpkgCLI, request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    """A program that sets DEBUG on ``urllib3.connectionpool`` (or ``botocore.endpoint``) alone
    leaves ``urllib3``'s (``botocore``'s) level unset: the uploads must still run on the calling
    thread, where privpkg withholds the SDKs' records. A wheel past 8 MiB is uploaded in blocks
    (parts), on the SDKs' own threads otherwise, whose request lines carry the SAS (the session
    token's header)."""

    cli = privpkg_cli
    wheel = make_wheel(tmp_path / "w", "app-pkg", "1.0", payload_size=9 << 20)
    if kind == "s3-session-token":
        (ws, secrets), logger = _session_token_workspace(cli, request, tmp_path), "botocore.endpoint"
    else:
        (ws, secrets), logger = _azure_sas_workspace(cli, request.getfixturevalue("azurite")), "urllib3.connectionpool"
    r = cli.tool([sys.executable, "-c", CHILD_DEBUG_APP, ws, wheel, logger])
    assert r.returncode == 0 and "url privpkg://" in r.output, r.describe()
    assert f"{logger}: the program's own SDK record" in r.output, r.output  # the program's DEBUG shows
    leaked = [s for s in secrets if s in r.output]
    assert not leaked, r.output
    cli.outputs.check()


#: A program that sets a record factory of its own, not chaining (a LogRecord subclass, as the
#: logging cookbook's custom records), after privpkg's first storage call, then calls it again.
LATE_FACTORY_APP = """
import logging, sys
class Record(logging.LogRecord):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.request_id = "-"
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s: %(message)s %(request_id)s")
import privpkg
ws = sys.argv[1]
logging.setLogRecordFactory(Record)  # before privpkg's first call: privpkg's wraps it
print("url", privpkg.Environment.add_private_pip_wheel(ws, sys.argv[2]))
logging.setLogRecordFactory(Record)  # after it: privpkg's is gone
print("url", privpkg.Environment.add_private_pip_wheel(ws, sys.argv[3]))
logging.getLogger("urllib3.connectionpool").debug("the program's own SDK record")
"""


def test_a_record_factory_set_after_privpkgs_gets_no_secret(privpkg_cli: PrivpkgCLI, azurite: Azurite, tmp_path: Path) -> None:
    """privpkg's record factory is set at its first storage call; a program that replaces the
    factory afterwards (not chaining to the one it found) must not get the SAS of the next call."""
    cli = privpkg_cli
    ws, secrets = _azure_sas_workspace(cli, azurite)
    first, second = make_wheel(tmp_path / "w", "app-pkg", "1.0"), make_wheel(tmp_path / "w", "app-pkg", "2.0")
    r = cli.tool([sys.executable, "-c", LATE_FACTORY_APP, ws, first, second])
    assert r.returncode == 0 and r.output.count("url privpkg://") == 2, r.describe()
    assert "urllib3.connectionpool: the program's own SDK record -" in r.output, r.output  # its factory is in use
    leaked = [s for s in secrets if s in r.output]
    assert not leaked, r.output
    cli.outputs.check()
