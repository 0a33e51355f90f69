"""The bot's messages in Russian and English. A message is a format string; `t` fills it in."""

from __future__ import annotations

LANGS = ("ru", "en")
DEFAULT = "ru"

MESSAGES: dict[str, tuple[str, str]] = {  # key: (ru, en)
    "help": (
        "Цифровой двойник города: показатели, доступность, энергобаланс, цели.\n\n"
        "/indicator <территория> <код> — значение показателя\n"
        "  например: /indicator 19701000 fac_kindergarten_capacity_per_1000\n"
        "/near — оценка окружения точки (пришлите геопозицию) или /near <адрес>\n"
        "/balance <территория> <год> — топливно-энергетический баланс\n"
        "  например: /balance 46000000 2020\n"
        "/goal <код показателя или программы> — достижение целей\n"
        "/link <код> — привязать учётную запись ЦДТ (код: POST /account/telegram-code или `cdt users telegram-code`)\n"
        "/unlink — отвязать\n/lang ru|en — язык\n\n{who}",
        "City Digital Twin: indicators, walking access, energy balances, goals.\n\n"
        "/indicator <territory> <code> — an indicator's value\n"
        "  e.g. /indicator 19701000 fac_kindergarten_capacity_per_1000\n"
        "/near — the neighbourhood of a point (share a location) or /near <address>\n"
        "/balance <territory> <year> — the fuel and energy balance\n"
        "  e.g. /balance 46000000 2020\n"
        "/goal <indicator or program code> — goal achievement\n"
        "/link <code> — link your CDT account (code: POST /account/telegram-code or `cdt users telegram-code`)\n"
        "/unlink — unlink\n/lang ru|en — language\n\n{who}"),
    "who_anonymous": ("Вы не вошли: доступны только открытые данные.",
                      "Not linked: you see public data only."),
    "who_user": ("Вы вошли как {login}.", "Signed in as {login}."),
    "indicator_usage": (
        "Использование: /indicator <территория: ОКТМО или название> <код показателя>\n"
        "например: /indicator 19701000 fac_kindergarten_capacity_per_1000\n"
        "         /indicator Вологда fac_school_capacity_per_1000",
        "Usage: /indicator <territory: OKTMO or name> <indicator code>\n"
        "e.g. /indicator 19701000 fac_kindergarten_capacity_per_1000\n"
        "     /indicator Вологда fac_school_capacity_per_1000"),
    "similar": ("Похожие показатели:", "Similar indicators:"),
    "unknown_indicator": ("Неизвестный показатель «{code}».", "Unknown indicator '{code}'."),
    "unknown_territory": ("Территория «{q}» не найдена (укажите ОКТМО или название).",
                          "No territory '{q}' (give an OKTMO code or a name)."),
    "restricted_anonymous": (
        "Показатель «{code}» рассчитан по данным ограниченного доступа. Привяжите учётную запись: /link <код>.",
        "Indicator '{code}' is computed from restricted data. Link your account: /link <code>."),
    "restricted_user": ("Показатель «{code}» рассчитан по данным, недоступным вашей учётной записи.",
                        "Indicator '{code}' is computed from data your account may not read."),
    "no_value": ("{name} — {territory}: значений нет.", "{name} — {territory}: no values."),
    "indicator_value": ("{name}\n{territory}: {value} {unit} ({year})", "{name}\n{territory}: {value} {unit} ({year})"),
    "trend": ("{arrow} {delta} к {year} ({prev})", "{arrow} {delta} vs {year} ({prev})"),
    "target": ("Цель «{title}»: {target} к {year}{pct}", "Goal '{title}': {target} by {year}{pct}"),
    "achieved": (", выполнение {pct}%", ", {pct}% achieved"),
    "near_ask": ("Пришлите геопозицию (кнопка ниже) или адрес: /near <адрес>",
                 "Share a location (button below) or an address: /near <address>"),
    "near_button": ("📍 Отправить геопозицию", "📍 Share location"),
    "near_unknown_address": ("Адрес «{q}» не найден.", "No address '{q}' found."),
    "near_title": ("Пешая доступность от точки {lat:.5f}, {lon:.5f}{place}:",
                   "Walking from {lat:.5f}, {lon:.5f}{place}:"),
    "near_minutes": ("{kind}: {minutes} мин{name}", "{kind}: {minutes} min{name}"),
    "near_unreachable": ("{kind}: недостижимо", "{kind}: unreachable"),
    "near_missing": ("{kind}: нет данных", "{kind}: no data"),
    "near_score": ("Индекс 15-минутного города: {score} из 100{city}", "15-minute score: {score} of 100{city}"),
    "near_city": (" (медиана по городу {median})", " (city median {median})"),
    "balance_usage": ("Использование: /balance <территория> <год>, например /balance 46000000 2020",
                      "Usage: /balance <territory> <year>, e.g. /balance 46000000 2020"),
    "balance_none": ("Нет баланса {territory} за {year}. Есть: {known}", "No balance of {territory} for {year}. "
                     "Loaded: {known}"),
    "balance_title": ("ТЭБ {territory}, {year} (тыс. т у.т.):", "Energy balance of {territory}, {year} "
                      "(thousand tce):"),
    "balance_primary": ("Потребление первичной энергии: {v}", "Primary energy consumption: {v}"),
    "balance_final": ("Конечное потребление: {v}", "Final consumption: {v}"),
    "balance_co2": ("Выбросы CO2 от сжигания: {v} тыс. т", "CO2 from combustion: {v} thousand t"),
    "goal_usage": ("Использование: /goal <код показателя или программы>",
                   "Usage: /goal <indicator or program code>"),
    "goal_none": ("Целей с кодом «{code}» нет.", "No goals with code '{code}'."),
    "goal_line": ("• {title} ({territory}): {pct}{verdict}{critical}",
                  "• {title} ({territory}): {pct}{verdict}{critical}"),
    "goal_pct": ("выполнение {pct}%", "{pct}% achieved"),
    "goal_no_status": ("нет данных для оценки", "not enough data to judge"),
    "goal_critical": (" ⚠️ критическое отставание", " ⚠️ critically behind"),
    "lang_set": ("Язык: русский.", "Language: English."),
    "lang_usage": ("Использование: /lang ru или /lang en", "Usage: /lang ru or /lang en"),
    "link_usage": ("Использование: /link <код>. Код выдаёт сервер ЦДТ вошедшему пользователю "
                   "(POST /account/telegram-code) или администратор (`cdt users telegram-code ЛОГИН`); "
                   "он действует 10 минут и один раз.",
                   "Usage: /link <code>. The CDT server gives a signed-in user a code (POST /account/telegram-code), "
                   "an administrator with `cdt users telegram-code LOGIN`; it is valid once, for 10 minutes."),
    "link_ok": ("Учётная запись {login} привязана: действуют её права доступа.",
                "Linked to {login}: that account's access rules apply."),
    "link_bad": ("Код неверен, просрочен или уже использован.", "The code is wrong, expired or used."),
    "unlink_ok": ("Учётная запись {login} отвязана: доступны только открытые данные.",
                  "Unlinked from {login}: you see public data only."),
    "unlink_none": ("Учётная запись не была привязана.", "No account was linked."),
    "error": ("Ошибка: {detail}", "Error: {detail}"),
    "internal_error": ("Внутренняя ошибка; попробуйте позже.", "Internal error; please try again later."),
    "unknown_command": ("Неизвестная команда. /help — список команд.", "Unknown command. /help lists them."),
}

FACILITY_KINDS: dict[str, tuple[str, str]] = {
    "kindergarten": ("Детский сад", "Kindergarten"), "school": ("Школа", "School"),
    "polyclinic": ("Поликлиника", "Polyclinic"), "pharmacy": ("Аптека", "Pharmacy"),
    "stop": ("Остановка", "Public transport stop"), "park": ("Парк", "Park"),
}

VERDICTS: dict[str, tuple[str, str]] = {  # planning.goals.Verdict
    "on track": ("по плану", "on track"), "at risk": ("под угрозой", "at risk"),
    "off track": ("отставание", "off track"),
}


def pick(lang: str, pair: tuple[str, str]) -> str:
    return pair[1] if lang == "en" else pair[0]


def t(lang: str, key: str, **values) -> str:
    return pick(lang, MESSAGES[key]).format(**values)


def language_of(code: str | None) -> str:
    """Telegram's language_code to ours: English for English speakers, Russian otherwise (the bot's home)."""
    return "en" if code and code.lower().startswith("en") else DEFAULT


def number(value: float, lang: str, digits: int = 1) -> str:
    """A number as a reader of the language writes it: 1 234,5 in Russian, 1,234.5 in English."""
    text = f"{value:,.{digits}f}"
    return text.replace(",", "\u00a0").replace(".", ",") if lang == "ru" else text
