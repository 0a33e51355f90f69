"""Map reports of the demo city: the page is standalone (no URL in any script or link tag), its numbers equal the
stored indicator values, the SQL sums of the deficits, the facility count and the balance's own figures, the
public tier says what it leaves out, the CLI and the API deliver it, and headless Chromium opens it cleanly."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from energy import co2
from energy import store as balance_store
from geoserver_app.app import create_app
from geoserver_app.cli import main
from geoserver_app.config import Config
from geoserver_app.reports import build_report, inline
from geoserver_app.reports.build import DEFAULT_INDICATORS, fmt
from layers.access import ANONYMOUS, Grant, Principal
from layers.db import transaction
from layers.errors import InvalidParameterValue, NotFound
from planning.indicators import catalog, service
from spatial import results
from tests.browser import ARTIFACTS
from tests.test_planning_api import indicator_values_restored

VOLOGDA, REGION, YEAR = "19701000", "19000000", 2026
FEDERAL = Principal("test-federal", None, (Grant("federal"),))


def scalar(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


@pytest.fixture(scope="module")
def prepared(engine, data_dir):
    """Result layers (left in place: recomputed deterministically), this year's indicator values (restored
    afterwards) and a balance filed under Vologda Oblast (the Moscow Oblast 2019 workbook; removed afterwards),
    so that the report of the city falls back to its region's balance."""
    if not scalar(engine, "SELECT count(*) FROM cdt.service_provision sp JOIN cdt.territories t "
                          "ON t.id = sp.territory_id WHERE t.oktmo = :o", o=VOLOGDA):
        results.refresh(engine, ANONYMOUS, VOLOGDA, "test")
    with indicator_values_restored(engine):
        with transaction(engine, "test") as conn:
            catalog.install(conn, "test")
        service.run(engine, VOLOGDA, YEAR, "test")
        loaded = balance_store.load_file(engine, data_dir / "feb" / "moscow-oblast" / "balance2019.xlsx", REGION,
                                         "test", name="Вологодская область (test)")
        try:
            yield loaded["balance_id"]
        finally:
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM cdt.fuel_balances WHERE id = :b"), {"b": loaded["balance_id"]})


@pytest.fixture(scope="module")
def page(engine, prepared) -> str:
    return build_report(engine, ANONYMOUS, VOLOGDA, YEAR)


def test_standalone(page):
    tags = re.findall(r"<(?:script|link)\b[^>]*>", page, flags=re.I)
    assert not [t for t in tags if re.search(r"https?://", t)], "a script or link tag loads from the network"
    assert inline.external_resources(page) == []
    assert "L.map(" in page and ".leaflet-control-layers" in page  # Leaflet's code and CSS are inlined
    assert "jquery" not in page.lower() and "bootstrap" not in page.lower()
    assert 100_000 < len(page.encode()) < 2_000_000
    with pytest.raises(inline.NotStandalone):
        inline.standalone('<html><script src="https://cdn.example.org/x.js"></script></html>')


def test_indicator_values_equal_the_stored_ones(engine, page):
    stored = {r.indicator_code: r.value for r in _rows(engine, """
        SELECT v.indicator_code, v.value FROM cdt.indicator_values v JOIN cdt.territories t ON t.id = v.territory_id
        WHERE t.oktmo = :o AND v.period = :p AND v.value_type = 'actual' AND v.scenario_id IS NULL
          AND v.indicator_code = ANY(:c)""", o=VOLOGDA, p=f"{YEAR}-01-01", c=list(DEFAULT_INDICATORS))}
    assert len(stored) >= 4
    shown = {c: (float(v), txt) for c, v, txt in re.findall(r'data-code="(\w+)" data-value="([^"]+)">([^<]*)<', page)}
    assert set(shown) == set(stored)
    for code, value in stored.items():
        assert shown[code][0] == pytest.approx(value)
        assert shown[code][1] == fmt(value, "ru")


def test_deficits_equal_the_sql_sums(engine, page):
    sums = {r.facility_type: r.deficit for r in _rows(engine, """
        SELECT facility_type, sum(deficit) AS deficit FROM cdt.service_provision sp
        JOIN cdt.territories t ON t.id = sp.territory_id WHERE t.oktmo = :o GROUP BY 1""", o=VOLOGDA)}
    assert sums
    shown = {k: (float(v), txt) for k, v, txt in re.findall(r'data-type="(\w+)" data-deficit="([^"]+)">([^<]*)<', page)}
    assert set(shown) == set(sums)
    for kind, deficit in sums.items():
        assert shown[kind][0] == pytest.approx(deficit)
        assert shown[kind][1] == fmt(deficit, "ru", 0)


def test_facilities_count(engine, page):
    count = scalar(engine, "SELECT count(*) FROM cdt.facilities f JOIN cdt.territories t ON t.id = f.territory_id "
                           "WHERE t.oktmo = :o", o=VOLOGDA)
    assert count > 0
    assert re.search(rf'id="facilities-total">{count}<', page)
    for kind, n in _rows(engine, "SELECT type_code, count(*) FROM cdt.facilities f JOIN cdt.territories t "
                                 "ON t.id = f.territory_id WHERE t.oktmo = :o GROUP BY 1", o=VOLOGDA):
        assert f'data-type="{kind}">{n}<' in page


def test_balance_of_the_region(engine, page, prepared):
    table = balance_store.load_balance(engine, prepared)
    assert "Вологодская область (test)" in page and "у территории своего нет" in page
    assert f'id="balance-co2">{fmt(co2.total_co2_t(table), "ru", 0)}<' in page
    assert f'id="balance-primary">{fmt(float(table.at["primary_consumption", "total"]), "ru", 1)}<' in page
    assert f'id="balance-final">{fmt(float(table.at["final_consumption", "total"]), "ru", 1)}<' in page


def test_public_tier_names_what_it_leaves_out(engine, page, prepared):
    assert 'id="not-shown"' in page and "Линии инженерных сетей" in page
    federal = build_report(engine, FEDERAL, VOLOGDA, YEAR, lang="en")
    assert 'id="not-shown"' not in federal and "Territory report: г Вологда" in federal
    assert "Primary energy consumption" in federal and "the region" in federal


def test_bad_input(engine, prepared):
    with pytest.raises(NotFound):
        build_report(engine, ANONYMOUS, "19701999")
    with pytest.raises(InvalidParameterValue):
        build_report(engine, ANONYMOUS, VOLOGDA, indicators=["no_such_indicator"])
    with pytest.raises(InvalidParameterValue):
        build_report(engine, ANONYMOUS, VOLOGDA, lang="de")


def test_cli_writes_the_file(db_url, prepared, tmp_path):
    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", "--territory", VOLOGDA, "--year", str(YEAR), "--lang", "en",
                                       "--out", str(out)], env={"CDT_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    assert str(out) in result.output and "KiB" in result.output
    assert "Key indicators" in out.read_text(encoding="utf-8")
    bad = CliRunner().invoke(main, ["report", "--territory", "19701999", "--out", str(tmp_path / "x.html")],
                             env={"CDT_DATABASE_URL": db_url})
    assert bad.exit_code == 2 and "no territory" in bad.output and not (tmp_path / "x.html").exists()


def test_api(db_url, prepared):
    client = create_app(Config(), database_url=db_url).test_client()
    resp = client.get(f"/reports/{VOLOGDA}.html?year={YEAR}&lang=en")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert "Content-Disposition" not in resp.headers
    assert "Not shown (restricted)" in resp.get_data(as_text=True)
    download = client.get(f"/reports/{VOLOGDA}.html?download=1")
    assert download.headers["Content-Disposition"] == f'attachment; filename="report-{VOLOGDA}-ru.html"'
    for url, status, code in (("/reports/19701999.html", 404, "NotFound"), ("/reports/abc.html", 404, "NotFound"),
                              (f"/reports/{VOLOGDA}.html?lang=de", 400, "InvalidParameterValue"),
                              (f"/reports/{VOLOGDA}.html?year=20x6", 400, "InvalidParameterValue"),
                              (f"/reports/{VOLOGDA}.html?colour=red", 400, "InvalidParameterValue")):
        resp = client.get(url)
        assert resp.status_code == status and resp.get_json()["code"] == code, url
    assert "/reports/{oktmo}.html" in client.get("/api").get_json()["paths"]


def test_opens_in_headless_chromium(browser, engine, page, tmp_path):
    facilities = scalar(engine, "SELECT count(*) FROM cdt.facilities f JOIN cdt.territories t "
                                "ON t.id = f.territory_id WHERE t.oktmo = :o", o=VOLOGDA)
    hexes = scalar(engine, "SELECT count(*) FROM cdt.service_provision sp JOIN cdt.territories t "
                           "ON t.id = sp.territory_id WHERE t.oktmo = :o AND facility_type = 'kindergarten'", o=VOLOGDA)
    kinds = _rows(engine, "SELECT DISTINCT facility_type FROM cdt.service_provision sp JOIN cdt.territories t "
                          "ON t.id = sp.territory_id WHERE t.oktmo = :o", o=VOLOGDA)
    types = _rows(engine, "SELECT DISTINCT type_code FROM cdt.facilities f JOIN cdt.territories t "
                          "ON t.id = f.territory_id WHERE t.oktmo = :o", o=VOLOGDA)
    indicators = len(re.findall(r'data-code="', page))
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")
    context = browser.new_context(locale="ru-RU", viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    tab.on("request", lambda r: errors.append(f"network: {r.url}") if not r.url.startswith(("file:", "data:"))
           else None)
    try:
        tab.goto(path.as_uri())
        tab.wait_for_selector(".leaflet-control-layers-overlays label")
        shapes = tab.evaluate("document.querySelectorAll('path.leaflet-interactive').length")
        # Shown at first: the first choropleth (the city itself: no child territories), a circle per facility and
        # the boundary; the other choropleths and the deficits are listed, switched off.
        assert shapes == 1 + facilities + 1
        overlays = tab.evaluate("[...document.querySelectorAll('.leaflet-control-layers-overlays label')]"
                                ".map(l => l.textContent.trim())")
        assert len(overlays) == indicators + len(kinds) + len(types) + 1
        assert any(o.startswith("Плотность населения") for o in overlays)
        assert any(o.startswith("Дефицит: Детский сад") for o in overlays)
        assert any(o.startswith("Детский сад (") for o in overlays) and "Граница" in overlays
        # Switching a deficit overlay on draws its hexagons.
        tab.locator(".leaflet-control-layers-overlays label", has_text="Дефицит: Детский сад").click()
        assert tab.evaluate("document.querySelectorAll('path.leaflet-interactive').length") == shapes + hexes
        tab.screenshot(path=str(ARTIFACTS / "report-01-vologda.png"), full_page=True)
        assert errors == []
    finally:
        context.close()


def _rows(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def test_names_are_escaped():
    from geoserver_app.reports.build import _geojson

    fc = _geojson([{"geometry": '{"type": "Point", "coordinates": [39.9, 59.2]}', "name": "<img src=x onerror=1>"}])
    assert fc["features"][0]["properties"]["name"] == "&lt;img src=x onerror=1&gt;"


def test_optional_base_map(engine, prepared):
    tiles = "https://tile.example.org/{z}/{x}/{y}.png"
    page = build_report(engine, ANONYMOUS, VOLOGDA, YEAR, tiles_url=tiles, tiles_attribution="© example")
    assert tiles in page and "L.tileLayer" in page
    assert "L.tileLayer" not in build_report(engine, ANONYMOUS, VOLOGDA, YEAR)
