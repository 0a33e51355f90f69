"""The registry of analysis processes (published by OGC API Processes, run synchronously or as jobs).

A process is declared once, with JSON Schemas of its inputs and outputs, and a function that runs it.
The HTTP layer (`geoserver_app/processes_api.py`) lists, describes and executes what is registered here;
the job machinery (`spatial/jobs.py`) records status, progress and results in `cdt.jobs`.

    register(Process(
        id="nearest-facility", title="...", description="...",
        inputs={"facility_type": {"title": "...", "schema": {"type": "string"}}, ...},
        outputs={"summary": {"title": "...", "schema": {"type": "object"}}},
        run=run_nearest_facility,          # (ctx: RunContext, inputs: dict) -> dict of outputs
        editing_roles=None,                # None: anybody who may read the inputs' layers; else these roles
    ))

`run` receives validated inputs (defaults filled) and a RunContext: `ctx.engine` (SQLAlchemy engine of the
platform's database), `ctx.principal` (layers.access.Principal: apply layers.access rules to what you read),
`ctx.progress(fraction, message)` (0..1; raises JobDismissed when the job was dismissed), and returns a JSON-able
dict with one entry per declared output. Errors: raise layers.errors.InvalidParameterValue (400) etc.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from layers.access import Principal
from layers.errors import CDTError, InvalidParameterValue, NotFound


class JobDismissed(CDTError):
    def __init__(self, detail: str = "the job was dismissed"):
        super().__init__(detail, 410, "Dismissed", {})


@dataclass
class RunContext:
    engine: Engine
    principal: Principal
    # fraction in [0, 1] and a short message; raises JobDismissed when the job has been dismissed
    progress: Callable[[float, str], None] = lambda fraction, message: None


@dataclass(frozen=True)
class Process:
    id: str
    title: str
    description: str
    inputs: dict[str, dict]
    outputs: dict[str, dict]
    run: Callable[[RunContext, dict], dict]
    version: str = "1.0.0"
    keywords: tuple[str, ...] = ()
    # Roles allowed to execute (None: everybody, the public included; results follow the read rules anyway).
    roles: tuple[str, ...] | None = None
    # Processes that take seconds or more: executed asynchronously unless the client asks otherwise.
    long_running: bool = False
    examples: list[dict] = field(default_factory=list)


_PROCESSES: dict[str, Process] = {}


def register(process: Process) -> Process:
    _PROCESSES[process.id] = process
    return process


def get(process_id: str) -> Process:
    _load_all()
    try:
        return _PROCESSES[process_id]
    except KeyError:
        raise NotFound(f"no process '{process_id}'; processes: {', '.join(sorted(_PROCESSES))}") from None


def all_processes() -> list[Process]:
    _load_all()
    return sorted(_PROCESSES.values(), key=lambda p: p.id)


def validate_inputs(process: Process, given: object) -> dict:
    """Inputs checked against their schemas (type, enum, minimum, maximum, required) with defaults filled."""
    if not isinstance(given, dict):
        raise InvalidParameterValue("'inputs' must be a JSON object")
    unknown = sorted(set(given) - set(process.inputs))
    if unknown:
        raise InvalidParameterValue(f"unknown input(s) {', '.join(unknown)} for process {process.id}; "
                                    f"its inputs are: {', '.join(process.inputs)}")
    out = {}
    for name, spec in process.inputs.items():
        schema = spec.get("schema", {})
        if name not in given:
            if "default" in schema:
                out[name] = schema["default"]
            elif spec.get("minOccurs", 1) > 0:
                raise InvalidParameterValue(f"input '{name}' of process {process.id} is required")
            continue
        out[name] = _check(name, given[name], schema)
    return out


_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict, "array": list}


def _check(name: str, value: object, schema: dict) -> object:
    if "oneOf" in schema:
        errors = []
        for option in schema["oneOf"]:
            try:
                return _check(name, value, option)
            except InvalidParameterValue as exc:
                errors.append(exc.detail)
        raise InvalidParameterValue(f"input '{name}' matches none of its forms: {'; or '.join(errors)}")
    kind = schema.get("type")
    if isinstance(kind, list):  # e.g. ["number", "null"]
        if value is None and "null" in kind:
            return value
        kind = next((k for k in kind if k != "null"), None)
    if kind and not (isinstance(value, _TYPES[kind]) and not (kind in ("integer", "number")
                                                               and isinstance(value, bool))):
        raise InvalidParameterValue(f"input '{name}' must be {kind}, got {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        raise InvalidParameterValue(f"input '{name}' must be one of {', '.join(map(str, schema['enum']))}; "
                                    f"got {value!r}")
    if "minimum" in schema and value < schema["minimum"]:
        raise InvalidParameterValue(f"input '{name}' must be at least {schema['minimum']}, got {value}")
    if "maximum" in schema and value > schema["maximum"]:
        raise InvalidParameterValue(f"input '{name}' must be at most {schema['maximum']}, got {value}")
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        raise InvalidParameterValue(f"input '{name}' must be more than {schema['exclusiveMinimum']}, got {value}")
    if kind == "array" and "minItems" in schema and len(value) < schema["minItems"]:
        raise InvalidParameterValue(f"input '{name}' takes at least {schema['minItems']} items")
    if kind == "string" and "maxLength" in schema and len(value) > schema["maxLength"]:
        raise InvalidParameterValue(f"input '{name}' takes at most {schema['maxLength']} characters")
    if kind == "string" and "pattern" in schema and not re.fullmatch(schema["pattern"], value):
        raise InvalidParameterValue(f"input '{name}' does not match {schema['pattern']}: {value!r}")
    if kind == "array":
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise InvalidParameterValue(f"input '{name}' takes at most {schema['maxItems']} items")
        if "items" in schema:
            return [_check(f"{name}[{i}]", v, schema["items"]) for i, v in enumerate(value)]
    return value


# Modules that register processes when imported (each owns its processes).
PROCESS_MODULES = ("spatial.access_processes", "spatial.needs_processes", "spatial.siting_processes",
                   "spatial.results_processes", "energy.processes", "planning.site_processes",
                   "planning.processes")
_loaded = False


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    import importlib

    for module in PROCESS_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a module that exists but fails to import is a bug: say so
                raise
    _loaded = True
