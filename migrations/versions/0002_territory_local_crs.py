"""territories.local_crs: the regional МСК offered by the OGC API for the territory

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("territories", sa.Column("local_crs", sa.Text(), nullable=True), schema="cdt")


def downgrade() -> None:
    op.drop_column("territories", "local_crs", schema="cdt")
