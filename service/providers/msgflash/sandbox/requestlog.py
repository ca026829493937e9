"""Every ``/api`` request the sandbox saw, rejected ones included, for tests to assert on.

An entry is opened when the request arrives (so a hanging request is already visible) and
completed when it is answered. Each entry names the account whose key it carried (None for
no key or an unknown one); of the key itself only the last six characters are kept, and of
the other headers only the W3C trace context (what tests of the relay's traces look for).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RECORDED_HEADERS = ("traceparent", "tracestate")


@dataclass
class LoggedRequest:
    seq: int
    at: float
    method: str
    path: str
    query: dict[str, str]
    key: str | None
    account: str | None
    body: Any
    status: int | None = None  # None until answered; stays None when the connection dropped
    code: str | None = None
    fault: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def as_api(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "code": self.code,
            "key": self.key,
            "account": self.account,
            "body": self.body,
            "fault": self.fault,
            "headers": self.headers,
        }


class RequestLog:
    """A bounded, ordered log; the oldest entries go first when ``limit`` is reached."""

    def __init__(self, limit: int) -> None:
        self._entries: deque[LoggedRequest] = deque(maxlen=limit)
        self._seq = 0

    def open(
        self,
        *,
        at: float,
        method: str,
        path: str,
        query: dict[str, str],
        api_key: str | None,
        account: str | None,
        body: Any,
        headers: Mapping[str, str] | None = None,
    ) -> LoggedRequest:
        self._seq += 1
        hint = api_key[-6:] if api_key else None
        entry = LoggedRequest(self._seq, at, method, path, query, hint, account, body)
        for name in RECORDED_HEADERS:
            value = (headers or {}).get(name)
            if value is not None:
                entry.headers[name] = value
        self._entries.append(entry)
        return entry

    def select(
        self, *, path_prefix: str = "", method: str | None = None, account: str | None = None
    ) -> list[dict[str, Any]]:
        return [
            entry.as_api()
            for entry in self._entries
            if entry.path.startswith(path_prefix)
            and (method is None or entry.method == method.upper())
            and (account is None or entry.account == account)
        ]

    def clear(self) -> None:
        self._entries.clear()
