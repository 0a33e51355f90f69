"""Exports (/exports/...): every format read back with pandas/geopandas equals the source rows read by SQL; filters
give the ids /collections/{id}/items gives; access rules hold; the whole city's buildings stream in flat memory;
indicator and balance exports equal what is stored; the dictionary matches the files."""

from __future__ import annotations

import io
import json
import math
import tracemalloc
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyarrow.parquet as pq
import pyproj
import pytest
import shapely
from sqlalchemy import text

from geoserver_app.app import create_app
from geoserver_app.config import Config
from layers import exports_writers as writers
from layers import registry
from layers.db import transaction
from tests.conftest import bearer, scalar
from tests.test_planning_api import indicator_values_restored

FORMATS = ("csv", "xlsx", "geojson", "gpkg", "parquet")
VOLOGDA, YEAR = "19701000", 2026
FEB = Path(__file__).resolve().parents[1] / "data" / "feb" / "moscow-oblast"


@pytest.fixture(scope="module")
def client(db_url):
    return create_app(Config(), database_url=db_url).test_client()


def read_back(fmt: str, data: bytes) -> pd.DataFrame:
    """The file as a (Geo)DataFrame with an `id` column and shapely geometries in `geom` (when it has any)."""
    buf = io.BytesIO(data)
    if fmt == "csv":
        df = pd.read_csv(buf, keep_default_na=False, na_values=[""])
    elif fmt == "xlsx":
        df = pd.read_excel(buf)
    elif fmt == "parquet":
        df = gpd.read_parquet(buf) if b"geo" in (pq.read_schema(io.BytesIO(data)).metadata or {}) else \
            pd.read_parquet(buf)
    else:
        df = gpd.read_file(buf)
    ids = [f.get("id") for f in json.loads(data)["features"]] if fmt == "geojson" else []
    if any(i is not None for i in ids):  # a collection's feature id is the GeoJSON id, not a property
        df.insert(0, "id", ids)
    if "geometry_wkt" in df.columns:
        df["geom"] = shapely.from_wkt([w if isinstance(w, str) else None for w in df["geometry_wkt"]])
    elif "geometry" in df.columns:
        df["geom"] = df["geometry"].values
    return df


def source(engine, table: str, columns: str, where: str = "", **params) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT t.id, {columns}, ST_AsBinary(t.geom) AS wkb FROM cdt.{table} t "
                                 f"{where} ORDER BY t.id"), params).mappings().all()
    df = pd.DataFrame([dict(r) for r in rows])
    df["geom"] = shapely.from_wkb([bytes(b) for b in df.pop("wkb")])
    return df


def same(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return a == b or (isinstance(a, float) and math.isclose(a, float(b), rel_tol=1e-12))


def assert_equal(got: pd.DataFrame, want: pd.DataFrame, columns: list[str]) -> None:
    assert got["id"].tolist() == want["id"].tolist()
    for col in columns:
        bad = [(i, x, y) for i, x, y in zip(want["id"], got[col], want[col], strict=True) if not same(y, x)]
        assert not bad, f"{col}: {bad[:3]}"
    assert all(shapely.equals_exact(got["geom"].values, want["geom"].values, tolerance=1e-9))


# --- every format equals the source ---------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_facilities_read_back_equal_the_source(client, engine, fmt):
    resp = client.get(f"/exports/collections/facilities?format={fmt}")
    assert resp.status_code == 200, resp.data[:300]
    ext = writers.FORMATS[fmt].ext
    assert resp.headers["Content-Disposition"] == f'attachment; filename="facilities.{ext}"'
    got = read_back(fmt, resp.data)
    want = source(engine, "facilities", "t.type_code, t.name, t.capacity, t.territory_id, t.created_at")
    assert len(want) > 100
    assert_equal(got, want, ["type_code", "name", "capacity", "territory_id"])
    assert str(got["territory_id"].dtype) in ("int64", "Int64", "int32")  # integers stay integers
    iso = want["created_at"].iloc[0].isoformat()
    if fmt in ("csv", "xlsx"):  # ISO text, in UTC
        assert got["created_at"].iloc[0] == iso and iso.endswith("+00:00")
    if fmt == "geojson":  # GDAL parses it (to milliseconds): look at the text
        assert json.loads(resp.data)["features"][0]["properties"]["created_at"] == iso


def test_f_is_format_and_file_names_are_stable(client):
    a = client.get("/exports/collections/facilities?f=parquet")
    assert a.status_code == 200 and a.headers["Content-Disposition"].endswith('filename="facilities.parquet"')
    assert b'"geo"' in a.data[-4096:] or b"geo" in a.data  # GeoParquet metadata
    assert client.get("/exports/collections/facilities?f=csv&format=gpkg").status_code == 400


def peak_while_streaming(client, url: str) -> tuple[int, int, int, bytes]:
    """Python's peak allocation while the response streams (rows counted, bytes, peak, last bytes)."""
    tracemalloc.start()
    resp = client.get(url, buffered=False)
    total, rows, tail = 0, 0, b""
    for block in resp.response:
        total += len(block)
        rows += block.count(b"\n") if "csv" in url else block.count(b'"type":"Feature"')
        tail = block[-2:]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    resp.close()
    return rows, total, peak, tail


def test_buildings_whole_city_streamed_in_flat_memory(client, engine):
    n = scalar(engine, "SELECT count(*) FROM cdt.buildings")
    assert n > 20_000
    for fmt in ("csv", "geojson"):
        url = f"/exports/collections/buildings?format={fmt}"
        peak_part = peak_while_streaming(client, f"{url}&limit=5000")[2]
        rows, total, peak, tail = peak_while_streaming(client, url)
        assert rows == (n + 1 if fmt == "csv" else n)
        assert fmt == "csv" or tail == b"]}"
        print(f"{fmt}: {total / 1e6:.1f} MB streamed, Python peak {peak / 1e6:.1f} MB "
              f"(5000 rows: {peak_part / 1e6:.1f} MB)")
        # Flat: five times the rows, about the same peak (a few chunks), far below the whole export.
        assert peak < 1.3 * peak_part + 1e6 and peak < 10e6
    tracemalloc.start()
    json.loads(client.get("/exports/collections/buildings?format=geojson").data)  # what a JSON load would take
    loaded = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"the same GeoJSON loaded whole: Python peak {loaded / 1e6:.1f} MB")
    assert peak < loaded / 10


def test_buildings_whole_city_as_geoparquet(client, engine):
    resp = client.get("/exports/collections/buildings?format=parquet")
    got = read_back("parquet", resp.data)
    want = source(engine, "buildings", "t.floors, t.residents, t.is_living")
    assert_equal(got, want, ["floors", "residents", "is_living"])
    assert got.crs == pyproj.CRS("OGC:CRS84")  # GeoParquet's default: no crs member


# --- the same filters as the items ----------------------------------------------------------------------
@pytest.mark.parametrize("query", ["bbox=39.85,59.2,39.9,59.23", "filter=type_code%20%3D%20%27school%27",
                                   "filter-lang=cql2-json&filter=%7B%22op%22%3A%22%3D%22%2C%22args%22%3A%5B%7B"
                                   "%22property%22%3A%22type_code%22%7D%2C%22school%22%5D%7D",
                                   "type_code=school&sortby=-name"])
def test_filters_give_the_items_ids(client, query):
    items = client.get(f"/collections/facilities/items?limit=10000&{query}").get_json()["features"]
    resp = client.get(f"/exports/collections/facilities?format=csv&{query}")
    assert resp.status_code == 200
    got = read_back("csv", resp.data)
    assert got["id"].tolist() == [f["id"] for f in items] and len(items) > 0


def test_properties_and_crs(client):
    resp = client.get("/exports/collections/facilities?format=csv&properties=name,type_code&crs="
                      "http://www.opengis.net/def/crs/EPSG/0/3857&limit=5")
    df = read_back("csv", resp.data)
    assert list(df.columns[:4]) == ["id", "type_code", "name", "geometry_wkt"] and len(df) == 5
    assert abs(df["geom"].iloc[0].x) > 1000  # metres
    assert resp.headers["Content-Crs"] == "<http://www.opengis.net/def/crs/EPSG/0/3857>"


@pytest.mark.parametrize("url,status", [
    ("/exports/collections/nope?format=csv", 404), ("/exports/collections/facilities?format=shp", 400),
    ("/exports/collections/facilities?filter=type_code%20%3D", 400),
    ("/exports/collections/facilities?bbox=1,2,3", 400), ("/exports/collections/facilities?access_token=x", 400),
    ("/exports/collections/facilities?sortby=nope", 400), ("/exports/balances/999999?format=csv", 404),
    ("/exports/balances/abc?format=csv", 404), ("/exports/balances/1?format=gpkg", 400),
    ("/exports/indicators?codes=no_such_code", 404), ("/exports/indicators?layout=tall", 400),
    ("/exports/indicators?territory=00000000", 404), ("/exports/dictionary?format=parquet", 400)])
def test_errors_are_ogc_exceptions(client, url, status):
    resp = client.get(url)
    assert resp.status_code == status, resp.data[:300]
    assert set(resp.get_json()) >= {"code", "description"}


def test_xlsx_row_limit_refused_with_a_clear_400(client, monkeypatch):
    monkeypatch.setattr(writers, "XLSX_MAX_ROWS", 100)
    resp = client.get("/exports/collections/facilities?format=xlsx")
    assert resp.status_code == 400 and "xlsx" in resp.get_json()["description"]
    assert client.get("/exports/collections/facilities?format=xlsx&limit=50").status_code == 200


# --- access -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def utility_lines(engine):
    """Two lines of our own: one in Vologda city, one in Ekaterinburg (removed at the end)."""
    with transaction(engine, "test:exports") as conn:
        ids = dict(conn.execute(text("SELECT oktmo, id FROM cdt.territories WHERE oktmo IN ('19701000', "
                                     "'65701000')")).all())
        made = [conn.execute(text(
            "INSERT INTO cdt.utility_lines (kind, territory_id, geom, source, source_id) VALUES ('heat', :t, "
            "ST_Multi(ST_GeomFromText(:g, 4326)), 'test-exports', :s) RETURNING id"),
            {"t": ids[o], "g": g, "s": o}).scalar() for o, g in (
            ("19701000", "LINESTRING(39.88 59.22, 39.89 59.221)"),
            ("65701000", "LINESTRING(60.6 56.83, 60.61 56.84)"))]
    yield made
    with transaction(engine, "test:exports") as conn:
        conn.execute(text("DELETE FROM cdt.utility_lines WHERE source = 'test-exports'"))


def test_restricted_layer_refused_and_scoped(client, engine, tokens, utility_lines):
    assert registry.get("utility_lines").access == "restricted"
    anonymous = client.get("/exports/collections/utility_lines?format=csv")
    assert anonymous.status_code == 401 and anonymous.get_json()["code"] == "Unauthorized"
    other_sector = client.get("/exports/collections/utility_lines?format=csv",
                              headers=bearer(tokens["t_education_vologda"]))
    assert other_sector.status_code == 403
    for fmt in ("csv", "gpkg"):
        mine = client.get(f"/exports/collections/utility_lines?format={fmt}", headers=bearer(tokens["t_city_vologda"]))
        assert mine.status_code == 200 and mine.headers["Cache-Control"] == "private, no-store"
        ids = read_back(fmt, mine.data)["id"].tolist()
        with engine.connect() as conn:
            want = conn.execute(text(
                "WITH RECURSIVE sub AS (SELECT id FROM cdt.territories WHERE oktmo = '19701000' UNION ALL "
                "SELECT c.id FROM cdt.territories c JOIN sub ON c.parent_id = sub.id) "
                "SELECT id FROM cdt.utility_lines WHERE territory_id IN (SELECT id FROM sub) ORDER BY id")).scalars()
            assert ids == list(want)
        assert utility_lines[0] in ids and utility_lines[1] not in ids
    everything = client.get("/exports/collections/utility_lines?format=csv", headers=bearer(tokens["t_federal"]))
    assert set(utility_lines) <= set(read_back("csv", everything.data)["id"])


# --- indicators and balances ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def indicators(engine):
    from planning.indicators import catalog, service

    with indicator_values_restored(engine):
        with transaction(engine, "test") as c:
            catalog.install(c, "test")
        service.run(engine, VOLOGDA, YEAR, "test")
        yield


def stored_values(engine) -> tuple[list[str], pd.DataFrame]:
    """Three computed indicators with values in YEAR, and their stored values."""
    with engine.connect() as conn:
        codes = conn.execute(text("SELECT DISTINCT indicator_code FROM cdt.indicator_values WHERE period = :p "
                                  "AND scenario_id IS NULL ORDER BY 1 LIMIT 3"), {"p": f"{YEAR}-01-01"}).scalars().all()
        rows = conn.execute(text(
            "SELECT v.indicator_code, t.oktmo AS territory_oktmo, v.value_type, v.value FROM cdt.indicator_values v "
            "JOIN cdt.territories t ON t.id = v.territory_id WHERE v.period = :p AND v.scenario_id IS NULL "
            "AND v.indicator_code = ANY(:c) ORDER BY 1, 2, 3"), {"p": f"{YEAR}-01-01", "c": codes}).mappings().all()
    return codes, pd.DataFrame([dict(r) for r in rows])


def test_indicator_exports_long_and_wide_equal_the_stored_values(client, engine, tokens, indicators):
    codes, want = stored_values(engine)
    assert len(want) > 0
    base = f"/exports/indicators?codes={','.join(codes)}&year={YEAR}"
    for fmt in ("csv", "parquet", "gpkg"):
        resp = client.get(f"{base}&format={fmt}&layout=long", headers=bearer(tokens["t_federal"]))
        assert resp.status_code == 200 and resp.headers["Content-Disposition"].endswith(f'indicators_long.{fmt}"')
        got = read_back(fmt, resp.data)
        got["territory_oktmo"] = got["territory_oktmo"].astype(str).str.zfill(8)
        assert got[["indicator_code", "territory_oktmo", "value_type"]].values.tolist() == \
            want[["indicator_code", "territory_oktmo", "value_type"]].values.tolist()
        assert all(same(a, b) for a, b in zip(got["value"], want["value"], strict=True))
        assert {"indicator_name_ru", "unit", "territory_name", "year"} <= set(got.columns)
    wide = read_back("xlsx", client.get(f"{base}&format=xlsx&layout=wide").data)
    assert list(wide.columns[-len(codes) - 2:-2]) == codes and wide.columns[-2] == "geometry_wkt"
    wide["territory_oktmo"] = wide["territory_oktmo"].astype(str).str.zfill(8)
    for r in want.itertuples():
        line = wide[(wide["territory_oktmo"] == r.territory_oktmo) & (wide["value_type"] == r.value_type)]
        assert len(line) == 1 and same(line[r.indicator_code].iloc[0], r.value)
    geo = read_back("geojson", client.get(f"{base}&format=geojson&territory={VOLOGDA}").data)
    assert set(geo["territory_oktmo"].astype(str).str.zfill(8)) == {VOLOGDA} and geo["geom"].notna().all()


@pytest.fixture(scope="module")
def balance_id(engine) -> int:
    from energy.store import load_file

    return load_file(engine, sorted(FEB.glob("balance*.xlsx"))[0], "46000000", "test:feb",
                     name="Московская область")["balance_id"]


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "parquet"])
def test_balance_export_equals_load_balance(client, engine, balance_id, fmt):
    from energy import store

    resp = client.get(f"/exports/balances/{balance_id}?format={fmt}")
    assert resp.status_code == 200
    got = read_back(fmt, resp.data)
    table = store.load_balance(engine, balance_id)
    pivot = got.pivot(index="row_code", columns="column_code", values="value_tce")
    for r in table.index:
        for c in table.columns:
            v = table.at[r, c]
            stored = pivot.at[r, c] if r in pivot.index and c in pivot.columns else float("nan")
            assert same(v if not pd.isna(v) else float("nan"), stored), (r, c)
    assert {"row_label_ru", "row_label_en", "column_label_ru", "provenance_source"} <= set(got.columns)


# --- the dictionary ---------------------------------------------------------------------------------------
def test_dictionary_lists_every_collection_and_matches_the_headers(client, tokens):
    body = client.get("/exports/dictionary").get_json()
    by_name = {c["name"]: c for c in body["collections"]}
    assert set(by_name) == {layer.name for layer in registry.all_layers()}
    for layer in registry.all_layers():
        entry = by_name[layer.name]
        resp = client.get(f"/exports/collections/{layer.name}?format=csv&limit=1", headers=bearer(tokens["t_federal"]))
        header = resp.data.decode("utf-8-sig").splitlines()[0].split(",")
        geometry = [entry["geometry"]["csv"]["name"]] if entry["geometry"] else []
        assert header == [c["name"] for c in entry["columns"]] + geometry, layer.name
        assert entry["files"]["gpkg"] == f"{layer.name}.gpkg"
    assert body["indicators"]["definitions"] == "/indicators"
    assert {r["code"] for r in body["balances"]["rows"]} and body["balances"]["columns_codes"]
    units = {c["name"]: c["unit"] for c in by_name["buildings"]["columns"]}
    assert units["living_area_m2"] == "m²"
    flat = read_back("csv", client.get("/exports/dictionary?format=csv").data)
    assert {"dataset", "name", "type", "nullable", "title", "description", "unit"} <= set(flat.columns)
    assert client.get("/exports/dictionary?f=xlsx").status_code == 200


# --- every collection, every format, empty and geometry-less exports too -----------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_collection_every_format_reads_back(client, tokens, fmt):
    for layer in registry.all_layers():
        for extra in ("limit=3", "filter=id%20%3C%200", "limit=2&skipGeometry=true"):
            resp = client.get(f"/exports/collections/{layer.name}?format={fmt}&{extra}",
                              headers=bearer(tokens["t_federal"]))
            assert resp.status_code == 200, (layer.name, extra, resp.data[:300])
            df = read_back(fmt, resp.data)
            assert len(df) <= 3 and (len(df) == 0 or "id" in df.columns), (layer.name, extra)


def test_indicators_from_restricted_layers_stay_hidden(client, engine, tokens, indicators):
    from layers.access import ANONYMOUS
    from planning.indicators import access as indicator_access
    from planning.indicators import catalog

    with engine.connect() as conn:
        reg = catalog.registry(conn)
    hidden = sorted(indicator_access.hidden(ANONYMOUS, reg))
    assert hidden, "some indicators are computed from restricted layers"
    assert client.get(f"/exports/indicators?codes={hidden[0]}&format=csv").status_code == 401
    everything = read_back("csv", client.get(f"/exports/indicators?year={YEAR}&format=csv").data)
    assert not set(everything["indicator_code"]) & set(hidden) and len(everything) > 0
    federal = client.get(f"/exports/indicators?codes={hidden[0]}&format=csv", headers=bearer(tokens["t_federal"]))
    assert federal.status_code == 200
