"""The CDT data model. Importing this package registers every table on `Base.metadata`."""

from layers.models.accounts import ApiToken, AuditEntry, Grant, User
from layers.models.base import SCHEMA, SRID, Base
from layers.models.basemap import Railway, WaterBody
from layers.models.buildings import Building
from layers.models.cadastre import CADASTRAL_NUMBER_PATTERN, LandCategory, Parcel
from layers.models.energy import BalanceCell, EnergyCarrier, FormValue, FuelBalance
from layers.models.facilities import Facility, FacilityType
from layers.models.history import History
from layers.models.ingest_log import IngestRun
from layers.models.jobs import JOB_STATUSES, Job
from layers.models.masterplan import FunctionalZone, PlannedFacility, ZoningZone
from layers.models.network import StreetEdge, StreetNode
from layers.models.norms import PlanningNorm
from layers.models.planning import Goal, Indicator, IndicatorValue, Program, Scenario, ScenarioEdit
from layers.models.results import ACCESS_DESTINATIONS, WALK_TYPES, BuildingAccess, ServiceProvision, WalkAccess
from layers.models.row_counts import RowCount
from layers.models.telegram import TelegramCode, TelegramLink
from layers.models.territory import TERRITORY_LEVELS, Territory
from layers.models.tile_cache import TileCache
from layers.models.utilities import UtilityLine, UtilityNode

__all__ = [
    "ACCESS_DESTINATIONS", "BuildingAccess", "Goal", "Indicator", "IndicatorValue", "Program", "Scenario",
    "ScenarioEdit", "BalanceCell", "EnergyCarrier", "FormValue", "FuelBalance",
    "ApiToken", "AuditEntry", "Grant", "User",
    "SCHEMA", "SRID", "Base", "Building", "CADASTRAL_NUMBER_PATTERN", "Facility", "FacilityType",
    "FunctionalZone", "History", "IngestRun", "JOB_STATUSES", "Job",
    "LandCategory", "Parcel", "PlannedFacility", "PlanningNorm", "Railway",
    "RowCount", "ServiceProvision", "WALK_TYPES", "WalkAccess",
    "StreetEdge", "StreetNode", "TelegramCode", "TelegramLink",
    "TERRITORY_LEVELS", "Territory", "TileCache", "UtilityLine", "UtilityNode",
    "WaterBody", "ZoningZone",
]

# Tables whose rows carry a version and a history (see migrations: cdt.track_changes).
VERSIONED_TABLES = [
    m.__tablename__ for m in (
        Territory, Parcel, Building, StreetNode, StreetEdge, Facility, UtilityNode, UtilityLine,
        FunctionalZone, PlannedFacility, ZoningZone, WaterBody, Railway, PlanningNorm,
    )
]
