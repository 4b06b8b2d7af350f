"""The commit walk: which commits a fetch sends, and in which order. Pure.

Rules this module keeps:
- Commits sent = ancestors-or-self of ``want`` minus ancestors-or-self of ``have``,
  inside the commits the repository knows (unknown ids are ignored here).
- Order is parents first; among commits that are ready, the smallest id first,
  so the order depends only on the graph, never on the input order.
- Bad data (cycles, self-parents, dangling parents) never hangs a walk.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence

from fetchcore.model import Commit


def ancestors_or_self(starts: Iterable[str], parents_of: Mapping[str, Sequence[str]]) -> set[str]:
    """Every commit reachable from ``starts`` by parent links, among the keys of ``parents_of``."""
    seen: set[str] = set()
    stack = [commit_id for commit_id in starts if commit_id in parents_of]
    while stack:
        commit_id = stack.pop()
        if commit_id in seen:
            continue
        seen.add(commit_id)
        stack.extend(p for p in parents_of[commit_id] if p in parents_of and p not in seen)
    return seen


def find_cycle(parents_of: Mapping[str, Sequence[str]]) -> list[str]:
    """The commits of one parent cycle among the keys of ``parents_of`` ([] if none).

    A commit that is its own parent is a cycle of one. Iterative (no recursion limit):
    a depth-first walk that colours each commit on entry and on exit.
    """
    done: set[str] = set()
    for root in sorted(parents_of):
        if root in done:
            continue
        path: list[str] = [root]
        on_path = {root}
        pending = [iter(parents_of[root])]
        while pending:
            parent = next((p for p in pending[-1] if p in parents_of and p not in done), None)
            if parent is None:
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                pending.pop()
                continue
            if parent in on_path:
                return path[path.index(parent) :]
            path.append(parent)
            on_path.add(parent)
            pending.append(iter(parents_of[parent]))
    return []


def parents_first(commits: Iterable[Commit]) -> list[Commit]:
    """Order commits so that every parent in the set comes before its children.

    Among commits whose parents are all placed, the smallest commit id comes
    first. A cycle is broken at its smallest id, so bad data still terminates.
    """
    by_id = {commit.commit_id: commit for commit in commits}
    children: dict[str, list[str]] = {commit_id: [] for commit_id in by_id}
    waiting_on: dict[str, int] = {}
    for commit_id, commit in by_id.items():
        parents = {p for p in commit.parent_ids if p in by_id and p != commit_id}
        waiting_on[commit_id] = len(parents)
        for parent in parents:
            children[parent].append(commit_id)
    ready = [commit_id for commit_id, count in waiting_on.items() if count == 0]
    heapq.heapify(ready)
    ordered: list[Commit] = []
    while len(ordered) < len(by_id):
        if not ready:
            ready = [min(c for c, count in waiting_on.items() if count > 0)]
        commit_id = heapq.heappop(ready)
        waiting_on[commit_id] = -1
        ordered.append(by_id[commit_id])
        for child in children[commit_id]:
            if waiting_on[child] > 0:
                waiting_on[child] -= 1
                if waiting_on[child] == 0:
                    heapq.heappush(ready, child)
    return ordered


def commits_to_send(
    commits: Mapping[str, Commit], want: Iterable[str], have: Iterable[str]
) -> list[Commit]:
    """Ancestors-or-self of ``want`` minus ancestors-or-self of ``have``, parents first.

    Args:
        commits: every commit of the repository, by id.
        want: commits the client asks for (ids outside ``commits`` are ignored).
        have: commits the client already has (ids outside ``commits`` are ignored).
    """
    parents_of = {commit_id: commit.parent_ids for commit_id, commit in commits.items()}
    sent = ancestors_or_self(want, parents_of) - ancestors_or_self(have, parents_of)
    return parents_first(commits[commit_id] for commit_id in sent)
