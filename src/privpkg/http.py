"""privpkg's own HTTP transport: the one place that opens URLs for privpkg itself.

``connection test``, ``auth login``'s check and wheelhouse downloads go through :func:`build_opener`,
so proxies (``HTTPS_PROXY``/``NO_PROXY``) and a private CA bundle are honoured in one place. pip and
the storage SDKs have their own transports; this module does not touch them.
"""

from __future__ import annotations

import urllib.request
from typing import Any


def build_opener(*handlers: Any) -> urllib.request.OpenerDirector:
    """An opener with ``handlers`` added; urllib's own defaults (environment proxies) kept."""
    return urllib.request.build_opener(*handlers)
