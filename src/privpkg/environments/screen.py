"""What an environment's definition or lock may never hold, and the names that look like secrets.

A definition, its spec files and its locks are stored in the workspace and copied into builds and
images, where anyone who can read them sees them. So they are refused (one line, never the value)
when they hold:

- a known connection's secret (every connection privpkg can read: the store and the environment
  sources, read once per :func:`known_secrets`), or the account key of a connection string;
- a password in a URL's user info (``https://user:PASS@host``); a reference to a variable that
  pip expands (``https://__token__:${PAT}@host``) is not a password and is kept;
- a signature parameter: Azure SAS ``sig=``, S3 ``X-Amz-Signature=`` or ``Signature=`` (SigV2);
  a conda channel token in a path (``/t/TOKEN/``);
- a token as a URL's user name or first path segment (:func:`_url_tokens`), as Gemfury takes it
  (``https://TOKEN:@pypi.fury.io/ORG/``, ``https://pypi.fury.io/TOKEN/ORG/``): a segment or user
  name with a provider's token prefix (``ghp_``, ``glpat-``...), any user name or token-like first
  segment on a Gemfury host, or one with the shape (length and kinds of characters) of a known
  connection's secret, which is how another token of the same provider looks.

Environment variables whose names look like secrets (``TOKEN``, ``PAT``, ``SECRET``,
``PASSWORD``, ``KEY``...) get one warning line each (:func:`suspicious_variables`): the value
may be a public setting, so it is the user's call.

    >>> find_secret("https://acct.blob.core.windows.net/c/x.whl?sv=2024&sig=abc", secrets={})
    'a signature (sig=)'
    >>> find_secret("--extra-index-url https://__token__:${PAT}@pkgs.example/simple/", secrets={})
    >>> find_secret("https://u:hunter22@pkgs.example/simple/", secrets={})
    'a password in user info'
    >>> suspicious_variables(["HF_TOKEN", "PIP_KEYRING_PROVIDER", "AWS_SECRET_ACCESS_KEY"])
    ['variable HF_TOKEN looks like a secret; its value is stored in the workspace as written', 'variable AWS_SECRET_ACCESS_KEY looks like a secret; its value is stored in the workspace as written']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote

from privpkg.errors import UsageError

#: Shorter secrets are not searched for: they would match ordinary text.
MIN_SECRET = 8
_SIGNATURES = (
    (re.compile(r"[?&;]sig=", re.IGNORECASE), "a signature (sig=)"),
    (re.compile(r"X-Amz-Signature=", re.IGNORECASE), "an X-Amz-Signature"),
    (re.compile(r"[?&;]Signature=", re.IGNORECASE), "a signature (Signature=)"),
    (re.compile(r"[?&;](?:access_?)?token=", re.IGNORECASE), "a token in a query (token=)"),
    # anaconda.org's (and conda's) token in a channel path: https://conda.anaconda.org/t/TOKEN/channel
    (re.compile(r"://[^/\s]+(?:/[^\s]*?)?/t/[^/\s]+/"), "a channel token (/t/...)"),
)
#: ``scheme://user:password@`` (the password part non-empty).
_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([^/@\s:?#]*):([^/@\s?#]+)@")
#: A token used as the user name (``https://TOKEN@github.com``, as Git hosts take it): the
#: prefixes the big hosts give their tokens.
_TOKEN_USER = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?:ghp_|gho_|ghu_|ghs_|ghr_|github_pat_|glpat-|xox[abpors]-|npm_|pypi-)"
                         r"[^/@\s:?#]*@")
#: A user name no person has: 32 or more letters and digits (an Azure DevOps PAT, 52 of them, is
#: taken as the user name by its feeds).
_LONG_USER = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([A-Za-z0-9_-]{32,})@")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
#: A whole token as the providers issue them (a path segment or a user name that is exactly this).
_PREFIXED_TOKEN = re.compile(r"(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22,}|glpat-[A-Za-z0-9_-]{20,}|"
                             r"xox[abpors]-[A-Za-z0-9-]{10,}|npm_[A-Za-z0-9]{36}|pypi-[A-Za-z0-9_-]{50,})")
#: Hosts that take a token as the user name or as the first of two or more path segments.
_TOKEN_IN_PATH_HOSTS = re.compile(r"(?:^|\.)fury\.io$", re.IGNORECASE)
#: A URL's user info (group 1), host (2) and path (3).
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?:([^/@\s?#]*)@)?([^/@\s?#:]*)(?::[0-9]*)?(/[^\s?#]*)?")
#: The shortest secret whose shape is looked for in URLs: shorter ones are ordinary words.
MIN_SHAPE = 16
#: A password that is only a variable reference, which pip (and uv) expand from the environment.
_VARIABLE_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*")
_SECRET_WORDS = frozenset({"TOKEN", "PAT", "SECRET", "SECRETS", "PASSWORD", "PASSWD", "PWD", "KEY", "APIKEY", "CREDENTIAL",
                           "CREDENTIALS", "AUTH", "SAS", "SIG", "SIGNATURE"})


def known_secrets() -> dict[str, str]:
    """Every secret privpkg can read (value -> what to call it), read once: the connections'
    secrets, and the account key inside a connection string. Never printed."""
    from privpkg.connections import list_connections

    found: dict[str, str] = {}
    for conn in list_connections():
        what = f"the secret of connection {conn.name!r}"  # never NAME's: repr's quotes made 'feed''s
        for part in _parts(conn.secret):
            if len(part) >= MIN_SECRET:
                found.setdefault(part, what)
    return found


def _parts(secret: str) -> list[str]:
    """The secret, and the pieces of it that travel alone: a connection string's ``AccountKey``
    and ``SharedAccessSignature``, a SAS token's ``sig``."""
    out = [secret]
    for piece in secret.split(";"):
        key, _, value = piece.partition("=")
        if key in ("AccountKey", "SharedAccessSignature") and value:
            out.append(value)
    for m in re.finditer(r"(?:^|[?&])sig=([^&]+)", secret):
        out += [m.group(1), unquote(m.group(1))]
    return out


def _kinds(value: str) -> frozenset[str]:
    return frozenset("a" if c.islower() else "A" if c.isupper() else "0" if c.isdigit() else c for c in value)


def _shapes(secrets: Mapping[str, str]) -> set[tuple[int, frozenset[str]]]:
    """The (length, kinds of characters) of each known secret that could stand in a URL's user
    name or path segment as it is."""
    return {(len(v), _kinds(v)) for v in secrets if MIN_SHAPE <= len(v) <= 256 and re.fullmatch(r"[A-Za-z0-9._~-]+", v)}


#: A GUID: Azure DevOps names projects and feeds by one in URLs; never taken for a token by
#: shape (a GUID that is a known secret is still found by its value).
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _token_like(value: str, minimum: int) -> bool:
    """Long enough, and mixing digits and letters or both cases, as generated tokens do (an
    organisation's or a repository's name does not), and not a GUID. Stricter than
    :func:`privpkg.lookuplog.looks_like_token`, which may mask a log's GUID: this refuses."""
    has_digit, has_alpha = any(c.isdigit() for c in value), any(c.isalpha() for c in value)
    return (len(value) >= minimum and has_alpha and (has_digit or (value != value.lower() and value != value.upper()))
            and bool(re.fullmatch(r"[A-Za-z0-9._~-]+", value)) and not _GUID.fullmatch(value))


def _url_tokens(text: str, shapes: set[tuple[int, frozenset[str]]]) -> list[tuple[int, int, str]]:
    """The spans (start, end, what) of tokens standing as a URL's user name or first path
    segment in ``text`` (module docstring). A ``${VARIABLE}`` reference is never one."""
    found = []

    def is_token(value: str, fury: bool) -> bool:
        if not value or _VARIABLE_REF.fullmatch(value):
            return False
        if _PREFIXED_TOKEN.fullmatch(value) or (fury and _token_like(value, 12)):
            return True
        return _token_like(value, MIN_SHAPE) and any(len(value) == n and _kinds(value) <= kinds for n, kinds in shapes)

    for m in _URL.finditer(text):
        fury = bool(_TOKEN_IN_PATH_HOSTS.search(m.group(2)))
        if m.group(1) is not None:
            user = m.group(1).split(":", 1)[0]
            # Gemfury takes any user name as the token (https://TOKEN:@pypi.fury.io/ORG/)
            if (fury and user and not _VARIABLE_REF.fullmatch(user)) or is_token(user, False):
                found.append((m.start(1), m.start(1) + len(user), "a token as the user name in user info"))
        path = m.group(3) or ""
        segments = path.split("/")
        if len(segments) > 1 and segments[1]:
            first = segments[1]
            # on Gemfury a token comes before the account (/TOKEN/ORG/); /ORG/-/ver_X/file is a file
            fury_token = fury and len(segments) > 2 and segments[2] not in ("", "-") and is_token(first, True)
            if fury_token or is_token(first, False):
                start = m.start(3) + 1
                found.append((start, start + len(first), "a token in the URL's path"))
    return found


def find_secret(text: str, secrets: Mapping[str, str] | None = None) -> str | None:
    """What in ``text`` must not be stored, described without its value, or None. ``secrets``:
    from :func:`known_secrets` (read here when None)."""
    known = known_secrets() if secrets is None else secrets
    decoded = unquote(text)
    for value, what in known.items():
        if value in text or value in decoded:
            return what
    for pattern, what in _SIGNATURES:
        if pattern.search(text) or pattern.search(decoded):
            return what
    for m in (*_USERINFO.finditer(text), *_USERINFO.finditer(decoded)):  # user%3Apass@ too
        if not _VARIABLE_REF.fullmatch(m.group(2)):
            return "a password in user info"
    if _TOKEN_USER.search(text) or _TOKEN_USER.search(decoded):
        return "a token as the user name in user info"
    for m in (*_LONG_USER.finditer(text), *_LONG_USER.finditer(decoded)):
        user = m.group(1)
        if re.search(r"[0-9]", user) and re.search(r"[A-Za-z]", user) and not _GUID.fullmatch(user):
            return "a token as the user name in user info"
    shapes = _shapes(known)
    for candidate in (text, decoded):
        spans = _url_tokens(candidate, shapes)
        if spans:
            return spans[0][2]
    return None


_SIGNATURE_VALUES = re.compile(r"([?&;](?:sig|X-Amz-Signature|Signature|X-Amz-Credential|X-Amz-Security-Token)=)[^&\s\"'#]*",
                               re.IGNORECASE)


def masked(text: str, secrets: Mapping[str, str] | None = None) -> str:
    """``text`` as an error line may show it: passwords in user info, signature values, channel
    tokens and known secrets replaced by ``***``. Used on error paths only (it may read the
    store); a store that cannot be read masks what the patterns find.

    >>> masked("https://alice:hunter22@h.example/x.whl?sv=1&sig=abc%2F junk", secrets={})
    'https://alice:***@h.example/x.whl?sv=1&sig=*** junk'
    """
    if secrets is None:
        try:
            secrets = known_secrets()
        except Exception:  # noqa: BLE001 - an error line is being made: never a second error
            secrets = {}
    for start, end, _ in reversed(_url_tokens(text, _shapes(secrets))):
        text = text[:start] + "***" + text[end:]
    for value in sorted(secrets, key=len, reverse=True):
        text = text.replace(value, "***")
    text = _USERINFO.sub(lambda m: m.group(0) if _VARIABLE_REF.fullmatch(m.group(2)) else m.group(0).replace(":" + m.group(2) + "@", ":***@"), text)
    text = _SIGNATURE_VALUES.sub(r"\1***", text)
    text = _TOKEN_USER.sub(lambda m: m.group(0).split("://", 1)[0] + "://***@", text)
    text = re.sub(r"([?&;](?:access_?)?token=)[^&\s\"'#]*", r"\1***", text, flags=re.IGNORECASE)
    return re.sub(r"(://[^/\s]+(?:/[^\s]*?)?)/t/[^/\s]+/", r"\1/t/***/", text)


def refuse(text: str, what: str, secrets: Mapping[str, str] | None = None) -> None:
    """UsageError (one line, naming ``what`` and the kind of secret, never its value) when
    :func:`find_secret` finds something in ``text``."""
    found = find_secret(text, secrets)
    if found is not None:
        raise UsageError(f"{what} holds {found}; it would be stored for anyone who can read the workspace: "
                         "refer to it through a connection or a ${VARIABLE} instead")


class SecretLikeVariableWarning(UserWarning):
    """A variable of an environment's definition has a name that looks like a secret's
    (:func:`suspicious_variables`): its value is stored as written. The Python API's
    ``Environment.register`` and ``save_to_directory`` warn with it, once per name; the CLI
    prints the same lines as ``privpkg: warning:``."""


def warn_variables(names: Iterable[str], stacklevel: int = 3) -> None:
    """One :class:`SecretLikeVariableWarning` per variable name that looks like a secret's
    (each name once); ``stacklevel`` 3 points at the caller of the API method that warns."""
    import warnings  # already loaded by every interpreter: costs nothing, kept local with its use

    for line in suspicious_variables(dict.fromkeys(names)):
        warnings.warn(SecretLikeVariableWarning(line), stacklevel=stacklevel)


def suspicious_variables(names: Iterable[str]) -> list[str]:
    """One warning line for each variable name that looks like a secret's."""
    out = []
    for name in names:
        words = set(re.split(r"[_\W]+", name.upper()))
        if words & _SECRET_WORDS:
            out.append(f"variable {name} looks like a secret; its value is stored in the workspace as written")
    return out
