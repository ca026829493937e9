"""``message.schedule`` / ``message.send``: resolve the instance, map, call MsgFlash, decide."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import structlog

from consumers.outcomes import (
    DEFAULT_QUOTA_DEADLINE,
    Deferred,
    Failed,
    HandlerContext,
    Outcome,
    QuotaDeadline,
    Succeeded,
    failed_create,
    quota_wait,
    resolve_instance,
)
from service.contract.commands import Command, CommandType, ScheduleMessageData, SendMessageData
from service.contract.errors import OUTCOME_UNKNOWN, ErrorInfo, MsgFlashError
from service.contract.events import message_result_event, safety_warning_event
from service.providers.common.retry import CallFailure
from service.providers.msgflash.client import MsgFlashClient
from service.providers.msgflash.instances import InstanceResolver
from service.providers.msgflash.mapping import to_message_payload
from service.providers.msgflash.quota import QuotaGate
from service.providers.msgflash.reconcile import ReconcileUndecided
from service.state.store import StateStore

log = structlog.get_logger("consumers.msgflash_messages")


@dataclass(frozen=True, slots=True)
class MessageHandler:
    client: MsgFlashClient
    resolver: InstanceResolver
    store: StateStore
    quota: QuotaGate
    outcome_unknown_policy: Literal["fail", "resend"] = "fail"
    quota_deadline: QuotaDeadline = DEFAULT_QUOTA_DEADLINE

    async def __call__(self, command: Command, context: HandlerContext) -> Outcome:
        data = command.data
        assert isinstance(data, ScheduleMessageData | SendMessageData)
        resolved = await resolve_instance(
            self.resolver, instance_id=data.instance_id, instance=data.instance, context=context
        )
        if not isinstance(resolved, str):
            return resolved
        instance_id = resolved
        payload = to_message_payload(data, instance_id)

        if context.reconcile_since is not None:
            try:
                found = await self._reconcile(payload, context)
            except (MsgFlashError, ReconcileUndecided) as exc:
                if context.lease_expired:
                    raise  # the crash path keeps the dead holder's claim, and its policy
                return _look_again_later(exc, context.reconcile_since)
            if found is not None:
                return self._succeeded(command, found, instance_id, context.prior_attempts)
            if context.lease_expired and self.outcome_unknown_policy == "fail":
                return Failed(
                    ErrorInfo(
                        OUTCOME_UNKNOWN,
                        "the relay that held this command stopped mid-call and MsgFlash shows no "
                        "such message; not resent to avoid a duplicate: check the recipient, then "
                        "replay it with `msgflash-relay dlq replay` if it was not delivered",
                    ),
                    attempts=context.prior_attempts,
                    instance_id=instance_id,
                )

        starts_at = data.scheduled_at.timestamp() if isinstance(data, ScheduleMessageData) else None
        give_up_at = self.quota_deadline.give_up_at(context, starts_at)
        if not self.quota.allows_call():
            return quota_wait(self.quota.error_info(), context, give_up_at=give_up_at)
        call = (
            self.client.schedule_message
            if command.type is CommandType.SCHEDULE_MESSAGE
            else self.client.send_message
        )
        called_at = time.time()
        result = await call(payload, before_send=context.calling, caller=context.key)
        if isinstance(result, CallFailure):
            return await failed_create(
                result, self.quota, context, instance_id, called_at=called_at, give_up_at=give_up_at
            )
        self.quota.record_success()
        return self._succeeded(
            command, result.data, instance_id, context.prior_attempts + result.attempts
        )

    def _succeeded(
        self, command: Command, response: Mapping[str, Any], instance_id: str, attempts: int
    ) -> Succeeded:
        result = message_result_event(command, response, instance_id=instance_id, attempts=attempts)
        warning = safety_warning_event(command, response, instance_id=instance_id)
        return Succeeded(
            result=result,
            extra=(warning,) if warning is not None else (),
            message_id=str(response.get("id")) if response.get("id") else None,
            instance_id=instance_id,
            attempts=attempts,
        )

    async def _reconcile(
        self, payload: Mapping[str, Any], context: HandlerContext
    ) -> Mapping[str, Any] | None:
        """The previous holder died mid-call: did MsgFlash create the message anyway?"""
        known = await self.store.message_for_request(context.key)
        if known is not None:
            log.info("lease_reconciled", via="correlation", messageId=known)
            return await self.client.get_message(known)
        assert context.reconcile_since is not None
        since = datetime.fromtimestamp(context.reconcile_since, tz=UTC)
        found = await self.client.find_sent_message(payload, since, context.key)
        log.info("lease_reconciled", via="message_list", found=found is not None)
        return found


def _look_again_later(exc: Exception, since: float) -> Deferred:
    """The lookup that must come before any resend could not answer: wait, never resend."""
    reason = f"{exc.code}: {exc.message}" if isinstance(exc, MsgFlashError) else str(exc)
    log.info("reconcile_undecided", reason=reason)
    info = ErrorInfo(
        OUTCOME_UNKNOWN,
        f"an earlier send got no answer and MsgFlash could not say yet whether it created the "
        f"message ({reason}); looked up again after the retry delay, not resent meanwhile",
        retryable=True,
    )
    # Undecided settles by itself within the answer window: waiting for it uses no tier.
    return Deferred(info, counts=isinstance(exc, MsgFlashError), reconcile_since=since)
