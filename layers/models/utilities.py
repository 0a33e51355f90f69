"""Utility networks: heat, power, gas and water lines and nodes with capacity and load."""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import CheckConstraint, Computed, Float, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from layers.models.base import SRID, Base, SourceKeyed, Versioned

UTILITY_KINDS = ("heat", "power", "gas", "water", "sewer")
_KIND_CHECK = f"kind IN ({', '.join(repr(k) for k in UTILITY_KINDS)})"


class UtilityNode(Versioned, SourceKeyed, Base):
    """Sources, substations, pumping stations, wells, consumers' inputs."""

    __tablename__ = "utility_nodes"
    __table_args__ = (
        UniqueConstraint("source", "source_id"),
        CheckConstraint(_KIND_CHECK, name="kind"),
        Index("ix_utility_nodes_geom", "geom", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    node_type: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    capacity: Mapped[float | None] = mapped_column(Float)
    load: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str | None] = mapped_column(Text)
    facility_id: Mapped[int | None] = mapped_column(ForeignKey("facilities.id", ondelete="SET NULL"), index=True)
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territories.id"), index=True)
    geom = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False), nullable=False)


class UtilityLine(Versioned, SourceKeyed, Base):
    __tablename__ = "utility_lines"
    __table_args__ = (
        UniqueConstraint("source", "source_id"),
        CheckConstraint(_KIND_CHECK, name="kind"),
        Index("ix_utility_lines_geom", "geom", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    from_node: Mapped[int | None] = mapped_column(ForeignKey("utility_nodes.id", ondelete="SET NULL"))
    to_node: Mapped[int | None] = mapped_column(ForeignKey("utility_nodes.id", ondelete="SET NULL"))
    diameter_mm: Mapped[float | None] = mapped_column(Float)
    voltage_kv: Mapped[float | None] = mapped_column(Float)
    pressure_class: Mapped[str | None] = mapped_column(Text)
    capacity: Mapped[float | None] = mapped_column(Float)
    load: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str | None] = mapped_column(Text)
    year: Mapped[int | None] = mapped_column(Integer)
    length_m: Mapped[float | None] = mapped_column(Float, Computed("ST_Length(geom::geography)", persisted=True))
    # The territory the line lies in (restricted layer: access is scoped by territory).
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territories.id"), index=True)
    geom = mapped_column(Geometry("MULTILINESTRING", srid=SRID, spatial_index=False), nullable=False)
