"""A small fake Telegram Bot API server on 127.0.0.1, for testing the bot offline.

It answers the methods python-telegram-bot calls (getMe, getUpdates, sendMessage, deleteWebhook, setMyCommands,
close, logOut; anything else with `true`), hands out the updates a test queued through real long polling (a poll
with nothing to deliver returns after at most POLL_WAIT_S, so shutting down is quick) and records every call, so
a test can wait for the bot's replies. Point the library at `base_url` (the token is appended to it).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

POLL_WAIT_S = 0.3
BOT = {"id": 777000, "is_bot": True, "first_name": "CDT", "username": "cdt_test_bot", "can_join_groups": False,
       "can_read_all_group_messages": False, "supports_inline_queries": False}


class FakeTelegram:
    def __init__(self, token: str = "123456:TEST") -> None:
        self.token = token
        self.calls: list[tuple[str, dict]] = []  # (method, parameters), in order
        self._updates: list[dict] = []
        self._ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._cond = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-telegram", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/bot"

    def start(self) -> FakeTelegram:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # --- what a test does ---------------------------------------------------------------------------------------
    def _message(self, user_id: int, language_code: str, group: int | None = None, **content) -> dict:
        user = {"id": user_id, "is_bot": False, "first_name": f"User{user_id}", "language_code": language_code}
        chat = ({"id": group, "type": "group", "title": "Group"} if group is not None
                else {"id": user_id, "type": "private", "first_name": user["first_name"]})
        return {"message_id": next(self._message_ids), "date": int(time.time()), "from": user, "chat": chat,
                **content}

    def text_update(self, user_id: int, text: str, language_code: str = "ru", group: int | None = None) -> dict:
        content: dict = {"text": text}
        if text.startswith("/"):  # Telegram marks the command, and the library's CommandHandler relies on that
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return {"update_id": next(self._ids), "message": self._message(user_id, language_code, group, **content)}

    def location_update(self, user_id: int, lat: float, lon: float, language_code: str = "ru") -> dict:
        return {"update_id": next(self._ids),
                "message": self._message(user_id, language_code, location={"latitude": lat, "longitude": lon})}

    def push(self, update: dict) -> None:
        with self._cond:
            self._updates.append(update)
            self._cond.notify_all()

    def send_text(self, user_id: int, text: str, language_code: str = "ru") -> None:
        self.push(self.text_update(user_id, text, language_code))

    def sent(self, chat_id: int) -> list[dict]:
        with self._cond:
            return [p for m, p in self.calls if m == "sendMessage" and int(p["chat_id"]) == chat_id]

    def wait_replies(self, chat_id: int, count: int, timeout: float = 60.0) -> list[dict]:
        """The first `count` messages the bot sent to the chat, once they are there."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.sent(chat_id)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"chat {chat_id}: {len(self.sent(chat_id))} of {count} replies: "
                                       f"{self.sent(chat_id)}")
                self._cond.wait(left)
            return self.sent(chat_id)[:count]

    def ask(self, user_id: int, text: str, language_code: str = "ru", timeout: float = 60.0) -> dict:
        """Send a message and return the bot's next reply to it."""
        before = len(self.sent(user_id))
        self.send_text(user_id, text, language_code)
        return self.wait_replies(user_id, before + 1, timeout)[before]

    def wait_method(self, method: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while method not in self.methods():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the bot never called {method}")
            time.sleep(0.05)

    def methods(self) -> list[str]:
        with self._cond:
            return [m for m, _ in self.calls]

    # --- the Bot API side ---------------------------------------------------------------------------------------
    def _answer(self, method: str, params: dict):
        if method == "getMe":
            return BOT
        if method == "getUpdates":
            offset = int(params.get("offset") or 0)
            wait = min(float(params.get("timeout") or 0), POLL_WAIT_S)
            with self._cond:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
                if not self._updates and wait:
                    self._cond.wait(wait)
                return list(self._updates)
        if method == "sendMessage":
            with self._cond:
                self.calls.append((method, params))
                self._cond.notify_all()
            chat_id = int(params["chat_id"])
            return {"message_id": next(self._message_ids), "date": int(time.time()), "text": params.get("text", ""),
                    "chat": {"id": chat_id, "type": "private"}, "from": BOT}
        return True  # deleteWebhook, setMyCommands, close, logOut ...

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self._serve()

            def do_GET(self) -> None:  # noqa: N802
                self._serve()

            def _serve(self) -> None:
                prefix = f"/bot{fake.token}/"
                if not self.path.startswith(prefix):
                    return self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
                method = self.path[len(prefix):].split("?")[0]
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                params = _params(body, self.headers.get("Content-Type", ""))
                if method != "sendMessage":
                    with fake._cond:
                        fake.calls.append((method, params))
                self._reply(200, {"ok": True, "result": fake._answer(method, params)})

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the bot stopped mid long poll
                    self.wfile.write(data)

            def log_message(self, *args) -> None:  # quiet
                pass

        return Handler


def _params(body: str, content_type: str) -> dict:
    """The library sends form fields whose values are JSON for objects (reply_markup ...); JSON bodies too."""
    if not body:
        return {}
    if content_type.startswith("application/json"):
        return json.loads(body)
    out = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        try:
            out[key] = json.loads(value) if value[:1] in "[{" else value
        except ValueError:
            out[key] = value
    return out
