"""Compute and store the indicators of a territory (and its descendants) for a year: the job behind the
`indicators` process, `cdt indicators compute` and the demo load."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date

from sqlalchemy import Engine, text

from layers.db import transaction
from planning.indicators import catalog, engine, store


def install(engine_: Engine, actor: str) -> dict:
    with transaction(engine_, actor) as conn:
        return catalog.install(conn, actor)


def run(engine_: Engine, territory_oktmo: str | None, year: int | None, actor: str,
        codes: list[str] | None = None, progress: Callable[[float, str], None] | None = None) -> dict:
    """One transaction: compute (every indicator with a formula, or `codes`) and replace the stored values."""
    year = year or date.today().year
    store.period_of(year)
    report = progress or (lambda _f, _m: None)
    started = time.perf_counter()
    with transaction(engine_, actor) as conn:
        if not conn.execute(text("SELECT EXISTS (SELECT 1 FROM cdt.indicators)")).scalar():
            catalog.install(conn, actor)
        tids = engine.territories_under(conn, territory_oktmo)
        frame = engine.compute(conn, tids, codes, year, progress=lambda p, m: report(0.9 * p / 100, m))
        computed = time.perf_counter() - started
        report(0.9, "storing the values")
        rows = store.save(conn, frame, year)
    report(1.0, "done")
    return {"territory": territory_oktmo, "year": year, "territories": len(tids), "indicators": len(frame.codes),
            "values": rows, "compute_s": round(computed, 3), "total_s": round(time.perf_counter() - started, 3)}
