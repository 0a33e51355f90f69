"""The map's Plan tab in headless Chromium: searching an indicator, its choropleth over the territories with a
legend, and its series chart for the territory."""

from __future__ import annotations

import pytest

from layers.db import transaction
from planning.indicators import catalog, service
from tests.test_planning_api import indicator_values_restored


@pytest.fixture(scope="module")
def computed(engine):
    with indicator_values_restored(engine):
        with transaction(engine, "test") as c:
            catalog.install(c, "test")
        service.run(engine, "19701000", 2026, "test")
        yield


def test_plan_tab_maps_and_charts_an_indicator(make_page, computed):
    page = make_page().open()
    page.page.click("#tab-plan")
    page.page.locator("#plan-indicator option").first.wait_for(state="attached", timeout=20000)
    page.page.fill("#plan-q", "kindergarten_capacity_per")
    page.wait_js("document.querySelectorAll('#plan-indicator option').length === 1")
    page.page.select_option("#plan-indicator", "fac_kindergarten_capacity_per_1000")
    page.wait_js("cdt.plan.mapLayer && cdt.plan.mapLayer.getLayers().length >= 1")
    legend = page.page.locator("#plan-legend")
    assert legend.locator("li").count() in (1, 5)  # one class when every territory has the same value
    assert "2026" in legend.inner_text()
    page.wait_js("Chart.getChart(document.getElementById('plan-chart')) !== undefined")
    data = page.js("Chart.getChart(document.getElementById('plan-chart')).data.datasets[0].data")
    assert any(v is not None for v in data)
    assert "79" in page.js("cdt.plan.mapLayer.getLayers().map(l => l.getTooltip().getContent()).join(' ')")
    page.shot("plan")
    assert page.errors == []


def test_plan_tab_goal_tree_and_scenario_compare(make_page, computed, base_url, engine, tokens):
    import requests
    from sqlalchemy import text

    from tests.conftest import bearer

    city = bearer(tokens["t_city_vologda"])
    try:
        pid = requests.post(f"{base_url}/programs", json={"code": "test-web-prog", "name": "Web program",
                                                          "territory": "19701000"}, headers=city, timeout=10)
        pid = pid.json()["id"]
        goal = requests.post(f"{base_url}/goals", json={
            "title": "Test goal web", "territory": "19701000", "program_id": pid, "target_value": 100,
            "indicator": "fac_kindergarten_capacity_per_1000", "target_year": 2030, "baseline_year": 2026},
            headers=city, timeout=10)
        assert goal.status_code == 201, goal.text
        sid = requests.post(f"{base_url}/scenarios", json={"name": "Test web scenario", "territory": "19701000",
                                                           "parameters": {"capacity_factor:kindergarten": 1.5}},
                            headers=city, timeout=10).json()["id"]
        page = make_page().open()
        page.page.click("#tab-plan")
        page.page.locator(f'#plan-program option[value="{pid}"]').wait_for(state="attached", timeout=20000)
        page.page.select_option("#plan-program", str(pid))
        page.page.locator("#plan-goals li[data-goal]").first.wait_for(timeout=10000)
        assert "%" in page.page.locator("#plan-goals").inner_text()
        page.page.select_option("#plan-scenario", str(sid))
        page.page.fill("#plan-codes", "fac_kindergarten_capacity,fac_kindergarten_capacity_per_1000")
        page.page.click("#plan-compare")
        row = page.page.locator('#plan-compare-table tr[data-code="fac_kindergarten_capacity_per_1000"]')
        row.wait_for(timeout=30000)
        assert "better" in row.get_attribute("class")
        page.page.click("#plan-diffmap")
        page.wait_js("document.getElementById('plan-legend').textContent.includes('difference map')", timeout=30)
        form = page.page.locator("#plan-seek")
        form.locator('input[name="target"]').fill("100")
        form.locator("button").click()
        page.page.locator("#plan-seek-result p").wait_for(timeout=60000)
        page.shot("plan-scenario")
        assert page.errors == []
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM cdt.scenarios WHERE name = 'Test web scenario'"))
            conn.execute(text("DELETE FROM cdt.programs WHERE code = 'test-web-prog'"))
