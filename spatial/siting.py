"""Siting optimisation (location-allocation) over a cost matrix: MCLP, p-median, LSCP and capacitated variants.

Pure computation: every model takes `cost` (demand points x candidate sites, metres or minutes; `np.inf` where a
site cannot be reached), demand `weights` and, optionally, `fixed` columns that are open already (existing
facilities) so that `p` NEW sites are chosen among the other columns. Models are solved by HiGHS through `highspy`
directly, so the status string, objective, best bound and MIP gap reported are HiGHS's own; every solution is
then checked against the model's constraints here (`SolutionCheckError` if it does not hold).

p-median at city scale (`p_median`): a greedy + vertex-substitution (Teitz-Bart, best improvement) incumbent, a
Lagrangian lower bound (assignment constraints relaxed, subgradient ascent) and Lagrangian reduced-cost fixing of
sites and of demand-site pairs that provably cannot be in a solution better than the incumbent; HiGHS then proves
optimality (or the requested gap) on what is left, warm-started with the incumbent. The reported bound is the
larger of HiGHS's bound and the Lagrangian one: both are valid for the full model because fixing only removes
solutions costlier than the incumbent.

Formulations (i demand, j site, w_i weight, d_ij cost, N_i = {j: d_ij <= S}, y_j open, F fixed-open):
- MCLP: max sum w_i z_i, z_i <= sum_{j in N_i} y_j, z_i in [0, 1], sum_{j not in F} y_j = p.
- p-median: min sum w_i d_ij x_ij, sum_j x_ij = 1, x_ij <= y_j, sum_{j not in F} y_j = p.
- LSCP: min sum_{j not in F} y_j, sum_{j in N_i} y_j >= 1.
- capacitated: allocation shares a_ij in [0, 1] (demand may be split), sum_i w_i a_ij <= C_j y_j, a_ij <= y_j;
  MCLP serves sum_j a_ij <= 1 within N_i, p-median and LSCP serve every demand (sum_j a_ij = 1; LSCP within N_i).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import highspy
import numpy as np
import scipy.sparse as sp

from layers.errors import InvalidParameterValue
from spatial.highs import new_highs

INF = highspy.kHighsInf
_TOL = 1e-6


class SolutionCheckError(RuntimeError):
    """A solver's answer violates the model (a bug or a solver failure, never the user's input)."""


@dataclass(frozen=True)
class SitingResult:
    model: str  # 'mclp', 'p-median', 'lscp', prefixed 'capacitated-' when capacities apply
    sites: list[int]  # chosen NEW site columns, ascending
    open_sites: list[int]  # fixed + chosen
    assignment: np.ndarray  # per demand point: the open site serving (most of) it, -1 when none
    objective: float  # covered demand (MCLP), weighted cost (p-median), number of new sites (LSCP)
    bound: float  # best proven bound on the optimum
    gap: float  # relative gap |objective - bound| / max(|objective|, tiny), 0 when proven optimal
    status: str  # HiGHS's model status string, e.g. 'Optimal', 'Time limit reached'
    solver: str  # e.g. 'HiGHS 1.16.0'
    time_s: float
    covered: float  # demand weight within the service distance of an open site (nan when no distance)
    # capacitated models: (demand, site, share of the demand) with share > 0
    allocation: list[tuple[int, int, float]] | None = None
    details: dict = field(default_factory=dict)


@dataclass
class _Problem:
    cost: np.ndarray
    weights: np.ndarray
    fixed: np.ndarray  # bool per column
    capacity: np.ndarray | None

    @property
    def n(self) -> int:
        return self.cost.shape[0]

    @property
    def m(self) -> int:
        return self.cost.shape[1]


# --- input checks ---------------------------------------------------------------------------------------------
def _problem(cost: np.ndarray, weights: Sequence[float] | None, p: int, fixed: Sequence[int],
             capacity: float | Sequence[float] | None) -> _Problem:
    cost = np.asarray(cost, dtype=float)
    if cost.ndim != 2 or 0 in cost.shape:
        raise InvalidParameterValue(f"the cost matrix must be 2-D and non-empty (demand x sites), got {cost.shape}")
    if np.isnan(cost).any() or (cost < 0).any():
        raise InvalidParameterValue("the cost matrix must hold non-negative costs (inf: unreachable), no NaN")
    n, m = cost.shape
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any():
        raise InvalidParameterValue(f"weights must be {n} finite non-negative numbers, one per demand point")
    is_fixed = np.zeros(m, dtype=bool)
    fixed_idx = np.asarray(list(fixed), dtype=int)
    if fixed_idx.size and (fixed_idx.min() < 0 or fixed_idx.max() >= m):
        raise InvalidParameterValue(f"fixed sites must be column indices in 0..{m - 1}")
    is_fixed[fixed_idx] = True
    free = m - int(is_fixed.sum())
    if not isinstance(p, (int, np.integer)) or p < 0 or p > free:
        raise InvalidParameterValue(f"the number of new sites must be an integer from 0 to {free} "
                                    f"(the candidates not open already), got {p!r}")
    cap = None
    if capacity is not None:
        cap = np.broadcast_to(np.asarray(capacity, dtype=float), (m,)).copy()
        if not np.isfinite(cap).all() or (cap < 0).any():
            raise InvalidParameterValue("capacities must be finite non-negative numbers")
    return _Problem(cost, w, is_fixed, cap)


def _check_capacity(pr: _Problem, p: int, demand: float) -> None:
    """Refuse when even the p largest new sites plus every open one cannot hold the demand."""
    best = pr.capacity[pr.fixed].sum() + np.sort(pr.capacity[~pr.fixed])[::-1][:p].sum()
    if best + _TOL * max(demand, 1) < demand:
        raise InvalidParameterValue(
            f"infeasible capacities: the open sites plus the {p} largest candidates hold {best:g}, "
            f"less than the demand of {demand:g}; raise the capacity or the number of sites")


# --- HiGHS ----------------------------------------------------------------------------------------------------
@dataclass
class _Solved:
    status: str
    x: np.ndarray | None
    objective: float
    bound: float
    gap: float
    time_s: float


def solver_name() -> str:
    return f"HiGHS {new_highs().version()}"


def _highs(c: np.ndarray, a: sp.spmatrix, row_lo: np.ndarray, row_hi: np.ndarray, col_lo: np.ndarray,
           col_hi: np.ndarray, integer: np.ndarray, *, maximise: bool = False, start: np.ndarray | None = None,
           time_limit: float = 60.0, mip_rel_gap: float = 1e-4) -> _Solved:
    """Solve one model with HiGHS; report HiGHS's own status, objective, dual bound and gap."""
    a = sp.csc_matrix(a)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = a.shape[1], a.shape[0]
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = c.astype(float), col_lo.astype(float), col_hi.astype(float)
    lp.row_lower_, lp.row_upper_ = row_lo.astype(float), row_hi.astype(float)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = a.indptr, a.indices, a.data.astype(float)
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = a.shape[1], a.shape[0]
    if maximise:
        lp.sense_ = highspy.ObjSense.kMaximize
    has_int = bool(integer.any())
    if has_int:
        lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                           for i in integer]
    h = new_highs()
    h.setOptionValue("time_limit", float(time_limit))
    h.setOptionValue("mip_rel_gap", float(mip_rel_gap))
    h.passModel(lp)
    if start is not None and has_int:
        sol = highspy.HighsSolution()
        sol.col_value, sol.value_valid = list(map(float, start)), True
        h.setSolution(sol)
    t0 = time.perf_counter()
    h.run()
    elapsed = time.perf_counter() - t0
    status = h.modelStatusToString(h.getModelStatus())
    info = h.getInfo()
    has_x = info.primal_solution_status == 2  # kSolutionStatusFeasible
    x = np.asarray(h.getSolution().col_value) if has_x else None
    obj = info.objective_function_value if has_x else float("nan")
    if has_int:
        bound, gap = info.mip_dual_bound, info.mip_gap
    else:  # an LP solved to optimality is its own bound
        bound, gap = (obj, 0.0) if status == "Optimal" else (float("nan"), float("inf"))
    return _Solved(status, x, obj, bound, gap, elapsed)


def _require(solved: _Solved, what: str) -> np.ndarray:
    if solved.status == "Infeasible":
        raise InvalidParameterValue(f"{what} is infeasible (HiGHS: {solved.status})")
    if solved.x is None:
        raise InvalidParameterValue(f"{what}: HiGHS found no solution ({solved.status}); "
                                    f"allow more time or simplify the instance")
    return solved.x


def _gap(objective: float, bound: float) -> float:
    return abs(objective - bound) / max(abs(objective), 1e-12)


# --- common pieces --------------------------------------------------------------------------------------------
def _chosen(y: np.ndarray, fixed: np.ndarray) -> tuple[list[int], list[int]]:
    open_ = np.flatnonzero(np.round(y) > 0.5)
    open_ = np.union1d(open_, np.flatnonzero(fixed))
    new = [int(j) for j in open_ if not fixed[j]]
    return new, [int(j) for j in open_]


def _nearest(cost: np.ndarray, open_sites: Sequence[int], within: float = np.inf) -> np.ndarray:
    """Per demand point the nearest open site (-1 when none is reachable within `within`)."""
    if not len(open_sites):
        return np.full(cost.shape[0], -1)
    sub = cost[:, open_sites]
    k = sub.argmin(axis=1)
    best = sub[np.arange(len(k)), k]
    return np.where(np.isfinite(best) & (best <= within), np.asarray(open_sites)[k], -1)


def covered_weight(cost: np.ndarray, weights: np.ndarray, open_sites: Sequence[int], distance: float) -> float:
    """Demand weight within `distance` of at least one open site."""
    if not len(open_sites):
        return 0.0
    return float(weights[(cost[:, list(open_sites)] <= distance).any(axis=1)].sum())


def _check_count(new: list[int], p: int, fixed: np.ndarray, open_: list[int]) -> None:
    if len(new) != p or not set(np.flatnonzero(fixed)) <= set(open_):
        raise SolutionCheckError(f"solution opens {len(new)} new sites, not {p}, or closes a fixed one")


def _allocation(pr: _Problem, pairs: np.ndarray, shares: np.ndarray) -> list[tuple[int, int, float]]:
    keep = shares > 1e-9
    return [(int(i), int(j), float(s)) for (i, j), s in zip(pairs[keep], shares[keep], strict=True)]


def _check_allocation(pr: _Problem, pairs: np.ndarray, shares: np.ndarray, open_: list[int], full: bool) -> None:
    served = np.bincount(pairs[:, 0], weights=shares, minlength=pr.n)
    if full and np.abs(served - 1).max(initial=0) > 1e-6 or (served > 1 + 1e-6).any():
        raise SolutionCheckError("a demand point is served more or less than once")
    load = np.bincount(pairs[:, 1], weights=shares * pr.weights[pairs[:, 0]], minlength=pr.m)
    closed = np.ones(pr.m, dtype=bool)
    closed[open_] = False
    if (load > pr.capacity * (1 + 1e-6) + 1e-6).any() or (load[closed] > 1e-6).any():
        raise SolutionCheckError("the allocation exceeds a site's capacity or uses a closed site")


def _main_site(pr: _Problem, pairs: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Per demand the site that serves its largest share (-1: unserved)."""
    out = np.full(pr.n, -1)
    best = np.zeros(pr.n)
    for (i, j), s in zip(pairs, shares, strict=True):
        if s > best[i] + 1e-9:
            out[i], best[i] = j, s
    return out


def _site_vars(pr: _Problem, p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bounds and the 'sum of new sites = p' row for the m site variables (fixed sites forced to 1)."""
    lo = pr.fixed.astype(float)
    hi = np.ones(pr.m)
    count_row = (~pr.fixed).astype(float)
    return lo, hi, count_row


# --- MCLP -----------------------------------------------------------------------------------------------------
def mclp(cost: np.ndarray, weights: Sequence[float] | None, distance: float, p: int, *, fixed: Sequence[int] = (),
         capacity: float | Sequence[float] | None = None, time_limit: float = 60.0,
         mip_rel_gap: float = 1e-4) -> SitingResult:
    """Maximal covering: open `p` new sites maximising the demand within `distance` of an open site.

    With `capacity`, a site serves at most its capacity of demand (demand may be split): the objective is the
    demand served within the distance."""
    pr = _problem(cost, weights, p, fixed, capacity)
    t0 = time.perf_counter()
    if pr.capacity is not None:
        return _capacitated(pr, p, "mclp", distance, time_limit, mip_rel_gap, t0)
    cover = pr.cost <= distance
    pre = cover[:, pr.fixed].any(axis=1)  # covered by an open site whatever we choose
    rows = np.flatnonzero(~pre & cover.any(axis=1) & (pr.weights > 0))
    # columns: m sites, then z_i for each row that new sites may cover
    nz = len(rows)
    sub = sp.csr_matrix(cover[rows], dtype=float)
    a_cov = sp.hstack([-sub, sp.identity(nz)])  # z_i - sum_{j in N_i} y_j <= 0
    lo, hi, count_row = _site_vars(pr, p)
    a = sp.vstack([a_cov, sp.hstack([sp.csr_matrix(count_row), sp.csr_matrix((1, nz))])])
    c = np.concatenate([np.zeros(pr.m), pr.weights[rows]])
    solved = _highs(c, a, np.concatenate([np.full(nz, -INF), [p]]), np.concatenate([np.zeros(nz), [p]]),
                    np.concatenate([lo, np.zeros(nz)]), np.concatenate([hi, np.ones(nz)]),
                    np.arange(pr.m + nz) < pr.m, maximise=True, time_limit=time_limit, mip_rel_gap=mip_rel_gap)
    x = _require(solved, "the maximal covering model")
    new, open_ = _chosen(x[:pr.m], pr.fixed)
    _check_count(new, p, pr.fixed, open_)
    covered = covered_weight(pr.cost, pr.weights, open_, distance)
    const = float(pr.weights[pre].sum())
    if abs(covered - const - solved.objective) > 1e-6 * max(covered, 1):
        raise SolutionCheckError(f"HiGHS objective {solved.objective} != recomputed coverage {covered - const}")
    bound = solved.bound + const
    return SitingResult("mclp", new, open_, _nearest(pr.cost, open_, distance), covered, bound,
                        _gap(covered, bound) if solved.status != "Optimal" else 0.0, solved.status,
                        solver_name(), time.perf_counter() - t0, covered,
                        details={"hi_gap": solved.gap, "covered_by_fixed": const})


# --- LSCP -----------------------------------------------------------------------------------------------------
def lscp(cost: np.ndarray, distance: float, *, weights: Sequence[float] | None = None, fixed: Sequence[int] = (),
         capacity: float | Sequence[float] | None = None, time_limit: float = 60.0,
         mip_rel_gap: float = 1e-4) -> SitingResult:
    """Location set covering: the fewest new sites so that every demand point is within `distance` of an open
    site (with `capacity`: and served by open sites within the distance, capacities respected)."""
    pr = _problem(cost, weights, 0, fixed, capacity)
    t0 = time.perf_counter()
    cover = pr.cost <= distance
    unreachable = ~cover.any(axis=1)
    if unreachable.any():
        k = int(unreachable.sum())
        raise InvalidParameterValue(
            f"set covering is infeasible: {k} of {pr.n} demand points (demand {pr.weights[unreachable].sum():g}) "
            f"have no candidate or open site within {distance:g}", uncoverable=k)
    if pr.capacity is not None:
        return _capacitated(pr, None, "lscp", distance, time_limit, mip_rel_gap, t0)
    rows = np.flatnonzero(~cover[:, pr.fixed].any(axis=1))
    lo, hi, count_row = _site_vars(pr, 0)
    a = sp.csr_matrix(cover[rows], dtype=float)
    solved = _highs(count_row, a, np.ones(len(rows)), np.full(len(rows), INF), lo, hi, np.ones(pr.m, dtype=bool),
                    time_limit=time_limit, mip_rel_gap=mip_rel_gap)
    x = _require(solved, "the set covering model")
    new, open_ = _chosen(x, pr.fixed)
    if not cover[:, open_].any(axis=1).all() or len(new) != round(solved.objective):
        raise SolutionCheckError("the set covering solution leaves demand uncovered")
    return SitingResult("lscp", new, open_, _nearest(pr.cost, open_, distance), float(len(new)), solved.bound,
                        solved.gap, solved.status, solver_name(), time.perf_counter() - t0,
                        float(pr.weights.sum()))


# --- capacitated (all three) ------------------------------------------------------------------------------------
def _capacitated(pr: _Problem, p: int | None, kind: str, distance: float | None, time_limit: float,
                 mip_rel_gap: float, t0: float) -> SitingResult:
    """One builder for the capacitated models: share variables a_ij on allowed pairs, capacity and linking rows."""
    allowed = np.isfinite(pr.cost) if distance is None else pr.cost <= distance
    allowed &= (pr.weights > 0)[:, None]
    if kind == "mclp":
        allowed &= (pr.capacity > 0)[None, :]
    demand = float(pr.weights.sum())
    if kind == "p-median":
        unreachable = ~allowed.any(axis=1) & (pr.weights > 0)
        if unreachable.any():
            raise InvalidParameterValue(f"{int(unreachable.sum())} demand points (demand "
                                        f"{pr.weights[unreachable].sum():g}) cannot reach any site")
        _check_capacity(pr, p, demand)
    pairs = np.argwhere(allowed)
    k = len(pairs)
    ii, jj = pairs[:, 0], pairs[:, 1]
    m, n, wk = pr.m, pr.n, pr.weights[ii]
    # columns: y_0..y_{m-1}, then a_k for each allowed pair
    col = lambda rows, cols, vals, nrows: sp.csr_matrix((vals, (rows, cols)), shape=(nrows, m + k))  # noqa: E731
    ar = np.arange(k)
    serve = col(ii, m + ar, np.ones(k), n)  # sum_j a_ij (=1 or <=1)
    cap = col(np.concatenate([jj, np.arange(m)]), np.concatenate([m + ar, np.arange(m)]),
              np.concatenate([wk, -pr.capacity]), m)  # sum_i w_i a_ij - C_j y_j <= 0
    link = col(np.concatenate([ar, ar]), np.concatenate([m + ar, jj]), np.concatenate([np.ones(k), -np.ones(k)]), k)
    blocks, lo_r, hi_r = [serve, cap, link], [], []
    served_rows = pr.weights > 0
    if kind == "mclp":
        lo_r.append(np.full(n, -INF))
        hi_r.append(np.ones(n))
    else:  # every demand point served in full (points with no weight: nothing to serve)
        lo_r.append(np.where(served_rows, 1.0, -INF))
        hi_r.append(np.where(served_rows, 1.0, INF))
    lo_r += [np.full(m, -INF), np.full(k, -INF)]
    hi_r += [np.zeros(m), np.zeros(k)]
    y_lo, y_hi, count_row = _site_vars(pr, p or 0)
    if p is not None:
        blocks.append(sp.csr_matrix(np.concatenate([count_row, np.zeros(k)])[None, :]))
        lo_r.append([p])
        hi_r.append([p])
    if kind == "mclp":
        c = np.concatenate([np.zeros(m), wk])
    elif kind == "p-median":
        c = np.concatenate([np.zeros(m), wk * pr.cost[ii, jj]])
    else:
        c = np.concatenate([count_row, np.zeros(k)])
    solved = _highs(c, sp.vstack(blocks), np.concatenate(lo_r), np.concatenate(hi_r),
                    np.concatenate([y_lo, np.zeros(k)]), np.concatenate([y_hi, np.ones(k)]),
                    np.arange(m + k) < m, maximise=kind == "mclp", time_limit=time_limit, mip_rel_gap=mip_rel_gap)
    x = _require(solved, f"the capacitated {kind} model")
    new, open_ = _chosen(x[:m], pr.fixed)
    if p is not None:
        _check_count(new, p, pr.fixed, open_)
    shares = np.clip(x[m:], 0, 1)
    _check_allocation(pr, pairs, shares, open_, full=kind != "mclp")
    recomputed = float(c[m:] @ shares) + (len(new) if kind == "lscp" else 0)
    if abs(recomputed - solved.objective) > 1e-6 * max(abs(recomputed), 1):
        raise SolutionCheckError(f"HiGHS objective {solved.objective} != recomputed {recomputed}")
    covered = (covered_weight(pr.cost, pr.weights, open_, distance) if distance is not None else float("nan"))
    return SitingResult(f"capacitated-{kind}", new, open_, _main_site(pr, pairs, shares), recomputed, solved.bound,
                        solved.gap, solved.status, solver_name(), time.perf_counter() - t0, covered,
                        allocation=_allocation(pr, pairs, shares), details={"served": float(wk @ shares)})


# --- p-median -------------------------------------------------------------------------------------------------
def p_median(cost: np.ndarray, weights: Sequence[float] | None, p: int, *, fixed: Sequence[int] = (),
             capacity: float | Sequence[float] | None = None, distance: float | None = None,
             time_limit: float = 60.0, mip_rel_gap: float = 1e-4) -> SitingResult:
    """p-median: open `p` new sites minimising the demand-weighted cost to the nearest open site.

    `distance` only serves to report the covered demand. With `capacity` (demand may be split) the full model
    goes to HiGHS; without, see the module docstring (heuristic incumbent, Lagrangian bound and reduction)."""
    pr = _problem(cost, weights, p, fixed, capacity)
    t0 = time.perf_counter()
    if pr.capacity is not None:
        res = _capacitated(pr, p, "p-median", None, time_limit, mip_rel_gap, t0)
        if distance is not None:
            res = _with_covered(res, covered_weight(pr.cost, pr.weights, res.open_sites, distance))
        return res
    reach = np.isfinite(pr.cost)
    unreachable = ~reach.any(axis=1) & (pr.weights > 0)
    if unreachable.any():
        raise InvalidParameterValue(f"{int(unreachable.sum())} demand points (demand "
                                    f"{pr.weights[unreachable].sum():g}) cannot reach any site")
    wc = pr.weights[:, None] * pr.cost  # inf where unreachable (0 * inf guarded below)
    wc[~reach] = np.inf
    wc[pr.weights == 0] = 0.0  # weightless points cost nothing wherever they go
    open_, ub = teitz_bart(wc, p, pr.fixed)
    if not np.isfinite(ub):
        raise InvalidParameterValue(f"no {p} new sites reach every demand point: the network is split into parts "
                                    f"that need more sites (or fixed sites) to serve")
    t_heur = time.perf_counter() - t0
    lb, lam = lagrangian_bound(wc, p, pr.fixed, ub, start=_incumbent_costs(wc, open_))
    t_lag = time.perf_counter() - t0 - t_heur
    keep_site, keep_pair = _reduce(wc, p, pr.fixed, lam, lb, ub)
    solved, x_new, x_pairs, pairs = _reduced_mip(wc, p, pr.fixed, keep_site, keep_pair, open_, time_limit,
                                                 mip_rel_gap)
    new, open_final = _chosen(x_new, pr.fixed)
    _check_count(new, p, pr.fixed, open_final)
    assign = _nearest(pr.cost, open_final)
    objective = float(wc[np.arange(pr.n), assign].sum())
    if objective > solved.objective + 1e-6 * max(objective, 1):
        raise SolutionCheckError(f"nearest-site cost {objective} exceeds HiGHS's objective {solved.objective}")
    bound = max(solved.bound if np.isfinite(solved.bound) else -np.inf, lb)
    bound = min(bound, objective)  # a bound above the objective is rounding noise
    covered = covered_weight(pr.cost, pr.weights, open_final, distance) if distance is not None else float("nan")
    return SitingResult("p-median", new, open_final, assign, objective, bound, _gap(objective, bound),
                        solved.status, solver_name(), time.perf_counter() - t0, covered, details={
                            "heuristic_objective": ub, "lagrangian_bound": lb, "heuristic_s": t_heur,
                            "lagrangian_s": t_lag, "mip_s": solved.time_s, "mip_sites": int(keep_site.sum()),
                            "mip_pairs": int(len(pairs)), "full_pairs": int(np.isfinite(wc).sum())})


def _with_covered(res: SitingResult, covered: float) -> SitingResult:
    from dataclasses import replace

    return replace(res, covered=covered)


def _incumbent_costs(wc: np.ndarray, open_: np.ndarray) -> np.ndarray:
    return wc[:, open_].min(axis=1)


def teitz_bart(wc: np.ndarray, p: int, fixed: np.ndarray, max_iter: int = 500) -> tuple[np.ndarray, float]:
    """Greedy construction then best-improvement vertex substitution over the weighted cost matrix `wc`.

    Returns the open columns (fixed included) and their total cost (inf if some demand is left unreachable)."""
    n, m = wc.shape
    big = np.where(np.isfinite(wc), wc, np.nan)
    finite_max = np.nanmax(big) if np.isfinite(np.nanmax(big)) else 1.0
    # a large finite cost for unreachable pairs keeps the arithmetic finite; any solution using it is flagged
    penalty = (finite_max + 1) * (n + 1)
    c = np.where(np.isfinite(wc), wc, penalty)
    is_open = fixed.copy()
    d1 = c[:, is_open].min(axis=1) if is_open.any() else np.full(n, penalty * 10)
    for _ in range(p):  # greedy: add the site that lowers the cost most
        gain = np.maximum(d1[:, None] - c, 0).sum(axis=0)
        gain[is_open] = -1
        j = int(gain.argmax())
        is_open[j] = True
        d1 = np.minimum(d1, c[:, j])
    if p == 0:
        total = d1.sum()
        return np.flatnonzero(is_open), (float(total) if (d1 < penalty).all() else np.inf)
    for _ in range(max_iter):
        cols = np.flatnonzero(is_open)
        sub = c[:, cols]
        order = np.argsort(sub, axis=1)
        near = cols[order[:, 0]]
        d1 = sub[np.arange(n), order[:, 0]]
        d2 = sub[np.arange(n), order[:, 1]] if len(cols) > 1 else np.full(n, penalty * 10)
        m1 = np.minimum(d1[:, None], c)  # cost after adding each candidate
        add = m1.sum(axis=0)
        extra = np.minimum(d2[:, None], c) - m1  # demand of a removed site falls back to d2 or the added site
        removable = np.flatnonzero(is_open & ~fixed)
        pos = np.full(m, -1)
        pos[removable] = np.arange(len(removable))
        rows, valid = pos[near], pos[near] >= 0  # demand whose nearest site may be swapped out
        owner = sp.csr_matrix((np.ones(int(valid.sum())), (rows[valid], np.flatnonzero(valid))),
                              shape=(len(removable), n))
        swap = add[None, :] + owner @ extra  # (removed r, added c) -> total cost
        swap[:, is_open] = np.inf
        r, a = np.unravel_index(np.argmin(swap), swap.shape)
        current = d1.sum()
        if swap[r, a] >= current - 1e-9 * max(current, 1):
            break
        is_open[removable[r]] = False
        is_open[a] = True
    open_ = np.flatnonzero(is_open)
    d1 = c[:, open_].min(axis=1)
    return open_, (float(wc[:, open_].min(axis=1).sum()) if (d1 < penalty).all() else np.inf)


def lagrangian_bound(wc: np.ndarray, p: int, fixed: np.ndarray, ub: float, start: np.ndarray,
                     iterations: int = 300) -> tuple[float, np.ndarray]:
    """Lower bound on the p-median optimum by relaxing the assignment rows (subgradient ascent).

    L(lam) = sum lam_i + sum_{j fixed} rho_j + (p smallest rho_j among free j), rho_j = sum_i min(0, wc_ij - lam_i).
    Returns the best bound and its multipliers."""
    lam = start.astype(float).copy()
    free = np.flatnonzero(~fixed)
    best, best_lam, theta, stall = -np.inf, lam.copy(), 2.0, 0
    for _ in range(iterations):
        red = np.minimum(wc - lam[:, None], 0.0)  # inf - lam -> inf -> min 0
        rho = red.sum(axis=0)
        chosen = free[np.argsort(rho[free], kind="stable")[:p]] if p else free[:0]
        value = lam.sum() + rho[fixed].sum() + rho[chosen].sum()
        if value > best + 1e-12 * abs(best if np.isfinite(best) else 1):
            best, best_lam, stall = value, lam.copy(), 0
        else:
            stall += 1
            if stall >= 20:
                theta, stall = theta / 2, 0
        if ub - best <= 1e-7 * max(abs(ub), 1) or theta < 1e-4:
            break
        opened = np.concatenate([np.flatnonzero(fixed), chosen])
        g = 1.0 - (red[:, opened] < 0).sum(axis=1)
        norm = float(g @ g)
        if norm == 0:
            break  # the relaxed solution is feasible: the bound is the optimum
        lam += theta * (ub - value) / norm * g
    return float(best), best_lam


def _reduce(wc: np.ndarray, p: int, fixed: np.ndarray, lam: np.ndarray, lb: float,
            ub: float) -> tuple[np.ndarray, np.ndarray]:
    """Lagrangian reduced-cost fixing: sites and pairs whose use forces the bound above the incumbent cannot be
    in a better solution. Returns the sites kept (not fixed closed) and the demand-site pairs kept."""
    red = np.minimum(wc - lam[:, None], 0.0)
    rho = red.sum(axis=0)
    free = np.flatnonzero(~fixed)
    order = free[np.argsort(rho[free], kind="stable")]
    in_set = np.zeros(wc.shape[1], dtype=bool)
    in_set[fixed] = True
    in_set[order[:p]] = True
    slack = ub + 1e-7 * max(abs(ub), 1)
    # the bound with site j forced open (j outside the relaxed set): it replaces the p-th chosen site
    pth = rho[order[p - 1]] if p else np.inf
    open_pen = np.where(in_set, 0.0, rho - pth)
    keep_site = (lb + open_pen <= slack) | fixed
    # a pair (i, j) forced to 1: demand i pays wc_ij - lam_i instead of its relaxed min(0, ...), and j opens
    pair_pen = np.maximum(wc - lam[:, None], 0.0) + open_pen[None, :]
    keep_pair = (lb + pair_pen <= slack) & keep_site[None, :] & np.isfinite(wc)
    return keep_site, keep_pair


def _reduced_mip(wc: np.ndarray, p: int, fixed: np.ndarray, keep_site: np.ndarray, keep_pair: np.ndarray,
                 incumbent: np.ndarray, time_limit: float, mip_rel_gap: float):
    """The p-median over the kept sites and pairs, warm-started with the incumbent."""
    n, m = wc.shape
    keep_pair = keep_pair.copy()
    keep_pair[np.arange(n), _nearest_cols(wc, incumbent)] = True  # the incumbent stays representable
    keep_site = keep_site.copy()
    keep_site[incumbent] = True
    pairs = np.argwhere(keep_pair)
    k = len(pairs)
    ii, jj = pairs[:, 0], pairs[:, 1]
    ar = np.arange(k)
    shape = lambda rows: (rows, m + k)  # noqa: E731
    assign = sp.csr_matrix((np.ones(k), (ii, m + ar)), shape=shape(n))
    link = sp.csr_matrix((np.concatenate([np.ones(k), -np.ones(k)]), (np.concatenate([ar, ar]),
                                                                      np.concatenate([m + ar, jj]))), shape=shape(k))
    count = sp.csr_matrix(np.concatenate([(~fixed).astype(float), np.zeros(k)])[None, :])
    c = np.concatenate([np.zeros(m), wc[ii, jj]])
    y_hi = keep_site.astype(float)
    start = np.zeros(m + k)
    start[incumbent] = 1
    near = _nearest_cols(wc, incumbent)
    start[m + np.flatnonzero(jj == near[ii])] = 1
    solved = _highs(c, sp.vstack([assign, link, count]), np.concatenate([np.ones(n), np.full(k, -INF), [p]]),
                    np.concatenate([np.ones(n), np.zeros(k), [p]]),
                    np.concatenate([fixed.astype(float), np.zeros(k)]), np.concatenate([y_hi, np.ones(k)]),
                    np.arange(m + k) < m, start=start, time_limit=time_limit, mip_rel_gap=mip_rel_gap)
    x = _require(solved, "the p-median model")
    return solved, x[:m], x[m:], pairs


def _nearest_cols(wc: np.ndarray, open_: np.ndarray) -> np.ndarray:
    return np.asarray(open_)[wc[:, open_].argmin(axis=1)]
