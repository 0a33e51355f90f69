"""Analysis results kept as layers (migration 0009): published as OGC collections with vector tiles like any other
layer, recomputed by the `analysis-layers` process (and `cdt analyse`), never edited by hand."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, LargeBinary, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from layers.models.base import SRID, Base

# The daily needs of the 15-minute score (spatial.access_service.ESSENTIAL_TYPES), one column of minutes each.
WALK_TYPES = ("kindergarten", "school", "polyclinic", "pharmacy", "stop", "park")


class WalkAccess(Base):
    """Walking time from each residential building to the nearest facility of each daily-need type."""

    __tablename__ = "walk_access"
    __table_args__ = (Index("ix_walk_access_geom", "geom", postgresql_using="gist"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # the building's id
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id", ondelete="CASCADE"), nullable=False,
                                             unique=True)
    residents: Mapped[int | None] = mapped_column(Integer)
    # Minutes on foot over the street network (access legs included); NULL: none reachable or none in the data.
    kindergarten_min: Mapped[float | None] = mapped_column(Float)
    school_min: Mapped[float | None] = mapped_column(Float)
    polyclinic_min: Mapped[float | None] = mapped_column(Float)
    pharmacy_min: Mapped[float | None] = mapped_column(Float)
    stop_min: Mapped[float | None] = mapped_column(Float)
    park_min: Mapped[float | None] = mapped_column(Float)
    # 0..100: the share of the daily-need types present in the data reachable within 15 minutes.
    score_15min: Mapped[float | None] = mapped_column(Float)
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territories.id"), index=True)
    # A recomputation replaces the rows: version 1 and the time computed, which the ETag of a feature names.
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False), nullable=False)


class ServiceProvision(Base):
    """Provision of a facility type by planning norms per hexagonal district (spatial.needs_service)."""

    __tablename__ = "service_provision"
    __table_args__ = (
        UniqueConstraint("facility_type", "territory_id", "hex"),
        Index("ix_service_provision_geom", "geom", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    facility_type: Mapped[str] = mapped_column(ForeignKey("facility_types.code"), nullable=False, index=True)
    hex: Mapped[str] = mapped_column(Text, nullable=False)
    residents: Mapped[float | None] = mapped_column(Float)
    demand: Mapped[float | None] = mapped_column(Float)
    served: Mapped[float | None] = mapped_column(Float)
    deficit: Mapped[float | None] = mapped_column(Float)
    covered_share: Mapped[float | None] = mapped_column(Float)
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territories.id"), index=True)
    # A recomputation replaces the rows: version 1 and the time computed, which the ETag of a feature names.
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    geom = mapped_column(Geometry("POLYGON", srid=SRID, spatial_index=False), nullable=False)


# Destinations of the access indicator families (planning.indicators.families), in the order of the arrays below.
ACCESS_DESTINATIONS = ("kindergarten", "school", "college", "university", "polyclinic", "hospital", "pharmacy",
                       "sports", "culture", "library", "stop", "park")


class BuildingAccess(Base):
    """Minutes from each residential building to the nearest facility of each destination type, on foot and by
    car over the street network (NaN: none of that type in the data or none reachable). Input of the indicator
    families; recomputed with the other result layers (migration 0011)."""

    __tablename__ = "building_access"

    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id", ondelete="CASCADE"), primary_key=True)
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territories.id"), index=True)
    residents: Mapped[int | None] = mapped_column(Integer)
    floors: Mapped[int | None] = mapped_column(Integer)
    # Minutes as float32 little-endian, walk then drive, one per ACCESS_DESTINATIONS each (96 bytes): packed, so
    # that the indicator families read a million buildings in a second (planning.indicators.families).
    minutes: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
