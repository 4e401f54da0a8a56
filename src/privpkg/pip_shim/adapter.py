"""The pip shim's working half: a requests transport adapter for ``privpkg://`` on pip's session.

When pip downloads ``name @ privpkg://W/wheels/F.whl``, the adapter signs the URL at that
moment and hands a copy of the request to the session's own adapter for the signed URL (https
with pip's cache and retries, or file:// for local workspaces). The response goes back to pip
carrying the original ``privpkg://`` URL, so pip prints and records (direct_url.json, freeze,
inspect) only the stable URL. The adapter is also mounted on the container URLs of registered
Azure workspaces, so plain blob URLs are signed the same way.

Signing runs in-process when privpkg is importable in pip's environment; otherwise (an
environment prepared with ``privpkg setup pip --python PATH``) it asks privpkg's own interpreter,
recorded in ``config.json`` next to this file. Failures reach pip as an HTTP error whose reason
is privpkg's one-line message, never as a traceback.
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

_SIGNATURE = re.compile(
    r"((?:[?&;]|%3[Ff]|%26)(?:sig|X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|AWSAccessKeyId)=)[^&\s\"'#]*"
    r"|((?:Signature|sig)\s*[=:]\s*)[0-9a-fA-F]{64}|((?:Signature|sig)\s*[=:]\s*)[A-Za-z0-9%+/=]{40,}",
    re.I,
)


class _ShimError(Exception):
    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.status = status


def redact_signatures(text: str) -> str:
    return _SIGNATURE.sub(lambda m: (m.group(1) or m.group(2) or m.group(3) or "") + "<redacted>", text)


class _RedactFilter(logging.Filter):
    """Masks signatures in any log record that passes pip's handlers (urllib3 and cachecontrol
    log full request URLs at debug level)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001
            return True
        clean = _show_stable_urls(redact_signatures(msg))
        if clean != msg:
            record.msg, record.args = clean, ()  # pip < 25 asserts args is a tuple
        return True


def _ttl() -> int:
    try:
        return int(os.environ.get("PRIVPKG_TTL", "600"))
    except ValueError:
        return 600


def _resolve(url: str) -> str:
    try:
        from privpkg.errors import NotFoundError, PrivpkgError
        from privpkg.resolve import resolve_url
    except ImportError:
        return _resolve_subprocess(url)
    try:
        return resolve_url(url, _ttl())
    except NotFoundError as exc:
        raise _ShimError(str(exc), 404) from None
    except PrivpkgError as exc:
        raise _ShimError(str(exc), 403) from None


def _resolve_subprocess(url: str) -> str:
    cfg_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.json")
    try:
        with open(cfg_path) as fh:
            python = json.load(fh)["python"]
    except (OSError, ValueError, KeyError):
        raise _ShimError("privpkg is not installed in this environment; run: privpkg setup pip --python " + sys.executable, 403) from None
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    try:
        res = subprocess.run([python, "-m", "privpkg", "resolve", "--ttl", str(_ttl()), url],
                             capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL)
    except OSError:
        raise _ShimError(f"privpkg's interpreter {python} is gone; run: privpkg setup pip --python {sys.executable}", 403) from None
    if res.returncode != 0:
        lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
        msg = lines[-1] if lines else f"privpkg resolve failed with exit code {res.returncode}"
        if msg.startswith("privpkg: error: "):  # noqa: FURB188 - no str.removeprefix: this copy runs on 3.8
            msg = msg[len("privpkg: error: ") :]
        raise _ShimError(msg, 404 if res.returncode == 1 and "no wheel" in msg else 403)
    return res.stdout.strip().splitlines()[-1]


_LOCAL: dict[str, str | None] = {}


def _local_path(url: str) -> str | None:
    """The stored file behind a privpkg:// URL of a local workspace, else None. Only available
    when privpkg is importable in pip's environment."""
    if url not in _LOCAL:
        path = None
        try:
            from privpkg.resolve import local_path

            path = local_path(url.split("#", 1)[0])
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
            text = text.replace(path, url.split("#", 1)[0])
        elif path and path.startswith(cwd) and "." + os.sep + path[len(cwd):] in text:
            text = text.replace("." + os.sep + path[len(cwd):], url.split("#", 1)[0])
    return text


def _patch_link() -> None:
    """Let pip use a local workspace's wheel in place, exactly as it uses a file:// wheel (no
    copy through the download machinery), while the link's URL stays privpkg://. Link.is_file
    and Link.file_path are properties in every pip from 23.1 to 26.x."""
    from pip._internal.models.link import Link

    if getattr(Link, "_privpkg_patched", False):
        return
    is_file, file_path = Link.is_file, Link.file_path

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

    Link.is_file = property(_is_file)
    Link.file_path = property(_file_path)
    Link._privpkg_patched = True


def _azure_prefixes() -> list[str]:
    try:
        from privpkg.resolve import azure_prefixes
    except ImportError:
        return []
    return azure_prefixes()


def patch_session_module(module: Any) -> None:
    """Make every PipSession created from now on route privpkg URLs through the adapter."""
    from pip._vendor.requests.adapters import BaseAdapter
    from pip._vendor.requests.models import Response
    from pip._vendor.requests.structures import CaseInsensitiveDict

    session_cls = module.PipSession
    if getattr(session_cls, "_privpkg_patched", False):
        return

    class PrivpkgAdapter(BaseAdapter):  # type: ignore[misc]
        def __init__(self, session: Any) -> None:
            super().__init__()
            self.session = session

        def _inner(self, url: str) -> Any:
            for prefix, adapter in self.session.adapters.items():
                if adapter is not self and url.lower().startswith(prefix.lower()):
                    return adapter
            raise _ShimError(f"pip has no transport for {url.split(':', 1)[0]} URLs", 403)

        def send(self, request: Any, **kwargs: Any) -> Any:
            original = request.url
            try:
                signed = _resolve(original.split("#", 1)[0])
                inner = self._inner(signed)
            except _ShimError as exc:
                return _error(request, exc.status, str(exc))
            copy = request.copy()
            copy.url = signed
            resp = inner.send(copy, **kwargs)
            resp.url = original
            resp.request = request
            resp.history = []
            if resp.status_code >= 400:
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
        adapter = PrivpkgAdapter(self)
        self.mount("privpkg://", adapter)
        for prefix in _azure_prefixes():
            self.mount(prefix, adapter)
        # botocore's debug log prints the SigV4 string-to-sign and signature; it has nothing
        # pip users need, so it stays at WARNING whatever pip's verbosity.
        logging.getLogger("botocore").setLevel(logging.WARNING)
        for handler in logging.getLogger().handlers:
            if not any(isinstance(f, _RedactFilter) for f in handler.filters):
                handler.addFilter(_RedactFilter())

    session_cls.__init__ = __init__
    session_cls._privpkg_patched = True
    try:
        _patch_link()
    except Exception:  # noqa: BLE001 - an unknown pip layout: the adapter alone still works
        pass
