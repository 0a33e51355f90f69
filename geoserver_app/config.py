"""Configuration from `CDT_*` environment variables, with defaults that run the demo."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _pairs(value: str) -> dict[str, str]:
    return dict(p.strip().split("=", 1) for p in value.split(",") if "=" in p)


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
    worker_class: str = "sync"
    threads: int = 4
    demo_data: Path = PROJECT_ROOT / "data"
    statement_timeout_ms: int = 30000
    # OGC API Features paging: the default page size and the largest a client may ask for.
    items_default_limit: int = 10
    items_max_limit: int = 10000
    # numberMatched per collection: "exact", "estimated", "off" or "auto" (exact up to 100,000 matches);
    # e.g. CDT_NUMBER_MATCHED="buildings=estimated,street_edges=off". Unlisted collections use "auto".
    number_matched: dict = field(default_factory=dict)
    max_request_bytes: int = 10 * 1024 * 1024
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
            worker_class=_env("CDT_WORKER_CLASS", "sync"),
            threads=int(_env("CDT_THREADS", "4")),
            demo_data=Path(_env("CDT_DEMO_DATA", str(PROJECT_ROOT / "data"))),
            statement_timeout_ms=int(_env("CDT_STATEMENT_TIMEOUT_MS", "30000")),
            items_default_limit=int(_env("CDT_ITEMS_DEFAULT_LIMIT", "10")),
            items_max_limit=int(_env("CDT_ITEMS_MAX_LIMIT", "10000")),
            number_matched=_pairs(os.environ.get("CDT_NUMBER_MATCHED", "")),
            max_request_bytes=int(_env("CDT_MAX_REQUEST_BYTES", str(10 * 1024 * 1024))),
        )

    @property
    def embedded(self) -> bool:
        return not self.database_url
