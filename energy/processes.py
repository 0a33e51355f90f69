"""Energy processes (OGC API Processes): forecast of a balance under a named scenario, its sensitivity to each
driver, and consolidation of municipal balances into a region's."""

from __future__ import annotations

from energy import service
from spatial.processes import Process, RunContext, register

_ID = {"type": "integer", "minimum": 1}
_SCENARIO = {"title": "Scenario: name, horizon_year, sector_growth, population_growth, intensity_trend, "
                      "price_growth, price_elasticity, substitution, input_output, technologies, heat_source_shares, "
                      "loss_rate, own_use_rate, electricity_supply, generation_growth (energy/scenarios.py)",
             "schema": {"type": "object"}}


def run_forecast(ctx: RunContext, inputs: dict) -> dict:
    ctx.progress(0.1, "forecasting")
    return service.run_forecast(ctx.engine, inputs["balance_id"], inputs["scenario"])


def run_sensitivity(ctx: RunContext, inputs: dict) -> dict:
    ctx.progress(0.05, "one forecast per driver, each moved by ±10 %")
    return service.run_sensitivity(ctx.engine, inputs["balance_id"], inputs["scenario"], inputs["result"])


def run_consolidation(ctx: RunContext, inputs: dict) -> dict:
    return service.run_consolidation(ctx.engine, inputs["municipal"], inputs.get("region"), inputs["tolerance"])


register(Process(
    id="feb-forecast", title="Forecast a fuel and energy balance under a scenario",
    description="Year-by-year balances from the base year to the horizon: activity drivers, intensity trends, "
                "logit inter-fuel substitution, price elasticities, an optional Leontief input-output model, "
                "electricity and heat supply rebuilt from efficiencies; the forecast closes the balance identities.",
    inputs={"balance_id": {"title": "Id of the base-year balance (/energy/balances)", "schema": _ID},
            "scenario": _SCENARIO},
    outputs={"summary": {"title": "Indicators by year and the horizon year's identity errors",
                         "schema": {"type": "object"}},
             "horizon_balance": {"title": "The horizon year's balance, thousand tce", "schema": {"type": "object"}}},
    run=run_forecast, keywords=("energy", "forecast", "scenario"),
    examples=[{"balance_id": 1, "scenario": {"name": "base", "horizon_year": 2030, "population_growth": 0.005}}]))

register(Process(
    id="feb-sensitivity", title="Sensitivity of a balance forecast to each driver",
    description="One-at-a-time ±10 % on every driver of the scenario; the elasticity of the chosen result in the "
                "horizon year, sorted as a tornado table.",
    inputs={"balance_id": {"title": "Id of the base-year balance", "schema": _ID}, "scenario": _SCENARIO,
            "result": {"title": "primary_consumption, final_consumption or co2", "minOccurs": 0,
                       "schema": {"type": "string", "enum": ["primary_consumption", "final_consumption", "co2"],
                                  "default": "primary_consumption"}}},
    outputs={"result": {"title": "The result measured", "schema": {"type": "string"}},
             "tornado": {"title": "Driver, low, base, high, elasticity", "schema": {"type": "array"}}},
    run=run_sensitivity, long_running=True, keywords=("energy", "forecast", "sensitivity")))

register(Process(
    id="feb-consolidate", title="Consolidate municipal balances into the region's",
    description="Cell-wise sum of municipal balances of one year (a cell empty everywhere stays empty), and its "
                "difference from the region's own balance with the cells above the tolerance flagged.",
    inputs={"municipal": {"title": "Ids of the municipal balances", "schema": {"type": "array", "items": _ID,
                                                                                "minItems": 1, "maxItems": 5000}},
            "region": {"title": "Id of the region's own balance", "schema": _ID, "minOccurs": 0},
            "tolerance": {"title": "Tolerance, thousand tce", "minOccurs": 0,
                          "schema": {"type": "number", "minimum": 0, "default": 0.05}}},
    outputs={"year": {"title": "Year", "schema": {"type": "integer"}},
             "municipal": {"title": "Balances summed", "schema": {"type": "integer"}},
             "consolidated": {"title": "The consolidated balance", "schema": {"type": "object"}},
             "region": {"title": "The region compared with", "schema": {"type": "string"}},
             "differences": {"title": "Cells differing by more than the tolerance", "schema": {"type": "array"}}},
    run=run_consolidation, keywords=("energy", "consolidation")))
