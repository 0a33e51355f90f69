"""Rosstat municipal database (БД ПМО) exports: the parser, the import into cdt.indicator_values, the CLI.

Where the numbers come from: there is no Rosstat file in the repository, so the test files are written here, in
the БД ПМО layout (planning.rosstat), from real data: `data/russia/cities.csv` (hflabs/city, DaData, issued
2021-10-11, CC BY-SA 4.0). Every value is the `population` column of the city's row (people; the file does not
state its reference date, we file it under 2021, the release year) or that number in thousands rounded to one
decimal (the second indicator, to have decimal commas). The other year columns hold Rosstat's missing-value marks
("…", "-", empty) and are expected to write nothing. The only number not in cities.csv is the deliberate
correction (population + 1) of the re-import test, which checks that an update lands.

Which cities: those whose municipality is a territory of the demo database. cities.csv gives 11-digit OKTMO codes:
the settlement (e.g. 19701000001, the town of Vologda); its first 8 digits are the municipality the settlement lies
in. For a city with no `area` (district) in cities.csv that municipality is the city's own urban okrug (19701000),
the territory the demo loads (layers.ingest.territories does the same), so the file gives the 8-digit code. For a
town inside a municipal district the prefix is the district, and its population is not the district's: such rows
are left out, never matched by prefix. The unknown-OKTMO tests add the first city of cities.csv whose
municipality is not a territory.

Values and the hand-made parser examples below the database tests are illustrative literals, not data.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import Workbook
from sqlalchemy import text

from geoserver_app.cli import main
from layers.errors import InvalidParameterValue, NotFound
from planning.rosstat import CODE_RE, indicator_code, parse_number, read_bdmo, transliterate
from planning.series_store import import_series, read_series
from tests.conftest import DATA, scalar

ACTOR = "test:rosstat"
POP = "Численность постоянного населения на 1 января"
POP_K = "Численность постоянного населения на 1 января (в тысячах)"
POP_CODE = "bdmo_chislennost_postoiannogo_naseleniia_na_1_ianvaria"
YEAR = 2021
HEADER_BLOCK = [["База данных показателей муниципальных образований"],
                ["Выгрузка для тестов CDT: hflabs/city, DaData 2021-10-11, CC BY-SA 4.0"], []]


# --- real data ------------------------------------------------------------------------------------------------
def read_cities() -> list[dict]:
    with open(DATA / "russia" / "cities.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def cities(engine) -> list[dict]:
    """The demo's urban okrugs with their cities.csv rows: {oktmo, territory_id, name, population}."""
    with engine.connect() as conn:
        okrugs = dict(conn.execute(text("SELECT oktmo, id FROM cdt.territories WHERE level = 'urban_okrug'")).all())
    out = []
    for city in read_cities():
        oktmo = city["oktmo"][:8]
        if len(city["oktmo"]) == 11 and oktmo in okrugs and not city["area"].strip():
            out.append({"oktmo": oktmo, "territory_id": okrugs[oktmo], "name": f"{city['city_type']} {city['city']}",
                        "population": int(city["population"])})
    assert {c["oktmo"] for c in out} >= {"19701000", "65701000", "97710000"}, out
    return sorted(out, key=lambda c: c["oktmo"])


@pytest.fixture(scope="module")
def stranger(engine) -> dict:
    """The first city of cities.csv whose municipality is not a territory of the database."""
    with engine.connect() as conn:
        known = set(conn.execute(text("SELECT oktmo FROM cdt.territories")).scalars())
    city = next(c for c in read_cities() if c["oktmo"][:8] not in known and not c["area"].strip())
    return {"oktmo": city["oktmo"][:8], "name": f"{city['city_type']} {city['city']}",
            "population": int(city["population"])}


@pytest.fixture(scope="module", autouse=True)
def cleanup(engine):
    """Delete the indicators (and by cascade the values) this module creates."""
    with engine.connect() as conn:
        before = set(conn.execute(text("SELECT code FROM cdt.indicators")).scalars())
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM cdt.indicators WHERE NOT (code = ANY(:before)) AND "
                          "provenance LIKE 'Росстат, БД ПМО: %'"), {"before": list(before)})


def grouped(n: int, sep: str = " ") -> str:
    return f"{n:,}".replace(",", sep)


def thousands(n: int, sep: str = " ") -> str:
    """Thousands, one decimal, decimal comma: 1377738 -> '1 377,7'."""
    whole, frac = f"{n / 1000:.1f}".split(".")
    return f"{grouped(int(whole), sep)},{frac}"


def wide_rows(cities: list[dict], sep: str = " ", bump: str | None = None) -> list[list[object]]:
    """Header block, header, then per indicator one row per city; the indicator and unit only on its first row,
    as in a БД ПМО export with merged cells. `bump`: the OKTMO whose population is corrected by +1."""
    rows = [*HEADER_BLOCK, ["Показатель", "Единица измерения", "Муниципальное образование", "ОКТМО", "Период",
                            "2020", f"{YEAR} г.", "2022"]]
    for name, unit, fmt in ((POP, "человек", grouped), (POP_K, "тысяч человек", thousands)):
        for i, c in enumerate(cities):
            pop = c["population"] + (1 if c["oktmo"] == bump and fmt is grouped else 0)
            rows.append([name if i == 0 else "", unit if i == 0 else "", c["name"], c["oktmo"], "на 1 января",
                         "…", fmt(pop, sep), "-"])
    rows.append(["Источник: hflabs/city"])
    return rows


def long_rows(cities: list[dict]) -> list[list[object]]:
    rows = [*HEADER_BLOCK, ["Показатель", "Единица измерения", "Муниципальное образование", "ОКТМО", "Год",
                            "Значение"]]
    for c in cities:
        rows += [[POP, "человек", c["name"], c["oktmo"], 2020, "…"],
                 [POP, "человек", c["name"], c["oktmo"], YEAR, c["population"]],  # a number cell, as Excel keeps it
                 [POP, "человек", c["name"], c["oktmo"], 2022, None],
                 [POP_K, "тысяч человек", c["name"], c["oktmo"], YEAR, thousands(c["population"], "\u00a0")]]
    return rows


def write_csv(path: Path, rows: list[list[object]], delimiter: str = ";", encoding: str = "utf-8-sig") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding=encoding, newline="") as f:
        csv.writer(f, delimiter=delimiter).writerows(rows)
    return path


def write_xlsx(path: Path, rows: list[list[object]]) -> Path:
    book = Workbook()
    for row in rows:
        book.active.append([int(c) if isinstance(c, str) and c.isdigit() and len(c) == 8 else c for c in row])
    book.save(path)
    return path


def counts(engine) -> tuple[int, int]:
    return (scalar(engine, "SELECT count(*) FROM cdt.indicators"),
            scalar(engine, "SELECT count(*) FROM cdt.indicator_values"))


def by_oktmo(series: list[dict]) -> dict[str, tuple[int, str, float]]:
    return {r["oktmo"]: (r["period"], r["value_type"], r["value"]) for r in series}


# --- parser ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding,delimiter", [("utf-8-sig", ";"), ("utf-8", ","), ("cp1251", ";"),
                                                ("cp1251", ",")])
def test_wide_csv_in_every_encoding_and_delimiter(cities, tmp_path, encoding, delimiter):
    sep = "\u00a0" if encoding == "cp1251" else " "  # cp1251 has the no-break space Excel writes
    table = read_bdmo(write_csv(tmp_path / "bdmo.csv", wide_rows(cities, sep), delimiter, encoding))
    assert table.layout == "wide" and not table.problems
    assert table.header_block[0] == "База данных показателей муниципальных образований"
    assert table.indicators() == {POP: "человек", POP_K: "тысяч человек"}
    values = {(r.indicator, r.oktmo, r.year): r.value for r in table.records}
    assert len(values) == 2 * 3 * len(cities)
    for c in cities:
        assert values[(POP, c["oktmo"], YEAR)] == c["population"]
        assert values[(POP_K, c["oktmo"], YEAR)] == round(c["population"] / 1000, 1)
        assert values[(POP, c["oktmo"], 2020)] is None and values[(POP, c["oktmo"], 2022)] is None
    assert {r.municipality for r in table.records} == {c["name"] for c in cities}


def test_long_xlsx(cities, tmp_path):
    table = read_bdmo(write_xlsx(tmp_path / "bdmo.xlsx", long_rows(cities)))
    assert table.layout == "long" and not table.problems
    got = {(r.indicator, r.oktmo, r.year): r.value for r in table.records}
    for c in cities:
        assert got[(POP, c["oktmo"], YEAR)] == c["population"]
        assert got[(POP_K, c["oktmo"], YEAR)] == round(c["population"] / 1000, 1)
        assert got[(POP, c["oktmo"], 2020)] is None and got[(POP, c["oktmo"], 2022)] is None


@pytest.mark.parametrize("cell,value", [("1 234,5", 1234.5), ("1\u00a0234\u202f567", 1234567), ("1234.5", 1234.5),
                                        ("−5,2", -5.2), ("-", None), ("…", None), ("...", None), ("", None),
                                        ("х", None), (None, None), (42, 42.0), (" 7 ", 7.0)])
def test_number_formats(cell, value):
    assert parse_number(cell) == value


@pytest.mark.parametrize("cell", ["12a", "1.234,5", "1,234.5", "1 234 ,", "--5", "n/a"])
def test_not_numbers(cell):
    with pytest.raises(ValueError, match="not a number"):
        parse_number(cell)


def test_codes_are_transliterated_slugs():
    assert transliterate("Щёлково, Подъячевская, Хьюстон") == "shchelkovo, podieiachevskaia, khiuston"
    assert indicator_code(POP) == POP_CODE
    assert indicator_code("  численность   постоянного населения на 1 января ") == POP_CODE  # as names match
    long_name = "Объем отгруженных товаров собственного производства, выполненных работ и услуг собственными " \
                "силами по крупным и средним организациям"
    code = indicator_code(long_name)
    assert len(code) == 80 and CODE_RE.match(code) and code == indicator_code(long_name)
    assert code != indicator_code(long_name + " (без субъектов малого предпринимательства)")
    assert indicator_code(POP, {POP: "population"}) == "population"
    with pytest.raises(InvalidParameterValue, match="must match"):
        indicator_code(POP, {POP: "Population!"})


def test_indicator_above_the_table_and_value_types(tmp_path):
    # One indicator per export, named above the table; a value type column and a planned year column.
    rows = [["Показатель: Ввод в действие жилых домов"], ["Единица измерения:", "квадратный метр"], [],
            ["ОКТМО", "Муниципальное образование", "Тип значения", "2023", "2024 г.", "2030 (план)"],
            ["19701000", "г Вологда", "факт", "10 000", "11 000", ""],
            ["19701000", "г Вологда", "прогноз", "", "11 500,5", "-"],
            ["19701000", "г Вологда", "", "", "", "12 000"]]
    table = read_bdmo(write_csv(tmp_path / "one.csv", rows))
    assert not table.problems
    assert {(r.year, r.value_type, r.value) for r in table.records if r.value is not None} == {
        (2023, "actual", 10000), (2024, "actual", 11000), (2024, "forecast", 11500.5), (2030, "target", 12000)}
    assert {r.value_type for r in table.records if r.row == 7 and r.year < 2030} == {None}  # the importer's default
    assert table.indicators() == {"Ввод в действие жилых домов": "квадратный метр"}
    rows[4][5] = "1"  # a value in the plan column of an actual row
    problems = read_bdmo(write_csv(tmp_path / "two.csv", rows)).problems
    assert [(p.row, p.column, p.reason) for p in problems] == [
        (5, "2030 (план)", "the column says target, the row actual")]


def test_problems_name_row_and_column(tmp_path):
    path = write_csv(tmp_path / "bad.csv", [
        ["Показатель", "ОКТМО", "Период", "2020", "2021"],
        ["Численность", "19701000", "на 1 января", "12a", "1"],
        ["", "1970100X", "", "5", ""],
        ["", "65701000", "январь-июнь", "5", ""],
        ["", "97710000", "", "5", "6"],
        ["", "97710000", "", "5", "7"]])
    problems = [(p.row, p.column, p.reason) for p in read_bdmo(path).problems]
    assert problems == [(2, "2020", "'12a' is not a number"),
                        (3, "ОКТМО", "'1970100X' is not an OKTMO code (8 or 11 digits)"),
                        (4, "Период", "'январь-июнь' is not a yearly value"),
                        (6, "2021", "97710000 2021 again, with 7.0 here and 6.0 at row 5")]


@pytest.mark.parametrize("rows,message", [
    ([["Показатель", "Муниципальное образование", "2020"], ["Численность", "г Вологда", "1"]],
     "no column 'ОКТМО'"),
    ([["Показатель", "ОКТМО", "Значение"], ["Численность", "19701000", "1"]], "'Год' is missing"),
    ([["Показатель", "ОКТМО", "Итого"], ["Численность", "19701000", "1"]], "no year columns"),
    ([["ОКТМО", "2020"], ["19701000", "1"]], "no column 'Показатель'"),
    ([["Показатель", "ОКТМО", "Год", "Значение", "2020"], ["x", "19701000", "2020", "1", "1"]], "wide or long"),
])
def test_refused_layouts(tmp_path, rows, message):
    with pytest.raises(InvalidParameterValue, match=message):
        read_bdmo(write_csv(tmp_path / "x.csv", rows))


def test_refused_files(tmp_path):
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(InvalidParameterValue, match="neither UTF-8 nor cp1251|not a CSV|no column 'ОКТМО'"):
        read_bdmo(garbage)
    fake = tmp_path / "fake.xlsx"
    fake.write_bytes(b"not a zip")
    with pytest.raises(InvalidParameterValue, match="not a readable .xlsx"):
        read_bdmo(fake)
    old = tmp_path / "old.xls"
    old.write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(InvalidParameterValue, match="save it as .xlsx"):
        read_bdmo(old)
    with pytest.raises(InvalidParameterValue, match="no such file"):
        read_bdmo(tmp_path / "nowhere.csv")


# --- database -------------------------------------------------------------------------------------------------
def test_import_wide_csv_and_read_back(engine, cities, tmp_path):
    path = write_csv(tmp_path / "bdmo_wide.csv", wide_rows(cities))
    before = counts(engine)
    report = import_series(engine, path, ACTOR)
    n = len(cities)
    assert report["layout"] == "wide" and report["territories"] == n and report["years"] == [YEAR, YEAR]
    assert report["indicator_codes"][POP] == POP_CODE and sorted(report["indicators_created"]) == sorted(
        report["indicator_codes"].values())
    assert (report["values_inserted"], report["values_updated"], report["values_unchanged"]) == (2 * n, 0, 0)
    assert report["values_missing"] == 2 * 2 * n and report["skipped_oktmo"] == []
    assert counts(engine) == (before[0] + 2, before[1] + 2 * n)

    expected = {c["oktmo"]: (YEAR, "actual", float(c["population"])) for c in cities}
    assert by_oktmo(read_series(engine, POP_CODE)) == expected
    ids = {c["oktmo"]: c["territory_id"] for c in cities}
    one = read_series(engine, POP_CODE, [ids["19701000"]])
    assert [(r["territory_id"], r["period"], r["value"], r["source"]) for r in one] == [
        (ids["19701000"], YEAR, expected["19701000"][2], "rosstat-bdmo:bdmo_wide.csv")]
    thousand = read_series(engine, report["indicator_codes"][POP_K])
    assert by_oktmo(thousand) == {c["oktmo"]: (YEAR, "actual", round(c["population"] / 1000, 1)) for c in cities}
    assert read_series(engine, POP_CODE, value_types=["forecast"]) == []
    with engine.connect() as conn:
        row = conn.execute(text("SELECT kind, unit, provenance, builtin, created_by FROM cdt.indicators "
                                "WHERE code = :c"), {"c": POP_CODE}).one()
    assert tuple(row) == ("series", "человек", "Росстат, БД ПМО: bdmo_wide.csv", False, ACTOR)
    with pytest.raises(NotFound):
        read_series(engine, "bdmo_no_such_indicator")


def test_reimport_is_idempotent_and_updates(engine, cities, tmp_path):
    mapping = {POP: "test_rosstat_reimport", POP_K: "test_rosstat_reimport_k"}
    path = write_csv(tmp_path / "bdmo_again.csv", wide_rows(cities))
    n = len(cities)
    first = import_series(engine, path, ACTOR, mapping)
    assert first["values_inserted"] == 2 * n and first["indicators_created"] == list(mapping.values())
    after_first = counts(engine)

    again = import_series(engine, path, ACTOR, mapping)
    assert (again["values_inserted"], again["values_updated"], again["values_unchanged"]) == (0, 0, 2 * n)
    assert again["indicators_created"] == [] and counts(engine) == after_first

    # A corrected export under the same name: only the corrected value changes.
    vologda = next(c for c in cities if c["oktmo"] == "19701000")
    fixed = write_csv(tmp_path / "v2" / "bdmo_again.csv", wide_rows(cities, bump="19701000"))
    update = import_series(engine, fixed, ACTOR, mapping)
    assert (update["values_inserted"], update["values_updated"], update["values_unchanged"]) == (0, 1, 2 * n - 1)
    assert counts(engine) == after_first
    got = by_oktmo(read_series(engine, "test_rosstat_reimport"))
    assert got["19701000"] == (YEAR, "actual", vologda["population"] + 1)
    assert all(got[c["oktmo"]][2] == c["population"] for c in cities if c["oktmo"] != "19701000")


def test_long_xlsx_and_cp1251_csv_give_the_same_values(engine, cities, tmp_path):
    mapping = {POP: "test_rosstat_formats", POP_K: "test_rosstat_formats_k"}
    n = len(cities)
    xlsx = import_series(engine, write_xlsx(tmp_path / "bdmo_long.xlsx", long_rows(cities)), ACTOR, mapping)
    assert xlsx["layout"] == "long" and xlsx["values_inserted"] == 2 * n and xlsx["values_missing"] == 2 * n
    from_xlsx = read_series(engine, "test_rosstat_formats_k")
    rows = counts(engine)
    csv_path = write_csv(tmp_path / "bdmo_1251.csv", wide_rows(cities, "\u00a0"), ",", "cp1251")
    cp1251 = import_series(engine, csv_path, ACTOR, mapping)
    # Same values, another file: each row is rewritten only for its new source.
    assert (cp1251["values_inserted"], cp1251["values_updated"]) == (0, 2 * n) and counts(engine) == rows
    from_csv = read_series(engine, "test_rosstat_formats_k")
    assert [(r["oktmo"], r["period"], r["value"]) for r in from_csv] == [
        (r["oktmo"], r["period"], r["value"]) for r in from_xlsx]
    assert {r["source"] for r in from_csv} == {"rosstat-bdmo:bdmo_1251.csv"}


def test_value_type_default_and_forecast(engine, cities, tmp_path):
    path = write_csv(tmp_path / "bdmo_forecast.csv", wide_rows(cities))
    report = import_series(engine, path, ACTOR, {POP: "test_rosstat_forecast", POP_K: "test_rosstat_forecast_k"},
                           value_type="forecast")
    assert report["values_inserted"] == 2 * len(cities)
    assert {r["value_type"] for r in read_series(engine, "test_rosstat_forecast")} == {"forecast"}
    assert read_series(engine, "test_rosstat_forecast", value_types=["actual"]) == []
    with pytest.raises(InvalidParameterValue, match="value type"):
        import_series(engine, path, ACTOR, value_type="plan")


def test_unknown_oktmo_refuses_the_whole_file(engine, cities, stranger, tmp_path, unchanged):
    rows = wide_rows([*cities, stranger])
    path = write_csv(tmp_path / "bdmo_unknown.csv", rows)
    before = counts(engine)
    with pytest.raises(InvalidParameterValue) as refused:
        import_series(engine, path, ACTOR, {POP: "test_rosstat_unknown", POP_K: "test_rosstat_unknown_k"})
    message = str(refused.value)
    stranger_row = next(i for i, r in enumerate(rows, start=1) if stranger["oktmo"] in r)
    assert f"OKTMO {stranger['oktmo']} ({stranger['name']}) is not a territory" in message
    assert f"row {stranger_row}" in message and "nothing written" in message
    assert refused.value.context["problems"][0]["row"] == stranger_row
    assert counts(engine) == before


def test_skip_unknown_imports_the_rest(engine, cities, stranger, tmp_path):
    path = write_csv(tmp_path / "bdmo_skip.csv", wide_rows([*cities, stranger]))
    report = import_series(engine, path, ACTOR, {POP: "test_rosstat_skip", POP_K: "test_rosstat_skip_k"},
                           skip_unknown=True)
    assert report["skipped_oktmo"] == [stranger["oktmo"]] and report["territories"] == len(cities)
    assert set(by_oktmo(read_series(engine, "test_rosstat_skip"))) == {c["oktmo"] for c in cities}


def test_bad_value_or_mapping_writes_nothing(engine, cities, tmp_path, unchanged):
    rows = wide_rows(cities)
    rows[4][6] = "301 64two"  # the first city's population, garbled
    with pytest.raises(InvalidParameterValue, match=r"nothing written, problems in the file \(1\): row 5, column "
                                                    r"'2021 г.': '301 64two' is not a number"):
        import_series(engine, write_csv(tmp_path / "bdmo_garbled.csv", rows), ACTOR)
    good = write_csv(tmp_path / "bdmo_good.csv", wide_rows(cities))
    with pytest.raises(InvalidParameterValue, match="not an indicator of bdmo_good.csv"):
        import_series(engine, good, ACTOR, {"Численность населения": "test_rosstat_typo"})
    with pytest.raises(InvalidParameterValue, match="must match"):
        import_series(engine, good, ACTOR, {POP: "1st"})
    # Two indicators mapped onto one code give it two values for each key.
    with pytest.raises(InvalidParameterValue, match="values given twice"):
        import_series(engine, good, ACTOR, {POP: "test_rosstat_clash", POP_K: "test_rosstat_clash"})
    no_oktmo = write_csv(tmp_path / "bdmo_no_oktmo.csv", [[c for i, c in enumerate(r) if i != 3] for r in rows])
    with pytest.raises(InvalidParameterValue, match="no column 'ОКТМО'"):
        import_series(engine, no_oktmo, ACTOR)


def test_cli_load_rosstat(db_url, engine, cities, stranger, tmp_path):
    env = {"CDT_DATABASE_URL": db_url}
    path = write_csv(tmp_path / "bdmo_cli.csv", wide_rows(cities), ",", "cp1251")
    args = ["load", "rosstat", str(path), "--map", f"{POP}=test_rosstat_cli", "--map", f"{POP_K}=test_rosstat_cli_k"]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    n = len(cities)
    assert f"2 indicators (2 new), {n} territories, years {YEAR}-{YEAR}; values {2 * n} inserted" in result.output
    assert f"test_rosstat_cli = {POP}" in result.output
    assert by_oktmo(read_series(engine, "test_rosstat_cli")) == {
        c["oktmo"]: (YEAR, "actual", c["population"]) for c in cities}

    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0 and f"0 inserted, 0 updated, {2 * n} unchanged" in result.output

    unknown = write_csv(tmp_path / "bdmo_cli_unknown.csv", wide_rows([*cities, stranger]))
    before = counts(engine)
    result = CliRunner().invoke(main, ["load", "rosstat", str(unknown)], env=env)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"OKTMO {stranger['oktmo']}" in result.output and "nothing written" in result.output
    assert counts(engine) == before
    result = CliRunner().invoke(main, ["load", "rosstat", str(unknown), "--skip-unknown", "--map", "oops"], env=env)
    assert result.exit_code == 2 and "must look like NAME=CODE" in result.output
    result = CliRunner().invoke(main, ["load", "rosstat", str(unknown), "--skip-unknown",
                                       "--map", f"{POP}=test_rosstat_cli_skip",
                                       "--map", f"{POP_K}=test_rosstat_cli_skip_k"], env=env)
    assert result.exit_code == 0, result.output
    assert f"skipped, not among the territories: OKTMO {stranger['oktmo']}" in result.output
