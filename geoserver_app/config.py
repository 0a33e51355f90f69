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
    # Signs session cookies. Empty: a random key kept in <data_dir>/secret-key (made on first start).
    secret_key: str = ""
    # Session cookies only over HTTPS (browsers treat http://localhost and 127.0.0.1 as secure too).
    cookie_secure: bool = True
    # Reverse proxies in front of CDT (e.g. 1 behind nginx): client addresses come from X-Forwarded-For then.
    proxy_count: int = 0
    # An online base map for the map client (XYZ template, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png).
    # Empty: only CDT's own offline base map, drawn from its vector tiles (closed networks need nothing else).
    basemap_url: str = ""
    basemap_attribution: str = ""
    basemap_max_zoom: int = 19
    # The Telegram bot (`cdt bot`): its token from @BotFather; empty: no bot. The base URL points the bot at
    # another Bot API server (a self-hosted one, in a closed network); empty: Telegram's own.
    telegram_token: str = ""
    telegram_base_url: str = ""
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
            secret_key=os.environ.get("CDT_SECRET_KEY", ""),
            cookie_secure=_env("CDT_COOKIE_SECURE", "1") not in ("0", "false", "no"),
            proxy_count=int(_env("CDT_PROXY_COUNT", "0")),
            basemap_url=os.environ.get("CDT_BASEMAP_URL", "").strip(),
            basemap_attribution=os.environ.get("CDT_BASEMAP_ATTRIBUTION", "").strip(),
            basemap_max_zoom=int(_env("CDT_BASEMAP_MAX_ZOOM", "19")),
            telegram_token=os.environ.get("CDT_TELEGRAM_TOKEN", "").strip(),
            telegram_base_url=os.environ.get("CDT_TELEGRAM_BASE_URL", "").strip(),
        )

    def session_key(self) -> str:
        """The configured secret key, or one generated once and kept (0600) in the data folder."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret-key"
        if not path.exists():
            import secrets

            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
        return path.read_text().strip()

    @property
    def embedded(self) -> bool:
        return not self.database_url
