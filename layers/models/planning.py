"""Indicators, their values per territory and period, programs and goals, scenarios (migration 0011).

An indicator is a row, not code: its formula is an SQL aggregate over a layer (`measure`), an arithmetic
expression over other indicators (`expr`), a member of a computed family (`family`) or values that only arrive by
import (`series`, e.g. Rosstat's municipal database). Values carry a type (actual, forecast, target) and, for
scenario runs, the scenario: base values have none, so a scenario never overwrites them."""

from __future__ import annotations

from datetime import date, datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from layers.models.base import SRID, Base

INDICATOR_KINDS = ("measure", "expr", "family", "series")
DIRECTIONS = ("higher", "lower", "neutral")
AGGREGATIONS = ("sum", "mean_pop", "recompute", "none")
VALUE_TYPES = ("actual", "forecast", "target")
EDIT_OPERATIONS = ("insert", "update", "delete")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Indicator(Base):
    __tablename__ = "indicators"
    __table_args__ = (
        CheckConstraint(_in("kind", INDICATOR_KINDS), name="kind"),
        CheckConstraint(_in("direction", DIRECTIONS), name="direction"),
        CheckConstraint(_in("aggregation", AGGREGATIONS), name="aggregation"),
        CheckConstraint(r"code ~ '^[a-z][a-z0-9_]{0,79}$'", name="code_format"),
    )

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name_ru: Mapped[str] = mapped_column(Text, nullable=False)
    name_en: Mapped[str] = mapped_column(Text, nullable=False)
    unit: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    source_layer: Mapped[str | None] = mapped_column(Text)  # the layer a `measure` aggregates
    formula: Mapped[str | None] = mapped_column(Text)  # NULL only for `series`
    family: Mapped[str | None] = mapped_column(Text, index=True)
    direction: Mapped[str] = mapped_column(Text, nullable=False, server_default="neutral")
    aggregation: Mapped[str] = mapped_column(Text, nullable=False, server_default="recompute")
    periodicity: Mapped[str] = mapped_column(Text, nullable=False, server_default="year")
    provenance: Mapped[str] = mapped_column(Text, nullable=False)  # where the definition and its data come from
    description: Mapped[str | None] = mapped_column(Text)
    builtin: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    created_by: Mapped[str | None] = mapped_column(Text)


class Scenario(Base):
    """A named sandbox: parameter overrides plus edits to master-plan layers (ScenarioEdit); base data untouched."""

    __tablename__ = "scenarios"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territories.id", ondelete="CASCADE"), index=True)
    parameters = mapped_column(JSONB, nullable=False, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    created_by: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class ScenarioEdit(Base):
    """One edit of a scenario to a layer: a new feature, changed properties/geometry of a base feature, or its
    removal. Applied over the base data only inside a transaction that is rolled back."""

    __tablename__ = "scenario_edits"
    __table_args__ = (CheckConstraint(_in("operation", EDIT_OPERATIONS), name="operation"),
                      CheckConstraint("operation = 'insert' OR feature_id IS NOT NULL", name="feature_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scenario_id: Mapped[int] = mapped_column(ForeignKey("scenarios.id", ondelete="CASCADE"), nullable=False,
                                             index=True)
    collection: Mapped[str] = mapped_column(Text, nullable=False)
    feature_id: Mapped[int | None] = mapped_column(Integer)
    operation: Mapped[str] = mapped_column(Text, nullable=False)
    properties = mapped_column(JSONB, nullable=False, server_default="{}")
    geom = mapped_column(Geometry("GEOMETRY", srid=SRID, spatial_index=False))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    created_by: Mapped[str | None] = mapped_column(Text)


class IndicatorValue(Base):
    __tablename__ = "indicator_values"
    __table_args__ = (
        CheckConstraint(_in("value_type", VALUE_TYPES), name="value_type"),
        UniqueConstraint("indicator_code", "territory_id", "period", "value_type", "scenario_id",
                         postgresql_nulls_not_distinct=True),
        Index("ix_indicator_values_territory_id_period", "territory_id", "period"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    indicator_code: Mapped[str] = mapped_column(
        ForeignKey("indicators.code", ondelete="CASCADE", onupdate="CASCADE"), nullable=False)
    territory_id: Mapped[int] = mapped_column(ForeignKey("territories.id", ondelete="CASCADE"), nullable=False)
    period: Mapped[date] = mapped_column(Date, nullable=False)  # the first day of the period (1 January: a year)
    value_type: Mapped[str] = mapped_column(Text, nullable=False, server_default="actual")
    scenario_id: Mapped[int | None] = mapped_column(ForeignKey("scenarios.id", ondelete="CASCADE"), index=True)
    value: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(Text, nullable=False)  # "computed", "rosstat-bdmo:<file>", "manual", ...
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Program(Base):
    __tablename__ = "programs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territories.id", ondelete="CASCADE"), index=True)
    start_year: Mapped[int | None] = mapped_column(Integer)
    end_year: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    created_by: Mapped[str | None] = mapped_column(Text)


class Goal(Base):
    """A goal (or subgoal: parent_id) on one indicator of one territory: target value by a deadline year."""

    __tablename__ = "goals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int | None] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("goals.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    territory_id: Mapped[int] = mapped_column(ForeignKey("territories.id", ondelete="CASCADE"), nullable=False,
                                              index=True)
    indicator_code: Mapped[str | None] = mapped_column(
        ForeignKey("indicators.code", ondelete="RESTRICT", onupdate="CASCADE"), index=True)
    baseline_value: Mapped[float | None] = mapped_column(Float)
    baseline_year: Mapped[int | None] = mapped_column(Integer)
    target_value: Mapped[float | None] = mapped_column(Float)
    target_year: Mapped[int | None] = mapped_column(Integer)
    weight: Mapped[float] = mapped_column(Float, nullable=False, server_default="1")
    # How a generated subgoal got its target from its parent ("proportional", "equal_rate", ...); NULL: by hand.
    split_rule: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    created_by: Mapped[str | None] = mapped_column(Text)
