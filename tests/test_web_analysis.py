"""The map's Analysis tab in headless Chromium: Neighbourhood, Needs and Siting panels, each checked against the
same process run through the OGC API Processes endpoint."""

from __future__ import annotations

import re

import requests
from sqlalchemy import text

from tests.conftest import bearer, scalar


def number(text_: str) -> float:
    return float(re.sub(r"[^\d.]", "", text_.replace(",", "")))


def execute(base_url: str, process: str, inputs: dict, token: str | None = None) -> dict:
    resp = requests.post(f"{base_url}/processes/{process}/execution", json={"inputs": inputs, "response": "document"},
                         headers=bearer(token) if token else {}, timeout=120)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_neighbourhood_panel_shows_times_and_score(make_page, engine, base_url):
    # a residential building in the centre, clicked on the map
    lat, lon = engine.connect().execute(text("""
        SELECT ST_Y(p), ST_X(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM cdt.buildings
        WHERE residents > 100 ORDER BY geom <-> ST_SetSRID(ST_MakePoint(39.8915, 59.2205), 4326) LIMIT 1) s""")).one()
    page = make_page().open()
    page.page.click("#tab-analysis")
    page.page.click("#an-pick")
    page.view(lat, lon, 17)
    page.page.mouse.click(*page.map_point(lat, lon))
    table = page.page.locator("#an-nb-table")
    table.wait_for(timeout=20000)
    # the same point through the API: the panel shows what the process computed
    clicked = page.js("([lat, lon]) => cdt.map.containerPointToLatLng(cdt.map.latLngToContainerPoint([lat, lon]))",
                      [lat, lon])
    expected = execute(base_url, "neighbourhood", {"lon": clicked["lng"], "lat": clicked["lat"]})
    school = expected["services"]["school"]
    shown = table.locator('tr[data-kind="school"] td').first.inner_text()
    assert abs(number(shown) - school["seconds"] / 60) < 0.051
    assert abs(number(page.page.locator("#an-score").inner_text()) - expected["score"]) < 0.1
    assert "city median" in page.page.locator("#an-nb-result").inner_text()
    page.shot("neighbourhood")
    assert page.errors == []


def test_needs_panel_draws_deficits_and_loads(make_page, base_url):
    page = make_page().open()
    page.page.click("#tab-analysis")
    page.page.select_option("#an-needs-type", "kindergarten")
    page.page.click("#an-needs-run")
    summary = page.page.locator("#an-needs-summary")
    summary.wait_for(timeout=30000)
    expected = execute(base_url, "service-needs", {"facility_type": "kindergarten", "territory": "19701000"})
    assert number(summary.locator('tr[data-key="deficit"] td').inner_text()) == round(expected["summary"]["deficit"])
    hexagons = sum(1 for f in expected["districts"]["features"])
    drawn = page.js("(() => { let n = 0; cdt.analysis.overlay.eachLayer(l => { if (l.getLayers) n += "
                    "l.getLayers().length; }); return n; })()")
    assert drawn == hexagons > 10, "one polygon per hexagonal district"
    page.view(59.2205, 39.8915, 13)
    page.shot("needs")
    assert page.errors == []


def test_siting_panel_proposes_sites_for_a_signed_in_planner(make_page, engine):
    page = make_page().open()
    page.page.click("#tab-analysis")
    assert "Sign in to run siting" in page.page.locator("#pane-analysis").inner_text()
    page.login("vologda_city")
    page.page.click("#tab-analysis")
    page.page.select_option("#an-site-type", "school")
    page.page.select_option("#an-site-model", "mclp")
    page.page.fill("#an-site-k", "2")
    page.page.fill("#an-site-scenario", "Two schools, test")
    page.page.click("#an-site-run")
    report = page.page.locator("#an-siting-report")
    report.wait_for(timeout=120000)
    assert report.locator('td[data-key="status"]').inner_text() == "Optimal"
    assert report.locator('td[data-key="sites"]').inner_text() == "2"
    rows = {r.locator("th").inner_text(): r.locator("td").inner_text() for r in report.locator("tr").all()}
    assert number(rows["Covered after"]) >= number(rows["Covered before"])
    assert page.page.locator(".leaflet-marker-icon").count() == 2
    assert page.page.locator('[data-key="scenario"]').inner_text() == "Two schools, test"
    page.shot("siting")
    # the proposals are a scenario kept with the job: listed, and shown again from there
    saved = page.page.locator("#an-scenarios button", has_text="Two schools, test")
    saved.wait_for(timeout=10000)
    page.js("cdt.analysis.overlay.clearLayers()")
    assert page.page.locator(".leaflet-marker-icon").count() == 0
    saved.click()
    assert page.page.locator(".leaflet-marker-icon").count() == 2
    assert scalar(engine, "SELECT count(*) FROM cdt.planned_facilities WHERE name LIKE 'Two schools%'") == 0
    page.shot("scenario-again")
    assert page.errors == []
