"""What S3ObjectStore's staged pushes promise beyond the shared contract: the requests a
push sends, its keys, the sha256 metadata that tells an intact mpack, the multipart copy
above the single-copy limit, bounded parts in flight, and the sweep of abandoned uploads."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from fetchcore.adapters.s3 import SHA256_METADATA, S3ObjectStore, S3Tuning

from fetchcore import InvalidRequestError, ObjectStoreError, PushUpload
from fetchcore.ids import content_id
from fetchcore.policy import MiB
from tests.adapters.test_s3 import record_requests, slow_parts_counted
from tests.backends import replace_behind_the_back, staged_push_leftovers
from tests.s3_support import list_keys, list_uploads, s3_test_store

PART = 5 * MiB
# Small parts, a single-copy limit of one part and nothing held back in memory, so a few
# MiB exercise every path.
STAGING: dict[str, Any] = {
    "push_buffer_bytes": 0,
    "multipart_part_bytes": PART,
    "multipart_concurrency": 2,
    "single_copy_limit_bytes": PART,
    "max_attempts": 1,  # an injected failure fails at once
}
LARGE = bytes(range(256)) * (12 * MiB // 256)  # 12 MiB: three parts, the last one short
LARGE_ID = content_id(LARGE)
SMALL = b"a small push" * 100
SMALL_ID = content_id(SMALL)
STAGING_KEY = re.compile(r"staging/[0-9a-f]{32}$")


@pytest.fixture
async def store(request: pytest.FixtureRequest) -> AsyncIterator[S3ObjectStore]:
    async with s3_test_store(request, **STAGING) as opened:
        yield opened


async def _push(store: S3ObjectStore, data: bytes) -> str:
    return await _write_and_commit(await store.open_push(), data)


async def _write_and_commit(upload: PushUpload, data: bytes) -> str:
    """Write ``data`` a MiB at a time and commit it under its id; returns the id."""
    for start in range(0, len(data), MiB):
        await upload.write(data[start : start + MiB])
    mpack_id = content_id(data)
    await upload.commit(mpack_id)
    return mpack_id


def _relative(store: S3ObjectStore, path: str) -> str:
    """A request path (``/bucket/key``) as a key relative to the store's prefix."""
    return path.split("/", 2)[2].removeprefix(store.prefix)


async def _metadata(store: S3ObjectStore, mpack_id: str) -> dict[str, str]:
    head = await store.client.head_object(Bucket=store.bucket, Key=store._mpack_key(mpack_id))
    return dict(head.get("Metadata", {}))


class TestRequests:
    async def test_a_large_push_stages_copies_once_and_deletes_the_staging(
        self, request: pytest.FixtureRequest
    ) -> None:
        async with s3_test_store(request, multipart_part_bytes=PART, push_buffer_bytes=0) as store:
            log = record_requests(store)
            await _push(store, LARGE)
            ops = Counter(log.operations())
            assert ops["CreateMultipartUpload"] == 1
            assert ops["UploadPart"] == 3
            assert ops["CompleteMultipartUpload"] == 1
            assert ops["CopyObject"] == 1  # below the single-copy limit: one server-side copy
            assert ops["UploadPartCopy"] == 0
            assert ops["PutObject"] == 0  # the bytes went up once
            [staged] = {_relative(store, s.path) for s in log.sent if s.operation == "UploadPart"}
            assert STAGING_KEY.fullmatch(staged)
            [deleted] = [
                _relative(store, s.path) for s in log.sent if s.operation == "DeleteObject"
            ]
            assert deleted == staged
            [copied] = [_relative(store, s.path) for s in log.sent if s.operation == "CopyObject"]
            assert copied == f"mpacks/{LARGE_ID.removeprefix('sha256:')}"
            assert await store.get_mpack(LARGE_ID) == LARGE
            assert await list_keys(store) == [store._mpack_key(LARGE_ID)]

    async def test_a_push_within_the_buffer_goes_straight_to_its_mpack_key(
        self, request: pytest.FixtureRequest
    ) -> None:
        tuning = {"multipart_part_bytes": PART, "push_buffer_bytes": len(LARGE)}
        async with s3_test_store(request, **tuning) as store:
            log = record_requests(store)
            upload = await store.open_push()
            for start in range(0, len(LARGE), MiB):
                await upload.write(LARGE[start : start + MiB])
            assert log.sent == []  # held in memory: no staging upload
            await upload.commit(LARGE_ID)
            ops = Counter(log.operations())
            assert ops["CopyObject"] + ops["UploadPartCopy"] + ops["DeleteObject"] == 0
            written = {_relative(store, s.path) for s in log.sent if s.operation != "HeadObject"}
            assert written == {f"mpacks/{LARGE_ID.removeprefix('sha256:')}"}
            assert await store.get_mpack(LARGE_ID) == LARGE
            assert await _metadata(store, LARGE_ID) == {SHA256_METADATA: LARGE_ID[7:]}
            assert await staged_push_leftovers(store) == []

    async def test_a_push_past_the_buffer_stages_and_copies(
        self, request: pytest.FixtureRequest
    ) -> None:
        tuning = {"multipart_part_bytes": PART, "push_buffer_bytes": len(LARGE) - 1}
        async with s3_test_store(request, **tuning) as store:
            log = record_requests(store)
            await _push(store, LARGE)
            ops = Counter(log.operations())
            assert ops["CopyObject"] == 1
            staged = {_relative(store, s.path) for s in log.sent if s.operation == "UploadPart"}
            assert all(STAGING_KEY.fullmatch(key) for key in staged)
            assert await store.get_mpack(LARGE_ID) == LARGE
            assert await staged_push_leftovers(store) == []

    async def test_an_aborted_push_within_the_buffer_sent_nothing(
        self, request: pytest.FixtureRequest
    ) -> None:
        tuning = {"multipart_part_bytes": PART, "push_buffer_bytes": len(LARGE)}
        async with s3_test_store(request, **tuning) as store:
            log = record_requests(store)
            upload = await store.open_push()
            await upload.write(LARGE)
            await upload.abort()
            assert log.sent == []
            assert await list_keys(store) == []

    async def test_a_push_smaller_than_a_part_is_one_put_of_the_mpack(
        self, store: S3ObjectStore
    ) -> None:
        log = record_requests(store)
        upload = await store.open_push()
        await upload.write(SMALL)
        assert log.sent == []  # nothing is sent before a part is full
        await upload.commit(SMALL_ID)
        assert log.operations() == ["HeadObject", "PutObject"]
        assert _relative(store, log.sent[1].path) == f"mpacks/{SMALL_ID.removeprefix('sha256:')}"
        assert await list_keys(store) == [store._mpack_key(SMALL_ID)]

    async def test_an_intact_mpack_is_kept_and_the_staged_upload_aborted(
        self, store: S3ObjectStore
    ) -> None:
        await store.put_mpack(LARGE_ID, LARGE)
        before = await store.client.head_object(Bucket=store.bucket, Key=store._mpack_key(LARGE_ID))
        log = record_requests(store)
        await _push(store, LARGE)
        ops = Counter(log.operations())
        assert ops["AbortMultipartUpload"] == 1
        assert ops["CompleteMultipartUpload"] + ops["CopyObject"] + ops["PutObject"] == 0
        after = await store.client.head_object(Bucket=store.bucket, Key=store._mpack_key(LARGE_ID))
        assert after["ETag"] == before["ETag"]
        assert await staged_push_leftovers(store) == []

    async def test_the_same_bytes_without_the_metadata_are_not_intact(
        self, store: S3ObjectStore
    ) -> None:
        await replace_behind_the_back(store, "mpack", SMALL_ID, SMALL)  # no sha256 metadata
        log = record_requests(store)
        await _push(store, SMALL)
        assert log.operations() == ["HeadObject", "PutObject"]
        assert await _metadata(store, SMALL_ID) == {SHA256_METADATA: SMALL_ID[7:]}


class TestMetadata:
    @pytest.mark.parametrize("data", [SMALL, LARGE], ids=["single", "multipart"])
    async def test_put_mpack_records_the_sha256(self, store: S3ObjectStore, data: bytes) -> None:
        await store.put_mpack(content_id(data), data)
        assert await _metadata(store, content_id(data)) == {SHA256_METADATA: content_id(data)[7:]}

    async def test_a_copied_push_carries_the_sha256(self, request: pytest.FixtureRequest) -> None:
        async with s3_test_store(request, multipart_part_bytes=PART, push_buffer_bytes=0) as store:
            await _push(store, LARGE)
            assert await _metadata(store, LARGE_ID) == {SHA256_METADATA: LARGE_ID[7:]}


class TestMultipartCopy:
    async def test_above_the_single_copy_limit_the_copy_is_multipart(
        self, store: S3ObjectStore
    ) -> None:
        log = record_requests(store)
        await _push(store, LARGE)
        ops = Counter(log.operations())
        assert ops["CopyObject"] == 0
        assert ops["UploadPartCopy"] == 3  # 5 + 5 + 2 MiB
        assert await store.get_mpack(LARGE_ID) == LARGE
        assert (
            await store.get_mpack_range(LARGE_ID, PART - 5, PART + 5) == LARGE[PART - 5 : PART + 5]
        )
        assert await _metadata(store, LARGE_ID) == {SHA256_METADATA: LARGE_ID[7:]}
        assert await staged_push_leftovers(store) == []
        assert await list_uploads(store) == []

    async def test_a_failed_part_copy_leaves_nothing(self, store: S3ObjectStore) -> None:
        store.client.meta.events.register("before-send.s3.UploadPartCopy", _break_part_two)
        with pytest.raises(ObjectStoreError) as raised:
            await _push(store, LARGE)
        assert isinstance(raised.value.__cause__, EndpointConnectionError)
        assert await list_uploads(store) == []
        assert await list_keys(store) == []

    def test_the_copy_parts_stay_within_10000_and_above_the_minimum(self) -> None:
        tuning = S3Tuning()
        assert tuning.copy_part_bytes_for(6 * 1024 * MiB) == 512 * MiB
        huge = 10 * 1024 * 1024 * MiB  # 10 TiB
        assert huge / tuning.copy_part_bytes_for(huge) <= 10_000
        assert S3Tuning(single_copy_limit_bytes=PART).copy_part_bytes_for(12 * MiB) == PART

    def test_a_single_copy_limit_below_one_part_is_refused(self) -> None:
        with pytest.raises(InvalidRequestError):
            S3Tuning(single_copy_limit_bytes=MiB)


class TestPartSizes:
    def test_a_stream_keeps_small_parts_for_its_first_gigabytes(self) -> None:
        tuning = S3Tuning()
        assert {tuning.streamed_part_bytes(n) for n in range(1, 1001)} == {8 * MiB}
        assert tuning.streamed_part_bytes(1001) == 16 * MiB

    def test_ten_thousand_parts_reach_past_the_largest_object_and_no_part_is_too_large(
        self,
    ) -> None:
        tuning = S3Tuning()
        sizes = [tuning.streamed_part_bytes(n) for n in range(1, 10_001)]
        assert sum(sizes) >= 5 * 1024 * 1024 * MiB  # S3's largest object: 5 TiB
        assert max(sizes) <= 5 * 1024 * MiB  # S3's largest part
        assert sizes == sorted(sizes)


class TestFailures:
    async def test_a_failed_copy_leaves_nothing(self, request: pytest.FixtureRequest) -> None:
        async with s3_test_store(
            request, multipart_part_bytes=PART, max_attempts=1, push_buffer_bytes=0
        ) as store:
            store.client.meta.events.register("before-send.s3.CopyObject", _break)
            with pytest.raises(ObjectStoreError):
                await _push(store, LARGE)
            assert await list_uploads(store) == []
            assert await list_keys(store) == []

    async def test_a_failed_part_fails_the_push_and_abort_leaves_nothing(
        self, store: S3ObjectStore
    ) -> None:
        store.client.meta.events.register("before-send.s3.UploadPart", _break_part_two)
        upload = await store.open_push()
        with pytest.raises(ObjectStoreError):
            await _write_and_commit(upload, LARGE)
        await upload.abort()
        assert await list_uploads(store) == []
        assert await list_keys(store) == []

    async def test_parts_in_flight_stay_within_the_concurrency(
        self, store: S3ObjectStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        in_flight = slow_parts_counted(monkeypatch)
        data = LARGE * 2  # 24 MiB: five parts
        await _push(store, data)
        assert in_flight["most"] == STAGING["multipart_concurrency"]
        assert await store.get_mpack(content_id(data)) == data


class TestSweep:
    async def test_sweep_aborts_an_abandoned_fetch_document_upload_too(
        self, store: S3ObjectStore
    ) -> None:
        upload = await store.open_fetch(LARGE_ID)
        await upload.write(LARGE)  # two parts up, then the process "crashes"
        await asyncio.sleep(0.5)
        assert len(await list_uploads(store)) == 1
        assert await store.sweep_staging(0) == 1
        assert await list_uploads(store) == []
        await upload.abort()

    async def test_sweep_deletes_a_completed_staging_object_left_by_a_crash(
        self, store: S3ObjectStore
    ) -> None:
        key = f"{store.prefix}staging/{'0' * 32}"
        await store.client.put_object(Bucket=store.bucket, Key=key, Body=b"staged")
        assert await store.sweep_staging(3600) == 0
        assert await store.sweep_staging(0) == 1
        assert await list_keys(store) == []

    async def test_sweep_touches_only_names_it_writes(self, store: S3ObjectStore) -> None:
        foreign = [f"{store.prefix}staging/not-a-staging-name", f"{store.prefix}mpacks/x"]
        for key in foreign:
            await store.client.put_object(Bucket=store.bucket, Key=key, Body=b"kept")
        assert await store.sweep_staging(0) == 0
        assert sorted(await list_keys(store)) == sorted(foreign)

    async def test_a_bad_age_is_refused_before_any_request(self, store: S3ObjectStore) -> None:
        log = record_requests(store)
        with pytest.raises(InvalidRequestError):
            await store.sweep_staging(-5)
        assert log.sent == []


def _break(request: Any, **_: Any) -> None:
    raise EndpointConnectionError(endpoint_url=request.url)


def _break_part_two(request: Any, **_: Any) -> None:
    if "partNumber=2" in request.url:
        raise EndpointConnectionError(endpoint_url=request.url)
