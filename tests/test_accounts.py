"""Accounts: argon2id passwords, signing in (sessions, throttling, audit), CSRF, API tokens, the `cdt users`
CLI and the demo accounts, against the real PostGIS demo database."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from sqlalchemy import text

from geoserver_app.app import create_app
from geoserver_app.cli import main
from geoserver_app.config import Config
from layers import accounts
from layers.access import Unauthorized
from layers.errors import Conflict, InvalidParameterValue, NotFound, TooManyRequests
from layers.ingest.demo import DEMO_ACCOUNTS, demo_password
from tests.conftest import bearer, scalar, table_fingerprints

HTTPS = "https://localhost"
FZ = "/collections/functional_zones/items"
GEOJSON = "application/geo+json"


@pytest.fixture(scope="module")
def app(db_url):
    return create_app(Config(secret_key="test-accounts-secret"), database_url=db_url)


class Browser:
    """A test client over HTTPS (so Secure cookies flow) from its own address (so throttling by address in
    one test does not reach another)."""

    def __init__(self, app, addr: str):
        self.client = app.test_client()
        self.client.environ_base["REMOTE_ADDR"] = addr

    def open(self, method: str, path: str, **kw):
        return self.client.open(path, method=method, base_url=HTTPS, **kw)

    def get(self, path: str, **kw):
        return self.open("GET", path, **kw)

    def post(self, path: str, **kw):
        return self.open("POST", path, **kw)

    def put(self, path: str, **kw):
        return self.open("PUT", path, **kw)

    def delete(self, path: str, **kw):
        return self.open("DELETE", path, **kw)

    def login(self, login: str, password: str | None = None):
        resp = self.post("/login", json={"login": login, "password": password or demo_password(login)})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return resp.get_json()


def make_user(engine, login: str, password: str | None = "a-good-password", **grant) -> None:
    """A fresh user (replacing one left by an earlier run of the test on this database)."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM cdt.users WHERE login = :l"), {"l": login})
        accounts.create_user(conn, login, password, f"Test {login}", "Tests")
        if grant:
            accounts.grant(conn, login, **grant)


def audit_rows(engine, actor: str, action: str = "login") -> list:
    with engine.connect() as conn:
        return conn.execute(text("SELECT outcome, remote_addr, detail, target FROM cdt.audit_log WHERE actor = :a "
                                 "AND action = :act ORDER BY id"), {"a": actor, "act": action}).all()


def square(x: float, y: float, size: float = 0.004) -> dict:
    return {"type": "Polygon", "coordinates": [[[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]]}


# --- passwords ----------------------------------------------------------------------------------------------
def test_passwords_are_argon2id_and_verify():
    stored = accounts.hash_password("correct horse battery")
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert accounts.hash_password("correct horse battery") != stored  # salted
    assert accounts.verify_password(stored, "correct horse battery") == (True, None)
    assert accounts.verify_password(stored, "correct horse batterY") == (False, None)
    assert accounts.verify_password(None, "anything") == (False, None)  # unknown login: a dummy verification
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("correct horse battery")
    ok, rehashed = accounts.verify_password(weak, "correct horse battery")
    assert ok and rehashed and rehashed.startswith("$argon2id$") and "m=65536" in rehashed


def test_login_rehashes_an_outdated_hash(engine):
    make_user(engine, "t_rehash")
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("a-good-password")
    with engine.begin() as conn:
        conn.execute(text("UPDATE cdt.users SET password_hash = :h WHERE login = 't_rehash'"), {"h": weak})
    with engine.begin() as conn:
        assert accounts.authenticate(conn, "t_rehash", "a-good-password", "10.9.0.1").login == "t_rehash"
    stored = scalar(engine, "SELECT password_hash FROM cdt.users WHERE login = 't_rehash'")
    assert stored != weak and "m=65536" in stored
    assert accounts.verify_password(stored, "a-good-password")[0]


def test_account_service_validates(engine):
    make_user(engine, "t_service")
    with engine.begin() as conn:
        with pytest.raises(Conflict):
            accounts.create_user(conn, "t_service", None)
        with pytest.raises(InvalidParameterValue, match="8 to"):
            accounts.create_user(conn, "t_short", "short")
        with pytest.raises(InvalidParameterValue, match="login"):
            accounts.create_user(conn, "bad login!", None)
        with pytest.raises(InvalidParameterValue, match="needs a sector"):
            accounts.grant(conn, "t_service", "agency", "19000000")
        with pytest.raises(InvalidParameterValue, match="needs a territory"):
            accounts.grant(conn, "t_service", "municipal")
        with pytest.raises(InvalidParameterValue, match="covers no territory"):
            accounts.grant(conn, "t_service", "federal", "19000000")
        with pytest.raises(InvalidParameterValue, match="only agency"):
            accounts.grant(conn, "t_service", "analyst", "19000000", "energy")
        with pytest.raises(InvalidParameterValue, match="unknown role"):
            accounts.grant(conn, "t_service", "mayor", "19701000")
        with pytest.raises(NotFound, match="OKTMO 99999999"):
            accounts.grant(conn, "t_service", "regional", "99999999")
        with pytest.raises(NotFound, match="no user"):
            accounts.grant(conn, "nobody_here", "federal")
        first = accounts.grant(conn, "t_service", "agency", "19000000", "energy")
        assert accounts.grant(conn, "t_service", "agency", "19000000", "energy") == first  # idempotent
        assert accounts.revoke(conn, "t_service", "agency") == 1
        with pytest.raises(NotFound):
            accounts.revoke(conn, "t_service", "agency")
        token = accounts.create_token(conn, "t_service", "script")
        assert token.startswith("cdt_")
        assert accounts.principal_for_token(conn, token).login == "t_service"
        accounts.revoke_token(conn, token)  # by plaintext
        assert accounts.principal_for_token(conn, token) is None
        listed = accounts.list_tokens(conn, "t_service")
        assert len(listed) == 1 and listed[0]["revoked_at"] is not None and "token" not in listed[0]


# --- signing in ---------------------------------------------------------------------------------------------
def test_login_sets_a_secure_httponly_lax_session(app, engine):
    b = Browser(app, "10.1.0.1")
    resp = b.post("/login", json={"login": "vologda_city", "password": "demo-vologda_city"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["login"] == "vologda_city" and body["via"] == "session" and body["csrf_token"]
    assert body["grants"] == [{"role": "municipal", "sector": None,
                               "territory": {"oktmo": "19701000", "name": "г Вологда"}}]
    cookie = next(c for c in resp.headers.getlist("Set-Cookie") if c.startswith("cdt_session="))
    attrs = {a.strip().split("=")[0].lower(): a for a in cookie.split(";")}
    assert "httponly" in attrs and "secure" in attrs and attrs["samesite"].strip() == "SameSite=Lax"
    assert resp.headers["Cache-Control"] == "no-store"
    me = b.get("/auth/me").get_json()
    assert me["login"] == "vologda_city" and me["roles"] == ["municipal"] and me["csrf_token"] == body["csrf_token"]
    assert audit_rows(engine, "user:vologda_city")[-1][:2] == ("ok", "10.1.0.1")


def test_form_login_with_its_csrf_token(app):
    b = Browser(app, "10.1.0.2")
    page = b.get("/login", headers={"Accept": "text/html"})
    assert page.status_code == 200 and page.mimetype == "text/html"
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    form = {"login": "analyst", "password": "demo-analyst", "next": "//evil.example/x"}
    refused = b.post("/login", data=form)  # no form token: a login CSRF attempt
    assert refused.status_code == 403 and b.get("/auth/me").get_json()["anonymous"]
    resp = b.post("/login", data={**form, "csrf_token": token})
    assert resp.status_code == 303 and resp.headers["Location"] == "/"  # never off-site
    assert b.get("/auth/me").get_json()["login"] == "analyst"
    resp = Browser(app, "10.1.0.2").post("/login", data={**form, "csrf_token": token, "next": "/collections"})
    assert resp.status_code == 403  # a token of another session is no good
    assert b.get("/login?f=json").get_json()["csrf_token"]


def test_wrong_password_or_unknown_login_is_401_and_audited(app, engine):
    make_user(engine, "t_wrong")
    b = Browser(app, "10.1.0.3")
    for login in ("t_wrong", "t_nobody_at_all"):
        resp = b.post("/login", json={"login": login, "password": "not-the-password"})
        assert resp.status_code == 401 and resp.get_json() == {"code": "Unauthorized",
                                                               "description": "wrong login or password"}
        assert not any(c.startswith("cdt_session=") and "uid" in c for c in resp.headers.getlist("Set-Cookie"))
    assert b.get("/auth/me").get_json()["anonymous"]
    assert [r.outcome for r in audit_rows(engine, "user:t_wrong")] == ["failed"]
    assert audit_rows(engine, "user:t_nobody_at_all")[0].detail == {"reason": "unknown login"}
    assert b.post("/login", json={"login": "t_wrong"}).status_code == 400
    assert b.post("/login", data="x", content_type="text/plain").status_code == 415


def test_sixth_attempt_after_five_failures_is_throttled(app, engine):
    make_user(engine, "t_throttle")
    b = Browser(app, "10.1.0.4")
    for _ in range(5):
        assert b.post("/login", json={"login": "t_throttle", "password": "wrong-password"}).status_code == 401
    resp = b.post("/login", json={"login": "t_throttle", "password": "a-good-password"})  # right, yet refused
    assert resp.status_code == 429 and resp.get_json()["code"] == "TooManyRequests"
    assert 0 < int(resp.headers["Retry-After"]) <= 15 * 60
    assert b.get("/auth/me").get_json()["anonymous"]
    # Throttled by login (from elsewhere) and by address (for another login).
    assert Browser(app, "10.1.0.40").post("/login", json={"login": "t_throttle", "password": "a-good-password"}
                                          ).status_code == 429
    assert b.post("/login", json={"login": "analyst", "password": "demo-analyst"}).status_code == 429
    rows = audit_rows(engine, "user:t_throttle")
    assert [r.outcome for r in rows] == ["failed"] * 5 + ["throttled"] * 2
    assert all(r.remote_addr == "10.1.0.4" for r in rows[:6]) and rows[6].remote_addr == "10.1.0.40"
    assert audit_rows(engine, "user:analyst")[-1][:2] == ("throttled", "10.1.0.4")
    # Once the window has passed, the right password works again.
    with engine.begin() as conn:
        conn.execute(text("UPDATE cdt.audit_log SET at = at - interval '16 minutes' WHERE action = 'login' "
                          "AND (actor = 'user:t_throttle' OR remote_addr = '10.1.0.4')"))
    assert b.post("/login", json={"login": "t_throttle", "password": "a-good-password"}).status_code == 200


def test_a_success_ends_the_run_of_failures_of_that_login(engine):
    make_user(engine, "t_reset")

    def attempt(password: str, addr: str):
        with engine.begin() as conn:
            return accounts.authenticate(conn, "t_reset", password, addr)

    for _ in range(4):
        with pytest.raises(Unauthorized):
            attempt("wrong-password", "10.2.0.1")
    assert attempt("a-good-password", "10.2.0.1").login == "t_reset"
    for _ in range(5):
        with pytest.raises(Unauthorized):
            attempt("wrong-password", "10.2.0.2")
    with pytest.raises(TooManyRequests) as refused:
        attempt("a-good-password", "10.2.0.3")
    assert refused.value.status == 429 and refused.value.retry_after > 0


# --- CSRF ---------------------------------------------------------------------------------------------------
@pytest.fixture
def created(engine):
    made: list[int] = []
    yield made
    with engine.begin() as conn:
        for fid in made:
            conn.execute(text("DELETE FROM cdt.functional_zones WHERE id = :id"), {"id": fid})
            conn.execute(text("DELETE FROM cdt.history WHERE collection = 'functional_zones' AND feature_id = :f"),
                         {"f": str(fid)})


def test_session_writes_need_the_csrf_token(app, engine, created):
    b = Browser(app, "10.1.0.5")
    csrf = b.login("vologda_city")["csrf_token"]
    zone = json.dumps({"type": "Feature", "geometry": square(39.881, 59.211),
                       "properties": {"zone_type": "residential", "name": "CSRF test"}})
    before = scalar(engine, "SELECT count(*) FROM cdt.functional_zones")
    refused = b.post(FZ, data=zone, content_type=GEOJSON)
    assert refused.status_code == 403 and refused.get_json()["code"] == "Forbidden"
    assert "CSRF" in refused.get_json()["description"]
    assert b.post(FZ, data=zone, content_type=GEOJSON, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert scalar(engine, "SELECT count(*) FROM cdt.functional_zones") == before
    denied = audit_rows(engine, "user:vologda_city", f"POST {FZ}")
    assert denied and denied[-1].outcome == "denied" and "CSRF" in denied[-1].detail["reason"]
    resp = b.post(FZ, data=zone, content_type=GEOJSON, headers={"X-CSRF-Token": csrf})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    fid = resp.get_json()["id"]
    created.append(fid)
    assert scalar(engine, "SELECT created_by FROM cdt.functional_zones WHERE id = :i", i=fid) == "user:vologda_city"
    assert b.put(f"{FZ}/{fid}", data=zone, content_type=GEOJSON).status_code == 403
    assert b.put(f"{FZ}/{fid}", data=zone, content_type=GEOJSON, headers={"X-CSRF-Token": csrf}).status_code == 200
    assert b.delete(f"{FZ}/{fid}").status_code == 403
    assert b.delete(f"{FZ}/{fid}", headers={"X-CSRF-Token": csrf}).status_code == 204
    # A CQL2 JSON search is a read: no token needed.
    search = b.post(FZ, data=json.dumps({"op": "=", "args": [{"property": "name"}, "x"]}),
                    content_type="application/query-cql-json")
    assert search.status_code == 200
    # Signing out is a write too.
    assert b.post("/logout").status_code == 403
    assert b.post("/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    assert b.get("/auth/me").get_json()["anonymous"]
    # Anonymous: not a CSRF question but a missing sign-in.
    assert b.post(FZ, data=zone, content_type=GEOJSON).status_code == 401


def test_bearer_writes_need_no_csrf_token(app, tokens, created):
    b = Browser(app, "10.1.0.6")
    zone = json.dumps({"type": "Feature", "geometry": square(39.885, 59.215),
                       "properties": {"zone_type": "residential", "name": "Bearer test"}})
    resp = b.post(FZ, data=zone, content_type=GEOJSON, headers=bearer(tokens["t_city_vologda"]))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    created.append(resp.get_json()["id"])


# --- tokens -------------------------------------------------------------------------------------------------
def test_token_create_use_list_revoke(app, engine, tokens):
    b = Browser(app, "10.1.0.7")
    assert b.post("/auth/tokens", json={"name": "qgis"}).status_code == 401  # anonymous
    csrf = b.login("analyst")["csrf_token"]
    assert b.post("/auth/tokens", json={"name": "qgis"}).status_code == 403  # session without CSRF token
    resp = b.post("/auth/tokens", json={"name": "qgis"}, headers={"X-CSRF-Token": csrf})
    assert resp.status_code == 201 and resp.headers["Cache-Control"] == "no-store"
    made = resp.get_json()
    token, tid = made["token"], made["id"]
    assert made["name"] == "qgis" and token.startswith("cdt_")
    assert scalar(engine, "SELECT token_hash FROM cdt.api_tokens WHERE id = :i", i=tid) == \
        hashlib.sha256(token.encode()).hexdigest()
    assert scalar(engine, "SELECT count(*) FROM cdt.api_tokens WHERE token_hash = :t", t=token) == 0

    machine = Browser(app, "10.1.0.8")
    me = machine.get("/auth/me", headers=bearer(token)).get_json()
    assert me["login"] == "analyst" and me["via"] == "token" and me["csrf_token"] is None
    assert me["grants"][0]["territory"]["oktmo"] == "19000000"
    listed = b.get("/auth/tokens").get_json()["tokens"]
    assert tid in [t["id"] for t in listed] and all("token" not in t and "token_hash" not in t for t in listed)
    assert machine.post("/auth/tokens", json={}, headers=bearer(token)).status_code == 403  # no tokens from tokens
    # Someone else's token: not found for them; the owner (by Bearer, no CSRF needed) revokes it.
    assert machine.delete(f"/auth/tokens/{tid}", headers=bearer(tokens["t_city_vologda"])).status_code == 404
    assert machine.delete(f"/auth/tokens/{tid}", headers=bearer(token)).status_code == 204
    assert machine.get("/auth/me", headers=bearer(token)).status_code == 401
    assert next(t for t in b.get("/auth/tokens").get_json()["tokens"] if t["id"] == tid)["revoked_at"]
    assert [r.target for r in audit_rows(engine, "user:analyst", "token.revoke")][-1] == f"token/{tid}"
    # Federal staff may revoke anybody's token.
    with engine.begin() as conn:
        other = accounts.issue_token(conn, "analyst", "other")
    assert machine.delete(f"/auth/tokens/{other.id}", headers=bearer(tokens["t_federal"])).status_code == 204
    assert machine.get("/auth/me", headers=bearer(other.token)).status_code == 401


def test_me_anonymous_and_api_lists_the_routes(app):
    b = Browser(app, "10.1.0.9")
    me = b.get("/auth/me").get_json()
    assert me["anonymous"] and me["login"] is None and me["roles"] == ["citizen"] and me["grants"] == []
    assert me["csrf_token"]
    paths = b.get("/api").get_json()["paths"]
    assert {"post", "get"} <= set(paths["/login"]) and "post" in paths["/logout"] and "get" in paths["/auth/me"]
    assert {"get", "post"} <= set(paths["/auth/tokens"]) and "delete" in paths["/auth/tokens/{tokenId}"]


# --- the CLI ------------------------------------------------------------------------------------------------
def test_cli_users(app, db_url, engine):
    runner = CliRunner()
    env = {"CDT_DATABASE_URL": db_url}

    def cdt(*args, input=None):
        return runner.invoke(main, ["users", *args], env=env, input=input)

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM cdt.users WHERE login IN ('t_cli', 't_cli_machine')"))
    result = cdt("add", "t_cli", "--name", "CLI user", "--organisation", "Tests", "--password-stdin",
                 "--role", "municipal", "--territory", "19701000", input="cli-password-1\n")
    assert result.exit_code == 0, result.output
    assert "t_cli created as municipal of 19701000" in result.output
    with engine.begin() as conn:
        assert accounts.authenticate(conn, "t_cli", "cli-password-1", "10.3.0.1").login == "t_cli"
    assert cdt("grant", "t_cli", "agency", "--territory", "19000000", "--sector", "energy").exit_code == 0
    listing = cdt("list").output
    assert re.search(r"t_cli\s+municipal@19701000, agency@19000000/energy", listing)
    assert "minister" in listing and "vologda_energy" in listing
    for args, message in ((("grant", "t_cli", "agency", "--territory", "19000000"), "needs a sector"),
                          (("grant", "t_cli", "regional", "--territory", "99999999"), "no territory with OKTMO"),
                          (("grant", "t_cli", "federal", "--territory", "19000000"), "covers no territory"),
                          (("grant", "nobody_here", "federal"), "no user"),
                          (("add", "t_cli", "--no-password"), "exists already")):
        result = cdt(*args)
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, args
        assert len(result.output.strip().splitlines()) == 1
    assert cdt("add", "t_x", "--password", "secret").exit_code == 2  # never a password argument
    assert cdt("revoke", "t_cli", "agency").exit_code == 0
    assert cdt("revoke", "t_cli", "agency").exit_code == 2
    assert cdt("passwd", "t_cli", "--password-stdin", input="cli-password-2\n").exit_code == 0
    with engine.begin() as conn:
        assert accounts.authenticate(conn, "t_cli", "cli-password-2", "10.3.0.1").login == "t_cli"
    # Interactive: a hidden prompt, asked twice.
    assert cdt("passwd", "t_cli", input="cli-password-3\ncli-password-3\n").exit_code == 0
    with engine.begin() as conn:
        assert accounts.authenticate(conn, "t_cli", "cli-password-3", "10.3.0.1").login == "t_cli"

    assert cdt("add", "t_cli_machine", "--no-password", "--role", "enterprise").exit_code == 0
    result = cdt("token", "t_cli_machine", "--name", "script")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    tid = int(re.search(r"token (\d+) \(script\)", result.stderr).group(1))
    b = Browser(app, "10.3.0.2")
    assert b.get("/auth/me", headers=bearer(token)).get_json()["login"] == "t_cli_machine"
    assert f"{tid:>6}  t_cli_machine" in cdt("tokens", "t_cli_machine").output
    assert cdt("revoke-token", str(tid)).exit_code == 0
    assert b.get("/auth/me", headers=bearer(token)).status_code == 401
    assert cdt("revoke-token", "999999999").exit_code == 2
    with engine.connect() as conn:
        actions = set(conn.execute(text("SELECT action FROM cdt.audit_log WHERE actor LIKE 'cli:%' "
                                        "AND (action LIKE 'users.%' OR action LIKE 'token.%')")).scalars())
    assert {"users.add", "users.grant", "users.revoke", "users.passwd", "token.create", "token.revoke"} <= actions


# --- demo accounts ------------------------------------------------------------------------------------------
def test_demo_accounts_sign_in_with_their_roles(engine):
    for i, (login, (_name, _org, role, oktmo, sector)) in enumerate(DEMO_ACCOUNTS.items()):
        with engine.begin() as conn:
            who = accounts.authenticate(conn, login, demo_password(login), f"10.4.0.{i}")
            info = accounts.user_info(conn, who.user_id)
        assert who.roles == {role} and len(info["grants"]) == 1
        got = info["grants"][0]
        assert (got["role"], got["sector"], (got["territory"] or {}).get("oktmo")) == (role, sector, oktmo)
        if oktmo:
            assert {"19000000": "Вологодская", "19701000": "г Вологда", "65701000": "г Екатеринбург"}[oktmo] \
                in got["territory"]["name"]


def test_load_demo_twice_changes_nothing(db_url, engine):
    # the first run through the CLI may compute the result layers (the session's demo was loaded without them)
    first = CliRunner().invoke(main, ["load", "demo"], env={"CDT_DATABASE_URL": db_url})
    assert first.exit_code == 0, first.output
    before = table_fingerprints(engine)
    for _ in range(2):
        result = CliRunner().invoke(main, ["load", "demo"], env={"CDT_DATABASE_URL": db_url})
        assert result.exit_code == 0, result.output
        assert "demo accounts: present, unchanged" in result.output
        assert "result layers of 19701000: current" in result.output
    assert table_fingerprints(engine) == before
