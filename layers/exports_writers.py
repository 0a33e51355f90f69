"""Writing an export (see layers/exports.py): rows arrive in chunks and leave as

- CSV and GeoJSON: byte streams, one chunk at a time (memory does not grow with the rows);
- XLSX, Parquet (GeoParquet 1.0) and GeoPackage: a temporary file written chunk by chunk (openpyxl write-only,
  pyarrow ParquetWriter, pyogrio write_arrow with append), then streamed back and deleted.

Each row is a tuple of the attribute values in column order, then the geometry when the export has one, already
encoded by PostGIS as the format needs it (WKT for CSV and XLSX, GeoJSON text, WKB for Parquet and GeoPackage).
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime

import orjson

from layers.errors import InvalidParameterValue

# The last row a worksheet holds (1,048,576) minus the header.
XLSX_MAX_ROWS = 1_048_575
# Excel keeps at most this many characters in a cell: a longer WKT is left out (gpkg/parquet carry it whole).
XLSX_MAX_CELL = 32_767
FILE_BLOCK = 1 << 20


@dataclass(frozen=True)
class Format:
    name: str
    ext: str
    media_type: str
    geometry_encoding: str  # what PostGIS writes: wkt | geojson | wkb
    geometry_column: str  # the name of the geometry column in the file
    streamed: bool
    spatial: bool  # can carry a geometry at all


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("csv", "csv", "text/csv; charset=utf-8", "wkt", "geometry_wkt", True, True),
    Format("geojson", "geojson", "application/geo+json", "geojson", "geometry", True, True),
    Format("xlsx", "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "wkt",
           "geometry_wkt", False, True),
    Format("gpkg", "gpkg", "application/geopackage+sqlite3", "wkb", "geometry", False, True),
    Format("parquet", "parquet", "application/vnd.apache.parquet", "wkb", "geometry", False, True),
)}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # integer | number | string | boolean | date | datetime | json
    nullable: bool = True
    title: str | None = None
    description: str | None = None
    unit: str | None = None

    def as_dict(self) -> dict:
        return {"name": self.name, "type": self.kind, "nullable": self.nullable, "title": self.title,
                "description": self.description, "unit": self.unit}


@dataclass(frozen=True)
class Geometry:
    type: str | None  # OGC type in upper case (MULTIPOLYGON ...), None: mixed
    crs: str  # "EPSG:4326", "EPSG:32637", or a PROJ string (МСК)
    crs84: bool  # longitude/latitude in WGS 84: GeoParquet's default CRS


@dataclass
class Export:
    """What to write: the file stem, the attribute columns, the geometry (if any) and a source of row chunks
    for a geometry encoding (None: no geometry)."""

    name: str
    columns: list[Column]
    geometry: Geometry | None
    rows: Callable[[str | None], Iterator[list[tuple]]]
    feature_id: str | None = None  # GeoJSON: the column that is the feature's id (kept out of properties)

    def header(self, fmt: Format) -> list[str]:
        return [c.name for c in self.columns] + ([fmt.geometry_column] if self.geometry else [])


def _text(kind: str, v) -> object:
    """A value for a text cell: ISO dates, JSON for arrays and objects, lower-case booleans."""
    if v is None:
        return ""
    if isinstance(v, (datetime, date)):
        return v.isoformat()
    if kind == "json":
        return orjson.dumps(v).decode()
    if isinstance(v, bool):
        return "true" if v else "false"
    return v


# --- streamed ---------------------------------------------------------------------------------------------
def csv_stream(export: Export, chunks: Iterable[list[tuple]]) -> Iterator[bytes]:
    fmt = FORMATS["csv"]
    kinds = [c.kind for c in export.columns] + (["wkt"] if export.geometry else [])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(export.header(fmt))
    # A byte-order mark: Excel then reads the Cyrillic as UTF-8 (pandas and GDAL skip it).
    yield b"\xef\xbb\xbf" + buf.getvalue().encode()
    for chunk in chunks:
        buf.seek(0)
        buf.truncate()
        writer.writerows([_text(k, v) for k, v in zip(kinds, row, strict=True)] for row in chunk)
        yield buf.getvalue().encode()


def geojson_stream(export: Export, chunks: Iterable[list[tuple]]) -> Iterator[bytes]:
    names = [c.name for c in export.columns]
    id_at = names.index(export.feature_id) if export.feature_id in names else None
    head = {"type": "FeatureCollection", "name": export.name}
    yield orjson.dumps(head)[:-1] + b',"features":['
    first = True
    n = len(names)
    for chunk in chunks:
        if not chunk:
            continue
        feats = []
        for row in chunk:
            props = {k: v for i, (k, v) in enumerate(zip(names, row[:n], strict=True)) if i != id_at}
            geom = row[n] if export.geometry else None  # GeoJSON text from PostGIS, passed through as is
            feature = {"type": "Feature", "geometry": orjson.Fragment(geom) if geom else None, "properties": props}
            feats.append({"type": "Feature", "id": row[id_at], **feature} if id_at is not None else feature)
        # One dumps per chunk: orjson gives every result a buffer of at least 4 KB, per feature that is 10x the data.
        yield (b"" if first else b",") + orjson.dumps(feats)[1:-1]
        first = False
    yield b"]}"


# --- files ------------------------------------------------------------------------------------------------
def write_file(export: Export, fmt: Format, chunks: Iterable[list[tuple]]) -> str:
    """The export in a temporary file (its path; the caller deletes it). Nothing is left behind on failure."""
    fd, path = tempfile.mkstemp(prefix="cdt-export-", suffix=f".{fmt.ext}")
    os.close(fd)
    try:
        if fmt.name == "xlsx":
            _xlsx(export, chunks, path)
        elif fmt.name == "parquet":
            _parquet(export, chunks, path)
        elif fmt.name == "gpkg":
            os.unlink(path)  # GDAL creates the GeoPackage itself
            _gpkg(export, chunks, path)
        else:
            raise ValueError(f"{fmt.name} is streamed, not written to a file")
    except BaseException:
        if os.path.exists(path):
            os.unlink(path)
        raise
    return path


def file_stream(path: str) -> Iterator[bytes]:
    """The file in blocks, deleted when sent (or when the client goes away: the generator is closed)."""
    try:
        with open(path, "rb") as fh:
            while block := fh.read(FILE_BLOCK):
                yield block
    finally:
        os.unlink(path)


def too_many_rows(n: int) -> InvalidParameterValue:
    return InvalidParameterValue(f"format=xlsx holds at most {XLSX_MAX_ROWS:,} rows and this export has {n:,} or "
                                 "more; narrow it (bbox, filter, properties) or use csv, parquet or gpkg")


def _xlsx(export: Export, chunks: Iterable[list[tuple]], path: str) -> None:
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    kinds = [c.kind for c in export.columns] + (["wkt"] if export.geometry else [])
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(export.name[:31])
    ws.append(export.header(FORMATS["xlsx"]))
    written = 0
    limit = XLSX_MAX_ROWS  # read at call time (tests lower it)
    for chunk in chunks:
        written += len(chunk)
        if written > limit:
            raise too_many_rows(written)
        for row in chunk:
            out = []
            for kind, v in zip(kinds, row, strict=True):
                if v is None:
                    out.append(None)
                    continue
                if kind in ("date", "datetime", "json") or isinstance(v, (datetime, date)):
                    v = _text(kind, v)  # ISO text: Excel has no time zones
                if kind == "wkt" and len(v) > XLSX_MAX_CELL:
                    v = None
                elif isinstance(v, str):
                    v = ILLEGAL_CHARACTERS_RE.sub("", v)
                out.append(v)
            ws.append(out)
    wb.save(path)


def arrow_schema(export: Export):
    import pyarrow as pa

    types = {"integer": pa.int64(), "number": pa.float64(), "string": pa.string(), "boolean": pa.bool_(),
             "date": pa.date32(), "datetime": pa.timestamp("us", tz="UTC"), "json": pa.string()}
    fields = [pa.field(c.name, types[c.kind], nullable=c.nullable) for c in export.columns]
    if export.geometry:
        fields.append(pa.field("geometry", pa.binary(), metadata={b"ARROW:extension:name": b"geoarrow.wkb"}))
    return pa.schema(fields)


def _batch(export: Export, schema, chunk: list[tuple]):
    import pyarrow as pa

    json_at = {i for i, c in enumerate(export.columns) if c.kind == "json"}
    columns = list(zip(*chunk, strict=True)) if chunk else [()] * len(schema)
    arrays = []
    for i, (values, field) in enumerate(zip(columns, schema, strict=True)):
        if i in json_at:
            values = [None if v is None else orjson.dumps(v).decode() for v in values]
        elif field.type == pa.binary():
            values = [None if v is None else bytes(v) for v in values]
        arrays.append(pa.array(values, type=field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


GEOPARQUET_TYPES = {"POINT": "Point", "LINESTRING": "LineString", "POLYGON": "Polygon", "MULTIPOINT": "MultiPoint",
                    "MULTILINESTRING": "MultiLineString", "MULTIPOLYGON": "MultiPolygon"}


def _geo_metadata(geometry: Geometry) -> bytes:
    """GeoParquet 1.0 `geo` metadata; the CRS as PROJJSON unless it is lon/lat WGS 84 (the default)."""
    column: dict = {"encoding": "WKB", "geometry_types": [GEOPARQUET_TYPES[geometry.type]]
                    if geometry.type in GEOPARQUET_TYPES else []}
    if not geometry.crs84:
        from pyproj import CRS

        column["crs"] = CRS.from_user_input(geometry.crs).to_json_dict()
    return orjson.dumps({"version": "1.0.0", "primary_column": "geometry", "columns": {"geometry": column}})


def _parquet(export: Export, chunks: Iterable[list[tuple]], path: str) -> None:
    import pyarrow.parquet as pq

    schema = arrow_schema(export)
    if export.geometry:
        schema = schema.with_metadata({b"geo": _geo_metadata(export.geometry)})
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for chunk in chunks:
            if chunk:
                writer.write_batch(_batch(export, schema, chunk))


def _gpkg(export: Export, chunks: Iterable[list[tuple]], path: str) -> None:
    import pyarrow as pa
    from pyogrio import write_arrow

    schema = arrow_schema(export)
    geom = export.geometry
    options = {"geometry_name": "geometry", "geometry_type": _ogr_type(geom.type), "crs": geom.crs} if geom else {}
    written = False
    for chunk in chunks:
        if chunk:
            write_arrow(pa.Table.from_batches([_batch(export, schema, chunk)], schema=schema), path,
                        layer=export.name, driver="GPKG", append=written, **options)
            written = True
    if not written:  # an empty export is still a GeoPackage, with the (empty) layer and its columns
        write_arrow(schema.empty_table(), path, layer=export.name, driver="GPKG", **options)


def _ogr_type(geometry_type: str | None) -> str:
    return GEOPARQUET_TYPES.get(geometry_type or "", "Unknown")
