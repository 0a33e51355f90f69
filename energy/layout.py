"""The layout of a fuel and energy balance (ТЭБ) by Minenergo Order No. 1169 of 29.10.2021, Appendix 1
("Топливно-энергетический баланс субъекта Российской Федерации, муниципального образования").

A balance is a `pandas.DataFrame` of floats in thousand tce: index = ROWS, columns = COLUMNS, NaN = empty cell.
Signs as in the Order and the workbooks: outflow, transformation inputs, own use and losses are negative.

Sources of the rules below:
- [O1169] the Order's Appendix 1 form: rows 1-7 list which cells exist (E11..E17, E110; E21..E24, E28, E210; ...)
  and which are negative ("-E31 (поток расходуется при знаке "минус")"), as quoted at
  consultant.ru/document/cons_doc_LAW_473545 (Приложение N 1, рекомендуемый образец).
- [WB] the Moscow Oblast workbooks 2016-2020 (sheet `Баланс`): row labels, the rows 8-19 and their signs
  (e.g. C13 = -Уголь_пр!B11: fuel burnt in CHPs is negative; K13 = Тепло!B4: heat produced is positive).
- [CDT] our decision where neither says more, stated at the rule.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Column:
    code: str
    number: int  # column number in the Order's form
    ru: str
    en: str


@dataclass(frozen=True)
class Row:
    code: str
    number: str  # row number in the Order's form ("8.1" = sub-row)
    ru: str
    en: str
    parent: str | None = None
    aliases: tuple[str, ...] = ()


COLUMN_DEFS: tuple[Column, ...] = (
    Column("coal", 1, "Уголь", "Coal"),
    Column("crude_oil", 2, "Сырая нефть", "Crude oil"),
    Column("petroleum_products", 3, "Нефтепродукты", "Petroleum products"),
    Column("natural_gas", 4, "Природный газ", "Natural gas"),
    Column("other_solid_fuel", 5, "Прочее твердое топливо", "Other solid fuel"),
    Column("hydro_renewables", 6, "Гидроэнергия и НВИЭ", "Hydro and renewables"),
    Column("nuclear", 7, "Атомная энергия", "Nuclear"),
    Column("electricity", 8, "Электрическая энергия", "Electricity"),
    Column("heat", 9, "Тепловая энергия", "Heat"),
    Column("total", 10, "Всего", "Total"),
)

ROW_DEFS: tuple[Row, ...] = (
    Row("production", "1", "Производство энергетических ресурсов", "Production"),
    Row("inflow", "2", "Ввоз", "Inflow (imports)"),
    Row("outflow", "3", "Вывоз", "Outflow (exports)"),
    Row("stock_change", "4", "Изменение запасов", "Stock change"),
    Row("primary_consumption", "5", "Потребление первичной энергии", "Primary energy consumption"),
    Row("statistical_discrepancy", "6", "Статистическое расхождение", "Statistical discrepancy"),
    Row("electricity_production", "7", "Производство электрической энергии", "Electricity production",
        aliases=("Производство ЭЭ",)),
    Row("heat_production", "8", "Производство тепловой энергии", "Heat production"),
    Row("heat_chp", "8.1", "Теплоэлектростанции", "Combined heat and power plants", "heat_production"),
    Row("heat_boilers", "8.2", "Котельные", "Boiler houses", "heat_production"),
    Row("heat_electric_boilers", "8.3", "Электрокотельные и теплоутилизационные установки",
        "Electric boilers and heat recovery units", "heat_production"),
    Row("fuel_transformation", "9", "Преобразование топлива", "Fuel transformation"),
    Row("oil_refining", "9.1", "Переработка нефти", "Oil refining", "fuel_transformation"),
    Row("gas_processing", "9.2", "Переработка газа", "Gas processing", "fuel_transformation"),
    Row("coal_enrichment", "9.3", "Обогащение угля", "Coal enrichment", "fuel_transformation"),
    Row("own_use", "10", "Собственные нужды", "Own use"),
    Row("losses", "11", "Потери при передаче", "Transmission losses", aliases=("Потери в сетях",)),
    Row("final_consumption", "12", "Конечное потребление энергетических ресурсов", "Final consumption",
        aliases=("Конечное потребление",)),
    Row("agriculture", "13", "Сельское хозяйство, рыболовство и рыбоводство", "Agriculture, fishing",
        "final_consumption", aliases=("Сельское хозяйство",)),
    Row("industry", "14", "Промышленность", "Industry", "final_consumption"),
    Row("industry_mining", "14.1", "Добыча полезных ископаемых", "Mining", "industry",
        aliases=("Добывающая промышленность",)),
    Row("industry_manufacturing", "14.2", "Обрабатывающие производства", "Manufacturing", "industry"),
    Row("industry_energy_supply", "14.3", "Обеспечение электрической энергией, газом и паром; кондиционирование "
        "воздуха", "Electricity, gas and steam supply", "industry",
        aliases=("Обеспечение ЭЭ, газом и паром", "Обеспечение ЭЭ, газом и пром")),
    Row("industry_water_waste", "14.4", "Водоснабжение; водоотведение, организация сбора и утилизации отходов",
        "Water supply, sewerage, waste", "industry",
        aliases=("Водоснабжение, водоотведение, утилизация отходов",)),
    Row("industry_other", "14.5", "Прочая промышленность", "Other industry", "industry",
        ),
    Row("construction", "15", "Строительство", "Construction", "final_consumption"),
    Row("transport", "16", "Транспорт и связь", "Transport and communication", "final_consumption",
        aliases=("Транспортировка, хранение и связь", "Транспортировка и хранение")),
    Row("transport_rail", "16.1", "Железнодорожный", "Rail", "transport"),
    Row("transport_pipeline", "16.2", "Трубопроводный", "Pipeline", "transport"),
    Row("transport_road", "16.3", "Автомобильный", "Road", "transport"),
    Row("transport_other", "16.4", "Прочий транспорт", "Other transport", "transport"),
    Row("services", "17", "Сфера услуг", "Services", "final_consumption"),
    Row("households", "18", "Население", "Households", "final_consumption"),
    Row("non_energy", "19", "Использование топливно-энергетических ресурсов в качестве сырья и на нетопливные нужды",
        "Non-energy use", "final_consumption", aliases=("Неэнергетические нужды",)),
    # [WB] "Прочее" is the workbooks' own last row, counted in final consumption (Тепло!B18 = B19+...+B35).
    Row("other", "20", "Прочее", "Other", "final_consumption"),
)

ROWS: tuple[str, ...] = tuple(r.code for r in ROW_DEFS)
COLUMNS: tuple[str, ...] = tuple(c.code for c in COLUMN_DEFS)
CARRIER_COLUMNS: tuple[str, ...] = COLUMNS[:-1]
ROW = {r.code: r for r in ROW_DEFS}
COLUMN = {c.code: c for c in COLUMN_DEFS}

# Rows a carrier sheet has that the consolidated balance does not (they are sub-totals or split rows).
SHEET_ONLY_ROWS: dict[str, str] = {
    "power_and_heat_inputs": "Производство ЭЭ и ТЭ",  # fuel for electricity + heat, a sheet sub-total
    "hydro_generation": "в том числе Гидро",  # Электро: hydro output; -> production of hydro_renewables
    "heat_recovery": "В теплоутилизационных и прочих установках",  # summed into heat_electric_boilers (K15)
    "power_plants": "Электростанции",  # Пр-й газ: gas of all power plants (electricity + CHP heat)
    "storage_and_communication": "Хранение и связь",  # Коксовый газ: transport minus its modes
    # Электро/Тепло "Потреблено всего" = production + inflow - outflow: not row 5, which excludes row 7/8 output.
    "total_supply": "Потреблено всего (электроэнергия, тепло)",
}

# Carrier-sheet labels that mean something else than in the consolidated sheet, or only exist there.
SHEET_LABELS: dict[str, str] = {
    "выработано": "production",
    "получено из-за пределов области": "inflow",
    "отпущено за пределы области": "outflow",
    "потреблено всего": "primary_consumption",
    "стат.расхождение": "statistical_discrepancy",
    "производство электроэнергии": "electricity_production",
    "производство тепла": "heat_production",
    "электростанциями": "heat_chp",
    "котельными": "heat_boilers",
    "электрокотельные": "heat_electric_boilers",
    "в электрокотлах": "heat_electric_boilers",
    "электрокотельные и теплоутилизационные установки": "heat_electric_boilers",
    "потери в сетях": "losses",
    "потери при передаче": "losses",
}


def normalize_label(label: object) -> str:
    """Lower case, ё -> е, no soft hyphens or line-break hyphens ("Нефте-продукты"), single spaces."""
    text = str(label or "").replace("\xa0", " ").replace("ё", "е").replace("Ё", "Е").lower()
    text = re.sub(r"(\w)-\s*(\w)", r"\1\2", text) if re.search(r"[а-я]-[а-я]", text) else text
    text = re.sub(r"\s*([,.;])\s*", r"\1 ", text)
    return re.sub(r"\s+", " ", text).strip(" .,")


_ROW_BY_LABEL: dict[str, str] = {}
for _r in ROW_DEFS:
    for _label in (_r.ru, _r.en, *_r.aliases):
        _ROW_BY_LABEL[normalize_label(_label)] = _r.code
_SHEET_BY_LABEL = {normalize_label(k): v for k, v in SHEET_LABELS.items()}
_SHEET_BY_LABEL.update({normalize_label(v): k for k, v in SHEET_ONLY_ROWS.items()})
_COLUMN_BY_LABEL = {normalize_label(c.ru): c.code for c in COLUMN_DEFS} | {
    normalize_label("Гидро-энергия и НВИЭ"): "hydro_renewables",
    normalize_label("Прочее твёрдое топливо"): "other_solid_fuel",
    normalize_label("Электро-энергия"): "electricity",
}


def row_code(label: object, sheet: bool = False) -> str | None:
    """The row code of a label of the consolidated sheet (or, with sheet=True, of a carrier sheet); None if unknown."""
    key = normalize_label(label)
    if sheet and key in _SHEET_BY_LABEL:
        return _SHEET_BY_LABEL[key]
    return _ROW_BY_LABEL.get(key)


def fuzzy_row_code(label: object, sheet: bool = False) -> str | None:
    """The row code of a misspelt label ("Промышленнсть", "Добыча полезных ископамых"); None if nothing is close.
    Only for reading workbooks, where every match is reported as a defect."""
    key = normalize_label(label)
    table = (_SHEET_BY_LABEL | _ROW_BY_LABEL) if sheet else _ROW_BY_LABEL
    match = difflib.get_close_matches(key, list(table), n=1, cutoff=0.8)
    return table[match[0]] if match else None


def column_code(label: object) -> str | None:
    key = normalize_label(label)
    return _COLUMN_BY_LABEL.get(key) or next((c.code for c in COLUMN_DEFS if c.code == key), None)


def children(row: str) -> list[str]:
    """Direct sub-rows of a row (a parent is the sum of its children)."""
    return [r.code for r in ROW_DEFS if r.parent == row]


def empty_balance() -> pd.DataFrame:
    """All cells empty (NaN), rows and columns in the Order's order."""
    return pd.DataFrame(np.nan, index=pd.Index(ROWS, name="row"), columns=pd.Index(COLUMNS, name="column"),
                        dtype=float)


def zero_balance() -> pd.DataFrame:
    return empty_balance().fillna(0.0)


# --- Which cells the form has ---------------------------------------------------------------------------------
# [O1169] rows 1-7: the cells the form lists, by column number (10 = total).
_FORM_CELLS: dict[str, set[int]] = {
    "production": {1, 2, 3, 4, 5, 6, 7, 10},
    "inflow": {1, 2, 3, 4, 8, 10},
    "outflow": {1, 2, 3, 4, 8, 10},
    "stock_change": {1, 2, 3, 4, 10},
    "primary_consumption": {1, 2, 3, 4, 5, 6, 7, 8, 10},
    "statistical_discrepancy": {1, 2, 3, 4, 5, 8, 9, 10},
    "electricity_production": {1, 2, 3, 4, 5, 6, 7, 8, 10},
}
# [CDT] from row 8 on: hydro and nuclear energy exist only as primary production turned into electricity in
# row 7 (physical energy content method), so they have no cells in heat production, transformation or use.
_NO_PRIMARY_ELECTRIC = {6, 7}


def form_has_cell(row: str, column: str) -> bool:
    """False for a cell the Order's form does not have (a value there is a defect, not an error)."""
    number = COLUMN[column].number
    if row in _FORM_CELLS:
        return number in _FORM_CELLS[row]
    return number not in _NO_PRIMARY_ELECTRIC


_HEAT_ROWS = {"heat_production", "heat_chp", "heat_boilers", "heat_electric_boilers"}
_NEGATIVE_ROWS = {"outflow", "fuel_transformation", "oil_refining", "gas_processing", "coal_enrichment",
                  "own_use", "losses"}
# [O1169] row 9: a transformation's own product comes out positive; the net of the row may have either sign.
_TRANSFORMATION_OUTPUT = {("oil_refining", "petroleum_products"), ("gas_processing", "natural_gas"),
                          ("coal_enrichment", "coal")}


def expected_sign(row: str, column: str) -> int | None:
    """+1 or -1: the sign a non-zero value must have in this cell; None: either (stock change, discrepancy,
    a transformation's own product, totals of mixed rows)."""
    if row in ("stock_change", "statistical_discrepancy") or column == "total":
        return None
    if row == "electricity_production":  # [O1169] -E71..-E77, +E78
        return 1 if column == "electricity" else -1
    if row in _HEAT_ROWS:  # [WB] fuel inputs negative (C13 = -Уголь_пр!B11), heat output positive (K13)
        return 1 if column == "heat" else -1
    if (row, column) in _TRANSFORMATION_OUTPUT:
        return None
    if row in _NEGATIVE_ROWS:  # [O1169] -E31 ...; [WB] own use and losses negative (J20 = -Электро!B18)
        return -1
    return 1
