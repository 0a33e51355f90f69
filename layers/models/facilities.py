"""Facilities (schools, clinics, boiler houses, ...) typed by a registry table."""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from layers.models.base import SRID, Base, SourceKeyed, Versioned


class FacilityType(Base):
    """Registry of facility types; a new type is a row, not a code change."""

    __tablename__ = "facility_types"

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name_ru: Mapped[str] = mapped_column(Text, nullable=False)
    name_en: Mapped[str] = mapped_column(Text, nullable=False)
    sector: Mapped[str] = mapped_column(Text, nullable=False)
    capacity_unit: Mapped[str] = mapped_column(Text, nullable=False)


class Facility(Versioned, SourceKeyed, Base):
    __tablename__ = "facilities"
    __table_args__ = (
        UniqueConstraint("source", "source_id"),
        CheckConstraint("capacity IS NULL OR capacity >= 0", name="capacity"),
        Index("ix_facilities_geom", "geom", postgresql_using="gist"),
        # Search box (migration 0006): ILIKE '%word%' and similarity ranking.
        Index("ix_facilities_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
        Index("ix_facilities_address_trgm", "address", postgresql_using="gin",
              postgresql_ops={"address": "gin_trgm_ops"}),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    type_code: Mapped[str] = mapped_column(ForeignKey("facility_types.code"), index=True, nullable=False)
    name: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    capacity: Mapped[float | None] = mapped_column(Float)
    capacity_unit: Mapped[str | None] = mapped_column(Text)
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id", ondelete="SET NULL"), index=True)
    parcel_id: Mapped[int | None] = mapped_column(ForeignKey("parcels.id", ondelete="SET NULL"), index=True)
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territories.id"), index=True)
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=False)
