"""Provision of demand by capacity within normative radii: the transportation LP (pure computation).

Buildings i have demand d_i (places by the planning norm), facilities j capacity c_j; a building may be served
by a facility only over a pair (i, j) whose walking distance is within the building's normative radius (the
caller passes only those pairs: the model is sparse). The LP, solved by HiGHS:

    maximise   sum_ij x_ij                          (served demand; equivalently minimise sum_i u_i)
    subject to sum_j x_ij + u_i = d_i,  u_i >= 0     (u_i: unmet demand of building i)
               sum_i x_ij <= c_j
               x_ij >= 0

Ties (many allocations serve the same total) are broken *lexicographically*, not with an epsilon weight: a
second solve minimises the demand-weighted distance sum_ij dist_ij * x_ij with served demand fixed at its
optimum (to a primal feasibility tolerance of 1e-9). An epsilon weight would need epsilon below the smallest
gain in served demand divided by the largest distance cost, which has no safe a-priori value for real-valued
demand; the second, warm-started solve costs little. u_i is not a column: the building row is
0 <= sum_j x_ij <= d_i and u_i = d_i - row.

The result is checked, not trusted: HiGHS must report Optimal for both phases, and the returned flows are
verified against every bound and constraint (tolerance 1e-6 relative) before an Allocation is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np

from layers.errors import CDTError, InvalidParameterValue
from spatial.highs import new_highs

# Phase 2 fixes served demand at exactly the phase-1 optimum; a tight primal feasibility tolerance keeps HiGHS
# from trading the default 1e-7 of served demand for distance.
PHASE2_FEASIBILITY_TOL = 1e-9
TOL = 1e-6


class SolverFailure(CDTError):
    """HiGHS did not prove optimality (or returned a point that fails the checks): a 500 with the solver's words."""

    def __init__(self, detail: str, **context):
        super().__init__(detail, 500, "SolverFailure", context)


@dataclass(frozen=True)
class Allocation:
    pair_building: np.ndarray  # (k,) building index of each pair (deduplicated input)
    pair_facility: np.ndarray  # (k,) facility index
    pair_distance: np.ndarray  # (k,)
    flow: np.ndarray  # (k,) demand of the building served by the facility over the pair
    load: np.ndarray  # (m,) demand served by each facility
    served: np.ndarray  # (n,) served demand of each building
    unmet: np.ndarray  # (n,) unmet demand of each building
    total_demand: float
    total_served: float
    total_unmet: float
    weighted_distance: float  # sum of flow * distance (phase 2 objective)
    covered_share: float | None  # residents covered / residents with demand (None when no demand)
    status: str  # HiGHS model status of the last phase, e.g. "Optimal"
    phase1_objective: float  # HiGHS's objective of phase 1 (served demand)
    phase2_objective: float | None  # HiGHS's objective of phase 2 (None when phase 2 was not needed)
    iterations: int  # simplex iterations of both phases

    def summary(self) -> dict:
        return {
            "total_demand": self.total_demand, "total_served": self.total_served, "total_unmet": self.total_unmet,
            "covered_share": self.covered_share, "weighted_distance": self.weighted_distance,
            "solver": {"name": "HiGHS", "version": _highs_version(), "status": self.status,
                       "phase1_objective": self.phase1_objective, "phase2_objective": self.phase2_objective,
                       "iterations": self.iterations},
        }


def _highs_version() -> str:
    return f"{highspy.HIGHS_VERSION_MAJOR}.{highspy.HIGHS_VERSION_MINOR}.{highspy.HIGHS_VERSION_PATCH}"


def allocate(demand: np.ndarray, capacity: np.ndarray, pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
             residents: np.ndarray | None = None) -> Allocation:
    """Serve as much demand as capacities allow over the given (building, facility, distance) pairs.

    `residents` (default: demand) weighs the covered share: a building counts as covered in proportion to
    served/demand. Duplicate pairs keep their shortest distance.
    """
    d = _vector(demand, "demand")
    c = _vector(capacity, "capacity")
    bi, fj, dist = _pairs(pairs, len(d), len(c))
    people = d if residents is None else _vector(residents, "residents")
    if len(people) != len(d):
        raise InvalidParameterValue(f"residents has {len(people)} entries for {len(d)} buildings")
    # Pairs that can carry nothing are dropped: they only enlarge the model.
    keep = (d[bi] > 0) & (c[fj] > 0)
    bi, fj, dist = bi[keep], fj[keep], dist[keep]
    flow, status, obj1, obj2, iters = _solve(d, c, bi, fj, dist)
    return _result(d, c, people, bi, fj, dist, flow, status, obj1, obj2, iters)


# --- input ----------------------------------------------------------------------------------------------
def _vector(values: np.ndarray, name: str) -> np.ndarray:
    v = np.asarray(values, dtype=float).ravel()
    if not np.all(np.isfinite(v)):
        raise InvalidParameterValue(f"{name} has non-finite values")
    if np.any(v < 0):
        raise InvalidParameterValue(f"{name} has negative values")
    return v


def _pairs(pairs, n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    bi, fj, dist = (np.asarray(a).ravel() for a in pairs)
    if not (len(bi) == len(fj) == len(dist)):
        raise InvalidParameterValue("pairs: building, facility and distance arrays differ in length")
    bi, fj, dist = bi.astype(np.int64), fj.astype(np.int64), dist.astype(float)
    if len(bi) and (bi.min() < 0 or bi.max() >= n or fj.min() < 0 or fj.max() >= m):
        raise InvalidParameterValue(f"pairs refer to buildings outside 0..{n - 1} or facilities outside 0..{m - 1}")
    if not np.all(np.isfinite(dist)) or np.any(dist < 0):
        raise InvalidParameterValue("pairs: distances must be finite and non-negative")
    # Deduplicate (i, j), keeping the shortest distance: lexsort by distance last-key-first.
    order = np.lexsort((dist, fj, bi))
    bi, fj, dist = bi[order], fj[order], dist[order]
    first = np.ones(len(bi), dtype=bool)
    first[1:] = (bi[1:] != bi[:-1]) | (fj[1:] != fj[:-1])
    return bi[first], fj[first], dist[first]


# --- model ----------------------------------------------------------------------------------------------
def _solve(d: np.ndarray, c: np.ndarray, bi: np.ndarray, fj: np.ndarray, dist: np.ndarray):
    k, n, m = len(bi), len(d), len(c)
    if k == 0:
        return np.zeros(0), "Optimal (no pairs: nothing can be served)", 0.0, None, 0
    h = new_highs()
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = k, n + m
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = np.ones(k)
    lp.col_lower_ = np.zeros(k)
    lp.col_upper_ = np.full(k, highspy.kHighsInf)
    lp.row_lower_ = np.zeros(n + m)
    lp.row_upper_ = np.concatenate([d, c])
    # Column-wise matrix: column of pair (i, j) has a 1 in building row i and in facility row n + j.
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.arange(0, 2 * k + 1, 2, dtype=np.int32)
    lp.a_matrix_.index_ = np.column_stack([bi, n + fj]).ravel().astype(np.int32)
    lp.a_matrix_.value_ = np.ones(2 * k)
    h.passModel(lp)
    status1 = _run(h, "phase 1 (maximise served demand)")
    obj1 = float(h.getInfo().objective_function_value)
    iters = int(h.getInfo().simplex_iteration_count)
    if obj1 <= 0:
        return np.zeros(k), status1, obj1, None, iters
    # Phase 2: fix served demand at its optimum, minimise the demand-weighted distance (warm start).
    h.setOptionValue("primal_feasibility_tolerance", PHASE2_FEASIBILITY_TOL)
    h.addRow(obj1, highspy.kHighsInf, k, np.arange(k, dtype=np.int32), np.ones(k))
    h.changeObjectiveSense(highspy.ObjSense.kMinimize)
    h.changeColsCost(k, np.arange(k, dtype=np.int32), dist)
    status2 = _run(h, "phase 2 (minimise demand-weighted distance)")
    obj2 = float(h.getInfo().objective_function_value)
    iters += int(h.getInfo().simplex_iteration_count)
    flow = np.asarray(h.getSolution().col_value, dtype=float)
    return flow, status2, obj1, obj2, iters


def _run(h: highspy.Highs, phase: str) -> str:
    h.run()
    status = h.getModelStatus()
    text = h.modelStatusToString(status)
    if status != highspy.HighsModelStatus.kOptimal:
        raise SolverFailure(f"HiGHS did not solve {phase}: model status {text}")
    return text


# --- result ---------------------------------------------------------------------------------------------
def _result(d, c, people, bi, fj, dist, flow, status, obj1, obj2, iters) -> Allocation:
    flow = np.where(np.abs(flow) < 1e-9, 0.0, flow)  # solver noise around zero
    served = np.bincount(bi, weights=flow, minlength=len(d))
    load = np.bincount(fj, weights=flow, minlength=len(c))
    _check(d, c, flow, served, load, obj1)
    served = np.minimum(served, d)  # clip tolerance-level overshoot so unmet is never negative
    unmet = d - served
    share = None
    with_demand = d > 0
    if with_demand.any() and people[with_demand].sum() > 0:
        covered = people[with_demand] * served[with_demand] / d[with_demand]
        share = float(covered.sum() / people[with_demand].sum())
    return Allocation(bi, fj, dist, flow, load, served, unmet, float(d.sum()), float(served.sum()),
                      float(unmet.sum()), float(flow @ dist), share, status, obj1, obj2, iters)


def _check(d, c, flow, served, load, obj1) -> None:
    """The solution must satisfy the model, whatever status the solver reported."""
    scale = max(1.0, float(d.sum()), float(c.sum()))
    problems = []
    if len(flow) and flow.min() < -TOL * scale:
        problems.append(f"negative flow {flow.min():.3g}")
    if np.any(served > d + TOL * scale):
        problems.append("a building is served more than its demand")
    if np.any(load > c + TOL * scale):
        problems.append("a facility is loaded above its capacity")
    if abs(float(flow.sum()) - obj1) > TOL * scale:
        problems.append(f"served total {flow.sum():.6g} differs from the phase-1 optimum {obj1:.6g}")
    if problems:
        raise SolverFailure("HiGHS returned an allocation that fails the model's checks: " + "; ".join(problems))
