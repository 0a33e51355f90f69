"""Trends of an indicator's time series: growth, CAGR, linear trend, structural breaks.

A series maps periods (years) to values; gaps are allowed: missing years, ``None`` or
NaN values are simply not observations. Pure computation, no SQL, no HTTP.

Structural break method: every observed period with at least ``min_segment``
observations on each side is tried as the first period of a new regime; the series is
fitted by two independent straight lines (one per side) and the candidate with the
minimum total SSE wins. Its significance is the Chow test of "one line" against "two
lines": F = ((SSE_pooled - SSE_split) / 2) / (SSE_split / (n - 4)) with (2, n - 4)
degrees of freedom. Because the break was chosen as the best of m candidates, the
nominal Chow p-value is too optimistic; the verdict uses the Bonferroni-adjusted
p-value min(1, m * p) (conservative), both are reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

from layers.errors import InvalidParameterValue

Series = Mapping[int, float | None]

# Parameters of a straight line (slope, intercept): the Chow test compares 2 against 2 + 2.
_LINE_PARAMS = 2


def observations(series: Series) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (periods, values) of the observed points; gaps (None/NaN) are dropped."""
    points = []
    for period, value in series.items():
        if value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidParameterValue(f"value {value!r} of period {period} is not a number") from None
        if math.isnan(number):
            continue
        if math.isinf(number):
            raise InvalidParameterValue(f"value of period {period} is infinite")
        points.append((float(period), number))
    points.sort()
    periods = np.array([p for p, _ in points], dtype=float)
    values = np.array([v for _, v in points], dtype=float)
    return periods, values


def _require(n: int, needed: int, what: str) -> None:
    if n < needed:
        raise InvalidParameterValue(f"{what} needs at least {needed} observed periods, the series has {n}")


def _period(p: float) -> int | float:
    return int(p) if float(p).is_integer() else float(p)


def annual_rate(start_value: float, end_value: float, years: float) -> float:
    """Constant annual (compound) rate taking start_value to end_value in ``years``."""
    if years <= 0:
        raise InvalidParameterValue("the end period must come after the start period")
    if start_value <= 0 or end_value <= 0:
        # A compound rate between values of different sign (or from zero) does not exist.
        raise InvalidParameterValue(
            f"a compound growth rate needs positive values, got {start_value:g} and {end_value:g}"
        )
    return (end_value / start_value) ** (1.0 / years) - 1.0


def yoy_growth(series: Series) -> dict[int | float, float | None]:
    """Growth rate of each observed period against the previous observed one.

    Across a gap of k years the rate is annualised: (v1 / v0) ** (1 / k) - 1, so rates stay
    comparable. ``None`` where the rate is undefined (a non-positive value at either end).
    The first observed period has no rate and is omitted.
    """
    periods, values = observations(series)
    rates: dict[int | float, float | None] = {}
    for i in range(1, len(periods)):
        v0, v1 = values[i - 1], values[i]
        years = periods[i] - periods[i - 1]
        rates[_period(periods[i])] = (v1 / v0) ** (1.0 / years) - 1.0 if v0 > 0 and v1 > 0 else None
    return rates


def cagr(series: Series, start: int | None = None, end: int | None = None) -> float:
    """Compound annual growth rate between two observed periods (default: first and last)."""
    periods, values = observations(series)
    _require(len(periods), 2, "a CAGR")
    observed = {_period(p): v for p, v in zip(periods, values, strict=True)}
    start = _period(periods[0]) if start is None else start
    end = _period(periods[-1]) if end is None else end
    for label, period in (("start", start), ("end", end)):
        if period not in observed:
            raise InvalidParameterValue(f"{label} period {period} has no observed value")
    return annual_rate(observed[start], observed[end], float(end) - float(start))


@dataclass(frozen=True)
class Trend:
    """Least-squares line value = intercept + slope * period."""

    slope: float
    intercept: float
    r2: float
    n: int
    sse: float

    def project(self, period: float) -> float:
        """The trend's value at ``period`` (extrapolated outside the observed range)."""
        return self.intercept + self.slope * period


def _fit(periods: np.ndarray, values: np.ndarray) -> Trend:
    x_mean, y_mean = periods.mean(), values.mean()
    sxx = float(((periods - x_mean) ** 2).sum())
    if sxx == 0:
        raise InvalidParameterValue("a trend needs at least two distinct periods")
    slope = float(((periods - x_mean) * (values - y_mean)).sum()) / sxx
    intercept = float(y_mean - slope * x_mean)
    residuals = values - (intercept + slope * periods)
    sse = float((residuals**2).sum())
    sst = float(((values - y_mean) ** 2).sum())
    # A constant series is fitted perfectly by a flat line: R² = 1 rather than 0/0.
    r2 = 1.0 if sst == 0 else 1.0 - sse / sst
    return Trend(slope=slope, intercept=intercept, r2=r2, n=len(periods), sse=sse)


def linear_trend(series: Series) -> Trend:
    """Ordinary least-squares linear trend of the observed points."""
    periods, values = observations(series)
    _require(len(periods), 2, "a linear trend")
    return _fit(periods, values)


@dataclass(frozen=True)
class StructuralBreak:
    """The best single break: ``period`` is the first period of the new regime."""

    period: int | float
    f_stat: float
    p_value: float
    p_value_adjusted: float
    significant: bool
    candidates: int
    before: Trend
    after: Trend


def _chow(sse_pooled: float, sse_split: float, n: int) -> tuple[float, float]:
    """Chow F statistic and its p-value for one line against two lines."""
    dof = n - 2 * _LINE_PARAMS
    gain = max(sse_pooled - sse_split, 0.0)
    if sse_split <= 1e-12 * max(sse_pooled, 1.0):
        # Two exact lines: infinite F unless one line was already exact too.
        return (math.inf, 0.0) if gain > 0 else (0.0, 1.0)
    f_stat = (gain / _LINE_PARAMS) / (sse_split / dof)
    return f_stat, float(stats.f.sf(f_stat, _LINE_PARAMS, dof))


def structural_break(series: Series, min_segment: int = 3, alpha: float = 0.05) -> StructuralBreak:
    """Best single break of the linear trend (minimum total SSE) and its Chow-test significance."""
    if min_segment < 2:
        raise InvalidParameterValue("min_segment must be at least 2 (a line needs two points)")
    if not 0 < alpha < 1:
        raise InvalidParameterValue("alpha must lie strictly between 0 and 1")
    periods, values = observations(series)
    # The Chow test needs n - 4 > 0 residual degrees of freedom.
    _require(len(periods), max(2 * min_segment, 2 * _LINE_PARAMS + 1), "a structural break test")
    n = len(periods)
    pooled = _fit(periods, values)
    best: tuple[float, int, Trend, Trend] | None = None
    for k in range(min_segment, n - min_segment + 1):
        before, after = _fit(periods[:k], values[:k]), _fit(periods[k:], values[k:])
        total = before.sse + after.sse
        if best is None or total < best[0]:
            best = (total, k, before, after)
    assert best is not None  # the length check guarantees one candidate
    sse_split, k, before, after = best
    candidates = n - 2 * min_segment + 1
    f_stat, p_value = _chow(pooled.sse, sse_split, n)
    p_adjusted = min(1.0, p_value * candidates)
    return StructuralBreak(
        period=_period(periods[k]),
        f_stat=f_stat,
        p_value=p_value,
        p_value_adjusted=p_adjusted,
        significant=p_adjusted < alpha,
        candidates=candidates,
        before=before,
        after=after,
    )
