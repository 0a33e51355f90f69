"""POST /account/telegram-code: a one-time code the signed-in user sends to the bot as `/link CODE`."""

from __future__ import annotations

from flask import Blueprint

from geoserver_app.auth import NO_STORE, audit, principal
from geoserver_app.bot import linking
from geoserver_app.ogc import engine, json_response
from geoserver_app.openapi import api
from geoserver_app.openapi import header as header_param
from geoserver_app.openapi import json_response as doc_response
from layers.access import Unauthorized

blueprint = Blueprint("telegram", __name__)


@api.route(blueprint, "/account/telegram-code", methods=("POST",),
           summary="A one-time code to link a Telegram chat to your account (send `/link CODE` to the bot)",
           tags=("Access",), parameters=[header_param("X-CSRF-Token", "The session's CSRF token (session only)")],
           responses={"201": doc_response("The code, valid for 10 minutes and once"),
                      "401": {"description": "Not signed in"}})
def telegram_code():
    who = principal()
    if who.anonymous:
        raise Unauthorized("sign in first (POST /login or a Bearer token)")
    with engine().begin() as conn:
        issued = linking.issue_code(conn, who.user_id)
    audit("telegram.code", "ok", target=f"user:{who.login}")
    return json_response({"code": issued.code, "expires_at": issued.expires_at.isoformat(),
                          "usage": f"send '/link {issued.code}' to the CDT bot"}, 201, headers=NO_STORE)
