"""The wrappers (recording, faults, pass-through) carry the fetch-document methods too."""

from __future__ import annotations

import pytest
from fetchcore.adapters.faults import Faults, FaultyObjectStore
from fetchcore.adapters.memory import MemoryObjectStore
from fetchcore.adapters.recording import Call, RecordingObjectStore
from fetchcore.adapters.wrapping import ObjectStoreWrapper

from fetchcore import ObjectStore, ObjectStoreError
from fetchcore.ids import content_id
from fetchcore.ports import FetchUpload

FETCH_ID = content_id(b"fetch")
DOCUMENT = b"a fetch document"


async def _store_fetch(store: ObjectStore) -> None:
    upload = await store.open_fetch(FETCH_ID)
    await upload.write(DOCUMENT[:5])
    await upload.write(DOCUMENT[5:])
    await upload.commit()


@pytest.mark.parametrize(
    "wrap",
    [RecordingObjectStore, FaultyObjectStore, ObjectStoreWrapper],
    ids=["recording", "faults", "wrapping"],
)
async def test_every_wrapper_passes_fetch_documents_through(wrap: type) -> None:
    inner = MemoryObjectStore()
    store = wrap(inner)
    assert isinstance(store, ObjectStore)
    await _store_fetch(store)
    assert inner.fetches == {FETCH_ID: DOCUMENT}
    assert await store.fetch_intact(FETCH_ID) is True
    assert await store.get_fetch(FETCH_ID) == DOCUMENT
    assert await store.presign_fetch(FETCH_ID, 60) == await inner.presign_fetch(FETCH_ID, 60)
    assert await store.has_mpack(FETCH_ID) is False


async def test_the_recording_store_records_the_upload_step_by_step() -> None:
    store = RecordingObjectStore(MemoryObjectStore())
    await _store_fetch(store)
    await store.fetch_intact(FETCH_ID)
    assert store.calls == [
        Call("open_fetch", (FETCH_ID,)),
        Call("fetch_write", (FETCH_ID, 5)),
        Call("fetch_write", (FETCH_ID, len(DOCUMENT) - 5)),
        Call("fetch_commit", (FETCH_ID,)),
        Call("fetch_intact", (FETCH_ID,)),
    ]


async def _write_and_commit(upload: FetchUpload) -> None:
    await upload.write(DOCUMENT)
    await upload.commit()


@pytest.mark.parametrize("operation", ["fetch_write", "fetch_commit"])
async def test_faults_fail_a_write_or_a_commit_and_abort_still_cleans_up(operation: str) -> None:
    inner = MemoryObjectStore()
    store = FaultyObjectStore(inner, {operation: Faults(error=1.0)})
    upload = await store.open_fetch(FETCH_ID)
    with pytest.raises(ObjectStoreError, match="injected"):
        await _write_and_commit(upload)
    await upload.abort()
    assert inner.fetches == {}
    assert store.injected[(operation, "error")] == 1
