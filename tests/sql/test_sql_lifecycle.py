"""Deleting a repository on PostgreSQL while another repository's record is in flight."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from fetchcore.adapters.sql import SqlIndexRepo, rows, schema

from fetchcore import IndexBatch, Location
from fetchcore.lifecycle import delete_repository
from fetchcore.testing import blob_id, fake_id
from tests.pg_support import empty_tables

SHARED = blob_id(b"shared by alice and bob")
LOCATION = Location(fake_id("mpack"), 10, 20)
BATCH = IndexBatch(locations=[(SHARED, LOCATION)])


@pytest.fixture
async def pg_index(pg_database_url: str) -> AsyncIterator[SqlIndexRepo]:
    async with SqlIndexRepo.connect(pg_database_url) as index:
        await empty_tables(index)
        yield index


@pytest.mark.postgres
async def test_a_record_in_flight_keeps_the_object_it_makes_bob_a_member_of(
    pg_index: SqlIndexRepo,
) -> None:
    """The race the membership lock closes: Bob's record has written his membership and
    found the location already there (so inserted nothing), but has not committed, when
    Alice's deletion decides which objects nobody else has."""
    await pg_index.record("alice", BATCH)
    bob = rows.batch_rows("bob", BATCH)
    async with pg_index.engine.connect() as conn, conn.begin():
        await pg_index.dialect.write_rows(conn, schema.repo_objects, bob.repo_objects)
        await pg_index.dialect.write_rows(conn, schema.locations, bob.locations)
        deletion = asyncio.create_task(delete_repository(pg_index, "alice"))
        await asyncio.sleep(0.3)
        assert not deletion.done()  # it waits for Bob's record to finish
    deleted = await deletion
    assert deleted.released_objects == 0
    assert dict(await pg_index.find_locations([SHARED])) == {SHARED: [LOCATION]}
