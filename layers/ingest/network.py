"""Street lines into a routable network: noded at every intersection, with nodes.

Source lines (OSM ways, or un-noded road lines such as Vologda's) are split where they
cross or touch by PostGIS's ST_Node; each noded segment keeps the attributes of the line
it came from. Nodes and edges are keyed by a hash of their geometry, so re-loading the
same lines changes nothing and a changed network replaces only what changed.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import Connection, text

from layers import registry
from layers.ingest.report import LoadReport
from layers.ingest.writer import upsert

RAW = "_cdt_raw_lines"
ATTRS = ("name", "highway", "walk", "drive", "oneway", "speed_kmh")


def load_network(conn: Connection, lines: gpd.GeoDataFrame, source: str, progress: bool = False
                 ) -> tuple[LoadReport, LoadReport]:
    """Replace the network of `source` with the noded `lines` (EPSG:4326 LineStrings)."""
    lines = lines.explode(index_parts=False)
    lines = lines[lines.geometry.notna() & ~lines.geometry.is_empty & (lines.geom_type == "LineString")]
    raw = pd.DataFrame({
        "name": lines.get("name"), "highway": lines.get("highway"),
        "walk": lines.get("walk", True), "drive": lines.get("drive", True),
        "oneway": lines.get("oneway", False), "speed_kmh": lines.get("speed_kmh"),
    }, index=lines.index)
    raw = raw.astype(object).where(raw.notna(), None)
    raw["geom"] = lines.geometry.values
    conn.execute(text(f"DROP TABLE IF EXISTS {RAW}"))
    conn.execute(text(f"CREATE TEMP TABLE {RAW} (id serial PRIMARY KEY, name text, highway text, walk boolean, "
                      f"drive boolean, oneway boolean, speed_kmh double precision, geom geometry(LineString, 4326)) "
                      f"ON COMMIT DROP"))
    cursor = conn.connection.driver_connection.cursor()
    wkb = shapely.to_wkb(shapely.set_srid(raw["geom"].values, 4326), hex=True, include_srid=True)
    with cursor.copy(f"COPY {RAW} ({', '.join(ATTRS)}, geom) FROM STDIN") as copy:
        for rec, g in zip(raw[list(ATTRS)].itertuples(index=False), wkb, strict=True):
            copy.write_row([*(None if v is None else (v.item() if hasattr(v, "item") else v) for v in rec), g])
    conn.execute(text(f"CREATE INDEX ON {RAW} USING gist (geom)"))
    # Node all lines at once; then give each segment the attributes of the source line
    # that covers its midpoint (overlapping duplicates collapse into one segment).
    conn.execute(text(f"""
        CREATE TEMP TABLE _cdt_segments ON COMMIT DROP AS
        WITH noded AS (SELECT (ST_Dump(ST_Node(ST_Collect(geom)))).geom AS geom FROM {RAW})
        SELECT DISTINCT ON (md5(ST_AsEWKB(n.geom)))
               md5(ST_AsEWKB(n.geom)) AS source_id, n.geom, r.name, r.highway, r.walk, r.drive, r.oneway, r.speed_kmh,
               md5(ST_AsEWKB(ST_StartPoint(n.geom))) AS from_key, md5(ST_AsEWKB(ST_EndPoint(n.geom))) AS to_key
        FROM noded n
        JOIN LATERAL (SELECT * FROM {RAW} r
                      WHERE ST_DWithin(r.geom, ST_LineInterpolatePoint(n.geom, 0.5), 1e-9)
                      ORDER BY ST_Distance(r.geom, ST_LineInterpolatePoint(n.geom, 0.5)), r.id LIMIT 1) r ON true
        WHERE ST_Length(n.geom) > 0
        ORDER BY md5(ST_AsEWKB(n.geom))"""))
    nodes = pd.read_sql_query(text("""
        SELECT DISTINCT ON (key) key AS source_id, ST_AsEWKB(pt) AS geom FROM (
          SELECT from_key AS key, ST_StartPoint(geom) AS pt FROM _cdt_segments
          UNION ALL SELECT to_key, ST_EndPoint(geom) FROM _cdt_segments) p ORDER BY key"""), conn)
    node_report = LoadReport("street_nodes", source)
    node_rows = pd.DataFrame({"source": source, "source_id": nodes["source_id"],
                              "geom": shapely.from_wkb(nodes["geom"].map(bytes))})
    upsert(conn, registry.get("street_nodes"), node_rows, node_report, prune_source=None, progress=progress)
    segments = pd.read_sql_query(text("""
        SELECT s.source_id, s.name, s.highway, s.walk, s.drive, s.oneway, s.speed_kmh, ST_AsEWKB(s.geom) AS geom,
               a.id AS from_node, b.id AS to_node
        FROM _cdt_segments s
        JOIN cdt.street_nodes a ON a.source = :src AND a.source_id = s.from_key
        JOIN cdt.street_nodes b ON b.source = :src AND b.source_id = s.to_key"""), conn, params={"src": source})
    segments["geom"] = shapely.from_wkb(segments["geom"].map(bytes))
    segments["source"] = source
    for flag, default in (("walk", True), ("drive", True), ("oneway", False)):
        segments[flag] = segments[flag].astype(object).where(segments[flag].notna(), default)
    edge_report = LoadReport("street_edges", source)
    upsert(conn, registry.get("street_edges"), segments, edge_report, prune_source=source, progress=progress)
    # Nodes no edge uses any more (the network changed) go too.
    gone = conn.execute(text("""
        DELETE FROM cdt.street_nodes n WHERE n.source = :src AND NOT EXISTS
          (SELECT 1 FROM cdt.street_edges e WHERE e.from_node = n.id OR e.to_node = n.id)"""), {"src": source})
    node_report.deleted += gone.rowcount
    conn.execute(text(f"DROP TABLE {RAW}; DROP TABLE _cdt_segments"))
    return node_report, edge_report
