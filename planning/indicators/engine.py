"""Compute indicators for a set of territories at once.

Order of work: the territory map (each territory with its descendants); one SQL scan per source layer for all
its measures; the Python families (access, CO2); imported series of the period; then the expressions in
dependency order, vectorised over territories. A parent's measure is recomputed from its descendants' rows; an
expression is recomputed from the parent's inputs unless its definition says `sum` or `mean_pop`, in which case
the parent gets the sum, or the residents-weighted mean, of its children's values.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import Connection

from layers.errors import InvalidParameterValue, NotFound
from planning.indicators import catalog, families, formula
from planning.indicators.catalog import Definition
from planning.indicators.sources import SOURCES, compute_measures

Progress = Callable[[float, str], None]
WEIGHT = "residents"  # the population a mean_pop aggregation weights by


@dataclass
class Frame:
    territory_ids: tuple[int, ...]
    codes: list[str]
    values: np.ndarray  # territories x codes, NaN: no value

    def column(self, code: str) -> np.ndarray:
        try:
            return self.values[:, self.codes.index(code)]
        except ValueError:
            raise NotFound(f"indicator '{code}' was not computed") from None

    def value(self, code: str, territory_id: int) -> float | None:
        v = self.column(code)[self.territory_ids.index(territory_id)]
        return None if np.isnan(v) else float(v)


def territories_under(conn: Connection, oktmo: str | None) -> list[int]:
    """A territory and all its descendants (all territories when `oktmo` is None), parents first."""
    if oktmo is None:
        return conn.execute(text("SELECT id FROM cdt.territories ORDER BY id")).scalars().all()
    rows = conn.execute(text("""
        WITH RECURSIVE sub(id, depth) AS (
            SELECT id, 0 FROM cdt.territories WHERE oktmo = :o
            UNION ALL SELECT c.id, s.depth + 1 FROM sub s JOIN cdt.territories c ON c.parent_id = s.id)
        SELECT id FROM sub ORDER BY depth, id"""), {"o": oktmo}).scalars().all()
    if not rows:
        raise NotFound(f"no territory with OKTMO {oktmo}")
    return rows


def compute(conn: Connection, territory_ids: Iterable[int], codes: Iterable[str] | None = None,
            year: int | None = None, registry: Mapping[str, Definition] | None = None,
            access_inputs: families.AccessInputs | None = None, progress: Progress | None = None) -> Frame:
    """Values of `codes` (default: every indicator that has a formula) and of what they depend on."""
    year = year or date.today().year
    tids = list(dict.fromkeys(int(t) for t in territory_ids))
    if not tids:
        raise InvalidParameterValue("no territory to compute indicators for")
    reg = dict(registry) if registry is not None else catalog.registry(conn)
    if not reg:
        raise InvalidParameterValue("the indicator registry is empty: run `cdt indicators install`")
    wanted = [c for c, d in reg.items() if d.kind != "series"] if codes is None else list(codes)
    needed = catalog.order(reg, wanted)
    if any(reg[c].aggregation == "mean_pop" and reg[c].kind == "expr" for c in needed) and WEIGHT in reg:
        needed = catalog.order(reg, [WEIGHT, *needed])
    report = progress or (lambda _p, _m: None)
    tmap = families.territory_map(conn, tids)
    values: dict[str, np.ndarray] = {}

    by_source: dict[str, list[Definition]] = defaultdict(list)
    for c in needed:
        if reg[c].kind == "measure":
            by_source[reg[c].source_layer].append(reg[c])
    for i, (name, defs) in enumerate(sorted(by_source.items())):
        report(60.0 * i / max(len(by_source), 1), f"measures of {name}")
        block = compute_measures(conn, SOURCES[name], [d.formula for d in defs], tids, year)
        values.update({d.code: block[:, j] for j, d in enumerate(defs)})

    kernels = {reg[c].family for c in needed if reg[c].kind == "family"}
    if "access" in kernels:
        report(60.0, "access family")
        inputs = access_inputs if access_inputs is not None else families.load_access_inputs(conn, tmap.leaf_ids)
        computed = families.access_values(inputs, tmap)
        values.update({c: computed[c] for c in needed if c in computed})
    if "energy_co2" in kernels:
        values.update(families.energy_values(conn, tmap, year))
    values.update(_series(conn, [c for c in needed if reg[c].kind == "series"], tids, year))

    report(85.0, "expressions")
    parents = _parents(conn, tids)
    for c in needed:
        d = reg[c]
        if d.kind != "expr":
            continue
        expr = formula.parse(d.formula, c)
        values[c] = expr.evaluate({n: values[n] for n in expr.names})
        if d.aggregation in ("sum", "mean_pop"):
            values[c] = _aggregate(values[c], parents, d.aggregation, values.get(WEIGHT))
    missing = [c for c in needed if c not in values]
    if missing:
        raise InvalidParameterValue(f"no computation for indicator(s) {', '.join(missing[:5])}")
    report(100.0, "done")
    return Frame(tuple(tids), needed, np.column_stack([values[c] for c in needed]))


def _series(conn: Connection, codes: list[str], tids: list[int], year: int) -> dict[str, np.ndarray]:
    """Imported actual values of the period's year (e.g. Rosstat's), for the expressions that use them."""
    out = {c: np.full(len(tids), np.nan) for c in codes}
    if not codes:
        return out
    pos = {t: i for i, t in enumerate(tids)}
    rows = conn.execute(text(
        "SELECT indicator_code, territory_id, value FROM cdt.indicator_values WHERE indicator_code = ANY(:c) "
        "AND territory_id = ANY(:t) AND period = :p AND value_type = 'actual' AND scenario_id IS NULL"),
        {"c": codes, "t": tids, "p": date(year, 1, 1)}).all()
    for code, tid, v in rows:
        out[code][pos[tid]] = np.nan if v is None else v
    return out


def _parents(conn: Connection, tids: list[int]) -> list[tuple[int, list[int]]]:
    """(parent position, child positions) among the computed territories, deepest parents first."""
    rows = conn.execute(text("SELECT id, parent_id FROM cdt.territories WHERE id = ANY(:t)"), {"t": tids}).all()
    pos = {t: i for i, t in enumerate(tids)}
    parent_of = {t: p for t, p in rows}
    children: dict[int, list[int]] = defaultdict(list)
    for t, p in parent_of.items():
        if p in pos:
            children[p].append(pos[t])

    def depth(t: int) -> int:
        n = 0
        while parent_of.get(t) in pos:
            t, n = parent_of[t], n + 1
        return n

    return [(pos[p], kids) for p, kids in sorted(children.items(), key=lambda kv: -depth(kv[0]))]


def _aggregate(col: np.ndarray, parents: list[tuple[int, list[int]]], how: str, weight: np.ndarray | None):
    col = col.copy()
    for p, kids in parents:
        v = col[kids]
        ok = ~np.isnan(v)
        if not ok.any():
            continue
        if how == "sum":
            col[p] = v[ok].sum()
        else:
            w = np.nan_to_num(weight[kids][ok]) if weight is not None else np.ones(ok.sum())
            col[p] = float((v[ok] * w).sum() / w.sum()) if w.sum() > 0 else np.nan
    return col
