"""Fuel and energy balances: round trip import -> export -> import of the real Moscow Oblast workbooks, malformed
workbooks and form files refused with a message naming the sheet/line/cell and nothing written, and the XLSX
form templates loaded through the same validation as the CSV ones."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import text

from energy import layout
from energy.carriers import carrier as carrier_named
from energy.export import export_balance, file_name, to_xlsx
from energy.forms import FILE_NAMES, FORMS, TEMPLATES, parse_form_file, write_templates
from energy.store import load_balance, load_file, load_form_file
from energy.workbook import read_workbook
from layers.errors import InvalidParameterValue, NotFound

FEB = Path(__file__).resolve().parents[1] / "data" / "feb" / "moscow-oblast"
YEARS = range(2016, 2021)
# Territories of their own (not Moscow Oblast's 46000000 of test_feb_import): a year is one balance per territory.
SOURCE, COPY, BAD = "99000001", "99000002", "99000003"
TABLES = ("fuel_balances", "balance_cells", "form_values")


def _state(engine) -> dict[str, str]:
    """Row count and a digest of the contents of each balance table (a replace keeps counts, not contents)."""
    with engine.connect() as conn:
        return {t: conn.execute(text(
            f"SELECT count(*) || ':' || coalesce(md5(string_agg((to_jsonb(x) - 'loaded_at')::text, '|' "
            f"ORDER BY (to_jsonb(x) - 'loaded_at')::text)), '') FROM cdt.{t} x")).scalar_one() for t in TABLES}


def _form_values(engine, balance_id: int) -> dict[tuple[str, str, str], float]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT sheet, row_code, form, value FROM cdt.form_values WHERE balance_id = :b "
                                 "AND source = 'workbook'"), {"b": balance_id}).all()
    return {(s, r, f): v for s, r, f, v in rows}


def _cell(engine, balance_id: int, row: str, col: str) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT provenance->>'cell' FROM cdt.balance_cells WHERE balance_id = :b AND "
                                 "row_code = :r AND column_code = :c"), {"b": balance_id, "r": row, "c": col}).scalar()


@pytest.fixture(scope="module")
def exported(engine, tmp_path_factory) -> dict[int, tuple[int, Path]]:
    """Each real year imported (territory SOURCE) and exported: year -> (balance id, exported file)."""
    out = {}
    directory = tmp_path_factory.mktemp("feb-export")
    for year in YEARS:
        balance_id = load_file(engine, FEB / f"balance{year}.xlsx", SOURCE, "test:roundtrip")["balance_id"]
        name, data = export_balance(engine, balance_id)
        assert name == f"balance{year}.xlsx" == file_name(year)
        (directory / name).write_bytes(data)
        out[year] = (balance_id, directory / name)
    return out


# --- round trip -----------------------------------------------------------------------------------------------

def test_round_trip_every_cell_and_form_value(engine, exported):
    for year, (source_id, path) in exported.items():
        report = load_file(engine, path, COPY, "test:roundtrip")
        assert report["year"] == year
        copy_id = report["balance_id"]
        assert copy_id != source_id
        a, b = load_balance(engine, source_id), load_balance(engine, copy_id)
        assert (a.isna() == b.isna()).all().all(), f"{year}: empty cells differ"
        difference = (a - b).abs().max().max()
        assert difference <= 1e-9, f"{year}: a cell differs by {difference}"
        # the reconciliation matrix: every value of every form column of every carrier sheet
        fa, fb = _form_values(engine, source_id), _form_values(engine, copy_id)
        assert len(fa) > 1000 and fa.keys() == fb.keys(), f"{year}: {set(fa) ^ set(fb)}"
        assert max(abs(fa[k] - fb[k]) for k in fa) <= 1e-9
        # the export has the real workbooks' cell addresses: Баланс!F6 is natural gas inflow in both
        assert _cell(engine, source_id, "inflow", "natural_gas") == _cell(engine, copy_id, "inflow", "natural_gas") \
            == "F6"
    # spot values read off the real 2020 workbook survive: Баланс!F6 and Тепло!D33 (form 1-ТЕП)
    copy_2020 = load_file(engine, exported[2020][1], COPY, "test:roundtrip")["balance_id"]
    assert load_balance(engine, copy_2020).at["inflow", "natural_gas"] == pytest.approx(24326.24)
    assert _form_values(engine, copy_2020)[("Тепло", "households", "1-ТЕП")] == pytest.approx(4999.28)


def test_export_reads_back_without_new_defects(exported):
    original = read_workbook(FEB / "balance2020.xlsx")
    again = read_workbook(exported[2020][1])
    assert again.region == "Московская область" and again.year == 2020
    assert list(again.sheets) == list(original.sheets)  # Электро ... Древесина, in the real order
    # the data's own defects come back (e.g. Баланс!F39 typed as 2558 vs 'Пр-й газ'!B39); misspelt labels do not
    kinds = {d.kind for d in again.defects}
    assert "consolidated_mismatch" in kinds and "misspelt_row" not in kinds
    assert kinds <= {d.kind for d in original.defects} | {"unknown_sheet"}
    assert [d.sheet for d in again.defects if d.kind == "unknown_sheet"] == ["Источники"]  # provenance sheet


def test_year_from_the_file_when_the_name_has_none(exported, tmp_path):
    path = tmp_path / "export.xlsx"
    path.write_bytes(exported[2017][1].read_bytes())
    data = read_workbook(path)
    assert data.year == 2017  # from "2017 год" in K1
    assert not [d for d in data.defects if d.kind == "year_cell"]  # column B "Год" says 2017 in every row


def test_api_call_signature_still_works(tmp_path):
    """energy_api calls to_xlsx(table, title, cells): the year comes from the title's last year."""
    balance = layout.empty_balance()
    balance.loc["inflow", "natural_gas"] = 1 / 3
    balance.loc["outflow", "electricity"] = -2.5
    cells = [{"row_code": "inflow", "column_code": "natural_gas", "value_tce": 1 / 3,
              "provenance": {"source": "workbook", "cell": "F6"}}]
    path = tmp_path / "feb-46000000.xlsx"
    path.write_bytes(to_xlsx(balance, "Топливно-энергетический баланс: Тестовая область, 2019", cells))
    data = read_workbook(path)
    assert data.year == 2019 and data.region == "Топливно-энергетический баланс: Тестовая область, 2019"
    assert data.balance.at["inflow", "natural_gas"] == 1 / 3  # unrounded
    assert data.balance.at["outflow", "electricity"] == -2.5
    assert data.balance.isna().sum().sum() == balance.isna().sum().sum()
    assert openpyxl.load_workbook(path)["Источники"]["D2"].value == '{"source": "workbook", "cell": "F6"}'


# --- malformed workbooks --------------------------------------------------------------------------------------

def _refused(engine, path: Path, match: str) -> InvalidParameterValue:
    before = _state(engine)
    with pytest.raises(InvalidParameterValue, match=match) as err:
        load_file(engine, path, BAD, "test:roundtrip")
    assert _state(engine) == before
    return err.value


def _edited(source: Path, target: Path, edit) -> Path:
    wb = openpyxl.load_workbook(source)
    edit(wb)
    wb.save(target)
    return target


def test_malformed_workbooks_refused(engine, exported, tmp_path):
    good = exported[2020][1]
    (tmp_path / "balance2020.xlsx").write_bytes(good.read_bytes()[:4000])
    _refused(engine, tmp_path / "balance2020.xlsx", r"balance2020.xlsx: not a readable \.xlsx workbook")

    def rename(wb):
        wb["Баланс"].title = "Balance"
    _refused(engine, _edited(good, tmp_path / "balance2019.xlsx", rename), r"no sheet 'Баланс' \(sheets: Balance, ")

    def text_in_value(wb):
        wb["Баланс"]["F6"] = "нет данных"
        wb["Тепло"]["C5"] = "12,3,4"
    err = _refused(engine, _edited(good, tmp_path / "balance2018.xlsx", text_in_value), "2 error")
    assert err.context["errors"] == ["sheet 'Баланс', cell F6: 'нет данных' is not a number",
                                     "sheet 'Тепло', cell C5: '12,3,4' is not a number"]

    def unknown_label(wb):
        wb["Баланс"]["A10"] = "Межпланетные перевозки"
    err = _refused(engine, _edited(good, tmp_path / "balance2017.xlsx", unknown_label),
                   r"sheet 'Баланс', cell A10: row label 'Межпланетные перевозки' matches no balance row")
    assert len(err.context["errors"]) == 1

    (tmp_path / "balance2016.xls").write_bytes(good.read_bytes())
    _refused(engine, tmp_path / "balance2016.xls", r"balance2016.xls: a balance workbook must be \.xlsx")
    (tmp_path / "balance2016.csv").write_text("row_code,carrier,value,unit\n", encoding="utf-8")
    _refused(engine, tmp_path / "balance2016.csv", r"must be \.xlsx")
    (tmp_path / "balance2015.xlsx").write_text("Ввоз;2015;1,5\n", encoding="utf-8")  # a CSV named .xlsx
    _refused(engine, tmp_path / "balance2015.xlsx", r"balance2015.xlsx: not a readable \.xlsx workbook")
    with pytest.raises(InvalidParameterValue, match="not a readable .xlsx workbook"):
        read_workbook(tmp_path / "balance2016.csv")  # the reader alone, without load_file's extension check


# --- form files -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def balance_id(exported) -> int:
    return exported[2019][0]


def _xlsx_form(path: Path, lines: list[tuple], header: tuple | None = ("row_code", "carrier", "value", "unit"),
               sheet: str = "4-ТЭР") -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    ws.append(["# a comment row"])
    if header:
        ws.append(list(header))
    for line in lines:
        ws.append(list(line))
    wb.save(path)
    return path


def _refused_form(engine, balance: int, path: Path, form: str, match: str) -> InvalidParameterValue:
    before = _state(engine)
    with pytest.raises(InvalidParameterValue, match=match) as err:
        load_form_file(engine, balance, path, form, "test:roundtrip")
    assert _state(engine) == before
    return err.value


def test_malformed_form_files_refused(engine, balance_id, tmp_path):
    # a good load first, so a refused load of the same file name must leave its values in place
    csv_path = tmp_path / "4-TER.csv"
    csv_path.write_text("row_code,carrier,value,unit\nhouseholds,natural_gas,10,млн м3\n", encoding="utf-8")
    assert load_form_file(engine, balance_id, csv_path, "4-ТЭР", "test:roundtrip")["form_values"] == 1
    csv_path.write_text("# filled by hand\nrow_code,carrier,value,unit\n"
                        "households,natural_gas,10,млн м3\n"  # line 3: fine
                        "nowhere,natural_gas,10,млн м3\n"  # line 4: unknown row
                        "households,unobtainium,10,т\n"  # line 5: unknown carrier
                        "households,natural_gas,1O,млн м3\n"  # line 6: a letter O in the number
                        "households,natural_gas,10,Гкал\n", encoding="utf-8")  # line 7: wrong unit
    err = _refused_form(engine, balance_id, csv_path, "4-ТЭР", r"4-TER.csv \(4-ТЭР\): 4 error")
    assert [e.split(", column")[0] for e in err.context["errors"]] == ["line 4", "line 5", "line 6", "line 7"]
    assert "column unit: unit 'Гкал' does not fit natural_gas" in err.context["errors"][3]

    xlsx = _xlsx_form(tmp_path / "4-TER.xlsx", [("households", "natural_gas", 10, "млн м3"),
                                                ("Население", "Электро", "ten", "МВт·ч"),
                                                ("households", "electricity", 5, "т"),
                                                ("households", "heat", "=1+1", "Гкал")])  # no saved value
    err = _refused_form(engine, balance_id, xlsx, "4-ТЭР", "3 error")
    assert err.context["errors"][:2] == [
        "sheet '4-ТЭР', row 4, column value (C4): 'ten' is not a number",
        "sheet '4-ТЭР', row 5, column unit (D5): unit 'т' does not fit electricity (natural unit: MWh; "
        "or тыс. т у.т.)"]
    assert err.context["errors"][2].startswith("sheet '4-ТЭР', row 6, column value (C6): empty")
    xlsx = _xlsx_form(tmp_path / "23-N.xlsx", [("losses", "natural_gas", 1, "тыс. т у.т.")], sheet="23-Н")
    _refused_form(engine, balance_id, xlsx, "23-Н", r"sheet '23-Н', row 3, column carrier \(B3\): form 23-Н "
                  "does not report natural_gas")
    xlsx = _xlsx_form(tmp_path / "1-TEP.xlsx", [("households", "heat", 1, "тыс. т у.т.")],
                      header=("row_code", "carrier", "value"), sheet="1-ТЭП")
    _refused_form(engine, balance_id, xlsx, "1-ТЭП", r"1-TEP.xlsx, sheet '1-ТЭП', row 2: header lacks unit")
    xlsx = _xlsx_form(tmp_path / "6-TP.xlsx", [("households", "heat", 1, "тыс. т у.т.")], header=None)
    _refused_form(engine, balance_id, xlsx, "6-ТП", r"row 2: header lacks row_code, carrier, value, unit")
    (tmp_path / "broken.xlsx").write_bytes(xlsx.read_bytes()[:300])
    _refused_form(engine, balance_id, tmp_path / "broken.xlsx", "6-ТП", r"broken.xlsx: not a readable \.xlsx form")
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    _refused_form(engine, balance_id, tmp_path / "old.xls", "6-ТП", r"must be \.csv \(UTF-8\) or \.xlsx.*save the")
    (tmp_path / "cp1251.csv").write_bytes("row_code,carrier,value,unit\nНаселение,heat,1,Гкал\n".encode("cp1251"))
    _refused_form(engine, balance_id, tmp_path / "cp1251.csv", "1-ТЭП", "not a UTF-8 CSV form")
    _refused_form(engine, balance_id, csv_path, "5-ТЭР", "unknown statistical form '5-ТЭР'")
    before = _state(engine)
    with pytest.raises(NotFound):
        load_form_file(engine, 10**9, _ok_csv(tmp_path), "4-ТЭР", "test:roundtrip")
    assert _state(engine) == before
    with engine.connect() as conn:  # the good load is still there, untouched by the refusals
        assert conn.execute(text("SELECT value_natural FROM cdt.form_values WHERE balance_id = :b AND source = "
                                 "'4-TER.csv'"), {"b": balance_id}).scalars().all() == [10]


def _ok_csv(tmp_path: Path) -> Path:
    path = tmp_path / "ok.csv"
    path.write_text("row_code,carrier,value,unit\nlosses,heat,1,тыс. т у.т.\n", encoding="utf-8")
    return path


# --- templates ------------------------------------------------------------------------------------------------

# Two sample lines per form, within the carriers it reports: (row, carrier, value, unit, expected thousand tce).
SAMPLES: dict[str, list[tuple]] = {
    "1-ТЭП": [("heat_boilers", "heat", 1500, "тыс. Гкал", 1500 * 0.1429),
              ("Потери при передаче", "Тепловая энергия", "120,5", "тыс. т у.т.", 120.5)],
    "23-Н": [("production", "hydro_renewables", 2000, "млн кВт·ч", 2000 * 0.1229),
             ("losses", "electricity", 300, "тыс. т у.т.", 300.0)],
    "46-ЭЭ": [("losses", "electricity", 5000, "млн кВт·ч", 5000 * 0.1229),
              ("services", "Электро", 12, "тыс. т у.т.", 12.0)],
}
ANY_CARRIER = [("households", "Природный газ", "1 234,5", "тыс. м3", 1234.5 * 1.154 / 1000),
               ("stock_change", "fuel_oil", -12, "т", -12 * 1.37 / 1000)]


def _filled_copies(tmp_path: Path, form: str, stem: str) -> list[Path]:
    samples = SAMPLES.get(form, ANY_CARRIER)
    wb = openpyxl.load_workbook(TEMPLATES / f"{stem}.xlsx")
    for line in samples:
        wb.worksheets[0].append(list(line[:4]))
    wb.save(tmp_path / f"{stem}.xlsx")
    body = (TEMPLATES / f"{stem}.csv").read_text(encoding="utf-8")
    body += "".join(f'{r},{c},"{v}",{u}\n' for r, c, v, u, _ in samples)
    (tmp_path / f"{stem}.csv").write_text(body, encoding="utf-8")
    return [tmp_path / f"{stem}.xlsx", tmp_path / f"{stem}.csv"]


def test_each_template_filled_loads(engine, balance_id, tmp_path):
    assert set(FILE_NAMES) == set(FORMS) and len(FORMS) == 7
    for form, stem in FILE_NAMES.items():
        xlsx, csv = _filled_copies(tmp_path, form, stem)
        # the XLSX and the CSV template say the same: the example line plus the two samples
        assert parse_form_file(xlsx, form) == parse_form_file(csv, form)
        for path in (xlsx, csv):
            report = load_form_file(engine, balance_id, path, form, "test:roundtrip")
            assert report["form_values"] == 3 and report["form"] == form
            with engine.connect() as conn:
                stored = conn.execute(text(
                    "SELECT row_code, carrier, value FROM cdt.form_values WHERE balance_id = :b AND form = :f "
                    "AND source = :s ORDER BY id"), {"b": balance_id, "f": form, "s": path.name}).all()
            assert len(stored) == 3
            for (row, carrier, value), sample in zip(stored[1:], SAMPLES.get(form, ANY_CARRIER), strict=True):
                assert layout.ROW[row].ru == sample[0] or row == sample[0]
                assert carrier == carrier_named(sample[1]).code
                assert value == pytest.approx(sample[4], rel=1e-12)


def test_committed_templates_are_the_generated_ones(tmp_path):
    written = write_templates(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in TEMPLATES.iterdir() if p.suffix in
                                                     (".csv", ".xlsx"))
    for path in written:
        committed = TEMPLATES / path.name
        if path.suffix == ".csv":
            assert path.read_text(encoding="utf-8") == committed.read_text(encoding="utf-8"), path.name
            continue
        a, b = openpyxl.load_workbook(path), openpyxl.load_workbook(committed)
        assert a.sheetnames == b.sheetnames
        for ws in a:
            assert [list(r) for r in ws.iter_rows(values_only=True)] == \
                [list(r) for r in b[ws.title].iter_rows(values_only=True)], f"{path.name}!{ws.title}"
    wb = openpyxl.load_workbook(TEMPLATES / "23-N.xlsx")
    assert wb.sheetnames == ["23-Н", "Справочник"]
    assert [c.value for c in wb["23-Н"][2]] == ["row_code", "carrier", "value", "unit"]
    # drop-down lists of the reference sheet; 23-Н reports only electricity and hydro
    assert [c for c in wb["Справочник"]["C"][1:] if c.value] and \
        {c.value for c in wb["Справочник"]["C"][1:] if c.value} == {"electricity", "hydro_renewables"}
    assert len(wb["23-Н"].data_validations.dataValidation) == 3
