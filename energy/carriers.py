"""Energy carriers: natural units and coefficients to tonnes of coal equivalent (tce), each with its source.

1 tce = 7 Gcal = 29.3076 GJ. Coefficients are versioned: a balance records the `COEFFICIENT_SET` it used, so a
later change of a coefficient never silently re-values a stored balance.

Sources:
- [ROSSTAT-CAL] Rosstat's table "Калорийные эквиваленты отдельных видов топлива для пересчета в тонны условного
  топлива" (appendix to the guidelines for the fuel statistics forms; text at docs.cntd.ru/document/456023496):
  мазут топочный 1.37, топливо печное бытовое 1.45, топливо дизельное 1.45, бензин автомобильный 1.49,
  нефть 1.43, газ горючий природный 1.154 per 1,000 m³, газ сжиженный 1.57, газ коксовый 0.57 per 1,000 m³,
  кокс металлургический 0.99, торф топливный 0.34 (tce per tonne unless stated).
- [ROSSTAT-TEB] Rosstat's fuel and energy balance methodology (physical energy content): electricity
  0.1229 tce/MWh (= 860 kcal/kWh / 7,000 kcal/kgce), heat 0.1429 tce/Gcal (= 1/7).
- [ROSSTAT-4T] Rosstat's appendix "Калорийные эквиваленты некоторых видов топлива" to the form 4-топливо
  (docs.cntd.ru/document/901908331, superseded from the 2009 report; no later value found): wood of old
  buildings, sleepers, poles 0.266 tce per dense m³. Used for firewood for want of a current value.
- Coal and wood pellets: no single Rosstat coefficient (coal depends on the basin and grade; pellets are not in
  the tables found), so `tce_per_unit` is None and such values must be given in tce.
"""

from __future__ import annotations

from dataclasses import dataclass

COEFFICIENT_SET = "rosstat-2019.1"
TCE_GJ = 29.3076
TCE_GCAL = 7.0


@dataclass(frozen=True)
class Carrier:
    code: str
    name_ru: str
    name_en: str
    balance_column: str  # the consolidated balance column it belongs to
    natural_unit: str | None
    tce_per_unit: float | None
    coefficient_source: str
    sheets: tuple[str, ...] = ()  # names of its sheet in the workbooks
    parent: str | None = None  # the aggregate carrier whose sheet sums this one
    coefficient_set: str = COEFFICIENT_SET


_CAL = "[ROSSTAT-CAL] Rosstat, calorific equivalents table (docs.cntd.ru/document/456023496)"
_TEB = "[ROSSTAT-TEB] Rosstat fuel and energy balance methodology, physical energy content"
_NONE = "no single Rosstat coefficient; give values in thousand tce"

CARRIER_DEFS: tuple[Carrier, ...] = (
    Carrier("electricity", "Электрическая энергия", "Electricity", "electricity", "MWh", 0.1229, _TEB, ("Электро",)),
    Carrier("heat", "Тепловая энергия", "Heat", "heat", "Gcal", 0.1429, _TEB, ("Тепло",)),
    Carrier("natural_gas", "Природный газ", "Natural gas", "natural_gas", "1000 m3", 1.154, _CAL, ("Пр-й газ",)),
    Carrier("crude_oil", "Нефть, включая газовый конденсат", "Crude oil", "crude_oil", "t", 1.43, _CAL),
    Carrier("coal_and_products", "Уголь и продукты переработки угля", "Coal and coal products", "coal", None, None,
            "aggregate of coal, coke and coke oven gas (sheet Уголь_пр sums them)", ("Уголь_пр",)),
    Carrier("coal", "Уголь", "Coal", "coal", "t", None,
            "depends on the basin and grade; " + _NONE, ("Уголь",), "coal_and_products"),
    Carrier("coke", "Кокс металлургический", "Coke", "coal", "t", 0.99, _CAL, ("Кокс",), "coal_and_products"),
    Carrier("coke_oven_gas", "Газ горючий искусственный коксовый", "Coke oven gas", "coal", "1000 m3", 0.57, _CAL,
            ("Коксовый газ",), "coal_and_products"),
    Carrier("petroleum_products", "Нефтепродукты", "Petroleum products", "petroleum_products", None, None,
            "aggregate of gasoline, diesel, fuel oil, heating oil and LPG (sheet Нефтепродукты sums them)",
            ("Нефтепродукты",)),
    Carrier("gasoline", "Бензин автомобильный", "Motor gasoline", "petroleum_products", "t", 1.49, _CAL,
            ("Бензин",), "petroleum_products"),
    Carrier("diesel", "Топливо дизельное", "Diesel fuel", "petroleum_products", "t", 1.45, _CAL, ("Дизель",),
            "petroleum_products"),
    Carrier("fuel_oil", "Мазут топочный", "Fuel oil", "petroleum_products", "t", 1.37, _CAL, ("Мазут",),
            "petroleum_products"),
    Carrier("heating_oil", "Топливо печное бытовое", "Domestic heating oil", "petroleum_products", "t", 1.45, _CAL,
            ("ТПБ",), "petroleum_products"),
    Carrier("lpg", "Газ сжиженный (СУГ)", "Liquefied petroleum gas", "petroleum_products", "t", 1.57, _CAL,
            ("СУГ",), "petroleum_products"),
    Carrier("other_solid_fuel", "Прочее твердое топливо", "Other solid fuel", "other_solid_fuel", None, None,
            "aggregate of other solid fuel, pellets and wood (sheet ПТТ sums them)", ("ПТТ",)),
    Carrier("other_solid_fuel_misc", "Прочее твердое топливо (торф и др.)", "Other solid fuel (peat etc.)",
            "other_solid_fuel", "t", None, "mixture of fuels; " + _NONE, ("Пр.тв.т.",), "other_solid_fuel"),
    Carrier("peat", "Торф топливный", "Fuel peat", "other_solid_fuel", "t", 0.34, _CAL, (), "other_solid_fuel"),
    Carrier("pellets", "Пеллеты (топливные гранулы)", "Wood pellets", "other_solid_fuel", "t", None,
            "not in the Rosstat tables found; " + _NONE, ("Пеллеты",), "other_solid_fuel"),
    Carrier("wood", "Древесина (дрова)", "Firewood", "other_solid_fuel", "dense m3", 0.266,
            "[ROSSTAT-4T] Rosstat, form 4-топливо appendix (docs.cntd.ru/document/901908331), superseded",
            ("Древесина",), "other_solid_fuel"),
    Carrier("hydro_renewables", "Гидроэнергия и НВИЭ", "Hydro and renewables", "hydro_renewables", "MWh", 0.1229,
            _TEB + " (primary electricity counted at its energy content)"),
    Carrier("nuclear", "Атомная энергия", "Nuclear", "nuclear", "MWh", 0.1229,
            _TEB + " (primary electricity counted at its energy content)"),
)

CARRIERS: dict[str, Carrier] = {c.code: c for c in CARRIER_DEFS}


def _key(name: str) -> str:
    return " ".join(name.replace("\xa0", " ").split()).lower()


_BY_SHEET = {_key(s): c for c in CARRIER_DEFS for s in c.sheets}
_BY_NAME = {_key(n): c for c in CARRIER_DEFS for n in (c.code, c.name_ru, c.name_en)}


def carrier_for_sheet(sheet: str) -> Carrier | None:
    return _BY_SHEET.get(_key(sheet))


def carrier(name: str) -> Carrier | None:
    """A carrier by code, Russian or English name, or workbook sheet name (case and spaces ignored)."""
    key = _key(name)
    return _BY_NAME.get(key) or _BY_SHEET.get(key)


# Units a value may be given in, as (natural unit, multiplier to that unit). "тыс. т у.т." is always accepted.
TCE_UNITS = {"тыс. т у.т.", "тыс.т у.т.", "тыс. тут", "thousand tce", "ktce"}
UNIT_ALIASES: dict[str, tuple[str, float]] = {
    "t": ("t", 1.0), "т": ("t", 1.0), "тыс. т": ("t", 1e3), "thousand t": ("t", 1e3),
    "1000 m3": ("1000 m3", 1.0), "тыс. м3": ("1000 m3", 1.0), "тыс. куб. м": ("1000 m3", 1.0),
    "млн м3": ("1000 m3", 1e3), "млн. куб. м": ("1000 m3", 1e3),
    "mwh": ("MWh", 1.0), "мвт·ч": ("MWh", 1.0), "мвт*ч": ("MWh", 1.0), "тыс. квт·ч": ("MWh", 1.0),
    "тыс. квт*ч": ("MWh", 1.0), "млн квт·ч": ("MWh", 1e3), "млн квт*ч": ("MWh", 1e3), "gwh": ("MWh", 1e3),
    "gcal": ("Gcal", 1.0), "гкал": ("Gcal", 1.0), "тыс. гкал": ("Gcal", 1e3), "thousand gcal": ("Gcal", 1e3),
    "dense m3": ("dense m3", 1.0), "плотн. м3": ("dense m3", 1.0), "пл. м3": ("dense m3", 1.0),
}


def to_thousand_tce(value: float, unit: str, carrier_code: str) -> float:
    """Convert a value in `unit` to thousand tce with the carrier's coefficient.
    Raises ValueError with a reason when the unit does not fit the carrier or no coefficient exists."""
    unit_key = _key(unit)
    if unit_key in {_key(u) for u in TCE_UNITS}:
        return value
    c = CARRIERS[carrier_code]
    if unit_key not in UNIT_ALIASES:
        raise ValueError(f"unknown unit {unit!r}")
    natural, multiplier = UNIT_ALIASES[unit_key]
    if natural != c.natural_unit:
        expected = c.natural_unit or "thousand tce only"
        raise ValueError(f"unit {unit!r} does not fit {carrier_code} (natural unit: {expected}; or тыс. т у.т.)")
    if c.tce_per_unit is None:
        raise ValueError(f"{carrier_code} has no tce coefficient ({c.coefficient_source}); give the value in "
                         "тыс. т у.т.")
    return value * multiplier * c.tce_per_unit / 1000.0
