"""A territory's map report: one standalone HTML page (folium map + tables) gathered through the services.

The map shows the boundary, a choropleth per key indicator (over the child territories, or the territory itself
when it has none), provision deficits per facility type (the `service_provision` hexagons), facilities by type,
and the internal/restricted layers the principal may read; below it the key indicators, deficits, facilities and
the latest fuel and energy balance (of the territory, else of the nearest ancestor that has one). Every layer is
read under `layers.access.read_rule`, so anonymous callers get the public tier and a note of what was left out."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import folium
from sqlalchemy import Connection, Engine, text

from energy import co2
from energy import store as balance_store
from geoserver_app.reports import inline
from layers import registry, styles
from layers.access import Forbidden, Principal, Unauthorized, read_rule, resolve_scopes
from layers.db import reader
from layers.errors import InvalidParameterValue, NotFound
from planning.indicators import access as indicator_access
from planning.indicators import catalog
from planning.indicators import store as indicator_store

# Key indicators of a report by default (codes of planning/indicators/catalog.toml and the access family).
DEFAULT_INDICATORS = ("population_density_km2", "kindergarten_places_per_1000", "school_places_per_1000",
                      "living_area_per_resident", "kindergarten_within_300m_share", "school_within_500m_share")
# Non-public layers a report adds when the principal may read them (and names as left out otherwise).
OPTIONAL_LAYERS = {"planned_facilities": "coalesce(t.name, t.type_code)", "utility_nodes": "coalesce(t.name, t.kind)",
                   "utility_lines": "t.kind"}
CHOROPLETH = ("#ffffcc", "#a1dab4", "#41b6c4", "#2c7fb8", "#253494")  # ColorBrewer YlGnBu, 5 classes
DEFICIT = ("#fee5d9", "#fcae91", "#fb6a4a", "#de2d26", "#a50f15")  # ColorBrewer Reds, 5 classes
NO_DEFICIT = "#1a9850"
LANGS = ("ru", "en")


def fmt(value: float | None, lang: str = "ru", digits: int | None = None) -> str:
    """A number as the report prints it (Russian: non-breaking thousands separator, decimal comma)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if digits is None:
        digits = 0 if abs(value) >= 1000 else 1 if abs(value) >= 10 else 2
    out = f"{value:,.{digits}f}"
    return out.replace(",", "\u00a0").replace(".", ",") if lang == "ru" else out


# --- the data -----------------------------------------------------------------------------------------------
@dataclass
class Indicator:
    code: str
    name: str
    unit: str
    direction: str
    provenance: str
    value: float | None  # of the territory itself
    by_territory: dict[int, float]


@dataclass
class Balance:
    meta: dict
    own: bool  # the territory's own balance (else an ancestor's)
    primary: float | None
    final: float | None
    co2_t: float | None


@dataclass
class ReportData:
    territory: dict
    children: list[dict]
    year: int | None
    indicators: list[Indicator]
    deficits: dict[str, dict]  # facility type -> summary and hexagons
    facilities: dict[str, dict]  # facility type -> name, colour, features
    optional: dict[str, list[dict]]  # layer -> features the principal may read
    restricted: list[str]
    balance: Balance | None
    sources: list[str] = field(default_factory=list)


def _select(conn: Connection, principal: Principal, layer_name: str, columns: str, where: str, params: dict,
            tail: str = "") -> list[dict] | None:
    """Rows of a registry layer the principal may read (None: may read none of it)."""
    layer = registry.get(layer_name)
    try:
        rule = read_rule(principal, layer)
    except (Unauthorized, Forbidden):
        return None
    scope = f" AND {rule.sql}" if rule.sql else ""
    rows = conn.execute(text(f"SELECT {columns} FROM {layer.qualified_table} t WHERE {where}{scope} {tail}"),
                        {**params, **rule.params})
    return [dict(r._mapping) for r in rows]


def _geojson(rows: list[dict], geometry: str = "geometry") -> dict:
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": json.loads(r[geometry]),
         "properties": {k: html.escape(v) if isinstance(v, str) else v for k, v in r.items() if k != geometry}}
        for r in rows if r.get(geometry)]}


def _indicators(conn: Connection, principal: Principal, codes: Sequence[str], tids: list[int], territory_id: int,
                year: int | None, lang: str) -> tuple[int | None, list[Indicator], list[str]]:
    defs = catalog.registry(conn)
    unknown = [c for c in codes if c not in defs]
    if unknown:
        raise InvalidParameterValue(f"unknown indicator(s): {', '.join(unknown)}")
    scopes = indicator_access.scopes(principal, defs)  # indicators follow their layers' read rules
    if year is None:
        years = [y for c in codes if (y := indicator_store.latest_year(conn, c)) is not None]
        year = max(years) if years else None
    if year is None:
        return None, [], []
    values = indicator_store.values_at(conn, codes, year)
    out = []
    for code in codes:
        by_t = {t: v for (c, t), v in values.items() if c == code and t in tids
                and (scopes[code] is None or t in scopes[code])}
        if not by_t:
            continue  # only indicators with values
        d = defs[code]
        out.append(Indicator(code, d.name_ru if lang == "ru" else d.name_en, d.unit, d.direction, d.provenance,
                             by_t.get(territory_id), by_t))
    sources = conn.execute(text(
        "SELECT source, max(computed_at) FROM cdt.indicator_values WHERE indicator_code = ANY(:c) "
        "AND territory_id = ANY(:t) AND period = :p AND value_type = 'actual' AND scenario_id IS NULL GROUP BY 1"),
        {"c": [i.code for i in out], "t": tids, "p": indicator_store.period_of(year)}).all()
    return year, out, [f"{s}: {at:%Y-%m-%d %H:%M}" for s, at in sources]


def _number(v) -> float | None:
    return None if v is None or math.isnan(v) else float(v)


def _balance(engine: Engine, conn: Connection, territory_id: int, year: int | None) -> Balance | None:
    """The latest actual balance (not after `year` when one is) of the territory or its nearest ancestor."""
    chain = conn.execute(text("""
        WITH RECURSIVE up(id, oktmo, parent_id, depth) AS (
            SELECT id, oktmo, parent_id, 0 FROM cdt.territories WHERE id = :t
            UNION ALL SELECT p.id, p.oktmo, p.parent_id, up.depth + 1
            FROM up JOIN cdt.territories p ON p.id = up.parent_id)
        SELECT oktmo FROM up ORDER BY depth"""), {"t": territory_id}).scalars().all()
    balances = [b for b in balance_store.list_balances(engine) if b["kind"] == "actual" and b["scenario"] is None]
    for depth, oktmo in enumerate(chain):
        mine = [b for b in balances if b["territory_oktmo"] == oktmo]
        if not mine:
            continue
        before = [b for b in mine if year is None or b["year"] <= year]
        meta = max(before or mine, key=lambda b: b["year"])
        table = balance_store.load_balance(engine, meta["id"])
        primary, final = (table.at[row, "total"] for row in ("primary_consumption", "final_consumption"))
        return Balance(meta, depth == 0, _number(primary), _number(final), float(co2.total_co2_t(table)))
    return None


def gather(engine: Engine, principal: Principal, territory_oktmo: str, year: int | None = None,
           indicators: Sequence[str] | None = None, lang: str = "ru") -> ReportData:
    codes = list(indicators or DEFAULT_INDICATORS)
    name_col = "name_ru" if lang == "ru" else "name_en"
    with reader(engine).connect() as conn:
        if principal.grants and not principal.scopes:
            principal = resolve_scopes(conn, principal)
        cols = ("t.id, t.oktmo, t.name, t.level, t.parent_id, t.population, t.population_source, "
                "ST_AsGeoJSON(t.boundary, 6) AS geometry")
        found = _select(conn, principal, "territories", cols, "t.oktmo = :o", {"o": territory_oktmo}) or []
        if not found:
            raise NotFound(f"no territory with OKTMO {territory_oktmo}")
        territory = found[0]
        children = _select(conn, principal, "territories", cols, "t.parent_id = :p", {"p": territory["id"]},
                           "ORDER BY t.oktmo") or []
        tids = conn.execute(text("""
            WITH RECURSIVE sub(id) AS (SELECT CAST(:t AS int)
                UNION ALL SELECT c.id FROM sub JOIN cdt.territories c ON c.parent_id = sub.id)
            SELECT id FROM sub"""), {"t": territory["id"]}).scalars().all()
        shown = [territory["id"], *[c["id"] for c in children]]
        year, key, indicator_sources = _indicators(conn, principal, codes, shown, territory["id"], year, lang)
        types = {r.code: r for r in conn.execute(text(
            f"SELECT code, {name_col} AS name, capacity_unit FROM cdt.facility_types"))}
        scope = {"ids": list(tids)}
        hexes = _select(conn, principal, "service_provision",
                        "t.facility_type, t.hex, t.residents, t.demand, t.served, t.deficit, t.covered_share, "
                        "t.created_at, ST_AsGeoJSON(t.geom, 6) AS geometry",
                        "t.territory_id = ANY(CAST(:ids AS int[]))", scope, "ORDER BY t.facility_type, t.hex")
        deficits: dict[str, dict] = {}
        for h in hexes or []:
            d = deficits.setdefault(h["facility_type"], {"name": types[h["facility_type"]].name, "rows": [],
                                                         "computed": h["created_at"]})
            d["rows"].append(h)
            d["computed"] = max(d["computed"], h["created_at"])
        for d in deficits.values():
            d["demand"] = sum(r["demand"] or 0 for r in d["rows"])
            d["served"] = sum(r["served"] or 0 for r in d["rows"])
            d["deficit"] = sum(r["deficit"] or 0 for r in d["rows"])
        colours = {c["value"]: c["color"] for c in styles.style(conn, registry.get("facilities"))["by"]["categories"]}
        rows = _select(conn, principal, "facilities",
                       "t.type_code, t.name, t.address, t.capacity, t.capacity_unit, t.source, "
                       "ST_AsGeoJSON(t.geom, 6) AS geometry", "t.territory_id = ANY(CAST(:ids AS int[]))", scope,
                       "ORDER BY t.type_code, t.name") or []
        facilities: dict[str, dict] = {}
        for r in rows:
            f = facilities.setdefault(r["type_code"], {"name": types[r["type_code"]].name, "rows": [],
                                                       "colour": colours.get(r["type_code"], "#616161")})
            f["rows"].append(r)
        optional, restricted = {}, []
        for layer_name, label in OPTIONAL_LAYERS.items():
            got = _select(conn, principal, layer_name, f"{label} AS label, ST_AsGeoJSON(t.geom, 6) AS geometry",
                          "t.territory_id = ANY(CAST(:ids AS int[]))", scope)
            if got is None:
                restricted.append(layer_name)
            elif got:
                optional[layer_name] = got
        facility_sources = sorted({r["source"] for r in rows if r["source"]})
        balance = _balance(engine, conn, territory["id"], year)
    t = TEXTS[lang]
    sources = [*(f"{i.name}: {i.provenance}" for i in key),
               *(f"{t['src_values']} ({s})" for s in indicator_sources),
               *(f"{t['facilities']}: {s}" for s in facility_sources),
               *(f"{t['deficit_layer']} ({d['name']}): service_provision, {d['computed']:%Y-%m-%d %H:%M}"
                 for d in deficits.values())]
    if territory["population_source"]:
        sources.append(f"{t['population']}: {territory['population_source']}")
    if balance:
        sources.append(f"{t['balance']}: {balance.meta['source_file'] or balance.meta['territory_name']} "
                       f"({balance.meta['year']})")
    return ReportData(territory, children, year, key, deficits, facilities, optional, restricted, balance, sources)


# --- the page -----------------------------------------------------------------------------------------------
TEXTS = {
    "ru": {"title": "Отчёт по территории", "oktmo": "ОКТМО", "date": "Дата", "year": "Год показателей",
           "user": "Права доступа", "anonymous": "аноним (публичный уровень)", "sources": "Источники данных",
           "boundary": "Граница", "indicators": "Ключевые показатели", "indicator": "Показатель",
           "value": "Значение", "unit": "Ед. изм.", "direction": "Направление",
           "higher": "↑ чем больше, тем лучше", "lower": "↓ чем меньше, тем лучше", "neutral": "— нейтрально",
           "no_indicators": "Значений показателей нет: выполните `cdt indicators compute`.",
           "deficits": "Дефицит мест по нормативам", "deficit_layer": "Дефицит", "type": "Тип объектов",
           "districts": "Гексагонов", "demand": "Потребность", "served": "Обеспечено", "deficit": "Дефицит",
           "no_deficits": "Нет результатов обеспеченности: выполните `cdt analyse`.",
           "facilities": "Объекты обслуживания", "count": "Количество", "capacity": "Вместимость",
           "total": "Всего", "balance": "Топливно-энергетический баланс",
           "balance_own": "баланс территории", "balance_region": "баланс региона «{name}» (у территории своего нет)",
           "no_balance": "Топливно-энергетического баланса нет ни у территории, ни у её региона.",
           "primary": "Потребление первичной энергии", "final": "Конечное потребление", "co2": "Выбросы CO₂",
           "tce": "тыс. т у.т.", "t_co2": "т CO₂", "not_shown": "Не показано (ограниченный доступ)",
           "children": "Дочерние территории", "territory_itself": "территория целиком",
           "layers": {"planned_facilities": "Планируемые объекты", "utility_nodes": "Узлы инженерных сетей",
                      "utility_lines": "Линии инженерных сетей"},
           "residents": "Жители", "covered": "Доля обеспеченности", "name": "Название", "address": "Адрес",
           "src_values": "значения показателей cdt.indicator_values",
           "scale": "Шкала на карте", "no_deficit": "гексагон без дефицита", "population": "Численность населения"},
    "en": {"title": "Territory report", "oktmo": "OKTMO", "date": "Date", "year": "Indicator year",
           "user": "Access", "anonymous": "anonymous (public tier)", "sources": "Data sources",
           "boundary": "Boundary", "indicators": "Key indicators", "indicator": "Indicator",
           "value": "Value", "unit": "Unit", "direction": "Direction",
           "higher": "↑ higher is better", "lower": "↓ lower is better", "neutral": "— neutral",
           "no_indicators": "No indicator values: run `cdt indicators compute`.",
           "deficits": "Deficit of places by planning norms", "deficit_layer": "Deficit", "type": "Facility type",
           "districts": "Hexagons", "demand": "Demand", "served": "Served", "deficit": "Deficit",
           "no_deficits": "No provision results: run `cdt analyse`.",
           "facilities": "Facilities", "count": "Count", "capacity": "Capacity", "total": "Total",
           "balance": "Fuel and energy balance", "balance_own": "the territory's balance",
           "balance_region": "the balance of the region “{name}” (the territory has none of its own)",
           "no_balance": "Neither the territory nor its region has a fuel and energy balance.",
           "primary": "Primary energy consumption", "final": "Final consumption", "co2": "CO₂ emissions",
           "tce": "thousand tce", "t_co2": "t CO₂", "not_shown": "Not shown (restricted)",
           "children": "Child territories", "territory_itself": "the territory as a whole",
           "layers": {"planned_facilities": "Planned facilities", "utility_nodes": "Utility network nodes",
                      "utility_lines": "Utility network lines"},
           "residents": "Residents", "covered": "Covered share", "name": "Name", "address": "Address",
           "src_values": "indicator values cdt.indicator_values",
           "scale": "Map scale", "no_deficit": "hexagon without a deficit", "population": "Population"},
}
STYLE = """<style>
.cdt-report{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#212121;margin:0 16px}
.cdt-report h1{font-size:22px;margin:12px 0 4px}.cdt-report h2{font-size:17px;margin:18px 0 6px}
.cdt-report table{border-collapse:collapse;margin:4px 0}.cdt-report td,.cdt-report th{border:1px solid #ccc;
padding:3px 8px;text-align:left}.cdt-report td.n{text-align:right;white-space:nowrap}.cdt-report .meta{color:#555}
.cdt-report .swatch{display:inline-block;width:12px;height:12px;margin-right:6px;vertical-align:middle}
html,body{height:auto!important}</style>"""


def _classes(values: Sequence[float], palette: Sequence[str]):
    """Equal-interval classes between the smallest and largest value: value -> colour."""
    lo, hi = (min(values), max(values)) if values else (0.0, 0.0)

    def colour(v: float | None) -> str:
        if v is None:
            return "#bdbdbd"
        if hi <= lo:
            return palette[len(palette) // 2]
        return palette[min(int((v - lo) / (hi - lo) * len(palette)), len(palette) - 1)]

    return colour


def _area(data: ReportData) -> list[dict]:
    """What the choropleths colour: the child territories with a boundary, else the territory itself."""
    return [c for c in data.children if c["geometry"]] or [data.territory]


def _shown_values(ind: Indicator, area: list[dict]) -> list[float]:
    return [v for a in area if (v := ind.by_territory.get(a["id"])) is not None]


def _map(data: ReportData, lang: str, tiles_url: str | None, tiles_attribution: str | None) -> folium.Map:
    t = TEXTS[lang]
    # Russia as a whole until the layers' bounds are known (a territory without any geometry stays there).
    m = folium.Map(location=[61.5, 90.0], zoom_start=3, tiles=None, height="65vh", control_scale=True)
    drawn: list[folium.GeoJson] = []
    # Only Leaflet, inlined later from web/node_modules (folium's defaults pull jQuery, Bootstrap ... from CDNs).
    m.default_js = [("leaflet", f"{inline.SCHEME}leaflet.js")]
    m.default_css = [("leaflet_css", f"{inline.SCHEME}leaflet.css")]
    if tiles_url:
        folium.TileLayer(tiles_url, attr=tiles_attribution or tiles_url, name="basemap", control=False).add_to(m)
    area = _area(data)
    for i, ind in enumerate(data.indicators):
        colour = _classes(_shown_values(ind, area), CHOROPLETH)
        rows = [{"geometry": a["geometry"], "name": a["name"], "oktmo": a["oktmo"],
                 "value": f"{fmt(ind.by_territory.get(a['id']), lang)} {ind.unit}",
                 "fill": colour(ind.by_territory.get(a["id"]))} for a in area]
        _add(m, drawn, folium.GeoJson(_geojson(rows), name=f"{ind.name}, {ind.unit}", show=i == 0,
                       style_function=lambda f: {"fillColor": f["properties"]["fill"], "color": "#555",
                                                 "weight": 1, "fillOpacity": 0.55},
                       tooltip=folium.GeoJsonTooltip(["name", "oktmo", "value"],
                                                     [t["name"], t["oktmo"], ind.name])))
    for d in data.deficits.values():
        colour = _classes([r["deficit"] for r in d["rows"] if (r["deficit"] or 0) > 0], DEFICIT)
        rows = [{"geometry": r["geometry"], "hex": r["hex"], "residents": fmt(r["residents"], lang, 0),
                 "demand": fmt(r["demand"], lang, 0), "served": fmt(r["served"], lang, 0),
                 "deficit": fmt(r["deficit"], lang, 0), "covered": fmt((r["covered_share"] or 0) * 100, lang, 0) + " %",
                 "fill": colour(r["deficit"]) if (r["deficit"] or 0) > 0 else NO_DEFICIT} for r in d["rows"]]
        _add(m, drawn, folium.GeoJson(_geojson(rows), name=f"{t['deficit_layer']}: {d['name']}", show=False,
                       style_function=lambda f: {"fillColor": f["properties"]["fill"], "color": "#777",
                                                 "weight": 0.5, "fillOpacity": 0.6},
                       tooltip=folium.GeoJsonTooltip(["residents", "demand", "served", "deficit", "covered"],
                                                     [t["residents"], t["demand"], t["served"], t["deficit"],
                                                      t["covered"]])))
    for f in data.facilities.values():
        rows = [{"geometry": r["geometry"], "name": r["name"] or f["name"], "address": r["address"] or "",
                 "capacity": f"{fmt(r['capacity'], lang, 0)} {r['capacity_unit'] or ''}".strip()} for r in f["rows"]]
        _add(m, drawn, folium.GeoJson(_geojson(rows), name=f"{f['name']} ({len(rows)})",
                       marker=folium.CircleMarker(radius=5, fill=True, fill_opacity=0.9),
                       style_function=lambda _f, c=f["colour"]: {"color": "#263238", "weight": 1, "fillColor": c},
                       popup=folium.GeoJsonPopup(["name", "capacity", "address"],
                                                 [t["name"], t["capacity"], t["address"]])))
    for layer_name, rows in data.optional.items():
        _add(m, drawn, folium.GeoJson(_geojson(rows), name=f"{t['layers'][layer_name]} ({len(rows)})", show=False,
                       marker=folium.CircleMarker(radius=4, fill=True, fill_opacity=0.9),
                       style_function=lambda _f: {"color": "#6a1b9a", "weight": 2, "fillColor": "#ce93d8"},
                       tooltip=folium.GeoJsonTooltip(["label"], [t["name"]])))
    boundary = _geojson([{"geometry": data.territory["geometry"], "name": data.territory["name"]}])
    if boundary["features"]:
        _add(m, drawn, folium.GeoJson(boundary, name=t["boundary"],
                                      style_function=lambda _f: {"color": "#5e3c99", "weight": 2.5, "fill": False,
                                                                 "dashArray": "6 4"}))
    # The boundary when there is one, else whatever was drawn (a region without a boundary: its children).
    bounds = [b for layer in drawn[-1:] if boundary["features"] for b in layer.get_bounds()] or \
        [b for layer in drawn for b in layer.get_bounds() if None not in b]
    if bounds:
        m.fit_bounds([[min(b[0] for b in bounds), min(b[1] for b in bounds)],
                      [max(b[0] for b in bounds), max(b[1] for b in bounds)]])
    if drawn:
        folium.LayerControl(collapsed=False).add_to(m)
    return m


def _add(m: folium.Map, drawn: list[folium.GeoJson], layer: folium.GeoJson) -> None:
    layer.add_to(m)
    if layer.data["features"]:
        drawn.append(layer)


def _table(head: Sequence[str], rows: list[list[str]], attrs: list[str] | None = None) -> str:
    out = ["<table><tr>", *(f"<th>{html.escape(h)}</th>" for h in head), "</tr>"]
    for i, row in enumerate(rows):
        out.append(f"<tr{attrs[i] if attrs else ''}>" + "".join(row) + "</tr>")
    return "".join(out) + "</table>"


def _td(value: str, numeric: bool = False, extra: str = "") -> str:
    return f"<td{' class=n' if numeric else ''}{extra}>{html.escape(value)}</td>"


def _scale(values: Sequence[float], palette: Sequence[str], lang: str, digits: int | None = None) -> str:
    """Swatches of the map's classes with the range they span (the choropleths' legend)."""
    swatches = "".join(f'<span class="swatch" style="background:{c}"></span>' for c in palette)
    lo, hi = (fmt(min(values), lang, digits), fmt(max(values), lang, digits)) if values else ("—", "—")
    span = lo if lo == hi else f"{lo} – {hi}"
    return f"<td>{swatches}{html.escape(span)}</td>"


def _raw(value: float | None) -> str:
    """The unrounded value in a data attribute, so a reader (or a test) can check the printed one."""
    return "" if value is None else repr(value)


def _header(data: ReportData, principal: Principal, lang: str, generated: datetime) -> str:
    t, ter = TEXTS[lang], data.territory
    who = t["anonymous"] if principal.anonymous else principal.describe()
    items = [f"{t['oktmo']}: {ter['oktmo']}", f"{t['date']}: {generated:%Y-%m-%d %H:%M}",
             f"{t['year']}: {data.year or '—'}", f"{t['user']}: {who}"]
    return (f'<header class="cdt-report" id="report-header"><h1>{t["title"]}: {html.escape(ter["name"])}</h1>'
            f'<p class="meta">{" · ".join(html.escape(i) for i in items)} · '
            f'<a href="#sources">{t["sources"]}</a></p></header>')


def _sections(data: ReportData, lang: str) -> str:
    t = TEXTS[lang]
    out = ['<main class="cdt-report">', f'<h2 id="indicators">{t["indicators"]}</h2>']
    if data.indicators:
        where = (f"{t['children']}: {len(data.children)}" if data.children else t["territory_itself"])
        out.append(f'<p class="meta">{html.escape(where)}</p>')
        out.append(_table([t["indicator"], t["value"], t["unit"], t["year"], t["direction"], t["scale"]], [
            [_td(i.name), _td(fmt(i.value, lang), True, f' data-code="{i.code}" data-value="{_raw(i.value)}"'),
             _td(i.unit), _td(str(data.year)), _td(t.get(i.direction, i.direction)),
             _scale(_shown_values(i, _area(data)), CHOROPLETH, lang)] for i in data.indicators]))
    else:
        out.append(f"<p>{t['no_indicators']}</p>")
    out.append(f'<h2 id="deficits">{t["deficits"]}</h2>')
    if data.deficits:
        out.append(_table([t["type"], t["districts"], t["demand"], t["served"], t["deficit"], t["scale"]], [
            [_td(d["name"]), _td(str(len(d["rows"])), True), _td(fmt(d["demand"], lang, 0), True),
             _td(fmt(d["served"], lang, 0), True),
             _td(fmt(d["deficit"], lang, 0), True, f' data-type="{k}" data-deficit="{_raw(d["deficit"])}"'),
             _scale([r["deficit"] for r in d["rows"] if (r["deficit"] or 0) > 0], DEFICIT, lang, 0)]
            for k, d in data.deficits.items()]))
        out.append(f'<p class="meta"><span class="swatch" style="background:{NO_DEFICIT}"></span>'
                   f'{t["no_deficit"]}</p>')
    else:
        out.append(f"<p>{t['no_deficits']}</p>")
    out.append(f'<h2 id="facilities">{t["facilities"]}</h2>')
    total = sum(len(f["rows"]) for f in data.facilities.values())
    rows = [[f'<td><span class="swatch" style="background:{f["colour"]}"></span>{html.escape(f["name"])}</td>',
             _td(str(len(f["rows"])), True, f' data-type="{k}"'),
             _td(fmt(sum(r["capacity"] or 0 for r in f["rows"]), lang, 0), True)] for k, f in data.facilities.items()]
    rows.append([_td(t["total"]), _td(str(total), True, ' id="facilities-total"'), _td("")])
    out.append(_table([t["type"], t["count"], t["capacity"]], rows))
    out.append(f'<h2 id="balance">{t["balance"]}</h2>')
    b = data.balance
    if b:
        whose = t["balance_own"] if b.own else t["balance_region"].format(name=b.meta["territory_name"])
        of = html.escape(f"{whose}, {b.meta['year']}")
        out.append(f'<p class="meta" id="balance-of">{of}</p>')
        out.append(_table([t["indicator"], t["value"], t["unit"]], [
            [_td(t["primary"]), _td(fmt(b.primary, lang, 1), True, ' id="balance-primary"'), _td(t["tce"])],
            [_td(t["final"]), _td(fmt(b.final, lang, 1), True, ' id="balance-final"'), _td(t["tce"])],
            [_td(t["co2"]), _td(fmt(b.co2_t, lang, 0), True, ' id="balance-co2"'), _td(t["t_co2"])]]))
    else:
        out.append(f'<p id="balance-of">{t["no_balance"]}</p>')
    if data.restricted:
        names = ", ".join(t["layers"][n] for n in data.restricted)
        out.append(f'<p class="meta" id="not-shown">{t["not_shown"]}: {html.escape(names)}</p>')
    out.append(f'<h2 id="sources">{t["sources"]}</h2><ul>')
    out += [f"<li>{html.escape(s)}</li>" for s in dict.fromkeys(data.sources)]
    return "".join(out) + "</ul></main>"


def build_report(engine: Engine, principal: Principal, territory_oktmo: str, year: int | None = None,
                 indicators: Sequence[str] | None = None, lang: str = "ru", tiles_url: str | None = None,
                 tiles_attribution: str | None = None) -> str:
    """The report as one standalone HTML page (no network needed unless `tiles_url` adds a base map)."""
    if lang not in LANGS:
        raise InvalidParameterValue(f"lang must be one of {', '.join(LANGS)}, got {lang!r}")
    data = gather(engine, principal, territory_oktmo, year, indicators, lang)
    page = _map(data, lang, tiles_url, tiles_attribution).get_root().render()
    generated = datetime.now().astimezone()
    title = html.escape(f"{TEXTS[lang]['title']}: {data.territory['name']} ({data.territory['oktmo']})")
    page = page.replace("<head>", f'<head>\n<meta charset="utf-8"><title>{title}</title>{STYLE}', 1)
    page = page.replace("<html>", f'<html lang="{lang}">', 1)
    page = page.replace("<body>", "<body>" + _header(data, principal, lang, generated), 1)
    page = page.replace("</body>", _sections(data, lang) + "</body>", 1)
    return inline.standalone(page)
