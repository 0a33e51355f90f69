"""The one error hierarchy of CDT.

Every service raises these; the HTTP layer turns them into OGC exception JSON
and the CLI into a one-line message. Each carries its HTTP status and OGC code
so nothing downstream has to guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CDTError(Exception):
    """Base of every error CDT reports to a user."""

    detail: str
    status: int = 500
    code: str = "ServerError"
    # Extra structured facts (e.g. the list of bad features of an import).
    context: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.detail

    def to_json(self) -> dict:
        body = {"code": self.code, "description": self.detail}
        if self.context:
            body.update(self.context)
        return body


class InvalidParameterValue(CDTError):
    def __init__(self, detail: str, **context):
        super().__init__(detail, 400, "InvalidParameterValue", context)


class NotFound(CDTError):
    def __init__(self, detail: str, **context):
        super().__init__(detail, 404, "NotFound", context)


class PreconditionFailed(CDTError):
    def __init__(self, detail: str, **context):
        super().__init__(detail, 412, "PreconditionFailed", context)


class Forbidden(CDTError):
    def __init__(self, detail: str, **context):
        super().__init__(detail, 403, "Forbidden", context)


class Conflict(CDTError):
    def __init__(self, detail: str, **context):
        super().__init__(detail, 409, "Conflict", context)


class UnsupportedMediaType(CDTError):
    def __init__(self, detail: str, **context):
        super().__init__(detail, 415, "UnsupportedMediaType", context)


class MethodNotAllowed(CDTError):
    def __init__(self, detail: str, **context):
        super().__init__(detail, 405, "MethodNotAllowed", context)


class TooManyRequests(CDTError):
    """Refused for now (e.g. too many failed logins); `retry_after` seconds until it may be tried again."""

    def __init__(self, detail: str, retry_after: int, **context):
        super().__init__(detail, 429, "TooManyRequests", {"retry_after": int(retry_after), **context})

    @property
    def retry_after(self) -> int:
        return self.context["retry_after"]


class ServiceUnavailable(CDTError):
    def __init__(self, detail: str, **context):
        super().__init__(detail, 503, "ServiceUnavailable", context)


class IngestError(CDTError):
    """An input file or its mapping cannot be loaded; nothing was written.

    `problems` lists each offending feature as {"row": ..., "reason": ...}.
    """

    def __init__(self, detail: str, problems: list[dict] | None = None, **context):
        if problems:
            context["problems"] = problems
        super().__init__(detail, 422, "InvalidInput", context)

    @property
    def problems(self) -> list[dict]:
        return self.context.get("problems", [])
