"""Benchmark: the full Vologda demo load (time and peak memory), against a naive peer.

Each repetition loads into a fresh database in a child process, so peak RSS is that load's own.
The peer is what a script would do without CDT: geopandas `to_postgis` of the buildings alone
(no validation, no natural keys, no history, no network noding).

    .venv/bin/python bench/load_vologda.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, sys, time
from sqlalchemy import create_engine
url, what = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
if what == "cdt":
    from layers.db import engine_for
    from layers.ingest.demo import load_demo
    load_demo(engine_for(url), __import__("pathlib").Path(sys.argv[3]), actor="bench", echo=lambda m: None)
elif what == "cdt_buildings":
    from layers.db import engine_for
    from layers.ingest.demo import BUILDING_FIELDS
    from layers.ingest.service import load_file
    load_file(engine_for(url), sys.argv[3] + "/vologda/buildings.parquet", "buildings", actor="bench",
              mapping=BUILDING_FIELDS)
else:
    import geopandas as gpd
    gdf = gpd.read_parquet(sys.argv[3] + "/vologda/buildings.parquet").to_crs(4326)
    gdf.to_postgis("peer_buildings", create_engine(url), schema="public", index=True)
elapsed = time.perf_counter() - t0
print(json.dumps({"seconds": elapsed, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(url: str, what: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, url, what, str(ROOT / "data")], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from geoserver_app.config import Config
    from geoserver_app.embedded_pg import EmbeddedCluster, drop_database, ensure_database
    from layers.db import migrate

    cluster = EmbeddedCluster(Config.from_env())
    server = cluster.start().rsplit("/", 1)[0] + "/postgres"
    results: dict[str, list[dict]] = {"cdt": [], "cdt_buildings": [], "peer": []}
    for _ in range(args.repeat):
        for what in results:
            name = f"cdt_bench_{uuid.uuid4().hex[:8]}"
            ensure_database(server, name)
            url = server.rsplit("/", 1)[0] + "/" + name
            try:
                t0 = time.perf_counter()
                migrate(url)
                migrate_s = time.perf_counter() - t0
                res = run(url, what)
                res["migrate_s"] = migrate_s
                results[what].append(res)
            finally:
                drop_database(server, name)
    labels = {"cdt": "CDT full demo (all layers, 2 KPT sets, noding)", "cdt_buildings": "CDT buildings only",
              "peer": "peer: geopandas.to_postgis, buildings only"}
    median = {k: statistics.median(r["seconds"] for r in v) for k, v in results.items()}
    print(f"Vologda load, median of {args.repeat} runs (fresh database each; migrations not included)")
    print(f"{'what':<50} {'seconds':>8} {'peak MB':>8}")
    for key, label in labels.items():
        peak = statistics.median(r["peak_mb"] for r in results[key])
        print(f"{label:<50} {median[key]:8.2f} {peak:8.0f}")
    print(f"ratio CDT buildings / peer: {median['cdt_buildings'] / median['peer']:.2f} "
          "(CDT also validates, keys, links territories and writes history)")


if __name__ == "__main__":
    main()
