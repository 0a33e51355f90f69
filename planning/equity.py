"""Inequality of accessibility and provision across people or places.

Pure computation (no SQL, no HTTP). Every function takes ``values`` (e.g. minutes to the
nearest school, m² of green space per resident) and optional ``weights`` (e.g. residents of
each zone); a weight of ``k`` counts a value ``k`` times, so integer weights give exactly
the result of the expanded sample.

Conventions:

* Values must be finite and ≥ 0; weights finite, ≥ 0 and not all zero. Zero-weight entries
  are ignored.
* When every value is zero there is nothing to distribute unequally: every index reports
  perfect equality (Gini 0, Theil 0, Palma 0.25 = 10 % / 40 %, Lorenz curve = diagonal).
* The Lorenz curve is piecewise linear between the cumulative population shares, i.e. a
  place's residents all receive the place's value; quantile shares (Palma) read that curve,
  so a place straddling a boundary is split in proportion to its weight.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import NamedTuple

import numpy as np

from layers.errors import InvalidParameterValue

ArrayLike = Sequence[float] | np.ndarray


def _as_vector(data: ArrayLike, name: str) -> np.ndarray:
    try:
        arr = np.asarray(data, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(f"{name} must be numbers: {exc}") from exc
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidParameterValue(f"{name} must be a non-empty list of numbers")
    if np.isnan(arr).any():
        raise InvalidParameterValue(f"{name} contains NaN (missing data) at position {int(np.isnan(arr).argmax())}")
    if np.isinf(arr).any():
        raise InvalidParameterValue(f"{name} contains an infinite value at position {int(np.isinf(arr).argmax())}")
    if (arr < 0).any():
        raise InvalidParameterValue(
            f"{name} must be ≥ 0; got {arr[arr < 0][0]} at position {int((arr < 0).argmax())}"
        )
    return arr


def _prepare(values: ArrayLike, weights: ArrayLike | None) -> tuple[np.ndarray, np.ndarray]:
    """Validated (values, weights), sorted ascending by value, zero weights dropped."""
    x = _as_vector(values, "values")
    w = np.ones_like(x) if weights is None else _as_vector(weights, "weights")
    if w.shape != x.shape:
        raise InvalidParameterValue(f"weights has {w.size} entries but values has {x.size}")
    if w.sum() <= 0:
        raise InvalidParameterValue("weights must not all be zero")
    keep = w > 0
    x, w = x[keep], w[keep]
    order = np.argsort(x, kind="stable")
    return x[order], w[order]


def _lorenz_sorted(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.concatenate(([0.0], np.cumsum(w))) / w.sum()
    mass = x * w
    total = mass.sum()
    if total == 0:  # nothing to distribute: equality convention (module docstring)
        return p, p.copy()
    return p, np.concatenate(([0.0], np.cumsum(mass))) / total


def lorenz(values: ArrayLike, weights: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Lorenz curve points ``(p, L)``: cumulative population and value shares, from (0, 0) to (1, 1)."""
    return _lorenz_sorted(*_prepare(values, weights))


def gini(values: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Weighted Gini coefficient: 1 − 2 × area under the (piecewise-linear) Lorenz curve.

    Equals the mean-absolute-difference form ΣᵢΣⱼ wᵢwⱼ|xᵢ−xⱼ| / (2 W² μ) (population
    convention, no n/(n−1) correction): 0 for equality, (n−1)/n when one of n has everything.
    """
    p, lor = lorenz(values, weights)
    # Trapezoids: area = Σ Δp (L_k + L_{k−1}) / 2, so G = 1 − Σ Δp (L_k + L_{k−1}).
    g = 1.0 - float(np.sum(np.diff(p) * (lor[1:] + lor[:-1])))
    return max(g, 0.0)  # clip −1e−16 rounding for equal values


def _theil_sorted(x: np.ndarray, w: np.ndarray) -> float:
    mu = float(np.average(x, weights=w))
    if mu == 0:
        return 0.0
    r = x / mu
    # 0·ln 0 = 0: a person with nothing adds nothing to Theil T.
    terms = np.where(r > 0, r * np.log(np.where(r > 0, r, 1.0)), 0.0)
    return max(float(np.average(terms, weights=w)), 0.0)


def theil(values: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Theil T index (1/W) Σ wᵢ (xᵢ/μ) ln(xᵢ/μ): 0 for equality, ln n when one of n people has everything."""
    return _theil_sorted(*_prepare(values, weights))


class GroupContribution(NamedTuple):
    population_share: float  # W_g / W
    value_share: float  # s_g = W_g μ_g / (W μ)
    mean: float  # μ_g
    theil: float  # T_g, the group's own Theil T
    within: float  # s_g T_g
    between: float  # s_g ln(μ_g / μ)


class TheilDecomposition(NamedTuple):
    total: float
    between: float
    within: float
    groups: dict[Hashable, GroupContribution]


def theil_decomposition(
    values: ArrayLike, groups: Sequence[Hashable], weights: ArrayLike | None = None
) -> TheilDecomposition:
    """Split Theil T into between-group and within-group parts (Theil 1967; Shorrocks 1980).

    T = Σ_g s_g ln(μ_g/μ) + Σ_g s_g T_g with s_g the group's share of the total value.
    ``total`` is returned as ``between + within`` so the identity holds exactly in floating
    point; it equals :func:`theil` up to rounding (~1e−15).
    """
    x = _as_vector(values, "values")
    w = np.ones_like(x) if weights is None else _as_vector(weights, "weights")
    labels = list(groups)
    if len(labels) != x.size or w.size != x.size:
        raise InvalidParameterValue(
            f"values, groups and weights must have the same length ({x.size}, {len(labels)}, {w.size})"
        )
    if w.sum() <= 0:
        raise InvalidParameterValue("weights must not all be zero")
    weight_total = float(w.sum())
    mu = float(np.average(x, weights=w))
    parts: dict[Hashable, GroupContribution] = {}
    for g in dict.fromkeys(labels):  # first-appearance order
        mask = np.array([lab == g for lab in labels]) & (w > 0)
        if not mask.any():
            continue
        xg, wg = x[mask], w[mask]
        mu_g = float(np.average(xg, weights=wg))
        pop = float(wg.sum()) / weight_total
        share = pop * mu_g / mu if mu > 0 else 0.0
        t_g = _theil_sorted(xg, wg)
        between_g = share * math.log(mu_g / mu) if share > 0 else 0.0
        parts[g] = GroupContribution(pop, share, mu_g, t_g, share * t_g, between_g)
    between = math.fsum(c.between for c in parts.values())
    within = math.fsum(c.within for c in parts.values())
    return TheilDecomposition(between + within, between, within, parts)


def _share_below(p: np.ndarray, lor: np.ndarray, q: float) -> float:
    # Linear interpolation on the Lorenz curve = splitting the straddling unit by weight.
    return float(np.interp(q, p, lor))


def palma(values: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Palma ratio: value share of the top 10 % of the population / share of the bottom 40 %.

    Population shares use ``weights``; a unit straddling the 40 % or 90 % boundary is split
    in proportion to its weight (linear interpolation on the Lorenz curve). Equality gives
    0.25; returns ``math.inf`` when the bottom 40 % hold nothing but others hold something.
    """
    p, lor = lorenz(values, weights)
    bottom = _share_below(p, lor, 0.4)
    top = 1.0 - _share_below(p, lor, 0.9)
    if bottom <= 0:
        return math.inf
    return top / bottom
