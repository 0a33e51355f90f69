"""Binding a Telegram user to a CDT account with a one-time code, so the chat gets that account's grants.

A signed-in user asks for a code (POST /account/telegram-code or `cdt users telegram-code LOGIN`) and sends
`/link CODE` to the bot. Codes are random, kept only as their SHA-256 (like API tokens), valid for CODE_TTL and
good once. Failed attempts are counted in the audit log per Telegram user, like failed logins, so codes cannot
be guessed by brute force. Linking and unlinking are audited.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, text

from layers import accounts
from layers.access import ANONYMOUS, Principal
from layers.errors import NotFound

# No 0/O, 1/I/L: codes are read off one screen and typed on another.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
CODE_TTL_MIN = 10
MAX_FAILED_LINKS = 5
FAILED_WINDOW_MIN = 15


@dataclass(frozen=True)
class IssuedCode:
    code: str
    expires_at: datetime


def normalise(code: str) -> str:
    """What the user typed, as issued: case and separators (spaces, dashes) do not matter."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def issue_code(conn: Connection, user_id: int) -> IssuedCode:
    """A new one-time code for the user; their expired or used codes are dropped on the way."""
    conn.execute(text("DELETE FROM cdt.telegram_codes WHERE user_id = :u AND (used_at IS NOT NULL "
                      "OR expires_at < now())"), {"u": user_id})
    code = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    expires = conn.execute(text(
        "INSERT INTO cdt.telegram_codes (code_hash, user_id, expires_at) "
        "VALUES (:h, :u, now() + make_interval(mins => :ttl)) RETURNING expires_at"),
        {"h": accounts.hash_token(code), "u": user_id, "ttl": CODE_TTL_MIN}).scalar_one()
    return IssuedCode(code, expires)


def issue_code_for_login(conn: Connection, login: str) -> IssuedCode:
    user_id = conn.execute(text("SELECT id FROM cdt.users WHERE login = :l AND active"), {"l": login}).scalar()
    if user_id is None:
        raise NotFound(f"no active user '{login}'")
    return issue_code(conn, user_id)


def _actor(telegram_user_id: int) -> str:
    return f"telegram:{telegram_user_id}"


def _recent_failures(conn: Connection, telegram_user_id: int) -> int:
    return conn.execute(text(
        "SELECT count(*) FROM cdt.audit_log WHERE actor = :a AND action = 'telegram.link' AND outcome = 'denied' "
        "AND at > now() - make_interval(mins => :w)"), {"a": _actor(telegram_user_id), "w": FAILED_WINDOW_MIN}
    ).scalar_one()


def redeem(conn: Connection, telegram_user_id: int, code: str) -> Principal | None:
    """Link the Telegram user to the code's owner (replacing an earlier link); None when the code is unknown,
    expired or used, or after too many failures (then even a right code waits for the window to pass)."""
    if _recent_failures(conn, telegram_user_id) >= MAX_FAILED_LINKS:
        accounts.audit(conn, _actor(telegram_user_id), "telegram.link", "denied", detail={"reason": "throttled"})
        return None
    user_id = conn.execute(text(
        "UPDATE cdt.telegram_codes SET used_at = now() WHERE code_hash = :h AND used_at IS NULL "
        "AND expires_at > now() RETURNING user_id"), {"h": accounts.hash_token(normalise(code))}).scalar()
    found = accounts.principal_for_user(conn, user_id) if user_id is not None else None
    if found is None:
        accounts.audit(conn, _actor(telegram_user_id), "telegram.link", "denied",
                       detail={"reason": "unknown, expired or used code"})
        return None
    conn.execute(text(
        "INSERT INTO cdt.telegram_links (telegram_user_id, user_id) VALUES (:t, :u) "
        "ON CONFLICT (telegram_user_id) DO UPDATE SET user_id = EXCLUDED.user_id, linked_at = now()"),
        {"t": telegram_user_id, "u": user_id})
    accounts.audit(conn, found.actor, "telegram.link", "ok", target=_actor(telegram_user_id))
    return found


def unlink(conn: Connection, telegram_user_id: int) -> str | None:
    """Drop the link; the login it pointed to, or None when there was none."""
    login = conn.execute(text(
        "DELETE FROM cdt.telegram_links l USING cdt.users u WHERE l.telegram_user_id = :t AND u.id = l.user_id "
        "RETURNING u.login"), {"t": telegram_user_id}).scalar()
    if login is not None:
        accounts.audit(conn, f"user:{login}", "telegram.unlink", "ok", target=_actor(telegram_user_id))
    return login


def principal_for(engine: Engine, telegram_user_id: int | None) -> Principal:
    """The linked account's principal (grants resolved as for a session); the public tier otherwise."""
    if telegram_user_id is None:
        return ANONYMOUS
    with engine.connect() as conn:
        user_id = conn.execute(text("SELECT user_id FROM cdt.telegram_links WHERE telegram_user_id = :t"),
                               {"t": telegram_user_id}).scalar()
        found = accounts.principal_for_user(conn, user_id) if user_id is not None else None
    return found or ANONYMOUS
