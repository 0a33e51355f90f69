"""The map's Energy tab in headless Chromium: the Moscow Oblast balance as a table, its Sankey diagram, the
checks that fail, CO2 and the XLSX link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from energy.store import load_file

FEB = Path(__file__).resolve().parents[1] / "data" / "feb" / "moscow-oblast"


@pytest.fixture(scope="module")
def loaded(engine):
    for year in (2019, 2020):
        load_file(engine, FEB / f"balance{year}.xlsx", "46000000", "test:feb", name="Московская область")


def test_energy_tab_shows_the_balance(make_page, loaded, base_url, engine):
    import requests

    page = make_page().open()
    page.page.click("#tab-energy")
    table = page.page.locator("#en-table")
    table.locator("tbody tr").first.wait_for(timeout=20000)
    balances = requests.get(f"{base_url}/energy/balances", timeout=10).json()["balances"]
    chosen = page.page.locator("#en-balance").input_value()
    expected = requests.get(f"{base_url}/energy/balances/{chosen}", timeout=10).json()["values"]
    shown = table.locator('tr[data-row="inflow"] td[data-col="natural_gas"]').inner_text()
    # shown to 0.1 thousand tce
    assert float(re.sub(r"[^\d.\-]", "", shown)) == pytest.approx(expected["inflow"]["natural_gas"], abs=0.051)
    assert len(balances) >= 2
    # the Sankey chart is drawn from the flows; the checks list the real defects
    assert page.js("Chart.getChart(document.getElementById('en-sankey')).data.datasets[0].data.length") > 20
    assert page.page.locator("#en-checks li").count() > 0
    assert "total_t" in page.page.locator("#en-co2").inner_text()
    href = page.page.locator("#en-xlsx").get_attribute("href")
    assert requests.get(base_url + href, timeout=10).headers["Content-Type"].startswith(
        "application/vnd.openxmlformats")
    page.shot("energy")
    # the per-capita choropleth: no territory of the Moscow Oblast balances has a boundary here, so it says so;
    # a fixture balance for Vologda (the real one scaled by population) is drawn on its boundary
    page.page.click("#en-map")
    if not requests.get(f"{base_url}/energy/territories", timeout=10).json()["features"]:
        page.wait_js("document.getElementById('en-map-note').textContent.includes('No territory')")
        from tests.test_energy_processes import save_scaled

        save_scaled(engine, 301642 / 7_700_000, "19701000", "г Вологда")
        page.page.click("#en-map")
    page.wait_js("cdt.energy.mapLayer && cdt.energy.mapLayer.getLayers().length === 1")
    assert "tce per resident" in page.js("cdt.energy.mapLayer.getLayers()[0].getTooltip().getContent()")
    page.shot("energy-map")
    assert page.errors == []
