"""The per-object yardstick writes its fetch document where fetch documents live."""

from __future__ import annotations

from fetchcore.adapters.baseline import per_object_fetch, write_object_keys
from fetchcore.adapters.memory import MemoryIndexRepo, MemoryObjectStore

from fetchcore import Commit, IndexBatch, Snapshot
from fetchcore.testing import blob_id, commit_entry, fake_id, snapshot_entry

CONTENT = b"one blob"
COMMIT_ID, SNAPSHOT_ID = fake_id("commit"), fake_id("snapshot")


async def test_the_per_object_fetch_stores_a_sealed_fetch_document_not_a_push_mpack() -> None:
    index, store = MemoryIndexRepo(), MemoryObjectStore()
    batch = IndexBatch(
        commits=[Commit.from_wire(commit_entry(COMMIT_ID, SNAPSHOT_ID))],
        snapshots=[Snapshot.from_wire(snapshot_entry(SNAPSHOT_ID, {"a": blob_id(CONTENT)}))],
    )
    await index.record("repo", batch)
    await write_object_keys(store, {blob_id(CONTENT): CONTENT})
    fetch_id, bytes_read = await per_object_fetch(index, store, repo_id="repo", want=[COMMIT_ID])
    assert bytes_read == len(CONTENT)
    assert store.mpacks == {}
    assert await store.fetch_intact(fetch_id) is True
    document = await store.get_fetch(fetch_id)
    assert document is not None
    assert CONTENT in document
