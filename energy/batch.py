"""Checks and consolidation of many fuel and energy balances at once, vectorised with numpy.

A stack is a float array (n_balances, len(ROWS), len(COLUMNS)) in `energy.layout` order, thousand tce, NaN = empty
(`stack` builds one from DataFrames). `check_many` finds exactly what `energy.checks.check` finds on each balance
(same checks, order, signs, tolerance and NaN rules, bit for bit: sums are taken in numpy's own 1-D summation order,
see `_np_sum`), `consolidate_many` / `compare_many` do what `energy.consolidate.consolidate` / `compare` do, per group.

Findings are one table (`FINDING_COLUMNS`): one line per violated check of one balance, `balance` = index in the
stack, lines ordered by balance and then as `check` lists them; `findings_of` turns one balance's lines back into
`energy.checks.Finding`s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from energy import checks, layout
from layers.errors import InvalidParameterValue

ROWS, COLUMNS = layout.ROWS, layout.COLUMNS
_R = {r: i for i, r in enumerate(ROWS)}
_C = {c: i for i, c in enumerate(COLUMNS)}
_CARRIERS = [_C[c] for c in checks.CARRIERS]
_TOTAL = _C[checks.TOTAL]
_ROW_INDEX, _COLUMN_INDEX = pd.Index(ROWS), pd.Index(COLUMNS)

FINDING_COLUMNS = ["balance", "check", "row", "column", "expected", "actual", "difference", "severity", "message"]
COMPARE_COLUMNS = ["group", "row", "column", "consolidated", "regional", "difference", "flagged"]

# Messages: the same text as energy.checks writes, so a finding round-trips to an equal `Finding`.
_MSG = {
    "resources": "primary consumption differs from production + inflow + outflow + stock change",
    "distribution": "recorded statistical discrepancy is not the residual of the distribution identity",
    "discrepancy": "energy unaccounted for (non-zero statistical discrepancy)",
    "total": "total differs from the sum of the carrier columns",
    "transformation": "outputs exceed inputs: the row creates energy (an input is missing or an output overstated)",
    "forbidden": "this cell must be empty",
}


def _slots(forbidden: Sequence[tuple[str, str]]) -> list[tuple[str, str, str, str, str]]:
    """(check, row, column, severity, message) of every finding `check` can report, in the order it reports them."""
    err, warn = checks.ERROR, checks.WARNING
    out = [("resources", "primary_consumption", c, err, _MSG["resources"]) for c in COLUMNS]
    for c in COLUMNS:
        out += [("distribution", "statistical_discrepancy", c, err, _MSG["distribution"]),
                ("discrepancy", "statistical_discrepancy", c, warn, _MSG["discrepancy"])]
    for parent, kids in checks.CHILDREN.items():
        out += [("subrows", parent, c, err, f"{parent} differs from the sum of {', '.join(kids)}") for c in COLUMNS]
    out += [("total", r, checks.TOTAL, err, _MSG["total"]) for r in ROWS]
    out += [("transformation", r, checks.TOTAL, err, _MSG["transformation"]) for r in checks.TRANSFORMATION_ROWS]
    out += [("forbidden", r, c, err, _MSG["forbidden"]) for r, c in forbidden]
    return out


def _require_layout() -> None:
    # The slot table assumes every row and column `checks` names is in the layout (as `check` on a full balance).
    names = {*checks.RESOURCE_TERMS, *checks.DISTRIBUTION_TERMS, *checks.TRANSFORMATION_ROWS, *checks.CHILDREN,
             *(c for kids in checks.CHILDREN.values() for c in kids), "primary_consumption", "final_consumption",
             "statistical_discrepancy"}
    missing = sorted(names - set(ROWS)) + sorted({*checks.CARRIERS, checks.TOTAL} - set(COLUMNS))
    if missing:
        raise RuntimeError(f"energy.checks names rows/columns energy.layout lacks: {missing}")


_require_layout()


def stack(balances: Iterable[pd.DataFrame]) -> np.ndarray:
    """Balances (index = row codes, columns = column codes) as one array in layout order; absent cells are NaN.

    A row or column the layout does not have is an error rather than dropped silently. Note that `check` on a
    balance lacking a parent row skips that parent's sub-row check, while on the stacked (full-layout) balance
    the missing parent counts as empty: the two agree on full-layout balances, which is what workbooks give.
    """
    arrays = []
    for i, frame in enumerate(balances):
        if not isinstance(frame, pd.DataFrame):
            raise InvalidParameterValue(f"balance {i} is not a table (DataFrame) of rows x columns.")
        if not (frame.index.equals(_ROW_INDEX) and frame.columns.equals(_COLUMN_INDEX)):  # fast path: as read
            unknown = sorted(map(str, set(frame.index) - set(ROWS))) + \
                sorted(map(str, set(frame.columns) - set(COLUMNS)))
            if unknown:
                raise InvalidParameterValue(f"balance {i} has rows/columns the layout does not know: {unknown[:5]}.")
        try:
            if frame.shape != (len(ROWS), len(COLUMNS)) or not frame.index.equals(_ROW_INDEX) \
                    or not frame.columns.equals(_COLUMN_INDEX):
                frame = frame.reindex(index=ROWS, columns=COLUMNS)  # raises on duplicate labels
            arrays.append(frame.to_numpy(dtype=float))
        except (TypeError, ValueError) as exc:
            raise InvalidParameterValue(f"balance {i} must hold numbers or empty cells: {exc}") from exc
    if not arrays:
        return np.empty((0, len(ROWS), len(COLUMNS)))
    return np.stack(arrays)


def _as_stack(arr: np.ndarray, name: str = "arr") -> np.ndarray:
    try:
        a = np.asarray(arr, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(f"{name} must hold numbers or NaN: {exc}") from exc
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[1:] != (len(ROWS), len(COLUMNS)):
        raise InvalidParameterValue(f"{name} must have shape (n, {len(ROWS)}, {len(COLUMNS)}), got {a.shape}.")
    return a


def _check_tolerance(tolerance: float) -> None:
    if not np.isfinite(tolerance) or tolerance < 0:
        raise InvalidParameterValue(f"tolerance must be a non-negative number of thousand tce, got {tolerance!r}.")


def _np_sum(terms: Sequence[np.ndarray]) -> np.ndarray:
    """Element-wise sum in the order numpy's 1-D `np.sum` adds (pairwise_sum, numpy >= 2): `check` sums lists
    with np.nansum, and a different order can move a sum by one ulp across the tolerance (0.05 is not exact in
    binary, and the workbooks' sums of 0.01-rounded values land on it). Below 8 terms: ((0 + t0) + t1) + ...;
    from 8 to 128: eight running sums, combined as ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), then the rest.
    tests/test_feb_batch.py verifies the order against np.nansum for every length used here."""
    n = len(terms)
    if n > 128:
        raise ValueError("more than 128 terms: numpy splits those recursively; not needed for a balance")
    if n < 8:
        res = np.zeros_like(terms[0]) if n else np.float64(0.0)
        for t in terms:
            res = res + t
        return res
    r = list(terms[:8])
    i = 8
    while i < n - n % 8:
        r = [r[j] + terms[i + j] for j in range(8)]
        i += 8
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for t in terms[i:]:
        res = res + t
    return res


def _rows(names: Iterable[str]) -> list[int]:
    return [_R[r] for r in names]


def _identity(expected: np.ndarray, actual: np.ndarray, active: np.ndarray, tolerance: float):
    diff = actual - expected
    return expected, actual, diff, active & (np.abs(diff) > tolerance)


def check_many(arr: np.ndarray, tolerance: float = 0.05,
               forbidden: Iterable[tuple[str, str]] = ()) -> pd.DataFrame:
    """`energy.checks.check` on every balance of a stack; one line per finding (FINDING_COLUMNS).

    Memory: a peak of about 4x the stack (20,000 balances = 56 MB: ~240 MB measured); chunk far larger stacks.
    """
    a = _as_stack(arr)
    _check_tolerance(tolerance)
    forbidden = list(forbidden)
    bad = [cell for cell in forbidden if not (isinstance(cell, tuple) and len(cell) == 2)]
    if bad:
        raise InvalidParameterValue(f"forbidden cells must be (row, column) pairs, got {bad[:3]!r}.")
    # as `check`: a cell outside the layout reads as empty, so it can never be a finding
    forbidden = [(r, c) for r, c in forbidden if r in _R and c in _C]
    isnan = np.isnan(a)
    z = np.where(isnan, 0.0, a)  # np.nansum's view of the cells: NaN -> 0, inf kept
    nz = np.nan_to_num(a)  # where `check` calls np.nan_to_num (which also clips inf): the same here
    parts = []  # (expected, actual, difference, flagged), each (n, slots) in `_slots` order

    # resources, per column: primary = production + inflow + outflow + stock change
    terms = _rows(checks.RESOURCE_TERMS)
    pc = _R["primary_consumption"]
    active = ~(isnan[:, pc] & isnan[:, terms].all(axis=1))
    parts.append(_identity(_np_sum([z[:, r] for r in terms]), z[:, pc], active, tolerance))

    # distribution and discrepancy, interleaved per column as `check` reports them
    dist = _rows(checks.DISTRIBUTION_TERMS)
    sd, fc = _R["statistical_discrepancy"], _R["final_consumption"]
    active = ~isnan[:, [*dist, fc, sd]].all(axis=1)
    residual = _np_sum([z[:, r] for r in dist]) - nz[:, fc]
    d1 = _identity(residual, nz[:, sd], active, tolerance)
    d2 = _identity(np.zeros_like(residual), residual, active, tolerance)
    parts.append(tuple(np.stack([x1, x2], axis=2).reshape(len(a), -1) for x1, x2 in zip(d1, d2, strict=True)))

    # sub-rows: parent = sum of children, per column
    for parent, kids in checks.CHILDREN.items():
        p, k = _R[parent], _rows(kids)
        active = ~(isnan[:, p] & isnan[:, k].all(axis=1))
        parts.append(_identity(_np_sum([z[:, r] for r in k]), nz[:, p], active, tolerance))

    # total column = sum of carrier columns, per row
    active = ~(isnan[:, :, _TOTAL] & isnan[:, :, _CARRIERS].all(axis=2))
    parts.append(_identity(_np_sum([z[:, :, c] for c in _CARRIERS]), nz[:, :, _TOTAL], active, tolerance))

    # transformation: carriers summed per row must not exceed +tolerance (no skip: all-empty sums to 0)
    tr = _rows(checks.TRANSFORMATION_ROWS)
    net = _np_sum([z[:, tr, c] for c in _CARRIERS])
    parts.append((np.zeros_like(net), net, net, net > tolerance))

    # forbidden cells: non-empty and beyond the tolerance
    if forbidden:
        v = a[:, [_R[r] for r, _ in forbidden], [_C[c] for _, c in forbidden]]
        parts.append((np.zeros_like(v), v, v, ~np.isnan(v) & (np.abs(v) > tolerance)))

    expected, actual, diff, flagged = (np.concatenate(x, axis=1) for x in zip(*parts, strict=True))
    b, s = np.nonzero(flagged)  # row-major: by balance, then slot = the order `check` reports in
    return _frame(b, s, expected[b, s], actual[b, s], diff[b, s], _slots(forbidden))


def _frame(b: np.ndarray, s: np.ndarray, expected: np.ndarray, actual: np.ndarray, diff: np.ndarray,
           slots: list[tuple[str, str, str, str, str]]) -> pd.DataFrame:
    out = {"balance": b.astype(np.int64)}
    for j, name in enumerate(("check", "row", "column")):
        out[name] = _categorical([sl[j] for sl in slots], s)
    out |= {"expected": expected, "actual": actual, "difference": diff}
    out["severity"] = _categorical([sl[3] for sl in slots], s)
    out["message"] = _categorical([sl[4] for sl in slots], s)
    return pd.DataFrame(out, columns=FINDING_COLUMNS)


def _categorical(values: list[str], slot: np.ndarray) -> pd.Categorical:
    """Per-slot labels as a categorical column: 10^5 findings cost codes, not strings."""
    categories, codes = np.unique(np.asarray(values, dtype=object), return_inverse=True)
    return pd.Categorical.from_codes(codes[slot] if len(slot) else np.array([], dtype=int), categories=categories)


def findings_of(findings: pd.DataFrame, balance: int) -> list[checks.Finding]:
    """The lines of one balance as `energy.checks.Finding`s (equal to what `check` returns for it)."""
    part = findings[findings["balance"] == balance]
    return [checks.Finding(str(r.check), str(r.row), str(r.column), float(r.expected), float(r.actual),
                           float(r.difference), str(r.severity), str(r.message))
            for r in part.itertuples(index=False)]


def consolidate_many(arr: np.ndarray, groups: Sequence[int] | np.ndarray, n_groups: int | None = None) -> np.ndarray:
    """Cell-wise sum per group (e.g. per year): (n_groups, rows, columns); a cell empty in every balance of a
    group, and every cell of a group without balances, stays NaN. `groups[i]` is balance i's group, 0-based.

    Sums run in stack order within a group, as `energy.consolidate.consolidate` adds its balances in order, so the
    results are equal bit for bit (for the same balances in the same order).
    """
    a = _as_stack(arr)
    g = np.asarray(groups)
    if g.shape != (len(a),) or (len(g) and (not np.issubdtype(g.dtype, np.integer) or g.min() < 0)):
        raise InvalidParameterValue(f"groups must be {len(a)} non-negative integers, one per balance.")
    n_groups = int(g.max()) + 1 if n_groups is None and len(g) else int(n_groups or 0)
    if len(g) and g.max() >= n_groups:
        raise InvalidParameterValue(f"a group number is >= n_groups ({n_groups}).")
    isnan = np.isnan(a)
    # np.add.at adds balance by balance in stack order, like consolidate's np.nansum(axis=0) (sequential);
    # np.add.reduceat would be faster but adds in another order (results differ in the last bits).
    sums = np.zeros((n_groups, *a.shape[1:]))
    np.add.at(sums, g, np.where(isnan, 0.0, a))
    any_value = np.zeros(sums.shape, dtype=bool)
    np.logical_or.at(any_value, g, ~isnan)
    return np.where(any_value, sums, np.nan)  # consolidate: a cell empty in every balance stays empty


def compare_many(consolidated: np.ndarray, regional: np.ndarray, tolerance: float = 0.05,
                 tolerance_pct: float = 0.0) -> pd.DataFrame:
    """`energy.consolidate.compare` per group: one line per cell non-empty on either side (COMPARE_COLUMNS),
    difference = consolidated − regional with empty = 0, flagged when |difference| > max(tolerance,
    tolerance_pct % of |regional|). `regional` is one balance per group, or one balance for all groups."""
    if tolerance < 0 or tolerance_pct < 0 or not np.isfinite(tolerance) or not np.isfinite(tolerance_pct):
        raise InvalidParameterValue("tolerances must be non-negative numbers.")
    c = _as_stack(consolidated, "consolidated")
    r = _as_stack(regional, "regional")
    if len(r) == 1 and len(c) != 1:
        r = np.broadcast_to(r, c.shape)
    if r.shape != c.shape:
        raise InvalidParameterValue(f"regional has {len(r)} balances for {len(c)} consolidated ones.")
    g, i, j = np.nonzero(~(np.isnan(c) & np.isnan(r)))
    cv, rv = c[g, i, j], r[g, i, j]
    fill = lambda x: np.where(np.isnan(x), 0.0, x)  # noqa: E731 - pandas' fillna(0): NaN only, inf kept
    diff = fill(cv) - fill(rv)
    limit = np.maximum(tolerance, tolerance_pct / 100 * fill(np.abs(rv)))
    return pd.DataFrame({
        "group": g.astype(np.int64),
        "row": pd.Categorical.from_codes(i, categories=list(ROWS)),
        "column": pd.Categorical.from_codes(j, categories=list(COLUMNS)),
        "consolidated": cv, "regional": rv, "difference": diff, "flagged": np.abs(diff) > limit,
    }, columns=COMPARE_COLUMNS)
