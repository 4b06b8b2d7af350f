"""Fixtures that hand every suite its adapters, from the tables in tests/backends.py."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
from fetchcore.adapters.recording import RecordingObjectStore
from hypothesis import settings

from fetchcore.ports import IndexRepo, ObjectStore
from tests.backends import INDEXES, STACKS, STORES
from tests.pg_support import pg_database_url  # noqa: F401  (the session's PostgreSQL database)
from tests.s3_support import s3_endpoint  # noqa: F401  (the session's S3 server fixture)
from tests.unit.observe.test_telemetry import telemetry  # noqa: F401  (in-memory OpenTelemetry)

# Hypothesis: CI must be deterministic (the same examples every run, nothing read from
# or written to an example database); elsewhere each run draws new seeds, and
# `nox -s explore` runs the property tests with random seeds and more examples.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev")
settings.register_profile("explore", max_examples=2_000, print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev")
)


@pytest.fixture(params=sorted(STORES))
async def object_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ObjectStore]:
    """Each object store backend in turn."""
    async with STORES[request.param](request, tmp_path) as store:
        yield store


@pytest.fixture(params=sorted(INDEXES))
async def index_repo(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IndexRepo]:
    """Each index backend in turn."""
    async with INDEXES[request.param](request, tmp_path) as index:
        yield index


@attrs.frozen
class Stack:
    """An index and a store that a scenario runs on; the store records every call."""

    index: IndexRepo
    store: RecordingObjectStore


@pytest.fixture(params=STACKS, ids=[f"{index}+{store}" for index, store in STACKS])
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    """Each (index, store) pair of the end-to-end scenarios in turn."""
    index_name, store_name = request.param
    async with (
        INDEXES[index_name](request, tmp_path / "index") as index,
        STORES[store_name](request, tmp_path / "store") as store,
    ):
        yield Stack(index, RecordingObjectStore(store))
