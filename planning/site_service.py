"""Investment appeal of a site: the raw facts from the database, scored by `planning.site_score`.

A site is a cadastral parcel (`parcel_id` or `cadastral_number`) or a point (`lon`, `lat`); a point inside a parcel
the caller may read is that parcel. Everything is read through the access rules of `layers.access` (a layer the
caller may not read, e.g. the restricted utility networks for the public, makes its facts unknown, never an error).

Facts, each measured by PostGIS (distances on geography; candidates by the KNN operator `<->` on the GiST indexes,
the nearest COVERAGE_CANDIDATES by planar distance re-ranked by geodesic distance: at 60°N a degree of longitude is
half a degree of latitude, so the planar order alone could pick the wrong one):
- accessibility: metres from the site to the nearest drivable street edge and to the nearest railway; minutes by car
  and on foot over the street network (`spatial.access_service.network_for`, cached) from the site (its point on
  surface, snapped) to the centre of its territory (`cdt.territories.centre`, of the territory or its nearest
  ancestor that has one); minutes on foot to the nearest public transport stop (facilities of type 'stop').
- utilities: per kind (heat, power, gas, water, sewer) metres to the nearest utility line or node of the kind, or
  boiler house (heat) / substation (power), with the capacity and load of that object and of the nearest source.
- zoning: the ПЗЗ zone and the functional zone that cover most of the parcel (or contain the point).
- land: the parcel's land category code (from its name when only the name was loaded).

Coverage: these layers are city-scale data. Nothing of a layer (or kind) within COVERAGE_M of the site means the
data does not cover the area, so the fact is unknown, not "25 km away".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, Engine, text

from layers import registry
from layers.access import Principal, ReadRule, Unauthorized, read_rule
from layers.db import reader
from layers.errors import Forbidden, InvalidParameterValue, NotFound
from layers.models.utilities import UTILITY_KINDS
from planning import site_score as ss
from spatial import access_service
from spatial import accessibility as acc
from spatial.network import snap

COVERAGE_M = 25_000.0
COVERAGE_CANDIDATES = 25
MIN_ZONE_SHARE = 0.001  # a zone that only touches the parcel's edge does not count
# Facility types that are sources of a utility kind.
SOURCE_TYPES = {"heat": "boiler_house", "power": "substation"}
STOP_TYPE = "stop"


@dataclass(frozen=True)
class Site:
    kind: str  # "parcel" or "point"
    geom: str  # hex EWKB in EPSG:4326: the parcel, or the point
    lon: float  # the point the network starts from (a parcel's point on surface)
    lat: float
    parcel: dict | None
    territory: dict | None  # {id, oktmo, name}
    centre: dict | None  # {oktmo, name, lon, lat} of the territory or its nearest ancestor with a centre
    geometry: dict | None  # GeoJSON, for the map


# --- reading ------------------------------------------------------------------------------------------------
def _rule(principal: Principal, layer: str) -> ReadRule:
    return read_rule(principal, registry.get(layer))


def _where(rule: ReadRule) -> str:
    return f" AND ({rule.sql})" if rule.sql else ""


def _readable(principal: Principal, layer: str) -> tuple[ReadRule | None, str | None]:
    """The read rule, or None and why the caller may not read the layer."""
    try:
        return _rule(principal, layer), None
    except (Unauthorized, Forbidden) as exc:
        return None, f"{layer} not visible to you: {exc.detail}"


_PARCEL_COLUMNS = """t.id, t.cadastral_number, t.address, t.area_m2, t.permitted_use, t.land_category,
    coalesce(t.land_category_code, (SELECT c.code FROM cdt.land_categories c
                                    WHERE lower(c.name) = lower(trim(t.land_category)))) AS land_code,
    t.territory_id, encode(ST_AsEWKB(t.geom), 'hex') AS geom, ST_AsGeoJSON(t.geom, 7) AS geojson,
    ST_X(ST_PointOnSurface(t.geom)) AS lon, ST_Y(ST_PointOnSurface(t.geom)) AS lat"""


def _parcel(conn: Connection, principal: Principal, where: str, params: dict):
    rule = _rule(principal, "parcels")
    row = conn.execute(text(f"SELECT {_PARCEL_COLUMNS} FROM cdt.parcels t WHERE {where}{_where(rule)} "
                            f"ORDER BY t.area_m2 NULLS LAST, t.id LIMIT 1"), {**rule.params, **params}).first()
    if row is not None and row.geom is None:
        raise InvalidParameterValue(f"parcel {row.cadastral_number} has no geometry: its site cannot be scored")
    return row


def _territory_chain(conn: Connection, territory_id: int) -> tuple[dict, dict | None]:
    rows = conn.execute(text("""
        WITH RECURSIVE up AS (
            SELECT id, parent_id, 0 AS depth FROM cdt.territories WHERE id = :tid
            UNION ALL SELECT p.id, p.parent_id, up.depth + 1 FROM cdt.territories p JOIN up ON p.id = up.parent_id
                      WHERE up.depth < 20)
        SELECT t.id, t.oktmo, t.name, ST_X(t.centre) AS lon, ST_Y(t.centre) AS lat
        FROM up JOIN cdt.territories t ON t.id = up.id ORDER BY up.depth"""), {"tid": territory_id}).all()
    own = {"id": rows[0].id, "oktmo": rows[0].oktmo, "name": rows[0].name}
    centre = next(({"id": r.id, "oktmo": r.oktmo, "name": r.name, "lon": r.lon, "lat": r.lat}
                   for r in rows if r.lon is not None), None)
    return own, centre


def _territory_at(conn: Connection, lon: float, lat: float) -> int | None:
    """The smallest territory whose boundary covers the point (the deepest of the hierarchy)."""
    return conn.execute(text("""
        SELECT id FROM cdt.territories WHERE boundary IS NOT NULL
          AND ST_Covers(boundary, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))
        ORDER BY ST_Area(boundary), id LIMIT 1"""), {"lon": lon, "lat": lat}).scalar()


def resolve_site(conn: Connection, principal: Principal, parcel_id: int | None = None,
                 cadastral_number: str | None = None, lon: float | None = None, lat: float | None = None) -> Site:
    """The site of the inputs: exactly one of parcel_id, cadastral_number, or lon with lat."""
    forms = [parcel_id is not None, cadastral_number is not None, lon is not None or lat is not None]
    if sum(forms) != 1:
        raise InvalidParameterValue("give exactly one site: parcel_id, cadastral_number, or lon and lat")
    if forms[2] and (lon is None or lat is None):
        raise InvalidParameterValue("give both lon and lat")
    row = None
    if parcel_id is not None:
        row = _parcel(conn, principal, "t.id = :pid", {"pid": int(parcel_id)})
        if row is None:
            raise NotFound(f"no parcel with id {parcel_id}")
    elif cadastral_number is not None:
        row = _parcel(conn, principal, "t.cadastral_number = :cn", {"cn": cadastral_number.strip()})
        if row is None:
            raise NotFound(f"no parcel with cadastral number {cadastral_number}")
    else:
        lon, lat = float(lon), float(lat)
        if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
            raise InvalidParameterValue(f"lon/lat out of range: {lon}, {lat}")
        row = _parcel(conn, principal, "ST_Covers(t.geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326))",
                      {"lon": lon, "lat": lat})
    if row is not None:
        territory_id = row.territory_id or _territory_at(conn, row.lon, row.lat)
        parcel = {"id": row.id, "cadastral_number": row.cadastral_number, "address": row.address,
                  "area_m2": None if row.area_m2 is None else round(row.area_m2, 1),
                  "land_category": row.land_category, "land_category_code": row.land_code,
                  "permitted_use": row.permitted_use}
        own, centre = _territory_chain(conn, territory_id) if territory_id else (None, None)
        return Site("parcel", row.geom, float(row.lon), float(row.lat), parcel, own, centre,
                    json.loads(row.geojson))
    territory_id = _territory_at(conn, lon, lat)
    if territory_id is None:
        raise InvalidParameterValue(f"the point ({lon}, {lat}) lies outside every territory with a boundary and in "
                                    "no cadastral parcel: there is no data to score it against")
    point = conn.execute(text("SELECT encode(ST_AsEWKB(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)), 'hex')"),
                         {"lon": lon, "lat": lat}).scalar()
    own, centre = _territory_chain(conn, territory_id)
    return Site("point", point, lon, lat, None, own, centre, {"type": "Point", "coordinates": [lon, lat]})


def _nearest(conn: Connection, site: Site, table: str, rule: ReadRule, columns: str, where: str = "",
             params: dict | None = None) -> dict | None:
    """The nearest row (geodesic metres in `metres`) of `table` under `rule` and `where`, or None."""
    row = conn.execute(text(f"""
        SELECT c.*, ST_Distance(c.g::geography, CAST(:site AS geometry)::geography) AS metres
        FROM (SELECT {columns}, t.geom AS g FROM {table} t WHERE true{where}{_where(rule)}
              ORDER BY t.geom <-> CAST(:site AS geometry) LIMIT {COVERAGE_CANDIDATES}) c
        ORDER BY metres, c.id LIMIT 1"""), {**rule.params, **(params or {}), "site": site.geom}).mappings().first()
    if row is None:
        return None
    out = {k: v for k, v in row.items() if k != "g"}
    out["metres"] = round(float(out["metres"]), 1)
    return out


def _covered(fact: dict | None, what: str) -> ss.Fact:
    if fact is None or fact["metres"] > COVERAGE_M:
        return ss.Fact(None, f"no {what} within {COVERAGE_M / 1000:.0f} km in the data")
    return ss.Fact(fact["metres"], detail={"id": fact["id"], **({"name": fact["name"]} if fact.get("name") else {})})


# --- accessibility ------------------------------------------------------------------------------------------
def _network_facts(engine: Engine, principal: Principal, site: Site, stops: list[tuple[float, float]] | None,
                   stop_reason: str | None) -> dict[str, ss.Fact]:
    """Minutes by car and on foot to the territory centre, and on foot to the nearest stop."""
    out: dict[str, ss.Fact] = {}
    centre = site.centre
    for mode, key in (("drive", "drive_centre_min"), ("walk", "walk_centre_min")):
        if centre is None:
            out[key] = ss.Fact(None, "the site's territory and its ancestors have no centre")
            if mode == "walk":
                out["stop_walk_min"] = ss.Fact(None, stop_reason or "no territory to load a street network for")
            continue
        try:
            network = access_service.network_for(engine, principal, mode, centre["oktmo"])
            start = access_service.snap_point(network, site.lon, site.lat)
        except InvalidParameterValue as exc:
            out[key] = ss.Fact(None, exc.detail)
            if mode == "walk":
                out["stop_walk_min"] = ss.Fact(None, stop_reason or exc.detail)
            continue
        try:
            target = access_service.snap_point(network, centre["lon"], centre["lat"])
            secs, metres, _ = acc.nearest(network, start, target)
            out[key] = (ss.Fact(round(float(secs[0]) / 60, 2), detail={"metres": round(float(metres[0]))})
                        if np.isfinite(secs[0]) else
                        ss.Fact(None, f"the street network does not connect the site to the centre ({mode})"))
        except InvalidParameterValue as exc:
            out[key] = ss.Fact(None, f"territory centre: {exc.detail}")
        if mode == "walk":
            if not stops:
                out["stop_walk_min"] = ss.Fact(None, stop_reason or "no stops")
                continue
            lon, lat = np.array([s[0] for s in stops]), np.array([s[1] for s in stops])
            secs, _, _ = acc.nearest(network, start, snap(network, lon, lat))
            out["stop_walk_min"] = (ss.Fact(round(float(secs[0]) / 60, 2)) if np.isfinite(secs[0]) else
                                    ss.Fact(None, "no stop is connected to the site by the street network"))
    return out


def _stops(conn: Connection, principal: Principal, site: Site) -> tuple[list[tuple[float, float]], str | None]:
    if conn.execute(text("SELECT 1 FROM cdt.facility_types WHERE code = :c"), {"c": STOP_TYPE}).first() is None:
        return [], f"no facility type '{STOP_TYPE}' in cdt.facility_types: stops are not in the data"
    rule = _rule(principal, "facilities")
    rows = conn.execute(text(f"""
        SELECT ST_X(t.geom), ST_Y(t.geom) FROM cdt.facilities t WHERE t.type_code = :c{_where(rule)}
          AND ST_DWithin(t.geom::geography, CAST(:site AS geometry)::geography, :r)
        ORDER BY t.geom <-> CAST(:site AS geometry) LIMIT {COVERAGE_CANDIDATES}"""),
        {**rule.params, "c": STOP_TYPE, "site": site.geom, "r": COVERAGE_M}).all()
    if not rows:
        return [], f"no facilities of type '{STOP_TYPE}' within {COVERAGE_M / 1000:.0f} km"
    return [(float(x), float(y)) for x, y in rows], None


def _accessibility(conn: Connection, engine: Engine, principal: Principal, site: Site) -> ss.Component:
    street = _nearest(conn, site, "cdt.street_edges", _rule(principal, "street_edges"), "t.id, t.name",
                      " AND t.drive")
    railway = _nearest(conn, site, "cdt.railways", _rule(principal, "railways"), "t.id, t.name")
    stops, stop_reason = _stops(conn, principal, site)
    net = _network_facts(engine, principal, site, stops, stop_reason)
    return ss.accessibility(_covered(street, "drivable street"), net["drive_centre_min"], net["walk_centre_min"],
                            _covered(railway, "railway"), net["stop_walk_min"])


# --- utilities ----------------------------------------------------------------------------------------------
def _nearest_by_kind(conn: Connection, site: Site, table: str, rule: ReadRule, columns: str, key_sql: str,
                     keys: list[str]) -> dict[str, dict]:
    """Per key (a utility kind or a facility type): its nearest row under `rule`, one query for all keys."""
    rows = conn.execute(text(f"""
        SELECT k.key, best.* FROM unnest(CAST(:keys AS text[])) AS k(key) CROSS JOIN LATERAL (
            SELECT c.*, ST_Distance(c.g::geography, CAST(:site AS geometry)::geography) AS metres
            FROM (SELECT {columns}, t.geom AS g FROM {table} t WHERE {key_sql} = k.key{_where(rule)}
                  ORDER BY t.geom <-> CAST(:site AS geometry) LIMIT {COVERAGE_CANDIDATES}) c
            ORDER BY metres, c.id LIMIT 1) best"""), {**rule.params, "keys": keys, "site": site.geom}).mappings()
    return {r["key"]: {k: (round(float(v), 1) if k == "metres" else v) for k, v in r.items() if k not in ("g", "key")}
            for r in rows}


def _describe(layer: str, row: dict) -> dict:
    out = {"layer": layer, "id": row["id"], "metres": row["metres"]}
    for key in ("name", "node_type", "capacity", "load", "unit"):
        if row.get(key) is not None:
            out[key] = row[key]
    return out


def _utilities(conn: Connection, principal: Principal, site: Site) -> ss.Component:
    kinds = list(UTILITY_KINDS)
    found: dict[str, list[dict]] = {k: [] for k in kinds}
    hidden = []
    for layer, table, columns in (
            ("utility_lines", "cdt.utility_lines", "t.id, NULL::text AS name, NULL::text AS node_type, t.capacity, "
                                                   "t.load, t.unit"),
            ("utility_nodes", "cdt.utility_nodes", "t.id, t.name, t.node_type, t.capacity, t.load, t.unit")):
        rule, why = _readable(principal, layer)
        if rule is None:
            hidden.append(layer)
            continue
        for kind, row in _nearest_by_kind(conn, site, table, rule, columns, "t.kind", kinds).items():
            found[kind].append(_describe(layer, row))
    sources = _nearest_by_kind(conn, site, "cdt.facilities", _rule(principal, "facilities"),
                               "t.id, t.name, t.capacity, NULL::float AS load, t.capacity_unit AS unit",
                               "t.type_code", list(SOURCE_TYPES.values()))
    by_kind = {}
    for kind in kinds:
        source = sources.get(SOURCE_TYPES.get(kind, ""))
        candidates = found[kind] + ([_describe(f"facilities:{SOURCE_TYPES[kind]}", source)] if source else [])
        candidates = [c for c in candidates if c["metres"] <= COVERAGE_M]
        if not candidates:
            by_kind[kind] = ss.Fact(None, f"no line, node{' or source' if kind in SOURCE_TYPES else ''} of the "
                                          f"kind {'you may read ' if hidden else ''}within {COVERAGE_M / 1000:.0f} km")
            continue
        nearest = min(candidates, key=lambda c: c["metres"])
        cap, load = nearest.get("capacity"), nearest.get("load")
        detail = {"nearest": nearest, "no_spare": cap is not None and load is not None and load >= cap}
        node_sources = [c for c in candidates if c["layer"] != "utility_lines"]
        if node_sources:
            detail["source"] = min(node_sources, key=lambda c: c["metres"])
        by_kind[kind] = ss.Fact(nearest["metres"], detail=detail)
    note = (f"{' and '.join(hidden)} are restricted layers you may not read: only boiler houses and substations "
            "were measured" if hidden else None)
    return ss.utilities(by_kind, note)


# --- zoning and land ----------------------------------------------------------------------------------------
def _covering_zone(conn: Connection, principal: Principal, site: Site, layer: str, columns: str) -> dict | None:
    rule = _rule(principal, layer)
    row = conn.execute(text(f"""
        SELECT {columns}, CASE WHEN GeometryType(s.g) IN ('POINT', 'MULTIPOINT') THEN 1.0
                   ELSE ST_Area(ST_Intersection(t.geom, s.g)::geography) / nullif(ST_Area(s.g::geography), 0)
               END AS share
        FROM cdt.{layer} t, (SELECT CAST(:site AS geometry) AS g) s
        WHERE ST_Intersects(t.geom, s.g){_where(rule)}
        ORDER BY share DESC NULLS LAST, t.id LIMIT 1"""), {**rule.params, "site": site.geom}).mappings().first()
    if row is None or (row["share"] or 0) < MIN_ZONE_SHARE:
        return None
    return {k: (round(float(v), 3) if k == "share" else v) for k, v in row.items() if v is not None}


def _zoning(conn: Connection, principal: Principal, site: Site) -> ss.Component:
    zone = _covering_zone(conn, principal, site, "zoning_zones",
                          "t.id, t.zone_code, t.name, t.main_uses, t.conditional_uses, t.max_floors, "
                          "t.max_coverage_pct")
    functional = _covering_zone(conn, principal, site, "functional_zones", "t.id, t.zone_type, t.name, t.status")
    return ss.zoning(
        ss.Fact(zone["zone_code"], detail=zone) if zone else ss.Fact(None, "no zoning (ПЗЗ) zone covers the site"),
        ss.Fact(functional["zone_type"], detail=functional) if functional else
        ss.Fact(None, "no functional zone of the master plan covers the site"))


def _land(site: Site) -> ss.Component:
    if site.parcel is None:
        return ss.land(ss.Fact(None, "the point lies in no cadastral parcel"))
    code = site.parcel["land_category_code"]
    if code is None:
        return ss.land(ss.Fact(None, f"parcel {site.parcel['cadastral_number']} has no land category"))
    return ss.land(ss.Fact(code, detail={"name": site.parcel["land_category"]} if site.parcel["land_category"]
                           else {}))


# --- the service --------------------------------------------------------------------------------------------
def site_appeal(engine: Engine, principal: Principal, *, parcel_id: int | None = None,
                cadastral_number: str | None = None, lon: float | None = None, lat: float | None = None,
                weights: dict | None = None, conn: Connection | None = None) -> dict:
    """The investment-appeal score of a site (see planning.site_score) with its components, weights, and the site.
    `conn`: read through this connection (e.g. a test's transaction) instead of a new one; the street networks
    come from `spatial.access_service`'s cache either way."""
    ss.check_weights(weights)  # refuse bad weights before any reading
    if conn is None:
        with reader(engine).connect() as own:
            return site_appeal(engine, principal, parcel_id=parcel_id, cadastral_number=cadastral_number, lon=lon,
                               lat=lat, weights=weights, conn=own)
    site = resolve_site(conn, principal, parcel_id, cadastral_number, lon, lat)
    components = [_accessibility(conn, engine, principal, site), _utilities(conn, principal, site),
                  _zoning(conn, principal, site), _land(site)]
    try:
        result = ss.composite(components, weights).to_json()
    except InvalidParameterValue as exc:
        if all(not c.known for c in components):  # nothing at all: the site is far from any data
            raise InvalidParameterValue(f"no data about the site ({site.lon:.5f}, {site.lat:.5f}) in CDT: "
                                        f"{exc.detail}") from None
        raise
    result["site"] = {"kind": site.kind, "lon": round(site.lon, 7), "lat": round(site.lat, 7),
                      "parcel": site.parcel, "territory": site.territory,
                      "centre": None if site.centre is None else {k: site.centre[k] for k in
                                                                  ("oktmo", "name", "lon", "lat")},
                      "geometry": site.geometry}
    return result
