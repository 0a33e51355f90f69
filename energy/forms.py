"""Statistical forms (4-ТЭР, 22-ЖКХ, 6-ТП, 1-ТЭП, 4-запасы, 23-Н, 46-ЭЭ) entered through CSV or XLSX templates:
one line per (balance row code, carrier, value, unit). Every bad line is reported with its line number and
column; nothing is returned unless the whole file is valid. Templates: energy/templates/ (see its README.md)."""

from __future__ import annotations

import csv
import io
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import openpyxl
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet.datavalidation import DataValidation

from energy import layout
from energy.carriers import CARRIERS, carrier, to_thousand_tce
from layers.errors import InvalidParameterValue

TEMPLATES = Path(__file__).resolve().parent / "templates"
FIELDS = ("row_code", "carrier", "value", "unit")
# Form -> carriers it reports (None = any). The forms' scope: 23-Н and 46-ЭЭ are electricity statistics,
# 1-ТЭП is heat supply; the others report fuels and energy of many kinds.
FORMS: dict[str, frozenset[str] | None] = {
    "4-ТЭР": None, "22-ЖКХ": None, "6-ТП": None, "1-ТЭП": frozenset({"heat"}), "4-запасы": None,
    "23-Н": frozenset({"electricity", "hydro_renewables"}), "46-ЭЭ": frozenset({"electricity"}),
}
FILE_NAMES = {"4-ТЭР": "4-TER", "22-ЖКХ": "22-ZhKKh", "6-ТП": "6-TP", "1-ТЭП": "1-TEP", "4-запасы": "4-zapasy",
              "23-Н": "23-N", "46-ЭЭ": "46-EE"}
# Rows whose value may be negative: a stock change, a discrepancy. Everything else is reported as a magnitude,
# as on the workbooks' carrier sheets; the balance applies the Order's signs.
SIGNED_ROWS = frozenset({"stock_change", "statistical_discrepancy"})


@dataclass(frozen=True)
class FormLine:
    line: int
    row_code: str
    carrier: str
    value: float  # thousand tce
    value_natural: float | None
    unit: str


def form_name(name: str) -> str:
    """The canonical form name ('1-ТЕП' and '1-ТЭП', '4-Запасы' and '4-запасы' are the same form)."""
    key = name.strip().upper().replace("Е", "Э").replace("TEP", "ТЭП").replace(" ", "")
    for f in FORMS:
        if f.upper().replace("Е", "Э") == key:
            return f
    raise InvalidParameterValue(f"unknown statistical form {name!r}; known: {', '.join(FORMS)}")


def _parse_value(raw: object) -> float:
    """A number from a CSV text or an XLSX cell ("8 982,3" and 8982.3 alike). Raises ValueError."""
    if isinstance(raw, bool) or raw is None:
        raise ValueError
    value = float(raw) if isinstance(raw, (int, float)) else float(
        str(raw).strip().replace(",", ".").replace(" ", "").replace("\xa0", ""))
    if math.isnan(value) or math.isinf(value):
        raise ValueError
    return value


def _validate(records: list[tuple[int, str, dict, dict]], name: str, form: str) -> list[FormLine]:
    """The one validation of CSV and XLSX forms. records: (line, where, {field: raw value}, {field: cell}) per
    line, `where` = "line 7" (CSV) or "sheet '4-ТЭР', row 7" (XLSX); the cell ("C7") is added to the column."""
    allowed = FORMS[form]
    errors: list[str] = []
    out: list[FormLine] = []
    for number, where, rec, cells in records:
        problems = []

        def col(field: str, cells: dict = cells) -> str:
            return f"column {field}" + (f" ({cells[field]})" if field in cells else "")

        row = str(rec.get("row_code") or "").strip()
        code = row if row in layout.ROW else layout.row_code(row)
        if code is None:
            problems.append(f"{col('row_code')}: unknown balance row {row!r}")
        c = carrier(str(rec.get("carrier") or "").strip())
        if c is None:
            problems.append(f"{col('carrier')}: unknown carrier {rec.get('carrier')!r} (known: {', '.join(CARRIERS)})")
        elif allowed is not None and c.code not in allowed:
            problems.append(f"{col('carrier')}: form {form} does not report {c.code}")
        raw = rec.get("value")
        try:
            value: float | None = _parse_value(raw)
        except (ValueError, TypeError):
            value = None
            if raw is None or not str(raw).strip():  # an XLSX formula has no value unless Excel saved the file
                problems.append(f"{col('value')}: empty (a formula's value is stored only when Excel or LibreOffice "
                                "saves the file)")
            else:
                problems.append(f"{col('value')}: {raw!r} is not a number")
        unit = str(rec.get("unit") or "").strip()
        tce = None
        if value is not None and code is not None and value < 0 and code not in SIGNED_ROWS:
            problems.append(f"{col('value')}: {value:g} is negative; only {', '.join(sorted(SIGNED_ROWS))} may be "
                            "(give magnitudes, the balance applies the signs)")
        if value is not None and c is not None:
            try:
                tce = to_thousand_tce(value, unit, c.code)
            except ValueError as exc:
                problems.append(f"{col('unit')}: {exc}")
        if problems:
            errors.extend(f"{where}, {p}" for p in problems)
        elif code is not None and c is not None and tce is not None and value is not None:
            natural = None if abs(tce - value) < 1e-12 and unit.lower().startswith("тыс. т у") else value
            out.append(FormLine(number, code, c.code, tce, natural, unit))
    if errors:
        raise InvalidParameterValue(f"{name} ({form}): {len(errors)} error(s): " + "; ".join(errors), errors=errors)
    return out


def parse_form_csv(source: str | Path, form: str) -> list[FormLine]:
    """Parse a filled template. Raises InvalidParameterValue listing every bad line ("line 7, column value: ...")."""
    form = form_name(form)
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and Path(source).exists()):
        name = Path(source).name
        try:
            body = Path(source).read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidParameterValue(f"{name}: not a UTF-8 CSV form ({exc.reason} at byte {exc.start}); save the "
                                        "template as CSV UTF-8, or use the .xlsx template") from exc
    else:
        name, body = "<text>", str(source)
    lines = [(n, ln) for n, ln in enumerate(body.splitlines(), 1) if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise InvalidParameterValue(f"{name}: empty form {form}")
    reader = csv.DictReader(io.StringIO("\n".join(ln for _, ln in lines)))
    missing = [f for f in FIELDS if f not in (reader.fieldnames or [])]
    if missing:
        raise InvalidParameterValue(f"{name}, line {lines[0][0]}: header lacks {', '.join(missing)} "
                                    f"(expected {','.join(FIELDS)})")
    records = [(number, f"line {number}", rec, {}) for (number, _), rec in zip(lines[1:], reader, strict=False)]
    return _validate(records, name, form)


def parse_form_xlsx(source: str | Path | bytes, form: str) -> list[FormLine]:
    """Parse a filled XLSX template: its first sheet, the header row (row_code, carrier, value, unit) is the first
    row that is not empty nor a `#` comment; one line per row below. Errors name the sheet, the row and the cell
    ("sheet '4-ТЭР', row 7, column value (C7): 'ten' is not a number"); nothing is returned unless all is valid."""
    form = form_name(form)
    name = "<bytes>" if isinstance(source, bytes) else Path(source).name
    try:
        wb = openpyxl.load_workbook(io.BytesIO(source) if isinstance(source, bytes) else source, data_only=True,
                                    read_only=True)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, InvalidFileException) as exc:
        raise InvalidParameterValue(f"{name}: not a readable .xlsx form ({exc})") from exc
    try:
        ws = wb.worksheets[0]
        rows = [(r, list(values)) for r, values in enumerate(ws.iter_rows(values_only=True), 1)]
    finally:
        wb.close()
    sheet = f"sheet {ws.title!r}"
    rows = [(r, v) for r, v in rows if any(x is not None and str(x).strip() for x in v)
            and not str(v[0] if v else "").lstrip().startswith("#")]
    if not rows:
        raise InvalidParameterValue(f"{name}, {sheet}: empty form {form}")
    header_row, header = rows[0]
    columns = {str(h).strip(): i for i, h in enumerate(header) if h is not None and str(h).strip()}
    missing = [f for f in FIELDS if f not in columns]
    if missing:
        raise InvalidParameterValue(f"{name}, {sheet}, row {header_row}: header lacks {', '.join(missing)} "
                                    f"(expected {', '.join(FIELDS)} in the first row that is not a # comment)")
    records = []
    for r, values in rows[1:]:
        rec = {f: values[i] if i < len(values) else None for f, i in columns.items() if f in FIELDS}
        cells = {f: f"{get_column_letter(columns[f] + 1)}{r}" for f in FIELDS}
        records.append((r, f"{sheet}, row {r}", rec, cells))
    return _validate(records, name, form)


def parse_form_file(path: str | Path, form: str) -> list[FormLine]:
    """A filled template by its extension: .csv or .xlsx (an .xls must be saved as .xlsx first)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidParameterValue(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return parse_form_csv(path, form)
    if suffix in (".xlsx", ".xlsm"):
        return parse_form_xlsx(path, form)
    hint = "; save the .xls as .xlsx" if suffix == ".xls" else ""
    raise InvalidParameterValue(f"{path.name}: a form file must be .csv (UTF-8) or .xlsx, not "
                                f"{suffix or 'no extension'}{hint}")


# One example line per template (the same in the CSV and the XLSX version).
EXAMPLES: dict[str, tuple[str, str, str, str]] = {
    "23-Н": ("households", "electricity", "10330350", "МВт·ч"),
    "46-ЭЭ": ("losses", "electricity", "860.37", "тыс. т у.т."),
    "1-ТЭП": ("households", "heat", "36772", "тыс. Гкал"),
}
DEFAULT_EXAMPLE = ("heat_boilers", "natural_gas", "8982.3", "млн м3")
REFERENCE_SHEET = "Справочник"


# The natural units as people write them (all are keys of carriers.UNIT_ALIASES, which ignores case).
UNIT_SPELLINGS = {"t": ("т", "тыс. т"), "1000 m3": ("тыс. м3", "млн м3"), "MWh": ("МВт·ч", "тыс. кВт·ч", "млн кВт·ч"),
                  "Gcal": ("Гкал", "тыс. Гкал"), "dense m3": ("пл. м3",)}


def _units(code: str) -> list[str]:
    c = CARRIERS[code]
    own = UNIT_SPELLINGS.get(c.natural_unit or "", ()) if c.tce_per_unit is not None else ()
    return ["тыс. т у.т.", *own]


def write_xlsx_template(path: Path, form: str) -> Path:
    """The XLSX template of a form: sheet <form> (a # comment row, the header row, the example line; drop-down
    lists of the row codes, carriers and units, as warnings since Russian labels are accepted too) and a
    reference sheet with every row code, carrier and accepted unit."""
    form = form_name(form)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = form
    ws.append([f"# Форма {form}: одна строка на строку баланса и энергоноситель; строки с # не читаются; "
               f"коды и единицы: лист «{REFERENCE_SHEET}», energy/templates/README.md"])
    ws.append(list(FIELDS))
    for cell in ws[2]:
        cell.font = Font(bold=True)
    row, carrier_code, value, unit = EXAMPLES.get(form, DEFAULT_EXAMPLE)
    ws.append([row, carrier_code, float(value), unit])
    for col, width in zip("ABCD", (28, 22, 16, 16), strict=True):
        ws.column_dimensions[col].width = width
    ws.freeze_panes = "A3"
    ref = wb.create_sheet(REFERENCE_SHEET)
    ref.append(["row_code", "строка баланса (№ по приказу № 1169)", "carrier", "энергоноситель", "unit"])
    for cell in ref[1]:
        cell.font = Font(bold=True)
    carriers = [c for c in CARRIERS if FORMS[form] is None or c in FORMS[form]]
    units = sorted({u for c in carriers for u in _units(c)}, key=lambda u: (u != "тыс. т у.т.", u))
    for i in range(max(len(layout.ROWS), len(carriers), len(units))):
        r = layout.ROW[layout.ROWS[i]] if i < len(layout.ROWS) else None
        c = CARRIERS[carriers[i]] if i < len(carriers) else None
        ref.append([r.code if r else None, f"{r.number}. {r.ru}" if r else None, c.code if c else None,
                    c.name_ru if c else None, units[i] if i < len(units) else None])
    for col, width in zip("ABCDE", (24, 60, 22, 36, 14), strict=True):
        ref.column_dimensions[col].width = width
    for col, ref_col, count in (("A", "A", len(layout.ROWS)), ("B", "C", len(carriers)), ("D", "E", len(units))):
        dv = DataValidation(type="list", formula1=f"'{REFERENCE_SHEET}'!${ref_col}$2:${ref_col}${count + 1}",
                            allow_blank=True, errorStyle="warning", showErrorMessage=True,
                            error="Нет в справочнике: проверьте код (русские названия тоже принимаются)")
        dv.add(f"{col}3:{col}1000")
        ws.add_data_validation(dv)
    wb.save(path)
    return path


def write_templates(directory: Path = TEMPLATES) -> list[Path]:
    """(Re)write the CSV and XLSX template of every form: header, a comment, one example line."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for form, stem in FILE_NAMES.items():
        example = EXAMPLES.get(form, DEFAULT_EXAMPLE)
        path = directory / f"{stem}.csv"
        path.write_text(f"# Form {form}: one line per balance row and carrier; see README.md\n"
                        f"{','.join(FIELDS)}\n{','.join(example)}\n", encoding="utf-8")
        written.append(path)
        written.append(write_xlsx_template(directory / f"{stem}.xlsx", form))
    return written
