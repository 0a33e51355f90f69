"""Processes `nearest-facility`, `isochrone`, `neighbourhood` and `fifteen-minute-score` (spatial.access_service)."""

from __future__ import annotations

from spatial import access_service as service
from spatial.processes import Process, RunContext, register

_OKTMO = {"type": "string", "pattern": r"^\d{8}(\d{3})?$"}
_MODE = {"type": "string", "enum": ["walk", "drive"], "default": "walk"}
_LON = {"type": "number", "minimum": -180, "maximum": 180}
_LAT = {"type": "number", "minimum": -90, "maximum": 90}
_TYPE = {"title": "Facility type (a code of cdt.facility_types, e.g. school, kindergarten)",
         "schema": {"type": "string"}}  # the enum is left open: types are rows, not code
_KEYWORDS = ("accessibility", "street network", "walking", "15-minute city")


def run_nearest_facility(ctx: RunContext, inputs: dict) -> dict:
    ctx.progress(0.1, "loading the street network and the residential buildings")
    result = service.nearest_facility(ctx.engine, ctx.principal, inputs["facility_type"], inputs["mode"],
                                      inputs.get("territory"), int(inputs["k"]))
    ctx.progress(1.0, "done")
    return {"summary": result["summary"], "buildings": result["buildings"]}


def run_isochrone(ctx: RunContext, inputs: dict) -> dict:
    geometry = service.isochrone(ctx.engine, ctx.principal, inputs.get("lon"), inputs.get("lat"),
                                 inputs.get("facility_id"), float(inputs["minutes"]), inputs["mode"])
    return {"isochrone": geometry}


def run_neighbourhood(ctx: RunContext, inputs: dict) -> dict:
    result = service.neighbourhood(ctx.engine, ctx.principal, float(inputs["lon"]), float(inputs["lat"]))
    return {"services": result["services"], "score": result["score"],
            "summary": {k: result[k] for k in ("point", "mode", "score_types", "missing", "city")}}


def run_fifteen_minute_score(ctx: RunContext, inputs: dict) -> dict:
    ctx.progress(0.1, "loading the street network and the residential buildings")
    result = service.fifteen_minute_scores(ctx.engine, ctx.principal, inputs.get("territory"))
    ctx.progress(1.0, "done")
    return {"summary": {k: result[k] for k in ("territory", "types", "missing", "threshold_s", "summary")},
            "buildings": result["buildings"], "territories": result["per_territory"]}


register(Process(
    id="nearest-facility",
    title="Nearest facility over the street network",
    description=(
        "For every residential building (is_living or residents > 0) the travel time, network distance and id of "
        "the nearest facility of a type (or the k nearest), walking (4.8 km/h) or driving (speed limit, else "
        "30 km/h, oneway streets respected). Buildings and facilities are snapped to their nearest street edge; the "
        "access leg is walked. A building whose part of the network has no such facility gets null. The summary "
        "gives median and 90th percentile times and the share of residents within the planning norm's radius."),
    inputs={
        "facility_type": _TYPE,
        "mode": {"title": "Travel mode", "schema": _MODE, "minOccurs": 0},
        "territory": {"title": "OKTMO of the territory (default: all)", "schema": _OKTMO, "minOccurs": 0},
        "k": {"title": "How many nearest facilities per building", "minOccurs": 0,
              "schema": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1}},
    },
    outputs={
        "summary": {"title": "Buildings, reached, median/p90/mean seconds, norm and share within it",
                    "schema": {"type": "object"}},
        "buildings": {"title": "Per building: id, residents, seconds, metres, facility_id (k > 1: lists of seconds "
                               "and facility_ids), access_m; null when unreachable", "schema": {"type": "array"}},
    },
    run=run_nearest_facility,
    keywords=_KEYWORDS,
    examples=[{"facility_type": "school", "territory": "19701000"}],
))

register(Process(
    id="isochrone",
    title="Isochrone",
    description=(
        "The area reachable within a number of minutes from a point or a facility, over the street network: the "
        "streets (and parts of streets) reachable within the time, buffered by 40 m, in lon/lat. A point more than "
        "1 km from the network is refused."),
    inputs={
        "lon": {"title": "Longitude of the start (with lat)", "schema": _LON, "minOccurs": 0},
        "lat": {"title": "Latitude of the start (with lon)", "schema": _LAT, "minOccurs": 0},
        "facility_id": {"title": "Start at this facility instead of lon/lat", "schema": {"type": "integer"},
                        "minOccurs": 0},
        "minutes": {"title": "Travel time budget, minutes", "minOccurs": 0,
                    "schema": {"type": "number", "minimum": 1, "maximum": 60, "default": 15}},
        "mode": {"title": "Travel mode", "schema": _MODE, "minOccurs": 0},
    },
    outputs={"isochrone": {"title": "Reachable area (GeoJSON Polygon or MultiPolygon, EPSG:4326)",
                           "schema": {"type": "object", "contentMediaType": "application/geo+json"}}},
    run=run_isochrone,
    keywords=_KEYWORDS,
    examples=[{"lon": 39.89, "lat": 59.22, "minutes": 15}],
))

register(Process(
    id="neighbourhood",
    title="Neighbourhood of a home",
    description=(
        "Walking times from a point (a home clicked on the map) to the nearest kindergarten, school, polyclinic, "
        "pharmacy, public transport stop and park; types without data are reported as missing. The point's "
        "15-minute score (share of the types with data reachable within 15 minutes on foot) and the median score "
        "of the residential buildings of its city, to compare."),
    inputs={"lon": {"title": "Longitude", "schema": _LON}, "lat": {"title": "Latitude", "schema": _LAT}},
    outputs={
        "services": {"title": "Per daily-need type: status, seconds, metres, facility id and name",
                     "schema": {"type": "object"}},
        "score": {"title": "15-minute score of the point, 0..100", "schema": {"type": ["number", "null"]}},
        "summary": {"title": "Point, types scored, types missing, the city's median score",
                    "schema": {"type": "object"}},
    },
    run=run_neighbourhood,
    keywords=_KEYWORDS,
    examples=[{"lon": 39.89, "lat": 59.22}],
))

register(Process(
    id="fifteen-minute-score",
    title="15-minute city score",
    description=(
        "For every residential building, the share (0..100) of daily-need facility types present in the data "
        "(kindergarten, school, polyclinic, pharmacy, stop, park) whose nearest facility is within 15 minutes on "
        "foot over the street network; mean and median per territory and overall (also weighted by residents)."),
    inputs={"territory": {"title": "OKTMO of the territory (default: all)", "schema": _OKTMO, "minOccurs": 0}},
    outputs={
        "summary": {"title": "Types scored and missing, threshold, mean/median scores",
                    "schema": {"type": "object"}},
        "buildings": {"title": "Per building: id, score", "schema": {"type": "array"}},
        "territories": {"title": "Per territory: buildings, mean, median, residents-weighted mean",
                        "schema": {"type": "array"}},
    },
    run=run_fifteen_minute_score,
    keywords=_KEYWORDS,
    long_running=False,
    examples=[{"territory": "19701000"}],
))


def run_catchment(ctx: RunContext, inputs: dict) -> dict:
    result = service.catchment_accessibility(ctx.engine, ctx.principal, inputs["facility_type"], inputs["method"],
                                             float(inputs["minutes"]), float(inputs["beta"]), inputs.get("territory"),
                                             inputs.get("mode", "walk"))
    return {"summary": {k: result[k] for k in ("facility_type", "method", "unit", "summary")},
            "buildings": result["buildings"]}


register(Process(
    id="catchment-accessibility",
    title="Capacity-aware accessibility (2SFCA, gravity)",
    description="Per residential building: places of a facility type reachable per resident (two-step floating "
                "catchment area, Luo & Wang 2003) or Hansen gravity accessibility (capacities decayed by "
                "exp(-beta x minutes)), over the street network.",
    inputs={
        "facility_type": {"title": "Facility type (code of cdt.facility_types)", "schema": {"type": "string"}},
        "method": {"title": "2sfca or gravity", "minOccurs": 0,
                   "schema": {"type": "string", "enum": list(service.CATCHMENT_METHODS), "default": "2sfca"}},
        "minutes": {"title": "Catchment, minutes (gravity: the decay is cut at 4x this)", "minOccurs": 0,
                    "schema": {"type": "number", "minimum": 1, "maximum": 120, "default": 15}},
        "beta": {"title": "Gravity decay per minute", "minOccurs": 0,
                 "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 10, "default": 0.1}},
        "territory": {"title": "OKTMO of the territory (default: all)", "schema": _OKTMO, "minOccurs": 0},
        "mode": {"title": "Travel mode", "schema": _MODE, "minOccurs": 0},
    },
    outputs={"summary": {"title": "Method, unit, mean/median/residents-weighted mean", "schema": {"type": "object"}},
             "buildings": {"title": "Per building: id, index", "schema": {"type": "array"}}},
    run=run_catchment,
    keywords=_KEYWORDS,
    examples=[{"facility_type": "kindergarten", "method": "2sfca", "minutes": 10, "territory": "19701000"}],
))
