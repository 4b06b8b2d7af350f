"""Load on every stack: 32 concurrent fetches while 8 overlapping pushes land.

Every fetch must be correct (exactly the expected blobs, every one verified),
every push must be indexed, and nothing may deadlock or error.
"""

from __future__ import annotations

import asyncio
import random

import attrs

from fetchcore import FetchResult, ingest_push, serve_fetch
from fetchcore.ids import canonical, matches
from fetchcore.testing import blob_id
from fetchcore.wire import decode_fetch
from tests.conftest import Stack
from tests.scenarios.seeding import push_of

REPOS = ("load/one", "load/two")
PUSHES = 8
FETCHES = 32


def shared(index: int) -> bytes:
    return f"shared blob {index} ".encode() * 40


def own(push: int, index: int) -> bytes:
    return random.Random(f"{push}-{index}").randbytes(900)


@attrs.frozen
class Push:
    repo_id: str
    data: bytes
    commit_id: str
    expected: frozenset[str]


def overlapping_pushes(base: str, base_files: dict[str, bytes]) -> list[Push]:
    """Children of ``base``: all share blobs with each other and carry their own too."""
    pushes = []
    for number in range(PUSHES):
        files = dict(base_files)
        files.update({f"shared/{i}": shared(i) for i in range(number % 4, number % 4 + 6)})
        files.update({f"own/{number}/{i}": own(number, i) for i in range(10)})
        carried = {path: content for path, content in files.items() if path not in base_files}
        data, commit_id = push_of(
            f"child-{number}", files, parents=[base], carried=carried, branch=f"branch-{number}"
        )
        expected = frozenset(blob_id(c) for c in files.values())
        pushes.append(Push(REPOS[number % 2], data, commit_id, expected))
    return pushes


async def assert_correct(stack: Stack, result: FetchResult, expected: frozenset[str]) -> None:
    data = await stack.store.inner.get_fetch(result.mpack_id)
    assert data is not None
    blobs = decode_fetch(data)["blobs"]
    assert {canonical(b["object_id"]) for b in blobs} == expected
    assert all(matches(b["object_id"], b["content"]) for b in blobs)


async def test_concurrent_fetches_and_overlapping_pushes(stack: Stack) -> None:
    base_files = {f"base/{i}": shared(100 + i) for i in range(20)}
    base_expected = frozenset(blob_id(c) for c in base_files.values())
    base_data, base = push_of("base", base_files)
    for repo_id in REPOS:
        await ingest_push(stack.index, stack.store, repo_id=repo_id, mpack=base_data)
    pushes = overlapping_pushes(base, base_files)

    async def fetch_base(number: int) -> None:
        repo_id = REPOS[number % 2]
        result = await serve_fetch(stack.index, stack.store, repo_id=repo_id, want=[base])
        await assert_correct(stack, result, base_expected)

    async def push(p: Push) -> None:
        await ingest_push(stack.index, stack.store, repo_id=p.repo_id, mpack=p.data)

    async with asyncio.timeout(120):
        await asyncio.gather(*(push(p) for p in pushes), *(fetch_base(n) for n in range(FETCHES)))

    async def fetch_head(number: int) -> None:
        p = pushes[number % PUSHES]
        result = await serve_fetch(stack.index, stack.store, repo_id=p.repo_id, want=[p.commit_id])
        assert result.commit_count == 2
        await assert_correct(stack, result, p.expected)

    async with asyncio.timeout(120):
        await asyncio.gather(*(fetch_head(n) for n in range(FETCHES)))
    for repo_id in REPOS:
        heads = await stack.index.branch_heads(repo_id)
        assert len(heads) == 1 + PUSHES // 2
