"""The test suite's entry point: loads the fixtures and helpers of ``tests/support`` as pytest
plugins and marks each test with the layer it belongs to.

Layers (markers registered in pyproject.toml, selected with ``-m``):

- ``integration``: runs real programs (pip, uv, the keyring CLI, ``python -m privpkg``), builds
  venvs or wheels, or starts servers; ``pytest -m "not integration"`` is the fast, in-process
  unit layer;
- ``azure``: needs Azurite (Node.js); ``s3``: needs moto's S3 server; ``conda``: needs conda.

A test gets its markers from the fixtures it uses (:data:`FIXTURE_MARKERS`), or from its module's
``pytestmark`` when it runs programs without such a fixture.

Helpers are imported from ``support.<module>`` (never from this file); most tests only need the
fixtures.
"""

from __future__ import annotations

import signal

import pytest


# A runner started in the background of a non-interactive shell (`pytest ... &`, some CI
# wrappers) ignores SIGINT and SIGQUIT, and an ignored signal stays ignored across exec: every
# privpkg and command the tests start would ignore them, so the tests of what Ctrl-C and
# `kill -INT` do failed there. Start them as a terminal starts programs: the runner still
# ignores the signals, through a handler, which exec resets to the default.
def _still_ignored(signum: int, frame: object) -> None:
    pass


for _name in ("SIGINT", "SIGQUIT"):
    if signal.getsignal(getattr(signal, _name)) is signal.SIG_IGN:
        signal.signal(getattr(signal, _name), _still_ignored)

pytest_plugins = [
    "support.env",
    "support.builds",
    "support.feeds",
    "support.storage",
    "support.cli",
    "support.collection",
    "support.channelserver",
    "support.conda",
    "support.images",
]

#: A fixture that starts or builds something real puts its users in these layers.
FIXTURE_MARKERS: dict[str, tuple[str, ...]] = {
    "azurite": ("integration", "azure"),
    "azurite_bin": ("integration", "azure"),
    "moto_server": ("integration", "s3"),
    "auth_moto": ("integration", "s3"),  # test_connection_test's moto in its authenticating mode
    "feed": ("integration",),
    "channel_server": ("integration",),  # the loopback conda channel demanding a PAT
    "privpkg_cli": ("integration",),
    "checked_cli": ("integration",),
    "make_env": ("integration",),  # an environment for a subprocess
    "build_env": ("integration",),
    "uv_bin": ("integration",),
    "privpkg_wheel": ("integration",),
    "compat_venv": ("integration",),
    "owned_venv": ("integration",),
    "venv_privpkg": ("integration",),
    "venv_privpkg_cloud": ("integration",),
    "venv_bare_pip": ("integration",),
    "venv_pip231": ("integration",),
    "venv_pip231_shim": ("integration",),
    "conda": ("integration", "conda"),  # real conda (support.conda); skips only when conda is absent
    "conda_install": ("integration", "conda"),
    "conda_base": ("integration", "conda"),
    "conda_channel": ("integration", "conda"),
    "buildah": ("integration",),  # support.images: real image builds (Debian's buildah)
    "base_image": ("integration",),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for marker in sorted({m for f in names & FIXTURE_MARKERS.keys() for m in FIXTURE_MARKERS[f]}):
            item.add_marker(marker)
        if item.get_closest_marker("azure") or item.get_closest_marker("s3") or item.get_closest_marker("conda"):
            item.add_marker("integration")  # a server or tool outside Python is never unit-fast

