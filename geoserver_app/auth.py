"""Who is asking: the principal of each request (Bearer token, session cookie, or anonymous), the audit
of refused requests, signing in and out, API tokens, and CSRF protection of cookie-authenticated writes.
Decisions are made by layers/access.py, the one access point.

CSRF: a session carries a random `csrf` token (shown by GET /login and /auth/me as `csrf_token`). Every
POST/PUT/PATCH/DELETE authenticated by the session cookie must echo it in `X-CSRF-Token` (or a `csrf_token`
form field), or is refused with 403. Bearer requests need none: a browser never adds the header by itself.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Blueprint, Flask, g, jsonify, redirect, render_template_string, request, session

from geoserver_app.ogc import HTML, engine, json_response, negotiate
from geoserver_app.openapi import api
from geoserver_app.openapi import header as header_param
from geoserver_app.openapi import json_response as doc_response
from layers import accounts
from layers.access import ANONYMOUS, Principal, Unauthorized
from layers.errors import CDTError, Forbidden, InvalidParameterValue, TooManyRequests, UnsupportedMediaType

blueprint = Blueprint("auth", __name__)

UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
NO_STORE = {"Cache-Control": "no-store"}


def principal() -> Principal:
    if "principal" not in g:
        g.principal = _resolve()
    return g.principal


def _resolve() -> Principal:
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization must be 'Bearer <token>'")
        with engine().begin() as conn:
            found = accounts.principal_for_token(conn, token.strip())
        if found is None:
            raise Unauthorized("the token is unknown or revoked")
        g.via_token = True
        return found
    user_id = session.get("uid")
    if user_id is not None:
        with engine().connect() as conn:
            found = accounts.principal_for_user(conn, int(user_id))
        if found is not None:
            return found
        session.clear()
    return ANONYMOUS


def audit(action: str, outcome: str, target: str | None = None, detail: dict | None = None,
          actor: str | None = None) -> None:
    """One audit entry, in its own transaction (so a refused or failed request is still recorded)."""
    who = actor or (g.principal.actor if "principal" in g else "anonymous")
    with engine().begin() as conn:
        accounts.audit(conn, who, action, outcome, target=target, remote_addr=request.remote_addr, detail=detail)


def csrf_token() -> str:
    """This session's CSRF token (made on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def _csrf_ok() -> bool:
    expected = session.get("csrf")
    given = request.headers.get("X-CSRF-Token") or (
        request.form.get("csrf_token") if request.mimetype in FORM_TYPES else None)
    return bool(expected and given) and hmac.compare_digest(str(expected), str(given))


def _csrf_exempt() -> bool:
    # Signing in checks its own form token; a CQL2 JSON search is a read (and its Content-Type is not one a
    # cross-site form can send, so a browser would ask first, and CORS says no).
    return request.path == "/login" or (request.method == "POST" and request.mimetype == "application/query-cql-json")


def install(app: Flask) -> None:
    """Refused authorizations are audited (who, what, from where) before the error goes out; writes that rely
    on the session cookie must carry the session's CSRF token."""

    @app.before_request
    def csrf_guard():
        if (request.method in UNSAFE_METHODS and "Authorization" not in request.headers
                and session.get("uid") is not None and not _csrf_exempt() and not _csrf_ok()):
            principal()  # so the refusal is audited under the session's user
            raise Forbidden("missing or wrong CSRF token: send the session's csrf_token (GET /auth/me) "
                            "in the X-CSRF-Token header")

    @app.errorhandler(Unauthorized)
    @app.errorhandler(Forbidden)
    def refused(exc: CDTError):
        try:
            audit(f"{request.method} {request.path}", "denied", detail={"reason": exc.detail, "status": exc.status})
        except Exception:  # noqa: BLE001 - auditing must never turn a 401/403 into a 500
            app.logger.exception("audit failed")
        resp = jsonify(exc.to_json())
        if exc.status == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="cdt"'
        return resp, exc.status

    @app.errorhandler(TooManyRequests)
    def too_many(exc: TooManyRequests):
        resp = jsonify(exc.to_json())
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp, exc.status


# --- signing in and out ---------------------------------------------------------------------------------------
def _me(who: Principal) -> dict:
    """The principal as the web client shows it."""
    via = "token" if g.get("via_token") else "session" if not who.anonymous else None
    body: dict = {"anonymous": who.anonymous, "login": who.login, "display_name": None, "organisation": None,
                  "roles": sorted(who.roles), "grants": [], "via": via}
    if not who.anonymous:
        with engine().connect() as conn:
            body.update(accounts.user_info(conn, who.user_id))
    # A token client has no session to protect; everybody else gets the token for their writes.
    body["csrf_token"] = None if via == "token" else csrf_token()
    return body


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no //host, no backslashes) may be where a form login leads."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _login_form(message: str | None = None, status: int = 200, login: str = ""):
    page = render_template_string(LOGIN_HTML, csrf_token=csrf_token(), message=message, login=login,
                                  next=_safe_next(request.values.get("next")))
    return page, status, {**NO_STORE, "Content-Type": "text/html; charset=utf-8"}


@api.route(blueprint, "/login", summary="The sign-in form (HTML) or, as JSON, this session's CSRF token",
           tags=("Access",), responses={"200": doc_response("Sign-in form", ("text/html", "application/json"))})
def login_form():
    if negotiate() != HTML:
        return json_response({"csrf_token": csrf_token()}, headers=NO_STORE)
    return _login_form()


@api.route(blueprint, "/login", methods=("POST",),
           summary="Sign in with login and password: a session cookie (form: redirect; JSON: the user)",
           tags=("Access",),
           request_body={"required": True, "content": {
               "application/json": {"schema": {"type": "object", "required": ["login", "password"], "properties": {
                   "login": {"type": "string"}, "password": {"type": "string", "format": "password"}}}},
               "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
                   "login": {"type": "string"}, "password": {"type": "string"}, "csrf_token": {"type": "string"},
                   "next": {"type": "string"}}}}}},
           responses={"200": doc_response("Signed in: the user, grants and the session's CSRF token"),
                      "303": {"description": "Signed in (form): on to `next`"},
                      "401": {"description": "Wrong login or password"},
                      "429": {"description": "Too many failed logins; see Retry-After"}})
def login():
    form = request.mimetype in FORM_TYPES
    if form:
        values = request.form
        # Login CSRF: the form must come from our own GET /login in this browser.
        expected, given = session.get("csrf"), values.get("csrf_token")
        if not (expected and given and hmac.compare_digest(str(expected), str(given))):
            return _login_form("The form expired; please sign in again.", 403, values.get("login", ""))
    elif request.is_json:  # a cross-site page cannot send JSON without CORS's consent
        values = request.get_json(silent=True)
        if not isinstance(values, dict):
            raise InvalidParameterValue('the body must be a JSON object {"login": ..., "password": ...}')
    else:
        raise UnsupportedMediaType("send the login as application/json or as a form")
    name, password = values.get("login"), values.get("password")
    if not isinstance(name, str) or not isinstance(password, str) or not name or not password:
        if form:
            return _login_form("Enter your login and password.", 400, name if isinstance(name, str) else "")
        raise InvalidParameterValue("login and password are required (strings)")
    try:
        with engine().begin() as conn:
            found = accounts.authenticate(conn, name, password, request.remote_addr)
    except Unauthorized as exc:  # audited by authenticate, as a login
        if form:
            return _login_form("Wrong login or password.", 401, name)
        return json_response(exc.to_json(), 401, headers={**NO_STORE, "WWW-Authenticate": 'Bearer realm="cdt"'})
    # A new session: nothing from before signing in (a planted CSRF token included) carries over.
    session.clear()
    session.permanent = True
    session["uid"] = found.user_id
    g.principal = found
    if form:
        return redirect(_safe_next(values.get("next")), 303)
    return json_response(_me(found), headers=NO_STORE)


@api.route(blueprint, "/logout", methods=("POST",), summary="Sign out (ends the session)", tags=("Access",),
           parameters=[header_param("X-CSRF-Token", "The session's CSRF token")],
           responses={"200": doc_response("Signed out"), "303": {"description": "Signed out (form): to /login"}})
def logout():
    if session.get("uid") is not None and "Authorization" not in request.headers:
        audit("logout", "ok", actor=principal().actor)
    session.clear()
    if request.mimetype in FORM_TYPES:
        return redirect("/login", 303)
    return json_response({"anonymous": True}, headers=NO_STORE)


@api.route(blueprint, "/auth/me", summary="Who is signed in: login, grants (territory, sector), CSRF token",
           tags=("Access",), responses={"200": doc_response("The principal (anonymous when nobody is signed in)")})
def me():
    return json_response(_me(principal()), headers=NO_STORE)


# --- API tokens -----------------------------------------------------------------------------------------------
def _signed_in() -> Principal:
    who = principal()
    if who.anonymous:
        raise Unauthorized("sign in first (POST /login or a Bearer token)")
    return who


def _iso(value):
    return value.isoformat() if value is not None else None


def _token_json(row: dict) -> dict:
    return {"id": row["id"], "name": row["name"], "created_at": _iso(row["created_at"]),
            "last_used_at": _iso(row["last_used_at"]), "revoked_at": _iso(row["revoked_at"])}


@api.route(blueprint, "/auth/tokens", summary="Your API tokens (never their secrets)", tags=("Access",),
           responses={"200": doc_response("Tokens: id, name, created, last used, revoked")})
def tokens():
    who = _signed_in()
    with engine().connect() as conn:
        rows = accounts.list_tokens(conn, user_id=who.user_id)
    return json_response({"tokens": [_token_json(r) for r in rows]}, headers=NO_STORE)


@api.route(blueprint, "/auth/tokens", methods=("POST",),
           summary="A new API token for yourself (signed in with a session); the token is shown this once",
           tags=("Access",), parameters=[header_param("X-CSRF-Token", "The session's CSRF token")],
           request_body={"required": False, "content": {"application/json": {"schema": {
               "type": "object", "properties": {"name": {"type": "string", "maxLength": 100}}}}}},
           responses={"201": doc_response("The token (use as `Authorization: Bearer <token>`)")})
def create_token():
    who = _signed_in()
    if g.get("via_token"):
        raise Forbidden("tokens are made from a signed-in session (POST /login) or with `cdt users token`, "
                        "not with another token")
    body = ((request.get_json(silent=True) or {}) if request.is_json
            else request.form if request.mimetype in FORM_TYPES else {})
    if not hasattr(body, "get"):
        raise InvalidParameterValue('the body, if any, is a JSON object {"name": ...}')
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 100):
        raise InvalidParameterValue("name: a string of at most 100 characters")
    with engine().begin() as conn:
        issued = accounts.issue_token(conn, who.login, name or "api")
    audit("token.create", "ok", target=f"token/{issued.id}")
    return json_response({"id": issued.id, "name": issued.name, "token": issued.token,
                          "usage": "Authorization: Bearer <token>"}, 201, headers=NO_STORE)


@api.route(blueprint, "/auth/tokens/<int:tokenId>", methods=("DELETE",),
           summary="Revoke one of your tokens (federal: any token)", tags=("Access",),
           parameters=[header_param("X-CSRF-Token", "The session's CSRF token")],
           responses={"204": {"description": "Revoked"}})
def revoke_token(tokenId: int):  # noqa: N803 - the name is the path parameter's in /api
    who = _signed_in()
    owner = None if "federal" in who.roles else who.user_id
    with engine().begin() as conn:
        accounts.revoke_token(conn, tokenId, owner_id=owner)
    audit("token.revoke", "ok", target=f"token/{tokenId}")
    return "", 204


LOGIN_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · CDT</title>
<style>body{font:15px/1.4 system-ui,sans-serif;margin:4rem auto;max-width:22rem;padding:0 1rem}
label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.4rem;box-sizing:border-box}
button{margin-top:1rem;padding:.5rem 1.2rem}.msg{color:#a00}</style></head>
<body><h1>CDT: sign in</h1>
{% if message %}<p class="msg">{{ message }}</p>{% endif %}
<form method="post" action="/login">
<input type="hidden" name="csrf_token" value="{{ csrf_token }}"><input type="hidden" name="next" value="{{ next }}">
<label for="login">Login</label><input id="login" name="login" value="{{ login }}" autocomplete="username" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form>
<p>Machines and GIS clients use an API token instead: <code>Authorization: Bearer &lt;token&gt;</code>.</p>
</body></html>"""
