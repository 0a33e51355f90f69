"""Goal seek (reverse modelling): lever values that make a model reach a target.

``model`` maps lever values (a dict name -> value) to the indicator value. ``bounds``
gives every lever's (low, high) range; only the levers named there are moved.

One lever: root finding with Brent's method. A sign change of model - target on the two
bounds is bracketed directly; otherwise a grid scan looks for an inner bracket (a
non-monotonic model can reach the target inside). With no bracket at all the target is
unreachable within the bounds and the closest achievable value is reported (grid point
refined by a bounded scalar minimisation). ``cost`` does not apply: a root is exact.

Several levers: the target is treated as a requirement, the cost as a preference.
Stage 1 minimises the squared distance to the target (L-BFGS-B, within bounds), from the
current levers. If ``cost`` is given (weights c_i of the quadratic cost
sum c_i * (x_i - current_i)**2), stage 2 minimises that cost subject to model = target
(or to the closest achievable value when the target is unreachable) with SLSQP, starting
from stage 1; its answer is kept only if it holds the value stage 1 reached. Without a
cost the answer is whichever closest point L-BFGS-B finds from the current levers.
Neither stage is a global optimiser: for non-convex models the result is the best found.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from layers.errors import InvalidParameterValue

Model = Callable[[dict[str, float]], float]
Bounds = Mapping[str, tuple[float, float]]

SOLVED = "solved"
UNREACHABLE = "unreachable within bounds"
NOT_CONVERGED = "not converged"


@dataclass(frozen=True)
class SeekResult:
    levers: dict[str, float]
    value: float
    target: float
    met: bool
    status: str
    solver: str
    message: str
    cost: float | None = None

    @property
    def gap(self) -> float:
        return self.value - self.target


def _check_bounds(bounds: Bounds) -> dict[str, tuple[float, float]]:
    if not bounds:
        raise InvalidParameterValue("goal seek needs at least one lever with bounds")
    checked = {}
    for name, pair in bounds.items():
        try:
            lo, hi = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise InvalidParameterValue(f"bounds of lever {name!r} must be a (low, high) pair of numbers") from None
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise InvalidParameterValue(f"bounds of lever {name!r} must be finite")
        if lo >= hi:
            raise InvalidParameterValue(f"bounds of lever {name!r} are empty: low {lo:g} is not below high {hi:g}")
        checked[name] = (lo, hi)
    return checked


def _start(bounds: dict[str, tuple[float, float]], current: Mapping[str, float] | None) -> dict[str, float]:
    """Current lever values (midpoint of the bounds when not given); must lie within the bounds."""
    current = current or {}
    unknown = set(current) - set(bounds)
    if unknown:
        raise InvalidParameterValue(f"current values given for levers without bounds: {sorted(unknown)}")
    start = {}
    for name, (lo, hi) in bounds.items():
        value = float(current.get(name, (lo + hi) / 2))
        if not lo <= value <= hi:
            raise InvalidParameterValue(f"current value {value:g} of lever {name!r} lies outside [{lo:g}, {hi:g}]")
        start[name] = value
    return start


def _cost_weights(bounds: dict[str, tuple[float, float]], cost: Mapping[str, float] | None) -> np.ndarray | None:
    if not cost:
        return None
    unknown = set(cost) - set(bounds)
    if unknown:
        raise InvalidParameterValue(f"cost given for levers without bounds: {sorted(unknown)}")
    weights = np.array([float(cost.get(name, 0.0)) for name in bounds])
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise InvalidParameterValue("cost weights must be finite and non-negative")
    return weights if weights.any() else None


def _evaluator(model: Model, names: list[str]) -> Callable[[np.ndarray], float]:
    def evaluate(x: np.ndarray) -> float:
        levers = {n: float(v) for n, v in zip(names, np.atleast_1d(x), strict=True)}
        value = float(model(levers))
        if not math.isfinite(value):
            raise InvalidParameterValue(f"the model returned {value} for levers {levers}")
        return value

    return evaluate


def seek(
    model: Model,
    target: float,
    bounds: Bounds,
    *,
    current: Mapping[str, float] | None = None,
    cost: Mapping[str, float] | None = None,
    tol: float | None = None,
    scan_points: int = 201,
) -> SeekResult:
    """Lever values within ``bounds`` that bring ``model`` to ``target`` (see the module doc).

    ``tol`` is the absolute tolerance on |value - target| for ``met``; by default
    1e-6 * max(1, |target|). An unreachable target is a result, not an error.
    """
    if not math.isfinite(target):
        raise InvalidParameterValue("the target must be a finite number")
    checked = _check_bounds(bounds)
    start = _start(checked, current)
    weights = _cost_weights(checked, cost)
    tol = 1e-6 * max(1.0, abs(target)) if tol is None else tol
    if tol <= 0:
        raise InvalidParameterValue("the tolerance must be positive")
    names = list(checked)
    evaluate = _evaluator(model, names)
    if len(names) == 1:
        if scan_points < 2:
            raise InvalidParameterValue("scan_points must be at least 2")
        return _seek_one(evaluate, names[0], checked[names[0]], start[names[0]], target, tol, scan_points)
    return _seek_many(evaluate, names, checked, start, weights, target, tol)


def _result(names: list[str], x: np.ndarray, value: float, target: float, tol: float, **kw) -> SeekResult:
    met = abs(value - target) <= tol
    return SeekResult(dict(zip(names, map(float, x), strict=True)), value, target, met, **kw)


def _seek_one(
    evaluate: Callable[[np.ndarray], float],
    name: str,
    bound: tuple[float, float],
    x0: float,
    target: float,
    tol: float,
    scan_points: int,
) -> SeekResult:
    def gap(x: float) -> float:
        return evaluate(np.array([x])) - target

    lo, hi = bound
    brackets = [(lo, hi)] if gap(lo) * gap(hi) <= 0 else []
    if not brackets:
        xs = np.linspace(lo, hi, scan_points)
        gs = np.array([gap(x) for x in xs])
        brackets = [(xs[i], xs[i + 1]) for i in range(len(xs) - 1) if gs[i] * gs[i + 1] <= 0]
    if brackets:
        # Several inner brackets: prefer the root nearest the current lever value.
        roots = [optimize.brentq(gap, a, b, xtol=1e-12) for a, b in brackets]
        root = min(roots, key=lambda r: abs(r - x0))
        value = evaluate(np.array([root]))
        return _result(
            [name],
            np.array([root]),
            value,
            target,
            tol,
            status=SOLVED,
            solver="brentq",
            message=f"root found in [{lo:g}, {hi:g}]",
        )
    best = int(np.argmin(np.abs(gs)))
    a, b = xs[max(best - 1, 0)], xs[min(best + 1, len(xs) - 1)]
    refined = optimize.minimize_scalar(lambda x: abs(gap(x)), bounds=(a, b), method="bounded")
    x = refined.x if abs(gap(refined.x)) < abs(gs[best]) else xs[best]
    value = evaluate(np.array([x]))
    return _result(
        [name],
        np.array([x]),
        value,
        target,
        tol,
        status=UNREACHABLE,
        solver="bounded scan",
        message=f"the model does not reach {target:g} for {name} in [{lo:g}, {hi:g}]; "
        f"closest achievable value {value:g}",
    )


def _seek_many(
    evaluate: Callable[[np.ndarray], float],
    names: list[str],
    bounds: dict[str, tuple[float, float]],
    start: dict[str, float],
    weights: np.ndarray | None,
    target: float,
    tol: float,
) -> SeekResult:
    box = [bounds[n] for n in names]
    x0 = np.array([start[n] for n in names])
    scale = max(1.0, abs(target))  # keeps the squared distance well conditioned for large targets
    first = optimize.minimize(
        lambda x: ((evaluate(x) - target) / scale) ** 2,
        x0,
        method="L-BFGS-B",
        bounds=box,
        options={"ftol": 1e-20, "gtol": 1e-14, "maxiter": 2000},
    )
    x, solver, message = np.clip(first.x, *np.array(box).T), "L-BFGS-B", str(first.message)
    value = evaluate(x)
    reached = value if abs(value - target) > tol else target
    if weights is not None:
        x, value, solver, message = _least_cost(evaluate, x, x0, weights, box, reached, value, tol, solver, message)
    met = abs(value - target) <= tol
    status = SOLVED if met else (UNREACHABLE if first.success else NOT_CONVERGED)
    cost = float(weights @ (x - x0) ** 2) if weights is not None else None
    return _result(names, x, value, target, tol, status=status, solver=solver, message=message, cost=cost)


def _least_cost(
    evaluate: Callable[[np.ndarray], float],
    x1: np.ndarray,
    x0: np.ndarray,
    weights: np.ndarray,
    box: list[tuple[float, float]],
    reached: float,
    value1: float,
    tol: float,
    solver: str,
    message: str,
) -> tuple[np.ndarray, float, str, str]:
    """Stage 2: cheapest levers holding the value stage 1 reached; falls back to stage 1."""
    res = optimize.minimize(
        lambda x: float(weights @ (x - x0) ** 2),
        x1,
        method="SLSQP",
        bounds=box,
        constraints=[{"type": "eq", "fun": lambda x: evaluate(x) - reached}],
        options={"ftol": 1e-14, "maxiter": 500},
    )
    x2 = np.clip(res.x, *np.array(box).T)
    value2 = evaluate(x2)
    if res.success and abs(value2 - reached) <= max(tol, abs(value1 - reached)):
        return x2, value2, f"{solver} + SLSQP", str(res.message)
    return x1, value1, solver, f"{message}; least-cost stage failed: {res.message}"
