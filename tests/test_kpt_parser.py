"""KPT (cadastral plan of territory) parser against the real extracts in data/cadastre. No database."""

from __future__ import annotations

from pathlib import Path

import pyproj
import pytest
from shapely.geometry import Point

from layers.errors import IngestError
from layers.ingest.kpt import CADASTRAL_NUMBER, KptExtract, msk_crs, read_kpt

DATA = Path(__file__).resolve().parents[1] / "data" / "cadastre"
EKB = DATA / "kpt10_66-41-0302032.xml"
NOVOCHEB = [DATA / f"kpt10_21-02-01010{n}.xml" for n in (6, 7, 8)]
GEOD = pyproj.Geod(ellps="WGS84")


@pytest.fixture(scope="module")
def ekb() -> KptExtract:
    return read_kpt(EKB)


@pytest.fixture(scope="module")
def novocheb() -> list[KptExtract]:
    return [read_kpt(p) for p in NOVOCHEB]


def _row(extract: KptExtract, number: str):
    rows = extract.parcels[extract.parcels.cadastral_number == number]
    assert len(rows) == 1, number
    return rows.iloc[0]


def _reasons(extract: KptExtract) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in extract.problems:
        out.setdefault(p["row"], []).append(p["reason"])
    return out


# --- real files -------------------------------------------------------------


def test_row_counts_block_and_crs(ekb, novocheb):
    assert len(ekb.parcels) == 50
    assert sum(len(e.parcels) for e in novocheb) == 58
    assert ekb.block == "66:41:0302032"
    assert ekb.coord_system == "МСК-66 зона 1"
    assert ekb.parcels.crs.to_epsg() == 4326
    assert [e.block for e in novocheb] == ["21:02:010106", "21:02:010107", "21:02:010108"]
    # These files say only "СК кадастрового округа": district 21 + eastings 1xxxxxx = МСК-21 zone 1.
    assert {e.coord_system for e in novocheb} == {"МСК-21 зона 1"}
    for e in novocheb:
        assert any("taken as МСК-21 зона 1" in r for r in _reasons(e)[e.block])
    assert list(ekb.parcels.columns) == [
        "cadastral_number", "valid_number", "land_category_code", "land_category", "permitted_use_code",
        "permitted_use_text", "area_declared_m2", "address", "geometry"]
    assert ekb.parcels.valid_number.all()


def test_first_vertex_reprojects_to_ekaterinburg(ekb):
    to_wgs = pyproj.Transformer.from_crs(msk_crs("МСК - 66, зона 1"), "EPSG:4326", always_xy=True)
    lon, lat = to_wgs.transform(1531020.31, 392781.63)  # (Y easting, X northing)
    assert lon == pytest.approx(60.557, abs=1e-3)
    assert lat == pytest.approx(56.854, abs=1e-3)
    geom = _row(ekb, "66:41:0302032:1").geometry
    assert geom.geom_type == "MultiPolygon"
    assert min(Point(c).distance(Point(lon, lat)) for c in geom.geoms[0].exterior.coords) < 1e-7
    c = geom.centroid
    assert GEOD.inv(lon, lat, c.x, c.y)[2] < 1000


def test_attributes_of_a_parcel(ekb):
    r = _row(ekb, "66:41:0302032:1")
    assert r.land_category_code == "003002000000"
    assert r.land_category == "Земли населенных пунктов"
    assert r.permitted_use_code == "142002040100"
    assert r.permitted_use_text == "под здание магазина (литера В)"
    assert r.area_declared_m2 == 2763.0
    assert r.address == "обл. Свердловская, г. Екатеринбург, ул. Опалихинская, дом 27"


def test_geodesic_area_agrees_with_declared(ekb, novocheb):
    agree = total = 0
    for e in [ekb, *novocheb]:
        for r in e.parcels[e.parcels.geometry.notna()].itertuples():
            area = abs(GEOD.geometry_area_perimeter(r.geometry)[0])
            total += 1
            agree += abs(area - r.area_declared_m2) <= 0.02 * r.area_declared_m2
    assert total == 106
    assert agree / total >= 0.9
    assert agree == 105  # the one outlier is 66:41:0302032:50, flagged below


def test_holes_and_contours_as_found(ekb, novocheb):
    frames = [e.parcels for e in [ekb, *novocheb]]
    geoms = [g for f in frames for g in f.geometry if g is not None]
    assert all(g.geom_type == "MultiPolygon" and g.is_valid for g in geoms)
    # These extracts hold no multi-contour parcel; five parcels have one hole each.
    assert sum(len(g.geoms) > 1 for g in geoms) == 0
    holed = sorted(n for f in frames for n, g in zip(f.cadastral_number, f.geometry, strict=True)
                   if g is not None and any(p.interiors for p in g.geoms))
    assert holed == ["21:02:010108:42", "66:41:0302032:10", "66:41:0302032:26",
                     "66:41:0302032:3071", "66:41:0302032:50"]
    # A hole is subtracted: declared 10875 m² = outer 10961 - hole 86.
    assert abs(GEOD.geometry_area_perimeter(_row(ekb, "66:41:0302032:10").geometry)[0]) == pytest.approx(
        10875, rel=0.002)


def test_parcels_without_geometry_are_kept(novocheb):
    empty = {n: e for e in novocheb for n in e.parcels.cadastral_number[e.parcels.geometry.isna()]}
    assert sorted(empty) == ["21:02:010106:10", "21:02:010107:1"]
    for number, e in empty.items():
        assert "no geometry in extract" in _reasons(e)[number]


def test_data_warnings(ekb):
    reasons = _reasons(ekb)
    assert "-4.8%" in reasons["66:41:0302032:50"][0]
    # Parcels of the district-wide pseudo-block 0000000 appear in this block's plan.
    for n in ("66:41:0000000:798", "66:41:0000000:886"):
        assert "registered in block 66:41:0000000" in reasons[n][0]
        assert CADASTRAL_NUMBER.match(n)
    assert len(ekb.problems) == 3


# --- defects ------------------------------------------------------------------


def test_truncated_file_raises(tmp_path):
    data = EKB.read_bytes()
    broken = tmp_path / "truncated.xml"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(IngestError, match="truncated.xml"):
        read_kpt(broken)


def test_wrong_root_raises(tmp_path):
    other = tmp_path / "other.xml"
    other.write_text('<?xml version="1.0"?><extract_about_property_land/>', encoding="utf-8")
    with pytest.raises(IngestError, match="other.xml.*extract_about_property_land"):
        read_kpt(other)


def test_missing_coordinate_system_raises(tmp_path):
    text = EKB.read_text(encoding="utf-8")
    start, end = text.index("<CoordSystems>"), text.index("</CoordSystems>") + len("</CoordSystems>")
    path = tmp_path / "nocs.xml"
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    with pytest.raises(IngestError, match="nocs.xml: no coordinate system"):
        read_kpt(path)


def test_unknown_coordinate_system_raises(tmp_path):
    path = tmp_path / "zone9.xml"
    path.write_text(EKB.read_text(encoding="utf-8").replace("МСК - 66, зона 1", "МСК - 66, зона 9"),
                    encoding="utf-8")
    with pytest.raises(IngestError, match="zone9.xml: unknown coordinate system"):
        read_kpt(path)


def test_bad_cadastral_number_is_flagged_not_raised(tmp_path):
    text = EKB.read_text(encoding="utf-8")
    assert text.count('CadastralNumber="66:41:0302032:3"') == 1
    path = tmp_path / "bad.xml"
    path.write_text(text.replace('CadastralNumber="66:41:0302032:3"', 'CadastralNumber="66:41:BAD:1"'),
                    encoding="utf-8")
    extract = read_kpt(path)
    assert len(extract.parcels) == 50
    assert not _row(extract, "66:41:BAD:1").valid_number
    assert extract.parcels.valid_number.sum() == 49
    assert "invalid cadastral number '66:41:BAD:1'" in _reasons(extract)["66:41:BAD:1"]


def test_address_is_composed_when_note_missing(tmp_path):
    text = NOVOCHEB[2].read_text(encoding="utf-8")
    start = text.index("<ns2:Note>")
    path = tmp_path / "nonote.xml"
    path.write_text(text[:start] + text[text.index("</ns2:Note>", start) + len("</ns2:Note>"):],
                    encoding="utf-8")
    assert _row(read_kpt(path), "21:02:010108:1").address == "г Новочебоксарск, ул Набережная, кв 34"


def test_old_format_multi_contour(tmp_path):
    """Contours/Contour (МКЗУ) become one MultiPolygon; built from parcels :1 and :3 of the real file."""
    text = EKB.read_text(encoding="utf-8")

    def spatial(number: str) -> str:
        start = text.index(f'CadastralNumber="{number}"')
        es = text.index("<EntitySpatial", start)
        return text[es: text.index("</EntitySpatial>", es) + len("</EntitySpatial>")]

    one, three = spatial("66:41:0302032:1"), spatial("66:41:0302032:3")
    contours = f"<Contours><Contour>{one}</Contour><Contour>{three}</Contour></Contours>"
    path = tmp_path / "mkzu.xml"
    path.write_text(text.replace(one, contours, 1), encoding="utf-8")
    geom = _row(read_kpt(path), "66:41:0302032:1").geometry
    assert len(geom.geoms) == 2 and geom.is_valid


# --- newer extract format (no namespaces) -----------------------------------------


def _ordinates(points: list[tuple[float, float]]) -> str:
    pts = [*points, points[0]]
    return "".join(f"<ordinate><x>{x}</x><y>{y}</y><ord_nmb>{i}</ord_nmb></ordinate>"
                   for i, (x, y) in enumerate(pts, 1))


def _square(x: float, y: float, side: float) -> list[tuple[float, float]]:
    return [(x, y), (x + side, y), (x + side, y + side), (x, y + side)]


NEW_FORMAT = """<?xml version="1.0" encoding="UTF-8"?>
<extract_cadastral_plan_territory><cadastral_blocks><cadastral_block>
 <cadastral_number>66:41:0302032</cadastral_number>
 <record_data><base_data><land_records><land_record>
  <object><common_data><type><code>002001001000</code></type>
   <cad_number>66:41:0302032:9001</cad_number></common_data></object>
  <params><category><type><code>003002000000</code><value>Земли населенных пунктов</value></type></category>
   <area><value>9900</value><inaccuracy>10</inaccuracy></area>
   <permitted_use><permitted_use_established><by_document>под школу</by_document>
    <land_use><code>142001030000</code><value>школы</value></land_use></permitted_use_established></permitted_use>
  </params>
  <address_location><address><readable_address>г. Екатеринбург, ул. Опалихинская</readable_address></address>
  </address_location>
  <contours_location><contours>
   <contour><entity_spatial><sk_id>МСК-66, зона 1</sk_id><spatials_elements>
    <spatial_element><ordinates>{outer}</ordinates></spatial_element>
    <spatial_element><ordinates>{hole}</ordinates></spatial_element>
   </spatials_elements></entity_spatial></contour>
   <contour><entity_spatial><sk_id>МСК-66, зона 1</sk_id><spatials_elements>
    <spatial_element><ordinates>{second}</ordinates></spatial_element>
   </spatials_elements></entity_spatial></contour>
  </contours></contours_location>
 </land_record></land_records></base_data></record_data>
 <coord_systems><coord_system><sk_id>МСК-66, зона 1</sk_id></coord_system></coord_systems>
</cadastral_block></cadastral_blocks></extract_cadastral_plan_territory>
"""


def test_new_format_two_contours_and_a_hole(tmp_path):
    path = tmp_path / "new.xml"
    path.write_text(NEW_FORMAT.format(
        outer=_ordinates(_square(392700, 1531000, 100)),  # 10000 m²
        hole=_ordinates(_square(392740, 1531040, 10)[::-1]),  # -100 m²
        second=_ordinates(_square(392900, 1531000, 10))), encoding="utf-8")  # +100 m² → 10000 in total
    extract = read_kpt(path)
    assert (extract.block, extract.coord_system) == ("66:41:0302032", "МСК-66 зона 1")
    r = extract.parcels.iloc[0]
    assert r.cadastral_number == "66:41:0302032:9001" and r.valid_number
    assert (r.land_category_code, r.land_category) == ("003002000000", "Земли населенных пунктов")
    assert (r.permitted_use_code, r.permitted_use_text) == ("142001030000", "под школу")
    assert r.address == "г. Екатеринбург, ул. Опалихинская"
    assert len(r.geometry.geoms) == 2
    assert [len(p.interiors) for p in r.geometry.geoms] == [1, 0]
    assert abs(GEOD.geometry_area_perimeter(r.geometry)[0]) == pytest.approx(10000, rel=0.001)
    # 9900 declared vs 10000 drawn is within tolerance: no area warning.
    assert extract.problems == []


# --- МСК lookup ---------------------------------------------------------------


def test_msk_crs_spellings_and_unknown():
    assert msk_crs("МСК - 66, зона 1") == msk_crs("МСК-66 зона 1") == msk_crs("мск-66, зона 1")
    assert msk_crs("МСК-66 зона 2") != msk_crs("МСК-66 зона 1")
    # Newer extracts add the origin ("от СК-95"); МСК-26 is listed without it.
    assert msk_crs("МСК-26, от СК -95, зона 1") == msk_crs("МСК-26 зона 1")
    for bad in ("МСК-66 зона 9", "МСК-66", "МСК-999 зона 1", "СК кадастрового округа"):
        with pytest.raises(IngestError, match="unknown coordinate system"):
            msk_crs(bad)


def test_cadastral_number_pattern():
    assert CADASTRAL_NUMBER.match("66:41:0302032:1")
    assert CADASTRAL_NUMBER.match("21:02:010106:10")
    for bad in ("66:41:BAD:1", "66:41:0302032", "6:41:0302032:1", "66:41:03020:1"):
        assert not CADASTRAL_NUMBER.match(bad)
