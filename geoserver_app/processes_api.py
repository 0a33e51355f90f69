"""OGC API - Processes - Part 1: Core 1.0 (OGC 18-062r2) over the registry of `spatial.processes`, with job list
and dismiss. Thin handlers: parse, check access, call `spatial.jobs`, encode.

Decisions (with the standard):
- Execution mode (/req/core/process-execute-default-execution-mode, -auto-execution-mode): a process offers
  sync-execute and async-execute unless it is `long_running`, which offers async-execute only. Without a
  `Prefer` header a process that offers both runs synchronously (200); `Prefer: respond-async` runs it as a job
  (201, `Location: /jobs/{jobId}`, `Preference-Applied: respond-async`); a long-running process always runs as a
  job. OWSLib's `Prefer: respond-sync` is not an RFC 7240 preference and changes nothing.
- Who: a process's `roles` (None: everybody) decide who may see and run it (anonymous 401, others 403). A
  synchronous run needs nobody signed in; a job needs an owner, so async execution needs a signed-in user (401).
  Jobs are seen and dismissed by their owner and federal users only; anybody else gets 404 no-such-job.
- `response`: "raw" (the standard's default) answers with the bare value when one output is returned;
  "document" (OWSLib's default) with `{outputId: value}`. Raw with several outputs answers with the document too:
  multipart/related is not offered. Outputs travel by value only.
- Dismiss (/conf/dismiss): an accepted or running job becomes `dismissed` (its thread stops at its next progress
  call, nothing it computed is kept); a finished job is removed. Both answer 200 with status "dismissed". The
  results of a dismissed job are 404 result-not-available.
- Synchronous runs leave no job row; every job creation and dismissal is written to the audit log.
"""

from __future__ import annotations

import os
import re
import threading

import orjson
from flask import Blueprint, Flask, Response, current_app, request
from sqlalchemy.exc import SQLAlchemyError

from geoserver_app.auth import audit, principal
from geoserver_app.ogc import JSON, base_url, check_params, engine, json_response, link, reader, single
from geoserver_app.openapi import api, header, query
from geoserver_app.openapi import json_response as doc_response
from layers.access import Principal, Unauthorized
from layers.errors import CDTError, Forbidden, InvalidParameterValue, NotFound, UnsupportedMediaType
from spatial import jobs, processes
from spatial.processes import Process

blueprint = Blueprint("processes", __name__)

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/ogc-process-description",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/job-list",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/dismiss",
]
REL = "http://www.opengis.net/def/rel/ogc/1.0/"
EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
TAG = ("Processes",)
BODY_KEYS = {"inputs", "outputs", "response", "subscriber"}
STATUSES = ("accepted", "running", "successful", "failed", "dismissed")


class ProcessesException(CDTError):
    """An exception of OGC API Processes: the platform's {code, description} and RFC 7807's type/title/status/
    detail (exception.yaml of the standard)."""

    def __init__(self, kind: str, code: str, title: str, status: int, detail: str):
        super().__init__(detail, status, code, {"type": EXCEPTIONS + kind, "title": title, "status": status,
                                                "detail": detail})


def no_such_process(process_id: str) -> ProcessesException:
    return ProcessesException("no-such-process", "NoSuchProcess", "No such process", 404,
                              f"no process '{process_id}'; see /processes")


def no_such_job(job_id: str) -> ProcessesException:
    return ProcessesException("no-such-job", "NoSuchJob", "No such job", 404, f"no job '{job_id}'; see /jobs")


# --- the job runner of this worker process ------------------------------------------------------------------
_runner_lock = threading.Lock()


def runner() -> jobs.JobRunner:
    """This app's runner in this process, made on first use (after a fork, a new one: threads do not survive)."""
    app = current_app._get_current_object()
    with _runner_lock:
        pid, found = app.extensions.get("cdt_jobs", (None, None))
        if found is None or pid != os.getpid():
            found = jobs.JobRunner(engine())
            app.extensions["cdt_jobs"] = (os.getpid(), found)
        return found


def _worker_start(state) -> None:
    """A starting worker fails the jobs a dead worker left active (jobs of live workers are leased: kept)."""
    app: Flask = state.app
    try:
        jobs.recover(app.extensions["cdt_engine"])
    except SQLAlchemyError as exc:  # no database or not migrated yet: nothing to recover
        app.logger.warning("job recovery skipped: %s", str(exc).splitlines()[0])


blueprint.record_once(_worker_start)


# --- helpers --------------------------------------------------------------------------------------------------
def _json_only() -> None:
    fmt = single("f")
    if fmt is not None and fmt.lower() not in ("json", "application/json"):
        raise InvalidParameterValue(f"f={fmt} is not offered; use json")


def _limit(default: int) -> int:
    raw = single("limit")
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= 1000:  # not isdigit(): "²" is a digit
        raise InvalidParameterValue("limit must be a whole number from 1 to 1000")
    return int(raw)


def _process(process_id: str) -> Process:
    try:
        return processes.get(process_id)
    except NotFound:
        raise no_such_process(process_id) from None


def _may_run(process: Process, who: Principal) -> None:
    if process.roles is None:
        return
    if who.anonymous:
        raise Unauthorized(f"process {process.id} is for signed-in users ({', '.join(process.roles)})")
    if not who.roles & set(process.roles):
        raise Forbidden(f"your role may not run process {process.id} (roles: {', '.join(process.roles)})")


def _visible(process: Process, who: Principal) -> bool:
    try:
        _may_run(process, who)
    except (Unauthorized, Forbidden):
        return False
    return True


def job_control_options(process: Process) -> list[str]:
    return ["async-execute", "dismiss"] if process.long_running else ["sync-execute", "async-execute", "dismiss"]


def _process_links(process: Process) -> list[dict]:
    url = f"{base_url()}/processes/{process.id}"
    return [link(url, "self", JSON, "Process description"),
            link(f"{url}/execution", REL + "execute", JSON, "Execute the process"),
            link(f"{base_url()}/jobs?processID={process.id}", REL + "job-list", JSON, "Your jobs of this process")]


def summary(process: Process) -> dict:
    return {"id": process.id, "title": process.title, "description": process.description,
            "version": process.version, "keywords": list(process.keywords),
            "jobControlOptions": job_control_options(process), "outputTransmission": ["value"],
            "links": _process_links(process)}


def _input_description(spec: dict) -> dict:
    schema = spec.get("schema", {})
    out = {"title": spec.get("title", ""), "description": spec.get("description", ""), "schema": schema,
           "minOccurs": spec.get("minOccurs", 0 if "default" in schema else 1), "maxOccurs": spec.get("maxOccurs", 1)}
    if "keywords" in spec:
        out["keywords"] = spec["keywords"]
    return out


def description(process: Process) -> dict:
    body = {**summary(process),
            "inputs": {name: _input_description(spec) for name, spec in process.inputs.items()},
            "outputs": {name: {"title": spec.get("title", ""), "description": spec.get("description", ""),
                               "schema": spec.get("schema", {})} for name, spec in process.outputs.items()}}
    if process.examples:
        body["examples"] = process.examples
    return body


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def status_info(row: dict) -> dict:
    """statusInfo.yaml of a job row."""
    url = f"{base_url()}/jobs/{row['id']}"
    links = [link(url, "self", JSON, "This job's status"), link(f"{base_url()}/jobs", "up", JSON, "Your jobs")]
    if row["status"] in ("successful", "failed"):
        links.append(link(f"{url}/results", REL + "results", JSON, "The job's results"))
    out = {"jobID": row["id"], "processID": row["process_id"], "type": "process", "status": row["status"],
           "message": row["message"] or "", "progress": int(round(row["progress"] or 0))}
    for name, column in (("created", "created_at"), ("started", "started_at"), ("finished", "finished_at"),
                         ("updated", "updated_at")):
        if row.get(column) is not None:
            out[name] = _iso(row[column])
    out["links"] = links
    return out


def _signed_in(what: str) -> Principal:
    who = principal()
    if who.anonymous:
        raise Unauthorized(f"{what} needs a signed-in user (session or Bearer token)")
    return who


def _job(job_id: str) -> dict:
    """The job if the caller may see it: the owner and federal users; anybody else learns nothing."""
    who = _signed_in("jobs")
    with reader().connect() as conn:
        row = jobs.get(conn, job_id)
    if row is None or ("federal" not in who.roles and row["created_by"] != who.actor):
        raise no_such_job(job_id)
    return row


# --- the execute request ----------------------------------------------------------------------------------
def _body() -> dict:
    data = request.get_data(cache=True)
    if not data.strip():
        return {}
    if request.mimetype != JSON and not request.mimetype.endswith("+json"):
        raise UnsupportedMediaType("send the execute request as application/json")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameterValue(f"the execute request is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidParameterValue('the execute request must be a JSON object {"inputs": {...}}')
    unknown = sorted(set(body) - BODY_KEYS)
    if unknown:
        raise InvalidParameterValue(f"unknown member(s) of the execute request: {', '.join(unknown)}; "
                                    f"it takes: inputs, outputs, response")
    if body.get("subscriber") is not None:
        raise InvalidParameterValue("callbacks (subscriber) are not offered: poll the job's status instead")
    return body


def _inputs(process: Process, given: object) -> dict:
    """Inline values; a qualified value {"value": ...} is unwrapped for inputs that are not objects."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise InvalidParameterValue("'inputs' must be a JSON object of input id -> value")
    out = {}
    for name, value in given.items():
        kind = process.inputs.get(name, {}).get("schema", {}).get("type")
        if isinstance(value, dict) and "href" in value and kind != "object":
            raise InvalidParameterValue(f"input '{name}': inputs by reference (href) are not offered; send the value")
        if isinstance(value, dict) and "value" in value and kind != "object":
            value = value["value"]
        out[name] = value
    return processes.validate_inputs(process, out)


def _outputs(process: Process, given: object) -> list[str] | None:
    if given is None or given == {}:
        return None  # all outputs
    if not isinstance(given, dict):
        raise InvalidParameterValue("'outputs' must be a JSON object of output id -> {transmissionMode}")
    unknown = sorted(set(given) - set(process.outputs))
    if unknown:
        raise InvalidParameterValue(f"unknown output(s) {', '.join(unknown)} of process {process.id}; "
                                    f"its outputs are: {', '.join(process.outputs)}")
    for name, spec in given.items():
        mode = spec.get("transmissionMode", "value") if isinstance(spec, dict) else None
        if mode != "value":
            raise InvalidParameterValue(f"output '{name}': only transmissionMode 'value' is offered")
    return list(given)


def _response_mode(given: object) -> str:
    if given is None:
        return "raw"
    if given not in ("raw", "document"):
        raise InvalidParameterValue("'response' must be 'raw' or 'document'")
    return str(given)


def _prefers_async() -> bool:
    tokens = {part.split(";")[0].strip().lower() for value in request.headers.getlist("Prefer")
              for part in value.split(",")}
    return "respond-async" in tokens


def results_response(outputs: dict, mode: str, status: int = 200) -> Response:
    if mode == "raw" and len(outputs) == 1:
        return json_response(next(iter(outputs.values())), status)
    return json_response(outputs, status)


# --- handlers -------------------------------------------------------------------------------------------------
@api.route(blueprint, "/processes", summary="The processes offered (those you may run)", tags=TAG,
           parameters=[query("f", "Response format", {"type": "string", "enum": ["json"]}),
                       query("limit", "At most this many processes", {"type": "integer", "minimum": 1,
                                                                       "maximum": 1000, "default": 1000})],
           responses={"200": doc_response("Process summaries with links to their descriptions")})
def process_list():
    check_params(["f", "limit"])
    _json_only()
    limit = _limit(1000)
    who = principal()
    shown = [p for p in processes.all_processes() if _visible(p, who)][:limit]
    return json_response({"processes": [summary(p) for p in shown],
                          "links": [link(f"{base_url()}/processes", "self", JSON, "This document")]})


@api.route(blueprint, "/processes/<processId>", summary="A process: its inputs and outputs (JSON Schemas)",
           tags=TAG, parameters=[query("f", "Response format", {"type": "string", "enum": ["json"]})],
           responses={"200": doc_response("The process description")})
def process_description(processId: str):  # noqa: N803 - the name is the path parameter's in /api
    check_params(["f"])
    _json_only()
    process = _process(processId)
    _may_run(process, principal())
    return json_response(description(process))


EXECUTE_BODY = {"required": False, "content": {JSON: {"schema": {"type": "object", "properties": {
    "inputs": {"type": "object", "description": "input id -> value"},
    "outputs": {"type": "object", "description": "output id -> {transmissionMode: value}; none: all outputs"},
    "response": {"type": "string", "enum": ["raw", "document"], "default": "raw"}}}}}}


@api.route(blueprint, "/processes/<processId>/execution", methods=("POST",),
           summary="Execute a process: synchronously (200, the outputs) or as a job (Prefer: respond-async; "
                   "201 with Location)", tags=TAG,
           parameters=[header("Prefer", "respond-async: run as a job (needs a signed-in user)"),
                       header("X-CSRF-Token", "The session's CSRF token (session-cookie callers)")],
           request_body=EXECUTE_BODY,
           responses={"200": doc_response("The outputs (raw value or results document)"),
                      "201": doc_response("The job was created: its status, and Location: /jobs/{jobId}"),
                      "401": {"description": "Sign in (async execution, restricted processes)"},
                      "403": {"description": "Your role may not run this process"}})
def execute(processId: str):  # noqa: N803
    check_params([])
    process = _process(processId)
    who = principal()
    _may_run(process, who)
    body = _body()
    inputs = _inputs(process, body.get("inputs"))
    wanted = _outputs(process, body.get("outputs"))
    mode = _response_mode(body.get("response"))
    asked_async = _prefers_async()
    if "sync-execute" in job_control_options(process) and not asked_async:
        return results_response(jobs.run_sync(engine(), process, inputs, who, wanted), mode)
    _signed_in("running a process as a job")
    row = runner().submit(process, inputs, who, mode, wanted)
    audit("job.create", "ok", target=f"job/{row['id']}", detail={"process": process.id})
    headers = {"Location": f"{base_url()}/jobs/{row['id']}"}
    if asked_async:
        headers["Preference-Applied"] = "respond-async"
    return json_response(status_info(row), 201, headers=headers)


@api.route(blueprint, "/jobs", summary="Your jobs (federal users: everybody's), newest first", tags=TAG,
           parameters=[query("processID", "Only jobs of this process", {"type": "string"}),
                       query("status", "Only jobs in this status (comma-separated)",
                             {"type": "array", "items": {"type": "string", "enum": list(STATUSES)}},
                             style="form", explode=False),
                       query("limit", "At most this many jobs", {"type": "integer", "minimum": 1, "maximum": 1000,
                                                                  "default": 100}),
                       query("f", "Response format", {"type": "string", "enum": ["json"]})],
           responses={"200": doc_response("The jobs' status"), "401": {"description": "Sign in"}})
def job_list():
    check_params(["processID", "status", "limit", "f"])
    _json_only()
    who = _signed_in("the job list")
    limit = _limit(100)
    raw_status = single("status")
    statuses = [s.strip() for s in raw_status.split(",")] if raw_status else None
    if statuses and not set(statuses) <= set(STATUSES):
        raise InvalidParameterValue(f"status: one or more of {', '.join(STATUSES)}")
    with reader().connect() as conn:
        rows = jobs.list_jobs(conn, owner=None if "federal" in who.roles else who.actor,
                              process_id=single("processID"), statuses=statuses, limit=limit)
    return json_response({"jobs": [status_info(r) for r in rows],
                          "links": [link(f"{base_url()}/jobs", "self", JSON, "This document")]},
                         headers={"Cache-Control": "no-store"})


@api.route(blueprint, "/jobs/<jobId>", summary="A job's status and progress", tags=TAG,
           parameters=[query("f", "Response format", {"type": "string", "enum": ["json"]})],
           responses={"200": doc_response("statusInfo: status, progress, message, times, links")})
def job_status(jobId: str):  # noqa: N803
    check_params(["f"])
    _json_only()
    return json_response(status_info(_job(jobId)), headers={"Cache-Control": "no-store"})


@api.route(blueprint, "/jobs/<jobId>", methods=("DELETE",),
           summary="Dismiss a job: a running one stops, a finished one is removed", tags=TAG,
           parameters=[header("X-CSRF-Token", "The session's CSRF token (session-cookie callers)")],
           responses={"200": doc_response("statusInfo with status dismissed")})
def job_dismiss(jobId: str):  # noqa: N803
    check_params([])
    found = _job(jobId)
    row, removed = jobs.dismiss(engine(), jobId, principal().actor)
    if row is None:  # removed meanwhile by another request
        raise no_such_job(jobId)
    audit("job.dismiss", "ok", target=f"job/{jobId}",
          detail={"process": found["process_id"], "was": found["status"], "removed": removed})
    return json_response(status_info(row))


@api.route(blueprint, "/jobs/<jobId>/results", summary="The results of a successful job (or its error)", tags=TAG,
           parameters=[query("f", "Response format", {"type": "string", "enum": ["json"]})],
           responses={"200": doc_response("The outputs, as the execute request's `response` asked")})
def job_results(jobId: str):  # noqa: N803
    check_params(["f"])
    _json_only()
    row = _job(jobId)
    status = row["status"]
    if status in jobs.ACTIVE:
        raise ProcessesException("result-not-ready", "ResultNotReady", "Result not ready", 404,
                                 f"job {jobId} is {status}; poll /jobs/{jobId}")
    if status == "dismissed":
        raise ProcessesException("result-not-available", "ResultNotAvailable", "Result not available", 404,
                                 f"job {jobId} was dismissed; it has no results")
    if status == "failed":
        error = dict(row["error"] or {})
        code = int(error.pop("status", 500))
        return json_response({"code": error.pop("code", "ServerError"),
                              "description": error.pop("description", row["message"] or "the job failed"), **error},
                             code if 400 <= code < 600 else 500)
    return results_response(row["results"] or {}, row["response"])
