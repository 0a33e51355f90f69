"""Benchmark: CDT's OGC API (Features + MVT tiles) against pygeoapi and tipg, same PostGIS, same tables.

One run serves the Vologda demo tables `cdt.buildings` (25,324 polygons) and `cdt.street_edges` (2,785
lines) from ONE PostGIS database through three servers, each behind its usual production server with
the same number of worker processes (--workers, default 2 = the machine's cores):

    CDT       gunicorn (sync workers, as `cdt serve`)  geoserver_app.wsgi:app       (project .venv)
    pygeoapi  gunicorn (sync workers)            pygeoapi.flask_app:APP, PostgreSQL provider
    tipg      gunicorn -k uvicorn.workers.UvicornWorker  tipg.main:app  (uvloop + httptools)

All three get the same gunicorn options (--workers N --timeout 120, no access log, no control socket).
Peers live in their own venv, /work/main/.bench/venv (created on first run), with these versions:

    pygeoapi 0.21.0, tipg 1.6.1, uvicorn[standard] 0.54.0, gunicorn 27.0.1, psycopg2-binary 2.9.13,
    GeoAlchemy2 0.20.0 (needed by pygeoapi's PostgreSQL providers, not pulled in by pygeoapi itself)
    (resolved with them: SQLAlchemy 2.1.9, asyncpg 0.32.0, fastapi 0.165.0, starlette 1.10.0,
     pygeofilter 0.4.0, morecantile 7.1.0, uvloop 0.23.0, httptools 0.9.0; the full `pip freeze` is
     saved with every result file)

Peer configuration: bench/peers/pygeoapi-config.yml (max_items raised to 10000: pygeoapi caps `limit`
at 10 by default) and bench/peers/tipg.env (max features per query 10000, per tile unlimited: tipg
drops features past 10000 in a tile by default).

Load: `wrk` (Debian package; installed with apt-get when missing and running as root), one thread and
--concurrency connections, no Accept-Encoding (no compression anywhere), a Lua script that cycles
through a list of paths (ids, tiles) and prints p50/p95. wrk's own CPU use is measured and reported.

Queries (features): buildings limit=100, limit=1000, bbox (1 km box around 39.89 E 59.22 N, limit
1000), CQL2 `floors>=9` (limit 100; pygeoapi 0.21 only accepts filter-lang=cql-text, the same text
syntax), one feature by id (cycling through 500 ids); street_edges limit=100, limit=1000, bbox, by id.
Each: a correctness check (status 200, content type, feature count compared with the database), a
warm-up (--warmup s), then --duration s measured.

Tiles: every WebMercatorQuad tile over each table's extent at z12-z16 (morecantile; 2,752 tiles for
buildings), shuffled. "cold" = one pass over every tile exactly once (for CDT after
`DELETE FROM cdt.tile_cache`; tipg has no tile cache, so its cold and cached passes both render);
"cached" = a second, --duration s pass. pygeoapi's MVT-postgresql provider does render from PostGIS on
the fly, but 0.21 calls ST_Transform with a text SRID ('EPSG:3857'), which builds a PROJ pipeline per
geometry: ~5 s for one z14 tile, past the worker timeout at z12. Its tiles are therefore only probed
(one tile per zoom, latency printed) unless --pygeoapi-tiles asks for the full runs.

Database: CDT_DATABASE_URL if set (used as is: the demo must be loaded). Otherwise CDT's embedded
cluster (`cdt db start`) and a database of its own, --db-name (default `cdt_bench`), migrated to head
and loaded with the demo when empty, so the benchmark never touches the database others work in.

    .venv/bin/python bench/ogc_bench.py [--duration 10] [--concurrency 8] [--only features|tiles]
                                        [--servers cdt,pygeoapi,tipg] [--rounds 1] [--queries REGEX]

(`python bench/ogc_bench.py` works too: it re-runs itself with the project's .venv.)

CPU accounting per run (share of one core): the server's process group, the PostgreSQL backends of the
benchmark database (parallel workers that end within the run are missed and land in "other"), wrk, and
the rest of the machine ("other"; over 30% marks the run NOISY: the machine is shared, so use --rounds 3
for medians of interleaved rounds when it is busy).

Results: a table on stdout (query | server | req/s | p50 ms | p95 ms | CDT/peer req/s), the targets
(CDT >= 3x pygeoapi and >= 1.2x tipg on every feature query; tiles >= tipg), and a JSON file in
bench/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"

# The project's venv has what this script imports (psycopg, morecantile, CDT itself): run in it.
if PROJECT_PYTHON.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
    os.execv(str(PROJECT_PYTHON), [str(PROJECT_PYTHON), *sys.argv])

sys.path.insert(0, str(ROOT))

WORK = ROOT / ".bench"
PEER_VENV = WORK / "venv"
RUN = WORK / "run"
PEERS = ROOT / "bench" / "peers"
RESULTS = ROOT / "bench" / "results"

# As `cdt serve` runs it (sync workers); CDT_BENCH_WORKER_ARGS tries others, e.g. "--worker-class gthread --threads 4".
CDT_WORKER_ARGS = os.environ.get("CDT_BENCH_WORKER_ARGS", "--worker-class sync").split()
PEER_PACKAGES = ["pygeoapi==0.21.0", "tipg==1.6.1", "uvicorn[standard]==0.54.0", "gunicorn==27.0.1",
                 "psycopg2-binary==2.9.13", "GeoAlchemy2==0.20.0"]
SERVERS = ("cdt", "pygeoapi", "tipg")
CENTER = (39.89, 59.22)  # central Vologda, lon/lat
ZOOMS = range(12, 17)
JSON_TYPES = ("application/geo+json", "application/json")
MVT_TYPES = ("application/vnd.mapbox-vector-tile", "application/x-protobuf")

LUA = r"""
-- Written by bench/ogc_bench.py. args: paths file, stop after N responses (0 = run for -d).
local ffi = require("ffi")
ffi.cdef[[ int kill(int pid, int sig); int getpid(void); ]]
paths = {}
idx = 0
limit = 0
responses = 0
non2xx = 0

function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    if #line > 0 then paths[#paths + 1] = line end
  end
  f:close()
  limit = tonumber(args[2]) or 0
end

function request()
  idx = idx % #paths + 1
  return wrk.format("GET", paths[idx])
end

if COUNTING then
  function response(status, headers, body)
    responses = responses + 1
    if status < 200 or status > 299 then non2xx = non2xx + 1 end
    if limit > 0 and responses >= limit then
      wrk.thread:stop()
      ffi.C.kill(ffi.C.getpid(), 2)  -- SIGINT: wrk reports at once, with the real elapsed time
    end
  end
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local resp, bad = 0, 0
  for _, t in ipairs(threads) do
    resp = resp + (t:get("responses") or 0)
    bad = bad + (t:get("non2xx") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%.1f,"p95_us":%.1f,"p99_us":%.1f,' ..
    '"mean_us":%.1f,"max_us":%.1f,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"status_errors":%d,"timeouts":%d,"lua_responses":%d,"lua_non2xx":%d}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout,
    resp, bad))
end
"""


# --- small helpers ----------------------------------------------------------------------------
def say(msg: str = "") -> None:
    print(msg, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def libpq_url(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgres") else url


def http_get(url: str, timeout: float = 60.0) -> tuple[int, str, bytes, float]:
    """(status, content type, body, seconds); status 0 when no HTTP answer came."""
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read()
            return resp.status, resp.headers.get("Content-Type", ""), body, time.perf_counter() - t0
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read(), time.perf_counter() - t0
    except (OSError, urllib.error.URLError) as exc:
        return 0, "", str(exc).encode(), time.perf_counter() - t0


def short(body: bytes, n: int = 160) -> str:
    return body[:n].decode("utf-8", "replace").replace("\n", " ")


# --- environment: wrk, the peers' venv, the database ----------------------------------------------
def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    if os.geteuid() != 0:
        sys.exit("wrk is not installed: apt-get install wrk (as root)")
    say("installing wrk (apt-get) ...")
    subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or sys.exit("wrk still missing after apt-get install wrk")


def ensure_peer_venv() -> dict[str, str]:
    python = PEER_VENV / "bin" / "python"
    probe = "import pygeoapi, tipg, uvicorn, gunicorn, psycopg2, geoalchemy2, uvloop"
    if not python.exists() or subprocess.run([str(python), "-c", probe], capture_output=True).returncode:
        say(f"creating the peers' venv {PEER_VENV} ...")
        WORK.mkdir(exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    freeze = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    return dict(line.split("==", 1) for line in freeze.splitlines() if "==" in line)


def prepare_database(db_name: str) -> str:
    """A libpq URL of a database holding the demo: CDT_DATABASE_URL, or one in the embedded cluster."""
    import psycopg

    given = os.environ.get("CDT_DATABASE_URL", "").strip()
    if given:
        url = libpq_url(given)
    else:
        from geoserver_app.config import Config
        from geoserver_app.embedded_pg import database_url, ensure_database
        from layers.db import migrate

        config = Config.from_env()
        subprocess.run([str(ROOT / ".venv" / "bin" / "cdt"), "db", "start"], check=True, cwd=ROOT)
        server = database_url(config).rsplit("/", 1)[0]
        if ensure_database(server + "/postgres", db_name):
            say(f"created database {db_name} in the embedded cluster")
        try:
            migrate(server + "/" + db_name)
        except Exception as exc:  # noqa: BLE001 - a migration being written right now must not stop the peers
            say(f"!! migrating {db_name} failed, going on with its current schema: {exc}")
        url = libpq_url(server + "/" + db_name)
    with psycopg.connect(url) as conn:
        loaded = conn.execute("SELECT to_regclass('cdt.buildings') IS NOT NULL").fetchone()[0] and \
            conn.execute("SELECT EXISTS (SELECT 1 FROM cdt.buildings)").fetchone()[0]
    if not loaded:
        if given:
            sys.exit("CDT_DATABASE_URL has no buildings: load the demo first (cdt load demo)")
        from geoserver_app.config import Config
        from layers.db import engine_for
        from layers.ingest.demo import load_demo

        say(f"loading the demo into {db_name} ...")
        load_demo(engine_for(url.replace("postgresql://", "postgresql+psycopg://", 1)), Config.from_env().demo_data,
                  "bench", echo=lambda m: None)
    return url


@dataclass
class DbFacts:
    counts: dict[str, int]
    extents: dict[str, tuple[float, float, float, float]]
    bbox: tuple[float, float, float, float]
    bbox_counts: dict[str, int]
    filter_count: int
    ids: dict[str, list[int]]
    tile_cache: bool
    postgis: str


def db_facts(url: str) -> DbFacts:
    import psycopg

    # A ~1 km box around the centre: +-500 m.
    dlat = 0.5 / 111.32
    dlon = 0.5 / (111.32 * math.cos(math.radians(CENTER[1])))
    bbox = (round(CENTER[0] - dlon, 6), round(CENTER[1] - dlat, 6), round(CENTER[0] + dlon, 6),
            round(CENTER[1] + dlat, 6))
    counts, extents, bbox_counts, ids = {}, {}, {}, {}
    with psycopg.connect(url) as conn:
        # PostGIS may sit in `public` or (older databases) in `cdt`: both are on the default search_path.
        postgis = conn.execute("SELECT extversion || ' in schema ' || extnamespace::regnamespace FROM pg_extension "
                               "WHERE extname = 'postgis'").fetchone()[0]
        for table in ("buildings", "street_edges"):
            counts[table] = conn.execute(f"SELECT count(*) FROM cdt.{table}").fetchone()[0]
            row = conn.execute(f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                               f"(SELECT ST_Extent(geom) AS e FROM cdt.{table}) s").fetchone()
            extents[table] = tuple(float(v) for v in row)
            bbox_counts[table] = conn.execute(
                f"SELECT count(*) FROM cdt.{table} WHERE ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
                bbox).fetchone()[0]
            ids[table] = [r[0] for r in conn.execute(
                f"SELECT id FROM cdt.{table} ORDER BY md5(id::text) LIMIT 500").fetchall()]
        filter_count = conn.execute("SELECT count(*) FROM cdt.buildings WHERE floors >= 9").fetchone()[0]
        tile_cache = conn.execute("SELECT to_regclass('cdt.tile_cache') IS NOT NULL").fetchone()[0]
    return DbFacts(counts, extents, bbox, bbox_counts, filter_count, ids, tile_cache, postgis)


def clear_tile_cache(url: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT to_regclass('cdt.tile_cache') IS NOT NULL").fetchone()[0]:
            return "no cdt.tile_cache table"
        deleted = conn.execute("DELETE FROM cdt.tile_cache").rowcount
    return f"DELETE FROM cdt.tile_cache: {deleted} rows"


# --- the servers ------------------------------------------------------------------------------------
@dataclass
class Server:
    name: str
    port: int
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    collection: dict[str, str]          # table -> collection id
    fmt: str                            # the `f` value for GeoJSON
    filter_lang: str
    tile_path: str                      # with {c} {z} {x} {y}
    proc: subprocess.Popen | None = None
    log: Path | None = None
    version: str = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        RUN.mkdir(parents=True, exist_ok=True)
        self.log = RUN / f"{self.name}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, timeout: float = 90.0) -> str | None:
        """None when the server answers HTTP, else why not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"exited with {self.proc.returncode}; last log lines:\n{self.log_tail()}"
            status, _, _, _ = http_get(self.base + "/", timeout=5)
            if status:
                return None
            time.sleep(0.3)
        return f"no HTTP answer in {timeout:.0f} s; last log lines:\n{self.log_tail()}"

    def log_tail(self, n: int = 15) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log and self.log.exists() else []
        return "\n".join("    " + line for line in lines[-n:])

    def stop(self) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the group of the server we started (master + workers)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        except ProcessLookupError:
            pass

    # URLs
    def items(self, table: str, query: str) -> str:
        sep = "&" if query else ""
        return f"/collections/{self.collection[table]}/items?{query}{sep}f={self.fmt}"

    def item(self, table: str, fid: int) -> str:
        return f"/collections/{self.collection[table]}/items/{fid}?f={self.fmt}"

    def tile(self, table: str, z: int, x: int, y: int) -> str:
        return self.tile_path.format(c=self.collection[table], z=z, x=x, y=y)


def gunicorn_common(gunicorn: list[str], port: int, workers: int) -> list[str]:
    args = [*gunicorn, "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--timeout", "120"]
    helptext = subprocess.run([*gunicorn, "--help"], capture_output=True, text=True).stdout
    if "--no-control-socket" in helptext:  # gunicorn >= 24: one control socket per user otherwise
        args.append("--no-control-socket")
    return args


def make_servers(names: list[str], db_url: str, workers: int, versions: dict[str, str]) -> list[Server]:
    servers = []
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYGEOAPI_", "TIPG_", "CDT_BENCH_"))}
    base_env.pop("DATABASE_URL", None)
    parsed = urllib.parse.urlsplit(db_url)
    if "cdt" in names:
        port = free_port()
        env = dict(base_env, CDT_DATABASE_URL=db_url.replace("postgresql://", "postgresql+psycopg://", 1))
        argv = gunicorn_common([str(PROJECT_PYTHON), "-m", "gunicorn"], port, workers) + [
            *CDT_WORKER_ARGS, "geoserver_app.wsgi:app"]
        servers.append(Server("cdt", port, argv, env, ROOT, {"buildings": "buildings", "street_edges": "street_edges"},
                              "json", "cql2-text", "/collections/{c}/tiles/WebMercatorQuad/{z}/{y}/{x}",
                              version=_cdt_version()))
    gunicorn = [str(PEER_VENV / "bin" / "gunicorn")]
    if "pygeoapi" in names:
        port = free_port()
        RUN.mkdir(parents=True, exist_ok=True)
        env = dict(base_env, PYGEOAPI_CONFIG=str(PEERS / "pygeoapi-config.yml"),
                   PYGEOAPI_OPENAPI=str(RUN / "pygeoapi-openapi.yml"), CDT_BENCH_PYGEOAPI_PORT=str(port),
                   CDT_BENCH_PG_HOST=parsed.hostname or "127.0.0.1", CDT_BENCH_PG_PORT=str(parsed.port or 5432),
                   CDT_BENCH_PG_DBNAME=parsed.path.lstrip("/"), CDT_BENCH_PG_USER=urllib.parse.unquote(parsed.username
                                                                                                     or ""),
                   CDT_BENCH_PG_PASSWORD=urllib.parse.unquote(parsed.password or ""))
        subprocess.run([str(PEER_VENV / "bin" / "pygeoapi"), "openapi", "generate", env["PYGEOAPI_CONFIG"],
                        "--output-file", env["PYGEOAPI_OPENAPI"]], env=env, cwd=RUN, check=True, capture_output=True)
        argv = gunicorn_common(gunicorn, port, workers) + ["pygeoapi.flask_app:APP"]
        servers.append(Server("pygeoapi", port, argv, env, RUN, {"buildings": "buildings",
                                                                "street_edges": "street_edges"},
                              "json", "cql-text", "/collections/{c}/tiles/WebMercatorQuad/{z}/{y}/{x}?f=mvt",
                              version=versions.get("pygeoapi", "?")))
    if "tipg" in names:
        port = free_port()
        env = dict(base_env, DATABASE_URL=db_url)
        for line in (PEERS / "tipg.env").read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key.strip()] = value.strip()
        argv = gunicorn_common(gunicorn, port, workers) + ["-k", "uvicorn.workers.UvicornWorker", "tipg.main:app"]
        env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"  # uvicorn.workers is deprecated (still shipped)
        servers.append(Server("tipg", port, argv, env, RUN, {"buildings": "cdt.buildings",
                                                            "street_edges": "cdt.street_edges"},
                              "geojson", "cql2-text", "/collections/{c}/tiles/WebMercatorQuad/{z}/{x}/{y}",
                              version=versions.get("tipg", "?")))
    return servers


def _cdt_version() -> str:
    out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return out.stdout.strip() or "?"


# --- wrk ----------------------------------------------------------------------------------------------
@dataclass
class Run:
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    requests: int
    seconds: float
    kb_per_response: float
    errors: dict[str, int]
    wrk_cpu_pct: float
    server_cpu_pct: float
    db_cpu_pct: float
    other_cpu_pct: float
    partial: bool = False
    rounds_rps: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def cpu_snapshot(server_pgid: int, db_name: str) -> tuple[int, int, dict[int, int]]:
    """Clock ticks: the machine's busy time, the server's process group, each backend of our database."""
    with open("/proc/stat") as fh:
        ticks = [int(v) for v in fh.readline().split()[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
    server, backends, parallel = 0, {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            used = int(fields[11]) + int(fields[12])
            if int(fields[2]) == server_pgid:
                server += used
            elif stat[stat.index("(") + 1:stat.rindex(")")] == "postgres":
                words = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace").split()
                if len(words) > 2 and words[0] == "postgres:" and words[2] == db_name:
                    backends[int(entry)] = used
                elif words[1:4] == ["parallel", "worker", "for"] and len(words) > 5:
                    parallel[int(entry)] = (int(words[5]), used)  # "postgres: parallel worker for PID n"
        except (OSError, ValueError, IndexError):
            continue
    # A parallel worker works for its leader: count it when the leader is one of our backends.
    backends.update({pid: used for pid, (leader, used) in parallel.items() if leader in backends})
    return busy, server, backends


def run_wrk(wrk: str, server: Server, paths: list[str], seconds: float, concurrency: int, stop_after: int = 0,
            name: str = "run", db_name: str = "") -> Run:
    RUN.mkdir(parents=True, exist_ok=True)
    lua = RUN / f"wrk-{'count' if stop_after else 'time'}.lua"
    lua.write_text(f"COUNTING = {'true' if stop_after else 'false'}\n" + LUA)
    paths_file = RUN / f"paths-{server.name}-{name}.txt"
    paths_file.write_text("\n".join(paths) + "\n")
    argv = [wrk, "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "60s", "-s", str(lua),
            server.base, "--", str(paths_file), str(stop_after)]
    busy0, server0, db0 = cpu_snapshot(server.proc.pid, db_name)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=seconds + 120)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)  # communicate() reaped wrk: its CPU is in here now
    busy1, server1, db1 = cpu_snapshot(server.proc.pid, db_name)
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result (exit {proc.returncode}): {err.strip() or out.strip()}")
    res = json.loads(line.split(" ", 1)[1])
    elapsed = res["duration_us"] / 1e6
    hz = os.sysconf("SC_CLK_TCK")
    server_cpu = (server1 - server0) / hz
    db_cpu = sum(t - db0.get(pid, 0) for pid, t in db1.items()) / hz  # backends that ended in between are lost
    wrk_cpu = ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime
    other_cpu = max(0.0, (busy1 - busy0) / hz - server_cpu - db_cpu - wrk_cpu)
    n = res["requests"]
    errors = {k: res[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
              if res[k]}
    if res["lua_non2xx"]:
        errors["non_2xx"] = res["lua_non2xx"]
    return Run(rps=n / elapsed if elapsed else 0.0, p50_ms=res["p50_us"] / 1000, p95_ms=res["p95_us"] / 1000,
               p99_ms=res["p99_us"] / 1000, requests=n, seconds=elapsed,
               kb_per_response=res["bytes"] / n / 1024 if n else 0.0, errors=errors,
               wrk_cpu_pct=100 * wrk_cpu / elapsed if elapsed else 0.0,
               server_cpu_pct=100 * server_cpu / elapsed if elapsed else 0.0,
               db_cpu_pct=100 * db_cpu / elapsed if elapsed else 0.0,
               other_cpu_pct=100 * other_cpu / elapsed if elapsed else 0.0,
               partial=bool(stop_after and n < stop_after))


# --- checks ---------------------------------------------------------------------------------------------
@dataclass
class Query:
    name: str
    table: str
    kind: str                 # items | item | tiles
    params: str = ""          # items: the query string without f=
    expect: int | None = None  # features expected back (items)
    ids: list[int] = field(default_factory=list)

    def paths(self, server: Server) -> list[str]:
        if self.kind == "item":
            return [server.item(self.table, i) for i in self.ids]
        params = self.params.replace("{filter_lang}", server.filter_lang)
        return [server.items(self.table, params)]


def check_features(server: Server, query: Query) -> tuple[str | None, dict]:
    """(why it cannot be measured or None, facts to print)."""
    path = query.paths(server)[0]
    status, ctype, body, secs = http_get(server.base + path)
    facts: dict = {"status": status, "content_type": ctype.split(";")[0], "bytes": len(body), "seconds": secs,
                   "path": path}
    if status != 200:
        return f"HTTP {status} for {path}: {short(body)}", facts
    if not ctype.startswith(JSON_TYPES):
        return f"content type {ctype!r} for {path}", facts
    try:
        doc = json.loads(body)
    except ValueError:
        return f"not JSON: {short(body)}", facts
    if query.kind == "item":
        facts["returned"] = 1 if doc.get("type") == "Feature" else 0
        if doc.get("type") != "Feature" or str(doc.get("id")) != str(query.ids[0]):
            return f"not feature {query.ids[0]}: {short(body)}", facts
        return None, facts
    features = doc.get("features")
    if not isinstance(features, list):
        return f"no features array: {short(body)}", facts
    facts["returned"] = len(features)
    facts["numberReturned"] = doc.get("numberReturned")
    facts["numberMatched"] = doc.get("numberMatched")
    if query.expect is not None and len(features) != query.expect:
        facts["mismatch"] = f"{len(features)} features, the database says {query.expect}"
    return None, facts


def check_tiles(server: Server, table: str, center: dict[int, tuple[int, int]],
                slow_s: float) -> tuple[str | None, dict]:
    """Fetch the centre tile at each zoom: 200 (or 204: nothing drawn at that zoom), MVT type, not slow.

    A server that draws nothing at the centre at any zoom, answers otherwise, or is too slow is not run."""
    facts: dict = {"probe": {}, "empty_zooms": []}
    for z in sorted(center, reverse=True):  # cheap tiles first
        x, y = center[z]
        path = server.tile(table, z, x, y)
        status, ctype, body, secs = http_get(server.base + path, timeout=max(slow_s * 2, 30))
        facts["probe"][z] = {"status": status, "bytes": len(body), "seconds": round(secs, 3),
                             "features": _mvt_features(body) if status == 200 and body else None}
        if status not in (200, 204):
            return f"HTTP {status} for {path}: {short(body)}", facts
        if status == 200 and body and not ctype.startswith(MVT_TYPES):
            return f"content type {ctype!r} for {path}", facts
        if status == 204 or len(body) < 100:
            facts["empty_zooms"].append(z)
        if secs > slow_s:
            return f"too slow for a throughput run: {secs:.1f} s for {path} (--slow {slow_s:g})", facts
    if len(facts["empty_zooms"]) == len(center):
        return "an empty tile at the city centre at every zoom", facts
    return None, facts


def _mvt_features(body: bytes) -> int | None:
    try:
        import mapbox_vector_tile
    except ImportError:
        return None
    try:
        layers = mapbox_vector_tile.decode(body)
    except Exception:  # noqa: BLE001 - a probe: any decoding trouble just means "unknown"
        return None
    return sum(len(layer["features"]) for layer in layers.values())


def tile_list(extent: tuple[float, float, float, float]) -> tuple[list[tuple[int, int, int]], dict[int, int]]:
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    tiles = [(t.z, t.x, t.y) for t in tms.tiles(*extent, zooms=list(ZOOMS))]
    per_zoom = {z: sum(1 for t in tiles if t[0] == z) for z in ZOOMS}
    random.Random(42).shuffle(tiles)
    return tiles, per_zoom


def center_tiles() -> dict[int, tuple[int, int]]:
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    return {z: (tms.tile(*CENTER, z).x, tms.tile(*CENTER, z).y) for z in ZOOMS}


# --- the run ----------------------------------------------------------------------------------------------
def feature_queries(facts: DbFacts) -> list[Query]:
    b, s = "buildings", "street_edges"
    box = ",".join(f"{v:.6f}" for v in facts.bbox)  # the very box the database counted in
    return [
        Query("buildings limit=100", b, "items", "limit=100", 100),
        Query("buildings limit=1000", b, "items", "limit=1000", 1000),
        Query("buildings bbox 1km limit=1000", b, "items", f"bbox={box}&limit=1000",
              min(1000, facts.bbox_counts[b])),
        Query("buildings filter floors>=9 limit=100", b, "items",
              "filter-lang={filter_lang}&filter=" + urllib.parse.quote("floors>=9") + "&limit=100",
              min(100, facts.filter_count)),
        Query("buildings by id", b, "item", ids=facts.ids[b]),
        Query("streets limit=100", s, "items", "limit=100", 100),
        Query("streets limit=1000", s, "items", "limit=1000", 1000),
        Query("streets bbox 1km limit=1000", s, "items", f"bbox={box}&limit=1000", min(1000, facts.bbox_counts[s])),
        Query("streets by id", s, "item", ids=facts.ids[s]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per query and server")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up load before each measurement")
    parser.add_argument("--concurrency", type=int, default=8, help="open connections")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of every server")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every query R times, servers in turn, and report the median round "
                             "(steadier figures on a busy machine)")
    parser.add_argument("--only", choices=["features", "tiles"])
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--queries", default="", help="regex: run only the feature queries whose name matches")
    parser.add_argument("--tables", default="buildings,street_edges", help="tables whose tiles are measured")
    parser.add_argument("--cold-max", type=float, default=180.0, help="upper bound (s) for one cold tile pass")
    parser.add_argument("--slow", type=float, default=3.0, help="a probe tile slower than this (s) skips the runs")
    parser.add_argument("--pygeoapi-tiles", action="store_true",
                        help="also measure pygeoapi's MVT-postgresql tiles (very slow: see the docstring)")
    parser.add_argument("--db-name", default="cdt_bench", help="embedded cluster database (without CDT_DATABASE_URL)")
    args = parser.parse_args()
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    unknown = set(names) - set(SERVERS)
    if unknown:
        parser.error(f"unknown server(s): {', '.join(sorted(unknown))}")

    # SIGTERM behaves like Ctrl-C: the `finally` below stops what we started.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started with SIGINT ignored (a background job)

    wrk = ensure_wrk()
    wrk_version = (subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.splitlines() or ["?"])[0]
    versions = ensure_peer_venv() if {"pygeoapi", "tipg"} & set(names) else {}
    db_url = prepare_database(args.db_name)
    facts = db_facts(db_url)
    args.db_in_use = urllib.parse.urlsplit(db_url).path.lstrip("/")
    safe_url = re.sub(r":[^:@/]*@", ":***@", db_url)
    say(f"database {safe_url}: PostGIS {facts.postgis}; buildings {facts.counts['buildings']}, "
        f"street_edges {facts.counts['street_edges']}; bbox {facts.bbox} holds {facts.bbox_counts['buildings']} "
        f"buildings, {facts.bbox_counts['street_edges']} street edges; floors>=9: {facts.filter_count}")
    say(f"load: {wrk_version.split(' [')[0]}, 1 thread, {args.concurrency} connections, {args.warmup:g} s warm-up, "
        f"{args.duration:g} s measured; servers with {args.workers} workers on {os.cpu_count()} cores")

    servers = make_servers(names, db_url, args.workers, versions)
    results: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "args": vars(args), "wrk": wrk_version,
                     "cores": os.cpu_count(), "peer_versions": versions,
                     "servers": {}, "db": {"postgis": facts.postgis, "counts": facts.counts, "bbox": facts.bbox,
                                           "bbox_counts": facts.bbox_counts, "filter_count": facts.filter_count},
                     "checks": {}, "runs": [], "notes": []}
    notes: list[str] = results["notes"]
    try:
        live: list[Server] = []
        for server in servers:
            server.start()
        for server in servers:
            why = server.wait_ready()
            results["servers"][server.name] = {"version": server.version, "argv": server.argv, "port": server.port,
                                               "ready": why is None}
            if why:
                notes.append(f"{server.name}: did not start: {why}")
                say(f"!! {server.name} did not start: {why}")
            else:
                live.append(server)
                say(f"{server.name} {server.version} ready on {server.base}")
        if args.only != "tiles":
            run_features(wrk, live, feature_queries(facts), args, results)
        if args.only != "features":
            run_tiles(wrk, live, facts, db_url, args, results)
    except KeyboardInterrupt:
        say("\ninterrupted: stopping the servers")
        notes.append("interrupted")
    finally:
        for server in servers:
            server.stop()
    report(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"ogc_bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False, default=str))
    say(f"\nresults saved to {out.relative_to(ROOT)}")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def record(results: dict, query: str, kind: str, server: Server, run: Run | None, skipped: str | None = None,
           **extra) -> None:
    entry = {"query": query, "kind": kind, "server": server.name, **extra}
    if run:
        entry.update(run.as_dict())
    if skipped:
        entry["skipped"] = skipped
    results["runs"].append(entry)


def rotated(items: list, k: int) -> list:
    """Round k starts with another server, so none always runs first (or right after another's load)."""
    k %= max(1, len(items))
    return items[k:] + items[:k]


def median_run(runs: list[Run]) -> Run:
    """The round with the median req/s (its latencies come along); all rounds' req/s are kept."""
    ordered = sorted(runs, key=lambda r: r.rps)
    chosen = ordered[(len(ordered) - 1) // 2]
    chosen.rounds_rps = [round(r.rps, 1) for r in runs]
    return chosen


def run_line(label: str, run: Run, unit: str, extra: str = "") -> str:
    return (f"    {label:<16} {run.rps:8.1f} {unit}  p50 {run.p50_ms:7.1f} ms  p95 {run.p95_ms:7.1f} ms{extra}"
            f"{'  PARTIAL' if run.partial else ''}{'  errors ' + str(run.errors) if run.errors else ''}"
            f"  [other {run.other_cpu_pct:.0f}% cpu]")


def run_features(wrk: str, servers: list[Server], queries: list[Query], args, results: dict) -> None:
    pattern = re.compile(args.queries) if args.queries else None
    say("\n== features: checks (features returned / expected), then req/s per round ==")
    for query in queries:
        if pattern and not pattern.search(query.name):
            continue
        checks = {}
        for server in servers:
            why, facts = check_features(server, query)
            checks[server.name] = {"skip": why, **facts}
        results["checks"][query.name] = checks
        parts = []
        for name, c in checks.items():
            if c["skip"]:
                parts.append(f"{name}: SKIP ({c['skip']})")
            else:
                got = f"{c.get('returned')}" + (f" (numberReturned {c['numberReturned']})"
                                                if c.get("numberReturned") not in (None, c.get("returned")) else "")
                parts.append(f"{name}: {got}{' MISMATCH: ' + c['mismatch'] if c.get('mismatch') else ''}")
        expect = query.expect if query.kind == "items" else 1
        say(f"{query.name:<38} expect {expect:>4} | " + " | ".join(parts))
        ok = [s for s in servers if not checks[s.name]["skip"]]
        for server in servers:
            if checks[server.name]["skip"]:
                record(results, query.name, "features", server, None, skipped=checks[server.name]["skip"])
        runs: dict[str, list[Run]] = {s.name: [] for s in ok}
        for rnd in range(args.rounds):
            for server in rotated(ok, rnd):
                paths = query.paths(server)
                if rnd == 0 and args.warmup > 0:
                    run_wrk(wrk, server, paths, args.warmup, args.concurrency, name="warmup", db_name=args.db_in_use)
                run = run_wrk(wrk, server, paths, args.duration, args.concurrency, name="features",
                              db_name=args.db_in_use)
                runs[server.name].append(run)
                say(run_line(server.name + (f" r{rnd + 1}" if args.rounds > 1 else ""), run, "req/s"))
        for server in ok:
            c = checks[server.name]
            record(results, query.name, "features", server, median_run(runs[server.name]),
                   returned=c.get("returned"), mismatch=c.get("mismatch"))


def run_tiles(wrk: str, servers: list[Server], facts: DbFacts, db_url: str, args, results: dict) -> None:
    centers = center_tiles()
    for table in [t.strip() for t in args.tables.split(",") if t.strip()]:
        tiles, per_zoom = tile_list(facts.extents[table])
        label = f"tiles {table}"
        say(f"\n== {label}: {len(tiles)} WebMercatorQuad tiles over its extent, "
            + ", ".join(f"z{z} {n}" for z, n in per_zoom.items()) + " ==")
        results.setdefault("tiles", {})[table] = {"count": len(tiles), "per_zoom": per_zoom}
        ok, probes = [], {}
        for server in servers:
            forced = server.name == "pygeoapi" and args.pygeoapi_tiles
            why, probe = check_tiles(server, table, centers, 110.0 if forced else args.slow)
            probes[server.name] = probe
            results["checks"][f"{label} {server.name}"] = {"skip": why, **probe}
            probe_txt = ", ".join(f"z{z} {p['seconds'] * 1000:.0f} ms "
                                  + (f"{p['bytes'] / 1024:.0f} KB" if p["status"] == 200 else f"HTTP {p['status']}")
                                  + (f" {p['features']} feat" if p.get("features") is not None else "")
                                  for z, p in sorted(probe["probe"].items()))
            say(f"  {server.name:<9} centre tiles: {probe_txt}")
            if server.name == "pygeoapi" and not args.pygeoapi_tiles and (not why or why.startswith("too slow")):
                slowest = max(probe["probe"].items(), key=lambda kv: kv[1]["seconds"])
                why = (f"pygeoapi's MVT-postgresql provider renders from PostGIS on the fly, but calls ST_Transform "
                       f"with a text SRID (a PROJ pipeline per geometry): its z{slowest[0]} centre tile took "
                       f"{slowest[1]['seconds']:.1f} s; a throughput run needs --pygeoapi-tiles")
                if not any(n.startswith("pygeoapi tiles") for n in results["notes"]):
                    results["notes"].append("pygeoapi tiles " + why)
            if why:
                say(f"  {server.name:<9} SKIP tiles: {why}")
                for mode in ("cold", "cached"):
                    record(results, f"{label} {mode}", "tiles", server, None, skipped=why, probe=probe["probe"])
            else:
                ok.append(server)
        colds: dict[str, list[Run]] = {s.name: [] for s in ok}
        cacheds: dict[str, list[Run]] = {s.name: [] for s in ok}
        notes: dict[str, str] = {}
        for rnd in range(args.rounds):
            for server in rotated(ok, rnd):
                paths = [server.tile(table, z, x, y) for z, x, y in tiles]
                notes[server.name] = clear_tile_cache(db_url) if server.name == "cdt" else "no tile cache"
                cold = run_wrk(wrk, server, paths, args.cold_max, args.concurrency, stop_after=len(paths),
                               name="cold", db_name=args.db_in_use)
                colds[server.name].append(cold)
                tag = server.name + (f" r{rnd + 1}" if args.rounds > 1 else "")
                say(run_line(tag + " cold", cold, "tiles/s",
                             f"  {cold.requests} tiles in {cold.seconds:.1f} s ({notes[server.name]})"))
                cached = run_wrk(wrk, server, paths, args.duration, args.concurrency, name="cached",
                                 db_name=args.db_in_use)
                cacheds[server.name].append(cached)
                say(run_line(tag + " cached", cached, "tiles/s"))
        for server in ok:
            probe = probes[server.name]
            record(results, f"{label} cold", "tiles", server, median_run(colds[server.name]), cache=notes[server.name],
                   probe=probe["probe"], empty_zooms=probe["empty_zooms"])
            record(results, f"{label} cached", "tiles", server, median_run(cacheds[server.name]),
                   empty_zooms=probe["empty_zooms"])


# --- the report ---------------------------------------------------------------------------------------------
def report(results: dict) -> None:
    runs = results["runs"]
    if not runs:
        say("\nnothing was measured")
        return
    by_query: dict[str, dict[str, dict]] = {}
    for r in runs:
        by_query.setdefault(r["query"], {})[r["server"]] = r
    say("\n" + "=" * 110)
    header = (f"{'query':<38} {'server':<9} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'KB/resp':>8} "
              f"{'CDT/peer':>9}  notes")
    say(header)
    say("-" * len(header))
    last_kind = None
    for query, per in by_query.items():
        kind = next(iter(per.values()))["kind"]
        if last_kind and kind != last_kind:
            say("")
        last_kind = kind
        cdt = per.get("cdt")
        cdt_rps = cdt.get("rps") if cdt and "rps" in cdt else None
        for name in SERVERS:
            r = per.get(name)
            if r is None:
                continue
            if "rps" not in r:
                say(f"{query:<38} {name:<9} {'skipped':>9}  {r['skipped'][:90]}")
                continue
            ratio = "-" if name == "cdt" else (f"{cdt_rps / r['rps']:.2f}x" if cdt_rps and r["rps"] else "n/a")
            notes = []
            if r.get("mismatch"):
                notes.append("MISMATCH " + r["mismatch"])
            if r.get("errors"):
                notes.append(f"errors {r['errors']}")
            if len(r.get("rounds_rps") or []) > 1:
                notes.append("rounds " + "/".join(f"{v:.0f}" for v in r["rounds_rps"]))
            if r.get("empty_zooms"):
                notes.append("empty centre tile at z" + ",".join(str(z) for z in sorted(r["empty_zooms"])))
            if r.get("other_cpu_pct", 0) > 30:
                notes.append("NOISY")
            if r.get("partial"):
                notes.append(f"partial pass: {r['requests']} tiles")
            notes.append(f"cpu % server {r['server_cpu_pct']:.0f} db {r['db_cpu_pct']:.0f} wrk {r['wrk_cpu_pct']:.0f}"
                         f" other {r['other_cpu_pct']:.0f}")
            say(f"{query:<38} {name:<9} {r['rps']:9.1f} {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} "
                f"{r['kb_per_response']:8.1f} {ratio:>9}  {'; '.join(notes)}")
    say("\nCDT/peer = CDT req/s / that server's req/s. cpu %: share of one core during the run, used by the server's "
        "processes, the PostgreSQL backends of the benchmark database, wrk, and everything else on the machine.")
    probes = {k: v for k, v in results["checks"].items() if k.startswith("tiles ") and v.get("probe")}
    if probes:
        say("centre tile per zoom (features, KB; '-' = empty/204, '?' = not fetched or not decoded):")
        for key, check in probes.items():
            cells = []
            for z in ZOOMS:
                p = check["probe"].get(z) or check["probe"].get(str(z))
                if p is None:
                    cells.append(f"z{z} ?")
                elif p["status"] != 200 or not p["bytes"]:
                    cells.append(f"z{z} -" if p["status"] in (200, 204) else f"z{z} HTTP {p['status']}")
                else:
                    feats = p.get("features")
                    cells.append(f"z{z} {feats if feats is not None else '?'} ({p['bytes'] / 1024:.0f} KB)")
            say(f"  {key:<30} " + ", ".join(cells))
    if any(r.get("other_cpu_pct", 0) > 30 for r in runs):
        say("NOISY: other processes used more than 30% of a core during that run: its figures are less reliable.")
    targets(by_query, results)
    for note in results["notes"]:
        say(f"note: {note}")


def targets(by_query: dict[str, dict[str, dict]], results: dict) -> None:
    say("\ntargets:")
    verdicts = []
    for query, per in by_query.items():
        kind = next(iter(per.values()))["kind"]
        wanted = [("pygeoapi", 3.0), ("tipg", 1.2)] if kind == "features" else [("tipg", 1.0)]
        cdt = per.get("cdt", {})
        for peer, factor in wanted:
            other = per.get(peer, {})
            if "rps" not in cdt or "rps" not in other:
                missing = "cdt" if "rps" not in cdt else peer
                why = "skipped" if missing in per else "not in --servers"
                verdicts.append({"query": query, "peer": peer, "factor": factor, "result": "not measured"})
                say(f"  {query:<38} CDT >= {factor:g}x {peer:<8}  not measured ({missing} {why})")
                continue
            ratio = cdt["rps"] / other["rps"] if other["rps"] else float("inf")
            ok = ratio >= factor
            verdicts.append({"query": query, "peer": peer, "factor": factor, "ratio": ratio, "ok": ok})
            say(f"  {query:<38} CDT >= {factor:g}x {peer:<8}  {ratio:6.2f}x  {'PASS' if ok else 'FAIL'}")
    results["targets"] = verdicts
    measured = [v for v in verdicts if "ok" in v]
    say(f"  => {sum(v['ok'] for v in measured)} of {len(measured)} measured targets met"
        + (f"; {len(verdicts) - len(measured)} not measured" if len(verdicts) > len(measured) else ""))


if __name__ == "__main__":
    main()
