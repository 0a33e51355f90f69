"""Write prepared rows into a layer: COPY into a staging table, then one upsert by natural key.

PostGIS does the spatial work (territory and building links); an unchanged row is not
touched (IS DISTINCT FROM), so re-loading the same file bumps no version.
"""

from __future__ import annotations

import math

import pandas as pd
import shapely
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from tqdm import tqdm

from layers.errors import IngestError
from layers.ingest.report import LoadReport
from layers.models import SRID
from layers.registry import Layer

STAGE = "_cdt_stage"


def upsert(conn: Connection, layer: Layer, rows: pd.DataFrame, report: LoadReport, *,
           territory_oktmo: str | None = None, prune_source: str | None = None, progress: bool = False) -> None:
    """Insert or update `rows` (columns named as the layer's fields) by natural key."""
    fields = layer.writable_columns
    columns = [c for c in rows.columns if c in fields]
    enrich = [c for c in ("territory_id", "building_id") if c in fields and c not in columns]
    stage_cols = columns + enrich
    try:
        _stage(conn, layer, rows, columns, stage_cols, progress)
        if "territory_id" in enrich:
            _assign_territory(conn, layer, territory_oktmo)
        if "building_id" in enrich and layer.geometry_type == "POINT":
            conn.execute(text(f"UPDATE {STAGE} s SET building_id = (SELECT b.id FROM cdt.buildings b "
                              f"WHERE ST_Intersects(b.geom, s.{layer.geometry_column}) ORDER BY b.id LIMIT 1)"))
        _merge(conn, layer, stage_cols, report)
        if prune_source is not None:
            deleted = conn.execute(
                text(f"DELETE FROM {layer.qualified_table} t WHERE t.source = :src AND NOT EXISTS "
                     f"(SELECT 1 FROM {STAGE} s WHERE s.source_id = t.source_id)"), {"src": prune_source})
            report.deleted += deleted.rowcount
        conn.execute(text(f"DROP TABLE {STAGE}"))
    except DBAPIError as exc:
        diag = getattr(exc.orig, "diag", None)
        message = getattr(diag, "message_primary", None) or str(exc.orig).splitlines()[0]
        detail = getattr(diag, "message_detail", None)
        raise IngestError(f"the database refused the data for layer '{layer.name}': {message}"
                          + (f" ({detail})" if detail else "")) from None


def _stage(conn: Connection, layer: Layer, rows: pd.DataFrame, columns: list[str], stage_cols: list[str],
           progress: bool) -> None:
    conn.execute(text(f"DROP TABLE IF EXISTS {STAGE}"))
    # Same column types (and geometry typmods) as the target, no constraints or triggers.
    conn.execute(text(f"CREATE TEMP TABLE {STAGE} ON COMMIT DROP AS "
                      f"SELECT {', '.join(stage_cols)} FROM {layer.qualified_table} WITH NO DATA"))
    geom_col = layer.geometry_column
    cursor = conn.connection.driver_connection.cursor()
    data = [rows[c].tolist() for c in columns]
    if geom_col in columns:
        gi = columns.index(geom_col)
        geoms = rows[geom_col].values
        data[gi] = shapely.to_wkb(shapely.set_srid(geoms, SRID), hex=True, include_srid=True).tolist()
    bar = tqdm(total=len(rows), desc=f"copy {layer.name}", unit="row", disable=not progress, leave=False)
    with cursor.copy(f"COPY {STAGE} ({', '.join(columns)}) FROM STDIN") as copy:
        for n, record in enumerate(zip(*data, strict=True)):
            copy.write_row([_plain(v) for v in record])
            if n % 5000 == 0:
                bar.update(min(5000, len(rows) - n))
    bar.close()


def _plain(value: object) -> object:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    if isinstance(value, list):
        # An array literal: backslash and double quote escaped inside each quoted element.
        return "{" + ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
                              for v in value) + "}"
    return value


def _assign_territory(conn: Connection, layer: Layer, territory_oktmo: str | None) -> None:
    """The deepest territory whose boundary holds the feature, else the one named by --territory."""
    geom = layer.geometry_column
    if geom:
        conn.execute(text(
            f"UPDATE {STAGE} s SET territory_id = (SELECT t.id FROM cdt.territories t "
            f"WHERE t.boundary IS NOT NULL AND s.{geom} IS NOT NULL "
            f"AND ST_Intersects(t.boundary, ST_PointOnSurface(s.{geom})) "
            f"ORDER BY length(t.oktmo) DESC, ST_Area(t.boundary) LIMIT 1)"))
    if territory_oktmo:
        found = conn.execute(text("SELECT id FROM cdt.territories WHERE oktmo = :o"), {"o": territory_oktmo}).scalar()
        if found is None:
            raise IngestError(f"--territory {territory_oktmo}: no such territory (load it first: cdt load territories)")
        conn.execute(text(f"UPDATE {STAGE} SET territory_id = :t WHERE territory_id IS NULL"), {"t": found})


def _merge(conn: Connection, layer: Layer, stage_cols: list[str], report: LoadReport) -> None:
    key = list(layer.natural_key)
    cols = ", ".join(stage_cols)
    updatable = [c for c in stage_cols if c not in key]
    target = layer.qualified_table
    if updatable:
        changed = (f"({', '.join(f't.{c}' for c in updatable)}) IS DISTINCT FROM "
                   f"({', '.join(f'EXCLUDED.{c}' for c in updatable)})")
        action = (f"DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in updatable)} WHERE {changed}")
    else:
        action = "DO NOTHING"
    sql = (f"INSERT INTO {target} AS t ({cols}) SELECT {cols} FROM {STAGE} "
           f"ON CONFLICT ({', '.join(key)}) {action} RETURNING (xmax = 0) AS inserted")
    flags = conn.execute(text(sql)).scalars().all()
    total = conn.execute(text(f"SELECT count(*) FROM {STAGE}")).scalar_one()
    report.inserted += sum(1 for f in flags if f)
    report.updated += sum(1 for f in flags if not f)
    report.unchanged += total - len(flags)
