"""Goals on indicators: achievement, achievability, critical deviation, splitting to territories.

A goal takes an indicator from a baseline (period, value) to a target (period, value);
``direction`` says whether higher or lower values are better. The target must not be
worse than the baseline ("hold the level" goals, target == baseline, are allowed).
Progress is always judged on the latest actual observation at or after the baseline
period. Pure computation, no SQL, no HTTP.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from layers.errors import InvalidParameterValue
from planning.trends import Series, annual_rate, linear_trend, observations

Direction = Literal["higher", "lower"]
Verdict = Literal["on track", "at risk", "off track"]
HistoryMethod = Literal["cagr", "trend"]
Aggregation = Literal["sum", "mean"]

# Verdict thresholds on pace = historical rate / required rate (see achievability).
ON_TRACK_PACE = 1.0
AT_RISK_PACE = 0.5
CRITICAL_DEVIATION_PCT = 10.0


@dataclass(frozen=True)
class Goal:
    baseline_period: int
    baseline_value: float
    target_period: int
    target_value: float
    direction: Direction
    actual: Series = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.direction not in ("higher", "lower"):
            raise InvalidParameterValue(f"direction must be 'higher' or 'lower', got {self.direction!r}")
        if self.target_period <= self.baseline_period:
            raise InvalidParameterValue("the target period must come after the baseline period")
        for name in ("baseline_value", "target_value"):
            if not math.isfinite(getattr(self, name)):
                raise InvalidParameterValue(f"{name} must be a finite number")
        if self.better(self.baseline_value, self.target_value):
            raise InvalidParameterValue(
                f"the target {self.target_value:g} is worse than the baseline {self.baseline_value:g} "
                f"for an indicator where {self.direction} is better"
            )

    def better(self, a: float, b: float) -> bool:
        """True when ``a`` is strictly better than ``b`` in this goal's direction."""
        return a > b if self.direction == "higher" else a < b

    def latest(self) -> tuple[int | float, float]:
        """The latest actual (period, value) at or after the baseline period."""
        periods, values = observations(self.actual)
        usable = periods >= self.baseline_period
        if not usable.any():
            raise InvalidParameterValue(f"the goal has no actual value at or after its baseline {self.baseline_period}")
        period = periods[usable][-1]
        return (int(period) if period.is_integer() else float(period)), float(values[usable][-1])

    def history(self) -> dict[float, float]:
        """Actual observations from the baseline on; the baseline counts as one unless observed."""
        periods, values = observations(self.actual)
        points = {float(p): float(v) for p, v in zip(periods, values, strict=True) if p >= self.baseline_period}
        points.setdefault(float(self.baseline_period), self.baseline_value)
        return points

    def planned(self, period: float) -> float:
        """Value of the straight-line path from baseline to target at ``period`` (held after the target)."""
        share = (period - self.baseline_period) / (self.target_period - self.baseline_period)
        share = min(max(share, 0.0), 1.0)
        return self.baseline_value + share * (self.target_value - self.baseline_value)


@dataclass(frozen=True)
class Achievement:
    """Share of the way from baseline to target covered by the latest actual.

    ``raw`` is unclipped: negative when the indicator moved away from the target,
    above 1 when it overshot. ``clipped`` is ``raw`` clipped to [0, 1] for display.
    """

    period: int | float
    value: float
    raw: float
    clipped: float


def achievement(goal: Goal) -> Achievement:
    period, value = goal.latest()
    gap = goal.target_value - goal.baseline_value
    # A hold-the-level goal (gap 0) is either met (not worse than the level) or not.
    met = not goal.better(goal.target_value, value)
    raw = (value - goal.baseline_value) / gap if gap != 0 else float(met)
    return Achievement(period=period, value=value, raw=raw, clipped=min(max(raw, 0.0), 1.0))


@dataclass(frozen=True)
class Achievability:
    """Required constant annual rate against the historical one.

    Rates are relative (compound, per year) for ``method="cagr"`` and absolute
    (indicator units per year) for ``method="trend"``. ``pace`` = historical / required;
    the verdict is on track when pace >= 1, at risk when 0.5 <= pace < 1, off track below
    (including a history moving the wrong way). A target already reached is on track; a
    target period that has come without the target being reached is off track.
    """

    method: HistoryMethod
    required_rate: float | None
    historical_rate: float
    pace: float | None
    verdict: Verdict
    achieved: bool


def _historical_rate(goal: Goal, method: HistoryMethod) -> float:
    history = goal.history()
    if len(history) < 2:
        raise InvalidParameterValue("achievability needs at least two observations from the baseline on")
    if method == "trend":
        return linear_trend(history).slope
    first, last = min(history), max(history)
    return annual_rate(history[first], history[last], last - first)


def _verdict(pace: float, on_track: float, at_risk: float) -> Verdict:
    if pace >= on_track:
        return "on track"
    return "at risk" if pace >= at_risk else "off track"


def achievability(
    goal: Goal,
    method: HistoryMethod = "cagr",
    on_track: float = ON_TRACK_PACE,
    at_risk: float = AT_RISK_PACE,
) -> Achievability:
    if method not in ("cagr", "trend"):
        raise InvalidParameterValue(f"method must be 'cagr' or 'trend', got {method!r}")
    if not 0 <= at_risk <= on_track:
        raise InvalidParameterValue("thresholds must satisfy 0 <= at_risk <= on_track")
    period, value = goal.latest()
    historical = _historical_rate(goal, method)
    achieved = not goal.better(goal.target_value, value)
    years = goal.target_period - period
    if achieved or years <= 0:
        verdict: Verdict = "on track" if achieved else "off track"
        return Achievability(method, None, historical, None, verdict, achieved)
    if method == "trend":
        required = (goal.target_value - value) / years
    else:
        required = annual_rate(value, goal.target_value, years)
    # Not achieved, so required != 0 and has the sign of improvement in either direction.
    pace = historical / required
    return Achievability(method, required, historical, pace, _verdict(pace, on_track, at_risk), achieved)


@dataclass(frozen=True)
class Deviation:
    """Shortfall of the latest actual against the straight-line path, in % of the path value.

    Positive ``shortfall_pct`` means worse than planned; ``inf`` when the planned value
    is 0 and the actual is worse. ``critical`` when shortfall_pct > threshold_pct.
    """

    period: int | float
    actual: float
    planned: float
    shortfall_pct: float
    critical: bool


def critical_deviation(goal: Goal, threshold_pct: float = CRITICAL_DEVIATION_PCT) -> Deviation:
    if threshold_pct < 0:
        raise InvalidParameterValue("the deviation threshold must be a non-negative percentage")
    period, value = goal.latest()
    planned = goal.planned(period)
    shortfall = planned - value if goal.direction == "higher" else value - planned
    if planned != 0:
        pct = 100.0 * shortfall / abs(planned)
    else:
        pct = math.inf if shortfall > 0 else (0.0 if shortfall == 0 else -math.inf)
    return Deviation(period, value, planned, pct, pct > threshold_pct)


def _shares(values: Mapping[str, float], what: str) -> dict[str, float]:
    if not values:
        raise InvalidParameterValue(f"{what} must name at least one child territory")
    shares = {k: float(v) for k, v in values.items()}
    if any(not math.isfinite(v) or v < 0 for v in shares.values()):
        raise InvalidParameterValue(f"{what} must be finite and non-negative")
    if sum(shares.values()) <= 0:
        raise InvalidParameterValue(f"{what} must not all be zero")
    return shares


def aggregate(
    values: Mapping[str, float], how: Aggregation = "sum", weights: Mapping[str, float] | None = None
) -> float:
    """Parent value of children values: their sum, or their weighted mean (equal weights by default)."""
    if how == "sum":
        return float(sum(values.values()))
    if how != "mean":
        raise InvalidParameterValue(f"aggregation must be 'sum' or 'mean', got {how!r}")
    w = _shares(weights or dict.fromkeys(values, 1.0), "weights")
    if set(w) != set(values):
        raise InvalidParameterValue("weights must name exactly the children that have values")
    keys = sorted(values)
    return float(np.average([values[k] for k in keys], weights=[w[k] for k in keys]))


def split_goal(
    target: float,
    *,
    baselines: Mapping[str, float] | None = None,
    weights: Mapping[str, float] | None = None,
    how: Aggregation = "sum",
) -> dict[str, float]:
    """Subgoal targets of child territories that aggregate back to the parent ``target``.

    ``how="sum"`` (extensive indicators: population, jobs): the target is shared in
    proportion to the baselines, or to the weights; give exactly one of them.
    ``how="mean"`` (intensive indicators: rates, per-capita values; the parent is the
    weighted mean of the children with ``weights``, equal by default): with baselines every
    child is scaled by the same factor target / weighted-mean baseline (equal relative
    effort); without baselines every child gets the parent's target.
    """
    if not math.isfinite(target):
        raise InvalidParameterValue("the target must be a finite number")
    if how == "sum":
        if (baselines is None) == (weights is None):
            raise InvalidParameterValue("a sum split needs exactly one of baselines or weights")
        given, what = (baselines, "baselines") if baselines is not None else (weights, "weights")
        shares = _shares(given, what)
        total = sum(shares.values())
        return {k: target * s / total for k, s in shares.items()}
    if how != "mean":
        raise InvalidParameterValue(f"aggregation must be 'sum' or 'mean', got {how!r}")
    children = baselines if baselines is not None else weights
    if children is None:
        raise InvalidParameterValue("a mean split needs baselines or weights naming the children")
    w = _shares(weights or dict.fromkeys(children, 1.0), "weights")
    if baselines is None:
        return dict.fromkeys(w, float(target))
    if set(baselines) != set(w):
        raise InvalidParameterValue("baselines and weights must name the same children")
    base_mean = aggregate(baselines, "mean", w)
    if base_mean == 0:
        raise InvalidParameterValue("the weighted-mean baseline is 0: targets cannot be proportional to it")
    factor = target / base_mean
    return {k: float(b) * factor for k, b in baselines.items()}
