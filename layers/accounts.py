"""Accounts service: principals from tokens and sessions, passwords, tokens, grants, the audit log."""

from __future__ import annotations

import hashlib
import json
import secrets

from sqlalchemy import Connection, text

from layers.access import Grant, Principal, resolve_scopes


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A bearer token: 32 random bytes, URL-safe; only its SHA-256 is stored."""
    return "cdt_" + secrets.token_urlsafe(32)


def principal_for_user(conn: Connection, user_id: int) -> Principal | None:
    """The active user with their grants and the territories they cover; None if inactive or unknown."""
    user = conn.execute(text("SELECT id, login FROM cdt.users WHERE id = :id AND active"), {"id": user_id}).first()
    if user is None:
        return None
    grants = tuple(Grant(r.role, r.territory_id, r.sector) for r in conn.execute(
        text("SELECT role, territory_id, sector FROM cdt.grants WHERE user_id = :id ORDER BY id"), {"id": user_id}))
    return resolve_scopes(conn, Principal(user.login, user.id, grants))


def principal_for_token(conn: Connection, token: str) -> Principal | None:
    """The owner of a live (not revoked) token; None otherwise. Marks the token used (at most once a minute)."""
    row = conn.execute(text("""
        UPDATE cdt.api_tokens SET last_used_at = now()
        WHERE token_hash = :h AND revoked_at IS NULL
          AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')
        RETURNING user_id"""), {"h": hash_token(token)}).first()
    if row is None:
        row = conn.execute(text("SELECT user_id FROM cdt.api_tokens WHERE token_hash = :h AND revoked_at IS NULL"),
                           {"h": hash_token(token)}).first()
    return None if row is None else principal_for_user(conn, row.user_id)


def audit(conn: Connection, actor: str, action: str, outcome: str, *, target: str | None = None,
          remote_addr: str | None = None, detail: dict | None = None) -> None:
    conn.execute(text("INSERT INTO cdt.audit_log (actor, action, target, outcome, remote_addr, detail) "
                      "VALUES (:actor, :action, :target, :outcome, :addr, CAST(:detail AS jsonb))"),
                 {"actor": actor, "action": action, "target": target, "outcome": outcome, "addr": remote_addr,
                  "detail": json.dumps(detail) if detail is not None else None})
