"""The ``privpkg://WORKSPACE/KIND/NAME`` grammar, and the storage keys it maps to.

This is the only module that parses or builds these URLs and the only one that spells a
storage key (``KIND/NAME``). A KIND is one of :data:`KINDS`; only ``wheels`` is published today::

    >>> url_for("team", WHEELS, "x-1.0-py3-none-any.whl")
    'privpkg://team/wheels/x-1.0-py3-none-any.whl'
    >>> parse("privpkg://team/wheels/x-1.0-py3-none-any.whl")
    Ref(workspace='team', kind='wheels', name='x-1.0-py3-none-any.whl')
    >>> key_for(WHEELS, "x-1.0-py3-none-any.whl")
    'wheels/x-1.0-py3-none-any.whl'

A removed object leaves a marker under :func:`removed_key`, outside every kind's prefix (so no
listing of a kind shows it and no NAME can collide with it)::

    >>> removed_key("wheels/x-1.0-py3-none-any.whl")
    '.removed/wheels/x-1.0-py3-none-any.whl'

A fragment is not part of the reference: pip's ``#sha256=...`` (or any other) is dropped, so
callers pass a requirement's URL as written::

    >>> parse("privpkg://team/wheels/x-1.0-py3-none-any.whl#sha256=0123abcd").name
    'x-1.0-py3-none-any.whl'

Every malformed URL is one :class:`~privpkg.errors.UsageError` line, control characters
(raw or percent-escaped) and over-long URLs, names and workspace names included. (The pip shim,
which must run without privpkg, keeps a stdlib-only reading of the URL for its 404 message.)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import SplitResult, unquote, urlsplit

from privpkg.errors import CONTROL, UsageError, shown

SCHEME = "privpkg"
WHEELS = "wheels"
ENVIRONMENTS = "environments"
KINDS = (WHEELS, ENVIRONMENTS)
#: The prefix of removal markers: a name starting with a dot is no KIND, and the local backend
#: hides dot-names from listings.
REMOVED = ".removed"
#: Longer privpkg:// URLs are refused before anything else looks at them (percent-escaping can
#: triple a URL; the longest valid one is far shorter: a 63-character workspace name plus a
#: 255-byte file name).
MAX_URL_LENGTH = 2048
#: A file name no Linux or macOS file system stores (NAME_MAX), so no workspace can hold it.
MAX_FILENAME_BYTES = 255
MAX_WORKSPACE_NAME = 63
# Dots are allowed: the TOML writer quotes such keys ([workspaces."team.ml"]) so they round-trip.
_WORKSPACE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
#: How much of a rejected URL a message quotes.
_CUT = 100
#: What each kind's URL looks like and what its NAME is called, for messages.
_SHAPES = {WHEELS: "privpkg://WORKSPACE/wheels/FILE.whl", ENVIRONMENTS: "privpkg://WORKSPACE/environments/NAME"}
_NOUNS = {WHEELS: "wheel file name", ENVIRONMENTS: "environment name"}


class Ref(NamedTuple):
    workspace: str
    kind: str
    name: str


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    return kind


def url_for(workspace: str, kind: str, name: str) -> str:
    """The stable URL of ``name`` of ``kind`` in ``workspace`` (what ``privpkg wheel add`` prints)."""
    return f"{SCHEME}://{workspace}/{_kind(kind)}/{name}"


def prefix(kind: str) -> str:
    """The storage key prefix of every object of ``kind`` (listing: ``storage.list(prefix(k))``)."""
    return _kind(kind) + "/"


def key_for(kind: str, name: str) -> str:
    """The storage key of ``name`` of ``kind``."""
    return prefix(kind) + name


def removed_key(key: str) -> str:
    """The key of the marker that keeps ``key`` (made by :func:`key_for`) reserved once its
    object was removed (:mod:`privpkg.publishing`)."""
    kind = key.split("/", 1)[0]
    if "/" not in key or kind not in KINDS:
        raise ValueError(f"not a key of any kind: {key!r}")
    return f"{REMOVED}/{key}"


def name_of(key: str) -> str:
    """The NAME part of a storage key made by :func:`key_for`."""
    return key.rsplit("/", 1)[-1]


def is_ref(url: str) -> bool:
    """Whether ``url`` is meant as a privpkg:// URL (any case of the scheme); :func:`parse` judges it."""
    return url.lower().startswith(SCHEME + "://")


def _masked(parts: SplitResult) -> str:
    """The URL with user info and query masked, for messages (as :func:`privpkg.urls.redact`,
    which this bottom-layer module may not import)."""
    netloc = parts.netloc if "@" not in parts.netloc else "***@" + parts.netloc.rsplit("@", 1)[1]
    return f"{parts.scheme}://{netloc}{parts.path}{'?***' if parts.query else ''}"


def validate_workspace_name(name: str) -> str:
    """``name`` if it is a valid workspace name (the WORKSPACE of the grammar), else UsageError."""
    if not isinstance(name, str) or not _WORKSPACE_NAME.fullmatch(name):
        raise UsageError(f"invalid workspace name {shown(name)!r}: use 1-63 letters, digits, '.', '_' or '-'")
    return name


def parse(url: str, kind: str = WHEELS, check_name: Callable[[str], object] | None = None) -> Ref:
    """The parts of ``privpkg://WORKSPACE/KIND/NAME`` for the expected ``kind``, a fragment
    (``#sha256=...``) dropped; a one-line UsageError for anything else. ``check_name`` validates NAME (e.g. a wheel file name's shape)
    before the workspace name is checked."""
    shape = _SHAPES[_kind(kind)]
    if len(url) > MAX_URL_LENGTH:
        raise UsageError(f"privpkg:// URL too long ({len(url)} characters, at most {MAX_URL_LENGTH}): {shown(url, _CUT)}")
    if CONTROL.search(url):
        raise UsageError(f"a privpkg:// URL cannot contain control characters: {shown(url, _CUT)}")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. "Invalid IPv6 URL" for privpkg://[x/...
        raise UsageError(f"malformed privpkg:// URL: {shown(url, _CUT)}") from None
    if parts.scheme.lower() != SCHEME:
        raise UsageError(f"not a privpkg:// URL: {shown(_masked(parts), _CUT)}")
    if parts.query or "@" in parts.netloc:
        raise UsageError(f"a privpkg:// URL has no query or user part: {shown(_masked(parts), _CUT)}")
    path = unquote(parts.path)
    if CONTROL.search(path):
        raise UsageError(f"a privpkg:// URL cannot contain control characters: {shown(url, _CUT)}")
    head = f"/{kind}/"
    if not path.startswith(head) or path.count("/") != 2:
        raise UsageError(f"expected {shape}, got {shown(_masked(parts), _CUT)}")
    name = path[len(head) :]
    if len(parts.netloc) > MAX_WORKSPACE_NAME:
        raise UsageError(f"workspace name too long ({len(parts.netloc)} characters, at most {MAX_WORKSPACE_NAME}): {shown(parts.netloc, 40)}")
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_FILENAME_BYTES:
        raise UsageError(f"{_NOUNS[kind]} too long ({size} bytes, at most {MAX_FILENAME_BYTES}): {shown(name, 60)}")
    if check_name is not None:
        check_name(name)
    return Ref(validate_workspace_name(parts.netloc), kind, name)
