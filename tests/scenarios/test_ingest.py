"""SPEC §5, rule by rule, end to end on every stack."""

from __future__ import annotations

import random
import tracemalloc

import attrs
import msgpack
import pytest
from fetchcore.adapters.wrapping import IndexRepoWrapper

from fetchcore import (
    IndexBatch,
    IndexRepoError,
    InvalidMPackError,
    InvalidRequestError,
    Policy,
    UnknownCommitError,
    ingest_push,
    preview_fetch,
    serve_fetch,
)
from fetchcore.ids import content_id
from fetchcore.testing import blob_entry, blob_id, commit_entry, fake_id, snapshot_entry
from fetchcore.validation import MAX_REPO_ID_LENGTH
from fetchcore.wire import encode_push
from tests.backends import replace_behind_the_back
from tests.conftest import Stack
from tests.scenarios.seeding import push_of

REPO = "alice/songs"
OTHER = "mallory/other"


def content(label: str, size: int = 200) -> bytes:
    return label.encode() + random.Random(label).randbytes(size)


async def assert_nothing_written(stack: Stack, data: bytes, commit_id: str) -> None:
    assert not await stack.store.inner.has_mpack(content_id(data))
    with pytest.raises(UnknownCommitError):
        await stack.index.resolve_commits(REPO, [commit_id], [])
    assert dict(await stack.index.branch_heads(REPO)) == {}


class TestParsingAndVerification:
    async def test_a_malformed_push_names_the_entry_and_writes_nothing(self, stack: Stack) -> None:
        good = content("good")
        data = encode_push(
            commits=[commit_entry("c", "s")],
            snapshots=[snapshot_entry("s", {"f": blob_id(good)})],
            blobs=[blob_entry(good), {"object_id": blob_id(b"x"), "content": "text, not bytes"}],
        )
        with pytest.raises(InvalidMPackError) as raised:
            await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        assert raised.value.entry == "blobs[1].content"
        await assert_nothing_written(stack, data, "c")

    async def test_one_blob_that_does_not_verify_rejects_the_whole_push(self, stack: Stack) -> None:
        good, bad = content("good"), content("bad")
        data = encode_push(
            commits=[commit_entry("c", "s")],
            snapshots=[snapshot_entry("s", {"f": blob_id(good), "g": blob_id(bad)})],
            blobs=[blob_entry(good), {"object_id": blob_id(bad), "content": bad + b"!"}],
        )
        with pytest.raises(InvalidMPackError, match="does not match") as raised:
            await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        assert raised.value.entry == "blobs[1]"
        await assert_nothing_written(stack, data, "c")

    async def test_a_zstd_blob_over_the_size_limit_is_refused(self, stack: Stack) -> None:
        big = bytes(100_000)
        data = encode_push(blobs=[blob_entry(big, encoding="zstd")])
        with pytest.raises(InvalidMPackError, match="declares"):
            await ingest_push(
                stack.index,
                stack.store,
                repo_id=REPO,
                mpack=data,
                policy=Policy(max_blob_bytes=1000),
            )


class TestConnectivity:
    async def test_a_manifest_object_neither_pushed_nor_known_is_refused(
        self, stack: Stack
    ) -> None:
        present, absent = content("present"), content("absent")
        data, commit = push_of("c", {"a": present, "b": absent}, carried={"a": present})
        with pytest.raises(InvalidMPackError) as raised:
            await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        assert raised.value.missing_ids == (blob_id(absent),)
        await assert_nothing_written(stack, data, commit)

    async def test_an_object_of_another_repository_cannot_be_claimed_by_its_id(
        self, stack: Stack
    ) -> None:
        secret = content("secret")
        theirs, _ = push_of("theirs", {"secret": secret})
        await ingest_push(stack.index, stack.store, repo_id=OTHER, mpack=theirs)
        claim, commit = push_of("claim", {"stolen": secret}, carried={})
        with pytest.raises(InvalidMPackError) as raised:
            await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=claim)
        assert raised.value.missing_ids == (blob_id(secret),)
        await assert_nothing_written(stack, claim, commit)

    async def test_a_missing_parent_is_refused(self, stack: Stack) -> None:
        ghost = fake_id("ghost parent")
        data, commit = push_of("c", {"a": content("a")}, parents=[ghost])
        with pytest.raises(InvalidMPackError) as raised:
            await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        assert raised.value.missing_ids == (ghost,)
        await assert_nothing_written(stack, data, commit)

    async def test_a_parent_of_another_repository_is_refused(self, stack: Stack) -> None:
        theirs, their_commit = push_of("theirs", {"a": content("a")})
        await ingest_push(stack.index, stack.store, repo_id=OTHER, mpack=theirs)
        data, _ = push_of("c", {"b": content("b")}, parents=[their_commit])
        with pytest.raises(InvalidMPackError) as raised:
            await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        assert raised.value.missing_ids == (their_commit,)

    async def test_a_commit_whose_snapshot_is_nowhere_is_refused(self, stack: Stack) -> None:
        data = encode_push(commits=[commit_entry("c", "no such snapshot")])
        with pytest.raises(InvalidMPackError) as raised:
            await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        assert raised.value.missing_ids == ("no such snapshot",)

    async def test_a_snapshot_of_another_repository_cannot_be_claimed(self, stack: Stack) -> None:
        theirs, _ = push_of("theirs", {"secret": content("secret")})
        await ingest_push(stack.index, stack.store, repo_id=OTHER, mpack=theirs)
        claim = encode_push(
            commits=[commit_entry("mine", fake_id("snap-theirs"))], branch_heads={"main": "mine"}
        )
        with pytest.raises(InvalidMPackError) as raised:
            await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=claim)
        assert raised.value.missing_ids == (fake_id("snap-theirs"),)
        await assert_nothing_written(stack, claim, "mine")

    async def test_a_branch_head_at_an_unknown_commit_is_refused(self, stack: Stack) -> None:
        data = encode_push(branch_heads={"main": "nowhere"})
        with pytest.raises(InvalidMPackError) as raised:
            await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        assert raised.value.missing_ids == ("nowhere",)

    async def test_a_push_may_rely_on_what_the_repository_already_has(self, stack: Stack) -> None:
        a, b = content("a"), content("b")
        first, c0 = push_of("c0", {"a": a})
        await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=first)
        second, c1 = push_of("c1", {"a": a, "b": b}, parents=[c0], carried={"b": b})
        result = await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=second)
        assert (result.commit_count, result.blob_count) == (1, 1)
        fetch = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[c1])
        assert fetch.blob_count == 2

    async def test_manifest_paths_are_just_data(self, stack: Stack) -> None:
        data, commit = push_of("c", {"../../etc/passwd": content("p"), "/abs": content("q")})
        await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        (snapshot,) = await stack.index.load_snapshots(REPO, [fake_id("snap-c")])
        assert set(snapshot.manifest) == {"../../etc/passwd", "/abs"}
        assert (
            await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commit])
        ).blob_count == 2


@attrs.define
class FailingRecord(IndexRepoWrapper):
    """An index whose ``record`` fails (as a database that went away would)."""

    async def record(self, repo_id: str, batch: IndexBatch) -> None:
        raise IndexRepoError("the database went away")


class TestWriteOrder:
    async def test_the_mpack_is_stored_before_the_index_is_written(self, stack: Stack) -> None:
        data, commit = push_of("c", {"a": content("a")})
        with pytest.raises(IndexRepoError):
            await ingest_push(FailingRecord(stack.index), stack.store, repo_id=REPO, mpack=data)
        assert await stack.store.inner.has_mpack(content_id(data)), "an unreferenced mpack"
        with pytest.raises(UnknownCommitError):
            await stack.index.resolve_commits(REPO, [commit], [])
        assert dict(await stack.index.find_locations([blob_id(content("a"))])) == {}

        retried = await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        assert retried.uploaded is True
        assert (
            await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commit])
        ).blob_count == 1

    async def test_ingesting_the_same_mpack_twice_is_a_no_op(self, stack: Stack) -> None:
        data, commit = push_of("c", {"a": content("a"), "b": content("b")})
        first = await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        second = await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        assert second == first
        # Written again (same id, same bytes): that is what repairs a damaged copy.
        assert stack.store.ids_of("put_mpack") == [first.mpack_id, first.mpack_id]
        locations = await stack.index.find_locations([blob_id(content("a"))])
        assert len(locations[blob_id(content("a"))]) == 1
        assert len(await stack.index.resolve_commits(REPO, [commit], [])) == 1


class TestLocationsAndCache:
    async def test_every_blob_is_located_by_byte_span(self, stack: Stack) -> None:
        files = {f"f{i}": content(f"blob-{i}") for i in range(5)}
        data, _ = push_of("c", files)
        await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        raw = msgpack.unpackb(data)
        found = await stack.index.find_locations([blob_id(c) for c in files.values()])
        for blob in raw["blobs"]:
            (location,) = found[blob["object_id"]]
            assert location.span is not None
            assert data[location.span[0] : location.span[1]] == blob["content"]
            assert (location.mpack_id, location.mpack_size) == (content_id(data), len(data))
            assert location.encoding == "zstd"

    async def test_nothing_is_cached_by_default(self, stack: Stack) -> None:
        data, _ = push_of("c", {"tiny": b"x"})
        await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        assert dict(await stack.index.find_cached([blob_id(b"x")])) == {}

    async def test_small_blobs_are_cached_when_the_hub_opts_in(self, stack: Stack) -> None:
        small, large = b"small", content("large", 1_000)
        data, commit = push_of("c", {"s": small, "l": large})
        policy = Policy(cache_max_bytes=100)
        await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data, policy=policy)
        assert dict(await stack.index.find_cached([blob_id(small), blob_id(large)])) == {
            blob_id(small): small
        }
        result = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commit])
        assert result.stats.cache_hits == 1
        assert result.blob_count == 2


def push_with(commits: list[dict[str, object]], **parts: object) -> bytes:
    """A push of ``commits`` whose snapshot "s" is empty."""
    snapshots = parts.pop("snapshots", [snapshot_entry("s", {})])
    return encode_push(commits=commits, snapshots=snapshots, **parts)  # type: ignore[arg-type]


class TestCycles:
    @pytest.mark.parametrize(
        ("parents", "cycle"),
        [
            ({"a": ["a"]}, ["a"]),
            ({"a": ["b"], "b": ["a"]}, ["a", "b"]),
            ({"root": [], "a": ["root", "c"], "b": ["a"], "c": ["b"]}, ["a", "b", "c"]),
        ],
        ids=["own-parent", "two-commits", "longer-cycle"],
    )
    async def test_a_commit_cycle_is_refused_naming_its_commits(
        self, stack: Stack, parents: dict[str, list[str]], cycle: list[str]
    ) -> None:
        data = push_with([commit_entry(c, "s", p) for c, p in parents.items()])
        with pytest.raises(InvalidMPackError, match="own ancestors") as raised:
            await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        assert raised.value.ids == tuple(cycle)
        await assert_nothing_written(stack, data, cycle[0])


class TestOneIdOneContent:
    async def test_a_commit_id_with_two_contents_is_refused(self, stack: Stack) -> None:
        data = push_with([commit_entry("c", "s", message="one"), commit_entry("c", "s")])
        with pytest.raises(InvalidMPackError, match="twice") as raised:
            await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        assert raised.value.ids == ("c",)
        await assert_nothing_written(stack, data, "c")

    async def test_a_snapshot_id_with_two_contents_is_refused(self, stack: Stack) -> None:
        good = content("good")
        snapshots = [snapshot_entry("s", {}), snapshot_entry("s", {"f": blob_id(good)})]
        data = push_with([commit_entry("c", "s")], snapshots=snapshots, blobs=[blob_entry(good)])
        with pytest.raises(InvalidMPackError, match="twice") as raised:
            await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        assert raised.value.ids == ("s",)
        await assert_nothing_written(stack, data, "c")

    async def test_a_manifest_path_written_twice_with_two_objects_is_refused(
        self, stack: Stack
    ) -> None:
        one, two = content("one"), content("two")
        # msgpack maps may repeat a key; a dict cannot, so the map is written by hand
        manifest = (
            b"\x82\xa1f" + msgpack.packb(blob_id(one)) + b"\xa1f" + msgpack.packb(blob_id(two))
        )
        snapshot = b"\x82" + msgpack.packb("snapshot_id") + msgpack.packb("s")
        snapshot += msgpack.packb("manifest") + manifest
        data = (
            b"\x83"
            + msgpack.packb("commits")
            + msgpack.packb([commit_entry("c", "s")])
            + msgpack.packb("snapshots")
            + b"\x91"
            + snapshot
            + msgpack.packb("blobs")
            + msgpack.packb([blob_entry(one), blob_entry(two)], use_bin_type=True)
        )
        with pytest.raises(InvalidMPackError, match="twice") as raised:
            await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        assert raised.value.ids == ("f",)
        await assert_nothing_written(stack, data, "c")

    async def test_a_branch_written_twice_with_two_heads_is_refused(self, stack: Stack) -> None:
        heads = b"\x82\xa4main\xa1a\xa4main\xa1b"
        commits = msgpack.packb([commit_entry("a", "s"), commit_entry("b", "s")])
        data = (
            b"\x83"
            + msgpack.packb("commits")
            + commits
            + msgpack.packb("snapshots")
            + msgpack.packb([snapshot_entry("s", {})])
            + msgpack.packb("branch_heads")
            + heads
        )
        with pytest.raises(InvalidMPackError, match="twice") as raised:
            await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        assert raised.value.ids == ("main",)
        await assert_nothing_written(stack, data, "a")

    async def test_identical_duplicates_are_accepted(self, stack: Stack) -> None:
        good = content("good")
        entry = blob_entry(good)
        data = push_with(
            [commit_entry("c", "s"), commit_entry("c", "s")],
            snapshots=[snapshot_entry("s", {"f": blob_id(good)})] * 2,
            blobs=[entry, entry],
            branch_heads={"main": "c"},
        )
        result = await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        assert (result.commit_count, result.snapshot_count, result.blob_count) == (1, 1, 1)


class TestDecodedSize:
    async def test_a_tiny_push_declaring_huge_blobs_is_refused_before_allocating(
        self, stack: Stack
    ) -> None:
        # the push of the issue: three legal frames of 256 MiB of zeros, about 24 KiB
        blobs = [
            blob_entry(bytes(256 * 1024 * 1024 - 1) + bytes([i + 1]), encoding="zstd")
            for i in range(3)
        ]
        data = push_with([commit_entry("c", "s")], blobs=blobs)
        assert len(data) < 64 * 1024
        policy = Policy(max_push_decoded_bytes=300 * 1024 * 1024)
        tracemalloc.start()
        try:
            with pytest.raises(InvalidMPackError, match="decoded total") as raised:
                await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data, policy=policy)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert raised.value.entry != "blobs[0]"  # the first fits, a later one would not
        assert peak < 260 * 1024 * 1024  # one blob decoded, never the 768 MiB total
        await assert_nothing_written(stack, data, "c")

    async def test_a_push_whose_total_is_exactly_the_limit_is_accepted(self, stack: Stack) -> None:
        blobs = [blob_entry(content(f"b{i}", 1000), encoding="zstd") for i in range(3)]
        total = sum(len(content(f"b{i}", 1000)) for i in range(3))
        data = push_with([commit_entry("c", "s")], blobs=blobs)
        await ingest_push(
            stack.index,
            stack.store,
            repo_id=REPO,
            mpack=data,
            policy=Policy(max_push_decoded_bytes=total),
        )
        with pytest.raises(InvalidMPackError, match="decoded total"):
            await ingest_push(
                stack.index,
                stack.store,
                repo_id="alice/other",
                mpack=data,
                policy=Policy(max_push_decoded_bytes=total - 1),
            )


BAD_REPO_IDS = {
    "lone-surrogate": "alice/\ud800",
    "too-long": "r" * 257,
    "8000-chars": "r" * 8000,
    "newline": "alice\nsongs",
    "escape": "alice\x1b[31m",
}


class TestRepoIds:
    @pytest.mark.parametrize("repo_id", BAD_REPO_IDS.values(), ids=BAD_REPO_IDS.keys())
    async def test_a_bad_repo_id_is_refused_before_any_upload(
        self, stack: Stack, repo_id: str
    ) -> None:
        data = push_with([commit_entry("c", "s")])
        with pytest.raises(InvalidRequestError) as raised:
            await ingest_push(stack.index, stack.store, repo_id=repo_id, mpack=data)
        assert stack.store.calls == []
        assert not await stack.store.inner.has_mpack(content_id(data))
        message = str(raised.value)
        assert not any(char in message for char in "\n\r\x1b")
        assert len(message) < 300
        assert "postgres" not in message
        assert "@" not in message

    @pytest.mark.parametrize("repo_id", BAD_REPO_IDS.values(), ids=BAD_REPO_IDS.keys())
    async def test_a_bad_repo_id_is_refused_by_fetch_before_any_read(
        self, stack: Stack, repo_id: str
    ) -> None:
        with pytest.raises(InvalidRequestError):
            await serve_fetch(stack.index, stack.store, repo_id=repo_id, want=["c"])
        with pytest.raises(InvalidRequestError):
            await preview_fetch(stack.index, repo_id=repo_id, want=["c"])
        assert stack.store.calls == []

    @pytest.mark.parametrize("repo_id", BAD_REPO_IDS.values(), ids=BAD_REPO_IDS.keys())
    async def test_every_index_refuses_to_record_under_a_bad_repo_id(
        self, stack: Stack, repo_id: str
    ) -> None:
        with pytest.raises(InvalidRequestError) as raised:
            await stack.index.record(repo_id, IndexBatch(branch_heads={"main": "c"}))
        assert "postgres" not in str(raised.value)

    async def test_a_repo_id_of_exactly_the_maximum_length_is_accepted(self, stack: Stack) -> None:
        repo_id = "r" * MAX_REPO_ID_LENGTH
        await ingest_push(
            stack.index,
            stack.store,
            repo_id=repo_id,
            mpack=push_with([commit_entry("c", "s")], branch_heads={"main": "c"}),
        )
        assert dict(await stack.index.branch_heads(repo_id)) == {"main": "c"}

    async def test_pushing_the_same_bytes_again_repairs_a_damaged_stored_mpack(
        self, stack: Stack
    ) -> None:
        data, commit = push_of("c", {"a": content("a")})
        pushed = await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        damaged = bytearray(data)
        damaged[-1] ^= 0xFF
        await replace_behind_the_back(stack.store.inner, "mpack", pushed.mpack_id, bytes(damaged))
        await ingest_push(stack.index, stack.store, repo_id=REPO, mpack=data)
        assert await stack.store.inner.get_mpack(pushed.mpack_id) == data
        fetched = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commit])
        assert fetched.blob_count == 1
