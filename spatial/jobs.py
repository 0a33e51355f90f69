"""Jobs of OGC API Processes: create, run, report progress, dismiss, fetch results. SQL on `cdt.jobs`, no Flask.

Everything a status request needs is in the row, written in short transactions, so any worker process answers
for any job. Execution is a small thread pool inside the worker process that accepted the job (`JobRunner`).

Orphans: a worker that dies leaves its jobs `accepted` or `running`. While a runner holds a job it holds a
session-level advisory lock on it (on one "lease" connection per runner, taken *before* the row is inserted);
PostgreSQL drops the lock when the process's connection goes. `recover` marks failed every active job whose lock
nobody holds, so it is safe to call from any worker at any time (each worker calls it when it starts): the jobs of
live workers are left alone.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from layers.access import Principal
from layers.errors import CDTError
from spatial.processes import JobDismissed, Process, RunContext

log = logging.getLogger(__name__)

ACTIVE = ("accepted", "running")
FINISHED = ("successful", "failed", "dismissed")
LOCK_NAMESPACE = 7310  # advisory lock class of job leases (7301-7303: accounts, demo load)
PROGRESS_INTERVAL = 0.5  # seconds between progress writes of one job
THREADS = 2
RESTARTED = "the server restarted while the job was active; run it again"
COLUMNS = ("id, process_id, status, progress, message, response, results, error, created_by, created_at, "
           "started_at, finished_at, updated_at")


def _json(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# --- reading ------------------------------------------------------------------------------------------------
def get(conn: Connection, job_id: str) -> dict | None:
    row = conn.execute(text(f"SELECT {COLUMNS} FROM cdt.jobs WHERE id = :id"), {"id": job_id}).mappings().first()
    return dict(row) if row else None


def list_jobs(conn: Connection, *, owner: str | None, process_id: str | None = None,
              statuses: list[str] | None = None, limit: int = 100) -> list[dict]:
    """Newest first; `owner` None: everybody's (federal users)."""
    clauses, params = [], {"limit": limit}
    if owner is not None:
        clauses.append("created_by = :owner")
        params["owner"] = owner
    if process_id is not None:
        clauses.append("process_id = :pid")
        params["pid"] = process_id
    if statuses:
        clauses.append("status = ANY(CAST(:statuses AS text[]))")
        params["statuses"] = statuses
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    rows = conn.execute(text(f"SELECT {COLUMNS} FROM cdt.jobs{where} ORDER BY created_at DESC, id LIMIT :limit"),
                        params).mappings().all()
    return [dict(r) for r in rows]


# --- state changes (each its own short transaction) ---------------------------------------------------------
def insert(engine: Engine, job_id: str, process_id: str, inputs: dict, actor: str, response: str) -> dict:
    with engine.begin() as conn:
        row = conn.execute(text(f"""
            INSERT INTO cdt.jobs (id, process_id, status, progress, message, inputs, response, created_by)
            VALUES (:id, :pid, 'accepted', 0, 'waiting for a free worker thread', CAST(:inputs AS jsonb), :response,
                    :actor)
            RETURNING {COLUMNS}"""), {"id": job_id, "pid": process_id, "inputs": _json(inputs), "response": response,
                                      "actor": actor}).mappings().one()
    return dict(row)


def start(engine: Engine, job_id: str) -> bool:
    """accepted -> running; False when the job was dismissed while it waited."""
    with engine.begin() as conn:
        return conn.execute(text("UPDATE cdt.jobs SET status = 'running', message = 'running', started_at = now(), "
                                 "updated_at = now() WHERE id = :id AND status = 'accepted' RETURNING 1"),
                            {"id": job_id}).first() is not None


def set_progress(engine: Engine, job_id: str, fraction: float, message: str) -> None:
    """Write progress (0..1) of a running job; raises JobDismissed when the job is no longer running."""
    percent = min(max(float(fraction), 0.0), 1.0) * 100
    with engine.begin() as conn:
        done = conn.execute(text("UPDATE cdt.jobs SET progress = :p, message = :m, updated_at = now() "
                                 "WHERE id = :id AND status = 'running' RETURNING 1"),
                            {"id": job_id, "p": percent, "m": str(message)[:1000]}).first()
        if done is None:
            status = conn.execute(text("SELECT status FROM cdt.jobs WHERE id = :id"), {"id": job_id}).scalar()
            raise JobDismissed(f"the job is {status or 'gone'}")


def succeed(engine: Engine, job_id: str, results: dict) -> bool:
    with engine.begin() as conn:
        return conn.execute(text("UPDATE cdt.jobs SET status = 'successful', progress = 100, message = 'done', "
                                 "results = CAST(:r AS jsonb), finished_at = now(), updated_at = now() "
                                 "WHERE id = :id AND status = 'running' RETURNING 1"),
                            {"id": job_id, "r": _json(results)}).first() is not None


def fail(engine: Engine, job_id: str, error: dict) -> bool:
    with engine.begin() as conn:
        return conn.execute(text("UPDATE cdt.jobs SET status = 'failed', message = :m, error = CAST(:e AS jsonb), "
                                 "finished_at = now(), updated_at = now() "
                                 "WHERE id = :id AND status IN ('accepted', 'running') RETURNING 1"),
                            {"id": job_id, "m": str(error.get("description", "failed"))[:1000],
                             "e": _json(error)}).first() is not None


def dismiss(engine: Engine, job_id: str, actor: str) -> tuple[dict | None, bool]:
    """OGC dismiss: an active job becomes `dismissed` (its runner stops at its next progress call; no results are
    kept); a finished one is removed. Returns the row as it now is (status dismissed) and whether it was removed."""
    with engine.begin() as conn:
        row = conn.execute(text(f"UPDATE cdt.jobs SET status = 'dismissed', message = :m, results = NULL, "
                                f"finished_at = now(), updated_at = now() "
                                f"WHERE id = :id AND status IN ('accepted', 'running') RETURNING {COLUMNS}"),
                           {"id": job_id, "m": f"dismissed by {actor}"}).mappings().first()
        if row is not None:
            return dict(row), False
        row = conn.execute(text(f"DELETE FROM cdt.jobs WHERE id = :id RETURNING {COLUMNS}"),
                           {"id": job_id}).mappings().first()
    if row is None:
        return None, False
    return {**row, "status": "dismissed", "results": None}, True


def recover(engine: Engine) -> list[str]:
    """Mark failed the active jobs no live runner holds (their worker died); returns their ids."""
    with engine.begin() as conn:
        ids = conn.execute(text("""
            WITH active AS MATERIALIZED (SELECT id FROM cdt.jobs WHERE status IN ('accepted', 'running'))
            UPDATE cdt.jobs j SET status = 'failed', message = :m, error = CAST(:e AS jsonb), finished_at = now(),
                   updated_at = now()
            FROM active a
            WHERE j.id = a.id AND j.status IN ('accepted', 'running')
              AND pg_try_advisory_xact_lock(:ns, hashtext(a.id))
            RETURNING j.id"""), {"ns": LOCK_NAMESPACE, "m": RESTARTED,
                                 "e": _json({"code": "ServerError", "description": RESTARTED, "status": 500})}
                           ).scalars().all()
    if ids:
        log.warning("marked %d orphaned job(s) failed: %s", len(ids), ", ".join(ids))
    return list(ids)


# --- running ------------------------------------------------------------------------------------------------
class Throttled:
    """`ctx.progress` of one job: writes at most every PROGRESS_INTERVAL seconds (the first call at once); each
    write also tells the job it was dismissed (JobDismissed)."""

    def __init__(self, engine: Engine, job_id: str, interval: float = PROGRESS_INTERVAL):
        self.engine, self.job_id, self.interval = engine, job_id, interval
        self.last = float("-inf")

    def __call__(self, fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        set_progress(self.engine, self.job_id, fraction, message)


def error_json(exc: BaseException) -> dict:
    """What a failed job reports: a CDTError's own code and text; anything else is a bug, shown without detail."""
    if isinstance(exc, CDTError):
        return {**exc.to_json(), "status": exc.status}
    return {"code": "ServerError", "description": "the process failed with an internal error; see the server log",
            "status": 500}


def select_outputs(process: Process, outputs: dict, wanted: list[str] | None) -> dict:
    """The declared outputs the client asked for (all when `wanted` is None)."""
    if not isinstance(outputs, dict):
        raise TypeError(f"process {process.id} returned {type(outputs).__name__}, not a dict of outputs")
    extra = set(outputs) - set(process.outputs)
    if extra:
        log.warning("process %s returned undeclared outputs %s (dropped)", process.id, sorted(extra))
    names = wanted if wanted is not None else list(process.outputs)
    return {n: outputs[n] for n in names if n in outputs}


class JobRunner:
    """The jobs of one worker process: a thread pool and the lease connection that marks its jobs alive."""

    def __init__(self, engine: Engine, threads: int = THREADS):
        self.engine = engine
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cdt-job")
        self._lease: Connection | None = None
        self._lease_lock = threading.Lock()

    def submit(self, process: Process, inputs: dict, principal: Principal, response: str = "document",
               wanted: list[str] | None = None) -> dict:
        """Record a job (status accepted) and queue it; returns its row."""
        job_id = str(uuid.uuid4())
        self._hold(job_id)  # before the row exists, so no `recover` ever sees it unheld
        try:
            row = insert(self.engine, job_id, process.id, inputs, principal.actor, response)
            self.executor.submit(self._run, job_id, process, inputs, principal, wanted)
        except BaseException:
            self._release(job_id)
            raise
        return row

    def _run(self, job_id: str, process: Process, inputs: dict, principal: Principal,
             wanted: list[str] | None) -> None:
        try:
            if not start(self.engine, job_id):
                return
            ctx = RunContext(self.engine, principal, Throttled(self.engine, job_id))
            try:
                outputs = select_outputs(process, process.run(ctx, inputs), wanted)
            except JobDismissed:
                return  # the row already says dismissed (or failed by `recover`); nothing to keep
            except Exception as exc:  # noqa: BLE001 - any failure of the process is the job's, not the server's
                if not isinstance(exc, CDTError):
                    log.exception("job %s (%s) failed", job_id, process.id)
                fail(self.engine, job_id, error_json(exc))
                return
            try:
                succeed(self.engine, job_id, outputs)
            except (TypeError, orjson.JSONEncodeError, SQLAlchemyError) as exc:  # results that cannot be stored
                log.exception("job %s (%s): results not storable", job_id, process.id)
                fail(self.engine, job_id, error_json(exc))
        except Exception:  # noqa: BLE001 - the database went away mid-job: log, the lease ends, recover cleans up
            log.exception("job %s (%s): bookkeeping failed", job_id, process.id)
        finally:
            self._release(job_id)

    # The lease: session-level advisory locks on one autocommit connection of this runner.
    def _lease_sql(self, sql: str, job_id: str) -> Any:
        with self._lease_lock:
            for attempt in (1, 2):
                try:
                    if self._lease is None:
                        self._lease = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                        self._lease.execute(text("SELECT set_config('lock_timeout', '5s', false)"))
                    return self._lease.execute(text(sql), {"ns": LOCK_NAMESPACE, "id": job_id}).scalar()
                except DBAPIError as exc:
                    if not exc.connection_invalidated or attempt == 2:
                        raise  # e.g. lock_timeout: the connection, and its other leases, are fine
                    self._drop_lease()  # the database restarted: a new connection (the old leases are gone anyway)
            return None

    def _drop_lease(self) -> None:
        if self._lease is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._lease.invalidate()  # its locks go with the connection
            self._lease = None

    def _hold(self, job_id: str) -> None:
        try:
            self._lease_sql("SELECT pg_advisory_lock(:ns, hashtext(:id))", job_id)
        except SQLAlchemyError:  # a hash collision with a live job of another worker: run unleased
            log.warning("job %s runs without a lease", job_id)

    def _release(self, job_id: str) -> None:
        try:
            self._lease_sql("SELECT pg_advisory_unlock(:ns, hashtext(:id))", job_id)
        except SQLAlchemyError:
            log.warning("could not release the lease of job %s", job_id)

    def shutdown(self, wait: bool = True) -> None:
        self.executor.shutdown(wait=wait, cancel_futures=not wait)
        with self._lease_lock:
            if self._lease is not None:
                self._lease.close()
                self._lease = None


def run_sync(engine: Engine, process: Process, inputs: dict, principal: Principal,
             wanted: list[str] | None = None, progress: Callable[[float, str], None] | None = None) -> dict:
    """Run a process in the caller's thread (no job row): its outputs, or its error raised."""
    ctx = RunContext(engine, principal, progress or (lambda fraction, message: None))
    return select_outputs(process, process.run(ctx, inputs), wanted)
