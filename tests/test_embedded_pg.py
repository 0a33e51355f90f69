"""CDT's own PostGIS cluster: created, started, used and stopped in a private folder."""

import socket

import pytest
from sqlalchemy import text

from geoserver_app import embedded_pg
from geoserver_app.config import Config
from geoserver_app.embedded_pg import EmbeddedCluster, EmbeddedDatabaseError
from layers.db import engine_for


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_private_cluster_lifecycle(tmp_path_factory):
    data = tmp_path_factory.mktemp("cluster") / "cdt-data"
    data.parent.chmod(0o755)
    cluster = EmbeddedCluster(Config(data_dir=data, pg_port=_free_port()))
    try:
        url = cluster.start()
        assert cluster.running()
        engine = engine_for(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_database()")).scalar() == "cdt"
            assert conn.execute(text("SHOW listen_addresses")).scalar() == "127.0.0.1"
        engine.dispose()
        assert cluster.start() == url  # idempotent
    finally:
        assert cluster.stop()
    assert not cluster.running()


def test_port_taken_by_another_server_is_a_clear_error(tmp_path_factory):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        data = tmp_path_factory.mktemp("busy") / "cdt-data"
        data.parent.chmod(0o755)
        with pytest.raises(EmbeddedDatabaseError, match="CDT_PG_PORT"):
            EmbeddedCluster(Config(data_dir=data, pg_port=port)).start()


def test_missing_postgresql_binaries_are_named(monkeypatch, tmp_path):
    monkeypatch.setattr(embedded_pg.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(embedded_pg.shutil, "which", lambda name: None)
    with pytest.raises(EmbeddedDatabaseError) as err:
        embedded_pg.find_pg_bin(Config(data_dir=tmp_path, pg_bin_dir=str(tmp_path / "nothing")))
    assert "postgresql-15-postgis-3" in str(err.value) and "CDT_DATABASE_URL" in str(err.value)
