"""Cadastral parcels (Rosreestr) and the land category classifier."""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import CheckConstraint, Computed, Float, ForeignKey, Index, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from layers.models.base import SRID, Base, SourceKeyed, Versioned

# Rosreestr: cadastral district NN:NN, block of 6 or 7 digits, parcel number.
CADASTRAL_NUMBER_PATTERN = r"^\d{2}:\d{2}:\d{6,7}:\d+$"


class LandCategory(Base):
    """Rosreestr classifier dCategories (land categories, Land Code art. 7)."""

    __tablename__ = "land_categories"

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)


class Parcel(Versioned, SourceKeyed, Base):
    __tablename__ = "parcels"
    __table_args__ = (
        CheckConstraint(f"cadastral_number ~ '{CADASTRAL_NUMBER_PATTERN}'", name="cadastral_number_format"),
        Index("ix_parcels_geom", "geom", postgresql_using="gist"),
        # Search box (migration 0006): prefix search by cadastral number under any collation.
        Index("ix_parcels_cadastral_number_prefix", "cadastral_number",
              postgresql_ops={"cadastral_number": "text_pattern_ops"}),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cadastral_number: Mapped[str] = mapped_column(Text, unique=True, nullable=False)
    land_category_code: Mapped[str | None] = mapped_column(ForeignKey("land_categories.code"))
    land_category: Mapped[str | None] = mapped_column(Text)
    permitted_use_code: Mapped[str | None] = mapped_column(Text)
    permitted_use: Mapped[str | None] = mapped_column(Text)
    area_declared_m2: Mapped[float | None] = mapped_column(Float)
    area_m2: Mapped[float | None] = mapped_column(Float, Computed("ST_Area(geom::geography)", persisted=True))
    address: Mapped[str | None] = mapped_column(Text)
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territories.id"), index=True)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False))
