"""``privpkg connection test``: one authenticated read of a connection's target, put in words.

What is asked, per category:

- ``PythonFeed`` / ``CondaChannel``: an HTTP GET of the target (or ``--url`` below it) with the
  secret as HTTP Basic, the way pip and uv send it. Redirects are followed by hand: the credential
  goes again to a URL the connection's target covers and nowhere else, and a redirect that leaves
  the target is reported, not followed.
- ``AzureBlob``: the Blob service's List Blobs (at most one result) on the container, signed with
  the account key (List Containers for an account-level target).
- ``S3``: ``ListObjectsV2`` with ``MaxKeys=1`` on the bucket, signed with SigV4.

Only an answer that proves the credential was checked by the target itself is ``OK``: a 2xx (not
203) from a URL under the target that received the credential, or a successful storage read.
Every other outcome gets its own word (see :data:`VERDICTS`) and exit code 1.

``timeout`` bounds the whole exchange (DNS, connect, TLS, redirects, headers and body), not each
socket operation: the exchange runs in a daemon thread and the caller stops waiting at the
deadline, so a server that trickles one byte a second cannot stretch it. Messages never hold a
secret: URLs are shown with user info and query masked.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from privpkg import urls
from privpkg.connections import Connection
from privpkg.connections.model import auth_headers
from privpkg.errors import PrivpkgError, UsageError

#: The first word of every message. README's verdict table says what each means; tests check
#: that the table, ``connection test --help`` and the messages use exactly these words.
VERDICTS = ("OK", "REJECTED", "FORBIDDEN", "NOT FOUND", "NOT AUTHORITATIVE", "SIGN-IN REDIRECT", "CREDENTIAL DROPPED",
            "TOO MANY REDIRECTS", "FAILED", "UNREACHABLE", "TIMED OUT")
MAX_REDIRECTS = 5
#: How much of a 2xx body is read; enough to know the answer arrived, bounded for huge indexes.
BODY_LIMIT = 64 * 1024
STORAGE_CATEGORIES = frozenset({"AzureBlob", "S3"})


class Verdict(NamedTuple):
    ok: bool
    message: str


def check_connection(conn: Connection, url: str | None = None, timeout: float = 10.0, *, login: bool = False) -> Verdict:
    """Test ``conn`` against ``url`` (default: its target) within ``timeout`` seconds in total.
    ``login``: for ``auth login``, whose URL argument is the one to change after a 404 (it has no
    ``--url``).

    Returns (ok, a one-line message with no secret). Raises :class:`UsageError` for a URL the
    secret may not reach or a bad timeout."""
    if not (timeout > 0 and math.isfinite(timeout)):
        raise UsageError(f"--timeout must be a positive number of seconds, not {timeout:g}")
    from privpkg import http

    http.ca_bundle()  # an unusable CA bundle is the command's one error line, before any request
    work: Callable[[float], Verdict]
    if conn.category in STORAGE_CATEGORIES:
        if url is not None:
            raise UsageError(f"--url is for feed connections; {conn.category} connections are tested on their target {conn.target}")
        if conn.category == "S3":
            s3_location(conn)  # a target that names no bucket is a usage error, before any request
        work = functools.partial(_probe_azure if conn.category == "AzureBlob" else _probe_s3, conn)
        shown = conn.target
    else:
        norm = urls.normalize(url or conn.target)
        if not urls.covers(urls.normalize(conn.target), norm):
            raise UsageError(f"{urls.redact(url or '')} is not under the connection's target {conn.target}; its secret is not sent there")
        shown = norm.url
        start = _request_url(url or conn.target)
        work = functools.partial(_probe_http, conn, start, login=login)
    return _within(timeout, work, shown)


def _within(timeout: float, work: Callable[[float], Verdict], shown: str) -> Verdict:
    """Run ``work(deadline)`` in a daemon thread; give up waiting at the deadline."""
    deadline = time.monotonic() + timeout
    box: list[Verdict] = []

    def run() -> None:
        try:
            box.append(work(deadline))
        except PrivpkgError as exc:  # one line, never a secret (e.g. a missing cloud SDK)
            box.append(Verdict(False, f"FAILED: {shown}: {exc}"))
        except BaseException as exc:  # noqa: BLE001 - a verdict; its text could quote a request, so only the type
            box.append(Verdict(False, f"FAILED: {shown}: {type(exc).__name__}"))

    t = threading.Thread(target=run, name="privpkg-connection-test", daemon=True)
    t.start()
    t.join(timeout)
    if not box:
        return Verdict(False, f"TIMED OUT: {shown} gave no complete answer within {timeout:g} s (--timeout bounds the whole exchange)")
    return box[0]


def _left(deadline: float) -> float:
    # Each blocking call also gets the time left, so a stalled worker thread ends soon after.
    return max(0.05, deadline - time.monotonic())


# --- feeds: HTTP Basic ----------------------------------------------------------------------


def _no_redirects() -> Any:
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kw: Any) -> None:
            return None  # a 3xx surfaces as HTTPError; _probe_http decides where to go

    from privpkg import http

    return http.build_opener(NoRedirect)


def _request_url(url: str) -> str:
    """``url`` without user info and fragment: the credential goes in a header, never the URL."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path or "/", parts.query, ""))


def _probe_http(conn: Connection, url: str, deadline: float, *, login: bool = False) -> Verdict:
    import urllib.error
    import urllib.parse
    import urllib.request

    target = urls.normalize(conn.target)
    opener = _no_redirects()
    first = urls.redact(url)
    for hop in range(MAX_REDIRECTS + 1):
        req = urllib.request.Request(url, method="GET")
        # Basic for a PAT; Bearer (token on anaconda.org) or X-API-Key for those CondaChannel types.
        for name, value in auth_headers(conn, urllib.parse.urlsplit(url).hostname or "").items():
            req.add_unredirected_header(name, value)
        req.add_header("User-Agent", "privpkg-connection-test")
        shown = urls.redact(url)
        via = "" if hop == 0 else f" (after {hop} redirect(s) from {first})"
        try:
            with opener.open(req, timeout=_left(deadline)) as resp:
                status = resp.status
                resp.read(BODY_LIMIT)
        except urllib.error.HTTPError as exc:
            with exc:
                status = exc.code
                if status in (301, 302, 303, 307, 308):
                    location = exc.headers.get("Location")
                    if not location:
                        return Verdict(False, f"FAILED: {shown} answered HTTP {status} without a Location{via}")
                    nxt = urllib.parse.urljoin(url, location)
                    verdict = _leaves_target(conn, target, url, nxt, status)
                    if verdict is not None:
                        return verdict
                    url = _request_url(nxt)
                    continue
                return _http_error(conn, shown, status, str(exc.reason), via, login)
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError) or "timed out" in str(reason):
                return Verdict(False, f"TIMED OUT: {shown}: no complete answer before the deadline")
            if _cert_failure(reason):
                return _untrusted(shown, getattr(reason, "verify_message", None))
            return Verdict(False, f"UNREACHABLE: {shown}: {_no_answer(reason, str(reason))}{_via_proxy(url)}")
        except TimeoutError:
            return Verdict(False, f"TIMED OUT: {shown}: no complete answer before the deadline")
        except OSError as exc:
            if _cert_failure(exc):
                return _untrusted(shown, getattr(exc, "verify_message", None))
            return Verdict(False, f"UNREACHABLE: {shown}: {_no_answer(exc, type(exc).__name__)}{_via_proxy(url)}")
        if status == 203:
            return Verdict(False, f"NOT AUTHORITATIVE: {shown} answered 203 Non-Authoritative Information{via}: a proxy or "
                           f"sign-in page answered, not the feed, so the credential of {conn.name!r} was not verified")
        if 200 <= status < 300:
            return Verdict(True, f"OK: {shown} accepted the credential of {conn.name!r} (HTTP {status}){via}")
        return _http_error(conn, shown, status, "", via, login)
    return Verdict(False, f"TOO MANY REDIRECTS: {first} redirected more than {MAX_REDIRECTS} times inside the target")


def _cert_failure(exc: object) -> bool:
    """Whether ``exc`` (or what it wraps: the SDKs nest urllib3's and requests' errors) is a
    failed certificate verification."""
    seen: set[int] = set()
    while isinstance(exc, BaseException) and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__name__ == "SSLCertVerificationError" or "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__ or (exc.args[0] if exc.args else None)
    return False


#: What an SDK's connection failure means, by its class name (botocore's, azure-core's).
_NO_ANSWER_WORDS = {
    "EndpointConnectionError": "could not connect to the endpoint (is it running, and is its URL right?)",
    "ConnectionClosedError": "the endpoint closed the connection before answering",
    "ProxyConnectionError": "could not connect to the proxy",
    "ServiceRequestError": "could not connect to the storage service (is its URL right?)",
}


def _no_answer(exc: object, fallback: str | None = None) -> str:
    """Why nothing answered, in words: a plain-http server spoken to over TLS (OpenSSL's
    WRONG_VERSION_NUMBER), an SDK's connection error by its class, else the OS's own words."""
    if "WRONG_VERSION_NUMBER" in str(exc):
        return "the server does not speak TLS (is it http?)"
    name = type(exc).__name__
    if name in _NO_ANSWER_WORDS:
        return _NO_ANSWER_WORDS[name]
    return str(getattr(exc, "strerror", None) or fallback or name)


def _untrusted(where: str, why: str | None) -> Verdict:
    from privpkg import http

    return Verdict(False, f"FAILED: {where}: certificate verification failed ({why or 'untrusted certificate'}); {http.describe_trust()}")


def _via_proxy(url: str) -> str:
    from privpkg import http

    proxy = http.proxy_for(url)
    return f" (through the proxy {proxy})" if proxy else ""


def _leaves_target(conn: Connection, target: urls.NormURL, url: str, nxt: str, status: int) -> Verdict | None:
    """A verdict when the redirect from ``url`` to ``nxt`` leaves the connection's target (the
    credential would not be sent there), else None (follow it with the credential)."""
    shown = urls.redact(nxt)
    try:
        dest = urls.normalize(nxt)
    except UsageError:
        return Verdict(False, f"FAILED: {urls.redact(url)} redirected (HTTP {status}) to a malformed URL {shown}")
    if urls.covers(target, dest):
        return None
    cur = urls.normalize(url)
    url = urls.redact(url)
    if (dest.scheme, dest.netloc) != (cur.scheme, cur.netloc):
        return Verdict(False, f"SIGN-IN REDIRECT: {url} redirected (HTTP {status}) to {shown}, another host or scheme "
                       f"(typically a sign-in page); the credential of {conn.name!r} was not sent there and was not verified")
    return Verdict(False, f"CREDENTIAL DROPPED: {url} redirected (HTTP {status}) to {shown}, outside the connection's "
                   f"target {conn.target}; the credential of {conn.name!r} is not sent there, so it was not verified")


def _not_found_hint(conn: Connection, login: bool) -> str:
    """What to try after a 404: the URL that answers, named as the command takes it."""
    if conn.category == "CondaChannel":
        return "log in with the channel's URL, where noarch/repodata.json is" if login else "try --url with a file of the channel, e.g. its noarch/repodata.json"
    return "log in with the feed's simple index URL" if login else "try --url with the feed's simple index URL"


def _http_error(conn: Connection, url: str, code: int, reason: str, via: str, login: bool = False) -> Verdict:
    if code == 401:
        return Verdict(False, f"REJECTED: {url} answered 401 Unauthorized{via}: the PAT of {conn.name!r} is wrong, expired or revoked")
    if code == 403:
        return Verdict(False, f"FORBIDDEN: {url} answered 403 Forbidden{via}: the PAT of {conn.name!r} is valid but lacks "
                       "permission (check its scopes, e.g. Packaging: Read)")
    if code == 404:
        return Verdict(False, f"NOT FOUND: {url} answered 404{via}; the server is reachable but nothing is there "
                       f"({_not_found_hint(conn, login)})")
    return Verdict(False, f"FAILED: {url} answered HTTP {code}{(' ' + reason) if reason else ''}{via}")


# --- storage: the service's own API ---------------------------------------------------------


def _probe_azure(conn: Connection, deadline: float) -> Verdict:
    from privpkg.storage import azure

    azure.sdk()  # a missing SDK is reported as the extra to install
    from azure.core import exceptions as az

    norm = urls.normalize(conn.target)
    emulator = urls.is_loopback(norm.host)
    segs = list(norm.segments)
    if emulator:  # Azurite: http://127.0.0.1:PORT/ACCOUNT/CONTAINER
        if not segs:
            return Verdict(False, f"FAILED: {conn.target} names no account (expected http://HOST:PORT/ACCOUNT/CONTAINER)")
        account = segs.pop(0)
        account_url = f"{norm.scheme}://{norm.netloc}/{account}"
    else:
        account = norm.host.split(".", 1)[0]
        account_url = f"{norm.scheme}://{norm.netloc}"
    sas = azure.sas_token(conn.secret)  # a SAS is used as it is (listing needs its l permission)
    named, key = (None, "") if sas is not None else azure.parse_account_secret(conn.secret)
    if named and named != account:
        return Verdict(False, f"FAILED: the connection string of {conn.name!r} is for account {named!r}, not {account!r}")
    left = _left(deadline)
    kw: dict[str, Any] = {"retry_total": 0, "connection_timeout": left, "read_timeout": left}
    from privpkg import http

    sas_kw = {**kw, "api_version": azure.EMULATOR_API_VERSION} if emulator else dict(kw)
    verify = http.sdk_verify()
    if verify is not None:  # as open_client does for a key
        sas_kw["connection_verify"] = verify
    where = conn.target
    try:
        if segs:
            client = (azure.sdk().ContainerClient(account_url, segs[0], credential=sas, **sas_kw) if sas is not None
                      else azure.open_client(account_url, account, key, segs[0], emulator=emulator, **kw))
            prefix = "/".join(segs[1:]) or None
            what = "list blobs"
            list(next(client.list_blobs(name_starts_with=prefix, results_per_page=1).by_page(), []))
        else:
            service = (azure.sdk().BlobServiceClient(account_url, credential=sas, **sas_kw) if sas is not None
                       else azure.open_client(account_url, account, key, emulator=emulator, **kw))
            what = "list containers"
            list(next(service.list_containers(results_per_page=1).by_page(), []))
    except ValueError:
        # The SDK refuses a key that is not base64 before sending anything.
        return Verdict(False, f"REJECTED: the account key of {conn.name!r} is not a valid base64 key; nothing was sent")
    except az.ClientAuthenticationError:
        return _storage_rejected(conn, where, "AuthenticationFailed")
    except az.ResourceNotFoundError as exc:
        raw = getattr(exc, "error_code", None) or "not found"
        return Verdict(False, f"NOT FOUND: {where}: {getattr(raw, 'value', raw)} (the key was not verified)")
    except az.ServiceRequestError as exc:
        return _unreachable_or_timeout(where, exc)
    except az.ServiceResponseError as exc:
        return _unreachable_or_timeout(where, exc)
    except az.HttpResponseError as exc:
        raw = getattr(exc, "error_code", "") or ""
        code = str(getattr(raw, "value", raw))
        # An account key is all or nothing: a 403 about the signature is a wrong key. Azure says
        # AuthenticationFailed, Azurite AuthorizationFailure.
        if exc.status_code == 403 and code in ("AuthenticationFailed", "AuthorizationFailure"):
            return _storage_rejected(conn, where, code)
        if exc.status_code == 403:
            return Verdict(False, f"FORBIDDEN: {where} refused to {what} with the key of {conn.name!r} ({code or 403})")
        return Verdict(False, f"FAILED: {where}: HTTP {exc.status_code} {code}".rstrip())
    return Verdict(True, f"OK: {where} accepted the account key of {conn.name!r} ({what} succeeded)")


def _storage_rejected(conn: Connection, where: str, code: str) -> Verdict:
    return Verdict(False, f"REJECTED: {where} refused the key of {conn.name!r} ({code}); update it with: "
                   f"privpkg connection set {conn.name} --update")


def _unreachable_or_timeout(where: str, exc: BaseException) -> Verdict:
    if _cert_failure(exc):
        return _untrusted(where, None)
    text = f"{type(exc).__name__} {exc}".lower()
    if "timeout" in text or "timed out" in text:
        return Verdict(False, f"TIMED OUT: {where}: no complete answer before the deadline")
    return Verdict(False, f"UNREACHABLE: {where}: {_no_answer(exc)}")


def s3_location(conn: Connection) -> tuple[str | None, str, str]:
    """(endpoint URL or None for AWS, bucket, key prefix) of an S3 connection: its target
    ``s3://BUCKET[/PREFIX]`` at the endpoint it is bound to (None: AWS)."""
    norm = urls.normalize(conn.target)
    if norm.scheme != "s3":
        raise UsageError(f"S3 target {urls.redact(conn.target)} is not s3://BUCKET[/PREFIX]; set it again with --endpoint URL")
    segs = list(norm.segments)
    prefix = "/".join(segs) + "/" if segs else ""
    return conn.endpoint, norm.host, prefix


def _probe_s3(conn: Connection, deadline: float) -> Verdict:
    try:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            ReadTimeoutError,
        )
    except ImportError:
        return Verdict(False, "FAILED: testing an S3 connection needs boto3: pip install 'privpkg[s3]'")
    endpoint, bucket, prefix = s3_location(conn)
    where = conn.target + (f" at {endpoint}" if endpoint else "")
    left = _left(deadline)
    from privpkg.storage import s3

    try:  # exactly the endpoint the connection is bound to, whatever AWS_ENDPOINT_URL* say
        client = s3.make_client(endpoint, "us-east-1", conn.username, conn.secret, signature_version="s3v4",
                             connect_timeout=left, read_timeout=left, retries={"total_max_attempts": 1},
                             s3={"addressing_style": "path"})
    except PrivpkgError as exc:
        return Verdict(False, f"FAILED: {where}: {exc}")
    try:
        client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "") or "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId", "ExpiredToken", "InvalidToken"):
            return _storage_rejected(conn, where, code)
        if code == "AccessDenied" or status == 403:
            return Verdict(False, f"FORBIDDEN: {where} refused ListObjectsV2 with the key of {conn.name!r} ({code or 403})")
        if code == "NoSuchBucket" or status == 404:
            return Verdict(False, f"NOT FOUND: {where}: bucket {bucket!r} does not exist (the key was not verified)")
        return Verdict(False, f"FAILED: {where}: {code or status}")
    except (ConnectTimeoutError, ReadTimeoutError):
        return Verdict(False, f"TIMED OUT: {where}: no complete answer before the deadline")
    except BotoCoreError as exc:
        if _cert_failure(exc):
            return _untrusted(where, None)
        return Verdict(False, f"UNREACHABLE: {where}: {_no_answer(exc)}")
    return Verdict(True, f"OK: {where} accepted the key of {conn.name!r} (ListObjectsV2 succeeded)")
