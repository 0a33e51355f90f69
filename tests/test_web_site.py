"""The map's Site tab in headless Chromium: click a point in Vologda, see its investment-appeal score with a bar per
component, checked against the same `site-appeal` process run through the OGC API; editing a weight re-runs it."""

from __future__ import annotations

import re

import requests


def number(text_: str) -> float:
    return float(re.sub(r"[^\d.]", "", text_.replace(",", "")))


def execute(base_url: str, process: str, inputs: dict) -> dict:
    resp = requests.post(f"{base_url}/processes/{process}/execution", json={"inputs": inputs, "response": "document"},
                         timeout=120)
    assert resp.status_code == 200, resp.text
    return resp.json()


VOLOGDA = (59.2205, 39.8915)  # lat, lon: a street corner in the centre


def test_site_panel_scores_a_clicked_point(make_page, base_url):
    lat, lon = VOLOGDA
    page = make_page().open()
    page.page.click("#tab-site")
    page.page.click("#site-pick")
    assert page.page.locator("#site-pick").get_attribute("aria-pressed") == "true"
    page.view(lat, lon, 16)
    page.page.mouse.click(*page.map_point(lat, lon))
    page.wait_js("document.querySelector('#site-score') !== null", timeout=30)
    # the same point through the API: the panel shows what the process computed
    clicked = page.js("([lat, lon]) => cdt.map.containerPointToLatLng(cdt.map.latLngToContainerPoint([lat, lon]))",
                      [lat, lon])
    expected = execute(base_url, "site-appeal", {"lon": clicked["lng"], "lat": clicked["lat"]})
    assert abs(number(page.page.locator("#site-score").inner_text()) - expected["score"]) < 0.051
    bars = page.page.locator(".site-component meter")
    assert bars.count() == 4, "a bar per component"
    access = page.page.locator('.site-component[data-key="accessibility"]')
    want = next(c for c in expected["components"] if c["key"] == "accessibility")
    assert access.get_attribute("data-status") == "ok"
    assert abs(float(access.locator("meter").get_attribute("value")) - want["score"]) < 0.051
    assert access.locator('[data-factor="railway_m"]').count() == 1
    assert "weight 30%" in access.locator(".site-weight").inner_text()
    unknown = page.page.locator('.site-component[data-status="unknown"]')
    assert unknown.count() == len(expected["unknown"]) and "unknown" in unknown.first.inner_text()
    assert "renormalised" in page.page.locator("#site-result").inner_text()
    assert page.page.locator("#site-pick").get_attribute("aria-pressed") == "false"
    page.shot("scored")
    # a new weight re-runs the score: the weights echoed change (the score stays: only accessibility is known here)
    page.page.fill("#site-w-accessibility", "0.6")
    page.page.locator("#site-w-accessibility").dispatch_event("change")
    page.wait_js("document.querySelector('.site-component[data-key=\"accessibility\"] .site-weight')"
                 "?.textContent.includes('46%')", timeout=30)
    assert abs(number(page.page.locator("#site-score").inner_text()) - expected["score"]) < 0.051
    # a refused weight is said before anything is sent
    page.page.fill("#site-w-land", "-1")
    page.page.locator("#site-w-land").dispatch_event("change")
    page.wait_js("document.querySelector('#site-result .message.error') !== null")
    page.shot("bad-weight")
    assert page.errors == []
