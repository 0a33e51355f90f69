"""energy.batch: the vectorised checks and consolidation give what energy.checks / energy.consolidate give, one
balance at a time, on the five real Moscow Oblast years and on perturbed copies of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from energy import batch, checks, layout
from energy.consolidate import compare, consolidate
from energy.workbook import read_workbook
from layers.errors import InvalidParameterValue

FEB = Path(__file__).resolve().parents[1] / "data" / "feb" / "moscow-oblast"
YEARS = range(2016, 2021)
FORBIDDEN = [("production", "electricity"), ("production", "heat"), ("inflow", "heat"), ("no_such_row", "coal")]
LEAF_ROWS = [i for i, r in enumerate(layout.ROWS) if not layout.children(r)]
CARRIER_IDX = [layout.COLUMNS.index(c) for c in layout.CARRIER_COLUMNS]


@pytest.fixture(scope="module")
def real() -> np.ndarray:
    return batch.stack(read_workbook(FEB / f"balance{y}.xlsx").balance for y in YEARS)


def frames(arr: np.ndarray) -> list[pd.DataFrame]:
    return [pd.DataFrame(a, index=list(layout.ROWS), columns=list(layout.COLUMNS)) for a in arr]


def perturbed(real: np.ndarray, n: int, seed: int = 20240611) -> np.ndarray:
    """n copies of random real years: leaf carrier cells x lognormal noise (sigma 2%), 5% of cells blanked, 1% set
    to 0, every other copy rounded to 0.01 like the workbooks (so sums land on the tolerance), plus an all-empty
    balance and one with a single value."""
    rng = np.random.default_rng(seed)
    out = real[rng.integers(0, len(real), n)].copy()
    leaf = np.ix_(np.arange(n), LEAF_ROWS, CARRIER_IDX)
    out[leaf] *= rng.lognormal(0.0, 0.02, out[leaf].shape)
    out[rng.random(out.shape) < 0.05] = np.nan
    out[rng.random(out.shape) < 0.01] = 0.0
    out[::2] = np.round(out[::2], 2)
    out[0] = np.nan
    out[1] = np.nan
    out[1, layout.ROWS.index("oil_refining"), layout.COLUMNS.index("crude_oil")] = 3.0
    out[2, 0, layout.COLUMNS.index("electricity")] = 7.5  # a forbidden cell filled
    return out


def keyed(findings: list[checks.Finding], balance: int) -> set[tuple]:
    return {(balance, f.check, f.row, f.column, round(f.difference, 6)) for f in findings}


def keyed_frame(findings: pd.DataFrame) -> set[tuple]:
    cols = ["balance", "check", "row", "column", "difference"]
    return {(int(b), str(c), str(r), str(col), round(float(d), 6))
            for b, c, r, col, d in findings[cols].itertuples(index=False)}


def one_by_one(arr: np.ndarray, **kwargs) -> list[list[checks.Finding]]:
    return [checks.check(f, **kwargs) for f in frames(arr)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 16, 17, 35])
def test_sum_order_is_numpys(n):
    # check() sums with np.nansum; _np_sum must add in the same order, bit for bit (values like the workbooks')
    rng = np.random.default_rng(n)
    values = np.round(rng.normal(0, 1, (500, n)) * 10.0 ** rng.integers(-2, 6, (500, n)), 2)
    expected = np.array([np.nansum(list(map(float, v))) for v in values])
    got = batch._np_sum([values[:, j] for j in range(n)])
    assert np.array_equal(got, expected)


def test_real_years_same_findings(real):
    findings = batch.check_many(real, forbidden=FORBIDDEN)
    reference = one_by_one(real, forbidden=FORBIDDEN)
    # the real years break 13-15 identities each, and all fill `inflow` of heat (1270.52 in 2016), forbidden here
    assert [len(r) for r in reference] == [14, 15, 15, 16, 15]
    assert [f.actual for f in reference[0] if f.check == "forbidden"] == [1270.52]
    for i, ref in enumerate(reference):
        assert batch.findings_of(findings, i) == ref  # same findings, same order, same numbers and messages
    assert list(findings.columns) == batch.FINDING_COLUMNS
    assert findings["balance"].tolist() == sorted(findings["balance"].tolist())


@pytest.mark.parametrize("tolerance", [0.05, 0.0, 1.0])
def test_perturbed_same_findings(real, tolerance):
    arr = perturbed(real, 300)
    findings = batch.check_many(arr, tolerance=tolerance, forbidden=FORBIDDEN)
    reference = one_by_one(arr, tolerance=tolerance, forbidden=FORBIDDEN)
    expected = set().union(*(keyed(r, i) for i, r in enumerate(reference)))
    assert keyed_frame(findings) == expected
    assert len(findings) == sum(map(len, reference)) > 300 * 14  # noise broke more identities than the real ones
    assert set(findings["check"]) >= {"resources", "distribution", "discrepancy", "subrows", "total",
                                      "transformation", "forbidden"}
    assert 0 not in set(findings["balance"])  # the all-empty balance: nothing to check
    # one value, 3.0 crude oil into refining, with its parent, total and outputs empty
    assert [(f.check, f.row, f.column, f.difference) for f in batch.findings_of(findings, 1)] == [
        ("subrows", "fuel_transformation", "crude_oil", -3.0), ("total", "oil_refining", "total", -3.0),
        ("transformation", "oil_refining", "total", 3.0)]
    for i in (2, 3, 150, 299):
        assert batch.findings_of(findings, i) == reference[i]


def test_consolidation_equals_consolidate(real):
    arr = perturbed(real, 120, seed=7)
    groups = np.random.default_rng(3).integers(0, 4, len(arr))
    blank = (layout.ROWS.index("households"), layout.COLUMNS.index("coal"))
    arr[(groups == 2), blank[0], blank[1]] = np.nan  # empty in every balance of group 2: stays empty
    result = batch.consolidate_many(arr, groups, n_groups=5)
    assert result.shape == (5, len(layout.ROWS), len(layout.COLUMNS))
    fs = frames(arr)
    for k in range(4):
        ref = consolidate({i: fs[i] for i in np.flatnonzero(groups == k)})
        assert np.array_equal(result[k], ref.to_numpy(), equal_nan=True)  # bit for bit
    assert np.isnan(result[2][blank]) and not np.isnan(result[1][blank])
    assert np.isnan(result[4]).all()  # a group without balances


def split(balance: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n municipal balances that sum to `balance`: random shares (Dirichlet), the last one takes the remainder."""
    shares = rng.dirichlet(np.full(n, 0.5))
    out = balance[None] * shares[:, None, None]
    out[-1] = balance - out[:-1].sum(axis=0)
    return out


def test_split_consolidates_back_and_perturbation_is_flagged(real):
    rng = np.random.default_rng(11)
    munis = np.concatenate([split(real[k], 50, rng) for k in range(len(real))])
    groups = np.repeat(np.arange(len(real)), 50)
    result = batch.consolidate_many(munis, groups)
    diff = batch.compare_many(result, real)
    assert len(diff) == len(real) * real[0].size and not diff["flagged"].any()
    assert diff["difference"].abs().max() < 1e-9

    hh, gas = layout.ROWS.index("households"), layout.COLUMNS.index("natural_gas")
    munis[2 * 50 + 7, hh, gas] += 1.5  # one municipality of 2018 reports 1.5 thousand tce more gas to households
    biggest = 4 * 50 + int(np.argmax(munis[4 * 50:, 0, 0]))
    lost = munis[biggest, 0, 0]
    munis[biggest, 0, 0] = np.nan  # the largest coal producer of 2020 leaves its coal production empty
    diff = batch.compare_many(batch.consolidate_many(munis, groups), real)
    flagged = diff[diff["flagged"]]
    assert {(int(g), str(r), str(c)) for g, r, c in flagged[["group", "row", "column"]].itertuples(index=False)} \
        == {(2, "households", "natural_gas"), (4, "production", "coal")}
    assert flagged.loc[flagged["group"] == 4, "difference"].iloc[0] == pytest.approx(-lost, abs=1e-9)
    assert flagged.loc[flagged["group"] == 2, "difference"].iloc[0] == pytest.approx(1.5, abs=1e-9)


def test_compare_many_equals_compare(real):
    arr = perturbed(real, 40, seed=5)
    groups = np.arange(40) % 5
    consolidated = batch.consolidate_many(arr, groups) / 8  # a region ~1/8 of the sum: most cells differ
    consolidated[1, 3, :] = np.nan  # empty on one side only
    for tol, pct in ((0.05, 0.0), (0.05, 10.0)):
        got = batch.compare_many(consolidated, real, tolerance=tol, tolerance_pct=pct)
        for k in range(5):
            ref = compare(frames(consolidated[k:k + 1])[0], frames(real[k:k + 1])[0], tol, pct)
            mine = got[got["group"] == k].drop(columns="group").reset_index(drop=True)
            mine[["row", "column"]] = mine[["row", "column"]].astype(str)
            pd.testing.assert_frame_equal(mine, ref, check_dtype=False)
        assert 0 < got["flagged"].sum() < len(got)


def test_errors():
    with pytest.raises(InvalidParameterValue, match="shape"):
        batch.check_many(np.zeros((3, 10, 35)))
    with pytest.raises(InvalidParameterValue, match="tolerance"):
        batch.check_many(np.zeros((1, len(layout.ROWS), len(layout.COLUMNS))), tolerance=-1)
    with pytest.raises(InvalidParameterValue, match="pairs"):
        batch.check_many(np.zeros((1, len(layout.ROWS), len(layout.COLUMNS))), forbidden=["production"])
    with pytest.raises(InvalidParameterValue, match="does not know"):
        batch.stack([layout.empty_balance().rename(index={"households": "people"})])
    with pytest.raises(InvalidParameterValue, match="groups"):
        batch.consolidate_many(np.zeros((2, len(layout.ROWS), len(layout.COLUMNS))), [0])
    empty = batch.check_many(np.full((2, len(layout.ROWS), len(layout.COLUMNS)), np.nan))
    assert empty.empty and list(empty.columns) == batch.FINDING_COLUMNS


def test_stack_reorders_and_fills(real):
    frame = frames(real[:1])[0]
    shuffled = frame.loc[list(reversed(layout.ROWS)), ["heat", "coal", "total"]]
    arr = batch.stack([frame, shuffled])
    assert np.array_equal(arr[0], real[0], equal_nan=True)
    assert arr[1, :, layout.COLUMNS.index("coal")].tolist() == real[0, :, layout.COLUMNS.index("coal")].tolist()
    assert np.isnan(arr[1, :, layout.COLUMNS.index("natural_gas")]).all()
