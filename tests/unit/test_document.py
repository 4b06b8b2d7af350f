"""The document writer: a fetch document streamed into an upload, committed only when whole."""

from __future__ import annotations

import pytest
from fetchcore.adapters.memory import MemoryObjectStore

from fetchcore import Commit, FetchError, Snapshot, wire
from fetchcore.document import CHUNK_BYTES, DocumentWriter
from fetchcore.testing import blob_id, fake_id
from fetchcore.wire import OutgoingBlob, canonical_value, decode_fetch

FETCH_ID = fake_id("document")
SMALL, LARGE = b"small blob", bytes(range(256)) * (CHUNK_BYTES // 128)


async def writer_for(store: MemoryObjectStore, blob_count: int) -> DocumentWriter:
    writer = DocumentWriter(await store.open_fetch(FETCH_ID), blob_count)
    await writer.start(wire.fetch_head(wire.pack_commits([]), wire.pack_snapshots([]), blob_count))
    return writer


class TestDocumentWriter:
    async def test_blobs_whole_and_streamed_make_one_document_in_the_order_written(self) -> None:
        store = MemoryObjectStore()
        writer = await writer_for(store, 2)
        async with writer.streamed(blob_id(LARGE), blob_id(LARGE), "identity", len(LARGE)) as write:
            await write(LARGE[: len(LARGE) // 2])
            await write(LARGE[len(LARGE) // 2 :])
        await writer.add_encoded(
            [blob_id(SMALL)], wire.encode_blobs([OutgoingBlob(blob_id(SMALL), SMALL)])
        )
        size = await writer.finish(wire.fetch_tail({"main": "c"}))
        document = store.fetches[FETCH_ID]
        assert size == len(document)
        blobs = decode_fetch(document)["blobs"]
        assert [(b["object_id"], b["content"]) for b in blobs] == [
            (blob_id(LARGE), LARGE),
            (blob_id(SMALL), SMALL),
        ]

    async def test_a_document_missing_a_blob_is_refused_and_not_committed(self) -> None:
        store = MemoryObjectStore()
        writer = await writer_for(store, 2)
        await writer.add_encoded(
            [blob_id(SMALL)], wire.encode_blobs([OutgoingBlob(blob_id(SMALL), SMALL)])
        )
        with pytest.raises(FetchError):
            await writer.finish(wire.fetch_tail({}))
        assert store.fetches == {}

    async def test_a_streamed_blob_shorter_than_announced_is_refused(self) -> None:
        writer = await writer_for(MemoryObjectStore(), 1)
        with pytest.raises(FetchError):
            async with writer.streamed(blob_id(SMALL), blob_id(SMALL), "identity", 11) as write:
                await write(SMALL)

    async def test_a_streamed_blob_longer_than_announced_is_refused(self) -> None:
        writer = await writer_for(MemoryObjectStore(), 1)
        with pytest.raises(FetchError):
            async with writer.streamed(blob_id(SMALL), blob_id(SMALL), "identity", 9) as write:
                await write(SMALL)

    async def test_a_streamed_blob_of_exactly_its_length_is_accepted(self) -> None:
        store = MemoryObjectStore()
        writer = await writer_for(store, 1)
        async with writer.streamed(blob_id(SMALL), blob_id(SMALL), "identity", 10) as write:
            await write(SMALL)
        await writer.finish(wire.fetch_tail({}))
        assert decode_fetch(store.fetches[FETCH_ID])["blobs"][0]["content"] == SMALL


class TestPackedHead:
    def test_commits_and_snapshots_pack_as_their_canonical_values(self) -> None:
        snapshots = [
            Snapshot(
                fake_id(f"s{i}"), {f"p{(i * 7 + j) % 13}": blob_id(bytes([j])) for j in range(9)}
            )
            for i in (3, 1, 2)
        ]
        commits = [
            Commit("c1", "s1", ("p",), {"message": "m", "z": {"b": 1, "a": [{"y": 2, "x": 3}]}})
        ]
        ordered = sorted(snapshots, key=lambda s: s.snapshot_id)
        expected_snapshots = [canonical_value(s.to_wire()) for s in ordered]
        assert b"".join(wire.pack_snapshots(snapshots)) == wire._pack(expected_snapshots)
        assert b"".join(wire.pack_commits(commits)) == wire._pack(
            [canonical_value(c.to_wire()) for c in commits]
        )

    def test_a_manifest_over_a_chunk_packs_in_pieces_that_join_to_its_canonical_value(
        self,
    ) -> None:
        big = Snapshot(
            fake_id("big"), {f"f{i:06d}": blob_id(str(i).encode()) for i in range(20_000)}
        )
        pieces = wire.pack_snapshots([big])
        assert len(pieces) > 1
        assert b"".join(pieces) == wire._pack([canonical_value(big.to_wire())])

    def test_one_large_manifest_never_sits_in_one_piece(self) -> None:
        big = Snapshot(
            fake_id("big"), {f"f{i:07d}": blob_id(str(i).encode()) for i in range(80_000)}
        )
        pieces = wire.pack_snapshots([big])
        assert sum(map(len, pieces)) > 5 * wire._PACKED_CHUNK
        assert max(map(len, pieces)) < 2 * wire._PACKED_CHUNK
