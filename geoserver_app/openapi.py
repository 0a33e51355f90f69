"""OpenAPI 3.0 built from the handlers themselves (the QGIS Server model).

Each handler is registered with `api.route(...)`, which both adds the Flask route and records the
operation's OpenAPI description; `/api` is assembled from those records, so the document cannot
drift from the code. Parameters are inlined (not `$ref`s): GDAL's OAPIF driver reads the items
operation's `filter-lang` enum to decide whether to send its WHERE clause to the server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Blueprint


@dataclass
class Operation:
    path: str
    method: str
    operation_id: str
    summary: str
    tags: list[str]
    parameters: list[dict]
    request_body: dict | None
    responses: dict


@dataclass
class ApiRegistry:
    operations: list[Operation] = field(default_factory=list)

    def route(self, blueprint: Blueprint, rule: str, *, methods: tuple[str, ...] = ("GET",), summary: str,
              tags: tuple[str, ...] = (), parameters: list[dict] | None = None, request_body: dict | None = None,
              responses: dict | None = None, operation_id: str | None = None) -> Callable:
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule)
        path_params = [path_param(n) for n in re.findall(r"{(\w+)}", path)]

        def decorator(view: Callable) -> Callable:
            blueprint.add_url_rule(rule, view_func=view, methods=list(methods))
            for method in methods:
                if method in ("HEAD", "OPTIONS"):
                    continue
                self.operations.append(Operation(
                    path, method.lower(), operation_id or f"{view.__name__}_{method.lower()}", summary, list(tags),
                    path_params + list(parameters or []), request_body if method != "GET" else None,
                    responses or {"200": {"description": "OK"}}))
            return view

        return decorator

    def document(self, base_url: str, title: str, description: str) -> dict:
        paths: dict[str, dict] = {}
        for op in self.operations:
            entry = {"operationId": op.operation_id, "summary": op.summary, "tags": op.tags,
                     "parameters": op.parameters, "responses": {**op.responses, **ERROR_RESPONSES}}
            if op.request_body:
                entry["requestBody"] = op.request_body
            paths.setdefault(op.path, {})[op.method] = entry
        return {
            "openapi": "3.0.3",
            "info": {"title": title, "description": description, "version": "0.1.0",
                     "license": {"name": "Apache-2.0"}},
            "servers": [{"url": base_url.rstrip("/") or "/"}],
            "paths": dict(sorted(paths.items())),
            "components": {"schemas": {"exception": EXCEPTION_SCHEMA}},
        }


def path_param(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def query(name: str, description: str, schema: dict, *, style: str | None = None, explode: bool | None = None,
          required: bool = False) -> dict:
    out = {"name": name, "in": "query", "required": required, "description": description, "schema": schema}
    if style:
        out["style"] = style
    if explode is not None:
        out["explode"] = explode
    return out


def header(name: str, description: str) -> dict:
    return {"name": name, "in": "header", "required": False, "description": description, "schema": {"type": "string"}}


def json_response(description: str, media_types: tuple[str, ...] = ("application/json",), headers: dict | None = None
                  ) -> dict:
    out: dict = {"description": description, "content": {m: {"schema": {"type": "object"}} for m in media_types}}
    if headers:
        out["headers"] = headers
    return out


EXCEPTION_SCHEMA = {"type": "object", "required": ["code"],
                    "properties": {"code": {"type": "string"}, "description": {"type": "string"}}}
_EXC = {"application/json": {"schema": {"$ref": "#/components/schemas/exception"}}}
ERROR_RESPONSES = {
    "400": {"description": "Bad request", "content": _EXC},
    "404": {"description": "Not found", "content": _EXC},
    "500": {"description": "Server error", "content": _EXC},
}

api = ApiRegistry()
