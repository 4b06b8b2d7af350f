"""Create the SQL index: commits and their parent edges, snapshots, repository
membership of objects, object locations, the content cache and branch heads.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

The tables are spelled out here rather than taken from ``fetchcore.adapters.sql.schema``:
a migration records what the schema was at its revision, whatever it becomes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("fetchcore",)
depends_on: str | Sequence[str] | None = None

_UNKNOWN = -1


def _create_commit_tables() -> None:
    op.create_table(
        "fetchcore_commits",
        sa.Column("repo_id", sa.Text, nullable=False),
        sa.Column("commit_id", sa.Text, nullable=False),
        sa.Column("snapshot_id", sa.Text, nullable=False),
        sa.Column("parent_ids", sa.LargeBinary, nullable=False),
        sa.Column("fields", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("repo_id", "commit_id", name="pk_fetchcore_commits"),
    )
    op.create_table(
        "fetchcore_commit_parents",
        sa.Column("repo_id", sa.Text, nullable=False),
        sa.Column("commit_id", sa.Text, nullable=False),
        sa.Column("parent_id", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint(
            "repo_id", "commit_id", "parent_id", name="pk_fetchcore_commit_parents"
        ),
    )
    op.create_table(
        "fetchcore_snapshots",
        sa.Column("repo_id", sa.Text, nullable=False),
        sa.Column("snapshot_id", sa.Text, nullable=False),
        sa.Column("manifest", sa.LargeBinary, nullable=False),
        sa.Column("fields", sa.LargeBinary, nullable=False),
        sa.Column("manifest_in_fields", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("repo_id", "snapshot_id", name="pk_fetchcore_snapshots"),
    )


def _create_object_tables() -> None:
    op.create_table(
        "fetchcore_repo_objects",
        sa.Column("repo_id", sa.Text, nullable=False),
        sa.Column("object_id", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("repo_id", "object_id", name="pk_fetchcore_repo_objects"),
    )
    op.create_table(
        "fetchcore_locations",
        sa.Column("object_id", sa.Text, nullable=False),
        sa.Column("mpack_id", sa.Text, nullable=False),
        sa.Column("byte_offset", sa.BigInteger, nullable=True),
        sa.Column("byte_length", sa.BigInteger, nullable=True),
        sa.Column("encoding", sa.Text, nullable=False),
        sa.Column("mpack_size", sa.BigInteger, nullable=True),
    )
    op.create_index(
        "ix_fetchcore_locations_key",
        "fetchcore_locations",
        [
            "object_id",
            "mpack_id",
            sa.text(f"coalesce(byte_offset, {_UNKNOWN})"),
            sa.text(f"coalesce(byte_length, {_UNKNOWN})"),
            "encoding",
            sa.text(f"coalesce(mpack_size, {_UNKNOWN})"),
        ],
        unique=True,
    )
    op.create_table(
        "fetchcore_cached",
        sa.Column("object_id", sa.Text, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("object_id", name="pk_fetchcore_cached"),
    )


def _create_branch_heads() -> None:
    op.create_table(
        "fetchcore_branch_heads",
        sa.Column("repo_id", sa.Text, nullable=False),
        sa.Column("branch", sa.Text, nullable=False),
        sa.Column("commit_id", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("repo_id", "branch", name="pk_fetchcore_branch_heads"),
    )


def upgrade() -> None:
    _create_commit_tables()
    _create_object_tables()
    _create_branch_heads()


def downgrade() -> None:
    op.drop_index("ix_fetchcore_locations_key", table_name="fetchcore_locations")
    for table in (
        "fetchcore_branch_heads",
        "fetchcore_cached",
        "fetchcore_locations",
        "fetchcore_repo_objects",
        "fetchcore_snapshots",
        "fetchcore_commit_parents",
        "fetchcore_commits",
    ):
        op.drop_table(table)
