"""Jobs of OGC API Processes (migration 0007): status, progress and results in the database, so any worker
process answers for any job."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Float, Index, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from layers.models.base import Base

JOB_STATUSES = ("accepted", "running", "successful", "failed", "dismissed")
RESPONSES = ("document", "raw")  # how GET /jobs/{id}/results answers (the execute request's "response")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in JOB_STATUSES)})", name="status"),
        CheckConstraint("progress BETWEEN 0 AND 100", name="progress"),
        CheckConstraint(f"response IN ({', '.join(repr(r) for r in RESPONSES)})", name="response"),
        Index("ix_jobs_created_by", "created_by"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)  # a random UUID
    process_id: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="accepted")
    progress: Mapped[float] = mapped_column(Float, nullable=False, server_default="0")
    message: Mapped[str | None] = mapped_column(Text)
    inputs: Mapped[dict] = mapped_column(JSONB, nullable=False)
    response: Mapped[str] = mapped_column(Text, nullable=False, server_default="document")
    results: Mapped[dict | None] = mapped_column(JSONB)
    error: Mapped[dict | None] = mapped_column(JSONB)
    created_by: Mapped[str] = mapped_column(Text, nullable=False)  # the actor, e.g. user:vologda_city
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
