"""Benchmark: fuel and energy balances (energy/), against the issue's targets.

(a) One real workbook (data/feb/moscow-oblast/balance{2016..2020}.xlsx): `energy.workbook.read_workbook` +
    `energy.checks.check`, target < 0.5 s per workbook; separately `energy.store.load_file` (read + save into
    PostGIS in one transaction). Database: CDT_DATABASE_URL if set (used as is: must be migrated), else CDT's
    embedded cluster (`cdt db start`) and a database of the bench's own (--db-name, default `cdt_bench`), migrated
    to head, so the bench never touches the database others work in. Loads go to OKTMO 46000000 and replace the
    same year on every run.

(b) 2,000 municipal balances x 10 years, checked (`energy.batch.check_many`), consolidated per year
    (`consolidate_many`) and compared with the regional balance (`compare_many`), target < 10 s; for comparison,
    the per-balance path (`checks.check` loop + `consolidate.consolidate` + `compare`) on a subset (--subset, 200
    balances), its time per balance extrapolated to all of them, and the ratio.

Generator of (b) (seeded, --seed):
  - regional balance of year k (k = 0..9, "2016".."2025") = real year 2016 + k % 5, x 1.02 ** (k // 5) (the
    second five years are the real ones grown by 2%);
  - municipality m of year k = regional_k x w_km, shares w_k ~ Dirichlet(0.5, ..., 0.5) over the municipalities
    (heavy-tailed: a few large towns, many small ones); sum_m w_km = 1, so the clean split consolidates back to the
    regional balance up to float rounding (printed: max |consolidated - regional|). Every municipality inherits the
    real balance's own defects scaled by its share (the real years break 13-15 identities, e.g. transport != sum of
    its modes by 190-680 thousand tce), so many small ones pass and large ones fail the same checks;
  - identities broken on purpose in a known fraction (--broken, 10%): their leaf cells (rows without sub-rows,
    carrier columns) x lognormal noise (sigma 5%), parents and totals left as they were;
  - --blank (1%) of the municipalities lose one random non-empty leaf carrier cell (set empty).
  Both perturbations also move the consolidated region away from the regional balance (flagged cells printed).

Every figure is the median of --runs (>= 5) runs. The machine is shared: compare figures within one run.

    .venv/bin/python bench/feb_bench.py [--runs 5] [--municipalities 2000] [--years 10] [--subset 200] [--no-db]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
if PROJECT_PYTHON.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
    os.execv(str(PROJECT_PYTHON), [str(PROJECT_PYTHON), *sys.argv])
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from energy import batch, checks, layout  # noqa: E402
from energy.consolidate import compare, consolidate  # noqa: E402
from energy.workbook import read_workbook  # noqa: E402

FEB = ROOT / "data" / "feb" / "moscow-oblast"
REAL_YEARS = range(2016, 2021)
OKTMO = "46000000"
TARGET_WORKBOOK_S, TARGET_BATCH_S = 0.5, 10.0
LEAF_ROWS = [i for i, r in enumerate(layout.ROWS) if not layout.children(r)]
CARRIER_IDX = [layout.COLUMNS.index(c) for c in layout.CARRIER_COLUMNS]


def timed(fn: Callable[[], object], runs: int) -> tuple[float, object]:
    """Median wall time of `runs` calls, and the last result. The garbage collector is off while timing (as in
    timeit): with 20,000 DataFrames alive, its full passes would bill the per-balance loop for them."""
    times, result = [], None
    for _ in range(runs):
        result = None
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - t0)
        finally:
            gc.enable()
    return statistics.median(times), result


def ok(seconds: float, target: float) -> str:
    return f"{'OK' if seconds < target else 'MISSED'} (target < {target:g} s)"


# ---- (a) one real workbook ----------------------------------------------------------------------------------

def prepare_database(db_name: str) -> str:
    """A SQLAlchemy URL of a migrated database: CDT_DATABASE_URL, or one of the bench's own in the embedded cluster."""
    given = os.environ.get("CDT_DATABASE_URL", "").strip()
    if given:
        return given if "+psycopg" in given else "postgresql+psycopg://" + given.split("://", 1)[1]
    from geoserver_app.config import Config
    from geoserver_app.embedded_pg import database_url, ensure_database
    from layers.db import migrate

    subprocess.run([str(ROOT / ".venv" / "bin" / "cdt"), "db", "start"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    server = database_url(Config.from_env()).rsplit("/", 1)[0]
    if ensure_database(server + "/postgres", db_name):
        print(f"  created database {db_name} in the embedded cluster")
    migrate(server + "/" + db_name)
    return server + "/" + db_name


def bench_workbooks(runs: int, db: bool, db_name: str) -> None:
    print(f"(a) one real workbook, median of {runs} runs per file")
    paths = [FEB / f"balance{y}.xlsx" for y in REAL_YEARS]
    worst = 0.0
    print(f"  {'file':18} {'read s':>8} {'check s':>8} {'read+check s':>13} {'findings':>9}")
    for path in paths:
        t_read, data = timed(lambda p=path: read_workbook(p), runs)
        t_check, found = timed(lambda d=data: checks.check(d.balance), runs)
        t_both, _ = timed(lambda p=path: checks.check(read_workbook(p).balance), runs)
        worst = max(worst, t_both)
        print(f"  {path.name:18} {t_read:8.3f} {t_check:8.4f} {t_both:13.3f} {len(found):9d}")
    print(f"  slowest read+check: {worst:.3f} s  {ok(worst, TARGET_WORKBOOK_S)}")
    if not db:
        return
    try:
        from energy.store import load_file
        from layers.db import engine_for

        url = prepare_database(db_name)
        engine = engine_for(url)
    except Exception as exc:  # noqa: BLE001 - no database must not cost the other figures
        print(f"  store.load_file: skipped, no database ({type(exc).__name__}: {exc})")
        return
    worst = 0.0
    for path in paths:
        load_file(engine, path, OKTMO, "bench:feb")  # warm-up: carriers upserted, connection pool filled
        t_load, report = timed(lambda p=path: load_file(engine, p, OKTMO, "bench:feb"), runs)
        worst = max(worst, t_load)
        print(f"  store.load_file {path.name}: {t_load:.3f} s ({report['form_values']} form values, "
              f"{len(report['defects'])} defects)")
    print(f"  slowest load_file (read + save in PostGIS): {worst:.3f} s  {ok(worst, TARGET_WORKBOOK_S)}  "
          f"[{url.split('@')[-1]}]")
    engine.dispose()


# ---- (b) 2,000 municipalities x 10 years ----------------------------------------------------------------------

def generate(real: np.ndarray, municipalities: int, years: int, broken: float, blank: float, seed: int):
    """(municipal stack, year group per balance, regional stack, clean stack, broken mask, blanked mask): see the
    module docstring."""
    rng = np.random.default_rng(seed)
    regional = np.stack([real[k % len(real)] * 1.02 ** (k // len(real)) for k in range(years)])
    shares = rng.dirichlet(np.full(municipalities, 0.5), size=years)  # (years, municipalities)
    clean = (regional[:, None] * shares[:, :, None, None]).reshape(-1, *real.shape[1:])
    munis = clean.copy()
    is_broken = rng.random(len(munis)) < broken
    leaf = np.ix_(np.flatnonzero(is_broken), LEAF_ROWS, CARRIER_IDX)
    munis[leaf] *= rng.lognormal(0.0, 0.05, munis[leaf].shape)
    is_blank = rng.random(len(munis)) < blank
    for_blank = np.flatnonzero(is_blank)  # one random non-empty leaf carrier cell each (vectorised pick)
    leaf_cells = np.array([(r, c) for r in LEAF_ROWS for c in CARRIER_IDX])
    filled = munis[for_blank][:, leaf_cells[:, 0], leaf_cells[:, 1]] != 0
    pick = np.argmax(rng.random(filled.shape) * filled, axis=1)
    munis[for_blank, leaf_cells[pick, 0], leaf_cells[pick, 1]] = np.nan
    groups = np.repeat(np.arange(years), municipalities)
    return munis, groups, regional, clean, is_broken, is_blank


def vectorised(arr: np.ndarray, groups: np.ndarray, regional: np.ndarray, n_years: int) -> tuple:
    found = batch.check_many(arr)
    consolidated = batch.consolidate_many(arr, groups, n_years)
    return found, consolidated, batch.compare_many(consolidated, regional)


def per_balance(frames: list[pd.DataFrame], groups: np.ndarray, regional: list[pd.DataFrame]) -> tuple:
    found = [checks.check(f) for f in frames]
    diffs = [compare(consolidate({i: frames[i] for i in np.flatnonzero(groups == k)}), regional[k])
             for k in np.unique(groups)]
    return found, diffs


def bench_batch(runs: int, municipalities: int, years: int, subset: int, broken: float, blank: float,
                seed: int) -> None:
    n = municipalities * years
    print(f"\n(b) {municipalities} municipal balances x {years} years = {n} balances, median of {runs} runs")
    real = batch.stack(read_workbook(FEB / f"balance{y}.xlsx").balance for y in REAL_YEARS)
    t0 = time.perf_counter()
    arr, groups, regional, clean, is_broken, is_blank = generate(real, municipalities, years, broken, blank, seed)
    print(f"  generated in {time.perf_counter() - t0:.2f} s: {int(is_broken.sum())} with identities broken "
          f"({broken:.0%}), {int(is_blank.sum())} with a blanked cell ({blank:.0%}); {arr.nbytes / 1e6:.0f} MB")
    split = batch.consolidate_many(clean, groups, years) - regional
    print(f"  clean split consolidates back: max |consolidated - regional| = {np.nanmax(np.abs(split)):.2e}, "
          f"flagged cells: {int(batch.compare_many(batch.consolidate_many(clean, groups), regional)['flagged'].sum())}")

    t_check, found = timed(lambda: batch.check_many(arr), runs)
    t_cons, consolidated = timed(lambda: batch.consolidate_many(arr, groups, years), runs)
    t_cmp, diff = timed(lambda: batch.compare_many(consolidated, regional), runs)
    t_all, _ = timed(lambda: vectorised(arr, groups, regional, years), runs)
    tracemalloc.start()
    vectorised(arr, groups, regional, years)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"  vectorised: check_many {t_check:.3f} s, consolidate_many {t_cons:.3f} s, compare_many {t_cmp:.4f} s")
    print(f"  vectorised check + consolidate + compare: {t_all:.3f} s  {ok(t_all, TARGET_BATCH_S)}  "
          f"(peak extra memory {peak / 1e6:.0f} MB)")

    errors = found[found["severity"] == checks.ERROR].groupby("balance").size().reindex(range(n), fill_value=0)
    by = found.groupby(["check", "severity"], observed=True).size()
    print(f"  findings: {len(found)} ({', '.join(f'{c}/{s} {v}' for (c, s), v in by.items())})")
    for name, mask in (("kept", ~is_broken & ~is_blank), ("broken", is_broken), ("blanked", is_blank)):
        e = errors.to_numpy()[mask]
        print(f"    {name:8} balances: {int(mask.sum()):6d}, with an error finding {np.mean(e > 0):6.1%}, "
              f"mean error findings {e.mean():5.2f}")
    flagged = diff[diff["flagged"]].groupby("group").size().reindex(range(years), fill_value=0)
    print(f"  consolidated vs regional: flagged cells per year {flagged.tolist()} (of {real[0].size})")

    frames_t0 = time.perf_counter()
    all_frames = [pd.DataFrame(a, index=list(layout.ROWS), columns=list(layout.COLUMNS)) for a in arr]
    t_frames = time.perf_counter() - frames_t0
    t_stack, stacked = timed(lambda: batch.stack(all_frames), runs)
    assert np.array_equal(stacked, arr, equal_nan=True)
    print(f"  (balances as DataFrames: batch.stack of {n}: {t_stack:.3f} s; building them took {t_frames:.2f} s)")

    # per-balance path on a subset: `subset` balances spread over the years (every year keeps a share)
    idx = np.sort(np.random.default_rng(seed + 1).choice(n, subset, replace=False))
    sub, sub_groups = arr[idx], groups[idx]
    sub_frames = [all_frames[i] for i in idx]
    reg_frames = [pd.DataFrame(r, index=list(layout.ROWS), columns=list(layout.COLUMNS)) for r in regional]
    t_loop, (loop_found, loop_diffs) = timed(lambda: per_balance(sub_frames, sub_groups, reg_frames), runs)
    t_loop_check, _ = timed(lambda: [checks.check(f) for f in sub_frames], runs)
    t_vec_sub, (vec_found, vec_cons, vec_diff) = timed(lambda: vectorised(sub, sub_groups, regional, years), runs)
    same = all(batch.findings_of(vec_found, i) == loop_found[i] for i in range(subset))
    print(f"  subset of {subset}: per-balance loop {t_loop:.3f} s (of which checks.check {t_loop_check:.3f} s), "
          f"vectorised {t_vec_sub:.4f} s, ratio {t_loop / t_vec_sub:.0f}x; identical findings: {same}")
    full_loop = t_loop / subset * n
    print(f"  per-balance loop extrapolated to {n}: {full_loop:.1f} s  {ok(full_loop, TARGET_BATCH_S)}; "
          f"vectorised {t_all:.3f} s, ratio {full_loop / t_all:.0f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--municipalities", type=int, default=2000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--subset", type=int, default=200)
    parser.add_argument("--broken", type=float, default=0.10)
    parser.add_argument("--blank", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--db-name", default="cdt_bench")
    parser.add_argument("--no-db", action="store_true", help="skip store.load_file")
    parser.add_argument("--only", choices=("workbook", "batch"))
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be >= 5 (medians)")
    if args.only != "batch":
        bench_workbooks(args.runs, not args.no_db, args.db_name)
    if args.only != "workbook":
        bench_batch(args.runs, args.municipalities, args.years, args.subset, args.broken, args.blank, args.seed)


if __name__ == "__main__":
    main()
