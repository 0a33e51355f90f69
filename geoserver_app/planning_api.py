"""Strategic planning over HTTP: the indicator registry and its values (tables, series with trends, maps), goal
programs, scenarios (edits, levers, comparison with the baseline, goal seek), territorial analytics (clusters,
sustainability index, equity), investment appraisal and budget equalization.

Indicator values are aggregate statistics: public to read, like the energy balances. A scenario's edits are
shown to its author and to users who may read the edited layer. Writes need a planner (federal, regional,
municipal); a `measure` definition (raw SQL over a source layer) only a federal user; a scenario is changed
only by its author or a federal user."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import orjson
from flask import Blueprint, Response, request
from sqlalchemy import text

from geoserver_app.auth import principal
from geoserver_app.ogc import JSON, check_params, engine, json_response, reader, single
from geoserver_app.openapi import api, query
from geoserver_app.openapi import json_response as doc_response
from layers import access, registry
from layers.access import Principal, Unauthorized
from layers.db import transaction
from layers.errors import Conflict, Forbidden, InvalidParameterValue, NotFound, UnsupportedMediaType
from layers.registry import PLANNER_ROLES
from planning import analytics, budget, equity, goals_service, investment, scenarios, trends
from planning.indicators import access as indicator_access
from planning.indicators import catalog, service, store
from planning.indicators.engine import territories_under

blueprint = Blueprint("planning", __name__)
TAGS = ("Planning",)
ADMIN_ROLES = ("federal",)
BODY = {"required": True, "content": {JSON: {"schema": {"type": "object"}}}}
USER_FIELDS = ("code", "name_ru", "name_en", "unit", "kind", "formula", "source_layer", "family", "direction",
               "aggregation", "periodicity", "description")


# --- helpers ---------------------------------------------------------------------------------------------------

def _clean(v):
    """JSON-safe: numpy scalars and arrays to Python, NaN and infinities to null, dates to ISO text."""
    if isinstance(v, Mapping):
        return {(k if isinstance(k, str) else str(k)): _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set | frozenset):
        return [_clean(x) for x in v]
    if isinstance(v, np.ndarray):
        return _clean(v.tolist())
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer):
        return int(v)
    if isinstance(v, float | np.floating):
        return float(v) if math.isfinite(v) else None
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def _ok(body: object, status: int = 200, media_type: str = JSON) -> Response:
    return json_response(_clean(body), status=status, media_type=media_type)


def _body() -> dict:
    if request.mimetype != JSON and not request.mimetype.endswith("+json"):
        raise UnsupportedMediaType(f"send the request as application/json, not {request.mimetype or '(none)'}")
    try:
        body = orjson.loads(request.get_data())
    except orjson.JSONDecodeError as exc:
        raise InvalidParameterValue(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidParameterValue("the body must be a JSON object")
    return body


def _number(body: Mapping, name: str, default=None, *, required: bool = False, integer: bool = False):
    value = body.get(name, default)
    if value is None:
        if required:
            raise InvalidParameterValue(f"'{name}' is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidParameterValue(f"'{name}' must be a finite number, got {value!r}")
    if integer:
        if int(value) != value:
            raise InvalidParameterValue(f"'{name}' must be an integer, got {value!r}")
        return int(value)
    return float(value)


def _text(body: Mapping, name: str, *, required: bool = True, default: str | None = None) -> str | None:
    value = body.get(name, default)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameterValue(f"'{name}' must be a non-empty string")
    return value.strip()


def _strings(body: Mapping, name: str, *, required: bool = True) -> list[str] | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(x, str) and x for x in value):
        raise InvalidParameterValue(f"'{name}' must be a non-empty list of strings")
    return value


def _numbers(value: object, name: str) -> list[float]:
    if not isinstance(value, list) or not value:
        raise InvalidParameterValue(f"'{name}' must be a non-empty list of numbers")
    return [_number({name: x}, name, required=True) for x in value]


def _year_param(name: str = "year") -> int | None:
    raw = single(name)
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) == 4):
        raise InvalidParameterValue(f"{name} must be a four-digit year, got '{raw}'")
    return int(raw)


def _id(raw: str, what: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise NotFound(f"no {what} '{raw}'")
    return int(raw)


def _planner() -> Principal:
    who = principal()
    if who.anonymous:
        raise Unauthorized("planning changes need a signed-in user (session or Bearer token)")
    if not who.roles & set(PLANNER_ROLES):
        raise Forbidden(f"planning changes are for the roles {', '.join(PLANNER_ROLES)}")
    return who


def _indicator(conn, code: str) -> catalog.Definition:
    """The definition, if the caller may see it (not computed from layers they may not read)."""
    reg = catalog.registry(conn)
    if code not in reg:
        raise NotFound(f"no indicator '{code}'")
    indicator_access.require_readable(principal(), code, reg)
    return reg[code]


def _in_scope(conn, code: str, rows: list, key: str) -> list:
    """Rows of the territories whose value of `code` the caller may see (a scoped grant on a restricted layer)."""
    scope = indicator_access.allowed(principal(), code, catalog.registry(conn))
    return list(rows) if scope is None else [r for r in rows if r[key] in scope]


def _visible(reg: dict[str, catalog.Definition], codes: list[str]) -> None:
    unknown = [c for c in codes if c not in reg]
    if unknown:
        raise NotFound(f"no indicator(s) {', '.join(unknown)}")
    for c in codes:
        indicator_access.require_readable(principal(), c, reg)


def _territory(conn, oktmo: str) -> dict:
    row = conn.execute(text("SELECT id, oktmo, name, level FROM cdt.territories WHERE oktmo = :o"),
                       {"o": oktmo}).mappings().first()
    if row is None:
        raise NotFound(f"no territory with OKTMO {oktmo}")
    return dict(row)


def _scenario_param(conn) -> int | None:
    raw = single("scenario")
    if raw is None or raw == "":
        return None
    sid = _id(raw, "scenario")
    scenarios.get(conn, sid)
    return sid


def _definition(d: catalog.Definition) -> dict:
    out = catalog.as_dict(d)
    out["depends_on"] = sorted(d.depends_on())
    return out


# --- the indicator registry ----------------------------------------------------------------------------------

@api.route(blueprint, "/indicators", summary="The indicator registry (built-in and user-defined definitions)",
           tags=TAGS, parameters=[
               query("family", "Only this family", {"type": "string"}),
               query("kind", "Only this kind (measure, expr, family, series)", {"type": "string"}),
               query("q", "Substring of the code or a name", {"type": "string"}),
               query("limit", "At most this many (default 1000)", {"type": "integer", "minimum": 1}),
               query("offset", "Skip this many", {"type": "integer", "minimum": 0})],
           responses={"200": doc_response("Definitions, their total and the families")})
def indicators():
    check_params(["family", "kind", "q", "limit", "offset"])
    limit, offset = _int_param("limit", 1000, 1), _int_param("offset", 0, 0)
    family, kind, q = single("family"), single("kind"), (single("q") or "").strip().lower()
    with reader().connect() as conn:
        reg = catalog.registry(conn)
    hidden = indicator_access.hidden(principal(), reg)
    found = [d for d in reg.values() if d.code not in hidden
             and (family is None or d.family == family) and (kind is None or d.kind == kind)
             and (not q or q in d.code.lower() or q in d.name_ru.lower() or q in d.name_en.lower())]
    found.sort(key=lambda d: (d.family or "", d.code))
    return _ok({"total": len(found), "limit": limit, "offset": offset,
                "families": sorted({d.family or "" for d in reg.values()}),
                "indicators": [_definition(d) for d in found[offset:offset + limit]]})


def _int_param(name: str, default: int, minimum: int) -> int:
    raw = single(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or int(raw) < minimum:
        raise InvalidParameterValue(f"{name} must be an integer ≥ {minimum}, got '{raw}'")
    return int(raw)


@api.route(blueprint, "/indicators/<code>", summary="One indicator: its definition, what it depends on and what "
           "depends on it", tags=TAGS, responses={"200": doc_response("The definition")})
def indicator(code: str):
    check_params([])
    with reader().connect() as conn:
        reg = catalog.registry(conn)
    if code not in reg:
        raise NotFound(f"no indicator '{code}'")
    indicator_access.require_readable(principal(), code, reg)
    out = _definition(reg[code])
    out["computation_order"] = catalog.order(reg, [code])
    out["used_by"] = sorted(c for c, d in reg.items() if code in d.depends_on())
    return _ok(out)


@api.route(blueprint, "/indicators", methods=("POST",), summary="Add a user-defined indicator (an expression over "
           "known indicators; a measure only for federal users)", tags=TAGS, request_body=BODY,
           responses={"201": doc_response("The stored definition")})
def create_indicator():
    check_params([])
    who = _planner()
    body = _body()
    unknown = sorted(set(body) - set(USER_FIELDS))
    if unknown:
        raise InvalidParameterValue(f"unknown member(s): {', '.join(unknown)}; a definition takes: "
                                    f"{', '.join(USER_FIELDS)}")
    _text(body, "code")
    kind = body.get("kind", "expr")
    if kind not in ("expr", "measure"):
        raise InvalidParameterValue("a user-defined indicator is of kind expr (or measure, for federal users)")
    if kind == "measure" and not who.roles & set(ADMIN_ROLES):
        raise Forbidden("only federal users define measures (SQL over a source layer)")
    values = {k: body.get(k) for k in USER_FIELDS if body.get(k) is not None}
    for k, v in values.items():
        if not isinstance(v, str):
            raise InvalidParameterValue(f"'{k}' must be a string")
    if not values.get("formula"):
        raise InvalidParameterValue("'formula' is required")
    d = catalog.Definition(**{"name_ru": "", "name_en": "", "unit": "", "family": "user", **values, "kind": kind},
                           provenance=f"user-defined ({who.actor})", builtin=False)
    catalog.check_one(d)
    with transaction(engine(), who.actor) as conn:
        reg = catalog.registry(conn)
        if d.code in reg:
            raise Conflict(f"indicator '{d.code}' exists already")
        missing = sorted(d.depends_on() - reg.keys() - {d.code})
        if missing:
            raise InvalidParameterValue(f"indicator '{d.code}': its formula references unknown indicator(s) "
                                        f"{', '.join(missing)}")
        catalog.order({**reg, d.code: d}, [d.code])  # a cycle is named
        row = catalog.as_dict(d)
        cols = ", ".join(catalog.COLUMNS)
        conn.execute(text(f"INSERT INTO cdt.indicators ({cols}, created_by) VALUES "
                          f"({', '.join(':' + c for c in catalog.COLUMNS)}, :actor)"), {**row, "actor": who.actor})
    return _ok(_definition(d), 201)


@api.route(blueprint, "/indicators/<code>", methods=("DELETE",), summary="Remove a user-defined indicator and its "
           "values", tags=TAGS, responses={"204": {"description": "Removed"}})
def delete_indicator(code: str):
    check_params([])
    who = _planner()
    with transaction(engine(), who.actor) as conn:
        reg = catalog.registry(conn)
        if code not in reg:
            raise NotFound(f"no indicator '{code}'")
        if reg[code].builtin:
            raise InvalidParameterValue(f"indicator '{code}' is built in: it cannot be removed")
        users = sorted(c for c, d in reg.items() if code in d.depends_on() and c != code)
        if users:
            raise Conflict(f"indicator '{code}' is used by {', '.join(users)}")
        if conn.execute(text("SELECT 1 FROM cdt.goals WHERE indicator_code = :c LIMIT 1"), {"c": code}).first():
            raise Conflict(f"indicator '{code}' is the measure of goals; remove them first")
        conn.execute(text("DELETE FROM cdt.indicator_values WHERE indicator_code = :c"), {"c": code})
        conn.execute(text("DELETE FROM cdt.indicators WHERE code = :c"), {"c": code})
    return Response(status=204)


@api.route(blueprint, "/indicators/compute", methods=("POST",), summary="Compute and store every indicator of a "
           "territory and its descendants for a year", tags=TAGS, request_body=BODY,
           responses={"200": doc_response("Territories, indicators and values written, timings")})
def compute_indicators():
    check_params([])
    who = _planner()
    body = _body()
    oktmo = _text(body, "territory")
    year = _number(body, "year", integer=True)
    codes = _strings(body, "codes", required=False)
    return _ok(service.run(engine(), oktmo, year, who.actor, codes))


# --- values, series and maps --------------------------------------------------------------------------------

@api.route(blueprint, "/indicators/<code>/values", summary="An indicator's value in each territory for a year",
           tags=TAGS, parameters=[
               query("year", "Year (default: the latest with values)", {"type": "integer"}),
               query("scenario", "A scenario's stored values instead of the base values", {"type": "integer"}),
               query("territory", "Only this territory (OKTMO) and its descendants", {"type": "string"})],
           responses={"200": doc_response("Territory, value")})
def indicator_values(code: str):
    check_params(["year", "scenario", "territory"])
    with reader().connect() as conn:
        d = _indicator(conn, code)
        sid = _scenario_param(conn)
        year = _year_param() or store.latest_year(conn, code, sid)
        oktmo = single("territory")
        scope = None
        if oktmo:
            _territory(conn, oktmo)
            scope = territories_under(conn, oktmo)
        rows = [] if year is None else conn.execute(text(
            "SELECT t.id AS territory_id, t.oktmo, t.name, t.level, v.value FROM cdt.indicator_values v "
            "JOIN cdt.territories t ON t.id = v.territory_id WHERE v.indicator_code = :c AND v.period = :p "
            "AND v.value_type = 'actual' AND v.scenario_id IS NOT DISTINCT FROM CAST(:sc AS int) "
            "AND (CAST(:scope AS int[]) IS NULL OR t.id = ANY(CAST(:scope AS int[]))) ORDER BY t.oktmo"),
            {"c": code, "p": store.period_of(year), "sc": sid, "scope": scope}).mappings().all()
        rows = _in_scope(conn, code, rows, "territory_id")
    return _ok({"indicator": _definition(d), "year": year, "scenario": sid, "values": [dict(r) for r in rows]})


@api.route(blueprint, "/indicators/<code>/series", summary="An indicator's actual, forecast and target values by "
           "year in one territory, with growth, CAGR, linear trend and structural break", tags=TAGS, parameters=[
               query("territory", "OKTMO of the territory", {"type": "string"}, required=True),
               query("scenario", "A scenario's stored values instead of the base values", {"type": "integer"})],
           responses={"200": doc_response("Series by value type and their trends")})
def indicator_series(code: str):
    check_params(["territory", "scenario"])
    oktmo = single("territory")
    if not oktmo:
        raise InvalidParameterValue("name the territory: ?territory=OKTMO")
    with reader().connect() as conn:
        d = _indicator(conn, code)
        sid = _scenario_param(conn)
        terr = _territory(conn, oktmo)
        indicator_access.require_readable(principal(), code, catalog.registry(conn), terr["id"])
        rows = store.series(conn, code, [terr["id"]], sid)
    by_type: dict[str, dict[int, float]] = {}
    for r in rows:
        by_type.setdefault(r["value_type"], {})[r["year"]] = r["value"]
    return _ok({"indicator": _definition(d), "territory": terr, "scenario": sid, "series": by_type,
                "trends": _trends(by_type.get("actual", {}))})


def _trends(actual: dict[int, float]) -> dict:
    observed = {y: v for y, v in actual.items() if v is not None and math.isfinite(v)}
    out: dict = {"points": len(observed), "yoy_growth": None, "cagr": None, "linear": None, "structural_break": None,
                 "notes": []}
    if len(observed) < 2:
        out["notes"].append("trends need at least two actual values")
        return out
    for name, fn in (("yoy_growth", trends.yoy_growth), ("cagr", trends.cagr)):
        try:
            out[name] = fn(observed)
        except InvalidParameterValue as exc:
            out["notes"].append(f"{name}: {exc}")
    try:
        line = trends.linear_trend(observed)
        out["linear"] = {"slope": line.slope, "intercept": line.intercept, "r2": line.r2, "n": line.n}
    except InvalidParameterValue as exc:
        out["notes"].append(f"linear: {exc}")
    if len(observed) >= 6:
        try:
            b = trends.structural_break(observed)
            out["structural_break"] = {"period": b.period, "f_stat": b.f_stat, "p_value": b.p_value,
                                       "p_value_adjusted": b.p_value_adjusted, "significant": b.significant,
                                       "slope_before": b.before.slope, "slope_after": b.after.slope}
        except InvalidParameterValue as exc:
            out["notes"].append(f"structural_break: {exc}")
    return out


@api.route(blueprint, "/indicators/<code>/map", summary="An indicator over the territories with a boundary "
           "(GeoJSON); with a scenario, baseline, scenario and difference computed now", tags=TAGS, parameters=[
               query("year", "Year (default: the latest with values)", {"type": "integer"}),
               query("scenario", "Compare this scenario with the baseline (a difference map)", {"type": "integer"})],
           responses={"200": doc_response("GeoJSON FeatureCollection", ("application/geo+json",))})
def indicator_map(code: str):
    check_params(["year", "scenario"])
    with reader().connect() as conn:
        d = _indicator(conn, code)
        sid = _scenario_param(conn)
        year = _year_param()
        if sid is None:
            year = year or store.latest_year(conn, code)
            rows = [] if year is None else conn.execute(text(
                "SELECT t.id, t.oktmo, t.name, t.level, v.value, ST_AsGeoJSON(t.boundary, 6)::jsonb AS geometry "
                "FROM cdt.indicator_values v JOIN cdt.territories t ON t.id = v.territory_id "
                "WHERE v.indicator_code = :c AND v.period = :p AND v.value_type = 'actual' AND v.scenario_id IS NULL "
                "AND t.boundary IS NOT NULL ORDER BY t.oktmo"),
                {"c": code, "p": store.period_of(year)}).mappings().all()
            features = [_feature(r, {"value": r["value"]}) for r in _in_scope(conn, code, rows, "id")]
    if sid is not None:
        result = scenarios.compare(engine(), sid, [code], year)
        by_tid = {r["territory_id"]: r for r in result["rows"] if r["code"] == code}
        with reader().connect() as conn:
            by_tid = {t: r for t, r in by_tid.items() if _in_scope(conn, code, [{"id": t}], "id")}
            rows = conn.execute(text(
                "SELECT t.id, t.oktmo, t.name, t.level, ST_AsGeoJSON(t.boundary, 6)::jsonb AS geometry "
                "FROM cdt.territories t WHERE t.id = ANY(:ids) AND t.boundary IS NOT NULL ORDER BY t.oktmo"),
                {"ids": list(by_tid)}).mappings().all()
        features = [_feature(r, {"value": by_tid[r["id"]]["scenario"], **{
            k: by_tid[r["id"]][k] for k in ("baseline", "scenario", "difference", "percent", "better")}})
            for r in rows]
    return _ok({"type": "FeatureCollection", "indicator": _definition(d), "year": year, "scenario": sid,
                "features": features}, media_type="application/geo+json")


def _feature(row: Mapping, props: dict) -> dict:
    return {"type": "Feature", "id": row["oktmo"], "geometry": row["geometry"],
            "properties": {"territory_id": row["id"], "oktmo": row["oktmo"], "name": row["name"],
                           "level": row["level"], **props}}


# --- programs and goals --------------------------------------------------------------------------------------

@api.route(blueprint, "/programs", summary="Programs (of goals)", tags=TAGS,
           responses={"200": doc_response("The programs with their number of goals")})
def programs():
    check_params([])
    return _ok({"programs": goals_service.programs(engine())})


@api.route(blueprint, "/programs", methods=("POST",), summary="Create a program", tags=TAGS, request_body=BODY,
           responses={"201": doc_response("The program's id")})
def create_program():
    check_params([])
    who = _planner()
    body = _body()
    pid = goals_service.create_program(
        engine(), _text(body, "code"), _text(body, "name"), _text(body, "territory", required=False), who.actor,
        _number(body, "start_year", integer=True), _number(body, "end_year", integer=True),
        _text(body, "description", required=False))
    return _ok({"id": pid}, 201)


@api.route(blueprint, "/programs/<programId>/goals", summary="The goals of a program as trees, each with its "
           "status (achievement, critical deviation, achievability verdict)", tags=TAGS,
           responses={"200": doc_response("Goal trees")})
def program_goals(programId: str):  # noqa: N803 - the path parameter's name in /api
    check_params([])
    return _ok({"goals": goals_service.tree(engine(), program_id=_id(programId, "program"))})


@api.route(blueprint, "/goals", methods=("POST",), summary="Create a goal: an indicator of a territory to reach a "
           "target by a year", tags=TAGS, request_body=BODY, responses={"201": doc_response("The goal with status")})
def create_goal():
    check_params([])
    who = _planner()
    body = _body()
    indicator_code = _text(body, "indicator")
    with reader().connect() as conn:
        _indicator(conn, indicator_code)
    gid = goals_service.create_goal(
        engine(), who.actor, title=_text(body, "title"), territory_oktmo=_text(body, "territory"),
        indicator=indicator_code, target_value=_number(body, "target_value", required=True),
        target_year=_number(body, "target_year", required=True, integer=True),
        baseline_year=_number(body, "baseline_year", required=True, integer=True),
        baseline_value=_number(body, "baseline_value"), program_id=_number(body, "program_id", integer=True),
        parent_id=_number(body, "parent_id", integer=True), weight=_number(body, "weight", 1.0))
    return _ok({"id": gid, "goal": goals_service.tree(engine(), goal_id=gid)[0]}, 201)


@api.route(blueprint, "/goals/<goalId>/split", methods=("POST",), summary="Split a goal into subgoals of the "
           "child territories", tags=TAGS, responses={"200": doc_response("The goal with its subgoals")})
def split_goal(goalId: str):  # noqa: N803
    check_params([])
    who = _planner()
    gid = _id(goalId, "goal")
    ids = goals_service.split(engine(), gid, who.actor)
    return _ok({"subgoals": ids, "goal": goals_service.tree(engine(), goal_id=gid)[0]})


# --- scenarios -----------------------------------------------------------------------------------------------

@api.route(blueprint, "/scenarios/levers", summary="The levers a scenario can set, with their bounds", tags=TAGS,
           responses={"200": doc_response("Levers and facility types")})
def levers():
    check_params([])
    with reader().connect() as conn:
        types = conn.execute(text("SELECT code FROM cdt.facility_types ORDER BY code")).scalars().all()
    return _ok({"levers": [{"name": lv.name, "title": lv.title, "low": lv.low, "high": lv.high,
                            "default": lv.default, "needs_type": ":arg" in lv.sql} for lv in scenarios.LEVERS.values()],
                "facility_types": types})


@api.route(blueprint, "/scenarios", summary="Scenarios", tags=TAGS, responses={"200": doc_response("Scenarios")})
def scenario_list():
    check_params([])
    with reader().connect() as conn:
        rows = conn.execute(text(
            "SELECT s.id, s.name, s.description, t.oktmo, t.name AS territory, s.parameters, s.created_by, "
            "s.created_at, (SELECT count(*) FROM cdt.scenario_edits e WHERE e.scenario_id = s.id) AS edits "
            "FROM cdt.scenarios s LEFT JOIN cdt.territories t ON t.id = s.territory_id ORDER BY s.id")).mappings()
        return _ok({"scenarios": [dict(r) for r in rows]})


@api.route(blueprint, "/scenarios", methods=("POST",), summary="Create a scenario of a territory", tags=TAGS,
           request_body=BODY, responses={"201": doc_response("The scenario")})
def create_scenario():
    check_params([])
    who = _planner()
    body = _body()
    params = body.get("parameters") or {}
    sid = scenarios.create(engine(), _text(body, "name"), _text(body, "territory"), who.actor,
                           _text(body, "description", required=False), params)
    with reader().connect() as conn:
        return _ok(scenarios.get(conn, sid), 201)


def _scenario_id(raw: str) -> int:
    return _id(raw, "scenario")


def _may_change(conn, who: Principal, sid: int) -> None:
    scenarios.require_owner_or_admin(conn, who, sid)


@api.route(blueprint, "/scenarios/<scenarioId>", summary="A scenario with its parameters and edits (edits of "
           "layers the caller may read)", tags=TAGS, responses={"200": doc_response("The scenario")})
def scenario(scenarioId: str):  # noqa: N803
    check_params([])
    sid, who = _scenario_id(scenarioId), principal()
    with reader().connect() as conn:
        out = scenarios.get(conn, sid)
        edits = scenarios.list_edits(conn, sid)
    own = not who.anonymous and out["created_by"] == who.actor
    out["edit_list"] = [e for e in edits if own or access.can_list(who, registry.get(e["collection"]))]
    out["edits_hidden"] = len(edits) - len(out["edit_list"])
    return _ok(out)


@api.route(blueprint, "/scenarios/<scenarioId>/parameters", methods=("PUT",), summary="Replace a scenario's lever "
           "values ({lever: value})", tags=TAGS, request_body=BODY, responses={"200": doc_response("The parameters")})
def scenario_parameters(scenarioId: str):  # noqa: N803
    check_params([])
    who, sid = _planner(), _scenario_id(scenarioId)
    body = _body()
    with reader().connect() as conn:
        _may_change(conn, who, sid)
    return _ok({"parameters": scenarios.set_parameters(engine(), sid, body, who.actor)})


@api.route(blueprint, "/scenarios/<scenarioId>/edits", methods=("POST",), summary="Record an edit of the master "
           "plan in the scenario (checked with the editor's grants)", tags=TAGS, request_body=BODY,
           responses={"201": doc_response("The edit's id")})
def scenario_edit(scenarioId: str):  # noqa: N803
    check_params([])
    who, sid = _planner(), _scenario_id(scenarioId)
    body = _body()
    with reader().connect() as conn:
        _may_change(conn, who, sid)
    feature = body.get("feature")
    if feature is not None and not isinstance(feature, dict):
        raise InvalidParameterValue("'feature' must be a GeoJSON Feature object")
    fid = _number(body, "feature_id", integer=True)
    eid = scenarios.add_edit(engine(), who, sid, _text(body, "collection"), _text(body, "operation"), feature, fid)
    return _ok({"id": eid, "scenario": sid}, 201)


@api.route(blueprint, "/scenarios/<scenarioId>/compare", summary="Scenario against the baseline, both computed "
           "now, per indicator and territory", tags=TAGS, parameters=[
               query("codes", "Comma-separated indicator codes (default: all)", {"type": "string"}),
               query("year", "Year of the computation (default: this year)", {"type": "integer"}),
               query("territory", "Only this territory (OKTMO) in the rows", {"type": "string"})],
           responses={"200": doc_response("Baseline, scenario, difference, better")})
def scenario_compare(scenarioId: str):  # noqa: N803
    check_params(["codes", "year", "territory"])
    sid = _scenario_id(scenarioId)
    codes = [c.strip() for c in (single("codes") or "").split(",") if c.strip()] or None
    oktmo = single("territory")
    with reader().connect() as conn:
        scenarios.get(conn, sid)
        reg = catalog.registry(conn)
        if codes:
            _visible(reg, codes)
        tid = _territory(conn, oktmo)["id"] if oktmo else None
    scopes = indicator_access.scopes(principal(), reg)
    result = scenarios.compare(engine(), sid, codes, _year_param())
    result["rows"] = [r for r in result["rows"] if (tid is None or r["territory_id"] == tid)
                      and (codes is None or r["code"] in codes)  # not the dependencies computed on the way
                      and (scopes[r["code"]] is None or r["territory_id"] in scopes[r["code"]])]
    return _ok(result)


@api.route(blueprint, "/scenarios/<scenarioId>/goal-seek", methods=("POST",), summary="Lever values that bring "
           "an indicator of the scenario's territory to a target", tags=TAGS, request_body=BODY,
           responses={"200": doc_response("Levers, value reached, met, status")})
def scenario_goal_seek(scenarioId: str):  # noqa: N803
    check_params([])
    sid = _scenario_id(scenarioId)
    body = _body()
    code = _text(body, "indicator")
    target = _number(body, "target", required=True)
    raw = body.get("levers")
    if not isinstance(raw, dict) or not raw:
        raise InvalidParameterValue("'levers' must be an object {lever: [low, high]}")
    bounds = {}
    for name, pair in raw.items():
        lo_hi = _numbers(pair, f"levers.{name}")
        if len(lo_hi) != 2 or lo_hi[0] >= lo_hi[1]:
            raise InvalidParameterValue(f"lever '{name}' needs bounds [low, high] with low < high")
        bounds[name] = tuple(lo_hi)
    with reader().connect() as conn:
        scenarios.get(conn, sid)
        _indicator(conn, code)
        oktmo = _text(body, "territory", required=False)
        tid = _territory(conn, oktmo)["id"] if oktmo else None
    return _ok(scenarios.goal_seek(engine(), sid, code, target, bounds, tid,
                                   _number(body, "year", integer=True)))


# --- analytics -----------------------------------------------------------------------------------------------

def _matrix(body: Mapping) -> tuple[list[str], list[dict], np.ndarray, int, dict[str, catalog.Definition]]:
    """Stored values of the indicators (rows: territories, columns: indicators) for a year."""
    codes = _strings(body, "indicators")
    oktmos = _strings(body, "territories", required=False)
    year = _number(body, "year", integer=True)
    with reader().connect() as conn:
        reg = catalog.registry(conn)
        _visible(reg, codes)
        year = year or store.latest_year(conn, codes[0])
        if year is None:
            raise InvalidParameterValue(f"indicator '{codes[0]}' has no values: compute it first")
        if oktmos:
            terrs = [_territory(conn, o) for o in oktmos]
        else:
            terrs = [dict(r) for r in conn.execute(text(
                "SELECT DISTINCT t.id, t.oktmo, t.name, t.level FROM cdt.indicator_values v JOIN cdt.territories t "
                "ON t.id = v.territory_id WHERE v.indicator_code = ANY(:c) AND v.period = :p "
                "AND v.value_type = 'actual' AND v.scenario_id IS NULL ORDER BY t.oktmo"),
                {"c": codes, "p": store.period_of(year)}).mappings()]
        values = store.values_at(conn, codes, year)
    matrix = np.array([[values.get((c, t["id"]), np.nan) for c in codes] for t in terrs], dtype=float)
    return codes, terrs, matrix.reshape(len(terrs), len(codes)), year, reg


@api.route(blueprint, "/analytics/clusters", methods=("POST",), summary="K-means clusters and principal components "
           "of territories on stored indicator values", tags=TAGS, request_body=BODY,
           responses={"200": doc_response("Clusters, silhouette, PCA")})
def analytics_clusters():
    check_params([])
    body = _body()
    codes, terrs, matrix, year, _ = _matrix(body)
    k = _number(body, "k", integer=True)
    names = [t["oktmo"] for t in terrs]
    res = analytics.cluster(matrix, names=names, k=k, indicator_names=codes)
    label = dict(zip(res.ids, res.labels.tolist(), strict=True))
    out = {"year": year, "indicators": codes, "k": res.k, "silhouette": res.silhouette,
           "silhouette_by_k": res.silhouette_by_k, "sizes": res.sizes, "centroids": res.centroids,
           "cluster_means": res.cluster_means, "excluded": res.excluded,
           "territories": [{**t, "cluster": label.get(t["oktmo"])} for t in terrs], "pca": None}
    if len(codes) >= 2:
        try:
            p = analytics.pca(matrix, codes, ids=names)
            out["pca"] = {"ids": p.ids, "explained_variance_ratio": p.explained_variance_ratio,
                          "loadings": p.loadings, "scores": p.scores, "excluded": p.excluded}
        except InvalidParameterValue as exc:
            out["pca_note"] = str(exc)
    return _ok(out)


@api.route(blueprint, "/analytics/sustainability", methods=("POST",), summary="Composite sustainability index of "
           "territories (min-max, weighted; directions from the registry)", tags=TAGS, request_body=BODY,
           responses={"200": doc_response("Composite, ranks, sub-indices")})
def analytics_sustainability():
    check_params([])
    body = _body()
    codes, terrs, matrix, year, reg = _matrix(body)
    weights = _numbers(body["weights"], "weights") if body.get("weights") is not None else None
    groups = _strings(body, "groups", required=False)
    complete = ~np.isnan(matrix).any(axis=1)
    res = analytics.sustainability_index(matrix[complete], [reg[c].direction for c in codes], weights, groups,
                                         codes)
    kept = [t for t, ok in zip(terrs, complete, strict=True) if ok]
    return _ok({"year": year, "indicators": codes, "weights": res.weights, "group_weights": res.group_weights,
                "notes": res.notes, "excluded": [t["oktmo"] for t, ok in zip(terrs, complete, strict=True) if not ok],
                "territories": [{**t, "composite": res.composite[i], "rank": res.ranks[i],
                                 "normalized": res.normalized[i],
                                 "sub_indices": {g: v[i] for g, v in res.sub_indices.items()}}
                                for i, t in enumerate(kept)]})


@api.route(blueprint, "/analytics/equity", methods=("POST",), summary="Inequality of an indicator across "
           "territories weighted by residents: Gini, Theil, Palma, Lorenz curve", tags=TAGS, request_body=BODY,
           responses={"200": doc_response("Gini, Theil, Palma")})
def analytics_equity():
    check_params([])
    body = _body()
    code = _text(body, "indicator")
    weighted = body.get("weighted", True)
    if not isinstance(weighted, bool):
        raise InvalidParameterValue("'weighted' must be true or false")
    spec = {"indicators": [code, "residents"] if weighted else [code], "year": body.get("year"),
            "territories": body.get("territories")}
    _, terrs, matrix, year, _ = _matrix(spec)
    if not body.get("territories"):  # the finest territories: a parent would count its children twice
        with reader().connect() as conn:
            parents = set(conn.execute(text("SELECT DISTINCT parent_id FROM cdt.territories "
                                            "WHERE parent_id IS NOT NULL")).scalars())
        keep = [i for i, t in enumerate(terrs) if t["id"] not in parents]
        terrs, matrix = [terrs[i] for i in keep], matrix[keep]
    ok = ~np.isnan(matrix).any(axis=1)
    x, w = matrix[ok, 0], (matrix[ok, 1] if weighted else None)
    if x.size < 2:
        raise InvalidParameterValue(f"inequality needs values of '{code}' in at least 2 territories in {year}")
    out: dict = {"indicator": code, "year": year, "weighted_by": "residents" if weighted else None,
                 "territories": [t["oktmo"] for t, k in zip(terrs, ok, strict=True) if k], "notes": []}
    for name, fn in (("gini", equity.gini), ("theil", equity.theil), ("palma", equity.palma)):
        try:
            out[name] = fn(x, w)
        except InvalidParameterValue as exc:
            out[name] = None
            out["notes"].append(f"{name}: {exc}")
    try:
        p, lor = equity.lorenz(x, w)
        out["lorenz"] = {"population": p, "value": lor}
    except InvalidParameterValue as exc:
        out["notes"].append(f"lorenz: {exc}")
    return _ok(out)


# --- investment and budget -----------------------------------------------------------------------------------

def _quantity(value: object, name: str) -> investment.Quantity:
    if isinstance(value, dict) and len(value) == 1:
        kind, params = next(iter(value.items()))
        nums = _numbers(params, f"{name}.{kind}")
        if kind == "triangular" and len(nums) == 3:
            return investment.Triangular(*nums)
        if kind == "normal" and len(nums) == 2:
            return investment.Normal(*nums)
    elif not isinstance(value, dict):
        return _number({name: value}, name, required=True)
    raise InvalidParameterValue(f"'{name}' must be a number, {{\"triangular\": [low, mode, high]}} or "
                                "{\"normal\": [mean, sd]}")


@api.route(blueprint, "/investment/appraisal", methods=("POST",), summary="NPV, IRR, discounted payback and "
           "profitability index of yearly cash flows; Monte Carlo distribution of the NPV", tags=TAGS,
           request_body=BODY, responses={"200": doc_response("The appraisal")})
def investment_appraisal():
    check_params([])
    body = _body()
    rate = _number(body, "rate", required=True)
    out: dict = {"rate": rate, "notes": []}
    if body.get("flows") is not None:
        flows = _numbers(body["flows"], "flows")
        out.update(flows=flows, npv=investment.npv(rate, flows),
                   discounted_payback=investment.discounted_payback(rate, flows))
        for name, fn in (("irr", lambda: investment.irr(flows)),
                         ("profitability_index", lambda: investment.profitability_index(rate, flows))):
            try:
                out[name] = fn()
            except InvalidParameterValue as exc:
                out[name] = None
                out["notes"].append(f"{name}: {exc}")
    mc = body.get("monte_carlo")
    if mc is not None:
        if not isinstance(mc, dict):
            raise InvalidParameterValue("'monte_carlo' must be an object {years, capex, revenue, cost?, growth?, "
                                        "n?, seed?}")
        n = _number(mc, "n", 10_000, integer=True)
        if not 1 <= n <= 100_000:
            raise InvalidParameterValue("monte_carlo.n must be between 1 and 100000")
        build = investment.flow_builder(_number(mc, "years", required=True, integer=True),
                                        _quantity(mc.get("capex"), "capex"), _quantity(mc.get("revenue"), "revenue"),
                                        _quantity(mc.get("cost", 0.0), "cost"),
                                        _quantity(mc.get("growth", 0.0), "growth"))
        out["monte_carlo"] = investment.monte_carlo(rate, build, n, _number(mc, "seed", 0, integer=True))
    if "npv" not in out and "monte_carlo" not in out:
        raise InvalidParameterValue("give 'flows' (yearly cash flows) or 'monte_carlo'")
    return _ok(out)


@api.route(blueprint, "/budget/equalization", methods=("POST",), summary="Equalization subsidies that raise the "
           "budget provision of municipalities below a level to it (a fund or a target level)", tags=TAGS,
           request_body=BODY, responses={"200": doc_response("Transfers, level, provision before and after")})
def budget_equalization():
    check_params([])
    body = _body()
    allowed = {"population", "tax_capacity_index", "expenditure_index", "fund", "target_level", "average_per_capita"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidParameterValue(f"unknown member(s): {', '.join(unknown)}; it takes: {', '.join(sorted(allowed))}")
    vectors = {}
    for name in ("population", "tax_capacity_index", "expenditure_index"):
        v = body.get(name)
        if isinstance(v, dict):
            vectors[name] = {k: _number(v, k, required=True) for k in v}
        else:
            vectors[name] = _numbers(v, name)
    res = budget.equalization_subsidy(**vectors, fund=_number(body, "fund"),
                                      target_level=_number(body, "target_level"),
                                      average_per_capita=_number(body, "average_per_capita", 1.0))
    return _ok({"level": res.level, "total": res.total, "notes": res.notes, "municipalities": [
        {"id": i, "transfer": res.transfers[j], "provision_before": res.provision_before[j],
         "provision_after": res.provision_after[j]} for j, i in enumerate(res.ids)]})
