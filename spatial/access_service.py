"""Accessibility services over the database: nearest facilities, isochrones, a home's neighbourhood, 15-minute
scores. Reads `cdt.street_edges`, `cdt.buildings`, `cdt.facilities`, `cdt.facility_types`, `cdt.planning_norms`
and `cdt.territories` through the access rules of `layers.access`; computes with `spatial.network` and
`spatial.accessibility`; returns dicts (results are layers: storing them is the caller's decision).

Cache: the Network of a mode and the snaps of the residential buildings live in process memory, keyed by the
database, the mode, the territory and the reader's access rules. Each entry remembers a fingerprint of its
tables (`count(*), max(updated_at), sum(version)`: an insert, an update or a delete changes one of them;
one cheap aggregate) and is re-checked at most every RECHECK_S seconds, so an edited network is rebuilt
within that delay and a warm call costs no loading.

Decisions:
- Residential buildings: `is_living` or residents > 0, at ST_PointOnSurface of the footprint.
- A territory's network: the edges within its boundaries' extent (its descendants' if it has none, else its
  buildings' extent) widened by NETWORK_MARGIN_DEG, so that paths leaving the territory are found; facilities:
  those of the territory (its OKTMO subtree). Without a territory: every edge, building and facility.
- The normative share uses the network distance (access legs included), not the straight-line radius of
  SP 42.13330: a school 400 m away across a railway is not within 500 m on foot.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import mapping
from sqlalchemy import Connection, Engine, text

from layers import registry
from layers.access import Principal, ReadRule, read_rule
from layers.db import reader
from layers.errors import InvalidParameterValue
from spatial import accessibility as acc
from spatial.network import MODES, Network, Snaps, build_network, snap, utm_epsg

RECHECK_S = 5.0
NETWORK_MARGIN_DEG = 0.03  # ~3.3 km north-south, ~1.7 km east-west at 60 N
MAX_ACCESS_M = 1000.0  # a clicked point farther than this from any street is refused
FIFTEEN_MIN_S = 900.0
# Daily needs of the 15-minute score; those with no facilities in the data are reported as missing.
ESSENTIAL_TYPES = ("kindergarten", "school", "polyclinic", "pharmacy", "stop", "park")


# --- reading ------------------------------------------------------------------------------------------------
def _rule(principal: Principal, layer: str) -> ReadRule:
    return read_rule(principal, registry.get(layer))


def _where(rule: ReadRule) -> str:
    return f" AND ({rule.sql})" if rule.sql else ""


@dataclass(frozen=True)
class Territory:
    id: int
    oktmo: str
    name: str
    ids: tuple[int, ...]  # the territory and its descendants

    @property
    def region_oktmo(self) -> str:
        return self.oktmo[:2] + "000000"

    def describe(self) -> dict:
        return {"oktmo": self.oktmo, "name": self.name}


def _territory(conn: Connection, oktmo: str | None) -> Territory | None:
    if oktmo is None:
        return None
    row = conn.execute(text("""
        WITH RECURSIVE tree AS (
            SELECT id FROM cdt.territories WHERE oktmo = :oktmo
            UNION ALL SELECT c.id FROM cdt.territories c JOIN tree ON c.parent_id = tree.id)
        SELECT t.id, t.oktmo, t.name, (SELECT array_agg(id ORDER BY id) FROM tree) AS ids
        FROM cdt.territories t WHERE t.oktmo = :oktmo"""), {"oktmo": oktmo}).first()
    if row is None:
        raise InvalidParameterValue(f"unknown territory OKTMO '{oktmo}'")
    return Territory(row.id, row.oktmo, row.name, tuple(row.ids))


def _territory_at(conn: Connection, lon: float, lat: float) -> Territory | None:
    """The deepest territory whose boundary covers the point."""
    oktmo = conn.execute(text("""
        WITH RECURSIVE up AS (SELECT id, parent_id, 0 AS depth FROM cdt.territories
                              UNION ALL SELECT up.id, p.parent_id, up.depth + 1
                              FROM up JOIN cdt.territories p ON p.id = up.parent_id)
        SELECT t.oktmo FROM cdt.territories t JOIN (SELECT id, max(depth) AS depth FROM up GROUP BY id) d
          ON d.id = t.id
        WHERE t.boundary IS NOT NULL AND ST_Covers(t.boundary, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
        ORDER BY d.depth DESC LIMIT 1"""), {"lon": lon, "lat": lat}).scalar()
    return _territory(conn, oktmo) if oktmo else None


def _fingerprint(conn: Connection, table: str) -> tuple:
    return tuple(conn.execute(text(f"SELECT count(*), max(updated_at), sum(version) FROM cdt.{table}")).one())


def _area_filter(territory: Territory | None) -> tuple[str, dict]:
    if territory is None:
        return "", {}
    return (""" AND t.geom && (SELECT ST_SetSRID(ST_Expand(coalesce(
                    (SELECT ST_Extent(boundary) FROM cdt.territories WHERE id = ANY(CAST(:area_ids AS int[]))),
                    (SELECT ST_Extent(geom) FROM cdt.buildings WHERE territory_id = ANY(CAST(:area_ids AS int[])))),
                  :margin)::geometry, 4326))""", {"area_ids": list(territory.ids), "margin": NETWORK_MARGIN_DEG})


def _load_network(conn: Connection, principal: Principal, mode: str, territory: Territory | None) -> Network:
    rule = _rule(principal, "street_edges")
    area_sql, area_params = _area_filter(territory)
    params = {**rule.params, **area_params}
    where = f"WHERE true{_where(rule)}{area_sql}"
    centre = conn.execute(text(f"SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(ST_Extent(t.geom)::geometry) c "
                               f"FROM cdt.street_edges t {where}) x"), params).one()
    if centre[0] is None:
        raise InvalidParameterValue("no street network in the area asked" +
                                    (f" (territory {territory.oktmo} {territory.name})" if territory else ""))
    srid = utm_epsg(centre[0], centre[1])
    rows = conn.execute(text(f"""
        SELECT t.id, t.from_node, t.to_node, t.length_m, t.walk, t.drive, t.oneway, t.speed_kmh,
               ST_AsBinary(ST_Transform(t.geom, {srid})) AS wkb
        FROM cdt.street_edges t {where}"""), params).all()
    cols = list(zip(*rows, strict=True))
    from_ids, to_ids = np.array(cols[1], dtype=np.int64), np.array(cols[2], dtype=np.int64)
    speed = np.array([np.nan if s is None else s for s in cols[7]], dtype=float)
    return build_network(np.unique(np.concatenate([from_ids, to_ids])), from_ids, to_ids,
                         np.array(cols[3], dtype=float), mode, edge_ids=np.array(cols[0], dtype=np.int64),
                         walk=np.array(cols[4], bool), drive=np.array(cols[5], bool), oneway=np.array(cols[6], bool),
                         speed_kmh=speed, geoms=shapely.from_wkb([bytes(w) for w in cols[8]]), metric_crs=srid)


@dataclass(frozen=True)
class Buildings:
    network: Network
    ids: np.ndarray
    residents: np.ndarray
    territory_ids: np.ndarray
    snaps: Snaps


_RESIDENTIAL = "(t.is_living IS TRUE OR t.residents > 0)"


def _building_scope(principal: Principal, territory: Territory | None) -> tuple[str, dict]:
    rule = _rule(principal, "buildings")
    sql, params = f"{_RESIDENTIAL}{_where(rule)}", dict(rule.params)
    if territory is not None:
        sql += " AND t.territory_id = ANY(CAST(:ter_ids AS int[]))"
        params["ter_ids"] = list(territory.ids)
    return sql, params


def _require_homes(conn: Connection, principal: Principal, territory: Territory | None) -> None:
    """Refuse an empty territory before loading anything for it."""
    where, params = _building_scope(principal, territory)
    if not conn.execute(text(f"SELECT EXISTS (SELECT 1 FROM cdt.buildings t WHERE {where})"), params).scalar():
        place = f"territory {territory.oktmo} ({territory.name})" if territory else "the database"
        raise InvalidParameterValue(f"no residential buildings (is_living or residents > 0) in {place}")


def _load_buildings(conn: Connection, principal: Principal, network: Network,
                    territory: Territory | None) -> Buildings:
    where, params = _building_scope(principal, territory)
    rows = conn.execute(text(f"""
        SELECT t.id, coalesce(t.residents, 0), coalesce(t.territory_id, 0), ST_X(p.p), ST_Y(p.p)
        FROM cdt.buildings t, LATERAL ST_PointOnSurface(t.geom) AS p(p) WHERE {where} ORDER BY t.id"""), params).all()
    if not rows:
        place = f"territory {territory.oktmo} ({territory.name})" if territory else "the database"
        raise InvalidParameterValue(f"no residential buildings (is_living or residents > 0) in {place}")
    ids, residents, ter, lon, lat = (np.array(c) for c in zip(*rows, strict=True))
    return Buildings(network, ids.astype(np.int64), residents.astype(float), ter.astype(np.int64),
                     snap(network, lon.astype(float), lat.astype(float)))


# --- cache --------------------------------------------------------------------------------------------------
@dataclass
class _Entry:
    fingerprint: tuple
    value: object
    checked_at: float


_CACHE: dict[tuple, _Entry] = {}
_LOCK = threading.Lock()


def _cached(key: tuple, fingerprint, build, valid=lambda value: True):
    """The value cached under key, rebuilt when fingerprint() differs (checked at most every RECHECK_S) or
    valid(value) is false."""
    with _LOCK:
        entry = _CACHE.get(key)
        if entry is not None and not valid(entry.value):
            entry = None
        now = time.monotonic()
        if entry is not None and now - entry.checked_at < RECHECK_S:
            return entry.value
        current = fingerprint()
        if entry is not None and entry.fingerprint == current:
            entry.checked_at = now
            return entry.value
        value = build()
        _CACHE[key] = _Entry(current, value, time.monotonic())
        return value


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise InvalidParameterValue(f"mode must be one of {', '.join(MODES)}; got {mode!r}")


def network_for(engine: Engine, principal: Principal, mode: str = "walk",
                territory_oktmo: str | None = None) -> Network:
    """The (cached) Network of a mode for a territory or for everything."""
    _check_mode(mode)
    with reader(engine).connect() as conn:
        territory = _territory(conn, territory_oktmo)
        return _network(conn, engine, principal, mode, territory)


def _network(conn: Connection, engine: Engine, principal: Principal, mode: str,
             territory: Territory | None) -> Network:
    key = ("network", str(engine.url), mode, territory.id if territory else None,
           _rule(principal, "street_edges").key())
    return _cached(key, lambda: _fingerprint(conn, "street_edges"),
                   lambda: _load_network(conn, principal, mode, territory))


def _buildings(conn: Connection, engine: Engine, principal: Principal, network: Network,
               territory: Territory | None) -> Buildings:
    key = ("buildings", str(engine.url), network.mode, territory.id if territory else None,
           _rule(principal, "buildings").key())
    # snaps belong to one network object: a rebuilt network invalidates them
    return _cached(key, lambda: _fingerprint(conn, "buildings"),
                   lambda: _load_buildings(conn, principal, network, territory),
                   valid=lambda value: value.network is network)


def walk_homes(engine: Engine, principal: Principal,
               territory_oktmo: str | None = None) -> tuple[Network, Buildings | None]:
    """The cached walk Network of a territory (None: everything) and the cached snaps of its residential
    buildings, as `nearest_facility` uses them (`is_living` or residents > 0, at ST_PointOnSurface, sorted by
    id; None when the territory has none). For services that compute their own walks over the same network:
    `building_snaps` picks their buildings' snaps out of these."""
    with reader(engine).connect() as conn:
        territory = _territory(conn, territory_oktmo)
        network = _network(conn, engine, principal, "walk", territory)
        where, params = _building_scope(principal, territory)
        if not conn.execute(text(f"SELECT EXISTS (SELECT 1 FROM cdt.buildings t WHERE {where})"), params).scalar():
            return network, None
        return network, _buildings(conn, engine, principal, network, territory)


def building_snaps(network: Network, homes: Buildings | None, ids: np.ndarray, lon: np.ndarray,
                   lat: np.ndarray) -> Snaps:
    """Snaps of buildings `ids` (points on surface at lon/lat) on `network`: the cached ones of `homes` where
    they are there, the others (outside the cache's rule, or added since it was built) snapped now."""
    ids = np.asarray(ids, dtype=np.int64)
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    if homes is None or homes.network is not network or len(homes.ids) == 0:
        return snap(network, lon, lat)
    pos = np.minimum(np.searchsorted(homes.ids, ids), len(homes.ids) - 1)
    found = homes.ids[pos] == ids
    if found.all():
        return homes.snaps.take(pos)
    cached = homes.snaps.take(pos)
    if not found.any():
        return snap(network, lon, lat)
    fresh = snap(network, lon[~found], lat[~found])
    fields = {}
    for name in ("edge", "ends", "offset_m", "access_m", "out_s", "in_s", "out_m", "in_m", "lonlat"):
        merged = getattr(cached, name).copy()
        merged[~found] = getattr(fresh, name)
        fields[name] = merged
    return Snaps(**fields)


# --- facilities ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Facilities:
    type_code: str
    ids: np.ndarray
    names: list[str | None]
    capacities: np.ndarray
    snaps: Snaps


def _known_types(conn: Connection) -> list[str]:
    return list(conn.execute(text("SELECT code FROM cdt.facility_types ORDER BY code")).scalars())


def _check_type(conn: Connection, facility_type: str) -> None:
    known = _known_types(conn)
    if facility_type not in known:
        raise InvalidParameterValue(f"unknown facility type '{facility_type}'; known types: {', '.join(known)}")


def _facilities(conn: Connection, principal: Principal, network: Network, facility_type: str,
                territory: Territory | None, required: bool = True) -> Facilities | None:
    rule = _rule(principal, "facilities")
    params = {**rule.params, "type": facility_type}
    scope = ""
    if territory is not None:
        scope = " AND t.territory_id = ANY(CAST(:ter_ids AS int[]))"
        params["ter_ids"] = list(territory.ids)
    rows = conn.execute(text(f"""
        SELECT t.id, t.name, t.capacity, ST_X(t.geom), ST_Y(t.geom) FROM cdt.facilities t
        WHERE t.type_code = :type{_where(rule)}{scope} ORDER BY t.id"""), params).all()
    if not rows:
        if not required:
            return None
        where = f"territory {territory.oktmo} ({territory.name})" if territory else "the database"
        raise InvalidParameterValue(f"no facilities of type '{facility_type}' in {where}")
    ids, names, caps, lon, lat = zip(*rows, strict=True)
    return Facilities(facility_type, np.array(ids, dtype=np.int64), list(names),
                      np.array([np.nan if c is None else c for c in caps], dtype=float),
                      snap(network, np.array(lon, dtype=float), np.array(lat, dtype=float)))


def _facilities_cached(conn: Connection, engine: Engine, principal: Principal, network: Network,
                       facility_type: str, territory: Territory | None, required: bool = True) -> Facilities | None:
    key = ("facilities", str(engine.url), network.mode, territory.id if territory else None, facility_type,
           _rule(principal, "facilities").key())
    found = _cached(key, lambda: _fingerprint(conn, "facilities"),
                    lambda: (network, _facilities(conn, principal, network, facility_type, territory, False)),
                    valid=lambda value: value[0] is network)[1]
    if found is None and required:
        where = f"territory {territory.oktmo} ({territory.name})" if territory else "the database"
        raise InvalidParameterValue(f"no facilities of type '{facility_type}' in {where}")
    return found


def _norm(conn: Connection, facility_type: str, territory: Territory | None) -> dict | None:
    row = conn.execute(text("""
        SELECT region_oktmo, max_walk_radius_m, max_walk_time_min, source_document FROM cdt.planning_norms
        WHERE type_code = :type AND context IS NULL AND (region_oktmo IS NULL OR region_oktmo = :region)
          AND (max_walk_radius_m IS NOT NULL OR max_walk_time_min IS NOT NULL)
        ORDER BY region_oktmo NULLS LAST LIMIT 1"""),
        {"type": facility_type, "region": territory.region_oktmo if territory else None}).first()
    if row is None:
        return None
    return {"region_oktmo": row.region_oktmo, "max_walk_radius_m": row.max_walk_radius_m,
            "max_walk_time_min": row.max_walk_time_min, "source_document": row.source_document}


# --- helpers ------------------------------------------------------------------------------------------------
def _num(value: float, digits: int = 1) -> float | None:
    return round(float(value), digits) if np.isfinite(value) else None


def _column(values: np.ndarray, digits: int = 1) -> list[float | None]:
    """Rounded floats as a list, None where not finite (vectorised: one pass in numpy, one in Python)."""
    rounded = np.round(np.where(np.isfinite(values), values, np.nan), digits).tolist()
    return [None if v != v else v for v in rounded]  # NaN != NaN


def _stats(values: np.ndarray) -> dict:
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return {"median_s": None, "p90_s": None, "mean_s": None}
    return {"median_s": _num(np.median(finite)), "p90_s": _num(np.percentile(finite, 90)),
            "mean_s": _num(finite.mean())}


def _within_norm(norm: dict | None, secs: np.ndarray, metres: np.ndarray) -> np.ndarray | None:
    if norm is None:
        return None
    ok = np.isfinite(secs)
    if norm["max_walk_radius_m"] is not None:
        ok &= metres <= norm["max_walk_radius_m"]
    if norm["max_walk_time_min"] is not None:
        ok &= secs <= norm["max_walk_time_min"] * 60.0
    return ok


def _share(mask: np.ndarray, weights: np.ndarray) -> float | None:
    total = weights.sum()
    return round(float(weights[mask].sum() / total), 4) if total > 0 else None


def _check_lonlat(lon: float, lat: float) -> None:
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise InvalidParameterValue(f"lon/lat out of range: {lon}, {lat}")


def _snap_point(network: Network, lon: float, lat: float) -> Snaps:
    _check_lonlat(lon, lat)
    point = snap(network, np.array([lon]), np.array([lat]))
    if point.access_m[0] > MAX_ACCESS_M:
        raise InvalidParameterValue(f"the point ({lon}, {lat}) is {point.access_m[0]:.0f} m from the nearest "
                                    f"street of the network, more than {MAX_ACCESS_M:.0f} m")
    return point


def snap_point(network: Network, lon: float, lat: float) -> Snaps:
    """One point snapped onto `network`; InvalidParameterValue when lon/lat is out of range or the point lies more
    than MAX_ACCESS_M from the nearest street (for services outside this module, e.g. planning.site_service)."""
    return _snap_point(network, lon, lat)


# --- services -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Setting:
    territory: Territory | None
    network: Network
    homes: Buildings
    facilities: Facilities


def _homes_and_facilities(conn: Connection, engine: Engine, principal: Principal, facility_type: str, mode: str,
                          territory_oktmo: str | None) -> _Setting:
    """What a per-building measure to one facility type needs: the territory, its (cached) network, the
    residential buildings' and the facilities' snaps; refuses an unknown type or an empty territory first."""
    _check_type(conn, facility_type)
    territory = _territory(conn, territory_oktmo)
    _require_homes(conn, principal, territory)
    network = _network(conn, engine, principal, mode, territory)
    homes = _buildings(conn, engine, principal, network, territory)
    return _Setting(territory, network, homes,
                    _facilities_cached(conn, engine, principal, network, facility_type, territory))


def nearest_facility(engine: Engine, principal: Principal, facility_type: str, mode: str = "walk",
                     territory_oktmo: str | None = None, k: int = 1) -> dict:
    """Per residential building: time, distance and id of the nearest facility of a type (k > 1: the k nearest,
    times and ids), and a summary (median/p90 times, share of residents within the planning norm)."""
    _check_mode(mode)
    if not 1 <= int(k) <= 10:
        raise InvalidParameterValue(f"k must be between 1 and 10, got {k}")
    with reader(engine).connect() as conn:
        setting = _homes_and_facilities(conn, engine, principal, facility_type, mode, territory_oktmo)
        norm = _norm(conn, facility_type, setting.territory)
    territory, network, homes, fac = setting.territory, setting.network, setting.homes, setting.facilities
    secs, metres, target = acc.nearest(network, homes.snaps, fac.snaps)
    ids, residents = homes.ids.tolist(), homes.residents.astype(int).tolist()
    access = _column(homes.snaps.access_m)
    if k == 1:
        fac_ids = np.where(target >= 0, fac.ids[np.maximum(target, 0)], -1).tolist()
        rows = [{"id": i, "residents": r, "seconds": s_, "metres": m, "facility_id": f if f >= 0 else None,
                 "access_m": a} for i, r, s_, m, f, a in zip(ids, residents, _column(secs), _column(metres),
                                                            fac_ids, access, strict=True)]
    else:
        k_secs, k_idx = acc.k_nearest(network, homes.snaps, fac.snaps, int(k))
        k_ids = np.where(k_idx >= 0, fac.ids[np.maximum(k_idx, 0)], -1).tolist()
        rows = [{"id": i, "residents": r, "seconds": _column(ks), "facility_ids": [f if f >= 0 else None for f in kf],
                 "access_m": a} for i, r, ks, kf, a in zip(ids, residents, k_secs, k_ids, access, strict=True)]
    within = _within_norm(norm, secs, metres) if mode == "walk" else None
    summary = {"buildings": len(homes.ids), "residents": int(homes.residents.sum()),
               "facilities": len(fac.ids), "reached": int(np.isfinite(secs).sum()),
               "unreachable": int((~np.isfinite(secs)).sum()), **_stats(secs),
               "norm": norm,
               "share_residents_within_norm": None if within is None else _share(within, homes.residents),
               "share_buildings_within_norm": None if within is None else _share(within, np.ones(len(secs)))}
    if mode != "walk" and norm is not None:
        summary["note"] = "the planning norm is a walking distance: no share is given for driving"
    return {"facility_type": facility_type, "mode": mode, "k": int(k),
            "territory": territory.describe() if territory else None, "buildings": rows, "summary": summary}


def isochrone(engine: Engine, principal: Principal, lon: float | None = None, lat: float | None = None,
              facility_id: int | None = None, minutes: float = 15, mode: str = "walk") -> dict:
    """The GeoJSON geometry (lon/lat) reachable within `minutes` from a point or a facility."""
    _check_mode(mode)
    if not 1 <= minutes <= 60:
        raise InvalidParameterValue(f"minutes must be between 1 and 60, got {minutes}")
    if (facility_id is None) == (lon is None or lat is None):
        raise InvalidParameterValue("give either lon and lat, or facility_id")
    with reader(engine).connect() as conn:
        if facility_id is not None:
            lon, lat = _facility_point(conn, principal, int(facility_id))
        network = _network(conn, engine, principal, mode, None)
    start = _snap_point(network, float(lon), float(lat))
    return mapping(acc.isochrone(network, start, minutes))


def _facility_point(conn: Connection, principal: Principal, facility_id: int) -> tuple[float, float]:
    rule = _rule(principal, "facilities")
    row = conn.execute(text(f"SELECT ST_X(t.geom), ST_Y(t.geom) FROM cdt.facilities t "
                            f"WHERE t.id = :fid{_where(rule)}"), {**rule.params, "fid": facility_id}).first()
    if row is None:
        raise InvalidParameterValue(f"no facility with id {facility_id}")
    return float(row[0]), float(row[1])


def neighbourhood(engine: Engine, principal: Principal, lon: float, lat: float) -> dict:
    """Walking times from a point (a home clicked on the map) to the nearest of each daily need, its 15-minute
    score and the median score of the city's residential buildings to compare."""
    _check_lonlat(lon, lat)
    with reader(engine).connect() as conn:
        known = set(_known_types(conn))
        territory = _territory_at(conn, lon, lat)
        network = _network(conn, engine, principal, "walk", None)
        point = _snap_point(network, lon, lat)
        services, times = {}, {}
        for kind in ESSENTIAL_TYPES:
            if kind not in known:
                services[kind] = {"status": "missing", "reason": f"'{kind}' is not a facility type of "
                                  "cdt.facility_types: the data has no layer of these"}
                continue
            fac = _facilities_cached(conn, engine, principal, network, kind, None, required=False)
            if fac is None:
                services[kind] = {"status": "missing", "reason": f"no facilities of type '{kind}' in the data"}
                continue
            secs, metres, target = acc.nearest(network, point, fac.snaps)
            times[kind] = secs
            j = int(target[0])
            services[kind] = {"status": "ok" if j >= 0 else "unreachable", "seconds": _num(secs[0]),
                              "metres": _num(metres[0]), "facility_id": int(fac.ids[j]) if j >= 0 else None,
                              "name": fac.names[j] if j >= 0 else None,
                              "within_15_min": bool(secs[0] <= FIFTEEN_MIN_S)}
    missing = [k for k, v in services.items() if v["status"] == "missing"]
    score = _num(acc.fifteen_minute_score(times, FIFTEEN_MIN_S)[0]) if times else None
    city = None
    if times:
        city_scores = fifteen_minute_scores(engine, principal, territory.oktmo if territory else None)
        city = {"territory": city_scores["territory"], "median_score": city_scores["summary"]["median"],
                "buildings": city_scores["summary"]["buildings"]}
    return {"point": {"lon": lon, "lat": lat, "access_m": _num(point.access_m[0])}, "mode": "walk",
            "services": services, "score": score, "score_types": sorted(times), "missing": missing,
            "city": city}


def nearest_times(conn: Connection, engine: Engine, principal: Principal, territory_oktmo: str | None,
                  types: Sequence[str], mode: str, fresh: bool = False) -> tuple[Buildings, dict[str, np.ndarray]]:
    """Seconds from every residential building to the nearest facility of each of `types` that has facilities
    (the others are left out), on the caller's connection. `fresh`: buildings and facilities read anew, not
    from the cache (whose fingerprint is rechecked only every few seconds): a scenario's sandbox sees its edits."""
    _check_mode(mode)
    known = set(_known_types(conn))
    territory = _territory(conn, territory_oktmo)
    _require_homes(conn, principal, territory)
    network = _network(conn, engine, principal, mode, territory)
    homes = (_load_buildings(conn, principal, network, territory) if fresh
             else _buildings(conn, engine, principal, network, territory))
    times = {}
    for kind in types:
        if kind not in known:
            continue
        fac = (_facilities(conn, principal, network, kind, territory, required=False) if fresh
               else _facilities_cached(conn, engine, principal, network, kind, territory, required=False))
        if fac is not None:
            times[kind] = acc.nearest(network, homes.snaps, fac.snaps)[0]
    return homes, times


@dataclass(frozen=True)
class DailyNeeds:
    territory: Territory | None
    homes: Buildings
    times: dict[str, np.ndarray]  # daily-need type -> walking seconds from each home (inf: unreachable)
    scores: np.ndarray  # the 15-minute score of each home


def daily_need_times(engine: Engine, principal: Principal, territory_oktmo: str | None = None) -> DailyNeeds:
    """Walking seconds from every residential building to the nearest facility of each daily-need type present
    in the data, and the 15-minute score (0..100: the share of those types reachable within 15 minutes)."""
    with reader(engine).connect() as conn:
        known = set(_known_types(conn))
        territory = _territory(conn, territory_oktmo)
        _require_homes(conn, principal, territory)
        network = _network(conn, engine, principal, "walk", territory)
        homes = _buildings(conn, engine, principal, network, territory)
        times = {}
        for kind in ESSENTIAL_TYPES:
            fac = (_facilities_cached(conn, engine, principal, network, kind, territory, required=False)
                   if kind in known else None)
            if fac is not None:
                times[kind] = acc.nearest(network, homes.snaps, fac.snaps)[0]
    if not times:
        raise InvalidParameterValue(f"none of the daily-need types ({', '.join(ESSENTIAL_TYPES)}) has facilities "
                                    "in " + (f"territory {territory.oktmo}" if territory else "the database"))
    return DailyNeeds(territory, homes, times, acc.fifteen_minute_score(times, FIFTEEN_MIN_S))


def fifteen_minute_scores(engine: Engine, principal: Principal, territory_oktmo: str | None = None) -> dict:
    """The 15-minute walking score of each residential building (see daily_need_times), with mean/median per
    territory and overall."""
    needs = daily_need_times(engine, principal, territory_oktmo)
    territory, homes, times, scores = needs.territory, needs.homes, needs.times, needs.scores
    with reader(engine).connect() as conn:
        names = dict(conn.execute(text("SELECT id, name FROM cdt.territories")).all())
    per_territory = []
    for tid in np.unique(homes.territory_ids):
        sel = homes.territory_ids == tid
        per_territory.append({"territory_id": int(tid) or None, "name": names.get(int(tid)),
                              **_score_stats(scores[sel], homes.residents[sel])})
    return {"territory": territory.describe() if territory else None, "types": sorted(times),
            "missing": [k for k in ESSENTIAL_TYPES if k not in times], "threshold_s": FIFTEEN_MIN_S,
            "buildings": [{"id": i, "score": v} for i, v in zip(homes.ids.tolist(), _column(scores), strict=True)],
            "per_territory": per_territory, "summary": _score_stats(scores, homes.residents)}


def _score_stats(scores: np.ndarray, residents: np.ndarray) -> dict:
    weighted = float((scores * residents).sum() / residents.sum()) if residents.sum() > 0 else None
    return {"buildings": int(len(scores)), "mean": _num(scores.mean()), "median": _num(np.median(scores)),
            "residents_mean": None if weighted is None else round(weighted, 1)}


CATCHMENT_METHODS = ("2sfca", "gravity")


def catchment_accessibility(engine: Engine, principal: Principal, facility_type: str, method: str = "2sfca",
                            minutes: float = 15.0, beta: float = 0.1, territory_oktmo: str | None = None,
                            mode: str = "walk") -> dict:
    """Capacity-aware accessibility of every residential building to a facility type, on the network:

    - `2sfca` (Luo & Wang 2003): facility capacity per resident within its `minutes` catchment, summed over the
      catchments a building lies in: places per resident reachable (compare with the norm per 1,000 / 1,000);
    - `gravity` (Hansen 1959): sum of capacities decayed by exp(-beta × minutes), over facilities within
      `minutes` × 4 (farther ones add less than e^-(4·beta·minutes)).

    Facilities without a capacity count as capacity 0 (said in the summary)."""
    _check_mode(mode)
    if method not in CATCHMENT_METHODS:
        raise InvalidParameterValue(f"method must be one of {', '.join(CATCHMENT_METHODS)}, got '{method}'")
    if not 1 <= minutes <= 120:
        raise InvalidParameterValue(f"minutes must be between 1 and 120, got {minutes}")
    with reader(engine).connect() as conn:
        setting = _homes_and_facilities(conn, engine, principal, facility_type, mode, territory_oktmo)
    network, homes, fac = setting.network, setting.homes, setting.facilities
    capacity = np.nan_to_num(np.asarray(fac.capacities, dtype=float), nan=0.0)
    limit_s = minutes * 60 * (4 if method == "gravity" else 1)
    times_min = acc.travel_times(network, homes.snaps, fac.snaps, limit=limit_s) / 60
    if method == "2sfca":
        index = acc.two_step_fca(times_min, homes.residents, capacity, minutes)
        unit = f"places per resident within {minutes:g} min"
    else:
        index = acc.gravity(times_min, capacity, beta)
        unit = f"capacity weighted by exp(-{beta:g} x minutes)"
    rows = [{"id": i, "index": v} for i, v in zip(homes.ids.tolist(), _column(index, 6), strict=True)]
    return {"facility_type": facility_type, "method": method, "unit": unit, "buildings": rows,
            "summary": {"buildings": len(rows), "facilities": len(fac.ids),
                        "facilities_without_capacity": int(np.sum(~np.isfinite(np.asarray(fac.capacities,
                                                                                            dtype=float)))),
                        **{k: _num(v, 6) for k, v in (("mean", float(index.mean())),
                                                      ("median", float(np.median(index))),
                                                      ("residents_weighted_mean",
                                                       float((index * homes.residents).sum()
                                                             / max(homes.residents.sum(), 1))))}}}
