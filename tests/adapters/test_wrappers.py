"""The wrappers (recording, faults, pass-through) carry the fetch-document and staged-push
methods too."""

from __future__ import annotations

import pytest
from fetchcore.adapters.faults import Faults, FaultyObjectStore
from fetchcore.adapters.memory import MemoryObjectStore
from fetchcore.adapters.recording import Call, RecordingObjectStore
from fetchcore.adapters.wrapping import ObjectStoreWrapper

from fetchcore import ObjectStore, ObjectStoreError
from fetchcore.ids import content_id
from fetchcore.ports import FetchUpload, PushUpload, retries_its_reads

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


PUSH = b"a push received in pieces"
PUSH_ID = content_id(PUSH)


async def _stage_push(store: ObjectStore) -> PushUpload:
    upload = await store.open_push()
    await upload.write(PUSH[:4])
    await upload.write(PUSH[4:])
    return upload


@pytest.mark.parametrize(
    "wrap",
    [RecordingObjectStore, FaultyObjectStore, ObjectStoreWrapper],
    ids=["recording", "faults", "wrapping"],
)
async def test_every_wrapper_passes_staged_pushes_and_the_sweep_through(wrap: type) -> None:
    inner = MemoryObjectStore()
    store = wrap(inner)
    upload = await _stage_push(store)
    assert isinstance(upload, PushUpload)
    await upload.commit(PUSH_ID)
    assert inner.mpacks == {PUSH_ID: PUSH}
    await _stage_push(store)  # left open: a crash
    assert await store.sweep_staging(0) == 1
    assert inner.staging == {}


async def test_the_recording_store_records_the_push_step_by_step() -> None:
    store = RecordingObjectStore(MemoryObjectStore())
    upload = await _stage_push(store)
    await upload.commit(PUSH_ID)
    await (await store.open_push()).abort()
    await store.sweep_staging(5.0)
    assert store.calls == [
        Call("open_push"),
        Call("push_write", (4,)),
        Call("push_write", (len(PUSH) - 4,)),
        Call("push_commit", (PUSH_ID,)),
        Call("open_push"),
        Call("push_abort"),
        Call("sweep_staging", (5.0,)),
    ]


async def test_a_push_write_fault_leaves_the_upload_for_the_caller_to_abort() -> None:
    inner = MemoryObjectStore()
    store = FaultyObjectStore(inner, {"push_write": Faults(error=1.0)})
    upload = await store.open_push()
    with pytest.raises(ObjectStoreError, match="injected"):
        await upload.write(PUSH)
    assert len(inner.staging) == 1  # still open: the caller aborts after a failure
    await upload.abort()
    assert inner.staging == {}
    assert store.injected[("push_write", "error")] == 1


async def test_a_push_commit_fault_fails_like_a_store_and_leaves_nothing_staged() -> None:
    inner = MemoryObjectStore()
    store = FaultyObjectStore(inner, {"push_commit": Faults(error=1.0)})
    upload = await _stage_push(store)
    with pytest.raises(ObjectStoreError, match="injected"):
        await upload.commit(PUSH_ID)
    assert inner.staging == {}
    assert inner.mpacks == {}


async def test_push_commit_faults_can_target_one_mpack() -> None:
    inner = MemoryObjectStore()
    other = content_id(b"other")
    store = FaultyObjectStore(inner, {"push_commit": Faults(error=1.0)}, targets={other})
    upload = await _stage_push(store)
    await upload.commit(PUSH_ID)  # not a target: no fault
    assert inner.mpacks == {PUSH_ID: PUSH}


class RetryingStore(MemoryObjectStore):
    """A store that retries its own reads, as the S3 store declares."""

    retries_reads = True


@pytest.mark.parametrize(
    "wrap", [RecordingObjectStore, ObjectStoreWrapper], ids=["recording", "wrapping"]
)
@pytest.mark.parametrize("inner_retries", [True, False])
def test_pass_through_wrappers_declare_what_their_store_declares(
    wrap: type, inner_retries: bool
) -> None:
    inner = RetryingStore() if inner_retries else MemoryObjectStore()
    assert retries_its_reads(wrap(inner)) is inner_retries


def test_the_fault_wrapper_never_declares_retries_its_faults_need_the_executors() -> None:
    assert retries_its_reads(FaultyObjectStore(RetryingStore())) is False
