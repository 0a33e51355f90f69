"""A balance as an XLSX workbook in the layout of Minenergo Order No. 1169 (rows numbered as in the form,
carrier columns 1-9 and the total), with its provenance on a second sheet."""

from __future__ import annotations

import io
import math

import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font

from energy import layout


def to_xlsx(balance: pd.DataFrame, title: str, cells: list[dict] | None = None) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "Баланс"
    ws.append([title])
    ws["A1"].font = Font(bold=True)
    ws.append(["тыс. т у.т."])
    ws.append(["№ строки", "Наименование", *[layout.COLUMN[c].ru for c in layout.COLUMNS]])
    ws.append(["", "", *[layout.COLUMN[c].number for c in layout.COLUMNS]])
    for cell in ws[3]:
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True)
    for code in layout.ROWS:
        row = layout.ROW[code]
        values = []
        for col in layout.COLUMNS:
            v = balance.at[code, col] if code in balance.index and col in balance.columns else None
            values.append(None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 3))
        ws.append([row.number, ("   " if row.parent else "") + row.ru, *values])
    ws.column_dimensions["B"].width = 48
    if cells:
        prov = wb.create_sheet("Источники")
        prov.append(["Строка", "Столбец", "Значение", "Источник"])
        for c in cells:
            prov.append([c["row_code"], c["column_code"], c["value_tce"], str(c.get("provenance") or "")])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
