"""Indicator time series in PostGIS: import a БД ПМО export (planning.rosstat) in one transaction, read a series.

An import is all or nothing: a file with a bad cell, an OKTMO that is not among the territories (unless
`skip_unknown`) or two values for the same key changes nothing. Indicators the database does not know are
registered as kind 'series'. Values are upserted on (indicator, territory, year, value type, base scenario): a
re-import of the same file changes no row, a corrected file updates the values that differ. Missing-value marks
("-", "…", empty) are not written: a gap in a new export must not erase a value an earlier one had.

OKTMO codes match territories exactly. An 11-digit code is a settlement and its 8-digit prefix the municipality
the settlement lies in, which for a town in a municipal district is the district: matching by prefix would put a
town's figures on its whole district, so it is not done.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from layers.db import reader, transaction
from layers.errors import InvalidParameterValue, NotFound
from layers.models.planning import VALUE_TYPES
from planning.rosstat import BdmoRecord, BdmoTable, Problem, read_bdmo, transliterate

SHOWN_PROBLEMS = 5


def provenance(path: Path) -> str:
    return f"Росстат, БД ПМО: {path.name}"


def source(path: Path) -> str:
    return f"rosstat-bdmo:{path.name}"


def refusal(path: Path, problems: Sequence[Problem], what: str, hint: str = "") -> InvalidParameterValue:
    shown = "; ".join(f"row {p.row}" + (f", column {p.column!r}" if p.column else "") + f": {p.reason}"
                      for p in problems[:SHOWN_PROBLEMS])
    more = f" (and {len(problems) - SHOWN_PROBLEMS} more)" if len(problems) > SHOWN_PROBLEMS else ""
    return InvalidParameterValue(f"{path.name}: nothing written, {what} ({len(problems)}): {shown}{more}{hint}",
                                 problems=[p.to_dict() for p in problems])


def check_value_type(value_type: str) -> None:
    if value_type not in VALUE_TYPES:
        raise InvalidParameterValue(f"value type must be one of {', '.join(VALUE_TYPES)}, not {value_type!r}")


# --- import -----------------------------------------------------------------------------------------------------
def import_series(engine: Engine, path: str | Path, actor: str, mapping: Mapping[str, str] | None = None,
                  value_type: str = "actual", *, skip_unknown: bool = False) -> dict:
    """Import a БД ПМО export; `value_type` is for rows the file gives no type. Returns the report: indicators
    (codes, created), territories, values inserted / updated / unchanged / missing, years, skipped OKTMO."""
    check_value_type(value_type)
    path = Path(path)
    table = read_bdmo(path)
    if table.problems:
        raise refusal(path, table.problems, "problems in the file")
    codes = table.codes(mapping)
    with transaction(engine, actor) as conn:
        territories = territory_ids(conn, table.oktmos())
        unknown = [o for o in table.oktmos() if o not in territories]
        if unknown and not skip_unknown:
            raise refusal(path, unknown_problems(table.records, unknown), "OKTMO codes not among the territories",
                          ". Load those territories first, or skip them (skip_unknown; the CLI: --skip-unknown)")
        keep = [r for r in table.records if r.oktmo in territories]
        rows = value_rows(path, keep, codes, territories, value_type)
        kept = {name: code for name, code in codes.items() if any(r.indicator == name for r in keep)}
        created, warnings = register_indicators(conn, table, kept, path, actor)
        inserted, updated = upsert_values(conn, rows, source(path))
    years = sorted({r.year for r in keep if r.value is not None})
    return {
        "file": path.name, "layout": table.layout, "source": source(path),
        "indicators": len(set(codes.values())), "indicator_codes": codes, "indicators_created": created,
        "territories": len({r.oktmo for r in keep}),
        "values_inserted": inserted, "values_updated": updated, "values_unchanged": len(rows) - inserted - updated,
        "values_missing": sum(1 for r in keep if r.value is None),
        "years": [years[0], years[-1]] if years else None,
        "skipped_oktmo": unknown, "warnings": warnings,
    }


def territory_ids(conn: Connection, oktmos: list[str]) -> dict[str, int]:
    found = conn.execute(text("SELECT oktmo, id FROM cdt.territories WHERE oktmo = ANY(:oktmos)"), {"oktmos": oktmos})
    return dict(found.all())


def unknown_problems(records: Iterable[BdmoRecord], unknown: list[str]) -> list[Problem]:
    first: dict[str, BdmoRecord] = {}
    for r in records:
        if r.oktmo in unknown:
            first.setdefault(r.oktmo, r)
    return [Problem(r.row, None, f"OKTMO {r.oktmo}" + (f" ({r.municipality})" if r.municipality else "")
                    + " is not a territory") for r in sorted(first.values(), key=lambda r: r.row)]


def value_rows(path: Path, records: list[BdmoRecord], codes: Mapping[str, str], territories: Mapping[str, int],
               value_type: str) -> list[dict]:
    """One row per stored key; two indicators of the file mapped to one code must not give it two values."""
    rows: dict[tuple, dict] = {}
    clashes = []
    for r in records:
        if r.value is None:
            continue
        key = (codes[r.indicator], territories[r.oktmo], r.year, r.value_type or value_type)
        row = {"code": key[0], "territory": key[1], "period": date(r.year, 1, 1), "type": key[3], "value": r.value,
               "at": r.row}
        if key in rows and rows[key]["value"] != r.value:
            clashes.append(Problem(r.row, r.column, f"{key[0]} {r.oktmo} {r.year} {key[3]} has {r.value} here and "
                                                    f"{rows[key]['value']} at row {rows[key]['at']}"))
        rows.setdefault(key, row)
    if clashes:
        raise refusal(path, clashes, "values given twice")
    return list(rows.values())


def register_indicators(conn: Connection, table: BdmoTable, codes: Mapping[str, str], path: Path,
                        actor: str) -> tuple[list[str], list[str]]:
    """Create the indicators the database lacks (kind 'series', aggregation 'none': how a Rosstat figure adds up
    over territories is not known); warn where a known one has another unit."""
    units = table.indicators()
    known = dict(conn.execute(text("SELECT code, unit FROM cdt.indicators WHERE code = ANY(:codes)"),
                              {"codes": list(set(codes.values()))}).all())
    created, warnings = [], []
    for name, code in codes.items():
        unit = units[name] or ""
        if code in known:
            if unit and known[code] and unit != known[code]:
                warnings.append(f"{code}: the file gives {name!r} in {unit!r}, the indicator is in {known[code]!r}")
            continue
        conn.execute(text(
            "INSERT INTO cdt.indicators (code, name_ru, name_en, unit, kind, direction, aggregation, periodicity, "
            "provenance, description, builtin, created_by) VALUES (:code, :name, :name_en, :unit, 'series', "
            "'neutral', 'none', 'year', :provenance, :description, false, :actor) ON CONFLICT (code) DO NOTHING"),
            {"code": code, "name": name, "name_en": transliterate(name).capitalize(), "unit": unit,
             "provenance": provenance(path), "actor": actor,
             "description": "Imported from Rosstat's municipal database; name_en is the Russian name transliterated "
                            "(ICAO Doc 9303), not a translation."})
        known[code] = unit
        created.append(code)
    return created, warnings


UPSERT = text("""
INSERT INTO cdt.indicator_values AS v (indicator_code, territory_id, period, value_type, scenario_id, value, source)
SELECT u.code, u.territory, u.period, u.type, NULL, u.value, :source
FROM unnest(CAST(:codes AS text[]), CAST(:territories AS integer[]), CAST(:periods AS date[]),
            CAST(:types AS text[]), CAST(:values AS double precision[])) AS u(code, territory, period, type, value)
ON CONFLICT (indicator_code, territory_id, period, value_type, scenario_id) DO UPDATE
SET value = EXCLUDED.value, source = EXCLUDED.source, computed_at = now()
WHERE v.value IS DISTINCT FROM EXCLUDED.value OR v.source IS DISTINCT FROM EXCLUDED.source
RETURNING xmax = 0 AS inserted
""")


def upsert_values(conn: Connection, rows: list[dict], source_name: str) -> tuple[int, int]:
    """(inserted, updated): a row whose value and source are already as given is left alone (not returned)."""
    if not rows:
        return 0, 0
    columns = {name: [r[key] for r in rows] for name, key in
               (("codes", "code"), ("territories", "territory"), ("periods", "period"), ("types", "type"),
                ("values", "value"))}
    # xmax = 0 marks a freshly inserted row version; an updated one carries the updating transaction's id.
    flags = conn.execute(UPSERT, {**columns, "source": source_name}).scalars().all()
    inserted = sum(1 for f in flags if f)
    return inserted, len(flags) - inserted


# --- read -------------------------------------------------------------------------------------------------------
def read_series(engine: Engine, indicator_code: str, territory_ids: list[int] | None = None,
                value_types: Sequence[str] | None = None, scenario_id: int | None = None) -> list[dict]:
    """The values of an indicator (base values, or a scenario's), ordered by territory, year and value type:
    {territory_id, oktmo, territory, period (the year), value_type, value, source}."""
    for value_type in value_types or ():
        check_value_type(value_type)
    with reader(engine).connect() as conn:
        if conn.execute(text("SELECT 1 FROM cdt.indicators WHERE code = :code"), {"code": indicator_code}).first() \
                is None:
            raise NotFound(f"no indicator {indicator_code!r}")
        rows = conn.execute(text(
            "SELECT v.territory_id, t.oktmo, t.name AS territory, CAST(extract(year FROM v.period) AS integer) AS "
            "period, v.value_type, v.value, v.source FROM cdt.indicator_values v "
            "JOIN cdt.territories t ON t.id = v.territory_id "
            "WHERE v.indicator_code = :code AND v.scenario_id IS NOT DISTINCT FROM CAST(:scenario AS integer) "
            "AND (CAST(:territories AS integer[]) IS NULL OR v.territory_id = ANY(CAST(:territories AS integer[]))) "
            "AND (CAST(:types AS text[]) IS NULL OR v.value_type = ANY(CAST(:types AS text[]))) "
            "ORDER BY v.territory_id, v.period, v.value_type"),
            {"code": indicator_code, "scenario": scenario_id,
             "territories": list(territory_ids) if territory_ids is not None else None,
             "types": list(value_types) if value_types is not None else None})
        return [dict(r) for r in rows.mappings()]
