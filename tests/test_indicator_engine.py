"""The indicator engine: the formula language, the registry's checks (unknown indicator, formula error, cycle),
aggregation to parent territories, the access family against hand-computed values, the scenario sandbox (base
data untouched) and goal seek on a model with a known inverse and an unreachable target."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from sqlalchemy import text

from layers.db import transaction
from layers.errors import InvalidParameterValue
from planning import goals_service, scenarios
from planning.indicators import catalog, engine, families, formula
from planning.indicators.catalog import Definition


def measure(code: str, sql: str, source: str = "buildings", **kw) -> Definition:
    return Definition(code, code, code, "u", "measure", sql, source, **kw)


def expr(code: str, f: str, **kw) -> Definition:
    return Definition(code, code, code, "u", "expr", f, **kw)


# --- formulas ---------------------------------------------------------------------------------------------------

def test_formula_arithmetic_and_undefined_results_are_no_value():
    e = formula.parse("1000 * a / b + where(a > 2, 1, 0) - coalesce(c, 5) + max(a, 10) ** 0.5")
    assert e.names == {"a", "b", "c"}
    out = e.evaluate({"a": np.array([3.0, 1.0, 4.0]), "b": np.array([2.0, 0.0, np.nan]),
                      "c": np.array([np.nan, 1.0, 2.0])})
    # 1000*3/2 + 1 - 5 + sqrt(10) ; 1000*1/0 -> no value ; 4/NaN -> no value
    assert out[0] == pytest.approx(1500 + 1 - 5 + math.sqrt(10))
    assert np.isnan(out[1]) and np.isnan(out[2])
    assert np.isnan(formula.parse("log(a)").evaluate({"a": np.array([0.0])})[0])


@pytest.mark.parametrize("bad, message", [
    ("a +", "syntax error"), ("__import__('os')", "unknown function"), ("a.b", "Attribute"),
    ("'text'", "only numbers"), ("a > 1", "comparison outside where"), ("max(a)", "takes 2 arguments"),
    ("where(a, b)", "takes 3 arguments"), ("", "empty"), ("[a]", "List"), ("lambda: 1", "Lambda"),
])
def test_formula_refusals_name_the_problem(bad, message):
    with pytest.raises(InvalidParameterValue, match=message):
        formula.parse(bad, "x")


# --- registry checks ---------------------------------------------------------------------------------------------

def test_unknown_reference_cycle_and_bad_definitions_are_refused():
    with pytest.raises(InvalidParameterValue, match="references unknown indicator.*nope"):
        catalog.check_all([measure("a", "sum(s.residents)"), expr("b", "a / nope")])
    with pytest.raises(InvalidParameterValue, match="cycle: (b -> d -> c -> b|d -> c -> b -> d|c -> b -> d -> c)"):
        catalog.check_all([measure("a", "sum(s.residents)"), expr("b", "a + d"), expr("c", "b * 2"),
                           expr("d", "c - 1")])
    with pytest.raises(InvalidParameterValue, match="defined twice"):
        catalog.check_all([measure("a", "sum(s.residents)"), measure("a", "count(*)")])
    with pytest.raises(InvalidParameterValue, match="lower-case"):
        catalog.check_one(measure("Bad-Code", "count(*)"))
    with pytest.raises(InvalidParameterValue, match="unknown source layer 'nowhere'"):
        catalog.check_one(measure("a", "count(*)", source="nowhere"))
    with pytest.raises(InvalidParameterValue, match="no ';'"):
        catalog.check_one(measure("a", "count(*); DROP TABLE cdt.buildings"))
    with pytest.raises(InvalidParameterValue, match="unknown indicator 'ghost'"):
        catalog.order({"a": measure("a", "count(*)")}, ["ghost"])


def test_builtin_registry_is_past_2000_per_municipality_and_consistent():
    defs = catalog.builtin()
    order = catalog.check_all(defs)
    assert len(defs) == len(order) > 2000
    assert sum(d.family == "access" for d in defs) == 12 * (12 + 6 + 6) * 6 + 12 * 3 * 5
    assert {"residents", "fac_kindergarten_capacity_per_1000", "acc_share_walk_15_school_lr"} <= {d.code for d in defs}


def test_a_failing_sql_formula_is_a_clear_error_and_leaves_the_transaction_usable(engine):
    reg = {"a": measure("a", "sum(s.no_such_column)")}
    with engine.connect() as conn, conn.begin():
        with pytest.raises(InvalidParameterValue, match="no_such_column"):
            engine_compute(conn, [4], reg)
        assert conn.execute(text("SELECT 1")).scalar() == 1


def engine_compute(conn, tids, reg, codes=None):
    return engine.compute(conn, tids, codes, 2026, reg)


# --- aggregation to parents ----------------------------------------------------------------------------------------

@pytest.fixture
def two_children(engine):
    """A parent with two child territories, each with buildings of known residents and living area, inside a
    transaction rolled back at the end."""
    with engine.connect() as conn:
        trans = conn.begin()
        conn.execute(text("SELECT set_config('cdt.actor', 'test:engine', true)"))
        parent = conn.execute(text("INSERT INTO cdt.territories (oktmo, name, level) VALUES ('99000000', "
                                   "'Test region', 'federal_subject') RETURNING id")).scalar()
        kids = [conn.execute(text("INSERT INTO cdt.territories (oktmo, name, level, parent_id) VALUES "
                                  "(:o, :n, 'urban_okrug', :p) RETURNING id"),
                             {"o": o, "n": n, "p": parent}).scalar()
                for o, n in (("99701000", "Town A"), ("99702000", "Town B"))]
        # Town A: residents 100 + 300, living 2,000 + 6,000 m²; Town B: residents 50, living 4,000 m².
        for tid, residents, living, lon in ((kids[0], 100, 2000.0, 40.0), (kids[0], 300, 6000.0, 40.01),
                                            (kids[1], 50, 4000.0, 40.02)):
            conn.execute(text(
                "INSERT INTO cdt.buildings (residents, living_area_m2, is_living, territory_id, geom) VALUES "
                "(:r, :l, true, :t, ST_Multi(ST_MakeEnvelope(:x, 50, :x + 0.001, 50.001, 4326)))"),
                {"r": residents, "l": living, "t": tid, "x": lon})
        yield conn, parent, kids
        trans.rollback()


def test_parents_are_recomputed_from_descendant_rows_unless_told_to_sum_or_weight(two_children):
    conn, parent, (a, b) = two_children
    reg = {d.code: d for d in (
        measure("res", "sum(s.residents)"), measure("liv", "sum(s.living_area_m2)"),
        measure("med", "percentile_cont(0.5) WITHIN GROUP (ORDER BY s.residents)"),
        expr("per_capita", "liv / res"),
        expr("log_res_sum", "log(res)", aggregation="sum"),
        expr("root_liv_mean", "sqrt(liv)", aggregation="mean_pop"),
        measure("residents", "sum(s.residents)"))}
    f = engine.compute(conn, [parent, a, b], None, 2026, reg)
    assert f.value("res", parent) == 450 and f.value("res", a) == 400 and f.value("res", b) == 50
    assert f.value("med", parent) == 100  # the median of 50, 100, 300 — not a sum of the towns' medians
    assert f.value("per_capita", a) == pytest.approx(8000 / 400)
    assert f.value("per_capita", parent) == pytest.approx(12000 / 450)  # recomputed, not 20 + 80
    assert f.value("log_res_sum", parent) == pytest.approx(math.log(400) + math.log(50))
    assert f.value("root_liv_mean", parent) == pytest.approx((math.sqrt(8000) * 400 + math.sqrt(4000) * 50) / 450)


def test_indicators_without_data_have_no_value(two_children):
    conn, parent, (a, _b) = two_children
    reg = {d.code: d for d in (measure("fac", "count(*)", source="facilities"),
                               measure("res", "sum(s.residents)"), expr("per", "fac * 1000 / res"))}
    f = engine.compute(conn, [parent, a], None, 2026, reg)
    assert f.value("fac", a) is None and f.value("per", a) is None


# --- the access family by hand ---------------------------------------------------------------------------------------

def test_access_family_against_hand_computed_values():
    d = len(families.ACCESS_DESTINATIONS)
    # Two towns (leaves 10, 20) under one region (id 1). Walking minutes to a kindergarten (destination 0):
    # town 10: 4 min (100 residents, 5 floors), 12 min (300, 2 floors), unreachable (50, 9 floors);
    # town 20: 7 min (200, 1 floor). No school anywhere (NaN).
    walk = np.full((4, d), np.nan)
    walk[:, 0] = [4.0, 12.0, np.nan, 7.0]
    drive = walk / 4
    inputs = families.AccessInputs(np.array([10, 10, 10, 20]), np.array([100.0, 300, 50, 200]),
                                   np.array([5, 2, 9, 1]), np.stack([walk, drive], axis=1).astype(np.float32))
    pool = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]))
    tmap = families.TerritoryMap((1, 10, 20), np.array([10, 20]), pool)
    v = families.access_values(inputs, tmap)
    k = "kindergarten"
    assert v[f"acc_share_walk_5_{k}"].tolist() == pytest.approx([100 * 100 / 650, 100 * 100 / 450, 0.0])
    assert v[f"acc_share_walk_15_{k}"].tolist() == pytest.approx([100 * 600 / 650, 100 * 400 / 450, 100.0])
    assert v[f"acc_res_walk_10_{k}"].tolist() == [300.0, 100.0, 200.0]
    assert v[f"acc_share_walk_15_{k}_ms"].tolist() == pytest.approx([100 * 100 / 150, 100 * 100 / 150, math.nan],
                                                                      nan_ok=True)
    assert v[f"acc_share_walk_15_{k}_lr"].tolist() == pytest.approx([100.0, 100.0, 100.0])
    # bike = walk x 4.8/15: 12 min on foot is 3.84 min by bike
    assert v[f"acc_share_bike_5_{k}"].tolist() == pytest.approx([100 * 600 / 650, 100 * 400 / 450, 100.0])
    assert v[f"acc_unreached_walk_{k}"].tolist() == pytest.approx([100 * 50 / 650, 100 * 50 / 450, 0.0])
    assert v[f"acc_mean_walk_{k}"].tolist() == pytest.approx([(400 + 3600 + 1400) / 600, 4000 / 400, 7.0])
    assert v[f"acc_max_drive_{k}"].tolist() == pytest.approx([3.0, 3.0, 1.75])
    # median of the reached in town 10: weights 100 at 4 min, 300 at 12 min -> inside the 12-minute bin
    assert 12.0 <= v[f"acc_median_walk_{k}"][1] <= 13.0
    assert np.isnan(v["acc_share_walk_15_school"]).all()  # no school in the data: no value, not 0 %


# --- scenarios -------------------------------------------------------------------------------------------------------

def _counts(engine_) -> tuple:
    with engine_.connect() as conn:
        return tuple(conn.execute(text(f"SELECT count(*), coalesce(sum(version), 0) FROM cdt.{t}")).one()
                     for t in ("facilities", "buildings", "planned_facilities", "planning_norms"))


@pytest.fixture
def scenario(engine):
    sid = scenarios.create(engine, "test: more schools", "19701000", "test:scenario",
                           parameters={"include_planned": 1})
    yield sid
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM cdt.scenarios WHERE id = :i"), {"i": sid})


def test_scenario_changes_indicators_in_a_sandbox_and_leaves_base_data_untouched(engine, scenario):
    before = _counts(engine)
    with engine.connect() as conn:
        planned = conn.execute(text("SELECT count(*) FROM cdt.planned_facilities WHERE type_code = 'school' "
                                    "AND territory_id = 4 AND coalesce(status, '') <> 'cancelled'")).scalar()
    out = scenarios.compare(engine, scenario, ["fac_school_count", "fac_school_provision"], 2026)
    rows = {(r["code"], r["territory_id"]): r for r in out["rows"]}
    assert rows[("fac_school_count", 4)]["difference"] == planned
    with scenarios.sandbox(engine, scenario, {"capacity_factor:school": 2.0}) as (conn, meta):
        assert meta["parameters"] == {"include_planned": 1.0, "capacity_factor:school": 2.0}
        doubled = conn.execute(text("SELECT sum(capacity) FROM cdt.facilities WHERE type_code = 'school'")).scalar()
    with engine.connect() as conn:
        base = conn.execute(text("SELECT sum(capacity) FROM cdt.facilities WHERE type_code = 'school'")).scalar()
    assert doubled == pytest.approx(2 * base)
    assert _counts(engine) == before


def test_levers_are_checked(engine, scenario):
    for bad, message in (({"warp_drive": 1}, "unknown lever"), ({"capacity_factor": 1}, "needs"),
                         ({"capacity_factor:spaceport": 1}, "unknown facility type"),
                         ({"population_factor": 9}, "between 0.5 and 2")):
        with pytest.raises(InvalidParameterValue, match=message):
            scenarios.set_parameters(engine, scenario, bad, "test:scenario")


def test_goal_seek_finds_the_known_inverse_and_reports_an_unreachable_target(engine, scenario):
    # School provision is linear in the capacity factor: provision(f) = f * provision(1).
    base = scenarios.compute_scenario(engine, scenario, ["fac_school_provision"], 2026).value("fac_school_provision", 4)
    solved = scenarios.goal_seek(engine, scenario, "fac_school_provision", 100.0, {"capacity_factor:school": (0.5, 3)})
    assert solved["met"] and solved["status"] == "solved"
    assert solved["levers"]["capacity_factor:school"] == pytest.approx(100.0 / base, rel=1e-6)
    out = scenarios.goal_seek(engine, scenario, "fac_school_provision", 10 * base, {"capacity_factor:school": (1, 2)})
    assert not out["met"] and out["status"] == "unreachable within bounds"
    assert out["value"] == pytest.approx(2 * base, rel=1e-6)  # the closest achievable, at the upper bound


# --- goals -----------------------------------------------------------------------------------------------------------

def test_goal_split_to_child_territories_and_judged_on_actual_values(engine):
    with transaction(engine, "test:goals") as conn:
        for tid, year, value in ((1, 2034, 1000.0), (4, 2034, 1000.0), (4, 2035, 1100.0)):
            conn.execute(text("INSERT INTO cdt.indicator_values (indicator_code, territory_id, period, value, "
                              "source) VALUES ('residents', :t, make_date(:y, 1, 1), :v, 'test')"),
                         {"t": tid, "y": year, "v": value})
    pid = goals_service.create_program(engine, "test-growth", "Рост населения", "19000000", "test:goals", 2034, 2040)
    try:
        gid = goals_service.create_goal(engine, "test:goals", title="Население", territory_oktmo="19000000",
                                        indicator="residents", target_value=1600.0, target_year=2040,
                                        baseline_year=2034, program_id=pid)
        kids = goals_service.split(engine, gid, "test:goals")
        assert len(kids) == 1  # Vologda is the one child with a 2034 value (years after any computed ones)
        tree = goals_service.tree(engine, pid)
        child = tree[0]["children"][0]
        assert child["territory_id"] == 4 and child["target_value"] == pytest.approx(1600.0)
        status = child["status"]
        # 1000 -> 1600 over 6 years; 2035 actual 1100: a sixth of the way (achievement 1/6);
        # the planned path in 2035 is 1100, so no shortfall
        assert status["achievement"] == pytest.approx(1 / 6)
        assert status["shortfall_pct"] == pytest.approx(0.0, abs=1e-9) and not status["critical"]
        # required compound rate (1600/1100)^(1/5) - 1 = 7.78 %/yr against the historical 10 %: on track
        assert status["verdict"] == "on track"
        with engine.connect() as conn:
            targets = conn.execute(text("SELECT count(*) FROM cdt.indicator_values WHERE value_type = 'target' "
                                        "AND indicator_code = 'residents' AND territory_id = 4")).scalar()
        assert targets == 6  # the target path 2035..2040
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM cdt.programs WHERE id = :p"), {"p": pid})
            conn.execute(text("DELETE FROM cdt.indicator_values WHERE indicator_code = 'residents' "
                              "AND source IN ('test') OR source LIKE 'goal:%'"))


# --- who sees an indicator -------------------------------------------------------------------------------------------

def test_indicators_over_restricted_layers_follow_the_layers_read_rules():
    from layers.access import ANONYMOUS, Grant, Principal, Unauthorized
    from layers.errors import Forbidden
    from planning.indicators import access

    reg = {d.code: d for d in catalog.builtin()}
    # heat_network_km reads utility_lines (restricted); heat_network_density is an expression over it.
    assert {"heat_network_km", "heat_network_density"} <= access.hidden(ANONYMOUS, reg)
    assert "residents" not in access.hidden(ANONYMOUS, reg)
    with pytest.raises(Unauthorized):
        access.require_readable(ANONYMOUS, "heat_network_density", reg)
    ekb = Grant("municipal", 5)
    city = Principal("ekb", 1, (ekb,), {ekb: (5,)})
    assert access.allowed(city, "heat_network_density", reg) == {5}
    assert access.allowed(city, "residents", reg) is None
    access.require_readable(city, "heat_network_km", reg, territory_id=5)
    with pytest.raises(Forbidden, match="in this territory"):  # Vologda's value is not Ekaterinburg's to see
        access.require_readable(city, "heat_network_km", reg, territory_id=4)
    fed = Grant("federal", None)
    assert access.allowed(Principal("fed", 2, (fed,), {fed: ()}), "heat_network_km", reg) is None
