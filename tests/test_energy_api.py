"""Fuel and energy balances over HTTP, on the five real Moscow Oblast workbooks: the stored balance equals the
workbook, the Sankey flows conserve energy, the checks find the real defects, the reconciliation closes the
identities, CO2 and the XLSX export agree with the balance."""

from __future__ import annotations

import io
import math
from pathlib import Path

import openpyxl
import pytest

from energy import checks, co2, layout
from energy.store import load_file
from energy.workbook import read_workbook
from geoserver_app.app import create_app
from geoserver_app.config import Config

FEB = Path(__file__).resolve().parents[1] / "data" / "feb" / "moscow-oblast"


@pytest.fixture(scope="module")
def client(db_url, engine):
    for path in sorted(FEB.glob("balance*.xlsx")):
        load_file(engine, path, "46000000", "test:feb", name="Московская область")
    return create_app(Config(), database_url=db_url).test_client()


def balance_id(client, year: int) -> int:
    found = [b["id"] for b in client.get("/energy/balances").get_json()["balances"]
             if b["year"] == year and b["territory_oktmo"] == "46000000" and b["kind"] == "actual"]
    assert len(found) == 1, "re-loading a year replaces it"
    return found[0]


def values(client, year: int) -> dict:
    return client.get(f"/energy/balances/{balance_id(client, year)}").get_json()["values"]


def test_five_years_listed_and_equal_to_the_workbooks(client):
    years = sorted(b["year"] for b in client.get("/energy/balances").get_json()["balances"]
                   if b["territory_oktmo"] == "46000000")
    assert years == [2016, 2017, 2018, 2019, 2020]
    for year in (2016, 2019, 2020):
        stored = values(client, year)
        book = read_workbook(FEB / f"balance{year}.xlsx").balance
        compared = 0
        for row in layout.ROWS:
            for col in layout.COLUMNS:
                v = book.at[row, col] if row in book.index else math.nan
                if not math.isnan(v):
                    assert stored[row][col] == pytest.approx(v, abs=1e-3), (year, row, col)
                    compared += 1
        assert compared > 200


def test_flows_conserve_energy_at_every_carrier(client):
    bid = balance_id(client, 2019)
    links = client.get(f"/energy/balances/{bid}/flows").get_json()["links"]
    table = values(client, 2019)
    for c in layout.CARRIER_COLUMNS:
        inflow = sum(link["value"] for link in links if link["to"] == c)
        outflow = sum(link["value"] for link in links if link["from"] == c)
        v = {r: table[r][c] or 0.0 for r in layout.ROWS}
        sectors = sum(v[s] for s in ("agriculture", "industry", "construction", "transport", "services",
                                     "households", "non_energy", "other"))
        residual = (v["production"] + v["inflow"] + v["outflow"] + v["stock_change"] + v["electricity_production"]
                    + v["heat_production"] + v["fuel_transformation"] + v["own_use"] + v["losses"] - sectors)
        # a recorded positive discrepancy is drawn as a side flow; what is left is the balance's own non-closure
        drawn = max(v["statistical_discrepancy"], 0.0)
        assert inflow - outflow == pytest.approx(residual - drawn, abs=0.05), c
    # electricity and heat produced come out of their transformation nodes
    assert any(link["from"] == "electricity_production" and link["to"] == "electricity" for link in links)
    assert any(link["from"] == "heat_production" and link["to"] == "heat" for link in links)


def test_checks_find_the_real_defects(client):
    f2019 = client.get(f"/energy/balances/{balance_id(client, 2019)}/checks").get_json()["findings"]
    coal = [f for f in f2019 if f["check"] == "discrepancy" and f["column"] == "coal"]
    assert coal and coal[0]["actual"] == pytest.approx(0.32, abs=1e-6), "the workbook's own coal discrepancy"
    f2020 = client.get(f"/energy/balances/{balance_id(client, 2020)}/checks").get_json()["findings"]
    gas = [f for f in f2020 if f["check"] == "subrows" and f["row"] == "final_consumption"
           and f["column"] == "natural_gas"]
    assert gas and abs(gas[0]["difference"]) == pytest.approx(399.59, abs=0.02), "the 2020 gas sub-rows defect"
    assert client.get(f"/energy/balances/{balance_id(client, 2020)}/checks?tolerance=abc").status_code == 400


def test_reconciliation_closes_the_identities(client, engine):
    bid = balance_id(client, 2019)
    adjustments = client.get(f"/energy/balances/{bid}/reconciliation").get_json()["adjustments"]
    assert adjustments
    from energy.store import load_balance

    table = load_balance(engine, bid)
    for a in adjustments:
        table.at[a["row"], a["column"]] = a["after"]
    left = [f for f in checks.check(table, tolerance=0.01) if f.check in ("resources", "distribution", "subrows",
                                                                           "total", "discrepancy")]
    assert left == [], left[:3]
    assert client.get(f"/energy/balances/{bid}/reconciliation?discrepancy=maybe").status_code == 400


def test_co2_and_xlsx_agree_with_the_balance(client, engine):
    from energy.store import load_balance

    bid = balance_id(client, 2019)
    body = client.get(f"/energy/balances/{bid}/co2").get_json()
    assert body["summary"]["total_t"] == pytest.approx(co2.emissions(load_balance(engine, bid)).total_t, rel=1e-9)
    assert body["by_row"]["households"] > 0
    resp = client.get(f"/energy/balances/{bid}/xlsx")
    assert resp.status_code == 200 and "attachment" in resp.headers["Content-Disposition"]
    ws = openpyxl.load_workbook(io.BytesIO(resp.data))["Баланс"]
    label = layout.ROW["inflow"].ru
    row = next(r for r in ws.iter_rows(values_only=True) if r[0] == label)
    assert row[2 + layout.COLUMNS.index("natural_gas")] == pytest.approx(values(client, 2019)["inflow"]["natural_gas"])


def test_unknown_balances(client):
    assert client.get("/energy/balances/999999").status_code == 404
    assert client.get("/energy/balances/abc/flows").status_code == 404


def test_forms_choice_follows_priority_and_flags_disagreements(client):
    bid = balance_id(client, 2019)
    out = client.get(f"/energy/balances/{bid}/forms?sheet=Электро").get_json()
    chosen = {c["row"]: c for c in out["chosen"]}
    # 23-Н first for electricity (energy/reconcile.py); the workbook's compilers took the RDU's 2493.74 instead
    assert chosen["electricity_production"]["form"] == "23-Н"
    assert chosen["electricity_production"]["value"] == pytest.approx(2544.52)
    flagged = {(d["row"], d["form"]) for d in out["disagreements"]}
    assert out["compilers_choice"]["same"] < out["compilers_choice"]["rows"]
    assert all(abs(d["difference_pct"]) > 5 for d in out["disagreements"] if d["difference_pct"] is not None)
    assert flagged, "forms that differ by more than 5 % are listed"
    bad = client.get(f"/energy/balances/{bid}/forms?sheet=Нет")
    assert bad.status_code == 400 and "Электро" in bad.get_json()["description"]
    assert client.get(f"/energy/balances/{bid}/forms").status_code == 400


def test_single_product_balance_in_natural_units(client):
    bid = balance_id(client, 2019)
    gas = client.get(f"/energy/balances/{bid}/single-product?sheet=Пр-й газ").get_json()
    assert gas["natural_unit"] == "thousand 1000 m3" and gas["tce_per_unit"] == 1.154
    row = next(v for v in gas["values"] if v["row"] == "inflow" and v["form"] == "В баланс")
    # thousand tce / 1.154 tce per 1000 m3 = thousand (1000 m3), i.e. million m3
    assert row["natural"] == pytest.approx(row["thousand_tce"] / 1.154, rel=1e-4)
    assert row["thousand_tce"] == pytest.approx(values(client, 2019)["inflow"]["natural_gas"], abs=0.01)
    assert client.get(f"/energy/balances/{bid}/single-product?sheet=Нет").status_code == 400
