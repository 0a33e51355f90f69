"""Engines, transactions and migrations: the one way CDT code reaches PostGIS."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, text

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


@lru_cache(maxsize=8)
def engine_for(url: str, statement_timeout_ms: int = 0, pre_ping: bool = True) -> Engine:
    # search_path is pinned: a database user named like the schema ("$user") must not make
    # unqualified names (or PostGIS's own objects) land in CDT's schema.
    options = "-c search_path=public"
    if statement_timeout_ms:
        options += f" -c statement_timeout={statement_timeout_ms}"
    # The web server turns pre-ping off: it is one more round trip on every request, and a connection lost
    # to a database restart fails one request and is then replaced (SQLAlchemy invalidates the pool).
    return create_engine(url, pool_pre_ping=pre_ping, pool_size=8, max_overflow=8,
                         connect_args={"options": options, "application_name": "cdt"})


def reader(engine: Engine) -> Engine:
    """The same pool in autocommit: a read is one statement with no BEGIN/ROLLBACK round trips."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


@contextmanager
def transaction(engine: Engine, actor: str) -> Iterator[Connection]:
    """One transaction with the acting user recorded for the history triggers."""
    with engine.begin() as conn:
        conn.execute(text("SELECT set_config('cdt.actor', :actor, true)"), {"actor": actor})
        yield conn


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # configparser interpolation: a '%' in a password must be doubled
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("postgresql://unused")).get_current_head()


def current_revision(conn: Connection) -> str | None:
    ctx = MigrationContext.configure(conn, opts={"version_table_schema": "cdt"})
    return ctx.get_current_revision()
