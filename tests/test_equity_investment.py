"""Equity indices and investment appraisal against textbook and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from layers.errors import InvalidParameterValue
from planning.equity import gini, lorenz, palma, theil, theil_decomposition
from planning.investment import (
    Normal,
    Triangular,
    discounted_payback,
    flow_builder,
    irr,
    irr_candidates,
    monte_carlo,
    npv,
    profitability_index,
)


def gini_mad(values: list[float]) -> float:
    # Mean-absolute-difference definition (Gini 1912; Sen 1973): ΣΣ|xi−xj| / (2 n² μ).
    x = np.asarray(values, dtype=float)
    return float(np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size**2 * x.mean()))


# ---------------------------------------------------------------- Gini


def test_gini_textbook_one_to_five() -> None:
    # ΣΣ|xi−xj| = 2·(1·4 + 2·3 + 3·2 + 4·1) = 40; 40 / (2·25·3) = 4/15 ≈ 0.2667.
    assert gini([1, 2, 3, 4, 5]) == pytest.approx(4 / 15, abs=1e-12)
    assert gini([5, 3, 1, 4, 2]) == pytest.approx(4 / 15, abs=1e-12)  # order does not matter


def test_gini_equality_and_concentration() -> None:
    assert gini([7, 7, 7, 7]) == pytest.approx(0.0, abs=1e-15)
    for n in (2, 3, 10):
        # One of n has everything: ΣΣ = 2(n−1), μ = 1/n → (n−1)/n.
        assert gini([0] * (n - 1) + [1]) == pytest.approx((n - 1) / n, abs=1e-12)


def test_gini_matches_mad_formula_on_random_data() -> None:
    x = np.random.default_rng(1).gamma(2.0, 3.0, 57)
    assert gini(x) == pytest.approx(gini_mad(list(x)), abs=1e-12)


def test_weighted_gini_equals_expanded_sample() -> None:
    values, weights = [3.0, 10.0, 1.0, 6.0], [2, 1, 4, 3]
    expanded = np.repeat(values, weights)
    assert gini(values, weights) == pytest.approx(gini_mad(list(expanded)), abs=1e-12)
    assert theil(values, weights) == pytest.approx(theil(expanded), abs=1e-12)
    assert palma(values, weights) == pytest.approx(palma(expanded), abs=1e-12)


def test_zero_weights_are_ignored() -> None:
    assert gini([1, 2, 100], [1, 1, 0]) == pytest.approx(gini([1, 2]), abs=1e-12)


def test_edge_cases_all_zeros_and_single_value() -> None:
    # Documented convention: nothing to distribute → perfect equality.
    assert gini([0, 0, 0]) == 0.0
    assert theil([0, 0, 0]) == 0.0
    assert palma([0, 0, 0]) == pytest.approx(0.25)
    assert gini([42]) == 0.0
    assert theil([42]) == 0.0


@pytest.mark.parametrize(
    ("values", "weights", "fragment"),
    [
        ([1, -2, 3], None, "≥ 0"),
        ([1, float("nan"), 3], None, "NaN"),
        ([1, float("inf")], None, "infinite"),
        ([], None, "non-empty"),
        ([1, 2], [1], "entries"),
        ([1, 2], [0, 0], "all be zero"),
        ([1, 2], [1, -1], "weights must be ≥ 0"),
    ],
)
def test_invalid_inputs_refused(values: list[float], weights: list[float] | None, fragment: str) -> None:
    for func in (gini, theil, palma, lorenz):
        with pytest.raises(InvalidParameterValue, match=fragment):
            func(values, weights)


def test_lorenz_points() -> None:
    p, lor = lorenz([3, 1, 2])
    # Sorted 1, 2, 3 (total 6): L = 0, 1/6, 3/6, 1.
    np.testing.assert_allclose(p, [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(lor, [0, 1 / 6, 1 / 2, 1])


# ---------------------------------------------------------------- Theil


def test_theil_equality_and_limit() -> None:
    assert theil([4, 4, 4]) == pytest.approx(0.0, abs=1e-15)
    # One of n has all: T = (1/n)·n·ln n = ln n, the maximum (Theil 1967).
    assert theil([1, 0, 0, 0]) == pytest.approx(math.log(4), abs=1e-12)
    assert theil([0, 0, 5, 0, 0, 0, 0, 0, 0, 0]) == pytest.approx(math.log(10), abs=1e-12)


def test_theil_hand_case() -> None:
    # [1, 3]: μ = 2, T = ½(½ ln ½ + 3/2 ln 3/2) = ¼(3 ln 3 − 4 ln 2).
    assert theil([1, 3]) == pytest.approx(0.25 * (3 * math.log(3) - 4 * math.log(2)), abs=1e-12)


def test_theil_decomposition_hand_case() -> None:
    # Groups A = [1, 3] (μ 2), B = [6, 6] (μ 6); overall μ = 4, total 16.
    # Shares s_A = 4/16 = ¼, s_B = ¾. Between = ¼ ln(2/4) + ¾ ln(6/4).
    # Within = ¼ T_A + ¾·0 with T_A = ¼(3 ln 3 − 4 ln 2).
    dec = theil_decomposition([1, 3, 6, 6], ["A", "A", "B", "B"])
    between = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    within = 0.25 * 0.25 * (3 * math.log(3) - 4 * math.log(2))
    assert dec.between == pytest.approx(between, abs=1e-12)
    assert dec.within == pytest.approx(within, abs=1e-12)
    assert dec.total == dec.between + dec.within  # exact by construction
    assert dec.total == pytest.approx(theil([1, 3, 6, 6]), abs=1e-12)
    assert dec.groups["A"].value_share == pytest.approx(0.25)
    assert dec.groups["B"].theil == pytest.approx(0.0, abs=1e-15)
    total, b, w, groups = dec  # unpacks as the documented 4-tuple
    assert set(groups) == {"A", "B"} and total == b + w


def test_theil_decomposition_weighted_random() -> None:
    rng = np.random.default_rng(7)
    x, w = rng.lognormal(1, 0.8, 200), rng.integers(1, 50, 200)
    g = rng.choice(["n", "s", "e", "w"], 200)
    dec = theil_decomposition(x, list(g), w)
    assert dec.total == dec.between + dec.within
    assert dec.total == pytest.approx(theil(x, w), abs=1e-12)
    assert sum(c.population_share for c in dec.groups.values()) == pytest.approx(1.0)


def test_theil_decomposition_length_mismatch() -> None:
    with pytest.raises(InvalidParameterValue, match="same length"):
        theil_decomposition([1, 2, 3], ["a", "b"])


# ---------------------------------------------------------------- Palma


def test_palma_hand_cases() -> None:
    # 1..10, total 55: bottom 40 % = 1+2+3+4 = 10, top 10 % = 10 → Palma 1.
    assert palma(list(range(1, 11))) == pytest.approx(1.0, abs=1e-12)
    # [1, 2, 3], each a third of the people, total 6. Bottom 40 %: all of "1" plus
    # (0.4 − 1/3)/(1/3) = 0.2 of "2" → 1.4. Top 10 %: 0.1/(1/3) = 0.3 of "3" → 0.9. Palma 9/14.
    assert palma([1, 2, 3]) == pytest.approx(9 / 14, abs=1e-12)
    assert palma([5, 5, 5, 5]) == pytest.approx(0.25, abs=1e-12)  # equality: 10 % / 40 %


def test_palma_bottom_has_nothing() -> None:
    assert palma([0, 0, 0, 0, 1]) == math.inf


# ---------------------------------------------------------------- investment


def test_npv_irr_textbook() -> None:
    # Brealey–Myers style: −100, 60, 60 at 10 %: 60/1.1 + 60/1.21 − 100 = 4.1322.
    assert npv(0.10, [-100, 60, 60]) == pytest.approx(60 / 1.1 + 60 / 1.21 - 100, abs=1e-12)
    assert npv(0.10, [-100, 60, 60]) == pytest.approx(4.13, abs=0.005)
    # IRR: 60v + 60v² = 100 → v = (−1 + √(1 + 20/3))/2, r = 1/v − 1 ≈ 13.07 %.
    v = (-1 + math.sqrt(1 + 20 / 3)) / 2
    assert irr([-100, 60, 60]) == pytest.approx(1 / v - 1, abs=1e-12)
    assert irr([-100, 60, 60]) == pytest.approx(0.1307, abs=5e-5)


def test_irr_simple_cases() -> None:
    assert irr([-100, 110]) == pytest.approx(0.10, abs=1e-12)
    assert irr([-100, 0, 121]) == pytest.approx(0.10, abs=1e-12)
    assert irr([0, -100, 0, 121, 0]) == pytest.approx(0.10, abs=1e-12)  # zero years do not move it
    assert irr([-100, 50]) == pytest.approx(-0.5, abs=1e-12)  # losing project: negative IRR
    assert npv(irr([-1000, 300, 400, 500, 200]), [-1000, 300, 400, 500, 200]) == pytest.approx(0, abs=1e-8)


def test_irr_refused_without_or_with_several_sign_changes() -> None:
    with pytest.raises(InvalidParameterValue, match="never change sign"):
        irr([-100, -10, -5])
    with pytest.raises(InvalidParameterValue, match="never change sign"):
        irr([100, 10])
    # −100, 230, −132: roots of −100 + 230v − 132v² → r = 10 % and 20 % (Brealey–Myers "multiple IRRs").
    with pytest.raises(InvalidParameterValue, match="change sign 2 times") as err:
        irr([-100, 230, -132])
    assert err.value.context["candidates"] == pytest.approx([0.10, 0.20], abs=1e-9)
    assert irr_candidates([-100, 230, -132]) == pytest.approx([0.10, 0.20], abs=1e-9)


def test_discounted_payback() -> None:
    # Cumulative after year 1: −100 + 60/1.1 = −45.45; year 2 adds 60/1.21 = 49.59.
    # Payback = 1 + 45.45/49.59 = 1 + (50·1.21)/(1.1·60) = 1 + 60.5/66.
    assert discounted_payback(0.10, [-100, 60, 60]) == pytest.approx(1 + 60.5 / 66, abs=1e-12)
    assert discounted_payback(0.0, [-100, 50, 50, 50]) == pytest.approx(2.0, abs=1e-12)
    assert discounted_payback(0.0, [-100, 40, 40]) is None
    # Decommissioning in year 3: cumulative −100, −20, 20, −10, 30 → final crossing in year 4: 3 + 10/40.
    assert discounted_payback(0.0, [-100, 80, 40, -30, 40]) == pytest.approx(3 + 10 / 40, abs=1e-12)


def test_profitability_index() -> None:
    # PI = (60/1.1 + 60/1.21) / 100 = 1.0413 (= 1 + NPV/100).
    assert profitability_index(0.10, [-100, 60, 60]) == pytest.approx((60 / 1.1 + 60 / 1.21) / 100, abs=1e-12)
    assert profitability_index(0.0, [-100, 80, -10]) == pytest.approx(0.7, abs=1e-12)
    with pytest.raises(InvalidParameterValue, match="year 0"):
        profitability_index(0.1, [100, 60])


def test_investment_input_checks() -> None:
    with pytest.raises(InvalidParameterValue, match="> -1"):
        npv(-1.0, [-100, 60])
    with pytest.raises(InvalidParameterValue, match="NaN"):
        npv(0.1, [-100, float("nan")])
    with pytest.raises(InvalidParameterValue, match="non-empty"):
        npv(0.1, [])


# ---------------------------------------------------------------- Monte Carlo


def test_monte_carlo_reproducible() -> None:
    build = flow_builder(10, Triangular(900, 1000, 1300), Normal(200, 40), Triangular(40, 50, 70), Normal(0.02, 0.01))
    a = monte_carlo(0.05, build, n=2000, seed=123)
    b = monte_carlo(0.05, build, n=2000, seed=123)
    c = monte_carlo(0.05, build, n=2000, seed=124)
    assert a == b
    assert a != c
    assert a["p5"] < a["p50"] < a["p95"]


def test_monte_carlo_deterministic_positive_project() -> None:
    res = monte_carlo(0.10, flow_builder(2, 100, 60), n=500, seed=1)
    assert res["p_npv_negative"] == 0.0
    assert res["p5"] == pytest.approx(60 / 1.1 + 60 / 1.21 - 100, abs=1e-9)
    assert res["mean"] == pytest.approx(res["p95"], abs=1e-9)


def test_monte_carlo_normal_approximation() -> None:
    # Rate 0, flows −100, R with R ~ N(110, 10) → NPV ~ N(10, 10): P(NPV < 0) = Φ(−1) = 0.1587,
    # p5 = 10 − 1.645·10, p95 = 10 + 1.645·10. Binomial SE of the probability at n = 10 000: 0.0037.
    res = monte_carlo(0.0, flow_builder(1, 100, Normal(110, 10)), n=10_000, seed=2024)
    assert res["p_npv_negative"] == pytest.approx(norm.cdf(-1), abs=4 * 0.0037)
    assert res["mean"] == pytest.approx(10, abs=4 * 0.1)
    assert res["p50"] == pytest.approx(10, abs=0.6)
    assert res["p5"] == pytest.approx(10 + 10 * norm.ppf(0.05), abs=1.0)
    assert res["p95"] == pytest.approx(10 + 10 * norm.ppf(0.95), abs=1.0)


def test_flow_builder_growth_and_checks() -> None:
    flows = flow_builder(3, 100, 50, 10, 0.1)(np.random.default_rng(0))
    # Net 40 growing 10 %/year: 40, 44, 48.4.
    np.testing.assert_allclose(flows, [-100, 40, 44, 48.4])
    with pytest.raises(InvalidParameterValue, match="triangular"):
        Triangular(5, 1, 3)
    with pytest.raises(InvalidParameterValue, match="sd"):
        Normal(1, -1)
    with pytest.raises(InvalidParameterValue, match="years"):
        flow_builder(0, 100, 10)
    with pytest.raises(InvalidParameterValue, match="positive integer"):
        monte_carlo(0.1, flow_builder(1, 100, 110), n=0)
