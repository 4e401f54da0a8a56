"""What ``setup uv`` and ``setup conda`` record to undo their edit of a user's file exactly.

Not a copy of the file (it may hold settings the user would not want duplicated in privpkg's
state dir), only what turns the written bytes back into the original: the lengths of the bytes
both share at the start and at the end, the original bytes between them, and the original's
sha256 to check the result against.

>>> part = changed_part(b"a = 1\\nb = 2\\n", b"a = 1\\nk = 3\\nb = 2\\n")
>>> part["head"], part["tail"], part["between"]
(6, 6, '')
>>> rebuild(part, b"a = 1\\nk = 3\\nb = 2\\n", Path("rec.json"))
b'a = 1\\nb = 2\\n'
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from privpkg.errors import PrivpkgError


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_optional(path: Path, what: str) -> bytes | None:
    """The file's bytes, or None when it does not exist; anything else unreadable is one line
    naming ``what`` the file is."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PrivpkgError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def changed_part(original: bytes, written: bytes) -> dict[str, Any]:
    """What turns ``written`` back into ``original`` (see the module docstring)."""
    n = min(len(original), len(written))
    head = next((i for i in range(n) if original[i] != written[i]), n)
    tail = 0
    while tail < n - head and original[-1 - tail] == written[-1 - tail]:
        tail += 1
    return {"head": head, "tail": tail, "between": original[head : len(original) - tail].decode("utf-8"),
            "sha256": sha256(original)}


def rebuild(part: Any, written: bytes, record_path: Path) -> bytes:
    """The original bytes from :func:`changed_part`'s record, checked against its sha256; a
    record that does not give them back is one line naming ``record_path``."""
    try:
        data = written[: part["head"]] + part["between"].encode("utf-8") + written[len(written) - part["tail"] :]
        ok = sha256(data) == part["sha256"]
    except (KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise PrivpkgError(f"cannot read {record_path}; fix or delete it")
    return data
