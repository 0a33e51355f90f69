"""Fuel and energy balances over HTTP: list, one balance in the Order 1169 layout (JSON or XLSX), its flows for
a Sankey diagram, the checks it fails, a least-squares reconciliation proposal and its CO2. Balances are regional
statistics: public to read; loading them is `cdt load feb`."""

from __future__ import annotations

import math

from flask import Blueprint, Response

from energy import checks, co2, export, flows, layout, reconcile, service, store
from geoserver_app.ogc import check_params, engine, json_response, single
from geoserver_app.openapi import api, query
from geoserver_app.openapi import json_response as doc_response
from layers.errors import InvalidParameterValue, NotFound

blueprint = Blueprint("energy", __name__)
TAGS = ("Energy",)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Side-flow nodes of the Sankey diagram (the others are layout rows and columns).
SIDE_NODES = {"stock_draw": ("Из запасов", "Stock draw"), "stock_build": ("В запасы", "Stock build"),
              "exports": ("Вывоз", "Exports"), "conversion_losses": ("Потери преобразования", "Conversion losses")}


def _num(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 3)


def _balance_id(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        raise NotFound(f"no fuel balance '{raw}'")
    return int(raw)


def _meta(balance_id: int) -> dict:
    for b in store.list_balances(engine()):
        if b["id"] == balance_id:
            return b
    raise NotFound(f"no fuel balance with id {balance_id}")


def _json_meta(b: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in b.items()}


@api.route(blueprint, "/energy/balances", summary="Fuel and energy balances loaded (territory, year, kind)",
           tags=TAGS, responses={"200": doc_response("The balances")})
def balances():
    check_params([])
    return json_response({"balances": [_json_meta(b) for b in store.list_balances(engine())]})


@api.route(blueprint, "/energy/balances/<balanceId>", summary="One balance in the Order 1169 layout, thousand tce",
           tags=TAGS, responses={"200": doc_response("Rows, columns (with labels) and values")})
def balance(balanceId: str):  # noqa: N803 - the path parameter's name in /api
    check_params([])
    bid = _balance_id(balanceId)
    meta, table = _meta(bid), store.load_balance(engine(), bid)
    rows = [{"code": r, "number": layout.ROW[r].number, "label_ru": layout.ROW[r].ru, "label_en": layout.ROW[r].en,
             "parent": layout.ROW[r].parent, "level": 1 if layout.ROW[r].parent else 0} for r in layout.ROWS]
    cols = [{"code": c, "number": layout.COLUMN[c].number, "label_ru": layout.COLUMN[c].ru,
             "label_en": layout.COLUMN[c].en} for c in layout.COLUMNS]
    values = {r: {c: _num(table.at[r, c]) for c in layout.COLUMNS} for r in layout.ROWS}
    return json_response({"balance": _json_meta(meta), "unit": "thousand tce", "rows": rows, "columns": cols,
                          "values": values})


@api.route(blueprint, "/energy/balances/<balanceId>/xlsx", summary="The balance as XLSX in the Order 1169 layout",
           tags=TAGS, responses={"200": doc_response("XLSX workbook", (XLSX,))})
def balance_xlsx(balanceId: str):  # noqa: N803
    check_params([])
    filename, data = export.export_balance(engine(), _balance_id(balanceId))
    return Response(data, mimetype=XLSX, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@api.route(blueprint, "/energy/balances/<balanceId>/flows", summary="Flows of the balance for a Sankey diagram",
           tags=TAGS, responses={"200": doc_response("Links from -> to with values, and node labels")})
def balance_flows(balanceId: str):  # noqa: N803
    check_params([])
    table = store.load_balance(engine(), _balance_id(balanceId))
    labels = {code: (r.ru, r.en) for code, r in layout.ROW.items()}
    labels.update({code: (c.ru, c.en) for code, c in layout.COLUMN.items()})
    labels.update(SIDE_NODES)
    return json_response({"unit": "thousand tce", "links": flows.flows(table), "labels": labels})


@api.route(blueprint, "/energy/balances/<balanceId>/checks",
           summary="The balance's identities, sub-row sums, total column and transformation checks that fail",
           tags=TAGS, parameters=[query("tolerance", "Tolerance, thousand tce (default 0.05)", {"type": "number"})],
           responses={"200": doc_response("Findings: check, cell, expected, actual, difference")})
def balance_checks(balanceId: str):  # noqa: N803
    check_params(["tolerance"])
    tolerance = _float("tolerance", 0.05)
    table = store.load_balance(engine(), _balance_id(balanceId))
    found = checks.check(table, tolerance=tolerance)
    return json_response({"tolerance": tolerance, "findings": [
        {"check": f.check, "row": f.row, "column": f.column, "expected": _num(f.expected), "actual": _num(f.actual),
         "difference": _num(f.difference), "severity": f.severity, "message": f.message} for f in found]})


@api.route(blueprint, "/energy/balances/<balanceId>/reconciliation",
           summary="Least-squares reconciliation: the minimal weighted adjustments that close every identity",
           tags=TAGS, parameters=[query("discrepancy", "zero (close it) or free (keep it as a variable)",
                                        {"type": "string", "enum": ["zero", "free"]})],
           responses={"200": doc_response("Each adjustment: cell, before, after, delta")})
def balance_reconciliation(balanceId: str):  # noqa: N803
    check_params(["discrepancy"])
    mode = single("discrepancy") or "zero"
    if mode not in ("zero", "free"):
        raise InvalidParameterValue("discrepancy must be 'zero' or 'free'")
    table = store.load_balance(engine(), _balance_id(balanceId))
    _, adjustments = reconcile.least_squares(table, discrepancy=mode)
    return json_response({"discrepancy": mode, "adjustments": [
        {k: (_num(v) if isinstance(v, float) else v) for k, v in row.items()}
        for row in adjustments.to_dict(orient="records")]})


@api.route(blueprint, "/energy/balances/<balanceId>/forms",
           summary="Per carrier sheet: the value each row takes from the statistical forms by priority rules, and "
                   "the forms that disagree", tags=TAGS,
           parameters=[query("sheet", "Carrier sheet, e.g. Электро", {"type": "string"}),
                       query("tolerance_pct", "Disagreement tolerance, % (default 5)", {"type": "number"})],
           responses={"200": doc_response("Chosen values with their form and rule, disagreements")})
def balance_forms(balanceId: str):  # noqa: N803
    check_params(["sheet", "tolerance_pct"])
    sheet = single("sheet")
    if not sheet:
        raise InvalidParameterValue("name the carrier sheet: ?sheet=Электро")
    return json_response(service.form_choice(engine(), _balance_id(balanceId), sheet, _float("tolerance_pct", 5.0)))


@api.route(blueprint, "/energy/balances/<balanceId>/single-product",
           summary="A carrier's single-product balance in thousand tce and in natural units, every form's value",
           tags=TAGS, parameters=[query("sheet", "Carrier sheet, e.g. Пр-й газ", {"type": "string"})],
           responses={"200": doc_response("Rows with the balance's and each form's value, tce and natural")})
def balance_single_product(balanceId: str):  # noqa: N803
    check_params(["sheet"])
    sheet = single("sheet")
    if not sheet:
        raise InvalidParameterValue("name the carrier sheet: ?sheet=Пр-й газ")
    return json_response(service.single_product(engine(), _balance_id(balanceId), sheet))


@api.route(blueprint, "/energy/balances/<balanceId>/co2",
           summary="CO2 from fuel combustion by sector and fuel (IPCC 2006 factors), grid factor of the balance",
           tags=TAGS, responses={"200": doc_response("Emissions, t CO2")})
def balance_co2(balanceId: str):  # noqa: N803
    check_params([])
    table = store.load_balance(engine(), _balance_id(balanceId))
    result = co2.emissions(table)
    by_row = result.direct["total"] if "total" in result.direct.columns else result.direct.sum(axis=1)
    return json_response({"unit": "t CO2", "summary": {
        "total_t": _num(result.total_t), "grid_factor_t_per_mwh": _num(result.grid_factor_t_per_mwh),
        "heat_factor_t_per_gcal": _num(result.heat_factor_t_per_gcal),
        "electricity_co2_t": _num(result.electricity_co2_t), "heat_co2_t": _num(result.heat_co2_t),
        "biogenic_t": _num(float(result.biogenic.sum()))},
        "by_row": {r: _num(v) for r, v in by_row.items() if _num(v)}})


@api.route(blueprint, "/energy/territories", summary="Final consumption and CO2 per resident of each territory with "
           "a balance, a boundary and a population (GeoJSON, for the map)", tags=TAGS,
           parameters=[query("year", "Year (default: each territory's latest)", {"type": "integer"})],
           responses={"200": doc_response("GeoJSON FeatureCollection", ("application/geo+json",))})
def energy_territories():
    check_params(["year"])
    raw = single("year")
    if raw is not None and not (raw.isascii() and raw.isdigit() and len(raw) == 4):
        raise InvalidParameterValue(f"year must be a four-digit year, got '{raw}'")
    return json_response(service.per_capita(engine(), int(raw) if raw else None), media_type="application/geo+json")


def _float(name: str, default: float) -> float:
    raw = single(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidParameterValue(f"{name} must be a number, got '{raw}'") from None
    if not math.isfinite(value) or value < 0:
        raise InvalidParameterValue(f"{name} must be a non-negative number, got '{raw}'")
    return value
