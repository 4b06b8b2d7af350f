"""The hub's original design test (FN-1 … FN-7), through fetchcore's API, on every stack.

Each scenario seeds the index the way the seed did (rows saying "this object is
in that mpack", without byte offsets), then asserts on what the store was asked.
"""

from __future__ import annotations

import pytest

from fetchcore import FetchNotIndexedError, IndexBatch, serve_fetch
from fetchcore.testing import blob_id, fake_id
from fetchcore.wire import decode_fetch
from tests.conftest import Stack
from tests.scenarios.seeding import index_in_mpack, make_commit, put_mpack_of

REPO = "gabriel/repo"


async def served_blobs(stack: Stack, mpack_id: str) -> dict[str, bytes]:
    data = await stack.store.inner.get_fetch(mpack_id)
    assert data is not None, "the fetch document is not in the store"
    return {b["object_id"]: bytes(b["content"]) for b in decode_fetch(data)["blobs"]}


async def test_fn1_content_cache_served_without_mpack_get(stack: Stack) -> None:
    raw = b"cached content"
    oid = blob_id(raw)
    await stack.index.record(REPO, IndexBatch(cached=[(oid, raw)]))
    mpack_id = await put_mpack_of(stack.store.inner, {oid: raw})
    await index_in_mpack(stack.index, REPO, oid, mpack_id)
    commit = await make_commit(stack.index, REPO, manifest={"cached.txt": oid}, seed="fn1")

    result = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commit.commit_id])

    assert result.blob_count == 1
    assert stack.store.ids_of("get_object") == [], "a cache hit must not trigger a per-object GET"
    assert stack.store.ids_of("get_mpack") == [], "a cache hit must not trigger an mpack GET"
    assert stack.store.ids_of("get_mpack_range") == []
    assert result.stats.cache_hits == 1


async def test_fn2_object_served_from_mpack_no_per_object_key(stack: Stack) -> None:
    raw = b"mpack-only content"
    oid = blob_id(raw)
    mpack_id = await put_mpack_of(stack.store.inner, {oid: raw})
    await index_in_mpack(stack.index, REPO, oid, mpack_id)
    commit = await make_commit(stack.index, REPO, manifest={"f.txt": oid}, seed="fn2")

    result = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commit.commit_id])

    assert result.blob_count == 1
    assert result.mpack_url is not None, "should return a presigned mpack URL"
    assert stack.store.ids_of("get_object") == [], "the mpack covers the object"
    assert mpack_id in stack.store.ids_of("get_mpack"), "must fetch the covering mpack"
    assert (await served_blobs(stack, result.mpack_id))[oid] == raw


async def test_fn3_two_mpacks_each_fetched_once(stack: Stack) -> None:
    raw_a, raw_b = b"object from mpack A", b"object from mpack B"
    oid_a, oid_b = blob_id(raw_a), blob_id(raw_b)
    mpack_a = await put_mpack_of(stack.store.inner, {oid_a: raw_a})
    mpack_b = await put_mpack_of(stack.store.inner, {oid_b: raw_b})
    await index_in_mpack(stack.index, REPO, oid_a, mpack_a)
    await index_in_mpack(stack.index, REPO, oid_b, mpack_b)
    commit = await make_commit(
        stack.index, REPO, manifest={"a.txt": oid_a, "b.txt": oid_b}, seed="fn3"
    )

    result = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commit.commit_id])

    assert result.blob_count == 2
    assert stack.store.ids_of("get_object") == [], "no per-object GETs"
    assert sorted(stack.store.ids_of("get_mpack")) == sorted([mpack_a, mpack_b])
    assert result.stats.mpack_gets == 2


async def test_fn4_missing_mpack_falls_back_to_per_object_get(stack: Stack) -> None:
    raw = b"fallback content"
    oid = blob_id(raw)
    ghost_mpack_id = fake_id("ghost-mpack")
    await index_in_mpack(stack.index, REPO, oid, ghost_mpack_id)
    await stack.store.inner.put_object(oid, raw)
    commit = await make_commit(stack.index, REPO, manifest={"f.txt": oid}, seed="fn4")

    result = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commit.commit_id])

    assert result.blob_count == 1
    assert ghost_mpack_id in stack.store.ids_of("get_mpack"), "attempted the mpack GET"
    assert oid in stack.store.ids_of("get_object"), "fell back to the per-object GET"
    assert (await served_blobs(stack, result.mpack_id))[oid] == raw


async def test_fn5_unindexed_object_raises_fetch_not_indexed_error(stack: Stack) -> None:
    raw = b"not indexed yet"
    oid = blob_id(raw)
    commit = await make_commit(stack.index, REPO, manifest={"f.txt": oid}, seed="fn5")

    with pytest.raises(FetchNotIndexedError) as raised:
        await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commit.commit_id])

    assert raised.value.object_ids == (oid,)
    assert stack.store.reads == [], "the gate comes before any storage GET"
    assert stack.store.ids_of("put_mpack") == []


async def test_fn6_mixed_sources_all_merged(stack: Stack) -> None:
    raw_cached, raw_mpack, raw_legacy = b"in content_cache", b"in mpack storage", b"in per-object"
    oid_cached, oid_mpack, oid_legacy = blob_id(raw_cached), blob_id(raw_mpack), blob_id(raw_legacy)
    await stack.index.record(REPO, IndexBatch(cached=[(oid_cached, raw_cached)]))
    mpack_id = await put_mpack_of(stack.store.inner, {oid_mpack: raw_mpack})
    await index_in_mpack(stack.index, REPO, oid_mpack, mpack_id)
    await index_in_mpack(stack.index, REPO, oid_legacy, fake_id("ghost"))
    await stack.store.inner.put_object(oid_legacy, raw_legacy)
    cache_mpack_id = await put_mpack_of(stack.store.inner, {oid_cached: raw_cached})
    await index_in_mpack(stack.index, REPO, oid_cached, cache_mpack_id)
    manifest = {"cached.txt": oid_cached, "mpack.txt": oid_mpack, "legacy.txt": oid_legacy}
    commit = await make_commit(stack.index, REPO, manifest=manifest, seed="fn6")

    result = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commit.commit_id])

    assert result.blob_count == 3
    served = await served_blobs(stack, result.mpack_id)
    assert served == {oid_cached: raw_cached, oid_mpack: raw_mpack, oid_legacy: raw_legacy}
    object_gets = stack.store.ids_of("get_object")
    assert oid_cached not in object_gets
    assert oid_mpack not in object_gets
    assert oid_legacy in object_gets
    assert cache_mpack_id not in stack.store.ids_of("get_mpack")


async def test_fn7_zstd_compressed_mpack_objects_decompressed(stack: Stack) -> None:
    raw = b"decompressed object content for fn7"
    oid = blob_id(raw)
    mpack_id = await put_mpack_of(stack.store.inner, {oid: raw}, encoding="zstd")
    await index_in_mpack(stack.index, REPO, oid, mpack_id)
    commit = await make_commit(stack.index, REPO, manifest={"file.txt": oid}, seed="fn7")

    result = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commit.commit_id])

    assert result.blob_count == 1
    served = await served_blobs(stack, result.mpack_id)
    assert oid in served, "object missing from the fetch mpack"
    assert served[oid] == raw, "the fetch mpack must hold the decompressed bytes"
