"""Import of the Moscow Oblast fuel and energy balances 2016-2020 and of statistical form templates.
Expected numbers are read off the workbooks (cell named at each assertion; cached values as Excel shows them)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

import layers.models.energy  # noqa: F401  (registers the tables on Base.metadata)
from energy import layout
from energy.forms import FILE_NAMES, TEMPLATES, parse_form_csv
from energy.store import list_balances, load_balance, load_file, save_workbook
from energy.workbook import read_workbook
from layers.errors import InvalidParameterValue

FEB = Path(__file__).resolve().parents[1] / "data" / "feb" / "moscow-oblast"
OKTMO = "46000000"
YEARS = range(2016, 2021)


@pytest.fixture(scope="module")
def books():
    return {y: read_workbook(FEB / f"balance{y}.xlsx") for y in YEARS}


def _count(engine, sql: str, **params) -> int:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def test_all_five_years_load(books):
    for year, data in books.items():
        assert data.year == year
        assert data.region == "Московская область"  # Баланс!J1
        assert data.balance.shape == (len(layout.ROWS), len(layout.COLUMNS))
        # 17 carrier sheets after `Баланс`: Электро ... Древесина
        assert len(data.sheets) == 17
    # per-form columns of 2020 (row 2 of each sheet, after `В баланс`)
    forms = {name: s.forms for name, s in books[2020].sheets.items()}
    assert forms["Электро"] == ["23-Н", "1-натура", "6-ТП", "1-ТЕП", "Московское РДУ", "ПАО Россети Мособлэнерго",
                                "22-ЖКХ"]
    assert forms["Пр-й газ"] == ["4-Запасы", "22-ЖКХ", "4-ТЭР", 'ООО "Газпром Межрегионгаз"и др.',
                                 'Отчет АО "Газпром промгаз" (прогноз)']
    assert sum(len(f) for f in forms.values()) == 71  # 7+5+5+5+5+6+4 + 6 sheets x 3 + 4 sheets x 4


def test_values_match_cells(books):
    b = books[2020].balance
    assert b.at["production", "coal"] == pytest.approx(265.53)  # Баланс!C5
    assert b.at["inflow", "natural_gas"] == pytest.approx(24326.24)  # Баланс!F6
    assert b.at["outflow", "electricity"] == pytest.approx(-2047.02)  # Баланс!J7, negative by the Order
    assert b.at["production", "hydro_renewables"] == pytest.approx(220.21)  # Баланс!H5
    assert books[2020].cells[("inflow", "natural_gas")]["formula"] == "='Пр-й газ'!B4"
    e = books[2020].sheets["Электро"].values
    assert e.at["hydro_generation", "6-ТП"] == pytest.approx(242.37)  # Электро!E4
    assert e.at["electricity_production", "Московское РДУ"] == pytest.approx(2140.95)  # Электро!G3
    assert math.isnan(e.at["electricity_production", "1-ТЕП"])  # Электро!F3 is empty
    heat = books[2020].sheets["Тепло"]
    assert heat.values.at["households", "1-ТЕП"] == pytest.approx(4999.28)  # Тепло!D33
    assert heat.cells[("households", "1-ТЕП")] == "D33"
    assert books[2016].sheets["Электро"].values.at["hydro_generation", "В баланс"] == pytest.approx(230.66)  # B4


def test_defects_reported(books):
    for year in range(2016, 2020):  # column B "Год" says 2020 in every row of every file
        d = [x for x in books[year].defects if x.kind == "year_cell"]
        assert len(d) == 1 and d[0].sheet == "Баланс" and len(d[0].details["cells"]) == 31
    assert not [x for x in books[2020].defects if x.kind == "year_cell"]
    # Баланс!F39 is typed in as 2558 where 'Пр-й газ'!B39 holds 2957.6: ratio 2558 / 2957.6 = 0.8649
    m = {(x.cell, x.details["source_cell"]): x for x in books[2020].defects if x.kind == "consolidated_mismatch"}
    assert m[("F39", "B39")].details["ratio"] == pytest.approx(2558 / 2957.6)
    # 2018: hydro typed as 230 (Баланс!H5) while Электро!B4 = 230.16
    assert any(x.kind == "consolidated_mismatch" and x.cell == "H5" for x in books[2018].defects)
    # misspelt labels are matched and reported: Уголь!A24 'Добыча полезных ископакмых' (2020)
    assert any(x.kind == "misspelt_row" and x.sheet == "Уголь" and x.cell == "A24" for x in books[2020].defects)
    # heat inflow (Баланс!K6 = 1276.86) is in no cell of the Order's row 2 (E21..E24, E28 only)
    assert any(x.kind == "cell_outside_form" and x.cell == "K6" for x in books[2020].defects)
    # the real files state no coefficient anywhere (no natural units, no multiplication in any formula)
    assert not any(x.kind == "coefficient_mismatch" for d in books.values() for x in d.defects)


def test_coefficient_mismatch_detected(tmp_path):
    """Two sheets of the same carrier ('Уголь, тыс. т у.т.': Уголь_пр and Уголь) stating different coefficients."""
    wb = openpyxl.load_workbook(FEB / "balance2020.xlsx")
    for name, coefficient in (("Уголь_пр", 0.768), ("Уголь", 0.7)):
        wb[name]["H2"], wb[name]["H3"] = "Коэффициент", coefficient
    path = tmp_path / "balance2020.xlsx"
    wb.save(path)
    defects = [x for x in read_workbook(path).defects if x.kind == "coefficient_mismatch"]
    assert len(defects) == 1 and "0.768" in defects[0].message and "0.7" in defects[0].message


def test_save_load_reload(engine, books):
    ids = {y: save_workbook(engine, books[y], OKTMO, "Московская область", "test:feb") for y in YEARS}
    loaded = load_balance(engine, ids[2020])
    assert loaded.at["inflow", "natural_gas"] == pytest.approx(24326.24)
    assert loaded.at["other", "natural_gas"] == pytest.approx(2558)  # as typed in the workbook, defect kept
    prov = _count(engine, "SELECT provenance->>'cell' FROM cdt.balance_cells WHERE balance_id = :b "
                  "AND row_code = 'inflow' AND column_code = 'natural_gas'", b=ids[2020])
    assert prov == "F6"
    cells = _count(engine, "SELECT count(*) FROM cdt.balance_cells WHERE balance_id = :b", b=ids[2020])
    assert cells == len(layout.ROWS) * len(layout.COLUMNS)  # 35 rows x 10 columns, all read
    forms = _count(engine, "SELECT count(*) FROM cdt.form_values WHERE balance_id = :b", b=ids[2020])
    assert forms == sum(int(s.values.notna().sum().sum()) for s in books[2020].sheets.values())
    assert _count(engine, "SELECT value FROM cdt.form_values WHERE balance_id = :b AND sheet = 'Тепло' AND "
                  "form = '1-ТЕП' AND row_code = 'households'", b=ids[2020]) == pytest.approx(4999.28)
    # reload replaces: one balance for the year, new id, same counts
    report = load_file(engine, FEB / "balance2020.xlsx", OKTMO, "test:feb")
    assert report["balance_id"] != ids[2020] and report["year"] == 2020
    assert _count(engine, "SELECT count(*) FROM cdt.fuel_balances WHERE territory_oktmo = :o AND year = 2020",
                  o=OKTMO) == 1
    assert _count(engine, "SELECT count(*) FROM cdt.form_values WHERE balance_id = :b", b=ids[2020]) == 0
    assert len([b for b in list_balances(engine) if b["territory_oktmo"] == OKTMO]) == 5
    assert _count(engine, "SELECT tce_per_unit FROM cdt.energy_carriers WHERE code = 'natural_gas'") == 1.154


def test_broken_file_changes_nothing(engine, tmp_path, books):
    bad = tmp_path / "balance2017.xlsx"
    bad.write_bytes((FEB / "balance2017.xlsx").read_bytes()[:5000])  # truncated zip
    before = _count(engine, "SELECT count(*) FROM cdt.balance_cells")
    with pytest.raises(InvalidParameterValue, match="not a readable .xlsx"):
        load_file(engine, bad, OKTMO, "test:feb")
    assert _count(engine, "SELECT count(*) FROM cdt.balance_cells") == before
    # a failure inside the transaction, after the old balance was deleted and the new balance and its 350 cells
    # inserted (a form value without carrier violates NOT NULL), rolls all of it back
    data = read_workbook(FEB / "balance2020.xlsx")
    save_workbook(engine, data, "46999999", "test", "test:feb")
    count = _count(engine, "SELECT count(*) FROM cdt.balance_cells c JOIN cdt.fuel_balances b ON b.id = c.balance_id"
                   " WHERE b.territory_oktmo = '46999999'")
    sheet = data.sheets["Тепло"]
    sheet.carrier = dataclasses.replace(sheet.carrier, code=None)
    with pytest.raises(IntegrityError):
        save_workbook(engine, data, "46999999", "test", "test:feb")
    assert _count(engine, "SELECT count(*) FROM cdt.balance_cells c JOIN cdt.fuel_balances b ON b.id = c.balance_id"
                  " WHERE b.territory_oktmo = '46999999'") == count == 350


def test_form_templates_parse():
    for form, stem in FILE_NAMES.items():
        lines = parse_form_csv(TEMPLATES / f"{stem}.csv", form)
        assert len(lines) == 1
    gas = parse_form_csv(TEMPLATES / "4-TER.csv", "4-ТЭР")[0]
    # 8,982.3 million m³ x 1,000 x 1.154 tce per 1,000 m³ / 1,000 = 10,365.57 thousand tce
    assert gas.value == pytest.approx(8982.3 * 1.154) and gas.value_natural == 8982.3
    heat = parse_form_csv("row_code,carrier,value,unit\nhouseholds,heat,1000,тыс. Гкал\n", "1-ТЕП")[0]
    assert heat.value == pytest.approx(142.9)  # 1,000 thousand Gcal x 0.1429 tce/Gcal
    assert parse_form_csv("row_code,carrier,value,unit\nНаселение,Пеллеты,2,тыс. т у.т.\n", "4-ТЭР")[0].row_code \
        == "households"


def test_form_bad_lines_refused():
    body = ("# comment\nrow_code,carrier,value,unit\n"
            "households,natural_gas,10,млн м3\n"  # line 3: fine
            "nowhere,natural_gas,10,млн м3\n"  # line 4: unknown row
            "households,unobtainium,10,т\n"  # line 5: unknown carrier
            "households,natural_gas,ten,млн м3\n"  # line 6: not a number
            "households,natural_gas,10,Гкал\n"  # line 7: wrong unit for gas
            "households,natural_gas,-5,млн м3\n"  # line 8: negative
            "stock_change,fuel_oil,-5,т\n"  # line 9: fine, a stock change may be negative
            "households,coal,5,т\n")  # line 10: coal has no single coefficient
    with pytest.raises(InvalidParameterValue) as err:
        parse_form_csv(body, "4-ТЭР")
    errors = err.value.context["errors"]
    assert [e.split(",")[0] for e in errors] == [f"line {n}" for n in (4, 5, 6, 7, 8, 10)]
    assert "column unit" in errors[3] and "1000 m3" in errors[3]
    with pytest.raises(InvalidParameterValue, match="does not report natural_gas"):
        parse_form_csv("row_code,carrier,value,unit\nlosses,natural_gas,1,тыс. т у.т.\n", "23-Н")
    with pytest.raises(InvalidParameterValue, match="header lacks unit"):
        parse_form_csv("row_code,carrier,value\nlosses,heat,1\n", "1-ТЭП")
