"""The worker side of sending: messages move queued -> sent -> delivered -> read on a clock.

A message is processed at its due time (one step after a send, at ``scheduledAt`` for a
schedule); an instance that is not connected by then fails it, as MsgFlash's worker does.
Each later status follows one step after the previous, and each transition fires the
matching ``message.*`` webhook of the message's account. One owned task drives every
account's messages from a heap of due times.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from service.providers.msgflash.sandbox.delivery import WebhookDispatcher
from service.providers.msgflash.sandbox.formats import iso_timestamp
from service.providers.msgflash.sandbox.records import MessageRecord
from service.providers.msgflash.sandbox.state import SandboxState
from service.providers.msgflash.sandbox.tasks import TaskSet

_NEXT_STATUS = {"sent": "delivered", "delivered": "read"}


class MessageLifecycle:
    def __init__(
        self,
        *,
        state: Callable[[str], SandboxState | None],  # an account's state by name
        dispatcher: WebhookDispatcher,
        step_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._state = state
        self._dispatcher = dispatcher
        self._step = step_seconds
        self._clock = clock
        self._due: list[tuple[float, int, str, str]] = []  # (due, order, account, message id)
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._tasks = TaskSet()

    def first_due(self, *, scheduled_at: float | None = None) -> float:
        """When a new message is processed: one step from now, or at a future scheduledAt."""
        now = self._clock()
        if scheduled_at is not None and scheduled_at > now:
            return scheduled_at
        return now + self._step

    def track(self, account: str, message: MessageRecord) -> None:
        self._push(message.due_at, account, message.id)

    async def start(self) -> None:
        self._tasks.spawn(self._run(), name="sandbox-message-lifecycle")

    async def close(self) -> None:
        await self._tasks.cancel_all()

    def reset(self) -> None:
        self._due.clear()

    def _push(self, at: float, account: str, message_id: str) -> None:
        heapq.heappush(self._due, (at, next(self._order), account, message_id))
        self._wake.set()

    async def _run(self) -> None:
        while True:
            now = self._clock()
            while self._due and self._due[0][0] <= now:
                _, _, account, message_id = heapq.heappop(self._due)
                self._advance(account, message_id, now)
            delay = self._due[0][0] - now if self._due else None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _advance(self, account: str, message_id: str, now: float) -> None:
        state = self._state(account)
        message = state.messages.get(message_id) if state is not None else None
        if state is None or message is None:  # gone with a reset
            return
        if message.status == "queued":
            updated = self._process(state, message, now)
        elif message.status in _NEXT_STATUS:
            updated = replace(message, status=_NEXT_STATUS[message.status], updated_at=now)
        else:
            return
        state.messages[message_id] = updated
        if updated.status in _NEXT_STATUS:
            self._push(now + self._step, account, message_id)
        payload = _webhook_payload(updated, now)
        self._dispatcher.emit(payload, state.webhooks.values(), account=account)

    def _process(self, state: SandboxState, message: MessageRecord, now: float) -> MessageRecord:
        instance = state.instances.get(message.instance_id)
        if instance is None or instance.status != "connected":
            status = instance.status if instance else "deleted"
            error = f"Instance is not connected (status: {status}); connect it and send again"
            return replace(message, status="failed", error=error, updated_at=now)
        meta = dict(message.meta)
        meta["providerResult"] = {"status": "PENDING"}
        meta["workerSafety"] = {
            key: message.safety.get(key) for key in ("decision", "riskLevel", "state", "score")
        }
        provider_id = "BAE5" + secrets.token_hex(6).upper()
        return replace(
            message, status="sent", provider_message_id=provider_id, meta=meta, updated_at=now
        )


def _webhook_payload(message: MessageRecord, now: float) -> dict[str, Any]:
    """The flat payload of the MsgFlash guide (§11), for every ``message.*`` event."""
    payload: dict[str, Any] = {
        "event": f"message.{message.status}",
        "instanceId": message.instance_id,
        "messageId": message.id,
        "providerMessageId": message.provider_message_id,
        "to": message.to,
        "status": message.status,
        "timestamp": iso_timestamp(now),
    }
    if message.error is not None:
        payload["error"] = message.error
    return payload
