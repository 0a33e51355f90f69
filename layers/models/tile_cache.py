"""The vector tile cache (migration 0003); kept in the database so every worker shares it and the
invalidation trigger can drop exactly the tiles an edit touches."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import ARRAY, DateTime, Index, Integer, LargeBinary, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from layers.models.base import SRID, Base


class TileCache(Base):
    """cdt.tile_cache (migration 0003); mapped so the models match the migrations."""

    __tablename__ = "tile_cache"
    # UNLOGGED (set in the migration): a crash only costs re-rendering.
    __table_args__ = (Index("ix_tile_cache_bounds", "bounds", postgresql_using="gist"), {"prefixes": ["UNLOGGED"]})

    tileset: Mapped[str] = mapped_column(Text, primary_key=True)
    tms: Mapped[str] = mapped_column(Text, primary_key=True)
    z: Mapped[int] = mapped_column(Integer, primary_key=True)
    x: Mapped[int] = mapped_column(Integer, primary_key=True)
    y: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Who shares this tile: "public", "all" (unfiltered), or the key of a read rule (layers/access.py).
    audience: Mapped[str] = mapped_column(Text, primary_key=True, server_default="public")
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    etag: Mapped[str] = mapped_column(Text, nullable=False)
    # The envelope the tile was drawn from, buffer included: what the invalidation trigger intersects.
    bounds = mapped_column(Geometry("POLYGON", srid=SRID, spatial_index=False), nullable=False)
    layers: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
