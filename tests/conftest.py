"""Test fixtures: a real PostGIS, a throwaway database per run (dropped at the end).

The server is CDT's own embedded cluster (started by scripts/test.sh), or the server of
CDT_TEST_DATABASE_URL / CDT_DATABASE_URL when one is given.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from geoserver_app.config import PROJECT_ROOT, Config
from geoserver_app.embedded_pg import drop_database, ensure_database
from layers.db import engine_for, migrate

# The browser tests' fixtures (a live server, Chromium, watched pages).
pytest_plugins = ["tests.browser"]

DATA = PROJECT_ROOT / "data"


def _server_url() -> str:
    given = os.environ.get("CDT_TEST_DATABASE_URL") or os.environ.get("CDT_DATABASE_URL")
    if given:
        url = make_url(given.replace("postgresql://", "postgresql+psycopg://", 1))
        return url.set(database="postgres").render_as_string(hide_password=False)
    from geoserver_app.embedded_pg import EmbeddedCluster

    cluster = EmbeddedCluster(Config.from_env())
    cluster.start()
    return cluster.url("postgres")


@pytest.fixture(scope="session")
def server_url() -> str:
    return _server_url()


@pytest.fixture(scope="session")
def make_database(server_url):
    """Factory of throwaway databases on the test server; all are dropped at the end."""
    created: list[str] = []

    def make(migrated: bool = True) -> str:
        name = f"cdt_test_{uuid.uuid4().hex[:10]}"
        ensure_database(server_url, name)
        created.append(name)
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        if migrated:
            migrate(url)
        return url

    yield make
    for name in created:
        drop_database(server_url, name)


@pytest.fixture(scope="session")
def db_url(make_database) -> str:
    """The run's main database: migrated, with the demo city loaded once."""
    from layers.ingest.demo import load_demo

    url = make_database()
    engine = engine_for(url)
    load_demo(engine, DATA, actor="test:demo", echo=lambda _msg: None)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def engine(db_url):
    eng = engine_for(db_url)
    yield eng
    eng.dispose()


def table_fingerprints(engine) -> dict[str, str]:
    """A digest of every CDT table's full contents, to prove a failed load changed nothing. The audit log
    (which records refusals by design) and the tile cache (filled by reads) are left out."""
    with engine.connect() as conn:
        tables = conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'cdt' AND tablename NOT IN ("
            "'audit_log', 'tile_cache') ORDER BY tablename")).scalars().all()
        return {t: conn.execute(text(_fingerprint_sql(t))).scalar_one() for t in tables}


# The big tables: every committed insert, update or delete changes a row version's (xmin, ctid), which is far
# cheaper to hash than the rows' contents and as sure to see a write (a rolled-back one leaves both as they were).
BY_ROW_VERSION = frozenset({"buildings", "street_edges", "street_nodes", "history", "facilities", "water",
                            "railways", "parcels"})


def _fingerprint_sql(table: str) -> str:
    if table in BY_ROW_VERSION:
        return (f"SELECT count(*) || ':' || coalesce(md5(string_agg(x.xmin::text || x.ctid::text, ',' "
                f"ORDER BY x.ctid)), '') FROM cdt.{table} x")
    # By content; a token's last use is bookkeeping, not data: using one must not count as a change.
    row = "(to_jsonb(x) - 'last_used_at')::text"
    return f"SELECT count(*) || ':' || coalesce(md5(string_agg({row}, '|' ORDER BY {row})), '') FROM cdt.{table} x"


@pytest.fixture
def unchanged(engine):
    """Asserts at the end of the test that no CDT table changed."""
    before = table_fingerprints(engine)
    yield
    after = table_fingerprints(engine)
    changed = [t for t in before if before[t] != after.get(t)]
    assert not changed, f"tables changed by a failed load: {changed}"


def scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


# --- accounts for tests that act as someone ----------------------------------------------------------------
# login -> grants (role, OKTMO of the territory or None, sector). Vologda city 19701000 lies in Vologda oblast
# 19000000; Ekaterinburg 65701000 in Sverdlovsk oblast 65000000.
TEST_USERS = {
    "t_federal": [("federal", None, None)],
    "t_region_vologda": [("regional", "19000000", None)],
    "t_city_vologda": [("municipal", "19701000", None)],
    "t_city_ekb": [("municipal", "65701000", None)],
    "t_energy_vologda": [("agency", "19000000", "energy")],
    "t_education_vologda": [("agency", "19000000", "education")],
    "t_analyst_vologda": [("analyst", "19000000", None)],
    "t_enterprise": [("enterprise", None, None)],
    "t_enterprise_other": [("enterprise", None, None)],
}


def make_test_users(engine, token_name: str = "tests") -> dict[str, str]:
    """The users of TEST_USERS in the engine's database (made or reset), with a new Bearer token each."""
    from layers import accounts

    out = {}
    with engine.begin() as conn:
        ids = dict(conn.execute(text("SELECT oktmo, id FROM cdt.territories")).all())
        for login, grants in TEST_USERS.items():
            uid = conn.execute(text("INSERT INTO cdt.users (login, display_name) VALUES (:l, :l) "
                                    "ON CONFLICT (login) DO UPDATE SET active = true RETURNING id"),
                               {"l": login}).scalar()
            conn.execute(text("DELETE FROM cdt.grants WHERE user_id = :u"), {"u": uid})
            for role, oktmo, sector in grants:
                conn.execute(text("INSERT INTO cdt.grants (user_id, role, territory_id, sector) "
                                  "VALUES (:u, :r, :t, :s)"),
                             {"u": uid, "r": role, "t": ids[oktmo] if oktmo else None, "s": sector})
            token = accounts.new_token()
            conn.execute(text("INSERT INTO cdt.api_tokens (user_id, name, token_hash) VALUES (:u, :n, :h)"),
                         {"u": uid, "n": token_name, "h": accounts.hash_token(token)})
            out[login] = token
    return out


@pytest.fixture(scope="session")
def tokens(engine) -> dict[str, str]:
    """A Bearer token per test user (created once per run, straight in the database)."""
    return make_test_users(engine)


@contextmanager
def live_server(wsgi_app, name: str) -> Iterator[str]:
    """A real threaded HTTP server for `wsgi_app` on a free 127.0.0.1 port; yields its base URL."""
    httpd = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)
        httpd.server_close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item (`item.rep_call`), e.g. for a screenshot on failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
