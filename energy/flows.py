"""The flows of a balance for a Sankey diagram: sources -> carriers -> transformation -> carriers -> final
sectors (electricity and heat produced join their carrier's node), with exports, own use, network losses,
conversion losses and the statistical discrepancy as side flows.

Thousand tce throughout; the balance follows the shared convention (index = row codes, columns = carrier codes,
outflow / transformation inputs / own use / losses negative)."""

from __future__ import annotations

import math

import pandas as pd

CARRIERS = ("coal", "crude_oil", "petroleum_products", "natural_gas", "other_solid_fuel", "hydro_renewables",
            "nuclear", "electricity", "heat")
TRANSFORMATIONS = ("electricity_production", "heat_production", "fuel_transformation")
SECTORS = ("agriculture", "industry", "construction", "transport", "services", "households", "non_energy", "other")
# Flows below this (thousand tce) are left out: they would be invisible hairlines.
MIN_FLOW = 0.01


def _value(balance: pd.DataFrame, row: str, column: str) -> float:
    if row not in balance.index or column not in balance.columns:
        return 0.0
    v = balance.at[row, column]
    return 0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def flows(balance: pd.DataFrame) -> list[dict]:
    """Links {"from", "to", "value"} (node names are codes: sources, carriers, transformation rows, sectors and
    the side flows exports, own_use, losses, conversion_losses, statistical_discrepancy, stock_build)."""
    links: list[dict] = []

    def add(src: str, dst: str, value: float) -> None:
        if value >= MIN_FLOW:
            links.append({"from": src, "to": dst, "value": round(value, 3)})

    for c in CARRIERS:
        add("production", c, _value(balance, "production", c))
        add("inflow", c, _value(balance, "inflow", c))
        stock = _value(balance, "stock_change", c)
        add("stock_draw", c, stock) if stock > 0 else add(c, "stock_build", -stock)
        add(c, "exports", -_value(balance, "outflow", c))
        add(c, "own_use", -_value(balance, "own_use", c))
        add(c, "losses", -_value(balance, "losses", c))
        for sector in SECTORS:
            add(c, sector, _value(balance, sector, c))
        discrepancy = _value(balance, "statistical_discrepancy", c)
        add(c, "statistical_discrepancy", discrepancy) if discrepancy > 0 else None
    for t in TRANSFORMATIONS:
        inputs = outputs = 0.0
        for c in CARRIERS:
            v = _value(balance, t, c)
            if v < 0:
                add(c, t, -v)
                inputs -= v
            elif v > 0:
                add(t, c, v)  # electricity and heat produced join their carrier's node
                outputs += v
        add(t, "conversion_losses", inputs - outputs)
    return links
