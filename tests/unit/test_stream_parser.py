"""The push parser fed in pieces agrees with parse_push, however the bytes are cut."""

from __future__ import annotations

import random
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fetchcore import InvalidMPackError, Policy
from fetchcore.stream_parser import PushStreamParser
from fetchcore.testing import blob_entry, blob_id, commit_entry, snapshot_entry
from fetchcore.wire import BlobEntry, PushDocument, encode_push, parse_push
from tests.unit.test_wire import FUZZ_POLICY, KEYS, SAMPLE, mutations, values


class RecordingSink:
    """Keeps every blob's stored bytes as the parser hands them over, checking the order
    of calls (begin, pieces, end) as it goes."""

    def __init__(self) -> None:
        self.stored: list[bytes] = []
        self.streaming: list[bytes] | None = None

    def whole(self, index: int, entry: BlobEntry, stored: bytes) -> None:
        assert self.streaming is None
        assert index == len(self.stored)
        self.stored.append(stored)

    def begin(self, index: int, length: int, object_id: str | None, encoding: str | None) -> None:
        assert self.streaming is None
        assert index == len(self.stored)
        self.streaming = []

    def piece(self, stored: bytes) -> None:
        assert self.streaming is not None
        assert stored
        self.streaming.append(stored)

    def end(self, index: int, entry: BlobEntry) -> None:
        assert self.streaming is not None
        self.stored.append(b"".join(self.streaming))
        self.streaming = None


def cut(data: bytes, sizes: list[int]) -> list[bytes]:
    """``data`` in chunks of the given sizes (cycled), every chunk at least one byte."""
    chunks, position = [], 0
    for size in (sizes or [len(data) or 1]) * (len(data) + 1):
        if position >= len(data):
            break
        chunks.append(data[position : position + size])
        position += size
    return chunks


def parse_streamed(
    chunks: list[bytes], policy: Policy, whole_blob_bytes: int
) -> tuple[PushDocument, list[bytes]]:
    sink = RecordingSink()
    parser = PushStreamParser(policy, sink, whole_blob_bytes=whole_blob_bytes)
    for chunk in chunks:
        parser.feed(chunk)
    return parser.finish(), sink.stored


def outcome_of_bytes(data: bytes, policy: Policy) -> Any:
    try:
        document = parse_push(data, policy)
    except InvalidMPackError:
        return "refused"
    return document, [data[blob.offset : blob.end] for blob in document.blobs]


def outcome_streamed(chunks: list[bytes], policy: Policy, whole_blob_bytes: int) -> Any:
    try:
        return parse_streamed(chunks, policy, whole_blob_bytes)
    except InvalidMPackError:
        return "refused"


def assert_agree(data: bytes, sizes: list[int], whole_blob_bytes: int) -> None:
    expected = outcome_of_bytes(data, FUZZ_POLICY)
    assert outcome_streamed(cut(data, sizes), FUZZ_POLICY, whole_blob_bytes) == expected


chunk_sizes = st.lists(st.integers(1, 64), max_size=8) | st.just([1])


class TestAgreementWithParsePush:
    def test_the_sample_gives_the_same_document_in_one_byte_chunks(self) -> None:
        expected = outcome_of_bytes(SAMPLE, Policy())
        assert expected != "refused"
        for whole_blob_bytes in (0, 100, 1 << 20):
            assert parse_streamed(cut(SAMPLE, [1]), Policy(), whole_blob_bytes) == expected

    @settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.dictionaries(st.sampled_from(KEYS[:4]), values, max_size=4),
        chunk_sizes,
        st.integers(0, 100),
    )
    def test_documents_of_any_shape(
        self, document: dict[str, Any], sizes: list[int], whole_blob_bytes: int
    ) -> None:
        assert_agree(msgpack.packb(document, use_bin_type=True), sizes, whole_blob_bytes)

    @settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
    @given(st.integers(0, 2**64), chunk_sizes, st.integers(0, 300))
    def test_mutated_documents(self, seed: int, sizes: list[int], whole_blob_bytes: int) -> None:
        assert_agree(mutations(SAMPLE, random.Random(seed)), sizes, whole_blob_bytes)

    @settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(st.binary(max_size=300), max_size=5),
        st.permutations(["object_id", "content", "encoding"]),
        chunk_sizes,
        st.integers(0, 100),
    )
    def test_blob_fields_in_any_order(
        self, contents: list[bytes], order: list[str], sizes: list[int], whole_blob_bytes: int
    ) -> None:
        blobs = [{key: blob_entry(c, encoding="zstd")[key] for key in order} for c in contents]
        data = encode_push(
            commits=[commit_entry("c", "s")],
            snapshots=[snapshot_entry("s", {str(i): blob_id(c) for i, c in enumerate(contents)})],
            blobs=blobs,
            branch_heads={"main": "c"},
        )
        assert outcome_of_bytes(data, FUZZ_POLICY) != "refused"
        assert_agree(data, sizes, whole_blob_bytes)


class TestRefusals:
    def test_a_truncated_document_is_refused_at_the_end(self) -> None:
        parser = PushStreamParser(Policy(), RecordingSink())
        parser.feed(SAMPLE[:-1])
        with pytest.raises(InvalidMPackError, match="truncated"):
            parser.finish()

    def test_bytes_after_the_document_are_refused_as_they_arrive(self) -> None:
        parser = PushStreamParser(Policy(), RecordingSink())
        parser.feed(SAMPLE)
        with pytest.raises(InvalidMPackError, match="trailing bytes"):
            parser.feed(b"\x00")

    def test_a_blob_field_written_twice_is_refused_by_both_parsers(self) -> None:
        entry = msgpack.packb({"object_id": blob_id(b"a"), "content": b"a"}, use_bin_type=True)
        twice = b"\x83" + entry[1:] + msgpack.packb("content") + msgpack.packb(b"a")
        data = b"\x81" + msgpack.packb("blobs") + b"\x91" + twice
        with pytest.raises(InvalidMPackError, match="appears twice"):
            parse_push(data)
        with pytest.raises(InvalidMPackError, match="appears twice"):
            parse_streamed([data], Policy(), 0)

    def test_metadata_over_the_document_limit_is_refused_however_long_the_blobs(self) -> None:
        big = bytes(4096)
        data = encode_push(
            commits=[commit_entry("c", "s", message="m" * 2000)], blobs=[blob_entry(big)]
        )
        policy = Policy(max_document_bytes=3000)
        assert parse_streamed(cut(data, [512]), Policy(max_document_bytes=3000), 100)[1] == [big]
        too_much = encode_push(commits=[commit_entry("c", "s", message="m" * 4000)])
        with pytest.raises(InvalidMPackError, match="over the limit"):
            parse_streamed(cut(too_much, [512]), policy, 100)
