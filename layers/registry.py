"""The layer registry: each collection described once.

The OGC API, tiles, the map client's layer panel and forms, exports, access checks
and ingest all read this (how a layer is drawn: `layers.styles`).
Adding a layer is adding an entry here and a migration.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Table

from layers import models

# Columns the database maintains itself; never mapped from input files.
META_COLUMNS = frozenset({"id", "version", "created_at", "created_by", "updated_at", "updated_by"})

ACCESS_CLASSES = ("public", "internal", "restricted")


@dataclass(frozen=True)
class Layer:
    name: str
    title: str
    model: type
    geometry_column: str | None = "geom"
    # The geometry type stored: inputs are normalised to it (Polygon -> MultiPolygon ...).
    geometry_type: str | None = None
    geometry_required: bool = True
    natural_key: tuple[str, ...] = ("source", "source_id")
    access: str = "public"
    # Agency staff of this sector (energy, education ...) may read (restricted) and edit it in their territory.
    sector: str | None = None
    editable: bool = False
    editing_roles: tuple[str, ...] = ()
    description: str = ""
    min_zoom: int = 0
    max_zoom: int = 22
    # OGC API numberMatched: "exact", "estimated" (planner), "off", or "auto" (exact up to 100,000 matches).
    number_matched: str = "auto"

    @property
    def table(self) -> Table:
        return self.model.__table__

    @property
    def qualified_table(self) -> str:
        return f"{self.table.schema}.{self.table.name}"

    @property
    def writable_columns(self) -> list[str]:
        """Columns an input file may fill: no ids, stamps or generated values."""
        return [c.name for c in self.table.columns if c.name not in META_COLUMNS and c.computed is None]


_LAYERS: dict[str, Layer] = {}


def register(layer: Layer) -> Layer:
    if layer.access == "restricted" and "territory_id" not in layer.table.columns:
        raise ValueError(f"restricted layer {layer.name} needs a territory_id: access is scoped by territory")
    _LAYERS[layer.name] = layer
    return layer


def get(name: str) -> Layer:
    from layers.errors import NotFound

    try:
        return _LAYERS[name]
    except KeyError:
        raise NotFound(f"Unknown layer '{name}'. Known layers: {', '.join(sorted(_LAYERS))}") from None


def all_layers() -> list[Layer]:
    return list(_LAYERS.values())


PLANNER_ROLES = ("federal", "regional", "municipal")

register(Layer("territories", "Territories (OKTMO)", models.Territory, "boundary", "MULTIPOLYGON",
               geometry_required=False, natural_key=("oktmo",),
               description="Federal subjects, municipal districts, urban okrugs, settlements", max_zoom=16))
register(Layer("parcels", "Cadastral parcels", models.Parcel, "geom", "MULTIPOLYGON", geometry_required=False,
               natural_key=("cadastral_number",), description="Rosreestr land parcels (KPT extracts)", min_zoom=12))
register(Layer("buildings", "Buildings", models.Building, "geom", "MULTIPOLYGON",
               description="Building footprints with floors, living area and residents", min_zoom=13))
register(Layer("street_nodes", "Street network nodes", models.StreetNode, "geom", "POINT", min_zoom=14))
register(Layer("street_edges", "Street network", models.StreetEdge, "geom", "LINESTRING",
               description="Routable street network, noded at intersections", min_zoom=10))
register(Layer("facilities", "Facilities", models.Facility, "geom", "POINT",
               description="Schools, kindergartens, clinics, boiler houses, substations ...", min_zoom=10))
# Critical infrastructure: restricted to the territories of the user's grants.
UTILITY_EDITORS = (*PLANNER_ROLES, "agency")
register(Layer("utility_nodes", "Utility network nodes", models.UtilityNode, "geom", "POINT", access="restricted",
               sector="energy", editable=True, editing_roles=UTILITY_EDITORS))
register(Layer("utility_lines", "Utility network lines", models.UtilityLine, "geom", "MULTILINESTRING",
               access="restricted", sector="energy", editable=True, editing_roles=UTILITY_EDITORS))
register(Layer("functional_zones", "Master plan: functional zones", models.FunctionalZone, "geom", "MULTIPOLYGON",
               editable=True, editing_roles=PLANNER_ROLES))
# Plans in preparation and enterprises' proposals: for officials, and for each enterprise its own.
register(Layer("planned_facilities", "Master plan: planned facilities", models.PlannedFacility, "geom", None,
               access="internal", editable=True, editing_roles=(*PLANNER_ROLES, "enterprise")))
register(Layer("zoning_zones", "Zoning (land-use and development rules)", models.ZoningZone, "geom",
               "MULTIPOLYGON", editable=True, editing_roles=PLANNER_ROLES))
register(Layer("water", "Water", models.WaterBody, "geom", None))
register(Layer("railways", "Railways", models.Railway, "geom", "LINESTRING"))
register(Layer("planning_norms", "Planning norms", models.PlanningNorm, None, None, geometry_required=False,
               natural_key=("region_oktmo", "type_code", "context")))
# Analysis results (spatial/results.py, recomputed by the `analysis-layers` process): read-only layers.
register(Layer("walk_access", "Accessibility on foot (results)", models.WalkAccess, "geom", "MULTIPOLYGON",
               natural_key=("building_id",), min_zoom=12,
               description="Walking minutes from each residential building to the nearest kindergarten, school, "
                           "polyclinic, pharmacy, stop and park, and its 15-minute score (0-100)"))
register(Layer("service_provision", "Service provision by planning norms (results)", models.ServiceProvision,
               "geom", "POLYGON", natural_key=("facility_type", "territory_id", "hex"),
               description="Demand by norms, served demand and deficit (places) per hexagonal district and "
                           "facility type"))
