"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 22:08:18.243843
"""

from __future__ import annotations

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


VERSIONED = [
    "territories",
    "parcels",
    "buildings",
    "street_nodes",
    "street_edges",
    "facilities",
    "utility_nodes",
    "utility_lines",
    "functional_zones",
    "planned_facilities",
    "zoning_zones",
    "water",
    "railways",
    "planning_norms",
]

# Row versions and history are kept by the database, so an edit by any path (API, loader,
# plain SQL) is stamped and recorded the same way. The actor comes from `SET LOCAL cdt.actor`.
FUNCTIONS = r"""
CREATE FUNCTION cdt.actor() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('cdt.actor', true), ''), session_user::text)
$$;

-- BEFORE INSERT/UPDATE: stamp version and who/when. An UPDATE that changes nothing
-- is dropped (RETURN NULL) so re-loading identical data bumps no version.
-- TG_ARGV lists generated columns, which BEFORE triggers cannot compare.
CREATE FUNCTION cdt.stamp_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  meta text[] := ARRAY['version', 'created_at', 'created_by', 'updated_at', 'updated_by'] || TG_ARGV;
BEGIN
  IF TG_OP = 'INSERT' THEN
    NEW.version := 1;
    NEW.created_at := now(); NEW.created_by := cdt.actor();
    NEW.updated_at := now(); NEW.updated_by := cdt.actor();
    RETURN NEW;
  END IF;
  IF (to_jsonb(NEW) - meta) = (to_jsonb(OLD) - meta) THEN
    RETURN NULL;
  END IF;
  NEW.version := OLD.version + 1;
  NEW.created_at := OLD.created_at; NEW.created_by := OLD.created_by;
  NEW.updated_at := now(); NEW.updated_by := cdt.actor();
  RETURN NEW;
END $$;

-- AFTER ... FOR EACH STATEMENT with transition tables: one INSERT per statement,
-- so a bulk load of 25,000 rows writes its history in one pass.
CREATE FUNCTION cdt.record_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO cdt.history (collection, feature_id, version, operation, before, after, actor)
    SELECT TG_TABLE_NAME, n.id::text, n.version, TG_OP, NULL, to_jsonb(n), cdt.actor() FROM new_rows n;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO cdt.history (collection, feature_id, version, operation, before, after, actor)
    SELECT TG_TABLE_NAME, n.id::text, n.version, TG_OP, to_jsonb(o), to_jsonb(n), cdt.actor()
    FROM new_rows n JOIN old_rows o ON o.id = n.id;
  ELSE
    INSERT INTO cdt.history (collection, feature_id, version, operation, before, after, actor)
    SELECT TG_TABLE_NAME, o.id::text, o.version, TG_OP, to_jsonb(o), NULL, cdt.actor() FROM old_rows o;
  END IF;
  RETURN NULL;
END $$;

-- Install stamping and history on a table; later migrations call it for new layers.
CREATE FUNCTION cdt.track_changes(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  generated text := (
    SELECT string_agg(quote_literal(attname), ', ') FROM pg_attribute
    WHERE attrelid = tbl AND attgenerated <> '' AND NOT attisdropped);
  name text := (SELECT relname FROM pg_class WHERE oid = tbl);
BEGIN
  EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION cdt.stamp_row(%s)',
                 name || '_stamp', tbl, coalesce(generated, ''));
  EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows '
                 'FOR EACH STATEMENT EXECUTE FUNCTION cdt.record_history()', name || '_history_ins', tbl);
  EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                 'FOR EACH STATEMENT EXECUTE FUNCTION cdt.record_history()', name || '_history_upd', tbl);
  EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows '
                 'FOR EACH STATEMENT EXECUTE FUNCTION cdt.record_history()', name || '_history_del', tbl);
END $$;
"""

# Rosreestr classifier dCategories (land categories of the Land Code, art. 7).
LAND_CATEGORIES = [
    ("003001000000", "Земли сельскохозяйственного назначения"),
    ("003002000000", "Земли населенных пунктов"),
    (
        "003003000000",
        "Земли промышленности, энергетики, транспорта, связи, радиовещания, телевидения, "
        "информатики, земли для обеспечения космической деятельности, земли обороны, "
        "безопасности и земли иного специального назначения",
    ),
    ("003004000000", "Земли особо охраняемых территорий и объектов"),
    ("003005000000", "Земли лесного фонда"),
    ("003006000000", "Земли водного фонда"),
    ("003007000000", "Земли запаса"),
    ("003008000000", "Категория не установлена"),
]

# code, Russian name, English name, sector, capacity unit
FACILITY_TYPES = [
    ("kindergarten", "Детский сад", "Kindergarten", "education", "places"),
    ("school", "Общеобразовательная школа", "School", "education", "places"),
    ("college", "Колледж, техникум", "College", "education", "places"),
    ("university", "Высшее учебное заведение", "University", "education", "places"),
    ("polyclinic", "Поликлиника", "Polyclinic", "health", "visits per shift"),
    ("hospital", "Больница", "Hospital", "health", "beds"),
    ("pharmacy", "Аптека", "Pharmacy", "health", "units"),
    ("sports", "Спортивное сооружение", "Sports facility", "sport", "m2"),
    ("culture", "Учреждение культуры", "Cultural facility", "culture", "seats"),
    ("library", "Библиотека", "Library", "culture", "volumes"),
    ("boiler_house", "Котельная", "Boiler house", "energy", "Gcal/h"),
    ("substation", "Трансформаторная подстанция", "Substation", "energy", "MVA"),
]

# SP 42.13330.2016 "Urban development. Urban and rural planning and development", section 10
# (service radii of everyday facilities). Per-1,000 demand differs by region: it is data,
# loaded with its regional source document, not seeded here.
SP42 = "СП 42.13330.2016, раздел 10 (радиусы обслуживания)"
FEDERAL_NORMS = [
    ("kindergarten", None, 300.0),
    ("kindergarten", "low-rise or rural", 500.0),
    ("school", None, 500.0),
    ("polyclinic", None, 1000.0),
    ("pharmacy", None, 500.0),
]


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis SCHEMA public")
    op.execute("CREATE EXTENSION IF NOT EXISTS pgrouting SCHEMA public")
    op.execute("CREATE SCHEMA IF NOT EXISTS cdt")
    op.execute(FUNCTIONS)
    op.create_table(
        "facility_types",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name_ru", sa.Text(), nullable=False),
        sa.Column("name_en", sa.Text(), nullable=False),
        sa.Column("sector", sa.Text(), nullable=False),
        sa.Column("capacity_unit", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_facility_types")),
        schema="cdt",
    )
    op.create_table(
        "history",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("collection", sa.Text(), nullable=False),
        sa.Column("feature_id", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_history")),
        schema="cdt",
    )
    op.create_index(
        "ix_history_feature", "history", ["collection", "feature_id", "version"], unique=False, schema="cdt"
    )
    op.create_table(
        "ingest_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("layer", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("report", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("loaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ingest_runs")),
        schema="cdt",
    )
    op.create_index(op.f("ix_ingest_runs_fingerprint"), "ingest_runs", ["fingerprint"], unique=False, schema="cdt")
    op.create_table(
        "land_categories",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_land_categories")),
        schema="cdt",
    )
    op.create_table(
        "railways",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="LINESTRING",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_railways")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_railways_source_source_id")),
        schema="cdt",
    )
    op.create_index("ix_railways_geom", "railways", ["geom"], unique=False, schema="cdt", postgresql_using="gist")
    op.create_table(
        "street_nodes",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_street_nodes")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_street_nodes_source_source_id")),
        schema="cdt",
    )
    op.create_index(
        "ix_street_nodes_geom", "street_nodes", ["geom"], unique=False, schema="cdt", postgresql_using="gist"
    )
    op.create_table(
        "territories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("oktmo", sa.Text(), nullable=False),
        sa.Column("okato", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("population", sa.BigInteger(), nullable=True),
        sa.Column("population_source", sa.Text(), nullable=True),
        sa.Column("timezone", sa.Text(), nullable=True),
        sa.Column(
            "boundary",
            geoalchemy2.types.Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column(
            "centre",
            geoalchemy2.types.Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "level IN ('federal_subject', 'municipal_district', 'urban_okrug', 'municipal_okrug', 'settlement', 'city_district')",
            name=op.f("ck_territories_level"),
        ),
        sa.CheckConstraint("oktmo ~ '^\\d{8}(\\d{3})?$'", name=op.f("ck_territories_oktmo_format")),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["cdt.territories.id"],
            name=op.f("fk_territories_parent_id_territories"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_territories")),
        sa.UniqueConstraint("oktmo", name=op.f("uq_territories_oktmo")),
        schema="cdt",
    )
    op.create_index(
        "ix_territories_boundary",
        "territories",
        ["boundary"],
        unique=False,
        schema="cdt",
        postgresql_using="gist",
    )
    op.create_index(op.f("ix_territories_parent_id"), "territories", ["parent_id"], unique=False, schema="cdt")
    op.create_table(
        "water",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_id", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_water")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_water_source_source_id")),
        schema="cdt",
    )
    op.create_index("ix_water_geom", "water", ["geom"], unique=False, schema="cdt", postgresql_using="gist")
    op.create_table(
        "buildings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("floors", sa.Integer(), nullable=True),
        sa.Column("living_area_m2", sa.Float(), nullable=True),
        sa.Column("floor_area_m2", sa.Float(), nullable=True),
        sa.Column("residents", sa.Integer(), nullable=True),
        sa.Column("use", sa.Text(), nullable=True),
        sa.Column("is_living", sa.Boolean(), nullable=True),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column(
            "footprint_m2",
            sa.Float(),
            sa.Computed("ST_Area(geom::geography)", persisted=True),
            nullable=True,
        ),
        sa.Column("territory_id", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_id", sa.Text(), nullable=True),
        sa.CheckConstraint("floors IS NULL OR floors BETWEEN 0 AND 200", name=op.f("ck_buildings_floors")),
        sa.CheckConstraint("residents IS NULL OR residents >= 0", name=op.f("ck_buildings_residents")),
        sa.ForeignKeyConstraint(
            ["territory_id"], ["cdt.territories.id"], name=op.f("fk_buildings_territory_id_territories")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_buildings")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_buildings_source_source_id")),
        schema="cdt",
    )
    op.create_index("ix_buildings_geom", "buildings", ["geom"], unique=False, schema="cdt", postgresql_using="gist")
    op.create_index(op.f("ix_buildings_territory_id"), "buildings", ["territory_id"], unique=False, schema="cdt")
    op.create_table(
        "functional_zones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("zone_type", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="existing", nullable=False),
        sa.Column("max_floors", sa.Integer(), nullable=True),
        sa.Column("density_people_ha", sa.Float(), nullable=True),
        sa.Column("plan_document", sa.Text(), nullable=True),
        sa.Column(
            "area_m2",
            sa.Float(),
            sa.Computed("ST_Area(geom::geography)", persisted=True),
            nullable=True,
        ),
        sa.Column("territory_id", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_id", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('existing', 'planned', 'reconstruction')", name=op.f("ck_functional_zones_status")
        ),
        sa.ForeignKeyConstraint(
            ["territory_id"],
            ["cdt.territories.id"],
            name=op.f("fk_functional_zones_territory_id_territories"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_functional_zones")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_functional_zones_source_source_id")),
        schema="cdt",
    )
    op.create_index(
        "ix_functional_zones_geom",
        "functional_zones",
        ["geom"],
        unique=False,
        schema="cdt",
        postgresql_using="gist",
    )
    op.create_index(
        op.f("ix_functional_zones_territory_id"),
        "functional_zones",
        ["territory_id"],
        unique=False,
        schema="cdt",
    )
    op.create_table(
        "parcels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cadastral_number", sa.Text(), nullable=False),
        sa.Column("land_category_code", sa.Text(), nullable=True),
        sa.Column("land_category", sa.Text(), nullable=True),
        sa.Column("permitted_use_code", sa.Text(), nullable=True),
        sa.Column("permitted_use", sa.Text(), nullable=True),
        sa.Column("area_declared_m2", sa.Float(), nullable=True),
        sa.Column(
            "area_m2",
            sa.Float(),
            sa.Computed("ST_Area(geom::geography)", persisted=True),
            nullable=True,
        ),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("territory_id", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_id", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "cadastral_number ~ '^\\d{2}:\\d{2}:\\d{6,7}:\\d+$'",
            name=op.f("ck_parcels_cadastral_number_format"),
        ),
        sa.ForeignKeyConstraint(
            ["land_category_code"],
            ["cdt.land_categories.code"],
            name=op.f("fk_parcels_land_category_code_land_categories"),
        ),
        sa.ForeignKeyConstraint(
            ["territory_id"], ["cdt.territories.id"], name=op.f("fk_parcels_territory_id_territories")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parcels")),
        sa.UniqueConstraint("cadastral_number", name=op.f("uq_parcels_cadastral_number")),
        schema="cdt",
    )
    op.create_index("ix_parcels_geom", "parcels", ["geom"], unique=False, schema="cdt", postgresql_using="gist")
    op.create_index(op.f("ix_parcels_territory_id"), "parcels", ["territory_id"], unique=False, schema="cdt")
    op.create_table(
        "planned_facilities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type_code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("capacity", sa.Float(), nullable=True),
        sa.Column("status", sa.Text(), server_default="planned", nullable=False),
        sa.Column("planned_year", sa.Integer(), nullable=True),
        sa.Column("plan_document", sa.Text(), nullable=True),
        sa.Column("territory_id", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_id", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('existing', 'planned', 'reconstruction')", name=op.f("ck_planned_facilities_status")
        ),
        sa.ForeignKeyConstraint(
            ["territory_id"],
            ["cdt.territories.id"],
            name=op.f("fk_planned_facilities_territory_id_territories"),
        ),
        sa.ForeignKeyConstraint(
            ["type_code"],
            ["cdt.facility_types.code"],
            name=op.f("fk_planned_facilities_type_code_facility_types"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_planned_facilities")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_planned_facilities_source_source_id")),
        schema="cdt",
    )
    op.create_index(
        "ix_planned_facilities_geom",
        "planned_facilities",
        ["geom"],
        unique=False,
        schema="cdt",
        postgresql_using="gist",
    )
    op.create_index(
        op.f("ix_planned_facilities_territory_id"),
        "planned_facilities",
        ["territory_id"],
        unique=False,
        schema="cdt",
    )
    op.create_index(
        op.f("ix_planned_facilities_type_code"),
        "planned_facilities",
        ["type_code"],
        unique=False,
        schema="cdt",
    )
    op.create_table(
        "planning_norms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("region_oktmo", sa.Text(), nullable=True),
        sa.Column("type_code", sa.Text(), nullable=False),
        sa.Column("context", sa.Text(), nullable=True),
        sa.Column("demand_per_1000", sa.Float(), nullable=True),
        sa.Column("demand_unit", sa.Text(), nullable=True),
        sa.Column("max_walk_radius_m", sa.Float(), nullable=True),
        sa.Column("max_walk_time_min", sa.Float(), nullable=True),
        sa.Column("source_document", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["type_code"],
            ["cdt.facility_types.code"],
            name=op.f("fk_planning_norms_type_code_facility_types"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_planning_norms")),
        sa.UniqueConstraint(
            "region_oktmo",
            "type_code",
            "context",
            name=op.f("uq_planning_norms_region_oktmo_type_code_context"),
            postgresql_nulls_not_distinct=True,
        ),
        schema="cdt",
    )
    op.create_table(
        "street_edges",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("from_node", sa.BigInteger(), nullable=False),
        sa.Column("to_node", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("highway", sa.Text(), nullable=True),
        sa.Column("walk", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("drive", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("oneway", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("speed_kmh", sa.Float(), nullable=True),
        sa.Column(
            "length_m",
            sa.Float(),
            sa.Computed("ST_Length(geom::geography)", persisted=True),
            nullable=True,
        ),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="LINESTRING",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_id", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["from_node"],
            ["cdt.street_nodes.id"],
            name=op.f("fk_street_edges_from_node_street_nodes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["to_node"],
            ["cdt.street_nodes.id"],
            name=op.f("fk_street_edges_to_node_street_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_street_edges")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_street_edges_source_source_id")),
        schema="cdt",
    )
    op.create_index(op.f("ix_street_edges_from_node"), "street_edges", ["from_node"], unique=False, schema="cdt")
    op.create_index(
        "ix_street_edges_geom", "street_edges", ["geom"], unique=False, schema="cdt", postgresql_using="gist"
    )
    op.create_index(op.f("ix_street_edges_to_node"), "street_edges", ["to_node"], unique=False, schema="cdt")
    op.create_table(
        "zoning_zones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("zone_code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("main_uses", sa.ARRAY(sa.Text()), nullable=True),
        sa.Column("conditional_uses", sa.ARRAY(sa.Text()), nullable=True),
        sa.Column("auxiliary_uses", sa.ARRAY(sa.Text()), nullable=True),
        sa.Column("max_floors", sa.Integer(), nullable=True),
        sa.Column("max_coverage_pct", sa.Float(), nullable=True),
        sa.Column(
            "area_m2",
            sa.Float(),
            sa.Computed("ST_Area(geom::geography)", persisted=True),
            nullable=True,
        ),
        sa.Column("territory_id", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_id", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["territory_id"], ["cdt.territories.id"], name=op.f("fk_zoning_zones_territory_id_territories")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_zoning_zones")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_zoning_zones_source_source_id")),
        schema="cdt",
    )
    op.create_index(
        "ix_zoning_zones_geom", "zoning_zones", ["geom"], unique=False, schema="cdt", postgresql_using="gist"
    )
    op.create_index(op.f("ix_zoning_zones_territory_id"), "zoning_zones", ["territory_id"], unique=False, schema="cdt")
    op.create_table(
        "facilities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type_code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("capacity", sa.Float(), nullable=True),
        sa.Column("capacity_unit", sa.Text(), nullable=True),
        sa.Column("building_id", sa.Integer(), nullable=True),
        sa.Column("parcel_id", sa.Integer(), nullable=True),
        sa.Column("territory_id", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_id", sa.Text(), nullable=True),
        sa.CheckConstraint("capacity IS NULL OR capacity >= 0", name=op.f("ck_facilities_capacity")),
        sa.ForeignKeyConstraint(
            ["building_id"],
            ["cdt.buildings.id"],
            name=op.f("fk_facilities_building_id_buildings"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["parcel_id"],
            ["cdt.parcels.id"],
            name=op.f("fk_facilities_parcel_id_parcels"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["territory_id"], ["cdt.territories.id"], name=op.f("fk_facilities_territory_id_territories")
        ),
        sa.ForeignKeyConstraint(
            ["type_code"], ["cdt.facility_types.code"], name=op.f("fk_facilities_type_code_facility_types")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facilities")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_facilities_source_source_id")),
        schema="cdt",
    )
    op.create_index(op.f("ix_facilities_building_id"), "facilities", ["building_id"], unique=False, schema="cdt")
    op.create_index("ix_facilities_geom", "facilities", ["geom"], unique=False, schema="cdt", postgresql_using="gist")
    op.create_index(op.f("ix_facilities_parcel_id"), "facilities", ["parcel_id"], unique=False, schema="cdt")
    op.create_index(op.f("ix_facilities_territory_id"), "facilities", ["territory_id"], unique=False, schema="cdt")
    op.create_index(op.f("ix_facilities_type_code"), "facilities", ["type_code"], unique=False, schema="cdt")
    op.create_table(
        "utility_nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("node_type", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("capacity", sa.Float(), nullable=True),
        sa.Column("load", sa.Float(), nullable=True),
        sa.Column("unit", sa.Text(), nullable=True),
        sa.Column("facility_id", sa.Integer(), nullable=True),
        sa.Column("territory_id", sa.Integer(), nullable=True),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_id", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('heat', 'power', 'gas', 'water', 'sewer')", name=op.f("ck_utility_nodes_kind")),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["cdt.facilities.id"],
            name=op.f("fk_utility_nodes_facility_id_facilities"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["territory_id"], ["cdt.territories.id"], name=op.f("fk_utility_nodes_territory_id_territories")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_utility_nodes")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_utility_nodes_source_source_id")),
        schema="cdt",
    )
    op.create_index(op.f("ix_utility_nodes_facility_id"), "utility_nodes", ["facility_id"], unique=False, schema="cdt")
    op.create_index(
        "ix_utility_nodes_geom",
        "utility_nodes",
        ["geom"],
        unique=False,
        schema="cdt",
        postgresql_using="gist",
    )
    op.create_index(
        op.f("ix_utility_nodes_territory_id"), "utility_nodes", ["territory_id"], unique=False, schema="cdt"
    )
    op.create_table(
        "utility_lines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("from_node", sa.Integer(), nullable=True),
        sa.Column("to_node", sa.Integer(), nullable=True),
        sa.Column("diameter_mm", sa.Float(), nullable=True),
        sa.Column("voltage_kv", sa.Float(), nullable=True),
        sa.Column("pressure_class", sa.Text(), nullable=True),
        sa.Column("capacity", sa.Float(), nullable=True),
        sa.Column("load", sa.Float(), nullable=True),
        sa.Column("unit", sa.Text(), nullable=True),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column(
            "length_m",
            sa.Float(),
            sa.Computed("ST_Length(geom::geography)", persisted=True),
            nullable=True,
        ),
        sa.Column(
            "geom",
            geoalchemy2.types.Geometry(
                geometry_type="MULTILINESTRING",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_id", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('heat', 'power', 'gas', 'water', 'sewer')", name=op.f("ck_utility_lines_kind")),
        sa.ForeignKeyConstraint(
            ["from_node"],
            ["cdt.utility_nodes.id"],
            name=op.f("fk_utility_lines_from_node_utility_nodes"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["to_node"],
            ["cdt.utility_nodes.id"],
            name=op.f("fk_utility_lines_to_node_utility_nodes"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_utility_lines")),
        sa.UniqueConstraint("source", "source_id", name=op.f("uq_utility_lines_source_source_id")),
        schema="cdt",
    )
    op.create_index(
        "ix_utility_lines_geom",
        "utility_lines",
        ["geom"],
        unique=False,
        schema="cdt",
        postgresql_using="gist",
    )
    for table in VERSIONED:
        op.execute(f"SELECT cdt.track_changes('cdt.{table}')")
    seed = sa.table("land_categories", sa.column("code"), sa.column("name"), schema="cdt")
    op.bulk_insert(seed, [{"code": c, "name": n} for c, n in LAND_CATEGORIES])
    types = sa.table(
        "facility_types",
        *(sa.column(c) for c in ("code", "name_ru", "name_en", "sector", "capacity_unit")),
        schema="cdt",
    )
    op.bulk_insert(
        types,
        [
            dict(zip(("code", "name_ru", "name_en", "sector", "capacity_unit"), row, strict=True))
            for row in FACILITY_TYPES
        ],
    )
    norms = sa.table(
        "planning_norms",
        *(sa.column(c) for c in ("type_code", "context", "max_walk_radius_m", "source_document")),
        schema="cdt",
    )
    op.bulk_insert(
        norms,
        [
            {"type_code": t, "context": ctx, "max_walk_radius_m": r, "source_document": SP42}
            for t, ctx, r in FEDERAL_NORMS
        ],
    )


def downgrade() -> None:
    op.drop_index("ix_utility_lines_geom", table_name="utility_lines", schema="cdt", postgresql_using="gist")
    op.drop_table("utility_lines", schema="cdt")
    op.drop_index(op.f("ix_utility_nodes_territory_id"), table_name="utility_nodes", schema="cdt")
    op.drop_index("ix_utility_nodes_geom", table_name="utility_nodes", schema="cdt", postgresql_using="gist")
    op.drop_index(op.f("ix_utility_nodes_facility_id"), table_name="utility_nodes", schema="cdt")
    op.drop_table("utility_nodes", schema="cdt")
    op.drop_index(op.f("ix_facilities_type_code"), table_name="facilities", schema="cdt")
    op.drop_index(op.f("ix_facilities_territory_id"), table_name="facilities", schema="cdt")
    op.drop_index(op.f("ix_facilities_parcel_id"), table_name="facilities", schema="cdt")
    op.drop_index("ix_facilities_geom", table_name="facilities", schema="cdt", postgresql_using="gist")
    op.drop_index(op.f("ix_facilities_building_id"), table_name="facilities", schema="cdt")
    op.drop_table("facilities", schema="cdt")
    op.drop_index(op.f("ix_zoning_zones_territory_id"), table_name="zoning_zones", schema="cdt")
    op.drop_index("ix_zoning_zones_geom", table_name="zoning_zones", schema="cdt", postgresql_using="gist")
    op.drop_table("zoning_zones", schema="cdt")
    op.drop_index(op.f("ix_street_edges_to_node"), table_name="street_edges", schema="cdt")
    op.drop_index("ix_street_edges_geom", table_name="street_edges", schema="cdt", postgresql_using="gist")
    op.drop_index(op.f("ix_street_edges_from_node"), table_name="street_edges", schema="cdt")
    op.drop_table("street_edges", schema="cdt")
    op.drop_table("planning_norms", schema="cdt")
    op.drop_index(op.f("ix_planned_facilities_type_code"), table_name="planned_facilities", schema="cdt")
    op.drop_index(op.f("ix_planned_facilities_territory_id"), table_name="planned_facilities", schema="cdt")
    op.drop_index("ix_planned_facilities_geom", table_name="planned_facilities", schema="cdt", postgresql_using="gist")
    op.drop_table("planned_facilities", schema="cdt")
    op.drop_index(op.f("ix_parcels_territory_id"), table_name="parcels", schema="cdt")
    op.drop_index("ix_parcels_geom", table_name="parcels", schema="cdt", postgresql_using="gist")
    op.drop_table("parcels", schema="cdt")
    op.drop_index(op.f("ix_functional_zones_territory_id"), table_name="functional_zones", schema="cdt")
    op.drop_index("ix_functional_zones_geom", table_name="functional_zones", schema="cdt", postgresql_using="gist")
    op.drop_table("functional_zones", schema="cdt")
    op.drop_index(op.f("ix_buildings_territory_id"), table_name="buildings", schema="cdt")
    op.drop_index("ix_buildings_geom", table_name="buildings", schema="cdt", postgresql_using="gist")
    op.drop_table("buildings", schema="cdt")
    op.drop_index("ix_water_geom", table_name="water", schema="cdt", postgresql_using="gist")
    op.drop_table("water", schema="cdt")
    op.drop_index(op.f("ix_territories_parent_id"), table_name="territories", schema="cdt")
    op.drop_index("ix_territories_boundary", table_name="territories", schema="cdt", postgresql_using="gist")
    op.drop_table("territories", schema="cdt")
    op.drop_index("ix_street_nodes_geom", table_name="street_nodes", schema="cdt", postgresql_using="gist")
    op.drop_table("street_nodes", schema="cdt")
    op.drop_index("ix_railways_geom", table_name="railways", schema="cdt", postgresql_using="gist")
    op.drop_table("railways", schema="cdt")
    op.drop_index(op.f("ix_ingest_runs_fingerprint"), table_name="ingest_runs", schema="cdt")
    op.drop_table("ingest_runs", schema="cdt")
    op.drop_table("land_categories", schema="cdt")
    op.drop_index("ix_history_feature", table_name="history", schema="cdt")
    op.drop_table("history", schema="cdt")
    op.drop_table("facility_types", schema="cdt")
    op.execute("DROP FUNCTION cdt.track_changes(regclass)")
    op.execute("DROP FUNCTION cdt.record_history()")
    op.execute("DROP FUNCTION cdt.stamp_row()")
    op.execute("DROP FUNCTION cdt.actor()")
