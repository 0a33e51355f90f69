"""A balance as an XLSX workbook in the layout of Minenergo Order No. 1169 that `energy.workbook.read_workbook`
reads back to the same balance (round trip import -> export -> import):

- sheet `Баланс` laid out like the Moscow Oblast workbooks: J1 the region, K1 "<year> год", A2 the title, header
  row 3 (A3 "ТЭБ, тыс. т у.т.", B3 "Год", C3..L3 the carrier columns 1-9 and the total in the Order's order,
  M3 the Order's row number), row 4 the column numbers, rows 5-39 one per balance row: label in column A, the year
  in column B, values in thousand tce unrounded (the round trip is exact; the number format shows 2 decimals);
- one sheet per carrier sheet of the stored form values (`cdt.form_values` loaded from a workbook): A2 the title,
  B2 `В баланс`, C2... one column per statistical form, labels the reader maps back to the same row codes;
- sheet `Источники` with every cell's provenance, when given (the reader reports it as an unknown sheet, skipped).

The year: the reader takes it from the file name when the name has one, else from "<year> год" in K1. Save the
export as `file_name(year)` = `balance<year>.xlsx` (the name of the real workbooks) and both agree.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Iterable

import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import Engine, text

from energy import layout
from energy.carriers import CARRIER_DEFS, CARRIERS
from energy.workbook import BALANCE_COLUMN, BALANCE_SHEET

PROVENANCE_SHEET = "Источники"
UNIT = "тыс. т у.т."
HEADER_ROW = 3  # as in the real workbooks: the reader looks for the carrier header in rows 1-10
FIRST_ROW = 5  # row 4 holds the Order's column numbers
NUMBER_FORMAT = "#,##0.00"


def file_name(year: int) -> str:
    """The suggested file name: the reader takes the year from it (`balance2020.xlsx`, as the real workbooks)."""
    return f"balance{year}.xlsx"


def _year_in(title: str) -> int | None:
    years = re.findall(r"(?<!\d)(?:19|20)\d\d(?!\d)", title or "")
    return int(years[-1]) if years else None


def _value(v: object) -> float | None:
    if v is None:
        return None
    f = float(v)  # type: ignore[arg-type]
    return None if math.isnan(f) else f


# Carrier-sheet labels that read back to the same row code (see layout.row_code(sheet=True) and the reader's
# electricity/heat overrides, which map "production" and "primary_consumption" to other codes on those sheets).
_SHEET_ONLY_LABELS = dict(layout.SHEET_ONLY_ROWS)


def _sheet_label(code: str) -> str:
    if code in _SHEET_ONLY_LABELS:
        return _SHEET_ONLY_LABELS[code]
    return layout.ROW[code].ru


def _sheet_order(code: str) -> tuple[int, str]:
    """Balance rows in the Order's order; sheet-only rows after the row they refine."""
    after = {"hydro_generation": "production", "power_and_heat_inputs": "statistical_discrepancy",
             "heat_recovery": "heat_electric_boilers", "power_plants": "heat_production",
             "storage_and_communication": "transport", "total_supply": "stock_change"}
    base = after.get(code, code)
    index = layout.ROWS.index(base) if base in layout.ROWS else len(layout.ROWS)
    return (2 * index + (1 if code in after else 0), code)


def _write_balance_sheet(ws: Worksheet, balance: pd.DataFrame, title: str, year: int | None,
                         region: str | None) -> None:
    # Row 1 as in the workbooks: the reader takes the region from J1 and "<year> год" from K1 (J1 after A1: the
    # region wins over a title that also names one).
    ws["A1"] = title
    ws["A1"].font = Font(bold=True)
    if region:
        ws["J1"] = region
    if year is not None:
        ws["K1"] = f"{year} год"
    ws["A2"] = "Топливно-энергетический баланс (Приказ Минэнерго России от 29.10.2021 № 1169, приложение 1)"
    header = [f"ТЭБ, {UNIT}", "Год", *[layout.COLUMN[c].ru for c in layout.COLUMNS], "№ строки"]
    for c, h in enumerate(header, 1):
        cell = ws.cell(HEADER_ROW, c, h)
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="center")
    for c, code in enumerate(layout.COLUMNS, 3):
        ws.cell(HEADER_ROW + 1, c, layout.COLUMN[code].number)
    for i, code in enumerate(layout.ROWS):
        r = FIRST_ROW + i
        row = layout.ROW[code]
        depth = 0
        parent = row.parent
        while parent:
            depth, parent = depth + 1, layout.ROW[parent].parent
        label = ws.cell(r, 1, row.ru)
        label.alignment = Alignment(indent=2 * depth, wrap_text=True)  # an indent, not spaces: the label stays exact
        if year is not None:
            ws.cell(r, 2, year)
        for c, col in enumerate(layout.COLUMNS, 3):
            v = balance.at[code, col] if code in balance.index and col in balance.columns else None
            cell = ws.cell(r, c, _value(v))
            cell.number_format = NUMBER_FORMAT
        ws.cell(r, 3 + len(layout.COLUMNS), row.number)
    ws.column_dimensions["A"].width = 52
    for c in range(3, 3 + len(layout.COLUMNS)):
        ws.column_dimensions[ws.cell(HEADER_ROW, c).column_letter].width = 13
    ws.freeze_panes = ws.cell(FIRST_ROW, 3)


def _write_form_sheets(wb: Workbook, forms: Iterable[dict]) -> None:
    """One sheet per carrier sheet: `В баланс` first, then the forms in the order first met."""
    by_sheet: dict[str, dict] = {}
    for f in forms:
        if not f.get("sheet") or f.get("value") is None:
            continue  # values loaded from form files have no sheet: they stay with their files
        s = by_sheet.setdefault(f["sheet"], {"carrier": f["carrier"], "forms": [BALANCE_COLUMN], "values": {}})
        if f["form"] not in s["forms"]:
            s["forms"].append(f["form"])
        s["values"][(f["row_code"], f["form"])] = float(f["value"])
    # Sheets in the order of the real workbooks: the carriers' order, then anything else by name.
    rank = {name: i for i, name in enumerate(s for c in CARRIER_DEFS for s in c.sheets)}
    for name in sorted(by_sheet, key=lambda n: (rank.get(n.strip(), len(rank)), n)):
        s = by_sheet[name]
        ws = wb.create_sheet(name)
        carrier = CARRIERS.get(s["carrier"])
        ws.cell(2, 1, f"{carrier.name_ru if carrier else s['carrier']}, {UNIT}").font = Font(bold=True)
        for c, form in enumerate(s["forms"], 2):
            ws.cell(2, c, form).font = Font(bold=True)
        codes = sorted({code for code, _ in s["values"]}, key=_sheet_order)
        for r, code in enumerate(codes, 3):
            ws.cell(r, 1, _sheet_label(code))
            for c, form in enumerate(s["forms"], 2):
                v = s["values"].get((code, form))
                if v is not None:
                    ws.cell(r, c, v).number_format = NUMBER_FORMAT
        ws.column_dimensions["A"].width = 48


def to_xlsx(balance: pd.DataFrame, title: str, cells: list[dict] | None = None, *, year: int | None = None,
            region: str | None = None, forms: Iterable[dict] | None = None) -> bytes:
    """The workbook's bytes. `year` defaults to the last year in `title`; `forms` are `cdt.form_values` rows
    (carrier, sheet, row_code, form, value); `cells` are `cdt.balance_cells` rows for the provenance sheet."""
    year = year if year is not None else _year_in(title)
    wb = Workbook()
    ws = wb.active
    ws.title = BALANCE_SHEET
    _write_balance_sheet(ws, balance, title, year, region)
    if forms:
        _write_form_sheets(wb, forms)
    if cells:
        prov = wb.create_sheet(PROVENANCE_SHEET)
        prov.append(["Строка", "Столбец", "Значение", "Источник"])
        for c in cells:
            p = c.get("provenance")
            prov.append([c["row_code"], c["column_code"], _value(c.get("value_tce")),
                         json.dumps(p, ensure_ascii=False) if isinstance(p, dict) else str(p or "")])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def export_balance(engine: Engine, balance_id: int) -> tuple[str, bytes]:
    """A stored balance with its provenance and workbook form values: (suggested file name, XLSX bytes)."""
    from energy.store import load_balance  # store imports the reader; imported here to keep export light
    from layers.db import reader

    balance = load_balance(engine, balance_id)  # raises NotFound
    with reader(engine).connect() as conn:
        meta = conn.execute(text("SELECT territory_oktmo, territory_name, year FROM cdt.fuel_balances "
                                 "WHERE id = :b"), {"b": balance_id}).one()._mapping
        cells = [dict(r._mapping) for r in conn.execute(text(
            "SELECT row_code, column_code, value_tce, provenance FROM cdt.balance_cells WHERE balance_id = :b "
            "ORDER BY row_code, column_code"), {"b": balance_id})]
        forms = [dict(r._mapping) for r in conn.execute(text(
            "SELECT carrier, sheet, row_code, form, value FROM cdt.form_values WHERE balance_id = :b ORDER BY id"),
            {"b": balance_id})]
    region = meta["territory_name"] or meta["territory_oktmo"]
    title = f"Топливно-энергетический баланс: {region}, {meta['year']}"
    return file_name(meta["year"]), to_xlsx(balance, title, cells, year=meta["year"], region=region, forms=forms)
