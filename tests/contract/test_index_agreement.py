"""Every index backend gives the memory index's answers, on random histories and pushes.

Hypothesis draws a commit graph (merges, and now and then a parent that was
never recorded), cuts it into pushes to two repositories, each an IndexBatch
with snapshots, locations (unknown offsets included), cached content and branch
heads. Some pushes are recorded twice; some carry a different commit under an
id recorded before (a forgery: it must change nothing already recorded). After
every push it asks random ``want``/``have`` questions; at the end, every lookup
of every id and whole-history walks. The memory index is the oracle; each other
backend in tests/backends.py must agree with it.

All backends stay open across examples (opening a database per example would
be slow): each example writes under repository ids and object ids of its own,
so examples never see each other's rows.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fetchcore import Commit, IndexBatch, IndexRepo, Location, Snapshot, UnknownCommitError
from fetchcore.testing import blob_id, fake_id
from tests.backends import INDEXES

ORACLE = "memory"
REPOS = ("left", "right")
BRANCHES = ("main", "dev", "feature/ü")
_examples = itertools.count()


# ── what hypothesis draws ────────────────────────────────────────────────────


@attrs.frozen
class Push:
    """Commits ``first`` to ``last`` (inclusive) of the graph, into ``repo``."""

    repo: int
    first: int
    last: int
    blobs: tuple[int, ...]
    cached: tuple[int, ...]
    locations: tuple[tuple[int, Location], ...]
    heads: tuple[tuple[int, int], ...]
    twice: bool
    forged: int | None


@attrs.frozen
class Question:
    """``resolve_commits(want, have)`` by commit number (-1: an id nobody has)."""

    repo: int
    want: tuple[int, ...]
    have: tuple[int, ...]


@attrs.frozen
class Scenario:
    parents: tuple[tuple[int, ...], ...]
    manifests: tuple[tuple[int, ...], ...]
    pushes: tuple[Push, ...]
    questions: tuple[tuple[Question, ...], ...]


MISSING_PARENT = -1

sizes = st.none() | st.integers(0, 2**40)
locations = st.builds(
    Location,
    mpack_id=st.sampled_from([fake_id("mpack-a"), fake_id("mpack-b"), fake_id("mpack-c")]),
    offset=sizes,
    length=sizes,
    encoding=st.sampled_from(["identity", "zstd"]),
    mpack_size=sizes,
)


@st.composite
def parents_of(draw: st.DrawFn, index: int) -> tuple[int, ...]:
    """Up to three earlier commits (a merge when more than one); now and then a missing one."""
    choices = st.integers(MISSING_PARENT, index - 1)
    count = draw(st.sampled_from([0, 1, 1, 1, 2, 2, 3] if index else [0, 0, 1]))
    return tuple(draw(st.lists(choices, min_size=0, max_size=count, unique=True)))


@st.composite
def pushes(draw: st.DrawFn, commit_count: int, blob_count: int) -> tuple[Push, ...]:
    cuts = (
        sorted(draw(st.sets(st.integers(1, commit_count - 1), max_size=3)))
        if commit_count > 1
        else []
    )
    bounds = [0, *cuts, commit_count]
    blob_ids = st.integers(0, blob_count - 1)
    made = []
    for first, end in itertools.pairwise(bounds):
        own = st.integers(first, end - 1)
        made.append(
            Push(
                repo=draw(st.integers(0, len(REPOS) - 1)),
                first=first,
                last=end - 1,
                blobs=tuple(draw(st.sets(blob_ids, max_size=blob_count))),
                cached=tuple(draw(st.sets(blob_ids, max_size=3))),
                locations=tuple(draw(st.lists(st.tuples(blob_ids, locations), max_size=6))),
                heads=tuple(draw(st.lists(st.tuples(st.integers(0, 2), own), max_size=3))),
                twice=draw(st.booleans()),
                forged=draw(st.none() | st.integers(0, first - 1)) if first else None,
            )
        )
    return tuple(made)


def questions(commit_count: int, repo: int) -> st.SearchStrategy[Question]:
    """Mostly about the repository just pushed to, and mostly about commits that exist."""
    commit = st.integers(-1, commit_count - 1)
    return st.builds(
        Question,
        repo=st.sampled_from([repo, repo, repo, 1 - repo]),
        want=st.lists(commit, min_size=1, max_size=3).map(tuple),
        have=st.lists(commit, max_size=3).map(tuple),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    commit_count = draw(st.integers(1, 12))
    blob_count = draw(st.integers(1, 8))
    blob_sets = st.sets(st.integers(0, blob_count - 1), max_size=blob_count)
    made_pushes = draw(pushes(commit_count, blob_count))
    return Scenario(
        parents=tuple(draw(parents_of(i)) for i in range(commit_count)),
        manifests=tuple(tuple(draw(blob_sets)) for _ in range(commit_count)),
        pushes=made_pushes,
        questions=tuple(
            tuple(draw(st.lists(questions(commit_count, push.repo), min_size=1, max_size=3)))
            for push in made_pushes
        ),
    )


# ── turning a scenario into ids and batches ──────────────────────────────────


@attrs.frozen
class World:
    """The ids of one example: unique to it, so examples never meet in a shared index."""

    tag: int

    def repo(self, number: int) -> str:
        return f"{REPOS[number]}-{self.tag}"

    def commit(self, number: int) -> str:
        return fake_id(f"{self.tag}-commit-{number}")

    def snapshot(self, number: int) -> str:
        return fake_id(f"{self.tag}-snapshot-{number}")

    def content(self, number: int) -> bytes:
        return f"{self.tag}-blob-{number}".encode()

    def blob(self, number: int) -> str:
        return blob_id(self.content(number))

    def commits(self, scenario: Scenario) -> list[Commit]:
        made = []
        for number, parents in enumerate(scenario.parents):
            parent_ids = [
                self.commit(p) if p != MISSING_PARENT else fake_id(f"{self.tag}-missing")
                for p in parents
            ]
            wire = {
                "commit_id": self.commit(number),
                "snapshot_id": self.snapshot(number),
                "parent_ids": parent_ids,
                "message": f"commit {number} ✓",
                "meta": {"n": number, "raw": bytes([number])},
            }
            made.append(Commit.from_wire(wire))
        return made

    def snapshots(self, scenario: Scenario) -> list[Snapshot]:
        return [
            Snapshot.from_wire(
                {
                    "snapshot_id": self.snapshot(number),
                    "manifest": {f"file-{b}": self.blob(b) for b in manifest},
                    "directories": [],
                }
            )
            for number, manifest in enumerate(scenario.manifests)
        ]

    def forgery(self, number: int, parent: int) -> Commit:
        """Another commit under the id of commit ``number`` (a cycle, when ``parent`` is later)."""
        return Commit(self.commit(number), fake_id("forged"), (self.commit(parent),), {"m": "x"})

    def batch(self, scenario: Scenario, push: Push) -> IndexBatch:
        numbers = range(push.first, push.last + 1)
        commits, snapshots = self.commits(scenario), self.snapshots(scenario)
        forged = [] if push.forged is None else [self.forgery(push.forged, push.last)]
        return IndexBatch(
            commits=[*forged, *(commits[n] for n in numbers)],
            snapshots=[snapshots[n] for n in numbers],
            locations=[(self.blob(b), location) for b, location in push.locations],
            cached=[(self.blob(b), self.content(b)) for b in push.cached],
            branch_heads={BRANCHES[branch]: self.commit(n) for branch, n in push.heads},
        )

    def ids(self, numbers: Sequence[int]) -> list[str]:
        return [self.commit(n) if n >= 0 else fake_id(f"{self.tag}-nobody") for n in numbers]


# ── asking every backend the same thing ──────────────────────────────────────


def commit_answer(commits: Sequence[Commit]) -> list[tuple[str, tuple[str, ...], Any]]:
    return [(c.commit_id, c.parent_ids, c.to_wire()) for c in commits]


async def resolve(index: IndexRepo, repo: str, want: list[str], have: list[str]) -> object:
    try:
        return commit_answer(await index.resolve_commits(repo, want, have))
    except UnknownCommitError as error:
        return ("unknown", error.commit_ids)


async def lookups(index: IndexRepo, world: World, scenario: Scenario) -> dict[str, object]:
    commit_ids = world.ids(range(-1, len(scenario.parents)))
    snapshot_ids = [world.snapshot(n) for n in range(len(scenario.parents))]
    object_ids = [world.blob(b) for b in range(9)]
    answers: dict[str, object] = {}
    for number in range(len(REPOS)):
        repo = world.repo(number)
        loaded = await index.load_snapshots(repo, snapshot_ids)
        answers[f"{repo} commits"] = commit_answer(await index.load_commits(repo, commit_ids))
        answers[f"{repo} snapshots"] = [(s.snapshot_id, s.to_wire()) for s in loaded]
        answers[f"{repo} objects"] = set(await index.known_objects(repo, object_ids))
        answers[f"{repo} heads"] = dict(await index.branch_heads(repo))
    answers["cached"] = dict(await index.find_cached(object_ids))
    found = await index.find_locations(object_ids)
    answers["locations"] = {o: sorted(set(found[o]), key=repr) for o in found}
    return answers


def assert_agree(answers: Mapping[str, object], what: str) -> None:
    oracle = answers[ORACLE]
    for name, answer in answers.items():
        assert answer == oracle, f"{name} disagrees with {ORACLE} on {what}"


@pytest.fixture
async def every_index(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[dict[str, IndexRepo]]:
    """Every index backend, open for the whole test (all its examples)."""
    async with AsyncExitStack() as stack:
        yield {
            name: await stack.enter_async_context(factory(request, tmp_path / name))
            for name, factory in sorted(INDEXES.items())
        }


async def ask(
    indexes: Mapping[str, IndexRepo], world: World, questions: Collection[Question]
) -> None:
    for question in questions:
        repo = world.repo(question.repo)
        want, have = world.ids(question.want), world.ids(question.have)
        answers = {name: await resolve(index, repo, want, have) for name, index in indexes.items()}
        assert_agree(answers, f"resolve_commits({question})")


@pytest.mark.postgres
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
async def test_every_index_agrees_with_the_memory_index(
    every_index: dict[str, IndexRepo], scenario: Scenario
) -> None:
    world = World(next(_examples))
    for push, push_questions in zip(scenario.pushes, scenario.questions, strict=True):
        batch = world.batch(scenario, push)
        for index in every_index.values():
            await index.record(world.repo(push.repo), batch)
            if push.twice:
                await index.record(world.repo(push.repo), batch)
        await ask(every_index, world, push_questions)
    answers = {name: await lookups(index, world, scenario) for name, index in every_index.items()}
    assert_agree(answers, "every lookup")
    await ask(every_index, world, whole_histories(scenario))


def whole_histories(scenario: Scenario) -> list[Question]:
    """Per repository: all its commits, and all of them minus the first pushed half."""
    asked = []
    for repo in range(len(REPOS)):
        pushed = [n for p in scenario.pushes if p.repo == repo for n in range(p.first, p.last + 1)]
        if pushed:
            half = tuple(pushed[: len(pushed) // 2])
            asked += [Question(repo, tuple(pushed), ()), Question(repo, tuple(pushed), half)]
    return asked
