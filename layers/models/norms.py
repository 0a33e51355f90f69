"""Planning norms per region and facility type, each with its source document."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from layers.models.base import Base, Versioned


class PlanningNorm(Versioned, Base):
    __tablename__ = "planning_norms"
    __table_args__ = (UniqueConstraint("region_oktmo", "type_code", "context", postgresql_nulls_not_distinct=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # NULL region: a federal norm (e.g. SP 42.13330.2016); otherwise the OKTMO of a federal subject.
    region_oktmo: Mapped[str | None] = mapped_column(Text)
    type_code: Mapped[str] = mapped_column(ForeignKey("facility_types.code"), nullable=False)
    # Where the norm applies when it differs within a region, e.g. "low-rise or rural".
    context: Mapped[str | None] = mapped_column(Text)
    demand_per_1000: Mapped[float | None] = mapped_column(Float)
    demand_unit: Mapped[str | None] = mapped_column(Text)
    max_walk_radius_m: Mapped[float | None] = mapped_column(Float)
    max_walk_time_min: Mapped[float | None] = mapped_column(Float)
    source_document: Mapped[str] = mapped_column(Text, nullable=False)
