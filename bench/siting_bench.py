"""Siting benchmark: CDT's p-median (HiGHS) against spopt's PMedian with its default solver (PuLP's CBC).

    .venv/bin/python bench/siting_bench.py [--k 30] [--runs 3] [--facility-type school] [--grid-m 500]
                                           [--database-url URL]

One instance, the same for both: Vologda demand (residents of residential buildings, each snapped to its
nearest walkable edge and aggregated to the nearer end node of it, times the type's norm per 1,000) x grid
candidates (snapped to their edges the same way), door-to-site walking distances as the service computes them
(`spatial.accessibility.travel_times` over `spatial.access_service`'s cached walk network, plus each node's
mean door-to-node walk), no existing facilities (every one of the k sites is chosen). Pairs that the network
does not connect cost BIG metres for both.
Prints the median time of `--runs` runs of each, each objective, CDT's gap to spopt's proven optimum and to
its own reported bound, and the speed ratio; then times CDT's MCLP and LSCP on the same instance. spopt's
time includes building its PuLP model (its `from_cost_matrix` + `solve`), as CDT's includes building its own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from layers.access import ANONYMOUS  # noqa: E402
from spatial import siting, siting_service  # noqa: E402

BIG = 1e7  # metres for pairs the network does not connect


def instance(url: str, facility_type: str, grid_m: float) -> tuple[np.ndarray, np.ndarray, float]:
    engine = create_engine(url)
    with engine.connect() as conn:
        norm = siting_service._norm(conn, facility_type, "19701000")
        inst = siting_service._instance(engine, conn, ANONYMOUS, facility_type, "19701000", "grid", grid_m, norm,
                                        None)
    cost = inst.cost[:, :inst.n_candidates]  # candidates only: no existing facility is open
    keep = np.isfinite(cost).any(axis=1)
    cost = np.where(np.isfinite(cost[keep]), cost[keep], BIG)
    return cost, inst.weights[keep], float(norm["radius"])


def time_it(fn, runs: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def spopt_pmedian(cost: np.ndarray, weights: np.ndarray, k: int) -> float:
    import pulp
    from spopt.locate import PMedian

    model = PMedian.from_cost_matrix(cost, weights, p_facilities=k).solve(pulp.PULP_CBC_CMD(msg=False))
    if model.problem.status != pulp.LpStatusOptimal:
        raise RuntimeError(f"spopt/CBC status {pulp.LpStatus[model.problem.status]}")
    return float(model.problem.objective.value())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--facility-type", default="school")
    ap.add_argument("--grid-m", type=float, default=500)
    ap.add_argument("--database-url", default=os.environ.get("CDT_DATABASE_URL"))
    args = ap.parse_args()
    url = args.database_url or subprocess.check_output([sys.executable.replace("python", "cdt"), "db", "url"],
                                                       text=True).strip()
    cost, weights, radius = instance(url, args.facility_type, args.grid_m)
    n, m = cost.shape
    print(f"instance: {n} demand points (demand {weights.sum():.1f}) x {m} grid candidates ({args.grid_m:g} m), "
          f"k = {args.k}, {args.facility_type}, radius {radius:g} m")
    t_cdt, res = time_it(lambda: siting.p_median(cost, weights, args.k), args.runs)
    t_sp, sp_obj = time_it(lambda: spopt_pmedian(cost, weights, args.k), args.runs)
    gap_to_opt = (res.objective - sp_obj) / sp_obj
    print(f"p-median  CDT   {t_cdt:8.3f} s  objective {res.objective:.6f}  HiGHS status {res.status}  "
          f"bound {res.bound:.6f}  reported gap {100 * res.gap:.4f} %  ({res.solver})")
    print(f"          detail heuristic {res.details['heuristic_s']:.3f} s, Lagrangian {res.details['lagrangian_s']:.3f}"
          f" s, MIP {res.details['mip_s']:.3f} s on {res.details['mip_sites']} sites / {res.details['mip_pairs']}"
          f" of {res.details['full_pairs']} pairs; heuristic objective {res.details['heuristic_objective']:.6f}")
    print(f"p-median  spopt {t_sp:8.3f} s  objective {sp_obj:.6f}  (PuLP CBC, Optimal)")
    print(f"CDT gap to spopt's optimum: {100 * gap_to_opt:.5f} % (target <= 0.5 %) -> "
          f"{'OK' if gap_to_opt <= 0.005 else 'MISSED'};  speed ratio {t_sp / t_cdt:.1f}x (target >= 3x) -> "
          f"{'OK' if t_sp / t_cdt >= 3 else 'MISSED'}")
    t_mclp, mc = time_it(lambda: siting.mclp(cost, weights, radius, args.k), args.runs)
    print(f"MCLP      CDT   {t_mclp:8.3f} s  covered {mc.objective:.1f} of {weights.sum():.1f} "
          f"({100 * mc.objective / weights.sum():.1f} %)  status {mc.status} gap {mc.gap:.2g}")
    try:
        t_lscp, ls = time_it(lambda: siting.lscp(cost, radius), args.runs)
        print(f"LSCP      CDT   {t_lscp:8.3f} s  sites {ls.objective:.0f}  status {ls.status} gap {ls.gap:.2g}")
    except Exception as exc:  # LSCP is infeasible when some demand has no candidate within the radius
        print(f"LSCP      CDT   infeasible: {exc}")
        covered = (cost <= radius).any(axis=1)
        t_lscp, ls = time_it(lambda: siting.lscp(cost[covered], radius), args.runs)
        print(f"LSCP      CDT   {t_lscp:8.3f} s  on the {int(covered.sum())} coverable points: sites "
              f"{ls.objective:.0f}  status {ls.status} gap {ls.gap:.2g}")
    out = Path(__file__).parent / "results" / f"siting_bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"n": n, "m": m, "k": args.k, "runs": args.runs, "cdt_s": t_cdt, "spopt_s": t_sp,
                               "cdt_objective": res.objective, "spopt_objective": sp_obj, "gap_to_optimum":
                               gap_to_opt, "cdt_reported_gap": res.gap, "status": res.status, "mclp_s": t_mclp,
                               "lscp_s": t_lscp}, indent=1))
    print(f"written {out}")


if __name__ == "__main__":
    main()
