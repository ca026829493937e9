"""decode -> claim -> handle -> publish -> ack, dead-letter or defer: the one place with effects.

Ordering is what makes the relay safe under crashes and redeliveries:
1. a command is claimed by ``(source, id)`` before any MsgFlash call;
2. after the call, the outcome is stored *before* anything is published, so a redelivery
   republishes the stored events instead of calling MsgFlash again;
3. the delivery is acked only after every publish was confirmed; when the broker cannot confirm,
   the delivery is left unacked and comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import structlog
from aio_pika.abc import AbstractIncomingMessage

from consumers.lanes import Lane, Lanes
from consumers.leases import Leases
from consumers.outcomes import Deferred, Failed, Handler, HandlerContext, Outcome
from consumers.results import decode_events, encode_result, result_failed
from service.bus.acks import Acks, ChannelAcks
from service.bus.publisher import OriginalMessage, Publisher
from service.contract.amqp import (
    ATTEMPTS_HEADER,
    DEFERRALS_HEADER,
    FIRST_SEEN_HEADER,
    MOVED_HEADER,
    RECONCILE_HEADER,
    REPLAYED_HEADER,
    RETRY_TIER_HEADER,
    UNCALLED_HOLDER_HEADER,
)
from service.contract.commands import (
    DEFAULT_ACCOUNT,
    Command,
    CommandIdentity,
    CommandType,
    RawCommand,
    parse_command,
    peek_identity,
)
from service.contract.errors import (
    RETRIES_EXHAUSTED,
    BrokerUnavailable,
    CallNotMarked,
    ClaimLost,
    ErrorInfo,
    InvalidCommand,
    StoreUnavailable,
    error_info,
)
from service.contract.events import Correlation, OutgoingEvent, failure_event
from service.metrics import Metrics
from service.state.store import ClaimStatus, RememberedMessage, StateStore
from service.tracing.spans import Tracing

log = structlog.get_logger("consumers.pipeline")

# Headers the broker and the relay add while a command travels; stripped before parking it.
_TRANSIT_HEADERS = frozenset(
    {
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
        "x-delivery-count",
        RETRY_TIER_HEADER,
        FIRST_SEEN_HEADER,
        DEFERRALS_HEADER,
        ATTEMPTS_HEADER,
        REPLAYED_HEADER,
        RECONCILE_HEADER,
        UNCALLED_HOLDER_HEADER,
    }
)
# How many finished commands a replica remembers having published itself (~180 bytes each).
# Only deliveries whose ack was lost come back, and those are bounded by what was in flight
# (the prefetch) when a connection dropped: a few thousand is plenty, and keeps memory flat.
RECENT_KEYS = 4_096


# How long stopping waits for the last acks to be written before the connection closes.
ACKS_ON_STOP_SECONDS = 2.0

# The ``account`` label of commands naming an account this relay does not serve: not a valid
# account name, so it cannot be mistaken for one.
UNKNOWN_ACCOUNT_LABEL = "_unknown"

# Below this many commands in flight the relay never counts as saturated, whatever the
# prefetch: too few commands would share a commit to be worth making them wait for it.
SATURATION_FLOOR = 8


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    owner: str  # this replica's identity; each delivery claims as owner + a sequence number
    # The accounts this relay serves: the only values the metrics' ``account`` label takes.
    accounts: frozenset[str] = frozenset({DEFAULT_ACCOUNT})
    max_body_bytes: int = 256 * 1024
    lease_seconds: float = 120.0
    retry_tiers: int = 4


@dataclass(slots=True)
class Delivery:
    """One delivery being processed: the AMQP message, its copy as received, its claim owner."""

    message: AbstractIncomingMessage
    original: OriginalMessage
    owner: str
    acks: ChannelAcks
    # What the outcome line adds to the bound context (instanceId, attempts, code, tier).
    outcome_fields: dict[str, object] = field(default_factory=dict)
    acked: bool = False
    received_at: float = field(default_factory=time.time)
    moved: bool = False  # from its account's own queue, moved there from a shared one

    @property
    def tag(self) -> int:
        tag = self.message.delivery_tag
        assert tag is not None  # the relay consumes with acks
        return tag

    def ack(self) -> None:
        """Ack (in one frame with the others of the next few milliseconds), or say the broker is
        gone: the delivery then comes back on its own. Once only: a second ack frame for one
        tag would make the broker close the channel."""
        if not self.acked:
            self.acks.ack(self.tag)
            self.acked = True

    @property
    def first_seen_at(self) -> float:
        """When the relay first handled this command, across deferrals."""
        return self.header_float(FIRST_SEEN_HEADER) or self.received_at

    def header_float(self, name: str) -> float | None:
        value = self.original.headers.get(name)
        try:
            return float(str(value)) if value is not None else None
        except ValueError:
            return None

    def header_int(self, name: str) -> int:
        value = self.original.headers.get(name)
        try:
            return max(0, int(str(value))) if value is not None else 0
        except ValueError:
            return 0


class CommandPipeline:
    """Runs every delivery of the relay's consumers through the steps above."""

    def __init__(
        self,
        *,
        handlers: Mapping[CommandType, Handler],
        publisher: Publisher,
        store: StateStore,
        metrics: Metrics,
        config: PipelineConfig,
        clock: Callable[[], float] = time.monotonic,
        tracing: Tracing | None = None,
        lanes: Lanes | None = None,
    ) -> None:
        self._handlers = handlers
        self._lanes = lanes
        self._tracing = tracing or Tracing()  # None: off
        self._publisher = publisher
        self._store = store
        self._metrics = metrics
        self._config = config
        self._clock = clock
        self._sequence = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._published_here: OrderedDict[str, None] = OrderedDict()
        self._acks = Acks()
        self._leases = Leases(store, config.lease_seconds)
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        metrics.in_flight.set_function(lambda: self._in_flight)  # read at scrape time

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def saturated(self, prefetch: int) -> bool:
        """At least half of ``prefetch`` commands in flight (and SATURATION_FLOOR): the relay is
        the bottleneck and deliveries wait for it, rather than it waiting for them."""
        return self._in_flight >= max(SATURATION_FLOOR, prefetch // 2)

    async def wait_idle(self, timeout: float) -> bool:
        """Wait for in-flight commands to finish and their acks to be sent; False if the bound
        ran out first."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
                await self._acks.sent()
        except TimeoutError:
            return False
        return True

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        """aio-pika delivery callback: hands the delivery to a task the pipeline owns.

        aiormq runs callbacks as tasks of the channel and cancels them when the channel closes;
        a broker restart would then abandon commands mid-call, holding their claims until the
        lease expires. Owned tasks finish their work; the ack of a dead channel is what fails.
        """
        self._start(message, moved=False)

    async def on_moved_message(self, message: AbstractIncomingMessage) -> None:
        """Delivery callback of an account's own queue: its commands wait for a lane slot."""
        self._start(message, moved=True)

    def _start(self, message: AbstractIncomingMessage, *, moved: bool) -> None:
        self._in_flight += 1
        self._idle.clear()
        task = asyncio.create_task(self._process(message, moved), name="command")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel_remaining(self) -> None:
        """Cancel whatever outlived the drain bound (shutdown); their claims expire and are
        reconciled by the next holder."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._leases.close()
        # Commands that finished since the drain bound ran out: their acks, before the broker
        # connection closes (bounded: a dead connection takes none).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ACKS_ON_STOP_SECONDS):
                await self._acks.sent()

    async def _process(self, message: AbstractIncomingMessage, moved: bool) -> None:
        started = self._clock()
        delivery: Delivery | None = None
        try:
            delivery = Delivery(
                message,
                _original(message) if moved else OriginalMessage.from_incoming(message),
                f"{self._config.owner}:{next(self._sequence)}",
                self._acks.for_message(message),
                moved=moved,
            )
            await self._deliver(delivery, started)
        except BrokerUnavailable as exc:
            # Unacked on purpose: the delivery comes back once the broker is reachable again.
            log.warning("command_left_unacked", reason=exc.message)
        finally:
            if delivery is not None:
                # Acked, or never will be (left unacked, cancelled at shutdown, crashed).
                delivery.acks.settle(delivery.tag)
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _deliver(self, delivery: Delivery, started: float) -> None:
        original = delivery.original
        raw = RawCommand(
            body=original.body,
            content_type=original.content_type,
            message_id=original.message_id,
            type=original.type,
            app_id=original.app_id,
            headers=original.headers,
        )
        try:
            command = parse_command(
                raw, max_bytes=self._config.max_body_bytes, now=_arrival(delivery)
            )
        except InvalidCommand as exc:
            identity = peek_identity(raw)
            structlog.contextvars.bind_contextvars(requestId=identity.id, type=identity.type)
            with self._tracing.consume(delivery.message, identity, None):
                await self._fail(delivery, identity, Failed(error_info(exc)), key=None)
                self._finish(identity, "invalid", started, delivery.outcome_fields)
            return
        structlog.contextvars.bind_contextvars(
            requestId=command.id, requestSource=command.source, type=command.type.value
        )
        lane = self._lanes(command.account, command.provider) if self._lanes is not None else None
        if lane is None:
            await self._traced(delivery, command, started)
        elif await lane.enter(wait=delivery.moved):
            try:
                await self._traced(delivery, command, started)
            finally:
                lane.leave()
        else:
            await self._move(delivery, lane)

    async def _traced(self, delivery: Delivery, command: Command, started: float) -> None:
        with self._tracing.consume(delivery.message, command.identity, command.traceparent):
            label = await self._run_safely(delivery, command)
            self._finish(command.identity, label, started, delivery.outcome_fields)

    async def _move(self, delivery: Delivery, lane: Lane) -> None:
        """Hand the delivery to its account's queue, unchanged but for where it came from and
        when it first arrived; acked once the broker confirmed the copy. Nothing is claimed:
        the copy is a first delivery as far as exactly-once goes."""
        headers = {
            MOVED_HEADER: delivery.original.routing_key,
            FIRST_SEEN_HEADER: _exact(delivery.first_seen_at),
        }
        await self._publisher.move(delivery.original, lane.queue, headers)
        delivery.ack()
        lane.moved()
        log.debug("command_moved", account=lane.account)

    async def _run_safely(self, delivery: Delivery, command: Command) -> str:
        try:
            return await self._run(delivery, command)
        except BrokerUnavailable:
            raise
        except ClaimLost:
            # The holder that took it over has a delivery of its own: this one just goes.
            log.warning("command_claim_lost")
            delivery.ack()
            return "taken_over"
        except StoreUnavailable as exc:  # waits for the store without using up a retry tier
            log.warning("state_store_unavailable", error=exc.message)
            outage = Deferred(error_info(exc), counts=False)
            # This delivery sent nothing, though the store may have recorded that it was about to.
            uncalled = delivery.owner if isinstance(exc, CallNotMarked) else None
            return await self._defer(
                delivery, command.identity, outage, key=None, uncalled_holder=uncalled
            )
        except Exception as exc:  # a bug must not lose the command
            log.exception("command_crashed")
            crash = Deferred(ErrorInfo("RELAY_INTERNAL_ERROR", f"{type(exc).__name__}: {exc}"))
            return await self._defer(delivery, command.identity, crash, key=None)

    async def _run(self, delivery: Delivery, command: Command) -> str:
        key, lease = command.key, self._config.lease_seconds
        # A holder that failed to record its call sent nothing, though its record may say so.
        uncalled = delivery.original.headers.get(UNCALLED_HOLDER_HEADER)
        claim = await self._store.claim(
            key, delivery.owner, lease, uncalled=str(uncalled) if uncalled else None
        )
        if (
            claim.status is ClaimStatus.DONE
            and delivery.original.headers.get(REPLAYED_HEADER)
            and result_failed(claim.result)
        ):
            # A human replayed a parked command: process it afresh.
            await self._store.forget(key)
            claim = await self._store.claim(key, delivery.owner, lease)
        if claim.status is ClaimStatus.DONE:
            if delivery.message.redelivered and key in self._published_here:
                # Our publish was confirmed but the ack was lost with the connection: the events
                # are out already, so publishing them again would only duplicate them.
                delivery.ack()
                return "redelivered"
            await self._publish(decode_events(claim.result), delivery.original)
            delivery.ack()
            return "duplicate"
        if claim.status is ClaimStatus.BUSY:
            busy = ErrorInfo("COMMAND_IN_PROGRESS", "another delivery of it is being processed")
            return await self._defer(
                delivery, command.identity, Deferred(busy, counts=False), key=None
            )
        expired = claim.status is ClaimStatus.EXPIRED
        context = HandlerContext(
            key=key,
            prior_attempts=delivery.header_int(ATTEMPTS_HEADER),
            reconcile_since=claim.claimed_at
            if expired
            else delivery.header_float(RECONCILE_HEADER),
            lease_expired=expired,
            first_seen_at=delivery.first_seen_at,
            calling=self._leases.calling(key, delivery.owner),
        )
        self._leases.hold(key, delivery.owner)
        try:
            outcome = await self._handlers[command.type](command, context)
            return await self._apply(delivery, command, outcome)
        finally:
            self._leases.let_go(key, delivery.owner)

    async def _apply(self, delivery: Delivery, command: Command, outcome: Outcome) -> str:
        if isinstance(outcome, Deferred):
            return await self._defer(delivery, command.identity, outcome, key=command.key)
        if isinstance(outcome, Failed):
            await self._fail(delivery, command.identity, outcome, key=command.key)
            return "failed"
        if outcome.instance_id:
            delivery.outcome_fields["instanceId"] = outcome.instance_id
        message: RememberedMessage | None = None
        if outcome.message_id is not None:
            # The command's span, or its producer's when untraced: what webhooks link to.
            traceparent = self._tracing.current_traceparent() or command.traceparent
            correlation = Correlation(command.id, command.source, traceparent)
            message = RememberedMessage(outcome.message_id, correlation)
        events = (outcome.result, *outcome.extra)
        await self._store.complete(
            command.key, delivery.owner, encode_result(events, succeeded=True), message=message
        )
        await self._publish(events, delivery.original)
        self._remember_published(command.key)
        delivery.ack()
        delivery.outcome_fields["attempts"] = outcome.attempts
        return "succeeded"

    async def _fail(
        self, delivery: Delivery, identity: CommandIdentity, failure: Failed, *, key: str | None
    ) -> None:
        event = failure_event(identity, failure.error, attempts=failure.attempts)
        if key is not None:
            await self._store.complete(
                key, delivery.owner, encode_result((event,), succeeded=False)
            )
        await self._publisher.dead_letter(
            _parked(delivery.original),
            code=failure.error.code,
            message=failure.error.message,
            attempts=failure.attempts,
            failed_at=datetime.now(UTC).isoformat(),
            account=self._account_label(identity.account),
        )
        await self._publish((event,), delivery.original)
        if key is not None:
            self._remember_published(key)
        delivery.ack()
        delivery.outcome_fields.update(code=failure.error.code, attempts=failure.attempts)

    async def _defer(
        self,
        delivery: Delivery,
        identity: CommandIdentity,
        deferred: Deferred,
        *,
        key: str | None,
        uncalled_holder: str | None = None,
    ) -> str:
        tier = delivery.header_int(DEFERRALS_HEADER)
        total = delivery.header_int(ATTEMPTS_HEADER) + deferred.attempts
        if deferred.counts and tier >= self._config.retry_tiers:
            exhausted = ErrorInfo(
                RETRIES_EXHAUSTED,
                f"gave up after {total} attempts and {tier} deferred retries; last error "
                f"{deferred.error.code}: {deferred.error.message}",
                http_status=deferred.error.http_status,
                retryable=False,
            )
            await self._fail(delivery, identity, Failed(exhausted, total), key=key)
            return "failed"
        if key is not None:
            await self._release(key, delivery.owner)
        headers: dict[str, object] = {
            ATTEMPTS_HEADER: total,
            DEFERRALS_HEADER: tier + 1 if deferred.counts else tier,
            FIRST_SEEN_HEADER: _exact(delivery.first_seen_at),
        }
        if deferred.reconcile_since is not None:
            headers[RECONCILE_HEADER] = _exact(deferred.reconcile_since)
        if uncalled_holder is not None:
            headers[UNCALLED_HOLDER_HEADER] = uncalled_holder
        queue_tier = min(tier, self._config.retry_tiers - 1)
        await self._publisher.defer(delivery.original, tier=queue_tier, headers=headers)
        delivery.ack()
        self._metrics.deferred.labels(
            deferred.error.code, self._account_label(identity.account)
        ).inc()
        delivery.outcome_fields.update(code=deferred.error.code, tier=queue_tier)
        return "deferred"

    async def _release(self, key: str, owner: str) -> None:
        """Give the claim up; if the store cannot hear it, the claim stays claimed-not-called
        and the next holder takes it over once its lease ran out, without a lookup."""
        try:
            await self._store.release(key, owner)
        except StoreUnavailable as exc:
            log.warning("claim_release_failed", error=exc.message)

    async def _publish(self, events: tuple[OutgoingEvent, ...], original: OriginalMessage) -> None:
        for index, event in enumerate(events):
            await self._publisher.publish_event(
                event,
                correlation_id=original.correlation_id,
                reply_to=original.reply_to if index == 0 else None,
            )

    def _remember_published(self, key: str) -> None:
        self._published_here[key] = None
        if len(self._published_here) > RECENT_KEYS:
            self._published_here.popitem(last=False)

    def _account_label(self, account: str) -> str:
        """The account as a metric label: a command may name any account, and an unbounded
        label would grow a series per name; the ones this relay does not serve share one."""
        return account if account in self._config.accounts else UNKNOWN_ACCOUNT_LABEL

    def _finish(
        self, identity: CommandIdentity, outcome: str, started: float, fields: dict[str, object]
    ) -> None:
        account = self._account_label(identity.account)
        self._metrics.command_outcome(identity.type or "unknown", outcome, account).inc()
        self._tracing.record_outcome(outcome)
        duration_ms = round((self._clock() - started) * 1000, 2)
        log.info("command_handled", outcome=outcome, durationMs=duration_ms, **fields)


def _arrival(delivery: Delivery) -> datetime | None:
    """Now, for a command reaching the relay for the first time; None for one that was here
    before (redelivered, moved to its account's queue, deferred, replayed), whose schedule may
    rightly have come since."""
    headers = delivery.original.headers
    if delivery.moved or delivery.message.redelivered:
        return None
    if any(name in headers for name in _RETURN_HEADERS):
        return None
    return datetime.now(UTC)


_RETURN_HEADERS = (DEFERRALS_HEADER, ATTEMPTS_HEADER, REPLAYED_HEADER, RETRY_TIER_HEADER)


def _original(message: AbstractIncomingMessage) -> OriginalMessage:
    """A moved command as it first arrived: under its own routing key, so its deferred retries
    and dead-letter replays go back to the shared queue, not to the account's."""
    original = OriginalMessage.from_incoming(message)
    routing_key = original.headers.get(MOVED_HEADER)
    if not isinstance(routing_key, str | bytes):
        return original
    key = routing_key.decode() if isinstance(routing_key, bytes) else routing_key
    headers = {k: v for k, v in original.headers.items() if k != MOVED_HEADER}
    return replace(original.with_headers(headers), routing_key=key)


def _exact(epoch_seconds: float) -> str:
    """A time for a header, as text: a float header may travel as 32 bits, which rounds an
    epoch time to about two minutes and would move a reconciliation's horizon by as much."""
    return repr(epoch_seconds)


def _parked(original: OriginalMessage) -> OriginalMessage:
    """The command as its producer sent it, for the dead-letter queue."""
    headers = {k: v for k, v in original.headers.items() if k not in _TRANSIT_HEADERS}
    return original.with_headers(headers)
