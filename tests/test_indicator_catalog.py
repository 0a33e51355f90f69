"""The indicator catalog (planning/indicators/catalog.toml) against values computed by hand.

A synthetic region F with two cities A and B (1 km x 1 km squares near lon 40, lat 50, where the demo has nothing)
gets a few rows in every layer the catalog reads. Each indicator is computed by the engine for F, A and B and
compared with the same definition evaluated here in plain Python on the fixture's own numbers: areas and lengths
with pyproj.Geod (Karney's geodesics, as PostGIS geography), never with the database. Everything is inserted in
one transaction that is rolled back.

SQL semantics kept in the expectations: a measure has no value (None) where the territory has no row of its
source; sum() over rows whose values are all NULL is NULL; coalesce(..., 0) makes it 0; an expression divided by
zero, or with an input without value, has no value unless coalesce() or where() says otherwise.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass

import pytest
from pyproj import Geod
from shapely.geometry import LineString, MultiLineString, Polygon, box
from sqlalchemy import text

from planning.indicators import catalog, catalog_doc
from planning.indicators import engine as indicator_engine

GEOD = Geod(ellps="WGS84")
YEAR = 2026
LON0, LAT0, DX, DY = 40.0, 50.0, 0.014, 0.009  # each city about 1.0 km x 1.0 km
LONB = LON0 + DX  # the border of A (west) and B (east)
BOXES = {"A": box(LON0, LAT0, LONB, LAT0 + DY), "B": box(LONB, LAT0, LONB + DX, LAT0 + DY)}
OKTMO = {"F": "99000000", "A": "99701000", "B": "99702000"}
POPULATION = {"F": None, "A": 1200, "B": 400}
ENTRIES = tomllib.loads(catalog.CATALOG.read_text(encoding="utf-8"))["indicator"]
CODES = [e["code"] for e in ENTRIES]


def area(geom) -> float:
    return abs(GEOD.geometry_area_perimeter(geom)[0])


def length(geom) -> float:
    return GEOD.geometry_length(geom)


def rect(city: str, x0: float, y0: float, x1: float, y1: float) -> Polygon:
    """A rectangle inside a city, corners as fractions of the city's square."""
    bx0, by0, _, _ = BOXES[city].bounds
    return box(bx0 + x0 * DX, by0 + y0 * DY, bx0 + x1 * DX, by0 + y1 * DY)


# --- the fixture's data --------------------------------------------------------------------------------------------

@dataclass
class Building:
    key: str
    city: str
    geom: Polygon
    floors: int | None
    residents: int | None
    living: float | None
    floor_area: float | None
    is_living: bool
    walk: dict | None = None  # walk_access minutes and score of a residential building

    @property
    def footprint(self) -> float:
        return area(self.geom)


W = ("kindergarten_min", "school_min", "polyclinic_min", "pharmacy_min", "stop_min", "park_min", "score_15min")


def _walk(*values) -> dict:
    return dict(zip(W, values, strict=True))


BUILDINGS = [
    Building("a1", "A", rect("A", 0.05, 0.05, 0.08, 0.08), 9, 300, 6000.0, 9000.0, True,
             _walk(3.0, 7.0, 10.0, 6.0, 5.0, 20.0, 66.0)),
    Building("a2", "A", rect("A", 0.20, 0.05, 0.22, 0.07), 3, 60, 1500.0, 2400.0, True,
             _walk(4.0, 6.25, 13.0, None, 8.0, 10.0, 50.0)),
    Building("a3", "A", rect("A", 0.30, 0.05, 0.33, 0.09), 2, None, None, 1000.0, False),
    Building("a4", "A", rect("A", 0.40, 0.05, 0.43, 0.07), 5, 140, 3000.0, 4000.0, True,
             _walk(3.75, 5.0, 12.5, 7.0, 6.25, 15.0, 100.0)),
    Building("b1", "B", rect("B", 0.05, 0.05, 0.09, 0.10), 12, 700, 12000.0, 15000.0, True,
             _walk(None, 2.0, None, None, None, None, None)),
    Building("b2", "B", rect("B", 0.20, 0.05, 0.22, 0.06), None, 0, None, None, False),
]
# (city, type, capacity)
FACILITIES = [("A", "kindergarten", 50.0), ("A", "kindergarten", 30.0), ("A", "school", 100.0),
              ("A", "polyclinic", 200.0), ("A", "pharmacy", None), ("B", "school", 300.0), ("B", "hospital", 120.0)]
# (city, type, capacity, status)
PLANNED = [("A", "kindergarten", 80.0, "planned"), ("A", "school", 200.0, "reconstruction"),
           ("B", "school", 400.0, "planned"), ("B", "kindergarten", 20.0, "existing"),
           ("B", "polyclinic", None, "planned")]
# (city, type, hex, residents, demand, served, deficit)
PROVISION = [("A", "kindergarten", "h1", 400.0, 30.0, 20.0, 10.0), ("A", "kindergarten", "h2", 100.0, 10.0, 10.0, 0.0),
             ("A", "school", "h1", 400.0, 60.0, 30.0, 30.0), ("B", "kindergarten", "h3", 700.0, 40.0, 10.0, 30.0),
             ("B", "school", "h3", 700.0, 80.0, 80.0, 0.0)]
# (city, zone_type, status, polygon)
FZ = [("A", "residential", "existing", rect("A", 0.1, 0.1, 0.5, 0.4)),
      ("A", "business", "existing", rect("A", 0.5, 0.1, 0.7, 0.3)),
      ("A", "industrial", "planned", rect("A", 0.7, 0.1, 0.9, 0.5)),
      ("A", "engineering", "existing", rect("A", 0.1, 0.5, 0.2, 0.6)),
      ("A", "recreation", "existing", rect("A", 0.2, 0.5, 0.6, 0.9)),
      ("A", "green", "planned", rect("A", 0.6, 0.6, 0.8, 0.8)),
      ("A", "other", "existing", rect("A", 0.85, 0.85, 0.95, 0.95)),
      ("B", "residential", "existing", rect("B", 0.1, 0.1, 0.6, 0.6)),
      ("B", "transport", "reconstruction", rect("B", 0.6, 0.1, 0.9, 0.3)),
      ("B", "special", "planned", rect("B", 0.6, 0.4, 0.8, 0.6)),
      ("B", "agricultural", "existing", rect("B", 0.1, 0.7, 0.9, 0.9))]
FZ_GROUPS = {"residential": ("residential",), "business": ("business",), "industrial": ("industrial", "engineering"),
             "transport": ("transport",), "agricultural": ("agricultural",), "recreation": ("recreation", "green"),
             "special": ("special",)}
# (city, zone_code, polygon)
ZZ = [("A", "Ж-1", rect("A", 0.1, 0.1, 0.5, 0.5)), ("A", "О-1", rect("A", 0.5, 0.1, 0.9, 0.3)),
      ("A", "Р-2", rect("A", 0.1, 0.5, 0.4, 0.9)), ("A", "СХ-1", rect("A", 0.5, 0.5, 0.9, 0.7)),
      ("A", "ЛПЗ", rect("A", 0.5, 0.8, 0.6, 0.9)),
      ("B", "Ж-2", rect("B", 0.1, 0.1, 0.3, 0.3)), ("B", "П-1", rect("B", 0.3, 0.1, 0.8, 0.5)),
      ("B", "СН-1", rect("B", 0.1, 0.5, 0.3, 0.6)), ("B", "ИТ-1", rect("B", 0.3, 0.6, 0.5, 0.9)),
      ("B", "Т-1", rect("B", 0.6, 0.6, 0.9, 0.9))]
ZZ_PREFIXES = {"residential": "Ж", "public": "О", "industrial": "П", "recreation": "Р", "transport": "Т",
               "engineering": "И", "agricultural": "СХ", "special": "СН"}
# Base-map layers with no territory column: clipped to the cities' squares by the source.
Y_STREET = LAT0 + 0.5 * DY
STREETS = [(LineString([(LON0 + 0.002, LAT0 + 0.002), (LON0 + 0.010, LAT0 + 0.003)]), True),  # inside A
           (LineString([(LON0 + 0.006, Y_STREET), (LONB + 0.004, Y_STREET)]), False),  # A -> B, walk only
           (LineString([(LONB + 0.002, LAT0 + 0.001), (LONB + 0.002, LAT0 + 0.008)]), True)]  # inside B
STREET_PARTS = {"A": [(length(STREETS[0][0]), True), (GEOD.inv(LON0 + 0.006, Y_STREET, LONB, Y_STREET)[2], False)],
                "B": [(GEOD.inv(LONB, Y_STREET, LONB + 0.004, Y_STREET)[2], False), (length(STREETS[2][0]), True)]}
WATER = [box(LON0 + 0.001, LAT0 + 0.001, LON0 + 0.003, LAT0 + 0.002),  # a pond in A
         box(LONB - 0.002, LAT0 + 0.006, LONB + 0.003, LAT0 + 0.008),  # a lake across the border
         LineString([(LONB + 0.005, LAT0 + 0.001), (LONB + 0.009, LAT0 + 0.008)])]  # a river line in B: no area
WATER_PARTS = {"A": [area(WATER[0]), area(box(LONB - 0.002, LAT0 + 0.006, LONB, LAT0 + 0.008))],
               "B": [area(box(LONB, LAT0 + 0.006, LONB + 0.003, LAT0 + 0.008)), 0.0]}
Y_RAIL = LAT0 + 0.3 * DY
RAILWAYS = [LineString([(LONB + 0.001, LAT0 + 0.0005), (LONB + 0.012, LAT0 + 0.0085)]),  # inside B
            LineString([(LON0 + 0.009, Y_RAIL), (LONB + 0.005, Y_RAIL)])]  # A -> B
RAIL_PARTS = {"A": [GEOD.inv(LON0 + 0.009, Y_RAIL, LONB, Y_RAIL)[2]],
              "B": [length(RAILWAYS[0]), GEOD.inv(LONB, Y_RAIL, LONB + 0.005, Y_RAIL)[2]]}
# (city, kind, multilinestring)
UTILITY_LINES = [("A", "heat", MultiLineString([[(LON0 + 0.001, LAT0 + 0.001), (LON0 + 0.004, LAT0 + 0.006)],
                                                [(LON0 + 0.005, LAT0 + 0.001), (LON0 + 0.005, LAT0 + 0.004)]])),
                 ("A", "water", MultiLineString([[(LON0 + 0.002, LAT0 + 0.007), (LON0 + 0.012, LAT0 + 0.007)]])),
                 ("B", "power", MultiLineString([[(LONB + 0.001, LAT0 + 0.001), (LONB + 0.013, LAT0 + 0.002)]])),
                 ("B", "heat", MultiLineString([[(LONB + 0.003, LAT0 + 0.002), (LONB + 0.003, LAT0 + 0.005)]]))]
# (city, kind, capacity, load)
UTILITY_NODES = [("A", "heat", 10.0, 6.0), ("A", "heat", 5.0, None), ("A", "water", 0.0, 0.0),
                 ("B", "power", 2.0, 1.0), ("B", "heat", 4.0, 5.0)]
# (city, cadastral number, permitted use, polygon or None)
PARCELS = [("A", "99:01:0000001:1", "2.1", rect("A", 0.1, 0.1, 0.3, 0.3)),
           ("A", "99:01:0000001:2", None, rect("A", 0.3, 0.1, 0.6, 0.2)),
           ("B", "99:01:0000002:1", "3.5.1", None)]
# Balances of A: (year, kind, scenario, {(row, column): thousand tce}). The engine takes the latest actual one of
# the period's year or before: 2020 (2018 is older, 2030 later, the forecast and the scenario are not actual).
BALANCE_2020 = {("final_consumption", "total"): 50.0, ("final_consumption", "electricity"): 10.0,
                ("final_consumption", "heat"): 20.0, ("households", "total"): 25.0,
                ("households", "electricity"): 4.0, ("households", "heat"): 12.0, ("households", "natural_gas"): 9.0}
BALANCES = [(2018, "actual", None, {("final_consumption", "total"): 99.0, ("households", "natural_gas"): 99.0}),
            (2020, "actual", None, BALANCE_2020),
            (2021, "forecast", None, {("final_consumption", "total"): 88.0}),
            (2022, "actual", "growth", {("final_consumption", "total"): 66.0}),
            (2030, "actual", None, {("final_consumption", "total"): 77.0})]
# IPCC 2006 Vol. 2 Ch. 1 Table 1.4: natural gas 56,100 kg CO2/TJ; 1 thousand tce = 29.3076 TJ. Only the households'
# 9 thousand tce of gas are burnt in A's 2020 balance (electricity and heat are secondary carriers).
CO2_A_T = 9.0 * 29.3076 * 56_100 / 1000


# --- the expectations --------------------------------------------------------------------------------------------

def total(values) -> float | None:
    """SQL sum(): NULL over no non-NULL value."""
    known = [v for v in values if v is not None]
    return float(sum(known)) if known else None


def mean(values) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def div(a, b) -> float | None:
    """Division of the expression language: no value for a missing input or a zero divisor."""
    return None if a is None or b is None or b == 0 else a / b


def mul(*values) -> float | None:
    return None if any(v is None for v in values) else math.prod(values)


def add(*values) -> float | None:
    return None if any(v is None for v in values) else sum(values)


def coalesce(*values):
    return next((v for v in values if v is not None), None)


def entropy(areas: list[float | None], mix: float | None) -> float | None:
    if mix is None or mix <= 0:
        return None
    return -sum(a / mix * math.log(a / mix) for a in areas if a is not None and a > 0)


class Rows:
    """The fixture's rows under one territory (a city, or both for the region)."""

    def __init__(self, cities: tuple[str, ...]):
        def pick(rows):
            return [r for r in rows if r[0] in cities]
        self.cities = cities
        self.buildings = [b for b in BUILDINGS if b.city in self.cities]
        self.walk = [(b.residents, b.walk) for b in self.buildings if b.walk is not None]
        self.facilities, self.planned, self.provision = pick(FACILITIES), pick(PLANNED), pick(PROVISION)
        self.fz, self.zz = pick(FZ), pick(ZZ)
        self.nodes, self.lines, self.parcels = pick(UTILITY_NODES), pick(UTILITY_LINES), pick(PARCELS)
        self.leaves = [c for c in ("A", "B") if c in self.cities]
        self.streets = [p for c in self.leaves for p in STREET_PARTS[c]]
        self.water = [a for c in self.leaves for a in WATER_PARTS[c]]
        self.rail = [x for c in self.leaves for x in RAIL_PARTS[c]]
        # A balance belongs to its own territory: the region (no balance of its own) does not pool A's.
        self.balance = BALANCE_2020 if self.cities == ("A",) else None


def measure(rows: list, value):
    """A measure: no value where the source has no row for the territory."""
    return value(rows) if rows else None


def expected(territory: str) -> dict[str, float | None]:
    r = Rows(("A", "B") if territory == "F" else (territory,))
    bl = r.buildings
    e: dict[str, float | None] = {}

    # population and territory
    e["residents"] = measure(bl, lambda b: total(x.residents for x in b))
    pop = [POPULATION[c] for c in r.leaves]
    e["population_registered"] = total(pop)
    e["population_base"] = coalesce(e["residents"], e["population_registered"])
    e["residents_to_registered_pct"] = div(mul(100, e["residents"]), e["population_registered"])
    e["territory_area_km2"] = sum(area(BOXES[c]) for c in r.leaves) / 1e6
    res, km2 = e["residents"], e["territory_area_km2"]
    e["population_density_km2"] = div(res, km2)
    e["population_density_ha"] = div(res, km2 * 100)

    # functional zones
    fz_area = {g: measure(r.fz, lambda z, g=g: sum(area(p) for _, t, _, p in z if t in FZ_GROUPS[g]))
               for g in FZ_GROUPS}
    e["fz_area_m2"] = measure(r.fz, lambda z: sum(area(p) for *_, p in z))
    for g in FZ_GROUPS:
        e[f"fz_{g}_area_m2"] = fz_area[g]
    mix = add(*fz_area.values())
    e["fz_mix_area_m2"] = mix
    e["land_use_entropy"] = entropy(list(fz_area.values()), mix)
    e["land_use_mix_index"] = div(e["land_use_entropy"], math.log(7))
    e["fz_residential_share"] = div(mul(100, fz_area["residential"]), e["fz_area_m2"])
    for status in ("existing", "planned", "reconstruction"):
        e[f"fz_{status}_share"] = measure(r.fz, lambda z, s=status: div(
            100 * sum(area(p) for _, _, st, p in z if st == s), sum(area(p) for *_, p in z)))
    e["net_residential_density_ha"] = div(res, div(fz_area["residential"], 10000))

    # housing and built form
    e["buildings_count"] = measure(bl, len)
    e["residential_buildings"] = measure(bl, lambda b: sum(x.is_living for x in b))
    e["housing_stock_m2"] = measure(bl, lambda b: total(x.living for x in b))
    e["living_area_per_resident"] = div(e["housing_stock_m2"], res)
    e["residents_per_residential_building"] = div(res, e["residential_buildings"])
    e["floor_area_m2"] = measure(bl, lambda b: total(x.floor_area for x in b))
    e["footprint_m2"] = measure(bl, lambda b: total(x.footprint for x in b))
    e["residential_floor_share"] = measure(bl, lambda b: div(
        100 * (total(x.floor_area for x in b if x.is_living) or 0), total(x.floor_area for x in b)))
    e["fsi"] = div(e["floor_area_m2"], km2 * 1e6)
    e["gsi"] = div(e["footprint_m2"], km2 * 1e6)
    e["osr"] = div(add(1, mul(-1, e["gsi"])), e["fsi"])
    e["spacematrix_layers"] = div(e["fsi"], e["gsi"])
    e["mean_floors"] = measure(bl, lambda b: mean(x.floors for x in b if x.floors and x.floors >= 1))
    e["mean_floors_residential"] = measure(bl, lambda b: mean(
        x.floors for x in b if x.is_living and x.floors and x.floors >= 1))
    for code, floors in (("share_residents_4plus_floors", 4), ("share_residents_9plus_floors", 9)):
        e[code] = measure(bl, lambda b, f=floors: div(
            100 * (total(x.residents for x in b if x.floors is not None and x.floors >= f) or 0),
            total(x.residents for x in b)))

    # social infrastructure
    fac = r.facilities
    for code, t in (("kindergarten_places", "kindergarten"), ("school_places", "school"),
                    ("polyclinic_visits", "polyclinic"), ("hospital_beds", "hospital")):
        e[code] = measure(fac, lambda f, t=t: total(c for _, ty, c in f if ty == t) or 0.0)
    e["kindergarten_places_per_1000"] = div(mul(e["kindergarten_places"], 1000), res)
    e["school_places_per_1000"] = div(mul(e["school_places"], 1000), res)
    e["polyclinic_places_per_1000"] = div(mul(e["polyclinic_visits"], 1000), res)
    e["hospital_places_per_1000"] = div(mul(e["hospital_beds"], 1000), res)

    # master-plan facilities
    pl = r.planned
    e["planned_facilities_count"] = measure(pl, lambda p: sum(st == "planned" for *_, st in p))
    e["reconstruction_facilities_count"] = measure(pl, lambda p: sum(st == "reconstruction" for *_, st in p))
    e["planned_kindergarten_places"] = measure(pl, lambda p: total(
        c for _, t, c, st in p if t == "kindergarten" and st == "planned") or 0.0)
    e["planned_school_places"] = measure(pl, lambda p: total(
        c for _, t, c, st in p if t == "school" and st == "planned") or 0.0)
    e["kindergarten_places_per_1000_planned"] = div(
        mul(add(e["kindergarten_places"], coalesce(e["planned_kindergarten_places"], 0)), 1000), res)
    e["school_places_per_1000_planned"] = div(
        mul(add(e["school_places"], coalesce(e["planned_school_places"], 0)), 1000), res)

    # service provision
    pr = r.provision
    for t in ("kindergarten", "school"):
        e[f"{t}_demand"] = measure(pr, lambda p, t=t: total(d for _, ty, _h, _r, d, _s, _x in p if ty == t))
        e[f"{t}_deficit"] = measure(pr, lambda p, t=t: total(x for _, ty, _h, _r, _d, _s, x in p if ty == t))
        e[f"{t}_served_pct"] = measure(pr, lambda p, t=t: div(
            mul(100, total(s for _, ty, _h, _r, _d, s, _x in p if ty == t)),
            total(d for _, ty, _h, _r, d, _s, _x in p if ty == t)))

    # walking access: minutes at 80 m/min
    wa = r.walk
    for code, col, limit in (("kindergarten_within_300m_share", "kindergarten_min", 300 / 80),
                             ("school_within_500m_share", "school_min", 500 / 80),
                             ("polyclinic_within_1000m_share", "polyclinic_min", 1000 / 80),
                             ("pharmacy_within_500m_share", "pharmacy_min", 500 / 80),
                             ("stop_within_500m_share", "stop_min", 500 / 80),
                             ("park_within_15min_share", "park_min", 15)):
        reached = [w[col] for _, w in wa if w[col] is not None]
        e[code] = None if not reached else div(
            100 * (total(n for n, w in wa if w[col] is not None and w[col] <= limit) or 0), total(n for n, _ in wa))
    scored = [(n, w["score_15min"]) for n, w in wa if w["score_15min"] is not None]
    e["score_15min_mean"] = measure(wa, lambda _: div(total(n * s for n, s in scored), total(n for n, _ in scored)))
    e["score_15min_full_share"] = measure(wa, lambda _: div(
        100 * (total(n for n, s in scored if s >= 100) or 0), total(n for n, _ in scored)))

    # green space and water
    e["green_area_per_resident"] = div(fz_area["recreation"], res)
    e["green_share"] = div(mul(100, fz_area["recreation"]), km2 * 1e6)
    e["water_area_m2"] = total(r.water)
    e["water_area_per_resident"] = div(e["water_area_m2"], res)
    e["water_share"] = div(mul(100, e["water_area_m2"]), km2 * 1e6)

    # zoning
    zz_area = {k: measure(r.zz, lambda z, p=p: sum(area(g) for _, code, g in z if code.startswith(p)))
               for k, p in ZZ_PREFIXES.items()}
    e["zz_area_m2"] = measure(r.zz, lambda z: sum(area(g) for *_, g in z))
    for k in ZZ_PREFIXES:
        e[f"zz_{k}_area_m2"] = zz_area[k]
    e["zz_mix_area_m2"] = add(*zz_area.values())
    e["zoning_entropy"] = entropy(list(zz_area.values()), e["zz_mix_area_m2"])
    e["zoning_mix_index"] = div(e["zoning_entropy"], math.log(8))

    # streets and railways
    e["street_length_km"] = div(total(m for m, _ in r.streets), 1000)
    e["street_density_km_km2"] = div(e["street_length_km"], km2)
    e["street_length_per_1000"] = div(mul(e["street_length_km"], 1000), res)
    e["drive_street_length_km"] = measure(r.streets, lambda s: sum(m for m, drive in s if drive) / 1000)
    e["drive_street_density_km_km2"] = div(e["drive_street_length_km"], km2)
    e["railway_length_km"] = div(total(r.rail), 1000)

    # utility networks
    for kind in ("heat", "water", "power", "gas", "sewer"):
        e[f"{kind}_network_km"] = measure(r.lines, lambda ls, k=kind: sum(
            length(g) for _, kk, g in ls if kk == k) / 1000)
    for kind in ("heat", "water", "power"):
        e[f"{kind}_network_density"] = div(e[f"{kind}_network_km"], km2)
        both = [(c, ld) for _, k, c, ld in r.nodes if k == kind and c > 0 and ld is not None]
        e[f"{kind}_source_load_factor"] = measure(r.nodes, lambda _, both=both: div(
            mul(100, total(ld for _, ld in both)), total(c for c, _ in both)))

    # cadastral parcels
    pa = r.parcels
    e["parcels_count"] = measure(pa, len)
    e["parcels_area_ha"] = measure(pa, lambda p: div(total(area(g) if g is not None else None for *_, g in p), 10000))
    e["parcels_mean_area_m2"] = measure(pa, lambda p: mean(area(g) if g is not None else None for *_, g in p))
    e["parcels_coverage_share"] = div(mul(100, e["parcels_area_ha"]), km2 * 100)
    e["parcels_without_use_share"] = measure(pa, lambda p: 100 * sum(u is None for _, _, u, _ in p) / len(p))

    # energy: the cells of A's 2020 balance (a balance is its own territory's; the region has none)
    cell = (lambda row, col: r.balance[(row, col)]) if r.balance else (lambda row, col: None)
    e["energy_final_ktce"] = cell("final_consumption", "total")
    e["energy_final_electricity_ktce"] = cell("final_consumption", "electricity")
    e["energy_final_heat_ktce"] = cell("final_consumption", "heat")
    e["energy_households_ktce"] = cell("households", "total")
    e["energy_households_electricity_ktce"] = cell("households", "electricity")
    e["energy_households_heat_ktce"] = cell("households", "heat")
    base = e["population_base"]
    e["energy_final_per_resident"] = div(mul(e["energy_final_ktce"], 1000), base)
    e["energy_households_per_resident"] = div(mul(e["energy_households_ktce"], 1000), base)
    e["households_energy_share"] = div(mul(100, e["energy_households_ktce"]), e["energy_final_ktce"])
    # thousand tce -> tce (x 1000) -> MWh (/ 0.1229 tce per MWh) -> kWh (x 1000); Gcal: / 0.1429 tce per Gcal
    e["electricity_per_resident_kwh"] = div(mul(e["energy_final_electricity_ktce"], 1000 / 0.1229 * 1000), base)
    e["household_electricity_per_resident_kwh"] = div(
        mul(e["energy_households_electricity_ktce"], 1000 / 0.1229 * 1000), base)
    e["heat_per_resident_gcal"] = div(mul(e["energy_final_heat_ktce"], 1000 / 0.1429), base)
    e["household_heat_per_m2_gcal"] = div(mul(e["energy_households_heat_ktce"], 1000 / 0.1429),
                                          e["housing_stock_m2"])
    # CO2 is the territory's own balance only (families.energy_values): F has none.
    e["co2_per_resident"] = div(CO2_A_T, base) if territory == "A" else None
    return e


EXPECTED = {t: expected(t) for t in ("F", "A", "B")}


def test_expectations_by_hand():
    """A few of the expectations in plain numbers, so the helpers above are checked too."""
    a, b, f = EXPECTED["A"], EXPECTED["B"], EXPECTED["F"]
    assert (a["residents"], b["residents"], f["residents"]) == (500, 700, 1200)  # 300 + 60 + 140; 700 + 0
    assert a["living_area_per_resident"] == pytest.approx((6000 + 1500 + 3000) / 500)  # 21 m²
    assert f["living_area_per_resident"] == pytest.approx((6000 + 1500 + 3000 + 12000) / 1200)  # 18.75 m²
    assert a["kindergarten_places_per_1000"] == pytest.approx((50 + 30) * 1000 / 500)  # 160
    assert b["kindergarten_places_per_1000"] == 0  # B has facilities, none a kindergarten
    assert a["kindergarten_within_300m_share"] == pytest.approx(100 * (300 + 140) / 500)  # 3.0 and 3.75 min
    assert b["kindergarten_within_300m_share"] is None  # no kindergarten reachable from B
    assert f["kindergarten_within_300m_share"] == pytest.approx(100 * 440 / 1200)
    assert a["school_within_500m_share"] == pytest.approx(100 * (60 + 140) / 500)  # 6.25 and 5.0 min
    assert a["score_15min_mean"] == pytest.approx((300 * 66 + 60 * 50 + 140 * 100) / 500)  # 73.6
    assert a["share_residents_4plus_floors"] == pytest.approx(100 * (300 + 140) / 500)
    assert f["share_residents_9plus_floors"] == pytest.approx(100 * (300 + 700) / 1200)
    assert a["kindergarten_served_pct"] == pytest.approx(100 * (20 + 10) / (30 + 10))
    assert f["school_deficit"] == 30 and f["kindergarten_deficit"] == 40
    assert a["heat_source_load_factor"] == pytest.approx(60) and b["heat_source_load_factor"] == pytest.approx(125)
    assert f["heat_source_load_factor"] == pytest.approx(100 * 11 / 14) and a["water_source_load_factor"] is None
    assert a["parcels_without_use_share"] == 50 and b["parcels_area_ha"] is None
    assert a["energy_final_per_resident"] == pytest.approx(50 * 1000 / 500)  # 100 tce per person
    assert a["co2_per_resident"] == pytest.approx(9 * 29.3076 * 56.1 / 500)
    assert a["land_use_entropy"] > 0 and 0 < a["land_use_mix_index"] < 1
    assert set(EXPECTED["A"]) == set(CODES), "every catalog indicator needs an expectation here, and only those"


# --- the database -------------------------------------------------------------------------------------------------

def _insert(conn, sql: str, **params):
    result = conn.execute(text(sql), params)
    return result.scalar() if result.returns_rows else None


def _load(conn) -> dict[str, int]:
    g = "ST_GeomFromText(:wkt, 4326)"
    m = f"ST_Multi({g})"
    for oktmo in OKTMO.values():
        assert _insert(conn, "SELECT count(*) FROM cdt.territories WHERE oktmo = :o", o=oktmo) == 0
    ids = {"F": _insert(conn, "INSERT INTO cdt.territories (oktmo, name, level) VALUES (:o, 'Тестовая обл', "
                              "'federal_subject') RETURNING id", o=OKTMO["F"])}
    for c in ("A", "B"):
        ids[c] = _insert(conn, f"INSERT INTO cdt.territories (oktmo, name, level, parent_id, population, boundary) "
                               f"VALUES (:o, :n, 'urban_okrug', :p, :pop, {m}) RETURNING id",
                         o=OKTMO[c], n=f"г Тест-{c}", p=ids["F"], pop=POPULATION[c], wkt=BOXES[c].wkt)
    for b in BUILDINGS:
        bid = _insert(conn, f"INSERT INTO cdt.buildings (floors, residents, living_area_m2, floor_area_m2, is_living, "
                            f"territory_id, geom) VALUES (:f, :r, :la, :fa, :il, :t, {m}) RETURNING id",
                      f=b.floors, r=b.residents, la=b.living, fa=b.floor_area, il=b.is_living, t=ids[b.city],
                      wkt=b.geom.wkt)
        if b.walk is not None:
            cols = ", ".join(W)
            _insert(conn, f"INSERT INTO cdt.walk_access (id, building_id, residents, territory_id, geom, {cols}) "
                          f"VALUES (:id, :id, :r, :t, {m}, {', '.join(':' + c for c in W)})",
                    id=bid, r=b.residents, t=ids[b.city], wkt=b.geom.wkt, **b.walk)
    for city, t, cap in FACILITIES:
        _insert(conn, f"INSERT INTO cdt.facilities (type_code, capacity, territory_id, geom) VALUES (:ty, :c, :t, {g})",
                ty=t, c=cap, t=ids[city], wkt=BOXES[city].centroid.wkt)
    for city, t, cap, status in PLANNED:
        _insert(conn, f"INSERT INTO cdt.planned_facilities (type_code, capacity, status, territory_id, geom) "
                      f"VALUES (:ty, :c, :s, :t, {g})", ty=t, c=cap, s=status, t=ids[city],
                wkt=BOXES[city].centroid.wkt)
    for city, t, hx, res, demand, served, deficit in PROVISION:
        _insert(conn, f"INSERT INTO cdt.service_provision (facility_type, hex, residents, demand, served, deficit, "
                      f"territory_id, geom) VALUES (:ty, :h, :r, :d, :s, :x, :t, {g})",
                ty=t, h=hx, r=res, d=demand, s=served, x=deficit, t=ids[city], wkt=BOXES[city].wkt)
    for city, zone_type, status, poly in FZ:
        _insert(conn, f"INSERT INTO cdt.functional_zones (zone_type, status, territory_id, geom) "
                      f"VALUES (:z, :s, :t, {m})", z=zone_type, s=status, t=ids[city], wkt=poly.wkt)
    for city, code, poly in ZZ:
        _insert(conn, f"INSERT INTO cdt.zoning_zones (zone_code, territory_id, geom) VALUES (:z, :t, {m})",
                z=code, t=ids[city], wkt=poly.wkt)
    for line, drive in STREETS:
        (x0, y0), (x1, y1) = line.coords
        a = _insert(conn, "INSERT INTO cdt.street_nodes (geom) VALUES (ST_SetSRID(ST_MakePoint(:x, :y), 4326)) "
                          "RETURNING id", x=x0, y=y0)
        b = _insert(conn, "INSERT INTO cdt.street_nodes (geom) VALUES (ST_SetSRID(ST_MakePoint(:x, :y), 4326)) "
                          "RETURNING id", x=x1, y=y1)
        _insert(conn, f"INSERT INTO cdt.street_edges (from_node, to_node, walk, drive, geom) "
                      f"VALUES (:a, :b, true, :d, {g})", a=a, b=b, d=drive, wkt=line.wkt)
    for geom in WATER:
        _insert(conn, f"INSERT INTO cdt.water (geom) VALUES ({g})", wkt=geom.wkt)
    for line in RAILWAYS:
        _insert(conn, f"INSERT INTO cdt.railways (geom) VALUES ({g})", wkt=line.wkt)
    for city, kind, lines in UTILITY_LINES:
        _insert(conn, f"INSERT INTO cdt.utility_lines (kind, territory_id, geom) VALUES (:k, :t, {g})",
                k=kind, t=ids[city], wkt=lines.wkt)
    for city, kind, cap, load in UTILITY_NODES:
        _insert(conn, f"INSERT INTO cdt.utility_nodes (kind, capacity, load, territory_id, geom) "
                      f"VALUES (:k, :c, :ld, :t, {g})", k=kind, c=cap, ld=load, t=ids[city],
                wkt=BOXES[city].centroid.wkt)
    for city, number, use, poly in PARCELS:
        _insert(conn, f"INSERT INTO cdt.parcels (cadastral_number, permitted_use_code, territory_id, geom) "
                      f"VALUES (:n, :u, :t, {m if poly is not None else 'NULL'})", n=number, u=use, t=ids[city],
                **({"wkt": poly.wkt} if poly is not None else {}))
    for year, kind, scenario, cells in BALANCES:
        bal = _insert(conn, "INSERT INTO cdt.fuel_balances (territory_id, territory_oktmo, territory_name, year, kind, "
                            "scenario, coefficient_set) VALUES (:t, :o, 'г Тест-A', :y, :k, :s, 'rosstat-2019.1') "
                            "RETURNING id", t=ids["A"], o=OKTMO["A"], y=year, k=kind, s=scenario)
        for (row, col), value in cells.items():
            _insert(conn, "INSERT INTO cdt.balance_cells (balance_id, row_code, column_code, value_tce, provenance) "
                          "VALUES (:b, :r, :c, :v, '{\"source\": \"person\"}')", b=bal, r=row, c=col, v=value)
    return ids


@pytest.fixture(scope="module")
def computed(engine):
    """The catalog computed for F, A and B on the fixture; rolled back afterwards."""
    conn = engine.connect()
    tx = conn.begin()
    try:
        ids = _load(conn)
        registry = {d.code: d for d in catalog.builtin()}
        frame = indicator_engine.compute(conn, [ids["F"], ids["A"], ids["B"]], CODES, year=YEAR, registry=registry)
        yield frame, ids
    finally:
        tx.rollback()
        conn.close()


@pytest.mark.parametrize("code", CODES)
def test_indicator_matches_hand_computation(computed, code):
    frame, ids = computed
    for territory in ("F", "A", "B"):
        want, got = EXPECTED[territory][code], frame.value(code, ids[territory])
        if want is None:
            assert got is None, f"{code} of {territory}: expected no value, got {got}"
        else:
            assert got == pytest.approx(want, rel=1e-6, abs=1e-9), f"{code} of {territory}"


def test_parent_is_recomputed_not_summed(computed):
    frame, ids = computed
    f, a, b = ids["F"], ids["A"], ids["B"]
    for code in ("living_area_per_resident", "school_within_500m_share", "share_residents_4plus_floors",
                 "population_density_km2", "kindergarten_places_per_1000", "fsi", "land_use_entropy"):
        parent, children = frame.value(code, f), (frame.value(code, a), frame.value(code, b))
        assert parent != pytest.approx(sum(children)), code
    # 40 % of A's residents and 100 % of B's reach a school within 500 m: 75 % of the region's, not 140 %.
    assert frame.value("school_within_500m_share", f) == pytest.approx(100 * (200 + 700) / 1200)
    # Totals are additive: the region's residents and street length are its cities'.
    for code in ("residents", "street_length_km", "housing_stock_m2", "kindergarten_deficit"):
        assert frame.value(code, f) == pytest.approx(frame.value(code, a) + frame.value(code, b)), code


def test_catalog_definitions_are_well_formed():
    assert len(CODES) >= 62 and len(set(CODES)) == len(CODES)
    own = set(CODES) | {"energy_co2_t"}
    for e in ENTRIES:
        assert re.fullmatch(r"[a-z][a-z0-9_]{0,79}", e["code"]), e["code"]
        assert e["kind"] in ("measure", "expr") and e["direction"] in ("higher", "lower", "neutral")
        assert e["aggregation"] in ("recompute", "sum", "mean_pop")
        assert e["provenance"].strip() and e["description"].strip() and e["unit"].strip()
        if e["kind"] == "measure":
            assert e["source"] and ";" not in e["formula"]
        else:
            assert "source" not in e
            names = catalog.Definition(e["code"], "", "", "", "expr", e["formula"]).depends_on()
            assert names <= own, f"{e['code']} references {sorted(names - own)}"


def test_catalog_doc_is_up_to_date():
    assert catalog_doc.DOC.read_text(encoding="utf-8") == catalog_doc.render(), \
        "run .venv/bin/python -m planning.indicators.catalog_doc"
