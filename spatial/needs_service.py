"""Service-area needs by planning norms (blocksnet-style provision): who is served, where places are missing.

For one facility type and a territory (default: every territory the principal may read):

1. Demand per residential building = residents * demand_per_1000 / 1000, the norm taken from
   `cdt.planning_norms` for the building's federal subject (its territory's root in the OKTMO hierarchy, or
   `region_oktmo` when given), else the federal norm (region NULL). Each field (demand, radius) is resolved
   separately, most specific first: (region, context), (region, none), (federal, context), (federal, none).
2. Normative walking radius per building: the norm's `max_walk_radius_m`; the context "low-rise or rural"
   (SP 42.13330.2016: 500 m instead of 300 m for kindergartens) applies to buildings of at most 3 floors
   (LOW_RISE_MAX_FLOORS; a building with unknown floors is not low-rise). Only buildings with residents > 0
   carry demand.
3. Walking distance building -> facility over the platform's walk network (`spatial.network`, edges with
   walk = true, the territory's network as `spatial.access_service` caches it, with its cached snaps of the
   residential buildings), both ends snapped to their nearest edge in the UTM zone: access leg (straight line
   from the door to the edge) + along the edge to a node + shortest path + along the facility's edge + its
   access leg, or straight along a shared edge (`spatial.accessibility.travel_times`, walking at 4.8 km/h, so
   metres = seconds x 4.8 / 3.6). The whole walk, door to door, must be within the building's radius.
4. The transportation LP (`spatial.needs.allocate`): maximise served demand, then minimise demand-weighted
   distance. Facilities without a capacity cannot be allocated: they are skipped and counted
   (`facilities_without_capacity`); capacity 0 takes part and serves nothing.
5. Results per facility (load, load %), per building (demand, unmet), per territory (deficit = unmet demand in
   places, share of residents covered) and per district. CDT has no district polygons yet: districts are a
   regular hexagon grid (`ST_HexagonGrid`, HEX_SIZE_M across flats, in the UTM zone of the buildings), each
   building in exactly one hexagon (the first (i, j) whose hexagon contains its point on surface, so a point on
   a shared edge is not counted twice): the hexagon deficits sum to the territory deficit. These hexagons, with
   their GeoJSON geometry, are what the map's deficit choropleth draws.

Every read goes through `layers.access.read_rule` (buildings, facilities, street edges, planning norms).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, Engine, text

from layers import registry
from layers.access import Principal, ReadRule, read_rule
from layers.errors import InvalidParameterValue
from spatial import access_service
from spatial import accessibility as acc
from spatial.needs import Allocation, allocate
from spatial.network import WALK_SPEED_MS, Network, Snaps, snap

LOW_RISE_CONTEXT = "low-rise or rural"
LOW_RISE_MAX_FLOORS = 3
HEX_SIZE_M = 1000.0


@dataclass
class _Buildings:
    ids: np.ndarray
    residents: np.ndarray
    floors: np.ndarray  # -1 when unknown
    territory: np.ndarray
    region: list[str | None]
    lon: np.ndarray  # point on surface
    lat: np.ndarray


@dataclass
class _Facilities:
    ids: np.ndarray
    names: list[str | None]
    capacity: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    without_capacity: int


def needs(engine: Engine, principal: Principal, facility_type: str, territory_oktmo: str | None = None,
          region_oktmo: str | None = None, hex_size_m: float = HEX_SIZE_M) -> dict:
    """Needs of `facility_type` in a territory by planning norms; see the module docstring for the method."""
    if region_oktmo is not None and not re.fullmatch(r"\d{8}", region_oktmo):
        raise InvalidParameterValue(f"region_oktmo must be the 8-digit OKTMO of a federal subject, "
                                    f"got {region_oktmo!r}")
    if not hex_size_m > 0:
        raise InvalidParameterValue(f"hex_size_m must be positive, got {hex_size_m}")
    with engine.connect() as conn:
        _check_type(conn, facility_type)
        territory = _territory(conn, territory_oktmo)
        norms = _norms(conn, principal, facility_type)
        b = _buildings(conn, principal, territory, territory_oktmo)
        demand_per_1000, radius, notes = _per_building_norms(norms, b, region_oktmo, facility_type)
        demand = b.residents * demand_per_1000 / 1000.0
        f = _facilities(conn, principal, facility_type, b, float(radius.max()))
        hexes = _hexagons(conn, b.ids, b.lon, b.lat, hex_size_m)
        territories = _territory_names(conn, np.unique(b.territory))
    network, b_snaps, f_snaps = _snapped(engine, principal, territory_oktmo, b, f)
    alloc = allocate(demand, f.capacity, _pairs_within(network, b_snaps, f_snaps, radius), residents=b.residents)
    return _report(facility_type, territory_oktmo, b, f, demand, radius, alloc, hexes, territories, notes, hex_size_m)


# --- inputs ---------------------------------------------------------------------------------------------
def _scoped(rule: ReadRule, prefix: str) -> tuple[str, dict]:
    """The rule's condition with its parameter names prefixed, so two layers' rules can share a statement."""
    if rule.sql is None:
        return "TRUE", {}
    sql = rule.sql
    for name in rule.params:
        sql = re.sub(rf":{name}\b", f":{prefix}{name}", sql)
    return sql, {f"{prefix}{k}": v for k, v in rule.params.items()}


def _check_type(conn: Connection, facility_type: str) -> None:
    known = [r[0] for r in conn.execute(text("SELECT code FROM cdt.facility_types ORDER BY code"))]
    if facility_type not in known:
        raise InvalidParameterValue(f"unknown facility type {facility_type!r}; known types: {', '.join(known)}")


def _territory(conn: Connection, oktmo: str | None) -> list[int] | None:
    """Ids of the territory and its descendants (None: no territory filter)."""
    if oktmo is None:
        return None
    if not re.fullmatch(r"\d{8}(\d{3})?", oktmo):
        raise InvalidParameterValue(f"territory must be an OKTMO code of 8 or 11 digits, got {oktmo!r}")
    ids = [r[0] for r in conn.execute(text("""
        WITH RECURSIVE tree AS (
            SELECT id FROM cdt.territories WHERE oktmo = :oktmo
            UNION ALL SELECT c.id FROM cdt.territories c JOIN tree ON c.parent_id = tree.id)
        SELECT id FROM tree"""), {"oktmo": oktmo})]
    if not ids:
        raise InvalidParameterValue(f"no territory with OKTMO {oktmo}")
    return ids


def _norms(conn: Connection, principal: Principal, facility_type: str) -> list[dict]:
    """The norms of the type; 400 listing the norms that exist when there are none."""
    where, params = _scoped(read_rule(principal, registry.get("planning_norms")), "n_")
    rows = [dict(r) for r in conn.execute(text(f"""
        SELECT t.region_oktmo, t.type_code, t.context, t.demand_per_1000, t.max_walk_radius_m, t.source_document
        FROM cdt.planning_norms t WHERE {where} ORDER BY t.type_code, t.region_oktmo NULLS FIRST, t.context NULLS FIRST
        """), params).mappings()]
    mine = [r for r in rows if r["type_code"] == facility_type]
    if not mine:
        raise InvalidParameterValue(f"no planning norm for facility type {facility_type!r}; "
                                    f"norms exist for: {_norm_list(rows)}")
    return mine


def _buildings(conn: Connection, principal: Principal, territory: list[int] | None, oktmo: str | None) -> _Buildings:
    bwhere, bparams = _scoped(read_rule(principal, registry.get("buildings")), "b_")
    scope = "AND t.territory_id = ANY(CAST(:ids AS int[]))" if territory is not None else ""
    rows = conn.execute(text(f"""
        WITH RECURSIVE up AS (  -- each territory with the OKTMO of its root (the federal subject)
            SELECT id, id AS root FROM cdt.territories WHERE parent_id IS NULL
            UNION ALL SELECT c.id, up.root FROM cdt.territories c JOIN up ON c.parent_id = up.id),
        b AS (
            SELECT t.id, t.residents, t.floors, t.territory_id, ST_PointOnSurface(t.geom) AS pt
            FROM cdt.buildings t WHERE t.residents > 0 {scope} AND {bwhere})
        SELECT b.id, b.residents, coalesce(b.floors, -1) AS floors, b.territory_id, r.oktmo AS region,
               ST_X(b.pt) AS lon, ST_Y(b.pt) AS lat
        FROM b
        LEFT JOIN up ON up.id = b.territory_id LEFT JOIN cdt.territories r ON r.id = up.root
        ORDER BY b.id"""), {"ids": territory, **bparams}).mappings().all()
    if not rows:
        where = f"territory {oktmo}" if oktmo else "the territories you may read"
        raise InvalidParameterValue(f"{where} has no residential buildings (buildings with residents > 0): "
                                    "there is no demand to assess")
    col = lambda k, dt=float: np.array([np.nan if r[k] is None else r[k] for r in rows], dtype=dt)  # noqa: E731
    return _Buildings(col("id", np.int64), col("residents"), col("floors", np.int64),
                      np.array([-1 if r["territory_id"] is None else r["territory_id"] for r in rows]),
                      [r["region"] for r in rows], col("lon"), col("lat"))


def _per_building_norms(norms: list[dict], b: _Buildings, region_override: str | None, facility_type: str):
    """Demand per 1,000 and radius of each building, by the most specific norm that gives each."""
    has_low_rise = any(n["context"] == LOW_RISE_CONTEXT for n in norms)
    demand = np.empty(len(b.ids))
    radius = np.empty(len(b.ids))
    used: set[str] = set()
    cache: dict[tuple, tuple] = {}
    for k in range(len(b.ids)):
        region = region_override or b.region[k]
        ctx = LOW_RISE_CONTEXT if has_low_rise and 0 <= b.floors[k] <= LOW_RISE_MAX_FLOORS else None
        if (region, ctx) not in cache:
            cache[(region, ctx)] = (_resolve(norms, region, ctx, "demand_per_1000"),
                                    _resolve(norms, region, ctx, "max_walk_radius_m"))
        (dv, dsrc), (rv, rsrc) = cache[(region, ctx)]
        if dv is None:
            with_demand = [n for n in norms if n["demand_per_1000"] is not None]
            raise InvalidParameterValue(
                f"no demand norm (demand_per_1000) for facility type {facility_type!r} in region {region} or "
                f"federally; norms of this type: {_norm_list(norms)}"
                + ("" if with_demand else "; none of them gives a demand per 1,000 residents"))
        if rv is None:
            raise InvalidParameterValue(f"no walking radius norm for facility type {facility_type!r} "
                                        f"(region {region}); norms of this type: {_norm_list(norms)}")
        demand[k], radius[k] = dv, rv
        used.update((dsrc, rsrc))
    return demand, radius, sorted(used)


def _resolve(norms: list[dict], region: str | None, ctx: str | None, field: str) -> tuple[float | None, str]:
    for want_region, want_ctx in ((region, ctx), (region, None), (None, ctx), (None, None)):
        for n in norms:
            if n["region_oktmo"] == want_region and n["context"] == want_ctx and n[field] is not None:
                where = f"region {want_region}" if want_region else "federal"
                label = f"{field} = {n[field]:g} ({where}{', ' + want_ctx if want_ctx else ''}): {n['source_document']}"
                return float(n[field]), label
    return None, ""


def _norm_list(norms: list[dict]) -> str:
    parts = [f"{n['type_code']} (region {n['region_oktmo'] or 'federal'}"
             f"{', ' + n['context'] if n['context'] else ''}: demand_per_1000={n['demand_per_1000']}, "
             f"radius={n['max_walk_radius_m']})" for n in norms]
    return "; ".join(parts) or "none"


def _facilities(conn: Connection, principal: Principal, facility_type: str, b: _Buildings,
                max_radius: float) -> _Facilities:
    """Facilities of the type within `max_radius` (straight line) of a demand building (snapped in `_snapped`).

    Facilities outside the territory take part when they are within reach of its buildings; their other
    users (outside the territory) are not modelled.
    """
    fwhere, fparams = _scoped(read_rule(principal, registry.get("facilities")), "f_")
    rows = conn.execute(text(f"""
        WITH pts AS (SELECT ST_Collect(ST_MakePoint(x, y)) AS g
                     FROM unnest(CAST(:lon AS float8[]), CAST(:lat AS float8[])) AS u(x, y)),
        hull AS (SELECT ST_SetSRID(ST_ConvexHull(g), 4326)::geography AS g FROM pts),
        f AS (SELECT t.id, t.name, t.capacity, t.geom FROM cdt.facilities t, hull
              WHERE t.type_code = :type AND ST_DWithin(t.geom::geography, hull.g, :radius) AND {fwhere})
        SELECT f.id, f.name, f.capacity, ST_X(f.geom) AS lon, ST_Y(f.geom) AS lat FROM f
        ORDER BY f.id"""), {"lon": b.lon.tolist(), "lat": b.lat.tolist(), "type": facility_type,
                            "radius": max_radius, **fparams}).mappings().all()
    with_cap = [r for r in rows if r["capacity"] is not None]
    col = lambda k, dt=float: np.array([r[k] for r in with_cap], dtype=dt)  # noqa: E731
    return _Facilities(col("id", np.int64), [r["name"] for r in with_cap], col("capacity"), col("lon"), col("lat"),
                       len(rows) - len(with_cap))


# --- walking distances --------------------------------------------------------------------------------
def _snapped(engine: Engine, principal: Principal, territory_oktmo: str | None, b: _Buildings,
             f: _Facilities) -> tuple[Network, Snaps, Snaps | None]:
    """The territory's cached walk network with the buildings' (cached) and the facilities' snaps."""
    network, homes = access_service.walk_homes(engine, principal, territory_oktmo)
    if network.n_edges == 0:
        raise InvalidParameterValue("no walkable street network (edges with walk = true) in the area: "
                                    "walking distances cannot be computed")
    return (network, access_service.building_snaps(network, homes, b.ids, b.lon, b.lat),
            snap(network, f.lon, f.lat) if len(f.ids) else None)


def _pairs_within(network: Network, b: Snaps, f: Snaps | None, radius: np.ndarray):
    """(building index, facility index, walking metres door to door) of every pair within the building's radius.

    `spatial.accessibility.travel_times` (one Dijkstra per facility, cut at the largest radius); walking
    seconds x WALK_SPEED_MS are the metres, access legs included."""
    if f is None or len(f) == 0 or len(b) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    limit = float(radius.max()) / WALK_SPEED_MS * (1 + 1e-9)
    metres = acc.travel_times(network, b, f, limit=limit) * WALK_SPEED_MS
    bi, fj = np.nonzero(metres <= radius[:, None] * (1 + 1e-12))
    return bi, fj, metres[bi, fj]


# --- districts ------------------------------------------------------------------------------------------
def _hexagons(conn: Connection, ids: np.ndarray, lon: np.ndarray, lat: np.ndarray, size: float):
    """Each building's hexagon key and the hexagons' GeoJSON geometry (EPSG:4326)."""
    mean_lon, mean_lat = float(np.mean(lon)), float(np.mean(lat))
    srid = (32600 if mean_lat >= 0 else 32700) + int((mean_lon + 180) // 6) % 60 + 1
    # The grid is anchored at the CRS origin, so a small grid around each point has the same (i, j) as one over
    # the whole territory; the smallest (i, j) containing the point wins (a point on a shared edge counts once).
    rows = conn.execute(text("""
        WITH pts AS (SELECT id, ST_Transform(ST_SetSRID(ST_MakePoint(x, y), 4326), :srid) AS p
                     FROM unnest(CAST(:ids AS bigint[]), CAST(:lon AS float8[]), CAST(:lat AS float8[]))
                          AS u(id, x, y)),
        pick AS (SELECT pts.id, h.i, h.j FROM pts CROSS JOIN LATERAL (
                     SELECT h.i, h.j FROM ST_HexagonGrid(:size, ST_Expand(pts.p, 0.001)) h
                     WHERE ST_Intersects(h.geom, pts.p) ORDER BY h.i, h.j LIMIT 1) h),
        cells AS (SELECT DISTINCT i, j FROM pick)
        SELECT pick.id, pick.i, pick.j, g.geojson FROM pick JOIN (
            SELECT i, j, ST_AsGeoJSON(ST_Transform(ST_SetSRID(ST_Hexagon(:size, i, j), :srid), 4326), 7) AS geojson
            FROM cells) g USING (i, j)"""),
        {"srid": srid, "size": size, "ids": ids.tolist(), "lon": lon.tolist(), "lat": lat.tolist()}).all()
    key = {r.id: f"{r.i},{r.j}" for r in rows}
    geometry = {f"{r.i},{r.j}": r.geojson for r in rows}
    return [key[int(i)] for i in ids], geometry, srid


def _territory_names(conn: Connection, ids: np.ndarray) -> dict[int, dict]:
    rows = conn.execute(text("SELECT id, oktmo, name FROM cdt.territories WHERE id = ANY(CAST(:ids AS int[]))"),
                        {"ids": [int(i) for i in ids]}).all()
    return {r.id: {"oktmo": r.oktmo, "name": r.name} for r in rows}


# --- report ---------------------------------------------------------------------------------------------
def _report(facility_type, territory_oktmo, b: _Buildings, f: _Facilities, demand, radius, a: Allocation,
            hexes, territories, notes, hex_size_m) -> dict:
    import json

    keys, geometry, srid = hexes
    reach = np.bincount(a.pair_facility, minlength=len(f.ids))
    facilities = [{"id": int(f.ids[j]), "name": f.names[j], "capacity": float(f.capacity[j]),
                   "load": float(a.load[j]), "reachable_buildings": int(reach[j]),
                   "load_pct": None if f.capacity[j] == 0 else float(100 * a.load[j] / f.capacity[j])}
                  for j in range(len(f.ids))]
    buildings = [{"id": int(b.ids[i]), "residents": float(b.residents[i]), "demand": float(demand[i]),
                  "served": float(a.served[i]), "unmet": float(a.unmet[i]), "radius_m": float(radius[i])}
                 for i in range(len(b.ids))]
    per_territory = _groups(b.territory, b.residents, demand, a)
    per_hex = _groups(np.array(keys), b.residents, demand, a)
    features = [{"type": "Feature", "id": k, "geometry": json.loads(geometry[k]),
                 "properties": {"hex": k, **g}} for k, g in per_hex.items()]
    return {
        "summary": {
            "facility_type": facility_type, "territory": territory_oktmo,
            "buildings": len(b.ids), "residents": float(b.residents.sum()),
            "facilities": len(f.ids), "facilities_without_capacity": f.without_capacity,
            "total_capacity": float(f.capacity.sum()), "pairs_within_radius": len(a.pair_building),
            "buildings_without_reachable_facility": int(np.sum(np.bincount(a.pair_building,
                                                                           minlength=len(b.ids)) == 0)),
            "deficit": a.total_unmet, **a.summary(), "norms": notes,
            "rules": {"low_rise_max_floors": LOW_RISE_MAX_FLOORS, "hex_size_m": hex_size_m, "hex_srid": srid},
        },
        "facilities": facilities,
        "buildings": buildings,
        "territories": [{"id": int(t), **territories.get(int(t), {}), **g} for t, g in per_territory.items()],
        "districts": {"type": "FeatureCollection", "features": features},
    }


def _groups(labels: np.ndarray, residents: np.ndarray, demand: np.ndarray, a: Allocation) -> dict:
    """Demand, served, deficit (unmet) and covered share per label."""
    uniq, inv = np.unique(labels, return_inverse=True)
    sums = {name: np.bincount(inv, weights=w, minlength=len(uniq))
            for name, w in (("residents", residents), ("demand", demand), ("served", a.served),
                            ("deficit", a.unmet),
                            ("covered", np.divide(residents * a.served, demand, out=np.zeros_like(demand),
                                                  where=demand > 0)),
                            ("people_with_demand", np.where(demand > 0, residents, 0.0)))}
    out = {}
    for k, label in enumerate(uniq.tolist()):
        with_demand = sums["people_with_demand"][k]
        out[label] = {"buildings": int(np.sum(inv == k)), "residents": float(sums["residents"][k]),
                      "demand": float(sums["demand"][k]), "served": float(sums["served"][k]),
                      "deficit": float(sums["deficit"][k]),
                      "covered_share": float(sums["covered"][k] / with_demand) if with_demand > 0 else None}
    return out
