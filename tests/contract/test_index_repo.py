"""The write-port (IngestIndex) contract, and what the whole IndexRepo promises on top of
the read port: every backend in tests/backends.py must pass all of it.

What a fetch reads is the read-port suite (fetch_index_suite.py, run by
test_fetch_index.py); here is what ``record`` and ``known_objects`` promise:
every field round trips, writes are atomic and idempotent, history is never
rewritten, concurrent records all land.
"""

from __future__ import annotations

import asyncio

import pytest

from fetchcore import (
    Commit,
    FetchError,
    IndexBatch,
    IndexRepo,
    Location,
    Snapshot,
)
from fetchcore.testing import blob_id, fake_id
from tests.contract.fetch_index_suite import commit, history, ids_of, snapshot_of

REPO = "repo-a"
OTHER_REPO = "repo-b"
MPACK = fake_id("mpack-1")
OTHER_MPACK = fake_id("mpack-2")


async def record_history(index: IndexRepo, repo_id: str = REPO) -> list[Commit]:
    commits = history()
    snapshots = [snapshot_of(c, {"f": blob_id(c.commit_id.encode())}) for c in commits]
    await index.record(repo_id, IndexBatch(commits=commits, snapshots=snapshots))
    return commits


class TestRecordedFieldsRoundTrip:
    async def test_commits_come_back_with_every_field(self, index_repo: IndexRepo) -> None:
        commit_id = fake_id("c")
        wire = {
            "commit_id": commit_id,
            "snapshot_id": fake_id("s"),
            "parent_ids": [],
            "message": "héllo",
            "meta": {"n": 1, "nested": [1, 2.5, None, True, b"\x00\xff"]},
        }
        await index_repo.record(REPO, IndexBatch(commits=[Commit.from_wire(wire)]))
        (loaded,) = await index_repo.load_commits(REPO, [commit_id, fake_id("unknown")])
        assert loaded.to_wire() == wire

    async def test_snapshots_come_back_with_manifest_and_fields(
        self, index_repo: IndexRepo
    ) -> None:
        manifest = {"a/b.txt": blob_id(b"1"), "../../etc/passwd": blob_id(b"2", bare=True)}
        wire = {"snapshot_id": fake_id("s"), "manifest": manifest, "directories": ["a"]}
        await index_repo.record(REPO, IndexBatch(snapshots=[Snapshot.from_wire(wire)]))
        (loaded,) = await index_repo.load_snapshots(REPO, [fake_id("s"), fake_id("nope")])
        assert loaded.to_wire() == wire
        assert loaded.manifest == manifest


class TestMembership:
    async def test_membership_comes_from_locations_cache_and_manifests(
        self, index_repo: IndexRepo
    ) -> None:
        located, cached, listed = blob_id(b"1"), blob_id(b"2"), blob_id(b"3")
        c = commit("x")
        batch = IndexBatch(
            commits=[c],
            snapshots=[snapshot_of(c, {"listed": listed})],
            locations=[(located, Location(MPACK, 0, 1))],
            cached=[(cached, b"2")],
        )
        await index_repo.record(REPO, batch)
        asked = [located, cached, listed, blob_id(b"4")]
        assert set(await index_repo.known_objects(REPO, asked)) == {located, cached, listed}
        assert set(await index_repo.known_objects(OTHER_REPO, asked)) == set()

    async def test_thousands_of_ids_are_looked_up_at_once(self, index_repo: IndexRepo) -> None:
        object_ids = [blob_id(str(i).encode()) for i in range(5_000)]
        locations = [
            (o, Location(MPACK, i * 10, 10, "identity", 50_000)) for i, o in enumerate(object_ids)
        ]
        await index_repo.record(REPO, IndexBatch(locations=locations))
        found = await index_repo.find_locations(object_ids)
        assert {o: list(found[o]) for o in found} == {o: [loc] for o, loc in locations}
        assert len(await index_repo.known_objects(REPO, object_ids)) == 5_000


class TestBranchHeads:
    async def test_a_record_overwrites_only_its_own_branches(self, index_repo: IndexRepo) -> None:
        await index_repo.record(REPO, IndexBatch(branch_heads={"main": "c1", "dev": "c2"}))
        await index_repo.record(REPO, IndexBatch(branch_heads={"main": "c3"}))
        assert dict(await index_repo.branch_heads(REPO)) == {"main": "c3", "dev": "c2"}
        assert dict(await index_repo.branch_heads(OTHER_REPO)) == {}


class TestRecord:
    async def test_recording_twice_changes_nothing(self, index_repo: IndexRepo) -> None:
        object_id = blob_id(b"content")
        c = commit("x")
        batch = IndexBatch(
            commits=[c],
            snapshots=[snapshot_of(c, {"f": object_id})],
            locations=[(object_id, Location(MPACK, 0, 7, "identity", 7))],
            cached=[(object_id, b"content")],
            branch_heads={"main": c.commit_id},
        )
        await index_repo.record(REPO, batch)
        await index_repo.record(REPO, batch)
        assert list((await index_repo.find_locations([object_id]))[object_id]) == [
            Location(MPACK, 0, 7, "identity", 7)
        ]
        assert ids_of(list(await index_repo.resolve_commits(REPO, [c.commit_id], []))) == [
            c.commit_id
        ]
        assert len(await index_repo.load_snapshots(REPO, [c.snapshot_id])) == 1

    async def test_a_failing_batch_writes_nothing(self, index_repo: IndexRepo) -> None:
        object_id = blob_id(b"content")
        c = commit("x")
        batch = IndexBatch(
            commits=[c],
            locations=[(object_id, Location(MPACK, 0, 7))],
            cached=[(object_id, "not bytes")],
            branch_heads={"main": c.commit_id},
        )
        with pytest.raises(FetchError):
            await index_repo.record(REPO, batch)
        assert list(await index_repo.load_commits(REPO, [c.commit_id])) == []
        assert dict(await index_repo.find_locations([object_id])) == {}
        assert dict(await index_repo.branch_heads(REPO)) == {}
        assert set(await index_repo.known_objects(REPO, [object_id])) == set()


def test_satisfies_the_protocol(index_repo: IndexRepo) -> None:
    assert isinstance(index_repo, IndexRepo)


class TestRepositoriesKeepTheirOwnHistory:
    async def test_each_repository_walks_its_own_parents(self, index_repo: IndexRepo) -> None:
        a, b = commit("only-a"), commit("only-b")
        child_id = fake_id("shared child")
        await index_repo.record(
            REPO, IndexBatch(commits=[a, Commit(child_id, "s", (a.commit_id,))])
        )
        await index_repo.record(
            OTHER_REPO, IndexBatch(commits=[b, Commit(child_id, "s", (b.commit_id,))])
        )
        in_repo = await index_repo.resolve_commits(REPO, [child_id], [])
        in_other = await index_repo.resolve_commits(OTHER_REPO, [child_id], [])
        assert set(ids_of(list(in_repo))) == {a.commit_id, child_id}
        assert set(ids_of(list(in_other))) == {b.commit_id, child_id}


class TestFidelity:
    @pytest.mark.parametrize(
        "location",
        [
            Location(MPACK, 0, 0, "identity", 0),
            Location(MPACK, 2**40, 2**31, "zstd", 2**41),
            Location(MPACK, None, 5),
            Location(MPACK, 5, None, "zstd", 10),
            Location(MPACK, None, None, "identity", 7),
        ],
        ids=["zeros", "large", "no-offset", "no-length", "size-only"],
    )
    async def test_every_location_field_round_trips(
        self, index_repo: IndexRepo, location: Location
    ) -> None:
        object_id = blob_id(b"content")
        await index_repo.record(REPO, IndexBatch(locations=[(object_id, location)]))
        assert list((await index_repo.find_locations([object_id]))[object_id]) == [location]

    async def test_locations_differing_in_one_field_are_all_kept(
        self, index_repo: IndexRepo
    ) -> None:
        object_id = blob_id(b"content")
        variants = {
            Location(MPACK, 10, 7, "identity", 100),
            Location(MPACK, None, 7, "identity", 100),
            Location(MPACK, 10, None, "identity", 100),
            Location(MPACK, 10, 7, "zstd", 100),
            Location(MPACK, 10, 7, "identity", None),
            Location(MPACK),
        }
        batch = IndexBatch(locations=[(object_id, location) for location in variants])
        await index_repo.record(REPO, batch)
        await index_repo.record(REPO, batch)
        found = list((await index_repo.find_locations([object_id]))[object_id])
        assert len(found) == len(variants)
        assert set(found) == variants

    async def test_text_in_any_script_round_trips(self, index_repo: IndexRepo) -> None:
        repo_id, branch, commit_id = "dépôt/ü ✓", "feature/ünï-🚀", "ид-коммита"
        c = Commit(commit_id, "снимок", (), {"message": "日本語 🚀"})
        await index_repo.record(repo_id, IndexBatch(commits=[c], branch_heads={branch: commit_id}))
        assert dict(await index_repo.branch_heads(repo_id)) == {branch: commit_id}
        (loaded,) = await index_repo.load_commits(repo_id, [commit_id])
        assert loaded.to_wire() == c.to_wire()

    async def test_large_cached_content_round_trips(self, index_repo: IndexRepo) -> None:
        content = bytes(range(256)) * 4096  # 1 MiB, every byte value
        await index_repo.record(REPO, IndexBatch(cached=[(blob_id(content), content)]))
        assert await index_repo.find_cached([blob_id(content)]) == {blob_id(content): content}

    async def test_an_empty_batch_is_accepted(self, index_repo: IndexRepo) -> None:
        await index_repo.record(REPO, IndexBatch())
        assert dict(await index_repo.branch_heads(REPO)) == {}


class TestHistoryIsNeverRewritten:
    async def test_a_recorded_commit_keeps_its_first_content(self, index_repo: IndexRepo) -> None:
        parent = commit("parent")
        first = commit("x", message="first")
        forged = Commit(first.commit_id, fake_id("forged"), (parent.commit_id,), {"m": "forged"})
        await index_repo.record(REPO, IndexBatch(commits=[first]))
        await index_repo.record(REPO, IndexBatch(commits=[parent, forged]))
        (loaded,) = await index_repo.load_commits(REPO, [first.commit_id])
        assert loaded.to_wire() == first.to_wire()
        resolved = await index_repo.resolve_commits(REPO, [first.commit_id], [])
        assert ids_of(list(resolved)) == [first.commit_id]

    async def test_a_recorded_snapshot_and_cache_entry_keep_their_first_content(
        self, index_repo: IndexRepo
    ) -> None:
        c = commit("x")
        first = snapshot_of(c, {"f": blob_id(b"1")})
        object_id = blob_id(b"1")
        await index_repo.record(REPO, IndexBatch(snapshots=[first], cached=[(object_id, b"1")]))
        forged = snapshot_of(c, {"f": blob_id(b"2")})
        await index_repo.record(REPO, IndexBatch(snapshots=[forged], cached=[(object_id, b"2")]))
        (loaded,) = await index_repo.load_snapshots(REPO, [c.snapshot_id])
        assert loaded.manifest == first.manifest
        assert await index_repo.find_cached([object_id]) == {object_id: b"1"}


class TestConcurrentRecords:
    async def test_eight_overlapping_records_at_once_all_succeed(
        self, index_repo: IndexRepo
    ) -> None:
        shared = {blob_id(f"shared-{i}".encode()): f"shared-{i}".encode() for i in range(300)}
        own = {n: [blob_id(f"own-{n}-{i}".encode()) for i in range(100)] for n in range(8)}
        batches = []
        for n in range(8):
            tip = commit(f"tip-{n}", history()[-1].commit_id)
            object_ids = [*shared, *own[n]]
            batches.append(
                IndexBatch(
                    commits=[*history(), tip],
                    snapshots=[snapshot_of(tip, {f"f{i}": o for i, o in enumerate(object_ids)})],
                    locations=[
                        (o, Location(MPACK, i, 1, "identity", 9_999)) for i, o in enumerate(shared)
                    ]
                    + [
                        (o, Location(OTHER_MPACK, i, 1, "zstd", None)) for i, o in enumerate(own[n])
                    ],
                    cached=list(shared.items()),
                    branch_heads={"main": tip.commit_id, f"branch-{n}": tip.commit_id},
                )
            )
        await asyncio.gather(*(index_repo.record(REPO, batch) for batch in batches))
        every_object = [*shared, *(o for ids in own.values() for o in ids)]
        found = await index_repo.find_locations(every_object)
        assert set(found) == set(every_object)
        assert all(len(found[o]) == 1 for o in every_object)
        assert dict(await index_repo.find_cached(list(shared))) == shared
        assert set(await index_repo.known_objects(REPO, every_object)) == set(every_object)
        heads = dict(await index_repo.branch_heads(REPO))
        tips = {batch.commits[-1].commit_id for batch in batches}
        assert {heads[f"branch-{n}"] for n in range(8)} == tips
        assert heads["main"] in tips
        resolved = await index_repo.resolve_commits(REPO, sorted(tips), [])
        assert len(resolved) == len(history()) + 8
