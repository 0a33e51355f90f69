"""tile cache: rendered vector tiles, invalidated by the database on every geometry change

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Geometry tables of the layer registry at this revision, with the column tiles are drawn from.
# Written out (not read from the registry) so this migration never changes; new layers call
# `SELECT cdt.cache_tiles('cdt.new_table', 'geom')` in their own migration.
GEOMETRY_TABLES = {
    "territories": "boundary",
    "parcels": "geom",
    "buildings": "geom",
    "street_nodes": "geom",
    "street_edges": "geom",
    "facilities": "geom",
    "utility_nodes": "geom",
    "utility_lines": "geom",
    "functional_zones": "geom",
    "planned_facilities": "geom",
    "zoning_zones": "geom",
    "water": "geom",
    "railways": "geom",
}
TRIGGER_SUFFIXES = ("tiles_ins", "tiles_upd", "tiles_del", "tiles_trunc")

# A cached tile stores the envelope it was drawn from (incl. its buffer, EPSG:4326) and the tables it
# shows; a tile is drawn only from features whose geometry intersects that envelope, so deleting
# the tiles whose envelope an old or new geometry intersects is exact, whatever path the edit took.
FUNCTIONS = r"""
CREATE FUNCTION cdt.invalidate_tiles() RETURNS trigger LANGUAGE plpgsql SET jit = off AS $$
DECLARE
  col text := TG_ARGV[0];
  changed text;
  extent geometry;
BEGIN
  -- An empty cache (e.g. during a bulk load) costs one probe. Safe against a tile being cached
  -- concurrently: renderers store only while holding SHARE on the table, which this statement's
  -- ROW EXCLUSIVE lock excludes (see layers/tiles.py).
  PERFORM 1 FROM cdt.tile_cache LIMIT 1;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'TRUNCATE' THEN
    DELETE FROM cdt.tile_cache WHERE TG_TABLE_NAME = ANY(layers);
    RETURN NULL;
  END IF;
  changed := CASE TG_OP
    WHEN 'INSERT' THEN format('SELECT %I AS g FROM new_rows', col)
    WHEN 'DELETE' THEN format('SELECT %I AS g FROM old_rows', col)
    ELSE format('SELECT %1$I AS g FROM old_rows UNION ALL SELECT %1$I FROM new_rows', col)
  END;
  -- Nothing cached of this table around the change (e.g. loading another city): done.
  EXECUTE format('SELECT ST_Extent(g)::geometry FROM (%s) ch', changed) INTO extent;
  IF extent IS NULL OR NOT EXISTS (
      SELECT 1 FROM cdt.tile_cache WHERE bounds && extent AND TG_TABLE_NAME = ANY(layers)) THEN
    RETURN NULL;
  END IF;
  -- One statement for the whole change set: the GiST index on bounds is probed per changed row.
  -- (jit is off for this function: compiling the plan of a 25,000-row change costs more than it saves.)
  EXECUTE format('DELETE FROM cdt.tile_cache c USING (%s) ch '
                 'WHERE $1 = ANY(c.layers) AND c.bounds && ch.g AND ST_Intersects(c.bounds, ch.g)', changed)
    USING TG_TABLE_NAME;
  RETURN NULL;
END $$;

-- SHARE on the tables a tile is drawn from, or false at once when a writer holds one (see layers/tiles.py).
CREATE FUNCTION cdt.try_share_lock(tables text[]) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY tables LOOP
    EXECUTE format('LOCK TABLE %s IN SHARE MODE NOWAIT', t::regclass);
  END LOOP;
  RETURN true;
EXCEPTION WHEN lock_not_available THEN
  RETURN false;
END $$;

-- Install tile invalidation on a table; `geom_column` is the column its tiles are drawn from.
CREATE FUNCTION cdt.cache_tiles(tbl regclass, geom_column text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  name text := (SELECT relname FROM pg_class WHERE oid = tbl);
BEGIN
  EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows '
                 'FOR EACH STATEMENT EXECUTE FUNCTION cdt.invalidate_tiles(%L)', name || '_tiles_ins', tbl, geom_column);
  EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                 'FOR EACH STATEMENT EXECUTE FUNCTION cdt.invalidate_tiles(%L)', name || '_tiles_upd', tbl, geom_column);
  EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows '
                 'FOR EACH STATEMENT EXECUTE FUNCTION cdt.invalidate_tiles(%L)', name || '_tiles_del', tbl, geom_column);
  EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s '
                 'FOR EACH STATEMENT EXECUTE FUNCTION cdt.invalidate_tiles(%L)', name || '_tiles_trunc', tbl, geom_column);
END $$;
"""


def upgrade() -> None:
    op.create_table(
        "tile_cache",
        sa.Column("tileset", sa.Text(), nullable=False),
        sa.Column("tms", sa.Text(), nullable=False),
        sa.Column("z", sa.Integer(), nullable=False),
        sa.Column("x", sa.Integer(), nullable=False),
        sa.Column("y", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=False),
        sa.Column(
            "bounds",
            geoalchemy2.types.Geometry(
                geometry_type="POLYGON", srid=4326, dimension=2, spatial_index=False,
                from_text="ST_GeomFromEWKT", name="geometry", nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("layers", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tileset", "tms", "z", "x", "y", name=op.f("pk_tile_cache")),
        schema="cdt",
    )
    # A cache: losing it in a crash costs only re-rendering, so it skips the WAL (no fsync per stored tile).
    op.execute("ALTER TABLE cdt.tile_cache SET UNLOGGED")
    op.create_index("ix_tile_cache_bounds", "tile_cache", ["bounds"], unique=False, schema="cdt",
                    postgresql_using="gist")
    op.execute(FUNCTIONS)
    for table, column in GEOMETRY_TABLES.items():
        op.execute(f"SELECT cdt.cache_tiles('cdt.{table}', '{column}')")


def downgrade() -> None:
    for table in GEOMETRY_TABLES:
        for suffix in TRIGGER_SUFFIXES:
            op.execute(f"DROP TRIGGER {table}_{suffix} ON cdt.{table}")
    op.execute("DROP FUNCTION cdt.cache_tiles(regclass, text)")
    op.execute("DROP FUNCTION cdt.try_share_lock(text[])")
    op.execute("DROP FUNCTION cdt.invalidate_tiles()")
    op.drop_index("ix_tile_cache_bounds", table_name="tile_cache", schema="cdt", postgresql_using="gist")
    op.drop_table("tile_cache", schema="cdt")
