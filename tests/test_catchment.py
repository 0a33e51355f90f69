"""Capacity-aware accessibility on Vologda (2SFCA, gravity) through its process: checked against properties the
definitions imply and against an independent computation from the travel-time matrix."""

from __future__ import annotations

import numpy as np
import pytest

from geoserver_app.app import create_app
from geoserver_app.config import Config
from layers.access import ANONYMOUS
from spatial import access_service as svc
from spatial import accessibility as acc


@pytest.fixture(scope="module")
def client(db_url):
    return create_app(Config(), database_url=db_url).test_client()


def run(client, **inputs) -> dict:
    resp = client.post("/processes/catchment-accessibility/execution",
                       json={"inputs": {"territory": "19701000", **inputs}, "response": "document"})
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def test_2sfca_shares_out_exactly_the_supply_within_reach(client, engine):
    out = run(client, facility_type="kindergarten", method="2sfca", minutes=10)
    network, homes = svc.walk_homes(engine, ANONYMOUS, "19701000")
    index = {b["id"]: b["index"] for b in out["buildings"]}
    a = np.array([index[i] for i in homes.ids.tolist()])
    # Luo & Wang: sum_i P_i A_i = sum of the capacities of facilities with anybody in their catchment
    with engine.connect() as conn:
        territory = svc._territory(conn, "19701000")
        facilities = svc._facilities(conn, ANONYMOUS, network, "kindergarten", territory)
    times = acc.travel_times(network, homes.snaps, facilities.snaps, limit=600) / 60
    reached = ((times <= 10).T @ homes.residents) > 0
    assert (a * homes.residents).sum() == pytest.approx(facilities.capacities[reached].sum(), rel=1e-4)
    # independently: R_j = S_j / sum of residents within 10 min, A_i = sum of R_j within 10 min
    within = times <= 10
    r = np.divide(facilities.capacities, within.T @ homes.residents, out=np.zeros(len(facilities.ids)),
                  where=(within.T @ homes.residents) > 0)
    assert np.allclose(a, within @ r, atol=1e-6)


def test_gravity_grows_with_a_slower_decay(client):
    fast = run(client, facility_type="school", method="gravity", beta=0.3)["summary"]["summary"]["mean"]
    slow = run(client, facility_type="school", method="gravity", beta=0.05)["summary"]["summary"]["mean"]
    assert 0 < fast < slow


def test_bad_inputs(client):
    for inputs, words in (({"facility_type": "spaceport"}, "unknown facility type"),
                          ({"facility_type": "school", "method": "magic"}, "must be one of"),
                          ({"facility_type": "school", "beta": 0}, "must be more than 0")):
        resp = client.post("/processes/catchment-accessibility/execution", json={"inputs": inputs})
        assert resp.status_code == 400 and words in resp.get_json()["description"], resp.get_json()
