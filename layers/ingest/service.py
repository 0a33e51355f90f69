"""Load services: each load runs in one transaction and is recorded with its fingerprint.

A failing load raises before COMMIT, so the database is left exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text

from layers import registry
from layers.db import transaction
from layers.errors import IngestError
from layers.ingest.network import load_network
from layers.ingest.prepare import check_types, prepare
from layers.ingest.report import LoadReport
from layers.ingest.vector import read_vector
from layers.ingest.writer import upsert

SHAPEFILE_SIDECARS = (".dbf", ".shx", ".prj", ".cpg")


def with_sidecars(paths: Iterable[Path]) -> list[Path]:
    """A shapefile's attributes and CRS live in sidecar files; a change there must count as a new file."""
    out: list[Path] = []
    for path in (Path(p) for p in paths):
        out.append(path)
        if path.suffix.lower() == ".shp":
            out += [s for ext in SHAPEFILE_SIDECARS for s in (path.with_suffix(ext), path.with_suffix(ext.upper()))
                    if s.exists()]
    return out


def fingerprint(paths: Iterable[Path], **options: object) -> str:
    digest = hashlib.sha256()
    for path in sorted(set(with_sidecars(paths))):
        digest.update(path.name.encode())
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    digest.update(json.dumps(options, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def already_loaded(engine: Engine, fp: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT 1 FROM cdt.ingest_runs WHERE fingerprint = :fp LIMIT 1"),
                            {"fp": fp}).first() is not None


def record(conn: Connection, kind: str, fp: str, reports: list[LoadReport]) -> None:
    for rep in reports:
        conn.execute(text("INSERT INTO cdt.ingest_runs (kind, layer, source, fingerprint, report, actor) "
                          "VALUES (:k, :l, :s, :fp, CAST(:r AS jsonb), cdt.actor())"),
                     {"k": kind, "l": rep.layer, "s": rep.source, "fp": fp, "r": json.dumps(rep.to_json())})


def default_source(path: Path) -> str:
    return path.name


def load_file(engine: Engine, path: str | Path, layer_name: str, *, actor: str, mapping: dict | None = None,
              constants: dict | None = None, key: str | None = None, crs: str | None = None,
              source: str | None = None, repair: bool = False, territory: str | None = None,
              file_layer: str | None = None, progress: bool = False, skip_if_loaded: bool = False,
              inspect: Callable[[gpd.GeoDataFrame, LoadReport], None] | None = None) -> LoadReport:
    """GeoPackage, GeoJSON, Shapefile, GeoParquet or CSV into a registry layer.

    `inspect` may add dataset-specific warnings to the report before it is recorded.
    """
    path = Path(path)
    layer = registry.get(layer_name)
    source = source or default_source(path)
    options = dict(layer=layer_name, mapping=mapping, constants=constants, key=key, crs=crs, source=source,
                   repair=repair, territory=territory, file_layer=file_layer)
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    fp = fingerprint([path], **options)
    report = LoadReport(layer_name, source)
    if skip_if_loaded and already_loaded(engine, fp):
        report.already_loaded = True
        return report
    gdf = read_vector(path, crs=crs, layer=file_layer)
    if layer_name == "street_edges":
        with transaction(engine, actor) as conn:
            nodes, edges = load_network(conn, _map_lines(gdf, mapping, constants), source, progress=progress)
            record(conn, "file", fp, [nodes, edges])
        return edges
    rows = prepare(gdf, layer, report, source=source, mapping=mapping, constants=constants, key=key, repair=repair)
    if inspect:
        inspect(gdf, report)
    with transaction(engine, actor) as conn:
        upsert(conn, layer, rows, report, territory_oktmo=territory, progress=progress)
        record(conn, "file", fp, [report])
    return report


def _map_lines(gdf: gpd.GeoDataFrame, mapping: dict | None, constants: dict | None) -> gpd.GeoDataFrame:
    out = gpd.GeoDataFrame(geometry=gdf.geometry, crs=gdf.crs)
    for target, src in (mapping or {}).items():
        if src not in gdf.columns:
            raise IngestError(f"column {src} not in the file; its columns are: {', '.join(gdf.columns)}")
        out[target] = gdf[src]
    for target, value in (constants or {}).items():
        out[target] = value
    street_edges = registry.get("street_edges")
    unknown = [c for c in out.columns if c != "geometry" and c not in street_edges.table.columns]
    if unknown:
        raise IngestError(f"street_edges has no column {', '.join(unknown)}")
    attrs = pd.DataFrame(out.drop(columns="geometry"))
    check_types(attrs, street_edges)
    for col in attrs.columns:
        out[col] = attrs[col]
    return out


def load_kpt(engine: Engine, paths: list[str | Path], *, actor: str, territory: str | None = None,
             progress: bool = False, skip_if_loaded: bool = False) -> LoadReport:
    """Rosreestr KPT (schema 10) extracts into parcels, reprojected from their МСК."""
    from layers.ingest.kpt import read_kpt

    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise IngestError(f"{p}: no such file")
    fp = fingerprint(paths, territory=territory)
    report = LoadReport("parcels", ", ".join(p.name for p in paths))
    if skip_if_loaded and already_loaded(engine, fp):
        report.already_loaded = True
        return report
    frames = []
    for p in paths:
        extract = read_kpt(p)
        bad = extract.parcels[~extract.parcels["valid_number"]]
        if len(bad):
            raise IngestError(f"{p.name}: {len(bad)} parcel(s) with an invalid cadastral number "
                              "(expected NN:NN:NNNNNNN:N); nothing was loaded",
                              [pr for pr in extract.problems if "cadastral number" in pr["reason"]])
        for pr in extract.problems:
            report.warn(pr["row"], pr["reason"])
        frame = extract.parcels.drop(columns=["valid_number"]).rename(columns={"permitted_use_text": "permitted_use"})
        frame["source"] = p.name
        frame["source_id"] = frame["cadastral_number"]
        frames.append(frame)
    parcels = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs="EPSG:4326")
    layer = registry.get("parcels")
    rows = prepare(parcels, layer, report, source=report.source)
    with transaction(engine, actor) as conn:
        upsert(conn, layer, rows, report, territory_oktmo=territory, progress=progress)
        record(conn, "kpt", fp, [report])
    return report


OSM_LAYERS = {"streets": "street_edges", "buildings": "buildings", "facilities": "facilities"}


def load_osm(engine: Engine, path: str | Path, *, actor: str, territory: str | None = None,
             layers: tuple[str, ...] = ("streets", "buildings", "facilities"), progress: bool = False,
             skip_if_loaded: bool = False) -> list[LoadReport]:
    """OpenStreetMap PBF: street network (noded), buildings and amenities as facilities."""
    from layers.ingest.osm import read_osm

    path = Path(path)
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    if unknown := [name for name in layers if name not in OSM_LAYERS]:
        raise IngestError(f"unknown OSM layer(s) {', '.join(unknown)}; choose from {', '.join(OSM_LAYERS)}")
    fp = fingerprint([path], territory=territory, layers=sorted(layers))
    source = f"osm:{path.name}"
    if skip_if_loaded and already_loaded(engine, fp):
        return [LoadReport(name, source, already_loaded=True) for name in layers]
    extract = read_osm(path, progress=(lambda msg: print(msg, flush=True)) if progress else None)
    reports: list[LoadReport] = []
    with transaction(engine, actor) as conn:
        if "streets" in layers:
            reports += load_network(conn, extract.streets, source, progress=progress)
        if "buildings" in layers:
            reports.append(_upsert_frame(conn, "buildings", extract.buildings, source, "osm_id", territory, progress))
        if "facilities" in layers:
            reports.append(_upsert_frame(conn, "facilities", extract.facilities, source, "osm_id", territory,
                                         progress))
        # Each reader problem on its own layer's report: dropped rows as skipped, kept ones as warnings.
        by_layer = {r.layer: r for r in reports}
        for name, layer_name in OSM_LAYERS.items():
            if name in layers:
                for item in extract.dropped.get(name, []):
                    by_layer[layer_name].skip(item["row"], item["reason"])
                for item in extract.noted.get(name, []):
                    by_layer[layer_name].warn(item["row"], item["reason"])
        record(conn, "osm", fp, reports)
    return reports


def _upsert_frame(conn: Connection, layer_name: str, gdf: gpd.GeoDataFrame, source: str, key: str,
                  territory: str | None, progress: bool) -> LoadReport:
    layer = registry.get(layer_name)
    report = LoadReport(layer_name, source)
    rows = prepare(gdf, layer, report, source=source, key=key)
    upsert(conn, layer, rows, report, territory_oktmo=territory, progress=progress)
    return report


def whole_people(values: np.ndarray) -> np.ndarray:
    """Round to whole people keeping the total: largest-remainder rounding, so the sum of the
    parts equals the rounded sum of the raster (rounding each part alone lets the total drift)."""
    values = np.nan_to_num(np.asarray(values, dtype=float))
    floors = np.floor(values)
    short = int(round(values.sum() - floors.sum()))
    if short > 0:
        floors[np.argsort(floors - values, kind="stable")[:short]] += 1
    return floors.astype(np.int64)


def load_raster(engine: Engine, path: str | Path, into: str, *, actor: str, weight: str | None = None,
                crs: str | None = None, territory: str | None = None, skip_if_loaded: bool = False) -> LoadReport:
    """A GeoTIFF population raster summed into building residents or territory populations."""
    from layers.ingest import raster

    path = Path(path)
    if into not in ("buildings", "territories"):
        raise IngestError(f"--into must be 'buildings' or 'territories', not '{into}'")
    if not path.exists():
        raise IngestError(f"{path}: no such file")
    fp = fingerprint([path], into=into, weight=weight, crs=crs, territory=territory)
    report = LoadReport(into, path.name)
    if skip_if_loaded and already_loaded(engine, fp):
        report.already_loaded = True
        return report
    with transaction(engine, actor) as conn:
        if into == "territories":
            zones = gpd.read_postgis(text("SELECT id, oktmo, boundary FROM cdt.territories WHERE boundary IS NOT NULL"
                                          " AND (CAST(:o AS text) IS NULL OR oktmo = :o)"),
                                     conn, geom_col="boundary", params={"o": territory})
            if zones.empty:
                raise IngestError("no territory with a boundary to sum the raster into")
            values = raster.population_into_territories(path, zones, crs=crs)
            table, column = "cdt.territories", "population"
            extra = ", population_source = :src"
        else:
            zones = gpd.read_postgis(text(
                "SELECT b.id, b.living_area_m2, b.geom FROM cdt.buildings b "
                "LEFT JOIN cdt.territories t ON t.id = b.territory_id "
                "WHERE CAST(:o AS text) IS NULL OR t.oktmo LIKE :o || '%'"), conn, geom_col="geom",
                params={"o": territory})
            if zones.empty:
                raise IngestError("no buildings to distribute the raster into")
            values = raster.population_into_buildings(path, zones, weight=weight, crs=crs)
            unassigned = raster.unassigned_population(path, zones, crs=crs)
            if unassigned:
                report.warn(path.name, f"{unassigned:.0f} people in cells without any building were not assigned")
            table, column, extra = "cdt.buildings", "residents", ""
        ids = zones["id"].to_numpy()
        rounded = whole_people(values)
        conn.execute(text("CREATE TEMP TABLE _cdt_pop (id int, value bigint) ON COMMIT DROP"))
        with conn.connection.driver_connection.cursor().copy("COPY _cdt_pop (id, value) FROM STDIN") as copy:
            for i, v in zip(ids, rounded, strict=True):
                copy.write_row((int(i), int(v)))
        changed = conn.execute(text(
            f"UPDATE {table} x SET {column} = p.value{extra} FROM _cdt_pop p "
            f"WHERE x.id = p.id AND x.{column} IS DISTINCT FROM p.value"), {"src": f"raster {path.name}"})
        report.updated = changed.rowcount
        report.unchanged = len(ids) - changed.rowcount
        record(conn, "raster", fp, [report])
    return report
