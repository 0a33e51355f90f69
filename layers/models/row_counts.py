"""Exact row counts of the layer tables, kept by statement triggers (migration 0004)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Text
from sqlalchemy.orm import Mapped, mapped_column

from layers.models.base import Base


class RowCount(Base):
    __tablename__ = "row_counts"

    table_name: Mapped[str] = mapped_column(Text, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, nullable=False)
