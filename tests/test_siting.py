"""Siting models (spatial.siting) on hand-computed and spopt's own instances; the service on the demo city."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pulp
import pytest
from sqlalchemy import text

from layers.access import ANONYMOUS
from layers.db import engine_for
from layers.errors import InvalidParameterValue
from spatial import siting
from spatial.processes import RunContext, get, validate_inputs
from spatial.siting_service import site

SPOPT_DATA = Path(pulp.__file__).parents[1] / "spopt/tests/test_locate/data"

# 4 demand points x 3 sites: site 0 is next to demand 0 and 1, site 1 to demand 2, site 2 to demand 3.
COST = np.array([[1, 10, 10], [2, 10, 10], [10, 1, 10], [10, 10, 1]], dtype=float)
W = np.array([5, 5, 1, 2], dtype=float)


# --- hand-computed ----------------------------------------------------------------------------------------------
def test_p_median_tiny():
    # p=1: site 0 costs 5+10+10+20 = 45 (site 1: 121, site 2: 112); p=2: {0, 2} costs 5+10+10+2 = 27
    one = siting.p_median(COST, W, 1)
    assert (one.sites, one.objective, one.status, one.gap) == ([0], 45.0, "Optimal", 0.0)
    two = siting.p_median(COST, W, 2)
    assert (two.sites, two.objective) == ([0, 2], 27.0)
    assert list(two.assignment[[0, 1, 3]]) == [0, 0, 2] and two.assignment[2] in (0, 2)  # demand 2: a tie
    assert two.bound == pytest.approx(27.0) and two.solver.startswith("HiGHS ")


def test_mclp_tiny_and_fixed_sites():
    r = siting.mclp(COST, W, 5, 1)  # site 0 covers demand 0 and 1 (weight 10)
    assert (r.sites, r.objective, r.covered, list(r.assignment)) == ([0], 10.0, 10.0, [0, 0, -1, -1])
    assert siting.mclp(COST, W, 5, 2).sites == [0, 2]
    fixed = siting.mclp(COST, W, 5, 1, fixed=[2])  # site 2 open already: one new site, coverage 2 + 10
    assert (fixed.sites, fixed.open_sites, fixed.objective) == ([0], [0, 2], 12.0)


def test_lscp_tiny_and_uncoverable():
    r = siting.lscp(COST, 5)
    assert (r.sites, r.objective, r.status) == ([0, 1, 2], 3.0, "Optimal")
    assert siting.lscp(COST, 5, fixed=[1]).sites == [0, 2]
    far = np.vstack([COST, [10, 10, 10], [9, 9, 9]])
    with pytest.raises(InvalidParameterValue, match="2 of 6 demand points"):
        siting.lscp(far, 5)


def test_capacitated_tiny():
    # p=2, site 0 holds 6: demand 0 (5 at 1) + 1 of demand 1 (at 2) there, 4 of demand 1 at 10 elsewhere,
    # demand 2 at 10 and demand 3 at 1 on site 2: 5 + 2 + 40 + 10 + 2 = 59 (sites {0, 1}: 68; {1, 2}: 103)
    r = siting.p_median(COST, W, 2, capacity=[6, 100, 100])
    assert (r.model, r.sites, r.status) == ("capacitated-p-median", [0, 2], "Optimal")
    assert r.objective == pytest.approx(59.0)
    load = {j: sum(W[i] * s for i, jj, s in r.allocation if jj == j) for j in r.open_sites}
    assert load[0] == pytest.approx(6.0) and load[2] == pytest.approx(7.0)
    mc = siting.mclp(COST, W, 5, 1, capacity=6)  # site 0 covers 10 but serves only 6
    assert (mc.sites, mc.objective) == ([0], pytest.approx(6.0))
    with pytest.raises(InvalidParameterValue, match="infeasible capacities.*less than the demand of 13"):
        siting.p_median(COST, W, 2, capacity=1)


def test_bad_core_inputs():
    with pytest.raises(InvalidParameterValue, match="from 0 to 3"):
        siting.p_median(COST, W, 4)
    with pytest.raises(InvalidParameterValue, match="weights must be 4"):
        siting.mclp(COST, [1, 2], 5, 1)
    with pytest.raises(InvalidParameterValue, match="cannot reach any site"):
        siting.p_median(np.vstack([COST, [np.inf] * 3]), [*W, 1], 1)


# --- spopt's shipped data and the values its tests assert ----------------------------------------------------------
@pytest.fixture(scope="module")
def sf():
    dist = pd.read_csv(SPOPT_DATA / "SF_network_distance_candidateStore_16_censusTract_205_new.csv")
    cost = dist.pivot_table(values="distance", index="DestinationName", columns="name").to_numpy()
    demand = pd.read_csv(SPOPT_DATA / "SF_demand_205_centroid_uniform_weight.csv").sort_values(by=["NAME"])
    return cost, demand["POP2000"].to_numpy().astype(float)


def test_spopt_sf_p_median(sf):
    cost, w = sf
    r = siting.p_median(cost, w, 4)
    # spopt's test_p_median.py: mean_dist == 2982.1268579890657
    assert r.objective / w.sum() == pytest.approx(2982.1268579890657, rel=1e-12)
    assert (r.status, r.gap) == ("Optimal", 0.0)


def test_spopt_sf_mclp_and_lscp(sf):
    cost, w = sf
    r = siting.mclp(cost, w, 5000.0, 4)
    # spopt's test_mclp.py: 21 uncovered clients, 89.75609756097561 % covered
    assert int((r.assignment < 0).sum()) == 21
    assert 100 * (r.assignment >= 0).mean() == pytest.approx(89.75609756097561)
    from spopt.locate import LSCP, MCLP

    sp_mclp = MCLP.from_cost_matrix(cost, w, 5000.0, 4).solve(pulp.PULP_CBC_CMD(msg=False))
    assert r.objective == pytest.approx(sp_mclp.problem.objective.value(), rel=1e-9)
    sp_lscp = LSCP.from_cost_matrix(cost, 5000.0).solve(pulp.PULP_CBC_CMD(msg=False))
    assert siting.lscp(cost, 5000.0).objective == sp_lscp.problem.objective.value() == 8


def test_spopt_school_capacitated_p_median():
    """spopt's capacitated p-median data (students x schools, capacities), 10 schools, against spopt itself."""
    from spopt.locate import PMedian

    times = pd.read_csv(SPOPT_DATA / "example_subject_student_school_journeys.csv")
    cost = times.pivot_table(columns="school", fill_value=10000, index="student", sort=False,
                             values="time").astype(int).values.astype(float)
    schools = pd.read_csv(SPOPT_DATA / "example_subject_schools.csv")
    cap = schools["Count"].to_numpy().astype(float)
    demand = np.ones(cost.shape[0])
    ours = siting.p_median(cost, demand, 10, capacity=cap)
    theirs = PMedian.from_cost_matrix(cost, demand, 10, facility_capacities=cap).solve(pulp.PULP_CBC_CMD(msg=False))
    assert ours.status == "Optimal"
    assert ours.objective == pytest.approx(theirs.problem.objective.value(), rel=1e-6)


def test_random_instance_agrees_with_spopt():
    from spopt.locate import MCLP, PMedian

    rng = np.random.default_rng(7)
    pts_d, pts_s = rng.uniform(0, 10, (60, 2)), rng.uniform(0, 10, (20, 2))
    cost = np.linalg.norm(pts_d[:, None] - pts_s[None], axis=2)
    w = rng.integers(1, 12, 60).astype(float)
    ours = siting.p_median(cost, w, 5)
    theirs = PMedian.from_cost_matrix(cost, w, p_facilities=5).solve(pulp.PULP_CBC_CMD(msg=False))
    assert ours.objective == pytest.approx(theirs.problem.objective.value(), rel=1e-6)
    assert ours.gap <= 1e-4 and ours.bound <= ours.objective
    mc = siting.mclp(cost, w, 2.0, 5)
    sp_mc = MCLP.from_cost_matrix(cost, w, 2.0, 5).solve(pulp.PULP_CBC_CMD(msg=False))
    assert mc.objective == pytest.approx(sp_mc.problem.objective.value(), rel=1e-6)
    # spopt assigns each demand point whole (binary); with unit demand and integer capacities a split never pays
    ones, cap = np.ones(60), rng.integers(8, 16, 20).astype(float)
    c_ours = siting.p_median(cost, ones, 6, capacity=cap)
    c_theirs = PMedian.from_cost_matrix(cost, ones, 6, facility_capacities=cap).solve(pulp.PULP_CBC_CMD(msg=False))
    assert c_ours.objective == pytest.approx(c_theirs.problem.objective.value(), rel=1e-6)


def test_status_and_gap_come_from_highs():
    """HiGHS's own status string is reported: a time limit too short to find anything says so."""
    rng = np.random.default_rng(3)
    cost = rng.uniform(1, 100, (300, 120))
    w = rng.uniform(1, 10, 300)
    with pytest.raises(InvalidParameterValue, match=r"HiGHS found no solution \(Time limit reached\)"):
        siting.p_median(cost, w, 20, capacity=150.0, time_limit=0.01)
    pts_d, pts_s = rng.uniform(0, 10, (300, 2)), rng.uniform(0, 10, (120, 2))  # geometric, as in a city
    r = siting.p_median(np.linalg.norm(pts_d[:, None] - pts_s[None], axis=2), w, 20)
    assert r.status == "Optimal" and r.gap <= 1e-4 and r.bound <= r.objective
    assert r.details["lagrangian_bound"] <= r.objective


# --- the service on the demo city -----------------------------------------------------------------------------------
def test_service_mclp_vologda(engine):
    out = site(engine, ANONYMOUS, "kindergarten", 5, model="mclp")
    rep, deficit = out["report"], out["deficit"]
    assert rep["status"] == "Optimal" and rep["new_sites"] == 5 and rep["gap"] == 0.0
    assert deficit["service_distance_m"] == 300
    assert deficit["share_after"] > deficit["share_before"] > 0
    feats = out["sites"]["features"]
    assert len(feats) == 5
    gain = sum(f["properties"]["coverage_gain"] for f in feats)
    assert gain == pytest.approx(deficit["covered_after"] - deficit["covered_before"])
    lon, lat = feats[0]["geometry"]["coordinates"]
    assert 39.6 < lon < 40.2 and 59.1 < lat < 59.3
    assert out["inputs"]["existing_facilities"] == 120


def test_service_p_median_and_points(engine):
    out = site(engine, ANONYMOUS, "school", 2, model="p-median",
               candidates=[[39.88, 59.21], [39.90, 59.22], [39.95, 59.20]])
    assert out["report"]["status"] == "Optimal" and len(out["sites"]["features"]) == 2
    assert {f["properties"]["source"] for f in out["sites"]["features"]} == {"point"}
    assert out["deficit"]["covered_after"] >= out["deficit"]["covered_before"]


def test_process_registered_and_runs(engine):
    proc = get("siting")
    assert proc.long_running
    inputs = validate_inputs(proc, {"facility_type": "school", "k": 1, "model": "p-median",
                                    "candidates": [[39.88, 59.21], [39.90, 59.22]]})
    out = proc.run(RunContext(engine, ANONYMOUS), inputs)
    assert set(out) == set(proc.outputs) and out["report"]["new_sites"] == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"facility_type": "cinema", "k": 1}, "unknown facility type 'cinema'; known types: .*kindergarten"),
    ({"facility_type": "school", "k": 0}, "at least 1"),
    ({"facility_type": "school", "k": 3, "candidates": [[39.88, 59.21], [39.9, 59.22]]}, "k = 3 exceeds the 2"),
    ({"facility_type": "school", "k": 1, "candidates": "parcels"}, "no candidate sites: .*vacant parcels"),
    ({"facility_type": "school", "k": 1, "candidates": [[39.88, 959.0]]}, r"candidate point 0 must be \[lon, lat\]"),
    ({"facility_type": "school", "k": 1, "model": "lscp"}, "set covering is infeasible: .* demand points"),
    ({"facility_type": "school", "k": 1, "territory_oktmo": "00000000"}, "no territory with OKTMO"),
    ({"facility_type": "college", "k": 1}, "no walking radius .* give service_distance_m"),
    # a candidate on a two-node piece of street unconnected to anybody's home, no pharmacy exists yet
    ({"facility_type": "pharmacy", "k": 1, "model": "p-median", "candidates": [[39.9723321, 59.1779733]]},
     r"does not connect any demand .*\(all .* unreachable"),
])
def test_service_bad_inputs(engine, kwargs, message):
    with pytest.raises(InvalidParameterValue, match=message) as info:
        site(engine, ANONYMOUS, **kwargs)
    assert info.value.status == 400


def test_service_empty_territory(make_database):
    url = make_database()
    eng = engine_for(url)
    try:
        with eng.begin() as conn:
            conn.execute(text("INSERT INTO cdt.territories (oktmo, name, level, boundary) VALUES ('19701000', 'x', "
                              "'urban_okrug', ST_Multi(ST_MakeEnvelope(39.8, 59.1, 40.0, 59.3, 4326)))"))
        with pytest.raises(InvalidParameterValue, match="no residential buildings"):
            site(eng, ANONYMOUS, "school", 1)
    finally:
        eng.dispose()


# --- the service's costs on a hand-made street --------------------------------------------------------------------
# UTM 37N metres around (500000, 6570000), the central meridian: one street 1 -(600 m)- 2 -(600 m)- 3 along y = 0.
# Residential buildings: A (100 residents) at (100, 30) and B (300) at (200, -20) on edge 1-2, C (50) at (1100, 10)
# on edge 2-3. An existing school E at (300, 50); a user-drawn candidate P at (700, -40).
X0, Y0 = 500000, 6570000
K0 = 0.9996  # UTM scale on the central meridian: edge lengths (ground metres) are the UTM metres / K0


def _pt(x: float, y: float) -> str:
    return f"ST_Transform(ST_SetSRID(ST_MakePoint({X0 + x}, {Y0 + y}), 32637), 4326)"


def _lonlat(x: float, y: float) -> list[float]:
    from pyproj import Transformer

    return list(Transformer.from_crs(32637, 4326, always_xy=True).transform(X0 + x, Y0 + y))


@pytest.fixture(scope="module")
def street_engine(make_database):
    eng = engine_for(make_database())
    with eng.begin() as conn:
        conn.execute(text("INSERT INTO cdt.territories (id, oktmo, name, level, boundary) VALUES (2, '19701000', "
                          "'г Вологда', 'urban_okrug', ST_Multi(ST_Transform(ST_SetSRID(ST_MakeEnvelope("
                          f"{X0 - 300}, {Y0 - 300}, {X0 + 1500}, {Y0 + 300}), 32637), 4326)))"))
        for nid, x in enumerate([0, 600, 1200], start=1):
            conn.execute(text(f"INSERT INTO cdt.street_nodes (id, geom) VALUES ({nid}, {_pt(x, 0)})"))
        for eid, (a, b) in enumerate([(1, 2), (2, 3)], start=1):
            conn.execute(text(f"INSERT INTO cdt.street_edges (id, from_node, to_node, geom) VALUES ({eid}, {a}, {b}, "
                              f"ST_MakeLine({_pt(600 * (a - 1), 0)}, {_pt(600 * (b - 1), 0)}))"))
        for bid, (x, y, residents) in enumerate([(100, 30, 100), (200, -20, 300), (1100, 10, 50)], start=1):
            conn.execute(text(f"INSERT INTO cdt.buildings (id, geom, is_living, residents, territory_id) VALUES "
                              f"({bid}, ST_Multi(ST_Transform(ST_SetSRID(ST_MakeEnvelope({X0 + x - 2}, {Y0 + y - 2}, "
                              f"{X0 + x + 2}, {Y0 + y + 2}), 32637), 4326)), true, {residents}, 2)"))
        conn.execute(text(f"INSERT INTO cdt.facilities (id, type_code, name, capacity, geom, territory_id) VALUES "
                          f"(1, 'school', 'E', 100, {_pt(300, 50)}, 2)"))
    yield eng
    eng.dispose()


def test_service_costs_by_hand(street_engine):
    from spatial import siting_service

    with street_engine.connect() as conn:
        norm = siting_service._norm(conn, "school", "19701000")
        inst = siting_service._instance(street_engine, conn, ANONYMOUS, "school", "19701000", [_lonlat(700, -40)],
                                        500, norm, None)
    # Demand: A and B join node 1 (100 and 200 m along their edge, nearer than node 2), C joins node 3 (100 m).
    # Their door-to-node walks: A 30 + 100/K0, B 20 + 200/K0, C 10 + 100/K0; node 1's residents-weighted mean
    # (100 A, 300 B) is (100 x 130.04 + 300 x 220.08) / 400 = 197.57.
    leg1 = (100 * (30 + 100 / K0) + 300 * (20 + 200 / K0)) / 400
    leg3 = 10 + 100 / K0
    assert inst.weights == pytest.approx([400 * 0.12, 50 * 0.12])  # residents x 120 / 1000 (region 19 norm)
    assert inst.n_candidates == 1 and [c["source"] for c in inst.candidates[:1]] == ["point"]
    assert inst.candidates[0]["snap_m"] == pytest.approx(40, abs=0.01)  # P: 40 m to its edge (UTM metres)
    # columns: P, then E. P sits on edge 2-3, 100 m past node 2; E on edge 1-2, 300 m past node 1.
    expected = [[leg1 + (600 + 100) / K0 + 40, leg1 + 300 / K0 + 50],  # node 1: via node 2 to P; along edge 1 to E
                [leg3 + 500 / K0 + 40, leg3 + (600 + 300) / K0 + 50]]  # node 3: along edge 2 to P; via node 2 to E
    np.testing.assert_allclose(inst.cost, expected, atol=0.01)
    # Within 700 m: node 1 reaches E (197.6 + 300.1 + 50 = 547.7), node 3 only P (110.0 + 500.2 + 40 = 650.2;
    # E is 1,060.4 m away): 48 places covered before, 48 + 6 after opening P.
    out = site(street_engine, ANONYMOUS, "school", 1, model="mclp", candidates=[_lonlat(700, -40)],
               service_distance_m=700)
    assert out["deficit"]["covered_before"] == pytest.approx(48)
    assert out["deficit"]["covered_after"] == pytest.approx(54)
    assert out["sites"]["features"][0]["properties"]["snap_m"] == 40.0
