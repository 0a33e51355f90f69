"""Service-area needs: the transportation LP, the norms migration, and the service on a fixture and on Vologda."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from scipy.optimize import linprog
from sqlalchemy import text

from layers.access import ANONYMOUS
from layers.db import downgrade, engine_for, migrate
from layers.errors import InvalidParameterValue
from spatial import processes
from spatial.needs import allocate
from spatial.needs_service import needs


# --- the LP -----------------------------------------------------------------------------------------------
def test_hand_solved_case():
    # Facility 0 (capacity 25) reaches buildings 0 and 1; facility 1 (capacity 20) reaches 1 and 2.
    # Served is at most 25 + 20 = 45 and that is reachable; among the allocations serving 45 the shortest sends
    # facility 1 to building 2 (50 m < 300 m) and fills facility 0 with building 0 first (100 m < 200 m).
    a = allocate([10, 20, 30], [25, 20], ([0, 1, 1, 2], [0, 0, 1, 1], [100, 200, 300, 50]),
                 residents=[100, 100, 600])
    assert a.status == "Optimal"
    np.testing.assert_allclose(a.load, [25, 20], atol=1e-7)
    np.testing.assert_allclose(a.served, [10, 15, 20], atol=1e-7)
    np.testing.assert_allclose(a.unmet, [0, 5, 10], atol=1e-7)
    np.testing.assert_allclose(a.flow, [10, 15, 0, 20], atol=1e-7)
    assert a.total_served == pytest.approx(45) and a.total_unmet == pytest.approx(15)
    assert a.weighted_distance == pytest.approx(10 * 100 + 15 * 200 + 20 * 50)
    # covered residents: 100 * 1 + 100 * 15/20 + 600 * 20/30 = 575 of 800
    assert a.covered_share == pytest.approx(575 / 800)
    assert a.phase1_objective == pytest.approx(45) and a.phase2_objective == pytest.approx(5000)


def _random_instance(seed: int, n: int = 60, m: int = 12, integer: bool = False):
    rng = np.random.default_rng(seed)
    d = rng.integers(0, 40, n) if integer else rng.uniform(0, 40, n)
    c = rng.integers(0, 120, m) if integer else rng.uniform(0, 120, m)
    mask = rng.random((n, m)) < 0.25
    bi, fj = np.nonzero(mask)
    dist = rng.integers(1, 500, len(bi)) if integer else rng.uniform(1, 500, len(bi))
    return d, c, bi, fj, dist


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_served_matches_scipy_linprog(seed):
    d, c, bi, fj, dist = _random_instance(seed)
    k, n, m = len(bi), len(d), len(c)
    a_ub = np.zeros((n + m, k))
    a_ub[bi, np.arange(k)] = 1
    a_ub[n + fj, np.arange(k)] = 1
    ref = linprog(-np.ones(k), A_ub=a_ub, b_ub=np.concatenate([d, c]), bounds=(0, None), method="highs-ipm")
    assert ref.status == 0, ref.message
    got = allocate(d, c, (bi, fj, dist))
    assert got.total_served == pytest.approx(-ref.fun, abs=1e-6)
    # Phase 2 against linprog with served fixed at its optimum.
    ref2 = linprog(dist, A_ub=a_ub, b_ub=np.concatenate([d, c]), A_eq=np.ones((1, k)), b_eq=[-ref.fun],
                   bounds=(0, None), method="highs-ipm")
    assert ref2.status == 0, ref2.message
    assert got.weighted_distance == pytest.approx(ref2.fun, rel=1e-6)


@pytest.mark.parametrize("seed", [4, 5])
def test_lexicographic_optimum_matches_networkx_max_flow_min_cost(seed):
    d, c, bi, fj, dist = _random_instance(seed, integer=True)
    g = nx.DiGraph()
    for i, di in enumerate(d):
        g.add_edge("s", ("b", i), capacity=int(di), weight=0)
    for j, cj in enumerate(c):
        g.add_edge(("f", j), "t", capacity=int(cj), weight=0)
    for i, j, w in zip(bi, fj, dist, strict=True):
        g.add_edge(("b", int(i)), ("f", int(j)), weight=int(w))  # no capacity: unbounded
    flow = nx.max_flow_min_cost(g, "s", "t")
    served = sum(flow["s"].values())
    cost = nx.cost_of_flow(g, flow)
    got = allocate(d, c, (bi, fj, dist))
    assert got.total_served == pytest.approx(served, abs=1e-6)
    assert got.weighted_distance == pytest.approx(cost, abs=1e-6 * max(1, cost))


def test_degenerate_inputs_leave_everything_unmet():
    zero_cap = allocate([5, 7], [0, 0], ([0, 1], [0, 1], [10, 10]))
    np.testing.assert_array_equal(zero_cap.unmet, [5, 7])
    assert zero_cap.total_served == 0 and zero_cap.load.tolist() == [0, 0]
    no_pairs = allocate([5, 7], [10], ([], [], []))
    assert no_pairs.total_unmet == 12 and no_pairs.covered_share == 0
    no_demand = allocate([0, 0], [10], ([0], [0], [1]))
    assert no_demand.total_demand == 0 and no_demand.covered_share is None


def test_duplicate_pairs_keep_the_shortest_distance():
    a = allocate([4], [10], ([0, 0], [0, 0], [300, 120]))
    assert len(a.flow) == 1 and a.weighted_distance == pytest.approx(4 * 120)


@pytest.mark.parametrize("args, message", [
    (([-1], [1], ([0], [0], [1])), "demand has negative"),
    (([1], [np.nan], ([0], [0], [1])), "capacity has non-finite"),
    (([1], [1], ([0], [3], [1])), "outside"),
    (([1], [1], ([0], [0], [-5])), "non-negative"),
])
def test_bad_lp_inputs(args, message):
    with pytest.raises(InvalidParameterValue, match=message):
        allocate(*args)


# --- the norms migration ---------------------------------------------------------------------------------
def test_regional_norm_rows_and_their_downgrade(make_database):
    url = make_database()
    eng = engine_for(url)
    query = text("SELECT type_code, demand_per_1000, demand_unit, source_document FROM cdt.planning_norms "
                 "WHERE region_oktmo = '19000000' ORDER BY type_code")
    try:
        with eng.connect() as conn:
            rows = conn.execute(query).all()
            assert [(r.type_code, r.demand_per_1000) for r in rows] == [("kindergarten", 61.0), ("school", 120.0)]
            assert all(r.demand_unit == "places per 1,000 residents" for r in rows)
            assert all("aimclub/blocksnet" in r.source_document and "default.json" in r.source_document
                       for r in rows)
            federal = conn.execute(text("SELECT count(*) FROM cdt.planning_norms")).scalar()
        downgrade(url, "0007")
        with eng.connect() as conn:
            assert conn.execute(query).all() == []
            assert conn.execute(text("SELECT count(*) FROM cdt.planning_norms")).scalar() == federal - 2
        migrate(url)
        with eng.connect() as conn:
            assert len(conn.execute(query).all()) == 2
    finally:
        eng.dispose()


# --- the service on a hand-made fixture ------------------------------------------------------------------
# Coordinates in UTM 37N metres around (500000, 6570000). Street 1: (0,0)-(400,0); street 2: (0,150)-(400,150),
# not connected. Kindergarten K at (300,-10) capacity 50; kindergarten L at (300,160) without capacity.
# b1 (1,000 residents, 5 floors) at (100,-20): walks 20 + 200 + 10 = 230 m to K, door to door, within 300 m.
# b2 (500 residents, 2 floors: low-rise, 500 m) at (300,120): 130 m from K in a straight line but its street
#     does not reach K; only L (skipped) is on its street.
# b3 (200 residents, 9 floors) at (-350,0): 350 + 300 + 10 = 660 m from K, beyond 300 m.
X0, Y0 = 500000, 6570000


def _pt(x: float, y: float) -> str:
    return f"ST_Transform(ST_SetSRID(ST_MakePoint({X0 + x}, {Y0 + y}), 32637), 4326)"


def _square(x: float, y: float) -> str:
    return (f"ST_Multi(ST_Transform(ST_SetSRID(ST_MakeEnvelope({X0 + x - 2}, {Y0 + y - 2}, {X0 + x + 2}, "
            f"{Y0 + y + 2}), 32637), 4326))")


@pytest.fixture(scope="module")
def fixture_engine(make_database):
    eng = engine_for(make_database())
    with eng.begin() as conn:
        conn.execute(text("INSERT INTO cdt.territories (id, oktmo, name, level) VALUES "
                          "(1, '19000000', 'Вологодская обл', 'federal_subject')"))
        conn.execute(text("INSERT INTO cdt.territories (id, oktmo, name, level, parent_id) VALUES "
                          "(2, '19701000', 'г Вологда', 'urban_okrug', 1)"))
        for nid, (x, y) in enumerate([(0, 0), (400, 0), (0, 150), (400, 150)], start=1):
            conn.execute(text(f"INSERT INTO cdt.street_nodes (id, geom) VALUES ({nid}, {_pt(x, y)})"))
        for eid, (a, b, (x1, y1), (x2, y2)) in enumerate([(1, 2, (0, 0), (400, 0)),
                                                          (3, 4, (0, 150), (400, 150))], start=1):
            conn.execute(text(f"INSERT INTO cdt.street_edges (id, from_node, to_node, geom) VALUES ({eid}, {a}, {b}, "
                              f"ST_MakeLine({_pt(x1, y1)}, {_pt(x2, y2)}))"))
        for bid, (x, y, residents, floors) in enumerate([(100, -20, 1000, 5), (300, 120, 500, 2),
                                                          (-350, 0, 200, 9)], start=1):
            conn.execute(text(f"INSERT INTO cdt.buildings (id, geom, residents, floors, territory_id) VALUES "
                              f"({bid}, {_square(x, y)}, {residents}, {floors}, 2)"))
        conn.execute(text(f"INSERT INTO cdt.facilities (id, type_code, name, capacity, geom, territory_id) VALUES "
                          f"(1, 'kindergarten', 'K', 50, {_pt(300, -10)}, 2), "
                          f"(2, 'kindergarten', 'L', NULL, {_pt(300, 160)}, 2)"))
    yield eng
    eng.dispose()


def test_service_on_the_fixture(fixture_engine):
    r = needs(fixture_engine, ANONYMOUS, "kindergarten", "19701000")
    s = r["summary"]
    assert s["solver"]["status"] == "Optimal"
    assert s["facilities"] == 1 and s["facilities_without_capacity"] == 1
    by_id = {b["id"]: b for b in r["buildings"]}
    assert [by_id[i]["demand"] for i in (1, 2, 3)] == pytest.approx([61.0, 30.5, 12.2])  # residents * 61 / 1000
    assert [by_id[i]["radius_m"] for i in (1, 2, 3)] == [300, 500, 300]  # 2 floors: low-rise 500 m
    assert [by_id[i]["served"] for i in (1, 2, 3)] == pytest.approx([50, 0, 0], abs=1e-7)
    assert s["total_unmet"] == pytest.approx(103.7 - 50) and s["deficit"] == s["total_unmet"]
    assert r["facilities"] == [pytest.approx({"id": 1, "name": "K", "capacity": 50.0, "load": 50.0,
                                              "reachable_buildings": 1, "load_pct": 100.0})]
    # 50 places walk 230 m each. Re-derived for the new rule (spatial.network snapping in the UTM zone): the
    # access legs 20 + 10 m are straight lines in UTM metres, the 200 m along the street follow the edge's ground
    # length (UTM metres / 0.9996 on the central meridian): 30 + 200 / 0.9996 = 230.08 m (the old rule measured
    # the legs on the ground too: 230 / 0.9996 = 230.09 m).
    assert s["weighted_distance"] / 50 == pytest.approx(30 + 200 / 0.9996, abs=0.01)
    assert s["covered_share"] == pytest.approx(1000 * 50 / 61 / 1700)
    assert r["territories"][0]["oktmo"] == "19701000"
    assert r["territories"][0]["deficit"] == pytest.approx(53.7)
    hexes = r["districts"]["features"]
    assert sum(h["properties"]["deficit"] for h in hexes) == pytest.approx(53.7)
    assert sum(h["properties"]["buildings"] for h in hexes) == 3
    assert all(h["geometry"]["type"] == "Polygon" and len(h["geometry"]["coordinates"][0]) == 7 for h in hexes)


def test_federal_fallback_without_a_demand_norm(fixture_engine):
    # Sverdlovsk Oblast has no regional row, and the federal rows (SP 42) give radii only.
    with pytest.raises(InvalidParameterValue, match="no demand norm .*'kindergarten' in region 65000000"):
        needs(fixture_engine, ANONYMOUS, "kindergarten", "19701000", region_oktmo="65000000")


# --- the service on the Vologda demo ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def vologda(engine):
    return needs(engine, ANONYMOUS, "kindergarten", "19701000")


def test_vologda_kindergartens(vologda, engine):
    s, facilities = vologda["summary"], vologda["facilities"]
    assert s["solver"]["status"] == "Optimal"
    assert s["buildings"] == 1418 and s["residents"] == 356810
    assert s["total_demand"] == pytest.approx(356810 * 61 / 1000)
    assert sum(f["load"] for f in facilities) <= 28270 + 1e-6
    assert s["total_capacity"] <= 28270
    assert all(f["load"] <= f["capacity"] + 1e-6 for f in facilities)
    assert s["total_served"] + s["total_unmet"] == pytest.approx(s["total_demand"])
    assert s["total_served"] == pytest.approx(sum(f["load"] for f in facilities))
    assert sum(b["unmet"] for b in vologda["buildings"]) == pytest.approx(s["total_unmet"])
    assert all(-1e-9 <= b["unmet"] <= b["demand"] + 1e-9 for b in vologda["buildings"])
    (city,) = vologda["territories"]
    assert city["deficit"] == pytest.approx(s["deficit"])
    hexes = vologda["districts"]["features"]
    assert sum(h["properties"]["deficit"] for h in hexes) == pytest.approx(city["deficit"])
    assert sum(h["properties"]["buildings"] for h in hexes) == 1418
    with engine.connect() as conn:
        low_rise = conn.execute(text("SELECT count(*) FROM cdt.buildings WHERE residents > 0 AND floors <= 3")).scalar()
    assert sum(b["radius_m"] == 500 for b in vologda["buildings"]) == low_rise


@pytest.mark.parametrize("kwargs, message", [
    ({"facility_type": "spaceport"}, "unknown facility type 'spaceport'; known types: boiler_house, college"),
    ({"facility_type": "hospital"}, "no planning norm for facility type 'hospital'; norms exist for: kindergarten"),
    ({"facility_type": "pharmacy"}, "no demand norm .*pharmacy"),
    ({"facility_type": "kindergarten", "territory_oktmo": "65701000"}, "territory 65701000 has no residential"),
    ({"facility_type": "kindergarten", "territory_oktmo": "12345678"}, "no territory with OKTMO 12345678"),
    ({"facility_type": "kindergarten", "territory_oktmo": "19 701"}, "8 or 11 digits"),
    ({"facility_type": "kindergarten", "region_oktmo": "19"}, "8-digit OKTMO"),
])
def test_bad_service_inputs(engine, kwargs, message):
    with pytest.raises(InvalidParameterValue, match=message) as caught:
        needs(engine, ANONYMOUS, **kwargs)
    assert caught.value.status == 400


def test_process_is_registered_and_runs(engine):
    process = processes.get("service-needs")
    inputs = processes.validate_inputs(process, {"facility_type": "school", "territory": "19701000"})
    assert inputs["hex_size_m"] == 1000
    out = process.run(processes.RunContext(engine, ANONYMOUS), inputs)
    assert set(out) >= {"summary", "facilities", "districts", "buildings"}
    assert out["districts"]["type"] == "FeatureCollection"
    assert out["summary"]["total_demand"] == pytest.approx(356810 * 120 / 1000)
    assert all(f["load"] <= f["capacity"] + 1e-6 for f in out["facilities"])
