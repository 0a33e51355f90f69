"""The audit log over HTTP: every write, login and refused authorization.

Federal users read all of it; every other signed-in user reads the entries about themselves.
"""

from __future__ import annotations

import re
from datetime import datetime

from flask import Blueprint
from sqlalchemy import text

from geoserver_app.auth import principal
from geoserver_app.ogc import check_params, json_response, reader, single
from geoserver_app.openapi import api, query
from geoserver_app.openapi import json_response as doc_response
from layers.access import Unauthorized
from layers.errors import InvalidParameterValue

blueprint = Blueprint("audit", __name__)


@api.route(blueprint, "/audit", summary="Audit log: writes, logins and refused authorizations", tags=("Access",),
           parameters=[query("actor", "Only entries of this actor (user:<login> or anonymous)", {"type": "string"}),
                       query("action", "Only this action (e.g. login, functional_zones.replace)", {"type": "string"}),
                       query("outcome", "ok, failed, denied or throttled", {"type": "string"}),
                       query("since", "Only entries at or after this RFC 3339 time", {"type": "string"}),
                       query("limit", "At most this many entries (newest first)",
                             {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100})],
           responses={"200": doc_response("Audit entries")})
def audit_log():
    check_params(["actor", "action", "outcome", "since", "limit", "f"])
    who = principal()
    if who.anonymous:
        raise Unauthorized("the audit log needs a signed-in user")
    clauses, params = [], {}
    if "federal" not in who.roles:
        clauses.append("actor = :me")
        params["me"] = who.actor
    for name in ("actor", "action", "outcome"):
        value = single(name)
        if value is not None:
            clauses.append(f"{name} = :{name}")
            params[name] = value
    since = single("since")
    if since is not None:
        try:
            params["since"] = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidParameterValue(f"since: '{since}' is not an RFC 3339 date-time") from None
        clauses.append("at >= :since")
    raw_limit = single("limit") or "100"
    if not re.fullmatch(r"[0-9]{1,4}", raw_limit) or not 1 <= int(raw_limit) <= 1000:  # "²".isdigit() is True
        raise InvalidParameterValue("limit must be a whole number from 1 to 1000")
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    with reader().connect() as conn:
        rows = conn.execute(text(f"SELECT id, at, actor, action, target, outcome, remote_addr, detail "
                                 f"FROM cdt.audit_log{where} ORDER BY id DESC LIMIT {int(raw_limit)}"),
                            params).mappings().all()
    return json_response({"entries": [{**r, "at": r["at"].isoformat()} for r in rows]})
