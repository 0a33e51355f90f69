"""Street network: nodes and edges noded at intersections (pgRouting-ready)."""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, Boolean, Computed, Float, ForeignKey, Index, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from layers.models.base import SRID, Base, SourceKeyed, Versioned


class StreetNode(Versioned, SourceKeyed, Base):
    __tablename__ = "street_nodes"
    __table_args__ = (
        UniqueConstraint("source", "source_id"),
        Index("ix_street_nodes_geom", "geom", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=False)


class StreetEdge(Versioned, SourceKeyed, Base):
    __tablename__ = "street_edges"
    __table_args__ = (
        UniqueConstraint("source", "source_id"),
        Index("ix_street_edges_geom", "geom", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    from_node: Mapped[int] = mapped_column(ForeignKey("street_nodes.id", ondelete="CASCADE"), index=True)
    to_node: Mapped[int] = mapped_column(ForeignKey("street_nodes.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(Text)
    highway: Mapped[str | None] = mapped_column(Text)
    walk: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    drive: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    oneway: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    speed_kmh: Mapped[float | None] = mapped_column(Float)
    length_m: Mapped[float | None] = mapped_column(Float, Computed("ST_Length(geom::geography)", persisted=True))
    geom = mapped_column(Geometry("LINESTRING", srid=SRID, spatial_index=False), nullable=False)
