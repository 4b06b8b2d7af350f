"""The ObjectStore contract: every backend in tests/backends.py must pass all of it."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Awaitable, Callable

import pytest

from fetchcore import InvalidRequestError, ObjectStore
from fetchcore.ids import content_id
from fetchcore.testing import blob_id

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


class TestRoundTrips:
    async def test_an_mpack_reads_back_whole(self, object_store: ObjectStore) -> None:
        await object_store.put_mpack(MPACK_ID, DATA)
        assert await object_store.get_mpack(MPACK_ID) == DATA
        assert await object_store.has_mpack(MPACK_ID) is True

    async def test_put_mpack_is_idempotent(self, object_store: ObjectStore) -> None:
        await object_store.put_mpack(MPACK_ID, DATA)
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
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: object_store.get_object(bad_id),
            lambda: object_store.put_object(bad_id, b"x"),
            lambda: object_store.get_mpack(bad_id),
            lambda: object_store.get_mpack_range(bad_id, 0, 1),
            lambda: object_store.put_mpack(bad_id, b"x"),
            lambda: object_store.has_mpack(bad_id),
            lambda: object_store.presign_mpack(bad_id, 60),
        ]
        for call in calls:
            with pytest.raises(InvalidRequestError):
                await call()

    async def test_a_bare_digest_is_not_an_mpack_id(self, object_store: ObjectStore) -> None:
        with pytest.raises(InvalidRequestError):
            await object_store.get_mpack(MPACK_ID.removeprefix("sha256:"))


class TestPresign:
    async def test_a_presigned_url_downloads_the_mpack(self, object_store: ObjectStore) -> None:
        await object_store.put_mpack(MPACK_ID, DATA)
        url = await object_store.presign_mpack(MPACK_ID, 300)
        if url is None:
            return  # the store cannot presign; None is its documented answer
        assert isinstance(url, str)
        if not url.startswith(("http://", "https://")):
            assert MPACK_ID in url
            return
        body = await asyncio.to_thread(_download, url)
        assert body == DATA


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        data: bytes = response.read()
        return data
