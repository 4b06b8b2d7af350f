"""The old way, kept as a yardstick: one storage GET per blob from per-object keys.

Before fetchcore, the hub copied every blob of every push to its own key (a
background job) and answered a fetch with one ``get_object`` per blob. The demo
and the benchmarks run this beside fetchcore, on the same stack, to show what
fetchcore saves. It is not meant for serving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping

from fetchcore import IndexRepo, ObjectStore
from fetchcore.content import decode_verified
from fetchcore.ids import content_id
from fetchcore.wire import OutgoingBlob, encode_fetch


async def write_object_keys(
    store: ObjectStore, blobs: Mapping[str, bytes], *, in_flight: int = 32
) -> None:
    """The old per-push background job: every blob under its own per-object key."""
    gate = asyncio.Semaphore(in_flight)

    async def put(object_id: str, data: bytes) -> None:
        async with gate:
            await store.put_object(object_id, data)

    await asyncio.gather(*(put(object_id, data) for object_id, data in blobs.items()))


async def per_object_fetch(
    index: IndexRepo,
    store: ObjectStore,
    *,
    repo_id: str,
    want: Collection[str],
    in_flight: int = 1,
) -> tuple[str, int]:
    """Serve a full fetch of ``want`` the old way; return (fetch mpack id, bytes read).

    Resolves the commits and snapshots through the index like fetchcore, then
    issues one verified ``get_object`` per blob, ``in_flight`` at a time.
    """
    commits = list(await index.resolve_commits(repo_id, want, ()))
    snapshots = await index.load_snapshots(repo_id, {c.snapshot_id for c in commits})
    object_ids = sorted({o for snapshot in snapshots for o in snapshot.object_ids})
    gate = asyncio.Semaphore(in_flight)

    async def get(object_id: str) -> OutgoingBlob:
        async with gate:
            data = await store.get_object(object_id)
        if data is None:
            raise LookupError(f"no per-object key for {object_id}")
        return OutgoingBlob(object_id, decode_verified(object_id, data, "identity", len(data)))

    blobs = await asyncio.gather(*(get(object_id) for object_id in object_ids))
    document = encode_fetch(commits, snapshots, blobs, await index.branch_heads(repo_id))
    mpack_id = content_id(document)
    # Where fetch documents live (apart from push mpacks), as fetchcore writes them.
    upload = await store.open_fetch(mpack_id)
    try:
        await upload.write(document)
        await upload.commit()
    except BaseException:
        await upload.abort()
        raise
    return mpack_id, sum(len(blob.content) for blob in blobs)
