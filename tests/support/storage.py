"""Storage servers for the tests: Azurite (the Azure Blob emulator, from npm) started on a free
loopback port and stopped by PID, and moto's S3 server (``ThreadedMotoServer``, in this process).
Each test creates its own container or bucket on the one server of its worker's session.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from privpkg.testing import start_server, stop_process
from support.builds import locked
from support.env import REPO, missing_tool, run

AZURITE_VERSION = "3.35.0"
AZURITE_ACCOUNT = "devstoreaccount1"
#: Azurite's well-known development account key (public, but still never to be printed).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#: The newest service version Azurite 3.35 knows; the SDK's default is newer.
AZURITE_API_VERSION = "2025-11-05"
#: npm install cache for Azurite, kept between runs (gitignored).
AZURITE_NPM_DIR = REPO / ".cache" / "azurite-npm"


@dataclass
class Azurite:
    """One running ``azurite-blob`` on 127.0.0.1."""

    port: int
    location: Path
    proc: subprocess.Popen[bytes] = field(repr=False)
    account: str = AZURITE_ACCOUNT
    key: str = field(default=AZURITE_KEY, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.account}"

    def container_url(self, container: str) -> str:
        return f"{self.endpoint}/{container}"

    def service(self) -> Any:
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(
            self.endpoint, credential={"account_name": self.account, "account_key": self.key}, api_version=AZURITE_API_VERSION
        )

    def create_container(self, name: str | None = None) -> str:
        """Create a container (a fresh random name by default); return its URL."""
        name = name or f"wheels-{secrets.token_hex(5)}"
        self.service().create_container(name)
        return self.container_url(name)

    def container(self, name: str) -> Any:
        return self.service().get_container_client(name)

    def sas_url(self, container: str, blob: str, ttl: int = 300) -> str:
        """A read SAS made here, independently of privpkg (to look at blobs from outside)."""
        import datetime as dt

        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        now = dt.datetime.now(dt.UTC)
        sas = generate_blob_sas(
            self.account, container, blob, account_key=self.key, permission=BlobSasPermissions(read=True),
            start=now - dt.timedelta(minutes=5), expiry=now + dt.timedelta(seconds=ttl), protocol="https,http",
        )
        return f"{self.container_url(container)}/{urllib.parse.quote(blob)}?{sas}"

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        stop_process(self.proc)


class ToolMissing(Exception):
    """A program the storage servers need is not installed."""


def install_azurite() -> Path:
    """``azurite-blob`` from ``npm install azurite@AZURITE_VERSION`` into ``.cache/azurite-npm``,
    installed once (under a lock, so xdist workers and the benchmarks share it) and reused by
    later runs. :class:`ToolMissing` when node or npm is absent, RuntimeError when npm fails."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise ToolMissing(f"Azurite needs Node.js: {'node' if not node else 'npm'} is not on PATH; install Node.js 18 or later with npm")
    root = AZURITE_NPM_DIR
    root.parent.mkdir(parents=True, exist_ok=True)
    done = root / f".installed-{AZURITE_VERSION}"
    binary = root / "node_modules" / ".bin" / "azurite-blob"
    with locked(root.parent / "azurite-npm.lock"):
        if not (done.exists() and binary.exists()):
            root.mkdir(parents=True, exist_ok=True)
            # A package.json pins npm's install prefix here (npm would otherwise walk up).
            (root / "package.json").write_text('{"name": "privpkg-test-azurite", "private": true}\n')
            env = {**os.environ, "npm_config_update_notifier": "false"}
            r = run([npm, "install", "--no-audit", "--no-fund", "--prefix", root, f"azurite@{AZURITE_VERSION}"], env, cwd=root, timeout=600)
            if r.returncode != 0 or not binary.exists():
                raise RuntimeError(f"npm install azurite@{AZURITE_VERSION} did not create {binary}:\n{r.describe()}")
            done.write_text(f"{r.seconds:.1f}s\n")
    return binary


@pytest.fixture(scope="session")
def azurite_bin() -> Path:
    """The installed ``azurite-blob`` (see :func:`install_azurite`)."""
    try:
        return install_azurite()
    except ToolMissing as exc:
        missing_tool(str(exc))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


def start_azurite(binary: Path, location: Path) -> Azurite:
    """Start Azurite's blob service with its data in ``location``."""
    node = shutil.which("node")
    assert node is not None
    location.mkdir(parents=True, exist_ok=True)

    def argv(port: int) -> list[str]:
        return [
            node, str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(location),
            "--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry",
        ]

    proc, port = start_server(argv, location / "azurite.log", "Azurite")
    return Azurite(port, location, proc)


@pytest.fixture(scope="session")
def azurite(azurite_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """A running Azurite for this worker's session; each test creates its own container."""
    server = start_azurite(azurite_bin, tmp_path_factory.mktemp("azurite"))
    try:
        yield server
    finally:
        server.stop()


@dataclass
class MotoServer:
    """One running ``moto.server`` (S3) on 127.0.0.1. moto does not check signatures."""

    port: int
    access_key: str = "testing-AKID"
    secret_key: str = field(default_factory=lambda: "s3-secret-" + secrets.token_urlsafe(24), repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
        )

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"wheels-{secrets.token_hex(5)}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's ``ThreadedMotoServer`` (S3 and the rest of its AWS) on a free loopback port, in
    this worker's process for its session; each test creates its own bucket."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield MotoServer(server.get_host_and_port()[1])
    finally:
        server.stop()


