"""How each layer is drawn on the map: a base symbol and, optionally, a classification by one attribute.

The map client draws vector tiles and GeoJSON from these and builds its legends from them, so a style and
its legend cannot disagree. Categories of facility types come from `cdt.facility_types` (a new type is a
row, and gets a colour from the palette); functional zones use the classifier of Order No. 10 (2018).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from layers.models.masterplan import FUNCTIONAL_ZONE_TYPES, PLAN_STATUSES
from layers.models.utilities import UTILITY_KINDS
from layers.registry import Layer

# Colour-blind-safe qualitative palette (Okabe-Ito, then Tableau 10) for categories without their own colour.
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#4e79a7", "#f28e2b",
           "#59a14f", "#b07aa1", "#9c755f", "#76b7b2", "#edc948", "#ff9da7", "#bab0ac")

# Conventional master-plan colours (residential warm, business red, industry violet, green green ...).
ZONE_COLOURS = {
    "residential": "#f4c542", "business": "#e4572e", "industrial": "#8e6cbf", "engineering": "#7f7f7f",
    "transport": "#a0a0a0", "agricultural": "#c8d96f", "recreation": "#7cc47f", "green": "#3a9d48",
    "protected": "#1b7837", "special": "#8c564b", "regime": "#5d4037", "water": "#6baed6", "other": "#d9d9d9",
}
ZONE_LABELS_EN = {
    "residential": "Residential", "business": "Public and business", "industrial": "Industrial",
    "engineering": "Engineering infrastructure", "transport": "Transport infrastructure",
    "agricultural": "Agricultural", "recreation": "Recreation", "green": "Public green space",
    "protected": "Specially protected", "special": "Special purpose", "regime": "Regime territories",
    "water": "Water areas", "other": "Other",
}
# Zoning (ПЗЗ) zones are coded by letter: Ж residential, О public/business, П industrial, Р recreation,
# Т transport, И engineering, СХ agricultural, СН special.
ZONING_PREFIXES = (("Ж", "Residential", "Жилые", "#f4c542"), ("О", "Public and business", "Общественно-деловые",
                   "#e4572e"), ("П", "Industrial", "Производственные", "#8e6cbf"),
                   ("Р", "Recreation", "Рекреационные", "#7cc47f"), ("Т", "Transport", "Транспортные", "#a0a0a0"),
                   ("И", "Engineering", "Инженерные", "#7f7f7f"), ("СХ", "Agricultural", "Сельскохозяйственные",
                   "#c8d96f"), ("СН", "Special purpose", "Специального назначения", "#8c564b"))
UTILITY_COLOURS = {"heat": "#d62728", "power": "#ff7f0e", "gas": "#bcbd22", "water": "#1f77b4", "sewer": "#8c564b"}
UTILITY_LABELS_RU = {"heat": "Теплосеть", "power": "Электросеть", "gas": "Газопровод", "water": "Водопровод",
                     "sewer": "Канализация"}
STATUS_LABELS_RU = {"existing": "Существующий", "planned": "Планируемый", "reconstruction": "Реконструкция"}
# 15-minute score (share of daily needs within 15 minutes on foot), red to green.
SCORE_CLASSES = ((0, 19.99, "0–20", "#d7191c"), (20, 39.99, "20–40", "#fdae61"), (40, 59.99, "40–60", "#ffffbf"),
                 (60, 79.99, "60–80", "#a6d96a"), (80, 100, "80–100", "#1a9641"))
# Deficit of places per district: none, then growing.
DEFICIT_CLASSES = ((-1e9, 0.5, "0", "#edf8e9"), (0.5, 50, "1–50", "#fcbba1"), (50, 200, "50–200", "#fb6a4a"),
                   (200, 500, "200–500", "#de2d26"), (500, 1e9, "500+", "#a50f15"))
FLOOR_CLASSES = ((0, 2, "1–2", "#fee8c8"), (3, 5, "3–5", "#fdbb84"), (6, 9, "6–9", "#fc8d59"),
                 (10, 16, "10–16", "#e34a33"), (17, 200, "17+", "#b30000"))


def _categories(prop: str, items: list[tuple[str, str, str, str]], other: str = "#bdbdbd", match: str = "exact"
                ) -> dict:
    return {"property": prop, "type": "categorical", "match": match, "other": other,
            "categories": [{"value": v, "label": en, "label_ru": ru, "color": c} for v, en, ru, c in items]}


def _facility_categories(conn: Connection) -> dict:
    rows = conn.execute(text("SELECT code, name_en, name_ru FROM cdt.facility_types ORDER BY sector, code")).all()
    return _categories("type_code", [(code, en, ru, PALETTE[i % len(PALETTE)]) for i, (code, en, ru) in
                                     enumerate(rows)])


def _static_styles() -> dict[str, dict]:
    zones = _categories("zone_type", [(k, ZONE_LABELS_EN[k], ru, ZONE_COLOURS[k]) for k, ru in
                                      FUNCTIONAL_ZONE_TYPES.items()])
    utilities = _categories("kind", [(k, k.capitalize(), UTILITY_LABELS_RU[k], UTILITY_COLOURS[k])
                                     for k in UTILITY_KINDS])
    return {
        "territories": {"kind": "line", "color": "#5e3c99", "weight": 2, "dash": "6 4", "label": "name"},
        "parcels": {"kind": "fill", "color": "#8d6e63", "fill": "#d7ccc8", "opacity": 0.25, "weight": 1,
                    "label": "cadastral_number"},
        "buildings": {"kind": "fill", "color": "#6d4c41", "fill": "#fdbb84", "opacity": 0.8, "weight": 0.5,
                      "by": {"property": "floors", "type": "graduated", "other": "#e0e0e0",
                             "classes": [{"min": lo, "max": hi, "label": lab, "color": c}
                                         for lo, hi, lab, c in FLOOR_CLASSES]}},
        "street_nodes": {"kind": "point", "color": "#616161", "radius": 2},
        "street_edges": {"kind": "line", "color": "#9e9e9e", "weight": 1.5, "label": "name"},
        "utility_nodes": {"kind": "point", "color": "#424242", "radius": 5, "by": utilities, "label": "name"},
        "utility_lines": {"kind": "line", "color": "#424242", "weight": 2.5, "by": utilities},
        "functional_zones": {"kind": "fill", "color": "#555555", "opacity": 0.45, "weight": 1, "by": zones,
                             "label": "name"},
        "planned_facilities": {"kind": "point", "color": "#000000", "radius": 7, "opacity": 0.9, "weight": 2,
                               "dash": "4 3", "label": "name",
                               "by": _categories("status", [(s, s.capitalize(), STATUS_LABELS_RU[s], c) for s, c
                                                            in zip(PLAN_STATUSES, ("#757575", "#d81b60",
                                                                                   "#fb8c00"), strict=True)])},
        "zoning_zones": {"kind": "fill", "color": "#37474f", "opacity": 0.35, "weight": 1, "label": "zone_code",
                         "by": _categories("zone_code", [(p, en, ru, c) for p, en, ru, c in ZONING_PREFIXES],
                                           match="prefix")},
        "walk_access": {"kind": "fill", "color": "#555555", "opacity": 0.85, "weight": 0.3,
                        "by": {"property": "score_15min", "type": "graduated", "other": "#bdbdbd",
                               "classes": [{"min": lo, "max": hi, "label": lab, "color": c}
                                           for lo, hi, lab, c in SCORE_CLASSES]}},
        "service_provision": {"kind": "fill", "color": "#7f0000", "opacity": 0.6, "weight": 0.5,
                              "by": {"property": "deficit", "type": "graduated", "other": "#f0f0f0",
                                     "classes": [{"min": lo, "max": hi, "label": lab, "color": c}
                                                 for lo, hi, lab, c in DEFICIT_CLASSES]}},
        "water": {"kind": "fill", "color": "#4a90c2", "fill": "#a6cee3", "opacity": 0.9, "weight": 1, "label": "name"},
        "railways": {"kind": "line", "color": "#424242", "weight": 2, "dash": "8 4", "label": "name"},
    }


def style(conn: Connection, layer: Layer) -> dict:
    """The layer's map style (see the module docstring); a neutral symbol for layers without one."""
    if layer.name == "facilities":
        return {"kind": "point", "color": "#263238", "radius": 6, "opacity": 0.95, "weight": 1, "label": "name",
                "by": _facility_categories(conn)}
    fallback = {"kind": "fill", "color": "#607d8b", "opacity": 0.4, "weight": 1}
    return _static_styles().get(layer.name, fallback)
