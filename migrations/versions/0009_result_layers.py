"""analysis results as layers: walking access per building, service provision per hexagonal district

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLES = {"walk_access": "geom", "service_provision": "geom"}


def upgrade() -> None:
    op.create_table(
        "walk_access",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("building_id", sa.Integer(), nullable=False),
        sa.Column("residents", sa.Integer(), nullable=True),
        *[sa.Column(f"{kind}_min", sa.Float(), nullable=True)
          for kind in ("kindergarten", "school", "polyclinic", "pharmacy", "stop", "park")],
        sa.Column("score_15min", sa.Float(), nullable=True),
        sa.Column("territory_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("geom", Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False),
        sa.ForeignKeyConstraint(["building_id"], ["cdt.buildings.id"], name=op.f("fk_walk_access_building_id_buildings"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["territory_id"], ["cdt.territories.id"],
                                name=op.f("fk_walk_access_territory_id_territories")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_walk_access")),
        sa.UniqueConstraint("building_id", name=op.f("uq_walk_access_building_id")),
        schema="cdt",
    )
    op.create_index("ix_walk_access_geom", "walk_access", ["geom"], schema="cdt", postgresql_using="gist")
    op.create_index(op.f("ix_walk_access_territory_id"), "walk_access", ["territory_id"], schema="cdt")
    op.create_table(
        "service_provision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("facility_type", sa.Text(), nullable=False),
        sa.Column("hex", sa.Text(), nullable=False),
        *[sa.Column(name, sa.Float(), nullable=True)
          for name in ("residents", "demand", "served", "deficit", "covered_share")],
        sa.Column("territory_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("geom", Geometry("POLYGON", srid=4326, spatial_index=False), nullable=False),
        sa.ForeignKeyConstraint(["facility_type"], ["cdt.facility_types.code"],
                                name=op.f("fk_service_provision_facility_type_facility_types")),
        sa.ForeignKeyConstraint(["territory_id"], ["cdt.territories.id"],
                                name=op.f("fk_service_provision_territory_id_territories")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_provision")),
        sa.UniqueConstraint("facility_type", "territory_id", "hex",
                            name=op.f("uq_service_provision_facility_type_territory_id_hex")),
        schema="cdt",
    )
    op.create_index("ix_service_provision_geom", "service_provision", ["geom"], schema="cdt", postgresql_using="gist")
    op.create_index(op.f("ix_service_provision_facility_type"), "service_provision", ["facility_type"],
                    schema="cdt")
    op.create_index(op.f("ix_service_provision_territory_id"), "service_provision", ["territory_id"],
                    schema="cdt")
    # Like every layer: exact row counts for numberMatched, and tiles dropped where results change.
    for table, column in TABLES.items():
        op.execute(f"SELECT cdt.count_rows_of('cdt.{table}')")
        op.execute(f"SELECT cdt.cache_tiles('cdt.{table}', '{column}')")


def downgrade() -> None:
    op.execute("DELETE FROM cdt.tile_cache WHERE tileset IN ('walk_access', 'service_provision', 'basemap')")
    for table in TABLES:
        op.execute(f"DELETE FROM cdt.row_counts WHERE table_name = '{table}'")
        op.drop_table(table, schema="cdt")
