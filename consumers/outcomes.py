"""What a handler decides about a command. The pipeline alone turns these into side effects."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from service.contract.commands import Command
from service.contract.errors import (
    ErrorInfo,
    InstanceResolutionError,
    MsgFlashError,
    ProviderError,
    RetryClass,
    error_info,
)
from service.contract.events import OutgoingEvent
from service.providers.common.retry import CallFailure
from service.providers.msgflash.instances import InstanceResolver
from service.providers.msgflash.quota import QuotaGate


@dataclass(frozen=True, slots=True)
class Succeeded:
    """MsgFlash accepted the command. ``result`` also goes to ``reply_to``; ``extra`` does not."""

    result: OutgoingEvent
    extra: tuple[OutgoingEvent, ...] = ()
    message_id: str | None = None
    instance_id: str | None = None
    attempts: int = 1


@dataclass(frozen=True, slots=True)
class Failed:
    """Terminal failure: a failure event, the original parked in the dead-letter queue."""

    error: ErrorInfo
    attempts: int = 0
    instance_id: str | None = None


@dataclass(frozen=True, slots=True)
class Deferred:
    """Worth another try later: parked in a retry tier, back on its queue after the delay.

    ``counts`` is False when nothing was tried (a live lease elsewhere, a closed quota gate), so
    the deferral does not use up a retry tier.
    """

    error: ErrorInfo
    attempts: int = 0
    counts: bool = True
    # Epoch seconds of a send whose answer was lost: the next try must look for it first.
    reconcile_since: float | None = None


Outcome = Succeeded | Failed | Deferred


Calling = Callable[[], Awaitable[None]]


async def _not_recorded() -> None:
    """Handlers run without a pipeline (unit tests) record nothing."""


@dataclass(frozen=True, slots=True)
class HandlerContext:
    """What the pipeline knows about this delivery that a handler may need."""

    key: str
    prior_attempts: int = 0
    # Set when an earlier try may have created the message (its holder died mid-call, or its
    # answer was lost): the handler must find out whether MsgFlash has it before sending.
    reconcile_since: float | None = None
    # True when that earlier try was a holder that died: then RELAY_OUTCOME_UNKNOWN_POLICY
    # decides what to do when MsgFlash shows nothing.
    lease_expired: bool = False
    # Epoch seconds the relay first handled this command (earlier deliveries included).
    first_seen_at: float = field(default_factory=time.time)
    # Awaited right before every creating provider request leaves (after pacing): records that
    # the command may now exist at the provider. Raises ClaimLost if the claim was taken over.
    calling: Calling = field(default=_not_recorded, repr=False, compare=False)


Handler = Callable[[Command, HandlerContext], Awaitable[Outcome]]


def outcome_from_error(
    error: ProviderError,
    context: HandlerContext,
    instance_id: str | None = None,
    *,
    attempts: int = 0,
    called_at: float | None = None,
    give_up_at: float | None = None,
) -> Outcome:
    """A failed provider call of ``attempts`` attempts at creating something (0 for a
    lookup): retryable ones go to a retry tier, the rest fail for good."""
    if error.retry_class is RetryClass.QUOTA:
        # Not transient: it lifts when the quota resets or the plan changes, so waiting for it
        # must not use up the retry tiers (the quota gate keeps calls from going out meanwhile).
        if give_up_at is None:
            return Deferred(error_info(error), attempts=attempts, counts=False)
        return quota_wait(error_info(error), context, give_up_at=give_up_at, attempts=attempts)
    if error.retryable:
        return Deferred(
            error_info(error),
            attempts=attempts,
            reconcile_since=(context.reconcile_since or called_at) if error.unanswered else None,
        )
    return Failed(
        error_info(error),
        attempts=context.prior_attempts + attempts,
        instance_id=instance_id,
    )


async def failed_create(
    failure: CallFailure[MsgFlashError],
    quota: QuotaGate,
    context: HandlerContext,
    instance_id: str,
    *,
    called_at: float,
    give_up_at: float | None,
) -> Outcome:
    """A MsgFlash create that did not succeed: the quota gate learns of it first, then the
    outcome is decided as for any failed call."""
    await quota.observe(failure.error)
    return outcome_from_error(
        failure.error,
        context,
        instance_id,
        attempts=failure.attempts,
        called_at=called_at,
        give_up_at=give_up_at,
    )


@dataclass(frozen=True, slots=True)
class QuotaDeadline:
    """How long a command may wait for a used-up quota to lift before it fails: a "send now"
    ``max_wait_seconds`` after it first arrived; anything with a start time (a schedule, a
    campaign) until that time and no longer, however near or far: it can go out on time until
    then, and MsgFlash would start it at once after, at a time nobody asked for. One whose
    start had passed before it arrived (a replay of one that gave up) is late on purpose: it
    waits as a send."""

    max_wait_seconds: float

    def give_up_at(self, context: HandlerContext, starts_at: float | None = None) -> float:
        if starts_at is not None and starts_at > context.first_seen_at:
            return starts_at
        return context.first_seen_at + self.max_wait_seconds


# The documented default of RELAY_QUOTA_MAX_WAIT_SECONDS.
DEFAULT_QUOTA_DEADLINE = QuotaDeadline(max_wait_seconds=900.0)


def quota_wait(
    error: ErrorInfo,
    context: HandlerContext,
    *,
    give_up_at: float,
    attempts: int = 0,
    now: Callable[[], float] = time.time,
) -> Outcome:
    """Wait for a used-up quota (deferred, no retry tier used) until ``give_up_at``; then fail
    with the provider's code, parked for a replay once the quota is raised."""
    if now() < give_up_at:
        return Deferred(error, attempts=attempts, counts=False)
    waited = max(0.0, now() - context.first_seen_at)
    return Failed(
        ErrorInfo(
            error.code,
            f"{error.code}: the command waited {waited:.0f} s for the quota to lift, past its "
            "bound (RELAY_QUOTA_MAX_WAIT_SECONDS for a send, the start time of a schedule or "
            "campaign); raise the plan's quota, "
            f"then replay it with `msgflash-relay dlq replay --code {error.code}`",
            http_status=error.http_status or 429,
            retryable=False,
        ),
        attempts=context.prior_attempts + attempts,
    )


async def resolve_instance(
    resolver: InstanceResolver,
    *,
    instance_id: str | None,
    instance: str | None,
    context: HandlerContext,
) -> str | Outcome:
    """The instance id to use, or the outcome that ends the command when there is none."""
    try:
        return await resolver.resolve(instance_id=instance_id, instance=instance)
    except InstanceResolutionError as exc:
        return Failed(error_info(exc))
    except MsgFlashError as exc:  # the instance list could not be read
        return outcome_from_error(exc, context)
