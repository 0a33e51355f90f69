"""Master plan (functional zones, planned facilities) and zoning (PZZ zones)."""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import ARRAY, CheckConstraint, Computed, Float, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from layers.models.base import SRID, Base, SourceKeyed, Versioned

PLAN_STATUSES = ("existing", "planned", "reconstruction")
_STATUS_CHECK = f"status IN ({', '.join(repr(s) for s in PLAN_STATUSES)})"


class FunctionalZone(Versioned, SourceKeyed, Base):
    """Functional zone of the master plan (генеральный план, Town Planning Code art. 23)."""

    __tablename__ = "functional_zones"
    __table_args__ = (
        UniqueConstraint("source", "source_id"),
        CheckConstraint(_STATUS_CHECK, name="status"),
        Index("ix_functional_zones_geom", "geom", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone_type: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="existing")
    max_floors: Mapped[int | None] = mapped_column(Integer)
    density_people_ha: Mapped[float | None] = mapped_column(Float)
    plan_document: Mapped[str | None] = mapped_column(Text)
    area_m2: Mapped[float | None] = mapped_column(Float, Computed("ST_Area(geom::geography)", persisted=True))
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territories.id"), index=True)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False), nullable=False)


class PlannedFacility(Versioned, SourceKeyed, Base):
    __tablename__ = "planned_facilities"
    __table_args__ = (
        UniqueConstraint("source", "source_id"),
        CheckConstraint(_STATUS_CHECK, name="status"),
        Index("ix_planned_facilities_geom", "geom", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    type_code: Mapped[str] = mapped_column(ForeignKey("facility_types.code"), nullable=False, index=True)
    name: Mapped[str | None] = mapped_column(Text)
    capacity: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="planned")
    planned_year: Mapped[int | None] = mapped_column(Integer)
    plan_document: Mapped[str | None] = mapped_column(Text)
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territories.id"), index=True)
    geom = mapped_column(Geometry("GEOMETRY", srid=SRID, spatial_index=False), nullable=False)


class ZoningZone(Versioned, SourceKeyed, Base):
    """Territorial zone of the land-use and development rules (ПЗЗ, Town Planning Code art. 30)."""

    __tablename__ = "zoning_zones"
    __table_args__ = (
        UniqueConstraint("source", "source_id"),
        Index("ix_zoning_zones_geom", "geom", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone_code: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str | None] = mapped_column(Text)
    # Codes of the classifier of permitted land uses (Rosreestr order П/0412), e.g. "2.1", "3.5.1".
    main_uses: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    conditional_uses: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    auxiliary_uses: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    max_floors: Mapped[int | None] = mapped_column(Integer)
    max_coverage_pct: Mapped[float | None] = mapped_column(Float)
    area_m2: Mapped[float | None] = mapped_column(Float, Computed("ST_Area(geom::geography)", persisted=True))
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territories.id"), index=True)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False), nullable=False)
