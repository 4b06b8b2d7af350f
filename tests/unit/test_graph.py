"""The commit walk against a brute-force oracle on random graphs."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from fetchcore.graph import ancestors_or_self, commits_to_send, find_cycle, parents_first
from fetchcore.model import Commit


@st.composite
def dags(draw: st.DrawFn) -> dict[str, Commit]:
    """Random commit DAGs: each commit has 0-2 parents among earlier commits (merges included)."""
    size = draw(st.integers(1, 25))
    names = [f"c{i:02d}" for i in range(size)]
    draw(st.randoms(use_true_random=False)).shuffle(names)  # ids unrelated to topological order
    commits: dict[str, Commit] = {}
    for index, name in enumerate(names):
        earlier = names[:index]
        parents = (
            draw(st.lists(st.sampled_from(earlier), max_size=2, unique=True)) if earlier else []
        )
        commits[name] = Commit(name, f"s-{name}", parents)
    return commits


def oracle_ancestors(commits: dict[str, Commit], start: str) -> set[str]:
    """Ancestors-or-self by plain recursion over the definition."""
    if start not in commits:
        return set()
    found = {start}
    for parent in commits[start].parent_ids:
        found |= oracle_ancestors(commits, parent)
    return found


def is_parents_first(order: list[Commit]) -> bool:
    position = {commit.commit_id: i for i, commit in enumerate(order)}
    return all(
        position[parent] < position[commit.commit_id]
        for commit in order
        for parent in commit.parent_ids
        if parent in position
    )


class TestAgainstTheOracle:
    @settings(max_examples=300)
    @given(dags(), st.data())
    def test_sent_commits_are_want_ancestry_minus_have_ancestry(
        self, commits: dict[str, Commit], data: st.DataObject
    ) -> None:
        names = sorted(commits)
        want = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=3))
        have = data.draw(st.lists(st.sampled_from([*names, "unknown"]), max_size=3))
        expected = set().union(*(oracle_ancestors(commits, w) for w in want))
        expected -= set().union(set(), *(oracle_ancestors(commits, h) for h in have))
        sent = commits_to_send(commits, want, have)
        assert {c.commit_id for c in sent} == expected
        assert len(sent) == len(expected)
        assert is_parents_first(sent)

    @settings(max_examples=200)
    @given(dags(), st.randoms(use_true_random=False))
    def test_the_order_does_not_depend_on_the_input_order(
        self, commits: dict[str, Commit], rng: random.Random
    ) -> None:
        shuffled = list(commits.values())
        rng.shuffle(shuffled)
        assert parents_first(shuffled) == parents_first(list(commits.values()))


class TestBadData:
    def test_a_cycle_terminates_and_keeps_every_commit(self) -> None:
        commits = {
            "a": Commit("a", "s", ["c"]),
            "b": Commit("b", "s", ["a"]),
            "c": Commit("c", "s", ["b"]),
            "d": Commit("d", "s", ["c"]),
        }
        sent = commits_to_send(commits, ["d"], [])
        assert [c.commit_id for c in sent] == ["a", "b", "c", "d"]

    def test_a_self_parent_is_no_obstacle(self) -> None:
        commits = {"a": Commit("a", "s", ["a"]), "b": Commit("b", "s", ["a", "b"])}
        assert [c.commit_id for c in commits_to_send(commits, ["b"], [])] == ["a", "b"]

    def test_dangling_parents_are_ignored(self) -> None:
        commits = {"a": Commit("a", "s", ["missing"])}
        assert ancestors_or_self(["a"], {"a": ("missing",)}) == {"a"}
        assert [c.commit_id for c in commits_to_send(commits, ["a"], [])] == ["a"]

    def test_a_long_history_does_not_recurse(self) -> None:
        commits = {
            f"{i:05d}": Commit(f"{i:05d}", "s", [f"{i - 1:05d}"] if i else [])
            for i in range(20_000)
        }
        sent = commits_to_send(commits, ["19999"], ["09999"])
        assert [c.commit_id for c in sent] == [f"{i:05d}" for i in range(10_000, 20_000)]


class TestFindCycle:
    def test_a_commit_that_is_its_own_parent_is_a_cycle_of_one(self) -> None:
        assert find_cycle({"a": ["a"]}) == ["a"]

    def test_two_commits_that_are_each_others_parent_are_a_cycle(self) -> None:
        assert find_cycle({"a": ["b"], "b": ["a"]}) == ["a", "b"]

    def test_a_longer_cycle_is_named_without_its_tail(self) -> None:
        parents = {"tip": ["b"], "b": ["c"], "c": ["d"], "d": ["b"], "root": []}
        assert sorted(find_cycle(parents)) == ["b", "c", "d"]

    def test_merges_and_dangling_parents_are_not_cycles(self) -> None:
        parents = {"m": ["a", "b"], "a": ["root"], "b": ["root"], "root": ["elsewhere"]}
        assert find_cycle(parents) == []

    def test_a_long_history_does_not_recurse(self) -> None:
        parents = {f"c{i}": [f"c{i - 1}"] if i else [] for i in range(100_000)}
        assert find_cycle(parents) == []
        parents["c0"] = ["c99999"]
        assert len(find_cycle(parents)) == 100_000

    @settings(max_examples=200)
    @given(dags())
    def test_a_dag_has_no_cycle(self, commits: dict[str, Commit]) -> None:
        assert find_cycle({c: commit.parent_ids for c, commit in commits.items()}) == []
