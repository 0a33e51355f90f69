"""Optimistic locking under real concurrency: 50 writers, one ETag, exactly one winner.

CDT runs on a real threaded HTTP server (werkzeug, in a thread) over the test database with the app's own
engine pool (8 + 8 overflow connections), so 50 simultaneous requests must queue for connections and for
the row lock, not fail. Each writer sends If-Match with the same ETag and its own value: exactly one gets
200, the other 49 get 412, the feature holds the winner's value and cdt.history has exactly one new UPDATE.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
import requests
from sqlalchemy import text

from geoserver_app.app import create_app
from geoserver_app.config import Config
from tests.conftest import bearer, live_server, scalar, table_fingerprints

FZ = "/collections/functional_zones/items"
GEOJSON = "application/geo+json"
MERGE = "application/merge-patch+json"
WRITERS = 50
TIMEOUT = 60  # seconds for one request


class InFlight:
    """WSGI middleware: the largest number of requests the server was handling at the same time."""

    def __init__(self, app):
        self.app, self.now, self.most, self.lock = app, 0, 0, threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            return list(self.app(environ, start_response))
        finally:
            with self.lock:
                self.now -= 1


@pytest.fixture(scope="module")
def server(db_url):
    """CDT on a free 127.0.0.1 port with a threaded server: (base URL, in-flight meter, app)."""
    app = create_app(Config.from_env(), database_url=db_url)
    meter = InFlight(app)
    with live_server(meter, "cdt-concurrent-edits") as url:
        yield url, meter, app
    app.extensions["cdt_engine"].dispose()


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # no proxy for 127.0.0.1, whatever the environment says
    return s


def fingerprints(engine) -> dict[str, str]:
    """conftest.table_fingerprints, except a token's last_used_at (any use of a token marks it, at most once a
    minute)."""
    found = table_fingerprints(engine)
    found["api_tokens"] = scalar(engine, "SELECT count(*) || ':' || coalesce(md5(string_agg((to_jsonb(x) - "
                                         "'last_used_at')::text, '|' ORDER BY x.id)), '') FROM cdt.api_tokens x")
    return found


def history(engine, fid: int) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT operation, version, actor, after ->> 'name' FROM cdt.history "
            "WHERE collection = 'functional_zones' AND feature_id = :f ORDER BY id"), {"f": str(fid)})]


def square(x: float, y: float, size: float = 0.004) -> dict:
    return {"type": "Polygon", "coordinates": [[[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]]}


def test_fifty_writers_one_etag_one_winner(server, engine, tokens):
    base, meter, _ = server
    auth = bearer(tokens["t_federal"])
    before = fingerprints(engine)
    with engine.connect() as conn:
        sequences = {s: conn.execute(text(f"SELECT last_value, is_called FROM {s}")).one()
                     for s in ("cdt.functional_zones_id_seq", "cdt.history_id_seq")}
    geometry = square(39.874, 59.205)
    fid = None
    try:
        with session() as s:
            created = s.post(base + FZ, data=json.dumps({"type": "Feature", "geometry": geometry, "properties": {
                "zone_type": "residential", "name": "before"}}), headers={**auth, "Content-Type": GEOJSON},
                timeout=TIMEOUT)
            assert created.status_code == 201, created.text
            fid = created.json()["id"]
            got = s.get(f"{base}{FZ}/{fid}", timeout=TIMEOUT)
            assert got.status_code == 200 and got.headers["ETag"] == created.headers["ETag"]
            etag = got.headers["ETag"]
        assert history(engine, fid) == [("INSERT", 1, "user:t_federal", "before")]

        barrier = threading.Barrier(WRITERS)
        results: list[tuple | None] = [None] * WRITERS

        def write(i: int) -> None:
            value = f"writer-{i:02d}"
            if i % 2:  # PUT: the whole feature
                method, ctype = "PUT", GEOJSON
                body = {"type": "Feature", "geometry": geometry, "properties": {"zone_type": "residential",
                                                                                "name": value}}
            else:  # PATCH: a JSON merge patch
                method, ctype, body = "PATCH", MERGE, {"properties": {"name": value}}
            with session() as s:
                barrier.wait(timeout=TIMEOUT)
                started = time.monotonic()
                try:
                    resp = s.request(method, f"{base}{FZ}/{fid}", data=json.dumps(body), timeout=TIMEOUT,
                                     headers={**auth, "Content-Type": ctype, "If-Match": etag})
                    results[i] = (value, resp.status_code, resp.headers.get("ETag"), resp.text,
                                  time.monotonic() - started)
                except requests.RequestException as exc:  # a connection refused or reset: recorded, not raised
                    results[i] = (value, None, None, repr(exc), time.monotonic() - started)

        threads = [threading.Thread(target=write, args=(i,), name=f"writer-{i}") for i in range(WRITERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=2 * TIMEOUT)
        assert not any(t.is_alive() for t in threads), "a writer hung"
        assert all(r is not None for r in results)

        statuses = Counter(r[1] for r in results)
        assert statuses == {200: 1, 412: WRITERS - 1}, (statuses, [r[3][:200] for r in results if r[1] not in
                                                                   (200, 412)])
        assert meter.most > 1, "the requests never overlapped on the server"
        (winner,) = [r for r in results if r[1] == 200]
        value, _, new_etag, body, _ = winner
        assert json.loads(body)["properties"]["name"] == value
        for r in results:
            if r[1] == 412:
                refusal = json.loads(r[3])
                assert refusal["code"] == "PreconditionFailed" and refusal["description"]

        # the database holds the winner's value, once
        row = (scalar(engine, "SELECT name FROM cdt.functional_zones WHERE id = :id", id=fid),
               scalar(engine, "SELECT version FROM cdt.functional_zones WHERE id = :id", id=fid))
        assert row == (value, 2)
        assert history(engine, fid) == [("INSERT", 1, "user:t_federal", "before"),
                                        ("UPDATE", 2, "user:t_federal", value)]
        with session() as s:
            assert s.get(f"{base}{FZ}/{fid}", timeout=TIMEOUT).headers["ETag"] == new_etag != etag
    finally:
        if fid is not None:  # leave the database as it was: no zone, no history, sequences back
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM cdt.functional_zones WHERE id = :id"), {"id": fid})
                conn.execute(text("DELETE FROM cdt.history WHERE collection = 'functional_zones' "
                                  "AND feature_id = :f"), {"f": str(fid)})
                for seq, (last, called) in sequences.items():
                    conn.execute(text("SELECT setval(CAST(:s AS regclass), :v, :c)"),
                                 {"s": seq, "v": last, "c": called})
    assert fingerprints(engine) == before


def test_the_pool_made_requests_wait_rather_than_fail(server):
    """After the burst the server still answers (no connection was lost), and the pool is back to idle."""
    base, _, app = server
    with session() as s:
        assert s.get(f"{base}{FZ}", params={"limit": 1}, timeout=TIMEOUT).status_code == 200
    pool = app.extensions["cdt_engine"].pool
    assert pool.checkedout() == 0, pool.status()
