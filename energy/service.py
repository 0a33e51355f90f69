"""Energy services over stored balances: forecasts under a named scenario, sensitivity, consolidation of municipal
balances, and per-capita figures by territory for the map. Reads through `energy.store`; no HTTP."""

from __future__ import annotations

import json
import math

import pandas as pd
from sqlalchemy import Engine, text

from energy import carriers, checks, co2, consolidate, forecast, reconcile, store
from energy.scenarios import InputOutput, Scenario, Substitution, Technology
from layers.db import reader
from layers.errors import InvalidParameterValue, NotFound


def _num(v) -> float | None:
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else round(float(v), 4)


def _meta(engine: Engine, balance_id: int) -> dict:
    for b in store.list_balances(engine):
        if b["id"] == balance_id:
            return b
    raise NotFound(f"no fuel balance with id {balance_id}")


def scenario_from_dict(data: object) -> Scenario:
    """A scenario from JSON: the fields of energy.scenarios.Scenario, nested objects as plain objects."""
    if not isinstance(data, dict):
        raise InvalidParameterValue("'scenario' must be a JSON object")
    known = set(Scenario.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidParameterValue(f"unknown scenario field(s) {', '.join(unknown)}; "
                                    f"fields: {', '.join(sorted(known))}")
    fields = dict(data)
    try:
        fields["substitution"] = tuple(Substitution(**{**s, "carriers": tuple(s["carriers"])})
                                       for s in fields.get("substitution", ()))
        if fields.get("input_output") is not None:
            io = fields["input_output"]
            fields["input_output"] = InputOutput(
                sectors=tuple(io["sectors"]),
                technical_coefficients=tuple(tuple(r) for r in io["technical_coefficients"]),
                final_demand=tuple(io["final_demand"]), final_demand_growth=io.get("final_demand_growth", {}))
        fields["technologies"] = {k: Technology(**v) for k, v in fields.get("technologies", {}).items()}
        return Scenario(**fields)
    except (TypeError, KeyError) as exc:
        raise InvalidParameterValue(f"scenario: {exc}") from None


def _table(balance) -> dict:
    return {r: {c: _num(balance.at[r, c]) for c in balance.columns} for r in balance.index}


def run_forecast(engine: Engine, balance_id: int, scenario_data: dict) -> dict:
    meta = _meta(engine, balance_id)
    scenario = scenario_from_dict(scenario_data)
    result = forecast.forecast(store.load_balance(engine, balance_id), meta["year"], scenario)
    horizon = result.balances[scenario.horizon_year]
    return {"summary": {"scenario": scenario.name, "base_year": meta["year"], "horizon_year": scenario.horizon_year,
                        "territory": meta["territory_name"] or meta["territory_oktmo"],
                        "by_year": [{"year": int(y), **{k: _num(v) for k, v in row.items()}}
                                    for y, row in result.summary.iterrows()],
                        "identity_errors": {k: _num(v) for k, v in forecast.identity_errors(horizon).items()}},
            "horizon_balance": _table(horizon)}


def run_sensitivity(engine: Engine, balance_id: int, scenario_data: dict, result: str, progress=None) -> dict:
    meta = _meta(engine, balance_id)
    scenario = scenario_from_dict(scenario_data)
    table = forecast.sensitivity(store.load_balance(engine, balance_id), meta["year"], scenario, result=result)
    return {"result": result, "tornado": [{k: (_num(v) if isinstance(v, float) else v) for k, v in row.items()}
                                          for row in table.to_dict(orient="records")]}


def run_consolidation(engine: Engine, municipal_ids: list[int], region_id: int | None, tolerance: float) -> dict:
    if not municipal_ids:
        raise InvalidParameterValue("give the ids of the municipal balances to consolidate")
    metas = [_meta(engine, i) for i in municipal_ids]
    years = {m["year"] for m in metas}
    if len(years) > 1:
        raise InvalidParameterValue(f"municipal balances of different years: {sorted(years)}")
    total = consolidate.consolidate({f"{m['territory_oktmo']}:{m['id']}": store.load_balance(engine, m["id"])
                                     for m in metas})
    out = {"year": years.pop(), "municipal": len(metas), "consolidated": _table(total)}
    if region_id is not None:
        region = _meta(engine, region_id)
        diff = consolidate.compare(total, store.load_balance(engine, region_id), tolerance=tolerance)
        flagged = diff[diff["flagged"]] if "flagged" in diff.columns else diff
        out["region"] = region["territory_name"] or region["territory_oktmo"]
        out["differences"] = [{k: (_num(v) if isinstance(v, float) else v) for k, v in r.items()}
                              for r in flagged.to_dict(orient="records")]
    return out


def per_capita(engine: Engine, year: int | None) -> dict:
    """Final consumption (tce per resident) and fossil CO2 from fuel combustion (t per resident) of each
    territory that has an actual balance, a boundary and a population: the map's energy choropleth."""
    with reader(engine).connect() as conn:
        rows = conn.execute(text("""
            SELECT DISTINCT ON (t.id) b.id, b.year, t.oktmo, t.name, t.population, ST_AsGeoJSON(t.boundary, 6) AS g
            FROM cdt.fuel_balances b JOIN cdt.territories t ON t.oktmo = b.territory_oktmo
            WHERE b.kind = 'actual' AND t.boundary IS NOT NULL AND t.population > 0
              AND (CAST(:year AS int) IS NULL OR b.year = :year)
            ORDER BY t.id, b.year DESC"""), {"year": year}).all()
    features = []
    for r in rows:
        balance = store.load_balance(engine, r.id)
        final = balance.at["final_consumption", "total"]
        emissions = co2.emissions(balance).total_t
        features.append({"type": "Feature", "id": r.oktmo, "geometry": json.loads(r.g), "properties": {
            "oktmo": r.oktmo, "name": r.name, "year": r.year, "balance_id": r.id, "population": r.population,
            "final_consumption_tce_per_capita": _num(final * 1000 / r.population) if math.isfinite(final) else None,
            "co2_t_per_capita": _num(emissions / r.population)}})
    return {"type": "FeatureCollection", "features": features}



CHOSEN = "В баланс"


def form_choice(engine: Engine, balance_id: int, sheet: str, tolerance_pct: float = 5.0) -> dict:
    """For one carrier sheet: the value each row takes from the statistical forms by the default priority rules
    (energy.reconcile.default_priority), the forms that disagree with it by more than the tolerance, and how the
    choice compares with the value the balance's compilers chose (`В баланс`)."""
    _meta(engine, balance_id)
    with reader(engine).connect() as conn:
        rows = conn.execute(text("SELECT row_code, form, value FROM cdt.form_values WHERE balance_id = :b AND "
                                 "sheet = :s"), {"b": balance_id, "s": sheet}).all()
        sheets = sorted(set(conn.execute(text("SELECT DISTINCT sheet FROM cdt.form_values WHERE balance_id = :b "
                                              "AND sheet IS NOT NULL"), {"b": balance_id}).scalars()))
    if not rows:
        raise InvalidParameterValue(f"balance {balance_id} has no form values on sheet '{sheet}'; "
                                    f"its sheets: {', '.join(sheets) or 'none'}")
    frame = (pd.DataFrame(rows, columns=["row", "form", "value"])
             .pivot_table(index="row", columns="form", values="value", aggfunc="first"))
    column = checks.LEAF_ROLL_UP.get(sheet) or checks.AGGREGATE_ROLL_UP.get(sheet)
    forms = frame.drop(columns=[CHOSEN], errors="ignore")
    priority, order = reconcile.default_priority(column) if column else ({}, list(forms.columns))
    choice = reconcile.choose(forms, priority, order, tolerance_pct=tolerance_pct)
    out = {"sheet": sheet, "column": column, "forms": list(forms.columns), "tolerance_pct": tolerance_pct,
           "chosen": [{"row": r, "value": _num(v), "form": choice.provenance.at[r, "form"] if r in
                       choice.provenance.index else None, "rule": choice.provenance.at[r, "rule"] if r in
                       choice.provenance.index else None} for r, v in choice.values.items()],
           "disagreements": [{k: (_num(v) if isinstance(v, float) else v) for k, v in d.items()}
                             for d in choice.disagreements.to_dict(orient="records")]}
    if CHOSEN in frame.columns:
        compared = reconcile.compare_with(choice, frame[CHOSEN])
        out["compilers_choice"] = {"rows": int(len(compared)), "same": int(compared["match"].sum())}
    return out


def single_product(engine: Engine, balance_id: int, sheet: str) -> dict:
    """A carrier's single-product balance: each row's value for the balance (`В баланс`) and every form's, in
    thousand tce and in the carrier's natural unit (thousand units: thousand tce / tce per unit), with the
    coefficient and its source. A carrier without a coefficient (coal and pellets here) has tce only."""
    _meta(engine, balance_id)
    carrier = carriers.carrier_for_sheet(sheet)
    with reader(engine).connect() as conn:
        rows = conn.execute(text("SELECT row_code, form, value FROM cdt.form_values WHERE balance_id = :b AND "
                                 "sheet = :s ORDER BY id"), {"b": balance_id, "s": sheet}).all()
    if not rows:
        raise InvalidParameterValue(f"balance {balance_id} has no sheet '{sheet}'")
    factor = carrier.tce_per_unit if carrier else None
    unit = f"thousand {carrier.natural_unit}" if carrier and carrier.natural_unit and factor else None
    return {"sheet": sheet, "carrier": carrier.code if carrier else None, "natural_unit": unit,
            "tce_per_unit": factor, "coefficient_source": carrier.coefficient_source if carrier else None,
            "values": [{"row": r, "form": f, "thousand_tce": _num(v),
                        "natural": _num(v / factor) if factor and v is not None else None} for r, f, v in rows]}
