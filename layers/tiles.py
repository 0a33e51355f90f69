"""Vector tiles (Mapbox Vector Tiles) drawn by PostGIS, cached in the database with exact invalidation.

A tileset is one registry layer (a collection) or the multi-layer "basemap". A tile is one SQL statement:
per layer, ST_AsMVT over ST_AsMVTGeom of the features whose geometry intersects the tile envelope plus
its buffer ("bounds", EPSG:4326), at most a per-zoom number of them, simplified to about a pixel at low
zooms. It is kept in cdt.tile_cache with those bounds and the tables it shows; the trigger
cdt.invalidate_tiles (migration 0003) deletes exactly the cached tiles whose bounds an inserted, updated
or deleted geometry intersects, whichever path (API, loader, plain SQL) made the change.

Zoom levels here and in the registry are WebMercatorQuad zooms; other tile matrix sets are matched to
them by scale denominator.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import cache

import morecantile
from morecantile import TileMatrixSet
from sqlalchemy import Engine, text

from layers import registry
from layers.access import ReadRule
from layers.errors import InvalidParameterValue, NotFound
from layers.models.base import SRID

EXTENT = 4096  # MVT coordinates across a tile
BUFFER = 64  # MVT units drawn beyond the tile edge, so strokes and labels join across tiles
BASEMAP = "basemap"
REFERENCE_TMS = "WebMercatorQuad"
MEDIA_TYPE = "application/vnd.mapbox-vector-tile"

# Tile matrix sets offered, with the PostGIS SRID of their CRS (OGC CRS84 is PostGIS's lon/lat EPSG:4326).
TMS_SRIDS = {"WebMercatorQuad": 3857, "WorldCRS84Quad": 4326, "WorldMercatorWGS84Quad": 3395}

# Feature properties written into tiles: what a map needs to style, filter and label; `id` always.
PROPERTIES: dict[str, tuple[str, ...]] = {
    "territories": ("id", "name", "level", "oktmo", "population"),
    "parcels": ("id", "cadastral_number", "land_category", "permitted_use", "area_m2"),
    "buildings": ("id", "floors", "use", "is_living", "year", "residents", "address"),
    "street_nodes": ("id",),
    "street_edges": ("id", "name", "highway", "oneway"),
    "facilities": ("id", "type_code", "name", "capacity", "capacity_unit"),
    "utility_nodes": ("id", "kind", "node_type", "name"),
    "utility_lines": ("id", "kind", "diameter_mm", "voltage_kv"),
    "functional_zones": ("id", "zone_type", "name", "status", "max_floors"),
    "planned_facilities": ("id", "type_code", "name", "status", "planned_year"),
    "zoning_zones": ("id", "zone_code", "name", "max_floors"),
    "water": ("id", "name"),
    "railways": ("id", "name"),
    "walk_access": ("id", "building_id", "score_15min", "kindergarten_min", "school_min", "polyclinic_min",
                    "pharmacy_min", "residents"),
    "service_provision": ("id", "facility_type", "deficit", "demand", "served", "covered_share"),
}

# Which features a full tile keeps: the largest first, so low zooms show the landmarks (then by id,
# which also makes a re-rendered tile byte-identical and its ETag stable).
ORDER: dict[str, str] = {
    "territories": "ST_Area(boundary) DESC",
    "parcels": "area_m2 DESC NULLS LAST",
    "buildings": "footprint_m2 DESC NULLS LAST",
    "street_edges": "length_m DESC NULLS LAST",
    "utility_lines": "length_m DESC NULLS LAST",
    "functional_zones": "area_m2 DESC NULLS LAST",
    "zoning_zones": "area_m2 DESC NULLS LAST",
    "water": "ST_Area(geom) DESC, ST_Length(geom) DESC",
}

# Max features per layer and tile, as {from zoom: limit}: the entry of the highest zoom <= z applies.
# Sized so a tile over central Vologda stays under ~300 KB and renders in well under a second.
FEATURE_LIMITS: dict[str, dict[int, int]] = {
    "default": {0: 1000, 12: 3000, 14: 10000},
    "buildings": {0: 3000, 14: 6000, 15: 20000},
    "street_edges": {0: 1500, 13: 5000},
}

# Below this zoom, lines and polygons are simplified to SIMPLIFY_PIXELS of the tile's 256-pixel grid
# (in tile CRS units) before clipping: fewer vertices, smaller tiles. From it on they are drawn as stored.
SIMPLIFY_BELOW_ZOOM = 16
SIMPLIFY_PIXELS = 1.0

# The basemap: layers in drawing order; territories are drawn as boundary lines.
BASEMAP_LAYERS = ("water", "functional_zones", "zoning_zones", "territories", "railways", "street_edges", "buildings")
BASEMAP_GEOMETRY = {"territories": "ST_Boundary({})"}


@dataclass(frozen=True)
class Tileset:
    name: str
    title: str
    description: str
    layers: tuple[registry.Layer, ...]
    # SQL drawing a layer's geometry, around its column ("{}"), where it is not the geometry itself.
    geometry_sql: dict[str, str] = field(default_factory=dict)

    @property
    def min_zoom(self) -> int:
        return min(layer.min_zoom for layer in self.layers)

    @property
    def max_zoom(self) -> int:
        return max(layer.max_zoom for layer in self.layers)


@dataclass(frozen=True)
class TileAddress:
    tms: str
    z: int
    x: int  # column
    y: int  # row


@dataclass(frozen=True)
class Tile:
    data: bytes  # empty: no feature (served as 204)
    etag: str
    cached: bool  # served from cdt.tile_cache


# --- tile matrix sets -------------------------------------------------------------------------------


def tile_matrix_set_ids() -> list[str]:
    return list(TMS_SRIDS)


@cache
def tile_matrix_set(tms_id: str) -> TileMatrixSet:
    if tms_id not in TMS_SRIDS:
        raise NotFound(f"Unknown tile matrix set '{tms_id}'. Known: {', '.join(TMS_SRIDS)}")
    return morecantile.tms.get(tms_id)


@cache
def reference_zoom(tms_id: str, z: int) -> int:
    """The WebMercatorQuad zoom of the same scale as zoom `z` of `tms_id`."""
    if tms_id == REFERENCE_TMS:
        return z
    scale = tile_matrix_set(tms_id).matrix(z).scaleDenominator
    ref = tile_matrix_set(REFERENCE_TMS)
    return min(range(ref.minzoom, ref.maxzoom + 1),
               key=lambda k: abs(math.log(ref.matrix(k).scaleDenominator / scale)))


def zoom_range(tms_id: str, min_zoom: int, max_zoom: int) -> tuple[int, int] | None:
    """The zooms of `tms_id` whose scale falls in a reference zoom range (None: none does)."""
    tms = tile_matrix_set(tms_id)
    zooms = [z for z in range(tms.minzoom, tms.maxzoom + 1) if min_zoom <= reference_zoom(tms_id, z) <= max_zoom]
    return (zooms[0], zooms[-1]) if zooms else None


def tile_address(tms_id: str, tile_matrix: str | int, tile_row: str | int, tile_col: str | int) -> TileAddress:
    """Validate a tile address against its tile matrix set (InvalidParameterValue outside it)."""
    tms = tile_matrix_set(tms_id)
    try:
        z, y, x = int(tile_matrix), int(tile_row), int(tile_col)
    except ValueError:
        raise InvalidParameterValue("tileMatrix, tileRow and tileCol must be integers") from None
    if not tms.minzoom <= z <= tms.maxzoom:
        raise InvalidParameterValue(f"tileMatrix {z} is not in {tms_id} (tile matrices {tms.minzoom}-{tms.maxzoom})")
    matrix = tms.matrix(z)
    if not 0 <= y < matrix.matrixHeight:
        raise InvalidParameterValue(f"tileRow {y} is outside tile matrix {z} of {tms_id} (0-{matrix.matrixHeight - 1})")
    if not 0 <= x < matrix.matrixWidth:
        raise InvalidParameterValue(f"tileCol {x} is outside tile matrix {z} of {tms_id} (0-{matrix.matrixWidth - 1})")
    return TileAddress(tms_id, z, x, y)


# --- tilesets ---------------------------------------------------------------------------------------


def collection_tilesets() -> list[Tileset]:
    return [Tileset(layer.name, layer.title, layer.description, (layer,))
            for layer in registry.all_layers() if layer.geometry_column]


def collection_tileset(name: str) -> Tileset:
    """The tileset of one collection: every registry layer with a geometry has one."""
    try:
        layer = registry.get(name)
    except NotFound:
        raise NotFound(f"no collection '{name}'; see /collections") from None
    if not layer.geometry_column:
        raise NotFound(f"collection '{name}' has no geometry, hence no tiles")
    return Tileset(layer.name, layer.title, layer.description, (layer,))


def basemap() -> Tileset:
    return Tileset(BASEMAP, "Basemap", "Water, planning zones, boundaries, railways, streets and buildings",
                   tuple(registry.get(name) for name in BASEMAP_LAYERS), BASEMAP_GEOMETRY)


def tileset(name: str) -> Tileset:
    return basemap() if name == BASEMAP else collection_tileset(name)


def layers_at(ts: Tileset, address: TileAddress) -> list[registry.Layer]:
    """The layers of a tileset drawn at the tile's zoom (their registry min_zoom/max_zoom)."""
    ref = reference_zoom(address.tms, address.z)
    return [layer for layer in ts.layers if layer.min_zoom <= ref <= layer.max_zoom]


def feature_limit(layer: str, ref_zoom: int) -> int:
    limits = FEATURE_LIMITS.get(layer, FEATURE_LIMITS["default"])
    return limits[max((z for z in limits if z <= ref_zoom), default=min(limits))]


def geometry_dimension(layer: registry.Layer) -> int | None:
    """0 points, 1 lines, 2 polygons; None for mixed geometry types."""
    kind = (layer.geometry_type or "").removeprefix("MULTI")
    return {"POINT": 0, "LINESTRING": 1, "POLYGON": 2}.get(kind)


def properties_schema(layer: registry.Layer) -> dict[str, str]:
    """JSON type of each tile property, from the layer's columns."""
    kinds = {int: "integer", float: "number", bool: "boolean"}
    out = {}
    for name in PROPERTIES.get(layer.name, ("id",)):
        try:
            out[name] = kinds.get(layer.table.columns[name].type.python_type, "string")
        except NotImplementedError:
            out[name] = "string"
    return out


# --- rendering and the cache ------------------------------------------------------------------------


def audience(layers: list[registry.Layer], rules: dict[str, ReadRule]) -> str:
    """Who shares a rendering: everyone when every layer drawn is public, else those with the same rules."""
    if all(layer.access == "public" for layer in layers):
        return "public"
    return "|".join(f"{layer.name}:{rules[layer.name].key()}" for layer in layers)


def get_tile(engine: Engine, ts: Tileset, address: TileAddress, rules: dict[str, ReadRule] | None = None) -> Tile:
    """The tile from the cache, or rendered and cached. Empty when no layer is drawn at this zoom.

    Round trips matter more than anything else here: a hit is one statement in autocommit; a miss is
    one more to lock, one to render and store, one to commit.
    """
    rules = rules if rules is not None else {layer.name: ReadRule(None) for layer in ts.layers}
    layers = [layer for layer in layers_at(ts, address) if layer.name in rules]
    if not layers:
        return Tile(b"", etag(b""), False)
    key = {"tileset": ts.name, "tms": address.tms, "z": address.z, "x": address.x, "y": address.y,
           "audience": audience(layers, rules)}
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        hit = conn.execute(text("SELECT data, etag FROM cdt.tile_cache WHERE tileset = :tileset AND tms = :tms "
                                "AND z = :z AND x = :x AND y = :y AND audience = :audience"), key).first()
        if hit:
            return Tile(bytes(hit.data), hit.etag, True)
        # Table names come from the registry, never from the request: safe to write into the statement,
        # which lets BEGIN and the lock travel as one simple-protocol message.
        tables = ",".join(sorted({layer.qualified_table for layer in layers}))
        try:
            # Whether the tile may be cached. A tile rendered while a transaction that changes its tables
            # is open, and stored after that transaction's invalidation ran, would stay stale. SHARE on the
            # tables excludes writers (their ROW EXCLUSIVE) until this transaction ends, and the render's
            # snapshot, taken after it, sees every committed write. NOWAIT: when a writer (or VACUUM) holds a
            # table, serve the tile uncached rather than wait.
            cursor = conn.connection.dbapi_connection.cursor()
            cursor.execute(f"BEGIN; SELECT cdt.try_share_lock('{{{tables}}}')")
            cursor.nextset()
            cacheable = cursor.fetchone()[0]
            sql, params = render_sql(ts, layers, address, rules)
            store = (", stored AS (INSERT INTO cdt.tile_cache "
                     "(tileset, tms, z, x, y, audience, data, etag, bounds, layers) "
                     "SELECT :tileset, :tms, :z, :x, :y, :audience, data, md5(data), bounds, CAST(:layers AS text[]) "
                     "FROM tile ON CONFLICT DO NOTHING) ") if cacheable else " "
            row = conn.execute(text(f"WITH tile AS MATERIALIZED ({sql}){store}SELECT data, md5(data) AS etag "
                                    f"FROM tile"),
                               {**params, **key, "layers": [lyr.table.name for lyr in layers]}).one()
            conn.exec_driver_sql("COMMIT")
        except BaseException:
            conn.exec_driver_sql("ROLLBACK")
            raise
    return Tile(bytes(row.data), row.etag, False)


def render_sql(ts: Tileset, layers: list[registry.Layer], address: TileAddress,
               rules: dict[str, ReadRule] | None = None) -> tuple[str, dict]:
    """SQL returning (the tile's MVT bytes, its bounds as EWKB) for a tile, with its parameters."""
    tms = tile_matrix_set(address.tms)
    srid = TMS_SRIDS[address.tms]
    box = tms.xy_bounds(morecantile.Tile(address.x, address.y, address.z))
    pad = (box.right - box.left) * BUFFER / EXTENT
    world = tms.xy_bbox
    params: dict = {
        "z": address.z, "x": address.x, "y": address.y,
        "xmin": box.left, "ymin": box.bottom, "xmax": box.right, "ymax": box.top,
        # The buffered envelope stays inside the matrix set: past the antimeridian PROJ would wrap it.
        "bxmin": max(box.left - pad, world.left), "bymin": max(box.bottom - pad, world.bottom),
        "bxmax": min(box.right + pad, world.right), "bymax": min(box.top + pad, world.top),
        "tolerance": tms.matrix(address.z).cellSize * SIMPLIFY_PIXELS,
    }
    env = ("ST_TileEnvelope(:z, :x, :y)" if address.tms == "WebMercatorQuad"
           else f"ST_MakeEnvelope(:xmin, :ymin, :xmax, :ymax, {srid})")
    ref = reference_zoom(address.tms, address.z)
    rules = rules or {}
    for rule in rules.values():
        params.update(rule.params)
    parts = " || ".join(_layer_sql(ts, layer, srid, ref, rules.get(layer.name)) for layer in layers)
    sql = (f"WITH e AS (SELECT {env} AS tile_env, "
           f"ST_Transform(ST_MakeEnvelope(:bxmin, :bymin, :bxmax, :bymax, {srid}), {SRID}) AS tile_bounds) "
           f"SELECT {parts} AS data, tile_bounds AS bounds FROM e")
    return sql, params


def _layer_sql(ts: Tileset, layer: registry.Layer, srid: int, ref_zoom: int, rule: ReadRule | None = None) -> str:
    col = layer.geometry_column
    props = PROPERTIES.get(layer.name, ("id",))
    geom = f"ST_Transform({ts.geometry_sql.get(layer.name, '{}').format('t.g')}, {srid})"
    if ref_zoom < SIMPLIFY_BELOW_ZOOM and layer.geometry_type != "POINT":
        geom = f"ST_Simplify({geom}, :tolerance, true)"
    order = ORDER.get(layer.name, "id")
    # Drawn from features intersecting the bounds (not just their bbox): exactly those whose change
    # the invalidation trigger (ST_Intersects on the same bounds) deletes this tile for.
    return (
        f"coalesce((SELECT ST_AsMVT(q, '{layer.name}', {EXTENT}, 'geom', 'fid') FROM ("
        f"SELECT fid, {', '.join(props)}, ST_AsMVTGeom({geom}, e.tile_env, {EXTENT}, {BUFFER}, true) AS geom "
        f"FROM (SELECT t.id AS fid, {', '.join(f't.{p}' for p in props)}, t.{col} AS g "
        f"FROM {layer.qualified_table} t, e WHERE t.{col} && e.tile_bounds AND ST_Intersects(t.{col}, e.tile_bounds)"
        f"{f' AND ({rule.sql})' if rule is not None and rule.sql else ''} "
        f"ORDER BY {order}, t.id LIMIT {feature_limit(layer.name, ref_zoom)}) t, e"
        f") q WHERE q.geom IS NOT NULL), ''::bytea)"
    )


def etag(data: bytes) -> str:
    """Strong ETag value (unquoted): the MD5 of the tile bytes (what PostGIS computes when it stores one)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def clear_cache(engine: Engine, tileset_name: str | None = None) -> int:
    """Delete cached tiles (of one tileset, or all); returns how many."""
    with engine.begin() as conn:
        if tileset_name is None:
            return conn.execute(text("DELETE FROM cdt.tile_cache")).rowcount
        return conn.execute(text("DELETE FROM cdt.tile_cache WHERE tileset = :t"), {"t": tileset_name}).rowcount


def data_extent(engine: Engine, ts: Tileset) -> tuple[float, float, float, float] | None:
    """Lon/lat bounding box of a tileset's features (None when it has none)."""
    parts = " UNION ALL ".join(f"SELECT ST_Extent({layer.geometry_column})::geometry AS g FROM {layer.qualified_table}"
                               for layer in ts.layers)
    with engine.connect() as conn:
        row = conn.execute(text(f"SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) "
                                f"FROM (SELECT ST_Extent(g) AS b FROM ({parts}) u) x")).one()
    return None if row[0] is None else (row[0], row[1], row[2], row[3])
