"""Statistical forms (4-ТЭР, 22-ЖКХ, 6-ТП, 1-ТЭП, 4-запасы, 23-Н, 46-ЭЭ) entered through CSV templates:
one line per (balance row code, carrier, value, unit). Every bad line is reported with its line number and
column; nothing is returned unless the whole file is valid. Templates: energy/templates/ (see its README.md)."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

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


def parse_form_csv(source: str | Path, form: str) -> list[FormLine]:
    """Parse a filled template. Raises InvalidParameterValue listing every bad line ("line 7, column value: ...")."""
    form = form_name(form)
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and Path(source).exists()):
        name, body = Path(source).name, Path(source).read_text(encoding="utf-8-sig")
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
    allowed = FORMS[form]
    errors: list[str] = []
    out: list[FormLine] = []
    for (number, _), rec in zip(lines[1:], reader, strict=False):
        problems = []
        row = (rec.get("row_code") or "").strip()
        code = row if row in layout.ROW else layout.row_code(row)
        if code is None:
            problems.append(f"column row_code: unknown balance row {row!r}")
        c = carrier((rec.get("carrier") or "").strip())
        if c is None:
            problems.append(f"column carrier: unknown carrier {rec.get('carrier')!r} (known: {', '.join(CARRIERS)})")
        elif allowed is not None and c.code not in allowed:
            problems.append(f"column carrier: form {form} does not report {c.code}")
        raw = (rec.get("value") or "").strip().replace(",", ".").replace(" ", "")
        try:
            value = float(raw)
            if math.isnan(value) or math.isinf(value):
                raise ValueError
        except ValueError:
            problems.append(f"column value: {rec.get('value')!r} is not a number")
            value = None
        unit = (rec.get("unit") or "").strip()
        tce = None
        if value is not None and code is not None and value < 0 and code not in SIGNED_ROWS:
            problems.append(f"column value: {value:g} is negative; only {', '.join(sorted(SIGNED_ROWS))} may be "
                            "(give magnitudes, the balance applies the signs)")
        if value is not None and c is not None:
            try:
                tce = to_thousand_tce(value, unit, c.code)
            except ValueError as exc:
                problems.append(f"column unit: {exc}")
        if problems:
            errors.extend(f"line {number}, {p}" for p in problems)
        elif code is not None and c is not None and tce is not None:
            natural = None if abs(tce - value) < 1e-12 and unit.lower().startswith("тыс. т у") else value
            out.append(FormLine(number, code, c.code, tce, natural, unit))
    if errors:
        raise InvalidParameterValue(f"{name} ({form}): {len(errors)} error(s): " + "; ".join(errors), errors=errors)
    return out


def write_templates(directory: Path = TEMPLATES) -> list[Path]:
    """(Re)write the CSV template of every form: header, a comment on units, one example line."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for form, stem in FILE_NAMES.items():
        example = {"23-Н": ("households", "electricity", "10330350", "МВт·ч"),
                   "46-ЭЭ": ("losses", "electricity", "860.37", "тыс. т у.т."),
                   "1-ТЭП": ("households", "heat", "36772", "тыс. Гкал")}.get(
            form, ("heat_boilers", "natural_gas", "8982.3", "млн м3"))
        path = directory / f"{stem}.csv"
        path.write_text(f"# Form {form}: one line per balance row and carrier; see README.md\n"
                        f"{','.join(FIELDS)}\n{','.join(example)}\n", encoding="utf-8")
        written.append(path)
    return written
