"""privpkg's own HTTP transport: proxies and the CA bundle, decided in one place.

``connection test``, ``auth login``'s check and wheelhouse downloads open URLs through
:func:`build_opener`; the storage SDKs get the same CA bundle from :func:`sdk_verify` (boto3's
``verify=``, azure-core's ``connection_verify=``). pip's own downloads, the shim's included, are
pip's: this module does not touch them.

Proxies: ``https_proxy``/``http_proxy``/``no_proxy``, lower case winning over upper case, as urllib,
requests and curl read them. An https URL goes through an ``http://`` proxy as a CONNECT tunnel
only: the proxy sees the host and port, never a header, so a PAT stays inside TLS. ``no_proxy``
takes host suffixes (``.corp.example`` or ``corp.example``), ``host:port``, ``*``, and, as
requests (so pip) does, IPv4 addresses and CIDR ranges, which urllib alone does not. A loopback
URL (``localhost``, 127.0.0.0/8, ``::1``) always goes direct, as Go's net/http does: through a
proxy it would name the proxy's machine, and a plain-http one would hand its PAT or SAS to the
proxy in clear, while privpkg allows plain http on loopback only because it never leaves this
machine. (urllib, requests and botocore on Linux send loopback to the proxy unless ``no_proxy``
names it; the storage SDKs keep doing so.)

The CA bundle, first set wins (an empty variable is unset):

1. ``REQUESTS_CA_BUNDLE``, then ``CURL_CA_BUNDLE``: requests reads them per request, and they
   beat pip's own ``cert`` inside pip (requests lets a request's setting win over the session's);
2. pip's ``cert``: ``PIP_CERT``, else the ``cert`` key of pip's config files as ``pip install``
   reads them (:mod:`privpkg.pipconfig`: ``[install]`` over ``[global]``; files in pip's order,
   global, user, site, ``PIP_CONFIG_FILE``, the later one winning; ``PIP_CONFIG_FILE=/dev/null``
   reads none), so a feed pip reaches, privpkg reaches;
3. ``SSL_CERT_FILE`` (OpenSSL's variable, and uv's): Python's default context honours it anyway,
   but requests and botocore use certifi and would not.

A download from a workspace's storage trusts what that storage's SDK client trusts instead
(``Storage.ca_bundle``: for S3, ``AWS_CA_BUNDLE`` or ``ca_bundle`` in the AWS config first, as
botocore reads them), passed to :func:`build_opener` as ``ca``.

A chosen bundle replaces the system's certificates, as ``pip --cert``, ``requests verify=`` and
curl's ``--cacert`` do. None set: the system's certificates (OpenSSL's default paths, which
``SSL_CERT_DIR`` can point elsewhere) for privpkg's own calls, and the SDKs' defaults for the
SDKs. A bundle that is missing, unreadable or holds no PEM certificate is a one-line
:class:`~privpkg.errors.PrivpkgError` naming where it was set.

Importing this module is cheap (no ``ssl``, no ``urllib.request``): probe imports it lazily.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from privpkg.errors import PrivpkgError, shown

if TYPE_CHECKING:
    import ssl
    import urllib.request

#: The CA-bundle variables privpkg reads, in precedence order (pip's config files come right
#: after PIP_CERT).
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "PIP_CERT", "SSL_CERT_FILE")


class CABundle(NamedTuple):
    """A CA bundle the user chose: its path and where it was set (``REQUESTS_CA_BUNDLE`` or
    ``cert in /etc/pip.conf``), for messages."""

    path: str
    source: str

    def describe(self) -> str:
        return f"{self.source}={shown(self.path)}"


def pip_cert(environ: Mapping[str, str] | None = None, prefix: str | None = None) -> CABundle | None:
    """pip's ``cert`` setting for ``pip install`` (:func:`privpkg.pipconfig.install_value`:
    ``PIP_CERT``, else ``[install]`` of any config file over ``[global]`` of all, a later file
    winning), as pip's option type "path" reads it (``~`` expanded)."""
    from privpkg import pipconfig

    found = pipconfig.install_value("cert", environ, prefix)
    if found is None:
        return None
    source = found.key if found.path is None else f"{found.key} in {found.path} [{found.section}]"
    return CABundle(os.path.expanduser(found.value), source)


def ca_bundle(environ: Mapping[str, str] | None = None, prefix: str | None = None) -> CABundle | None:
    """The CA bundle the user chose (module docstring), checked to be a readable PEM file or a
    directory; None for the system default. Raises PrivpkgError (one line naming the variable
    or config file) for one that is not."""
    env = os.environ if environ is None else environ
    bundle: CABundle | None = None
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        if env.get(var):
            bundle = CABundle(env[var], var)
            break
    else:
        bundle = pip_cert(env, prefix)
        if bundle is None and env.get("SSL_CERT_FILE"):
            bundle = CABundle(env["SSL_CERT_FILE"], "SSL_CERT_FILE")
    if bundle is not None:
        check(bundle)
    return bundle


def check(bundle: CABundle) -> None:
    """PrivpkgError (one line naming where it was set) unless ``bundle`` is a readable PEM file
    or a directory."""
    hint = "a CA bundle must be a readable PEM file; fix or unset it"
    try:
        if os.path.isdir(bundle.path):
            os.listdir(bundle.path)
            return
        with open(bundle.path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise PrivpkgError(f"{bundle.describe()}: no such file ({hint})") from None
    except PermissionError:
        raise PrivpkgError(f"{bundle.describe()}: permission denied ({hint})") from None
    except OSError as exc:
        raise PrivpkgError(f"{bundle.describe()}: cannot read it: {exc.strerror or type(exc).__name__} ({hint})") from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise PrivpkgError(f"{bundle.describe()}: holds no PEM certificate ({hint})")


def describe_trust(environ: Mapping[str, str] | None = None, bundle: CABundle | None = None) -> str:
    """Which certificates privpkg trusts, in words, for a certificate-verification failure:
    ``bundle`` when one was passed to :func:`build_opener`, else the user's choice."""
    if bundle is None:
        try:
            bundle = ca_bundle(environ)
        except PrivpkgError as exc:
            return str(exc)
    if bundle is None:
        return ("trusted: the system's certificates; for a private CA set REQUESTS_CA_BUNDLE, "
                "SSL_CERT_FILE or pip's cert")
    return f"trusted: only the CA bundle {bundle.describe()}"


def sdk_verify() -> str | None:
    """The CA bundle for a storage SDK (boto3 ``verify=``, azure-core ``connection_verify=``):
    the user's choice, or None to leave the SDK's own default (certifi; boto3 also reads
    ``AWS_CA_BUNDLE``). PrivpkgError for a bundle that is not usable."""
    bundle = ca_bundle()
    return bundle.path if bundle is not None else None


def ssl_context(ca: CABundle | None = None) -> ssl.SSLContext:
    """Python's default client context (hostname checked, TLS 1.2+ as Python sets it) trusting
    ``ca`` only, else the chosen CA bundle only, else the system's certificates."""
    import ssl

    bundle = ca or ca_bundle()
    if bundle is None:
        return ssl.create_default_context()
    try:
        if os.path.isdir(bundle.path):
            return ssl.create_default_context(capath=bundle.path)
        return ssl.create_default_context(cafile=bundle.path)
    except ssl.SSLError as exc:
        raise PrivpkgError(f"{bundle.describe()}: not a usable CA bundle ({exc.reason or exc})") from None


def proxy_bypassed(host: str, no_proxy: str) -> bool:
    """Whether ``no_proxy`` exempts ``host`` (``name`` or ``name:port``): urllib's rules (``*``,
    a host or dot-suffix, with or without port) plus requests' IPv4 address and CIDR entries.

    >>> proxy_bypassed("10.1.2.3:443", "10.0.0.0/8")
    True
    >>> proxy_bypassed("evilcorp.example", "corp.example")
    False
    >>> proxy_bypassed("pkgs.corp.example", ".corp.example")
    True
    """
    import ipaddress
    import urllib.request

    if urllib.request.proxy_bypass_environment(host, {"no": no_proxy}):  # type: ignore[attr-defined]  # not in typeshed
        return True
    name = _host_only(host)
    try:
        addr = ipaddress.ip_address(name)
    except ValueError:
        return False
    for entry in (e.strip() for e in no_proxy.split(",")):
        try:
            if entry and addr in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _host_only(hostport: str) -> str:
    if hostport.startswith("["):  # [IPv6]:port
        return hostport[1:].split("]", 1)[0]
    return hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport


def direct(hostport: str, no_proxy: str) -> bool:
    """Whether a request to ``hostport`` skips the proxy: a loopback host, or ``no_proxy``.

    >>> direct("127.0.0.2:8080", ""), direct("localhost", ""), direct("[::1]:443", ""), direct("pkgs.example", "")
    (True, True, True, False)
    """
    import ipaddress

    host = _host_only(hostport).lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    return proxy_bypassed(hostport, no_proxy)


def build_opener(*handlers: Any, ca: CABundle | None = None) -> urllib.request.OpenerDirector:
    """An opener with ``handlers`` added, the environment's proxies (urllib's reading: lower
    case wins; ``HTTP_PROXY`` is ignored when ``REQUEST_METHOD`` is set, httpoxy; loopback and
    ``no_proxy`` go direct, :func:`direct`) and an HTTPS handler trusting :func:`ssl_context`
    (``ca``: a storage's own bundle instead of the user's choice, see the module docstring).
    Raises PrivpkgError for an unusable CA bundle."""
    import urllib.request

    found = urllib.request.getproxies_environment()
    no_proxy = found.pop("no", "")

    class EnvProxyHandler(urllib.request.ProxyHandler):
        def proxy_open(self, req: Any, proxy: str, type: str) -> Any:
            if req.host and direct(req.host, no_proxy):
                return None
            return super().proxy_open(req, proxy, type)

    # Only http(s) proxies: urllib would otherwise add an ftp_proxy or socks one it cannot use.
    wanted = {k: v for k, v in found.items() if k in ("http", "https")}
    return urllib.request.build_opener(EnvProxyHandler(wanted), urllib.request.HTTPSHandler(context=ssl_context(ca)), *handlers)


def proxy_for(url: str) -> str | None:
    """``host:port`` of the proxy :func:`build_opener` sends ``url`` through (user info left
    out: a proxy URL may hold a password), or None for a direct connection."""
    import urllib.parse
    import urllib.request

    found = urllib.request.getproxies_environment()
    parts = urllib.parse.urlsplit(url)
    proxy = found.get(parts.scheme)
    if not proxy or (parts.netloc and direct(parts.netloc.rsplit("@", 1)[-1], found.get("no", ""))):
        return None
    return urllib.parse.urlsplit(proxy if "://" in proxy else "http://" + proxy).netloc.rsplit("@", 1)[-1]


class _SinkFailed(Exception):
    """Carries an OSError raised by a download's sink (a full disk) past the network handlers."""

    def __init__(self, error: OSError) -> None:
        self.error = error


def stream(req: urllib.request.Request, sink: Callable[[bytes], None], *, label: str, host: str | None, timeout: float,
           ca: CABundle | None = None, on_http_error: Callable[[int], PrivpkgError | None] | None = None) -> None:
    """Download ``req`` in chunks into ``sink``: the one way privpkg streams a file (a workspace
    wheel, a lock's artifact). Every network failure is one PrivpkgError line naming ``label``
    and ``host`` (``on_http_error`` may give a better one for a status); an OSError of ``sink``
    (a full disk) propagates as it was raised."""
    import ssl
    import urllib.error

    try:
        with build_opener(ca=ca).open(req, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                try:
                    sink(chunk)
                except OSError as exc:
                    raise _SinkFailed(exc) from None
    except _SinkFailed as failed:
        raise failed.error from None
    except urllib.error.HTTPError as exc:
        exc.close()
        better = on_http_error(exc.code) if on_http_error else None
        raise (better or PrivpkgError(f"downloading {label} failed: HTTP {exc.code} from {host}")) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLCertVerificationError):
            raise PrivpkgError(f"downloading {label} from {host}: certificate verification failed; "
                               f"{describe_trust(bundle=ca)}") from None
        why = exc.reason if isinstance(exc.reason, str) else getattr(exc.reason, "strerror", None) or type(exc.reason).__name__
        raise PrivpkgError(f"cannot reach {host} to download {label}: {why}") from None
    except TimeoutError:
        raise PrivpkgError(f"downloading {label} from {host} timed out after {timeout:g} s") from None
    except OSError as exc:
        raise PrivpkgError(f"downloading {label} from {host} failed: {exc.strerror or type(exc).__name__}") from None
