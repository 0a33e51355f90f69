"""Balance forecast under scenarios (energy.forecast, energy.scenarios) and CO2 (energy.co2).

Every expected number is computed by hand in the comment next to it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from energy import co2
from energy.forecast import (
    ROWS,
    calibrate_logit,
    compound_index,
    forecast,
    identity_errors,
    leontief_output,
    logit_shares,
    price_factor,
    sensitivity,
)
from energy.scenarios import COLUMNS, InputOutput, Scenario, Substitution, check_productive, spectral_radius
from energy.workbook import read_workbook
from layers.errors import InvalidParameterValue

FEB = Path(__file__).resolve().parents[1] / "data" / "feb" / "moscow-oblast"

def _read_workbook(path: Path) -> pd.DataFrame:
    return read_workbook(path).balance.reindex(columns=list(COLUMNS))


def toy_balance() -> pd.DataFrame:
    """A hand-made balance that closes exactly (thousand tce).

    Final: manufacturing gas 100, electricity 50, heat 40; households gas 60, electricity 30, heat 60;
    road transport petroleum products 80. Electricity: plant burns 150 gas for 60; own use 5, losses 15,
    boiler houses use 2 -> inflow 80 + 5 + 15 + 2 − 60 = 42. Heat: CHP 50 gas -> 40, boilers 70 gas +
    10 coal + 2 electricity -> 70; own use 2, losses 8 (110 = 100 + 2 + 8). Gas inflow 160 + 150 + 50 + 70 = 430.
    """
    b = pd.DataFrame(np.nan, index=list(ROWS), columns=list(COLUMNS))
    put = {
        ("industry_manufacturing", "natural_gas"): 100, ("industry_manufacturing", "electricity"): 50,
        ("industry_manufacturing", "heat"): 40, ("households", "natural_gas"): 60,
        ("households", "electricity"): 30, ("households", "heat"): 60, ("transport_road", "petroleum_products"): 80,
        ("electricity_production", "natural_gas"): -150, ("electricity_production", "electricity"): 60,
        ("heat_chp", "natural_gas"): -50, ("heat_chp", "heat"): 40, ("heat_boilers", "natural_gas"): -70,
        ("heat_boilers", "coal"): -10, ("heat_boilers", "electricity"): -2, ("heat_boilers", "heat"): 70,
        ("own_use", "electricity"): -5, ("own_use", "heat"): -2, ("losses", "electricity"): -15,
        ("losses", "heat"): -8, ("inflow", "natural_gas"): 430, ("inflow", "coal"): 10,
        ("inflow", "petroleum_products"): 80, ("inflow", "electricity"): 42,
    }
    for (r, c), v in put.items():
        b.at[r, c] = float(v)
    b = b.fillna(0.0)
    b.loc["industry"] = b.loc["industry_manufacturing"]
    b.loc["transport"] = b.loc["transport_road"]
    b.loc["heat_production"] = b.loc["heat_chp"] + b.loc["heat_boilers"]
    b.loc["final_consumption"] = b.loc[["industry", "transport", "households"]].sum()
    b.loc["primary_consumption"] = b.loc[["production", "inflow", "outflow", "stock_change"]].sum()
    b["total"] = b.drop(columns="total").sum(axis=1)
    return b


def test_toy_balance_closes():
    assert max(identity_errors(toy_balance()).values()) < 1e-9


# ---- Leontief
def test_leontief_textbook_two_sectors():
    # Miller & Blair, Input-Output Analysis (2nd ed.), §2.3 two-sector example: A = [[.15,.25],[.20,.05]].
    # By hand: det(I − A) = .85·.95 − .25·.20 = .7575; (I − A)⁻¹ = [[.95,.25],[.20,.85]] / .7575.
    a = np.array([[0.15, 0.25], [0.20, 0.05]])
    # y = (350, 1700): x1 = (.95·350 + .25·1700)/.7575 = 757.5/.7575 = 1000; x2 = (.20·350 + .85·1700)/.7575 = 2000.
    assert leontief_output(a, [350, 1700]) == pytest.approx([1000.0, 2000.0])
    # y = (600, 1500): x1 = 945/.7575 = 1247.52; x2 = 1395/.7575 = 1841.58.
    assert leontief_output(a, [600, 1500]) == pytest.approx([1247.5248, 1841.5842], abs=1e-3)


def test_spectral_radius_at_least_one_is_refused():
    # [[.5,.6],[.6,.5]] has eigenvalues .5 ± .6 = 1.1 and −0.1: ρ = 1.1.
    a = np.array([[0.5, 0.6], [0.6, 0.5]])
    assert spectral_radius(a) == pytest.approx(1.1)
    with pytest.raises(InvalidParameterValue, match="spectral radius"):
        check_productive(a)
    with pytest.raises(InvalidParameterValue, match="Hawkins"):
        leontief_output(a, [1, 1])
    io = InputOutput(("industry", "services"), ((0.5, 0.6), (0.6, 0.5)), (1.0, 1.0))
    with pytest.raises(InvalidParameterValue):
        forecast(toy_balance(), 2019, Scenario("bad", 2020, input_output=io))


def test_input_output_drives_sector_activity():
    # A = [[.15,.25],[.20,.05]] for (industry, services); y0 = (350, 1700) -> x0 = (1000, 2000).
    # y grows 10 % in industry only: y1 = (385, 1700): x1_ind = (.95·385 + .25·1700)/.7575 = 790.75/.7575 = 1043.89.
    io = InputOutput(("industry", "services"), ((0.15, 0.25), (0.20, 0.05)), (350.0, 1700.0), {"industry": 0.10})
    r = forecast(toy_balance(), 2019, Scenario("io", 2020, input_output=io))
    # manufacturing (190 in total) scales by 1043.89/1000.
    assert r.balances[2020].at["industry_manufacturing", "total"] == pytest.approx(190 * 1.0438944, rel=1e-6)


# ---- logit, elasticity, intensity
def test_logit_plain_and_calibrated():
    # α = 0, λ = 1, costs (0, ln 3): weights 1 and 1/3 -> shares .75, .25.
    assert logit_shares([0.0, math.log(3)], 1.0) == pytest.approx([0.75, 0.25])
    base, costs, lam = np.array([0.6, 0.4]), np.array([100.0, 120.0]), 0.05
    alpha = calibrate_logit(base, costs, lam)
    assert logit_shares(costs, lam, alpha) == pytest.approx(base)  # base costs give back base shares
    # gas dearer by 30: its share falls; by hand 0.6·e^−1.5 / (0.6·e^−1.5 + 0.4) = 0.13388/0.53388 = 0.2508.
    moved = logit_shares(costs + [30.0, 0.0], lam, alpha)
    assert moved[0] == pytest.approx(0.2508, abs=1e-4)
    assert moved[0] < base[0] and moved[1] > base[1]


def test_substitution_in_forecast_moves_away_from_dearer_fuel():
    sub = Substitution("households", ("natural_gas", "electricity"), {"natural_gas": 100.0, "electricity": 120.0}, 0.05)
    flat = forecast(toy_balance(), 2019, Scenario("flat", 2020, substitution=(sub,))).balances[2020]
    assert flat.at["households", "natural_gas"] == pytest.approx(60.0)  # same costs: base shares
    dear = forecast(toy_balance(), 2019, Scenario("dear", 2020, substitution=(sub,),
                                                  price_growth={"natural_gas": 0.30})).balances[2020]
    # gas cost 100 -> 130: within the gas+electricity pair (90), gas share 60/90 -> by hand
    # (2/3)e^−1.5 / ((2/3)e^−1.5 + 1/3) = 0.14875/0.48208 = 0.30856 -> 27.77; total 150 unchanged.
    assert dear.at["households", "natural_gas"] == pytest.approx(90 * 0.30856, abs=1e-2)
    assert dear.at["households", "total"] == pytest.approx(150.0)


def test_price_elasticity():
    # (p1/p0)^ε with p up 21 % and ε = −0.5: 1.21^−0.5 = 1/1.1 = 0.909091.
    assert price_factor(1.21, -0.5) == pytest.approx(1 / 1.1)
    r = forecast(toy_balance(), 2019, Scenario("tariff", 2021, price_growth={"natural_gas": 0.10},
                                                price_elasticity={"natural_gas": -0.5}))
    # two years of +10 %: price index 1.21; households gas 60/1.1 = 54.5455.
    assert r.balances[2021].at["households", "natural_gas"] == pytest.approx(60 / 1.1)
    assert r.balances[2021].at["households", "electricity"] == pytest.approx(30.0)


def test_intensity_trend_compounds():
    assert compound_index(-0.02, 10) == pytest.approx(0.98**10)  # 0.8170728
    r = forecast(toy_balance(), 2019, Scenario("grow", 2029, sector_growth={"industry": 0.03},
                                                intensity_trend={"industry": -0.02}))
    # 190 · 1.03^10 · 0.98^10 = 190 · 1.3439164 · 0.8170728 = 208.6348.
    assert r.balances[2029].at["industry_manufacturing", "total"] == pytest.approx(208.6348, abs=1e-3)


# ---- balances
def test_zero_scenario_reproduces_the_base():
    base = toy_balance()
    r = forecast(base, 2019, Scenario("still", 2022))
    assert sorted(r.balances) == [2019, 2020, 2021, 2022]
    for year in (2020, 2021, 2022):
        pd.testing.assert_frame_equal(r.balances[year], base, check_exact=False, atol=1e-9, check_names=False)
        assert max(identity_errors(r.balances[year]).values()) < 1e-9


def test_demand_growth_is_met_by_imports_and_rebuilt_transformation():
    r = forecast(toy_balance(), 2019, Scenario("hh", 2020, population_growth=0.10))
    b = r.balances[2020]
    # households heat 60 -> 66: heat demand (100 + 6)/(1 − 2/110 − 8/110) = 106·110/100 = 116.6;
    # boilers make 70/110 of it = 74.2 and burn gas at their base rate 70 per 70 made: 74.2.
    assert b.at["heat_production", "heat"] == pytest.approx(116.6)
    assert b.at["heat_boilers", "natural_gas"] == pytest.approx(-70 * 116.6 / 110)
    # electricity: final 83, boilers 2·74.2/70, rates 5/102 own and 15/102 losses; local 60; imports the rest.
    e_use = 83 + 2 * 74.2 / 70
    assert b.at["inflow", "electricity"] == pytest.approx(e_use / (1 - 20 / 102) - 60)
    assert b.at["electricity_production", "natural_gas"] == pytest.approx(-150.0)
    assert max(identity_errors(b).values()) < 1e-9


def test_real_workbook_2019_to_2030_closes():
    base = _read_workbook(FEB / "balance2019.xlsx")
    # the workbook itself does not close (a real defect): heat discrepancy −819.63 in the file
    assert identity_errors(base)["discrepancy"] > 100
    sc = Scenario("moderate", 2030, sector_growth={"industry": 0.02, "services": 0.03, "transport": 0.01},
                  population_growth=0.005, intensity_trend={"industry": -0.01, "households": -0.005},
                  price_growth={"natural_gas": 0.03, "electricity": 0.04}, price_elasticity={"natural_gas": -0.2})
    r = forecast(base, 2019, sc)
    assert sorted(r.balances) == list(range(2019, 2031))
    for year in range(2020, 2031):
        errs = identity_errors(r.balances[year])
        assert max(errs.values()) < 1e-6, (year, errs)
    # more activity, same technology: primary consumption grows from 2020 to 2030
    s = r.summary
    assert s.at[2030, "primary_consumption"] > s.at[2020, "primary_consumption"]
    assert (s.loc[2020:, "statistical_discrepancy"].abs() < 1e-6).all()


def test_scenario_validation_messages():
    with pytest.raises(InvalidParameterValue, match="population_growth"):
        Scenario("x", 2030, sector_growth={"households": 0.01}).validate(2019)
    with pytest.raises(InvalidParameterValue, match="after the base year"):
        forecast(toy_balance(), 2019, Scenario("x", 2019))
    with pytest.raises(InvalidParameterValue, match="elasticity"):
        Scenario("x", 2030, price_elasticity={"natural_gas": 0.3}).validate(2019)


# ---- CO2
def test_co2_of_one_thousand_tce_of_gas_and_wood():
    b = pd.DataFrame(0.0, index=list(ROWS), columns=list(COLUMNS))
    b.at["households", "natural_gas"] = 1.0
    b.at["households", "other_solid_fuel"] = 1.0
    b.at["non_energy", "natural_gas"] = 5.0  # feedstock: not combustion
    r = co2.emissions(b)
    # 1 thousand tce = 29.3076 TJ; × 56,100 kg/TJ = 1,644,156 kg = 1,644.2 t.
    assert r.total_t == pytest.approx(1644.156, abs=1e-3)
    # wood: 29.3076 TJ × 112,000 kg/TJ = 3,282.45 t, biogenic: reported, not in the total.
    assert r.biogenic["households"] == pytest.approx(3282.4512, abs=1e-3)


def test_grid_and_heat_factors_on_the_toy():
    b = toy_balance()
    r = co2.emissions(b)
    # as reported: 150 gas for 60 electricity: 2.5 × 56.1 t/TJ × 0.0036 TJ/MWh = 0.50490 t/MWh.
    assert r.grid_factor_t_per_mwh == pytest.approx(0.50490, abs=1e-5)
    # heat: (120 gas·56.1 + 10 coal·94.6) t/TJ × 29.3076 TJ = 225,023.75 t over 110 × 7,000 Gcal = 0.292239 t/Gcal.
    assert r.heat_factor_t_per_gcal == pytest.approx(225_023.75 / 770_000, rel=1e-6)
    # physical method: pooled 200 gas for 60 electricity + 40 CHP heat -> 120 to electricity: 2.0 × 0.20196 = 0.40392.
    p = co2.emissions(b, allocation="physical")
    assert p.grid_factor_t_per_mwh == pytest.approx(0.40392, abs=1e-5)
    assert p.total_t == pytest.approx(r.total_t)  # allocation moves CO2, never creates it
    # indirect: households 30 thousand tce of electricity = 244,230 MWh × 0.50490 = 123,312 t.
    assert r.indirect.at["households", "electricity"] == pytest.approx(30 * 8141 * 0.5049, rel=1e-5)


# ---- sensitivity
def test_sensitivity_signs_and_order_on_the_toy():
    sc = Scenario("s", 2020, sector_growth={"industry": 0.02}, population_growth=0.01,
                  price_growth={"natural_gas": 0.05}, price_elasticity={"natural_gas": -0.5})
    names = ["activity:transport_road", "activity:households", "activity:industry_manufacturing", "price:natural_gas"]
    t = sensitivity(toy_balance(), 2019, sc, result="final_consumption", names=names)
    # final is linear in each activity index: elasticity = that sector's share of the horizon-year final:
    # manufacturing 190·1.02·g, households 150·1.01·g, road 80, with gas scaled by g = 1.05^−0.5 = 0.975900.
    g = 1.05**-0.5
    ind = 100 * 1.02 * g + 90 * 1.02
    hh = 60 * 1.01 * g + 90 * 1.01
    total = ind + hh + 80
    order = ["activity:industry_manufacturing", "activity:households", "activity:transport_road"]
    assert list(t["driver"][:3]) == order
    el = dict(zip(t["driver"], t["elasticity"], strict=True))
    assert el["activity:industry_manufacturing"] == pytest.approx(ind / total, rel=1e-9)
    assert el["activity:households"] == pytest.approx(hh / total, rel=1e-9)
    # a dearer gas lowers consumption: negative, about −0.5 × gas share; central difference of (1±.1)^−0.5.
    gas = (100 * 1.02 + 60 * 1.01) * g
    expected = gas * (1.1**-0.5 - 0.9**-0.5) / total / 0.2
    assert el["price:natural_gas"] == pytest.approx(expected, rel=1e-9) and el["price:natural_gas"] < 0
