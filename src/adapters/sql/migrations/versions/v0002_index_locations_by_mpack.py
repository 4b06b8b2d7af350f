"""Index the object locations by push mpack.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

``referenced_mpacks`` (the lifecycle's collection of unreferenced push mpacks)
asks which mpacks some location points into; without this index each of its
queries scans every location.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_fetchcore_locations_mpack", "fetchcore_locations", ["mpack_id"])


def downgrade() -> None:
    op.drop_index("ix_fetchcore_locations_mpack", table_name="fetchcore_locations")
