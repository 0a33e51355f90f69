"""Indicator values in `cdt.indicator_values`: saving a computed frame, reading series and a period's map."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import Connection

from layers.errors import InvalidParameterValue
from layers.models.planning import VALUE_TYPES
from planning.indicators.engine import Frame


def period_of(year: int) -> date:
    if not 1900 <= int(year) <= 2200:
        raise InvalidParameterValue(f"year must be between 1900 and 2200, got {year}")
    return date(int(year), 1, 1)


def save(conn: Connection, frame: Frame, year: int, scenario_id: int | None = None, value_type: str = "actual",
         source: str = "computed", codes: Sequence[str] | None = None) -> int:
    """Make the stored values of (codes, territories, period, value type, scenario) those of the frame: NaN is
    no row, so a value that disappeared (a facility type removed) does not linger; a value that did not change
    is not touched (re-running a computation on unchanged data writes nothing). Returns rows written."""
    if value_type not in VALUE_TYPES:
        raise InvalidParameterValue(f"value type must be one of {', '.join(VALUE_TYPES)}")
    codes = list(codes) if codes is not None else frame.codes
    cols = [frame.codes.index(c) for c in codes]
    block = frame.values[:, cols]
    t_idx, c_idx = np.nonzero(~np.isnan(block))
    params = {"codes": codes, "tids": list(frame.territory_ids), "p": period_of(year), "vt": value_type,
              "sc": scenario_id, "src": source, "c": [codes[i] for i in c_idx],
              "t": [frame.territory_ids[i] for i in t_idx], "v": block[t_idx, c_idx].tolist()}
    gone = conn.execute(text("""
        DELETE FROM cdt.indicator_values v WHERE indicator_code = ANY(:codes) AND territory_id = ANY(:tids)
          AND period = :p AND value_type = :vt AND scenario_id IS NOT DISTINCT FROM CAST(:sc AS int)
          AND NOT EXISTS (SELECT 1 FROM unnest(CAST(:c AS text[]), CAST(:t AS int[])) AS x(c, t)
                          WHERE x.c = v.indicator_code AND x.t = v.territory_id)"""), params).rowcount
    if len(t_idx) == 0:
        return gone
    written = conn.execute(text("""
        INSERT INTO cdt.indicator_values AS old (indicator_code, territory_id, period, value_type, scenario_id,
                                                 value, source)
        SELECT c, t, :p, :vt, CAST(:sc AS int), v, :src
        FROM unnest(CAST(:c AS text[]), CAST(:t AS int[]), CAST(:v AS float8[])) AS x(c, t, v)
        ON CONFLICT (indicator_code, territory_id, period, value_type, scenario_id) DO UPDATE
        SET value = EXCLUDED.value, source = EXCLUDED.source, computed_at = now()
        WHERE old.value IS DISTINCT FROM EXCLUDED.value OR old.source IS DISTINCT FROM EXCLUDED.source"""),
                           params).rowcount
    return gone + written


def series(conn: Connection, code: str, territory_ids: Sequence[int], scenario_id: int | None = None) -> list[dict]:
    """Every period and value type of an indicator for some territories (base values unless a scenario)."""
    rows = conn.execute(text("""
        SELECT territory_id, extract(year FROM period)::int AS year, value_type, value, source
        FROM cdt.indicator_values WHERE indicator_code = :c AND territory_id = ANY(:t)
          AND scenario_id IS NOT DISTINCT FROM CAST(:sc AS int)
        ORDER BY territory_id, period, value_type"""), {"c": code, "t": list(territory_ids), "sc": scenario_id})
    return [dict(r._mapping) for r in rows]


def latest_year(conn: Connection, code: str, scenario_id: int | None = None) -> int | None:
    return conn.execute(text(
        "SELECT extract(year FROM max(period))::int FROM cdt.indicator_values WHERE indicator_code = :c "
        "AND value_type = 'actual' AND scenario_id IS NOT DISTINCT FROM CAST(:sc AS int)"),
        {"c": code, "sc": scenario_id}).scalar()


def values_at(conn: Connection, codes: Sequence[str], year: int, scenario_id: int | None = None,
              value_type: str = "actual") -> dict[tuple[str, int], float]:
    rows = conn.execute(text(
        "SELECT indicator_code, territory_id, value FROM cdt.indicator_values WHERE indicator_code = ANY(:c) "
        "AND period = :p AND value_type = :vt AND scenario_id IS NOT DISTINCT FROM CAST(:sc AS int)"),
        {"c": list(codes), "p": period_of(year), "vt": value_type, "sc": scenario_id}).all()
    return {(c, t): v for c, t, v in rows}
