"""Indicator time series in the layout of Rosstat's municipal database (База данных показателей муниципальных
образований, БД ПМО, rosstat.gov.ru/dbscripts/munst): a pure parser, no SQL.

БД ПМО shows a query as a table whose rows and columns are the query's dimensions (Показатель, Муниципальное
образование / ОКТМО, Год, Период, ...) and exports it to Excel or CSV. CDT reads the two shapes of that table an
analyst gets by putting the years in the columns (wide) or in the rows (long).

Accepted files: ``.csv`` (delimiter ``;``, ``,`` or tab, detected; UTF-8 with or without BOM, else cp1251) and
``.xlsx`` (the first sheet that holds the table). Old ``.xls`` is refused: save it as ``.xlsx``.

A file is a header block, then one table:

* Header block: any rows above the table's header row (title, date of the export, notes). Two of them are read:
  ``Показатель: <name>`` and ``Единица измерения: <unit>`` (text after the colon, or in the next cell) give the
  indicator and unit of every row when the table has no such column (an export of one indicator, which БД ПМО
  prints above the table).
* Header row: the first of the first 50 rows with a cell ``ОКТМО``. Column names are matched without regard to
  case, ``ё``/``е``, extra spaces or a trailing colon or full stop:

  ================================================  ===========================================================
  column                                            content
  ================================================  ===========================================================
  ``ОКТМО`` (``Код ОКТМО``, ``Код по ОКТМО``)      required: 8 digits (a municipality) or 11 (a settlement);
                                                    a code that lost its leading zero in Excel (7 or 10 digits)
                                                    is padded
  ``Показатель`` (``Наименование показателя``)      required unless the header block names it; an empty cell
                                                    repeats the indicator above (merged cells of an export)
  ``Единица измерения`` (``Ед. изм.``)              optional; repeated down with its indicator
  ``Муниципальное образование`` (``Наименование     optional, kept as written
  муниципального образования``, ``Территория``)
  ``Период``                                        optional; must be yearly (``значение показателя за год``,
                                                    ``на 1 января``, ``год``, ...) or empty
  ``Тип значения`` (``Вид значения``)               optional: ``факт``/``оценка`` = actual,
                                                    ``прогноз`` = forecast, ``план``/``целевое`` = target
  ================================================  ===========================================================

  then either (wide) one column per year, named ``2020``, ``2020 г.`` or ``2020 год``, optionally with a value
  type: ``2025 (прогноз)``, ``2025 план`` (a value there in a row of another ``Тип значения`` is a problem);
  or (long) the columns ``Год`` and ``Значение`` (``Значение показателя``), one row per year. Both at once is
  refused as ambiguous. Other columns are ignored.

Value cells: numbers with spaces (also no-break and thin spaces) as thousand separators and a comma or a full
stop as the decimal separator (``1 234,5``, ``1234.5``, ``−5,2``); ``-``, ``–``, ``—``, ``…``, ``...``, ``х``
(not applicable), ``н/д`` or an empty cell mean "no value". Anything else is a problem of the file. Rows with no
OKTMO and no value (blank lines, group headings, footnotes) are skipped.

An indicator maps to a CDT indicator code by an explicit mapping (the name as written in the file, or the same
name up to case and spaces, to the code) or else by the deterministic slug ``bdmo_<name>`` transliterated by ICAO
Doc 9303 (the system of Russian international passports: plain ASCII, no context rules), cut to 80 characters
with a hash suffix when longer.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from layers.errors import InvalidParameterValue

CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,79}$")
CODE_MAX = 80
SLUG_PREFIX = "bdmo_"
HEADER_SEARCH_ROWS = 50
YEARS = range(1990, 2101)

# ICAO Doc 9303 (7th ed., 2015), the Cyrillic table for Russian.
ICAO = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i",
    "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t",
    "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "ie", "ы": "y", "ь": "",
    "э": "e", "ю": "iu", "я": "ia",
}

# Column roles by their normalised names.
COLUMNS = {
    "oktmo": ("октмо", "код октмо", "код по октмо", "oktmo"),
    "indicator": ("показатель", "наименование показателя", "indicator"),
    "unit": ("единица измерения", "ед. изм", "ед.изм", "ед изм", "unit"),
    "municipality": ("муниципальное образование", "наименование муниципального образования", "территория",
                     "municipality"),
    "period": ("период", "period"),
    "value_type": ("тип значения", "вид значения", "value type", "value_type"),
    "year": ("год", "year"),
    "value": ("значение", "значение показателя", "value"),
}
ROLE_OF = {name: role for role, names in COLUMNS.items() for name in names}

MISSING = frozenset({"", "-", "–", "—", "…", "...", "х", "x", "н/д"})
# Value types by the words a file uses; "оценка" is Rosstat's preliminary estimate of a past year: an actual.
VALUE_TYPE_WORDS = {
    "факт": "actual", "фактическое": "actual", "отчет": "actual", "оценка": "actual", "actual": "actual",
    "прогноз": "forecast", "прогнозное": "forecast", "forecast": "forecast",
    "план": "target", "плановое": "target", "целевое": "target", "целевое значение": "target", "цель": "target",
    "target": "target",
}
YEARLY_PERIOD = re.compile(r"^$|год|на 1 января|на начало года|на конец года|за год|январь\s*-\s*декабрь")
YEAR_HEADER = re.compile(r"^(\d{4})(?:\.0)?\s*(?:г\.?|год)?\s*\(?\s*([а-яa-z ]*?)\s*\)?$")
NUMBER = re.compile(r"^[+-]?\d+(?:[.,]\d+)?$")
SPACES = re.compile(r"[\s\u00a0\u2007\u2009\u202f]+")


@dataclass(frozen=True)
class BdmoRecord:
    """One value cell: `row` is the file's line (CSV) or sheet row (XLSX), 1-based; `value` None: no value."""

    row: int
    column: str
    indicator: str
    unit: str | None
    oktmo: str
    municipality: str | None
    year: int
    value: float | None
    value_type: str | None  # None: the file does not say


@dataclass(frozen=True)
class Problem:
    row: int
    column: str | None
    reason: str

    def to_dict(self) -> dict:
        return {"row": self.row, "column": self.column,
                "reason": f"{self.column}: {self.reason}" if self.column else self.reason}


@dataclass
class BdmoTable:
    path: Path
    layout: str  # "wide" or "long"
    header_block: list[str]
    records: list[BdmoRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def indicators(self) -> dict[str, str | None]:
        """Indicator names as written, in file order, with their units."""
        return {r.indicator: r.unit for r in self.records}

    def oktmos(self) -> list[str]:
        return sorted({r.oktmo for r in self.records})

    def codes(self, mapping: Mapping[str, str] | None = None) -> dict[str, str]:
        """The CDT indicator code of each indicator; a mapping entry naming no indicator of the file is refused
        (a typo would otherwise silently create a new indicator)."""
        names = list(self.indicators())
        known = {normalise(n) for n in names}
        stray = [k for k in (mapping or {}) if normalise(k) not in known]
        if stray:
            raise InvalidParameterValue(
                f"the mapping names {', '.join(repr(s) for s in stray)}, not an indicator of {self.path.name} "
                f"(it has: {'; '.join(names) or 'none'})")
        return {n: indicator_code(n, mapping) for n in names}


# --- names and codes -------------------------------------------------------------------------------------------
def normalise(text: str) -> str:
    """Lower case, ё = е, spaces collapsed, no trailing colon or full stop: how column and indicator names match."""
    return SPACES.sub(" ", text).strip().lower().replace("ё", "е").rstrip(":.").strip()


def transliterate(text: str) -> str:
    """Russian text in Latin letters by ICAO Doc 9303; other characters unchanged."""
    return "".join(ICAO.get(ch, ch) for ch in text.lower())


def indicator_code(name: str, mapping: Mapping[str, str] | None = None) -> str:
    """The mapped code of an indicator, else `bdmo_<transliterated name>`; a slug over 80 characters is cut and
    ends in 8 hex digits of the name's SHA-1, so distinct long names stay distinct and the code is stable."""
    wanted = normalise(name)
    for key, code in (mapping or {}).items():
        if key == name or normalise(key) == wanted:
            if not CODE_RE.match(code):
                raise InvalidParameterValue(f"indicator code {code!r} (for {name!r}) must match {CODE_RE.pattern}")
            return code
    slug = re.sub(r"[^a-z0-9]+", "_", transliterate(wanted)).strip("_")
    code = SLUG_PREFIX + slug
    if len(code) <= CODE_MAX and slug:
        return code
    digest = hashlib.sha1(wanted.encode()).hexdigest()[:8]
    return f"{code[:CODE_MAX - len(digest) - 1].rstrip('_')}_{digest}"


# --- cells ------------------------------------------------------------------------------------------------------
def cell_text(cell: object) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return SPACES.sub(" ", str(cell)).strip()


def parse_number(cell: object) -> float | None:
    """A value cell as a number, None for a missing-value mark; ValueError for anything else."""
    if isinstance(cell, bool):
        raise ValueError(f"{cell!r} is not a number")
    if isinstance(cell, int | float):
        return float(cell)
    text = cell_text(cell)
    if text.lower() in MISSING:
        return None
    compact = SPACES.sub("", text).replace("−", "-")
    if not NUMBER.match(compact):
        raise ValueError(f"{text!r} is not a number")
    return float(compact.replace(",", "."))


def parse_oktmo(cell: object) -> str | None:
    """8 or 11 digits; a code Excel stored as a number (leading zero lost) is padded back."""
    text = SPACES.sub("", cell_text(cell))
    if not text.isdigit():
        return None
    if len(text) in (7, 10):
        text = "0" + text
    return text if len(text) in (8, 11) else None


def value_type_of(text: str) -> str | None:
    return VALUE_TYPE_WORDS.get(normalise(text)) if text else None


def year_column(header: str) -> tuple[int, str | None] | None:
    """(year, value type) of a wide year column's name, None if it is not one."""
    match = YEAR_HEADER.match(normalise(header))
    if not match or int(match.group(1)) not in YEARS:
        return None
    word = match.group(2).strip()
    kind = value_type_of(word)
    if word and kind is None:
        return None
    return int(match.group(1)), kind


# --- reading rows -----------------------------------------------------------------------------------------------
Rows = list[tuple[int, list[object]]]


def decode(data: bytes, name: str) -> str:
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1251")
    except UnicodeDecodeError:
        raise InvalidParameterValue(f"{name} is neither UTF-8 nor cp1251 text") from None


def csv_rows(text: str, delimiter: str) -> Rows:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        return [(reader.line_num, list(row)) for row in reader]
    except csv.Error as exc:
        raise InvalidParameterValue(f"not a CSV file: line {reader.line_num}: {exc}") from None


def read_csv_rows(path: Path) -> Rows:
    """The rows with the delimiter whose header row has the most columns (indicator names and decimal commas make
    counting delimiters unreliable)."""
    text = decode(path.read_bytes(), path.name)
    best: Rows = []
    best_width = 0
    for delimiter in (";", ",", "\t"):
        rows = csv_rows(text, delimiter)
        at = find_header(rows)
        width = sum(1 for c in rows[at][1] if cell_text(c)) if at is not None else 0
        if width > best_width:
            best, best_width = rows, width
    return best or csv_rows(text, ";")


def read_xlsx_rows(path: Path) -> Rows:
    """The rows of the first sheet that holds a header row."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError, ... for a damaged or foreign file
        raise InvalidParameterValue(f"{path.name} is not a readable .xlsx workbook: {exc}") from None
    try:
        first: Rows = []
        for sheet in book.worksheets:
            rows = [(n, list(values)) for n, values in enumerate(sheet.iter_rows(values_only=True), start=1)]
            if find_header(rows) is not None:
                return rows
            first = first or rows
        return first
    finally:
        book.close()


def find_header(rows: Rows) -> int | None:
    for i, (_, cells) in enumerate(rows[:HEADER_SEARCH_ROWS]):
        if any(ROLE_OF.get(normalise(cell_text(c))) == "oktmo" for c in cells):
            return i
    return None


# --- the table --------------------------------------------------------------------------------------------------
@dataclass
class Layout:
    """Where everything is: role -> column index, wide year columns, indicator/unit from the header block."""

    roles: dict[str, int]
    names: list[str]
    years: dict[int, tuple[int, str | None]]  # column index -> (year, value type)
    indicator: str | None
    unit: str | None

    @property
    def kind(self) -> str:
        return "long" if "year" in self.roles else "wide"

    def value_columns(self) -> list[int]:
        return [self.roles["value"]] if self.kind == "long" else list(self.years)


def block_fact(block: Rows, label: str) -> str | None:
    """`label: text` (one cell) or `label` | `text` (two cells) in the header block."""
    for _, cells in block:
        texts = [cell_text(c) for c in cells if cell_text(c)]
        if not texts:
            continue
        head, _, rest = texts[0].partition(":")
        if normalise(head) == label:
            value = rest.strip() or (texts[1] if len(texts) > 1 else "")
            if value:
                return value
    return None


def layout_of(path: Path, header: list[object], block: Rows) -> Layout:
    names = [cell_text(c) for c in header]
    roles: dict[str, int] = {}
    years: dict[int, tuple[int, str | None]] = {}
    for i, name in enumerate(names):
        role = ROLE_OF.get(normalise(name))
        if role and role not in roles:
            roles[role] = i
        elif not role and (year := year_column(name)):
            years[i] = year
    found = f"found: {', '.join(repr(n) for n in names if n) or 'nothing'}"
    long = "year" in roles or "value" in roles
    if long and not ("year" in roles and "value" in roles):
        missing = "'Значение'" if "year" in roles else "'Год'"
        raise InvalidParameterValue(f"{path.name}: a long table needs columns 'Год' and 'Значение', {missing} is "
                                    f"missing ({found})")
    if long and years:
        raise InvalidParameterValue(f"{path.name}: both year columns and 'Год'/'Значение' columns: wide or long? "
                                    f"({found})")
    if not long and not years:
        raise InvalidParameterValue(f"{path.name}: no year columns (such as '2020' or '2020 г.') and no 'Год' and "
                                    f"'Значение' columns ({found})")
    indicator = None if "indicator" in roles else block_fact(block, "показатель")
    if "indicator" not in roles and not indicator:
        raise InvalidParameterValue(f"{path.name}: no column 'Показатель' and no line 'Показатель: ...' above the "
                                    f"table ({found})")
    unit = None if "unit" in roles else block_fact(block, "единица измерения")
    return Layout(roles, names, years, indicator, unit)


def read_bdmo(path: Path) -> BdmoTable:
    """Parse a БД ПМО export (see the module docstring). A file not in the layout raises InvalidParameterValue
    naming what is missing; a file in the layout with bad cells returns them as `problems`."""
    path = Path(path)
    if not path.is_file():
        raise InvalidParameterValue(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = read_csv_rows(path)
    elif suffix == ".xlsx":
        rows = read_xlsx_rows(path)
    else:
        raise InvalidParameterValue(f"{path.name}: a БД ПМО export must be .csv or .xlsx (an old .xls: save it as "
                                    f".xlsx), not {suffix or 'a file without extension'}")
    at = find_header(rows)
    if at is None:
        raise InvalidParameterValue(f"{path.name}: no column 'ОКТМО' in the first {HEADER_SEARCH_ROWS} rows; a БД ПМО "
                                    f"export needs the municipalities' OKTMO codes")
    block = rows[:at]
    layout = layout_of(path, rows[at][1], block)
    table = BdmoTable(path, layout.kind, [" ".join(cell_text(c) for c in cells if cell_text(c)) for _, cells in block])
    table.records, table.problems = parse_rows(rows[at + 1:], layout)
    table.problems += consistency_problems(table.records)
    return table


def parse_rows(rows: Rows, layout: Layout) -> tuple[list[BdmoRecord], list[Problem]]:
    records: list[BdmoRecord] = []
    problems: list[Problem] = []
    indicator, unit = layout.indicator, layout.unit
    width = len(layout.names)
    for number, raw in rows:
        cells = list(raw) + [None] * (width - len(raw))
        if "indicator" in layout.roles and (name := cell_text(cells[layout.roles["indicator"]])):
            indicator, unit = name, layout.unit  # a new indicator: not the previous one's unit
        if "unit" in layout.roles and (text := cell_text(cells[layout.roles["unit"]])):
            unit = text
        records_of_row, problems_of_row = parse_row(number, cells, layout, indicator, unit)
        records += records_of_row
        problems += problems_of_row
    return records, problems


def parse_row(number: int, cells: list[object], layout: Layout, indicator: str | None,
              unit: str | None) -> tuple[list[BdmoRecord], list[Problem]]:
    roles = layout.roles
    oktmo_cell = cells[roles["oktmo"]]
    blank = all(cell_text(cells[i]) == "" for i in layout.value_columns())
    oktmo = parse_oktmo(oktmo_cell)
    if oktmo is None:
        # Blank lines, group headings and footnotes carry no values: skipped, not problems.
        if blank:
            return [], []
        return [], [Problem(number, layout.names[roles["oktmo"]],
                            f"{cell_text(oktmo_cell)!r} is not an OKTMO code (8 or 11 digits)")]
    if indicator is None:
        return [], [Problem(number, None, "no indicator: the column 'Показатель' is empty above this row")]
    problems = []
    if "period" in roles and not YEARLY_PERIOD.search(normalise(cell_text(cells[roles["period"]]))):
        problems.append(Problem(number, layout.names[roles["period"]],
                                f"{cell_text(cells[roles['period']])!r} is not a yearly value"))
    row_type = None
    if "value_type" in roles and (text := cell_text(cells[roles["value_type"]])):
        row_type = value_type_of(text)
        if row_type is None:
            problems.append(Problem(number, layout.names[roles["value_type"]],
                                    f"{text!r} is not a value type (факт, оценка, прогноз, план, целевое)"))
    if problems:
        return [], problems
    municipality = (cell_text(cells[roles["municipality"]]) or None) if "municipality" in roles else None
    records = []
    for column, year, kind, cell in year_cells(number, cells, layout, problems):
        try:
            value = parse_number(cell)
        except ValueError as exc:
            problems.append(Problem(number, layout.names[column], str(exc)))
            continue
        if kind and row_type and kind != row_type and value is not None:
            problems.append(Problem(number, layout.names[column], f"the column says {kind}, the row {row_type}"))
            continue
        records.append(BdmoRecord(number, layout.names[column], indicator, unit, oktmo, municipality, year, value,
                                  kind or row_type))
    return records, problems


def year_cells(number: int, cells: list[object], layout: Layout,
               problems: list[Problem]) -> Iterator[tuple[int, int, str | None, object]]:
    """(column, year, value type of the column, cell) of a row's values."""
    if layout.kind == "wide":
        for column, (year, kind) in layout.years.items():
            yield column, year, kind, cells[column]
        return
    column = layout.roles["year"]
    found = year_column(cell_text(cells[column]))
    if found is None:
        problems.append(Problem(number, layout.names[column], f"{cell_text(cells[column])!r} is not a year"))
        return
    yield layout.roles["value"], found[0], found[1], cells[layout.roles["value"]]


def consistency_problems(records: Iterable[BdmoRecord]) -> list[Problem]:
    """One unit per indicator; one value per indicator, OKTMO, year and value type (a repeat with the same value
    is harmless, e.g. a municipality listed under two headings, and so is a repeat with no value)."""
    problems = []
    units: dict[str, tuple[str | None, int]] = {}
    seen: dict[tuple, BdmoRecord] = {}
    for r in records:
        unit, first = units.setdefault(r.indicator, (r.unit, r.row))
        if unit != r.unit and r.unit is not None and unit is not None:
            problems.append(Problem(r.row, None, f"{r.indicator!r} in {r.unit!r} here, in {unit!r} at row {first}"))
        key = (r.indicator, r.oktmo, r.year, r.value_type)
        if r.value is not None and key in seen and seen[key].value != r.value:
            problems.append(Problem(r.row, r.column, f"{r.oktmo} {r.year} again, with {r.value} here and "
                                                     f"{seen[key].value} at row {seen[key].row}"))
        if r.value is not None:
            seen.setdefault(key, r)
    return problems
