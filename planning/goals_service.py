"""Programs and goal trees in the database, judged on the indicator values (planning.goals does the arithmetic).

A goal ties an indicator of a territory to a target by a deadline. Its baseline defaults to the actual value of
the baseline year. Splitting a goal creates one subgoal per child territory that has a baseline: shares of the
target in proportion to the baselines for additive indicators (aggregation "sum"), the same relative effort for
the others (planning.goals.split_goal). The target path of each goal is written as `target` values, so the
monitoring view plots actual, forecast and target together.
"""

from __future__ import annotations

import math
from datetime import date

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

from layers.db import reader, transaction
from layers.errors import InvalidParameterValue, NotFound
from planning import goals as g

GOAL_COLUMNS = ("id", "program_id", "parent_id", "title", "territory_id", "indicator_code", "baseline_value",
                "baseline_year", "target_value", "target_year", "weight", "split_rule", "created_by")


def _territory(conn: Connection, oktmo: str) -> int:
    tid = conn.execute(text("SELECT id FROM cdt.territories WHERE oktmo = :o"), {"o": oktmo}).scalar()
    if tid is None:
        raise NotFound(f"no territory with OKTMO {oktmo}")
    return tid


def _indicator(conn: Connection, code: str) -> dict:
    row = conn.execute(text("SELECT code, direction, aggregation, name_ru, name_en, unit FROM cdt.indicators "
                            "WHERE code = :c"), {"c": code}).first()
    if row is None:
        raise InvalidParameterValue(f"unknown indicator '{code}'")
    return dict(row._mapping)


def _actual(conn: Connection, code: str, tid: int) -> dict[int, float]:
    rows = conn.execute(text(
        "SELECT extract(year FROM period)::int, value FROM cdt.indicator_values WHERE indicator_code = :c "
        "AND territory_id = :t AND value_type = 'actual' AND scenario_id IS NULL AND value IS NOT NULL "
        "ORDER BY period"), {"c": code, "t": tid}).all()
    return {y: v for y, v in rows}


def create_program(engine: Engine, code: str, name: str, territory_oktmo: str | None, actor: str,
                   start_year: int | None = None, end_year: int | None = None, description: str | None = None) -> int:
    if not code or not name:
        raise InvalidParameterValue("a program needs a code and a name")
    if start_year and end_year and end_year < start_year:
        raise InvalidParameterValue("a program cannot end before it starts")
    with transaction(engine, actor) as conn:
        tid = _territory(conn, territory_oktmo) if territory_oktmo else None
        if conn.execute(text("SELECT 1 FROM cdt.programs WHERE code = :c"), {"c": code}).first():
            raise InvalidParameterValue(f"a program with code '{code}' exists already")
        return conn.execute(text(
            "INSERT INTO cdt.programs (code, name, territory_id, start_year, end_year, description, created_by) "
            "VALUES (:c, :n, :t, :s, :e, :d, :a) RETURNING id"),
            {"c": code, "n": name, "t": tid, "s": start_year, "e": end_year, "d": description, "a": actor}).scalar()


def _direction(ind: dict, baseline: float, target: float) -> str:
    if ind["direction"] != "neutral":
        return ind["direction"]
    return "lower" if target < baseline else "higher"


def _insert_goal(conn: Connection, actor: str, **v) -> int:
    cols = [c for c in GOAL_COLUMNS if c not in ("id", "created_by") and c in v]
    gid = conn.execute(text(f"INSERT INTO cdt.goals ({', '.join(cols)}, created_by) VALUES "
                            f"({', '.join(':' + c for c in cols)}, :created_by) RETURNING id"),
                       {**v, "created_by": actor}).scalar()
    _write_targets(conn, gid)
    return gid


def _write_targets(conn: Connection, goal_id: int) -> None:
    """The straight-line target path from baseline to deadline, as `target` values of the indicator."""
    row = conn.execute(text("SELECT * FROM cdt.goals WHERE id = :i"), {"i": goal_id}).mappings().one()
    b, t, y0, y1 = row["baseline_value"], row["target_value"], row["baseline_year"], row["target_year"]
    if None in (b, t, y0, y1):
        return
    for year in range(y0 + 1, y1 + 1):
        conn.execute(text(
            "INSERT INTO cdt.indicator_values (indicator_code, territory_id, period, value_type, value, source) "
            "VALUES (:c, :t, :p, 'target', :v, :s) "
            "ON CONFLICT (indicator_code, territory_id, period, value_type, scenario_id) "
            "DO UPDATE SET value = EXCLUDED.value, source = EXCLUDED.source, computed_at = now()"),
            {"c": row["indicator_code"], "t": row["territory_id"], "p": date(year, 1, 1),
             "v": b + (t - b) * (year - y0) / (y1 - y0), "s": f"goal:{goal_id}"})


def create_goal(engine: Engine, actor: str, *, title: str, territory_oktmo: str, indicator: str,
                target_value: float, target_year: int, baseline_year: int, baseline_value: float | None = None,
                program_id: int | None = None, parent_id: int | None = None, weight: float = 1.0) -> int:
    if not title:
        raise InvalidParameterValue("a goal needs a title")
    if not math.isfinite(float(target_value)) or not math.isfinite(float(weight)) or weight < 0:
        raise InvalidParameterValue("target and weight must be finite numbers, the weight non-negative")
    if target_year <= baseline_year:
        raise InvalidParameterValue("the deadline must come after the baseline year")
    with transaction(engine, actor) as conn:
        tid = _territory(conn, territory_oktmo)
        ind = _indicator(conn, indicator)
        if program_id is not None and conn.execute(text("SELECT 1 FROM cdt.programs WHERE id = :i"),
                                                   {"i": program_id}).first() is None:
            raise NotFound(f"no program with id {program_id}")
        if parent_id is not None and conn.execute(text("SELECT 1 FROM cdt.goals WHERE id = :i"),
                                                  {"i": parent_id}).first() is None:
            raise NotFound(f"no goal with id {parent_id}")
        if baseline_value is None:
            baseline_value = _actual(conn, indicator, tid).get(baseline_year)
            if baseline_value is None:
                raise InvalidParameterValue(f"no actual value of '{indicator}' for {territory_oktmo} in "
                                            f"{baseline_year}: give baseline_value or compute the indicator")
        g.Goal(baseline_year, float(baseline_value), target_year, float(target_value),
               _direction(ind, float(baseline_value), float(target_value)))  # checks the pair
        return _insert_goal(conn, actor, program_id=program_id, parent_id=parent_id, title=title, territory_id=tid,
                            indicator_code=indicator, baseline_value=float(baseline_value),
                            baseline_year=baseline_year, target_value=float(target_value), target_year=target_year,
                            weight=float(weight))


def split(engine: Engine, goal_id: int, actor: str) -> list[int]:
    """One subgoal per child territory with a baseline value; the rule follows the indicator's aggregation."""
    with transaction(engine, actor) as conn:
        goal = conn.execute(text("SELECT * FROM cdt.goals WHERE id = :i"), {"i": goal_id}).mappings().first()
        if goal is None:
            raise NotFound(f"no goal with id {goal_id}")
        ind = _indicator(conn, goal["indicator_code"])
        children = conn.execute(text("SELECT id, name FROM cdt.territories WHERE parent_id = :t ORDER BY id"),
                                {"t": goal["territory_id"]}).all()
        if not children:
            raise InvalidParameterValue("the goal's territory has no child territories to split it across")
        baselines = {str(c.id): _actual(conn, goal["indicator_code"], c.id).get(goal["baseline_year"])
                     for c in children}
        baselines = {k: v for k, v in baselines.items() if v is not None}
        if not baselines:
            raise InvalidParameterValue(f"no child territory has a {goal['baseline_year']} value of "
                                        f"'{goal['indicator_code']}' to split the goal by")
        how = "sum" if ind["aggregation"] == "sum" else "mean"
        weights = None
        if how == "mean":
            pop = {str(c.id): _actual(conn, "residents", c.id).get(goal["baseline_year"]) for c in children}
            weights = {k: pop.get(k) or 1.0 for k in baselines}
        targets = g.split_goal(goal["target_value"], baselines=baselines, weights=weights, how=how)
        conn.execute(text("DELETE FROM cdt.goals WHERE parent_id = :i AND split_rule IS NOT NULL"), {"i": goal_id})
        names = {str(c.id): c.name for c in children}
        rule = "proportional to baselines" if how == "sum" else "equal relative effort"
        return [_insert_goal(conn, actor, program_id=goal["program_id"], parent_id=goal_id,
                             title=f"{goal['title']}: {names[k]}", territory_id=int(k),
                             indicator_code=goal["indicator_code"], baseline_value=baselines[k],
                             baseline_year=goal["baseline_year"], target_value=t, target_year=goal["target_year"],
                             weight=goal["weight"], split_rule=rule)
                for k, t in targets.items()]


def _status(conn: Connection, row: dict, ind: dict) -> dict:
    actual = _actual(conn, row["indicator_code"], row["territory_id"])
    out: dict = {"actual": {str(k): v for k, v in actual.items()}}
    if row["baseline_value"] is None or row["target_value"] is None:
        return out
    direction = _direction(ind, row["baseline_value"], row["target_value"])
    observed = {y: v for y, v in actual.items() if y >= row["baseline_year"]}
    observed.setdefault(row["baseline_year"], row["baseline_value"])
    goal = g.Goal(row["baseline_year"], row["baseline_value"], row["target_year"], row["target_value"], direction,
                  observed)
    a = g.achievement(goal)
    d = g.critical_deviation(goal)
    out.update(direction=direction, latest_year=a.period, latest_value=a.value, achievement=a.raw,
               achievement_pct=round(100 * a.clipped, 1), planned_now=d.planned,
               shortfall_pct=None if math.isinf(d.shortfall_pct) else d.shortfall_pct, critical=d.critical)
    try:
        ab = g.achievability(goal)
        out.update(verdict=ab.verdict, required_rate=ab.required_rate, historical_rate=ab.historical_rate,
                   pace=ab.pace)
    except InvalidParameterValue as exc:  # fewer than two observations: no rate yet
        out.update(verdict=None, note=str(exc))
    return out


def tree(engine: Engine, program_id: int | None = None, goal_id: int | None = None) -> list[dict]:
    """The goals of a program (or one goal) as nested trees, each with its status."""
    with reader(engine).connect() as conn:
        where, params = ("program_id = :p", {"p": program_id}) if program_id is not None else ("TRUE", {})
        rows = [dict(r) for r in conn.execute(text(
            f"SELECT g.*, t.oktmo, t.name AS territory_name FROM cdt.goals g JOIN cdt.territories t "
            f"ON t.id = g.territory_id WHERE {where} ORDER BY g.id"), params).mappings()]
        if program_id is not None and not rows and conn.execute(
                text("SELECT 1 FROM cdt.programs WHERE id = :p"), {"p": program_id}).first() is None:
            raise NotFound(f"no program with id {program_id}")
        inds = {c: _indicator(conn, c) for c in {r["indicator_code"] for r in rows if r["indicator_code"]}}
        for r in rows:
            r["status"] = _status(conn, r, inds[r["indicator_code"]]) if r["indicator_code"] else {}
            r["indicator"] = inds.get(r["indicator_code"])
            r["created_at"] = r["created_at"].isoformat()
    by_id = {r["id"]: {**r, "children": []} for r in rows}
    roots = []
    for r in by_id.values():
        parent = by_id.get(r["parent_id"])
        (parent["children"] if parent else roots).append(r)
    if goal_id is not None:
        if goal_id not in by_id:
            raise NotFound(f"no goal with id {goal_id}")
        return [by_id[goal_id]]
    return roots


def programs(engine: Engine) -> list[dict]:
    with reader(engine).connect() as conn:
        rows = conn.execute(text(
            "SELECT p.id, p.code, p.name, p.start_year, p.end_year, p.description, t.oktmo, t.name AS territory, "
            "(SELECT count(*) FROM cdt.goals g WHERE g.program_id = p.id) AS goals FROM cdt.programs p "
            "LEFT JOIN cdt.territories t ON t.id = p.territory_id ORDER BY p.id"))
        return [dict(r._mapping) for r in rows]
