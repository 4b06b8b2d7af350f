"""The IndexRepo contract: every backend in tests/backends.py must pass all of it."""

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
    UnknownCommitError,
)
from fetchcore.graph import commits_to_send
from fetchcore.testing import blob_id, fake_id

REPO = "repo-a"
OTHER_REPO = "repo-b"
MPACK = fake_id("mpack-1")
OTHER_MPACK = fake_id("mpack-2")


def commit(label: str, *parents: str, **fields: object) -> Commit:
    return Commit(fake_id(f"c-{label}"), fake_id(f"s-{label}"), parents, {**fields})


def snapshot_of(c: Commit, manifest: dict[str, str]) -> Snapshot:
    return Snapshot(c.snapshot_id, manifest, {"snapshot_id": c.snapshot_id, "manifest": manifest})


def history() -> list[Commit]:
    """root <- a <- b <- merge -> c <- root   (a diamond with a merge commit)."""
    root = commit("root")
    a = commit("a", root.commit_id)
    b = commit("b", a.commit_id)
    c = commit("c", root.commit_id)
    merge = commit("merge", b.commit_id, c.commit_id)
    return [root, a, b, c, merge]


async def record_history(index: IndexRepo, repo_id: str = REPO) -> list[Commit]:
    commits = history()
    snapshots = [snapshot_of(c, {"f": blob_id(c.commit_id.encode())}) for c in commits]
    await index.record(repo_id, IndexBatch(commits=commits, snapshots=snapshots))
    return commits


def ids_of(commits: list[Commit] | tuple[Commit, ...]) -> list[str]:
    return [c.commit_id for c in commits]


class TestResolveCommits:
    async def test_everything_reachable_from_want_parents_first(
        self, index_repo: IndexRepo
    ) -> None:
        commits = await record_history(index_repo)
        merge = commits[-1]
        resolved = await index_repo.resolve_commits(REPO, [merge.commit_id], [])
        expected = commits_to_send({c.commit_id: c for c in commits}, [merge.commit_id], [])
        assert ids_of(list(resolved)) == ids_of(expected)
        assert len(resolved) == 5

    async def test_have_and_its_ancestors_are_left_out(self, index_repo: IndexRepo) -> None:
        _root, _a, b, c, merge = await record_history(index_repo)
        resolved = await index_repo.resolve_commits(REPO, [merge.commit_id], [b.commit_id])
        assert set(ids_of(list(resolved))) == {c.commit_id, merge.commit_id}

    async def test_unknown_haves_are_ignored(self, index_repo: IndexRepo) -> None:
        commits = await record_history(index_repo)
        resolved = await index_repo.resolve_commits(
            REPO, [commits[-1].commit_id], [fake_id("nobody has this")]
        )
        assert len(resolved) == 5

    async def test_an_unknown_want_is_named(self, index_repo: IndexRepo) -> None:
        commits = await record_history(index_repo)
        ghost = fake_id("ghost")
        with pytest.raises(UnknownCommitError) as raised:
            await index_repo.resolve_commits(REPO, [commits[0].commit_id, ghost], [])
        assert raised.value.commit_ids == (ghost,)

    async def test_a_commit_of_another_repository_is_unknown(self, index_repo: IndexRepo) -> None:
        commits = await record_history(index_repo, OTHER_REPO)
        with pytest.raises(UnknownCommitError):
            await index_repo.resolve_commits(REPO, [commits[-1].commit_id], [])

    async def test_want_within_have_sends_nothing(self, index_repo: IndexRepo) -> None:
        _root, a, _b, _c, merge = await record_history(index_repo)
        assert list(await index_repo.resolve_commits(REPO, [a.commit_id], [merge.commit_id])) == []

    async def test_both_parent_spellings_are_walked(self, index_repo: IndexRepo) -> None:
        root = Commit.from_wire({"commit_id": "r", "snapshot_id": "s", "parent_commit_id": None})
        child = Commit.from_wire(
            {
                "commit_id": "x",
                "snapshot_id": "s",
                "parent_commit_id": "r",
                "parent2_commit_id": None,
            }
        )
        await index_repo.record(REPO, IndexBatch(commits=[root, child]))
        assert ids_of(list(await index_repo.resolve_commits(REPO, ["x"], []))) == ["r", "x"]


class TestLoading:
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

    async def test_commits_and_snapshots_are_scoped_to_their_repository(
        self, index_repo: IndexRepo
    ) -> None:
        commits = await record_history(index_repo, OTHER_REPO)
        assert list(await index_repo.load_commits(REPO, ids_of(commits))) == []
        snapshot_ids = [c.snapshot_id for c in commits]
        assert list(await index_repo.load_snapshots(REPO, snapshot_ids)) == []
        assert len(await index_repo.load_snapshots(OTHER_REPO, snapshot_ids)) == 5


class TestObjects:
    async def test_locations_are_found_for_every_mpack_holding_an_object(
        self, index_repo: IndexRepo
    ) -> None:
        object_id = blob_id(b"content")
        first = Location(MPACK, 10, 7, "identity", 100)
        second = Location(OTHER_MPACK, 20, 9, "zstd", 200)
        batch = IndexBatch(locations=[(object_id, first), (object_id, second)])
        await index_repo.record(REPO, batch)
        found = await index_repo.find_locations([object_id, blob_id(b"absent")])
        assert set(found) == {object_id}
        assert set(found[object_id]) == {first, second}

    async def test_a_location_without_offsets_round_trips(self, index_repo: IndexRepo) -> None:
        object_id = blob_id(b"content")
        await index_repo.record(REPO, IndexBatch(locations=[(object_id, Location(MPACK))]))
        found = await index_repo.find_locations([object_id])
        assert list(found[object_id]) == [Location(MPACK)]

    async def test_bare_ids_are_recorded_canonically(self, index_repo: IndexRepo) -> None:
        content = b"content"
        batch = IndexBatch(
            locations=[(blob_id(content, bare=True), Location(MPACK, 0, 7))],
            cached=[(blob_id(content, bare=True), content)],
        )
        await index_repo.record(REPO, batch)
        assert set(await index_repo.find_locations([blob_id(content)])) == {blob_id(content)}
        assert await index_repo.find_cached([blob_id(content)]) == {blob_id(content): content}

    async def test_cached_content_is_found_and_others_are_absent(
        self, index_repo: IndexRepo
    ) -> None:
        cached = {blob_id(b"one"): b"one", blob_id(b""): b""}
        await index_repo.record(REPO, IndexBatch(cached=list(cached.items())))
        found = await index_repo.find_cached([*cached, blob_id(b"absent")])
        assert dict(found) == cached

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
    async def test_heads_are_set_per_branch_and_scoped(self, index_repo: IndexRepo) -> None:
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


def chain(length: int, label: str = "chain") -> list[Commit]:
    """A linear history of ``length`` commits, oldest first."""
    commits = [commit(f"{label}-0")]
    for i in range(1, length):
        commits.append(commit(f"{label}-{i}", commits[-1].commit_id))
    return commits


class TestGraphEdgeCases:
    async def test_a_cycle_in_bad_data_does_not_hang_the_walk(self, index_repo: IndexRepo) -> None:
        a_id, b_id = fake_id("cycle-a"), fake_id("cycle-b")
        a, b = Commit(a_id, fake_id("s"), (b_id,)), Commit(b_id, fake_id("s"), (a_id,))
        await index_repo.record(REPO, IndexBatch(commits=[a, b]))
        resolved = await asyncio.wait_for(index_repo.resolve_commits(REPO, [a_id], []), 10)
        expected = commits_to_send({a_id: a, b_id: b}, [a_id], [])
        assert ids_of(list(resolved)) == ids_of(expected)

    async def test_a_parent_outside_the_repository_is_not_sent(self, index_repo: IndexRepo) -> None:
        elsewhere = commit("elsewhere")
        orphan = commit("orphan", elsewhere.commit_id)
        await index_repo.record(OTHER_REPO, IndexBatch(commits=[elsewhere]))
        await index_repo.record(REPO, IndexBatch(commits=[orphan]))
        resolved = await index_repo.resolve_commits(REPO, [orphan.commit_id], [])
        assert ids_of(list(resolved)) == [orphan.commit_id]

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

    async def test_a_long_history_resolves_parents_first(self, index_repo: IndexRepo) -> None:
        commits = chain(2_000)
        await index_repo.record(REPO, IndexBatch(commits=commits))
        tip, middle = commits[-1].commit_id, commits[999].commit_id
        resolved = await index_repo.resolve_commits(REPO, [tip], [middle])
        assert ids_of(list(resolved)) == ids_of(commits[1000:])
        assert len(await index_repo.resolve_commits(REPO, [tip], [])) == 2_000

    async def test_a_merge_keeps_its_parents_in_their_order(self, index_repo: IndexRepo) -> None:
        first, second = sorted([commit("left"), commit("right")], key=lambda c: c.commit_id)
        merge = commit("ordered merge", second.commit_id, first.commit_id)
        await index_repo.record(REPO, IndexBatch(commits=[first, second, merge]))
        (loaded,) = await index_repo.load_commits(REPO, [merge.commit_id])
        assert loaded.parent_ids == (second.commit_id, first.commit_id)
        resolved = await index_repo.resolve_commits(REPO, [merge.commit_id], [])
        assert resolved[-1].parent_ids == (second.commit_id, first.commit_id)

    async def test_repeated_and_overlapping_wants_and_haves(self, index_repo: IndexRepo) -> None:
        commits = await record_history(index_repo)
        _root, a, b, c, merge = (x.commit_id for x in commits)
        want, have = [merge, merge, b, c], [a, a, b]
        resolved = await index_repo.resolve_commits(REPO, want, have)
        expected = commits_to_send({x.commit_id: x for x in commits}, want, have)
        assert ids_of(list(resolved)) == ids_of(expected)


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
