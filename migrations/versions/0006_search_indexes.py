"""search indexes: pg_trgm and trigram/prefix indexes for the map client's search box

`ILIKE '%word%'` over addresses and names is answered by GIN trigram indexes (pg_trgm, which also ranks by
similarity); cadastral numbers are searched by prefix, which a btree with `text_pattern_ops` answers under
any collation.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (index, table, column): GIN trigram indexes for substring search.
TRIGRAM = [
    ("ix_buildings_address_trgm", "buildings", "address"),
    ("ix_facilities_name_trgm", "facilities", "name"),
    ("ix_facilities_address_trgm", "facilities", "address"),
    ("ix_territories_name_trgm", "territories", "name"),
]
PREFIX = ("ix_parcels_cadastral_number_prefix", "parcels", "cadastral_number")


def upgrade() -> None:
    # Extensions live in public, like postgis (search_path is pinned to public on every connection).
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
    for name, table, column in TRIGRAM:
        op.create_index(name, table, [column], schema="cdt", postgresql_using="gin",
                        postgresql_ops={column: "gin_trgm_ops"})
    name, table, column = PREFIX
    op.create_index(name, table, [column], schema="cdt", postgresql_ops={column: "text_pattern_ops"})


def downgrade() -> None:
    # The extension stays: other objects (or a later revision) may use it, and dropping it needs ownership.
    name, table, _ = PREFIX
    op.drop_index(name, table_name=table, schema="cdt")
    for name, table, _ in reversed(TRIGRAM):
        op.drop_index(name, table_name=table, schema="cdt", postgresql_using="gin")
