"""sha256 of small data (cache keys, memo names, ``RECORD`` lines) without loading OpenSSL.

``hashlib`` loads OpenSSL's libcrypto when imported: about 3 ms, a twentieth of a build's own
work, for hashing a few hundred bytes. CPython's own sha256 module (``_sha2`` from 3.12,
``_sha256`` before) gives the same digests without it. Files (a downloaded wheel, hundreds of
megabytes) are still hashed with ``hashlib``, whose OpenSSL is several times faster on them.
"""

from __future__ import annotations

import binascii
import importlib
from typing import Any


def _constructor() -> Any:
    for name in ("_sha2", "_sha256"):  # CPython 3.12+, 3.11
        try:
            return importlib.import_module(name).sha256
        except (ImportError, AttributeError):
            pass
    import hashlib  # another implementation, or a CPython built without its own sha256

    return hashlib.sha256


_SHA256 = _constructor()


def sha256(data: bytes = b"") -> Any:
    """A sha256 object (``update``, ``digest``, ``hexdigest``) holding ``data``."""
    return _SHA256(data)


def record_hash(data: bytes) -> str:
    """``data``'s hash as a wheel's ``RECORD`` writes it: ``sha256=`` and the urlsafe base64 of
    the digest without padding (PEP 376, as pip and uv write it)."""
    encoded = binascii.b2a_base64(sha256(data).digest(), newline=False).rstrip(b"=")
    return "sha256=" + encoded.translate(bytes.maketrans(b"+/", b"-_")).decode()
