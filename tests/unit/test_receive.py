"""A push received in pieces gives what the whole push gives: the same mpack id, document,
cacheable blobs and index, or the same refusal; however the bytes are cut."""

from __future__ import annotations

import asyncio
import random
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import attrs
import msgpack
import pytest
from fetchcore.adapters.memory import MemoryIndexRepo, MemoryObjectStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fetchcore import InvalidMPackError, Policy, ingest_push
from fetchcore.blob_check import verify_all
from fetchcore.ids import content_id
from fetchcore.receive import PushReceiver
from fetchcore.testing import blob_entry, blob_id, commit_entry, snapshot_entry
from fetchcore.wire import encode_push, parse_push
from tests.unit.test_stream_parser import cut

REPO = "alice/stems"
MiB = 1 << 20


@st.composite
def pushes(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """A push of one or two commits over random blobs (some zstd, fields in any order),
    maybe with one blob's stored bytes damaged."""
    contents = draw(
        st.lists(st.binary(max_size=400) | st.builds(lambda n: b"z" * n, st.integers(0, 3000)))
    )
    order = draw(st.permutations(["object_id", "content", "encoding"]))
    blobs: list[dict[str, Any]] = []
    for content in contents:
        entry = blob_entry(content, encoding=draw(st.sampled_from(["zstd", "identity"])))
        blobs.append({key: entry[key] for key in order if key in entry})
    damaged = draw(st.booleans())
    if blobs and damaged:
        victim = blobs[draw(st.integers(0, len(blobs) - 1))]
        victim["content"] = bytes(victim["content"]) + b"!"
    manifest = {f"f{i}": blob_id(c) for i, c in enumerate(contents)}
    commits = [commit_entry("c1", "s1")]
    if draw(st.booleans()):
        commits.append(commit_entry("c2", "s1", ["c1"], message="again"))
    data = encode_push(
        commits=commits,
        snapshots=[snapshot_entry("s1", manifest)],
        blobs=blobs,
        branch_heads={"main": commits[-1]["commit_id"]},
    )
    return data, contents


chunk_sizes = st.lists(st.integers(1, 700), min_size=1, max_size=6) | st.just([1])
policies = st.builds(Policy, cache_max_bytes=st.sampled_from([0, 100, 5000]))


def received_whole(data: bytes, policy: Policy) -> Any:
    try:
        document = parse_push(data, policy)
        cached = verify_all(data, document.blobs, policy)
    except InvalidMPackError as error:
        return ("refused", error.entry)
    return content_id(data), len(data), document, cached


def received_in_pieces(data: bytes, policy: Policy, sizes: list[int], whole_blob_bytes: int) -> Any:
    receiver = PushReceiver(policy, whole_blob_bytes=whole_blob_bytes)
    try:
        for chunk in cut(data, sizes):
            receiver.admit(len(chunk))
            receiver.take(chunk)
        received = receiver.finish()
    except InvalidMPackError as error:
        return ("refused", error.entry)
    return received.mpack_id, received.size, received.document, received.cached


async def chunks_of(data: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    for chunk in cut(data, sizes):
        yield chunk


async def ingested(data: bytes | AsyncIterator[bytes], policy: Policy) -> Any:
    index, store = MemoryIndexRepo(), MemoryObjectStore()
    try:
        result = await ingest_push(index, store, repo_id=REPO, mpack=data, policy=policy)
    except InvalidMPackError as error:
        return ("refused", error.entry, store.mpacks, store.staging, index.commits)
    return (
        result,
        store.mpacks,
        store.staging,
        index.commits,
        index.locations,
        index.cached,
        index.heads,
    )


class TestSameAsWhole:
    @settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
    @given(pushes(), policies, chunk_sizes, st.integers(0, 500))
    def test_the_receiver_finds_what_the_whole_push_holds(
        self,
        push: tuple[bytes, list[bytes]],
        policy: Policy,
        sizes: list[int],
        whole_blob_bytes: int,
    ) -> None:
        data, _ = push
        expected = received_whole(data, policy)
        assert received_in_pieces(data, policy, sizes, whole_blob_bytes) == expected

    @settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
    @given(pushes(), policies, chunk_sizes)
    def test_ingest_stores_and_records_the_same(
        self, push: tuple[bytes, list[bytes]], policy: Policy, sizes: list[int]
    ) -> None:
        data, _ = push
        whole = asyncio.run(ingested(data, policy))
        streamed = attrs.evolve(policy, whole_push_bytes=0)
        assert asyncio.run(ingested(chunks_of(data, sizes), streamed)) == whole
        # Within whole_push_bytes, the pieces are joined and ingested as bytes are.
        joined = attrs.evolve(policy, whole_push_bytes=len(data))
        assert asyncio.run(ingested(chunks_of(data, sizes), joined)) == whole


class TestSizeLimit:
    def test_a_chunk_that_would_pass_the_limit_is_refused_before_it_is_taken(self) -> None:
        receiver = PushReceiver(Policy(max_push_bytes=10))
        receiver.admit(10)
        with pytest.raises(InvalidMPackError, match="over the limit of 10 bytes"):
            receiver.admit(1)


def repeated_blob_push(copies: int, blob: bytes) -> bytes:
    """A push of one commit and its snapshot, and ``blob`` carried ``copies`` times."""
    packed_entry = msgpack.packb(blob_entry(blob, encoding="zstd"), use_bin_type=True)
    return b"".join(
        [
            b"\x83",
            msgpack.packb("commits") + msgpack.packb([commit_entry("c1", "s1")]),
            msgpack.packb("snapshots") + msgpack.packb([snapshot_entry("s1", {})]),
            msgpack.packb("blobs") + b"\xdd" + copies.to_bytes(4, "big"),
            packed_entry * copies,
        ]
    )


class TestFlatMemory:
    @pytest.mark.parametrize("copies", [4, 16])
    def test_receiving_holds_about_one_chunk_whatever_the_push_size(self, copies: int) -> None:
        data = repeated_blob_push(copies, random.Random(1).randbytes(4 * MiB))
        receiver = PushReceiver(Policy())
        view = memoryview(data)
        tracemalloc.start()
        try:
            for start in range(0, len(data), MiB):
                chunk = bytes(view[start : start + MiB])
                receiver.admit(len(chunk))
                receiver.take(chunk)
                del chunk
            received = receiver.finish()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert received.size == len(data) > copies * 4 * MiB
        assert len(received.document.blobs) == copies
        assert peak < 6 * MiB  # a 1 MiB chunk, its copy in the parser, pieces; not a 4 MiB blob
