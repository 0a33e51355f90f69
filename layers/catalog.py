"""What the platform holds: territories, layers with their sizes, schema state."""

from __future__ import annotations

from sqlalchemy import Connection, text

from layers import registry
from layers.db import current_revision, head_revision


def territories(conn: Connection) -> list[dict]:
    rows = conn.execute(text("""
        SELECT t.oktmo, t.name, t.level, p.oktmo AS parent, t.population, t.boundary IS NOT NULL AS has_boundary,
               ST_Area(t.boundary::geography) / 1e6 AS area_km2
        FROM cdt.territories t LEFT JOIN cdt.territories p ON p.id = t.parent_id
        ORDER BY t.oktmo"""))
    return [dict(r._mapping) for r in rows]


def layer_summaries(conn: Connection) -> list[dict]:
    """Each registry layer with its row count (exact: CDT's layers are city-sized)."""
    layers = registry.all_layers()
    counts = conn.execute(text(" UNION ALL ".join(
        f"SELECT '{lyr.name}' AS name, count(*) AS n FROM {lyr.qualified_table}" for lyr in layers)))
    by_name = {r.name: r.n for r in counts}
    return [{"name": lyr.name, "title": lyr.title, "features": by_name.get(lyr.name, 0), "access": lyr.access,
             "editable": lyr.editable, "geometry_type": lyr.geometry_type} for lyr in layers]


def health(conn: Connection) -> dict:
    conn.execute(text("SELECT 1"))
    current, head = current_revision(conn), head_revision()
    return {"database": "ok", "schema": current, "schema_head": head, "migrations_current": current == head}
