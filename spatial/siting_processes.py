"""Process `siting`: where to put k new facilities of a type (MCLP, p-median or LSCP over the walking network)."""

from __future__ import annotations

from spatial.processes import Process, RunContext, register
from spatial.siting_service import MODELS, site


def run_siting(ctx: RunContext, inputs: dict) -> dict:
    ctx.progress(0.05, "reading demand, candidates and the street network")
    out = site(ctx.engine, ctx.principal, inputs["facility_type"], inputs["k"], capacity=inputs.get("capacity"),
               model=inputs["model"], candidates=inputs["candidates"], territory_oktmo=inputs["territory_oktmo"],
               grid_m=inputs["grid_m"], service_distance_m=inputs.get("service_distance_m"),
               time_limit_s=inputs["time_limit_s"])
    ctx.progress(1.0, f"{out['report']['status']}: {out['report']['new_sites']} sites")
    # Proposals are a scenario: they live in this job's results under a name, never in the base layers.
    return {**out, "scenario": {"name": inputs.get("scenario") or f"{inputs['facility_type']}: {inputs['model']}, "
                                f"k={inputs['k']}", "facility_type": inputs["facility_type"]}}


_POINT = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}

register(Process(
    id="siting",
    title="Facility siting (location-allocation)",
    description="Proposes k new sites for a facility type: maximal covering (mclp), p-median or location set "
                "covering (lscp, chooses the number of sites itself), optionally capacitated, with existing "
                "facilities open already. Demand: residents of residential buildings (times the type's norm per "
                "1,000 when set) at their nearest street node; distance: walking over the street network; "
                "service radius from cdt.planning_norms. Solved by HiGHS; reports its status, bound and gap, and "
                "the covered share of demand before and after.",
    inputs={
        "facility_type": {"title": "Facility type code (cdt.facility_types)", "schema": {"type": "string"}},
        "k": {"title": "Number of new sites (ignored by lscp)", "schema": {"type": "integer", "minimum": 1,
                                                                          "default": 5}},
        "model": {"title": "Model", "schema": {"type": "string", "enum": list(MODELS), "default": "mclp"}},
        "capacity": {"title": "Capacity of a new site (in demand units): capacitated model", "minOccurs": 0,
                     "schema": {"type": "number", "exclusiveMinimum": 0}},
        "candidates": {"title": "'grid', 'parcels' (vacant) or a list of [lon, lat] points",
                       "schema": {"oneOf": [{"type": "string", "enum": ["grid", "parcels"]},
                                            {"type": "array", "items": _POINT}], "default": "grid"}},
        "territory_oktmo": {"title": "Territory OKTMO", "schema": {"type": "string", "default": "19701000"}},
        "grid_m": {"title": "Grid spacing of candidates, m", "schema": {"type": "number", "minimum": 50,
                                                                        "maximum": 5000, "default": 500}},
        "service_distance_m": {"title": "Service distance, m (default: the norm's walking radius)", "minOccurs": 0,
                               "schema": {"type": "number", "exclusiveMinimum": 0}},
        "scenario": {"title": "Name of the scenario the proposals belong to", "minOccurs": 0,
                     "schema": {"type": "string", "maxLength": 200}},
        "time_limit_s": {"title": "Solver time limit, s", "schema": {"type": "number", "minimum": 1,
                                                                     "maximum": 3600, "default": 120}},
    },
    outputs={
        "sites": {"title": "Proposed sites (GeoJSON points with demand covered, coverage gain, demand assigned)",
                  "schema": {"type": "object"}},
        "report": {"title": "Solver report: model, HiGHS status, objective, bound, gap, time",
                   "schema": {"type": "object"}},
        "deficit": {"title": "Covered demand before and after adding the sites", "schema": {"type": "object"}},
        "inputs": {"title": "What the model was built from (demand points, candidates, notes)",
                   "schema": {"type": "object"}},
        "scenario": {"title": "The scenario: its name and facility type (base data is not changed)",
                     "schema": {"type": "object"}},
    },
    run=run_siting,
    keywords=("siting", "location-allocation", "MCLP", "p-median", "LSCP"),
    long_running=True,
))
