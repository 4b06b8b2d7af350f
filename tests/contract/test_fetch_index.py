"""The read-port (FetchIndex) contract on every index backend, seeded through ``record``.

The suite itself is in fetch_index_suite.py, so that a read-only adapter (the
hub example under examples/) runs it too, with a seeding fixture of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.backends import INDEXES
from tests.contract.fetch_index_suite import (
    SeededIndex,
    TestBranchHeads,
    TestGraphEdgeCases,
    TestLoading,
    TestObjects,
    TestResolveCommits,
    test_satisfies_the_read_protocol,
)

__all__ = [
    "TestBranchHeads",
    "TestGraphEdgeCases",
    "TestLoading",
    "TestObjects",
    "TestResolveCommits",
    "test_satisfies_the_read_protocol",
]


@pytest.fixture(params=sorted(INDEXES))
async def seeded_index(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[SeededIndex]:
    """Each index backend in turn, seeded through its own write port."""
    async with INDEXES[request.param](request, tmp_path) as index:
        yield SeededIndex(index, index.record)
