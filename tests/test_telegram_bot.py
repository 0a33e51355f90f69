"""The Telegram bot, offline: python-telegram-bot long-polls a fake Bot API server on 127.0.0.1
(tests/fake_telegram.py), and the tests talk to it as chats would: each command, linking a chat to an account
with a one-time code, and the refusal of restricted data to a chat that is not linked."""

from __future__ import annotations

import asyncio
import math
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from energy.store import load_file
from geoserver_app.app import create_app
from geoserver_app.bot import commands, linking
from geoserver_app.bot.app import build
from geoserver_app.cli import main
from geoserver_app.config import Config
from layers.access import ANONYMOUS
from layers.db import transaction
from planning import goals_service
from planning.indicators import catalog, service
from spatial import access_service
from tests.conftest import bearer, scalar
from tests.fake_telegram import FakeTelegram
from tests.test_planning_api import indicator_values_restored

VOLOGDA = "19701000"
YEAR = 2026
FEB = Path(__file__).resolve().parents[1] / "data" / "feb" / "moscow-oblast"
RESTRICTED = "heat_network_km"  # over utility_lines: restricted (energy sector), nothing for the public
ANALYST = "t_analyst_vologda"  # analyst over the Vologda region: may read restricted layers there
POINT = (39.89, 59.22)  # lon, lat: in Vologda, near a kindergarten and a school of the demo data


@pytest.fixture(scope="module")
def data(engine, tokens):
    """Indicator values of Vologda, a program with a goal, the 2020 balance of the Moscow oblast."""
    with indicator_values_restored(engine):
        with transaction(engine, "test") as c:
            catalog.install(c, "test")
        service.run(engine, VOLOGDA, YEAR, "test")
        # The demo data has no heat network in Vologda: a stored value stands in (access is decided on the
        # indicator's source layer, not on the value).
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO cdt.indicator_values (indicator_code, territory_id, period, value_type, value, source) "
                "SELECT :c, id, make_date(:y, 1, 1), 'actual', 12.75, 'test-bot' FROM cdt.territories "
                "WHERE oktmo = :o ON CONFLICT DO NOTHING"), {"c": RESTRICTED, "y": YEAR, "o": VOLOGDA})
        load_file(engine, FEB / "balance2020.xlsx", "46000000", "test:feb", name="Московская область")
        pid = goals_service.create_program(engine, "test-prog-bot", "Test program bot", VOLOGDA, "test")
        goals_service.create_goal(engine, "test", title="Test goal bot kindergartens", territory_oktmo=VOLOGDA,
                                  indicator="fac_kindergarten_capacity_per_1000", target_value=100.0,
                                  target_year=2030, baseline_year=YEAR, program_id=pid)
        try:
            yield
        finally:
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM cdt.goals WHERE title = 'Test goal bot kindergartens'"))
                conn.execute(text("DELETE FROM cdt.programs WHERE code = 'test-prog-bot'"))
                conn.execute(text("DELETE FROM cdt.telegram_links"))
                conn.execute(text("DELETE FROM cdt.telegram_codes"))


@pytest.fixture(scope="module")
def telegram(engine, data):
    """The bot, long polling the fake server in a thread of its own (its own event loop), as `cdt bot` runs."""
    fake = FakeTelegram().start()
    application = build(engine, fake.token, fake.base_url)
    ready, stop, failed = threading.Event(), threading.Event(), []

    async def serve() -> None:
        async with application:  # initialize (getMe) ... shutdown
            await application.post_init(application)  # run_polling would call it: the command menu
            await application.updater.start_polling(poll_interval=0.0, timeout=5)
            await application.start()
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)
            await application.updater.stop()
            await application.stop()

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            failed.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name="cdt-bot", daemon=True)
    thread.start()
    assert ready.wait(30) and not failed, failed
    yield fake
    stop.set()
    thread.join(timeout=30)
    fake.stop()
    assert not thread.is_alive() and not failed, failed


def _value(engine, code: str) -> float:
    return scalar(engine, "SELECT value FROM cdt.indicator_values v JOIN cdt.territories t ON t.id = v.territory_id "
                          "WHERE t.oktmo = :o AND indicator_code = :c AND value_type = 'actual' "
                          "AND scenario_id IS NULL AND period = make_date(:y, 1, 1)", o=VOLOGDA, c=code, y=YEAR)


def test_polls_the_fake_server_and_sets_its_command_menu(telegram):
    telegram.wait_method("getUpdates")
    assert "getMe" in telegram.methods()
    menus = [p for m, p in telegram.calls if m == "setMyCommands"]
    assert {p.get("language_code") for p in menus} == {"ru", None}
    assert any(c["command"] == "indicator" for c in menus[0]["commands"])


def test_help_in_the_users_language_and_lang(telegram):
    ru = telegram.ask(101, "/help", "ru")["text"]
    assert "/indicator" in ru and "Вы не вошли" in ru
    assert "Not linked" in telegram.ask(102, "/start", "en-GB")["text"]
    assert telegram.ask(101, "/lang en")["text"] == "Language: English."
    assert "Not linked" in telegram.ask(101, "/help", "ru")["text"]  # the choice beats Telegram's language
    assert telegram.ask(101, "/lang de", "ru")["text"] == "Usage: /lang ru or /lang en"
    assert "Неизвестная команда" in telegram.ask(103, "/nonsense")["text"]


def test_indicator_latest_value_with_unit_year_and_goal(telegram, engine):
    value = _value(engine, "fac_kindergarten_capacity_per_1000")
    reply = telegram.ask(201, f"/indicator {VOLOGDA} fac_kindergarten_capacity_per_1000", "en")["text"]
    assert f"({VOLOGDA})" in reply and f"{value:,.1f}" in reply and f"({YEAR})" in reply and "ед./1000" in reply
    assert "Goal 'Test goal bot kindergartens': 100.0 by 2030" in reply
    by_name = telegram.ask(202, "/indicator Вологда fac_kindergarten_capacity_per_1000", "ru")["text"]
    assert f"({VOLOGDA})" in by_name and f"{value:.1f}".replace(".", ",") in by_name


def test_indicator_trend_against_the_year_before(engine):
    with transaction(engine, "test") as conn:
        conn.execute(text(
            "INSERT INTO cdt.indicator_values (indicator_code, territory_id, period, value_type, value, source) "
            "SELECT 'fac_school_capacity_per_1000', id, make_date(:y, 1, 1), 'actual', 50, 'test-bot-trend' "
            "FROM cdt.territories WHERE oktmo = :o"), {"y": YEAR - 1, "o": VOLOGDA})
    try:
        now = _value(engine, "fac_school_capacity_per_1000")
        reply = commands.indicator(engine, ANONYMOUS, [VOLOGDA, "fac_school_capacity_per_1000"], "en").text
        arrow = "▲" if now > 50 else "▼"
        assert f"{arrow} {'+' if now > 50 else ''}{now - 50:,.1f} vs {YEAR - 1} (50.0)" in reply
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM cdt.indicator_values WHERE source = 'test-bot-trend'"))


def test_indicator_without_arguments_or_unknown_code_helps(telegram):
    bare = telegram.ask(203, "/indicator", "en")["text"]
    assert bare.startswith("Usage: /indicator") and "fac_kindergarten_capacity_per_1000" in bare
    unknown = telegram.ask(203, f"/indicator {VOLOGDA} kindergarten_capcity", "en")["text"]
    assert "Unknown indicator 'kindergarten_capcity'" in unknown and "Similar indicators:" in unknown
    assert "kindergarten_capacity" in unknown
    # restricted indicators are not offered to those who may not see them
    assert RESTRICTED not in telegram.ask(203, "/indicator heat_network", "en")["text"]
    assert "not found" in telegram.ask(204, "/indicator Нигдеград fac_school_count", "ru")["text"].replace(
        "не найдена", "not found")


def test_near_asks_for_a_location_then_assesses_it(telegram, engine):
    ask = telegram.ask(301, "/near", "en")
    button = ask["reply_markup"]["keyboard"][0][0]
    assert button["request_location"] is True and "location" in ask["text"]
    telegram.push(telegram.location_update(301, POINT[1], POINT[0], "en"))
    reply = telegram.wait_replies(301, 2)[1]
    expected = access_service.neighbourhood(engine, ANONYMOUS, *POINT)
    kg = expected["services"]["kindergarten"]
    assert f"Kindergarten: {math.ceil(kg['seconds'] / 60)} min — {kg['name']}" in reply["text"]
    assert f"15-minute score: {expected['score']:.0f} of 100" in reply["text"]
    assert reply["reply_markup"] == {"remove_keyboard": True}


def test_near_with_an_address_or_after_asking(telegram, engine):
    name = scalar(engine, "SELECT name FROM cdt.facilities WHERE type_code = 'kindergarten' AND name IS NOT NULL "
                          "ORDER BY id LIMIT 1")
    reply = telegram.ask(302, f"/near {name}", "ru")["text"]
    assert "Пешая доступность" in reply and "Детский сад" in reply and name in reply
    telegram.ask(303, "/near", "ru")
    typed = telegram.ask(303, name, "ru")["text"]  # an address typed after a bare /near
    assert "Пешая доступность" in typed
    assert "не найден" in telegram.ask(304, "/near Несуществующая улица 999", "ru")["text"]


def test_balance_primary_final_sectors_and_co2(telegram):
    reply = telegram.ask(401, "/balance 46000000 2020", "en")["text"]
    assert reply.startswith("Energy balance of Московская область (46000000), 2020 (thousand tce):")
    assert "Primary energy consumption:" in reply and "Final consumption:" in reply
    assert "Households:" in reply and "CO2 from combustion:" in reply
    assert "ТЭБ Московская область" in telegram.ask(401, "/balance Московская 2020", "ru")["text"]
    assert "No balance" in telegram.ask(401, "/balance 46000000 1990", "en")["text"]
    assert telegram.ask(401, "/balance 46000000", "en")["text"].startswith("Usage: /balance")


def test_goal_by_indicator_or_program(telegram):
    by_indicator = telegram.ask(501, "/goal fac_kindergarten_capacity_per_1000", "en")["text"]
    assert "• Test goal bot kindergartens (г Вологда): " in by_indicator and "% achieved" in by_indicator
    assert "Test goal bot kindergartens" in telegram.ask(501, "/goal test-prog-bot", "ru")["text"]
    assert "No goals" in telegram.ask(501, "/goal no_such_code", "en")["text"]


def test_link_with_a_one_time_code_lifts_the_refusal(telegram, engine, db_url, tokens):
    chat = 601
    refused = telegram.ask(chat, f"/indicator {VOLOGDA} {RESTRICTED}", "en")["text"]
    assert refused == f"Indicator '{RESTRICTED}' is computed from restricted data. Link your account: /link <code>."
    client = create_app(Config(), database_url=db_url).test_client()
    assert client.post("/account/telegram-code").status_code == 401  # anonymous: no code
    resp = client.post("/account/telegram-code", headers=bearer(tokens[ANALYST]))
    assert resp.status_code == 201
    code = resp.get_json()["code"]
    assert len(code) == linking.CODE_LENGTH

    assert telegram.ask(chat, f"/link {code.lower()}", "en")["text"] == \
        f"Linked to {ANALYST}: that account's access rules apply."
    assert scalar(engine, "SELECT count(*) FROM cdt.audit_log WHERE action = 'telegram.link' AND outcome = 'ok' "
                          "AND actor = :a AND target = :t", a=f"user:{ANALYST}", t=f"telegram:{chat}") == 1
    value = _value(engine, RESTRICTED)
    shown = telegram.ask(chat, f"/indicator {VOLOGDA} {RESTRICTED}", "en")["text"]
    assert f"{value:,.1f} км ({YEAR})" in shown
    assert f"Signed in as {ANALYST}" in telegram.ask(chat, "/help", "en")["text"]
    # in a group everybody reads the answer: the public tier there, even for a linked user
    telegram.push(telegram.text_update(chat, f"/indicator {VOLOGDA} {RESTRICTED}", "en", group=-600))
    assert "restricted data" in telegram.wait_replies(-600, 1)[0]["text"]

    # once only: another chat cannot reuse the code
    assert "wrong, expired or used" in telegram.ask(602, f"/link {code}", "en")["text"]
    assert telegram.ask(chat, "/unlink", "en")["text"] == f"Unlinked from {ANALYST}: you see public data only."
    assert "restricted" in telegram.ask(chat, f"/indicator {VOLOGDA} {RESTRICTED}", "en")["text"]
    assert telegram.ask(chat, "/unlink", "en")["text"] == "No account was linked."


def test_a_signed_in_user_without_the_grant_is_refused_too(engine, data, tokens):
    with engine.begin() as conn:  # agency staff of education: the energy sector's networks are not theirs
        issued = linking.issue_code_for_login(conn, "t_education_vologda")
        assert linking.redeem(conn, 701, issued.code) is not None
    who = linking.principal_for(engine, 701)
    assert who.login == "t_education_vologda"
    reply = commands.indicator(engine, who, [VOLOGDA, RESTRICTED], "ru").text
    assert reply == f"Показатель «{RESTRICTED}» рассчитан по данным, недоступным вашей учётной записи."


def test_codes_expire_and_guessing_is_throttled(engine, data, tokens):
    with engine.begin() as conn:
        issued = linking.issue_code_for_login(conn, ANALYST)
        conn.execute(text("UPDATE cdt.telegram_codes SET expires_at = now() - interval '1 second' "
                          "WHERE code_hash = :h"), {"h": linking.accounts.hash_token(issued.code)})
    with engine.begin() as conn:
        assert linking.redeem(conn, 801, issued.code) is None
    for _ in range(linking.MAX_FAILED_LINKS):
        with engine.begin() as conn:
            assert linking.redeem(conn, 802, "WRONGCOD") is None
    with engine.begin() as conn:
        fresh = linking.issue_code_for_login(conn, ANALYST)
    with engine.begin() as conn:  # even the right code waits for the window to pass
        assert linking.redeem(conn, 802, fresh.code) is None
    with engine.begin() as conn:
        assert linking.redeem(conn, 803, fresh.code).login == ANALYST


def test_cli_prints_a_code_and_bot_needs_a_token(db_url, engine, data, tokens):
    result = CliRunner().invoke(main, ["users", "telegram-code", ANALYST], env={"CDT_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    code = result.stdout.strip().splitlines()[-1]
    with engine.begin() as conn:
        assert linking.redeem(conn, 901, code).login == ANALYST
    missing = CliRunner().invoke(main, ["users", "telegram-code", "nobody"], env={"CDT_DATABASE_URL": db_url})
    assert missing.exit_code == 2 and "no active user 'nobody'" in missing.output
    no_token = CliRunner().invoke(main, ["bot"], env={"CDT_DATABASE_URL": db_url, "CDT_TELEGRAM_TOKEN": ""})
    assert no_token.exit_code == 2 and "CDT_TELEGRAM_TOKEN is not set" in no_token.output
