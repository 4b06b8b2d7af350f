"""The tables of the SQL index, as the adapter reads and writes them.

The migrations in ``adapters/sql/migrations`` build these tables (a test checks
that what they build is exactly what is declared here). Every table is prefixed
``fetchcore_`` so the index can live in a hub's own database. Commits,
snapshots, object membership and branch heads are keyed by repository;
locations and cached content are stored once for all repositories.

Wire fields are kept as msgpack bytes (``fields``), so whatever fetchcore does not
interpret travels through verbatim; a snapshot's fields hold nil in place of
the manifest they repeat. Commit parents are stored twice on purpose: in order
inside the commit row (what a loaded :class:`Commit` says), and as one edge per
row in ``fetchcore_commit_parents`` (what the recursive walk joins).

A location's unknown offset, length or mpack size is NULL. Unique constraints
treat NULLs as distinct, so the uniqueness of a location is an expression index
over the NULLs mapped to -1: recording the same location twice stays one row.
"""

from __future__ import annotations

import sqlalchemy as sa

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}
UNKNOWN = -1
"""What a NULL offset, length or mpack size counts as in the location uniqueness index."""

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

commits = sa.Table(
    "fetchcore_commits",
    metadata,
    sa.Column("repo_id", sa.Text, primary_key=True),
    sa.Column("commit_id", sa.Text, primary_key=True),
    sa.Column("snapshot_id", sa.Text, nullable=False),
    sa.Column("parent_ids", sa.LargeBinary, nullable=False),
    sa.Column("fields", sa.LargeBinary, nullable=False),
)

commit_parents = sa.Table(
    "fetchcore_commit_parents",
    metadata,
    sa.Column("repo_id", sa.Text, primary_key=True),
    sa.Column("commit_id", sa.Text, primary_key=True),
    sa.Column("parent_id", sa.Text, primary_key=True),
)

snapshots = sa.Table(
    "fetchcore_snapshots",
    metadata,
    sa.Column("repo_id", sa.Text, primary_key=True),
    sa.Column("snapshot_id", sa.Text, primary_key=True),
    sa.Column("manifest", sa.LargeBinary, nullable=False),
    sa.Column("fields", sa.LargeBinary, nullable=False),
    sa.Column("manifest_in_fields", sa.Boolean, nullable=False),
)

repo_objects = sa.Table(
    "fetchcore_repo_objects",
    metadata,
    sa.Column("repo_id", sa.Text, primary_key=True),
    sa.Column("object_id", sa.Text, primary_key=True),
)

locations = sa.Table(
    "fetchcore_locations",
    metadata,
    sa.Column("object_id", sa.Text, nullable=False),
    sa.Column("mpack_id", sa.Text, nullable=False),
    sa.Column("byte_offset", sa.BigInteger, nullable=True),
    sa.Column("byte_length", sa.BigInteger, nullable=True),
    sa.Column("encoding", sa.Text, nullable=False),
    sa.Column("mpack_size", sa.BigInteger, nullable=True),
)

LOCATION_KEY = (
    locations.c.object_id,
    locations.c.mpack_id,
    sa.func.coalesce(locations.c.byte_offset, UNKNOWN),
    sa.func.coalesce(locations.c.byte_length, UNKNOWN),
    locations.c.encoding,
    sa.func.coalesce(locations.c.mpack_size, UNKNOWN),
)
sa.Index("ix_fetchcore_locations_key", *LOCATION_KEY, unique=True)
# referenced_mpacks (the lifecycle) looks locations up by mpack.
sa.Index("ix_fetchcore_locations_mpack", locations.c.mpack_id)

cached = sa.Table(
    "fetchcore_cached",
    metadata,
    sa.Column("object_id", sa.Text, primary_key=True),
    sa.Column("content", sa.LargeBinary, nullable=False),
)

branch_heads = sa.Table(
    "fetchcore_branch_heads",
    metadata,
    sa.Column("repo_id", sa.Text, primary_key=True),
    sa.Column("branch", sa.Text, primary_key=True),
    sa.Column("commit_id", sa.Text, nullable=False),
)
