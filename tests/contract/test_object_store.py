"""The ObjectStore contract: every backend in tests/backends.py must pass all of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from fetchcore import InvalidRequestError, ObjectStore, ObjectStoreError
from fetchcore.ids import content_id
from fetchcore.testing import blob_id
from tests.backends import (
    UNREACHABLE_STORES,
    cancel_while_writing,
    download,
    replace_behind_the_back,
    stored_fetch_leftovers,
    truncate_behind_the_back,
)

DATA = bytes(range(256)) * 40  # 10,240 bytes, every byte value
MPACK_ID = content_id(DATA)
OTHER_MPACK_ID = content_id(b"never stored")

BAD_IDS = [
    "",
    "sha256:",
    "../../etc/passwd",
    "sha256:../../etc/passwd",
    "sha256:" + "A" * 64,
    "sha256:" + "a" * 63,
    "sha256:" + "a" * 65,
    "sha256:" + "g" * 64,
    "md5:" + "a" * 64,
    "sha256:" + "a" * 63 + "/",
    "sha256:" + "a" * 63 + "\n",
]


@pytest.fixture(params=sorted(UNREACHABLE_STORES))
async def unreachable_object_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ObjectStore]:
    """Each store that does I/O, with its storage out of reach: any I/O fails."""
    async with UNREACHABLE_STORES[request.param](request, tmp_path) as store:
        yield store


def _calls_with_id(store: ObjectStore, some_id: str) -> list[Callable[[], Awaitable[object]]]:
    return [
        lambda: store.get_object(some_id),
        lambda: store.put_object(some_id, b"x"),
        lambda: store.get_mpack(some_id),
        lambda: store.get_mpack_range(some_id, 0, 1),
        lambda: store.put_mpack(some_id, b"x"),
        lambda: store.has_mpack(some_id),
        lambda: store.presign_mpack(some_id, 60),
        lambda: store.open_fetch(some_id),
        lambda: store.fetch_intact(some_id),
        lambda: store.get_fetch(some_id),
        lambda: store.presign_fetch(some_id, 60),
    ]


def test_satisfies_the_protocol(object_store: ObjectStore) -> None:
    assert isinstance(object_store, ObjectStore)


class TestMissingKeys:
    async def test_a_missing_mpack_is_none(self, object_store: ObjectStore) -> None:
        assert await object_store.get_mpack(OTHER_MPACK_ID) is None

    async def test_a_range_of_a_missing_mpack_is_none(self, object_store: ObjectStore) -> None:
        assert await object_store.get_mpack_range(OTHER_MPACK_ID, 0, 10) is None

    async def test_a_missing_object_is_none(self, object_store: ObjectStore) -> None:
        assert await object_store.get_object(blob_id(b"nothing")) is None

    async def test_has_mpack_is_false_for_a_missing_mpack(self, object_store: ObjectStore) -> None:
        assert await object_store.has_mpack(OTHER_MPACK_ID) is False

    @pytest.mark.parametrize(("start", "end"), [(0, 0), (5, 5), (100, 200)])
    async def test_an_empty_or_far_range_of_a_missing_mpack_is_none(
        self, object_store: ObjectStore, start: int, end: int
    ) -> None:
        assert await object_store.get_mpack_range(OTHER_MPACK_ID, start, end) is None


class TestRoundTrips:
    async def test_an_mpack_reads_back_whole(self, object_store: ObjectStore) -> None:
        await object_store.put_mpack(MPACK_ID, DATA)
        assert await object_store.get_mpack(MPACK_ID) == DATA
        assert await object_store.has_mpack(MPACK_ID) is True

    async def test_put_mpack_is_idempotent(self, object_store: ObjectStore) -> None:
        await object_store.put_mpack(MPACK_ID, DATA)
        await object_store.put_mpack(MPACK_ID, DATA)
        assert await object_store.get_mpack(MPACK_ID) == DATA

    @pytest.mark.parametrize("damage", ["replaced", "truncated"])
    async def test_putting_an_mpack_again_repairs_a_damaged_copy(
        self, object_store: ObjectStore, damage: str
    ) -> None:
        await object_store.put_mpack(MPACK_ID, DATA)
        if damage == "replaced":
            flipped = bytes([DATA[0] ^ 0xFF]) + DATA[1:]
            await replace_behind_the_back(object_store, "mpack", MPACK_ID, flipped)
        else:
            await truncate_behind_the_back(object_store, "mpack", MPACK_ID, 100)
        assert await object_store.get_mpack(MPACK_ID) != DATA  # the damage is real
        await object_store.put_mpack(MPACK_ID, DATA)
        assert await object_store.get_mpack(MPACK_ID) == DATA

    async def test_an_empty_mpack_reads_back_empty(self, object_store: ObjectStore) -> None:
        empty_id = content_id(b"")
        await object_store.put_mpack(empty_id, b"")
        assert await object_store.get_mpack(empty_id) == b""
        assert await object_store.has_mpack(empty_id) is True

    async def test_an_object_reads_back_under_either_spelling(
        self, object_store: ObjectStore
    ) -> None:
        content = b"legacy content"
        await object_store.put_object(blob_id(content, bare=True), content)
        assert await object_store.get_object(blob_id(content)) == content
        assert await object_store.get_object(blob_id(content, bare=True)) == content

    async def test_objects_and_mpacks_are_separate_namespaces(
        self, object_store: ObjectStore
    ) -> None:
        await object_store.put_object(MPACK_ID, DATA)
        assert await object_store.get_mpack(MPACK_ID) is None
        assert await object_store.has_mpack(MPACK_ID) is False

    async def test_an_mpack_is_not_a_legacy_object(self, object_store: ObjectStore) -> None:
        await object_store.put_mpack(MPACK_ID, DATA)
        assert await object_store.get_object(MPACK_ID) is None

    async def test_concurrent_puts_of_one_mpack_all_succeed(
        self, object_store: ObjectStore
    ) -> None:
        await asyncio.gather(*(object_store.put_mpack(MPACK_ID, DATA) for _ in range(8)))
        assert await object_store.get_mpack(MPACK_ID) == DATA

    async def test_a_large_mpack_reads_back_whole_and_in_ranges(
        self, object_store: ObjectStore
    ) -> None:
        large = DATA * 2_000  # about 20 MiB: above any multipart threshold
        large_id = content_id(large)
        await object_store.put_mpack(large_id, large)
        assert await object_store.get_mpack(large_id) == large
        middle = len(large) // 2
        assert (
            await object_store.get_mpack_range(large_id, middle, middle + 4096)
            == (large[middle : middle + 4096])
        )
        for boundary in (4 * 1024 * 1024, 8 * 1024 * 1024, 16 * 1024 * 1024):  # part sizes
            start, end = boundary - 100, boundary + 100
            assert await object_store.get_mpack_range(large_id, start, end) == large[start:end]
        tail = len(large) - 10
        assert await object_store.get_mpack_range(large_id, tail, tail + 1000) == large[tail:]


RANGES = [
    (0, 0),
    (0, 1),
    (0, len(DATA)),
    (17, 4113),
    (len(DATA) - 1, len(DATA)),
    (len(DATA), len(DATA)),
    (len(DATA) - 10, len(DATA) + 100),
    (len(DATA) + 5, len(DATA) + 50),
    (100, 100),
]


class TestRanges:
    @pytest.mark.parametrize(("start", "end"), RANGES)
    async def test_a_range_has_slicing_semantics(
        self, object_store: ObjectStore, start: int, end: int
    ) -> None:
        await object_store.put_mpack(MPACK_ID, DATA)
        assert await object_store.get_mpack_range(MPACK_ID, start, end) == DATA[start:end]

    @pytest.mark.parametrize(("start", "end"), [(0, 0), (0, 1), (5, 10)])
    async def test_every_range_of_an_empty_mpack_is_empty(
        self, object_store: ObjectStore, start: int, end: int
    ) -> None:
        empty_id = content_id(b"")
        await object_store.put_mpack(empty_id, b"")
        assert await object_store.get_mpack_range(empty_id, start, end) == b""

    @pytest.mark.parametrize(("start", "end"), [(-1, 5), (10, 5), (0, -1)])
    async def test_a_malformed_range_is_rejected(
        self, object_store: ObjectStore, start: int, end: int
    ) -> None:
        await object_store.put_mpack(MPACK_ID, DATA)
        with pytest.raises(InvalidRequestError):
            await object_store.get_mpack_range(MPACK_ID, start, end)


class TestIds:
    @pytest.mark.parametrize("bad_id", BAD_IDS)
    async def test_malformed_ids_are_rejected_everywhere(
        self, object_store: ObjectStore, bad_id: str
    ) -> None:
        for call in _calls_with_id(object_store, bad_id):
            with pytest.raises(InvalidRequestError):
                await call()

    async def test_a_bare_digest_is_not_an_mpack_id(self, object_store: ObjectStore) -> None:
        with pytest.raises(InvalidRequestError):
            await object_store.get_mpack(MPACK_ID.removeprefix("sha256:"))


class TestNothingIsTouchedBeforeValidation:
    async def test_the_unreachable_store_really_fails_on_io(
        self, unreachable_object_store: ObjectStore
    ) -> None:
        with pytest.raises(ObjectStoreError) as raised:
            await unreachable_object_store.get_mpack(MPACK_ID)
        assert raised.value.__cause__ is not None

    @pytest.mark.parametrize("bad_id", BAD_IDS)
    async def test_malformed_ids_are_rejected_without_io(
        self, unreachable_object_store: ObjectStore, bad_id: str
    ) -> None:
        for call in _calls_with_id(unreachable_object_store, bad_id):
            with pytest.raises(InvalidRequestError):
                await call()

    @pytest.mark.parametrize(("start", "end"), [(-1, 5), (10, 5), (0, -1)])
    async def test_malformed_ranges_are_rejected_without_io(
        self, unreachable_object_store: ObjectStore, start: int, end: int
    ) -> None:
        with pytest.raises(InvalidRequestError):
            await unreachable_object_store.get_mpack_range(MPACK_ID, start, end)


class TestPresign:
    async def test_a_presigned_url_downloads_the_mpack(self, object_store: ObjectStore) -> None:
        await object_store.put_mpack(MPACK_ID, DATA)
        url = await object_store.presign_mpack(MPACK_ID, 300)
        assert url is not None
        assert await download(object_store, url) == DATA

    async def test_a_presigned_url_downloads_the_fetch_document(
        self, object_store: ObjectStore
    ) -> None:
        await _store_fetch(object_store, FETCH_ID, DATA)
        url = await object_store.presign_fetch(FETCH_ID, 300)
        assert url is not None
        assert await download(object_store, url) == DATA


FETCH_ID = content_id(b"a fetch document's content id")
CHUNK = bytes(range(256)) * 4096  # 1 MiB
LARGE_CHUNKS = 20  # 20 MiB: several parts of any multipart size, and a short last part


async def _store_fetch(store: ObjectStore, fetch_id: str, *chunks: bytes) -> None:
    upload = await store.open_fetch(fetch_id)
    for chunk in chunks:
        await upload.write(chunk)
    await upload.commit()


class _SourceFailedError(Exception):
    """What a writer's source raises in the middle of a document."""


async def _write_then_fail(store: ObjectStore, chunks: int) -> None:
    """Write like the core does, and abort on any failure (the core's side of the port)."""
    upload = await store.open_fetch(FETCH_ID)
    try:
        for _ in range(chunks):
            await upload.write(CHUNK)
            await asyncio.sleep(0)  # let parts go out, as reads would
        raise _SourceFailedError
    except BaseException:
        await upload.abort()
        raise


class TestFetchDocuments:
    @pytest.mark.parametrize("chunks", [0, 1, LARGE_CHUNKS])
    async def test_a_committed_document_reads_back_and_is_intact(
        self, object_store: ObjectStore, chunks: int
    ) -> None:
        await _store_fetch(object_store, FETCH_ID, *[CHUNK] * chunks)
        assert await object_store.get_fetch(FETCH_ID) == CHUNK * chunks
        assert await object_store.fetch_intact(FETCH_ID) is True

    async def test_a_document_is_invisible_until_commit(self, object_store: ObjectStore) -> None:
        upload = await object_store.open_fetch(FETCH_ID)
        await upload.write(DATA)
        assert await object_store.get_fetch(FETCH_ID) is None
        assert await object_store.fetch_intact(FETCH_ID) is False
        await upload.commit()
        assert await object_store.get_fetch(FETCH_ID) == DATA

    @pytest.mark.parametrize("chunks", [0, 1, LARGE_CHUNKS])
    async def test_abort_leaves_nothing(self, object_store: ObjectStore, chunks: int) -> None:
        upload = await object_store.open_fetch(FETCH_ID)
        for _ in range(chunks):
            await upload.write(CHUNK)
        await upload.abort()
        await upload.abort()  # safe twice
        assert await stored_fetch_leftovers(object_store) == []
        assert await object_store.get_fetch(FETCH_ID) is None
        assert await object_store.fetch_intact(FETCH_ID) is False

    @pytest.mark.parametrize("chunks", [1, LARGE_CHUNKS])
    async def test_a_failure_mid_write_leaves_nothing(
        self, object_store: ObjectStore, chunks: int
    ) -> None:
        with pytest.raises(_SourceFailedError):
            await _write_then_fail(object_store, chunks)
        assert await stored_fetch_leftovers(object_store) == []

    async def test_cancellation_mid_write_leaves_nothing(self, object_store: ObjectStore) -> None:
        await cancel_while_writing(await object_store.open_fetch(FETCH_ID), CHUNK)
        assert await stored_fetch_leftovers(object_store) == []

    async def test_a_finished_upload_refuses_more_writes(self, object_store: ObjectStore) -> None:
        upload = await object_store.open_fetch(FETCH_ID)
        await upload.commit()
        with pytest.raises(InvalidRequestError):
            await upload.write(b"late")
        with pytest.raises(InvalidRequestError):
            await upload.commit()
        assert await object_store.get_fetch(FETCH_ID) == b""

    async def test_a_missing_document_is_not_intact(self, object_store: ObjectStore) -> None:
        assert await object_store.fetch_intact(FETCH_ID) is False
        assert await object_store.get_fetch(FETCH_ID) is None

    async def test_a_truncated_document_is_not_intact(self, object_store: ObjectStore) -> None:
        await _store_fetch(object_store, FETCH_ID, DATA)
        await truncate_behind_the_back(object_store, "fetch", FETCH_ID, len(DATA) - 1)
        assert await object_store.fetch_intact(FETCH_ID) is False

    async def test_a_replaced_document_of_the_same_size_is_not_intact(
        self, object_store: ObjectStore
    ) -> None:
        await _store_fetch(object_store, FETCH_ID, DATA)
        flipped = DATA[:-1] + bytes([DATA[-1] ^ 0xFF])
        await replace_behind_the_back(object_store, "fetch", FETCH_ID, flipped)
        assert await object_store.fetch_intact(FETCH_ID) is False

    async def test_writing_a_damaged_document_again_seals_it_again(
        self, object_store: ObjectStore
    ) -> None:
        await _store_fetch(object_store, FETCH_ID, DATA)
        await truncate_behind_the_back(object_store, "fetch", FETCH_ID, 10)
        await _store_fetch(object_store, FETCH_ID, DATA)
        assert await object_store.fetch_intact(FETCH_ID) is True
        assert await object_store.get_fetch(FETCH_ID) == DATA

    async def test_fetch_documents_and_push_mpacks_are_separate(
        self, object_store: ObjectStore
    ) -> None:
        await _store_fetch(object_store, MPACK_ID, DATA)
        assert await object_store.get_mpack(MPACK_ID) is None
        assert await object_store.has_mpack(MPACK_ID) is False
        await object_store.put_mpack(OTHER_MPACK_ID, DATA)
        assert await object_store.get_fetch(OTHER_MPACK_ID) is None
        assert await object_store.fetch_intact(OTHER_MPACK_ID) is False
