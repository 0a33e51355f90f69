"""Appraisal of a project from yearly cash flows (pure computation, no SQL, no HTTP).

``flows[t]`` is the net cash flow at the end of year ``t``; ``flows[0]`` is the initial
investment (negative). ``rate`` is the yearly discount rate as a fraction (0.05 = 5 %).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from layers.errors import InvalidParameterValue

Flows = Sequence[float] | np.ndarray


def _flows(flows: Flows) -> np.ndarray:
    try:
        cf = np.asarray(flows, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(f"cash flows must be numbers: {exc}") from exc
    if cf.ndim != 1 or cf.size == 0:
        raise InvalidParameterValue("cash flows must be a non-empty list of yearly amounts")
    if not np.isfinite(cf).all():
        raise InvalidParameterValue(f"cash flow of year {int((~np.isfinite(cf)).argmax())} is NaN or infinite")
    return cf


def _rate(rate: float) -> float:
    r = float(rate)
    if not math.isfinite(r) or r <= -1:
        raise InvalidParameterValue(f"discount rate must be a finite number > -1 (-100 %); got {rate}")
    return r


def _investment(cf: np.ndarray) -> float:
    if cf[0] >= 0:
        raise InvalidParameterValue(f"year 0 must be the investment, a negative cash flow; got {cf[0]}")
    return -float(cf[0])


def _discounted(rate: float, cf: np.ndarray) -> np.ndarray:
    return cf / (1.0 + rate) ** np.arange(cf.size)


def npv(rate: float, flows: Flows) -> float:
    """Net present value Σ CF_t / (1 + rate)^t, year 0 undiscounted."""
    return math.fsum(_discounted(_rate(rate), _flows(flows)))


def _sign_changes(cf: np.ndarray) -> int:
    signs = np.sign(cf[cf != 0])
    return int(np.count_nonzero(signs[1:] != signs[:-1]))


def _trim(cf: np.ndarray) -> np.ndarray:
    # Leading/trailing zero years only multiply the NPV polynomial by vᵏ: same positive roots.
    nz = np.flatnonzero(cf)
    return cf[nz[0] : nz[-1] + 1]


def irr_candidates(flows: Flows) -> list[float]:
    """Every rate > −1 with NPV = 0 (roots of Σ CF_t vᵗ with v = 1/(1+r) > 0), ascending."""
    cf = _flows(flows)
    if not cf.any():
        return []
    cf = _trim(cf)
    roots = np.roots(cf[::-1])  # np.roots wants the highest power first
    real = roots[(np.abs(roots.imag) <= 1e-9 * np.maximum(1.0, np.abs(roots.real))) & (roots.real > 0)].real
    return sorted(float(1.0 / v - 1.0) for v in real)


def irr(flows: Flows) -> float:
    """Internal rate of return: the unique rate > −1 with NPV = 0.

    Requires exactly one sign change (Descartes: then exactly one root). Brackets the root
    in the discount factor v = 1/(1+r) ∈ (0, ∞), where NPV(v) is a polynomial with
    NPV(0) = CF_first and sign(NPV(v → ∞)) = sign(CF_last), and refines it with Brent's method.
    """
    cf = _flows(flows)
    changes = _sign_changes(cf)
    if changes == 0:
        raise InvalidParameterValue("no IRR: the cash flows never change sign, so the NPV is never zero")
    if changes > 1:
        candidates = ", ".join(f"{r:.4%}" for r in irr_candidates(cf)) or "none"
        raise InvalidParameterValue(
            f"IRR is ambiguous: the cash flows change sign {changes} times, so there can be several "
            f"(rates with NPV = 0: {candidates}); compare projects by NPV instead",
            candidates=irr_candidates(cf),
        )
    poly = _trim(cf)

    def f(v: float) -> float:
        return float(np.polynomial.polynomial.polyval(v, poly))

    hi = 1.0
    while np.sign(f(hi)) != np.sign(poly[-1]):  # grows to the side where the last flow dominates
        hi *= 2.0
        if hi > 1e12:
            raise InvalidParameterValue("IRR could not be bracketed (rate below -99.9999999999 %)")
    v = brentq(f, 0.0, hi, xtol=1e-15, rtol=1e-15, maxiter=500)
    return 1.0 / v - 1.0


def discounted_payback(rate: float, flows: Flows) -> float | None:
    """Years until the cumulative discounted cash flow turns non-negative for good.

    Linear interpolation within the year of the crossing (the year's discounted flow is
    assumed to accrue evenly). "For good": the last crossing after which the cumulative sum
    stays ≥ 0 to the horizon, so later negative years (e.g. decommissioning) are honoured.
    None when the cumulative sum ends negative (never pays back within the horizon).
    """
    cf = _flows(flows)
    _investment(cf)
    cum = np.cumsum(_discounted(_rate(rate), cf))
    if cum[-1] < 0:
        return None
    t = int(np.flatnonzero(cum < 0)[-1]) + 1  # first year of the final non-negative run
    return (t - 1) + float(-cum[t - 1] / (cum[t] - cum[t - 1]))


def profitability_index(rate: float, flows: Flows) -> float:
    """PV of all (net) flows after year 0 / |investment of year 0| = 1 + NPV / |CF₀|.

    Convention: later negative flows (renewals, running costs) reduce the numerator rather
    than adding to the denominator; > 1 exactly when NPV > 0.
    """
    cf = _flows(flows)
    invest = _investment(cf)
    return math.fsum(_discounted(_rate(rate), cf)[1:]) / invest


def monte_carlo(
    rate: float, build_flows: Callable[[np.random.Generator], Flows], n: int = 10_000, seed: int | None = None
) -> dict[str, float]:
    """Distribution of the NPV over ``n`` draws of ``build_flows(rng)``; reproducible for a given seed."""
    r = _rate(rate)
    if int(n) != n or n < 1:
        raise InvalidParameterValue(f"number of simulations must be a positive integer; got {n}")
    rng = np.random.default_rng(seed)
    values = np.array([npv(r, build_flows(rng)) for _ in range(int(n))])
    p5, p50, p95 = np.percentile(values, [5, 50, 95])
    return {
        "p_npv_negative": float(np.mean(values < 0)),
        "p5": float(p5),
        "p50": float(p50),
        "p95": float(p95),
        "mean": float(values.mean()),
    }


@dataclass(frozen=True)
class Triangular:
    low: float
    mode: float
    high: float

    def __post_init__(self) -> None:
        if not (self.low <= self.mode <= self.high and self.low < self.high):
            raise InvalidParameterValue(f"triangular needs low ≤ mode ≤ high and low < high; got {self}")

    def draw(self, rng: np.random.Generator) -> float:
        return float(rng.triangular(self.low, self.mode, self.high))


@dataclass(frozen=True)
class Normal:
    mean: float
    sd: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and math.isfinite(self.sd) and self.sd >= 0):
            raise InvalidParameterValue(f"normal needs a finite mean and sd ≥ 0; got {self}")

    def draw(self, rng: np.random.Generator) -> float:
        return float(rng.normal(self.mean, self.sd))


Quantity = float | Triangular | Normal


def _draw(q: Quantity, rng: np.random.Generator) -> float:
    return q.draw(rng) if isinstance(q, Triangular | Normal) else float(q)


def flow_builder(
    years: int, capex: Quantity, revenue: Quantity, cost: Quantity = 0.0, growth: Quantity = 0.0
) -> Callable[[np.random.Generator], np.ndarray]:
    """``build_flows`` for :func:`monte_carlo`: −capex in year 0, then (revenue − cost)(1+growth)^(t−1).

    Each quantity is a number or a :class:`Triangular` / :class:`Normal`; it is drawn once per
    simulation and held for every year (a scenario-level uncertainty, perfectly correlated
    across years). ``growth`` applies to the net annual amount.
    """
    if int(years) != years or years < 1:
        raise InvalidParameterValue(f"years must be a positive integer; got {years}")

    def build(rng: np.random.Generator) -> np.ndarray:
        c, rev, cst, g = (_draw(q, rng) for q in (capex, revenue, cost, growth))
        annual = (rev - cst) * (1.0 + g) ** np.arange(int(years))
        return np.concatenate(([-c], annual))

    return build
