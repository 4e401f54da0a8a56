"""S3 and S3-compatible stores: ``s3://BUCKET[/PREFIX]``, credentials resolved above from an
``S3`` connection (username = access key id, secret = secret access key) or, where
:mod:`privpkg.ambient` allows it, AWS's default credential chain; presigned GET URLs made by
botocore (a session token from the chain rides along as ``X-Amz-Security-Token``).

    echo "$AWS_SECRET_ACCESS_KEY" | privpkg connection set ml-s3 --category S3 \\
        --target s3://my-bucket --username "$AWS_ACCESS_KEY_ID"

Large files go up as a multipart upload, which S3 shows only once it is completed, so an
interrupted upload is never visible. ``boto3`` is imported only here (``pip install 'privpkg[s3]'``).
Besides the backend, other layers use :func:`sdk` and :func:`make_client` (``privpkg connection
test`` builds its own short-deadline client with it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from privpkg import urls
from privpkg.errors import NotFoundError, PrivpkgError, shown
from privpkg.storage.base import AlreadyExists, BlobInfo, Credential, Progress, bounded, missing_extra

if TYPE_CHECKING:
    from privpkg.http import CABundle

#: botocore waits 60 s to connect and 60 s per read by default, per attempt: an endpoint that
#: accepts and never answers would hang a command for minutes. Signing (presigned URLs) is
#: offline and never waits on these.
_CLIENT_CONFIG: dict[str, Any] = {
    "signature_version": "s3v4",
    "retries": {"max_attempts": 2, "mode": "standard"},
    "connect_timeout": 10,
    "read_timeout": 30,
}


def sdk() -> Any:
    """The ``boto3`` module; PrivpkgError naming the extra when it is missing."""
    try:
        import boto3
    except ImportError:
        raise missing_extra("s3", "boto3") from None
    return boto3


def make_client(endpoint_url: str | None, region: str, key_id: str | None, secret: str | None,
                timeout: float | None = None, **config: Any) -> Any:
    """The only way privpkg builds an S3 client (``config``: botocore ``Config`` options). Its
    requests go to exactly ``endpoint_url``, the endpoint the credentials were checked against
    (None: AWS), whatever the ambient AWS configuration says:

    - ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL`` and ``endpoint_url`` in ~/.aws/config (any
      profile ``AWS_PROFILE`` names) are ignored: botocore >= 1.31 would otherwise send keys
      bound to AWS, and uploads and the wheels pip installs, to that host, plain http included;
    - for an explicit endpoint, path-style addressing and no accelerate/dual-stack/FIPS host
      rewriting, so ``s3 = addressing_style = virtual`` in ~/.aws/config cannot turn
      ``https://minio.example`` into ``https://BUCKET.minio.example``. On AWS these settings are
      left to the user's config: every host they pick is an AWS host.

    Proxy variables stay the user's (botocore reads them; they change the route, not the
    endpoint). TLS trusts ``AWS_CA_BUNDLE``/``ca_bundle`` when the AWS configuration sets one (the
    more specific choice), else the CA bundle privpkg's own HTTP uses (:func:`privpkg.http.sdk_verify`:
    ``REQUESTS_CA_BUNDLE``, pip's ``cert``, ``SSL_CERT_FILE``...), which botocore alone would not
    read, else botocore's default. Raises PrivpkgError (one line) when botocore refuses the
    configuration, e.g. ``AWS_PROFILE`` names a profile that does not exist, or for an unusable
    CA bundle.

    ``key_id=None``: no key pair; the client signs with AWS's default credential chain of a fresh
    session. What the chain fetches (STS for a role, SSO, the instance metadata service) gets
    ``timeout`` (pip's, in the shim) as its connect and read timeout and one attempt; the
    container-credentials fetcher has fixed ones, bounded by the caller (storage.base.bounded).
    The chain finding nothing is a PrivpkgError starting "no AWS default credentials"."""
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError
    except ImportError:
        raise missing_extra("s3", "boto3") from None
    config = {**config, "ignore_configured_endpoint_urls": True}
    if endpoint_url is not None:
        config["s3"] = {**config.get("s3", {}), "addressing_style": "path", "use_accelerate_endpoint": False,
                        "use_dualstack_endpoint": False}
        config.update(use_dualstack_endpoint=False, use_fips_endpoint=False)
    try:
        verify = _verify()
        if key_id is None:
            return _ambient_client(endpoint_url, region, timeout, Config(**config), verify)
        return boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            aws_session_token=None,
            config=Config(**config),
            verify=verify,
        )
    except (BotoCoreError, ValueError) as exc:
        raise PrivpkgError(f"cannot set up an S3 client from the AWS configuration: {type(exc).__name__}: {exc}") from None


def _verify() -> str | None:
    """boto3's ``verify=``: privpkg's CA bundle when the user chose one, unless the AWS
    configuration names its own (then None: botocore decides)."""
    from privpkg import http

    bundle = http.sdk_verify()
    return None if bundle is None or _aws_bundle() is not None else bundle


def _aws_bundle() -> CABundle | None:
    """AWS's own CA bundle setting, which botocore reads when ``verify=`` is None: ``AWS_CA_BUNDLE``,
    else ``ca_bundle`` in the AWS config for the active profile."""
    import os

    from privpkg.http import CABundle

    if os.environ.get("AWS_CA_BUNDLE"):
        return CABundle(os.environ["AWS_CA_BUNDLE"], "AWS_CA_BUNDLE")
    import botocore.session

    # A session costs ~12 ms: asked only when a bundle matters.
    path = botocore.session.Session().get_config_variable("ca_bundle")
    return CABundle(path, f"ca_bundle in {os.environ.get('AWS_CONFIG_FILE') or '~/.aws/config'}") if path else None


def ca_bundle() -> CABundle | None:
    """The CA bundle :func:`make_client`'s clients trust, for a download of a presigned URL
    (botocore's own choice first, then privpkg's, :func:`privpkg.http.ca_bundle`); None: the
    system's certificates (botocore itself would use certifi's). PrivpkgError for an unusable one."""
    from botocore.exceptions import BotoCoreError

    from privpkg import http

    try:
        aws = _aws_bundle()
    except BotoCoreError as exc:
        raise PrivpkgError(f"cannot read the AWS configuration: {type(exc).__name__}: {exc}") from None
    if aws is None:
        return http.ca_bundle()
    http.check(aws)
    return aws


def _ambient_client(endpoint_url: str | None, region: str, timeout: float | None, config: Any, verify: str | None) -> Any:
    import boto3
    import botocore.session
    from botocore.config import Config

    core = botocore.session.Session()
    if timeout is not None:
        # Every client the chain makes for itself (STS for assume-role and web identity, SSO,
        # SSO-OIDC) starts from the session's default config.
        core.set_default_client_config(Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1}))
        core.set_config_variable("metadata_service_timeout", timeout)
        core.set_config_variable("metadata_service_num_attempts", 1)
    if core.get_credentials() is None:  # resolves the chain now (cached for the client below)
        raise PrivpkgError("no AWS default credentials were found (AWS_ACCESS_KEY_ID, AWS_PROFILE, ~/.aws/credentials, "
                           "SSO, a role)")
    return boto3.session.Session(botocore_session=core).client("s3", endpoint_url=endpoint_url, region_name=region, config=config,
                                                                verify=verify)


class _Conflict(Exception):
    """AWS's 409 ConditionalRequestConflict: another conditional write to the key was in flight."""


def _if_none_match(params: dict[str, Any], **_: Any) -> None:
    params.setdefault("IfNoneMatch", "*")


class S3Storage:
    def __init__(self, location: str, credential: Credential, endpoint_url: str | None = None, region: str | None = None,
                 timeout: float | None = None) -> None:
        rest = location[len("s3://") :].strip("/")
        self.location = location.rstrip("/")
        self.bucket, _, prefix = rest.partition("/")
        self.prefix = prefix + "/" if prefix else ""
        self.endpoint_url = endpoint_url
        self.region = region or "us-east-1"
        self._client: Any = None
        self._credential = credential
        self._conn_name = credential.name
        self._ambient = credential.kind == "ambient"
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"S3Storage({self.location!r})"

    def _s3(self) -> Any:
        if self._client is None:
            # The credential is bound to the endpoint it was stored for (see privpkg.access).
            if self._ambient:
                try:
                    self._client = make_client(self.endpoint_url, self.region, None, None, self._timeout, **_CLIENT_CONFIG)
                except PrivpkgError as exc:
                    where = urls.s3_endpoint_label(self.endpoint_url)
                    raise PrivpkgError(f"no S3 credentials for {where}/{self.bucket}: {exc}; or store a connection: privpkg "
                                       f"connection set NAME --category S3 --target s3://{self.bucket} --username ACCESS_KEY_ID") from None
            else:
                key_id, secret = self._credential.key_id or "", self._credential.secret
                self._client = make_client(self.endpoint_url, self.region, key_id, secret, **_CLIENT_CONFIG)
            # Objects are never overwritten: every PutObject and CompleteMultipartUpload of this
            # client is a conditional create (If-None-Match: *), which S3 answers with 412 when the
            # key exists, whoever raced to it (s3transfer's upload_file cannot pass the header).
            for op in ("PutObject", "CompleteMultipartUpload"):
                self._client.meta.events.register(f"before-parameter-build.s3.{op}", _if_none_match)
        return self._client

    def _call(self, what: str, fn: Any, _exists: str | None = None, **kw: Any) -> Any:
        """``fn(**kw)``, its failures as one line; ``_exists``: the key of a conditional create,
        whose refusal (412 PreconditionFailed) is :class:`AlreadyExists`."""
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, HTTPClientError, SSLError

        from privpkg.log import sdk_records_withheld

        try:
            with sdk_records_withheld():  # botocore's DEBUG records hold signatures and tokens
                return fn(**kw)
        except S3UploadFailedError as exc:
            if _exists is not None and "PreconditionFailed" in str(exc):
                raise AlreadyExists(f"{_exists} already exists in {self.location}") from None
            if "NoSuchBucket" in str(exc):
                raise PrivpkgError(f"bucket {self.bucket!r} does not exist") from None
            raise PrivpkgError(f"upload to {self.location} failed: {type(exc).__name__}") from None
        except EndpointConnectionError:
            raise PrivpkgError(f"cannot reach {self.endpoint_url or 'S3'} to {what}") from None
        except SSLError as exc:  # name the CA bundle in use, as connection test and wheelhouse downloads do
            from privpkg import http

            why = "certificate verification failed" if "CERTIFICATE_VERIFY_FAILED" in str(exc) else f"TLS failed ({type(exc).__name__})"
            try:
                trust = http.describe_trust(bundle=ca_bundle())
            except PrivpkgError as bad:
                trust = str(bad)
            raise PrivpkgError(f"{self.endpoint_url or 'S3'}: {why} while trying to {what}; {trust}") from None
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if _exists is not None and (code == "PreconditionFailed" or status == 412):
                raise AlreadyExists(f"{_exists} already exists in {self.location}") from None
            if _exists is not None and code == "ConditionalRequestConflict":
                raise _Conflict() from None
            if code in ("404", "NoSuchKey", "NotFound"):
                raise NotFoundError(f"not found in {self.location}") from None
            if code == "NoSuchBucket":
                raise PrivpkgError(f"bucket {self.bucket!r} does not exist") from None
            if (code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403") or status == 403) and self._ambient:
                raise PrivpkgError(
                    f"{self.location} refused your AWS default credentials while trying to {what} ({code or status}); "
                    "reading needs s3:GetObject and s3:ListBucket, publishing also s3:PutObject"
                ) from None
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403") or status == 403:
                raise PrivpkgError(
                    f"{self.location} refused the credentials while trying to {what} ({code or status}); "
                    f"update them with: privpkg connection set {self._conn_name} --update"
                ) from None
            raise PrivpkgError(f"{self.location}: {code or status} while trying to {what}") from None
        except HTTPClientError as exc:  # a timeout or reset, here or at a credentials endpoint (botocore names the URL)
            raise PrivpkgError(f"no answer while trying to {what} for {self.location}: {type(exc).__name__}: {shown(exc)}") from None
        except BotoCoreError as exc:
            if self._ambient:  # e.g. an expired SSO token, a role that cannot be assumed: botocore says which
                raise PrivpkgError(f"AWS default credentials failed while trying to {what} for {self.location}: "
                                   f"{type(exc).__name__}: {shown(exc)}") from None
            raise PrivpkgError(f"S3 error while trying to {what}: {type(exc).__name__}") from None

    def head(self, key: str) -> BlobInfo | None:
        try:
            r = self._call("read object metadata", self._s3().head_object, Bucket=self.bucket, Key=self.prefix + key)
        except NotFoundError:
            return None
        return BlobInfo(key, r["ContentLength"], (r.get("Metadata") or {}).get("sha256"))

    def put(self, key: str, path: Path, sha256: str, progress: Progress | None = None) -> None:
        if self.head(key) is not None:  # first: it also reports a missing SDK; saves an upload
            raise AlreadyExists(f"{key} already exists in {self.location}")
        from boto3.s3.transfer import TransferConfig

        # The HEAD above is only a shortcut: the guarantee is the conditional write (the
        # client adds IfNoneMatch to PutObject and CompleteMultipartUpload, see _s3).
        from privpkg.log import sdk_debug_enabled

        # With SDK logging at DEBUG, on this thread only: s3transfer's threads log what the
        # calling thread's sdk_records_withheld cannot reach.
        config = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=2,
                                use_threads=not sdk_debug_enabled())
        self._call(
            "upload", self._s3().upload_file, Filename=str(path), Bucket=self.bucket, Key=self.prefix + key,
            ExtraArgs={"Metadata": {"sha256": sha256}, "ContentType": "application/zip"},
            Callback=progress, Config=config, _exists=key,
        )

    def put_bytes(self, key: str, data: bytes) -> None:
        for _ in range(3):
            try:
                self._call("upload", self._s3().put_object, Bucket=self.bucket, Key=self.prefix + key, Body=data, _exists=key)
                return
            except _Conflict:
                continue  # AWS: a concurrent conditional write was in flight (409); retry
        raise PrivpkgError(f"{self.location}: concurrent writes to {key} kept conflicting; try again")

    def read_bytes(self, key: str) -> bytes:
        try:
            r = self._call("read", self._s3().get_object, Bucket=self.bucket, Key=self.prefix + key)
        except NotFoundError:
            raise NotFoundError(f"{key} is not in {self.location}") from None
        data: bytes = r["Body"].read()
        return data

    def list_keys(self, prefix: str) -> list[BlobInfo]:
        paginator = self._s3().get_paginator("list_objects_v2")
        pages = self._call("list objects", lambda **_: list(paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)))
        # The ETag is the content's MD5 for a single PUT (other content, other ETag) but not for
        # every upload (multipart, SSE-KMS): with LastModified it changes on every write.
        out = [BlobInfo(o["Key"][len(self.prefix) :], o["Size"], None, f"{o.get('ETag')} {o.get('LastModified')}")
               for page in pages for o in page.get("Contents", [])]
        return sorted(out, key=lambda b: b.key)

    def delete(self, key: str) -> None:
        if self.head(key) is None:
            raise NotFoundError(f"{key} is not in {self.location}")
        self._call("delete", self._s3().delete_object, Bucket=self.bucket, Key=self.prefix + key)

    def list(self, prefix: str) -> list[BlobInfo]:
        out = []
        paginator = self._s3().get_paginator("list_objects_v2")
        pages = self._call("list objects", lambda **_: list(paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)))
        for page in pages:
            for obj in page.get("Contents", []):
                key = obj["Key"][len(self.prefix) :]
                # Listings carry no user metadata; the recorded sha256 needs one HEAD each.
                out.append(self.head(key) or BlobInfo(key, obj["Size"], None))
        return sorted(out, key=lambda b: b.key)

    def ca_bundle(self) -> CABundle | None:
        return ca_bundle()

    def own_sas(self) -> None:
        return None  # signed URLs are derived per key and ttl

    def signed_url(self, key: str, ttl: int) -> str:
        def sign() -> str:
            url: str = self._call("sign a URL", lambda: self._s3().generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self.prefix + key}, ExpiresIn=ttl
            ))
            return url

        if not self._ambient:
            return sign()  # offline: a key pair signs locally
        # The chain may fetch a role or SSO session (at the first call, or to refresh it).
        return bounded(self._timeout, f"getting AWS default credentials for {self.location}", sign)
