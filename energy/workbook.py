"""Read a regional fuel and energy balance workbook (the Moscow Oblast layout): the consolidated sheet `Баланс`
and every carrier sheet with its `В баланс` column and the value of each statistical form, plus the defects
found while reading. Values are Excel's cached results (the files carry them); formulas are kept as provenance.
"""

from __future__ import annotations

import math
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
import pandas as pd
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException

from energy import layout
from energy.carriers import Carrier, carrier_for_sheet
from layers.errors import InvalidParameterValue

BALANCE_SHEET = "Баланс"
BALANCE_COLUMN = "В баланс"
TOLERANCE = 0.05  # thousand tce: the workbooks round to 0.01; sums of ~30 rounded cells may drift this much
# Defects that refuse the file: a dropped row or a text in a value cell would store a wrong balance silently.
FATAL_DEFECTS = ("unmatched_row", "not_a_number")


@dataclass
class Defect:
    kind: str
    message: str
    sheet: str | None = None
    cell: str | None = None
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "sheet": self.sheet, "cell": self.cell, **self.details}


@dataclass
class CarrierSheet:
    name: str
    carrier: Carrier
    title: str
    forms: list[str]  # headers after `В баланс`, as written
    values: pd.DataFrame  # index = row codes, columns = [BALANCE_COLUMN, *forms]; NaN = empty
    cells: dict[tuple[str, str], str]  # (row code, column) -> "B12"
    labels: dict[str, str]  # row code -> label as written
    coefficient: float | None = None  # tce per natural unit, if the sheet states one


@dataclass
class WorkbookData:
    path: Path
    year: int
    region: str | None
    balance: pd.DataFrame
    cells: dict[tuple[str, str], dict]  # (row, column) -> {"cell", "value", "formula"?}
    sheets: dict[str, CarrierSheet]
    defects: list[Defect]


def _num(v: object) -> float:
    if v is None or v == "":
        return math.nan
    if isinstance(v, bool):
        return math.nan
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return float(str(v).replace(",", ".").replace("\xa0", "").replace(" ", ""))
    except ValueError:
        return math.nan


def _cell_num(ws, r: int, c: int, defects: list[Defect]) -> float:
    """_num, but a text that is no number ("n/a", "12,3,4") is a `not_a_number` defect, not an empty cell."""
    v = ws.cell(r, c).value
    out = _num(v)
    if math.isnan(out) and isinstance(v, str) and v.strip():
        defects.append(Defect("not_a_number", f"{v!r} is not a number", ws.title, f"{get_column_letter(c)}{r}"))
    return out


def year_from_name(path: Path) -> int | None:
    m = re.search(r"(?<!\d)(19\d\d|20\d\d)(?!\d)", path.stem)
    return int(m.group(1)) if m else None


def _open(path: Path) -> tuple[openpyxl.Workbook, openpyxl.Workbook]:
    try:
        return (openpyxl.load_workbook(path, data_only=True, read_only=False),
                openpyxl.load_workbook(path, data_only=False, read_only=False))
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, InvalidFileException) as exc:
        raise InvalidParameterValue(f"{path.name}: not a readable .xlsx workbook ({exc})", file=str(path)) from exc


def read_workbook(path: str | Path) -> WorkbookData:
    path = Path(path)
    values, formulas = _open(path)
    if BALANCE_SHEET not in values.sheetnames:
        raise InvalidParameterValue(f"{path.name}: no sheet {BALANCE_SHEET!r} (sheets: {', '.join(values.sheetnames)})",
                                    file=str(path))
    defects: list[Defect] = []
    year = year_from_name(path)
    balance, cells, region, title_year = _read_balance(values[BALANCE_SHEET], formulas[BALANCE_SHEET], defects,
                                                       year)
    if year is None:
        if title_year is None:
            raise InvalidParameterValue(f"{path.name}: no year in the file name nor in the title of {BALANCE_SHEET!r}")
        year = title_year
    elif title_year is not None and title_year != year:
        defects.append(Defect("year_cell", f"title says {title_year}, file name says {year}", BALANCE_SHEET))
    sheets: dict[str, CarrierSheet] = {}
    for name in values.sheetnames:
        if name == BALANCE_SHEET:
            continue
        carrier = carrier_for_sheet(name)
        if carrier is None:
            defects.append(Defect("unknown_sheet", f"sheet {name!r} is no known carrier; skipped", name))
            continue
        sheet = _read_carrier_sheet(values[name], formulas[name], carrier, defects)
        if sheet is not None:
            sheets[name] = sheet
    fatal = [d for d in defects if d.kind in FATAL_DEFECTS]
    if fatal:
        errors = [f"sheet {d.sheet!r}, cell {d.cell}: {d.message}" for d in fatal]
        raise InvalidParameterValue(f"{path.name}: {len(errors)} error(s): " + "; ".join(errors[:20])
                                    + ("; ..." if len(errors) > 20 else ""), file=str(path), errors=errors)
    _check_coefficients(sheets, defects)
    _check_consolidated_against_sheets(balance, cells, sheets, defects)
    _check_identities(balance, defects)
    _check_form_cells(balance, cells, defects)
    return WorkbookData(path, year, region, balance, cells, sheets, defects)


def _read_balance(ws, wf, defects: list[Defect], file_year: int | None):
    header_row, col_of = None, {}
    for r in range(1, 11):
        found = {layout.column_code(ws.cell(r, c).value): c for c in range(1, ws.max_column + 1)}
        found.pop(None, None)
        if len(found) >= 8:
            header_row, col_of = r, found
            break
    if header_row is None:
        raise InvalidParameterValue(f"sheet {BALANCE_SHEET!r}: no header row with the carrier columns "
                                    f"({', '.join(c.ru for c in layout.COLUMN_DEFS)}) in rows 1-10")
    region, title_year = None, None
    for r in range(1, header_row):
        for c in range(1, ws.max_column + 1):
            v = ws.cell(r, c).value
            if isinstance(v, str) and (m := re.search(r"(19\d\d|20\d\d)\s*год", v)):
                title_year = int(m.group(1))
            elif isinstance(v, str) and re.search(r"област|край|республик|округ|город", v, re.I):
                region = v.strip(" .")
    year_col = next((c for c in range(1, ws.max_column + 1)
                     if layout.normalize_label(ws.cell(header_row, c).value) == "год"), None)
    balance = layout.empty_balance()
    cells: dict[tuple[str, str], dict] = {}
    wrong_years: list[str] = []
    for r in range(header_row + 1, ws.max_row + 1):
        label = ws.cell(r, 1).value
        if label is None or isinstance(label, (int, float)):
            continue
        code = _match_row(label, BALANCE_SHEET, f"A{r}", defects)
        if code is None:
            continue
        if year_col and file_year and (y := ws.cell(r, year_col).value) not in (None, file_year):
            wrong_years.append(f"{get_column_letter(year_col)}{r}={y}")
        for col, c in col_of.items():
            v = _cell_num(ws, r, c, defects)
            formula = wf.cell(r, c).value
            coord = f"{get_column_letter(c)}{r}"
            if isinstance(formula, str) and formula.startswith("=") and ws.cell(r, c).value is None:
                defects.append(Defect("no_cached_value", f"formula {formula} has no computed value", BALANCE_SHEET,
                                      coord))
            balance.at[code, col] = v
            prov = {"cell": coord, "value": None if math.isnan(v) else v}
            if isinstance(formula, str) and formula.startswith("="):
                prov["formula"] = formula
            cells[(code, col)] = prov
    if wrong_years:
        defects.append(Defect("year_cell", f"column 'Год' says {sorted(set(w.split('=')[1] for w in wrong_years))} "
                               f"in {len(wrong_years)} rows, the file name says {file_year}", BALANCE_SHEET,
                               wrong_years[0].split("=")[0], {"cells": [w.split("=")[0] for w in wrong_years]}))
    return balance, cells, region, title_year


def _match_row(label: object, sheet_name: str, cell: str, defects: list[Defect], sheet: bool = False) -> str | None:
    code = layout.row_code(label, sheet=sheet)
    if code is not None:
        return code
    code = layout.fuzzy_row_code(label, sheet=sheet)
    if code is None:
        defects.append(Defect("unmatched_row", f"row label {label!r} matches no balance row",
                              sheet_name, cell))
    else:
        defects.append(Defect("misspelt_row", f"row label {label!r} read as {code}", sheet_name, cell,
                              {"row": code}))
    return code


def _read_carrier_sheet(ws, wf, carrier: Carrier, defects: list[Defect]) -> CarrierSheet | None:
    header_row = next((r for r in range(1, 8) for c in range(1, ws.max_column + 1)
                       if layout.normalize_label(ws.cell(r, c).value) == layout.normalize_label(BALANCE_COLUMN)), None)
    if header_row is None:
        defects.append(Defect("no_header", f"no {BALANCE_COLUMN!r} header in rows 1-7; sheet skipped", ws.title))
        return None
    headers: dict[int, str] = {}
    coefficient = None
    for c in range(2, ws.max_column + 1):
        h = ws.cell(header_row, c).value
        if h is None or not str(h).strip():
            continue
        h = " ".join(str(h).split())
        if re.search(r"коэф|к-т пересч", h, re.I):  # a stated coefficient column / cell, if a workbook has one
            coefficient = _num(ws.cell(header_row + 1, c).value)
            continue
        headers[c] = BALANCE_COLUMN if layout.normalize_label(h) == layout.normalize_label(BALANCE_COLUMN) else h
    rows: dict[str, dict[str, float]] = {}
    cells: dict[tuple[str, str], str] = {}
    labels: dict[str, str] = {}
    override = {"electricity": {"production": "electricity_production", "primary_consumption": "total_supply"},
                "heat": {"production": "heat_production", "primary_consumption": "total_supply"}
                }.get(carrier.code, {})
    for r in range(header_row + 1, ws.max_row + 1):
        label = ws.cell(r, 1).value
        if label is None or not str(label).strip():
            continue
        code = _match_row(label, ws.title, f"A{r}", defects, sheet=True)
        if code is None:
            continue
        code = override.get(code, code)
        if code in rows:
            defects.append(Defect("duplicate_row", f"row {code} appears twice (A{r} {label!r}); the first is kept",
                                  ws.title, f"A{r}"))
            continue
        labels[code] = str(label)
        rows[code] = {}
        for c, h in headers.items():
            rows[code][h] = _cell_num(ws, r, c, defects)
            cells[(code, h)] = f"{get_column_letter(c)}{r}"
            formula = wf.cell(r, c).value
            if isinstance(formula, str) and formula.startswith("=") and ws.cell(r, c).value is None:
                defects.append(Defect("no_cached_value", f"formula {formula} has no computed value", ws.title,
                                      cells[(code, h)]))
    columns = list(dict.fromkeys(headers.values()))
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=columns).astype(float)
    title = str(ws.cell(header_row, 1).value or "").strip()
    return CarrierSheet(ws.title, carrier, title, [h for h in columns if h != BALANCE_COLUMN], frame, cells, labels,
                        coefficient)


def _check_coefficients(sheets: dict[str, CarrierSheet], defects: list[Defect]) -> None:
    """The same carrier (same balance column and title) stated with different coefficients on two sheets."""
    by_title: dict[str, list[CarrierSheet]] = {}
    for s in sheets.values():
        if s.coefficient is not None and not math.isnan(s.coefficient):
            by_title.setdefault(layout.normalize_label(s.title), []).append(s)
    for group in by_title.values():
        if len({round(s.coefficient, 6) for s in group}) > 1:
            defects.append(Defect("coefficient_mismatch", "coefficient differs between sheets: " + ", ".join(
                f"{s.name}={s.coefficient}" for s in group), group[1].name))


# How a carrier-sheet row lands in the consolidated balance: (balance row, balance column or None = the carrier's).
def sheet_row_target(carrier_code: str, code: str) -> tuple[str, str] | None:
    column = {"coal_and_products": "coal", "petroleum_products": "petroleum_products", "natural_gas": "natural_gas",
              "other_solid_fuel": "other_solid_fuel", "electricity": "electricity", "heat": "heat"}.get(carrier_code)
    if column is None:
        return None  # component sheets (Бензин, Кокс, ...) reach the balance through their aggregate sheet
    if code == "hydro_generation":
        return ("production", "hydro_renewables")
    if code in layout.ROW:
        return (code, column)
    return None


def _check_consolidated_against_sheets(balance, cells, sheets, defects: list[Defect]) -> None:
    """Every consolidated cell that a carrier sheet's `В баланс` value feeds must equal it (with the Order's sign).
    A ratio far from 1 would be a different coefficient; any difference is a copy or formula error."""
    for s in sheets.values():
        if BALANCE_COLUMN not in s.values.columns:
            continue
        recovery = s.values[BALANCE_COLUMN].get("heat_recovery", math.nan)
        for code, v in s.values[BALANCE_COLUMN].items():
            target = sheet_row_target(s.carrier.code, code)
            if target is None or math.isnan(v):
                continue
            row, col = target
            if row == "heat_electric_boilers" and not math.isnan(recovery):
                v += recovery  # K15 = Тепло!B6 + Тепло!B7: electric boilers and heat recovery together
            # transformation rows: the sheets hold the input, negative in the balance (C19 = -Уголь_пр!B17)
            sign = layout.expected_sign(row, col) or (-1 if layout.ROW[row].parent == "fuel_transformation" else 1)
            expected, actual = sign * v, balance.at[row, col]
            if math.isnan(actual):
                actual = 0.0
            if abs(expected - actual) > TOLERANCE:
                ratio = actual / expected if expected else None
                defects.append(Defect(
                    "consolidated_mismatch",
                    f"{BALANCE_SHEET}!{cells.get((row, col), {}).get('cell')} ({row}/{col}) = {actual:g}, but "
                    f"{s.name}!{s.cells[(code, BALANCE_COLUMN)]} gives {expected:g}"
                    + (f" (ratio {ratio:.4f})" if ratio is not None else ""),
                    BALANCE_SHEET, cells.get((row, col), {}).get("cell"),
                    {"row": row, "column": col, "balance_value": actual, "sheet_value": expected,
                     "source_sheet": s.name, "source_cell": s.cells[(code, BALANCE_COLUMN)], "ratio": ratio}))


def _check_identities(balance: pd.DataFrame, defects: list[Defect]) -> None:
    b = balance.fillna(0.0)
    for parent in layout.ROWS:
        kids = layout.children(parent)
        if not kids:
            continue
        for col in layout.COLUMNS:
            total, parts = b.at[parent, col], b.loc[kids, col].sum()
            if abs(total - parts) > TOLERANCE:
                defects.append(Defect("row_identity", f"{parent}/{col} = {total:g} but its sub-rows sum to "
                                      f"{parts:g}", BALANCE_SHEET, None,
                                      {"row": parent, "column": col, "difference": total - parts}))
    for row in layout.ROWS:
        total, parts = b.at[row, "total"], b.loc[row, list(layout.CARRIER_COLUMNS)].sum()
        if abs(total - parts) > TOLERANCE:
            defects.append(Defect("total_identity", f"{row}/total = {total:g} but the carriers sum to {parts:g}",
                                  BALANCE_SHEET, None, {"row": row, "difference": total - parts}))


def _check_form_cells(balance: pd.DataFrame, cells, defects: list[Defect]) -> None:
    for row in layout.ROWS:
        for col in layout.COLUMNS:
            v = balance.at[row, col]
            if math.isnan(v) or abs(v) < 1e-9:
                continue
            cell = cells.get((row, col), {}).get("cell")
            if not layout.form_has_cell(row, col):
                defects.append(Defect("cell_outside_form", f"{row}/{col} = {v:g}: the Order's form has no such cell",
                                      BALANCE_SHEET, cell, {"row": row, "column": col, "value": v}))
            sign = layout.expected_sign(row, col)
            if sign is not None and v * sign < 0 and abs(v) > TOLERANCE:
                defects.append(Defect("sign", f"{row}/{col} = {v:g}: must be {'positive' if sign > 0 else 'negative'}",
                                      BALANCE_SHEET, cell, {"row": row, "column": col, "value": v}))
