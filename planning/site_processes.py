"""Process `site-appeal`: the investment appeal of a site for an enterprise (planning.site_service)."""

from __future__ import annotations

from layers.models.cadastre import CADASTRAL_NUMBER_PATTERN
from planning import site_score as ss
from planning import site_service as service
from spatial.processes import Process, RunContext, register

_WEIGHT = {"type": "number", "minimum": 0}


def run_site_appeal(ctx: RunContext, inputs: dict) -> dict:
    result = service.site_appeal(ctx.engine, ctx.principal, parcel_id=inputs.get("parcel_id"),
                                 cadastral_number=inputs.get("cadastral_number"), lon=inputs.get("lon"),
                                 lat=inputs.get("lat"), weights=inputs.get("weights"))
    return {"score": result["score"], "grade": result["grade"], "components": result["components"],
            "weights": {"given": result["weights"], "used": result["weights_used"]},
            "unknown": result["unknown"], "notes": result["notes"], "site": result["site"]}


register(Process(
    id="site-appeal",
    title="Investment appeal of a site",
    description=(
        "A 0..100 score of a cadastral parcel (parcel_id or cadastral_number) or a point (lon, lat; a point inside a "
        "parcel scores that parcel) for placing an enterprise, with its four components, each with its raw facts, "
        "score, weight and reason: accessibility (distance to a drivable street and a railway, minutes by car and on "
        "foot to the territory centre over the street network, on foot to a stop), utilities (distance to the "
        "nearest heat, power, gas, water and sewer network or source, and its spare capacity), zoning (the ПЗЗ zone "
        "and the master plan's functional zone) and land category. Each fact is scored by a documented decreasing "
        "curve (planning/site_score.py). A component without data (or on layers you may not read) is unknown: it is "
        "left out and the weights of the others are renormalised, as the result says. Default weights: "
        + ", ".join(f"{k} {v:g}" for k, v in ss.DEFAULT_WEIGHTS.items()) + "."),
    inputs={
        "parcel_id": {"title": "Id of the parcel (cdt.parcels)", "minOccurs": 0,
                      "schema": {"type": "integer", "minimum": 1, "maximum": 2147483647}},
        "cadastral_number": {"title": "Cadastral number of the parcel, e.g. 66:41:0302032:21", "minOccurs": 0,
                             "schema": {"type": "string", "maxLength": 40,
                                        "pattern": CADASTRAL_NUMBER_PATTERN}},
        "lon": {"title": "Longitude of a point (with lat)", "minOccurs": 0,
                "schema": {"type": "number", "minimum": -180, "maximum": 180}},
        "lat": {"title": "Latitude of a point (with lon)", "minOccurs": 0,
                "schema": {"type": "number", "minimum": -90, "maximum": 90}},
        "weights": {"title": "Weights of the components (non-negative, not all zero; missing ones take their "
                             "default; normalised to sum 1)", "minOccurs": 0,
                    "schema": {"type": "object", "properties": {k: _WEIGHT for k in ss.COMPONENTS},
                               "additionalProperties": False}},
    },
    outputs={
        "score": {"title": "Composite score 0..100 (weighted mean of the known components)",
                  "schema": {"type": "number"}},
        "grade": {"title": "high (>= 75), medium (>= 50), low (>= 25) or poor", "schema": {"type": "string"}},
        "components": {"title": "Per component: status (ok, unknown), score, raw facts, weight, weight used, "
                                "contribution, why, and its factors (raw, unit, score, weight, why)",
                       "schema": {"type": "array"}},
        "weights": {"title": "The weights given (defaults filled) and used (renormalised over known components), "
                             "each summing to 1", "schema": {"type": "object"}},
        "unknown": {"title": "Components left out for lack of data", "schema": {"type": "array"}},
        "notes": {"title": "What was left out and renormalised", "schema": {"type": "array"}},
        "site": {"title": "The site: kind (parcel or point), lon/lat, parcel, territory, the centre used, geometry "
                          "(GeoJSON)", "schema": {"type": "object"}},
    },
    run=run_site_appeal,
    keywords=("investment", "site selection", "enterprise", "accessibility", "utilities", "zoning"),
    examples=[{"lon": 39.89, "lat": 59.22}, {"cadastral_number": "66:41:0302032:21",
                                             "weights": {"accessibility": 0.2, "utilities": 0.4}}],
))
