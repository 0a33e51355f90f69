"""Street networks and accessibility: hand-computed small graphs for every algorithm, then Vologda against an
independent networkx reference, the service's refusals, and the network cache on a hand-made database.

Walking speed is 4.8 km/h = 4/3 m/s, so 100 m take 75 s.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import shapely
from pyproj import Transformer
from sqlalchemy import text

from layers.access import ANONYMOUS
from layers.db import engine_for
from layers.errors import InvalidParameterValue
from spatial import access_service as service
from spatial import accessibility as acc
from spatial.network import build_network, snap, snaps_on_edges

W = 4.0 / 3.0  # walking speed, m/s
UTM = 32637
TO_LL = Transformer.from_crs(UTM, 4326, always_xy=True)
TO_UTM = Transformer.from_crs(4326, UTM, always_xy=True)
X0, Y0 = 500_000.0, 6_565_000.0  # near Vologda (39.0 E, 59.2 N) in UTM zone 37


# --- hand graphs --------------------------------------------------------------------------------------------
def path_graph(mode: str = "walk"):
    """1 --100 m-- 2 --200 m-- 3 --300 m-- 4 (edges 0, 1, 2)."""
    return build_network([1, 2, 3, 4], [1, 2, 3], [2, 3, 4], [100.0, 200.0, 300.0], mode)


def test_path_graph_nearest_with_access_legs():
    net = path_graph()
    origins = snaps_on_edges(net, [0, 2], [0.0, 300.0], [0.0, 10.0])  # at node 1; 10 m off node 4
    target = snaps_on_edges(net, [1], [50.0], [5.0])  # 50 m into edge 2-3, 5 m off the street
    secs, metres, idx = acc.nearest(net, origins, target)
    # node 1: 100 + 50 + 5 = 155 m; node 4 side: 10 + 300 + 150 + 5 = 465 m
    assert metres == pytest.approx([155.0, 465.0])
    assert secs == pytest.approx([155.0 / W, 465.0 / W])
    assert idx.tolist() == [0, 0]


def test_square_with_diagonal_takes_the_diagonal_and_the_shorter_of_parallel_edges():
    # 1(0,0) 2(100,0) 3(100,100) 4(0,100); sides 100 m, diagonal 1-3 141.42 m, and a parallel 1-3 of 500 m
    diag = 100.0 * math.sqrt(2.0)
    net = build_network([1, 2, 3, 4], [1, 2, 3, 4, 1, 3], [2, 3, 4, 1, 3, 1], [100, 100, 100, 100, diag, 500.0])
    origin = snaps_on_edges(net, [0], [0.0])  # at node 1
    target = snaps_on_edges(net, [1], [100.0])  # at node 3 (end of edge 2-3)
    secs, metres, _ = acc.nearest(net, origin, target)
    assert metres[0] == pytest.approx(diag)  # not 200 m round the square, not the sum of parallel edges
    assert secs[0] == pytest.approx(diag / W)
    assert acc.travel_times(net, origin, target)[0, 0] == pytest.approx(diag / W)


def oneway_graph():
    """1 -> 2 oneway 100 m at 36 km/h (10 m/s); 2 - 3 100 m, no speed (30 km/h); 3 - 1 1000 m, no speed."""
    return build_network([1, 2, 3], [1, 2, 3], [2, 3, 1], [100.0, 100.0, 1000.0], "drive",
                         oneway=[True, False, False], speed_kmh=[36.0, None, None])


def test_drive_respects_oneway_and_default_speed():
    net = oneway_graph()
    v30 = 30.0 / 3.6
    at1, at3 = snaps_on_edges(net, [0], [0.0]), snaps_on_edges(net, [1], [100.0])
    assert acc.nearest(net, at1, at3)[0][0] == pytest.approx(10.0 + 100.0 / v30)  # 1 -> 2 -> 3: 22 s
    # back from 3 to 1: not against the oneway 2 -> 1, round by the 1000 m street: 120 s
    secs, metres, _ = acc.nearest(net, at3, at1)
    assert secs[0] == pytest.approx(1000.0 / v30)
    assert metres[0] == pytest.approx(1000.0)  # metres summed along the path (speeds differ per edge)
    walk = build_network([1, 2, 3], [1, 2, 3], [2, 3, 1], [100.0, 100.0, 1000.0], "walk", oneway=[True, False, False])
    assert acc.nearest(walk, snaps_on_edges(walk, [1], [100.0]), snaps_on_edges(walk, [0], [0.0]))[0][0] == \
        pytest.approx(200.0 / W)  # a pedestrian walks a oneway street both ways


def test_drive_same_oneway_edge_behind_the_car_and_walked_access_leg():
    net = oneway_graph()
    v30 = 30.0 / 3.6
    # the car stands in the middle of 1 -> 2, 20 m off the street; the target is at node 1 behind it:
    # walk 20 m (15 s), 50 m to 2 (5 s), 2 -> 3 (12 s), 3 -> 1 (120 s); reversing along the edge is not allowed
    origin = snaps_on_edges(net, [0], [50.0], [20.0])
    target = snaps_on_edges(net, [0], [0.0])
    secs, metres, _ = acc.nearest(net, origin, target)
    assert secs[0] == pytest.approx(20.0 / W + 5.0 + 100.0 / v30 + 1000.0 / v30)
    assert metres[0] == pytest.approx(20.0 + 50.0 + 100.0 + 1000.0)
    # ahead of the car on the same edge: straight along it
    ahead = snaps_on_edges(net, [0], [80.0])
    assert acc.nearest(net, origin, ahead)[0][0] == pytest.approx(20.0 / W + 3.0)


def test_origin_and_target_on_the_same_edge_go_straight_along_it():
    net = build_network([1, 2, 3], [1, 2], [2, 3], [1000.0, 50.0])
    origin = snaps_on_edges(net, [0], [400.0], [10.0])
    targets = snaps_on_edges(net, [0, 1], [600.0, 25.0], [0.0, 0.0])  # same edge 200 m on; the other 625 m
    secs, metres, idx = acc.nearest(net, origin, targets)
    assert (idx[0], metres[0]) == (0, pytest.approx(210.0))  # via an end it would be 10 + 1000 m
    assert secs[0] == pytest.approx(210.0 / W)
    times = acc.travel_times(net, origin, targets)
    assert times[0] == pytest.approx([210.0 / W, (10.0 + 600.0 + 25.0) / W])


def test_disconnected_components_give_inf_and_no_target():
    # component A: 1 - 2; component B: 3 - 4; the only target is on A
    net = build_network([1, 2, 3, 4], [1, 3], [2, 4], [100.0, 100.0])
    origins = snaps_on_edges(net, [0, 1], [10.0, 10.0])
    target = snaps_on_edges(net, [0], [60.0])
    secs, metres, idx = acc.nearest(net, origins, target)
    assert secs[0] == pytest.approx(50.0 / W) and idx[0] == 0
    assert np.isinf(secs[1]) and np.isinf(metres[1]) and idx[1] == -1
    k_secs, k_idx = acc.k_nearest(net, origins, target, 2)
    assert np.isinf(k_secs[1]).all() and k_idx[1].tolist() == [-1, -1]
    assert k_idx[0].tolist() == [0, -1]  # fewer than k reachable


def test_k_nearest_order_and_limit():
    net = path_graph()
    origin = snaps_on_edges(net, [0], [0.0])  # node 1
    targets = snaps_on_edges(net, [2, 0, 1], [100.0, 50.0, 100.0])  # 400 m, 50 m, 200 m from node 1
    secs, idx = acc.k_nearest(net, origin, targets, 2)
    assert idx[0].tolist() == [1, 2]
    assert secs[0] == pytest.approx([50.0 / W, 200.0 / W])
    secs, idx = acc.k_nearest(net, origin, targets, 3, limit=250.0 / W)  # the 400 m one is beyond the limit
    assert idx[0].tolist() == [1, 2, -1] and np.isinf(secs[0, 2])
    # nearest() agrees with the first of k_nearest
    assert acc.nearest(net, origin, targets)[2][0] == 1


def line_network(n_edges: int = 3, edge_m: float = 600.0):
    """A straight east-west street of n edges near Vologda, geometry in UTM 37N; node ids 1..n+1."""
    xs = X0 + edge_m * np.arange(n_edges + 1)
    geoms = [shapely.LineString([(xs[i], Y0), (xs[i + 1], Y0)]) for i in range(n_edges)]
    ids = np.arange(1, n_edges + 2)
    return build_network(ids, ids[:-1], ids[1:], [edge_m] * n_edges, geoms=geoms, metric_crs=UTM)


def lonlat(x: float, y: float) -> tuple[float, float]:
    return TO_LL.transform(x, y)


def test_snap_projects_onto_the_nearest_edge():
    net = line_network()
    lon, lat = zip(lonlat(X0 + 900.0, Y0 + 30.0), lonlat(X0 + 100.0, Y0 - 5000.0), strict=True)
    snaps = snap(net, np.array(lon), np.array(lat))
    assert snaps.edge.tolist() == [1, 0]
    assert snaps.offset_m[0] == pytest.approx(300.0, abs=1e-3)
    assert snaps.access_m[0] == pytest.approx(30.0, abs=1e-3)
    assert snaps.access_m[1] == pytest.approx(5000.0, abs=1e-3)  # far points are snapped, their distance told
    assert snaps.out_s[0] == pytest.approx([(30.0 + 300.0) / W, (30.0 + 300.0) / W])


def test_isochrone_on_a_straight_street():
    net = line_network()
    start_xy = (X0 + 900.0, Y0 + 10.0)  # the middle of the middle edge, 10 m off the street
    start = snap(net, *map(np.array, zip(lonlat(*start_xy), strict=True)))
    budget_m = 5 * 60 * W  # 400 m in 5 minutes
    area = shapely.transform(acc.isochrone(net, start, 5.0, buffer_m=40.0), TO_UTM.transform, interleaved=False)
    along = budget_m - 10.0  # the access leg is walked first
    assert area.contains(shapely.Point(start_xy))
    assert area.contains(shapely.Point(X0 + 900.0 + along - 5.0, Y0))
    assert not area.contains(shapely.Point(X0 + 900.0 + along + 45.0, Y0))  # beyond the reach + buffer
    assert not area.contains(shapely.Point(X0 + 900.0, Y0 + 100.0))  # only 40 m around the street
    # a 2 x 390 m stretch buffered by 40 m (16-gon caps): 780 x 80 + ~pi 40^2
    assert area.area == pytest.approx(2 * along * 80.0 + math.pi * 40.0 ** 2, rel=0.02)
    bigger = acc.isochrone(net, start, 10.0)
    assert shapely.transform(bigger, TO_UTM.transform, interleaved=False).covers(area.buffer(-0.5))


def test_isochrone_covers_whole_and_partial_edges_past_nodes():
    net = line_network(3, 300.0)  # nodes at 0, 300, 600, 900
    start = snap(net, *map(np.array, zip(lonlat(X0 + 150.0, Y0), strict=True)))
    area = shapely.transform(acc.isochrone(net, start, 5.0, buffer_m=10.0), TO_UTM.transform, interleaved=False)
    # 400 m each way from x = 150: west end stops at node 1 (x = 0); east: the whole edge 300-600 and 0-ish of
    # the next: reaches x = 550
    assert area.contains(shapely.Point(X0 + 5.0, Y0)) and area.contains(shapely.Point(X0 + 545.0, Y0))
    assert not area.contains(shapely.Point(X0 + 565.0, Y0))


def test_fifteen_minute_score_definition():
    times = {"school": np.array([300.0, 1000.0, np.inf]), "kindergarten": np.array([900.0, 100.0, np.nan]),
             "pharmacy": np.array([901.0, 200.0, 10.0])}
    assert acc.fifteen_minute_score(times).tolist() == pytest.approx([200 / 3, 200 / 3, 100 / 3])
    weighted = acc.fifteen_minute_score(times, weights={"school": 2.0, "kindergarten": 1.0, "pharmacy": 1.0})
    assert weighted.tolist() == pytest.approx([75.0, 50.0, 25.0])
    with pytest.raises(ValueError):
        acc.fifteen_minute_score({})


def test_gravity_by_hand():
    times = np.array([[0.0, 10.0], [10.0, np.inf]])
    got = acc.gravity(times, np.array([100.0, 50.0]), beta=0.1)
    assert got == pytest.approx([100.0 + 50.0 * math.exp(-1.0), 100.0 * math.exp(-1.0)])


def test_two_step_fca_by_hand():
    # Luo & Wang's two steps on three tracts (100, 200, 300 people) and two facilities (10 and 30 doctors),
    # catchment 30 minutes; facility 0 reaches tracts 0, 1 (300 people), facility 1 tracts 1, 2 (500 people).
    times = np.array([[5.0, 40.0], [10.0, 20.0], [50.0, 25.0]])
    demand, supply = np.array([100.0, 200.0, 300.0]), np.array([10.0, 30.0])
    got = acc.two_step_fca(times, demand, supply, 30.0)
    assert got == pytest.approx([10 / 300, 10 / 300 + 30 / 500, 30 / 500])
    assert (got * demand).sum() == pytest.approx(supply.sum())  # all supply is shared out when all is in reach
    # a facility nobody reaches serves nobody (no division by zero); a tract out of reach gets 0
    lonely = acc.two_step_fca(np.array([[5.0, np.inf], [np.inf, np.inf]]), np.array([10.0, 5.0]),
                              np.array([2.0, 7.0]), 30.0)
    assert lonely.tolist() == pytest.approx([0.2, 0.0])


# --- Vologda against networkx -------------------------------------------------------------------------------
REFERENCE_SNAP = """
WITH p AS MATERIALIZED ({points})
SELECT p.id, n.edge, n.from_node, n.to_node, n.length_m, n.frac, n.access FROM p CROSS JOIN LATERAL (
  SELECT s.id AS edge, s.from_node, s.to_node, s.length_m,
         ST_LineLocatePoint(ST_Transform(s.geom, 32637), ST_Transform(p.pt, 32637)) AS frac,
         ST_Distance(ST_Transform(s.geom, 32637), ST_Transform(p.pt, 32637)) AS access
  FROM cdt.street_edges s WHERE s.walk AND s.geom && ST_Expand(p.pt, 0.03) ORDER BY 6, s.id LIMIT 1) n
ORDER BY p.id"""


def reference_walk_seconds(engine, facility_type: str) -> dict[int, float]:
    """Nearest-facility walking seconds per residential building, computed independently: PostGIS snaps each
    point to its nearest edge (in UTM 37N, as the rule says), networkx runs a multi-source Dijkstra over the
    edges with each facility as an extra node tied to its edge's ends, and the same-edge case is checked
    pair by pair. Only the rule is shared, no code."""
    with engine.connect() as conn:
        edges = conn.execute(text("SELECT from_node, to_node, length_m FROM cdt.street_edges WHERE walk")).all()
        homes = conn.execute(text(REFERENCE_SNAP.format(points=(
            "SELECT b.id, ST_PointOnSurface(b.geom) AS pt FROM cdt.buildings b "
            "WHERE b.is_living OR b.residents > 0")))).all()
        facs = conn.execute(text(REFERENCE_SNAP.format(points=(
            "SELECT f.id, f.geom AS pt FROM cdt.facilities f WHERE f.type_code = :type"))),
            {"type": facility_type}).all()
    # the bounding-box prefilter (0.03 deg >= 1.7 km here) cannot miss the nearest edge of a point this close
    assert max(r.access for r in homes + facs) < 1000.0
    g = nx.Graph()
    for a, b, length in edges:
        if a != b and (not g.has_edge(a, b) or g[a][b]["m"] > length):
            g.add_edge(a, b, m=length)
    for f in facs:
        g.add_edge(("f", f.id), f.from_node, m=f.access + f.frac * f.length_m)
        g.add_edge(("f", f.id), f.to_node, m=f.access + (1 - f.frac) * f.length_m)
    dist = nx.multi_source_dijkstra_path_length(g, [("f", f.id) for f in facs], weight="m")
    on_edge = {}
    for f in facs:
        on_edge.setdefault(f.edge, []).append(f)  # by edge id: Vologda has parallel edges
    out = {}
    for h in homes:
        best = min(h.access + h.frac * h.length_m + dist.get(h.from_node, math.inf),
                   h.access + (1 - h.frac) * h.length_m + dist.get(h.to_node, math.inf))
        for f in on_edge.get(h.edge, []):
            best = min(best, h.access + abs(h.frac - f.frac) * h.length_m + f.access)
        out[h.id] = best / W
    return out


@pytest.mark.parametrize("facility_type", ["school", "kindergarten"])
def test_vologda_nearest_matches_networkx(engine, facility_type):
    result = service.nearest_facility(engine, ANONYMOUS, facility_type)
    ref = reference_walk_seconds(engine, facility_type)
    got = {b["id"]: b for b in result["buildings"]}
    assert set(got) == set(ref) and len(got) == result["summary"]["buildings"] > 1000
    unreachable = [i for i, s in ref.items() if math.isinf(s)]
    assert all(got[i]["seconds"] is None and got[i]["facility_id"] is None for i in unreachable)
    assert result["summary"]["unreachable"] == len(unreachable)
    worst = max(abs(got[i]["seconds"] - s) for i, s in ref.items() if math.isfinite(s))
    assert worst < 1.0, f"largest difference from networkx: {worst:.3f} s"
    # walking: the metres are the seconds at 4.8 km/h (the access legs are walked too)
    b = next(b for b in result["buildings"] if b["seconds"] is not None)
    assert b["metres"] == pytest.approx(b["seconds"] * W, abs=0.2)


def test_vologda_k_nearest_starts_with_the_nearest(engine):
    one = {b["id"]: b for b in service.nearest_facility(engine, ANONYMOUS, "kindergarten")["buildings"]}
    three = service.nearest_facility(engine, ANONYMOUS, "kindergarten", k=3)["buildings"]
    for b in three[:200]:
        if one[b["id"]]["seconds"] is None:
            assert b["seconds"] == [None, None, None]
            continue
        assert b["facility_ids"][0] == one[b["id"]]["facility_id"] or b["seconds"][0] == one[b["id"]]["seconds"]
        assert b["seconds"][0] == pytest.approx(one[b["id"]]["seconds"], abs=0.11)
        assert b["seconds"] == sorted(b["seconds"])


def test_vologda_summary_and_norm(engine):
    summary = service.nearest_facility(engine, ANONYMOUS, "school", territory_oktmo="19701000")["summary"]
    assert summary["norm"]["max_walk_radius_m"] == 500.0
    assert 0.0 < summary["share_residents_within_norm"] < 1.0
    assert summary["median_s"] <= summary["p90_s"]
    drive = service.nearest_facility(engine, ANONYMOUS, "school", mode="drive")["summary"]
    assert drive["median_s"] < summary["median_s"]  # 30 km/h beats 4.8 km/h


def vologda_point(engine) -> tuple[float, float]:
    with engine.connect() as conn:
        return tuple(conn.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM cdt.buildings "
            "WHERE is_living ORDER BY residents DESC NULLS LAST, id LIMIT 1) x")).one())


def test_vologda_isochrone_contains_start_and_grows(engine):
    lon, lat = vologda_point(engine)
    areas = []
    for minutes in (5, 15, 30):
        geom = shapely.geometry.shape(service.isochrone(engine, ANONYMOUS, lon, lat, minutes=minutes))
        assert geom.is_valid and geom.contains(shapely.Point(lon, lat))
        areas.append(shapely.transform(geom, TO_UTM.transform, interleaved=False).area)
    assert areas[0] < areas[1] < areas[2]
    assert 0.2e6 < areas[1] < 5e6  # 15 minutes on foot: about a 1.2 km radius along streets
    with engine.connect() as conn:
        fid = conn.execute(text("SELECT min(id) FROM cdt.facilities WHERE type_code = 'school'")).scalar()
        flon, flat = conn.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM cdt.facilities WHERE id = :i"),
                                  {"i": fid}).one()
    by_facility = shapely.geometry.shape(service.isochrone(engine, ANONYMOUS, facility_id=fid, minutes=10))
    assert by_facility.contains(shapely.Point(flon, flat))


def test_vologda_neighbourhood_and_scores(engine):
    lon, lat = vologda_point(engine)
    result = service.neighbourhood(engine, ANONYMOUS, lon, lat)
    assert result["services"]["school"]["status"] == "ok" and result["services"]["school"]["seconds"] > 0
    assert result["score_types"] == ["kindergarten", "school"]
    assert set(result["missing"]) == {"polyclinic", "pharmacy", "stop", "park"}
    assert "not a facility type" in result["services"]["stop"]["reason"]
    assert "no facilities of type 'polyclinic'" in result["services"]["polyclinic"]["reason"]
    within = [result["services"][k]["within_15_min"] for k in ("kindergarten", "school")]
    assert result["score"] == pytest.approx(100.0 * sum(within) / 2)
    assert result["city"]["territory"]["oktmo"] == "19701000"
    scores = service.fifteen_minute_scores(engine, ANONYMOUS, "19701000")
    values = [b["score"] for b in scores["buildings"]]
    assert set(values) <= {0.0, 50.0, 100.0}  # two types scored
    assert scores["summary"]["median"] == result["city"]["median_score"] == float(np.median(values))
    assert scores["per_territory"][0]["buildings"] == len(values)


@pytest.mark.parametrize("call, message", [
    (lambda e: service.nearest_facility(e, ANONYMOUS, "cinema"), "unknown facility type 'cinema'; known types: "),
    (lambda e: service.nearest_facility(e, ANONYMOUS, "polyclinic", territory_oktmo="19701000"),
     "no facilities of type 'polyclinic' in territory 19701000"),
    (lambda e: service.nearest_facility(e, ANONYMOUS, "school", territory_oktmo="65701000"),
     "no residential buildings"),
    (lambda e: service.fifteen_minute_scores(e, ANONYMOUS, "65701000"), "no residential buildings"),
    (lambda e: service.nearest_facility(e, ANONYMOUS, "school", territory_oktmo="99999999"), "unknown territory"),
    (lambda e: service.nearest_facility(e, ANONYMOUS, "school", mode="fly"), "mode must be one of walk, drive"),
    (lambda e: service.isochrone(e, ANONYMOUS, 39.5, 59.0, minutes=15), "m from the nearest street"),
    (lambda e: service.neighbourhood(e, ANONYMOUS, 39.5, 59.0), "m from the nearest street"),
    (lambda e: service.isochrone(e, ANONYMOUS, 39.9, 59.2, minutes=90), "minutes must be between 1 and 60"),
    (lambda e: service.isochrone(e, ANONYMOUS, minutes=15), "give either lon and lat, or facility_id"),
    (lambda e: service.isochrone(e, ANONYMOUS, facility_id=10 ** 9), "no facility with id"),
])
def test_bad_inputs_are_400_with_clear_messages(engine, call, message):
    with pytest.raises(InvalidParameterValue) as err:
        call(engine)
    assert err.value.status == 400 and message in err.value.detail
    if "known types" in message:
        assert "kindergarten" in err.value.detail and "school" in err.value.detail


def test_processes_registered_and_validated(engine):
    from spatial import processes
    from spatial.processes import RunContext

    for pid in ("nearest-facility", "isochrone", "neighbourhood", "fifteen-minute-score"):
        assert processes.get(pid).id == pid
    proc = processes.get("nearest-facility")
    with pytest.raises(InvalidParameterValue, match="must be one of walk, drive"):
        processes.validate_inputs(proc, {"facility_type": "school", "mode": "bike"})
    with pytest.raises(InvalidParameterValue, match="at most 10"):
        processes.validate_inputs(proc, {"facility_type": "school", "k": 11})
    inputs = processes.validate_inputs(proc, {"facility_type": "school", "territory": "19701000"})
    out = proc.run(RunContext(engine, ANONYMOUS), inputs)
    assert set(out) == set(proc.outputs) and out["summary"]["buildings"] == len(out["buildings"])
    iso = processes.get("isochrone")
    with pytest.raises(InvalidParameterValue, match="at least 1"):
        processes.validate_inputs(iso, {"lon": 39.9, "lat": 59.2, "minutes": 0})


# --- a hand-made database: disconnected building, and the cache rebuilt after an edit -----------------------
def _ll(x: float, y: float) -> str:
    lon, lat = lonlat(X0 + x, Y0 + y)
    return f"{lon:.9f} {lat:.9f}"


def _line(a: tuple[float, float], b: tuple[float, float]) -> str:
    return f"SRID=4326;LINESTRING({_ll(*a)}, {_ll(*b)})"


def _square(cx: float, cy: float) -> str:
    ring = [(cx - 5, cy - 5), (cx + 5, cy - 5), (cx + 5, cy + 5), (cx - 5, cy + 5), (cx - 5, cy - 5)]
    return "SRID=4326;MULTIPOLYGON(((" + ", ".join(_ll(*p) for p in ring) + ")))"


NODES = {1: (0.0, 0.0), 2: (600.0, 0.0), 3: (1200.0, 0.0), 4: (0.0, 2000.0), 5: (600.0, 2000.0)}


@pytest.fixture(scope="module")
def small_engine(make_database):
    """Street A: 1 - 2 - 3 (600 m edges) with a school 20 m south of x = 900; street B: 4 - 5, 2 km north,
    not connected. Home 1 is 30 m north of x = 300 on A, home 2 30 m north of x = 300 on B."""
    eng = engine_for(make_database())
    with eng.begin() as conn:
        for nid, (x, y) in NODES.items():
            conn.execute(text("INSERT INTO cdt.street_nodes (id, geom) VALUES (:i, ST_GeomFromEWKT(:g))"),
                         {"i": nid, "g": f"SRID=4326;POINT({_ll(x, y)})"})
        for eid, (a, b) in {1: (1, 2), 2: (2, 3), 3: (4, 5)}.items():
            conn.execute(text("INSERT INTO cdt.street_edges (id, from_node, to_node, geom) "
                              "VALUES (:i, :a, :b, ST_GeomFromEWKT(:g))"),
                         {"i": eid, "a": a, "b": b, "g": _line(NODES[a], NODES[b])})
        for bid, (x, y) in {1: (300.0, 30.0), 2: (300.0, 2030.0)}.items():
            conn.execute(text("INSERT INTO cdt.buildings (id, is_living, residents, geom) "
                              "VALUES (:i, true, 50, ST_GeomFromEWKT(:g))"), {"i": bid, "g": _square(x, y)})
        conn.execute(text("INSERT INTO cdt.facilities (id, type_code, name, geom) "
                          "VALUES (1, 'school', 'School 1', ST_GeomFromEWKT(:g))"),
                     {"g": f"SRID=4326;POINT({_ll(900.0, -20.0)})"})
    yield eng
    eng.dispose()


def test_disconnected_building_is_null_and_an_edited_network_is_rebuilt(small_engine, monkeypatch):
    def homes():
        return {b["id"]: b for b in service.nearest_facility(small_engine, ANONYMOUS, "school")["buildings"]}

    monkeypatch.setattr(service, "RECHECK_S", 3600.0)
    first = homes()
    # home 1: 30 m to the street, 300 m to node 2, 300 m to x = 900, 20 m to the school = 650 m
    assert first[1]["metres"] == pytest.approx(650.0, abs=1.0)
    assert first[1]["seconds"] == pytest.approx(650.0 / W, abs=1.0) and first[1]["facility_id"] == 1
    assert first[2]["seconds"] is None and first[2]["metres"] is None and first[2]["facility_id"] is None
    # connect B to A: 5 -> 3 (2,088 m); home 2 then walks 30 + 300 + 2088.06 + 300 + 20 m
    with small_engine.begin() as conn:
        conn.execute(text("INSERT INTO cdt.street_edges (id, from_node, to_node, geom) "
                          "VALUES (4, 5, 3, ST_GeomFromEWKT(:g))"), {"g": _line(NODES[5], NODES[3])})
    assert homes()[2]["seconds"] is None  # within RECHECK_S the cached network is used as it is
    monkeypatch.setattr(service, "RECHECK_S", 0.0)
    second = homes()
    assert second[2]["metres"] == pytest.approx(30 + 300 + math.hypot(600, 2000) + 300 + 20, abs=2.0)
    assert second[1]["metres"] == pytest.approx(first[1]["metres"])
