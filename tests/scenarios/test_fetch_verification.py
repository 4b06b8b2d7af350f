"""One hash per whole push mpack (SPEC §4.6), end to end on every stack.

A push mpack read whole whose bytes hash to its id is the document that ingest
verified blob by blob: one sha256 of it stands in for one per blob. A stored copy
that was damaged since (its bytes no longer match its id) has each blob checked on
its own, and only the bad blobs move on to their next source.
"""

from __future__ import annotations

import random

import pytest

from fetchcore import ObjectUnavailableError, ingest_push, serve_fetch
from fetchcore.ids import content_id
from fetchcore.testing import blob_id
from fetchcore.wire import decode_fetch, parse_push
from tests.conftest import Stack
from tests.scenarios.seeding import push_of

REPO = "alice/verified"
FILES = {f"f{i}": random.Random(i).randbytes(500) for i in range(6)}
DAMAGED = FILES["f2"]


async def pushed(stack: Stack, encoding: str) -> tuple[bytes, str]:
    data, commit = push_of("c", FILES, encoding=encoding)
    await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
    return data, commit


def damaged_copy(data: bytes, victim: bytes) -> bytes:
    """``data`` with the first byte of ``victim``'s stored content flipped."""
    (entry,) = [e for e in parse_push(data).blobs if e.object_id == blob_id(victim)]
    copy = bytearray(data)
    copy[entry.offset] ^= 0xFF
    return bytes(copy)


async def served_contents(stack: Stack, fetch_id: str) -> dict[str, bytes]:
    document = await stack.store.inner.get_fetch(fetch_id)
    assert document is not None
    return {blob["object_id"]: blob["content"] for blob in decode_fetch(document)["blobs"]}


@pytest.mark.parametrize("encoding", ["zstd", "identity"])
async def test_an_intact_push_mpack_is_verified_by_one_hash(stack: Stack, encoding: str) -> None:
    _, commit = await pushed(stack, encoding)
    result = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commit])
    assert result.stats.mpack_gets == 1
    assert result.stats.verified_whole_mpacks == 1
    assert await served_contents(stack, result.mpack_id) == {blob_id(c): c for c in FILES.values()}


async def test_a_damaged_stored_mpack_has_each_blob_checked(stack: Stack) -> None:
    data, commit = await pushed(stack, "identity")
    await stack.store.inner.put_mpack(content_id(data), damaged_copy(data, DAMAGED))
    await stack.store.inner.put_object(blob_id(DAMAGED), DAMAGED)
    stack.store.calls.clear()
    result = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commit])
    assert result.stats.verified_whole_mpacks == 0
    assert stack.store.ids_of("get_object") == [blob_id(DAMAGED)]
    assert await served_contents(stack, result.mpack_id) == {blob_id(c): c for c in FILES.values()}


async def test_a_damaged_blob_with_no_other_source_fails_alone(stack: Stack) -> None:
    data, commit = await pushed(stack, "identity")
    await stack.store.inner.put_mpack(content_id(data), damaged_copy(data, DAMAGED))
    with pytest.raises(ObjectUnavailableError) as raised:
        await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commit])
    assert raised.value.object_ids == (blob_id(DAMAGED),)
