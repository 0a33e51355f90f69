"""The map client in real headless Chromium (Debian's `chromium`, driven by Playwright), against a live CDT.

Each step leaves a screenshot in tests/artifacts/web/ (CDT_TEST_ARTIFACTS to put them elsewhere).
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
import requests
from sqlalchemy import text

from tests.browser import Page
from tests.conftest import bearer, scalar

FZ = "functional_zones"

@pytest.fixture(scope="module")
def vologda_spot(engine) -> tuple[float, float]:
    """An empty spot inside Vologda with no functional zone yet, for drawing: lat, lon."""
    row = engine.connect().execute(text(
        "SELECT ST_Y(p), ST_X(p) FROM (SELECT ST_PointOnSurface(boundary) AS p FROM cdt.territories "
        "WHERE oktmo = '19701000') s")).one()
    return float(row[0]), float(row[1])


def test_map_loads_with_no_console_errors(make_page):
    page = make_page().open()
    page.wait_js("performance.getEntriesByName('cdt:basemap-loaded').length > 0", timeout=20)
    assert page.page.locator(".leaflet-tile-container canvas, .leaflet-tile-container .leaflet-tile").count() > 0
    # facilities are on at start: one circle per facility of the view
    assert page.page.locator(".leaflet-cdt-points-pane path").count() > 50
    assert page.page.locator("#user-box").inner_text().startswith("Public access")
    assert page.js("cdt.map.getBounds().contains([59.22, 39.88])"), "the map opens over Vologda"
    page.shot("map")
    assert page.errors == []


def test_layers_toggle(make_page):
    page = make_page().open()
    points = page.page.locator(".leaflet-cdt-points-pane path")
    assert points.count() > 50
    page.page.uncheck("#layer-facilities")
    assert points.count() == 0
    page.shot("facilities-off")
    page.page.check("#layer-facilities")
    page.wait_js("document.querySelectorAll('.leaflet-cdt-points-pane path').length > 50")
    # a vector-tile layer: buildings, coloured by floors, from zoom 13
    page.view(59.2205, 39.8915, 15)
    page.page.check("#layer-buildings")
    page.wait_js("performance.getEntriesByName('cdt:first-overlay-tile').length > 0", timeout=20)
    assert page.page.locator(".leaflet-cdt-tiles-pane canvas").count() > 0
    page.shot("buildings-on")
    page.page.uncheck("#layer-buildings")
    assert page.page.locator(".leaflet-cdt-tiles-pane canvas").count() == 0
    assert page.errors == []


def test_popup_shows_a_buildings_residents(make_page, engine):
    # the most populous residential building with no facility nearby (a click there hits the building)
    fid, residents, lat, lon = engine.connect().execute(text("""
        SELECT b.id, b.residents, ST_Y(ST_PointOnSurface(b.geom)), ST_X(ST_PointOnSurface(b.geom))
        FROM cdt.buildings b WHERE b.residents > 0 AND ST_Area(b.geom::geography) > 800
          AND NOT EXISTS (SELECT 1 FROM cdt.facilities f WHERE ST_DWithin(f.geom::geography, b.geom::geography, 60))
        ORDER BY b.residents DESC LIMIT 1""")).one()
    page = make_page().open()
    page.page.check("#layer-buildings")
    page.view(lat, lon, 18)
    page.wait_js("performance.getEntriesByName('cdt:first-overlay-tile').length > 0", timeout=20)
    page.page.wait_for_timeout(500)
    page.page.mouse.click(*page.map_point(lat, lon))
    popup = page.page.locator(f'.popup[data-collection="buildings"][data-id="{fid}"]')
    popup.wait_for(timeout=10000)
    shown = popup.locator('tr[data-prop="residents"] td').inner_text()
    assert int(re.sub(r"\D", "", shown)) == residents
    assert "Residents" in popup.inner_text()
    page.shot("building-popup")
    assert page.errors == []


def test_search_finds_a_school(make_page, engine):
    name = scalar(engine, "SELECT name FROM cdt.facilities WHERE type_code = 'school' AND name IS NOT NULL "
                          "AND length(name) > 6 ORDER BY id LIMIT 1")
    page = make_page().open()
    page.page.fill("#search-input", name[1:-1])
    option = page.page.locator("#search-results li", has_text=name).first
    option.wait_for(timeout=10000)
    page.shot("results")
    option.click()
    popup = page.page.locator('.popup[data-collection="facilities"]')
    popup.wait_for(timeout=10000)
    assert name in popup.inner_text()
    page.shot("school-popup")
    assert page.errors == []


def start_editing(page: Page, lat: float, lon: float, zoom: int = 16) -> None:
    # facilities are drawn above the zones: a click meant for a zone could land on a school's circle
    page.js("cdt.layers.setVisible('facilities', false)")
    page.page.click("#tab-edit")
    page.page.select_option("#edit-layer", FZ)
    page.view(lat, lon, zoom)
    page.page.click("#edit-start")
    page.page.wait_for_selector(".leaflet-pm-toolbar")
    page.page.wait_for_selector("#edit-pending:has-text('No unsaved changes')")


def draw_square(page: Page, lat: float, lon: float, half_px: int = 60) -> None:
    x, y = page.map_point(lat, lon)
    page.page.click(".leaflet-pm-icon-polygon")
    corners = [(x - half_px, y - half_px), (x + half_px, y - half_px), (x + half_px, y + half_px),
               (x - half_px, y + half_px)]
    for cx, cy in corners:
        page.page.mouse.click(cx, cy)
        page.page.wait_for_timeout(80)
    # Leaflet-Geoman's Finish action closes the ring (snapping may have moved the first vertex off the cursor)
    page.page.click(".leaflet-pm-actions-container .action-finish:visible")
    page.page.wait_for_selector("#feature-form")


def test_planner_draws_a_zone_saves_it_and_finds_it_after_reload(make_page, engine, vologda_spot):
    lat, lon = vologda_spot
    name = f"Park {uuid.uuid4().hex[:8]}"
    page = make_page().open()
    page.login("vologda_city")
    assert "municipal" in page.page.locator("#user-box").inner_text()
    assert "г Вологда" in page.page.locator("#user-box").inner_text()
    page.shot("signed-in")
    start_editing(page, lat, lon)
    draw_square(page, lat, lon)
    page.shot("drawn")
    # the form comes from the collection's schema: status is a choice with its default, zone type suggested
    assert page.page.locator("#f-status").input_value() == "existing"
    assert page.page.locator("#f-zone_type-list option").count() >= 10
    page.page.fill("#f-max_floors", "500")
    page.page.locator("#f-max_floors").blur()
    assert page.page.locator("#f-max_floors-error").inner_text() == "Must be at most 200"
    page.page.click("#edit-save")
    assert "Fix the highlighted fields" in page.page.locator("#edit-message").inner_text()
    assert page.page.locator("#f-max_floors").input_value() == "500", "the refused value stays to be fixed"
    page.page.fill("#f-max_floors", "3")
    page.page.click("#edit-save")
    assert "Fix the highlighted fields" in page.page.locator("#edit-message").inner_text()
    assert page.page.locator("#f-zone_type-error").inner_text() == "Required"
    page.shot("form-errors")
    page.page.fill("#f-zone_type", "recreation")
    page.page.fill("#f-name", name)
    page.page.select_option("#f-status", "planned")
    page.shot("form-filled")
    page.page.click("#edit-save")
    page.page.wait_for_selector("#edit-message .message.ok", timeout=15000)
    row = engine.connect().execute(text(
        "SELECT id, zone_type, status, max_floors, created_by, ST_Contains(geom, ST_SetSRID(ST_MakePoint(:x, :y), "
        "4326)) AS covers FROM cdt.functional_zones WHERE name = :n"), {"n": name, "x": lon, "y": lat}).one()
    assert (row.zone_type, row.status, row.max_floors, row.created_by, row.covers) == (
        "recreation", "planned", 3, "user:vologda_city", True)
    page.shot("saved")

    page.page.reload()
    page.page.wait_for_selector("body[data-ready=true]", state="attached")
    assert page.page.locator("#logout-btn").count() == 1, "still signed in after a reload"
    page.view(lat, lon, 16)
    page.wait_js(f"(cdt.layers.entries.get('{FZ}').layer?.cdtData?.features || [])"
                 f".some(f => f.properties.name === {json.dumps(name)})")
    page.page.mouse.click(*page.map_point(lat, lon))
    popup = page.page.locator(f'.popup[data-collection="{FZ}"][data-id="{row.id}"]')
    popup.wait_for(timeout=10000)
    assert name in popup.inner_text() and "Recreation" in popup.inner_text()
    assert not page.page.locator("#balance").is_hidden(), "the territory balance chart shows the zones"
    page.shot("found-after-reload")
    assert page.errors == []


def create_zone(base_url: str, token: str, lat: float, lon: float, name: str) -> int:
    d = 0.0008
    ring = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d], [lon - d, lat - d]]
    resp = requests.post(f"{base_url}/collections/{FZ}/items", headers={**bearer(token), "Content-Type":
                         "application/geo+json"}, data=json.dumps({"type": "Feature", "properties": {
                             "zone_type": "business", "name": name}, "geometry": {"type": "Polygon", "coordinates":
                                                                                  [ring]}}), timeout=10)
    assert resp.status_code == 201, resp.text
    return int(resp.headers["Location"].rsplit("/", 1)[1])


def patch_zone(base_url: str, token: str, fid: int, **props) -> None:
    url = f"{base_url}/collections/{FZ}/items/{fid}"
    tag = requests.get(url, timeout=10).headers["ETag"]
    resp = requests.patch(url, data=json.dumps({"properties": props}), timeout=10, headers={
        **bearer(token), "Content-Type": "application/merge-patch+json", "If-Match": tag})
    assert resp.status_code == 200, resp.text


def test_stale_version_shows_the_conflict_dialog(make_page, engine, tokens, base_url, vologda_spot):
    lat, lon = vologda_spot[0] + 0.01, vologda_spot[1] + 0.01
    fid = create_zone(base_url, tokens["t_federal"], lat, lon, "as loaded")
    page = make_page().open()
    page.login("vologda_city")
    start_editing(page, lat, lon, 17)
    page.wait_js(f"[...cdt.editor.items.values()].some(i => i.id === {fid})")
    page.page.mouse.click(*page.map_point(lat, lon))  # select it
    page.page.fill("#f-name", "planner's name")
    page.page.locator("#f-name").press("Enter")
    # meanwhile somebody else changes it
    patch_zone(base_url, tokens["t_federal"], fid, name="colleague's name", max_floors=5)
    page.page.click("#edit-save")
    dialog = page.page.locator("dialog[open]")
    dialog.wait_for(timeout=10000)
    assert "Somebody changed this feature" in dialog.inner_text()
    name_row = dialog.locator('tr[data-field="name"]')
    assert "changed" in name_row.get_attribute("class")
    assert [c.strip() for c in name_row.locator("td").all_inner_texts()][1:] == [
        "as loaded", "colleague's name", "planner's name"]
    assert "changed" in dialog.locator('tr[data-field="max_floors"]').get_attribute("class")
    page.shot("conflict")
    # ... and changes it again while the dialog is open: "overwrite" meets a real 412, and the dialog again
    patch_zone(base_url, tokens["t_federal"], fid, name="third name")
    page.page.click("#conflict-overwrite")
    page.wait_js("document.querySelector('dialog[open] tr[data-field=\"name\"]')?.innerText"
                 ".includes('third name')")
    page.shot("conflict-again")
    page.page.click("#conflict-overwrite")
    page.page.wait_for_selector("#edit-message .message.ok", timeout=15000)
    # "overwrite" merges: the planner's name wins, the colleague's max_floors (untouched by the planner) stays
    assert scalar(engine, f"SELECT name FROM cdt.{FZ} WHERE id = :i", i=fid) == "planner's name"
    assert scalar(engine, f"SELECT max_floors FROM cdt.{FZ} WHERE id = :i", i=fid) == 5
    versions = scalar(engine, "SELECT count(*) FROM cdt.history WHERE collection = :c AND feature_id = :f",
                      c=FZ, f=str(fid))
    assert versions == 4  # create, colleague, third, planner
    page.shot("overwritten")
    # the only console errors are the 412 responses the conflict was made of
    assert [e for e in page.errors if "412" not in e] == []


def test_conflict_reload_takes_theirs(make_page, engine, tokens, base_url, vologda_spot):
    lat, lon = vologda_spot[0] - 0.01, vologda_spot[1] + 0.01
    fid = create_zone(base_url, tokens["t_federal"], lat, lon, "before")
    page = make_page().open()
    page.login("vologda_city")
    start_editing(page, lat, lon, 17)
    page.wait_js(f"[...cdt.editor.items.values()].some(i => i.id === {fid})")
    page.page.mouse.click(*page.map_point(lat, lon))
    page.page.fill("#f-name", "mine")
    patch_zone(base_url, tokens["t_federal"], fid, name="theirs")
    page.page.click("#edit-save")
    page.page.locator("dialog[open]").wait_for()
    page.page.click("#conflict-reload")
    page.page.wait_for_selector("#edit-pending:has-text('No unsaved changes')")
    page.page.mouse.click(*page.map_point(lat, lon))
    assert page.page.locator("#f-name").input_value() == "theirs"
    assert scalar(engine, f"SELECT name FROM cdt.{FZ} WHERE id = :i", i=fid) == "theirs"


def test_undo_and_redo_before_saving(make_page, engine, vologda_spot):
    lat, lon = vologda_spot[0] + 0.02, vologda_spot[1] - 0.02
    before = scalar(engine, f"SELECT count(*) FROM cdt.{FZ}")
    page = make_page().open()
    page.login("vologda_city")
    start_editing(page, lat, lon)
    draw_square(page, lat, lon)
    pending = page.page.locator("#edit-pending")
    assert pending.get_attribute("data-pending") == "1"
    page.page.fill("#f-name", "first")
    page.page.locator("#f-name").press("Enter")
    page.page.fill("#f-name", "second")
    page.page.locator("#f-name").press("Enter")
    page.page.click("#edit-undo")
    assert page.page.locator("#f-name").input_value() == "first"
    page.shot("undo-attribute")
    page.page.click("#edit-undo")
    page.page.click("#edit-undo")
    assert pending.get_attribute("data-pending") == "0"
    assert page.js("cdt.editor.group.getLayers().length") == 0
    page.shot("undo-drawing")
    page.page.locator("#map").focus()
    page.page.keyboard.press("Control+y")
    assert pending.get_attribute("data-pending") == "1"
    assert page.js("cdt.editor.group.getLayers().length") == 1
    page.page.click("#edit-redo")
    page.page.click("#edit-redo")
    page.page.mouse.click(*page.map_point(lat, lon))
    assert page.page.locator("#f-name").input_value() == "second"
    page.shot("redo")
    assert scalar(engine, f"SELECT count(*) FROM cdt.{FZ}") == before, "nothing is saved before Save"
    assert page.errors == []


def test_self_intersection_is_refused_before_saving(make_page, engine, vologda_spot):
    lat, lon = vologda_spot[0] - 0.02, vologda_spot[1] - 0.02
    before = scalar(engine, f"SELECT count(*) FROM cdt.{FZ}")
    page = make_page().open()
    page.login("vologda_city")
    assert page.js("""async () => {
        const g = await import('/web/src/geometry.js');
        const bowtie = {type: 'Polygon', coordinates: [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]};
        const square = {type: 'Polygon', coordinates: [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]};
        return [g.selfIntersections(bowtie).length > 0, g.selfIntersections(square).length];
    }""") == [True, 0]
    start_editing(page, lat, lon)
    draw_square(page, lat, lon)
    page.page.fill("#f-zone_type", "green")
    # the drawing tools refuse a self-intersecting ring, so make one as an import or a bug could
    page.js("""([lat, lon]) => {
        const item = [...cdt.editor.items.values()][0], d = 0.001;
        item.layer.setLatLngs([[lat - d, lon - d], [lat + d, lon + d], [lat + d, lon - d], [lat - d, lon + d]]);
        cdt.editor.commit();
    }""", [lat, lon])
    page.page.click("#edit-save")
    assert "intersects itself" in page.page.locator("#edit-message").inner_text()
    page.shot("self-intersection")
    assert scalar(engine, f"SELECT count(*) FROM cdt.{FZ}") == before


def test_history_panel_reverts_a_version(make_page, engine, tokens, base_url, vologda_spot):
    lat, lon = vologda_spot[0] + 0.02, vologda_spot[1] + 0.02
    fid = create_zone(base_url, tokens["t_federal"], lat, lon, "version one")
    patch_zone(base_url, tokens["t_federal"], fid, name="version two")
    page = make_page().open()
    page.login("vologda_city")
    start_editing(page, lat, lon, 17)
    page.wait_js(f"[...cdt.editor.items.values()].some(i => i.id === {fid})")
    page.page.mouse.click(*page.map_point(lat, lon))
    page.page.click("#edit-show-history")
    entries = page.page.locator("#edit-history li")
    entries.first.wait_for()
    assert entries.count() == 2 and "version two" in entries.first.inner_text()
    page.page.once("dialog", lambda d: d.accept())
    page.page.click('#edit-history button[data-revert="1"]')
    page.wait_js(f"fetch('/collections/{FZ}/items/{fid}').then(r => r.json())"
                 ".then(f => f.properties.name === 'version one')")
    assert scalar(engine, f"SELECT version FROM cdt.{FZ} WHERE id = :i", i=fid) == 3
    page.shot("reverted")


def test_citizen_and_analyst_see_no_edit_tools(make_page, engine):
    page = make_page().open()
    assert page.page.locator("#tab-edit").is_hidden()
    assert page.page.locator(".leaflet-pm-toolbar").count() == 0
    layers = page.js("cdt.config.layers.map(l => l.id)")
    assert "planned_facilities" not in layers and "utility_lines" not in layers, "the public tier only"
    page.shot("citizen")
    page.login("analyst")
    assert page.page.locator("#tab-edit").is_hidden(), "an analyst reads, does not edit"
    assert "planned_facilities" in page.js("cdt.config.layers.map(l => l.id)")
    page.shot("analyst")
    page.page.click("#logout-btn")
    page.page.wait_for_selector("#login-btn")
    assert page.page.locator("#tab-edit").is_hidden()


def test_phone_layout_and_keyboard(make_page):
    page = make_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True).open()
    assert page.page.locator("#panel").is_hidden(), "on a phone the map gets the screen; the panel is a drawer"
    map_box = page.page.locator("#map").bounding_box()
    assert map_box["width"] == 390 and map_box["height"] > 700
    page.shot("phone")
    page.page.click("#panel-toggle")
    assert page.page.locator("#panel").is_visible()
    page.shot("phone-panel")
    # keyboard: the controls are reachable with Tab, in order
    desk = make_page().open()
    focused = []
    for _ in range(6):
        desk.page.keyboard.press("Tab")
        focused.append(desk.js("document.activeElement.id || document.activeElement.tagName"))
    assert {"panel-toggle", "search-input", "territory-select", "login-btn"} <= set(focused), focused


def test_move_reshape_cut_and_delete(make_page, engine, vologda_spot):
    """Each Geoman tool, with the mouse, saved through the API and checked in PostGIS."""
    lat, lon = vologda_spot[0] - 0.03, vologda_spot[1] + 0.03
    name = f"Tools {uuid.uuid4().hex[:8]}"
    page = make_page().open()
    page.login("vologda_city")
    start_editing(page, lat, lon)
    draw_square(page, lat, lon, half_px=90)
    page.page.fill("#f-zone_type", "business")
    page.page.fill("#f-name", name)
    page.page.click("#edit-save")
    page.page.wait_for_selector("#edit-message .message.ok", timeout=15000)

    def geom(sql: str):
        return scalar(engine, f"SELECT {sql} FROM cdt.{FZ} WHERE name = :n", n=name)

    x0 = geom("ST_X(ST_Centroid(geom))")
    x, y = page.map_point(lat, lon)
    mouse = page.page.mouse

    # move: drag mode, drag the polygon 120 px east
    page.page.click(".leaflet-pm-icon-drag")
    mouse.move(x, y + 30)
    mouse.down()
    for step in range(1, 13):
        mouse.move(x + 10 * step, y + 30)
    mouse.up()
    page.page.click(".leaflet-pm-icon-drag")  # leave drag mode
    assert page.page.locator("#edit-pending").get_attribute("data-pending") == "1"
    page.page.click("#edit-save")
    page.page.wait_for_selector("#edit-message .message.ok", timeout=15000)
    moved = geom("ST_X(ST_Centroid(geom))")
    metres_per_px = scalar(engine, "SELECT 156543.03 * cos(radians(:lat)) / 2 ^ 16", lat=lat)
    assert abs((moved - x0) * 111320 * scalar(engine, "SELECT cos(radians(:lat))", lat=lat)
               - 120 * metres_per_px) < 20 * metres_per_px
    page.shot("moved")

    # cut: a hole in the middle of the moved polygon
    x, y = page.map_point(lat, lon)
    x += 120
    page.page.click(".leaflet-pm-icon-cut")
    for cx, cy in ((x - 30, y - 30), (x + 30, y - 30), (x + 30, y + 30), (x - 30, y + 30)):
        mouse.click(cx, cy)
        page.page.wait_for_timeout(80)
    page.page.click(".leaflet-pm-actions-container .action-finish:visible")
    page.page.wait_for_timeout(200)
    page.page.click("#edit-save")
    page.page.wait_for_selector("#edit-message .message.ok", timeout=15000)
    assert geom("ST_NumInteriorRings(ST_GeometryN(geom, 1))") == 1
    page.shot("cut")

    # reshape: edit mode, drag the north-east corner vertex 40 px further out
    area = geom("area_m2")
    page.page.click(".leaflet-pm-icon-edit")
    corner = page.js("""([name]) => {
        const item = [...cdt.editor.items.values()].find(i => i.properties.name === name);
        const ne = item.layer.getLatLngs().flat(Infinity).reduce((a, b) => (b.lat + b.lng > a.lat + a.lng ? b : a));
        const p = cdt.map.latLngToContainerPoint(ne);
        return [p.x, p.y];
    }""", [name])
    box = page.page.locator("#map").bounding_box()
    mouse.move(box["x"] + corner[0], box["y"] + corner[1])
    mouse.down()
    for step in range(1, 9):
        mouse.move(box["x"] + corner[0] + 5 * step, box["y"] + corner[1] - 5 * step)
    mouse.up()
    page.page.click(".leaflet-pm-icon-edit")
    page.page.click("#edit-save")
    page.page.wait_for_selector("#edit-message .message.ok", timeout=15000)
    assert geom("area_m2") > area * 1.05
    page.shot("reshaped")

    # delete: removal mode, click the polygon (outside its hole)
    fid = geom("id")
    x, y = page.map_point(lat, lon)
    page.page.click(".leaflet-pm-icon-delete")
    mouse.click(x + 120 - 70, y)
    page.page.click(".leaflet-pm-icon-delete")
    assert page.page.locator("#edit-pending").get_attribute("data-pending") == "1"
    page.page.click("#edit-save")
    page.page.wait_for_selector("#edit-message .message.ok", timeout=15000)
    assert scalar(engine, f"SELECT count(*) FROM cdt.{FZ} WHERE id = :i", i=fid) == 0
    ops = [r[0] for r in engine.connect().execute(text(
        "SELECT operation FROM cdt.history WHERE collection = :c AND feature_id = :f ORDER BY id"),
        {"c": FZ, "f": str(fid)})]
    assert [o.lower() for o in ops] == ["insert", "update", "update", "update", "delete"]
    page.shot("deleted")
    assert page.errors == []


def test_drawing_snaps_to_a_buildings_vertex(make_page, engine, vologda_spot):
    lat, lon = vologda_spot
    # a corner of the building nearest the spot, with no other building vertex within 10 m of it
    corner = engine.connect().execute(text("""
        WITH b AS (SELECT geom FROM cdt.buildings ORDER BY geom <-> ST_SetSRID(ST_MakePoint(:x, :y), 4326) LIMIT 1),
             v AS (SELECT (ST_DumpPoints(geom)).geom AS p FROM b)
        SELECT ST_Y(p), ST_X(p) FROM v WHERE NOT EXISTS (
            SELECT 1 FROM cdt.buildings o WHERE NOT ST_Equals(o.geom, (SELECT geom FROM b))
            AND ST_DWithin(o.geom::geography, v.p::geography, 10)) LIMIT 1"""), {"x": lon, "y": lat}).one()
    page = make_page().open()
    page.login("vologda_city")
    start_editing(page, corner[0], corner[1], 17)
    page.wait_js("cdt.editor.guides.getLayers().length > 0 && cdt.editor.guides.getLayers()"
                 ".some(g => g.getLayers().length > 0)")
    x, y = page.map_point(corner[0], corner[1])
    page.page.click(".leaflet-pm-icon-polygon")
    for cx, cy in ((x + 6, y + 5), (x + 150, y + 40), (x + 60, y + 160)):  # the first click 8 px off the corner
        page.page.mouse.move(cx - 2, cy - 2)
        page.page.mouse.click(cx, cy)
        page.page.wait_for_timeout(80)
    page.page.click(".leaflet-pm-actions-container .action-finish:visible")
    page.page.wait_for_selector("#feature-form")
    first = page.js("(() => { const l = [...cdt.editor.items.values()].find(i => i.id === null).layer;"
                    " const p = l.getLatLngs().flat(Infinity)[0]; return [p.lat, p.lng]; })()")
    assert first == pytest.approx([corner[0], corner[1]], abs=1e-9), "the vertex lies exactly on the corner"
    page.shot("snapped")
