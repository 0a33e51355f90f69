"""Checks, reconciliation and consolidation of fuel and energy balances (energy.checks/reconcile/consolidate).

Hand-made balances are small and exact; the real ones are the Moscow Oblast workbooks 2016-2020, read by a private
reader below (to be replaced by energy.workbook.read_workbook when it lands). Every real-data number asserted
here was read off the workbooks (sheet, row, column named next to it).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from scipy.linalg import null_space, orth
from scipy.optimize import minimize

from energy.checks import (
    AGGREGATE_ROLL_UP,
    SECONDARY_PRODUCTION,
    check,
    check_carriers,
    distribution_residual,
)
from energy.consolidate import compare, consolidate
from energy.reconcile import choose, compare_with, default_priority, identities, least_squares
from energy.workbook import read_workbook
from layers.errors import InvalidParameterValue

# ---- the real workbooks ----
DATA = Path(__file__).resolve().parents[1] / "data" / "feb" / "moscow-oblast"
YEARS = range(2016, 2021)
COLUMNS = ["coal", "crude_oil", "petroleum_products", "natural_gas", "other_solid_fuel", "hydro_renewables",
           "nuclear", "electricity", "heat", "total"]
SECONDARY = {"Электро": "electricity", "Тепло": "heat"}
# Carrier-sheet labels (typos included: "Промышленнсть", "Обеспчение", ...) are matched by keyword, in order.
SHEET_KEYWORDS = [
    ("в том числе гидро", None), ("производство ээ и тэ", None),
    ("потреблено всего", "primary_consumption"), ("стат.расхождение", "statistical_discrepancy"),
    ("выработано", "production"), ("получено", "inflow"), ("ввоз", "inflow"), ("отпущено", "outflow"),
    ("вывоз", "outflow"), ("изменение запасов", "stock_change"),
    ("производство электроэнергии", "electricity_production"), ("производство тепла", "heat_production"),
    ("теплоэлектростанции", "heat_chp"), ("электростанциями", "heat_chp"),
    ("электрокот", "heat_electric_boilers"), ("котельн", "heat_boilers"), ("теплоутилизац", "heat_electric_boilers"),
    ("переработка нефти", "oil_refining"), ("переработка газа", "gas_processing"),
    ("обогащение угля", "coal_enrichment"), ("собственные нужды", "own_use"), ("потери", "losses"),
    ("конечное потребление", "final_consumption"), ("сельское", "agriculture"), ("добы", "industry_mining"),
    ("обрабатыв", "industry_manufacturing"), ("обесп", "industry_energy_supply"),
    ("водоснаб", "industry_water_waste"), ("строительство", "construction"), ("транспортировка", "transport"),
    ("железнодорож", "transport_rail"), ("трубопровод", "transport_pipeline"), ("автомобил", "transport_road"),
    ("прочий транспорт", "transport_other"), ("сфера услуг", "services"), ("население", "households"),
    ("неэнергетич", "non_energy"), ("хранение и связь", None),
]
POSITIVE = {"production", "inflow", "stock_change", "primary_consumption", "statistical_discrepancy",
            "final_consumption", "agriculture", "industry", "industry_mining", "industry_manufacturing",
            "industry_energy_supply", "industry_water_waste", "industry_other", "construction", "transport",
            "transport_rail", "transport_pipeline", "transport_road", "transport_other", "services", "households",
            "non_energy", "other"}


def _sheet_code(label: str, previous: str | None) -> str | None:
    text = " ".join(label.split()).lower()
    if text == "электростанции":  # gas sheet memo line (gas burnt at power plants), no balance row
        return None
    if previous == "industry_water_waste":  # the slot after water/waste is "other industry" whatever its label
        return "industry_other"
    if previous == "agriculture":  # the slot after agriculture is industry ("Промышленнсть", "Проышленность")
        return "industry"
    for key, code in SHEET_KEYWORDS:
        if key in text:
            return code
    return "other" if text == "прочее" else None


def _read_sheet(ws) -> pd.DataFrame:
    """Rows (codes) x [`В баланс`, forms...], magnitudes as in the sheet; duplicate codes summed."""
    forms = [ws.cell(2, c).value for c in range(2, ws.max_column + 1)]
    keep = [i for i, f in enumerate(forms) if f]
    rows, previous = {}, None
    for r in range(3, ws.max_row + 1):
        label = ws.cell(r, 1).value
        if not isinstance(label, str):
            continue
        code = _sheet_code(label, previous)
        previous = code
        if code is None:
            continue
        vals = [ws.cell(r, 2 + i).value for i in keep]
        vals = [float(v) if isinstance(v, int | float) else np.nan for v in vals]
        rows.setdefault(code, []).append(vals)
    data = {code: pd.DataFrame(v).sum(min_count=1).tolist() for code, v in rows.items()}
    return pd.DataFrame.from_dict(data, orient="index", columns=[str(forms[i]).strip() for i in keep])


def _signed(sheet: str, chosen: pd.Series) -> pd.Series:
    """Sheet magnitudes -> balance signs; a secondary carrier's own output sits in its transformation rows."""
    s = chosen.copy()
    secondary = SECONDARY.get(sheet)
    if secondary:
        s = s.drop("primary_consumption", errors="ignore")  # "Потреблено всего" includes its own output there
        s = s.rename({"production": "electricity_production" if secondary == "electricity" else "heat_production"})
    outputs = {"heat": {"heat_production", "heat_chp", "heat_boilers", "heat_electric_boilers"},
               "electricity": {"electricity_production"}}.get(secondary, set())
    sign = pd.Series([1.0 if (r in POSITIVE or r in outputs) else -1.0 for r in s.index], index=s.index)
    return s * sign


@functools.cache
def workbook(year: int) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    # the consolidated sheet through the platform's reader; the carrier sheets as magnitudes, the way
    # check_carriers takes them (energy.workbook keeps sheet-only rows apart, which these checks fold in)
    wb = openpyxl.load_workbook(DATA / f"balance{year}.xlsx", data_only=True, read_only=False)
    balance = read_workbook(DATA / f"balance{year}.xlsx").balance.reindex(columns=COLUMNS)
    return balance, {name: _read_sheet(wb[name]) for name in wb.sheetnames[1:]}


def carrier_values(year: int) -> dict[str, pd.Series]:
    _, sheets = workbook(year)
    return {name: _signed(name, frame["В баланс"]) for name, frame in sheets.items()}


def test_reader_matches_the_workbook_labels():
    # Every `Баланс` row label maps (a KeyError otherwise) and the carrier sheets give the rows the checks need.
    b, sheets = workbook(2019)
    assert b.shape == (35, 10)
    assert b.at["production", "coal"] == pytest.approx(224.24)  # Баланс!C5
    assert sheets["Электро"].at["households", "22-ЖКХ"] == pytest.approx(1454.22)  # Электро!I35
    assert sheets["Тепло"].at["heat_electric_boilers", "В баланс"] == pytest.approx(0.08 + 49.99)  # Тепло!B6 + B7


# ---------------------------------------------------------------- tiny hand-made balance
TINY_COLUMNS = ["coal", "natural_gas", "electricity", "heat"]
TINY = {  # coal, gas, electricity, heat; every identity closes by construction (sums in the comments)
    "production": [10, np.nan, np.nan, np.nan],
    "inflow": [0, 100, 5, np.nan],
    "outflow": [0, np.nan, -3, np.nan],
    "primary_consumption": [10, 100, 2, 0],  # 10+0+0; 100; 5−3; 0
    "statistical_discrepancy": [0, 0, 0, 0],
    "electricity_production": [-4, -30, 14, np.nan],  # net −20: 34 tce of fuel make 14 of electricity
    "heat_production": [-6, -50, -1, 45],  # = chp + boilers + electric boilers
    "heat_chp": [-6, -20, np.nan, 20],
    "heat_boilers": [np.nan, -30, np.nan, 24],
    "heat_electric_boilers": [np.nan, np.nan, -1, 1],  # net 0: allowed
    "final_consumption": [0, 20, 15, 45],  # 10−4−6; 100−30−50; 2+14−1; 0+45
    "industry": [np.nan, 15, 10, 15],
    "households": [np.nan, 5, 5, 30],
}


def tiny() -> pd.DataFrame:
    b = pd.DataFrame.from_dict(TINY, orient="index", columns=TINY_COLUMNS).astype(float)
    return with_total(b)


def with_total(b: pd.DataFrame) -> pd.DataFrame:
    b = b.drop(columns="total", errors="ignore")
    b["total"] = b.sum(axis=1, min_count=1)
    return b


def cells(findings) -> dict[tuple[str, str, str], float]:
    return {(f.check, f.row, f.column): round(f.difference, 6) for f in findings}


def test_tiny_balance_is_clean():
    assert check(tiny()) == []


def test_resources_fires_on_the_cell():
    b = tiny()
    b.at["primary_consumption", "coal"] = 11.0  # production + inflow + outflow + stock = 10
    found = cells(check(with_total(b)))
    assert found[("resources", "primary_consumption", "coal")] == 1.0
    f = next(f for f in check(with_total(b)) if f.check == "resources")
    assert (f.expected, f.actual, f.severity) == (10.0, 11.0, "error")


def test_distribution_uses_the_workbook_sign_convention():
    b = tiny()
    b.at["statistical_discrepancy", "natural_gas"] = 2.0  # residual 100 − 30 − 50 − 20 = 0
    found = cells(check(with_total(b)))
    assert found[("distribution", "statistical_discrepancy", "natural_gas")] == 2.0
    assert ("discrepancy", "statistical_discrepancy", "natural_gas") not in found  # the residual itself is 0


def test_non_zero_discrepancy_closing_the_identity_is_only_a_warning():
    b = tiny()
    b.loc[["final_consumption", "households", "statistical_discrepancy"], "natural_gas"] = [18.0, 3.0, 2.0]
    findings = check(with_total(b))  # residual 100 − 30 − 50 − 18 = 2 = recorded: identity holds
    assert [(f.check, f.column, f.actual, f.severity) for f in findings] == [
        ("discrepancy", "natural_gas", 2.0, "warning"), ("discrepancy", "total", 2.0, "warning")]


def test_subrows_fire_on_the_parent():
    b = tiny()
    b.at["heat_chp", "coal"] = -5.0  # heat_production stays −6, children now −5
    found = cells(check(with_total(b)))
    assert found[("subrows", "heat_production", "coal")] == -1.0  # actual −6 − expected −5
    b = tiny()
    b.at["industry", "electricity"] = 11.0  # final 15 ≠ 11 + 5
    assert cells(check(with_total(b)))[("subrows", "final_consumption", "electricity")] == -1.0


def test_total_column_and_tolerance():
    b = tiny()
    b.at["households", "total"] += 0.1  # households is also a child of final consumption in the total column
    assert cells(check(b)) == {("total", "households", "total"): 0.1, ("subrows", "final_consumption", "total"): -0.1}
    b.at["households", "total"] -= 0.06  # 0.04 off: within the default 0.05
    assert check(b) == []
    assert cells(check(b, tolerance=0.01)) == {("total", "households", "total"): 0.04,
                                               ("subrows", "final_consumption", "total"): -0.04}


def test_transformation_cannot_create_energy():
    b = tiny()
    b.loc[["heat_electric_boilers", "heat_production"], "heat"] = [3.0, 47.0]  # 1 tce of electricity -> 3 of heat
    b.loc[["final_consumption", "households"], "heat"] = [47.0, 32.0]
    found = check(with_total(b))
    assert cells(found) == {("transformation", "heat_electric_boilers", "total"): 2.0}
    assert found[0].actual == 2.0  # −1 + 3


def test_forbidden_cells():
    b = tiny()
    assert check(b, forbidden=SECONDARY_PRODUCTION) == []  # production of electricity/heat empty
    b.at["production", "heat"] = 0.0  # the workbooks' "empty"
    assert check(with_total(b), forbidden=SECONDARY_PRODUCTION) == []
    b.at["production", "heat"] = 5.0
    assert ("forbidden", "production", "heat") in cells(check(with_total(b), forbidden=SECONDARY_PRODUCTION))
    with pytest.raises(InvalidParameterValue):
        check(b, forbidden=["production"])
    with pytest.raises(InvalidParameterValue):
        check(b, tolerance=-1)


def test_carriers_sum_into_their_column():
    b = tiny()
    a = pd.Series({"inflow": 0.0, "heat_chp": -4.0, "final_consumption": np.nan})
    k = pd.Series({"inflow": 0.0, "heat_chp": -2.0, "production": 10.0})
    roll_up = {"A": "coal", "K": "coal"}
    assert check_carriers(b, {"A": a, "K": k}, roll_up) == []  # −4 − 2 = −6, production 10
    k["heat_chp"] = -2.5
    assert cells(check_carriers(b, {"A": a, "K": k}, roll_up)) == {("carriers", "heat_chp", "coal"): 0.5}
    with pytest.raises(InvalidParameterValue):
        check_carriers(b, {"A": a}, {"A": "lignite"})


# ---------------------------------------------------------------- the five real workbooks
# Every error each workbook violates, with its amount (actual − expected, thousand tce), found by check() with the
# SECONDARY_PRODUCTION cells forbidden plus check_carriers() on the leaf carrier sheets. Where they come from:
# - distribution: the recorded discrepancy (Баланс row 10) is not the residual, e.g. 2019 gas 319.71 recorded,
#   residual 317.47: the gas sheet's discrepancy left out the 2.24 burnt in electric boilers (Баланс!F15).
# - subrows transport: "Транспорт и связь" holds more than rail + pipeline + road + other (storage and
#   communications have no child row); 2020 gas final consumption 7783.81 vs children 7384.22.
# - transformation: "Электрокотельные и теплоутилизационные установки" outputs more heat than its inputs
#   (2019: −2.24 gas + 50.07 heat = 47.83; heat-recovery output has no input row).
# - carriers: 2016 coal boilers 815.31 in Баланс and Уголь_пр, but the leaf sheet Уголь leaves its boiler row 0
#   while its heat production is 621.99; 2017/2019 petroleum CHP input (0.86/0.31 in Мазут/Дизель...) missing from
#   Баланс; 2018 heat output 9288.22 vs Тепло 9278.33; 2020 gas "other" 2558.00 vs Пр-й газ 2957.60.
REAL_ERRORS = {
    2016: {("distribution", "statistical_discrepancy", "electricity"): -4.43,
           ("distribution", "statistical_discrepancy", "total"): -4.44,
           ("subrows", "transport", "petroleum_products"): 507.68, ("subrows", "transport", "natural_gas"): 1.18,
           ("subrows", "transport", "electricity"): 108.67, ("subrows", "transport", "heat"): 64.66,
           ("subrows", "transport", "total"): 682.19, ("transformation", "heat_electric_boilers", "total"): 9.0,
           ("carriers", "heat_boilers", "coal"): -621.99, ("carriers", "heat_production", "electricity"): 4.43},
    2017: {("distribution", "statistical_discrepancy", "petroleum_products"): -0.86,
           ("distribution", "statistical_discrepancy", "total"): -0.86,
           ("subrows", "transport", "petroleum_products"): -2.45, ("subrows", "transport", "natural_gas"): 13.97,
           ("subrows", "transport", "electricity"): 88.53, ("subrows", "transport", "heat"): 104.76,
           ("subrows", "transport", "total"): 204.81, ("transformation", "heat_electric_boilers", "total"): 9.0,
           ("carriers", "heat_production", "petroleum_products"): 0.86,
           ("carriers", "heat_chp", "petroleum_products"): 0.86},
    2018: {("distribution", "statistical_discrepancy", "heat"): -9.89,
           ("distribution", "statistical_discrepancy", "total"): -9.89,
           ("subrows", "transport", "petroleum_products"): 74.92, ("subrows", "transport", "natural_gas"): 3.08,
           ("subrows", "transport", "electricity"): 96.31, ("subrows", "transport", "heat"): 73.45,
           ("subrows", "transport", "total"): 247.76, ("transformation", "heat_electric_boilers", "total"): 9.89,
           ("carriers", "heat_production", "heat"): 9.89},
    2019: {("distribution", "statistical_discrepancy", "petroleum_products"): -0.31,
           ("distribution", "statistical_discrepancy", "natural_gas"): 2.24,
           ("distribution", "statistical_discrepancy", "total"): 1.92,
           ("subrows", "transport", "petroleum_products"): 5.62, ("subrows", "transport", "natural_gas"): 7.95,
           ("subrows", "transport", "electricity"): 100.78, ("subrows", "transport", "heat"): 77.66,
           ("subrows", "transport", "total"): 192.01, ("transformation", "heat_electric_boilers", "total"): 47.83,
           ("carriers", "heat_production", "petroleum_products"): 0.31,
           ("carriers", "heat_chp", "petroleum_products"): 0.31},
    2020: {("distribution", "statistical_discrepancy", "electricity"): -0.12,
           ("distribution", "statistical_discrepancy", "total"): -0.12,
           ("subrows", "final_consumption", "natural_gas"): 399.59, ("subrows", "final_consumption", "total"): 399.6,
           ("subrows", "transport", "petroleum_products"): 144.69, ("subrows", "transport", "natural_gas"): 3.08,
           ("subrows", "transport", "electricity"): 91.39, ("subrows", "transport", "heat"): 74.29,
           ("subrows", "transport", "total"): 313.45, ("transformation", "heat_electric_boilers", "total"): 47.25,
           ("carriers", "other", "natural_gas"): -399.6, ("carriers", "heat_production", "electricity"): 0.12},
}


@pytest.mark.parametrize("year", YEARS)
def test_real_workbook_errors_are_found_and_located(year):
    b, _ = workbook(year)
    found = check(b, forbidden=SECONDARY_PRODUCTION) + check_carriers(b, carrier_values(year))
    errors = {(f.check, f.row, f.column): round(f.difference, 2) for f in found if f.severity == "error"}
    assert errors == REAL_ERRORS[year]
    # Resources and the total column close in every year: those identities are formulas in the workbooks.
    assert not {c for c, *_ in errors} & {"resources", "total", "forbidden"}


def test_2019_coal_discrepancy_is_the_workbooks_own():
    b, _ = workbook(2019)
    # Баланс 2019, coal: 838.79 − 34.27 − 182.34 − 557.61 − 64.25 = 0.32 = Баланс!C10
    assert distribution_residual(b, "coal") == pytest.approx(0.32, abs=1e-9)
    assert distribution_residual(b, "coal") == pytest.approx(b.at["statistical_discrepancy", "coal"], abs=1e-9)
    warning = [f for f in check(b) if (f.check, f.column) == ("discrepancy", "coal")]
    assert [round(f.actual, 2) for f in warning] == [0.32]
    assert not [f for f in check(b) if (f.check, f.column) == ("distribution", "coal")]


def test_aggregate_sheets_agree_with_balance_where_leaves_do_not():
    # 2016: Уголь_пр (the workbook's own coal aggregate) matches Баланс boilers 815.31; the leaf sheets do not.
    b, _ = workbook(2016)
    aggr = cells(check_carriers(b, carrier_values(2016), AGGREGATE_ROLL_UP))
    assert ("carriers", "heat_boilers", "coal") not in aggr
    assert aggr == {("carriers", "heat_production", "electricity"): 4.43}


# ---------------------------------------------------------------- choose
def test_choose_hand_case():
    forms = pd.DataFrame({
        "A": [100, np.nan, 20, np.nan, np.nan, np.nan],
        "B": [90, np.nan, 20.5, 7, np.nan, np.nan],
        "C": [np.nan, 50, 0, np.nan, np.nan, np.nan],
    }, index=["production", "inflow", "industry", "households", "final_consumption", "losses"])
    c = choose(forms, priority={"production": ["B", "A"], "inflow": ["A", "B"]}, default_order=["A", "C"],
               tolerance_pct=5)
    assert c.values.tolist() == pytest.approx([90, 50, 20, 7, 27, np.nan], nan_ok=True)
    assert c.provenance["rule"].tolist() == ["priority", "fallback", "fallback", "fallback", "children", "none"]
    assert c.provenance["form"].tolist()[:4] == ["B", "C", "A", "B"]
    # Only A on production is off by more than 5 %: 100 − 90 = 10 (11.1 %); B on industry is 0.5 (2.5 %) off and
    # C's 0 on industry counts as "not reported".
    d = c.disagreements
    assert d[["row", "form", "value", "chosen", "difference"]].values.tolist() == [["production", "A", 100, 90, 10]]
    assert d["difference_pct"].iloc[0] == pytest.approx(100 / 9)
    strict = choose(forms, default_order=["A", "C"], zeros_as_missing=False)
    assert strict.disagreements[["row", "form", "difference"]].values.tolist()[-1] == ["industry", "C", -20.0]
    with pytest.raises(InvalidParameterValue):
        choose(forms, priority={"nuclear_row": ["A"]})


def test_choose_on_the_real_electricity_sheet():
    _, sheets = workbook(2019)
    sheet = sheets["Электро"]
    rows, order = default_priority("electricity")
    c = choose(sheet.drop(columns="В баланс"), rows, order, tolerance_pct=5)
    # Электро 2019: households 1260.08 by 23-Н (C35) vs 22-ЖКХ 1454.22 (I35): 194.14 = 15.4 % off
    assert (c.values["households"], *c.provenance.loc["households"]) == (1260.08, "23-Н", "priority")
    d = c.disagreements.set_index(["row", "form"])
    assert d.at[("households", "22-ЖКХ"), "difference"] == pytest.approx(194.14)
    assert d.at[("losses", "ПАО Россети Мособлэнерго"), "difference"] == pytest.approx(679.6 - 890.39)
    assert ("production", "Московское РДУ") not in d.index  # 2493.74 vs 2544.52: 2.0 %, within 5 %
    # The workbook's own choice: reproduced on every row but production (it took the RDU's 2493.74), inflow
    # (6465.39, a residual no form reports) and total consumption (6776.85, the RDU's) -- G3, B5, G8.
    cmp = compare_with(c, sheet["В баланс"])
    assert sorted(cmp.index[~cmp["match"]]) == ["inflow", "primary_consumption", "production"]
    assert cmp["match"].sum() == len(cmp) - 3


def test_default_rules_reproduce_most_workbook_choices():
    carrier = {"Электро": "electricity", "Тепло": "heat", "Пр-й газ": "natural_gas"}
    matched = compared = 0
    for year in YEARS:
        _, sheets = workbook(year)
        for name, sheet in sheets.items():
            rows, order = default_priority(carrier.get(name, "coal"))
            forms = sheet.drop(columns="В баланс")
            cmp = compare_with(choose(forms, {r: f for r, f in rows.items() if r in forms.index}, order),
                               sheet["В баланс"])
            cmp = cmp[cmp["rule"].isin(["priority", "fallback"])]
            matched, compared = matched + int(cmp["match"].sum()), compared + len(cmp)
    # 1189 of 1324 rows where some form reports and the workbook has a value (89.8 %), all sheets, 2016-2020.
    assert (matched, compared) == (1189, 1324)


# ---------------------------------------------------------------- least squares
def identity_residuals(b: pd.DataFrame) -> np.ndarray:
    return np.array([sum(k * np.nan_to_num(b.at[c]) for c, k in t.items()) for _, t in identities(b)])


def test_least_squares_two_identity_toy_by_hand():
    # coal only: primary = production + inflow (14 vs 15) and, discrepancy set to 0, primary = final (14 vs 12).
    b = pd.DataFrame({"coal": [10.0, 5.0, 14.0, 0.0, 12.0]},
                     index=["production", "inflow", "primary_consumption", "statistical_discrepancy",
                            "final_consumption"])
    assert len(identities(b)) == 2
    adjusted, adj = least_squares(b, weights=b * 0 + 1)
    # Unit weights: d = Aᵀλ with A = [[−1,−1,1,0],[0,0,1,−1]] on (production, inflow, primary, final),
    # r = (1, −2); AAᵀ = [[3,1],[1,2]] gives λ = (4/5, −7/5), d = (−0.8, −0.8, −0.6, 1.4).
    assert adjusted["coal"].tolist() == pytest.approx([9.2, 4.2, 13.4, 0.0, 13.4])
    assert adj.set_index("row")["delta"].to_dict() == pytest.approx(
        {"production": -0.8, "inflow": -0.8, "primary_consumption": -0.6, "final_consumption": 1.4})


def test_least_squares_real_balance_closes_every_identity():
    b, _ = workbook(2019)
    assert np.abs(identity_residuals(b)).max() == pytest.approx(192.01)  # before: transport, total column
    adjusted, adj = least_squares(b)
    assert np.abs(identity_residuals(adjusted)).max() < 1e-9
    assert (adjusted.loc["statistical_discrepancy"] == 0).all()
    # Only the inequality (transformation) can remain violated; every equality now holds to 1e-9.
    assert {f.check for f in check(adjusted, tolerance=1e-9)} == {"transformation"}
    assert (adj["after"] - adj["before"] - adj["delta"]).abs().max() < 1e-12
    assert adj.set_index(["row", "column"]).at[("statistical_discrepancy", "heat"), "delta"] == pytest.approx(819.63)


def test_least_squares_keeps_fixed_and_free_discrepancy():
    b, _ = workbook(2019)
    fixed = [("primary_consumption", "natural_gas"), ("final_consumption", "heat"), ("households", "heat")]
    adjusted, _ = least_squares(b, fixed=fixed)
    for cell in fixed:
        assert adjusted.at[cell] == b.at[cell]
    zeros = b == 0  # the workbooks' "empty" (e.g. every nuclear cell) stays 0 by default
    assert zeros.to_numpy().sum() > 150 and (adjusted[zeros] == 0).sum().sum() == zeros.to_numpy().sum()
    assert np.abs(identity_residuals(adjusted)).max() < 1e-9
    kept, adj = least_squares(b, discrepancy="free")
    assert np.abs(identity_residuals(kept)).max() < 1e-9
    # Free: the discrepancy stays the residual of distribution; resources rows need no change at all.
    assert kept.at["statistical_discrepancy", "heat"] == pytest.approx(distribution_residual(kept, "heat"))
    assert kept.loc["inflow"].equals(b.loc["inflow"])
    with pytest.raises(InvalidParameterValue):
        least_squares(b, discrepancy="drop")


def test_least_squares_refuses_infeasible_fixing():
    b = pd.DataFrame({"coal": [10.0, 5.0, 14.0]}, index=["production", "inflow", "primary_consumption"])
    with pytest.raises(InvalidParameterValue, match="resources"):
        least_squares(b, fixed=[("production", "coal"), ("inflow", "coal"), ("primary_consumption", "coal")])
    with pytest.raises(InvalidParameterValue):
        least_squares(b, fixed=[("nowhere", "coal")])


def test_least_squares_is_minimal():
    b = tiny()
    b.loc["inflow", "natural_gas"] = 103.0
    b.loc["households", "heat"] = 28.5
    b.loc["heat_chp", "coal"] = -5.5
    b = with_total(b)
    b.at["electricity_production", "total"] += 0.7
    adjusted, adj = least_squares(b, zeros_as_empty=False)  # every non-empty cell a variable, as posed below
    assert np.abs(identity_residuals(adjusted)).max() < 1e-9
    # The same problem posed to a generic solver: variables = the non-empty cells, minimise Σ w·d².
    ids = identities(b)
    x0 = b.copy()
    x0.loc["statistical_discrepancy"] = 0.0
    var = [(r, c) for r in b.index for c in b.columns if r != "statistical_discrepancy" and not np.isnan(b.at[r, c])]
    pos = {cell: i for i, cell in enumerate(var)}
    a = np.zeros((len(ids), len(var)))
    rhs = np.zeros(len(ids))
    for k, (_, terms) in enumerate(ids):
        for cell, coef in terms.items():
            rhs[k] -= coef * np.nan_to_num(x0.at[cell])
            if cell in pos:
                a[k, pos[cell]] += coef
    w = np.array([1 / max(abs(b.at[c]), 1) ** 2 for c in var])
    ours = np.array([adjusted.at[c] - b.at[c] for c in var])
    assert np.allclose(a @ ours, rhs, atol=1e-9)
    u = orth(a)  # the identities are redundant (total column); SLSQP needs independent constraints
    ai, ri = u.T @ a, u.T @ rhs
    generic = minimize(lambda d: d @ (w * d), np.zeros(len(var)), jac=lambda d: 2 * w * d, method="SLSQP",
                       constraints=[{"type": "eq", "fun": lambda d: ai @ d - ri, "jac": lambda d: ai}],
                       options={"ftol": 1e-14, "maxiter": 500})
    assert generic.success
    assert ours @ (w * ours) <= generic.fun + 1e-9
    assert np.allclose(ours, generic.x, atol=1e-4)
    # Any other feasible correction (ours plus a null-space move) has a larger weighted norm.
    rng = np.random.default_rng(1169)
    basis = null_space(a)
    for _ in range(50):
        other = ours + basis @ rng.normal(size=basis.shape[1])
        assert np.allclose(a @ other, rhs, atol=1e-9)
        assert other @ (w * other) > ours @ (w * ours)


# ---------------------------------------------------------------- consolidation
def test_consolidate_hand_case_keeps_empty_cells_empty():
    a = pd.DataFrame({"coal": [1.0, np.nan], "heat": [np.nan, np.nan]}, index=["inflow", "losses"])
    b = pd.DataFrame({"coal": [2.0, np.nan], "heat": [3.0, np.nan]}, index=["inflow", "own_use"])
    total = consolidate({"A": a, "B": b})
    assert total.index.tolist() == ["inflow", "losses", "own_use"]
    assert total.at["inflow", "coal"] == 3.0 and total.at["inflow", "heat"] == 3.0
    assert total.loc[["losses", "own_use"]].isna().all().all()  # empty everywhere stays empty
    with pytest.raises(InvalidParameterValue):
        consolidate({})


SHARES = {"Балашиха": 0.5, "Подольск": 0.3, "Коломна": 0.2}  # hand-chosen, sum 1


def test_consolidated_municipal_split_matches_the_region():
    region, _ = workbook(2019)
    region = region.copy()
    region["nuclear"] = np.nan  # empty in the region and so in every municipality
    parts = {name: region * share for name, share in SHARES.items()}
    parts["Коломна"].at["inflow", "coal"] = np.nan  # Коломна reports nothing there: the others' 80 % remain
    total = consolidate(parts)
    assert total["nuclear"].isna().all()
    assert total.at["inflow", "coal"] == pytest.approx(0.8 * 599.37)  # Баланс!C6
    diff = compare(total, region)
    assert diff["flagged"].tolist().count(True) == 1
    assert diff.loc[diff["flagged"], ["row", "column"]].values.tolist() == [["inflow", "coal"]]
    assert diff.loc[diff["flagged"], "difference"].iloc[0] == pytest.approx(-0.2 * 599.37)


def test_perturbed_municipality_is_flagged():
    region, _ = workbook(2019)
    parts = {name: region * share for name, share in SHARES.items()}
    parts["Подольск"].at["households", "natural_gas"] += 10.0
    diff = compare(consolidate(parts), region)
    flagged = diff[diff["flagged"]]
    assert flagged[["row", "column"]].values.tolist() == [["households", "natural_gas"]]
    assert flagged["difference"].iloc[0] == pytest.approx(10.0)
    # Relative tolerance: 10 is 0.21 % of 4686.11 (Баланс!F37), flagged at 0.1 %, not at 1 %.
    assert compare(consolidate(parts), region, tolerance_pct=0.1)["flagged"].sum() == 1
    assert compare(consolidate(parts), region, tolerance_pct=1)["flagged"].sum() == 0
