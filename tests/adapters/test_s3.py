"""What S3ObjectStore promises beyond the shared contract: requests, keys, faults, settings.

The contract suite (tests/contract) already runs against S3; these tests look
at the requests the store sends (through botocore's event hooks), at the keys
it writes, and at how it fails: against a port that refuses connections and
against a loopback server that accepts and never answers, every operation
must end in an ObjectStoreError within the configured timeouts.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError, EndpointConnectionError
from fetchcore.adapters.s3 import MAX_PRESIGN_TTL_S, S3ObjectStore, S3Tuning

from fetchcore import InvalidRequestError, ObjectStoreError
from fetchcore.ids import content_id
from fetchcore.policy import MiB, Policy
from fetchcore.ports import FetchUpload
from fetchcore.testing import blob_id
from tests.contract.test_object_store import BAD_IDS
from tests.s3_support import (
    BUCKET,
    connect,
    delete_prefix,
    list_keys,
    list_uploads,
    s3_test_store,
    unreachable_s3_store,
)
from tests.seaweed import LOOPBACK, S3Endpoint

DATA = bytes(range(256)) * 64  # 16 KiB
MPACK_ID = content_id(DATA)
FAST_FAILURE = {"connect_timeout_s": 0.3, "read_timeout_s": 0.3, "max_attempts": 2}
HANG_GUARD_S = 20.0  # far above any configured bound: reaching it means a hang


@attrs.frozen
class Sent:
    """One HTTP request the client put on the wire."""

    operation: str
    method: str
    path: str
    query: str
    range_header: str | None


@attrs.define
class RequestLog:
    """Every request a client sends, recorded by a botocore ``before-send`` hook."""

    sent: list[Sent] = attrs.field(factory=list)

    def hook(self, request: Any, event_name: str, **_: Any) -> None:
        url = urllib.parse.urlsplit(request.url)
        operation = event_name.rsplit(".", 1)[-1]
        byte_range = request.headers.get("Range")
        if isinstance(byte_range, bytes):
            byte_range = byte_range.decode()
        self.sent.append(Sent(operation, request.method, url.path, url.query, byte_range))

    def operations(self) -> list[str]:
        return [request.operation for request in self.sent]


def slow_parts_counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Make every part upload slow (a slow link, so parts pile up if nothing bounds them)
    and count them: ``now`` in flight and the ``most`` at once."""
    in_flight = {"now": 0, "most": 0}
    upload_part = S3ObjectStore._upload_part

    async def slow_part(store: S3ObjectStore, *args: Any) -> Any:
        in_flight["now"] += 1
        in_flight["most"] = max(in_flight["most"], in_flight["now"])
        try:
            await asyncio.sleep(0.05)
            return await upload_part(store, *args)
        finally:
            in_flight["now"] -= 1

    monkeypatch.setattr(S3ObjectStore, "_upload_part", slow_part)
    return in_flight


def record_requests(store: S3ObjectStore) -> RequestLog:
    log = RequestLog()
    store.client.meta.events.register("before-send.s3", log.hook)
    return log


@pytest.fixture
async def store(request: pytest.FixtureRequest) -> AsyncIterator[S3ObjectStore]:
    async with s3_test_store(request) as opened:
        yield opened


@pytest.fixture
def endpoint(request: pytest.FixtureRequest) -> S3Endpoint:
    found: S3Endpoint = request.getfixturevalue("s3_endpoint")
    return found


class TestRequests:
    async def test_a_range_is_one_ranged_get(self, store: S3ObjectStore) -> None:
        await store.put_mpack(MPACK_ID, DATA)
        log = record_requests(store)
        assert await store.get_mpack_range(MPACK_ID, 100, 300) == DATA[100:300]
        assert log.sent == [
            Sent("GetObject", "GET", log.sent[0].path, "", "bytes=100-299"),
        ]

    async def test_a_range_past_the_end_is_still_one_request(self, store: S3ObjectStore) -> None:
        await store.put_mpack(MPACK_ID, DATA)
        log = record_requests(store)
        assert await store.get_mpack_range(MPACK_ID, len(DATA) + 1, len(DATA) + 9) == b""
        assert log.operations() == ["GetObject"]

    async def test_only_an_empty_range_costs_a_head(self, store: S3ObjectStore) -> None:
        await store.put_mpack(MPACK_ID, DATA)
        log = record_requests(store)
        assert await store.get_mpack_range(MPACK_ID, 7, 7) == b""
        assert log.operations() == ["HeadObject"]

    async def test_a_whole_mpack_is_one_get_and_has_mpack_one_head(
        self, store: S3ObjectStore
    ) -> None:
        await store.put_mpack(MPACK_ID, DATA)
        log = record_requests(store)
        await store.get_mpack(MPACK_ID)
        await store.has_mpack(MPACK_ID)
        assert log.operations() == ["GetObject", "HeadObject"]
        assert log.sent[0].range_header is None

    async def test_a_put_sends_its_body_without_waiting_for_100_continue(
        self, store: S3ObjectStore
    ) -> None:
        expect_headers: list[object] = []

        def remember(request: Any, **_: Any) -> None:
            expect_headers.append(request.headers.get("Expect"))

        store.client.meta.events.register("before-send.s3.PutObject", remember)
        await store.put_mpack(MPACK_ID, DATA)
        assert expect_headers == [None]

    async def test_presigning_sends_nothing(self, store: S3ObjectStore) -> None:
        log = record_requests(store)
        await store.presign_mpack(MPACK_ID, 60)
        assert log.sent == []

    @pytest.mark.parametrize("bad_id", BAD_IDS)
    async def test_a_malformed_id_sends_nothing(self, store: S3ObjectStore, bad_id: str) -> None:
        log = record_requests(store)
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: store.get_object(bad_id),
            lambda: store.put_object(bad_id, b"x"),
            lambda: store.get_mpack(bad_id),
            lambda: store.get_mpack_range(bad_id, 0, 0),
            lambda: store.put_mpack(bad_id, b"x"),
            lambda: store.has_mpack(bad_id),
            lambda: store.presign_mpack(bad_id, 60),
        ]
        for call in calls:
            with pytest.raises(InvalidRequestError):
                await call()
        assert log.sent == []
        await store.has_mpack(MPACK_ID)
        assert log.operations() == ["HeadObject"]  # the hook does see requests


class TestKeys:
    async def test_keys_sit_in_two_namespaces_under_the_prefix(self, store: S3ObjectStore) -> None:
        content = b"legacy"
        await store.put_object(blob_id(content, bare=True), content)
        await store.put_mpack(MPACK_ID, DATA)
        digest = MPACK_ID.removeprefix("sha256:")
        assert sorted(await list_keys(store)) == [
            f"{store.prefix}mpacks/{digest}",
            f"{store.prefix}objects/{blob_id(content, bare=True)}",
        ]

    async def test_stores_under_different_prefixes_do_not_see_each_other(
        self, request: pytest.FixtureRequest, store: S3ObjectStore
    ) -> None:
        await store.put_mpack(MPACK_ID, DATA)
        async with s3_test_store(request) as neighbour:
            assert await neighbour.has_mpack(MPACK_ID) is False
            assert await neighbour.get_mpack_range(MPACK_ID, 0, 10) is None

    def test_the_prefix_is_normalized_to_end_in_one_slash(self, store: S3ObjectStore) -> None:
        assert attrs.evolve(store, prefix="/hub/").prefix == "hub/"
        assert attrs.evolve(store, prefix="hub").prefix == "hub/"
        assert attrs.evolve(store, prefix="").prefix == ""


class TestMultipart:
    TUNING: dict[str, Any] = {  # noqa: RUF012
        "multipart_threshold_bytes": 5 * MiB,
        "multipart_part_bytes": 5 * MiB,
    }
    LARGE = bytes(range(251)) * (50 * 1024)  # about 12 MiB: three parts

    async def test_a_large_put_goes_up_in_parts(self, request: pytest.FixtureRequest) -> None:
        async with s3_test_store(request, **self.TUNING) as store:
            log = record_requests(store)
            await store.put_mpack(content_id(self.LARGE), self.LARGE)
            assert Counter(log.operations()) == {
                "CreateMultipartUpload": 1,
                "UploadPart": 3,
                "CompleteMultipartUpload": 1,
            }
            assert await store.get_mpack(content_id(self.LARGE)) == self.LARGE

    async def test_a_failed_part_aborts_the_upload(self, request: pytest.FixtureRequest) -> None:
        async with s3_test_store(request, **self.TUNING) as store:
            store.client.meta.events.register("before-send.s3.UploadPart", _break_part_two)
            large_id = content_id(self.LARGE)
            with pytest.raises(ObjectStoreError) as raised:
                await store.put_mpack(large_id, self.LARGE)
            assert isinstance(raised.value.__cause__, EndpointConnectionError)
            assert await list_uploads(store) == []
            assert await store.has_mpack(large_id) is False

    def test_a_huge_document_gets_larger_parts_to_stay_within_10000(self) -> None:
        tuning = S3Tuning(multipart_part_bytes=5 * MiB)
        assert tuning.part_bytes_for(10 * MiB) == 5 * MiB
        assert tuning.part_bytes_for(100_000 * MiB) == 10 * MiB


def _break_part_two(request: Any, **_: Any) -> None:
    if "partNumber=2" in request.url:
        raise EndpointConnectionError(endpoint_url=request.url)


class TestBuckets:
    async def test_create_bucket_makes_one_and_accepts_an_existing_one(
        self, endpoint: S3Endpoint
    ) -> None:
        bucket = f"fetchcore-new-{uuid.uuid4().hex[:12]}"
        async with connect(endpoint, bucket=bucket, create_bucket=True) as store:
            await store.put_mpack(MPACK_ID, DATA)
        async with connect(endpoint, bucket=bucket, create_bucket=True) as store:
            assert await store.get_mpack(MPACK_ID) == DATA
            await delete_prefix(store)
            await store.client.delete_bucket(Bucket=bucket)

    async def test_a_missing_bucket_fails_at_connect_saying_so(self, endpoint: S3Endpoint) -> None:
        bucket = f"fetchcore-none-{uuid.uuid4().hex[:12]}"
        with pytest.raises(ObjectStoreError, match=f"bucket '{bucket}' does not exist") as raised:
            async with connect(endpoint, bucket=bucket):
                pytest.fail("connect yielded a store on a missing bucket")
        assert isinstance(raised.value.__cause__, ClientError)

    @pytest.mark.parametrize(
        "credentials",
        [
            {"access_key_id": "nobody", "secret_access_key": "wrong"},
            {"secret_access_key": "not-the-secret"},
        ],
        ids=["unknown-key", "wrong-secret"],
    )
    async def test_a_denied_bucket_fails_at_connect_saying_so(
        self, endpoint: S3Endpoint, credentials: dict[str, str]
    ) -> None:
        with pytest.raises(ObjectStoreError, match="access denied") as raised:
            async with connect(endpoint, **credentials):
                pytest.fail("connect yielded a store on a denied bucket")
        assert isinstance(raised.value.__cause__, ClientError)

    async def test_without_the_check_a_missing_bucket_fails_at_the_first_request(
        self, endpoint: S3Endpoint
    ) -> None:
        bucket = f"fetchcore-none-{uuid.uuid4().hex[:12]}"
        async with connect(endpoint, bucket=bucket, check_bucket=False) as store:
            with pytest.raises(ObjectStoreError, match="bucket does not exist"):
                await store.get_mpack(MPACK_ID)


class TestPresign:
    async def test_the_url_lives_as_long_as_asked(self, store: S3ObjectStore) -> None:
        url = await store.presign_mpack(MPACK_ID, 123)
        assert url is not None
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        assert query["X-Amz-Expires"] == ["123"]
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]

    @pytest.mark.parametrize("ttl", [0, -5, MAX_PRESIGN_TTL_S + 1, True, 1.5])
    async def test_a_lifetime_outside_sigv4_limits_is_rejected(
        self, store: S3ObjectStore, ttl: Any
    ) -> None:
        with pytest.raises(InvalidRequestError):
            await store.presign_mpack(MPACK_ID, ttl)


class TestSettings:
    async def test_the_client_gets_pool_timeouts_retries_and_checksum_settings(
        self, endpoint: S3Endpoint
    ) -> None:
        async with connect(endpoint, read_timeout_s=7.0, retry_mode="adaptive") as store:
            config: Any = store.client.meta.config  # botocore's stubs leave its options out
        assert config.max_pool_connections >= Policy().max_in_flight
        assert (config.connect_timeout, config.read_timeout) == (5.0, 7.0)
        assert config.retries == {"mode": "adaptive", "total_max_attempts": 4}
        assert config.request_checksum_calculation == "when_required"
        assert config.response_checksum_validation == "when_required"
        assert config.s3 == {"addressing_style": "path"}

    @pytest.mark.parametrize(
        "options",
        [
            {"no_such_option": 1},
            {"read_timeout_s": 0},
            {"max_attempts": 0},
            {"retry_mode": "legacy"},
            {"multipart_part_bytes": 1 * MiB},
        ],
    )
    async def test_bad_tuning_is_rejected(
        self, endpoint: S3Endpoint, options: dict[str, Any]
    ) -> None:
        with pytest.raises(InvalidRequestError):
            async with connect(endpoint, **options):
                pass

    async def test_bodies_are_released_even_with_a_pool_of_one(
        self, request: pytest.FixtureRequest
    ) -> None:
        async with s3_test_store(request, max_pool_connections=1) as store:
            await store.put_mpack(MPACK_ID, DATA)

            def every_kind_of_read() -> list[Awaitable[object]]:
                return [
                    store.get_mpack(MPACK_ID),
                    store.get_mpack_range(MPACK_ID, 5, 50),
                    store.get_mpack_range(MPACK_ID, len(DATA) + 5, len(DATA) + 50),
                    store.get_mpack_range(MPACK_ID, 5, 5),
                    store.get_mpack(content_id(b"missing")),
                    store.get_object(blob_id(b"missing")),
                    store.has_mpack(MPACK_ID),
                ]

            async with asyncio.timeout(HANG_GUARD_S):
                for _ in range(5):
                    results = await asyncio.gather(*every_kind_of_read())
            assert results[:2] == [DATA, DATA[5:50]]


Operation = Callable[[S3ObjectStore], Awaitable[object]]
OPERATIONS: dict[str, Operation] = {
    "get_mpack": lambda store: store.get_mpack(MPACK_ID),
    "get_mpack_range": lambda store: store.get_mpack_range(MPACK_ID, 0, 10),
    "get_object": lambda store: store.get_object(MPACK_ID),
    "has_mpack": lambda store: store.has_mpack(MPACK_ID),
    "put_mpack": lambda store: store.put_mpack(MPACK_ID, DATA),
}
READS = ["get_mpack", "get_mpack_range", "get_object"]


@asynccontextmanager
async def silent_server(
    first_bytes: bytes = b"", *, read_bodies: bool = True
) -> AsyncIterator[str]:
    """A loopback HTTP server that reads a request's headers, sends ``first_bytes``, then stalls.

    While stalled it reads and drops whatever else comes (or, with
    ``read_bodies=False``, reads nothing more, so an upload fills the socket buffers).
    """
    writers: list[asyncio.StreamWriter] = []
    handlers: list[asyncio.Task[Any]] = []
    release = asyncio.Event()

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        this_handler = asyncio.current_task()
        assert this_handler is not None
        handlers.append(this_handler)
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(first_bytes)
            await (reader.read() if read_bodies else release.wait())
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(stall, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        release.set()
        server.close()
        for writer in writers:
            writer.close()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def _fails_in_time(store: S3ObjectStore, operation: Operation) -> tuple[Exception, float]:
    started = time.monotonic()
    async with asyncio.timeout(HANG_GUARD_S):
        with pytest.raises(ObjectStoreError) as raised:
            await operation(store)
    return raised.value, time.monotonic() - started


class TestFaults:
    @pytest.mark.parametrize("name", sorted(OPERATIONS))
    async def test_a_refused_connection_fails_fast(self, name: str) -> None:
        async with unreachable_s3_store(**FAST_FAILURE) as store:
            error, elapsed = await _fails_in_time(store, OPERATIONS[name])
        assert isinstance(error.__cause__, EndpointConnectionError)
        assert elapsed < 5.0

    @pytest.mark.parametrize("name", sorted(OPERATIONS))
    async def test_a_server_that_never_answers_times_out(self, name: str) -> None:
        async with silent_server() as url, _store_at(url) as store:
            error, elapsed = await _fails_in_time(store, OPERATIONS[name])
        assert error.__cause__ is not None
        attempts, read_timeout = FAST_FAILURE["max_attempts"], FAST_FAILURE["read_timeout_s"]
        assert attempts * read_timeout * 0.9 <= elapsed < 5.0

    async def test_a_server_that_stops_reading_an_upload_hits_the_write_deadline(self) -> None:
        big = bytes(32 * MiB)  # more than the loopback socket buffers hold
        options = {"min_write_bytes_per_s": 64 * MiB, "multipart_threshold_bytes": 64 * MiB}
        async with silent_server(read_bodies=False) as url, _store_at(url, **options) as store:
            error, elapsed = await _fails_in_time(store, lambda s: s.put_mpack(MPACK_ID, big))
        assert isinstance(error.__cause__, TimeoutError)
        assert elapsed <= store.tuning.write_deadline_s(len(big)) + 1.0

    @pytest.mark.parametrize("name", READS)
    async def test_a_body_that_stops_midway_times_out(self, name: str) -> None:
        headers = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
        async with silent_server(headers + b"partial") as url, _store_at(url) as store:
            error, elapsed = await _fails_in_time(store, OPERATIONS[name])
        assert error.__cause__ is not None
        assert elapsed < 5.0


@asynccontextmanager
async def _store_at(url: str, **options: Any) -> AsyncIterator[S3ObjectStore]:
    endpoint = S3Endpoint(url, "unused", "unused")
    settings = {**FAST_FAILURE, "check_bucket": False, **options}
    async with connect(endpoint, **settings) as store:
        yield store


FETCH_ID = content_id(b"a fetch id")
PART = 5 * MiB
STREAMING: dict[str, Any] = {"multipart_part_bytes": PART, "multipart_concurrency": 2}


class TestExistence:
    @pytest.mark.parametrize("stored", [True, False])
    async def test_has_mpack_is_one_head_and_never_a_get(
        self, store: S3ObjectStore, stored: bool
    ) -> None:
        if stored:
            await store.put_mpack(MPACK_ID, DATA)
        log = record_requests(store)
        assert await store.has_mpack(MPACK_ID) is stored
        assert log.operations() == ["HeadObject"]

    async def test_fetch_intact_heads_the_document_and_reads_only_its_seal(
        self, store: S3ObjectStore
    ) -> None:
        upload = await store.open_fetch(FETCH_ID)
        await upload.write(DATA)
        await upload.commit()
        log = record_requests(store)
        assert await store.fetch_intact(FETCH_ID) is True
        key = store._fetch_key(FETCH_ID)
        assert sorted((sent.operation, sent.path.split("/", 2)[2]) for sent in log.sent) == [
            ("GetObject", f"{key}.seal"),
            ("HeadObject", key),
        ]

    @pytest.mark.parametrize("seal", [None, b"{not json", b'{"size": 1, "etag": "x"}'])
    async def test_a_document_without_a_matching_seal_is_not_intact(
        self, store: S3ObjectStore, seal: bytes | None
    ) -> None:
        upload = await store.open_fetch(FETCH_ID)
        await upload.write(DATA)
        await upload.commit()
        seal_key = store._fetch_key(FETCH_ID) + ".seal"
        if seal is None:  # a crash between the document and its seal
            await store.client.delete_object(Bucket=store.bucket, Key=seal_key)
        else:
            await store.client.put_object(Bucket=store.bucket, Key=seal_key, Body=seal)
        assert await store.fetch_intact(FETCH_ID) is False

    async def test_a_put_writes_again_even_when_the_key_exists(self, store: S3ObjectStore) -> None:
        await store.put_mpack(MPACK_ID, DATA)
        log = record_requests(store)
        await store.put_mpack(MPACK_ID, DATA)
        assert log.operations() == ["PutObject"]


class TestStreamingFetchUpload:
    async def test_a_small_document_is_one_put_at_commit_then_its_seal(
        self, store: S3ObjectStore
    ) -> None:
        log = record_requests(store)
        upload = await store.open_fetch(FETCH_ID)
        await upload.write(DATA)
        assert log.sent == []
        await upload.commit()
        key = store._fetch_key(FETCH_ID)
        assert [(s.operation, s.path.split("/", 2)[2]) for s in log.sent] == [
            ("PutObject", key),
            ("PutObject", f"{key}.seal"),
        ]

    async def test_parts_go_up_while_the_writer_writes(
        self, request: pytest.FixtureRequest
    ) -> None:
        async with s3_test_store(request, **STREAMING) as store:
            log = record_requests(store)
            upload = await store.open_fetch(FETCH_ID)
            for _ in range(3):
                await upload.write(bytes(PART))
            await asyncio.sleep(0)
            before_commit = Counter(log.operations())
            await upload.commit()
            assert before_commit["CreateMultipartUpload"] == 1
            assert before_commit["UploadPart"] >= 2  # the third may still be starting
            assert Counter(log.operations())["UploadPart"] == 3
            assert await store.get_fetch(FETCH_ID) == bytes(3 * PART)
            assert await store.fetch_intact(FETCH_ID) is True

    async def test_parts_in_flight_stay_within_the_concurrency(
        self, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        in_flight = slow_parts_counted(monkeypatch)
        async with s3_test_store(request, **STREAMING) as store:
            upload = await store.open_fetch(FETCH_ID)
            for _ in range(6):
                await upload.write(bytes(PART))
            await upload.commit()
            assert in_flight["most"] == STREAMING["multipart_concurrency"]
            assert await store.get_fetch(FETCH_ID) == bytes(6 * PART)

    async def test_a_failed_part_fails_the_upload_and_abort_leaves_nothing(
        self, request: pytest.FixtureRequest
    ) -> None:
        async with s3_test_store(request, **STREAMING) as store:
            store.client.meta.events.register("before-send.s3.UploadPart", _break_part_two)
            upload = await store.open_fetch(FETCH_ID)
            with pytest.raises(ObjectStoreError) as raised:
                await _write_parts_and_commit(upload, 4)
            assert isinstance(raised.value.__cause__, EndpointConnectionError)
            await upload.abort()
            assert await list_uploads(store) == []
            assert await list_keys(store) == []

    async def test_a_commit_cancelled_while_parts_are_in_flight_leaves_nothing(
        self, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        parts_started = asyncio.Event()

        async def stuck_part(store: S3ObjectStore, *args: Any) -> Any:
            parts_started.set()
            await asyncio.Event().wait()  # a part that never finishes

        async with s3_test_store(request, **STREAMING) as store:
            upload = await store.open_fetch(FETCH_ID)
            await upload.write(bytes(PART))  # creates the multipart upload
            monkeypatch.setattr(S3ObjectStore, "_upload_part", stuck_part)
            committing = asyncio.create_task(upload.commit())
            await parts_started.wait()
            assert len(await list_uploads(store)) == 1
            committing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await committing
            assert await list_uploads(store) == []
            assert await list_keys(store) == []

    async def test_a_failed_seal_takes_the_document_back(
        self, request: pytest.FixtureRequest
    ) -> None:
        async with s3_test_store(request) as store:
            store.client.meta.events.register("before-send.s3.PutObject", _break_seal)
            upload = await store.open_fetch(FETCH_ID)
            await upload.write(DATA)
            with pytest.raises(ObjectStoreError):
                await upload.commit()
            assert await list_keys(store) == []


async def _write_parts_and_commit(upload: FetchUpload, parts: int) -> None:
    for _ in range(parts):
        await upload.write(bytes(PART))
    await upload.commit()


def _break_seal(request: Any, **_: Any) -> None:
    if request.url.split("?")[0].endswith(".seal"):
        raise EndpointConnectionError(endpoint_url=request.url)


class TestConnecting:
    async def test_region_follows_the_environment(
        self, endpoint: S3Endpoint, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("AWS_REGION", raising=False)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
        options = {"region": None, "check_bucket": False}
        async with connect(endpoint, **options) as store:
            assert store.client.meta.region_name == "eu-west-3"
            url = await store.presign_fetch(FETCH_ID, 60)
        assert url is not None
        assert "eu-west-3" in urllib.parse.parse_qs(url)["X-Amz-Credential"][0]

    async def test_endpoint_and_credentials_follow_the_environment(
        self, endpoint: S3Endpoint, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint.url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", endpoint.access_key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", endpoint.secret_access_key)
        monkeypatch.setenv("AWS_DEFAULT_REGION", endpoint.region)
        monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        prefix = f"test-{uuid.uuid4().hex}/"
        async with S3ObjectStore.connect(bucket=BUCKET, prefix=prefix) as store:
            assert store.client.meta.endpoint_url == endpoint.url
            await store.put_mpack(MPACK_ID, DATA)
            assert await store.get_mpack(MPACK_ID) == DATA
            await delete_prefix(store)


class TestBringYourOwnClient:
    async def test_a_store_on_the_callers_client_works_and_leaves_it_open(
        self, endpoint: S3Endpoint
    ) -> None:
        async with _own_client(endpoint) as client:
            prefix = f"test-{uuid.uuid4().hex}/"
            store = await S3ObjectStore.from_client(client, bucket=BUCKET, prefix=prefix)
            upload = await store.open_fetch(FETCH_ID)
            await upload.write(DATA)
            await upload.commit()
            assert await store.get_fetch(FETCH_ID) == DATA
            assert await store.fetch_intact(FETCH_ID) is True
            await delete_prefix(store)
            assert store.client is client
            config: Any = client.meta.config  # botocore's stubs leave its options out
            assert config.read_timeout == 11.0  # the caller's settings, untouched

    async def test_a_missing_bucket_fails_before_the_store_is_returned(
        self, endpoint: S3Endpoint
    ) -> None:
        async with _own_client(endpoint) as client:
            with pytest.raises(ObjectStoreError, match="does not exist"):
                await S3ObjectStore.from_client(client, bucket=f"none-{uuid.uuid4().hex[:12]}")


def _own_client(endpoint: S3Endpoint) -> Any:
    return get_session().create_client(
        "s3",
        endpoint_url=endpoint.url,
        region_name=endpoint.region,
        aws_access_key_id=endpoint.access_key_id,
        aws_secret_access_key=endpoint.secret_access_key,
        config=AioConfig(
            read_timeout=11.0,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
