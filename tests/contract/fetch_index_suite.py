"""The read-port contract: what a FetchIndex promises a fetch, whatever stores its rows.

The suite only reads through the port. Its data goes in through a fixture,
``seeded_index``: a :class:`SeededIndex` whose ``seed`` writes an IndexBatch the
way that backend stores data (``record`` for fetchcore's indexes; the hub's own
tables for a read-only adapter over them). A backend runs it by importing these
classes into a test module beside its ``seeded_index`` fixture, fsspec-style.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import attrs
import pytest

from fetchcore import Commit, FetchIndex, IndexBatch, Location, Snapshot, UnknownCommitError
from fetchcore.graph import commits_to_send
from fetchcore.testing import blob_id, fake_id

REPO = "repo-a"
OTHER_REPO = "repo-b"
MPACK = fake_id("mpack-1")
OTHER_MPACK = fake_id("mpack-2")


@attrs.frozen
class SeededIndex:
    """A read port under test and the way to put data behind it.

    Attributes:
        index: the adapter under test.
        seed: writes ``batch`` for ``repo_id`` however this backend stores it.
        keeps_offsets: whether the backend stores byte offsets of locations (an
            mpack index of (object, mpack) rows does not: its locations come back
            as ``Location(mpack_id)``).
    """

    index: FetchIndex
    seed: Callable[[str, IndexBatch], Awaitable[None]]
    keeps_offsets: bool = True

    def stored(self, location: Location) -> Location:
        """``location`` as this backend gives it back."""
        return location if self.keeps_offsets else Location(location.mpack_id)


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


async def seed_history(seeded: SeededIndex, repo_id: str = REPO) -> list[Commit]:
    commits = history()
    snapshots = [snapshot_of(c, {"f": blob_id(c.commit_id.encode())}) for c in commits]
    await seeded.seed(repo_id, IndexBatch(commits=commits, snapshots=snapshots))
    return commits


def ids_of(commits: list[Commit] | tuple[Commit, ...]) -> list[str]:
    return [c.commit_id for c in commits]


def chain(length: int, label: str = "chain") -> list[Commit]:
    """A linear history of ``length`` commits, oldest first."""
    commits = [commit(f"{label}-0")]
    for i in range(1, length):
        commits.append(commit(f"{label}-{i}", commits[-1].commit_id))
    return commits


class TestResolveCommits:
    async def test_everything_reachable_from_want_parents_first(
        self, seeded_index: SeededIndex
    ) -> None:
        commits = await seed_history(seeded_index)
        merge = commits[-1]
        resolved = await seeded_index.index.resolve_commits(REPO, [merge.commit_id], [])
        expected = commits_to_send({c.commit_id: c for c in commits}, [merge.commit_id], [])
        assert ids_of(list(resolved)) == ids_of(expected)
        assert len(resolved) == 5

    async def test_have_and_its_ancestors_are_left_out(self, seeded_index: SeededIndex) -> None:
        _root, _a, b, c, merge = await seed_history(seeded_index)
        resolved = await seeded_index.index.resolve_commits(REPO, [merge.commit_id], [b.commit_id])
        assert set(ids_of(list(resolved))) == {c.commit_id, merge.commit_id}

    async def test_unknown_haves_are_ignored(self, seeded_index: SeededIndex) -> None:
        commits = await seed_history(seeded_index)
        resolved = await seeded_index.index.resolve_commits(
            REPO, [commits[-1].commit_id], [fake_id("nobody has this")]
        )
        assert len(resolved) == 5

    async def test_an_unknown_want_is_named(self, seeded_index: SeededIndex) -> None:
        commits = await seed_history(seeded_index)
        ghost = fake_id("ghost")
        with pytest.raises(UnknownCommitError) as raised:
            await seeded_index.index.resolve_commits(REPO, [commits[0].commit_id, ghost], [])
        assert raised.value.commit_ids == (ghost,)

    async def test_a_commit_of_another_repository_is_unknown(
        self, seeded_index: SeededIndex
    ) -> None:
        commits = await seed_history(seeded_index, OTHER_REPO)
        with pytest.raises(UnknownCommitError):
            await seeded_index.index.resolve_commits(REPO, [commits[-1].commit_id], [])

    async def test_want_within_have_sends_nothing(self, seeded_index: SeededIndex) -> None:
        _root, a, _b, _c, merge = await seed_history(seeded_index)
        resolved = await seeded_index.index.resolve_commits(REPO, [a.commit_id], [merge.commit_id])
        assert list(resolved) == []

    async def test_both_parent_spellings_are_walked(self, seeded_index: SeededIndex) -> None:
        root = Commit.from_wire(
            {"commit_id": fake_id("r"), "snapshot_id": fake_id("s"), "parent_commit_id": None}
        )
        child = Commit.from_wire(
            {
                "commit_id": fake_id("x"),
                "snapshot_id": fake_id("s"),
                "parent_commit_id": fake_id("r"),
                "parent2_commit_id": None,
            }
        )
        await seeded_index.seed(REPO, IndexBatch(commits=[root, child]))
        resolved = await seeded_index.index.resolve_commits(REPO, [fake_id("x")], [])
        assert ids_of(list(resolved)) == [fake_id("r"), fake_id("x")]


class TestLoading:
    async def test_commits_are_loaded_by_id_and_unknown_ids_skipped(
        self, seeded_index: SeededIndex
    ) -> None:
        commits = await seed_history(seeded_index)
        asked = [commits[1].commit_id, fake_id("unknown"), commits[3].commit_id]
        loaded = await seeded_index.index.load_commits(REPO, asked)
        assert sorted(ids_of(list(loaded))) == sorted([commits[1].commit_id, commits[3].commit_id])
        assert {c.commit_id: c.parent_ids for c in loaded} == {
            c.commit_id: c.parent_ids for c in (commits[1], commits[3])
        }

    async def test_snapshots_come_back_with_their_manifest(self, seeded_index: SeededIndex) -> None:
        manifest = {"a/b.txt": blob_id(b"1"), "../../etc/passwd": blob_id(b"2", bare=True)}
        snapshot = Snapshot(fake_id("s"), manifest)
        await seeded_index.seed(REPO, IndexBatch(snapshots=[snapshot]))
        loaded = await seeded_index.index.load_snapshots(REPO, [fake_id("s"), fake_id("nope")])
        assert [(s.snapshot_id, dict(s.manifest)) for s in loaded] == [(fake_id("s"), manifest)]

    async def test_commits_and_snapshots_are_scoped_to_their_repository(
        self, seeded_index: SeededIndex
    ) -> None:
        commits = await seed_history(seeded_index, OTHER_REPO)
        index = seeded_index.index
        assert list(await index.load_commits(REPO, ids_of(commits))) == []
        snapshot_ids = [c.snapshot_id for c in commits]
        assert list(await index.load_snapshots(REPO, snapshot_ids)) == []
        assert len(await index.load_snapshots(OTHER_REPO, snapshot_ids)) == 5


class TestObjects:
    async def test_locations_are_found_for_every_mpack_holding_an_object(
        self, seeded_index: SeededIndex
    ) -> None:
        object_id = blob_id(b"content")
        first = Location(MPACK, 10, 7, "identity", 100)
        second = Location(OTHER_MPACK, 20, 9, "zstd", 200)
        batch = IndexBatch(locations=[(object_id, first), (object_id, second)])
        await seeded_index.seed(REPO, batch)
        found = await seeded_index.index.find_locations([object_id, blob_id(b"absent")])
        assert set(found) == {object_id}
        assert set(found[object_id]) == {seeded_index.stored(first), seeded_index.stored(second)}

    async def test_a_location_without_offsets_round_trips(self, seeded_index: SeededIndex) -> None:
        object_id = blob_id(b"content")
        await seeded_index.seed(REPO, IndexBatch(locations=[(object_id, Location(MPACK))]))
        found = await seeded_index.index.find_locations([object_id])
        assert list(found[object_id]) == [Location(MPACK)]

    async def test_answers_use_canonical_ids(self, seeded_index: SeededIndex) -> None:
        content = b"content"
        batch = IndexBatch(
            locations=[(blob_id(content, bare=True), Location(MPACK, 0, 7))],
            cached=[(blob_id(content, bare=True), content)],
        )
        await seeded_index.seed(REPO, batch)
        assert set(await seeded_index.index.find_locations([blob_id(content)])) == {
            blob_id(content)
        }
        assert await seeded_index.index.find_cached([blob_id(content)]) == {
            blob_id(content): content
        }

    async def test_cached_content_is_found_and_others_are_absent(
        self, seeded_index: SeededIndex
    ) -> None:
        cached = {blob_id(b"one"): b"one", blob_id(b""): b""}
        await seeded_index.seed(REPO, IndexBatch(cached=list(cached.items())))
        found = await seeded_index.index.find_cached([*cached, blob_id(b"absent")])
        assert dict(found) == cached

    async def test_thousands_of_ids_are_looked_up_at_once(self, seeded_index: SeededIndex) -> None:
        object_ids = [blob_id(str(i).encode()) for i in range(5_000)]
        locations = [
            (o, Location(MPACK, i * 10, 10, "identity", 50_000)) for i, o in enumerate(object_ids)
        ]
        await seeded_index.seed(REPO, IndexBatch(locations=locations))
        found = await seeded_index.index.find_locations(object_ids)
        expected = {o: [seeded_index.stored(loc)] for o, loc in locations}
        assert {o: list(found[o]) for o in found} == expected


class TestBranchHeads:
    async def test_heads_are_read_per_repository(self, seeded_index: SeededIndex) -> None:
        commits = await seed_history(seeded_index)
        heads = {"main": commits[-1].commit_id, "dev": commits[2].commit_id}
        await seeded_index.seed(REPO, IndexBatch(branch_heads=heads))
        assert dict(await seeded_index.index.branch_heads(REPO)) == heads
        assert dict(await seeded_index.index.branch_heads(OTHER_REPO)) == {}


class TestGraphEdgeCases:
    async def test_a_cycle_in_bad_data_does_not_hang_the_walk(
        self, seeded_index: SeededIndex
    ) -> None:
        a_id, b_id = fake_id("cycle-a"), fake_id("cycle-b")
        a, b = Commit(a_id, fake_id("s"), (b_id,)), Commit(b_id, fake_id("s"), (a_id,))
        await seeded_index.seed(REPO, IndexBatch(commits=[a, b]))
        resolved = await asyncio.wait_for(seeded_index.index.resolve_commits(REPO, [a_id], []), 10)
        expected = commits_to_send({a_id: a, b_id: b}, [a_id], [])
        assert ids_of(list(resolved)) == ids_of(expected)

    async def test_a_parent_outside_the_repository_is_not_sent(
        self, seeded_index: SeededIndex
    ) -> None:
        elsewhere = commit("elsewhere")
        orphan = commit("orphan", elsewhere.commit_id)
        await seeded_index.seed(OTHER_REPO, IndexBatch(commits=[elsewhere]))
        await seeded_index.seed(REPO, IndexBatch(commits=[orphan]))
        resolved = await seeded_index.index.resolve_commits(REPO, [orphan.commit_id], [])
        assert ids_of(list(resolved)) == [orphan.commit_id]

    async def test_a_long_history_resolves_parents_first(self, seeded_index: SeededIndex) -> None:
        commits = chain(2_000)
        await seeded_index.seed(REPO, IndexBatch(commits=commits))
        tip, middle = commits[-1].commit_id, commits[999].commit_id
        resolved = await seeded_index.index.resolve_commits(REPO, [tip], [middle])
        assert ids_of(list(resolved)) == ids_of(commits[1000:])
        assert len(await seeded_index.index.resolve_commits(REPO, [tip], [])) == 2_000

    async def test_a_merge_keeps_its_parents_in_their_order(
        self, seeded_index: SeededIndex
    ) -> None:
        first, second = sorted([commit("left"), commit("right")], key=lambda c: c.commit_id)
        merge = commit("ordered merge", second.commit_id, first.commit_id)
        await seeded_index.seed(REPO, IndexBatch(commits=[first, second, merge]))
        (loaded,) = await seeded_index.index.load_commits(REPO, [merge.commit_id])
        assert loaded.parent_ids == (second.commit_id, first.commit_id)
        resolved = await seeded_index.index.resolve_commits(REPO, [merge.commit_id], [])
        assert resolved[-1].parent_ids == (second.commit_id, first.commit_id)

    async def test_repeated_and_overlapping_wants_and_haves(
        self, seeded_index: SeededIndex
    ) -> None:
        commits = await seed_history(seeded_index)
        _root, a, b, c, merge = (x.commit_id for x in commits)
        want, have = [merge, merge, b, c], [a, a, b]
        resolved = await seeded_index.index.resolve_commits(REPO, want, have)
        expected = commits_to_send({x.commit_id: x for x in commits}, want, have)
        assert ids_of(list(resolved)) == ids_of(expected)


def test_satisfies_the_read_protocol(seeded_index: SeededIndex) -> None:
    assert isinstance(seeded_index.index, FetchIndex)
