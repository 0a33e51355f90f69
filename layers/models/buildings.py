"""Buildings: footprints with floors, living area and residents."""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import CheckConstraint, Computed, Float, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from layers.models.base import SRID, Base, SourceKeyed, Versioned


class Building(Versioned, SourceKeyed, Base):
    __tablename__ = "buildings"
    __table_args__ = (
        UniqueConstraint("source", "source_id"),
        CheckConstraint("floors IS NULL OR floors BETWEEN 0 AND 200", name="floors"),
        CheckConstraint("residents IS NULL OR residents >= 0", name="residents"),
        Index("ix_buildings_geom", "geom", postgresql_using="gist"),
        # Search box (migration 0006): ILIKE '%word%' and similarity ranking.
        Index("ix_buildings_address_trgm", "address", postgresql_using="gin",
              postgresql_ops={"address": "gin_trgm_ops"}),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    floors: Mapped[int | None] = mapped_column(Integer)
    living_area_m2: Mapped[float | None] = mapped_column(Float)
    floor_area_m2: Mapped[float | None] = mapped_column(Float)
    residents: Mapped[int | None] = mapped_column(Integer)
    use: Mapped[str | None] = mapped_column(Text)
    is_living: Mapped[bool | None]
    year: Mapped[int | None] = mapped_column(Integer)
    address: Mapped[str | None] = mapped_column(Text)
    footprint_m2: Mapped[float | None] = mapped_column(Float, Computed("ST_Area(geom::geography)", persisted=True))
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territories.id"), index=True)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False), nullable=False)
