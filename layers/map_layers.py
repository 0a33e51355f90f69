"""What the map client shows a principal: its layers (with style, how to draw them, whether it may edit them),
the territories to zoom to and where the map opens. Everything goes through the access point."""

from __future__ import annotations

from sqlalchemy import Connection, text

from layers import access, registry, styles
from layers.access import Principal
from layers.errors import CDTError

# Up to this many features a layer is drawn from GeoJSON (crisp, every attribute at hand); above it from
# vector tiles, so a city's 25,000 buildings never travel as one document.
GEOJSON_MAX_FEATURES = 2000
# Shown when the map opens; the rest are one click away in the layer panel.
VISIBLE_AT_START = ("facilities", "functional_zones", "planned_facilities", "zoning_zones")


def _counts(conn: Connection) -> dict[str, int]:
    return dict(conn.execute(text("SELECT table_name, n FROM cdt.row_counts")).all())


def _may_edit(who: Principal, layer: registry.Layer) -> bool:
    if not layer.editable:
        return False
    try:
        access.edit_grants(who, layer)
    except CDTError:
        return False
    return True


def layers(conn: Connection, who: Principal) -> list[dict]:
    counts = _counts(conn)
    out = []
    for layer in registry.all_layers():
        if layer.geometry_column is None or not access.can_list(who, layer):
            continue
        n = counts.get(layer.table.name, 0)
        base = f"/collections/{layer.name}"
        out.append({
            "id": layer.name, "title": layer.title, "description": layer.description, "access": layer.access,
            "geometry_type": layer.geometry_type, "features": n,
            "render": "geojson" if n <= GEOJSON_MAX_FEATURES else "tiles",
            "items": f"{base}/items", "schema": f"{base}/schema",
            "tiles": f"{base}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}",
            "min_zoom": layer.min_zoom, "max_zoom": layer.max_zoom,
            "visible": layer.name in VISIBLE_AT_START,
            "editable": _may_edit(who, layer),
            "style": styles.style(conn, layer),
        })
    return out


def territories(conn: Connection) -> list[dict]:
    """Territories with somewhere to zoom to: their boundary, or else the extent of their parcels, buildings
    and facilities (a city loaded without its boundary)."""
    rows = conn.execute(text("""
        WITH feats AS (
            SELECT territory_id, ST_Extent(geom)::geometry AS ext FROM cdt.parcels GROUP BY territory_id
            UNION ALL SELECT territory_id, ST_Extent(geom)::geometry FROM cdt.buildings GROUP BY territory_id
            UNION ALL SELECT territory_id, ST_Extent(geom)::geometry FROM cdt.facilities GROUP BY territory_id),
        box AS (
            SELECT t.id, t.oktmo, t.name, t.level, t.population, t.boundary IS NOT NULL AS has_boundary,
                   COALESCE(ST_Envelope(t.boundary),
                            (SELECT ST_Envelope(ST_Collect(f.ext)) FROM feats f WHERE f.territory_id = t.id)) AS b
            FROM cdt.territories t)
        SELECT id, oktmo, name, level, population, has_boundary,
               ST_XMin(b) AS x0, ST_YMin(b) AS y0, ST_XMax(b) AS x1, ST_YMax(b) AS y1
        FROM box WHERE b IS NOT NULL ORDER BY population DESC NULLS LAST, oktmo"""))
    return [{"id": r.id, "oktmo": r.oktmo, "name": r.name, "level": r.level, "population": r.population,
             "has_boundary": r.has_boundary, "bbox": [r.x0, r.y0, r.x1, r.y1]} for r in rows]


def home(who: Principal, places: list[dict]) -> dict | None:
    """Where the map opens: the territory of the user's first grant (or, for a region without a boundary,
    the first of its territories) that has an extent; else the most populous city with a boundary (for the
    demo, Vologda: Ekaterinburg is larger but only a few of its parcels are loaded)."""
    by_id = {t["id"]: t for t in places}
    for grant in who.grants:
        for tid in (grant.territory_id, *who.scopes.get(grant, ())):
            if tid in by_id:
                return by_id[tid]
    cities = sorted((t for t in places if t["level"] != "federal_subject"), key=lambda t: not t["has_boundary"])
    return (cities or places or [None])[0]
