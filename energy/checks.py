"""Arithmetic checks of a fuel and energy balance (ТЭБ, Minenergo Order No. 1169).

A balance is a DataFrame of floats in thousand tce: index = row codes, columns = column codes, NaN = empty.
Signs follow the regional workbooks: outflow, transformation inputs, own use and losses are negative.
Empty cells count as 0 in every identity; an identity whose cells are all empty is skipped.

The default tolerance, 0.05 thousand tce (50 tce), is the rounding budget of the workbooks: they hold values
rounded to 0.01 thousand tce, and an identity over up to ten rounded terms can drift by 10 x 0.005 = 0.05.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from layers.errors import InvalidParameterValue

# TODO: take these from energy.layout once it lands (written concurrently by another helper).
CARRIERS: tuple[str, ...] = (
    "coal", "crude_oil", "petroleum_products", "natural_gas", "other_solid_fuel",
    "hydro_renewables", "nuclear", "electricity", "heat",
)
TOTAL = "total"
RESOURCE_TERMS: tuple[str, ...] = ("production", "inflow", "outflow", "stock_change")
# primary + Σ transformation/own use/losses (negative inputs, positive outputs) − final = discrepancy.
DISTRIBUTION_TERMS: tuple[str, ...] = (
    "primary_consumption", "electricity_production", "heat_production", "fuel_transformation", "own_use", "losses",
)
CHILDREN: dict[str, tuple[str, ...]] = {
    "heat_production": ("heat_chp", "heat_boilers", "heat_electric_boilers"),
    "fuel_transformation": ("oil_refining", "gas_processing", "coal_enrichment"),
    "final_consumption": (
        "agriculture", "industry", "construction", "transport", "services", "households", "non_energy", "other",
    ),
    "industry": (
        "industry_mining", "industry_manufacturing", "industry_energy_supply", "industry_water_waste",
        "industry_other",
    ),
    "transport": ("transport_rail", "transport_pipeline", "transport_road", "transport_other"),
}
TRANSFORMATION_ROWS: tuple[str, ...] = (
    "electricity_production", "heat_production", "heat_chp", "heat_boilers", "heat_electric_boilers",
    "fuel_transformation", "oil_refining", "gas_processing", "coal_enrichment",
)
# Electricity and heat are secondary: they are made in transformation rows, never "produced" as primary energy.
SECONDARY_PRODUCTION: frozenset[tuple[str, str]] = frozenset({("production", "electricity"), ("production", "heat")})

# Leaf carrier sheets of the Moscow Oblast workbooks and the consolidated column each rolls up into
# (verified on 2016-2020: e.g. 2019 coal inflow 599.37 = Уголь 599.37 + Кокс 0 + Коксовый газ 0).
LEAF_ROLL_UP: dict[str, str] = {
    "Уголь": "coal", "Кокс": "coal", "Коксовый газ": "coal",
    "Бензин": "petroleum_products", "Дизель": "petroleum_products", "Мазут": "petroleum_products",
    "ТПБ": "petroleum_products", "СУГ": "petroleum_products",
    "Пр-й газ": "natural_gas",
    "Пр.тв.т. ": "other_solid_fuel", "Пеллеты": "other_solid_fuel", "Древесина": "other_solid_fuel",
    "Электро": "electricity", "Тепло": "heat",
}
# The workbooks' own intermediate aggregate sheets (one per consolidated column).
AGGREGATE_ROLL_UP: dict[str, str] = {
    "Уголь_пр": "coal", "Нефтепродукты": "petroleum_products", "ПТТ": "other_solid_fuel",
    "Пр-й газ": "natural_gas", "Электро": "electricity", "Тепло": "heat",
}

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Finding:
    """One violated check at one cell; difference = actual − expected."""

    check: str
    row: str
    column: str
    expected: float
    actual: float
    difference: float
    severity: str
    message: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def findings_frame(findings: Iterable[Finding]) -> pd.DataFrame:
    """Findings as a table (one line per finding), for reports."""
    cols = ["check", "row", "column", "expected", "actual", "difference", "severity", "message"]
    return pd.DataFrame([f.as_dict() for f in findings], columns=cols)


def _validate(balance: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    if not isinstance(balance, pd.DataFrame):
        raise InvalidParameterValue("A balance must be a table (DataFrame) of rows x columns.")
    if not np.isfinite(tolerance) or tolerance < 0:
        raise InvalidParameterValue(f"tolerance must be a non-negative number of thousand tce, got {tolerance!r}.")
    try:
        return balance.astype(float)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(f"A balance must hold numbers (thousand tce) or empty cells: {exc}") from exc


def _cell(b: pd.DataFrame, row: str, col: str) -> float:
    """Value of a cell, NaN when the row or column is absent or the cell empty."""
    if row in b.index and col in b.columns:
        return float(b.at[row, col])
    return np.nan


def _sum(values: Iterable[float]) -> float:
    return float(np.nansum(list(values)))


def _identity(check: str, row: str, col: str, expected: float, actual: float, tolerance: float,
              message: str, severity: str = ERROR) -> Finding | None:
    diff = actual - expected
    if abs(diff) > tolerance:
        return Finding(check, row, col, expected, actual, diff, severity, message)
    return None


def check_resources(b: pd.DataFrame, tolerance: float) -> list[Finding]:
    """primary_consumption = production + inflow + outflow + stock_change, per column."""
    out = []
    for col in b.columns:
        terms = [_cell(b, r, col) for r in RESOURCE_TERMS]
        actual = _cell(b, "primary_consumption", col)
        if np.isnan(actual) and all(np.isnan(terms)):
            continue
        f = _identity("resources", "primary_consumption", col, _sum(terms), 0.0 if np.isnan(actual) else actual,
                      tolerance, "primary consumption differs from production + inflow + outflow + stock change")
        out += [f] if f else []
    return out


def distribution_residual(b: pd.DataFrame, col: str) -> float:
    """primary + electricity/heat production + fuel transformation + own use + losses − final consumption."""
    return _sum(_cell(b, r, col) for r in DISTRIBUTION_TERMS) - np.nan_to_num(_cell(b, "final_consumption", col))


def check_distribution(b: pd.DataFrame, tolerance: float) -> list[Finding]:
    """The recorded statistical discrepancy must be the residual of distribution; a non-zero one is a warning."""
    out = []
    for col in b.columns:
        cells = [_cell(b, r, col) for r in (*DISTRIBUTION_TERMS, "final_consumption", "statistical_discrepancy")]
        if all(np.isnan(cells)):
            continue
        residual = distribution_residual(b, col)
        recorded = np.nan_to_num(_cell(b, "statistical_discrepancy", col))
        f = _identity("distribution", "statistical_discrepancy", col, residual, recorded, tolerance,
                      "recorded statistical discrepancy is not the residual of the distribution identity")
        out += [f] if f else []
        f = _identity("discrepancy", "statistical_discrepancy", col, 0.0, residual, tolerance,
                      "energy unaccounted for (non-zero statistical discrepancy)", WARNING)
        out += [f] if f else []
    return out


def check_subrows(b: pd.DataFrame, tolerance: float) -> list[Finding]:
    """Every parent row equals the sum of its child rows, per column."""
    out = []
    for parent, children in CHILDREN.items():
        present = [c for c in children if c in b.index]
        if parent not in b.index or not present:
            continue
        for col in b.columns:
            terms = [_cell(b, c, col) for c in present]
            actual = _cell(b, parent, col)
            if np.isnan(actual) and all(np.isnan(terms)):
                continue
            f = _identity("subrows", parent, col, _sum(terms), np.nan_to_num(actual), tolerance,
                          f"{parent} differs from the sum of {', '.join(present)}")
            out += [f] if f else []
    return out


def check_total(b: pd.DataFrame, tolerance: float) -> list[Finding]:
    """The total column equals the sum of the carrier columns, for every row."""
    if TOTAL not in b.columns:
        return []
    carriers = [c for c in CARRIERS if c in b.columns]
    out = []
    for row in b.index:
        terms = [_cell(b, row, c) for c in carriers]
        actual = _cell(b, row, TOTAL)
        if np.isnan(actual) and all(np.isnan(terms)):
            continue
        f = _identity("total", row, TOTAL, _sum(terms), np.nan_to_num(actual), tolerance,
                      "total differs from the sum of the carrier columns")
        out += [f] if f else []
    return out


def check_transformation(b: pd.DataFrame, tolerance: float) -> list[Finding]:
    """Transformation never creates energy: per row, outputs + inputs (carriers summed) must be <= 0."""
    carriers = [c for c in CARRIERS if c in b.columns]
    out = []
    for row in TRANSFORMATION_ROWS:
        if row not in b.index:
            continue
        net = _sum(_cell(b, row, c) for c in carriers)
        if net > tolerance:
            out.append(Finding("transformation", row, TOTAL, 0.0, net, net, ERROR,
                               "outputs exceed inputs: the row creates energy (an input is missing or an output "
                               "overstated)"))
    return out


def check_forbidden(b: pd.DataFrame, forbidden: Iterable[tuple[str, str]], tolerance: float) -> list[Finding]:
    """Cells that must stay empty; 0 counts as empty because the workbooks write 0 for empty cells."""
    out = []
    for row, col in forbidden:
        v = _cell(b, row, col)
        if not np.isnan(v) and abs(v) > tolerance:
            out.append(Finding("forbidden", row, col, 0.0, v, v, ERROR, "this cell must be empty"))
    return out


def check(balance: pd.DataFrame, tolerance: float = 0.05,
          forbidden: Iterable[tuple[str, str]] = ()) -> list[Finding]:
    """All arithmetic checks of one balance; tolerance in thousand tce (see the module docstring)."""
    b = _validate(balance, tolerance)
    forbidden = list(forbidden)
    bad = [cell for cell in forbidden if not (isinstance(cell, tuple) and len(cell) == 2)]
    if bad:
        raise InvalidParameterValue(f"forbidden cells must be (row, column) pairs, got {bad[:3]!r}.")
    return [
        *check_resources(b, tolerance), *check_distribution(b, tolerance), *check_subrows(b, tolerance),
        *check_total(b, tolerance), *check_transformation(b, tolerance),
        *check_forbidden(b, forbidden, tolerance),
    ]


def check_carriers(balance: pd.DataFrame, carriers: Mapping[str, pd.Series],
                   roll_up: Mapping[str, str] = LEAF_ROLL_UP, tolerance: float = 0.05) -> list[Finding]:
    """Each consolidated column equals the sum of its carriers' chosen (`В баланс`) values, in tce.

    `carriers` maps a carrier (sheet) name to its values indexed by row code, already in thousand tce and with the
    balance's signs. Only carriers named in `roll_up` count; a row no carrier of a column reports is skipped.
    The finding's message names the carriers summed.
    """
    b = _validate(balance, tolerance)
    unknown = sorted(set(roll_up.values()) - set(CARRIERS))
    if unknown:
        raise InvalidParameterValue(f"roll_up names unknown balance columns: {unknown}.")
    out = []
    for col in dict.fromkeys(roll_up.values()):
        names = [n for n, c in roll_up.items() if c == col and n in carriers]
        if not names:
            continue
        frame = pd.concat({n: carriers[n].astype(float) for n in names}, axis=1)
        for row, values in frame.iterrows():
            if values.isna().all():
                continue
            expected = float(values.sum())
            f = _identity("carriers", str(row), col, expected, np.nan_to_num(_cell(b, str(row), col)), tolerance,
                          f"column differs from the sum of carriers {' + '.join(names)}")
            out += [f] if f else []
    return out
