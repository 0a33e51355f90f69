"""The layers an SQL `measure` aggregates, and the one query per layer that computes all its measures.

Every source is a sub-select with a `territory_id` column (the lowest territory a row belongs to) under the alias
`s`. A measure's formula is an SQL aggregate over `s`'s columns (`sum(s.residents)`, `count(*) FILTER (WHERE
s.floors >= 4)`). The query joins the source to `tmap`, which pairs each territory with itself and every
descendant, so a parent's value is recomputed from its descendants' rows (a median stays a median), not summed
from the children's values. All the measures of one source are one scan of it.

Sources see the database as the transaction sees it: inside a scenario's sandbox they see its edits.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from layers.errors import InvalidParameterValue


@dataclass(frozen=True)
class Source:
    name: str
    sql: str  # a sub-select with territory_id and the columns below
    columns: tuple[str, ...]
    description: str
    # False: a territory's value comes from its own rows only (a region's fuel balance is not the sum of its
    # municipalities'; summing both would count the same energy twice).
    pooled: bool = True


def _clipped(table: str, measure: str, name: str, extra: str = "") -> str:
    """Rows of a layer with no territory column, cut by the lowest territories' boundaries. `measure` is a
    function (ST_Length, ST_Area) of a geometry `{g}`, taken on geography; a row wholly inside is measured whole
    (ST_ContainsProperly uses the prepared, cached boundary), only the rows crossing it are intersected."""
    whole = measure.format(g="x.geom")
    cut = measure.format(g="ST_Intersection(x.geom, t.boundary)")
    return (f"SELECT t.id AS territory_id, CASE WHEN ST_ContainsProperly(t.boundary, x.geom) THEN {whole} "
            f"ELSE {cut} END AS {name}{extra} FROM cdt.{table} x "
            f"JOIN cdt.territories t ON t.boundary IS NOT NULL AND ST_Intersects(x.geom, t.boundary) "
            f"WHERE NOT EXISTS (SELECT 1 FROM cdt.territories c WHERE c.parent_id = t.id AND c.boundary IS NOT NULL)")


SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("territories",
           "SELECT id AS territory_id, ST_Area(boundary::geography) AS area_m2, population FROM cdt.territories "
           "WHERE NOT EXISTS (SELECT 1 FROM cdt.territories c WHERE c.parent_id = cdt.territories.id)",
           ("area_m2", "population"),
           "The lowest territories themselves: area of the boundary (m², geodesic) and the registered population."),
    Source("buildings",
           "SELECT territory_id, residents, living_area_m2, floor_area_m2, footprint_m2, floors, is_living, year, use "
           "FROM cdt.buildings",
           ("residents", "living_area_m2", "floor_area_m2", "footprint_m2", "floors", "is_living", "year", "use"),
           "Buildings: residents, living and floor area, footprint (m², geodesic), floors, year built."),
    Source("facilities",
           "SELECT territory_id, type_code, capacity FROM cdt.facilities",
           ("type_code", "capacity"), "Facilities by type with their capacity (places, visits per shift, beds ...)."),
    Source("planned_facilities",
           "SELECT territory_id, type_code, capacity, status, planned_year FROM cdt.planned_facilities",
           ("type_code", "capacity", "status", "planned_year"), "Facilities of the master plan."),
    Source("norms",
           # Demand norms (places per 1,000 residents) of the region of each lowest territory.
           "SELECT t.id AS territory_id, n.type_code, n.demand_per_1000 FROM cdt.territories t "
           "JOIN cdt.territories r ON r.id = t.parent_id "
           "JOIN cdt.planning_norms n ON n.region_oktmo = r.oktmo AND n.demand_per_1000 IS NOT NULL "
           "WHERE NOT EXISTS (SELECT 1 FROM cdt.territories c WHERE c.parent_id = t.id)",
           ("type_code", "demand_per_1000"), "Regional planning norms of demand per 1,000 residents."),
    Source("parcels",
           "SELECT territory_id, area_m2, land_category_code, permitted_use_code FROM cdt.parcels",
           ("area_m2", "land_category_code", "permitted_use_code"), "Cadastral parcels (EGRN)."),
    Source("functional_zones",
           "SELECT territory_id, zone_type, status, area_m2 FROM cdt.functional_zones",
           ("zone_type", "status", "area_m2"), "Functional zones of the master plan (Order No. 10 classifier)."),
    Source("zoning_zones",
           "SELECT territory_id, zone_code, area_m2 FROM cdt.zoning_zones",
           ("zone_code", "area_m2"), "Territorial zones of the land use and development rules (ПЗЗ)."),
    Source("streets",
           _clipped("street_edges", "ST_Length(({g})::geography)", "length_m", ", x.highway, x.walk, x.drive"),
           ("length_m", "highway", "walk", "drive"),
           "Street network edges clipped to the territory boundary (length in metres, geodesic)."),
    Source("water",
           _clipped("water", "ST_Area(({g})::geography)", "area_m2"),
           ("area_m2",), "Water bodies clipped to the territory boundary (m², geodesic)."),
    Source("railways",
           _clipped("railways", "ST_Length(({g})::geography)", "length_m"),
           ("length_m",), "Railway lines clipped to the territory boundary (m)."),
    Source("utility_lines",
           "SELECT territory_id, kind, length_m, capacity, load FROM cdt.utility_lines",
           ("kind", "length_m", "capacity", "load"), "Utility network lines (heat, water, power ...)."),
    Source("utility_nodes",
           "SELECT territory_id, kind, node_type, capacity, load FROM cdt.utility_nodes",
           ("kind", "node_type", "capacity", "load"), "Utility sources and nodes with capacity and load."),
    Source("walk_access",
           "SELECT territory_id, residents, kindergarten_min, school_min, polyclinic_min, pharmacy_min, stop_min, "
           "park_min, score_15min FROM cdt.walk_access",
           ("residents", "kindergarten_min", "school_min", "polyclinic_min", "pharmacy_min", "stop_min", "park_min",
            "score_15min"), "Walking minutes from each residential building (result layer walk_access)."),
    Source("service_provision",
           "SELECT territory_id, facility_type, residents, demand, served, deficit FROM cdt.service_provision",
           ("facility_type", "residents", "demand", "served", "deficit"),
           "Provision by planning norms per hexagonal district (result layer service_provision)."),
    Source("energy",
           # The latest actual balance of each territory up to the period's year (:year).
           "SELECT b.territory_id, c.row_code, c.column_code, c.value_tce FROM cdt.balance_cells c "
           "JOIN (SELECT DISTINCT ON (territory_id) id, territory_id FROM cdt.fuel_balances "
           "      WHERE kind = 'actual' AND scenario IS NULL AND territory_id IS NOT NULL AND year <= :year "
           "      ORDER BY territory_id, year DESC) b ON b.id = c.balance_id",
           ("row_code", "column_code", "value_tce"),
           "Cells of the latest actual fuel and energy balance of the territory itself (thousand tce, Order No. 1169 "
           "rows and columns).", pooled=False),
)}

TMAP = """WITH RECURSIVE tmap(territory_id, leaf_id) AS (
    SELECT id, id FROM cdt.territories WHERE id = ANY(:scope)
    UNION ALL
    SELECT m.territory_id, c.id FROM tmap m JOIN cdt.territories c ON c.parent_id = m.leaf_id)"""


def _guarded(conn: Connection):
    """A savepoint, so that a failing formula does not poison the caller's transaction (none in autocommit)."""
    if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return nullcontext()
    return conn.begin_nested()


def check_source(name: str | None, code: str) -> Source:
    if name not in SOURCES:
        raise InvalidParameterValue(f"indicator '{code}': unknown source layer {name!r}; known: "
                                    f"{', '.join(sorted(SOURCES))}")
    return SOURCES[name]


def measure_query(source: Source, formulas: Sequence[str]) -> str:
    columns = ", ".join(f"({f})::float8 AS m{i}" for i, f in enumerate(formulas))
    own = "" if source.pooled else " AND m.territory_id = m.leaf_id"
    # MATERIALIZED: each source row is made once (an intersection, a boundary), not once per territory it
    # counts for (its own and every ancestor), and its wide columns do not travel through the join.
    # The filter on the territories computed goes inside, so that a town's computation reads the town's rows by
    # index, not the whole country's.
    return (f"{TMAP}, s AS MATERIALIZED (SELECT * FROM ({source.sql}) src "
            f"WHERE src.territory_id IN (SELECT leaf_id FROM tmap)) SELECT m.territory_id, {columns} FROM s "
            f"JOIN tmap m ON m.leaf_id = s.territory_id{own} GROUP BY m.territory_id")


def compute_measures(conn: Connection, source: Source, formulas: Sequence[str], territory_ids: Sequence[int],
                     year: int) -> np.ndarray:
    """One scan of a source: a (territories x formulas) array, NaN where a territory has no rows."""
    out = np.full((len(territory_ids), len(formulas)), np.nan)
    if not formulas:
        return out
    position = {tid: i for i, tid in enumerate(territory_ids)}
    with _guarded(conn):
        try:
            rows = conn.execute(text(measure_query(source, formulas)),
                                {"scope": list(territory_ids), "year": year}).all()
        except DBAPIError as exc:
            raise InvalidParameterValue(f"an SQL formula over '{source.name}' fails: "
                                        f"{str(exc.orig).splitlines()[0]}") from None
    for row in rows:
        out[position[row[0]], :] = [np.nan if v is None else v for v in row[1:]]
    return out


def validate_formula(conn: Connection, source: Source, formula: str, code: str) -> None:
    """Plan the formula's query without running it: an unknown column or a syntax error is refused here."""
    with _guarded(conn):
        try:
            conn.execute(text("EXPLAIN " + measure_query(source, [formula])), {"scope": [], "year": 2000})
        except DBAPIError as exc:
            raise InvalidParameterValue(f"indicator '{code}': its SQL formula fails: "
                                        f"{str(exc.orig).splitlines()[0]}") from None
