"""Fuel and energy balances (Minenergo Order No. 1169): carriers, balances, their cells and the statistical forms'
values behind them. A balance is one (territory, year, kind, scenario); re-loading it replaces its rows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Integer, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from layers.models.base import Base


class EnergyCarrier(Base):
    __tablename__ = "energy_carriers"

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name_ru: Mapped[str] = mapped_column(Text, nullable=False)
    name_en: Mapped[str] = mapped_column(Text, nullable=False)
    balance_column: Mapped[str] = mapped_column(Text, nullable=False)
    natural_unit: Mapped[str | None] = mapped_column(Text)
    tce_per_unit: Mapped[float | None] = mapped_column(Float)
    coefficient_source: Mapped[str] = mapped_column(Text, nullable=False)
    coefficient_set: Mapped[str] = mapped_column(Text, nullable=False)


class FuelBalance(Base):
    __tablename__ = "fuel_balances"
    __table_args__ = (UniqueConstraint("territory_oktmo", "year", "kind", "scenario",
                                       postgresql_nulls_not_distinct=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # NULL when the territory is not among CDT's territories (Moscow Oblast in the demo): OKTMO and name say which.
    territory_id: Mapped[int | None] = mapped_column(ForeignKey("territories.id", ondelete="SET NULL"), index=True)
    territory_oktmo: Mapped[str] = mapped_column(Text, nullable=False)
    territory_name: Mapped[str] = mapped_column(Text, nullable=False)
    year: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(Text, nullable=False, server_default="actual")  # actual | forecast
    scenario: Mapped[str | None] = mapped_column(Text)
    source_file: Mapped[str | None] = mapped_column(Text)
    source_sha256: Mapped[str | None] = mapped_column(Text)
    coefficient_set: Mapped[str] = mapped_column(Text, nullable=False)
    defects = mapped_column(JSONB, nullable=False, server_default="[]")
    loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    created_by: Mapped[str | None] = mapped_column(Text)


class BalanceCell(Base):
    __tablename__ = "balance_cells"

    balance_id: Mapped[int] = mapped_column(ForeignKey("fuel_balances.id", ondelete="CASCADE"), primary_key=True)
    row_code: Mapped[str] = mapped_column(Text, primary_key=True)
    column_code: Mapped[str] = mapped_column(Text, primary_key=True)
    value_tce: Mapped[float | None] = mapped_column(Float)  # thousand tce
    # {"source": "workbook"|"form"|"rule"|"person", "sheet", "cell", "value", "formula"?, "form"?, "rule"?, ...}
    provenance = mapped_column(JSONB, nullable=False)


class FormValue(Base):
    __tablename__ = "form_values"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    balance_id: Mapped[int] = mapped_column(ForeignKey("fuel_balances.id", ondelete="CASCADE"), nullable=False,
                                            index=True)
    carrier: Mapped[str] = mapped_column(Text, nullable=False)
    sheet: Mapped[str | None] = mapped_column(Text)
    row_code: Mapped[str] = mapped_column(Text, nullable=False)
    # The statistical form as written ("4-ТЭР", "23-Н", a supplier's report) or "В баланс" (the value chosen).
    form: Mapped[str] = mapped_column(Text, nullable=False)
    value: Mapped[float | None] = mapped_column(Float)  # thousand tce
    value_natural: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text, nullable=False)  # "workbook" or the template file name
    cell: Mapped[str | None] = mapped_column(Text)  # "C12" in the sheet, or "line 7" in a template
