"""The wire codec: exact spans, canonical output, and only InvalidMPackError on bad input."""

from __future__ import annotations

import os
import random
import struct
import tracemalloc
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fetchcore import InvalidMPackError, Policy
from fetchcore.model import Commit, Snapshot
from fetchcore.testing import blob_entry, blob_id, commit_entry, snapshot_entry
from fetchcore.wire import (
    OutgoingBlob,
    canonical_value,
    decode_fetch,
    encode_fetch,
    encode_push,
    pack_snapshots,
    parse_push,
)

CONTENTS = [b"", b"a", b"hello world" * 30, bytes(range(256)) * 300]


def sample_push() -> bytes:
    manifest = {f"f{i}": blob_id(c) for i, c in enumerate(CONTENTS)}
    return encode_push(
        commits=[commit_entry("c1", "s1", [], message="first", extra={"k": [1, 2]})],
        snapshots=[snapshot_entry("s1", manifest, directories=[])],
        blobs=[
            blob_entry(c, encoding="zstd" if i % 2 else "identity") for i, c in enumerate(CONTENTS)
        ],
        branch_heads={"main": "c1"},
    )


class TestParse:
    def test_every_blob_span_holds_its_stored_content(self) -> None:
        data = sample_push()
        document = parse_push(data)
        raw = msgpack.unpackb(data)
        assert len(document.blobs) == len(CONTENTS)
        for entry, raw_blob in zip(document.blobs, raw["blobs"], strict=True):
            assert data[entry.offset : entry.end] == raw_blob["content"]
            assert entry.object_id == raw_blob["object_id"]
            assert entry.encoding == raw_blob.get("encoding", "identity")

    def test_commits_snapshots_and_heads_come_through(self) -> None:
        document = parse_push(sample_push())
        assert [c.commit_id for c in document.commits] == ["c1"]
        assert document.commits[0].fields["extra"] == {"k": [1, 2]}
        assert [s.snapshot_id for s in document.snapshots] == ["s1"]
        assert document.branch_heads == {"main": "c1"}

    def test_bin_headers_of_every_width_give_exact_spans(self) -> None:
        contents = [b"x" * 10, b"y" * 300, b"z" * 70_000]
        data = encode_push(blobs=[blob_entry(c) for c in contents])
        for entry, content in zip(parse_push(data).blobs, contents, strict=True):
            assert data[entry.offset : entry.end] == content

    def test_missing_lists_and_maps_mean_empty(self) -> None:
        document = parse_push(msgpack.packb({}))
        assert (document.commits, document.snapshots, document.blobs) == ((), (), ())
        assert document.branch_heads == {}

    def test_unknown_keys_are_skipped(self) -> None:
        data = msgpack.packb({"future": [1, 2, {"x": b"y"}], "blobs": [blob_entry(b"a")]})
        assert len(parse_push(data).blobs) == 1

    def test_bare_hex_ids_are_accepted(self) -> None:
        data = encode_push(blobs=[blob_entry(b"a", object_id=blob_id(b"a", bare=True))])
        assert parse_push(data).blobs[0].object_id == blob_id(b"a", bare=True)


def document_with(**fields: Any) -> bytes:
    packed: bytes = msgpack.packb(fields, use_bin_type=True)
    return packed


MALFORMED = [
    (b"", None, "truncated"),
    (msgpack.packb([1, 2]), None, "not a map"),
    (document_with(commits={}), "commits", "must be a list"),
    (document_with(commits=None), "commits", "must be a list"),
    (document_with(commits=[{"commit_id": "c"}]), "commits[0].snapshot_id", "non-empty string"),
    (
        document_with(snapshots=[{"snapshot_id": "s", "manifest": {"f": "x"}}]),
        "snapshots[0].manifest['f']",
        "content id",
    ),
    (document_with(blobs=[{"content": b"a"}]), "blobs[0].object_id", "missing"),
    (document_with(blobs=[{"object_id": blob_id(b"a")}]), "blobs[0].content", "missing"),
    (
        document_with(blobs=[{"object_id": blob_id(b"a"), "content": "a"}]),
        "blobs[0].content",
        "must be bytes",
    ),
    (
        document_with(blobs=[{"object_id": "x", "content": b"a"}]),
        "blobs[0].object_id",
        "content id",
    ),
    (
        document_with(blobs=[{"object_id": blob_id(b"a"), "content": b"a", "encoding": "gzip"}]),
        "blobs[0].encoding",
        "unknown encoding",
    ),
    (document_with(blobs=[[]]), "blobs[0]", "must be a map"),
    (document_with(branch_heads=[]), "branch_heads", "must be a map"),
    (document_with(branch_heads={"main": 5}), "branch_heads['main']", "non-empty string"),
    (document_with(branch_heads={"ma\x00in": "c"}), "branch_heads['ma\\x00in']", "control"),
    (
        document_with(commits=[{"commit_id": "c\x00", "snapshot_id": "s"}]),
        "commits[0].commit_id",
        "control",
    ),
    (document_with(commits=[]) + b"\x00", None, "trailing bytes"),
    (msgpack.packb({1: []}), None, "not a string"),
]


class TestMalformed:
    @pytest.mark.parametrize(("data", "entry", "reason"), MALFORMED)
    def test_a_malformed_document_names_the_entry_and_the_problem(
        self, data: bytes, entry: str | None, reason: str
    ) -> None:
        with pytest.raises(InvalidMPackError) as raised:
            parse_push(data)
        assert raised.value.entry == entry
        assert reason in raised.value.reason

    def test_a_truncated_document_is_refused(self) -> None:
        data = sample_push()
        for cut in range(0, len(data), max(1, len(data) // 97)):
            with pytest.raises(InvalidMPackError):
                parse_push(data[:cut])

    def test_a_repeated_top_level_key_is_refused(self) -> None:
        data = b"\x82" + msgpack.packb("blobs") + b"\x90" + msgpack.packb("blobs") + b"\x90"
        with pytest.raises(InvalidMPackError, match="twice"):
            parse_push(data)

    def test_non_bytes_are_refused(self) -> None:
        with pytest.raises(InvalidMPackError):
            parse_push("text")  # type: ignore[arg-type]


class TestLimits:
    def test_a_document_over_the_size_limit_is_refused(self) -> None:
        with pytest.raises(InvalidMPackError, match="over the limit"):
            parse_push(sample_push(), Policy(max_document_bytes=100))

    def test_too_many_entries_are_refused(self) -> None:
        data = encode_push(blobs=[blob_entry(bytes([i])) for i in range(5)])
        with pytest.raises(InvalidMPackError, match="over the limit") as raised:
            parse_push(data, Policy(max_entries=4))
        assert raised.value.entry == "blobs"

    def test_a_manifest_over_its_limit_is_refused(self) -> None:
        manifest = {f"f{i}": blob_id(bytes([i])) for i in range(5)}
        data = encode_push(snapshots=[snapshot_entry("s", manifest)])
        with pytest.raises(InvalidMPackError, match="over the limit"):
            parse_push(data, Policy(max_manifest_entries=4, max_entries=4))

    def test_an_id_over_its_limit_is_refused(self) -> None:
        data = encode_push(commits=[commit_entry("c" * 100, "s")])
        with pytest.raises(InvalidMPackError, match="longer than"):
            parse_push(data, Policy(max_id_length=80))

    def test_a_huge_declared_array_is_refused_without_allocating(self) -> None:
        data = b"\x81" + msgpack.packb("commits") + b"\xdd" + struct.pack(">I", 2**32 - 1)
        with pytest.raises(InvalidMPackError, match="over the limit"):
            parse_push(data)

    def test_a_huge_declared_nested_array_is_refused(self) -> None:
        commit = b"\x83" + msgpack.packb("commit_id") + msgpack.packb("c")
        commit += msgpack.packb("snapshot_id") + msgpack.packb("s")
        commit += msgpack.packb("parent_ids") + b"\xdd" + struct.pack(">I", 2**31)
        data = b"\x81" + msgpack.packb("commits") + b"\x91" + commit
        with pytest.raises(InvalidMPackError):
            parse_push(data)

    def test_a_huge_declared_bin_is_refused(self) -> None:
        blob = b"\x82" + msgpack.packb("object_id") + msgpack.packb(blob_id(b"a"))
        blob += msgpack.packb("content") + b"\xc6" + struct.pack(">I", 2**32 - 1) + b"abc"
        data = b"\x81" + msgpack.packb("blobs") + b"\x91" + blob
        with pytest.raises(InvalidMPackError):
            parse_push(data)

    def test_deep_nesting_is_refused(self) -> None:
        deep: Any = 1
        for _ in range(2_000):
            deep = [deep]
        packed = msgpack.Packer(use_bin_type=True)
        try:
            data = document_with(commits=[{"commit_id": "c", "snapshot_id": "s", "x": deep}])
        except ValueError:  # the packer itself may refuse; build the bytes by hand then
            data = b"\x81" + packed.pack("commits") + b"\x91\x83" + packed.pack("commit_id")
            data += packed.pack("c") + packed.pack("snapshot_id") + packed.pack("s")
            data += packed.pack("x") + b"\x91" * 2_000 + b"\x01"
        with pytest.raises(InvalidMPackError):
            parse_push(data)


SAMPLE = sample_push()


def mutations(data: bytes, rng: random.Random) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        choice = rng.random()
        position = rng.randrange(len(buffer)) if buffer else 0
        if choice < 0.4 and buffer:
            buffer[position] ^= 1 << rng.randrange(8)
        elif choice < 0.6 and buffer:
            buffer[position] = rng.choice([0xC4, 0xC5, 0xC6, 0xDC, 0xDD, 0xDE, 0xDF, 0xC1, 0xFF])
        elif choice < 0.8:
            del buffer[position : position + rng.randint(1, 16)]
        else:
            buffer[position:position] = rng.randbytes(rng.randint(1, 16))
    return bytes(buffer)


FUZZ_EXAMPLES = int(os.environ.get("FETCHCORE_FUZZ_EXAMPLES", "20000"))
FUZZ_POLICY = Policy(max_entries=1_000, max_manifest_entries=1_000, max_document_bytes=1 << 20)


def parse_or_refuse(data: bytes) -> None:
    """Parse ``data``: a document, or InvalidMPackError; anything else fails the test."""
    try:
        document = parse_push(data, FUZZ_POLICY)
    except InvalidMPackError:
        return
    for entry in document.blobs:
        assert 0 <= entry.offset <= entry.end <= len(data)


KEYS = [
    "commits",
    "snapshots",
    "blobs",
    "branch_heads",
    "commit_id",
    "snapshot_id",
    "manifest",
    "parent_ids",
    "parent_commit_id",
    "object_id",
    "content",
    "encoding",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(max_size=80),
    st.binary(max_size=80),
    st.sampled_from([blob_id(b"a"), "zstd", "identity"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)


class TestFuzz:
    @settings(max_examples=max(1, FUZZ_EXAMPLES // 4), suppress_health_check=[HealthCheck.too_slow])
    @given(st.dictionaries(st.sampled_from(KEYS[:4]), values, max_size=4))
    def test_documents_of_any_shape_raise_only_invalid_mpack_error(
        self, document: dict[str, Any]
    ) -> None:
        parse_or_refuse(msgpack.packb(document, use_bin_type=True))

    @settings(max_examples=FUZZ_EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
    @given(st.binary(max_size=512))
    def test_random_bytes_raise_only_invalid_mpack_error(self, data: bytes) -> None:
        parse_or_refuse(data)

    @settings(max_examples=FUZZ_EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
    @given(st.integers(0, 2**64))
    def test_mutated_documents_raise_only_invalid_mpack_error(self, seed: int) -> None:
        parse_or_refuse(mutations(SAMPLE, random.Random(seed)))

    @settings(
        max_examples=max(1, FUZZ_EXAMPLES // 10), suppress_health_check=[HealthCheck.too_slow]
    )
    @given(st.integers(0, 2**64))
    def test_parsing_allocates_in_proportion_to_the_document(self, seed: int) -> None:
        data = mutations(SAMPLE, random.Random(seed))
        tracemalloc.start()
        try:
            parse_or_refuse(data)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak <= 8 * len(data) + 256 * 1024


class TestEncodeFetch:
    def commits(self) -> list[Commit]:
        return [
            Commit.from_wire(
                {"snapshot_id": "s1", "commit_id": "c1", "z": 1, "a": {"y": 2, "b": 1}}
            )
        ]

    def test_the_output_is_canonical_whatever_the_input_order(self) -> None:
        snapshots = [Snapshot("s2", {"b": blob_id(b"2"), "a": blob_id(b"1")}), Snapshot("s1", {})]
        blobs = [OutgoingBlob(blob_id(b"2"), b"2"), OutgoingBlob(blob_id(b"1"), b"1")]
        first = encode_fetch(self.commits(), snapshots, blobs, {"main": "c1", "dev": "c1"})
        second = encode_fetch(
            self.commits(), snapshots[::-1], blobs[::-1], {"dev": "c1", "main": "c1"}
        )
        assert first == second

    def test_it_decodes_to_what_went_in(self) -> None:
        blobs = [
            OutgoingBlob(blob_id(b"1"), b"1"),
            OutgoingBlob(blob_id(b"x" * 70_000), b"x" * 70_000),
            OutgoingBlob(blob_id(b"3", bare=True), b"zstd-frame", "zstd"),
        ]
        decoded = decode_fetch(encode_fetch(self.commits(), [Snapshot("s1", {})], blobs, {}))
        assert decoded["commits"] == [self.commits()[0].to_wire()]
        assert decoded["snapshots"] == [{"snapshot_id": "s1", "manifest": {}}]
        by_id = {b["object_id"]: b for b in decoded["blobs"]}
        assert by_id[blob_id(b"1")] == {"object_id": blob_id(b"1"), "content": b"1"}
        assert by_id[blob_id(b"x" * 70_000)]["content"] == b"x" * 70_000
        assert by_id[blob_id(b"3", bare=True)]["encoding"] == "zstd"
        assert decoded["branch_heads"] == {}

    def test_blobs_are_ordered_by_canonical_id(self) -> None:
        contents = [bytes([i]) for i in range(40)]
        blobs = [OutgoingBlob(blob_id(c, bare=i % 2 == 0), c) for i, c in enumerate(contents)]
        decoded = decode_fetch(encode_fetch([], [], blobs, {}))
        canonical = [b["object_id"].removeprefix("sha256:") for b in decoded["blobs"]]
        assert canonical == sorted(canonical)

    def test_a_fetch_mpack_parses_as_a_push(self) -> None:
        blobs = [OutgoingBlob(blob_id(c), c) for c in CONTENTS]
        data = encode_fetch(self.commits(), [], blobs, {"main": "c1"})
        document = parse_push(data)
        assert {b.object_id for b in document.blobs} == {blob_id(c) for c in CONTENTS}


class TestParsingMemory:
    def test_a_commit_carrying_a_list_of_empty_lists_is_refused_within_bounded_memory(
        self,
    ) -> None:
        commit = {"commit_id": "c", "snapshot_id": "s", "junk": [[]] * 500_000}
        data = msgpack.packb({"commits": [commit]})
        tracemalloc.start()
        try:
            with pytest.raises(InvalidMPackError, match="parsing memory"):
                parse_push(data)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # was 130x; now the budget (16x + 1 MiB) plus msgpack's preallocated list
        assert peak <= 24 * len(data)

    def test_a_push_of_many_tiny_commits_is_accepted(self) -> None:
        commits = [commit_entry(f"c{i}", "s", [f"c{i - 1}"] if i else []) for i in range(50_000)]
        data = encode_push(commits=commits, snapshots=[snapshot_entry("s", {})])
        assert len(parse_push(data).commits) == 50_000

    def test_a_manifest_path_repeated_with_one_object_is_accepted(self) -> None:
        oid = msgpack.packb(blob_id(b"x"))
        manifest = b"\x82\xa1f" + oid + b"\xa1f" + oid
        snapshot = b"\x82" + msgpack.packb("snapshot_id") + msgpack.packb("s")
        data = (
            b"\x81"
            + msgpack.packb("snapshots")
            + b"\x91"
            + snapshot
            + msgpack.packb("manifest")
            + manifest
        )
        assert parse_push(data).snapshots[0].manifest == {"f": blob_id(b"x")}


_SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(), st.binary()
)
_VALUE = st.recursive(
    _SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


class TestCanonicalPacking:
    @given(fields=st.dictionaries(st.text().filter(lambda k: k != "snapshot_id"), _VALUE))
    def test_a_snapshot_packs_as_its_canonical_value(self, fields: dict[str, Any]) -> None:
        manifest = {f"p{i}": blob_id(str(i).encode()) for i in range(5)}
        snapshot = Snapshot("s", manifest, fields)
        packed = b"".join(pack_snapshots([snapshot]))
        assert packed == msgpack.packb([canonical_value(snapshot.to_wire())], use_bin_type=True)

    @pytest.mark.parametrize("entries", [0, 1, 15, 16, 4095, 4096, 4097, 70_000])
    def test_a_flat_manifest_of_any_size_packs_as_its_canonical_value(self, entries: int) -> None:
        rng = random.Random(entries)
        manifest = {f"{rng.random()}": blob_id(str(i).encode()) for i in range(entries)}
        snapshot = Snapshot("s", manifest)
        packed = b"".join(pack_snapshots([snapshot]))
        assert packed == msgpack.packb([canonical_value(snapshot.to_wire())], use_bin_type=True)
