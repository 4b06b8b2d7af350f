"""S3ObjectStore: the ObjectStore port on S3 and S3-compatible servers (aiobotocore).

Theory of operation:

- Keys. Everything lives under ``prefix`` in one bucket: push mpacks at
  ``<prefix>mpacks/<hex>``, legacy per-object keys at ``<prefix>objects/<hex>``,
  fetch documents at ``<prefix>fetch/<hex>`` with their seals at
  ``<prefix>fetch/<hex>.seal``, where ``<hex>`` is the digest the id names.
  Fetch documents are derived data: a lifecycle rule may expire ``fetch/``.
  Pushes being received are staged at ``<prefix>staging/<uuid4 hex>``.
  Ids are checked (and legacy ids canonicalized) before any request, so both
  spellings of an object id hit one key and no id can produce a key outside its namespace.
- Reads. A whole mpack is one GET; a byte range is one ranged GET. HTTP cannot
  ask for an empty range, and S3 answers a range that starts at or past the end
  with 416: both mean ``b""`` when the object exists, so only an empty range
  costs a HEAD (to tell ``b""`` from a missing key). A body is always read and
  closed inside ``async with``: an unclosed body would keep its pooled
  connection forever.
- Writes. Content-addressed, so a PUT of the same id writes the same bytes and
  is idempotent; it always writes (never "exists, skip"), so putting the same
  bytes again repairs a damaged copy. Documents above
  ``multipart_threshold_bytes`` go up as a multipart upload, parts in parallel,
  aborted on any failure (cancellation included) so no orphaned parts accumulate.
- Fetch documents stream: :class:`S3FetchUpload` cuts the written bytes into
  parts and uploads each while the writer goes on (at most
  ``multipart_concurrency`` in flight; a writer waits for a slot). A document
  smaller than one part goes up as one PUT at commit. Abort (and a failed
  commit) sends AbortMultipartUpload, shielded from cancellation. Commit then
  writes the seal: the document's size and ETag as S3 reported them.
  :meth:`S3ObjectStore.fetch_intact` is a HEAD of the document and a GET of the
  small seal: a replaced or truncated document has another ETag or size.
- Staged pushes stream the same way (:class:`S3PushUpload`, the same
  :class:`_MultipartWriter`) under a staging key, since their id is known only
  at the end. Commit HEADs the mpack: stored intact (same size, and the sha256
  in its ``fetchcore-sha256`` metadata, which every mpack this store writes
  carries) means the staged upload is just aborted. Otherwise the staging
  object is completed, copied on the server to the mpack key (CopyObject up to
  ``single_copy_limit_bytes``, UploadPartCopy parts above) and deleted; a push
  smaller than one part is one PUT of the mpack. :meth:`S3ObjectStore.sweep_staging`
  deletes old staging objects and aborts old multipart uploads (of staging and
  fetch keys) that crashed processes left.
- Connecting. Region, credentials and endpoint follow botocore's usual sources
  (``AWS_DEFAULT_REGION``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL_S3``, the
  config files) unless given. The bucket is checked with a HEAD: a missing
  bucket or a denied one is a clear error at connect, not at the first fetch.
- Faults. botocore retries throttling, 5xx and connection faults itself
  (standard or adaptive mode, ``max_attempts`` tries); a body that breaks
  mid-stream is re-requested up to the same bound. Connect and read timeouts
  bound every try. aiohttp has no write timeout and waits for "100 Continue"
  forever, so bodies go out without ``Expect`` and every write has a deadline
  from its size (``S3Tuning.write_deadline_s``): a server that stalls cannot
  hang a read or a write. Whatever still fails leaves through one translation table,
  :data:`_TRANSLATIONS`: a missing key becomes ``None``, everything else an
  :class:`~fetchcore.errors.ObjectStoreError` whose ``__cause__`` is the vendor error.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import aiohttp
import attrs
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.handlers import add_expect_header

from fetchcore import ids
from fetchcore.errors import InvalidRequestError, ObjectStoreError
from fetchcore.lifecycle import StoredMPack, age_cutoff
from fetchcore.policy import MiB, Policy
from fetchcore.validation import check_range

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import (
        CompletedPartTypeDef,
        GetObjectOutputTypeDef,
        HeadObjectOutputTypeDef,
    )

MAX_PRESIGN_TTL_S = 7 * 24 * 3600  # the longest a SigV4 presigned URL can live
_MAX_PARTS = 10_000  # S3's limit on parts in one multipart upload
_MIN_PART_BYTES = 5 * MiB  # S3's minimum size of every part but the last
# S3 copies up to 5 GiB in one CopyObject; a server that answers only once the copy is done
# (SeaweedFS: about 100 MiB/s) must finish within the read timeout, so larger pushes go in parts.
_SINGLE_COPY_LIMIT_BYTES = 1024 * MiB
_MAX_PART_BYTES = 5 * 1024 * MiB  # S3's largest part
_PARTS_PER_DOUBLING = 1_000  # a stream's part size doubles every this many parts
_COPY_PART_BYTES = 512 * MiB  # the part size of a multipart copy, when the limit allows
SHA256_METADATA = "fetchcore-sha256"
"""The user metadata (``x-amz-meta-…``) of a push mpack: the hex sha256 its id names."""
_HTTP_PARTIAL_CONTENT = 206
_MAX_BACKOFF_S = 20.0  # botocore's ceiling on the wait before a retry


class _KeyMissingError(Exception):
    """The key (or its bucket, on HEAD) does not exist: the port answers None."""


class _RangeNotSatisfiableError(Exception):
    """The range starts at or past the end of the object (HTTP 416)."""


class _BucketExistsError(Exception):
    """CreateBucket on a bucket that is already there."""


# Vendor error code -> (what it means here, how to say it). One table, at the boundary.
_TRANSLATIONS: Mapping[str, tuple[type[Exception], str]] = {
    "NoSuchKey": (_KeyMissingError, "no such key"),
    "NotFound": (_KeyMissingError, "not found"),
    "404": (_KeyMissingError, "not found"),
    "InvalidRange": (_RangeNotSatisfiableError, "range not satisfiable"),
    "416": (_RangeNotSatisfiableError, "range not satisfiable"),
    "BucketAlreadyOwnedByYou": (_BucketExistsError, "bucket already exists"),
    "BucketAlreadyExists": (_BucketExistsError, "bucket already exists"),
    "NoSuchBucket": (ObjectStoreError, "the bucket does not exist"),
    "NoSuchUpload": (ObjectStoreError, "the multipart upload is gone"),
    "AccessDenied": (ObjectStoreError, "access denied"),
    "403": (ObjectStoreError, "access denied"),
    "InvalidAccessKeyId": (ObjectStoreError, "the server does not know the access key"),
    "SignatureDoesNotMatch": (ObjectStoreError, "the secret key does not match the access key"),
    "SlowDown": (ObjectStoreError, "throttled, retries exhausted"),
    "503": (ObjectStoreError, "service unavailable, retries exhausted"),
    "InternalError": (ObjectStoreError, "server error, retries exhausted"),
    "EntityTooLarge": (ObjectStoreError, "the object is larger than the server accepts"),
}

# Failures of a response body after its headers arrived: botocore's retries are over
# by then, so the whole GET is repeated (within the same bound of attempts).
_BODY_ERRORS = (ReadTimeoutError, ResponseStreamingError, IncompleteReadError)

# What the transport can raise besides botocore's own errors.
_TRANSPORT_ERRORS = (BotoCoreError, aiohttp.ClientError, OSError)


def _at_least(minimum: float) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise InvalidRequestError(f"S3Tuning.{attribute.name} must be >= {minimum}")

    return check


def _one_of(*choices: str) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value not in choices:
            raise InvalidRequestError(f"S3Tuning.{attribute.name} must be one of {choices}")

    return check


@attrs.frozen
class S3Tuning:
    """Timeouts, retries, pool and multipart settings of an :class:`S3ObjectStore`.

    Attributes:
        connect_timeout_s: a TCP connect that takes longer has failed.
        read_timeout_s: a socket read (headers or body) that waits longer has failed.
        max_attempts: tries per request, the first included (botocore's
            ``total_max_attempts``; also bounds re-requests of a broken body).
        min_write_bytes_per_s: an upload slower than this has failed. aiohttp
            has no write timeout (its read timeout starts once the body is
            sent), so every PUT gets a deadline from its size, the timeouts,
            the attempts and botocore's backoff: a server that stops reading
            cannot hang a write.
        retry_mode: botocore's ``"standard"`` or ``"adaptive"`` (client-side
            rate limiting on throttling).
        max_pool_connections: pooled HTTP connections. The default covers a
            fetch's reads at ``Policy.max_in_flight`` plus parallel part uploads.
        multipart_threshold_bytes: larger documents go up as multipart uploads.
        multipart_part_bytes: size of each part (raised when a document would
            need more than 10,000 parts).
        multipart_concurrency: parts uploaded (or copied) at once.
        push_buffer_bytes: a push received in pieces is held in memory up to
            this size before its staging upload starts. One that ends within it
            is written straight to its mpack key at commit (as ``put_mpack``
            would): no staging object, no server-side copy, which would cost a
            small push more than the upload itself. 0 (the default: the core
            already ingests a push within ``Policy.whole_push_bytes`` whole,
            with ``put_mpack``) stages every push from its first full part.
        single_copy_limit_bytes: a staged push up to this size becomes its
            mpack by one CopyObject; a larger one by a multipart copy
            (UploadPartCopy, parts of up to 512 MiB, ``multipart_concurrency``
            at once). 1 GiB by default; S3 allows up to 5 GiB. A server that
            answers a copy only once it is done (SeaweedFS does) must finish
            it within ``read_timeout_s``: lower this limit, or raise the
            timeout, where copies are slower than
            ``single_copy_limit_bytes / read_timeout_s``.
        addressing_style: ``"path"`` (works with every S3-compatible server) or
            ``"virtual"``.
    """

    connect_timeout_s: float = attrs.field(default=5.0, validator=_at_least(0.001))
    read_timeout_s: float = attrs.field(default=30.0, validator=_at_least(0.001))
    max_attempts: int = attrs.field(default=4, validator=_at_least(1))
    min_write_bytes_per_s: float = attrs.field(default=1 * MiB, validator=_at_least(1))
    retry_mode: Literal["standard", "adaptive"] = attrs.field(
        default="standard", validator=_one_of("standard", "adaptive")
    )
    max_pool_connections: int = attrs.field(
        default=Policy().max_in_flight * 2, validator=_at_least(1)
    )
    multipart_threshold_bytes: int = attrs.field(default=16 * MiB, validator=_at_least(0))
    multipart_part_bytes: int = attrs.field(default=8 * MiB, validator=_at_least(_MIN_PART_BYTES))
    multipart_concurrency: int = attrs.field(default=4, validator=_at_least(1))
    push_buffer_bytes: int = attrs.field(default=0, validator=_at_least(0))
    single_copy_limit_bytes: int = attrs.field(
        default=_SINGLE_COPY_LIMIT_BYTES, validator=_at_least(_MIN_PART_BYTES)
    )
    addressing_style: Literal["path", "virtual"] = attrs.field(
        default="path", validator=_one_of("path", "virtual")
    )

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> S3Tuning:
        """Tuning from keyword options, refusing names it does not know.

        Raises:
            InvalidRequestError: an unknown option or a value out of range.
        """
        unknown = sorted(set(options) - set(attrs.fields_dict(cls)))
        if unknown:
            raise InvalidRequestError(f"unknown S3 tuning option(s): {', '.join(unknown)}")
        return cls(**options)

    def client_config(self) -> AioConfig:
        """The botocore client configuration these settings stand for."""
        return AioConfig(
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
            retries={"mode": self.retry_mode, "total_max_attempts": self.max_attempts},
            max_pool_connections=self.max_pool_connections,
            signature_version="s3v4",
            s3={"addressing_style": self.addressing_style},
            # S3-compatible servers reject the checksums botocore >= 1.36 sends by default.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )

    def write_deadline_s(self, size: int) -> float:
        """The longest one write of ``size`` bytes may take, every attempt and backoff included."""
        per_attempt = (
            self.connect_timeout_s + self.read_timeout_s + size / self.min_write_bytes_per_s
        )
        backoff = sum(min(_MAX_BACKOFF_S, 2.0**retry) for retry in range(self.max_attempts - 1))
        return self.max_attempts * per_attempt + backoff

    def part_bytes_for(self, size: int) -> int:
        """The part size for a document of ``size`` bytes (at most 10,000 parts)."""
        return max(self.multipart_part_bytes, math.ceil(size / _MAX_PARTS))

    def streamed_part_bytes(self, number: int) -> int:
        """The size of part ``number`` (from 1) of a stream whose size is not known.

        ``multipart_part_bytes`` for the first 1,000 parts, then doubled every
        1,000 parts (at most 5 GiB, S3's largest part): 10,000 parts then reach
        past S3's largest object (5 TiB), while a stream of a few GiB keeps
        small parts (and little memory).
        """
        doublings = (number - 1) // _PARTS_PER_DOUBLING
        return min(_MAX_PART_BYTES, self.multipart_part_bytes << doublings)

    def copy_part_bytes_for(self, size: int) -> int:
        """The part size of a multipart copy of ``size`` bytes (at most 10,000 parts)."""
        wanted = min(self.single_copy_limit_bytes, _COPY_PART_BYTES)
        return max(_MIN_PART_BYTES, wanted, math.ceil(size / _MAX_PARTS))


@functools.cache
def _shared_session() -> AioSession:
    # Loading the service model costs tens of milliseconds per session; clients
    # (which own the connections) are still one per connect().
    return get_session()


def _normalized_prefix(prefix: str) -> str:
    stripped = prefix.strip("/")
    return f"{stripped}/" if stripped else ""


def _error_code(error: ClientError) -> str:
    code = error.response.get("Error", {}).get("Code")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(code or status or "unknown")


def _is_denied(error: ObjectStoreError) -> bool:
    cause = error.__cause__
    return isinstance(cause, ClientError) and _error_code(cause) in {"AccessDenied", "403"}


def _translate(error: ClientError, operation: str, key: str) -> Exception:
    code = _error_code(error)
    kind, meaning = _TRANSLATIONS.get(code, (ObjectStoreError, "request failed"))
    server_says = error.response.get("Error", {}).get("Message") or ""
    return kind(f"S3 {operation} {key}: {meaning} ({code}) {server_says}".rstrip())


@contextlib.asynccontextmanager
async def _vendor_errors(operation: str, key: str) -> AsyncIterator[None]:
    """The boundary: vendor exceptions in, translated exceptions (cause chained) out."""
    try:
        yield
    except ClientError as error:
        raise _translate(error, operation, key) from error
    except TimeoutError as error:
        raise ObjectStoreError(f"S3 {operation} {key}: past its deadline") from error
    except _TRANSPORT_ERRORS as error:
        raise ObjectStoreError(f"S3 {operation} {key} failed: {error}") from error


async def _read_body(response: GetObjectOutputTypeDef, span: tuple[int, int] | None) -> bytes:
    async with response["Body"] as body:
        data = await body.read()
    status = response["ResponseMetadata"]["HTTPStatusCode"]
    if span is not None and status != _HTTP_PARTIAL_CONTENT:
        # The server ignored the Range header and sent the whole object.
        return data[span[0] : span[1]]
    return data


@attrs.define
class S3ObjectStore:
    """An ObjectStore in one S3 bucket, under a key prefix.

    Open it with :meth:`connect`; the client (and its connection pool) lives as
    long as the ``async with`` block.
    """

    retries_reads: ClassVar[bool] = True
    """botocore retries transport faults and this store a body broken mid-stream:
    the executor tries each read once (see ``fetchcore.ports.retries_its_reads``)."""

    client: S3Client
    bucket: str
    prefix: str = attrs.field(default="", converter=_normalized_prefix)
    tuning: S3Tuning = attrs.field(factory=S3Tuning)

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        *,
        bucket: str,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        region: str | None = None,
        prefix: str = "",
        create_bucket: bool = False,
        check_bucket: bool = True,
        **tuning: Any,
    ) -> AsyncIterator[S3ObjectStore]:
        """Open a store on ``bucket`` with a client of its own, closed when the block exits.

        Args:
            bucket: the bucket (a valid S3 bucket name).
            endpoint_url: the server, e.g. ``http://127.0.0.1:8333``; None follows
                botocore (``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, the profile, else AWS).
            access_key_id: credentials; None uses botocore's usual lookup (env, profile, role).
            secret_access_key: credentials; None uses botocore's usual lookup.
            region: the signing region; None follows botocore (``AWS_DEFAULT_REGION``, the profile).
            prefix: every key goes under it (``"hub/"`` and ``"hub"`` are the same).
            create_bucket: create the bucket first (an existing one is fine).
            check_bucket: HEAD the bucket before yielding, so a missing or
                forbidden bucket fails here with a clear message.
            **tuning: fields of :class:`S3Tuning` (timeouts, retries, pool, multipart).

        Returns:
            An async context manager that yields the store.

        Raises:
            InvalidRequestError: an unknown or out-of-range tuning option.
            ObjectStoreError: the bucket could not be created, is missing, or is not allowed.
        """
        settings = S3Tuning.from_options(tuning)
        explicit_keys = access_key_id is not None and secret_access_key is not None
        # A shared session caches the credentials it first looked up; without explicit
        # keys a fresh one reads the environment and profile as they are now.
        session = _shared_session() if explicit_keys else get_session()
        async with session.create_client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=settings.client_config(),
        ) as client:
            # aiohttp waits for "100 Continue" with no timeout at all: send bodies at once.
            client.meta.events.unregister("before-call.s3", add_expect_header)
            store = cls(client, bucket, prefix, settings)
            if create_bucket:
                await store._create_bucket()
            if check_bucket:
                await store.check_bucket()
            yield store

    @classmethod
    async def from_client(
        cls,
        client: S3Client,
        *,
        bucket: str,
        prefix: str = "",
        tuning: S3Tuning | None = None,
        check_bucket: bool = True,
    ) -> S3ObjectStore:
        """A store on a client the caller created and owns ("bring your own client").

        The client's own configuration applies to every request: its region,
        credentials, endpoint, connect and read timeouts, retries and pool
        (:meth:`S3Tuning.client_config` shows what fetchcore would choose). From
        ``tuning`` the store still applies what it does itself: a deadline on
        every write, re-requests of a broken body (``max_attempts``), and the
        multipart part size and concurrency. The client is used as it is, and
        closing it stays the caller's job. (A client that sends
        ``Expect: 100-continue`` may wait on a stalled server until the write
        deadline; :meth:`connect` turns that header off on its own clients.)

        Args:
            client: an open aiobotocore S3 client.
            bucket: the bucket (a valid S3 bucket name).
            prefix: every key goes under it.
            tuning: the store's own settings (see above); defaults if None.
            check_bucket: HEAD the bucket first (see :meth:`connect`).

        Raises:
            ObjectStoreError: the bucket is missing or not allowed.
        """
        store = cls(client, bucket, prefix, tuning or S3Tuning())
        if check_bucket:
            await store.check_bucket()
        return store

    async def check_bucket(self) -> None:
        """HEAD the bucket: it must exist and these credentials must be allowed to use it.

        Raises:
            ObjectStoreError: the bucket is missing, access is denied, or the server failed.
        """
        try:
            async with _vendor_errors("HEAD bucket", self.bucket):
                await self.client.head_bucket(Bucket=self.bucket)
        except _KeyMissingError as missing:
            raise ObjectStoreError(
                f"S3 bucket {self.bucket!r} does not exist at {self.client.meta.endpoint_url}"
                " (create it, or connect with create_bucket=True)"
            ) from missing.__cause__
        except ObjectStoreError as failed:
            if _is_denied(failed):
                raise ObjectStoreError(
                    f"S3 bucket {self.bucket!r}: access denied to these credentials"
                    f" at {self.client.meta.endpoint_url}"
                ) from failed.__cause__
            raise

    async def get_object(self, object_id: str) -> bytes | None:
        """The content under a legacy per-object key, or None.

        Raises:
            InvalidRequestError: the id is not a content id (nothing was sent).
            ObjectStoreError: the read failed after its retries.
        """
        key = self._object_key(object_id)
        return await self._read_or_none(key)

    async def put_object(self, object_id: str, data: bytes) -> None:
        """Store content under a legacy per-object key (either id spelling).

        Raises:
            InvalidRequestError: the id is not a content id (nothing was sent).
            ObjectStoreError: the write failed after its retries.
        """
        await self._write(self._object_key(object_id), data)

    async def get_mpack(self, mpack_id: str) -> bytes | None:
        """A whole mpack (one GET), or None.

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>`` (nothing was sent).
            ObjectStoreError: the read failed after its retries.
        """
        return await self._read_or_none(self._mpack_key(mpack_id))

    async def get_mpack_range(self, mpack_id: str, start: int, end: int) -> bytes | None:
        """Bytes ``[start, end)`` of an mpack (one ranged GET), sliced like ``data[start:end]``.

        Raises:
            InvalidRequestError: a bad id or range (nothing was sent).
            ObjectStoreError: the read failed after its retries.
        """
        key = self._mpack_key(mpack_id)
        check_range(start, end)
        if start == end:
            return b"" if await self._exists(key) else None
        try:
            return await self._read_or_none(key, (start, end))
        except _RangeNotSatisfiableError:
            return b""

    async def put_mpack(self, mpack_id: str, data: bytes) -> None:
        """Store an mpack (multipart above the threshold), replacing any stored copy.

        Always written, never skipped because the key exists: putting the same
        bytes again repairs a damaged copy.

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>`` (nothing was sent).
            ObjectStoreError: the write failed after its retries (a multipart
                upload is aborted first).
        """
        key = self._mpack_key(mpack_id)
        await self._write(key, data, _mpack_metadata(key))

    async def has_mpack(self, mpack_id: str) -> bool | None:
        """Whether the mpack is stored (one HEAD; never a GET).

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>`` (nothing was sent).
            ObjectStoreError: the HEAD failed after its retries.
        """
        return await self._exists(self._mpack_key(mpack_id))

    async def open_fetch(self, fetch_id: str) -> S3FetchUpload:
        """Start streaming a fetch document (multipart parts go up while the writer writes).

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>`` (nothing was sent).
        """
        return S3FetchUpload(self, self._fetch_key(fetch_id))

    async def fetch_intact(self, fetch_id: str) -> bool | None:
        """Whether the document's size and ETag are those sealed at commit.

        One HEAD of the document and one GET of its small seal; the document is not read.

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>`` (nothing was sent).
            ObjectStoreError: a request failed after its retries.
        """
        key = self._fetch_key(fetch_id)
        head, seal = await asyncio.gather(
            self._head_or_none(key), self._read_or_none(_seal_key(key))
        )
        if head is None or seal is None:
            return False
        return _seal_matches(seal, head["ContentLength"], head["ETag"])

    async def get_fetch(self, fetch_id: str) -> bytes | None:
        """A whole fetch document (one GET), or None.

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>`` (nothing was sent).
            ObjectStoreError: the read failed after its retries.
        """
        return await self._read_or_none(self._fetch_key(fetch_id))

    async def presign_fetch(self, fetch_id: str, ttl_s: int) -> str | None:
        """A SigV4 presigned GET of the fetch document, valid for ``ttl_s`` seconds.

        Raises:
            InvalidRequestError: a bad id, or ``ttl_s`` outside 1 s .. 7 days.
        """
        return await self._presign(self._fetch_key(fetch_id), ttl_s)

    async def presign_mpack(self, mpack_id: str, ttl_s: int) -> str | None:
        """A SigV4 presigned GET of the mpack, valid for ``ttl_s`` seconds (no request is sent).

        Raises:
            InvalidRequestError: a bad id, or ``ttl_s`` outside 1 s .. 7 days.
        """
        return await self._presign(self._mpack_key(mpack_id), ttl_s)

    async def _presign(self, key: str, ttl_s: int) -> str:
        if type(ttl_s) is not int or not 1 <= ttl_s <= MAX_PRESIGN_TTL_S:
            raise InvalidRequestError(f"presign ttl must be 1..{MAX_PRESIGN_TTL_S}, not {ttl_s!r}")
        async with _vendor_errors("presign", key):
            return await self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl_s
            )

    # ── staged pushes (fetchcore.ports.StagedPushes) ──

    async def open_push(self) -> S3PushUpload:
        """Start staging a push under ``<prefix>staging/<uuid4 hex>`` (nothing is sent yet)."""
        return S3PushUpload(self, f"{self._staging_namespace()}{uuid.uuid4().hex}")

    async def sweep_staging(self, min_age_s: float) -> int:
        """Delete staging objects last modified, and abort multipart uploads (of staged
        pushes and of fetch documents) initiated, at least ``min_age_s`` seconds ago.

        Returns:
            How many staging objects and multipart uploads were removed.

        Raises:
            InvalidRequestError: ``min_age_s`` is negative or not finite (nothing was sent).
            ObjectStoreError: a listing or a removal failed.
        """
        cutoff = age_cutoff(min_age_s)
        removed = 0
        async for key in self._stale_staging_objects(cutoff):
            await self._delete(key)
            removed += 1
        for namespace in (self._staging_namespace(), f"{self.prefix}fetch/"):
            async for key, upload_id in self._stale_uploads(namespace, cutoff):
                await self._abort_upload(key, upload_id)
                removed += 1
        return removed

    def _staging_namespace(self) -> str:
        return f"{self.prefix}staging/"

    async def _stale_staging_objects(self, cutoff: dt.datetime) -> AsyncIterator[str]:
        namespace = self._staging_namespace()
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=namespace
        )
        stale: list[str] = []
        async with _vendor_errors("LIST", namespace):
            async for page in pages:
                stale += [
                    entry["Key"]
                    for entry in page.get("Contents", [])
                    if _is_staging_name(entry["Key"].removeprefix(namespace))
                    and entry["LastModified"] <= cutoff
                ]
        for key in stale:
            yield key

    async def _stale_uploads(
        self, namespace: str, cutoff: dt.datetime
    ) -> AsyncIterator[tuple[str, str]]:
        """(key, upload id) of the multipart uploads in ``namespace`` (of names this
        store writes there) initiated at or before ``cutoff``."""
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=namespace
        )
        stale: list[tuple[str, str]] = []
        async with _vendor_errors("LIST uploads", namespace):
            async for page in pages:
                for upload in page.get("Uploads", []):
                    key, upload_id = upload.get("Key"), upload.get("UploadId")
                    initiated = upload.get("Initiated")
                    if key is None or upload_id is None or initiated is None:
                        continue
                    name = key.removeprefix(namespace)
                    ours = _is_staging_name(name) or ids.is_mpack_id(ids.PREFIX + name)
                    if key.startswith(namespace) and ours and initiated <= cutoff:
                        stale.append((key, upload_id))
        for found in stale:
            yield found

    async def _mpack_intact(self, key: str, size: int) -> bool:
        """Whether the mpack at ``key`` has ``size`` bytes and the sha256 its key names
        in its metadata (one HEAD): written by this store, not replaced since."""
        head = await self._head_or_none(key)
        if head is None or head["ContentLength"] != size:
            return False
        return head.get("Metadata", {}).get(SHA256_METADATA) == _digest_of(key)

    async def _copy(self, source: str, target: str, size: int, metadata: Mapping[str, str]) -> None:
        """A server-side copy of ``source`` (``size`` bytes) to ``target``, with ``metadata``:
        one CopyObject up to ``single_copy_limit_bytes``, a multipart copy above."""
        if size > self.tuning.single_copy_limit_bytes:
            await self._copy_multipart(source, target, size, metadata)
            return
        async with _vendor_errors("COPY", target), self._write_deadline(size):
            await self.client.copy_object(
                Bucket=self.bucket,
                Key=target,
                CopySource={"Bucket": self.bucket, "Key": source},
                MetadataDirective="REPLACE",
                Metadata=dict(metadata),
            )

    async def _copy_multipart(
        self, source: str, target: str, size: int, metadata: Mapping[str, str]
    ) -> None:
        upload_id = await self._create_upload(target, metadata)
        try:
            part_bytes = self.tuning.copy_part_bytes_for(size)
            slots = asyncio.Semaphore(self.tuning.multipart_concurrency)

            async def copy(number: int, start: int) -> CompletedPartTypeDef:
                async with slots:
                    end = min(start + part_bytes, size)
                    return await self._copy_part(source, target, upload_id, number, (start, end))

            offsets = range(0, size, part_bytes)
            parts = await _all_parts(copy(n, o) for n, o in enumerate(offsets, start=1))
            await self._complete_upload(target, upload_id, parts)
        except BaseException:
            await self._abort_upload(target, upload_id)
            raise

    async def _copy_part(
        self, source: str, target: str, upload_id: str, number: int, span: tuple[int, int]
    ) -> CompletedPartTypeDef:
        start, end = span
        async with _vendor_errors("multipart COPY", target), self._write_deadline(end - start):
            copied = await self.client.upload_part_copy(
                Bucket=self.bucket,
                Key=target,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": self.bucket, "Key": source},
                CopySourceRange=f"bytes={start}-{end - 1}",
            )
        return {"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]}

    # ── lifecycle (fetchcore.lifecycle.StoreLifecycle) ──

    async def list_mpacks(self) -> AsyncIterator[StoredMPack]:
        """Every push mpack under the prefix, a page (1,000 keys) at a time; its age is
        S3's LastModified.

        Raises:
            ObjectStoreError: the listing failed.
        """
        namespace = f"{self.prefix}mpacks/"
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=namespace
        )
        async with _vendor_errors("LIST", namespace):
            async for page in pages:
                for entry in page.get("Contents", []):
                    mpack_id = ids.PREFIX + entry["Key"].removeprefix(namespace)
                    if ids.is_mpack_id(mpack_id):
                        yield StoredMPack(mpack_id, entry["Size"], entry["LastModified"])

    async def delete_mpack(self, mpack_id: str) -> None:
        """Delete a push mpack; a missing one is not an error.

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>`` (nothing was touched).
            ObjectStoreError: the request failed.
        """
        key = self._mpack_key(mpack_id)
        async with _vendor_errors("DELETE", key):
            await self.client.delete_object(Bucket=self.bucket, Key=key)

    def _fetch_key(self, fetch_id: str) -> str:
        digest = ids.check_mpack_id(fetch_id).removeprefix(ids.PREFIX)
        return f"{self.prefix}fetch/{digest}"

    def _mpack_key(self, mpack_id: str) -> str:
        digest = ids.check_mpack_id(mpack_id).removeprefix(ids.PREFIX)
        return f"{self.prefix}mpacks/{digest}"

    def _object_key(self, object_id: str) -> str:
        digest = ids.canonical(object_id).removeprefix(ids.PREFIX)
        return f"{self.prefix}objects/{digest}"

    async def _read_or_none(self, key: str, span: tuple[int, int] | None = None) -> bytes | None:
        try:
            async with _vendor_errors("GET", key):
                return await self._get_retrying_body(key, span)
        except _KeyMissingError:
            return None

    async def _get_retrying_body(self, key: str, span: tuple[int, int] | None) -> bytes:
        attempts_left = self.tuning.max_attempts
        while True:
            attempts_left -= 1
            response = await self._send_get(key, span)  # botocore retries this part itself
            try:
                return await _read_body(response, span)
            except _BODY_ERRORS:
                if attempts_left <= 0:
                    raise

    async def _send_get(self, key: str, span: tuple[int, int] | None) -> GetObjectOutputTypeDef:
        if span is None:
            return await self.client.get_object(Bucket=self.bucket, Key=key)
        start, end = span
        byte_range = f"bytes={start}-{end - 1}"
        return await self.client.get_object(Bucket=self.bucket, Key=key, Range=byte_range)

    async def _exists(self, key: str) -> bool:
        return await self._head_or_none(key) is not None

    async def _head_or_none(self, key: str) -> HeadObjectOutputTypeDef | None:
        try:
            async with _vendor_errors("HEAD", key):
                return await self.client.head_object(Bucket=self.bucket, Key=key)
        except _KeyMissingError:
            return None

    async def _write(
        self, key: str, data: bytes, metadata: Mapping[str, str] | None = None
    ) -> None:
        if len(data) > self.tuning.multipart_threshold_bytes:
            await self._put_multipart(key, data, metadata)
            return
        await self._put_single(key, data, metadata)

    async def _put_single(
        self, key: str, data: bytes, metadata: Mapping[str, str] | None = None
    ) -> str:
        """One PUT; returns the ETag."""
        async with _vendor_errors("PUT", key), self._write_deadline(len(data)):
            written = await self.client.put_object(
                Bucket=self.bucket, Key=key, Body=data, Metadata=dict(metadata or {})
            )
        return written["ETag"]

    async def _create_upload(self, key: str, metadata: Mapping[str, str] | None = None) -> str:
        async with _vendor_errors("multipart PUT", key), self._write_deadline(0):
            created = await self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, Metadata=dict(metadata or {})
            )
        return created["UploadId"]

    async def _upload_part(
        self, key: str, upload_id: str, number: int, part: bytes
    ) -> CompletedPartTypeDef:
        async with _vendor_errors("multipart PUT", key), self._write_deadline(len(part)):
            uploaded = await self.client.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part
            )
        return {"PartNumber": number, "ETag": uploaded["ETag"]}

    async def _complete_upload(
        self, key: str, upload_id: str, parts: list[CompletedPartTypeDef]
    ) -> str:
        """CompleteMultipartUpload; returns the ETag."""
        async with _vendor_errors("multipart PUT", key), self._write_deadline(0):
            completed = await self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        return completed["ETag"]

    async def _delete(self, key: str) -> None:
        async with _vendor_errors("DELETE", key), self._write_deadline(0):
            await self.client.delete_object(Bucket=self.bucket, Key=key)

    def _write_deadline(self, size: int) -> asyncio.Timeout:
        return asyncio.timeout(self.tuning.write_deadline_s(size))

    async def _put_multipart(
        self, key: str, data: bytes, metadata: Mapping[str, str] | None
    ) -> None:
        upload_id = await self._create_upload(key, metadata)
        try:
            parts = await self._upload_parts(key, upload_id, data)
            await self._complete_upload(key, upload_id, parts)
        except BaseException:
            await self._abort_upload(key, upload_id)
            raise

    async def _upload_parts(
        self, key: str, upload_id: str, data: bytes
    ) -> list[CompletedPartTypeDef]:
        part_bytes = self.tuning.part_bytes_for(len(data))
        slots = asyncio.Semaphore(self.tuning.multipart_concurrency)

        async def upload(number: int, offset: int) -> CompletedPartTypeDef:
            async with slots:
                part = data[offset : offset + part_bytes]
                return await self._upload_part(key, upload_id, number, part)

        offsets = range(0, len(data), part_bytes)
        return await _all_parts(upload(n, o) for n, o in enumerate(offsets, start=1))

    async def _abort_upload(self, key: str, upload_id: str) -> None:
        # Best effort: the original failure is what the caller must see. Shielded, so a
        # cancelled put still tells the server to drop the parts it holds.
        abort = self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        with contextlib.suppress(ClientError, *_TRANSPORT_ERRORS):
            await asyncio.shield(abort)

    async def _create_bucket(self) -> None:
        options: dict[str, Any] = {}
        region = self.client.meta.region_name
        if region and region != "us-east-1":  # us-east-1 refuses its own name as a constraint
            options["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            async with _vendor_errors("CreateBucket", self.bucket):
                await self.client.create_bucket(Bucket=self.bucket, **options)
        except _BucketExistsError:
            return


_STAGING_NAME_LENGTH = 32  # a uuid4's hex


def _is_staging_name(name: str) -> bool:
    return len(name) == _STAGING_NAME_LENGTH and all(c in "0123456789abcdef" for c in name)


def _digest_of(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def _mpack_metadata(key: str) -> dict[str, str]:
    """The metadata a push mpack is written with: the sha256 its key names."""
    return {SHA256_METADATA: _digest_of(key)}


async def _all_parts(
    sends: Iterable[Coroutine[Any, Any, CompletedPartTypeDef]],
) -> list[CompletedPartTypeDef]:
    """Run the part sends together; the first failure cancels the rest and is raised."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(send) for send in sends]
    except ExceptionGroup as failed:
        # The first failure stands for all (the group cancelled the other parts).
        first = failed.exceptions[0]
        raise first from first.__cause__
    return [task.result() for task in tasks]


_SEAL_SUFFIX = ".seal"


def _seal_key(key: str) -> str:
    return key + _SEAL_SUFFIX


def _seal_bytes(size: int, etag: str) -> bytes:
    return json.dumps({"size": size, "etag": etag}).encode()


def _seal_matches(seal: bytes, size: int, etag: str) -> bool:
    try:
        return bool(json.loads(seal) == {"size": size, "etag": etag})
    except ValueError:
        return False  # a damaged seal seals nothing


@attrs.define
class _MultipartWriter:
    """Bytes streamed to one key as a multipart upload, parts sent while the writer writes.

    Written bytes collect in a buffer; each full part (``multipart_part_bytes``,
    growing for very large streams: see :meth:`S3Tuning.streamed_part_bytes`)
    starts its upload at once, at most ``multipart_concurrency`` in flight (a
    writer waits for a slot), so memory stays within about
    ``(multipart_concurrency + 1) * multipart_part_bytes`` (up to 8 GiB of stream).
    Nothing is sent before the first part is full, nor before more than
    ``hold_bytes`` are written: a stream shorter than that is still in
    :attr:`buffer` at the end. A failed part fails the next write or the
    completion. :meth:`discard` cancels the parts and aborts the upload.
    """

    store: S3ObjectStore
    key: str
    hold_bytes: int = 0
    """Bytes held in :attr:`buffer` before the first part goes up."""
    buffer: bytearray = attrs.field(factory=bytearray, init=False)
    size: int = attrs.field(default=0, init=False)
    """Every byte written so far."""
    _upload_id: str | None = attrs.field(default=None, init=False)
    _parts: list[asyncio.Task[CompletedPartTypeDef]] = attrs.field(factory=list, init=False)
    _slots: asyncio.Semaphore = attrs.field(init=False)
    _failure: BaseException | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.store.tuning.multipart_concurrency)

    @property
    def started(self) -> bool:
        """Whether the multipart upload has begun (a part was full)."""
        return self._upload_id is not None

    def check_healthy(self) -> None:
        """Raise the failure of a part, if one failed."""
        if self._failure is not None:
            raise self._failure

    async def write(self, chunk: bytes) -> None:
        """Append ``chunk``; every full part starts uploading."""
        self.check_healthy()
        self.buffer += chunk
        self.size += len(chunk)
        if self._upload_id is None and len(self.buffer) <= self.hold_bytes:
            return
        while len(self.buffer) >= (part_bytes := self._next_part_bytes()):
            with memoryview(self.buffer) as view:
                part = bytes(view[:part_bytes])  # one copy (a bytearray slice would be two)
            del self.buffer[:part_bytes]
            await self._start_part(part)

    async def complete(self) -> str:
        """Put whatever is written under the key: one PUT if no part was sent,
        else the last part and CompleteMultipartUpload. Returns the ETag."""
        if self._upload_id is None:
            data = bytes(self.buffer)
            self.buffer.clear()
            return await self.store._put_single(self.key, data)
        if self.buffer:
            await self._start_part(bytes(self.buffer))
            self.buffer.clear()
        parts = list(await asyncio.gather(*self._parts))
        etag = await self.store._complete_upload(self.key, self._upload_id, parts)
        self._upload_id = None  # complete: nothing left to abort
        return etag

    async def discard(self) -> None:
        """Drop the buffer, cancel the parts in flight and abort the upload (best effort)."""
        self.buffer.clear()
        for task in self._parts:
            task.cancel()
        await asyncio.gather(*self._parts, return_exceptions=True)
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            await self.store._abort_upload(self.key, upload_id)

    def _next_part_bytes(self) -> int:
        return self.store.tuning.streamed_part_bytes(len(self._parts) + 1)

    async def _start_part(self, part: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = await self.store._create_upload(self.key)
        if len(self._parts) >= _MAX_PARTS:
            raise ObjectStoreError(
                f"S3 multipart PUT {self.key}: more than {_MAX_PARTS} parts"
                " (raise multipart_part_bytes)"
            )
        await self._slots.acquire()
        number = len(self._parts) + 1
        task = asyncio.create_task(self._send_part(self._upload_id, number, part))
        task.add_done_callback(self._note_failure)
        self._parts.append(task)

    async def _send_part(self, upload_id: str, number: int, part: bytes) -> CompletedPartTypeDef:
        try:
            return await self.store._upload_part(self.key, upload_id, number, part)
        finally:
            self._slots.release()

    def _note_failure(self, task: asyncio.Task[CompletedPartTypeDef]) -> None:
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()


@attrs.define
class _StreamedUpload:
    """What a fetch document and a staged push streamed to S3 share: the writer (see
    :class:`_MultipartWriter`), the finished state, and on failure or abort the parts
    stopped, the multipart upload aborted and any object under ``key`` taken back."""

    store: S3ObjectStore
    key: str
    _writer: _MultipartWriter = attrs.field(init=False)
    _key_written: bool = attrs.field(default=False, init=False)
    """Whether an object may stand under ``key`` that a failure must take back."""
    _done: bool = attrs.field(default=False, init=False)
    _what: ClassVar[str] = "an upload"

    def __attrs_post_init__(self) -> None:
        self._writer = _MultipartWriter(self.store, self.key, hold_bytes=self._hold_bytes())

    def _hold_bytes(self) -> int:
        """Bytes the writer holds in memory before its first part goes up."""
        return 0

    async def write(self, chunk: bytes) -> None:
        """Append ``chunk``; every full part starts uploading.

        Raises:
            InvalidRequestError: the upload is already committed or aborted.
            ObjectStoreError: a part failed, or the upload could not be started.
        """
        self._check_writable("write to")
        await self._writer.write(chunk)

    async def abort(self) -> None:
        """Stop the parts in flight, abort the multipart upload and take back what is
        under the key. Safe to call more than once."""
        self._done = True
        await asyncio.shield(self._discard())

    def _check_writable(self, action: str) -> None:
        if self._done:
            raise InvalidRequestError(f"{action} {self._what} that is already finished")
        self._writer.check_healthy()

    async def _committing(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run the commit's ``work`` once; on any failure discard everything, shielded."""
        self._check_writable("commit")
        self._done = True
        try:
            await work()
        except BaseException:
            await asyncio.shield(self._discard())
            raise

    async def _discard(self) -> None:
        await self._writer.discard()
        if self._key_written:
            # Best effort, like aborting the upload: the caller must see the original
            # failure. What a dead server keeps: a staging object is swept later, a
            # document without its seal is never intact, so it is built again.
            self._key_written = False
            with contextlib.suppress(ObjectStoreError):
                await self.store._delete(self.key)


@attrs.define
class S3FetchUpload(_StreamedUpload):
    """A fetch document streamed to S3, sealed at commit.

    A document smaller than one part is one PUT at commit. Abort (and a failed
    commit) aborts the multipart upload, and takes back a document whose seal
    could not be written.
    """

    _what: ClassVar[str] = "a fetch upload"

    async def commit(self) -> None:
        """Send the rest, complete the upload, then write the seal (size and ETag).

        Raises:
            InvalidRequestError: the upload is already committed or aborted.
            ObjectStoreError: the upload failed; nothing of it is left in the bucket.
        """
        await self._committing(self._complete_and_seal)

    async def _complete_and_seal(self) -> None:
        etag = await self._writer.complete()
        self._key_written = True  # the document is complete, its seal not yet written
        await self.store._put_single(_seal_key(self.key), _seal_bytes(self._writer.size, etag))


@attrs.define
class S3PushUpload(_StreamedUpload):
    """A push mpack staged under ``<prefix>staging/<uuid4 hex>`` until its id is known.

    Bytes stream up as a multipart upload of the staging key once more than
    ``S3Tuning.push_buffer_bytes`` are written. At commit, one HEAD tells
    whether the mpack is stored intact (its size, and the sha256 of its
    metadata): then the staged upload is simply aborted. Otherwise a push still
    held in memory is written to the mpack key as ``put_mpack`` writes it; a
    larger one completes the staging object, is copied to the mpack key on the
    server (CopyObject, or UploadPartCopy above ``single_copy_limit_bytes``),
    and the staging object is deleted. Any failure (and abort) aborts the
    upload and deletes the staging object.
    """

    _what: ClassVar[str] = "a push upload"

    def _hold_bytes(self) -> int:
        return self.store.tuning.push_buffer_bytes

    async def commit(self, mpack_id: str) -> None:
        """Make the staged bytes the push mpack ``mpack_id``, then delete the staging object.

        Raises:
            InvalidRequestError: already committed or aborted, or a malformed id
                (the staged bytes are dropped).
            ObjectStoreError: the upload, the copy or the deletion failed; nothing
                staged is left (as far as the server still answers).
        """
        await self._committing(lambda: self._commit(self.store._mpack_key(mpack_id)))

    async def _commit(self, mpack_key: str) -> None:
        size = self._writer.size
        if await self.store._mpack_intact(mpack_key, size):
            await self._writer.discard()
            return
        metadata = _mpack_metadata(mpack_key)
        if not self._writer.started:
            data = bytes(self._writer.buffer)
            self._writer.buffer.clear()
            await self.store._write(mpack_key, data, metadata)
            return
        self._key_written = True  # from here on the staging object may exist
        await self._writer.complete()
        await self.store._copy(self.key, mpack_key, size, metadata)
        await self.store._delete(self.key)
        self._key_written = False
