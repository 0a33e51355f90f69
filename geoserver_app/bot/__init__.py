"""The Telegram bot: the same service layer and access rules as the HTTP API, in a chat.

`commands` turns a command and its arguments into reply text for a principal (no Telegram in it), `app` wires
those into python-telegram-bot, `linking` binds a Telegram user to a CDT account with one-time codes, `http`
hands a signed-in user such a code, `i18n` holds the Russian and English messages.
"""
