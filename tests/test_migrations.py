"""Migrations up and down on an empty database, and the models agree with them."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

import layers.models  # noqa: F401
from layers import registry
from layers.db import current_revision, downgrade, engine_for, head_revision, migrate
from layers.models import VERSIONED_TABLES, Base


def _tables(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'cdt'")).scalars())


def test_up_down_up_on_empty_database(make_database):
    url = make_database(migrated=False)
    engine = engine_for(url)
    assert _tables(engine) == set()
    migrate(url)
    tables = _tables(engine)
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        triggers = set(conn.execute(text(
            "SELECT tgname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid "
                "WHERE NOT tgisinternal AND c.relnamespace = 'cdt'::regnamespace"
        )).scalars())
        gist = set(conn.execute(text(
            "SELECT tablename || '.' || substring(indexdef from 'USING gist \\((\\w+)\\)') FROM pg_indexes "
            "WHERE schemaname = 'cdt' AND indexdef LIKE '%USING gist%'")).scalars())
        assert conn.execute(text("SELECT count(*) FROM cdt.facility_types")).scalar() >= 10
        assert conn.execute(text("SELECT count(*) FROM cdt.land_categories")).scalar() == 8
    for table in VERSIONED_TABLES:
        assert f"{table}_stamp" in triggers and f"{table}_history_upd" in triggers
    # every layer's geometry column has its GiST index
    assert {f"{lyr.table.name}.{lyr.geometry_column}" for lyr in registry.all_layers() if lyr.geometry_column} <= gist

    downgrade(url, "base")
    assert _tables(engine) <= {"alembic_version"}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pg_proc WHERE pronamespace = 'cdt'::regnamespace")
                            ).scalar() == 0
    migrate(url)
    assert {t.name for t in Base.metadata.sorted_tables} <= _tables(engine)
    engine.dispose()


def test_models_match_migrations(make_database):
    """Autogenerate finds nothing to add: every model change has its migration."""
    engine = engine_for(make_database())
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={
            "include_schemas": True, "version_table_schema": "cdt",
            "include_object": lambda obj, name, type_, reflected, compare_to:
                type_ != "table" or getattr(obj, "schema", None) == "cdt",
        })
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == []
