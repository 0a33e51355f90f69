"""Siting service: where to put k new facilities of a type, over the walking network, with the deficit before/after.

Reads what it needs with SQL and hands a cost matrix to `spatial.siting`:
- demand: residents of residential buildings (`is_living` and `residents > 0`) in the territory, times the
  type's `demand_per_1000 / 1000` from `cdt.planning_norms` when that norm is set (else residents). To keep
  models small the buildings are aggregated to street nodes: each building is snapped to its nearest walkable
  edge (`spatial.network.snap`, the snaps `spatial.access_service` caches) and joins the nearer end node of
  that edge (by the walk: its access leg + along the edge); a demand point is such a node.
- service distance: the norm's `max_walk_radius_m` (region-specific norm first, then the federal one, the
  context-free row), unless `service_distance_m` is given.
- candidates: 'grid' (centroids of an `ST_SquareGrid` of `grid_m` metres in the territory's UTM zone, inside
  the boundary, kept where a residential building lies within 300 m), 'parcels' (vacant parcels: no building
  point lies on them; when zoning or functional zones exist in the territory, only parcels lying in a zone that
  allows the facility, see `_ZONING_RULE`), or user-drawn points [[lon, lat], ...].
- existing facilities of the type inside the territory are open already, with their capacity (missing
  capacity: the `capacity` given for new sites); the models choose k NEW sites.
- costs (metres on foot, over the territory's cached walk network of `spatial.access_service`, computed by
  `spatial.accessibility.travel_times`): for demand node i and site j,

      cost[i, j] = the residents-weighted mean walk of i's buildings from their doors to node i
                   (straight leg to their edge + along it to the node)
                 + the network walk from node i to site j's edge, along that edge, and the straight leg from
                   the edge to site j (or straight along the edge when node i is one of its ends).

  Sites (candidates and existing facilities) are snapped to their nearest walkable edge exactly as the
  buildings are. The p-median objective is thereby the sum over buildings of demand x (its own door-to-node
  walk + the node's walk to the site): every building's own leg is counted exactly; only the route is forced
  through the node its building joined. Coverage (MCLP, LSCP, the deficit) tests the node's mean walk against
  the service distance. Pairs the network does not connect cost inf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, Engine, text

from layers import registry
from layers.access import Principal, read_rule
from layers.crs import utm
from layers.errors import InvalidParameterValue
from spatial import access_service, siting
from spatial import accessibility as acc
from spatial.network import WALK_SPEED_MS, Network, Snaps, snap, snaps_on_edges

MODELS = ("mclp", "p-median", "lscp")
RESIDENTIAL_NEAR_M = 300  # a grid cell is a candidate only when people live within this distance
MAX_POINTS = 5000

# Zoning rule for vacant parcels. A parcel is allowed when its point lies in a zoning zone whose main uses hold
# the facility's permitted-use code (classifier П/0412) or a parent of it (e.g. "3.5" allows "3.5.1"), or, when
# no zoning zones exist in the territory, in a functional zone of an allowed type. No zones at all: no filter.
PERMITTED_USES = {
    "kindergarten": ("3.5.1",), "school": ("3.5.1",), "college": ("3.5.2",), "university": ("3.5.2",),
    "polyclinic": ("3.4.1",), "hospital": ("3.4.2",), "pharmacy": ("3.4.1", "4.4"), "sports": ("5.1",),
    "culture": ("3.6.1",), "library": ("3.6.1",), "boiler_house": ("3.1.1", "6.7"), "substation": ("3.1.1", "6.7"),
}
FUNCTIONAL_ZONES_ALLOWED = {"residential", "business"}
FUNCTIONAL_ZONES_ENGINEERING = {"engineering", "industrial"}
_ZONING_RULE = ("zoning zone main uses contain the facility's permitted-use code or a parent code; else "
                "functional zone type residential/business (engineering/industrial for boiler houses and substations)")


@dataclass
class _Instance:
    cost: np.ndarray  # demand nodes x (candidates, then existing facilities)
    weights: np.ndarray
    n_candidates: int
    candidates: list[dict]  # lon, lat, source, ref, snap_m (the straight leg to the site's edge)
    existing_capacity: np.ndarray
    notes: list[str]


def site(engine: Engine, principal: Principal, facility_type: str, k: int, capacity: float | None = None,
         model: str = "mclp", candidates: str | list = "grid", territory_oktmo: str = "19701000",
         grid_m: float = 500, service_distance_m: float | None = None, time_limit_s: float = 120) -> dict:
    """Propose k new sites for `facility_type`; see the module docstring. Raises InvalidParameterValue (400)."""
    if model not in MODELS:
        raise InvalidParameterValue(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InvalidParameterValue(f"k (the number of new sites) must be an integer of at least 1, got {k!r}")
    if capacity is not None and not (isinstance(capacity, (int, float)) and capacity > 0 and math.isfinite(capacity)):
        raise InvalidParameterValue(f"capacity must be a positive number, got {capacity!r}")
    if not 50 <= grid_m <= 5000:
        raise InvalidParameterValue(f"grid_m must be between 50 and 5000 metres, got {grid_m}")
    with engine.connect() as conn:
        _check_type(conn, facility_type)
        norm = _norm(conn, facility_type, territory_oktmo)
        distance = service_distance_m if service_distance_m is not None else norm["radius"]
        if distance is None or distance <= 0:
            raise InvalidParameterValue(f"no walking radius in cdt.planning_norms for '{facility_type}' "
                                        f"(norms exist for: {', '.join(norm['known']) or 'none'}); "
                                        f"give service_distance_m")
        inst = _instance(engine, conn, principal, facility_type, territory_oktmo, candidates, grid_m, norm,
                         capacity)
    if k > inst.n_candidates:
        raise InvalidParameterValue(f"k = {k} exceeds the {inst.n_candidates} candidate sites")
    return _solve(inst, model, k, capacity, float(distance), norm, time_limit_s)


# --- reading --------------------------------------------------------------------------------------------------
def _check_type(conn: Connection, facility_type: str) -> None:
    known = [r[0] for r in conn.execute(text("SELECT code FROM cdt.facility_types ORDER BY code"))]
    if facility_type not in known:
        raise InvalidParameterValue(f"unknown facility type {facility_type!r}; known types: {', '.join(known)}")


def _norm(conn: Connection, facility_type: str, oktmo: str) -> dict:
    """The norm of the type: the region's own row before the federal one, the context-free row."""
    region = (oktmo or "")[:2] + "000000"
    rows = conn.execute(text("""
        SELECT demand_per_1000, demand_unit, max_walk_radius_m, source_document FROM cdt.planning_norms
        WHERE type_code = :t AND coalesce(context, '') = '' AND (region_oktmo IS NULL OR region_oktmo = :r)
        ORDER BY region_oktmo IS NULL"""), {"t": facility_type, "r": region}).all()
    known = [r[0] for r in conn.execute(text(
        "SELECT DISTINCT type_code FROM cdt.planning_norms WHERE max_walk_radius_m IS NOT NULL ORDER BY 1"))]
    # each figure from the most specific row that sets it (a regional norm may give only the demand rate)
    first = lambda attr: next((getattr(r, attr) for r in rows if getattr(r, attr) is not None), None)  # noqa: E731
    per_1000 = first("demand_per_1000")
    unit = next((r.demand_unit for r in rows if r.demand_per_1000 is not None), None)
    sources = sorted({r.source_document for r in rows if r.source_document})
    return {"per_1000": per_1000, "unit": (unit or "places") if per_1000 else "residents",
            "radius": first("max_walk_radius_m"), "source": "; ".join(sources) or None, "known": known}


def _territory(conn: Connection, oktmo: str) -> tuple[int, int]:
    row = conn.execute(text("SELECT id, boundary IS NOT NULL AS has, ST_X(ST_Centroid(boundary)) AS lon, "
                            "ST_Y(ST_Centroid(boundary)) AS lat FROM cdt.territories WHERE oktmo = :o"),
                       {"o": oktmo}).first()
    if row is None:
        raise InvalidParameterValue(f"no territory with OKTMO {oktmo!r}")
    if not row.has:
        raise InvalidParameterValue(f"territory {oktmo} has no boundary loaded; siting needs one")
    return row.id, utm(row.lon, row.lat).srid


def _rule(principal: Principal, layer: str) -> tuple[str, dict]:
    rule = read_rule(principal, registry.get(layer))
    return (f" AND {rule.sql}" if rule.sql else ""), rule.params


def _demand(conn: Connection, principal: Principal, tid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                      np.ndarray]:
    """Ids, residents and point on surface (lon, lat) of the territory's residential buildings."""
    where, params = _rule(principal, "buildings")
    rows = conn.execute(text(f"""
        WITH terr AS (SELECT boundary FROM cdt.territories WHERE id = :tid),
        b AS (SELECT t.id, t.residents, ST_PointOnSurface(t.geom) AS g FROM cdt.buildings t, terr
              WHERE t.is_living AND t.residents > 0 AND ST_Intersects(t.geom, terr.boundary){where})
        SELECT b.id, b.residents::float8 AS residents, ST_X(b.g) AS lon, ST_Y(b.g) AS lat FROM b ORDER BY b.id"""),
                        {"tid": tid, **params}).all()
    if not rows:
        raise InvalidParameterValue("the territory has no residential buildings with residents: "
                                    "there is no demand to serve")
    ids, residents, lon, lat = (np.array(c) for c in zip(*rows, strict=True))
    return ids.astype(np.int64), residents.astype(float), lon.astype(float), lat.astype(float)


def _demand_nodes(network: Network, homes: Snaps, residents: np.ndarray) -> tuple[Snaps, np.ndarray, np.ndarray]:
    """The buildings aggregated to the nearer end node of their snapped edge: the nodes as points (Snaps at
    that end of one of their buildings' edges), their residents, and their buildings' residents-weighted mean
    walk in metres from the door to the node."""
    rows = np.arange(len(homes))
    end = np.argmin(homes.out_m, axis=1)
    leg = homes.out_m[rows, end]
    nodes, first, inv = np.unique(homes.ends[rows, end], return_index=True, return_inverse=True)
    weight = np.bincount(inv, weights=residents, minlength=len(nodes))
    mean_leg = np.bincount(inv, weights=residents * leg, minlength=len(nodes)) / weight
    edge = homes.edge[first]
    offset = np.where(end[first] == 0, 0.0, network.edge_length_m[edge])
    return snaps_on_edges(network, edge, offset), weight, mean_leg


def _grid(conn: Connection, principal: Principal, tid: int, srid: int, grid_m: float) -> list[dict]:
    where, params = _rule(principal, "buildings")
    rows = conn.execute(text(f"""
        WITH terr AS (SELECT boundary, ST_Transform(boundary, {srid}) AS local FROM cdt.territories WHERE id = :tid),
        res AS MATERIALIZED (SELECT ST_Transform(t.geom, {srid}) AS g FROM cdt.buildings t, terr
              WHERE t.is_living AND t.residents > 0 AND ST_Intersects(t.geom, terr.boundary){where}),
        cells AS (SELECT ST_Centroid(s.geom) AS c, s.i, s.j FROM terr, ST_SquareGrid(:size, terr.local) s),
        q AS (SELECT ST_Transform(cells.c, 4326) AS g, i, j FROM cells, terr
              WHERE ST_Intersects(cells.c, terr.local)
                AND EXISTS (SELECT 1 FROM res WHERE ST_DWithin(res.g, cells.c, {RESIDENTIAL_NEAR_M})))
        SELECT ST_X(q.g) AS lon, ST_Y(q.g) AS lat, q.i, q.j FROM q
        ORDER BY q.i, q.j"""), {"tid": tid, "size": float(grid_m), **params}).all()
    return [{"lon": r.lon, "lat": r.lat, "source": "grid", "ref": f"{r.i}:{r.j}"} for r in rows]


def _zoning_filter(conn: Connection, tid: int, facility_type: str) -> tuple[str, dict, str]:
    """SQL condition over parcel point `q.g` allowing the facility, and a note saying which rule applied."""
    has = conn.execute(text("""SELECT
        (SELECT count(*) FROM cdt.zoning_zones z, cdt.territories t WHERE t.id = :tid
           AND ST_Intersects(z.geom, t.boundary)),
        (SELECT count(*) FROM cdt.functional_zones z, cdt.territories t WHERE t.id = :tid
           AND ST_Intersects(z.geom, t.boundary))"""), {"tid": tid}).first()
    codes = list(PERMITTED_USES.get(facility_type, ()))
    if has[0]:
        return ("""AND EXISTS (SELECT 1 FROM cdt.zoning_zones z WHERE ST_Intersects(z.geom, q.g) AND EXISTS (
                   SELECT 1 FROM unnest(z.main_uses) u, unnest(CAST(:codes AS text[])) c
                   WHERE c = u OR c LIKE u || '.%'))""", {"codes": codes},
                f"vacant parcels kept when a zoning zone's main uses allow {', '.join(codes)} (or a parent code)")
    if has[1]:
        types = FUNCTIONAL_ZONES_ENGINEERING if facility_type in ("boiler_house", "substation") \
            else FUNCTIONAL_ZONES_ALLOWED
        return ("AND EXISTS (SELECT 1 FROM cdt.functional_zones z WHERE ST_Intersects(z.geom, q.g) "
                "AND z.zone_type = ANY(CAST(:types AS text[])))", {"types": sorted(types)},
                f"no zoning zones: vacant parcels kept in functional zones {', '.join(sorted(types))}")
    return "", {}, "no zoning or functional zones in the territory: vacant parcels are not filtered by use"


def _parcels(conn: Connection, principal: Principal, tid: int, facility_type: str) -> tuple[list[dict], str]:
    pwhere, pparams = _rule(principal, "parcels")
    zwhere, zparams, note = _zoning_filter(conn, tid, facility_type)
    rows = conn.execute(text(f"""
        WITH terr AS (SELECT boundary FROM cdt.territories WHERE id = :tid),
        q AS (SELECT t.cadastral_number, ST_PointOnSurface(t.geom) AS g, t.geom FROM cdt.parcels t, terr
              WHERE t.geom IS NOT NULL AND ST_Intersects(t.geom, terr.boundary){pwhere})
        SELECT q.cadastral_number, ST_X(q.g) AS lon, ST_Y(q.g) AS lat FROM q
        WHERE NOT EXISTS (SELECT 1 FROM cdt.buildings b WHERE ST_Intersects(b.geom, q.geom)
                            AND ST_Intersects(ST_PointOnSurface(b.geom), q.geom)) {zwhere}
        ORDER BY q.cadastral_number"""), {"tid": tid, **pparams, **zparams}).all()
    return [{"lon": r.lon, "lat": r.lat, "source": "parcel", "ref": r.cadastral_number} for r in rows], note


def _points(points: list) -> list[dict]:
    if not points or len(points) > MAX_POINTS:
        raise InvalidParameterValue(f"candidates as points need 1 to {MAX_POINTS} [lon, lat] pairs")
    for i, pt in enumerate(points):
        if not (isinstance(pt, (list, tuple)) and len(pt) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in pt)
                and -180 <= pt[0] <= 180 and -90 <= pt[1] <= 90):
            raise InvalidParameterValue(f"candidate point {i} must be [lon, lat] in degrees, got {pt!r}")
    return [{"lon": float(p[0]), "lat": float(p[1]), "source": "point", "ref": str(i)} for i, p in enumerate(points)]


def _existing(conn: Connection, principal: Principal, tid: int, facility_type: str) -> list[dict]:
    where, params = _rule(principal, "facilities")
    rows = conn.execute(text(f"""
        WITH terr AS (SELECT boundary FROM cdt.territories WHERE id = :tid),
        q AS (SELECT t.id, t.name, t.capacity, t.geom AS g FROM cdt.facilities t, terr
              WHERE t.type_code = :type AND ST_Intersects(t.geom, terr.boundary){where})
        SELECT q.id, q.name, q.capacity, ST_X(q.g) AS lon, ST_Y(q.g) AS lat FROM q ORDER BY q.id"""),
                        {"tid": tid, "type": facility_type, **params}).all()
    return [{"id": r.id, "name": r.name, "capacity": r.capacity, "lon": r.lon, "lat": r.lat} for r in rows]


def _instance(engine: Engine, conn: Connection, principal: Principal, facility_type: str, oktmo: str,
              candidates: str | list, grid_m: float, norm: dict, capacity: float | None) -> _Instance:
    tid, srid = _territory(conn, oktmo)
    ids, b_residents, lon, lat = _demand(conn, principal, tid)
    network, homes = access_service.walk_homes(engine, principal, oktmo)
    if network.n_edges == 0:
        raise InvalidParameterValue("no walkable street network (edges with walk = true) in the territory")
    demand, residents, mean_leg = _demand_nodes(
        network, access_service.building_snaps(network, homes, ids, lon, lat), b_residents)
    notes = [f"demand: residents of {len(ids)} residential buildings, each snapped to its nearest walkable edge "
             f"and aggregated to the nearer end node of that edge ({len(residents)} demand nodes); a node's walk "
             f"to a site counts its buildings' residents-weighted mean walk from the door to the node"]
    factor = (norm["per_1000"] or 0) / 1000
    weights = residents * factor if factor else residents
    notes.append(f"demand = residents x {norm['per_1000']}/1000 ({norm['unit']})" if factor else
                 "no demand_per_1000 norm for the type: demand = residents")
    if candidates == "grid":
        cand = _grid(conn, principal, tid, srid, grid_m)
        notes.append(f"candidates: {grid_m:g} m grid cell centres in the territory with a residential building "
                     f"within {RESIDENTIAL_NEAR_M} m")
    elif candidates == "parcels":
        cand, note = _parcels(conn, principal, tid, facility_type)
        notes.append(f"candidates: vacant parcels (no building on them); {note}")
    elif isinstance(candidates, list):
        cand = _points(candidates)
        notes.append("candidates: user-drawn points")
    else:
        raise InvalidParameterValue("candidates must be 'grid', 'parcels' or a list of [lon, lat] points")
    if not cand:
        raise InvalidParameterValue(f"no candidate sites: {notes[-1]} gives none in territory {oktmo}")
    existing = _existing(conn, principal, tid, facility_type)
    sites = cand + existing
    site_snaps = snap(network, np.array([c["lon"] for c in sites], dtype=float),
                      np.array([c["lat"] for c in sites], dtype=float))
    for row, leg in zip(sites, site_snaps.access_m.tolist(), strict=True):
        row["snap_m"] = leg
    # one Dijkstra per site over the reversed graph; walking: metres = seconds x the walking speed
    cost = acc.travel_times(network, demand, site_snaps) * WALK_SPEED_MS + mean_leg[:, None]
    cap = np.array([f["capacity"] if f["capacity"] is not None else (capacity or 0.0) for f in existing], dtype=float)
    return _Instance(cost, weights, len(cand), sites, cap, notes)


# --- solving and reporting ------------------------------------------------------------------------------------
def _solve(inst: _Instance, model: str, k: int, capacity: float | None, distance: float, norm: dict,
           time_limit: float) -> dict:
    n_c = inst.n_candidates
    fixed = list(range(n_c, inst.cost.shape[1]))
    cost, weights = inst.cost, inst.weights
    reachable = np.isfinite(cost).any(axis=1)
    total = float(weights.sum())
    if not reachable.any():
        raise InvalidParameterValue("the street network does not connect any demand with any candidate or "
                                    f"existing facility (all {total:g} of the demand is unreachable)")
    lost = float(weights[~reachable].sum())
    if lost:
        inst.notes.append(f"{int((~reachable).sum())} demand points ({lost:g}, {100 * lost / total:.1f} % of the "
                          f"demand) are not connected by the network to any site and are left out of the model")
        keep = np.flatnonzero(reachable)
    else:
        keep = np.arange(len(weights))
    cap = None
    if capacity is not None:
        cap = np.concatenate([np.full(n_c, float(capacity)), inst.existing_capacity])
    c, w = cost[keep], weights[keep]
    if model == "mclp":
        res = siting.mclp(c, w, distance, k, fixed=fixed, capacity=cap, time_limit=time_limit)
    elif model == "p-median":
        res = siting.p_median(c, w, k, fixed=fixed, capacity=cap, distance=distance, time_limit=time_limit)
    else:
        try:
            res = siting.lscp(c, distance, weights=w, fixed=fixed, capacity=cap, time_limit=time_limit)
        except InvalidParameterValue as exc:
            raise InvalidParameterValue(f"{exc.detail}; a finer grid (grid_m) or more candidates may help",
                                        **exc.context) from None
    return _report(inst, res, keep, distance, norm, total, model)


def _report(inst: _Instance, res: siting.SitingResult, keep: np.ndarray, distance: float, norm: dict,
            total: float, model: str) -> dict:
    n_c = inst.n_candidates
    cost, weights = inst.cost, inst.weights
    fixed = list(range(n_c, cost.shape[1]))
    before = siting.covered_weight(cost, weights, fixed, distance)
    after = siting.covered_weight(cost, weights, res.open_sites, distance)
    covered_before = (cost[:, fixed] <= distance).any(axis=1) if fixed else np.zeros(len(weights), dtype=bool)
    new = res.sites
    # each newly covered demand point counts as gain for the nearest new site covering it
    near_new = cost[:, new].argmin(axis=1) if new else None
    assigned = np.full(len(weights), -1)
    assigned[keep] = res.assignment
    features = []
    for rank, j in enumerate(new, start=1):
        within = cost[:, j] <= distance
        gain_mask = within & ~covered_before & (np.asarray(new)[near_new] == j)
        cand = inst.candidates[j]
        features.append({"type": "Feature", "geometry": {"type": "Point", "coordinates": [cand["lon"], cand["lat"]]},
                         "properties": {"rank": rank, "source": cand["source"], "ref": cand["ref"],
                                        "snap_m": round(cand["snap_m"], 1),
                                        "demand_covered": float(weights[within].sum()),
                                        "coverage_gain": float(weights[gain_mask].sum()),
                                        "demand_assigned": float(weights[assigned == j].sum())}})
    report = {"model": res.model, "status": res.status, "objective": res.objective, "bound": res.bound,
              "gap": res.gap, "solver": res.solver, "time_s": round(res.time_s, 3), "new_sites": len(new),
              "details": {k: v for k, v in res.details.items() if isinstance(v, (int, float, str))}}
    deficit = {"demand_total": total, "demand_unit": norm["unit"], "service_distance_m": distance,
               "covered_before": before, "covered_after": after,
               "share_before": before / total if total else 0.0, "share_after": after / total if total else 0.0,
               "uncovered_before": total - before, "uncovered_after": total - after}
    if res.allocation is not None:
        deficit["served_by_capacity"] = res.details.get("served")
    return {"sites": {"type": "FeatureCollection", "features": features}, "report": report, "deficit": deficit,
            "inputs": {"model": model, "demand_points": len(weights), "candidates": n_c,
                       "existing_facilities": len(fixed), "norm_source": norm["source"], "notes": inst.notes}}
