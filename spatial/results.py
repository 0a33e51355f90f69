"""Analysis results written as layers: `walk_access` (walking minutes from each residential building to each
daily need, and its 15-minute score) and `service_provision` (demand by norms, served and deficit per
hexagonal district and facility type). Both are registry layers, so the OGC API, vector tiles, exports and the
map read them like any other; a recomputation replaces a territory's rows in one transaction."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, Engine, text

from layers.access import Principal
from layers.db import reader, transaction
from layers.models.results import ACCESS_DESTINATIONS, WALK_TYPES
from spatial import access_service as svc
from spatial.needs_service import needs

# Facility types whose provision is recomputed: those with a demand norm (places per 1,000) in cdt.planning_norms.
NORM_TYPES_SQL = "SELECT DISTINCT type_code FROM cdt.planning_norms WHERE demand_per_1000 IS NOT NULL ORDER BY 1"


def _minutes(seconds: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(s) else round(float(s) / 60, 2) for s in seconds]


def walk_access(engine: Engine, principal: Principal, territory_oktmo: str, actor: str) -> dict:
    """Recompute `walk_access` for the residential buildings of a territory (and its descendants)."""
    daily = svc.daily_need_times(engine, principal, territory_oktmo)
    territory, homes, times, scores = daily.territory, daily.homes, daily.times, daily.scores
    nothing = [None] * len(homes.ids)
    params = {"ids": homes.ids.tolist(), "score": [round(float(s), 1) for s in scores], "scope": list(territory.ids)}
    for kind in WALK_TYPES:
        params[kind] = _minutes(times[kind]) if kind in times else nothing
    columns = ", ".join(f"{k}_min" for k in WALK_TYPES)
    with transaction(engine, actor) as conn:
        conn.execute(text("DELETE FROM cdt.walk_access WHERE territory_id = ANY(:scope) OR building_id = ANY(:ids)"),
                     params)
        conn.execute(text(f"""
            INSERT INTO cdt.walk_access (building_id, residents, {columns}, score_15min, territory_id, geom)
            SELECT b.id, b.residents, {", ".join(f"r.{k}" for k in WALK_TYPES)}, r.score, b.territory_id, b.geom
            FROM unnest(CAST(:ids AS int[]), {", ".join(f"CAST(:{k} AS float8[])" for k in WALK_TYPES)},
                        CAST(:score AS float8[])) AS r(id, {", ".join(WALK_TYPES)}, score)
            JOIN cdt.buildings b ON b.id = r.id"""), params)
    return {"buildings": len(homes.ids), "types": sorted(times), "missing": [k for k in WALK_TYPES if k not in times],
            "median_score": float(np.median(scores)) if len(scores) else None}


def service_provision(engine: Engine, principal: Principal, territory_oktmo: str, actor: str) -> dict:
    """Recompute `service_provision` of a territory for every facility type with a demand norm."""
    with reader(engine).connect() as conn:
        territory = svc._territory(conn, territory_oktmo)
        types = list(conn.execute(text(NORM_TYPES_SQL)).scalars())
    out = {}
    for kind in types:
        result = needs(engine, principal, kind, territory_oktmo)
        rows = [{"hex": str(f["properties"]["hex"]), "geom": json.dumps(f["geometry"]),
                 **{k: f["properties"].get(k) for k in ("residents", "demand", "served", "deficit", "covered_share")}}
                for f in result["districts"]["features"]]
        with transaction(engine, actor) as conn:
            conn.execute(text("DELETE FROM cdt.service_provision WHERE facility_type = :t AND territory_id = :tid"),
                         {"t": kind, "tid": territory.id})
            if rows:
                conn.execute(text("""
                    INSERT INTO cdt.service_provision (facility_type, hex, residents, demand, served, deficit,
                                                       covered_share, territory_id, geom)
                    VALUES (:t, :hex, :residents, :demand, :served, :deficit, :covered_share, :tid,
                            ST_SetSRID(ST_GeomFromGeoJSON(:geom), 4326))"""),
                             [{**r, "t": kind, "tid": territory.id} for r in rows])
        out[kind] = {"districts": len(rows), "deficit": result["summary"]["deficit"],
                     "covered_share": result["summary"].get("covered_share")}
    return out


@dataclass(frozen=True)
class AccessMatrix:
    building_ids: np.ndarray
    territory_ids: np.ndarray
    residents: np.ndarray
    floors: np.ndarray  # 0: unknown
    walk_min: np.ndarray  # buildings x ACCESS_DESTINATIONS, NaN: none in the data or none reachable
    drive_min: np.ndarray


def access_matrix(conn: Connection, engine: Engine, principal: Principal, territory_oktmo: str,
                  fresh: bool = False) -> AccessMatrix:
    """Minutes on foot and by car from every residential building of a territory to the nearest facility of
    each destination type, on the caller's connection (`fresh`: a scenario's sandbox sees its own edits)."""
    both = {mode: svc.nearest_times(conn, engine, principal, territory_oktmo, ACCESS_DESTINATIONS, mode, fresh)
            for mode in ("walk", "drive")}
    homes = both["walk"][0]
    if not np.array_equal(homes.ids, both["drive"][0].ids):
        raise RuntimeError("walk and drive snaps disagree on the residential buildings")
    floors = dict(conn.execute(text("SELECT id, coalesce(floors, 0) FROM cdt.buildings WHERE id = ANY(:ids)"),
                               {"ids": homes.ids.tolist()}).all())

    def minutes(times: dict[str, np.ndarray]) -> np.ndarray:
        out = np.full((len(homes.ids), len(ACCESS_DESTINATIONS)), np.nan)
        for j, kind in enumerate(ACCESS_DESTINATIONS):
            if kind in times:
                out[:, j] = np.where(np.isfinite(times[kind]), times[kind] / 60.0, np.nan)
        return out

    return AccessMatrix(homes.ids, homes.territory_ids, homes.residents,
                        np.array([floors.get(int(i), 0) for i in homes.ids], dtype=np.int64),
                        minutes(both["walk"][1]), minutes(both["drive"][1]))


def building_access(engine: Engine, principal: Principal, territory_oktmo: str, actor: str) -> dict:
    """Recompute `building_access` (the input of the access indicator families) for a territory."""
    from planning.indicators.families import pack_minutes
    with reader(engine).connect() as conn:
        m = access_matrix(conn, engine, principal, territory_oktmo)
        scope = list(svc._territory(conn, territory_oktmo).ids)
    with transaction(engine, actor) as conn:
        conn.execute(text("DELETE FROM cdt.building_access WHERE territory_id = ANY(:scope) "
                          "OR building_id = ANY(:ids)"), {"scope": scope, "ids": m.building_ids.tolist()})
        conn.execute(text("""
            INSERT INTO cdt.building_access (building_id, territory_id, residents, floors, minutes)
            SELECT * FROM unnest(CAST(:ids AS int[]), CAST(:ter AS int[]), CAST(:res AS int[]), CAST(:fl AS int[]),
                                 CAST(:mins AS bytea[]))"""),
                     {"ids": m.building_ids.tolist(), "ter": [int(t) or None for t in m.territory_ids],
                      "res": m.residents.astype(int).tolist(), "fl": m.floors.tolist(),
                      "mins": pack_minutes(m.walk_min, m.drive_min)})
    present = [k for j, k in enumerate(ACCESS_DESTINATIONS) if np.isfinite(m.walk_min[:, j]).any()]
    return {"buildings": len(m.building_ids), "destinations": present}


def refresh(engine: Engine, principal: Principal, territory_oktmo: str, actor: str,
            progress: Callable[[float, str], None] = lambda f, m: None) -> dict:
    """Both result layers of a territory, recomputed from the current buildings, facilities, network and norms."""
    progress(0.05, "walking times to daily needs")
    access = walk_access(engine, principal, territory_oktmo, actor)
    progress(0.35, "provision by planning norms")
    provision = service_provision(engine, principal, territory_oktmo, actor)
    progress(0.7, "travel times for the indicator families")
    matrix = building_access(engine, principal, territory_oktmo, actor)
    progress(1.0, "done")
    return {"territory": territory_oktmo, "walk_access": access, "service_provision": provision,
            "building_access": matrix}


def stale(engine: Engine, territory_oktmo: str) -> bool:
    """Whether the territory's results are missing or older than the data they were computed from."""
    with reader(engine).connect() as conn:
        return bool(conn.execute(text("""
            WITH t AS (SELECT id FROM cdt.territories WHERE oktmo = :o),
                 w AS (SELECT max(created_at) AS at FROM cdt.walk_access x, t WHERE x.territory_id = t.id),
                 a AS (SELECT max(created_at) AS at FROM cdt.building_access x, t WHERE x.territory_id = t.id),
                 res AS (SELECT CASE WHEN w.at IS NULL OR a.at IS NULL THEN NULL ELSE least(w.at, a.at) END AS at
                         FROM w, a),
                 src AS (SELECT greatest((SELECT max(updated_at) FROM cdt.buildings),
                                         (SELECT max(updated_at) FROM cdt.facilities),
                                         (SELECT max(updated_at) FROM cdt.street_edges),
                                         (SELECT max(updated_at) FROM cdt.planning_norms)) AS at)
            SELECT res.at IS NULL OR res.at < src.at FROM res, src"""), {"o": territory_oktmo}).scalar())
