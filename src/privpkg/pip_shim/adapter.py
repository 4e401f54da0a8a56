"""The pip shim's working half: a requests transport adapter for ``privpkg://`` on pip's session.

When pip downloads ``name @ privpkg://W/wheels/F.whl``, the adapter signs the URL at that
moment and hands a copy of the request to the session's own adapter for the signed URL (https
with pip's cache and retries, or file:// for local workspaces). The response goes back to pip
carrying the original ``privpkg://`` URL, so pip prints and records (direct_url.json, freeze,
inspect) only the stable URL. The adapter is also mounted on the container URLs of registered
Azure workspaces, so plain blob URLs are signed the same way.

Signing runs in-process when privpkg is importable in pip's environment; otherwise (an
environment prepared with ``privpkg setup pip --python PATH``) it asks privpkg's own interpreter,
recorded in ``config.json`` next to this file. Signing is offline (no request to the storage
before pip's own download, which pip's ``--timeout`` and ``--retries`` bound), except with
ambient credentials (a role or SSO session, a user delegation key): the timeout pip gives its
adapters (``--timeout``, 15 s by default) is handed to signing, which takes no longer. Failures reach pip
as an HTTP error whose reason is privpkg's one-line message, never as a traceback.

The signed URL never leaves the adapter: a failed download (connection reset, timeout, too many
5xx) is re-raised as the same requests exception class with a message naming the stable URL and
no chained cause, and every response carries the stable URL, the original request and no
history. A log filter masks signatures in anything urllib3 logs on the way, as a second line of
defense.

This module must run on Python 3.8 (the copy ``setup pip --python`` makes runs under whatever
interpreter that environment has) and import only the standard library and pip's vendored
packages.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from typing import Any
from urllib.parse import unquote, urlsplit

from . import warn

_SIGNATURE = re.compile(
    r"((?:[?&;]|%3[Ff]|%26)(?:sig|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|AWSAccessKeyId)=)[^&\s\"'#]*"
    r"|((?:Signature|sig)\s*[=:]\s*)[0-9a-fA-F]{64}|((?:Signature|sig)\s*[=:]\s*)[A-Za-z0-9%+/=]{40,}",
    re.IGNORECASE,
)
_ERROR_PREFIX = "privpkg: error: "


class _ShimError(Exception):
    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.status = status


def redact_signatures(text: str) -> str:
    return _SIGNATURE.sub(lambda m: (m.group(1) or m.group(2) or m.group(3) or "") + "<redacted>", text)


#: Signed URLs this process made (whole, and the path?query part urllib3 logs) -> the stable
#: URL they stand for, so a log line shows the URL the user wrote instead of a masked one.
_SIGNED: dict[str, str] = {}


def _remember(signed: str, original: str) -> None:
    stable = _stable(original)
    _SIGNED[signed] = stable
    parts = urlsplit(signed)
    if parts.query:
        _SIGNED[f"{parts.path}?{parts.query}"] = stable


def _clean(text: str) -> str:
    for signed in sorted((k for k in _SIGNED if k in text), key=len, reverse=True):
        text = text.replace(signed, _SIGNED[signed])
    return _show_stable_urls(redact_signatures(text))


def _render_rich(renderable: Any) -> str | None:
    """Plain text of a rich renderable (pip's diagnostic errors), or None if it cannot be."""
    try:
        from pip._vendor.rich.console import Console

        buf = io.StringIO()
        Console(file=buf, width=200, color_system=None, force_terminal=False, soft_wrap=True).print(renderable)
        return buf.getvalue()
    except Exception:  # noqa: BLE001 - unknown pip layout: leave the record alone
        return None


class _RedactFilter(logging.Filter):
    """Masks signatures in any log record that passes pip's handlers: urllib3 and cachecontrol
    log full request URLs at debug level. A second line of defense: the adapter already keeps
    signed URLs out of what it returns and raises.

    pip before 25 asserts that a record's ``args`` is a tuple, so a rewritten message gets
    ``args = ()``. pip's rich diagnostic records (``extra={"rich": True}``, or the message
    ``"[present-rich] %s"`` before 24) carry their renderable in ``args`` and tracebacks
    travel in ``exc_info``: neither goes through ``getMessage``, so both are checked apart."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self._scrub(record)
        except Exception:  # noqa: BLE001, S110 - a log filter must never break pip's logging
            pass
        return True

    @staticmethod
    def _scrub(record: logging.LogRecord) -> None:
        args = record.args
        if (getattr(record, "rich", False) or record.msg == "[present-rich] %s") and isinstance(args, tuple) and len(args) == 1:
            text = args[0] if isinstance(args[0], str) else _render_rich(args[0])
            if text is not None:
                clean = _clean(text)
                if clean != text:
                    from pip._vendor.rich.text import Text

                    record.args = (Text(clean.rstrip("\n")),)
        else:
            msg = record.getMessage()
            clean = _clean(msg)
            if clean != msg:
                record.msg, record.args = clean, ()
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            # logging.Formatter uses exc_text when set, so the traceback it prints is this one.
            import traceback

            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            clean = _clean(text)
            if clean != text:
                record.exc_text = clean


def _ttl() -> int:
    try:
        return int(os.environ.get("PRIVPKG_TTL", "600"))
    except ValueError:
        return 600


def _seconds(timeout: Any) -> Any:
    """pip's timeout as requests hands it to an adapter (a number, or a (connect, read) pair)
    as one number of seconds, or None."""
    if isinstance(timeout, tuple):
        timeout = max((t for t in timeout if isinstance(t, (int, float))), default=None)
    return float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else None


def _resolve(url: str, timeout: Any = None) -> str:
    """The signed URL for ``url``, or _ShimError with privpkg's one-line message. ``timeout``
    (seconds or None) bounds what signing may fetch."""
    try:
        from privpkg.errors import NotFoundError, PrivpkgError
        from privpkg.resolve import resolve_url
    except ImportError:
        return _resolve_subprocess(url, timeout)
    try:
        return resolve_url(url, _ttl(), check=False, timeout=timeout)
    except NotFoundError as exc:
        raise _ShimError(str(exc), 404) from None
    except PrivpkgError as exc:
        raise _ShimError(str(exc), 403) from None
    except Exception as exc:  # noqa: BLE001 - a bug or a broken definition must not crash pip
        raise _ShimError(f"cannot sign {_stable(url)}: {type(exc).__name__}", 403) from None


# Run in privpkg's own interpreter for a shim copied into another environment: sign offline,
# print the signed URL, or one "privpkg: error:" line (exit 1 for a missing wheel, else 2).
_SIGN_PROGRAM = """
import sys
try:
    from privpkg.errors import NotFoundError, PrivpkgError
    from privpkg.resolve import resolve_url
    args = sys.argv[3:]  # "check" (look the wheel up first), "timeout=SECONDS" (pip's)
    timeout = next((float(a[len("timeout="):]) for a in args if a.startswith("timeout=")), None)
    print(resolve_url(sys.argv[1], int(sys.argv[2]), check="check" in args, timeout=timeout))
except NotFoundError as exc:
    sys.stderr.write("privpkg: error: %s\\n" % exc)
    sys.exit(1)
except PrivpkgError as exc:
    sys.stderr.write("privpkg: error: %s\\n" % exc)
    sys.exit(2)
except Exception as exc:
    sys.stderr.write("privpkg: error: cannot sign this URL: %s\\n" % type(exc).__name__)
    sys.exit(2)
"""


def _explain_404(url: str, timeout: Any = None) -> str:
    """Why the storage answered 404 for a ``privpkg://`` ``url``: privpkg looks again (only on
    this error path, after pip's download, so a good install makes no extra request; bounded by
    pip's ``timeout`` as signing is) and says whether the wheel was removed (``wheel remove``
    leaves a marker) or never published; :func:`_not_found` when it cannot, and for plain blob
    URLs, which are not privpkg's names."""
    if urlsplit(url).scheme.lower() != "privpkg":
        return _not_found(url)
    try:
        from privpkg.errors import NotFoundError
        from privpkg.resolve import resolve_url
    except ImportError:
        try:
            _resolve_subprocess(url, timeout, check=True)
        except _ShimError as exc:
            if exc.status == 404:
                return str(exc)
        return _not_found(url)
    try:
        resolve_url(url, _ttl(), check=True, timeout=timeout)
    except NotFoundError as exc:
        return str(exc)
    except Exception:  # noqa: BLE001 - the 404 line below is still right, only less precise
        return _not_found(url)
    return _not_found(url)


def _resolve_subprocess(url: str, timeout: Any = None, check: bool = False) -> str:
    cfg_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.json")
    try:
        with open(cfg_path) as fh:
            python = json.load(fh)["python"]
    except (OSError, ValueError, KeyError, TypeError):
        raise _ShimError("privpkg is not installed in this environment; run: privpkg setup pip --python " + sys.executable, 403) from None
    from . import broker

    # conda's pip step: conda's own process signs (privpkg.conda.broker), no interpreter started.
    answer = broker.ask({"op": "sign", "url": url, "ttl": _ttl(), "check": check, "timeout": timeout}) or {}
    signed, error = answer.get("url"), answer.get("error")
    if isinstance(signed, str):
        return signed
    if isinstance(error, str):
        raise _ShimError(redact_signatures(error), 404 if answer.get("status") == 404 else 403)
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    try:
        # Signing is offline (with ambient credentials: bounded by pip's timeout), so this
        # returns in well under a second unless the store is locked by a writer (at most 30 s).
        extra = (["check"] if check else []) + ([] if timeout is None else [f"timeout={timeout}"])
        res = subprocess.run([python, "-c", _SIGN_PROGRAM, url, str(_ttl())] + extra,
                             capture_output=True, text=True, env=env, timeout=120, check=False, stdin=subprocess.DEVNULL)
    except (OSError, ValueError):
        raise _ShimError(f"privpkg's interpreter {python} is gone; run: privpkg setup pip --python {sys.executable}", 403) from None
    except subprocess.TimeoutExpired:
        raise _ShimError(f"privpkg's interpreter {python} did not sign {_stable(url)} within 120 s", 403) from None
    if res.returncode != 0:
        lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
        msg = lines[-1] if lines else f"privpkg failed with exit code {res.returncode}"
        if msg.startswith(_ERROR_PREFIX):
            msg = msg[len(_ERROR_PREFIX):]
        raise _ShimError(redact_signatures(msg), 404 if res.returncode == 1 else 403)
    out = res.stdout.strip().splitlines()
    if not out:
        raise _ShimError(f"privpkg printed no signed URL for {_stable(url)}", 403)
    return out[-1]


def _stable(url: str) -> str:
    """``url`` as it may be shown: without fragment, query or user info."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return f"{parts.scheme}://{netloc}{parts.path}"
    except Exception:  # noqa: BLE001
        return "<the requested URL>"


def _not_found(url: str) -> str:
    """"no wheel F in workspace W" for a 404 from the storage (the wheel, or its container or
    bucket, is gone); signing did not look, to stay off the network before pip's download.
    (privpkg.refs owns the grammar; this copy runs where privpkg is not importable, so it only
    takes the URL apart for the message, with the standard library.)"""
    parts = urlsplit(url)
    if parts.scheme.lower() == "privpkg":
        name = parts.netloc
        filename = unquote(parts.path).rsplit("/", 1)[-1]
        return f"no wheel {filename} in workspace {name!r} (see: privpkg wheel list --workspace {name})"
    return f"no blob at {_stable(url)} in its workspace's container (see: privpkg workspace list)"


_LOCAL: dict[str, str | None] = {}


def _local_path(url: str) -> str | None:
    """The stored file behind a privpkg:// URL of a local workspace, else None. Only available
    when privpkg is importable in pip's environment."""
    if url not in _LOCAL:
        path = None
        try:
            from privpkg.resolve import local_path

            path = local_path(url)  # privpkg.refs drops a #sha256=... fragment
        except Exception:  # noqa: BLE001 - the adapter path then reports the problem
            path = None
        _LOCAL[url] = path
    return _LOCAL[url]


def _show_stable_urls(text: str) -> str:
    """pip logs a local wheel as "Processing PATH" (display_path: relative to the working
    directory when below it); show the privpkg:// URL it stands for instead."""
    if not _LOCAL:
        return text
    cwd = os.getcwd() + os.sep
    for url, path in _LOCAL.items():
        if path and path in text:
            text = text.replace(path, _stable(url))
        elif path and path.startswith(cwd) and "." + os.sep + path[len(cwd):] in text:
            text = text.replace("." + os.sep + path[len(cwd):], _stable(url))
    return text


def _patch_link() -> None:
    """Let pip use a local workspace's wheel in place, exactly as it uses a file:// wheel (no
    copy through the download machinery), while the link's URL stays privpkg://. Link.is_file
    and Link.file_path are properties in every pip from 23.1 to 26.x."""
    from pip._internal.models.link import Link

    if getattr(Link, "_privpkg_patched", False):
        return
    is_file: Any = Link.is_file  # the property objects (read on the class)
    file_path: Any = Link.file_path

    def _is_file(self: Any) -> bool:
        if self.scheme == "privpkg":
            return _local_path(self.url) is not None
        return is_file.fget(self)

    def _file_path(self: Any) -> str:
        if self.scheme == "privpkg":
            path = _local_path(self.url)
            if path is not None:
                return path
        return file_path.fget(self)

    # setattr: these are pip's properties, replaced on the class (mypy sees methods).
    setattr(Link, "is_file", property(_is_file))  # noqa: B010
    setattr(Link, "file_path", property(_file_path))  # noqa: B010
    setattr(Link, "_privpkg_patched", True)  # noqa: B010


def _azure_prefixes() -> list:
    """Container URLs of Azure workspaces (Azure blob hosts and loopback only); [] when privpkg
    is not importable or anything is wrong with the definitions."""
    try:
        from privpkg.resolve import azure_prefixes

        return list(azure_prefixes())
    except Exception:  # noqa: BLE001 - never break pip
        return []


#: prefix -> whether an AzureBlob connection covers it, decided on the first request to it.
_COVERED: dict[str, bool] = {}


def _azure_wanted(prefix: str) -> bool:
    """Whether the adapter signs requests under ``prefix`` (an Azure container URL). The first
    request decides (reading the store); without a covering AzureBlob connection the request
    goes to pip's own adapter untouched, as if the shim were not there."""
    if prefix not in _COVERED:
        from privpkg.errors import PrivpkgError
        from privpkg.resolve import azure_covered

        try:
            _COVERED[prefix] = bool(azure_covered(prefix))
        except PrivpkgError as exc:
            raise _ShimError(str(exc), 403) from None
    return _COVERED[prefix]


def _failure(exc: BaseException) -> str:
    """What went wrong in a failed download, in words that hold no URL."""
    from pip._vendor.requests import exceptions as rex

    if isinstance(exc, rex.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, rex.ReadTimeout):
        return "read timed out"
    if isinstance(exc, rex.RetryError):
        return "too many error responses"
    if isinstance(exc, rex.SSLError):
        return "TLS error"
    # The innermost OSError (ConnectionResetError, ConnectionRefusedError, ...) names the cause.
    seen: set[int] = set()
    todo = [exc]
    cause = None
    while todo:
        e = todo.pop()
        if id(e) in seen or len(seen) > 20:
            continue
        seen.add(id(e))
        if type(e).__name__ == "ReadTimeoutError":  # urllib3's, after pip's retries ran out
            return "read timed out"
        if isinstance(e, OSError) and type(e).__module__ == "builtins":
            cause = type(e).__name__
        todo.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
        for attr in ("reason", "__cause__", "__context__"):
            nxt = getattr(e, attr, None)
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    if isinstance(exc, rex.ConnectionError):
        return f"connection failed ({cause})" if cause else "connection failed"
    return type(exc).__name__


def _withheld(exc: Exception, request: Any, original: str) -> Exception:
    """The exception to raise in place of ``exc``: the same requests class (so pip handles it as
    before), a message naming only the stable URL, the caller's request, no cause."""
    from pip._vendor.requests import exceptions as rex

    message = f"{_failure(exc)} while downloading {_stable(original)} from the workspace storage (signed URL withheld)"
    cls = type(exc) if isinstance(exc, rex.RequestException) else rex.ConnectionError
    try:
        new = cls(message, request=request)
    except Exception:  # noqa: BLE001 - an exception class with another signature
        new = rex.ConnectionError(message, request=request)
    return new


class _SchemeBoundPasswords(dict):
    """pip's cache of credentials (``MultiDomainBasicAuth.passwords``), one per scheme.

    pip keys the credential it got (from keyring after a 401, or from a URL's user info) by
    netloc alone, ``host[:port]`` with no scheme, and sends it with every later request to that
    netloc: a PAT that privpkg answered for ``https://h/feed/`` went out in clear to
    ``http://h/`` when a requirements file named an ``http://h/...`` index, file or find-links
    page. This mapping takes pip's netloc keys and files each under the scheme of the request pip
    is handling (set by the wrappers in :func:`bind_cached_credentials_to_scheme`), so a
    credential is reused on its host only over the scheme it was obtained for. pip reads and
    writes this mapping only with ``in``, ``[]`` and ``[]=`` (pip 23.1 to 26.3)."""

    def __init__(self, state: Any) -> None:
        super().__init__()
        self._state = state

    def _key(self, netloc: Any) -> Any:
        return (getattr(self._state, "scheme", None), netloc)

    def __contains__(self, netloc: object) -> bool:
        return dict.__contains__(self, self._key(netloc))

    def __getitem__(self, netloc: Any) -> Any:
        return dict.__getitem__(self, self._key(netloc))

    def __setitem__(self, netloc: Any, value: Any) -> None:
        dict.__setitem__(self, self._key(netloc), value)

    def __delitem__(self, netloc: Any) -> None:
        dict.__delitem__(self, self._key(netloc))

    def get(self, netloc: Any, default: Any = None) -> Any:
        return dict.get(self, self._key(netloc), default)

    def pop(self, netloc: Any, *default: Any) -> Any:
        return dict.pop(self, self._key(netloc), *default)

    def setdefault(self, netloc: Any, default: Any = None) -> Any:
        return dict.setdefault(self, self._key(netloc), default)


def _scheme(url: Any) -> str | None:
    try:
        return urlsplit(url).scheme.lower() or None
    except Exception:  # noqa: BLE001 - an unparsable URL gets no cached credential
        return None


def hint_missing_username(auth: Any, pip_version: str) -> None:
    """Before pip 26.2, the subprocess keyring provider runs ``keyring get URL USER`` only when
    the index URL carries a username; without one pip never asks keyring (so privpkg is never
    asked) and a 401 ends in a prompt or "No matching distribution found". Wrap this
    ``MultiDomainBasicAuth``'s ``handle_401`` to say, once per run, the one change that works.
    It only adds a warning line, before pip goes on exactly as it would have."""
    nums = re.findall(r"\d+", pip_version)[:2]
    if len(nums) < 2 or (int(nums[0]), int(nums[1])) >= (26, 2):
        return
    handle = getattr(auth, "handle_401", None)
    if not callable(handle) or getattr(auth, "_privpkg_username_hint", False):
        return
    said = []  # type: list[bool]

    def handle_401(resp: Any, **kwargs: Any) -> Any:
        hint = None if said else _username_hint(auth, resp, pip_version)
        if hint is not None:
            said.append(True)
            warn(hint)
        return handle(resp, **kwargs)

    auth.handle_401 = handle_401
    auth._privpkg_username_hint = True


def _username_hint(auth: Any, resp: Any, pip_version: str) -> str | None:
    """The hint for this 401, or None: only when pip runs the keyring CLI (subprocess provider)
    and sent the request without any credential, i.e. the index URL has no username."""
    try:
        if (getattr(resp, "status_code", None) != 401 or type(auth.keyring_provider).__name__ != "KeyRingCliProvider"
                or resp.request.headers.get("Authorization")):
            return None
        find_index = getattr(auth, "_get_index_url", None)
        parts = urlsplit((find_index(resp.url) if callable(find_index) else None) or resp.url)
    except Exception:  # noqa: BLE001 - a pip whose layout differs gets no hint, never a failure
        return None
    if parts.scheme not in ("http", "https") or "@" in parts.netloc:
        return None
    return (f"pip {pip_version} asks the keyring CLI only for index URLs with a username, and "
            f"{parts.scheme}://{parts.netloc}{parts.path} has none: use {parts.scheme}://__token__@{parts.netloc}{parts.path} "
            "or upgrade pip to 26.2 or newer")


def bind_cached_credentials_to_scheme(auth: Any) -> None:
    """Make pip's ``MultiDomainBasicAuth`` keep credentials on the scheme they were obtained for.

    Two pip habits let an https PAT reach ``http://`` on the same host and port: its cache is
    keyed by netloc (see :class:`_SchemeBoundPasswords`), and after a 401 it asks keyring with
    "the index URL for this request", which it picks by netloc alone. pip reaches its cache from
    two methods, each given the URL at hand: ``_get_url_and_credentials(url)`` before every
    request and ``handle_401(resp)`` after a 401; instance-level wrappers note that URL's scheme
    (per thread) before pip looks, and ``_get_index_url`` only lends an index of the same
    scheme. Left alone if pip's layout is not the known one (pip 23.1 to 26.3 have it)."""
    import threading

    if getattr(auth, "_privpkg_scheme_bound", False):
        return
    get = getattr(auth, "_get_url_and_credentials", None)
    handle = getattr(auth, "handle_401", None)
    if not callable(get) or not callable(handle) or not isinstance(getattr(auth, "passwords", None), dict):
        return
    find_index: Any = getattr(auth, "_get_index_url", None)
    state = threading.local()
    bound = _SchemeBoundPasswords(state)
    for netloc, value in auth.passwords.items():  # empty in every pip so far; kept, never reused across schemes
        dict.__setitem__(bound, (None, netloc), value)

    def get_url_and_credentials(original_url: Any) -> Any:
        state.scheme = _scheme(original_url)
        return get(original_url)

    def handle_401(resp: Any, **kwargs: Any) -> Any:
        state.scheme = _scheme(getattr(resp, "url", None))
        return handle(resp, **kwargs)

    def get_index_url(url: Any) -> Any:
        # pip picks "the index URL for this request" by netloc alone and asks keyring with it,
        # so after a 401 from http://h/x it asked for https://h/index/ and got that PAT. Only an
        # index on the request's own scheme may lend its URL.
        found = find_index(url)
        scheme = _scheme(url)
        if found is None or _scheme(found) == scheme:
            return found
        saved = auth.index_urls
        try:
            auth.index_urls = [i for i in (saved or ()) if _scheme(i) == scheme]
            return find_index(url)
        finally:
            auth.index_urls = saved

    auth.passwords = bound
    auth._get_url_and_credentials = get_url_and_credentials
    auth.handle_401 = handle_401
    if callable(find_index) and hasattr(auth, "index_urls"):
        auth._get_index_url = get_index_url
    auth._privpkg_scheme_bound = True


def patch_session_module(module: Any) -> None:
    """Make every PipSession created from now on route privpkg URLs through the adapter."""
    from pip._vendor.requests.adapters import BaseAdapter
    from pip._vendor.requests.models import Response
    from pip._vendor.requests.structures import CaseInsensitiveDict

    session_cls = module.PipSession
    if getattr(session_cls, "_privpkg_patched", False):
        return

    class PrivpkgAdapter(BaseAdapter):
        def __init__(self, session: Any) -> None:
            super().__init__()
            self.session = session
            self.azure = []  # type: list

        def _inner(self, url: str) -> Any:
            for prefix, adapter in self.session.adapters.items():
                if adapter is not self and url.lower().startswith(prefix.lower()):
                    return adapter
            raise _ShimError(f"pip has no transport for {url.split(':', 1)[0]} URLs", 403)

        def _azure_prefix(self, url: str) -> str | None:
            low = url.lower()
            for prefix in self.azure:
                if low.startswith(prefix.lower()):
                    return prefix
            return None

        def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]  # pip passes keywords
            original = request.url
            try:
                prefix = None if original.lower().startswith("privpkg:") else self._azure_prefix(original)
                if prefix is not None and not _azure_wanted(prefix):
                    return self._inner(original).send(request, **kwargs)
                # The fragment (#sha256=...) is dropped by the parsers; pip's timeout bounds signing.
                signed = _resolve(original, _seconds(kwargs.get("timeout")))
                inner = self._inner(signed)
            except _ShimError as exc:
                return _error(request, exc.status, str(exc))
            except Exception as exc:  # noqa: BLE001 - never a traceback out of the shim
                return _error(request, 403, f"pip shim failed for {_stable(original)}: {type(exc).__name__}")
            try:
                _remember(signed, original)
            except Exception:  # noqa: BLE001, S110 - only log cosmetics depend on it
                pass
            copy = request.copy()
            copy.url = signed
            failure = None
            try:
                resp = inner.send(copy, **kwargs)
            except Exception as exc:  # noqa: BLE001 - re-raised below, without the signed URL
                failure = _withheld(exc, request, original)
            if failure is not None:
                # Raised outside the except block and "from None": neither __context__ nor
                # __cause__ leads back to the exception that holds the signed URL.
                raise failure from None
            resp.url = original
            resp.request = request
            resp.history = []
            if resp.status_code == 404:
                resp.reason = "privpkg: " + _explain_404(original, _seconds(kwargs.get("timeout")))
            elif resp.status_code >= 400:
                resp.reason = f"{resp.reason or 'error'} from the workspace storage (signed URL withheld)"
            return resp

        def close(self) -> None:
            pass

    def _error(request: Any, status: int, message: str) -> Any:
        resp = Response()
        resp.status_code = status
        resp.reason = "privpkg: " + redact_signatures(message)
        resp.url = request.url
        resp.request = request
        resp.headers = CaseInsensitiveDict({"Content-Length": "0"})
        resp.raw = io.BytesIO(b"")
        resp._content = b""
        resp.encoding = "utf-8"
        return resp

    original_init = session_cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        try:
            bind_cached_credentials_to_scheme(self.auth)
        except Exception as exc:  # noqa: BLE001 - pip works on as it would without the shim
            warn(f"pip's credential cache is not scheme-bound: {type(exc).__name__}")
        try:
            from pip import __version__ as pip_version

            hint_missing_username(self.auth, pip_version)
        except Exception as exc:  # noqa: BLE001 - pip works on as it would without the shim
            warn(f"no hint for index URLs without a username: {type(exc).__name__}")
        try:
            adapter = PrivpkgAdapter(self)
            self.mount("privpkg://", adapter)
            # Mounted now (reading only the workspace files), decided on first use (reading the
            # store), so a pip run that needs no Azure workspace decrypts nothing.
            adapter.azure = _azure_prefixes()
            for prefix in adapter.azure:
                self.mount(prefix, adapter)
            # botocore's debug log prints the SigV4 string-to-sign and signature, and the Azure
            # SDK logs every request at INFO; pip users need neither, whatever the verbosity.
            logging.getLogger("botocore").setLevel(logging.WARNING)
            logging.getLogger("azure").setLevel(logging.WARNING)
            for handler in logging.getLogger().handlers:
                if not any(isinstance(f, _RedactFilter) for f in handler.filters):
                    handler.addFilter(_RedactFilter())
        except Exception as exc:  # noqa: BLE001 - pip works on without the shim
            warn(f"pip shim not active: {type(exc).__name__}")

    session_cls.__init__ = __init__
    session_cls._privpkg_patched = True
    try:
        _patch_link()
    except Exception:  # noqa: BLE001, S110 - an unknown pip layout: the adapter alone still works
        pass
