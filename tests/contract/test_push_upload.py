"""The StagedPushes contract: every store in tests/backends.py stages a push received in
pieces, makes it the mpack under its id on commit, and leaves nothing staged behind."""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import Sequence

import pytest
from fetchcore.adapters.faults import Faults, FaultyObjectStore
from fetchcore.adapters.filesystem import FilesystemObjectStore
from fetchcore.adapters.memory import MemoryObjectStore
from hypothesis import given, settings
from hypothesis import strategies as st

from fetchcore import InvalidRequestError, ObjectStore, ObjectStoreError, PushUpload, StagedPushes
from fetchcore.ids import content_id
from tests.backends import (
    cancel_while_writing,
    replace_behind_the_back,
    staged_push_leftovers,
    truncate_behind_the_back,
)

SMALL = bytes(range(256)) * 40  # 10,240 bytes: below any part size
CHUNK = bytes(range(256)) * 4096  # 1 MiB
LARGE_CHUNKS = 20  # 20 MiB: several parts of any multipart size, and a short last part
NEVER_STORED = content_id(b"never stored")
DAY_S = 24 * 3600.0


def _pieces(size: str) -> list[bytes]:
    """The chunks of a push of the named size (as the core would write them)."""
    return {"empty": [], "small": [SMALL[:1000], SMALL[1000:]], "large": [CHUNK] * LARGE_CHUNKS}[
        size
    ]


async def _staged(store: ObjectStore, pieces: Sequence[bytes]) -> PushUpload:
    upload = await store.open_push()
    for piece in pieces:
        await upload.write(piece)
        await asyncio.sleep(0)  # let parts go out, as parsing between chunks would
    return upload


async def _push(store: ObjectStore, pieces: Sequence[bytes]) -> str:
    """Stage ``pieces`` and commit them under their id; returns the id."""
    upload = await _staged(store, pieces)
    mpack_id = content_id(b"".join(pieces))
    await upload.commit(mpack_id)
    return mpack_id


async def _write_and_commit(upload: PushUpload, pieces: Sequence[bytes], mpack_id: str) -> None:
    for piece in pieces:
        await upload.write(piece)
    await upload.commit(mpack_id)


def test_every_store_stages_pushes(object_store: ObjectStore) -> None:
    assert isinstance(object_store, StagedPushes)


class TestCommit:
    @pytest.mark.parametrize("size", ["empty", "small", "large"])
    async def test_a_committed_push_is_the_mpack_and_nothing_stays_staged(
        self, object_store: ObjectStore, size: str
    ) -> None:
        data = b"".join(_pieces(size))
        mpack_id = await _push(object_store, _pieces(size))
        assert await object_store.get_mpack(mpack_id) == data
        assert await object_store.has_mpack(mpack_id) is True
        assert await staged_push_leftovers(object_store) == []

    async def test_a_large_push_reads_back_in_ranges_across_part_boundaries(
        self, object_store: ObjectStore
    ) -> None:
        data = CHUNK * LARGE_CHUNKS
        mpack_id = await _push(object_store, _pieces("large"))
        for boundary in (5 * len(CHUNK), 8 * len(CHUNK), 16 * len(CHUNK)):
            start, end = boundary - 100, boundary + 100
            assert await object_store.get_mpack_range(mpack_id, start, end) == data[start:end]
        tail = len(data) - 10
        assert await object_store.get_mpack_range(mpack_id, tail, tail + 99) == data[tail:]

    async def test_staged_bytes_are_not_an_mpack_before_commit(
        self, object_store: ObjectStore
    ) -> None:
        upload = await _staged(object_store, _pieces("large"))
        mpack_id = content_id(CHUNK * LARGE_CHUNKS)
        assert await object_store.get_mpack(mpack_id) is None
        assert await object_store.has_mpack(mpack_id) is False
        await upload.commit(mpack_id)
        assert await object_store.has_mpack(mpack_id) is True

    @pytest.mark.parametrize("size", ["small", "large"])
    @pytest.mark.parametrize("damage", ["replaced", "truncated"])
    async def test_commit_over_a_damaged_copy_repairs_it(
        self, object_store: ObjectStore, size: str, damage: str
    ) -> None:
        data = b"".join(_pieces(size))
        mpack_id = content_id(data)
        await object_store.put_mpack(mpack_id, data)
        if damage == "replaced":  # same size, other bytes, written behind the store's back
            flipped = bytes([data[0] ^ 0xFF]) + data[1:]
            await replace_behind_the_back(object_store, "mpack", mpack_id, flipped)
        else:
            await truncate_behind_the_back(object_store, "mpack", mpack_id, 100)
        assert await object_store.get_mpack(mpack_id) != data  # the damage is real
        await _push(object_store, _pieces(size))
        assert await object_store.get_mpack(mpack_id) == data
        assert await staged_push_leftovers(object_store) == []

    @pytest.mark.parametrize("size", ["small", "large"])
    async def test_commit_of_an_mpack_stored_intact_keeps_it_and_drops_the_staging(
        self, object_store: ObjectStore, size: str
    ) -> None:
        data = b"".join(_pieces(size))
        mpack_id = content_id(data)
        await object_store.put_mpack(mpack_id, data)
        await _push(object_store, _pieces(size))
        assert await object_store.get_mpack(mpack_id) == data
        assert await staged_push_leftovers(object_store) == []

    async def test_a_push_committed_twice_over_is_stored_once(
        self, object_store: ObjectStore
    ) -> None:
        first, second = await asyncio.gather(
            _push(object_store, _pieces("large")), _push(object_store, _pieces("large"))
        )
        assert first == second
        assert await object_store.get_mpack(first) == CHUNK * LARGE_CHUNKS
        assert await staged_push_leftovers(object_store) == []

    async def test_a_committed_upload_refuses_more(self, object_store: ObjectStore) -> None:
        upload = await _staged(object_store, _pieces("small"))
        await upload.commit(content_id(SMALL))
        with pytest.raises(InvalidRequestError):
            await upload.write(b"late")
        with pytest.raises(InvalidRequestError):
            await upload.commit(content_id(SMALL))
        await upload.abort()  # harmless after commit
        assert await object_store.get_mpack(content_id(SMALL)) == SMALL


class TestFailures:
    @pytest.mark.parametrize("size", ["empty", "small", "large"])
    async def test_abort_leaves_nothing_and_is_safe_twice(
        self, object_store: ObjectStore, size: str
    ) -> None:
        upload = await _staged(object_store, _pieces(size))
        await upload.abort()
        await upload.abort()
        assert await staged_push_leftovers(object_store) == []
        assert await object_store.has_mpack(content_id(b"".join(_pieces(size)))) is False

    async def test_an_aborted_upload_refuses_writes_and_commit(
        self, object_store: ObjectStore
    ) -> None:
        upload = await _staged(object_store, _pieces("small"))
        await upload.abort()
        with pytest.raises(InvalidRequestError):
            await upload.write(b"late")
        with pytest.raises(InvalidRequestError):
            await upload.commit(content_id(SMALL))
        assert await object_store.has_mpack(content_id(SMALL)) is False
        assert await staged_push_leftovers(object_store) == []

    @pytest.mark.parametrize("size", ["small", "large"])
    async def test_a_commit_under_a_malformed_id_fails_and_leaves_nothing(
        self, object_store: ObjectStore, size: str
    ) -> None:
        upload = await _staged(object_store, _pieces(size))
        with pytest.raises(InvalidRequestError):
            await upload.commit("sha256:../../etc/passwd")
        assert await staged_push_leftovers(object_store) == []
        await upload.abort()  # the core aborts after any failure: still fine

    @pytest.mark.parametrize("size", ["small", "large"])
    async def test_an_injected_commit_fault_leaves_nothing(
        self, object_store: ObjectStore, size: str
    ) -> None:
        faulty = FaultyObjectStore(object_store, {"push_commit": Faults(error=1.0)})
        upload = await _staged(faulty, _pieces(size))
        mpack_id = content_id(b"".join(_pieces(size)))
        with pytest.raises(ObjectStoreError):
            await upload.commit(mpack_id)
        assert faulty.injected[("push_commit", "error")] == 1
        assert await staged_push_leftovers(object_store) == []
        assert await object_store.has_mpack(mpack_id) is False

    async def test_cancellation_mid_write_then_abort_leaves_nothing(
        self, object_store: ObjectStore
    ) -> None:
        await cancel_while_writing(await object_store.open_push(), CHUNK)
        assert await staged_push_leftovers(object_store) == []


class TestSweep:
    @pytest.mark.parametrize("size", ["small", "large"])
    async def test_sweep_removes_what_a_crashed_ingest_left(
        self, object_store: ObjectStore, size: str
    ) -> None:
        await _staged(object_store, _pieces(size))  # never committed nor aborted: a crash
        left = await staged_push_leftovers(object_store)
        if size == "large":
            assert left != []  # the bytes went somewhere: the sweep has work to do
        assert await object_store.sweep_staging(0) == len(left)
        assert await staged_push_leftovers(object_store) == []

    async def test_sweep_leaves_young_staging_alone(self, object_store: ObjectStore) -> None:
        upload = await _staged(object_store, _pieces("large"))
        left = await staged_push_leftovers(object_store)
        assert await object_store.sweep_staging(DAY_S) == 0
        assert await staged_push_leftovers(object_store) == left
        mpack_id = content_id(CHUNK * LARGE_CHUNKS)
        await upload.commit(mpack_id)  # the running ingest finishes undisturbed
        assert await object_store.get_mpack(mpack_id) == CHUNK * LARGE_CHUNKS

    async def test_a_push_swept_while_open_fails_to_commit_and_leaves_nothing(
        self, object_store: ObjectStore
    ) -> None:
        upload = await _staged(object_store, _pieces("large"))
        assert await object_store.sweep_staging(0) == 1
        mpack_id = content_id(CHUNK * LARGE_CHUNKS + SMALL)
        with pytest.raises(ObjectStoreError):
            await _write_and_commit(upload, [SMALL], mpack_id)
        await upload.abort()
        assert await staged_push_leftovers(object_store) == []
        assert await object_store.has_mpack(mpack_id) is False

    async def test_sweep_leaves_committed_mpacks_alone(self, object_store: ObjectStore) -> None:
        mpack_id = await _push(object_store, _pieces("large"))
        assert await object_store.sweep_staging(0) == 0
        assert await object_store.get_mpack(mpack_id) == CHUNK * LARGE_CHUNKS

    @pytest.mark.parametrize("age", [-1.0, float("nan"), float("inf")])
    async def test_a_bad_age_is_refused(self, object_store: ObjectStore, age: float) -> None:
        with pytest.raises(InvalidRequestError):
            await object_store.sweep_staging(age)


@settings(max_examples=30, deadline=None)
@given(
    data=st.binary(max_size=3000),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=6),
    local=st.sampled_from(["memory", "filesystem"]),
)
def test_however_a_push_is_cut_into_pieces_it_reads_back_whole(
    data: bytes, cuts: list[int], local: str
) -> None:
    bounds = sorted({0, len(data), *(min(cut, len(data)) for cut in cuts)})
    pieces = [data[start:end] for start, end in itertools.pairwise(bounds)]

    async def check(store: ObjectStore) -> None:
        mpack_id = await _push(store, pieces)
        assert mpack_id == content_id(data)
        assert await store.get_mpack(mpack_id) == data
        assert await staged_push_leftovers(store) == []

    with tempfile.TemporaryDirectory() as root:
        local_store = MemoryObjectStore() if local == "memory" else FilesystemObjectStore(root)
        asyncio.run(check(local_store))
