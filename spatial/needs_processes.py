"""Process `service-needs`: provision of a facility type by planning norms (spatial.needs_service)."""

from __future__ import annotations

from spatial.needs_service import HEX_SIZE_M, needs
from spatial.processes import Process, RunContext, register

_OKTMO = {"type": "string", "pattern": r"^\d{8}(\d{3})?$"}


def run_service_needs(ctx: RunContext, inputs: dict) -> dict:
    ctx.progress(0.05, "reading norms, buildings, facilities and the street network")
    result = needs(ctx.engine, ctx.principal, inputs["facility_type"], inputs.get("territory"),
                   inputs.get("region"), float(inputs["hex_size_m"]))
    ctx.progress(1.0, "done")
    return {"summary": result["summary"], "facilities": result["facilities"], "districts": result["districts"],
            "buildings": result["buildings"], "territories": result["territories"]}


register(Process(
    id="service-needs",
    title="Service needs by planning norms",
    description=(
        "Demand of residential buildings (residents x places per 1,000 by the regional, else federal, planning "
        "norm) allocated to facilities of one type within the normative walking radius over the street network "
        "by a transportation LP (HiGHS): maximal served demand, then minimal demand-weighted distance. Returns "
        "facility loads, unmet demand per building, deficits per territory and per hexagonal district."),
    inputs={
        "facility_type": {"title": "Facility type (code of cdt.facility_types, e.g. kindergarten, school)",
                          "schema": {"type": "string"}},
        "territory": {"title": "OKTMO of the territory (default: every territory you may read)",
                      "schema": _OKTMO, "minOccurs": 0},
        "region": {"title": "OKTMO of the federal subject whose norms apply (default: each building's own)",
                   "schema": {"type": "string", "pattern": r"^\d{8}$"}, "minOccurs": 0},
        "hex_size_m": {"title": "Size of the district hexagons, metres", "minOccurs": 0,
                       "schema": {"type": "number", "minimum": 100, "maximum": 20000, "default": HEX_SIZE_M}},
    },
    outputs={
        "summary": {"title": "Totals: demand, served, deficit, covered share, norms used, solver status",
                    "schema": {"type": "object"}},
        "facilities": {"title": "Per facility: id, name, capacity, load, load %", "schema": {"type": "array"}},
        "districts": {"title": "Deficit per hexagonal district (GeoJSON FeatureCollection, EPSG:4326)",
                      "schema": {"type": "object", "contentMediaType": "application/geo+json"}},
        "buildings": {"title": "Per residential building: id, demand, served, unmet, radius",
                      "schema": {"type": "array"}},
        "territories": {"title": "Per territory: deficit (places) and share of residents covered",
                        "schema": {"type": "array"}},
    },
    run=run_service_needs,
    keywords=("provision", "planning norms", "accessibility", "deficit"),
    examples=[{"facility_type": "kindergarten", "territory": "19701000"}],
))
