"""The one wheel maker: small, valid pure-Python wheels for the demo, the tests and the benchmarks.

A wheel made here installs with pip and uv and passes privpkg's wheel validation: it has a
``METADATA``, a ``WHEEL`` and a ``RECORD`` that hashes every other file. ``payload_size`` adds that
many random bytes, stored uncompressed (so the file is as large as asked), for upload tests and
benchmarks.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

#: Random bytes are written in blocks of this size (a 1 GiB payload never sits in memory).
_BLOCK = 1 << 20


def _record_entry(name: str, digest: bytes, size: int) -> str:
    return f"{name},sha256={base64.urlsafe_b64encode(digest).rstrip(b'=').decode()},{size}"


def make_wheel(directory: Path, name: str, version: str, *, body: str | None = None, payload_size: int = 0,
               tag: str = "py3-none-any", modules: int = 0, extra: Mapping[str, str] | None = None, purelib: bool = True) -> Path:
    """Write ``{name}-{version}-{tag}.whl`` (name underscored) to ``directory`` and return
    its path. It installs a module named like the project whose text is ``body`` (default:
    ``VERSION = "<version>"``), plus ``<module>_data.bin`` with ``payload_size`` random bytes when
    that is not 0, plus ``modules`` small modules in a ``<module>_lib`` package (an installer's
    cost grows with the number of files, as real packages have hundreds or thousands), plus
    ``extra``: more files by their path in the wheel (``{dist}-{version}.dist-info/entry_points.txt``,
    ``{dist}-{version}.data/scripts/tool``...). ``purelib=False`` marks it ``Root-Is-Purelib:
    false`` (installed into platlib, as binary wheels are).

    >>> import tempfile, zipfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     whl = make_wheel(Path(tmp), "demo-pkg", "1.0")
    ...     print(whl.name)
    ...     print(sorted(zipfile.ZipFile(whl).namelist()))
    demo_pkg-1.0-py3-none-any.whl
    ['demo_pkg-1.0.dist-info/METADATA', 'demo_pkg-1.0.dist-info/RECORD', 'demo_pkg-1.0.dist-info/WHEEL', 'demo_pkg.py']
    """
    dist = re.sub(r"[-_.]+", "_", name)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{dist}-{version}-{tag}.whl"
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{dist}.py": body if body is not None else f'VERSION = "{version}"\n',
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: privpkg\nRoot-Is-Purelib: {'true' if purelib else 'false'}\nTag: {tag}\n",
        **(extra or {}),
    }
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for fname, text in files.items():
            data = text.encode()
            zf.writestr(fname, data)
            record.append(_record_entry(fname, hashlib.sha256(data).digest(), len(data)))
        if payload_size:
            payload = f"{dist}_data.bin"
            digest = hashlib.sha256()
            info_entry = zipfile.ZipInfo(payload, date_time=(2020, 1, 1, 0, 0, 0))
            info_entry.compress_type = zipfile.ZIP_STORED  # random data does not compress; keep the size asked for
            with zf.open(info_entry, "w", force_zip64=True) as out:
                for start in range(0, payload_size, _BLOCK):
                    chunk = os.urandom(min(_BLOCK, payload_size - start))
                    out.write(chunk)
                    digest.update(chunk)
            record.append(_record_entry(payload, digest.digest(), payload_size))
        for i in range(modules):
            fname = f"{dist}_lib/m{i:05d}.py"
            data = f'"""Module {i} of {name}."""\nVALUE = {i}\n'.encode()
            zf.writestr(fname, data)
            record.append(_record_entry(fname, hashlib.sha256(data).digest(), len(data)))
        record.append(f"{info}/RECORD,,")
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path
