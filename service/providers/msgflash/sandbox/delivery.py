"""Signed webhook deliveries to registered endpoints, retried like MsgFlash does (§11).

Each POST carries the flat JSON payload, ``X-MsgFlash-Event`` and ``X-MsgFlash-Signature:
sha256=<hex HMAC-SHA256(secret, raw body)>``. A non-2xx answer or a connection error is
retried with exponential backoff, up to ``max_attempts`` attempts in all. Deliveries run in
tasks this dispatcher owns, over the one client session it owns.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp

from service.providers.msgflash.sandbox.records import WebhookRecord
from service.providers.msgflash.sandbox.tasks import TaskSet


def sign(secret: str, body: bytes) -> str:
    """The ``X-MsgFlash-Signature`` header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    seq: int
    at: float
    account: str  # whose endpoint: an account's events go to its own endpoints only
    webhook_id: str
    url: str
    event: str
    attempt: int
    status: int | None  # HTTP status of the answer; None on a connection error or timeout
    error: str | None
    delivered: bool
    payload: dict[str, Any]

    def as_api(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["webhookId"] = shown.pop("webhook_id")
        return shown


class WebhookDispatcher:
    def __init__(
        self,
        *,
        max_attempts: int,
        retry_base_seconds: float,
        timeout_seconds: float,
        log_limit: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._max_attempts = max_attempts
        self._retry_base = retry_base_seconds
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._clock = clock
        self._attempts: deque[DeliveryAttempt] = deque(maxlen=log_limit)
        self._seq = 0
        self._tasks = TaskSet()
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        await self._tasks.cancel_all()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def reset(self) -> None:
        """Forget every delivery, and stop the ones still retrying."""
        await self._tasks.cancel_all()
        self._attempts.clear()

    def emit(
        self, payload: dict[str, Any], endpoints: Iterable[WebhookRecord], *, account: str
    ) -> None:
        """Deliver ``payload`` to every active endpoint (all ``account``'s) subscribed to its
        event, each signed with that endpoint's secret."""
        event = str(payload["event"])
        body = json.dumps(payload, separators=(",", ":")).encode()
        for endpoint in endpoints:
            if endpoint.active and event in endpoint.events:
                self._tasks.spawn(
                    self._deliver(account, endpoint, event, body, payload),
                    name=f"sandbox-webhook-{endpoint.id}",
                )

    def attempts(self, account: str | None = None) -> list[dict[str, Any]]:
        """Every attempt, or ``account``'s only."""
        return [a.as_api() for a in self._attempts if account in (None, a.account)]

    async def _deliver(
        self,
        account: str,
        endpoint: WebhookRecord,
        event: str,
        body: bytes,
        payload: dict[str, Any],
    ) -> None:
        headers = {
            "Content-Type": "application/json",
            "X-MsgFlash-Event": event,
            "X-MsgFlash-Signature": sign(endpoint.secret, body),
        }
        for attempt in range(1, self._max_attempts + 1):
            status, error = await self._post(endpoint.url, body, headers)
            delivered = status is not None and 200 <= status < 300
            self._seq += 1
            self._attempts.append(
                DeliveryAttempt(
                    self._seq,
                    self._clock(),
                    account,
                    endpoint.id,
                    endpoint.url,
                    event,
                    attempt,
                    status,
                    error,
                    delivered,
                    payload,
                )
            )
            if delivered:
                return
            if attempt < self._max_attempts:
                await asyncio.sleep(self._retry_base * 2 ** (attempt - 1))

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str | None]:
        if self._session is None:
            return None, "the sandbox is not running"
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status, None
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
