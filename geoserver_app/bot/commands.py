"""What the bot answers: each command is a function of (engine, principal, arguments, language) that calls the
service layer and returns the reply. No Telegram here, so the answers are tested without a chat.

Access: the principal is the linked account's (layers.access decides, as for the HTTP API) or the anonymous
public tier. An indicator over layers the principal may not read is refused (planning.indicators.access), the
neighbourhood assessment reads only the facilities the principal may see, search only what it may list.
CDT's own errors (a bad argument, an unknown territory) propagate; the caller shows their text.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from energy import co2, layout
from energy import store as energy_store
from geoserver_app.bot import linking
from geoserver_app.bot.i18n import FACILITY_KINDS, VERDICTS, number, pick, t
from layers import search
from layers.access import Principal
from layers.db import reader
from layers.errors import CDTError, InvalidParameterValue
from planning import goals_service
from planning.indicators import access as indicator_access
from planning.indicators import catalog
from planning.indicators import store as indicator_store
from spatial import access_service

MAX_SIMILAR = 5
TOP_SECTORS = 5


@dataclass(frozen=True)
class Reply:
    text: str
    ask_location: bool = False  # show a "share location" button (the reply to a bare /near)


@dataclass(frozen=True)
class Place:
    id: int
    oktmo: str
    name: str

    def label(self) -> str:
        return f"{self.name} ({self.oktmo})"


def find_territory(conn: Connection, principal: Principal, q: str) -> Place | None:
    """A territory by OKTMO or name, through the search service (so its access rules apply)."""
    try:
        hits = search.search(conn, principal, q, limit=search.MAX_LIMIT)
    except InvalidParameterValue:
        return None
    ids = [h["id"] for h in hits if h["kind"] == "territory"]
    if not ids:
        return None
    row = conn.execute(text("SELECT id, oktmo, name FROM cdt.territories WHERE id = :i"), {"i": ids[0]}).first()
    return Place(row.id, row.oktmo, row.name) if row else None


def help_text(principal: Principal, lang: str) -> Reply:
    who = t(lang, "who_anonymous") if principal.anonymous else t(lang, "who_user", login=principal.login)
    return Reply(t(lang, "help", who=who))


# --- /indicator ------------------------------------------------------------------------------------------------
def _similar(q: str, reg: dict[str, catalog.Definition], hidden: set[str], lang: str) -> str:
    """A few visible indicators whose code is close to `q` or whose name contains it."""
    visible = [c for c in sorted(reg) if c not in hidden]
    q_low = q.lower()
    picks = difflib.get_close_matches(q_low, visible, n=MAX_SIMILAR, cutoff=0.5)
    picks += [c for c in visible if c not in picks and (q_low in c or q_low in reg[c].name_ru.lower()
                                                         or q_low in reg[c].name_en.lower())]
    picks = picks[:MAX_SIMILAR] or visible[:MAX_SIMILAR]
    names = "\n".join(f"  {c} — {pick(lang, (reg[c].name_ru, reg[c].name_en))}" for c in picks)
    return f"{t(lang, 'similar')}\n{names}"


def _fmt(value: float, lang: str) -> str:
    digits = 0 if abs(value) >= 1000 else 1 if abs(value) >= 10 else 2
    return number(value, lang, digits)


def _flatten(goals: Iterable[dict]) -> list[dict]:
    out = []
    for g in goals:
        out.append(g)
        out.extend(_flatten(g.get("children", ())))
    return out


def indicator(engine: Engine, principal: Principal, args: Sequence[str], lang: str) -> Reply:
    """`/indicator <territory> <code>`: the latest actual value, its trend against the year before and the
    target of a goal on it. The territory may be several words (a name); the code is the last one."""
    with reader(engine).connect() as conn:
        reg = catalog.registry(conn)
        hidden = indicator_access.hidden(principal, reg)
        if len(args) < 2:
            extra = f"\n\n{_similar(args[0], reg, hidden, lang)}" if args else ""
            return Reply(t(lang, "indicator_usage") + extra)
        code, q = args[-1].lower(), " ".join(args[:-1])
        if code not in reg:
            return Reply(f"{t(lang, 'unknown_indicator', code=code)}\n\n{_similar(code, reg, hidden, lang)}")
        if code in hidden:
            return Reply(t(lang, "restricted_anonymous" if principal.anonymous else "restricted_user", code=code))
        place = find_territory(conn, principal, q)
        if place is None:
            return Reply(t(lang, "unknown_territory", q=q))
        scope = indicator_access.allowed(principal, code, reg)
        if scope is not None and place.id not in scope:  # a scoped grant: other territories' values stay hidden
            return Reply(t(lang, "restricted_anonymous" if principal.anonymous else "restricted_user", code=code))
        d = reg[code]
        rows = [r for r in indicator_store.series(conn, code, [place.id])
                if r["value_type"] == "actual" and r["value"] is not None]
    name = pick(lang, (d.name_ru, d.name_en))
    if not rows:
        return Reply(t(lang, "no_value", name=name, territory=place.label()))
    by_year = {r["year"]: r["value"] for r in rows}
    year = max(by_year)
    lines = [t(lang, "indicator_value", name=name, territory=place.label(), value=_fmt(by_year[year], lang),
               unit=d.unit, year=year)]
    if year - 1 in by_year:
        delta = by_year[year] - by_year[year - 1]
        arrow = "▲" if delta > 0 else "▼" if delta < 0 else "="
        lines.append(t(lang, "trend", arrow=arrow, delta=("+" if delta > 0 else "") + _fmt(delta, lang),
                       year=year - 1, prev=_fmt(by_year[year - 1], lang)))
    for g in _flatten(goals_service.tree(engine)):
        if g["indicator_code"] == code and g["territory_id"] == place.id and g["target_value"] is not None:
            pct = g["status"].get("achievement_pct")
            lines.append(t(lang, "target", title=g["title"], target=_fmt(g["target_value"], lang),
                           year=g["target_year"],
                           pct=t(lang, "achieved", pct=number(pct, lang)) if pct is not None else ""))
    return Reply("\n".join(lines))


# --- /near -----------------------------------------------------------------------------------------------------
def near(engine: Engine, principal: Principal, lon: float, lat: float, lang: str, place: str = "") -> Reply:
    """The neighbourhood assessment of a point: walking minutes to each daily need and the 15-minute score."""
    found = access_service.neighbourhood(engine, principal, lon, lat)
    lines = [t(lang, "near_title", lat=lat, lon=lon, place=f" ({place})" if place else "")]
    for kind in access_service.ESSENTIAL_TYPES:
        s = found["services"].get(kind, {"status": "missing"})
        label = pick(lang, FACILITY_KINDS.get(kind, (kind, kind)))
        if s["status"] == "ok":
            minutes = max(1, math.ceil(s["seconds"] / 60))  # "0 min" reads as wrong; round up like a walker
            mark = "✅" if s["within_15_min"] else "⏳"
            name = f" — {s['name']}" if s.get("name") else ""
            lines.append(f"{mark} " + t(lang, "near_minutes", kind=label, minutes=minutes, name=name))
        else:
            lines.append("❌ " + t(lang, "near_unreachable" if s["status"] == "unreachable" else "near_missing",
                                   kind=label))
    if found["score"] is not None:
        city = found.get("city") or {}
        median = city.get("median_score")
        lines.append(t(lang, "near_score", score=number(found["score"], lang, 0),
                       city=t(lang, "near_city", median=number(median, lang, 0)) if median is not None else ""))
    return Reply("\n".join(lines))


def near_address(engine: Engine, principal: Principal, args: Sequence[str], lang: str) -> Reply:
    """`/near <address>`: the assessment at the best search match; a bare `/near` asks for a location."""
    if not args:
        return Reply(t(lang, "near_ask"), ask_location=True)
    q = " ".join(args)
    with reader(engine).connect() as conn:
        try:
            hits = search.search(conn, principal, q, limit=search.DEFAULT_LIMIT)
        except InvalidParameterValue:
            hits = []
    hits = [h for h in hits if h.get("center")]
    # An address names a building first, then a facility; a territory only as a last resort (its centre).
    hits.sort(key=lambda h: {"building": 0, "facility": 1}.get(h["kind"], 2))
    if not hits:
        return Reply(t(lang, "near_unknown_address", q=q))
    lon, lat = hits[0]["center"]
    return near(engine, principal, lon, lat, lang, place=hits[0]["label"])


# --- /balance --------------------------------------------------------------------------------------------------
def balance(engine: Engine, principal: Principal, args: Sequence[str], lang: str) -> Reply:
    """`/balance <territory> <year>`: primary and final consumption, the largest final sectors and the CO2 of
    combustion, in thousand tce (energy balances are public statistics: no layer behind them)."""
    if len(args) < 2 or not args[-1].isdigit():
        return Reply(t(lang, "balance_usage"))
    year, q = int(args[-1]), " ".join(args[:-1])
    balances = energy_store.list_balances(engine)
    # A balance names its own territory (a region need not be among the loaded territories): match it first.
    named = {b["territory_oktmo"]: b["territory_name"] for b in balances
             if q == b["territory_oktmo"] or q.lower() in (b["territory_name"] or "").lower()}
    if named:
        oktmo = next(iter(named))
        place = Place(0, oktmo, named[oktmo])
    else:
        with reader(engine).connect() as conn:
            place = find_territory(conn, principal, q)
    if place is None:
        return Reply(t(lang, "unknown_territory", q=q))
    mine = [b for b in balances if b["territory_oktmo"] == place.oktmo and b["year"] == year]
    # The reported balance (actual, no scenario) before forecasts and scenarios of the same year.
    mine.sort(key=lambda b: (b["kind"] != "actual", b["scenario"] is not None))
    if not mine:
        known = ", ".join(sorted({f"{b['territory_oktmo']} {b['year']}" for b in balances})) or "—"
        return Reply(t(lang, "balance_none", territory=place.label(), year=year, known=known))
    frame = energy_store.load_balance(engine, mine[0]["id"])

    def cell(row: str) -> float:
        value = frame.at[row, "total"]
        return 0.0 if math.isnan(value) else float(value)

    lines = [t(lang, "balance_title", territory=place.label(), year=year),
             t(lang, "balance_primary", v=number(cell("primary_consumption"), lang)),
             t(lang, "balance_final", v=number(cell("final_consumption"), lang))]
    sectors = [r for r in layout.ROW_DEFS if r.parent == "final_consumption" and cell(r.code)]
    for r in sorted(sectors, key=lambda r: -abs(cell(r.code)))[:TOP_SECTORS]:
        lines.append(f"  • {pick(lang, (r.ru, r.en))}: {number(cell(r.code), lang)}")
    lines.append(t(lang, "balance_co2", v=number(co2.total_co2_t(frame) / 1000, lang)))
    return Reply("\n".join(lines))


# --- /goal -----------------------------------------------------------------------------------------------------
def goal(engine: Engine, principal: Principal, args: Sequence[str], lang: str) -> Reply:
    """`/goal <code>`: the goals of a program (by its code) or on an indicator (by its code), with achievement,
    verdict and the critical-deviation flag. Goals on indicators the principal may not see are left out."""
    if not args:
        return Reply(t(lang, "goal_usage"))
    code = args[0]
    program = next((p for p in goals_service.programs(engine) if p["code"] == code), None)
    goals = _flatten(goals_service.tree(engine, program_id=program["id"]) if program else goals_service.tree(engine))
    if program is None:
        goals = [g for g in goals if g["indicator_code"] == code.lower()]
    if not goals:
        return Reply(t(lang, "goal_none", code=code))
    with reader(engine).connect() as conn:
        hidden = indicator_access.hidden(principal, catalog.registry(conn))
    shown = [g for g in goals if g["indicator_code"] not in hidden]
    if not shown:
        return Reply(t(lang, "restricted_anonymous" if principal.anonymous else "restricted_user", code=code))
    lines = []
    for g in shown:
        s = g.get("status") or {}
        pct = t(lang, "goal_pct", pct=number(s["achievement_pct"], lang)) if s.get("achievement_pct") is not None \
            else t(lang, "goal_no_status")
        verdict = f", {pick(lang, VERDICTS.get(s['verdict'], (s['verdict'],) * 2))}" if s.get("verdict") else ""
        lines.append(t(lang, "goal_line", title=g["title"], territory=g["territory_name"], pct=pct, verdict=verdict,
                       critical=t(lang, "goal_critical") if s.get("critical") else ""))
    return Reply("\n".join(lines))


# --- linking ---------------------------------------------------------------------------------------------------
def link(engine: Engine, telegram_user_id: int, args: Sequence[str], lang: str) -> Reply:
    if len(args) != 1:
        return Reply(t(lang, "link_usage"))
    with engine.begin() as conn:
        found = linking.redeem(conn, telegram_user_id, args[0])
    return Reply(t(lang, "link_ok", login=found.login) if found else t(lang, "link_bad"))


def unlink(engine: Engine, telegram_user_id: int, lang: str) -> Reply:
    with engine.begin() as conn:
        login = linking.unlink(conn, telegram_user_id)
    return Reply(t(lang, "unlink_ok", login=login) if login else t(lang, "unlink_none"))


def error_text(exc: CDTError, lang: str) -> str:
    return t(lang, "error", detail=exc.detail)
