"""Configuration from `CDT_*` environment variables, with defaults that run the demo."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


@dataclass(frozen=True)
class Config:
    # Empty means: use CDT's own embedded PostGIS cluster.
    database_url: str = ""
    data_dir: Path = PROJECT_ROOT / ".cdt"
    pg_port: int = 54329
    pg_system_user: str = "postgres"
    pg_bin_dir: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    demo_data: Path = PROJECT_ROOT / "data"
    statement_timeout_ms: int = 30000
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Config:
        return cls(
            database_url=os.environ.get("CDT_DATABASE_URL", "").strip(),
            data_dir=Path(_env("CDT_DATA_DIR", str(PROJECT_ROOT / ".cdt"))),
            pg_port=int(_env("CDT_PG_PORT", "54329")),
            pg_system_user=_env("CDT_PG_SYSTEM_USER", "postgres"),
            pg_bin_dir=_env("CDT_PG_BIN", ""),
            host=_env("CDT_HOST", "127.0.0.1"),
            port=int(_env("CDT_PORT", "8000")),
            workers=int(_env("CDT_WORKERS", "2")),
            demo_data=Path(_env("CDT_DEMO_DATA", str(PROJECT_ROOT / "data"))),
            statement_timeout_ms=int(_env("CDT_STATEMENT_TIMEOUT_MS", "30000")),
        )

    @property
    def embedded(self) -> bool:
        return not self.database_url
