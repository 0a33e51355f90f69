"""Benchmark: service-area needs of Vologda's kindergartens (spatial.needs_service.needs), and its LP alone.

    .venv/bin/python bench/needs_bench.py [--rounds 7] [--type kindergarten] [--territory 19701000]

Database: CDT_DATABASE_URL, else the embedded dev database (`cdt db url`), with the demo loaded and migration
0008 applied. Printed, medians of --rounds runs (min/max in brackets):

- the whole service call, cold (a new engine: new connections, and `spatial.access_service`'s cache of the walk
  network and the buildings' snaps cleared, so it is loaded and snapped again) and warm;
- its stages, once warm: norms + buildings (SQL), facilities (SQL), walk network + snaps (the cached network
  and buildings' snaps of `spatial.access_service`, the facilities snapped), walking distances
  (`spatial.accessibility.travel_times`), LP, hexagons;
- the LP alone (HiGHS, two phases) against independent solvers on the very same instance:
  PuLP + CBC (the same two phases), scipy.optimize.linprog(method="highs-ipm") (two phases), and networkx
  max_flow_min_cost (integer network simplex: demand and capacity scaled to 1/1000 place, distances to
  decimetres, so its objective agrees to that rounding). Each is checked against HiGHS's served demand.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from layers.access import ANONYMOUS  # noqa: E402
from layers.db import engine_for  # noqa: E402
from spatial import access_service  # noqa: E402
from spatial import needs_service as ns  # noqa: E402
from spatial.needs import allocate  # noqa: E402


def database_url() -> str:
    given = os.environ.get("CDT_DATABASE_URL", "").strip()
    if given:
        return given
    cdt = str(ROOT / ".venv" / "bin" / "cdt")
    subprocess.run([cdt, "db", "start"], check=True, cwd=ROOT, capture_output=True)
    return subprocess.run([cdt, "db", "url"], check=True, cwd=ROOT, capture_output=True, text=True).stdout.strip()


def timed(fn, rounds: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def fmt(times: list[float]) -> str:
    return f"{1000 * statistics.median(times):9.1f} ms  [{1000 * min(times):.1f} .. {1000 * max(times):.1f}]"


def instance(engine, facility_type: str, territory: str):
    """The service's stages, each timed, and the LP instance they produce."""
    stages = {}
    with engine.connect() as conn:
        t0 = time.perf_counter()
        ids = ns._territory(conn, territory)
        norms = ns._norms(conn, ANONYMOUS, facility_type)
        b = ns._buildings(conn, ANONYMOUS, ids, territory)
        per_1000, radius, _ = ns._per_building_norms(norms, b, None, facility_type)
        demand = b.residents * per_1000 / 1000
        stages["norms + buildings (SQL)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        f = ns._facilities(conn, ANONYMOUS, facility_type, b, float(radius.max()))
        stages["facilities (SQL)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        network, b_snaps, f_snaps = ns._snapped(engine, ANONYMOUS, territory, b, f)
        stages["walk network + snaps (cached) + facilities snapped"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        pairs = ns._pairs_within(network, b_snaps, f_snaps, radius)
        stages["walking distances (travel_times)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        alloc = allocate(demand, f.capacity, pairs, residents=b.residents)
        stages["LP (HiGHS, 2 phases)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ns._hexagons(conn, b.ids, b.lon, b.lat, ns.HEX_SIZE_M)
        stages["hexagons (SQL)"] = time.perf_counter() - t0
    return stages, demand, f.capacity, pairs, alloc


def pulp_cbc(d, c, pairs):
    import pulp

    bi, fj, dist = pairs
    k = range(len(bi))
    x = [pulp.LpVariable(f"x{i}", lowBound=0) for i in k]
    rows_b: dict[int, list] = {}
    rows_f: dict[int, list] = {}
    for p in k:
        rows_b.setdefault(int(bi[p]), []).append(x[p])
        rows_f.setdefault(int(fj[p]), []).append(x[p])
    prob = pulp.LpProblem("served", pulp.LpMaximize)
    prob += pulp.lpSum(x)
    for i, xs in rows_b.items():
        prob += pulp.lpSum(xs) <= float(d[i])
    for j, xs in rows_f.items():
        prob += pulp.lpSum(xs) <= float(c[j])
    solver = pulp.PULP_CBC_CMD(msg=False)
    prob.solve(solver)
    status1, served = pulp.LpStatus[prob.status], pulp.value(prob.objective)
    prob.sense = pulp.LpMinimize
    prob.setObjective(pulp.lpSum(float(dist[p]) * x[p] for p in k))
    prob += pulp.lpSum(x) >= served
    prob.solve(solver)
    return served, pulp.value(prob.objective), f"{status1}/{pulp.LpStatus[prob.status]}"


def scipy_ipm(d, c, pairs):
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix, vstack

    bi, fj, dist = pairs
    k, n, m = len(bi), len(d), len(c)
    cols = np.arange(k)
    a_ub = coo_matrix((np.ones(2 * k), (np.concatenate([bi, n + fj]), np.concatenate([cols, cols]))),
                      shape=(n + m, k)).tocsr()
    b_ub = np.concatenate([d, c])
    r1 = linprog(-np.ones(k), A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method="highs-ipm")
    a2 = vstack([a_ub, coo_matrix(-np.ones((1, k)))]).tocsr()
    r2 = linprog(dist, A_ub=a2, b_ub=np.concatenate([b_ub, [r1.fun]]), bounds=(0, None), method="highs-ipm")
    return -r1.fun, r2.fun, f"{r1.status}/{r2.status}"


def nx_min_cost(d, c, pairs):
    import networkx as nx

    bi, fj, dist = pairs
    g = nx.DiGraph()
    for i in np.unique(bi):
        g.add_edge("s", ("b", int(i)), capacity=int(round(d[i] * 1000)), weight=0)
    for j in np.unique(fj):
        g.add_edge(("f", int(j)), "t", capacity=int(round(c[j] * 1000)), weight=0)
    for i, j, w in zip(bi, fj, dist, strict=True):
        g.add_edge(("b", int(i)), ("f", int(j)), weight=int(round(w * 10)))
    flow = nx.max_flow_min_cost(g, "s", "t")
    return sum(flow["s"].values()) / 1000, nx.cost_of_flow(g, flow) / 1e4, "optimal"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--type", default="kindergarten")
    ap.add_argument("--territory", default="19701000")
    args = ap.parse_args()
    url = database_url()
    engine = engine_for(url)
    with engine.connect() as conn:
        if not conn.execute(text("SELECT EXISTS (SELECT 1 FROM cdt.planning_norms WHERE demand_per_1000 IS NOT NULL)"
                                 )).scalar():
            sys.exit("no demand norms in the database: run the migrations (0008) first")

    call = lambda eng: ns.needs(eng, ANONYMOUS, args.type, args.territory)  # noqa: E731

    def cold():
        access_service.clear_cache()
        eng = engine_for(url)
        try:
            return call(eng)
        finally:
            eng.dispose()

    cold_t, result = timed(cold, args.rounds)
    call(engine)
    warm_t, result = timed(lambda: call(engine), args.rounds)
    s = result["summary"]
    print(f"service-needs {args.type} in {args.territory}: {s['buildings']} buildings x {s['facilities']} facilities, "
          f"{s['pairs_within_radius']} pairs within radius; demand {s['total_demand']:.1f}, served "
          f"{s['total_served']:.1f}, deficit {s['deficit']:.1f}, covered {100 * s['covered_share']:.1f}% "
          f"({s['solver']['status']}, {s['solver']['iterations']} simplex iterations)")
    print(f"  whole call, cold     {fmt(cold_t)}")
    print(f"  whole call, warm     {fmt(warm_t)}")

    stage_runs = [instance(engine, args.type, args.territory) for _ in range(args.rounds)]
    print("  stages (warm):")
    for name in stage_runs[0][0]:
        print(f"    {name:50s} {fmt([r[0][name] for r in stage_runs])}")
    _, d, c, pairs, alloc = stage_runs[-1]

    print(f"LP alone on the same instance (n={len(d)}, m={len(c)}, pairs={len(pairs[0])}), {args.rounds} runs:")
    highs_t, _ = timed(lambda: allocate(d, c, pairs), args.rounds)
    rows = [("HiGHS via highspy (CDT)", highs_t, alloc.total_served, alloc.weighted_distance, alloc.status)]
    for name, fn in (("PuLP + CBC", pulp_cbc), ("scipy linprog highs-ipm", scipy_ipm),
                     ("networkx max_flow_min_cost", nx_min_cost)):
        t, (served, cost, status) = timed(lambda fn=fn: fn(d, c, pairs), args.rounds)
        rows.append((name, t, served, cost, status))
    base = statistics.median(highs_t)
    for name, t, served, cost, status in rows:
        print(f"  {name:28s} {fmt(t)}  x{statistics.median(t) / base:6.1f}  served {served:.4f}  "
              f"distance {cost:.1f}  ({status})")
    worst = max(abs(r[2] - alloc.total_served) for r in rows)
    print(f"  largest served-demand difference from HiGHS: {worst:.2e} places")
    engine.dispose()


if __name__ == "__main__":
    main()
