"""The one error type of the request path; each API family renders it in its own shape."""

from __future__ import annotations

from enum import StrEnum


class RowStatus(StrEnum):
    """How a request ended, as its spend row says."""

    OK = "ok"
    ERROR = "error"
    REJECTED = "rejected"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    CLIENT_DISCONNECT = "client_disconnect"
    UPSTREAM_TIMEOUT = "upstream_timeout"


class GatewayError(Exception):
    """A request the gateway refuses or cannot complete; rendered in the caller's API shape."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        row_status: str = RowStatus.ERROR,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}
        self.row_status = row_status
