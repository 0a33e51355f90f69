"""Energy processes and the per-capita map data, on the real Moscow Oblast 2019 balance. Municipal balances and a
Vologda balance are test fixtures made by scaling the real one (say so: no real municipal balances exist here)."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import text

from energy import co2, forecast
from energy.store import list_balances, load_balance, load_file, save_workbook
from energy.workbook import read_workbook
from geoserver_app.app import create_app
from geoserver_app.config import Config
from tests.conftest import bearer

FEB = Path(__file__).resolve().parents[1] / "data" / "feb" / "moscow-oblast"


@pytest.fixture(scope="module")
def client(db_url):
    return create_app(Config(), database_url=db_url).test_client()


@pytest.fixture(scope="module")
def region(engine) -> int:
    return load_file(engine, FEB / "balance2019.xlsx", "46000000", "test:feb", name="Московская область")["balance_id"]


def save_scaled(engine, share: float, oktmo: str, name: str, perturb: tuple[str, str, float] | None = None) -> int:
    """A fixture balance: the real 2019 one times `share` (optionally one cell moved), stored like a workbook."""
    data = read_workbook(FEB / "balance2019.xlsx")
    balance = data.balance * share
    if perturb:
        balance.at[perturb[0], perturb[1]] += perturb[2]
    cells = {(r, c): {"cell": None, "note": f"test fixture: {share} x Moscow Oblast 2019"}
             for r in balance.index for c in balance.columns if not math.isnan(balance.at[r, c])}
    fake = replace(data, path=Path(f"fixture-{oktmo}.xlsx"), balance=balance, cells=cells, sheets={}, defects=[])
    return save_workbook(engine, fake, oktmo, name, "test:feb")


def execute(client, process: str, inputs: dict, **kw):
    return client.post(f"/processes/{process}/execution", json={"inputs": inputs, "response": "document"}, **kw)


def test_forecast_starts_from_the_actual_balance_and_closes(client, engine, region):
    scenario = {"name": "growth", "horizon_year": 2030, "population_growth": 0.004,
                "sector_growth": {"industry": 0.02, "services": 0.03}, "intensity_trend": {"industry": -0.01}}
    out = execute(client, "feb-forecast", {"balance_id": region, "scenario": scenario}).get_json()
    first = out["summary"]["by_year"][0]
    base = load_balance(engine, region)
    assert first["year"] == 2019
    assert first["primary_consumption"] == pytest.approx(base.at["primary_consumption", "total"], abs=1e-3)
    assert [y["year"] for y in out["summary"]["by_year"]] == list(range(2019, 2031))
    assert max(abs(v) for v in out["summary"]["identity_errors"].values()) < 1e-6, "the forecast closes"
    # independently: the same scenario through energy.forecast gives the same horizon
    expected = forecast.forecast(base, 2019, forecast.Scenario(
        name="growth", horizon_year=2030, population_growth=0.004, sector_growth={"industry": 0.02, "services": 0.03},
        intensity_trend={"industry": -0.01})).balances[2030]
    assert out["horizon_balance"]["final_consumption"]["total"] == pytest.approx(
        expected.at["final_consumption", "total"], rel=1e-6)
    bad = execute(client, "feb-forecast", {"balance_id": region, "scenario": {"name": "x", "horizon_year": 2030,
                                                                                "warp_speed": 9}})
    assert bad.status_code == 400 and "unknown scenario field" in bad.get_json()["description"]
    leontief = {"name": "io", "horizon_year": 2025, "input_output": {
        "sectors": ["industry", "services"], "technical_coefficients": [[0.9, 0.5], [0.5, 0.9]],
        "final_demand": [100, 100]}}
    refused = execute(client, "feb-forecast", {"balance_id": region, "scenario": leontief})
    assert refused.status_code == 400, "a non-productive input-output matrix is refused"


def test_sensitivity_runs_as_a_job(client, region, tokens):
    resp = client.post("/processes/feb-sensitivity/execution", headers=bearer(tokens["t_analyst_vologda"]), json={
        "inputs": {"balance_id": region, "scenario": {"name": "s", "horizon_year": 2025, "population_growth": 0.01,
                                                      "sector_growth": {"industry": 0.03}}, "result": "co2"},
        "response": "document"})
    assert resp.status_code == 201
    location = resp.headers["Location"]
    for _ in range(1200):
        status = client.get(location, headers=bearer(tokens["t_analyst_vologda"])).get_json()
        if status["status"] in ("successful", "failed"):
            break
        time.sleep(0.1)
    assert status["status"] == "successful", status
    tornado = client.get(f"{location}/results", headers=bearer(tokens["t_analyst_vologda"])).get_json()["tornado"]
    drivers = {row["driver"]: row["elasticity"] for row in tornado}
    assert abs(tornado[0]["elasticity"]) >= abs(tornado[-1]["elasticity"]), "sorted as a tornado"
    assert any(e and e > 0 for e in drivers.values()), "growth raises CO2"


def test_consolidation_sums_municipal_balances(client, engine, region):
    parts = [save_scaled(engine, s, f"4600000{i}", f"Муниципалитет {i}") for i, s in enumerate((0.5, 0.3, 0.2), 1)]
    out = execute(client, "feb-consolidate", {"municipal": parts, "region": region}).get_json()
    assert out["year"] == 2019 and out["municipal"] == 3
    assert out["differences"] == [], "a split of the region sums back to it"
    moved = save_scaled(engine, 0.2, "46000009", "Муниципалитет 9", perturb=("households", "natural_gas", 25.0))
    out = execute(client, "feb-consolidate", {"municipal": parts[:2] + [moved], "region": region}).get_json()
    flagged = {(d["row"], d["column"]) for d in out["differences"]}
    assert ("households", "natural_gas") in flagged
    assert execute(client, "feb-consolidate", {"municipal": []}).status_code == 400


def test_per_capita_map_data(client, engine, region):
    vologda = save_scaled(engine, 301642 / 7_700_000, "19701000", "г Вологда")
    features = client.get("/energy/territories?year=2019").get_json()["features"]
    assert [f["properties"]["oktmo"] for f in features] == ["19701000"], "only territories with a boundary"
    p = features[0]["properties"]
    balance = load_balance(engine, vologda)
    assert p["final_consumption_tce_per_capita"] == pytest.approx(
        balance.at["final_consumption", "total"] * 1000 / 301642, rel=1e-4)
    assert p["co2_t_per_capita"] == pytest.approx(co2.emissions(balance).total_t / 301642, rel=1e-4)
    assert features[0]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert client.get("/energy/territories?year=20x9").status_code == 400
    assert any(b["territory_oktmo"] == "19701000" for b in list_balances(engine))
    with engine.begin() as conn:  # the city's fixture balance must not become its balance for other modules
        conn.execute(text("DELETE FROM cdt.fuel_balances WHERE id = :b"), {"b": vologda})
