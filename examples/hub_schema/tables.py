"""The hub's own tables (what its models already declare), shaped like the seed's.

Objects carry a content cache and a storage URI; the mpack index says which
push mpack holds an object, without byte offsets; commits and snapshots are
stored once and tied to repositories by ref tables; a snapshot's manifest is a
msgpack blob.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

objects = sa.Table(
    "hub_objects",
    metadata,
    sa.Column("object_id", sa.Text, primary_key=True),
    sa.Column("path", sa.Text),
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("storage_uri", sa.Text),
    sa.Column("content_cache", sa.LargeBinary, nullable=True),
)
mpack_index = sa.Table(
    "hub_mpack_index",
    metadata,
    sa.Column("entity_id", sa.Text, primary_key=True),
    sa.Column("mpack_id", sa.Text, primary_key=True),
    sa.Column("entity_type", sa.Text, nullable=False),
)
commits = sa.Table(
    "hub_commits",
    metadata,
    sa.Column("commit_id", sa.Text, primary_key=True),
    sa.Column("branch", sa.Text),
    sa.Column("parent_ids", sa.JSON, nullable=False),
    sa.Column("message", sa.Text),
    sa.Column("author", sa.Text),
    sa.Column("snapshot_id", sa.Text, nullable=False),
)
commit_refs = sa.Table(
    "hub_commit_refs",
    metadata,
    sa.Column("repo_id", sa.Text, primary_key=True),
    sa.Column("commit_id", sa.Text, primary_key=True),
)
snapshots = sa.Table(
    "hub_snapshots",
    metadata,
    sa.Column("snapshot_id", sa.Text, primary_key=True),
    sa.Column("directories", sa.JSON, nullable=False),
    sa.Column("manifest_blob", sa.LargeBinary, nullable=False),
    sa.Column("entry_count", sa.Integer, nullable=False),
)
snapshot_refs = sa.Table(
    "hub_snapshot_refs",
    metadata,
    sa.Column("repo_id", sa.Text, primary_key=True),
    sa.Column("snapshot_id", sa.Text, primary_key=True),
)
branches = sa.Table(
    "hub_branches",
    metadata,
    sa.Column("repo_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("head_commit_id", sa.Text, nullable=False),
)
