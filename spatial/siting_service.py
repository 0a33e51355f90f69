"""Siting service: where to put k new facilities of a type, over the walking network, with the deficit before/after.

Reads what it needs with SQL and hands a cost matrix to `spatial.siting`:
- demand: residents of residential buildings (`is_living` and `residents > 0`) in the territory, times the
  type's `demand_per_1000 / 1000` from `cdt.planning_norms` when that norm is set (else residents). To keep
  models small each building is aggregated to its nearest street node: a demand point is a node, and the
  walk from the door to that node is not counted.
- service distance: the norm's `max_walk_radius_m` (region-specific norm first, then the federal one, the
  context-free row), unless `service_distance_m` is given.
- candidates: 'grid' (centroids of an `ST_SquareGrid` of `grid_m` metres in the territory's UTM zone, inside
  the boundary, kept where a residential building lies within 300 m), 'parcels' (vacant parcels: no building
  point lies on them; when zoning or functional zones exist in the territory, only parcels lying in a zone that
  allows the facility, see `_ZONING_RULE`), or user-drawn points [[lon, lat], ...].
- existing facilities of the type inside the territory are open already, with their capacity (missing
  capacity: the `capacity` given for new sites); the models choose k NEW sites.
- costs: walking distance over `cdt.street_edges` (Dijkstra between nearest nodes) plus the straight leg from a
  candidate to its nearest node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra
from sqlalchemy import Connection, Engine, text

from layers import registry
from layers.access import Principal, read_rule
from layers.crs import utm
from layers.errors import InvalidParameterValue
from spatial import siting

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
    candidates: list[dict]  # lon, lat, source, ref, snap_m
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
        inst = _instance(conn, principal, facility_type, territory_oktmo, candidates, grid_m, norm, capacity)
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


def _demand(conn: Connection, principal: Principal, tid: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Residents of residential buildings summed at their nearest street node (by true distance among the
    8 nearest by index)."""
    where, params = _rule(principal, "buildings")
    rows = conn.execute(text(f"""
        WITH terr AS (SELECT boundary FROM cdt.territories WHERE id = :tid),
        b AS (SELECT t.residents, ST_PointOnSurface(t.geom) AS g FROM cdt.buildings t, terr
              WHERE t.is_living AND t.residents > 0 AND ST_Intersects(t.geom, terr.boundary){where})
        SELECT n.id, sum(b.residents)::float8 AS residents, count(*) AS buildings FROM b
        CROSS JOIN LATERAL (SELECT id FROM (SELECT id, geom FROM cdt.street_nodes ORDER BY geom <-> b.g LIMIT 8) c
                            ORDER BY ST_Distance(c.geom::geography, b.g::geography) LIMIT 1) n
        GROUP BY n.id ORDER BY n.id"""), {"tid": tid, **params}).all()
    if not rows:
        raise InvalidParameterValue("the territory has no residential buildings with residents "
                                    "(or no street network to attach them to): there is no demand to serve")
    return (np.array([r.id for r in rows]), np.array([r.residents for r in rows]),
            int(sum(r.buildings for r in rows)))


_SNAP = """CROSS JOIN LATERAL (SELECT id AS node, ST_Distance(c.geom::geography, q.g::geography) AS snap_m
              FROM (SELECT id, geom FROM cdt.street_nodes ORDER BY geom <-> q.g LIMIT 8) c
              ORDER BY 2 LIMIT 1) s"""


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
        SELECT ST_X(q.g) AS lon, ST_Y(q.g) AS lat, q.i, q.j, s.node, s.snap_m FROM q {_SNAP}
        ORDER BY q.i, q.j"""), {"tid": tid, "size": float(grid_m), **params}).all()
    return [{"lon": r.lon, "lat": r.lat, "source": "grid", "ref": f"{r.i}:{r.j}", "node": r.node,
             "snap_m": r.snap_m} for r in rows]


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
        SELECT q.cadastral_number, ST_X(q.g) AS lon, ST_Y(q.g) AS lat, s.node, s.snap_m FROM q {_SNAP}
        WHERE NOT EXISTS (SELECT 1 FROM cdt.buildings b WHERE ST_Intersects(b.geom, q.geom)
                            AND ST_Intersects(ST_PointOnSurface(b.geom), q.geom)) {zwhere}
        ORDER BY q.cadastral_number"""), {"tid": tid, **pparams, **zparams}).all()
    return [{"lon": r.lon, "lat": r.lat, "source": "parcel", "ref": r.cadastral_number, "node": r.node,
             "snap_m": r.snap_m} for r in rows], note


def _points(conn: Connection, points: list) -> list[dict]:
    if not points or len(points) > MAX_POINTS:
        raise InvalidParameterValue(f"candidates as points need 1 to {MAX_POINTS} [lon, lat] pairs")
    for i, pt in enumerate(points):
        if not (isinstance(pt, (list, tuple)) and len(pt) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in pt)
                and -180 <= pt[0] <= 180 and -90 <= pt[1] <= 90):
            raise InvalidParameterValue(f"candidate point {i} must be [lon, lat] in degrees, got {pt!r}")
    rows = conn.execute(text(f"""
        WITH q AS (SELECT ord, ST_SetSRID(ST_MakePoint(lon, lat), 4326) AS g
                   FROM unnest(CAST(:lons AS float8[]), CAST(:lats AS float8[])) WITH ORDINALITY AS u(lon, lat, ord))
        SELECT q.ord, s.node, s.snap_m FROM q {_SNAP} ORDER BY q.ord"""),
                        {"lons": [float(p[0]) for p in points], "lats": [float(p[1]) for p in points]}).all()
    return [{"lon": float(p[0]), "lat": float(p[1]), "source": "point", "ref": str(i), "node": r.node,
             "snap_m": r.snap_m} for i, (p, r) in enumerate(zip(points, rows, strict=True))]


def _existing(conn: Connection, principal: Principal, tid: int, facility_type: str) -> list[dict]:
    where, params = _rule(principal, "facilities")
    rows = conn.execute(text(f"""
        WITH terr AS (SELECT boundary FROM cdt.territories WHERE id = :tid),
        q AS (SELECT t.id, t.name, t.capacity, t.geom AS g FROM cdt.facilities t, terr
              WHERE t.type_code = :type AND ST_Intersects(t.geom, terr.boundary){where})
        SELECT q.id, q.name, q.capacity, s.node, s.snap_m FROM q {_SNAP} ORDER BY q.id"""),
                        {"tid": tid, "type": facility_type, **params}).all()
    return [{"id": r.id, "name": r.name, "capacity": r.capacity, "node": r.node, "snap_m": r.snap_m} for r in rows]


def _walking_distances(conn: Connection, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Shortest walking distances (m) between street nodes, sources x targets (inf: not connected).

    Private stand-in: to be replaced by spatial.accessibility's network travel times."""
    edges = conn.execute(text("SELECT from_node, to_node, length_m FROM cdt.street_edges WHERE walk")).all()
    if not edges:
        raise InvalidParameterValue("no walkable street network is loaded")
    e = np.array([(a, b, w) for a, b, w in edges], dtype=float)
    ids = np.unique(np.concatenate([e[:, 0], e[:, 1], sources, targets]))
    a, b = np.searchsorted(ids, e[:, 0]), np.searchsorted(ids, e[:, 1])
    g = sp.csr_matrix((e[:, 2], (a, b)), shape=(len(ids), len(ids)))
    src = np.searchsorted(ids, sources)
    dist = dijkstra(g, directed=False, indices=src)
    return dist[:, np.searchsorted(ids, targets)]


def _instance(conn: Connection, principal: Principal, facility_type: str, oktmo: str, candidates: str | list,
              grid_m: float, norm: dict, capacity: float | None) -> _Instance:
    tid, srid = _territory(conn, oktmo)
    nodes, residents, n_buildings = _demand(conn, principal, tid)
    notes = [f"demand: residents of {n_buildings} residential buildings aggregated to {len(nodes)} nearest "
             f"street nodes (the walk from a building to its node is not counted)"]
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
        cand = _points(conn, candidates)
        notes.append("candidates: user-drawn points")
    else:
        raise InvalidParameterValue("candidates must be 'grid', 'parcels' or a list of [lon, lat] points")
    if not cand:
        raise InvalidParameterValue(f"no candidate sites: {notes[-1]} gives none in territory {oktmo}")
    existing = _existing(conn, principal, tid, facility_type)
    col_nodes = np.array([c["node"] for c in cand] + [f["node"] for f in existing], dtype=float)
    snap = np.array([c["snap_m"] for c in cand] + [f["snap_m"] for f in existing])
    uniq, inv = np.unique(col_nodes, return_inverse=True)
    dist = _walking_distances(conn, uniq, nodes.astype(float))  # sources are the (fewer) sites
    cost = (dist[inv] + snap[:, None]).T
    cap = np.array([f["capacity"] if f["capacity"] is not None else (capacity or 0.0) for f in existing], dtype=float)
    for row in cand + existing:
        row.pop("node", None)
    return _Instance(cost, weights, len(cand), cand + existing, cap, notes)


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
