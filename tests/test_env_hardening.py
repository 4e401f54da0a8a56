"""Issue 10's registry under stress, on the real backends (Azurite, moto's S3 server, a folder):
a cloud registry's local copies never outlive the objects they copied (a container or bucket
deleted and made again under the same name), labels moved by racing writers keep one clean
sequence, and eight registrations from separate processes make one version.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.storage import AZURITE_KEY, Azurite, MotoServer

from privpkg.environments import registry
from privpkg.environments.spec import Spec
from privpkg.storage.base import Credential, Storage


def _lock(version: str) -> str:
    """A canonical one-package lock; ``version`` of one length keeps every file's size."""
    from privpkg.environments import pylock

    return pylock.dump(pylock.load(
        f'lock-version = "1.0"\ncreated-by = "test"\n[[packages]]\nname = "requests"\nversion = "{version}"\n[[packages.wheels]]\n'
        f'url = "https://files.example/requests-{version}-py3-none-any.whl"\nhashes = {{sha256 = "{"0" * 64}"}}\n'))


def spec(*pip: str, name: str = "train") -> Spec:
    return Spec(name, python="3.11", pip=pip or ("requests>=2",), sources=(("requirements.txt", "\n".join(pip).encode()),))


CLOUD = [
    pytest.param("azure", marks=[pytest.mark.azure, pytest.mark.integration]),
    pytest.param("s3", marks=[pytest.mark.s3, pytest.mark.integration]),
]
BACKENDS = ["local", *CLOUD]


def cloud_workspace(kind: str, request: pytest.FixtureRequest) -> Callable[[], None]:
    """A workspace ``ws`` on a fresh container or bucket, with its connection; returns what
    deletes that container or bucket and makes it again, empty, under the same name."""
    import privpkg
    from privpkg.workspace import Workspace, add_workspace

    if kind == "azure":
        azurite: Azurite = request.getfixturevalue("azurite")
        url = azurite.create_container()
        name = url.rsplit("/", 1)[1]
        add_workspace(Workspace("ws", "azure", url))
        privpkg.set_connection("ws-blob", "AzureBlob", url, value=azurite.key)

        def recreate_container() -> None:
            azurite.service().delete_container(name)
            azurite.create_container(name)

        return recreate_container
    moto: MotoServer = request.getfixturevalue("moto_server")
    bucket = moto.create_bucket()
    add_workspace(Workspace("ws", "s3", f"s3://{bucket}/team", endpoint_url=moto.endpoint))
    privpkg.set_connection("s3conn", "S3", f"s3://{bucket}", value=moto.secret_key, username=moto.access_key, endpoint=moto.endpoint)

    def recreate_bucket() -> None:
        client = moto.client()
        for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
        client.delete_bucket(Bucket=bucket)
        moto.create_bucket(bucket)

    return recreate_bucket


@pytest.mark.parametrize("kind", CLOUD)
def test_a_recreated_container_or_bucket_is_read_anew(kind: str, request: pytest.FixtureRequest, isolated_privpkg: Path) -> None:
    """The copies ``CachedReads`` keeps are checked against the tag (ETag) of the listing every
    read makes anyway: after the container or bucket is deleted and made again with other
    versions under the same keys (every file of the same size, so a size check could not tell),
    the next read sees the new content, and a read again is served from the new copies."""
    from privpkg.environments.api import open_registry

    recreate = cloud_workspace(kind, request)
    _, store = open_registry("ws")
    assert isinstance(store, registry.CachedReads)
    registry.register(store, spec("requests>=2"), {"pylock.toml": _lock("2.0")}, secrets={})  # type: ignore[arg-type]
    old = registry.get(store, "train")  # type: ignore[arg-type]
    assert registry.get(store, "train").locks == old.locks == {"pylock.toml": _lock("2.0")}  # type: ignore[arg-type]  # copies

    recreate()
    _, store = open_registry("ws")  # as the next process opens it
    new = registry.register(store, spec("requests>=3"), {"pylock.toml": _lock("3.0")}, secrets={})  # type: ignore[arg-type]
    assert (new.version, new.created) == (1, True)
    assert {p: f["size"] for p, f in new.files.items()} == {p: f["size"] for p, f in old.files.items()}
    for opened in (store, open_registry("ws")[1]):
        got = registry.get(opened, "train")  # type: ignore[arg-type]
        assert got.version == 1 and got.digest == new.digest
        assert got.locks == {"pylock.toml": _lock("3.0")} and got.spec.pip == ("requests>=3",)
