"""Scenarios: named sandboxes of master-plan edits and parameter overrides, compared with the baseline, and goal
seek over their levers.

A scenario's edits are rows of `cdt.scenario_edits`, checked and authorized when recorded (the editor's grants,
the layer's schema, a valid geometry: they are tried in a rolled-back transaction). To compute, the sandbox opens
a transaction, replays the edits with the same validation, applies the levers, computes the indicators and rolls
back: every formula sees the scenario exactly as it would see the base data, and the base data is never changed.
Results are stored with the scenario's id; base values have none.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

from layers import access, edits, registry
from layers.access import ANONYMOUS, Principal
from layers.crs import CRS84
from layers.db import reader, transaction
from layers.errors import Forbidden, InvalidParameterValue, NotFound
from planning import goalseek
from planning.indicators import catalog, engine, families, store

EDITABLE_LAYERS = ("functional_zones", "zoning_zones", "planned_facilities", "buildings", "facilities")


@dataclass(frozen=True)
class Lever:
    name: str
    title: str
    low: float
    high: float
    default: float
    sql: str  # applied in the sandbox; :v the value, :scope the territory ids, :arg the part after ':'


LEVERS: dict[str, Lever] = {lv.name: lv for lv in (
    Lever("population_factor", "Residents × factor (growth or decline of the population)", 0.5, 2.0, 1.0,
          "UPDATE cdt.buildings SET residents = round(residents * :v) WHERE territory_id = ANY(:scope)"),
    Lever("living_area_factor", "Living area × factor (housing construction or demolition)", 0.5, 2.0, 1.0,
          "UPDATE cdt.buildings SET living_area_m2 = living_area_m2 * :v WHERE territory_id = ANY(:scope)"),
    Lever("capacity_factor", "Capacity of the facilities of one type × factor (capacity_factor:<type>)", 0.0, 3.0,
          1.0, "UPDATE cdt.facilities SET capacity = capacity * :v WHERE type_code = :arg "
               "AND territory_id = ANY(:scope)"),
    Lever("demand_norm", "Regional demand norm of one type, per 1,000 residents (demand_norm:<type>)", 0.0, 500.0,
          float("nan"), "UPDATE cdt.planning_norms SET demand_per_1000 = :v WHERE type_code = :arg "
                        "AND demand_per_1000 IS NOT NULL"),
    Lever("include_planned", "Count the master plan's planned facilities (not cancelled) as built: 0 or 1", 0.0,
          1.0, 0.0, "INSERT INTO cdt.facilities (type_code, name, capacity, territory_id, geom, source, source_id) "
                    "SELECT type_code, name, capacity, territory_id, ST_PointOnSurface(geom), 'scenario', "
                    "'planned:' || id "
                    "FROM cdt.planned_facilities WHERE :v >= 0.5 AND coalesce(status, '') <> 'cancelled' "
                    "AND territory_id = ANY(:scope)"),
)}


def lever(name: str) -> tuple[Lever, str | None]:
    base, _, arg = name.partition(":")
    if base not in LEVERS:
        raise InvalidParameterValue(f"unknown lever '{name}'; known: {', '.join(sorted(LEVERS))} "
                                    "(capacity_factor and demand_norm take ':<facility type>')")
    needs_arg = ":arg" in LEVERS[base].sql
    if needs_arg != bool(arg):
        raise InvalidParameterValue(f"lever '{base}' {'needs' if needs_arg else 'takes no'} ':<facility type>'")
    return LEVERS[base], arg or None


def check_parameters(conn: Connection, parameters: object) -> dict[str, float]:
    if not isinstance(parameters, Mapping):
        raise InvalidParameterValue("scenario parameters must be an object of lever name -> number")
    out = {}
    types = set(conn.execute(text("SELECT code FROM cdt.facility_types")).scalars())
    for name, value in parameters.items():
        lv, arg = lever(str(name))
        if arg is not None and arg not in types:
            raise InvalidParameterValue(f"lever '{name}': unknown facility type '{arg}'")
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise InvalidParameterValue(f"lever '{name}' must be a finite number")
        if not lv.low <= value <= lv.high:
            raise InvalidParameterValue(f"lever '{name}' must be between {lv.low:g} and {lv.high:g}, got {value}")
        out[str(name)] = float(value)
    return out


# --- scenarios and their edits -------------------------------------------------------------------------------

def get(conn: Connection, scenario_id: int) -> dict:
    row = conn.execute(text("SELECT s.id, s.name, s.description, s.territory_id, t.oktmo, s.parameters, "
                            "s.created_by, s.created_at FROM cdt.scenarios s "
                            "LEFT JOIN cdt.territories t ON t.id = s.territory_id WHERE s.id = :i"),
                       {"i": scenario_id}).first()
    if row is None:
        raise NotFound(f"no scenario with id {scenario_id}")
    out = dict(row._mapping)
    out["edits"] = conn.execute(text("SELECT count(*) FROM cdt.scenario_edits WHERE scenario_id = :i"),
                                {"i": scenario_id}).scalar()
    return out


def create(engine_: Engine, name: str, territory_oktmo: str, actor: str, description: str | None = None,
           parameters: Mapping | None = None) -> int:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InvalidParameterValue("a scenario needs a name of 1 to 200 characters")
    with transaction(engine_, actor) as conn:
        tid = conn.execute(text("SELECT id FROM cdt.territories WHERE oktmo = :o"), {"o": territory_oktmo}).scalar()
        if tid is None:
            raise NotFound(f"no territory with OKTMO {territory_oktmo}")
        params = check_parameters(conn, parameters or {})
        if conn.execute(text("SELECT 1 FROM cdt.scenarios WHERE name = :n"), {"n": name.strip()}).first():
            raise InvalidParameterValue(f"a scenario named '{name.strip()}' exists already")
        return conn.execute(text(
            "INSERT INTO cdt.scenarios (name, description, territory_id, parameters, created_by) "
            "VALUES (:n, :d, :t, CAST(:p AS jsonb), :a) RETURNING id"),
            {"n": name.strip(), "d": description, "t": tid, "p": json.dumps(params), "a": actor}).scalar()


def set_parameters(engine_: Engine, scenario_id: int, parameters: Mapping, actor: str) -> dict:
    with transaction(engine_, actor) as conn:
        get(conn, scenario_id)
        params = check_parameters(conn, parameters)
        conn.execute(text("UPDATE cdt.scenarios SET parameters = CAST(:p AS jsonb), updated_at = now() "
                          "WHERE id = :i"), {"p": json.dumps(params), "i": scenario_id})
        return params


def add_edit(engine_: Engine, principal: Principal, scenario_id: int, collection: str, operation: str,
             feature: Mapping | None, feature_id: int | None = None) -> int:
    """Record an edit after trying it, with the editor's grants, in a transaction that is rolled back."""
    if collection not in EDITABLE_LAYERS:
        raise InvalidParameterValue(f"a scenario edits {', '.join(EDITABLE_LAYERS)}, not '{collection}'")
    if operation not in ("insert", "update", "delete"):
        raise InvalidParameterValue("operation must be insert, update or delete")
    if operation != "insert" and feature_id is None:
        raise InvalidParameterValue(f"an {operation} needs the feature's id")
    layer = registry.get(collection)
    body = dict(feature or {"type": "Feature", "properties": {}})
    with reader(engine_).connect() as conn:
        get(conn, scenario_id)
    with engine_.connect() as conn:
        trial = conn.begin()
        try:
            access.resolve_scopes(conn, principal)
            if operation == "insert":
                edits.create(conn, layer, body, CRS84, principal)
            elif operation == "update":
                edits.update(conn, layer, str(feature_id), body, CRS84, None, principal, partial=True)
            else:
                edits.delete(conn, layer, str(feature_id), None, principal)
        finally:
            trial.rollback()
    with transaction(engine_, principal.actor) as conn:
        geometry = body.get("geometry")
        return conn.execute(text(
            "INSERT INTO cdt.scenario_edits (scenario_id, collection, feature_id, operation, properties, geom, "
            "created_by) VALUES (:s, :c, :f, :o, CAST(:p AS jsonb), "
            "CASE WHEN CAST(:g AS text) IS NULL THEN NULL ELSE ST_SetSRID(ST_GeomFromGeoJSON(:g), 4326) END, :a) "
            "RETURNING id"),
            {"s": scenario_id, "c": collection, "f": feature_id, "o": operation,
             "p": json.dumps(body.get("properties") or {}), "g": json.dumps(geometry) if geometry else None,
             "a": principal.actor}).scalar()


def list_edits(conn: Connection, scenario_id: int) -> list[dict]:
    rows = conn.execute(text(
        "SELECT id, collection, feature_id, operation, properties, ST_AsGeoJSON(geom)::jsonb AS geometry, "
        "created_by, created_at FROM cdt.scenario_edits WHERE scenario_id = :i ORDER BY id"), {"i": scenario_id})
    return [dict(r._mapping) for r in rows]


def require_owner_or_admin(conn: Connection, principal: Principal, scenario_id: int) -> None:
    """The author, or a federal official (the widest role CDT has), may change a scenario."""
    owner = get(conn, scenario_id)["created_by"]
    if principal.anonymous or (owner != principal.actor and not any(g.role == "federal" for g in principal.grants)):
        raise Forbidden("only the scenario's author or a federal official may change it")


# --- the sandbox ---------------------------------------------------------------------------------------------

@contextmanager
def sandbox(engine_: Engine, scenario_id: int, overrides: Mapping[str, float] | None = None
            ) -> Iterator[tuple[Connection, dict]]:
    """A connection inside a transaction where the scenario holds; rolled back on exit whatever happens."""
    with engine_.connect() as conn:
        outer = conn.begin()
        try:
            meta = get(conn, scenario_id)
            conn.execute(text("SELECT set_config('cdt.actor', :a, true)"), {"a": f"scenario:{scenario_id}"})
            scope = engine.territories_under(conn, meta["oktmo"])
            for e in list_edits(conn, scenario_id):
                body = {"type": "Feature", "properties": e["properties"], "geometry": e["geometry"]}
                edits.apply_authorized(conn, registry.get(e["collection"]), e["operation"], e["feature_id"], body)
            params = {**meta["parameters"], **check_parameters(conn, overrides or {})}
            for name, value in params.items():
                lv, arg = lever(name)
                conn.execute(text(lv.sql), {"v": value, "scope": scope, "arg": arg})
            yield conn, {**meta, "parameters": params, "scope": scope}
        finally:
            outer.rollback()


def _access_inputs(conn: Connection, engine_: Engine, oktmo: str, fresh: bool) -> families.AccessInputs:
    from spatial.results import access_matrix
    try:
        m = access_matrix(conn, engine_, ANONYMOUS, oktmo, fresh)
    except InvalidParameterValue:  # a territory with no residential buildings: no access values
        d = len(families.ACCESS_DESTINATIONS)
        return families.AccessInputs(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros((0, 2, d)))
    return families.AccessInputs(m.territory_ids, m.residents, m.floors,
                                 np.stack([m.walk_min, m.drive_min], axis=1).astype(np.float32))


def _needs_access(reg: Mapping[str, catalog.Definition], codes: list[str] | None) -> bool:
    wanted = [c for c, d in reg.items() if d.kind != "series"] if codes is None else codes
    return any(reg[c].family == "access" for c in catalog.order(reg, wanted))


def compute_scenario(engine_: Engine, scenario_id: int, codes: list[str] | None = None, year: int | None = None,
                     overrides: Mapping[str, float] | None = None) -> engine.Frame:
    with sandbox(engine_, scenario_id, overrides) as (conn, meta):
        reg = catalog.registry(conn)
        inputs = _access_inputs(conn, engine_, meta["oktmo"], True) if _needs_access(reg, codes) else None
        return engine.compute(conn, meta["scope"], codes, year, reg, inputs)


def compute_baseline(engine_: Engine, oktmo: str, codes: list[str] | None = None,
                     year: int | None = None) -> engine.Frame:
    """The base data computed the same way as a scenario (travel times recomputed, not read from the layer), so
    a difference is the scenario's and not a stale layer's."""
    with reader(engine_).connect() as conn:
        reg = catalog.registry(conn)
        scope = engine.territories_under(conn, oktmo)
        inputs = _access_inputs(conn, engine_, oktmo, False) if _needs_access(reg, codes) else None
        return engine.compute(conn, scope, codes, year, reg, inputs)


def run(engine_: Engine, scenario_id: int, year: int, actor: str, codes: list[str] | None = None) -> dict:
    """Compute and store a scenario's values for a year (base values untouched)."""
    frame = compute_scenario(engine_, scenario_id, codes, year)
    with transaction(engine_, actor) as conn:
        rows = store.save(conn, frame, year, scenario_id=scenario_id, source=f"scenario:{scenario_id}")
    return {"scenario": scenario_id, "year": year, "territories": len(frame.territory_ids),
            "indicators": len(frame.codes), "values": rows}


def compare(engine_: Engine, scenario_id: int, codes: list[str] | None = None, year: int | None = None) -> dict:
    """Scenario vs baseline for every territory of the scenario: both computed now, the same way."""
    with reader(engine_).connect() as conn:
        meta = get(conn, scenario_id)
        reg = catalog.registry(conn)
    base = compute_baseline(engine_, meta["oktmo"], codes, year)
    scen = compute_scenario(engine_, scenario_id, codes, year)
    rows = []
    for j, code in enumerate(base.codes):
        d = reg[code]
        for i, tid in enumerate(base.territory_ids):
            b, s = base.values[i, j], scen.values[i, scen.codes.index(code)]
            if np.isnan(b) and np.isnan(s):
                continue
            diff = None if np.isnan(b) or np.isnan(s) else float(s - b)
            better = None
            if diff is not None and diff != 0 and d.direction != "neutral":
                better = (diff > 0) == (d.direction == "higher")
            rows.append({"code": code, "name_ru": d.name_ru, "name_en": d.name_en, "unit": d.unit,
                         "direction": d.direction, "territory_id": tid,
                         "baseline": None if np.isnan(b) else float(b), "scenario": None if np.isnan(s) else float(s),
                         "difference": diff,
                         "percent": None if diff is None or b == 0 else 100.0 * diff / abs(float(b)),
                         "better": better})
    return {"scenario": {k: meta[k] for k in ("id", "name", "oktmo", "parameters")}, "rows": rows}


def goal_seek(engine_: Engine, scenario_id: int, indicator: str, target: float, levers: Mapping[str, tuple],
              territory_id: int | None = None, year: int | None = None) -> dict:
    """Lever values (within bounds) that bring an indicator of the scenario's territory to a target; one lever:
    root finding, several: constrained optimisation (planning.goalseek); an unreachable target is a result."""
    with reader(engine_).connect() as conn:
        meta = get(conn, scenario_id)
        reg = catalog.registry(conn)
        check_parameters(conn, {k: float(v[0]) for k, v in levers.items()})
        check_parameters(conn, {k: float(v[1]) for k, v in levers.items()})
    if indicator not in reg:
        raise InvalidParameterValue(f"unknown indicator '{indicator}'")
    tid = territory_id or meta["territory_id"]
    evaluations = []

    def model(values: dict[str, float]) -> float:
        frame = compute_scenario(engine_, scenario_id, [indicator], year, values)
        v = frame.value(indicator, tid)
        evaluations.append({"levers": dict(values), "value": v})
        return np.nan if v is None else v

    current = {k: float(meta["parameters"].get(k, LEVERS[k.partition(':')[0]].default)) for k in levers}
    current = {k: (v if np.isfinite(v) else float(np.mean(levers[k]))) for k, v in current.items()}
    result = goalseek.seek(model, float(target), {k: (float(lo), float(hi)) for k, (lo, hi) in levers.items()},
                           current=current, scan_points=11)
    return {"indicator": indicator, "territory_id": tid, "target": float(target), "levers": result.levers,
            "value": result.value, "met": result.met, "status": result.status, "solver": result.solver,
            "message": result.message, "evaluations": len(evaluations)}
