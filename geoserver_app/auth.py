"""Who is asking: the principal of each request (Bearer token, session cookie, or anonymous), and the audit
of refused requests. Decisions are made by layers/access.py, the one access point."""

from __future__ import annotations

from flask import Flask, g, request, session

from geoserver_app.ogc import engine
from layers import accounts
from layers.access import ANONYMOUS, Principal, Unauthorized
from layers.errors import CDTError, Forbidden


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


def install(app: Flask) -> None:
    """Refused authorizations are audited (who, what, from where) before the error goes out."""

    @app.errorhandler(Unauthorized)
    @app.errorhandler(Forbidden)
    def refused(exc: CDTError):
        from flask import jsonify

        try:
            audit(f"{request.method} {request.path}", "denied", detail={"reason": exc.detail, "status": exc.status})
        except Exception:  # noqa: BLE001 - auditing must never turn a 401/403 into a 500
            app.logger.exception("audit failed")
        resp = jsonify(exc.to_json())
        if exc.status == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="cdt"'
        return resp, exc.status
