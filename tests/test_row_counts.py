"""The trigger-kept row counts (numberMatched of unfiltered requests) equal COUNT(*) after every kind of write."""

from sqlalchemy import text

from layers.db import transaction
from layers.models import VERSIONED_TABLES


def counts(engine) -> dict[str, tuple[int, int]]:
    with engine.connect() as conn:
        kept = dict(conn.execute(text("SELECT table_name, n FROM cdt.row_counts")).all())
        return {t: (kept.get(t), conn.execute(text(f"SELECT count(*) FROM cdt.{t}")).scalar())
                for t in VERSIONED_TABLES}


def test_row_counts_follow_inserts_and_deletes(engine):
    before = counts(engine)
    assert all(k == n for k, n in before.values()), before
    assert before["buildings"][1] > 25000
    with transaction(engine, "test:counts") as conn:
        conn.execute(text("INSERT INTO cdt.functional_zones (zone_type, geom) SELECT 'residential', "
                          "ST_Multi(ST_Buffer(geom, 0.0001)) FROM cdt.facilities LIMIT 7"))
        conn.execute(text("DELETE FROM cdt.functional_zones WHERE id IN "
                          "(SELECT id FROM cdt.functional_zones ORDER BY id DESC LIMIT 2)"))
        mid = counts_in(conn)
        assert mid[0] == mid[1] == before["functional_zones"][1] + 5
        conn.execute(text("DELETE FROM cdt.functional_zones WHERE created_by = 'test:counts'"))
    after = counts(engine)
    assert after == before


def test_rolled_back_writes_leave_counts_alone(engine):
    before = counts(engine)
    try:
        with transaction(engine, "test:counts") as conn:
            conn.execute(text("DELETE FROM cdt.railways"))
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert counts(engine) == before


def counts_in(conn) -> tuple[int, int]:
    return (conn.execute(text("SELECT n FROM cdt.row_counts WHERE table_name = 'functional_zones'")).scalar(),
            conn.execute(text("SELECT count(*) FROM cdt.functional_zones")).scalar())
