"""A record of each successful load, written in the load's own transaction.

It lets `cdt load demo` skip files already loaded (same content hash, same options),
so running the platform twice is fast and changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from layers.models.base import Base


class IngestRun(Base):
    __tablename__ = "ingest_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    layer: Mapped[str] = mapped_column(Text, nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False)
    # sha256 of the file(s) plus the load options: the identity of a load.
    fingerprint: Mapped[str] = mapped_column(Text, nullable=False, index=True)
    report = mapped_column(JSONB, nullable=False)
    actor: Mapped[str | None] = mapped_column(Text)
    loaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
