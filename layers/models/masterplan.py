"""Master plan (functional zones, planned facilities) and zoning (PZZ zones)."""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import ARRAY, CheckConstraint, Computed, Float, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from layers.models.base import SRID, Base, SourceKeyed, Versioned

PLAN_STATUSES = ("existing", "planned", "reconstruction")
# Functional zone types after the classifier of Order of the Ministry of Economic Development No. 10 of
# 9 Jan 2018 (Requirements for describing and showing objects in territorial planning documents), appendix,
# section "functional zones". Suggested, not enforced: master plans in force use local variants.
FUNCTIONAL_ZONE_TYPES = {
    "residential": "Жилая зона",
    "business": "Общественно-деловая зона",
    "industrial": "Производственная зона",
    "engineering": "Зона инженерной инфраструктуры",
    "transport": "Зона транспортной инфраструктуры",
    "agricultural": "Зона сельскохозяйственного использования",
    "recreation": "Зона рекреационного назначения",
    "green": "Зона озелененных территорий общего пользования",
    "protected": "Зона особо охраняемых территорий",
    "special": "Зона специального назначения",
    "regime": "Зона режимных территорий",
    "water": "Зона акваторий",
    "other": "Иные зоны",
}
_STATUS_INFO = {"title": "Status", "enum": list(PLAN_STATUSES)}
_FLOORS_INFO = {"title": "Max floors", "minimum": 0, "maximum": 200}
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
    zone_type: Mapped[str] = mapped_column(Text, nullable=False, info={
        "title": "Zone type", "examples": list(FUNCTIONAL_ZONE_TYPES), "maxLength": 100})
    name: Mapped[str | None] = mapped_column(Text, info={"title": "Name", "maxLength": 500})
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="existing", info=_STATUS_INFO)
    max_floors: Mapped[int | None] = mapped_column(Integer, info=_FLOORS_INFO)
    density_people_ha: Mapped[float | None] = mapped_column(Float, info={
        "title": "Population density, people/ha", "minimum": 0})
    plan_document: Mapped[str | None] = mapped_column(Text, info={"title": "Plan document", "maxLength": 500})
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
    type_code: Mapped[str] = mapped_column(ForeignKey("facility_types.code"), nullable=False, index=True,
                                           info={"title": "Facility type"})
    name: Mapped[str | None] = mapped_column(Text, info={"title": "Name", "maxLength": 500})
    capacity: Mapped[float | None] = mapped_column(Float, info={"title": "Capacity", "minimum": 0})
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="planned", info=_STATUS_INFO)
    planned_year: Mapped[int | None] = mapped_column(Integer, info={
        "title": "Planned year", "minimum": 2000, "maximum": 2100})
    plan_document: Mapped[str | None] = mapped_column(Text, info={"title": "Plan document", "maxLength": 500})
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
    zone_code: Mapped[str] = mapped_column(Text, nullable=False, info={
        "title": "Zone code", "description": "e.g. Ж-1, О-2, П-1, Р-1", "maxLength": 50})
    name: Mapped[str | None] = mapped_column(Text, info={"title": "Name", "maxLength": 500})
    # Codes of the classifier of permitted land uses (Rosreestr order П/0412), e.g. "2.1", "3.5.1".
    main_uses: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    conditional_uses: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    auxiliary_uses: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    max_floors: Mapped[int | None] = mapped_column(Integer, info=_FLOORS_INFO)
    max_coverage_pct: Mapped[float | None] = mapped_column(Float, info={
        "title": "Max site coverage, %", "minimum": 0, "maximum": 100})
    area_m2: Mapped[float | None] = mapped_column(Float, Computed("ST_Area(geom::geography)", persisted=True))
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territories.id"), index=True)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False), nullable=False)
