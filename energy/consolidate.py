"""Consolidation of municipal balances into a regional one, and comparison with the region's own balance."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from layers.errors import InvalidParameterValue


def consolidate(municipal: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Cell-wise sum of municipal balances; a cell empty in every balance stays empty.

    Rows and columns are the union, in first-seen order (a municipality without a row contributes nothing to it).
    """
    if not municipal:
        raise InvalidParameterValue("No municipal balances to consolidate.")
    frames = {}
    for name, frame in municipal.items():
        if not isinstance(frame, pd.DataFrame):
            raise InvalidParameterValue(f"The balance of {name!r} is not a table of rows x columns.")
        try:
            frames[name] = frame.astype(float)
        except (TypeError, ValueError) as exc:
            raise InvalidParameterValue(f"The balance of {name!r} holds non-numbers: {exc}") from exc
    index = list(dict.fromkeys(r for f in frames.values() for r in f.index))
    columns = list(dict.fromkeys(c for f in frames.values() for c in f.columns))
    stack = np.stack([f.reindex(index=index, columns=columns).to_numpy() for f in frames.values()])
    # nansum gives 0 for all-NaN cells; put NaN back where no municipality reported anything.
    total = np.where(np.isnan(stack).all(axis=0), np.nan, np.nansum(stack, axis=0))
    return pd.DataFrame(total, index=index, columns=columns)


def compare(consolidated: pd.DataFrame, regional: pd.DataFrame, tolerance: float = 0.05,
            tolerance_pct: float = 0.0) -> pd.DataFrame:
    """Cell-by-cell differences (consolidated − regional), one line per cell non-empty on either side.

    A cell is flagged when |difference| > max(tolerance, tolerance_pct % of |regional|); tolerance in thousand tce
    (0.05: the rounding budget of the workbooks, see energy.checks). Empty counts as 0 in the difference.
    """
    if tolerance < 0 or tolerance_pct < 0:
        raise InvalidParameterValue("tolerances must be non-negative.")
    index = list(dict.fromkeys([*regional.index, *consolidated.index]))
    columns = list(dict.fromkeys([*regional.columns, *consolidated.columns]))
    c = consolidated.astype(float).reindex(index=index, columns=columns).stack(future_stack=True)
    r = regional.astype(float).reindex(index=index, columns=columns).stack(future_stack=True)
    out = pd.DataFrame({"consolidated": c, "regional": r})
    out = out[out.notna().any(axis=1)]
    out.index = out.index.set_names(["row", "column"])
    out["difference"] = out["consolidated"].fillna(0.0) - out["regional"].fillna(0.0)
    limit = np.maximum(tolerance, tolerance_pct / 100 * out["regional"].abs().fillna(0.0))
    out["flagged"] = out["difference"].abs() > limit
    return out.reset_index()
