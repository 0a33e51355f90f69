"""Territories from the hflabs/city reference (`data/russia/cities.csv`) into the OKTMO hierarchy.

For each city: its federal subject (OKTMO NN000000), then either an urban okrug
(the city is a municipality of its own: OKTMO NNNNN000) or a municipal district with
the city as a settlement in it (11-digit OKTMO).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import Engine, text

from layers import registry
from layers.db import transaction
from layers.errors import IngestError
from layers.ingest.prepare import prepare
from layers.ingest.report import LoadReport
from layers.ingest.vector import read_vector
from layers.ingest.writer import upsert

CITIES_SOURCE = "hflabs/city cities.csv (DaData, 2021-10-11, CC BY-SA 4.0)"


def territory_rows(cities: pd.DataFrame, selectors: list[str]) -> list[dict]:
    """Rows for the cities matched by OKTMO code or name, parents first."""
    rows: dict[str, dict] = {}
    for sel in selectors:
        match = cities[(cities["oktmo"] == sel) | (cities["oktmo"].str[:8] == sel) | (cities["city"] == sel)]
        if match.empty:
            raise IngestError(f"no city with OKTMO or name '{sel}' in cities.csv")
        city = match.iloc[0]
        oktmo = city["oktmo"]
        region_code = oktmo[:2] + "000000"
        rows.setdefault(region_code, {
            "oktmo": region_code, "name": f"{city['region']} {city['region_type']}".strip()
            if city["region_type"] in ("обл", "край", "АО", "Аобл") else f"{city['region_type']} {city['region']}",
            "level": "federal_subject", "parent": None})
        point = shapely.Point(float(city["geo_lon"]), float(city["geo_lat"]))
        common = {"local_crs": _local_crs(str(city["region"]), point.x), "okato": city["okato"],
                   "population": int(city["population"]), "timezone": city["timezone"],
                  "centre": point, "population_source": CITIES_SOURCE}
        if pd.isna(city["area"]) or not str(city["area"]).strip():
            rows[oktmo[:8]] = {"oktmo": oktmo[:8], "name": f"{city['city_type']} {city['city']}",
                               "level": "urban_okrug", "parent": region_code, **common}
        else:
            rows.setdefault(oktmo[:8], {"oktmo": oktmo[:8], "name": f"{city['area']} {city['area_type']}",
                                        "level": "municipal_district", "parent": region_code})
            rows[oktmo] = {"oktmo": oktmo, "name": f"{city['city_type']} {city['city']}", "level": "settlement",
                           "parent": oktmo[:8], **common}
    return list(rows.values())


def _local_crs(region: str, lon: float) -> str | None:
    """The МСК zone of the region (matched by the region's name in the МСК table) nearest to `lon`."""
    from layers.crs import msk_systems

    generic = {"республика", "область", "край", "автономный", "округ"}
    words = [w for w in region.replace("-", " ").split() if w.lower() not in generic]
    if not words:
        return None
    word = max(words, key=len)
    best = None
    for name, crs in msk_systems().items():
        if word.lower() in crs.title.lower():
            lon0 = float(crs.proj.split("+lon_0=")[1].split()[0])
            if best is None or abs(lon - lon0) < best[0]:
                best = (abs(lon - lon0), name)
    return best[1] if best else None


def load_territories(engine: Engine, cities_csv: str | Path, selectors: list[str], *, actor: str,
                     boundaries: dict[str, str | Path] | None = None) -> LoadReport:
    """Load the territories of the selected cities; `boundaries` maps an OKTMO to a boundary file."""
    cities = pd.read_csv(cities_csv, dtype=str)
    rows = territory_rows(cities, selectors)
    frame = gpd.GeoDataFrame(pd.DataFrame(rows), geometry=[None] * len(rows), crs="EPSG:4326")
    for code, path in (boundaries or {}).items():
        if code not in set(frame["oktmo"]):
            raise IngestError(f"boundary given for {code}, which is not among the loaded territories")
        shape = read_vector(path).geometry.union_all()
        frame.loc[frame["oktmo"] == code, "geometry"] = shape
    layer = registry.get("territories")
    report = LoadReport("territories", Path(cities_csv).name)
    with transaction(engine, actor) as conn:
        # Parents first, so each child can find its parent's id.
        for level_rows in _by_depth(frame):
            parents = {r.oktmo: r.id for r in conn.execute(text("SELECT oktmo, id FROM cdt.territories"))}
            level_rows = level_rows.copy()
            level_rows["parent_id"] = level_rows["parent"].map(parents)
            level_rows = level_rows.rename_geometry("boundary")
            prepared = prepare(level_rows.drop(columns=["parent"]), layer, report, source=report.source)
            upsert(conn, layer, prepared, report)
    return report


def _by_depth(frame: gpd.GeoDataFrame) -> list[gpd.GeoDataFrame]:
    depth = frame["level"].map({"federal_subject": 0, "municipal_district": 1, "urban_okrug": 1}).fillna(2)
    return [frame[depth == d] for d in sorted(depth.unique())]
