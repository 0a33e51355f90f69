"""Alembic environment: migrations run inside one transaction on the configured database."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

import layers.models  # noqa: F401  (registers every table)
from layers.models.base import SCHEMA, Base

config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from geoserver_app.config import Config
    from geoserver_app.embedded_pg import database_url

    return database_url(Config.from_env())


def include_object(obj, name, type_, reflected, compare_to):
    # PostGIS and pgRouting own tables in other schemas; only CDT's schema is ours.
    if type_ == "table":
        return getattr(obj, "schema", None) == SCHEMA
    return True


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        from layers.db import engine_for

        engine = engine_for(_url())
        with engine.begin() as connection:
            _run(connection)
        engine.dispose()
    else:
        _run(connectable)


def _run(connection) -> None:
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table_schema=SCHEMA,
        include_schemas=True,
        include_object=include_object,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
