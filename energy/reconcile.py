"""Reconciliation of a balance: choosing among statistical forms, and least-squares balancing.

`choose` picks, per balance row of one carrier, the value of the most reliable form that reports it (an ordered
list of forms per row), and lists the forms that disagree with the choice. `least_squares` makes every linear
identity of a balance hold exactly with the smallest weighted correction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from energy.checks import CARRIERS, CHILDREN, DISTRIBUTION_TERMS, RESOURCE_TERMS, TOTAL
from layers.errors import InvalidParameterValue

# ---------------------------------------------------------------- choosing among forms

# Form names as in the workbook headers. Rationale: the form built for a flow reports it first —
# 23-Н (electricity statistics) for every electricity row; 1-ТЕП (heat supply) for heat output, inflow and
# losses; 4-ТЭР (fuel and energy use by organisations) for consumption; 4-Запасы (fuel stocks, receipts,
# use) for fuel inflow, outflow, stocks, production and boiler-house input (it covers every boiler house, 4-ТЭР
# only the organisations it samples); 22-ЖКХ (housing and utilities) for households;
# the gas supplier's report for gas inflow, since it meters every delivery into the region.
PRODUCTION_ROWS = ("production", "inflow", "outflow", "stock_change")
HEAT_SUPPLY_ROWS = ("heat_production", "heat_chp", "heat_boilers", "heat_electric_boilers", "inflow", "losses")
GAS_SUPPLIER = 'Отчет АО "Газпром промгаз"'


def default_priority(carrier: str) -> tuple[dict[str, list[str]], list[str]]:
    """(per-row ordered forms, fallback order) for a balance column code; see the rationale above."""
    if carrier == "electricity":
        return {"households": ["23-Н", "22-ЖКХ"]}, [
            "23-Н", "Московское РДУ", "6-ТП", "1-натура", "1-ТЕП", "ПАО Россети Мособлэнерго", "22-ЖКХ"]
    if carrier == "heat":
        rows = {r: ["1-ТЕП", "6-ТП", "1-натура"] for r in HEAT_SUPPLY_ROWS}
        rows["households"] = ["22-ЖКХ", "1-ТЕП", "4-ТЭР"]
        return rows, ["4-ТЭР", "1-ТЕП", "4-Запасы", "6-ТП", "22-ЖКХ", "1-натура"]
    rows = {r: ["4-Запасы", "4-ТЭР"] for r in (*PRODUCTION_ROWS, "heat_boilers")}
    rows["households"] = ["22-ЖКХ", "4-ТЭР", "4-Запасы"]
    if carrier == "natural_gas":
        rows["inflow"] = [GAS_SUPPLIER, "4-Запасы"]
        rows["households"] = ["22-ЖКХ", GAS_SUPPLIER, "4-ТЭР"]
    return rows, ["4-ТЭР", "4-Запасы", "6-ТП", "1-ТЕП", "22-ЖКХ", "1-натура"]


def _norm(form: str) -> str:
    # Headers vary between sheets and years: "4-запасы"/"4-Запасы", "1-ТЭП"/"1-ТЕП", trailing spaces.
    return " ".join(str(form).split()).upper().replace("ТЭП", "ТЕП")


@dataclass(frozen=True)
class Choice:
    """values: chosen value per row (NaN: nothing reported); provenance: per row the form and the rule
    ("priority", "fallback", "children", "none"); disagreements: forms off the choice by more than the tolerance."""

    values: pd.Series
    provenance: pd.DataFrame
    disagreements: pd.DataFrame


def choose(form_values: pd.DataFrame, priority: Mapping[str, Sequence[str]] | None = None,
           default_order: Sequence[str] | None = None, tolerance_pct: float = 5.0,
           zeros_as_missing: bool = True) -> Choice:
    """Choose one value per row of one carrier from the forms that report it.

    form_values: rows (row codes) x forms, NaN where a form says nothing. A row takes the first form of
    `priority[row]` that reports it ("priority"), else the first of `default_order` (then the remaining columns in
    their order) ("fallback"); a parent row nobody reports is the sum of its chosen child rows ("children").
    Forms are matched by name ignoring case, spacing and ТЭП/ТЕП spelling. With zeros_as_missing, a form's 0 on a
    row another form reports non-zero counts as "not reported" (the workbooks fill uncovered cells with 0).
    """
    if not isinstance(form_values, pd.DataFrame):
        raise InvalidParameterValue("form_values must be a table of rows x forms.")
    if not np.isfinite(tolerance_pct) or tolerance_pct < 0:
        raise InvalidParameterValue(f"tolerance_pct must be a non-negative percentage, got {tolerance_pct!r}.")
    try:
        fv = form_values.astype(float)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(f"form values must be numbers or empty: {exc}") from exc
    priority = dict(priority or {})
    unknown_rows = sorted(set(priority) - set(fv.index))
    if unknown_rows:
        raise InvalidParameterValue(f"priority names rows absent from the form values: {unknown_rows}.")
    by_norm = {_norm(c): c for c in fv.columns}
    fallback = [by_norm[_norm(f)] for f in (default_order or []) if _norm(f) in by_norm]
    fallback += [c for c in fv.columns if c not in fallback]

    values: dict[str, float] = {}
    prov: dict[str, tuple[str | None, str]] = {}

    def reported_in(row: str) -> pd.Series:
        reported = fv.loc[row].dropna()
        if zeros_as_missing and (reported != 0).any():
            reported = reported[reported != 0]
        return reported

    def resolve(row: str) -> float:
        if row in values:
            return values[row]
        reported = reported_in(row) if row in fv.index else pd.Series(dtype=float)
        ordered = [by_norm[_norm(f)] for f in priority.get(row, []) if _norm(f) in by_norm]
        hit = next((f for f in ordered if f in reported.index), None)
        rule = "priority"
        if hit is None:
            hit, rule = next((f for f in fallback if f in reported.index), None), "fallback"
        if hit is not None:
            values[row], prov[row] = float(reported[hit]), (hit, rule)
        else:
            kids = [resolve(c) for c in CHILDREN.get(row, ()) if c in fv.index]
            kids = [k for k in kids if not np.isnan(k)]
            values[row] = float(np.sum(kids)) if kids else np.nan
            prov[row] = (None, "children" if kids else "none")
        return values[row]

    for row in fv.index:
        resolve(row)
    chosen = pd.Series(values, dtype=float).reindex(fv.index)
    provenance = pd.DataFrame.from_dict(prov, orient="index", columns=["form", "rule"]).reindex(fv.index)

    rows = []
    for row in fv.index:
        c = chosen[row]
        if np.isnan(c):
            continue
        for form, v in reported_in(row).items():
            diff = v - c
            pct = abs(diff) / abs(c) * 100 if c != 0 else (0.0 if diff == 0 else np.inf)
            if pct > tolerance_pct:
                rows.append((row, form, v, c, diff, pct))
    disagreements = pd.DataFrame(rows, columns=["row", "form", "value", "chosen", "difference", "difference_pct"])
    return Choice(chosen, provenance, disagreements)


def compare_with(choice: Choice, reference: pd.Series, tolerance: float = 0.01) -> pd.DataFrame:
    """Choice against a reference choice (a workbook's `В баланс`), on rows where both have a value.

    tolerance 0.01 thousand tce: one unit of the workbooks' rounding.
    """
    ref = reference.astype(float).reindex(choice.values.index)
    both = ref.notna() & choice.values.notna()
    out = pd.DataFrame({"chosen": choice.values[both], "reference": ref[both]})
    out = out.join(choice.provenance)
    out["match"] = (out["chosen"] - out["reference"]).abs() <= tolerance
    return out


# ---------------------------------------------------------------- least squares

Cell = tuple[str, str]


def identities(balance: pd.DataFrame) -> list[tuple[str, dict[Cell, float]]]:
    """Linear identities Σ coef·cell = 0 among the rows and columns present (absent cells count as 0)."""
    rows, cols = set(balance.index), list(balance.columns)
    out: list[tuple[str, dict[Cell, float]]] = []

    def add(name: str, terms: dict[Cell, float]) -> None:
        terms = {cell: k for cell, k in terms.items() if cell[0] in rows and cell[1] in cols}
        if len(terms) > 1:
            out.append((name, terms))

    for col in cols:
        if "primary_consumption" in rows:
            add(f"resources[{col}]",
                {("primary_consumption", col): 1.0, **{(r, col): -1.0 for r in RESOURCE_TERMS}})
        if {"primary_consumption", "final_consumption"} <= rows:
            add(f"distribution[{col}]", {("statistical_discrepancy", col): 1.0, ("final_consumption", col): 1.0,
                                         **{(r, col): -1.0 for r in DISTRIBUTION_TERMS}})
        for parent, children in CHILDREN.items():
            if parent in rows and rows & set(children):
                add(f"subrows[{parent},{col}]", {(parent, col): 1.0, **{(c, col): -1.0 for c in children}})
    if TOTAL in cols:
        for row in balance.index:
            add(f"total[{row}]", {(row, TOTAL): 1.0, **{(row, c): -1.0 for c in CARRIERS}})
    return out


def _solve(a: np.ndarray, r: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Minimal Σ w·d² subject to a·d = r; w = 0 marks free (unpenalised) variables.

    Substituting d = z / sqrt(w) turns it into the minimum-norm solution of a rank-deficient system
    (the identities are redundant: the total column repeats the carriers), which lstsq gives directly.
    Free variables are eliminated by projecting onto the complement of their columns' span.
    """
    free = w == 0
    s = np.zeros_like(w)
    s[~free] = 1.0 / np.sqrt(w[~free])
    m = a[:, ~free] * s[~free]
    d = np.zeros_like(w)
    if free.any():
        af = a[:, free]
        proj = np.eye(len(r)) - af @ np.linalg.pinv(af)
        z = np.linalg.lstsq(proj @ m, proj @ r, rcond=None)[0]
        d[~free] = s[~free] * z
        d[free] = np.linalg.lstsq(af, r - a[:, ~free] @ d[~free], rcond=None)[0]
    else:
        d[~free] = s[~free] * np.linalg.lstsq(m, r, rcond=None)[0]
    return d


def least_squares(balance: pd.DataFrame, weights: pd.DataFrame | None = None, fixed: Iterable[Cell] = (),
                  discrepancy: Literal["zero", "free"] = "zero",
                  zeros_as_empty: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Smallest weighted correction making every identity hold exactly: (adjusted balance, adjustments).

    Identities: resources and distribution per column, parent = sum of children, total = sum of carriers.
    discrepancy="zero" sets the statistical discrepancy to 0 (every other cell absorbs it); "free" leaves it an
    unpenalised variable, so it remains the residual of distribution and only the other identities move cells.
    weights default to 1/max(|value|, 1)²: minimising Σ w·delta² then spreads relative corrections, so a
    large flow absorbs more in absolute terms than a small one (errors are taken proportional to the value); the
    floor 1 keeps small cells from becoming immovable. A weight of 0 marks a free cell. Fixed and empty cells keep
    their value; with zeros_as_empty (default) so do cells holding 0, which the workbooks write for "empty" (no
    nuclear 0 -> 0.003). adjustments lists every changed cell: row, column, before, after, delta.
    """
    if discrepancy not in ("zero", "free"):
        raise InvalidParameterValue(f'discrepancy must be "zero" or "free", got {discrepancy!r}.')
    if not isinstance(balance, pd.DataFrame):
        raise InvalidParameterValue("A balance must be a table (DataFrame) of rows x columns.")
    try:
        b = balance.astype(float)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(f"A balance must hold numbers or empty cells: {exc}") from exc
    fixed = set(fixed)
    bad = sorted(c for c in fixed if not (isinstance(c, tuple) and len(c) == 2 and c[0] in b.index
                                           and c[1] in b.columns))
    if bad:
        raise InvalidParameterValue(f"fixed cells not in the balance: {bad[:5]}.")
    w = b.abs().clip(lower=1.0) ** -2
    if weights is not None:
        given = weights.astype(float).reindex(index=b.index, columns=b.columns)
        if (given < 0).any().any() or np.isinf(given).any().any():
            raise InvalidParameterValue("weights must be finite and non-negative (0 marks a free cell).")
        w = given.fillna(w)

    x0 = b.copy()
    disc = "statistical_discrepancy"
    free_disc = set()
    if disc in b.index:
        for col in b.columns:
            if (disc, col) in fixed:
                continue
            if discrepancy == "zero":
                x0.at[disc, col] = 0.0 if not np.isnan(b.at[disc, col]) else np.nan
                fixed.add((disc, col))
            else:
                x0.at[disc, col] = np.nan_to_num(b.at[disc, col])
                free_disc.add((disc, col))

    ids = identities(b)
    variables = [(r, c) for r in b.index for c in b.columns
                 if (r, c) in free_disc or ((r, c) not in fixed and not np.isnan(x0.at[r, c])
                                            and not (zeros_as_empty and x0.at[r, c] == 0))]
    pos = {cell: i for i, cell in enumerate(variables)}
    a = np.zeros((len(ids), len(variables)))
    r = np.zeros(len(ids))
    for k, (_, terms) in enumerate(ids):
        for cell, coef in terms.items():
            value = np.nan_to_num(x0.at[cell])
            r[k] -= coef * value
            if cell in pos:
                a[k, pos[cell]] += coef
    wv = np.array([0.0 if cell in free_disc else w.at[cell] for cell in variables])
    d = _solve(a, r, wv) if variables else np.zeros(0)
    d += _solve(a, r - a @ d, wv) if variables else 0.0  # one step of iterative refinement
    if variables:
        # Drop rounding noise (|delta| ~ 1e-15 of the value) on cells no identity needs to move, if that costs nothing.
        x0v = np.array([np.nan_to_num(x0.at[cell]) for cell in variables])
        clean = np.where(np.abs(d) < 1e-12 * np.maximum(1.0, np.abs(x0v)), 0.0, d)
        if np.abs(a @ clean - r).max(initial=0.0) <= max(np.abs(a @ d - r).max(initial=0.0), 1e-10):
            d = clean

    residual = a @ d - r
    worst = np.argsort(-np.abs(residual))[:3]
    if len(residual) and np.abs(residual).max() > 1e-6 * max(1.0, float(np.nanmax(np.abs(b.to_numpy())))):
        names = [f"{ids[i][0]} off by {residual[i]:+.4f}" for i in worst if abs(residual[i]) > 1e-9]
        raise InvalidParameterValue("The identities cannot all hold with these cells fixed or empty: "
                                    + "; ".join(names) + ".")
    adjusted = x0.copy()
    for cell, delta in zip(variables, d, strict=True):
        adjusted.at[cell] = x0.at[cell] + delta
    changes = [(row, col, b.at[row, col], adjusted.at[row, col]) for row in b.index for col in b.columns
               if not (np.isnan(b.at[row, col]) and np.isnan(adjusted.at[row, col]))
               and np.nan_to_num(adjusted.at[row, col]) != np.nan_to_num(b.at[row, col])]
    adjustments = pd.DataFrame(changes, columns=["row", "column", "before", "after"])
    adjustments["delta"] = adjustments["after"] - adjustments["before"].fillna(0.0)
    return adjusted, adjustments
