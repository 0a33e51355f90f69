"""Forecast a fuel and energy balance from a base year to a horizon year under a scenario.

Year by year (n = year − base year):
1. Final consumption of each leaf sector s and carrier c:
       F_sc(n) = E_s0 · activity_s(n) · intensity_s(n) · share_sc(n) · (p_c(n)/p_c0)^ε_c
   activity = (1 + g_s)^n (households: population), or x_s(n)/x_s(0) of the Leontief model
   x = (I − A)⁻¹ y when the scenario has one; intensity = (1 + τ_s)^n; shares are the base shares,
   except the carriers of a substitution rule, whose joint share is split by a calibrated logit
   over delivered cost (cost moves with the carrier's price index; see `Substitution`).
2. Electricity and heat demand = (final + use inside transformation) / (1 − own-use rate − loss rate);
   own use and losses are those rates × the demand (rates default to the base year's).
3. Heat: net heat inflow is held at the base level; local sources (CHP, boiler houses, electric
   boilers) make the rest in base shares. Electricity: local generation follows
   `generation_growth` and imports close the gap ("imports", default), or local generation follows
   demand with base net imports ("local").
4. Each technology's fuel input = output × mix_f / efficiency_f (base-calibrated by default); its
   other inputs (e.g. electricity of boiler houses) stay proportional to its output.
5. Fuel transformation (refining, gas processing, coal enrichment) stays at the base level; fuel own
   use and losses scale with the fuel's use. Supply: production and outflow stay at the base level,
   stock change is 0, inflow closes the gap (if negative, outflow grows instead); hydro/renewables
   and nuclear cannot be imported, so their production equals their use.
So every forecast balance has zero statistical discrepancy and its parents equal the sums of their
sub-rows. Defects of the base balance are absorbed once: a parent's excess over its sub-rows goes to
`industry_other` / `transport_other` / `other`; a base discrepancy disappears (supply is rebuilt
from uses).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from energy import co2 as co2_mod
from energy import layout
from energy.scenarios import (
    CARRIERS,
    COLUMNS,
    FUELS,
    HEAT_SOURCES,
    SECTOR_PARENTS,
    SECTORS,
    TECHNOLOGIES,
    Scenario,
    Substitution,
    Technology,
    check_productive,
    drivers,
    expand_sector,
    leaf_rate,
    perturb,
)
from layers.errors import InvalidParameterValue

ROWS: tuple[str, ...] = layout.ROWS  # the Order 1169 rows (energy/layout.py)
TOP_SECTORS: tuple[str, ...] = (
    "agriculture", "industry", "construction", "transport", "services", "households", "non_energy", "other",
)
FUEL_TRANSFORMATION_ROWS: tuple[str, ...] = ("oil_refining", "gas_processing", "coal_enrichment")
NON_TRADABLE: tuple[str, ...] = ("hydro_renewables", "nuclear")
TOLERANCE = 1e-6  # thousand tce


# ---------------------------------------------------------------- building blocks (pure, tested alone)

def leontief_output(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sector outputs x = (I − A)⁻¹ y; refuses A with spectral radius ≥ 1."""
    a = np.asarray(a, dtype=float)
    check_productive(a)
    return np.linalg.solve(np.eye(a.shape[0]) - a, np.asarray(y, dtype=float))


def calibrate_logit(base_shares: np.ndarray, base_costs: np.ndarray, lam: float) -> np.ndarray:
    """Constants α_i = ln s_i0 + λ·c_i0, so that logit_shares(base_costs) == base_shares (−inf for s = 0)."""
    s = np.asarray(base_shares, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(s > 0, np.log(np.where(s > 0, s, 1.0)), -np.inf) + lam * np.asarray(base_costs, float)


def logit_shares(costs: np.ndarray, lam: float, alpha: np.ndarray | None = None) -> np.ndarray:
    """share_i = exp(α_i − λ·cost_i) / Σ_j exp(α_j − λ·cost_j) (α = 0: the plain logit)."""
    c = np.asarray(costs, dtype=float)
    u = (np.zeros_like(c) if alpha is None else np.asarray(alpha, float)) - lam * c
    finite = np.isfinite(u)
    if not finite.any():
        return np.zeros_like(c)
    w = np.where(finite, np.exp(u - np.max(u[finite])), 0.0)  # shifted: no overflow
    return w / w.sum()


def price_factor(price_ratio: float, elasticity: float) -> float:
    """Demand multiplier of a constant own-price elasticity: (p_t / p_0)^ε."""
    return float(price_ratio) ** float(elasticity)


def compound_index(rate: float, years: int) -> float:
    """(1 + rate)^years: the index of an annual trend (activity, intensity, prices)."""
    return (1.0 + float(rate)) ** years


# ---------------------------------------------------------------- base-year calibration

def _frame(balance: pd.DataFrame) -> pd.DataFrame:
    unknown_rows = set(balance.index) - set(ROWS)
    unknown_cols = set(balance.columns) - set(COLUMNS)
    if unknown_rows or unknown_cols:
        raise InvalidParameterValue(
            f"balance has unknown rows {sorted(map(str, unknown_rows))} or columns {sorted(map(str, unknown_cols))}"
        )
    b = balance.reindex(index=list(ROWS), columns=list(COLUMNS)).astype(float).fillna(0.0)
    return b[list(CARRIERS)]


@dataclass(frozen=True)
class _Tech:
    out_carrier: str
    output: float
    efficiency: float  # common base efficiency: output / Σ fuel inputs (inf: no fuel input)
    mix: pd.Series  # base share of each fuel in the fuel input
    aux: pd.Series  # non-fuel, non-output carriers per unit output (signed)


@dataclass(frozen=True)
class _Base:
    b: pd.DataFrame  # cleaned base balance, carriers only
    final: pd.DataFrame  # leaf sectors × carriers
    techs: dict[str, _Tech]
    rates: dict[str, tuple[float, float]]  # carrier -> (own-use rate, loss rate) of network supply
    fuel_use: pd.Series  # base use of each fuel (final + transformation inputs), for own use and losses
    elec_net_import: float  # base electricity demand − local generation


def _calibrate(balance: pd.DataFrame) -> _Base:
    b = _frame(balance).copy()
    # A parent's excess over its sub-rows goes to the catch-all leaf (a data defect, kept not lost);
    # a shortfall (the parent under its sub-rows, e.g. rounding) is dropped: the sub-rows win.
    for parent, leaves in SECTOR_PARENTS.items():
        b.loc[leaves[-1]] += (b.loc[parent] - b.loc[list(leaves)].sum()).clip(lower=0.0)
        b.loc[parent] = b.loc[list(leaves)].sum()
    b.loc["other"] += (b.loc["final_consumption"] - b.loc[list(TOP_SECTORS)].sum()).clip(lower=0.0)
    b.loc["final_consumption"] = b.loc[list(TOP_SECTORS)].sum()
    if (b.loc[list(HEAT_SOURCES)].abs().sum().sum() == 0) and b.loc["heat_production"].abs().sum() > 0:
        b.loc["heat_boilers"] = b.loc["heat_production"]  # no split given: all heat from boiler houses
    b.loc["heat_production"] = b.loc[list(HEAT_SOURCES)].sum()
    if b.loc[list(FUEL_TRANSFORMATION_ROWS)].abs().sum().sum() > 0:
        b.loc["fuel_transformation"] = b.loc[list(FUEL_TRANSFORMATION_ROWS)].sum()

    techs: dict[str, _Tech] = {}
    for row, out_c in TECHNOLOGIES.items():
        out = max(b.at[row, out_c], 0.0)
        fuel_in = (-b.loc[row, list(FUELS)]).clip(lower=0.0)
        total_in = float(fuel_in.sum())
        mix = fuel_in / total_in if total_in > 0 else fuel_in * 0.0
        eff = out / total_in if total_in > 0 else float("inf")
        aux_cols = [c for c in CARRIERS if c not in FUELS and c != out_c]
        aux = b.loc[row, aux_cols] / out if out > 0 else b.loc[row, aux_cols] * 0.0
        techs[row] = _Tech(out_c, out, eff, mix, aux)

    rates: dict[str, tuple[float, float]] = {}
    for c in ("electricity", "heat"):
        own, loss = -b.at["own_use", c], -b.at["losses", c]
        supply = b.at["final_consumption", c] + _internal_use(b, c) + own + loss
        rates[c] = (own / supply, loss / supply) if supply > 0 else (0.0, 0.0)
    fuel_use = b.loc["final_consumption", list(FUELS)] + _transformation_input(b)
    e_demand = _demand(b.at["final_consumption", "electricity"] + _internal_use(b, "electricity"),
                       *rates["electricity"])
    return _Base(b, b.loc[list(SECTORS)].copy(), techs, rates, fuel_use,
                 e_demand - techs["electricity_production"].output)


def _internal_use(b: pd.DataFrame, carrier: str) -> float:
    """A carrier consumed inside transformation (e.g. electricity of boiler houses), positive."""
    rows = [*TECHNOLOGIES, *FUEL_TRANSFORMATION_ROWS]
    return float((-b.loc[rows, carrier]).clip(lower=0.0).sum())


def _transformation_input(b: pd.DataFrame) -> pd.Series:
    rows = [*TECHNOLOGIES, *FUEL_TRANSFORMATION_ROWS]
    return (-b.loc[rows, list(FUELS)]).clip(lower=0.0).sum()


def _demand(use: float, own_rate: float, loss_rate: float) -> float:
    return use / (1.0 - own_rate - loss_rate)


# ---------------------------------------------------------------- one forecast year

def _activity(base: _Base, sc: Scenario, n: int) -> pd.Series:
    idx = pd.Series({s: compound_index(leaf_rate(sc.sector_growth, s), n) for s in SECTORS})
    idx["households"] = compound_index(sc.population_growth, n)
    io = sc.input_output
    if io is not None:
        a = io.matrix()
        y0 = np.asarray(io.final_demand, float)
        growth = np.array([compound_index(io.final_demand_growth.get(s, 0.0), n) for s in io.sectors])
        x0, xn = leontief_output(a, y0), leontief_output(a, y0 * growth)
        for i, s in enumerate(io.sectors):
            ratio = xn[i] / x0[i] if x0[i] > 0 else 1.0
            for leaf in expand_sector(s):
                idx[leaf] = ratio
    return idx


def _final(base: _Base, sc: Scenario, n: int) -> pd.DataFrame:
    activity = _activity(base, sc, n)
    prices = pd.Series({c: compound_index(sc.price_growth.get(c, 0.0), n) for c in CARRIERS})
    elastic = pd.Series({c: price_factor(prices[c], sc.price_elasticity.get(c, 0.0)) for c in CARRIERS})
    rules: dict[str, Substitution] = {leaf: r for r in sc.substitution for leaf in expand_sector(r.sector)}
    out = pd.DataFrame(0.0, index=list(SECTORS), columns=list(CARRIERS))
    for s in SECTORS:
        row = base.final.loc[s]
        total0 = float(row.sum())
        if total0 == 0:
            continue
        shares = row / total0
        rule = rules.get(s)
        if rule is not None:
            k = list(rule.carriers)
            joint = float(shares[k].sum())
            if joint > 0:
                c0 = np.array([rule.base_cost[c] for c in k], float)
                alpha = calibrate_logit(shares[k].to_numpy() / joint, c0, rule.logit_lambda)
                cn = c0 * prices[k].to_numpy()
                shares = shares.copy()
                shares[k] = joint * logit_shares(cn, rule.logit_lambda, alpha)
        total = total0 * activity[s] * compound_index(leaf_rate(sc.intensity_trend, s), n)
        out.loc[s] = total * shares * elastic
    return out


def _tech_inputs(tech: _Tech, spec: Technology, output: float, n: int) -> pd.Series:
    """Signed inputs (negative) and output (positive) of one technology row."""
    row = pd.Series(0.0, index=list(CARRIERS))
    row[tech.out_carrier] = output
    mix = pd.Series(spec.output_mix, dtype=float).reindex(list(FUELS)).fillna(0.0) if spec.output_mix \
        else tech.mix
    gain = compound_index(spec.efficiency_gain, n)
    for f in FUELS:
        if mix[f] == 0 or output == 0:
            continue
        eff = (spec.efficiency or {}).get(f, tech.efficiency) * gain
        if np.isfinite(eff):
            row[f] = -output * mix[f] / eff
    for c, coef in tech.aux.items():
        row[c] = coef * output
    return row


def _year(base: _Base, sc: Scenario, n: int) -> pd.DataFrame:
    b = pd.DataFrame(0.0, index=list(ROWS), columns=list(CARRIERS))
    b.loc[list(SECTORS)] = _final(base, sc, n)
    for parent, leaves in SECTOR_PARENTS.items():
        b.loc[parent] = b.loc[list(leaves)].sum()
    b.loc["final_consumption"] = b.loc[list(TOP_SECTORS)].sum()
    for r in (*FUEL_TRANSFORMATION_ROWS, "fuel_transformation"):
        b.loc[r] = base.b.loc[r]

    rates = {c: (sc.own_use_rate.get(c, base.rates[c][0]), sc.loss_rate.get(c, base.rates[c][1]))
             for c in ("electricity", "heat")}
    heat_shares = pd.Series(sc.heat_source_shares or {}, dtype=float).reindex(list(HEAT_SOURCES)).fillna(0.0) \
        if sc.heat_source_shares else _base_heat_shares(base)
    heat_net_inflow = base.b.at["inflow", "heat"] + base.b.at["outflow", "heat"]
    e_gen = base.techs["electricity_production"].output * compound_index(sc.generation_growth, n)
    # Heat and electricity use each other inside transformation: iterate to the fixed point.
    for _ in range(100):
        prev = b.loc[list(TECHNOLOGIES)].copy()
        h_demand = _demand(b.at["final_consumption", "heat"] + _internal_use(b, "heat"), *rates["heat"])
        h_local = max(h_demand - heat_net_inflow, 0.0)
        for src in HEAT_SOURCES:
            b.loc[src] = _tech_inputs(base.techs[src], sc.technologies.get(src, Technology()),
                                      h_local * heat_shares[src], n)
        e_demand = _demand(b.at["final_consumption", "electricity"] + _internal_use(b, "electricity"),
                           *rates["electricity"])
        if sc.electricity_supply == "local":
            e_gen = max(e_demand - base.elec_net_import, 0.0)
        b.loc["electricity_production"] = _tech_inputs(
            base.techs["electricity_production"], sc.technologies.get("electricity_production", Technology()),
            e_gen, n)
        if np.allclose(prev.to_numpy(), b.loc[list(TECHNOLOGIES)].to_numpy(), atol=1e-12, rtol=0):
            break
    b.loc["heat_production"] = b.loc[list(HEAT_SOURCES)].sum()
    for c in ("electricity", "heat"):
        supply = _demand(b.at["final_consumption", c] + _internal_use(b, c), *rates[c])
        b.at["own_use", c] = -rates[c][0] * supply
        b.at["losses", c] = -rates[c][1] * supply
    use = b.loc["final_consumption", list(FUELS)] + _transformation_input(b)
    scale = (use / base.fuel_use).where(base.fuel_use > 0, 1.0)
    for r in ("own_use", "losses"):
        b.loc[r, list(FUELS)] = base.b.loc[r, list(FUELS)] * scale
    _close_supply(b, base)
    return b


def _base_heat_shares(base: _Base) -> pd.Series:
    out = pd.Series({s: base.techs[s].output for s in HEAT_SOURCES})
    return out / out.sum() if out.sum() > 0 else pd.Series({"heat_chp": 0.0, "heat_boilers": 1.0,
                                                             "heat_electric_boilers": 0.0})


def _close_supply(b: pd.DataFrame, base: _Base) -> None:
    """Primary supply that makes the discrepancy zero: inflow (or extra outflow) closes the gap."""
    transform = b.loc["electricity_production"] + b.loc["heat_production"] + b.loc["fuel_transformation"]
    need = b.loc["final_consumption"] - transform - b.loc["own_use"] - b.loc["losses"]
    for c in CARRIERS:
        outflow = base.b.at["outflow", c]
        if c in NON_TRADABLE:
            production, inflow = need[c] - base.b.at["inflow", c] - outflow, base.b.at["inflow", c]
        else:
            production = base.b.at["production", c]
            inflow = need[c] - production - outflow
            if inflow < 0:
                outflow, inflow = outflow + inflow, 0.0
        b.at["production", c], b.at["inflow", c], b.at["outflow", c] = production, inflow, outflow
        b.at["stock_change", c] = 0.0
    b.loc["primary_consumption"] = b.loc[["production", "inflow", "outflow", "stock_change"]].sum()
    b.loc["statistical_discrepancy"] = (
        b.loc["primary_consumption"] + transform + b.loc["own_use"] + b.loc["losses"] - b.loc["final_consumption"]
    )


# ---------------------------------------------------------------- public API

@dataclass(frozen=True)
class ForecastResult:
    scenario: Scenario
    base_year: int
    balances: dict[int, pd.DataFrame]  # year -> balance (ROWS × COLUMNS, thousand tce); base year as given
    summary: pd.DataFrame  # year × indicators


def identity_errors(balance: pd.DataFrame) -> dict[str, float]:
    """Largest absolute violation of each balance identity (thousand tce)."""
    b = _frame(balance)
    total = balance.reindex(index=list(ROWS))["total"].fillna(0.0) if "total" in balance else None
    errs = {
        "primary": (b.loc["primary_consumption"]
                    - b.loc[["production", "inflow", "outflow", "stock_change"]].sum()).abs().max(),
        "discrepancy": (b.loc["primary_consumption"] + b.loc["electricity_production"] + b.loc["heat_production"]
                        + b.loc["fuel_transformation"] + b.loc["own_use"] + b.loc["losses"]
                        - b.loc["final_consumption"]).abs().max(),
        "heat_production": (b.loc["heat_production"] - b.loc[list(HEAT_SOURCES)].sum()).abs().max(),
        "final": (b.loc["final_consumption"] - b.loc[list(TOP_SECTORS)].sum()).abs().max(),
    }
    for parent, leaves in SECTOR_PARENTS.items():
        errs[parent] = (b.loc[parent] - b.loc[list(leaves)].sum()).abs().max()
    if total is not None:
        errs["total"] = (total - b.sum(axis=1)).abs().max()
    return {k: float(v) for k, v in errs.items()}


def forecast(base: pd.DataFrame, base_year: int, scenario: Scenario) -> ForecastResult:
    """Year-by-year balances from base_year + 1 to the horizon, and a summary by year."""
    scenario.validate(base_year)
    cal = _calibrate(base)
    balances: dict[int, pd.DataFrame] = {base_year: base.reindex(index=list(ROWS), columns=list(COLUMNS))}
    for year in range(base_year + 1, scenario.horizon_year + 1):
        b = _year(cal, scenario, year - base_year)
        b["total"] = b.sum(axis=1)
        balances[year] = b[list(COLUMNS)]
    summary = pd.DataFrame({year: _indicators(b) for year, b in balances.items()}).T
    summary.index.name = "year"
    return ForecastResult(scenario, base_year, balances, summary)


def _indicators(b: pd.DataFrame) -> dict[str, float]:
    f = b.fillna(0.0)
    return {
        "primary_consumption": float(f.at["primary_consumption", "total"]),
        "final_consumption": float(f.at["final_consumption", "total"]),
        "electricity_final": float(f.at["final_consumption", "electricity"]),
        "electricity_generation": float(f.at["electricity_production", "electricity"]),
        "electricity_net_inflow": float(f.at["inflow", "electricity"] + f.at["outflow", "electricity"]),
        "heat_production": float(f.at["heat_production", "heat"]),
        "statistical_discrepancy": float(f.at["statistical_discrepancy", "total"]),
        "co2_t": co2_mod.emissions(f).total_t,
    }


ResultFn = Callable[[ForecastResult], float]
RESULTS: Mapping[str, ResultFn] = {
    "primary_consumption": lambda r: float(r.summary["primary_consumption"].iloc[-1]),
    "final_consumption": lambda r: float(r.summary["final_consumption"].iloc[-1]),
    "co2": lambda r: float(r.summary["co2_t"].iloc[-1]),
}


def sensitivity(
    base: pd.DataFrame,
    base_year: int,
    scenario: Scenario,
    result: str | ResultFn = "primary_consumption",
    step: float = 0.10,
    names: list[str] | None = None,
) -> pd.DataFrame:
    """Tornado table: elasticity of a horizon-year result to each driver, one at a time, ±step.

    elasticity = ((R(+step) − R(−step)) / R0) / (2·step): the % change of the result per % change of
    the driver (its horizon-year index; for price elasticities, the parameter). Sorted by |elasticity|.
    Drivers of sectors without base energy use are skipped (their elasticity is 0 by construction).
    """
    fn = RESULTS.get(result) if isinstance(result, str) else result
    if fn is None:
        raise InvalidParameterValue(f"unknown result {result!r}; expected one of {', '.join(RESULTS)}")
    if not 0 < step < 1:
        raise InvalidParameterValue(f"step must be in (0, 1), got {step}")
    years = scenario.horizon_year - base_year
    r0 = fn(forecast(base, base_year, scenario))
    if names is None:
        final = _calibrate(base).final.sum(axis=1)
        active = tuple(s for s in SECTORS if final[s] != 0)
        io_leaves = {leaf for s in (scenario.input_output.sectors if scenario.input_output else ())
                     for leaf in expand_sector(s)}
        names = [d for d in drivers(scenario, active) if d.removeprefix("activity:") not in io_leaves]
    rows = []
    for name in names:
        lo = fn(forecast(base, base_year, perturb(scenario, name, 1 - step, years)))
        hi = fn(forecast(base, base_year, perturb(scenario, name, 1 + step, years)))
        el = (hi - lo) / r0 / (2 * step) if r0 else float("nan")
        rows.append({"driver": name, "low": lo, "base": r0, "high": hi, "elasticity": el})
    table = pd.DataFrame(rows, columns=["driver", "low", "base", "high", "elasticity"])
    order = table["elasticity"].abs().sort_values(ascending=False, kind="stable").index
    return table.loc[order].reset_index(drop=True)
