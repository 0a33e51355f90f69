"""CO2 emissions from fuel combustion in a fuel and energy balance (thousand tce).

Method (IPCC 2006 Guidelines, Vol. 2 Energy, Ch. 1 "Introduction", Tier 1): emissions = fuel
combusted (TJ) × default CO2 emission factor (kg CO2/TJ), oxidation factor 1.
1 tce = 29.3076 GJ, so 1 thousand tce = 29.3076 TJ.

What is counted:
- final consumption by sector (leaf rows; `non_energy` excluded: feedstock carbon is stored in
  products, not burned — IPCC Vol. 2 Ch. 1 §1.2 excludes it from fuel combustion);
- transformation that burns fuel: electricity production and heat production (CHP, boiler houses,
  electric boilers), and fuel own use of the energy sector;
- not counted: `fuel_transformation` (coal enrichment, gas processing, oil refining convert fuel
  into fuel; their own combustion, if any, is reported under own use), losses (fugitive, not
  combustion), electricity and heat (secondary carriers: their CO2 is at the plants).
Biomass (`other_solid_fuel`, taken as wood by default) is reported separately as biogenic CO2
and not added to the total (IPCC Vol. 2 Ch. 1 §1.4.2.2 — biomass CO2 is a memo item).

Emission factors: IPCC 2006 Vol. 2 Ch. 1, Table 1.4 "Default CO2 emission factors for combustion"
(pp. 1.23–1.24). The balance carries aggregates, so `petroleum_products` uses a weighted mix of
product factors (default: all gas/diesel oil) and `coal` one coal type (default other bituminous).
Russian Order of the Ministry of Natural Resources No. 371 of 27.05.2022: its table of default
CO2 factors for stationary combustion could not be read with the reference search available when
this module was written, so no value from it is encoded here (none is guessed). A user who has the
Order's values passes them with `factors=` (`carrier_factors(overrides=...)`), citing them.

Indirect emissions: a grid factor (t CO2/MWh) and a heat factor (t CO2/Gcal) from the balance's
own production, then consumption × factor by sector. CHP fuel is allocated between electricity and
heat either as the balance reports it (the Minenergo 1169 form already splits CHP fuel between the
rows "electricity production" and "heat production — CHP") or by the physical (energy-content)
method: the pooled fuel of electricity production and CHP heat is split in proportion to the
energy of the two outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from energy.scenarios import FUELS, SECTOR_PARENTS
from layers.errors import InvalidParameterValue

TJ_PER_THOUSAND_TCE = 29.3076  # 1 tce = 7,000 kcal = 29.3076 GJ
GJ_PER_MWH = 3.6
GJ_PER_GCAL = 4.1868
# thousand tce -> MWh: 29,307.6 GJ / 3.6 GJ per MWh
MWH_PER_THOUSAND_TCE = TJ_PER_THOUSAND_TCE * 1000 / GJ_PER_MWH
GCAL_PER_THOUSAND_TCE = TJ_PER_THOUSAND_TCE * 1000 / GJ_PER_GCAL  # = 7,000 Gcal (1 tce = 7 Gcal)

_IPCC_TABLE_1_4 = "IPCC 2006 GL Vol. 2 Ch. 1, Table 1.4 (pp. 1.23–1.24), default value"


@dataclass(frozen=True)
class EmissionFactor:
    fuel: str
    kg_co2_per_tj: float
    source: str
    biogenic: bool = False


# Default CO2 emission factors, kg CO2 / TJ (net calorific basis).
IPCC_2006: dict[str, EmissionFactor] = {
    "natural_gas": EmissionFactor("Natural gas", 56_100, _IPCC_TABLE_1_4),
    "anthracite": EmissionFactor("Anthracite", 98_300, _IPCC_TABLE_1_4),
    "other_bituminous_coal": EmissionFactor("Other bituminous coal", 94_600, _IPCC_TABLE_1_4),
    "motor_gasoline": EmissionFactor("Motor gasoline", 69_300, _IPCC_TABLE_1_4),
    "gas_diesel_oil": EmissionFactor("Gas/diesel oil", 74_100, _IPCC_TABLE_1_4),
    "residual_fuel_oil": EmissionFactor("Residual fuel oil", 77_400, _IPCC_TABLE_1_4),
    "lpg": EmissionFactor("Liquefied petroleum gases", 63_100, _IPCC_TABLE_1_4),
    "wood": EmissionFactor("Wood/wood waste", 112_000, _IPCC_TABLE_1_4 + "; biogenic", biogenic=True),
}

# Rows whose fuel input is combustion. Final leaf rows: SECTOR rows without non_energy.
FINAL_COMBUSTION_ROWS: tuple[str, ...] = (
    "agriculture", *SECTOR_PARENTS["industry"], "construction", *SECTOR_PARENTS["transport"],
    "services", "households", "other",
)
TRANSFORMATION_COMBUSTION_ROWS: tuple[str, ...] = (
    "electricity_production", "heat_chp", "heat_boilers", "heat_electric_boilers", "own_use",
)
ALLOCATION_METHODS = ("as_reported", "physical")


def carrier_factors(
    coal: str = "other_bituminous_coal",
    petroleum_mix: Mapping[str, float] | None = None,
    other_solid_fuel: str = "wood",
    crude_oil: str | None = None,
    overrides: Mapping[str, EmissionFactor] | None = None,
) -> dict[str, EmissionFactor]:
    """Emission factor of each fuel column of the balance.

    `petroleum_mix` weights product factors (keys of IPCC_2006) by their share of the energy of
    `petroleum_products`, e.g. {"motor_gasoline": 0.4, "gas_diesel_oil": 0.4, "residual_fuel_oil": 0.2}.
    Crude oil is not burned in a regional balance; give `crude_oil` a factor key if it is.
    Hydro/renewables and nuclear emit no combustion CO2.
    """
    mix = dict(petroleum_mix or {"gas_diesel_oil": 1.0})
    total = sum(mix.values())
    if abs(total - 1.0) > 1e-6 or any(v < 0 for v in mix.values()):
        raise InvalidParameterValue(f"petroleum_mix shares must be ≥ 0 and sum to 1, sum to {total:.6f}")
    for key in [coal, other_solid_fuel, *mix] + ([crude_oil] if crude_oil else []):
        if key not in IPCC_2006:
            raise InvalidParameterValue(f"unknown emission factor {key!r}; expected one of {', '.join(IPCC_2006)}")
    pp = sum(IPCC_2006[k].kg_co2_per_tj * s for k, s in mix.items())
    pp_src = "; ".join(f"{s:g} × {IPCC_2006[k].fuel}" for k, s in mix.items()) + f" ({_IPCC_TABLE_1_4})"
    factors = {
        "coal": IPCC_2006[coal],
        "petroleum_products": EmissionFactor("Petroleum products (mix)", pp, pp_src),
        "natural_gas": IPCC_2006["natural_gas"],
        "other_solid_fuel": IPCC_2006[other_solid_fuel],
    }
    if crude_oil:
        factors["crude_oil"] = IPCC_2006[crude_oil]
    for carrier, f in (overrides or {}).items():
        if carrier not in FUELS:
            raise InvalidParameterValue(f"emission factor for {carrier!r}: not a fuel column")
        factors[carrier] = f
    return factors


def _value(balance: pd.DataFrame, row: str, col: str) -> float:
    if row not in balance.index or col not in balance.columns:
        return 0.0
    v = balance.at[row, col]
    return 0.0 if pd.isna(v) else float(v)


def combustion_tce(balance: pd.DataFrame, rows: tuple[str, ...]) -> pd.DataFrame:
    """Fuel burned (thousand tce, positive) by row and fuel column.

    Final consumption is positive in the balance; transformation inputs and own use negative.
    """
    out = pd.DataFrame(0.0, index=list(rows), columns=list(FUELS))
    for r in rows:
        for f in FUELS:
            v = _value(balance, r, f)
            out.at[r, f] = -min(v, 0.0) if r in TRANSFORMATION_COMBUSTION_ROWS else max(v, 0.0)
    return out


@dataclass(frozen=True)
class CO2Result:
    direct: pd.DataFrame  # t CO2 by row (sector / transformation) × fuel, plus "total" column; fossil only
    biogenic: pd.Series  # t CO2 of biomass by row (memo, not in totals)
    total_t: float  # fossil CO2 of all counted rows, t
    grid_factor_t_per_mwh: float
    heat_factor_t_per_gcal: float
    indirect: pd.DataFrame  # t CO2 of electricity and heat consumed, by final sector
    electricity_co2_t: float
    heat_co2_t: float


def emissions(
    balance: pd.DataFrame,
    factors: Mapping[str, EmissionFactor] | None = None,
    allocation: str = "as_reported",
    grid_factor: float | None = None,
) -> CO2Result:
    """CO2 of fuel combustion by row and fuel, grid and heat factors, indirect emissions by sector.

    The grid factor of the balance's own production is applied to all electricity consumed,
    imported included (a region importing most of its power may pass `grid_factor`, t CO2/MWh,
    e.g. of its interconnected power system, instead). Without local generation and without
    `grid_factor` the grid factor, and the indirect emissions of electricity, are NaN.
    """
    if allocation not in ALLOCATION_METHODS:
        raise InvalidParameterValue(f"allocation must be one of {', '.join(ALLOCATION_METHODS)}, got {allocation!r}")
    factors = dict(factors) if factors is not None else carrier_factors()
    rows = FINAL_COMBUSTION_ROWS + TRANSFORMATION_COMBUSTION_ROWS
    fuel = combustion_tce(balance, rows)
    ef = pd.Series({f: factors[f].kg_co2_per_tj if f in factors else 0.0 for f in FUELS})
    bio = pd.Series({f: bool(f in factors and factors[f].biogenic) for f in FUELS})
    # thousand tce × TJ/thousand tce × kg/TJ / 1000 kg/t = t CO2
    co2 = fuel * TJ_PER_THOUSAND_TCE * ef / 1000.0
    direct = co2.loc[:, ~bio].copy()
    direct["total"] = direct.sum(axis=1)
    biogenic = co2.loc[:, bio].sum(axis=1)

    e_out = max(_value(balance, "electricity_production", "electricity"), 0.0)
    chp_heat = max(_value(balance, "heat_chp", "heat"), 0.0)
    e_co2 = float(direct.at["electricity_production", "total"])
    chp_co2 = float(direct.at["heat_chp", "total"])
    if allocation == "physical" and e_out + chp_heat > 0:
        # Energy-content method: pooled fuel split by the outputs' energy (both in tce).
        pooled = e_co2 + chp_co2
        e_co2 = pooled * e_out / (e_out + chp_heat)
        chp_co2 = pooled - e_co2
    heat_rows = ("heat_boilers", "heat_electric_boilers")
    heat_co2 = chp_co2 + float(direct.loc[list(heat_rows), "total"].sum())
    h_out = chp_heat + sum(max(_value(balance, r, "heat"), 0.0) for r in heat_rows)
    grid = e_co2 / (e_out * MWH_PER_THOUSAND_TCE) if e_out > 0 else float("nan")
    if grid_factor is not None:
        if not grid_factor >= 0:
            raise InvalidParameterValue(f"grid_factor must be ≥ 0 t CO2/MWh, got {grid_factor}")
        grid = float(grid_factor)
    heat_f = heat_co2 / (h_out * GCAL_PER_THOUSAND_TCE) if h_out > 0 else float("nan")

    sectors = FINAL_COMBUSTION_ROWS + ("non_energy",)
    indirect = pd.DataFrame(0.0, index=list(sectors), columns=["electricity", "heat", "total"])
    for s in sectors:
        e_use = max(_value(balance, s, "electricity"), 0.0) * MWH_PER_THOUSAND_TCE
        h_use = max(_value(balance, s, "heat"), 0.0) * GCAL_PER_THOUSAND_TCE
        indirect.at[s, "electricity"] = e_use * grid if e_use else 0.0
        indirect.at[s, "heat"] = h_use * heat_f if h_use else 0.0
    indirect["total"] = indirect["electricity"] + indirect["heat"]
    return CO2Result(
        direct=direct,
        biogenic=biogenic,
        total_t=float(direct["total"].sum()),
        grid_factor_t_per_mwh=grid,
        heat_factor_t_per_gcal=heat_f,
        indirect=indirect,
        electricity_co2_t=e_co2,
        heat_co2_t=heat_co2,
    )


def total_co2_t(balance: pd.DataFrame, factors: Mapping[str, EmissionFactor] | None = None) -> float:
    """Fossil CO2 of fuel combustion, t (the scalar a sensitivity analysis can target)."""
    return emissions(balance, factors).total_t
