"""Territories: the OKTMO hierarchy from federal subjects down to city districts."""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from layers.models.base import SRID, Base, Versioned

TERRITORY_LEVELS = (
    "federal_subject",
    "municipal_district",
    "urban_okrug",
    "municipal_okrug",
    "settlement",
    "city_district",
)


class Territory(Versioned, Base):
    __tablename__ = "territories"
    __table_args__ = (
        CheckConstraint(f"level IN ({', '.join(repr(v) for v in TERRITORY_LEVELS)})", name="level"),
        CheckConstraint(r"oktmo ~ '^\d{8}(\d{3})?$'", name="oktmo_format"),
        Index("ix_territories_boundary", "boundary", postgresql_using="gist"),
        # Search box (migration 0006): ILIKE '%word%' and similarity ranking.
        Index("ix_territories_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    oktmo: Mapped[str] = mapped_column(Text, unique=True, nullable=False)
    okato: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    level: Mapped[str] = mapped_column(Text, nullable=False)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("territories.id", ondelete="RESTRICT"), index=True)
    population: Mapped[int | None] = mapped_column(BigInteger)
    population_source: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str | None] = mapped_column(Text)
    # The regional cadastral system (МСК) the OGC API offers for this territory, e.g. "MSK-35-2".
    local_crs: Mapped[str | None] = mapped_column(Text)
    boundary = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False))
    centre = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
