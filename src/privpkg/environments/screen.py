"""What a definition or a lock may never hold: a signature, a password in user info.

PLACEHOLDER (helper B, issue 10): helper A owns this module and writes the real
:func:`find_secret` (known connections' secrets included) and ``refuse``. This minimal version
only exists so the lock code (:mod:`.pylock`, :mod:`.condalock`) runs its tests before A's
branch merges; at the merge A's version wins and this file goes.
"""

from __future__ import annotations

import re

_SIGNATURE = re.compile(r"[?&](sig|x-amz-signature|x-goog-signature)=", re.IGNORECASE)
_USERINFO_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s\"']*:[^/@\s\"']*@", re.IGNORECASE)


def find_secret(text: str) -> str | None:
    """What ``text`` holds that no definition or lock may, described without the value
    ("a signature (sig=)", "a password in user info"), or None.

    >>> find_secret("https://a.blob.core.windows.net/c/x.whl?se=1&sig=abc")
    'a signature (sig=)'
    >>> find_secret("https://u:p@h/simple/"), find_secret("https://__token__@h/simple/")
    ('a password in user info', None)
    """
    m = _SIGNATURE.search(text)
    if m:
        name = m.group(1)
        return "an X-Amz-Signature" if name.lower() == "x-amz-signature" else f"a signature ({name}=)"
    if _USERINFO_PASSWORD.search(text):
        return "a password in user info"
    return None
