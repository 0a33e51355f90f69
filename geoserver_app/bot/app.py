"""python-telegram-bot wiring: each update becomes a call of `commands` with the chat's principal and language.

The service calls are synchronous (SQLAlchemy, numpy), so each runs in a worker thread (`asyncio.to_thread`) and
the event loop keeps serving other chats meanwhile. The principal is looked up per update, so /link, /unlink and
a revoked grant take effect at once. The language is remembered per Telegram user for the process's lifetime
(/lang), else taken from the user's Telegram language.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from sqlalchemy import Engine
from telegram import BotCommand, KeyboardButton, ReplyKeyboardMarkup, ReplyKeyboardRemove, Update
from telegram.ext import Application, CommandHandler, ContextTypes, MessageHandler, filters

from geoserver_app.bot import commands, linking
from geoserver_app.bot.i18n import LANGS, language_of, t
from layers.access import ANONYMOUS, Principal
from layers.errors import CDTError

log = logging.getLogger("cdt.bot")

COMMANDS = {  # name: (ru, en) for the client's command menu
    "indicator": ("Значение показателя", "An indicator's value"),
    "near": ("Доступность от точки или адреса", "Walking access from a point or address"),
    "balance": ("Энергобаланс территории", "A territory's energy balance"),
    "goal": ("Достижение целей", "Goal achievement"),
    "link": ("Привязать учётную запись", "Link your CDT account"),
    "unlink": ("Отвязать учётную запись", "Unlink your account"),
    "lang": ("Язык: ru или en", "Language: ru or en"),
    "help": ("Справка", "Help"),
}

# (engine, principal, telegram user id, args, lang) -> reply; run in a worker thread.
Action = Callable[[Engine, Principal, int, Sequence[str], str], commands.Reply]


def _lang(update: Update, context: ContextTypes.DEFAULT_TYPE) -> str:
    user = update.effective_user
    return context.user_data.get("lang") or language_of(user.language_code if user else None)


def _private(update: Update) -> bool:
    return update.effective_chat is not None and update.effective_chat.type == "private"


def _answer(engine: Engine, action: Action, user_id: int, args: Sequence[str], lang: str,
            private: bool) -> commands.Reply:
    # In a group everybody reads the answer: only a private chat gets the linked account's rights.
    who = linking.principal_for(engine, user_id) if private else ANONYMOUS
    try:
        return action(engine, who, user_id, args, lang)
    except CDTError as exc:  # the user's mistake or a refusal: its own words
        return commands.Reply(commands.error_text(exc, lang))
    except Exception:  # noqa: BLE001 - one bad request must not stop the bot
        log.exception("bot command failed")
        return commands.Reply(t(lang, "internal_error"))


async def _send(update: Update, reply: commands.Reply, lang: str, clear_keyboard: bool = False) -> None:
    markup = None
    if reply.ask_location:
        markup = ReplyKeyboardMarkup([[KeyboardButton(t(lang, "near_button"), request_location=True)]],
                                     resize_keyboard=True, one_time_keyboard=True)
    elif clear_keyboard:
        markup = ReplyKeyboardRemove()
    await update.effective_message.reply_text(reply.text, reply_markup=markup)


def _command(action: Action) -> Callable:
    async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_message is None or update.effective_user is None:
            return
        lang = _lang(update, context)
        reply = await asyncio.to_thread(_answer, context.bot_data["engine"], action, update.effective_user.id,
                                        list(context.args or ()), lang, _private(update))
        # A bare /near waits for a location or an address typed next.
        context.user_data["near_pending"] = reply.ask_location
        await _send(update, reply, lang)

    return handle


async def _location(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    msg = update.effective_message
    if msg is None or msg.location is None or update.effective_user is None:
        return
    lang = _lang(update, context)
    lon, lat = msg.location.longitude, msg.location.latitude
    context.user_data["near_pending"] = False
    reply = await asyncio.to_thread(
        _answer, context.bot_data["engine"],
        lambda e, p, _u, _a, lg: commands.near(e, p, lon, lat, lg), update.effective_user.id, (), lang,
        _private(update))
    await _send(update, reply, lang, clear_keyboard=True)


async def _text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Plain text: the address a bare /near asked for, else a pointer to /help."""
    msg = update.effective_message
    if msg is None or update.effective_user is None:
        return
    lang = _lang(update, context)
    if not context.user_data.pop("near_pending", False):
        await msg.reply_text(t(lang, "unknown_command"))
        return
    reply = await asyncio.to_thread(
        _answer, context.bot_data["engine"], lambda e, p, _u, _a, lg: commands.near_address(e, p, msg.text.split(), lg),
        update.effective_user.id, (), lang, _private(update))
    await _send(update, reply, lang, clear_keyboard=True)


async def _set_lang(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.effective_message is None:
        return
    args = [a.lower() for a in context.args or ()]
    if len(args) != 1 or args[0] not in LANGS:
        await update.effective_message.reply_text(t(_lang(update, context), "lang_usage"))
        return
    context.user_data["lang"] = args[0]
    await update.effective_message.reply_text(t(args[0], "lang_set"))


async def _unknown(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if update.effective_message is not None:
        await update.effective_message.reply_text(t(_lang(update, context), "unknown_command"))


async def _post_init(application: Application) -> None:
    for code in ("ru", None):  # Russian for Russian clients, English for everybody else
        await application.bot.set_my_commands(
            [BotCommand(name, pair[0] if code else pair[1]) for name, pair in COMMANDS.items()], language_code=code)


def build(engine: Engine, token: str, base_url: str = "", base_file_url: str = "") -> Application:
    """The bot application. `base_url`: another Bot API server (a local one, or the tests' fake), as
    python-telegram-bot takes it: the token is appended unless the URL has `{token}`."""
    builder = Application.builder().token(token).post_init(_post_init)
    if base_url:
        builder = builder.base_url(base_url).base_file_url(base_file_url or base_url.replace("/bot", "/file/bot", 1))
    application = builder.build()
    application.bot_data["engine"] = engine
    application.add_handler(CommandHandler(("start", "help"), _command(
        lambda e, p, _u, _a, lang: commands.help_text(p, lang))))
    application.add_handler(CommandHandler("indicator", _command(
        lambda e, p, _u, a, lang: commands.indicator(e, p, a, lang))))
    application.add_handler(CommandHandler("near", _command(
        lambda e, p, _u, a, lang: commands.near_address(e, p, a, lang))))
    application.add_handler(CommandHandler("balance", _command(
        lambda e, p, _u, a, lang: commands.balance(e, p, a, lang))))
    application.add_handler(CommandHandler("goal", _command(lambda e, p, _u, a, lang: commands.goal(e, p, a, lang))))
    application.add_handler(CommandHandler("link", _command(lambda e, _p, u, a, lang: commands.link(e, u, a, lang))))
    application.add_handler(CommandHandler("unlink", _command(lambda e, _p, u, _a, lang: commands.unlink(e, u, lang))))
    application.add_handler(CommandHandler("lang", _set_lang))
    application.add_handler(MessageHandler(filters.LOCATION, _location))
    application.add_handler(MessageHandler(filters.COMMAND, _unknown))
    application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, _text))
    return application


def run(engine: Engine, token: str, base_url: str = "") -> None:
    """`cdt bot`: long polling until interrupted (Ctrl-C / SIGTERM)."""
    build(engine, token, base_url).run_polling(allowed_updates=Update.ALL_TYPES)
