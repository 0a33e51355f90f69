"""row_counts: exact row count of each layer table, kept by statement triggers

`numberMatched` of an unfiltered OGC API items request is then exact at the cost of one index
lookup instead of a COUNT(*) over the table (the best-known slowness of OGC API servers on PostGIS).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Layer tables at this revision; new layers call `SELECT cdt.count_rows_of('cdt.new_table')`.
TABLES = ("territories", "parcels", "buildings", "street_nodes", "street_edges", "facilities", "utility_nodes",
          "utility_lines", "functional_zones", "planned_facilities", "zoning_zones", "water", "railways",
          "planning_norms")
SUFFIXES = ("count_ins", "count_del", "count_trunc")

FUNCTIONS = r"""
CREATE FUNCTION cdt.count_rows() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  delta bigint;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    UPDATE cdt.row_counts SET n = 0 WHERE table_name = TG_TABLE_NAME;
    RETURN NULL;
  ELSIF TG_OP = 'INSERT' THEN
    SELECT count(*) INTO delta FROM new_rows;
  ELSE
    SELECT -count(*) INTO delta FROM old_rows;
  END IF;
  IF delta <> 0 THEN
    UPDATE cdt.row_counts SET n = n + delta WHERE table_name = TG_TABLE_NAME;
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION cdt.count_rows_of(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  name text := (SELECT relname FROM pg_class WHERE oid = tbl);
  total bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM %s', tbl) INTO total;
  INSERT INTO cdt.row_counts (table_name, n) VALUES (name, total)
    ON CONFLICT (table_name) DO UPDATE SET n = EXCLUDED.n;
  EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows '
                 'FOR EACH STATEMENT EXECUTE FUNCTION cdt.count_rows()', name || '_count_ins', tbl);
  EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows '
                 'FOR EACH STATEMENT EXECUTE FUNCTION cdt.count_rows()', name || '_count_del', tbl);
  EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION cdt.count_rows()',
                 name || '_count_trunc', tbl);
END $$;
"""


def upgrade() -> None:
    op.create_table(
        "row_counts",
        sa.Column("table_name", sa.Text(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("table_name", name=op.f("pk_row_counts")),
        schema="cdt",
    )
    op.execute(FUNCTIONS)
    for table in TABLES:
        op.execute(f"SELECT cdt.count_rows_of('cdt.{table}')")


def downgrade() -> None:
    for table in TABLES:
        for suffix in SUFFIXES:
            op.execute(f"DROP TRIGGER {table}_{suffix} ON cdt.{table}")
    op.execute("DROP FUNCTION cdt.count_rows_of(regclass)")
    op.execute("DROP FUNCTION cdt.count_rows()")
    op.drop_table("row_counts", schema="cdt")
