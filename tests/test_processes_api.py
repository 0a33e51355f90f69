"""OGC API - Processes - Part 1 (core, job list, dismiss) against the real PostGIS, with processes of this module
only: test-echo (returns its inputs), test-slow (progress in steps), test-long (long-running: async only),
test-fail (raises) and test-restricted (federal users only). Jobs run in threads of the app that accepted them;
a second app on the same database plays another worker that answers status requests from the table."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import text

from geoserver_app.app import create_app
from geoserver_app.config import Config
from layers.errors import InvalidParameterValue
from spatial import jobs, processes
from spatial.processes import JobDismissed, Process, RunContext
from tests.conftest import bearer, live_server

EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
STOPPED: set[str] = set()  # tags of test-slow runs that saw JobDismissed
COMPLETED: set[str] = set()


def _echo(ctx: RunContext, inputs: dict) -> dict:
    return {"echo": {"text": inputs["text"], "times": inputs["times"], "who": ctx.principal.actor},
            "length": len(inputs["text"]) * inputs["times"]}


def _slow(ctx: RunContext, inputs: dict) -> dict:
    steps, tag = inputs["steps"], inputs["tag"]
    try:
        for i in range(steps):
            ctx.progress(i / steps, f"step {i + 1} of {steps}")
            time.sleep(inputs["delay"])
    except JobDismissed:
        STOPPED.add(tag)
        raise
    COMPLETED.add(tag)
    return {"done": steps}


def _fail(ctx: RunContext, inputs: dict) -> dict:
    if inputs["kind"] == "invalid":
        raise InvalidParameterValue("the river is not a road")
    return {"never": 1 // 0}


SLOW_INPUTS = {"steps": {"title": "Steps", "schema": {"type": "integer", "minimum": 1, "default": 5}},
               "delay": {"title": "Seconds per step", "schema": {"type": "number", "minimum": 0, "default": 0.05}},
               "tag": {"title": "Marker", "schema": {"type": "string", "default": ""}}}
TEST_PROCESSES = [
    Process("test-echo", "Echo", "Returns its inputs", run=_echo, keywords=("test",),
            inputs={"text": {"title": "Text", "schema": {"type": "string"}},
                    "times": {"title": "Times", "schema": {"type": "integer", "minimum": 1, "maximum": 5,
                                                           "default": 1}}},
            outputs={"echo": {"title": "The inputs", "schema": {"type": "object"}},
                     "length": {"title": "Length", "schema": {"type": "integer"}}}),
    Process("test-slow", "Slow", "Counts in steps", run=_slow, inputs=SLOW_INPUTS,
            outputs={"done": {"title": "Steps done", "schema": {"type": "integer"}}}),
    Process("test-long", "Long", "Counts in steps, as a job", run=_slow, inputs=SLOW_INPUTS, long_running=True,
            outputs={"done": {"title": "Steps done", "schema": {"type": "integer"}}}),
    Process("test-fail", "Fail", "Raises", run=_fail,
            inputs={"kind": {"title": "Kind", "schema": {"type": "string", "enum": ["invalid", "bug"]}}},
            outputs={"never": {"title": "Nothing", "schema": {"type": "integer"}}}),
    Process("test-restricted", "Restricted", "Federal users only", run=_echo, roles=("federal",),
            inputs={"text": {"title": "Text", "schema": {"type": "string"}},
                    "times": {"title": "Times", "schema": {"type": "integer", "default": 1}}},
            outputs={"echo": {"title": "Echo", "schema": {"type": "object"}},
                     "length": {"title": "Length", "schema": {"type": "integer"}}}),
]


def make_app(db_url: str):
    app = create_app(Config(), database_url=db_url)
    if "processes" not in app.blueprints:  # until app.py registers it
        from geoserver_app import processes_api

        app.register_blueprint(processes_api.blueprint)
    return app


def _shutdown(app) -> None:
    found = app.extensions.get("cdt_jobs")
    if found:
        found[1].shutdown(wait=True)


@pytest.fixture(scope="module")
def apps(db_url) -> Iterator[tuple]:
    """Two workers on one database: (app, second app)."""
    for p in TEST_PROCESSES:
        processes.register(p)
    first, second = make_app(db_url), make_app(db_url)
    yield first, second
    for app in (first, second):
        _shutdown(app)
    for p in TEST_PROCESSES:
        processes._PROCESSES.pop(p.id, None)


@pytest.fixture(scope="module")
def client(apps):
    return apps[0].test_client()


@pytest.fixture(scope="module")
def other(apps):
    """A client of the second worker."""
    return apps[1].test_client()


def execute(client, process_id: str, inputs: dict, token: str | None = None, prefer: str | None = None, **body):
    headers = bearer(token) if token else {}
    if prefer:
        headers["Prefer"] = prefer
    return client.post(f"/processes/{process_id}/execution", json={"inputs": inputs, **body}, headers=headers)


def start_job(client, token: str, process_id: str, inputs: dict) -> str:
    resp = execute(client, process_id, inputs, token, prefer="respond-async")
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["jobID"]


def wait_for(client, job_id: str, token: str, until=lambda s: s["status"] not in jobs.ACTIVE,
             timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        resp = client.get(f"/jobs/{job_id}", headers=bearer(token))
        assert resp.status_code == 200, resp.get_json()
        status = resp.get_json()
        if until(status):
            return status
        assert time.monotonic() < deadline, f"job {job_id} still {status}"
        time.sleep(0.05)


def exception(resp, status: int, code: str, kind: str | None = None) -> dict:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    body = resp.get_json()
    assert body["code"] == code and body["description"], body
    if kind:
        assert body["type"] == EXC + kind and body["status"] == status, body
    return body


# --- describing -----------------------------------------------------------------------------------------------
def test_list_and_describe(client, tokens):
    body = client.get("/processes").get_json()
    by_id = {p["id"]: p for p in body["processes"]}
    assert {"test-echo", "test-slow", "test-long", "test-fail"} <= set(by_id)
    assert "test-restricted" not in by_id  # anonymous may not run it: not listed
    echo = by_id["test-echo"]
    assert echo["version"] and echo["jobControlOptions"] == ["sync-execute", "async-execute", "dismiss"]
    assert echo["outputTransmission"] == ["value"]
    rels = {ln["rel"]: ln["href"] for ln in echo["links"]}
    assert rels["self"].endswith("/processes/test-echo")
    assert rels["http://www.opengis.net/def/rel/ogc/1.0/execute"].endswith("/processes/test-echo/execution")
    assert by_id["test-long"]["jobControlOptions"] == ["async-execute", "dismiss"]
    listed = client.get("/processes", headers=bearer(tokens["t_federal"])).get_json()["processes"]
    assert "test-restricted" in {p["id"] for p in listed}

    desc = client.get("/processes/test-echo").get_json()
    assert desc["id"] == "test-echo" and desc["title"] == "Echo"
    assert desc["inputs"]["text"]["schema"] == {"type": "string"} and desc["inputs"]["text"]["minOccurs"] == 1
    assert desc["inputs"]["times"]["minOccurs"] == 0 and desc["inputs"]["times"]["schema"]["maximum"] == 5
    assert set(desc["outputs"]) == {"echo", "length"} and desc["outputs"]["length"]["schema"]["type"] == "integer"


def test_openapi_and_conformance_lists(client):
    doc = client.get("/api").get_json()
    assert "post" in doc["paths"]["/processes/{processId}/execution"]
    assert {"get", "delete"} <= set(doc["paths"]["/jobs/{jobId}"])
    from geoserver_app.processes_api import CONFORMANCE

    assert "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/dismiss" in CONFORMANCE


# --- synchronous execution ---------------------------------------------------------------------------------
def test_sync_execution_returns_outputs(client, engine):
    before = engine.connect().execute(text("SELECT count(*) FROM cdt.jobs")).scalar()
    resp = execute(client, "test-echo", {"text": "hi", "times": 2}, response="document")
    assert resp.status_code == 200
    assert resp.get_json() == {"echo": {"text": "hi", "times": 2, "who": "anonymous"}, "length": 4}
    # raw with one output: the bare value; a qualified value {"value": ...} is unwrapped; defaults filled
    resp = execute(client, "test-echo", {"text": {"value": "abc"}}, outputs={"length": {}}, response="raw")
    assert resp.status_code == 200 and resp.get_json() == 3
    # the standard's default (raw) with two outputs: the document (no multipart)
    assert set(execute(client, "test-echo", {"text": "x"}).get_json()) == {"echo", "length"}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM cdt.jobs")).scalar() == before  # no job rows


def test_bad_requests(client, tokens):
    exception(execute(client, "test-echo", {"text": "a", "colour": "red"}), 400, "InvalidParameterValue")
    exception(execute(client, "test-echo", {"text": 5}), 400, "InvalidParameterValue")
    exception(execute(client, "test-echo", {"times": 2}), 400, "InvalidParameterValue")
    exception(execute(client, "test-echo", {"text": "a", "times": 9}), 400, "InvalidParameterValue")
    exception(execute(client, "test-echo", {"text": {"href": "http://x"}}), 400, "InvalidParameterValue")
    exception(execute(client, "test-echo", {"text": "a"}, outputs={"colour": {}}), 400, "InvalidParameterValue")
    exception(execute(client, "test-echo", {"text": "a"}, outputs={"length": {"transmissionMode": "reference"}}),
              400, "InvalidParameterValue")
    exception(execute(client, "test-echo", {"text": "a"}, response="xml"), 400, "InvalidParameterValue")
    exception(execute(client, "test-echo", {"text": "a"}, mode="async"), 400, "InvalidParameterValue")
    exception(client.post("/processes/test-echo/execution", data="{nope", content_type="application/json"),
              400, "InvalidParameterValue")
    exception(client.post("/processes/test-echo/execution", json=[1]), 400, "InvalidParameterValue")
    exception(client.post("/processes/test-echo/execution", data="text=a", content_type="text/plain"),
              415, "UnsupportedMediaType")
    exception(client.get("/processes?colour=red"), 400, "InvalidParameterValue")
    exception(client.get("/processes?limit=\u00b2"), 400, "InvalidParameterValue")
    assert len(client.get("/processes?limit=2").get_json()["processes"]) == 2
    exception(client.get("/processes/test-echo?f=html"), 400, "InvalidParameterValue")
    exception(execute(client, "no-such", {}), 404, "NoSuchProcess", "no-such-process")
    exception(client.get("/processes/no-such"), 404, "NoSuchProcess", "no-such-process")
    for path in (f"/jobs/{uuid.uuid4()}", f"/jobs/{uuid.uuid4()}/results", "/jobs/not-a-uuid"):
        exception(client.get(path, headers=bearer(tokens["t_city_vologda"])), 404, "NoSuchJob", "no-such-job")
    exception(client.delete(f"/jobs/{uuid.uuid4()}", headers=bearer(tokens["t_city_vologda"])),
              404, "NoSuchJob", "no-such-job")
    exception(client.get("/jobs?status=sleeping", headers=bearer(tokens["t_city_vologda"])),
              400, "InvalidParameterValue")


# --- jobs -------------------------------------------------------------------------------------------------------
def test_async_job_from_creation_to_results(client, other, tokens, engine):
    token = tokens["t_city_vologda"]
    resp = execute(client, "test-echo", {"text": "async"}, token, prefer="respond-async", response="document")
    assert resp.status_code == 201
    assert resp.headers["Preference-Applied"] == "respond-async"
    status = resp.get_json()
    job_id = status["jobID"]
    assert resp.headers["Location"].endswith(f"/jobs/{job_id}")
    assert status["processID"] == "test-echo" and status["type"] == "process"
    assert status["status"] in ("accepted", "running", "successful") and "created" in status
    done = wait_for(other, job_id, token)  # answered by the other worker, from the table
    assert done["status"] == "successful" and done["progress"] == 100
    assert {"started", "finished", "updated"} <= set(done)
    results_link = next(ln["href"] for ln in done["links"] if ln["rel"].endswith("/results"))
    assert results_link.endswith(f"/jobs/{job_id}/results")
    results = other.get(f"/jobs/{job_id}/results", headers=bearer(token))
    assert results.status_code == 200
    assert results.get_json() == {"echo": {"text": "async", "times": 1, "who": "user:t_city_vologda"}, "length": 5}
    listed = client.get("/jobs?processID=test-echo", headers=bearer(token)).get_json()["jobs"]
    assert job_id in [j["jobID"] for j in listed]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM cdt.audit_log WHERE action = 'job.create' AND "
                                 "target = :t AND actor = 'user:t_city_vologda'"), {"t": f"job/{job_id}"}).scalar() == 1


def test_progress_is_visible_from_another_worker(client, other, tokens):
    token = tokens["t_analyst_vologda"]
    job_id = start_job(client, token, "test-slow", {"steps": 8, "delay": 0.2})
    seen: list[int] = []

    def record(status: dict) -> bool:
        seen.append(status["progress"])
        return status["status"] not in jobs.ACTIVE

    final = wait_for(other, job_id, token, record)
    assert final["status"] == "successful" and final["message"] == "done"
    assert seen == sorted(seen), seen  # never backwards
    assert seen[0] < 100 and seen[-1] == 100
    assert any(0 < p < 100 for p in seen), seen  # progress between, written while it ran
    # the execute request asked for nothing: the standard's "raw", one output, so its bare value
    assert other.get(f"/jobs/{job_id}/results", headers=bearer(token)).get_json() == 8


def test_long_running_process_runs_as_a_job_without_prefer(client, tokens):
    resp = execute(client, "test-long", {"steps": 1, "delay": 0}, tokens["t_city_vologda"])
    assert resp.status_code == 201 and "Preference-Applied" not in resp.headers
    assert wait_for(client, resp.get_json()["jobID"], tokens["t_city_vologda"])["status"] == "successful"
    exception(execute(client, "test-long", {"steps": 1}), 401, "Unauthorized")  # a job needs an owner


def test_results_of_an_unfinished_job_are_not_ready(client, tokens):
    token = tokens["t_city_vologda"]
    tag = uuid.uuid4().hex
    job_id = start_job(client, token, "test-slow", {"steps": 200, "delay": 0.02, "tag": tag})
    wait_for(client, job_id, token, lambda s: s["status"] == "running")
    exception(client.get(f"/jobs/{job_id}/results", headers=bearer(token)), 404, "ResultNotReady",
              "result-not-ready")
    assert client.delete(f"/jobs/{job_id}", headers=bearer(token)).status_code == 200


def test_dismiss_stops_a_running_job(client, other, tokens, engine):
    token = tokens["t_city_vologda"]
    tag = uuid.uuid4().hex
    job_id = start_job(client, token, "test-slow", {"steps": 200, "delay": 0.05, "tag": tag})
    wait_for(client, job_id, token, lambda s: s["status"] == "running")
    resp = other.delete(f"/jobs/{job_id}", headers=bearer(token))  # any worker may dismiss
    assert resp.status_code == 200 and resp.get_json()["status"] == "dismissed"
    deadline = time.monotonic() + 5
    while tag not in STOPPED:  # the thread stops at its next progress call
        assert time.monotonic() < deadline, "the dismissed job kept running"
        time.sleep(0.05)
    assert tag not in COMPLETED
    status = client.get(f"/jobs/{job_id}", headers=bearer(token)).get_json()
    assert status["status"] == "dismissed" and "results" not in {ln["rel"].rsplit("/", 1)[-1] for ln in
                                                                  status["links"]}
    exception(client.get(f"/jobs/{job_id}/results", headers=bearer(token)), 404, "ResultNotAvailable",
              "result-not-available")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT results FROM cdt.jobs WHERE id = :id"), {"id": job_id}).scalar() is None
        assert conn.execute(text("SELECT count(*) FROM cdt.audit_log WHERE action = 'job.dismiss' AND target = :t"),
                            {"t": f"job/{job_id}"}).scalar() == 1
    # dismissing a finished job removes it
    again = client.delete(f"/jobs/{job_id}", headers=bearer(token))
    assert again.status_code == 200 and again.get_json()["status"] == "dismissed"
    exception(client.get(f"/jobs/{job_id}", headers=bearer(token)), 404, "NoSuchJob", "no-such-job")


def test_failing_process(client, tokens):
    token = tokens["t_city_vologda"]
    job_id = start_job(client, token, "test-fail", {"kind": "invalid"})
    status = wait_for(client, job_id, token)
    assert status["status"] == "failed" and status["message"] == "the river is not a road"
    body = exception(client.get(f"/jobs/{job_id}/results", headers=bearer(token)), 400, "InvalidParameterValue")
    assert body["description"] == "the river is not a road"
    # a bug in a process: failed, without its details; the server's own answer is still an exception body
    job_id = start_job(client, token, "test-fail", {"kind": "bug"})
    status = wait_for(client, job_id, token)
    assert status["status"] == "failed" and "division" not in status["message"]
    body = exception(client.get(f"/jobs/{job_id}/results", headers=bearer(token)), 500, "ServerError")
    assert "division" not in body["description"]
    # synchronously: the process's error is the response
    exception(execute(client, "test-fail", {"kind": "invalid"}), 400, "InvalidParameterValue")


def test_access(client, tokens, engine):
    owner, stranger = tokens["t_city_vologda"], tokens["t_enterprise"]
    resp = execute(client, "test-echo", {"text": "a"}, prefer="respond-async")
    exception(resp, 401, "Unauthorized")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    exception(client.get("/jobs"), 401, "Unauthorized")
    job_id = start_job(client, owner, "test-echo", {"text": "mine"})
    wait_for(client, job_id, owner)
    for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/results"):
        exception(client.get(path, headers=bearer(stranger)), 404, "NoSuchJob", "no-such-job")
    exception(client.delete(f"/jobs/{job_id}", headers=bearer(stranger)), 404, "NoSuchJob", "no-such-job")
    assert job_id not in [j["jobID"] for j in client.get("/jobs", headers=bearer(stranger)).get_json()["jobs"]]
    # federal users see every job
    assert client.get(f"/jobs/{job_id}", headers=bearer(tokens["t_federal"])).status_code == 200
    federal_list = client.get("/jobs?limit=1000", headers=bearer(tokens["t_federal"])).get_json()["jobs"]
    assert job_id in [j["jobID"] for j in federal_list]
    assert client.get(f"/jobs/{job_id}", headers=bearer(owner)).get_json()["status"] == "successful"
    # a process for some roles only
    exception(execute(client, "test-restricted", {"text": "a"}), 401, "Unauthorized")
    exception(execute(client, "test-restricted", {"text": "a"}, owner), 403, "Forbidden")
    exception(client.get("/processes/test-restricted", headers=bearer(owner)), 403, "Forbidden")
    resp = execute(client, "test-restricted", {"text": "a"}, tokens["t_federal"], response="document")
    assert resp.status_code == 200 and resp.get_json()["echo"]["who"] == "user:t_federal"


def test_worker_start_fails_orphaned_jobs_only(apps, db_url, tokens, engine):
    client, token = apps[0].test_client(), tokens["t_city_vologda"]
    orphan = str(uuid.uuid4())
    with engine.begin() as conn:  # a job whose worker died: active, and nobody holds its lease
        conn.execute(text("INSERT INTO cdt.jobs (id, process_id, status, inputs, created_by, started_at) VALUES "
                          "(:id, 'test-slow', 'running', '{}', 'user:t_city_vologda', now())"), {"id": orphan})
    live = start_job(client, token, "test-slow", {"steps": 200, "delay": 0.02, "tag": uuid.uuid4().hex})
    wait_for(client, live, token, lambda s: s["status"] == "running")
    third = make_app(db_url)  # a worker starting
    try:
        status = third.test_client().get(f"/jobs/{orphan}", headers=bearer(token)).get_json()
        assert status["status"] == "failed" and status["message"] == jobs.RESTARTED
        assert client.get(f"/jobs/{live}", headers=bearer(token)).get_json()["status"] == "running"
    finally:
        _shutdown(third)
        client.delete(f"/jobs/{live}", headers=bearer(token))


# --- a real client -------------------------------------------------------------------------------------------
def test_owslib_lists_and_executes(apps, tokens):
    from owslib.ogcapi import REQUEST_HEADERS
    from owslib.ogcapi.processes import Processes

    saved = dict(REQUEST_HEADERS)  # OWSLib keeps its headers in a module-level dict: restore it after
    try:
        with live_server(apps[0], "processes-owslib") as url:
            client = Processes(url)
            assert "test-echo" in {p["id"] for p in client.processes()}
            assert set(client.process("test-echo")["inputs"]) == {"text", "times"}
            result = client.execute("test-echo", {"text": "owslib", "times": 2})
            assert result == {"echo": {"text": "owslib", "times": 2, "who": "anonymous"}, "length": 12}
            # as a job, signed in
            signed = Processes(url, headers=bearer(tokens["t_city_vologda"]))
            status = signed.execute("test-echo", {"text": "later"}, async_=True)
            location = signed.response_headers["Location"]
            assert status["status"] in ("accepted", "running", "successful") and location.endswith(status["jobID"])
            deadline = time.monotonic() + 10
            while (job := requests.get(location, headers=bearer(tokens["t_city_vologda"]), timeout=10).json()
                   )["status"] != "successful":
                assert time.monotonic() < deadline and job["status"] in jobs.ACTIVE, job
                time.sleep(0.05)
            results = requests.get(location + "/results", headers=bearer(tokens["t_city_vologda"]), timeout=10)
            assert results.json()["length"] == 5
    finally:
        REQUEST_HEADERS.clear()
        REQUEST_HEADERS.update(saved)


ODD_BODIES = [{"inputs": [1]}, {"inputs": {"text": None}}, {"inputs": {"text": {"value": None}}}, {"outputs": []},
              {"outputs": {"echo": None}}, {"response": 5}, {"response": ["raw"]}, {"inputs": "text"},
              {"inputs": {"text": "a", "times": True}}, {"inputs": {"text": "a", "times": 2.0}},
              {"inputs": {"text": "a"}, "subscriber": {"successUri": "http://example.org"}}]


@pytest.mark.parametrize("prefer", [None, "respond-async"])
def test_odd_execute_requests_are_client_errors(client, tokens, prefer):
    headers = {**bearer(tokens["t_federal"]), **({"Prefer": prefer} if prefer else {})}
    for body in ODD_BODIES:
        resp = client.post("/processes/test-echo/execution", json=body, headers=headers)
        assert resp.status_code == 400 and resp.get_json()["code"] == "InvalidParameterValue", (body, resp.get_json())
    deep = "[" * 10000 + "]" * 10000
    resp = client.post("/processes/test-echo/execution", data=deep, content_type="application/json", headers=headers)
    assert resp.status_code == 400
    # a NUL fits a Python string but not PostgreSQL's jsonb: a job with it is refused, the sync run answers
    resp = client.post("/processes/test-echo/execution", json={"inputs": {"text": "a\u0000b"}}, headers=headers)
    assert resp.status_code == (400 if prefer else 200), resp.get_json()
