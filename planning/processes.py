"""OGC API processes of planning: compute the indicators of a territory, goal seek in a scenario."""

from __future__ import annotations

from planning import scenarios
from planning.indicators import service
from spatial.processes import Process, RunContext, register

OKTMO = {"type": "string", "pattern": r"^\d{8}(\d{3})?$"}


def run_indicators(ctx: RunContext, inputs: dict) -> dict:
    return {"summary": service.run(ctx.engine, inputs["territory"], inputs.get("year"), ctx.principal.actor,
                                   inputs.get("indicators"), ctx.progress)}


register(Process(
    id="indicators",
    title="Compute the indicators of a territory",
    description="Every indicator of the registry (SQL measures over the layers, the access and capacity families, "
                "expressions over other indicators) for a territory and all its descendants, stored as actual "
                "values of the year (base data; scenarios have their own). Parents are recomputed from their "
                "descendants' data, not summed, unless an indicator says so.",
    inputs={"territory": {"title": "OKTMO of the territory", "schema": OKTMO},
            "year": {"title": "Year of the values (default: this year)", "minOccurs": 0,
                     "schema": {"type": "integer", "minimum": 1900, "maximum": 2200}},
            "indicators": {"title": "Only these indicators (and what they depend on)", "minOccurs": 0,
                           "schema": {"type": "array", "items": {"type": "string", "maxLength": 80},
                                      "maxItems": 5000}}},
    outputs={"summary": {"title": "Territories, indicators and values written, seconds",
                         "schema": {"type": "object"}}},
    run=run_indicators,
    keywords=("indicators", "monitoring"),
    roles=("federal", "regional", "municipal", "analyst"),
    long_running=True,
    examples=[{"territory": "19701000", "year": 2026}],
))


def run_goal_seek(ctx: RunContext, inputs: dict) -> dict:
    levers = {name: tuple(bounds) for name, bounds in inputs["levers"].items()}
    return {"result": scenarios.goal_seek(ctx.engine, int(inputs["scenario"]), inputs["indicator"],
                                          float(inputs["target"]), levers, year=inputs.get("year"))}


register(Process(
    id="goal-seek",
    title="Goal seek: lever values that bring an indicator to a target",
    description="Reverse modelling in a scenario's sandbox: one lever by root finding (Brent), several by "
                "constrained optimisation; an unreachable target is reported with the closest achievable value. "
                "Levers: population_factor, living_area_factor, capacity_factor:<type>, demand_norm:<type>, "
                "include_planned.",
    inputs={"scenario": {"title": "Scenario id", "schema": {"type": "integer", "minimum": 1}},
            "indicator": {"title": "Indicator code", "schema": {"type": "string", "maxLength": 80}},
            "target": {"title": "Target value", "schema": {"type": "number"}},
            "levers": {"title": "Levers and their bounds, e.g. {\"capacity_factor:school\": [1, 2]}",
                       "schema": {"type": "object", "maxProperties": 6,
                                  "additionalProperties": {"type": "array", "items": {"type": "number"},
                                                           "minItems": 2, "maxItems": 2}}},
            "year": {"title": "Year (default: this year)", "minOccurs": 0,
                     "schema": {"type": "integer", "minimum": 1900, "maximum": 2200}}},
    outputs={"result": {"title": "Lever values, value reached, met or unreachable", "schema": {"type": "object"}}},
    run=run_goal_seek,
    keywords=("scenario", "goal seek"),
    roles=("federal", "regional", "municipal", "analyst"),
    long_running=True,
    examples=[{"scenario": 1, "indicator": "fac_school_provision", "target": 100,
               "levers": {"capacity_factor:school": [1, 2]}}],
))
