"""Benchmark: every indicator of the registry for up to 2,000 municipalities, target under 60 s (2 cores, 24 GiB).

Database: a throwaway one in CDT's embedded cluster (--db-name, default `cdt_bench_indicators`; dropped at the end
unless --keep; --reuse starts from a kept one, its replicas deleted), never `cdt`: migrated, the demo loaded
(`load_demo`), Vologda's result layers computed (`spatial.results.refresh`: walk_access, service_provision,
building_access) and the indicator registry installed (`catalog.install`).

Replicas (urban okrugs under Vologda Oblast, OKTMO 1975kkkk), made by INSERT ... SELECT from Vologda's rows, a few
statements per batch of replicas (never a Python loop over rows):
  - boundary and every geometry: Vologda's translated on a grid (0.5° east x 0.25° south steps, 64 columns), so
    replicas never overlap each other or Vologda;
  - a replica keeps each of Vologda's buildings, facilities, street edges (with the nodes they use), water bodies,
    railways and service_provision hexagons with probability p, p ~ U(0.04, 0.15) drawn per replica (seeded);
    residents, living and floor area, floors and facility capacities x U(0.7, 1.3) per row; the registered
    population is the sum of residents x U(0.80, 0.95) (Vologda's ratio is 0.85); utility lines and planned
    facilities (2 and 3 rows) are copied whole;
  - walk_access and building_access rows of the kept residential buildings: residents and floors of the perturbed
    building, minutes x a factor in [0.75, 1.25] derived from the new building id (the same in both layers);
    building_access's packed float32 minutes are perturbed in numpy and written with COPY.
  The generating transaction runs with session_replication_role = replica: the versioning, history, tile and
  row-count triggers and the foreign-key checks are skipped (a history row per replicated building would double
  the generation time; none of them is read by the indicators). VACUUM ANALYZE after each batch.

Sizes are built incrementally (--sizes, default 100,250,500,1000,2000; --quick: 50,100). For each size:
`engine.compute(conn, replicas + Vologda Oblast)` for every indicator, each run in its own transaction (rolled
back), the median of --repeat runs and the median time of each phase (from the progress callback); one more run with
`SET LOCAL jit = off` (PostgreSQL JIT-compiles the measure queries its planner deems costly, ~0.4 s each); then
`store.save` of the result once (into an empty indicator_values, committed, then truncated). Growth: a least-squares
fit time = a + b*N.

Reference point (no peer is named by the issue): the straightforward implementation, one query per SQL measure per
territory (`sources.measure_query` with a one-territory scope, no savepoints), timed at the largest size on up to
--naive replicas (default 50; at most --naive-budget seconds per mode) plus the oblast, JIT on (the default) and off,
extrapolated to every territory and compared with the engine's SQL-measure phases and its whole compute in the same
JIT mode. It covers the SQL measures only (not the access family nor the expressions).

    .venv/bin/python bench/indicators_bench.py [--sizes 100,250,500,1000,2000] [--quick] [--repeat 3] [--naive 50]
                                               [--naive-budget 120] [--db-name cdt_bench_indicators] [--keep]
                                               [--reuse] [--seed 1975]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
if PROJECT_PYTHON.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
    os.execv(str(PROJECT_PYTHON), [str(PROJECT_PYTHON), *sys.argv])
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from sqlalchemy import Connection, Engine, text  # noqa: E402
from tqdm import tqdm  # noqa: E402

VOLOGDA = "19701000"
REPLICA = "bench:replica"  # `source` of every replicated row
OKTMO_PREFIX = "1975"
GRID_COLUMNS, STEP_X, STEP_Y = 64, 0.5, 0.25  # Vologda's boundary spans 0.29° x 0.12°
P_RANGE = (0.04, 0.15)
TARGET_S, TARGET_N = 60.0, 2000
ACTOR = "bench:indicators"
# A per-building factor in [0.75, 1.25] from its id, computed alike in SQL and numpy, so walk_access and
# building_access of one building agree.
JITTER_SQL = "(0.75 + 0.5 * ((({id})::bigint * 2654435761) % 4294967296) / 4294967296.0)"


def say(msg: str) -> None:
    print(msg, flush=True)


def jitter(ids: np.ndarray) -> np.ndarray:
    return 0.75 + 0.5 * ((ids.astype(np.uint64) * np.uint64(2654435761)) % np.uint64(2**32)) / 2.0**32


# --- the database ----------------------------------------------------------------------------------------------

def server_url() -> str:
    from geoserver_app.config import Config
    from geoserver_app.embedded_pg import database_url

    subprocess.run([str(ROOT / ".venv" / "bin" / "cdt"), "db", "start"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    return database_url(Config.from_env()).rsplit("/", 1)[0]


def prepare(server: str, db_name: str, reuse: bool) -> Engine:
    """A migrated database with the demo, Vologda's result layers and the registry; without replicas."""
    from geoserver_app.config import Config
    from geoserver_app.embedded_pg import drop_database, ensure_database
    from layers.access import ANONYMOUS
    from layers.db import engine_for, migrate
    from layers.ingest.demo import load_demo
    from planning.indicators import catalog
    from spatial.results import refresh

    if db_name == "cdt":
        sys.exit("refusing to benchmark in the main database `cdt`: pick another --db-name")
    if not reuse:
        drop_database(server + "/postgres", db_name)
    created = ensure_database(server + "/postgres", db_name)
    url = server + "/" + db_name
    migrate(url)
    engine = engine_for(url)
    t0 = time.perf_counter()
    with engine.connect() as conn:
        ready = conn.execute(text("SELECT EXISTS (SELECT 1 FROM cdt.building_access a JOIN cdt.territories t "
                                  "ON t.id = a.territory_id AND t.oktmo = :v)"), {"v": VOLOGDA}).scalar()
    if not ready:
        say(f"{'created' if created else 'reusing'} database {db_name}; loading the demo ...")
        load_demo(engine, Config.from_env().demo_data, ACTOR, echo=lambda m: None)
        refresh(engine, ANONYMOUS, VOLOGDA, ACTOR)
    else:
        drop_replicas(engine)
    with engine.begin() as conn:
        installed = catalog.install(conn, ACTOR)
        conn.execute(text("TRUNCATE cdt.indicator_values"))
    say(f"database {db_name} ready in {time.perf_counter() - t0:.0f} s: demo, Vologda's result layers, "
        f"{installed['installed']} indicators installed")
    return engine


def drop_replicas(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        ids = conn.execute(text("SELECT array_agg(id) FROM cdt.territories WHERE oktmo LIKE :p"),
                           {"p": OKTMO_PREFIX + "%"}).scalar() or []
        for table in ("building_access", "walk_access", "service_provision", "buildings", "facilities",
                      "utility_lines", "planned_facilities"):
            conn.execute(text(f"DELETE FROM cdt.{table} WHERE territory_id = ANY(:ids)"), {"ids": ids})
        for table in ("street_edges", "street_nodes", "water", "railways"):
            conn.execute(text(f"DELETE FROM cdt.{table} WHERE source = :r"), {"r": REPLICA})
        conn.execute(text("DELETE FROM cdt.territories WHERE id = ANY(:ids)"), {"ids": ids})


def vacuum_analyze(engine: Engine) -> None:
    """Statistics for the planner and hint bits set, so the first measured run does not pay for them."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) cdt.territories, cdt.buildings, cdt.building_access, cdt.walk_access, "
                          "cdt.facilities, cdt.street_edges, cdt.street_nodes, cdt.water, cdt.railways, "
                          "cdt.service_provision, cdt.utility_lines, cdt.planned_facilities"))


# --- the replicas ----------------------------------------------------------------------------------------------

# A replica keeps a row with probability r.p. The term in x.id keeps it a join condition: PostgreSQL would push a
# condition on r alone down to r's scan and keep all or none of a replica's rows.
KEEP = "random() + 0 * x.id < r.p"


def _perturb(col: str) -> str:
    return f"{col} * (0.7 + 0.6 * random())"


# Statements run per batch; bench_new (k, tid, p, dx, dy) holds the batch's replicas, :v is Vologda's id.
STEPS: list[tuple[str, str]] = [
    ("buildings: sample", f"""
        CREATE TEMP TABLE kept_b ON COMMIT DROP AS
        SELECT nextval('cdt.buildings_id_seq') AS id, x.id AS orig_id, r.k, r.tid, r.dx, r.dy,
               round({_perturb('x.residents')})::int AS residents,
               {_perturb('x.living_area_m2')} AS living_area_m2, {_perturb('x.floor_area_m2')} AS floor_area_m2,
               CASE WHEN coalesce(x.floors, 0) = 0 THEN x.floors
                    ELSE least(200, greatest(1, round({_perturb('x.floors')})))::int END AS floors
        FROM bench_new r JOIN cdt.buildings x ON x.territory_id = :v AND {KEEP}"""),
    ("buildings: insert", """
        INSERT INTO cdt.buildings (id, floors, living_area_m2, floor_area_m2, residents, use, is_living, year,
                                   territory_id, geom, source, source_id)
        SELECT b.id, b.floors, b.living_area_m2, b.floor_area_m2, b.residents, x.use, x.is_living, x.year, b.tid,
               ST_Translate(x.geom, b.dx, b.dy), :rep, b.k || ':' || x.id
        FROM kept_b b JOIN cdt.buildings x ON x.id = b.orig_id"""),
    ("walk_access", f"""
        INSERT INTO cdt.walk_access (building_id, residents, kindergarten_min, school_min, polyclinic_min,
                                     pharmacy_min, stop_min, park_min, score_15min, territory_id, geom)
        SELECT b.id, b.residents, w.kindergarten_min * j.f, w.school_min * j.f, w.polyclinic_min * j.f,
               w.pharmacy_min * j.f, w.stop_min * j.f, w.park_min * j.f, w.score_15min, b.tid,
               ST_Translate(w.geom, b.dx, b.dy)
        FROM kept_b b JOIN cdt.walk_access w ON w.building_id = b.orig_id,
             LATERAL (SELECT {JITTER_SQL.format(id='b.id')} AS f) j"""),
    ("facilities", f"""
        INSERT INTO cdt.facilities (type_code, name, category, capacity, capacity_unit, territory_id, geom, source,
                                    source_id)
        SELECT x.type_code, x.name, x.category, {_perturb('x.capacity')}, x.capacity_unit, r.tid,
               ST_Translate(x.geom, r.dx, r.dy), :rep, r.k || ':' || x.id
        FROM bench_new r JOIN cdt.facilities x ON x.territory_id = :v AND {KEEP}"""),
    ("streets: sample", f"""
        CREATE TEMP TABLE kept_e ON COMMIT DROP AS
        SELECT x.id AS orig_id, x.from_node, x.to_node, r.k, r.dx, r.dy
        FROM bench_new r JOIN cdt.street_edges x ON x.source IS DISTINCT FROM :rep AND {KEEP}"""),
    ("streets: nodes", """
        CREATE TEMP TABLE kept_n ON COMMIT DROP AS
        SELECT nextval('cdt.street_nodes_id_seq') AS id, k, node, dx, dy
        FROM (SELECT DISTINCT e.k, n.node, e.dx, e.dy FROM kept_e e,
              LATERAL (VALUES (e.from_node), (e.to_node)) n(node)) s;
        INSERT INTO cdt.street_nodes (id, geom, source, source_id)
        SELECT n.id, ST_Translate(o.geom, n.dx, n.dy), :rep, n.k || ':' || n.node
        FROM kept_n n JOIN cdt.street_nodes o ON o.id = n.node"""),
    ("streets: edges", """
        INSERT INTO cdt.street_edges (from_node, to_node, name, highway, walk, drive, oneway, speed_kmh, geom,
                                      source, source_id)
        SELECT a.id, b.id, x.name, x.highway, x.walk, x.drive, x.oneway, x.speed_kmh,
               ST_Translate(x.geom, e.dx, e.dy), :rep, e.k || ':' || x.id
        FROM kept_e e JOIN cdt.street_edges x ON x.id = e.orig_id
        JOIN kept_n a ON a.k = e.k AND a.node = e.from_node JOIN kept_n b ON b.k = e.k AND b.node = e.to_node"""),
    ("water, railways", f"""
        INSERT INTO cdt.water (name, geom, source, source_id)
        SELECT x.name, ST_Translate(x.geom, r.dx, r.dy), :rep, r.k || ':' || x.id
        FROM bench_new r JOIN cdt.water x ON x.source IS DISTINCT FROM :rep AND {KEEP};
        INSERT INTO cdt.railways (name, geom, source, source_id)
        SELECT x.name, ST_Translate(x.geom, r.dx, r.dy), :rep, r.k || ':' || x.id
        FROM bench_new r JOIN cdt.railways x ON x.source IS DISTINCT FROM :rep AND {KEEP}"""),
    ("service_provision, utilities, plans", f"""
        INSERT INTO cdt.service_provision (facility_type, hex, residents, demand, served, deficit, covered_share,
                                           territory_id, geom)
        SELECT x.facility_type, x.hex, {_perturb('x.residents')}, {_perturb('x.demand')}, {_perturb('x.served')},
               {_perturb('x.deficit')}, x.covered_share, r.tid, ST_Translate(x.geom, r.dx, r.dy)
        FROM bench_new r JOIN cdt.service_provision x ON x.territory_id = :v AND {KEEP};
        INSERT INTO cdt.utility_lines (kind, diameter_mm, voltage_kv, pressure_class, capacity, load, unit, year,
                                       geom, source, source_id, territory_id)
        SELECT x.kind, x.diameter_mm, x.voltage_kv, x.pressure_class, x.capacity, {_perturb('x.load')}, x.unit,
               x.year, ST_Translate(x.geom, r.dx, r.dy), :rep, r.k || ':' || x.id, r.tid
        FROM bench_new r JOIN cdt.utility_lines x ON x.territory_id = :v;
        INSERT INTO cdt.planned_facilities (type_code, name, capacity, status, planned_year, plan_document,
                                            territory_id, geom, source, source_id)
        SELECT x.type_code, x.name, {_perturb('x.capacity')}, x.status, x.planned_year, x.plan_document, r.tid,
               ST_Translate(x.geom, r.dx, r.dy), :rep, r.k || ':' || x.id
        FROM bench_new r JOIN cdt.planned_facilities x ON x.territory_id = :v"""),
    ("population", """
        UPDATE cdt.territories t SET population = s.res, population_source = 'bench: residents x U(0.80, 0.95)'
        FROM (SELECT tid, round(sum(residents) * (0.80 + 0.15 * random()))::bigint AS res FROM kept_b GROUP BY tid) s
        WHERE t.id = s.tid"""),
]


def add_replicas(engine: Engine, first_k: int, probabilities: np.ndarray, seed: int) -> list[int]:
    """Replicas first_k .. first_k + len(probabilities) - 1 in one transaction; their territory ids."""
    ks = np.arange(first_k, first_k + len(probabilities))
    if ks[-1] >= 10_000:
        raise SystemExit("at most 9,999 replicas (OKTMO 1975kkkk)")
    dx = STEP_X * ((ks - 1) % GRID_COLUMNS + 1)
    dy = -STEP_Y * ((ks - 1) // GRID_COLUMNS)
    # a bar on a terminal; in a log file one line per batch with the time of each step
    bar = tqdm(total=len(STEPS) + 2, desc=f"replicas {ks[0]}..{ks[-1]}", unit="step", file=sys.stdout,
               mininterval=0, ncols=110, disable=not sys.stdout.isatty())
    step_s: dict[str, float] = {}
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        conn.execute(text("SELECT setseed(:s)"), {"s": (seed * 7919 + first_k) % 10_000 / 10_000})
        v = conn.execute(text("SELECT id FROM cdt.territories WHERE oktmo = :o"), {"o": VOLOGDA}).scalar_one()
        rows = conn.execute(text("""
            INSERT INTO cdt.territories (oktmo, name, level, parent_id, population_source, timezone, local_crs,
                                         boundary, centre)
            SELECT :prefix || lpad(r.k::text, 4, '0'), 'Реплика Вологды № ' || r.k, 'urban_okrug', t.parent_id,
                   'bench', t.timezone, t.local_crs, ST_Translate(t.boundary, r.dx, r.dy),
                   ST_Translate(t.centre, r.dx, r.dy)
            FROM unnest(CAST(:k AS int[]), CAST(:dx AS float8[]), CAST(:dy AS float8[])) AS r(k, dx, dy),
                 cdt.territories t
            WHERE t.id = :v ORDER BY r.k RETURNING id, oktmo"""),
            {"prefix": OKTMO_PREFIX, "k": ks.tolist(), "dx": dx.tolist(), "dy": dy.tolist(), "v": v}).all()
        tid_of = {int(o[len(OKTMO_PREFIX):]): t for t, o in rows}
        tids = [tid_of[int(k)] for k in ks]
        conn.execute(text("""
            CREATE TEMP TABLE bench_new ON COMMIT DROP AS
            SELECT * FROM unnest(CAST(:k AS int[]), CAST(:t AS int[]), CAST(:p AS float8[]), CAST(:dx AS float8[]),
                                 CAST(:dy AS float8[])) AS r(k, tid, p, dx, dy)"""),
            {"k": ks.tolist(), "t": tids, "p": probabilities.tolist(), "dx": dx.tolist(), "dy": dy.tolist()})
        bar.update()
        for label, sql in STEPS:
            bar.set_postfix_str(label)
            t0 = time.perf_counter()
            for statement in sql.split(";"):
                conn.execute(text(statement), {"v": v, "rep": REPLICA})
            step_s[label] = time.perf_counter() - t0
            bar.update()
        bar.set_postfix_str("building_access (numpy + COPY)")
        t0 = time.perf_counter()
        copy_building_access(conn, v)
        step_s["building_access (numpy + COPY)"] = time.perf_counter() - t0
        bar.update()
        bar.close()
    say(f"  replicas {ks[0]}..{ks[-1]}: " + ", ".join(f"{k} {v:.1f} s" for k, v in step_s.items()))
    return tids


def copy_building_access(conn: Connection, vologda_id: int) -> None:
    """Vologda's packed minutes of each kept residential building x the building's factor, written with COPY:
    float32 arrays inside bytea are awkward to scale in SQL, trivial in numpy."""
    base = conn.execute(text("SELECT building_id, minutes FROM cdt.building_access WHERE territory_id = :v "
                             "ORDER BY building_id"), {"v": vologda_id}).all()
    base_ids = np.array([r[0] for r in base], dtype=np.int64)
    base_min = np.stack([np.frombuffer(r[1], "<f4") for r in base])
    kept = np.array(conn.execute(text(
        "SELECT b.id, b.orig_id, b.tid, coalesce(b.residents, 0), coalesce(b.floors, 0) FROM kept_b b "
        "JOIN cdt.building_access a ON a.building_id = b.orig_id ORDER BY b.id")).all(), dtype=np.int64).reshape(-1, 5)
    minutes = (base_min[np.searchsorted(base_ids, kept[:, 1])] * jitter(kept[:, 0])[:, None]).astype("<f4")
    with conn.connection.dbapi_connection.cursor() as cur, cur.copy(
            "COPY cdt.building_access (building_id, territory_id, residents, floors, minutes) FROM STDIN") as copy:
        for (bid, _orig, tid, res, floors), m in zip(kept.tolist(), minutes, strict=True):
            copy.write_row((bid, tid, res, floors, m.tobytes()))


def describe(engine: Engine, tids: Sequence[int]) -> str:
    """What the replicas contain, per replica: min / median / max."""
    with engine.connect() as conn:
        rows = conn.execute(text("""
            WITH b AS (SELECT territory_id AS id, count(*) AS n, coalesce(sum(residents), 0) AS res
                       FROM cdt.buildings WHERE territory_id = ANY(:t) GROUP BY 1),
                 a AS (SELECT territory_id AS id, count(*) AS n FROM cdt.building_access
                       WHERE territory_id = ANY(:t) GROUP BY 1),
                 f AS (SELECT territory_id AS id, count(*) AS n FROM cdt.facilities WHERE territory_id = ANY(:t)
                       GROUP BY 1),
                 e AS (SELECT split_part(source_id, ':', 1)::int AS k, count(*) AS n FROM cdt.street_edges
                       WHERE source = :rep GROUP BY 1)
            SELECT t.id, t.population, coalesce(b.n, 0), coalesce(b.res, 0), coalesce(a.n, 0), coalesce(f.n, 0),
                   coalesce(e.n, 0)
            FROM cdt.territories t LEFT JOIN b USING (id) LEFT JOIN a USING (id) LEFT JOIN f USING (id)
            LEFT JOIN e ON e.k = substr(t.oktmo, 5)::int
            WHERE t.id = ANY(:t)"""), {"t": list(tids), "rep": REPLICA}).all()
    arr = np.array([r[1:] for r in rows], dtype=float)
    names = ("registered population", "buildings", "residents in buildings", "residential (building_access)",
             "facilities", "street edges")
    lines = [f"  {'per replica':<30}{'min':>10}{'median':>10}{'max':>10}{'total':>12}"]
    for j, name in enumerate(names):
        col = arr[:, j]
        lines.append(f"  {name:<30}{col.min():>10,.0f}{np.median(col):>10,.0f}{col.max():>10,.0f}{col.sum():>12,.0f}")
    return "\n".join(lines)


# --- the measurements -----------------------------------------------------------------------------------------

class Phases:
    """The engine's progress callback: a timestamp per phase reported."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, str]] = []

    def __call__(self, _pct: float, message: str) -> None:
        self.marks.append((time.perf_counter(), message))

    def durations(self, start: float, end: float) -> dict[str, float]:
        out = {"setup (registry, order, territory map)": (self.marks[0][0] if self.marks else end) - start}
        for (t, msg), (t_next, _) in zip(self.marks, [*self.marks[1:], (end, "")], strict=True):
            label = {"access family": "access family (+ CO2, series)", "done": "assemble the frame"}.get(msg, msg)
            out[label] = out.get(label, 0.0) + t_next - t
        return out


def compute_once(engine: Engine, tids: list[int], year: int, jit: bool = True):
    """(seconds, seconds per phase, frame) of one engine.compute in a transaction of its own, rolled back."""
    from planning.indicators import engine as ind_engine

    with engine.connect() as conn, conn.begin() as tx:
        if not jit:
            conn.execute(text("SET LOCAL jit = off"))
        progress = Phases()
        t0 = time.perf_counter()
        frame = ind_engine.compute(conn, tids, year=year, progress=progress)
        t1 = time.perf_counter()
        tx.rollback()
    return t1 - t0, progress.durations(t0, t1), frame


def measure(engine: Engine, tids: list[int], repeat: int, year: int) -> dict:
    from planning.indicators import families, store

    times, phases, frame = [], defaultdict(list), None
    for _ in range(repeat):
        frame = None
        seconds, durations, frame = compute_once(engine, tids, year)
        times.append(seconds)
        for k, v in durations.items():
            phases[k].append(v)
    # PostgreSQL compiles the costliest measure queries with JIT (~0.4 s each): one run without, for comparison
    nojit_s, nojit_phases, _ = compute_once(engine, tids, year, jit=False)
    with engine.connect() as conn:  # the access phase's SQL part alone
        tmap = families.territory_map(conn, tids)
        t0 = time.perf_counter()
        inputs = families.load_access_inputs(conn, tmap.leaf_ids)
        load_s = time.perf_counter() - t0
    with engine.connect() as conn:
        t0 = time.perf_counter()
        with conn.begin():
            rows = store.save(conn, frame, year)
        save_s = time.perf_counter() - t0  # the commit included
        conn.execute(text("TRUNCATE cdt.indicator_values"))
        conn.commit()
    return {"compute_s": statistics.median(times), "runs": times, "save_s": save_s, "rows": rows,
            "indicators": len(frame.codes), "territories": len(frame.territory_ids),
            "non_null": int(np.count_nonzero(~np.isnan(frame.values))),
            "phases": {k: statistics.median(v) for k, v in phases.items()}, "load_access_s": load_s,
            "access_buildings": len(inputs.residents), "nojit_s": nojit_s, "nojit_phases": nojit_phases}


def naive(engine: Engine, sample: list[int], parent: int, year: int, budget_s: float) -> dict:
    """One query per SQL measure per territory: what a straightforward implementation would run. Timed with JIT
    on (PostgreSQL's default) and off; each mode stops after `budget_s` (at least 3 territories)."""
    from planning.indicators import catalog
    from planning.indicators.sources import SOURCES, measure_query

    with engine.connect() as conn:
        measures = [d for d in catalog.registry(conn).values() if d.kind == "measure"]
    queries = [(text(measure_query(SOURCES[d.source_layer], [d.formula])), d.source_layer) for d in measures]
    out: dict = {"measures": len(measures)}
    for jit in (True, False):
        by_source: dict[str, float] = defaultdict(float)
        with engine.connect() as conn, conn.begin() as tx:
            conn.execute(text(f"SET LOCAL jit = {'on' if jit else 'off'}"))

            def run(tid: int, conn: Connection = conn, by_source: dict[str, float] = by_source) -> float:
                t0 = time.perf_counter()
                for q, src in queries:
                    t = time.perf_counter()
                    conn.execute(q, {"scope": [tid], "year": year}).all()
                    by_source[src] += time.perf_counter() - t
                return time.perf_counter() - t0

            run(sample[0])  # warm-up: catalog caches, buffers
            by_source.clear()
            per_replica: list[float] = []
            started = time.perf_counter()
            for tid in tqdm(sample, desc=f"naive, jit {'on' if jit else 'off'}", file=sys.stdout, ncols=110,
                            disable=not sys.stdout.isatty()):
                per_replica.append(run(tid))
                if len(per_replica) >= 3 and time.perf_counter() - started > budget_s:
                    break
            parent_s = run(parent)
            tx.rollback()
        out["jit" if jit else "nojit"] = {"per_replica_s": statistics.mean(per_replica), "parent_s": parent_s,
                                          "by_source": dict(by_source), "sample": len(per_replica)}
    return out


def linear_fit(ns: Sequence[int], ts: Sequence[float]) -> tuple[float, float, float]:
    """(a, b, R²) of t = a + b N by least squares."""
    x, y = np.asarray(ns, float), np.asarray(ts, float)
    b, a = np.polyfit(x, y, 1)
    resid = y - (a + b * x)
    ss = float(((y - y.mean()) ** 2).sum())
    return float(a), float(b), 1.0 - float((resid**2).sum()) / ss if ss > 0 else 1.0


# --- main --------------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,250,500,1000,2000", help="numbers of municipalities, ascending")
    parser.add_argument("--quick", action="store_true", help="sizes 50,100")
    parser.add_argument("--repeat", type=int, default=3, help="compute runs per size (median)")
    parser.add_argument("--naive", type=int, default=50, help="replicas timed with one query per measure (0: skip)")
    parser.add_argument("--naive-budget", type=float, default=120.0, help="seconds per JIT mode for the naive runs")
    parser.add_argument("--db-name", default="cdt_bench_indicators")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--reuse", action="store_true", help="start from a kept database (its replicas deleted)")
    parser.add_argument("--seed", type=int, default=1975)
    args = parser.parse_args()
    sizes = [50, 100] if args.quick else sorted({int(s) for s in args.sizes.split(",")})
    if args.repeat < 1 or not sizes or sizes[0] < 1:
        parser.error("--repeat and --sizes must be positive")

    from geoserver_app.embedded_pg import drop_database

    year = date.today().year
    server = server_url()
    engine = prepare(server, args.db_name, args.reuse)
    try:
        run(engine, sizes, args, year)
    finally:
        engine.dispose()
        if not args.keep:
            drop_database(server + "/postgres", args.db_name)
            say(f"dropped database {args.db_name}")


def run(engine: Engine, sizes: list[int], args: argparse.Namespace, year: int) -> None:
    probabilities = np.random.default_rng(args.seed).uniform(*P_RANGE, size=sizes[-1])
    with engine.connect() as conn:
        parent = conn.execute(text("SELECT parent_id FROM cdt.territories WHERE oktmo = :o"), {"o": VOLOGDA}).scalar()
    say(f"{os.cpu_count()} CPUs; compute: median of {args.repeat} runs per size, year {year}; the territories "
        f"computed: the replicas + Vologda Oblast (id {parent}, which also holds Vologda itself)")
    tids: list[int] = []
    results: dict[int, dict] = {}
    for n in sizes:
        t0, before = time.perf_counter(), len(tids)
        tids += add_replicas(engine, before + 1, probabilities[before:n], args.seed)
        vacuum_analyze(engine)
        say(f"N = {n}: {n - before} replicas added in {time.perf_counter() - t0:.0f} s (incl. VACUUM ANALYZE)")
        results[n] = r = measure(engine, [parent, *tids], args.repeat, year)
        say(f"  compute {r['compute_s']:.2f} s (runs {', '.join(f'{t:.2f}' for t in r['runs'])}), "
            f"save {r['save_s']:.2f} s, {r['rows']:,} rows")
    say(f"\nwhat the replicas contain (N = {sizes[-1]})")
    say(describe(engine, tids))
    report(results, sizes, args, engine, tids, parent, year)


def report(results: dict[int, dict], sizes: list[int], args: argparse.Namespace, engine: Engine, tids: list[int],
           parent: int, year: int) -> None:
    say(f"\nevery indicator for N municipalities (+ the oblast), compute = median of {args.repeat} runs")
    say(f"{'N':>6}{'indicators':>12}{'values (N x ind.)':>19}{'non-NULL':>12}{'compute s':>11}{'ms / munic.':>12}"
        f"{'save s':>9}{'rows':>12}")
    for n in sizes:
        r = results[n]
        say(f"{n:>6}{r['indicators']:>12,}{n * r['indicators']:>19,}{r['non_null']:>12,}{r['compute_s']:>11.2f}"
            f"{1000 * r['compute_s'] / n:>12.1f}{r['save_s']:>9.2f}{r['rows']:>12,}")
    phase_names = list(dict.fromkeys(k for n in sizes for k in results[n]["phases"]))
    say("\ntime per phase, s (medians; the access family phase includes reading building_access)")
    say(f"{'phase':<42}" + "".join(f"{'N=' + str(n):>10}" for n in sizes))
    for name in phase_names:
        say(f"{name:<42}" + "".join(f"{results[n]['phases'].get(name, float('nan')):>10.3f}" for n in sizes))
    say(f"{'  of which load_access_inputs (SQL, 1 run)':<42}"
        + "".join(f"{results[n]['load_access_s']:>10.3f}" for n in sizes))
    measures_s = {n: sum(v for k, v in results[n]["phases"].items() if k.startswith("measures of")) for n in sizes}
    say(f"{'all SQL measures':<42}" + "".join(f"{measures_s[n]:>10.3f}" for n in sizes))
    say(f"{'compute with jit = off (1 run)':<42}" + "".join(f"{results[n]['nojit_s']:>10.3f}" for n in sizes))
    slow = sorted(results[sizes[-1]]["nojit_phases"].items(), key=lambda kv: -kv[1])[:4]
    say(f"  jit = off at N={sizes[-1]}, largest phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in slow))
    nojit_measures_s = sum(v for k, v in results[sizes[-1]]["nojit_phases"].items() if k.startswith("measures of"))

    largest = sizes[-1]
    if len(sizes) >= 2:
        a, b, r2 = linear_fit(sizes, [results[n]["compute_s"] for n in sizes])
        say(f"\nlinear fit, compute: t = {a:.2f} s + {1000 * b:.2f} ms x N  (R² = {r2:.4f}); "
            f"predicted for N={TARGET_N}: {a + b * TARGET_N:.1f} s")
        for n in sizes:
            fit = a + b * n
            say(f"  N={n:<6} measured {results[n]['compute_s']:7.2f} s, fit {fit:7.2f} s, "
                f"residual {100 * (results[n]['compute_s'] - fit) / fit:+6.1f} %")
        a_s, b_s, r2_s = linear_fit(sizes, [results[n]["save_s"] for n in sizes])
        say(f"linear fit, save: t = {a_s:.2f} s + {1000 * b_s:.2f} ms x N  (R² = {r2_s:.4f})")
    if TARGET_N in results:
        t = results[TARGET_N]["compute_s"]
        say(f"target: every indicator for {TARGET_N} municipalities under {TARGET_S:.0f} s: {t:.1f} s -> "
            f"{'MET' if t < TARGET_S else 'MISSED'}"
            f" (with store.save: {t + results[TARGET_N]['save_s']:.1f} s)")
    if args.naive > 0:
        nv = naive(engine, tids[:args.naive], parent, year, args.naive_budget)
        r = results[largest]
        say(f"\nnaive reference at N={largest}: one query per SQL measure ({nv['measures']}) per territory, "
            f"extrapolated to {largest} replicas + the oblast")
        say(f"  {'mode':<10}{'replicas timed':>16}{'ms / replica':>14}{'ms / query':>12}{'oblast s':>10}"
            f"{'total s':>10}{'/ engine measures':>19}{'/ engine compute':>18}")
        for mode, engine_measures, engine_all in (("jit", measures_s[largest], r["compute_s"]),
                                                  ("nojit", nojit_measures_s, r["nojit_s"])):
            m = nv[mode]
            total = m["per_replica_s"] * largest + m["parent_s"]
            say(f"  {'JIT on' if mode == 'jit' else 'JIT off':<10}{m['sample']:>16}{1000 * m['per_replica_s']:>14.0f}"
                f"{1000 * m['per_replica_s'] / nv['measures']:>12.2f}{m['parent_s']:>10.2f}{total:>10.1f}"
                f"{total / engine_measures:>18.1f}x{total / engine_all:>17.1f}x")
        for mode in ("jit", "nojit"):
            shares = nv[mode]["by_source"]
            worst = sorted(shares.items(), key=lambda kv: -kv[1])[:5]
            say(f"  naive time by source, JIT {'on' if mode == 'jit' else 'off'}: "
                + ", ".join(f"{k} {100 * v / sum(shares.values()):.0f}%" for k, v in worst))
        say("  (the engine's columns: its SQL-measure phases and its whole compute at the same N, same JIT mode; the "
            "naive figure covers the SQL measures only)")


if __name__ == "__main__":
    main()
