"""Base-map context layers: water bodies and railways."""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import Index, Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from layers.models.base import SRID, Base, SourceKeyed, Versioned


class WaterBody(Versioned, SourceKeyed, Base):
    __tablename__ = "water"
    __table_args__ = (UniqueConstraint("source", "source_id"), Index("ix_water_geom", "geom", postgresql_using="gist"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    # Rivers come as lines, lakes and river banks as polygons.
    geom = mapped_column(Geometry("GEOMETRY", srid=SRID, spatial_index=False), nullable=False)


class Railway(Versioned, SourceKeyed, Base):
    __tablename__ = "railways"
    __table_args__ = (
        UniqueConstraint("source", "source_id"),
        Index("ix_railways_geom", "geom", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    geom = mapped_column(Geometry("LINESTRING", srid=SRID, spatial_index=False), nullable=False)
