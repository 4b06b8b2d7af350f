"""S3ObjectStore: the ObjectStore port on S3 and S3-compatible servers (aiobotocore).

Theory of operation:

- Keys. Everything lives under ``prefix`` in one bucket: mpacks at
  ``<prefix>mpacks/<hex>``, legacy per-object keys at ``<prefix>objects/<hex>``,
  where ``<hex>`` is the digest the id names. Ids are checked (and legacy ids
  canonicalized) before any request, so both spellings of an object id hit one
  key and no id can produce a key outside its namespace.
- Reads. A whole mpack is one GET; a byte range is one ranged GET. HTTP cannot
  ask for an empty range, and S3 answers a range that starts at or past the end
  with 416: both mean ``b""`` when the object exists, so only an empty range
  costs a HEAD (to tell ``b""`` from a missing key). A body is always read and
  closed inside ``async with``: an unclosed body would keep its pooled
  connection forever.
- Writes. Content-addressed, so a PUT of the same id writes the same bytes and
  is idempotent. Documents above ``multipart_threshold_bytes`` go up as a
  multipart upload, parts in parallel, aborted on any failure (cancellation
  included) so no orphaned parts accumulate.
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
import functools
import math
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

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
from fetchcore.lifecycle import StoredMPack
from fetchcore.policy import MiB, Policy
from fetchcore.validation import check_range

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef, GetObjectOutputTypeDef

MAX_PRESIGN_TTL_S = 7 * 24 * 3600  # the longest a SigV4 presigned URL can live
_MAX_PARTS = 10_000  # S3's limit on parts in one multipart upload
_MIN_PART_BYTES = 5 * MiB  # S3's minimum size of every part but the last
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
        multipart_concurrency: parts uploaded at once.
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
        region: str = "us-east-1",
        prefix: str = "",
        create_bucket: bool = False,
        **tuning: Any,
    ) -> AsyncIterator[S3ObjectStore]:
        """Open a store on ``bucket``; the client closes when the block exits.

        Args:
            bucket: the bucket (a valid S3 bucket name).
            endpoint_url: the server, e.g. ``http://127.0.0.1:8333``; None for AWS.
            access_key_id: credentials; None uses botocore's usual lookup.
            secret_access_key: credentials; None uses botocore's usual lookup.
            region: the signing region.
            prefix: every key goes under it (``"hub/"`` and ``"hub"`` are the same).
            create_bucket: create the bucket first (an existing one is fine).
            **tuning: fields of :class:`S3Tuning` (timeouts, retries, pool, multipart).

        Returns:
            An async context manager that yields the store.

        Raises:
            InvalidRequestError: an unknown or out-of-range tuning option.
            ObjectStoreError: the bucket could not be created.
        """
        settings = S3Tuning.from_options(tuning)
        async with _shared_session().create_client(
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
                await store._create_bucket(region)
            yield store

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
        """Store an mpack (multipart above the threshold); idempotent.

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>`` (nothing was sent).
            ObjectStoreError: the write failed after its retries (a multipart
                upload is aborted first).
        """
        await self._write(self._mpack_key(mpack_id), data)

    async def has_mpack(self, mpack_id: str) -> bool:
        """Whether the mpack is stored (one HEAD).

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>`` (nothing was sent).
            ObjectStoreError: the HEAD failed after its retries.
        """
        return await self._exists(self._mpack_key(mpack_id))

    async def presign_mpack(self, mpack_id: str, ttl_s: int) -> str | None:
        """A SigV4 presigned GET of the mpack, valid for ``ttl_s`` seconds (no request is sent).

        Raises:
            InvalidRequestError: a bad id, or ``ttl_s`` outside 1 s .. 7 days.
        """
        key = self._mpack_key(mpack_id)
        if type(ttl_s) is not int or not 1 <= ttl_s <= MAX_PRESIGN_TTL_S:
            raise InvalidRequestError(f"presign ttl must be 1..{MAX_PRESIGN_TTL_S}, not {ttl_s!r}")
        async with _vendor_errors("presign", key):
            return await self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl_s
            )

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
        try:
            async with _vendor_errors("HEAD", key):
                await self.client.head_object(Bucket=self.bucket, Key=key)
        except _KeyMissingError:
            return False
        return True

    async def _write(self, key: str, data: bytes) -> None:
        if len(data) > self.tuning.multipart_threshold_bytes:
            await self._put_multipart(key, data)
            return
        async with _vendor_errors("PUT", key), self._write_deadline(len(data)):
            await self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def _write_deadline(self, size: int) -> asyncio.Timeout:
        return asyncio.timeout(self.tuning.write_deadline_s(size))

    async def _put_multipart(self, key: str, data: bytes) -> None:
        async with _vendor_errors("multipart PUT", key), self._write_deadline(0):
            created = await self.client.create_multipart_upload(Bucket=self.bucket, Key=key)
        upload_id = created["UploadId"]
        try:
            async with _vendor_errors("multipart PUT", key):
                parts = await self._upload_parts(key, upload_id, data)
                async with self._write_deadline(0):
                    await self.client.complete_multipart_upload(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        MultipartUpload={"Parts": parts},
                    )
        except BaseException:
            await self._abort_upload(key, upload_id)
            raise

    async def _upload_parts(
        self, key: str, upload_id: str, data: bytes
    ) -> list[CompletedPartTypeDef]:
        part_bytes = self.tuning.part_bytes_for(len(data))
        slots = asyncio.Semaphore(self.tuning.multipart_concurrency)

        async def upload(number: int, offset: int) -> CompletedPartTypeDef:
            async with slots, self._write_deadline(part_bytes):
                uploaded = await self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data[offset : offset + part_bytes],
                )
            return {"PartNumber": number, "ETag": uploaded["ETag"]}

        offsets = range(0, len(data), part_bytes)
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(upload(n, o)) for n, o in enumerate(offsets, start=1)]
        except ExceptionGroup as failed:
            # The first failure stands for all (the group cancelled the other parts).
            raise failed.exceptions[0] from None
        return [task.result() for task in tasks]

    async def _abort_upload(self, key: str, upload_id: str) -> None:
        # Best effort: the original failure is what the caller must see. Shielded, so a
        # cancelled put still tells the server to drop the parts it holds.
        abort = self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        with contextlib.suppress(ClientError, *_TRANSPORT_ERRORS):
            await asyncio.shield(abort)

    async def _create_bucket(self, region: str) -> None:
        options: dict[str, Any] = {}
        if region != "us-east-1":
            options["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            async with _vendor_errors("CreateBucket", self.bucket):
                await self.client.create_bucket(Bucket=self.bucket, **options)
        except _BucketExistsError:
            return
