"""Balances in PostGIS: save a read workbook in one transaction (re-loading the same year replaces it), load one
back as the shared DataFrame, list them. A file that cannot be read changes nothing: it fails before the
transaction; a failure inside rolls everything back."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, Engine, text

from energy import layout
from energy.carriers import CARRIER_DEFS, COEFFICIENT_SET
from energy.forms import form_name, parse_form_file
from energy.workbook import BALANCE_COLUMN, WorkbookData, read_workbook
from layers.db import reader, transaction
from layers.errors import InvalidParameterValue, NotFound


def _clean(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def upsert_carriers(conn: Connection) -> None:
    """Reference data from energy.carriers (the code is the source of truth; the table is for SQL users)."""
    conn.execute(text(
        "INSERT INTO cdt.energy_carriers (code, name_ru, name_en, balance_column, natural_unit, tce_per_unit, "
        "coefficient_source, coefficient_set) VALUES (:code, :name_ru, :name_en, :balance_column, :natural_unit, "
        ":tce_per_unit, :coefficient_source, :coefficient_set) ON CONFLICT (code) DO UPDATE SET "
        "name_ru = EXCLUDED.name_ru, name_en = EXCLUDED.name_en, balance_column = EXCLUDED.balance_column, "
        "natural_unit = EXCLUDED.natural_unit, tce_per_unit = EXCLUDED.tce_per_unit, "
        "coefficient_source = EXCLUDED.coefficient_source, coefficient_set = EXCLUDED.coefficient_set"),
        [{k: getattr(c, k) for k in ("code", "name_ru", "name_en", "balance_column", "natural_unit", "tce_per_unit",
                                     "coefficient_source", "coefficient_set")} for c in CARRIER_DEFS])


def save_workbook(engine: Engine, data: WorkbookData, territory_oktmo: str, name: str, actor: str,
                  kind: str = "actual", scenario: str | None = None) -> int:
    """Store the consolidated balance (every cell with its provenance) and every carrier sheet's values (the
    `В баланс` column and each form's column) in one transaction; returns the balance id."""
    if kind not in ("actual", "forecast"):
        raise InvalidParameterValue(f"kind must be 'actual' or 'forecast', not {kind!r}")
    sha = hashlib.sha256(data.path.read_bytes()).hexdigest() if data.path.exists() else None
    cells = []
    for (row, col), prov in data.cells.items():
        cells.append({"row": row, "col": col, "value": _clean(data.balance.at[row, col]),
                      "prov": json.dumps({"source": "workbook", "sheet": "Баланс", **prov}, ensure_ascii=False)})
    forms = []
    for sheet in data.sheets.values():
        for row, values in sheet.values.iterrows():
            for form, v in values.items():
                if math.isnan(v):
                    continue
                forms.append({"carrier": sheet.carrier.code, "sheet": sheet.name, "row": row, "form": form,
                              "value": float(v), "cell": sheet.cells.get((row, form))})
    with transaction(engine, actor) as conn:
        upsert_carriers(conn)
        territory_id = conn.execute(text("SELECT id FROM cdt.territories WHERE oktmo = :o"),
                                    {"o": territory_oktmo}).scalar()
        conn.execute(text("DELETE FROM cdt.fuel_balances WHERE territory_oktmo = :o AND year = :y AND kind = :k "
                          "AND scenario IS NOT DISTINCT FROM :s"),
                     {"o": territory_oktmo, "y": data.year, "k": kind, "s": scenario})
        balance_id = conn.execute(text(
            "INSERT INTO cdt.fuel_balances (territory_id, territory_oktmo, territory_name, year, kind, scenario, "
            "source_file, source_sha256, coefficient_set, defects, created_by) VALUES (:t, :o, :n, :y, :k, :s, :f, "
            ":sha, :cs, CAST(:d AS jsonb), :a) RETURNING id"),
            {"t": territory_id, "o": territory_oktmo, "n": name, "y": data.year, "k": kind, "s": scenario,
             "f": data.path.name, "sha": sha, "cs": COEFFICIENT_SET, "a": actor,
             "d": json.dumps([d.as_dict() for d in data.defects], ensure_ascii=False, default=str)}).scalar_one()
        conn.execute(text("INSERT INTO cdt.balance_cells (balance_id, row_code, column_code, value_tce, provenance) "
                          "VALUES (:b, :row, :col, :value, CAST(:prov AS jsonb))"),
                     [{"b": balance_id, **c} for c in cells])
        if forms:
            conn.execute(text("INSERT INTO cdt.form_values (balance_id, carrier, sheet, row_code, form, value, "
                              "source, cell) VALUES (:b, :carrier, :sheet, :row, :form, :value, 'workbook', :cell)"),
                         [{"b": balance_id, **f} for f in forms])
    return balance_id


def save_form_values(engine: Engine, balance_id: int, form: str, values: list, source: str, actor: str) -> int:
    """Replace the values of one statistical form loaded from `source` (a template file) for a balance."""
    with transaction(engine, actor) as conn:
        if conn.execute(text("SELECT 1 FROM cdt.fuel_balances WHERE id = :b"), {"b": balance_id}).scalar() is None:
            raise NotFound(f"no fuel balance with id {balance_id}")
        conn.execute(text("DELETE FROM cdt.form_values WHERE balance_id = :b AND form = :f AND source = :s"),
                     {"b": balance_id, "f": form, "s": source})
        if values:
            conn.execute(text("INSERT INTO cdt.form_values (balance_id, carrier, row_code, form, value, value_natural, "
                              "unit, source, cell) VALUES (:b, :carrier, :row, :form, :value, :natural, :unit, :s, "
                              ":cell)"),
                         [{"b": balance_id, "carrier": v.carrier, "row": v.row_code, "form": form, "value": v.value,
                           "natural": v.value_natural, "unit": v.unit, "s": source, "cell": f"line {v.line}"}
                          for v in values])
    return len(values)


def load_balance(engine: Engine, balance_id: int) -> pd.DataFrame:
    """The balance in the shared convention (all rows and columns; NaN = empty cell)."""
    with reader(engine).connect() as conn:
        return read_balance(conn, balance_id)


def read_balance(conn: Connection, balance_id: int) -> pd.DataFrame:
    """load_balance on the caller's connection (a transaction sees its own rows)."""
    if conn.execute(text("SELECT 1 FROM cdt.fuel_balances WHERE id = :b"), {"b": balance_id}).scalar() is None:
        raise NotFound(f"no fuel balance with id {balance_id}")
    rows = conn.execute(text("SELECT row_code, column_code, value_tce FROM cdt.balance_cells "
                             "WHERE balance_id = :b"), {"b": balance_id}).all()
    balance = layout.empty_balance()
    for row, col, value in rows:
        if row in balance.index and col in balance.columns and value is not None:
            balance.at[row, col] = value
    return balance


def list_balances(engine: Engine) -> list[dict]:
    with reader(engine).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(
            "SELECT b.id, b.territory_id, b.territory_oktmo, b.territory_name, b.year, b.kind, b.scenario, "
            "b.source_file, b.coefficient_set, jsonb_array_length(b.defects) AS defects, b.loaded_at, b.created_by, "
            "(SELECT count(*) FROM cdt.balance_cells c WHERE c.balance_id = b.id) AS cells, "
            "(SELECT count(*) FROM cdt.form_values f WHERE f.balance_id = b.id) AS form_values "
            "FROM cdt.fuel_balances b ORDER BY b.territory_oktmo, b.year, b.kind, b.scenario NULLS FIRST"))]


def load_file(engine: Engine, path: str | Path, territory_oktmo: str, actor: str, name: str | None = None) -> dict:
    """`cdt load feb`: read a balance workbook and store it. Returns a report (id, year, counts, defects)."""
    path = Path(path)
    if not path.exists():
        raise InvalidParameterValue(f"{path}: no such file")
    if path.suffix.lower() not in (".xlsx", ".xlsm"):
        raise InvalidParameterValue(f"{path.name}: a balance workbook must be .xlsx")
    data = read_workbook(path)
    balance_id = save_workbook(engine, data, territory_oktmo, name or data.region or territory_oktmo, actor)
    return {"balance_id": balance_id, "year": data.year, "sheets": len(data.sheets),
            "forms": sorted({f for s in data.sheets.values() for f in s.forms}),
            "form_values": sum(int(s.values.notna().sum().sum()) for s in data.sheets.values()),
            "balance_column": BALANCE_COLUMN, "defects": [d.as_dict() for d in data.defects]}


def load_form_file(engine: Engine, balance_id: int, path: str | Path, form: str, actor: str) -> dict:
    """A filled CSV or XLSX form template (energy/templates/), checked whole, then stored in one transaction
    (replacing what the same file name loaded before for this form). A bad file or an unknown balance changes
    nothing: validation runs before the transaction, and save_form_values checks the balance inside it."""
    path = Path(path)
    form = form_name(form)
    lines = parse_form_file(path, form)
    count = save_form_values(engine, balance_id, form, lines, path.name, actor)
    return {"balance_id": balance_id, "form": form, "source": path.name, "form_values": count,
            "carriers": sorted({v.carrier for v in lines}), "rows": sorted({v.row_code for v in lines}),
            "value_tce": sum(v.value for v in lines)}
