"""Benchmark: time to first map render and to first vector tiles of the map client, Vologda demo, cold and warm.

CDT is served as in production (gunicorn, `cdt serve`'s worker model) from the benchmark database (see
ogc_bench.py: CDT_DATABASE_URL, or `cdt_bench` in the embedded cluster), and Debian's Chromium opens
http://127.0.0.1:<port>/ headless through Playwright at 1280x800. Times are read from the page's own
performance marks (milliseconds since navigation start):

    cdt:ready                 /auth/me and /map/config answered, the overlays on at start drawn (facilities)
    cdt:first-basemap-tile    the first vector tile of the offline base map drawn
    cdt:basemap-loaded        every base-map tile of the first view drawn: the first complete map

Scenarios, each --rounds times (median reported):

    cold          CDT's tile cache emptied, a new browser profile (empty HTTP cache)
    server-warm   tile cache filled by the previous round, a new browser profile
    warm          the same browser profile reloads the page (HTTP cache, ETags: 304s)

Then the big layer, buildings (25,324 polygons) at zoom 15 over the centre: drawn from vector tiles (the
client's choice for layers above 2,000 features) against the same view drawn from GeoJSON (all features
fetched through the OGC API, 10,000 per page, and added as one L.geoJSON layer): the alternative the
client's design rejects, measured side by side.

    .venv/bin/python bench/map_bench.py [--rounds 5] [--db-name cdt_bench]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ogc_bench import clear_tile_cache, make_servers, prepare_database, say  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
MARKS = ("cdt:ready", "cdt:first-basemap-tile", "cdt:basemap-loaded")
CENTRE = (59.2205, 39.8915)


def marks(page) -> dict[str, float]:
    return page.evaluate("Object.fromEntries(performance.getEntriesByType('mark').map(m => [m.name, m.startTime]))")


def wait_for(page, expression: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(expression)
        page.wait_for_timeout(20)


def open_map(page, url: str) -> dict[str, float]:
    page.goto(url)
    wait_for(page, "performance.getEntriesByName('cdt:basemap-loaded').length > 0")
    return marks(page)


def buildings_tiles(page) -> float:
    """ms from switching the buildings layer on (zoom 15, centre) to all its tiles of the view drawn."""
    page.evaluate(f"cdt.map.setView([{CENTRE[0]}, {CENTRE[1]}], 15, {{animate: false}})")
    wait_for(page, "(() => { let done = true; cdt.map.eachLayer(l => { if (l.isLoading && l.isLoading()) "
                   "done = false; }); return done; })()")
    page.evaluate("performance.clearMarks('cdt:overlay-loaded:buildings'); window.__t0 = performance.now();"
                  "cdt.layers.setVisible('buildings', true)")
    wait_for(page, "performance.getEntriesByName('cdt:overlay-loaded:buildings').length > 0")
    return page.evaluate("performance.getEntriesByName('cdt:overlay-loaded:buildings')[0].startTime - window.__t0")


def buildings_geojson(page) -> tuple[float, int]:
    """ms to fetch every building as GeoJSON (10,000 per page) and draw them as one L.geoJSON layer."""
    return tuple(page.evaluate("""async () => {
        const t0 = performance.now();
        let features = [], url = '/collections/buildings/items?limit=10000&f=json';
        while (url) {
            const page = await (await fetch(url)).json();
            features = features.concat(page.features);
            const next = (page.links || []).find(l => l.rel === 'next');
            url = next ? next.href : null;
        }
        const layer = L.geoJSON({type: 'FeatureCollection', features}, {style: {weight: 0.5}}).addTo(cdt.map);
        await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
        const ms = performance.now() - t0;
        cdt.map.removeLayer(layer);
        return [ms, features.length];
    }"""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db-name", default="cdt_bench")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    db_url = prepare_database(args.db_name)
    server = make_servers(["cdt"], db_url, args.workers, {})[0]
    server.start()
    try:
        problem = server.wait_ready()
        if problem:
            sys.exit(f"CDT did not start: {problem}")
        url = server.base + "/"
        results: dict[str, list[dict[str, float]]] = {"cold": [], "server-warm": [], "warm": []}
        tiles_ms, geojson_ms, n_features = [], [], 0
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for i in range(args.rounds):
                say(f"round {i + 1}/{args.rounds}: {clear_tile_cache(db_url)}")
                ctx = browser.new_context(viewport={"width": 1280, "height": 800})
                page = ctx.new_page()
                results["cold"].append(open_map(page, url))
                results["warm"].append(open_map(page, url))  # same profile: the browser's cache
                ctx.close()
                ctx = browser.new_context(viewport={"width": 1280, "height": 800})
                page = ctx.new_page()
                results["server-warm"].append(open_map(page, url))
                tiles_ms.append(buildings_tiles(page))
                ms, n_features = buildings_geojson(page)
                geojson_ms.append(ms)
                ctx.close()
            browser.close()
    finally:
        server.stop()

    say()
    say(f"Map client, Vologda demo, 1280x800, {args.rounds} rounds, median ms since navigation start "
        f"(min-max):")
    say(f"{'scenario':<12} " + " ".join(f"{m.removeprefix('cdt:'):>24}" for m in MARKS))
    summary: dict[str, dict[str, float]] = {}
    for scenario, runs in results.items():
        cells = []
        for m in MARKS:
            values = [r[m] for r in runs if m in r]
            summary.setdefault(scenario, {})[m] = statistics.median(values)
            cells.append(f"{statistics.median(values):>8.0f} ({min(values):>5.0f}-{max(values):>5.0f})")
        say(f"{scenario:<12} " + " ".join(f"{c:>24}" for c in cells))
    t, g = statistics.median(tiles_ms), statistics.median(geojson_ms)
    say()
    say(f"Buildings at z15 (centre of Vologda): vector tiles {t:.0f} ms (median; {min(tiles_ms):.0f}-"
        f"{max(tiles_ms):.0f}), all {n_features:,} as GeoJSON {g:.0f} ms ({min(geojson_ms):.0f}-"
        f"{max(geojson_ms):.0f}); GeoJSON / tiles = {g / t:.1f}x")
    out = Path(__file__).parent / "results" / f"map_bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "runs": results, "buildings_tiles_ms": tiles_ms,
                               "buildings_geojson_ms": geojson_ms}, indent=1))
    say(f"results: {out}")


if __name__ == "__main__":
    main()
