"""Accounts service: principals from tokens and sessions, passwords, tokens, grants, the audit log.

Passwords are kept as argon2id hashes (argon2-cffi's defaults, RFC 9106 low-memory profile) and re-hashed on
login when those parameters change; tokens only as their SHA-256. Logins are throttled from the audit log:
after MAX_FAILED_LOGINS failed attempts within LOGIN_WINDOW for one login, or from one address, further
attempts are refused (even with the right password) until the oldest of those failures leaves the window.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, text

from layers.access import ROLES, SCOPED, Grant, Principal, Unauthorized, resolve_scopes
from layers.errors import Conflict, InvalidParameterValue, NotFound, TooManyRequests

MAX_FAILED_LOGINS = 5
LOGIN_WINDOW_S = 15 * 60
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
LOGIN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
SECTOR_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")

_hasher = PasswordHasher()  # argon2id


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


# --- passwords --------------------------------------------------------------------------------------------
def hash_password(password: str) -> str:
    """The argon2id hash of a password (salted; parameters inside the hash string)."""
    return _hasher.hash(password)


@cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_password(stored: str | None, password: str) -> tuple[bool, str | None]:
    """(whether `password` matches `stored`, a fresh hash when `stored` was made with outdated parameters).
    Without a stored hash it verifies against a dummy one, so unknown logins take as long as known ones."""
    try:
        _hasher.verify(stored or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False, None
    if not stored:
        return False, None
    return True, (_hasher.hash(password) if _hasher.check_needs_rehash(stored) else None)


def _check_password(password: str) -> None:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidParameterValue(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")


# --- users ------------------------------------------------------------------------------------------------
def _user(conn: Connection, login: str):
    row = conn.execute(text("SELECT id, login, password_hash, active FROM cdt.users WHERE login = :l"),
                       {"l": login}).first()
    if row is None:
        raise NotFound(f"no user '{login}'")
    return row


def create_user(conn: Connection, login: str, password: str | None, display_name: str | None = None,
                organisation: str | None = None) -> int:
    """A new active user (no grants yet: a citizen); without a password they sign in with tokens only."""
    if not isinstance(login, str) or not LOGIN_RE.fullmatch(login):
        raise InvalidParameterValue(f"login {login!r}: 1-64 characters of letters, digits and . _ @ -, "
                                    "starting with a letter or digit")
    if password is not None:
        _check_password(password)
    row = conn.execute(text("""
        INSERT INTO cdt.users (login, display_name, organisation, password_hash) VALUES (:l, :n, :o, :h)
        ON CONFLICT (login) DO NOTHING RETURNING id"""),
                       {"l": login, "n": display_name, "o": organisation,
                        "h": hash_password(password) if password is not None else None}).first()
    if row is None:
        raise Conflict(f"user '{login}' exists already")
    return row.id


def set_password(conn: Connection, login: str, password: str | None) -> None:
    """Set (None: remove, leaving token access only) a user's password."""
    if password is not None:
        _check_password(password)
    uid = _user(conn, login).id
    conn.execute(text("UPDATE cdt.users SET password_hash = :h WHERE id = :id"),
                 {"h": hash_password(password) if password is not None else None, "id": uid})


def list_users(conn: Connection) -> list[dict]:
    rows = conn.execute(text("""
        SELECT u.id, u.login, u.display_name, u.organisation, u.active, u.password_hash IS NOT NULL AS has_password,
               coalesce((SELECT array_agg(g.role || coalesce('@' || t.oktmo, '') || coalesce('/' || g.sector, '')
                                          ORDER BY g.id)
                         FROM cdt.grants g LEFT JOIN cdt.territories t ON t.id = g.territory_id
                         WHERE g.user_id = u.id), '{}') AS grants,
               (SELECT count(*) FROM cdt.api_tokens k WHERE k.user_id = u.id AND k.revoked_at IS NULL) AS tokens
        FROM cdt.users u ORDER BY u.login"""))
    return [dict(r._mapping) for r in rows]


def user_info(conn: Connection, user_id: int) -> dict:
    """A user and their grants as the web client shows them (territory OKTMO and name)."""
    user = conn.execute(text("SELECT login, display_name, organisation FROM cdt.users WHERE id = :id"),
                        {"id": user_id}).one()
    grants = [{"role": r.role, "sector": r.sector,
               "territory": None if r.oktmo is None else {"oktmo": r.oktmo, "name": r.name}}
              for r in conn.execute(text("""
                  SELECT g.role, g.sector, t.oktmo, t.name FROM cdt.grants g
                  LEFT JOIN cdt.territories t ON t.id = g.territory_id WHERE g.user_id = :id ORDER BY g.id"""),
                                    {"id": user_id})]
    return {"login": user.login, "display_name": user.display_name, "organisation": user.organisation,
            "grants": grants}


# --- grants -----------------------------------------------------------------------------------------------
def _territory_id(conn: Connection, oktmo: str) -> int:
    tid = conn.execute(text("SELECT id FROM cdt.territories WHERE oktmo = :o"), {"o": oktmo}).scalar()
    if tid is None:
        raise NotFound(f"no territory with OKTMO {oktmo}; load it first (cdt load territories {oktmo})")
    return tid


def check_grant(role: str, territory_oktmo: str | None, sector: str | None) -> None:
    grantable = [r for r in ROLES if r != "citizen"]
    if role == "citizen":
        raise InvalidParameterValue("citizens are anonymous: a citizen needs no grant")
    if role not in grantable:
        raise InvalidParameterValue(f"unknown role '{role}'; one of: {', '.join(grantable)}")
    if role in SCOPED and not territory_oktmo:
        raise InvalidParameterValue(f"a {role} grant needs a territory (its OKTMO code)")
    if role not in SCOPED and territory_oktmo:
        raise InvalidParameterValue(f"a {role} grant covers no territory" +
                                    (" (federal: all of them)" if role == "federal" else ""))
    if role == "agency" and not sector:
        raise InvalidParameterValue("an agency grant needs a sector (energy, education, health ...)")
    if role != "agency" and sector:
        raise InvalidParameterValue("only agency grants take a sector")
    if sector and not SECTOR_RE.fullmatch(sector):
        raise InvalidParameterValue(f"sector {sector!r}: a lowercase word such as energy")


def grant(conn: Connection, login: str, role: str, territory_oktmo: str | None = None,
          sector: str | None = None) -> int:
    """Give `login` a role (over a territory and its OKTMO descendants; agency: for a sector). Granting what
    the user already has changes nothing. Returns the grant's id."""
    check_grant(role, territory_oktmo, sector)
    uid = _user(conn, login).id
    tid = _territory_id(conn, territory_oktmo) if territory_oktmo else None
    params = {"u": uid, "r": role, "t": tid, "s": sector}
    existing = conn.execute(text("""
        SELECT id FROM cdt.grants WHERE user_id = :u AND role = :r
          AND territory_id IS NOT DISTINCT FROM CAST(:t AS int) AND sector IS NOT DISTINCT FROM CAST(:s AS text)"""),
                            params).scalar()
    if existing is not None:
        return existing
    return conn.execute(text("INSERT INTO cdt.grants (user_id, role, territory_id, sector) "
                             "VALUES (:u, :r, :t, :s) RETURNING id"), params).scalar_one()


def revoke(conn: Connection, login: str, role: str, territory_oktmo: str | None = None) -> int:
    """Take a role from `login`: over that territory, or (no territory given) every grant of the role.
    Returns how many grants went; NotFound when none matched."""
    uid = _user(conn, login).id
    tid = _territory_id(conn, territory_oktmo) if territory_oktmo else None
    gone = conn.execute(text("DELETE FROM cdt.grants WHERE user_id = :u AND role = :r "
                             "AND (CAST(:t AS int) IS NULL OR territory_id = :t)"),
                        {"u": uid, "r": role, "t": tid}).rowcount
    if not gone:
        raise NotFound(f"'{login}' has no {role} grant" + (f" over {territory_oktmo}" if territory_oktmo else ""))
    return gone


# --- tokens -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IssuedToken:
    id: int
    name: str | None
    token: str  # the plaintext: shown once, never stored


def issue_token(conn: Connection, login: str, name: str | None = None) -> IssuedToken:
    """A new API token for `login`; only its SHA-256 is stored."""
    user = _user(conn, login)
    if not user.active:
        raise InvalidParameterValue(f"user '{login}' is inactive")
    token = new_token()
    tid = conn.execute(text("INSERT INTO cdt.api_tokens (user_id, name, token_hash) VALUES (:u, :n, :h) "
                            "RETURNING id"), {"u": user.id, "n": name, "h": hash_token(token)}).scalar_one()
    return IssuedToken(tid, name, token)


def create_token(conn: Connection, login: str, name: str | None = None) -> str:
    """A new API token for `login`, in plaintext (the one time it exists outside the client)."""
    return issue_token(conn, login, name).token


def revoke_token(conn: Connection, token: int | str, *, owner_id: int | None = None) -> int:
    """Revoke a token given by id or in plaintext (`owner_id`: only if it is that user's). Revoking a revoked
    token changes nothing. Returns its id; NotFound when there is no such token (of that owner)."""
    by_id = isinstance(token, int) or str(token).isdigit()
    row = conn.execute(text(f"""
        UPDATE cdt.api_tokens SET revoked_at = coalesce(revoked_at, now())
        WHERE {'id = CAST(:v AS int)' if by_id else 'token_hash = :v'}
          AND (CAST(:owner AS int) IS NULL OR user_id = :owner) RETURNING id"""),
                       {"v": int(token) if by_id else hash_token(str(token)), "owner": owner_id}).first()
    if row is None:
        raise NotFound(f"no token {token}" if by_id else "no such token")
    return row.id


def list_tokens(conn: Connection, login: str | None = None, *, user_id: int | None = None) -> list[dict]:
    """Tokens (never their secrets) of one user, or of everybody."""
    if login is not None:
        user_id = _user(conn, login).id
    rows = conn.execute(text("""
        SELECT k.id, u.login, k.name, k.created_at, k.last_used_at, k.revoked_at
        FROM cdt.api_tokens k JOIN cdt.users u ON u.id = k.user_id
        WHERE CAST(:u AS int) IS NULL OR k.user_id = :u ORDER BY k.id"""), {"u": user_id})
    return [dict(r._mapping) for r in rows]


# --- signing in -------------------------------------------------------------------------------------------
def _wait_s(conn: Connection, who: str, params: dict) -> int:
    """Seconds until fewer than MAX_FAILED_LOGINS failures of `who` (an SQL condition) lie in the window."""
    wait = conn.execute(text(f"""
        SELECT extract(epoch FROM at + make_interval(secs => :window) - clock_timestamp()) FROM cdt.audit_log
        WHERE action = 'login' AND outcome = 'failed' AND at > clock_timestamp() - make_interval(secs => :window)
          AND {who}
        ORDER BY at DESC OFFSET :n LIMIT 1"""), {**params, "window": LOGIN_WINDOW_S, "n": MAX_FAILED_LOGINS - 1}
    ).scalar()
    return 0 if wait is None else max(1, math.ceil(wait))


def _record(conn: Connection, actor: str, outcome: str, remote_addr: str | None, detail: dict | None = None) -> None:
    """A login attempt in the audit log, committed on its own: it stays whatever the caller's transaction does."""
    with conn.engine.begin() as own:
        audit(own, actor, "login", outcome, remote_addr=remote_addr, detail=detail)


def authenticate(conn: Connection, login: str, password: str, remote_addr: str | None) -> Principal:
    """The principal of a login and password, or Unauthorized (TooManyRequests when throttled). Every attempt
    is audited (action "login", outcome ok/failed/throttled); a throttled attempt is refused without looking
    at the password. Unknown logins cost the same time as known ones. Run it inside a transaction: attempts
    on one login or from one address are serialized by transaction-scoped advisory locks."""
    login = (login or "")[:200]
    actor = f"user:{login}"
    addr = remote_addr or ""
    conn.execute(text("SELECT pg_advisory_xact_lock(7301, hashtext(:l)), pg_advisory_xact_lock(7302, hashtext(:a))"),
                 {"l": login, "a": addr})
    # A success ends the run of failures of that login (not of the address: anyone can succeed on their own).
    wait = max(_wait_s(conn, "actor = :actor AND at > coalesce((SELECT max(at) FROM cdt.audit_log WHERE action = "
                             "'login' AND outcome = 'ok' AND actor = :actor AND at > clock_timestamp() - "
                             "make_interval(secs => :window)), '-infinity')", {"actor": actor}),
               _wait_s(conn, "remote_addr = :addr", {"addr": addr}) if remote_addr else 0)
    if wait:
        _record(conn, actor, "throttled", remote_addr, {"retry_after": wait})
        raise TooManyRequests(f"too many failed logins; try again in {wait} s", wait)
    user = conn.execute(text("SELECT id, password_hash, active FROM cdt.users WHERE login = :l"), {"l": login}).first()
    stored = user.password_hash if user is not None and user.active else None
    ok, rehashed = verify_password(stored, password or "")
    if not ok:
        reason = ("unknown login" if user is None else "inactive" if not user.active
                  else "no password" if user.password_hash is None else "wrong password")
        _record(conn, actor, "failed", remote_addr, {"reason": reason})
        raise Unauthorized("wrong login or password")
    if rehashed:
        conn.execute(text("UPDATE cdt.users SET password_hash = :h WHERE id = :id"), {"h": rehashed, "id": user.id})
    _record(conn, actor, "ok", remote_addr)
    found = principal_for_user(conn, user.id)
    if found is None:  # deactivated meanwhile
        raise Unauthorized("wrong login or password")
    return found
