"""Trends, goals and goal seek: pure computation checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from layers.errors import InvalidParameterValue
from planning.goals import Goal, achievability, achievement, aggregate, critical_deviation, split_goal
from planning.goalseek import SOLVED, UNREACHABLE, seek
from planning.trends import cagr, linear_trend, structural_break, yoy_growth

# --- trends -------------------------------------------------------------------------------------


def test_yoy_growth_annualises_across_gaps():
    # 2020 is a gap: 110 -> 133.1 over two years is 10 % a year (1.1 ** 2 = 1.21).
    rates = yoy_growth({2018: 100, 2019: 110, 2020: None, 2021: 133.1})
    assert list(rates) == [2019, 2021]
    assert rates[2019] == pytest.approx(0.10)
    assert rates[2021] == pytest.approx(0.10)


def test_yoy_growth_undefined_from_zero():
    assert yoy_growth({2018: 0, 2019: 5, 2020: 10}) == {2019: None, 2020: pytest.approx(1.0)}


def test_cagr_default_and_explicit_periods():
    series = {2018: 100, 2019: 110, 2020: float("nan"), 2021: 133.1}
    assert cagr(series) == pytest.approx(0.10)  # 1.331 ** (1/3) = 1.1
    assert cagr(series, 2019, 2021) == pytest.approx(0.10)
    with pytest.raises(InvalidParameterValue, match="2020"):
        cagr(series, 2018, 2020)
    with pytest.raises(InvalidParameterValue, match="positive"):
        cagr({2018: -1, 2019: 2})


def test_linear_trend_hand_series():
    # x - mean = -1.5, -0.5, 0.5, 1.5; y - mean(3) = -2, 0, -1, 3 -> Sxy 7, Sxx 5, slope 1.4.
    trend = linear_trend({2000: 1, 2001: 3, 2002: 2, 2003: 6})
    assert trend.slope == pytest.approx(1.4)
    assert trend.project(2001.5) == pytest.approx(3.0)
    assert trend.project(2005) == pytest.approx(3 + 1.4 * 3.5)
    # Residuals 0.1, 0.7, -1.7, 0.9 -> SSE 4.2; SST 14 -> R² 0.7.
    assert trend.sse == pytest.approx(4.2)
    assert trend.r2 == pytest.approx(0.7)


def test_linear_trend_exact_and_too_short():
    trend = linear_trend({2010: 5, 2012: 9, 2015: 15})
    assert (trend.slope, trend.r2) == (pytest.approx(2.0), pytest.approx(1.0))
    with pytest.raises(InvalidParameterValue, match="at least 2"):
        linear_trend({2010: 5, 2011: None})


def test_structural_break_found_at_the_regime_change():
    rng = np.random.default_rng(0)
    # Rising by 0.5 a year until 2007, then a jump to 30 and a fall of 1 a year from 2008.
    series = {
        y: (10 + 0.5 * (y - 2000) if y < 2008 else 30 - (y - 2008)) + rng.normal(0, 0.3) for y in range(2000, 2016)
    }
    found = structural_break(series)
    assert found.period == 2008
    assert found.significant
    assert found.p_value_adjusted < 1e-6
    assert found.candidates == 16 - 2 * 3 + 1
    assert found.before.slope == pytest.approx(0.5, abs=0.15)
    assert found.after.slope == pytest.approx(-1.0, abs=0.15)


def test_no_significant_break_on_a_noisy_line():
    rng = np.random.default_rng(0)
    series = {y: 5 + 2 * (y - 2000) + rng.normal(0, 1) for y in range(2000, 2020)}
    assert not structural_break(series).significant
    # The Bonferroni-adjusted test keeps false alarms at most near alpha over many lines.
    alarms = 0
    for seed in range(1, 201):
        rng = np.random.default_rng(seed)
        alarms += structural_break({y: 5 + 2 * y + rng.normal(0, 1) for y in range(2000, 2020)}).significant
    assert alarms / 200 <= 0.10


def test_structural_break_refuses_short_series():
    with pytest.raises(InvalidParameterValue, match="at least 6"):
        structural_break({y: float(y) for y in range(2000, 2005)})


# --- goals ---------------------------------------------------------------------------------------


def _rise(actual: dict) -> Goal:
    return Goal(2020, 100.0, 2030, 200.0, "higher", actual)


def _cut(actual: dict) -> Goal:
    return Goal(2020, 50.0, 2030, 30.0, "lower", actual)


def test_achievement_higher_is_better():
    got = achievement(_rise({2019: 95, 2020: 100, 2024: 140}))
    assert (got.period, got.value) == (2024, 140)
    assert got.raw == pytest.approx(0.4)
    assert got.clipped == pytest.approx(0.4)
    moved_away = achievement(_rise({2024: 90}))
    assert moved_away.raw == pytest.approx(-0.1)
    assert moved_away.clipped == 0.0


def test_achievement_lower_is_better_and_overshoot():
    assert achievement(_cut({2022: 48, 2025: 45})).raw == pytest.approx(0.25)  # -5 of -20
    overshoot = achievement(_cut({2026: 28}))
    assert overshoot.raw == pytest.approx(1.1)
    assert overshoot.clipped == 1.0


def test_hold_the_level_goal():
    hold = Goal(2020, 10.0, 2030, 10.0, "lower", {2024: 9.5})
    assert achievement(hold).raw == 1.0
    assert achievement(Goal(2020, 10.0, 2030, 10.0, "lower", {2024: 10.5})).raw == 0.0


def test_goal_validation():
    with pytest.raises(InvalidParameterValue, match="worse than the baseline"):
        Goal(2020, 100.0, 2030, 90.0, "higher")
    with pytest.raises(InvalidParameterValue, match="worse than the baseline"):
        Goal(2020, 50.0, 2030, 60.0, "lower")
    with pytest.raises(InvalidParameterValue, match="after the baseline"):
        Goal(2030, 100.0, 2020, 200.0, "higher")
    with pytest.raises(InvalidParameterValue, match="direction"):
        Goal(2020, 100.0, 2030, 200.0, "up")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterValue, match="no actual value"):
        achievement(_rise({2018: 90}))


def test_achievability_higher_cagr_on_track():
    got = achievability(_rise({2024: 140}))
    # History 100 (baseline 2020) -> 140 (2024); required 140 -> 200 in 6 years.
    assert got.historical_rate == pytest.approx(1.4**0.25 - 1)
    assert got.required_rate == pytest.approx((200 / 140) ** (1 / 6) - 1)
    assert got.pace == pytest.approx((1.4**0.25 - 1) / ((200 / 140) ** (1 / 6) - 1))
    assert got.verdict == "on track"


def test_achievability_higher_trend_at_risk():
    got = achievability(_rise({2024: 130}), method="trend")
    # Slope 30 / 4 = 7.5 a year against (200 - 130) / 6 = 11.67 required: pace 0.643.
    assert got.historical_rate == pytest.approx(7.5)
    assert got.required_rate == pytest.approx(70 / 6)
    assert got.pace == pytest.approx(7.5 / (70 / 6))
    assert got.verdict == "at risk"


def test_achievability_lower_off_track_both_methods():
    goal = _cut({2022: 48, 2025: 45})
    trend = achievability(goal, method="trend")
    # Points (2020, 50), (2022, 48), (2025, 45): Sxy = Sxx = 12.667 -> slope -1; required -15 / 5 = -3.
    assert trend.historical_rate == pytest.approx(-1.0)
    assert trend.required_rate == pytest.approx(-3.0)
    assert trend.pace == pytest.approx(1 / 3)
    assert trend.verdict == "off track"
    compound = achievability(goal)
    assert compound.historical_rate == pytest.approx(0.9**0.2 - 1)
    assert compound.required_rate == pytest.approx((30 / 45) ** 0.2 - 1)
    assert compound.verdict == "off track"


def test_achievability_reached_and_expired():
    reached = achievability(_cut({2026: 28}))
    assert (reached.verdict, reached.achieved, reached.required_rate) == ("on track", True, None)
    expired = achievability(_rise({2031: 150}))
    assert (expired.verdict, expired.achieved) == ("off track", False)


def test_critical_deviation_both_directions():
    on_path = critical_deviation(_rise({2024: 140}))
    assert on_path.planned == pytest.approx(140)
    assert on_path.shortfall_pct == pytest.approx(0.0)
    assert not on_path.critical
    behind = critical_deviation(_rise({2024: 130}))
    assert behind.shortfall_pct == pytest.approx(100 * 10 / 140)  # 7.14 %
    assert not behind.critical
    assert critical_deviation(_rise({2024: 130}), threshold_pct=5).critical
    # Lower is better: planned 40 in 2025, actual 45 -> 12.5 % worse.
    cut = critical_deviation(_cut({2025: 45}))
    assert cut.planned == pytest.approx(40)
    assert cut.shortfall_pct == pytest.approx(12.5)
    assert cut.critical
    ahead = critical_deviation(_cut({2025: 36}))
    assert ahead.shortfall_pct == pytest.approx(-10.0)
    assert not ahead.critical


def test_split_goal_sum_by_baselines_and_weights():
    by_base = split_goal(150, baselines={"a": 60, "b": 40})
    assert by_base == {"a": pytest.approx(90), "b": pytest.approx(60)}
    assert aggregate(by_base) == pytest.approx(150)
    by_weight = split_goal(100, weights={"a": 1, "b": 3})
    assert by_weight == {"a": pytest.approx(25), "b": pytest.approx(75)}
    assert aggregate(by_weight, "sum") == pytest.approx(100)


def test_split_goal_weighted_mean():
    population = {"a": 300, "b": 100}
    # Weighted-mean baseline (3000 + 2000) / 400 = 12.5; target 10 -> every child scaled by 0.8.
    targets = split_goal(10, baselines={"a": 10, "b": 20}, weights=population, how="mean")
    assert targets == {"a": pytest.approx(8), "b": pytest.approx(16)}
    assert aggregate(targets, "mean", population) == pytest.approx(10)
    flat = split_goal(7, weights=population, how="mean")
    assert flat == {"a": 7.0, "b": 7.0}
    assert aggregate(flat, "mean", population) == pytest.approx(7)


def test_split_goal_validation():
    with pytest.raises(InvalidParameterValue, match="exactly one"):
        split_goal(10, baselines={"a": 1}, weights={"a": 1})
    with pytest.raises(InvalidParameterValue, match="non-negative"):
        split_goal(10, weights={"a": -1, "b": 2})
    with pytest.raises(InvalidParameterValue, match="same children"):
        split_goal(10, baselines={"a": 1, "b": 2}, weights={"a": 1}, how="mean")
    with pytest.raises(InvalidParameterValue, match="'sum' or 'mean'"):
        split_goal(10, weights={"a": 1}, how="median")  # type: ignore[arg-type]


# --- goal seek -----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [-7.0, 3.0, 10.0, 203.0])
def test_seek_linear_inverse(target):
    got = seek(lambda lv: 2 * lv["x"] + 3, target, {"x": (-100, 100)})
    assert got.status == SOLVED
    assert got.met
    assert got.levers["x"] == pytest.approx((target - 3) / 2)
    assert got.solver == "brentq"


def test_seek_square_on_bounds():
    got = seek(lambda lv: lv["x"] ** 2, 49, {"x": (0, 10)})
    assert got.levers["x"] == pytest.approx(7)
    assert got.value == pytest.approx(49)
    # Non-monotonic on [-1, 1]: no sign change on the bounds, the scan brackets the root nearest current.
    inner = seek(lambda lv: lv["x"] ** 2, 0.25, {"x": (-1, 1)}, current={"x": -0.8})
    assert inner.met
    assert inner.levers["x"] == pytest.approx(-0.5)


def test_seek_unreachable_is_reported():
    got = seek(lambda lv: lv["x"] ** 2, 120, {"x": (0, 10)})
    assert got.status == UNREACHABLE
    assert not got.met
    assert got.levers["x"] == pytest.approx(10)
    assert got.value == pytest.approx(100)
    assert got.gap == pytest.approx(-20)
    below = seek(lambda lv: lv["x"] ** 2 + 1, 0, {"x": (-2, 3)})
    assert below.status == UNREACHABLE
    assert below.levers["x"] == pytest.approx(0, abs=1e-4)
    assert below.value == pytest.approx(1, abs=1e-6)


def test_seek_two_levers_least_cost():
    # min (a - 0)² + 2 (b - 0)² s.t. 2a + 3b = 17: a = 17 * 2 / 8.5 = 4, b = 17 * 1.5 / 8.5 = 3, cost 34.
    def model(lv: dict[str, float]) -> float:
        return 2 * lv["a"] + 3 * lv["b"]

    bounds = {"a": (-10, 10), "b": (-10, 10)}
    got = seek(model, 17, bounds, current={"a": 0, "b": 0}, cost={"a": 1, "b": 2})
    assert got.status == SOLVED
    assert got.met
    assert got.levers == {"a": pytest.approx(4, abs=1e-5), "b": pytest.approx(3, abs=1e-5)}
    assert got.cost == pytest.approx(34, abs=1e-4)
    no_cost = seek(model, 17, bounds, current={"a": 0, "b": 0})
    assert no_cost.met
    assert model(no_cost.levers) == pytest.approx(17)
    assert no_cost.cost is None


def test_seek_two_levers_unreachable():
    got = seek(lambda lv: 2 * lv["a"] + 3 * lv["b"], 100, {"a": (-10, 10), "b": (-10, 10)}, cost={"a": 1})
    assert got.status == UNREACHABLE
    assert not got.met
    assert got.levers == {"a": pytest.approx(10, abs=1e-5), "b": pytest.approx(10, abs=1e-5)}
    assert got.value == pytest.approx(50, abs=1e-4)


@pytest.mark.parametrize(
    "bounds, match",
    [
        ({}, "at least one lever"),
        ({"x": (5, 5)}, "empty"),
        ({"x": (10, 0)}, "empty"),
        ({"x": (0, math.inf)}, "finite"),
        ({"x": ("low", 1)}, "pair of numbers"),
        ({"x": (1,)}, "pair of numbers"),
    ],
)
def test_seek_refuses_bad_bounds(bounds, match):
    with pytest.raises(InvalidParameterValue, match=match):
        seek(lambda lv: lv.get("x", 0.0), 1, bounds)


def test_seek_refuses_bad_inputs():
    with pytest.raises(InvalidParameterValue, match="outside"):
        seek(lambda lv: lv["x"], 1, {"x": (0, 2)}, current={"x": 5})
    with pytest.raises(InvalidParameterValue, match="without bounds"):
        seek(lambda lv: lv["x"] + lv["y"], 1, {"x": (0, 2), "y": (0, 1)}, cost={"z": 1})
    with pytest.raises(InvalidParameterValue, match="returned nan"):
        seek(lambda lv: float("nan"), 1, {"x": (0, 2)})
